//! An in-memory host for driving an [`Exchange`] natively: the one driver
//! the gate tests, the native scenario runner and the benchmarks share.
//!
//! It keeps what a proxy keeps per stream (header maps, buffered bodies,
//! what went on, the local reply) and honours [`Flow`] the way Envoy does:
//! `Continue` lets held headers, the buffered body and trailers go on;
//! `Pause` holds them. With [`HeaderPause::StopAll`] it also reproduces
//! Envoy without `allow_on_headers_stop_iteration`: a pause from a headers
//! callback stops the body and trailers callbacks until the filter resumes.

use std::collections::BTreeMap;

use super::Exchange;
use super::host::{AuditKind, Flow, HostError, KeyFetch, KeyProgress, LogLevel, StreamHost};
use crate::audit::AuditRecord;
use crate::gate::Reply;

/// How the host treats a pause returned from a headers callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderPause {
    /// Envoy ≥ 1.35 with `allow_on_headers_stop_iteration: true`: only the
    /// headers are held; body callbacks go on.
    #[default]
    Honoured,
    /// Every other host: the pause becomes stop-all; no body or trailers
    /// callback until the filter resumes.
    StopAll,
}

/// One direction of a stream, as the host holds it.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    /// The header map (the filter's edits applied).
    pub headers: Vec<(String, String)>,
    /// Body bytes held by the host.
    pub buffer: Vec<u8>,
    pub trailers: Option<Vec<(String, String)>>,
    /// Stopped by a translated header pause: callbacks wait for a resume.
    stopped_all: bool,
    /// The body ended (end of stream seen, or trailers).
    ended: bool,
    /// What went on (upstream for the request, to the client for the
    /// response).
    pub sent_headers: Option<Vec<(String, String)>>,
    pub sent_body: Vec<u8>,
    pub sent_trailers: Option<Vec<(String, String)>>,
}

impl Direction {
    /// Held headers, the buffered body and any trailers that arrived go on.
    fn release(&mut self) {
        self.send_headers();
        let buffered = std::mem::take(&mut self.buffer);
        self.sent_body.extend_from_slice(&buffered);
        if self.trailers.is_some() {
            self.sent_trailers.clone_from(&self.trailers);
        }
    }

    fn send_headers(&mut self) {
        if self.sent_headers.is_none() {
            self.sent_headers = Some(self.headers.clone());
        }
    }

    fn set_header(&mut self, name: &str, value: Option<&str>) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            self.headers.push((name.to_owned(), value.to_owned()));
        }
    }
}

/// A key fetch the test answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFetch {
    pub issuer: String,
    pub token: u32,
}

/// The in-memory host of one stream.
#[derive(Debug, Default)]
pub struct MemoryHost {
    pub now_unix_nanos: u128,
    pub header_pause: HeaderPause,
    pub request: Direction,
    pub response: Direction,
    pub shared: BTreeMap<String, Vec<u8>>,
    /// Warden's local reply, if it sent one.
    pub reply: Option<Reply>,
    pub audits: Vec<(AuditRecord, AuditKind)>,
    pub logs: Vec<(LogLevel, String)>,
    /// Operations (as named in [`HostError::operation`]) that fail.
    pub failing: Vec<&'static str>,
    /// Operations whose answer holds what Warden does not read (a header
    /// value that is not UTF-8, which `String` headers cannot carry here).
    pub unreadable: Vec<&'static str>,
    /// Key fetches started and not answered yet.
    pub fetches: Vec<PendingFetch>,
    /// Whether key fetches may start.
    pub fetch_allowed: bool,
    /// What the next answered fetch brings.
    pub fetch_outcome: Option<KeyProgress>,
    /// State of the deterministic random source (`random_bytes`).
    pub random_state: u64,
    /// Another worker's shared-data write that lands right after this
    /// host's next write: a race between two workers.
    pub racing_write: Option<(String, Vec<u8>)>,
    /// The stream's dynamic metadata (serialized `Metadata`), as Envoy's
    /// other filters left it: what `jwt_authn` verified.
    pub dynamic_metadata: Option<Vec<u8>>,
    next_token: u32,
    resume_requested: bool,
}

impl MemoryHost {
    pub fn new(now_unix_nanos: u128, header_pause: HeaderPause) -> Self {
        Self {
            now_unix_nanos,
            header_pause,
            next_token: 1,
            ..Self::default()
        }
    }

