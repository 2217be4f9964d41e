//! The lifecycle of one HTTP stream through Warden: which callback may let
//! what through, in every state.
//!
//! An [`Exchange`] is driven by the proxy's stream callbacks (request
//! headers, body and trailers; response headers, body and trailers; the
//! answer to an HTTP call; the end of the stream) and acts through a
//! [`StreamHost`]. The filter maps proxy-wasm callbacks onto it one to one;
//! native runners and tests drive the very same code with an in-memory host.
//!
//! The one promise it keeps: no request byte goes upstream before the
//! request has been judged. Concretely, a callback answers
//! [`Flow::Continue`] only once the request has been allowed (or was never
//! an MCP request), except request headers in [`HeaderMode::Stream`] (of a
//! POST whose body is still to be judged, or of an allowed GET or DELETE
//! whose body must turn out empty), which go on carrying only what Warden
//! derived from the verified token while the body is held. A stream can end in
//! headers, body, or trailers (HTTP/2), or be reset; each ending of each
//! state is handled here, and anything out of order fails closed.

mod host;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
mod request;
mod response;
mod session;
#[cfg(any(test, feature = "testing"))]
pub mod table;
#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::sync::Arc;

pub use host::{AuditKind, Flow, HostError, KeyFetch, KeyProgress, LogLevel, StreamHost};
pub use request::RequestHeaders;
pub use session::{HOST_SESSION_KEY, host_session_key};

use crate::audit::AuditRecord;
use crate::config::HeaderMode;
use crate::gate::{Forwarding, HeadVerdict, HeaderEdit, Reply, Warden};
use crate::identity::Identity;
use request::MissingKeys;
use response::ResponseStage;

/// How much of the request body the host has buffered for Warden.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BodySeen {
    /// Bytes buffered so far.
    size: usize,
    /// The body is complete: a body callback said end of stream, or the
    /// trailers arrived.
    complete: bool,
}

/// Where the request stands. Each state holds exactly what it needs.
#[derive(Debug)]
enum RequestState {
    /// No callback yet.
    Start,
    /// The request may go on: allowed, or not an MCP request. Later request
    /// data passes.
    Open,
    /// A POST from a verified identity whose body is being held until it is
    /// complete. `headers_sent`: the headers already went upstream (stream
    /// mode), so only the body is held.
    ReadingBody {
        identity: Rc<Identity>,
        headers_sent: bool,
        body: BodySeen,
    },
    /// A GET or DELETE the policy allowed, whose stream did not end with
    /// its headers: it goes on only if its body turns out empty (a body
    /// there would reach the upstream unjudged).
    ExpectingNoBody {
        forwarding: Box<Forwarding>,
        headers_sent: bool,
    },
    /// Paused while the token issuer's key set is fetched; the body (if
    /// the host delivers it meanwhile) is held.
    AwaitingKeys {
        token: u32,
        missing: Box<MissingKeys>,
        body: BodySeen,
    },
    /// Answered locally, or failed: nothing more goes upstream.
    Closed,
}

/// One HTTP stream.
#[derive(Debug)]
pub struct Exchange {
    warden: Option<Rc<Warden>>,
    /// Warden's own id for the request (see [`Exchange::with_request_id`]).
    request_id: Option<String>,
    /// The session and JSON-RPC id this stream's request holds in flight.
    in_flight: Option<crate::gate::InFlight>,
    head: RequestHeaders,
    request: RequestState,
    response: ResponseStage,
    /// The caller's session binding, once allowed: an `Mcp-Session-Id` in
    /// the response is sealed to it.
    session_binding: Option<Arc<str>>,
}

/// The answer to a request with a header value that is not text: what the
/// client can fix, and nothing of the request repeated.
pub const UNREADABLE_HEADER_ANSWER: &str =
    "warden: a request header value is not UTF-8 text; the request was not forwarded\n";

impl Exchange {
    /// A stream under `warden`'s configuration; `None` when none compiled
    /// (every request is then refused).
    pub fn new(warden: Option<Rc<Warden>>) -> Self {
        Self {
            warden,
            request_id: None,
            in_flight: None,
            head: RequestHeaders::default(),
            request: RequestState::Start,
            response: ResponseStage::default(),
            session_binding: None,
        }
    }

    /// Gives the request Warden's own id, which audit lines and denials
    /// carry as `request_id` (the client's `x-request-id` goes beside it as
    /// `client_request_id`). Without one, `request_id` is the client's.
    #[must_use]
    pub fn with_request_id(mut self, request_id: String) -> Self {
        self.request_id = Some(request_id);
        self
    }

