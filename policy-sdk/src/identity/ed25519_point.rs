//! EdDSA (Ed25519) verification with fixed-base tables, in Warden's own
//! arithmetic: the field modulo `2^255 − 19` in 32-bit words (`field32`),
//! points of the twisted Edwards curve in extended coordinates.
//!
//! Why not `ed25519_compact::PublicKey::verify`: it computes
//! `[k](−A) + [S]B` with a sliding-window ladder (about 250 doublings and
//! 90 additions) in a field of 64-bit limbs, each limb product a library
//! routine in Wasm: about 620 µs of Wasm per verification in Envoy. As for
//! ES256 (`ecdsa_p256`), both points are fixed, `B` for ever and `A` for as
//! long as the key is in its key set, so each gets a table of signed
//! radix-128 multiples (the same digits) and a verification is at most 76
//! mixed additions, with no doublings. The formulas (Hisil, Wong, Carter
//! and Dawson 2008, for a = −1) are complete on this curve: no case is
//! handled apart.
//!
//! The check, RFC 8032 §5.1.7 without the cofactor: `S < L`, the key a
//! canonical encoding of a point that is not of small order (checked once,
//! by ed25519-compact's own `validate`), `k = SHA-512(R ‖ A ‖ M) mod L`,
//! and the signature holds when `[S]B − [k]A` encodes to the octets of
//! `R` and is not of small order. Equal encodings leave no room for a
//! non-canonical `R`; ed25519-compact accepts every such signature too (it
//! checks `8·([S]B − [k]A − R) = 0`, which a difference of zero meets),
//! so this accepts no signature it refuses. Everything in a verification
//! is public, so the variable-time arithmetic leaks nothing.

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::LazyLock;

use crypto_bigint::{NonZero, U256, U512};

use super::ecdsa_p256::{MULTIPLES, digit_multiples};
use super::field32::{self, Prime, below_prime, low_word, subtract_prime};

/// The field of the curve's coordinates, modulo `2^255 − 19`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Curve25519;

impl Prime for Curve25519 {
    const P: [u32; 8] = [
        0xffff_ffed,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0xffff_ffff,
        0x7fff_ffff,
    ];

    /// `2^256 ≡ 38`: the high half, times 38, added to the low half, and
    /// what that carries past 2^256 folded in the same way.
    fn reduce(product: [u32; 16]) -> [u32; 8] {
        let (low, high) = product.split_at(8);
        let mut out = [0u32; 8];
        let mut carry = 0u64;
        for ((o, &l), &h) in out.iter_mut().zip(low).zip(high) {
            let total = u64::from(l) + 38 * u64::from(h) + carry;
            *o = low_word(total);
            carry = total >> 32;
        }
        while carry != 0 {
            let mut fold = 38 * carry;
            for o in &mut out {
                if fold == 0 {
                    break;
                }
                let total = u64::from(*o) + fold;
                *o = low_word(total);
                fold = total >> 32;
            }
            carry = fold;
        }
        // Below 2^256 = 2p + 38: at most two subtractions.
        while !below_prime::<Self>(&out) {
            subtract_prime::<Self>(&mut out);
        }
        out
    }
}

/// An element of the curve's field.
pub(super) type Fe = field32::Fe<Curve25519>;

/// `(p − minus) >> shift`, as exponent words: `(p − 1)/4` and `(p − 5)/8`
/// (p ends in …ed, so neither subtraction borrows).
fn p_minus_then_shifted(minus: u32, shift: u32) -> [u32; 8] {
    let mut words = Curve25519::P;
    if let Some(low) = words.first_mut() {
        *low -= minus;
    }
    let mut shifted = [0u32; 8];
    let mut above = 0u32;
    for (out, &word) in shifted.iter_mut().zip(&words).rev() {
        *out = (word >> shift) | above;
        above = word << (32 - shift);
    }
    shifted
}

