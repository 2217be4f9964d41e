//! What a refused caller learns: by default that the policy refused, and
//! the request id; the rule and reason only where the policy or the rule
//! discloses them to the caller's actor type; a 401 says the class of the
//! token's failure and nothing of the configuration.

use super::*;
use crate::testing::raw_token;

/// Rules whose denials carry telling details: a deny rule, an allow rule
/// with an argument condition whose evaluation can fail (the reason then
/// names the pointer and the expected type), and the rule ids themselves.
fn rules(extra: Value) -> Value {
    let mut rules = json!([
        {"id": "search", "effect": "allow", "owner": "docs", "tools": ["search_docs"]},
        {"id": "no-deploy-secret-rule", "effect": "deny", "owner": "release", "tools": ["deploy"]},
        {"id": "scale-within-bounds", "effect": "allow", "owner": "ops", "tools": ["scale"],
         "arguments": [{"pointer": "/replicas", "range": {"min": 1, "max": 10}}]},
    ]);
    if let (Some(list), Some(extra)) = (rules.as_array_mut(), extra.as_array()) {
        list.extend(extra.iter().cloned());
    }
    rules
}

fn warden_with(filter: Value, extra_rules: Value) -> Rc<Warden> {
    warden(json!({"filter": filter, "rules": rules(extra_rules)}))
}

const HUMAN: &str = "human";
const SERVICE: &str = "service";
const AGENT: &str = "agent";
/// An agent acting for a human: the acting party (the agent) reads the answer.
const AGENT_FOR_HUMAN: &str = "agent-for-human";

fn caller_token(caller: &str) -> String {
    let claims = match caller {
        HUMAN => json!({"sub": "alice", "actor_type": "human"}),
        SERVICE => json!({"sub": "ci", "actor_type": "service"}),
        AGENT => json!({"sub": "research-agent", "actor_type": "agent"}),
        AGENT_FOR_HUMAN => json!({"sub": "alice", "actor_type": "human",
            "act": {"sub": "research-agent", "actor_type": "agent"}}),
        other => panic!("no caller {other}"),
    };
    token_for(claims)
}

fn post_as(w: &Rc<Warden>, caller: &str, body: &str) -> (Reply, AuditRecord, Value) {
    let auth = caller_token(caller);
    refused(post_with(w, body, head("POST", "/mcp", Some(&auth))))
}

const DEPLOY: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}"#;
const UNKNOWN_TOOL: &str =
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_tables"}}"#;
const SCALE_WRONG_TYPE: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"scale","arguments":{"replicas":"many"}}}"#;
const NOTIFICATION: &str = r#"{"jsonrpc":"2.0","method":"notifications/secret_probe"}"#;

/// The body of a denial that discloses nothing: the code, a fixed message,
/// the decision and the request id.
fn assert_withheld(body: &Value, what: &str) {
    assert_eq!(body["error"]["code"], -31403, "{what}: {body}");
    assert_eq!(
        body["error"]["message"], "Access denied by policy",
        "{what}: {body}"
    );
    assert_eq!(
        body["error"]["data"],
        json!({"decision": "deny", "request_id": "req-1"}),
        "{what}: {body}"
    );
}

/// Nothing of the policy in the raw answer: no rule id, no reason, no
/// pointer, no expected type, no subject.
fn assert_nothing_leaks(reply: &Reply, what: &str) {
    let mut raw = reply.body.clone();
    for (name, value) in &reply.headers {
        raw.push_str(&format!("\n{name}: {value}"));
    }
    for secret in [
        "no-deploy-secret-rule",
        "scale-within-bounds",
        "rule",
        "reason",
        "/replicas",
        "number",
        "no rule allows",
        "alice",
        "research-agent",
    ] {
        assert!(!raw.contains(secret), "{what}: `{secret}` leaked in {raw}");
    }
}

