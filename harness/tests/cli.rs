//! The `warden` binary as users run it.

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
        config["identity"]["jwks"]["keys"].as_array().unwrap().len(),
        3
    );
    assert!(config["identity"].get("jwks_file").is_none());
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
    std::fs::write(&policy, bad).unwrap();
    let out = warden(&["compile", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rule `no-agent-deletes` (principal.types[0]): unknown actor type `robot`"),
        "{stderr}"
    );
    assert!(stderr.contains("help: actor types are"), "{stderr}");

    std::fs::write(
        &policy,
        "version: 1\nidentity: {issuer: i, audience: a}\nrulez: []\n",
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
