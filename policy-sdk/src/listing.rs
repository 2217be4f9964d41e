//! Rewriting of `*/list` responses so a caller sees only what it may use.
//!
//! A `tools/list`, `prompts/list`, `resources/list` or
//! `resources/templates/list` response is rewritten to keep only the entries
//! `CompiledPolicy::could_allow` accepts for the caller. The response comes
//! as one JSON body or as one event of a Server-Sent Events stream that may
//! also carry notifications and server requests; only the response to the
//! list request is touched.
//!
//! Everything that cannot be read for certain fails closed: an oversized
//! body, an unknown content type, a body or event that is not JSON, a JSON
//! body that does not answer the list request, a list result of the wrong
//! shape, and an entry without a usable name (that entry is removed). The
//! caller then gets `failure_body` instead.

use serde_json::{Map, Value, json};

use crate::identity::Identity;
use crate::mcp::Framing;
use crate::policy::CompiledPolicy;

/// JSON-RPC 2.0 "internal error", used when a list cannot be filtered.
const INTERNAL_ERROR: i64 = -32603;

/// Which list a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    /// The list a request method asks for, if it is one of the four.
    pub fn for_method(method: &str) -> Option<Self> {
        match method {
            "tools/list" => Some(Self::Tools),
            "prompts/list" => Some(Self::Prompts),
            "resources/list" => Some(Self::Resources),
            "resources/templates/list" => Some(Self::ResourceTemplates),
            _ => None,
        }
    }

    /// The request method answered by this list.
    pub fn method(self) -> &'static str {
        match self {
            Self::Tools => "tools/list",
            Self::Prompts => "prompts/list",
            Self::Resources => "resources/list",
            Self::ResourceTemplates => "resources/templates/list",
        }
    }

    /// The member of `result` holding the entries.
    pub fn result_key(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The member of an entry naming it.
    pub fn entry_key(self) -> &'static str {
        match self {
            Self::Tools | Self::Prompts => "name",
            Self::Resources => "uri",
            Self::ResourceTemplates => "uriTemplate",
        }
    }
}

/// Counts for the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSummary {
    pub kind: ListKind,
    /// Entries left in the response.
    pub kept: usize,
    /// Names (tools, prompts), URIs (resources) or URI templates removed, in
    /// response order; `<unnamed>` for an entry without a usable name.
    pub removed: Vec<String>,
    /// The body held the answer to the list request (a result or an error).
    /// An SSE stream may not have delivered it yet.
    pub answered: bool,
    /// An SSE body ends inside an event that carries data: not dispatched by
    /// a conforming client, but a lenient one might read it unfiltered.
    pub unterminated_event: bool,
}

/// Placeholder in `ListSummary::removed` for an entry without a string name.
pub const UNNAMED: &str = "<unnamed>";

/// Why a list response could not be filtered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("response body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("response content type `{0}` is neither `application/json` nor `text/event-stream`")]
    UnsupportedContentType(String),
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response is not a JSON-RPC response: {0}")]
    NotJsonRpc(String),
    #[error("response answers id `{found}`, not the list request's id `{expected}`")]
    WrongId { expected: String, found: String },
    #[error("list result is malformed: {0}")]
    MalformedResult(String),
    #[error("batched JSON-RPC messages answering the list request are not supported")]
    Batch,
}

/// Rewrites one response body. `content_type` is the response's
/// Content-Type (`application/json` or `text/event-stream`, parameters
/// allowed, case-insensitive); `request_id` is the JSON-RPC id of the list
/// request, and only the response with that id is filtered (other SSE
/// events, e.g. notifications, pass unchanged byte for byte); `max_bytes`
/// bounds the input.
pub fn filter_list_response(
    policy: &CompiledPolicy,
    identity: &Identity,
    kind: ListKind,
    request_id: &Value,
    content_type: &str,
    body: &[u8],
    max_bytes: usize,
) -> Result<(Vec<u8>, ListSummary), ListError> {
    if body.len() > max_bytes {
        return Err(ListError::TooLarge { limit: max_bytes });
    }
    let filter = Filter {
        policy,
        identity,
        kind,
        request_id,
    };
    match Framing::of(content_type) {
        Some(Framing::Json) => filter.json_body(body),
        Some(Framing::EventStream) => filter.event_stream(body),
        None => Err(ListError::UnsupportedContentType(content_type.to_owned())),
    }
}

