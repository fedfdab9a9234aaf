//! Pingway's own views of a request and a response, the only way a plugin sees them.
//!
//! A view reads through `http`'s types ([`http::request::Parts`], [`HeaderMap`]) and
//! writes through the host (the gateway, or the [test kit](crate::testkit)), which keeps
//! its own representation consistent (Pingora keeps the case of header names beside the
//! map, for instance). No Pingora type appears here, so a Pingora upgrade does not
//! touch a plugin; and no view can write to the client: a plugin answers only by
//! returning [`Flow::Respond`](crate::Flow::Respond).

use std::net::IpAddr;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use crate::context::{BufferedBody, RequestCtx};
use crate::response::Response;
use crate::services::Services;

/// The largest request body the gateway buffers for plugins that read it whole (64 KiB,
/// the size of Pingora's retry buffer, which is what forwards a body that was read
/// before the upstream was picked).
pub const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// A request head as its host keeps it. Implemented by the gateway and the test kit;
/// plugins use [`Request`] and [`UpstreamRequest`], never this trait.
pub trait RequestHead: Send {
    /// Method, URI, version and headers, for reading.
    fn parts(&self) -> &http::request::Parts;
    /// Replaces every value of `name` with `value`.
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Adds a value of `name` after the existing ones.
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Removes every value of `name`; returns the first.
    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue>;
    /// Replaces the URI (path and query).
    fn set_uri(&mut self, uri: Uri);
    /// Replaces the method.
    fn set_method(&mut self, method: Method);
}

/// The client's request body, as its host can provide it. Implemented by the gateway
/// and the test kit.
#[async_trait]
pub trait RequestBodySource: Send {
    /// Reads the whole body, up to `limit` bytes; the host keeps what it read and still
    /// forwards it upstream.
    async fn read_body(&mut self, limit: usize) -> Result<BufferedBody, BodyError>;
}

/// A client request as its host keeps it: the head and the body together (both come
/// from one connection). Implemented for every type that is both.
pub trait RequestSource: RequestHead + RequestBodySource {}

impl<T: RequestHead + RequestBodySource> RequestSource for T {}

/// A response head as its host keeps it. Implemented by the gateway and the test kit.
pub trait ResponseHead: Send {
    /// Status, version and headers, for reading.
    fn parts(&self) -> &http::response::Parts;
    /// Replaces every value of `name` with `value`.
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Adds a value of `name` after the existing ones.
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Removes every value of `name`; returns the first.
    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue>;
    /// Replaces the status.
    fn set_status(&mut self, status: StatusCode);
}

/// Why [`Request::read_body`] could not provide the body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Reading from the client failed (it went away, or was too slow).
    #[error("cannot read the request body: {0}")]
    Read(String),
    /// A body without a `Content-Length` grew past the limit while it was read. Part of
    /// it is consumed, so the request cannot be forwarded any more.
    #[error("the request body is larger than the gateway buffers")]
    TooLarge,
    /// The body cannot be read in this phase.
    #[error("the request body is not available here")]
    Unavailable,
}

impl BodyError {
    /// The answer for the client: 400 when reading failed, 413 when too large, 500 when
    /// a plugin asked in the wrong phase.
    pub fn response(&self) -> Response {
        match self {
            BodyError::Read(_) => Response::error(StatusCode::BAD_REQUEST, "Bad request"),
            BodyError::TooLarge => {
                Response::error(StatusCode::PAYLOAD_TOO_LARGE, "Request size limit exceeded")
            }
            BodyError::Unavailable => Response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "An unexpected error occurred",
            ),
        }
    }
}

/// Header reads shared by the views.
macro_rules! header_reads {
    () => {
        /// Every header.
        pub fn headers(&self) -> &HeaderMap {
            &self.head.parts().headers
        }

        /// The first value of header `name`.
        pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&HeaderValue> {
            self.head.parts().headers.get(name)
        }

        /// The first value of header `name` when it is visible ASCII.
        pub fn header_str(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
            self.header(name).and_then(|v| v.to_str().ok())
        }

        /// Replaces every value of `name` with `value`.
        pub fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
            self.head.insert_header(name, value)
        }

        /// Adds a value of `name` after the existing ones.
        pub fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
            self.head.append_header(name, value)
        }

        /// Removes every value of `name`; returns the first.
        pub fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
            self.head.remove_header(name)
        }

        /// Per-request state: client, route, consumer, extensions.
        pub fn ctx(&self) -> &RequestCtx {
            self.ctx
        }

        /// Per-request state, for writing.
        pub fn ctx_mut(&mut self) -> &mut RequestCtx {
            self.ctx
        }
    };
}

/// Request reads shared by [`Request`] and [`UpstreamRequest`].
macro_rules! request_reads {
    () => {
        /// The method.
        pub fn method(&self) -> &Method {
            &self.head.parts().method
        }

        /// The URI: path and query (and, rarely, scheme and authority).
        pub fn uri(&self) -> &Uri {
            &self.head.parts().uri
        }

        /// The path, without the query (normalized: what was routed).
        pub fn path(&self) -> &str {
            self.head.parts().uri.path()
        }

        /// The raw query string, if any.
        pub fn query(&self) -> Option<&str> {
            self.head.parts().uri.query()
        }

        /// The HTTP version.
        pub fn version(&self) -> http::Version {
            self.head.parts().version
        }

        /// The client's address (from the connection, or from the real-IP header when the
        /// peer is a trusted proxy).
        pub fn client_ip(&self) -> IpAddr {
            self.ctx.client_ip
        }

        /// Replaces the URI sent upstream (path and query).
        pub fn set_uri(&mut self, uri: Uri) {
            self.head.set_uri(uri)
        }

        /// Replaces the method sent upstream.
        pub fn set_method(&mut self, method: Method) {
            self.head.set_method(method)
        }
    };
}