    fn check(&self, operation: &'static str) -> Result<(), HostError> {
        if self.unreadable.contains(&operation) {
            return Err(HostError::unreadable(
                operation,
                "the value of `x-odd` is not UTF-8",
            ));
        }
        if self.failing.contains(&operation) {
            return Err(HostError::new(operation, "InternalFailure"));
        }
        Ok(())
    }

    /// Whether the request (headers or any byte) went upstream.
    pub fn forwarded_anything(&self) -> bool {
        self.request.sent_headers.is_some() || !self.request.sent_body.is_empty()
    }

    /// The decision audit lines.
    pub fn decisions(&self) -> Vec<&AuditRecord> {
        self.audits
            .iter()
            .filter(|(_, kind)| *kind == AuditKind::Decision)
            .map(|(record, _)| record)
            .collect()
    }
}

impl StreamHost for MemoryHost {
    fn now_unix_nanos(&self) -> u128 {
        self.now_unix_nanos
    }

    fn request_headers(&mut self) -> Result<Vec<(String, String)>, HostError> {
        self.check("reading the request headers")?;
        Ok(self.request.headers.clone())
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.check("editing a request header")?;
        self.request.set_header(name, value);
        Ok(())
    }

    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        self.check("reading the request body")?;
        Ok(self.request.buffer.iter().copied().take(size).collect())
    }

    fn response_headers(&mut self) -> Result<Vec<(String, String)>, HostError> {
        self.check("reading the response headers")?;
        Ok(self.response.headers.clone())
    }

    fn set_response_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError> {
        self.check("editing a response header")?;
        self.response.set_header(name, value);
        Ok(())
    }

    fn response_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        self.check("reading the response body")?;
        Ok(self.response.buffer.iter().copied().take(size).collect())
    }

    fn replace_response_body(&mut self, size: usize, body: &[u8]) -> Result<(), HostError> {
        self.check("replacing the response body")?;
        let keep = self
            .response
            .buffer
            .split_off(size.min(self.response.buffer.len()));
        self.response.buffer = body.to_vec();
        self.response.buffer.extend(keep);
        Ok(())
    }

    fn dynamic_metadata(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        self.check("reading the dynamic metadata")?;
        Ok(self.dynamic_metadata.clone())
    }

    fn shared_data(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.check("reading shared data")?;
        Ok(self.shared.get(key).cloned())
    }

    fn set_shared_data(&mut self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.check("writing shared data")?;
        self.shared.insert(key.to_owned(), value.to_vec());
        if let Some((key, value)) = self.racing_write.take() {
            self.shared.insert(key, value);
        }
        Ok(())
    }

    fn random_bytes(&mut self, out: &mut [u8]) -> Result<(), HostError> {
        self.check("generating random bytes")?;
        // SplitMix64: deterministic, so tests are repeatable; a test host
        // needs distinct bytes, not unpredictable ones.
        for chunk in out.chunks_mut(8) {
            self.random_state = self.random_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.random_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk
                .iter_mut()
                .zip(z.to_le_bytes())
                .for_each(|(byte, random)| *byte = random);
        }
        Ok(())
    }

    fn send_reply(&mut self, reply: &Reply) -> Result<(), HostError> {
        self.check("sending the local reply")?;
        self.reply = Some(reply.clone());
        Ok(())
    }

    fn resume_request(&mut self) -> Result<(), HostError> {
        self.check("resuming the request")?;
        self.resume_requested = true;
        Ok(())
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()));
    }

    fn audit(&mut self, record: &AuditRecord, kind: AuditKind) {
        self.audits.push((record.clone(), kind));
    }

    fn sync_keys(&mut self, _issuer: &str) {}

    fn start_key_fetch(&mut self, issuer: &str) -> KeyFetch {
        if !self.fetch_allowed {
            return KeyFetch::Unavailable(String::new());
        }
        // Token 0 is never handed out (a host made with `Default` starts there).
        self.next_token = self.next_token.max(1);
        let token = self.next_token;
        self.next_token += 1;
        self.fetches.push(PendingFetch {
            issuer: issuer.to_owned(),
            token,
        });
        KeyFetch::Started(token)
    }

    fn key_fetch_response(&mut self, token: u32, _body_size: usize) -> KeyProgress {
        self.fetches.retain(|f| f.token != token);
        self.fetch_outcome
            .take()
            .unwrap_or_else(|| KeyProgress::Failed("no answer".into()))
    }
}

