//! The shared registry of series: interned label sets and atomic counters.
//!
//! # Bounds
//!
//! - Route names: at most [`MAX_ROUTES`] are interned (each with its three latency
//!   histograms, about 700 bytes); requests of routes beyond fold into the route label
//!   [`OTHER`].
//! - Consumers: at most [`MAX_CONSUMERS`]; beyond, the consumer label is [`OTHER`].
//! - Request series (route × consumer × code × source): a fixed table of
//!   [`MAX_REQUEST_SERIES`] entries (32 bytes each, allocated on the first request
//!   recorded); a label set that finds no free entry is counted in one entry whose
//!   labels are all [`OTHER`].
//!
//! Names are interned when a configuration is built (off the request path) and never
//! removed, so series survive reloads; recording looks them up in an immutable
//! snapshot and adds to atomics, without a lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::PrometheusConfig;
use crate::LogEntry;

/// Kong's latency buckets, in milliseconds.
pub const LATENCY_BUCKETS_MS: [u64; 26] = [
    1, 2, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 1000, 2000,
    5000, 10000, 30000, 60000,
];
/// Most route names interned.
pub const MAX_ROUTES: usize = 16_384;
/// Most consumers interned.
pub const MAX_CONSUMERS: usize = 65_536;
/// Entries of the request-series table.
pub const MAX_REQUEST_SERIES: usize = 16_384;
/// The label value of whatever is beyond a bound.
pub const OTHER: &str = "_other";

/// How far an insert probes the table before folding into the overflow entry.
const PROBES: usize = 32;
/// Index 0 of both name tables: no route, no consumer (empty label).
const NONE: u32 = 0;
/// Index 1: [`OTHER`].
const OTHER_INDEX: u32 = 1;

/// Who produced the response, Kong's `source` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The upstream answered.
    Service,
    /// The gateway itself (no route, no healthy target, upstream failure).
    Gateway,
    /// A plugin answered (Kong's `exit`).
    Exit,
}

impl Source {
    fn from_bits(b: u64) -> Source {
        match b {
            0 => Source::Service,
            1 => Source::Gateway,
            _ => Source::Exit,
        }
    }

    fn bits(self) -> u64 {
        match self {
            Source::Service => 0,
            Source::Gateway => 1,
            Source::Exit => 2,
        }
    }

    /// Kong's label value (`kong` for the gateway).
    pub fn label(self) -> &'static str {
        match self {
            Source::Service => "service",
            Source::Gateway => "kong",
            Source::Exit => "exit",
        }
    }
}

