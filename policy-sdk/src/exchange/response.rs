//! The response side of a forwarded request: recording and forgetting
//! session bindings, and cutting every list result in the body to what the
//! caller could use. What to do was decided by the gate ([`ResponsePlan`],
//! [`ListAudience`]); this carries it out through the host.

use super::host::{AuditKind, Flow, LogLevel, StreamHost};
use crate::gate::{FilteredList, ListAudience, ResponsePlan, Warden};
use crate::listing::{EventStream, ListError};
use crate::mcp::Framing;

/// Where a response stands.
#[derive(Debug, Default)]
pub(super) struct ResponseStage {
    /// Session work for the response headers; `None` once done.
    session: Option<ResponsePlan>,
    body: BodyStage,
}

/// Where the response body stands.
#[derive(Debug, Default)]
enum BodyStage {
    /// Nothing to do (or done).
    #[default]
    Untouched,
    /// Waiting for the response headers to know how to read the body.
    Planned(Box<ListAudience>),
    /// A JSON body the host holds until it is whole; `size` the bytes held.
    Json {
        audience: Box<ListAudience>,
        size: usize,
    },
    /// An event stream, cut event by event as chunks arrive.
    Events {
        audience: Box<ListAudience>,
        stream: EventStream,
    },
    /// A body Warden cannot read (compressed, or of a content type no MCP
    /// client reads as messages on a success): replaced by an error as soon
    /// as a byte of it arrives.
    Unreadable {
        audience: Box<ListAudience>,
        event_stream: bool,
        why: String,
    },
    /// The body was replaced by an error: later chunks are dropped.
    Discarding,
}

impl ResponseStage {
    pub(super) fn planned(plan: ResponsePlan, lists: Option<Box<ListAudience>>) -> Self {
        Self {
            session: match plan {
                ResponsePlan::Untouched => None,
                plan => Some(plan),
            },
            body: lists.map_or(BodyStage::Untouched, BodyStage::Planned),
        }
    }

    /// The response bytes the host holds for Warden.
    pub(super) fn buffered(&self) -> usize {
        match self.body {
            BodyStage::Json { size, .. } => size,
            _ => 0,
        }
    }

