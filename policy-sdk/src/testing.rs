//! Test support: a token issuer holding the demo keys of
//! `examples/keys/` (never use them outside tests and demos), and builders for
//! the example configuration. Compiled for tests and with the `testing`
//! feature (the CLI's token minting).

use jwt_simple::prelude::*;
use serde_json::{Map, Value, json};

/// Issuer of the example policy.
pub const DEMO_ISSUER: &str = "https://idp.demo.warden.test";
/// Audience (resource URI) of the example policy.
pub const DEMO_AUDIENCE: &str = "https://mcp.demo.warden.test/mcp";
/// A fixed "now" for deterministic tests: 2027-01-15T08:00:00Z.
pub const TEST_NOW: u64 = 1_800_000_000;

const ES256_PEM: &str = include_str!("../../examples/keys/demo-es256.pem");
const RS256_PEM: &str = include_str!("../../examples/keys/demo-rs256.pem");
const EDDSA_PEM: &str = include_str!("../../examples/keys/demo-eddsa.pem");
const JWKS: &str = include_str!("../../examples/keys/demo.jwks.json");

/// The demo public key set.
pub fn demo_jwks() -> Value {
    serde_json::from_str(JWKS).unwrap_or(Value::Null)
}

/// Signs tokens with the demo keys.
pub struct DemoIssuer {
    es256: ES256KeyPair,
    rs256: RS256KeyPair,
    eddsa: Ed25519KeyPair,
}

/// Signing algorithms of the demo keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoAlg {
    ES256,
    RS256,
    EdDSA,
}

impl DemoAlg {
    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            DemoAlg::ES256 => "ES256",
            DemoAlg::RS256 => "RS256",
            DemoAlg::EdDSA => "EdDSA",
        }
    }
}

impl DemoIssuer {
    pub fn new() -> Result<Self, jwt_simple::Error> {
        Ok(Self {
            es256: ES256KeyPair::from_pem(ES256_PEM)?.with_key_id("demo-es256"),
            rs256: RS256KeyPair::from_pem(RS256_PEM)?.with_key_id("demo-rs256"),
            eddsa: Ed25519KeyPair::from_pem(EDDSA_PEM)?.with_key_id("demo-eddsa"),
        })
    }

    /// Signs a token whose claims are exactly `claims` (registered ones
    /// included), issued at `now`.
    pub fn sign(&self, alg: DemoAlg, claims: &Value) -> Result<String, jwt_simple::Error> {
        let mut custom: Map<String, Value> = claims.as_object().cloned().unwrap_or_default();
        let mut jwt = JWTClaims {
            issued_at: None,
            expires_at: None,
            invalid_before: None,
            issuer: None,
            subject: None,
            audiences: None,
            jwt_id: None,
            nonce: None,
            custom: Map::new(),
        };
        let secs = |v: Option<Value>| v.and_then(|v| v.as_u64()).map(Duration::from_secs);
        jwt.issued_at = secs(custom.remove("iat"));
        jwt.expires_at = secs(custom.remove("exp"));
        jwt.invalid_before = secs(custom.remove("nbf"));
        jwt.issuer = custom
            .remove("iss")
            .and_then(|v| v.as_str().map(str::to_owned));
        jwt.subject = custom
            .remove("sub")
            .and_then(|v| v.as_str().map(str::to_owned));
        jwt.jwt_id = custom
            .remove("jti")
            .and_then(|v| v.as_str().map(str::to_owned));
        jwt.audiences = match custom.remove("aud") {
            Some(Value::String(a)) => Some(Audiences::AsString(a)),
            Some(Value::Array(list)) => Some(Audiences::AsSet(
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            )),
            _ => None,
        };
        jwt.custom = custom;
        match alg {
            DemoAlg::ES256 => self.es256.sign(jwt),
            DemoAlg::RS256 => self.rs256.sign(jwt),
            DemoAlg::EdDSA => self.eddsa.sign(jwt),
        }
    }

    /// A valid ES256 token for the example policy, with `extra` claims
    /// merged over the defaults (`sub`, `iss`, `aud`, `iat`, `exp` at `now`).
    pub fn token(&self, now: u64, extra: Value) -> Result<String, jwt_simple::Error> {
        self.sign(DemoAlg::ES256, &standard_claims(now, extra))
    }
}

/// Default claims for the example policy at `now`, overlaid with `extra`.
pub fn standard_claims(now: u64, extra: Value) -> Value {
    let mut claims = json!({
        "iss": DEMO_ISSUER,
        "aud": DEMO_AUDIENCE,
        "sub": "alice",
        "actor_type": "human",
        "iat": now,
        "exp": now + 600,
    });
    if let (Some(base), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        overlay_claims(base, extra);
    }
    claims
}

