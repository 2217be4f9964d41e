//! The harness as a proxy-wasm host: guest limits, Envoy's restrictions and
//! ABI details on small hand-written guests, then the real filter.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use policy_sdk::testing::{DemoIssuer, TEST_NOW};
use serde_json::json;
use warden_harness::filter::{
    AUDIT_PREFIX, HttpRequest, WardenFilter, load_module, workspace_wasm,
};
use warden_harness::host::{
    AbiVersion, Action, Emulator, FilterModule, GuestCall, HarnessError, HeaderPause, HostFault,
    HostOptions, LogLevel, TrapCause,
};

/// A tiny proxy-wasm guest. `$body` is spliced into the module.
fn guest(marker: &str, body: &str) -> FilterModule {
    let wat = format!(
        r#"(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_period (param i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_call" (func $grpc (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 0) "hello")
  (data (i32.const 16) ":path")
  (data (i32.const 32) "metric")
  (data (i32.const 48) "answered")
  (data (i32.const 64) "idp")
  (data (i32.const 128) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\01\00\00\00\0a\00\00\00\03\00\00\00:method\00GET\00:path\00/\00:authority\00idp\00")
  (func (export "{marker}"))
  ;; a bump allocator that records the last requested size at 256
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (i32.store (i32.const 256) (local.get $size))
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $ptr))
  (func (export "proxy_on_context_create") (param i32 i32))
  {body}
)"#
    );
    FilterModule::from_bytes(wat.as_bytes()).expect("the test guest compiles")
}

fn options() -> HostOptions {
    HostOptions::default()
        .with_fuel_per_callback(10_000_000)
        .with_memory_limit_bytes(4 * 1024 * 1024)
}

#[test]
fn a_runaway_guest_is_stopped_and_reported_not_hung() {
    let module = guest(
        "proxy_abi_version_0_2_1",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (loop $forever (br $forever)) (i32.const 0))"#,
    );
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    let started = Instant::now();
    let error = host
        .request_headers(id, &[(":path", "/")], true)
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        error,
        HarnessError::Trapped {
            callback: "proxy_on_request_headers",
            cause: TrapCause::OutOfFuel { fuel: 10_000_000 }
        }
    );
    assert!(error.to_string().contains("out of fuel"), "{error}");
    // Like Envoy, a VM that trapped is failed: nothing runs in it any more.
    assert!(matches!(host.open_http(), Err(HarnessError::Failed(_))));
    assert!(host.failure().is_some());
}

#[test]
fn a_guest_growing_past_the_memory_cap_is_stopped() {
    let module = guest(
        "proxy_abi_version_0_2_1",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (loop $grow (drop (memory.grow (i32.const 16))) (br $grow)) (i32.const 0))"#,
    );
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    let error = host.request_headers(id, &[], true).unwrap_err();
    assert!(
        matches!(
            error,
            HarnessError::Trapped {
                cause: TrapCause::MemoryCap {
                    cap_bytes: 4194304,
                    ..
                },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(host.memory_bytes() <= 4 * 1024 * 1024);
}

#[test]
fn only_envoys_start_up_hostcalls_work_while_the_module_initialises() {
    // Logging is allowed in `_initialize` …
    let module = guest(
        "proxy_abi_version_0_2_1",
        r#"(func (export "_initialize") (drop (call $log (i32.const 2) (i32.const 0) (i32.const 5))))"#,
    );
    let host = Emulator::start(&module, options()).unwrap();
    assert_eq!(host.logs_at(LogLevel::Info), ["hello"]);
    // … defining a metric is not (Envoy traps with `restricted_callback`).
    let module = guest(
        "proxy_abi_version_0_2_1",
        r#"(func (export "_initialize")
             (drop (call $define (i32.const 0) (i32.const 32) (i32.const 6) (i32.const 300))))"#,
    );
    let error = Emulator::start(&module, options()).err().unwrap();
    assert_eq!(
        error,
        HarnessError::Trapped {
            callback: "_initialize",
            cause: TrapCause::Host(HostFault::Restricted {
                hostcall: "env.proxy_define_metric".into(),
                phase: "`_initialize`/`main`"
            })
        }
    );
    assert!(error.to_string().contains("restricted_callback"), "{error}");
}

#[test]
fn an_unsupported_hostcall_traps_with_its_name() {
    let module = guest(
        "proxy_abi_version_0_2_1",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (call $grpc (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                         (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 300)))"#,
    );
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    let error = host.request_headers(id, &[], true).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unsupported hostcall `env.proxy_grpc_call`"),
        "{error}"
    );
}

#[test]
fn the_abi_marker_is_required_and_0_2_0_is_accepted() {
    assert_eq!(
        guest("proxy_abi_version_0_2_0", "").abi_version(),
        AbiVersion::V0_2_0
    );
    assert_eq!(
        guest("proxy_abi_version_0_2_1", "").abi_version(),
        AbiVersion::V0_2_1
    );
    let error = FilterModule::from_bytes(b"(module (memory (export \"memory\") 1))")
        .err()
        .unwrap();
    assert!(matches!(error, HarnessError::NotProxyWasm(_)), "{error}");
}

#[test]
fn values_are_returned_in_exact_size_allocations() {
    // The guest asks for `:path`, then traps unless the host allocated
    // exactly the returned size and copied the value there.
    let module = guest(
        "proxy_abi_version_0_2_1",
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.ne (call $header (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 300) (i32.const 304))
                         (i32.const 0)) (then unreachable))
             (if (i32.ne (i32.load (i32.const 304)) (i32.load (i32.const 256))) (then unreachable))
             (if (i32.ne (i32.load (i32.const 304)) (i32.const 4)) (then unreachable))
             (if (i32.ne (i32.load8_u (i32.load (i32.const 300))) (i32.const 47)) (then unreachable))
             ;; an absent header is NotFound (1)
             (if (i32.ne (call $header (i32.const 0) (i32.const 32) (i32.const 6) (i32.const 300) (i32.const 304))
                         (i32.const 1)) (then unreachable))
             (i32.const 0))"#,
    );
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    assert_eq!(
        host.request_headers(id, &[(":path", "/mcp")], true)
            .unwrap(),
        Action::Continue
    );
    assert_eq!(
        host.upstream_request_headers(id).unwrap(),
        &vec![(":path".to_owned(), "/mcp".to_owned())]
    );
}

#[test]
fn ticks_and_http_calls_reach_the_guest() {
    let module = guest(
        "proxy_abi_version_0_2_1",
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32)
             (drop (call $tick_period (i32.const 1000))) (i32.const 1))
           (func (export "proxy_on_tick") (param i32)
             (drop (call $http_call (i32.const 64) (i32.const 3) (i32.const 128) (i32.const 63)
                                    (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                    (i32.const 5000) (i32.const 300))))
           (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
             (drop (call $log (i32.const 2) (i32.const 48) (i32.const 8))))"#,
    );
    let mut host = Emulator::start(&module, options()).unwrap();
    assert_eq!(host.tick_period(), Some(Duration::from_secs(1)));
    assert!(host.tick().unwrap());
    let calls = host.pending_http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].upstream, "idp");
    assert_eq!(calls[0].timeout_ms, 5000);
    assert!(
        calls[0]
            .headers
            .contains(&(":authority".into(), "idp".into()))
    );
    host.respond_http_call(calls[0].token, &[(":status", "200")], b"{}", &[])
        .unwrap();
    assert_eq!(host.logs_at(LogLevel::Info), ["answered"]);
    assert!(host.pending_http_calls().is_empty());
}

