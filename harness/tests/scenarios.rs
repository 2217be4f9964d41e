//! One scenario table, two runners: every filter scenario in
//! `tests/scenarios/*.yaml` runs once against the native core (policy-sdk's
//! request lifecycle, `Exchange`, on its in-memory host) and once against
//! the built `warden_filter.wasm` through the wasmtime harness. Both must
//! meet each case's expectations and agree with each other on the answer,
//! the audit line and the headers the upstream receives. Natively every
//! table also runs in both header modes, which must judge alike.

#![expect(clippy::indexing_slicing, reason = "scenario tables are test input")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use policy_sdk::exchange::memory::{Driver, HeaderPause, MemoryHost, Request};
use policy_sdk::testing::{DemoAlg, DemoIssuer, TEST_NOW, standard_claims};
use policy_sdk::{Exchange, HeaderMode, PolicyDocument, Warden};
use serde_json::Value;
use warden_harness::filter::{HttpRequest, WardenFilter, load_module, workspace_wasm};
use warden_harness::host::FilterModule;

const REQUEST_ID: &str = "scenario";

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

/// One scenario table: its policy and cases.
struct Table {
    document: PolicyDocument,
    cases: Vec<Case>,
}

/// One case, with its request prepared once: both runners send the very
/// same request, token included.
struct Case {
    /// `file: case name`.
    name: String,
    request: Prepared,
    expect: Value,
}

fn tables() -> anyhow::Result<Vec<Table>> {
    let issuer = DemoIssuer::new()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_dir())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    assert!(
        !files.is_empty(),
        "no scenario files in {}",
        scenario_dir().display()
    );
    files
        .into_iter()
        .map(|file| {
            let table: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?)?;
            let policy = scenario_dir().join(table["policy"].as_str().context("policy")?);
            let cases = table["cases"]
                .as_array()
                .context("cases")?
                .iter()
                .map(|case| {
                    let name = format!(
                        "{}: {}",
                        file.display(),
                        case["name"].as_str().unwrap_or("?")
                    );
                    let request = prepare(&issuer, case).with_context(|| name.clone())?;
                    Ok(Case {
                        name,
                        request,
                        expect: case["expect"].clone(),
                    })
                })
                .collect::<anyhow::Result<_>>()?;
            Ok(Table {
                document: PolicyDocument::load_file(&policy)?,
                cases,
            })
        })
        .collect()
}

/// A case turned into the HTTP request both runners send.
struct Prepared {
    method: String,
    path: String,
    /// The request headers besides the pseudo-headers (lower-case names):
    /// the case's own, `authorization` unless the case sends no token, and
    /// `content-type: application/json` on a POST that names none.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Prepared {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn prepare(issuer: &DemoIssuer, case: &Value) -> anyhow::Result<Prepared> {
    let alg = match case.get("alg").and_then(Value::as_str) {
        None | Some("ES256") => DemoAlg::ES256,
        Some("RS256") => DemoAlg::RS256,
        Some("EdDSA") => DemoAlg::EdDSA,
        Some(other) => bail!("unknown alg `{other}`"),
    };
    let authorization = match (case.get("authorization"), case.get("token")) {
        (Some(raw), _) => Some(
            raw.as_str()
                .context("authorization must be a string")?
                .to_owned(),
        ),
        (None, Some(Value::String(t))) if t == "none" => None,
        (None, Some(Value::String(t))) => Some(format!("Bearer {t}")),
        (None, Some(_)) => bail!("token must be a string"),
        (None, None) => {
            let claims =
                standard_claims(TEST_NOW, case.get("claims").cloned().unwrap_or(Value::Null));
            Some(format!("Bearer {}", issuer.sign(alg, &claims)?))
        }
    };
    let body: Vec<u8> = match (case.get("raw_body"), case.get("body")) {
        (Some(raw), _) => raw
            .as_str()
            .context("raw_body must be a string")?
            .as_bytes()
            .to_vec(),
        (None, Some(body)) => serde_json::to_vec(body)?,
        (None, None) => Vec::new(),
    };
    let method = case.get("method").and_then(Value::as_str).unwrap_or("POST");
    let mut headers: Vec<(String, String)> = case
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    if method == "POST" && !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    headers.extend(authorization.map(|a| ("authorization".to_owned(), a)));
    Ok(Prepared {
        method: method.to_owned(),
        path: case
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or("/mcp")
            .to_owned(),
        headers,
        body,
    })
}

