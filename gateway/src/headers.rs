//! Header names the proxy adds to every request and response, as Title-Case static
//! strings (as nginx writes them), which Pingora inserts with one allocation less than a
//! `HeaderName`. Values come from [`pingway_plugins::header_values`].

pub use pingway_plugins::header_values::{
    intern, number as millis_value, static_value, title_case,
};

/// `Via`.
pub const VIA: &str = "Via";
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: &str = "X-Forwarded-For";
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: &str = "X-Forwarded-Host";
/// `X-Forwarded-Port`.
pub const X_FORWARDED_PORT: &str = "X-Forwarded-Port";
/// `X-Real-IP`.
pub const X_REAL_IP: &str = "X-Real-IP";
/// Time the upstream took to answer with its header, like Kong's `X-Kong-Upstream-Latency`.
pub const UPSTREAM_LATENCY: &str = "X-Pingway-Upstream-Latency";
/// Time the gateway spent before sending upstream, like Kong's `X-Kong-Proxy-Latency`.
pub const PROXY_LATENCY: &str = "X-Pingway-Proxy-Latency";
/// Time to a response the gateway generated, like Kong's `X-Kong-Response-Latency`.
pub const RESPONSE_LATENCY: &str = "X-Pingway-Response-Latency";
