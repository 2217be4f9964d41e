//! RS256 (RSASSA-PKCS1-v1_5 with SHA-256) verification with a public-key
//! operation sized for a public exponent, in arithmetic sized for Wasm.
//!
//! Why not `rsa::PublicKey::verify`: rsa 0.10 raises the signature to `e`
//! with crypto-bigint's constant-time windowed exponentiation, the ladder
//! built for secret exponents. For `e = 65537` that is about 35 modular
//! multiplications (a table of 15 powers, 16 squarings, 5 table multiplies
//! with a constant-time scan of the table each); square-and-multiply over
//! the bits of `e` needs 17 (16 squarings, one multiply). Every value in a
//! verification is public (the key, the signature, the signed message), so
//! the variable-time ladder leaks nothing.
//!
//! Why Warden's own Montgomery multiplication, in 32-bit words in Wasm:
//! Wasm has a 64-bit multiply but no 64 × 64 → 128-bit one, and
//! crypto-bigint uses 64-bit limbs on `wasm32` (its `cpubits` promotes the
//! target), so each limb product there is a library routine of several
//! multiplies. With limbs in 32-bit words every product is one `i64.mul`.
//! In Envoy, a fresh RS256 token cost about 570 µs of Wasm over a repeated
//! one with crypto-bigint's multiplication, against 64 µs natively for the
//! same verification. Natively the words are 64 bits wide.
//!
//! Why limbs of 28 bits in those words (60 natively): the products of a
//! column are then summed in a 64-bit word with plain additions and the
//! carries taken once per column, where full 32-bit limbs need an
//! add-with-carry chain through every product. In V8 that cut the
//! verification by a tenth (2048-bit key, Node 20: 104 → 93 µs), although
//! a 2048-bit modulus takes 74 limbs instead of 64 (a third more
//! products); natively it costs nothing (35.7 → 35.3 µs).
//!
//! The check is RFC 8017 §8.2.2 as written: the signature is converted and
//! range-checked, raised to `e`, and the result compared with the one valid
//! encoding of the message (EMSA-PKCS1-v1_5, §9.2), built from the hash.
//! Nothing is parsed out of the decrypted block, so no reading of its ASN.1
//! can be fooled (the class of bug behind BERserk).
//!
//! The modulus, `R² mod n` and `−n⁻¹` come from the Montgomery parameters
//! the rsa crate computes when the key loads (`n_params`), brought to this
//! arithmetic's limbs and `R`.

use std::ops::{Add, BitAnd, BitOr, Mul, Shl, Shr, Sub};

use crypto_bigint::modular::BoxedMontyParams;
use rsa::traits::PublicKeyParts as _;
use sha2::Digest as _;

/// `DigestInfo` for SHA-256 up to the hash (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// An RSA public key, with its modulus in the limbs of Warden's
/// Montgomery arithmetic.
#[derive(Clone)]
pub(super) struct RsaKey {
    key: rsa::PublicKey,
    modulus: Modulus<Limb>,
}

impl RsaKey {
    /// `None` for a modulus the arithmetic cannot take (1).
    pub fn new(key: rsa::PublicKey) -> Option<Self> {
        let modulus = Modulus::new(key.n_params())?;
        Some(Self { key, modulus })
    }

    /// The key, for what the rsa crate still does (PS256).
    pub fn public_key(&self) -> &rsa::PublicKey {
        &self.key
    }

    /// Whether `signature` is a valid RS256 signature of `message`.
    pub fn verify_rs256(&self, message: &[u8], signature: &[u8]) -> bool {
        // §8.2.2 step 1: the signature is exactly as long as the modulus.
        let k = self.key.size();
        if signature.len() != k {
            return false;
        }
        let modulus = &self.modulus;
        // Step 2a, 2b: OS2IP, then 0 ≤ s < n.
        let Some(s) = modulus.element(signature) else {
            return false;
        };
        let e = self.key.e();
        let exponent_bits = (0..e.bit_width_vartime()).map(|bit| e.bit_vartime(bit));
        let m = modulus.pow(&s, exponent_bits);
        // Step 2c: I2OSP to k octets.
        let Some(em) = modulus.to_octets(&m, k) else {
            return false;
        };
        // Steps 3 and 4: encode the message, compare the two encodings.
        expected_encoding(k, &sha2::Sha256::digest(message)).is_some_and(|want| want == em)
    }
}

/// The word a limb is held in: 32 bits in Wasm, whose widest multiply is
/// 64 × 64 → 64 bits (a 32-bit product is one `i64.mul`), 64 bits natively,
/// where the processor multiplies 64 × 64 → 128. Both widths run the same
/// code, and the tests run both.
#[cfg(target_arch = "wasm32")]
type Limb = u32;
#[cfg(not(target_arch = "wasm32"))]
type Limb = u64;