type Reply = (u16, Vec<(String, String)>, String);

/// What Warden did with one request, whichever runner ran it.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    /// The local answer: status, headers, body.
    reply: Option<Reply>,
    audit: Option<Value>,
    /// For a forwarded request: the headers Warden sets or removes among
    /// those a case asks about (`x-warden-*`, `authorization`).
    upstream: Vec<(String, Option<String>)>,
}

/// Request headers whose upstream value the runners compare.
fn watched(name: &str) -> bool {
    name.starts_with("x-warden-") || name == "authorization"
}

impl Outcome {
    fn status(&self) -> Option<u16> {
        self.reply.as_ref().map(|r| r.0)
    }

    fn audit_str(&self, field: &str) -> Option<&str> {
        self.audit.as_ref()?.get(field)?.as_str()
    }
}

/// The request the harness sends the `.wasm` for `request` (see
/// `WardenFilter::send`), as the proxy hands it to the filter: pseudo-headers,
/// `content-length`, then the case's headers (replacing a default of the same
/// name), `x-request-id` last; the body in one chunk.
fn client_request(request: &Prepared) -> Request {
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), request.method.clone()),
        (":path".into(), request.path.clone()),
        ("content-length".into(), request.body.len().to_string()),
    ];
    let own = request.headers.iter().cloned();
    for (name, value) in own.chain([("x-request-id".to_owned(), REQUEST_ID.to_owned())]) {
        match headers.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => headers.push((name, value)),
        }
    }
    Request {
        headers,
        chunks: if request.body.is_empty() {
            Vec::new()
        } else {
            vec![request.body.clone()]
        },
        trailers: None,
    }
}

/// [`client_request`] from a client that accepts compressed answers.
fn compressing_client(request: &Prepared) -> Request {
    let mut sent = client_request(request);
    if !sent.headers.iter().any(|(k, _)| k == "accept-encoding") {
        sent.headers.push(("accept-encoding".into(), "gzip".into()));
    }
    sent
}

/// The native runner: one table's configuration, and what its requests
/// leave in shared data, as one VM of the `.wasm` keeps it.
struct Native {
    warden: Rc<Warden>,
    shared: BTreeMap<String, Vec<u8>>,
}

/// What one native run gives besides the [`Outcome`].
struct NativeRun {
    outcome: Outcome,
    /// Every header the upstream received, sorted (forwarded requests only).
    upstream_all: Vec<(String, String)>,
}

impl Native {
    /// `mode` overrides the document's `filter.header_mode`.
    fn new(document: &PolicyDocument, mode: Option<HeaderMode>) -> anyhow::Result<Self> {
        let mut document = document.clone();
        if let Some(mode) = mode {
            document.filter.header_mode = mode;
        }
        Ok(Self {
            warden: Rc::new(Warden::compile(&document)?),
            shared: BTreeMap::new(),
        })
    }

