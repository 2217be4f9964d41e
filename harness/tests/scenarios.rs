//! One case format, two runners: every case file (`tests/scenarios/*.yaml`
//! and the example policy's suite, `examples/policy.test.yaml`, which
//! `warden test` runs) goes through the harness's one runner
//! (`warden_harness::suite`), once against the native core (policy-sdk's
//! request lifecycle, `Exchange`, on its in-memory host) and once against
//! the built `warden_filter.wasm`. Both must meet each case's expectations
//! and agree with each other on the answer, the audit line and the headers
//! the upstream receives. Natively every file also runs in both header
//! modes, which must judge alike.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use policy_sdk::HeaderMode;
use policy_sdk::exchange::memory::Request;
use serde_json::Value;
use warden_harness::filter::{load_module, workspace_wasm};
use warden_harness::host::FilterModule;
use warden_harness::suite::{
    NativeRun, NativeRunner, Outcome, Runners, Suite, SuiteReport, check, run,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The case files every runner must pass: the scenario tables, then the
/// example policy's suite.
fn case_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = repo().join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    if files.is_empty() {
        bail!("no scenario files in {}", dir.display());
    }
    files.push(repo().join("examples/policy.test.yaml"));
    Ok(files)
}

/// Every case file, loaded once (policies compiled, tokens minted) for all
/// the tests of this binary.
fn suites() -> anyhow::Result<&'static [Suite]> {
    static SUITES: OnceLock<Result<Vec<Suite>, String>> = OnceLock::new();
    let loaded = SUITES.get_or_init(|| {
        case_files()
            .map_err(|e| format!("{e:#}"))?
            .iter()
            .map(|file| Suite::load(file).map_err(|e| e.to_string()))
            .collect()
    });
    match loaded {
        Ok(suites) => Ok(suites),
        Err(message) => bail!("{message}"),
    }
}

fn wasm_module() -> anyhow::Result<&'static FilterModule> {
    static MODULE: OnceLock<Result<FilterModule, String>> = OnceLock::new();
    match MODULE.get_or_init(|| load_module(&workspace_wasm()).map_err(|e| e.to_string())) {
        Ok(module) => Ok(module),
        Err(message) => bail!("{message}"),
    }
}

