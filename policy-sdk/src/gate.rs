//! The whole per-request procedure of the filter, host-agnostic: what to do
//! with a request's head, then with its body. The proxy-wasm filter only
//! carries values between these functions and the host; tests drive them
//! natively.

use serde_json::{Value, json};

use crate::audit::AuditRecord;
use crate::config::{
    DocumentError, FORMAT_VERSION, FilterSettings, PolicyDocument, ResourceMetadata,
};
use crate::identity::{Identity, KeyConfigError, TokenError, TokenVerifier};
use crate::json::JsonLimits;
use crate::listing::{self, ListKind};
use crate::mcp::{
    DecodeError, Framing, HTTP_DELETE_METHOD, HTTP_GET_METHOD, McpRequest, MessageKind, Target,
    codes, decode_body,
};
use crate::policy::{CompileError, CompiledPolicy, Decision, DenyMode};

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Document(#[from] DocumentError),
    #[error("version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Version { found: u32 },
    #[error(transparent)]
    Keys(#[from] KeyConfigError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("filter.{field}: {message}")]
    Filter {
        field: &'static str,
        message: String,
    },
}

impl ConfigError {
    /// Advice for the author, where there is some.
    pub fn help(&self) -> Option<&str> {
        match self {
            ConfigError::Compile(e) => e.help.as_deref(),
            _ => None,
        }
    }
}

/// What the proxy should answer instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// A plain-text reply (failures that are not a decision).
    pub fn text(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.to_owned(),
        }
    }

    /// A reply with a JSON body and, besides its content type, `headers`.
    fn json(status: u16, headers: &[(&str, &str)], body: String) -> Self {
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.push(("content-type".into(), "application/json".into()));
        Self {
            status,
            headers: all,
            body,
        }
    }
}

/// The facts of a request head Warden needs. Header values are as the
/// client sent them; `duplicated` names a routing header sent more than once.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub mcp_method: Option<&'a str>,
    pub mcp_name: Option<&'a str>,
    pub session_id: Option<&'a str>,
    /// The binding the host's shared store holds for `session_id` (see
    /// [`Warden::session_key`] and [`Warden::binding_in_record`]): the
    /// principal that opened it.
    pub session_binding: Option<&'a str>,
    /// A header of [`ROUTING_HEADERS`] that appears more than once.
    pub duplicated: Option<&'a str>,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub now_unix_nanos: u128,
}

pub use transport::{ROUTING_HEADERS, decode_header_value, encode_header_value};

/// A request let through, and what the host must do on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarding {
    pub audit: AuditRecord,
    /// Request headers to set (`Some`) or remove (`None`) before the
    /// upstream sees the request, in order.
    pub header_edits: Vec<(String, Option<String>)>,
    pub response: ResponsePlan,
}

/// What the host must do with the upstream's response.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponsePlan {
    /// Nothing.
    Untouched,
    /// An `initialize` of a 2025 revision: store
    /// [`Warden::session_record`] of the `Mcp-Session-Id` the server returns
    /// and `binding` under its [`Warden::session_key`].
    BindSession { binding: String },
    /// A session's DELETE: forget the binding of `session_id` once the
    /// server has answered with success.
    EndSession { session_id: String },
    /// A list request: the response body goes through
    /// [`Warden::filter_list_response`] before the client sees it.
    FilterList(Box<ListRequest>),
}

/// A list request whose response must be filtered.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest {
    pub kind: ListKind,
    pub id: Value,
    pub identity: Identity,
    /// The request's audit record, reused if filtering fails.
    pub audit: AuditRecord,
}

impl ListRequest {
    /// Whether a response with this HTTP status carries a list to filter:
    /// only 200 does (an error carries none and passes untouched).
    pub fn wants(&self, status: u16) -> bool {
        status == 200
    }
}

/// What to do after the head.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadVerdict {
    /// Not an MCP endpoint: forward untouched, record nothing.
    Pass,
    /// Answered locally without a decision to record (Protected Resource
    /// Metadata).
    Serve(Reply),
    /// Decided without a body (GET, DELETE): forward.
    Forward(Forwarding),
    /// Answer locally; the request never reaches the upstream.
    Respond(Reply, AuditRecord),
    /// A POST from this verified identity: buffer the body, then call
    /// [`Warden::judge_body`].
    ReadBody(Box<Identity>),
    /// The token names an issuer whose fetched key set is missing or lacks
    /// the token's key. The host may fetch the set (within its rate limit)
    /// and judge the head again; otherwise it answers with `reply`.
    KeysMissing {
        issuer: String,
        reply: Reply,
        audit: AuditRecord,
    },
}

