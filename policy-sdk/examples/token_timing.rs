//! Cold token verification, timed per signature algorithm inside the
//! program. Built for `wasm32-wasip1` and run in V8 by `bench/v8_tokens.mjs`
//! (Node's WASI, the engine Envoy embeds), it gives what a fresh token costs
//! the filter's Wasm in seconds, where the proxy benchmark takes minutes.
//! `make bench` runs it beside criterion; by hand:
//!
//! ```sh
//! cargo build --release --target wasm32-wasip1 -p warden-policy-sdk \
//!     --features testing --example token_timing
//! node bench/v8_tokens.mjs target/wasm32-wasip1/release/examples/token_timing.wasm [BATCH] [ALG]
//! ```
//!
//! The verifier has no cache, so every call verifies the signature; each
//! algorithm is warmed up (its key's table built, V8's optimizing tier
//! reached), then timed in batches. The output is criterion's layout,
//! `v8/token/<alg>/cold` and `time: [fastest median slowest]` over the
//! batches' means, so the benchmark report reads both the same way.

use std::hint::black_box;
use std::time::Instant;

use anyhow::Context as _;
use policy_sdk::identity::{IdentityConfig, TokenVerifier};
use policy_sdk::testing::{DemoAlg, DemoIssuer, TEST_NOW, demo_identity_json, standard_claims};
use serde_json::json;

const BATCHES: usize = 9;
const WARM_UP: u32 = 30;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let batch: u32 = match args.next() {
        Some(n) => n
            .parse()
            .context("BATCH must be a number of verifications")?,
        None => 100,
    };
    let only = args.next().unwrap_or_default();
    let mut config: IdentityConfig = serde_json::from_value(demo_identity_json())?;
    config.cache.max_entries = 0;
    let verifier = TokenVerifier::new(&config)?;
    let issuer = DemoIssuer::new()?;
    for alg in [DemoAlg::ES256, DemoAlg::RS256, DemoAlg::EdDSA] {
        if !only.is_empty() && !alg.name().eq_ignore_ascii_case(&only) {
            continue;
        }
        let token = issuer.sign(alg, &standard_claims(TEST_NOW, json!({"groups": ["eng"]})))?;
        for _ in 0..WARM_UP {
            verifier.verify(&token, TEST_NOW)?;
        }
        let mut means = Vec::with_capacity(BATCHES);
        for _ in 0..BATCHES {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(verifier.verify(black_box(&token), TEST_NOW)?);
            }
            means.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(batch));
        }
        means.sort_by(f64::total_cmp);
        let (fastest, slowest) = (means.first(), means.last());
        let median = means.get(BATCHES / 2);
        if let (Some(fastest), Some(median), Some(slowest)) = (fastest, median, slowest) {
            println!("v8/token/{}/cold", alg.name().to_ascii_lowercase());
            println!("  time: [{fastest:.2} µs {median:.2} µs {slowest:.2} µs]");
        }
    }
    Ok(())
}
