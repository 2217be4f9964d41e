//! Warden's proxy-wasm filter: thin glue between proxy callbacks and the
//! decision core in `policy-sdk`. Every decision is made by
//! [`policy_sdk::Warden`]; this crate reads headers and bodies from the host,
//! hands them over, and carries the verdict back (continue, or a local reply),
//! plus audit lines and counters.

mod metrics;
mod remote;
mod response;

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use std::collections::HashMap;

use policy_sdk::{BodyVerdict, Forwarding, HeadVerdict, Identity, Reply, RequestHead, Warden};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use metrics::Metrics;

/// Build identity logged at VM start.
const BUILD: &str = concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"));

proxy_wasm::main! {{
    // Only logging set-up here: Envoy allows no other hostcalls while the
    // module initialises. Metrics and configuration belong to the root context.
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(WardenRoot::default()) });
}}

fn log(level: LogLevel, message: &str) {
    // A failed log call has nowhere better to be reported.
    let _ = hostcalls::log(level, message);
}

/// The root context: compiles the plugin configuration once and shares the
/// result with every HTTP context; keeps fetched documents (key sets,
/// revocation list) fresh on a timer.
#[derive(Default)]
struct WardenRoot {
    warden: Option<Rc<Warden>>,
    metrics: Option<Rc<Metrics>>,
    /// Shared with every HTTP context: built once per configuration.
    sources: Rc<[remote::Source]>,
    applied: remote::Applied,
    in_flight: HashMap<u32, remote::Fetch>,
}

/// How often the root context looks at its fetched documents.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

fn unix_seconds(time: std::time::SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Context for WardenRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let (Some(fetch), Some(warden)) = (self.in_flight.remove(&token_id), self.warden.clone())
        else {
            return;
        };
        match remote::on_response(&warden, fetch, body_size, &self.applied) {
            remote::Progress::Next(token, fetch) => {
                self.in_flight.insert(token, fetch);
            }
            remote::Progress::Loaded(summary) => {
                log(LogLevel::Info, &format!("warden: loaded {summary}"))
            }
            remote::Progress::Failed(reason) => {
                log(LogLevel::Warn, &format!("warden: fetch failed: {reason}"))
            }
        }
    }
}

