//! ES256 (ECDSA over P-256 with SHA-256) verification with fixed-base
//! tables.
//!
//! Why not `p256::ecdsa::VerifyingKey::verify`: ecdsa 0.17 computes
//! `u1·G + u2·Q` with an interleaved wNAF ladder that first builds a table
//! for each of the two points and then doubles 256 times, on every call
//! (about 32 table additions, 256 doublings and 85 additions). Both points
//! are fixed: `G` for ever, `Q` for as long as the key is in its key set. So
//! each gets, once, a table of `d·128^i·P` for every signed radix-128 digit
//! `d` in 1..=64 and every position `i` (38 of them), in affine form; a
//! multiplication is then one mixed addition per non-zero digit (at most
//! 38), with no doublings. That is at most 76 additions in all, against
//! about 370 group operations.
//!
//! The width of a digit trades memory for time: a table holds
//! `positions × 2^(WINDOW-1)` points of 64 octets. With p256's arithmetic,
//! radix 16 (8 multiples, 65 positions) took about 540 µs per verification
//! in V8 (Node 20), radix 128 (64 multiples, 38 positions, 156 KB) about
//! 330 µs, radix 256 (128 multiples, 34 positions) about 300 µs for twice
//! the memory. The additions themselves are Warden's (`p256_point`: 32-bit
//! words, NIST's reduction, Jacobian coordinates), about 110 µs in all.
//!
//! The table for `G` is built once per VM, the table for a key when it first
//! verifies a token (a key set's unused keys cost nothing; building one
//! takes about 2,500 additions, once). Everything in a verification is
//! public (key, signature, message), so the variable-time arithmetic leaks
//! nothing.
//!
//! The equation is ecdsa's own (`hazmat::verify_prehashed`, SEC 1 §4.1.4):
//! `r` and `s` in `[1, n)` (from `Signature::from_slice`), `e` the hash read
//! as a scalar, `u1 = e/s`, `u2 = r/s`, and the signature holds when the
//! x-coordinate of `u1·G + u2·Q`, reduced mod `n`, is `r` (the point at
//! infinity matches no `r`). The tables are built with p256's arithmetic;
//! the additions of a verification are `p256_point`'s, and the sum's x is
//! compared without an inversion (`X = x·Z²`, for x = r and x = r + n).

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::LazyLock;

use super::p256_point::{Affine, Fe, Jacobian, batch_to_affine};
use p256::elliptic_curve::PrimeField as _;
use p256::elliptic_curve::ops::Reduce as _;
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::{ProjectivePoint, Scalar};
use sha2::Digest as _;

/// Bits per digit: the scalar is written in signed radix `2^WINDOW`.
pub(super) const WINDOW: usize = 7;
/// Digits of a 256-bit scalar, and one for the carry.
pub(super) const DIGITS: usize = 256_usize.div_ceil(WINDOW) + 1;
/// Multiples per digit position: 1·P … 2^(WINDOW-1)·P (negative digits
/// negate them).
pub(super) const MULTIPLES: usize = 1 << (WINDOW - 1);

/// `d·2^(WINDOW·i)·P` for `d` in `1..=MULTIPLES` and `i` in `0..DIGITS`,
/// row by row, in the coordinates of Warden's own arithmetic.
#[derive(Debug)]
pub(super) struct FixedBase {
    multiples: Vec<Affine>,
}

impl FixedBase {
    /// Built once per point, in Warden's own arithmetic: each row's
    /// multiples by mixed additions of the row's (affine) base, made
    /// affine with one inversion per row, together with the next row's
    /// base: the last multiple (`2^(WINDOW−1)` times the base) doubled.
    /// No multiple is the point at infinity: `P` has prime order `n`, and
    /// no `d·2^(WINDOW·i)` is a multiple of it. `None` for the point at
    /// infinity, or a coordinate not below p, which p256 never gives.
    fn new(point: ProjectivePoint) -> Option<Self> {
        let point = point.to_affine();
        if bool::from(point.is_identity()) {
            return None;
        }
        let mut base = Affine {
            x: Fe::from_be_bytes(&point.x().into())?,
            y: Fe::from_be_bytes(&point.y().into())?,
        };
        let mut multiples = Vec::with_capacity(DIGITS * MULTIPLES);
        // One row at a time: a whole table's points in Jacobian
        // coordinates would hold about 300 KB while it is built, and Wasm
        // memory, once grown, stays grown.
        let mut row = Vec::with_capacity(MULTIPLES + 1);
        for _ in 0..DIGITS {
            row.clear();
            let mut multiple = Jacobian::from_affine(&base);
            row.push(multiple);
            for _ in 1..MULTIPLES {
                multiple = multiple.add_affine(&base);
                row.push(multiple);
            }
            // The next row's base shares the row's inversion.
            row.push(multiple.double());
            let mut affine = batch_to_affine(&row)?;
            base = affine.pop()?;
            multiples.extend(affine);
        }
        Some(Self { multiples })
    }

