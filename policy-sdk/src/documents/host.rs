//! What document fetching needs from the proxy: shared data with its CAS,
//! HTTP calls to a cluster, the clock and the log. The filter implements it
//! with proxy-wasm hostcalls; tests implement it in memory.

use std::time::Duration;

use super::fetch::FetchError;
use crate::exchange::{HostError, LogLevel};

/// Which fetched document an [`OpsEvent`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// An issuer's key set (JWKS).
    KeySet,
    /// An issuer's OpenID configuration: the step that finds its key set.
    Discovery,
    /// The polled revocation list.
    RevocationList,
}

impl Document {
    /// The name operators see (the `document` label).
    pub fn as_str(self) -> &'static str {
        match self {
            Document::KeySet => "key_set",
            Document::Discovery => "discovery",
            Document::RevocationList => "revocation_list",
        }
    }
}

/// What operators count about the documents and the verifier, reported by
/// the core to its host (which turns each into metrics). None of them
/// changes a decision: a host may drop them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsEvent<'a> {
    /// One fetch step ended: its answer was applied (for discovery: it
    /// named a key set to fetch next), or it failed (the last good copy
    /// stays).
    Fetched {
        document: Document,
        /// The issuer of a key set or discovery document.
        issuer: Option<&'a str>,
        outcome: Result<(), &'a FetchError>,
        /// When the answer arrived (or the call failed to start), in this
        /// worker's clock.
        at_unix_seconds: u64,
    },
    /// Lookups in this worker's token verification cache since the last
    /// report. Counted in the VM and reported on the root context's timer,
    /// so a request pays no hostcall for them.
    TokenCache { hits: u64, misses: u64 },
}

/// Why a shared-data value was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedDataError {
    /// Another writer stored the key since it was read.
    #[error("shared data changed since it was read")]
    CasMismatch,
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The host side of document fetching, as one worker VM sees it.
///
/// Shared data is shared by every worker of the proxy; everything else
/// belongs to the calling context.
pub trait DocumentHost {
    /// The proxy's clock, in milliseconds since the Unix epoch (fetch
    /// stamps are kept in milliseconds).
    fn now_unix_millis(&self) -> u64;
    /// The proxy's clock, in whole seconds since the Unix epoch.
    fn now_unix_seconds(&self) -> u64 {
        self.now_unix_millis() / 1000
    }
    /// A shared-data value and its CAS (its version); `None` when absent.
    fn shared_data(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError>;
    /// Stores `value` under `key` if its CAS is still `cas`; `None` stores
    /// unconditionally. As in Envoy, a CAS does not guard an absent key.
    fn set_shared_data(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError>;
    /// Dispatches a body-less HTTP call to `cluster`; its answer arrives in
    /// the calling context's `on_http_call_response` with the returned
    /// token.
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, HostError>;
    /// One header of the HTTP-call answer being handled.
    fn http_call_response_header(&mut self, name: &str) -> Result<Option<String>, HostError>;
    /// The body of the HTTP-call answer being handled (`size` bytes).
    fn http_call_response_body(&mut self, size: usize) -> Result<Vec<u8>, HostError>;
    fn log(&mut self, level: LogLevel, message: &str);
    /// Counts an operational event (metrics); never fails.
    fn report(&mut self, event: &OpsEvent<'_>);
}
