//! Foreign functions: `proxy_call_foreign_function`. None are registered.

use wasmtime::Linker;

use crate::abi::Status;
use crate::link::{Ctx, R, hostcalls};
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [proxy_call_foreign_function]);
    Ok(())
}

/// `proxy_call_foreign_function(name_ptr, name_size, args_ptr, args_size,
/// results_ptr_ptr, results_size_ptr)`: `NotFound`, Envoy's answer for a
/// name nobody registered.
fn proxy_call_foreign_function(
    _caller: &mut Ctx<'_>,
    _name_ptr: i32,
    _name_size: i32,
    _args_ptr: i32,
    _args_size: i32,
    _ret_ptr_ptr: i32,
    _ret_size_ptr: i32,
) -> R<Status> {
    Ok(Status::NotFound)
}