// --- the real filter ---------------------------------------------------

fn filter_module() -> &'static FilterModule {
    static MODULE: OnceLock<FilterModule> = OnceLock::new();
    MODULE.get_or_init(|| match load_module(&workspace_wasm()) {
        Ok(module) => module,
        Err(error) => panic!("{error}"),
    })
}

fn example_config() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policy.yaml");
    warden_harness::load::load_policy(&path)
        .unwrap()
        .plugin_configuration()
        .unwrap()
}

fn token(claims: serde_json::Value) -> String {
    DemoIssuer::new().unwrap().token(TEST_NOW, claims).unwrap()
}

#[test]
fn the_filter_starts_like_in_envoy_and_refuses_a_bad_configuration() {
    let module = filter_module();
    assert_eq!(module.abi_version(), AbiVersion::V0_2_1);
    let mut filter = WardenFilter::start(module, &example_config(), TEST_NOW).unwrap();
    let logs = filter.emulator().logs_at(LogLevel::Info).join("\n");
    assert!(logs.contains("loaded"), "{logs}");
    // The policy gauges are set in on_configure, not in `_initialize`.
    assert_eq!(filter.counted("warden_policy_loaded", &[]), 1);
    assert!(filter.counted("warden_policy_rules", &[]) > 0);
    assert_eq!(filter.counted("warden_decisions_total", &[]), 0);

    let error = WardenFilter::start(module, "{\"version\": 1}", TEST_NOW)
        .err()
        .unwrap();
    match error {
        HarnessError::Refused { callback, logs } => {
            assert_eq!(callback, "proxy_on_configure");
            assert!(
                logs.iter().any(|l| l.contains("invalid configuration")),
                "{logs:?}"
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn the_filter_holds_the_request_until_the_body_is_judged() {
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                      "params":{"name":"search_docs","arguments":{"query":"x"}}})
    .to_string();
    let bearer = format!(
        "Bearer {}",
        token(json!({"sub":"research-agent","actor_type":"agent"}))
    );
    let length = body.len().to_string();
    let host = filter.emulator();
    let id = host.open_http().unwrap();
    let headers = [
        (":method", "POST"),
        (":path", "/mcp"),
        ("authorization", bearer.as_str()),
        ("content-length", length.as_str()),
        ("content-type", "application/json"),
    ];
    // The filter either holds the headers with the body, or lets them go
    // and holds the body (what works where a headers `Pause` stops all).
    let action = host.request_headers(id, &headers, false).unwrap();
    assert_eq!(host.request_held(id), action == Action::Pause);
    assert_eq!(
        host.upstream_request_headers(id).is_none(),
        action == Action::Pause
    );
    let (first, rest) = body.as_bytes().split_at(10);
    assert_eq!(host.request_body(id, first, false).unwrap(), Action::Pause);
    assert_eq!(host.upstream_request_body(id).unwrap(), b"");
    assert_eq!(host.request_body(id, rest, true).unwrap(), Action::Continue);
    assert!(host.upstream_request_headers(id).is_some());
    assert_eq!(host.upstream_request_body(id).unwrap(), body.as_bytes());
    assert!(host.local_response(id).is_none());
    host.complete(id).unwrap();
    let agent_allowed = [
        ("decision", "allow"),
        ("actor_type", "agent"),
        ("class", "policy"),
    ];
    assert_eq!(filter.counted("warden_decisions_total", &agent_allowed), 1);
    assert_eq!(
        filter.counted("warden_decisions_total", &[("decision", "deny")]),
        0
    );
}

#[test]
fn the_filter_answers_401_and_counts_the_denial() {
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let exchange = filter
        .handle(&HttpRequest::post(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        ))
        .unwrap();
    let reply = exchange.local_response.as_ref().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(
            "Bearer realm=\"warden\", resource_metadata=\"https://mcp.demo.warden.test/.well-known/oauth-protected-resource/mcp\""
        )
    );
    assert!(!exchange.forwarded());
    assert_eq!(exchange.decision(), Some("deny"));
    let unauthenticated = [
        ("decision", "deny"),
        ("actor_type", "none"),
        ("rule", "none"),
        ("class", "token"),
    ];
    assert_eq!(
        filter.counted("warden_decisions_total", &unauthenticated),
        1
    );
}

#[test]
fn token_cache_lookups_are_counted_on_the_tick_not_per_request() {
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    // Every configuration ticks: the cache is reported on the timer.
    assert_eq!(
        filter.emulator().tick_period(),
        Some(Duration::from_secs(1))
    );
    let repeated = token(json!({"sub": "alice", "actor_type": "human"}));
    let fresh = token(json!({"sub": "bob", "actor_type": "human"}));
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    for bearer in [&repeated, &repeated, &repeated, &fresh] {
        filter
            .handle(&HttpRequest::post(list).bearer(bearer))
            .unwrap();
    }
    let lookups = |filter: &WardenFilter, outcome| {
        filter.counted("warden_token_cache_lookups_total", &[("outcome", outcome)])
    };
    // Counted in the VM only, until the tick.
    assert_eq!((lookups(&filter, "hit"), lookups(&filter, "miss")), (0, 0));
    assert!(filter.emulator().tick().unwrap());
    assert_eq!((lookups(&filter, "hit"), lookups(&filter, "miss")), (2, 2));
    // Nothing new: nothing added.
    assert!(filter.emulator().tick().unwrap());
    assert_eq!((lookups(&filter, "hit"), lookups(&filter, "miss")), (2, 2));
}

#[test]
fn the_vm_memory_gauge_is_the_linear_memory_and_stays_flat_under_mixed_traffic() {
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let gauge = |filter: &WardenFilter| filter.counted("warden_vm_memory_bytes", &[]);
    let linear =
        |filter: &mut WardenFilter| i128::try_from(filter.emulator().memory_bytes()).unwrap();
    // Set when the configuration loads.
    assert!(gauge(&filter) > 0);
    assert_eq!(gauge(&filter), linear(&mut filter));

    let human = format!("Bearer {}", token(json!({"groups": ["eng"]})));
    let agent = format!(
        "Bearer {}",
        token(json!({"sub": "research-agent", "actor_type": "agent"}))
    );
    // The same token with one signature character changed (a middle one:
    // the last carries padding bits, which decode to the same bytes).
    let signed = token(json!({"groups": ["eng"]}));
    let at = signed.rfind('.').unwrap() + 10;
    let swapped = if signed.get(at..=at) == Some("A") {
        "B"
    } else {
        "A"
    };
    let forged = format!("Bearer {}{swapped}{}", &signed[..at], &signed[at + 1..]);
    let call = |tool: &str| {
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
               "params":{"name":tool,"arguments":{"query":"x"}}})
        .to_string()
    };
    let list = r#"{"jsonrpc":"2.0","id":"l1","method":"tools/list"}"#;
    let answer = r#"{"jsonrpc":"2.0","id":"l1","result":{"tools":[{"name":"search_docs"},{"name":"export_customers"},{"name":"deploy"}]}}"#;
    // One of each kind of request: allowed, a denied tool, an agent denied,
    // a body that is not JSON, a forged token, a list cut on its way back.
    let mixed = |filter: &mut WardenFilter| -> Vec<bool> {
        let mut forwarded = Vec::new();
        for (bearer, body) in [
            (&human, call("search_docs")),
            (&human, call("export_customers")),
            (&agent, call("delete_repo")),
            (&human, "{\"jsonrpc\":\"2.0\",".to_owned()),
            (&forged, call("search_docs")),
        ] {
            let exchange = filter
                .handle(&HttpRequest::post(body).header("authorization", bearer))
                .unwrap();
            forwarded.push(exchange.forwarded());
        }
        let id = forward_post(filter, &human, &[], list);
        let host = filter.emulator();
        json_answer_begins(host, id);
        host.response_body(id, answer.as_bytes(), true).unwrap();
        let seen = String::from_utf8(host.downstream_response_body(id).unwrap().to_vec()).unwrap();
        assert!(!seen.contains("export_customers"), "{seen}");
        host.complete(id).unwrap();
        filter.emulator().clear_logs();
        forwarded
    };
    assert_eq!(
        mixed(&mut filter),
        [true, false, false, false, false],
        "the traffic is the mix it claims to be"
    );
    for _ in 0..300 {
        mixed(&mut filter);
    }
    assert!(filter.emulator().tick().unwrap());
    let warm = gauge(&filter);
    assert_eq!(warm, linear(&mut filter), "the gauge is set on the tick");
    // Five times as many requests again: the VM needs no more memory.
    for _ in 0..1500 {
        mixed(&mut filter);
    }
    assert!(filter.emulator().tick().unwrap());
    assert_eq!(gauge(&filter), linear(&mut filter));
    assert_eq!(gauge(&filter), warm, "the VM grew after its warm-up");
}

