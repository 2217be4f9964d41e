//! The per-request procedure, host-agnostic: what to do with a request's
//! head, then with its body, then with its response. The lifecycle that
//! calls it from every proxy callback is [`crate::exchange`].
//!
//! Split along its seams: the procedure itself (here), compiling a
//! document (`compile`), the verdict types (`verdict`), sessions, list
//! filtering, refusals and deny modes (`replies`), RFC 9728 metadata, and
//! the transport rules of each MCP revision (`transport`).

use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::audit::{AuditRecord, TraceContext};
use crate::config::{
    DocumentError, FORMAT_VERSION, FilterSettings, PolicyDocument, ResourceMetadata,
};
use crate::identity::{Identity, KeyConfigError, TokenError, TokenVerifier, VerifiedBy};
use crate::json::JsonLimits;
use crate::listing;
use crate::mcp::{
    DecodeError, Decoding, HTTP_DELETE_METHOD, HTTP_GET_METHOD, McpRequest, MessageKind, codes,
    decode_body,
};
use crate::policy::{
    CompileError, CompiledPolicy, Decision, DenyAnswer, Disclosure, ShadowedPolicy,
};

mod compile;
mod lists;
mod metadata;
mod replies;
mod sessions;
#[cfg(test)]
mod tests;
mod transport;
mod verdict;

pub use compile::ConfigError;
use compile::{filter_error, unsafe_header_char};
pub use metadata::METADATA_PATH;
use metadata::ServedMetadata;
pub use sessions::{IN_FLIGHT_KEY_PREFIX, InFlight};
pub use transport::{ROUTING_HEADERS, decode_header_value, encode_header_value};
pub use verdict::{
    BodyVerdict, FilteredList, Forwarding, HeadVerdict, HeaderEdit, ListAudience, ListPlan, Reply,
    RequestHead,
};

/// A compiled configuration: verifier, policy and settings.
#[derive(Debug)]
pub struct Warden {
    verifier: TokenVerifier,
    policy: ShadowedPolicy,
    settings: FilterSettings,
    /// `settings.disclose_reasons`, compiled.
    disclosure: Disclosure,
    version: Arc<str>,
    /// The Protected Resource Metadata, when configured: built once here.
    metadata: Option<ServedMetadata>,
    /// `filter.session_keys`, compiled.
    session_keys: Vec<crate::sealing::SessionKey>,
    /// The names of the request headers Warden edits upstream.
    upstream_names: UpstreamNames,
}

/// The identity headers, after `upstream.identity_header_prefix`, in the
/// order of [`identity_header_values`].
const IDENTITY_HEADERS: [&str; 6] = [
    "subject",
    "actor-type",
    "actor",
    "chain",
    "client-id",
    "issuer",
];

/// The request headers Warden sets or removes upstream, named once per
/// configuration.
#[derive(Debug)]
struct UpstreamNames {
    authorization: Arc<str>,
    accept_encoding: Arc<str>,
    session_id: Arc<str>,
    /// [`IDENTITY_HEADERS`] after the prefix (unused without one).
    identity: [Arc<str>; 6],
}

impl UpstreamNames {
    fn new(prefix: &str) -> Self {
        Self {
            authorization: Arc::from("authorization"),
            accept_encoding: Arc::from("accept-encoding"),
            session_id: Arc::from("mcp-session-id"),
            identity: IDENTITY_HEADERS.map(|name| Arc::from([prefix, name].concat())),
        }
    }
}

/// The values of [`IDENTITY_HEADERS`] for `identity`, encoded for a
/// header. The chain is a compact JSON array, serialized directly (not
/// through a `serde_json::Value`); it cannot fail for strings, and if it
/// did, the client's copies would still be removed.
fn identity_header_values(identity: &Identity) -> [Option<Arc<str>>; 6] {
    let chain = serde_json::to_string(&identity.chain()).ok();
    [
        Some(identity.subject.subject.as_str()),
        identity.acting().actor_type.map(|t| t.as_str()),
        identity.actor.as_ref().map(|a| a.subject.as_str()),
        chain.as_deref(),
        identity.client_id.as_deref(),
        Some(identity.issuer.as_str()),
    ]
    .map(|value| value.map(|value| Arc::from(encode_header_value(value))))
}

