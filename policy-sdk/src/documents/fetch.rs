//! The steps of keeping one document fresh: applying the shared copy,
//! claiming a fetch across workers, starting it, and handling its answer.

use serde_json::Value;

use super::Applied;
use super::host::{Document, DocumentHost, OpsEvent};
use super::source::{Kind, Source, Trigger};
use crate::exchange::{HostError, LogLevel};
use crate::gate::Warden;
use crate::json::{JsonError, JsonLimits, parse_strict};

/// Largest fetched document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

const LIMITS: JsonLimits = JsonLimits {
    max_bytes: MAX_DOCUMENT_BYTES,
    max_depth: 16,
};

/// Why a document was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The verifier refused it (no usable key, wrong shape).
    #[error("{0}")]
    Refused(String),
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("cannot call cluster `{cluster}`: {status}")]
    Call { cluster: String, status: String },
    /// The call ended without an answer (timeout, reset, no cluster).
    #[error("no response")]
    NoResponse,
    #[error("HTTP {0}")]
    Status(String),
    #[error("document of {size} bytes is too large")]
    TooLarge { size: usize },
    #[error("cannot read the body: {0}")]
    Body(String),
    #[error("discovery document has no usable `jwks_uri`")]
    NoJwksUri,
    /// OpenID Connect Discovery §4.3: the document must name the very
    /// issuer it was fetched for.
    #[error("discovery document names issuer `{found}`, not `{expected}`")]
    IssuerMismatch { expected: String, found: String },
    #[error("`jwks_uri` `{0}` is not an absolute http(s) URL")]
    BadJwksUri(String),
    #[error(
        "`jwks_uri` host `{host}` maps to no cluster: add `{host}: <cluster>` to `jwks_fetch.key_set_hosts` (and give that cluster to the proxy)"
    )]
    UnmappedHost { host: String },
    #[error("refused, keeping the last good copy: {0}")]
    Refused(ApplyError),
}

impl FetchError {
    /// The kind of failure, for counting (the `class` label): one word per
    /// variant, no detail.
    pub fn class(&self) -> &'static str {
        match self {
            FetchError::Call { .. } => "call_failed",
            FetchError::NoResponse => "no_response",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Body(_) => "body_unreadable",
            FetchError::NoJwksUri => "no_jwks_uri",
            FetchError::IssuerMismatch { .. } => "issuer_mismatch",
            FetchError::BadJwksUri(_) => "bad_jwks_uri",
            FetchError::UnmappedHost { .. } => "unmapped_host",
            FetchError::Refused(ApplyError::Json(_)) => "invalid_json",
            FetchError::Refused(ApplyError::Refused(_)) => "refused",
        }
    }

    fn call(cluster: &str, error: HostError) -> Self {
        Self::Call {
            cluster: cluster.to_owned(),
            status: error.status,
        }
    }
}

/// A failed fetch, and of which document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{document}: {error}")]
pub struct FetchFailure {
    /// The document's label (`keys of `…``).
    pub document: String,
    pub error: FetchError,
}

/// Parses `bytes` and installs them as `source`'s document; a summary for
/// the log.
fn apply(warden: &Warden, source: &Source, bytes: &[u8]) -> Result<String, ApplyError> {
    let document = parse_strict(bytes, LIMITS)?;
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
    .map_err(ApplyError::Refused)
}

/// Applies the shared copy of `source`'s document if another worker (or
/// this one) stored one this VM has not applied. A copy that does not
/// apply is logged and not tried again; the last good document stays.
pub(crate) fn sync(
    host: &mut dyn DocumentHost,
    warden: &Warden,
    source: &Source,
    applied: &Applied,
) {
    let key = source.document_key();
    let Ok(Some((bytes, cas))) = host.shared_data(key) else {
        return;
    };
    if applied.borrow().get(key) == Some(&cas) {
        return;
    }
    if let Err(error) = apply(warden, source, &bytes) {
        host.log(
            LogLevel::Warn,
            &format!("warden: shared {}: {error}", source.label()),
        );
    }
    applied.borrow_mut().insert(key.to_owned(), cas);
}

/// How much earlier than its period a scheduled fetch may start. The root
/// context's timer fires every second, and a tick a few milliseconds early
/// would otherwise wait for the next one (a one-second period would then
/// often take two). Fetches for unknown key ids get no slack: their limit
/// is exact.
const SCHEDULE_SLACK_MILLIS: u64 = 200;

