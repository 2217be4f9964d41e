//! The state × callback table: every state of a stream, every callback a
//! proxy can make in it, in every header mode and both host behaviours of a
//! header pause. Each cell must judge, wait, or refuse, and no cell may let
//! an unjudged request byte through.
//!
//! The table is written once, here, over [`StreamUnderTest`]; the native
//! runner (the in-memory host, `exchange/tests.rs`) and the `.wasm` runner
//! (the harness's Envoy emulator, `harness/tests/lifecycle.rs`) both run it
//! and must both pass.

use serde_json::{Value, json};

use super::host::Flow;
use crate::testing::{DemoIssuer, TEST_NOW, demo_identity_json};

/// What the host does with a header pause, as the table names it (the
/// runners map it onto their own host's setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseBehaviour {
    /// Envoy ≥ 1.35 with `allow_on_headers_stop_iteration: true`.
    Honoured,
    /// Every other host: a header pause stops all callbacks until resumed.
    StopAll,
}

/// The deployments the table covers: the policy's header mode and the
/// host's pause behaviour. `hold` on a host that stops all is the documented
/// misconfiguration (every POST waits); it must still forward nothing.
pub const MODES: [(&str, PauseBehaviour); 4] = [
    ("hold", PauseBehaviour::Honoured),
    ("stream", PauseBehaviour::Honoured),
    ("stream", PauseBehaviour::StopAll),
    ("hold", PauseBehaviour::StopAll),
];

/// Where a stream stands before the callback under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing delivered yet.
    Start,
    /// A POST from a verified caller, part of its body delivered.
    ReadingBody,
    /// A POST whose token's key set is being fetched.
    AwaitingKeys,
    /// An allowed request: decided, forwarded.
    Open,
    /// A denied request: answered locally.
    Closed,
}

pub const STATES: [State; 5] = [
    State::Start,
    State::ReadingBody,
    State::AwaitingKeys,
    State::Open,
    State::Closed,
];

/// The callback under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    RequestHeaders,
    RequestChunk,
    RequestEnd,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
    /// The answer to the key-set fetch (bringing the keys).
    CallResponse,
    /// An answer to an HTTP call this stream did not make.
    StrayCallResponse,
    /// The end of the stream (`on_done`; a reset ends the same way).
    Done,
}

pub const CALLBACKS: [Callback; 10] = [
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
pub enum Outcome {
    /// The policy decided the request (allowed or denied).
    Judged,
    /// Held: nothing new went on, nothing was answered.
    Waits,
    /// Refused without a policy decision (a failure, something out of
    /// order): answered with an error, or audited as undecided.
    Refused,
    /// Data of a decided stream passed, or nothing happened to it.
    Passes,
}

/// What each callback may do in each state, in every mode.
pub fn allowed(state: State, callback: Callback) -> &'static [Outcome] {
    use Callback as C;
    use Outcome::*;
    use State as S;
    match (state, callback) {
        // Headers start the judgement: a POST waits for its body (or, in
        // stream mode, lets its headers go on with Warden's identity).
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
        // The keys arrive with the body still to come: the request waits
        // (or, in stream mode, its headers go on).
        (S::AwaitingKeys, C::CallResponse) => &[Waits, Passes],
        (S::AwaitingKeys, C::StrayCallResponse) => &[Waits],
        (S::AwaitingKeys, C::Done) => &[Refused],

        (S::Open, C::RequestHeaders) => &[Refused],
        (S::Open, _) => &[Passes],

        // After a local reply nothing goes upstream; Warden's own reply
        // passes its response callbacks.
        (S::Closed, _) => &[Passes, Waits],
    }
}

/// The policy the table runs: `search_docs` and `tools/list` allowed, every
/// other tool denied by default. `fetched_keys`: the issuer's key set is
/// fetched (cluster `idp`) instead of inline.
pub fn policy_json(header_mode: &str, fetched_keys: bool) -> String {
    let mut identity = demo_identity_json();
    if fetched_keys
        && let Some(issuer) = identity
            .pointer_mut("/issuers/0")
            .and_then(Value::as_object_mut)
    {
        issuer.remove("jwks");
        issuer.insert(
            "jwks_fetch".into(),
            json!({"cluster": "idp", "path": "/jwks"}),
        );
    }
    json!({
        "version": 1,
        "identity": identity,
        "filter": {"header_mode": header_mode},
        "rules": [
            {"id": "search", "effect": "allow", "owner": "docs", "tools": ["search_docs"]},
            {"id": "lists", "effect": "allow", "owner": "docs", "methods": ["tools/list"]},
        ],
    })
    .to_string()
}