#[test]
fn by_default_no_caller_learns_the_rule_or_the_reason() {
    for deny_mode in ["error", "forbidden", "step_up"] {
        let w = warden_with(json!({"deny_mode": deny_mode}), json!([]));
        for caller in [HUMAN, SERVICE, AGENT, AGENT_FOR_HUMAN] {
            for request in [DEPLOY, UNKNOWN_TOOL, SCALE_WRONG_TYPE, NOTIFICATION] {
                let what = format!("{deny_mode}, {caller}, {request}");
                let (reply, audit, body) = post_as(&w, caller, request);
                assert_withheld(&body, &what);
                assert_nothing_leaks(&reply, &what);
                // The audit line keeps the whole truth.
                assert!(!audit.reason.is_empty(), "{what}");
                assert_eq!(audit.request_id.as_deref(), Some("req-1"), "{what}");
            }
        }
    }
    // The audit line names what the caller was not told.
    let w = warden_with(json!({}), json!([]));
    let (_, audit, _) = post_as(&w, AGENT, DEPLOY);
    assert_eq!(audit.rule.as_deref(), Some("no-deploy-secret-rule"));
    assert!(audit.reason.contains("denied by rule"), "{}", audit.reason);
    assert!(
        !audit.evaluation_error,
        "a rule's deny is no evaluation error"
    );
    let (_, audit, _) = post_as(&w, AGENT, SCALE_WRONG_TYPE);
    assert!(
        audit.reason.contains("evaluation error"),
        "{}",
        audit.reason
    );
    // Counted apart (warden_evaluation_errors_total), not written to the line.
    assert!(audit.evaluation_error);
    assert!(!audit.to_json_line().contains("evaluation_error"));
}

#[test]
fn a_step_up_challenge_names_its_scopes_and_nothing_else() {
    let w = warden_with(
        json!({}),
        json!([{"id": "reset-needs-scope", "effect": "allow", "owner": "ops", "tools": ["reset"],
                "principal": {"scopes": ["ops:reset"]}, "deny_mode": "step_up"}]),
    );
    let reset = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"reset"}}"#;
    let (reply, audit, body) = post_as(&w, AGENT, reset);
    assert_eq!(reply.status, 403);
    assert_eq!(
        header(&reply, "www-authenticate").unwrap(),
        "Bearer realm=\"warden\", error=\"insufficient_scope\", scope=\"ops:reset\", \
         error_description=\"the request needs scope ops:reset\""
    );
    assert_withheld(&body, "step_up");
    assert!(!reply.body.contains("reset-needs-scope"), "{}", reply.body);
    assert_eq!(audit.deny_mode_rule.as_deref(), Some("reset-needs-scope"));
}

#[test]
fn disguise_still_answers_unknown() {
    let w = warden_with(json!({"deny_mode": "disguise"}), json!([]));
    let (reply, _, body) = post_as(&w, AGENT, DEPLOY);
    assert_eq!(reply.status, 200);
    assert_eq!(
        body["error"],
        json!({"code": -32602, "message": "Unknown tool: deploy"})
    );
    // Even where the policy discloses: disguise has nothing to disclose in.
    let open = warden_with(
        json!({"deny_mode": "disguise", "disclose_reasons": ["agent"]}),
        json!([]),
    );
    let (_, _, body) = post_as(&open, AGENT, DEPLOY);
    assert_eq!(
        body["error"],
        json!({"code": -32602, "message": "Unknown tool: deploy"})
    );
}