/// An unsigned machine word that holds a limb of a big number, and the
/// word of twice its width that limb products are summed in.
trait Word: Copy + Ord + Default + std::fmt::Debug {
    type Wide: Copy
        + Default
        + PartialEq
        + From<Self>
        + From<u8>
        + Add<Output = Self::Wide>
        + Sub<Output = Self::Wide>
        + Mul<Output = Self::Wide>
        + BitAnd<Output = Self::Wide>
        + BitOr<Output = Self::Wide>
        + Shl<u32, Output = Self::Wide>
        + Shr<u32, Output = Self::Wide>;
    const BITS: u32;
    /// The low `BITS` bits of `wide`.
    fn low(wide: Self::Wide) -> Self;
    /// The low eight bits of `wide`.
    fn octet(wide: Self::Wide) -> u8;
    /// The low `BITS` bits of `value`.
    fn low_bits_of(value: u64) -> Self;
}

macro_rules! word {
    ($word:ty, $wide:ty) => {
        impl Word for $word {
            type Wide = $wide;
            const BITS: u32 = <$word>::BITS;
            fn low(wide: $wide) -> Self {
                <$word>::try_from(wide & <$wide>::from(<$word>::MAX)).unwrap_or_default()
            }
            fn octet(wide: $wide) -> u8 {
                u8::try_from(wide & 0xff).unwrap_or_default()
            }
            fn low_bits_of(value: u64) -> Self {
                <$word>::try_from(value & u64::from(<$word>::MAX)).unwrap_or_default()
            }
        }
    };
}
word!(u32, u64);
word!(u64, u128);

/// Whether Montgomery multiplication in `len` limbs of `bits` bits can sum
/// every column of its product in one wide word, carries left for later.
/// A column holds at most `2·len` limb products, each below `2^(2·bits)`
/// (the product's part and the reduction's), and the carry from the
/// column below, which is below `2^(wide − bits)`:
/// `2·len·2^(2·bits) + 2^(wide − bits) ≤ 2^wide`, i.e.
/// `2·len + 2^(wide − 3·bits) ≤ 2^(wide − 2·bits)`, where the second term
/// is counted as 1 when it is a fraction (the products are strictly below
/// their bound, so the sum stays strictly below `2^wide`).
fn columns_fit<W: Word>(bits: u32, len: u32) -> bool {
    let wide = 2 * W::BITS;
    let Some(limit) = wide
        .checked_sub(2 * bits)
        .and_then(|room| 1u128.checked_shl(room))
    else {
        return false;
    };
    let carry = wide
        .checked_sub(3 * bits)
        .and_then(|room| 1u128.checked_shl(room))
        .unwrap_or(1);
    2 * u128::from(len) + carry <= limit
}

/// An odd modulus `n` in limbs of `bits` bits (least significant first),
/// with what Montgomery multiplication modulo `n` needs: `−n⁻¹ mod 2^bits`
/// and `R² mod n`, where `R = 2^(bits·limbs)`.
///
/// Why limbs narrower than the word (28 bits of 32 in Wasm for a 2048-bit
/// key, 60 of 64 natively): each limb product then leaves room in the wide
/// word, and a column's products are summed with plain additions, its
/// carries taken once per column instead of once per product. In V8 the
/// add-with-carry chain of full-width limbs cost more than the third more
/// products narrower limbs need (2048-bit: 74 limbs of 28 bits against 64
/// of 32).
#[derive(Debug, Clone, PartialEq)]
struct Modulus<W: Word = Limb> {
    bits: u32,
    n: Vec<W>,
    n0_inv: W,
    r2: Vec<W>,
}

impl<W: Word> Modulus<W> {
    /// The modulus of crypto-bigint's Montgomery parameters, in the widest
    /// limbs whose columns fit (`columns_fit`). `−n⁻¹ mod 2^64` taken
    /// modulo `2^bits` is `−n⁻¹ mod 2^bits`; `R² mod n` is crypto-bigint's,
    /// brought to this arithmetic's `R`. `None` for n = 1.
    fn new(params: &BoxedMontyParams) -> Option<Self> {
        Self::with_limb_bits(params, Self::widest_limbs(modulus_bits(params))?)
    }

    /// The widest limb (below the word's width) at which a modulus of
    /// `modulus_bits` bits fits Montgomery multiplication's columns.
    fn widest_limbs(modulus_bits: u32) -> Option<u32> {
        (1..W::BITS)
            .rev()
            .find(|&bits| columns_fit::<W>(bits, modulus_bits.div_ceil(bits)))
    }

