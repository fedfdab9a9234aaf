//! Responses the gateway writes itself: plugin answers, "no route" and upstream failures,
//! in Kong's JSON format `{"message": ..., "request_id": ...}`.

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::ResponseHeader;
use pingway_plugins::{Body, Response};

use crate::headers;

/// The message for "no route matched".
pub const NO_ROUTE: &str = "no route matched";
/// The message of the 503 a pool at its `max_requests` answers with.
pub const UPSTREAM_FULL: &str = "upstream at its request limit (max_requests)";

/// The message when every target of the pool is unhealthy.
pub const NO_HEALTHY_TARGET: &str = "no healthy upstream target";

/// Kong's messages for the statuses the proxy itself produces.
pub fn status_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        404 => NO_ROUTE,
        405 => "Method not allowed",
        408 => "Request timeout",
        413 => "Request size limit exceeded",
        502 => "An invalid response was received from the upstream server",
        503 => "The upstream server is currently unavailable",
        504 => "The upstream server is timing out",
        _ => "An unexpected error occurred",
    }
}

/// The status for a proxying error: 504 for upstream timeouts, 502 for connection and
/// protocol failures, the embedded code for errors that carry one (503 for "no healthy
/// target"), 400 for malformed requests, 0 when the client is gone (nothing to send).
pub fn status_for_error(e: &Error) -> u16 {
    use ErrorType::*;
    if let HTTPStatus(code) = e.etype() {
        return *code;
    }
    match e.esource() {
        ErrorSource::Upstream => match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout => 504,
            _ => 502,
        },
        ErrorSource::Downstream => match e.etype() {
            WriteError | ReadError | ConnectionClosed => 0,
            ReadTimedout => 408,
            _ => 400,
        },
        ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => 504,
            ConnectRefused | ConnectNoRoute | ConnectError | ConnectProxyFailure => 502,
            _ => 500,
        },
    }
}

/// A response header and body for `resp`. `head` leaves the body out (for HEAD requests)
/// but keeps its length.
pub fn render(resp: &Response, request_id: &str, head: bool) -> (ResponseHeader, Bytes) {
    let (content_type, body) = match &resp.body {
        Body::Empty => (None, Bytes::new()),
        Body::Message(m) => (
            Some(HeaderValue::from_static("application/json; charset=utf-8")),
            Bytes::from(message_json(m, request_id)),
        ),
        Body::Json(v) => (
            Some(HeaderValue::from_static("application/json; charset=utf-8")),
            Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        ),
        Body::Raw {
            content_type,
            bytes,
        } => (Some(content_type.clone()), bytes.clone()),
        // A kind of body this gateway does not know yet (the contract grew): an error
        // rather than an empty 200.
        _ => (None, Bytes::new()),
    };
    let mut header = new_header(resp.status, 4 + resp.headers.len());
    if let Some(ct) = content_type {
        let _ = header.insert_header(header::CONTENT_TYPE, ct);
    }
    let _ = header.insert_header(header::CONTENT_LENGTH, body.len());
    for (name, value) in &resp.headers {
        let _ = match headers::titled(name) {
            Some(titled) => header.append_header(titled, value.clone()),
            None => header.append_header(name.clone(), value.clone()),
        };
    }
    let body = if head { Bytes::new() } else { body };
    (header, body)
}

/// Whether a request with these headers is gRPC: `content-type: application/grpc`,
/// `application/grpc+proto` and the like (not gRPC-Web, whose clients read HTTP statuses).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        let prefix = b"application/grpc";
        v.len() >= prefix.len()
            && v[..prefix.len()].eq_ignore_ascii_case(prefix)
            && matches!(v.get(prefix.len()), None | Some(b'+' | b';'))
    })
}

/// gRPC status codes (grpc/doc/statuscodes.md) the gateway's answers map to.
pub mod grpc_code {
    /// Not an error.
    pub const OK: u32 = 0;
    /// An error without a better code.
    pub const UNKNOWN: u32 = 2;
    /// The request is malformed (HTTP 400).
    pub const INVALID_ARGUMENT: u32 = 3;
    /// The upstream timed out (HTTP 504, 408).
    pub const DEADLINE_EXCEEDED: u32 = 4;
    /// Denied (HTTP 403).
    pub const PERMISSION_DENIED: u32 = 7;
    /// Rate-limited or too large (HTTP 429, 413).
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// No route (HTTP 404, 405).
    pub const UNIMPLEMENTED: u32 = 12;
    /// The gateway failed (HTTP 500).
    pub const INTERNAL: u32 = 13;
    /// The upstream is down or full (HTTP 502, 503).
    pub const UNAVAILABLE: u32 = 14;
    /// No or bad credentials (HTTP 401).
    pub const UNAUTHENTICATED: u32 = 16;
}

