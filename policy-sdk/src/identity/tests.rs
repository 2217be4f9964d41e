use serde_json::{Value, json};

use super::*;
use crate::testing::{
    DemoAlg, DemoIssuer, TEST_NOW, demo_identity_json, raw_token, standard_claims,
};
use jwt_simple::prelude::{
    Audiences, Duration, ECDSAP256KeyPairLike, ECDSAP384KeyPairLike, ES256KeyPair, ES384KeyPair,
    JWTClaims,
};

fn config() -> IdentityConfig {
    serde_json::from_value(demo_identity_json()).unwrap()
}

fn verifier() -> TokenVerifier {
    TokenVerifier::new(&config()).unwrap()
}

fn verify(token: &str) -> Result<Rc<Identity>, TokenError> {
    verifier().verify(token, TEST_NOW)
}

fn issuer() -> DemoIssuer {
    DemoIssuer::new().unwrap()
}

#[test]
fn accepts_each_allowed_algorithm() {
    let issuer = issuer();
    for alg in [DemoAlg::ES256, DemoAlg::RS256, DemoAlg::EdDSA] {
        let token = issuer
            .sign(alg, &standard_claims(TEST_NOW, json!({})))
            .unwrap();
        let identity = verify(&token).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(identity.subject.subject, "alice");
        assert_eq!(identity.subject.actor_type, Some(ActorType::Human));
    }
}

#[test]
fn reads_groups_roles_scopes_and_client_id() {
    let token = issuer()
        .token(TEST_NOW, json!({"groups": ["eng", "ops"], "roles": "admin", "scope": "mcp:read  mcp:write", "azp": "cli-app", "jti": "t-1"}))
        .unwrap();
    let id = verify(&token).unwrap();
    assert_eq!(id.subject.groups, vec!["eng", "ops"]);
    assert_eq!(id.subject.roles, vec!["admin"]);
    assert_eq!(id.subject.scopes, vec!["mcp:read", "mcp:write"]);
    assert_eq!(id.client_id.as_deref(), Some("cli-app"));
    assert_eq!(id.token_id.as_deref(), Some("t-1"));
}

#[test]
fn reads_the_delegation_chain() {
    let token = issuer()
        .token(
            TEST_NOW,
            json!({"act": {"sub": "research-agent", "actor_type": "agent", "act": {"sub": "orchestrator", "actor_type": "service"}}}),
        )
        .unwrap();
    let id = verify(&token).unwrap();
    let actor = id.actor.as_ref().unwrap();
    assert_eq!(actor.subject, "research-agent");
    assert_eq!(actor.actor_type, Some(ActorType::Agent));
    assert_eq!(id.acting().subject, "research-agent");
    assert_eq!(id.chain(), vec!["alice", "research-agent", "orchestrator"]);
    assert_eq!(id.prior_actors.len(), 1);
}

#[test]
fn bounds_and_validates_the_chain() {
    let mut act = json!({"sub": "a0", "actor_type": "agent"});
    for i in 1..6 {
        act = json!({"sub": format!("a{i}"), "actor_type": "agent", "act": act});
    }
    let deep = issuer().token(TEST_NOW, json!({"act": act})).unwrap();
    assert_eq!(verify(&deep).unwrap_err(), TokenError::ChainTooDeep(4));
    let no_sub = issuer()
        .token(TEST_NOW, json!({"act": {"actor_type": "agent"}}))
        .unwrap();
    assert_eq!(
        verify(&no_sub).unwrap_err(),
        TokenError::NoSubject("act.sub".into())
    );
    let not_object = issuer().token(TEST_NOW, json!({"act": "agent"})).unwrap();
    assert_eq!(
        verify(&not_object).unwrap_err(),
        TokenError::BadClaim("act".into())
    );
}

#[test]
fn unmapped_actor_types_stay_unclassified() {
    let token = issuer()
        .token(TEST_NOW, json!({"actor_type": "robot"}))
        .unwrap();
    assert_eq!(verify(&token).unwrap().subject.actor_type, None);
    let token = issuer()
        .token(TEST_NOW, json!({"actor_type": null}))
        .unwrap();
    assert_eq!(verify(&token).unwrap().subject.actor_type, None);
}

