//! Drive a plugin's phases in a unit test: no server, no sockets.
//!
//! ```
//! use pingway_plugin::testkit::TestRequest;
//! use pingway_plugin::{async_trait, Flow, Plugin, Request, Response};
//! use pingway_plugin::http::StatusCode;
//!
//! struct NeedsTenant;
//!
//! #[async_trait]
//! impl Plugin for NeedsTenant {
//!     async fn on_request(&self, req: &mut Request<'_>) -> Flow {
//!         match req.header_str("x-tenant") {
//!             Some(_) => Flow::Continue,
//!             None => Flow::Respond(Response::error(StatusCode::BAD_REQUEST, "x-tenant is required")),
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut req = TestRequest::get("/orders");
//! let answer = req.access(&NeedsTenant).await.expect("a response");
//! assert_eq!(answer.status, StatusCode::BAD_REQUEST);
//!
//! let mut req = TestRequest::get("/orders").header("x-tenant", "acme");
//! assert!(req.access(&NeedsTenant).await.is_none());
//! # });
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};

use crate::context::{BufferedBody, RequestCtx, RequestId, RouteInfo};
use crate::plugin::{Flow, LogEntry, Plugin};
use crate::response::Response;
use crate::services::Services;
use crate::view::{
    BodyError, Request, RequestBodySource, RequestHead, ResponseHead, ResponseView, UpstreamChoice,
    UpstreamRequest,
};

/// A request kept in `http`'s own types, with a body that is all there from the start.
#[derive(Debug)]
pub struct Head {
    parts: http::request::Parts,
    body: Option<Bytes>,
}

impl RequestHead for Head {
    fn parts(&self) -> &http::request::Parts {
        &self.parts
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.parts.headers.insert(name, value);
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.parts.headers.append(name, value);
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        self.parts.headers.remove(name)
    }

    fn set_uri(&mut self, uri: Uri) {
        self.parts.uri = uri;
    }

    fn set_method(&mut self, method: Method) {
        self.parts.method = method;
    }
}

#[async_trait]
impl RequestBodySource for Head {
    async fn read_body(&mut self, limit: usize) -> Result<BufferedBody, BodyError> {
        let body = self.body.clone().unwrap_or_default();
        if body.len() > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(BufferedBody::Complete(body))
    }
}

/// A request for a plugin under test, with the per-request state its phases share.
#[derive(Debug)]
pub struct TestRequest {
    source: Head,
    ctx: RequestCtx,
    services: Services,
}

impl TestRequest {
    /// A `method` request for `uri` from 192.0.2.1, with request id `test-request`.
    pub fn new(method: Method, uri: &str) -> Self {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri.parse().unwrap_or_else(|_| Uri::from_static("/"));
        let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let id = RequestId::new("test-request").unwrap_or_default();
        TestRequest {
            source: Head { parts, body: None },
            ctx: RequestCtx::new(id, client, Some(SocketAddr::new(client, 40000))),
            services: Services::new(),
        }
    }

    /// A `GET` request for `uri`.
    pub fn get(uri: &str) -> Self {
        TestRequest::new(Method::GET, uri)
    }

    /// A `POST` request for `uri` with `body`.
    pub fn post(uri: &str, body: impl Into<Bytes>) -> Self {
        TestRequest::new(Method::POST, uri).body(body)
    }

