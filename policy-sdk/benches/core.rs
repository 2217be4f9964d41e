//! Cost of the decision core, natively: token verification cold and cached,
//! body decoding, policy evaluation by policy size, and the whole gate: one
//! request's lifecycle through `Exchange` on the in-memory host (headers,
//! body, decision, audit line, end of stream), the state machine the filter
//! runs; sealing and unsealing session ids; cutting a 100-tool list.
//! `cargo bench -p warden-policy-sdk --features testing --bench core`.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark without its inputs cannot run"
)]

use std::hint::black_box;
use std::rc::Rc;

use criterion::{Criterion, criterion_group, criterion_main};
use policy_sdk::identity::{IdentityConfig, TokenVerifier};
use policy_sdk::json::JsonLimits;
use policy_sdk::mcp::{Decoding, decode_body};
use policy_sdk::testing::{
    DemoAlg, DemoIssuer, GATE_BODY, TEST_NOW, demo_identity_json, gate_document, gate_request,
    run_gate, standard_claims,
};
use policy_sdk::{CompiledPolicy, Warden};
use serde_json::json;

const BODY: &str = GATE_BODY;

fn verifier(cache_entries: usize) -> TokenVerifier {
    let mut config: IdentityConfig = serde_json::from_value(demo_identity_json()).unwrap();
    config.cache.max_entries = cache_entries;
    TokenVerifier::new(&config).unwrap()
}

fn tokens(c: &mut Criterion) {
    let issuer = DemoIssuer::new().unwrap();
    let token = issuer
        .token(
            TEST_NOW,
            json!({"groups": ["eng"], "act": {"sub": "research-agent", "actor_type": "agent"}}),
        )
        .unwrap();
    let cold = verifier(0);
    c.bench_function("token/es256/cold", |b| {
        b.iter(|| cold.verify(black_box(&token), TEST_NOW).unwrap())
    });
    let cached = verifier(1024);
    c.bench_function("token/es256/cached", |b| {
        b.iter(|| cached.verify(black_box(&token), TEST_NOW).unwrap())
    });
    // Most identity providers sign with RS256; EdDSA is the third family the
    // demo key set serves. Both cold: the signature is what differs.
    for alg in [DemoAlg::RS256, DemoAlg::EdDSA] {
        let token = issuer
            .sign(alg, &standard_claims(TEST_NOW, json!({"groups": ["eng"]})))
            .unwrap();
        let name = format!("token/{}/cold", alg.name().to_ascii_lowercase());
        c.bench_function(&name, |b| {
            b.iter(|| cold.verify(black_box(&token), TEST_NOW).unwrap())
        });
    }
}

/// The identity from `jwt_authn`'s verified payload (`verified_by:
/// jwt_authn`): the metadata message read, its canonical form looked up,
/// and on a miss the claims decoded and checked. `fresh` cycles through more
/// payloads than the cache holds, as the proxy benchmark's fresh tokens do.
fn verified_payloads(c: &mut Criterion) {
    use policy_sdk::identity::envoy_metadata::{
        JWT_AUTHN_NAMESPACE, encode_verified_payload, namespace_struct,
    };
    let messages: Vec<Vec<u8>> = (0..4096)
        .map(|n| {
            let claims = standard_claims(
                TEST_NOW,
                json!({"groups": ["eng"], "jti": format!("token-{n}")}),
            );
            encode_verified_payload(
                JWT_AUTHN_NAMESPACE,
                "jwt_payload",
                claims.as_object().unwrap(),
            )
        })
        .collect();
    let verifier = verifier(1024);
    let accept = |message: &[u8]| {
        let verified = namespace_struct(message, JWT_AUTHN_NAMESPACE)
            .unwrap()
            .unwrap();
        verifier.accept_verified(&verified, TEST_NOW).unwrap()
    };
    let first = messages.first().unwrap();
    c.bench_function("token/jwt_authn/repeated", |b| {
        b.iter(|| accept(black_box(first)))
    });
    let mut next = messages.iter().cycle();
    c.bench_function("token/jwt_authn/fresh", |b| {
        b.iter(|| accept(black_box(next.next().unwrap())))
    });
}

fn decoding(c: &mut Criterion) {
    c.bench_function("body/decode", |b| {
        b.iter(|| {
            decode_body(
                black_box(BODY.as_bytes()),
                Decoding::new(JsonLimits::default()),
            )
            .unwrap()
        })
    });
    c.bench_function("body/serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(BODY.as_bytes())).unwrap())
    });
}

fn policy_of(n: usize) -> CompiledPolicy {
    let mut rules = Vec::with_capacity(n);
    for i in 0..n - 1 {
        rules.push(json!({"id": format!("r{i}"), "effect": "allow", "owner": "o", "principal": {"groups": [format!("g{i}")]}, "tools": [format!("tool_{i}")]}));
    }
    rules.push(json!({"id": "deploy-staging", "effect": "allow", "owner": "o", "principal": {"types": ["human"]}, "tools": ["deploy"],
        "arguments": [{"pointer": "/environment", "equals": "staging"}, {"pointer": "/replicas", "range": {"min": 1, "max": 10}}]}));
    let rules: Vec<policy_sdk::policy::RuleSource> = serde_json::from_value(json!(rules)).unwrap();
    CompiledPolicy::compile(&rules, &Default::default()).unwrap()
}