#[test]
fn rejects_expired_not_yet_valid_and_skew() {
    let i = issuer();
    let expired = i.token(TEST_NOW, json!({"exp": TEST_NOW - 61})).unwrap();
    assert_eq!(verify(&expired).unwrap_err(), TokenError::Expired);
    // Within the default 60 s skew.
    let just_expired = i.token(TEST_NOW, json!({"exp": TEST_NOW - 30})).unwrap();
    assert!(verify(&just_expired).is_ok());
    let future = i.token(TEST_NOW, json!({"nbf": TEST_NOW + 120})).unwrap();
    assert_eq!(verify(&future).unwrap_err(), TokenError::NotYetValid);
    let no_exp = i.token(TEST_NOW, json!({"exp": null})).unwrap();
    assert_eq!(verify(&no_exp).unwrap_err(), TokenError::NoExpiry);
    let no_sub = i.token(TEST_NOW, json!({"sub": null})).unwrap();
    assert_eq!(
        verify(&no_sub).unwrap_err(),
        TokenError::NoSubject("sub".into())
    );
}

#[test]
fn checks_issuer_and_audience() {
    let i = issuer();
    let wrong_aud = i
        .token(TEST_NOW, json!({"aud": "https://other.example/mcp"}))
        .unwrap();
    assert_eq!(verify(&wrong_aud).unwrap_err(), TokenError::WrongAudience);
    let aud_list = i
        .token(
            TEST_NOW,
            json!({"aud": ["https://other.example", crate::testing::DEMO_AUDIENCE]}),
        )
        .unwrap();
    assert!(verify(&aud_list).is_ok());
    let no_aud = i.token(TEST_NOW, json!({"aud": null})).unwrap();
    assert_eq!(verify(&no_aud).unwrap_err(), TokenError::WrongAudience);
    let wrong_iss = i
        .token(TEST_NOW, json!({"iss": "https://evil.example"}))
        .unwrap();
    assert_eq!(
        verify(&wrong_iss).unwrap_err(),
        TokenError::UntrustedIssuer("https://evil.example".into())
    );
}

#[test]
fn rejects_alg_none_and_symmetric_algorithms() {
    let claims = standard_claims(TEST_NOW, json!({}));
    let none = raw_token(&json!({"alg": "none", "typ": "JWT"}), &claims, b"");
    assert_eq!(
        verify(&none).unwrap_err(),
        TokenError::AlgorithmNotAllowed("none".into())
    );
    let hs = raw_token(
        &json!({"alg": "HS256", "kid": "demo-es256"}),
        &claims,
        b"mac",
    );
    assert_eq!(
        verify(&hs).unwrap_err(),
        TokenError::AlgorithmNotAllowed("HS256".into())
    );
}

#[test]
fn rejects_bad_signatures() {
    let token = issuer().token(TEST_NOW, json!({})).unwrap();
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let mut sig_bytes: Vec<u8> = sig.bytes().collect();
    sig_bytes[5] = if sig_bytes[5] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{signed}.{}", String::from_utf8(sig_bytes).unwrap());
    assert!(verify(&tampered).unwrap_err() == TokenError::BadSignature);
    // Claims swapped after signing.
    let (header, _) = signed.split_once('.').unwrap();
    let other_claims = standard_claims(TEST_NOW, json!({"sub": "mallory"}));
    let forged = format!(
        "{header}.{}.{sig}",
        raw_token(&json!({}), &other_claims, b"")
            .split('.')
            .nth(1)
            .unwrap()
    );
    assert!(verify(&forged).unwrap_err() == TokenError::BadSignature);
}

