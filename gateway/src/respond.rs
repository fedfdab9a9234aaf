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
