//! The whole per-request procedure of the filter, host-agnostic: what to do
//! with a request's head, then with its body. The proxy-wasm filter only
//! carries values between these functions and the host; tests drive them
//! natively.

use serde_json::{Value, json};

use crate::audit::AuditRecord;
use crate::config::{DocumentError, FORMAT_VERSION, FilterSettings, PolicyDocument};
use crate::identity::{Identity, KeyConfigError, TokenError, TokenVerifier};
use crate::json::JsonLimits;
use crate::mcp::{
    DecodeError, HTTP_DELETE_METHOD, HTTP_GET_METHOD, McpRequest, MessageKind, codes, decode_body,
};
use crate::policy::{CompileError, CompiledPolicy};

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

/// The facts of a request head Warden needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub now_unix_nanos: u128,
}

/// What to do after the head.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadVerdict {
    /// Not an MCP endpoint: forward untouched, record nothing.
    Pass,
    /// Decided without a body (GET, DELETE): forward.
    Forward(AuditRecord),
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
    Forward(AuditRecord),
    Respond(Reply, AuditRecord),
}

/// A compiled configuration: verifier, policy and settings.
#[derive(Debug)]
pub struct Warden {
    verifier: TokenVerifier,
    policy: CompiledPolicy,
    settings: FilterSettings,
    version: String,
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
        if !matches!(settings.deny_status, 200 | 403) {
            return Err(ConfigError::Filter {
                field: "deny_status",
                message: format!(
                    "{} is not supported; use 200 (keeps sessions alive) or 403",
                    settings.deny_status
                ),
            });
        }
        if settings.max_body_bytes == 0 {
            return Err(ConfigError::Filter {
                field: "max_body_bytes",
                message: "must be greater than 0".into(),
            });
        }
        if settings.max_json_depth < 4 {
            return Err(ConfigError::Filter {
                field: "max_json_depth",
                message: "must be at least 4 (MCP requests nest params and arguments)".into(),
            });
        }
        if let Some(bad) = settings
            .realm
            .chars()
            .find(|c| *c == '"' || *c == '\\' || c.is_control())
        {
            return Err(ConfigError::Filter {
                field: "realm",
                message: format!("must not contain `{}`", bad.escape_default()),
            });
        }
        Ok(Self {
            verifier: TokenVerifier::new(&document.identity)?,
            policy: CompiledPolicy::compile(&document.rules, &document.defaults)?,
            settings,
            version: document.content_hash()?,
        })
    }

    /// An audit record with the request's facts and this policy's version.
    fn audit_for(&self, head: &RequestHead<'_>) -> AuditRecord {
        AuditRecord::new(
            head.now_unix_nanos,
            head.method,
            head.request_id,
            &self.version,
        )
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

    /// Judges a request head.
    pub fn judge_head(&self, head: &RequestHead<'_>) -> HeadVerdict {
        let path = head.path.split(['?', '#']).next().unwrap_or_default();
        if self.settings.passthrough_paths.iter().any(|p| p == path) {
            return HeadVerdict::Pass;
        }
        let audit = self.audit_for(head);
        let pseudo_method = match head.method {
            "POST" => None,
            "GET" => Some(HTTP_GET_METHOD),
            "DELETE" => Some(HTTP_DELETE_METHOD),
            other => {
                let reason = format!("HTTP method `{other}` is not part of the MCP transport");
                let reply = Reply::json(
                    405,
                    &[("allow", "GET, POST, DELETE")],
                    jsonrpc_error(
                        None,
                        codes::INVALID_REQUEST,
                        "Method not allowed",
                        json!({"reason": reason}),
                    ),
                );
                return HeadVerdict::Respond(reply, audit.denied(405, reason));
            }
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
        if let Some(method) = pseudo_method {
            let request = McpRequest::http(method);
            let decision = self.policy.decide(&identity, &request);
            let audit = audit.with_request(&request, false).with_decision(&decision);
            if decision.is_allowed() {
                return HeadVerdict::Forward(audit);
            }
            let reply = self.denial_reply(
                &request,
                &decision.reason,
                decision.rule.as_deref(),
                head.request_id,
                403,
            );
            let status = reply.status;
            return HeadVerdict::Respond(
                reply,
                AuditRecord {
                    status: Some(status),
                    ..audit
                },
            );
        }
        let declared = head
            .content_length
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.settings.max_body_bytes) {
            let (reply, audit) = self.body_too_large(audit, head.request_id);
            return HeadVerdict::Respond(reply, audit);
        }
        HeadVerdict::ReadBody(Box::new(identity))
    }

    /// The answer when a body grows past `max_body_bytes` while buffering.
    pub fn judge_oversized_body(
        &self,
        identity: &Identity,
        head: &RequestHead<'_>,
    ) -> (Reply, AuditRecord) {
        let audit = self.audit_for(head).with_identity(identity);
        self.body_too_large(audit, head.request_id)
    }

    fn body_too_large(&self, audit: AuditRecord, request_id: Option<&str>) -> (Reply, AuditRecord) {
        let reason = format!(
            "request body is larger than {} bytes",
            self.settings.max_body_bytes
        );
        let reply = Reply::json(
            413,
            &[],
            jsonrpc_error(
                None,
                codes::INVALID_REQUEST,
                "Request body too large",
                json!({"reason": reason, "request_id": request_id}),
            ),
        );
        (reply, audit.denied(413, reason))
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
        let decision = self.policy.decide(identity, &request);
        let audit = audit
            .with_request(&request, self.settings.audit_arguments)
            .with_decision(&decision);
        if decision.is_allowed() {
            return BodyVerdict::Forward(audit);
        }
        let reply = self.denial_reply(
            &request,
            &decision.reason,
            decision.rule.as_deref(),
            head.request_id,
            self.settings.deny_status,
        );
        let status = reply.status;
        BodyVerdict::Respond(
            reply,
            AuditRecord {
                status: Some(status),
                ..audit
            },
        )
    }

    /// A policy denial. A JSON-RPC request gets an error response carrying its
    /// id, in the configured status; a message that expects no response
    /// (notification, client response, GET, DELETE) gets 403.
    fn denial_reply(
        &self,
        request: &McpRequest,
        reason: &str,
        rule: Option<&str>,
        request_id: Option<&str>,
        status: u16,
    ) -> Reply {
        let status = if request.kind == MessageKind::Request {
            status
        } else {
            403
        };
        Reply::json(
            status,
            &[],
            jsonrpc_error(
                request.id.as_ref(),
                codes::ACCESS_DENIED,
                &format!("Access denied by policy: {reason}"),
                json!({"decision": "deny", "rule": rule, "reason": reason, "request_id": request_id}),
            ),
        )
    }

    /// RFC 6750 §3: no credentials → a bare challenge; bad credentials →
    /// `invalid_token` with a description.
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
        let realm = &self.settings.realm;
        let challenge = match error {
            TokenError::Missing => format!("Bearer realm=\"{realm}\""),
            TokenError::NotBearer => format!("Bearer realm=\"{realm}\", error=\"invalid_request\""),
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
                format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{description}\""
                )
            }
        };
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

fn jsonrpc_error(id: Option<&Value>, code: i64, message: &str, data: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message, "data": data},
    })
    .to_string()
}

#[cfg(test)]
mod tests;
