//! Per-request cost of a decision: through the built `.wasm` in the harness
//! (a whole HTTP stream: context create, headers, body, done/log/delete)
//! against the same request lifecycle natively (`Exchange` driven through
//! the in-memory host: headers, body, decision, audit line, end of stream).
//!
//! `cargo bench -p warden-harness --bench decision` (needs the built filter).

#![expect(clippy::panic, reason = "a benchmark without its inputs cannot run")]

use std::hint::black_box;
use std::path::Path;
use std::rc::Rc;

use criterion::{Criterion, criterion_group, criterion_main};
use policy_sdk::exchange::memory::{Driver, HeaderPause, MemoryHost, Request};
use policy_sdk::testing::{DemoIssuer, TEST_NOW};
use policy_sdk::{Exchange, Warden};
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
    let warden = Rc::new(loaded.warden);
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
        // What the harness sends the `.wasm` (see `WardenFilter::send`).
        let header = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        let native = Request {
            headers: vec![
                header(":method", "POST"),
                header(":path", "/mcp"),
                header(":authority", "mcp.demo.warden.test"),
                header(":scheme", "http"),
                header("content-length", &body.len().to_string()),
                header("x-request-id", "bench"),
                header("content-type", "application/json"),
                header("authorization", &bearer),
            ],
            chunks: vec![body.into_bytes()],
            trailers: None,
            dynamic_metadata: None,
        };
        let (forwarded, _) = native_stream(&warden, &native);
        assert_eq!(forwarded, name == "allow", "native/{name}");
        c.bench_function(&format!("native/{name}"), |b| {
            b.iter(|| black_box(native_stream(&warden, black_box(&native))))
        });
    }
}

/// One stream through the request lifecycle on the in-memory host, as the
/// filter runs it: whether the request went on, and the audit line.
fn native_stream(warden: &Rc<Warden>, request: &Request) -> (bool, Option<String>) {
    let mut exchange = Exchange::new(Some(Rc::clone(warden)));
    let host = MemoryHost::new(u128::from(TEST_NOW) * 1_000_000_000, HeaderPause::Honoured);
    let mut driver = Driver::new(&mut exchange, host);
    driver.send_request(request);
    driver.finish();
    let forwarded = driver.host.reply.is_none() && driver.host.request.sent_headers.is_some();
    let line = driver.host.decisions().first().map(|a| a.to_json_line());
    (forwarded, line)
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
