//! P-256 field and group arithmetic for verification only, in 32-bit
//! words: the field modulo `p = 2^256 − 2^224 + 2^192 + 2^96 − 1` with
//! NIST's fast reduction (FIPS 186-4 §D.2.3, additions of the product's
//! words instead of multiplications), and points in Jacobian coordinates
//! with mixed additions of affine table points.
//!
//! Why not p256's own: its field multiplies 64-bit limbs, and Wasm has no
//! 64 × 64 → 128-bit multiply, so each limb product there is a library
//! routine (`__multi3`: about a third of an ES256 verification in V8); here
//! each word product is one `i64.mul`. Its complete addition formulas also
//! cost 11 multiplications and about 23 additions per mixed addition, where
//! the Jacobian one costs 11 (8 products, 3 squares) and 7; the cases those
//! formulas cover without a branch (doubling, a point plus its negation,
//! the point at infinity) are branches here.
//!
//! Everything in a verification is public (key, signature, message), so
//! the arithmetic is variable-time: it branches on values.

/// An element of the field, fully reduced (below `p`), least significant
/// word first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fe([u32; 8]);

/// `p`, least significant word first.
const P: [u32; 8] = [
    0xffff_ffff,
    0xffff_ffff,
    0xffff_ffff,
    0,
    0,
    0,
    1,
    0xffff_ffff,
];

impl Fe {
    pub const ZERO: Self = Self([0; 8]);
    pub const ONE: Self = Self([1, 0, 0, 0, 0, 0, 0, 0]);

    /// Big-endian octets as an element; `None` when they are `p` or more.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Option<Self> {
        let mut words = [0u32; 8];
        for (word, chunk) in words.iter_mut().zip(bytes.rchunks_exact(4)) {
            *word = chunk
                .iter()
                .fold(0, |acc, &octet| (acc << 8) | u32::from(octet));
        }
        below_p(&words).then_some(Self(words))
    }

    #[cfg(test)]
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut bytes = [0u8; 32];
        for (chunk, word) in bytes.rchunks_exact_mut(4).zip(self.0) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }

    pub fn add(&self, other: &Self) -> Self {
        let mut sum = [0u32; 8];
        let mut carry = 0u64;
        for ((s, &a), &b) in sum.iter_mut().zip(&self.0).zip(&other.0) {
            let total = u64::from(a) + u64::from(b) + carry;
            *s = low_word(total);
            carry = total >> 32;
        }
        if carry != 0 || !below_p(&sum) {
            subtract_p(&mut sum);
        }
        Self(sum)
    }

    pub fn sub(&self, other: &Self) -> Self {
        let mut difference = [0u32; 8];
        let mut borrow = false;
        for ((d, &a), &b) in difference.iter_mut().zip(&self.0).zip(&other.0) {
            let (value, under) = a.overflowing_sub(b);
            let (value, under_again) = value.overflowing_sub(u32::from(borrow));
            *d = value;
            borrow = under || under_again;
        }
        if borrow {
            // Below zero by less than p: adding p wraps back into [0, p).
            let mut carry = 0u64;
            for (d, &p) in difference.iter_mut().zip(&P) {
                let total = u64::from(*d) + u64::from(p) + carry;
                *d = low_word(total);
                carry = total >> 32;
            }
        }
        Self(difference)
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
        for (i, &a) in self.0.iter().enumerate() {
            let mut carry = 0u64;
            if let Some(row) = product.get_mut(i..i + 8) {
                for (t, &b) in row.iter_mut().zip(&other.0) {
                    let total = u64::from(a) * u64::from(b) + u64::from(*t) + carry;
                    *t = low_word(total);
                    carry = total >> 32;
                }
            }
            if let Some(top) = product.get_mut(i + 8) {
                *top = low_word(carry);
            }
        }
        reduce_product(product)
    }

    pub fn square(&self) -> Self {
        self.mul(self)
    }
}

fn low_word(value: u64) -> u32 {
    u32::try_from(value & 0xffff_ffff).unwrap_or(0)
}

fn below_p(words: &[u32; 8]) -> bool {
    words.iter().rev().cmp(P.iter().rev()).is_lt()
}

/// `words −= p`, modulo 2^256.
fn subtract_p(words: &mut [u32; 8]) {
    let mut borrow = false;
    for (w, &p) in words.iter_mut().zip(&P) {
        let (value, under) = w.overflowing_sub(p);
        let (value, under_again) = value.overflowing_sub(u32::from(borrow));
        *w = value;
        borrow = under || under_again;
    }
}