    /// Whether the request was judged (allowed, passed or refused).
    pub fn decided(&self) -> bool {
        matches!(self.request, RequestState::Open | RequestState::Closed)
    }

    // --- request callbacks ---

    /// `on_http_request_headers`.
    pub fn on_request_headers(&mut self, host: &mut dyn StreamHost, end_of_stream: bool) -> Flow {
        let Some(warden) = self.warden.clone() else {
            return self.unconfigured(host);
        };
        match self.request {
            RequestState::Start => {}
            // Answered already: nothing more goes upstream, and one answer
            // is all a stream gets.
            RequestState::Closed => return Flow::Pause,
            RequestState::Open
            | RequestState::ReadingBody { .. }
            | RequestState::ExpectingNoBody { .. }
            | RequestState::AwaitingKeys { .. } => {
                return self.fail_closed(host, None, "request headers arrived twice");
            }
        }
        // Nothing is read from shared data here: the root context's tick
        // applies what other workers fetched (documents/mod.rs), and the
        // stream shares this VM's compiled configuration with it.
        self.head = match RequestHeaders::read(&warden, host) {
            Ok(head) => head.identified(self.request_id.take()),
            // A header value that is not text: refused, not guessed at,
            // and no host failure (nothing is logged as an error for what
            // any client can send).
            Err(error) if error.unreadable => {
                self.head = RequestHeaders::unread(host).identified(self.request_id.take());
                let audit = self.undecided_audit(Some(400), &error.to_string());
                let reply = Reply::text(400, UNREADABLE_HEADER_ANSWER);
                return self.reply(host, &reply, audit.as_ref());
            }
            Err(error) => return self.host_failed(host, None, &error),
        };
        let body = BodySeen {
            size: 0,
            complete: end_of_stream,
        };
        self.judge_head(&warden, host, body, false)
    }

    /// `on_http_request_body`: `size` is what the host buffered so far.
    pub fn on_request_body(
        &mut self,
        host: &mut dyn StreamHost,
        size: usize,
        end_of_stream: bool,
    ) -> Flow {
        let body = BodySeen {
            size,
            complete: end_of_stream,
        };
        self.on_request_data(host, body)
    }

    /// `on_http_request_trailers`: the body is complete (HTTP/2 trailers end
    /// a stream without a body frame saying so).
    pub fn on_request_trailers(&mut self, host: &mut dyn StreamHost) -> Flow {
        let size = match &self.request {
            RequestState::ReadingBody { body, .. } | RequestState::AwaitingKeys { body, .. } => {
                body.size
            }
            _ => 0,
        };
        self.on_request_data(
            host,
            BodySeen {
                size,
                complete: true,
            },
        )
    }

    /// `on_http_call_response` in this stream's context.
    pub fn on_http_call_response(
        &mut self,
        host: &mut dyn StreamHost,
        token: u32,
        body_size: usize,
    ) {
        // Not waiting, or waiting for another call: not this stream's answer.
        if !matches!(&self.request, RequestState::AwaitingKeys { token: awaited, .. } if *awaited == token)
        {
            return;
        }
        let RequestState::AwaitingKeys { missing, body, .. } =
            std::mem::replace(&mut self.request, RequestState::Closed)
        else {
            return;
        };
        let Some(warden) = self.warden.clone() else {
            self.unconfigured(host);
            return;
        };
        let flow = match host.key_fetch_response(token, body_size) {
            KeyProgress::Pending(next) => {
                self.request = RequestState::AwaitingKeys {
                    token: next,
                    missing,
                    body,
                };
                return;
            }
            KeyProgress::Loaded(summary) => {
                host.log(
                    LogLevel::Info,
                    &format!("warden: loaded {summary} (unknown key id)"),
                );
                self.judge_head(&warden, host, body, true)
            }
            KeyProgress::Failed(reason) => {
                host.log(LogLevel::Warn, &format!("warden: fetch failed: {reason}"));
                self.reply(host, &missing.reply, Some(&missing.audit))
            }
        };
        if flow == Flow::Continue
            && let Err(error) = host.resume_request()
        {
            host.log(LogLevel::Error, &format!("warden: {error}"));
        }
    }

    // --- response callbacks ---

