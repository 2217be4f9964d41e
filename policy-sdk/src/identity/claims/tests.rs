//! Claim paths, actor-type rules and the provider presets, with tokens of
//! exactly the shapes each provider documents, signed by the test signer.

use serde_json::{Value, json};
use std::rc::Rc;

use super::super::{
    ActorType, Identity, IdentityConfig, KeyConfigError, TokenError, TokenVerifier,
};
use crate::testing::{DEMO_AUDIENCE, DemoAlg, DemoIssuer, TEST_NOW, demo_jwks};

const KEYCLOAK: &str = "https://sso.example.com/realms/demo";
const ENTRA: &str = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0";
const AUTH0: &str = "https://example.us.auth0.com/";
const OKTA: &str = "https://example.okta.com/oauth2/default";

/// A verifier trusting `issuer` (demo keys), with `settings` (`preset`,
/// `claims`) merged into its entry.
fn verifier(issuer: &str, settings: Value) -> Result<TokenVerifier, KeyConfigError> {
    let mut entry = json!({"issuer": issuer, "audiences": [DEMO_AUDIENCE], "jwks": demo_jwks()});
    for (k, v) in settings.as_object().cloned().unwrap_or_default() {
        entry[k] = v;
    }
    let config: IdentityConfig = serde_json::from_value(json!({"issuers": [entry]})).unwrap();
    TokenVerifier::new(&config)
}

/// Signs `claims` as they are, with `iss`, `iat` and `exp` added.
fn sign(issuer: &str, mut claims: Value) -> String {
    claims["iss"] = json!(issuer);
    claims["iat"] = json!(TEST_NOW - 10);
    claims["exp"] = json!(TEST_NOW + 300);
    DemoIssuer::new()
        .unwrap()
        .sign(DemoAlg::RS256, &claims)
        .unwrap()
}

fn verify(v: &TokenVerifier, issuer: &str, claims: Value) -> Result<Rc<Identity>, TokenError> {
    v.verify(&sign(issuer, claims), TEST_NOW)
}

// ---------------------------------------------------------------- Keycloak

fn keycloak_user() -> Value {
    json!({
        "jti": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
        "aud": [DEMO_AUDIENCE, "account"],
        "sub": "f1d8c3a0-5b7e-4c2a-9e1f-3a6b8d0c2e4f",
        "typ": "Bearer",
        "azp": "mcp-inspector",
        "sid": "7c1b2a3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
        "acr": "1",
        "allowed-origins": ["https://inspector.example.com"],
        "realm_access": {"roles": ["default-roles-demo", "offline_access", "uma_authorization", "sre-oncall"]},
        "resource_access": {
            "mcp-server": {"roles": ["deployer"]},
            "account": {"roles": ["manage-account", "view-profile"]}
        },
        "scope": "openid profile email",
        "email_verified": true,
        "name": "Alice Doe",
        "preferred_username": "alice",
        "given_name": "Alice",
        "family_name": "Doe",
        "email": "alice@example.com",
        "groups": ["/sre", "/eng/platform"]
    })
}

fn keycloak_service_account() -> Value {
    json!({
        "jti": "9a8b7c6d-5e4f-3a2b-1c0d-9e8f7a6b5c4d",
        "aud": DEMO_AUDIENCE,
        "sub": "3b9e6f1a-2c4d-4e8f-a0b1-c2d3e4f5a6b7",
        "typ": "Bearer",
        "azp": "ci-deployer",
        "acr": "1",
        "realm_access": {"roles": ["default-roles-demo"]},
        "resource_access": {"mcp-server": {"roles": ["deployer"]}},
        "scope": "profile email",
        "clientHost": "10.0.4.17",
        "email_verified": false,
        "preferred_username": "service-account-ci-deployer",
        "clientAddress": "10.0.4.17",
        "client_id": "ci-deployer"
    })
}