#[test]
fn rejects_unknown_kid_mismatched_keys_and_crit() {
    let claims = standard_claims(TEST_NOW, json!({}));
    let unknown = raw_token(
        &json!({"alg": "ES256", "kid": "rotated-away"}),
        &claims,
        &[0; 64],
    );
    assert_eq!(
        verify(&unknown).unwrap_err(),
        TokenError::UnknownKey {
            issuer: crate::testing::DEMO_ISSUER.into(),
            kid: "rotated-away".into()
        }
    );
    let mismatch = raw_token(
        &json!({"alg": "ES256", "kid": "demo-rs256"}),
        &claims,
        &[0; 64],
    );
    assert!(
        verify(&mismatch).unwrap_err()
            == TokenError::AlgorithmNotAllowed("ES256 for key `demo-rs256`".into())
    );
    let crit = raw_token(
        &json!({"alg": "ES256", "kid": "demo-es256", "crit": ["exp"]}),
        &claims,
        &[0; 64],
    );
    assert_eq!(verify(&crit).unwrap_err(), TokenError::CriticalHeader);
    let dup = format!(
        "{}.{}.AA",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","alg":"none"}"#),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert!(matches!(
        verify(&dup).unwrap_err(),
        TokenError::BadHeader(_)
    ));
}

#[test]
fn ignores_keys_embedded_in_the_token_header() {
    // An attacker's own key in `jwk`/`jku` must not be used: the token below is
    // signed by a key that is not in the key set.
    let attacker = ES256KeyPair::generate().with_key_id("demo-es256");
    let claims = standard_claims(TEST_NOW, json!({}));
    let mut jwt: JWTClaims<Map<String, Value>> = JWTClaims {
        issued_at: None,
        expires_at: Some(Duration::from_secs(TEST_NOW + 600)),
        invalid_before: None,
        issuer: Some(crate::testing::DEMO_ISSUER.into()),
        subject: Some("alice".into()),
        audiences: Some(Audiences::AsString(crate::testing::DEMO_AUDIENCE.into())),
        jwt_id: None,
        nonce: None,
        custom: Map::new(),
    };
    jwt.custom
        .insert("actor_type".into(), claims["actor_type"].clone());
    let token = attacker.sign(jwt).unwrap();
    assert!(verify(&token).unwrap_err() == TokenError::BadSignature);
}

#[test]
fn bounds_token_size_and_shape() {
    let huge = "a".repeat(9000);
    assert!(matches!(
        verify(&huge).unwrap_err(),
        TokenError::TooLarge { .. }
    ));
    assert_eq!(verify("a.b").unwrap_err(), TokenError::Malformed);
    assert_eq!(verify("a.b.c.d").unwrap_err(), TokenError::Malformed);
    assert_eq!(verify("!!!.b.c").unwrap_err(), TokenError::Malformed);
}

#[test]
fn extracts_bearer_tokens() {
    assert_eq!(TokenVerifier::bearer_token(Some("Bearer abc")), Ok("abc"));
    assert_eq!(TokenVerifier::bearer_token(Some("bearer  abc ")), Ok("abc"));
    assert_eq!(TokenVerifier::bearer_token(None), Err(TokenError::Missing));
    assert_eq!(
        TokenVerifier::bearer_token(Some("Bearer ")),
        Err(TokenError::NotBearer)
    );
    assert_eq!(
        TokenVerifier::bearer_token(Some("Basic YTpi")),
        Err(TokenError::NotBearer)
    );
}

#[test]
fn maps_custom_actor_type_values() {
    let mut config = config();
    config.issuers[0].claims.actor_type = Some("principal_kind".into());
    config.issuers[0].claims.actor_type_values = Some(
        [
            ("user".to_owned(), ActorType::Human),
            ("llm".to_owned(), ActorType::Agent),
        ]
        .into(),
    );
    let v = TokenVerifier::new(&config).unwrap();
    let token = issuer()
        .token(TEST_NOW, json!({"principal_kind": "llm"}))
        .unwrap();
    assert_eq!(
        v.verify(&token, TEST_NOW).unwrap().subject.actor_type,
        Some(ActorType::Agent)
    );
    let token = issuer()
        .token(TEST_NOW, json!({"principal_kind": "human"}))
        .unwrap();
    assert_eq!(v.verify(&token, TEST_NOW).unwrap().subject.actor_type, None);
}