    /// `on_http_response_headers`.
    pub fn on_response_headers(&mut self, host: &mut dyn StreamHost, _end_of_stream: bool) -> Flow {
        let warden = match self.response_gate(host) {
            Ok(warden) => warden,
            Err(flow) => return flow,
        };
        // One read of every header serves the session and the body stage.
        let headers = host.response_headers().map_err(|error| error.to_string());
        if let Some(binding) = self.session_binding.take()
            && let Err(flow) = self.seal_response_session(&warden, host, &headers, &binding)
        {
            return flow;
        }
        let stage = std::mem::take(&mut self.response);
        self.response = stage.on_headers(host, &headers);
        Flow::Continue
    }

    /// `on_http_response_body`: `size` is what the host buffered so far.
    pub fn on_response_body(
        &mut self,
        host: &mut dyn StreamHost,
        size: usize,
        end_of_stream: bool,
    ) -> Flow {
        self.on_response_data(host, size, end_of_stream, false)
    }

    /// `on_http_response_trailers`: the response body is complete.
    pub fn on_response_trailers(&mut self, host: &mut dyn StreamHost) -> Flow {
        let size = self.response.buffered();
        self.on_response_data(host, size, true, true)
    }

    /// `on_done` (`proxy_on_done`): the stream ended, normally or by a reset.
    /// A request still waiting for its decision is recorded as refused.
    pub fn on_done(&mut self, host: &mut dyn StreamHost) {
        if let Some(claim) = self.in_flight.take() {
            // The slot is free again, unless a newer request took it.
            let held = host.shared_data(&claim.key).ok().flatten();
            if held.as_deref() == Some(claim.record.as_bytes())
                && let Err(error) = host.set_shared_data(&claim.key, b"")
            {
                host.log(LogLevel::Warn, &format!("warden: {error}"));
            }
        }
        if matches!(
            self.request,
            RequestState::Start | RequestState::Open | RequestState::Closed
        ) {
            return;
        }
        if let Some(audit) = self.undecided_audit(
            None,
            "the stream ended before the request was complete; nothing was forwarded",
        ) {
            host.audit(&audit, AuditKind::Decision);
        }
        self.request = RequestState::Closed;
    }

    // --- the request side ---

    fn on_request_data(&mut self, host: &mut dyn StreamHost, seen: BodySeen) -> Flow {
        let Some(warden) = self.warden.clone() else {
            return self.unconfigured(host);
        };
        let limit = warden.settings().max_body_bytes;
        match std::mem::replace(&mut self.request, RequestState::Closed) {
            RequestState::Start => self.fail_closed(
                host,
                None,
                "request data arrived before the request headers",
            ),
            RequestState::Open => {
                self.request = RequestState::Open;
                Flow::Continue
            }
            // Nothing more goes upstream after a local reply.
            RequestState::Closed => Flow::Pause,
            RequestState::ExpectingNoBody {
                forwarding,
                headers_sent,
            } => {
                if seen.size > 0 {
                    return self.refuse_body(&warden, host, *forwarding);
                }
                if !seen.complete {
                    self.request = RequestState::ExpectingNoBody {
                        forwarding,
                        headers_sent,
                    };
                    return Flow::Pause;
                }
                self.forward(host, *forwarding, headers_sent)
            }
            RequestState::AwaitingKeys { token, missing, .. } => {
                if seen.size > limit {
                    // The token is not verified yet: its refusal stands.
                    return self.reply(host, &missing.reply, Some(&missing.audit));
                }
                self.request = RequestState::AwaitingKeys {
                    token,
                    missing,
                    body: seen,
                };
                Flow::Pause
            }
            RequestState::ReadingBody {
                identity,
                headers_sent,
                ..
            } => {
                if seen.size > limit {
                    let (reply, audit) = warden.judge_oversized_body(&identity, &self.head.view());
                    return self.reply(host, &reply, Some(&audit));
                }
                if !seen.complete {
                    self.request = RequestState::ReadingBody {
                        identity,
                        headers_sent,
                        body: seen,
                    };
                    return Flow::Pause;
                }
                self.judge_body(&warden, host, &identity, seen.size, headers_sent)
            }
        }
    }

    /// Judges the head and acts on the verdict. `body` is what the host has
    /// buffered of the body; `keys_fetched` once a key fetch for this
    /// request has completed (there is no second one).
    fn judge_head(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        body: BodySeen,
        keys_fetched: bool,
    ) -> Flow {
        let verdict = warden.judge_head(&self.head.view());
        self.act_on_head(warden, host, verdict, body, keys_fetched)
    }

