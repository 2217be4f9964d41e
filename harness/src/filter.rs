//! Running the built Warden filter (`warden_filter.wasm`) through the
//! [`host`](crate::host): one HTTP exchange in, what Envoy would have done out.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::host::{
    Action, Emulator, FilterModule, HarnessError, Headers, HostOptions, LocalResponse, LogEntry,
};

/// Where `make wasm` puts the filter as shipped (cargo's module through
/// wasm-opt), relative to the workspace root.
pub const WASM_RELATIVE_PATH: &str = "target/warden_filter.wasm";
/// The command that builds it.
pub const BUILD_COMMAND: &str = "make wasm";

/// The filter next to this workspace (tests, benches).
pub fn workspace_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(WASM_RELATIVE_PATH)
}

/// Compiles the filter; a missing file is reported with the command that
/// builds it.
pub fn load_module(path: &Path) -> Result<FilterModule, HarnessError> {
    if !path.exists() {
        return Err(HarnessError::Load(format!(
            "{} does not exist: build the filter with `{BUILD_COMMAND}`",
            path.display()
        )));
    }
    FilterModule::from_file(path)
}

/// One HTTP request as a client sends it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Regular headers (lower-case names), besides the pseudo-headers.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Deliver the body in chunks of this size (default: one chunk).
    pub chunk_size: Option<usize>,
    /// The stream's dynamic metadata as filters ahead of Warden left it
    /// (serialized `Metadata`, the property `metadata`): what Envoy's
    /// `jwt_authn` verified. `None`: empty.
    pub dynamic_metadata: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A JSON-RPC POST to `/mcp`.
    pub fn post(body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST".into(),
            path: "/mcp".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            chunk_size: None,
            dynamic_metadata: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The headers the guest let through to the upstream (`None`: not forwarded).
    pub upstream_headers: Option<Headers>,
    pub upstream_body: Vec<u8>,
    /// The filter's own answer.
    pub local_response: Option<LocalResponse>,
    /// The audit line the filter logged for this request, parsed.
    pub audit: Option<Value>,
    /// Every line the guest logged while handling the request.
    pub logs: Vec<LogEntry>,
    /// The last action the guest returned.
    pub last_action: Action,
}

impl Exchange {
    pub fn forwarded(&self) -> bool {
        self.upstream_headers.is_some() && self.local_response.is_none()
    }

    pub fn status(&self) -> Option<u32> {
        self.local_response.as_ref().map(|r| r.status)
    }

    fn audit_str(&self, field: &str) -> Option<&str> {
        self.audit.as_ref()?.get(field)?.as_str()
    }

    pub fn decision(&self) -> Option<&str> {
        self.audit_str("decision")
    }

    pub fn rule(&self) -> Option<&str> {
        self.audit_str("rule")
    }

    pub fn owner(&self) -> Option<&str> {
        self.audit_str("owner")
    }

    pub fn reason(&self) -> Option<&str> {
        self.audit_str("reason")
    }
}

/// The audit lines' prefix.
pub const AUDIT_PREFIX: &str = r#"{"audit":"warden/v1""#;

/// The Warden filter in one emulated VM, configured with one policy.
pub struct WardenFilter {
    emulator: Emulator,
    requests: u64,
}

impl WardenFilter {
    /// Starts the filter with a plugin configuration (the JSON of `warden
    /// compile`), the host clock at `now_unix_seconds`.
    pub fn start(
        module: &FilterModule,
        plugin_configuration: &str,
        now_unix_seconds: u64,
    ) -> Result<Self, HarnessError> {
        let options = HostOptions::default()
            .with_plugin_configuration(plugin_configuration)
            .with_time_unix_seconds(now_unix_seconds);
        Self::start_with(module, options)
    }

    pub fn start_with(module: &FilterModule, options: HostOptions) -> Result<Self, HarnessError> {
        Ok(Self {
            emulator: Emulator::start(module, options)?,
            requests: 0,
        })
    }

