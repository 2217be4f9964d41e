//! The case format: one typed format for policy test suites (`warden test`)
//! and the filter's scenario tables (`harness/tests/scenarios.rs`), run by
//! one runner ([`crate::suite`]).
//!
//! A file names a policy (relative to the file) and lists cases. A case
//! gives the caller's credentials (`claims` the harness mints a token for,
//! or a raw `token` or `authorization`), the request (the MCP shorthand
//! `tool`, `arguments`, `uri`, `prompt`, … or an HTTP-level `body` /
//! `raw_body`, with `http_method`, `path` and `headers`), and what must
//! happen (`allow` / `deny`, or detailed fields). Every mapping refuses
//! unknown fields, so a misspelt expectation cannot pass silently.

use std::collections::BTreeMap;
use std::fmt;

use policy_sdk::mcp::{MethodFacts, MethodKind, TargetKind};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

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
    /// Claims every minted token carries, under each case's own `claims`
    /// (and over `iss`, `aud`, `iat`, `exp`).
    #[serde(default)]
    pub claims: Map<String, Value>,
    pub cases: Vec<CaseSource>,
}

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSource {
    pub name: String,
    /// Token claims, merged over the suite's `claims` and the defaults;
    /// `null` removes a claim.
    #[serde(default)]
    pub claims: Option<Map<String, Value>>,
    /// The algorithm to sign the minted token with (default: one the
    /// issuer accepts, ES256 first).
    #[serde(default)]
    pub alg: Option<Alg>,
    /// `none`: send no `Authorization` header; any other text is sent as
    /// the bearer token unchanged.
    #[serde(default)]
    pub token: Option<String>,
    /// A raw `Authorization` header value (another scheme, a malformed one).
    #[serde(default)]
    pub authorization: Option<String>,
    pub request: RequestSource,
    #[serde(deserialize_with = "expectation")]
    pub expect: Expectation,
}

/// Signing algorithms of the harness's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Alg {
    ES256,
    RS256,
    EdDSA,
}

/// How a case authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// A token the harness mints for these claims (merged over the suite's).
    Minted {
        claims: Map<String, Value>,
        alg: Option<Alg>,
    },
    /// No `Authorization` header.
    Anonymous,
    /// This `Authorization` header value, as is.
    Header(String),
}

impl CaseSource {
    /// The case's credentials; `claims` and `alg` only go with a minted
    /// token.
    pub fn credentials(&self) -> Result<Credentials, String> {
        let minted = self.claims.is_some() || self.alg.is_some();
        match (&self.token, &self.authorization) {
            (Some(_), Some(_)) => Err("give `token` or `authorization`, not both".into()),
            (Some(_), None) | (None, Some(_)) if minted => Err(
                "`claims` and `alg` mint a token: they cannot go with `token` or `authorization`"
                    .into(),
            ),
            (Some(token), None) if token == "none" => Ok(Credentials::Anonymous),
            (Some(token), None) => Ok(Credentials::Header(format!("Bearer {token}"))),
            (None, Some(raw)) => Ok(Credentials::Header(raw.clone())),
            (None, None) => Ok(Credentials::Minted {
                claims: self.claims.clone().unwrap_or_default(),
                alg: self.alg,
            }),
        }
    }