/// A POST to `/mcp` with a valid token for `alice`, a forged identity
/// header, and `extra`.
pub fn request_headers(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let token = DemoIssuer::new()
        .and_then(|issuer| issuer.token(TEST_NOW, json!({})))
        .unwrap_or_default();
    let mut all = vec![
        (":method".to_owned(), "POST".to_owned()),
        (":path".to_owned(), "/mcp".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
        ("authorization".to_owned(), format!("Bearer {token}")),
        // A forged identity header: must never reach the upstream.
        ("x-warden-subject".to_owned(), FORGED_SUBJECT.to_owned()),
        ("x-request-id".to_owned(), "table-1".to_owned()),
    ];
    all.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    all
}

/// The forged `x-warden-subject` every table request carries.
pub const FORGED_SUBJECT: &str = "root";

/// A `tools/call` body.
pub fn call(tool: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": tool, "arguments": {}}})
    .to_string()
    .into_bytes()
}

/// What the table can see of a stream after each step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The request headers that went upstream.
    pub sent_headers: Option<Vec<(String, String)>>,
    pub sent_body: Vec<u8>,
    pub sent_trailers: bool,
    /// Status of Warden's local reply.
    pub reply: Option<u16>,
    /// Decision audit lines (list-filter lines excluded), parsed.
    pub decisions: Vec<Value>,
    /// Response bytes (and headers, counted as one) that reached the
    /// client from the upstream.
    pub response_sent: usize,
    /// The filter's answer to the last callback it ran; `None` when the
    /// host ran none (it held the data, or the stream was answered).
    pub last_flow: Option<Flow>,
    /// Key-set fetches started and not answered.
    pub pending_fetches: usize,
}

impl Observation {
    fn allowed(&self) -> bool {
        self.decisions
            .iter()
            .any(|d| d.get("decision").and_then(Value::as_str) == Some("allow"))
    }

    fn decided(&self) -> bool {
        self.reply.is_some() || self.allowed()
    }
}

/// One stream through the filter under test, driven the way a proxy
/// drives it. Data for a stream Warden answered is not delivered.
pub trait StreamUnderTest {
    fn request_headers(&mut self, headers: &[(String, String)], end_of_stream: bool);
    fn request_chunk(&mut self, chunk: &[u8], end_of_stream: bool);
    fn request_trailers(&mut self, trailers: &[(String, String)]);
    fn response_headers(&mut self, headers: &[(String, String)], end_of_stream: bool);
    fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool);
    fn response_trailers(&mut self, trailers: &[(String, String)]);
    /// Answers the pending key-set fetch with the demo key set.
    fn answer_key_fetch(&mut self);
    /// Delivers an answer to an HTTP call the stream never made.
    fn stray_call_response(&mut self);
    /// Ends the stream.
    fn finish(&mut self);
    fn observe(&self) -> Observation;
}

fn reach(stream: &mut dyn StreamUnderTest, state: State) -> Result<(), String> {
    match state {
        State::Start => {}
        State::ReadingBody => {
            stream.request_headers(&request_headers(&[]), false);
            stream.request_chunk(call("search_docs").get(..10).unwrap_or_default(), false);
        }
        State::AwaitingKeys => {
            stream.request_headers(&request_headers(&[]), false);
            if stream.observe().pending_fetches != 1 {
                return Err("no key fetch started".into());
            }
        }
        State::Open => {
            stream.request_headers(&request_headers(&[]), false);
            stream.request_chunk(&call("search_docs"), true);
        }
        State::Closed => {
            stream.request_headers(&request_headers(&[]), false);
            stream.request_chunk(&call("deploy"), true);
        }
    }
    Ok(())
}

/// How much of the table's request body `reach` delivered.
fn given(state: State) -> usize {
    match state {
        State::ReadingBody => 10,
        State::Start | State::AwaitingKeys | State::Open | State::Closed => 0,
    }
}

fn apply(stream: &mut dyn StreamUnderTest, callback: Callback, given: usize) {
    let ok = [(":status".to_owned(), "200".to_owned())];
    let body = call("search_docs");
    let rest = body.get(given..).unwrap_or_default();
    match callback {
        Callback::RequestHeaders => stream.request_headers(&request_headers(&[]), false),
        Callback::RequestChunk => {
            stream.request_chunk(rest.get(..10).unwrap_or_default(), false);
        }
        Callback::RequestEnd => stream.request_chunk(rest, true),
        Callback::RequestTrailers => {
            stream.request_chunk(rest, false);
            stream.request_trailers(&[("x-trailer".to_owned(), "1".to_owned())]);
        }
        Callback::ResponseHeaders => stream.response_headers(&ok, false),
        Callback::ResponseBody => {
            stream.response_headers(&ok, false);
            stream.response_chunk(b"{}", true);
        }
        Callback::ResponseTrailers => {
            stream.response_headers(&ok, false);
            stream.response_trailers(&[("grpc-status".to_owned(), "0".to_owned())]);
        }
        Callback::CallResponse => stream.answer_key_fetch(),
        Callback::StrayCallResponse => stream.stray_call_response(),
        Callback::Done => stream.finish(),
    }
}

