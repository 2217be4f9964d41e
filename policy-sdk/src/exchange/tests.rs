//! The lifecycle, natively: every state × every callback, in every header
//! mode, never lets an unjudged byte through.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{Value, json};

use super::memory::{Driver, HeaderPause, MemoryHost, Request, Response};
use super::table;
use super::*;
use crate::exchange::HOST_SESSION_KEY;
use crate::testing::{DEMO_ISSUER, TEST_NOW, demo_identity_json, demo_jwks};

fn warden(header_mode: &str, fetched_keys: bool) -> Rc<Warden> {
    Rc::new(Warden::from_json(&table::policy_json(header_mode, fetched_keys)).unwrap())
}

fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    table::request_headers(extra)
}

fn call(tool: &str) -> Vec<u8> {
    table::call(tool)
}

fn host(pause: HeaderPause) -> MemoryHost {
    let mut host = MemoryHost::new(u128::from(TEST_NOW) * 1_000_000_000, pause);
    host.fetch_allowed = true;
    host
}

/// The modes a request runs in below (the table covers the misconfigured
/// fourth as well).
const MODES: [(&str, HeaderPause); 3] = [
    ("hold", HeaderPause::Honoured),
    ("stream", HeaderPause::Honoured),
    ("stream", HeaderPause::StopAll),
];

/// A stream through the exchange and the in-memory host, for the shared
/// state × callback table.
struct NativeStream {
    warden: Rc<Warden>,
    exchange: Exchange,
    host: Option<MemoryHost>,
    last_flow: Option<Flow>,
}

impl NativeStream {
    fn open(
        mode: &str,
        pause: table::PauseBehaviour,
        fetched: bool,
    ) -> Box<dyn table::StreamUnderTest> {
        let warden = Rc::new(Warden::from_json(&table::policy_json(mode, fetched)).unwrap());
        let pause = match pause {
            table::PauseBehaviour::Honoured => HeaderPause::Honoured,
            table::PauseBehaviour::StopAll => HeaderPause::StopAll,
        };
        Box::new(Self {
            exchange: Exchange::new(Some(warden.clone())),
            warden,
            host: Some(host(pause)),
            last_flow: None,
        })
    }

    fn drive(&mut self, step: impl FnOnce(&mut Driver<'_>)) {
        let host = self.host.take().unwrap();
        let mut driver = Driver::new(&mut self.exchange, host);
        step(&mut driver);
        self.last_flow = driver.last_flow;
        self.host = Some(driver.host);
    }
}

impl table::StreamUnderTest for NativeStream {
    fn request_headers(&mut self, headers: &[(String, String)], end_of_stream: bool) {
        self.drive(|d| d.request_headers(headers, end_of_stream));
    }
    fn request_chunk(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.drive(|d| d.request_chunk(chunk, end_of_stream));
    }
    fn request_trailers(&mut self, trailers: &[(String, String)]) {
        self.drive(|d| d.request_trailers(trailers));
    }
    fn response_headers(&mut self, headers: &[(String, String)], end_of_stream: bool) {
        self.drive(|d| d.response_headers(headers, end_of_stream));
    }
    fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.drive(|d| d.response_chunk(chunk, end_of_stream));
    }
    fn response_trailers(&mut self, trailers: &[(String, String)]) {
        self.drive(|d| d.response_trailers(trailers));
    }
    fn answer_key_fetch(&mut self) {
        // What the fetcher does with a key set that arrived.
        self.warden
            .verifier()
            .update_keys(DEMO_ISSUER, &demo_jwks())
            .unwrap();
        self.drive(|d| {
            d.answer_fetch(KeyProgress::Loaded("keys".into()));
        });
    }
    fn stray_call_response(&mut self) {
        self.drive(|d| d.stray_call_response(999));
    }
    fn finish(&mut self) {
        self.drive(|d| d.finish());
    }
    fn observe(&self) -> table::Observation {
        let host = self.host.as_ref().unwrap();
        table::Observation {
            sent_headers: host.request.sent_headers.clone(),
            sent_body: host.request.sent_body.clone(),
            sent_trailers: host.request.sent_trailers.is_some(),
            reply: host.reply.as_ref().map(|r| r.status),
            decisions: host
                .decisions()
                .iter()
                .map(|a| serde_json::from_str(&a.to_json_line()).unwrap())
                .collect(),
            response_sent: host.response.sent_body.len()
                + usize::from(host.response.sent_headers.is_some()),
            last_flow: self.last_flow,
            pending_fetches: host.fetches.len(),
        }
    }
}

#[test]
fn every_state_answers_every_callback_without_forwarding_unjudged_bytes() {
    match table::run(&mut NativeStream::open) {
        Ok(cells) => assert_eq!(cells, 4 * 5 * 10),
        Err(problems) => panic!("{} cells failed:\n{}", problems.len(), problems.join("\n")),
    }
}

