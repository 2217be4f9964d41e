//! Keeping documents fresh, natively: workers sharing data through an
//! in-memory proxy, HTTP calls answered by the test.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};

use super::fetch::key_set_location;
use super::memory::{MemoryDocumentHost, SharedData};
use super::*;
use crate::exchange::{KeyFetch, KeyProgress, LogLevel};
use crate::identity::TokenError;
use crate::testing::{DEMO_ISSUER, DemoIssuer, TEST_NOW, demo_identity_json, demo_jwks};

const REFRESH: u64 = 300;
const MIN_INTERVAL: u64 = 10;
const POLL: u64 = 30;
const DISCOVERY_REFRESH: u64 = 3600;
const DISCOVERY: &str = "/.well-known/openid-configuration";

/// A configuration whose demo issuer's keys are fetched from cluster `idp`
/// (through OpenID discovery with `discovery`) and whose revocation list is
/// polled from cluster `lists`.
fn config(discovery: bool) -> String {
    let mut identity = demo_identity_json();
    let path = if discovery {
        "/.well-known/openid-configuration"
    } else {
        "/jwks"
    };
    if let Some(issuer) = identity
        .pointer_mut("/issuers/0")
        .and_then(Value::as_object_mut)
    {
        issuer.remove("jwks");
        let mut fetch = json!({"cluster": "idp", "authority": "idp.example", "path": path,
                   "discovery": discovery, "refresh_seconds": REFRESH,
                   "min_refresh_interval_seconds": MIN_INTERVAL, "timeout_ms": 2000});
        if discovery {
            fetch["key_set_hosts"] = json!({"keys.example": "keys", "cdn.example:8443": "cdn"});
            fetch["discovery_refresh_seconds"] = json!(DISCOVERY_REFRESH);
        }
        issuer.insert("jwks_fetch".into(), fetch);
    }
    if let Some(identity) = identity.as_object_mut() {
        identity.insert(
            "revocation".into(),
            json!({"remote": {"cluster": "lists", "path": "/revoked",
                              "refresh_seconds": POLL}}),
        );
    }
    json!({
        "version": 1,
        "identity": identity,
        "rules": [{"id": "search", "effect": "allow", "owner": "docs", "tools": ["search_docs"]}],
    })
    .to_string()
}

/// `seconds` since the Unix epoch, in milliseconds.
fn millis(seconds: u64) -> u64 {
    seconds * 1000
}

/// A key fetch by `stream` for an unknown key id of `issuer`, with `host`'s
/// clock at `at_millis`.
fn fetch_at(
    stream: &mut StreamDocuments,
    host: &mut MemoryDocumentHost,
    issuer: &str,
    at_millis: u64,
) -> KeyFetch {
    host.now_unix_millis = at_millis;
    stream.start_key_fetch(host, issuer)
}

/// One worker seen from one of its HTTP contexts.
struct StreamWorker {
    warden: Rc<Warden>,
    host: MemoryDocumentHost,
    stream: StreamDocuments,
}

impl StreamWorker {
    fn fetch_at(&mut self, issuer: &str, at_millis: u64) -> KeyFetch {
        fetch_at(&mut self.stream, &mut self.host, issuer, at_millis)
    }
}

/// One worker VM: its own compiled configuration and root context.
struct Worker {
    warden: Rc<Warden>,
    root: Refresher,
    host: MemoryDocumentHost,
}

impl Worker {
    fn start(shared: &Rc<RefCell<SharedData>>, discovery: bool) -> Self {
        let warden = Rc::new(Warden::from_json(&config(discovery)).unwrap());
        let mut host = MemoryDocumentHost::new(shared.clone(), TEST_NOW);
        let mut root = Refresher::default();
        root.configure(&mut host, warden.clone());
        Self { warden, root, host }
    }

    /// `on_configure` with a freshly compiled configuration.
    fn configure(&mut self, discovery: bool) {
        self.warden = Rc::new(Warden::from_json(&config(discovery)).unwrap());
        self.root.configure(&mut self.host, self.warden.clone());
    }

    fn tick_at(&mut self, now: u64) {
        self.tick_at_millis(millis(now));
    }

    fn tick_at_millis(&mut self, now: u64) {
        self.host.now_unix_millis = now;
        self.root.tick(&mut self.host);
    }

    /// The worker as one of its HTTP contexts sees it.
    fn into_stream(self) -> StreamWorker {
        StreamWorker {
            stream: self.root.stream(),
            warden: self.warden,
            host: self.host,
        }
    }

    /// The pending call for `path`.
    fn call(&self, path: &str) -> u32 {
        self.host
            .calls
            .iter()
            .find(|c| c.path() == path)
            .map(|c| c.token)
            .unwrap_or_else(|| panic!("no call for `{path}`: {:?}", self.host.calls))
    }

    /// Answers the root's call `token`.
    fn answer(&mut self, token: u32, status: Option<&str>, body: &[u8]) {
        let size = self.host.answer(token, status, body).unwrap();
        self.root.on_http_call_response(&mut self.host, token, size);
    }

    fn paths(&self) -> Vec<&str> {
        self.host.calls.iter().map(|c| c.path()).collect()
    }

    fn has_keys(&self) -> bool {
        self.warden.verifier().has_keys(DEMO_ISSUER)
    }

