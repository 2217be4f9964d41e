//! The WASI preview1 subset a proxy-wasm guest needs, answered the way
//! Envoy's cpp-host answers it: stdout/stderr become logs, no files, no
//! environment or arguments, host clocks, deterministic randomness. Envoy
//! registers the same functions under `wasi_unstable` too. Other WASI calls
//! trap with their name (`hostcalls/unsupported.rs`).

use wasmtime::Linker;

use crate::abi::LogLevel;
use crate::fault::HostFault;
use crate::link::{Code, Ctx, R, hostcalls};
use crate::memory::{read, write, write_u32, write_u64};
use crate::state::HostState;

/// The import modules WASI is linked under.
pub(crate) const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

pub(crate) fn define(linker: &mut Linker<HostState>) -> R<()> {
    hostcalls!(linker, wasi: [
        fd_write,
        environ_sizes_get = no_entries_sizes,
        args_sizes_get = no_entries_sizes,
        environ_get = no_entries,
        args_get = no_entries,
        clock_time_get,
        clock_res_get,
        random_get,
        sched_yield,
    ]);
    // `proc_exit` ends the guest in any phase, so it is not phase-checked.
    for module in MODULES {
        linker.func_wrap(
            module,
            "proc_exit",
            |_caller: Ctx<'_>, code: i32| -> R<()> {
                Err(wasmtime::Error::new(HostFault::ProcExit { code }))
            },
        )?;
    }
    Ok(())
}

/// The WASI errnos the host returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Errno {
    Success = 0,
    Badf = 8,
    Fault = 21,
    Notsup = 58,
}

impl Code for Errno {
    fn code(self) -> i32 {
        self as i32
    }
}

/// `Success`, or `Fault` when a write to guest memory failed.
fn written(ok: bool) -> Errno {
    if ok { Errno::Success } else { Errno::Fault }
}

/// `fd_write(fd, iovs, iovs_len, written_ptr)`: stdout is logged at info,
/// stderr at error (one line per call, the final newline dropped); other
/// descriptors are `Badf`.
fn fd_write(caller: &mut Ctx<'_>, fd: i32, iovs: i32, iovs_len: i32, written_ptr: i32) -> R<Errno> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(Errno::Badf),
    };
    let mut text = Vec::new();
    for i in 0..iovs_len.max(0) {
        let Some(iov) = read(caller, iovs.wrapping_add(i * 8), 8) else {
            return Ok(Errno::Fault);
        };
        let word = |at: usize| {
            iov.get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(i32::from_le_bytes)
                .unwrap_or_default()
        };
        let Some(bytes) = read(caller, word(0), word(4)) else {
            return Ok(Errno::Fault);
        };
        text.extend_from_slice(&bytes);
    }
    let count = u32::try_from(text.len())?;
    if text.last() == Some(&b'\n') {
        text.pop();
    }
    if !text.is_empty() {
        let message = String::from_utf8_lossy(&text).into_owned();
        caller.data_mut().log(level, message);
    }
    Ok(written(write_u32(caller, written_ptr, count)))
}

/// `environ_sizes_get` / `args_sizes_get(count_ptr, size_ptr)`: none.
fn no_entries_sizes(caller: &mut Ctx<'_>, count_ptr: i32, size_ptr: i32) -> R<Errno> {
    Ok(written(
        write_u32(caller, count_ptr, 0) && write_u32(caller, size_ptr, 0),
    ))
}

/// `environ_get` / `args_get(array_ptr, buf_ptr)`: nothing to copy.
fn no_entries(_caller: &mut Ctx<'_>, _array_ptr: i32, _buf_ptr: i32) -> R<Errno> {
    Ok(Errno::Success)
}

/// `clock_time_get(clock, precision: i64, time_ptr)`: the host's wall
/// clock (0) or monotonic clock (1).
fn clock_time_get(caller: &mut Ctx<'_>, clock: i32, _precision: i64, time_ptr: i32) -> R<Errno> {
    let now = match clock {
        0 => caller.data().realtime_nanos,
        1 => caller.data().monotonic_nanos,
        _ => return Ok(Errno::Notsup),
    };
    Ok(written(write_u64(caller, time_ptr, now)))
}

/// `clock_res_get(clock, resolution_ptr)`: one nanosecond.
fn clock_res_get(caller: &mut Ctx<'_>, clock: i32, res_ptr: i32) -> R<Errno> {
    if !matches!(clock, 0 | 1) {
        return Ok(Errno::Notsup);
    }
    Ok(written(write_u64(caller, res_ptr, 1)))
}

/// `random_get(buf, len)`: deterministic bytes from
/// [`HostOptions::random_seed`](crate::HostOptions::random_seed).
fn random_get(caller: &mut Ctx<'_>, buf: i32, len: i32) -> R<Errno> {
    let len = usize::try_from(len.max(0))?;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        let word = caller.data_mut().next_random();
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    bytes.truncate(len);
    Ok(written(write(caller, buf, &bytes)))
}

/// `sched_yield()`: nothing to yield to.
fn sched_yield(_caller: &mut Ctx<'_>) -> R<Errno> {
    Ok(Errno::Success)
}
