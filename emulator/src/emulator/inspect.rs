//! What the host saw: the state a test reads after driving the guest.

use super::{Emulator, GuestCall};
use crate::abi::{Headers, LogLevel};
use crate::options::HeaderPause;
use crate::state::{HostcallCounts, LocalResponse, LogEntry, Metric};

/// What [`Emulator::hostcalls`] answers for a context that made none.
static NO_HOSTCALLS: HostcallCounts = HostcallCounts::new();

impl Emulator {
    /// [`was_reset`](Self::was_reset)) and this stays `None`.
    pub fn local_response(&self, id: u32) -> Option<&LocalResponse> {
        self.stream(id).ok()?.local_response.as_ref()
    }

    /// The request headers as forwarded upstream (what the guest left in the
    /// map when the request continued); `None` while held or after a local
    /// response.
    pub fn upstream_request_headers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.request.sent_headers.as_ref()
    }

    /// The request trailers as forwarded upstream; `None` while held or
    /// when there were none.
    pub fn upstream_request_trailers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.request.sent_trailers.as_ref()
    }

    /// The response trailers as forwarded to the client.
    pub fn downstream_response_trailers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.response.sent_trailers.as_ref()
    }

    /// True while the response headers are held (the guest paused).
    pub fn response_held(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.response.held)
    }

    /// True while the host holds the request for a headers `Pause` under
    /// [`HeaderPause::StopAll`]: no body or trailers callbacks run until
    /// the guest continues.
    pub fn request_stopped(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.request.stopped_all)
    }

    /// True while the host holds the response that way.
    pub fn response_stopped(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.response.stopped_all)
    }

    /// True once the guest reset the stream: with `proxy_close_stream`, or
    /// with a local reply after the response headers had gone to the client
    /// (all Envoy can do then). Nothing more goes on either way; end the
    /// stream with [`complete`](Self::complete) or [`reset`](Self::reset).
    pub fn was_reset(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.reset)
    }

    /// The callbacks the host delivered on HTTP context `id`, in order, by
    /// export name (`proxy_on_context_create`, `proxy_on_request_headers`,
    /// …, `proxy_on_http_call_response` for calls it dispatched, …,
    /// `proxy_on_delete`). Kept after the stream ends, until
    /// [`clear_logs`](Self::clear_logs).
    pub fn callbacks(&self, id: u32) -> Vec<&'static str> {
        self.guest_calls(id).iter().map(|c| c.callback).collect()
    }

    /// The callbacks delivered on HTTP context `id`, with their arguments
    /// and what the guest returned.
    pub fn guest_calls(&self, id: u32) -> &[GuestCall] {
        self.calls.get(&id).map(Vec::as_slice).unwrap_or_default()
    }

    /// What a `Pause` from a headers callback does in this host.
    pub fn header_pause(&self) -> HeaderPause {
        self.header_pause
    }

    /// The request body bytes forwarded upstream so far.
    pub fn upstream_request_body(&self, id: u32) -> Option<&[u8]> {
        Some(&self.stream(id).ok()?.request.sent_body)
    }

    /// The response headers the client got: the upstream's as the guest
    /// forwarded them, or those of a local reply that replaced them.
    pub fn downstream_response_headers(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.response.sent_headers.as_ref()
    }

    /// The response body bytes the client got so far (a local reply's body
    /// once one replaced the upstream's response).
    pub fn downstream_response_body(&self, id: u32) -> Option<&[u8]> {
        Some(&self.stream(id).ok()?.response.sent_body)
    }

    /// The request headers as the host holds them now.
    pub fn request_header_map(&self, id: u32) -> Option<&Headers> {
        self.stream(id).ok()?.request.headers.as_ref()
    }

    /// True while the request headers are held (the guest paused).
    pub fn request_held(&self, id: u32) -> bool {
        self.stream(id).is_ok_and(|s| s.request.held)
    }

    /// The keys of the proxy's shared data (every VM's), sorted.
    pub fn shared_data_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .store
            .data()
            .shared_data
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Every line the guest logged (`proxy_log`, stdout, stderr), in order.
    pub fn logs(&self) -> &[LogEntry] {
        &self.store.data().logs
    }

    /// The messages logged at exactly `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&str> {
        self.logs()
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.as_str())
            .collect()
    }

    /// Forgets the recorded log lines, and the callbacks and hostcall
    /// counts recorded for HTTP contexts that have ended.
    pub fn clear_logs(&mut self) {
        let root = self.root_id();
        let state = self.store.data_mut();
        state.logs.clear();
        let streams = &state.streams;
        self.calls.retain(|id, _| streams.contains_key(id));
        state
            .hostcalls
            .retain(|id, _| *id == root || streams.contains_key(id));
    }

    /// The hostcalls the guest made while acting on context `id` (an HTTP
    /// context, or the root context's id for ticks, configuration and the
    /// answers to its own HTTP calls), by qualified import name
    /// (`env.proxy_get_header_map_pairs`,
    /// `wasi_snapshot_preview1.clock_time_get`), each with how many times.
    /// A call counts against the context it acts on: after
    /// `proxy_set_effective_context`, the one it moved to. Only calls the
    /// host answered count (not one refused in a restricted phase). Kept
    /// after the stream ends, until [`clear_logs`](Self::clear_logs) or
    /// [`clear_hostcalls`](Self::clear_hostcalls).
    pub fn hostcalls(&self, id: u32) -> &HostcallCounts {
        self.store
            .data()
            .hostcalls
            .get(&id)
            .unwrap_or(&NO_HOSTCALLS)
    }

    /// Forgets every hostcall count (every context's).
    pub fn clear_hostcalls(&mut self) {
        self.store.data_mut().hostcalls.clear();
    }

    /// The value of the metric named `name`, if the guest defined it.
    pub fn metric(&self, name: &str) -> Option<i128> {
        self.metrics()
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    pub fn metrics(&self) -> &[Metric] {
        &self.store.data().metrics
    }

    /// A property, as the guest set it or as the test provided it.
    pub fn property(&self, path: &[&str]) -> Option<&[u8]> {
        let key: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        self.store.data().properties.get(&key).map(Vec::as_slice)
    }

    /// Provides a property the guest can read with `proxy_get_property`.
    pub fn set_property(&mut self, path: &[&str], value: impl Into<Vec<u8>>) {
        let key = path.iter().map(|s| (*s).to_owned()).collect();
        self.store.data_mut().properties.insert(key, value.into());
    }

    /// Fuel the last guest callback used (about one unit per instruction).
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel_used
    }

    /// Fuel every guest callback so far used together: what a stretch of
    /// callbacks cost is the difference of two readings. Deterministic,
    /// unlike time: a Wasm instruction count (wasmtime charges about one
    /// unit per operator).
    pub fn fuel_used_total(&self) -> u64 {
        self.fuel_used_total
    }

    /// The guest's linear memory size in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map(|m| m.data_size(&self.store))
            .unwrap_or_default()
    }

    /// Why the VM failed, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}