    fn verify(&self, jti: &str) -> Result<(), TokenError> {
        let token = DemoIssuer::new()
            .unwrap()
            .token(TEST_NOW, json!({"jti": jti}))
            .unwrap();
        self.warden.verifier().verify(&token, TEST_NOW).map(|_| ())
    }
}

fn shared() -> Rc<RefCell<SharedData>> {
    SharedData::new_shared()
}

fn jwks() -> Vec<u8> {
    demo_jwks().to_string().into_bytes()
}

fn shared_doc(shared: &Rc<RefCell<SharedData>>, key: &str) -> Option<Vec<u8>> {
    shared.borrow().get(key).map(|(bytes, _)| bytes)
}

const KEYS_DOC: &str = "warden:doc:keys:https://idp.demo.warden.test";
const REVOCATIONS_DOC: &str = "warden:doc:revocations";

#[test]
fn sources_follow_the_configuration() {
    let warden = Warden::from_json(&config(true)).unwrap();
    let all = sources(&warden);
    assert_eq!(all.len(), 2);
    let keys = &all[0];
    assert!(keys.is_keys_of(DEMO_ISSUER));
    assert_eq!(
        (keys.cluster.as_str(), keys.authority.as_str()),
        ("idp", "idp.example")
    );
    assert!(keys.discovery);
    assert_eq!(
        (keys.refresh_seconds, keys.min_interval_seconds),
        (REFRESH, MIN_INTERVAL)
    );
    assert_eq!(keys.document_key(), KEYS_DOC);
    assert_eq!(
        keys.stamp_key(Trigger::UnknownKey),
        "warden:fetched-at:unknown-key:keys:https://idp.demo.warden.test"
    );
    let list = &all[1];
    assert_eq!(list.kind, Kind::Revocations);
    // The authority defaults to the cluster name; a list has no separate
    // on-demand interval.
    assert_eq!(list.authority, "lists");
    assert_eq!(
        (list.refresh_seconds, list.min_interval_seconds),
        (POLL, POLL)
    );
    assert_eq!(list.document_key(), REVOCATIONS_DOC);
    assert_eq!(
        list.stamp_key(Trigger::Scheduled),
        "warden:fetched-at:scheduled:revocations"
    );

    let inline = Warden::from_json(
        &json!({"version": 1, "identity": demo_identity_json(),
        "rules": []})
        .to_string(),
    )
    .unwrap();
    assert!(sources(&inline).is_empty());
    assert!(!Refresher::default().has_sources());
}

#[test]
fn one_worker_fetches_per_period() {
    let shared = shared();
    let mut a = Worker::start(&shared, false);
    let mut b = Worker::start(&shared, false);

    a.tick_at(TEST_NOW);
    b.tick_at(TEST_NOW);
    assert_eq!(a.paths(), ["/jwks", "/revoked"]);
    assert!(b.paths().is_empty(), "{:?}", b.paths());
    let call = &a.host.calls[0];
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.timeout, std::time::Duration::from_millis(2000));
    assert!(
        call.headers
            .contains(&(":authority".into(), "idp.example".into()))
    );
    assert!(call.headers.contains(&(":method".into(), "GET".into())));

    // A fetch under way is not started again by the same worker.
    a.tick_at(TEST_NOW + MIN_INTERVAL);
    assert_eq!(a.host.calls.len(), 2);
    assert_eq!(a.root.in_flight(), 2);

    let token = a.call("/jwks");
    a.answer(token, Some("200"), &jwks());
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": ["t-gone"]}"#);
    assert!(a.has_keys());
    assert_eq!(a.root.in_flight(), 0);
    assert_eq!(
        a.host.logs_at(LogLevel::Info),
        [
            "warden: loaded keys of `https://idp.demo.warden.test`: 3 keys",
            "warden: loaded revocation list: 1 entries"
        ]
    );

    // Once loaded, the next fetch is a full period later, in either worker.
    b.tick_at(TEST_NOW + POLL - 1);
    a.tick_at(TEST_NOW + POLL - 1);
    assert!(a.paths().is_empty() && b.paths().is_empty());
    b.tick_at(TEST_NOW + POLL);
    a.tick_at(TEST_NOW + POLL);
    assert_eq!(b.paths(), ["/revoked"]);
    assert!(a.paths().is_empty());
    b.tick_at(TEST_NOW + REFRESH);
    a.tick_at(TEST_NOW + REFRESH);
    assert_eq!(b.paths(), ["/revoked", "/jwks"]);
    // A fetch stuck in one worker holds the others back one period only.
    assert_eq!(a.paths(), ["/revoked"]);
}

#[test]
fn until_keys_load_fetches_retry_at_the_short_interval() {
    let shared = shared();
    let mut a = Worker::start(&shared, false);
    a.tick_at(TEST_NOW);
    let token = a.call("/jwks");
    a.answer(token, Some("503"), b"");
    assert_eq!(
        a.host.logs_at(LogLevel::Warn),
        ["warden: fetch failed: keys of `https://idp.demo.warden.test`: HTTP 503"]
    );
    a.tick_at(TEST_NOW + MIN_INTERVAL - 1);
    assert_eq!(a.paths(), ["/revoked"]);
    a.tick_at(TEST_NOW + MIN_INTERVAL);
    assert_eq!(a.paths(), ["/revoked", "/jwks"]);
}

