//! The counters: per period, one bounded map of counters for the current window,
//! swapped for an empty one when the clock enters the next window.
//!
//! - **Exact.** A counter is only incremented under its shard's lock after checking it
//!   is below the limit, so with `minute: 100` exactly 100 concurrent requests pass.
//!   With several periods a request takes a slot in each, shortest period first; if one
//!   refuses, the slots already taken are given back, so a refused request counts
//!   nowhere (and leaves no key behind: see `counters.rs`).
//! - **Bounded.** Identifiers are stored as a fixed-size keyed digest (`key.rs`), never
//!   whole, and each period's window holds at most `max_keys` of them, evicting when
//!   full (`counters.rs`); evictions are counted and logged at most once a minute. Only
//!   the current window's map is reachable: the previous one is freed as soon as the
//!   last request still using it (at most a few, in flight across the boundary) lets go
//!   of it.
//! - **Cheap.** The window is behind a read-write lock held only long enough to clone an
//!   `Arc`; counters are sharded, each shard's lock held only around one map operation.
//!
//! The clock is an argument (`now`, Unix seconds), so tests drive time directly.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::counters::Counters;
use super::key::{KeyHasher, RandomUnavailable};
use super::period::{Bounds, Period};

/// The default of `max_tracked_keys`: how many identifiers each period of one plugin
/// instance tracks at most (about 4 to 8 MB per period when full).
pub(crate) const DEFAULT_MAX_KEYS: usize = 100_000;

/// Evictions are logged at most this often (seconds), never per request.
const EVICTION_LOG_INTERVAL: u64 = 60;

/// Who a request is counted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identifier<'a> {
    /// A client address (`limit_by: ip`, and the fallback of every other mode).
    Ip(IpAddr),
    /// Any other identifier: a consumer or credential id, a header value, a path, a
    /// route or upstream name. Bytes, because header values need not be UTF-8.
    Name(&'a [u8]),
}

/// The counters of one window of one period.
#[derive(Debug)]
struct Window {
    bounds: Bounds,
    counters: Counters,
}

impl Window {
    fn new(bounds: Bounds, max_keys: usize) -> Self {
        Window {
            bounds,
            counters: Counters::new(max_keys),
        }
    }

    #[cfg(test)]
    fn count(&self, key: super::key::KeyDigest) -> u64 {
        self.counters.count(key)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.counters.len()
    }
}

/// One configured period: its limit and its current window (and, with sliding
/// windows, the one just before it).
#[derive(Debug)]
struct PeriodLimit {
    period: Period,
    limit: u64,
    max_keys: usize,
    sliding: bool,
    current: RwLock<Slot>,
}

/// The window in use and, with sliding windows, the window right before it.
#[derive(Debug, Clone)]
struct Slot {
    current: Arc<Window>,
    previous: Option<Arc<Window>>,
}

impl PeriodLimit {
    /// The window containing `now`, starting a new (empty) one when the clock has moved
    /// past the current one. A clock that steps back keeps counting in the current
    /// window rather than reopening an old one.
    #[cfg(test)]
    fn window(&self, now: u64) -> Arc<Window> {
        self.slot(now).current
    }

    /// [`Self::window`], with the previous window when sliding.
    fn slot(&self, now: u64) -> Slot {
        {
            let w = self.current.read().unwrap_or_else(|e| e.into_inner());
            if now < w.current.bounds.end {
                return w.clone();
            }
        }
        let mut w = self.current.write().unwrap_or_else(|e| e.into_inner());
        if now < w.current.bounds.end {
            // Another request rolled the window over first.
            return w.clone();
        }
        let bounds = self.period.bounds(now);
        log::trace!(
            "rate-limiting: new {} window [{}, {})",
            self.period,
            bounds.start,
            bounds.end
        );
        let fresh = Arc::new(Window::new(bounds, self.max_keys));
        // Sliding windows keep the window just ended (and only if it is the one right
        // before: after an idle gap it has no weight left).
        let previous =
            (self.sliding && w.current.bounds.end == bounds.start).then(|| Arc::clone(&w.current));
        let old = std::mem::replace(
            &mut *w,
            Slot {
                current: fresh,
                previous,
            },
        );
        let slot = w.clone();
        drop(w);
        // The old maps (possibly large) are freed here, outside the lock, unless a
        // request in flight still holds them; then they go when that request finishes.
        drop(old);
        slot
    }
}