/// A request as a client sends it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Headers, pseudo-headers (`:method`, `:path`) included, lower case.
    pub headers: Vec<(String, String)>,
    /// Body chunks, in order.
    pub chunks: Vec<Vec<u8>>,
    /// HTTP/2 trailers ending the request.
    pub trailers: Option<Vec<(String, String)>>,
    /// The stream's dynamic metadata as the filters ahead of Warden left
    /// it (serialized `Metadata`; see [`MemoryHost::dynamic_metadata`]).
    pub dynamic_metadata: Option<Vec<u8>>,
}

/// A response as the upstream sends it.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub headers: Vec<(String, String)>,
    pub chunks: Vec<Vec<u8>>,
    pub trailers: Option<Vec<(String, String)>>,
}

/// Which part of a message a host delivers next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<'a> {
    Headers(bool),
    Body(&'a [u8], bool),
    Trailers,
}

/// Drives one stream through an exchange: callbacks in the order a proxy
/// makes them, with the flow semantics of [`MemoryHost`]. Each method is
/// one thing arriving at the proxy; [`Driver::last_flow`] is the filter's
/// answer to the last callback it ran (`None` when the host ran none).
pub struct Driver<'e> {
    pub exchange: &'e mut Exchange,
    pub host: MemoryHost,
    pub last_flow: Option<Flow>,
}

impl<'e> Driver<'e> {
    pub fn new(exchange: &'e mut Exchange, host: MemoryHost) -> Self {
        Self {
            exchange,
            host,
            last_flow: None,
        }
    }

    /// Delivers the whole request: headers, every chunk, trailers.
    pub fn send_request(&mut self, request: &Request) {
        self.host
            .dynamic_metadata
            .clone_from(&request.dynamic_metadata);
        let no_body = request.chunks.is_empty() && request.trailers.is_none();
        self.request_headers(&request.headers, no_body);
        let count = request.chunks.len();
        for (index, chunk) in request.chunks.iter().enumerate() {
            let last = index + 1 == count && request.trailers.is_none();
            self.request_chunk(chunk, last);
        }
        if let Some(trailers) = &request.trailers {
            self.request_trailers(trailers);
        }
    }

    /// Delivers the upstream's response, if the request went upstream and
    /// Warden did not answer.
    pub fn send_response(&mut self, response: &Response) {
        if self.host.reply.is_some() || self.host.request.sent_headers.is_none() {
            return;
        }
        let no_body = response.chunks.is_empty() && response.trailers.is_none();
        self.response_headers(&response.headers, no_body);
        let count = response.chunks.len();
        for (index, chunk) in response.chunks.iter().enumerate() {
            let last = index + 1 == count && response.trailers.is_none();
            self.response_chunk(chunk, last);
        }
        if let Some(trailers) = &response.trailers {
            self.response_trailers(trailers);
        }
    }

    /// The request headers arrive.
    pub fn request_headers(&mut self, headers: &[(String, String)], end_of_stream: bool) {
        self.host.request.headers = headers.to_vec();
        self.request_part(Part::Headers(end_of_stream));
    }

    /// A request body chunk arrives.
    pub fn request_chunk(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.request_part(Part::Body(chunk, end_of_stream));
    }

    /// Request trailers arrive (HTTP/2), ending the request.
    pub fn request_trailers(&mut self, trailers: &[(String, String)]) {
        self.host.request.trailers = Some(trailers.to_vec());
        self.request_part(Part::Trailers);
    }

    /// The upstream's response headers arrive.
    pub fn response_headers(&mut self, headers: &[(String, String)], end_of_stream: bool) {
        self.host.response.headers = headers.to_vec();
        self.response_part(Part::Headers(end_of_stream));
    }

