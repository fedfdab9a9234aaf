//! A pool's retry policy as the proxy applies it: which failures are retried, the
//! backoff between attempts, and the retry budget that keeps retries to a share of the
//! pool's traffic.
//!
//! The budget follows Linkerd's (and tower's `TpsBudget`): each request deposits
//! `ratio` of a retry, each retry withdraws one, over a sliding window of
//! [`BUDGET_WINDOW`]; a reserve of `min_retries_per_second` × the window is always
//! there. So over any window, retries ≤ `ratio` × requests + the reserve. Linkerd's
//! form was chosen over Envoy's `budget_percent` (a share of the requests *in flight*)
//! because it bounds the retries sent, which is what multiplies an outage: with
//! Envoy's, sequential requests are never more than a few in flight and every one may be
//! retried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::{RetryOn, UpstreamConfig};

/// The window over which the budget counts requests and retries.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// Slots the window is divided into (one second each).
const SLOTS: usize = 10;

/// Units of one retry in the budget's fixed-point arithmetic (ratio to 1/1000).
const UNIT: i64 = 1000;

/// Why an attempt failed, as `retry_on` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made (refused, timed out, unreachable).
    Connect,
    /// The connection was reset or closed, or a read or write timed out, before a
    /// response head.
    Reset,
    /// The target answered with this status.
    Status(u16),
}

/// What `retry_on` lists, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryConditions {
    connect_failure: bool,
    reset: bool,
    gateway_error: bool,
    server_5xx: bool,
    statuses: Vec<u16>,
}

impl RetryConditions {
    /// Compiles a `retry_on` list.
    pub fn new(list: &[RetryOn]) -> Self {
        let mut c = RetryConditions::default();
        for item in list {
            match item {
                RetryOn::ConnectFailure => c.connect_failure = true,
                // Upstreams are HTTP/1: there is no stream to refuse.
                RetryOn::RefusedStream => {}
                RetryOn::Reset => c.reset = true,
                RetryOn::GatewayError => c.gateway_error = true,
                RetryOn::Server5xx => c.server_5xx = true,
                RetryOn::Status(s) => c.statuses.push(*s),
            }
        }
        c
    }

    /// Whether a failure of this kind is to be retried.
    pub fn matches(&self, failure: Failure) -> bool {
        let any_5xx = self.gateway_error || self.server_5xx;
        match failure {
            Failure::Connect => self.connect_failure || self.reset || any_5xx,
            Failure::Reset => self.reset || any_5xx,
            Failure::Status(s) => {
                self.statuses.contains(&s)
                    || (self.server_5xx && (500..=599).contains(&s))
                    || (self.gateway_error && matches!(s, 502..=504))
            }
        }
    }

    /// Whether any response status can be retried (the response filter's fast path).
    pub fn on_status(&self) -> bool {
        self.gateway_error || self.server_5xx || !self.statuses.is_empty()
    }
}

/// The upper bound of the wait before retry `n` (1 for the first retry):
/// `min(base × 2^(n-1), max)`.
pub fn backoff_ceiling(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32 << n.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(max)
}

/// The wait before retry `n`: uniform between 0 and [`backoff_ceiling`] (full jitter).
pub fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let ceiling = backoff_ceiling(base, max, n).as_micros() as u64;
    Duration::from_micros(fastrand::u64(0..=ceiling))
}

/// A pool's retry budget (see the module documentation).
#[derive(Debug)]
pub struct RetryBudget {
    /// Deposit of one request, in retry units / [`UNIT`].
    deposit: i64,
    /// Always available, in units.
    reserve: i64,
    start: Instant,
    /// One slot per second of the window: (the second it counts, its balance in units).
    /// A lock held for a few additions, never across an await; only requests to a pool
    /// with `retries` take it.
    slots: Mutex<[(u64, i64); SLOTS]>,
    granted: AtomicU64,
    refused: AtomicU64,
}

