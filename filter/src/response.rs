//! The response side of a forwarded request: recording and forgetting
//! session bindings in shared data, and filtering list responses. What to do
//! was decided by the gate ([`ResponsePlan`]); this module only carries it
//! out with hostcalls.

use policy_sdk::{AuditRecord, ListRequest, ResponsePlan, Warden};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, LogLevel, MapType};

use crate::log;

/// Where a response stands.
#[derive(Default)]
pub(crate) enum Stage {
    /// Nothing to do (or done).
    #[default]
    Untouched,
    /// Waiting for the response headers to act on the plan.
    Planned(ResponsePlan),
    /// A list response being buffered for filtering; `content_type` as the
    /// upstream sent it.
    Buffering {
        list: Box<ListRequest>,
        content_type: String,
    },
    /// The list response grew too large and was replaced: later chunks are
    /// dropped.
    Discarding,
}

impl Stage {
    pub(crate) fn planned(plan: ResponsePlan) -> Self {
        match plan {
            ResponsePlan::Untouched => Stage::Untouched,
            plan => Stage::Planned(plan),
        }
    }

    pub(crate) fn on_headers(self, warden: &Warden) -> Self {
        let Stage::Planned(plan) = self else {
            return self;
        };
        let header = |name: &str| {
            hostcalls::get_map_value(MapType::HttpResponseHeaders, name)
                .ok()
                .flatten()
        };
        let status: u16 = header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        match plan {
            ResponsePlan::Untouched => Stage::Untouched,
            ResponsePlan::BindSession { binding } => {
                let session_id = header("mcp-session-id");
                if let (Some(id), true) = (session_id, (200..300).contains(&status))
                    && let Some(key) = warden.session_key(&id)
                {
                    set_shared(&key, Warden::session_record(&id, &binding).as_bytes());
                }
                Stage::Untouched
            }
            ResponsePlan::EndSession { session_id } => {
                if let (Some(key), true) = (
                    warden.session_key(&session_id),
                    (200..300).contains(&status),
                ) {
                    // Shared data cannot be deleted; an empty slot holds no
                    // session. Another session may have taken the slot since:
                    // leave it alone then.
                    let owned = hostcalls::get_shared_data(&key)
                        .ok()
                        .and_then(|(record, _)| record)
                        .and_then(|record| String::from_utf8(record).ok())
                        .is_some_and(|record| {
                            Warden::binding_in_record(&session_id, &record).is_some()
                        });
                    if owned {
                        set_shared(&key, b"");
                    }
                }
                Stage::Untouched
            }
            ResponsePlan::FilterList(list) => {
                if !list.wants(status) {
                    return Stage::Untouched;
                }
                // The body will change length.
                let _ =
                    hostcalls::set_map_value(MapType::HttpResponseHeaders, "content-length", None);
                Stage::Buffering {
                    list,
                    content_type: header("content-type").unwrap_or_default(),
                }
            }
        }
    }

    /// Returns the next stage, the action for this chunk, and an audit
    /// record to log (list filtered or refused).
    pub(crate) fn on_body(
        self,
        warden: &Warden,
        body_size: usize,
        end_of_stream: bool,
    ) -> (Self, Action, Option<AuditRecord>) {
        match self {
            Stage::Buffering { list, content_type } => {
                let limit = warden.settings().max_response_bytes;
                if body_size > limit {
                    // Fail closed: the client gets an error in place of a
                    // list Warden could not read.
                    let filtered = warden.unfilterable_list(
                        &list,
                        &content_type,
                        &format!("the response is larger than max_response_bytes ({limit})"),
                    );
                    replace_body(body_size, &filtered.body);
                    let next = if end_of_stream {
                        Stage::Untouched
                    } else {
                        Stage::Discarding
                    };
                    return (next, Action::Continue, filtered.audit);
                }
                let body = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let filtered = if end_of_stream {
                    warden.filter_list_response(&list, &content_type, &body)
                } else {
                    // An SSE stream may stay open after its answer: pass it
                    // on as soon as the answer is in, rather than wait for
                    // an end that may not come.
                    match warden.filter_list_prefix(&list, &content_type, &body) {
                        Some(filtered) => filtered,
                        None => {
                            return (Stage::Buffering { list, content_type }, Action::Pause, None);
                        }
                    }
                };
                replace_body(body_size, &filtered.body);
                (Stage::Untouched, Action::Continue, filtered.audit)
            }
            Stage::Discarding => {
                replace_body(body_size, b"");
                let next = if end_of_stream {
                    Stage::Untouched
                } else {
                    Stage::Discarding
                };
                (next, Action::Continue, None)
            }
            other => (other, Action::Continue, None),
        }
    }
}

fn replace_body(size: usize, body: &[u8]) {
    if let Err(status) = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, body) {
        log(
            LogLevel::Error,
            &format!("warden: replacing the response body failed: {status:?}"),
        );
    }
}

fn set_shared(key: &str, value: &[u8]) {
    if let Err(status) = hostcalls::set_shared_data(key, Some(value), None) {
        log(
            LogLevel::Error,
            &format!("warden: storing session binding failed: {status:?}"),
        );
    }
}