    /// A response body chunk arrives.
    pub fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.response_part(Part::Body(chunk, end_of_stream));
    }

    /// Response trailers arrive.
    pub fn response_trailers(&mut self, trailers: &[(String, String)]) {
        self.host.response.trailers = Some(trailers.to_vec());
        self.response_part(Part::Trailers);
    }

    /// Answers the oldest pending key fetch with `outcome`; false when
    /// none is pending.
    pub fn answer_fetch(&mut self, outcome: KeyProgress) -> bool {
        let Some(fetch) = self.host.fetches.first().cloned() else {
            return false;
        };
        self.host.fetch_outcome = Some(outcome);
        self.exchange
            .on_http_call_response(&mut self.host, fetch.token, 0);
        self.last_flow = None;
        self.after_callback();
        true
    }

    /// An answer to an HTTP call with a token this stream never used.
    pub fn stray_call_response(&mut self, token: u32) {
        self.exchange
            .on_http_call_response(&mut self.host, token, 0);
        self.last_flow = None;
        self.after_callback();
    }

    /// Ends the stream (`on_done`), as a completed stream or a reset does.
    pub fn finish(&mut self) {
        self.exchange.on_done(&mut self.host);
        self.last_flow = None;
    }

    fn request_part(&mut self, part: Part<'_>) {
        if self.host.reply.is_some() {
            self.last_flow = None;
            return;
        }
        let flow = self.request_callback(part);
        self.last_flow = flow;
        self.apply(flow, part);
        self.after_callback();
    }
    /// Runs the exchange's callback for `part`, or (stopped by a translated
    /// header pause) only buffers it.
    fn request_callback(&mut self, part: Part<'_>) -> Option<Flow> {
        let direction = &mut self.host.request;
        match part {
            Part::Headers(end) => {
                direction.ended = end;
                Some(self.exchange.on_request_headers(&mut self.host, end))
            }
            Part::Body(chunk, end) => {
                direction.buffer.extend_from_slice(chunk);
                direction.ended = end;
                if direction.stopped_all {
                    return None;
                }
                let size = direction.buffer.len();
                Some(self.exchange.on_request_body(&mut self.host, size, end))
            }
            Part::Trailers => {
                direction.ended = true;
                if direction.stopped_all {
                    return None;
                }
                Some(self.exchange.on_request_trailers(&mut self.host))
            }
        }
    }

    fn apply(&mut self, flow: Option<Flow>, part: Part<'_>) {
        let pause = self.host.header_pause;
        let direction = &mut self.host.request;
        match (flow, part) {
            (None, _) => {}
            (Some(Flow::Continue), _) => direction.release(),
            (Some(Flow::Pause), Part::Headers(_)) => {
                direction.stopped_all = pause == HeaderPause::StopAll;
            }
            (Some(Flow::Pause), _) => {}
        }
    }

    /// A resume requested inside a callback takes effect after it, as a
    /// host cannot re-enter the filter: held data goes on, and data a
    /// stop-all kept from the filter is delivered now.
    fn after_callback(&mut self) {
        if !std::mem::take(&mut self.host.resume_requested) || self.host.reply.is_some() {
            return;
        }
        let direction = &mut self.host.request;
        let was_stopped = std::mem::take(&mut direction.stopped_all);
        if was_stopped {
            // Envoy sends the headers on, then hands the filter what it
            // buffered meanwhile.
            direction.send_headers();
            let has_trailers = direction.trailers.is_some();
            let ended = direction.ended;
            if !direction.buffer.is_empty() || (ended && !has_trailers) {
                let size = direction.buffer.len();
                let end = ended && !has_trailers;
                let flow = self.exchange.on_request_body(&mut self.host, size, end);
                self.apply(Some(flow), Part::Body(&[], end));
                self.after_callback();
            }
            if has_trailers && self.host.reply.is_none() {
                let flow = self.exchange.on_request_trailers(&mut self.host);
                self.apply(Some(flow), Part::Trailers);
                self.after_callback();
            }
        } else {
            direction.release();
        }
    }

    fn response_part(&mut self, part: Part<'_>) {
        let direction = &mut self.host.response;
        let flow = match part {
            Part::Headers(end) => self.exchange.on_response_headers(&mut self.host, end),
            Part::Body(chunk, end) => {
                direction.buffer.extend_from_slice(chunk);
                let size = direction.buffer.len();
                self.exchange.on_response_body(&mut self.host, size, end)
            }
            Part::Trailers => self.exchange.on_response_trailers(&mut self.host),
        };
        self.last_flow = Some(flow);
        let direction = &mut self.host.response;
        if self.host.reply.is_some() {
            return;
        }
        if flow == Flow::Continue {
            direction.release();
        }
    }
}
