//! Who is calling: bearer-token verification against a JWKS, and the actor
//! model (human, service or agent; RFC 8693 delegation chains).

mod cache;
mod claims;
mod ecdsa_p256;
mod ed25519_point;
pub mod envoy_metadata;
mod field32;
mod keys;
mod p256_point;
mod revocation;
mod rsa_pkcs1;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest as _;

pub use cache::CacheConfig;
pub use claims::{
    ActorTypeRule, ClaimNames, ClaimPath, ClaimRefs, Condition, Conditions, Party, Preset,
};
pub use keys::{Algorithm, JwksError, VerifierKey, parse_jwks};
pub use revocation::{RemoteSource, RevocationConfig, RevocationLists, RevokedEntry};

use crate::json::{JsonLimits, parse_strict};
use cache::{CacheKey, VerificationCache};
use claims::ClaimMap;
use revocation::Revocations;

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

/// One party in a request: the token's subject or an actor from `act`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Principal {
    pub subject: String,
    /// `None` when neither the actor-type claim nor a rule (nor, for the
    /// subject, the issuer's default) classifies the party; such a
    /// principal is denied.
    pub actor_type: Option<ActorType>,
    /// Why `actor_type` is `None`: the issuer and the setting to add. For
    /// the audit line only, never for the caller.
    #[serde(skip)]
    pub unclassified_reason: Option<String>,
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
    /// The identity headers' values, encoded for the upstream (in the
    /// gate's order), worked out on the first forwarded request and kept:
    /// the verification cache hands every request with the same token this
    /// one `Rc<Identity>`.
    #[serde(skip)]
    pub header_values: Derived<[Option<Arc<str>>; 6]>,
    /// The names audit records carry, worked out on the first record and
    /// shared by every later one ([`Identity::audit_names`]).
    #[serde(skip)]
    pub audit_names: Derived<AuditNames>,
    /// What the identity's sessions are bound to
    /// (`Warden::session_binding`), worked out on the first forwarded
    /// request and kept.
    #[serde(skip)]
    pub session_binding: Derived<Arc<str>>,
}

/// An identity's names as its audit records hold them: shared strings, so
/// a record takes them without copying (each copy was an allocation, a
/// copy and a free per name, on every request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNames {
    pub subject: Arc<str>,
    /// The current actor, when someone acts for the subject.
    pub actor: Option<Arc<str>>,
    /// Subject, current actor, then earlier actors.
    pub chain: Arc<[Arc<str>]>,
    pub client_id: Option<Arc<str>>,
    pub issuer: Arc<str>,
}

/// A value worked out from an identity's fields once, and kept with it.
/// It says nothing the fields do not: two identities compare as their
/// fields do, whether or not it was worked out yet. A copy starts empty:
/// an identity copied and then changed (`Identity { actor, ..copy }`)
/// must not carry the values of the one it was copied from.
pub struct Derived<T>(OnceLock<T>);

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T> Clone for Derived<T> {
    fn clone(&self) -> Self {
        Self(OnceLock::new())
    }
}

impl<T> Derived<T> {
    pub(crate) fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(make)
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> std::fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

impl Identity {
    /// Number of actors in the delegation chain (0 for a direct request).
    pub fn delegation_depth(&self) -> usize {
        usize::from(self.actor.is_some()) + self.prior_actors.len()
    }

    /// The party actually performing the request.
    pub fn acting(&self) -> &Principal {
        self.actor.as_ref().unwrap_or(&self.subject)
    }

    /// The names audit records carry, shared with every record of this
    /// identity.
    pub fn audit_names(&self) -> &AuditNames {
        self.audit_names.get_or_init(|| {
            // The subject and the actor are the chain's first two links:
            // shared with it, not written again.
            let chain: Arc<[Arc<str>]> = self.subjects().map(Arc::from).collect();
            let mut links = chain.iter().cloned();
            AuditNames {
                subject: links.next().unwrap_or_default(),
                actor: self.actor.as_ref().and_then(|_| links.next()),
                chain: Arc::clone(&chain),
                client_id: self.client_id.as_deref().map(Arc::from),
                issuer: Arc::from(self.issuer.as_str()),
            }
        })
    }

    /// Subjects of the delegation chain, borrowed: subject, current actor,
    /// earlier actors.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.subject)
            .chain(self.actor.iter())
            .chain(self.prior_actors.iter())
            .map(|p| p.subject.as_str())
    }

    /// Subjects of the delegation chain: subject, current actor, earlier actors.
    pub fn chain(&self) -> Vec<String> {
        self.subjects().map(str::to_owned).collect()
    }
}

