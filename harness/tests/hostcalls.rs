//! What the built filter asks of the host per request, counted by the
//! emulator: structural facts the steady path must keep (no shared-data
//! read, one read of each header map, no single-header reads), in both
//! header modes, under a policy that polls a revocation list.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::path::Path;
use std::sync::OnceLock;

use policy_sdk::config::HeaderMode;
use policy_sdk::identity::VerifiedBy;
use warden_harness::filter::{load_module, workspace_wasm};
use warden_harness::host::FilterModule;
use warden_harness::hostcalls::{Counted, Reference, accept_only, count, default_claims};
use warden_harness::load::load_policy;

fn module() -> &'static FilterModule {
    static MODULE: OnceLock<FilterModule> = OnceLock::new();
    MODULE.get_or_init(|| load_module(&workspace_wasm()).expect("the built filter loads"))
}

/// The counts under `bench/hostcalls.yaml` (a polled revocation list), with
/// `repeat` more allowed calls before the root's tick.
fn counted_after(mode: HeaderMode, repeat: u32) -> Vec<Counted> {
    counted_by(mode, VerifiedBy::Warden, repeat)
}

/// [`counted_after`], with the signature checked by `verified_by`.
fn counted_by(mode: HeaderMode, verified_by: VerifiedBy, repeat: u32) -> Vec<Counted> {
    counted_with(mode, verified_by, repeat, None)
}

/// [`counted_by`]; with `fresh_alg`, every request carries a token never
/// presented before, signed with that algorithm alone.
fn counted_with(
    mode: HeaderMode,
    verified_by: VerifiedBy,
    repeat: u32,
    fresh_alg: Option<&str>,
) -> Vec<Counted> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/hostcalls.yaml");
    let mut loaded = load_policy(&path).expect("the reference policy loads");
    assert!(
        loaded.document.identity.revocation.remote.is_some(),
        "the reference policy polls a revocation list"
    );
    loaded.document.filter.header_mode = mode;
    loaded.document.identity.verified_by = verified_by;
    if let Some(alg) = fresh_alg {
        accept_only(&mut loaded.document, alg);
    }
    let mut reference =
        Reference::for_document(&loaded.document, &default_claims(), "deploy", "drop")
            .expect("a reference");
    reference.fresh_tokens = fresh_alg.is_some();
    count(module(), &reference, repeat).expect("the reference requests run")
}

fn counted(mode: HeaderMode) -> Vec<Counted> {
    counted_after(mode, 0)
}

fn find<'c>(counted: &'c [Counted], request: &str) -> &'c Counted {
    counted
        .iter()
        .find(|c| c.request == request)
        .unwrap_or_else(|| panic!("no `{request}` in {counted:?}"))
}

#[test]
fn the_steady_path_reads_no_shared_data_and_each_header_map_once() {
    for mode in [HeaderMode::Stream, HeaderMode::Hold] {
        let counted = counted(mode);
        let allowed = find(&counted, "allowed call");
        let denied = find(&counted, "denied call");
        let list = find(&counted, "filtered list");
        let tick = find(&counted, "tick (root)");
        assert_eq!(allowed.outcome, "forwarded", "{mode:?}");
        assert_eq!(denied.outcome, "answered 200", "{mode:?}");
        assert_eq!(list.outcome, "forwarded, list cut to 1", "{mode:?}");

        for request in [allowed, denied, list] {
            let name = request.request;
            assert_eq!(
                request.count("proxy_get_shared_data"),
                0,
                "{mode:?} {name}: {request:?}"
            );
            assert_eq!(
                request.count("proxy_set_shared_data"),
                0,
                "{mode:?} {name}: {request:?}"
            );
            // Headers are read as whole maps, never one by one.
            assert_eq!(
                request.count("proxy_get_header_map_value"),
                0,
                "{mode:?} {name}: {request:?}"
            );
        }
        // The decision's audit line, and nothing else logged (a filtered
        // list adds the list's line).
        assert_eq!(allowed.count("proxy_log"), 1, "{mode:?}");
        assert_eq!(denied.count("proxy_log"), 1, "{mode:?}");
        assert_eq!(list.count("proxy_log"), 2, "{mode:?}");
        // The request headers once; for a forwarded request the response
        // headers once more. A denial's local reply has no upstream headers.
        assert_eq!(allowed.count("proxy_get_header_map_pairs"), 2, "{mode:?}");
        assert_eq!(list.count("proxy_get_header_map_pairs"), 2, "{mode:?}");
        assert_eq!(denied.count("proxy_get_header_map_pairs"), 1, "{mode:?}");
        assert_eq!(denied.count("proxy_send_local_response"), 1, "{mode:?}");
        // The request body is read once, when complete (and a forwarded
        // JSON response once, for its list results).
        assert_eq!(denied.count("proxy_get_buffer_bytes"), 1, "{mode:?}");
        assert_eq!(allowed.count("proxy_get_buffer_bytes"), 2, "{mode:?}");

        // The root's tick is where other workers' documents are looked at.
        assert!(tick.count("proxy_get_shared_data") > 0, "{tick:?}");
    }
}

