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
//! Why Warden's own Montgomery multiplication, in 32-bit limbs in Wasm:
//! Wasm has a 64-bit multiply but no 64 × 64 → 128-bit one, and
//! crypto-bigint uses 64-bit limbs on `wasm32` (its `cpubits` promotes the
//! target), so each limb product there is a library routine of several
//! multiplies. With 32-bit limbs every product is one `i64.mul`. In Envoy,
//! a fresh RS256 token cost about 570 µs of Wasm over a repeated one with
//! crypto-bigint's multiplication, against 64 µs natively for the same
//! verification. Natively the limbs stay 64 bits wide.
//!
//! The check is RFC 8017 §8.2.2 as written: the signature is converted and
//! range-checked, raised to `e`, and the result compared with the one valid
//! encoding of the message (EMSA-PKCS1-v1_5, §9.2), built from the hash.
//! Nothing is parsed out of the decrypted block, so no reading of its ASN.1
//! can be fooled (the class of bug behind BERserk).
//!
//! The modulus, `R² mod n` and `−n⁻¹` come from the Montgomery parameters
//! the rsa crate computes when the key loads (`n_params`); only the limbs
//! are Warden's.

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
        let Some(em) = to_octets(&m, k) else {
            return false;
        };
        // Steps 3 and 4: encode the message, compare the two encodings.
        expected_encoding(k, &sha2::Sha256::digest(message)).is_some_and(|want| want == em)
    }
}

/// The limb of the Montgomery arithmetic: 32 bits in Wasm, whose widest
/// multiply is 64 × 64 → 64 bits (a 32-bit limb product is one `i64.mul`,
/// a 64-bit one a library routine); 64 bits natively, where the processor
/// multiplies 64 × 64 → 128. Both widths run the same code, and the tests
/// run both.
#[cfg(target_arch = "wasm32")]
type Limb = u32;
#[cfg(not(target_arch = "wasm32"))]
type Limb = u64;

/// An unsigned machine word as a limb of a big number.
trait Word: Copy + Ord + std::fmt::Debug {
    const BITS: u32;
    const ZERO: Self;
    const ONE: Self;
    /// `a · b + c + d` as (low word, high word): it cannot overflow.
    fn mac(a: Self, b: Self, c: Self, d: Self) -> (Self, Self);
    fn wrapping_mul(self, other: Self) -> Self;
    /// The word shifted left by one bit, the top bit shifted in at the
    /// bottom from `carry_in`, and the bit shifted out.
    fn double_with(self, carry_in: Self) -> (Self, Self);
    fn overflowing_sub(self, other: Self) -> (Self, bool);
    /// The low `BITS` bits of `value`.
    fn low_bits_of(value: u64) -> Self;
    /// Big-endian octets (at most `BITS / 8` of them) as a word.
    fn from_be(octets: &[u8]) -> Self;
    fn be_octets(self) -> Vec<u8>;
}

