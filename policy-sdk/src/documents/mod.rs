//! Documents Warden keeps fresh through proxy HTTP calls: each fetched
//! issuer's key set (JWKS, optionally found by OpenID discovery) and the
//! polled revocation list.
//!
//! Every worker VM keeps its own compiled copy; proxy shared data carries
//! the latest good document between workers (`warden:doc:…`, applied when
//! its CAS changes) and a fetch stamp per document (`warden:fetched-at:…`)
//! that elects one fetcher per period and rate-limits fetches triggered by
//! unknown key ids. A document that fails to fetch or parse never replaces
//! the last good one.
//!
//! The root context drives a [`Refresher`] (configuration, timer, answers to
//! its fetches); each HTTP context a [`StreamDocuments`] (another worker's
//! fresh key set, or a key fetch, for an unknown key id). Both act through a
//! [`DocumentHost`].
//!
//! A request on the steady path reads nothing from shared data: the root
//! and HTTP contexts of a VM share one compiled configuration, and the
//! root's tick (every second) applies the copies other workers stored. A
//! document therefore reaches every worker within a second of the fetch
//! that brought it, and the worker that fetched it at once. Only a token
//! whose key id is unknown makes its stream look (and maybe fetch) then.

mod fetch;
mod host;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
mod source;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub use fetch::{ApplyError, FetchError, FetchFailure, MAX_DOCUMENT_BYTES};
pub use host::{Document, DocumentHost, OpsEvent, SharedDataError};
pub use source::{Kind, Source, Trigger, sources};

use fetch::{Fetch, Progress, claim, on_response, start, sync};

use crate::exchange::{KeyFetch, KeyProgress, LogLevel};
use crate::gate::Warden;

/// The CAS of each shared document this VM has applied, shared by the root
/// and HTTP contexts of one VM.
type Applied = Rc<RefCell<HashMap<String, u32>>>;

/// What the root context and its HTTP contexts share: the configuration,
/// its sources, and which shared copies this VM has applied.
#[derive(Debug, Clone, Default)]
struct Shared {
    warden: Option<Rc<Warden>>,
    sources: Rc<[Source]>,
    applied: Applied,
}

/// The root context's side: follows the configuration, fetches on a timer
/// (one worker per period), and handles the answers to its fetches.
#[derive(Debug, Default)]
pub struct Refresher {
    shared: Shared,
    /// Scheduled fetches under way, by call token.
    in_flight: HashMap<u32, Fetch>,
    /// The configuration's cache lookups already reported: (hits, misses).
    cache_reported: (u64, u64),
}

impl Refresher {
    /// `on_configure` with a new configuration: its sources replace the
    /// old ones, and fetches of the old configuration are forgotten. The
    /// new configuration starts without fetched documents: the copies in
    /// shared data are applied at once, rather than refusing tokens until
    /// the next fetch.
    pub fn configure(&mut self, host: &mut dyn DocumentHost, warden: Rc<Warden>) {
        // The lookups of the configuration being replaced are reported
        // now: its counters go with it.
        self.report_cache(host);
        self.cache_reported = (0, 0);
        self.shared.sources = sources(&warden).into();
        self.in_flight.clear();
        self.shared.applied.borrow_mut().clear();
        for source in self.shared.sources.iter() {
            sync(host, &warden, source, &self.shared.applied);
        }
        self.shared.warden = Some(warden);
    }

    /// Whether the configuration fetches anything.
    pub fn has_sources(&self) -> bool {
        !self.shared.sources.is_empty()
    }

    /// `on_tick`: reports the token cache lookups since the last tick,
    /// applies other workers' fresh copies, and starts each scheduled
    /// fetch that is due and not under way, if this worker wins the period.
    /// (The timer is needed by every configuration: the cache is reported
    /// on it.)
    pub fn tick(&mut self, host: &mut dyn DocumentHost) {
        self.report_cache(host);
        let Some(warden) = self.shared.warden.clone() else {
            return;
        };
        for source in self.shared.sources.iter() {
            sync(host, &warden, source, &self.shared.applied);
            if self
                .in_flight
                .values()
                .any(|f| f.source.kind == source.kind)
            {
                continue;
            }
            let interval = source.scheduled_interval(&warden);
            if !claim(host, source, Trigger::Scheduled, interval) {
                continue;
            }
            match start(host, source) {
                Ok((token, fetch)) => {
                    self.in_flight.insert(token, fetch);
                }
                Err(error) => host.log(
                    LogLevel::Warn,
                    &format!("warden: fetch of {} failed: {error}", source.label()),
                ),
            }
        }
    }