#[test]
fn refuses_bad_key_configuration() {
    let with = |f: &dyn Fn(&mut IdentityConfig)| {
        let mut c = config();
        f(&mut c);
        TokenVerifier::new(&c).unwrap_err()
    };
    assert_eq!(
        with(&|c| c.issuers[0].algorithms = vec!["HS256".into()]),
        KeyConfigError::UnsupportedAlgorithm {
            index: 0,
            name: "HS256".into()
        }
    );
    assert_eq!(
        with(&|c| c.issuers[0].algorithms = vec![]),
        KeyConfigError::NoAlgorithms { index: 0 }
    );
    assert!(matches!(
        with(&|c| c.issuers[0].jwks = Some(
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "secret"}]})
        )),
        KeyConfigError::BadJwks { .. }
    ));
    assert!(matches!(
        with(&|c| c.issuers[0].jwks = Some(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))),
        KeyConfigError::BadJwks { .. }
    ));
    assert_eq!(
        with(&|c| c.issuers[0].jwks = Some(json!({"keys": []}))),
        KeyConfigError::NoUsableKey { index: 0 }
    );
    assert!(matches!(
        with(&|c| c.issuers[0].jwks = Some(json!([]))),
        KeyConfigError::BadJwks { .. }
    ));
    assert_eq!(
        with(&|c| {
            c.issuers[0].jwks = None;
            c.issuers[0].jwks_file = Some("keys.json".into());
        }),
        KeyConfigError::KeySource { index: 0 }
    );
    assert_eq!(with(&|c| c.issuers.clear()), KeyConfigError::NoIssuers);
    assert_eq!(
        with(&|c| c.issuers[0].audiences.clear()),
        KeyConfigError::Empty {
            index: 0,
            field: "audiences"
        }
    );
    assert!(matches!(
        with(&|c| c.issuers.push(c.issuers[0].clone())),
        KeyConfigError::DuplicateIssuer { index: 1, .. }
    ));
}

#[test]
fn only_allowed_algorithms_keep_their_keys() {
    let mut config = config();
    config.issuers[0].algorithms = vec!["EdDSA".into()];
    let v = TokenVerifier::new(&config).unwrap();
    let es = issuer().token(TEST_NOW, json!({})).unwrap();
    assert_eq!(
        v.verify(&es, TEST_NOW).unwrap_err(),
        TokenError::AlgorithmNotAllowed("ES256".into())
    );
    let ed = issuer()
        .sign(DemoAlg::EdDSA, &standard_claims(TEST_NOW, json!({})))
        .unwrap();
    assert!(v.verify(&ed, TEST_NOW).is_ok());
}