/// The body of a denial that discloses: the rule (null for a default deny)
/// and the full reason.
fn assert_disclosed(body: &Value, rule: Option<&str>, what: &str) {
    let data = &body["error"]["data"];
    assert_eq!(data["rule"], json!(rule), "{what}: {body}");
    let reason = data["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "{what}: {body}");
    assert_eq!(
        body["error"]["message"],
        format!("Access denied by policy: {reason}"),
        "{what}"
    );
    assert_eq!(data["request_id"], "req-1", "{what}");
}

#[test]
fn the_policy_discloses_to_the_actor_types_it_lists() {
    let w = warden_with(json!({"disclose_reasons": ["human", "service"]}), json!([]));
    for caller in [HUMAN, SERVICE] {
        let (_, _, body) = post_as(&w, caller, DEPLOY);
        assert_disclosed(&body, Some("no-deploy-secret-rule"), caller);
        let (_, _, body) = post_as(&w, caller, UNKNOWN_TOOL);
        assert_disclosed(&body, None, caller);
        // An evaluation error names the pointer and what it expected.
        let (_, _, body) = post_as(&w, caller, SCALE_WRONG_TYPE);
        assert_disclosed(&body, Some("scale-within-bounds"), caller);
        let reason = body["error"]["data"]["reason"].as_str().unwrap();
        assert!(reason.contains("/replicas"), "{reason}");
    }
    // Agents are not listed, and an agent acting for a human is an agent.
    for caller in [AGENT, AGENT_FOR_HUMAN] {
        for request in [DEPLOY, UNKNOWN_TOOL, SCALE_WRONG_TYPE] {
            let (reply, _, body) = post_as(&w, caller, request);
            assert_withheld(&body, caller);
            assert_nothing_leaks(&reply, caller);
        }
    }
    // Each listed type alone.
    let agents_only = warden_with(json!({"disclose_reasons": ["agent"]}), json!([]));
    let (_, _, body) = post_as(&agents_only, AGENT_FOR_HUMAN, DEPLOY);
    assert_disclosed(&body, Some("no-deploy-secret-rule"), "agent for human");
    let (_, _, body) = post_as(&agents_only, HUMAN, DEPLOY);
    assert_withheld(&body, "human");
    // An unclassifiable caller is never told, whatever is listed.
    let everyone = warden_with(
        json!({"disclose_reasons": ["human", "service", "agent"]}),
        json!([]),
    );
    let auth = token_for(json!({"actor_type": "robot"}));
    let (_, audit, body) = refused(post_with(
        &everyone,
        DEPLOY,
        head("POST", "/mcp", Some(&auth)),
    ));
    assert_withheld(&body, "unclassified");
    assert!(audit.reason.contains("no recognised actor type"));
    // The audit line names the fix; the caller's answer does not.
    assert!(
        audit
            .reason
            .contains("`actor_type` value `robot` is not in `claims.actor_type_values`"),
        "{}",
        audit.reason
    );
    assert!(!body.to_string().contains("actor_type_values"));
}

#[test]
fn a_rule_overrides_the_policy_disclosure_for_its_denials() {
    let w = warden_with(
        json!({"disclose_reasons": ["human"]}),
        json!([
            // Tells agents (and only them) why they may never wipe.
            {"id": "agents-never-wipe", "effect": "deny", "owner": "sec", "tools": ["wipe"],
             "principal": {"types": ["agent"]}, "disclose_reasons": ["agent"]},
            {"id": "humans-wipe", "effect": "allow", "owner": "sec", "tools": ["wipe"],
             "principal": {"groups": ["admins"]}},
            // Tells nobody, humans included.
            {"id": "quiet-exports", "effect": "deny", "owner": "fin", "tools": ["export"],
             "disclose_reasons": []},
            // An allow rule speaks for the default denials of its target.
            {"id": "ops-restart", "effect": "allow", "owner": "ops", "tools": ["restart"],
             "principal": {"groups": ["ops"]}, "disclose_reasons": ["service"]},
        ]),
    );
    let call = |tool: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"{tool}"}}}}"#)
    };
    let (_, _, body) = post_as(&w, AGENT, &call("wipe"));
    assert_disclosed(&body, Some("agents-never-wipe"), "rule opts agents in");
    let (_, _, body) = post_as(&w, AGENT_FOR_HUMAN, &call("wipe"));
    assert_disclosed(&body, Some("agents-never-wipe"), "acting agent");
    // A human denied wipe by default deny: no rule chose, the policy's list.
    let (_, _, body) = post_as(&w, HUMAN, &call("wipe"));
    assert_disclosed(&body, None, "policy list for humans");

    let (reply, _, body) = post_as(&w, HUMAN, &call("export"));
    assert_withheld(&body, "rule opts everyone out");
    assert!(!reply.body.contains("quiet-exports"));

    let (_, _, body) = post_as(&w, SERVICE, &call("restart"));
    assert_disclosed(&body, None, "allow rule opts services in");
    let (_, _, body) = post_as(&w, HUMAN, &call("restart"));
    assert_withheld(&body, "the allow rule's list replaces the policy's");
    // Other denials keep the policy's list.
    let (_, _, body) = post_as(&w, AGENT, DEPLOY);
    assert_withheld(&body, "policy list, agent");
    let (_, _, body) = post_as(&w, HUMAN, DEPLOY);
    assert_disclosed(&body, Some("no-deploy-secret-rule"), "policy list, human");
}