    pub(super) fn on_headers(self, warden: &Warden, host: &mut dyn StreamHost) -> Self {
        let status: u16 = response_header(host, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let success = (200..300).contains(&status);
        if let Some(plan) = self.session {
            on_session_headers(plan, warden, host, success);
        }
        let BodyStage::Planned(audience) = self.body else {
            return Self {
                session: None,
                body: self.body,
            };
        };
        let content_type = response_header(host, "content-type").unwrap_or_default();
        let framing = Framing::of(&content_type);
        let event_stream = framing == Some(Framing::EventStream);
        let encoding = response_header(host, "content-encoding")
            .filter(|coding| !coding.trim().eq_ignore_ascii_case("identity"));
        let body = match (encoding, framing) {
            (Some(coding), _) => {
                // Warden's error replaces the body: it is not compressed.
                remove_response_header(host, "content-encoding");
                BodyStage::Unreadable {
                    audience,
                    event_stream,
                    why: format!("the response is compressed (`{coding}`)"),
                }
            }
            (None, Some(Framing::Json)) => BodyStage::Json { audience, size: 0 },
            (None, Some(Framing::EventStream)) => BodyStage::Events {
                audience,
                stream: EventStream::default(),
            },
            // Clients read no messages from an error of another type (an
            // HTML 502, a plain-text 404).
            (None, None) if !success => BodyStage::Untouched,
            (None, None) => BodyStage::Unreadable {
                audience,
                event_stream: false,
                why: format!(
                    "the response's content type `{content_type}` is neither `application/json` nor `text/event-stream`"
                ),
            },
        };
        if !matches!(body, BodyStage::Untouched) {
            // The body may change length. If the header cannot be removed
            // the client sees a length mismatch and drops the answer; it
            // still never sees an uncut list.
            remove_response_header(host, "content-length");
        }
        Self {
            session: None,
            body,
        }
    }

    /// Handles a response body chunk (`size`: what the host holds now) or
    /// the trailers (`trailers`, the body is then complete).
    pub(super) fn on_body(
        self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        size: usize,
        end_of_stream: bool,
        trailers: bool,
    ) -> (Self, Flow) {
        let (body, flow) = self
            .body
            .on_data(warden, host, size, end_of_stream, trailers);
        let stage = Self {
            session: self.session,
            body,
        };
        (stage, flow)
    }
}

impl BodyStage {
    fn on_data(
        self,
        warden: &Warden,
        host: &mut dyn StreamHost,
        size: usize,
        end_of_stream: bool,
        trailers: bool,
    ) -> (Self, Flow) {
        // Once the body has ended, nothing is left to do.
        let after = |next: Self| if end_of_stream { Self::Untouched } else { next };
        match self {
            Self::Json { audience, .. } => {
                let limit = warden.settings().max_response_bytes;
                if size > limit {
                    let why = ListError::TooLarge { limit }.to_string();
                    let failed = warden.unfilterable_list(&audience, false, &why);
                    send_on(host, size, &failed);
                    return (after(Self::Discarding), Flow::Continue);
                }
                if !end_of_stream {
                    // The host keeps the chunks until the body is whole.
                    return (Self::Json { audience, size }, Flow::Pause);
                }
                let filtered = match host.response_body(size) {
                    Ok(body) => warden.cut_json_response(&audience, &body),
                    Err(error) => warden.unfilterable_list(&audience, false, &error.to_string()),
                };
                send_on(host, size, &filtered);
                (Self::Untouched, Flow::Continue)
            }
            Self::Events {
                audience,
                mut stream,
            } => {
                if trailers {
                    // Every chunk went on; an unfinished event stays back.
                    if let Some(audit) = warden.end_events(&audience, &mut stream) {
                        host.audit(&audit, AuditKind::ListFilter);
                    }
                    return (Self::Untouched, Flow::Continue);
                }
                let filtered = match host.response_body(size) {
                    Ok(chunk) => warden.cut_events(&audience, &mut stream, &chunk, end_of_stream),
                    Err(error) => warden.unfilterable_list(&audience, true, &error.to_string()),
                };
                send_on(host, size, &filtered);
                let next = if filtered.failed {
                    Self::Discarding
                } else {
                    Self::Events { audience, stream }
                };
                (after(next), Flow::Continue)
            }
            Self::Unreadable {
                audience,
                event_stream,
                why,
            } => {
                if size == 0 || trailers {
                    // No byte of the body yet (or it ended without one).
                    let next = Self::Unreadable {
                        audience,
                        event_stream,
                        why,
                    };
                    return (after(next), Flow::Continue);
                }
                let failed = warden.unfilterable_list(&audience, event_stream, &why);
                send_on(host, size, &failed);
                (after(Self::Discarding), Flow::Continue)
            }
            Self::Discarding => {
                if !trailers {
                    replace(host, size, b"");
                }
                (after(Self::Discarding), Flow::Continue)
            }
            // Nothing planned, or the headers never came: let it be.
            other @ (Self::Untouched | Self::Planned(_)) => (other, Flow::Continue),
        }
    }
}

/// Records or forgets a session binding once the response headers say
/// whether the server accepted the request.
fn on_session_headers(
    plan: ResponsePlan,
    warden: &Warden,
    host: &mut dyn StreamHost,
    success: bool,
) {
    match plan {
        ResponsePlan::Untouched => {}
        ResponsePlan::BindSession { binding } => {
            if let (Some(id), true) = (response_header(host, "mcp-session-id"), success)
                && let Some(key) = warden.session_key(&id)
            {
                store(host, &key, Warden::session_record(&id, &binding).as_bytes());
            }
        }
        ResponsePlan::EndSession { session_id } => {
            if let (Some(key), true) = (warden.session_key(&session_id), success) {
                // Shared data cannot be deleted; an empty slot holds no
                // session. Another session may have taken the slot
                // since: leave it alone then.
                let owned = host
                    .shared_data(&key)
                    .ok()
                    .flatten()
                    .and_then(|record| String::from_utf8(record).ok())
                    .is_some_and(|record| {
                        Warden::binding_in_record(&session_id, &record).is_some()
                    });
                if owned {
                    store(host, &key, b"");
                }
            }
        }
    }
}

fn response_header(host: &mut dyn StreamHost, name: &str) -> Option<String> {
    match host.response_header(name) {
        Ok(value) => value,
        Err(error) => {
            host.log(LogLevel::Error, &format!("warden: {error}"));
            None
        }
    }
}

fn remove_response_header(host: &mut dyn StreamHost, name: &str) {
    if let Err(error) = host.set_response_header(name, None) {
        host.log(LogLevel::Error, &format!("warden: {error}"));
    }
}

/// Sends the cut body on (when it differs from what was read) and records
/// what was cut.
fn send_on(host: &mut dyn StreamHost, size: usize, filtered: &FilteredList) {
    if let Some(body) = &filtered.body {
        replace(host, size, body);
    }
    for audit in &filtered.audits {
        host.audit(audit, AuditKind::ListFilter);
    }
}

fn replace(host: &mut dyn StreamHost, size: usize, body: &[u8]) {
    if let Err(error) = host.replace_response_body(size, body) {
        host.log(
            LogLevel::Error,
            &format!("warden: replacing the response body failed: {error}"),
        );
    }
}

fn store(host: &mut dyn StreamHost, key: &str, value: &[u8]) {
    if let Err(error) = host.set_shared_data(key, value) {
        host.log(
            LogLevel::Error,
            &format!("warden: storing session binding failed: {error}"),
        );
    }
}
