//! Per-VM cache of verified tokens, so the common case (the same token
//! again) skips signature verification. What depends on time (`exp`, `nbf`,
//! `iat`) and revocation is checked again on every hit by the caller;
//! entries past `exp` are dropped.
//!
//! Lookup is by a keyed 64-bit hash of the token's signature (SipHash-1-3
//! under a random key drawn per VM: std's `RandomState`), and every entry
//! keeps the token it was verified for, compared in full, in constant time,
//! on each hit. A hash collision is therefore a miss (the new token is
//! verified and takes the slot only if it verifies), never another token's
//! identity; without the key a caller can aim a token at a cached one's slot
//! only by copying its signature, which buys a miss and a refusal. This
//! replaced a SHA-256 of the token as the key: about 20,000 instructions per
//! request in Wasm, the largest single item of a cached-token decision; the
//! keyed hash and the comparison cost about a twentieth of that. The price
//! is the token's bytes in each entry, which `max_bytes` always counted.
//!
//! Payloads Envoy's `jwt_authn` verified (`verified_by: jwt_authn`) are
//! kept the same way, under the canonical form of the metadata `Struct`
//! that carries them ([`super::envoy_metadata::NamespaceStruct::canonical_form`]):
//! its maps' entries sorted, since Envoy writes them in an order that
//! changes from one request to the next. The whole form picks the slot and
//! is compared in full; an entry of one kind never answers the other.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The keyed hash of a token: where its entry is looked for.
type Slot = u64;

/// What an entry is kept under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheKey<'a> {
    /// A token Warden verified itself.
    Token(&'a str),
    /// The canonical form of the metadata `Struct` holding a payload
    /// `jwt_authn` verified.
    VerifiedPayload(&'a [u8]),
}

impl<'a> From<&'a str> for CacheKey<'a> {
    fn from(token: &'a str) -> Self {
        Self::Token(token)
    }
}

impl CacheKey<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Token(token) => token.as_bytes(),
            Self::VerifiedPayload(form) => form,
        }
    }

    fn is_verified_payload(&self) -> bool {
        matches!(self, Self::VerifiedPayload(_))
    }
}

#[derive(Debug)]
struct CachedToken {
    /// What this entry was verified for (a token, or a payload's canonical
    /// form), compared on every hit, with its kind.
    token: Box<[u8]>,
    verified_payload: bool,
    /// Shared with the requests that presented the token: a hit hands out
    /// this one, not a copy.
    identity: Rc<Identity>,
    times: TokenTimes,
    size: usize,
}

/// Insertion-ordered, bounded map; the oldest entries go first.
#[derive(Debug, Default)]
pub(crate) struct VerificationCache {
    config: CacheConfig,
    hasher: RandomState,
    entries: HashMap<Slot, CachedToken>,
    order: VecDeque<Slot>,
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

