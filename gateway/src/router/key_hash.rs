//! The hash of the route table's keys (hosts, paths): a multiply-rotate hash over 8
//! bytes at a time, a few instructions per key where the standard SipHash takes a
//! hundred or more on every lookup.
//!
//! Not keyed, which is safe here: the tables' keys come from the configuration, never
//! from clients, so a client cannot make them collide; a request's host or path is
//! only looked up, and a lookup costs at most the probes the configured keys already
//! need.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by configured hosts or paths, hashed with [`KeyHasher`].
pub(crate) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// See the module's note.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl KeyHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The table takes its control bits from the top of the hash: fold the well-mixed
        // high half down and the low half up.
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(K).rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_keys_hash_apart_and_equal_keys_alike() {
        let hash = |s: &str| {
            let mut h = KeyHasher::default();
            std::hash::Hash::hash(s, &mut h);
            h.finish()
        };
        assert_eq!(hash("/api/users"), hash("/api/users"));
        let keys = [
            "",
            "/",
            "/a",
            "/b",
            "/api",
            "/api/users",
            "/api/users/",
            "a.example.com",
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a:?} and {b:?}");
            }
        }
        let mut map: KeyMap<Box<str>, usize> = KeyMap::default();
        for (i, k) in keys.iter().enumerate() {
            map.insert((*k).into(), i);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(*k), Some(&i));
        }
        assert_eq!(map.get("/c"), None);
    }
}