impl Warden {
    /// An audit record with the request's facts and this policy's version.
    fn audit_for(&self, head: &RequestHead<'_>) -> AuditRecord {
        let mut audit = AuditRecord::new(
            head.now_unix_nanos,
            head.method,
            head.request_id,
            &self.version,
        );
        audit.protocol_version = head.protocol_version.map(str::to_owned);
        audit.client_request_id = head
            .client_request_id
            .filter(|client| Some(*client) != head.request_id)
            .map(str::to_owned);
        if let Some(trace) = head.traceparent.and_then(TraceContext::parse) {
            audit.trace_id = Some(trace.trace_id);
            audit.span_id = Some(trace.parent_id);
        }
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

    /// The rules in force (without the rules in shadow).
    pub fn policy(&self) -> &CompiledPolicy {
        self.policy.enforced()
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
        if let Some(reply) = self.serve_metadata(head.method, path) {
            return HeadVerdict::Serve(reply);
        }
        // The audit record is built on the paths that answer here only: a
        // POST whose body is still to come gets its record with the body's
        // verdict, so building one now would be thrown away.
        if !self.settings.endpoints.iter().any(|e| e == path) {
            let refusal = transport::Refusal::new(
                404,
                codes::INVALID_REQUEST,
                "Not found",
                format!("`{path}` is not an MCP endpoint of this server"),
            );
            let (reply, audit) = self.refuse(refusal, None, head, self.audit_for(head));
            return HeadVerdict::Respond(reply, audit);
        }
        if let Err(refusal) = transport::check_head(&self.settings, head) {
            let (reply, audit) = self.refuse(refusal, None, head, self.audit_for(head));
            return HeadVerdict::Respond(reply, audit);
        }
        // `check_head` let only POST, GET and DELETE through.
        let pseudo_method = match head.method {
            "GET" => Some(HTTP_GET_METHOD),
            "DELETE" => Some(HTTP_DELETE_METHOD),
            _ => None,
        };
        let now_secs = u64::try_from(head.now_unix_nanos / 1_000_000_000).unwrap_or(u64::MAX);
        let identity = match self.identify(head, now_secs) {
            Ok(identity) => identity,
            Err(error) => {
                let reply = self.unauthorized(&error, head.request_id);
                let status = reply.status;
                let mut audit = self.audit_for(head).denied(status, error.to_string());
                audit.token_failure = Some(error.class());
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
        let audit = || self.audit_for(head).with_identity(&identity);
        if let Err(error) = self.check_session(head, &identity) {
            let refusal = Self::session_not_found(&error);
            let (reply, mut audit) = self.refuse(refusal, None, head, audit());
            audit.session_refusal = Some(error.class());
            return HeadVerdict::Respond(reply, audit);
        }
        if let Some(method) = pseudo_method {
            let request = McpRequest::http(method);
            let (decision, shadow) = self.policy.decide(&identity, &request);
            let audit = audit()
                .with_request(&request, false)
                .with_decision(&decision)
                .with_shadow(shadow);
            if decision.is_allowed() {
                return HeadVerdict::Forward(self.forwarding(audit, &identity, None, head, true));
            }
            let (reply, audit) = self.deny(&identity, &request, &decision, head, audit);
            return HeadVerdict::Respond(reply, audit);
        }
        let declared = head
            .content_length
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.settings.max_body_bytes) {
            let (reply, audit) = self.body_too_large(audit(), head);
            return HeadVerdict::Respond(reply, audit);
        }
        HeadVerdict::ReadBody(identity)
    }

    /// The verified identity of the caller: from the bearer token, or from
    /// the payload `jwt_authn` verified.
    fn identify(&self, head: &RequestHead<'_>, now_secs: u64) -> Result<Rc<Identity>, TokenError> {
        match self.verifier.verified_by() {
            VerifiedBy::Warden => TokenVerifier::bearer_token(head.authorization)
                .and_then(|token| self.verifier.verify(token, now_secs)),
            VerifiedBy::JwtAuthn => {
                let accepted = match head.verified_payload {
                    Some(Ok(Some(verified))) => self.verifier.accept_verified(verified, now_secs),
                    Some(Err(error)) => Err(TokenError::VerifiedPayload(error.to_string())),
                    Some(Ok(None)) | None => Err(TokenError::NotVerifiedByProxy),
                };
                // No verified payload. Without a token, that is a missing
                // token (the MCP 401 that starts authorization); with one,
                // `jwt_authn` refused it or never saw it, and Warden does
                // not verify it in its place.
                if matches!(accepted, Err(TokenError::NotVerifiedByProxy)) {
                    TokenVerifier::bearer_token(head.authorization)?;
                }
                accepted
            }
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

    /// Judges a complete POST body from a verified identity.
    pub fn judge_body(
        &self,
        identity: &Rc<Identity>,
        body: &[u8],
        head: &RequestHead<'_>,
    ) -> BodyVerdict {
        self.judge_complete_body(identity, body, head, true)
    }

    /// [`judge_body`](Self::judge_body) for a POST whose headers already
    /// went upstream with [`streamed_head_edits`](Self::streamed_head_edits)
    /// (`filter.header_mode: stream`): a forwarding carries no header
    /// edits, since nothing could apply them any more.
    pub fn judge_streamed_body(
        &self,
        identity: &Rc<Identity>,
        body: &[u8],
        head: &RequestHead<'_>,
    ) -> BodyVerdict {
        self.judge_complete_body(identity, body, head, false)
    }

    fn judge_complete_body(
        &self,
        identity: &Rc<Identity>,
        body: &[u8],
        head: &RequestHead<'_>,
        header_edits: bool,
    ) -> BodyVerdict {
        let audit = self.audit_for(head).with_identity(identity);
        // `judge_head` validated the head; only its comparison with the body
        // is left.
        let revision = transport::Revision::of(head);
        let decoding = Decoding {
            limits: JsonLimits {
                max_bytes: self.settings.max_body_bytes,
                max_depth: self.settings.max_json_depth,
            },
            revision: revision.known(),
            tool_names: self.settings.tool_names,
        };
        let request = match decode_body(body, decoding) {
            Ok(request) => request,
            Err(error) => {
                let (reply, audit) = self.undecodable(&error, head, audit);
                return BodyVerdict::Respond(reply, audit);
            }
        };
        let audit = audit.with_request(&request, self.settings.audit_arguments);
        if let Err(refusal) = transport::check_body(&self.settings, head, revision, &request) {
            let (reply, audit) = self.refuse(refusal, request.id.as_ref(), head, audit);
            return BodyVerdict::Respond(reply, audit);
        }
        let (decision, shadow) = self.policy.decide(identity, &request);
        let audit = audit.with_decision(&decision).with_shadow(shadow);
        if !decision.is_allowed() {
            let (reply, audit) = self.deny(identity, &request, &decision, head, audit);
            return BodyVerdict::Respond(reply, audit);
        }
        BodyVerdict::Forward(self.forwarding(audit, identity, request.id, head, header_edits))
    }

    /// The forwarding of an allowed request: identity headers in, client
    /// copies and (optionally) the token out. Each edit sets a header
    /// (replacing every copy the client sent) or removes it.
    fn forwarding(
        &self,
        audit: AuditRecord,
        identity: &Rc<Identity>,
        request_id: Option<Value>,
        head: &RequestHead<'_>,
        header_edits: bool,
    ) -> Forwarding {
        // A policy in shadow enforces nothing, lists included.
        let cut_lists = self.settings.filter_lists && !self.policy.is_shadow();
        let lists = cut_lists.then(|| {
            Box::new(ListPlan {
                identity: Rc::clone(identity),
                request_id,
            })
        });
        Forwarding {
            // A compressed response could not be read: ask for it
            // uncompressed.
            header_edits: if header_edits {
                self.upstream_edits(identity, lists.is_some(), head)
            } else {
                Vec::new()
            },
            audit,
            lists,
            session_binding: self
                .settings
                .bind_sessions
                .then(|| Self::session_binding(identity)),
        }
    }

    /// The request-header edits for a POST whose headers go upstream before
    /// its body is judged ([`HeaderMode::Stream`](crate::config::HeaderMode)):
    /// decided from the verified token alone, the same as after the body.
    pub fn streamed_head_edits(
        &self,
        identity: &Identity,
        head: &RequestHead<'_>,
    ) -> Vec<HeaderEdit> {
        self.upstream_edits(identity, self.settings.filter_lists, head)
    }

    fn upstream_edits(
        &self,
        identity: &Identity,
        drop_encoding: bool,
        head: &RequestHead<'_>,
    ) -> Vec<HeaderEdit> {
        let upstream = &self.settings.upstream;
        let names = &self.upstream_names;
        let mut header_edits = Vec::with_capacity(3 + IDENTITY_HEADERS.len());
        header_edits.extend(self.session_edit(head));
        if upstream.strip_authorization {
            header_edits.push((Arc::clone(&names.authorization), None));
        }
        if drop_encoding {
            header_edits.push((Arc::clone(&names.accept_encoding), None));
        }
        if !upstream.identity_header_prefix.is_empty() {
            // Worked out on the identity's first forwarded request, then
            // shared by every request its cached token makes.
            let values = identity
                .header_values
                .get_or_init(|| identity_header_values(identity));
            header_edits.extend(
                names
                    .identity
                    .iter()
                    .zip(values)
                    .map(|(name, value)| (Arc::clone(name), value.clone())),
            );
        }
        header_edits
    }
}