    /// Checks that the case's credentials, request and expectation are
    /// coherent.
    pub fn validate(&self) -> Result<(), String> {
        self.credentials()?;
        self.request.body()?;
        self.expect.validate()?;
        let mut headers = self.request.headers.keys();
        if headers.any(|k| k.eq_ignore_ascii_case("authorization")) {
            return Err(
                "give the `Authorization` header with `token` or `authorization`, not in `headers`"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The request of a case: the MCP shorthand builds a JSON-RPC body; `body`
/// and `raw_body` give it at the HTTP level instead.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSource {
    /// HTTP method (default POST). Only a POST carries a body built from
    /// the shorthand.
    #[serde(default)]
    pub http_method: Option<String>,
    /// HTTP path (default `/mcp`).
    #[serde(default)]
    pub path: Option<String>,
    /// Extra HTTP headers. A POST without `content-type` gets
    /// `application/json`; the `Authorization` header comes from the case's
    /// credentials.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: this JSON (any JSON: a batch, a malformed message).
    #[serde(default)]
    pub body: Option<Value>,
    /// The body: this text, byte for byte (invalid JSON, duplicate keys,
    /// nothing).
    #[serde(default)]
    pub raw_body: Option<String>,
    /// JSON-RPC method; defaults to `tools/call` with `tool`,
    /// `resources/read` with `uri`, `prompts/get` with `prompt`.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub tool: Option<String>,
    /// The tool's or prompt's arguments (default `{}`).
    #[serde(default)]
    pub arguments: Option<Value>,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    /// Raw `params`, instead of `tool`, `uri`, `prompt` and `arguments`.
    #[serde(default)]
    pub params: Option<Value>,
    /// JSON-RPC id (default 1; notifications have none).
    #[serde(default)]
    pub id: Option<Value>,
}

impl RequestSource {
    pub fn http_method(&self) -> &str {
        self.http_method.as_deref().unwrap_or("POST")
    }

    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("/mcp")
    }

    /// The shorthand fields given, by name.
    fn shorthand(&self) -> Vec<&'static str> {
        [
            ("method", self.method.is_some()),
            ("tool", self.tool.is_some()),
            ("arguments", self.arguments.is_some()),
            ("uri", self.uri.is_some()),
            ("prompt", self.prompt.is_some()),
            ("params", self.params.is_some()),
            ("id", self.id.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// The body bytes, after checking that the fields describe one body.
    pub fn body(&self) -> Result<Vec<u8>, String> {
        let shorthand = self.shorthand();
        let fields = || {
            shorthand
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (&self.body, &self.raw_body) {
            (Some(_), Some(_)) => return Err("give `body` or `raw_body`, not both".into()),
            (Some(_), None) | (None, Some(_)) if !shorthand.is_empty() => {
                return Err(format!(
                    "{} build a JSON-RPC body: they cannot go with `body` or `raw_body`",
                    fields()
                ));
            }
            (Some(body), None) => {
                return serde_json::to_vec(body).map_err(|e| e.to_string());
            }
            (None, Some(raw)) => return Ok(raw.as_bytes().to_vec()),
            (None, None) => {}
        }
        if self.http_method() != "POST" {
            if shorthand.is_empty() {
                return Ok(Vec::new());
            }
            return Err(format!(
                "{} build a JSON-RPC body, which only a POST carries (give `body` to send one with {})",
                fields(),
                self.http_method()
            ));
        }
        let targets = [
            self.tool.is_some(),
            self.uri.is_some(),
            self.prompt.is_some(),
        ];
        if targets.iter().filter(|t| **t).count() > 1 {
            return Err("give one of `tool`, `uri` and `prompt`".into());
        }
        if self.params.is_some() && (targets.contains(&true) || self.arguments.is_some()) {
            return Err("`params` replaces `tool`, `uri`, `prompt` and `arguments`".into());
        }
        if self.arguments.is_some() && self.tool.is_none() && self.prompt.is_none() {
            return Err("`arguments` go with `tool` or `prompt`".into());
        }
        serde_json::to_vec(&jsonrpc_body(self)).map_err(|e| e.to_string())
    }
}

/// The JSON-RPC message the shorthand of a request describes.
pub fn jsonrpc_body(request: &RequestSource) -> Value {
    let method = request.method.clone().unwrap_or_else(|| {
        let kind = if request.uri.is_some() {
            TargetKind::Resource
        } else if request.prompt.is_some() {
            TargetKind::Prompt
        } else {
            TargetKind::Tool
        };
        kind.use_method().name.to_owned()
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
    // A case names no revision: the method's kind in any revision that has it.
    if MethodFacts::kind_of(&method, None) == MethodKind::Request {
        body.insert("id".into(), request.id.clone().unwrap_or(json!(1)));
    }
    body.insert("method".into(), json!(method));
    if let Some(params) = params {
        body.insert("params".into(), params);
    }
    Value::Object(body)
}

/// A decision, as the audit line gives it.
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

/// What must happen to a case's request: `allow` or `deny` (the decision
/// alone), or any of these fields. Unset fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// The audit line's decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The deciding rule (`warden:…` for Warden's own defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `true`: the request reaches the upstream; `false`: Warden answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<bool>,
    /// Warden answers locally with this HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The JSON-RPC error code of Warden's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// A substring of the audit line's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A substring of the answer's `WWW-Authenticate` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub www_authenticate: Option<String>,
    /// `true`: Warden's answer shows the caller the deciding rule and the
    /// reason (`filter.disclose_reasons`); `false`: it shows neither, nor
    /// the audit line's reason anywhere in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosed: Option<bool>,
    /// Headers as the upstream receives them (`x-warden-*` and
    /// `authorization`); `null`: absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstream_headers: BTreeMap<String, Option<String>>,
    /// What the rules in shadow would have decided (the audit line's
    /// `shadow.outcome`); `none`: nothing in shadow would decide otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowOutcome>,
    /// The rule in shadow that would have decided (`shadow.rule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_rule: Option<String>,
}

/// A shadow outcome, as the audit line gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowOutcome {
    WouldAllow,
    WouldDeny,
    None,
}

impl ShadowOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOutcome::WouldAllow => "would_allow",
            ShadowOutcome::WouldDeny => "would_deny",
            ShadowOutcome::None => "none",
        }
    }
}

/// Request headers whose upstream value the runners compare and cases may
/// expect.
pub fn watched_header(name: &str) -> bool {
    name.starts_with("x-warden-") || name == "authorization"
}

impl Expectation {
    fn decision(decision: Decision) -> Self {
        Self {
            decision: Some(decision),
            ..Self::default()
        }
    }

    /// Refuses expectations that check nothing or cannot hold.
    pub fn validate(&self) -> Result<(), String> {
        if *self == Self::default() {
            return Err("`expect` checks nothing".into());
        }
        if self.forward == Some(true) && self.status.is_some() {
            return Err("`forward: true` and `status` contradict each other".into());
        }
        if let Some(name) = self.upstream_headers.keys().find(|n| !watched_header(n)) {
            return Err(format!(
                "upstream header `{name}` is not compared: only `x-warden-*` and `authorization` are"
            ));
        }
        Ok(())
    }

    /// `allow by search-docs (status 200)`.
    pub fn summary(&self) -> String {
        let head = match (self.decision, &self.rule) {
            (Some(d), Some(rule)) => Some(format!("{} by {rule}", d.as_str())),
            (Some(d), None) => Some(d.as_str().to_owned()),
            (None, Some(rule)) => Some(format!("rule {rule}")),
            (None, None) => None,
        };
        let mut extra = Vec::new();
        match self.forward {
            Some(true) => extra.push("forwarded".to_owned()),
            Some(false) => extra.push("answered by Warden".to_owned()),
            None => {}
        }
        if let Some(status) = self.status {
            extra.push(format!("status {status}"));
        }
        if let Some(code) = self.error_code {
            extra.push(format!("error {code}"));
        }
        if let Some(reason) = &self.reason {
            extra.push(format!("reason containing {reason:?}"));
        }
        if let Some(challenge) = &self.www_authenticate {
            extra.push(format!("WWW-Authenticate containing {challenge:?}"));
        }
        match self.disclosed {
            Some(true) => extra.push("rule and reason disclosed".to_owned()),
            Some(false) => extra.push("rule and reason withheld".to_owned()),
            None => {}
        }
        if let Some(shadow) = self.shadow {
            extra.push(format!("shadow {}", shadow.as_str()));
        }
        if let Some(rule) = &self.shadow_rule {
            extra.push(format!("shadow rule {rule}"));
        }
        for (name, value) in &self.upstream_headers {
            match value {
                Some(value) => extra.push(format!("upstream {name}: {value}")),
                None => extra.push(format!("no upstream {name}")),
            }
        }
        match (head, extra.is_empty()) {
            (Some(head), true) => head,
            (Some(head), false) => format!("{head} ({})", extra.join(", ")),
            (None, _) => extra.join(", "),
        }
    }
}

/// `expect`: `allow`, `deny`, or a mapping of [`Expectation`] fields.
/// Read without buffering, so errors keep their line and column.
fn expectation<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Expectation, D::Error> {
    struct ExpectVisitor;

    impl<'de> Visitor<'de> for ExpectVisitor {
        type Value = Expectation;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("`allow`, `deny`, or a mapping of expected fields")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Expectation, E> {
            match value {
                "allow" => Ok(Expectation::decision(Decision::Allow)),
                "deny" => Ok(Expectation::decision(Decision::Deny)),
                other => Err(E::invalid_value(Unexpected::Str(other), &self)),
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Expectation, A::Error> {
            Expectation::deserialize(MapAccessDeserializer::new(map))
        }
    }

    deserializer.deserialize_any(ExpectVisitor)
}

impl SuiteSource {
    /// Checks what the types cannot say: case names are unique, each
    /// case's credentials, body and expectation are coherent. The error
    /// names the case.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for case in &self.cases {
            if !seen.insert(case.name.as_str()) {
                return Err(format!("two cases are named `{}`", case.name));
            }
            case.validate()
                .map_err(|e| format!("case `{}`: {e}", case.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(cases: &str) -> Result<SuiteSource, String> {
        let suite: SuiteSource =
            serde_yaml_ng::from_str(&format!("policy: p.yaml\ncases:\n{cases}"))
                .map_err(|e| e.to_string())?;
        suite.validate()?;
        Ok(suite)
    }

    #[test]
    fn both_forms_of_expect_read() {
        let s = suite(
            "  - {name: a, request: {tool: t}, expect: deny}\n  - {name: b, request: {tool: t}, expect: {forward: true, rule: r, upstream_headers: {x-warden-subject: alice, authorization: null}}}\n",
        )
        .unwrap();
        assert_eq!(s.cases[0].expect, Expectation::decision(Decision::Deny));
        assert_eq!(s.cases[1].expect.forward, Some(true));
        assert_eq!(s.cases[1].expect.upstream_headers["authorization"], None);
        assert_eq!(
            s.cases[1].expect.summary(),
            "rule r (forwarded, no upstream authorization, upstream x-warden-subject: alice)"
        );
    }

    #[test]
    fn unknown_and_misspelt_fields_are_refused_with_their_place() {
        let error =
            suite("  - name: a\n    request: {tool: t}\n    expect: {forwad: true}\n").unwrap_err();
        assert!(error.contains("unknown field `forwad`"), "{error}");
        assert!(error.contains("line 5"), "{error}");
        let error = suite("  - {name: a, request: {tool: t}, expect: maybe}\n").unwrap_err();
        assert!(error.contains("`allow`, `deny`, or a mapping"), "{error}");
        let error = suite("  - {name: a, request: {tol: t}, expect: deny}\n").unwrap_err();
        assert!(error.contains("unknown field `tol`"), "{error}");
    }

    #[test]
    fn incoherent_cases_are_refused_naming_the_case() {
        for (case, wanted) in [
            (
                "{name: a, request: {tool: t, body: {}}, expect: deny}",
                "`tool` build a JSON-RPC body",
            ),
            (
                "{name: a, request: {body: {}, raw_body: ''}, expect: deny}",
                "not both",
            ),
            (
                "{name: a, request: {http_method: GET, tool: t}, expect: deny}",
                "only a POST carries",
            ),
            (
                "{name: a, request: {tool: t, uri: u}, expect: deny}",
                "one of `tool`",
            ),
            (
                "{name: a, request: {tool: t, params: {}}, expect: deny}",
                "`params` replaces",
            ),
            (
                "{name: a, token: none, claims: {sub: x}, request: {tool: t}, expect: deny}",
                "cannot go with `token`",
            ),
            (
                "{name: a, request: {tool: t, headers: {Authorization: x}}, expect: deny}",
                "not in `headers`",
            ),
            (
                "{name: a, request: {tool: t}, expect: {}}",
                "checks nothing",
            ),
            (
                "{name: a, request: {tool: t}, expect: {forward: true, status: 200}}",
                "contradict",
            ),
            (
                "{name: a, request: {tool: t}, expect: {upstream_headers: {host: x}}}",
                "not compared",
            ),
        ] {
            let error = suite(&format!("  - {case}\n")).unwrap_err();
            assert!(
                error.contains(wanted) && error.contains("case `a`"),
                "{case}: {error}"
            );
        }
        let error = suite(
            "  - {name: a, request: {tool: t}, expect: deny}\n  - {name: a, request: {tool: t}, expect: deny}\n",
        )
        .unwrap_err();
        assert!(error.contains("two cases are named `a`"), "{error}");
    }

    #[test]
    fn the_shorthand_builds_the_jsonrpc_body() {
        let s = suite(
            "  - {name: a, request: {tool: t}, expect: deny}\n  - {name: b, request: {uri: 'docs://x', id: 7}, expect: deny}\n  - {name: c, request: {method: notifications/initialized}, expect: deny}\n  - {name: d, request: {http_method: GET}, expect: deny}\n",
        )
        .unwrap();
        let body = |i: usize| -> Value {
            let bytes = s.cases[i].request.body().unwrap();
            if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            }
        };
        assert_eq!(
            body(0),
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {}}})
        );
        assert_eq!(
            body(1),
            json!({"jsonrpc": "2.0", "id": 7, "method": "resources/read", "params": {"uri": "docs://x"}})
        );
        assert_eq!(
            body(2),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        );
        assert_eq!(body(3), Value::Null);
    }
}
