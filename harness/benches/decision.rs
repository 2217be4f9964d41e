//! Per-request cost of a decision: through the built `.wasm` in the harness
//! (a whole HTTP stream: context create, headers, body, done/log/delete)
//! against the native core (`judge_head` + `judge_body`).
//!
//! `cargo bench -p warden-harness --bench decision` (needs the built filter).

#![expect(clippy::panic, reason = "a benchmark without its inputs cannot run")]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use policy_sdk::testing::{DemoIssuer, TEST_NOW};
use policy_sdk::{BodyVerdict, HeadVerdict, RequestHead};
use serde_json::json;
use warden_harness::filter::{HttpRequest, WardenFilter, load_module, workspace_wasm};
use warden_harness::load::load_policy;

fn bench(c: &mut Criterion) {
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.yaml");
    let loaded = match load_policy(&policy) {
        Ok(loaded) => loaded,
        Err(d) => panic!("{d}"),
    };
    let config = loaded.plugin_configuration().unwrap_or_default();
    let module = match load_module(&workspace_wasm()) {
        Ok(module) => module,
        Err(e) => panic!("{e}"),
    };
    let issuer = DemoIssuer::new().unwrap_or_else(|e| panic!("{e}"));
    let token = issuer
        .token(TEST_NOW, json!({"groups": ["eng"]}))
        .unwrap_or_else(|e| panic!("{e}"));
    let bearer = format!("Bearer {token}");
    let cases = [
        (
            "allow",
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                   "params":{"name":"read_file","arguments":{"path":"/srv/internal/plan.md"}}}),
        ),
        (
            "deny",
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
                   "params":{"name":"delete_repo","arguments":{"name":"warden"}}}),
        ),
    ];
    for (name, body) in cases {
        let body = body.to_string();
        let mut filter =
            WardenFilter::start(&module, &config, TEST_NOW).unwrap_or_else(|e| panic!("{e}"));
        let request = HttpRequest::post(body.clone()).bearer(&token);
        c.bench_function(&format!("wasm/{name}"), |b| {
            b.iter(|| black_box(filter.handle(black_box(&request)).map(|e| e.forwarded())))
        });
        let length = body.len().to_string();
        c.bench_function(&format!("native/{name}"), |b| {
            b.iter(|| {
                let head = RequestHead {
                    method: "POST",
                    path: "/mcp",
                    authorization: Some(&bearer),
                    content_length: Some(&length),
                    content_type: Some("application/json"),
                    request_id: Some("bench"),
                    now_unix_nanos: u128::from(TEST_NOW) * 1_000_000_000,
                    ..RequestHead::default()
                };
                match loaded.warden.judge_head(black_box(&head)) {
                    HeadVerdict::ReadBody(identity) => matches!(
                        loaded.warden.judge_body(&identity, body.as_bytes(), &head),
                        BodyVerdict::Forward(_)
                    ),
                    _ => false,
                }
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