/// Where an issuer's keys come from when they are fetched by the proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwks {
    /// The proxy cluster (Envoy) that reaches the identity provider.
    pub cluster: String,
    /// Path of the JWKS, or of the OpenID configuration with `discovery`.
    pub path: String,
    /// `:authority` of the request; the cluster name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// `path` is `/.well-known/openid-configuration`: check its `issuer`,
    /// read `jwks_uri` from it and fetch the key set from the cluster its
    /// host maps to.
    #[serde(default)]
    pub discovery: bool,
    /// With `discovery`: the clusters that reach `jwks_uri` hosts other
    /// than this source's own `authority` (which maps to `cluster`), by
    /// host or `host:port`. A `jwks_uri` on any other host is refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_set_hosts: BTreeMap<String, String>,
    /// With `discovery`: how long the discovered `jwks_uri` is used before
    /// the configuration is read again.
    #[serde(default = "default_discovery_refresh")]
    pub discovery_refresh_seconds: u64,
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    /// Shortest time between two fetches triggered by unknown key ids, across
    /// all workers: a flood of random `kid`s cannot hammer the provider.
    #[serde(default = "default_min_refresh")]
    pub min_refresh_interval_seconds: u64,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_refresh() -> u64 {
    300
}
fn default_discovery_refresh() -> u64 {
    3600
}

impl RemoteJwks {
    /// The `:authority` of requests to `cluster`.
    pub fn authority(&self) -> &str {
        self.authority.as_deref().unwrap_or(&self.cluster)
    }

    /// Checks the settings that only make sense together; the error names
    /// the field (relative to `jwks_fetch.`).
    fn check(&self) -> Result<(), String> {
        if self.cluster.is_empty() {
            return Err("cluster: must not be empty".into());
        }
        if !self.discovery && !self.key_set_hosts.is_empty() {
            return Err("key_set_hosts: only used with `discovery: true`".into());
        }
        for (host, cluster) in &self.key_set_hosts {
            let valid_host = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
            if !valid_host {
                return Err(format!(
                    "key_set_hosts: `{host}` is not a host or `host:port`"
                ));
            }
            if cluster.is_empty() {
                return Err(format!(
                    "key_set_hosts.{host}: the cluster must not be empty"
                ));
            }
        }
        Ok(())
    }
}
fn default_min_refresh() -> u64 {
    10
}
fn default_timeout() -> u64 {
    5000
}

/// One trusted token issuer (`identity.issuers[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Required `iss`.
    pub issuer: String,
    /// `aud` must contain one of these (this server's resource URIs).
    pub audiences: Vec<String>,
    /// The JSON Web Key Set, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// A JWKS file, inlined as `jwks` by `warden compile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<String>,
    /// Keys fetched from the provider through the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_fetch: Option<RemoteJwks>,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Required `typ` header (RFC 9068 access tokens: `at+jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Refuse tokens whose header names no `kid`. Without it, a token
    /// without one is tried against every key of the issuer that fits its
    /// algorithm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_kid: bool,
    /// Claim paths and actor-type rules of a provider's documented token
    /// format; explicit `claims` settings override them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    #[serde(default)]
    pub claims: ClaimNames,
}

fn default_algorithms() -> Vec<String> {
    Algorithm::ALL
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect()
}

/// Identity settings of a policy (`identity:` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub issuers: Vec<IssuerConfig>,
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Deepest accepted `act` nesting (1 = one actor, no earlier ones).
    #[serde(default = "default_max_chain")]
    pub max_delegation_depth: usize,
    #[serde(default)]
    pub revocation: RevocationConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Who checks token signatures: Warden itself, or Envoy's `jwt_authn`
    /// filter ahead of it (Warden then reads the verified payload from the
    /// stream's dynamic metadata).
    #[serde(default, skip_serializing_if = "VerifiedBy::is_warden")]
    pub verified_by: VerifiedBy,
    /// Where `jwt_authn` leaves the payload (`verified_by: jwt_authn`).
    #[serde(default, skip_serializing_if = "JwtAuthnSettings::is_default")]
    pub jwt_authn: JwtAuthnSettings,
}

/// Who verifies a bearer token's signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedBy {
    /// Warden verifies every token against the issuers' key sets.
    #[default]
    Warden,
    /// Envoy's `jwt_authn` filter verified the token (BoringSSL, its own
    /// key fetching and cache); Warden takes the payload it stored in the
    /// stream's dynamic metadata and still applies issuer, audience, times,
    /// the actor model, revocation and the policy. No payload there, no
    /// identity: a request with a token but without a verified payload is
    /// refused.
    JwtAuthn,
}

