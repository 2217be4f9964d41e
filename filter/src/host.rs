//! The one file of hostcalls: [`StreamHost`] (one HTTP stream) and
//! [`DocumentHost`] (fetched documents, for the root and HTTP contexts)
//! over proxy-wasm. Host statuses become [`HostError`]s here, once; the
//! core in `policy-sdk` decides what each failure means.

use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use policy_sdk::documents::{DocumentHost, OpsEvent, SharedDataError, StreamDocuments};
use policy_sdk::exchange::{AuditKind, HostError, KeyFetch, KeyProgress, LogLevel};
use policy_sdk::{AuditRecord, Reply, StreamHost};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};

use crate::metrics::Metrics;

/// The filter-state key of the audit line (Envoy stores it as
/// `wasm.warden_audit`).
const AUDIT_PROPERTY: &str = "warden_audit";

/// What one HTTP context needs of the root's state.
pub(crate) struct ProxyHost {
    pub metrics: Option<Rc<Metrics>>,
    /// The fetched documents, shared with the root context.
    pub documents: StreamDocuments,
    /// `filter.audit_filter_state`: audit lines go to filter state, and to
    /// Envoy's log at `debug` only.
    pub audit_filter_state: bool,
}

/// The hostcalls of fetched documents; usable in any context. Counts its
/// operational events in `metrics`, when there are any.
pub(crate) struct Hostcalls<'m> {
    metrics: Option<&'m Metrics>,
}

pub(crate) fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Debug => proxy_wasm::types::LogLevel::Debug,
        LogLevel::Info => proxy_wasm::types::LogLevel::Info,
        LogLevel::Warn => proxy_wasm::types::LogLevel::Warn,
        LogLevel::Error => proxy_wasm::types::LogLevel::Error,
    };
    // A failed log call has nowhere better to be reported.
    let _ = hostcalls::log(level, message);
}

/// A header map, every value checked to be text ([`header_value`]).
///
/// The SDK's `get_map` turns each value into a `String` with a panic for
/// one that is not UTF-8, which HTTP allows (obs-text) and Envoy passes on:
/// a single such header, from any client or upstream, trapped the VM, and
/// every later request on that worker was refused until a reload. Values
/// are read as bytes and checked here; one that is not text makes the
/// whole map unreadable (a request is then refused with 400, a response's
/// body replaced). Names are read by the SDK as text still: Envoy's HTTP/1
/// and HTTP/2 codecs admit only token characters in a name, all ASCII (an
/// end-to-end test sends one that is not).
fn header_map(map: MapType, operation: &'static str) -> Result<Vec<(String, String)>, HostError> {
    hostcalls::get_map_bytes(map)
        .map_err(|status| HostError::new(operation, status))?
        .into_iter()
        .map(|(name, value)| {
            let value = header_value(operation, &name, value)?;
            Ok((name, value))
        })
        .collect()
}

/// A header value read as bytes, as text: one that is not UTF-8 is an
/// unreadable answer to `operation`, never a panic.
fn header_value(operation: &'static str, name: &str, value: Vec<u8>) -> Result<String, HostError> {
    String::from_utf8(value).map_err(|_| {
        HostError::unreadable(operation, format!("the value of `{name}` is not UTF-8"))
    })
}

/// Reads a body buffer: absent (no body) is empty, a failure is an error.
fn body(kind: BufferType, size: usize, operation: &'static str) -> Result<Vec<u8>, HostError> {
    match hostcalls::get_buffer(kind, 0, size) {
        Ok(bytes) => Ok(bytes.unwrap_or_default()),
        Err(status) => Err(HostError::new(operation, status)),
    }
}

/// The proxy's clock since the Unix epoch; zero if it cannot be read.
fn since_epoch() -> Duration {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
}

impl DocumentHost for Hostcalls<'_> {
    fn now_unix_millis(&self) -> u64 {
        u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
    }

    fn shared_data(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        match hostcalls::get_shared_data(key) {
            Ok((value, Some(cas))) => Ok(Some((value.unwrap_or_default(), cas))),
            Ok((_, None)) => Ok(None),
            Err(status) => Err(HostError::new("reading shared data", status)),
        }
    }

    fn set_shared_data(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|status| match status {
            Status::CasMismatch => SharedDataError::CasMismatch,
            status => HostError::new("writing shared data", status).into(),
        })
    }

    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), None, vec![], timeout)
            .map_err(|status| HostError::new("dispatching an HTTP call", status))
    }

    fn http_call_response_header(&mut self, name: &str) -> Result<Option<String>, HostError> {
        const OPERATION: &str = "reading an HTTP-call response header";
        // As bytes: the SDK's text reading panics on a value that is not
        // UTF-8 (see `header_map`).
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
            .map_err(|status| HostError::new(OPERATION, status))?
            .map(|value| header_value(OPERATION, name, value))
            .transpose()
    }

    fn http_call_response_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        body(
            BufferType::HttpCallResponseBody,
            size,
            "reading an HTTP-call response body",
        )
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn report(&mut self, event: &OpsEvent<'_>) {
        if let Some(metrics) = self.metrics {
            metrics.ops(event);
        }
    }
}