/// Fails on any case that failed (missed its expectations, leaked the
/// token, or, with both runners, found them disagreeing); returns how many
/// cases ran.
fn assert_all_pass(reports: &[SuiteReport]) -> usize {
    let count: usize = reports.iter().map(|r| r.cases.len()).sum();
    assert!(count > 70, "only {count} cases ran");
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.cases.iter().filter(|c| !c.passed).map(|c| {
                format!(
                    "{}: {}: {}",
                    r.file.display(),
                    c.name,
                    c.problems.join("; ")
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

fn run_all(runners: Runners<'_>) -> anyhow::Result<Vec<SuiteReport>> {
    suites()?
        .iter()
        .map(|suite| run(suite, runners).map_err(|e| anyhow::anyhow!("{e}")))
        .collect()
}

#[test]
fn case_files_hold_against_the_native_core() -> anyhow::Result<()> {
    assert_all_pass(&run_all(Runners::Native)?);
    Ok(())
}

#[test]
fn case_files_hold_against_the_wasm_filter_and_agree_with_the_core() -> anyhow::Result<()> {
    let reports = run_all(Runners::Both(wasm_module()?))?;
    assert_all_pass(&reports);
    // Both runners ran every case (a runner's failure is a failed case).
    for case in reports.iter().flat_map(|r| &r.cases) {
        assert!(
            case.wasm.is_some() && case.native.is_some(),
            "{}",
            case.name
        );
        assert_eq!(case.wasm, case.native, "{}", case.name);
    }
    Ok(())
}

/// A case's native request, from a client that accepts compressed answers.
fn compressing_client(mut request: Request) -> Request {
    if !request.headers.iter().any(|(k, _)| k == "accept-encoding") {
        request
            .headers
            .push(("accept-encoding".into(), "gzip".into()));
    }
    request
}

/// Every case of every file natively, in order, with the header mode set
/// to `mode`; each run is checked against its case's expectations.
fn native_runs(suites: &[Suite], mode: HeaderMode) -> anyhow::Result<Vec<NativeRun>> {
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for suite in suites {
        let mut native = NativeRunner::new(&suite.config, Some(mode), suite.now)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for case in &suite.cases {
            let run = native
                .send(&compressing_client(case.request.native_request()))
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{mode:?}: {}", case.name))?;
            let problems = check(&case.expect, &run.outcome, &case.request);
            if !problems.is_empty() {
                failures.push(format!("{mode:?}: {}: {}", case.name, problems.join("; ")));
            }
            runs.push(run);
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(runs)
}

/// Natively, every file in both header modes: the same expectations hold,
/// the verdicts are identical, and the upstream receives the same headers
/// except `accept-encoding`, which stream mode removes from every judged
/// POST (its headers go on before the body shows whether it asks for a
/// list, whose answer Warden must be able to read).
#[test]
fn case_files_judge_alike_in_both_header_modes() -> anyhow::Result<()> {
    let suites = suites()?;
    let stream = native_runs(suites, HeaderMode::Stream)?;
    let hold = native_runs(suites, HeaderMode::Hold)?;
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
    let cases = suites.iter().flat_map(|s| &s.cases);
    let mut differences = Vec::new();
    let mut forwarded = 0;
    let mut count = 0;
    for ((case, s), h) in cases.zip(&stream).zip(&hold) {
        count += 1;
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
    assert!(count > 70, "only {count} cases ran");
    assert!(
        forwarded > 5,
        "only {forwarded} judged POSTs were forwarded"
    );
    assert!(
        differences.is_empty(),
        "the header modes differ on {} cases:\n{}",
        differences.len(),
        differences.join("\n")
    );
    Ok(())
}

/// A file whose expectations are wrong fails, in both runners, on exactly
/// the wrong fields, and the runners still agree on what happened.
#[test]
fn the_runner_notices_a_wrong_expectation() -> anyhow::Result<()> {
    let file = repo().join("tests/scenarios/failing/wrong-expectations.yaml");
    let suite = Suite::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    for runners in [Runners::Native, Runners::Both(wasm_module()?)] {
        let report = run(&suite, runners).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!((report.passed(), report.failed()), (1, 1));
        let [right, wrong] = report.cases.as_slice() else {
            bail!("two cases expected, got {}", report.cases.len());
        };
        assert!(right.passed, "{:?}", right.problems);
        assert_eq!(
            wrong.problems,
            [
                "expected allow, got deny",
                "expected rule admins-delete-repos, got no-agent-deletes",
                "expected the request to be forwarded, Warden answered with status 200",
            ],
        );
        assert_eq!(wrong.actual.rule.as_deref(), Some("no-agent-deletes"));
    }
    Ok(())
}

/// Wrong shadow expectations fail, in both runners, on exactly the wrong
/// fields.
#[test]
fn the_runner_notices_a_wrong_shadow_expectation() -> anyhow::Result<()> {
    let file = repo().join("tests/scenarios/failing/wrong-shadow.yaml");
    let suite = Suite::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    for runners in [Runners::Native, Runners::Both(wasm_module()?)] {
        let report = run(&suite, runners).map_err(|e| anyhow::anyhow!("{e}"))?;
        let problems: Vec<&[String]> = report.cases.iter().map(|c| c.problems.as_slice()).collect();
        assert_eq!(
            problems,
            [
                &["expected shadow none, got would_deny".to_owned()][..],
                &["expected shadow rule no-agent-search, got humans-deploy".to_owned()][..],
            ]
        );
    }
    Ok(())
}

/// `warden test` output names the failing case's expectation in one line.
#[test]
fn a_wrong_expectation_is_summarised_for_the_cli() -> anyhow::Result<()> {
    let file = repo().join("tests/scenarios/failing/wrong-expectations.yaml");
    let suite = Suite::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = run(&suite, Runners::Native).map_err(|e| anyhow::anyhow!("{e}"))?;
    let wrong = report.cases.last().context("a case")?;
    assert_eq!(
        wrong.expected.summary(),
        "allow by admins-delete-repos (forwarded)"
    );
    let actual = wrong.actual.summary();
    assert!(
        actual.starts_with("deny by no-agent-deletes (owner team-security, status 200): "),
        "{actual}"
    );
    Ok(())
}