#[test]
fn only_a_vm_that_serves_streams_reports_its_memory_on_the_tick() {
    // Envoy's main thread runs a VM that ticks but serves no stream: were
    // it to write the gauge every second too, the gauge would flip between
    // its memory and a worker's.
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let records_on_tick = |filter: &mut WardenFilter| {
        let host = filter.emulator();
        host.clear_hostcalls();
        assert!(host.tick().unwrap());
        let root = host.root_id();
        host.hostcalls(root)
            .get("env.proxy_record_metric")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(
        records_on_tick(&mut filter),
        0,
        "an idle VM wrote the gauge"
    );
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let bearer = token(json!({"sub": "alice", "actor_type": "human"}));
    filter
        .handle(&HttpRequest::post(list).bearer(&bearer))
        .unwrap();
    // The memory, and the most streams held at once.
    assert_eq!(records_on_tick(&mut filter), 2);
    assert_eq!(
        filter.counted("warden_vm_memory_bytes", &[]),
        i128::try_from(filter.emulator().memory_bytes()).unwrap()
    );
    assert_eq!(filter.counted("warden_vm_streams_peak", &[]), 1);
}

#[test]
fn memory_follows_the_streams_held_at_once_not_the_requests_served() {
    // A stream waiting for its response keeps its judged request's state:
    // memory grows with how many wait at once, and stays put however many
    // requests then pass at that concurrency or less.
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let human = format!("Bearer {}", token(json!({"groups": ["eng"]})));
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                      "params":{"name":"search_docs","arguments":{"query":"x"}}})
    .to_string();
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#;
    let at_once = |filter: &mut WardenFilter, streams: usize| {
        let ids: Vec<u32> = (0..streams)
            .map(|_| forward_post(filter, &human, &[], &call))
            .collect();
        let host = filter.emulator();
        for id in ids {
            json_answer_begins(host, id);
            host.response_body(id, answer.as_bytes(), true).unwrap();
            host.complete(id).unwrap();
        }
        host.clear_logs();
    };
    let peak = |filter: &mut WardenFilter| {
        assert!(filter.emulator().tick().unwrap());
        (
            filter.counted("warden_vm_streams_peak", &[]),
            filter.emulator().memory_bytes(),
        )
    };
    // Two rounds at a concurrency settle it: the second reuses the first's
    // freed blocks in another order, which can take a page more, once.
    at_once(&mut filter, 8);
    at_once(&mut filter, 8);
    let (streams, warm) = peak(&mut filter);
    assert_eq!(streams, 8);
    for _ in 0..500 {
        at_once(&mut filter, 8);
    }
    assert_eq!(
        peak(&mut filter),
        (8, warm),
        "4,000 requests, 8 at a time, grew the VM"
    );
    // Crowds alternating with quiet rounds: the allocator reuses freed
    // blocks in yet other orders, and may take a page more at some point
    // (where moves with the build's allocation pattern). That settling is
    // bounded, and once settled memory stays put: 12,800 more requests.
    let mixed = |filter: &mut WardenFilter| {
        at_once(filter, 400);
        for _ in 0..30 {
            at_once(filter, 8);
        }
    };
    at_once(&mut filter, 400);
    at_once(&mut filter, 400);
    let (streams, first) = peak(&mut filter);
    assert_eq!(streams, 400);
    assert!(first > warm, "400 streams at once took no more memory");
    for _ in 0..10 {
        mixed(&mut filter);
    }
    let (streams, crowded) = peak(&mut filter);
    assert_eq!(streams, 400);
    assert!(
        crowded <= first + 2 * WASM_PAGE,
        "settling took {} bytes more",
        crowded - first
    );
    for _ in 0..20 {
        mixed(&mut filter);
    }
    assert_eq!(
        peak(&mut filter),
        (400, crowded),
        "memory did not stay put once settled"
    );
}

/// Wasm linear memory grows by pages of 64 KiB.
const WASM_PAGE: usize = 65_536;

/// The upstream's answer on stream `id` begins: 200, JSON.
fn json_answer_begins(host: &mut Emulator, id: u32) {
    host.response_headers(
        id,
        &[(":status", "200"), ("content-type", "application/json")],
        false,
    )
    .unwrap();
}

/// Sends one request through the filter up to the upstream; returns the
/// stream id, left open for the response.
fn forward(filter: &mut WardenFilter, request: &HttpRequest) -> u32 {
    let (id, _) = filter.send(request).unwrap();
    let host = filter.emulator();
    assert!(
        host.local_response(id).is_none(),
        "not forwarded: {:?}",
        host.local_response(id).map(|r| r.body_text())
    );
    id
}

