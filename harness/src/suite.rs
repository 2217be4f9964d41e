//! The one runner of case files ([`crate::cases`]): policy test suites
//! (`warden test`) and the filter's scenario tables
//! (`harness/tests/scenarios.rs`) alike.
//!
//! A file is loaded once ([`Suite::load`]): its policy compiled, every
//! case's request built and its token minted, so every runner sends the
//! very same bytes. The harness mints tokens with keys it owns and makes
//! every issuer of the policy trust them for the run, so files need no real
//! identity provider. [`run`] sends each case through the built filter
//! (`warden_filter.wasm`, what `warden test` does), natively through
//! policy-sdk's request lifecycle on its in-memory host, or both, checking
//! each against the case's expectations and, with both, that they agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use policy_sdk::exchange::memory::{Driver, HeaderPause, MemoryHost, Request};
use policy_sdk::identity::VerifiedBy;
use policy_sdk::identity::envoy_metadata::{JWT_AUTHN_NAMESPACE, encode_verified_payload};
use policy_sdk::testing::{DemoAlg, DemoIssuer, TEST_NOW, demo_jwks, overlay_claims};
use policy_sdk::{HeaderMode, PolicyDocument, Warden};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::cases::{Alg, CaseSource, Credentials, Expectation, SuiteSource, watched_header};
use crate::filter::{Exchange, HttpRequest, WardenFilter};
use crate::host::{FilterModule, HarnessError};
use crate::load::{Diagnostic, load_policy};

pub use crate::cases::Decision;

/// The `x-request-id` every runner sends, so audit lines compare equal.
pub const REQUEST_ID: &str = "warden-test";

/// What Warden's own request id reads as in an [`Outcome`]: the `.wasm`
/// draws a random one per VM, which is masked to this; the native runner
/// is given this one.
pub const OWN_REQUEST_ID: &str = "warden-own-request-id";
/// The `:authority` the harness's client sends.
pub const AUTHORITY: &str = "mcp.demo.warden.test";

/// What the filter decided for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub decision: Option<String>,
    pub rule: Option<String>,
    pub owner: Option<String>,
    pub reason: Option<String>,
    /// The status Warden answered with; `None` when forwarded.
    pub status: Option<u32>,
    pub forwarded: bool,
}

impl Verdict {
    pub fn from_exchange(exchange: &Exchange) -> Self {
        Self {
            decision: exchange.decision().map(str::to_owned),
            rule: exchange.rule().map(str::to_owned),
            owner: exchange.owner().map(str::to_owned),
            reason: exchange.reason().map(str::to_owned),
            status: exchange.status(),
            forwarded: exchange.forwarded(),
        }
    }

    pub fn from_outcome(outcome: &Outcome) -> Self {
        let audit = |field| outcome.audit_str(field).map(str::to_owned);
        Self {
            decision: audit("decision"),
            rule: audit("rule"),
            owner: audit("owner"),
            reason: audit("reason"),
            status: outcome.status().map(u32::from),
            forwarded: outcome.forwarded(),
        }
    }

    pub fn is_allowed(&self) -> bool {
        self.decision.as_deref() == Some("allow")
    }

    /// `deny by no-agent-deletes (owner team-security, status 200): reason`.
    pub fn summary(&self) -> String {
        let mut out = self
            .decision
            .clone()
            .unwrap_or_else(|| "no decision".into());
        if let Some(rule) = &self.rule {
            out.push_str(&format!(" by {rule}"));
        }
        let mut extra = Vec::new();
        if let Some(owner) = &self.owner {
            extra.push(format!("owner {owner}"));
        }
        match self.status {
            Some(status) => extra.push(format!("status {status}")),
            None if self.forwarded => extra.push("forwarded".into()),
            None => {}
        }
        if !extra.is_empty() {
            out.push_str(&format!(" ({})", extra.join(", ")));
        }
        if let Some(reason) = &self.reason {
            out.push_str(&format!(": {reason}"));
        }
        out
    }
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub expected: Expectation,
    /// What the `.wasm` did (what the native core did when only it ran).
    pub actual: Verdict,
    pub problems: Vec<String>,
    /// What each runner saw (`None`: not run, or it failed).
    #[serde(skip)]
    pub wasm: Option<Outcome>,
    #[serde(skip)]
    pub native: Option<Outcome>,
}

/// The results of one suite file.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub file: PathBuf,
    pub policy: PathBuf,
    pub cases: Vec<CaseResult>,
}

