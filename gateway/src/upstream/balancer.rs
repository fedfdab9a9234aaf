//! The load-balancing algorithms. Each picks a target index among those for which an
//! `available` predicate holds (healthy, positive weight, not already tried). Picking
//! takes no lock and allocates nothing; whatever can be computed once is computed when
//! the pool is built.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::hash_key::HashKey;
use super::ring::Ring;
use super::target::Target;

/// Longest precomputed round-robin sequence; larger weight sums are scaled down.
const MAX_SEQUENCE: u64 = 10_000;

/// A pool's balancer with its precomputed state.
#[derive(Debug)]
pub(crate) enum Balancing {
    /// Smooth weighted round-robin.
    RoundRobin(RoundRobin),
    /// Weighted random.
    Random(WeightedRandom),
    /// Ketama ring and where its key comes from.
    ConsistentHash(Ring, HashKey),
    /// Fewest in-flight requests per unit of weight.
    LeastConnections(LeastConnections),
}

/// Smooth weighted round-robin (nginx's algorithm), run once at build time into a
/// sequence that requests then walk with an atomic counter.
#[derive(Debug)]
pub(crate) struct RoundRobin {
    sequence: Vec<u32>,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Precomputes the smooth sequence for these weights (index = target index).
    pub(crate) fn new(weights: &[u32]) -> Self {
        RoundRobin {
            sequence: smooth_sequence(weights),
            next: AtomicUsize::new(0),
        }
    }

    /// The next entry of the sequence whose target is available.
    pub(crate) fn pick(&self, available: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.sequence.len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for step in 0..len {
            let index = self.sequence[start.wrapping_add(step) % len] as usize;
            if available(index) {
                return Some(index);
            }
        }
        None
    }
}