/// Constants of the curve, computed once per VM from their definitions.
struct Constants {
    /// `d = −121665 / 121666`.
    d: Fe,
    /// `2d`.
    d2: Fe,
    /// A square root of −1: `2^((p−1)/4)`.
    sqrt_minus_one: Fe,
}

static CONSTANTS: LazyLock<Constants> = LazyLock::new(|| {
    let d = Fe::from_u32(121_665)
        .neg()
        .mul(&Fe::from_u32(121_666).invert());
    Constants {
        d,
        d2: d.double(),
        sqrt_minus_one: Fe::from_u32(2).pow(&p_minus_then_shifted(1, 2)),
    }
});

/// A point in extended coordinates: `x = X/Z`, `y = Y/Z`, `x·y = T/Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extended {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// An affine point as a table holds it: `(y + x, y − x, 2d·x·y)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Niels {
    y_plus_x: Fe,
    y_minus_x: Fe,
    xy2d: Fe,
}

impl Niels {
    /// `−P = (−x, y)`.
    fn neg(&self) -> Self {
        Self {
            y_plus_x: self.y_minus_x,
            y_minus_x: self.y_plus_x,
            xy2d: self.xy2d.neg(),
        }
    }
}

impl Extended {
    pub const IDENTITY: Self = Self {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ONE,
        t: Fe::ZERO,
    };

    /// RFC 8032 §5.1.3: `None` for a non-canonical `y`, or a `y` with no
    /// point, or `x = 0` with the sign bit set.
    pub fn decode(octets: &[u8; 32]) -> Option<Self> {
        let constants = &*CONSTANTS;
        let mut y_octets = *octets;
        let sign = y_octets.last().is_some_and(|top| top & 0x80 != 0);
        if let Some(top) = y_octets.last_mut() {
            *top &= 0x7f;
        }
        let y = Fe::from_le_bytes(&y_octets)?;
        let y2 = y.square();
        let u = y2.sub(&Fe::ONE);
        let v = constants.d.mul(&y2).add(&Fe::ONE);
        // x = u·v³·(u·v⁷)^((p−5)/8).
        let v3 = v.square().mul(&v);
        let v7 = v3.square().mul(&v);
        let eighth = p_minus_then_shifted(5, 3);
        let mut x = u.mul(&v3).mul(&u.mul(&v7).pow(&eighth));
        let vx2 = v.mul(&x.square());
        if vx2 == u.neg() {
            x = x.mul(&constants.sqrt_minus_one);
        } else if vx2 != u {
            return None;
        }
        if x.is_zero() && sign {
            return None;
        }
        if x.is_odd() != sign {
            x = x.neg();
        }
        Some(Self {
            x,
            y,
            z: Fe::ONE,
            t: x.mul(&y),
        })
    }

    /// The 32-octet encoding (one inversion).
    pub fn encode(&self) -> [u8; 32] {
        let z_inverse = self.z.invert();
        let x = self.x.mul(&z_inverse);
        let mut octets = self.y.mul(&z_inverse).to_le_bytes();
        if let Some(top) = octets.last_mut() {
            *top |= u8::from(x.is_odd()) << 7;
        }
        octets
    }

    pub fn neg(&self) -> Self {
        Self {
            x: self.x.neg(),
            t: self.t.neg(),
            ..*self
        }
    }

    fn is_identity(&self) -> bool {
        self.x.is_zero() && self.y == self.z
    }

    /// Whether `8·P` is the identity (P is one of the eight points of
    /// small order).
    pub fn has_small_order(&self) -> bool {
        self.double().double().double().is_identity()
    }

    /// `2·P` (dbl-2008-hwcd, a = −1).
    fn double(&self) -> Self {
        let a = self.x.square();
        let b = self.y.square();
        let c = self.z.square().double();
        let d = a.neg();
        let e = self.x.add(&self.y).square().sub(&a).sub(&b);
        let g = d.add(&b);
        let f = g.sub(&c);
        let h = d.sub(&b);
        Self::from_efgh(&e, &f, &g, &h)
    }

