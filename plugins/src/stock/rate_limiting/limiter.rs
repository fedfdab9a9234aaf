//! The counters: per period, one map of counters for the current window, swapped for an
//! empty one when the clock enters the next window.
//!
//! - **Exact.** A counter is only ever incremented by a compare-and-swap that refuses to
//!   go past the limit, so with `minute: 100` exactly 100 concurrent requests pass. With
//!   several periods a request takes a slot in each, shortest period first; if one
//!   refuses, the slots already taken are given back, so a refused request counts
//!   nowhere.
//! - **Bounded.** Only the current window's map is reachable. The previous one is freed
//!   as soon as the last request still using it (at most a few, in flight across the
//!   boundary) lets go of it, so memory holds the keys seen in the current window.
//! - **Cheap.** The window is behind a read-write lock held only long enough to clone an
//!   `Arc`; counters live in a `DashMap` (sharded locks, again held only around the
//!   atomic operation). Looking up an existing key allocates nothing: IP identifiers are
//!   `IpAddr` keys, other identifiers are looked up by borrowed bytes.
//!
//! The clock is an argument (`now`, Unix seconds), so tests drive time directly.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use super::period::{Bounds, Period};

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
    ips: DashMap<IpAddr, AtomicU64>,
    names: DashMap<Box<[u8]>, AtomicU64>,
}

impl Window {
    fn new(bounds: Bounds) -> Self {
        Window {
            bounds,
            ips: DashMap::new(),
            names: DashMap::new(),
        }
    }

    /// Applies `op` to the counter of `id`, creating it (at 0) first if `create`.
    /// Returns `None` when the counter does not exist and `create` is false.
    fn with_counter<R>(
        &self,
        id: Identifier<'_>,
        create: bool,
        op: impl FnOnce(&AtomicU64) -> R,
    ) -> Option<R> {
        match id {
            Identifier::Ip(ip) => {
                if let Some(c) = self.ips.get(&ip) {
                    return Some(op(c.value()));
                }
                if !create {
                    return None;
                }
                let c = self.ips.entry(ip).or_insert_with(|| AtomicU64::new(0));
                Some(op(c.value()))
            }
            Identifier::Name(name) => {
                if let Some(c) = self.names.get(name) {
                    return Some(op(c.value()));
                }
                if !create {
                    return None;
                }
                let c = self
                    .names
                    .entry(name.into())
                    .or_insert_with(|| AtomicU64::new(0));
                Some(op(c.value()))
            }
        }
    }

    /// Takes a slot if the count is below `limit`: `Ok(count including this request)`,
    /// or `Err(current count)` when full.
    fn try_acquire(&self, id: Identifier<'_>, limit: u64) -> Result<u64, u64> {
        self.with_counter(id, true, |c| {
            c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|previous| previous + 1)
        })
        // `with_counter` always returns a value when creating.
        .unwrap_or(Err(limit))
    }

    /// Gives back a slot taken by [`Self::try_acquire`].
    fn release(&self, id: Identifier<'_>) {
        self.with_counter(id, false, |c| {
            // Never below zero, whatever happens around us.
            let _ = c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        });
    }

    /// The current count, without creating a counter.
    fn count(&self, id: Identifier<'_>) -> u64 {
        self.with_counter(id, false, |c| c.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ips.len() + self.names.len()
    }
}

/// One configured period: its limit and its current window.
#[derive(Debug)]
struct PeriodLimit {
    period: Period,
    limit: u64,
    current: RwLock<Arc<Window>>,
}

impl PeriodLimit {
    /// The window containing `now`, starting a new (empty) one when the clock has moved
    /// past the current one. A clock that steps back keeps counting in the current
    /// window rather than reopening an old one.
    fn window(&self, now: u64) -> Arc<Window> {
        {
            let w = self.current.read().unwrap_or_else(|e| e.into_inner());
            if now < w.bounds.end {
                return Arc::clone(&w);
            }
        }
        let mut w = self.current.write().unwrap_or_else(|e| e.into_inner());
        if now < w.bounds.end {
            // Another request rolled the window over first.
            return Arc::clone(&w);
        }
        let bounds = self.period.bounds(now);
        log::trace!(
            "rate-limiting: new {} window [{}, {})",
            self.period,
            bounds.start,
            bounds.end
        );
        let fresh = Arc::new(Window::new(bounds));
        let old = std::mem::replace(&mut *w, Arc::clone(&fresh));
        drop(w);
        // The old map (possibly large) is freed here, outside the lock, unless a request
        // in flight still holds it; then it goes when that request finishes.
        drop(old);
        fresh
    }
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

/// Fixed-window counters for a set of periods, keyed by identifier.
#[derive(Debug)]
pub(crate) struct Limiter {
    periods: Vec<PeriodLimit>,
}

impl Limiter {
    /// A limiter for these `(period, limit)` pairs. They are checked shortest period
    /// first whatever their order here.
    pub fn new(limits: impl IntoIterator<Item = (Period, u64)>) -> Self {
        let mut periods: Vec<PeriodLimit> = limits
            .into_iter()
            .map(|(period, limit)| PeriodLimit {
                period,
                limit,
                // An empty window that has already ended: the first request opens one.
                current: RwLock::new(Arc::new(Window::new(Bounds { start: 0, end: 0 }))),
            })
            .collect();
        periods.sort_by_key(|p| p.period);
        periods.dedup_by_key(|p| p.period);
        Limiter { periods }
    }

