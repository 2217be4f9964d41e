//! Warden's proxy-wasm filter: thin glue between proxy callbacks and the
//! core in `policy-sdk`. Each HTTP stream is a [`policy_sdk::Exchange`]
//! (the request lifecycle and every decision) acting through [`ProxyHost`]
//! (the hostcalls, in `host.rs`). The root context compiles the
//! configuration and drives a [`Refresher`] that keeps fetched documents
//! fresh.

mod host;
mod metrics;
mod streams;

use std::rc::Rc;

use policy_sdk::documents::{Refresher, StreamDocuments};
use policy_sdk::{Exchange, Flow, Warden};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use host::{Hostcalls, ProxyHost};
use metrics::Metrics;
use streams::OpenStream;

/// Build identity logged at VM start: `warden-filter VERSION (git HASH)`.
/// `warden version` reads it back from this log line, so keep the shape.
/// The hash comes from `build.rs` (`unknown` when built outside git).
const BUILD: &str = concat!(
    env!("CARGO_PKG_NAME"),
    " ",
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("WARDEN_GIT_HASH"),
    ")"
);

proxy_wasm::main! {{
    // Only logging set-up here: Envoy allows no other hostcalls while the
    // module initialises. Metrics and configuration belong to the root context.
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(WardenRoot::default()) });
}}

/// 16 hex digits from the host's random source (WASI `random_get`), or from
/// the clock if it has none: the prefix then still differs between VMs
/// started at different nanoseconds.
fn request_id_prefix() -> String {
    let mut bytes = [0_u8; 8];
    let seed = match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_be_bytes(bytes),
        Err(error) => {
            log(
                LogLevel::Warn,
                &format!(
                    "warden: no random source ({error}); request ids are seeded from the clock"
                ),
            );
            hostcalls::get_current_time()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64)
        }
    };
    format!("{seed:016x}")
}

/// Warden's id for a stream: the VM's random prefix, then the context id in
/// eight lower-case hex digits. Written by hand: `format!` and its
/// formatting machinery were a noticeable part of a cached-token request.
fn request_id(prefix: &str, context_id: u32) -> String {
    let mut id = String::with_capacity(prefix.len() + 8);
    id.push_str(prefix);
    for place in (0..8).rev() {
        let nibble = (context_id >> (4 * place)) & 0xf;
        id.push(char::from_digit(nibble, 16).unwrap_or('0'));
    }
    id
}

/// The size of this VM's Wasm linear memory (the only memory a module
/// has: heap, stack and data), in bytes.
fn linear_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    let pages = core::arch::wasm32::memory_size::<0>();
    // The filter is only built for Wasm; `cargo clippy --workspace` also
    // checks it for the build machine, which has no linear memory.
    #[cfg(not(target_arch = "wasm32"))]
    let pages = 0_usize;
    const PAGE_BYTES: u64 = 64 * 1024;
    u64::try_from(pages)
        .unwrap_or(u64::MAX)
        .saturating_mul(PAGE_BYTES)
}

fn log(level: LogLevel, message: &str) {
    // A failed log call has nowhere better to be reported.
    let _ = hostcalls::log(level, message);
}

/// The root context: compiles the plugin configuration once and shares the
/// result with every HTTP context; keeps fetched documents (key sets,
/// revocation list) fresh and reports the token cache's lookups on a timer.
#[derive(Default)]
struct WardenRoot {
    /// Starts every request id this VM gives (16 hex digits, random per VM):
    /// with the stream's context id, unique across the VMs of every worker.
    request_id_prefix: String,
    warden: Option<Rc<Warden>>,
    metrics: Option<Rc<Metrics>>,
    /// Fetched documents; shared with every HTTP context.
    documents: Refresher,
}

/// How often the root context looks at its fetched documents (and reports
/// the token cache's lookups).
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

impl Context for WardenRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let mut host = Hostcalls::new(&self.metrics);
        self.documents
            .on_http_call_response(&mut host, token_id, body_size);
    }
}

