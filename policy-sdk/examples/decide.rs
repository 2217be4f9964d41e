//! Judges JSON-RPC requests against a policy, one per line, for
//! differential tests that need many decisions without Envoy or the
//! wasmtime CLI (`tests/readers/test_argument_readings.py`).
//!
//! ```sh
//! cargo run -p warden-policy-sdk --features yaml,testing --example decide -- policy.yaml
//! ```
//!
//! Each input line is `{"claims": {...}, "body": {...}}` (or `"body_text"`:
//! the body as raw JSON text, for spellings a JSON value cannot carry, such
//! as duplicate keys and escapes): the claims are
//! merged over the demo issuer's defaults and signed with the demo keys
//! (so the policy must trust `examples/keys/demo.jwks.json`), the token is
//! verified by the policy's verifier, the body is read by the JSON-RPC
//! decoder and judged by the compiled policy — the code the filter runs.
//! Each output line is `{"decision": "allow" | "deny", "rule": …, "reason": …,
//! "tool": …}`, `tool` being the tool name as the decoder read it.

use std::io::{BufRead, Write};

use anyhow::{Context, bail};
use policy_sdk::json::JsonLimits;
use policy_sdk::mcp::{Decoding, decode_body};
use policy_sdk::testing::{DemoIssuer, TEST_NOW};
use policy_sdk::{PolicyDocument, Warden};
use serde_json::{Value, json};

fn main() -> anyhow::Result<()> {
    let Some(path) = std::env::args().nth(1) else {
        bail!("usage: decide POLICY.yaml < requests.jsonl");
    };
    let document = PolicyDocument::load_file(std::path::Path::new(&path))?;
    let warden = Warden::compile(&document).map_err(|e| anyhow::anyhow!("{e}"))?;
    let issuer = DemoIssuer::new()?;
    let limits = JsonLimits {
        max_bytes: warden.settings().max_body_bytes,
        max_depth: warden.settings().max_json_depth,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let input: Value = serde_json::from_str(&line).context("reading an input line")?;
        let claims = input.get("claims").cloned().unwrap_or_else(|| json!({}));
        let body = match (input.get("body"), input.get("body_text")) {
            (_, Some(Value::String(text))) => text.clone().into_bytes(),
            (Some(body), _) => serde_json::to_vec(body)?,
            _ => bail!("a line needs `body` or a string `body_text`"),
        };
        let token = issuer.token(TEST_NOW, claims)?;
        let identity = warden
            .verifier()
            .verify(&token, TEST_NOW)
            .map_err(|e| anyhow::anyhow!("token refused: {e}"))?;
        let answer = match decode_body(&body, Decoding::new(limits)) {
            Ok(request) => {
                let decision = warden.policy().decide(&identity, &request);
                json!({
                    "decision": decision.effect.as_str(),
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "tool": request.tool_name(),
                })
            }
            Err(error) => {
                json!({"decision": "deny", "rule": null, "reason": error.to_string(), "tool": null})
            }
        };
        writeln!(out, "{answer}")?;
    }
    Ok(())
}
