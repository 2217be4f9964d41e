//! How the host runs the guest.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::abi::LogLevel;

/// What the host makes of a `Pause` returned from
/// `proxy_on_request_headers` / `proxy_on_response_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderPause {
    /// Envoy's StopIteration, as with `allow_on_headers_stop_iteration:
    /// true` (Envoy ≥ 1.35): only the headers are held; body and trailers
    /// callbacks are delivered as the data arrives.
    #[default]
    Honoured,
    /// Envoy's default for ABI 0.2.x (cpp-host turns the `Pause` into
    /// StopAllIterationAndWatermark): the host delivers no body or trailers
    /// callbacks for that direction and keeps what arrives until the guest
    /// calls `proxy_continue_stream`; then the headers go on, one body
    /// callback carries everything buffered, then the trailers callback.
    /// Istio's `WasmPlugin` and Envoy Gateway cannot change this.
    StopAll,
}

/// How the host runs the guest.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Buffer type 6, read in `proxy_on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// Buffer type 7, read in `proxy_on_configure`.
    pub plugin_configuration: Vec<u8>,
    /// Fuel for each guest callback (about one unit per wasm instruction).
    pub fuel_per_callback: u64,
    /// Cap on the guest's linear memory, in bytes.
    pub memory_limit_bytes: usize,
    /// Wall-clock time the host reports, nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// What `proxy_get_log_level` answers (every line is recorded anyway).
    pub log_level: LogLevel,
    /// Seed of the deterministic `random_get`.
    pub random_seed: u64,
    /// What a `Pause` from a headers callback does (default
    /// [`HeaderPause::Honoured`]).
    pub header_pause: HeaderPause,
}

impl Default for HostOptions {
    fn default() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        Self {
            vm_configuration: Vec::new(),
            plugin_configuration: Vec::new(),
            fuel_per_callback: 2_000_000_000,
            memory_limit_bytes: 128 * 1024 * 1024,
            time_unix_nanos: now,
            log_level: LogLevel::Trace,
            random_seed: 0x5eed,
            header_pause: HeaderPause::default(),
        }
    }
}

impl HostOptions {
    pub fn with_plugin_configuration(mut self, config: impl Into<Vec<u8>>) -> Self {
        self.plugin_configuration = config.into();
        self
    }

    pub fn with_time_unix_seconds(mut self, seconds: u64) -> Self {
        self.time_unix_nanos = seconds.saturating_mul(1_000_000_000);
        self
    }

    pub fn with_fuel_per_callback(mut self, fuel: u64) -> Self {
        self.fuel_per_callback = fuel;
        self
    }

    pub fn with_memory_limit_bytes(mut self, bytes: usize) -> Self {
        self.memory_limit_bytes = bytes;
        self
    }

    /// Chooses what a `Pause` from a headers callback does: Envoy's default
    /// is [`HeaderPause::StopAll`].
    pub fn with_header_pause(mut self, header_pause: HeaderPause) -> Self {
        self.header_pause = header_pause;
        self
    }
}