    /// As `new`, in limbs of `bits` bits (the tests choose narrow ones);
    /// `None` when the columns would not fit.
    fn with_limb_bits(params: &BoxedMontyParams, bits: u32) -> Option<Self> {
        let len = modulus_bits(params).div_ceil(bits);
        if bits == 0 || bits >= W::BITS || !columns_fit::<W>(bits, len) {
            return None;
        }
        let len = usize::try_from(len).ok()?;
        let params = params.as_ref();
        let modulus = params.modulus().as_ref();
        let precision = modulus.bits_precision();
        let n = limbs_from_be::<W>(&modulus.to_be_bytes(), bits, len)?;
        if n == one::<W>(len) {
            return None;
        }
        let mask = (1u64 << bits.min(63)).wrapping_sub(1);
        let n0_inv = W::low_bits_of(params.mod_neg_inv().0 & mask);
        let mut modulus = Self {
            bits,
            n,
            n0_inv,
            r2: Vec::new(),
        };
        // crypto-bigint's R is 2^precision, this arithmetic's 2^(bits·len):
        // its R² mod n doubled (or halved) modulo n 2·(bits·len −
        // precision) times is this one's.
        let mut r2 = limbs_from_be::<W>(&params.r2().to_be_bytes(), bits, len)?;
        if !less_than(&r2, &modulus.n) {
            return None;
        }
        let r_bits = i64::from(bits) * i64::try_from(len).ok()?;
        let shift = 2 * (r_bits - i64::from(precision));
        for _ in 0..shift.unsigned_abs() {
            if shift > 0 {
                modulus.double(&mut r2);
            } else {
                modulus.halve(&mut r2);
            }
        }
        modulus.r2 = r2;
        Some(modulus)
    }

    /// `x ← 2x mod n`, for `x < n`.
    fn double(&self, x: &mut [W]) {
        let mask = self.mask();
        let mut carry = W::Wide::default();
        for x_i in x.iter_mut() {
            let doubled = (W::Wide::from(*x_i) << 1) | carry;
            *x_i = W::low(doubled & mask);
            carry = doubled >> self.bits;
        }
        if carry != W::Wide::default() || !less_than(x, &self.n) {
            self.subtract_n(x);
        }
    }

    /// `x ← x / 2 mod n`, for `x < n`: `x` or, when it is odd, `x + n`
    /// (even, as n is odd), shifted right by one.
    fn halve(&self, x: &mut [W]) {
        let mask = self.mask();
        let one = W::Wide::from(1);
        let mut above = W::Wide::default();
        if x.first()
            .is_some_and(|&low| W::Wide::from(low) & one == one)
        {
            for (x_i, &n_i) in x.iter_mut().zip(&self.n) {
                let sum = W::Wide::from(*x_i) + W::Wide::from(n_i) + above;
                *x_i = W::low(sum & mask);
                above = sum >> self.bits;
            }
        }
        for x_i in x.iter_mut().rev() {
            let value = W::Wide::from(*x_i) | (above << self.bits);
            *x_i = W::low((value >> 1) & mask);
            above = value & one;
        }
    }

    fn mask(&self) -> W::Wide {
        limb_mask::<W>(self.bits)
    }

    /// Big-endian `bytes` as a value below `n`, in plain (not Montgomery)
    /// form; `None` when it is `n` or above.
    fn element(&self, bytes: &[u8]) -> Option<Vec<W>> {
        limbs_from_be::<W>(bytes, self.bits, self.n.len()).filter(|x| less_than(x, &self.n))
    }

    /// The value as exactly `k` big-endian octets (I2OSP, RFC 8017 §4.1);
    /// `None` when it needs more.
    fn to_octets(&self, limbs: &[W], k: usize) -> Option<Vec<u8>> {
        let mut octets = Vec::with_capacity(k + 8);
        let mut held = W::Wide::default();
        let mut held_bits = 0;
        for &limb in limbs {
            held = held | (W::Wide::from(limb) << held_bits);
            held_bits += self.bits;
            while held_bits >= 8 {
                octets.push(W::octet(held));
                held = held >> 8;
                held_bits -= 8;
            }
        }
        if held_bits > 0 {
            octets.push(W::octet(held));
        }
        while octets.len() > k {
            if octets.pop() != Some(0) {
                return None;
            }
        }
        octets.resize(k, 0);
        octets.reverse();
        Some(octets)
    }

    /// `a · b · R⁻¹ mod n` for `a, b < n`, fully reduced: the product's
    /// columns summed in wide words, then reduced.
    fn mul(&self, a: &[W], b: &[W]) -> Vec<W> {
        let len = self.n.len();
        let mut t = vec![W::Wide::default(); 2 * len];
        for (i, &a_i) in a.iter().enumerate() {
            if let Some(row) = t.get_mut(i..i + len) {
                add_row_product(row, b, W::Wide::from(a_i));
            }
        }
        self.reduce(t)
    }

