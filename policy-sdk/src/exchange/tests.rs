//! The lifecycle, natively: every state × every callback, in every header
//! mode, never lets an unjudged byte through.

use std::rc::Rc;

use serde_json::{Value, json};

use super::memory::{Driver, HeaderPause, MemoryHost, Request, Response};
use super::*;
use crate::testing::{DEMO_ISSUER, DemoIssuer, TEST_NOW, demo_identity_json, demo_jwks};

fn warden(header_mode: &str, fetched_keys: bool) -> Rc<Warden> {
    let mut identity = demo_identity_json();
    if fetched_keys {
        let issuer = &mut identity["issuers"][0];
        issuer.as_object_mut().unwrap().remove("jwks");
        issuer["jwks_fetch"] = json!({"cluster": "idp", "path": "/jwks"});
    }
    let doc = json!({
        "version": 1,
        "identity": identity,
        "filter": {"header_mode": header_mode},
        "rules": [
            {"id": "search", "effect": "allow", "owner": "docs", "tools": ["search_docs"]},
            {"id": "lists", "effect": "allow", "owner": "docs", "methods": ["tools/list"]},
        ],
    });
    Rc::new(Warden::from_json(&doc.to_string()).unwrap())
}

fn headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let token = DemoIssuer::new()
        .unwrap()
        .token(TEST_NOW, json!({}))
        .unwrap();
    let mut all = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), "/mcp".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
        ("authorization".to_owned(), format!("Bearer {token}")),
        // A forged identity header: must never reach the upstream.
        ("x-warden-subject".to_owned(), "root".to_owned()),
    ];
    all.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    all
}

fn call(tool: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": tool, "arguments": {}}})
    .to_string()
    .into_bytes()
}

fn host(pause: HeaderPause) -> MemoryHost {
    let mut host = MemoryHost::new(u128::from(TEST_NOW) * 1_000_000_000, pause);
    host.fetch_allowed = true;
    host
}

/// The modes a deployment can be in: the policy's header mode and what the
/// host does with a header pause. `hold` on a host that does not honour the
/// pause is a misconfiguration (documented: every POST hangs); the table
/// still proves it forwards nothing.
const MODES: [(&str, HeaderPause); 4] = [
    ("hold", HeaderPause::Honoured),
    ("stream", HeaderPause::Honoured),
    ("stream", HeaderPause::StopAll),
    ("hold", HeaderPause::StopAll),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    ReadingBody,
    AwaitingKeys,
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callback {
    RequestHeaders,
    RequestChunk,
    RequestEnd,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    CallResponse,
    StrayCallResponse,
    Done,
}

const STATES: [State; 5] = [
    State::Start,
    State::ReadingBody,
    State::AwaitingKeys,
    State::Open,
    State::Closed,
];

const CALLBACKS: [Callback; 10] = [
    Callback::RequestHeaders,
    Callback::RequestChunk,
    Callback::RequestEnd,
    Callback::RequestTrailers,
    Callback::ResponseHeaders,
    Callback::ResponseBody,
    Callback::ResponseTrailers,
    Callback::CallResponse,
    Callback::StrayCallResponse,
    Callback::Done,
];

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The request was decided by the policy (allowed or denied).
    Judged,
    /// Held: nothing new went on, nothing answered.
    Waits,
    /// Refused without a policy decision (failure, out of order): answered
    /// with an error and audited.
    Refused,
    /// Data of a decided stream passed (or nothing happened to it).
    Passes,
}

/// Brings a fresh exchange to `state`; false when the mode cannot reach it
/// (a host that stops all after a header pause never delivers the body
/// of a request waiting for its keys... it can still be waited for).
fn reach(driver: &mut Driver<'_>, state: State) {
    match state {
        State::Start => {}
        State::ReadingBody => {
            driver.request_headers(&headers(&[]), false);
            driver.request_chunk(&call("search_docs")[..10], false);
        }
        State::AwaitingKeys => {
            driver.request_headers(&headers(&[]), false);
            assert_eq!(driver.host.fetches.len(), 1, "a key fetch started");
        }
        State::Open => {
            driver.request_headers(&headers(&[]), false);
            driver.request_chunk(&call("search_docs"), true);
        }
        State::Closed => {
            driver.request_headers(&headers(&[]), false);
            driver.request_chunk(&call("deploy"), true);
        }
    }
}