#[test]
fn keycloak_user_and_service_account_tokens() {
    let v = verifier(KEYCLOAK, json!({"preset": "keycloak"})).unwrap();
    let alice = verify(&v, KEYCLOAK, keycloak_user()).unwrap();
    assert_eq!(alice.subject.actor_type, Some(ActorType::Human));
    assert_eq!(alice.subject.groups, ["/sre", "/eng/platform"]);
    assert_eq!(
        alice.subject.roles,
        [
            "default-roles-demo",
            "offline_access",
            "uma_authorization",
            "sre-oncall"
        ]
    );
    assert_eq!(alice.subject.scopes, ["openid", "profile", "email"]);
    assert_eq!(alice.client_id.as_deref(), Some("mcp-inspector"));

    let ci = verify(&v, KEYCLOAK, keycloak_service_account()).unwrap();
    assert_eq!(ci.subject.actor_type, Some(ActorType::Service));
    assert_eq!(ci.client_id.as_deref(), Some("ci-deployer"));
    // Before Keycloak 25 the claim was `clientId`.
    let mut old = keycloak_service_account();
    old["clientId"] = old["client_id"].take();
    old.as_object_mut().unwrap().remove("client_id");
    assert_eq!(
        verify(&v, KEYCLOAK, old).unwrap().subject.actor_type,
        Some(ActorType::Service)
    );
    // A user who picked a service-account-looking username stays human.
    let mut lookalike = keycloak_user();
    lookalike["preferred_username"] = json!("service-account-ci-deployer");
    assert_eq!(
        verify(&v, KEYCLOAK, lookalike).unwrap().subject.actor_type,
        Some(ActorType::Human)
    );
}

#[test]
fn keycloak_agent_acting_for_a_user() {
    let v = verifier(KEYCLOAK, json!({"preset": "keycloak"})).unwrap();
    let mut token = keycloak_user();
    token["act"] = json!({"sub": "research-agent", "act": {"sub": "orchestrator"}});
    let id = verify(&v, KEYCLOAK, token).unwrap();
    assert_eq!(id.subject.actor_type, Some(ActorType::Human));
    let actor = id.actor.clone().unwrap();
    assert_eq!(
        (actor.subject.as_str(), actor.actor_type),
        ("research-agent", Some(ActorType::Agent))
    );
    assert_eq!(id.prior_actors[0].actor_type, Some(ActorType::Agent));
}

#[test]
fn explicit_settings_override_the_preset() {
    // Client roles of this server next to the realm roles; a rule that
    // names a group's members agents.
    let v = verifier(
        KEYCLOAK,
        json!({"preset": "keycloak", "claims": {
            "roles": ["/realm_access/roles", "/resource_access/mcp-server/roles"],
            "actor_type_rules": [
                {"when": {"claim": "groups", "equals": "/agents"}, "type": "agent"},
                {"when": {"has": "client_id"}, "type": "service"}
            ]
        }}),
    )
    .unwrap();
    let alice = verify(&v, KEYCLOAK, keycloak_user()).unwrap();
    assert_eq!(
        alice.subject.roles.last().map(String::as_str),
        Some("deployer")
    );
    assert_eq!(alice.subject.roles.len(), 5);
    assert_eq!(
        alice.subject.actor_type,
        Some(ActorType::Human),
        "the preset's default stays"
    );
    let mut bot = keycloak_user();
    bot["groups"] = json!(["/agents"]);
    assert_eq!(
        verify(&v, KEYCLOAK, bot).unwrap().subject.actor_type,
        Some(ActorType::Agent)
    );
    // The preset's actor rule was replaced: an actor in `act` is now
    // unclassified, and the reason says what to add.
    let mut delegated = keycloak_user();
    delegated["act"] = json!({"sub": "research-agent"});
    let id = verify(&v, KEYCLOAK, delegated).unwrap();
    let actor = id.actor.clone().unwrap();
    assert_eq!(actor.actor_type, None);
    assert_eq!(
        actor.unclassified_reason.as_deref(),
        Some(
            "issuer `https://sso.example.com/realms/demo`: no `actor_type` claim and no rule in `claims.actor_type_rules` classifies this actor in `act`; add a rule that matches it (`when: {party: actor}` matches every actor)"
        )
    );
}

#[test]
fn a_keycloak_shaped_token_without_a_preset_is_refused_with_the_fix() {
    let v = verifier(KEYCLOAK, json!({})).unwrap();
    let id = verify(&v, KEYCLOAK, keycloak_user()).unwrap();
    assert_eq!(id.subject.actor_type, None);
    assert_eq!(
        id.subject.unclassified_reason.as_deref(),
        Some(
            "issuer `https://sso.example.com/realms/demo`: no `actor_type` claim and no rule in `claims.actor_type_rules` classifies the token's subject; add a rule that matches it, or set `claims.default_actor_type`"
        )
    );
    // Nested roles are not read by a top-level name either.
    assert!(id.subject.roles.is_empty());
}