    /// `a · a · R⁻¹ mod n` for `a < n`, as `mul(a, a)` gives it, with half
    /// the limb products: each cross product `a_i·a_j` (i < j) once, with
    /// `2·a_i` as its factor, and the squares `a_i²`. Of the 17 products of
    /// a verification with e = 65537, 16 are squarings.
    fn square(&self, a: &[W]) -> Vec<W> {
        let len = self.n.len();
        let mut t = vec![W::Wide::default(); 2 * len];
        for (i, &a_i) in a.iter().enumerate() {
            let a_i = W::Wide::from(a_i);
            if let Some(t_ii) = t.get_mut(2 * i) {
                *t_ii = *t_ii + a_i * a_i;
            }
            if let (Some(row), Some(higher)) = (t.get_mut(2 * i + 1..i + len), a.get(i + 1..)) {
                add_row_product(row, higher, a_i + a_i);
            }
        }
        self.reduce(t)
    }

    /// `t · R⁻¹ mod n`, fully reduced, for `t < n·R` given as `2·len`
    /// column sums (each below the bound of `columns_fit`, carries not yet
    /// taken). Column by column from the lowest: its carry-in added, one
    /// multiple of `n` that clears its low limb, the carry taken out; the
    /// upper `len` columns are the result (below 2n).
    fn reduce(&self, mut t: Vec<W::Wide>) -> Vec<W> {
        let len = self.n.len();
        let mask = self.mask();
        let n0 = self
            .n
            .first()
            .map_or(W::Wide::default(), |&n0| W::Wide::from(n0));
        let n0_inv = W::Wide::from(self.n0_inv);
        let mut carry = W::Wide::default();
        for i in 0..len {
            let column = t.get(i).map_or(carry, |&t_i| t_i + carry);
            let m = ((column & mask) * n0_inv) & mask;
            carry = (column + m * n0) >> self.bits;
            if let (Some(row), Some(n_high)) = (t.get_mut(i + 1..i + len), self.n.get(1..)) {
                add_row_product(row, n_high, m);
            }
        }
        let mut result = Vec::with_capacity(len);
        for &t_k in t.get(len..).unwrap_or_default() {
            let column = t_k + carry;
            result.push(W::low(column & mask));
            carry = column >> self.bits;
        }
        if carry != W::Wide::default() || !less_than(&result, &self.n) {
            self.subtract_n(&mut result);
        }
        result
    }

    /// `x −= n` modulo `R`, for `x < 2n` (the borrow out of the top limb
    /// cancels the bit above it).
    fn subtract_n(&self, x: &mut [W]) {
        let radix = W::Wide::from(1) << self.bits;
        let mask = self.mask();
        let mut borrow = W::Wide::default();
        for (x_i, &n_i) in x.iter_mut().zip(&self.n) {
            // x_i + 2^bits − n_i − borrow: never negative.
            let difference = W::Wide::from(*x_i) + radix - W::Wide::from(n_i) - borrow;
            *x_i = W::low(difference & mask);
            borrow = W::Wide::from(1) - (difference >> self.bits);
        }
    }

    /// `s^e mod n` by left-to-right square-and-multiply over the bits of
    /// `e`, least significant first as given (every value is public).
    fn pow(&self, s: &[W], e_bits: impl DoubleEndedIterator<Item = bool>) -> Vec<W> {
        let base = self.mul(s, &self.r2);
        let mut bits = e_bits.rev().skip_while(|bit| !bit);
        // The top bit is `acc = base`; then one squaring per lower bit.
        let mut acc = if bits.next().is_some() {
            base.clone()
        } else {
            // s⁰ = 1, in Montgomery form: R mod n.
            self.mul(&self.r2, &one::<W>(self.n.len()))
        };
        for bit in bits {
            acc = self.square(&acc);
            if bit {
                acc = self.mul(&acc, &base);
            }
        }
        // Out of Montgomery form: acc · R⁻¹, a reduction with no product.
        let mut t: Vec<W::Wide> = acc.into_iter().map(W::Wide::from).collect();
        t.resize(2 * self.n.len(), W::Wide::default());
        self.reduce(t)
    }
}