    /// Drives one stream through the exchange: the request, then the end
    /// of the stream. The host honours a pause from the headers callback,
    /// as the harness does by default.
    fn send(&mut self, request: &Request) -> anyhow::Result<NativeRun> {
        let mut exchange = Exchange::new(Some(Rc::clone(&self.warden)));
        let mut host = MemoryHost::new(u128::from(TEST_NOW) * 1_000_000_000, HeaderPause::Honoured);
        host.shared = std::mem::take(&mut self.shared);
        let mut driver = Driver::new(&mut exchange, host);
        driver.send_request(request);
        let hangs = !driver.exchange.decided();
        driver.finish();
        let mut host = driver.host;
        self.shared = std::mem::take(&mut host.shared);
        if hangs {
            bail!("the exchange neither answered nor forwarded the request (it hangs)");
        }
        let audit = match host.decisions().first() {
            Some(audit) => Some(serde_json::from_str(&audit.to_json_line())?),
            None => None,
        };
        let mut upstream_all = match (&host.reply, host.request.sent_headers) {
            (None, Some(sent)) => sent,
            _ => Vec::new(),
        };
        upstream_all.sort();
        let upstream = upstream_all
            .iter()
            .filter(|(k, _)| watched(k))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        Ok(NativeRun {
            outcome: Outcome {
                reply: host.reply.map(|r| (r.status, r.headers, r.body)),
                audit,
                upstream,
            },
            upstream_all,
        })
    }
}

fn run_wasm(filter: &mut WardenFilter, request: &Prepared) -> anyhow::Result<Outcome> {
    let http = HttpRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        headers: request.headers.clone(),
        body: request.body.clone(),
        chunk_size: None,
    }
    .header("x-request-id", REQUEST_ID);
    let exchange = filter.handle(&http)?;
    if exchange.local_response.is_none() && !exchange.forwarded() {
        bail!("the filter neither answered nor forwarded the request (it hangs)");
    }
    let mut upstream: Vec<(String, Option<String>)> = match &exchange.upstream_headers {
        Some(headers) if exchange.local_response.is_none() => headers
            .iter()
            .filter(|(k, _)| watched(k))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
        _ => Vec::new(),
    };
    upstream.sort();
    Ok(Outcome {
        reply: exchange.local_response.map(|r| {
            let body = r.body_text();
            (u16::try_from(r.status).unwrap_or(0), r.headers, body)
        }),
        audit: exchange.audit,
        upstream,
    })
}

fn check(outcome: &Outcome, expect: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if expect.get("forward").and_then(Value::as_bool) == Some(true) && outcome.reply.is_some() {
        problems.push(format!(
            "expected the request to be forwarded, Warden answered {:?}",
            outcome.status()
        ));
    }
    if let Some(status) = expect.get("status").and_then(Value::as_u64) {
        match outcome.status() {
            Some(got) if u64::from(got) == status => {}
            Some(got) => problems.push(format!("expected status {status}, got {got}")),
            None => problems.push(format!(
                "expected status {status}, the request was forwarded"
            )),
        }
    }
    if let Some(decision) = expect.get("decision").and_then(Value::as_str) {
        let got = outcome.audit_str("decision");
        if got != Some(decision) {
            problems.push(format!("expected decision {decision}, got {got:?}"));
        }
    }
    if let Some(rule) = expect.get("rule").and_then(Value::as_str) {
        let got = outcome.audit_str("rule");
        if got != Some(rule) {
            problems.push(format!("expected rule {rule}, got {got:?}"));
        }
    }
    if let Some(reason) = expect.get("reason").and_then(Value::as_str) {
        let got = outcome.audit_str("reason").unwrap_or_default();
        if !got.contains(reason) {
            problems.push(format!(
                "expected a reason containing {reason:?}, got {got:?}"
            ));
        }
    }
    if let Some(code) = expect.get("error_code").and_then(Value::as_i64) {
        let got = outcome
            .reply
            .as_ref()
            .and_then(|r| serde_json::from_str::<Value>(&r.2).ok())
            .and_then(|b| b.pointer("/error/code").and_then(Value::as_i64));
        if got != Some(code) {
            problems.push(format!("expected JSON-RPC error {code}, got {got:?}"));
        }
    }
    if let Some(wanted) = expect.get("upstream_headers").and_then(Value::as_object) {
        for (name, value) in wanted {
            let got = outcome
                .upstream
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.as_deref());
            if got != value.as_str() {
                problems.push(format!(
                    "expected upstream header {name} = {value}, got {got:?}"
                ));
            }
        }
    }
    if let Some(challenge) = expect.get("www_authenticate").and_then(Value::as_str) {
        let got = outcome
            .reply
            .as_ref()
            .and_then(|r| r.1.iter().find(|(k, _)| k == "www-authenticate"))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !got.contains(challenge) {
            problems.push(format!(
                "expected WWW-Authenticate containing {challenge:?}, got {got:?}"
            ));
        }
    }
    problems
}

