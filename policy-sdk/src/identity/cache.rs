//! Per-VM cache of verified tokens, keyed by a SHA-256 of the token, so the
//! common case (the same token again) skips signature verification. What
//! depends on time (`exp`, `nbf`, `iat`) and revocation is checked again on
//! every hit by the caller; entries past `exp` are dropped.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Identity, TokenTimes};

/// Bounds of the cache (`identity.cache`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most tokens kept; 0 turns the cache off.
    pub max_entries: usize,
    /// Most bytes kept (tokens and identities, estimated).
    pub max_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 1024,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

pub(crate) type TokenKey = [u8; 32];

pub(crate) fn token_key(token: &str) -> TokenKey {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Clone)]
pub(crate) struct CachedToken {
    pub identity: Identity,
    pub times: TokenTimes,
    size: usize,
}

/// Insertion-ordered, bounded map; the oldest entries go first.
#[derive(Debug, Default)]
pub(crate) struct VerificationCache {
    config: CacheConfig,
    entries: HashMap<TokenKey, CachedToken>,
    order: VecDeque<TokenKey>,
    bytes: usize,
    pub hits: u64,
    pub misses: u64,
}

impl VerificationCache {
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    pub fn get(&mut self, key: &TokenKey, now: u64) -> Option<CachedToken> {
        let found = self.entries.get(key).cloned();
        match found {
            Some(entry)
                if entry
                    .times
                    .exp
                    .is_none_or(|exp| exp >= now.saturating_sub(86_400)) =>
            {
                self.hits += 1;
                Some(entry)
            }
            Some(_) => {
                self.remove(key);
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn insert(
        &mut self,
        key: TokenKey,
        token_len: usize,
        identity: Identity,
        times: TokenTimes,
    ) {
        if self.config.max_entries == 0 {
            return;
        }
        let size = token_len + estimate(&identity);
        if size > self.config.max_bytes {
            return;
        }
        self.remove(&key);
        while self.entries.len() >= self.config.max_entries
            || self.bytes + size > self.config.max_bytes
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.bytes -= old.size;
            }
        }
        self.bytes += size;
        self.order.push_back(key);
        self.entries.insert(
            key,
            CachedToken {
                identity,
                times,
                size,
            },
        );
    }

    fn remove(&mut self, key: &TokenKey) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.size;
            self.order.retain(|k| k != key);
        }
    }

    /// Forgets everything (keys changed: cached verdicts may be stale).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn estimate(identity: &Identity) -> usize {
    let principal = |p: &super::Principal| {
        64 + p.subject.len()
            + p.groups
                .iter()
                .chain(&p.roles)
                .chain(&p.scopes)
                .map(|s| s.len() + 24)
                .sum::<usize>()
            + p.claims
                .iter()
                .map(|(k, v)| k.len() + v.to_string().len() + 32)
                .sum::<usize>()
    };
    256 + identity.issuer.len()
        + principal(&identity.subject)
        + identity
            .actor
            .iter()
            .chain(&identity.prior_actors)
            .map(principal)
            .sum::<usize>()
}