/// `row[j] += x[j] · y` over the row and `x` (the same number), in wide
/// words: no carry is taken (`columns_fit` bounds the sums). Four limbs a
/// step: V8 does not unroll loops.
fn add_row_product<W: Word>(row: &mut [W::Wide], x: &[W], y: W::Wide) {
    let mut row_quads = row.chunks_exact_mut(4);
    let mut x_quads = x.chunks_exact(4);
    for (r4, x4) in (&mut row_quads).zip(&mut x_quads) {
        if let ([r0, r1, r2, r3], [x0, x1, x2, x3]) = (r4, x4) {
            *r0 = *r0 + W::Wide::from(*x0) * y;
            *r1 = *r1 + W::Wide::from(*x1) * y;
            *r2 = *r2 + W::Wide::from(*x2) * y;
            *r3 = *r3 + W::Wide::from(*x3) * y;
        }
    }
    for (r, &x) in row_quads
        .into_remainder()
        .iter_mut()
        .zip(x_quads.remainder())
    {
        *r = *r + W::Wide::from(x) * y;
    }
}

/// The significant bits of the modulus of `params`.
fn modulus_bits(params: &BoxedMontyParams) -> u32 {
    params.as_ref().modulus().as_ref().bit_width_vartime()
}

/// The low `bits` bits set, in the wide word.
fn limb_mask<W: Word>(bits: u32) -> W::Wide {
    (W::Wide::from(1) << bits) - W::Wide::from(1)
}

fn one<W: Word>(len: usize) -> Vec<W> {
    let mut one = vec![W::default(); len];
    if let Some(low) = one.first_mut() {
        *low = W::low_bits_of(1);
    }
    one
}

/// `x < y`, for values of the same number of limbs.
fn less_than<W: Word>(x: &[W], y: &[W]) -> bool {
    x.iter().rev().cmp(y.iter().rev()).is_lt()
}

