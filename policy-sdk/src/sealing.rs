//! Sealed session ids: an MCP server's `Mcp-Session-Id` bound to the
//! principal that opened the session, authenticated with HMAC-SHA256, so
//! that no table is needed to remember who owns which session.
//!
//! A sealed id reads `ws1.<server id>.<binding tag>.<seal>`, each part
//! base64url without padding:
//!
//! * `ws1.` names the format (Warden session, version 1);
//! * the server id is the upstream's own `Mcp-Session-Id`, carried in the
//!   clear. Sealing is for binding, not secrecy: the id is the client's own
//!   handle to its own session, the server never sees the sealed form, and
//!   a server id is only accepted again through Warden's check. Encoding it
//!   keeps the sealed id's alphabet fixed (letters, digits, `-`, `_`, `.`)
//!   and the parts unambiguous whatever the server's id contains;
//! * the binding tag is a keyed digest of the binding (issuer, subject and
//!   acting party), so a wrong principal is told apart from a forgery
//!   without revealing who the principal is;
//! * the seal is HMAC-SHA256 over the format, the binding tag and the
//!   server id.
//!
//! Every comparison of secret-derived bytes is constant-time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What every sealed id starts with: the format and its version.
pub const SEALED_PREFIX: &str = "ws1.";
/// Longest server `Mcp-Session-Id` Warden seals (ids are visible ASCII).
pub const MAX_SERVER_ID_BYTES: usize = 256;
/// Bytes of a generated host key; configured keys may be longer.
pub const KEY_BYTES: usize = 32;
/// Shortest and longest key accepted (HMAC-SHA256 hashes longer keys).
pub const MIN_KEY_BYTES: usize = 32;
pub const MAX_KEY_BYTES: usize = 64;
/// Most keys a configuration may list (the first seals, all unseal).
pub const MAX_KEYS: usize = 4;
/// Bytes of the binding tag, and of the seal.
const BINDING_TAG_BYTES: usize = 16;
const SEAL_BYTES: usize = 32;
/// Longest sealed id: prefix, the longest server id, the tag and the seal
/// (base64url without padding), and two separators.
pub const MAX_SEALED_BYTES: usize = SEALED_PREFIX.len()
    + encoded_len(MAX_SERVER_ID_BYTES)
    + 1
    + encoded_len(BINDING_TAG_BYTES)
    + 1
    + encoded_len(SEAL_BYTES);

/// Domain labels: the two MACs of one key never answer for each other.
const BINDING_LABEL: &[u8] = b"warden session binding v1\0";
const SEAL_LABEL: &[u8] = b"warden session seal v1\0";

const fn encoded_len(bytes: usize) -> usize {
    (bytes * 4).div_ceil(3)
}

/// A key that seals and unseals session ids.
#[derive(Clone)]
pub struct SessionKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// Why a key was refused. Key material is never part of a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not base64url (letters, digits, `-`, `_`): {0}")]
    NotBase64(String),
    #[error("decodes to {found} bytes; a session key needs {MIN_KEY_BYTES} to {MAX_KEY_BYTES}")]
    Length { found: usize },
}

impl SessionKey {
    /// A key from its bytes: 32 to 64 of them.
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(KeyError::Length { found: bytes.len() });
        }
        let mac = HmacSha256::new_from_slice(bytes)
            .map_err(|_| KeyError::Length { found: bytes.len() })?;
        Ok(Self { mac })
    }

    /// A key as configured: base64url, padded or not.
    pub fn from_base64url(text: &str) -> Result<Self, KeyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|e| KeyError::NotBase64(e.to_string()))?;
        Self::new(&bytes)
    }

    /// The binding tag of `binding` under this key, as a MAC in progress
    /// (finished by the caller, to compare in constant time).
    fn binding_mac(&self, binding: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(BINDING_LABEL);
        mac.update(binding.as_bytes());
        mac
    }

    fn binding_tag(&self, binding: &str) -> [u8; BINDING_TAG_BYTES] {
        let full = self.binding_mac(binding).finalize().into_bytes();
        let mut tag = [0; BINDING_TAG_BYTES];
        tag.iter_mut().zip(full.iter()).for_each(|(t, f)| *t = *f);
        tag
    }

    fn seal_mac(&self, binding_tag: &[u8], server_id: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(SEAL_LABEL);
        // The tag has a fixed length, so the server id that follows cannot
        // shift bytes between the two.
        mac.update(binding_tag);
        mac.update(server_id);
        mac
    }
}

/// A configured session key: base64url text, never shown in debug output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionKeySecret(String);

impl SessionKeySecret {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeySecret(…)")
    }
}

/// Whether `id` is one Warden seals: 1 to 256 visible ASCII characters.
pub fn is_valid_server_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_SERVER_ID_BYTES
        && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Why a server's id was not sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "the upstream's Mcp-Session-Id ({length} bytes) is not 1 to {MAX_SERVER_ID_BYTES} visible ASCII characters"
    )]
    InvalidServerId { length: usize },
}

/// Seals `server_id` to `binding` under `key`.
pub fn seal(key: &SessionKey, server_id: &str, binding: &str) -> Result<String, SealError> {
    if !is_valid_server_id(server_id) {
        return Err(SealError::InvalidServerId {
            length: server_id.len(),
        });
    }
    let binding_tag = key.binding_tag(binding);
    let seal = key
        .seal_mac(&binding_tag, server_id.as_bytes())
        .finalize()
        .into_bytes();
    Ok(format!(
        "{SEALED_PREFIX}{}.{}.{}",
        URL_SAFE_NO_PAD.encode(server_id),
        URL_SAFE_NO_PAD.encode(binding_tag),
        URL_SAFE_NO_PAD.encode(seal)
    ))
}