    /// `P + Q` (add-2008-hwcd-3, a = −1, complete on this curve).
    fn add(&self, other: &Self) -> Self {
        let a = self.y.sub(&self.x).mul(&other.y.sub(&other.x));
        let b = self.y.add(&self.x).mul(&other.y.add(&other.x));
        let c = self.t.mul(&CONSTANTS.d2).mul(&other.t);
        let d = self.z.mul(&other.z).double();
        Self::from_efgh(&b.sub(&a), &d.sub(&c), &d.add(&c), &b.add(&a))
    }

    /// `P + Q` for a table point `Q` (its `Z` is 1): 7 multiplications.
    fn add_niels(&self, other: &Niels) -> Self {
        let a = self.y.sub(&self.x).mul(&other.y_minus_x);
        let b = self.y.add(&self.x).mul(&other.y_plus_x);
        let c = self.t.mul(&other.xy2d);
        let d = self.z.double();
        Self::from_efgh(&b.sub(&a), &d.sub(&c), &d.add(&c), &b.add(&a))
    }

    fn from_efgh(e: &Fe, f: &Fe, g: &Fe, h: &Fe) -> Self {
        Self {
            x: e.mul(f),
            y: g.mul(h),
            z: f.mul(g),
            t: e.mul(h),
        }
    }
}

/// `d·2^(WINDOW·i)·P` for the digits of `ecdsa_p256`, row by row.
#[derive(Debug)]
pub(super) struct FixedBase {
    multiples: Vec<Niels>,
}

impl FixedBase {
    fn new(point: Extended) -> Self {
        use super::ecdsa_p256::{DIGITS, WINDOW};
        let mut multiples = Vec::with_capacity(DIGITS * MULTIPLES);
        let mut row = [Extended::IDENTITY; MULTIPLES];
        let mut base = point;
        for _ in 0..DIGITS {
            let mut multiple = base;
            for entry in &mut row {
                *entry = multiple;
                multiple = multiple.add(&base);
            }
            // One inversion per row (Montgomery's trick): the running
            // products of the Zs, one inverse, then back down the row.
            let mut running = [Fe::ONE; MULTIPLES];
            let mut product = Fe::ONE;
            for (entry, slot) in row.iter().zip(&mut running) {
                *slot = product;
                product = product.mul(&entry.z);
            }
            let mut inverse = product.invert();
            let mut inverses = [Fe::ZERO; MULTIPLES];
            for ((entry, before), slot) in row.iter().zip(&running).zip(&mut inverses).rev() {
                *slot = inverse.mul(before);
                inverse = inverse.mul(&entry.z);
            }
            for (entry, z_inverse) in row.iter().zip(&inverses) {
                let x = entry.x.mul(z_inverse);
                let y = entry.y.mul(z_inverse);
                multiples.push(Niels {
                    y_plus_x: y.add(&x),
                    y_minus_x: y.sub(&x),
                    xy2d: x.mul(&y).mul(&CONSTANTS.d2),
                });
            }
            for _ in 0..WINDOW {
                base = base.double();
            }
        }
        Self { multiples }
    }

    /// `acc + k·P` for a scalar given as 32 little-endian octets.
    fn add_multiple(&self, k_le: &[u8; 32], acc: Extended) -> Extended {
        let mut big_endian = *k_le;
        big_endian.reverse();
        digit_multiples(&self.multiples, &big_endian).fold(acc, |acc, (multiple, negative)| {
            if negative {
                acc.add_niels(&multiple.neg())
            } else {
                acc.add_niels(multiple)
            }
        })
    }
}

/// The order `L` of the prime-order subgroup,
/// `2^252 + 27742317777372353535851937790883648493`.
const ORDER: U256 =
    U256::from_be_hex("1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed");
