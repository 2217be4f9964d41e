//! Properties: `proxy_get_property`, `proxy_set_property`. A path is its
//! segments joined by NUL bytes; the test provides values with
//! `Emulator::set_property`.

use wasmtime::Linker;

use crate::abi::Status;
use crate::link::{Ctx, R, hostcalls};
use crate::memory::{copy_out, read, read_text};
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [proxy_get_property, proxy_set_property]);
    Ok(())
}

/// `proxy_get_property(path_ptr, path_size, value_ptr_ptr,
/// value_size_ptr)`; `NotFound` for a property nobody set.
fn proxy_get_property(
    caller: &mut Ctx<'_>,
    path_ptr: i32,
    path_size: i32,
    value_ptr_ptr: i32,
    value_size_ptr: i32,
) -> R<Status> {
    let Some(path) = read_text(caller, path_ptr, path_size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let Some(value) = caller.data().properties.get(&segments(&path)).cloned() else {
        return Ok(Status::NotFound);
    };
    copy_out(caller, &value, value_ptr_ptr, value_size_ptr)
}

/// `proxy_set_property(path_ptr, path_size, value_ptr, value_size)`.
fn proxy_set_property(
    caller: &mut Ctx<'_>,
    path_ptr: i32,
    path_size: i32,
    value_ptr: i32,
    value_size: i32,
) -> R<Status> {
    let (Some(path), Some(value)) = (
        read_text(caller, path_ptr, path_size),
        read(caller, value_ptr, value_size),
    ) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    caller.data_mut().properties.insert(segments(&path), value);
    Ok(Status::Ok)
}

/// A property path's segments (the ABI separates them with NUL bytes).
fn segments(path: &str) -> Vec<String> {
    path.split('\0').map(str::to_owned).collect()
}