    /// `acc + k·P`, in variable time (for public scalars only).
    fn add_multiple(&self, k: &Scalar, acc: Jacobian) -> Jacobian {
        digit_multiples(&self.multiples, &k.to_repr().into()).fold(
            acc,
            |acc, (multiple, negative)| {
                if negative {
                    acc.add_affine(&multiple.neg())
                } else {
                    acc.add_affine(multiple)
                }
            },
        )
    }
}

/// The table entries a scalar's digits pick from a table of `DIGITS` rows
/// of `MULTIPLES`, one per non-zero digit, and whether it is negative
/// (shared with `ed25519_point`).
pub(super) fn digit_multiples<'t, T>(
    multiples: &'t [T],
    k_big_endian: &[u8; 32],
) -> impl Iterator<Item = (&'t T, bool)> {
    multiples
        .chunks_exact(MULTIPLES)
        .zip(signed_digits(k_big_endian))
        .filter_map(|(row, digit)| {
            let index = usize::from(digit.unsigned_abs()).checked_sub(1)?;
            row.get(index).map(|multiple| (multiple, digit < 0))
        })
}

/// A 256-bit scalar `k`, big-endian, as `DIGITS` signed digits of `WINDOW`
/// bits, least significant first: `k = Σ d_i·2^(WINDOW·i)`, each `d_i` in
/// `-MULTIPLES..=MULTIPLES` (shared with `ed25519_point`).
pub(super) fn signed_digits(big_endian: &[u8; 32]) -> [i16; DIGITS] {
    // The scalar as 64-bit words, least significant first, and a zero word
    // so that a window may run past the top.
    let mut words = [0u64; 5];
    for (word, chunk) in words.iter_mut().zip(big_endian.rchunks(8)) {
        *word = chunk
            .iter()
            .fold(0, |acc, &octet| (acc << 8) | u64::from(octet));
    }
    let mask = (1u64 << WINDOW) - 1;
    let half = i16::try_from(MULTIPLES).unwrap_or(i16::MAX);
    let mut digits = [0i16; DIGITS];
    let mut carry = 0i16;
    for (position, digit) in digits.iter_mut().enumerate() {
        let bit = position * WINDOW;
        let low = words.get(bit / 64).map_or(0, |w| w >> (bit % 64));
        let high = match bit % 64 {
            0 => 0,
            shift => words.get(bit / 64 + 1).map_or(0, |w| w << (64 - shift)),
        };
        // 0..=2^WINDOW; half and above become negative with a carry.
        let value = i16::try_from((low | high) & mask).unwrap_or(0) + carry;
        carry = i16::from(value >= half);
        *digit = value - (carry << WINDOW);
    }
    digits
}

static GENERATOR: LazyLock<Option<FixedBase>> =
    LazyLock::new(|| FixedBase::new(ProjectivePoint::GENERATOR));

/// A P-256 key and its table, built when it first verifies.
#[derive(Debug, Clone)]
pub(super) struct P256Key {
    point: ProjectivePoint,
    table: Rc<OnceCell<Option<FixedBase>>>,
}

impl P256Key {
    pub fn new(key: &p256::ecdsa::VerifyingKey) -> Self {
        Self {
            point: ProjectivePoint::from(*key.as_affine()),
            table: Rc::default(),
        }
    }

    /// Whether `signature` (`r‖s`, 64 octets) is a valid ES256 signature of
    /// `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else {
            return false;
        };
        let (r, s) = signature.split_scalars();
        let e = Scalar::reduce(&sha2::Sha256::digest(message));
        // `s` is not zero, so it has an inverse.
        let Some(s_inverse) = Option::<Scalar>::from(s.invert_vartime()) else {
            return false;
        };
        let u1 = e * s_inverse;
        let u2 = *r * s_inverse;
        let table = self.table.get_or_init(|| FixedBase::new(self.point));
        let (Some(generator), Some(table)) = (GENERATOR.as_ref(), table) else {
            return false;
        };
        let sum = table.add_multiple(&u2, generator.add_multiple(&u1, Jacobian::INFINITY));
        // The affine x of the sum, an integer below p < 2n, reduced mod n
        // is r when it is r or r + n. The point at infinity matches
        // neither.
        let r_octets: [u8; 32] = r.to_repr().into();
        Fe::from_be_bytes(&r_octets).is_some_and(|x| sum.has_x(&x))
            || plus_order(&r_octets)
                .and_then(|octets| Fe::from_be_bytes(&octets))
                .is_some_and(|x| sum.has_x(&x))
    }
}

