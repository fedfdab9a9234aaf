//! Passive health checking (Envoy's outlier detection): each target counts the requests
//! it failed in a row; past a threshold it is ejected from its pool for a time that
//! grows with each ejection, unless that would eject more than `max_ejection_percent`
//! of the pool. An ejected target is skipped by the balancer like an unhealthy one; it
//! is back when its time is over, or as soon as an active health check brings it up.
//!
//! The state is a few atomics per target (in its [`TargetState`](super::target), so it
//! survives reloads); recording a result and checking for an ejection take no lock.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::OutlierDetectionConfig;

/// What an attempt's result was, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// A response with this 5xx status.
    Status5xx(u16),
    /// No response: connect failure, reset, timeout (a gateway error, and a 5xx).
    LocalFailure,
}

/// Microseconds since the first call in this process: a compact clock for atomics.
pub(crate) fn now_micros() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // +1 so that 0 always means "never ejected".
    (epoch.elapsed().as_micros() as u64).saturating_add(1)
}

/// A target's passive-health state.
#[derive(Debug, Default)]
pub(crate) struct OutlierState {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// When the current or last ejection ends ([`now_micros`]); 0: never ejected.
    ejected_until: AtomicU64,
    /// Ejections counted into the next ejection's length.
    multiplier: AtomicU32,
    /// Ejections since the target was first seen.
    ejections: AtomicU64,
}

/// A target reached a threshold: the pool decides whether it may be ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EjectionDue;

impl OutlierState {
    /// Whether the target is ejected at `now` ([`now_micros`]).
    pub(crate) fn is_ejected_at(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now < until
    }