macro_rules! word {
    ($word:ty, $wide:ty) => {
        impl Word for $word {
            const BITS: u32 = <$word>::BITS;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            fn mac(a: Self, b: Self, c: Self, d: Self) -> (Self, Self) {
                let sum = <$wide>::from(a) * <$wide>::from(b) + <$wide>::from(c) + <$wide>::from(d);
                let low = <$word>::try_from(sum & <$wide>::from(<$word>::MAX)).unwrap_or_default();
                let high = <$word>::try_from(sum >> <$word>::BITS).unwrap_or_default();
                (low, high)
            }
            fn wrapping_mul(self, other: Self) -> Self {
                <$word>::wrapping_mul(self, other)
            }
            fn double_with(self, carry_in: Self) -> (Self, Self) {
                ((self << 1) | carry_in, self >> (<$word>::BITS - 1))
            }
            fn overflowing_sub(self, other: Self) -> (Self, bool) {
                <$word>::overflowing_sub(self, other)
            }
            fn low_bits_of(value: u64) -> Self {
                <$word>::try_from(value & u64::from(<$word>::MAX)).unwrap_or_default()
            }
            fn from_be(octets: &[u8]) -> Self {
                octets
                    .iter()
                    .fold(0, |acc, &octet| (acc << 8) | <$word>::from(octet))
            }
            fn be_octets(self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
        }
    };
}
word!(u32, u64);
word!(u64, u128);

/// An odd modulus `n` in limbs (least significant first), with what
/// Montgomery multiplication modulo `n` needs: `−n⁻¹ mod 2^w` and
/// `R² mod n`, where `R = 2^(w·limbs)` for `w`-bit limbs.
#[derive(Debug, Clone, PartialEq)]
struct Modulus<W: Word = Limb> {
    n: Vec<W>,
    n0_inv: W,
    r2: Vec<W>,
}

impl<W: Word> Modulus<W> {
    /// The modulus of crypto-bigint's Montgomery parameters, in `W` limbs:
    /// as many as its precision holds, so that its `R`, and so its
    /// `R² mod n`, is this arithmetic's too. `−n⁻¹ mod 2^64` taken modulo
    /// `2^w` is `−n⁻¹ mod 2^w`. `None` for n = 1 (or a precision that is
    /// not a whole number of limbs).
    fn new(params: &BoxedMontyParams) -> Option<Self> {
        let params = params.as_ref();
        let precision = params.modulus().as_ref().bits_precision();
        if precision % W::BITS != 0 {
            return None;
        }
        let len = usize::try_from(precision / W::BITS).ok()?;
        let n = limbs_from_be::<W>(&params.modulus().as_ref().to_be_bytes(), len)?;
        if n.first() == Some(&W::ONE) && n.iter().skip(1).all(|&limb| limb == W::ZERO) {
            return None;
        }
        let r2 = limbs_from_be::<W>(&params.r2().to_be_bytes(), len)?;
        Some(Self {
            n,
            n0_inv: W::low_bits_of(params.mod_neg_inv().0),
            r2,
        })
    }

    /// Big-endian `bytes` as a value below `n`, in plain (not Montgomery)
    /// form; `None` when it is `n` or above.
    fn element(&self, bytes: &[u8]) -> Option<Vec<W>> {
        limbs_from_be::<W>(bytes, self.n.len()).filter(|x| less_than(x, &self.n))
    }

    /// `a · b · R⁻¹ mod n` for `a, b < n`, fully reduced. Separated
    /// operand scanning: the whole product, then one multiple of `n` per
    /// limb that clears it, and the upper half is the result (below 2n).
    fn mul(&self, a: &[W], b: &[W]) -> Vec<W> {
        let len = self.n.len();
        let mut t = vec![W::ZERO; 2 * len + 1];
        for (i, &b_i) in b.iter().enumerate() {
            let carry = t
                .get_mut(i..i + len)
                .map_or(W::ZERO, |row| add_row_product(row, a, b_i));
            if let Some(top) = t.get_mut(i + len) {
                *top = carry;
            }
        }
        self.reduce(t)
    }

    /// `a · a · R⁻¹ mod n` for `a < n`, as `mul(a, a)` gives it, with half
    /// the limb products: each cross product `a_i·a_j` (i < j) once, the
    /// sum doubled, then the squares `a_i²` added. Of the 17 products of a
    /// verification with e = 65537, 16 are squarings.
    fn square(&self, a: &[W]) -> Vec<W> {
        let len = self.n.len();
        let mut t = vec![W::ZERO; 2 * len + 1];
        for (i, &a_i) in a.iter().enumerate() {
            let carry = match (t.get_mut(2 * i + 1..i + len), a.get(i + 1..)) {
                (Some(row), Some(higher)) => add_row_product(row, higher, a_i),
                _ => W::ZERO,
            };
            if let Some(top) = t.get_mut(i + len) {
                *top = carry;
            }
        }
        // a² < R², so the doubled sum and the squares fit in 2·len limbs:
        // nothing is shifted or carried out of the top.
        let mut shifted_out = W::ZERO;
        for t_k in &mut t {
            (*t_k, shifted_out) = t_k.double_with(shifted_out);
        }
        let mut carry = W::ZERO;
        for (pair, &a_i) in t.chunks_exact_mut(2).zip(a) {
            if let [low, high] = pair {
                let (sum, over) = W::mac(a_i, a_i, *low, carry);
                *low = sum;
                (*high, carry) = W::mac(W::ZERO, W::ZERO, *high, over);
            }
        }
        self.reduce(t)
    }

    /// `t · R⁻¹ mod n` for `t < n·R` in `2·len + 1` limbs (the top one
    /// zero), fully reduced: one multiple of `n` per limb that clears it,
    /// and the upper half is the result (below 2n).
    fn reduce(&self, mut t: Vec<W>) -> Vec<W> {
        let len = self.n.len();
        for i in 0..len {
            let m = t
                .get(i)
                .map_or(W::ZERO, |&t_i| t_i.wrapping_mul(self.n0_inv));
            let mut carry = t
                .get_mut(i..i + len)
                .map_or(W::ZERO, |row| add_row_product(row, &self.n, m));
            for t_k in t.iter_mut().skip(i + len) {
                if carry == W::ZERO {
                    break;
                }
                (*t_k, carry) = W::mac(W::ZERO, W::ZERO, *t_k, carry);
            }
        }
        let mut result = t.split_off(len);
        let above = result.pop().is_some_and(|top| top != W::ZERO);
        if above || !less_than(&result, &self.n) {
            subtract(&mut result, &self.n);
        }
        result
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
        acc.resize(2 * self.n.len() + 1, W::ZERO);
        self.reduce(acc)
    }
}

/// `row += x · y` over the limbs of `row` and `x` (the same number), the
/// limb carried out returned. Four limbs a step: V8 does not unroll loops,
/// and a one-limb step spends about a third of its instructions on the
/// loop itself (about 15 % of an RS256 verification in Node).
fn add_row_product<W: Word>(row: &mut [W], x: &[W], y: W) -> W {
    let mut carry = W::ZERO;
    let mut row_quads = row.chunks_exact_mut(4);
    let mut x_quads = x.chunks_exact(4);
    for (r4, x4) in (&mut row_quads).zip(&mut x_quads) {
        if let ([r0, r1, r2, r3], [x0, x1, x2, x3]) = (r4, x4) {
            (*r0, carry) = W::mac(*x0, y, *r0, carry);
            (*r1, carry) = W::mac(*x1, y, *r1, carry);
            (*r2, carry) = W::mac(*x2, y, *r2, carry);
            (*r3, carry) = W::mac(*x3, y, *r3, carry);
        }
    }
    for (r, &x) in row_quads
        .into_remainder()
        .iter_mut()
        .zip(x_quads.remainder())
    {
        (*r, carry) = W::mac(x, y, *r, carry);
    }
    carry
}

fn one<W: Word>(len: usize) -> Vec<W> {
    let mut one = vec![W::ZERO; len];
    if let Some(low) = one.first_mut() {
        *low = W::ONE;
    }
    one
}

/// `x < y`, for values of the same number of limbs.
fn less_than<W: Word>(x: &[W], y: &[W]) -> bool {
    x.iter().rev().cmp(y.iter().rev()).is_lt()
}

/// `x -= y` modulo 2^(w·len), for values of the same number of limbs.
fn subtract<W: Word>(x: &mut [W], y: &[W]) {
    let mut borrow = false;
    for (x_i, &y_i) in x.iter_mut().zip(y) {
        let (difference, under) = x_i.overflowing_sub(y_i);
        let (difference, under_again) =
            difference.overflowing_sub(if borrow { W::ONE } else { W::ZERO });
        *x_i = difference;
        borrow = under || under_again;
    }
}

/// Big-endian octets as `len` limbs, least significant first; `None` when
/// they do not fit.
fn limbs_from_be<W: Word>(bytes: &[u8], len: usize) -> Option<Vec<W>> {
    let octets_per_limb = usize::try_from(W::BITS / 8).ok()?;
    if bytes.len() > octets_per_limb * len {
        return None;
    }
    let mut limbs = vec![W::ZERO; len];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.rchunks(octets_per_limb)) {
        *limb = W::from_be(chunk);
    }
    Some(limbs)
}

/// I2OSP (RFC 8017 §4.1): the value as exactly `k` big-endian octets;
/// `None` when it needs more.
fn to_octets<W: Word>(limbs: &[W], k: usize) -> Option<Vec<u8>> {
    let octets: Vec<u8> = limbs
        .iter()
        .rev()
        .flat_map(|limb| limb.be_octets())
        .collect();
    let split = octets.len().checked_sub(k)?;
    let (high, value) = octets.split_at(split);
    high.iter().all(|&b| b == 0).then(|| value.to_vec())
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
                let power = to_octets(&modulus.pow(&s, bits.into_iter()), len).unwrap();
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
                    trimmed(&to_octets(&product, n.len()).unwrap()),
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
            let mut n_minus_one = modulus.n.clone();
            subtract(&mut n_minus_one, &one::<W>(len));
            let mut values = vec![vec![W::ZERO; len], one::<W>(len), n_minus_one];
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
                            W::low_bits_of(u64::MAX)
                        } else {
                            W::ZERO
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
        // More octets than the limbs hold, even if their value is small.
        let too_long = vec![0x00; modulus.n.len() * W::BITS as usize / 8 + 1];
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