    pub fn emulator(&mut self) -> &mut Emulator {
        &mut self.emulator
    }

    /// Sends one request into the filter: a new HTTP context
    /// (`proxy_on_context_create`), request headers, then body chunks while
    /// the filter pauses, stopping at a local response. The stream stays
    /// open for response callbacks; returns its id and the last action.
    pub fn send(&mut self, request: &HttpRequest) -> Result<(u32, Action), HarnessError> {
        self.requests += 1;
        let emulator = &mut self.emulator;
        let id = emulator.open_http()?;
        // Envoy keeps metadata per stream; the harness sends one stream at
        // a time, so the property is this stream's until the next one.
        emulator.set_property(
            &["metadata"],
            request.dynamic_metadata.clone().unwrap_or_default(),
        );
        let request_id = format!("harness-{}", self.requests);
        let length = request.body.len().to_string();
        let mut headers: Vec<(&str, &str)> = vec![
            (":method", request.method.as_str()),
            (":path", request.path.as_str()),
            (":authority", "mcp.demo.warden.test"),
            (":scheme", "http"),
            ("content-length", length.as_str()),
            ("x-request-id", request_id.as_str()),
        ];
        for (name, value) in &request.headers {
            if let Some(slot) = headers.iter_mut().find(|(k, _)| k == name) {
                slot.1 = value;
            } else {
                headers.push((name, value));
            }
        }
        let no_body = request.body.is_empty();
        let mut action = emulator.request_headers(id, &headers, no_body)?;
        if !no_body && emulator.local_response(id).is_none() {
            let size = request.chunk_size.unwrap_or(request.body.len()).max(1);
            let mut chunks = request.body.chunks(size).peekable();
            while let Some(chunk) = chunks.next() {
                action = emulator.request_body(id, chunk, chunks.peek().is_none())?;
                if emulator.local_response(id).is_some() {
                    break;
                }
            }
        }
        Ok((id, action))
    }

    /// Runs one request through the filter: [`send`](Self::send), then the
    /// end of the stream (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`).
    pub fn handle(&mut self, request: &HttpRequest) -> Result<Exchange, HarnessError> {
        let first_log = self.emulator.logs().len();
        let (id, action) = self.send(request)?;
        let emulator = &mut self.emulator;
        let upstream_headers = emulator.upstream_request_headers(id).cloned();
        let upstream_body = emulator
            .upstream_request_body(id)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let local_response = emulator.local_response(id).cloned();
        emulator.complete(id)?;
        let logs: Vec<LogEntry> = emulator
            .logs()
            .get(first_log..)
            .unwrap_or_default()
            .to_vec();
        let audit = logs
            .iter()
            // At `info`, or at `debug` when it went to filter state too.
            .filter(|l| l.message.starts_with(AUDIT_PREFIX))
            .find_map(|l| serde_json::from_str(&l.message).ok());
        // Keep memory flat over long runs.
        emulator.clear_logs();
        Ok(Exchange {
            upstream_headers,
            upstream_body,
            local_response,
            audit,
            logs,
            last_action: action,
        })
    }

    /// A metric's value, by its full name (labels included).
    pub fn metric(&self, name: &str) -> Option<i128> {
        self.emulator.metric(name)
    }

    /// The sum of `metric` over every series carrying `labels` (written
    /// into the name as `label=.=value;.;`, as Envoy's `stats_tags` read
    /// them): `counted("warden_decisions_total", &[("decision", "deny")])`.
    pub fn counted(&self, metric: &str, labels: &[(&str, &str)]) -> i128 {
        self.emulator
            .metrics()
            .iter()
            .filter(|m| {
                let tags = m.name.strip_suffix(metric).unwrap_or_default();
                (tags.is_empty() && m.name == metric || tags.ends_with(";.;"))
                    && labels.iter().all(|(label, value)| {
                        tags.starts_with(&format!("{label}=.={value};.;"))
                            || tags.contains(&format!(";.;{label}=.={value};.;"))
                    })
            })
            .map(|m| m.value)
            .sum()
    }
}