    /// Acts on a verdict about the head (see [`Self::judge_head`]).
    fn act_on_head(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        verdict: HeadVerdict,
        body: BodySeen,
        keys_fetched: bool,
    ) -> Flow {
        if let Some(name) = self.head.method_override()
            && !matches!(
                verdict,
                HeadVerdict::Pass | HeadVerdict::Serve(_) | HeadVerdict::Respond(..)
            )
        {
            // A framework that honours the override would run another
            // method than the one Warden judged.
            let identity = match &verdict {
                HeadVerdict::ReadBody(identity) => Some(identity.as_ref()),
                _ => None,
            };
            let (reply, audit) = warden.judge_malformed(
                identity,
                &self.head.view(),
                format!("the `{name}` header is refused: the request is judged by its own method"),
            );
            return self.reply(host, &reply, Some(&audit));
        }
        match verdict {
            HeadVerdict::Pass => {
                self.open();
                Flow::Continue
            }
            HeadVerdict::Serve(reply) => self.reply(host, &reply, None),
            HeadVerdict::Respond(reply, audit) => self.reply(host, &reply, Some(&audit)),
            HeadVerdict::Forward(forwarding) if !body.complete => {
                self.expect_no_body(warden, host, Box::new(forwarding), body)
            }
            HeadVerdict::Forward(forwarding) => self.forward(host, forwarding, false),
            HeadVerdict::ReadBody(identity) => self.read_body(warden, host, identity, body),
            HeadVerdict::KeysMissing {
                issuer,
                reply,
                audit,
            } => {
                let missing = MissingKeys {
                    issuer,
                    reply,
                    audit,
                };
                if keys_fetched {
                    return self.reply(host, &missing.reply, Some(&missing.audit));
                }
                self.await_keys(warden, host, Box::new(missing), body)
            }
        }
    }

    /// A POST from a verified identity: judge the body when it is all
    /// there; otherwise hold it (and, in hold mode or when part of it is
    /// already held, the headers too).
    fn read_body(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        identity: Rc<Identity>,
        body: BodySeen,
    ) -> Flow {
        if body.complete {
            return self.judge_body(warden, host, &identity, body.size, false);
        }
        // Resuming now would release the body bytes already held with the
        // headers: only headers that carry nothing unjudged may go on.
        let stream = warden.settings().header_mode == HeaderMode::Stream && body.size == 0;
        if stream {
            let edits = warden.streamed_head_edits(&identity, &self.head.view());
            if let Err(error) = self.edit_request_headers(host, &edits) {
                return self.host_failed(host, Some(&identity), &error);
            }
        }
        self.request = RequestState::ReadingBody {
            identity,
            headers_sent: stream,
            body,
        };
        if stream { Flow::Continue } else { Flow::Pause }
    }

    /// An allowed GET or DELETE whose stream goes on: hold what follows
    /// until it is known to be empty (in stream mode the headers go on).
    fn expect_no_body(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        forwarding: Box<Forwarding>,
        body: BodySeen,
    ) -> Flow {
        if body.size > 0 {
            return self.refuse_body(warden, host, *forwarding);
        }
        let stream = warden.settings().header_mode == HeaderMode::Stream;
        if stream && let Err(error) = self.edit_request_headers(host, &forwarding.header_edits) {
            return self.host_failed(host, None, &error);
        }
        self.request = RequestState::ExpectingNoBody {
            forwarding,
            headers_sent: stream,
        };
        if stream { Flow::Continue } else { Flow::Pause }
    }

    /// A GET or DELETE that carries a body: refused, and the allow it had
    /// becomes the refusal's audit.
    fn refuse_body(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        forwarding: Forwarding,
    ) -> Flow {
        let reason = format!(
            "a {} request must not carry a body: it would reach the upstream unjudged",
            self.head.view().method
        );
        let (reply, _) = warden.judge_malformed(None, &self.head.view(), reason.clone());
        let audit = unconfirmed(forwarding.audit, Some(reply.status), &reason);
        self.reply(host, &reply, Some(&audit))
    }

