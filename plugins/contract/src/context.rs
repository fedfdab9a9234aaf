//! Per-request state shared by the proxy and the plugins.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderName, HeaderValue};

/// The route a request matched, as plugins see it.
#[derive(Debug)]
#[non_exhaustive]
pub struct RouteInfo {
    /// The route's unique name from the configuration.
    pub name: Arc<str>,
    /// The name of the upstream the route sends traffic to.
    pub upstream: Arc<str>,
}

impl RouteInfo {
    /// The route `name`, sending to `upstream`.
    pub fn new(name: impl Into<Arc<str>>, upstream: impl Into<Arc<str>>) -> Self {
        RouteInfo {
            name: name.into(),
            upstream: upstream.into(),
        }
    }
}

/// A consumer: an identity that authentication plugins attach to a request.
///
/// Stays empty until an auth plugin runs; `rate-limiting` with `limit_by: consumer`
/// counts per consumer once one is set and falls back to the client IP otherwise.
/// Consumers are built once per configuration load (see
/// the `pingway-plugins` consumer set), with the header values the auth
/// plugins send upstream already computed.
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
    headers: ConsumerHeaders,
}

/// Upstream header values for a consumer, computed once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerHeaders {
    /// `X-Consumer-ID`.
    pub id: Option<HeaderValue>,
    /// `X-Consumer-Username`.
    pub username: Option<HeaderValue>,
    /// `X-Consumer-Custom-ID`.
    pub custom_id: Option<HeaderValue>,
    /// `X-Consumer-Groups`: the groups joined with `", "` (none when there are no
    /// groups).
    pub groups: Option<HeaderValue>,
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_bytes(s.as_bytes()).ok()
}

impl Consumer {
    /// A consumer. Values that cannot be header values (control characters) get no
    /// header; configuration loading rejects them before this point.
    pub fn new(
        id: Arc<str>,
        username: Option<Arc<str>>,
        custom_id: Option<Arc<str>>,
        groups: Arc<[Arc<str>]>,
    ) -> Self {
        let joined = groups
            .iter()
            .map(|g| &**g)
            .collect::<Vec<&str>>()
            .join(", ");
        let headers = ConsumerHeaders {
            id: header_value(&id),
            username: username.as_deref().and_then(header_value),
            custom_id: custom_id.as_deref().and_then(header_value),
            groups: (!groups.is_empty())
                .then(|| header_value(&joined))
                .flatten(),
        };
        Consumer {
            id,
            username,
            custom_id,
            groups,
            headers,
        }
    }

    /// The header values sent upstream for this consumer.
    pub fn headers(&self) -> &ConsumerHeaders {
        &self.headers
    }
}

/// The credential that authenticated a request: its identifier (`X-Credential-Identifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialId {
    /// The identifier: a key-auth credential's `id`, a basic-auth username, a jwt key.
    pub id: Arc<str>,
    /// The same, as a header value.
    pub header: HeaderValue,
}

impl CredentialId {
    /// A credential identifier (`None` if it cannot be a header value).
    pub fn new(id: &str) -> Option<Self> {
        Some(CredentialId {
            header: header_value(id)?,
            id: Arc::from(id),
        })
    }
}

/// The request body as read by [`Request::read_body`](crate::Request::read_body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferedBody {
    /// The whole body (possibly empty).
    Complete(bytes::Bytes),
    /// The body is larger than the gateway buffers ([`crate::MAX_BUFFERED_BODY`],
    /// known from `Content-Length`); it was left unread and is forwarded as it comes.
    TooLarge,
}

