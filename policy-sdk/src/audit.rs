//! Audit records: one JSON line per decision.

use serde::Serialize;
use serde_json::Value;

use crate::identity::Identity;
use crate::mcp::McpRequest;
use crate::policy::{Decision, Shadow};

/// Marks Warden's audit lines in a proxy's log.
pub const AUDIT_SCHEMA: &str = "warden/v1";

/// One decision, as recorded. Never holds the token; holds tool arguments
/// only when the configuration asks for them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub audit: &'static str,
    pub time: String,
    /// Warden's own id for the request.
    pub request_id: Option<String>,
    /// The `x-request-id` the request arrived with, when it differs from
    /// `request_id`: a client may choose it, so it only helps to find the
    /// client's side of a story.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    pub decision: &'static str,
    /// The HTTP status Warden answered with; absent when forwarded.
    pub status: Option<u16>,
    pub rule: Option<String>,
    pub owner: Option<String>,
    pub reason: String,
    /// Type of the party performing the request (the current actor when
    /// delegated).
    pub actor_type: Option<&'static str>,
    pub subject: Option<String>,
    pub subject_type: Option<&'static str>,
    /// The current actor, when someone acts for the subject.
    pub actor: Option<String>,
    /// Subject, current actor, then earlier actors.
    pub chain: Vec<String>,
    pub client_id: Option<String>,
    pub issuer: Option<String>,
    pub http_method: String,
    pub method: Option<String>,
    pub tool: Option<String>,
    pub resource: Option<String>,
    pub prompt: Option<String>,
    pub jsonrpc_id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// The MCP revision the request spoke (`MCP-Protocol-Version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// How a denial was answered (`error`, `forbidden`, `step_up`, `disguise`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_mode: Option<&'static str>,
    /// For a default deny answered in a rule's mode: that (allow) rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_mode_rule: Option<String>,
    /// For a list response: what was removed, or why it could not be filtered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<Value>,
    /// What rules in shadow would have decided, where it differs from the
    /// decision (with the whole policy in shadow: always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
    pub policy: String,
}

impl AuditRecord {
    /// A record with request facts filled in and no decision details yet.
    pub(crate) fn new(
        now_unix_nanos: u128,
        http_method: &str,
        request_id: Option<&str>,
        policy: &str,
    ) -> Self {
        Self {
            audit: AUDIT_SCHEMA,
            time: rfc3339(now_unix_nanos),
            request_id: request_id.map(str::to_owned),
            client_request_id: None,
            decision: "deny",
            status: None,
            rule: None,
            owner: None,
            reason: String::new(),
            actor_type: None,
            subject: None,
            subject_type: None,
            actor: None,
            chain: Vec::new(),
            client_id: None,
            issuer: None,
            http_method: http_method.to_owned(),
            method: None,
            tool: None,
            resource: None,
            prompt: None,
            jsonrpc_id: None,
            arguments: None,
            protocol_version: None,
            deny_mode: None,
            deny_mode_rule: None,
            list: None,
            shadow: None,
            policy: policy.to_owned(),
        }
    }

    pub(crate) fn with_identity(mut self, identity: &Identity) -> Self {
        self.actor_type = identity.acting().actor_type.map(|t| t.as_str());
        self.subject = Some(identity.subject.subject.clone());
        self.subject_type = identity.subject.actor_type.map(|t| t.as_str());
        self.actor = identity.actor.as_ref().map(|a| a.subject.clone());
        self.chain = identity.chain();
        self.client_id = identity.client_id.clone();
        self.issuer = Some(identity.issuer.clone());
        self
    }

    pub(crate) fn with_request(mut self, request: &McpRequest, include_arguments: bool) -> Self {
        self.method = Some(request.method.clone());
        self.tool = request.tool_name().map(str::to_owned);
        self.resource = request.resource_uri().map(str::to_owned);
        self.prompt = request.prompt_name().map(str::to_owned);
        self.jsonrpc_id = request.id.clone();
        if include_arguments {
            self.arguments = request.arguments().cloned();
        }
        self
    }

    pub(crate) fn with_decision(mut self, decision: &Decision) -> Self {
        self.decision = decision.effect.as_str();
        self.rule = decision.rule.clone();
        self.owner = decision.owner.clone();
        self.reason = decision.reason.clone();
        self.deny_mode_rule = decision.mode_rule.clone();
        self
    }

    pub(crate) fn with_shadow(mut self, shadow: Option<Shadow>) -> Self {
        self.shadow = shadow;
        self
    }

    pub(crate) fn denied(mut self, status: u16, reason: impl Into<String>) -> Self {
        self.decision = "deny";
        self.status = Some(status);
        self.reason = reason.into();
        self
    }

    pub fn is_allowed(&self) -> bool {
        self.decision == "allow"
    }

    /// What decided the request, for metrics (a small, fixed set):
    /// `policy` (the rules allowed or denied it), `token` (no verified
    /// identity: 401), `request` (refused for its shape, path, origin or
    /// revision), `error` (a host failure, an upstream that answered
    /// early, a reset before the decision).
    pub fn outcome_class(&self) -> &'static str {
        match (self.is_allowed(), self.deny_mode, self.status) {
            (true, _, _) | (false, Some(_), _) => "policy",
            (false, None, Some(401)) => "token",
            (false, None, Some(status)) if (400..500).contains(&status) => "request",
            (false, None, _) => "error",
        }
    }

    /// The record as one JSON line.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!("{{\"audit\":\"{AUDIT_SCHEMA}\",\"decision\":\"{}\",\"reason\":\"audit record failed to serialize: {e}\"}}", self.decision)
        })
    }
}

/// Formats Unix time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(unix_nanos: u128) -> String {
    let secs = (unix_nanos / 1_000_000_000) as i64;
    let millis = (unix_nanos / 1_000_000) % 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (H. Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339(1_795_872_000_000_000_000),
            "2026-11-28T13:20:00.000Z"
        );
    }
}
