//! Wycheproof vectors (`tests/data/wycheproof`, a copy kept in the
//! repository) through Warden's own verification path: the JWK from each test
//! group is read by the same `parse_jwks` that reads an identity provider's
//! key set, and each signature goes through the same `VerifierKey::verify`
//! that checks a token.
//! `valid` must verify; `invalid` and `acceptable` (legacy encodings a strict
//! JWS verifier refuses) must not.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test vectors are trusted test input; a malformed file should fail loudly"
)]

use std::path::PathBuf;

use policy_sdk::identity::{Algorithm, parse_jwks};
use serde_json::{Value, json};

fn vectors(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/wycheproof/testvectors_v1")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The group's JWK, or one written from its uncompressed EC point when the
/// vectors give none (some special but valid P-256 keys).
fn jwk_of(group: &Value, jwk_field: &str) -> Option<Value> {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    if group[jwk_field].is_object() {
        return Some(group[jwk_field].clone());
    }
    let point = hex(group["publicKey"]["uncompressed"].as_str()?);
    let (x, y) = point.get(1..)?.split_at(32);
    Some(json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)}))
}

struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    wrong: Vec<String>,
}

fn run(file: &str, alg: Algorithm, jwk_field: &str) -> Tally {
    let doc = vectors(file);
    let mut tally = Tally {
        valid: 0,
        invalid: 0,
        acceptable: 0,
        wrong: Vec::new(),
    };
    for group in doc["testGroups"].as_array().unwrap() {
        let key = jwk_of(group, jwk_field).and_then(|jwk| {
            let mut jwk = jwk.as_object()?.clone();
            // The vectors' `kid` is a placeholder; the key is the point.
            jwk.remove("kid");
            parse_jwks(&json!({"keys": [jwk]}), &[alg])
                .ok()?
                .into_iter()
                .next()
        });
        for test in group["tests"].as_array().unwrap() {
            let id = test["tcId"].as_u64().unwrap();
            let result = test["result"].as_str().unwrap();
            let verified = key.as_ref().is_some_and(|k| {
                k.verify(
                    alg,
                    &hex(test["msg"].as_str().unwrap()),
                    &hex(test["sig"].as_str().unwrap()),
                )
            });
            match result {
                "valid" => tally.valid += 1,
                "invalid" => tally.invalid += 1,
                _ => tally.acceptable += 1,
            }
            if verified != (result == "valid") {
                tally.wrong.push(format!(
                    "{file} tc {id} ({result}, {}): verified={verified}",
                    test["comment"]
                ));
            }
        }
    }
    tally
}

/// Runs every vector of `file`, which must hold exactly `expected` vectors:
/// (valid, invalid, acceptable), as counted in `tests/data/README.md`.
fn check(file: &str, alg: Algorithm, jwk_field: &str, expected: (usize, usize, usize)) {
    let t = run(file, alg, jwk_field);
    let total = t.valid + t.invalid + t.acceptable;
    assert_eq!(
        (t.valid, t.invalid, t.acceptable),
        expected,
        "{file}: vectors seen (valid, invalid, acceptable)"
    );
    assert!(
        t.wrong.is_empty(),
        "{} of {total} vectors wrong:\n{}",
        t.wrong.len(),
        t.wrong.join("\n")
    );
}

#[test]
fn es256_p1363() {
    check(
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Algorithm::ES256,
        "publicKeyJwk",
        (173, 89, 0),
    );
}

#[test]
fn ed25519() {
    check(
        "ed25519_test.json",
        Algorithm::EdDSA,
        "publicKeyJwk",
        (88, 63, 0),
    );
}

#[test]
fn rs256_pkcs1() {
    check(
        "rsa_signature_2048_sha256_test.json",
        Algorithm::RS256,
        "keyJwk",
        (9, 249, 1),
    );
}