// ---------------------------------------------------------------- Entra ID

fn entra_user() -> Value {
    json!({
        "aud": DEMO_AUDIENCE,
        "nbf": TEST_NOW - 10,
        "aio": "AWQAm/8YAAAA",
        "azp": "9e3a6c1f-4b2d-4f8e-a1c3-5d7e9f0b2a4c",
        "azpacr": "0",
        "name": "Alice Doe",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81",
        "preferred_username": "alice@contoso.com",
        "rh": "0.AXoAv4j5cvGGr0GRqy180BHbR",
        "roles": ["Deploy.Staging"],
        "scp": "Tools.Call Tools.Read",
        "sid": "5a3b1c2d-0e9f-4a8b-7c6d-5e4f3a2b1c0d",
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "uti": "fqiBqXLPj0eQa82S-IYFAA",
        "ver": "2.0",
        "groups": ["0b5c1a2e-3d4f-4a6b-8c7d-9e0f1a2b3c4d"]
    })
}

fn entra_app_only() -> Value {
    json!({
        "aud": DEMO_AUDIENCE,
        "nbf": TEST_NOW - 10,
        "aio": "E2ZgYJh+8bq1",
        "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
        "azpacr": "1",
        "idtyp": "app",
        "oid": "a4d8a2d5-6e1b-4c3f-9a2e-0b7c5d3e1f9a",
        "rh": "0.AXoAv4j5cvGGr0GRqy180BHbR",
        "roles": ["Tools.Call.All"],
        "sub": "a4d8a2d5-6e1b-4c3f-9a2e-0b7c5d3e1f9a",
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "uti": "r0j2f9UdK0W6cWnEZ2yIAA",
        "ver": "2.0"
    })
}

#[test]
fn entra_delegated_and_app_only_tokens() {
    let v = verifier(ENTRA, json!({"preset": "entra"})).unwrap();
    let alice = verify(&v, ENTRA, entra_user()).unwrap();
    assert_eq!(alice.subject.actor_type, Some(ActorType::Human));
    assert_eq!(
        alice.subject.subject, "00000000-0000-0000-66f3-3332eca7ea81",
        "`oid`, not the pairwise `sub`"
    );
    // `scp` is one space-separated string in Entra ID.
    assert_eq!(alice.subject.scopes, ["Tools.Call", "Tools.Read"]);
    assert_eq!(alice.subject.roles, ["Deploy.Staging"]);
    assert_eq!(
        alice.client_id.as_deref(),
        Some("9e3a6c1f-4b2d-4f8e-a1c3-5d7e9f0b2a4c")
    );

    let app = verify(&v, ENTRA, entra_app_only()).unwrap();
    assert_eq!(app.subject.actor_type, Some(ActorType::Service));
    assert_eq!(app.subject.roles, ["Tools.Call.All"]);
    assert!(app.subject.scopes.is_empty());

    // Without the optional `idtyp` claim: no `scp` and `oid` = `sub`.
    let mut bare = entra_app_only();
    bare.as_object_mut().unwrap().remove("idtyp");
    assert_eq!(
        verify(&v, ENTRA, bare.clone()).unwrap().subject.actor_type,
        Some(ActorType::Service)
    );
    // v1 tokens name the client in `appid`.
    bare.as_object_mut().unwrap().remove("azp");
    bare["appid"] = json!("6e74172b-be56-4843-9ff4-e66a39bb12e3");
    assert_eq!(
        verify(&v, ENTRA, bare.clone())
            .unwrap()
            .client_id
            .as_deref(),
        Some("6e74172b-be56-4843-9ff4-e66a39bb12e3")
    );

    // Neither shape: refused (no default in this preset).
    bare["sub"] = json!("something-else");
    let odd = verify(&v, ENTRA, bare).unwrap();
    assert_eq!(odd.subject.actor_type, None);
    assert!(
        odd.subject
            .unclassified_reason
            .as_deref()
            .unwrap()
            .starts_with(&format!("issuer `{ENTRA}`: "))
    );

    // `idtyp: user` says so even before `scp` is looked at.
    let mut user = entra_user();
    user["idtyp"] = json!("user");
    assert_eq!(
        verify(&v, ENTRA, user).unwrap().subject.actor_type,
        Some(ActorType::Human)
    );
}

