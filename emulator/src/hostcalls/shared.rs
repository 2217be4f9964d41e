//! Shared data: `proxy_get_shared_data`, `proxy_set_shared_data`, with
//! compare-and-swap versions. Shared queues
//! (`proxy_register_shared_queue`, …) are not implemented: they trap
//! (`unsupported`).

use wasmtime::Linker;

use crate::abi::Status;
use crate::link::{Ctx, R, hostcalls};
use crate::memory::{copy_out, out_u32, read, read_text};
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [proxy_get_shared_data, proxy_set_shared_data]);
    Ok(())
}

/// `proxy_get_shared_data(key_ptr, key_size, value_ptr_ptr,
/// value_size_ptr, cas_ptr)`: the value and its version.
fn proxy_get_shared_data(
    caller: &mut Ctx<'_>,
    key_ptr: i32,
    key_size: i32,
    value_ptr_ptr: i32,
    value_size_ptr: i32,
    cas_ptr: i32,
) -> R<Status> {
    let Some(key) = read_text(caller, key_ptr, key_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let Some((value, cas)) = caller.data().shared_data.get(&key).cloned() else {
        return Ok(Status::NotFound);
    };
    let status = copy_out(caller, &value, value_ptr_ptr, value_size_ptr)?;
    if status != Status::Ok {
        return Ok(status);
    }
    Ok(out_u32(caller, cas_ptr, cas))
}

/// `proxy_set_shared_data(key_ptr, key_size, value_ptr, value_size, cas)`:
/// stores the value unless `cas` is non-zero and not the current version
/// (`CasMismatch`); each store bumps the version.
fn proxy_set_shared_data(
    caller: &mut Ctx<'_>,
    key_ptr: i32,
    key_size: i32,
    value_ptr: i32,
    value_size: i32,
    cas: i32,
) -> R<Status> {
    let (Some(key), Some(value)) = (
        read_text(caller, key_ptr, key_size),
        read(caller, value_ptr, value_size),
    ) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let cas = cas as u32;
    let data = &mut caller.data_mut().shared_data;
    let current = data.get(&key).map_or(0, |(_, c)| *c);
    if cas != 0 && cas != current {
        return Ok(Status::CasMismatch);
    }
    data.insert(key, (value, current.wrapping_add(1).max(1)));
    Ok(Status::Ok)
}