/// What to do after the body.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyVerdict {
    Forward(Forwarding),
    Respond(Reply, AuditRecord),
}

/// The outcome of filtering a list response.
#[derive(Debug, Clone, PartialEq)]
pub struct FilteredList {
    /// The body to send on.
    pub body: Vec<u8>,
    /// Recorded when filtering failed (the body is then an error) and when
    /// items were removed.
    pub audit: Option<AuditRecord>,
}

/// A compiled configuration: verifier, policy and settings.
#[derive(Debug)]
pub struct Warden {
    verifier: TokenVerifier,
    policy: CompiledPolicy,
    settings: FilterSettings,
    version: String,
    /// The Protected Resource Metadata, when configured: built once here.
    metadata: Option<ServedMetadata>,
}

/// RFC 9728 metadata, ready to serve and to name in challenges.
#[derive(Debug)]
struct ServedMetadata {
    /// Local paths the document is served at.
    paths: Vec<String>,
    /// `, resource_metadata="<absolute URL>"`, appended to challenges.
    challenge: String,
    /// The JSON document.
    document: String,
}

/// The RFC 9728 well-known path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Prefix of the shared-data keys that hold session bindings.
pub const SESSION_KEY_PREFIX: &str = "warden:session:";

/// Longest `Mcp-Session-Id` Warden binds (ids are visible ASCII).
const MAX_SESSION_ID_BYTES: usize = 256;

fn filter_error(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Filter {
        field,
        message: message.into(),
    }
}

/// The first character that cannot stand in a quoted header parameter.
fn unsafe_header_char(text: &str) -> Option<char> {
    text.chars()
        .find(|c| *c == '"' || *c == '\\' || c.is_control())
}

