//! The response side of a forwarded request: filtering list responses. What to do was decided
//! by the gate ([`ResponsePlan`]); this carries it out through the host.

use super::host::{AuditKind, Flow, LogLevel, StreamHost};
use crate::gate::{FilteredList, ListRequest, ResponsePlan, Warden};

/// Where a response stands.
#[derive(Debug, Default)]
pub(super) enum ResponseStage {
    /// Nothing to do (or done).
    #[default]
    Untouched,
    /// Waiting for the response headers to act on the plan.
    Planned(ResponsePlan),
    /// A list response being held for filtering; `content_type` as the
    /// upstream sent it, `size` the bytes the host holds.
    Buffering {
        list: Box<ListRequest>,
        content_type: String,
        size: usize,
    },
    /// The list response was replaced (too large): later chunks are
    /// dropped.
    Discarding,
}

impl ResponseStage {
    pub(super) fn planned(plan: ResponsePlan) -> Self {
        match plan {
            ResponsePlan::Untouched => Self::Untouched,
            plan => Self::Planned(plan),
        }
    }

    /// The response bytes the host holds for Warden.
    pub(super) fn buffered(&self) -> usize {
        match self {
            Self::Buffering { size, .. } => *size,
            _ => 0,
        }
    }

    pub(super) fn on_headers(self, host: &mut dyn StreamHost) -> Self {
        let Self::Planned(plan) = self else {
            return self;
        };
        let mut header = |name: &str| match host.response_header(name) {
            Ok(value) => value,
            Err(error) => {
                host.log(LogLevel::Error, &format!("warden: {error}"));
                None
            }
        };
        let status: u16 = header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        match plan {
            ResponsePlan::Untouched => Self::Untouched,
            ResponsePlan::FilterList(list) => {
                if !list.wants(status) {
                    return Self::Untouched;
                }
                let content_type = header("content-type").unwrap_or_default();
                // The body will change length. If the header cannot be
                // removed the client sees a length mismatch and drops the
                // answer; it still never sees the unfiltered list.
                if let Err(error) = host.set_response_header("content-length", None) {
                    host.log(LogLevel::Error, &format!("warden: {error}"));
                }
                Self::Buffering {
                    list,
                    content_type,
                    size: 0,
                }
            }
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
        match self {
            Self::Buffering {
                list, content_type, ..
            } => {
                let limit = warden.settings().max_response_bytes;
                // Fail closed: the client gets an error in place of a list
                // Warden could not read.
                let body = if size > limit {
                    Err(format!(
                        "the response is larger than max_response_bytes ({limit})"
                    ))
                } else {
                    host.response_body(size).map_err(|error| error.to_string())
                };
                let body = match body {
                    Ok(body) => body,
                    Err(why) => {
                        return refuse_list(
                            warden,
                            host,
                            &list,
                            &content_type,
                            size,
                            &why,
                            end_of_stream,
                        );
                    }
                };
                let filtered = if end_of_stream {
                    warden.filter_list_response(&list, &content_type, &body)
                } else {
                    // An SSE stream may stay open after its answer: pass it
                    // on as soon as the answer is in, rather than wait for
                    // an end that may not come.
                    match warden.filter_list_prefix(&list, &content_type, &body) {
                        Some(filtered) => filtered,
                        None => {
                            let held = Self::Buffering {
                                list,
                                content_type,
                                size,
                            };
                            return (held, Flow::Pause);
                        }
                    }
                };
                send_on(host, size, &filtered);
                (Self::Untouched, Flow::Continue)
            }
            Self::Discarding => {
                if !trailers {
                    replace(host, size, b"");
                }
                let next = if end_of_stream {
                    Self::Untouched
                } else {
                    Self::Discarding
                };
                (next, Flow::Continue)
            }
            other => (other, Flow::Continue),
        }
    }
}

/// Fails closed on a list Warden cannot read: the client gets an error in
/// its place, and later chunks of the response are dropped.
fn refuse_list(
    warden: &Warden,
    host: &mut dyn StreamHost,
    list: &ListRequest,
    content_type: &str,
    size: usize,
    why: &str,
    end_of_stream: bool,
) -> (ResponseStage, Flow) {
    send_on(
        host,
        size,
        &warden.unfilterable_list(list, content_type, why),
    );
    let next = if end_of_stream {
        ResponseStage::Untouched
    } else {
        ResponseStage::Discarding
    };
    (next, Flow::Continue)
}

/// Replaces the held body with the filtered one and records the outcome.
fn send_on(host: &mut dyn StreamHost, size: usize, filtered: &FilteredList) {
    replace(host, size, &filtered.body);
    if let Some(audit) = &filtered.audit {
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