fn request(chunks: &[&[u8]], trailers: bool) -> Request {
    Request {
        headers: headers(&[]),
        chunks: chunks.iter().map(|c| c.to_vec()).collect(),
        trailers: trailers.then(|| vec![("x-checksum".to_owned(), "1".to_owned())]),
        dynamic_metadata: None,
    }
}

fn run(mode: &str, pause: HeaderPause, request: &Request) -> MemoryHost {
    let mut exchange = Exchange::new(Some(warden(mode, false)));
    let mut driver = Driver::new(&mut exchange, host(pause));
    driver.send_request(request);
    driver.finish();
    driver.host
}

#[test]
fn a_denied_call_ending_in_trailers_is_judged_in_every_mode() {
    let body = call("deploy");
    let (first, rest) = body.split_at(12);
    for (mode, pause) in MODES {
        let host = run(mode, pause, &request(&[first, rest], true));
        let reply = host.reply.as_ref().expect("answered");
        assert_eq!(reply.status, 200, "{mode}/{pause:?}");
        assert!(host.request.sent_body.is_empty(), "{mode}/{pause:?}");
        assert!(host.request.sent_trailers.is_none(), "{mode}/{pause:?}");
        let decisions = host.decisions();
        assert_eq!(decisions.len(), 1);
        assert_eq!(decisions[0].decision, "deny");
        assert_eq!(decisions[0].tool.as_deref(), Some("deploy"));
    }
}

#[test]
fn an_allowed_call_ending_in_trailers_goes_on_whole() {
    let body = call("search_docs");
    for (mode, pause) in MODES {
        let host = run(mode, pause, &request(&[&body], true));
        assert!(host.reply.is_none(), "{mode}/{pause:?}: {:?}", host.reply);
        assert_eq!(host.request.sent_body, body, "{mode}/{pause:?}");
        assert!(host.request.sent_trailers.is_some(), "{mode}/{pause:?}");
        assert!(host.decisions()[0].is_allowed());
    }
}

#[test]
fn stream_mode_sends_identity_headers_before_the_body_and_hold_mode_does_not() {
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(warden(mode, false)));
        let mut driver = Driver::new(&mut exchange, host(pause));
        driver.request_headers(&headers(&[("accept-encoding", "gzip")]), false);
        let sent = driver.host.request.sent_headers.clone();
        match mode {
            "stream" => {
                let sent = sent.expect("headers went on");
                let subject = sent.iter().find(|(k, _)| k == "x-warden-subject");
                assert_eq!(subject.map(|(_, v)| v.as_str()), Some("alice"));
                assert!(sent.iter().all(|(k, _)| k != "accept-encoding"));
                assert_eq!(driver.last_flow, Some(Flow::Continue));
            }
            _ => {
                assert!(sent.is_none());
                assert_eq!(driver.last_flow, Some(Flow::Pause));
            }
        }
    }
}

#[test]
fn an_oversized_body_is_refused_before_it_completes() {
    let doc = |mode: &str| {
        json!({"version": 1, "identity": demo_identity_json(),
               "filter": {"max_body_bytes": 64, "header_mode": mode},
               "rules": [{"id": "a", "effect": "allow", "owner": "o", "tools": ["search_docs"]}]})
        .to_string()
    };
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(Rc::new(Warden::from_json(&doc(mode)).unwrap())));
        let mut driver = Driver::new(&mut exchange, host(pause));
        driver.request_headers(&headers(&[]), false);
        driver.request_chunk(&[b' '; 40], false);
        assert!(driver.host.reply.is_none());
        driver.request_chunk(&[b' '; 40], false);
        assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(413));
        assert!(driver.host.request.sent_body.is_empty());
    }
}

#[test]
fn a_failed_body_read_is_a_host_error_not_bad_json() {
    let mut exchange = Exchange::new(Some(warden("hold", false)));
    let mut h = host(HeaderPause::Honoured);
    h.failing.push("reading the request body");
    let mut driver = Driver::new(&mut exchange, h);
    driver.send_request(&request(&[&call("search_docs")], false));
    assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(500));
    let audit = driver.host.decisions()[0].clone();
    assert_eq!(audit.decision, "deny");
    assert!(
        audit
            .reason
            .contains("host error: reading the request body failed"),
        "{}",
        audit.reason
    );
    assert_eq!(audit.subject.as_deref(), Some("alice"));
    assert!(driver.host.request.sent_body.is_empty());
}