impl Warden {
    /// Compiles the filter's plugin configuration (the JSON document).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        Self::compile(&PolicyDocument::from_json(text)?)
    }

    /// Compiles a document; everything that can be wrong with it is found here.
    pub fn compile(document: &PolicyDocument) -> Result<Self, ConfigError> {
        if document.version != FORMAT_VERSION {
            return Err(ConfigError::Version {
                found: document.version,
            });
        }
        let settings = document.filter.clone();
        if settings.max_body_bytes == 0 {
            return Err(filter_error("max_body_bytes", "must be greater than 0"));
        }
        if !(1..=16_777_216).contains(&settings.session_slots) {
            return Err(filter_error(
                "session_slots",
                "must be between 1 and 16777216",
            ));
        }
        if settings.max_response_bytes == 0 {
            return Err(filter_error("max_response_bytes", "must be greater than 0"));
        }
        if settings.max_json_depth < 4 {
            return Err(filter_error(
                "max_json_depth",
                "must be at least 4 (MCP requests nest params and arguments)",
            ));
        }
        if let Some(bad) = unsafe_header_char(&settings.realm) {
            return Err(filter_error(
                "realm",
                format!("must not contain `{}`", bad.escape_default()),
            ));
        }
        transport::check_window(&settings)
            .map_err(|(field, message)| filter_error(field, message))?;
        for origin in &settings.allowed_origins {
            if origin != "*" && (origin.ends_with('/') || !origin.contains("://")) {
                return Err(filter_error(
                    "allowed_origins",
                    format!("`{origin}` is not an origin: write `scheme://host[:port]` or `*`"),
                ));
            }
        }
        let prefix = &settings.upstream.identity_header_prefix;
        if !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(filter_error(
                "upstream.identity_header_prefix",
                "use lower-case letters, digits and `-` only",
            ));
        }
        let metadata = settings
            .resource_metadata
            .as_ref()
            .map(ServedMetadata::new)
            .transpose()?;
        Ok(Self {
            verifier: TokenVerifier::new(&document.identity)?,
            policy: CompiledPolicy::compile(&document.rules, &document.defaults)?,
            settings,
            version: document.content_hash()?,
            metadata,
        })
    }

    /// `, resource_metadata="…"` for challenges, or nothing.
    fn metadata_challenge(&self) -> &str {
        self.metadata.as_ref().map_or("", |m| m.challenge.as_str())
    }

    /// An audit record with the request's facts and this policy's version.
    fn audit_for(&self, head: &RequestHead<'_>) -> AuditRecord {
        let mut audit = AuditRecord::new(
            head.now_unix_nanos,
            head.method,
            head.request_id,
            &self.version,
        );
        audit.protocol_version = head.protocol_version.map(str::to_owned);
        audit
    }

    /// The policy version (content hash) recorded in audit lines.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn settings(&self) -> &FilterSettings {
        &self.settings
    }

    pub fn rule_count(&self) -> usize {
        self.policy.len()
    }

    pub fn policy(&self) -> &CompiledPolicy {
        &self.policy
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    /// The shared-data key of the slot that holds a session's binding, or
    /// `None` for an id Warden does not bind (empty, longer than 256 bytes
    /// or not visible ASCII; such a session is refused).
    ///
    /// Bindings live in a fixed number of slots (`filter.session_slots`), a
    /// direct-mapped table: proxy-wasm cannot delete shared data, so keys
    /// per session would grow without bound, one per `initialize` any
    /// authenticated caller sends. A new session evicts the one in its slot;
    /// that session then gets 404 and its client starts a new one.
    pub fn session_key(&self, session_id: &str) -> Option<String> {
        let id = session_id.trim();
        let valid = !id.is_empty()
            && id.len() <= MAX_SESSION_ID_BYTES
            && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !valid {
            return None;
        }
        // FNV-1a: cheap, and spreading ids over slots needs no secret (an
        // attacker who could aim at a slot would need the victim's id).
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let slot = hash % u64::from(self.settings.session_slots.max(1));
        Some(format!("{SESSION_KEY_PREFIX}{slot}"))
    }

    /// What the slot of `session_id` stores: the id, then its binding.
    pub fn session_record(session_id: &str, binding: &str) -> String {
        format!("{}\n{binding}", session_id.trim())
    }

    /// The binding of `session_id` in a slot's record, if the slot holds
    /// that session (and not another that shares the slot, or nothing).
    pub fn binding_in_record<'r>(session_id: &str, record: &'r str) -> Option<&'r str> {
        let (id, binding) = record.split_once('\n')?;
        (id == session_id.trim()).then_some(binding)
    }

    /// What a session is bound to: the issuer, the subject and the acting
    /// party. A refreshed token of the same principal keeps its session.
    pub fn session_binding(identity: &Identity) -> String {
        json!([
            identity.issuer,
            identity.subject.subject,
            identity.acting().subject
        ])
        .to_string()
    }

    /// Judges a request head.
    pub fn judge_head(&self, head: &RequestHead<'_>) -> HeadVerdict {
        let path = head.path.split(['?', '#']).next().unwrap_or_default();
        if self.settings.passthrough_paths.iter().any(|p| p == path) {
            return HeadVerdict::Pass;
        }
        if let Some(reply) = self.serve_metadata(head.method, path) {
            return HeadVerdict::Serve(reply);
        }
        let audit = self.audit_for(head);
        if let Err(refusal) = transport::check_head(&self.settings, head) {
            let (reply, audit) = self.refuse(refusal, None, head, audit);
            return HeadVerdict::Respond(reply, audit);
        }
        // `check_head` let only POST, GET and DELETE through.
        let pseudo_method = match head.method {
            "GET" => Some(HTTP_GET_METHOD),
            "DELETE" => Some(HTTP_DELETE_METHOD),
            _ => None,
        };
        let now_secs = u64::try_from(head.now_unix_nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let identity = match TokenVerifier::bearer_token(head.authorization)
            .and_then(|token| self.verifier.verify(token, now_secs))
        {
            Ok(identity) => identity,
            Err(error) => {
                let reply = self.unauthorized(&error, head.request_id);
                let status = reply.status;
                let audit = audit.denied(status, error.to_string());
                if let Some(issuer) = error.issuer_needing_keys()
                    && self
                        .verifier
                        .remote_key_sources()
                        .iter()
                        .any(|(name, _)| *name == issuer)
                {
                    return HeadVerdict::KeysMissing {
                        issuer: issuer.to_owned(),
                        reply,
                        audit,
                    };
                }
                return HeadVerdict::Respond(reply, audit);
            }
        };
        let audit = audit.with_identity(&identity);
        if let Err(refusal) = self.check_session(head, &identity) {
            let (reply, audit) = self.refuse(refusal, None, head, audit);
            return HeadVerdict::Respond(reply, audit);
        }
        if let Some(method) = pseudo_method {
            let request = McpRequest::http(method);
            let decision = self.policy.decide(&identity, &request);
            let audit = audit.with_request(&request, false).with_decision(&decision);
            if decision.is_allowed() {
                let response = match (method, head.session_id) {
                    (HTTP_DELETE_METHOD, Some(id)) if self.settings.bind_sessions => {
                        ResponsePlan::EndSession {
                            session_id: id.trim().to_owned(),
                        }
                    }
                    _ => ResponsePlan::Untouched,
                };
                return HeadVerdict::Forward(self.forwarding(audit, &identity, response));
            }
            let (reply, audit) = self.deny(&request, &decision, head, audit);
            return HeadVerdict::Respond(reply, audit);
        }
        let declared = head
            .content_length
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.settings.max_body_bytes) {
            let (reply, audit) = self.body_too_large(audit, head);
            return HeadVerdict::Respond(reply, audit);
        }
        HeadVerdict::ReadBody(Box::new(identity))
    }

    /// A presented session must belong to the caller (sessions exist in the
    /// 2025 revisions; a 2026-07-28 request carrying one is held to it too).
    fn check_session(
        &self,
        head: &RequestHead<'_>,
        identity: &Identity,
    ) -> Result<(), transport::Refusal> {
        let Some(session_id) = head.session_id else {
            return Ok(());
        };
        // Whatever revision the request claims: a server that looks
        // sessions up by header would serve another principal's session.
        if !self.settings.bind_sessions {
            return Ok(());
        }
        let not_found = |reason: String| transport::Refusal {
            status: 404,
            code: codes::INVALID_REQUEST,
            message: "Session not found",
            reason,
            data: None,
            headers: Vec::new(),
        };
        if self.session_key(session_id).is_none() {
            return Err(not_found(
                "Mcp-Session-Id is not 1 to 256 visible ASCII characters".into(),
            ));
        }
        match head.session_binding {
            None => Err(not_found(
                "Mcp-Session-Id was not opened through Warden (or its binding was lost): start a new session".into(),
            )),
            Some(bound) if bound == Self::session_binding(identity) => Ok(()),
            Some(_) => Err(not_found(
                "Mcp-Session-Id belongs to another principal".into(),
            )),
        }
    }

    /// The answer when a body grows past `max_body_bytes` while buffering.
    pub fn judge_oversized_body(
        &self,
        identity: &Identity,
        head: &RequestHead<'_>,
    ) -> (Reply, AuditRecord) {
        let audit = self.audit_for(head).with_identity(identity);
        self.body_too_large(audit, head)
    }

    /// A request refused for its shape after the head was judged (a body on
    /// a GET or DELETE, a method-override header): `400`, audited with the
    /// caller's identity when it was verified.
    pub fn judge_malformed(
        &self,
        identity: Option<&Identity>,
        head: &RequestHead<'_>,
        reason: impl Into<String>,
    ) -> (Reply, AuditRecord) {
        let mut audit = self.audit_for(head);
        if let Some(identity) = identity {
            audit = audit.with_identity(identity);
        }
        let refusal =
            transport::Refusal::new(400, codes::INVALID_REQUEST, "Invalid request", reason);
        self.refuse(refusal, None, head, audit)
    }

    fn body_too_large(&self, audit: AuditRecord, head: &RequestHead<'_>) -> (Reply, AuditRecord) {
        let reason = format!(
            "request body is larger than {} bytes",
            self.settings.max_body_bytes
        );
        let refusal = transport::Refusal::new(
            413,
            codes::INVALID_REQUEST,
            "Request body too large",
            reason,
        );
        self.refuse(refusal, None, head, audit)
    }

    /// Judges a complete POST body from a verified identity.
    pub fn judge_body(
        &self,
        identity: &Identity,
        body: &[u8],
        head: &RequestHead<'_>,
    ) -> BodyVerdict {
        let audit = self.audit_for(head).with_identity(identity);
        let limits = JsonLimits {
            max_bytes: self.settings.max_body_bytes,
            max_depth: self.settings.max_json_depth,
        };
        let request = match decode_body(body, limits) {
            Ok(request) => request,
            Err(error) => {
                let (status, message) = match &error {
                    DecodeError::Parse(_) => (400, "Parse error"),
                    DecodeError::Batch | DecodeError::InvalidRequest(_) => (400, "Invalid Request"),
                    DecodeError::InvalidParams { .. } => (200, "Invalid params"),
                };
                let reply = Reply::json(
                    status,
                    &[],
                    jsonrpc_error(
                        error.id(),
                        error.code(),
                        message,
                        json!({"reason": error.to_string(), "request_id": head.request_id}),
                    ),
                );
                let mut audit = audit.denied(status, error.to_string());
                if let DecodeError::InvalidParams { method, id, .. } = &error {
                    audit.method = Some(method.clone());
                    audit.jsonrpc_id = id.clone();
                }
                return BodyVerdict::Respond(reply, audit);
            }
        };
        let audit = audit.with_request(&request, self.settings.audit_arguments);
        // `judge_head` validated the head; only its comparison with the body
        // is left.
        let revision = transport::Revision::of(head);
        if let Err(refusal) = transport::check_body(&self.settings, head, revision, &request) {
            let (reply, audit) = self.refuse(refusal, request.id.as_ref(), head, audit);
            return BodyVerdict::Respond(reply, audit);
        }
        let decision = self.policy.decide(identity, &request);
        let audit = audit.with_decision(&decision);
        if !decision.is_allowed() {
            let (reply, audit) = self.deny(&request, &decision, head, audit);
            return BodyVerdict::Respond(reply, audit);
        }
        let response = match (request.kind, request.method.as_str()) {
            (MessageKind::Request, "initialize")
                if self.settings.bind_sessions && !revision.is_modern() =>
            {
                ResponsePlan::BindSession {
                    binding: Self::session_binding(identity),
                }
            }
            (MessageKind::Request, method) if self.settings.filter_lists => {
                match (ListKind::for_method(method), &request.id) {
                    (Some(kind), Some(id)) => ResponsePlan::FilterList(Box::new(ListRequest {
                        kind,
                        id: id.clone(),
                        identity: identity.clone(),
                        audit: audit.clone(),
                    })),
                    _ => ResponsePlan::Untouched,
                }
            }
            _ => ResponsePlan::Untouched,
        };
        BodyVerdict::Forward(self.forwarding(audit, identity, response))
    }

    /// The forwarding of an allowed request: identity headers in, client
    /// copies and (optionally) the token out. Each edit sets a header
    /// (replacing every copy the client sent) or removes it.
    fn forwarding(
        &self,
        audit: AuditRecord,
        identity: &Identity,
        response: ResponsePlan,
    ) -> Forwarding {
        // A compressed list could not be read: ask for it uncompressed.
        let drop_encoding = matches!(response, ResponsePlan::FilterList(_));
        Forwarding {
            audit,
            header_edits: self.upstream_edits(identity, drop_encoding),
            response,
        }
    }

    /// The request-header edits for a POST whose headers go upstream before
    /// its body is judged ([`HeaderMode::Stream`](crate::config::HeaderMode)):
    /// decided from the verified token alone. Whether the body asks for a
    /// list is not known yet, so `Accept-Encoding` is always removed.
    pub fn streamed_head_edits(&self, identity: &Identity) -> Vec<(String, Option<String>)> {
        self.upstream_edits(identity, true)
    }

    fn upstream_edits(
        &self,
        identity: &Identity,
        drop_encoding: bool,
    ) -> Vec<(String, Option<String>)> {
        let upstream = &self.settings.upstream;
        let mut header_edits = Vec::new();
        if upstream.strip_authorization {
            header_edits.push(("authorization".to_owned(), None));
        }
        if drop_encoding {
            header_edits.push(("accept-encoding".to_owned(), None));
        }
        let prefix = &upstream.identity_header_prefix;
        if !prefix.is_empty() {
            let values = [
                ("subject", Some(identity.subject.subject.clone())),
                (
                    "actor-type",
                    identity.acting().actor_type.map(|t| t.as_str().to_owned()),
                ),
                ("actor", identity.actor.as_ref().map(|a| a.subject.clone())),
                ("chain", Some(json!(identity.chain()).to_string())),
                ("client-id", identity.client_id.clone()),
                ("issuer", Some(identity.issuer.clone())),
            ];
            header_edits.extend(values.into_iter().map(|(name, value)| {
                (
                    format!("{prefix}{name}"),
                    value.as_deref().map(encode_header_value),
                )
            }));
        }
        header_edits
    }

    /// The audit record of a request that ended without a decision of the
    /// policy: the stream was reset, the upstream answered first, or the
    /// host failed. `status` is Warden's answer, if it gave one.
    pub fn undecided(
        &self,
        head: &RequestHead<'_>,
        identity: Option<&Identity>,
        status: Option<u16>,
        reason: impl Into<String>,
    ) -> AuditRecord {
        let mut audit = self.audit_for(head);
        if let Some(identity) = identity {
            audit = audit.with_identity(identity);
        }
        audit.decision = "deny";
        audit.status = status;
        audit.reason = reason.into();
        audit
    }

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

    fn filter_list(
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

    /// The answer to a transport-rule violation.
    fn refuse(
        &self,
        refusal: transport::Refusal,
        id: Option<&Value>,
        head: &RequestHead<'_>,
        audit: AuditRecord,
    ) -> (Reply, AuditRecord) {
        let mut data = json!({"reason": refusal.reason, "request_id": head.request_id});
        if let (Some(Value::Object(extra)), Some(object)) = (refusal.data, data.as_object_mut()) {
            object.extend(extra);
        }
        let headers: Vec<(&str, &str)> = refusal
            .headers
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let reply = Reply::json(
            refusal.status,
            &headers,
            jsonrpc_error(id, refusal.code, refusal.message, data),
        );
        (reply, audit.denied(refusal.status, refusal.reason))
    }

    /// A policy denial, answered in the deny mode of the deciding rule or of
    /// the policy. A message that expects no JSON-RPC response
    /// (notification, client response, GET, DELETE) always gets a 403 (with
    /// the step-up challenge in `step_up` mode).
    fn deny(
        &self,
        request: &McpRequest,
        decision: &Decision,
        head: &RequestHead<'_>,
        audit: AuditRecord,
    ) -> (Reply, AuditRecord) {
        let mut mode = decision.deny_mode.unwrap_or(self.settings.deny_mode);
        if mode == DenyMode::StepUp && decision.step_up_scopes.is_empty() {
            // Nothing to ask for: a plain 403 is the honest answer.
            mode = DenyMode::Forbidden;
        }
        let reason = &decision.reason;
        let rule = decision.rule.as_deref();
        let is_call = request.kind == MessageKind::Request;
        let access_denied = || {
            jsonrpc_error(
                request.id.as_ref(),
                codes::ACCESS_DENIED,
                &format!("Access denied by policy: {reason}"),
                json!({"decision": "deny", "rule": rule, "reason": reason, "request_id": head.request_id}),
            )
        };
        let reply = match mode {
            DenyMode::Error if is_call => Reply::json(200, &[], access_denied()),
            DenyMode::Error | DenyMode::Forbidden => Reply::json(403, &[], access_denied()),
            DenyMode::StepUp => {
                let scope = decision.step_up_scopes.join(" ");
                let mut challenge = format!(
                    "Bearer realm=\"{}\", error=\"insufficient_scope\", scope=\"{scope}\"",
                    self.settings.realm
                );
                challenge.push_str(self.metadata_challenge());
                challenge.push_str(&format!(
                    ", error_description=\"the request needs scope {}\"",
                    scope.replace(' ', " or ")
                ));
                Reply::json(403, &[("www-authenticate", &challenge)], access_denied())
            }
            DenyMode::Disguise if is_call => {
                let (code, message) = match &request.target {
                    Target::Tool { name, .. } => {
                        (codes::INVALID_PARAMS, format!("Unknown tool: {name}"))
                    }
                    Target::Prompt { name } => {
                        (codes::INVALID_PARAMS, format!("Unknown prompt: {name}"))
                    }
                    Target::Resource { uri } => {
                        (codes::INVALID_PARAMS, format!("Unknown resource: {uri}"))
                    }
                    Target::None => (codes::METHOD_NOT_FOUND, "Method not found".to_owned()),
                };
                let body = json!({
                    "jsonrpc": "2.0",
                    "id": request.id.clone().unwrap_or(Value::Null),
                    "error": {"code": code, "message": message},
                })
                .to_string();
                Reply::json(200, &[], body)
            }
            DenyMode::Disguise => Reply::json(403, &[], access_denied()),
        };
        let audit = AuditRecord {
            status: Some(reply.status),
            deny_mode: Some(mode.as_str()),
            ..audit
        };
        (reply, audit)
    }

    /// Protected Resource Metadata (RFC 9728), when configured and asked for.
    fn serve_metadata(&self, method: &str, path: &str) -> Option<Reply> {
        let metadata = self.metadata.as_ref()?;
        if !metadata.paths.iter().any(|p| p == path) {
            return None;
        }
        if method != "GET" && method != "HEAD" {
            return Some(Reply::json(
                405,
                &[("allow", "GET, HEAD")],
                json!({"error": "method_not_allowed"}).to_string(),
            ));
        }
        Some(Reply::json(
            200,
            &[("cache-control", "max-age=300")],
            metadata.document.clone(),
        ))
    }

    /// RFC 6750 §3: no credentials → a bare challenge; bad credentials →
    /// `invalid_token` with a description. Every challenge names the
    /// Protected Resource Metadata when it is served (RFC 9728 §5.1).
    fn unauthorized(&self, error: &TokenError, request_id: Option<&str>) -> Reply {
        if let TokenError::KeysUnavailable(_) = error {
            // Not the caller's fault: the keys to judge the token are missing.
            return Reply::json(
                503,
                &[("retry-after", "5")],
                jsonrpc_error(
                    None,
                    codes::UNAUTHENTICATED,
                    "Service Unavailable",
                    json!({"reason": error.to_string(), "request_id": request_id}),
                ),
            );
        }
        let mut challenge = format!(
            "Bearer realm=\"{}\"{}",
            self.settings.realm,
            self.metadata_challenge()
        );
        match error {
            TokenError::Missing => {}
            TokenError::NotBearer => challenge.push_str(", error=\"invalid_request\""),
            other => {
                let description: String = other
                    .to_string()
                    .chars()
                    .map(|c| {
                        if c == '"' || c == '\\' || !(' '..='~').contains(&c) {
                            '\''
                        } else {
                            c
                        }
                    })
                    .collect();
                challenge.push_str(&format!(
                    ", error=\"invalid_token\", error_description=\"{description}\""
                ));
            }
        }
        Reply::json(
            401,
            &[("www-authenticate", &challenge)],
            jsonrpc_error(
                None,
                codes::UNAUTHENTICATED,
                "Unauthorized",
                json!({"reason": error.to_string(), "request_id": request_id}),
            ),
        )
    }
}