/// A 512-bit product modulo p, by FIPS 186-4 §D.2.3: with `c0 … c15` its
/// words, `s1 + 2·s2 + 2·s3 + s4 + s5 − s6 − s7 − s8 − s9`, each `s` a
/// 256-bit number made of the words below. Summed word by word in signed
/// 64-bit arithmetic, the carries propagated, what is carried past 2^256
/// folded back in as `2^256 ≡ 2^224 − 2^192 − 2^96 + 1`, and at most one
/// `p` subtracted.
fn reduce_product(product: [u32; 16]) -> Fe {
    let [
        c0,
        c1,
        c2,
        c3,
        c4,
        c5,
        c6,
        c7,
        c8,
        c9,
        c10,
        c11,
        c12,
        c13,
        c14,
        c15,
    ] = product.map(i64::from);
    let mut words = [
        c0 + c8 + c9 - c11 - c12 - c13 - c14,
        c1 + c9 + c10 - c12 - c13 - c14 - c15,
        c2 + c10 + c11 - c13 - c14 - c15,
        c3 + 2 * c11 + 2 * c12 + c13 - c15 - c8 - c9,
        c4 + 2 * c12 + 2 * c13 + c14 - c9 - c10,
        c5 + 2 * c13 + 2 * c14 + c15 - c10 - c11,
        c6 + 3 * c14 + 2 * c15 + c13 - c8 - c9,
        c7 + 3 * c15 + c8 - c10 - c11 - c12 - c13,
    ];
    // Propagate the carries; what passes 2^256 (a few units) is folded
    // back in and propagated again. A fold of c leaves a carry of −1, 0 or
    // 1 and the next none, so this ends by the third round.
    let mut out = [0u32; 8];
    loop {
        let mut carry = 0i64;
        for (o, w) in out.iter_mut().zip(&mut words) {
            let total = *w + carry;
            *o = u32::try_from(total & 0xffff_ffff).unwrap_or(0);
            carry = total >> 32;
            *w = i64::from(*o);
        }
        if carry == 0 {
            break;
        }
        let [w0, _, _, w3, _, _, w6, w7] = &mut words;
        *w0 += carry;
        *w3 -= carry;
        *w6 -= carry;
        *w7 += carry;
    }
    if !below_p(&out) {
        subtract_p(&mut out);
    }
    Fe(out)
}

/// A point in affine coordinates, never the point at infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Affine {
    pub x: Fe,
    pub y: Fe,
}

impl Affine {
    pub fn neg(&self) -> Self {
        Self {
            x: self.x,
            y: self.y.neg(),
        }
    }
}

/// A point in Jacobian coordinates: `(X/Z², Y/Z³)`, or the point at
/// infinity when `Z = 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Jacobian {
    x: Fe,
    y: Fe,
    z: Fe,
}

