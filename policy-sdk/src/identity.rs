//! Who is calling: bearer-token verification against a JWKS, and the actor
//! model (human, service or agent; RFC 8693 delegation chains).

use std::collections::{BTreeMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::{JsonLimits, parse_strict};

/// The kinds of principal Warden tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorType {
    Human,
    Service,
    Agent,
}

impl ActorType {
    pub const ALL: [ActorType; 3] = [ActorType::Human, ActorType::Service, ActorType::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Human => "human",
            ActorType::Service => "service",
            ActorType::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Signature algorithms Warden verifies. Symmetric (HS*) algorithms and
/// `none` are deliberately absent: a verifier holding public keys must never
/// accept them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    ES256,
    RS256,
    EdDSA,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// Names of the claims Warden reads, and how actor-type values map to types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub actor_type: String,
    /// Claim value → actor type; by default each type's own name.
    pub actor_type_values: BTreeMap<String, ActorType>,
    pub groups: String,
    pub roles: String,
    /// Space-separated string (OAuth `scope`) or array (`scp`).
    pub scope: String,
    /// Claims tried in order for the OAuth client id.
    pub client_id: Vec<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            actor_type: "actor_type".into(),
            actor_type_values: ActorType::ALL
                .iter()
                .map(|t| (t.as_str().to_owned(), *t))
                .collect(),
            groups: "groups".into(),
            roles: "roles".into(),
            scope: "scope".into(),
            client_id: vec!["client_id".into(), "azp".into()],
        }
    }
}

/// One party in a request: the token's subject or an actor from `act`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    pub subject: String,
    /// `None` when the claim is missing or its value is not mapped; such a
    /// principal is denied.
    pub actor_type: Option<ActorType>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    /// Every claim of this party, for `claims` conditions in rules.
    #[serde(skip)]
    pub claims: Map<String, Value>,
}

/// The verified identity behind one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub issuer: String,
    /// The token's subject: the party on whose behalf the request is made.
    pub subject: Principal,
    /// The current actor (outermost `act`), when someone acts for the subject.
    pub actor: Option<Principal>,
    /// Earlier actors (nested `act`, outermost first), recorded for audit.
    pub prior_actors: Vec<Principal>,
    pub client_id: Option<String>,
    pub token_id: Option<String>,
}

impl Identity {
    /// The party actually performing the request.
    pub fn acting(&self) -> &Principal {
        self.actor.as_ref().unwrap_or(&self.subject)
    }

    /// Subjects of the delegation chain: subject, current actor, earlier actors.
    pub fn chain(&self) -> Vec<String> {
        std::iter::once(&self.subject)
            .chain(self.actor.iter())
            .chain(self.prior_actors.iter())
            .map(|p| p.subject.clone())
            .collect()
    }
}

/// Identity settings of a policy (`identity:` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Required `iss`.
    pub issuer: String,
    /// The protected resource's URI; `aud` must contain it.
    pub audience: String,
    /// The JSON Web Key Set, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// A JWKS file, resolved relative to the policy file by the CLI and
    /// inlined into `jwks` before the filter sees the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Deepest accepted `act` nesting (1 = one actor, no earlier ones).
    #[serde(default = "default_max_chain")]
    pub max_delegation_depth: usize,
    #[serde(default)]
    pub claims: ClaimNames,
}

fn default_algorithms() -> Vec<String> {
    vec!["ES256".into(), "RS256".into(), "EdDSA".into()]
}
fn default_skew() -> u64 {
    60
}
fn default_max_token_bytes() -> usize {
    8 * 1024
}
fn default_max_chain() -> usize {
    4
}