/// A header value that is not text (the filter reads values as bytes: the
/// SDK's own reading panicked on one and killed the VM) is the client's
/// fault: 400, audited with the time and Warden's request id, nothing
/// forwarded, and no error logged for what any client can send.
#[test]
fn an_unreadable_request_header_is_refused_as_malformed() {
    for (mode, pause) in MODES {
        let mut exchange =
            Exchange::new(Some(warden(mode, false))).with_request_id("w-odd".to_owned());
        let mut h = host(pause);
        h.unreadable.push("reading the request headers");
        let mut driver = Driver::new(&mut exchange, h);
        driver.send_request(&request(&[&call("search_docs")], false));
        let reply = driver.host.reply.as_ref();
        assert_eq!(reply.map(|r| r.status), Some(400), "{mode}");
        assert_eq!(
            reply.map(|r| r.body.as_str()),
            Some(super::UNREADABLE_HEADER_ANSWER),
            "{mode}"
        );
        assert!(!driver.host.forwarded_anything(), "{mode}");
        let decisions = driver.host.decisions();
        let [audit] = decisions.as_slice() else {
            panic!("{mode}: {decisions:?}");
        };
        assert_eq!((audit.decision, audit.status), ("deny", Some(400)));
        assert!(
            audit.reason.contains("`x-odd` is not UTF-8"),
            "{}",
            audit.reason
        );
        assert_eq!(audit.request_id.as_deref(), Some("w-odd"));
        assert_eq!(audit.outcome_class(), "request");
        assert_ne!(audit.time.as_str(), crate::audit::rfc3339(0), "{mode}");
        assert!(
            driver
                .host
                .logs
                .iter()
                .all(|(level, _)| *level < LogLevel::Error),
            "{:?}",
            driver.host.logs
        );
    }
}

/// An upstream's header that is not text: nothing of the response goes to
/// the client unread. With sessions bound (this policy) the id cannot be
/// sealed, so the client gets 502; a response head that cannot be read is
/// otherwise answered by replacing the body (`ResponseStage::Unreadable`).
#[test]
fn an_unreadable_response_header_lets_nothing_of_the_response_through() {
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(warden(mode, false)));
        let mut h = host(pause);
        h.unreadable.push("reading the response headers");
        let mut driver = Driver::new(&mut exchange, h);
        driver.send_request(&request(&[&call("search_docs")], false));
        assert!(driver.host.reply.is_none(), "{mode}: allowed");
        let secret =
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"secret"}]}}"#;
        driver.send_response(&Response {
            headers: vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/json".into()),
            ],
            chunks: vec![secret.to_vec()],
            trailers: None,
        });
        assert_eq!(
            driver.host.reply.as_ref().map(|r| r.status),
            Some(502),
            "{mode}"
        );
        assert!(driver.host.response.sent_headers.is_none(), "{mode}");
        assert!(driver.host.response.sent_body.is_empty(), "{mode}");
    }
}

#[test]
fn a_failed_identity_header_edit_fails_closed() {
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(warden(mode, false)));
        let mut h = host(pause);
        h.failing.push("editing a request header");
        let mut driver = Driver::new(&mut exchange, h);
        driver.send_request(&request(&[&call("search_docs")], false));
        assert_eq!(
            driver.host.reply.as_ref().map(|r| r.status),
            Some(500),
            "{mode}"
        );
        assert!(driver.host.request.sent_headers.is_none(), "{mode}");
    }
}

#[test]
fn a_reset_before_the_body_completes_is_audited_and_forwards_nothing() {
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(warden(mode, false)));
        let mut driver = Driver::new(&mut exchange, host(pause));
        driver.request_headers(&headers(&[]), false);
        driver.request_chunk(b"{\"jsonrpc\"", false);
        driver.finish();
        let decisions = driver.host.decisions();
        assert_eq!(decisions.len(), 1, "{mode}");
        assert!(
            decisions[0].reason.contains("stream ended before"),
            "{mode}"
        );
        assert!(driver.host.request.sent_body.is_empty());
    }
}

fn key_wait(mode: &str, pause: HeaderPause, outcome: KeyProgress, trailers: bool) -> MemoryHost {
    let w = warden(mode, true);
    let mut exchange = Exchange::new(Some(w.clone()));
    let mut driver = Driver::new(&mut exchange, host(pause));
    let body = call("search_docs");
    driver.request_headers(&headers(&[]), false);
    assert_eq!(driver.host.fetches.len(), 1);
    driver.request_chunk(&body, !trailers);
    if trailers {
        driver.request_trailers(&[("x-t".to_owned(), "1".to_owned())]);
    }
    assert!(!driver.host.forwarded_anything() || mode == "stream" && pause == HeaderPause::StopAll);
    if matches!(outcome, KeyProgress::Loaded(_)) {
        w.verifier().update_keys(DEMO_ISSUER, &demo_jwks()).unwrap();
    }
    driver.answer_fetch(outcome);
    driver.finish();
    driver.host
}

