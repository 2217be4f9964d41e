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

/// A scratch directory for one test's files, removed when dropped (so also
/// when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("warden-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Self(dir)
    }

    /// Writes `contents` to `file` in the directory; returns its path.
    fn write(&self, file: &str, contents: &str) -> PathBuf {
        let path = self.0.join(file);
        std::fs::write(&path, contents).expect("write a scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
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
    let scratch = Scratch::new("cli");
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
    let policy = scratch.write("bad.yaml", &bad);
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

    scratch.write(
        "bad.yaml",
        "version: 1\nidentity: {issuers: [{issuer: i, audiences: [a]}]}\nrulez: []\n",
    );
    let out = warden(&["compile", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown field `rulez`"),
        "{}",
        text(&out.stderr)
    );
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
    let scratch = Scratch::new("check");
    let claims = scratch.write(
        "claims.json",
        r#"{"sub":"research-agent","actor_type":"agent"}"#,
    );
    for (tool, code, rule) in [
        ("search_docs", 0, "search-docs"),
        ("delete_repo", 1, "no-agent-deletes"),
    ] {
        let request = scratch.write(
            "req.json",
            &format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#),
        );
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
    let scratch = Scratch::new("suite");
    let suite = scratch.write(
        "wrong.test.yaml",
        &format!(
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
    );
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
}

#[test]
fn check_accepts_a_token_as_is() {
    let scratch = Scratch::new("token");
    let request = scratch.write(
        "req.json",
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    );
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
}
