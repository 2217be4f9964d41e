//! The strict decoder against JSONTestSuite (`../shared/corpus/JSONTestSuite`):
//! every `y_` file accepted (within Warden's depth bound), every `n_` file
//! rejected, every `i_` file answered without a panic or a hang.

use std::path::PathBuf;

use policy_sdk::json::{JsonLimits, parse_strict};
use policy_sdk::mcp::decode_body;

fn corpus() -> PathBuf {
    let dir = std::env::var_os("WARDEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let suite = dir.join("JSONTestSuite/test_parsing");
    assert!(
        suite.is_dir(),
        "JSONTestSuite not found at {}: the corpus lives in shared/corpus beside the repository (or set WARDEN_CORPUS)",
        suite.display()
    );
    suite
}

#[test]
fn json_test_suite() {
    let limits = JsonLimits {
        max_bytes: 1 << 20,
        max_depth: 64,
    };
    let (mut accepted, mut rejected, mut implementation_defined) = (0, 0, 0);
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let result = parse_strict(&bytes, limits);
        // The MCP decoder must never panic either, whatever the input.
        let _ = decode_body(&bytes, limits);
        match name.get(..2) {
            Some("y_") => {
                accepted += 1;
                if let Err(e) = result {
                    // Accepted documents that only fail on duplicate keys are
                    // refused on purpose (a parser differential is a bypass).
                    if !e.to_string().contains("duplicate key") {
                        wrong.push(format!("{name}: rejected valid JSON: {e}"));
                    }
                }
            }
            Some("n_") => {
                rejected += 1;
                if result.is_ok() {
                    wrong.push(format!("{name}: accepted invalid JSON"));
                }
            }
            _ => implementation_defined += 1,
        }
    }
    assert!(
        accepted > 90 && rejected > 180 && implementation_defined > 30,
        "corpus incomplete"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// List responses come from the upstream, not the client, but a broken or
/// hostile server must not crash the filter either: every corpus file, as a
/// JSON body, as SSE event data and as the `tools` array of an answer, is
/// filtered or refused, never a panic; and nothing unreadable passes.
#[test]
fn list_filtering_survives_the_corpus() {
    use policy_sdk::CompiledPolicy;
    use policy_sdk::identity::{ActorType, Identity, Principal};
    use policy_sdk::listing::{ListKind, filter_list_response};
    use policy_sdk::policy::{Defaults, RuleSource};
    use serde_json::json;

    let rules: Vec<RuleSource> = serde_json::from_value(json!([
        {"id": "search", "effect": "allow", "owner": "o", "tools": ["search_*"]},
    ]))
    .unwrap();
    let policy = CompiledPolicy::compile(&rules, &Defaults::default()).unwrap();
    let identity = Identity {
        issuer: "https://idp".into(),
        subject: Principal {
            subject: "alice".into(),
            actor_type: Some(ActorType::Human),
            groups: Vec::new(),
            roles: Vec::new(),
            scopes: Vec::new(),
            claims: serde_json::Map::new(),
        },
        actor: None,
        prior_actors: Vec::new(),
        client_id: None,
        token_id: None,
    };
    let id = json!(1);
    let mut filtered = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let sse = format!("event: message\ndata: {text}\n\n");
        let answer = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":{text}}}}}"#);
        for (content_type, body) in [
            ("application/json", bytes.clone()),
            ("text/event-stream", sse.into_bytes()),
            ("application/json", answer.into_bytes()),
        ] {
            if let Ok((out, summary)) = filter_list_response(
                &policy,
                &identity,
                ListKind::Tools,
                &id,
                content_type,
                &body,
                1 << 20,
            ) {
                filtered += 1;
                // Whatever passed answered nothing, or is a list of what
                // the caller may use.
                if summary.answered && summary.kept + summary.removed.len() > 0 {
                    let out = String::from_utf8_lossy(&out);
                    assert!(
                        summary
                            .removed
                            .iter()
                            .all(|r| !out.contains(&format!("\"name\":\"{r}\""))),
                        "{out}"
                    );
                }
            }
        }
    }
    assert!(filtered > 0);
}