#[test]
fn a_request_waiting_for_keys_is_judged_once_they_arrive_in_every_mode() {
    for (mode, pause) in MODES {
        for trailers in [false, true] {
            let host = key_wait(mode, pause, KeyProgress::Loaded("keys".into()), trailers);
            let context = format!("{mode}/{pause:?} trailers={trailers}");
            assert!(host.reply.is_none(), "{context}: {:?}", host.reply);
            assert_eq!(host.request.sent_body, call("search_docs"), "{context}");
            assert_eq!(host.decisions().len(), 1, "{context}");
            assert!(host.decisions()[0].is_allowed(), "{context}");
        }
    }
}

#[test]
fn a_request_whose_keys_do_not_arrive_is_refused_in_every_mode() {
    for (mode, pause) in MODES {
        for trailers in [false, true] {
            let host = key_wait(mode, pause, KeyProgress::Failed("timeout".into()), trailers);
            let context = format!("{mode}/{pause:?} trailers={trailers}");
            // No key set ever loaded: the provider is unavailable (503), not
            // the token refused.
            assert_eq!(
                host.reply.as_ref().map(|r| r.status),
                Some(503),
                "{context}"
            );
            assert!(host.request.sent_body.is_empty(), "{context}");
            assert!(host.request.sent_headers.is_none(), "{context}");
            assert_eq!(host.decisions().len(), 1, "{context}");
        }
    }
}

#[test]
fn a_list_response_ending_in_trailers_is_filtered() {
    let list = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
        {"name": "search_docs", "inputSchema": {"type": "object"}},
        {"name": "deploy", "inputSchema": {"type": "object"}},
    ]}})
    .to_string();
    for trailers in [false, true] {
        let mut exchange = Exchange::new(Some(warden("stream", false)));
        let mut driver = Driver::new(&mut exchange, host(HeaderPause::StopAll));
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string();
        driver.send_request(&request(&[body.as_bytes()], false));
        driver.send_response(&Response {
            headers: vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "application/json".into()),
                ("content-length".into(), list.len().to_string()),
            ],
            chunks: vec![
                list.as_bytes()[..20].to_vec(),
                list.as_bytes()[20..].to_vec(),
            ],
            trailers: trailers.then(|| vec![("x-t".to_owned(), "1".to_owned())]),
        });
        let sent: Value = serde_json::from_slice(&driver.host.response.sent_body).unwrap();
        let names: Vec<&str> = sent["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["search_docs"], "trailers={trailers}");
        assert!(
            driver
                .host
                .response
                .headers
                .iter()
                .all(|(k, _)| k != "content-length")
        );
    }
}

/// A list answered with framing headers sent twice: Warden cannot know which
/// copy the client reads, so the body is replaced by an error, never passed
/// uncut.
#[test]
fn a_list_response_with_repeated_framing_headers_is_replaced() {
    let list = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
        {"name": "search_docs", "inputSchema": {"type": "object"}},
        {"name": "deploy", "inputSchema": {"type": "object"}},
    ]}})
    .to_string();
    let repeats = [
        ("content-type", "text/plain", "application/json"),
        ("content-type", "application/json", "text/event-stream"),
        ("content-encoding", "identity", "gzip"),
        (":status", "200", "500"),
    ];
    for (name, first, second) in repeats {
        let mut exchange = Exchange::new(Some(warden("stream", false)));
        let mut driver = Driver::new(&mut exchange, host(HeaderPause::StopAll));
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string();
        driver.send_request(&request(&[body.as_bytes()], false));
        let mut headers = vec![(":status".to_owned(), "200".to_owned())];
        if name != "content-type" {
            headers.push(("content-type".into(), "application/json".into()));
        }
        headers.retain(|(k, _)| k != name);
        headers.push((name.into(), first.into()));
        headers.push((name.into(), second.into()));
        driver.send_response(&Response {
            headers,
            chunks: vec![list.as_bytes().to_vec()],
            trailers: None,
        });
        let sent = String::from_utf8_lossy(&driver.host.response.sent_body).into_owned();
        assert!(!sent.contains("deploy"), "{name}: {sent}");
        let audits = &driver.host.audits;
        assert!(
            audits
                .iter()
                .any(|(a, _)| a.decision == "deny"
                    && a.reason.contains(&format!("2 `{name}` headers"))),
            "{name}: {audits:?}"
        );
    }
}

