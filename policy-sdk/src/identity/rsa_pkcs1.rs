//! RS256 (RSASSA-PKCS1-v1_5 with SHA-256) verification with a public-key
//! operation sized for a public exponent.
//!
//! Why not `rsa::PublicKey::verify`: rsa 0.10 raises the signature to `e`
//! with crypto-bigint's constant-time windowed exponentiation, the ladder
//! built for secret exponents. For `e = 65537` that is about 35 modular
//! multiplications (a table of 15 powers, 16 squarings, 5 table multiplies
//! with a constant-time scan of the table each); square-and-multiply over
//! the bits of `e` needs 17 (16 squarings, one multiply). Every value in a
//! verification is public (the key, the signature, the signed message), so
//! the variable-time ladder leaks nothing. It halves the cost of a fresh
//! RS256 token, which is the signature most identity providers issue.
//!
//! The check is RFC 8017 §8.2.2 as written: the signature is converted and
//! range-checked, raised to `e`, and the result compared with the one valid
//! encoding of the message (EMSA-PKCS1-v1_5, §9.2), built from the hash.
//! Nothing is parsed out of the decrypted block, so no reading of its ASN.1
//! can be fooled (the class of bug behind BERserk). The modular arithmetic
//! is crypto-bigint's own Montgomery multiplication with the parameters the
//! key computed once when its key set loaded.

use crypto_bigint::BoxedUint;
use crypto_bigint::modular::BoxedMontyForm;
use rsa::traits::PublicKeyParts as _;
use sha2::Digest as _;

/// `DigestInfo` for SHA-256 up to the hash (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Whether `signature` is a valid RS256 signature of `message` by `key`.
pub(super) fn verify_rs256(key: &rsa::PublicKey, message: &[u8], signature: &[u8]) -> bool {
    // §8.2.2 step 1: the signature is exactly as long as the modulus.
    let k = key.size();
    if signature.len() != k {
        return false;
    }
    // Step 2a, 2b: OS2IP, then 0 ≤ s < n.
    let Ok(s) = BoxedUint::from_be_slice(signature, key.n_bits_precision()) else {
        return false;
    };
    if s >= *key.n().as_ref() {
        return false;
    }
    let m = public_exponentiation(key, s);
    // Step 2c: I2OSP to k octets. The value is below n, so the storage's
    // extra leading octets (limbs are wider than the modulus's octets) are
    // zero; they are checked all the same.
    let stored = m.to_be_bytes();
    let Some(split) = stored.len().checked_sub(k) else {
        return false;
    };
    let (high, em) = stored.split_at(split);
    if high.iter().any(|&b| b != 0) {
        return false;
    }
    // Steps 3 and 4: encode the message, compare the two encodings.
    expected_encoding(k, &sha2::Sha256::digest(message)).is_some_and(|want| want == em)
}

/// `s^e mod n`, left-to-right square-and-multiply over the public exponent.
fn public_exponentiation(key: &rsa::PublicKey, s: BoxedUint) -> BoxedUint {
    let e = key.e();
    let base = BoxedMontyForm::new(s, key.n_params());
    let mut acc = base.clone();
    // The top bit is `acc = base`; then one squaring per lower bit.
    for bit in (0..e.bit_width_vartime().saturating_sub(1)).rev() {
        acc = acc.square();
        if e.bit_vartime(bit) {
            acc = acc.mul(&base);
        }
    }
    acc.retrieve()
}

