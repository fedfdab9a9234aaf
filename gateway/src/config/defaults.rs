//! Every default value of the configuration, in one place.
//!
//! The model refers to these functions in `#[serde(default = ...)]`; the JSON Schema and
//! the configuration reference (docs/configuration.md) show the same values.

use super::duration::Duration;

/// Grace period for in-flight requests on SIGTERM.
pub fn grace_period() -> Duration {
    Duration::from_secs(5)
}

/// Idle upstream connections kept per gateway process.
pub fn upstream_keepalive_pool() -> usize {
    128
}

/// Pingora's work-stealing scheduler across worker threads.
pub fn work_stealing() -> bool {
    true
}

/// The header that carries the client address when the peer is a trusted proxy.
pub fn real_ip_header() -> String {
    "x-forwarded-for".into()
}

/// Walk `X-Forwarded-For` from the right, skipping trusted hops (nginx's
/// `real_ip_recursive on`).
pub fn real_ip_recursive() -> bool {
    true
}

/// The request-id header read from trusted peers, sent upstream and returned to clients.
pub fn request_id_header() -> String {
    "x-request-id".into()
}

/// Send X-Forwarded-* and X-Real-IP upstream, as Kong does.
pub fn forwarded_headers() -> bool {
    true
}

/// Answer with `Via: 1.1 pingway/<version>`.
pub fn via_header() -> bool {
    true
}

/// Answer with `X-Pingway-Upstream-Latency` / `X-Pingway-Proxy-Latency`.
pub fn latency_headers() -> bool {
    true
}

/// Time allowed to open a connection to a target.
pub fn connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Time allowed between two reads from a target (including the response header).
pub fn read_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Time allowed between two writes to a target.
pub fn write_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Further targets tried after a connection failure.
pub fn retries() -> u32 {
    2
}

/// A target's share of traffic relative to the others.
pub fn weight() -> u32 {
    100
}

/// Path probed by HTTP health checks.
pub fn health_path() -> String {
    "/".into()
}

/// Statuses that count as healthy for HTTP health checks.
pub fn health_expected_status() -> Vec<u16> {
    vec![200]
}

/// Time between two probes of a target.
pub fn health_interval() -> Duration {
    Duration::from_secs(5)
}

/// Time a probe may take.
pub fn health_timeout() -> Duration {
    Duration::from_secs(1)
}

/// Consecutive successes that make an unhealthy target healthy again.
pub fn healthy_threshold() -> u32 {
    2
}

/// Consecutive failures that make a healthy target unhealthy.
pub fn unhealthy_threshold() -> u32 {
    3
}