/// Two session ids from the upstream: neither reaches the client unsealed.
#[test]
fn an_upstream_with_two_session_ids_gets_no_session_through() {
    let mut exchange = Exchange::new(Some(warden("stream", false)));
    let mut driver = Driver::new(&mut exchange, host(HeaderPause::StopAll));
    driver.send_request(&request(&[&call("search_docs")], false));
    let answer = json!({"jsonrpc": "2.0", "id": 7, "result": {"content": []}}).to_string();
    driver.send_response(&Response {
        headers: vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
            ("mcp-session-id".into(), "server-one".into()),
            ("mcp-session-id".into(), "server-two".into()),
        ],
        chunks: vec![answer.into_bytes()],
        trailers: None,
    });
    assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(502));
    let sent = driver
        .host
        .response
        .sent_headers
        .clone()
        .unwrap_or_default();
    assert!(
        sent.iter().all(|(_, v)| !v.starts_with("server-")),
        "{sent:?}"
    );
}

#[test]
fn an_upstream_answer_before_the_judgement_never_reaches_the_client() {
    let mut exchange = Exchange::new(Some(warden("stream", false)));
    let mut driver = Driver::new(&mut exchange, host(HeaderPause::StopAll));
    driver.request_headers(&headers(&[]), false);
    assert!(
        driver.host.request.sent_headers.is_some(),
        "stream mode sent the headers"
    );
    driver.response_headers(&[(":status".to_owned(), "200".to_owned())], false);
    assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(502));
    assert!(driver.host.response.sent_headers.is_none());
    let audit = &driver.host.decisions()[0];
    assert!(audit.reason.contains("before the request was judged"));
}

#[test]
fn without_a_configuration_every_request_is_refused() {
    let mut exchange = Exchange::new(None);
    let mut driver = Driver::new(&mut exchange, host(HeaderPause::Honoured));
    driver.send_request(&request(&[&call("search_docs")], false));
    assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(503));
    assert!(!driver.host.forwarded_anything());
}

fn get_policy(mode: &str) -> Rc<Warden> {
    let doc = json!({
        "version": 1,
        "identity": demo_identity_json(),
        "filter": {"header_mode": mode},
        "rules": [
            {"id": "streams", "effect": "allow", "owner": "o", "methods": ["http:GET"]},
            {"id": "search", "effect": "allow", "owner": "o", "tools": ["search_docs"]},
        ],
    });
    Rc::new(Warden::from_json(&doc.to_string()).unwrap())
}

fn get_headers() -> Vec<(String, String)> {
    let mut all = headers(&[("accept", "text/event-stream")]);
    for (name, value) in all.iter_mut() {
        if name == ":method" {
            *value = "GET".into();
        }
    }
    all.retain(|(name, _)| name != "content-type");
    all
}

#[test]
fn a_get_that_carries_a_body_is_refused_before_the_body_goes_on() {
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(get_policy(mode)));
        let mut driver = Driver::new(&mut exchange, host(pause));
        driver.send_request(&Request {
            headers: get_headers(),
            chunks: vec![call("delete_repo")],
            trailers: None,
            dynamic_metadata: None,
        });
        let context = format!("{mode}/{pause:?}");
        assert_eq!(
            driver.host.reply.as_ref().map(|r| r.status),
            Some(400),
            "{context}"
        );
        assert!(driver.host.request.sent_body.is_empty(), "{context}");
        let audit = &driver.host.decisions()[0];
        assert_eq!(audit.decision, "deny");
        assert!(
            audit.reason.contains("must not carry a body"),
            "{}",
            audit.reason
        );
        assert_eq!(audit.subject.as_deref(), Some("alice"));
    }
}

#[test]
fn a_get_whose_stream_ends_empty_goes_on() {
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(get_policy(mode)));
        let mut driver = Driver::new(&mut exchange, host(pause));
        driver.send_request(&Request {
            headers: get_headers(),
            chunks: vec![Vec::new()],
            trailers: None,
            dynamic_metadata: None,
        });
        let context = format!("{mode}/{pause:?}");
        assert!(
            driver.host.reply.is_none(),
            "{context}: {:?}",
            driver.host.reply
        );
        assert!(driver.host.request.sent_headers.is_some(), "{context}");
        assert!(driver.host.decisions()[0].is_allowed(), "{context}");
    }
}

#[test]
fn method_override_headers_are_refused() {
    // `sent` as the client spells it; `named` as the refusal names it (a
    // WSGI server reads both spellings as HTTP_X_HTTP_METHOD_OVERRIDE).
    for (sent, name) in [
        ("x-http-method-override", "x-http-method-override"),
        ("x-http-method", "x-http-method"),
        ("x-method-override", "x-method-override"),
        ("x_http_method_override", "x-http-method-override"),
    ] {
        for (mode, pause) in MODES {
            let mut exchange = Exchange::new(Some(get_policy(mode)));
            let mut driver = Driver::new(&mut exchange, host(pause));
            let mut request = request(&[&call("search_docs")], false);
            request.headers.push((sent.to_owned(), "DELETE".to_owned()));
            driver.send_request(&request);
            assert_eq!(
                driver.host.reply.as_ref().map(|r| r.status),
                Some(400),
                "{sent}"
            );
            assert!(!driver.host.forwarded_anything(), "{name}");
            let audit = &driver.host.decisions()[0];
            assert!(audit.reason.contains(name), "{}", audit.reason);
        }
    }
}

