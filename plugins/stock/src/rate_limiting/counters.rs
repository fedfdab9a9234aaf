//! One window's counters: a map from [`KeyDigest`] to a count that never holds more than
//! a fixed number of keys.
//!
//! - **Bounded.** At most `max_keys` keys. A new key arriving when the map is full
//!   evicts one: among a few entries picked at random (from bits of the new key's
//!   digest, which clients cannot predict), the one with the lowest count. One-off keys,
//!   such as those of a flood of made-up identifiers, go first; keys that have spent
//!   much of their allowance, the ones whose limit matters, stay. An evicted client
//!   starts again from zero, which is the price of the bound.
//! - **Only counted keys.** A key is created by a request that is counted, never by one
//!   that is refused or only read, and a key whose count is given back to zero is
//!   removed: a refused request leaves nothing behind.
//! - **Exact.** Each shard is a small map behind its own mutex, held only around one
//!   map operation (never across an `.await`: nothing here is async), so check and
//!   increment are one step.
//! - **Fixed cost per key.** An entry is a 16-byte digest and an 8-byte count, plus the
//!   map's index: about 40 bytes, and up to twice that while a shard's storage grows.

use std::sync::Mutex;

use indexmap::IndexMap;

use super::key::{BuildDigestHasher, KeyDigest};

/// How many entries are compared when one must be evicted.
const EVICTION_SAMPLES: u32 = 4;

/// Shards let concurrent requests for different keys proceed in parallel; a small
/// limit needs no more than one (and then holds exactly `max_keys`).
const MAX_SHARDS: usize = 64;
/// Keys per shard below which fewer shards are used.
const KEYS_PER_SHARD: usize = 1024;

type Map = IndexMap<KeyDigest, u64, BuildDigestHasher>;

/// One shard: its map and how many keys it may hold.
#[derive(Debug)]
struct Shard {
    map: Map,
    cap: usize,
}

/// What a [`Counters::try_acquire`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Acquired {
    /// `Ok(count including this request)`, or `Err(current count)` when full.
    pub result: Result<u64, u64>,
    /// Whether another key was evicted to make room for this one.
    pub evicted: bool,
}

/// The counters of one window, bounded to `max_keys` keys.
#[derive(Debug)]
pub(crate) struct Counters {
    shards: Box<[Mutex<Shard>]>,
    /// `shards.len() - 1`; the number of shards is a power of two.
    mask: u64,
}

impl Counters {
    /// Empty counters holding at most `max_keys` keys (at least 1).
    pub fn new(max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let n = (max_keys / KEYS_PER_SHARD)
            .clamp(1, MAX_SHARDS)
            .next_power_of_two()
            .min(MAX_SHARDS);
        // Split exactly: the caps add up to `max_keys`, and each is at least 1 because
        // `n <= max_keys`.
        let shards = (0..n)
            .map(|i| {
                let cap = max_keys / n + usize::from(i < max_keys % n);
                Mutex::new(Shard {
                    map: Map::default(),
                    cap,
                })
            })
            .collect();
        Counters {
            shards,
            mask: n as u64 - 1,
        }
    }

    fn shard(&self, key: KeyDigest) -> std::sync::MutexGuard<'_, Shard> {
        // Widening: `mask` < MAX_SHARDS.
        let i = (key.spread() & self.mask) as usize;
        // A panic while holding the lock cannot leave a count half-updated (each
        // operation is one map call), so a poisoned shard is still usable.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for `key` if its count is below `limit`, creating the key (and
    /// evicting another when full) only when the slot is taken.
    pub fn try_acquire(&self, key: KeyDigest, limit: u64) -> Acquired {
        let mut shard = self.shard(key);
        if let Some(count) = shard.map.get_mut(&key) {
            let result = if *count < limit {
                *count += 1;
                Ok(*count)
            } else {
                Err(*count)
            };
            return Acquired {
                result,
                evicted: false,
            };
        }
        if limit == 0 {
            // Refused before counting: keep nothing.
            return Acquired {
                result: Err(0),
                evicted: false,
            };
        }
        let evicted = shard.map.len() >= shard.cap;
        if evicted {
            evict_one(&mut shard.map, key.spread());
        }
        shard.map.insert(key, 1);
        Acquired {
            result: Ok(1),
            evicted,
        }
    }

