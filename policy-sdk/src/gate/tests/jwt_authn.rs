//! `identity.verified_by: jwt_authn`: the identity comes from the payload
//! Envoy's `jwt_authn` left in the stream's dynamic metadata, never from a
//! token Warden did not see verified; everything after the signature is
//! still Warden's (issuer, audience, times, actor model, revocation).

use super::*;
use crate::identity::envoy_metadata::{
    JWT_AUTHN_NAMESPACE, encode_verified_payload, encode_verified_payload_reversed,
};
use crate::testing::{DEMO_AUDIENCE, standard_claims};

const CALL_SEARCH: &str =
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs"}}"#;

fn jwt_authn_warden(identity_extra: Value) -> Rc<Warden> {
    let mut identity = demo_identity_json();
    identity["verified_by"] = json!("jwt_authn");
    for (k, v) in identity_extra.as_object().cloned().unwrap_or_default() {
        identity[k] = v;
    }
    warden(json!({"identity": identity}))
}

/// The metadata `jwt_authn` leaves for a verified token with `claims`.
fn metadata(key: &str, claims: Value) -> Vec<u8> {
    let Value::Object(claims) = claims else {
        panic!("claims must be an object")
    };
    encode_verified_payload(JWT_AUTHN_NAMESPACE, key, &claims)
}

/// One POST of `body` through an exchange whose host has `metadata`: the
/// host afterwards (reply, audit lines, what went upstream).
fn through(
    w: &Rc<Warden>,
    authorization: Option<&str>,
    dynamic_metadata: Option<Vec<u8>>,
    body: &str,
) -> MemoryHost {
    through_at(w, TEST_NOW, authorization, dynamic_metadata, body)
}

/// [`through`] at `now` (Unix seconds) instead of `TEST_NOW`.
fn through_at(
    w: &Rc<Warden>,
    now: u64,
    authorization: Option<&str>,
    dynamic_metadata: Option<Vec<u8>>,
    body: &str,
) -> MemoryHost {
    let headers = client_request(&head("POST", "/mcp", authorization));
    let mut exchange = Exchange::new(Some(Rc::clone(w)));
    let mut host = MemoryHost::new(u128::from(now) * 1_000_000_000, HeaderPause::Honoured);
    host.dynamic_metadata = dynamic_metadata;
    let mut driver = Driver::new(&mut exchange, host);
    driver.request_headers(&headers, false);
    if driver.host.reply.is_none() {
        driver.request_chunk(body.as_bytes(), true);
    }
    driver.finish();
    driver.host
}

fn only_decision(host: &MemoryHost) -> AuditRecord {
    let decisions = host.decisions();
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    decisions[0].clone()
}

#[test]
fn the_verified_payload_is_the_identity() {
    let w = jwt_authn_warden(json!({}));
    // `jwt_authn` removed the token (its default `forward: false`): the
    // payload alone identifies the caller.
    let claims = standard_claims(TEST_NOW, json!({"sub": "alice", "jti": "t-1"}));
    let host = through(&w, None, Some(metadata("jwt_payload", claims)), CALL_SEARCH);
    assert!(host.reply.is_none(), "{:?}", host.reply);
    assert_eq!(host.request.sent_body, CALL_SEARCH.as_bytes());
    let audit = only_decision(&host);
    assert!(audit.is_allowed(), "{audit:?}");
    assert_eq!(audit.subject.as_deref(), Some("alice"));
    assert_eq!(audit.actor_type, Some("human"));

    // The actor model applies to the payload as to a token: an agent
    // acting for alice is an agent.
    let delegated = standard_claims(
        TEST_NOW,
        json!({"act": {"sub": "research-agent", "actor_type": "agent"}}),
    );
    let host = through(
        &w,
        None,
        Some(metadata("jwt_payload", delegated)),
        CALL_SEARCH,
    );
    let audit = only_decision(&host);
    assert_eq!(audit.actor_type, Some("agent"), "{audit:?}");
}

#[test]
fn the_configured_payload_key_is_read() {
    let w = jwt_authn_warden(json!({"jwt_authn": {"payload_in_metadata": "verified"}}));
    let claims = standard_claims(TEST_NOW, json!({}));
    let host = through(
        &w,
        None,
        Some(metadata("verified", claims.clone())),
        CALL_SEARCH,
    );
    assert!(only_decision(&host).is_allowed());
    // Under another key it is no payload at all.
    let host = through(&w, None, Some(metadata("jwt_payload", claims)), CALL_SEARCH);
    let audit = only_decision(&host);
    assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
    assert_eq!(audit.token_failure, Some("missing"));
}

#[test]
fn a_token_jwt_authn_did_not_verify_is_refused() {
    let w = jwt_authn_warden(json!({}));
    // A token Warden could verify itself: it still does not, the proxy's
    // verifier is the one configured.
    let valid = bearer();
    for metadata_bytes in [
        None,
        Some(Vec::new()),
        Some(metadata("other_key", json!({"sub": "x"}))),
    ] {
        let host = through(&w, Some(&valid), metadata_bytes, CALL_SEARCH);
        assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
        assert!(!host.forwarded_anything());
        let audit = only_decision(&host);
        assert_eq!(
            audit.token_failure,
            Some("not_verified_by_proxy"),
            "{audit:?}"
        );
    }
    // Without any token: the MCP 401 that starts authorization.
    let host = through(&w, None, None, CALL_SEARCH);
    assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
    assert_eq!(only_decision(&host).token_failure, Some("missing"));
}