impl VerifiedBy {
    fn is_warden(&self) -> bool {
        *self == VerifiedBy::Warden
    }
}

/// The `jwt_authn` side of `verified_by: jwt_authn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthnSettings {
    /// The providers' `payload_in_metadata` (one name for every provider).
    #[serde(default = "default_payload_key")]
    pub payload_in_metadata: String,
}

impl Default for JwtAuthnSettings {
    fn default() -> Self {
        Self {
            payload_in_metadata: default_payload_key(),
        }
    }
}

impl JwtAuthnSettings {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_payload_key() -> String {
    "jwt_payload".into()
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
    #[error("identity.issuers: at least one issuer is required")]
    NoIssuers,
    #[error("identity.issuers[{index}]: `{issuer}` is listed twice")]
    DuplicateIssuer { index: usize, issuer: String },
    #[error(
        "identity.issuers[{index}]: give one of `jwks`, `jwks_file` (resolved by `warden compile`) or `jwks_fetch`"
    )]
    KeySource { index: usize },
    #[error(
        "identity.issuers[{index}].algorithms: `{name}` is not supported (supported: ES256, ES384, RS256, PS256, EdDSA; symmetric and `none` never are)"
    )]
    UnsupportedAlgorithm { index: usize, name: String },
    #[error("identity.issuers[{index}].algorithms: the list is empty")]
    NoAlgorithms { index: usize },
    #[error("identity.issuers[{index}].jwks: {error}")]
    BadJwks { index: usize, error: JwksError },
    #[error("identity.issuers[{index}].jwks: no key can verify any allowed algorithm")]
    NoUsableKey { index: usize },
    #[error("identity.issuers[{index}].{field}: must not be empty")]
    Empty { index: usize, field: &'static str },
    #[error("identity.issuers[{index}].claims.{message}")]
    Claims { index: usize, message: String },
    #[error("identity.issuers[{index}].jwks_fetch.{message}")]
    Fetch { index: usize, message: String },
    #[error("identity.revocation: {0}")]
    Revocation(String),
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
    #[error("token claims are invalid: {0}")]
    BadClaims(String),
    #[error("algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("token has critical header extensions")]
    CriticalHeader,
    #[error("token type `{found}` is not `{expected}`")]
    WrongType { expected: String, found: String },
    #[error("issuer `{0}` is not trusted")]
    UntrustedIssuer(String),
    #[error("no key with id `{kid}` for issuer `{issuer}`")]
    UnknownKey { issuer: String, kid: String },
    #[error("signing keys of issuer `{0}` are not loaded yet")]
    KeysUnavailable(String),
    #[error("token names no key id and {0} keys could verify it")]
    AmbiguousKey(usize),
    #[error("signature does not verify")]
    BadSignature,
    #[error("audience does not include this resource")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token has no `exp`")]
    NoExpiry,
    /// The configured subject claim (`sub`, `oid`, …; `act.…` inside the
    /// delegation chain) is absent or empty.
    #[error("token has no subject claim `{0}`")]
    NoSubject(String),
    #[error("claim `{0}` is malformed")]
    BadClaim(String),
    #[error("delegation chain is deeper than {0}")]
    ChainTooDeep(usize),
    #[error("token revoked: {0}")]
    Revoked(String),
    /// `verified_by: jwt_authn`: a token came, but no payload that
    /// `jwt_authn` verified (it refused the token, or is not in the chain).
    #[error("the bearer token was not verified by jwt_authn (no payload in its metadata)")]
    NotVerifiedByProxy,
    /// `verified_by: jwt_authn`: the stream's metadata could not be read.
    #[error("the payload jwt_authn verified cannot be read: {0}")]
    VerifiedPayload(String),
}