    /// Gives back a slot taken by [`Self::try_acquire`]; a key back at zero is removed.
    pub fn release(&self, key: KeyDigest) {
        let mut shard = self.shard(key);
        if let Some(count) = shard.map.get_mut(&key) {
            // Never below zero, whatever happens around us.
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.map.swap_remove(&key);
            }
        }
    }

    /// The current count of `key`, without creating it.
    pub fn count(&self, key: KeyDigest) -> u64 {
        self.shard(key).map.get(&key).copied().unwrap_or(0)
    }

    /// How many keys are held (tests only: it locks every shard in turn).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    /// Every key held (tests only: it locks every shard in turn).
    #[cfg(test)]
    pub fn keys(&self) -> Vec<KeyDigest> {
        self.shards
            .iter()
            .flat_map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.map.keys().copied().collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Removes one entry of a non-empty `map`: the lowest count among a few positions
/// taken from `random` (bits of a keyed digest, unpredictable to clients).
fn evict_one(map: &mut Map, random: u64) {
    let len = map.len();
    if len == 0 {
        return;
    }
    let mut victim: Option<(usize, u64)> = None;
    for s in 0..EVICTION_SAMPLES {
        // A different rotation of the word for each draw. Truncation on 32-bit targets
        // only drops bits of a random number.
        let i = (random.rotate_right(8 + 16 * s) as usize) % len;
        let count = map.get_index(i).map_or(u64::MAX, |(_, c)| *c);
        if victim.is_none_or(|(_, c)| count < c) {
            victim = Some((i, count));
        }
    }
    if let Some((i, _)) = victim {
        map.swap_remove_index(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limiting::key::KeyHasher;
    use crate::rate_limiting::limiter::Identifier;

    fn keys(n: usize) -> (KeyHasher, Vec<KeyDigest>) {
        let h = KeyHasher::new().expect("random");
        let k = (0..n)
            .map(|i| h.digest(Identifier::Name(format!("client-{i}").as_bytes())))
            .collect();
        (h, k)
    }

    #[test]
    fn shards_split_the_cap_exactly() {
        for max in [1, 2, 100, 1023, 1024, 5000, 100_000, 1_000_000] {
            let c = Counters::new(max);
            let total: usize = c
                .shards
                .iter()
                .map(|s| s.lock().map(|s| s.cap).unwrap_or(0))
                .sum();
            assert_eq!(total, max, "{max}");
            assert!(c.shards.len().is_power_of_two() && c.shards.len() <= MAX_SHARDS);
        }
    }

    #[test]
    fn limits_are_exact_below_the_cap() {
        let c = Counters::new(100);
        let (_, k) = keys(50);
        for key in &k {
            for n in 1..=3 {
                assert_eq!(c.try_acquire(*key, 3).result, Ok(n));
            }
            assert_eq!(c.try_acquire(*key, 3).result, Err(3));
        }
        assert_eq!(c.len(), 50);
        assert!(k.iter().all(|key| c.count(*key) == 3));
    }

    #[test]
    fn a_refused_or_given_back_request_keeps_no_key() {
        let c = Counters::new(10);
        let (_, k) = keys(2);
        assert_eq!(c.try_acquire(k[0], 0).result, Err(0));
        assert_eq!(c.len(), 0);
        assert_eq!(c.count(k[0]), 0);
        assert_eq!(c.len(), 0);
        assert_eq!(c.try_acquire(k[1], 5).result, Ok(1));
        c.release(k[1]);
        assert_eq!(c.len(), 0);
        // Releasing an absent key is harmless.
        c.release(k[1]);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn at_the_cap_a_new_key_evicts_one() {
        let c = Counters::new(100);
        let (_, k) = keys(1_000);
        let mut evictions = 0;
        for (i, key) in k.iter().enumerate() {
            let a = c.try_acquire(*key, 10);
            assert_eq!(a.result, Ok(1));
            evictions += usize::from(a.evicted);
            assert_eq!(c.len(), (i + 1).min(100));
        }
        assert_eq!(evictions, 900);
        // The newest key is always kept.
        assert_eq!(c.count(k[999]), 1);
    }

    #[test]
    fn eviction_prefers_low_counts() {
        // 100 keys at their limit, then a flood of one-off keys: sampling 4 entries, a
        // busy key is evicted only when all 4 are busy, so most of them stay.
        let c = Counters::new(200);
        let (h, busy) = keys(100);
        for key in &busy {
            for _ in 0..50 {
                let _ = c.try_acquire(*key, 50);
            }
        }
        // With uniform eviction about 1 busy key in 100 would survive this flood.
        for i in 0..1_000 {
            let key = h.digest(Identifier::Name(format!("flood-{i}").as_bytes()));
            let _ = c.try_acquire(key, 50);
        }
        let kept = busy.iter().filter(|k| c.count(**k) == 50).count();
        assert!(kept >= 50, "only {kept} of 100 busy keys kept");
        assert_eq!(c.len(), 200);
    }
}