/// A request id: text that is also a header value, so it is sent upstream and returned
/// to the client without being copied again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// An id from header-safe text (visible ASCII); `None` otherwise.
    pub fn new(text: &str) -> Option<Self> {
        let ok = !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| HeaderValue::from_str(text).ok().map(RequestId))
            .flatten()
    }

    /// Takes a header value as the id when it is visible ASCII (no copy).
    pub fn from_header_value(value: HeaderValue) -> Option<Self> {
        let b = value.as_bytes();
        let ok = !b.is_empty() && b.iter().all(u8::is_ascii_graphic);
        ok.then_some(RequestId(value))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only visible ASCII is ever stored.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value (cheap to clone).
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId(HeaderValue::from_static("-"))
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of a header queued with [`RequestCtx::add_response_header`]: a static
/// string (cheapest to add; use the conventional case, `X-RateLimit-Limit-Minute`) or a
/// `HeaderName` built at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseHeaderName {
    /// A name known when the code was written.
    Static(&'static str),
    /// Any other name.
    Name(HeaderName),
}

impl From<&'static str> for ResponseHeaderName {
    fn from(name: &'static str) -> Self {
        ResponseHeaderName::Static(name)
    }
}

impl From<HeaderName> for ResponseHeaderName {
    fn from(name: HeaderName) -> Self {
        ResponseHeaderName::Name(name)
    }
}

impl ResponseHeaderName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        match self {
            ResponseHeaderName::Static(s) => s,
            ResponseHeaderName::Name(n) => n.as_str(),
        }
    }
}

/// Per-request state: created by the proxy when a request arrives, visible to every
/// plugin phase, dropped after `on_log`.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestCtx {
    /// The request id sent upstream and returned to the client.
    pub request_id: RequestId,
    /// The client's address: the connection's peer, or the address named by the
    /// real-IP header when the peer is a trusted proxy.
    pub client_ip: IpAddr,
    /// The TCP peer of the downstream connection.
    pub peer_addr: Option<SocketAddr>,
    /// The matched route (always set by the time plugins run).
    pub route: Option<Arc<RouteInfo>>,
    /// The authenticated consumer, when an auth plugin identified one.
    consumer: Option<Arc<Consumer>>,
    /// The identifier of the credential that authenticated the request (`None` for the
    /// anonymous consumer).
    credential: Option<Arc<str>>,
    /// Whether `consumer` is an auth plugin's `anonymous` consumer (authentication
    /// failed and the plugin let the request through as that consumer).
    anonymous: bool,
    /// Groups an auth plugin vouched for without a consumer (Kong's
    /// `authenticated_groups`: mtls-auth's certificate CN with `skip_consumer_lookup`).
    authenticated_groups: Option<Arc<[Arc<str>]>>,
    /// The certificate chain the client presented in the TLS handshake (DER, leaf
    /// first), unverified; `None` over plain HTTP or when the client sent none.
    client_certificate_chain: Option<Arc<[bytes::Bytes]>>,
    /// The request body once a plugin read it.
    body: Option<BufferedBody>,
    /// A body to send upstream instead of the one the client sent.
    upstream_body: Option<bytes::Bytes>,
    /// When the request arrived.
    pub started_at: Instant,
    /// Headers to add to whatever response the client gets (proxied or generated).
    response_headers: Vec<(ResponseHeaderName, HeaderValue)>,
    /// Typed per-request data for plugins (`http::Extensions`: one value per type).
    pub extensions: http::Extensions,
}

impl RequestCtx {
    /// A fresh context for a request from `client_ip`.
    pub fn new(request_id: RequestId, client_ip: IpAddr, peer_addr: Option<SocketAddr>) -> Self {
        RequestCtx {
            request_id,
            client_ip,
            peer_addr,
            route: None,
            consumer: None,
            credential: None,
            anonymous: false,
            authenticated_groups: None,
            client_certificate_chain: None,
            body: None,
            upstream_body: None,
            started_at: Instant::now(),
            response_headers: Vec::new(),
            extensions: http::Extensions::new(),
        }
    }

    /// Asks for `name: value` on the response the client receives, whether it comes from
    /// the upstream or from a plugin. Used by plugins that decide headers in
    /// `on_request` (rate-limit counters, for example).
    pub fn add_response_header(&mut self, name: impl Into<ResponseHeaderName>, value: HeaderValue) {
        self.response_headers.push((name.into(), value));
    }