fn second_issuer_config(extra: Value) -> IdentityConfig {
    let mut c = config();
    let other = ES384KeyPair::generate().with_key_id("other-es384");
    let jwk: Value = serde_json::from_str(&other.public_key().to_jwk()).unwrap();
    let mut issuer = json!({
        "issuer": "https://other-idp.example",
        "audiences": ["https://mcp.example/a", "https://mcp.example/b"],
        "jwks": {"keys": [jwk]},
        "claims": {"actor_type": "kind", "groups": "teams"},
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        issuer[k] = v;
    }
    c.issuers.push(serde_json::from_value(issuer).unwrap());
    OTHER_KEY.with(|k| *k.borrow_mut() = Some(other));
    c
}

/// The second issuer's claims: subject `svc-1`, audience `/b`, and `custom`.
fn other_claims(custom: Map<String, Value>) -> JWTClaims<Map<String, Value>> {
    JWTClaims {
        issued_at: None,
        expires_at: Some(Duration::from_secs(TEST_NOW + 600)),
        invalid_before: None,
        issuer: Some("https://other-idp.example".into()),
        subject: Some("svc-1".into()),
        audiences: Some(Audiences::AsString("https://mcp.example/b".into())),
        jwt_id: None,
        nonce: None,
        custom,
    }
}

thread_local! {
    static OTHER_KEY: std::cell::RefCell<Option<ES384KeyPair>> = const { std::cell::RefCell::new(None) };
}

fn other_token(claims: Value) -> String {
    OTHER_KEY.with(|k| {
        let key = k.borrow();
        let key = key.as_ref().unwrap();
        let mut c = claims.as_object().cloned().unwrap();
        let subject = c.remove("sub").and_then(|v| v.as_str().map(str::to_owned));
        key.sign(JWTClaims {
            subject,
            ..other_claims(c)
        })
        .unwrap()
    })
}

#[test]
fn several_issuers_each_with_their_own_keys_audiences_and_claims() {
    let v = TokenVerifier::new(&second_issuer_config(json!({}))).unwrap();
    let id = v
        .verify(
            &other_token(json!({"sub": "svc-1", "kind": "service", "teams": ["ops"]})),
            TEST_NOW,
        )
        .unwrap();
    assert_eq!(id.issuer, "https://other-idp.example");
    assert_eq!(id.subject.actor_type, Some(ActorType::Service));
    assert_eq!(id.subject.groups, vec!["ops"]);
    // The demo issuer still works with its own claim names.
    assert!(
        v.verify(&issuer().token(TEST_NOW, json!({})).unwrap(), TEST_NOW)
            .is_ok()
    );
    // A demo-issuer token carrying the other issuer's audience is refused.
    let cross = issuer()
        .token(TEST_NOW, json!({"aud": "https://mcp.example/b"}))
        .unwrap();
    assert_eq!(
        v.verify(&cross, TEST_NOW).unwrap_err(),
        TokenError::WrongAudience
    );
    // A token claiming the other issuer but signed with a demo key names an
    // unknown kid of that issuer: keys never cross issuers.
    let forged = issuer()
        .token(TEST_NOW, json!({"iss": "https://other-idp.example"}))
        .unwrap();
    assert!(matches!(
        v.verify(&forged, TEST_NOW).unwrap_err(),
        TokenError::UnknownKey { .. }
    ));
}

#[test]
fn ps256_and_explicit_typing() {
    use jwt_simple::prelude::{PS256KeyPair, RSAKeyPairLike};
    let mut c = config();
    let mut jwks = crate::testing::demo_jwks();
    // The same RSA key published without `alg` serves RS256 and PS256.
    jwks["keys"][1].as_object_mut().unwrap().remove("alg");
    c.issuers[0].jwks = Some(jwks);
    c.issuers[0].algorithms = vec!["PS256".into(), "ES256".into()];
    c.issuers[0].token_type = Some("at+jwt".into());
    let v = TokenVerifier::new(&c).unwrap();
    let ps = PS256KeyPair::from_pem(include_str!("../../../examples/keys/demo-rs256.pem"))
        .unwrap()
        .with_key_id("demo-rs256");
    let claims = standard_claims(TEST_NOW, json!({}));
    let mut jwt: JWTClaims<Map<String, Value>> = JWTClaims {
        issued_at: None,
        expires_at: Some(Duration::from_secs(TEST_NOW + 600)),
        invalid_before: None,
        issuer: Some(crate::testing::DEMO_ISSUER.into()),
        subject: Some("alice".into()),
        audiences: Some(Audiences::AsString(crate::testing::DEMO_AUDIENCE.into())),
        jwt_id: None,
        nonce: None,
        custom: Map::new(),
    };
    jwt.custom
        .insert("actor_type".into(), claims["actor_type"].clone());
    let options = jwt_simple::prelude::HeaderOptions {
        signature_type: Some("at+jwt".into()),
        ..Default::default()
    };
    let token = ps.sign_with_options(jwt.clone(), &options).unwrap();
    assert!(v.verify(&token, TEST_NOW).is_ok());
    // Without the required type: refused.
    let untyped = ps.sign(jwt).unwrap();
    assert!(matches!(
        v.verify(&untyped, TEST_NOW).unwrap_err(),
        TokenError::WrongType { .. }
    ));
    // RS256 is not on this issuer's list any more.
    let rs = issuer().sign(DemoAlg::RS256, &claims).unwrap();
    assert_eq!(
        v.verify(&rs, TEST_NOW).unwrap_err(),
        TokenError::AlgorithmNotAllowed("RS256".into())
    );
}

#[test]
fn cached_tokens_skip_the_signature_but_not_the_clock_or_revocation() {
    let v = verifier();
    let token = issuer()
        .token(TEST_NOW, json!({"jti": "t-9", "exp": TEST_NOW + 100}))
        .unwrap();
    v.verify(&token, TEST_NOW).unwrap();
    v.verify(&token, TEST_NOW + 1).unwrap();
    let stats = v.cache_stats();
    assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 1));
    // Time still counts on a hit.
    assert_eq!(
        v.verify(&token, TEST_NOW + 100 + 61).unwrap_err(),
        TokenError::Expired
    );
    // So does revocation.
    v.update_revocations(&json!({"jti": [{"value": "t-9", "reason": "laptop stolen"}]}))
        .unwrap();
    assert_eq!(
        v.verify(&token, TEST_NOW).unwrap_err(),
        TokenError::Revoked("token `t-9` is revoked: laptop stolen".into())
    );
    // A bad signature is never cached as good.
    let (signed, _) = token.rsplit_once('.').unwrap();
    let forged = format!("{signed}.AAAA");
    assert!(v.verify(&forged, TEST_NOW).is_err());
    assert!(v.verify(&forged, TEST_NOW).is_err());
}

