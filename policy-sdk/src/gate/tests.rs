use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{Value, json};

use super::*;
use crate::exchange::memory::{Driver, HeaderPause, MemoryHost, Response};
use crate::exchange::{AuditKind, Exchange, HOST_SESSION_KEY};
use crate::listing::EventStream;
use crate::testing::{DEMO_ISSUER, DemoIssuer, TEST_NOW, demo_identity_json};

mod denials;
mod jwt_authn;

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

fn warden(extra: Value) -> Rc<Warden> {
    Rc::new(Warden::from_json(&document(extra)).unwrap())
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
        content_type: (method == "POST").then_some("application/json"),
        request_id: Some("req-1"),
        now_unix_nanos: u128::from(TEST_NOW) * 1_000_000_000,
        ..RequestHead::default()
    }
}

/// The identity `h`'s token verifies to, where the head asks for the body.
fn verified(w: &Warden, h: &RequestHead<'_>) -> Rc<Identity> {
    let HeadVerdict::ReadBody(identity) = w.judge_head(h) else {
        panic!("expected the body to be read")
    };
    identity
}

/// Shared data, as the proxy holds it for every stream of a worker.
type Shared = BTreeMap<String, Vec<u8>>;

/// The headers a client sends for `h`.
fn client_request(h: &RequestHead<'_>) -> Vec<(String, String)> {
    // No `..`: a new fact of the head must be given its header here.
    let RequestHead {
        method,
        path,
        authorization,
        content_length,
        content_type,
        content_encoding,
        request_id,
        // Without an id of Warden's own, the exchange uses the client's.
        client_request_id: _,
        origin,
        protocol_version,
        mcp_method,
        mcp_name,
        session_id,
        // Derived by the exchange from `mcp-session-id`.
        session: _,
        duplicated,
        traceparent,
        // Not a header: the host's metadata (tests/jwt_authn.rs).
        verified_payload: _,
        now_unix_nanos: _,
    } = *h;
    let mut headers: Vec<(String, String)> = [
        (":method", Some(method)),
        (":path", Some(path)),
        ("authorization", authorization),
        ("content-length", content_length),
        ("content-type", content_type),
        ("content-encoding", content_encoding),
        ("x-request-id", request_id),
        ("origin", origin),
        ("mcp-protocol-version", protocol_version),
        ("mcp-method", mcp_method),
        ("mcp-name", mcp_name),
        ("mcp-session-id", session_id),
        ("traceparent", traceparent),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value?.to_owned())))
    .collect();
    if let Some(name) = duplicated {
        while headers.iter().filter(|(k, _)| k == name).count() < 2 {
            headers.push((name.to_owned(), "duplicate".to_owned()));
        }
    }
    headers
}

/// One stream through the exchange, as the filter drives it: what the host
/// saw, and the exchange, still open for the response.
struct Stream {
    exchange: Exchange,
    host: MemoryHost,
    /// The request headers as the client sent them.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Stream {
    /// The upstream answers: the response callbacks run.
    fn respond(&mut self, status: &str, headers: &[(&str, &str)], body: &str) {
        let mut all = vec![(":status".to_owned(), status.to_owned())];
        all.extend(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let response = Response {
            headers: all,
            chunks: vec![body.as_bytes().to_vec()],
            trailers: None,
        };
        let host = std::mem::take(&mut self.host);
        let mut driver = Driver::new(&mut self.exchange, host);
        driver.send_response(&response);
        driver.finish();
        self.host = driver.host;
    }

    /// The one decision recorded for the request.
    fn decision(&self) -> AuditRecord {
        let decisions = self.host.decisions();
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        decisions[0].clone()
    }
}

fn post(w: &Rc<Warden>, body: &str) -> Stream {
    let auth = bearer();
    post_with(w, body, head("POST", "/mcp", Some(&auth)))
}

/// POSTs `body` with the head `h` through the exchange, in `w`'s header
/// mode.
fn post_with(w: &Rc<Warden>, body: &str, h: RequestHead<'_>) -> Stream {
    let headers = client_request(&h);
    send(w, h.now_unix_nanos, headers, Shared::new(), body)
}

/// Sends one request through a fresh exchange: the headers, which must
/// leave it waiting for its body (the head alone decides nothing), then
/// the body, then the end of the stream.
fn send(
    w: &Rc<Warden>,
    now_unix_nanos: u128,
    headers: Vec<(String, String)>,
    shared: Shared,
    body: &str,
) -> Stream {
    let mut exchange = Exchange::new(Some(Rc::clone(w)));
    let mut host = MemoryHost::new(now_unix_nanos, HeaderPause::Honoured);
    host.shared = shared;
    let mut driver = Driver::new(&mut exchange, host);
    driver.request_headers(&headers, false);
    assert!(
        driver.host.reply.is_none() && driver.host.audits.is_empty() && !driver.exchange.decided(),
        "expected the body to be read, the head was answered: {:?} {:?}",
        driver.host.reply,
        driver.host.audits
    );
    driver.request_chunk(body.as_bytes(), true);
    driver.finish();
    let host = driver.host;
    Stream {
        exchange,
        host,
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// A request the exchange let through.
struct Forwarded {
    audit: AuditRecord,
    /// The request headers the upstream received.
    upstream: Vec<(String, String)>,
    stream: Stream,
}

fn forwarded(stream: Stream) -> Forwarded {
    assert!(
        stream.host.reply.is_none(),
        "denied: {:?} {:?}",
        stream.host.reply,
        stream.host.audits
    );
    let audit = stream.decision();
    assert!(audit.is_allowed(), "{audit:?}");
    assert_eq!(
        stream.host.request.sent_body, stream.body,
        "the body went on whole"
    );
    let upstream = stream.host.request.sent_headers.clone().unwrap();
    Forwarded {
        audit,
        upstream,
        stream,
    }
}

/// A request the exchange answered: the answer, its decision, and the
/// answer's body as JSON. No body byte went upstream.
fn refused(stream: Stream) -> (Reply, AuditRecord, Value) {
    let reply = stream.host.reply.clone().expect("answered locally");
    assert!(
        stream.host.request.sent_body.is_empty(),
        "the body went upstream"
    );
    let audit = stream.decision();
    assert!(!audit.is_allowed(), "{audit:?}");
    let body = serde_json::from_str(&reply.body).unwrap();
    (reply, audit, body)
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn configuration_errors_are_refused() {
    let cases = [
        (json!({"version": 2}), "version 2 is not supported"),
        (
            json!({"filter": {"deny_mode": "teapot"}}),
            "unknown variant `teapot`",
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
    let c = warden(json!({"filter": {"deny_mode": "forbidden"}}));
    assert_ne!(a.version(), c.version());
}

#[test]
fn passthrough_paths_skip_judgement_and_other_paths_do_not() {
    let w = warden(json!({"filter": {"passthrough_paths": ["/healthz"]}}));
    assert_eq!(
        w.judge_head(&head("GET", "/healthz?x=1", None)),
        HeadVerdict::Pass
    );
    // Any path that is neither an endpoint nor passed through is refused,
    // before a token is even looked at; the endpoint itself is judged.
    for path in ["/healthz/", "/anything", "/admin", "/mcp/", "//mcp", "/MCP"] {
        match w.judge_head(&head("POST", path, None)) {
            HeadVerdict::Respond(r, audit) => {
                assert_eq!(r.status, 404, "{path}");
                assert!(audit.reason.contains("not an MCP endpoint"), "{path}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(
        matches!(w.judge_head(&head("POST", "/mcp?x=1", None)), HeadVerdict::Respond(r, _) if r.status == 401)
    );
    let two = warden(json!({"filter": {"endpoints": ["/mcp", "/v2/mcp"]}}));
    assert!(
        matches!(two.judge_head(&head("POST", "/v2/mcp", None)), HeadVerdict::Respond(r, _) if r.status == 401)
    );
    for (endpoints, passthrough) in [
        (json!([]), json!([])),
        (json!(["mcp"]), json!([])),
        (json!(["/mcp?x"]), json!([])),
        (json!(["/mcp"]), json!(["/mcp"])),
    ] {
        let doc =
            document(json!({"filter": {"endpoints": endpoints, "passthrough_paths": passthrough}}));
        let err = Warden::from_json(&doc).unwrap_err();
        assert!(err.to_string().contains("filter.endpoints"), "{err}");
    }
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
    let identity = verified(&w, &h);
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
    let (reply, audit, body) = refused(post(
        &w,
        r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call","params":{"name":"deploy"}}"#,
    ));
    assert_eq!(reply.status, 200);
    assert_eq!(body["id"], "abc");
    assert_eq!(body["error"]["code"], -31403);
    assert_eq!(body["error"]["data"]["request_id"], "req-1");
    assert_eq!(audit.rule.as_deref(), Some("no-deploy"));
    assert_eq!(audit.owner.as_deref(), Some("release"));
    assert_eq!(audit.tool.as_deref(), Some("deploy"));
    assert_eq!(audit.jsonrpc_id, Some(json!("abc")));

    let strict = warden(json!({"filter": {"deny_mode": "forbidden"}}));
    let (reply, _, _) = refused(post(
        &strict,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}}"#,
    ));
    assert_eq!(reply.status, 403);
}

#[test]
fn messages_without_a_response_are_denied_with_403() {
    let w = warden(json!({}));
    for body in [
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#,
        r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
    ] {
        let (reply, _, _) = refused(post(&w, body));
        assert_eq!(reply.status, 403, "{body}");
    }
}

#[test]
fn allowed_requests_are_forwarded_with_an_audit_record() {
    let w = warden(json!({}));
    let audit = forwarded(post(
        &w,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"q":"secret"}}}"#,
    ))
    .audit;
    assert_eq!(audit.decision, "allow");
    assert_eq!(audit.status, None);
    assert_eq!(&*audit.policy, w.version());
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
    let audit = forwarded(post(
        &with_args,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"q":"x"}}}"#,
    ))
    .audit;
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
    assert_eq!(audit.token_failure, Some("malformed"));
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

/// Every refusal of a token names its class in the audit line, from a set
/// small enough for a metric label.
#[test]
fn refused_tokens_are_classed() {
    let w = warden(json!({}));
    let expired = token_for(json!({"exp": TEST_NOW - 3600}));
    for (authorization, class) in [
        (None, "missing"),
        (Some("Basic abc"), "not_bearer"),
        (Some("Bearer a.b"), "malformed"),
        (Some(expired.as_str()), "expired"),
    ] {
        let HeadVerdict::Respond(_, audit) = w.judge_head(&head("POST", "/mcp", authorization))
        else {
            panic!("{class}")
        };
        assert_eq!(audit.token_failure, Some(class), "{authorization:?}");
        assert!(
            audit
                .to_json_line()
                .contains(&format!("\"token_failure\":\"{class}\""))
        );
    }
}

fn token_for(extra: Value) -> String {
    format!(
        "Bearer {}",
        DemoIssuer::new().unwrap().token(TEST_NOW, extra).unwrap()
    )
}

const CALL_DEPLOY: &str =
    r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"deploy"}}"#;

