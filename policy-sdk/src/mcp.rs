//! The MCP request model: what one Streamable HTTP request asks the server to
//! do, decoded strictly from its JSON-RPC body (or from its HTTP method for
//! the GET stream and DELETE of a session).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::JsonLimits;

mod envelope;
pub mod methods;

pub use methods::{MethodFacts, MethodKind, Param, ProtocolRevision, TargetKind};

/// Pseudo-method naming a GET request (the server-to-client SSE stream).
pub const HTTP_GET_METHOD: &str = "http:GET";
/// Pseudo-method naming a DELETE request (the end of a session).
pub const HTTP_DELETE_METHOD: &str = "http:DELETE";
/// Pseudo-method naming a client's JSON-RPC response to a server request
/// (sampling, elicitation, roots); such messages carry no method of their own.
pub const RESPONSE_METHOD: &str = "$response";

/// The first revision without sessions: request metadata in headers
/// (`Mcp-Method`, `Mcp-Name`) and the protocol version in every request's
/// `_meta`.
pub const MODERN_REVISION: &str = ProtocolRevision::V2026_07_28.as_str();
/// What a request without `MCP-Protocol-Version` is taken to speak.
pub const ASSUMED_REVISION: &str = ProtocolRevision::V2025_03_26.as_str();
/// The `_meta` key carrying a 2026-07-28 request's protocol version.
pub const PROTOCOL_VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// How a Streamable HTTP body is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `application/json`: one message.
    Json,
    /// `text/event-stream`: Server-Sent Events, a message per `data`.
    EventStream,
}

impl Framing {
    /// The framing a `Content-Type` names (parameters and case ignored),
    /// if it is one of the two.
    pub fn of(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if essence.eq_ignore_ascii_case("text/event-stream") {
            Some(Self::EventStream)
        } else {
            None
        }
    }
}

/// JSON-RPC error codes Warden answers with.
pub mod codes {
    /// Invalid JSON (JSON-RPC 2.0).
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a valid JSON-RPC request object (JSON-RPC 2.0).
    pub const INVALID_REQUEST: i64 = -32600;
    /// Parameters the method needs are missing or of the wrong type (JSON-RPC 2.0).
    pub const INVALID_PARAMS: i64 = -32602;
    /// The method does not exist (JSON-RPC 2.0).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// MCP 2026-07-28: a request-metadata header disagrees with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP 2026-07-28: the protocol version is not supported; `data` lists
    /// the supported ones.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// Warden's authorization denial. Chosen outside the range JSON-RPC
    /// reserves (-32768..=-32000), which MCP also draws its own codes from.
    pub const ACCESS_DENIED: i64 = -31403;
    /// Warden's authentication failure, carried in the body of a 401.
    pub const UNAUTHENTICATED: i64 = -31401;
}

/// What kind of JSON-RPC message a body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Has a method and an id: expects a response.
    Request,
    /// Has a method and no id.
    Notification,
    /// A client's answer to a server request: an id and a result or error.
    Response,
    /// Not JSON-RPC at all: a GET or DELETE on the MCP endpoint.
    Http,
}

/// The thing a request acts on, when its method has one.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    None,
    Tool { name: String, arguments: Value },
    Resource { uri: String },
    Prompt { name: String },
}