impl RootContext for WardenRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        let git = option_env!("WARDEN_GIT_HASH").unwrap_or("unknown");
        log(LogLevel::Info, &format!("{BUILD} (git {git}) starting"));
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        ) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                log(
                    LogLevel::Critical,
                    "warden: no plugin configuration; refusing to start (fail closed)",
                );
                return false;
            }
            Err(status) => {
                log(
                    LogLevel::Critical,
                    &format!("warden: cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            log(
                LogLevel::Critical,
                "warden: plugin configuration is not UTF-8",
            );
            return false;
        };
        match Warden::from_json(text) {
            Ok(warden) => {
                log(
                    LogLevel::Info,
                    &format!(
                        "warden: policy {} loaded ({} rules)",
                        warden.version(),
                        warden.rule_count()
                    ),
                );
                if self.metrics.is_none() {
                    match Metrics::define() {
                        Ok(metrics) => self.metrics = Some(Rc::new(metrics)),
                        Err(message) => {
                            log(
                                LogLevel::Critical,
                                &format!("warden: cannot define metrics: {message}"),
                            );
                            return false;
                        }
                    }
                }
                self.sources = remote::sources(&warden).into();
                self.in_flight.clear();
                self.warden = Some(Rc::new(warden));
                if !self.sources.is_empty()
                    && let Err(status) = hostcalls::set_tick_period(TICK)
                {
                    log(
                        LogLevel::Critical,
                        &format!("warden: cannot set the tick period: {status:?}"),
                    );
                    return false;
                }
                true
            }
            Err(error) => {
                let help = error
                    .help()
                    .map(|h| format!(" (help: {h})"))
                    .unwrap_or_default();
                log(
                    LogLevel::Critical,
                    &format!("warden: invalid configuration: {error}{help}"),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(warden) = self.warden.clone() else {
            return;
        };
        let now = unix_seconds(self.get_current_time());
        for source in self.sources.iter() {
            remote::sync(&warden, source, &self.applied);
            if self
                .in_flight
                .values()
                .any(|f| f.source.label() == source.label())
            {
                continue;
            }
            if remote::claim(
                source,
                remote::Trigger::Scheduled,
                now,
                remote::interval_for(&warden, source),
            ) {
                match remote::start(source) {
                    Ok((token, fetch)) => {
                        self.in_flight.insert(token, fetch);
                    }
                    Err(reason) => log(
                        LogLevel::Warn,
                        &format!("warden: fetch of {} failed: {reason}", source.label()),
                    ),
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WardenHttp {
            warden: self.warden.clone(),
            metrics: self.metrics.clone(),
            sources: self.sources.clone(),
            applied: self.applied.clone(),
            phase: Phase::Headers,
            head: OwnedHead::default(),
            response: response::Stage::Untouched,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Where one request stands.
enum Phase {
    /// Nothing seen yet.
    Headers,
    /// A POST whose body is being buffered: from a verified identity, or
    /// (`None`) from a token whose issuer's keys must be fetched first.
    Buffering(Option<Box<Identity>>, Option<Pending>),
    /// Waiting for an issuer's key set, with the whole body when there is one.
    AwaitingKeys(remote::Fetch, u32, Pending, Vec<u8>),
    /// Decided (forwarded or answered): later callbacks pass through.
    Done,
}

/// What to answer if fetching keys is not possible.
struct Pending {
    issuer: String,
    reply: Reply,
    audit: policy_sdk::AuditRecord,
}

/// Request facts kept between callbacks: the headers as the client sent
/// them (one hostcall), plus what Warden looked up for them.
#[derive(Default)]
struct OwnedHead {
    /// Name (lower case, as the proxy hands them over) and value.
    headers: Vec<(String, String)>,
    /// The binding shared data holds for the presented session.
    session_binding: Option<String>,
    duplicated: Option<&'static str>,
    now_unix_nanos: u128,
    end_of_stream: bool,
}

impl OwnedHead {
    /// Reads the request headers in one hostcall, and the binding of the
    /// presented session from shared data.
    fn read(warden: &Warden, now_unix_nanos: u128, end_of_stream: bool) -> Self {
        let mut head = Self {
            headers: hostcalls::get_map(proxy_wasm::types::MapType::HttpRequestHeaders)
                .unwrap_or_default(),
            now_unix_nanos,
            end_of_stream,
            ..Self::default()
        };
        head.duplicated = policy_sdk::gate::ROUTING_HEADERS
            .into_iter()
            .find(|name| head.count(name) > 1);
        head.session_binding = head.get("mcp-session-id").and_then(|id| {
            let key = warden.session_key(id)?;
            let (record, _) = hostcalls::get_shared_data(&key).ok()?;
            let record = String::from_utf8(record?).ok()?;
            Warden::binding_in_record(id, &record).map(str::to_owned)
        });
        head
    }

    /// The first value of one header.
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times the client sent one header.
    fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    fn view(&self) -> RequestHead<'_> {
        RequestHead {
            method: self.get(":method").unwrap_or_default(),
            path: self.get(":path").unwrap_or_default(),
            authorization: self.get("authorization"),
            content_length: self.get("content-length"),
            content_type: self.get("content-type"),
            request_id: self.get("x-request-id"),
            origin: self.get("origin"),
            protocol_version: self.get("mcp-protocol-version"),
            mcp_method: self.get("mcp-method"),
            mcp_name: self.get("mcp-name"),
            session_id: self.get("mcp-session-id"),
            session_binding: self.session_binding.as_deref(),
            duplicated: self.duplicated,
            now_unix_nanos: self.now_unix_nanos,
        }
    }
}

/// Whether the stream goes on after a step.
enum Step {
    Continue,
    Stop,
}

struct WardenHttp {
    warden: Option<Rc<Warden>>,
    metrics: Option<Rc<Metrics>>,
    sources: Rc<[remote::Source]>,
    applied: remote::Applied,
    phase: Phase,
    head: OwnedHead,
    /// What happens to the upstream's response.
    response: response::Stage,
}

impl WardenHttp {
    fn record(&self, audit: &policy_sdk::AuditRecord) {
        log(LogLevel::Info, &audit.to_json_line());
        if let Some(metrics) = &self.metrics {
            metrics.count(audit.is_allowed(), audit.actor_type);
        }
    }

    /// Answers locally; the request goes no further.
    fn respond(&mut self, reply: &Reply, audit: &policy_sdk::AuditRecord) -> Step {
        self.record(audit);
        self.serve(reply)
    }

    /// Answers locally with `reply` (audited by the caller, if at all).
    fn serve(&mut self, reply: &Reply) -> Step {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.send(reply.status, headers, reply.body.as_bytes())
    }

    /// Something the filter needs failed: answer 500 rather than pass.
    fn fail_closed(&mut self, why: &str) -> Step {
        let body = format!("warden: {why}\n");
        self.send(500, vec![("content-type", "text/plain")], body.as_bytes())
    }

    /// No compiled configuration: fail closed.
    fn unconfigured(&mut self) -> Step {
        log(
            LogLevel::Error,
            "warden: no configuration loaded; answering 503 (fail closed)",
        );
        self.send(
            503,
            vec![("content-type", "text/plain")],
            b"warden: not configured\n",
        )
    }

    /// Sends a local reply; the request goes no further.
    fn send(&mut self, status: u16, headers: Vec<(&str, &str)>, body: &[u8]) -> Step {
        self.phase = Phase::Done;
        if let Err(status) = hostcalls::send_http_response(u32::from(status), headers, Some(body)) {
            log(
                LogLevel::Error,
                &format!("warden: sending the local reply failed: {status:?}"),
            );
        }
        Step::Stop
    }

    /// Lets the request through with the verdict's header edits, and
    /// remembers what to do with the response.
    fn forward(&mut self, forwarding: Forwarding) -> Step {
        self.record(&forwarding.audit);
        self.phase = Phase::Done;
        for (name, value) in &forwarding.header_edits {
            // Removing a header the client never sent is a wasted hostcall.
            if value.is_none() && self.head.get(name).is_none() {
                continue;
            }
            if let Err(status) = hostcalls::set_map_value(
                proxy_wasm::types::MapType::HttpRequestHeaders,
                name,
                value.as_deref(),
            ) {
                // An identity header that cannot be set or removed must not
                // leave a client's copy in place: fail closed.
                log(
                    LogLevel::Error,
                    &format!("warden: editing request header `{name}` failed: {status:?}"),
                );
                return self.fail_closed("editing request headers failed");
            }
        }
        self.response = response::Stage::planned(forwarding.response);
        Step::Continue
    }

    fn now_unix_nanos(&self) -> u128 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }

    /// Judges the head and acts on the verdict. `body` is the complete body
    /// when it is already known (after waiting for keys); `retry` is false
    /// once keys have been fetched for this request.
    fn head_step(&mut self, warden: &Warden, body: Option<Vec<u8>>, retry: bool) -> Step {
        match warden.judge_head(&self.head.view()) {
            HeadVerdict::Pass => {
                self.phase = Phase::Done;
                Step::Continue
            }
            HeadVerdict::Serve(reply) => self.serve(&reply),
            HeadVerdict::Forward(forwarding) => self.forward(forwarding),
            HeadVerdict::Respond(reply, audit) => self.respond(&reply, &audit),
            HeadVerdict::ReadBody(identity) => match body {
                Some(body) => self.body_step(warden, &identity, &body),
                None if self.head.end_of_stream => self.body_step(warden, &identity, &[]),
                None => {
                    // Hold the headers too: nothing reaches the upstream
                    // before the body has been judged.
                    self.phase = Phase::Buffering(Some(identity), None);
                    Step::Stop
                }
            },
            HeadVerdict::KeysMissing {
                issuer,
                reply,
                audit,
            } => {
                let pending = Pending {
                    issuer,
                    reply,
                    audit,
                };
                if !retry {
                    return self.respond(&pending.reply, &pending.audit);
                }
                match body {
                    Some(body) => self.fetch_keys(warden, pending, body),
                    None if self.head.end_of_stream => self.fetch_keys(warden, pending, Vec::new()),
                    None => {
                        self.phase = Phase::Buffering(None, Some(pending));
                        Step::Stop
                    }
                }
            }
        }
    }

    fn body_step(&mut self, warden: &Warden, identity: &Identity, body: &[u8]) -> Step {
        match warden.judge_body(identity, body, &self.head.view()) {
            BodyVerdict::Forward(forwarding) => self.forward(forwarding),
            BodyVerdict::Respond(reply, audit) => self.respond(&reply, &audit),
        }
    }

    /// The token's issuer lacks keys: take another worker's fresh copy if
    /// there is one, else fetch (within the shared rate limit), else answer.
    fn fetch_keys(&mut self, warden: &Warden, pending: Pending, body: Vec<u8>) -> Step {
        let Some(source) = self
            .sources
            .iter()
            .find(|s| {
                s.kind
                    == remote::Kind::Keys {
                        issuer: pending.issuer.clone(),
                    }
            })
            .cloned()
        else {
            return self.respond(&pending.reply, &pending.audit);
        };
        remote::sync(warden, &source, &self.applied);
        let now = u64::try_from(self.head.now_unix_nanos / 1_000_000_000).unwrap_or_default();
        if !matches!(
            warden.judge_head(&self.head.view()),
            HeadVerdict::KeysMissing { .. }
        ) {
            return self.head_step(warden, Some(body), false);
        }
        if !remote::claim(
            &source,
            remote::Trigger::UnknownKey,
            now,
            source.min_interval_seconds,
        ) {
            return self.respond(&pending.reply, &pending.audit);
        }
        match remote::start(&source) {
            Ok((token, fetch)) => {
                self.phase = Phase::AwaitingKeys(fetch, token, pending, body);
                Step::Stop
            }
            Err(reason) => {
                log(
                    LogLevel::Warn,
                    &format!("warden: fetch of {} failed: {reason}", source.label()),
                );
                self.respond(&pending.reply, &pending.audit)
            }
        }
    }
}

fn action(step: Step) -> Action {
    match step {
        Step::Continue => Action::Continue,
        Step::Stop => Action::Pause,
    }
}

impl Context for WardenHttp {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Phase::AwaitingKeys(fetch, token, pending, body) =
            std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        let Some(warden) = self.warden.clone() else {
            let _ = self.unconfigured();
            return;
        };
        if token != token_id {
            self.phase = Phase::AwaitingKeys(fetch, token, pending, body);
            return;
        }
        let step = match remote::on_response(&warden, fetch, body_size, &self.applied) {
            remote::Progress::Next(token, fetch) => {
                self.phase = Phase::AwaitingKeys(fetch, token, pending, body);
                return;
            }
            remote::Progress::Loaded(summary) => {
                log(
                    LogLevel::Info,
                    &format!("warden: loaded {summary} (unknown key id)"),
                );
                self.head_step(&warden, Some(body), false)
            }
            remote::Progress::Failed(reason) => {
                log(LogLevel::Warn, &format!("warden: fetch failed: {reason}"));
                self.respond(&pending.reply, &pending.audit)
            }
        };
        if let Step::Continue = step
            && let Err(status) = hostcalls::resume_http_request()
        {
            log(
                LogLevel::Error,
                &format!("warden: resuming the request failed: {status:?}"),
            );
        }
    }
}

impl HttpContext for WardenHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(warden) = self.warden.clone() else {
            return action(self.unconfigured());
        };
        self.head = OwnedHead::read(&warden, self.now_unix_nanos(), end_of_stream);
        // Another worker may have polled a newer revocation list since this
        // worker's last tick: one shared-data read applies it before judging.
        for source in self
            .sources
            .iter()
            .filter(|s| s.kind == remote::Kind::Revocations)
        {
            remote::sync(&warden, source, &self.applied);
        }
        action(self.head_step(&warden, None, true))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.phase {
            Phase::Buffering(..) => {}
            // Waiting for keys: the whole body is already held here.
            Phase::AwaitingKeys(..) => return Action::Pause,
            Phase::Headers | Phase::Done => return Action::Continue,
        }
        let Phase::Buffering(identity, pending) = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return Action::Continue;
        };
        let Some(warden) = self.warden.clone() else {
            return action(self.unconfigured());
        };
        if body_size > warden.settings().max_body_bytes {
            let step = match (&identity, &pending) {
                (Some(identity), _) => {
                    let (reply, audit) = warden.judge_oversized_body(identity, &self.head.view());
                    self.respond(&reply, &audit)
                }
                (None, Some(p)) => self.respond(&p.reply, &p.audit),
                (None, None) => self.unconfigured(),
            };
            return action(step);
        }
        if !end_of_stream {
            self.phase = Phase::Buffering(identity, pending);
            return Action::Pause;
        }
        let body = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::HttpRequestBody,
            0,
            body_size,
        ) {
            Ok(body) => body.unwrap_or_default(),
            Err(status) => {
                log(
                    LogLevel::Error,
                    &format!("warden: cannot read the request body: {status:?}"),
                );
                Vec::new()
            }
        };
        let step = match (identity, pending) {
            (Some(identity), _) => self.body_step(&warden, &identity, &body),
            (None, Some(pending)) => self.fetch_keys(&warden, pending, body),
            (None, None) => self.unconfigured(),
        };
        action(step)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(warden) = self.warden.clone() else {
            return Action::Continue;
        };
        self.response = std::mem::take(&mut self.response).on_headers(&warden);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(warden) = self.warden.clone() else {
            return Action::Continue;
        };
        let (stage, action, audit) =
            std::mem::take(&mut self.response).on_body(&warden, body_size, end_of_stream);
        self.response = stage;
        if let Some(audit) = audit {
            log(LogLevel::Info, &audit.to_json_line());
        }
        action
    }
}
