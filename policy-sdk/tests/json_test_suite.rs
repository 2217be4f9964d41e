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
