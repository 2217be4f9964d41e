//! List results in responses cut to what the caller could use, whatever
//! request they answer (see [`crate::listing`]).

use super::*;
use crate::listing::{Cut, EventStream, ListCutter, ListSummary};

impl Warden {
    fn cutter<'a>(&'a self, audience: &'a ListAudience) -> ListCutter<'a> {
        ListCutter {
            policy: self.policy.enforced(),
            identity: &audience.identity,
            limits: JsonLimits {
                max_bytes: self.settings.max_response_bytes,
                max_depth: self.settings.max_json_depth,
            },
        }
    }

    /// Cuts a whole `application/json` response body.
    pub fn cut_json_response(&self, audience: &ListAudience, body: &[u8]) -> FilteredList {
        match self.cutter(audience).json_body(body) {
            Ok(cut) => self.cut_read(audience, cut),
            Err(error) => self.unfilterable_list(audience, false, &error.to_string()),
        }
    }

    /// Cuts the next chunk of a `text/event-stream` response (`last`: the
    /// stream ends with it); the unfinished last event waits in `stream`.
    pub fn cut_events(
        &self,
        audience: &ListAudience,
        stream: &mut EventStream,
        chunk: &[u8],
        last: bool,
    ) -> FilteredList {
        let pushed = stream.push(&self.cutter(audience), chunk, last);
        let mut filtered = match pushed {
            Ok(cut) => self.cut_read(audience, cut),
            Err(error) => return self.unfilterable_list(audience, true, &error.to_string()),
        };
        if last && stream.finish().dropped_data {
            filtered
                .audits
                .push(self.list_failure_audit(audience, "the stream ended inside an event"));
        }
        filtered
    }

    /// An event stream ended after its last chunk was sent (in trailers):
    /// the line for an unfinished event that was dropped, if any.
    pub fn end_events(
        &self,
        audience: &ListAudience,
        stream: &mut EventStream,
    ) -> Option<AuditRecord> {
        stream
            .finish()
            .dropped_data
            .then(|| self.list_failure_audit(audience, "the stream ended inside an event"))
    }

    fn cut_read(&self, audience: &ListAudience, cut: Cut) -> FilteredList {
        let audits = cut
            .lists
            .iter()
            .filter(|list| !list.removed.is_empty())
            .map(|list| self.list_audit(audience, list))
            .collect();
        FilteredList {
            body: cut.body,
            audits,
            failed: false,
        }
    }

    fn list_audit(&self, audience: &ListAudience, list: &ListSummary) -> AuditRecord {
        let mut audit = audience.audit.clone();
        audit.reason = format!(
            "{}; {} filtered: {} kept, {} removed",
            audit.reason,
            list.kind.result_key(),
            list.kept,
            list.removed.len()
        )
        .into();
        audit.list = Some(json!({
            "kind": list.kind.result_key(),
            "kept": list.kept,
            "removed": list.removed,
        }));
        audit
    }

    fn list_failure_audit(&self, audience: &ListAudience, why: &str) -> AuditRecord {
        let mut audit = audience.audit.clone();
        audit.decision = "deny";
        audit.list = Some(json!({"error": why}));
        audit.reason = format!("response could not be filtered: {why}").into();
        audit
    }

    /// Fail closed on a response body Warden cannot read (too large, not
    /// JSON, compressed, of another content type): the client gets a
    /// JSON-RPC error for its request in the response's framing, and the
    /// audit says why.
    pub fn unfilterable_list(
        &self,
        audience: &ListAudience,
        event_stream: bool,
        why: &str,
    ) -> FilteredList {
        let audit = self.list_failure_audit(audience, why);
        let id = audience.request_id.clone().unwrap_or(Value::Null);
        FilteredList {
            body: Some(listing::failure_body(&id, event_stream, &audit.reason)),
            audits: vec![audit],
            failed: true,
        }
    }
}
