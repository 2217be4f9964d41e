//! The steps of keeping one document fresh: applying the shared copy,
//! claiming a fetch across workers, starting it, and handling its answer.

use serde_json::Value;

use super::Applied;
use super::host::DocumentHost;
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
    #[error("refused, keeping the last good copy: {0}")]
    Refused(ApplyError),
}

impl FetchError {
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

/// Claims the right to fetch `source` now, across workers: true when the
/// last fetch for this trigger is at least `interval` seconds old (or none
/// is recorded) and this worker's stamp won.
pub(crate) fn claim(
    host: &mut dyn DocumentHost,
    source: &Source,
    trigger: Trigger,
    now: u64,
    interval: u64,
) -> bool {
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
    if now.saturating_sub(last) < interval && last != 0 {
        return false;
    }
    host.set_shared_data(key, now.to_string().as_bytes(), cas)
        .is_ok()
}

/// One fetch in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub source: Source,
    /// The answer is the discovery document, not the document itself.
    discovering: bool,
}

fn dispatch(host: &mut dyn DocumentHost, source: &Source, path: &str) -> Result<u32, FetchError> {
    host.http_call(
        &source.cluster,
        &[
            (":method", "GET"),
            (":path", path),
            (":authority", &source.authority),
            ("accept", "application/json"),
        ],
        source.timeout,
    )
    .map_err(|error| FetchError::call(&source.cluster, error))
}

/// Starts fetching `source`; returns the call token to wait for.
pub(crate) fn start(
    host: &mut dyn DocumentHost,
    source: &Source,
) -> Result<(u32, Fetch), FetchError> {
    let token = dispatch(host, source, &source.path)?;
    Ok((
        token,
        Fetch {
            source: source.clone(),
            discovering: source.discovery,
        },
    ))
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
    match answer(host, warden, &fetch, body_size, applied) {
        Ok(Answer::Discovered(path)) => match dispatch(host, &fetch.source, &path) {
            Ok(token) => Progress::Next(
                token,
                Fetch {
                    discovering: false,
                    ..fetch
                },
            ),
            Err(error) => fail(&fetch, error),
        },
        Ok(Answer::Loaded(summary)) => {
            Progress::Loaded(format!("{}: {summary}", fetch.source.label()))
        }
        Err(error) => fail(&fetch, error),
    }
}

fn fail(fetch: &Fetch, error: FetchError) -> Progress {
    Progress::Failed(FetchFailure {
        document: fetch.source.label(),
        error,
    })
}

enum Answer {
    /// The discovery document named this path for the key set.
    Discovered(String),
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
        return parse_strict(&body, LIMITS)
            .ok()
            .and_then(|d| d.get("jwks_uri").and_then(Value::as_str).map(path_of))
            .map(Answer::Discovered)
            .ok_or(FetchError::NoJwksUri);
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

/// The path (and query) of a URL; the cluster decides the host.
pub(crate) fn path_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme.get(i..).unwrap_or("/").to_owned(),
        None => "/".to_owned(),
    }
}