/// The client's request, as the pre-routing and access phases see it. Edits are what
/// the upstream receives.
pub struct Request<'a> {
    head: &'a mut dyn RequestSource,
    ctx: &'a mut RequestCtx,
    services: &'a Services,
}

impl<'a> Request<'a> {
    /// A view for a host: `source` is the host's request, `services` the running
    /// configuration's.
    pub fn new(
        source: &'a mut dyn RequestSource,
        ctx: &'a mut RequestCtx,
        services: &'a Services,
    ) -> Self {
        Request {
            head: source,
            ctx,
            services,
        }
    }

    request_reads!();
    header_reads!();

    /// A shared service of the running configuration (the consumers, for instance). It
    /// lives as long as the request, not only as long as this borrow of the view.
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.services.get::<T>()
    }

    /// The services of the running configuration.
    pub fn services(&self) -> &'a Services {
        self.services
    }

    /// The certificate chain the client presented in the TLS handshake (DER, its own
    /// certificate first), **unverified**: see
    /// [`RequestCtx::client_certificate_chain`]. `None` over plain HTTP or without one.
    pub fn client_certificate_chain(&self) -> Option<&[Bytes]> {
        self.ctx.client_certificate_chain()
    }

    /// Reads the whole request body (once; later calls, by any plugin, return the same
    /// bytes) so a plugin can inspect it. The body is still forwarded upstream.
    ///
    /// Returns [`BufferedBody::TooLarge`] without reading when `Content-Length` says the
    /// body is larger than [`MAX_BUFFERED_BODY`]; such a body is forwarded as it comes. A
    /// body without `Content-Length` that turns out larger fails with
    /// [`BodyError::TooLarge`].
    pub async fn read_body(&mut self) -> Result<BufferedBody, BodyError> {
        if let Some(b) = self.ctx.body() {
            return Ok(b.clone());
        }
        let declared = self
            .head
            .parts()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = if declared.is_some_and(|n| n > MAX_BUFFERED_BODY as u64) {
            BufferedBody::TooLarge
        } else {
            self.head.read_body(MAX_BUFFERED_BODY).await?
        };
        self.ctx.set_body(body.clone());
        Ok(body)
    }

    /// Sends `body` upstream instead of the body the client sent, and sets
    /// `Content-Length` to match. Only after [`Self::read_body`] returned the complete
    /// body.
    pub fn set_upstream_body(&mut self, body: Bytes) {
        self.head.remove_header(&http::header::TRANSFER_ENCODING);
        self.head
            .insert_header(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        self.ctx.replace_upstream_body(body);
    }
}

/// The request about to be sent upstream (after the gateway set its forwarding headers).
pub struct UpstreamRequest<'a> {
    head: &'a mut dyn RequestHead,
    ctx: &'a mut RequestCtx,
}

impl<'a> UpstreamRequest<'a> {
    /// A view for a host.
    pub fn new(head: &'a mut dyn RequestHead, ctx: &'a mut RequestCtx) -> Self {
        UpstreamRequest { head, ctx }
    }

    request_reads!();
    header_reads!();
}

/// A response head: the upstream's (in the upstream-response phase), or the one going
/// to the client, proxied or generated (in the response phase).
pub struct ResponseView<'a> {
    head: &'a mut dyn ResponseHead,
    request: &'a http::request::Parts,
    ctx: &'a mut RequestCtx,
}

impl<'a> ResponseView<'a> {
    /// A view for a host: the response `head`, the client's `request` it answers, and
    /// the request's context.
    pub fn new(
        head: &'a mut dyn ResponseHead,
        request: &'a http::request::Parts,
        ctx: &'a mut RequestCtx,
    ) -> Self {
        ResponseView { head, request, ctx }
    }

    /// The client's request this response answers (read-only), as the access phase left
    /// it: the plugins' `on_rewrite` / `on_request` edits included, the upstream phase's
    /// (made on the copy that went upstream) not. Present on every response, a 404 or
    /// another generated one too, so a plugin that answers by the request (cors reads
    /// `Origin`) needs nothing kept from the access phase.
    pub fn request(&self) -> &http::request::Parts {
        self.request
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.head.parts().status
    }

    /// Replaces the status.
    pub fn set_status(&mut self, status: StatusCode) {
        self.head.set_status(status)
    }

    header_reads!();
}

/// What a plugin may decide about where a request goes, in the choose-upstream phase.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct UpstreamChoice {
    upstream: Option<std::sync::Arc<str>>,
    target: Option<std::net::SocketAddr>,
}

impl UpstreamChoice {
    /// Send the request to the upstream named `name` instead of the route's (a canary,
    /// a split). An unknown name answers 503.
    pub fn set_upstream(&mut self, name: impl Into<std::sync::Arc<str>>) {
        self.upstream = Some(name.into());
    }

    /// Send the request to this target of the chosen upstream rather than the one the
    /// balancer picks. A target the upstream does not have, or that is unhealthy,
    /// answers 503.
    pub fn pin_target(&mut self, target: std::net::SocketAddr) {
        self.target = Some(target);
    }

    /// The upstream a plugin chose, if any.
    pub fn upstream(&self) -> Option<&str> {
        self.upstream.as_deref()
    }

    /// The target a plugin pinned, if any.
    pub fn target(&self) -> Option<std::net::SocketAddr> {
        self.target
    }
}