/// The body to send instead when filtering failed (fail closed): a JSON-RPC
/// error response (code -32603, `data.reason`) carrying `request_id`, framed
/// as JSON or as one SSE event to match `content_type` (JSON when the
/// content type is neither).
pub fn failure_body(request_id: &Value, content_type: &str, reason: &str) -> Vec<u8> {
    let message = json!({
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": INTERNAL_ERROR,
            "message": "the list could not be filtered for this caller",
            "data": { "reason": reason },
        },
    })
    .to_string();
    match Framing::of(content_type) {
        Some(Framing::EventStream) => format!("event: message\ndata: {message}\n\n").into_bytes(),
        Some(Framing::Json) | None => message.into_bytes(),
    }
}

/// What one JSON-RPC message is to the list request.
enum Message {
    /// The result answering the list request: to be filtered.
    Result(Map<String, Value>),
    /// The error answering the list request: passes unchanged.
    Error,
    /// Anything else: a notification, a server request, another response.
    Other,
}

struct Filter<'a> {
    policy: &'a CompiledPolicy,
    identity: &'a Identity,
    kind: ListKind,
    request_id: &'a Value,
}

impl Filter<'_> {
    fn json_body(&self, body: &[u8]) -> Result<(Vec<u8>, ListSummary), ListError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| ListError::NotJson(e.to_string()))?;
        let object = match value {
            Value::Object(object) => object,
            Value::Array(_) => return Err(ListError::Batch),
            _ => {
                return Err(ListError::NotJsonRpc("the body is not an object".into()));
            }
        };
        if !is_response(&object) {
            return Err(ListError::NotJsonRpc(
                "the body has no `result` or `error`".into(),
            ));
        }
        if let Some(id) = object.get("id")
            && !self.is_request_id(id)
        {
            return Err(ListError::WrongId {
                expected: self.request_id.to_string(),
                found: id.to_string(),
            });
        }
        match self.classify(object)? {
            Message::Result(message) => self.rewrite(message),
            Message::Error => Ok((
                body.to_vec(),
                ListSummary {
                    answered: true,
                    ..self.empty_summary()
                },
            )),
            // `classify` sorts other ids here; they were refused above.
            Message::Other => Err(ListError::NotJsonRpc(
                "the body does not answer the list request".into(),
            )),
        }
    }

    fn event_stream(&self, body: &[u8]) -> Result<(Vec<u8>, ListSummary), ListError> {
        let mut summary = self.empty_summary();
        let mut out = Vec::with_capacity(body.len());
        // A leading byte order mark is not part of the first line.
        let (bom, stream) = match body.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => (body.get(..3).unwrap_or_default(), rest),
            None => (&[][..], body),
        };
        out.extend_from_slice(bom);
        let mut event: Vec<Line<'_>> = Vec::new();
        let mut rest = stream;
        while let Some((line, after)) = next_line(rest) {
            rest = after;
            if !line.content.is_empty() {
                event.push(line);
                continue;
            }
            // A blank line ends the event.
            self.event(&event, &mut out, &mut summary)?;
            out.extend_from_slice(line.terminator);
            event.clear();
        }
        // An incomplete final event (no blank line yet) is not dispatched.
        summary.unterminated_event =
            event.iter().any(|line| line.data_value().is_some()) || rest.starts_with(b"data");
        for line in &event {
            out.extend_from_slice(line.content);
            out.extend_from_slice(line.terminator);
        }
        out.extend_from_slice(rest);
        Ok((out, summary))
    }

    /// Copies or rewrites one complete event (without its blank line).
    fn event(
        &self,
        lines: &[Line<'_>],
        out: &mut Vec<u8>,
        summary: &mut ListSummary,
    ) -> Result<(), ListError> {
        let copy = |out: &mut Vec<u8>| {
            for line in lines {
                out.extend_from_slice(line.content);
                out.extend_from_slice(line.terminator);
            }
        };
        let mut data: Option<Vec<u8>> = None;
        for line in lines {
            if let Some(value) = line.data_value() {
                match &mut data {
                    None => data = Some(value.to_vec()),
                    Some(buffer) => {
                        buffer.push(b'\n');
                        buffer.extend_from_slice(value);
                    }
                }
            }
        }
        // No data, or only whitespace (a priming event): no message.
        let Some(data) = data.filter(|d| !d.trim_ascii().is_empty()) else {
            copy(out);
            return Ok(());
        };
        let value: Value = serde_json::from_slice(&data)
            .map_err(|e| ListError::NotJson(format!("event data: {e}")))?;
        let message = match value {
            Value::Object(object) if is_response(&object) => self.classify(object)?,
            Value::Array(items) => {
                let answers = items.iter().any(|item| {
                    item.as_object().is_some_and(|o| {
                        is_response(o) && o.get("id").is_some_and(|id| self.is_request_id(id))
                    })
                });
                if answers {
                    return Err(ListError::Batch);
                }
                Message::Other
            }
            _ => Message::Other,
        };
        let message = match message {
            Message::Result(message) => message,
            Message::Error => {
                summary.answered = true;
                copy(out);
                return Ok(());
            }
            Message::Other => {
                copy(out);
                return Ok(());
            }
        };
        let (json, part) = self.rewrite(message)?;
        summary.kept += part.kept;
        summary.removed.extend(part.removed);
        summary.answered = true;
        let mut written = false;
        for line in lines {
            if line.data_value().is_none() {
                out.extend_from_slice(line.content);
            } else if !written {
                written = true;
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json);
            } else {
                continue;
            }
            out.extend_from_slice(line.terminator);
        }
        Ok(())
    }

    /// Sorts a JSON-RPC response by whether it answers the list request.
    fn classify(&self, object: Map<String, Value>) -> Result<Message, ListError> {
        let Some(id) = object.get("id") else {
            return Err(ListError::NotJsonRpc("a response without `id`".into()));
        };
        if !self.is_request_id(id) {
            return Ok(Message::Other);
        }
        match (object.contains_key("result"), object.contains_key("error")) {
            (true, true) => Err(ListError::NotJsonRpc(
                "a response with both `result` and `error`".into(),
            )),
            (true, false) => Ok(Message::Result(object)),
            _ => Ok(Message::Error),
        }
    }

    /// Ids compare as JSON values, numbers by value (`1` answers `1.0`), so
    /// no spelling of the id slips a response past the filter.
    fn is_request_id(&self, id: &Value) -> bool {
        match (id, self.request_id) {
            (Value::Number(a), Value::Number(b)) => {
                a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64())
            }
            _ => id == self.request_id,
        }
    }

    /// Filters the entries of a result answering the list request and
    /// serialises the message again.
    fn rewrite(
        &self,
        mut message: Map<String, Value>,
    ) -> Result<(Vec<u8>, ListSummary), ListError> {
        let key = self.kind.result_key();
        let Some(Value::Object(result)) = message.get_mut("result") else {
            return Err(ListError::MalformedResult(
                "`result` is not an object".into(),
            ));
        };
        let Some(Value::Array(entries)) = result.get_mut(key) else {
            return Err(ListError::MalformedResult(format!(
                "`result.{key}` is not an array"
            )));
        };
        let mut summary = ListSummary {
            answered: true,
            ..self.empty_summary()
        };
        let entry_key = self.kind.entry_key();
        entries.retain(|entry| {
            let name = entry.get(entry_key).and_then(Value::as_str);
            let keep = name
                .is_some_and(|name| self.policy.could_allow(self.identity, self.kind.item(name)));
            if keep {
                summary.kept += 1;
            } else {
                summary
                    .removed
                    .push(name.map_or_else(|| UNNAMED.to_owned(), str::to_owned));
            }
            keep
        });
        Ok((Value::Object(message).to_string().into_bytes(), summary))
    }

    fn empty_summary(&self) -> ListSummary {
        ListSummary {
            kind: self.kind,
            kept: 0,
            removed: Vec::new(),
            answered: false,
            unterminated_event: false,
        }
    }
}

