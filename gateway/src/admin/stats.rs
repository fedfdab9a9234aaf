//! `GET /stats`: what the dashboard shows, as one JSON document. Every count is
//! cumulative (since the process started; a route's counters follow its name across
//! reloads), so a client derives rates from two samples.

use serde_json::{json, Value};

use crate::live_stats::{self, BUCKETS_MS};
use crate::reload::Reloader;

use super::{rfc3339, views};

/// The `/stats` document: `now`, `config` (as in `/status`), `latency_buckets_ms` (the
/// upper bounds of the latency buckets; the last bucket, beyond them, has none),
/// `routes` (each with `name`, `upstream` and the counters of
/// [`RouteStats::to_json`](live_stats::RouteStats::to_json)), `unrouted` (the same
/// counters for requests no route matched), `upstreams` (as `/upstreams`) and `reloads`
/// (counts by outcome, and the recent loads with their problems).
pub fn stats(reloader: &Reloader) -> Value {
    let runtime = reloader.runtime().load_full();
    let status = views::status(reloader);
    let routes: Vec<Value> = runtime
        .routes
        .iter()
        .map(|r| {
            let mut v = r.stats.to_json();
            v["name"] = Value::from(&*r.info.name);
            v["upstream"] = Value::from(&*r.info.upstream);
            v
        })
        .collect();
    let mut reloads = reloader.history().to_json();
    reloads["counts"] = status["reloads"].clone();
    json!({
        "now": rfc3339(std::time::SystemTime::now()),
        "config": status["config"],
        "latency_buckets_ms": BUCKETS_MS,
        "routes": routes,
        "unrouted": live_stats::unrouted().to_json(),
        "upstreams": views::upstreams(&runtime),
        "reloads": reloads,
    })
}