    /// Counts a request by `id` at `now` (Unix seconds) if every period has room.
    pub fn check(&self, id: Identifier<'_>, now: u64) -> Outcome {
        // The windows used, kept so that slots are given back to the very window they
        // were taken from even if the clock rolls over meanwhile.
        let mut windows: [Option<Arc<Window>>; 6] = Default::default();
        let mut outcome = Outcome {
            allowed: true,
            usage: [None; 6],
        };
        let mut refused_at = None;
        for (i, p) in self.periods.iter().enumerate() {
            let window = p.window(now);
            let (remaining, refused) = match refused_at {
                // Already refused: only read, for the headers.
                Some(_) => (p.limit.saturating_sub(window.count(id)), false),
                None => match window.try_acquire(id, p.limit) {
                    Ok(count) => (p.limit.saturating_sub(count), false),
                    Err(_) => (0, true),
                },
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
                    window.release(id);
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
                p.current.read().unwrap_or_else(|e| e.into_inner()).len()
            })
    }

    /// A weak handle on the current window of `period`, to check it is freed later.
    #[cfg(test)]
    fn current_window(&self, period: Period) -> Option<std::sync::Weak<Window>> {
        self.periods
            .iter()
            .find(|p| p.period == period)
            .map(|p| Arc::downgrade(&p.current.read().unwrap_or_else(|e| e.into_inner())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::thread;

    const T0: u64 = 1_700_000_040; // a minute boundary (divisible by 60)

    fn ip(last: u8) -> Identifier<'static> {
        Identifier::Ip(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn allows_up_to_the_limit_then_blocks() {
        let l = Limiter::new([(Period::Minute, 3)]);
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
        let l = Limiter::new([(Period::Minute, 1)]);
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
        let l = Limiter::new([(Period::Minute, 2)]);
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
        let l = Limiter::new([(Period::Minute, 2)]);
        assert!(l.check(ip(1), T0 + 60).allowed);
        assert!(l.check(ip(1), T0 + 59).allowed);
        let o = l.check(ip(1), T0 + 59);
        assert!(!o.allowed);
        // Reset counts to the end of the window in use.
        assert_eq!(o.of(Period::Minute).map(|u| u.reset), Some(61));
    }

    #[test]
    fn old_windows_are_evicted() {
        let l = Limiter::new([(Period::Second, 5), (Period::Minute, 100)]);
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
    fn refused_requests_do_not_count_in_shorter_periods() {
        // second: 5, minute: 7. Second 0: 5 pass. Second 1: 2 pass, then the minute is
        // full and refused requests must give their second-slot back.
        let l = Limiter::new([(Period::Minute, 7), (Period::Second, 5)]);
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
        let l = Limiter::new([(Period::Second, 1), (Period::Hour, 10)]);
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
        let l = Limiter::new([(Period::Minute, 100)]);
        assert_eq!(hammer(&l, 400, 1, T0), 100);
        // And the counter did not creep past the limit.
        let o = l.check(ip(1), T0);
        assert_eq!(o.of(Period::Minute).map(|u| u.remaining), Some(0));
    }

    #[test]
    fn multi_period_rollback_under_concurrency() {
        let l = Limiter::new([(Period::Second, 5), (Period::Minute, 7)]);
        assert_eq!(hammer(&l, 64, 4, T0), 5);
        assert_eq!(hammer(&l, 64, 4, T0 + 1), 2);
        assert_eq!(hammer(&l, 64, 4, T0 + 2), 0);
        // Exactly the served requests are counted: 2 in second 1, none in second 2.
        let second = |now| {
            let w = l.periods[0].window(now);
            w.count(ip(1))
        };
        assert_eq!(second(T0 + 2), 0);
        let minute = l.periods[1].window(T0 + 2).count(ip(1));
        assert_eq!(minute, 7);
    }

    #[test]
    fn rollover_under_concurrency_counts_each_request_once() {
        // Requests straddling a minute boundary: each lands in exactly one window.
        let l = Limiter::new([(Period::Minute, 1_000)]);
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
        let current = l.periods[0].window(T0 + 60).count(ip(1));
        // Every request at T0+60 counted in the new window; those at T0+59 that ran
        // before the switch went to the old one, later ones to the new one (the clock
        // never moves backwards into a closed window).
        assert!((400..=800).contains(&current), "{current}");
    }
}