impl SuiteReport {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
}

/// Why a suite could not run at all.
#[derive(Debug)]
pub enum SuiteError {
    /// The suite file is unreadable or malformed.
    Suite(String),
    /// The policy does not compile.
    Policy(Box<Diagnostic>),
    /// The filter could not be started.
    Harness(HarnessError),
}

impl std::fmt::Display for SuiteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SuiteError::Suite(m) => write!(f, "{m}"),
            SuiteError::Policy(d) => write!(f, "{d}"),
            SuiteError::Harness(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SuiteError {}

/// Signs tokens for a policy's issuers with the harness's own keys.
pub struct Minter {
    issuer: DemoIssuer,
    /// Per issuer: its `iss`, first audience, and the algorithm to sign with.
    issuers: Vec<(String, Option<String>, DemoAlg)>,
    now: u64,
    /// `identity.verified_by: jwt_authn`: where Envoy's `jwt_authn` leaves
    /// the payload. The harness then plays `jwt_authn` for minted tokens.
    jwt_authn_payload_key: Option<String>,
}

fn pick_alg(algorithms: Option<&Vec<Value>>) -> DemoAlg {
    [DemoAlg::ES256, DemoAlg::EdDSA, DemoAlg::RS256]
        .into_iter()
        .find(|alg| algorithms.is_none_or(|a| a.iter().any(|v| v == alg.name())))
        .unwrap_or(DemoAlg::ES256)
}

impl From<Alg> for DemoAlg {
    fn from(alg: Alg) -> Self {
        match alg {
            Alg::ES256 => DemoAlg::ES256,
            Alg::RS256 => DemoAlg::RS256,
            Alg::EdDSA => DemoAlg::EdDSA,
        }
    }
}

impl Minter {
    /// Rewrites a policy's identity section so that every issuer trusts the
    /// harness's keys (inline key set, no fetching, no `typ` requirement);
    /// returns the plugin configuration to run and the minter.
    pub fn for_document(document: &PolicyDocument, now: u64) -> Result<(String, Self), String> {
        let mut config = serde_json::to_value(document).map_err(|e| e.to_string())?;
        let mut issuers = Vec::new();
        if let Some(list) = config
            .pointer_mut("/identity/issuers")
            .and_then(Value::as_array_mut)
        {
            for entry in list.iter_mut().filter_map(Value::as_object_mut) {
                let alg = pick_alg(entry.get("algorithms").and_then(Value::as_array));
                if let Some(algorithms) = entry.get_mut("algorithms").and_then(Value::as_array_mut)
                    && !algorithms.iter().any(|a| a == alg.name())
                {
                    algorithms.push(json!(alg.name()));
                }
                entry.insert("jwks".into(), demo_jwks());
                entry.remove("jwks_file");
                entry.remove("jwks_fetch");
                entry.remove("token_type");
                let iss = entry
                    .get("issuer")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let aud = entry
                    .get("audiences")
                    .and_then(|a| a.get(0))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                issuers.push((iss, aud, alg));
            }
        }
        let minter = Self {
            issuer: DemoIssuer::new().map_err(|e| e.to_string())?,
            issuers,
            now,
            jwt_authn_payload_key: (document.identity.verified_by == VerifiedBy::JwtAuthn)
                .then(|| document.identity.jwt_authn.payload_in_metadata.clone()),
        };
        Ok((config.to_string(), minter))
    }

    /// A bearer token carrying `claims` (merged over the defaults).
    pub fn token(&self, claims: &Value) -> Result<String, String> {
        match claims {
            Value::Object(claims) => self.mint(&[claims], None),
            Value::Null => self.mint(&[], None),
            _ => Err("claims must be a mapping".into()),
        }
    }

    /// A token carrying `layers` of claims laid in turn over `iss`, `aud`
    /// (the policy's first issuer and its first audience), `iat` and `exp`
    /// (`null` removes a claim), signed with `alg` or else with an
    /// algorithm the token's issuer accepts.
    pub fn mint(
        &self,
        layers: &[&Map<String, Value>],
        alg: Option<DemoAlg>,
    ) -> Result<String, String> {
        let merged = self.claims(layers);
        let iss = merged
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let alg = alg.unwrap_or_else(|| {
            self.issuers
                .iter()
                .find(|(i, _, _)| i == iss)
                .map_or(DemoAlg::ES256, |(_, _, alg)| *alg)
        });
        self.issuer
            .sign(alg, &Value::Object(merged))
            .map_err(|e| e.to_string())
    }

    /// Under `identity.verified_by: jwt_authn`, the key `jwt_authn` stores
    /// the verified payload under (`payload_in_metadata`).
    pub fn jwt_authn_payload_key(&self) -> Option<&str> {
        self.jwt_authn_payload_key.as_deref()
    }

    /// The claims [`Minter::mint`] signs for `layers`.
    pub fn claims(&self, layers: &[&Map<String, Value>]) -> Map<String, Value> {
        let mut merged = Map::new();
        if let Some((iss, aud, _)) = self.issuers.first() {
            merged.insert("iss".into(), json!(iss));
            if let Some(aud) = aud {
                merged.insert("aud".into(), json!(aud));
            }
        }
        merged.insert("iat".into(), json!(self.now));
        merged.insert("exp".into(), json!(self.now + 600));
        for layer in layers {
            overlay_claims(&mut merged, (*layer).clone());
        }
        merged
    }
}

/// A case's request, built once: every runner sends these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub method: String,
    pub path: String,
    /// The request headers besides the pseudo-headers (lower-case names):
    /// the case's own, `content-type: application/json` on a POST that
    /// names none, and `authorization` unless the case sends no token.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// With `verified_by: jwt_authn`: the stream's metadata as `jwt_authn`
    /// leaves it for a minted token (the payload, and no `Authorization`
    /// header: `jwt_authn` removes the token it verified). A token given
    /// as is fails `jwt_authn`'s verification and reaches Warden without
    /// a payload.
    pub dynamic_metadata: Option<Vec<u8>>,
}

