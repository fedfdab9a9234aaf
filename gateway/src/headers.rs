//! Header names the proxy adds to every request and response ([`Known`]: the map's
//! lower-case name and the Title-Case text nginx writes). Values come from [`pingway_plugins::header_values`]. [`titled`] gives
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

/// A header name the gateway itself sets, in both spellings: the lower-case
/// [`HeaderName`] for heads written without Pingora's case map (one map operation, no
/// parsing or allocation) and the Title-Case text for heads that keep it (as nginx writes
/// them).
#[derive(Debug, Clone)]
pub struct Known {
    /// The name as the header map holds it.
    pub name: HeaderName,
    /// The name as it is written on a head that keeps the case of names.
    pub titled: &'static str,
}

impl Known {
    /// `titled`, which must be a valid header name, with `lower` its lower-case form.
    const fn new(lower: &'static str, titled: &'static str) -> Known {
        Known {
            name: HeaderName::from_static(lower),
            titled,
        }
    }

    /// A name configured at run time (the request-id header): `titled` is interned, so
    /// this leaks one string per distinct configured name (see the module's note).
    pub fn configured(titled: &str) -> Option<Known> {
        let titled = intern(titled);
        let lower = intern(&titled.to_ascii_lowercase());
        // Validated before `from_static`, which panics on an invalid name.
        HeaderName::from_bytes(lower.as_bytes()).ok()?;
        Some(Known {
            name: HeaderName::from_static(lower),
            titled,
        })
    }
}

/// `Via`.
pub const VIA: Known = Known::new("via", "Via");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: Known = Known::new("x-forwarded-for", "X-Forwarded-For");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: Known = Known::new("x-forwarded-proto", "X-Forwarded-Proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: Known = Known::new("x-forwarded-host", "X-Forwarded-Host");
/// `X-Forwarded-Port`.
pub const X_FORWARDED_PORT: Known = Known::new("x-forwarded-port", "X-Forwarded-Port");
/// `X-Real-IP`.
pub const X_REAL_IP: Known = Known::new("x-real-ip", "X-Real-IP");
/// `X-Request-Id` (the default `proxy.request_id_header`).
pub const REQUEST_ID: Known = Known::new("x-request-id", "X-Request-Id");
/// `Host`.
pub const HOST: Known = Known::new("host", "Host");
/// `Content-Length`.
pub const CONTENT_LENGTH: Known = Known::new("content-length", "Content-Length");
/// `Server`.
pub const SERVER: Known = Known::new("server", "Server");
/// Time the upstream took to answer with its header, like Kong's `X-Kong-Upstream-Latency`.
pub const UPSTREAM_LATENCY: Known =
    Known::new("x-pingway-upstream-latency", "X-Pingway-Upstream-Latency");
/// Time the gateway spent before sending upstream, like Kong's `X-Kong-Proxy-Latency`.
pub const PROXY_LATENCY: Known = Known::new("x-pingway-proxy-latency", "X-Pingway-Proxy-Latency");
/// Time to a response the gateway generated, like Kong's `X-Kong-Response-Latency`.
pub const RESPONSE_LATENCY: Known =
    Known::new("x-pingway-response-latency", "X-Pingway-Response-Latency");

/// How many names [`static_name`] remembers per thread; names beyond it are parsed on
/// each use (correct, a little slower).
pub const MAX_STATIC_NAMES: usize = 64;

/// The `HeaderName` of a name a plugin queued as a `&'static str`
/// ([`pingway_plugins::ResponseHeaderName::Static`], `X-RateLimit-Limit-Minute` say),
/// parsed once per name and thread rather than on every response: the text of a
/// `&'static str` never changes, so its address identifies it. At most
/// [`MAX_STATIC_NAMES`] per thread; `None` when the text is not a valid name.
pub fn static_name(name: &'static str) -> Option<HeaderName> {
    use std::cell::RefCell;
    thread_local! {
        static NAMES: RefCell<Vec<(usize, usize, HeaderName)>> = const { RefCell::new(Vec::new()) };
    }
    let key = (name.as_ptr() as usize, name.len());
    let cached = NAMES.with(|names| {
        names
            .borrow()
            .iter()
            .find(|(ptr, len, _)| (*ptr, *len) == key)
            .map(|(_, _, n)| n.clone())
    });
    if cached.is_some() {
        return cached;
    }
    // Validated first: `from_static` panics on an invalid name.
    let parsed = HeaderName::from_bytes(name.as_bytes()).ok()?;
    let lower = intern(parsed.as_str());
    let made = HeaderName::from_static(lower);
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if names.len() < MAX_STATIC_NAMES {
            names.push((key.0, key.1, made.clone()));
        }
    });
    Some(made)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_names_parse_once_and_equal_a_parse() {
        let a = static_name("X-RateLimit-Limit-Minute").unwrap();
        let b = static_name("X-RateLimit-Limit-Minute").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, HeaderName::from_static("x-ratelimit-limit-minute"));
        assert_eq!(static_name("Content-Type").unwrap(), header::CONTENT_TYPE);
        assert!(static_name("bad name").is_none());
    }

    #[test]
    fn known_names_agree_in_both_spellings() {
        for k in [
            VIA,
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            X_FORWARDED_PORT,
            X_REAL_IP,
            REQUEST_ID,
            HOST,
            CONTENT_LENGTH,
            SERVER,
            UPSTREAM_LATENCY,
            PROXY_LATENCY,
            RESPONSE_LATENCY,
        ] {
            assert_eq!(k.name, HeaderName::from_bytes(k.titled.as_bytes()).unwrap());
        }
        let configured = Known::configured("X-Trace-Id").unwrap();
        assert_eq!(configured.titled, "X-Trace-Id");
        assert_eq!(configured.name.as_str(), "x-trace-id");
        assert!(Known::configured("bad name").is_none());
    }
}
