//! List responses rewritten to what the caller could use.

use super::*;

impl Warden {
    /// Rewrites a complete list response (one [`ListRequest::wants`]) so
    /// the caller sees only what it could use.
    pub fn filter_list_response(
        &self,
        list: &ListRequest,
        content_type: &str,
        body: &[u8],
    ) -> FilteredList {
        self.filter_list(list, content_type, body, true)
            .unwrap_or_else(|| {
                self.unfilterable_list(list, content_type, "no answer to the list request")
            })
    }

    /// Tries to filter the start of an SSE list response that is still
    /// arriving. `Some` once the answer to the list request is in `body`
    /// (the rest of the stream may then pass untouched: it can only hold
    /// other messages), or when the body cannot be filtered; `None` while
    /// the answer has not arrived.
    pub fn filter_list_prefix(
        &self,
        list: &ListRequest,
        content_type: &str,
        body: &[u8],
    ) -> Option<FilteredList> {
        if Framing::of(content_type) != Some(Framing::EventStream) {
            // A JSON body is only readable whole.
            return None;
        }
        self.filter_list(list, content_type, body, false)
    }

    pub(super) fn filter_list(
        &self,
        list: &ListRequest,
        content_type: &str,
        body: &[u8],
        complete: bool,
    ) -> Option<FilteredList> {
        let outcome = listing::filter_list_response(
            &self.policy,
            &list.identity,
            list.kind,
            &list.id,
            content_type,
            body,
            self.settings.max_response_bytes,
        );
        let (body, summary) = match outcome {
            Ok(done) => done,
            Err(error) => {
                return Some(self.unfilterable_list(list, content_type, &error.to_string()));
            }
        };
        if !summary.answered {
            if !complete {
                return None;
            }
            if summary.unterminated_event {
                return Some(self.unfilterable_list(
                    list,
                    content_type,
                    "the stream ended inside an event",
                ));
            }
        }
        let audit = (!summary.removed.is_empty()).then(|| {
            let mut audit = list.audit.clone();
            audit.reason = format!(
                "{}; list filtered: {} kept, {} removed",
                audit.reason,
                summary.kept,
                summary.removed.len()
            );
            audit.list = Some(json!({"kept": summary.kept, "removed": summary.removed}));
            audit
        });
        Some(FilteredList { body, audit })
    }

    /// Fail closed on a list response Warden cannot filter (too large,
    /// unreadable): the client gets a JSON-RPC error for its request in the
    /// response's framing, and the audit says why.
    pub fn unfilterable_list(
        &self,
        list: &ListRequest,
        content_type: &str,
        why: &str,
    ) -> FilteredList {
        let reason = format!("list response could not be filtered: {why}");
        let mut audit = list.audit.clone();
        audit.decision = "deny";
        audit.list = Some(json!({"error": why}));
        audit.reason.clone_from(&reason);
        FilteredList {
            body: listing::failure_body(&list.id, content_type, &reason),
            audit: Some(audit),
        }
    }
}
