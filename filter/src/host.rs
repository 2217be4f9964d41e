//! The one file of per-stream hostcalls: [`StreamHost`] over proxy-wasm.
//! Host statuses become [`HostError`]s here, once; the lifecycle in
//! `policy-sdk` decides what each failure means.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use policy_sdk::exchange::{AuditKind, HostError, KeyFetch, KeyProgress, LogLevel};
use policy_sdk::{AuditRecord, Reply, StreamHost, Warden};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use crate::metrics::Metrics;
use crate::remote;

/// What one HTTP context needs of the root's state.
pub(crate) struct ProxyHost {
    pub warden: Option<Rc<Warden>>,
    pub metrics: Option<Rc<Metrics>>,
    pub sources: Rc<[remote::Source]>,
    pub applied: remote::Applied,
    /// Key fetches this stream started, by call token.
    pub fetches: HashMap<u32, remote::Fetch>,
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

/// Reads a body buffer: absent (no body) is empty, a failure is an error.
fn body(kind: BufferType, size: usize, operation: &'static str) -> Result<Vec<u8>, HostError> {
    match hostcalls::get_buffer(kind, 0, size) {
        Ok(bytes) => Ok(bytes.unwrap_or_default()),
        Err(status) => Err(HostError::new(operation, status)),
    }
}

impl ProxyHost {
    fn source_for(&self, issuer: &str) -> Option<remote::Source> {
        self.sources
            .iter()
            .find(|s| {
                s.kind
                    == remote::Kind::Keys {
                        issuer: issuer.to_owned(),
                    }
            })
            .cloned()
    }
}

impl StreamHost for ProxyHost {
    fn now_unix_nanos(&self) -> u128 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }

    fn request_headers(&mut self) -> Result<Vec<(String, String)>, HostError> {
        hostcalls::get_map(MapType::HttpRequestHeaders)
            .map_err(|s| HostError::new("reading the request headers", s))
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

    fn response_header(&mut self, name: &str) -> Result<Option<String>, HostError> {
        hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
            .map_err(|s| HostError::new("reading a response header", s))
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

    fn shared_data(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        hostcalls::get_shared_data(key)
            .map(|(value, _)| value)
            .map_err(|s| HostError::new("reading shared data", s))
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), None)
            .map_err(|s| HostError::new("writing shared data", s))
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
        log(LogLevel::Info, &record.to_json_line());
        if let (Some(metrics), AuditKind::Decision) = (&self.metrics, kind) {
            metrics.count(record.is_allowed(), record.actor_type);
        }
    }

    fn refresh_documents(&mut self) {
        let Some(warden) = &self.warden else {
            return;
        };
        for source in self
            .sources
            .iter()
            .filter(|s| s.kind == remote::Kind::Revocations)
        {
            remote::sync(warden, source, &self.applied);
        }
    }

    fn sync_keys(&mut self, issuer: &str) {
        if let (Some(warden), Some(source)) = (&self.warden, self.source_for(issuer)) {
            remote::sync(warden, &source, &self.applied);
        }
    }

    fn start_key_fetch(&mut self, issuer: &str, now_unix_seconds: u64) -> KeyFetch {
        let Some(source) = self.source_for(issuer) else {
            return KeyFetch::Unavailable(String::new());
        };
        if !remote::claim(
            &source,
            remote::Trigger::UnknownKey,
            now_unix_seconds,
            source.min_interval_seconds,
        ) {
            return KeyFetch::Unavailable(String::new());
        }
        match remote::start(&source) {
            Ok((token, fetch)) => {
                self.fetches.insert(token, fetch);
                KeyFetch::Started(token)
            }
            Err(reason) => {
                KeyFetch::Unavailable(format!("fetch of {} failed: {reason}", source.label()))
            }
        }
    }

    fn key_fetch_response(&mut self, token: u32, body_size: usize) -> KeyProgress {
        let (Some(fetch), Some(warden)) = (self.fetches.remove(&token), self.warden.clone()) else {
            return KeyProgress::Failed("an answer to a fetch this stream did not start".into());
        };
        match remote::on_response(&warden, fetch, body_size, &self.applied) {
            remote::Progress::Next(token, fetch) => {
                self.fetches.insert(token, fetch);
                KeyProgress::Pending(token)
            }
            remote::Progress::Loaded(summary) => KeyProgress::Loaded(summary),
            remote::Progress::Failed(reason) => KeyProgress::Failed(reason),
        }
    }
}