    fn judge_body(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        identity: &Rc<Identity>,
        size: usize,
        headers_sent: bool,
    ) -> Flow {
        let body = match host.request_body(size) {
            Ok(body) => body,
            Err(error) => return self.host_failed(host, Some(identity), &error),
        };
        // Headers that already went took their edits with them.
        let verdict = if headers_sent {
            warden.judge_streamed_body(identity, &body, &self.head.view())
        } else {
            warden.judge_body(identity, &body, &self.head.view())
        };
        match verdict {
            crate::gate::BodyVerdict::Forward(forwarding) => {
                if let Some(claim) = warden.in_flight(&self.head.view(), &forwarding.audit) {
                    match host.shared_data(&claim.key) {
                        Ok(Some(held)) if held == claim.record.as_bytes() => {
                            let (reply, audit) =
                                warden.refuse_aliased_id(&self.head.view(), forwarding.audit);
                            return self.reply(host, &reply, Some(&audit));
                        }
                        Ok(_) => {}
                        Err(error) => return self.host_failed(host, Some(identity), &error),
                    }
                    // Another request may hold the slot (two that hash
                    // alike): the newer takes it. Tracking is per host and
                    // best effort; a failed write only loses the tracking.
                    match host.set_shared_data(&claim.key, claim.record.as_bytes()) {
                        Ok(()) => self.in_flight = Some(claim),
                        Err(error) => host.log(LogLevel::Warn, &format!("warden: {error}")),
                    }
                }
                self.forward(host, forwarding, headers_sent)
            }
            crate::gate::BodyVerdict::Respond(reply, audit) => {
                self.reply(host, &reply, Some(&audit))
            }
        }
    }

    /// The token's issuer lacks keys: take another worker's fresh copy if
    /// there is one, else fetch (within the shared rate limit), else answer.
    fn await_keys(
        &mut self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        missing: Box<MissingKeys>,
        body: BodySeen,
    ) -> Flow {
        host.sync_keys(&missing.issuer);
        if warden.verifier().has_keys(&missing.issuer) {
            // Judged once more, with the keys another worker fetched; acted
            // on unless the token's key is still missing.
            let verdict = warden.judge_head(&self.head.view());
            if !matches!(verdict, HeadVerdict::KeysMissing { .. }) {
                return self.act_on_head(warden, host, verdict, body, true);
            }
        }
        match host.start_key_fetch(&missing.issuer) {
            KeyFetch::Started(token) => {
                self.request = RequestState::AwaitingKeys {
                    token,
                    missing,
                    body,
                };
                Flow::Pause
            }
            KeyFetch::Unavailable(why) => {
                if !why.is_empty() {
                    host.log(LogLevel::Warn, &format!("warden: {why}"));
                }
                self.reply(host, &missing.reply, Some(&missing.audit))
            }
        }
    }

    /// Lets the request go on with the verdict's header edits (unless the
    /// headers already went), and plans the response.
    fn forward(
        &mut self,
        host: &mut dyn StreamHost,
        forwarding: Forwarding,
        headers_sent: bool,
    ) -> Flow {
        if !headers_sent
            && let Err(error) = self.edit_request_headers(host, &forwarding.header_edits)
        {
            // An identity header that cannot be set or removed must not
            // leave a client's copy in place.
            return self.host_failed(host, None, &error);
        }
        host.audit(&forwarding.audit, AuditKind::Decision);
        self.open();
        let Forwarding {
            audit,
            lists,
            session_binding,
            ..
        } = forwarding;
        self.session_binding = session_binding;
        self.response = ResponseStage::planned(lists.map(|plan| Box::new(plan.audience(audit))));
        Flow::Continue
    }

    /// The request is judged and goes on: later request data passes, and
    /// the stream keeps only what its later audit lines read (see
    /// [`RequestHeaders::settle`]) while it waits for the response.
    fn open(&mut self) {
        self.request = RequestState::Open;
        self.head.settle();
    }

    /// Applies `edits`, and removes every client header a server could
    /// read as one of Warden's identity headers (the configured prefix):
    /// any case, `_` for `-`, names Warden does not set. Only Warden speaks
    /// under its prefix.
    fn edit_request_headers(
        &self,
        host: &mut dyn StreamHost,
        edits: &[HeaderEdit],
    ) -> Result<(), HostError> {
        let prefix = self.warden.as_deref().map_or("", |w| {
            w.settings().upstream.identity_header_prefix.as_str()
        });
        for name in self.head.spellings_under(prefix) {
            if !edits
                .iter()
                .any(|(edit, _)| edit.eq_ignore_ascii_case(name))
            {
                host.set_request_header(name, None)?;
            }
        }
        for (name, value) in edits {
            // Removing a header the client never sent is a wasted hostcall.
            if value.is_none() && self.head.get(name.as_ref()).is_none() {
                continue;
            }
            host.set_request_header(name, value.as_deref())?;
        }
        Ok(())
    }

    // --- the response side ---

