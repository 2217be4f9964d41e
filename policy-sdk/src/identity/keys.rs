//! Public keys from a JSON Web Key Set, and raw signature verification over a
//! JWS signing input. Warden verifies signatures itself (rather than through
//! a JWT library's all-in-one call) so that the same primitive is checked
//! against the Wycheproof vectors, and so a cached token can skip it while
//! its time-dependent claims are still checked on every request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Signature algorithms Warden verifies. Symmetric (HS*) algorithms and
/// `none` are deliberately absent: a verifier holding public keys must never
/// accept them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    ES256,
    ES384,
    RS256,
    PS256,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The smallest RSA modulus accepted (RFC 7518 §3.3 asks for 2048 bits).
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted: a bound on the work one verification
/// may cost.
const MAX_RSA_BITS: usize = 4096;

/// Key material, by family. One RSA key may serve RS256 and PS256.
#[derive(Clone)]
enum Material {
    P256(super::ecdsa_p256::P256Key),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(Box<super::rsa_pkcs1::RsaKey>),
    Ed25519(super::ed25519_point::Ed25519Key),
}

/// One usable verification key.
#[derive(Clone)]
pub struct VerifierKey {
    pub kid: Option<String>,
    /// The algorithms this key may verify (its JWK `alg`, or every allowed
    /// algorithm of its family when the JWK names none).
    pub algorithms: Vec<Algorithm>,
    material: Material,
}

impl std::fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl VerifierKey {
    /// Verifies `signature` over `message` with `alg`. JWS signatures for
    /// ECDSA are the fixed-size `r‖s` form (IEEE P1363), not DER.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        if !self.algorithms.contains(&alg) {
            return false;
        }
        match (&self.material, alg) {
            // Fixed-base tables for both points (see ecdsa_p256.rs), checked
            // against p256's own verification and the Wycheproof vectors.
            (Material::P256(key), Algorithm::ES256) => key.verify(message, signature),
            (Material::P384(key), Algorithm::ES384) => {
                p384::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            // Warden's own encode-and-compare check, with a public-exponent
            // ladder in its own Montgomery arithmetic (32-bit limbs in Wasm;
            // see rsa_pkcs1.rs), checked against the rsa crate and the
            // Wycheproof vectors.
            (Material::Rsa(key), Algorithm::RS256) => key.verify_rs256(message, signature),
            (Material::Rsa(key), Algorithm::PS256) => {
                use sha2::Digest as _;
                // RFC 7518 §3.5: the salt is as long as the hash.
                let hashed = sha2::Sha256::digest(message);
                key.public_key()
                    .verify(
                        rsa::Pss::<sha2::Sha256>::new_with_salt(32),
                        &hashed,
                        signature,
                    )
                    .is_ok()
            }
            // A table of the key's point (see ed25519_point.rs), built when
            // it first verifies.
            (Material::Ed25519(key), Algorithm::EdDSA) => key.verify(message, signature),
            _ => false,
        }
    }
}

/// Why a key set, or one key in it, is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("must be an object with a `keys` array")]
    NotAKeySet,
    #[error("key {index}: {message}")]
    BadKey { index: usize, message: String },
}

fn family_algorithms(material: &Material) -> &'static [Algorithm] {
    match material {
        Material::P256(_) => &[Algorithm::ES256],
        Material::P384(_) => &[Algorithm::ES384],
        Material::Rsa(_) => &[Algorithm::RS256, Algorithm::PS256],
        Material::Ed25519(_) => &[Algorithm::EdDSA],
    }
}

/// Reads a JWKS, keeping the keys that can verify one of `allowed`. Keys of
/// other types or curves, and encryption keys, are skipped: an IdP's set may
/// hold keys for other consumers. Private or symmetric key material is an
/// error: it should never have been published.
pub fn parse_jwks(jwks: &Value, allowed: &[Algorithm]) -> Result<Vec<VerifierKey>, JwksError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NotAKeySet)?;
    let mut out: Vec<VerifierKey> = Vec::new();
    for (index, jwk) in keys.iter().enumerate() {
        let bad = |message: String| JwksError::BadKey { index, message };
        let jwk = jwk.as_object().ok_or_else(|| bad("not an object".into()))?;
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| jwk.contains_key(*m))
        {
            return Err(bad(
                "contains private or symmetric key material; publish only public keys".into(),
            ));
        }
        if field("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let bytes = |name: &str| -> Result<Vec<u8>, JwksError> {
            let text = field(name).ok_or_else(|| bad(format!("`{name}` is missing")))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| bad(format!("`{name}` is not base64url")))
        };
        let ec_point = |size: usize| -> Result<Vec<u8>, JwksError> {
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != size || y.len() != size {
                return Err(bad(format!("coordinates must be {size} bytes")));
            }
            let mut sec1 = Vec::with_capacity(1 + 2 * size);
            sec1.push(0x04);
            sec1.extend_from_slice(&x);
            sec1.extend_from_slice(&y);
            Ok(sec1)
        };
        let material = match (field("kty"), field("crv")) {
            (Some("EC"), Some("P-256")) => Material::P256(super::ecdsa_p256::P256Key::new(
                &p256::ecdsa::VerifyingKey::from_sec1_bytes(&ec_point(32)?)
                    .map_err(|_| bad("not a P-256 point".into()))?,
            )),
            (Some("EC"), Some("P-384")) => Material::P384(
                p384::ecdsa::VerifyingKey::from_sec1_bytes(&ec_point(48)?)
                    .map_err(|_| bad("not a P-384 point".into()))?,
            ),
            (Some("RSA"), _) => {
                let n = rsa::BoxedUint::from_be_slice_vartime(&bytes("n")?);
                let e = rsa::BoxedUint::from_be_slice_vartime(&bytes("e")?);
                // The floor is checked below, by the modulus's size in bytes.
                let key = rsa::PublicKey::new_with_size_limits(n, e, 0..=MAX_RSA_BITS)
                    .map_err(|e| bad(format!("RSA key: {e}")))?;
                if rsa::traits::PublicKeyParts::size(&key) * 8 < MIN_RSA_BITS {
                    return Err(bad(format!(
                        "RSA keys must have at least {MIN_RSA_BITS} bits"
                    )));
                }
                let key = super::rsa_pkcs1::RsaKey::new(key)
                    .ok_or_else(|| bad("RSA key: the modulus cannot be used".into()))?;
                Material::Rsa(Box::new(key))
            }
            (Some("OKP"), Some("Ed25519")) => {
                Material::Ed25519(super::ed25519_point::Ed25519Key::new(
                    ed25519_compact::PublicKey::from_slice(&bytes("x")?)
                        .map_err(|_| bad("not an Ed25519 key".into()))?,
                ))
            }
            _ => continue,
        };
        let family = family_algorithms(&material);
        let algorithms: Vec<Algorithm> = match field("alg") {
            // A key published for one algorithm serves only that one.
            Some(declared) => match Algorithm::parse(declared) {
                Some(alg) if family.contains(&alg) => vec![alg],
                _ => continue,
            },
            None => family.to_vec(),
        }
        .into_iter()
        .filter(|a| allowed.contains(a))
        .collect();
        if algorithms.is_empty() {
            continue;
        }
        let kid = field("kid").map(str::to_owned);
        if kid.is_some() && out.iter().any(|k| k.kid == kid) {
            return Err(bad(format!("duplicate kid `{}`", kid.unwrap_or_default())));
        }
        out.push(VerifierKey {
            kid,
            algorithms,
            material,
        });
    }
    Ok(out)
}