/// Sends one POST through the filter up to the upstream; returns the stream id.
fn forward_post(
    filter: &mut WardenFilter,
    bearer: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> u32 {
    let mut request = HttpRequest::post(body).header("authorization", bearer);
    for (name, value) in extra {
        request = request.header(name, value);
    }
    forward(filter, &request)
}

#[test]
fn list_responses_are_filtered_in_the_filter_for_sse_and_json() {
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let alice = format!("Bearer {}", token(json!({"groups": ["eng"]})));
    let answer = r#"{"jsonrpc":"2.0","id":"l1","result":{"tools":[{"name":"search_docs"},{"name":"export_customers"},{"name":"deploy"}]}}"#;
    let list = r#"{"jsonrpc":"2.0","id":"l1","method":"tools/list"}"#;

    // SSE, with the stream left open after the answer: each complete event
    // goes on at once, cut; an unfinished one waits for its end.
    let id = forward_post(&mut filter, &alice, &[("accept-encoding", "gzip")], list);
    let upstream = filter
        .emulator()
        .upstream_request_headers(id)
        .unwrap()
        .clone();
    assert!(!upstream.iter().any(|(k, _)| k == "accept-encoding"));
    let host = filter.emulator();
    host.response_headers(
        id,
        &[
            (":status", "200"),
            ("content-type", "text/event-stream"),
            ("content-length", "999"),
        ],
        false,
    )
    .unwrap();
    let downstream = host.downstream_response_headers(id).unwrap();
    assert!(!downstream.iter().any(|(k, _)| k == "content-length"));
    let first = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\nevent: message\ndata: ";
    assert_eq!(
        host.response_body(id, first.as_bytes(), false).unwrap(),
        Action::Continue
    );
    let seen = String::from_utf8(host.downstream_response_body(id).unwrap().to_vec()).unwrap();
    assert!(seen.ends_with("\"params\":{}}\n\n"), "{seen}");
    let rest = format!("{}\n\n", &answer);
    assert_eq!(
        host.response_body(id, rest.as_bytes(), false).unwrap(),
        Action::Continue
    );
    let seen = String::from_utf8(host.downstream_response_body(id).unwrap().to_vec()).unwrap();
    assert!(seen.contains("notifications/message"), "{seen}");
    assert!(
        seen.contains("search_docs") && seen.contains("deploy"),
        "{seen}"
    );
    assert!(!seen.contains("export_customers"), "{seen}");
    host.complete(id).unwrap();
    let list_line = filter.emulator().logs().iter().any(|l| {
        l.message
            .contains(r#""list":{"kept":2,"kind":"tools","removed":["export_customers"]}"#)
    });
    assert!(list_line, "the removal is audited");

    // JSON: buffered whole, then filtered.
    let id = forward_post(&mut filter, &alice, &[], list);
    let host = filter.emulator();
    json_answer_begins(host, id);
    let (a, b) = answer.as_bytes().split_at(30);
    assert_eq!(host.response_body(id, a, false).unwrap(), Action::Pause);
    assert_eq!(host.response_body(id, b, true).unwrap(), Action::Continue);
    let seen: serde_json::Value =
        serde_json::from_slice(host.downstream_response_body(id).unwrap()).unwrap();
    assert_eq!(
        seen["result"]["tools"],
        json!([{"name": "search_docs"}, {"name": "deploy"}])
    );
    host.complete(id).unwrap();
    let cut = [("kind", "tools"), ("outcome", "cut")];
    assert_eq!(filter.counted("warden_lists_total", &cut), 2);
}

/// Opens a session through the filter: the upstream answers `initialize`
/// with `server_id`; returns the id the client got.
fn open_session(filter: &mut WardenFilter, bearer: &str, server_id: &str) -> String {
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#;
    let id = forward_post(filter, bearer, &[], init);
    let host = filter.emulator();
    host.response_headers(
        id,
        &[
            (":status", "200"),
            ("content-type", "application/json"),
            ("mcp-session-id", server_id),
        ],
        true,
    )
    .unwrap();
    let sealed = host
        .downstream_response_headers(id)
        .and_then(|headers| headers.iter().find(|(k, _)| k == "mcp-session-id"))
        .map(|(_, v)| v.clone())
        .expect("the client gets a session id");
    host.complete(id).unwrap();
    sealed
}

fn in_session(bearer: &str, session: &str, method: &str) -> HttpRequest {
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let request = HttpRequest {
        method: method.into(),
        body: if method == "POST" {
            ping.into()
        } else {
            Vec::new()
        },
        ..HttpRequest::post("")
    };
    request
        .header("authorization", bearer)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
}

/// The `Mcp-Session-Id` the upstream received for stream `id`.
fn upstream_session(filter: &mut WardenFilter, id: u32) -> Option<String> {
    filter
        .emulator()
        .upstream_request_headers(id)?
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
}

#[test]
fn a_session_opened_by_one_principal_is_refused_to_another() {
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let alice = format!("Bearer {}", token(json!({"groups": ["eng"]})));
    let bob = format!("Bearer {}", token(json!({"sub": "bob"})));
    let sealed = open_session(&mut filter, &alice, "s-42");
    assert!(sealed.starts_with("ws1."), "{sealed}");
    for method in ["POST", "GET", "DELETE"] {
        let id = forward(&mut filter, &in_session(&alice, &sealed, method));
        assert_eq!(
            upstream_session(&mut filter, id).as_deref(),
            Some("s-42"),
            "{method}"
        );
        filter.emulator().complete(id).unwrap();
    }
    let theirs = filter.handle(&in_session(&bob, &sealed, "POST")).unwrap();
    assert_eq!(theirs.status(), Some(404));
    assert!(theirs.reason().unwrap().contains("another principal"));
    let raw = filter.handle(&in_session(&alice, "s-42", "POST")).unwrap();
    assert_eq!(raw.status(), Some(404));
    assert!(raw.reason().unwrap().contains("not issued by Warden"));
}

#[test]
fn one_principal_opening_thousands_of_sessions_ends_no_other_session() {
    let mut filter = WardenFilter::start(filter_module(), &example_config(), TEST_NOW).unwrap();
    let alice = format!("Bearer {}", token(json!({"groups": ["eng"]})));
    let bob = format!("Bearer {}", token(json!({"sub": "bob"})));
    let alices = open_session(&mut filter, &alice, "s-alice");
    let shared_before = filter.emulator().shared_data_keys().len();
    let mut bobs = Vec::new();
    for n in 0..2_000 {
        bobs.push(open_session(&mut filter, &bob, &format!("s-bob-{n}")));
    }
    assert_eq!(
        filter.emulator().shared_data_keys().len(),
        shared_before,
        "sessions take no shared data"
    );
    let id = forward(&mut filter, &in_session(&alice, &alices, "POST"));
    assert_eq!(
        upstream_session(&mut filter, id).as_deref(),
        Some("s-alice")
    );
    filter.emulator().complete(id).unwrap();
    for (n, sealed) in bobs.iter().enumerate().step_by(499) {
        let id = forward(&mut filter, &in_session(&bob, sealed, "POST"));
        let wanted = format!("s-bob-{n}");
        assert_eq!(
            upstream_session(&mut filter, id).as_deref(),
            Some(wanted.as_str())
        );
        filter.emulator().complete(id).unwrap();
    }
}

#[test]
fn audit_lines_in_filter_state_reach_the_proxys_log_at_debug_and_are_still_read() {
    // With `filter.audit_filter_state`, the access log is the sink: the
    // line is in filter state, and in the proxy's log at `debug` only. The
    // harness reads the decision from it all the same.
    let mut config: serde_json::Value = serde_json::from_str(&example_config()).unwrap();
    config["filter"]["audit_filter_state"] = json!(true);
    let body = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                      "params":{"name":"search_docs","arguments":{"query":"x"}}})
    .to_string();
    let bearer = token(json!({"sub":"research-agent","actor_type":"agent"}));
    let mut filter = WardenFilter::start(filter_module(), &config.to_string(), TEST_NOW).unwrap();
    let exchange = filter
        .handle(&HttpRequest::post(body.as_str()).bearer(&bearer))
        .unwrap();
    assert!(exchange.forwarded(), "{:?}", exchange.reason());
    assert_eq!(exchange.decision(), Some("allow"));
    let audit_at = |level: LogLevel| {
        exchange
            .logs
            .iter()
            .filter(|l| l.level == level && l.message.starts_with(AUDIT_PREFIX))
            .count()
    };
    assert_eq!(
        (audit_at(LogLevel::Debug), audit_at(LogLevel::Info)),
        (1, 0)
    );
    let kept = filter.emulator().property(&["warden_audit"]).unwrap();
    assert!(kept.starts_with(AUDIT_PREFIX.as_bytes()));
}

