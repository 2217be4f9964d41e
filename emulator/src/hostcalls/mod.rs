//! The `env` imports: proxy-wasm ABI v0.2.1 hostcalls as Envoy's cpp-host
//! answers them, one file per ABI area. Each file lists its hostcalls once
//! with [`hostcalls!`](crate::link::hostcalls) and implements each as a
//! function of the same name. Hostcalls return only the statuses the spec
//! lists for them (the Rust SDK panics on any other); `unsupported` traps
//! every import not implemented here, with its name.

mod buffers;
mod context;
mod foreign;
mod headers;
mod http;
mod logging;
mod metrics;
mod properties;
mod shared;
mod timers;
pub(crate) mod unsupported;

use wasmtime::Linker;

use crate::link::R;
use crate::state::HostState;

/// The import module of the proxy-wasm hostcalls.
pub(crate) const MODULES: [&str; 1] = ["env"];

/// Links every `env` hostcall the host implements.
pub(crate) fn define(linker: &mut Linker<HostState>) -> R<()> {
    logging::define(linker)?;
    timers::define(linker)?;
    buffers::define(linker)?;
    headers::define(linker)?;
    properties::define(linker)?;
    http::define(linker)?;
    context::define(linker)?;
    foreign::define(linker)?;
    metrics::define(linker)?;
    shared::define(linker)?;
    Ok(())
}