/// Problems with the identity configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyConfigError {
    #[error("identity: `jwks` is required (or `jwks_file`, resolved by `warden compile`)")]
    MissingJwks,
    #[error(
        "identity: `jwks_file` must be inlined as `jwks` before the filter loads it (use `warden compile`)"
    )]
    UnresolvedJwksFile,
    #[error(
        "identity.algorithms: `{0}` is not supported (supported: ES256, RS256, EdDSA; symmetric and `none` never are)"
    )]
    UnsupportedAlgorithm(String),
    #[error("identity.algorithms: the list is empty")]
    NoAlgorithms,
    #[error("identity.jwks: {0}")]
    BadJwks(String),
    #[error("identity.jwks: key {index}: {message}")]
    BadKey { index: usize, message: String },
    #[error("identity.jwks: no key can verify any allowed algorithm")]
    NoUsableKey,
    #[error("identity.{field}: must not be empty")]
    Empty { field: &'static str },
}

enum PublicKey {
    Es256(ES256PublicKey),
    // Boxed: an RSA key is much larger than the others.
    Rs256(Box<RS256PublicKey>),
    Ed(Ed25519PublicKey),
}

struct VerifierKey {
    kid: Option<String>,
    alg: Algorithm,
    key: PublicKey,
}

/// Verifies bearer tokens for one issuer. Built once per configuration.
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: Vec<VerifierKey>,
    skew_seconds: u64,
    max_token_bytes: usize,
    max_delegation_depth: usize,
    claims: ClaimNames,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Why a token was refused. The message goes into the 401's
/// `error_description` and the audit line; it never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("authorization header is not a bearer token")]
    NotBearer,
    #[error("token is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("token is not a compact JWS")]
    Malformed,
    #[error("token header is invalid: {0}")]
    BadHeader(String),
    #[error("algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("token has critical header extensions")]
    CriticalHeader,
    #[error("no key with id `{0}`")]
    UnknownKey(String),
    #[error("token names no key id and {0} keys could verify it")]
    AmbiguousKey(usize),
    #[error("key `{kid}` is for {key_alg}, not {token_alg}")]
    KeyAlgorithmMismatch {
        kid: String,
        key_alg: &'static str,
        token_alg: String,
    },
    #[error("token rejected: {0}")]
    Rejected(String),
    #[error("token has no `exp`")]
    NoExpiry,
    #[error("token has no `sub`")]
    NoSubject,
    #[error("claim `{0}` is malformed")]
    BadClaim(String),
    #[error("delegation chain is deeper than {0}")]
    ChainTooDeep(usize),
}

