//! Documents the filter keeps fresh through proxy HTTP calls: each fetched
//! issuer's key set (JWKS, optionally found by OpenID discovery) and the
//! polled revocation list.
//!
//! Every worker VM keeps its own compiled copy; proxy shared data carries the
//! latest good document between workers (`warden:doc:…`, applied when its CAS
//! changes) and a fetch stamp per document (`warden:fetched-at:…`) that
//! elects one fetcher per period and rate-limits fetches triggered by unknown
//! key ids. A document that fails to fetch or parse never replaces the last
//! good one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use policy_sdk::Warden;
use policy_sdk::json::{JsonLimits, parse_strict};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};
use serde_json::Value;

/// Largest fetched document accepted.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Keys { issuer: String },
    Revocations,
}

/// One document and where it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub kind: Kind,
    cluster: String,
    authority: String,
    path: String,
    discovery: bool,
    /// Seconds between scheduled fetches.
    pub refresh_seconds: u64,
    /// Seconds between fetches triggered on demand (unknown key ids), and
    /// between scheduled attempts while nothing has loaded yet.
    pub min_interval_seconds: u64,
    timeout: Duration,
}

impl Source {
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Keys { issuer } => format!("keys of `{issuer}`"),
            Kind::Revocations => "revocation list".to_owned(),
        }
    }

    fn id(&self) -> String {
        match &self.kind {
            Kind::Keys { issuer } => format!("keys:{issuer}"),
            Kind::Revocations => "revocations".to_owned(),
        }
    }

    fn document_key(&self) -> String {
        format!("warden:doc:{}", self.id())
    }

    fn stamp_key(&self, trigger: Trigger) -> String {
        let trigger = match trigger {
            Trigger::Scheduled => "scheduled",
            Trigger::UnknownKey => "unknown-key",
        };
        format!("warden:fetched-at:{trigger}:{}", self.id())
    }

    fn loaded(&self, warden: &Warden) -> bool {
        match &self.kind {
            Kind::Keys { issuer } => warden.verifier().has_keys(issuer),
            Kind::Revocations => true,
        }
    }
}

/// The fetched documents of a configuration.
pub(crate) fn sources(warden: &Warden) -> Vec<Source> {
    let verifier = warden.verifier();
    let mut out: Vec<Source> = verifier
        .remote_key_sources()
        .into_iter()
        .map(|(issuer, r)| Source {
            kind: Kind::Keys {
                issuer: issuer.to_owned(),
            },
            cluster: r.cluster.clone(),
            authority: r.authority.clone().unwrap_or_else(|| r.cluster.clone()),
            path: r.path.clone(),
            discovery: r.discovery,
            refresh_seconds: r.refresh_seconds.max(1),
            min_interval_seconds: r.min_refresh_interval_seconds.max(1),
            timeout: Duration::from_millis(r.timeout_ms),
        })
        .collect();
    if let Some(r) = verifier.revocation_source() {
        out.push(Source {
            kind: Kind::Revocations,
            cluster: r.cluster.clone(),
            authority: r.authority.clone().unwrap_or_else(|| r.cluster.clone()),
            path: r.path.clone(),
            discovery: false,
            refresh_seconds: r.refresh_seconds.max(1),
            min_interval_seconds: r.refresh_seconds.max(1),
            timeout: Duration::from_millis(r.timeout_ms),
        });
    }
    out
}

/// The CAS of each shared document this VM has applied, shared by the root
/// and HTTP contexts of one VM.
pub(crate) type Applied = Rc<RefCell<HashMap<String, u32>>>;

/// Applies the shared copy of `source`'s document if another worker (or
/// this one) stored a newer one.
pub(crate) fn sync(warden: &Warden, source: &Source, applied: &Applied) {
    let key = source.document_key();
    let Ok((Some(bytes), Some(cas))) = hostcalls::get_shared_data(&key) else {
        return;
    };
    if applied.borrow().get(&key) == Some(&cas) {
        return;
    }
    match apply(warden, source, &bytes) {
        Ok(_) => {}
        Err(e) => crate::log(
            proxy_wasm::types::LogLevel::Warn,
            &format!("warden: shared {}: {e}", source.label()),
        ),
    }
    applied.borrow_mut().insert(key, cas);
}

fn apply(warden: &Warden, source: &Source, bytes: &[u8]) -> Result<String, String> {
    let document = parse_strict(
        bytes,
        JsonLimits {
            max_bytes: MAX_DOCUMENT_BYTES,
            max_depth: 16,
        },
    )
    .map_err(|e| e.to_string())?;
    match &source.kind {
        Kind::Keys { issuer } => warden
            .verifier()
            .update_keys(issuer, &document)
            .map(|n| format!("{n} keys")),
        Kind::Revocations => warden
            .verifier()
            .update_revocations(&document)
            .map(|n| format!("{n} entries")),
    }
}