#[test]
fn protocol_versions_outside_the_window_get_400_with_the_supported_list() {
    let w = warden(
        json!({"filter": {"protocol_versions": {"min": "2025-06-18", "max": "2025-11-25"}}}),
    );
    let auth = bearer();
    for version in ["2025-03-26", "2026-07-28", "2099-01-01", "latest"] {
        let h = RequestHead {
            protocol_version: Some(version),
            ..head("POST", "/mcp", Some(&auth))
        };
        let HeadVerdict::Respond(reply, audit) = w.judge_head(&h) else {
            panic!("{version}")
        };
        assert_eq!(reply.status, 400, "{version}");
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], -32022);
        assert_eq!(
            body["error"]["data"]["supported"],
            json!(["2025-06-18", "2025-11-25"])
        );
        assert_eq!(body["error"]["data"]["requested"], version);
        assert_eq!(audit.protocol_version.as_deref(), Some(version));
    }
    // No header: `initialize` may omit it; anything else is taken as
    // 2025-03-26, which this window refuses.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    forwarded(post(&w, init));
    let (reply, _, body) = refused(post(&w, r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#));
    assert_eq!(reply.status, 400);
    assert_eq!(body["error"]["code"], -32022);
    assert_eq!(body["id"], 2);
    // The default window takes every revision with Streamable HTTP.
    let open = warden(json!({}));
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let h = RequestHead {
            protocol_version: Some(version),
            ..head("POST", "/mcp", Some(&auth))
        };
        assert!(
            matches!(open.judge_head(&h), HeadVerdict::ReadBody(_)),
            "{version}"
        );
    }
}

#[test]
fn transport_rules_refuse_origins_query_tokens_media_types_and_duplicates() {
    let w = warden(json!({"filter": {"allowed_origins": ["https://app.example"]}}));
    let auth = bearer();
    let status = |h: RequestHead<'_>| match w.judge_head(&h) {
        HeadVerdict::Respond(reply, _) => Some(reply.status),
        HeadVerdict::ReadBody(_) => None,
        other => panic!("{other:?}"),
    };
    let base = head("POST", "/mcp", Some(&auth));
    assert_eq!(
        status(RequestHead {
            origin: Some("https://evil.example"),
            ..base
        }),
        Some(403)
    );
    assert_eq!(
        status(RequestHead {
            origin: Some("https://app.example"),
            ..base
        }),
        None
    );
    assert_eq!(status(base), None, "no Origin: not a browser");
    assert_eq!(
        status(RequestHead {
            path: "/mcp?access_token=abc",
            ..base
        }),
        Some(400)
    );
    assert_eq!(
        status(RequestHead {
            content_type: Some("text/plain"),
            ..base
        }),
        Some(415)
    );
    assert_eq!(
        status(RequestHead {
            content_type: None,
            ..base
        }),
        Some(415)
    );
    assert_eq!(
        status(RequestHead {
            content_type: Some("Application/JSON; charset=utf-8"),
            ..base
        }),
        None
    );
    assert_eq!(
        status(RequestHead {
            duplicated: Some("mcp-method"),
            ..base
        }),
        Some(400)
    );
    // The query-token refusal comes before authentication: no token needed.
    let HeadVerdict::Respond(reply, _) = w.judge_head(&head("GET", "/mcp?access_token=abc", None))
    else {
        panic!()
    };
    assert_eq!(reply.status, 400);
    assert!(
        header(&reply, "www-authenticate")
            .unwrap()
            .contains("invalid_request")
    );
    // Bad origins in the configuration are refused.
    let err = Warden::from_json(&document(
        json!({"filter": {"allowed_origins": ["app.example"]}}),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("filter.allowed_origins"), "{err}");
}

