//! Audit records: one JSON line per decision.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use serde::Serialize;
use serde_json::Value;

use crate::identity::Identity;
use crate::mcp::McpRequest;
use crate::policy::{Decision, Shadow};

mod line;

/// The HTTP methods a record names without copying: those of MCP's
/// transport and of a CORS preflight.
const HTTP_METHODS: [&str; 4] = ["POST", "GET", "DELETE", "OPTIONS"];

/// The reason of a record not yet decided, shared: `Arc::from("")` would
/// allocate for every record, only to be replaced by the decision's.
static NO_REASON: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));

/// Marks Warden's audit lines in a proxy's log.
pub const AUDIT_SCHEMA: &str = "warden/v1";

/// One decision, as recorded. Never holds the token; holds tool arguments
/// only when the configuration asks for them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub audit: &'static str,
    pub time: AuditTime,
    /// Warden's own id for the request.
    pub request_id: Option<String>,
    /// The `x-request-id` the request arrived with, when it differs from
    /// `request_id`: a client may choose it, so it only helps to find the
    /// client's side of a story.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    /// W3C trace context of the request (`traceparent`), when it carries a
    /// well-formed one: the trace, and the caller's span, so the line joins
    /// the request's trace in a tracing backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    pub decision: &'static str,
    /// For a refused token: the class of the failure
    /// ([`crate::identity::TokenError::class`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_failure: Option<&'static str>,
    /// The HTTP status Warden answered with; absent when forwarded.
    pub status: Option<u16>,
    /// The deciding rule's names and reason, shared with the compiled
    /// policy (an allow copies none of them).
    pub rule: Option<Arc<str>>,
    pub owner: Option<Arc<str>>,
    pub reason: Arc<str>,
    /// Type of the party performing the request (the current actor when
    /// delegated).
    pub actor_type: Option<&'static str>,
    pub subject: Option<Arc<str>>,
    pub subject_type: Option<&'static str>,
    /// The current actor, when someone acts for the subject.
    pub actor: Option<Arc<str>>,
    /// Subject, current actor, then earlier actors; `None` (written `[]`)
    /// without an identity.
    #[serde(serialize_with = "links")]
    pub chain: Option<Arc<[Arc<str>]>>,
    pub client_id: Option<Arc<str>>,
    pub issuer: Option<Arc<str>>,
    /// Borrowed for the methods an MCP endpoint serves, owned otherwise.
    pub http_method: Cow<'static, str>,
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
    pub deny_mode_rule: Option<Arc<str>>,
    /// For a list response: what was removed, or why it could not be filtered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<Value>,
    /// What rules in shadow would have decided, where it differs from the
    /// decision (with the whole policy in shadow: always).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
    pub policy: Arc<str>,
    /// The deciding rule could not be evaluated (the reason says why):
    /// for metrics, not written to the line.
    #[serde(skip)]
    pub evaluation_error: bool,
    /// For a refused session or request id: the class of the refusal
    /// ([`crate::sealing::UnsealError::class`], or `id_in_flight`): for
    /// metrics, not written to the line.
    #[serde(skip)]
    pub session_refusal: Option<&'static str>,
}

impl AuditRecord {
    /// A record with request facts filled in and no decision details yet.
    pub(crate) fn new(
        now_unix_nanos: u128,
        http_method: &str,
        request_id: Option<&str>,
        policy: &Arc<str>,
    ) -> Self {
        Self {
            audit: AUDIT_SCHEMA,
            time: AuditTime::from_unix_nanos(now_unix_nanos),
            request_id: request_id.map(str::to_owned),
            client_request_id: None,
            trace_id: None,
            span_id: None,
            decision: "deny",
            token_failure: None,
            status: None,
            rule: None,
            owner: None,
            reason: Arc::clone(&NO_REASON),
            actor_type: None,
            subject: None,
            subject_type: None,
            actor: None,
            chain: None,
            client_id: None,
            issuer: None,
            http_method: HTTP_METHODS
                .into_iter()
                .find(|known| *known == http_method)
                .map_or_else(|| Cow::Owned(http_method.to_owned()), Cow::Borrowed),
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
            policy: Arc::clone(policy),
            evaluation_error: false,
            session_refusal: None,
        }
    }

    pub(crate) fn with_identity(mut self, identity: &Identity) -> Self {
        self.actor_type = identity.acting().actor_type.map(|t| t.as_str());
        self.subject_type = identity.subject.actor_type.map(|t| t.as_str());
        let names = identity.audit_names();
        self.subject = Some(Arc::clone(&names.subject));
        self.actor = names.actor.clone();
        self.chain = Some(Arc::clone(&names.chain));
        self.client_id = names.client_id.clone();
        self.issuer = Some(Arc::clone(&names.issuer));
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
        self.rule.clone_from(&decision.rule);
        self.owner.clone_from(&decision.owner);
        self.reason = Arc::clone(&decision.reason);
        self.deny_mode_rule = decision.mode_rule.clone();
        self.evaluation_error = decision.evaluation_error;
        self
    }

    pub(crate) fn with_shadow(mut self, shadow: Option<Shadow>) -> Self {
        self.shadow = shadow;
        self
    }

    pub(crate) fn denied(mut self, status: u16, reason: impl Into<Arc<str>>) -> Self {
        self.decision = "deny";
        self.status = Some(status);
        self.reason = reason.into();
        self
    }