impl Prepared {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The credential the request carries (the last word of its
    /// `Authorization` header), which nothing Warden writes may contain.
    pub fn secret(&self) -> Option<&str> {
        self.header("authorization")?.split_whitespace().last()
    }

    /// The request for the `.wasm` ([`WardenFilter::send`]).
    pub fn http_request(&self) -> HttpRequest {
        HttpRequest {
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            chunk_size: None,
            dynamic_metadata: self.dynamic_metadata.clone(),
        }
        .header("x-request-id", REQUEST_ID)
    }

    /// The same request for the native core, as the proxy hands it to the
    /// filter: the headers [`WardenFilter::send`] sends (pseudo-headers,
    /// `content-length`, `x-request-id`, then the case's headers, replacing
    /// a default of the same name), the body in one chunk.
    pub fn native_request(&self) -> Request {
        let mut headers: Vec<(String, String)> = vec![
            (":method".into(), self.method.clone()),
            (":path".into(), self.path.clone()),
            (":authority".into(), AUTHORITY.into()),
            (":scheme".into(), "http".into()),
            ("content-length".into(), self.body.len().to_string()),
            ("x-request-id".into(), REQUEST_ID.into()),
        ];
        for (name, value) in &self.headers {
            match headers.iter_mut().find(|(k, _)| k == name) {
                Some(slot) => slot.1.clone_from(value),
                None => headers.push((name.clone(), value.clone())),
            }
        }
        Request {
            headers,
            chunks: if self.body.is_empty() {
                Vec::new()
            } else {
                vec![self.body.clone()]
            },
            trailers: None,
            dynamic_metadata: self.dynamic_metadata.clone(),
        }
    }
}

/// Builds a case's request, minting its token over the suite's `claims`.
fn prepare(
    case: &CaseSource,
    claims: &Map<String, Value>,
    minter: &Minter,
) -> Result<Prepared, String> {
    let mut dynamic_metadata = None;
    let authorization = match case.credentials()? {
        Credentials::Anonymous => None,
        Credentials::Header(value) => Some(value),
        Credentials::Minted {
            claims: own,
            alg: case_alg,
        } => match &minter.jwt_authn_payload_key {
            Some(key) => {
                dynamic_metadata = Some(encode_verified_payload(
                    JWT_AUTHN_NAMESPACE,
                    key,
                    &minter.claims(&[claims, &own]),
                ));
                None
            }
            None => {
                let token = minter
                    .mint(&[claims, &own], case_alg.map(DemoAlg::from))
                    .map_err(|e| format!("cannot mint the token: {e}"))?;
                Some(format!("Bearer {token}"))
            }
        },
    };
    let request = &case.request;
    let method = request.http_method().to_owned();
    let body = request.body()?;
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    if method == "POST" && !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    headers.extend(authorization.map(|a| ("authorization".to_owned(), a)));
    Ok(Prepared {
        method,
        path: request.path().to_owned(),
        headers,
        body,
        dynamic_metadata,
    })
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub request: Prepared,
    pub expect: Expectation,
}

/// A case file, loaded: the configuration every runner runs and the cases.
#[derive(Debug, Clone)]
pub struct Suite {
    pub file: PathBuf,
    /// The policy file, resolved against the suite's directory.
    pub policy: PathBuf,
    /// The host clock, seconds since the Unix epoch.
    pub now: u64,
    /// The plugin configuration: the policy with its issuers trusting the
    /// harness's keys ([`Minter::for_document`]).
    pub config: String,
    pub cases: Vec<Case>,
}

/// Reads a suite file (types and coherence checked).
pub fn read_suite(path: &Path) -> Result<SuiteSource, SuiteError> {
    let at = |e: &dyn std::fmt::Display| SuiteError::Suite(format!("{}: {e}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| at(&e))?;
    let suite: SuiteSource = serde_yaml_ng::from_str(&text).map_err(|e| at(&e))?;
    suite.validate().map_err(|e| at(&e))?;
    Ok(suite)
}

impl Suite {
    /// Reads a suite file, compiles its policy and builds every case's
    /// request.
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let source = read_suite(path)?;
        let policy = path.parent().unwrap_or(Path::new(".")).join(&source.policy);
        let loaded = load_policy(&policy).map_err(SuiteError::Policy)?;
        let now = source.now.unwrap_or(TEST_NOW);
        let (config, minter) = Minter::for_document(&loaded.document, now)
            .map_err(|e| SuiteError::Suite(format!("{}: {e}", path.display())))?;
        let cases = source
            .cases
            .iter()
            .map(|case| {
                Ok(Case {
                    name: case.name.clone(),
                    request: prepare(case, &source.claims, &minter).map_err(|e| {
                        SuiteError::Suite(format!("{}: case `{}`: {e}", path.display(), case.name))
                    })?,
                    expect: case.expect.clone(),
                })
            })
            .collect::<Result<_, SuiteError>>()?;
        Ok(Self {
            file: path.to_path_buf(),
            policy,
            now,
            config,
            cases,
        })
    }
}

/// Warden's local answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What Warden did with one request, whichever runner ran it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Warden's answer; `None`: the request was forwarded.
    pub reply: Option<LocalReply>,
    /// The decision audit line.
    pub audit: Option<Value>,
    /// For a forwarded request, the watched headers (`x-warden-*`,
    /// `authorization`) as the upstream receives them, sorted.
    pub upstream: Vec<(String, String)>,
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        self.reply.as_ref().map(|r| r.status)
    }