#[test]
fn disclosure_lists_are_validated_when_loaded() {
    for (extra, message) in [
        (
            json!({"filter": {"disclose_reasons": ["robot"]}}),
            "filter.disclose_reasons: entry 0: unknown actor type `robot`",
        ),
        (
            json!({"filter": {"disclose_reasons": ["agent", "agent"]}}),
            "filter.disclose_reasons: entry 1: `agent` is listed twice",
        ),
        (
            json!({"filter": {"disclose_reasons": "agent"}}),
            "invalid type",
        ),
        (
            json!({"rules": [{"id": "x", "effect": "deny", "owner": "o", "tools": ["t"],
                              "disclose_reasons": ["human", "llm"]}]}),
            "rule `x` (disclose_reasons[1]): unknown actor type `llm`",
        ),
        (
            json!({"rules": [{"id": "x", "effect": "deny", "owner": "o", "tools": ["t"],
                              "disclose_reasons": true}]}),
            "invalid type",
        ),
    ] {
        let err = Warden::from_json(&document(extra.clone())).unwrap_err();
        assert!(err.to_string().contains(message), "{extra}: {err}");
    }
    let err = Warden::from_json(&document(json!({"rules": [
        {"id": "x", "effect": "deny", "owner": "o", "tools": ["t"], "disclose_reasons": ["x"]},
    ]})))
    .unwrap_err();
    assert!(err.help().unwrap().contains("`human`, `service`, `agent`"));
}

