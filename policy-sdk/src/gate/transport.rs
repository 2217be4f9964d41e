//! Streamable HTTP transport rules that hold whoever asks: protocol revision
//! window, `Origin`, where a token may travel, content type, and the
//! 2026-07-28 request-metadata headers checked against the body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::RequestHead;
use crate::config::FilterSettings;
use crate::mcp::methods::INITIALIZE;
use crate::mcp::{ASSUMED_REVISION, Framing, MODERN_REVISION, McpRequest, ProtocolRevision, codes};

/// Why a request breaks a transport rule: what the client gets back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: i64,
    pub message: &'static str,
    pub reason: String,
    /// Extra `data` members for the JSON-RPC error.
    pub data: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Refusal {
    pub(super) fn new(
        status: u16,
        code: i64,
        message: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message,
            reason: reason.into(),
            data: None,
            headers: Vec::new(),
        }
    }

    fn mismatch(reason: impl Into<String>) -> Self {
        Self::new(400, codes::HEADER_MISMATCH, "Header mismatch", reason)
    }
}

/// The revision a request speaks, from `MCP-Protocol-Version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Revision<'a> {
    pub version: &'a str,
    /// The header was sent (otherwise `version` is assumed).
    pub declared: bool,
}

impl<'a> Revision<'a> {
    /// The revision of a head that [`check_head`] accepted.
    pub fn of(head: &RequestHead<'a>) -> Self {
        match head.protocol_version.map(str::trim) {
            Some(version) => Revision {
                version,
                declared: true,
            },
            None => Revision {
                version: ASSUMED_REVISION,
                declared: false,
            },
        }
    }

    /// The revision as this build knows it (every revision [`check_head`]
    /// accepted is known).
    pub fn known(&self) -> Option<ProtocolRevision> {
        ProtocolRevision::parse(self.version)
    }

    /// 2026-07-28 or later: no sessions, request metadata in headers.
    pub fn is_modern(&self) -> bool {
        self.version >= MODERN_REVISION
    }
}

/// Headers whose duplicates would let two readers see different requests.
pub const ROUTING_HEADERS: [&str; 5] = [
    "authorization",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
    "mcp-session-id",
];

/// Checks a configured revision window once, at compile time.
pub(crate) fn check_window(settings: &FilterSettings) -> Result<(), (&'static str, String)> {
    let window = &settings.protocol_versions;
    for (field, value) in [
        ("protocol_versions.min", &window.min),
        ("protocol_versions.max", &window.max),
    ] {
        if ProtocolRevision::parse(value).is_none() {
            let known: Vec<_> = ProtocolRevision::ALL.map(ProtocolRevision::as_str).into();
            return Err((
                field,
                format!(
                    "`{value}` is not an MCP revision this build knows ({})",
                    known.join(", ")
                ),
            ));
        }
    }
    if window.min > window.max {
        return Err((
            "protocol_versions",
            format!("min {} is newer than max {}", window.min, window.max),
        ));
    }
    Ok(())
}

/// The revisions inside the configured window.
fn supported(settings: &FilterSettings) -> Vec<&'static str> {
    let window = &settings.protocol_versions;
    ProtocolRevision::ALL
        .map(ProtocolRevision::as_str)
        .into_iter()
        .filter(|r| *r >= window.min.as_str() && *r <= window.max.as_str())
        .collect()
}

fn unsupported(settings: &FilterSettings, requested: &str, reason: String) -> Refusal {
    Refusal {
        data: Some(json!({"supported": supported(settings), "requested": requested})),
        ..Refusal::new(
            400,
            codes::UNSUPPORTED_PROTOCOL_VERSION,
            "Unsupported protocol version",
            reason,
        )
    }
}

