use serde_json::{Value, json};

use super::*;
use crate::testing::{
    DemoAlg, DemoIssuer, TEST_NOW, demo_identity_json, raw_token, standard_claims,
};

fn verifier() -> TokenVerifier {
    let config: IdentityConfig = serde_json::from_value(demo_identity_json()).unwrap();
    TokenVerifier::new(&config).unwrap()
}

fn verify(token: &str) -> Result<Identity, TokenError> {
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
        TokenError::BadClaim("act.sub".into())
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
fn maps_custom_actor_type_values() {
    let mut config: IdentityConfig = serde_json::from_value(demo_identity_json()).unwrap();
    config.claims.actor_type = "principal_kind".into();
    config.claims.actor_type_values = [
        ("user".to_owned(), ActorType::Human),
        ("llm".to_owned(), ActorType::Agent),
    ]
    .into();
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
fn rejects_expired_not_yet_valid_and_skew() {
    let i = issuer();
    let expired = i.token(TEST_NOW, json!({"exp": TEST_NOW - 61})).unwrap();
    assert_eq!(
        verify(&expired).unwrap_err(),
        TokenError::Rejected("token has expired".into())
    );
    // Within the default 60 s skew.
    let just_expired = i.token(TEST_NOW, json!({"exp": TEST_NOW - 30})).unwrap();
    assert!(verify(&just_expired).is_ok());
    let future = i.token(TEST_NOW, json!({"nbf": TEST_NOW + 120})).unwrap();
    assert_eq!(
        verify(&future).unwrap_err(),
        TokenError::Rejected("token is not valid yet".into())
    );
    let no_exp = i.token(TEST_NOW, json!({"exp": null})).unwrap();
    assert_eq!(verify(&no_exp).unwrap_err(), TokenError::NoExpiry);
    let no_sub = i.token(TEST_NOW, json!({"sub": null})).unwrap();
    assert_eq!(verify(&no_sub).unwrap_err(), TokenError::NoSubject);
}

#[test]
fn checks_issuer_and_audience() {
    let i = issuer();
    let wrong_aud = i
        .token(TEST_NOW, json!({"aud": "https://other.example/mcp"}))
        .unwrap();
    assert_eq!(
        verify(&wrong_aud).unwrap_err(),
        TokenError::Rejected("audience does not include this resource".into())
    );
    let aud_list = i
        .token(
            TEST_NOW,
            json!({"aud": ["https://other.example", crate::testing::DEMO_AUDIENCE]}),
        )
        .unwrap();
    assert!(verify(&aud_list).is_ok());
    let no_aud = i.token(TEST_NOW, json!({"aud": null})).unwrap();
    assert!(verify(&no_aud).is_err());
    let wrong_iss = i
        .token(TEST_NOW, json!({"iss": "https://evil.example"}))
        .unwrap();
    assert_eq!(
        verify(&wrong_iss).unwrap_err(),
        TokenError::Rejected("issuer is not trusted".into())
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
    assert!(matches!(
        verify(&tampered).unwrap_err(),
        TokenError::Rejected(_)
    ));
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
    assert!(matches!(
        verify(&forged).unwrap_err(),
        TokenError::Rejected(_)
    ));
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
        TokenError::UnknownKey("rotated-away".into())
    );
    let mismatch = raw_token(
        &json!({"alg": "ES256", "kid": "demo-rs256"}),
        &claims,
        &[0; 64],
    );
    assert!(matches!(
        verify(&mismatch).unwrap_err(),
        TokenError::KeyAlgorithmMismatch { .. }
    ));
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
    assert!(matches!(
        verify(&token).unwrap_err(),
        TokenError::Rejected(_)
    ));
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
fn refuses_bad_key_configuration() {
    let mut config: IdentityConfig = serde_json::from_value(demo_identity_json()).unwrap();
    config.algorithms = vec!["HS256".into()];
    assert_eq!(
        TokenVerifier::new(&config).unwrap_err(),
        KeyConfigError::UnsupportedAlgorithm("HS256".into())
    );
    config.algorithms = vec![];
    assert_eq!(
        TokenVerifier::new(&config).unwrap_err(),
        KeyConfigError::NoAlgorithms
    );
    config.algorithms = vec!["ES256".into()];
    config.jwks =
        Some(json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "secret"}]}));
    assert!(matches!(
        TokenVerifier::new(&config).unwrap_err(),
        KeyConfigError::BadKey { .. }
    ));
    config.jwks = Some(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
    assert!(matches!(
        TokenVerifier::new(&config).unwrap_err(),
        KeyConfigError::BadKey { .. }
    ));
    config.jwks = Some(json!({"keys": []}));
    assert_eq!(
        TokenVerifier::new(&config).unwrap_err(),
        KeyConfigError::NoUsableKey
    );
    config.jwks = Some(json!([]));
    assert!(matches!(
        TokenVerifier::new(&config).unwrap_err(),
        KeyConfigError::BadJwks(_)
    ));
    config.jwks = None;
    config.jwks_file = Some("keys.json".into());
    assert_eq!(
        TokenVerifier::new(&config).unwrap_err(),
        KeyConfigError::UnresolvedJwksFile
    );
}

#[test]
fn only_allowed_algorithms_keep_their_keys() {
    let mut config: IdentityConfig = serde_json::from_value(demo_identity_json()).unwrap();
    config.algorithms = vec!["EdDSA".into()];
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