#[test]
fn a_session_survives_a_restart_with_configured_keys_and_not_without() {
    let key = "c2Vzc2lvbi1rZXktZm9yLXRoZS1ob3N0LXRlc3QtMTIzNA";
    let mut config: serde_json::Value = serde_json::from_str(&example_config()).unwrap();
    config["filter"]["session_keys"] = json!([key]);
    let configured = config.to_string();
    let alice = format!("Bearer {}", token(json!({"groups": ["eng"]})));
    for (config, survives) in [(configured, true), (example_config(), false)] {
        let mut before = WardenFilter::start(filter_module(), &config, TEST_NOW).unwrap();
        let sealed = open_session(&mut before, &alice, "s-7");
        // A new proxy (or the same one restarted): fresh shared data.
        let options = HostOptions {
            random_seed: 0xdecaf,
            ..HostOptions::default()
                .with_plugin_configuration(config.clone())
                .with_time_unix_seconds(TEST_NOW)
        };
        let mut after = WardenFilter::start_with(filter_module(), options).unwrap();
        let outcome = after.handle(&in_session(&alice, &sealed, "POST")).unwrap();
        assert_eq!(outcome.forwarded(), survives, "{:?}", outcome.reason());
        if !survives {
            assert!(outcome.reason().unwrap().contains("bad seal"));
        }
    }
}

// --- stream handling, on a guest whose callbacks each test writes ---------

/// A guest for stream tests. Helpers it offers to the callbacks:
/// `$say(n)` logs `status n`; `$show_body(kind)` logs the body buffer the
/// guest can read (or `status n` when the read fails); `$header_status`
/// logs the status of reading `:path` from the request headers;
/// `$local_reply` sends a 403 with body `no`; `$dispatch` makes an HTTP
/// call to `idp`. `proxy_on_tick` moves to
/// context 2 (the first HTTP context) and continues both of its
/// directions. `callbacks` override the default callbacks by export name:
/// headers and trailers callbacks `Continue`, body callbacks show the body
/// and `Pause` until the end of the stream.
fn stream_guest(callbacks: &[(&str, &str)]) -> FilterModule {
    let defaults = [
        (
            "proxy_on_request_headers",
            "(param i32 i32 i32) (result i32)",
            "(i32.const 0)",
        ),
        (
            "proxy_on_request_body",
            "(param i32 i32 i32) (result i32)",
            "(call $show_body (i32.const 0)) (i32.eqz (local.get 2))",
        ),
        (
            "proxy_on_request_trailers",
            "(param i32 i32) (result i32)",
            "(i32.const 0)",
        ),
        (
            "proxy_on_response_headers",
            "(param i32 i32 i32) (result i32)",
            "(i32.const 0)",
        ),
        (
            "proxy_on_response_body",
            "(param i32 i32 i32) (result i32)",
            "(call $show_body (i32.const 1)) (i32.eqz (local.get 2))",
        ),
        (
            "proxy_on_response_trailers",
            "(param i32 i32) (result i32)",
            "(i32.const 0)",
        ),
        (
            "proxy_on_tick",
            "(param i32)",
            "(drop (call $set_context (i32.const 2)))
             (drop (call $continue (i32.const 0)))
             (drop (call $continue (i32.const 1)))",
        ),
        (
            "proxy_on_http_call_response",
            "(param i32 i32 i32 i32 i32)",
            "",
        ),
        ("proxy_on_done", "(param i32) (result i32)", "(i32.const 1)"),
        ("proxy_on_log", "(param i32)", ""),
        ("proxy_on_delete", "(param i32)", ""),
    ];
    let mut exports = String::new();
    for (name, signature, default) in defaults {
        let body = callbacks
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(default, |(_, b)| *b);
        exports.push_str(&format!("(func (export \"{name}\") {signature} {body})\n"));
    }
    for (name, _) in callbacks {
        assert!(
            defaults.iter().any(|(n, _, _)| n == name),
            "no callback {name}"
        );
    }
    let statuses: String = (0..10)
        .map(|n| format!("(data (i32.const {}) \"status {n}\")\n", 512 + 16 * n))
        .collect();
    let wat = format!(
        r#"(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $send_local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_context (param i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $tick_period (param i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  {statuses}
  (data (i32.const 1100) "idp")
  (data (i32.const 1280) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\01\00\00\00\0a\00\00\00\03\00\00\00:method\00GET\00:path\00/\00:authority\00idp\00")
  (data (i32.const 1024) ":path")
  (data (i32.const 1040) "no")
  (data (i32.const 1056) "XY")
  (data (i32.const 1072) "denied")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $ptr))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $tick_period (i32.const 1000))) (i32.const 1))
  (func $say (param $n i32)
    (drop (call $log (i32.const 2)
      (i32.add (i32.const 512) (i32.mul (local.get $n) (i32.const 16))) (i32.const 8))))
  (func $show_body (param $kind i32)
    (local $status i32)
    (local.set $status (call $get_buffer (local.get $kind) (i32.const 0) (i32.const 0x7fffffff)
                                         (i32.const 300) (i32.const 304)))
    (if (local.get $status) (then (call $say (local.get $status)) (return)))
    (drop (call $log (i32.const 2) (i32.load (i32.const 300)) (i32.load (i32.const 304)))))
  (func $header_status
    (call $say (call $header (i32.const 0) (i32.const 1024) (i32.const 5)
                             (i32.const 300) (i32.const 304))))
  (func $dispatch
    (drop (call $http_call (i32.const 1100) (i32.const 3) (i32.const 1280) (i32.const 63)
                           (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                           (i32.const 5000) (i32.const 300))))
  (func $local_reply
    (drop (call $send_local (i32.const 403) (i32.const 1072) (i32.const 6) (i32.const 1040) (i32.const 2)
                            (i32.const 0) (i32.const 0) (i32.const -1))))
  {exports}
)"#
    );
    FilterModule::from_bytes(wat.as_bytes()).expect("the stream guest compiles")
}

