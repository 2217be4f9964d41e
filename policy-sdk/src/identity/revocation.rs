//! Deny lists: tokens (`jti`), subjects (anywhere in the delegation chain),
//! client ids and whole issuers. From the configuration, and optionally from
//! a list the filter polls; a revoked identity is refused at the next request
//! after the list that names it arrives.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Identity;

/// One revoked value, with an optional reason recorded in audit lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RevokedEntry {
    Value(String),
    WithReason { value: String, reason: String },
}

impl RevokedEntry {
    fn parts(&self) -> (&str, Option<&str>) {
        match self {
            RevokedEntry::Value(v) => (v, None),
            RevokedEntry::WithReason { value, reason } => (value, Some(reason)),
        }
    }
}

/// A list the filter fetches through a proxy cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSource {
    /// The proxy cluster (Envoy) that reaches the server.
    pub cluster: String,
    pub path: String,
    /// `:authority` of the request; the cluster name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_refresh() -> u64 {
    30
}
fn default_timeout() -> u64 {
    5000
}

/// The lists of one kind each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationLists {
    pub jti: Vec<RevokedEntry>,
    pub subjects: Vec<RevokedEntry>,
    pub client_ids: Vec<RevokedEntry>,
    pub issuers: Vec<RevokedEntry>,
}

/// `identity.revocation`: static lists plus an optional polled source whose
/// document has the same shape as the lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    #[serde(flatten)]
    pub lists: RevocationLists,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSource>,
}

#[derive(Debug, Default, Clone)]
struct Index {
    jti: HashMap<String, Option<String>>,
    subjects: HashMap<String, Option<String>>,
    client_ids: HashMap<String, Option<String>>,
    issuers: HashMap<String, Option<String>>,
}

impl Index {
    fn add(&mut self, lists: &RevocationLists) {
        for (map, entries) in [
            (&mut self.jti, &lists.jti),
            (&mut self.subjects, &lists.subjects),
            (&mut self.client_ids, &lists.client_ids),
            (&mut self.issuers, &lists.issuers),
        ] {
            for entry in entries {
                let (value, reason) = entry.parts();
                map.insert(value.to_owned(), reason.map(str::to_owned));
            }
        }
    }
}

/// Static and polled lists, merged for lookups.
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    configured: Index,
    merged: Index,
    /// Entries in the last polled document.
    pub remote_entries: usize,
}

impl Revocations {
    pub fn new(lists: &RevocationLists) -> Self {
        let mut configured = Index::default();
        configured.add(lists);
        Self {
            merged: configured.clone(),
            configured,
            remote_entries: 0,
        }
    }

    /// Replaces the polled part with `document` (same shape as the lists).
    pub fn replace_remote(&mut self, document: &Value) -> Result<usize, String> {
        let lists: RevocationLists =
            serde_json::from_value(document.clone()).map_err(|e| e.to_string())?;
        let mut merged = self.configured.clone();
        merged.add(&lists);
        self.remote_entries =
            lists.jti.len() + lists.subjects.len() + lists.client_ids.len() + lists.issuers.len();
        self.merged = merged;
        Ok(self.remote_entries)
    }

    /// Why `identity` is revoked, if it is.
    pub fn check(&self, identity: &Identity) -> Option<String> {
        let with_reason = |what: String, reason: &Option<String>| match reason {
            Some(r) => format!("{what} is revoked: {r}"),
            None => format!("{what} is revoked"),
        };
        if let Some(reason) = self.merged.issuers.get(&identity.issuer) {
            return Some(with_reason(format!("issuer `{}`", identity.issuer), reason));
        }
        if let Some((jti, reason)) = identity
            .token_id
            .as_ref()
            .and_then(|j| self.merged.jti.get(j).map(|r| (j, r)))
        {
            return Some(with_reason(format!("token `{jti}`"), reason));
        }
        if let Some((id, reason)) = identity
            .client_id
            .as_ref()
            .and_then(|c| self.merged.client_ids.get(c).map(|r| (c, r)))
        {
            return Some(with_reason(format!("client `{id}`"), reason));
        }
        // Borrowed: this runs on every request, cached token or not.
        for subject in identity.subjects() {
            if let Some(reason) = self.merged.subjects.get(subject) {
                return Some(with_reason(format!("subject `{subject}`"), reason));
            }
        }
        None
    }
}