#[test]
fn revocation_by_subject_anywhere_in_the_chain_client_and_issuer() {
    let mut c = config();
    c.revocation.lists.subjects = vec![RevokedEntry::Value("rogue-agent".into())];
    let v = TokenVerifier::new(&c).unwrap();
    let via_rogue = issuer()
        .token(
            TEST_NOW,
            json!({"act": {"sub": "rogue-agent", "actor_type": "agent"}}),
        )
        .unwrap();
    assert_eq!(
        v.verify(&via_rogue, TEST_NOW).unwrap_err(),
        TokenError::Revoked("subject `rogue-agent` is revoked".into())
    );
    let direct = issuer()
        .token(TEST_NOW, json!({"client_id": "cli-7"}))
        .unwrap();
    assert!(v.verify(&direct, TEST_NOW).is_ok());
    v.update_revocations(&json!({"client_ids": ["cli-7"]}))
        .unwrap();
    assert!(matches!(
        v.verify(&direct, TEST_NOW).unwrap_err(),
        TokenError::Revoked(_)
    ));
    // A polled list replaces the previous polled list, never the configured one.
    v.update_revocations(&json!({"issuers": []})).unwrap();
    assert!(v.verify(&direct, TEST_NOW).is_ok());
    assert!(v.verify(&via_rogue, TEST_NOW).is_err());
    v.update_revocations(&json!({"issuers": [crate::testing::DEMO_ISSUER]}))
        .unwrap();
    assert!(matches!(
        v.verify(&direct, TEST_NOW).unwrap_err(),
        TokenError::Revoked(_)
    ));
    // A malformed list is refused and the previous one stays.
    assert!(v.update_revocations(&json!({"issuers": "x"})).is_err());
    assert!(v.verify(&direct, TEST_NOW).is_err());
}

/// The demo issuer with its key set fetched (none loaded yet).
fn fetched_keys_verifier() -> TokenVerifier {
    let mut c = config();
    c.issuers[0].jwks = None;
    c.issuers[0].jwks_fetch =
        Some(serde_json::from_value(json!({"cluster": "idp", "path": "/jwks"})).unwrap());
    TokenVerifier::new(&c).unwrap()
}

#[test]
fn fetched_key_sets_fail_closed_until_loaded_and_survive_bad_updates() {
    let v = fetched_keys_verifier();
    let token = issuer().token(TEST_NOW, json!({})).unwrap();
    let err = v.verify(&token, TEST_NOW).unwrap_err();
    assert_eq!(
        err,
        TokenError::KeysUnavailable(crate::testing::DEMO_ISSUER.into())
    );
    assert_eq!(err.issuer_needing_keys(), Some(crate::testing::DEMO_ISSUER));
    assert_eq!(
        v.update_keys(crate::testing::DEMO_ISSUER, &crate::testing::demo_jwks()),
        Ok(3)
    );
    assert!(v.verify(&token, TEST_NOW).is_ok());
    assert!(
        v.update_keys(crate::testing::DEMO_ISSUER, &json!({"keys": []}))
            .is_err()
    );
    assert!(
        v.update_keys(crate::testing::DEMO_ISSUER, &json!("nope"))
            .is_err()
    );
    assert!(
        v.verify(&token, TEST_NOW).is_ok(),
        "the last good key set stays"
    );
    // Rotation: a set without the signing key drops cached verdicts too.
    let mut rotated = crate::testing::demo_jwks();
    rotated["keys"].as_array_mut().unwrap().remove(0);
    v.update_keys(crate::testing::DEMO_ISSUER, &rotated)
        .unwrap();
    assert!(matches!(
        v.verify(&token, TEST_NOW).unwrap_err(),
        TokenError::UnknownKey { .. }
    ));
    assert_eq!(v.remote_key_sources().len(), 1);
}