impl RetryBudget {
    /// A budget allowing `ratio` retries per request plus `min_per_second`.
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        RetryBudget {
            deposit: (ratio * UNIT as f64).round() as i64,
            reserve: i64::from(min_per_second) * BUDGET_WINDOW.as_secs() as i64 * UNIT,
            start: Instant::now(),
            slots: Mutex::new([(0, 0); SLOTS]),
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Counts a request to the pool.
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// Takes one retry from the budget: false if it is spent (the retry is not made;
    /// counted).
    pub fn withdraw(&self) -> bool {
        self.withdraw_at(Instant::now())
    }

    /// Retries the budget allowed since the pool was built.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// Retries the budget refused since the pool was built.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    fn with_slots<R>(&self, f: impl FnOnce(&mut [(u64, i64); SLOTS]) -> R) -> R {
        let mut guard = match self.slots.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    pub(crate) fn deposit_at(&self, now: Instant) {
        let sec = self.second(now);
        let deposit = self.deposit;
        self.with_slots(|slots| {
            let slot = &mut slots[(sec % SLOTS as u64) as usize];
            if slot.0 != sec {
                *slot = (sec, 0);
            }
            slot.1 += deposit;
        });
    }

    pub(crate) fn withdraw_at(&self, now: Instant) -> bool {
        let sec = self.second(now);
        let reserve = self.reserve;
        let ok = self.with_slots(|slots| {
            let window = SLOTS as u64;
            let balance: i64 = slots
                .iter()
                .filter(|(s, _)| *s + window > sec && *s <= sec)
                .map(|(_, b)| *b)
                .sum();
            if balance + reserve < UNIT {
                return false;
            }
            let slot = &mut slots[(sec % window) as usize];
            if slot.0 != sec {
                *slot = (sec, 0);
            }
            slot.1 -= UNIT;
            true
        });
        let counter = if ok { &self.granted } else { &self.refused };
        counter.fetch_add(1, Ordering::Relaxed);
        ok
    }
}

/// A route's own retry policy (`routes[].retries`), compiled: it replaces the pool's
/// retry count, per-try timeout and conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRetry {
    /// At most this many retries per request.
    pub retries: u32,
    /// Each attempt's timeout cap, if the route sets one.
    pub per_try_timeout: Option<Duration>,
    /// What is retried, if the route says.
    pub conditions: Option<RetryConditions>,
}

impl RouteRetry {
    /// Compiles a route's `retries`.
    pub fn new(cfg: &crate::config::RouteRetryConfig) -> Self {
        RouteRetry {
            retries: cfg.attempts,
            per_try_timeout: cfg.per_try_timeout.map(|d| d.get()),
            conditions: cfg.retry_on.as_deref().map(RetryConditions::new),
        }
    }
}

/// A pool's retry policy, compiled from its config.
#[derive(Debug)]
pub struct RetryPolicy {
    /// At most this many retries per request.
    pub retries: u32,
    /// What is retried.
    pub conditions: RetryConditions,
    /// Each attempt's connect and read timeout, if set.
    pub per_try_timeout: Option<Duration>,
    /// Backoff bounds.
    pub backoff_base: Duration,
    /// See [`backoff`].
    pub backoff_max: Duration,
    /// Retry non-idempotent methods after they reached a target.
    pub non_idempotent: bool,
    /// The pool's budget.
    pub budget: RetryBudget,
}

impl RetryPolicy {
    /// Compiles a pool's retry fields.
    pub fn new(cfg: &UpstreamConfig) -> Self {
        RetryPolicy {
            retries: cfg.retries,
            conditions: RetryConditions::new(&cfg.retry_on),
            per_try_timeout: cfg.per_try_timeout.map(|d| d.get()),
            backoff_base: cfg.retry_backoff.base.get(),
            backoff_max: cfg.retry_backoff.max.get(),
            non_idempotent: cfg.retry_non_idempotent,
            budget: RetryBudget::new(
                cfg.retry_budget.ratio,
                cfg.retry_budget.min_retries_per_second,
            ),
        }
    }