impl Jacobian {
    pub const INFINITY: Self = Self {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// `2·self` (dbl-2001-b, for a curve with a = −3).
    pub fn double(&self) -> Self {
        if self.is_infinity() || self.y.is_zero() {
            return Self::INFINITY;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x = alpha.square().sub(&beta4.double());
        let z = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma_squared8 = gamma.square().double().double().double();
        let y = alpha.mul(&beta4.sub(&x)).sub(&gamma_squared8);
        Self { x, y, z }
    }

    /// `self + other` for an affine `other` (the mixed Jacobian-affine
    /// addition of Hankerson, Menezes and Vanstone, *Guide to Elliptic
    /// Curve Cryptography*, §3.2.2): the equal and opposite points, and
    /// the point at infinity, are handled apart.
    pub fn add_affine(&self, other: &Affine) -> Self {
        if self.is_infinity() {
            return Self {
                x: other.x,
                y: other.y,
                z: Fe::ONE,
            };
        }
        let z1z1 = self.z.square();
        let u2 = other.x.mul(&z1z1);
        let s2 = other.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y);
        if h.is_zero() {
            // Same x: the same point (double it) or its negation.
            return if r.is_zero() {
                self.double()
            } else {
                Self::INFINITY
            };
        }
        let hh = h.square();
        let hhh = h.mul(&hh);
        let v = self.x.mul(&hh);
        let x = r.square().sub(&hhh).sub(&v.double());
        let y = r.mul(&v.sub(&x)).sub(&self.y.mul(&hhh));
        let z = self.z.mul(&h);
        Self { x, y, z }
    }

    /// Whether the point's affine x-coordinate is `x`: `X = x·Z²`, no
    /// inversion. Never for the point at infinity.
    pub fn has_x(&self, x: &Fe) -> bool {
        !self.is_infinity() && self.x == x.mul(&self.z.square())
    }

    /// The affine coordinates (one inversion, by Fermat): for tests.
    #[cfg(test)]
    pub fn to_affine(self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        // p − 2, most significant bit first.
        let mut exponent = P;
        if let Some(low) = exponent.first_mut() {
            *low -= 2;
        }
        let mut inverse = Fe::ONE;
        for word in exponent.iter().rev() {
            for bit in (0..32).rev() {
                inverse = inverse.square();
                if (word >> bit) & 1 == 1 {
                    inverse = inverse.mul(&self.z);
                }
            }
        }
        let inverse_squared = inverse.square();
        Some(Affine {
            x: self.x.mul(&inverse_squared),
            y: self.y.mul(&inverse_squared).mul(&inverse),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::{NonZero, U256};
    use sha2::Digest as _;

    fn modulus() -> NonZero<U256> {
        let mut octets = [0u8; 32];
        for (chunk, word) in octets.rchunks_exact_mut(4).zip(P) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        NonZero::new(U256::from_be_slice(&octets)).unwrap()
    }

    fn big(fe: Fe) -> U256 {
        U256::from_be_slice(&fe.to_be_bytes())
    }

    fn fe(value: &U256) -> Fe {
        Fe::from_be_bytes(&value.to_be_bytes().into()).unwrap()
    }

    /// Edge values (0, 1, 2, p − 1, p − 2, 2^255, words all ones below
    /// p, values whose products fold more than once) and values spread
    /// over the field from SHA-256 of a counter.
    fn elements() -> Vec<Fe> {
        let p = modulus();
        let mut list: Vec<U256> = vec![
            U256::ZERO,
            U256::ONE,
            U256::from_u8(2),
            p.wrapping_sub(&U256::ONE),
            p.wrapping_sub(&U256::from_u8(2)),
            U256::ONE.shl_vartime(255),
            U256::MAX.shr_vartime(32),
            U256::MAX.shr_vartime(1),
            U256::from_be_hex("fffffffe00000001000000000000000000000000fffffffffffffffffffffffe"),
            U256::from_be_hex("00000000ffffffffffffffff00000000000000000000000000000000ffffffff"),
        ];
        list.extend(
            (0u64..60).map(|i| {
                U256::from_be_slice(&sha2::Sha256::digest(i.to_be_bytes())).rem_vartime(&p)
            }),
        );
        list.iter().map(fe).collect()
    }

    #[test]
    fn field_operations_agree_with_crypto_bigint() {
        let p = modulus();
        let values = elements();
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
        }
    }

    #[test]
    fn only_values_below_p_are_elements() {
        let p = modulus();
        assert!(Fe::from_be_bytes(&p.to_be_bytes().into()).is_none());
        assert!(Fe::from_be_bytes(&[0xff; 32]).is_none());
        let below: [u8; 32] = p.wrapping_sub(&U256::ONE).to_be_bytes().into();
        assert_eq!(Fe::from_be_bytes(&below).map(Fe::to_be_bytes), Some(below));
    }

    /// The generator, from SEC 2.
    fn generator() -> Affine {
        let x =
            U256::from_be_hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
        let y =
            U256::from_be_hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
        Affine {
            x: fe(&x),
            y: fe(&y),
        }
    }

    #[test]
    fn the_cases_apart_from_the_general_addition() {
        let g = generator();
        let infinity = Jacobian::INFINITY;
        let g_jacobian = infinity.add_affine(&g);
        assert_eq!(g_jacobian.to_affine(), Some(g));
        // A point plus itself is its double; plus its negation, infinity.
        let doubled = g_jacobian.double();
        assert_eq!(g_jacobian.add_affine(&g).to_affine(), doubled.to_affine());
        assert!(g_jacobian.add_affine(&g.neg()).is_infinity());
        assert!(infinity.double().is_infinity());
        // 2G + G = 3G = G + G + G through the general addition; 3G − G = 2G.
        let tripled = doubled.add_affine(&g);
        let tripled_affine = tripled.to_affine().unwrap();
        assert_eq!(
            tripled.add_affine(&g.neg()).to_affine(),
            doubled.to_affine()
        );
        // Known multiples (from p256) in affine form.
        let two_g = Affine {
            x: fe(&U256::from_be_hex(
                "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978",
            )),
            y: fe(&U256::from_be_hex(
                "07775510db8ed040293d9ac69f7430dbba7dade63ce982299e04b79d227873d1",
            )),
        };
        assert_eq!(doubled.to_affine(), Some(two_g));
        let three_g_x =
            U256::from_be_hex("5ecbe4d1a6330a44c8f7ef951d4bf165e6c6b721efada985fb41661bc6e7fd6c");
        assert_eq!(tripled_affine.x, fe(&three_g_x));
        assert!(tripled.has_x(&fe(&three_g_x)));
        assert!(!tripled.has_x(&two_g.x));
        assert!(!infinity.has_x(&Fe::ZERO));
    }
}