impl RootContext for WardenRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        log(LogLevel::Info, &format!("{BUILD} starting"));
        self.request_id_prefix = request_id_prefix();
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        ) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                log(
                    LogLevel::Critical,
                    "warden: no plugin configuration; refusing to start (fail closed)",
                );
                return false;
            }
            Err(status) => {
                log(
                    LogLevel::Critical,
                    &format!("warden: cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            log(
                LogLevel::Critical,
                "warden: plugin configuration is not UTF-8",
            );
            return false;
        };
        match Warden::from_json(text) {
            Ok(warden) => {
                log(
                    LogLevel::Info,
                    &format!(
                        "warden: policy {} loaded ({} rules)",
                        warden.version(),
                        warden.rule_count()
                    ),
                );
                let metrics = self.metrics.get_or_insert_with(Rc::default);
                metrics.policy_loaded(warden.version(), warden.rule_count());
                metrics.vm_memory(linear_memory_bytes());
                // Without configured session keys, the host's key is made
                // now rather than by the first session, so workers starting
                // together settle on one before any session is sealed.
                if warden.settings().bind_sessions && warden.session_keys().is_empty() {
                    let mut host = ProxyHost {
                        metrics: None,
                        documents: StreamDocuments::default(),
                        audit_filter_state: false,
                    };
                    if let Err(error) = policy_sdk::exchange::host_session_key(&mut host) {
                        log(
                            LogLevel::Critical,
                            &format!("warden: cannot set up the session key: {error}"),
                        );
                        return false;
                    }
                }
                // The new configuration starts without fetched documents:
                // the copies in shared data are applied at once.
                let warden = Rc::new(warden);
                let mut host = Hostcalls::new(&self.metrics);
                self.documents.configure(&mut host, warden.clone());
                self.warden = Some(warden);
                // Every configuration ticks: fetched documents are kept
                // fresh on the timer, and the token cache's lookups are
                // counted on it rather than per request.
                if let Err(status) = hostcalls::set_tick_period(TICK) {
                    log(
                        LogLevel::Critical,
                        &format!("warden: cannot set the tick period: {status:?}"),
                    );
                    return false;
                }
                true
            }
            Err(error) => {
                let help = error
                    .help()
                    .map(|h| format!(" (help: {h})"))
                    .unwrap_or_default();
                log(
                    LogLevel::Critical,
                    &format!("warden: invalid configuration: {error}{help}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let mut host = Hostcalls::new(&self.metrics);
        self.documents.tick(&mut host);
        // Envoy's main thread runs a VM of its own that ticks but serves no
        // stream: only the workers' VMs (a peak above 0) report their
        // memory, so the one gauge they share is a worker's.
        let peak = streams::peak();
        if let Some(metrics) = self.metrics.as_ref().filter(|_| peak > 0) {
            metrics.vm_memory(linear_memory_bytes());
            metrics.vm_streams_peak(peak);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Warden's own id for the request: the client chooses `x-request-id`
        // (Envoy keeps a client's id from an internal address), so audit
        // lines and denials are keyed by this one.
        let request_id = request_id(&self.request_id_prefix, context_id);
        Some(Box::new(WardenHttp {
            _open: streams::open(),
            exchange: Exchange::new(self.warden.clone()).with_request_id(request_id),
            host: ProxyHost {
                metrics: self.metrics.clone(),
                documents: self.documents.stream(),
                audit_filter_state: self
                    .warden
                    .as_ref()
                    .is_some_and(|w| w.settings().audit_filter_state),
            },
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One HTTP stream: the lifecycle in `policy-sdk`, and the hostcalls it
/// acts through. Every callback forwards to the exchange; none answers on
/// its own.
struct WardenHttp {
    exchange: Exchange,
    host: ProxyHost,
    /// Counts the stream as open until the host deletes its context.
    _open: OpenStream,
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

impl Context for WardenHttp {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        self.exchange
            .on_http_call_response(&mut self.host, token_id, body_size);
    }

    fn on_done(&mut self) -> bool {
        self.exchange.on_done(&mut self.host);
        true
    }
}

impl HttpContext for WardenHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(
            self.exchange
                .on_request_headers(&mut self.host, end_of_stream),
        )
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.exchange
                .on_request_body(&mut self.host, body_size, end_of_stream),
        )
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.exchange.on_request_trailers(&mut self.host))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(
            self.exchange
                .on_response_headers(&mut self.host, end_of_stream),
        )
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        action(
            self.exchange
                .on_response_body(&mut self.host, body_size, end_of_stream),
        )
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        action(self.exchange.on_response_trailers(&mut self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn request_ids_are_the_prefix_and_eight_hex_digits() {
        for context_id in [0, 1, 0xf, 0x10, 0xabc, 0x89ab_cdef, u32::MAX] {
            assert_eq!(
                request_id("5f3a", context_id),
                format!("5f3a{context_id:08x}")
            );
        }
        assert_eq!(request_id("", 2), "00000002");
    }
}