impl ServedMetadata {
    /// Checks the configuration and builds what is served.
    fn new(metadata: &ResourceMetadata) -> Result<Self, ConfigError> {
        let field = "resource_metadata.resource";
        let (url, paths) =
            metadata_location(&metadata.resource).map_err(|m| filter_error(field, m))?;
        if metadata.authorization_servers.is_empty() {
            return Err(filter_error(
                "resource_metadata.authorization_servers",
                "name at least one authorization server (MCP clients need one)",
            ));
        }
        if unsafe_header_char(&url).is_some() {
            return Err(filter_error(
                field,
                "must not contain quotes, backslashes or control characters",
            ));
        }
        // The configured fields (absent optional ones are skipped), plus
        // the one way Warden accepts tokens.
        let mut document =
            serde_json::to_value(metadata).map_err(|e| filter_error(field, e.to_string()))?;
        if let Some(object) = document.as_object_mut() {
            object.insert("bearer_methods_supported".into(), json!(["header"]));
        }
        Ok(Self {
            paths,
            challenge: format!(", resource_metadata=\"{url}\""),
            document: document.to_string(),
        })
    }
}

/// Where RFC 9728 metadata for `resource` lives: its absolute URL (the
/// well-known segment inserted before the resource's path, §3.1) and the
/// local paths it is served at (the path-suffixed form and the bare one).
fn metadata_location(resource: &str) -> Result<(String, Vec<String>), String> {
    let rest = resource
        .strip_prefix("https://")
        .map(|r| ("https://", r))
        .or_else(|| resource.strip_prefix("http://").map(|r| ("http://", r)));
    let Some((scheme, rest)) = rest else {
        return Err(format!("`{resource}` must be an absolute http(s) URL"));
    };
    if rest.contains(['?', '#']) {
        return Err(format!(
            "`{resource}` must not have a query or fragment (RFC 9728 §1.2)"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("`{resource}` has no host"));
    }
    let path = path.trim_end_matches('/');
    let local = format!("{METADATA_PATH}{path}");
    let url = format!("{scheme}{authority}{local}");
    let mut paths = vec![local];
    if !path.is_empty() {
        paths.push(METADATA_PATH.to_owned());
    }
    Ok((url, paths))
}

fn jsonrpc_error(id: Option<&Value>, code: i64, message: &str, data: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message, "data": data},
    })
    .to_string()
}

mod transport;

#[cfg(test)]
mod tests;
