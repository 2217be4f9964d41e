//! Counting the hostcalls the filter makes for three reference requests:
//! an allowed `tools/call`, a denied one, and a `tools/list` whose
//! response is filtered. Each runs in its own HTTP context of one emulated
//! VM, after the VM has started, ticked and loaded what the policy fetches,
//! so the counts are those of a worker in its steady state. `warden
//! hostcalls` prints them; `make bench` writes them into BENCHMARKS.md.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;
use serde_json::{Map, Value, json};

use policy_sdk::config::PolicyDocument;
use policy_sdk::identity::envoy_metadata::{JWT_AUTHN_NAMESPACE, encode_verified_payload};
use policy_sdk::testing::TEST_NOW;

use crate::filter::{HttpRequest, WardenFilter};
use crate::host::{Emulator, FilterModule, HarnessError, HostcallCounts};
use crate::suite::Minter;

/// What the reference requests are made of.
#[derive(Clone)]
pub struct Reference {
    /// The plugin configuration (its issuers trusting the harness's keys).
    pub config: String,
    /// A tool the policy lets the caller call.
    pub allowed_tool: String,
    /// A tool it does not: the denied call, and the entry the list loses.
    pub denied_tool: String,
    /// The host clock, in seconds since the Unix epoch.
    pub now: u64,
    /// Every request with a token never presented before (a new `jti`):
    /// the path of a token the verification cache does not know, its
    /// signature checked. Off: one token throughout, as a client that
    /// reuses its token.
    pub fresh_tokens: bool,
    minter: Rc<Minter>,
    /// The caller's claims, laid over the minter's defaults.
    claims: Map<String, Value>,
    /// The token when it is the same throughout.
    token: String,
}

impl Reference {
    /// The reference requests under `document`, by a caller with `claims`
    /// (see [`default_claims`]): the harness mints the token, and makes
    /// the policy's issuers trust its key (inline).
    pub fn for_document(
        document: &PolicyDocument,
        claims: &Value,
        allowed_tool: &str,
        denied_tool: &str,
    ) -> Result<Self, String> {
        let (config, minter) = Minter::for_document(document, TEST_NOW)?;
        let claims = match claims {
            Value::Object(claims) => claims.clone(),
            Value::Null => Map::new(),
            _ => return Err("claims must be a mapping".into()),
        };
        Ok(Self {
            config,
            allowed_tool: allowed_tool.to_owned(),
            denied_tool: denied_tool.to_owned(),
            now: TEST_NOW,
            fresh_tokens: false,
            token: minter.mint(&[&claims], None)?,
            minter: Rc::new(minter),
            claims,
        })
    }

    /// The `n`th reference POST of `body`, with the caller's credentials:
    /// the bearer token; under `identity.verified_by: jwt_authn`, the
    /// payload `jwt_authn` leaves in the stream's metadata for it instead,
    /// as `jwt_authn` removes the token it verified (its default, and
    /// `warden envoy`'s).
    fn request(&self, n: u64, body: Vec<u8>) -> Result<HttpRequest, HarnessError> {
        let fresh = self.fresh_tokens.then(|| {
            let mut claims = self.claims.clone();
            claims.insert("jti".into(), Value::String(format!("fresh-{n}")));
            claims
        });
        let claims = fresh.as_ref().unwrap_or(&self.claims);
        let mut request = HttpRequest::post(body);
        match self.minter.jwt_authn_payload_key() {
            Some(key) => {
                request.dynamic_metadata = Some(encode_verified_payload(
                    JWT_AUTHN_NAMESPACE,
                    key,
                    &self.minter.claims(&[claims]),
                ));
            }
            None => {
                let token = match &fresh {
                    Some(claims) => self
                        .minter
                        .mint(&[claims], None)
                        .map_err(HarnessError::Usage)?,
                    None => self.token.clone(),
                };
                request = request.header("authorization", &format!("Bearer {token}"));
            }
        }
        Ok(request)
    }
}

/// Makes `alg` the only algorithm every issuer of `document` accepts, so
/// the harness signs with it (`warden hostcalls --alg`).
pub fn accept_only(document: &mut PolicyDocument, alg: &str) {
    for issuer in &mut document.identity.issuers {
        issuer.algorithms = vec![alg.to_owned()];
    }
}

/// The caller `warden hostcalls` uses unless told otherwise: a human,
/// `alice`, in group `eng`.
pub fn default_claims() -> Value {
    json!({"sub": "alice", "actor_type": "human", "groups": ["eng"]})
}

/// The hostcalls one request (or one root tick) made.
#[derive(Debug, Clone, Serialize)]
pub struct Counted {
    /// `allowed call`, `denied call`, `filtered list`, `tick (root)`.
    pub request: &'static str,
    /// What the filter did: `forwarded`, `answered 200`, ….
    pub outcome: String,
    /// By hostcall name (`proxy_log`; WASI calls keep their module,
    /// `wasi_snapshot_preview1.random_get`).
    pub hostcalls: BTreeMap<String, u64>,
    /// The sum over every name.
    pub total: u64,
    /// The Wasm instructions (wasmtime's fuel) the request's callbacks ran,
    /// from the stream's creation to its deletion: the filter's own work,
    /// deterministic where CPU time is not.
    pub fuel: u64,
}

