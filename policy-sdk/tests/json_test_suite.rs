//! The strict decoder against JSONTestSuite (`tests/data/JSONTestSuite`, a
//! copy kept in the repository): every `y_` file accepted (within Warden's
//! depth bound), every `n_` file rejected, every `i_` file answered without a
//! panic or a hang.

use std::path::PathBuf;

use policy_sdk::json::{JsonLimits, parse_strict};
use policy_sdk::mcp::{Decoding, decode_body};

/// How many files of each kind `tests/data/JSONTestSuite/test_parsing` holds
/// (see `tests/data/README.md`): a missing or extra file fails the tests.
const ACCEPT_FILES: usize = 95;
const REJECT_FILES: usize = 188;
const IMPLEMENTATION_DEFINED_FILES: usize = 35;
const ALL_FILES: usize = ACCEPT_FILES + REJECT_FILES + IMPLEMENTATION_DEFINED_FILES;

/// Every file of the suite, sorted by name.
fn corpus() -> Vec<PathBuf> {
    let suite =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/JSONTestSuite/test_parsing");
    let entries = std::fs::read_dir(&suite);
    assert!(entries.is_ok(), "{}: {entries:?}", suite.display());
    // An entry that cannot be read is left out, and the count below fails.
    let mut files: Vec<PathBuf> = entries
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        ALL_FILES,
        "{} holds {} files, not {ALL_FILES}",
        suite.display(),
        files.len()
    );
    files
}

#[test]
fn json_test_suite() {
    let limits = JsonLimits {
        max_bytes: 1 << 20,
        max_depth: 64,
    };
    let (mut accepted, mut rejected, mut implementation_defined) = (0, 0, 0);
    let mut wrong = Vec::new();
    for path in corpus() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let result = parse_strict(&bytes, limits);
        // The MCP decoder must never panic either, whatever the input.
        let _ = decode_body(&bytes, Decoding::new(limits));
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
    assert_eq!(
        (accepted, rejected, implementation_defined),
        (ACCEPT_FILES, REJECT_FILES, IMPLEMENTATION_DEFINED_FILES),
        "files seen (y_, n_, other)"
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
    use policy_sdk::json::JsonLimits;
    use policy_sdk::listing::{EventStream, ListCutter};
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
            unclassified_reason: None,
            groups: Vec::new(),
            roles: Vec::new(),
            scopes: Vec::new(),
            claims: serde_json::Map::new(),
        },
        actor: None,
        prior_actors: Vec::new(),
        client_id: None,
        token_id: None,
        header_values: Default::default(),
        audit_names: Default::default(),
        session_binding: Default::default(),
    };
    let cutter = ListCutter {
        policy: &policy,
        identity: &identity,
        limits: JsonLimits::default(),
    };
    let (mut filtered, mut files) = (0, 0);
    for path in corpus() {
        files += 1;
        let bytes = std::fs::read(path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let sse = format!("event: message\ndata: {text}\n\n");
        let answer = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":{text}}}}}"#);
        let mut stream = EventStream::default();
        for cut in [
            cutter.json_body(&bytes),
            stream.push(&cutter, sse.as_bytes(), true),
            cutter.json_body(answer.as_bytes()),
        ] {
            let Ok(cut) = cut else { continue };
            filtered += 1;
            // Whatever passed holds none of what was removed.
            if let Some(out) = &cut.body {
                let out = String::from_utf8_lossy(out);
                for list in &cut.lists {
                    assert!(
                        list.removed
                            .iter()
                            .all(|r| !out.contains(&format!("\"name\":\"{r}\""))),
                        "{out}"
                    );
                }
            } else {
                assert!(cut.lists.iter().all(|list| list.removed.is_empty()));
            }
        }
    }
    assert_eq!(files, ALL_FILES);
    assert!(filtered > 0);
}