#[test]
fn the_tool_name_format_is_the_filter_setting_and_never_admits_controls() {
    let call = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": name}})
            .to_string()
    };
    let spec = warden(json!({}));
    let relaxed = warden(json!({"filter": {"tool_names": "printable_ascii"}}));
    // Outside the spec's format: refused before the policy by default, judged
    // by the policy (no rule allows it) when relaxed.
    let (_, audit, body) = refused(post(&spec, &call("ns/search_docs")));
    assert_eq!(body["error"]["code"], -32602);
    assert_eq!(audit.rule, None);
    let (_, audit, body) = refused(post(&relaxed, &call("ns/search_docs")));
    assert_eq!(body["error"]["code"], -31403);
    assert_eq!(audit.tool.as_deref(), Some("ns/search_docs"));
    for name in [
        "search_docs ",
        "search_docs\u{7}",
        "search_docs\n",
        "séarch_docs",
    ] {
        for w in [&spec, &relaxed] {
            let (_, _, body) = refused(post(w, &call(name)));
            assert_eq!(body["error"]["code"], -32602, "{name:?}");
            assert_eq!(body["id"], 4);
        }
    }
    forwarded(post(&relaxed, &call("search_docs")));
    assert!(Warden::from_json(&document(json!({"filter": {"tool_names": "any"}}))).is_err());
}

fn modern_head<'a>(auth: &'a str) -> RequestHead<'a> {
    RequestHead {
        protocol_version: Some("2026-07-28"),
        ..head("POST", "/mcp", Some(auth))
    }
}

fn modern_body(method: &str, params: Value) -> String {
    let mut params = params;
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}).to_string()
}

#[test]
fn request_metadata_headers_must_match_the_body() {
    let w = warden(json!({}));
    let auth = bearer();
    let search = modern_body("tools/call", json!({"name": "search_docs"}));
    let good = RequestHead {
        mcp_method: Some("tools/call"),
        mcp_name: Some("search_docs"),
        ..modern_head(&auth)
    };
    forwarded(post_with(&w, &search, good));
    let mismatches = [
        RequestHead {
            mcp_method: Some("tools/list"),
            ..good
        },
        RequestHead {
            mcp_name: Some("other_tool"),
            ..good
        },
        RequestHead {
            mcp_method: None,
            ..good
        },
        RequestHead {
            mcp_name: None,
            ..good
        },
        RequestHead {
            mcp_name: Some("=?base64?!!?="),
            ..good
        },
    ];
    for h in mismatches {
        let (reply, audit, body) = refused(post_with(&w, &search, h));
        assert_eq!(reply.status, 400, "{h:?}");
        assert_eq!(body["error"]["code"], -32020, "{h:?}");
        assert_eq!(body["id"], 9, "the error answers the request");
        assert_eq!(audit.tool.as_deref(), Some("search_docs"));
    }
    // The header cannot smuggle an allowed name past a denied body.
    let deploy = modern_body("tools/call", json!({"name": "deploy"}));
    let (reply, _, body) = refused(post_with(&w, &deploy, good));
    assert_eq!(
        (reply.status, body["error"]["code"].clone()),
        (400, json!(-32020))
    );
    // Non-ASCII names (a prompt's; tool names are ASCII by the spec's
    // format) travel base64-encoded.
    let cafe = modern_body("prompts/get", json!({"name": "café"}));
    let encoded = RequestHead {
        mcp_method: Some("prompts/get"),
        mcp_name: Some("=?base64?Y2Fmw6k=?="),
        ..good
    };
    let (reply, _, body) = refused(post_with(&w, &cafe, encoded));
    assert_eq!(reply.status, 200, "names match; the policy denies");
    assert_eq!(body["error"]["code"], -31403);
    // The body's protocol version must match the header.
    let mut other_version: Value = serde_json::from_str(&search).unwrap();
    other_version["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] =
        json!("2025-11-25");
    let (_, _, body) = refused(post_with(&w, &other_version.to_string(), good));
    assert_eq!(body["error"]["code"], -32020);
    // A 2026-07-28 request must carry its version in _meta.
    let bare = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search_docs"}}"#;
    let (_, _, body) = refused(post_with(&w, bare, good));
    assert_eq!(body["error"]["code"], -32602);
    // Legacy requests may omit the headers, but a header that is sent must match.
    forwarded(post(&w, bare));
    let legacy = RequestHead {
        mcp_method: Some("ping"),
        ..head("POST", "/mcp", Some(&auth))
    };
    let (_, _, body) = refused(post_with(&w, bare, legacy));
    assert_eq!(body["error"]["code"], -32020);
}

#[test]
fn the_2026_transport_has_no_get_stream_or_delete() {
    let w = warden(json!({}));
    let auth = bearer();
    for method in ["GET", "DELETE"] {
        let h = RequestHead {
            method,
            ..modern_head(&auth)
        };
        let HeadVerdict::Respond(reply, _) = w.judge_head(&h) else {
            panic!()
        };
        assert_eq!(reply.status, 405);
        assert_eq!(header(&reply, "allow"), Some("POST"));
    }
}

/// A request head through a fresh exchange, with the proxy's `shared`
/// data: the host afterwards (the shared data it leaves included).
fn head_through(w: &Rc<Warden>, headers: &[(String, String)], shared: Shared) -> MemoryHost {
    let mut exchange = Exchange::new(Some(Rc::clone(w)));
    let mut host = MemoryHost::new(u128::from(TEST_NOW) * 1_000_000_000, HeaderPause::Honoured);
    host.shared = shared;
    let mut driver = Driver::new(&mut exchange, host);
    driver.request_headers(headers, false);
    driver.host
}

fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    sent_header(Some(headers), name)
}

fn sent_header<'h>(headers: Option<&'h [(String, String)]>, name: &str) -> Option<&'h str> {
    headers?
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Opens a session as `auth` through `w`: the server answers `initialize`
/// with `server_id`. The sealed id the client got, and the shared data.
fn open_session(w: &Rc<Warden>, auth: &str, server_id: &str, shared: Shared) -> (String, Shared) {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    let headers = client_request(&RequestHead {
        protocol_version: Some("2025-11-25"),
        ..head("POST", "/mcp", Some(auth))
    });
    let mut opened = forwarded(send(
        w,
        u128::from(TEST_NOW) * 1_000_000_000,
        headers,
        shared,
        init,
    ))
    .stream;
    opened.respond("200", &[("mcp-session-id", server_id)], "{}");
    let sealed = sent_header(
        opened.host.response.sent_headers.as_deref(),
        "mcp-session-id",
    )
    .expect("the client gets a session id")
    .to_owned();
    (sealed, std::mem::take(&mut opened.host.shared))
}

