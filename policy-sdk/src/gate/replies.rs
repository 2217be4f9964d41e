//! Refusals and denials: how each is answered (deny modes, challenges,
//! JSON-RPC errors) and audited.

use super::*;
use crate::mcp::MethodFacts;

impl Warden {
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

    pub(super) fn body_too_large(
        &self,
        audit: AuditRecord,
        head: &RequestHead<'_>,
    ) -> (Reply, AuditRecord) {
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

    /// The answer to a body that cannot be judged. A message Warden cannot
    /// read (not JSON, a batch, no JSON-RPC message) gets `400` whatever the
    /// deny mode: it has no id to answer and no target a mode could hide. A
    /// request whose parameters Warden must judge are missing or mistyped
    /// (`tools/call` without `params.name`) is answered for its id in the
    /// policy's deny mode: `error` gives `200`; `forbidden` (and `step_up`,
    /// which has no scopes to ask for here) gives `400`, the HTTP error
    /// status of a malformed request; `disguise` gives the bare `-32602` a
    /// server gives, without Warden's reason and request id. The reason
    /// names only what the request got wrong against the MCP
    /// specification, never the policy.
    pub(super) fn undecodable(
        &self,
        error: &DecodeError,
        head: &RequestHead<'_>,
        audit: AuditRecord,
    ) -> (Reply, AuditRecord) {
        let reason = error.to_string();
        let data = json!({"reason": reason, "request_id": head.request_id});
        let (reply, deny_mode) = match error {
            DecodeError::Parse(_) => (
                Reply::json(
                    400,
                    &[],
                    jsonrpc_error(None, error.code(), "Parse error", data),
                ),
                None,
            ),
            DecodeError::Batch | DecodeError::InvalidRequest(_) => (
                Reply::json(
                    400,
                    &[],
                    jsonrpc_error(None, error.code(), "Invalid Request", data),
                ),
                None,
            ),
            DecodeError::InvalidParams { id, .. } => {
                let answer = DenyAnswer::for_policy(self.settings.deny_mode);
                let reply = match answer {
                    DenyAnswer::Error => Reply::json(
                        200,
                        &[],
                        jsonrpc_error(id.as_ref(), error.code(), "Invalid params", data),
                    ),
                    DenyAnswer::Forbidden | DenyAnswer::StepUp { .. } => Reply::json(
                        400,
                        &[],
                        jsonrpc_error(id.as_ref(), error.code(), "Invalid params", data),
                    ),
                    DenyAnswer::Disguise => {
                        let body = json!({
                            "jsonrpc": "2.0",
                            "id": id.clone().unwrap_or(Value::Null),
                            "error": {"code": error.code(), "message": "Invalid params"},
                        })
                        .to_string();
                        Reply::json(200, &[], body)
                    }
                };
                (reply, Some(answer.mode().as_str()))
            }
        };
        let mut audit = audit.denied(reply.status, reason);
        audit.deny_mode = deny_mode;
        if let DecodeError::InvalidParams { method, id, .. } = error {
            audit.method = Some(method.clone());
            audit.jsonrpc_id = id.clone();
        }
        (reply, audit)
    }

    /// The audit record of a request that ended without a decision of the
    /// policy: the stream was reset, the upstream answered first, or the
    /// host failed. `status` is Warden's answer, if it gave one.
    pub fn undecided(
        &self,
        head: &RequestHead<'_>,
        identity: Option<&Identity>,
        status: Option<u16>,
        reason: impl Into<Arc<str>>,
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

    /// The answer to a transport-rule violation.
    pub(super) fn refuse(
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
    /// the step-up challenge in `step_up` mode). The rule id and reason
    /// reach only callers the disclosure in force names; everyone else
    /// learns that the policy refused, and the request id of the audit line.
    pub(super) fn deny(
        &self,
        identity: &Identity,
        request: &McpRequest,
        decision: &Decision,
        head: &RequestHead<'_>,
        audit: AuditRecord,
    ) -> (Reply, AuditRecord) {
        let answer = decision
            .deny_answer
            .clone()
            .unwrap_or_else(|| DenyAnswer::for_policy(self.settings.deny_mode));
        let disclosed = decision
            .disclosure
            .unwrap_or(self.disclosure)
            .includes(identity.acting().actor_type);
        let is_call = request.kind == MessageKind::Request;
        let access_denied = || {
            let (message, data) = if disclosed {
                let reason = &decision.reason;
                (
                    format!("Access denied by policy: {reason}"),
                    json!({"decision": "deny", "rule": decision.rule, "reason": reason, "request_id": head.request_id}),
                )
            } else {
                (
                    "Access denied by policy".to_owned(),
                    json!({"decision": "deny", "request_id": head.request_id}),
                )
            };
            jsonrpc_error(request.id.as_ref(), codes::ACCESS_DENIED, &message, data)
        };
        let reply = match &answer {
            DenyAnswer::Error if is_call => Reply::json(200, &[], access_denied()),
            DenyAnswer::Error | DenyAnswer::Forbidden => Reply::json(403, &[], access_denied()),
            DenyAnswer::StepUp { scopes } => {
                let scope = scopes.join(" ");
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
            DenyAnswer::Disguise if is_call => {
                // What the server says of a target that does not exist;
                // a method without one does not exist itself.
                let unknown = MethodFacts::named(&request.method).and_then(|f| f.disguise);
                let (code, message) = match (unknown, request.target_name()) {
                    (Some(unknown), Some(name)) => {
                        (codes::INVALID_PARAMS, format!("{unknown}: {name}"))
                    }
                    _ => (codes::METHOD_NOT_FOUND, "Method not found".to_owned()),
                };
                let body = json!({
                    "jsonrpc": "2.0",
                    "id": request.id.clone().unwrap_or(Value::Null),
                    "error": {"code": code, "message": message},
                })
                .to_string();
                Reply::json(200, &[], body)
            }
            DenyAnswer::Disguise => Reply::json(403, &[], access_denied()),
        };
        let audit = AuditRecord {
            status: Some(reply.status),
            deny_mode: Some(answer.mode().as_str()),
            ..audit
        };
        (reply, audit)
    }

    /// RFC 6750 §3: no credentials → a bare challenge; bad credentials →
    /// `invalid_token` with a description. Every challenge names the
    /// Protected Resource Metadata when it is served (RFC 9728 §5.1). The
    /// description and the body say only the class of the failure
    /// ([`TokenError::public_description`]); the audit line has the detail.
    pub(super) fn unauthorized(&self, error: &TokenError, request_id: Option<&str>) -> Reply {
        let description = error.public_description();
        let body = |message: &str| {
            jsonrpc_error(
                None,
                codes::UNAUTHENTICATED,
                message,
                json!({"reason": description, "request_id": request_id}),
            )
        };
        if let TokenError::KeysUnavailable(_) = error {
            // Not the caller's fault: the keys to judge the token are missing.
            return Reply::json(503, &[("retry-after", "5")], body("Service Unavailable"));
        }
        let mut challenge = format!(
            "Bearer realm=\"{}\"{}",
            self.settings.realm,
            self.metadata_challenge()
        );
        match error {
            TokenError::Missing => {}
            TokenError::NotBearer => challenge.push_str(", error=\"invalid_request\""),
            _ => challenge.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{description}\""
            )),
        }
        Reply::json(
            401,
            &[("www-authenticate", &challenge)],
            body("Unauthorized"),
        )
    }
}

pub(super) fn jsonrpc_error(id: Option<&Value>, code: i64, message: &str, data: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": {"code": code, "message": message, "data": data},
    })
    .to_string()
}
