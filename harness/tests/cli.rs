//! The `warden` binary as users run it.

#![expect(clippy::expect_used, reason = "test helpers fail loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn warden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run warden")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn compile_inlines_the_key_set_and_reports_the_version() {
    let out = warden(&["compile", "examples/policy.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["identity"]["issuers"][0]["jwks"]["keys"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(config["identity"]["issuers"][0].get("jwks_file").is_none());
    assert!(
        text(&out.stderr).contains("policy sha256:"),
        "{}",
        text(&out.stderr)
    );
    // The output is accepted by the filter's own loader.
    policy_sdk::Warden::from_json(&text(&out.stdout)).unwrap();
}

#[test]
fn compile_rejects_an_invalid_policy_with_exit_2_naming_rule_and_field() {
    let dir = std::env::temp_dir().join(format!("warden-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("bad.yaml");
    let original = std::fs::read_to_string(repo().join("examples/policy.yaml")).unwrap();
    let bad = original
        .replace(
            "keys/demo.jwks.json",
            &repo()
                .join("examples/keys/demo.jwks.json")
                .display()
                .to_string(),
        )
        .replace(
            "types: [agent]\n    tools: [delete_*]",
            "types: [robot]\n    tools: [delete_*]",
        );
    assert_ne!(bad, original);
    std::fs::write(&policy, &bad).unwrap();
    let out = warden(&["compile", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rule `no-agent-deletes` (principal.types[0]): unknown actor type `robot`"),
        "{stderr}"
    );
    assert!(stderr.contains("help: actor types are"), "{stderr}");
    // The diagnostic points at the file, line and column of the field.
    let line = bad
        .lines()
        .position(|l| l.contains("types: [robot]"))
        .unwrap()
        + 1;
    let column = bad.lines().nth(line - 1).unwrap().find("robot").unwrap() + 1;
    assert!(
        stderr.contains(&format!(
            "bad.yaml:{line}:{column}: rule `no-agent-deletes`"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("field: rules[7].principal.types[0]"),
        "{stderr}"
    );

    std::fs::write(
        &policy,
        "version: 1\nidentity: {issuers: [{issuer: i, audiences: [a]}]}\nrulez: []\n",
    )
    .unwrap();
    let out = warden(&["compile", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown field `rulez`"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_committed_envoy_example_is_what_the_cli_renders() {
    let out = warden(&[
        "envoy",
        "examples/policy.yaml",
        "--wasm",
        "target/wasm32-wasip1/release/warden_filter.wasm",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = std::fs::read_to_string(repo().join("envoy/example.yaml")).unwrap();
    assert!(
        text(&out.stdout) == committed,
        "envoy/example.yaml is stale: regenerate it with `make envoy-example`"
    );
}

#[test]
fn check_exits_0_on_allow_and_1_on_deny() {
    let dir = std::env::temp_dir().join(format!("warden-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let request = dir.join("req.json");
    let claims = dir.join("claims.json");
    std::fs::write(&claims, r#"{"sub":"research-agent","actor_type":"agent"}"#).unwrap();
    for (tool, code, rule) in [
        ("search_docs", 0, "search-docs"),
        ("delete_repo", 1, "no-agent-deletes"),
    ] {
        std::fs::write(
            &request,
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#),
        )
        .unwrap();
        let out = warden(&[
            "check",
            "--policy",
            "examples/policy.yaml",
            "--request",
            request.to_str().unwrap(),
            "--claims",
            claims.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{tool}: {}",
            text(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["rule"], rule);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["compile", "envoy", "check", "test"] {
        let out = warden(&[sub, "--help"]);
        assert!(out.status.success(), "{sub}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Usage: warden"), "{sub}");
    }
    let out = warden(&["check", "--policy", "examples/policy.yaml"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn the_example_suite_passes_through_the_wasm() {
    let out = warden(&["test", "examples/policy.test.yaml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let last = stdout.lines().last().unwrap();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
    assert!(
        stdout.contains("ok    examples/policy.test.yaml: an agent never deletes a repository")
    );
}

#[test]
fn a_wrong_expectation_fails_the_suite_and_names_the_case() {
    let dir = std::env::temp_dir().join(format!("warden-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let suite = dir.join("wrong.test.yaml");
    std::fs::write(
        &suite,
        format!(
            r#"policy: {}
cases:
  - name: search is open
    claims: {{sub: research-agent, actor_type: agent}}
    request: {{tool: search_docs}}
    expect: allow
  - name: agents may delete repositories (wrong)
    claims: {{sub: research-agent, actor_type: agent}}
    request: {{tool: delete_repo, arguments: {{name: warden}}}}
    expect: {{decision: allow, rule: admins-delete-repos}}
"#,
            repo().join("examples/policy.yaml").display()
        ),
    )
    .unwrap();
    let out = warden(&["test", suite.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("FAIL  "), "{stdout}");
    assert!(
        stdout.contains("agents may delete repositories (wrong)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected: allow by admins-delete-repos"),
        "{stdout}"
    );
    assert!(
        stdout.contains("actual:   deny by no-agent-deletes (owner team-security, status 200)"),
        "{stdout}"
    );
    assert!(
        stdout.lines().last() == Some("1 passed, 1 failed"),
        "{stdout}"
    );

    let out = warden(&["test", suite.to_str().unwrap(), "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(
        report["suites"][0]["cases"][1]["actual"]["rule"],
        "no-agent-deletes"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_accepts_a_token_as_is() {
    let dir = std::env::temp_dir().join(format!("warden-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let request = dir.join("req.json");
    std::fs::write(
        &request,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .unwrap();
    let out = warden(&[
        "check",
        "--policy",
        "examples/policy.yaml",
        "--request",
        request.to_str().unwrap(),
        "--token",
        "not-a-jwt",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("decision: deny"), "{stdout}");
    assert!(stdout.contains("status:   401"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}