fn stop_all() -> HostOptions {
    options().with_header_pause(HeaderPause::StopAll)
}

fn info_logs(host: &Emulator) -> Vec<&str> {
    host.logs_at(LogLevel::Info)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn call(callback: &'static str, args: &[i32], returned: Option<i32>) -> GuestCall {
    GuestCall {
        callback,
        args: args.to_vec(),
        returned,
    }
}

const PAUSE_HEADERS: (&str, &str) = ("proxy_on_request_headers", "(i32.const 1)");

#[test]
fn stop_all_delivers_no_body_or_trailers_until_the_guest_continues() {
    let module = stream_guest(&[PAUSE_HEADERS]);
    let mut host = Emulator::start(&module, stop_all()).unwrap();
    assert_eq!(host.header_pause(), HeaderPause::StopAll);
    let id = host.open_http().unwrap();
    assert_eq!(id, 2);
    assert_eq!(
        host.request_headers(id, &[(":path", "/mcp")], false)
            .unwrap(),
        Action::Pause
    );
    assert!(host.request_stopped(id) && host.request_held(id));
    // The host keeps the body and the trailers; the guest hears nothing.
    assert_eq!(host.request_body(id, b"ab", false).unwrap(), Action::Pause);
    assert_eq!(host.request_body(id, b"cd", false).unwrap(), Action::Pause);
    assert_eq!(
        host.request_trailers(id, &[("x-checksum", "1")]).unwrap(),
        Action::Pause
    );
    assert_eq!(
        host.callbacks(id),
        ["proxy_on_context_create", "proxy_on_request_headers"]
    );
    assert_eq!(host.upstream_request_headers(id), None);
    assert_eq!(host.upstream_request_body(id).unwrap(), b"");
    assert!(info_logs(&host).is_empty());

    // The guest continues (from a tick, as after an HTTP call): the headers
    // go on, then one body callback carries all of the body (not the end of
    // the stream: trailers follow), then the trailers callback, whose
    // `Continue` lets the buffered body and the trailers go on.
    assert!(host.tick().unwrap());
    assert!(!host.request_stopped(id));
    assert_eq!(
        host.guest_calls(id)[2..],
        [
            call("proxy_on_request_body", &[4, 0], Some(1)),
            call("proxy_on_request_trailers", &[1], Some(0)),
        ]
    );
    assert_eq!(info_logs(&host), ["abcd"]);
    assert_eq!(
        host.upstream_request_headers(id).unwrap(),
        &pairs(&[(":path", "/mcp")])
    );
    assert_eq!(host.upstream_request_body(id).unwrap(), b"abcd");
    assert_eq!(
        host.upstream_request_trailers(id).unwrap(),
        &pairs(&[("x-checksum", "1")])
    );

    host.complete(id).unwrap();
    assert_eq!(
        host.callbacks(id)[4..],
        ["proxy_on_done", "proxy_on_log", "proxy_on_delete"]
    );
}

#[test]
fn stop_all_resumes_with_the_end_of_stream_when_no_trailers_came() {
    let module = stream_guest(&[PAUSE_HEADERS]);
    let mut host = Emulator::start(&module, stop_all()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    assert_eq!(host.request_body(id, b"ab", false).unwrap(), Action::Pause);
    assert_eq!(host.request_body(id, b"cd", true).unwrap(), Action::Pause);
    host.tick().unwrap();
    assert_eq!(
        host.guest_calls(id)[2..],
        [call("proxy_on_request_body", &[4, 1], Some(0))]
    );
    assert_eq!(host.upstream_request_body(id).unwrap(), b"abcd");

    // Another stream stays stopped: the tick continues context 2 only.
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    host.tick().unwrap();
    assert!(host.request_stopped(id));
    assert_eq!(host.request_body(id, b"ab", false).unwrap(), Action::Pause);
    assert_eq!(host.callbacks(id).len(), 2);
}

#[test]
fn an_honoured_header_pause_holds_only_the_headers() {
    let module = stream_guest(&[PAUSE_HEADERS]);
    let mut host = Emulator::start(&module, options()).unwrap();
    assert_eq!(host.header_pause(), HeaderPause::Honoured);
    let id = host.open_http().unwrap();
    assert_eq!(
        host.request_headers(id, &[(":path", "/mcp")], false)
            .unwrap(),
        Action::Pause
    );
    assert!(host.request_held(id) && !host.request_stopped(id));
    assert_eq!(host.request_body(id, b"ab", false).unwrap(), Action::Pause);
    assert_eq!(host.upstream_request_headers(id), None);
    assert_eq!(
        host.request_body(id, b"cd", true).unwrap(),
        Action::Continue
    );
    assert_eq!(
        host.guest_calls(id)[2..],
        [
            call("proxy_on_request_body", &[2, 0], Some(1)),
            call("proxy_on_request_body", &[4, 1], Some(0)),
        ]
    );
    assert_eq!(info_logs(&host), ["ab", "abcd"]);
    assert!(host.upstream_request_headers(id).is_some());
    assert_eq!(host.upstream_request_body(id).unwrap(), b"abcd");
}

#[test]
fn continuing_releases_held_headers_and_the_buffered_body() {
    // Honoured mode: the guest pauses the headers and buffers the body, then
    // continues (as after an HTTP call): both go upstream; the rest of the
    // body reaches the guest as it comes.
    let module = stream_guest(&[PAUSE_HEADERS]);
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    host.request_body(id, b"ab", false).unwrap();
    host.tick().unwrap();
    assert!(!host.request_held(id));
    assert!(host.upstream_request_headers(id).is_some());
    assert_eq!(host.upstream_request_body(id).unwrap(), b"ab");
    assert_eq!(
        host.request_body(id, b"cd", true).unwrap(),
        Action::Continue
    );
    assert_eq!(
        host.guest_calls(id).last().unwrap(),
        &call("proxy_on_request_body", &[2, 1], Some(0))
    );
    assert_eq!(host.upstream_request_body(id).unwrap(), b"abcd");
}

#[test]
fn paused_trailers_are_held_until_the_guest_continues() {
    let module = stream_guest(&[("proxy_on_request_trailers", "(i32.const 1)")]);
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    host.request_body(id, b"ab", false).unwrap();
    assert_eq!(
        host.request_trailers(id, &[("x-t", "1")]).unwrap(),
        Action::Pause
    );
    assert_eq!(host.upstream_request_trailers(id), None);
    assert_eq!(host.upstream_request_body(id).unwrap(), b"");
    host.tick().unwrap();
    assert_eq!(host.upstream_request_body(id).unwrap(), b"ab");
    assert_eq!(
        host.upstream_request_trailers(id).unwrap(),
        &pairs(&[("x-t", "1")])
    );
}

#[test]
fn the_trailers_callback_reads_and_replaces_the_buffered_body() {
    let module = stream_guest(&[(
        "proxy_on_request_trailers",
        "(call $show_body (i32.const 0))
         (call $say (call $set_buffer (i32.const 0) (i32.const 0) (i32.const 0x7fffffff)
                                      (i32.const 1056) (i32.const 2)))
         (i32.const 0)",
    )]);
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    host.request_body(id, b"ab", false).unwrap();
    host.request_body(id, b"cd", false).unwrap();
    host.request_trailers(id, &[("x-t", "1")]).unwrap();
    assert_eq!(info_logs(&host), ["ab", "abcd", "abcd", "status 0"]);
    assert_eq!(host.upstream_request_body(id).unwrap(), b"XY");
    assert!(host.upstream_request_trailers(id).is_some());

    // A body the guest did not buffer is not there in the trailers callback
    // (Envoy hands out an empty buffer, and refuses to write it).
    let module = stream_guest(&[
        ("proxy_on_request_body", "(i32.const 0)"),
        (
            "proxy_on_request_trailers",
            "(call $show_body (i32.const 0))
             (call $say (call $set_buffer (i32.const 0) (i32.const 0) (i32.const 2)
                                          (i32.const 1056) (i32.const 2)))
             (i32.const 0)",
        ),
    ]);
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    host.request_body(id, b"ab", false).unwrap();
    host.request_trailers(id, &[("x-t", "1")]).unwrap();
    assert_eq!(info_logs(&host), ["", "status 2"]);
    assert_eq!(host.upstream_request_body(id).unwrap(), b"ab");
}

#[test]
fn outside_body_callbacks_only_a_buffered_body_is_reachable() {
    // From a tick (moved into the stream's context): while the guest
    // buffers, it reads the buffered body; otherwise the body is empty.
    let module = stream_guest(&[(
        "proxy_on_tick",
        "(drop (call $set_context (i32.const 2)))
         (call $show_body (i32.const 0))",
    )]);
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    host.tick().unwrap();
    host.request_body(id, b"ab", false).unwrap();
    host.tick().unwrap();
    host.request_body(id, b"cd", true).unwrap();
    host.tick().unwrap();
    assert_eq!(info_logs(&host), ["", "ab", "ab", "abcd", ""]);
}

#[test]
fn header_maps_are_reachable_only_while_envoy_holds_them() {
    // Envoy drops its pointer to the request headers once they continue:
    // reading a header then is BadArgument (2) and listing them gives none;
    // while the headers are held, and in `proxy_on_log`, they are there.
    // The body callback logs: the `:path` read, the listing's status, then
    // `status 0` if the listing had pairs, `status 1` if not.
    let body = "(call $header_status)
                (call $say (call $pairs (i32.const 0) (i32.const 300) (i32.const 304)))
                (call $say (i32.eqz (i32.load (i32.const 304))))
                (i32.const 0)";
    for (headers, logged) in [
        (
            "(call $header_status) (i32.const 1)",
            ["status 0", "status 0", "status 0", "status 0", "status 0"],
        ),
        (
            "(call $header_status) (i32.const 0)",
            ["status 0", "status 2", "status 0", "status 1", "status 0"],
        ),
    ] {
        let module = stream_guest(&[
            ("proxy_on_request_headers", headers),
            ("proxy_on_request_body", body),
            ("proxy_on_log", "(call $header_status)"),
        ]);
        let mut host = Emulator::start(&module, options()).unwrap();
        let id = host.open_http().unwrap();
        host.request_headers(id, &[(":path", "/mcp")], false)
            .unwrap();
        host.request_body(id, b"{}", true).unwrap();
        host.complete(id).unwrap();
        assert_eq!(info_logs(&host), logged, "{headers}");
    }
}

#[test]
fn a_reset_runs_only_the_end_callbacks_and_forwards_nothing_more() {
    for pause in [HeaderPause::Honoured, HeaderPause::StopAll] {
        let module = stream_guest(&[PAUSE_HEADERS]);
        let mut host = Emulator::start(&module, options().with_header_pause(pause)).unwrap();
        let id = host.open_http().unwrap();
        host.request_headers(id, &[(":path", "/mcp")], false)
            .unwrap();
        host.request_body(id, b"ab", false).unwrap();
        host.reset(id).unwrap();
        let body_calls = usize::from(pause == HeaderPause::Honoured);
        let callbacks = host.callbacks(id);
        assert_eq!(callbacks.len(), 5 + body_calls, "{callbacks:?}");
        assert_eq!(
            callbacks[2 + body_calls..],
            ["proxy_on_done", "proxy_on_log", "proxy_on_delete"]
        );
        // The stream is gone: nothing more can be driven on it.
        assert!(matches!(
            host.request_body(id, b"cd", true),
            Err(HarnessError::Usage(_))
        ));
        host.tick().unwrap();
        assert_eq!(host.callbacks(id).len(), 5 + body_calls);
    }
}

#[test]
fn a_local_reply_in_the_response_path_replaces_the_upstream_response() {
    let module = stream_guest(&[
        (
            "proxy_on_response_headers",
            // end of stream: reply locally at once; else hold the headers
            "(if (local.get 2) (then (call $local_reply) (return (i32.const 0))))
             (i32.const 1)",
        ),
        (
            "proxy_on_response_body",
            "(call $local_reply) (i32.const 0)",
        ),
    ]);
    let mut host = Emulator::start(&module, options()).unwrap();
    let reply = pairs(&[
        (":status", "403"),
        ("content-length", "2"),
        ("content-type", "text/plain"),
    ]);

    // During the headers callback, then `Continue`.
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], true)
        .unwrap();
    host.response_headers(id, &[(":status", "200"), ("x-up", "1")], true)
        .unwrap();
    assert_eq!(host.local_response(id).unwrap().status, 403);
    assert_eq!(host.downstream_response_headers(id).unwrap(), &reply);
    assert_eq!(host.downstream_response_body(id).unwrap(), b"no");
    host.complete(id).unwrap();

    // During a body callback while the headers are held: the upstream's
    // headers and body never reach the client, despite `Continue`.
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], true)
        .unwrap();
    host.response_headers(id, &[(":status", "200")], false)
        .unwrap();
    assert!(host.response_held(id));
    assert_eq!(
        host.response_body(id, b"upstream", false).unwrap(),
        Action::Continue
    );
    assert_eq!(host.downstream_response_headers(id).unwrap(), &reply);
    assert_eq!(host.downstream_response_body(id).unwrap(), b"no");
    assert!(!host.response_held(id) && !host.was_reset(id));
    // The rest of the upstream's response is not delivered.
    assert!(matches!(
        host.response_body(id, b"more", true),
        Err(HarnessError::Usage(_))
    ));
    host.complete(id).unwrap();

    // After the headers went to the client (continued from a tick), Envoy
    // can only reset the stream.
    let module = stream_guest(&[
        ("proxy_on_response_headers", "(i32.const 1)"),
        (
            "proxy_on_response_body",
            "(call $local_reply) (i32.const 0)",
        ),
    ]);
    let mut host = Emulator::start(&module, options()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], true)
        .unwrap();
    host.response_headers(id, &[(":status", "200")], false)
        .unwrap();
    host.tick().unwrap();
    assert_eq!(
        host.downstream_response_headers(id).unwrap(),
        &pairs(&[(":status", "200")])
    );
    host.response_body(id, b"upstream", true).unwrap();
    assert!(host.was_reset(id));
    assert_eq!(host.local_response(id), None);
    assert_eq!(host.downstream_response_body(id).unwrap(), b"");
    host.complete(id).unwrap();
}