impl TokenVerifier {
    pub fn new(config: &IdentityConfig) -> Result<Self, KeyConfigError> {
        if config.jwks_file.is_some() && config.jwks.is_none() {
            return Err(KeyConfigError::UnresolvedJwksFile);
        }
        if config.issuer.is_empty() {
            return Err(KeyConfigError::Empty { field: "issuer" });
        }
        if config.audience.is_empty() {
            return Err(KeyConfigError::Empty { field: "audience" });
        }
        let jwks = config.jwks.as_ref().ok_or(KeyConfigError::MissingJwks)?;
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            let alg = Algorithm::parse(name)
                .ok_or_else(|| KeyConfigError::UnsupportedAlgorithm(name.clone()))?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        if algorithms.is_empty() {
            return Err(KeyConfigError::NoAlgorithms);
        }
        let keys = parse_jwks(jwks, &algorithms)?;
        if keys.is_empty() {
            return Err(KeyConfigError::NoUsableKey);
        }
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            algorithms,
            keys,
            skew_seconds: config.clock_skew_seconds,
            max_token_bytes: config.max_token_bytes,
            max_delegation_depth: config.max_delegation_depth,
            claims: config.claims.clone(),
        })
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Takes the token out of an `Authorization` header value.
    pub fn bearer_token(header: Option<&str>) -> Result<&str, TokenError> {
        let header = header.ok_or(TokenError::Missing)?.trim();
        let (scheme, token) = header.split_once(' ').ok_or(TokenError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::NotBearer);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        Ok(token)
    }

    /// Verifies `token` at `now_unix_seconds` and returns the identity it
    /// carries.
    pub fn verify(&self, token: &str, now_unix_seconds: u64) -> Result<Identity, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge {
                size: token.len(),
                limit: self.max_token_bytes,
            });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| TokenError::Malformed)?;
        let header = parse_strict(
            &header_bytes,
            JsonLimits {
                max_bytes: 4096,
                max_depth: 4,
            },
        )
        .map_err(|e| TokenError::BadHeader(e.to_string()))?;
        let header = header
            .as_object()
            .ok_or_else(|| TokenError::BadHeader("not an object".into()))?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::BadHeader("`alg` is missing".into()))?;
        let alg = Algorithm::parse(alg_name)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| TokenError::AlgorithmNotAllowed(alg_name.to_owned()))?;
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        // `jku`, `x5u`, `jwk` and `x5c` are ignored on purpose: keys come
        // only from the configured key set, never from the token itself.
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(TokenError::BadHeader("`kid` must be a string".into())),
        };
        let key = self.select_key(kid, alg, alg_name)?;
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([self.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([self.audience.clone()])),
            time_tolerance: Some(Duration::from_secs(self.skew_seconds)),
            artificial_time: Some(Duration::from_secs(now_unix_seconds)),
            max_token_length: Some(self.max_token_bytes),
            ..Default::default()
        };
        let verified = match &key.key {
            PublicKey::Es256(k) => k.verify_token::<Map<String, Value>>(token, Some(options)),
            PublicKey::Rs256(k) => k.verify_token::<Map<String, Value>>(token, Some(options)),
            PublicKey::Ed(k) => k.verify_token::<Map<String, Value>>(token, Some(options)),
        }
        .map_err(|e| TokenError::Rejected(describe_jwt_error(&e)))?;
        if verified.expires_at.is_none() {
            return Err(TokenError::NoExpiry);
        }
        let subject = verified.subject.clone().ok_or(TokenError::NoSubject)?;
        let custom = verified.custom;
        let client_id = self
            .claims
            .client_id
            .iter()
            .find_map(|name| custom.get(name).and_then(Value::as_str))
            .map(str::to_owned);
        let subject_principal = self.principal(subject, custom.clone())?;
        let (actor, prior_actors) = self.delegation_chain(&custom)?;
        Ok(Identity {
            issuer: self.issuer.clone(),
            subject: subject_principal,
            actor,
            prior_actors,
            client_id,
            token_id: verified.jwt_id,
        })
    }

    fn select_key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        alg_name: &str,
    ) -> Result<&VerifierKey, TokenError> {
        match kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))?;
                if key.alg != alg {
                    return Err(TokenError::KeyAlgorithmMismatch {
                        kid: kid.to_owned(),
                        key_alg: key.alg.as_str(),
                        token_alg: alg_name.to_owned(),
                    });
                }
                Ok(key)
            }
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.alg == alg);
                match (candidates.next(), candidates.count()) {
                    (Some(key), 0) => Ok(key),
                    (None, _) => Err(TokenError::UnknownKey("(none)".into())),
                    (Some(_), more) => Err(TokenError::AmbiguousKey(more + 1)),
                }
            }
        }
    }

    /// Builds a principal from a claims object (the token's top level, or
    /// one `act` object).
    fn principal(
        &self,
        subject: String,
        claims: Map<String, Value>,
    ) -> Result<Principal, TokenError> {
        let names = &self.claims;
        let actor_type = claims
            .get(&names.actor_type)
            .and_then(Value::as_str)
            .and_then(|v| names.actor_type_values.get(v).copied());
        let groups = string_list(&claims, &names.groups, false)?;
        let roles = string_list(&claims, &names.roles, false)?;
        let scopes = string_list(&claims, &names.scope, true)?;
        Ok(Principal {
            subject,
            actor_type,
            groups,
            roles,
            scopes,
            claims,
        })
    }

    /// RFC 8693 §4.1: the outermost `act` is the current actor; nested `act`
    /// members are prior actors, kept for the audit trail only.
    fn delegation_chain(
        &self,
        claims: &Map<String, Value>,
    ) -> Result<(Option<Principal>, Vec<Principal>), TokenError> {
        let mut actors = Vec::new();
        let mut next = claims.get("act");
        while let Some(act) = next {
            if actors.len() >= self.max_delegation_depth {
                return Err(TokenError::ChainTooDeep(self.max_delegation_depth));
            }
            let act = act
                .as_object()
                .ok_or_else(|| TokenError::BadClaim("act".into()))?;
            let subject = act
                .get("sub")
                .and_then(Value::as_str)
                .ok_or_else(|| TokenError::BadClaim("act.sub".into()))?;
            next = act.get("act");
            let mut own = act.clone();
            own.remove("act");
            actors.push(self.principal(subject.to_owned(), own)?);
        }
        let mut actors = actors.into_iter();
        let current = actors.next();
        Ok((current, actors.collect()))
    }
}