/// Whether a JSON-RPC message is a response (it answers rather than asks).
fn is_response(object: &Map<String, Value>) -> bool {
    !object.contains_key("method")
        && (object.contains_key("result") || object.contains_key("error"))
}

/// One line of an event stream.
struct Line<'a> {
    content: &'a [u8],
    /// `\n`, `\r\n` or `\r`.
    terminator: &'a [u8],
}

impl<'a> Line<'a> {
    /// The value of a `data` field line (one space after the colon
    /// stripped), or `None` for other fields and comments.
    fn data_value(&self) -> Option<&'a [u8]> {
        let value = self.content.strip_prefix(b"data")?;
        if value.is_empty() {
            // `data` alone: the field with an empty value.
            return Some(value);
        }
        let value = value.strip_prefix(b":")?;
        Some(value.strip_prefix(b" ").unwrap_or(value))
    }
}

/// The next complete line of `text` and what follows it; `None` when no line
/// end is left (the remainder is an unfinished line).
fn next_line(text: &[u8]) -> Option<(Line<'_>, &[u8])> {
    let end = text.iter().position(|&b| b == b'\n' || b == b'\r')?;
    let (content, rest) = text.split_at_checked(end)?;
    let terminator_len = match rest {
        [b'\r', b'\n', ..] => 2,
        _ => 1,
    };
    let (terminator, rest) = rest.split_at_checked(terminator_len)?;
    Some((
        Line {
            content,
            terminator,
        },
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Defaults, RuleSource};

    const POLICY: &str = r#"
- id: search
  effect: allow
  owner: docs
  tools: [search_docs]
- id: read-public
  effect: allow
  owner: platform
  tools: [read_file]
  arguments:
    - {pointer: /path, path_prefix: /srv/public/}
- id: public-docs
  effect: allow
  owner: docs
  resource_prefixes: ["docs://public/"]
- id: greet
  effect: allow
  owner: docs
  prompts: [greet]
"#;

    fn policy() -> CompiledPolicy {
        let rules: Vec<RuleSource> = serde_yaml_ng::from_str(POLICY).unwrap();
        CompiledPolicy::compile(&rules, &Defaults::default()).unwrap()
    }

    fn bob() -> Identity {
        crate::testing::direct(crate::testing::bob())
    }

    const JSON: &str = "application/json";
    const SSE: &str = "text/event-stream";
    const LIMIT: usize = 1 << 20;

    fn filter(
        kind: ListKind,
        id: Value,
        content_type: &str,
        body: &str,
    ) -> Result<(String, ListSummary), ListError> {
        filter_list_response(
            &policy(),
            &bob(),
            kind,
            &id,
            content_type,
            body.as_bytes(),
            LIMIT,
        )
        .map(|(out, summary)| (String::from_utf8(out).unwrap(), summary))
    }

    fn tools_response(id: Value) -> Value {
        json!({
            "jsonrpc": "2.0",
            "id": id,
            "result": {
                "tools": [
                    {"name": "search_docs", "inputSchema": {"type": "object"}},
                    {"name": "delete_repo", "inputSchema": {"type": "object"}},
                    {"name": "read_file", "inputSchema": {"type": "object"}},
                    {"title": "no name"},
                    {"name": 7},
                ],
                "nextCursor": "page-2",
                "_meta": {"x": 1},
            }
        })
    }

    fn names(message: &Value, kind: ListKind) -> Vec<String> {
        message["result"][kind.result_key()]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[kind.entry_key()].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn list_kinds_map_methods_and_keys() {
        for kind in [
            ListKind::Tools,
            ListKind::Prompts,
            ListKind::Resources,
            ListKind::ResourceTemplates,
        ] {
            assert_eq!(ListKind::for_method(kind.method()), Some(kind));
        }
        assert_eq!(ListKind::for_method("tools/call"), None);
        assert_eq!(
            ListKind::ResourceTemplates.result_key(),
            "resourceTemplates"
        );
        assert_eq!(ListKind::ResourceTemplates.entry_key(), "uriTemplate");
    }

    #[test]
    fn json_tools_are_filtered_and_pagination_kept() {
        let body = tools_response(json!(3)).to_string();
        let (out, summary) = filter(
            ListKind::Tools,
            json!(3),
            "Application/JSON; charset=utf-8",
            &body,
        )
        .unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(names(&out, ListKind::Tools), ["search_docs", "read_file"]);
        assert_eq!(out["id"], json!(3));
        assert_eq!(out["jsonrpc"], "2.0");
        assert_eq!(out["result"]["nextCursor"], "page-2");
        assert_eq!(out["result"]["_meta"], json!({"x": 1}));
        assert_eq!(
            out["result"]["tools"][0]["inputSchema"],
            json!({"type": "object"})
        );
        assert_eq!(summary.kind, ListKind::Tools);
        assert_eq!(summary.kept, 2);
        assert_eq!(summary.removed, ["delete_repo", UNNAMED, UNNAMED]);
    }

    #[test]
    fn resources_templates_and_prompts_are_filtered_by_their_keys() {
        let resources = json!({"jsonrpc": "2.0", "id": "r", "result": {"resources": [
            {"uri": "docs://public/intro", "name": "intro"},
            {"uri": "docs://internal/plan", "name": "plan"},
        ]}});
        let (out, summary) = filter(
            ListKind::Resources,
            json!("r"),
            JSON,
            &resources.to_string(),
        )
        .unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(names(&out, ListKind::Resources), ["docs://public/intro"]);
        assert_eq!(summary.removed, ["docs://internal/plan"]);

        let templates = json!({"jsonrpc": "2.0", "id": 1, "result": {"resourceTemplates": [
            {"uriTemplate": "docs://internal/{id}", "name": "internal"},
            {"uriTemplate": "docs://public/{id}", "name": "public"},
        ]}});
        let (out, _) = filter(
            ListKind::ResourceTemplates,
            json!(1),
            JSON,
            &templates.to_string(),
        )
        .unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            names(&out, ListKind::ResourceTemplates),
            ["docs://public/{id}"]
        );

        let prompts = json!({"jsonrpc": "2.0", "id": 1, "result": {"prompts": [
            {"name": "greet"}, {"name": "search_docs"},
        ]}});
        let (out, _) = filter(ListKind::Prompts, json!(1), JSON, &prompts.to_string()).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(names(&out, ListKind::Prompts), ["greet"]);
    }

    #[test]
    fn error_response_passes_unchanged() {
        let body = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"no"}}"#;
        let (out, summary) = filter(ListKind::Tools, json!(3), JSON, body).unwrap();
        assert_eq!(out, body);
        assert_eq!(summary.kept, 0);
        assert!(summary.removed.is_empty());
    }

    #[test]
    fn wrong_or_malformed_json_bodies_fail_closed() {
        let body = tools_response(json!(4)).to_string();
        assert!(matches!(
            filter(ListKind::Tools, json!(3), JSON, &body),
            Err(ListError::WrongId { .. })
        ));
        assert!(matches!(
            filter(ListKind::Tools, json!("3"), JSON, &body),
            Err(ListError::WrongId { .. })
        ));
        // The same number spelt differently is the same id.
        let body = tools_response(json!(3.0)).to_string();
        let (out, _) = filter(ListKind::Tools, json!(3), JSON, &body).unwrap();
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(names(&out, ListKind::Tools), ["search_docs", "read_file"]);

        let not_json = filter(ListKind::Tools, json!(3), JSON, "{\"id\":3,");
        assert!(matches!(not_json, Err(ListError::NotJson(_))));
        let request = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
        assert!(matches!(
            filter(ListKind::Tools, json!(3), JSON, request),
            Err(ListError::NotJsonRpc(_))
        ));
        let wrong_list = r#"{"jsonrpc":"2.0","id":3,"result":{"prompts":[]}}"#;
        assert_eq!(
            filter(ListKind::Tools, json!(3), JSON, wrong_list).unwrap_err(),
            ListError::MalformedResult("`result.tools` is not an array".into())
        );
        let both =
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]},"error":{"code":1,"message":"x"}}"#;
        assert!(matches!(
            filter(ListKind::Tools, json!(3), JSON, both),
            Err(ListError::NotJsonRpc(_))
        ));
        let batch = format!("[{}]", tools_response(json!(3)));
        assert_eq!(
            filter(ListKind::Tools, json!(3), JSON, &batch).unwrap_err(),
            ListError::Batch
        );
        assert!(matches!(
            filter(ListKind::Tools, json!(3), "text/html", &body),
            Err(ListError::UnsupportedContentType(_))
        ));
    }

    #[test]
    fn too_large_is_refused() {
        let body = tools_response(json!(3)).to_string();
        let result = filter_list_response(
            &policy(),
            &bob(),
            ListKind::Tools,
            &json!(3),
            JSON,
            body.as_bytes(),
            body.len() - 1,
        );
        assert_eq!(
            result.unwrap_err(),
            ListError::TooLarge {
                limit: body.len() - 1
            }
        );
        assert!(
            filter_list_response(
                &policy(),
                &bob(),
                ListKind::Tools,
                &json!(3),
                JSON,
                body.as_bytes(),
                body.len(),
            )
            .is_ok()
        );
    }

    /// The `data` of the one event in `out` that answers `id`.
    fn response_event(out: &str, id: &Value) -> Value {
        out.split("\n\n")
            .filter_map(|event| {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                serde_json::from_str::<Value>(&data.join("\n")).ok()
            })
            .find(|m| &m["id"] == id && m.get("result").is_some())
            .unwrap()
    }

    #[test]
    fn sse_notification_untouched_and_response_filtered() {
        let notification = ": keep-alive\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1}}\n\n";
        let other_response = "data: {\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{\"tools\":[{\"name\":\"delete_repo\"}]}}\n\n";
        let response = format!(
            "id: ev-7\nevent: message\nretry: 1000\ndata: {}\n\n",
            tools_response(json!(3))
        );
        let body = format!("{notification}{other_response}{response}");
        let (out, summary) = filter(ListKind::Tools, json!(3), SSE, &body).unwrap();
        assert!(out.starts_with(&format!("{notification}{other_response}")));
        let rewritten = out
            .strip_prefix(&format!("{notification}{other_response}"))
            .unwrap();
        assert!(rewritten.starts_with("id: ev-7\nevent: message\nretry: 1000\ndata: {"));
        assert!(rewritten.ends_with("}\n\n"));
        assert_eq!(rewritten.matches('\n').count(), 5);
        let message = response_event(&out, &json!(3));
        assert_eq!(
            names(&message, ListKind::Tools),
            ["search_docs", "read_file"]
        );
        assert_eq!(message["result"]["nextCursor"], "page-2");
        assert_eq!(summary.kept, 2);
        assert_eq!(summary.removed, ["delete_repo", UNNAMED, UNNAMED]);
    }

    #[test]
    fn sse_with_crlf_lines_keeps_its_line_ends() {
        let body = format!(
            "event: message\r\ndata: {}\r\n\r\n: done\r\n",
            tools_response(json!(3))
        );
        let (out, summary) = filter(ListKind::Tools, json!(3), "TEXT/EVENT-STREAM", &body).unwrap();
        assert!(out.starts_with("event: message\r\ndata: {"));
        assert!(out.ends_with("}\r\n\r\n: done\r\n"));
        let data = out
            .split("\r\n")
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        let message: Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            names(&message, ListKind::Tools),
            ["search_docs", "read_file"]
        );
        assert_eq!(summary.kept, 2);
    }

    #[test]
    fn sse_with_cr_lines_and_a_bom() {
        let body = format!("\u{feff}data:{}\r\r", tools_response(json!(3)));
        let (out, summary) = filter(ListKind::Tools, json!(3), SSE, &body).unwrap();
        assert!(out.starts_with("\u{feff}data: {"));
        assert!(out.ends_with("}\r\r"));
        assert_eq!(summary.kept, 2);
    }

    #[test]
    fn sse_multi_line_data_is_joined_then_rewritten_as_one_line() {
        let pretty = serde_json::to_string_pretty(&tools_response(json!("a"))).unwrap();
        let data: String = pretty.lines().map(|l| format!("data:{l}\n")).collect();
        let body = format!("id: 1\n{data}\n");
        let (out, summary) = filter(ListKind::Tools, json!("a"), SSE, &body).unwrap();
        let lines: Vec<&str> = out.split('\n').collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert_eq!(lines[0], "id: 1");
        assert!(lines[1].starts_with("data: {"));
        assert_eq!(lines[2..], ["", ""]);
        let message: Value = serde_json::from_str(&lines[1]["data: ".len()..]).unwrap();
        assert_eq!(
            names(&message, ListKind::Tools),
            ["search_docs", "read_file"]
        );
        assert_eq!(summary.kept, 2);
    }

    #[test]
    fn sse_without_the_response_passes_unchanged() {
        let body = "id: prime\ndata:\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,";
        let (out, summary) = filter(ListKind::Tools, json!(3), SSE, body).unwrap();
        assert_eq!(out, body);
        assert_eq!(summary.kept, 0);
        assert!(summary.removed.is_empty());
    }

    #[test]
    fn sse_error_response_passes_unchanged() {
        let body = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32603,\"message\":\"x\"}}\n\n";
        let (out, _) = filter(ListKind::Tools, json!(3), SSE, body).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn sse_events_that_cannot_be_read_fail_closed() {
        let not_json = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":NaN}\n\n";
        assert!(matches!(
            filter(ListKind::Tools, json!(3), SSE, not_json),
            Err(ListError::NotJson(_))
        ));
        let malformed = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":{}}}\n\n";
        assert!(matches!(
            filter(ListKind::Tools, json!(3), SSE, malformed),
            Err(ListError::MalformedResult(_))
        ));
        let batch = format!("data: [{}]\n\n", tools_response(json!(3)));
        assert_eq!(
            filter(ListKind::Tools, json!(3), SSE, &batch).unwrap_err(),
            ListError::Batch
        );
    }

    #[test]
    fn failure_body_parses_back_in_both_framings() {
        let reason = "response body is larger than the limit of 10 bytes";
        let check = |message: &Value| {
            assert_eq!(message["jsonrpc"], "2.0");
            assert_eq!(message["id"], json!("req-1"));
            assert_eq!(message["error"]["code"], json!(-32603));
            assert!(
                message["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("could not be filtered")
            );
            assert_eq!(message["error"]["data"]["reason"], reason);
        };
        let json_body = failure_body(&json!("req-1"), "application/json", reason);
        check(&serde_json::from_slice(&json_body).unwrap());

        let sse_body = failure_body(&json!("req-1"), "text/event-stream; charset=utf-8", reason);
        let sse = String::from_utf8(sse_body).unwrap();
        let data = sse
            .strip_prefix("event: message\ndata: ")
            .and_then(|s| s.strip_suffix("\n\n"))
            .unwrap();
        assert!(!data.contains('\n'));
        check(&serde_json::from_str(data).unwrap());
    }
}
