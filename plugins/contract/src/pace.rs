//! Cooperative yielding for long CPU-bound work on background threads.
//!
//! Loading a large configuration (parsing, deserializing, compiling 10,000 routes) takes
//! tens of milliseconds of CPU. When the reload thread shares a core with a busy proxy
//! worker, the scheduler lets it run until the next timer tick (several milliseconds on
//! common kernels) before the worker gets the core back, and every request in flight
//! waits that long: the tail latency during a reload grows by the length of a tick.
//! Lowering the thread's priority changes how much CPU it gets, not how long it holds
//! the core once running.
//!
//! A thread that calls [`enable`] promises to call [`point`] often in its long loops;
//! whenever it has run for longer than its budget since the last yield, `point` yields
//! the core (`sched_yield`), so a waiting worker runs within about one budget. On any
//! other thread (the proxy workers, tests) `point` is a thread-local read and does
//! nothing.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How many calls to [`point`] between two clock reads.
const CHECK_EVERY: u32 = 64;

#[derive(Clone, Copy)]
struct Pacer {
    budget: Duration,
    since: Instant,
    calls: u32,
    yields: u64,
}

thread_local! {
    static PACER: Cell<Option<Pacer>> = const { Cell::new(None) };
}

/// Makes [`point`] yield on this thread once `budget` of running time has passed since
/// the last yield.
pub fn enable(budget: Duration) {
    PACER.with(|p| {
        p.set(Some(Pacer {
            budget,
            since: Instant::now(),
            calls: 0,
            yields: 0,
        }))
    });
}

/// A place in a long loop where the thread may give the core away. Free on threads that
/// did not call [`enable`].
#[inline]
pub fn point() {
    PACER.with(|p| {
        let Some(mut pacer) = p.get() else {
            return;
        };
        pacer.calls += 1;
        if pacer.calls >= CHECK_EVERY {
            pacer.calls = 0;
            if pacer.since.elapsed() >= pacer.budget {
                std::thread::yield_now();
                pacer.yields += 1;
                pacer.since = Instant::now();
            }
        }
        p.set(Some(pacer));
    });
}

/// How many times [`point`] yielded on this thread since [`enable`] (0 when not enabled).
pub fn yields() -> u64 {
    PACER.with(|p| p.get().map_or(0, |pacer| pacer.yields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let t = Instant::now();
        while t.elapsed() < d {
            point();
        }
    }

    #[test]
    fn points_yield_once_per_budget_on_enabled_threads_only() {
        std::thread::spawn(|| {
            spin(Duration::from_millis(5));
            assert_eq!(yields(), 0, "not enabled: never yields");

            let budget = Duration::from_micros(500);
            enable(budget);
            let started = Instant::now();
            while yields() < 4 && started.elapsed() < Duration::from_secs(10) {
                point();
            }
            let n = yields();
            let elapsed = started.elapsed();
            assert!(n >= 4, "enabled: yields ({n} in {elapsed:?})");
            // Never more often than once per budget of running time (a busy machine only
            // makes the yields rarer).
            let most = elapsed.as_micros() / budget.as_micros() + 1;
            assert!(u128::from(n) <= most, "{n} yields in {elapsed:?}");
        })
        .join()
        .unwrap();
    }
}