/// `L` as a 512-bit number, to reduce SHA-512 outputs.
const ORDER_WIDE: U512 = ORDER.resize();

/// The base point `B`: `y = 4/5`, `x` even.
static BASE: LazyLock<Option<FixedBase>> = LazyLock::new(|| {
    let y = Fe::from_u32(4).mul(&Fe::from_u32(5).invert());
    Extended::decode(&y.to_le_bytes()).map(FixedBase::new)
});

/// An Ed25519 key and the table of `−A`, built when it first verifies.
#[derive(Debug, Clone)]
pub(super) struct Ed25519Key {
    key: ed25519_compact::PublicKey,
    table: Rc<OnceCell<Option<FixedBase>>>,
}

impl Ed25519Key {
    pub fn new(key: ed25519_compact::PublicKey) -> Self {
        Self {
            key,
            table: Rc::default(),
        }
    }

    /// Whether `signature` (`R‖S`, 64 octets) is a valid Ed25519 signature
    /// of `message` by this key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        let (r, s) = signature.split_at(32);
        let (Ok(r), Ok(s)) = (<&[u8; 32]>::try_from(r), <&[u8; 32]>::try_from(s)) else {
            return false;
        };
        if U256::from_le_slice(s) >= ORDER {
            return false;
        }
        let table = self.table.get_or_init(|| {
            self.key.validate().ok()?;
            Extended::decode(&self.key).map(|a| FixedBase::new(a.neg()))
        });
        let (Some(base), Some(table)) = (BASE.as_ref(), table) else {
            return false;
        };
        let mut hash = ed25519_compact::sha512::Hash::new();
        hash.update(r);
        hash.update(*self.key);
        hash.update(message);
        let Some(order) = NonZero::new(ORDER_WIDE).into_option() else {
            return false;
        };
        let k = U512::from_le_slice(&hash.finalize()).rem_vartime(&order);
        // Below L < 2^253: the low 32 octets are all of it.
        let k_octets = k.to_le_bytes();
        let Ok(k_low) = <[u8; 32]>::try_from(k_octets.as_ref().get(..32).unwrap_or_default())
        else {
            return false;
        };
        let point = table.add_multiple(&k_low, base.add_multiple(s, Extended::IDENTITY));
        point.encode() == *r && !point.has_small_order()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_compact::{KeyPair, PublicKey, Seed};
    use sha2::Digest as _;

