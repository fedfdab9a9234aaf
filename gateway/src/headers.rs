//! Header names the proxy adds to every request and response, as Title-Case static
//! strings (as nginx writes them), which Pingora inserts with one allocation less than a
//! `HeaderName`. Values come from [`pingway_plugins::header_values`]. [`titled`] gives
//! the usual spelling of the standard names plugins add.
//!
//! [`intern`] and [`static_value`] leak one string per distinct text for the life of
//! the process: use them only for values from a set bounded by what an operator writes
//! (header names, port numbers), never for anything that churns with reloads generated
//! from live endpoints (target addresses: those are owned values, see `upstream`) or
//! with requests.

use http::header::{self, HeaderName};

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

/// The conventional spelling of standard names plugins put on responses (the ones they
/// answer with and the ones they queue for proxied responses), which Pingora would
/// otherwise write in lowercase (it titles only a dozen names, such as `Content-Type`).
/// Names are case-insensitive; this is for people reading them.
pub fn titled(name: &HeaderName) -> Option<&'static str> {
    Some(match *name {
        header::RETRY_AFTER => "Retry-After",
        header::WWW_AUTHENTICATE => "WWW-Authenticate",
        header::PROXY_AUTHENTICATE => "Proxy-Authenticate",
        header::LOCATION => "Location",
        header::ALLOW => "Allow",
        header::VARY => "Vary",
        header::CACHE_CONTROL => "Cache-Control",
        header::ACCESS_CONTROL_ALLOW_ORIGIN => "Access-Control-Allow-Origin",
        header::ACCESS_CONTROL_ALLOW_METHODS => "Access-Control-Allow-Methods",
        header::ACCESS_CONTROL_ALLOW_HEADERS => "Access-Control-Allow-Headers",
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS => "Access-Control-Allow-Credentials",
        header::ACCESS_CONTROL_EXPOSE_HEADERS => "Access-Control-Expose-Headers",
        header::ACCESS_CONTROL_MAX_AGE => "Access-Control-Max-Age",
        _ => return None,
    })
}