    fn on_response_data(
        &mut self,
        host: &mut dyn StreamHost,
        size: usize,
        end_of_stream: bool,
        trailers: bool,
    ) -> Flow {
        let warden = match self.response_gate(host) {
            Ok(warden) => warden,
            Err(flow) => return flow,
        };
        let stage = std::mem::take(&mut self.response);
        let (stage, flow) = stage.on_body(&warden, host, size, end_of_stream, trailers);
        self.response = stage;
        flow
    }

    /// Whether a response callback may act: the configuration when the
    /// request was allowed; otherwise the flow to answer with. Warden's own
    /// local reply passes. An upstream answer to a request Warden has not
    /// judged (in stream mode the upstream has the headers) must not reach
    /// the client: it is replaced.
    fn response_gate(&mut self, host: &mut dyn StreamHost) -> Result<Rc<Warden>, Flow> {
        match &self.request {
            RequestState::Open => self.warden.clone().ok_or(Flow::Continue),
            RequestState::Closed => Err(Flow::Continue),
            RequestState::Start
            | RequestState::ReadingBody { .. }
            | RequestState::ExpectingNoBody { .. }
            | RequestState::AwaitingKeys { .. } => Err(self.fail_undecided(
                host,
                502,
                "the upstream answered before the request was judged",
            )),
        }
    }

    // --- answers ---

    /// Answers locally; nothing more goes upstream.
    fn reply(
        &mut self,
        host: &mut dyn StreamHost,
        reply: &Reply,
        audit: Option<&AuditRecord>,
    ) -> Flow {
        if let Some(audit) = audit {
            host.audit(audit, AuditKind::Decision);
        }
        self.request = RequestState::Closed;
        self.response = ResponseStage::default();
        if let Err(error) = host.send_reply(reply) {
            host.log(
                LogLevel::Error,
                &format!("warden: sending the local reply failed: {error}"),
            );
        }
        Flow::Pause
    }

    /// A hostcall Warden needs failed: answer 500 rather than pass, and
    /// record why.
    fn host_failed(
        &mut self,
        host: &mut dyn StreamHost,
        identity: Option<&Identity>,
        error: &HostError,
    ) -> Flow {
        host.log(LogLevel::Error, &format!("warden: {error}"));
        self.fail_closed(host, identity, &format!("host error: {error}"))
    }

    /// Answers 500 with an audit line saying why.
    fn fail_closed(
        &mut self,
        host: &mut dyn StreamHost,
        identity: Option<&Identity>,
        reason: &str,
    ) -> Flow {
        let audit = self
            .warden
            .as_ref()
            .map(|w| w.undecided(&self.head.view(), identity, Some(500), reason));
        let reply = Reply::text(
            500,
            "warden: internal error; the request was not forwarded\n",
        );
        self.reply(host, &reply, audit.as_ref())
    }

    /// Refuses a request whose stream went where it should not before a
    /// decision.
    fn fail_undecided(&mut self, host: &mut dyn StreamHost, status: u16, reason: &str) -> Flow {
        let audit = self.undecided_audit(Some(status), reason);
        let reply = Reply::text(status, "warden: the request was not judged\n");
        self.reply(host, &reply, audit.as_ref())
    }

    /// The audit record of a request that ends undecided in its current
    /// state, naming the caller where it was verified.
    fn undecided_audit(&self, status: Option<u16>, reason: &str) -> Option<AuditRecord> {
        match &self.request {
            // The allow it was waiting to confirm names the caller.
            RequestState::ExpectingNoBody { forwarding, .. } => {
                Some(unconfirmed(forwarding.audit.clone(), status, reason))
            }
            RequestState::ReadingBody { identity, .. } => self
                .warden
                .as_ref()
                .map(|w| w.undecided(&self.head.view(), Some(identity), status, reason)),
            _ => self
                .warden
                .as_ref()
                .map(|w| w.undecided(&self.head.view(), None, status, reason)),
        }
    }

    /// No compiled configuration: fail closed.
    fn unconfigured(&mut self, host: &mut dyn StreamHost) -> Flow {
        host.log(
            LogLevel::Error,
            "warden: no configuration loaded; answering 503 (fail closed)",
        );
        self.reply(host, &Reply::text(503, "warden: not configured\n"), None)
    }
}

/// The audit record of an allow that did not stand (a GET whose stream
/// went on with a body, or was answered first): the caller as verified, the
/// refusal instead of the rule.
fn unconfirmed(mut audit: AuditRecord, status: Option<u16>, reason: &str) -> AuditRecord {
    audit.rule = None;
    audit.owner = None;
    audit.decision = "deny";
    audit.status = status;
    audit.reason = Arc::from(reason);
    audit
}