/// The response callbacks of the cells that test them are preceded by the
/// response headers; those are part of the step, so classification looks
/// at the step as a whole.
fn classify(before: &Observation, after: &Observation) -> Outcome {
    let new_decisions = after.decisions.iter().skip(before.decisions.len());
    let mut judged = false;
    let mut undecided = false;
    for decision in new_decisions {
        let allowed = decision.get("decision").and_then(Value::as_str) == Some("allow");
        let status = decision.get("status").and_then(Value::as_u64);
        if allowed || status.is_some_and(|s| s < 500) {
            judged = true;
        } else {
            undecided = true;
        }
    }
    if judged {
        return Outcome::Judged;
    }
    if undecided || (after.reply.is_some() && before.reply.is_none()) {
        return Outcome::Refused;
    }
    let moved = after.sent_body.len() > before.sent_body.len()
        || after.sent_headers.is_some() != before.sent_headers.is_some()
        || after.sent_trailers != before.sent_trailers
        || after.response_sent > before.response_sent;
    if moved || after.last_flow == Some(Flow::Continue) {
        return Outcome::Passes;
    }
    if after.last_flow == Some(Flow::Pause) {
        return Outcome::Waits;
    }
    if after.decided() {
        Outcome::Passes
    } else {
        Outcome::Waits
    }
}

/// Nothing of a request goes upstream before an allow decision, except
/// (stream mode) headers carrying what Warden derived from the token; no
/// forged identity header ever does; no upstream answer to an unjudged
/// request reaches the client.
pub fn unjudged_leaks(observation: &Observation, mode: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    if !observation.allowed() {
        if !observation.sent_body.is_empty() {
            leaks.push("body bytes went upstream unjudged".to_owned());
        }
        if observation.sent_trailers {
            leaks.push("trailers went upstream unjudged".to_owned());
        }
        if mode == "hold" && observation.sent_headers.is_some() {
            leaks.push("headers went upstream in hold mode".to_owned());
        }
        if observation.response_sent > 0 {
            leaks.push("an upstream answer to an unjudged request reached the client".to_owned());
        }
    }
    if let Some(sent) = &observation.sent_headers {
        if sent
            .iter()
            .any(|(k, v)| k == "x-warden-subject" && v == FORGED_SUBJECT)
        {
            leaks.push("a forged identity header went upstream".to_owned());
        }
        if !sent.iter().any(|(k, _)| k == "x-warden-subject") {
            leaks.push("headers went upstream without Warden's identity".to_owned());
        }
    }
    leaks
}

/// Runs the whole table. `open` makes a fresh stream for a header mode,
/// a pause behaviour, and whether the issuer's keys are fetched. Returns
/// the number of cells run, or every problem found.
pub fn run(
    open: &mut dyn FnMut(&str, PauseBehaviour, bool) -> Box<dyn StreamUnderTest>,
) -> Result<usize, Vec<String>> {
    let mut problems = Vec::new();
    let mut cells = 0;
    for (mode, pause) in MODES {
        for state in STATES {
            for callback in CALLBACKS {
                cells += 1;
                let context = format!("{mode}/{pause:?}: {state:?} × {callback:?}");
                let mut stream = open(mode, pause, state == State::AwaitingKeys);
                if let Err(why) = reach(stream.as_mut(), state) {
                    problems.push(format!("{context}: {why}"));
                    continue;
                }
                let before = stream.observe();
                problems.extend(
                    unjudged_leaks(&before, mode)
                        .into_iter()
                        .map(|leak| format!("{context} (before): {leak}")),
                );
                let stop_all_hold = mode == "hold" && pause == PauseBehaviour::StopAll;
                if stop_all_hold && matches!(state, State::Open | State::Closed) {
                    // Unreachable there: the body never reaches the filter.
                    if before.decided() {
                        problems.push(format!("{context}: decided without its body"));
                    }
                    continue;
                }
                apply(stream.as_mut(), callback, given(state));
                let after = stream.observe();
                let outcome = classify(&before, &after);
                let expected = allowed(state, callback);
                // Hold mode on a host that stops all waits in every cell.
                let hang = stop_all_hold && outcome == Outcome::Waits;
                if !(expected.contains(&outcome) || hang) {
                    problems.push(format!(
                        "{context}: {outcome:?}, expected one of {expected:?}"
                    ));
                }
                problems.extend(
                    unjudged_leaks(&after, mode)
                        .into_iter()
                        .map(|leak| format!("{context}: {leak}")),
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(cells)
    } else {
        Err(problems)
    }
}