#[test]
fn the_payload_is_checked_after_the_signature() {
    let w = jwt_authn_warden(json!({
        "revocation": {"subjects": ["mallory"]},
    }));
    let cases = [
        (json!({"iss": "https://other.example"}), "issuer"),
        (json!({"aud": "https://elsewhere.example"}), "audience"),
        (
            json!({"exp": TEST_NOW - 3600, "iat": TEST_NOW - 7200}),
            "expired",
        ),
        (json!({"exp": null}), "missing_claim"),
        (json!({"sub": "mallory"}), "revoked"),
        (json!({"sub": null}), "missing_claim"),
    ];
    for (extra, class) in cases {
        let claims = standard_claims(TEST_NOW, extra.clone());
        let host = through(&w, None, Some(metadata("jwt_payload", claims)), CALL_SEARCH);
        assert!(
            host.reply.is_some() && host.request.sent_body.is_empty(),
            "{extra}"
        );
        let audit = only_decision(&host);
        assert_eq!(audit.token_failure, Some(class), "{extra}: {audit:?}");
    }
    // A party nothing classifies is denied by the policy, as with a token.
    let claims = standard_claims(TEST_NOW, json!({"actor_type": "robot"}));
    let host = through(&w, None, Some(metadata("jwt_payload", claims)), CALL_SEARCH);
    assert!(host.request.sent_body.is_empty());
    let audit = only_decision(&host);
    assert!(
        !audit.is_allowed() && audit.token_failure.is_none(),
        "{audit:?}"
    );
    assert_eq!(audit.actor_type, None, "{audit:?}");
    // The right audience among several is enough, as for a token.
    let claims = standard_claims(TEST_NOW, json!({"aud": ["x", DEMO_AUDIENCE]}));
    let host = through(&w, None, Some(metadata("jwt_payload", claims)), CALL_SEARCH);
    assert!(only_decision(&host).is_allowed());
}

#[test]
fn unreadable_metadata_refuses() {
    let w = jwt_authn_warden(json!({}));
    let mut garbled = metadata("jwt_payload", standard_claims(TEST_NOW, json!({})));
    garbled.truncate(garbled.len() - 3);
    let host = through(&w, None, Some(garbled), CALL_SEARCH);
    assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
    assert!(!host.forwarded_anything());
    assert_eq!(only_decision(&host).token_failure, Some("verified_payload"));

    // The host cannot read the metadata at all: fail closed.
    let headers = client_request(&head("POST", "/mcp", None));
    let mut exchange = Exchange::new(Some(Rc::clone(&w)));
    let mut host = MemoryHost::new(u128::from(TEST_NOW) * 1_000_000_000, HeaderPause::Honoured);
    host.failing.push("reading the dynamic metadata");
    let mut driver = Driver::new(&mut exchange, host);
    driver.request_headers(&headers, false);
    driver.finish();
    assert_eq!(driver.host.reply.as_ref().map(|r| r.status), Some(500));
    assert!(!driver.host.forwarded_anything());
}

#[test]
fn warden_fetches_no_keys_when_jwt_authn_verifies() {
    let mut identity = demo_identity_json();
    identity["issuers"][0]
        .as_object_mut()
        .unwrap()
        .remove("jwks");
    identity["issuers"][0]["jwks_fetch"] = json!({
        "cluster": "idp", "authority": "idp.example", "path": "/jwks.json",
    });
    let fetching = warden(json!({"identity": identity.clone()}));
    assert_eq!(fetching.verifier().remote_key_sources().len(), 1);
    identity["verified_by"] = json!("jwt_authn");
    let w = warden(json!({"identity": identity}));
    assert!(w.verifier().remote_key_sources().is_empty());
    // And a verified payload is accepted without any key set loaded.
    let claims = standard_claims(TEST_NOW, json!({}));
    let host = through(&w, None, Some(metadata("jwt_payload", claims)), CALL_SEARCH);
    assert!(only_decision(&host).is_allowed());
}

#[test]
fn the_default_mode_never_reads_metadata() {
    let w = warden(json!({}));
    // A payload in the metadata does not stand in for a token.
    let claims = standard_claims(TEST_NOW, json!({}));
    let host = through(&w, None, Some(metadata("jwt_payload", claims)), CALL_SEARCH);
    assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
    assert_eq!(only_decision(&host).token_failure, Some("missing"));
}

