//! Arithmetic modulo a 256-bit prime in eight 32-bit words, for the
//! signature verifications' curve arithmetic (`p256_point`,
//! `ed25519_point`).
//!
//! Why 32-bit words: Wasm multiplies 64 × 64 → 64 bits at most, so a 32-bit
//! word product is one `i64.mul`, where the 64-bit limbs of the RustCrypto
//! and ed25519-compact fields need a library routine (`__multi3`) for each
//! product: about a third of an ES256 or EdDSA verification's time in V8.
//! Each prime brings its own reduction of the 512-bit product, by the
//! special form of the prime (additions of words, no division).
//!
//! Everything in a verification is public (key, signature, message), so
//! the arithmetic is variable-time: it branches on values.

use std::marker::PhantomData;

/// A prime below 2^256 and the reduction of products modulo it.
pub(super) trait Prime: Copy + Eq + std::fmt::Debug {
    /// The prime, least significant word first.
    const P: [u32; 8];
    /// `product mod P`, for a product of two elements (below `P²`),
    /// fully reduced.
    fn reduce(product: [u32; 16]) -> [u32; 8];
}

/// An element of the field modulo `M::P`, fully reduced (below the
/// prime), least significant word first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fe<M: Prime> {
    words: [u32; 8],
    prime: PhantomData<M>,
}

impl<M: Prime> Fe<M> {
    pub const ZERO: Self = Self::from_words([0; 8]);
    pub const ONE: Self = Self::from_words([1, 0, 0, 0, 0, 0, 0, 0]);

    const fn from_words(words: [u32; 8]) -> Self {
        Self {
            words,
            prime: PhantomData,
        }
    }

    /// A small integer as an element.
    pub fn from_u32(value: u32) -> Self {
        Self::from_words([value, 0, 0, 0, 0, 0, 0, 0])
    }

    /// Big-endian octets as an element; `None` when they are the prime or
    /// more.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let mut words = [0u32; 8];
        for (word, chunk) in words.iter_mut().zip(bytes.rchunks_exact(4)) {
            *word = chunk
                .iter()
                .fold(0, |acc, &octet| (acc << 8) | u32::from(octet));
        }
        below_prime::<M>(&words).then_some(Self::from_words(words))
    }

    /// Little-endian octets as an element; `None` when they are the prime
    /// or more.
    pub fn from_le_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let mut big_endian = *bytes;
        big_endian.reverse();
        Self::from_be_bytes(&big_endian)
    }

    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (chunk, word) in bytes.rchunks_exact_mut(4).zip(self.words) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut bytes = self.to_be_bytes();
        bytes.reverse();
        bytes
    }

    pub fn is_zero(&self) -> bool {
        self.words == [0; 8]
    }

    /// Whether the element, as an integer below the prime, is odd.
    pub fn is_odd(&self) -> bool {
        self.words.first().is_some_and(|low| low & 1 == 1)
    }

    pub fn add(&self, other: &Self) -> Self {
        let mut sum = [0u32; 8];
        let mut carry = 0u64;
        for ((s, &a), &b) in sum.iter_mut().zip(&self.words).zip(&other.words) {
            let total = u64::from(a) + u64::from(b) + carry;
            *s = low_word(total);
            carry = total >> 32;
        }
        // Below twice the prime: at most one subtraction.
        if carry != 0 || !below_prime::<M>(&sum) {
            subtract_prime::<M>(&mut sum);
        }
        Self::from_words(sum)
    }

    pub fn sub(&self, other: &Self) -> Self {
        let mut difference = [0u32; 8];
        let mut borrow = false;
        for ((d, &a), &b) in difference.iter_mut().zip(&self.words).zip(&other.words) {
            let (value, under) = a.overflowing_sub(b);
            let (value, under_again) = value.overflowing_sub(u32::from(borrow));
            *d = value;
            borrow = under || under_again;
        }
        if borrow {
            // Below zero by less than the prime: adding it wraps back.
            let mut carry = 0u64;
            for (d, &p) in difference.iter_mut().zip(&M::P) {
                let total = u64::from(*d) + u64::from(p) + carry;
                *d = low_word(total);
                carry = total >> 32;
            }
        }
        Self::from_words(difference)
    }

    pub fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    pub fn double(&self) -> Self {
        self.add(self)
    }

    pub fn mul(&self, other: &Self) -> Self {
        // The 512-bit product, word by word: each word product is one
        // 64-bit multiply, and `a·b + t + carry` cannot overflow 64 bits.
        let mut product = [0u32; 16];
        for (i, &a) in self.words.iter().enumerate() {
            let mut carry = 0u64;
            if let Some(row) = product.get_mut(i..i + 8) {
                for (t, &b) in row.iter_mut().zip(&other.words) {
                    let total = u64::from(a) * u64::from(b) + u64::from(*t) + carry;
                    *t = low_word(total);
                    carry = total >> 32;
                }
            }
            if let Some(top) = product.get_mut(i + 8) {
                *top = low_word(carry);
            }
        }
        Self::from_words(M::reduce(product))
    }

    pub fn square(&self) -> Self {
        self.mul(self)
    }

    /// `self^exponent`, the exponent given as words, least significant
    /// first (square-and-multiply from the top bit).
    pub fn pow(&self, exponent: &[u32; 8]) -> Self {
        let mut power = Self::ONE;
        for word in exponent.iter().rev() {
            for bit in (0..32).rev() {
                power = power.square();
                if (word >> bit) & 1 == 1 {
                    power = power.mul(self);
                }
            }
        }
        power
    }

    /// The inverse, by Fermat (`self^(p−2)`); zero for zero.
    pub fn invert(&self) -> Self {
        let mut exponent = M::P;
        if let Some(low) = exponent.first_mut() {
            *low -= 2;
        }
        self.pow(&exponent)
    }
}

