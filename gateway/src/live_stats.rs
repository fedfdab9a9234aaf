//! Per-route request counters for the admin API's `GET /stats` and the dashboard.
//!
//! Recording is lock-free: each finished request adds to three relaxed atomics of its
//! route (its status class, its latency bucket and the latency sum). The counters of a
//! route are made when the configuration is compiled, one set per route, so the number
//! of series is bounded by the configuration, never by traffic; a reload hands a route's
//! counters to the route of the same name in the new configuration, so rates stay
//! continuous. Requests no route matched share one process-wide set.
//!
//! Latency percentiles come from fixed histogram buckets ([`BUCKETS_MS`]), interpolated
//! linearly inside the bucket the rank falls in (as Prometheus' `histogram_quantile`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// Upper bounds (inclusive, milliseconds) of the latency buckets; one more bucket holds
/// the slower requests.
pub const BUCKETS_MS: [u64; 13] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/// Number of latency buckets, the overflow one included.
const N_BUCKETS: usize = BUCKETS_MS.len() + 1;

/// Status classes counted: `1xx` to `5xx`, and `other` (no response was sent: the
/// client went away, or a status outside 100..=599).
pub const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// The counters of one route (or of the requests no route matched).
#[derive(Debug, Default)]
pub struct RouteStats {
    status: [AtomicU64; 6],
    buckets: [AtomicU64; N_BUCKETS],
    latency_sum_ms: AtomicU64,
}

/// Requests no route matched (404s, and requests refused before routing).
static UNROUTED: RouteStats = RouteStats::new();

impl RouteStats {
    /// Counters at zero.
    pub const fn new() -> Self {
        RouteStats {
            status: [const { AtomicU64::new(0) }; 6],
            buckets: [const { AtomicU64::new(0) }; N_BUCKETS],
            latency_sum_ms: AtomicU64::new(0),
        }
    }

    /// Counts one finished request: its response status (0 when none was sent) and how
    /// long it took.
    pub fn record(&self, status: u16, latency: Duration) {
        let class = match status {
            100..=599 => usize::from(status / 100) - 1,
            _ => 5,
        };
        self.status[class].fetch_add(1, Ordering::Relaxed);
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MS.partition_point(|&upper| upper < ms);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Requests counted.
    pub fn requests(&self) -> u64 {
        self.status.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// The counts per latency bucket.
    pub fn buckets(&self) -> [u64; N_BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    /// As JSON: `requests`, `status` (a count per class), `latency_ms` (`p50`, `p95`,
    /// `p99` since the counters were made, `null` before any request), `latency_sum_ms`
    /// and `latency_buckets` (counts, in the order of [`BUCKETS_MS`] plus the overflow).
    pub fn to_json(&self) -> Value {
        let status: serde_json::Map<String, Value> = CLASSES
            .iter()
            .zip(&self.status)
            .map(|(c, n)| (c.to_string(), Value::from(n.load(Ordering::Relaxed))))
            .collect();
        let buckets = self.buckets();
        json!({
            "requests": self.requests(),
            "status": status,
            "latency_ms": {
                "p50": percentile(&buckets, 0.50),
                "p95": percentile(&buckets, 0.95),
                "p99": percentile(&buckets, 0.99),
            },
            "latency_sum_ms": self.latency_sum_ms.load(Ordering::Relaxed),
            "latency_buckets": buckets.to_vec(),
        })
    }
}

/// Counts a finished request on its route's counters, or on the unrouted ones.
pub fn record(route: Option<&RouteStats>, status: u16, latency: Duration) {
    route.unwrap_or(&UNROUTED).record(status, latency);
}

/// The counters of requests no route matched.
pub fn unrouted() -> &'static RouteStats {
    &UNROUTED
}

/// The `q` quantile (0..=1) of the bucket counts in milliseconds, interpolated linearly
/// inside its bucket (from 0 for the first); `None` without requests. A rank in the
/// overflow bucket gives the last finite bound.
pub fn percentile(buckets: &[u64; N_BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let Some(&upper) = BUCKETS_MS.get(i) else {
                return Some(BUCKETS_MS[BUCKETS_MS.len() - 1] as f64);
            };
            let lower = if i == 0 { 0 } else { BUCKETS_MS[i - 1] };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower as f64 + (upper - lower) as f64 * within);
        }
        below += n;
    }
    Some(BUCKETS_MS[BUCKETS_MS.len() - 1] as f64)
}

/// The counters of the previous configuration's routes by name, to hand over on reload.
pub fn by_name<'a>(
    routes: impl Iterator<Item = (&'a str, &'a Arc<RouteStats>)>,
) -> HashMap<&'a str, Arc<RouteStats>> {
    routes.map(|(name, s)| (name, Arc::clone(s))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_latencies_land_in_their_class_and_bucket() {
        let s = RouteStats::new();
        s.record(200, Duration::from_millis(0));
        s.record(204, Duration::from_millis(1));
        s.record(404, Duration::from_millis(2));
        s.record(502, Duration::from_millis(3));
        s.record(0, Duration::from_secs(60));
        s.record(999, Duration::from_millis(10_000));
        assert_eq!(s.requests(), 6);
        let v = s.to_json();
        assert_eq!(v["status"]["2xx"], 2);
        assert_eq!(v["status"]["4xx"], 1);
        assert_eq!(v["status"]["5xx"], 1);
        assert_eq!(v["status"]["other"], 2);
        let b = s.buckets();
        // 0 and 1 ms in the first (<= 1), 2 in the second, 3 in the third (<= 5),
        // 10,000 ms in the last finite one, 60 s in the overflow.
        assert_eq!(b[0], 2);
        assert_eq!(b[1], 1);
        assert_eq!(b[2], 1);
        assert_eq!(b[BUCKETS_MS.len() - 1], 1);
        assert_eq!(b[BUCKETS_MS.len()], 1);
        assert_eq!(v["latency_sum_ms"], 60_000 + 10_000 + 6);
    }

    #[test]
    fn percentiles_interpolate_within_a_bucket() {
        let mut b = [0u64; N_BUCKETS];
        assert_eq!(percentile(&b, 0.5), None);
        // 100 requests in (10, 20] ms.
        b[4] = 100;
        assert_eq!(percentile(&b, 0.5), Some(15.0));
        assert_eq!(percentile(&b, 1.0), Some(20.0));
        // 90 fast ones (<= 1 ms) and 10 in (100, 200]: p50 is fast, p95 half-way up.
        let mut b = [0u64; N_BUCKETS];
        b[0] = 90;
        b[7] = 10;
        assert_eq!(percentile(&b, 0.5), Some(50.0 / 90.0));
        assert_eq!(percentile(&b, 0.95), Some(150.0));
        // All in the overflow: the last finite bound.
        let mut b = [0u64; N_BUCKETS];
        b[N_BUCKETS - 1] = 3;
        assert_eq!(percentile(&b, 0.99), Some(10_000.0));
    }
}
