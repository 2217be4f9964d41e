//! The Warden harness: the filter-level driver the CLI and tests use
//! ([`filter`]) over the proxy-wasm emulator ([`host`], the
//! `proxy-wasm-emulator` crate, which runs the built filter exactly as Envoy
//! would), policy test suites ([`suite`]), hostcall counts of reference
//! requests ([`hostcalls`]), and the CLI's policy loading with
//! located diagnostics ([`load`]), Envoy rendering ([`envoy`]), and the
//! module the CLI embeds ([`embedded`]).

pub mod cases;
pub mod embedded;
pub mod envoy;
pub mod filter;
pub mod hostcalls;
pub mod load;
pub mod locate;
pub mod suite;

/// The proxy-wasm host on wasmtime, re-exported under its old path
/// (`warden_harness::host::Emulator`, …).
pub use proxy_wasm_emulator as host;