    /// `on_http_call_response` in the root context: the answer to a
    /// scheduled fetch. Answers to calls it did not start are ignored.
    pub fn on_http_call_response(
        &mut self,
        host: &mut dyn DocumentHost,
        token: u32,
        body_size: usize,
    ) {
        let (Some(fetch), Some(warden)) =
            (self.in_flight.remove(&token), self.shared.warden.clone())
        else {
            return;
        };
        match on_response(host, &warden, fetch, body_size, &self.shared.applied) {
            Progress::Next(token, fetch) => {
                self.in_flight.insert(token, fetch);
            }
            Progress::Loaded(summary) => {
                host.log(LogLevel::Info, &format!("warden: loaded {summary}"));
            }
            Progress::Failed(failure) => {
                host.log(LogLevel::Warn, &format!("warden: fetch failed: {failure}"));
            }
        }
    }

    /// Reports the cache lookups of the configuration in force since the
    /// last report, if there were any.
    fn report_cache(&mut self, host: &mut dyn DocumentHost) {
        let Some(warden) = &self.shared.warden else {
            return;
        };
        let stats = warden.verifier().cache_stats();
        let (hits, misses) = self.cache_reported;
        let event = OpsEvent::TokenCache {
            hits: stats.hits.saturating_sub(hits),
            misses: stats.misses.saturating_sub(misses),
        };
        self.cache_reported = (stats.hits, stats.misses);
        if event != (OpsEvent::TokenCache { hits: 0, misses: 0 }) {
            host.report(&event);
        }
    }

    /// Scheduled fetches under way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What an HTTP context created now needs.
    pub fn stream(&self) -> StreamDocuments {
        StreamDocuments {
            shared: self.shared.clone(),
            fetches: HashMap::new(),
        }
    }
}

/// One HTTP context's side, used only for a token whose key id is unknown:
/// another worker's fresh key set, and the key fetch the token may start
/// (within the shared rate limit). Without a configuration it does nothing.
#[derive(Debug, Default)]
pub struct StreamDocuments {
    shared: Shared,
    /// Key fetches this stream started, by call token.
    fetches: HashMap<u32, Fetch>,
}

impl StreamDocuments {
    /// Applies another worker's fresh copy of `issuer`'s key set, if any.
    pub fn sync_keys(&self, host: &mut dyn DocumentHost, issuer: &str) {
        if let (Some(warden), Some(source)) = (&self.shared.warden, self.source_for(issuer)) {
            sync(host, warden, source, &self.shared.applied);
        }
    }

    /// Starts fetching `issuer`'s key set, unless another fetch for an
    /// unknown key id started (in any worker) less than the source's
    /// minimum interval ago, to the millisecond: this is the limit on what
    /// a flood of forged key ids can make Warden ask of the provider. The
    /// time is the host's clock now, not the request's arrival: the stamp
    /// is when this fetch starts.
    pub fn start_key_fetch(&mut self, host: &mut dyn DocumentHost, issuer: &str) -> KeyFetch {
        let Some(source) = self.source_for(issuer).cloned() else {
            return KeyFetch::Unavailable(String::new());
        };
        let interval = source.min_interval_seconds;
        if !claim(host, &source, Trigger::UnknownKey, interval) {
            return KeyFetch::Unavailable(String::new());
        }
        match start(host, &source) {
            Ok((token, fetch)) => {
                self.fetches.insert(token, fetch);
                KeyFetch::Started(token)
            }
            Err(error) => {
                KeyFetch::Unavailable(format!("fetch of {} failed: {error}", source.label()))
            }
        }
    }

    /// Handles the answer to the key fetch `token`.
    pub fn key_fetch_response(
        &mut self,
        host: &mut dyn DocumentHost,
        token: u32,
        body_size: usize,
    ) -> KeyProgress {
        let (Some(fetch), Some(warden)) = (self.fetches.remove(&token), self.shared.warden.clone())
        else {
            return KeyProgress::Failed("an answer to a fetch this stream did not start".into());
        };
        match on_response(host, &warden, fetch, body_size, &self.shared.applied) {
            Progress::Next(token, fetch) => {
                self.fetches.insert(token, fetch);
                KeyProgress::Pending(token)
            }
            Progress::Loaded(summary) => KeyProgress::Loaded(summary),
            Progress::Failed(failure) => KeyProgress::Failed(failure.to_string()),
        }
    }

    fn source_for(&self, issuer: &str) -> Option<&Source> {
        self.shared.sources.iter().find(|s| s.is_keys_of(issuer))
    }
}
