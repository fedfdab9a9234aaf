//! Responses a plugin (or the gateway) generates instead of proxying.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

/// A response produced by a plugin (or by the proxy itself for its own errors).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: Body,
}

/// The body of a [`Response`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Body {
    /// No body.
    Empty,
    /// A JSON error body `{"message": ..., "request_id": ...}`, Kong's format.
    Message(Cow<'static, str>),
    /// Any JSON document, sent as is (for example Kong's jwt claim errors, which are a
    /// map such as `{"exp":"token expired"}`).
    Json(serde_json::Value),
    /// Raw bytes with a content type.
    Raw {
        /// The `Content-Type` header value.
        content_type: HeaderValue,
        /// The bytes.
        bytes: Bytes,
    },
}

impl Response {
    /// A Kong-style JSON error: `{"message": message, "request_id": ...}`.
    pub fn error(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Message(message.into()),
        }
    }

    /// A JSON document body.
    pub fn json(status: StatusCode, value: serde_json::Value) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Json(value),
        }
    }

    /// An empty body.
    pub fn empty(status: StatusCode) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}