    #[test]
    fn the_field_is_field32s_with_the_fold_by_38() {
        super::super::field32::tests::agrees_with_crypto_bigint::<Curve25519>(&[
            // 2^255 − 19 + 18 and 2^256 − 38: reductions that fold twice.
            U256::from_be_hex("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
            U256::from_be_hex("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffda"),
        ]);
    }

    fn base() -> Extended {
        let y = Fe::from_u32(4).mul(&Fe::from_u32(5).invert());
        Extended::decode(&y.to_le_bytes()).unwrap()
    }

    /// `k·P` by double-and-add over the bits of a little-endian scalar:
    /// the reference for the tables.
    fn ladder(point: &Extended, k_le: &[u8; 32]) -> Extended {
        let mut acc = Extended::IDENTITY;
        for byte in k_le.iter().rev() {
            for bit in (0..8).rev() {
                acc = acc.double();
                if (byte >> bit) & 1 == 1 {
                    acc = acc.add(point);
                }
            }
        }
        acc
    }

    fn scalars() -> Vec<[u8; 32]> {
        let mut list = vec![[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }];
        // L − 1, and scalars of 256 bits (past L: the top digit carries).
        list.push(ORDER.wrapping_sub(&U256::ONE).to_le_bytes().into());
        list.push([0x40; 32]);
        list.push([0xff; 32]);
        list.extend((0u64..30).map(|i| {
            let mut k: [u8; 32] = sha2::Sha256::digest(i.to_be_bytes()).into();
            k[31] &= 0x0f;
            k
        }));
        list
    }

    #[test]
    fn the_base_point_and_constants_are_the_curves() {
        // RFC 8032 §5.1: B's encoding, and d = −121665/121666.
        let mut encoding = [0x66u8; 32];
        encoding[0] = 0x58;
        assert_eq!(base().encode(), encoding);
        let d = CONSTANTS.d;
        assert_eq!(d.mul(&Fe::from_u32(121_666)), Fe::from_u32(121_665).neg());
        assert_eq!(CONSTANTS.sqrt_minus_one.square(), Fe::ONE.neg());
        // L·B is the identity; (L − 1)·B is −B.
        assert!(ladder(&base(), &ORDER.to_le_bytes().into()).is_identity());
        assert!(!base().has_small_order());
    }

    #[test]
    fn tables_agree_with_the_ladder() {
        let b = base();
        let table = BASE.as_ref().unwrap();
        let other = ladder(&b, &[7; 32]);
        let other_table = FixedBase::new(other);
        for k in scalars() {
            assert_eq!(
                table.add_multiple(&k, Extended::IDENTITY).encode(),
                ladder(&b, &k).encode()
            );
            assert_eq!(
                other_table.add_multiple(&k, Extended::IDENTITY).encode(),
                ladder(&other, &k).encode()
            );
        }
    }

    /// Decoding agrees with ed25519-compact's own: for every encoding,
    /// decodable and not of small order exactly when `validate` accepts
    /// it, and encoding a decoded point gives the octets back. Edge
    /// encodings: y = p and above (non-canonical), x = 0 with the sign bit,
    /// the points of small order, and spread octets.
    #[test]
    fn decoding_agrees_with_ed25519_compact() {
        let mut encodings: Vec<[u8; 32]> = Vec::new();
        let p: [u8; 32] = {
            let mut p = [0xffu8; 32];
            p[0] = 0xed;
            p[31] = 0x7f;
            p
        };
        for offset in 0u8..24 {
            let mut e = p;
            e[0] = e[0].wrapping_add(offset);
            encodings.push(e);
            e[31] |= 0x80;
            encodings.push(e);
        }
        let mut identity = [0u8; 32];
        identity[0] = 1;
        encodings.push(identity);
        identity[31] |= 0x80;
        encodings.push(identity);
        // (0, −1): order 2.
        let mut minus_one = p;
        minus_one[0] = 0xec;
        encodings.push(minus_one);
        encodings
            .extend((0u64..400).map(|i| <[u8; 32]>::from(sha2::Sha256::digest(i.to_be_bytes()))));
        let mut decodable = 0;
        for encoding in encodings {
            let ours = Extended::decode(&encoding);
            let theirs = PublicKey::new(encoding).validate().is_ok();
            assert_eq!(
                ours.is_some_and(|point| !point.has_small_order()),
                theirs,
                "{encoding:02x?}"
            );
            if let Some(point) = ours {
                decodable += 1;
                assert_eq!(point.encode(), encoding);
            }
        }
        // About half of the spread octets are points.
        assert!(decodable > 150, "{decodable}");
    }

    /// Verifications agree with ed25519-compact's: valid signatures of
    /// eight keys, each with every octet altered, other messages and other
    /// keys.
    #[test]
    fn agrees_with_ed25519_compact_on_valid_and_altered_signatures() {
        for i in 1u8..=8 {
            let pair = KeyPair::from_seed(Seed::new([i; 32]));
            let message = format!("header.payload-{i}").into_bytes();
            let signature = pair.sk.sign(&message, None).to_vec();
            let ours = Ed25519Key::new(pair.pk);
            let reference = |message: &[u8], signature: &[u8]| {
                ed25519_compact::Signature::from_slice(signature)
                    .is_ok_and(|sig| pair.pk.verify(message, &sig).is_ok())
            };
            assert!(ours.verify(&message, &signature));
            assert!(reference(&message, &signature));
            for position in 0..signature.len() {
                for bit in [0, 7] {
                    let mut altered = signature.clone();
                    altered[position] ^= 1 << bit;
                    assert_eq!(
                        ours.verify(&message, &altered),
                        reference(&message, &altered),
                        "octet {position} bit {bit}"
                    );
                    assert!(!ours.verify(&message, &altered));
                }
            }
            let mut other = message.clone();
            other.push(b'x');
            assert!(!ours.verify(&other, &signature));
            let someone_else = KeyPair::from_seed(Seed::new([i + 100; 32]));
            assert!(!Ed25519Key::new(someone_else.pk).verify(&message, &signature));
            // S = L and above, and the wrong length.
            let mut high_s = signature.clone();
            high_s[32..].copy_from_slice(&ORDER.to_le_bytes().as_ref()[..32]);
            assert!(!ours.verify(&message, &high_s));
            assert!(!ours.verify(&message, &signature[..63]));
        }
    }

    /// A signer who knows the secret scalar `a` can make `[S]B − [k]A`
    /// the identity (`S = k·a mod L`, with `R` the identity's encoding),
    /// so the encodings match: the small-order check refuses it, as
    /// ed25519-compact refuses an `R` of small order.
    #[test]
    fn a_commitment_of_small_order_is_refused_even_when_the_equation_holds() {
        let seed = [3u8; 32];
        let pair = KeyPair::from_seed(Seed::new(seed));
        // RFC 8032 §5.1.5: the secret scalar is the clamped first half of
        // SHA-512(seed).
        let expanded = ed25519_compact::sha512::Hash::hash(seed);
        let mut a = [0u8; 32];
        a.copy_from_slice(&expanded[..32]);
        a[0] &= 248;
        a[31] &= 127;
        a[31] |= 64;
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let message = b"header.payload";
        let mut hash = ed25519_compact::sha512::Hash::new();
        hash.update(identity);
        hash.update(*pair.pk);
        hash.update(message);
        let order = NonZero::new(ORDER_WIDE).unwrap();
        let k = U512::from_le_slice(&hash.finalize()).rem_vartime(&order);
        let mut a_wide = [0u8; 64];
        a_wide[..32].copy_from_slice(&a);
        let s = k
            .wrapping_mul(&U512::from_le_slice(&a_wide))
            .rem_vartime(&order);
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        forged[32..].copy_from_slice(&s.to_le_bytes().as_ref()[..32]);
        let key = Ed25519Key::new(pair.pk);
        // The equation holds: [S]B − [k]A is the identity, R's point.
        let base = BASE.as_ref().unwrap();
        let table = FixedBase::new(Extended::decode(&pair.pk).unwrap().neg());
        let mut k_low = [0u8; 32];
        k_low.copy_from_slice(&k.to_le_bytes().as_ref()[..32]);
        let mut s_low = [0u8; 32];
        s_low.copy_from_slice(&forged[32..]);
        let point = table.add_multiple(&k_low, base.add_multiple(&s_low, Extended::IDENTITY));
        assert_eq!(point.encode(), identity);
        assert!(!key.verify(message, &forged));
        let reference = ed25519_compact::Signature::from_slice(&forged).unwrap();
        assert!(pair.pk.verify(message, &reference).is_err());
    }

    /// A key of small order (the identity) verifies nothing, even the
    /// signature that would hold for it (R = identity, S = 0).
    #[test]
    fn small_order_keys_and_commitments_are_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = Ed25519Key::new(PublicKey::new(identity));
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        assert!(!key.verify(b"anything", &forged));
        // With a real key, R of small order and S = 0 makes [S]B − [k]A
        // = −kA, which is not R: refused, as by ed25519-compact.
        let pair = KeyPair::from_seed(Seed::new([9; 32]));
        assert!(!Ed25519Key::new(pair.pk).verify(b"anything", &forged));
    }
}