impl TokenError {
    /// What the caller is told: a short class of the failure that names no
    /// key id, issuer, audience, algorithm, limit or revocation reason (the
    /// audit line has the full [`Display`](std::fmt::Display) text). Plain
    /// ASCII without quotes or backslashes, so it can stand in a quoted
    /// `error_description`.
    pub fn public_description(&self) -> &'static str {
        match self {
            TokenError::Missing => "no bearer token",
            TokenError::NotBearer => "the authorization header is not a bearer token",
            TokenError::TooLarge { .. } => "the token is too large",
            TokenError::Malformed
            | TokenError::BadHeader(_)
            | TokenError::BadClaims(_)
            | TokenError::CriticalHeader
            | TokenError::BadClaim(_) => "the token is malformed",
            TokenError::AlgorithmNotAllowed(_)
            | TokenError::WrongType { .. }
            | TokenError::UntrustedIssuer(_)
            | TokenError::UnknownKey { .. }
            | TokenError::AmbiguousKey(_)
            | TokenError::BadSignature
            | TokenError::WrongAudience
            | TokenError::NotVerifiedByProxy
            | TokenError::VerifiedPayload(_) => "the token could not be verified",
            TokenError::KeysUnavailable(_) => "the keys to verify the token are not available yet",
            TokenError::Expired => "the token is expired",
            TokenError::NotYetValid | TokenError::IssuedInFuture => "the token is not valid yet",
            TokenError::NoExpiry | TokenError::NoSubject(_) => "the token lacks a required claim",
            TokenError::ChainTooDeep(_) => "the token's delegation chain is too deep",
            TokenError::Revoked(_) => "the token is revoked",
        }
    }

    /// A short, fixed name of the failure for metrics and audit lines
    /// (`expired`, `signature`, …): bounded, and naming nothing of the
    /// token.
    pub fn class(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::NotBearer => "not_bearer",
            TokenError::TooLarge { .. } => "too_large",
            TokenError::Malformed
            | TokenError::BadHeader(_)
            | TokenError::BadClaims(_)
            | TokenError::CriticalHeader => "malformed",
            TokenError::BadClaim(_) => "bad_claim",
            TokenError::AlgorithmNotAllowed(_) => "algorithm",
            TokenError::WrongType { .. } => "token_type",
            TokenError::UntrustedIssuer(_) => "issuer",
            TokenError::UnknownKey { .. } => "unknown_key",
            TokenError::KeysUnavailable(_) => "keys_unavailable",
            TokenError::AmbiguousKey(_) => "ambiguous_key",
            TokenError::BadSignature => "signature",
            TokenError::WrongAudience => "audience",
            TokenError::Expired => "expired",
            TokenError::NotYetValid | TokenError::IssuedInFuture => "not_yet_valid",
            TokenError::NoExpiry | TokenError::NoSubject(_) => "missing_claim",
            TokenError::ChainTooDeep(_) => "chain_too_deep",
            TokenError::Revoked(_) => "revoked",
            TokenError::NotVerifiedByProxy => "not_verified_by_proxy",
            TokenError::VerifiedPayload(_) => "verified_payload",
        }
    }

    /// The issuer whose keys would have to be fetched to judge this token.
    pub fn issuer_needing_keys(&self) -> Option<&str> {
        match self {
            TokenError::UnknownKey { issuer, .. } | TokenError::KeysUnavailable(issuer) => {
                Some(issuer)
            }
            _ => None,
        }
    }
}

/// Time claims, checked on every use (cached or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenTimes {
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

