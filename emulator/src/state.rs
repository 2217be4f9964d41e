//! What the host keeps between and during guest callbacks.

use std::collections::{BTreeMap, HashMap};

use wasmtime::{Memory, ResourceLimiter, TypedFunc};

use crate::abi::{Headers, LogLevel, MetricType};
use crate::options::HostOptions;

/// One `proxy_log` line (or a line the guest wrote to stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub level: LogLevel,
    pub message: String,
    /// The context the guest was running in.
    pub context_id: u32,
}

/// A local reply sent with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub details: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub grpc_status: i32,
}

impl LocalResponse {
    /// The first header of that name (lower-case names).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The response headers the client receives, as Envoy builds a local
    /// reply: `:status`, the guest's headers, then `content-length` and
    /// (unless the guest set one) `content-type: text/plain` for a body.
    pub fn wire_headers(&self) -> Headers {
        let mut headers = vec![(":status".to_owned(), self.status.to_string())];
        headers.extend(
            self.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
        if !self.body.is_empty() {
            headers.retain(|(k, _)| k != "content-length");
            headers.push(("content-length".to_owned(), self.body.len().to_string()));
            if self.header("content-type").is_none() {
                headers.push(("content-type".to_owned(), "text/plain".to_owned()));
            }
        }
        headers
    }
}

/// A `proxy_http_call` waiting for [`Emulator::respond_http_call`](crate::Emulator::respond_http_call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub token: u32,
    /// The context that dispatched it (its callback receives the answer).
    pub context_id: u32,
    pub upstream: String,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
    pub timeout_ms: u32,
}

/// One metric as defined by the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricType,
    /// Counter and gauge value; for histograms, the last recorded value.
    pub value: i128,
    /// Histogram samples.
    pub samples: Vec<u64>,
}

/// Which way an HTTP stream's data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
}

/// One direction of an HTTP stream, from the host's point of view.
#[derive(Debug, Clone, Default)]
pub(crate) struct Flow {
    /// The header and trailer maps as the host holds them (the guest reads
    /// and edits these while they are live, see `headers_live`).
    pub headers: Option<Headers>,
    pub trailers: Option<Headers>,
    /// Body bytes the host holds: buffered because the guest paused on them,
    /// or waiting while the headers are stopped (StopAll).
    pub buffer: Vec<u8>,
    /// Set while this direction's body callback runs: the guest sees
    /// `buffer` (Envoy's current chunk, or the whole buffer when buffering).
    pub in_body: bool,
    /// The last body callback returned `Pause` (Envoy's
    /// `buffering_*_body_`): from any callback the guest reads and edits the
    /// buffered body until it goes on.
    pub buffering: bool,
    /// The headers are held (the guest paused on them).
    pub held: bool,
    /// The headers were paused as StopAllIterationAndWatermark: the host
    /// delivers no body or trailers callbacks, and keeps what arrives, until
    /// the guest continues the stream.
    pub stopped_all: bool,
    /// Body data (possibly empty, with end of stream) arrived while stopped.
    pub body_waiting: bool,
    /// Trailers arrived while stopped; their callback is still owed.
    pub trailers_waiting: bool,
    /// The guest paused on the trailers.
    pub trailers_held: bool,
    /// The peer ended this direction (end of stream or trailers).
    pub ended: bool,
    /// The guest can reach the header map (Envoy keeps the pointer from the
    /// headers callback until the headers continue).
    pub headers_live: bool,
    /// The guest can reach the trailer map (from the trailers callback until
    /// they continue).
    pub trailers_live: bool,
    /// `proxy_continue_stream` was called; like Envoy (which defers
    /// `continueDecoding`/`continueEncoding` until the callback returns),
    /// the host acts on it after the callback.
    pub continue_requested: bool,
    /// What went on: to the upstream for the request, to the client for the
    /// response (for the response, a local reply that replaced it).
    pub sent_headers: Option<Headers>,
    pub sent_body: Vec<u8>,
    pub sent_trailers: Option<Headers>,
}

