//! An in-memory [`DocumentHost`]: proxy shared data with CAS, shared by any
//! number of simulated workers, and HTTP calls the test answers.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use super::host::{Document, DocumentHost, OpsEvent, SharedDataError};
use crate::exchange::{HostError, LogLevel};

/// The proxy's shared data, as Envoy keeps it: every store takes a new CAS
/// from one counter, and a CAS guards only a key that exists.
#[derive(Debug, Default)]
pub struct SharedData {
    entries: BTreeMap<String, (Vec<u8>, u32)>,
    last_cas: u32,
}

impl SharedData {
    /// A store for the workers of one test.
    pub fn new_shared() -> Rc<RefCell<Self>> {
        Rc::default()
    }

    pub fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.entries.get(key).cloned()
    }

    /// `proxy_set_shared_data`.
    pub fn set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError> {
        if let (Some(cas), Some((_, current))) = (cas, self.entries.get(key))
            && cas != *current
        {
            return Err(SharedDataError::CasMismatch);
        }
        self.last_cas = self.last_cas.wrapping_add(1).max(1);
        self.entries
            .insert(key.to_owned(), (value.to_vec(), self.last_cas));
        Ok(())
    }
}

/// An HTTP call a worker dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub token: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Call {
    /// The `:path` asked for.
    pub fn path(&self) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == ":path")
            .map_or("", |(_, v)| v.as_str())
    }
}

/// A fetch step as reported: the document, its issuer, `Ok` or the
/// failure's class, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub document: Document,
    pub issuer: Option<String>,
    pub outcome: Result<(), &'static str>,
    pub at_unix_seconds: u64,
}

/// One worker VM: its view of the shared data, its clock, the calls it
/// dispatched, what it logged and what it reported.
#[derive(Debug, Default)]
pub struct MemoryDocumentHost {
    pub shared: Rc<RefCell<SharedData>>,
    pub now_unix_millis: u64,
    /// Calls dispatched and not answered yet.
    pub calls: Vec<Call>,
    pub logs: Vec<(LogLevel, String)>,
    /// Fetch steps reported, in order.
    pub fetched: Vec<Fetched>,
    /// Token cache lookups reported: (hits, misses), summed.
    pub cache_lookups: (u64, u64),
    /// Token cache reports received (each non-empty).
    pub cache_reports: usize,
    /// Whether `http_call` fails (an unknown cluster).
    pub refuse_calls: bool,
    /// The answer being handled: `:status` (absent: no response) and body.
    answer: Option<(Option<String>, Vec<u8>)>,
    next_token: u32,
}

impl MemoryDocumentHost {
    /// A worker sharing `shared` with the others, at `now`.
    pub fn new(shared: Rc<RefCell<SharedData>>, now_unix_seconds: u64) -> Self {
        Self {
            shared,
            now_unix_millis: now_unix_seconds * 1000,
            next_token: 1,
            ..Self::default()
        }
    }

    /// Takes the pending call `token` and makes `status` and `body` the
    /// answer the next `on_http_call_response` reads; returns the body size
    /// to pass it, or `None` when no such call is pending.
    pub fn answer(&mut self, token: u32, status: Option<&str>, body: &[u8]) -> Option<usize> {
        let index = self.calls.iter().position(|c| c.token == token)?;
        self.calls.remove(index);
        self.answer = Some((status.map(str::to_owned), body.to_vec()));
        Some(body.len())
    }

    /// Messages logged at `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, m)| m.as_str())
            .collect()
    }
}

impl DocumentHost for MemoryDocumentHost {
    fn now_unix_millis(&self) -> u64 {
        self.now_unix_millis
    }

    fn shared_data(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        Ok(self.shared.borrow().get(key))
    }

    fn set_shared_data(
        &mut self,
        key: &str,
        value: &[u8],
        cas: Option<u32>,
    ) -> Result<(), SharedDataError> {
        self.shared.borrow_mut().set(key, value, cas)
    }

    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, HostError> {
        if self.refuse_calls {
            return Err(HostError {
                operation: "dispatching an HTTP call",
                status: "BadArgument".to_owned(),
                unreadable: false,
            });
        }
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1);
        self.calls.push(Call {
            token,
            cluster: cluster.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            timeout,
        });
        Ok(token)
    }

    fn http_call_response_header(&mut self, name: &str) -> Result<Option<String>, HostError> {
        Ok(match (&self.answer, name) {
            (Some((status, _)), ":status") => status.clone(),
            _ => None,
        })
    }

    fn http_call_response_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        let body = self
            .answer
            .as_ref()
            .map(|(_, b)| b.as_slice())
            .unwrap_or_default();
        Ok(body.get(..size).unwrap_or(body).to_vec())
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()));
    }

    fn report(&mut self, event: &OpsEvent<'_>) {
        match event {
            OpsEvent::Fetched {
                document,
                issuer,
                outcome,
                at_unix_seconds,
            } => self.fetched.push(Fetched {
                document: *document,
                issuer: issuer.map(str::to_owned),
                outcome: outcome.map_err(|error| error.class()),
                at_unix_seconds: *at_unix_seconds,
            }),
            OpsEvent::TokenCache { hits, misses } => {
                self.cache_lookups.0 += hits;
                self.cache_lookups.1 += misses;
                self.cache_reports += 1;
            }
        }
    }
}