/// Neither audit lines nor replies ever carry the token.
fn assert_no_token_leak(name: &str, request: &Prepared, outcome: &Outcome) {
    let Some(token) = request
        .header("authorization")
        .and_then(|a| a.split_whitespace().last())
    else {
        return;
    };
    let audit = outcome
        .audit
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_default();
    let reply = format!("{:?}", outcome.reply);
    assert!(
        !audit.contains(token) && !reply.contains(token),
        "{name}: the token leaked"
    );
}

/// Fails on any case whose outcome misses its expectations (or leaks the
/// token); `outcomes` are in the order of the tables' cases.
fn assert_expectations(tables: &[Table], outcomes: &[Outcome]) {
    let cases: Vec<&Case> = tables.iter().flat_map(|t| &t.cases).collect();
    assert_eq!(cases.len(), outcomes.len());
    let count = cases.len();
    assert!(count > 20, "only {count} scenarios ran");
    let mut failures = Vec::new();
    for (case, outcome) in cases.iter().zip(outcomes) {
        let problems = check(outcome, &case.expect);
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
        assert_no_token_leak(&case.name, &case.request, outcome);
    }
    assert!(
        failures.is_empty(),
        "{} of {count} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every case natively, in the tables' order, sent by `client`; `mode`
/// overrides each table's header mode.
fn native_runs(
    tables: &[Table],
    mode: Option<HeaderMode>,
    client: fn(&Prepared) -> Request,
) -> anyhow::Result<Vec<NativeRun>> {
    let mut runs = Vec::new();
    for table in tables {
        let mut native = Native::new(&table.document, mode)?;
        for case in &table.cases {
            let run = native.send(&client(&case.request));
            runs.push(run.with_context(|| format!("{mode:?}: {}", case.name))?);
        }
    }
    Ok(runs)
}

fn native_outcomes(tables: &[Table]) -> anyhow::Result<Vec<Outcome>> {
    Ok(native_runs(tables, None, client_request)?
        .into_iter()
        .map(|run| run.outcome)
        .collect())
}

fn wasm_module() -> &'static Result<FilterModule, String> {
    static MODULE: OnceLock<Result<FilterModule, String>> = OnceLock::new();
    MODULE.get_or_init(|| load_module(&workspace_wasm()).map_err(|e| e.to_string()))
}

fn wasm_outcomes(tables: &[Table]) -> anyhow::Result<Vec<Outcome>> {
    let module = match wasm_module() {
        Ok(module) => module,
        Err(message) => bail!("{message}"),
    };
    let mut outcomes = Vec::new();
    for table in tables {
        let config = serde_json::to_string(&table.document)?;
        let mut filter = WardenFilter::start(module, &config, TEST_NOW)?;
        for case in &table.cases {
            outcomes.push(run_wasm(&mut filter, &case.request).with_context(|| case.name.clone())?);
        }
    }
    Ok(outcomes)
}

#[test]
fn scenario_tables_hold_against_the_native_core() -> anyhow::Result<()> {
    let tables = tables()?;
    assert_expectations(&tables, &native_outcomes(&tables)?);
    Ok(())
}

/// Natively, every table in both header modes: the same expectations hold,
/// the verdicts are identical, and the upstream receives the same headers
/// except `accept-encoding`, which stream mode removes from every judged
/// POST (its headers go on before the body shows whether it asks for a
/// list, whose answer Warden must be able to read).
#[test]
fn scenario_tables_judge_alike_in_both_header_modes() -> anyhow::Result<()> {
    let tables = tables()?;
    let stream = native_runs(&tables, Some(HeaderMode::Stream), compressing_client)?;
    let hold = native_runs(&tables, Some(HeaderMode::Hold), compressing_client)?;
    for runs in [&stream, &hold] {
        let outcomes: Vec<Outcome> = runs.iter().map(|r| r.outcome.clone()).collect();
        assert_expectations(&tables, &outcomes);
    }
    // The audit names the configuration, which differs in its header mode.
    let verdict = |outcome: &Outcome| {
        let mut outcome = outcome.clone();
        if let Some(Value::Object(audit)) = &mut outcome.audit {
            audit.remove("policy");
        }
        outcome
    };
    let without_encoding = |run: &NativeRun| -> Vec<(String, String)> {
        let mut headers = run.upstream_all.clone();
        headers.retain(|(k, _)| k != "accept-encoding");
        headers
    };
    let cases = tables.iter().flat_map(|t| &t.cases);
    let mut differences = Vec::new();
    let mut forwarded = 0;
    for ((case, s), h) in cases.zip(&stream).zip(&hold) {
        if verdict(&s.outcome) != verdict(&h.outcome) {
            differences.push(format!(
                "{}:\n  stream: {:?}\n  hold:   {:?}",
                case.name, s.outcome, h.outcome
            ));
        }
        if without_encoding(s) != without_encoding(h) {
            differences.push(format!(
                "{}: upstream headers\n  stream: {:?}\n  hold:   {:?}",
                case.name, s.upstream_all, h.upstream_all
            ));
        }
        let judged_post = case.request.method == "POST" && s.outcome.audit.is_some();
        if !s.upstream_all.is_empty() && judged_post {
            forwarded += 1;
            if s.upstream_all.iter().any(|(k, _)| k == "accept-encoding") {
                differences.push(format!(
                    "{}: stream mode forwarded accept-encoding",
                    case.name
                ));
            }
        }
    }
    assert!(
        forwarded > 5,
        "only {forwarded} judged POSTs were forwarded"
    );
    assert!(
        differences.is_empty(),
        "the header modes differ on {} scenarios:\n{}",
        differences.len(),
        differences.join("\n")
    );
    Ok(())
}

#[test]
fn scenario_tables_hold_against_the_wasm_filter_and_agree_with_the_core() -> anyhow::Result<()> {
    let tables = tables()?;
    let wasm = wasm_outcomes(&tables)?;
    assert_expectations(&tables, &wasm);
    let native = native_outcomes(&tables)?;
    assert_expectations(&tables, &native);
    let names = tables.iter().flat_map(|t| &t.cases).map(|c| &c.name);
    let mut disagreements = Vec::new();
    for ((name, w), n) in names.zip(&wasm).zip(&native) {
        // Same answer (status, headers, body) and the same audit line,
        // field by field: status, decision, rule, reason, identity.
        if w != n {
            disagreements.push(format!("{name}:\n  wasm:   {w:?}\n  native: {n:?}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "the .wasm and the native core disagree on {} scenarios:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    Ok(())
}

#[test]
fn the_runner_notices_a_wrong_expectation() -> anyhow::Result<()> {
    let issuer = DemoIssuer::new()?;
    let document = PolicyDocument::load_file(&scenario_dir().join("../../examples/policy.yaml"))?;
    let case: Value = serde_yaml_ng::from_str(
        "{claims: {sub: research-agent, actor_type: agent}, body: {jsonrpc: '2.0', id: 1, method: tools/call, params: {name: delete_repo, arguments: {}}}}",
    )?;
    let outcome = Native::new(&document, None)?
        .send(&client_request(&prepare(&issuer, &case)?))?
        .outcome;
    let problems = check(
        &outcome,
        &serde_yaml_ng::from_str("{forward: true, rule: admins-delete-repos}")?,
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    Ok(())
}
