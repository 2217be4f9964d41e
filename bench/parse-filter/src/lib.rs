//! Parse-only baseline filter for `bench/run.sh`.
//!
//! Per request: read `:method`, hold the headers (`Pause`, like Warden with
//! `allow_on_headers_stop_iteration`), buffer the body, parse it into a
//! `serde_json::Value`, check it is a JSON-RPC object with a `method`, and
//! continue. No token, no policy, no log line. A body that is not such an
//! object gets a 400, so the parse cannot be optimised away.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ParseOnly { post: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ParseOnly {
    post: bool,
}

impl Context for ParseOnly {}

impl HttpContext for ParseOnly {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.post = self.get_http_request_header(":method").as_deref() == Some("POST");
        if self.post && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.post {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self
            .get_http_request_body(0, body_size)
            .unwrap_or_default();
        let is_jsonrpc = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| value.get("method").map(serde_json::Value::is_string))
            .unwrap_or(false);
        if is_jsonrpc {
            Action::Continue
        } else {
            self.send_http_response(400, vec![("content-type", "text/plain")], Some(b"not JSON-RPC\n"));
            Action::Pause
        }
    }
}