/// Rules on the request head that need no identity.
pub(crate) fn check_head<'a>(
    settings: &FilterSettings,
    head: &RequestHead<'a>,
) -> Result<Revision<'a>, Refusal> {
    if !matches!(head.method, "POST" | "GET" | "DELETE") {
        return Err(Refusal {
            headers: vec![("allow", "GET, POST, DELETE".into())],
            ..Refusal::new(
                405,
                codes::INVALID_REQUEST,
                "Method not allowed",
                format!(
                    "HTTP method `{}` is not part of the MCP transport",
                    head.method
                ),
            )
        });
    }
    if let Some(origin) = head.origin
        && !settings
            .allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin.trim()))
    {
        return Err(Refusal::new(
            403,
            codes::INVALID_REQUEST,
            "Forbidden origin",
            format!("origin `{origin}` is not allowed"),
        ));
    }
    if query_has_access_token(head.path) {
        return Err(Refusal {
            headers: vec![(
                "www-authenticate",
                format!(
                    "Bearer realm=\"{}\", error=\"invalid_request\"",
                    settings.realm
                ),
            )],
            ..Refusal::new(
                400,
                codes::INVALID_REQUEST,
                "Invalid request",
                "an access token in the query string is refused: send it in the Authorization header",
            )
        });
    }
    if let Some(name) = head.duplicated {
        let code = if name.starts_with("mcp-") {
            codes::HEADER_MISMATCH
        } else {
            codes::INVALID_REQUEST
        };
        return Err(Refusal::new(
            400,
            code,
            "Invalid request",
            format!("the `{name}` header appears more than once"),
        ));
    }
    let revision = Revision::of(head);
    if revision.declared {
        let version = revision.version;
        let window = &settings.protocol_versions;
        if ProtocolRevision::parse(version).is_none()
            || version < window.min.as_str()
            || version > window.max.as_str()
        {
            return Err(unsupported(
                settings,
                version,
                format!("MCP-Protocol-Version `{version}` is not supported"),
            ));
        }
    }
    if revision.is_modern() && head.method != "POST" {
        return Err(Refusal {
            headers: vec![("allow", "POST".into())],
            ..Refusal::new(
                405,
                codes::INVALID_REQUEST,
                "Method not allowed",
                format!(
                    "revision {} has no sessions: `{}` is not part of its transport",
                    revision.version, head.method
                ),
            )
        });
    }
    if head.method == "POST" {
        if head.content_type.and_then(Framing::of) != Some(Framing::Json) {
            return Err(Refusal::new(
                415,
                codes::INVALID_REQUEST,
                "Unsupported media type",
                format!(
                    "a POST to the MCP endpoint must be application/json, not `{}`",
                    head.content_type.unwrap_or("(none)")
                ),
            ));
        }
        // A body Warden would judge encoded while the server decodes it:
        // two readings of one request. Only the identity coding is read.
        if let Some(coding) = head
            .content_encoding
            .map(str::trim)
            .filter(|c| !c.eq_ignore_ascii_case("identity"))
        {
            return Err(Refusal::new(
                415,
                codes::INVALID_REQUEST,
                "Unsupported media type",
                format!(
                    "a request body in Content-Encoding `{coding}` is not read: send it unencoded"
                ),
            ));
        }
    } else if !revision.declared && ASSUMED_REVISION < settings.protocol_versions.min.as_str() {
        return Err(unsupported(
            settings,
            ASSUMED_REVISION,
            "MCP-Protocol-Version is missing and the assumed 2025-03-26 is not supported".into(),
        ));
    }
    Ok(revision)
}