fn evaluation(c: &mut Criterion) {
    let issuer = DemoIssuer::new().unwrap();
    let identity = verifier(0)
        .verify(
            &issuer.token(TEST_NOW, json!({"groups": ["eng"]})).unwrap(),
            TEST_NOW,
        )
        .unwrap();
    let request = decode_body(BODY.as_bytes(), Decoding::new(JsonLimits::default())).unwrap();
    for n in [10, 1_000, 10_000] {
        let policy = policy_of(n);
        assert!(policy.decide(&identity, &request).is_allowed());
        c.bench_function(&format!("policy/decide/{n}_rules"), |b| {
            b.iter(|| policy.decide(black_box(&identity), black_box(&request)))
        });
    }
}

fn gate(c: &mut Criterion) {
    let warden = Rc::new(Warden::from_json(&gate_document().to_string()).unwrap());
    let authorization = DemoIssuer::new()
        .unwrap()
        .token(TEST_NOW, json!({}))
        .unwrap();
    let request = gate_request(&format!("Bearer {authorization}"));
    let now = u128::from(TEST_NOW) * 1_000_000_000;
    // The filter's default header mode (stream), on a host that honours a
    // header pause; the token is in the verifier's cache after the first
    // iteration.
    c.bench_function("gate/whole_decision/cached_token", |b| {
        // The audit line the filter writes included.
        b.iter(|| black_box(run_gate(&warden, &request, now).unwrap()))
    });
}

/// Sealing the server's session id into the response, and unsealing and
/// checking it on each request: a 36-character id (a UUID, as the SDK
/// servers make), a key from bytes (the host key is read per use), and a
/// configured key compiled once.
fn sessions(c: &mut Criterion) {
    use policy_sdk::sealing::{SessionKey, open, seal};
    let raw = [0x5a_u8; 32];
    let key = SessionKey::new(&raw).unwrap();
    let binding = r#"["https://idp.demo.warden.test","alice","research-agent"]"#;
    let server_id = "0d9c6b5e-4f7a-4c1e-9a33-2f8b7e61c0d4";
    let sealed = seal(&key, server_id, binding).unwrap();
    c.bench_function("session/seal", |b| {
        b.iter(|| seal(black_box(&key), black_box(server_id), black_box(binding)).unwrap())
    });
    c.bench_function("session/unseal", |b| {
        let keys = [key.clone()];
        b.iter(|| open(black_box(&keys), black_box(&sealed), black_box(binding)).unwrap())
    });
    c.bench_function("session/unseal_with_host_key", |b| {
        b.iter(|| {
            let keys = [SessionKey::new(black_box(&raw)).unwrap()];
            open(&keys, black_box(&sealed), black_box(binding)).unwrap()
        })
    });
}

/// The `tools/list` answer of `make bench`'s list variants
/// (`bench/bench.py`'s `tool_catalogue`): 100 tools, every other one
/// `read_…`, which the rule below lets a human use; the rest are cut.
fn tool_catalogue() -> String {
    let tools: Vec<_> = (0..100)
        .map(|i| {
            let verb = if i % 2 == 0 { "read" } else { "write" };
            json!({
                "name": format!("{verb}_dataset_{i:03}"),
                "description": format!("{verb} records of dataset {i:03} in the analytics warehouse."),
                "inputSchema": {"type": "object", "properties": {
                    "filter": {"type": "string", "description": "Row filter expression"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                }, "required": ["filter"]},
            })
        })
        .collect();
    json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": tools}}).to_string()
}

/// Cutting a 100-tool list (29 KB) for a caller allowed half of it, as JSON
/// and as an event stream, beside parsing the same body into a tree.
fn lists(c: &mut Criterion) {
    use policy_sdk::listing::ListCutter;
    let identity = verifier(0)
        .verify(
            &DemoIssuer::new()
                .unwrap()
                .token(TEST_NOW, json!({}))
                .unwrap(),
            TEST_NOW,
        )
        .unwrap();
    let rules: Vec<policy_sdk::policy::RuleSource> = serde_json::from_value(json!([
        {"id": "read", "effect": "allow", "owner": "o", "principal": {"types": ["human"]}, "tools": ["read_*"]}
    ]))
    .unwrap();
    let policy = CompiledPolicy::compile(&rules, &Default::default()).unwrap();
    let cutter = ListCutter {
        policy: &policy,
        identity: &identity,
        limits: JsonLimits::default(),
    };
    let body = tool_catalogue();
    let cut = cutter.json_body(body.as_bytes()).unwrap();
    assert_eq!(cut.lists.first().map(|list| list.kept), Some(50));
    c.bench_function("list/cut/100_tools_json", |b| {
        b.iter(|| cutter.json_body(black_box(body.as_bytes())).unwrap())
    });
    // The same list as one SSE event, as a Streamable HTTP server answers
    // a POST, arriving in 16 KB chunks (an Envoy read).
    let event = format!("event: message\ndata: {body}\n\n");
    let chunks: Vec<&[u8]> = event.as_bytes().chunks(16 * 1024).collect();
    c.bench_function("list/cut/100_tools_sse", |b| {
        b.iter(|| {
            let mut stream = policy_sdk::listing::EventStream::default();
            for (n, chunk) in chunks.iter().enumerate() {
                black_box(stream.push(&cutter, chunk, n + 1 == chunks.len()).unwrap());
            }
        })
    });
    c.bench_function("list/serde_json_value/100_tools_json", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body.as_bytes())).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = tokens, verified_payloads, decoding, evaluation, gate, sessions, lists
}
criterion_main!(benches);