    pub fn forwarded(&self) -> bool {
        self.reply.is_none()
    }

    pub fn audit_str(&self, field: &str) -> Option<&str> {
        self.audit.as_ref()?.get(field)?.as_str()
    }

    fn upstream_header(&self, name: &str) -> Option<&str> {
        self.upstream
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The watched headers among `headers`, sorted.
fn watched(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut watched: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| watched_header(k))
        .cloned()
        .collect();
    watched.sort();
    watched
}

/// Where `outcome` misses `expect`, one line per miss; also any trace of
/// the request's credential in what Warden wrote.
pub fn check(expect: &Expectation, outcome: &Outcome, request: &Prepared) -> Vec<String> {
    let mut problems = Vec::new();
    let answered = || {
        outcome
            .status()
            .map_or_else(|| "forwarded".to_owned(), |s| format!("status {s}"))
    };
    if let Some(decision) = expect.decision {
        let got = outcome.audit_str("decision");
        if got != Some(decision.as_str()) {
            problems.push(format!(
                "expected {}, got {}",
                decision.as_str(),
                got.unwrap_or("no decision")
            ));
        }
    }
    if let Some(rule) = &expect.rule {
        let got = outcome.audit_str("rule");
        if got != Some(rule) {
            problems.push(format!(
                "expected rule {rule}, got {}",
                got.unwrap_or("none")
            ));
        }
    }
    let shadow = |field: &str| {
        outcome
            .audit
            .as_ref()
            .and_then(|audit| audit.get("shadow"))
            .and_then(|shadow| shadow.get(field))
            .and_then(Value::as_str)
    };
    if let Some(wanted) = expect.shadow {
        let got = shadow("outcome").unwrap_or("none");
        if got != wanted.as_str() {
            problems.push(format!("expected shadow {}, got {got}", wanted.as_str()));
        }
    }
    if let Some(rule) = &expect.shadow_rule {
        let got = shadow("rule");
        if got != Some(rule) {
            problems.push(format!(
                "expected shadow rule {rule}, got {}",
                got.unwrap_or("none")
            ));
        }
    }
    match expect.forward {
        Some(true) if !outcome.forwarded() => problems.push(format!(
            "expected the request to be forwarded, Warden answered with {}",
            answered()
        )),
        Some(false) if outcome.forwarded() => {
            problems.push("expected Warden to answer, the request was forwarded".into());
        }
        _ => {}
    }
    if let Some(status) = expect.status
        && outcome.status() != Some(status)
    {
        problems.push(format!("expected status {status}, got {}", answered()));
    }
    if let Some(code) = expect.error_code {
        let got = outcome
            .reply
            .as_ref()
            .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
            .and_then(|b| b.pointer("/error/code").and_then(Value::as_i64));
        if got != Some(code) {
            problems.push(format!(
                "expected JSON-RPC error {code}, got {}",
                got.map_or_else(|| "none".to_owned(), |c| c.to_string())
            ));
        }
    }
    if let Some(reason) = &expect.reason {
        let got = outcome.audit_str("reason").unwrap_or_default();
        if !got.contains(reason.as_str()) {
            problems.push(format!(
                "expected a reason containing {reason:?}, got {got:?}"
            ));
        }
    }
    if let Some(challenge) = &expect.www_authenticate {
        let got = outcome
            .reply
            .as_ref()
            .and_then(|r| r.headers.iter().find(|(k, _)| k == "www-authenticate"))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !got.contains(challenge.as_str()) {
            problems.push(format!(
                "expected WWW-Authenticate containing {challenge:?}, got {got:?}"
            ));
        }
    }
    if let Some(disclosed) = expect.disclosed {
        problems.extend(check_disclosure(disclosed, outcome));
    }
    for (name, value) in &expect.upstream_headers {
        let got = outcome.upstream_header(name);
        if got != value.as_deref() {
            let wanted = value.as_deref().unwrap_or("absent");
            problems.push(format!(
                "expected upstream header {name}: {wanted}, got {}",
                got.unwrap_or("absent")
            ));
        }
    }
    if let Some(secret) = request.secret() {
        let audit = outcome
            .audit
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default();
        let reply = format!("{:?}", outcome.reply);
        if audit.contains(secret) || reply.contains(secret) {
            problems.push("the token leaked into the audit line or the answer".into());
        }
    }
    problems
}

/// Whether Warden's answer shows the rule and reason exactly when
/// `disclosed` says so. Withheld means no `rule` or `reason` in the error
/// data, and neither the audit reason nor the deciding rule's id anywhere
/// in the answer.
fn check_disclosure(disclosed: bool, outcome: &Outcome) -> Vec<String> {
    let Some(reply) = &outcome.reply else {
        return vec!["expected an answer from Warden, the request was forwarded".into()];
    };
    let data = serde_json::from_str::<Value>(&reply.body)
        .ok()
        .and_then(|b| b.pointer("/error/data").cloned())
        .unwrap_or(Value::Null);
    let shown = data.get("reason").is_some_and(Value::is_string);
    if disclosed {
        return if shown && data.get("rule").is_some() {
            Vec::new()
        } else {
            vec![format!(
                "expected the answer to disclose the rule and reason, got {}",
                reply.body
            )]
        };
    }
    let mut problems = Vec::new();
    if shown || data.get("rule").is_some() {
        problems.push(format!(
            "expected the rule and reason withheld, the answer shows {data}"
        ));
    }
    let mut answer = reply.body.clone();
    for (name, value) in &reply.headers {
        answer.push_str(&format!("\n{name}: {value}"));
    }
    for (field, secret) in [
        ("reason", outcome.audit_str("reason")),
        ("rule", outcome.audit_str("rule")),
    ] {
        if let Some(secret) = secret.filter(|s| !s.is_empty())
            && answer.contains(secret)
        {
            problems.push(format!(
                "the audit {field} {secret:?} leaked into the answer"
            ));
        }
    }
    problems
}

/// Runs cases through the built filter, in one VM per suite, as one
/// Envoy worker would.
pub struct WasmRunner<'m> {
    module: &'m FilterModule,
    config: String,
    now: u64,
    filter: WardenFilter,
}