// ---------------------------------------------------------------- Auth0

fn auth0_user() -> Value {
    json!({
        "sub": "auth0|6553da60a54af58e29493993",
        "aud": [DEMO_AUDIENCE, "https://example.us.auth0.com/userinfo"],
        "scope": "openid profile email read:tools",
        "azp": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja",
        "permissions": ["call:search_docs", "read:tools"],
        "https://example.com/roles": ["sre"]
    })
}

fn auth0_machine() -> Value {
    json!({
        "sub": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx@clients",
        "aud": DEMO_AUDIENCE,
        "scope": "call:deploy",
        "gty": "client-credentials",
        "azp": "awZfdIir8YFdGZWkvCejDoUb7SjTDicx",
        "permissions": ["call:deploy"]
    })
}

#[test]
fn auth0_user_and_machine_to_machine_tokens() {
    // A namespaced claim is named as it is: no escaping.
    let v = verifier(
        AUTH0,
        json!({"preset": "auth0", "claims": {"roles": "https://example.com/roles"}}),
    )
    .unwrap();
    let alice = verify(&v, AUTH0, auth0_user()).unwrap();
    assert_eq!(alice.subject.actor_type, Some(ActorType::Human));
    assert_eq!(alice.subject.roles, ["sre"]);
    assert_eq!(
        alice.subject.scopes,
        [
            "openid",
            "profile",
            "email",
            "read:tools",
            "call:search_docs",
            "read:tools"
        ]
    );
    let m2m = verify(&v, AUTH0, auth0_machine()).unwrap();
    assert_eq!(m2m.subject.actor_type, Some(ActorType::Service));
    assert_eq!(
        m2m.client_id.as_deref(),
        Some("awZfdIir8YFdGZWkvCejDoUb7SjTDicx")
    );
    // The RFC 9068 token profile has no `gty`; the `@clients` subject says it.
    let mut rfc9068 = auth0_machine();
    rfc9068.as_object_mut().unwrap().remove("gty");
    assert_eq!(
        verify(&v, AUTH0, rfc9068).unwrap().subject.actor_type,
        Some(ActorType::Service)
    );
    let mut delegated = auth0_user();
    delegated["act"] = json!({"sub": "research-agent@clients"});
    let id = verify(&v, AUTH0, delegated).unwrap();
    assert_eq!(
        id.actor.as_ref().unwrap().actor_type,
        Some(ActorType::Agent),
        "the actor rule comes first"
    );
}

// ---------------------------------------------------------------- Okta

fn okta_user() -> Value {
    json!({
        "ver": 1,
        "jti": "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
        "aud": DEMO_AUDIENCE,
        "cid": "0oa1mcpinspector5d7",
        "uid": "00u1alice8Yh2x5d7",
        "scp": ["openid", "profile", "mcp.call"],
        "auth_time": TEST_NOW - 60,
        "sub": "alice@example.com",
        "groups": ["Everyone", "sre"]
    })
}

fn okta_client_credentials() -> Value {
    json!({
        "ver": 1,
        "jti": "AT.q8GJv7m2Z0b6eT1Xy3c4d5e6f7g8h9i0",
        "aud": DEMO_AUDIENCE,
        "cid": "0oa2cideployer5d7",
        "scp": ["mcp.call"],
        "sub": "0oa2cideployer5d7"
    })
}

#[test]
fn okta_user_and_client_credentials_tokens() {
    let v = verifier(OKTA, json!({"preset": "okta"})).unwrap();
    let alice = verify(&v, OKTA, okta_user()).unwrap();
    assert_eq!(alice.subject.actor_type, Some(ActorType::Human));
    assert_eq!(alice.subject.scopes, ["openid", "profile", "mcp.call"]);
    assert_eq!(alice.subject.groups, ["Everyone", "sre"]);
    assert_eq!(alice.client_id.as_deref(), Some("0oa1mcpinspector5d7"));
    let ci = verify(&v, OKTA, okta_client_credentials()).unwrap();
    assert_eq!(ci.subject.actor_type, Some(ActorType::Service));
    assert_eq!(ci.client_id.as_deref(), Some("0oa2cideployer5d7"));
    // Neither a user id nor `sub` = `cid`: no default, refused.
    let mut odd = okta_client_credentials();
    odd["sub"] = json!("someone");
    assert_eq!(verify(&v, OKTA, odd).unwrap().subject.actor_type, None);
}