#[test]
fn identity_headers_in_every_spelling_are_removed() {
    let forged = [
        ("x_warden_subject", "root"),
        ("x-warden_actor", "evil-agent"),
        ("x_WARDEN_chain", "[\"root\"]"),
        ("x-warden-made-up", "1"),
    ];
    for (mode, pause) in MODES {
        let mut exchange = Exchange::new(Some(warden(mode, false)));
        let mut driver = Driver::new(&mut exchange, host(pause));
        driver.send_request(&Request {
            headers: headers(&forged),
            chunks: vec![call("search_docs")],
            trailers: None,
            dynamic_metadata: None,
        });
        let sent = driver.host.request.sent_headers.clone().expect("forwarded");
        for (name, _) in forged {
            assert!(
                sent.iter().all(|(k, _)| k != name),
                "{mode}: {name} went upstream"
            );
        }
        let subject: Vec<&str> = sent
            .iter()
            .filter(|(k, _)| k == "x-warden-subject")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(subject, ["alice"], "{mode}");
        assert!(
            sent.iter().all(|(k, _)| k != "x-warden-actor"),
            "{mode}: no actor for a direct call"
        );
    }
}

#[test]
fn a_2026_request_carrying_a_session_id_is_held_to_its_binding() {
    let warden = warden("hold", false);
    let key = [7_u8; 32];
    let sealed_for = |subject: &str| {
        let binding = json!([DEMO_ISSUER, subject, subject]).to_string();
        crate::sealing::seal(
            &crate::sealing::SessionKey::new(&key).unwrap(),
            "s-1234",
            &binding,
        )
        .unwrap()
    };
    for (session, forwarded) in [
        ("s-1234".to_owned(), false),
        (sealed_for("other"), false),
        (sealed_for("alice"), true),
    ] {
        let mut exchange = Exchange::new(Some(warden.clone()));
        let mut h = host(HeaderPause::Honoured);
        h.shared.insert(HOST_SESSION_KEY.to_owned(), key.to_vec());
        let mut driver = Driver::new(&mut exchange, h);
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "search_docs", "arguments": {},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        let mut request = request(&[body.to_string().as_bytes()], false);
        request.headers.extend([
            ("mcp-protocol-version".to_owned(), "2026-07-28".to_owned()),
            ("mcp-session-id".to_owned(), session.clone()),
            ("mcp-method".to_owned(), "tools/call".to_owned()),
            ("mcp-name".to_owned(), "search_docs".to_owned()),
        ]);
        driver.send_request(&request);
        assert_eq!(
            driver.host.forwarded_anything(),
            forwarded,
            "{session}: {:?}",
            driver.host.reply
        );
        if forwarded {
            let sent = driver.host.request.sent_headers.unwrap_or_default();
            assert!(sent.contains(&("mcp-session-id".to_owned(), "s-1234".to_owned())));
        } else {
            assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(404));
        }
    }
}

#[test]
fn an_upstream_answer_to_a_get_still_open_names_the_caller() {
    let mut exchange = Exchange::new(Some(get_policy("stream")));
    let mut driver = Driver::new(&mut exchange, host(HeaderPause::StopAll));
    driver.request_headers(&get_headers(), false);
    driver.response_headers(&[(":status".to_owned(), "200".to_owned())], false);
    assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(502));
    let audit = &driver.host.decisions()[0];
    assert_eq!(audit.decision, "deny");
    assert_eq!(audit.subject.as_deref(), Some("alice"));
    assert_eq!(audit.rule, None);
}

#[test]
fn an_encoded_request_body_is_refused_not_judged_encoded() {
    for (coding, status) in [("gzip", Some(415)), ("br", Some(415)), ("identity", None)] {
        let mut exchange = Exchange::new(Some(warden("hold", false)));
        let mut driver = Driver::new(&mut exchange, host(HeaderPause::Honoured));
        let mut request = request(&[&call("search_docs")], false);
        request
            .headers
            .push(("content-encoding".to_owned(), coding.to_owned()));
        driver.send_request(&request);
        assert_eq!(
            driver.host.reply.as_ref().map(|r| r.status),
            status,
            "{coding}"
        );
        if status.is_some() {
            assert!(!driver.host.forwarded_anything(), "{coding}");
            assert!(driver.host.decisions()[0].reason.contains(coding));
        }
    }
}