/// The sliding-window limit on the current window's count: `limit` minus the previous
/// window's count weighted by the share of it the last period still covers, rounded up
/// (so the estimate never under-counts), at least 0. `elapsed_ms` is how far `now` is
/// into the current window of `len_ms`.
///
/// Computed in `f64` exactly as the Redis script computes it (Lua numbers are doubles),
/// so both stores agree to the request.
pub(crate) fn sliding_limit(limit: u64, previous: u64, elapsed_ms: u64, len_ms: u64) -> u64 {
    if previous == 0 || len_ms == 0 {
        return limit;
    }
    let covered = len_ms.saturating_sub(elapsed_ms) as f64;
    let weighted = (previous as f64 * covered / len_ms as f64).ceil();
    (limit as f64 - weighted).max(0.0) as u64
}

/// What a check found for one period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeriodUsage {
    /// Which period.
    pub period: Period,
    /// Its configured limit.
    pub limit: u64,
    /// Requests still allowed in this window, counting the current request when it was
    /// allowed (Kong's `X-RateLimit-Remaining-<Period>`).
    pub remaining: u64,
    /// Seconds until the window ends, at least 1.
    pub reset: u64,
}

/// The result of one check: whether the request may pass, and the usage of every
/// configured period (shortest first), for the headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Whether every period had room.
    pub allowed: bool,
    usage: [Option<PeriodUsage>; 6],
}

impl Outcome {
    /// An outcome from each configured period's usage (a store other than this one's).
    pub fn from_usage(allowed: bool, usage: impl IntoIterator<Item = PeriodUsage>) -> Self {
        let mut o = Outcome {
            allowed,
            usage: [None; 6],
        };
        for u in usage {
            o.usage[u.period.index()] = Some(u);
        }
        o
    }

    /// The usage of each configured period, shortest first.
    pub fn usage(&self) -> impl Iterator<Item = &PeriodUsage> {
        self.usage.iter().flatten()
    }

    /// The usage of `period`, if it is configured.
    #[cfg(test)]
    pub fn of(&self, period: Period) -> Option<&PeriodUsage> {
        self.usage[period.index()].as_ref()
    }
}

/// Keys evicted by every local limiter of the process (all instances, across reloads),
/// for the gateway's `pingway_rate_limiting_keys_evicted_total`.
static KEYS_EVICTED: AtomicU64 = AtomicU64::new(0);

/// Keys the local counters of every `rate-limiting` instance evicted to stay within
/// `max_tracked_keys`, since the process started.
pub fn keys_evicted_total() -> u64 {
    KEYS_EVICTED.load(Ordering::Relaxed)
}

/// Fixed-window counters for a set of periods, keyed by identifier.
#[derive(Debug)]
pub(crate) struct Limiter {
    periods: Vec<PeriodLimit>,
    hasher: KeyHasher,
    max_keys: usize,
    /// Keys evicted to stay within `max_keys`, since the instance was built.
    evictions: AtomicU64,
    /// Unix second of the last eviction warning (0: never), so that a flood of new keys
    /// logs once a minute, not once per request.
    warned_at: AtomicU64,
}

impl Limiter {
    /// A limiter for these `(period, limit)` pairs, each period tracking at most
    /// `max_keys` identifiers. They are checked shortest period first whatever their
    /// order here. Fails only if no random secret can be drawn for the key digests.
    #[cfg(test)]
    pub fn new(
        limits: impl IntoIterator<Item = (Period, u64)>,
        max_keys: usize,
    ) -> Result<Self, RandomUnavailable> {
        Limiter::with_window(limits, max_keys, false)
    }

    /// [`Limiter::new`], with sliding windows when `sliding`.
    pub fn with_window(
        limits: impl IntoIterator<Item = (Period, u64)>,
        max_keys: usize,
        sliding: bool,
    ) -> Result<Self, RandomUnavailable> {
        let max_keys = max_keys.max(1);
        let mut periods: Vec<PeriodLimit> = limits
            .into_iter()
            .map(|(period, limit)| PeriodLimit {
                period,
                limit,
                max_keys,
                sliding,
                // An empty window that has already ended: the first request opens one.
                current: RwLock::new(Slot {
                    current: Arc::new(Window::new(Bounds { start: 0, end: 0 }, 1)),
                    previous: None,
                }),
            })
            .collect();
        periods.sort_by_key(|p| p.period);
        periods.dedup_by_key(|p| p.period);
        Ok(Limiter {
            periods,
            hasher: KeyHasher::new()?,
            max_keys,
            evictions: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
        })
    }