impl<'m> WasmRunner<'m> {
    pub fn new(module: &'m FilterModule, suite: &Suite) -> Result<Self, SuiteError> {
        let filter =
            WardenFilter::start(module, &suite.config, suite.now).map_err(SuiteError::Harness)?;
        Ok(Self {
            module,
            config: suite.config.clone(),
            now: suite.now,
            filter,
        })
    }

    /// Runs one request through the filter (`proxy_on_context_create`,
    /// request headers and body, then the end of the stream). A request
    /// the filter neither answers nor forwards is a failure; so is a trap,
    /// after which a fresh VM takes over for the remaining cases.
    pub fn send(&mut self, request: &Prepared) -> Result<Result<Outcome, String>, SuiteError> {
        let exchange = match self.filter.handle(&request.http_request()) {
            Ok(exchange) => exchange,
            Err(error) => {
                self.filter = WardenFilter::start(self.module, &self.config, self.now)
                    .map_err(SuiteError::Harness)?;
                return Ok(Err(format!("harness: {error}")));
            }
        };
        if exchange.local_response.is_none() && !exchange.forwarded() {
            return Ok(Err(
                "the filter neither answered nor forwarded the request (it hangs)".into(),
            ));
        }
        let upstream = match &exchange.upstream_headers {
            Some(headers) if exchange.local_response.is_none() => watched(headers),
            _ => Vec::new(),
        };
        let outcome = Outcome {
            reply: exchange.local_response.map(|r| LocalReply {
                status: u16::try_from(r.status).unwrap_or(0),
                body: r.body_text(),
                headers: r.headers,
            }),
            audit: exchange.audit,
            upstream,
        };
        Ok(Ok(outcome.with_own_request_id_masked()))
    }
}