/// Claims the right to fetch `source` now (the host's clock), across
/// workers: true when the last fetch for this trigger started at least
/// `interval_seconds` ago, less [`SCHEDULE_SLACK_MILLIS`] for a scheduled
/// one (or none is recorded), and this worker's stamp won. Stamps are Unix
/// milliseconds: with whole seconds, both instants rounded down, a minimum
/// of N seconds let a second fetch through after just over N − 1.
pub(crate) fn claim(
    host: &mut dyn DocumentHost,
    source: &Source,
    trigger: Trigger,
    interval_seconds: u64,
) -> bool {
    let slack_millis = match trigger {
        Trigger::Scheduled => SCHEDULE_SLACK_MILLIS,
        Trigger::UnknownKey => 0,
    };
    let gap_millis = interval_seconds
        .saturating_mul(1000)
        .saturating_sub(slack_millis);
    let now_millis = host.now_unix_millis();
    let key = source.stamp_key(trigger);
    let (last, cas) = match host.shared_data(key) {
        Ok(Some((bytes, cas))) => (
            String::from_utf8(bytes)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0),
            Some(cas),
        ),
        Ok(None) => (0, None),
        Err(_) => return false,
    };
    if now_millis.saturating_sub(last) < gap_millis && last != 0 {
        return false;
    }
    host.set_shared_data(key, now_millis.to_string().as_bytes(), cas)
        .is_ok()
}

/// Where a document is requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    pub cluster: String,
    pub authority: String,
    /// Path and query.
    pub path: String,
}

impl Location {
    fn of(source: &Source) -> Self {
        Self {
            cluster: source.cluster.clone(),
            authority: source.authority.clone(),
            path: source.path.clone(),
        }
    }
}

/// One fetch in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub source: Source,
    /// The answer is the discovery document, not the document itself.
    discovering: bool,
    /// The key set is fetched from a location discovered earlier: if that
    /// fails, the next fetch discovers again rather than wait out the
    /// discovery interval.
    from_remembered: bool,
}

impl Fetch {
    /// The document this step fetches.
    fn document(&self) -> Document {
        match (&self.source.kind, self.discovering) {
            (Kind::Keys { .. }, true) => Document::Discovery,
            (Kind::Keys { .. }, false) => Document::KeySet,
            (Kind::Revocations, _) => Document::RevocationList,
        }
    }

    /// Counts how this step ended.
    fn report(&self, host: &mut dyn DocumentHost, outcome: Result<(), &FetchError>) {
        let issuer = match &self.source.kind {
            Kind::Keys { issuer } => Some(issuer.as_str()),
            Kind::Revocations => None,
        };
        let at_unix_seconds = host.now_unix_seconds();
        host.report(&OpsEvent::Fetched {
            document: self.document(),
            issuer,
            outcome,
            at_unix_seconds,
        });
    }
}

fn dispatch(
    host: &mut dyn DocumentHost,
    source: &Source,
    at: &Location,
) -> Result<u32, FetchError> {
    host.http_call(
        &at.cluster,
        &[
            (":method", "GET"),
            (":path", &at.path),
            (":authority", &at.authority),
            ("accept", "application/json"),
        ],
        source.timeout,
    )
    .map_err(|error| FetchError::call(&at.cluster, error))
}

/// Starts fetching `source`; returns the call token to wait for. With
/// discovery, the key set is fetched directly while the location found by
/// the last discovery (by any worker) is younger than the discovery
/// interval.
pub(crate) fn start(
    host: &mut dyn DocumentHost,
    source: &Source,
) -> Result<(u32, Fetch), FetchError> {
    let found = if source.discovery {
        remembered(host, source)
    } else {
        None
    };
    let (at, fetch) = match found {
        Some(at) => (
            at,
            Fetch {
                source: source.clone(),
                discovering: false,
                from_remembered: true,
            },
        ),
        None => (
            Location::of(source),
            Fetch {
                source: source.clone(),
                discovering: source.discovery,
                from_remembered: false,
            },
        ),
    };
    match dispatch(host, source, &at) {
        Ok(token) => Ok((token, fetch)),
        Err(error) => {
            fetch.report(host, Err(&error));
            Err(error)
        }
    }
}

/// What discovery leaves in shared data: the `jwks_uri`, when it was read,
/// and from where (a changed configuration discovers again).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Discovered {
    jwks_uri: String,
    at: u64,
    from: String,
}

fn discovery_origin(source: &Source) -> String {
    format!("{} {} {}", source.cluster, source.authority, source.path)
}

/// The key-set location of the last discovery, if it is recent, was made
/// for this source, and still maps to a cluster.
fn remembered(host: &mut dyn DocumentHost, source: &Source) -> Option<Location> {
    let (bytes, _) = host.shared_data(source.discovered_key()).ok()??;
    let found: Discovered = serde_json::from_slice(&bytes).ok()?;
    let now = host.now_unix_seconds();
    let fresh = now >= found.at && now - found.at < source.discovery_refresh_seconds;
    if !fresh || found.from != discovery_origin(source) {
        return None;
    }
    key_set_location(source, &found.jwks_uri).ok()
}

fn remember(host: &mut dyn DocumentHost, source: &Source, jwks_uri: &str) {
    let found = Discovered {
        jwks_uri: jwks_uri.to_owned(),
        at: host.now_unix_seconds(),
        from: discovery_origin(source),
    };
    if let Ok(bytes) = serde_json::to_vec(&found) {
        // Best effort: without it, the next fetch discovers again.
        let _ = host.set_shared_data(source.discovered_key(), &bytes, None);
    }
}