/// A 401's challenge and body, for `authorization`.
fn unauthorized(w: &Warden, authorization: &str) -> (Reply, AuditRecord) {
    match w.judge_head(&head("POST", "/mcp", Some(authorization))) {
        HeadVerdict::Respond(reply, audit) => (reply, audit),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_401_says_the_class_of_the_failure_and_nothing_of_the_configuration() {
    let w = warden(json!({"identity": {
        "issuers": [{
            "issuer": crate::testing::DEMO_ISSUER,
            "audiences": [crate::testing::DEMO_AUDIENCE],
            "jwks": crate::testing::demo_jwks(),
            "algorithms": ["ES256", "RS256", "EdDSA"],
        }],
        "revocation": {"jti": [{"value": "stolen-1", "reason": "laptop left on a train"}]},
    }}));
    let claims = crate::testing::standard_claims(TEST_NOW, json!({}));
    let unknown_kid = raw_token(
        &json!({"alg": "ES256", "kid": "kid-only-the-idp-knows"}),
        &claims,
        &[0; 64],
    );
    let wrong_alg = raw_token(
        &json!({"alg": "PS256", "kid": "demo-es256"}),
        &claims,
        &[0; 64],
    );
    let cases = [
        (
            unknown_kid,
            "the token could not be verified",
            "kid-only-the-idp-knows",
        ),
        (wrong_alg, "the token could not be verified", "PS256"),
        (
            DemoIssuer::new()
                .unwrap()
                .token(TEST_NOW, json!({"aud": "https://elsewhere.example/mcp"}))
                .unwrap(),
            "the token could not be verified",
            "audience",
        ),
        (
            DemoIssuer::new()
                .unwrap()
                .token(TEST_NOW, json!({"iss": "https://rogue.example"}))
                .unwrap(),
            "the token could not be verified",
            "rogue.example",
        ),
        (
            DemoIssuer::new()
                .unwrap()
                .token(TEST_NOW, json!({"exp": TEST_NOW - 3600}))
                .unwrap(),
            "the token is expired",
            "expired",
        ),
        (
            DemoIssuer::new()
                .unwrap()
                .token(TEST_NOW, json!({"jti": "stolen-1"}))
                .unwrap(),
            "the token is revoked",
            "laptop left on a train",
        ),
        ("not.a.token".to_owned(), "the token is malformed", "token"),
    ];
    for (token, class, detail) in cases {
        let (reply, audit) = unauthorized(&w, &format!("Bearer {token}"));
        assert_eq!(reply.status, 401, "{class}");
        let challenge = header(&reply, "www-authenticate").unwrap();
        assert_eq!(
            challenge,
            format!(
                "Bearer realm=\"warden\", error=\"invalid_token\", error_description=\"{class}\""
            )
        );
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            body["error"]["data"],
            json!({"reason": class, "request_id": "req-1"})
        );
        for secret in [
            "kid",
            "kid-only-the-idp-knows",
            "demo-es256",
            "https://",
            "ES256",
            "RS256",
            "EdDSA",
            "PS256",
            "laptop",
            "jwks",
        ] {
            assert!(
                !challenge.contains(secret) && !reply.body.contains(secret),
                "{class}: `{secret}` leaked: {challenge} {}",
                reply.body
            );
        }
        // The audit line has the detail.
        assert!(
            audit.reason.contains(detail),
            "{class}: audit reason {}",
            audit.reason
        );
    }
}

#[test]
fn every_token_error_has_a_short_description_safe_in_a_header() {
    use crate::identity::TokenError;
    let errors = [
        TokenError::Missing,
        TokenError::NotBearer,
        TokenError::TooLarge {
            size: 9000,
            limit: 8192,
        },
        TokenError::Malformed,
        TokenError::BadHeader("`kid` is missing".into()),
        TokenError::BadClaims("x".into()),
        TokenError::AlgorithmNotAllowed("HS256".into()),
        TokenError::CriticalHeader,
        TokenError::WrongType {
            expected: "at+jwt".into(),
            found: "jwt".into(),
        },
        TokenError::UntrustedIssuer("https://rogue".into()),
        TokenError::UnknownKey {
            issuer: "https://idp".into(),
            kid: "k1".into(),
        },
        TokenError::KeysUnavailable("https://idp".into()),
        TokenError::AmbiguousKey(2),
        TokenError::BadSignature,
        TokenError::WrongAudience,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::NoExpiry,
        TokenError::NoSubject("sub".into()),
        TokenError::BadClaim("groups".into()),
        TokenError::ChainTooDeep(4),
        TokenError::Revoked("laptop stolen".into()),
    ];
    for error in errors {
        let description = error.public_description();
        assert!(
            description
                .chars()
                .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'),
            "{error:?}: {description}"
        );
        // No datum the error carries reaches the description.
        for datum in [
            "9000", "8192", "kid", "HS256", "at+jwt", "https", "k1", "groups", "4", "laptop",
        ] {
            assert!(
                !description.contains(datum),
                "{error:?}: `{datum}` in {description}"
            );
        }
    }
}

#[test]
fn a_503_for_missing_keys_names_no_issuer() {
    let w = warden(json!({"identity": {"issuers": [{
        "issuer": "https://idp.fetched.example",
        "audiences": [crate::testing::DEMO_AUDIENCE],
        "jwks_fetch": {"cluster": "idp", "path": "/jwks.json"},
    }]}}));
    let token = DemoIssuer::new()
        .unwrap()
        .token(TEST_NOW, json!({"iss": "https://idp.fetched.example"}))
        .unwrap();
    let HeadVerdict::KeysMissing { reply, audit, .. } =
        w.judge_head(&head("POST", "/mcp", Some(&format!("Bearer {token}"))))
    else {
        panic!()
    };
    assert_eq!(reply.status, 503);
    assert!(!reply.body.contains("fetched.example"), "{}", reply.body);
    assert!(audit.reason.contains("https://idp.fetched.example"));
}

const NAMELESS_CALL: &str =
    r#"{"jsonrpc":"2.0","id":"n-1","method":"tools/call","params":{"arguments":{}}}"#;
const MISTYPED_ARGUMENTS: &str = r#"{"jsonrpc":"2.0","id":"n-2","method":"tools/call","params":{"name":"deploy","arguments":[1]}}"#;

#[test]
fn decode_time_refusals_follow_the_policy_deny_mode() {
    for request in [NAMELESS_CALL, MISTYPED_ARGUMENTS] {
        let id = serde_json::from_str::<Value>(request).unwrap()["id"].clone();
        // error: 200, -32602 with what the request got wrong.
        let w = warden_with(json!({}), json!([]));
        let (reply, audit, body) = post_as(&w, AGENT, request);
        assert_eq!(reply.status, 200, "{request}");
        assert_eq!(body["id"], id);
        assert_eq!(body["error"]["code"], -32602);
        assert_eq!(body["error"]["data"]["request_id"], "req-1");
        assert!(
            body["error"]["data"]["reason"]
                .as_str()
                .unwrap()
                .contains("params"),
            "{body}"
        );
        assert_eq!(audit.deny_mode, Some("error"));
        assert_eq!(audit.method.as_deref(), Some("tools/call"));
        // forbidden, and step_up with nothing to ask for: the HTTP error
        // status of a malformed request, the same body.
        for mode in ["forbidden", "step_up"] {
            let w = warden_with(json!({"deny_mode": mode}), json!([]));
            let (reply, audit, strict) = post_as(&w, AGENT, request);
            assert_eq!(reply.status, 400, "{mode} {request}");
            assert_eq!(strict, body, "{mode}");
            assert_eq!(audit.deny_mode, Some("forbidden"));
        }
        // disguise: the bare error a server gives, nothing of Warden's.
        let w = warden_with(json!({"deny_mode": "disguise"}), json!([]));
        let (reply, audit, body) = post_as(&w, AGENT, request);
        assert_eq!(reply.status, 200);
        assert_eq!(
            body,
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "Invalid params"}})
        );
        assert_eq!(audit.deny_mode, Some("disguise"));
        assert!(audit.reason.contains("params"), "{}", audit.reason);
    }
    // A rule's deny mode has no say: the refusal names no target to tie it to.
    let w = warden_with(
        json!({}),
        json!([{"id": "d", "effect": "deny", "owner": "o", "tools": ["deploy"], "deny_mode": "forbidden"}]),
    );
    let (reply, _, _) = post_as(&w, AGENT, MISTYPED_ARGUMENTS);
    assert_eq!(reply.status, 200);
    // A body that is no JSON-RPC message at all stays 400 in every mode.
    for mode in ["error", "forbidden", "disguise"] {
        let w = warden_with(json!({"deny_mode": mode}), json!([]));
        let (reply, audit, body) = post_as(&w, AGENT, r#"[{"jsonrpc":"2.0"}]"#);
        assert_eq!(
            (reply.status, body["error"]["code"].clone()),
            (400, json!(-32600)),
            "{mode}"
        );
        assert_eq!(audit.deny_mode, None);
    }
}