#[test]
fn the_unknown_key_limit_is_a_full_interval_to_the_millisecond() {
    // Seen in CI with whole-second stamps: a fetch at .999 of a second and
    // the next at the start of the second MIN_INTERVAL − 1 later counted as
    // MIN_INTERVAL apart, so a flood of forged key ids got two fetches
    // within (MIN_INTERVAL − 1) seconds and a millisecond.
    let shared = shared();
    let mut a = Worker::start(&shared, false).into_stream();
    let mut b = Worker::start(&shared, false).into_stream();
    let first = millis(TEST_NOW) + 999;
    assert!(matches!(
        a.fetch_at(DEMO_ISSUER, first),
        KeyFetch::Started(_)
    ));
    for early in [
        millis(TEST_NOW + MIN_INTERVAL),
        first + millis(MIN_INTERVAL) - 1,
    ] {
        assert_eq!(
            b.fetch_at(DEMO_ISSUER, early),
            KeyFetch::Unavailable(String::new()),
            "{} ms after the first fetch",
            early - first
        );
    }
    assert!(matches!(
        b.fetch_at(DEMO_ISSUER, first + millis(MIN_INTERVAL)),
        KeyFetch::Started(_)
    ));
}

#[test]
fn a_scheduled_fetch_allows_a_tick_slightly_early() {
    let shared = shared();
    let mut a = Worker::start(&shared, false);
    a.tick_at(TEST_NOW);
    let keys = a.call("/jwks");
    a.answer(keys, Some("200"), &jwks());
    let list = a.call("/revoked");
    a.answer(list, Some("200"), br#"{"jti": []}"#);
    assert!(a.has_keys());
    // The timer fires every second, give or take: a tick 150 ms before
    // the period is over starts the period's fetch (rather than waiting a
    // whole second more), one 300 ms before does not.
    a.tick_at_millis(millis(TEST_NOW + POLL) - 300);
    assert!(a.paths().is_empty(), "{:?}", a.paths());
    a.tick_at_millis(millis(TEST_NOW + POLL) - 150);
    assert_eq!(a.paths(), ["/revoked"]);
}

#[test]
fn unknown_key_ids_fetch_at_most_once_per_interval_across_workers() {
    let shared = shared();
    let mut a = Worker::start(&shared, false).into_stream();
    let mut b = Worker::start(&shared, false).into_stream();

    let KeyFetch::Started(token) = a.fetch_at(DEMO_ISSUER, millis(TEST_NOW)) else {
        panic!("the first unknown key id fetches");
    };
    assert_eq!(a.host.calls[0].path(), "/jwks");
    assert_eq!(
        b.fetch_at(DEMO_ISSUER, millis(TEST_NOW + MIN_INTERVAL - 1)),
        KeyFetch::Unavailable(String::new())
    );
    assert_eq!(
        a.fetch_at(DEMO_ISSUER, millis(TEST_NOW + 1)),
        KeyFetch::Unavailable(String::new())
    );
    assert!(b.host.calls.is_empty());
    assert!(matches!(
        b.fetch_at(DEMO_ISSUER, millis(TEST_NOW + MIN_INTERVAL)),
        KeyFetch::Started(_)
    ));
    // No source for an issuer whose keys are inline (or unknown).
    assert_eq!(
        a.fetch_at("https://other.example", millis(TEST_NOW + 100)),
        KeyFetch::Unavailable(String::new())
    );

    // The answer loads the keys for every stream of the worker, and shares
    // them with the other.
    let size = a.host.answer(token, Some("200"), &jwks()).unwrap();
    assert_eq!(
        a.stream.key_fetch_response(&mut a.host, token, size),
        KeyProgress::Loaded("keys of `https://idp.demo.warden.test`: 3 keys".into())
    );
    assert!(a.warden.verifier().has_keys(DEMO_ISSUER));
    assert_eq!(shared_doc(&shared, KEYS_DOC), Some(jwks()));
    assert_eq!(
        a.stream.key_fetch_response(&mut a.host, token, size),
        KeyProgress::Failed("an answer to a fetch this stream did not start".into())
    );
}

#[test]
fn scheduled_fetches_and_unknown_key_ids_have_separate_allowances() {
    let shared = shared();
    let mut a = Worker::start(&shared, false);
    a.tick_at(TEST_NOW);
    let mut stream = a.root.stream();
    assert!(matches!(
        fetch_at(&mut stream, &mut a.host, DEMO_ISSUER, millis(TEST_NOW)),
        KeyFetch::Started(_)
    ));
    // And a flood of unknown key ids does not delay the schedule.
    let mut b = Worker::start(&shared, false);
    let mut b_stream = b.root.stream();
    assert!(matches!(
        fetch_at(
            &mut b_stream,
            &mut b.host,
            DEMO_ISSUER,
            millis(TEST_NOW + MIN_INTERVAL)
        ),
        KeyFetch::Started(_)
    ));
    b.tick_at(TEST_NOW + MIN_INTERVAL);
    assert_eq!(b.paths(), ["/jwks", "/jwks"]);
}

#[test]
fn a_call_that_cannot_start_is_reported() {
    let shared = shared();
    let mut a = Worker::start(&shared, false);
    a.host.refuse_calls = true;
    a.tick_at(TEST_NOW);
    assert_eq!(
        a.host.logs_at(LogLevel::Warn),
        [
            "warden: fetch of keys of `https://idp.demo.warden.test` failed: cannot call cluster `idp`: BadArgument",
            "warden: fetch of revocation list failed: cannot call cluster `lists`: BadArgument",
        ]
    );
    let mut stream = a.root.stream();
    assert_eq!(
        fetch_at(&mut stream, &mut a.host, DEMO_ISSUER, millis(TEST_NOW)),
        KeyFetch::Unavailable(
            "fetch of keys of `https://idp.demo.warden.test` failed: cannot call cluster `idp`: BadArgument".into()
        )
    );
}

/// A discovery document for the demo issuer naming `jwks_uri`.
fn discovery_doc(jwks_uri: &str) -> Vec<u8> {
    json!({"issuer": DEMO_ISSUER, "jwks_uri": jwks_uri})
        .to_string()
        .into_bytes()
}

#[test]
fn discovery_finds_the_key_set_then_fetches_it() {
    let shared = shared();
    let mut a = Worker::start(&shared, true);
    a.tick_at(TEST_NOW);
    let token = a.call(DISCOVERY);
    a.answer(
        token,
        Some("200"),
        &discovery_doc("https://IDP.example:443/oauth/jwks?v=2#frag"),
    );
    assert!(!a.has_keys());
    assert_eq!(a.root.in_flight(), 2);
    // The discovery host itself maps to the discovery cluster.
    let call = a
        .host
        .calls
        .iter()
        .find(|c| c.path() == "/oauth/jwks?v=2")
        .unwrap();
    assert_eq!(call.cluster, "idp");
    assert!(
        call.headers
            .contains(&(":authority".into(), "idp.example".into()))
    );
    let token = call.token;
    a.answer(token, Some("200"), &jwks());
    assert!(a.has_keys());
    assert_eq!(shared_doc(&shared, KEYS_DOC), Some(jwks()));

    // The same, for a key fetch of a stream.
    let mut b = Worker::start(&SharedData::new_shared(), true);
    let mut stream = b.root.stream();
    let KeyFetch::Started(token) =
        fetch_at(&mut stream, &mut b.host, DEMO_ISSUER, millis(TEST_NOW))
    else {
        panic!("no fetch");
    };
    let body = discovery_doc("https://idp.example/keys");
    let size = b.host.answer(token, Some("200"), &body).unwrap();
    let KeyProgress::Pending(next) = stream.key_fetch_response(&mut b.host, token, size) else {
        panic!("discovery needs a second call");
    };
    assert_eq!(b.host.calls[0].path(), "/keys");
    let size = b.host.answer(next, Some("200"), &jwks()).unwrap();
    assert!(matches!(
        stream.key_fetch_response(&mut b.host, next, size),
        KeyProgress::Loaded(_)
    ));
    assert!(b.has_keys());
}

#[test]
fn a_key_set_on_another_host_is_fetched_from_its_mapped_cluster() {
    for (jwks_uri, cluster, authority, path) in [
        (
            "https://keys.example/oauth2/v3/certs",
            "keys",
            "keys.example",
            "/oauth2/v3/certs",
        ),
        // A host entry covers every port of that host.
        (
            "https://keys.example:9443/certs",
            "keys",
            "keys.example:9443",
            "/certs",
        ),
        (
            "https://cdn.example:8443?set=1",
            "cdn",
            "cdn.example:8443",
            "/?set=1",
        ),
    ] {
        let mut a = Worker::start(&shared(), true);
        a.tick_at(TEST_NOW);
        let token = a.call(DISCOVERY);
        a.answer(token, Some("200"), &discovery_doc(jwks_uri));
        let call = a.host.calls.iter().find(|c| c.path() == path).unwrap();
        assert_eq!(call.cluster, cluster, "{jwks_uri}");
        assert!(
            call.headers
                .contains(&(":authority".into(), authority.into())),
            "{jwks_uri}: {:?}",
            call.headers
        );
        let token = call.token;
        a.answer(token, Some("200"), &jwks());
        assert!(a.has_keys(), "{jwks_uri}");
    }
}

#[test]
fn a_key_set_on_an_unmapped_host_is_refused() {
    for (jwks_uri, why) in [
        (
            "https://www.googleapis.com/oauth2/v3/certs",
            "`jwks_uri` host `www.googleapis.com` maps to no cluster: add `www.googleapis.com: <cluster>` to `jwks_fetch.key_set_hosts`",
        ),
        // Port 8443 is mapped for `cdn.example` only.
        (
            "https://cdn.example/keys",
            "`jwks_uri` host `cdn.example` maps to no cluster",
        ),
        ("/keys", "`jwks_uri` `/keys` is not an absolute http(s) URL"),
        (
            "ftp://idp.example/keys",
            "`jwks_uri` `ftp://idp.example/keys` is not an absolute http(s) URL",
        ),
        (
            "https://user@idp.example/keys",
            "is not an absolute http(s) URL",
        ),
    ] {
        let shared = shared();
        let mut a = Worker::start(&shared, true);
        a.tick_at(TEST_NOW);
        let token = a.call(DISCOVERY);
        a.answer(token, Some("200"), &discovery_doc(jwks_uri));
        let warnings = a.host.logs_at(LogLevel::Warn);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .starts_with("warden: fetch failed: keys of `https://idp.demo.warden.test`: ")
                && warnings[0].contains(why),
            "{jwks_uri}: {warnings:?}"
        );
        assert_eq!(a.paths(), ["/revoked"], "no key-set call for {jwks_uri}");
        assert!(!a.has_keys());
        assert!(
            shared
                .borrow()
                .get("warden:discovered:keys:https://idp.demo.warden.test")
                .is_none(),
            "a refused location is not remembered"
        );
    }
}

