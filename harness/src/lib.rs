//! The Warden harness: a proxy-wasm host on wasmtime ([`host`]) that runs the
//! built filter exactly as Envoy would, the filter-level driver the CLI and
//! tests use ([`filter`]), policy test suites ([`suite`]), and the CLI's
//! policy loading with located diagnostics ([`load`]) and Envoy rendering
//! ([`envoy`]).

pub mod envoy;
pub mod filter;
pub mod host;
pub mod load;
pub mod locate;
pub mod suite;