impl Outcome {
    /// Replaces the filter's own request id (the audit line's
    /// `request_id`, when it is not the client's) by [`OWN_REQUEST_ID`]
    /// wherever it appears, so runs compare.
    fn with_own_request_id_masked(mut self) -> Self {
        let own = self
            .audit
            .as_ref()
            .and_then(|audit| audit.get("request_id"))
            .and_then(Value::as_str)
            .filter(|id| *id != REQUEST_ID)
            .map(str::to_owned);
        let Some(own) = own else {
            return self;
        };
        if let Some(reply) = &mut self.reply {
            reply.body = reply.body.replace(&own, OWN_REQUEST_ID);
        }
        if let Some(audit) = &mut self.audit {
            let text = audit.to_string().replace(&own, OWN_REQUEST_ID);
            if let Ok(masked) = serde_json::from_str(&text) {
                *audit = masked;
            }
        }
        self
    }
}

/// What one native run gives besides the [`Outcome`].
#[derive(Debug, Clone)]
pub struct NativeRun {
    pub outcome: Outcome,
    /// Every header the upstream received, sorted (forwarded requests only).
    pub upstream_all: Vec<(String, String)>,
}

/// Runs cases natively: policy-sdk's request lifecycle (`Exchange`) on its
/// in-memory host, with one configuration and the shared data its requests
/// leave, as one VM of the `.wasm` keeps them.
pub struct NativeRunner {
    warden: Rc<Warden>,
    shared: BTreeMap<String, Vec<u8>>,
    now: u64,
}

impl NativeRunner {
    /// Compiles the plugin configuration as the filter does; `mode`
    /// overrides its `filter.header_mode`.
    pub fn new(config: &str, mode: Option<HeaderMode>, now: u64) -> Result<Self, SuiteError> {
        let compile = || -> Result<Warden, String> {
            let mut document = PolicyDocument::from_json(config).map_err(|e| e.to_string())?;
            if let Some(mode) = mode {
                document.filter.header_mode = mode;
            }
            Warden::compile(&document).map_err(|e| e.to_string())
        };
        Ok(Self {
            warden: Rc::new(compile().map_err(SuiteError::Suite)?),
            shared: BTreeMap::new(),
            now,
        })
    }