    /// Where a token's entry is: the keyed hash of its signature, the part
    /// that differs between any two tokens an issuer signed. Hashing the
    /// header and claims too cost about five instructions per byte for
    /// nothing, since the entry holds the whole token, compared in full. A
    /// token that carries another's signature over other claims lands in
    /// that one's slot and misses; it is verified, refused, and never
    /// stored, so it cannot displace the entry. A payload's canonical form
    /// is hashed whole: no part of it differs between any two payloads.
    fn slot<'a>(&self, key: impl Into<CacheKey<'a>>) -> Slot {
        match key.into() {
            CacheKey::Token(token) => {
                let signature = token
                    .rsplit_once('.')
                    .map_or(token, |(_, signature)| signature);
                self.hasher.hash_one(signature.as_bytes())
            }
            CacheKey::VerifiedPayload(form) => self.hasher.hash_one(form),
        }
    }

    /// The identity and times cached for exactly `key`, unless its `exp`
    /// is more than a day past (then the entry is dropped).
    pub fn get<'a>(
        &mut self,
        key: impl Into<CacheKey<'a>>,
        now: u64,
    ) -> Option<(Rc<Identity>, TokenTimes)> {
        let key = key.into();
        let slot = self.slot(key);
        let found = self.entries.get(&slot).filter(|entry| {
            entry.verified_payload == key.is_verified_payload()
                && same_token(&entry.token, key.bytes())
        });
        match found {
            Some(entry)
                if entry
                    .times
                    .exp
                    .is_none_or(|exp| exp >= now.saturating_sub(86_400)) =>
            {
                self.hits += 1;
                Some((Rc::clone(&entry.identity), entry.times))
            }
            Some(_) => {
                self.remove(slot);
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn insert<'a>(
        &mut self,
        key: impl Into<CacheKey<'a>>,
        identity: Rc<Identity>,
        times: TokenTimes,
    ) {
        if self.config.max_entries == 0 {
            return;
        }
        let key = key.into();
        let size = key.bytes().len() + estimate(&identity);
        if size > self.config.max_bytes {
            return;
        }
        // Another token in the same slot (a collision) gives way too.
        let slot = self.slot(key);
        self.remove(slot);
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
        self.order.push_back(slot);
        self.entries.insert(
            slot,
            CachedToken {
                token: key.bytes().into(),
                verified_payload: key.is_verified_payload(),
                identity,
                times,
                size,
            },
        );
    }

    fn remove(&mut self, slot: Slot) {
        if let Some(old) = self.entries.remove(&slot) {
            self.bytes -= old.size;
            self.order.retain(|k| *k != slot);
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

/// Whether two tokens are the same, in time that depends on their length
/// only: every word is compared, whatever differs first, so the time a
/// lookup takes says nothing of how much of a cached token a guess shares.
fn same_token(cached: &[u8], presented: &[u8]) -> bool {
    if cached.len() != presented.len() {
        return false;
    }
    // Eight octets at a time, each pair loaded as one word (building the
    // words octet by octet cost about 2,500 instructions per lookup).
    let cached_words = cached.chunks_exact(8);
    let presented_words = presented.chunks_exact(8);
    let tail = cached_words
        .remainder()
        .iter()
        .zip(presented_words.remainder())
        .fold(0u64, |acc, (a, b)| acc | u64::from(a ^ b));
    let difference = cached_words.zip(presented_words).fold(tail, |acc, (a, b)| {
        match (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
            (Ok(a), Ok(b)) => acc | (u64::from_ne_bytes(a) ^ u64::from_ne_bytes(b)),
            // `chunks_exact` gives eight octets; were it not so, the
            // tokens count as different.
            _ => acc | 1,
        }
    });
    std::hint::black_box(difference) == 0
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
                .map(|(k, v)| k.len() + value_bytes(v))
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

/// What a JSON value holds in memory, roughly: its strings' bytes and a
/// few words per value and key. Counted without writing the value out:
/// its serialized length cost a JSON writer and an allocation per claim on
/// every token the cache had not seen (about 5,000 Wasm instructions).
fn value_bytes(value: &Value) -> usize {
    const NODE: usize = 32;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => NODE,
        Value::String(text) => NODE + text.len(),
        Value::Array(items) => NODE + items.iter().map(value_bytes).sum::<usize>(),
        Value::Object(fields) => {
            NODE + fields
                .iter()
                .map(|(key, value)| NODE + key.len() + value_bytes(value))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(subject: &str) -> Rc<Identity> {
        Rc::new(Identity {
            issuer: "https://issuer".into(),
            subject: super::super::Principal {
                subject: subject.into(),
                actor_type: None,
                unclassified_reason: None,
                groups: Vec::new(),
                roles: Vec::new(),
                scopes: Vec::new(),
                claims: serde_json::Map::new(),
            },
            actor: None,
            prior_actors: Vec::new(),
            client_id: None,
            token_id: None,
            header_values: Default::default(),
            audit_names: Default::default(),
            session_binding: Default::default(),
        })
    }

    const TIMES: TokenTimes = TokenTimes {
        exp: None,
        nbf: None,
        iat: None,
    };

    #[test]
    fn a_hit_needs_the_very_token() {
        let mut cache = VerificationCache::new(CacheConfig::default());
        cache.insert("aaaa.bbbb.cccc", identity("alice"), TIMES);
        let (hit, _) = cache.get("aaaa.bbbb.cccc", 0).unwrap();
        assert_eq!(hit.subject.subject, "alice");
        for other in ["aaaa.bbbb.cccd", "aaaa.bbbb.ccc", "aaaa.bbbb.ccccc", ""] {
            assert!(cache.get(other, 0).is_none(), "{other:?}");
        }
        assert_eq!((cache.hits, cache.misses), (1, 4));
    }

    #[test]
    fn a_collision_is_a_miss_and_the_new_token_takes_the_slot() {
        let mut cache = VerificationCache::new(CacheConfig::default());
        cache.insert("token-one", identity("alice"), TIMES);
        // Force a collision: the second token's entry put in the first's
        // slot, as a hash collision would.
        let slot = cache.slot("token-one");
        let entry = cache.entries.get_mut(&slot).unwrap();
        entry.token = b"token-two".as_slice().into();
        assert!(cache.get("token-one", 0).is_none());
        assert!(cache.get("token-two", 0).is_none(), "not its own slot");
        cache.insert("token-one", identity("alice"), TIMES);
        assert_eq!(cache.len(), 1);
        assert_eq!(
            cache.get("token-one", 0).unwrap().0.subject.subject,
            "alice"
        );
    }

    #[test]
    fn a_copied_signature_shares_the_slot_but_never_the_entry() {
        let mut cache = VerificationCache::new(CacheConfig::default());
        cache.insert("head.claims.signature", identity("alice"), TIMES);
        assert_eq!(
            cache.slot("head.claims.signature"),
            cache.slot("other.forged.signature")
        );
        assert_ne!(
            cache.slot("head.claims.signature"),
            cache.slot("head.claims.signaturf")
        );
        assert!(cache.get("other.forged.signature", 0).is_none());
        assert!(cache.get("head.claims.signature", 0).is_some());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn tokens_are_compared_in_full() {
        assert!(same_token(b"", b""));
        assert!(same_token(b"0123456789abcdefX", b"0123456789abcdefX"));
        assert!(!same_token(b"0123456789abcdefX", b"0123456789abcdefY"));
        assert!(!same_token(b"X123456789abcdef0", b"Y123456789abcdef0"));
        assert!(!same_token(b"01234567", b"012345678"));
        // A difference in any octet, in the words or in the tail, counts.
        let token = b"abcdefghijklmnopqrstuvwxyz0123456789.-_".to_vec();
        for at in 0..token.len() {
            let mut other = token.clone();
            other[at] ^= 0x20;
            assert!(!same_token(&token, &other), "octet {at}");
        }
        assert!(same_token(&token, &token.clone()));
    }

    /// A token and a verified payload's form with the same octets are two
    /// keys: an entry of one kind never answers the other.
    #[test]
    fn a_token_never_answers_for_a_payload_nor_the_reverse() {
        let mut cache = VerificationCache::new(CacheConfig::default());
        let octets = "aaaa.bbbb.cccc";
        cache.insert(CacheKey::Token(octets), identity("alice"), TIMES);
        assert!(
            cache
                .get(CacheKey::VerifiedPayload(octets.as_bytes()), 0)
                .is_none()
        );
        cache.insert(CacheKey::VerifiedPayload(b"form"), identity("bob"), TIMES);
        assert!(cache.get(CacheKey::Token("form"), 0).is_none());
        let (hit, _) = cache.get(CacheKey::VerifiedPayload(b"form"), 0).unwrap();
        assert_eq!(hit.subject.subject, "bob");
        assert_eq!(
            cache
                .get(CacheKey::Token(octets), 0)
                .unwrap()
                .0
                .subject
                .subject,
            "alice"
        );
    }

    #[test]
    fn an_entry_counts_its_claims_however_deep() {
        let with_claim = |claim: Value| {
            let mut identity = identity("alice");
            Rc::make_mut(&mut identity)
                .subject
                .claims
                .insert("blob".into(), claim);
            identity
        };
        let plain = estimate(&identity("alice"));
        let big = "x".repeat(100_000);
        for claim in [json!(big), json!([[big]]), json!({"outer": {"inner": big}})] {
            let size = estimate(&with_claim(claim.clone()));
            assert!(size >= plain + 100_000, "{size} for {claim:.40}");
            // Too large for a cache of 50,000 bytes: never kept.
            let mut cache = VerificationCache::new(CacheConfig {
                max_entries: 8,
                max_bytes: 50_000,
            });
            cache.insert("t1", with_claim(claim), TIMES);
            assert_eq!(cache.len(), 0);
        }
        // A claim of every kind counts something.
        for claim in [
            json!(null),
            json!(true),
            json!(7),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(estimate(&with_claim(claim.clone())) > plain, "{claim}");
        }
    }

    #[test]
    fn bounds_hold_and_the_oldest_go_first() {
        let mut cache = VerificationCache::new(CacheConfig {
            max_entries: 2,
            max_bytes: 1 << 20,
        });
        for token in ["t1", "t2", "t3"] {
            cache.insert(token, identity(token), TIMES);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("t1", 0).is_none());
        assert!(cache.get("t3", 0).is_some());
        let mut off = VerificationCache::new(CacheConfig {
            max_entries: 0,
            max_bytes: 1 << 20,
        });
        off.insert("t1", identity("t1"), TIMES);
        assert_eq!(off.len(), 0);
    }
}
