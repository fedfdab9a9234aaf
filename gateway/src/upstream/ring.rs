//! A Ketama-style consistent-hash ring.
//!
//! Each target owns points on a 64-bit circle, hashed from `"<addr>-<i>"`; a key goes to
//! the first point at or after its hash. Because a target's points depend only on its own
//! address, removing one of N targets moves only the keys that were on it (about 1/N).
//!
//! The hash is a fixed function (FNV-1a with a 64-bit finalizer), not the standard
//! library's, so that every gateway replica and every version maps a key the same way.

use std::net::SocketAddr;

/// Points per target of average weight.
const POINTS_PER_TARGET: u64 = 160;

/// Upper bound on the ring's size, whatever the weights.
const MAX_POINTS: u64 = 160 * 10_000;

/// The ring: points sorted by hash, each naming a target index.
#[derive(Debug)]
pub(crate) struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring for targets `(addr, weight)`; a target's point count is
    /// proportional to its weight (160 for a target of average weight), weight 0 gives
    /// none.
    pub(crate) fn new(targets: &[(SocketAddr, u32)]) -> Self {
        let total: u64 = targets.iter().map(|(_, w)| u64::from(*w)).sum();
        let count = targets.iter().filter(|(_, w)| *w > 0).count() as u64;
        let budget = (POINTS_PER_TARGET * count).min(MAX_POINTS);
        let mut points = Vec::new();
        for (index, (addr, weight)) in targets.iter().enumerate() {
            let Some(n) = (budget * u64::from(*weight)).checked_div(total) else {
                break; // every weight is 0: an empty ring
            };
            if *weight == 0 {
                continue;
            }
            for i in 0..n.max(1) {
                let key = format!("{addr}-{i}");
                points.push((hash(key.as_bytes()), index as u32));
            }
        }
        // Ties (astronomically rare) are ordered by index so the ring is deterministic.
        points.sort_unstable();
        Ring { points }
    }

    /// The first target clockwise from `key_hash` for which `available` holds.
    pub(crate) fn pick(&self, key_hash: u64, available: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let start = self.points.partition_point(|(h, _)| *h < key_hash);
        for step in 0..len {
            let (_, index) = self.points[(start + step) % len];
            let index = index as usize;
            if available(index) {
                return Some(index);
            }
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

/// A streaming 64-bit hash (FNV-1a, then a murmur3-style finalizer for avalanche), so
/// keys can be hashed in pieces without building a string.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// An empty hash.
    pub(crate) fn new() -> Self {
        KeyHasher(Self::OFFSET)
    }

    /// Feeds bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// The final, well-mixed value.
    pub(crate) fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h
    }
}

/// Hashes one byte string.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let mut h = KeyHasher::new();
    h.write(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<(SocketAddr, u32)> {
        (1..=n)
            .map(|i| (format!("10.0.0.{i}:80").parse().unwrap(), 1))
            .collect()
    }

    #[test]
    fn hash_is_stable_across_builds_and_versions() {
        // Pinned so that a change of hash function (which would move every key on every
        // replica) is a deliberate decision.
        assert_eq!(hash(b"10.0.0.1:80-0"), 0x57db_4878_9b28_f61c);
        assert_ne!(hash(b"a"), hash(b"b"));
        let mut h = KeyHasher::new();
        h.write(b"ab");
        h.write(b"c");
        assert_eq!(h.finish(), hash(b"abc"));
    }

    #[test]
    fn points_scale_with_weight() {
        let mut t = addrs(2);
        assert_eq!(Ring::new(&t).len(), 320);
        t[0].1 = 3;
        t[1].1 = 1;
        assert_eq!(Ring::new(&t).len(), 240 + 80);
        t[1].1 = 0;
        assert_eq!(Ring::new(&t).len(), 160, "weight 0 has no points");
    }

    #[test]
    fn keys_spread_over_targets() {
        let ring = Ring::new(&addrs(5));
        let mut counts = [0usize; 5];
        for k in 0..10_000u32 {
            let i = ring.pick(hash(&k.to_be_bytes()), |_| true).unwrap();
            counts[i] += 1;
        }
        for c in counts {
            assert!((1_000..3_000).contains(&c), "uneven ring: {counts:?}");
        }
    }

    #[test]
    fn walks_clockwise_past_unavailable_targets() {
        let ring = Ring::new(&addrs(3));
        for k in 0..1_000u32 {
            let h = hash(&k.to_be_bytes());
            let i = ring.pick(h, |_| true).unwrap();
            let j = ring.pick(h, |x| x != i).unwrap();
            assert_ne!(i, j);
        }
        assert_eq!(ring.pick(1, |_| false), None);
    }
}
