//! Header names and values the proxy adds, made cheap to add on every request.
//!
//! Pingora keeps a second map of header-name case for HTTP/1. Inserting with a
//! `&'static str` name costs no allocation for that map (a `HeaderName` argument costs
//! one), and values from static text cost nothing to clone. So names are Title-Case static
//! strings (as nginx writes them), and the values that repeat (latencies in milliseconds,
//! listener ports) come from tables built once.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use http::HeaderValue;

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

/// Latencies below this many milliseconds come from a static table.
const TABLE: u64 = 1000;

/// `ms` as a header value; no allocation below one second.
pub fn millis_value(ms: u64) -> HeaderValue {
    static VALUES: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let table = VALUES.get_or_init(|| {
        (0..TABLE)
            .map(|n| HeaderValue::from_static(intern(&n.to_string())))
            .collect()
    });
    match usize::try_from(ms).ok().and_then(|i| table.get(i)) {
        Some(v) => v.clone(),
        None => HeaderValue::from(ms),
    }
}

/// A `'static` copy of `text`, made once per distinct text (configuration values such as
/// header names and listener ports; never request data, which would grow without bound).
pub fn intern(text: &str) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(s) = seen.get(text) {
        return s;
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// `x-request-id` as `X-Request-Id`: how header names are conventionally written.
pub fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// A header value from configuration text that never changes while the process runs.
pub fn static_value(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()?;
    Some(HeaderValue::from_static(intern(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_values_are_exact_inside_and_outside_the_table() {
        assert_eq!(millis_value(0), "0");
        assert_eq!(millis_value(7), "7");
        assert_eq!(millis_value(999), "999");
        assert_eq!(millis_value(1000), "1000");
        assert_eq!(millis_value(123_456), "123456");
    }

    #[test]
    fn interning_returns_the_same_text_once() {
        let a = intern("x-trace-id");
        let b = intern(&String::from("x-trace-id"));
        assert_eq!(a, "x-trace-id");
        assert!(std::ptr::eq(a, b));
        assert_eq!(static_value("8080").unwrap(), "8080");
        assert!(static_value("bad\nvalue").is_none());
        assert_eq!(title_case("x-request-id"), "X-Request-Id");
        assert_eq!(title_case("X-CORRELATION-ID"), "X-Correlation-Id");
    }
}