    /// Whether the target is ejected now (reads the clock only if it ever was).
    pub(crate) fn is_ejected(&self) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && now_micros() < until
    }

    /// Time left of the current ejection.
    pub(crate) fn ejection_left(&self) -> Duration {
        let until = self.ejected_until.load(Ordering::Relaxed);
        Duration::from_micros(until.saturating_sub(now_micros()))
    }

    /// Ejections so far.
    pub(crate) fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Failures in a row (the larger of the two counts).
    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive_5xx
            .load(Ordering::Relaxed)
            .max(self.consecutive_gateway.load(Ordering::Relaxed))
    }

    /// Counts a result; `Some` when a threshold is reached.
    pub(crate) fn record(
        &self,
        cfg: &OutlierDetectionConfig,
        outcome: Outcome,
    ) -> Option<EjectionDue> {
        let (bump_5xx, bump_gateway) = match outcome {
            Outcome::Success => {
                // Loads first: most results are successes on a healthy target, and a
                // store would bounce the cache line between cores for nothing.
                if self.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                    self.consecutive_5xx.store(0, Ordering::Relaxed);
                }
                if self.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                    self.consecutive_gateway.store(0, Ordering::Relaxed);
                }
                return None;
            }
            Outcome::Status5xx(s) => (true, matches!(s, 502..=504)),
            Outcome::LocalFailure => (true, true),
        };
        let mut due = false;
        if bump_5xx {
            let n = self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
            due |= cfg.consecutive_5xx > 0 && n >= cfg.consecutive_5xx;
        } else {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
        }
        if bump_gateway {
            let n = self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1;
            due |= cfg.consecutive_gateway_errors > 0 && n >= cfg.consecutive_gateway_errors;
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        due.then_some(EjectionDue)
    }

    /// Ejects the target at `now` unless it is ejected already (another request got
    /// there first). Returns the ejection's length.
    pub(crate) fn eject(&self, cfg: &OutlierDetectionConfig, now: u64) -> Option<Duration> {
        let previous = self.ejected_until.load(Ordering::Relaxed);
        if previous != 0 && now < previous {
            return None;
        }
        let multiplier = next_multiplier(
            self.multiplier.load(Ordering::Relaxed),
            previous,
            now,
            cfg.interval.get(),
        );
        let length = ejection_time(cfg, multiplier);
        let until = now.saturating_add(length.as_micros() as u64);
        self.ejected_until
            .compare_exchange(previous, until, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        self.multiplier.store(multiplier, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        self.reset_counts();
        Some(length)
    }

    /// Forgets the failures counted so far (the pool would not eject the target).
    pub(crate) fn reset_counts(&self) {
        self.consecutive_5xx.store(0, Ordering::Relaxed);
        self.consecutive_gateway.store(0, Ordering::Relaxed);
    }

    /// Ends an ejection early (an active health check found the target healthy).
    pub(crate) fn uneject(&self) {
        let now = now_micros();
        let until = self.ejected_until.load(Ordering::Relaxed);
        if until > now {
            let _ = self.ejected_until.compare_exchange(
                until,
                now,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        self.reset_counts();
    }
}

/// The multiplier of the next ejection: the last one's, less one for each full
/// `interval` the target has spent back in the pool since (Envoy's decay), plus one.
pub(crate) fn next_multiplier(last: u32, last_until: u64, now: u64, interval: Duration) -> u32 {
    let interval = (interval.as_micros() as u64).max(1);
    let back_for = now.saturating_sub(last_until);
    let forgiven = if last_until == 0 {
        u64::from(last)
    } else {
        back_for / interval
    };
    let kept = u64::from(last).saturating_sub(forgiven) as u32;
    kept.saturating_add(1)
}

/// `base_ejection_time × multiplier`, at most `max_ejection_time`.
pub(crate) fn ejection_time(cfg: &OutlierDetectionConfig, multiplier: u32) -> Duration {
    cfg.base_ejection_time
        .get()
        .saturating_mul(multiplier)
        .min(cfg.max_ejection_time.get())
}

/// How many of a pool's `targets` may be ejected at once: `max_ejection_percent` of
/// them, rounded down, but at least one (as in Envoy).
pub(crate) fn max_ejected(targets: usize, max_percent: u32) -> usize {
    (targets * max_percent.min(100) as usize / 100).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration as CfgDuration;

    fn cfg() -> OutlierDetectionConfig {
        OutlierDetectionConfig {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 3,
            interval: CfgDuration::from_secs(10),
            base_ejection_time: CfgDuration::from_secs(30),
            max_ejection_time: CfgDuration::from_secs(100),
            max_ejection_percent: 10,
        }
    }

    #[test]
    fn thresholds_count_results_in_a_row() {
        let s = OutlierState::default();
        let c = cfg();
        assert_eq!(s.record(&c, Outcome::LocalFailure), None);
        assert_eq!(s.record(&c, Outcome::Status5xx(503)), None);
        // A success in between starts again.
        assert_eq!(s.record(&c, Outcome::Success), None);
        assert_eq!(s.record(&c, Outcome::Status5xx(502)), None);
        assert_eq!(s.record(&c, Outcome::Status5xx(504)), None);
        assert_eq!(s.record(&c, Outcome::LocalFailure), Some(EjectionDue));
        // A plain 500 is a 5xx but not a gateway error.
        let s = OutlierState::default();
        for _ in 0..4 {
            assert_eq!(s.record(&c, Outcome::Status5xx(500)), None);
        }
        assert_eq!(s.record(&c, Outcome::Status5xx(500)), Some(EjectionDue));
        // A 500 breaks a run of gateway errors.
        let s = OutlierState::default();
        s.record(&c, Outcome::Status5xx(503));
        s.record(&c, Outcome::Status5xx(503));
        s.record(&c, Outcome::Status5xx(500));
        assert_eq!(s.record(&c, Outcome::Status5xx(503)), None);
    }

    #[test]
    fn ejection_time_grows_with_repeats_and_decays_while_back() {
        let c = cfg();
        let s = OutlierState::default();
        let sec = 1_000_000u64;
        let t0 = 5 * sec;
        assert_eq!(s.eject(&c, t0), Some(Duration::from_secs(30)));
        assert!(s.is_ejected_at(t0 + 29 * sec));
        assert!(!s.is_ejected_at(t0 + 30 * sec));
        assert_eq!(s.eject(&c, t0 + sec), None, "already ejected");
        // Ejected again right after coming back: twice as long.
        let t1 = t0 + 30 * sec;
        assert_eq!(s.eject(&c, t1), Some(Duration::from_secs(60)));
        // Then capped by max_ejection_time.
        let t2 = t1 + 60 * sec;
        assert_eq!(s.eject(&c, t2), Some(Duration::from_secs(90)));
        let t3 = t2 + 90 * sec;
        assert_eq!(s.eject(&c, t3), Some(Duration::from_secs(100)));
        assert_eq!(s.ejections(), 4);
        // 25 s back in the pool forgives two steps (of 4): the next is 3 × 30 s.
        let t4 = t3 + 100 * sec + 25 * sec;
        assert_eq!(s.eject(&c, t4), Some(Duration::from_secs(90)));
    }

    #[test]
    fn multiplier_arithmetic() {
        let i = Duration::from_secs(10);
        assert_eq!(next_multiplier(0, 0, 100, i), 1);
        assert_eq!(next_multiplier(3, 1_000_000, 1_000_000, i), 4);
        assert_eq!(next_multiplier(3, 0, 1_000_000, i), 1);
        assert_eq!(next_multiplier(3, 1, 1 + 35_000_000, i), 1);
        assert_eq!(next_multiplier(u32::MAX, 1, 1, i), u32::MAX);
    }

    #[test]
    fn at_most_the_percentage_but_always_one() {
        assert_eq!(max_ejected(3, 10), 1);
        assert_eq!(max_ejected(3, 50), 1);
        assert_eq!(max_ejected(3, 67), 2);
        assert_eq!(max_ejected(20, 10), 2);
        assert_eq!(max_ejected(4, 100), 4);
        assert_eq!(max_ejected(4, 0), 1);
    }

    #[test]
    fn uneject_ends_the_ejection() {
        let c = cfg();
        let s = OutlierState::default();
        s.eject(&c, now_micros());
        assert!(s.is_ejected());
        s.uneject();
        assert!(!s.is_ejected());
    }
}