fn with_session(auth: &str, session_id: &str, method: &str) -> Vec<(String, String)> {
    let mut headers = client_request(&RequestHead {
        protocol_version: Some("2025-11-25"),
        ..head(method, "/mcp", Some(auth))
    });
    headers.push(("mcp-session-id".into(), session_id.into()));
    headers
}

fn session_refusal(host: &MemoryHost) -> (u16, String, Option<String>) {
    let reply = host.reply.as_ref().expect("refused");
    let audit = &host.decisions()[0];
    assert!(!host.forwarded_anything());
    (
        reply.status,
        audit.reason.to_string(),
        audit.subject.as_deref().map(str::to_owned),
    )
}

#[test]
fn the_client_gets_the_server_session_id_sealed_to_its_principal() {
    let w = warden(json!({}));
    let (sealed, shared) = open_session(&w, &bearer(), "sess-1", Shared::new());
    assert!(sealed.starts_with("ws1."), "{sealed}");
    assert!(!sealed.contains("sess-1"), "carried encoded: {sealed}");
    // The host made its key once, in shared data.
    assert_eq!(shared.len(), 1, "{:?}", shared.keys());
    let key = shared.get(HOST_SESSION_KEY).expect("the host key");
    assert_eq!(key.len(), 32);
    // The next session is sealed with the same key.
    let (again, shared_after) = open_session(&w, &bearer(), "sess-2", shared.clone());
    assert_eq!(shared_after, shared);
    assert_ne!(again, sealed);
    // Unsealed with the stored key, it is the server's id bound to alice.
    let keys = [crate::sealing::SessionKey::new(key).unwrap()];
    let alice = json!([DEMO_ISSUER, "alice", "alice"]).to_string();
    assert_eq!(
        crate::sealing::open(&keys, &sealed, &alice).unwrap(),
        "sess-1"
    );
}

#[test]
fn a_session_is_unsealed_for_its_owner_and_refused_to_everyone_else() {
    let w = warden(json!({}));
    let alice = bearer();
    let (sealed, shared) = open_session(&w, &alice, "sess-1", Shared::new());
    // Alice, with the sealed id: the upstream gets the server's id, in
    // every header mode (stream sends the headers before the body).
    for mode in ["stream", "hold"] {
        let w = warden(json!({"filter": {"header_mode": mode}}));
        let (sealed, shared) = open_session(&w, &alice, "sess-1", shared.clone());
        let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
        let headers = with_session(&alice, &sealed, "POST");
        let done = forwarded(send(
            &w,
            u128::from(TEST_NOW) * 1_000_000_000,
            headers,
            shared,
            ping,
        ));
        assert_eq!(
            header_value(&done.upstream, "mcp-session-id"),
            Some("sess-1"),
            "{mode}"
        );
    }
    // GET and DELETE: unsealed and forwarded; no table to end a session in.
    for method in ["GET", "DELETE"] {
        let host = head_through(&w, &with_session(&alice, &sealed, method), shared.clone());
        assert!(host.reply.is_none(), "{method}: {:?}", host.reply);
        let sent = host.request.sent_headers.as_deref();
        assert_eq!(
            sent_header(sent, "mcp-session-id"),
            Some("sess-1"),
            "{method}"
        );
        assert_eq!(host.shared, shared, "{method} changed shared data");
    }
    let refused = |auth: &str, id: &str| {
        session_refusal(&head_through(
            &w,
            &with_session(auth, id, "POST"),
            shared.clone(),
        ))
    };
    // Bob presents Alice's session.
    let bob = token_for(json!({"sub": "bob"}));
    let (status, reason, subject) = refused(&bob, &sealed);
    assert_eq!((status, subject.as_deref()), (404, Some("bob")));
    assert_eq!(reason, "Mcp-Session-Id belongs to another principal");
    // An agent acting for Alice is another principal too.
    let agent = token_for(json!({"act": {"sub": "agent-7", "actor_type": "agent"}}));
    assert_eq!(refused(&agent, &sealed).1, reason);
    // The server's raw id, an altered seal, and nonsense: each says why.
    let (status, reason, _) = refused(&alice, "sess-1");
    assert_eq!(status, 404);
    assert!(reason.contains("not issued by Warden"), "{reason}");
    let mut altered = sealed.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'Q' } else { 'A' });
    let reason = refused(&alice, &altered).1;
    assert!(
        reason.contains("bad seal") || reason.contains("canonical"),
        "{reason}"
    );
    assert!(refused(&alice, "ws1.a.b").1.contains("not a well-formed"));
    // A 2026-07-28 request carrying another principal's session is held to
    // the binding too.
    let modern_bob = modern_head(&bob);
    let mut headers = client_request(&RequestHead {
        mcp_method: Some("ping"),
        ..modern_bob
    });
    headers.push(("mcp-session-id".into(), sealed.clone()));
    let (status, reason, _) = session_refusal(&head_through(&w, &headers, shared.clone()));
    assert_eq!(
        (status, reason.as_str()),
        (404, "Mcp-Session-Id belongs to another principal")
    );
}

#[test]
fn refused_sessions_carry_the_class_of_the_refusal_for_counting() {
    let w = warden(json!({}));
    let alice = bearer();
    let (sealed, shared) = open_session(&w, &alice, "sess-1", Shared::new());
    let class = |auth: &str, id: &str| {
        let host = head_through(&w, &with_session(auth, id, "POST"), shared.clone());
        session_refusal(&host);
        host.decisions()[0].session_refusal
    };
    let bob = token_for(json!({"sub": "bob"}));
    assert_eq!(class(&bob, &sealed), Some("another_principal"));
    assert_eq!(class(&alice, "sess-1"), Some("not_sealed"));
    assert_eq!(class(&alice, "ws1.a.b"), Some("malformed"));
    // Not written to the audit line: the reason says it there.
    let host = head_through(&w, &with_session(&bob, &sealed, "POST"), shared.clone());
    assert!(
        !host.decisions()[0]
            .to_json_line()
            .contains("session_refusal")
    );
    // An accepted session is no refusal.
    let host = head_through(&w, &with_session(&alice, &sealed, "GET"), shared.clone());
    assert!(host.reply.is_none(), "{:?}", host.reply);
    assert!(host.decisions().iter().all(|d| d.session_refusal.is_none()));
}

