//! A small cache with a time to live and a hard cap on its entries.
//!
//! Every entry lives for the same `ttl`, so insertion order is also expiry order: a queue
//! of insertions finds both the oldest and the first expired entry at its front, and
//! eviction is O(1) amortized without a sorted structure. When the cache is full, expired
//! entries go first, then the oldest.
//!
//! Bound: at most `capacity` entries; the insertion queue holds at most `2 * capacity +
//! 1` records (stale records of replaced keys are compacted away beyond that).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A bounded map whose entries expire `ttl` after insertion.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<K, Slot<V>>,
    /// Keys in insertion order, with the sequence number of the insertion.
    order: VecDeque<(K, u64)>,
    next_seq: u64,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    inserted: Instant,
    seq: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// An empty cache of at most `capacity` entries, each living `ttl`. A zero capacity
    /// or ttl caches nothing.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        TtlCache {
            ttl,
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    /// The live value for `key`, if any.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries
            .get(key)
            .filter(|s| now.saturating_duration_since(s.inserted) < self.ttl)
            .map(|s| s.value.clone())
    }

    /// Inserts or replaces `key`, evicting expired entries, then the oldest, to stay
    /// within the capacity.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        self.evict_expired(now);
        while self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            if !self.pop_oldest() {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            key.clone(),
            Slot {
                value,
                inserted: now,
                seq,
            },
        );
        self.order.push_back((key, seq));
        if self.order.len() > 2 * self.capacity + 1 {
            // Replaced keys left stale records behind: keep only the live ones.
            let entries = &self.entries;
            self.order
                .retain(|(k, seq)| entries.get(k).is_some_and(|s| s.seq == *seq));
        }
    }

    /// Live and expired-but-not-yet-evicted entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_expired(&mut self, now: Instant) {
        while let Some((key, seq)) = self.order.front() {
            match self.entries.get(key) {
                Some(s) if s.seq == *seq => {
                    if now.saturating_duration_since(s.inserted) < self.ttl {
                        return;
                    }
                    self.entries.remove(key);
                }
                // A stale record of a replaced or evicted key.
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Removes the oldest live entry; false if there is none.
    fn pop_oldest(&mut self) -> bool {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|s| s.seq == seq) {
                self.entries.remove(&key);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(10, Duration::from_secs(5));
        c.insert("a", 1, t0);
        assert_eq!(c.get(&"a", t0 + Duration::from_secs(4)), Some(1));
        assert_eq!(c.get(&"a", t0 + Duration::from_secs(5)), None);
        // Expired entries are evicted by the next insertion.
        c.insert("b", 2, t0 + Duration::from_secs(6));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_cache_evicts_the_oldest() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(2, Duration::from_secs(60));
        c.insert("a", 1, t0);
        c.insert("b", 2, t0);
        c.insert("c", 3, t0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&"a", t0), None);
        assert_eq!(c.get(&"c", t0), Some(3));
    }

    #[test]
    fn replacing_keys_stays_bounded() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(3, Duration::from_secs(60));
        for i in 0..1000 {
            c.insert(i % 2, i, t0);
        }
        assert_eq!(c.len(), 2);
        assert!(c.order.len() <= 7);
        assert_eq!(c.get(&1, t0), Some(999));
    }

    #[test]
    fn zero_capacity_or_ttl_caches_nothing() {
        let t0 = Instant::now();
        let mut c = TtlCache::new(0, Duration::from_secs(60));
        c.insert(1, 1, t0);
        assert!(c.is_empty());
        let mut c = TtlCache::new(5, Duration::ZERO);
        c.insert(1, 1, t0);
        assert!(c.is_empty());
    }
}