#[test]
fn audit_lines_and_denials_carry_wardens_request_id_not_the_clients() {
    for tool in ["search_docs", "deploy"] {
        let mut exchange =
            Exchange::new(Some(warden("hold", false))).with_request_id("w-0001".into());
        let mut driver = Driver::new(&mut exchange, host(HeaderPause::Honoured));
        let mut request = request(&[&call(tool)], false);
        request.headers.retain(|(name, _)| name != "x-request-id");
        request
            .headers
            .push(("x-request-id".to_owned(), "chosen-by-client".to_owned()));
        driver.send_request(&request);
        driver.finish();
        let decisions = driver.host.decisions();
        assert_eq!(decisions.len(), 1, "{tool}");
        assert_eq!(decisions[0].request_id.as_deref(), Some("w-0001"), "{tool}");
        assert_eq!(
            decisions[0].client_request_id.as_deref(),
            Some("chosen-by-client"),
            "{tool}"
        );
        if let Some(reply) = &driver.host.reply {
            assert!(reply.body.contains("w-0001"), "{}", reply.body);
            assert!(!reply.body.contains("chosen-by-client"), "{}", reply.body);
        }
    }
}

/// Whether `key` seals what `expected` (raw key bytes) opens.
fn same_key(key: &crate::sealing::SessionKey, expected: &[u8]) -> bool {
    let sealed = crate::sealing::seal(key, "s", "b").unwrap();
    let expected = crate::sealing::SessionKey::new(expected).unwrap();
    crate::sealing::open(&[expected], &sealed, "b").is_ok()
}

#[test]
fn the_host_session_key_is_made_once_and_then_read() {
    let mut h = host(HeaderPause::Honoured);
    let made = host_session_key(&mut h).unwrap();
    let stored = h.shared.get(HOST_SESSION_KEY).cloned().unwrap();
    assert_eq!(stored.len(), 32);
    assert!(same_key(&made, &stored));
    // Another stream (another worker) reads it, and writes nothing.
    let mut other = host(HeaderPause::Honoured);
    other.shared = h.shared.clone();
    other.random_state = 99;
    other.failing.push("writing shared data");
    assert!(same_key(&host_session_key(&mut other).unwrap(), &stored));
    assert_eq!(other.shared.get(HOST_SESSION_KEY), Some(&stored));
}

#[test]
fn two_workers_racing_to_make_the_host_key_both_use_the_one_stored() {
    let mut first = host(HeaderPause::Honoured);
    // The other worker's key lands between this worker's write and its
    // read-back: the key used is the one every worker will read.
    let theirs = vec![0xab; 32];
    first.racing_write = Some((HOST_SESSION_KEY.to_owned(), theirs.clone()));
    let key = host_session_key(&mut first).unwrap();
    assert!(same_key(&key, &theirs));
    assert_eq!(first.shared.get(HOST_SESSION_KEY), Some(&theirs));
}

#[test]
fn a_stored_value_that_is_not_a_key_is_replaced_and_failures_are_errors() {
    let mut h = host(HeaderPause::Honoured);
    h.shared
        .insert(HOST_SESSION_KEY.to_owned(), b"short".to_vec());
    let key = host_session_key(&mut h).unwrap();
    let stored = h.shared.get(HOST_SESSION_KEY).cloned().unwrap();
    assert_eq!(stored.len(), 32);
    assert!(same_key(&key, &stored));
    for failing in [
        "reading shared data",
        "writing shared data",
        "generating random bytes",
    ] {
        let mut h = host(HeaderPause::Honoured);
        h.failing.push(failing);
        assert_eq!(host_session_key(&mut h).unwrap_err().operation, failing);
    }
    // A racing write of something that is not a key: nothing to use.
    let mut h = host(HeaderPause::Honoured);
    h.racing_write = Some((HOST_SESSION_KEY.to_owned(), Vec::new()));
    assert!(host_session_key(&mut h).is_err());
}

#[test]
fn a_session_header_that_cannot_be_unsealed_for_lack_of_a_key_fails_closed() {
    let mut exchange = Exchange::new(Some(warden("hold", false)));
    let mut h = host(HeaderPause::Honoured);
    h.failing.push("generating random bytes");
    let mut driver = Driver::new(&mut exchange, h);
    let mut request = request(&[&call("search_docs")], false);
    request
        .headers
        .push(("mcp-session-id".to_owned(), "ws1.a.b.c".to_owned()));
    driver.send_request(&request);
    assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(500));
    assert!(!driver.host.forwarded_anything());
}