/// A worker whose keys were found through discovery at `TEST_NOW`.
fn discovered_worker(shared: &Rc<RefCell<SharedData>>) -> Worker {
    let mut a = Worker::start(shared, true);
    a.tick_at(TEST_NOW);
    let token = a.call(DISCOVERY);
    a.answer(
        token,
        Some("200"),
        &discovery_doc("https://keys.example/certs"),
    );
    let token = a.call("/certs");
    a.answer(token, Some("200"), &jwks());
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": []}"#);
    assert!(a.has_keys());
    a
}

#[test]
fn a_discovery_document_for_another_issuer_is_refused_and_the_keys_stay() {
    let shared = shared();
    let mut a = discovered_worker(&shared);
    let now = TEST_NOW + DISCOVERY_REFRESH;
    for (body, found) in [
        (
            json!({"issuer": "https://evil.example", "jwks_uri": "https://keys.example/evil"}),
            "https://evil.example",
        ),
        // Trailing slashes matter: the comparison is exact.
        (
            json!({"issuer": format!("{DEMO_ISSUER}/"), "jwks_uri": "https://keys.example/certs"}),
            "https://idp.demo.warden.test/",
        ),
        (json!({"jwks_uri": "https://keys.example/certs"}), "(none)"),
    ] {
        a.host.logs.clear();
        a.tick_at(now);
        let token = a.call(DISCOVERY);
        a.answer(token, Some("200"), body.to_string().as_bytes());
        assert_eq!(
            a.host.logs_at(LogLevel::Warn),
            [format!(
                "warden: fetch failed: keys of `https://idp.demo.warden.test`: discovery document names issuer `{found}`, not `https://idp.demo.warden.test`"
            )]
        );
        assert!(!a.paths().contains(&"/evil"));
        assert!(a.has_keys());
        assert!(a.verify("t-ok").is_ok());
        assert_eq!(shared_doc(&shared, KEYS_DOC), Some(jwks()));
        // Let the next round be due again.
        shared
            .borrow_mut()
            .set(
                "warden:fetched-at:scheduled:keys:https://idp.demo.warden.test",
                b"0",
                None,
            )
            .unwrap();
        a.host.calls.clear();
    }
}