// ---------------------------------------------------------------- paths and rules

#[test]
fn claim_paths_reach_nested_objects_arrays_and_odd_names() {
    let v = verifier(
        KEYCLOAK,
        json!({"claims": {
            "subject": "/ext/ids/0",
            "groups": ["/org/teams", "/a~1b/c~0d"],
            "roles": "/resource_access/mcp-server/roles",
            "default_actor_type": "human"
        }}),
    )
    .unwrap();
    let id = verify(
        &v,
        KEYCLOAK,
        json!({"aud": DEMO_AUDIENCE, "ext": {"ids": ["u-1", "u-2"]},
               "org": {"teams": "sre"}, "a/b": {"c~d": ["x"]},
               "resource_access": {"mcp-server": {"roles": ["deployer"]}}}),
    )
    .unwrap();
    assert_eq!(id.subject.subject, "u-1");
    assert_eq!(id.subject.groups, ["sre", "x"]);
    assert_eq!(id.subject.roles, ["deployer"]);
    // Absent at any level: no values.
    let id = verify(
        &v,
        KEYCLOAK,
        json!({"aud": DEMO_AUDIENCE, "ext": {"ids": ["u-1"]}, "org": {}}),
    )
    .unwrap();
    assert!(id.subject.groups.is_empty() && id.subject.roles.is_empty());
}

#[test]
fn a_claim_of_the_wrong_shape_refuses_the_token() {
    let v = verifier(KEYCLOAK, json!({"preset": "keycloak"})).unwrap();
    for (claims, name) in [
        (json!({"realm_access": "admin"}), "/realm_access/roles"),
        (
            json!({"realm_access": {"roles": [1, 2]}}),
            "/realm_access/roles",
        ),
        (
            json!({"realm_access": {"roles": {"admin": true}}}),
            "/realm_access/roles",
        ),
        (json!({"groups": [["/sre"]]}), "groups"),
        (json!({"client_id": {"id": "x"}}), "client_id"),
        (json!({"actor_type": ["human"]}), "actor_type"),
    ] {
        let mut token = json!({"aud": DEMO_AUDIENCE, "sub": "u-1"});
        for (k, v) in claims.as_object().unwrap() {
            token[k] = v.clone();
        }
        assert_eq!(
            verify(&v, KEYCLOAK, token).unwrap_err(),
            TokenError::BadClaim(name.into()),
            "{claims}"
        );
    }
}

#[test]
fn the_actor_type_claim_decides_before_the_rules() {
    let v = verifier(KEYCLOAK, json!({"preset": "keycloak"})).unwrap();
    let mut token = keycloak_service_account();
    token["actor_type"] = json!("agent");
    assert_eq!(
        verify(&v, KEYCLOAK, token.clone())
            .unwrap()
            .subject
            .actor_type,
        Some(ActorType::Agent)
    );
    token["actor_type"] = json!("robot");
    let id = verify(&v, KEYCLOAK, token).unwrap();
    assert_eq!(
        id.subject.actor_type, None,
        "an unmapped value is not passed over"
    );
    assert_eq!(
        id.subject.unclassified_reason.as_deref(),
        Some(
            "issuer `https://sso.example.com/realms/demo`: `actor_type` value `robot` is not in `claims.actor_type_values`"
        )
    );
}