/// The exchange under a policy that does not bind sessions (so a raw
/// session id passes), on a host holding `shared`.
fn unbound_stream(shared: BTreeMap<String, Vec<u8>>) -> (Exchange, MemoryHost) {
    let mut doc: Value = serde_json::from_str(&table::policy_json("hold", false)).unwrap();
    doc["filter"]["bind_sessions"] = json!(false);
    let warden = Rc::new(Warden::from_json(&doc.to_string()).unwrap());
    let mut host = host(HeaderPause::Honoured);
    host.shared = shared;
    (Exchange::new(Some(warden)), host)
}

fn in_session(session: &str, id: Value) -> Request {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "search_docs", "arguments": {"query": "x"}}});
    let mut request = request(&[body.to_string().as_bytes()], false);
    request
        .headers
        .retain(|(name, _)| name != "mcp-protocol-version");
    request.headers.extend([
        ("mcp-protocol-version".to_owned(), "2025-06-18".to_owned()),
        ("mcp-session-id".to_owned(), session.to_owned()),
    ]);
    request
}

#[test]
fn an_id_aliasing_one_in_flight_in_its_session_is_refused_until_it_ends() {
    // Stream A: id 7 in session s-1, forwarded and still open.
    let (mut a, host_a) = unbound_stream(BTreeMap::new());
    let mut driver_a = Driver::new(&mut a, host_a);
    driver_a.send_request(&in_session("s-1", json!(7)));
    assert!(driver_a.host.reply.is_none(), "{:?}", driver_a.host.reply);
    let shared = std::mem::take(&mut driver_a.host.shared);
    // Stream B (another worker sees the same shared data): `"7"` aliases 7
    // (ids that are not strings or integers never get this far); another
    // session, or another id, does not.
    let mut shared = shared;
    for (session, id, refused) in [
        ("s-1", json!("7"), true),
        ("s-2", json!(7), false),
        ("s-1", json!(8), false),
    ] {
        let (mut b, host_b) = unbound_stream(shared);
        let mut driver_b = Driver::new(&mut b, host_b);
        driver_b.send_request(&in_session(session, id.clone()));
        let reply = driver_b.host.reply.clone();
        driver_b.finish();
        shared = std::mem::take(&mut driver_b.host.shared);
        assert_eq!(reply.is_some(), refused, "{session} {id}: {reply:?}");
        if let Some(reply) = reply {
            assert_eq!(reply.status, 400);
            assert!(reply.body.contains("already in use"), "{}", reply.body);
            let decision = &driver_b.host.decisions()[0];
            assert_eq!(decision.decision, "deny");
            assert_eq!(decision.session_refusal, Some("id_in_flight"));
            assert!(!driver_b.host.forwarded_anything());
        }
    }
    // A ends: the id is free again.
    driver_a.host.shared = shared;
    driver_a.finish();
    let (mut c, host_c) = unbound_stream(std::mem::take(&mut driver_a.host.shared));
    let mut driver_c = Driver::new(&mut c, host_c);
    driver_c.send_request(&in_session("s-1", json!("7")));
    assert!(driver_c.host.reply.is_none(), "{:?}", driver_c.host.reply);
}

#[test]
fn a_forwarded_request_keeps_only_what_its_audit_lines_read() {
    // A stream waits for its response holding its request's state; a
    // worker holds one per request in flight. Once judged, the token and
    // the headers no later audit line reads are let go.
    for (mode, pause) in MODES {
        let mut exchange =
            Exchange::new(Some(warden(mode, false))).with_request_id("w-0002".into());
        let mut driver = Driver::new(&mut exchange, host(pause));
        let mut request = request(&[&call("search_docs")], false);
        request.headers.extend(
            [
                ("user-agent", "agent/1.0"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("mcp-protocol-version", "2025-06-18"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        driver.send_request(&request);
        assert!(driver.host.reply.is_none(), "{mode}/{pause:?}");
        drop(driver);
        let head = &exchange.head;
        for gone in ["authorization", "x-warden-subject", "user-agent"] {
            assert_eq!(head.get(gone), None, "{mode}/{pause:?}: {gone} kept");
        }
        let view = head.view();
        assert_eq!(view.authorization, None);
        assert_eq!(
            (
                view.method,
                view.path,
                view.request_id,
                view.client_request_id
            ),
            ("POST", "/mcp", Some("w-0002"), Some("table-1")),
            "{mode}/{pause:?}"
        );
        assert_eq!(view.protocol_version, Some("2025-06-18"));
        assert!(view.traceparent.is_some());
        // What an audit line of this stream would now say.
        let audit = exchange.undecided_audit(Some(502), "after");
        let audit = audit.expect("an audit record");
        assert_eq!(audit.request_id.as_deref(), Some("w-0002"));
        assert_eq!(audit.client_request_id.as_deref(), Some("table-1"));
        assert!(audit.trace_id.is_some(), "{mode}/{pause:?}");
    }
}
