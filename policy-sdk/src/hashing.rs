//! A fast hasher without a key, for maps whose keys a caller cannot choose.
//!
//! Eight bytes a step (the multiply-rotate scheme of rustc's FxHash). The
//! standard SipHash is keyed so that a caller who inserts keys cannot make
//! them collide; it costs several times more per byte, which showed in the
//! filter's Wasm profile. Use this only where every key *inserted* comes
//! from the configuration or from Warden itself: a lookup with a caller's
//! string (a tool name) can find no more collisions than the configured
//! keys already have.

use std::hash::{BuildHasherDefault, Hasher};

/// The hasher (see the module's documentation for where it may be used).
#[derive(Default)]
pub struct WordHasher(u64);

impl WordHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut eight = [0_u8; 8];
            eight.copy_from_slice(word);
            self.add(u64::from_le_bytes(eight));
        }
        let mut rest = [0_u8; 8];
        let tail = words.remainder();
        if let Some(head) = rest.get_mut(..tail.len()) {
            head.copy_from_slice(tail);
        }
        // The length keeps "a" and "a\0" apart.
        self.add(u64::from_le_bytes(rest) ^ ((tail.len() as u64) << 56));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`WordHasher`]s, for `HashMap<K, V, WordHashing>`.
pub type WordHashing = BuildHasherDefault<WordHasher>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn the_word_hasher_tells_tails_and_lengths_apart() {
        let hash = |bytes: &[u8]| WordHashing::default().hash_one(bytes);
        let inputs: [&[u8]; 7] = [
            b"",
            b"a",
            b"a\0",
            b"deny",
            b"denx",
            b"12345678",
            b"123456789",
        ];
        for (i, a) in inputs.iter().enumerate() {
            for b in inputs.iter().skip(i + 1) {
                assert_ne!(hash(a), hash(b), "{a:?} {b:?}");
            }
        }
    }
}
