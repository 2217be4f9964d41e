//! The token parser and verifier: arbitrary compact JWS text, and arbitrary
//! claims signed with the demo keys (so the claim checks behind the
//! signature check are reached too), verified against the demo key set.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use policy_sdk::identity::{IdentityConfig, TokenVerifier};
use policy_sdk::testing::{self, DEMO_AUDIENCE, DEMO_ISSUER, DemoAlg, DemoIssuer, TEST_NOW};
use serde_json::Value;

thread_local! {
    // Not `Sync` (its caches are `RefCell`s): one per thread.
    static VERIFIER: &'static TokenVerifier = Box::leak(Box::new({
        let config: IdentityConfig = match serde_json::from_value(testing::demo_identity_json()) {
            Ok(config) => config,
            Err(e) => panic!("demo identity section: {e}"),
        };
        match TokenVerifier::new(&config) {
            Ok(verifier) => verifier,
            Err(e) => panic!("demo key set: {e}"),
        }
    }));
}

fn verifier() -> &'static TokenVerifier {
    VERIFIER.with(|verifier| *verifier)
}

static ISSUER: LazyLock<DemoIssuer> = LazyLock::new(|| match DemoIssuer::new() {
    Ok(issuer) => issuer,
    Err(e) => panic!("demo keys: {e}"),
});

/// Verifies twice (the second answer comes from the cache when the first
/// was an identity) and checks what an accepted token must hold.
fn check(token: &str) {
    let first = verifier().verify(token, TEST_NOW);
    let second = verifier().verify(token, TEST_NOW);
    assert_eq!(
        first.as_ref().map_err(ToString::to_string),
        second.as_ref().map_err(ToString::to_string),
        "the cached answer differs"
    );
    if let Ok(identity) = first {
        assert_eq!(identity.issuer, DEMO_ISSUER);
        let _ = (
            identity.chain(),
            identity.delegation_depth(),
            identity.acting(),
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let alg = match mode % 4 {
        1 => DemoAlg::EdDSA,
        2 => DemoAlg::ES256,
        _ => {
            // Raw text, as an `Authorization` header and as a bare token.
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(token) = TokenVerifier::bearer_token(Some(text)) {
                check(token);
            }
            check(text);
            return;
        }
    };
    // Claims signed with a demo key: the verifier must still refuse what the
    // policy's issuer section does not allow.
    let Ok(claims @ Value::Object(_)) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let Ok(token) = ISSUER.sign(alg, &claims) else {
        return;
    };
    if verifier().verify(&token, TEST_NOW).is_ok() {
        assert_eq!(claims.get("iss").and_then(Value::as_str), Some(DEMO_ISSUER));
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == DEMO_AUDIENCE,
            Some(Value::Array(auds)) => auds.iter().any(|a| a == DEMO_AUDIENCE),
            _ => false,
        };
        assert!(audience_ok, "a token without the audience was accepted");
    }
    check(&token);
});