impl Flow {
    /// Held headers go on; the guest no longer reaches their map.
    pub fn release_headers(&mut self) {
        if self.sent_headers.is_none() {
            self.sent_headers = self.headers.clone();
        }
        self.held = false;
        self.headers_live = false;
    }

    /// Held headers, the buffered body and held trailers go on (Envoy's
    /// `commonContinue` when the filter is not stopped for all frames).
    fn release(&mut self) {
        if self.headers.is_some() {
            self.release_headers();
        }
        let buffered = std::mem::take(&mut self.buffer);
        self.sent_body.extend_from_slice(&buffered);
        self.buffering = false;
        if self.trailers.is_some() && !self.trailers_waiting {
            if self.sent_trailers.is_none() {
                self.sent_trailers = self.trailers.clone();
            }
            self.trailers_held = false;
            self.trailers_live = false;
        }
    }

    /// Drops everything the host held (the stream was answered or reset).
    fn discard(&mut self) {
        self.buffer.clear();
        self.held = false;
        self.stopped_all = false;
        self.buffering = false;
        self.body_waiting = false;
        self.trailers_waiting = false;
        self.trailers_held = false;
        self.continue_requested = false;
    }
}

/// Where an HTTP stream stands, from the host's point of view.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stream {
    pub request: Flow,
    pub response: Flow,
    pub local_response: Option<LocalResponse>,
    /// The stream was reset (also by the guest's `proxy_close_stream`):
    /// nothing more goes on either way.
    pub reset: bool,
}

impl Stream {
    pub fn flow(&mut self, direction: Direction) -> &mut Flow {
        match direction {
            Direction::Request => &mut self.request,
            Direction::Response => &mut self.response,
        }
    }

    /// After a local response or a reset nothing more goes on, either way,
    /// and nothing is held.
    pub fn answered(&self) -> bool {
        self.local_response.is_some() || self.reset
    }

    /// The guest continued `direction`: held headers, the buffered body and
    /// held trailers go on.
    pub fn release(&mut self, direction: Direction) {
        if !self.answered() {
            self.flow(direction).release();
        }
    }

    /// The guest paused on `direction`'s headers; with `stop_all` the host
    /// also stops delivering that direction's body and trailers.
    pub fn hold(&mut self, direction: Direction, stop_all: bool) {
        if !self.answered() {
            let flow = self.flow(direction);
            flow.held = true;
            flow.stopped_all = stop_all;
        }
    }

    /// The guest paused on a body chunk: the host keeps buffering it.
    pub fn buffer_body(&mut self, direction: Direction) {
        if !self.answered() {
            self.flow(direction).buffering = true;
        }
    }

    /// The guest paused on the trailers.
    pub fn hold_trailers(&mut self, direction: Direction) {
        if !self.answered() {
            self.flow(direction).trailers_held = true;
        }
    }

    /// A local reply: Envoy sends it (after the callback) in place of the
    /// upstream's response while no response headers went to the client;
    /// once they did, all it can do is reset the stream. Either way nothing
    /// more goes on and nothing is held.
    pub fn answer_locally(&mut self, reply: LocalResponse) {
        if self.answered() {
            return;
        }
        self.request.discard();
        self.response.discard();
        if self.response.sent_headers.is_some() {
            self.reset = true;
            return;
        }
        self.response.sent_headers = Some(reply.wire_headers());
        self.response.sent_body = reply.body.clone();
        self.response.sent_trailers = None;
        self.local_response = Some(reply);
    }

    /// The stream is reset (by the client, the upstream or the guest).
    pub fn reset(&mut self) {
        self.reset = true;
        self.request.discard();
        self.response.discard();
    }
}

/// What the guest is allowed to call right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `_initialize` / `main`: only logging, clocks, randomness, environment.
    Initializing,
    /// `proxy_on_memory_allocate` called by the host: logging and clocks.
    Allocating,
    /// A regular callback.
    Callback,
}

/// Caps the guest's linear memory; growing past it traps.
#[derive(Debug, Clone)]
pub(crate) struct MemoryCap {
    pub max_bytes: usize,
    pub exceeded: Option<usize>,
}