#[test]
fn the_subject_claim_can_be_renamed() {
    let mut c = config();
    c.issuers[0].claims.subject = Some("oid".into());
    let v = TokenVerifier::new(&c).unwrap();
    let token = issuer()
        .token(
            TEST_NOW,
            json!({"oid": "u-42", "act": {"oid": "bot-7", "actor_type": "agent"}}),
        )
        .unwrap();
    let id = v.verify(&token, TEST_NOW).unwrap();
    assert_eq!(id.subject.subject, "u-42");
    assert_eq!(id.actor.as_ref().unwrap().subject, "bot-7");
    let without = issuer().token(TEST_NOW, json!({})).unwrap();
    assert_eq!(
        v.verify(&without, TEST_NOW).unwrap_err(),
        TokenError::NoSubject("oid".into())
    );
}

#[test]
fn may_act_is_not_delegation() {
    let token = issuer()
        .token(TEST_NOW, json!({"may_act": {"sub": "research-agent"}}))
        .unwrap();
    let id = verify(&token).unwrap();
    assert_eq!(id.actor, None);
    assert_eq!(id.delegation_depth(), 0);
}

#[test]
fn refetching_the_same_key_set_keeps_the_verification_cache() {
    let v = fetched_keys_verifier();
    let jwks = crate::testing::demo_jwks();
    v.update_keys(crate::testing::DEMO_ISSUER, &jwks).unwrap();
    let token = issuer().token(TEST_NOW, json!({})).unwrap();
    v.verify(&token, TEST_NOW).unwrap();
    assert_eq!(v.cache_stats().entries, 1);
    // A scheduled refresh, or a fetch triggered by a flood of unknown key
    // ids, brings the same set: the cached verdict survives.
    for _ in 0..3 {
        v.update_keys(crate::testing::DEMO_ISSUER, &jwks).unwrap();
    }
    assert_eq!(v.cache_stats().entries, 1);
    v.verify(&token, TEST_NOW).unwrap();
    assert_eq!(v.cache_stats().hits, 1);
    // A different set (one key fewer) empties it.
    let mut fewer = jwks.clone();
    fewer["keys"].as_array_mut().unwrap().pop();
    v.update_keys(crate::testing::DEMO_ISSUER, &fewer).unwrap();
    assert_eq!(v.cache_stats().entries, 0);
}

/// A token of the second issuer whose `aud` is exactly `aud` (any JSON).
fn other_token_with_aud(aud: Value) -> String {
    OTHER_KEY.with(|k| {
        let key = k.borrow();
        let custom = json!({"aud": aud, "kind": "service"});
        let jwt = JWTClaims {
            audiences: None,
            ..other_claims(custom.as_object().cloned().unwrap())
        };
        key.as_ref().unwrap().sign(jwt).unwrap()
    })
}

#[test]
fn an_audience_that_is_not_strings_is_refused_not_read_in_part() {
    let v = TokenVerifier::new(&second_issuer_config(json!({}))).unwrap();
    let good = other_token_with_aud(json!(["https://mcp.example/b"]));
    assert!(v.verify(&good, TEST_NOW).is_ok());
    for aud in [
        json!(["https://mcp.example/b", 7]),
        json!(["https://mcp.example/b", {"x": 1}]),
        json!(7),
        json!({"aud": "https://mcp.example/b"}),
    ] {
        let token = other_token_with_aud(aud.clone());
        assert_eq!(
            v.verify(&token, TEST_NOW).unwrap_err(),
            TokenError::BadClaim("aud".into()),
            "{aud}"
        );
    }
}