    /// The wait before retry `n` (1 for the first).
    pub fn backoff(&self, n: u32) -> Duration {
        backoff(self.backoff_base, self.backoff_max, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_follow_envoy() {
        let c = RetryConditions::new(&[RetryOn::ConnectFailure]);
        assert!(c.matches(Failure::Connect));
        assert!(!c.matches(Failure::Reset));
        assert!(!c.matches(Failure::Status(503)));
        assert!(!c.on_status());

        let c = RetryConditions::new(&[RetryOn::GatewayError]);
        assert!(c.matches(Failure::Connect));
        assert!(c.matches(Failure::Reset));
        assert!(c.matches(Failure::Status(502)));
        assert!(c.matches(Failure::Status(504)));
        assert!(!c.matches(Failure::Status(500)));

        let c = RetryConditions::new(&[RetryOn::Server5xx, RetryOn::Status(409)]);
        assert!(c.matches(Failure::Status(500)));
        assert!(c.matches(Failure::Status(409)));
        assert!(!c.matches(Failure::Status(404)));
        assert!(!c.matches(Failure::Status(200)));

        let c = RetryConditions::new(&[RetryOn::Reset]);
        assert!(c.matches(Failure::Reset));
        assert!(c.matches(Failure::Connect));
        assert!(!c.matches(Failure::Status(503)));
    }

    #[test]
    fn backoff_doubles_up_to_the_max_with_jitter_below_the_ceiling() {
        let (base, max) = (Duration::from_millis(25), Duration::from_millis(250));
        assert_eq!(backoff_ceiling(base, max, 1), Duration::from_millis(25));
        assert_eq!(backoff_ceiling(base, max, 2), Duration::from_millis(50));
        assert_eq!(backoff_ceiling(base, max, 4), Duration::from_millis(200));
        assert_eq!(backoff_ceiling(base, max, 5), Duration::from_millis(250));
        assert_eq!(backoff_ceiling(base, max, 60), Duration::from_millis(250));
        for n in 1..8 {
            for _ in 0..100 {
                assert!(backoff(base, max, n) <= backoff_ceiling(base, max, n));
            }
        }
    }

    #[test]
    fn budget_allows_ratio_of_requests_plus_the_reserve() {
        let b = RetryBudget::new(0.2, 1);
        let t = b.start;
        // The reserve: 1 per second over the 10 s window.
        for _ in 0..10 {
            assert!(b.withdraw_at(t));
        }
        assert!(!b.withdraw_at(t), "reserve spent, no requests yet");
        // 100 requests deposit 20 retries.
        for _ in 0..100 {
            b.deposit_at(t);
        }
        for i in 0..20 {
            assert!(b.withdraw_at(t), "retry {i}");
        }
        assert!(!b.withdraw_at(t));
        assert_eq!(b.granted(), 30);
        assert_eq!(b.refused(), 2);
    }

    #[test]
    fn budget_window_slides() {
        let b = RetryBudget::new(0.5, 0);
        let t = b.start;
        for _ in 0..10 {
            b.deposit_at(t);
        }
        for _ in 0..5 {
            assert!(b.withdraw_at(t));
        }
        assert!(!b.withdraw_at(t + Duration::from_secs(3)));
        // Deposits and withdrawals both leave the window after 10 s.
        let later = t + BUDGET_WINDOW;
        assert!(!b.withdraw_at(later), "nothing deposited in this window");
        b.deposit_at(later);
        b.deposit_at(later);
        assert!(b.withdraw_at(later + Duration::from_secs(9)));
        assert!(!b.withdraw_at(later + Duration::from_secs(9)));
    }

    #[test]
    fn budget_never_exceeds_its_bound_under_any_interleaving() {
        let b = RetryBudget::new(0.25, 2);
        let t = b.start;
        let mut requests = 0u64;
        for i in 0..400u64 {
            b.deposit_at(t);
            requests += 1;
            // Three retries wanted per request: the budget decides.
            for _ in 0..3 {
                b.withdraw_at(t + Duration::from_millis(i));
            }
        }
        // All inside one window (0.4 s): retries ≤ 0.25 × requests + 2 × 10.
        assert!(b.granted() <= requests / 4 + 20, "{}", b.granted());
        assert_eq!(b.granted(), requests / 4 + 20);
    }
}
