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

/// Client connections served at once by the process (nginx's `worker_connections` is
/// 512 per worker; a gateway in front of many keep-alive clients needs more).
pub fn max_connections() -> usize {
    10_000
}

/// Time for a request head to arrive (nginx's `client_header_timeout`).
pub fn client_header_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Longest wait for the next piece of a request body (nginx's `client_body_timeout`).
pub fn client_body_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Slowest average body rate once `client_body_timeout` has passed (mod_reqtimeout's
/// `MinRate=500`).
pub fn client_body_min_rate() -> u64 {
    500
}

/// Largest request head: nginx's `large_client_header_buffers 4 8k` holds 32 KiB.
pub fn max_request_header_bytes() -> usize {
    32 * 1024
}

/// Most header lines in a request (Envoy's `max_headers_count` default).
pub fn max_request_headers() -> usize {
    100
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

/// Idle time after which an upgraded (WebSocket) connection is closed.
pub fn websocket_idle_timeout() -> Duration {
    Duration::from_secs(3600)
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

/// The admin API's default address: loopback only.
pub fn admin_listen() -> String {
    "127.0.0.1:8001".to_string()
}

/// Every access log field.
pub fn access_log_fields() -> Vec<crate::config::model::AccessLogField> {
    crate::config::model::AccessLogField::ALL.to_vec()
}

/// Lines the access log buffers for its writer.
pub fn access_log_buffer() -> usize {
    8192
}

/// The largest access log buffer accepted.
pub const MAX_ACCESS_LOG_BUFFER: usize = 1_000_000;

/// HTTPS listeners offer HTTP/2 through ALPN.
pub fn tls_http2() -> bool {
    true
}

/// TLS handshakes in progress at once on an HTTPS listener: enough for bursts of
/// reconnecting clients, small enough that stalled handshakes stay cheap (a task, a socket
/// and a few kilobytes each).
pub fn tls_max_handshakes() -> u32 {
    1024
}

/// Time for a client's ClientHello to arrive: a real client sends it at once.
pub fn tls_client_hello_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Upstream TLS verifies the targets' certificates.
pub fn tls_verify() -> bool {
    true
}