impl Counted {
    fn new(request: &'static str, outcome: String, counts: &HostcallCounts, fuel: u64) -> Self {
        let hostcalls: BTreeMap<String, u64> = counts
            .iter()
            .map(|(name, n)| (name.strip_prefix("env.").unwrap_or(name).to_owned(), *n))
            .collect();
        Self {
            request,
            outcome,
            total: hostcalls.values().sum(),
            hostcalls,
            fuel,
        }
    }

    /// How many times `name` (without `env.`) was called.
    pub fn count(&self, name: &str) -> u64 {
        self.hostcalls.get(name).copied().unwrap_or(0)
    }
}

/// The body of a `tools/call` of `tool`.
fn call_body(tool: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": {"environment": "staging"}}})
    .to_string()
    .into_bytes()
}

/// Answers every HTTP call the filter made (the documents the policy polls)
/// with an empty JSON object: an empty revocation list. Key sets are not
/// fetched here: the reference configuration carries them inline.
fn answer_fetches(emulator: &mut Emulator) -> Result<(), HarnessError> {
    for call in emulator.pending_http_calls() {
        emulator.respond_http_call(
            call.token,
            &[(":status", "200"), ("content-type", "application/json")],
            b"{}",
            &[],
        )?;
    }
    Ok(())
}

fn outcome(emulator: &Emulator, id: u32) -> String {
    match emulator.local_response(id) {
        Some(reply) => format!("answered {}", reply.status),
        None if emulator.upstream_request_headers(id).is_some() => "forwarded".to_owned(),
        None => "held".to_owned(),
    }
}

/// One request, answered with `answer` (a JSON-RPC result) if it went
/// upstream: the stream's id, what the filter did, and the response body
/// the client received.
fn exchange(
    filter: &mut WardenFilter,
    request: &HttpRequest,
    answer: &Value,
) -> Result<(u32, String, Option<Vec<u8>>), HarnessError> {
    let (id, _) = filter.send(request)?;
    let emulator = filter.emulator();
    let done = outcome(emulator, id);
    let mut seen = None;
    if done == "forwarded" {
        emulator.response_headers(
            id,
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        )?;
        emulator.response_body(id, answer.to_string().as_bytes(), true)?;
        seen = emulator.downstream_response_body(id).map(<[u8]>::to_vec);
    }
    emulator.complete(id)?;
    Ok((id, done, seen))
}

/// Runs the reference requests; the counts of each, then of one root tick
/// in the steady state. Each request is sent twice and counted the second
/// time: the first defines the metrics its labels name (once per VM and
/// label set), which a worker in its steady state has done long before,
/// and (unless [`Reference::fresh_tokens`]) puts its token in the cache.
/// Then the allowed call is sent `repeat` more times, uncounted: a steady
/// load for a sampling profiler.
pub fn count(
    module: &FilterModule,
    reference: &Reference,
    repeat: u32,
) -> Result<Vec<Counted>, HarnessError> {
    let mut filter = WardenFilter::start(module, &reference.config, reference.now)?;
    let emulator = filter.emulator();
    // A worker's first tick fetches what the policy polls; the second finds
    // it loaded, as every later one does.
    emulator.tick()?;
    answer_fetches(emulator)?;
    emulator.tick()?;
    answer_fetches(emulator)?;
    let called = json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [], "isError": false}});
    let tools: Vec<Value> = [&reference.allowed_tool, &reference.denied_tool]
        .iter()
        .map(|name| json!({"name": name, "inputSchema": {"type": "object"}}))
        .collect();
    let listed = json!({"jsonrpc": "2.0", "id": 8, "result": {"tools": tools}});
    let list = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}).to_string();
    let references = [
        ("allowed call", call_body(&reference.allowed_tool), &called),
        ("denied call", call_body(&reference.denied_tool), &called),
        ("filtered list", list.into_bytes(), &listed),
    ];

    let mut counted = Vec::new();
    let mut sent = 0;
    let mut next_request = |body: &[u8]| {
        sent += 1;
        reference.request(sent, body.to_vec())
    };
    for (label, body, answer) in references {
        exchange(&mut filter, &next_request(&body)?, answer)?;
        let request = next_request(&body)?;
        let fuel_before = filter.emulator().fuel_used_total();
        let (id, mut done, seen) = exchange(&mut filter, &request, answer)?;
        let fuel = filter.emulator().fuel_used_total() - fuel_before;
        if label == "filtered list" && done == "forwarded" {
            let cut = seen
                .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
                .and_then(|v| {
                    v.pointer("/result/tools")
                        .and_then(Value::as_array)
                        .map(Vec::len)
                });
            done = match cut {
                Some(n) => format!("forwarded, list cut to {n}"),
                None => "forwarded, list not readable".to_owned(),
            };
        }
        counted.push(Counted::new(
            label,
            done,
            filter.emulator().hostcalls(id),
            fuel,
        ));
    }

    let allowed = call_body(&reference.allowed_tool);
    for _ in 0..repeat {
        let (_, done, _) = exchange(&mut filter, &next_request(&allowed)?, &called)?;
        if done != "forwarded" {
            return Err(HarnessError::Usage(format!(
                "a repeated allowed call was {done}, not forwarded"
            )));
        }
    }

    let emulator = filter.emulator();
    let root = emulator.root_id();
    emulator.clear_hostcalls();
    let fuel_before = emulator.fuel_used_total();
    emulator.tick()?;
    counted.push(Counted::new(
        "tick (root)",
        "steady".to_owned(),
        emulator.hostcalls(root),
        emulator.fuel_used_total() - fuel_before,
    ));
    Ok(counted)
}