/// nginx's smooth weighted round-robin, unrolled over one period. Weights are divided by
/// their gcd (the period is their sum) and scaled down when the sum exceeds
/// [`MAX_SEQUENCE`], keeping every positive weight at least 1.
fn smooth_sequence(weights: &[u32]) -> Vec<u32> {
    let g = weights
        .iter()
        .filter(|w| **w > 0)
        .fold(0u64, |g, w| gcd(g, u64::from(*w)));
    if g == 0 {
        return Vec::new();
    }
    let mut reduced: Vec<u64> = weights.iter().map(|w| u64::from(*w) / g).collect();
    // Equal weights (the usual pool, such as endpoints generated from Kubernetes, maybe
    // with retired slots of weight 0) give the targets in order; the loop below would
    // spend n × n steps to find that out.
    if reduced.iter().all(|w| *w <= 1) {
        return (0..weights.len() as u32)
            .filter(|i| reduced[*i as usize] == 1)
            .collect();
    }
    let sum: u64 = reduced.iter().sum();
    if sum > MAX_SEQUENCE {
        for w in reduced.iter_mut().filter(|w| **w > 0) {
            *w = (*w * MAX_SEQUENCE / sum).max(1);
        }
    }
    let total: i64 = reduced.iter().map(|w| *w as i64).sum();
    let mut current = vec![0i64; reduced.len()];
    let mut sequence = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in reduced.iter().enumerate() {
            current[i] += *w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        sequence.push(best as u32);
    }
    sequence
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Weighted random: cumulative weights, a uniform draw, a binary search.
#[derive(Debug)]
pub(crate) struct WeightedRandom {
    /// `cumulative[i]` = sum of the weights of targets `0..=i`.
    cumulative: Vec<u64>,
}

impl WeightedRandom {
    /// Precomputes the cumulative weights.
    pub(crate) fn new(weights: &[u32]) -> Self {
        let mut sum = 0u64;
        let cumulative = weights
            .iter()
            .map(|w| {
                sum += u64::from(*w);
                sum
            })
            .collect();
        WeightedRandom { cumulative }
    }

    /// A random available target, each with probability proportional to its weight
    /// among the available ones.
    pub(crate) fn pick(
        &self,
        weights: impl Fn(usize) -> u32,
        available: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let total = *self.cumulative.last()?;
        if total == 0 {
            return None;
        }
        // Fast path: a draw over every target, kept if that target is available.
        let r = fastrand::u64(0..total);
        let index = self.cumulative.partition_point(|c| *c <= r);
        if index < self.cumulative.len() && available(index) {
            return Some(index);
        }
        // Some targets are out: draw again over the available ones only.
        let n = self.cumulative.len();
        let live: u64 = (0..n)
            .filter(|i| available(*i))
            .map(|i| u64::from(weights(i)))
            .sum();
        if live == 0 {
            return None;
        }
        let mut r = fastrand::u64(0..live);
        for i in (0..n).filter(|i| available(*i)) {
            let w = u64::from(weights(i));
            if r < w {
                return Some(i);
            }
            r -= w;
        }
        None
    }
}

/// Least connections: the lowest in-flight count per unit of weight; ties go to the first
/// candidate from a rotating start so equal targets share the load.
#[derive(Debug, Default)]
pub(crate) struct LeastConnections {
    next: AtomicUsize,
}

impl LeastConnections {
    /// The least-loaded available target.
    pub(crate) fn pick(
        &self,
        targets: &[std::sync::Arc<Target>],
        available: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = targets.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u128, u128)> = None;
        for step in 0..n {
            let i = start.wrapping_add(step) % n;
            if !available(i) {
                continue;
            }
            let load = targets[i].in_flight() as u128;
            let weight = u128::from(targets[i].weight());
            // load/weight < best_load/best_weight, without division.
            let better = match best {
                None => true,
                Some((_, bl, bw)) => load * bw < bl * weight,
            };
            if better {
                best = Some((i, load, weight));
            }
        }
        best.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(seq: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for i in seq {
            c[*i as usize] += 1;
        }
        c
    }

    #[test]
    fn smooth_sequence_matches_nginx() {
        // nginx gives a a b a c a a for 5:1:1.
        assert_eq!(smooth_sequence(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn equal_weights_give_the_targets_in_order() {
        assert_eq!(smooth_sequence(&[7, 7, 7, 7]), vec![0, 1, 2, 3]);
        // The same as the general loop would give.
        assert_eq!(smooth_sequence(&[1, 1, 1]), vec![0, 1, 2]);
        assert_eq!(smooth_sequence(&[3, 0, 3]), vec![0, 2]);
        assert_eq!(smooth_sequence(&[0, 5, 0, 5]), vec![1, 3]);
    }

    #[test]
    fn sequence_is_reduced_by_gcd_and_capped() {
        assert_eq!(smooth_sequence(&[100, 50]), vec![0, 1, 0]);
        assert_eq!(smooth_sequence(&[0, 7]), vec![1]);
        assert!(smooth_sequence(&[0, 0]).is_empty());
        let seq = smooth_sequence(&[999_983, 1, 499_979]);
        assert!(seq.len() <= MAX_SEQUENCE as usize + 3);
        let c = counts(&seq, 3);
        assert!(c[1] >= 1, "a positive weight keeps at least one slot");
        let ratio = c[0] as f64 / c[2] as f64;
        assert!((ratio - 2.0).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn round_robin_skips_unavailable_entries() {
        let rr = RoundRobin::new(&[1, 1, 1]);
        for _ in 0..30 {
            assert_ne!(rr.pick(|i| i != 1), Some(1));
        }
        assert_eq!(rr.pick(|_| false), None);
    }

    #[test]
    fn random_redraws_over_available_targets() {
        let r = WeightedRandom::new(&[1, 1000, 0]);
        let w = [1, 1000, 0];
        for _ in 0..1_000 {
            assert_eq!(r.pick(|i| w[i], |i| i == 0), Some(0));
        }
        assert_eq!(r.pick(|i| w[i], |_| false), None);
        assert_eq!(WeightedRandom::new(&[]).pick(|_| 1, |_| true), None);
    }
}