/// One decoded MCP message.
#[derive(Debug, Clone, PartialEq)]
pub struct McpRequest {
    pub kind: MessageKind,
    /// The JSON-RPC method, or one of the pseudo-methods above.
    pub method: String,
    /// The JSON-RPC id (string or integer), echoed in Warden's error answers.
    pub id: Option<Value>,
    pub target: Target,
    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`, when sent.
    pub meta_protocol_version: Option<Value>,
}

impl McpRequest {
    /// The request a GET (SSE stream) or DELETE (session end) stands for.
    pub fn http(method: &str) -> Self {
        Self {
            kind: MessageKind::Http,
            method: method.to_owned(),
            id: None,
            target: Target::None,
            meta_protocol_version: None,
        }
    }

    /// The value 2026-07-28 clients mirror into `Mcp-Name`: the tool or
    /// prompt name, or the resource URI, of the methods that carry one.
    pub fn mirrored_name(&self) -> Option<&str> {
        MethodFacts::named(&self.method)?.mcp_name?;
        self.target_name()
    }

    /// The target's name (tool, prompt) or URI (resource).
    pub fn target_name(&self) -> Option<&str> {
        match &self.target {
            Target::Tool { name, .. } | Target::Prompt { name } => Some(name),
            Target::Resource { uri } => Some(uri),
            Target::None => None,
        }
    }

    pub fn tool_name(&self) -> Option<&str> {
        match &self.target {
            Target::Tool { name, .. } => Some(name),
            _ => None,
        }
    }

    pub fn resource_uri(&self) -> Option<&str> {
        match &self.target {
            Target::Resource { uri } => Some(uri),
            _ => None,
        }
    }

    pub fn prompt_name(&self) -> Option<&str> {
        match &self.target {
            Target::Prompt { name } => Some(name),
            _ => None,
        }
    }

    pub fn arguments(&self) -> Option<&Value> {
        match &self.target {
            Target::Tool { arguments, .. } => Some(arguments),
            _ => None,
        }
    }
}

/// Why a body is not a message Warden can judge. Each maps to the JSON-RPC
/// error the client gets back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not valid JSON: {0}")]
    Parse(String),
    #[error("JSON-RPC batches are not accepted: send one message per request")]
    Batch,
    #[error("invalid JSON-RPC message: {0}")]
    InvalidRequest(String),
    /// The message is well formed but the parameters Warden must judge are
    /// not; carries the request id so the error can answer it.
    #[error("invalid params for `{method}`: {message}")]
    InvalidParams {
        method: String,
        id: Option<Value>,
        message: String,
    },
}

impl DecodeError {
    /// The JSON-RPC error code the client receives.
    pub fn code(&self) -> i64 {
        match self {
            DecodeError::Parse(_) => codes::PARSE_ERROR,
            DecodeError::Batch | DecodeError::InvalidRequest(_) => codes::INVALID_REQUEST,
            DecodeError::InvalidParams { .. } => codes::INVALID_PARAMS,
        }
    }

    /// The id to answer with, when the message had a usable one.
    pub fn id(&self) -> Option<&Value> {
        match self {
            DecodeError::InvalidParams { id, .. } => id.as_ref(),
            _ => None,
        }
    }
}

/// What the decoder needs besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    pub limits: JsonLimits,
    /// The revision the request speaks, if this build knows it: it says
    /// which methods are requests and which notifications.
    pub revision: Option<ProtocolRevision>,
    /// The tool names `tools/call` may carry.
    pub tool_names: ToolNameFormat,
}

impl Decoding {
    /// Decoding as a request without `MCP-Protocol-Version` is read, with
    /// the specification's tool names.
    pub fn new(limits: JsonLimits) -> Self {
        Self {
            limits,
            revision: ProtocolRevision::parse(ASSUMED_REVISION),
            tool_names: ToolNameFormat::default(),
        }
    }
}

/// Decodes one JSON-RPC message from a POST body.
pub fn decode_body(body: &[u8], decoding: Decoding) -> Result<McpRequest, DecodeError> {
    let envelope =
        envelope::read(body, decoding.limits).map_err(|e| DecodeError::Parse(e.to_string()))?;
    judge_envelope(envelope, decoding)
}

/// Decodes a body the way [`decode_body`] did before it read bodies in
/// one pass: the whole body into a tree, the envelope out of it. The
/// tests and the `mcp_decode` fuzz target hold the two to the same result.
#[cfg(any(test, feature = "testing"))]
pub fn decode_body_via_tree(body: &[u8], decoding: Decoding) -> Result<McpRequest, DecodeError> {
    let value = crate::json::parse_strict(body, decoding.limits)
        .map_err(|e| DecodeError::Parse(e.to_string()))?;
    judge_envelope(envelope::Envelope::from_tree(value), decoding)
}

/// What the message a body held is, or why it is not one Warden judges.
fn judge_envelope(
    envelope: envelope::Envelope,
    decoding: Decoding,
) -> Result<McpRequest, DecodeError> {
    match envelope.shape {
        envelope::Shape::Object => {}
        envelope::Shape::Array => return Err(DecodeError::Batch),
        envelope::Shape::Other => {
            return Err(DecodeError::InvalidRequest(
                "the body must be one JSON object".into(),
            ));
        }
    }
    if let Some(unknown) = &envelope.unknown {
        return Err(DecodeError::InvalidRequest(format!(
            "unknown member `{unknown}`"
        )));
    }
    if envelope.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return Err(DecodeError::InvalidRequest(
            "`jsonrpc` must be \"2.0\"".into(),
        ));
    }
    let id = match envelope.id {
        None => None,
        Some(id @ Value::String(_)) => Some(id),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
        Some(_) => {
            return Err(DecodeError::InvalidRequest(
                "`id` must be a string or an integer".into(),
            ));
        }
    };
    let method = match envelope.method {
        None => None,
        Some(Value::String(m)) if !m.is_empty() => Some(m),
        Some(_) => {
            return Err(DecodeError::InvalidRequest(
                "`method` must be a non-empty string".into(),
            ));
        }
    };

    let Some(method) = method else {
        // A client's response to a server-initiated request.
        if id.is_none() || envelope.has_result == envelope.has_error || envelope.params.is_some() {
            return Err(DecodeError::InvalidRequest(
                "a message without `method` must be a response with an `id` and exactly one of `result` or `error`".into(),
            ));
        }
        return Ok(McpRequest {
            kind: MessageKind::Response,
            method: RESPONSE_METHOD.to_owned(),
            id,
            target: Target::None,
            meta_protocol_version: None,
        });
    };
    if envelope.has_result || envelope.has_error {
        return Err(DecodeError::InvalidRequest(
            "a request cannot carry `result` or `error`".into(),
        ));
    }
    if method.starts_with("http:") || method == RESPONSE_METHOD {
        return Err(DecodeError::InvalidRequest(format!(
            "`{method}` is not a JSON-RPC method"
        )));
    }
    let mut params = match envelope.params {
        None => None,
        Some(envelope::Shape::Object) => Some(envelope.params_members),
        Some(_) => {
            return Err(DecodeError::InvalidRequest(
                "`params` must be an object".into(),
            ));
        }
    };
    // Request or notification is the method's to say, not the `id`'s: a
    // server dispatches by method, so a mismatch would be read two ways.
    let kind = match (
        MethodFacts::kind_of(&method, decoding.revision),
        id.is_some(),
    ) {
        (MethodKind::Request, true) => MessageKind::Request,
        (MethodKind::Notification, false) => MessageKind::Notification,
        (MethodKind::Notification, true) => {
            return Err(DecodeError::InvalidRequest(format!(
                "`{method}` is a notification and cannot carry an `id`"
            )));
        }
        (MethodKind::Request, false) => {
            return Err(DecodeError::InvalidRequest(format!(
                "`{method}` is a request and needs an `id`"
            )));
        }
    };
    let target = match target_of(&method, params.as_mut(), decoding.tool_names) {
        Ok(target) => target,
        Err(message) => {
            return Err(DecodeError::InvalidParams {
                method,
                id,
                message,
            });
        }
    };
    let meta_protocol_version = params.and_then(|p| p.meta_protocol_version);
    Ok(McpRequest {
        kind,
        method,
        id,
        target,
        meta_protocol_version,
    })
}

/// The tool names a `tools/call` may carry (`filter.tool_names`). Whatever
/// the format, a name is 1 to 128 characters and holds no control
/// character or space: a name a server may trim or split is never judged
/// under another reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolNameFormat {
    /// The MCP specification's format (2025-11-25): only `A-Z a-z 0-9 _ - .`.
    #[default]
    Spec,
    /// Any printable ASCII except space (`!` to `~`): admits names such as
    /// `github/create_issue` or `fs:read` that servers in the field use.
    PrintableAscii,
}

impl ToolNameFormat {
    /// Whether `name` is a tool name in this format, and if not, why.
    pub fn check(self, name: &str) -> Result<(), String> {
        let (allowed, described): (fn(u8) -> bool, &str) = match self {
            Self::Spec => (
                |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'),
                "1 to 128 of A-Z a-z 0-9 _ - .",
            ),
            Self::PrintableAscii => (
                |b| b.is_ascii_graphic(),
                "1 to 128 printable ASCII characters, no space",
            ),
        };
        if (1..=128).contains(&name.len()) && name.bytes().all(allowed) {
            Ok(())
        } else {
            Err(format!(
                "`params.name` {name:?} is not a tool name ({described})"
            ))
        }
    }
}

/// Refuses control characters (C0, DEL, C1) in an identifier.
fn no_controls(field: &str, value: String) -> Result<String, String> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "`params.{field}` contains the control character U+{:04X}",
            u32::from(c)
        )),
        None => Ok(value),
    }
}

/// The target of `method` (as any revision defines it: a server may still
/// serve a method the request's revision dropped, so its target is judged
/// all the same), from its required parameter, taken out of `params`.
fn target_of(
    method: &str,
    mut params: Option<&mut envelope::Params>,
    tool_names: ToolNameFormat,
) -> Result<Target, String> {
    let Some(facts) = MethodFacts::named(method).and_then(|f| f.target) else {
        return Ok(Target::None);
    };
    let key = facts.param.key();
    let member = params.as_deref_mut().and_then(|p| match facts.param {
        Param::Name => p.name.take(),
        Param::Uri => p.uri.take(),
    });
    let value = match member {
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("`params.{key}` must be a string")),
        None => return Err(format!("`params.{key}` is required")),
    };
    Ok(match facts.kind {
        TargetKind::Tool => {
            tool_names.check(&value)?;
            let arguments = match params.and_then(|p| p.arguments.take()) {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(args @ Value::Object(_)) => args,
                Some(_) => return Err("`params.arguments` must be an object".into()),
            };
            Target::Tool {
                name: value,
                arguments,
            }
        }
        TargetKind::Resource => Target::Resource {
            uri: no_controls(key, value)?,
        },
        TargetKind::Prompt => Target::Prompt {
            name: no_controls(key, value)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(s: &str) -> Result<McpRequest, DecodeError> {
        decode_body(s.as_bytes(), Decoding::new(JsonLimits::default()))
    }

    #[test]
    fn decodes_a_tool_call() {
        let r = decode(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy","arguments":{"env":"prod"}}}"#).unwrap();
        assert_eq!(r.kind, MessageKind::Request);
        assert_eq!(r.method, "tools/call");
        assert_eq!(r.id, Some(json!(7)));
        assert_eq!(r.tool_name(), Some("deploy"));
        assert_eq!(r.arguments(), Some(&json!({"env":"prod"})));
    }

    #[test]
    fn decodes_resources_prompts_notifications_and_responses() {
        let r = decode(
            r#"{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"docs://x"}}"#,
        )
        .unwrap();
        assert_eq!(r.resource_uri(), Some("docs://x"));
        let p = decode(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"summarize"}}"#,
        )
        .unwrap();
        assert_eq!(p.prompt_name(), Some("summarize"));
        let n = decode(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(n.kind, MessageKind::Notification);
        assert_eq!(n.id, None);
        let resp = decode(r#"{"jsonrpc":"2.0","id":3,"result":{}}"#).unwrap();
        assert_eq!(resp.kind, MessageKind::Response);
        assert_eq!(resp.method, RESPONSE_METHOD);
    }

    #[test]
    fn rejects_batches() {
        let err = decode(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err();
        assert_eq!(err, DecodeError::Batch);
        assert_eq!(err.code(), codes::INVALID_REQUEST);
    }

    #[test]
    fn rejects_duplicate_keys_that_would_hide_the_real_tool() {
        let err = decode(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","name":"delete_repo"}}"#).unwrap_err();
        assert_eq!(err.code(), codes::PARSE_ERROR);
    }

    #[test]
    fn rejects_malformed_envelopes() {
        for body in [
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            r#"{"id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":""}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","extra":true}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"http:GET"}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#""ping""#,
        ] {
            let err = decode(body).unwrap_err();
            assert_eq!(err.code(), codes::INVALID_REQUEST, "{body}: {err}");
        }
        assert_eq!(decode("{").unwrap_err().code(), codes::PARSE_ERROR);
        assert_eq!(decode("").unwrap_err().code(), codes::PARSE_ERROR);
    }

    #[test]
    fn rejects_missing_or_mistyped_targets_with_the_request_id() {
        for body in [
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":1}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"x","arguments":[]}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"resources/read","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"prompts/get","params":{"name":null}}"#,
        ] {
            let err = decode(body).unwrap_err();
            assert_eq!(err.code(), codes::INVALID_PARAMS, "{body}");
            assert_eq!(err.id(), Some(&json!(9)));
        }
    }

    #[test]
    fn tool_names_outside_the_spec_format_are_refused() {
        let call = |name: &str| {
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": name}})
                .to_string()
        };
        for name in ["delete_repo", "a", "ns.tool-v2_x", &"x".repeat(128)] {
            assert!(decode(&call(name)).is_ok(), "{name}");
        }
        for name in [
            "",
            "delete_repo ",
            " delete_repo",
            "delete_repo\u{0}",
            "ｄｅｌｅｔｅ_repo",
            "dеlete_repo",
            "delete/repo",
            &"x".repeat(129),
        ] {
            let err = decode(&call(name)).unwrap_err();
            assert_eq!(err.code(), codes::INVALID_PARAMS, "{name:?}");
            assert_eq!(err.id(), Some(&json!(9)));
        }
    }

    #[test]
    fn printable_ascii_tool_names_admit_separators_but_never_spaces_or_controls() {
        let relaxed = Decoding {
            tool_names: ToolNameFormat::PrintableAscii,
            ..Decoding::new(JsonLimits::default())
        };
        let call = |name: &str| {
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": name}})
                .to_string()
        };
        for name in [
            "delete_repo",
            "github/create_issue",
            "fs:read",
            "a*b",
            &"~".repeat(128),
        ] {
            let request = decode_body(call(name).as_bytes(), relaxed).unwrap();
            assert_eq!(request.tool_name(), Some(name));
        }
        // The specification's format refuses what the relaxed one admits.
        assert!(decode(&call("github/create_issue")).is_err());
        for name in [
            "",
            "delete_repo ",
            "delete repo",
            "delete_repo\t",
            "delete_repo\n",
            "delete_repo\u{0}",
            "delete_repo\u{7f}",
            "delete_repo\u{85}",
            "café",
            "dеlete_repo",
            &"x".repeat(129),
        ] {
            let err = decode_body(call(name).as_bytes(), relaxed).unwrap_err();
            assert_eq!(err.code(), codes::INVALID_PARAMS, "{name:?}");
            assert_eq!(err.id(), Some(&json!(9)));
        }
    }

    #[test]
    fn control_characters_in_uris_and_prompt_names_are_refused() {
        for body in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "docs://public/a\nb"}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "docs://public/a\u{0}"}}),
            json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {"name": "summ\u{85}arize"}}),
        ] {
            let err = decode(&body.to_string()).unwrap_err();
            assert_eq!(err.code(), codes::INVALID_PARAMS, "{body}");
        }
    }

    #[test]
    fn the_method_decides_request_or_notification() {
        let err =
            decode(r#"{"jsonrpc":"2.0","id":3,"method":"notifications/initialized"}"#).unwrap_err();
        assert_eq!(err.code(), codes::INVALID_REQUEST, "{err}");
        let err =
            decode(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#).unwrap_err();
        assert_eq!(err.code(), codes::INVALID_REQUEST, "{err}");
        let note = decode(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(note.kind, MessageKind::Notification);
        let request = decode(r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#).unwrap();
        assert_eq!(request.kind, MessageKind::Request);
    }

    #[test]
    fn every_revision_decides_request_or_notification_by_its_table() {
        for revision in ProtocolRevision::ALL {
            let decoding = Decoding {
                revision: Some(revision),
                ..Decoding::new(JsonLimits::default())
            };
            let decode = |body: &str| decode_body(body.as_bytes(), decoding);
            let with_id = decode(r#"{"jsonrpc":"2.0","id":1,"method":"notifications/cancelled"}"#);
            assert_eq!(with_id.unwrap_err().code(), codes::INVALID_REQUEST);
            let without_id = decode(r#"{"jsonrpc":"2.0","method":"tools/list"}"#);
            assert_eq!(without_id.unwrap_err().code(), codes::INVALID_REQUEST);
            let request = decode(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
            assert_eq!(request.kind, MessageKind::Request);
            // A method this revision does not have, or no one has, is read by
            // its name, as before the table.
            let note = decode(r#"{"jsonrpc":"2.0","method":"notifications/custom"}"#).unwrap();
            assert_eq!(note.kind, MessageKind::Notification);
            let custom = decode(r#"{"jsonrpc":"2.0","id":2,"method":"server/discover"}"#).unwrap();
            assert_eq!(custom.kind, MessageKind::Request);
            assert!(decode(r#"{"jsonrpc":"2.0","method":"server/discover"}"#).is_err());
        }
        // Without a known revision, the table's facts in any revision.
        let unknown = Decoding {
            revision: None,
            ..Decoding::new(JsonLimits::default())
        };
        let err = decode_body(
            br#"{"jsonrpc":"2.0","id":1,"method":"notifications/initialized"}"#,
            unknown,
        )
        .unwrap_err();
        assert_eq!(err.code(), codes::INVALID_REQUEST);
    }

    #[test]
    fn a_method_its_revision_dropped_keeps_its_target() {
        // A server may still serve `resources/subscribe` to a 2026-07-28
        // client: its URI is judged all the same.
        let modern = Decoding {
            revision: Some(ProtocolRevision::V2026_07_28),
            ..Decoding::new(JsonLimits::default())
        };
        let request = decode_body(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"docs://x"}}"#,
            modern,
        )
        .unwrap();
        assert_eq!(request.resource_uri(), Some("docs://x"));
        assert_eq!(request.mirrored_name(), None);
    }
}