impl TokenTimes {
    fn check(&self, now: u64, skew: u64) -> Result<(), TokenError> {
        let exp = self.exp.ok_or(TokenError::NoExpiry)?;
        if now > exp.saturating_add(skew) {
            return Err(TokenError::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(TokenError::NotYetValid);
        }
        if self.iat.is_some_and(|iat| iat > now.saturating_add(skew)) {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(())
    }
}

struct IssuerVerifier {
    config: IssuerConfig,
    /// How this issuer's claims are read, resolved from `config`.
    claims: ClaimMap,
    algorithms: Vec<Algorithm>,
    /// `None` until a fetched key set arrives (for `jwks_fetch` issuers).
    keys: RefCell<Option<Vec<VerifierKey>>>,
    /// Digest of the fetched key set in force: a refetch that brings the
    /// same set changes nothing (and keeps the verification cache).
    fetched_digest: RefCell<Option<[u8; 32]>>,
}

/// Verifies bearer tokens for the configured issuers. Built once per
/// configuration; key sets, revocations and the cache change at run time.
pub struct TokenVerifier {
    issuers: Vec<IssuerVerifier>,
    skew_seconds: u64,
    max_token_bytes: usize,
    max_delegation_depth: usize,
    revocations: RefCell<Revocations>,
    cache: RefCell<VerificationCache>,
    revocation_source: Option<RemoteSource>,
    verified_by: VerifiedBy,
    jwt_authn: JwtAuthnSettings,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "issuers",
                &self
                    .issuers
                    .iter()
                    .map(|i| &i.config.issuer)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Cache counters of one verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
}

impl TokenVerifier {
    pub fn new(config: &IdentityConfig) -> Result<Self, KeyConfigError> {
        if config.issuers.is_empty() {
            return Err(KeyConfigError::NoIssuers);
        }
        let mut issuers = Vec::with_capacity(config.issuers.len());
        for (index, issuer) in config.issuers.iter().enumerate() {
            if issuer.issuer.is_empty() {
                return Err(KeyConfigError::Empty {
                    index,
                    field: "issuer",
                });
            }
            if issuer.audiences.is_empty() || issuer.audiences.iter().any(String::is_empty) {
                return Err(KeyConfigError::Empty {
                    index,
                    field: "audiences",
                });
            }
            if config
                .issuers
                .iter()
                .take(index)
                .any(|i| i.issuer == issuer.issuer)
            {
                return Err(KeyConfigError::DuplicateIssuer {
                    index,
                    issuer: issuer.issuer.clone(),
                });
            }
            let mut algorithms = Vec::new();
            for name in &issuer.algorithms {
                let alg =
                    Algorithm::parse(name).ok_or_else(|| KeyConfigError::UnsupportedAlgorithm {
                        index,
                        name: name.clone(),
                    })?;
                if !algorithms.contains(&alg) {
                    algorithms.push(alg);
                }
            }
            if algorithms.is_empty() {
                return Err(KeyConfigError::NoAlgorithms { index });
            }
            let keys = match (&issuer.jwks, &issuer.jwks_file, &issuer.jwks_fetch) {
                (Some(jwks), None, None) => {
                    let keys = parse_jwks(jwks, &algorithms)
                        .map_err(|error| KeyConfigError::BadJwks { index, error })?;
                    if keys.is_empty() {
                        return Err(KeyConfigError::NoUsableKey { index });
                    }
                    Some(keys)
                }
                (None, None, Some(_)) => None,
                _ => return Err(KeyConfigError::KeySource { index }),
            };
            let claims = ClaimMap::resolve(&issuer.issuer, issuer.preset, &issuer.claims)
                .map_err(|message| KeyConfigError::Claims { index, message })?;
            if let Some(fetch) = &issuer.jwks_fetch {
                fetch
                    .check()
                    .map_err(|message| KeyConfigError::Fetch { index, message })?;
            }
            issuers.push(IssuerVerifier {
                config: issuer.clone(),
                claims,
                algorithms,
                keys: RefCell::new(keys),
                fetched_digest: RefCell::new(None),
            });
        }
        let revocations = Revocations::new(&config.revocation.lists);
        Ok(Self {
            issuers,
            skew_seconds: config.clock_skew_seconds,
            max_token_bytes: config.max_token_bytes,
            max_delegation_depth: config.max_delegation_depth,
            revocations: RefCell::new(revocations),
            cache: RefCell::new(VerificationCache::new(config.cache.clone())),
            revocation_source: config.revocation.remote.clone(),
            verified_by: config.verified_by,
            jwt_authn: config.jwt_authn.clone(),
        })
    }

    /// Who verifies token signatures.
    pub fn verified_by(&self) -> VerifiedBy {
        self.verified_by
    }

    /// Where `jwt_authn` leaves the verified payload (`verified_by:
    /// jwt_authn`).
    pub fn jwt_authn(&self) -> &JwtAuthnSettings {
        &self.jwt_authn
    }

    /// Issuers whose keys the proxy fetches, with where from. None when
    /// `jwt_authn` verifies the tokens: it fetches its own keys.
    pub fn remote_key_sources(&self) -> Vec<(&str, &RemoteJwks)> {
        if self.verified_by == VerifiedBy::JwtAuthn {
            return Vec::new();
        }
        self.issuers
            .iter()
            .filter_map(|i| {
                i.config
                    .jwks_fetch
                    .as_ref()
                    .map(|r| (i.config.issuer.as_str(), r))
            })
            .collect()
    }

    /// Where the polled revocation list comes from, if anywhere.
    pub fn revocation_source(&self) -> Option<&RemoteSource> {
        self.revocation_source.as_ref()
    }

    /// Whether an issuer's keys are loaded.
    pub fn has_keys(&self, issuer: &str) -> bool {
        self.issuers
            .iter()
            .any(|i| i.config.issuer == issuer && i.keys.borrow().is_some())
    }

    /// Installs a fetched key set for `issuer`. A set that does not parse, or
    /// has no usable key, is refused and the previous set stays. Returns the
    /// number of usable keys.
    pub fn update_keys(&self, issuer: &str, jwks: &Value) -> Result<usize, String> {
        let target = self
            .issuers
            .iter()
            .find(|i| i.config.issuer == issuer)
            .ok_or_else(|| format!("issuer `{issuer}` is not configured"))?;
        let digest: [u8; 32] = sha2::Sha256::digest(jwks.to_string().as_bytes()).into();
        if *target.fetched_digest.borrow() == Some(digest) {
            // The same key set again (a scheduled refresh, or a flood of
            // unknown key ids): the keys in force are its keys, and nothing
            // cached can have changed.
            return Ok(target.keys.borrow().as_ref().map_or(0, Vec::len));
        }
        let keys = parse_jwks(jwks, &target.algorithms).map_err(|e| e.to_string())?;
        if keys.is_empty() {
            return Err("no key can verify any allowed algorithm".into());
        }
        let count = keys.len();
        *target.keys.borrow_mut() = Some(keys);
        *target.fetched_digest.borrow_mut() = Some(digest);
        // Verdicts cached under the old keys may no longer hold.
        self.cache.borrow_mut().clear();
        Ok(count)
    }

    /// Replaces the polled revocation list. The previous list stays when the
    /// document does not parse. Returns the number of entries.
    pub fn update_revocations(&self, document: &Value) -> Result<usize, String> {
        self.revocations.borrow_mut().replace_remote(document)
    }

    pub fn cache_stats(&self) -> CacheStats {
        let cache = self.cache.borrow();
        CacheStats {
            entries: cache.len(),
            hits: cache.hits,
            misses: cache.misses,
        }
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
    /// carries. A token seen before skips signature verification; its times
    /// and revocation are checked every time.
    ///
    /// The identity is shared (`Rc`): the cache hands out the one it keeps,
    /// and the request's stages (head, body, response lists) pass it on,
    /// without copying its claims.
    pub fn verify(&self, token: &str, now_unix_seconds: u64) -> Result<Rc<Identity>, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge {
                size: token.len(),
                limit: self.max_token_bytes,
            });
        }
        self.through_cache(Some(CacheKey::Token(token)), now_unix_seconds, || {
            self.verify_uncached(token)
        })
    }