#[test]
fn an_empty_subject_is_refused() {
    for sub in ["", "   "] {
        let token = issuer().token(TEST_NOW, json!({"sub": sub})).unwrap();
        assert_eq!(
            verify(&token).unwrap_err(),
            TokenError::NoSubject("sub".into()),
            "{sub:?}"
        );
    }
    let token = issuer()
        .token(TEST_NOW, json!({"act": {"sub": "", "actor_type": "agent"}}))
        .unwrap();
    assert_eq!(
        verify(&token).unwrap_err(),
        TokenError::NoSubject("act.sub".into())
    );
}

/// A token of the second issuer's current key, with no key id in its header.
fn other_token_without_kid() -> String {
    OTHER_KEY.with(|k| {
        let bare = ES384KeyPair::from_bytes(&k.borrow().as_ref().unwrap().to_bytes()).unwrap();
        let custom = json!({"kind": "service"});
        bare.sign(other_claims(custom.as_object().cloned().unwrap()))
            .unwrap()
    })
}

#[test]
fn an_issuer_can_require_a_key_id() {
    let v = TokenVerifier::new(&second_issuer_config(json!({"require_kid": true}))).unwrap();
    // The second issuer's key has a kid, and its tokens carry it.
    assert!(
        v.verify(
            &other_token(json!({"sub": "svc-1", "kind": "service"})),
            TEST_NOW
        )
        .is_ok()
    );
    let no_kid = other_token_without_kid();
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(no_kid.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(header.get("kid").is_none(), "{header}");
    let err = v.verify(&no_kid, TEST_NOW).unwrap_err();
    assert!(
        matches!(&err, TokenError::BadHeader(m) if m.contains("kid")),
        "{err}"
    );
    // Without the setting, the same token is tried against the issuer's keys.
    let lax = TokenVerifier::new(&second_issuer_config(json!({}))).unwrap();
    let again = other_token_without_kid();
    assert!(lax.verify(&again, TEST_NOW).is_ok());
}

/// A token whose header names a key id the issuer's set lacks (the rest is
/// a real token's: only the key lookup is reached).
fn with_unknown_kid(token: &str, n: usize) -> String {
    use base64::Engine as _;
    let header = json!({"alg": "ES256", "kid": format!("unknown-{n}"), "typ": "JWT"});
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    let (_, rest) = token.split_once('.').unwrap();
    format!("{header}.{rest}")
}

#[test]
fn a_flood_of_unknown_key_ids_leaves_valid_tokens_cached() {
    let v = fetched_keys_verifier();
    let jwks = crate::testing::demo_jwks();
    v.update_keys(crate::testing::DEMO_ISSUER, &jwks).unwrap();
    let valid: Vec<String> = (0..50)
        .map(|n| {
            issuer()
                .token(TEST_NOW, json!({"sub": format!("user-{n}")}))
                .unwrap()
        })
        .collect();
    for token in &valid {
        v.verify(token, TEST_NOW).unwrap();
    }
    let before = v.cache_stats();
    assert_eq!((before.entries, before.hits), (50, 0));
    // An unauthenticated flood: 10,000 tokens naming key ids the set lacks,
    // and the refetches they may trigger (at most one per interval, the
    // documents tests show), which bring the same set.
    for n in 0..10_000 {
        let forged = with_unknown_kid(&valid[n % valid.len()], n);
        assert!(v.verify(&forged, TEST_NOW).is_err());
        if n % 1_000 == 0 {
            v.update_keys(crate::testing::DEMO_ISSUER, &jwks).unwrap();
        }
    }
    assert_eq!(v.cache_stats().entries, 50, "no valid entry was evicted");
    for token in &valid {
        v.verify(token, TEST_NOW).unwrap();
    }
    let after = v.cache_stats();
    assert_eq!(
        after.hits - before.hits,
        50,
        "every valid token is still a hit"
    );
}

#[test]
fn an_identity_can_be_shared_between_threads() {
    // The fuzz targets keep identities in statics; the header values kept
    // with an identity (`Derived`) must not take that away.
    fn shareable<T: Send + Sync>() {}
    shareable::<Identity>();
}