#[test]
fn a_local_reply_on_the_request_is_what_the_client_gets() {
    let module = stream_guest(&[(
        "proxy_on_request_headers",
        "(call $local_reply) (i32.const 0)",
    )]);
    let mut host = Emulator::start(&module, stop_all()).unwrap();
    let id = host.open_http().unwrap();
    assert_eq!(
        host.request_headers(id, &[(":path", "/mcp")], false)
            .unwrap(),
        Action::Continue
    );
    assert_eq!(host.upstream_request_headers(id), None);
    assert_eq!(
        host.downstream_response_headers(id).unwrap()[0],
        (":status".to_owned(), "403".to_owned())
    );
    assert_eq!(host.downstream_response_body(id).unwrap(), b"no");
}

#[test]
fn the_filter_gets_no_body_after_a_header_pause_under_stop_all() {
    // Envoy's default: whatever the filter returns from its headers
    // callback, a `Pause` there means no body callback until it continues.
    let options = HostOptions::default()
        .with_plugin_configuration(example_config())
        .with_time_unix_seconds(TEST_NOW)
        .with_header_pause(HeaderPause::StopAll);
    let mut host = Emulator::start(filter_module(), options).unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let bearer = format!("Bearer {}", token(json!({"groups": ["eng"]})));
    let length = body.len().to_string();
    let id = host.open_http().unwrap();
    let headers = [
        (":method", "POST"),
        (":path", "/mcp"),
        (":authority", "mcp.demo.warden.test"),
        ("authorization", bearer.as_str()),
        ("content-length", length.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
    ];
    let paused = host.request_headers(id, &headers, false).unwrap() == Action::Pause;
    host.request_body(id, body.as_bytes(), true).unwrap();
    let calls = host.callbacks(id);
    if paused && host.local_response(id).is_none() {
        // The stream hangs, as it does in Envoy.
        assert_eq!(
            calls,
            ["proxy_on_context_create", "proxy_on_request_headers"]
        );
        assert!(host.request_stopped(id));
        assert_eq!(host.upstream_request_headers(id), None);
        assert_eq!(host.upstream_request_body(id).unwrap(), b"");
    } else {
        assert!(calls.contains(&"proxy_on_request_body"), "{calls:?}");
    }
    host.reset(id).unwrap();
    assert_eq!(host.callbacks(id).last().copied(), Some("proxy_on_delete"));
}

#[test]
fn an_http_call_answer_that_continues_resumes_a_stopped_request() {
    // As a filter that asks an authorization service: pause the headers,
    // call out, continue from the answer. The answer is delivered on the
    // root context (cpp-host makes calls there); the guest moves to its
    // stream with `proxy_set_effective_context`.
    let module = stream_guest(&[
        ("proxy_on_request_headers", "(call $dispatch) (i32.const 1)"),
        (
            "proxy_on_http_call_response",
            "(call $say (local.get 0))
             (drop (call $set_context (i32.const 2)))
             (drop (call $continue (i32.const 0)))",
        ),
    ]);
    let mut host = Emulator::start(&module, stop_all()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], false)
        .unwrap();
    host.request_body(id, b"{}", true).unwrap();
    assert_eq!(host.upstream_request_headers(id), None);
    let calls = host.pending_http_calls();
    assert_eq!(calls[0].context_id, id);
    host.respond_http_call(calls[0].token, &[(":status", "200")], b"ok", &[])
        .unwrap();
    assert_eq!(info_logs(&host), ["status 1", "{}"]);
    assert_eq!(
        host.guest_calls(id)[2..],
        [
            call(
                "proxy_on_http_call_response",
                &[i32::try_from(calls[0].token).unwrap(), 1, 2, 0],
                None
            ),
            call("proxy_on_request_body", &[2, 1], Some(0)),
        ]
    );
    assert!(host.upstream_request_headers(id).is_some());
    assert_eq!(host.upstream_request_body(id).unwrap(), b"{}");
}