#[test]
fn counts_belong_to_the_context_that_made_them() {
    let counted = counted(HeaderMode::Stream);
    let allowed = find(&counted, "allowed call");
    let tick = find(&counted, "tick (root)");
    // Starting the VM, configuring and ticking happen in the root context:
    // nothing of it shows on a request.
    assert_eq!(allowed.count("proxy_set_tick_period_milliseconds"), 0);
    assert_eq!(allowed.count("proxy_get_current_time_nanoseconds"), 1);
    assert_eq!(tick.count("proxy_get_header_map_pairs"), 0);
    assert_eq!(
        allowed.total,
        allowed.hostcalls.values().sum::<u64>(),
        "{allowed:?}"
    );
}

#[test]
fn the_wasm_instructions_of_each_request_are_counted_and_steady() {
    let first = counted(HeaderMode::Stream);
    // A second VM, which also serves a load of allowed calls (as a
    // profile of the filter does) before its root ticks.
    let again = counted_after(HeaderMode::Stream, 200);
    assert_eq!(first.len(), again.len());
    for (request, repeated) in first.iter().zip(&again) {
        // Every request runs the filter; the count is the same in a second
        // VM (no time or randomness in it changes the work).
        assert!(request.fuel > 1_000, "{request:?}");
        if request.request == "tick (root)" {
            // The tick looks at what requests left behind (the token cache,
            // the metrics): after 200 more calls with one token it may take
            // another branch, but a tick that went over something each call
            // left would cost at least one instruction per call.
            assert!(
                request.fuel.abs_diff(repeated.fuel) < 200,
                "{request:?} {repeated:?}"
            );
        } else {
            assert_eq!(request.fuel, repeated.fuel, "{}", request.request);
        }
    }
    // A list answer is read and cut, on top of what a call costs.
    let allowed = find(&first, "allowed call");
    let list = find(&first, "filtered list");
    assert!(list.fuel > allowed.fuel, "{list:?} {allowed:?}");
}

/// The requests of two counts side by side, the root tick left out, once
/// both are seen to have run the same requests to the same outcomes.
fn same_requests<'c>(
    these: &'c [Counted],
    those: &'c [Counted],
    what: &str,
) -> Vec<(&'c Counted, &'c Counted)> {
    assert_eq!(these.len(), those.len(), "{what}");
    these
        .iter()
        .zip(those)
        .inspect(|(this, that)| {
            assert_eq!(
                (this.request, &this.outcome),
                (that.request, &that.outcome),
                "{what}"
            );
        })
        .filter(|(this, _)| this.request != "tick (root)")
        .collect()
}

#[test]
fn a_payload_jwt_authn_verified_costs_one_hostcall_more() {
    let own = counted(HeaderMode::Stream);
    let by_proxy = counted_by(HeaderMode::Stream, VerifiedBy::JwtAuthn, 0);
    for (request, ours) in same_requests(&by_proxy, &own, "jwt_authn") {
        // The metadata is one hostcall: the whole message, read once; the
        // rest is what a token Warden verified needs.
        assert_eq!(request.count("proxy_get_property"), 1, "{request:?}");
        assert_eq!(request.total, ours.total + 1, "{request:?} {ours:?}");
    }
}

#[test]
fn a_fresh_token_is_verified_and_asks_nothing_more_of_the_host() {
    let cached = counted(HeaderMode::Stream);
    for alg in ["ES256", "RS256", "EdDSA"] {
        let fresh = counted_with(HeaderMode::Stream, VerifiedBy::Warden, 0, Some(alg));
        for (request, repeated) in same_requests(&fresh, &cached, alg) {
            let name = request.request;
            // The key set is in force already: a token the cache does not
            // know costs no hostcall more.
            assert_eq!(request.hostcalls, repeated.hostcalls, "{alg} {name}");
            // Its signature is checked, which a cached token skips: well
            // over a million instructions for each of the three (a miss
            // that skipped it would cost about what a hit does).
            assert!(
                request.fuel > repeated.fuel + 1_000_000,
                "{alg} {name}: {} fresh, {} cached",
                request.fuel,
                repeated.fuel
            );
        }
    }
}
