//! The resilience part of an upstream in `GET /upstreams`: retries granted and refused
//! by the budget, connection-limit use and overflows, and the request-limit overflows.

use serde_json::{json, Value};

use crate::upstream::Upstream;

/// Counters since the pool was built (a reload that keeps the pool's name starts them
/// again, as it does the budget and the limits).
pub fn upstream(u: &Upstream) -> Value {
    let budget = &u.retry_policy().budget;
    let connections = u.connections();
    json!({
        "retries_granted": budget.granted(),
        "retries_refused_by_budget": budget.refused(),
        "connections_in_use": connections.in_use(),
        "requests_pending": connections.pending(),
        "connection_overflows": connections.overflowed(),
        "request_overflows": u.overflowed(),
        "ejections": u.targets().iter().map(|t| t.ejections()).sum::<u64>(),
    })
}