/// `value + n` as 32 big-endian octets, with p256's own `n`; `None` past
/// 2^256.
fn plus_order(value: &[u8; 32]) -> Option<[u8; 32]> {
    use crypto_bigint::{CheckedAdd as _, U256};
    use p256::elliptic_curve::Curve as _;
    let sum = U256::from_be_slice(value).checked_add(p256::NistP256::ORDER.as_ref());
    Option::<U256>::from(sum).map(|sum| sum.to_be_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;

    fn scalars() -> Vec<Scalar> {
        let mut rng = rand_scalars();
        let mut list = vec![
            Scalar::ZERO,
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from(8u64),
            Scalar::from(0x8888_8888_8888_8888u64),
            Scalar::from(u64::MAX),
            -Scalar::from(0x0f0f_0f0fu64),
            // A digit of exactly half the radix, alone and in every
            // position: the edge of the carry.
            Scalar::from(u64::try_from(MULTIPLES).unwrap()),
            (0..DIGITS - 1).fold(Scalar::ZERO, |sum, _| {
                sum * Scalar::from(1u64 << WINDOW) + Scalar::from(u64::try_from(MULTIPLES).unwrap())
            }),
        ];
        list.extend((0..40).map(|_| rng()));
        list
    }

    /// Scalars from SHA-256 of a counter: reproducible, spread over the
    /// whole range.
    fn rand_scalars() -> impl FnMut() -> Scalar {
        let mut counter = 0u64;
        move || {
            counter += 1;
            Scalar::reduce(&sha2::Sha256::digest(counter.to_be_bytes()))
        }
    }

    #[test]
    fn digits_give_the_scalar_back() {
        for k in scalars() {
            let mut sum = Scalar::ZERO;
            let radix = Scalar::from(1u64 << WINDOW);
            let half = i16::try_from(MULTIPLES).unwrap();
            for &digit in signed_digits(&k.to_repr().into()).iter().rev() {
                assert!((-half..=half).contains(&digit));
                let magnitude = Scalar::from(u64::from(digit.unsigned_abs()));
                sum = sum * radix + if digit < 0 { -magnitude } else { magnitude };
            }
            assert_eq!(sum, k);
        }
    }

    /// Affine coordinates as big-endian octets; `None` for the point at
    /// infinity.
    fn affine_of(point: Jacobian) -> Option<([u8; 32], [u8; 32])> {
        point
            .to_affine()
            .map(|a| (a.x.to_be_bytes(), a.y.to_be_bytes()))
    }

    fn reference(point: ProjectivePoint) -> Option<([u8; 32], [u8; 32])> {
        let affine = point.to_affine();
        (!bool::from(affine.is_identity())).then(|| (affine.x().into(), affine.y().into()))
    }

    #[test]
    fn table_multiplication_agrees_with_p256() {
        let point = ProjectivePoint::GENERATOR * Scalar::from(0x1234_5678u64);
        let table = FixedBase::new(point).unwrap();
        let generator = GENERATOR.as_ref().unwrap();
        assert_eq!(table.multiples.len(), DIGITS * MULTIPLES);
        for k in scalars() {
            assert_eq!(
                affine_of(table.add_multiple(&k, Jacobian::INFINITY)),
                reference(point * k)
            );
            assert_eq!(
                affine_of(generator.add_multiple(&k, Jacobian::INFINITY)),
                reference(ProjectivePoint::GENERATOR * k)
            );
        }
    }

    /// A key, and an ES256 JWT it signed, as signing input and signature.
    fn signed(subject: &str) -> (p256::ecdsa::VerifyingKey, Vec<u8>, Vec<u8>) {
        use base64::Engine as _;
        use jwt_simple::prelude::*;
        let pair = ES256KeyPair::generate();
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(
            &pair.public_key().public_key().to_bytes_uncompressed(),
        )
        .unwrap();
        let token = pair
            .sign(Claims::create(Duration::from_secs(60)).with_subject(subject))
            .unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        (key, input.as_bytes().to_vec(), signature)
    }

    #[test]
    fn agrees_with_p256_on_valid_and_altered_signatures() {
        for subject in (0..8).map(|i| format!("subject-{i}")) {
            let subject = subject.as_str();
            let (key, message, signature) = signed(subject);
            let ours = P256Key::new(&key);
            let reference = |message: &[u8], signature: &[u8]| {
                p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            };
            assert!(ours.verify(&message, &signature));
            assert!(reference(&message, &signature));
            for position in 0..signature.len() {
                for bit in [0, 5] {
                    let mut altered = signature.clone();
                    altered[position] ^= 1 << bit;
                    assert!(
                        !ours.verify(&message, &altered),
                        "octet {position} bit {bit}"
                    );
                    assert!(!reference(&message, &altered));
                }
            }
            let mut other = message.clone();
            other.push(b'x');
            assert!(!ours.verify(&other, &signature));
            // Another key's table refuses it.
            let (someone_else, _, _) = signed(subject);
            assert!(!P256Key::new(&someone_else).verify(&message, &signature));
            // r or s out of range, or the wrong length: refused by both.
            for bad in [vec![0; 64], vec![0xff; 64], signature[..63].to_vec()] {
                assert!(!ours.verify(&message, &bad));
                assert!(!reference(&message, &bad));
            }
        }
    }
}