fn string_list(
    claims: &Map<String, Value>,
    name: &str,
    split_spaces: bool,
) -> Result<Vec<String>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if split_spaces => {
            Ok(s.split_whitespace().map(str::to_owned).collect())
        }
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| TokenError::BadClaim(name.to_owned())),
        Some(_) => Err(TokenError::BadClaim(name.to_owned())),
    }
}

fn describe_jwt_error(error: &jwt_simple::Error) -> String {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    for (needle, said) in [
        ("expired", "token has expired"),
        ("not valid yet", "token is not valid yet"),
        ("audience", "audience does not include this resource"),
        ("issuer", "issuer is not trusted"),
        ("signature", "signature does not verify"),
        ("clock drift", "token was issued in the future"),
    ] {
        if lower.contains(needle) {
            return said.to_owned();
        }
    }
    text
}

fn parse_jwks(jwks: &Value, allowed: &[Algorithm]) -> Result<Vec<VerifierKey>, KeyConfigError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| KeyConfigError::BadJwks("must be an object with a `keys` array".into()))?;
    let mut out = Vec::new();
    let mut kids = HashSet::new();
    for (index, jwk) in keys.iter().enumerate() {
        let bad = |message: String| KeyConfigError::BadKey { index, message };
        let jwk = jwk.as_object().ok_or_else(|| bad("not an object".into()))?;
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| jwk.contains_key(*m))
        {
            return Err(bad(
                "contains private or symmetric key material; publish only public keys".into(),
            ));
        }
        if let Some(usage) = field("use")
            && usage != "sig"
        {
            continue;
        }
        let bytes = |name: &str| -> Result<Vec<u8>, KeyConfigError> {
            let text = field(name).ok_or_else(|| bad(format!("`{name}` is missing")))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| bad(format!("`{name}` is not base64url")))
        };
        let kid = field("kid").map(str::to_owned);
        if let Some(kid) = &kid
            && !kids.insert(kid.clone())
        {
            return Err(bad(format!("duplicate kid `{kid}`")));
        }
        let (alg, key) = match (field("kty"), field("crv")) {
            (Some("EC"), Some("P-256")) => {
                let mut sec1 = vec![0x04];
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad("P-256 coordinates must be 32 bytes".into()));
                }
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                let key = ES256PublicKey::from_bytes(&sec1).map_err(|e| bad(e.to_string()))?;
                (Algorithm::ES256, PublicKey::Es256(key))
            }
            (Some("RSA"), _) => {
                let key = RS256PublicKey::from_components(&bytes("n")?, &bytes("e")?)
                    .map_err(|e| bad(e.to_string()))?;
                (Algorithm::RS256, PublicKey::Rs256(Box::new(key)))
            }
            (Some("OKP"), Some("Ed25519")) => {
                let key =
                    Ed25519PublicKey::from_bytes(&bytes("x")?).map_err(|e| bad(e.to_string()))?;
                (Algorithm::EdDSA, PublicKey::Ed(key))
            }
            // Keys of other types or curves may sit in an IdP's set for other
            // consumers; they are not usable here and are skipped.
            _ => continue,
        };
        if let Some(declared) = field("alg")
            && declared != alg.as_str()
        {
            // e.g. an RSA key published for PS256 only: not for RS256.
            continue;
        }
        if allowed.contains(&alg) {
            out.push(VerifierKey { kid, alg, key });
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
