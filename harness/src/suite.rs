//! Policy test suites: YAML files of cases, each with the caller's token
//! claims, an MCP request and the expected decision, run through the built
//! filter. The harness mints the tokens with a key it owns and makes every
//! issuer of the policy trust that key for the run, so suites need no real
//! identity provider.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use policy_sdk::PolicyDocument;
use policy_sdk::testing::{DemoAlg, DemoIssuer, TEST_NOW, demo_jwks, overlay_claims};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::filter::{Exchange, HttpRequest, WardenFilter};
use crate::host::{FilterModule, HarnessError};
use crate::load::{Diagnostic, load_policy};

/// A suite file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSource {
    /// The policy under test, relative to the suite file.
    pub policy: String,
    /// The host clock, seconds since the Unix epoch (default: a fixed
    /// instant, so runs are reproducible).
    #[serde(default)]
    pub now: Option<u64>,
    pub cases: Vec<CaseSource>,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSource {
    pub name: String,
    /// Token claims, merged over `iss`, `aud` (the policy's first issuer and
    /// audience unless given), `iat` and `exp`. `null` removes a claim.
    #[serde(default)]
    pub claims: Option<Value>,
    /// `none`: send no token at all; any other text is sent as the bearer
    /// token unchanged (and `claims` is ignored).
    #[serde(default)]
    pub token: Option<String>,
    pub request: RequestSource,
    pub expect: Expect,
}

/// The MCP request of a case.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSource {
    /// HTTP method: POST (default), GET or DELETE.
    #[serde(default)]
    pub http_method: Option<String>,
    /// HTTP path (default `/mcp`).
    #[serde(default)]
    pub path: Option<String>,
    /// JSON-RPC method; defaults to `tools/call` with `tool`,
    /// `resources/read` with `uri`, `prompts/get` with `prompt`.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// Raw `params` for other methods.
    #[serde(default)]
    pub params: Option<Value>,
    /// JSON-RPC id (default 1; notifications have none).
    #[serde(default)]
    pub id: Option<Value>,
    /// Extra HTTP headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `allow`, `deny`, or `{decision, rule, status}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    Decision(Decision),
    Detailed(ExpectDetailed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectDetailed {
    pub decision: Decision,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
}

impl ExpectDetailed {
    /// `allow by search-docs (status 200)`.
    pub fn summary(&self) -> String {
        let mut out = self.decision.as_str().to_owned();
        if let Some(rule) = &self.rule {
            out.push_str(&format!(" by {rule}"));
        }
        if let Some(status) = self.status {
            out.push_str(&format!(" (status {status})"));
        }
        out
    }
}

impl Expect {
    fn detailed(&self) -> ExpectDetailed {
        match self {
            Expect::Decision(decision) => ExpectDetailed {
                decision: *decision,
                rule: None,
                status: None,
            },
            Expect::Detailed(d) => d.clone(),
        }
    }
}

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
    pub expected: ExpectDetailed,
    pub actual: Verdict,
    pub problems: Vec<String>,
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
}

fn pick_alg(algorithms: Option<&Vec<Value>>) -> DemoAlg {
    let listed = |name: &str| algorithms.is_none_or(|a| a.iter().any(|v| v == name));
    if listed("ES256") {
        DemoAlg::ES256
    } else if listed("EdDSA") {
        DemoAlg::EdDSA
    } else if listed("RS256") {
        DemoAlg::RS256
    } else {
        DemoAlg::ES256
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
        };
        Ok((config.to_string(), minter))
    }

    /// A bearer token carrying `claims` (merged over the defaults).
    pub fn token(&self, claims: &Value) -> Result<String, String> {
        let mut merged = Map::new();
        if let Some((iss, aud, _)) = self.issuers.first() {
            merged.insert("iss".into(), json!(iss));
            if let Some(aud) = aud {
                merged.insert("aud".into(), json!(aud));
            }
        }
        merged.insert("iat".into(), json!(self.now));
        merged.insert("exp".into(), json!(self.now + 600));
        match claims {
            Value::Object(extra) => overlay_claims(&mut merged, extra.clone()),
            Value::Null => {}
            _ => return Err("claims must be a mapping".into()),
        }
        let iss = merged
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let alg = self
            .issuers
            .iter()
            .find(|(i, _, _)| i == iss)
            .map_or(DemoAlg::ES256, |(_, _, alg)| *alg);
        self.issuer
            .sign(alg, &Value::Object(merged))
            .map_err(|e| e.to_string())
    }
}

