//! The WASI preview1 subset a proxy-wasm guest needs, answered the way
//! Envoy's cpp-host answers it: stdout/stderr become logs, no files, no
//! environment or arguments, host clocks, deterministic randomness. Envoy
//! registers the same functions under `wasi_unstable` too.

use wasmtime::Linker;

use super::abi::LogLevel;
use super::env::{Ctx, enter, read, write, write_u32, write_u64};
use super::fault::HostFault;
use super::state::HostState;

type R<T> = wasmtime::Result<T>;

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const ENOTSUP: i32 = 58;

pub(crate) const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

pub(crate) fn define(linker: &mut Linker<HostState>) -> R<()> {
    for module in MODULES {
        linker.func_wrap(
            module,
            "fd_write",
            |mut caller: Ctx<'_>, fd: i32, iovs: i32, iovs_len: i32, written_ptr: i32| -> R<i32> {
                enter(&caller, "wasi_snapshot_preview1.fd_write")?;
                let level = match fd {
                    1 => LogLevel::Info,
                    2 => LogLevel::Error,
                    _ => return Ok(EBADF),
                };
                let mut text = Vec::new();
                for i in 0..iovs_len.max(0) {
                    let Some(iov) = read(&caller, iovs.wrapping_add(i * 8), 8) else {
                        return Ok(EFAULT);
                    };
                    let word = |at: usize| {
                        iov.get(at..at + 4)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map(i32::from_le_bytes)
                            .unwrap_or_default()
                    };
                    let Some(bytes) = read(&caller, word(0), word(4)) else {
                        return Ok(EFAULT);
                    };
                    text.extend_from_slice(&bytes);
                }
                let written = u32::try_from(text.len())?;
                if text.last() == Some(&b'\n') {
                    text.pop();
                }
                if !text.is_empty() {
                    let message = String::from_utf8_lossy(&text).into_owned();
                    caller.data_mut().log(level, message);
                }
                Ok(if write_u32(&mut caller, written_ptr, written) {
                    SUCCESS
                } else {
                    EFAULT
                })
            },
        )?;
        for (name, qualified) in [
            (
                "environ_sizes_get",
                "wasi_snapshot_preview1.environ_sizes_get",
            ),
            ("args_sizes_get", "wasi_snapshot_preview1.args_sizes_get"),
        ] {
            linker.func_wrap(
                module,
                name,
                move |mut caller: Ctx<'_>, count_ptr: i32, size_ptr: i32| -> R<i32> {
                    enter(&caller, qualified)?;
                    Ok(
                        if write_u32(&mut caller, count_ptr, 0)
                            && write_u32(&mut caller, size_ptr, 0)
                        {
                            SUCCESS
                        } else {
                            EFAULT
                        },
                    )
                },
            )?;
        }
        for (name, qualified) in [
            ("environ_get", "wasi_snapshot_preview1.environ_get"),
            ("args_get", "wasi_snapshot_preview1.args_get"),
        ] {
            linker.func_wrap(
                module,
                name,
                move |caller: Ctx<'_>, _array_ptr: i32, _buf_ptr: i32| -> R<i32> {
                    enter(&caller, qualified)?;
                    Ok(SUCCESS)
                },
            )?;
        }
        linker.func_wrap(
            module,
            "clock_time_get",
            |mut caller: Ctx<'_>, clock: i32, _precision: i64, time_ptr: i32| -> R<i32> {
                enter(&caller, "wasi_snapshot_preview1.clock_time_get")?;
                let now = match clock {
                    0 => caller.data().realtime_nanos,
                    1 => caller.data().monotonic_nanos,
                    _ => return Ok(ENOTSUP),
                };
                Ok(if write_u64(&mut caller, time_ptr, now) {
                    SUCCESS
                } else {
                    EFAULT
                })
            },
        )?;
        linker.func_wrap(
            module,
            "clock_res_get",
            |mut caller: Ctx<'_>, clock: i32, res_ptr: i32| -> R<i32> {
                enter(&caller, "wasi_snapshot_preview1.clock_res_get")?;
                if !matches!(clock, 0 | 1) {
                    return Ok(ENOTSUP);
                }
                Ok(if write_u64(&mut caller, res_ptr, 1) {
                    SUCCESS
                } else {
                    EFAULT
                })
            },
        )?;
        linker.func_wrap(
            module,
            "random_get",
            |mut caller: Ctx<'_>, buf: i32, len: i32| -> R<i32> {
                enter(&caller, "wasi_snapshot_preview1.random_get")?;
                let len = usize::try_from(len.max(0))?;
                let mut bytes = Vec::with_capacity(len + 8);
                while bytes.len() < len {
                    let word = caller.data_mut().next_random();
                    bytes.extend_from_slice(&word.to_le_bytes());
                }
                bytes.truncate(len);
                Ok(if write(&mut caller, buf, &bytes) {
                    SUCCESS
                } else {
                    EFAULT
                })
            },
        )?;
        linker.func_wrap(module, "sched_yield", |caller: Ctx<'_>| -> R<i32> {
            enter(&caller, "wasi_snapshot_preview1.sched_yield")?;
            Ok(SUCCESS)
        })?;
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