impl<'m> Hostcalls<'m> {
    /// The document hostcalls, counting in `metrics` when there are any.
    pub(crate) fn new(metrics: &'m Option<Rc<Metrics>>) -> Self {
        Self {
            metrics: metrics.as_deref(),
        }
    }
}

impl StreamHost for ProxyHost {
    fn now_unix_nanos(&self) -> u128 {
        since_epoch().as_nanos()
    }

    fn request_headers(&mut self) -> Result<Vec<(String, String)>, HostError> {
        header_map(MapType::HttpRequestHeaders, "reading the request headers")
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value)
            .map_err(|s| HostError::new("editing a request header", s))
    }

    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        body(
            BufferType::HttpRequestBody,
            size,
            "reading the request body",
        )
    }

    fn response_headers(&mut self) -> Result<Vec<(String, String)>, HostError> {
        header_map(MapType::HttpResponseHeaders, "reading the response headers")
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value)
            .map_err(|s| HostError::new("editing a response header", s))
    }

    fn response_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        body(
            BufferType::HttpResponseBody,
            size,
            "reading the response body",
        )
    }

    fn replace_response_body(&mut self, size: usize, body: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body)
            .map_err(|s| HostError::new("replacing the response body", s))
    }

    fn dynamic_metadata(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_property(vec!["metadata"])
            .map_err(|status| HostError::new("reading the dynamic metadata", status))
    }

    fn shared_data(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_shared_data(key)
            .map(|(value, _)| value)
            .map_err(|s| HostError::new("reading shared data", s))
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), None)
            .map_err(|s| HostError::new("writing shared data", s))
    }

    fn random_bytes(&mut self, out: &mut [u8]) -> Result<(), HostError> {
        // WASI `random_get`: Envoy's cryptographic random source.
        getrandom::fill(out).map_err(|error| HostError::new("generating random bytes", error))
    }

    fn send_reply(&mut self, reply: &Reply) -> Result<(), HostError> {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        hostcalls::send_http_response(
            u32::from(reply.status),
            headers,
            Some(reply.body.as_bytes()),
        )
        .map_err(|s| HostError::new("sending the local reply", s))
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        hostcalls::resume_http_request().map_err(|s| HostError::new("resuming the request", s))
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn audit(&mut self, record: &AuditRecord, kind: AuditKind) {
        let line = record.to_json_line();
        if self.audit_filter_state {
            // One key: a filtered list's line (the request's record and the
            // list outcome) replaces the request's, so an access logger
            // writes the final record once. (The SDK traps on any status
            // but `Ok`, so there is no error to handle here: a host that
            // refuses filter state fails the request closed; docs/filter.md.)
            let _ = hostcalls::set_property(vec![AUDIT_PROPERTY], Some(line.as_bytes()));
            // The access log is the audit sink: in Envoy's own log the line
            // would be a copy, and the dearest way to write it (about 15 to
            // 25 µs of Envoy's CPU per request at `info` in `make bench`,
            // against none measurable for the buffered access log).
            log(LogLevel::Debug, &line);
        } else {
            log(LogLevel::Info, &line);
        }
        if let Some(metrics) = &self.metrics {
            match kind {
                AuditKind::Decision => metrics.decision(record),
                AuditKind::ListFilter => metrics.list(record),
            }
        }
    }

    fn sync_keys(&mut self, issuer: &str) {
        self.documents
            .sync_keys(&mut Hostcalls::new(&self.metrics), issuer);
    }

    fn start_key_fetch(&mut self, issuer: &str) -> KeyFetch {
        self.documents
            .start_key_fetch(&mut Hostcalls::new(&self.metrics), issuer)
    }

    fn key_fetch_response(&mut self, token: u32, body_size: usize) -> KeyProgress {
        self.documents
            .key_fetch_response(&mut Hostcalls::new(&self.metrics), token, body_size)
    }
}