    /// Adds a header (invalid names or values are a test bug, and panic).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_str(value).expect("a valid header value");
        self.source.parts.headers.append(name, value);
        self
    }

    /// Sets the body (and its `Content-Length`).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        self.source
            .parts
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        self.source.body = Some(body);
        self
    }

    /// Sets the client's address.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.ctx.client_ip = ip;
        self
    }

    /// Makes the request arrive over TLS with `chain` as the client's certificate
    /// chain (DER, the client's own first), as the gateway hands it to plugins.
    pub fn client_certificate_chain(mut self, chain: Vec<Bytes>) -> Self {
        self.ctx.set_client_certificate_chain(chain.into());
        self
    }

    /// Marks the request as routed to `route`, sending to `upstream`.
    pub fn route(mut self, route: &str, upstream: &str) -> Self {
        self.ctx.route = Some(Arc::new(RouteInfo::new(route, upstream)));
        self
    }

    /// Adds a shared service (the consumers, say) the plugin looks up by type.
    pub fn service<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.services.insert(value);
        self
    }

    /// The request head as the phases left it.
    pub fn parts(&self) -> &http::request::Parts {
        &self.source.parts
    }

    /// The per-request state as the phases left it.
    pub fn ctx(&self) -> &RequestCtx {
        &self.ctx
    }

    /// The per-request state, to set up a test.
    pub fn ctx_mut(&mut self) -> &mut RequestCtx {
        &mut self.ctx
    }

    fn view(&mut self) -> Request<'_> {
        Request::new(&mut self.source, &mut self.ctx, &self.services)
    }

    /// Runs the pre-routing phase: `Some(response)` if the plugin answered.
    pub async fn rewrite(&mut self, plugin: &dyn Plugin) -> Option<Response> {
        respond(plugin.on_rewrite(&mut self.view()).await)
    }

    /// Runs the access phase: `Some(response)` if the plugin answered.
    pub async fn access(&mut self, plugin: &dyn Plugin) -> Option<Response> {
        respond(plugin.on_request(&mut self.view()).await)
    }

    /// Runs the choose-upstream phase.
    pub fn choose_upstream(&mut self, plugin: &dyn Plugin) -> UpstreamChoice {
        let mut choice = UpstreamChoice::default();
        plugin.choose_upstream(&self.view(), &mut choice);
        choice
    }

    /// Runs the upstream-request phase on a copy of the head, and returns what the
    /// upstream would receive.
    pub fn upstream_request(&mut self, plugin: &dyn Plugin) -> http::request::Parts {
        let mut upstream = Head {
            parts: clone_parts(&self.source.parts),
            body: None,
        };
        plugin.on_upstream_request(&mut UpstreamRequest::new(&mut upstream, &mut self.ctx));
        upstream.parts
    }

    /// Streams `chunks` of a request body through the plugin's body phase and returns
    /// what the upstream would receive, or the response the plugin ended it with.
    pub fn request_body(
        &mut self,
        plugin: &dyn Plugin,
        chunks: &[&[u8]],
    ) -> Result<Vec<u8>, Response> {
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut c = Some(Bytes::copy_from_slice(chunk));
            plugin.on_request_body(&mut c, i + 1 == chunks.len(), &mut self.ctx)?;
            out.extend_from_slice(c.as_deref().unwrap_or_default());
        }
        Ok(out)
    }

    /// The body a plugin set to replace the client's (with `set_upstream_body`).
    pub fn upstream_body(&self) -> Option<&Bytes> {
        self.ctx.upstream_body()
    }

    /// Runs the response-header phase on a `status` response with `headers`, and
    /// returns the head the client would receive.
    pub fn response(
        &mut self,
        plugin: &dyn Plugin,
        status: StatusCode,
        headers: &[(&str, &str)],
    ) -> http::response::Parts {
        let mut head = response_head(status, headers);
        // As the gateway does: headers queued in earlier phases first, then the plugin.
        for (name, value) in self.ctx.take_response_headers() {
            if let Ok(name) = HeaderName::from_bytes(name.as_str().as_bytes()) {
                head.0.headers.insert(name, value);
            }
        }
        plugin.on_response(&mut ResponseView::new(
            &mut head,
            &self.source.parts,
            &mut self.ctx,
        ));
        head.0
    }

    /// Runs the upstream-response phase on a `status` response, and returns its head.
    pub fn upstream_response(
        &mut self,
        plugin: &dyn Plugin,
        status: StatusCode,
        headers: &[(&str, &str)],
    ) -> http::response::Parts {
        let mut head = response_head(status, headers);
        plugin.on_upstream_response(&mut ResponseView::new(
            &mut head,
            &self.source.parts,
            &mut self.ctx,
        ));
        head.0
    }

    /// Streams `chunks` of a response body through the plugin and returns what the
    /// client would receive.
    pub fn response_body(&mut self, plugin: &dyn Plugin, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut c = Some(Bytes::copy_from_slice(chunk));
            plugin.on_response_body(&mut c, i + 1 == chunks.len(), &mut self.ctx);
            out.extend_from_slice(c.as_deref().unwrap_or_default());
        }
        out
    }

    /// Runs the log phase as if the client got `status` after `total` time.
    pub fn log(&self, plugin: &dyn Plugin, status: u16, total: Duration) {
        let response = response_head(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), &[]);
        let mut entry = LogEntry::new(&self.source.parts, &self.ctx, total);
        entry.status = status;
        entry.response = Some(&response.0);
        entry.upstream = self.ctx.route.as_ref().map(|r| &*r.upstream);
        plugin.on_log(&entry);
    }
}

fn respond(flow: Flow) -> Option<Response> {
    match flow {
        Flow::Respond(r) => Some(r),
        Flow::Continue => None,
    }
}

fn clone_parts(p: &http::request::Parts) -> http::request::Parts {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = p.method.clone();
    parts.uri = p.uri.clone();
    parts.version = p.version;
    parts.headers = p.headers.clone();
    parts
}

/// A response head kept in `http`'s own types.
#[derive(Debug)]
pub struct TestResponseHead(http::response::Parts);

fn response_head(status: StatusCode, headers: &[(&str, &str)]) -> TestResponseHead {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            parts.headers.append(n, v);
        }
    }
    TestResponseHead(parts)
}

impl ResponseHead for TestResponseHead {
    fn parts(&self) -> &http::response::Parts {
        &self.0
    }

    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.headers.insert(name, value);
    }

    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.0.headers.append(name, value);
    }

    fn remove_header(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        self.0.headers.remove(name)
    }

    fn set_status(&mut self, status: StatusCode) {
        self.0.status = status;
    }
}
