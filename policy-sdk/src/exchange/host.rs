//! What the request lifecycle needs from the proxy: a small trait over the
//! proxy-wasm hostcalls of one HTTP stream. The filter implements it with
//! hostcalls; tests and native runners implement it in memory.

use crate::audit::AuditRecord;
use crate::gate::Reply;

/// What the host does with the data of the callback that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let what the callback delivered (and anything held before it) go on.
    Continue,
    /// Hold it: headers stay, body chunks are buffered by the host.
    Pause,
}

/// Log severity of a message to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Which counter an audit record moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// A decision about a request: counted by decision and actor type.
    Decision,
    /// The outcome of filtering a list response (its request was counted).
    ListFilter,
}

/// A hostcall that failed: which one, and the status the host gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {status}")]
pub struct HostError {
    /// What Warden asked of the host (`reading the request body`).
    pub operation: &'static str,
    /// The host's status, as text (for an unreadable answer: what in it
    /// could not be read).
    pub status: String,
    /// The host answered, with data Warden does not read: a header value
    /// that is not UTF-8. The message is at fault, not the host; a request
    /// so sent is refused as malformed (400), never read by guessing (a
    /// server behind could read the same bytes otherwise).
    pub unreadable: bool,
}

impl HostError {
    pub fn new(operation: &'static str, status: impl std::fmt::Debug) -> Self {
        Self {
            operation,
            status: format!("{status:?}"),
            unreadable: false,
        }
    }

    /// The host's answer to `operation` held something Warden does not
    /// read; `what` says which part.
    pub fn unreadable(operation: &'static str, what: impl Into<String>) -> Self {
        Self {
            operation,
            status: what.into(),
            unreadable: true,
        }
    }
}

/// The answer to "fetch this issuer's key set".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFetch {
    /// A fetch is under way; its answer arrives as an HTTP-call response
    /// with this token.
    Started(u32),
    /// Not now (no source, rate-limited, the call could not start).
    Unavailable(String),
}

/// What the answer to a key-set fetch brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProgress {
    /// A second call is needed (discovery, then the key set).
    Pending(u32),
    /// The key set is applied; the summary is for the log.
    Loaded(String),
    /// Nothing usable arrived.
    Failed(String),
}

/// The host side of one HTTP stream, as the lifecycle sees it.
///
/// Every method maps to one or two proxy-wasm hostcalls. Errors are
/// reported, never swallowed: the lifecycle fails closed on each.
pub trait StreamHost {
    /// The proxy's clock.
    fn now_unix_nanos(&self) -> u128;
    /// Every request header, names in lower case, in order.
    fn request_headers(&mut self) -> Result<Vec<(String, String)>, HostError>;
    /// Sets (replacing every copy) or removes one request header.
    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    /// The request body the host buffered so far (`size` bytes).
    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError>;
    /// Every response header, names in lower case, in order. (All of them,
    /// not one by name: a header sent twice must be seen twice, and the
    /// proxy-wasm call for one name returns only its first copy.)
    fn response_headers(&mut self) -> Result<Vec<(String, String)>, HostError>;
    /// Sets or removes one response header.
    fn set_response_header(&mut self, name: &str, value: Option<&str>) -> Result<(), HostError>;
    /// The response body the host buffered so far (`size` bytes).
    fn response_body(&mut self, size: usize) -> Result<Vec<u8>, HostError>;
    /// Replaces the `size` buffered response bytes with `body`.
    fn replace_response_body(&mut self, size: usize, body: &[u8]) -> Result<(), HostError>;
    /// The stream's dynamic metadata, as one serialized
    /// `envoy.config.core.v3.Metadata` message (the property `metadata`).
    /// Read only with `verified_by: jwt_authn`.
    fn dynamic_metadata(&mut self) -> Result<Option<Vec<u8>>, HostError>;
    /// A value of the proxy's shared data (shared by every worker).
    fn shared_data(&mut self, key: &str) -> Result<Option<Vec<u8>>, HostError>;
    fn set_shared_data(&mut self, key: &str, value: &[u8]) -> Result<(), HostError>;
    /// Fills `out` from the host's cryptographic random source (WASI
    /// `random_get`).
    fn random_bytes(&mut self, out: &mut [u8]) -> Result<(), HostError>;
    /// Answers the client locally; the upstream request (if any) is reset.
    fn send_reply(&mut self, reply: &Reply) -> Result<(), HostError>;
    /// Resumes a request paused in an earlier callback.
    fn resume_request(&mut self) -> Result<(), HostError>;
    fn log(&mut self, level: LogLevel, message: &str);
    /// Writes an audit line and moves its counter.
    fn audit(&mut self, record: &AuditRecord, kind: AuditKind);
    /// Applies another worker's fresh copy of `issuer`'s key set, if any.
    fn sync_keys(&mut self, issuer: &str);
    /// Starts fetching `issuer`'s key set, within the shared rate limit.
    fn start_key_fetch(&mut self, issuer: &str) -> KeyFetch;
    /// Hands the answer to the fetch `token` to the fetcher.
    fn key_fetch_response(&mut self, token: u32, body_size: usize) -> KeyProgress;
}