#[test]
fn the_discovered_location_is_used_until_the_discovery_interval() {
    let shared = shared();
    let mut a = discovered_worker(&shared);

    // Key refreshes within the interval go straight to the key set.
    for now in [TEST_NOW + REFRESH, TEST_NOW + 2 * REFRESH] {
        a.tick_at(now);
        let paths = a.paths();
        assert!(
            paths.contains(&"/certs") && !paths.contains(&DISCOVERY),
            "{paths:?}"
        );
        let token = a.call("/certs");
        assert_eq!(
            a.host
                .calls
                .iter()
                .find(|c| c.token == token)
                .unwrap()
                .cluster,
            "keys"
        );
        a.answer(token, Some("200"), &jwks());
        a.host.calls.clear();
    }
    // So does another worker's fetch for an unknown key id.
    let mut b = Worker::start(&shared, true);
    let mut stream = b.root.stream();
    assert!(matches!(
        fetch_at(
            &mut stream,
            &mut b.host,
            DEMO_ISSUER,
            millis(TEST_NOW + 2 * REFRESH)
        ),
        KeyFetch::Started(_)
    ));
    assert_eq!(b.paths(), ["/certs"]);

    // Once the interval has passed, the configuration is read again.
    a.tick_at(TEST_NOW + DISCOVERY_REFRESH);
    assert!(a.paths().contains(&DISCOVERY), "{:?}", a.paths());
    let token = a.call(DISCOVERY);
    a.answer(
        token,
        Some("200"),
        &discovery_doc("https://keys.example/v2/certs"),
    );
    let token = a.call("/v2/certs");
    a.answer(token, Some("200"), &jwks());
    assert!(
        a.host.logs_at(LogLevel::Warn).is_empty(),
        "{:?}",
        a.host.logs
    );
}

#[test]
fn a_failed_fetch_from_the_remembered_location_discovers_again() {
    let shared = shared();
    let mut a = discovered_worker(&shared);
    a.tick_at(TEST_NOW + REFRESH);
    let token = a.call("/certs");
    a.answer(token, Some("404"), b"");
    a.host.calls.clear();
    a.tick_at(TEST_NOW + 2 * REFRESH);
    assert!(a.paths().contains(&DISCOVERY), "{:?}", a.paths());
    assert!(a.has_keys(), "the last good keys stay");
}

#[test]
fn a_discovery_document_without_jwks_uri_fails() {
    for body in [
        json!({"issuer": DEMO_ISSUER}).to_string().into_bytes(),
        json!({"issuer": DEMO_ISSUER, "jwks_uri": 7})
            .to_string()
            .into_bytes(),
        b"not json".to_vec(),
    ] {
        let mut a = Worker::start(&shared(), true);
        a.tick_at(TEST_NOW);
        let token = a.call(DISCOVERY);
        a.answer(token, Some("200"), &body);
        assert_eq!(
            a.host.logs_at(LogLevel::Warn),
            [
                "warden: fetch failed: keys of `https://idp.demo.warden.test`: discovery document has no usable `jwks_uri`"
            ]
        );
        assert_eq!(a.root.in_flight(), 1, "only the revocation list");
    }
}