    /// The delegation chain's links (none without an identity).
    pub fn chain_links(&self) -> &[Arc<str>] {
        self.chain.as_deref().unwrap_or_default()
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

    /// The record as one JSON line: what `serde_json` writes of it, written
    /// by hand (see [`line`]).
    pub fn to_json_line(&self) -> String {
        line::write(self)
    }
}

/// The delegation chain as the derived `Serialize` writes a list: `[]`
/// when the record has no identity ([`AuditRecord::chain_links`]).
fn links<S: serde::Serializer>(
    chain: &Option<Arc<[Arc<str>]>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    chain.as_deref().unwrap_or_default().serialize(serializer)
}

/// An instant as RFC 3339 UTC with milliseconds
/// (`2026-12-03T08:15:42.917Z`), held inline: every record has one, and
/// keeping its 24 bytes in the record spares an allocation per request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditTime([u8; AuditTime::LEN]);

impl AuditTime {
    const LEN: usize = 24;

    /// Unix time in nanoseconds, written digit by digit in 64-bit
    /// arithmetic: `format!` and 128-bit division (a library call in Wasm)
    /// made it about 3,500 instructions, a tenth of a cached-token
    /// decision's own work. Unsigned 64-bit nanoseconds reach the year
    /// 2554; later instants read as that limit.
    pub fn from_unix_nanos(unix_nanos: u128) -> Self {
        let nanos = u64::try_from(unix_nanos).unwrap_or(u64::MAX);
        let secs = nanos / 1_000_000_000;
        let millis = (nanos / 1_000_000) % 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
        // Civil-from-days (H. Hinnant's algorithm), proleptic Gregorian; the
        // days are never negative here, so plain division is the Euclidean one.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        let mut text = *b"0000-00-00T00:00:00.000Z";
        // Each field's digits end just before its separator.
        for (value, field) in [
            (year, 0..4),
            (month, 5..7),
            (day, 8..10),
            (h, 11..13),
            (m, 14..16),
            (s, 17..19),
            (millis, 20..23),
        ] {
            if let Some(places) = text.get_mut(field) {
                write_digits(places, value);
            }
        }
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for AuditTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for AuditTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<&str> for AuditTime {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for AuditTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Formats Unix time as RFC 3339 UTC with milliseconds ([`AuditTime`]).
pub fn rfc3339(unix_nanos: u128) -> String {
    AuditTime::from_unix_nanos(unix_nanos).as_str().to_owned()
}

/// Writes the last `places.len()` decimal digits of `value` into
/// `places`, zero-padded.
fn write_digits(places: &mut [u8], value: u64) {
    let mut rest = value;
    for place in places.iter_mut().rev() {
        *place = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
}

/// Appends the decimal digits of `value` (a `u64` has at most 20).
fn push_number(text: &mut String, value: u64) {
    let mut buffer = [b'0'; 20];
    let width = value.checked_ilog10().map_or(1, |log| log as usize + 1);
    let start = buffer.len().saturating_sub(width);
    if let Some(places) = buffer.get_mut(start..) {
        write_digits(places, value);
        text.push_str(std::str::from_utf8(places).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for value in [
            0,
            1,
            9,
            10,
            99,
            100,
            65_535,
            1_000_000_007,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut text = String::from("x");
            push_number(&mut text, value);
            assert_eq!(text, format!("x{value}"));
        }
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123_000_000), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339(1_795_872_000_000_000_000),
            "2026-11-28T13:20:00.000Z"
        );
        assert_eq!(
            rfc3339(1_796_285_742_917_654_321),
            "2026-12-03T08:15:42.917Z"
        );
        assert_eq!(
            rfc3339(1_709_251_199_999_000_000),
            "2024-02-29T23:59:59.999Z"
        );
        // Past what 64-bit nanoseconds hold: the limit, not a wrapped date.
        assert_eq!(rfc3339(u128::MAX), rfc3339(u128::from(u64::MAX)));
        assert_eq!(rfc3339(u128::from(u64::MAX)), "2554-07-21T23:34:33.709Z");
    }
}

/// A W3C Trace Context `traceparent`
/// (`{version}-{trace-id}-{parent-id}-{flags}`, lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    pub trace_id: String,
    pub parent_id: String,
}

impl TraceContext {
    /// The trace and parent ids of a well-formed `traceparent`; `None` for
    /// anything else (a client chooses this header: nothing of a malformed
    /// one reaches an audit line). Version `ff` and all-zero ids are
    /// invalid; a later version may append fields after the flags.
    pub(crate) fn parse(header: &str) -> Option<Self> {
        let hex = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let well_formed = hex(version, 2)
            && version != "ff"
            && hex(trace_id, 32)
            && hex(parent_id, 16)
            && hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && parent_id.bytes().any(|b| b != b'0')
            && (version != "00" || parts.next().is_none());
        well_formed.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod trace_tests {
    use super::TraceContext;

    #[test]
    fn only_well_formed_trace_context_is_read() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            TraceContext::parse(good),
            Some(TraceContext {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                parent_id: "00f067aa0ba902b7".into(),
            })
        );
        // A later version may add fields.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-\"},{\"decision\":\"allow-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
    }
}
