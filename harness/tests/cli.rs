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
        "target/warden_filter.wasm",
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
    for sub in ["compile", "envoy", "check", "test", "version", "wasm"] {
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

/// `warden envoy` with `args` after the policy and `--wasm`; the bootstrap.
fn envoy_bootstrap(policy: &str, args: &[&str]) -> String {
    let mut all = vec!["envoy", policy, "--wasm", "warden_filter.wasm"];
    all.extend_from_slice(args);
    let out = warden(&all);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The bootstrap as data.
fn parsed(bootstrap: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(bootstrap).expect("the bootstrap is YAML")
}

/// The wasm filter's `config` in a bootstrap.
fn wasm_config(bootstrap: &str) -> serde_json::Value {
    parsed(bootstrap)
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/0/typed_config/config")
        .cloned()
        .unwrap_or_default()
}

/// The cluster `name` in a bootstrap (`Null` when there is none).
fn cluster(bootstrap: &str, name: &str) -> serde_json::Value {
    parsed(bootstrap)
        .pointer("/static_resources/clusters")
        .and_then(serde_json::Value::as_array)
        .expect("clusters")
        .iter()
        .find(|c| c.get("name").and_then(serde_json::Value::as_str) == Some(name))
        .cloned()
        .unwrap_or_default()
}

/// The plugin configuration a bootstrap hands the filter (the JSON in the
/// `StringValue`).
fn plugin_configuration(bootstrap: &str) -> serde_json::Value {
    let config = wasm_config(bootstrap);
    assert_eq!(
        config
            .pointer("/configuration/@type")
            .and_then(serde_json::Value::as_str),
        Some("type.googleapis.com/google.protobuf.StringValue")
    );
    let json = config
        .pointer("/configuration/value")
        .and_then(serde_json::Value::as_str)
        .expect("a string");
    serde_json::from_str(json).expect("the plugin configuration is JSON")
}

const PAUSE_FLAG: &str = "allow_on_headers_stop_iteration: true";

#[test]
fn envoy_honours_a_header_pause_only_in_hold_mode() {
    // The example policy keeps the default, `stream`: no flag, any Envoy.
    let stream = envoy_bootstrap("examples/policy.yaml", &[]);
    assert!(
        !stream.contains("allow_on_headers_stop_iteration: "),
        "{stream}"
    );
    assert!(
        stream.contains("# - filter.header_mode: stream."),
        "{stream}"
    );
    assert_eq!(
        plugin_configuration(&stream)["filter"]["header_mode"],
        "stream"
    );

    // --header-mode overrides the policy, in the bootstrap and the filter's
    // configuration alike.
    let hold = envoy_bootstrap("examples/policy.yaml", &["--header-mode", "hold"]);
    assert!(hold.contains(PAUSE_FLAG), "{hold}");
    assert!(hold.contains("# - filter.header_mode: hold."), "{hold}");
    assert_eq!(plugin_configuration(&hold)["filter"]["header_mode"], "hold");

    // A policy that says `hold` gets the flag without the option, and loses it
    // with `--header-mode stream`.
    let scratch = Scratch::new("header-mode");
    let mut document = compiled_example_policy();
    document["filter"]["header_mode"] = "hold".into();
    let policy = scratch.write("hold.json", &document.to_string());
    let policy = policy.to_str().unwrap();
    let from_policy = envoy_bootstrap(policy, &[]);
    assert!(from_policy.contains(PAUSE_FLAG), "{from_policy}");
    assert_eq!(
        plugin_configuration(&from_policy)["filter"]["header_mode"],
        "hold"
    );
    let overridden = envoy_bootstrap(policy, &["--header-mode", "stream"]);
    assert!(!overridden.contains(PAUSE_FLAG), "{overridden}");
    assert_eq!(
        plugin_configuration(&overridden)["filter"]["header_mode"],
        "stream"
    );

    let out = warden(&[
        "envoy",
        "examples/policy.yaml",
        "--wasm",
        "w.wasm",
        "--header-mode",
        "pause",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn envoy_speaks_h2c_to_the_upstream_on_request() {
    let http1 = envoy_bootstrap("examples/policy.yaml", &[]);
    assert!(!http1.contains("http2_protocol_options"), "{http1}");
    // The listener takes HTTP/1.1 and h2c with prior knowledge.
    assert!(http1.contains("codec_type: AUTO"), "{http1}");
    let h2c = envoy_bootstrap(
        "examples/policy.yaml",
        &[
            "--upstream-protocol",
            "h2c",
            "--cluster",
            "idp=127.0.0.1:9000",
        ],
    );
    let options = &cluster(&h2c, "mcp_server")["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["@type"],
        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    );
    assert_eq!(
        options["explicit_http_config"]["http2_protocol_options"],
        serde_json::json!({})
    );
    // Only the MCP server's cluster: the clusters the filter fetches from
    // stay HTTP/1.1.
    assert!(cluster(&h2c, "idp").is_object(), "{h2c}");
    assert_eq!(h2c.matches("http2_protocol_options").count(), 1, "{h2c}");
}

#[test]
fn envoy_drops_header_names_with_underscores() {
    // A WSGI or CGI server reads `x_warden_subject` as `x-warden-subject`:
    // the connection manager drops such names before any filter runs (and
    // Warden removes every spelling of its own headers as well).
    let bootstrap = envoy_bootstrap("examples/policy.yaml", &[]);
    let manager = bootstrap
        .split("stat_prefix: mcp")
        .nth(1)
        .and_then(|rest| rest.split("route_config:").next())
        .expect("the HTTP connection manager");
    assert!(
        manager.contains(
            "          common_http_protocol_options:\n            headers_with_underscores_action: DROP_HEADER\n"
        ),
        "{bootstrap}"
    );
    assert_eq!(
        bootstrap.matches("headers_with_underscores_action").count(),
        1,
        "{bootstrap}"
    );
}

/// `warden compile examples/policy.yaml`: the example policy as one JSON
/// document (its key set inlined), for a test to change and write elsewhere.
fn compiled_example_policy() -> serde_json::Value {
    let compiled = warden(&["compile", "examples/policy.yaml"]);
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    serde_json::from_slice(&compiled.stdout).expect("`warden compile` writes JSON")
}

/// The access log a bootstrap renders (`Null` when there is none).
fn access_log(bootstrap: &str) -> serde_json::Value {
    parsed(bootstrap)
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/access_log")
        .cloned()
        .unwrap_or_default()
}

#[test]
fn envoy_writes_audit_lines_to_an_access_log_by_default() {
    // By default (the example policy leaves `audit_filter_state` unset):
    // the access log, to Envoy's standard output, and the filter told to
    // fill the filter state it reads.
    let default = envoy_bootstrap("examples/policy.yaml", &[]);
    let log = &access_log(&default)[0]["typed_config"];
    assert_eq!(log["path"], "/dev/stdout", "{default}");
    assert_eq!(
        log["log_format"]["text_format_source"]["inline_string"],
        "%FILTER_STATE(wasm.warden_audit:PLAIN)%\n"
    );
    assert_eq!(
        plugin_configuration(&default)["filter"]["audit_filter_state"],
        true
    );
    // --audit-log names the file.
    let logged = envoy_bootstrap(
        "examples/policy.yaml",
        &["--audit-log", "/var/log/warden.log"],
    );
    assert_eq!(
        access_log(&logged)[0]["typed_config"]["path"],
        "/var/log/warden.log",
        "{logged}"
    );
    assert_eq!(
        plugin_configuration(&logged)["filter"]["audit_filter_state"],
        true
    );
    // Envoy's own log instead: no access log, the policy as written.
    let envoy_log = envoy_bootstrap("examples/policy.yaml", &["--audit-sink", "envoy-log"]);
    assert!(!envoy_log.contains("access_log"), "{envoy_log}");
    assert_eq!(
        plugin_configuration(&envoy_log)["filter"]["audit_filter_state"],
        false
    );
}

#[test]
fn envoy_refuses_an_audit_sink_that_contradicts_the_other_options() {
    // The example policy with the option set.
    let mut document = compiled_example_policy();
    document["filter"]["audit_filter_state"] = true.into();
    let scratch = Scratch::new("audit-sink");
    let policy = scratch.write("policy.json", &document.to_string());
    let policy = policy.to_str().unwrap();
    for (args, says) in [
        (
            vec![
                "envoy",
                policy,
                "--wasm",
                "w.wasm",
                "--audit-sink",
                "envoy-log",
            ],
            "filter.audit_filter_state",
        ),
        (
            vec![
                "envoy",
                "examples/policy.yaml",
                "--wasm",
                "w.wasm",
                "--audit-sink",
                "envoy-log",
                "--audit-log",
                "/tmp/audit.log",
            ],
            "--audit-log",
        ),
    ] {
        let out = warden(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

const SHA: &str = "b56a170b4dc4e846ad14f1279c028525a9dce41a7c4b32e0740b0aa092b066ab";

/// `warden envoy` with a remote module; the output (status checked by the caller).
fn envoy_remote(args: &[&str]) -> Output {
    let mut all = vec!["envoy", "examples/policy.yaml"];
    all.extend_from_slice(args);
    warden(&all)
}

#[test]
fn envoy_fetches_a_remote_module_through_its_own_cluster() {
    let out = envoy_remote(&[
        "--wasm-url",
        "http://127.0.0.1:8088/filters/warden.wasm",
        "--wasm-sha256",
        &format!("sha256:{}", SHA.to_uppercase()),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bootstrap = text(&out.stdout);
    let config = wasm_config(&bootstrap);
    let code = &config["vm_config"]["code"];
    assert!(code.get("local").is_none(), "{bootstrap}");
    let remote = &code["remote"];
    assert_eq!(
        remote["http_uri"]["uri"],
        "http://127.0.0.1:8088/filters/warden.wasm"
    );
    assert_eq!(remote["http_uri"]["cluster"], "warden_wasm");
    // The digest as Envoy wants it: bare, lower-case hex.
    assert_eq!(remote["sha256"], SHA);
    let fetch = cluster(&bootstrap, "warden_wasm");
    assert_eq!(fetch["type"], "STATIC", "{bootstrap}");
    assert_eq!(
        fetch["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
        serde_json::json!({"address": "127.0.0.1", "port_value": 8088})
    );
    // A host name is resolved by DNS, port 80 by default.
    let named = envoy_remote(&[
        "--wasm-url",
        "http://modules.internal/warden.wasm",
        "--wasm-sha256",
        SHA,
    ]);
    let named = cluster(&text(&named.stdout), "warden_wasm");
    assert_eq!(named["type"], "LOGICAL_DNS", "{named}");
    assert_eq!(
        named["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
        serde_json::json!({"address": "modules.internal", "port_value": 80})
    );
    // A local module renders no such cluster.
    let local = envoy_bootstrap("examples/policy.yaml", &[]);
    assert!(!local.contains("warden_wasm"), "{local}");
}

#[test]
fn envoy_refuses_an_unusable_remote_module() {
    for (args, message) in [
        (
            vec!["--wasm-url", "https://h/w.wasm", "--wasm-sha256", SHA],
            "not an http:// URL",
        ),
        (
            vec!["--wasm-url", "http://h/w.wasm", "--wasm-sha256", "abc"],
            "not a SHA-256 digest",
        ),
        (
            vec!["--wasm-url", "http://h/w.wasm", "--wasm-sha256", &SHA[1..]],
            "not a SHA-256 digest",
        ),
        (
            vec!["--wasm-url", "http:///w.wasm", "--wasm-sha256", SHA],
            "no usable host",
        ),
        (vec!["--wasm-url", "http://h/w.wasm"], "--wasm-sha256"),
        (vec!["--wasm-sha256", SHA], "--wasm-url"),
        (
            vec![
                "--wasm",
                "w.wasm",
                "--wasm-url",
                "http://h/w.wasm",
                "--wasm-sha256",
                SHA,
            ],
            "cannot be used with",
        ),
        (vec![], "--wasm"),
        (
            vec![
                "--wasm-url",
                "http://h/w.wasm",
                "--wasm-sha256",
                SHA,
                "--cluster",
                "warden_wasm=127.0.0.1:1",
            ],
            "warden_wasm",
        ),
    ] {
        let out = envoy_remote(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn envoy_renders_dns_and_tls_clusters() {
    let bootstrap = envoy_bootstrap(
        "examples/policy.yaml",
        &[
            "--cluster",
            "idp=sso.example.com:443",
            "--cluster",
            "revocations=10.0.0.7:8443,tls,ca=/etc/warden/idp-ca.pem",
            "--cluster",
            "internal=10.0.0.8:443,plaintext",
            "--cluster",
            "pinned=10.0.0.9:9443,sni=keys.example.com",
        ],
    );
    // A host name is resolved by DNS; port 443 means TLS, with the name as
    // SNI and as the name the certificate must carry, and the system CAs.
    let idp = cluster(&bootstrap, "idp");
    assert_eq!(idp["type"], "LOGICAL_DNS", "{bootstrap}");
    assert_eq!(idp["dns_lookup_family"], "V4_PREFERRED");
    let tls = &idp["transport_socket"];
    assert_eq!(tls["name"], "envoy.transport_sockets.tls");
    assert_eq!(
        tls["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    assert_eq!(tls["typed_config"]["sni"], "sso.example.com");
    let validation = &tls["typed_config"]["common_tls_context"]["validation_context"];
    assert_eq!(
        validation["trusted_ca"]["filename"],
        "/etc/ssl/certs/ca-certificates.crt"
    );
    assert_eq!(
        validation["match_typed_subject_alt_names"],
        serde_json::json!([{"san_type": "DNS", "matcher": {"exact": "sso.example.com"}}])
    );
    // An IP address is STATIC; without sni= its certificate must name the IP.
    let revocations = cluster(&bootstrap, "revocations");
    assert_eq!(revocations["type"], "STATIC");
    assert!(revocations.get("dns_lookup_family").is_none());
    let context = &revocations["transport_socket"]["typed_config"];
    assert!(context.get("sni").is_none(), "{context}");
    assert_eq!(
        context["common_tls_context"]["validation_context"],
        serde_json::json!({
            "trusted_ca": {"filename": "/etc/warden/idp-ca.pem"},
            "match_typed_subject_alt_names": [{"san_type": "IP_ADDRESS", "matcher": {"exact": "10.0.0.7"}}],
        })
    );
    // `plaintext` turns TLS off even on 443; `sni=` turns it on.
    assert!(
        cluster(&bootstrap, "internal")
            .get("transport_socket")
            .is_none()
    );
    let pinned = cluster(&bootstrap, "pinned");
    let pinned = &pinned["transport_socket"]["typed_config"];
    assert_eq!(pinned["sni"], "keys.example.com");
    assert_eq!(
        pinned["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]
            ["exact"],
        "keys.example.com"
    );
    // The comment block says what each cluster trusts.
    assert!(
        bootstrap.contains("# - Cluster `internal`: plain HTTP, no TLS"),
        "{bootstrap}"
    );
    // The MCP server's address is a DNS name too when given as one.
    let named = envoy_bootstrap("examples/policy.yaml", &["--upstream", "mcp.internal:8000"]);
    assert_eq!(cluster(&named, "mcp_server")["type"], "LOGICAL_DNS");
    let plain = envoy_bootstrap("examples/policy.yaml", &[]);
    assert_eq!(cluster(&plain, "mcp_server")["type"], "STATIC");
}

#[test]
fn envoy_refuses_unusable_cluster_options() {
    for (cluster, message) in [
        ("idp=h:443,plaintext,tls", "cannot be both"),
        ("idp=h:443,plaintext,ca=/x", "cannot be both"),
        ("idp=h:443,mtls", "`mtls` is not an option"),
        ("idp=h:443,sni=", "`sni=` is not an option"),
        ("idp=:443", "has no host"),
        ("idp", "is not NAME=HOST:PORT"),
        ("mcp_server=127.0.0.1:1", "not a usable cluster name"),
    ] {
        let out = warden(&[
            "envoy",
            "examples/policy.yaml",
            "--wasm",
            "w.wasm",
            "--cluster",
            cluster,
        ]);
        assert_eq!(out.status.code(), Some(2), "{cluster}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(message), "{cluster}: {stderr}");
    }
}

/// Lower-case hex SHA-256 of a file.
fn sha256_of(path: &std::path::Path) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(std::fs::read(path).expect("read the file"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn version_names_the_cli_and_the_module_it_runs() {
    let wasm = repo().join("target/warden_filter.wasm");
    let wasm_arg = wasm.to_str().unwrap();
    let out = warden(&["version", "--wasm", wasm_arg]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        stdout.starts_with(&format!("warden {version} (git ")),
        "{stdout}"
    );
    // What the module itself logs at VM start.
    assert!(
        stdout.contains(&format!("filter module: warden-filter {version} (git ")),
        "{stdout}"
    );
    assert!(stdout.contains("(--wasm)"), "{stdout}");
    assert!(
        stdout.contains(&format!("sha256: {}", sha256_of(&wasm))),
        "{stdout}"
    );
    // --version says the same of the CLI.
    let short = text(&warden(&["--version"]).stdout);
    assert_eq!(
        short.lines().next(),
        stdout.lines().next(),
        "{short} / {stdout}"
    );
    // An explicit module that is not there is an error, never a fallback.
    let missing = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["version"])
        .env("WARDEN_WASM", "/nonexistent/warden_filter.wasm")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stdout).contains("/nonexistent/warden_filter.wasm ($WARDEN_WASM)"),
        "{}",
        text(&missing.stdout)
    );
}

#[test]
fn the_embedded_module_is_the_one_version_reports() {
    let out = warden(&["version"]);
    let stdout = text(&out.stdout);
    if !out.status.success() {
        // Built before the filter: it says so instead of using another file.
        assert!(stdout.contains("built without a filter module"), "{stdout}");
        return;
    }
    assert!(stdout.contains("from:   embedded in this CLI"), "{stdout}");
    let scratch = Scratch::new("embedded");
    let written = scratch.write("placeholder", "");
    let out = warden(&["wasm", "-o", written.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let digest = sha256_of(&written);
    assert!(text(&out.stdout).starts_with(&digest));
    assert!(stdout.contains(&format!("sha256: {digest}")), "{stdout}");
}

#[test]
fn envoy_asks_for_every_cluster_discovery_may_fetch_keys_through() {
    let scratch = Scratch::new("key-set-hosts");
    let mut document = compiled_example_policy();
    let issuer = &mut document["identity"]["issuers"][0];
    issuer.as_object_mut().unwrap().remove("jwks");
    issuer["jwks_fetch"] = serde_json::json!({
        "cluster": "idp", "path": "/.well-known/openid-configuration", "discovery": true,
        "key_set_hosts": {"www.googleapis.com": "google_keys"}
    });
    let policy = scratch.write("discovery.json", &document.to_string());
    let policy = policy.to_str().unwrap();

    let out = warden(&[
        "envoy",
        policy,
        "--wasm",
        "w.wasm",
        "--cluster",
        "idp=127.0.0.1:9000",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(
            "the policy fetches documents through cluster `google_keys`: give --cluster google_keys=HOST:PORT"
        ),
        "{}",
        text(&out.stderr)
    );
    let bootstrap = envoy_bootstrap(
        policy,
        &[
            "--cluster",
            "idp=127.0.0.1:9000",
            "--cluster",
            "google_keys=127.0.0.1:9001",
        ],
    );
    assert!(bootstrap.contains("- name: google_keys"), "{bootstrap}");
    assert_eq!(
        plugin_configuration(&bootstrap)["identity"]["issuers"][0]["jwks_fetch"]["key_set_hosts"],
        serde_json::json!({"www.googleapis.com": "google_keys"})
    );
}