    /// The identity cached under `key`, or the one `read` gives, kept under
    /// `key` (none: not kept); then what changes with time, checked on
    /// every request ([`Self::still_valid`]).
    fn through_cache(
        &self,
        key: Option<CacheKey<'_>>,
        now_unix_seconds: u64,
        read: impl FnOnce() -> Result<(Identity, TokenTimes), TokenError>,
    ) -> Result<Rc<Identity>, TokenError> {
        let cached = key.and_then(|key| self.cache.borrow_mut().get(key, now_unix_seconds));
        let (identity, times) = match cached {
            Some(hit) => hit,
            None => {
                let (identity, times) = read()?;
                let identity = Rc::new(identity);
                if let Some(key) = key {
                    self.cache
                        .borrow_mut()
                        .insert(key, Rc::clone(&identity), times);
                }
                (identity, times)
            }
        };
        self.still_valid(identity, times, now_unix_seconds)
    }

    /// Signature, issuer, audience and claim shape: everything that does not
    /// change with time.
    fn verify_uncached(&self, token: &str) -> Result<(Identity, TokenTimes), TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| TokenError::Malformed)
        };
        let header_bytes = decode(header_b64)?;
        let payload_bytes = decode(payload_b64)?;
        let signature = decode(signature_b64)?;
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
            .ok_or_else(|| TokenError::AlgorithmNotAllowed(alg_name.to_owned()))?;
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        // `jku`, `x5u`, `jwk` and `x5c` are ignored on purpose: keys come
        // only from the configured key sets, never from the token itself.
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(TokenError::BadHeader("`kid` must be a string".into())),
        };
        let typ = match header.get("typ") {
            None => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(_) => return Err(TokenError::BadHeader("`typ` must be a string".into())),
        };
        let claims = parse_strict(
            &payload_bytes,
            JsonLimits {
                max_bytes: self.max_token_bytes,
                max_depth: 16,
            },
        )
        .map_err(|e| TokenError::BadClaims(e.to_string()))?;
        let Value::Object(claims) = claims else {
            return Err(TokenError::BadClaims("not an object".into()));
        };
        // Choosing the key set by the unverified `iss` is safe: the signature
        // below must then verify with that issuer's own keys.
        let issuer = self.issuer_named(&claims)?;
        let issuer_name = issuer.config.issuer.as_str();
        if !issuer.algorithms.contains(&alg) {
            return Err(TokenError::AlgorithmNotAllowed(alg_name.to_owned()));
        }
        check_type(issuer.config.token_type.as_deref(), typ)?;
        if issuer.config.require_kid && kid.is_none() {
            return Err(TokenError::BadHeader(
                "`kid` is missing, and this issuer requires one".into(),
            ));
        }
        {
            let keys = issuer.keys.borrow();
            let keys = keys
                .as_ref()
                .ok_or_else(|| TokenError::KeysUnavailable(issuer_name.to_owned()))?;
            let key = select_key(keys, kid, alg, issuer_name)?;
            let signing_input_len = header_b64.len() + 1 + payload_b64.len();
            let signing_input = token
                .get(..signing_input_len)
                .ok_or(TokenError::Malformed)?;
            if !key.verify(alg, signing_input.as_bytes(), &signature) {
                return Err(TokenError::BadSignature);
            }
        }
        self.verified_claims(issuer, claims)
    }

    /// The identity in the payload Envoy's `jwt_authn` verified, stored
    /// under `payload_in_metadata` in the `Struct` it left in the stream's
    /// metadata ([`envoy_metadata::namespace_struct`]). The signature is
    /// `jwt_authn`'s business; everything else is checked as for a token
    /// Warden verified itself: a configured issuer, the audience, the
    /// times, the claim shapes, the actor model and revocation.
    /// `NotVerifiedByProxy` when the `Struct` holds no payload.
    ///
    /// The identity is cached like a verified token's, under the `Struct`'s
    /// canonical form ([`envoy_metadata::NamespaceStruct::canonical_form`]),
    /// not its bytes: Envoy serializes the `Struct`'s map in an order that
    /// changes from one request to the next (through Envoy 1.40, of ten
    /// requests with one token, one brought the bytes of an earlier one).
    /// Not under the token either: `jwt_authn` removes it unless told to
    /// forward it, and where it reads a token is its own configuration.
    /// Times and revocation are checked on every request, cached or not.
    pub fn accept_verified(
        &self,
        verified: &envoy_metadata::NamespaceStruct,
        now_unix_seconds: u64,
    ) -> Result<Rc<Identity>, TokenError> {
        // A `Struct` with no form is decoded (and refused) uncached.
        let form = verified.canonical_form().ok();
        let key = form.as_deref().map(CacheKey::VerifiedPayload);
        self.through_cache(key, now_unix_seconds, || {
            let claims = verified
                .payload(&self.jwt_authn.payload_in_metadata)
                .map_err(|error| TokenError::VerifiedPayload(error.to_string()))?
                .ok_or(TokenError::NotVerifiedByProxy)?;
            let issuer = self.issuer_named(&claims)?;
            self.verified_claims(issuer, claims)
        })
    }

    /// The configured issuer that `iss` names.
    fn issuer_named(&self, claims: &Map<String, Value>) -> Result<&IssuerVerifier, TokenError> {
        let name = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| TokenError::UntrustedIssuer("(none)".into()))?;
        self.issuers
            .iter()
            .find(|i| i.config.issuer == name)
            .ok_or_else(|| TokenError::UntrustedIssuer(name.to_owned()))
    }

    /// What changes with time: the time claims at `now`, and revocation.
    fn still_valid(
        &self,
        identity: Rc<Identity>,
        times: TokenTimes,
        now_unix_seconds: u64,
    ) -> Result<Rc<Identity>, TokenError> {
        times.check(now_unix_seconds, self.skew_seconds)?;
        if let Some(reason) = self.revocations.borrow().check(&identity) {
            return Err(TokenError::Revoked(reason));
        }
        Ok(identity)
    }

    /// Audience, time claims and identity of claims whose signature held.
    fn verified_claims(
        &self,
        issuer: &IssuerVerifier,
        claims: Map<String, Value>,
    ) -> Result<(Identity, TokenTimes), TokenError> {
        // RFC 7519 §4.1.3: a string or an array of strings. Anything else is
        // refused rather than read in part: a reader that accepts what
        // Warden skipped would see another audience.
        let audiences = match claims.get("aud") {
            None => Vec::new(),
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list
                .iter()
                .map(Value::as_str)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| TokenError::BadClaim("aud".into()))?,
            Some(_) => return Err(TokenError::BadClaim("aud".into())),
        };
        if !audiences
            .iter()
            .any(|a| issuer.config.audiences.iter().any(|want| want == a))
        {
            return Err(TokenError::WrongAudience);
        }
        let time = |name: &str| -> Result<Option<u64>, TokenError> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or_else(|| TokenError::BadClaim(name.to_owned())),
            }
        };
        let times = TokenTimes {
            exp: time("exp")?,
            nbf: time("nbf")?,
            iat: time("iat")?,
        };
        if times.exp.is_none() {
            return Err(TokenError::NoExpiry);
        }
        let identity = self.identity(issuer, claims)?;
        Ok((identity, times))
    }

    fn identity(
        &self,
        issuer: &IssuerVerifier,
        claims: Map<String, Value>,
    ) -> Result<Identity, TokenError> {
        let map = &issuer.claims;
        // An empty subject would become everyone's session binding and
        // revocation key.
        let subject = map
            .subject(&claims)?
            .ok_or_else(|| TokenError::NoSubject(map.subject.as_str().to_owned()))?
            .to_owned();
        let client_id = map.client_id(&claims)?;
        let token_id = match claims.get("jti") {
            None => None,
            Some(Value::String(j)) => Some(j.clone()),
            Some(_) => return Err(TokenError::BadClaim("jti".into())),
        };
        // `may_act` says who *could* act; it is not delegation and is ignored.
        let (actor, prior_actors) = self.delegation_chain(map, &claims)?;
        let subject = principal(map, Party::Subject, subject, claims)?;
        Ok(Identity {
            issuer: issuer.config.issuer.clone(),
            subject,
            actor,
            prior_actors,
            client_id,
            token_id,
            header_values: Derived::default(),
            audit_names: Derived::default(),
            session_binding: Derived::default(),
        })
    }

    /// RFC 8693 §4.1: the outermost `act` is the current actor; nested `act`
    /// members are prior actors, kept for the audit trail only. Each actor
    /// is read with the issuer's claim settings, as an actor: the default
    /// actor type never applies to it.
    fn delegation_chain(
        &self,
        map: &ClaimMap,
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
            let subject = map
                .subject(act)
                .map_err(|_| TokenError::BadClaim(format!("act.{}", map.subject.as_str())))?
                .ok_or_else(|| TokenError::NoSubject(format!("act.{}", map.subject.as_str())))?;
            next = act.get("act");
            let mut own = act.clone();
            own.remove("act");
            actors.push(principal(map, Party::Actor, subject.to_owned(), own)?);
        }
        let mut actors = actors.into_iter();
        let current = actors.next();
        Ok((current, actors.collect()))
    }
}

