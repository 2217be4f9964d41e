//! Runs the filter scenario tables in `tests/scenarios/` against the native
//! core (policy-sdk's gate). The `.wasm` runner will replay the same tables
//! through the built filter.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use policy_sdk::testing::{DemoAlg, DemoIssuer, TEST_NOW, standard_claims};
use policy_sdk::{
    AuditRecord, BodyVerdict, HeadVerdict, PolicyDocument, Reply, RequestHead, Warden,
};
use serde_json::Value;

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios")
}

/// What the gate did with one request.
#[derive(Debug)]
struct Outcome {
    authorization: Option<String>,
    reply: Option<Reply>,
    audit: Option<AuditRecord>,
}

fn run_case(warden: &Warden, issuer: &DemoIssuer, case: &Value) -> anyhow::Result<Outcome> {
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
    let path = case.get("path").and_then(Value::as_str).unwrap_or("/mcp");
    let content_length = body.len().to_string();
    let head = RequestHead {
        method,
        path,
        authorization: authorization.as_deref(),
        content_length: Some(&content_length),
        request_id: Some("scenario"),
        now_unix_nanos: u128::from(TEST_NOW) * 1_000_000_000,
    };
    let (reply, audit) = match warden.judge_head(&head) {
        HeadVerdict::Pass => (None, None),
        HeadVerdict::Forward(audit) => (None, Some(audit)),
        HeadVerdict::Respond(reply, audit) => (Some(reply), Some(audit)),
        HeadVerdict::ReadBody(identity) => match warden.judge_body(&identity, &body, &head) {
            BodyVerdict::Forward(audit) => (None, Some(audit)),
            BodyVerdict::Respond(reply, audit) => (Some(reply), Some(audit)),
        },
    };
    Ok(Outcome {
        authorization,
        reply,
        audit,
    })
}

fn check(outcome: &Outcome, expect: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let audit = outcome.audit.as_ref();
    if expect.get("forward").and_then(Value::as_bool) == Some(true) && outcome.reply.is_some() {
        let status = outcome.reply.as_ref().map(|r| r.status);
        problems.push(format!(
            "expected the request to be forwarded, Warden answered {status:?}"
        ));
    }
    if let Some(status) = expect.get("status").and_then(Value::as_u64) {
        match &outcome.reply {
            Some(reply) if u64::from(reply.status) == status => {}
            Some(reply) => problems.push(format!("expected status {status}, got {}", reply.status)),
            None => problems.push(format!(
                "expected status {status}, the request was forwarded"
            )),
        }
    }
    if let Some(decision) = expect.get("decision").and_then(Value::as_str) {
        let got = audit.map(|a| a.decision);
        if got != Some(decision) {
            problems.push(format!("expected decision {decision}, got {got:?}"));
        }
    }
    if let Some(rule) = expect.get("rule").and_then(Value::as_str) {
        let got = audit.and_then(|a| a.rule.as_deref());
        if got != Some(rule) {
            problems.push(format!("expected rule {rule}, got {got:?}"));
        }
    }
    if let Some(reason) = expect.get("reason").and_then(Value::as_str) {
        let got = audit.map(|a| a.reason.as_str()).unwrap_or_default();
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
            .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
            .and_then(|b| b.pointer("/error/code").and_then(Value::as_i64));
        if got != Some(code) {
            problems.push(format!("expected JSON-RPC error {code}, got {got:?}"));
        }
    }
    if let Some(challenge) = expect.get("www_authenticate").and_then(Value::as_str) {
        let got = outcome
            .reply
            .as_ref()
            .and_then(|r| r.headers.iter().find(|(k, _)| k == "www-authenticate"))
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

#[test]
fn scenario_tables_hold_against_the_native_core() -> anyhow::Result<()> {
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
    let mut failures = Vec::new();
    let mut count = 0;
    for file in files {
        let table: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&file)?)?;
        let policy_path = file
            .parent()
            .unwrap()
            .join(table["policy"].as_str().context("policy")?);
        let warden = Warden::compile(&PolicyDocument::load_file(&policy_path)?)?;
        for case in table["cases"].as_array().context("cases")? {
            count += 1;
            let name = case["name"].as_str().unwrap_or("?");
            let outcome = run_case(&warden, &issuer, case).with_context(|| format!("{name}"))?;
            let problems = check(&outcome, &case["expect"]);
            if !problems.is_empty() {
                failures.push(format!(
                    "{}: {name}: {}",
                    file.display(),
                    problems.join("; ")
                ));
            }
            // Neither audit lines nor replies ever carry the token.
            if let Some(token) = outcome
                .authorization
                .as_deref()
                .and_then(|a| a.split_whitespace().last())
            {
                let audit = outcome
                    .audit
                    .as_ref()
                    .map(AuditRecord::to_json_line)
                    .unwrap_or_default();
                let reply = outcome
                    .reply
                    .as_ref()
                    .map(|r| format!("{:?}{}", r.headers, r.body))
                    .unwrap_or_default();
                assert!(
                    !audit.contains(token) && !reply.contains(token),
                    "{name}: the token leaked"
                );
            }
        }
    }
    assert!(count > 20, "only {count} scenarios ran");
    assert!(
        failures.is_empty(),
        "{} of {count} scenarios failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn the_runner_notices_a_wrong_expectation() {
    let issuer = DemoIssuer::new().unwrap();
    let warden = Warden::compile(
        &PolicyDocument::load_file(&scenario_dir().join("../../examples/policy.yaml")).unwrap(),
    )
    .unwrap();
    let case: Value = serde_yaml_ng::from_str(
        "{claims: {sub: research-agent, actor_type: agent}, body: {jsonrpc: '2.0', id: 1, method: tools/call, params: {name: delete_repo, arguments: {}}}}",
    )
    .unwrap();
    let outcome = run_case(&warden, &issuer, &case).unwrap();
    let problems = check(
        &outcome,
        &serde_yaml_ng::from_str("{forward: true, rule: admins-delete-repos}").unwrap(),
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}
