//! Metrics: `proxy_define_metric`, `proxy_increment_metric`,
//! `proxy_record_metric`, `proxy_get_metric`. Ids are 1-based indexes
//! into the host's list; defining a name again returns its id.

use wasmtime::Linker;

use crate::abi::{MetricType, Status};
use crate::link::{Ctx, R, hostcalls};
use crate::memory::{out_u32, out_u64, read_text};
use crate::state::{HostState, Metric};

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [
        proxy_define_metric,
        proxy_increment_metric,
        proxy_record_metric,
        proxy_get_metric,
    ]);
    Ok(())
}

/// `proxy_define_metric(type, name_ptr, name_size, id_ptr)`.
fn proxy_define_metric(
    caller: &mut Ctx<'_>,
    kind: i32,
    name_ptr: i32,
    name_size: i32,
    id_ptr: i32,
) -> R<Status> {
    let Some(kind) = MetricType::from_raw(kind) else {
        return Ok(Status::BadArgument);
    };
    let Some(name) = read_text(caller, name_ptr, name_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let state = caller.data_mut();
    let index = match state.metrics.iter().position(|m| m.name == name) {
        Some(index) => index,
        None => {
            state.metrics.push(Metric {
                name,
                kind,
                value: 0,
                samples: Vec::new(),
            });
            state.metrics.len() - 1
        }
    };
    let id = u32::try_from(index + 1)?;
    Ok(out_u32(caller, id_ptr, id))
}

/// `proxy_increment_metric(id, offset: i64)`: counters only go up;
/// histograms cannot be incremented.
fn proxy_increment_metric(caller: &mut Ctx<'_>, id: i32, offset: i64) -> R<Status> {
    let Some(metric) = metric_mut(caller.data_mut(), id) else {
        return Ok(Status::NotFound);
    };
    match metric.kind {
        MetricType::Counter if offset < 0 => return Ok(Status::BadArgument),
        MetricType::Histogram => return Ok(Status::BadArgument),
        _ => metric.value += i128::from(offset),
    }
    Ok(Status::Ok)
}

/// `proxy_record_metric(id, value: u64)`: adds to a counter, sets a gauge,
/// adds a histogram sample.
fn proxy_record_metric(caller: &mut Ctx<'_>, id: i32, value: i64) -> R<Status> {
    let value = value as u64;
    let Some(metric) = metric_mut(caller.data_mut(), id) else {
        return Ok(Status::NotFound);
    };
    match metric.kind {
        MetricType::Counter => metric.value += i128::from(value),
        MetricType::Gauge => metric.value = i128::from(value),
        MetricType::Histogram => {
            metric.value = i128::from(value);
            metric.samples.push(value);
        }
    }
    Ok(Status::Ok)
}

/// `proxy_get_metric(id, value_ptr)`: a counter's or a gauge's value.
fn proxy_get_metric(caller: &mut Ctx<'_>, id: i32, ptr: i32) -> R<Status> {
    let Some(metric) = metric_mut(caller.data_mut(), id) else {
        return Ok(Status::NotFound);
    };
    if metric.kind == MetricType::Histogram {
        return Ok(Status::BadArgument);
    }
    let value = metric.value as u64;
    Ok(out_u64(caller, ptr, value))
}

/// The metric with id `id` (its 1-based index).
fn metric_mut(state: &mut HostState, id: i32) -> Option<&mut Metric> {
    let index = usize::try_from(id).ok()?.checked_sub(1)?;
    state.metrics.get_mut(index)
}