#[test]
fn every_request_reads_its_own_payload() {
    let w = jwt_authn_warden(json!({}));
    let alice = metadata(
        "jwt_payload",
        standard_claims(TEST_NOW, json!({"sub": "alice", "jti": "t-1"})),
    );
    for _ in 0..2 {
        let audit = only_decision(&through(&w, None, Some(alice.clone()), CALL_SEARCH));
        assert!(audit.is_allowed(), "{audit:?}");
        assert_eq!(audit.subject.as_deref(), Some("alice"));
    }
    // Another payload is another caller, whoever came before.
    let bob = metadata(
        "jwt_payload",
        standard_claims(TEST_NOW, json!({"sub": "bob", "actor_type": "agent"})),
    );
    let audit = only_decision(&through(&w, None, Some(bob), CALL_SEARCH));
    assert_eq!(audit.subject.as_deref(), Some("bob"));
    assert_eq!(audit.actor_type, Some("agent"));
    // Each payload is kept once (`TokenVerifier::accept_verified`): alice's
    // second request found hers.
    let stats = w.verifier().cache_stats();
    assert_eq!((stats.entries, stats.hits, stats.misses), (2, 1, 2));

    refused_when_revoked_or_expired(&w, &alice);
}

/// What changes with time is checked on every request, cached or not:
/// `payload` (token id `t-1`; the standard claims' token lives ten
/// minutes) is refused once `t-1` is revoked, allowed again when that is
/// lifted, and refused an hour later, past `exp`.
fn refused_when_revoked_or_expired(w: &Rc<Warden>, payload: &[u8]) {
    w.verifier()
        .update_revocations(&json!({"jti": [{"value": "t-1", "reason": "laptop stolen"}]}))
        .unwrap();
    let host = through(w, None, Some(payload.to_vec()), CALL_SEARCH);
    assert!(!host.forwarded_anything());
    assert_eq!(only_decision(&host).token_failure, Some("revoked"));
    w.verifier().update_revocations(&json!({})).unwrap();
    assert!(only_decision(&through(w, None, Some(payload.to_vec()), CALL_SEARCH)).is_allowed());
    let host = through_at(
        w,
        TEST_NOW + 3600,
        None,
        Some(payload.to_vec()),
        CALL_SEARCH,
    );
    assert!(!host.forwarded_anything());
    assert_eq!(only_decision(&host).token_failure, Some("expired"));
}

/// Envoy writes one payload's entries in an order that changes from
/// request to request: the identity is found again under the payload's
/// canonical form, the very one, with its times and revocation checked
/// again; a payload that differs in anything is another entry.
#[test]
fn a_payload_is_found_again_whatever_order_envoy_writes_it_in() {
    let w = jwt_authn_warden(json!({}));
    let claims = standard_claims(
        TEST_NOW,
        json!({"sub": "alice", "jti": "t-1", "act": {"sub": "bot-1", "actor_type": "agent"}}),
    );
    let Value::Object(claims) = claims else {
        unreachable!()
    };
    let forward = encode_verified_payload(JWT_AUTHN_NAMESPACE, "jwt_payload", &claims);
    let reversed = encode_verified_payload_reversed(JWT_AUTHN_NAMESPACE, "jwt_payload", &claims);
    assert_ne!(forward, reversed);
    let first = only_decision(&through(&w, None, Some(forward), CALL_SEARCH));
    let again = only_decision(&through(&w, None, Some(reversed.clone()), CALL_SEARCH));
    let stats = w.verifier().cache_stats();
    assert_eq!((stats.entries, stats.hits, stats.misses), (1, 1, 1));
    assert_eq!(first.subject, again.subject);
    assert_eq!(first.actor_type, again.actor_type);
    assert_eq!(again.actor_type, Some("agent"));

    // Another subject in the same shape misses, and is its own caller.
    let mut bob = claims.clone();
    bob.insert("sub".into(), json!("bob"));
    let bob = encode_verified_payload_reversed(JWT_AUTHN_NAMESPACE, "jwt_payload", &bob);
    let audit = only_decision(&through(&w, None, Some(bob), CALL_SEARCH));
    assert_eq!(audit.subject.as_deref(), Some("bob"));
    assert_eq!(w.verifier().cache_stats().misses, 2);

    // Found in the cache, each time, and refused or let through by what
    // changes with time.
    refused_when_revoked_or_expired(&w, &reversed);
    assert_eq!(w.verifier().cache_stats().hits, 4);
}

#[test]
fn a_payload_that_cannot_be_decoded_refuses_with_or_without_a_token() {
    let w = jwt_authn_warden(json!({}));
    // Well-formed metadata whose payload nests deeper than Warden reads:
    // found when the headers arrive, refused when it is decoded.
    let mut deep = json!("bottom");
    for _ in 0..20 {
        deep = json!({ "level": deep });
    }
    let too_deep = metadata(
        "jwt_payload",
        standard_claims(TEST_NOW, json!({ "deep": deep })),
    );
    for authorization in [None, Some(bearer())] {
        let host = through(
            &w,
            authorization.as_deref(),
            Some(too_deep.clone()),
            CALL_SEARCH,
        );
        assert_eq!(host.reply.as_ref().map(|r| r.status), Some(401));
        assert!(!host.forwarded_anything());
        let audit = only_decision(&host);
        assert_eq!(audit.token_failure, Some("verified_payload"), "{audit:?}");
    }
}