fn forget(host: &mut dyn DocumentHost, source: &Source) {
    let _ = host.set_shared_data(source.discovered_key(), b"", None);
}

/// Where the key set named by `jwks_uri` is fetched: the cluster its host
/// maps to, with the URL's authority, path and query.
pub(crate) fn key_set_location(source: &Source, jwks_uri: &str) -> Result<Location, FetchError> {
    let bad = || FetchError::BadJwksUri(jwks_uri.to_owned());
    let (scheme, rest) = jwks_uri.split_once("://").ok_or_else(bad)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return Err(bad()),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| c == '@' || c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority
        .strip_suffix(default_port)
        .unwrap_or(&authority)
        .to_owned();
    let tail = tail.split('#').next().unwrap_or_default();
    let path = match tail.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{tail}"),
        Some(_) => tail.to_owned(),
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let cluster = source
        .cluster_for(&authority)
        .ok_or_else(|| FetchError::UnmappedHost {
            host: authority.clone(),
        })?
        .to_owned();
    Ok(Location {
        cluster,
        authority,
        path,
    })
}

/// What an answer meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Another call is needed (discovery found the key set's path).
    Next(u32, Fetch),
    /// Applied and shared; a summary for the log.
    Loaded(String),
    Failed(FetchFailure),
}

/// Handles the answer to a fetch call (inside `on_http_call_response`).
/// A good document is applied and stored in shared data for the other
/// workers; anything else leaves the last good copy in place.
pub(crate) fn on_response(
    host: &mut dyn DocumentHost,
    warden: &Warden,
    fetch: Fetch,
    body_size: usize,
    applied: &Applied,
) -> Progress {
    let answered = answer(host, warden, &fetch, body_size, applied);
    fetch.report(host, answered.as_ref().map(|_| ()));
    match answered {
        Ok(Answer::Discovered(at)) => {
            let next = Fetch {
                discovering: false,
                ..fetch
            };
            match dispatch(host, &next.source, &at) {
                Ok(token) => Progress::Next(token, next),
                Err(error) => {
                    next.report(host, Err(&error));
                    fail(&next, error)
                }
            }
        }
        Ok(Answer::Loaded(summary)) => {
            Progress::Loaded(format!("{}: {summary}", fetch.source.label()))
        }
        Err(error) => {
            if fetch.from_remembered {
                forget(host, &fetch.source);
            }
            fail(&fetch, error)
        }
    }
}

fn fail(fetch: &Fetch, error: FetchError) -> Progress {
    Progress::Failed(FetchFailure {
        document: fetch.source.label(),
        error,
    })
}

enum Answer {
    /// The discovery document named this location for the key set.
    Discovered(Location),
    Loaded(String),
}

fn answer(
    host: &mut dyn DocumentHost,
    warden: &Warden,
    fetch: &Fetch,
    body_size: usize,
    applied: &Applied,
) -> Result<Answer, FetchError> {
    let status = host
        .http_call_response_header(":status")
        .ok()
        .flatten()
        .unwrap_or_default();
    if status.is_empty() {
        return Err(FetchError::NoResponse);
    }
    if status != "200" {
        return Err(FetchError::Status(status));
    }
    if body_size > MAX_DOCUMENT_BYTES {
        return Err(FetchError::TooLarge { size: body_size });
    }
    let body = host
        .http_call_response_body(body_size)
        .map_err(|error| FetchError::Body(error.status))?;
    if fetch.discovering {
        return discovered(host, &fetch.source, &body).map(Answer::Discovered);
    }
    let summary = apply(warden, &fetch.source, &body).map_err(FetchError::Refused)?;
    let key = fetch.source.document_key();
    if host.set_shared_data(key, &body, None).is_ok()
        && let Ok(Some((_, cas))) = host.shared_data(key)
    {
        // This VM has it already: its own copy needs no second apply.
        applied.borrow_mut().insert(key.to_owned(), cas);
    }
    Ok(Answer::Loaded(summary))
}

/// Reads a discovery document: its `issuer` must be the configured one,
/// and its `jwks_uri` must map to a cluster. The location is remembered
/// for the other workers and later fetches.
fn discovered(
    host: &mut dyn DocumentHost,
    source: &Source,
    body: &[u8],
) -> Result<Location, FetchError> {
    let document = parse_strict(body, LIMITS).map_err(|_| FetchError::NoJwksUri)?;
    if let Kind::Keys { issuer } = &source.kind {
        let found = document.get("issuer").and_then(Value::as_str);
        if found != Some(issuer.as_str()) {
            return Err(FetchError::IssuerMismatch {
                expected: issuer.clone(),
                found: found.unwrap_or("(none)").to_owned(),
            });
        }
    }
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(FetchError::NoJwksUri)?;
    let at = key_set_location(source, jwks_uri)?;
    remember(host, source, jwks_uri);
    Ok(at)
}