/// Rules that compare the head with the decoded body. Never decides from
/// headers alone: headers can only make a request fail, the body decides.
pub(crate) fn check_body(
    settings: &FilterSettings,
    head: &RequestHead<'_>,
    revision: Revision<'_>,
    request: &McpRequest,
) -> Result<(), Refusal> {
    if !revision.declared
        && request.method != INITIALIZE.name
        && ASSUMED_REVISION < settings.protocol_versions.min.as_str()
    {
        return Err(unsupported(
            settings,
            ASSUMED_REVISION,
            "MCP-Protocol-Version is missing and the assumed 2025-03-26 is not supported".into(),
        ));
    }
    let modern = revision.is_modern();
    let is_call = request.kind == crate::mcp::MessageKind::Request;
    // The body's own protocol version must agree with the header.
    match (&request.meta_protocol_version, modern && is_call) {
        (None, true) => {
            return Err(Refusal::new(
                400,
                codes::INVALID_PARAMS,
                "Invalid params",
                format!(
                    "a {MODERN_REVISION} request must carry params._meta[\"{}\"]",
                    crate::mcp::PROTOCOL_VERSION_META_KEY
                ),
            ));
        }
        (Some(in_body), _) if revision.declared && in_body.as_str() != Some(revision.version) => {
            return Err(Refusal::mismatch(format!(
                "MCP-Protocol-Version `{}` does not match the body's protocol version {in_body}",
                revision.version
            )));
        }
        _ => {}
    }
    match head.mcp_method {
        Some(header) if header != request.method => {
            return Err(Refusal::mismatch(format!(
                "Mcp-Method `{header}` does not match the body's method `{}`",
                request.method
            )));
        }
        None if modern && is_call => {
            return Err(Refusal::mismatch(format!(
                "a {MODERN_REVISION} request must carry Mcp-Method"
            )));
        }
        _ => {}
    }
    if let Some(name) = request.mirrored_name() {
        match head.mcp_name.map(decode_header_value) {
            Some(Some(decoded)) if decoded == name => {}
            Some(_) => {
                return Err(Refusal::mismatch(format!(
                    "Mcp-Name does not match the body's `{name}`"
                )));
            }
            None if modern => {
                return Err(Refusal::mismatch(format!(
                    "a {MODERN_REVISION} `{}` request must carry Mcp-Name",
                    request.method
                )));
            }
            None => {}
        }
    } else if head.mcp_name.is_some() && modern {
        return Err(Refusal::mismatch(format!(
            "`{}` carries no name, yet Mcp-Name was sent",
            request.method
        )));
    }
    Ok(())
}

/// Decodes an MCP header value: verbatim, or the `=?base64?…?=` form for
/// values that are not plain printable ASCII. A malformed or non-canonical
/// encoding gives `None`, so it never matches a body value by accident.
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// The inverse of [`decode_header_value`]: values that are not plain
/// printable ASCII (or that would read as the sentinel) travel base64-encoded.
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && value.trim() == value
        && !value.starts_with("=?base64?");
    if plain {
        value.to_owned()
    } else {
        format!("=?base64?{}?=", STANDARD.encode(value))
    }
}

/// Whether the query string carries an `access_token` parameter (name
/// compared after percent-decoding, so `access%5Ftoken` is caught too).
fn query_has_access_token(path: &str) -> bool {
    let Some((_, query)) = path.split_once('?') else {
        return false;
    };
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        percent_decode(name).eq_ignore_ascii_case("access_token")
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_decode_plain_and_base64() {
        assert_eq!(decode_header_value("deploy").as_deref(), Some("deploy"));
        // "café" in the sentinel form.
        assert_eq!(
            decode_header_value("=?base64?Y2Fmw6k=?=").as_deref(),
            Some("café")
        );
        assert_eq!(decode_header_value("=?base64?not base64?="), None);
        // Non-canonical: trailing bits set.
        assert_eq!(decode_header_value("=?base64?Y2Fmw6l=?="), None);
        // Invalid UTF-8.
        assert_eq!(decode_header_value("=?base64?/w==?="), None);
    }

    #[test]
    fn header_values_round_trip() {
        for value in ["deploy", "café", " padded", "=?base64?x?=", "line\nbreak"] {
            let encoded = encode_header_value(value);
            assert_eq!(encoded == value, value == "deploy", "{value}: {encoded}");
            assert_eq!(decode_header_value(&encoded).as_deref(), Some(value));
        }
    }

    #[test]
    fn access_tokens_in_queries_are_found() {
        assert!(query_has_access_token("/mcp?access_token=x"));
        assert!(query_has_access_token("/mcp?a=1&ACCESS_TOKEN=x"));
        assert!(query_has_access_token("/mcp?access%5Ftoken=x"));
        assert!(!query_has_access_token("/mcp?token=x"));
        assert!(!query_has_access_token("/mcp"));
        assert!(!query_has_access_token("/mcp#access_token=x"));
    }
}