/// EMSA-PKCS1-v1_5 (RFC 8017 §9.2) of a SHA-256 hash into `k` octets:
/// `00 01 FF…FF 00 ‖ DigestInfo ‖ H`, with at least 8 octets of `FF`.
fn expected_encoding(k: usize, hash: &[u8]) -> Option<Vec<u8>> {
    let t_len = SHA256_DIGEST_INFO.len() + hash.len();
    let padding = k.checked_sub(t_len + 3).filter(|&ps| ps >= 8)?;
    let mut em = Vec::with_capacity(k);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + padding, 0xff);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO);
    em.extend_from_slice(hash);
    Some(em)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::Pkcs1v15Sign;

    /// The reference: rsa 0.10's own verification of the same signature.
    fn reference(key: &rsa::PublicKey, message: &[u8], signature: &[u8]) -> bool {
        key.verify(
            Pkcs1v15Sign::new::<sha2::Sha256>(),
            &sha2::Sha256::digest(message),
            signature,
        )
        .is_ok()
    }

    /// A key of `bits` bits, and an RS256 JWT it signed, as the signing
    /// input and the signature's octets.
    fn signed(bits: usize) -> (rsa::PublicKey, Vec<u8>, Vec<u8>) {
        use base64::Engine as _;
        use jwt_simple::prelude::*;
        let pair = RS256KeyPair::generate(bits).unwrap();
        let components = pair.public_key().to_components();
        let key = rsa::PublicKey::new_with_size_limits(
            BoxedUint::from_be_slice_vartime(&components.n),
            BoxedUint::from_be_slice_vartime(&components.e),
            0..=4096,
        )
        .unwrap();
        let token = pair
            .sign(Claims::create(Duration::from_secs(60)).with_subject("alice"))
            .unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        (key, input.as_bytes().to_vec(), signature)
    }

    #[test]
    fn agrees_with_the_rsa_crate_on_valid_and_altered_signatures() {
        for bits in [2048, 3072] {
            let (key, message, signature) = signed(bits);
            let message = message.as_slice();
            assert!(verify_rs256(&key, message, &signature), "{bits}: valid");
            assert!(reference(&key, message, &signature));
            // Every single-bit change of the signature, in a spread of
            // positions, and of the message: both refuse.
            for position in (0..signature.len()).step_by(7) {
                for bit in [0, 3, 7] {
                    let mut altered = signature.clone();
                    altered[position] ^= 1 << bit;
                    assert_eq!(
                        verify_rs256(&key, message, &altered),
                        reference(&key, message, &altered),
                        "{bits}: octet {position} bit {bit}"
                    );
                    assert!(!verify_rs256(&key, message, &altered));
                }
            }
            let mut other = message.to_vec();
            other.push(b'x');
            assert!(!verify_rs256(&key, &other, &signature));
            assert!(!reference(&key, &other, &signature));
        }
    }

    #[test]
    fn refuses_signatures_out_of_range_or_of_the_wrong_length() {
        let (key, message, signature) = signed(2048);
        let message = message.as_slice();
        let n = key.n().as_ref().to_be_bytes_trimmed_vartime().to_vec();
        // s = n, s = n − 1 (n is odd, so flipping the low bit), s = 0, and
        // all octets 0xff (above n): out of range or not an encoding.
        let mut n_minus_one = n.clone();
        *n_minus_one.last_mut().unwrap() ^= 1;
        for candidate in [
            n.clone(),
            n_minus_one,
            vec![0; n.len()],
            vec![0xff; n.len()],
        ] {
            assert!(!verify_rs256(&key, message, &candidate));
            assert!(!reference(&key, message, &candidate));
        }
        // One octet short, one octet long (a leading zero): the length must
        // be the modulus's, as RFC 8017 §8.2.2 step 1 asks.
        assert!(!verify_rs256(&key, message, &signature[1..]));
        let mut longer = vec![0];
        longer.extend_from_slice(&signature);
        assert!(!verify_rs256(&key, message, &longer));
        assert!(!verify_rs256(&key, message, &[]));
    }

    #[test]
    fn the_encoding_is_the_one_rfc_8017_gives() {
        let em = expected_encoding(256, &[0xab; 32]).unwrap();
        assert_eq!(em.len(), 256);
        assert_eq!(&em[..2], &[0x00, 0x01]);
        assert!(em[2..256 - 52].iter().all(|&b| b == 0xff));
        assert_eq!(em[256 - 52], 0x00);
        assert_eq!(&em[256 - 51..256 - 32], &SHA256_DIGEST_INFO);
        // Too short for 8 octets of padding: no encoding at all.
        assert!(expected_encoding(51 + 3 + 7, &[0; 32]).is_none());
        assert!(expected_encoding(51 + 3 + 8, &[0; 32]).is_some());
    }
}