#[test]
fn a_session_sealed_by_another_proxy_opens_only_with_the_same_keys() {
    let key_a = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE";
    let key_b = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI";
    let fleet_a = warden(json!({"filter": {"session_keys": [key_a]}}));
    let alice = bearer();
    let (sealed, shared) = open_session(&fleet_a, &alice, "sess-9", Shared::new());
    assert!(shared.is_empty(), "configured keys need no host key");
    // Another proxy of the fleet (its own shared data), same key.
    let fleet_a2 = warden(json!({"filter": {"session_keys": [key_a]}}));
    let host = head_through(
        &fleet_a2,
        &with_session(&alice, &sealed, "GET"),
        Shared::new(),
    );
    assert_eq!(
        sent_header(host.request.sent_headers.as_deref(), "mcp-session-id"),
        Some("sess-9")
    );
    // A proxy with its own generated key, or another fleet's key, does not.
    for other in [
        warden(json!({})),
        warden(json!({"filter": {"session_keys": [key_b]}})),
    ] {
        let host = head_through(&other, &with_session(&alice, &sealed, "GET"), Shared::new());
        assert!(session_refusal(&host).1.contains("bad seal"));
    }
    // Rotation: the new key first seals, the old one still unseals.
    let rotated = warden(json!({"filter": {"session_keys": [key_b, key_a]}}));
    let host = head_through(
        &rotated,
        &with_session(&alice, &sealed, "GET"),
        Shared::new(),
    );
    assert!(host.reply.is_none(), "{:?}", host.reply);
    let (resealed, _) = open_session(&rotated, &alice, "sess-10", Shared::new());
    let host = head_through(
        &fleet_a,
        &with_session(&alice, &resealed, "GET"),
        Shared::new(),
    );
    assert!(
        session_refusal(&host).1.contains("bad seal"),
        "sealed with the first key"
    );
}

#[test]
fn session_keys_are_validated_when_the_configuration_loads() {
    let short = "QUFBQQ";
    let cases = [
        (json!([short]), "entry 0 decodes to 4 bytes"),
        (json!(["not base64!"]), "entry 0 is not base64url"),
        (
            json!(["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE", short]),
            "entry 1 decodes",
        ),
        (
            json!(vec!["QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE"; 5]),
            "at most 4",
        ),
    ];
    for (keys, wanted) in cases {
        let err =
            Warden::from_json(&document(json!({"filter": {"session_keys": keys}}))).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("filter.session_keys: "), "{message}");
        assert!(message.contains(wanted), "{message}");
        assert!(!message.contains("QUFB"), "key material in {message}");
    }
    let gone = Warden::from_json(&document(json!({"filter": {"session_slots": 10}}))).unwrap_err();
    assert!(gone.to_string().contains("session_slots"), "{gone}");
}

#[test]
fn binding_can_be_switched_off() {
    let w = warden(json!({"filter": {"bind_sessions": false}}));
    let alice = bearer();
    let (id, shared) = open_session(&w, &alice, "sess-1", Shared::new());
    assert_eq!(id, "sess-1", "not sealed");
    assert!(shared.is_empty());
    let bob = token_for(json!({"sub": "bob"}));
    let host = head_through(&w, &with_session(&bob, "sess-1", "GET"), Shared::new());
    assert_eq!(
        sent_header(host.request.sent_headers.as_deref(), "mcp-session-id"),
        Some("sess-1")
    );
}

#[test]
fn a_server_id_warden_cannot_seal_never_reaches_the_client() {
    let w = warden(json!({}));
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    for server_id in ["x".repeat(257), "has space".to_owned()] {
        let mut opened = forwarded(post(&w, init)).stream;
        opened.respond("200", &[("mcp-session-id", &server_id)], "{}");
        assert_eq!(opened.host.reply.as_ref().map(|r| r.status), Some(502));
        assert!(opened.host.response.sent_headers.is_none(), "{server_id}");
    }
    // Without a host key and no way to make one, nothing is sealed either.
    let mut opened = forwarded(post(&w, init)).stream;
    opened.host.failing.push("generating random bytes");
    opened.respond("200", &[("mcp-session-id", "sess-1")], "{}");
    assert_eq!(opened.host.reply.as_ref().map(|r| r.status), Some(502));
}

fn deny_rules(extra_rules: Value) -> Value {
    let mut rules = json!([
        {"id": "search", "effect": "allow", "owner": "docs", "tools": ["search_docs"]},
        {"id": "no-deploy", "effect": "deny", "owner": "release", "tools": ["deploy"]},
        {"id": "admin-reset", "effect": "allow", "owner": "ops", "tools": ["reset"],
         "principal": {"scopes": ["ops:reset", "ops:admin"]}, "deny_mode": "step_up"},
        {"id": "hidden-report", "effect": "allow", "owner": "ops", "prompts": ["report"],
         "principal": {"groups": ["finance"]}, "deny_mode": "disguise"},
    ]);
    if let (Some(list), Some(extra)) = (rules.as_array_mut(), extra_rules.as_array()) {
        list.extend(extra.iter().cloned());
    }
    rules
}

#[test]
fn each_deny_mode_answers_as_documented() {
    let body_of = |mode: &str, request: &str| {
        let w = warden(json!({"filter": {"deny_mode": mode}, "rules": deny_rules(json!([]))}));
        refused(post(&w, request))
    };
    let (reply, audit, body) = body_of("error", CALL_DEPLOY);
    assert_eq!(
        (reply.status, body["error"]["code"].clone()),
        (200, json!(-31403))
    );
    assert_eq!(audit.deny_mode, Some("error"));
    let (reply, _, body) = body_of("forbidden", CALL_DEPLOY);
    assert_eq!(
        (reply.status, body["error"]["code"].clone()),
        (403, json!(-31403))
    );
    let (reply, audit, body) = body_of("disguise", CALL_DEPLOY);
    assert_eq!(reply.status, 200);
    assert_eq!(
        body["error"],
        json!({"code": -32602, "message": "Unknown tool: deploy"})
    );
    assert_eq!(body["id"], 4);
    assert_eq!(
        audit.rule.as_deref(),
        Some("no-deploy"),
        "the audit keeps the truth"
    );
    assert_eq!(audit.deny_mode, Some("disguise"));
    let (_, _, body) = body_of(
        "disguise",
        r#"{"jsonrpc":"2.0","id":5,"method":"sampling/whatever"}"#,
    );
    assert_eq!(body["error"]["code"], -32601);
    let (_, _, body) = body_of(
        "disguise",
        r#"{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"file:///etc/x"}}"#,
    );
    assert_eq!(body["error"]["message"], "Unknown resource: file:///etc/x");
    // step_up with nothing to ask for falls back to a plain 403.
    let (reply, audit, _) = body_of("step_up", CALL_DEPLOY);
    assert_eq!(reply.status, 403);
    assert_eq!(header(&reply, "www-authenticate"), None);
    assert_eq!(audit.deny_mode, Some("forbidden"));
}

