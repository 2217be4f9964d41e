//! Contexts: `proxy_set_effective_context`, `proxy_done`.

use wasmtime::Linker;

use crate::abi::Status;
use crate::link::{Ctx, R, hostcalls};
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [proxy_set_effective_context, proxy_done]);
    Ok(())
}

/// `proxy_set_effective_context(context_id)`: later hostcalls of this
/// callback act on that context (the root or an open HTTP context).
fn proxy_set_effective_context(caller: &mut Ctx<'_>, context_id: i32) -> R<Status> {
    let id = context_id as u32;
    let state = caller.data_mut();
    if id != state.root_id && !state.streams.contains_key(&id) {
        return Ok(Status::BadArgument);
    }
    state.context_id = id;
    Ok(Status::Ok)
}

/// `proxy_done()`: a context that returned false from `proxy_on_done`
/// says it is done now.
fn proxy_done(caller: &mut Ctx<'_>) -> R<Status> {
    caller.data_mut().done_called = true;
    Ok(Status::Ok)
}
