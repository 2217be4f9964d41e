//! Clock and timer: `proxy_get_current_time_nanoseconds`,
//! `proxy_set_tick_period_milliseconds` (the emulator's `tick` then runs
//! `proxy_on_tick`).

use wasmtime::Linker;

use crate::abi::Status;
use crate::link::{Ctx, R, hostcalls};
use crate::memory::out_u64;
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [
        proxy_get_current_time_nanoseconds,
        proxy_set_tick_period_milliseconds,
    ]);
    Ok(())
}

/// `proxy_get_current_time_nanoseconds(time_ptr)`: the host's wall clock.
fn proxy_get_current_time_nanoseconds(caller: &mut Ctx<'_>, ptr: i32) -> R<Status> {
    let now = caller.data().realtime_nanos;
    Ok(out_u64(caller, ptr, now))
}

/// `proxy_set_tick_period_milliseconds(period)`; 0 stops the ticks.
fn proxy_set_tick_period_milliseconds(caller: &mut Ctx<'_>, period: i32) -> R<Status> {
    caller.data_mut().tick_period_ms = period as u32;
    Ok(Status::Ok)
}