#[test]
fn rules_match_in_order_and_all_conditions_of_one_must_hold() {
    let v = verifier(
        OKTA,
        json!({"claims": {"actor_type_rules": [
            {"when": [{"claim": "scp", "equals": "mcp.call"}, {"absent": "uid"}], "type": "service"},
            {"when": {"claim": "email", "suffix": "@bots.example.com"}, "type": "agent"},
            {"when": {"claim": "email", "prefix": "ops-"}, "type": "service"},
            {"when": {"claim": "level", "equals": 3}, "type": "human"},
            {"when": {"claim": "verified", "equals": true}, "type": "human"},
            {"when": {"party": "subject"}, "type": "agent"}
        ]}}),
    )
    .unwrap();
    let kind = |claims: Value| {
        let mut token = json!({"aud": DEMO_AUDIENCE, "sub": "s"});
        for (k, v) in claims.as_object().unwrap() {
            token[k] = v.clone();
        }
        verify(&v, OKTA, token).unwrap().subject.actor_type
    };
    assert_eq!(
        kind(json!({"scp": ["openid", "mcp.call"]})),
        Some(ActorType::Service)
    );
    assert_eq!(
        kind(json!({"scp": ["mcp.call"], "uid": "u"})),
        Some(ActorType::Agent),
        "falls to the last rule"
    );
    assert_eq!(
        kind(json!({"email": "ops-x@bots.example.com"})),
        Some(ActorType::Agent),
        "the first match wins"
    );
    assert_eq!(
        kind(json!({"email": "ops-x@example.com"})),
        Some(ActorType::Service)
    );
    assert_eq!(
        kind(json!({"level": 3, "uid": "u"})),
        Some(ActorType::Human)
    );
    assert_eq!(kind(json!({"verified": true})), Some(ActorType::Human));
    assert_eq!(
        kind(json!({"verified": "true"})),
        Some(ActorType::Agent),
        "types must match"
    );
}

#[test]
fn the_default_actor_type_never_classifies_an_actor() {
    let v = verifier(KEYCLOAK, json!({"claims": {"default_actor_type": "human"}})).unwrap();
    let id = verify(
        &v,
        KEYCLOAK,
        json!({"aud": DEMO_AUDIENCE, "sub": "alice", "act": {"sub": "bot"}}),
    )
    .unwrap();
    assert_eq!(id.subject.actor_type, Some(ActorType::Human));
    assert_eq!(id.actor.as_ref().unwrap().actor_type, None);
}

#[test]
fn bad_claim_settings_are_refused_at_load_time() {
    let error = |claims: Value| {
        verifier(KEYCLOAK, json!({"claims": claims}))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error(json!({"roles": "realm_access.roles"})),
        "identity.issuers[0].claims.roles: `realm_access.roles` is ambiguous: write `/realm_access/roles` for a nested claim, or `/realm_access.roles` for a top-level claim whose name has dots"
    );
    assert_eq!(
        error(json!({"subject": ""})),
        "identity.issuers[0].claims.subject: a claim reference must not be empty"
    );
    assert_eq!(
        error(json!({"groups": ["/a//b"]})),
        "identity.issuers[0].claims.groups: `/a//b` has an empty claim name"
    );
    assert_eq!(
        error(json!({"scope": "/a~2"})),
        "identity.issuers[0].claims.scope: `/a~2`: `~` must be followed by `0` or `1` in a JSON Pointer"
    );
    let both = error(
        json!({"actor_type_rules": [{"when": {"has": "a", "absent": "b"}, "type": "human"}]}),
    );
    assert!(
        both.starts_with(
            "identity.issuers[0].claims.actor_type_rules[0].when: a condition is one of "
        ),
        "{both}"
    );
    let neither = error(json!({"actor_type_rules": [{"when": {"claim": "a"}, "type": "human"}]}));
    assert!(neither.contains("a condition is one of"), "{neither}");
    assert_eq!(
        error(json!({"actor_type_rules": [{"when": [], "type": "human"}]})),
        "identity.issuers[0].claims.actor_type_rules[0].when: no conditions"
    );
    assert_eq!(
        error(
            json!({"actor_type_rules": [{"when": {"claim": "a", "equals": ["x"]}, "type": "human"}]})
        ),
        "identity.issuers[0].claims.actor_type_rules[0].when: `equals` must be a string, number or boolean"
    );
    // Unknown fields and presets are errors of the document's shape.
    let config = json!({"issuers": [{"issuer": KEYCLOAK, "audiences": ["a"], "jwks": demo_jwks(), "preset": "ping"}]});
    assert!(serde_json::from_value::<IdentityConfig>(config).is_err());
    let config = json!({"issuers": [{"issuer": KEYCLOAK, "audiences": ["a"], "jwks": demo_jwks(),
        "claims": {"actor_type_rules": [{"when": {"hass": "a"}, "type": "human"}]}}]});
    assert!(serde_json::from_value::<IdentityConfig>(config).is_err());
}
