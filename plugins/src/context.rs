//! Per-request state shared by the proxy and the plugins.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue};

/// The route a request matched, as plugins see it.
#[derive(Debug)]
pub struct RouteInfo {
    /// The route's unique name from the configuration.
    pub name: Arc<str>,
    /// The name of the upstream the route sends traffic to.
    pub upstream: Arc<str>,
}

/// A consumer: an identity that authentication plugins attach to a request.
///
/// Stays empty until an auth plugin runs; `rate-limiting` with `limit_by: consumer`
/// counts per consumer once one is set and falls back to the client IP otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Stable identifier (the `id` field, or the username when no id is given).
    pub id: Arc<str>,
    /// The consumer's username.
    pub username: Option<Arc<str>>,
    /// An identifier from another system.
    pub custom_id: Option<Arc<str>>,
    /// ACL groups.
    pub groups: Arc<[Arc<str>]>,
}

/// Per-request state: created by the proxy when a request arrives, visible to every
/// plugin phase, dropped after `on_log`.
#[derive(Debug)]
pub struct RequestCtx {
    /// The request id sent upstream and returned to the client.
    pub request_id: String,
    /// The client's address: the connection's peer, or the address named by the
    /// real-IP header when the peer is a trusted proxy.
    pub client_ip: IpAddr,
    /// The TCP peer of the downstream connection.
    pub peer_addr: Option<SocketAddr>,
    /// The matched route (always set by the time plugins run).
    pub route: Option<Arc<RouteInfo>>,
    /// The authenticated consumer, when an auth plugin identified one.
    pub consumer: Option<Arc<Consumer>>,
    /// The identifier of the credential that authenticated the request.
    pub credential: Option<Arc<str>>,
    /// When the request arrived.
    pub started_at: Instant,
    /// Headers to add to whatever response the client gets (proxied or generated).
    response_headers: Vec<(HeaderName, HeaderValue)>,
    /// Typed per-request data for plugins (`http::Extensions`: one value per type).
    pub extensions: http::Extensions,
}

impl RequestCtx {
    /// A fresh context for a request from `client_ip`.
    pub fn new(request_id: String, client_ip: IpAddr, peer_addr: Option<SocketAddr>) -> Self {
        RequestCtx {
            request_id,
            client_ip,
            peer_addr,
            route: None,
            consumer: None,
            credential: None,
            started_at: Instant::now(),
            response_headers: Vec::new(),
            extensions: http::Extensions::new(),
        }
    }

    /// Asks for `name: value` on the response the client receives, whether it comes from
    /// the upstream or from a plugin. Used by plugins that decide headers in
    /// `on_request` (rate-limit counters, for example).
    pub fn add_response_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.response_headers.push((name, value));
    }

    /// Headers queued with [`Self::add_response_header`].
    pub fn response_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.response_headers
    }

    /// Removes and returns the queued response headers.
    pub fn take_response_headers(&mut self) -> Vec<(HeaderName, HeaderValue)> {
        std::mem::take(&mut self.response_headers)
    }

    /// The name of the matched route, or `""` before routing.
    pub fn route_name(&self) -> &str {
        self.route.as_ref().map_or("", |r| &r.name)
    }
}