#[test]
fn rules_choose_their_own_deny_mode_and_step_up_names_their_scopes() {
    let w = warden(json!({
        "filter": {"resource_metadata": {
            "resource": "https://mcp.example.com/mcp",
            "authorization_servers": ["https://idp.example.com"],
        }},
        "rules": deny_rules(json!([
            {"id": "no-wipe", "effect": "deny", "owner": "sec", "tools": ["wipe"],
             "deny_mode": "step_up", "step_up_scopes": ["ops:wipe"]},
        ])),
    }));
    // Alice lacks the scopes admin-reset asks for: a step-up challenge.
    let reset = r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"reset"}}"#;
    let (reply, audit, body) = refused(post(&w, reset));
    assert_eq!(reply.status, 403);
    assert_eq!(
        header(&reply, "www-authenticate").unwrap(),
        "Bearer realm=\"warden\", error=\"insufficient_scope\", scope=\"ops:reset ops:admin\", \
         resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\", \
         error_description=\"the request needs scope ops:reset or ops:admin\""
    );
    assert_eq!(body["error"]["code"], -31403);
    assert_eq!(audit.deny_mode, Some("step_up"));
    assert_eq!(audit.rule, None, "no rule decided: a default deny");
    assert_eq!(audit.deny_mode_rule.as_deref(), Some("admin-reset"));
    // With the scope the same call is allowed.
    let scoped = token_for(json!({"scope": "ops:reset"}));
    forwarded(post_with(&w, reset, head("POST", "/mcp", Some(&scoped))));
    // A deny rule in step_up mode asks for its own scopes.
    let wipe = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"wipe"}}"#;
    let (reply, _, _) = refused(post(&w, wipe));
    assert!(
        header(&reply, "www-authenticate")
            .unwrap()
            .contains("scope=\"ops:wipe\"")
    );
    // A rule in disguise mode hides its prompt from the unqualified.
    let report = r#"{"jsonrpc":"2.0","id":8,"method":"prompts/get","params":{"name":"report"}}"#;
    let (reply, _, body) = refused(post(&w, report));
    assert_eq!(reply.status, 200);
    assert_eq!(body["error"]["message"], "Unknown prompt: report");
    // Other denials keep the policy's mode.
    let (reply, _, body) = refused(post(&w, CALL_DEPLOY));
    assert_eq!(
        (reply.status, body["error"]["code"].clone()),
        (200, json!(-31403))
    );
    // Configuration mistakes.
    for (rule, message) in [
        (
            json!({"id": "x", "effect": "deny", "owner": "o", "tools": ["t"], "deny_mode": "step_up"}),
            "needs scopes",
        ),
        (
            json!({"id": "x", "effect": "allow", "owner": "o", "tools": ["t"], "step_up_scopes": ["a"]}),
            "only used with",
        ),
        (
            json!({"id": "x", "effect": "deny", "owner": "o", "tools": ["t"], "deny_mode": "step_up", "step_up_scopes": ["a b"]}),
            "not a valid OAuth scope",
        ),
    ] {
        let err = Warden::from_json(&document(json!({"rules": [rule]}))).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn protected_resource_metadata_is_served_and_named_in_challenges() {
    let w = warden(json!({"filter": {"resource_metadata": {
        "resource": "https://mcp.example.com/mcp",
        "authorization_servers": ["https://idp.example.com"],
        "scopes_supported": ["tools:read"],
    }}}));
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let HeadVerdict::Serve(reply) = w.judge_head(&head("GET", path, None)) else {
            panic!("{path}")
        };
        assert_eq!(reply.status, 200);
        let doc: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(doc["resource"], "https://mcp.example.com/mcp");
        assert_eq!(
            doc["authorization_servers"],
            json!(["https://idp.example.com"])
        );
        assert_eq!(doc["scopes_supported"], json!(["tools:read"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
    let HeadVerdict::Serve(reply) =
        w.judge_head(&head("POST", "/.well-known/oauth-protected-resource", None))
    else {
        panic!()
    };
    assert_eq!(reply.status, 405);
    for auth in [None, Some("Bearer bad")] {
        let HeadVerdict::Respond(reply, _) = w.judge_head(&head("POST", "/mcp", auth)) else {
            panic!()
        };
        assert_eq!(reply.status, 401);
        assert!(
            header(&reply, "www-authenticate").unwrap().contains(
                "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
            ),
            "{auth:?}"
        );
    }
    // Without configuration the path is not served: not an MCP endpoint
    // either, so 404.
    let plain = warden(json!({}));
    assert!(matches!(
        plain.judge_head(&head("GET", "/.well-known/oauth-protected-resource", None)),
        HeadVerdict::Respond(r, _) if r.status == 404
    ));
    for (resource, message) in [
        ("mcp.example.com", "absolute http(s) URL"),
        ("https://mcp.example.com/mcp?x=1", "query or fragment"),
    ] {
        let err = Warden::from_json(&document(json!({"filter": {"resource_metadata": {
            "resource": resource, "authorization_servers": ["https://idp"]}}})))
        .unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
}

const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

/// The identity headers as docs/filter.md names them: the test's own list,
/// not the gate's, so a header the gate stopped setting or clearing shows.
const IDENTITY_HEADERS: [&str; 6] = [
    "subject",
    "actor-type",
    "actor",
    "chain",
    "client-id",
    "issuer",
];

/// A ping whose client forged two copies of every identity header.
fn forged_ping(w: &Rc<Warden>, authorization: &str) -> Forwarded {
    let h = head("POST", "/mcp", Some(authorization));
    let mut headers = client_request(&h);
    for name in IDENTITY_HEADERS {
        for copy in ["forged-1", "forged-2"] {
            headers.push((format!("x-warden-{name}"), copy.to_owned()));
        }
    }
    forwarded(send(w, h.now_unix_nanos, headers, Shared::new(), PING))
}

#[test]
fn the_upstream_gets_verified_identity_headers_and_never_client_copies() {
    let agent = token_for(json!({
        "sub": "zoë", "client_id": "cli-1",
        "act": {"sub": "agent-7", "actor_type": "agent"},
    }));
    for mode in ["stream", "hold"] {
        let w_all = warden(json!({
            "filter": {"header_mode": mode},
            "rules": [{"id": "all", "effect": "allow", "owner": "o"}],
        }));
        let upstream = forged_ping(&w_all, &agent).upstream;
        let identity: Vec<(&str, &str)> = upstream
            .iter()
            .filter(|(k, _)| k.starts_with("x-warden-"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            identity,
            vec![
                ("x-warden-subject", "=?base64?em/Dqw==?="),
                ("x-warden-actor-type", "agent"),
                ("x-warden-actor", "agent-7"),
                ("x-warden-chain", "=?base64?WyJ6b8OrIiwiYWdlbnQtNyJd?="),
                ("x-warden-client-id", "cli-1"),
                ("x-warden-issuer", "https://idp.demo.warden.test"),
            ],
            "{mode}"
        );
        // Each identity header arrives exactly once, with Warden's value: a
        // set replaces every copy the client sent, and a header Warden has
        // no value for is removed, so client copies never pass.
        for name in IDENTITY_HEADERS {
            let header = format!("x-warden-{name}");
            assert_eq!(
                upstream.iter().filter(|(k, _)| *k == header).count(),
                1,
                "{mode}: {name}"
            );
        }
        let direct = forged_ping(&w_all, &bearer()).upstream;
        for name in ["x-warden-actor", "x-warden-client-id"] {
            assert!(
                direct.iter().all(|(k, _)| k != name),
                "{mode}: {name}: {direct:?}"
            );
        }
        // The values are kept with each cached identity: the same tokens
        // again get the same headers each, never the other caller's.
        let identity_of = |sent: &[(String, String)]| -> Vec<(String, String)> {
            sent.iter()
                .filter(|(k, _)| k.starts_with("x-warden-"))
                .cloned()
                .collect()
        };
        for (token, first) in [(&agent, &upstream), (&bearer(), &direct)] {
            let again = forged_ping(&w_all, token).upstream;
            assert_eq!(identity_of(&again), identity_of(first), "{mode}");
        }
        for sent in [&upstream, &direct] {
            assert!(
                sent.iter().all(|(_, v)| !v.starts_with("forged")),
                "{mode}: {sent:?}"
            );
        }
        // The client's credentials go on untouched.
        let authorization: Vec<&(String, String)> = upstream
            .iter()
            .filter(|(k, _)| k == "authorization")
            .collect();
        assert_eq!(
            authorization,
            [&("authorization".to_owned(), agent.clone())],
            "{mode}"
        );
        // Stripping the token and naming no prefix: the upstream gets the
        // client's headers without `authorization`, nothing else changed.
        let stripped = warden(json!({"filter": {
            "header_mode": mode,
            "upstream": {"strip_authorization": true, "identity_header_prefix": ""},
        }}));
        let sent = forwarded(post(
            &stripped,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs"}}"#,
        ));
        let mut expected = sent.stream.headers.clone();
        expected.retain(|(k, _)| k != "authorization");
        assert_eq!(sent.upstream, expected, "{mode}");
    }
}

const LIST_TOOLS: &str = r#"{"jsonrpc":"2.0","id":"l1","method":"tools/list"}"#;

/// The upstream's answer to [`LIST_TOOLS`].
const TOOLS: &str =
    r#"{"jsonrpc":"2.0","id":"l1","result":{"tools":[{"name":"search_docs"},{"name":"deploy"}]}}"#;

#[test]
fn list_requests_plan_a_filtered_response() {
    let rules = json!([{"id": "list", "effect": "allow", "owner": "o", "methods": ["tools/list"]}]);
    let json_type = [("content-type", "application/json")];
    let w = warden(json!({"rules": rules}));
    let mut stream = forwarded(post(&w, LIST_TOOLS)).stream;
    stream.respond("200", &json_type, TOOLS);
    // The tools list answering `l1` is filtered: the caller may call
    // neither tool.
    let sent: Value = serde_json::from_slice(&stream.host.response.sent_body).unwrap();
    assert_eq!(sent["id"], "l1");
    assert_eq!(sent["result"]["tools"], json!([]), "{sent}");
    let filtered: Vec<&AuditRecord> = stream
        .host
        .audits
        .iter()
        .filter(|(_, kind)| *kind == AuditKind::ListFilter)
        .map(|(audit, _)| audit)
        .collect();
    assert_eq!(filtered.len(), 1);
    assert_eq!(
        filtered[0].list,
        Some(json!({"kind": "tools", "kept": 0, "removed": ["search_docs", "deploy"]}))
    );
    // Filtering switched off: the answer passes untouched.
    let off = warden(json!({"filter": {"filter_lists": false}, "rules": rules}));
    let mut stream = forwarded(post(&off, LIST_TOOLS)).stream;
    stream.respond("200", &json_type, TOOLS);
    assert_eq!(stream.host.response.sent_body, TOOLS.as_bytes());
    assert!(
        stream
            .host
            .audits
            .iter()
            .all(|(_, kind)| *kind == AuditKind::Decision)
    );
}

#[test]
fn a_streamed_body_is_judged_alike_without_header_edits() {
    // In `stream` mode the headers went upstream with the head's edits;
    // the body's verdict is the same, and carries no edits left to apply.
    let w = warden(json!({"rules": [{"id": "all", "effect": "allow", "owner": "o"}]}));
    let auth = bearer();
    let h = head("POST", "/mcp", Some(&auth));
    let identity = verified(&w, &h);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{}}}"#;
    let (BodyVerdict::Forward(held), BodyVerdict::Forward(streamed)) = (
        w.judge_body(&identity, body, &h),
        w.judge_streamed_body(&identity, body, &h),
    ) else {
        panic!("expected both to be forwarded")
    };
    assert!(!held.header_edits.is_empty());
    assert_eq!(
        held.header_edits,
        w.streamed_head_edits(&identity, &h),
        "the head's edits are the body's"
    );
    assert!(streamed.header_edits.is_empty());
    assert_eq!(streamed.audit, held.audit);
    assert_eq!(streamed.lists, held.lists);
    assert_eq!(streamed.session_binding, held.session_binding);
}

/// The audience the gate plans for a request, for the tests of the list
/// cutter itself below (the exchange carries plans out: see above).
fn list_audience(w: &Warden, auth: &str, body: &str) -> ListAudience {
    let h = head("POST", "/mcp", Some(auth));
    let identity = verified(w, &h);
    let BodyVerdict::Forward(f) = w.judge_body(&identity, body.as_bytes(), &h) else {
        panic!("expected the request to be allowed")
    };
    f.lists
        .expect("every forwarded request's response is read for lists")
        .audience(f.audit)
}

const LIST_RULES: &str = r#"[
    {"id": "list", "effect": "allow", "owner": "o", "methods": ["tools/list", "ping"]},
    {"id": "search", "effect": "allow", "owner": "o", "tools": ["search_docs"]}
]"#;

#[test]
fn list_results_are_cut_whole_or_event_by_event() {
    let rules: Value = serde_json::from_str(LIST_RULES).unwrap();
    let w = warden(json!({"rules": rules}));
    let list = list_audience(
        &w,
        &bearer(),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    );
    assert_eq!(list.request_id, Some(json!(3)));
    let answer =
        r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_docs"},{"name":"deploy"}]}}"#;
    let whole = w.cut_json_response(&list, answer.as_bytes());
    let body: Value = serde_json::from_slice(&whole.body.unwrap()).unwrap();
    assert_eq!(body["result"]["tools"], json!([{"name": "search_docs"}]));
    assert_eq!(whole.audits.len(), 1);
    assert_eq!(
        whole.audits[0].list,
        Some(json!({"kind": "tools", "kept": 1, "removed": ["deploy"]}))
    );
    assert_eq!(whole.audits[0].request_id.as_deref(), Some("req-1"));
    assert!(!whole.failed);
    // SSE: each chunk gives back its complete events; the rest waits.
    let mut stream = EventStream::default();
    let note =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
    let sent = w.cut_events(&list, &mut stream, note.as_bytes(), false);
    assert_eq!(
        sent.body, None,
        "a whole event without a list goes as it came"
    );
    let (head, tail) = answer.split_at(20);
    let sent = w.cut_events(
        &list,
        &mut stream,
        format!("event: message\ndata: {head}").as_bytes(),
        false,
    );
    assert_eq!(
        sent.body,
        Some(Vec::new()),
        "an unfinished event is held back"
    );
    let sent = w.cut_events(&list, &mut stream, format!("{tail}\n\n").as_bytes(), false);
    let text = String::from_utf8(sent.body.unwrap()).unwrap();
    assert!(text.starts_with("event: message\ndata: {"), "{text}");
    assert!(
        text.contains("search_docs") && !text.contains("deploy"),
        "{text}"
    );
    assert_eq!(sent.audits.len(), 1);
    // A stream that ends inside an event drops it, and says so.
    let sent = w.cut_events(
        &list,
        &mut stream,
        format!("data: {answer}").as_bytes(),
        true,
    );
    assert_eq!(sent.body, Some(Vec::new()));
    assert_eq!(sent.audits.len(), 1);
    assert_eq!(sent.audits[0].decision, "deny");
    // Too large: an error for the request, never the list.
    let small = warden(json!({"filter": {"max_response_bytes": 40}, "rules": rules}));
    let list = list_audience(
        &small,
        &bearer(),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    );
    let failed = small.cut_json_response(&list, answer.as_bytes());
    assert!(failed.failed);
    let body: Value = serde_json::from_slice(&failed.body.unwrap()).unwrap();
    assert_eq!(
        (body["id"].clone(), body["error"]["code"].clone()),
        (json!(3), json!(-32603))
    );
    let mut stream = EventStream::default();
    let failed = small.cut_events(
        &list,
        &mut stream,
        format!("data: {answer}").as_bytes(),
        false,
    );
    assert!(
        failed.failed,
        "an event larger than the limit cannot be held"
    );
    assert!(
        !String::from_utf8(failed.body.unwrap())
            .unwrap()
            .contains("deploy")
    );
}

#[test]
fn a_list_result_is_cut_whatever_request_it_answers() {
    let rules: Value = serde_json::from_str(LIST_RULES).unwrap();
    let w = warden(json!({"rules": rules}));
    // A ping whose id aliases a tools/list in flight (`"3"` and `3` are one
    // stream to a server that routes by `str(id)`).
    let ping = list_audience(
        &w,
        &bearer(),
        r#"{"jsonrpc":"2.0","id":"3","method":"ping"}"#,
    );
    let aliased =
        r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"search_docs"},{"name":"deploy"}]}}"#;
    let cut = w.cut_json_response(&ping, aliased.as_bytes());
    let body: Value = serde_json::from_slice(&cut.body.unwrap()).unwrap();
    assert_eq!(body["result"]["tools"], json!([{"name": "search_docs"}]));
    // In a batch, on an event stream, beside a `method`: cut all the same.
    let batch = format!("[{aliased}, {{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{{}}}}]");
    let cut = w.cut_json_response(&ping, batch.as_bytes());
    assert!(
        !String::from_utf8(cut.body.unwrap())
            .unwrap()
            .contains("deploy")
    );
    let odd = r#"{"jsonrpc":"2.0","id":3,"method":"x","result":{"prompts":[{"name":"p"}],"resourceTemplates":[{"uriTemplate":"a://{x}"}]}}"#;
    let cut = w.cut_json_response(&ping, odd.as_bytes());
    let body: Value = serde_json::from_slice(&cut.body.unwrap()).unwrap();
    assert_eq!(body["result"]["prompts"], json!([]));
    assert_eq!(body["result"]["resourceTemplates"], json!([]));
    assert_eq!(cut.audits.len(), 2);
    // A result without lists passes byte for byte; duplicate keys do not pass.
    let plain = r#"{"jsonrpc":"2.0","id":"3","result":{ "content":[] }}"#;
    assert_eq!(w.cut_json_response(&ping, plain.as_bytes()).body, None);
    let twice = r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[],"tools":[{"name":"deploy"}]}}"#;
    let failed = w.cut_json_response(&ping, twice.as_bytes());
    assert!(failed.failed);
    let body: Value = serde_json::from_slice(&failed.body.unwrap()).unwrap();
    assert_eq!(body["id"], json!("3"), "the error answers the request");
}

