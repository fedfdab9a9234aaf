//! At most one log line per interval for a recurring problem (an authorization service
//! that is down, a collector that refuses batches): a failure that happens on every
//! request must not write a line per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one warning through per interval and counts the ones it held back.
#[derive(Debug)]
pub struct LogThrottle {
    interval_ms: u64,
    epoch: Instant,
    /// Milliseconds after `epoch` of the last line written, `u64::MAX` before the first.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// A throttle letting through one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogThrottle {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now (`n` lines were held back since the last
    /// one), `None` when this one is to be held back. Lock-free: one compare-exchange.
    pub fn permit(&self) -> Option<u64> {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval() {
        let t = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(t.permit(), Some(0));
        assert_eq!(t.permit(), None);
        assert_eq!(t.permit(), None);
        let t = LogThrottle::new(Duration::ZERO);
        assert_eq!(t.permit(), Some(0));
        assert_eq!(t.permit(), Some(0));
    }
}
