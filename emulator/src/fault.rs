//! Faults the host raises inside the guest (they trap the callback).

/// Why the host trapped a hostcall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFault {
    /// The host does not implement this import.
    Unsupported { hostcall: String },
    /// The hostcall is not allowed in this phase (Envoy traps the same way,
    /// with `restricted_callback`).
    Restricted {
        hostcall: String,
        phase: &'static str,
    },
    /// The guest called `proc_exit`.
    ProcExit { code: i32 },
    /// The guest called a hostcall where it makes no sense (for example
    /// `proxy_send_local_response` outside an HTTP context).
    Misuse { hostcall: String, message: String },
}

impl std::fmt::Display for HostFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostFault::Unsupported { hostcall } => {
                write!(
                    f,
                    "unsupported hostcall `{hostcall}` (the harness does not implement it)"
                )
            }
            HostFault::Restricted { hostcall, phase } => write!(
                f,
                "restricted_callback: `{hostcall}` is not allowed while {phase} runs (Envoy refuses it too)"
            ),
            HostFault::ProcExit { code } => write!(f, "the guest called `proc_exit({code})`"),
            HostFault::Misuse { hostcall, message } => write!(f, "`{hostcall}`: {message}"),
        }
    }
}

impl std::error::Error for HostFault {}

impl HostFault {
    /// A [`HostFault::Misuse`] of `hostcall`, as the error that traps it.
    pub(crate) fn misuse(hostcall: &str, message: &str) -> wasmtime::Error {
        wasmtime::Error::new(HostFault::Misuse {
            hostcall: hostcall.to_owned(),
            message: message.to_owned(),
        })
    }
}