pub(super) fn low_word(value: u64) -> u32 {
    u32::try_from(value & 0xffff_ffff).unwrap_or(0)
}

pub(super) fn below_prime<M: Prime>(words: &[u32; 8]) -> bool {
    words.iter().rev().cmp(M::P.iter().rev()).is_lt()
}

/// `words −= prime`, modulo 2^256.
pub(super) fn subtract_prime<M: Prime>(words: &mut [u32; 8]) {
    let mut borrow = false;
    for (w, &p) in words.iter_mut().zip(&M::P) {
        let (value, under) = w.overflowing_sub(p);
        let (value, under_again) = value.overflowing_sub(u32::from(borrow));
        *w = value;
        borrow = under || under_again;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crypto_bigint::{NonZero, U256};
    use sha2::Digest as _;

    fn modulus<M: Prime>() -> NonZero<U256> {
        let mut octets = [0u8; 32];
        for (chunk, word) in octets.rchunks_exact_mut(4).zip(M::P) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        NonZero::new(U256::from_be_slice(&octets)).unwrap()
    }

    fn big<M: Prime>(fe: Fe<M>) -> U256 {
        U256::from_be_slice(&fe.to_be_bytes())
    }

    /// Every operation agrees with crypto-bigint's modular arithmetic on
    /// edge values (0, 1, 2, p − 1, p − 2, 2^255 and 2^256 − 1 reduced,
    /// words all ones, the prime's own `special` values whose products
    /// fold more than once) and on values spread over the field from
    /// SHA-256 of a counter; inversion and powers by the definition.
    pub fn agrees_with_crypto_bigint<M: Prime>(special: &[U256]) {
        let p = modulus::<M>();
        let mut list: Vec<U256> = vec![
            U256::ZERO,
            U256::ONE,
            U256::from_u8(2),
            p.wrapping_sub(&U256::ONE),
            p.wrapping_sub(&U256::from_u8(2)),
            U256::ONE.shl_vartime(255),
            U256::MAX,
            U256::MAX.shr_vartime(32),
            U256::MAX.shr_vartime(1),
        ];
        list.extend_from_slice(special);
        list.extend(
            (0u64..60).map(|i| U256::from_be_slice(&sha2::Sha256::digest(i.to_be_bytes()))),
        );
        let values: Vec<Fe<M>> = list
            .iter()
            .map(|v| Fe::from_be_bytes(&v.rem_vartime(&p).to_be_bytes().into()).unwrap())
            .collect();
        for &a in &values {
            for &b in &values {
                assert_eq!(
                    big(a.mul(&b)),
                    big(a).mul_mod_vartime(&big(b), &p),
                    "{a:x?} · {b:x?}"
                );
                assert_eq!(
                    big(a.add(&b)),
                    big(a).add_mod(&big(b), &p),
                    "{a:x?} + {b:x?}"
                );
                assert_eq!(
                    big(a.sub(&b)),
                    big(a).sub_mod(&big(b), &p),
                    "{a:x?} − {b:x?}"
                );
            }
            assert_eq!(a.neg().add(&a), Fe::ZERO);
            assert_eq!(a.square(), a.mul(&a));
            if !a.is_zero() {
                assert_eq!(a.mul(&a.invert()), Fe::ONE, "{a:x?}");
            }
            assert_eq!(Fe::from_le_bytes(&a.to_le_bytes()), Some(a));
            assert_eq!(a.is_odd(), bool::from(big(a).is_odd()));
        }
        // Only values below the prime are elements.
        assert!(Fe::<M>::from_be_bytes(&p.to_be_bytes().into()).is_none());
        assert!(Fe::<M>::from_be_bytes(&[0xff; 32]).is_none());
        let below: [u8; 32] = p.wrapping_sub(&U256::ONE).to_be_bytes().into();
        assert_eq!(
            Fe::<M>::from_be_bytes(&below).map(Fe::to_be_bytes),
            Some(below)
        );
        assert_eq!(
            Fe::<M>::from_u32(7).pow(&[3, 0, 0, 0, 0, 0, 0, 0]),
            Fe::from_u32(343)
        );
    }
}
