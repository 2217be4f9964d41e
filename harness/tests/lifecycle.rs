//! The state × callback table (`policy_sdk::exchange::table`) through the
//! built `.wasm` in the Envoy emulator, with both host behaviours of a
//! header pause. The native runner runs the same table in
//! `policy-sdk/src/exchange/tests.rs`; both must pass.

#![expect(
    clippy::expect_used,
    reason = "a host step that cannot run is a broken test: fail loudly"
)]

use std::sync::OnceLock;

use policy_sdk::exchange::Flow;
use policy_sdk::exchange::table::{self, Observation, PauseBehaviour, StreamUnderTest};
use policy_sdk::testing::{TEST_NOW, demo_jwks};
use serde_json::Value;
use warden_harness::filter::{load_module, workspace_wasm};
use warden_harness::host::{Action, Emulator, FilterModule, HeaderPause, HostOptions};

fn module() -> &'static FilterModule {
    static MODULE: OnceLock<FilterModule> = OnceLock::new();
    MODULE.get_or_init(|| load_module(&workspace_wasm()).expect("the built filter loads"))
}

fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// One stream through the `.wasm`. After the stream ends the emulator
/// forgets it, so the last observation is kept.
struct WasmStream {
    emulator: Emulator,
    id: u32,
    ended: bool,
    last: Observation,
}

impl WasmStream {
    fn open(mode: &str, pause: PauseBehaviour, fetched: bool) -> Box<dyn StreamUnderTest> {
        let pause = match pause {
            PauseBehaviour::Honoured => HeaderPause::Honoured,
            PauseBehaviour::StopAll => HeaderPause::StopAll,
        };
        let options = HostOptions::default()
            .with_plugin_configuration(table::policy_json(mode, fetched))
            .with_time_unix_seconds(TEST_NOW)
            .with_header_pause(pause);
        let mut emulator = Emulator::start(module(), options).expect("the filter starts");
        let id = emulator.open_http().expect("a stream opens");
        Box::new(Self {
            emulator,
            id,
            ended: false,
            last: Observation::default(),
        })
    }

    /// Whether the stream may still take data: not ended, not answered.
    fn open_for_data(&self) -> bool {
        !self.ended && self.emulator.local_response(self.id).is_none()
    }

    /// Runs one host step and records what the filter answered last.
    fn step(&mut self, run: impl FnOnce(&mut Emulator, u32) -> Result<Action, String>) {
        if !self.open_for_data() {
            self.last.last_flow = None;
            return;
        }
        let calls = self.emulator.guest_calls(self.id).len();
        run(&mut self.emulator, self.id).expect("the host step runs");
        self.refresh(calls);
    }

    fn refresh(&mut self, calls_before: usize) {
        let calls = self.emulator.guest_calls(self.id);
        let last_flow = calls
            .get(calls_before..)
            .and_then(|new| new.iter().rev().find_map(|c| c.returned))
            .map(|raw| {
                if raw == 0 {
                    Flow::Continue
                } else {
                    Flow::Pause
                }
            });
        let decisions = self.decisions();
        if self.ended {
            self.last.decisions = decisions;
            self.last.last_flow = None;
            return;
        }
        let e = &self.emulator;
        let local = e.local_response(self.id);
        self.last = Observation {
            sent_headers: e.upstream_request_headers(self.id).cloned(),
            sent_body: e
                .upstream_request_body(self.id)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            sent_trailers: e.upstream_request_trailers(self.id).is_some(),
            reply: local.and_then(|r| u16::try_from(r.status).ok()),
            decisions,
            // What the client got from the upstream (a local reply replaces it).
            response_sent: if local.is_some() {
                0
            } else {
                e.downstream_response_body(self.id).map_or(0, <[u8]>::len)
                    + usize::from(e.downstream_response_headers(self.id).is_some())
            },
            last_flow,
            pending_fetches: e.pending_http_calls().len(),
        };
    }

    /// The decision audit lines the filter logged (list-filter lines aside).
    fn decisions(&self) -> Vec<Value> {
        self.emulator
            .logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(&l.message).ok())
            .filter(|v| v.get("audit").is_some() && v.get("list").is_none())
            .collect()
    }
}

impl StreamUnderTest for WasmStream {
    fn request_headers(&mut self, headers: &[(String, String)], end_of_stream: bool) {
        self.step(|e, id| {
            e.request_headers(id, &pairs(headers), end_of_stream)
                .map_err(|err| err.to_string())
        });
    }

    fn request_chunk(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.step(|e, id| {
            e.request_body(id, chunk, end_of_stream)
                .map_err(|err| err.to_string())
        });
    }

    fn request_trailers(&mut self, trailers: &[(String, String)]) {
        self.step(|e, id| {
            e.request_trailers(id, &pairs(trailers))
                .map_err(|err| err.to_string())
        });
    }

    fn response_headers(&mut self, headers: &[(String, String)], end_of_stream: bool) {
        self.step(|e, id| {
            e.response_headers(id, &pairs(headers), end_of_stream)
                .map_err(|err| err.to_string())
        });
    }

    fn response_chunk(&mut self, chunk: &[u8], end_of_stream: bool) {
        self.step(|e, id| {
            e.response_body(id, chunk, end_of_stream)
                .map_err(|err| err.to_string())
        });
    }

    fn response_trailers(&mut self, trailers: &[(String, String)]) {
        self.step(|e, id| {
            e.response_trailers(id, &pairs(trailers))
                .map_err(|err| err.to_string())
        });
    }

    fn answer_key_fetch(&mut self) {
        let Some(call) = self.emulator.pending_http_calls().into_iter().next() else {
            self.last.last_flow = None;
            return;
        };
        let body = demo_jwks().to_string();
        let calls = self.emulator.guest_calls(self.id).len();
        self.emulator
            .respond_http_call(call.token, &[(":status", "200")], body.as_bytes(), &[])
            .expect("the key-set answer is delivered");
        self.refresh(calls);
        // The answer itself is not a stream callback with a flow.
        if self.emulator.guest_calls(self.id).len() == calls + 1 {
            self.last.last_flow = None;
        }
    }

    fn stray_call_response(&mut self) {
        // A proxy answers only calls that were made: there is nothing to
        // deliver (the native runner checks the filter ignores one).
        self.last.last_flow = None;
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.emulator.complete(self.id).expect("the stream ends");
        self.ended = true;
        self.refresh(0);
    }

    fn observe(&self) -> Observation {
        self.last.clone()
    }
}

#[test]
fn every_state_answers_every_callback_in_the_wasm_too() {
    match table::run(&mut WasmStream::open) {
        Ok(cells) => assert_eq!(cells, 4 * 5 * 10),
        Err(problems) => panic!("{} cells failed:\n{}", problems.len(), problems.join("\n")),
    }
}