    /// Drives one stream through the exchange: the request, then the end
    /// of the stream. The host honours a pause from the headers callback,
    /// as the harness does by default.
    pub fn send(&mut self, request: &Request) -> Result<NativeRun, String> {
        let mut exchange = policy_sdk::Exchange::new(Some(Rc::clone(&self.warden)))
            .with_request_id(OWN_REQUEST_ID.to_owned());
        let mut host = MemoryHost::new(u128::from(self.now) * 1_000_000_000, HeaderPause::Honoured);
        host.shared = std::mem::take(&mut self.shared);
        let mut driver = Driver::new(&mut exchange, host);
        driver.send_request(request);
        let hangs = !driver.exchange.decided();
        driver.finish();
        let mut host = driver.host;
        self.shared = std::mem::take(&mut host.shared);
        if hangs {
            return Err(
                "the exchange neither answered nor forwarded the request (it hangs)".into(),
            );
        }
        let audit = match host.decisions().first() {
            Some(audit) => Some(
                serde_json::from_str(&audit.to_json_line())
                    .map_err(|e| format!("the audit line is not JSON: {e}"))?,
            ),
            None => None,
        };
        let mut upstream_all = match (&host.reply, host.request.sent_headers) {
            (None, Some(sent)) => sent,
            _ => Vec::new(),
        };
        upstream_all.sort();
        Ok(NativeRun {
            outcome: Outcome {
                reply: host.reply.map(|r| LocalReply {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                }),
                audit,
                upstream: watched(&upstream_all),
            },
            upstream_all,
        })
    }
}

/// Which runners run a suite.
#[derive(Clone, Copy)]
pub enum Runners<'m> {
    /// The built filter only (`warden test`).
    Wasm(&'m FilterModule),
    /// The native core only.
    Native,
    /// Both, which must also agree: the same answer (status, headers,
    /// body), the same audit line and the same headers upstream.
    Both(&'m FilterModule),
}

/// Runs every case of a suite with `runners`.
pub fn run(suite: &Suite, runners: Runners<'_>) -> Result<SuiteReport, SuiteError> {
    let module = match runners {
        Runners::Wasm(module) | Runners::Both(module) => Some(module),
        Runners::Native => None,
    };
    let mut wasm = module.map(|m| WasmRunner::new(m, suite)).transpose()?;
    let mut native = match runners {
        Runners::Native | Runners::Both(_) => {
            Some(NativeRunner::new(&suite.config, None, suite.now)?)
        }
        Runners::Wasm(_) => None,
    };
    let mut cases = Vec::new();
    for case in &suite.cases {
        let from_wasm = match &mut wasm {
            Some(runner) => Some(runner.send(&case.request)?),
            None => None,
        };
        let from_native = native.as_mut().map(|runner| {
            runner
                .send(&case.request.native_request())
                .map(|run| run.outcome)
        });
        let problems_of = |result: &Result<Outcome, String>| match result {
            Ok(outcome) => check(&case.expect, outcome, &case.request),
            Err(problem) => vec![problem.clone()],
        };
        let problems = match (&from_wasm, &from_native) {
            (Some(w), Some(n)) if w == n => problems_of(w),
            (Some(w), Some(n)) => {
                let mut problems: Vec<String> = problems_of(w)
                    .into_iter()
                    .map(|p| format!("wasm: {p}"))
                    .chain(problems_of(n).into_iter().map(|p| format!("native: {p}")))
                    .collect();
                if let (Ok(w), Ok(n)) = (w, n) {
                    problems.push(format!(
                        "the .wasm and the native core disagree:\n  wasm:   {w:?}\n  native: {n:?}"
                    ));
                }
                problems
            }
            (Some(only), None) | (None, Some(only)) => problems_of(only),
            (None, None) => Vec::new(),
        };
        let ok = |result: Option<Result<Outcome, String>>| result.and_then(Result::ok);
        let (wasm_outcome, native_outcome) = (ok(from_wasm), ok(from_native));
        let actual = wasm_outcome
            .as_ref()
            .or(native_outcome.as_ref())
            .map(Verdict::from_outcome)
            .unwrap_or_default();
        cases.push(CaseResult {
            name: case.name.clone(),
            passed: problems.is_empty(),
            expected: case.expect.clone(),
            actual,
            problems,
            wasm: wasm_outcome,
            native: native_outcome,
        });
    }
    Ok(SuiteReport {
        file: suite.file.clone(),
        policy: suite.policy.clone(),
        cases,
    })
}

/// Runs every case of a suite file through the built filter (`warden test`).
pub fn run_suite(module: &FilterModule, path: &Path) -> Result<SuiteReport, SuiteError> {
    run(&Suite::load(path)?, Runners::Wasm(module))
}