/// A sealed id whose seal holds: the server's id, and what it is bound to.
#[derive(Debug, Clone)]
pub struct Unsealed {
    /// The upstream's own `Mcp-Session-Id`.
    pub server_id: String,
    binding_tag: [u8; BINDING_TAG_BYTES],
    /// The key whose seal held (the binding tag is under that key).
    key: SessionKey,
}

impl Unsealed {
    /// Whether the session was sealed to `binding` (constant-time).
    pub fn belongs_to(&self, binding: &str) -> bool {
        self.key
            .binding_mac(binding)
            .verify_truncated_left(&self.binding_tag)
            .is_ok()
    }
}

/// Why a presented `Mcp-Session-Id` was not accepted. The messages are the
/// audited reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    #[error(
        "Mcp-Session-Id was not issued by Warden (a server's own id, or made up): start a new session"
    )]
    NotSealed,
    #[error("Mcp-Session-Id is sealed in format `{version}`, which this build does not read")]
    UnknownVersion { version: String },
    #[error("Mcp-Session-Id is not a well-formed sealed id: {detail}")]
    Malformed { detail: &'static str },
    #[error(
        "Mcp-Session-Id carries a bad seal (altered, or sealed under a key this proxy does not hold)"
    )]
    BadSeal,
    #[error("Mcp-Session-Id belongs to another principal")]
    AnotherPrincipal,
}

impl UnsealError {
    /// The kind of refusal, for counting (the `class` label).
    pub fn class(&self) -> &'static str {
        match self {
            UnsealError::NotSealed => "not_sealed",
            UnsealError::UnknownVersion { .. } => "unknown_version",
            UnsealError::Malformed { .. } => "malformed",
            UnsealError::BadSeal => "bad_seal",
            UnsealError::AnotherPrincipal => "another_principal",
        }
    }
}

/// Checks the seal of `presented` under each of `keys` (the first that
/// holds wins). The binding is checked apart ([`Unsealed::belongs_to`]):
/// the caller may not be known yet.
pub fn unseal(keys: &[SessionKey], presented: &str) -> Result<Unsealed, UnsealError> {
    let Some(body) = presented.strip_prefix(SEALED_PREFIX) else {
        return Err(match other_version(presented) {
            Some(version) => UnsealError::UnknownVersion {
                version: version.to_owned(),
            },
            None => UnsealError::NotSealed,
        });
    };
    if presented.len() > MAX_SEALED_BYTES {
        return Err(UnsealError::Malformed {
            detail: "longer than any sealed id",
        });
    }
    let mut parts = body.split('.');
    let (Some(id_part), Some(tag_part), Some(seal_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(UnsealError::Malformed {
            detail: "not three parts after the prefix",
        });
    };
    let decode = |part: &str, detail: &'static str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| UnsealError::Malformed { detail })
    };
    let server_id = decode(id_part, "the server id is not base64url")?;
    let binding_tag: [u8; BINDING_TAG_BYTES] =
        decode(tag_part, "the binding tag is not base64url")?
            .try_into()
            .map_err(|_| UnsealError::Malformed {
                detail: "the binding tag has the wrong length",
            })?;
    let seal = decode(seal_part, "the seal is not base64url")?;
    if seal.len() != SEAL_BYTES {
        return Err(UnsealError::Malformed {
            detail: "the seal has the wrong length",
        });
    }
    let server_id = String::from_utf8(server_id)
        .ok()
        .filter(|id| is_valid_server_id(id))
        .ok_or(UnsealError::Malformed {
            detail: "the server id is not 1 to 256 visible ASCII characters",
        })?;
    // Base64 has more than one spelling of some inputs (the unused low bits
    // of a last character): only the one Warden writes is accepted, so a
    // sealed id has exactly one form.
    if URL_SAFE_NO_PAD.encode(&server_id) != id_part
        || URL_SAFE_NO_PAD.encode(binding_tag) != tag_part
        || URL_SAFE_NO_PAD.encode(&seal) != seal_part
    {
        return Err(UnsealError::Malformed {
            detail: "a part is not in canonical base64url",
        });
    }
    let key = keys
        .iter()
        .find(|key| {
            key.seal_mac(&binding_tag, server_id.as_bytes())
                .verify_slice(&seal)
                .is_ok()
        })
        .ok_or(UnsealError::BadSeal)?;
    Ok(Unsealed {
        server_id,
        binding_tag,
        key: key.clone(),
    })
}

/// Unseals `presented` and checks it belongs to `binding`: the server's id.
pub fn open(keys: &[SessionKey], presented: &str, binding: &str) -> Result<String, UnsealError> {
    let unsealed = unseal(keys, presented)?;
    if unsealed.belongs_to(binding) {
        Ok(unsealed.server_id)
    } else {
        Err(UnsealError::AnotherPrincipal)
    }
}

/// The version of a sealed id in another format (`ws<digits>.`), if it
/// looks like one.
fn other_version(presented: &str) -> Option<&str> {
    let (version, _) = presented.split_once('.')?;
    let digits = version.strip_prefix("ws")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(version)
}

#[cfg(test)]
mod tests;
