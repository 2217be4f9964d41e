//! Warden's proxy-wasm filter: thin glue between proxy callbacks and the
//! decision core in `policy-sdk`. Every decision is made by
//! [`policy_sdk::Warden`]; this crate reads headers and bodies from the host,
//! hands them over, and carries the verdict back (continue, or a local reply),
//! plus audit lines and counters.

mod metrics;

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use policy_sdk::audit::AuditRecord;
use policy_sdk::{BodyVerdict, HeadVerdict, Identity, Reply, RequestHead, Warden};
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
/// result with every HTTP context.
#[derive(Default)]
struct WardenRoot {
    warden: Option<Rc<Warden>>,
    metrics: Option<Rc<Metrics>>,
}

impl Context for WardenRoot {}

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
                self.warden = Some(Rc::new(warden));
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

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(WardenHttp {
            warden: self.warden.clone(),
            metrics: self.metrics.clone(),
            phase: Phase::Headers,
            head: OwnedHead::default(),
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
    /// A verified POST whose body is being buffered.
    Buffering(Box<Identity>),
    /// Decided (forwarded or answered): later callbacks pass through.
    Done,
}

#[derive(Default)]
struct OwnedHead {
    method: String,
    path: String,
    request_id: Option<String>,
    now_unix_nanos: u128,
}

impl OwnedHead {
    fn view(&self) -> RequestHead<'_> {
        RequestHead {
            method: &self.method,
            path: &self.path,
            authorization: None,
            content_length: None,
            request_id: self.request_id.as_deref(),
            now_unix_nanos: self.now_unix_nanos,
        }
    }
}

struct WardenHttp {
    warden: Option<Rc<Warden>>,
    metrics: Option<Rc<Metrics>>,
    phase: Phase,
    head: OwnedHead,
}

impl WardenHttp {
    fn header(&self, name: &str) -> Option<String> {
        hostcalls::get_map_value(proxy_wasm::types::MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
    }

    fn record(&self, audit: &AuditRecord) {
        log(LogLevel::Info, &audit.to_json_line());
        if let Some(metrics) = &self.metrics {
            metrics.count(audit.is_allowed(), audit.actor_type);
        }
    }

    /// Answers locally; the request goes no further.
    fn respond(&mut self, reply: &Reply, audit: &AuditRecord) -> Action {
        self.record(audit);
        self.phase = Phase::Done;
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Err(status) = hostcalls::send_http_response(
            u32::from(reply.status),
            headers,
            Some(reply.body.as_bytes()),
        ) {
            log(
                LogLevel::Error,
                &format!("warden: sending the local reply failed: {status:?}"),
            );
        }
        Action::Pause
    }

    fn forward(&mut self, audit: &AuditRecord) -> Action {
        self.record(audit);
        self.phase = Phase::Done;
        Action::Continue
    }

    fn judge_body(&mut self, identity: &Identity, body: &[u8]) -> Action {
        let Some(warden) = self.warden.clone() else {
            return self.unconfigured();
        };
        match warden.judge_body(identity, body, &self.head.view()) {
            BodyVerdict::Forward(audit) => self.forward(&audit),
            BodyVerdict::Respond(reply, audit) => self.respond(&reply, &audit),
        }
    }

    /// No compiled configuration: fail closed.
    fn unconfigured(&mut self) -> Action {
        log(
            LogLevel::Error,
            "warden: no configuration loaded; answering 503 (fail closed)",
        );
        self.phase = Phase::Done;
        let _ = hostcalls::send_http_response(
            503,
            vec![("content-type", "text/plain")],
            Some(b"warden: not configured\n"),
        );
        Action::Pause
    }

    fn now_unix_nanos(&self) -> u128 {
        self.get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    }
}

impl Context for WardenHttp {}

impl HttpContext for WardenHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(warden) = self.warden.clone() else {
            return self.unconfigured();
        };
        self.head = OwnedHead {
            method: self.header(":method").unwrap_or_default(),
            path: self.header(":path").unwrap_or_default(),
            request_id: self.header("x-request-id"),
            now_unix_nanos: self.now_unix_nanos(),
        };
        let authorization = self.header("authorization");
        let content_length = self.header("content-length");
        let head = RequestHead {
            authorization: authorization.as_deref(),
            content_length: content_length.as_deref(),
            ..self.head.view()
        };
        match warden.judge_head(&head) {
            HeadVerdict::Pass => {
                self.phase = Phase::Done;
                Action::Continue
            }
            HeadVerdict::Forward(audit) => self.forward(&audit),
            HeadVerdict::Respond(reply, audit) => self.respond(&reply, &audit),
            HeadVerdict::ReadBody(identity) if end_of_stream => self.judge_body(&identity, &[]),
            HeadVerdict::ReadBody(identity) => {
                // Hold the headers too: nothing reaches the upstream before
                // the body has been judged.
                self.phase = Phase::Buffering(identity);
                Action::Pause
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Phase::Buffering(identity) = std::mem::replace(&mut self.phase, Phase::Done) else {
            return Action::Continue;
        };
        let Some(warden) = self.warden.clone() else {
            return self.unconfigured();
        };
        if body_size > warden.settings().max_body_bytes {
            let (reply, audit) = warden.judge_oversized_body(&identity, &self.head.view());
            return self.respond(&reply, &audit);
        }
        if !end_of_stream {
            self.phase = Phase::Buffering(identity);
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
        self.judge_body(&identity, &body)
    }
}