/// A worker that fetched the key set and a revocation list (`t-gone`).
fn loaded_worker(shared: &Rc<RefCell<SharedData>>) -> Worker {
    let mut a = Worker::start(shared, false);
    a.tick_at(TEST_NOW);
    let token = a.call("/jwks");
    a.answer(token, Some("200"), &jwks());
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": ["t-gone"]}"#);
    a
}

#[test]
fn a_bad_document_never_replaces_a_good_one() {
    let shared = shared();
    let mut a = loaded_worker(&shared);
    assert!(a.verify("t-ok").is_ok());
    assert!(matches!(a.verify("t-gone"), Err(TokenError::Revoked(_))));

    let too_large = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    let answers: [(Option<&str>, &[u8], &str); 6] = [
        (None, b"", "no response"),
        (Some("500"), b"", "HTTP 500"),
        (
            Some("200"),
            &too_large,
            "document of 1048577 bytes is too large",
        ),
        (Some("200"), b"{", "refused, keeping the last good copy: "),
        (
            Some("200"),
            br#"{"keys": []}"#,
            "refused, keeping the last good copy: ",
        ),
        (
            Some("200"),
            br#"{"keys": [], "keys": []}"#,
            "refused, keeping the last good copy: duplicate key `keys`",
        ),
    ];
    let mut now = TEST_NOW;
    for (status, body, why) in answers {
        now += REFRESH;
        a.host.logs.clear();
        a.tick_at(now);
        let token = a.call("/jwks");
        a.answer(token, status, body);
        let token = a.call("/revoked");
        a.answer(token, status, body);
        let warnings = a.host.logs_at(LogLevel::Warn);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0]
                .starts_with("warden: fetch failed: keys of `https://idp.demo.warden.test`: ")
                && warnings[0].contains(why),
            "{warnings:?}"
        );
        assert!(a.has_keys());
        assert!(a.verify("t-ok").is_ok());
        assert!(matches!(a.verify("t-gone"), Err(TokenError::Revoked(_))));
        assert_eq!(shared_doc(&shared, KEYS_DOC), Some(jwks()));
        assert_eq!(
            shared_doc(&shared, REVOCATIONS_DOC).as_deref(),
            Some(&br#"{"jti": ["t-gone"]}"#[..])
        );
    }

    // A bad copy in shared data (from a worker of another build, say) is
    // not applied either, and is reported once, not on every tick.
    shared
        .borrow_mut()
        .set(KEYS_DOC, br#"{"keys": "none"}"#, None)
        .unwrap();
    a.host.logs.clear();
    a.tick_at(now + 1);
    a.tick_at(now + 2);
    let stream = a.root.stream();
    stream.sync_keys(&mut a.host, DEMO_ISSUER);
    assert_eq!(a.host.logs_at(LogLevel::Warn).len(), 1);
    assert!(
        a.host.logs_at(LogLevel::Warn)[0]
            .starts_with("warden: shared keys of `https://idp.demo.warden.test`: "),
        "{:?}",
        a.host.logs
    );
    assert!(a.has_keys());
    assert!(a.verify("t-ok").is_ok());
}

