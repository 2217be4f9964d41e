//! P-256 field and group arithmetic for verification only: the field
//! modulo `p = 2^256 − 2^224 + 2^192 + 2^96 − 1` in 32-bit words
//! (`field32`) with NIST's fast reduction (FIPS 186-4 §D.2.3, additions of
//! the product's words instead of multiplications), and points in Jacobian
//! coordinates with mixed additions of affine table points.
//!
//! Why not p256's own: its field multiplies 64-bit limbs, each a library
//! routine in Wasm (see `field32`). Its complete addition formulas also
//! cost 11 multiplications and about 23 additions per mixed addition, where
//! the Jacobian one costs 11 (8 products, 3 squares) and 7; the cases those
//! formulas cover without a branch (doubling, a point plus its negation,
//! the point at infinity) are branches here.
//!
//! Everything in a verification is public (key, signature, message), so
//! the arithmetic is variable-time: it branches on values.

use super::field32::{self, Prime, below_prime, subtract_prime};

/// The field of P-256's coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct P256;

impl Prime for P256 {
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

    fn reduce(product: [u32; 16]) -> [u32; 8] {
        nist_reduce(product)
    }
}

/// An element of P-256's field.
pub(super) type Fe = field32::Fe<P256>;

/// A 512-bit product modulo p, by FIPS 186-4 §D.2.3: with `c0 … c15` its
/// words, `s1 + 2·s2 + 2·s3 + s4 + s5 − s6 − s7 − s8 − s9`, each `s` a
/// 256-bit number made of the words below. Summed word by word in signed
/// 64-bit arithmetic, the carries propagated, what is carried past 2^256
/// folded back in as `2^256 ≡ 2^224 − 2^192 − 2^96 + 1`, and at most one
/// `p` subtracted.
fn nist_reduce(product: [u32; 16]) -> [u32; 8] {
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
    if !below_prime::<P256>(&out) {
        subtract_prime::<P256>(&mut out);
    }
    out
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
            return Self::from_affine(other);
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

    pub fn from_affine(point: &Affine) -> Self {
        Self {
            x: point.x,
            y: point.y,
            z: Fe::ONE,
        }
    }

    /// The affine coordinates (one inversion): for tests.
    #[cfg(test)]
    pub fn to_affine(self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        let inverse = self.z.invert();
        let inverse_squared = inverse.square();
        Some(Affine {
            x: self.x.mul(&inverse_squared),
            y: self.y.mul(&inverse_squared).mul(&inverse),
        })
    }
}

/// The affine coordinates of `points` with one inversion for them all
/// (Montgomery's trick: invert the product of the `Z`s, then peel each
/// inverse off it). `None` if any is the point at infinity.
pub(super) fn batch_to_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
    // prefix[i] = Z_0 · … · Z_i
    let mut prefix = Vec::with_capacity(points.len());
    let mut product = Fe::ONE;
    for point in points {
        if point.is_infinity() {
            return None;
        }
        product = product.mul(&point.z);
        prefix.push(product);
    }
    // From the last point back: `inverse` is (Z_0 · … · Z_i)⁻¹, so
    // Z_i⁻¹ = inverse · (Z_0 · … · Z_(i−1)).
    let mut inverse = product.invert();
    let earlier = prefix.iter().rev().skip(1).map(Some).chain([None]);
    let mut affine: Vec<Affine> = points
        .iter()
        .rev()
        .zip(earlier)
        .map(|(point, before)| {
            let z_inverse = before.map_or(inverse, |before| inverse.mul(before));
            inverse = inverse.mul(&point.z);
            let z_inverse_squared = z_inverse.square();
            Affine {
                x: point.x.mul(&z_inverse_squared),
                y: point.y.mul(&z_inverse_squared).mul(&z_inverse),
            }
        })
        .collect();
    affine.reverse();
    Some(affine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_bigint::U256;

    fn fe(value: &U256) -> Fe {
        Fe::from_be_bytes(&value.to_be_bytes().into()).unwrap()
    }

    /// The field's own checks are `field32`'s tests, for both primes.
    #[test]
    fn the_field_is_field32s_with_nists_reduction() {
        crate::identity::field32::tests::agrees_with_crypto_bigint::<P256>(&[
            U256::from_be_hex("fffffffe00000001000000000000000000000000fffffffffffffffffffffffe"),
            U256::from_be_hex("00000000ffffffffffffffff00000000000000000000000000000000ffffffff"),
        ]);
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