fn apply(driver: &mut Driver<'_>, callback: Callback) {
    let ok_response = [(":status".to_owned(), "200".to_owned())];
    match callback {
        Callback::RequestHeaders => driver.request_headers(&headers(&[]), false),
        Callback::RequestChunk => driver.request_chunk(&call("search_docs")[10..20], false),
        Callback::RequestEnd => {
            let body = call("search_docs");
            let seen = driver.host.request.buffer.len() + driver.host.request.sent_body.len();
            driver.request_chunk(body.get(seen.min(body.len())..).unwrap_or(&[]), true)
        }
        Callback::RequestTrailers => {
            let body = call("search_docs");
            let seen = driver.host.request.buffer.len() + driver.host.request.sent_body.len();
            if seen > 0 && seen < body.len() {
                driver.request_chunk(&body[seen..], false);
            }
            driver.request_trailers(&[("x-trailer".to_owned(), "1".to_owned())])
        }
        Callback::ResponseHeaders => driver.response_headers(&ok_response, false),
        Callback::ResponseBody => {
            driver.host.response.headers = ok_response.to_vec();
            driver.response_chunk(b"{}", true)
        }
        Callback::ResponseTrailers => {
            driver.host.response.headers = ok_response.to_vec();
            driver.response_trailers(&[("grpc-status".to_owned(), "0".to_owned())])
        }
        Callback::CallResponse => {
            driver.answer_fetch(KeyProgress::Loaded("keys".into()));
        }
        Callback::StrayCallResponse => driver.stray_call_response(999),
        Callback::Done => driver.finish(),
    }
}

/// What each callback may do in each state, whatever the mode.
fn allowed(state: State, callback: Callback) -> &'static [Outcome] {
    use Callback as C;
    use Outcome::*;
    use State as S;
    match (state, callback) {
        // Headers start the judgement: a GET-less POST waits for its body
        // (or, in stream mode, lets its headers go on).
        (S::Start, C::RequestHeaders) => &[Waits, Passes],
        (S::Start, C::RequestChunk | C::RequestEnd | C::RequestTrailers) => &[Refused],
        (S::Start, C::ResponseHeaders | C::ResponseBody | C::ResponseTrailers) => &[Refused],
        (S::Start, C::CallResponse | C::StrayCallResponse | C::Done) => &[Waits],

        (S::ReadingBody, C::RequestHeaders) => &[Refused],
        (S::ReadingBody, C::RequestChunk) => &[Waits],
        (S::ReadingBody, C::RequestEnd | C::RequestTrailers) => &[Judged],
        (S::ReadingBody, C::ResponseHeaders | C::ResponseBody | C::ResponseTrailers) => &[Refused],
        (S::ReadingBody, C::CallResponse | C::StrayCallResponse) => &[Waits],
        (S::ReadingBody, C::Done) => &[Refused],

        (S::AwaitingKeys, C::RequestHeaders) => &[Refused],
        (S::AwaitingKeys, C::RequestChunk | C::RequestEnd | C::RequestTrailers) => &[Waits],
        (S::AwaitingKeys, C::ResponseHeaders | C::ResponseBody | C::ResponseTrailers) => &[Refused],
        // Keys arrive: with the body still to come the request waits (or,
        // in stream mode, its headers go on).
        (S::AwaitingKeys, C::CallResponse) => &[Waits, Passes],
        (S::AwaitingKeys, C::StrayCallResponse) => &[Waits],
        (S::AwaitingKeys, C::Done) => &[Refused],

        (S::Open, C::RequestHeaders) => &[Refused],
        (S::Open, _) => &[Passes],

        (S::Closed, _) => &[Passes, Waits],
    }
}

struct Snapshot {
    sent_body: usize,
    sent_headers: bool,
    sent_trailers: bool,
    reply: bool,
    decisions: usize,
    response_sent: usize,
}

fn snapshot(host: &MemoryHost) -> Snapshot {
    Snapshot {
        sent_body: host.request.sent_body.len(),
        sent_headers: host.request.sent_headers.is_some(),
        sent_trailers: host.request.sent_trailers.is_some(),
        reply: host.reply.is_some(),
        decisions: host.decisions().len(),
        response_sent: host.response.sent_body.len()
            + usize::from(host.response.sent_headers.is_some()),
    }
}

fn classify(before: &Snapshot, driver: &Driver<'_>) -> Outcome {
    let after = snapshot(&driver.host);
    let judged = driver
        .host
        .decisions()
        .iter()
        .skip(before.decisions)
        .any(|a| a.is_allowed() || a.status.is_some_and(|s| s < 500));
    if judged {
        return Outcome::Judged;
    }
    if (after.reply && !before.reply) || after.decisions > before.decisions {
        return Outcome::Refused;
    }
    let moved = after.sent_body > before.sent_body
        || after.sent_headers != before.sent_headers
        || after.sent_trailers != before.sent_trailers
        || after.response_sent > before.response_sent;
    if moved || driver.last_flow == Some(Flow::Continue) {
        return Outcome::Passes;
    }
    if driver.last_flow == Some(Flow::Pause) {
        return Outcome::Waits;
    }
    // No callback reached the filter (the host held it) or nothing to do.
    if driver.exchange.decided() {
        Outcome::Passes
    } else {
        Outcome::Waits
    }
}