    /// A limiter with the default key cap (tests only).
    #[cfg(test)]
    pub fn with_default_cap(limits: impl IntoIterator<Item = (Period, u64)>) -> Self {
        Limiter::new(limits, DEFAULT_MAX_KEYS).expect("random secret")
    }

    /// How many keys have been evicted to stay within `max_keys`.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Counts an eviction, and warns if none was logged in the last minute.
    fn note_eviction(&self, now: u64) {
        KEYS_EVICTED.fetch_add(1, Ordering::Relaxed);
        let total = self.evictions.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        if last != 0 && now < last.saturating_add(EVICTION_LOG_INTERVAL) {
            return;
        }
        // One request wins the right to log for this minute.
        if self
            .warned_at
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            log::warn!(
                "rate-limiting: more than {} clients in one window; evicting counters \
                 ({total} evicted so far; evicted clients start again from zero). \
                 Raise max_tracked_keys if these are legitimate clients.",
                self.max_keys
            );
        }
    }

    /// Counts a request by `id` at `now` (Unix seconds) if every period has room.
    #[cfg(test)]
    pub fn check(&self, id: Identifier<'_>, now: u64) -> Outcome {
        self.check_ms(id, now * 1_000)
    }

    /// Counts a request by `id` at `now_ms` (Unix milliseconds) if every period has
    /// room. Fixed windows only look at the second; sliding windows weigh the previous
    /// window to the millisecond.
    pub fn check_ms(&self, id: Identifier<'_>, now_ms: u64) -> Outcome {
        let now = now_ms / 1_000;
        let key = self.hasher.digest(id);
        // The windows used, kept so that slots are given back to the very window they
        // were taken from even if the clock rolls over meanwhile.
        let mut windows: [Option<Arc<Window>>; 6] = Default::default();
        let mut outcome = Outcome {
            allowed: true,
            usage: [None; 6],
        };
        let mut refused_at = None;
        for (i, p) in self.periods.iter().enumerate() {
            let slot = p.slot(now);
            let window = slot.current;
            let limit = match &slot.previous {
                Some(previous) => {
                    let elapsed = now_ms.saturating_sub(window.bounds.start * 1_000);
                    let len = (window.bounds.end - window.bounds.start) * 1_000;
                    sliding_limit(p.limit, previous.counters.count(key), elapsed, len)
                }
                None => p.limit,
            };
            let (remaining, refused) = match refused_at {
                // Already refused: only read, for the headers.
                Some(_) => (limit.saturating_sub(window.counters.count(key)), false),
                None => {
                    let acquired = window.counters.try_acquire(key, limit);
                    if acquired.evicted {
                        self.note_eviction(now);
                    }
                    match acquired.result {
                        Ok(count) => (limit.saturating_sub(count), false),
                        Err(_) => (0, true),
                    }
                }
            };
            if refused {
                refused_at = Some(i);
            }
            outcome.usage[p.period.index()] = Some(PeriodUsage {
                period: p.period,
                limit: p.limit,
                remaining,
                reset: window.bounds.reset(now),
            });
            windows[i] = Some(window);
        }
        if let Some(refused) = refused_at {
            outcome.allowed = false;
            // Give back the slots taken in the shorter periods: the request is not
            // served, so it must not count (Kong counts only served requests).
            for (p, window) in self.periods[..refused].iter().zip(&windows) {
                if let Some(window) = window {
                    window.counters.release(key);
                    if let Some(u) = outcome.usage[p.period.index()].as_mut() {
                        u.remaining = (u.remaining + 1).min(p.limit);
                    }
                }
            }
        }
        outcome
    }

    /// How many identifiers the current window of `period` holds (for tests and
    /// diagnostics).
    #[cfg(test)]
    pub fn tracked(&self, period: Period) -> usize {
        self.periods
            .iter()
            .find(|p| p.period == period)
            .map_or(0, |p| {
                p.current
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .current
                    .len()
            })
    }

    /// A weak handle on the current window of `period`, to check it is freed later.
    #[cfg(test)]
    fn current_window(&self, period: Period) -> Option<std::sync::Weak<Window>> {
        self.periods
            .iter()
            .find(|p| p.period == period)
            .map(|p| Arc::downgrade(&p.current.read().unwrap_or_else(|e| e.into_inner()).current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::thread;

    fn limiter(limits: impl IntoIterator<Item = (Period, u64)>) -> Limiter {
        Limiter::with_default_cap(limits)
    }

    const T0: u64 = 1_700_000_040; // a minute boundary (divisible by 60)

    fn ip(last: u8) -> Identifier<'static> {
        Identifier::Ip(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn allows_up_to_the_limit_then_blocks() {
        let l = limiter([(Period::Minute, 3)]);
        let remaining: Vec<_> = (0..5)
            .map(|_| {
                let o = l.check(ip(1), T0 + 10);
                (o.allowed, o.of(Period::Minute).map(|u| u.remaining))
            })
            .collect();
        assert_eq!(
            remaining,
            vec![
                (true, Some(2)),
                (true, Some(1)),
                (true, Some(0)),
                (false, Some(0)),
                (false, Some(0)),
            ]
        );
        let u = l.check(ip(1), T0 + 10);
        assert_eq!(
            u.of(Period::Minute).map(|u| (u.limit, u.reset)),
            Some((3, 50))
        );
    }

    #[test]
    fn identifiers_are_counted_apart() {
        let l = limiter([(Period::Minute, 1)]);
        assert!(l.check(ip(1), T0).allowed);
        assert!(!l.check(ip(1), T0).allowed);
        assert!(l.check(ip(2), T0).allowed);
        assert!(l.check(Identifier::Name(b"alice"), T0).allowed);
        assert!(!l.check(Identifier::Name(b"alice"), T0).allowed);
        assert!(l.check(Identifier::Name(b"bob"), T0).allowed);
        // An IPv4 address and a name that spells it are different identifiers.
        assert!(l.check(Identifier::Name(b"10.0.0.2"), T0).allowed);
    }

    #[test]
    fn window_rolls_over() {
        let l = limiter([(Period::Minute, 2)]);
        assert!(l.check(ip(1), T0 + 58).allowed);
        assert!(l.check(ip(1), T0 + 59).allowed);
        assert!(!l.check(ip(1), T0 + 59).allowed);
        let o = l.check(ip(1), T0 + 60);
        assert!(o.allowed);
        assert_eq!(
            o.of(Period::Minute).map(|u| (u.remaining, u.reset)),
            Some((1, 60))
        );
    }

    #[test]
    fn clock_stepping_back_stays_in_the_current_window() {
        let l = limiter([(Period::Minute, 2)]);
        assert!(l.check(ip(1), T0 + 60).allowed);
        assert!(l.check(ip(1), T0 + 59).allowed);
        let o = l.check(ip(1), T0 + 59);
        assert!(!o.allowed);
        // Reset counts to the end of the window in use.
        assert_eq!(o.of(Period::Minute).map(|u| u.reset), Some(61));
    }

    #[test]
    fn old_windows_are_evicted() {
        let l = limiter([(Period::Second, 5), (Period::Minute, 100)]);
        for i in 0..=255 {
            l.check(ip(i), T0);
            l.check(Identifier::Name(format!("user-{i}").as_bytes()), T0);
        }
        assert_eq!(l.tracked(Period::Second), 512);
        assert_eq!(l.tracked(Period::Minute), 512);
        let old_second = l.current_window(Period::Second).expect("configured");
        let old_minute = l.current_window(Period::Minute).expect("configured");

        // Next second: the second's map starts empty and the old one is freed; the
        // minute's map is still the same window.
        l.check(ip(1), T0 + 1);
        assert_eq!(l.tracked(Period::Second), 1);
        assert!(old_second.upgrade().is_none());
        assert_eq!(l.tracked(Period::Minute), 512);

        // Next minute: both start over.
        l.check(ip(7), T0 + 60);
        assert_eq!(l.tracked(Period::Second), 1);
        assert_eq!(l.tracked(Period::Minute), 1);
        assert!(old_minute.upgrade().is_none());
    }

    #[test]
    fn long_identifiers_are_stored_as_fixed_size_digests() {
        // 1,000 distinct 100 KB identifiers: the maps hold 1,000 16-byte digests, not
        // 100 MB of names.
        let l = limiter([(Period::Hour, 1_000)]);
        let mut name = vec![b'x'; 100 * 1024];
        for i in 0..1_000u32 {
            name[..4].copy_from_slice(&i.to_le_bytes());
            assert!(l.check(Identifier::Name(&name), T0).allowed);
        }
        assert_eq!(l.tracked(Period::Hour), 1_000);
        let w = l.periods[0].window(T0);
        let keys = w.counters.keys();
        assert_eq!(keys.len(), 1_000);
        assert_eq!(std::mem::size_of_val(&keys[0]), 16);
        // And the same long name still finds its counter.
        name[..4].copy_from_slice(&7u32.to_le_bytes());
        let o = l.check(Identifier::Name(&name), T0);
        assert_eq!(o.of(Period::Hour).map(|u| u.remaining), Some(998));
    }

    #[test]
    fn at_the_cap_keys_are_evicted_and_counted() {
        let l = Limiter::new([(Period::Minute, 5), (Period::Hour, 10)], 100).expect("random");
        for i in 0..100u32 {
            assert!(l.check(Identifier::Name(&i.to_le_bytes()), T0).allowed);
        }
        assert_eq!(l.evictions(), 0);
        assert_eq!(l.tracked(Period::Minute), 100);
        for i in 100..350u32 {
            assert!(l.check(Identifier::Name(&i.to_le_bytes()), T0).allowed);
            assert_eq!(l.tracked(Period::Minute), 100);
            assert_eq!(l.tracked(Period::Hour), 100);
        }
        // One eviction per period per new key past the cap.
        assert_eq!(l.evictions(), 2 * 250);
    }

    #[test]
    fn below_the_cap_limits_stay_exact() {
        let l = Limiter::new([(Period::Minute, 3)], 100).expect("random");
        for i in 0..100u32 {
            let id = i.to_le_bytes();
            let passed = (0..5)
                .filter(|_| l.check(Identifier::Name(&id), T0).allowed)
                .count();
            assert_eq!(passed, 3, "key {i}");
        }
        assert_eq!(l.evictions(), 0);
        assert_eq!(l.tracked(Period::Minute), 100);
    }

    #[test]
    fn refused_requests_leave_no_key() {
        // The hour is full for this client: the minute's slot is given back and its
        // key removed, so a client hammering while refused adds nothing.
        let l = limiter([(Period::Minute, 5), (Period::Hour, 5)]);
        for _ in 0..5 {
            assert!(l.check(ip(1), T0).allowed);
        }
        assert!(!l.check(ip(1), T0 + 60).allowed);
        assert_eq!(l.tracked(Period::Minute), 0);
        assert_eq!(l.tracked(Period::Hour), 1);
    }

    #[test]
    fn refused_requests_do_not_count_in_shorter_periods() {
        // second: 5, minute: 7. Second 0: 5 pass. Second 1: 2 pass, then the minute is
        // full and refused requests must give their second-slot back.
        let l = limiter([(Period::Minute, 7), (Period::Second, 5)]);
        let passed0 = (0..10).filter(|_| l.check(ip(1), T0).allowed).count();
        assert_eq!(passed0, 5);
        let passed1 = (0..10).filter(|_| l.check(ip(1), T0 + 1).allowed).count();
        assert_eq!(passed1, 2);
        let o = l.check(ip(1), T0 + 1);
        assert!(!o.allowed);
        // Only the 2 served requests count in second 1.
        assert_eq!(o.of(Period::Second).map(|u| u.remaining), Some(3));
        assert_eq!(o.of(Period::Minute).map(|u| u.remaining), Some(0));
        // Second 2: still blocked by the minute, and nothing leaks into the second.
        assert!(!l.check(ip(1), T0 + 2).allowed);
        let o = l.check(ip(1), T0 + 2);
        assert_eq!(o.of(Period::Second).map(|u| u.remaining), Some(5));
    }

    #[test]
    fn periods_after_the_refusing_one_are_reported_not_counted() {
        let l = limiter([(Period::Second, 1), (Period::Hour, 10)]);
        assert!(l.check(ip(1), T0).allowed);
        let o = l.check(ip(1), T0);
        assert!(!o.allowed);
        assert_eq!(o.of(Period::Second).map(|u| u.remaining), Some(0));
        assert_eq!(o.of(Period::Hour).map(|u| u.remaining), Some(9));
        let o = l.check(ip(1), T0 + 1);
        assert!(o.allowed);
        assert_eq!(o.of(Period::Hour).map(|u| u.remaining), Some(8));
    }

    fn hammer(l: &Limiter, threads: usize, per_thread: usize, now: u64) -> usize {
        let barrier = Barrier::new(threads);
        thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        (0..per_thread)
                            .filter(|_| l.check(ip(1), now).allowed)
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        })
    }

    #[test]
    fn exact_under_concurrency() {
        let l = limiter([(Period::Minute, 100)]);
        assert_eq!(hammer(&l, 400, 1, T0), 100);
        // And the counter did not creep past the limit.
        let o = l.check(ip(1), T0);
        assert_eq!(o.of(Period::Minute).map(|u| u.remaining), Some(0));
    }

    #[test]
    fn multi_period_rollback_under_concurrency() {
        let l = limiter([(Period::Second, 5), (Period::Minute, 7)]);
        assert_eq!(hammer(&l, 64, 4, T0), 5);
        assert_eq!(hammer(&l, 64, 4, T0 + 1), 2);
        assert_eq!(hammer(&l, 64, 4, T0 + 2), 0);
        // Exactly the served requests are counted: 2 in second 1, none in second 2.
        let second = |now| {
            let w = l.periods[0].window(now);
            w.count(l.hasher.digest(ip(1)))
        };
        assert_eq!(second(T0 + 2), 0);
        let minute = l.periods[1].window(T0 + 2).count(l.hasher.digest(ip(1)));
        assert_eq!(minute, 7);
    }

    #[test]
    fn rollover_under_concurrency_counts_each_request_once() {
        // Requests straddling a minute boundary: each lands in exactly one window.
        let l = limiter([(Period::Minute, 1_000)]);
        let barrier = Barrier::new(8);
        thread::scope(|s| {
            for t in 0..8u64 {
                let (l, barrier) = (&l, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for i in 0..100u64 {
                        l.check(ip(1), T0 + 59 + (i + t) % 2);
                    }
                });
            }
        });
        let current = l.periods[0].window(T0 + 60).count(l.hasher.digest(ip(1)));
        // Every request at T0+60 counted in the new window; those at T0+59 that ran
        // before the switch went to the old one, later ones to the new one (the clock
        // never moves backwards into a closed window).
        assert!((400..=800).contains(&current), "{current}");
    }

    #[test]
    fn sliding_limit_math() {
        // No previous traffic: the whole limit.
        assert_eq!(sliding_limit(10, 0, 0, 60_000), 10);
        // At the start of a window the previous one counts whole.
        assert_eq!(sliding_limit(10, 10, 0, 60_000), 0);
        // Half way: half of it.
        assert_eq!(sliding_limit(10, 10, 30_000, 60_000), 5);
        // The weighted count is rounded up: 7 x 0.5 = 3.5 counts as 4.
        assert_eq!(sliding_limit(10, 7, 30_000, 60_000), 6);
        // At (or past) the end it no longer counts.
        assert_eq!(sliding_limit(10, 10, 60_000, 60_000), 10);
        assert_eq!(sliding_limit(10, 10, 70_000, 60_000), 10);
        // Never below zero.
        assert_eq!(sliding_limit(10, 50, 0, 60_000), 0);
    }

    #[test]
    fn sliding_windows_weigh_the_previous_window() {
        let l = Limiter::with_window([(Period::Minute, 10)], 100, true).expect("random");
        let fixed = Limiter::with_window([(Period::Minute, 10)], 100, false).expect("random");
        for _ in 0..10 {
            assert!(l.check(ip(1), T0 + 10).allowed);
            assert!(fixed.check(ip(1), T0 + 10).allowed);
        }
        // 30 s into the next window: fixed windows start again from zero; the sliding
        // window still counts half of the previous 10.
        let count =
            |l: &Limiter, at_ms: u64| (0..20).filter(|_| l.check_ms(ip(1), at_ms).allowed).count();
        assert_eq!(count(&fixed, (T0 + 90) * 1_000), 10);
        assert_eq!(count(&l, (T0 + 90) * 1_000), 5);
        let o = l.check_ms(ip(1), (T0 + 90) * 1_000);
        assert_eq!(o.of(Period::Minute).map(|u| u.remaining), Some(0));
        // 45 s in, a quarter of the previous window (2.5, rounded up to 3) counts: 7 in
        // all, of which 5 are taken.
        assert_eq!(count(&l, (T0 + 105) * 1_000), 2);
        // After a whole idle window the previous one is gone.
        assert_eq!(count(&l, (T0 + 250) * 1_000), 10);
    }
}