#[test]
fn stop_all_holds_the_response_too() {
    let module = stream_guest(&[("proxy_on_response_headers", "(i32.const 1)")]);
    let mut host = Emulator::start(&module, stop_all()).unwrap();
    let id = host.open_http().unwrap();
    host.request_headers(id, &[(":path", "/mcp")], true)
        .unwrap();
    assert_eq!(
        host.response_headers(id, &[(":status", "200")], false)
            .unwrap(),
        Action::Pause
    );
    assert!(host.response_stopped(id) && host.response_held(id));
    assert_eq!(host.response_body(id, b"ab", true).unwrap(), Action::Pause);
    assert_eq!(host.callbacks(id).len(), 3);
    assert_eq!(host.downstream_response_headers(id), None);
    host.tick().unwrap();
    assert_eq!(
        host.guest_calls(id)[3..],
        [call("proxy_on_response_body", &[2, 1], Some(0))]
    );
    assert_eq!(
        host.downstream_response_headers(id).unwrap(),
        &pairs(&[(":status", "200")])
    );
    assert_eq!(host.downstream_response_body(id).unwrap(), b"ab");
    assert_eq!(host.downstream_response_trailers(id), None);
}

#[test]
fn close_stream_resets_an_http_stream_only_for_its_directions() {
    // Envoy closes a connection (downstream 2, upstream 3) only for a
    // network filter: an HTTP stream goes on. An unknown type is refused.
    for (kind, status, resets) in [
        (0, 0, true),
        (1, 0, true),
        (2, 0, false),
        (3, 0, false),
        (4, 2, false),
    ] {
        let body = format!("(call $say (call $close (i32.const {kind}))) (i32.const 0)");
        let module = stream_guest(&[("proxy_on_request_headers", body.as_str())]);
        let mut host = Emulator::start(&module, options()).unwrap();
        let id = host.open_http().unwrap();
        host.request_headers(id, &[(":path", "/mcp")], true)
            .unwrap();
        let said = format!("status {status}");
        assert_eq!(info_logs(&host), [said.as_str()], "stream type {kind}");
        assert_eq!(host.was_reset(id), resets, "stream type {kind}");
        assert_eq!(
            host.upstream_request_headers(id).is_some(),
            !resets,
            "stream type {kind}"
        );
    }
}