/// Sessions sealed before the binding was serialized without a `Value`
/// stay valid: the text is the one `json!` gave, whatever the names hold.
#[test]
fn the_session_binding_is_the_json_array_it_always_was() {
    use crate::testing::{delegated, direct, principal};
    let odd = "q\"uote\\back\u{1}ctl é \u{2028} 🦀";
    let mut alone = direct(principal(odd, None, &[]));
    alone.issuer = format!("https://{odd}/");
    let acting = delegated(principal("alice", None, &[]), principal(odd, None, &[]));
    for identity in [alone, acting] {
        let before = json!([
            identity.issuer,
            identity.subject.subject,
            identity.acting().subject
        ])
        .to_string();
        assert_eq!(*Warden::session_binding(&identity), *before);
    }
}

#[test]
fn an_identity_copied_and_changed_gets_its_own_header_values() {
    // The identity headers' values are kept with an identity once worked
    // out; a copy that is then changed must be given its own.
    let w = warden(json!({"rules": [{"id": "all", "effect": "allow", "owner": "o"}]}));
    let auth = bearer();
    let h = head("POST", "/mcp", Some(&auth));
    let identity = verified(&w, &h);
    let subject_of = |edits: Vec<HeaderEdit>| {
        edits
            .into_iter()
            .find(|(name, _)| &**name == "x-warden-subject")
            .and_then(|(_, value)| value)
            .map(|value| value.to_string())
    };
    let original = subject_of(w.streamed_head_edits(&identity, &h));
    let mut copy = (*identity).clone();
    copy.subject.subject = "mallory".to_owned();
    assert_eq!(
        subject_of(w.streamed_head_edits(&copy, &h)).as_deref(),
        Some("mallory")
    );
    assert_ne!(original.as_deref(), Some("mallory"));
}

