//! The response side of a forwarded request: cutting every list result in
//! the body to what the caller could use. Whose view it is was decided by
//! the gate ([`ListAudience`]); this carries it out through the host.
//! (Session ids in responses are sealed by the exchange itself.)

use super::host::{AuditKind, Flow, LogLevel, StreamHost};
use crate::gate::{FilteredList, ListAudience, Warden};
use crate::listing::{EventStream, ListError};
use crate::mcp::Framing;

/// Where the response body stands.
#[derive(Debug, Default)]
pub(super) enum ResponseStage {
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
    pub(super) fn planned(lists: Option<Box<ListAudience>>) -> Self {
        lists.map_or(Self::Untouched, Self::Planned)
    }

    /// The response bytes the host holds for Warden.
    pub(super) fn buffered(&self) -> usize {
        match self {
            Self::Json { size, .. } => *size,
            _ => 0,
        }
    }

    /// `headers`: every response header, or why they could not be read.
    pub(super) fn on_headers(
        self,
        host: &mut dyn StreamHost,
        headers: &Result<Vec<(String, String)>, String>,
    ) -> Self {
        let Self::Planned(audience) = self else {
            return self;
        };
        let head = headers
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|headers| ResponseHead::read(headers));
        let head = match head {
            Ok(head) => head,
            // Unreadable headers, or headers two readers could read two
            // ways: the body is replaced, whatever it holds.
            Err(why) => {
                remove_response_header(host, "content-encoding");
                remove_response_header(host, "content-length");
                return Self::Unreadable {
                    audience,
                    event_stream: false,
                    why,
                };
            }
        };
        let success = (200..300).contains(&head.status);
        let content_type = head.content_type.unwrap_or_default();
        let framing = Framing::of(&content_type);
        let event_stream = framing == Some(Framing::EventStream);
        let encoding = head
            .content_encoding
            .filter(|coding| !coding.trim().eq_ignore_ascii_case("identity"));
        let stage = match (encoding, framing) {
            (Some(coding), _) => {
                // Warden's error replaces the body: it is not compressed.
                remove_response_header(host, "content-encoding");
                Self::Unreadable {
                    audience,
                    event_stream,
                    why: format!("the response is compressed (`{coding}`)"),
                }
            }
            (None, Some(Framing::Json)) => Self::Json { audience, size: 0 },
            (None, Some(Framing::EventStream)) => Self::Events {
                audience,
                stream: EventStream::default(),
            },
            // Clients read no messages from an error of another type (an
            // HTML 502, a plain-text 404).
            (None, None) if !success => Self::Untouched,
            (None, None) => Self::Unreadable {
                audience,
                event_stream: false,
                why: format!(
                    "the response's content type `{content_type}` is neither `application/json` nor `text/event-stream`"
                ),
            },
        };
        if !matches!(stage, Self::Untouched) {
            // The body may change length. If the header cannot be removed
            // the client sees a length mismatch and drops the answer; it
            // still never sees an uncut list.
            remove_response_header(host, "content-length");
        }
        stage
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

/// The response headers that decide how the body is read.
#[derive(Debug, PartialEq)]
struct ResponseHead {
    /// 0 when absent or not a number (not a success).
    status: u16,
    content_type: Option<String>,
    content_encoding: Option<String>,
}

impl ResponseHead {
    /// Refuses a framing header sent more than once: the proxy-wasm call for
    /// one header returns its first copy, an HTTP client may join the copies
    /// or take the last, so the body Warden reads as one type could be read
    /// by the client as another.
    fn read(headers: &[(String, String)]) -> Result<Self, String> {
        // One pass: the first value of each, and how many came.
        const READ: [&str; 3] = [":status", "content-type", "content-encoding"];
        let mut first: [Option<&str>; READ.len()] = [None; READ.len()];
        let mut sent = [0_usize; READ.len()];
        for (name, value) in headers {
            let Some(at) = READ.iter().position(|read| name.eq_ignore_ascii_case(read)) else {
                continue;
            };
            if let (Some(first), Some(sent)) = (first.get_mut(at), sent.get_mut(at)) {
                first.get_or_insert(value.as_str());
                *sent = sent.saturating_add(1);
            }
        }
        if let Some((name, more)) = READ.iter().zip(sent).find(|(_, sent)| *sent > 1) {
            return Err(format!("the response carries {more} `{name}` headers"));
        }
        let [status, content_type, content_encoding] = first;
        Ok(Self {
            status: status
                .and_then(|status| status.parse().ok())
                .unwrap_or_default(),
            content_type: content_type.map(str::to_owned),
            content_encoding: content_encoding.map(str::to_owned),
        })
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