fn check_type(required: Option<&str>, found: Option<&str>) -> Result<(), TokenError> {
    let normalize = |t: &str| {
        let lower = t.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    match (required, found) {
        (Some(expected), Some(found)) if normalize(expected) == normalize(found) => Ok(()),
        (Some(expected), found) => Err(TokenError::WrongType {
            expected: expected.to_owned(),
            found: found.unwrap_or("(none)").to_owned(),
        }),
        // Without a requirement, any JWT type is accepted, but not other
        // kinds of JOSE object (e.g. `secevent+jwt` is still a JWT).
        (None, Some(found))
            if !(normalize(found) == "jwt" || normalize(found).ends_with("+jwt")) =>
        {
            Err(TokenError::WrongType {
                expected: "JWT".into(),
                found: found.to_owned(),
            })
        }
        (None, _) => Ok(()),
    }
}

fn select_key<'k>(
    keys: &'k [VerifierKey],
    kid: Option<&str>,
    alg: Algorithm,
    issuer: &str,
) -> Result<&'k VerifierKey, TokenError> {
    match kid {
        Some(kid) => {
            let key = keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or_else(|| TokenError::UnknownKey {
                    issuer: issuer.to_owned(),
                    kid: kid.to_owned(),
                })?;
            if !key.algorithms.contains(&alg) {
                return Err(TokenError::AlgorithmNotAllowed(format!(
                    "{} for key `{kid}`",
                    alg.as_str()
                )));
            }
            Ok(key)
        }
        None => {
            let mut candidates = keys.iter().filter(|k| k.algorithms.contains(&alg));
            match (candidates.next(), candidates.count()) {
                (Some(key), 0) => Ok(key),
                (None, _) => Err(TokenError::UnknownKey {
                    issuer: issuer.to_owned(),
                    kid: "(none)".into(),
                }),
                (Some(_), more) => Err(TokenError::AmbiguousKey(more + 1)),
            }
        }
    }
}

/// Builds a principal from a claims object (the token's top level, or one
/// `act` object).
fn principal(
    map: &ClaimMap,
    party: Party,
    subject: String,
    claims: Map<String, Value>,
) -> Result<Principal, TokenError> {
    let (actor_type, unclassified_reason) = match map.classify(&claims, party)? {
        Ok(t) => (Some(t), None),
        Err(reason) => (None, Some(reason)),
    };
    let lists = map.lists(&claims)?;
    Ok(Principal {
        subject,
        actor_type,
        unclassified_reason,
        groups: lists.groups,
        roles: lists.roles,
        scopes: lists.scopes,
        claims,
    })
}

#[cfg(test)]
pub(crate) mod tests;