/// Why a fetch starts. Each trigger has its own stamp, so scheduled
/// refreshes never use up the allowance for unknown key ids (a rotation is
/// then followed at once) and a flood of unknown key ids never delays the
/// schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    Scheduled,
    UnknownKey,
}

/// Claims the right to fetch `source` now, across workers: true when the
/// last fetch for this trigger is at least `interval` seconds old and this
/// worker's stamp won.
pub(crate) fn claim(source: &Source, trigger: Trigger, now: u64, interval: u64) -> bool {
    let key = source.stamp_key(trigger);
    let (last, cas) = match hostcalls::get_shared_data(&key) {
        Ok((bytes, cas)) => (
            bytes
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0),
            cas,
        ),
        Err(_) => return false,
    };
    if now.saturating_sub(last) < interval && last != 0 {
        return false;
    }
    hostcalls::set_shared_data(&key, Some(now.to_string().as_bytes()), cas).is_ok()
}

/// Whether a scheduled fetch of `source` is due.
pub(crate) fn interval_for(warden: &Warden, source: &Source) -> u64 {
    if source.loaded(warden) {
        source.refresh_seconds
    } else {
        source.min_interval_seconds
    }
}

/// One fetch in flight.
#[derive(Debug, Clone)]
pub(crate) struct Fetch {
    pub source: Source,
    discovering: bool,
}

fn dispatch(source: &Source, path: &str) -> Result<u32, Status> {
    hostcalls::dispatch_http_call(
        &source.cluster,
        vec![
            (":method", "GET"),
            (":path", path),
            (":authority", &source.authority),
            ("accept", "application/json"),
        ],
        None,
        vec![],
        source.timeout,
    )
}

/// Starts fetching `source`; returns the call token to wait for.
pub(crate) fn start(source: &Source) -> Result<(u32, Fetch), String> {
    let token = dispatch(source, &source.path)
        .map_err(|s| format!("cannot call cluster `{}`: {s:?}", source.cluster))?;
    Ok((
        token,
        Fetch {
            source: source.clone(),
            discovering: source.discovery,
        },
    ))
}

/// What a response meant.
pub(crate) enum Progress {
    /// Another call is needed (discovery found the key set's path).
    Next(u32, Fetch),
    /// Applied and shared; a summary for the log.
    Loaded(String),
    Failed(String),
}

/// Handles the response to a fetch call (inside `on_http_call_response`).
pub(crate) fn on_response(
    warden: &Warden,
    fetch: Fetch,
    body_size: usize,
    applied: &Applied,
) -> Progress {
    let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .unwrap_or_default();
    if status != "200" {
        let status = if status.is_empty() {
            "no response".to_owned()
        } else {
            format!("HTTP {status}")
        };
        return Progress::Failed(format!("{}: {status}", fetch.source.label()));
    }
    if body_size > MAX_DOCUMENT_BYTES {
        return Progress::Failed(format!(
            "{}: document of {body_size} bytes is too large",
            fetch.source.label()
        ));
    }
    let body = match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
        Ok(body) => body.unwrap_or_default(),
        Err(s) => {
            return Progress::Failed(format!(
                "{}: cannot read the body: {s:?}",
                fetch.source.label()
            ));
        }
    };
    if fetch.discovering {
        let path = parse_strict(
            &body,
            JsonLimits {
                max_bytes: MAX_DOCUMENT_BYTES,
                max_depth: 16,
            },
        )
        .ok()
        .and_then(|d| d.get("jwks_uri").and_then(Value::as_str).map(path_of));
        let Some(path) = path else {
            return Progress::Failed(format!(
                "{}: discovery document has no usable `jwks_uri`",
                fetch.source.label()
            ));
        };
        return match dispatch(&fetch.source, &path) {
            Ok(token) => Progress::Next(
                token,
                Fetch {
                    discovering: false,
                    ..fetch
                },
            ),
            Err(s) => Progress::Failed(format!(
                "{}: cannot call cluster: {s:?}",
                fetch.source.label()
            )),
        };
    }
    match apply(warden, &fetch.source, &body) {
        Ok(summary) => {
            let key = fetch.source.document_key();
            if hostcalls::set_shared_data(&key, Some(&body), None).is_ok()
                && let Ok((_, Some(cas))) = hostcalls::get_shared_data(&key)
            {
                applied.borrow_mut().insert(key, cas);
            }
            Progress::Loaded(format!("{}: {summary}", fetch.source.label()))
        }
        Err(e) => Progress::Failed(format!(
            "{}: refused, keeping the last good copy: {e}",
            fetch.source.label()
        )),
    }
}

/// The path (and query) of a URL; the cluster decides the host.
fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme.get(i..).unwrap_or("/").to_owned(),
        None => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn paths_of_discovered_urls() {
        assert_eq!(
            path_of("https://idp.example/oauth/jwks?v=2"),
            "/oauth/jwks?v=2"
        );
        assert_eq!(path_of("https://idp.example"), "/");
        assert_eq!(path_of("/keys"), "/keys");
    }
}