    /// Headers queued with [`Self::add_response_header`].
    pub fn response_headers(&self) -> &[(ResponseHeaderName, HeaderValue)] {
        &self.response_headers
    }

    /// Makes room for `n` more queued headers at once.
    pub fn reserve_response_headers(&mut self, n: usize) {
        self.response_headers.reserve(n);
    }

    /// Removes and returns the queued response headers.
    pub fn take_response_headers(&mut self) -> Vec<(ResponseHeaderName, HeaderValue)> {
        std::mem::take(&mut self.response_headers)
    }

    /// The body read by a plugin, if one did.
    pub fn body(&self) -> Option<&BufferedBody> {
        self.body.as_ref()
    }

    /// Records the body read from the client.
    pub fn set_body(&mut self, body: BufferedBody) {
        self.body = Some(body);
    }

    /// The body to send upstream instead of the client's, if a plugin replaced it.
    pub fn upstream_body(&self) -> Option<&bytes::Bytes> {
        self.upstream_body.as_ref()
    }

    /// Replaces the body sent upstream. Only meaningful once the whole body was read
    /// (the proxy substitutes it when the buffered body is forwarded); use
    /// [`Request::set_upstream_body`](crate::Request::set_upstream_body),
    /// which also fixes the framing headers.
    pub fn replace_upstream_body(&mut self, body: bytes::Bytes) {
        self.upstream_body = Some(body);
    }

    /// The consumer an auth plugin identified (or its anonymous consumer).
    pub fn consumer(&self) -> Option<&Arc<Consumer>> {
        self.consumer.as_ref()
    }

    /// The id of the credential the consumer was authenticated with; `None` for no
    /// consumer and for the anonymous consumer.
    pub fn credential(&self) -> Option<&Arc<str>> {
        self.credential.as_ref()
    }

    /// Whether the consumer is an auth plugin's `anonymous` consumer (authentication
    /// failed and the plugin let the request through as that consumer).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// Records who the request is for: `consumer`, authenticated with `credential`, or
    /// (without one) as the anonymous consumer. What auth plugins call.
    pub fn set_identity(&mut self, consumer: Arc<Consumer>, credential: Option<Arc<str>>) {
        self.anonymous = credential.is_none();
        self.consumer = Some(consumer);
        self.credential = credential;
    }

    /// Groups an auth plugin vouched for without naming a consumer (Kong's
    /// "authenticated groups"), which `acl` checks in place of a consumer's groups.
    pub fn authenticated_groups(&self) -> Option<&[Arc<str>]> {
        self.authenticated_groups.as_deref()
    }

    /// Records the groups an auth plugin vouched for (see
    /// [`Self::authenticated_groups`]).
    pub fn set_authenticated_groups(&mut self, groups: Arc<[Arc<str>]>) {
        self.authenticated_groups = Some(groups);
    }

    /// The certificate chain the client presented in the TLS handshake: DER
    /// certificates, the client's own first, then the intermediates it sent. The
    /// handshake only proved that the client holds the first certificate's key; the
    /// chain itself is **not verified**, which is the reading plugin's job (mtls-auth
    /// verifies it against its own CAs). `None` over plain HTTP, or when the client sent
    /// no certificate (or the listener did not ask for one).
    pub fn client_certificate_chain(&self) -> Option<&[bytes::Bytes]> {
        self.client_certificate_chain.as_deref()
    }

    /// Records the client's certificate chain. What the host (the gateway, the test
    /// kit) calls when the request arrives; a plugin has no reason to.
    pub fn set_client_certificate_chain(&mut self, chain: Arc<[bytes::Bytes]>) {
        self.client_certificate_chain = (!chain.is_empty()).then_some(chain);
    }

    /// Whether a consumer was authenticated with a credential (not anonymous).
    pub fn is_authenticated(&self) -> bool {
        self.consumer.is_some() && self.credential.is_some() && !self.anonymous
    }

    /// The name of the matched route, or `""` before routing.
    pub fn route_name(&self) -> &str {
        self.route.as_ref().map_or("", |r| &r.name)
    }
}