/// Lays `extra` over `base`: each claim replaces the default, and `null`
/// removes it.
pub fn overlay_claims(base: &mut Map<String, Value>, extra: Map<String, Value>) {
    for (k, v) in extra {
        if v.is_null() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
}

/// Builds an unsigned-looking token from raw parts (for `alg: none` and
/// header-tampering tests).
pub fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The identity section of the example policy, with the demo keys inline.
pub fn demo_identity_json() -> Value {
    json!({
        "issuers": [{
            "issuer": DEMO_ISSUER,
            "audiences": [DEMO_AUDIENCE],
            "jwks": demo_jwks(),
            "algorithms": ["ES256", "RS256", "EdDSA"],
        }],
    })
}

/// A principal with only a subject, an actor type and groups.
pub fn principal(
    subject: &str,
    actor_type: Option<crate::identity::ActorType>,
    groups: &[&str],
) -> crate::identity::Principal {
    crate::identity::Principal {
        subject: subject.into(),
        actor_type,
        unclassified_reason: None,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        roles: Vec::new(),
        scopes: Vec::new(),
        claims: Map::new(),
    }
}

/// A direct request's identity: `subject` acts for itself.
pub fn direct(subject: crate::identity::Principal) -> crate::identity::Identity {
    crate::identity::Identity {
        issuer: "iss".into(),
        subject,
        actor: None,
        prior_actors: Vec::new(),
        client_id: None,
        token_id: None,
        header_values: crate::identity::Derived::default(),
        audit_names: crate::identity::Derived::default(),
        session_binding: crate::identity::Derived::default(),
    }
}

/// A delegated request's identity: `actor` acts for `subject`.
pub fn delegated(
    subject: crate::identity::Principal,
    actor: crate::identity::Principal,
) -> crate::identity::Identity {
    crate::identity::Identity {
        actor: Some(actor),
        ..direct(subject)
    }
}

/// The principals the policy tests use: an engineer, a salesperson, an agent.
pub fn alice() -> crate::identity::Principal {
    principal("alice", Some(crate::identity::ActorType::Human), &["eng"])
}

pub fn bob() -> crate::identity::Principal {
    principal("bob", Some(crate::identity::ActorType::Human), &["sales"])
}

pub fn agent() -> crate::identity::Principal {
    principal(
        "research-agent",
        Some(crate::identity::ActorType::Agent),
        &[],
    )
}

/// The `tools/call` body of the gate benchmarks: criterion's
/// `gate/whole_decision/cached_token` and its twin in V8, the
/// `token_timing` example.
pub const GATE_BODY: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"deploy","arguments":{"environment":"staging","replicas":3,"note":"nightly rollout of the search index"}}}"#;

/// The gate benchmarks' configuration: the demo identity, and one rule that
/// lets anyone call `deploy` in staging.
pub fn gate_document() -> Value {
    json!({"version": 1, "identity": demo_identity_json(), "rules": [
        {"id": "deploy-staging", "effect": "allow", "owner": "o", "tools": ["deploy"],
         "arguments": [{"pointer": "/environment", "equals": "staging"}]}
    ]})
}

/// The gate benchmarks' request: a POST of [`GATE_BODY`] to `/mcp` with
/// `authorization`, in one chunk.
pub fn gate_request(authorization: &str) -> crate::exchange::memory::Request {
    let header = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    crate::exchange::memory::Request {
        headers: vec![
            header(":method", "POST"),
            header(":path", "/mcp"),
            header("authorization", authorization),
            header("content-type", "application/json"),
            header("content-length", &GATE_BODY.len().to_string()),
            header("x-request-id", "bench"),
        ],
        chunks: vec![GATE_BODY.as_bytes().to_vec()],
        trailers: None,
        dynamic_metadata: None,
    }
}

/// One run of the gate benchmarks: `request` through a new `Exchange` on the
/// in-memory host (one that honours a header pause; the filter's default
/// header mode), to the end of the stream. The allowed decision's audit
/// line, as the filter writes it, or why there is none.
pub fn run_gate(
    warden: &std::rc::Rc<crate::Warden>,
    request: &crate::exchange::memory::Request,
    now_unix_nanos: u128,
) -> Result<String, &'static str> {
    use crate::exchange::memory::{Driver, HeaderPause, MemoryHost};
    let mut exchange = crate::Exchange::new(Some(std::rc::Rc::clone(warden)));
    let host = MemoryHost::new(now_unix_nanos, HeaderPause::Honoured);
    let mut driver = Driver::new(&mut exchange, host);
    driver.send_request(std::hint::black_box(request));
    driver.finish();
    let [audit] = driver.host.decisions()[..] else {
        return Err("the gate made no single decision");
    };
    if !audit.is_allowed() || driver.host.reply.is_some() {
        return Err("the gate refused the request");
    }
    Ok(audit.to_json_line())
}