/// The JSON-RPC body of a request.
pub fn jsonrpc_body(request: &RequestSource) -> Value {
    let method = request.method.clone().unwrap_or_else(|| {
        if request.uri.is_some() {
            "resources/read".into()
        } else if request.prompt.is_some() {
            "prompts/get".into()
        } else {
            "tools/call".into()
        }
    });
    let with_arguments = |name: &String| json!({"name": name, "arguments": request.arguments.clone().unwrap_or(json!({}))});
    let params = request
        .params
        .clone()
        .or_else(|| request.tool.as_ref().map(with_arguments))
        .or_else(|| request.uri.as_ref().map(|uri| json!({"uri": uri})))
        .or_else(|| request.prompt.as_ref().map(with_arguments));
    let mut body = Map::new();
    body.insert("jsonrpc".into(), json!("2.0"));
    if !method.starts_with("notifications/") {
        body.insert("id".into(), request.id.clone().unwrap_or(json!(1)));
    }
    body.insert("method".into(), json!(method));
    if let Some(params) = params {
        body.insert("params".into(), params);
    }
    Value::Object(body)
}

/// The HTTP request of a case.
pub fn http_request(request: &RequestSource, authorization: Option<&str>) -> HttpRequest {
    let http_method = request.http_method.as_deref().unwrap_or("POST");
    let body = if http_method == "POST" {
        jsonrpc_body(request).to_string().into_bytes()
    } else {
        Vec::new()
    };
    let mut http = HttpRequest::post(body);
    http.method = http_method.to_owned();
    if let Some(path) = &request.path {
        http.path.clone_from(path);
    }
    if let Some(authorization) = authorization {
        http = http.header("authorization", authorization);
    }
    for (name, value) in &request.headers {
        http = http.header(name, value);
    }
    http
}

fn check(expect: &ExpectDetailed, actual: &Verdict) -> Vec<String> {
    let mut problems = Vec::new();
    if actual.decision.as_deref() != Some(expect.decision.as_str()) {
        problems.push(format!(
            "expected {}, got {}",
            expect.decision.as_str(),
            actual.decision.as_deref().unwrap_or("no decision")
        ));
    }
    if let Some(rule) = &expect.rule
        && actual.rule.as_deref() != Some(rule)
    {
        problems.push(format!(
            "expected rule {rule}, got {}",
            actual.rule.as_deref().unwrap_or("none")
        ));
    }
    if let Some(status) = expect.status
        && actual.status != Some(u32::from(status))
    {
        problems.push(format!(
            "expected status {status}, got {}",
            actual
                .status
                .map_or_else(|| "forwarded".to_owned(), |s| s.to_string())
        ));
    }
    problems
}

/// Reads a suite file.
pub fn read_suite(path: &Path) -> Result<SuiteSource, SuiteError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SuiteError::Suite(format!("{}: {e}", path.display())))?;
    serde_yaml_ng::from_str(&text)
        .map_err(|e| SuiteError::Suite(format!("{}: {e}", path.display())))
}

/// Runs every case of a suite file through the filter.
pub fn run_suite(module: &FilterModule, path: &Path) -> Result<SuiteReport, SuiteError> {
    let suite = read_suite(path)?;
    let policy = path.parent().unwrap_or(Path::new(".")).join(&suite.policy);
    let loaded = load_policy(&policy).map_err(SuiteError::Policy)?;
    let now = suite.now.unwrap_or(TEST_NOW);
    let (config, minter) = Minter::for_document(&loaded.document, now)
        .map_err(|e| SuiteError::Suite(format!("{}: {e}", path.display())))?;
    let start = || WardenFilter::start(module, &config, now).map_err(SuiteError::Harness);
    let mut filter = start()?;
    let mut cases = Vec::new();
    for case in &suite.cases {
        let expect = case.expect.detailed();
        let authorization = match case.token.as_deref() {
            Some("none") => Ok(None),
            Some(token) => Ok(Some(format!("Bearer {token}"))),
            None => minter
                .token(case.claims.as_ref().unwrap_or(&Value::Null))
                .map(|t| Some(format!("Bearer {t}"))),
        };
        let outcome = authorization
            .map_err(|e| format!("cannot mint the token: {e}"))
            .and_then(|a| {
                filter
                    .handle(&http_request(&case.request, a.as_deref()))
                    .map_err(|e| format!("harness: {e}"))
            });
        let (actual, problems) = match outcome {
            Ok(exchange) => {
                let actual = Verdict::from_exchange(&exchange);
                let problems = check(&expect, &actual);
                (actual, problems)
            }
            Err(problem) => {
                // A failed VM stays failed: start a fresh one for the rest.
                filter = start()?;
                (Verdict::default(), vec![problem])
            }
        };
        cases.push(CaseResult {
            name: case.name.clone(),
            passed: problems.is_empty(),
            expected: expect,
            actual,
            problems,
        });
    }
    Ok(SuiteReport {
        file: path.to_path_buf(),
        policy,
        cases,
    })
}
