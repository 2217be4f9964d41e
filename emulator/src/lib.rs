//! A proxy-wasm host on wasmtime: runs a filter module the way Envoy's
//! cpp-host does (ABI v0.2.1, start-up order, restricted hostcalls while the
//! module initialises, exact-size allocations through
//! `proxy_on_memory_allocate`), and exposes the host's state to tests.
//!
//! The API follows the proxy-wasm Go SDK's `proxytest` emulator: start the
//! plugin, open HTTP contexts, drive headers and bodies, answer HTTP calls,
//! tick, then read what the host saw (local responses, forwarded headers,
//! logs, metrics, properties). Every guest callback runs with a fuel budget
//! and the linear memory is capped, so a runaway guest is stopped and
//! reported instead of hanging the caller.
//!
//! The crate knows nothing of any particular filter. Its parts:
//!
//! * the API: [`FilterModule`] (compile and link once), [`HostOptions`],
//!   [`Emulator`] (drive the guest, read the host's state), [`HarnessError`];
//! * [`abi`]: the numbers of the ABI (statuses, enums, the header-map wire
//!   format);
//! * `hostcalls/`: the `env` imports, one file per ABI area (logging, clock
//!   and tick, buffers, header maps, properties, HTTP streams and calls,
//!   contexts, foreign functions, metrics, shared data), and `unsupported`,
//!   which traps every other import with its name; `wasi`: the WASI subset;
//! * `link`: how a hostcall is linked under its one name, behind Envoy's
//!   phase restrictions; `memory`: reading and writing guest memory;
//! * `state`: what the host keeps between and during callbacks; `fault`: the
//!   faults the host raises inside the guest.

pub mod abi;
mod emulator;
mod error;
mod exports;
mod fault;
mod hostcalls;
mod link;
mod memory;
mod module;
mod options;
mod state;
mod wasi;

pub use abi::{Action, Headers, LogLevel, MetricType};
pub use emulator::{Emulator, GuestCall};
pub use error::{HarnessError, TrapCause};
pub use fault::HostFault;
pub use module::{AbiVersion, FilterModule};
pub use options::{HeaderPause, HostOptions};
pub use state::{HostcallCounts, HttpCall, LocalResponse, LogEntry, MemoryCapExceeded, Metric};
