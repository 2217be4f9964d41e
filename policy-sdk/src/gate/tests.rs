use serde_json::{Value, json};

use super::*;
use crate::testing::{DemoIssuer, TEST_NOW, demo_identity_json};

fn document(extra: Value) -> String {
    let mut doc = json!({
        "version": 1,
        "identity": demo_identity_json(),
        "rules": [
            {"id": "search", "effect": "allow", "owner": "docs", "tools": ["search_docs"]},
            {"id": "no-deploy", "effect": "deny", "owner": "release", "tools": ["deploy"]},
        ],
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        doc[k] = v;
    }
    doc.to_string()
}

fn warden(extra: Value) -> Warden {
    Warden::from_json(&document(extra)).unwrap()
}

fn bearer() -> String {
    format!(
        "Bearer {}",
        DemoIssuer::new()
            .unwrap()
            .token(TEST_NOW, json!({}))
            .unwrap()
    )
}

fn head<'a>(method: &'a str, path: &'a str, authorization: Option<&'a str>) -> RequestHead<'a> {
    RequestHead {
        method,
        path,
        authorization,
        content_length: None,
        request_id: Some("req-1"),
        now_unix_nanos: u128::from(TEST_NOW) * 1_000_000_000,
    }
}

fn post(w: &Warden, body: &str) -> BodyVerdict {
    let auth = bearer();
    let h = head("POST", "/mcp", Some(&auth));
    match w.judge_head(&h) {
        HeadVerdict::ReadBody(identity) => w.judge_body(&identity, body.as_bytes(), &h),
        other => panic!("expected ReadBody, got {other:?}"),
    }
}

#[test]
fn configuration_errors_are_refused() {
    let cases = [
        (json!({"version": 2}), "version 2 is not supported"),
        (
            json!({"filter": {"deny_status": 500}}),
            "filter.deny_status",
        ),
        (
            json!({"filter": {"max_body_bytes": 0}}),
            "filter.max_body_bytes",
        ),
        (json!({"filter": {"realm": "a\"b"}}), "filter.realm"),
        (json!({"filter": {"unknown": 1}}), "unknown field `unknown`"),
        (
            json!({"rules": [{"id": "x", "effect": "allow", "owner": "o", "tools": []}]}),
            "rule `x` (tools)",
        ),
        (
            json!({"identity": {"issuers": [{"issuer": "i", "audiences": ["a"]}]}}),
            "give one of `jwks`",
        ),
    ];
    for (extra, message) in cases {
        let err = Warden::from_json(&document(extra.clone())).unwrap_err();
        assert!(err.to_string().contains(message), "{extra}: {err}");
    }
    let err = Warden::from_json(r#"{"version":1,"version":1}"#).unwrap_err();
    assert!(err.to_string().contains("duplicate key `version`"), "{err}");
    assert!(Warden::from_json("not json").is_err());
}

#[test]
fn policy_version_is_a_stable_content_hash() {
    let a = warden(json!({}));
    let b = warden(json!({}));
    assert_eq!(a.version(), b.version());
    assert!(a.version().starts_with("sha256:"));
    let c = warden(json!({"filter": {"deny_status": 403}}));
    assert_ne!(a.version(), c.version());
}

#[test]
fn passthrough_paths_skip_judgement_and_other_paths_do_not() {
    let w = warden(json!({"filter": {"passthrough_paths": ["/healthz"]}}));
    assert_eq!(
        w.judge_head(&head("GET", "/healthz?x=1", None)),
        HeadVerdict::Pass
    );
    assert!(
        matches!(w.judge_head(&head("GET", "/healthz/", None)), HeadVerdict::Respond(r, _) if r.status == 401)
    );
    assert!(
        matches!(w.judge_head(&head("POST", "/anything", None)), HeadVerdict::Respond(r, _) if r.status == 401)
    );
}

#[test]
fn declared_and_actual_oversized_bodies_get_413() {
    let w = warden(json!({"filter": {"max_body_bytes": 64}}));
    let auth = bearer();
    let mut h = head("POST", "/mcp", Some(&auth));
    h.content_length = Some("65");
    match w.judge_head(&h) {
        HeadVerdict::Respond(reply, audit) => {
            assert_eq!(reply.status, 413);
            assert_eq!(audit.status, Some(413));
            assert_eq!(audit.subject.as_deref(), Some("alice"));
        }
        other => panic!("{other:?}"),
    }
    h.content_length = None;
    let HeadVerdict::ReadBody(identity) = w.judge_head(&h) else {
        panic!()
    };
    let (reply, audit) = w.judge_oversized_body(&identity, &h);
    assert_eq!(reply.status, 413);
    assert_eq!(audit.decision, "deny");
    // The decoder also refuses a body larger than the limit if one slips through.
    match w.judge_body(&identity, &[b' '; 65], &h) {
        BodyVerdict::Respond(reply, _) => assert_eq!(reply.status, 400),
        other => panic!("{other:?}"),
    }
}

#[test]
fn denial_answers_the_request_id_with_the_configured_status() {
    let w = warden(json!({}));
    let BodyVerdict::Respond(reply, audit) = post(
        &w,
        r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"deploy"}}"#,
    ) else {
        panic!()
    };
    assert_eq!(reply.status, 200);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["id"], "abc");
    assert_eq!(body["error"]["code"], -31403);
    assert_eq!(body["error"]["data"]["rule"], "no-deploy");
    assert_eq!(body["error"]["data"]["request_id"], "req-1");
    assert_eq!(audit.rule.as_deref(), Some("no-deploy"));
    assert_eq!(audit.owner.as_deref(), Some("release"));
    assert_eq!(audit.tool.as_deref(), Some("deploy"));
    assert_eq!(audit.jsonrpc_id, Some(json!("abc")));

    let strict = warden(json!({"filter": {"deny_status": 403}}));
    let BodyVerdict::Respond(reply, _) = post(
        &strict,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}"#,
    ) else {
        panic!()
    };
    assert_eq!(reply.status, 403);
}

