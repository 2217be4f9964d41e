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
//!
//! With `ALG` empty or `gate`, it also times criterion's
//! `gate/whole_decision/cached_token` in Wasm
//! (`v8/gate/whole_decision/cached_token`, batches of ten times `BATCH`).

use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

use anyhow::Context as _;
use policy_sdk::Warden;
use policy_sdk::identity::{IdentityConfig, TokenVerifier};
use policy_sdk::testing::{
    DemoAlg, DemoIssuer, TEST_NOW, demo_identity_json, gate_document, gate_request, run_gate,
    standard_claims,
};
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
        let name = format!("v8/token/{}/cold", alg.name().to_ascii_lowercase());
        time_batches(&name, batch, || {
            black_box(verifier.verify(black_box(&token), TEST_NOW)?);
            Ok(())
        })?;
    }
    if only.is_empty() || only == "gate" {
        time_gate(&issuer, batch)?;
    }
    Ok(())
}

/// The whole gate with a cached token, as criterion's
/// `gate/whole_decision/cached_token` runs it natively: one request's
/// lifecycle through `Exchange` on the in-memory host, and its audit line.
fn time_gate(issuer: &DemoIssuer, batch: u32) -> anyhow::Result<()> {
    let warden = Rc::new(Warden::from_json(&gate_document().to_string())?);
    let request = gate_request(&format!("Bearer {}", issuer.token(TEST_NOW, json!({}))?));
    let now = u128::from(TEST_NOW) * 1_000_000_000;
    time_batches(
        "v8/gate/whole_decision/cached_token",
        batch.saturating_mul(10),
        || {
            black_box(run_gate(&warden, &request, now).map_err(anyhow::Error::msg)?);
            Ok(())
        },
    )
}

/// Runs `step` for warm-up, then in `BATCHES` batches of `batch`, and prints
/// the batches' means in criterion's layout.
fn time_batches(
    name: &str,
    batch: u32,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for _ in 0..WARM_UP {
        step()?;
    }
    let mut means = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..batch {
            step()?;
        }
        means.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(batch));
    }
    means.sort_by(f64::total_cmp);
    let (fastest, slowest) = (means.first(), means.last());
    let median = means.get(BATCHES / 2);
    if let (Some(fastest), Some(median), Some(slowest)) = (fastest, median, slowest) {
        println!("{name}");
        println!("  time: [{fastest:.2} µs {median:.2} µs {slowest:.2} µs]");
    }
    Ok(())
}