/// The error a refused memory growth raises inside the guest.
#[derive(Debug, Clone, Copy)]
pub struct MemoryCapExceeded {
    pub wanted_bytes: usize,
    pub cap_bytes: usize,
}

impl std::fmt::Display for MemoryCapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "linear memory would grow to {} bytes, over the cap of {} bytes",
            self.wanted_bytes, self.cap_bytes
        )
    }
}

impl std::error::Error for MemoryCapExceeded {}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = Some(desired);
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                wanted_bytes: desired,
                cap_bytes: self.max_bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// All host state, owned by the wasmtime store.
pub(crate) struct HostState {
    pub cap: MemoryCap,
    pub phase: Phase,
    /// The callback now running (for diagnostics).
    pub callback: &'static str,
    /// The context hostcalls act on (`proxy_set_effective_context` moves it).
    pub context_id: u32,
    pub root_id: u32,
    pub vm_configuration: Vec<u8>,
    pub plugin_configuration: Vec<u8>,
    pub in_vm_start: bool,
    pub in_configure: bool,
    pub streams: HashMap<u32, Stream>,
    pub logs: Vec<LogEntry>,
    pub log_level: LogLevel,
    pub metrics: Vec<Metric>,
    pub properties: BTreeMap<Vec<String>, Vec<u8>>,
    pub shared_data: HashMap<String, (Vec<u8>, u32)>,
    pub http_calls: BTreeMap<u32, HttpCall>,
    pub next_token: u32,
    /// The answer being delivered by `proxy_on_http_call_response`.
    pub call_response: Option<(Headers, Vec<u8>, Headers)>,
    pub tick_period_ms: u32,
    pub realtime_nanos: u64,
    pub monotonic_nanos: u64,
    pub rng: u64,
    pub done_called: bool,
    pub memory: Option<Memory>,
    pub allocate: Option<TypedFunc<i32, i32>>,
    /// The hostcalls the guest made, by the context they acted on and by
    /// qualified import name (`env.proxy_log`).
    pub hostcalls: HashMap<u32, HostcallCounts>,
}

/// Hostcalls by qualified import name (`env.proxy_get_header_map_pairs`,
/// `wasi_snapshot_preview1.random_get`), and how many times each was made.
pub type HostcallCounts = BTreeMap<&'static str, u64>;

impl HostState {
    /// The state of a VM about to be instantiated.
    pub fn new(options: &HostOptions) -> Self {
        Self {
            cap: MemoryCap {
                max_bytes: options.memory_limit_bytes,
                exceeded: None,
            },
            phase: Phase::Initializing,
            callback: "",
            context_id: 0,
            root_id: 1,
            vm_configuration: options.vm_configuration.clone(),
            plugin_configuration: options.plugin_configuration.clone(),
            in_vm_start: false,
            in_configure: false,
            streams: Default::default(),
            logs: Vec::new(),
            log_level: options.log_level,
            metrics: Vec::new(),
            properties: Default::default(),
            shared_data: Default::default(),
            http_calls: Default::default(),
            next_token: 0,
            call_response: None,
            tick_period_ms: 0,
            realtime_nanos: options.time_unix_nanos,
            monotonic_nanos: 1_000_000_000,
            rng: options.random_seed,
            done_called: false,
            memory: None,
            allocate: None,
            hostcalls: HashMap::new(),
        }
    }

    /// Counts one hostcall against the context it acts on.
    pub fn count_hostcall(&mut self, hostcall: &'static str) {
        let counts = self.hostcalls.entry(self.context_id).or_default();
        *counts.entry(hostcall).or_insert(0) += 1;
    }

    pub fn stream(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.context_id)
    }

    pub fn log(&mut self, level: LogLevel, message: String) {
        let context_id = self.context_id;
        self.logs.push(LogEntry {
            level,
            message,
            context_id,
        });
    }

    /// splitmix64: deterministic bytes for `random_get`.
    pub fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