#[test]
fn messages_without_a_response_are_denied_with_403() {
    let w = warden(json!({}));
    for body in [
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#,
        r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
    ] {
        let BodyVerdict::Respond(reply, _) = post(&w, body) else {
            panic!("{body}")
        };
        assert_eq!(reply.status, 403, "{body}");
    }
}

#[test]
fn allowed_requests_are_forwarded_with_an_audit_record() {
    let w = warden(json!({}));
    let BodyVerdict::Forward(audit) = post(
        &w,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"q":"secret"}}}"#,
    ) else {
        panic!()
    };
    assert_eq!(audit.decision, "allow");
    assert_eq!(audit.status, None);
    assert_eq!(audit.policy, w.version());
    assert_eq!(audit.request_id.as_deref(), Some("req-1"));
    assert_eq!(audit.time, "2027-01-15T08:00:00.000Z");
    assert_eq!(
        audit.arguments, None,
        "arguments are not audited by default"
    );
    let line = audit.to_json_line();
    assert!(line.starts_with(r#"{"audit":"warden/v1","#), "{line}");
    assert!(!line.contains("secret"));

    let with_args = warden(json!({"filter": {"audit_arguments": true}}));
    let BodyVerdict::Forward(audit) = post(
        &with_args,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"q":"x"}}}"#,
    ) else {
        panic!()
    };
    assert_eq!(audit.arguments, Some(json!({"q": "x"})));
}

#[test]
fn unauthenticated_requests_are_audited_without_identity() {
    let w = warden(json!({}));
    let HeadVerdict::Respond(reply, audit) =
        w.judge_head(&head("POST", "/mcp", Some("Bearer not.a.token")))
    else {
        panic!()
    };
    assert_eq!(reply.status, 401);
    assert_eq!(audit.status, Some(401));
    assert_eq!(audit.subject, None);
    assert!(!audit.to_json_line().contains("not.a.token"));
    let challenge = &reply
        .headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .unwrap()
        .1;
    assert!(
        challenge.starts_with(r#"Bearer realm="warden", error="invalid_token""#),
        "{challenge}"
    );
}