/// Nothing of a request goes upstream before an allow decision, except
/// (stream mode) headers carrying what Warden derived from the token.
fn assert_nothing_unjudged(driver: &Driver<'_>, mode: &str, context: &str) {
    let allowed = driver.host.decisions().iter().any(|a| a.is_allowed());
    let request = &driver.host.request;
    if !allowed {
        assert!(
            request.sent_body.is_empty(),
            "{context}: body bytes went upstream unjudged"
        );
        assert!(
            request.sent_trailers.is_none(),
            "{context}: trailers went upstream unjudged"
        );
        if mode == "hold" {
            assert!(
                request.sent_headers.is_none(),
                "{context}: headers went upstream in hold mode"
            );
        }
        assert!(
            driver.host.response.sent_headers.is_none(),
            "{context}: a response to an unjudged request reached the client"
        );
    }
    if let Some(sent) = &request.sent_headers {
        let forged = sent
            .iter()
            .any(|(k, v)| k == "x-warden-subject" && v == "root");
        assert!(!forged, "{context}: a forged identity header went upstream");
        assert!(
            sent.iter().any(|(k, _)| k == "x-warden-subject"),
            "{context}: headers went upstream without Warden's identity"
        );
    }
}

#[test]
fn every_state_answers_every_callback_without_forwarding_unjudged_bytes() {
    let mut checked = 0;
    for (mode, pause) in MODES {
        for state in STATES {
            for callback in CALLBACKS {
                let fetched = state == State::AwaitingKeys;
                let mut exchange = Exchange::new(Some(warden(mode, fetched)));
                let mut driver = Driver::new(&mut exchange, host(pause));
                reach(&mut driver, state);
                let context = format!("{mode}/{pause:?}: {state:?} × {callback:?}");
                assert_nothing_unjudged(&driver, mode, &context);
                let hangs = mode == "hold" && pause == HeaderPause::StopAll;
                if hangs && matches!(state, State::Open | State::Closed) {
                    // Unreachable there: the body never reaches the filter.
                    assert!(!driver.exchange.decided(), "{context}");
                    assert_nothing_unjudged(&driver, mode, &context);
                    checked += 1;
                    continue;
                }
                let before = snapshot(&driver.host);
                if fetched {
                    // The key set the fetch brings.
                    let jwks = demo_jwks();
                    driver
                        .exchange
                        .warden
                        .as_ref()
                        .map(|w| w.verifier().update_keys(DEMO_ISSUER, &jwks));
                }
                apply(&mut driver, callback);
                let outcome = classify(&before, &driver);
                let expected = allowed(state, callback);

                // On a host that does not honour the pause, hold mode never
                // gets its body callbacks: those cells wait.
                assert!(
                    expected.contains(&outcome) || (hangs && outcome == Outcome::Waits),
                    "{context}: {outcome:?}, expected one of {expected:?}"
                );
                assert_nothing_unjudged(&driver, mode, &context);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, MODES.len() * STATES.len() * CALLBACKS.len());
}

fn request(chunks: &[&[u8]], trailers: bool) -> Request {
    Request {
        headers: headers(&[]),
        chunks: chunks.iter().map(|c| c.to_vec()).collect(),
        trailers: trailers.then(|| vec![("x-checksum".to_owned(), "1".to_owned())]),
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
    for (mode, pause) in MODES.into_iter().take(3) {
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
    for (mode, pause) in MODES.into_iter().take(3) {
        let host = run(mode, pause, &request(&[&body], true));
        assert!(host.reply.is_none(), "{mode}/{pause:?}: {:?}", host.reply);
        assert_eq!(host.request.sent_body, body, "{mode}/{pause:?}");
        assert!(host.request.sent_trailers.is_some(), "{mode}/{pause:?}");
        assert!(host.decisions()[0].is_allowed());
    }
}

#[test]
fn stream_mode_sends_identity_headers_before_the_body_and_hold_mode_does_not() {
    for (mode, pause) in MODES.into_iter().take(3) {
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
    for (mode, pause) in MODES.into_iter().take(3) {
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

#[test]
fn a_failed_identity_header_edit_fails_closed() {
    for (mode, pause) in MODES.into_iter().take(3) {
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
    for (mode, pause) in MODES.into_iter().take(3) {
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
    for (mode, pause) in MODES.into_iter().take(3) {
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
    for (mode, pause) in MODES.into_iter().take(3) {
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