#[test]
fn the_deny_mode_and_the_disclosure_may_come_from_different_allow_rules() {
    // Both allow rules are for `reset` and the agent qualifies for neither:
    // the first that sets a deny mode shapes the answer, the first that sets
    // `disclose_reasons` says who is told.
    let w = warden_with(
        json!({}),
        json!([
            {"id": "reset-needs-scope", "effect": "allow", "owner": "ops", "tools": ["reset"],
             "principal": {"scopes": ["ops:reset"]}, "deny_mode": "step_up"},
            {"id": "ops-reset", "effect": "allow", "owner": "ops", "tools": ["reset"],
             "principal": {"groups": ["ops"]}, "disclose_reasons": ["agent"]},
        ]),
    );
    let reset = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"reset"}}"#;
    let (reply, audit, body) = post_as(&w, AGENT, reset);
    assert_eq!(reply.status, 403);
    assert!(
        header(&reply, "www-authenticate")
            .unwrap()
            .contains("scope=\"ops:reset\"")
    );
    assert_disclosed(&body, None, "disclosure from the second rule");
    assert_eq!(audit.deny_mode_rule.as_deref(), Some("reset-needs-scope"));
    let (_, _, body) = post_as(&w, SERVICE, reset);
    assert_withheld(&body, "not an agent");
}
