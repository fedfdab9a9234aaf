//! Routes that serve only HTTPS (`protocols: [https]`): what they answer a plain-text
//! request, as Kong does — 426 `{"message":"Please use HTTPS protocol"}` with
//! `Upgrade: TLS/1.2, HTTP/1.1`, or a redirect to the same URL over HTTPS
//! (`https_redirect_status_code` 301, 302, 307 or 308). Kong also sends
//! `Connection: Upgrade`; Pingora owns the `Connection` header of HTTP/1 responses
//! (`keep-alive` or `close`), so Pingway's 426 keeps the connection instead.
//!
//! A request is HTTPS when it arrived on an HTTPS listener (`listeners[].tls`), or when
//! a trusted proxy (`trusted_ips`) says so with `X-Forwarded-Proto: https` — TLS
//! terminated in front.

use http::header::{HOST, LOCATION, UPGRADE};
use http::{HeaderValue, StatusCode};
use pingway_plugins::Response;

use crate::headers;

/// Kong's message for a plain-text request to an HTTPS-only route.
pub const MESSAGE: &str = "Please use HTTPS protocol";

/// Whether the request arrived over HTTPS: on a TLS listener (`tls`), or as said by a
/// trusted peer's `X-Forwarded-Proto` (the first value, compared case-insensitively).
pub fn is_https(tls: bool, peer_trusted: bool, request: &http::request::Parts) -> bool {
    tls || peer_trusted
        && request
            .headers
            .get(&headers::X_FORWARDED_PROTO.name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The answer to a plain-text request on a route whose `https_redirect_status_code` is
/// `status`.
pub fn answer(status: StatusCode, peer_trusted: bool, request: &http::request::Parts) -> Response {
    if status == StatusCode::UPGRADE_REQUIRED {
        return Response::error(status, MESSAGE)
            .with_header(UPGRADE, HeaderValue::from_static("TLS/1.2, HTTP/1.1"));
    }
    match location(peer_trusted, request) {
        Some(location) => Response::empty(status).with_header(LOCATION, location),
        // No host to send the client to: say what is wanted instead.
        None => Response::error(StatusCode::UPGRADE_REQUIRED, MESSAGE),
    }
}

/// `https://` + the host (a trusted peer's `X-Forwarded-Host`, else the `Host` header
/// without its port, as nginx's `$host`) + the request target.
fn location(peer_trusted: bool, request: &http::request::Parts) -> Option<HeaderValue> {
    let forwarded = peer_trusted
        .then(|| request.headers.get(&headers::X_FORWARDED_HOST.name))
        .flatten()
        .and_then(|v| v.to_str().ok());
    let host = match forwarded {
        Some(h) => h.trim().to_string(),
        None => {
            let host = request
                .headers
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| request.uri.host())?;
            strip_port(host).to_ascii_lowercase()
        }
    };
    if host.is_empty() {
        return None;
    }
    let target = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    HeaderValue::from_str(&format!("https://{host}{target}")).ok()
}

/// `host` without a trailing `:port` (a bracketed IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn location_of(resp: &Response) -> &str {
        resp.headers
            .iter()
            .find(|(n, _)| n == LOCATION)
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or_default()
    }

    #[test]
    fn only_a_trusted_peer_makes_a_request_https() {
        let r = request("/", &[("x-forwarded-proto", "HTTPS")]);
        assert!(is_https(false, true, &r));
        assert!(
            !is_https(false, false, &r),
            "an untrusted peer's header is ignored"
        );
        assert!(!is_https(
            false,
            true,
            &request("/", &[("x-forwarded-proto", "http")])
        ));
        assert!(!is_https(false, true, &request("/", &[])));
        assert!(is_https(true, false, &request("/", &[])));
    }

    #[test]
    fn redirects_keep_the_target_and_drop_the_port() {
        let r = request("/a/b?c=d", &[("host", "Shop.Example:8000")]);
        let resp = answer(StatusCode::MOVED_PERMANENTLY, false, &r);
        assert_eq!(resp.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(location_of(&resp), "https://shop.example/a/b?c=d");
        let trusted = request(
            "/x",
            &[("host", "inner:8000"), ("x-forwarded-host", "edge.example")],
        );
        let resp = answer(StatusCode::PERMANENT_REDIRECT, true, &trusted);
        assert_eq!(location_of(&resp), "https://edge.example/x");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
