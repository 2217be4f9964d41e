//! Logging: `proxy_log`, `proxy_get_log_level`.

use wasmtime::Linker;

use crate::abi::{LogLevel, Status};
use crate::link::{Ctx, R, hostcalls};
use crate::memory::{out_u32, read_text};
use crate::state::HostState;

pub(super) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, env: [proxy_log, proxy_get_log_level]);
    Ok(())
}

/// `proxy_log(level, message_ptr, message_size)`: records the line, at
/// any level (what `proxy_get_log_level` answers filters nothing).
fn proxy_log(caller: &mut Ctx<'_>, level: i32, ptr: i32, len: i32) -> R<Status> {
    let Some(level) = LogLevel::from_raw(level) else {
        return Ok(Status::BadArgument);
    };
    let Some(message) = read_text(caller, ptr, len) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    caller.data_mut().log(level, message);
    Ok(Status::Ok)
}

/// `proxy_get_log_level(level_ptr)`: the level of
/// [`HostOptions::log_level`](crate::HostOptions::log_level).
fn proxy_get_log_level(caller: &mut Ctx<'_>, ptr: i32) -> R<Status> {
    let level = caller.data().log_level as u32;
    Ok(out_u32(caller, ptr, level))
}