#[test]
fn a_worker_applies_another_workers_fresh_documents() {
    let shared = shared();
    let mut a = Worker::start(&shared, false);
    let mut b = Worker::start(&shared, false);
    let b_stream = b.root.stream();
    a.tick_at(TEST_NOW);
    let token = a.call("/jwks");
    a.answer(token, Some("200"), &jwks());
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": ["t-gone"]}"#);

    // A stream whose token has an unknown key id takes the other worker's
    // key set at once; the list waits for the worker's tick.
    assert!(!b.has_keys());
    b_stream.sync_keys(&mut b.host, DEMO_ISSUER);
    assert!(b.has_keys());
    assert!(b.verify("t-gone").is_ok(), "the list is not applied yet");
    b.tick_at(TEST_NOW);
    assert!(matches!(b.verify("t-gone"), Err(TokenError::Revoked(_))));

    // A newer list reaches the other worker on its next tick.
    b.tick_at(TEST_NOW + POLL);
    let token = b.call("/revoked");
    b.answer(token, Some("200"), br#"{"jti": []}"#);
    assert!(matches!(a.verify("t-gone"), Err(TokenError::Revoked(_))));
    a.tick_at(TEST_NOW + POLL);
    assert!(a.paths().is_empty());
    assert!(a.verify("t-gone").is_ok());
    assert!(a.host.logs_at(LogLevel::Warn).is_empty());
}

#[test]
fn a_revocation_reaches_every_worker_at_its_next_tick() {
    let shared = shared();
    let mut a = loaded_worker(&shared);
    // Worker b starts with a's copies (applied at configuration).
    let mut b = Worker::start(&shared, false);
    b.tick_at(TEST_NOW);
    assert!(b.paths().is_empty());
    assert!(matches!(b.verify("t-gone"), Err(TokenError::Revoked(_))));

    // Worker a polls a list that revokes another token: a refuses it at once.
    a.tick_at(TEST_NOW + POLL);
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": ["t-stolen"]}"#);
    assert!(matches!(a.verify("t-stolen"), Err(TokenError::Revoked(_))));

    // Worker b's requests read no shared data: b follows at its next tick
    // (within a second), without fetching, and t-gone is no longer revoked
    // there either.
    assert!(b.verify("t-stolen").is_ok(), "b has not ticked yet");
    b.tick_at(TEST_NOW + POLL);
    assert!(
        b.paths().is_empty(),
        "b did not fetch: a's copy was applied"
    );
    assert!(matches!(b.verify("t-stolen"), Err(TokenError::Revoked(_))));
    assert!(b.verify("t-gone").is_ok());

    // Later ticks find nothing new.
    b.tick_at(TEST_NOW + POLL + 1);
    assert!(b.host.logs.is_empty(), "{:?}", b.host.logs);
    assert!(matches!(b.verify("t-stolen"), Err(TokenError::Revoked(_))));
}

#[test]
fn a_reconfigured_root_applies_the_shared_documents_at_once() {
    let shared = shared();
    let mut a = loaded_worker(&shared);

    a.tick_at(TEST_NOW + POLL);
    assert_eq!(a.root.in_flight(), 1);
    a.configure(false);
    assert_eq!(a.root.in_flight(), 0);
    assert!(a.has_keys(), "keys from shared data, before any tick");
    assert!(matches!(a.verify("t-gone"), Err(TokenError::Revoked(_))));
    // The answer to a fetch of the old configuration is ignored.
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": []}"#);
    assert!(a.host.logs_at(LogLevel::Warn).is_empty());
    assert!(matches!(a.verify("t-gone"), Err(TokenError::Revoked(_))));

    // Streams created now follow the new configuration.
    let mut stream = a.root.stream();
    assert!(matches!(
        fetch_at(
            &mut stream,
            &mut a.host,
            DEMO_ISSUER,
            millis(TEST_NOW + POLL)
        ),
        KeyFetch::Started(_)
    ));
}

#[test]
fn a_stream_without_configuration_does_nothing() {
    let mut host = MemoryDocumentHost::new(shared(), TEST_NOW);
    let mut stream = Refresher::default().stream();
    stream.sync_keys(&mut host, DEMO_ISSUER);
    assert_eq!(
        fetch_at(&mut stream, &mut host, DEMO_ISSUER, millis(TEST_NOW)),
        KeyFetch::Unavailable(String::new())
    );
    let mut root = Refresher::default();
    root.tick(&mut host);
    root.on_http_call_response(&mut host, 1, 0);
    assert!(host.calls.is_empty() && host.logs.is_empty());
}

#[test]
fn key_set_locations_of_discovered_urls() {
    let warden = Warden::from_json(&config(true)).unwrap();
    let source = &sources(&warden)[0];
    let at = |url: &str| key_set_location(source, url).map(|l| (l.cluster, l.authority, l.path));
    let ok = |c: &str, a: &str, p: &str| Ok((c.to_owned(), a.to_owned(), p.to_owned()));
    assert_eq!(
        at("https://idp.example/oauth/jwks?v=2"),
        ok("idp", "idp.example", "/oauth/jwks?v=2")
    );
    assert_eq!(at("http://idp.example:80"), ok("idp", "idp.example", "/"));
    assert_eq!(
        at("HTTPS://Keys.Example/a#b"),
        ok("keys", "keys.example", "/a")
    );
    assert_eq!(
        at("https://cdn.example:8443/k"),
        ok("cdn", "cdn.example:8443", "/k")
    );
    assert!(matches!(
        at("https://cdn.example:9443/k"),
        Err(FetchError::UnmappedHost { .. })
    ));
    assert!(matches!(at("https:///k"), Err(FetchError::BadJwksUri(_))));
    assert!(matches!(
        at("https://idp.example/a b"),
        Err(FetchError::BadJwksUri(_))
    ));
}

#[test]
fn discovery_settings_are_checked_at_load_time() {
    let with = |fetch: Value| {
        let mut config: Value = serde_json::from_str(&config(false)).unwrap();
        config["identity"]["issuers"][0]["jwks_fetch"] = fetch;
        Warden::from_json(&config.to_string())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let error =
        with(json!({"cluster": "idp", "path": "/jwks", "key_set_hosts": {"keys.example": "keys"}}))
            .unwrap_err();
    assert!(
        error.contains(
            "identity.issuers[0].jwks_fetch.key_set_hosts: only used with `discovery: true`"
        ),
        "{error}"
    );
    let error = with(json!({"cluster": "idp", "path": "/x", "discovery": true, "key_set_hosts": {"https://keys.example": "keys"}}))
        .unwrap_err();
    assert!(
        error.contains("`https://keys.example` is not a host or `host:port`"),
        "{error}"
    );
    let error = with(json!({"cluster": "idp", "path": "/x", "discovery": true, "key_set_hosts": {"keys.example": ""}}))
        .unwrap_err();
    assert!(
        error.contains("key_set_hosts.keys.example: the cluster must not be empty"),
        "{error}"
    );
    assert!(with(json!({"cluster": "idp", "path": "/x", "discovery": true, "key_set_hosts": {"KEYS.example:8443": "keys"}})).is_ok());
}

fn fetched(
    document: Document,
    outcome: Result<(), &'static str>,
    at_unix_seconds: u64,
) -> super::memory::Fetched {
    let issuer = match document {
        Document::RevocationList => None,
        _ => Some(DEMO_ISSUER.to_owned()),
    };
    super::memory::Fetched {
        document,
        issuer,
        outcome,
        at_unix_seconds,
    }
}

#[test]
fn every_fetch_step_is_reported_with_its_document_and_outcome() {
    let shared = shared();
    let mut a = Worker::start(&shared, false);
    a.tick_at(TEST_NOW);
    let token = a.call("/jwks");
    a.answer(token, Some("503"), b"");
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": []}"#);
    a.tick_at(TEST_NOW + MIN_INTERVAL);
    let token = a.call("/jwks");
    a.answer(token, Some("200"), &jwks());
    a.tick_at(TEST_NOW + POLL);
    let token = a.call("/revoked");
    a.answer(token, None, b"");
    assert_eq!(
        a.host.fetched,
        [
            fetched(Document::KeySet, Err("http_status"), TEST_NOW),
            fetched(Document::RevocationList, Ok(()), TEST_NOW),
            fetched(Document::KeySet, Ok(()), TEST_NOW + MIN_INTERVAL),
            fetched(
                Document::RevocationList,
                Err("no_response"),
                TEST_NOW + POLL
            ),
        ]
    );
    // A worker that applies another's copy fetched nothing itself.
    let mut b = Worker::start(&shared, false);
    b.tick_at(TEST_NOW + POLL);
    assert!(b.has_keys());
    assert!(b.host.fetched.is_empty(), "{:?}", b.host.fetched);
}

#[test]
fn a_refused_document_and_a_call_that_cannot_start_are_reported_as_failures() {
    let mut a = Worker::start(&shared(), false);
    a.tick_at(TEST_NOW);
    let token = a.call("/jwks");
    a.answer(token, Some("200"), b"{\"keys\": ");
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": 7}"#);
    a.host.refuse_calls = true;
    let mut stream = a.root.stream();
    assert!(matches!(
        fetch_at(
            &mut stream,
            &mut a.host,
            DEMO_ISSUER,
            millis(TEST_NOW + MIN_INTERVAL)
        ),
        KeyFetch::Unavailable(_)
    ));
    assert_eq!(
        a.host.fetched,
        [
            fetched(Document::KeySet, Err("invalid_json"), TEST_NOW),
            fetched(Document::RevocationList, Err("refused"), TEST_NOW),
            // Reported at the time the stream tried to fetch.
            fetched(
                Document::KeySet,
                Err("call_failed"),
                TEST_NOW + MIN_INTERVAL
            ),
        ]
    );
}

#[test]
fn discovery_is_reported_as_its_own_step() {
    let mut a = Worker::start(&shared(), true);
    a.tick_at(TEST_NOW);
    let token = a.call(DISCOVERY);
    a.answer(
        token,
        Some("200"),
        &discovery_doc("https://idp.example/keys"),
    );
    let token = a.call("/keys");
    a.answer(token, Some("200"), &jwks());
    let token = a.call("/revoked");
    a.answer(token, Some("200"), br#"{"jti": []}"#);
    // Rediscovery that names an unmapped host fails at the discovery step;
    // the key set in force stays.
    a.tick_at(TEST_NOW + DISCOVERY_REFRESH + REFRESH);
    let token = a.call(DISCOVERY);
    a.answer(
        token,
        Some("200"),
        &discovery_doc("https://elsewhere.example/keys"),
    );
    let later = TEST_NOW + DISCOVERY_REFRESH + REFRESH;
    let steps: Vec<_> = a
        .host
        .fetched
        .iter()
        .filter(|f| f.document != Document::RevocationList)
        .cloned()
        .collect();
    assert_eq!(
        steps,
        [
            fetched(Document::Discovery, Ok(()), TEST_NOW),
            fetched(Document::KeySet, Ok(()), TEST_NOW),
            fetched(Document::Discovery, Err("unmapped_host"), later),
        ]
    );
    assert!(a.has_keys());
}

#[test]
fn token_cache_lookups_are_reported_on_the_tick_as_deltas() {
    let mut a = loaded_worker(&shared());
    let issuer = DemoIssuer::new().unwrap();
    let one = issuer.token(TEST_NOW, json!({"jti": "one"})).unwrap();
    let two = issuer.token(TEST_NOW, json!({"jti": "two"})).unwrap();
    let verify = |a: &Worker, token: &str| {
        a.warden.verifier().verify(token, TEST_NOW).unwrap();
    };
    a.tick_at(TEST_NOW + 1);
    assert_eq!((a.host.cache_lookups, a.host.cache_reports), ((0, 0), 0));
    verify(&a, &one);
    verify(&a, &one);
    verify(&a, &one);
    verify(&a, &two);
    // Counted in the VM: nothing reported until the tick.
    assert_eq!(a.host.cache_reports, 0);
    a.tick_at(TEST_NOW + 2);
    assert_eq!((a.host.cache_lookups, a.host.cache_reports), ((2, 2), 1));
    // Nothing new: no report.
    a.tick_at(TEST_NOW + 3);
    assert_eq!(a.host.cache_reports, 1);
    verify(&a, &two);
    // A new configuration starts its own counts; the old one's last
    // lookups are reported before it goes.
    a.configure(false);
    assert_eq!((a.host.cache_lookups, a.host.cache_reports), ((3, 2), 2));
    verify(&a, &two);
    a.tick_at(TEST_NOW + 4);
    assert_eq!((a.host.cache_lookups, a.host.cache_reports), ((3, 3), 3));
}