/// The gRPC status for an HTTP status the gateway answers with: Envoy's and Kong's
/// mapping (a generated 2xx is `OK`, any other unlisted status `UNKNOWN`).
pub fn grpc_status(status: StatusCode) -> u32 {
    use grpc_code::*;
    match status.as_u16() {
        200..=299 => OK,
        400 => INVALID_ARGUMENT,
        401 => UNAUTHENTICATED,
        403 => PERMISSION_DENIED,
        404 | 405 => UNIMPLEMENTED,
        408 | 504 => DEADLINE_EXCEEDED,
        413 | 429 => RESOURCE_EXHAUSTED,
        500 => INTERNAL,
        502 | 503 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

/// A gateway answer to a gRPC request as a trailers-only response: HTTP 200 with
/// `grpc-status` and `grpc-message` in the head and no body, which is how gRPC reports
/// an error that comes before any message. The answer's own headers (`Retry-After`,
/// `WWW-Authenticate`) are kept.
pub fn render_grpc(resp: &Response) -> ResponseHeader {
    let mut header = new_header(StatusCode::OK, 4 + resp.headers.len());
    let _ = header.insert_header(header::CONTENT_TYPE, "application/grpc");
    let code = grpc_status(resp.status);
    let _ = header.insert_header("grpc-status", code.to_string());
    let message = match &resp.body {
        Body::Message(m) => m.to_string(),
        _ => resp
            .status
            .canonical_reason()
            .unwrap_or("gateway error")
            .to_string(),
    };
    if code != grpc_code::OK {
        if let Ok(value) = HeaderValue::from_str(&grpc_percent_encode(&message)) {
            let _ = header.insert_header("grpc-message", value);
        }
    }
    for (name, value) in &resp.headers {
        // The answer's own framing does not apply: the gRPC head replaces it.
        if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
            continue;
        }
        let _ = header.append_header(name.clone(), value.clone());
    }
    header
}

/// `grpc-message`'s encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn grpc_percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `{"message":"...","request_id":"..."}` with proper escaping.
pub fn message_json(message: &str, request_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "message": message, "request_id": request_id }))
        .unwrap_or_default()
}

/// A response header with `status`. (`ResponseHeader::build` cannot fail for a valid
/// `StatusCode`, but the fallback keeps this path free of panics all the same.)
pub fn new_header(status: StatusCode, size_hint: usize) -> ResponseHeader {
    match ResponseHeader::build(status, Some(size_hint)) {
        Ok(h) => h,
        Err(_) => {
            let (mut parts, ()) = http::Response::new(()).into_parts();
            parts.status = status;
            parts.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    #[test]
    fn messages_are_json_with_request_id() {
        let r = Response::error(StatusCode::FORBIDDEN, "IP address not allowed: 1.2.3.4");
        let (h, b) = render(&r, "rid-1", false);
        assert_eq!(h.status, StatusCode::FORBIDDEN);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"message": "IP address not allowed: 1.2.3.4", "request_id": "rid-1"})
        );
        assert_eq!(
            h.headers.get("content-length").unwrap(),
            &b.len().to_string()
        );
    }

    #[test]
    fn escapes_quotes_and_omits_head_bodies() {
        let r = Response::error(StatusCode::BAD_REQUEST, "bad \"thing\"");
        let (h, b) = render(&r, "x", true);
        assert!(b.is_empty());
        assert_ne!(h.headers.get("content-length").unwrap(), "0");
        let (_, b) = render(&r, "x", false);
        assert!(std::str::from_utf8(&b)
            .unwrap()
            .contains(r#"bad \"thing\""#));
    }

    #[test]
    fn plugin_headers_are_written_in_their_usual_spelling() {
        let r = Response::error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("20"))
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Key"))
            .with_header(
                HeaderName::from_static("x-custom"),
                HeaderValue::from_static("1"),
            );
        let (h, _) = render(&r, "x", false);
        let mut wire = Vec::new();
        h.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        assert!(wire.contains("Retry-After: 20\r\n"), "{wire}");
        assert!(wire.contains("WWW-Authenticate: Key\r\n"), "{wire}");
        // Names without a usual spelling keep the one they were given.
        assert!(wire.contains("x-custom: 1\r\n"), "{wire}");
    }

    #[test]
    fn grpc_requests_are_told_by_their_content_type() {
        let with = |ct: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
            is_grpc(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("Application/GRPC;charset=utf-8"));
        assert!(!with("application/grpc-web"));
        assert!(!with("application/grpcx"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&http::HeaderMap::new()));
    }

    #[test]
    fn grpc_answers_are_trailers_only_with_the_mapped_status() {
        let r = Response::error(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("20"));
        let h = render_grpc(&r);
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.headers.get("grpc-status").unwrap(), "8");
        assert_eq!(
            h.headers.get("grpc-message").unwrap(),
            "API rate limit exceeded"
        );
        assert_eq!(h.headers.get("content-type").unwrap(), "application/grpc");
        assert_eq!(h.headers.get("retry-after").unwrap(), "20");
        assert!(h.headers.get("content-length").is_none());
        for (status, code) in [
            (401, 16),
            (403, 7),
            (404, 12),
            (502, 14),
            (503, 14),
            (504, 4),
            (418, 2),
        ] {
            assert_eq!(grpc_status(StatusCode::from_u16(status).unwrap()), code);
        }
        assert_eq!(
            grpc_percent_encode("50% \u{e9}t\u{e9}\n"),
            "50%25 %C3%A9t%C3%A9%0A"
        );
    }

    #[test]
    fn maps_errors_to_statuses() {
        let up = |t| Error::new_up(t);
        assert_eq!(status_for_error(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(status_for_error(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(status_for_error(&up(ErrorType::ConnectTimedout)), 504);
        assert_eq!(status_for_error(&up(ErrorType::InvalidHTTPHeader)), 502);
        assert_eq!(
            status_for_error(&Error::new(ErrorType::HTTPStatus(503))),
            503
        );
        assert_eq!(
            status_for_error(&Error::new_down(ErrorType::ConnectionClosed)),
            0
        );
    }
}