#[test]
fn an_identitys_names_and_session_binding_are_shared_and_a_changed_copy_gets_its_own() {
    // The names a record carries and the session binding are worked out
    // once per identity and shared by every later request; a copy that is
    // then changed must not carry those of the identity it was copied from.
    let w = warden(json!({"rules": [{"id": "all", "effect": "allow", "owner": "o"}]}));
    let auth = bearer();
    let h = head("POST", "/mcp", Some(&auth));
    let identity = verified(&w, &h);
    let first = w.audit_for(&h).with_identity(&identity);
    let second = w.audit_for(&h).with_identity(&verified(&w, &h));
    let (Some(a), Some(b)) = (&first.subject, &second.subject) else {
        panic!("records without a subject");
    };
    assert!(Arc::ptr_eq(a, b), "the cached identity's names are shared");
    assert_eq!(first.chain.as_deref().map(<[_]>::len), Some(1));

    let mut copy = (*identity).clone();
    copy.subject.subject = "mallory".to_owned();
    copy.issuer = "https://elsewhere.test".to_owned();
    let binding = Warden::session_binding(&identity);
    assert!(Arc::ptr_eq(&binding, &Warden::session_binding(&identity)));
    assert!(Warden::session_binding(&copy).contains("\"mallory\""));
    assert!(!binding.contains("mallory"), "{binding}");
    let changed = w.audit_for(&h).with_identity(&copy);
    assert_eq!(changed.subject.as_deref(), Some("mallory"));
    assert_eq!(changed.issuer.as_deref(), Some("https://elsewhere.test"));
    let chain: Vec<&str> = changed.chain_links().iter().map(|l| &**l).collect();
    assert_eq!(chain, ["mallory"]);
    assert_eq!(first.subject.as_deref(), Some("alice"));
}