/// One latency histogram (per-bucket counts; rendered cumulative).
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    count: AtomicU64,
    sum_ms: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if let Some(i) = LATENCY_BUCKETS_MS.iter().position(|&b| ms <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// A route's latency histograms.
#[derive(Debug, Default)]
struct RouteLatency {
    request: Histogram,
    upstream: Histogram,
    gateway: Histogram,
}

/// One request series: its packed labels and counters.
#[derive(Debug, Default)]
struct Entry {
    /// 0: free. Otherwise bit 0 set, then source, code, consumer and route indexes.
    key: AtomicU64,
    requests: AtomicU64,
    ingress: AtomicU64,
    egress: AtomicU64,
}

fn pack(route: u32, consumer: u32, code: u16, source: Source) -> u64 {
    1 | source.bits() << 1
        | u64::from(code) << 3
        | u64::from(consumer) << 13
        | u64::from(route) << 33
}

fn unpack(key: u64) -> (u32, u32, u16, Source) {
    let source = Source::from_bits(key >> 1 & 0b11);
    let code = (key >> 3 & 0x3ff) as u16;
    let consumer = (key >> 13 & 0xf_ffff) as u32;
    let route = (key >> 33) as u32;
    (route, consumer, code, source)
}

/// The names known when the snapshot was taken.
#[derive(Debug, Default)]
struct Snapshot {
    routes: HashMap<Arc<str>, u32>,
    /// By index: route label and service label (the route's upstream).
    route_labels: Vec<(Arc<str>, Arc<str>)>,
    latency: Vec<Arc<RouteLatency>>,
    consumers: HashMap<Arc<str>, u32>,
    consumer_labels: Vec<Arc<str>>,
}

impl Snapshot {
    fn initial() -> Snapshot {
        let empty: Arc<str> = Arc::from("");
        let other: Arc<str> = Arc::from(OTHER);
        Snapshot {
            routes: HashMap::new(),
            route_labels: vec![
                (empty.clone(), empty.clone()),
                (other.clone(), other.clone()),
            ],
            latency: vec![Arc::default(), Arc::default()],
            consumers: HashMap::new(),
            consumer_labels: vec![empty, other],
        }
    }

    fn route(&self, name: &str) -> u32 {
        if name.is_empty() {
            return NONE;
        }
        self.routes.get(name).copied().unwrap_or(OTHER_INDEX)
    }

    fn consumer(&self, id: &str) -> u32 {
        self.consumers.get(id).copied().unwrap_or(OTHER_INDEX)
    }
}

/// The registry of the `prometheus` plugin's series: one per process, shared by every
/// instance of every configuration.
pub struct Metrics {
    snapshot: ArcSwap<Snapshot>,
    /// Serializes interning (configuration builds), never taken on the request path.
    interning: Mutex<()>,
    table: OnceLock<Box<[Entry]>>,
    overflow: Entry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot.load();
        f.debug_struct("Metrics")
            .field("routes", &s.routes.len())
            .field("consumers", &s.consumers.len())
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Metrics {
            snapshot: ArcSwap::from_pointee(Snapshot::initial()),
            interning: Mutex::new(()),
            table: OnceLock::new(),
            overflow: Entry::default(),
        }
    }

    /// Interns the routes (name and upstream) and consumers (id and label: username,
    /// else id) of a configuration being built. Known names keep their series; a route's
    /// `service` label becomes its current upstream. Names beyond the bounds are not
    /// interned (they fold into [`OTHER`]).
    pub fn intern<'a>(
        &self,
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
        consumers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let _one_at_a_time = self.interning.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.snapshot.load_full();
        let mut next = Snapshot {
            routes: current.routes.clone(),
            route_labels: current.route_labels.clone(),
            latency: current.latency.clone(),
            consumers: current.consumers.clone(),
            consumer_labels: current.consumer_labels.clone(),
        };
        for (name, upstream) in routes {
            if name.is_empty() {
                continue;
            }
            match next.routes.get(name) {
                Some(&i) => {
                    if let Some(labels) = next.route_labels.get_mut(i as usize) {
                        if &*labels.1 != upstream {
                            labels.1 = Arc::from(upstream);
                        }
                    }
                }
                None if next.routes.len() < MAX_ROUTES => {
                    let i = next.route_labels.len() as u32;
                    let name: Arc<str> = Arc::from(name);
                    next.routes.insert(name.clone(), i);
                    next.route_labels.push((name, Arc::from(upstream)));
                    next.latency.push(Arc::default());
                }
                None => {}
            }
        }
        for (id, label) in consumers {
            if id.is_empty() || next.consumers.contains_key(id) {
                continue;
            }
            if next.consumers.len() < MAX_CONSUMERS {
                let i = next.consumer_labels.len() as u32;
                next.consumers.insert(Arc::from(id), i);
                next.consumer_labels.push(Arc::from(label));
            }
        }
        self.snapshot.store(Arc::new(next));
    }

    /// The series entry for a label set: found or claimed in the table, or the overflow
    /// entry when the table has no room near its slot.
    fn entry(&self, key: u64) -> &Entry {
        let table = self.table.get_or_init(|| {
            (0..MAX_REQUEST_SERIES)
                .map(|_| Entry::default())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        let start = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % table.len();
        for i in 0..PROBES {
            let e = &table[(start + i) % table.len()];
            let k = e.key.load(Ordering::Acquire);
            if k == key {
                return e;
            }
            if k == 0 {
                match e
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => return e,
                    Err(actual) if actual == key => return e,
                    Err(_) => {}
                }
            }
        }
        &self.overflow
    }

    /// Records a finished request as `config` asks.
    pub fn record(&self, entry: &LogEntry<'_>, config: &PrometheusConfig) {
        let snapshot = self.snapshot.load();
        let route = snapshot.route(entry.ctx.route_name());
        if config.status_code_metrics || config.bandwidth_metrics {
            let consumer = match (config.per_consumer, entry.ctx.consumer()) {
                (true, Some(c)) => snapshot.consumer(&c.id),
                _ => NONE,
            };
            let source = if entry.upstream_status.is_some() {
                Source::Service
            } else if entry.upstream.is_some() || route == NONE {
                Source::Gateway
            } else {
                Source::Exit
            };
            let code = if entry.status <= 999 { entry.status } else { 0 };
            let e = self.entry(pack(route, consumer, code, source));
            if config.status_code_metrics {
                e.requests.fetch_add(1, Ordering::Relaxed);
            }
            if config.bandwidth_metrics {
                e.ingress
                    .fetch_add(entry.bytes_received as u64, Ordering::Relaxed);
                e.egress
                    .fetch_add(entry.bytes_sent as u64, Ordering::Relaxed);
            }
        }
        if config.latency_metrics {
            if let Some(l) = snapshot.latency.get(route as usize) {
                l.request.observe(entry.total_latency);
                if let Some(up) = entry.upstream_latency {
                    l.upstream.observe(up);
                }
                let gateway = entry
                    .total_latency
                    .saturating_sub(entry.upstream_latency.unwrap_or_default());
                l.gateway.observe(gateway);
            }
        }
    }

    /// Appends the Prometheus text (format 0.0.4) of every series recorded so far.
    pub fn render(&self, out: &mut String) {
        let snapshot = self.snapshot.load();
        let route_labels = |i: u32| {
            snapshot
                .route_labels
                .get(i as usize)
                .map_or((OTHER, OTHER), |(r, s)| (&**r, &**s))
        };
        let consumer_label = |i: u32| {
            snapshot
                .consumer_labels
                .get(i as usize)
                .map_or(OTHER, |c| &**c)
        };
        let mut entries: Vec<(u64, &Entry)> = self
            .table
            .get()
            .map(|t| {
                t.iter()
                    .map(|e| (e.key.load(Ordering::Acquire), e))
                    .filter(|(k, _)| *k != 0)
                    .collect()
            })
            .unwrap_or_default();
        entries.sort_by_key(|(k, _)| unpack(*k));
        let overflow = self.overflow.requests.load(Ordering::Relaxed) > 0
            || self.overflow.ingress.load(Ordering::Relaxed) > 0
            || self.overflow.egress.load(Ordering::Relaxed) > 0;

        // Requests.
        let mut lines = String::new();
        for (key, e) in &entries {
            let n = e.requests.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let (route, consumer, code, source) = unpack(*key);
            let (r, s) = route_labels(route);
            let _ = writeln!(
                lines,
                "pingway_http_requests_total{{service=\"{}\",route=\"{}\",code=\"{code}\",source=\"{}\",consumer=\"{}\"}} {n}",
                escape(s),
                escape(r),
                source.label(),
                escape(consumer_label(consumer))
            );
        }
        let n = self.overflow.requests.load(Ordering::Relaxed);
        if n > 0 {
            let _ = writeln!(
                lines,
                "pingway_http_requests_total{{service=\"{OTHER}\",route=\"{OTHER}\",code=\"{OTHER}\",source=\"{OTHER}\",consumer=\"{OTHER}\"}} {n}"
            );
        }
        if !lines.is_empty() {
            family(
                out,
                "pingway_http_requests_total",
                "counter",
                "HTTP requests by service (upstream), route, status code, source and consumer.",
            );
            out.push_str(&lines);
        }

        // Latencies.
        for (name, help, pick) in [
            (
                "pingway_request_latency_ms",
                "Time from the request's arrival to the end of its response, in ms.",
                0,
            ),
            (
                "pingway_upstream_latency_ms",
                "Time the upstream took to answer with its header, in ms.",
                1,
            ),
            (
                "pingway_gateway_latency_ms",
                "Time spent in the gateway (the request's time less the upstream's), in ms.",
                2,
            ),
        ] {
            let mut lines = String::new();
            for (i, l) in snapshot.latency.iter().enumerate() {
                let h = match pick {
                    0 => &l.request,
                    1 => &l.upstream,
                    _ => &l.gateway,
                };
                let count = h.count.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let (r, s) = route_labels(i as u32);
                let labels = format!("service=\"{}\",route=\"{}\"", escape(s), escape(r));
                let mut cumulative = 0;
                for (b, bound) in h.buckets.iter().zip(LATENCY_BUCKETS_MS) {
                    cumulative += b.load(Ordering::Relaxed);
                    let _ = writeln!(
                        lines,
                        "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                    );
                }
                // Read after the buckets: a concurrent observation may make +Inf exceed
                // the last bucket, never fall below it.
                let _ = writeln!(
                    lines,
                    "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
                    count.max(cumulative)
                );
                let _ = writeln!(
                    lines,
                    "{name}_sum{{{labels}}} {}",
                    h.sum_ms.load(Ordering::Relaxed)
                );
                let _ = writeln!(lines, "{name}_count{{{labels}}} {}", count.max(cumulative));
            }
            if !lines.is_empty() {
                family(out, name, "histogram", help);
                out.push_str(&lines);
            }
        }

        // Bandwidth, summed over codes and sources.
        let mut bandwidth: Vec<((u32, u32), (u64, u64))> = Vec::new();
        for (key, e) in &entries {
            let (route, consumer, _, _) = unpack(*key);
            let (i, o) = (
                e.ingress.load(Ordering::Relaxed),
                e.egress.load(Ordering::Relaxed),
            );
            match bandwidth.last_mut() {
                Some((k, sums)) if *k == (route, consumer) => {
                    sums.0 += i;
                    sums.1 += o;
                }
                _ => bandwidth.push(((route, consumer), (i, o))),
            }
        }
        let mut lines = String::new();
        for ((route, consumer), (i, o)) in bandwidth {
            if i == 0 && o == 0 {
                continue;
            }
            let (r, s) = route_labels(route);
            for (direction, v) in [("egress", o), ("ingress", i)] {
                let _ = writeln!(
                    lines,
                    "pingway_bandwidth_bytes{{service=\"{}\",route=\"{}\",direction=\"{direction}\",consumer=\"{}\"}} {v}",
                    escape(s),
                    escape(r),
                    escape(consumer_label(consumer))
                );
            }
        }
        if overflow {
            for (direction, v) in [
                ("egress", &self.overflow.egress),
                ("ingress", &self.overflow.ingress),
            ] {
                let _ = writeln!(
                    lines,
                    "pingway_bandwidth_bytes{{service=\"{OTHER}\",route=\"{OTHER}\",direction=\"{direction}\",consumer=\"{OTHER}\"}} {}",
                    v.load(Ordering::Relaxed)
                );
            }
        }
        if !lines.is_empty() {
            family(
                out,
                "pingway_bandwidth_bytes",
                "counter",
                "Body bytes by service (upstream), route, direction and consumer.",
            );
            out.push_str(&lines);
        }
    }
}

/// `# HELP` and `# TYPE` lines.
pub(crate) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
pub fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    std::borrow::Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = pack(16_383, 65_537, 503, Source::Exit);
        assert_eq!(unpack(k), (16_383, 65_537, 503, Source::Exit));
        assert_ne!(pack(0, 0, 0, Source::Service), 0);
    }

    #[test]
    fn a_full_table_folds_into_the_overflow_entry() {
        let m = Metrics::new();
        let mut overflowed = 0;
        for code in 0..1000u16 {
            for route in 0..40u32 {
                let e = m.entry(pack(route, 0, code, Source::Service));
                if std::ptr::eq(e, &m.overflow) {
                    overflowed += 1;
                }
            }
        }
        // 40,000 label sets into 16,384 entries: the rest fold, none is lost.
        assert!(overflowed >= 40_000 - MAX_REQUEST_SERIES, "{overflowed}");
        // A label set seen before finds its own entry again.
        let a = m.entry(pack(1, 0, 200, Source::Service)) as *const Entry;
        let b = m.entry(pack(1, 0, 200, Source::Service)) as *const Entry;
        assert_eq!(a, b);
    }

    #[test]
    fn interning_is_bounded_and_keeps_indexes() {
        let m = Metrics::new();
        m.intern([("a", "u1")], [("c1", "alice")]);
        let a = m.snapshot.load().route("a");
        m.intern([("b", "u2"), ("a", "u3")], []);
        let s = m.snapshot.load();
        assert_eq!(s.route("a"), a);
        assert_eq!(&*s.route_labels[a as usize].1, "u3");
        assert_eq!(s.route("nope"), OTHER_INDEX);
        assert_eq!(s.route(""), NONE);
        assert_eq!(s.consumer("c1"), 2);
        assert_eq!(&*s.consumer_labels[2], "alice");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("plain"), "plain");
    }
}