/// Big-endian octets as `len` limbs of `bits` bits, least significant
/// first; `None` when the value does not fit.
fn limbs_from_be<W: Word>(bytes: &[u8], bits: u32, len: usize) -> Option<Vec<W>> {
    let mask = limb_mask::<W>(bits);
    let mut limbs = Vec::with_capacity(len + 1);
    let mut held = W::Wide::default();
    let mut held_bits = 0;
    for &octet in bytes.iter().rev() {
        held = held | (W::Wide::from(octet) << held_bits);
        held_bits += 8;
        while held_bits >= bits {
            limbs.push(W::low(held & mask));
            held = held >> bits;
            held_bits -= bits;
        }
    }
    if held_bits > 0 {
        limbs.push(W::low(held));
    }
    while limbs.len() > len {
        if limbs.pop() != Some(W::default()) {
            return None;
        }
    }
    limbs.resize(len, W::default());
    Some(limbs)
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
    use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
    use crypto_bigint::{BoxedUint, Odd};
    use rsa::Pkcs1v15Sign;

    fn verify_rs256(key: &rsa::PublicKey, message: &[u8], signature: &[u8]) -> bool {
        RsaKey::new(key.clone())
            .unwrap()
            .verify_rs256(message, signature)
    }

    /// Deterministic test octets (xorshift64*).
    fn octets(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_be_bytes()[0]
            })
            .collect()
    }

    /// The modulus of big-endian `n` as a key's parameters give it; `None`
    /// for an even `n` (no Montgomery parameters) or for 1.
    fn modulus_of<W: Word>(n: &[u8]) -> Option<Modulus<W>> {
        let n = Odd::new(BoxedUint::from_be_slice_vartime(n)).into_option()?;
        Modulus::new(&BoxedMontyParams::new_vartime(n))
    }

    /// The reference arithmetic: crypto-bigint's Montgomery form.
    fn reference_pow(n: &[u8], base: &[u8], e: &[u8]) -> Vec<u8> {
        let precision = u32::try_from(8 * n.len().max(base.len())).unwrap();
        let n = BoxedUint::from_be_slice(n, precision).unwrap();
        let params = BoxedMontyParams::new(Odd::new(n).into_option().unwrap());
        let base = BoxedUint::from_be_slice(base, precision).unwrap();
        let e = BoxedUint::from_be_slice_vartime(e);
        let power = BoxedMontyForm::new(base, &params).pow(&e).retrieve();
        power.to_be_bytes_trimmed_vartime().to_vec()
    }

    fn trimmed(octets: &[u8]) -> Vec<u8> {
        octets.iter().copied().skip_while(|&b| b == 0).collect()
    }

    /// Powers modulo odd moduli of every length from 1 to 40 octets, and of
    /// RSA sizes with and without a full top limb, agree with
    /// crypto-bigint: Montgomery multiplication, R², the conversions and
    /// the ladder, for short and long exponents.
    #[test]
    fn powers_agree_with_crypto_bigint() {
        powers_agree_in::<u32>();
        powers_agree_in::<u64>();
    }

    fn powers_agree_in<W: Word>() {
        let lengths = (1..=40).chain([255, 256, 257, 383, 384, 512]);
        for (round, len) in lengths.enumerate() {
            let seed = u64::try_from(round).unwrap() + 1;
            let mut n = octets(seed, len);
            n[0] |= 0x80 >> (round % 8);
            *n.last_mut().unwrap() |= 1;
            if n == [1] {
                continue;
            }
            let modulus = modulus_of::<W>(&n).unwrap();
            for (e, sample) in [
                (vec![0x01, 0x00, 0x01], 0u64),
                (vec![0x03], 1),
                (octets(seed * 7, 8), 2),
                (vec![0x01], 3),
            ] {
                let mut base = octets(seed * 13 + sample, len);
                base[0] &= n[0] >> 1;
                let Some(s) = modulus.element(&base) else {
                    panic!("{len}: base below n")
                };
                let bits = e
                    .iter()
                    .rev()
                    .flat_map(|byte| (0..8).map(move |bit| byte >> bit & 1 == 1))
                    .collect::<Vec<_>>();
                let power = modulus
                    .to_octets(&modulus.pow(&s, bits.into_iter()), len)
                    .unwrap();
                assert_eq!(
                    trimmed(&power),
                    reference_pow(&n, &base, &e),
                    "{len} octets, e {e:02x?}"
                );
            }
        }
    }

    /// Every Montgomery product is fully reduced (below n, which the
    /// comparison of encodings relies on) and is the product crypto-bigint
    /// gives, for moduli just below a limb boundary and just above one.
    #[test]
    fn products_are_reduced_and_agree_with_crypto_bigint() {
        products_agree_in::<u32>();
        products_agree_in::<u64>();
    }

    fn products_agree_in<W: Word>() {
        for (round, mut n) in [
            vec![0xff, 0xff, 0xff, 0xf1],
            vec![0x80, 0x00, 0x00, 0x01],
            vec![0xff; 8],
            vec![0x01, 0x00, 0x00, 0x00, 0x0b],
            octets(5, 256),
        ]
        .into_iter()
        .enumerate()
        {
            *n.last_mut().unwrap() |= 1;
            let modulus = modulus_of::<W>(&n).unwrap();
            let precision = u32::try_from(8 * n.len()).unwrap();
            let big_n = BoxedUint::from_be_slice(&n, precision).unwrap();
            let params = BoxedMontyParams::new(Odd::new(big_n).into_option().unwrap());
            for sample in 0..200u64 {
                let seed = u64::try_from(round).unwrap() * 1000 + sample;
                let pick = |seed: u64| {
                    let mut value = octets(seed, n.len());
                    value[0] &= n[0];
                    modulus.element(&value).map(|limbs| (value, limbs))
                };
                let (Some((a, a_limbs)), Some((b, b_limbs))) = (pick(seed), pick((seed + 1) << 20))
                else {
                    continue;
                };
                let a_m = modulus.mul(&a_limbs, &modulus.r2);
                let b_m = modulus.mul(&b_limbs, &modulus.r2);
                let product_m = modulus.mul(&a_m, &b_m);
                let product = modulus.mul(&product_m, &one::<W>(modulus.n.len()));
                for value in [&a_m, &b_m, &product_m, &product] {
                    assert!(less_than(value, &modulus.n), "{n:02x?}: not reduced");
                }
                let want =
                    BoxedMontyForm::new(BoxedUint::from_be_slice(&a, precision).unwrap(), &params)
                        .mul(&BoxedMontyForm::new(
                            BoxedUint::from_be_slice(&b, precision).unwrap(),
                            &params,
                        ))
                        .retrieve();
                assert_eq!(
                    trimmed(&modulus.to_octets(&product, n.len()).unwrap()),
                    want.to_be_bytes_trimmed_vartime().to_vec(),
                    "{n:02x?}"
                );
            }
        }
    }

    /// A squaring is the product of the value with itself, for values
    /// whose limbs are all ones (every doubling carries), zero, one, n − 1
    /// and spread ones, in both widths.
    #[test]
    fn squares_are_the_products_of_a_value_with_itself() {
        squares_agree_in::<u32>();
        squares_agree_in::<u64>();
    }

    fn squares_agree_in<W: Word>() {
        for (round, mut n) in [
            vec![0xff, 0xff, 0xff, 0xf1],
            vec![0xff; 8],
            vec![0x80, 0x00, 0x00, 0x01],
            octets(7, 64),
            octets(9, 256),
        ]
        .into_iter()
        .enumerate()
        {
            *n.last_mut().unwrap() |= 1;
            let modulus = modulus_of::<W>(&n).unwrap();
            let len = modulus.n.len();
            // n is odd: n − 1 is n with its lowest bit cleared.
            let mut n_minus_one = n.clone();
            *n_minus_one.last_mut().unwrap() ^= 1;
            let n_minus_one = modulus.element(&n_minus_one).unwrap();
            let mut values = vec![vec![W::default(); len], one::<W>(len), n_minus_one];
            values.extend((0..100u64).filter_map(|sample| {
                let mut value = octets(u64::try_from(round).unwrap() * 1000 + sample, n.len());
                value[0] &= n[0];
                modulus.element(&value)
            }));
            // Below n, with every limb but the top one all ones.
            values.push(
                (0..len)
                    .map(|i| {
                        if i + 1 < len {
                            W::low(modulus.mask())
                        } else {
                            W::default()
                        }
                    })
                    .collect(),
            );
            for value in values {
                let square = modulus.square(&value);
                assert_eq!(square, modulus.mul(&value, &value), "{n:02x?} {value:x?}");
                assert!(less_than(&square, &modulus.n));
            }
        }
    }

    /// The widest limbs whose columns fit: 28 bits in Wasm for 2048- and
    /// 3072-bit keys and 27 for 4096 bits; 60 bits natively. One limb
    /// more and the bound of `columns_fit` is broken.
    #[test]
    fn limbs_are_the_widest_whose_columns_fit() {
        for (modulus_bits, narrow, wide) in [(2048, 28, 60), (3072, 28, 60), (4096, 27, 60)] {
            assert_eq!(Modulus::<u32>::widest_limbs(modulus_bits), Some(narrow));
            assert_eq!(Modulus::<u64>::widest_limbs(modulus_bits), Some(wide));
        }
        // 28-bit limbs in a 64-bit sum: 2·len + 1 ≤ 2^8, so 127 limbs.
        assert!(columns_fit::<u32>(28, 127));
        assert!(!columns_fit::<u32>(28, 128));
        // 20-bit limbs: the carry term is 2^(64 − 60) = 16.
        assert!(columns_fit::<u32>(20, (16_777_216 - 16) / 2));
        assert!(!columns_fit::<u32>(20, (16_777_216 - 16) / 2 + 1));
        assert!(!columns_fit::<u32>(32, 1));
        assert!(!columns_fit::<u64>(64, 1));
    }

    /// Powers agree with crypto-bigint in every limb width that fits, from
    /// one bit to the word's width less one, for moduli of 1 to 9 octets
    /// and of 64 octets: the conversions between octets and limbs that do
    /// not divide into octets, and the radix of the arithmetic.
    #[test]
    fn powers_agree_in_every_limb_width() {
        widths_agree_in::<u32>();
        widths_agree_in::<u64>();
    }

    fn widths_agree_in<W: Word>() {
        for (round, len) in (1..=9).chain([64]).enumerate() {
            let seed = u64::try_from(round).unwrap() + 100;
            let mut n = octets(seed, len);
            n[0] |= 0x80;
            *n.last_mut().unwrap() |= 1;
            let odd = Odd::new(BoxedUint::from_be_slice_vartime(&n)).unwrap();
            let params = BoxedMontyParams::new_vartime(odd);
            let mut base = octets(seed * 3, len);
            base[0] &= 0x7f;
            let e = [0x01, 0x00, 0x01];
            let want = reference_pow(&n, &base, &e);
            let mut widths = 0;
            for bits in 1..W::BITS {
                let Some(modulus) = Modulus::<W>::with_limb_bits(&params, bits) else {
                    continue;
                };
                widths += 1;
                let s = modulus.element(&base).unwrap();
                let e_bits = (0..17).map(|bit| bit == 0 || bit == 16);
                let power = modulus.to_octets(&modulus.pow(&s, e_bits), len).unwrap();
                assert_eq!(trimmed(&power), want, "{len} octets, {bits}-bit limbs");
            }
            assert!(widths >= 8, "{len} octets: only {widths} widths fit");
        }
    }

    /// `columns_fit` never admits a width and limb count whose largest
    /// column can pass the wide word, computed exactly: `2·len` products
    /// of `(2^bits − 1)²` and the largest carry, `2^(wide − bits) − 1`,
    /// against `2^wide − 1`; and, for the widths keys get (a carry below
    /// one product), it gives away at most one limb.
    #[test]
    fn columns_fit_is_sound_and_nearly_tight() {
        bound_checked_in::<u32>();
        bound_checked_in::<u64>();
    }

    fn bound_checked_in<W: Word>() {
        let wide = 2 * W::BITS;
        let precision = 2 * wide;
        let power = |exponent: u32| {
            BoxedUint::one_with_precision(precision)
                .shl_vartime(exponent)
                .unwrap()
        };
        let one = BoxedUint::one_with_precision(precision);
        let exact = |bits: u32, len: u32| {
            let limb_max = power(bits).wrapping_sub(&one);
            let products = limb_max.wrapping_mul(&limb_max).wrapping_mul(
                BoxedUint::from_be_slice(&(2 * u64::from(len)).to_be_bytes(), precision).unwrap(),
            );
            let carry = power(wide - bits).wrapping_sub(&one);
            products.wrapping_add(&carry) <= power(wide).wrapping_sub(&one)
        };
        for bits in 1..W::BITS {
            if !columns_fit::<W>(bits, 1) {
                assert!(!exact(bits, 2), "{bits}-bit limbs: loose");
                continue;
            }
            // The most limbs it admits (it admits fewer as well).
            let (mut fits, mut fails) = (1u32, u32::MAX);
            while fails - fits > 1 {
                let middle = fits + (fails - fits) / 2;
                if columns_fit::<W>(bits, middle) {
                    fits = middle;
                } else {
                    fails = middle;
                }
            }
            assert!(exact(bits, fits), "{bits}-bit limbs, {fits}: unsound");
            // Where the carry is below one product (the widths keys get),
            // the bound is within a limb of the exact one.
            if 3 * bits >= wide && fails < u32::MAX {
                assert!(!exact(bits, fits + 2), "{bits}-bit limbs, {fits}: loose");
            }
        }
    }

    /// The arithmetic at the most limbs a width takes (28-bit limbs: 127,
    /// a 3,556-bit modulus; 60-bit: 127 as well), with a value whose upper
    /// limbs are all ones, against crypto-bigint. Tests build with overflow
    /// checks, so a column sum past the wide word fails here.
    #[test]
    fn the_most_limbs_a_width_takes_agree_with_crypto_bigint() {
        most_limbs_in::<u32>(28);
        most_limbs_in::<u64>(60);
    }

    fn most_limbs_in<W: Word>(bits: u32) {
        let limbs = 127;
        assert!(columns_fit::<W>(bits, limbs) && !columns_fit::<W>(bits, limbs + 1));
        let modulus_bits = usize::try_from(bits * limbs).unwrap();
        // All ones in the upper half, octets of a seed below: the
        // reduction's multiples are spread, not small.
        let mut n = vec![0xff; modulus_bits.div_ceil(8)];
        n[0] = 0xff >> (8 * n.len() - modulus_bits);
        let low = octets(u64::from(bits), n.len() / 2);
        let half = n.len() - low.len();
        n[half..].copy_from_slice(&low);
        *n.last_mut().unwrap() |= 1;
        let odd = Odd::new(BoxedUint::from_be_slice_vartime(&n)).unwrap();
        let params = BoxedMontyParams::new_vartime(odd);
        let modulus = Modulus::<W>::with_limb_bits(&params, bits).unwrap();
        assert_eq!(modulus.n.len(), usize::try_from(limbs).unwrap());
        let mut below = n.clone();
        *below.last_mut().unwrap() ^= 1;
        let x = modulus.element(&below).unwrap();
        assert_eq!(modulus.square(&x), modulus.mul(&x, &x));
        let e = [0x01, 0x00, 0x01];
        let e_bits = (0..17).map(|bit| bit == 0 || bit == 16);
        let power = modulus
            .to_octets(&modulus.pow(&x, e_bits), n.len())
            .unwrap();
        assert_eq!(trimmed(&power), reference_pow(&n, &below, &e));
    }

    #[test]
    fn moduli_that_are_even_or_one_and_values_not_below_n_are_refused() {
        refusals_in::<u32>();
        refusals_in::<u64>();
    }

    fn refusals_in<W: Word>() {
        assert!(modulus_of::<W>(&[0x10, 0x00]).is_none());
        assert!(modulus_of::<W>(&[0x01]).is_none());
        assert!(modulus_of::<W>(&[0x00, 0x01]).is_none());
        assert!(modulus_of::<W>(&[]).is_none());
        let modulus = modulus_of::<W>(&[0x01, 0x00, 0x01]).unwrap();
        assert!(modulus.element(&[0x01, 0x00, 0x00]).is_some());
        assert!(modulus.element(&[0x01, 0x00, 0x01]).is_none());
        assert!(modulus.element(&[0x01, 0x00, 0x02]).is_none());
        // Leading zero octets do not change the value; a value longer than
        // the limbs hold is refused (the signature's length is checked
        // before, against the modulus's).
        assert!(modulus.element(&[0x00, 0x00, 0x00, 0x00, 0x01]).is_some());
        let mut too_long = vec![0x00; 40];
        too_long[0] = 0x01;
        assert!(modulus.element(&too_long).is_none());
    }

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
