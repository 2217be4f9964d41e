//! What can go wrong while hosting a module, and how a failed callback is
//! told apart (fuel, memory cap, a host fault, a trap in the guest).

use wasmtime::Trap;

use crate::abi::LogLevel;
use crate::fault::HostFault;
use crate::options::HostOptions;
use crate::state::{HostState, MemoryCapExceeded};

/// Why a guest callback was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrapCause {
    /// The callback used up its fuel budget (a runaway guest).
    OutOfFuel { fuel: u64 },
    /// Linear memory would grow past the cap.
    MemoryCap {
        wanted_bytes: usize,
        cap_bytes: usize,
    },
    /// The host refused a hostcall (unsupported, restricted, `proc_exit`).
    Host(HostFault),
    /// A trap inside the guest (`unreachable`, out-of-bounds access, a
    /// Rust panic with `panic = "abort"`, …).
    Wasm(String),
}

impl std::fmt::Display for TrapCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrapCause::OutOfFuel { fuel } => {
                write!(
                    f,
                    "out of fuel: the callback ran past its budget of {fuel} units"
                )
            }
            TrapCause::MemoryCap {
                wanted_bytes,
                cap_bytes,
            } => write!(
                f,
                "memory cap: linear memory would grow to {wanted_bytes} bytes (cap {cap_bytes})"
            ),
            TrapCause::Host(fault) => write!(f, "{fault}"),
            TrapCause::Wasm(message) => write!(f, "wasm trap: {message}"),
        }
    }
}

/// Everything that can go wrong while hosting a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarnessError {
    /// The module could not be read, compiled or linked.
    Load(String),
    /// The module is not a proxy-wasm 0.2.x filter.
    NotProxyWasm(String),
    /// A guest callback trapped; the VM is now failed, as in Envoy.
    Trapped {
        callback: &'static str,
        cause: TrapCause,
    },
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false.
    Refused {
        callback: &'static str,
        /// Critical and error lines the guest logged while refusing.
        logs: Vec<String>,
    },
    /// The VM failed earlier; no more callbacks run.
    Failed(String),
    /// The emulator was driven in a way a proxy never would.
    Usage(String),
}

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HarnessError::Load(m) => write!(f, "cannot load the module: {m}"),
            HarnessError::NotProxyWasm(m) => write!(f, "not a proxy-wasm 0.2 module: {m}"),
            HarnessError::Trapped { callback, cause } => {
                write!(f, "`{callback}` was stopped: {cause}")
            }
            HarnessError::Refused { callback, logs } => {
                write!(f, "`{callback}` returned false")?;
                for line in logs {
                    write!(f, "\n  guest: {line}")?;
                }
                Ok(())
            }
            HarnessError::Failed(m) => write!(f, "the VM failed earlier: {m}"),
            HarnessError::Usage(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for HarnessError {}

pub(crate) fn classify(
    callback: &'static str,
    options: &HostOptions,
    error: &wasmtime::Error,
    state: &HostState,
) -> HarnessError {
    if error.downcast_ref::<Trap>().is_some()
        || error.downcast_ref::<HostFault>().is_some()
        || state.cap.exceeded.is_some()
    {
        return HarnessError::Trapped {
            callback,
            cause: classify_cause(options.fuel_per_callback, error, state),
        };
    }
    HarnessError::Load(format!("{error:#}"))
}

pub(crate) fn classify_cause(fuel: u64, error: &wasmtime::Error, state: &HostState) -> TrapCause {
    if let Some(fault) = error.downcast_ref::<HostFault>() {
        return TrapCause::Host(fault.clone());
    }
    if let Some(cap) = error.downcast_ref::<MemoryCapExceeded>() {
        return TrapCause::MemoryCap {
            wanted_bytes: cap.wanted_bytes,
            cap_bytes: cap.cap_bytes,
        };
    }
    if let Some(wanted) = state.cap.exceeded {
        return TrapCause::MemoryCap {
            wanted_bytes: wanted,
            cap_bytes: state.cap.max_bytes,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
        return TrapCause::OutOfFuel { fuel };
    }
    let mut message = format!("{error}");
    if let Some(trap) = error.downcast_ref::<Trap>() {
        message = trap.to_string();
    }
    if let Some(last) = state
        .logs
        .iter()
        .rev()
        .find(|l| l.level == LogLevel::Critical)
    {
        message.push_str(&format!(" (guest logged: {})", last.message));
    }
    TrapCause::Wasm(message)
}
