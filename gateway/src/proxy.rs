//! The one Pingora `ProxyHttp` implementation: identify the client, match a route, run
//! the route's plugins, pick a target, forward, and report.
//!
//! The proxy holds no policy of its own; everything a route does beyond forwarding is a
//! plugin. Each request works on the configuration that was current when it arrived, so
//! a reload never changes a request half-way.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use pingway_plugins::{
    Flow, LogEntry, Request, RequestCtx, RequestHead, RequestId, Response, ResponseHead,
    ResponseHeaderName, ResponseView, Timings, UpstreamChoice, UpstreamRequest,
};

use crate::chain::{resolve_for_consumer, Chain, PluginInstance};
use crate::downstream::Connection;
use crate::plugin_host::{
    edit_response_plain, edit_upstream_plain, restore_client_parts, take_client_parts,
    ClientRequest, ResponseHeadOf, UpstreamHead,
};
use crate::request_head::{self, SlashOutcome};
use crate::respond;
use crate::router::{normalize_path, RouteRequest};
use crate::runtime::{CompiledRoute, Runtime};
use crate::upstream::recent_errors::{self, UpstreamErrorKind};
use crate::upstream::{SelectRequest, Selected, Upstream};

use crate::headers::{self, millis_value};

/// The gateway's `ProxyHttp`. Cheap to share; the configuration lives behind an
/// [`ArcSwap`] that reloads replace.
pub struct PingwayProxy {
    runtime: Arc<ArcSwap<Runtime>>,
}

impl PingwayProxy {
    /// A proxy serving whatever configuration `runtime` holds.
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        PingwayProxy { runtime }
    }
}

/// Per-request state of the proxy.
pub struct ProxyCtx {
    /// The configuration this request uses from start to end.
    runtime: Arc<Runtime>,
    /// Everything else, kept apart so phases can borrow it mutably while reading the
    /// runtime. Boxed: Pingora keeps the context inside each request's future, which is
    /// moved into a heap box whole, so a small context is a cheaper move.
    state: Box<State>,
}

impl ProxyCtx {
    /// What plugins see of this request.
    pub fn request(&self) -> &RequestCtx {
        &self.state.req
    }
}

struct State {
    /// The matched route's index in `runtime.routes`.
    route: Option<usize>,
    /// What plugins see.
    req: RequestCtx,
    /// Whether the downstream peer is a trusted proxy.
    peer_trusted: bool,
    /// Whether the request arrived on an HTTPS listener (over TLS).
    downstream_tls: bool,
    /// Bytes of the path matched by the route's path condition (for strip_prefix).
    matched_len: usize,
    /// The upstream serving the request: the route's, or one a plugin chose.
    upstream: Option<Arc<Upstream>>,
    /// A target a plugin pinned, used for the first attempt.
    pinned: Option<std::net::SocketAddr>,
    /// The current upstream target (its drop ends the in-flight count).
    selected: Option<Selected>,
    /// Target indexes that failed to connect.
    tried: Vec<usize>,
    /// How the last connection attempt failed (a timeout answers 504, others 502).
    last_connect_error: Option<ErrorType>,
    upstream_sent_at: Option<Instant>,
    proxy_latency: Option<Duration>,
    upstream_latency: Option<Duration>,
    upstream_status: Option<u16>,
    upstream_addr: Option<std::net::SocketAddr>,
    /// The chain in force once an authenticated consumer's own plugins applied (Kong's
    /// consumer scoping); `None` while the route's chain applies unchanged.
    chain_override: Option<Box<Chain>>,
    /// When the first piece of the request body arrived, and how many bytes came since
    /// (for `client_body_min_rate`).
    body_started: Option<Instant>,
    body_bytes: u64,
    /// The answer a request-body plugin ended the request with.
    body_rejection: Option<Box<Response>>,
    /// The peer's address as a header value, when the connection had it made already.
    peer_value: Option<HeaderValue>,
    /// This request's place under its upstream's `max_requests` (dropped with the state,
    /// or in the log phase).
    upstream_slot: Option<crate::upstream::RequestSlot>,
    /// Copies drawn for the route's mirrors, started with the upstream request.
    mirror_pending: Vec<crate::mirror::PendingCopy>,
    /// The running copies whose body is still streaming.
    mirror_feeds: Vec<crate::mirror::BodyFeed>,
    /// Phase timings, recorded only when a plugin of the chain asks (tracing).
    timings: Option<Box<Timings>>,
    /// The cache of a route with `proxy-cache` (none elsewhere).
    cache: Option<Box<crate::cache::RequestCache>>,
    /// Retries, deadline and connection slot (`crate::resilience`).
    attempts: crate::resilience::Attempts,
    /// The request asks for a protocol upgrade (an HTTP/1.1 WebSocket handshake): once
    /// upgraded, its bytes are a session's frames, not a body, and plugins' body phases,
    /// compression and the cache stay out of it.
    upgrade: bool,
    /// The request is gRPC (`content-type: application/grpc*`): the gateway's own
    /// answers are written as gRPC statuses.
    grpc: bool,
    /// An upgrade to a TLS target: the gate to close once connected (`upstream::upgrade`).
    upgrade_gate: Option<crate::upstream::upgrade::Gate>,
}

impl State {
    fn route<'r>(&self, runtime: &'r Runtime) -> Option<&'r CompiledRoute> {
        self.route.and_then(|i| runtime.routes.get(i))
    }

    /// The one place that decides which plugins apply to a request, in order: the chain
    /// resolved for its consumer, else its route's, else the global plugins' when no
    /// route matched. Every phase runs what this returns.
    fn applicable<'r>(
        chain_override: &'r Option<Box<Chain>>,
        route: Option<usize>,
        runtime: &'r Runtime,
    ) -> &'r Chain {
        match (chain_override, route.and_then(|i| runtime.routes.get(i))) {
            (Some(c), _) => c,
            (None, Some(r)) => &r.chain,
            (None, None) => &runtime.global_chain,
        }
    }

    /// The chain that applies (see [`Self::applicable`]).
    fn chain<'r>(&'r self, runtime: &'r Runtime) -> &'r Chain {
        Self::applicable(&self.chain_override, self.route, runtime)
    }

    /// The plugins that apply together with the request state, borrowed apart so that
    /// plugins can be called with `&mut RequestCtx` while iterating.
    fn chain_and_request<'r>(
        &'r mut self,
        runtime: &'r Runtime,
    ) -> (&'r [PluginInstance], &'r mut RequestCtx) {
        let chain = Self::applicable(&self.chain_override, self.route, runtime);
        (chain.plugins(), &mut self.req)
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Writes a response the gateway generated (plugin answer, 404, upstream failure), after
/// the same header treatment proxied responses get.
async fn send_generated(
    session: &mut Session,
    runtime: &Runtime,
    st: &mut State,
    resp: Response,
) -> Result<()> {
    if st.route(runtime).is_some_and(|r| r.compression.is_some()) {
        crate::compression::disable(session);
    }
    let (mut header, body) = if st.grpc {
        // A gRPC client reads the status, not the HTTP one: a trailers-only answer.
        (respond::render_grpc(&resp), Bytes::new())
    } else {
        let head = session.req_header().method == http::Method::HEAD;
        respond::render(&resp, st.req.request_id.as_str(), head)
    };
    let mut head = ResponseHeadOf::Cased(&mut header);
    if runtime.headers.via.is_some() {
        head.insert_known(&headers::SERVER, SERVER);
    }
    if runtime.headers.latency {
        let ms = millis(st.req.started_at.elapsed());
        head.insert_known(&headers::RESPONSE_LATENCY, millis_value(ms));
    }
    finish_response_header(runtime, &mut head, session.req_header(), st);
    let end = body.is_empty();
    session.write_response_header(Box::new(header), end).await?;
    if !end {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// `Server` on generated responses.
const SERVER: HeaderValue =
    HeaderValue::from_static(concat!("pingway/", env!("CARGO_PKG_VERSION")));

/// Headers every response gets (request id, Via, plugin-queued headers), then the
/// plugins' `on_response`.
fn finish_response_header(
    runtime: &Runtime,
    head: &mut ResponseHeadOf<'_>,
    request: &http::request::Parts,
    st: &mut State,
) {
    let id = st.req.request_id.header_value().clone();
    head.insert_known(&runtime.headers.request_id, id);
    if let Some(via) = &runtime.headers.via {
        head.append_known(&headers::VIA, via.clone());
    }
    for (name, value) in st.req.take_response_headers() {
        match name {
            ResponseHeaderName::Static(name) => head.insert_static(name, value),
            ResponseHeaderName::Name(name) => head.insert_header(name, value),
        }
    }
    let (plugins, req) = st.chain_and_request(runtime);
    let mut view = ResponseView::new(head, request, req);
    for p in plugins {
        p.plugin.on_response(&mut view);
    }
}

/// An IP address as a header value. IPv4 (the common case) is written by hand:
/// `core::fmt` costs more than the rest of the header.
fn ip_header(ip: IpAddr) -> Option<HeaderValue> {
    let mut buf = [0u8; 48];
    let len = match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            n
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            write!(cursor, "{v6}").ok()?;
            cursor.position() as usize
        }
    };
    HeaderValue::from_bytes(&buf[..len]).ok()
}

/// Sets the forwarding headers on the upstream request.
fn forwarding_headers(
    runtime: &Runtime,
    session: &Session,
    upstream: &mut UpstreamHead<'_>,
    st: &State,
) {
    let downstream = session.req_header();
    let trusted = st.peer_trusted;

    // X-Forwarded-For: what came in (every line, in order), then the peer.
    let mut peer_value = None;
    if let Some(peer) = st.req.peer_addr {
        let peer_ip = peer.ip().to_canonical();
        let mut lines = downstream
            .headers
            .get_all(&headers::X_FORWARDED_FOR.name)
            .iter()
            .peekable();
        let value = if lines.peek().is_none() {
            peer_value = st.peer_value.clone().or_else(|| ip_header(peer_ip));
            peer_value.clone()
        } else {
            let mut xff = Vec::with_capacity(64);
            for v in lines {
                if !xff.is_empty() {
                    xff.extend_from_slice(b", ");
                }
                xff.extend_from_slice(v.as_bytes());
            }
            xff.extend_from_slice(b", ");
            if let Some(ip) = st.peer_value.clone().or_else(|| ip_header(peer_ip)) {
                xff.extend_from_slice(ip.as_bytes());
            }
            HeaderValue::from_bytes(&xff).ok()
        };
        if let Some(v) = value {
            upstream.insert_known(&headers::X_FORWARDED_FOR, v);
        }
    }
    if !(trusted
        && downstream
            .headers
            .contains_key(&headers::X_FORWARDED_PROTO.name))
    {
        upstream.insert_known(
            &headers::X_FORWARDED_PROTO,
            HeaderValue::from_static(if st.downstream_tls { "https" } else { "http" }),
        );
    }
    if !(trusted
        && downstream
            .headers
            .contains_key(&headers::X_FORWARDED_HOST.name))
    {
        // HTTP/2 clients name the host in `:authority` rather than `Host`.
        let host = downstream.headers.get(header::HOST).cloned().or_else(|| {
            let authority = downstream.uri.authority()?;
            HeaderValue::from_str(authority.as_str()).ok()
        });
        match host {
            Some(host) => upstream.insert_known(&headers::X_FORWARDED_HOST, host),
            None => {
                upstream.remove_header(&headers::X_FORWARDED_HOST.name);
            }
        }
    }
    if !(trusted
        && downstream
            .headers
            .contains_key(&headers::X_FORWARDED_PORT.name))
    {
        let port = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.port());
        if let Some(port) = port {
            upstream.insert_known(&headers::X_FORWARDED_PORT, runtime.port_value(port));
        }
    }
    // Usually the client is the peer: reuse the value just made.
    let real_ip = match (peer_value, st.req.peer_addr) {
        (Some(v), Some(peer)) if peer.ip().to_canonical() == st.req.client_ip => Some(v),
        _ => ip_header(st.req.client_ip),
    };
    if let Some(v) = real_ip {
        upstream.insert_known(&headers::X_REAL_IP, v);
    }
}

/// `path` followed by the query of `uri`, as a URI.
fn with_query(path: &str, uri: &http::Uri) -> Option<http::Uri> {
    let query = uri.query();
    let mut target = String::with_capacity(path.len() + 2 + query.map_or(0, str::len));
    if !path.starts_with('/') {
        target.push('/');
    }
    target.push_str(path);
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    target.parse().ok()
}

/// How many headers the gateway adds to an upstream request: Host, X-Forwarded-For,
/// -Proto, -Host, -Port, X-Real-IP, the request id, Via and the route's edits. The header
/// map, sized for the headers the client sent, grows once for them rather than on an
/// insert, and not at all when they fit (plugins' own headers grow it as they need).
fn upstream_headers_added(runtime: &Runtime, route: Option<&CompiledRoute>) -> usize {
    let forwarded = if runtime.headers.forwarded { 5 } else { 0 };
    let edits = route
        .and_then(|r| r.request_headers.as_deref())
        .map_or(0, |e| e.added());
    3 + forwarded + edits
}

/// Room made on the client's head for the headers a route's plugins add in the access
/// phase (see [`ClientRequest::reserve_headers`]).
const PLUGIN_HEADERS_ADDED: usize = 4;

/// How many headers the gateway adds to a proxied response: the two latencies, the
/// request id, Via, the headers plugins queued and the route's edits (see
/// [`upstream_headers_added`]).
fn response_headers_added(runtime: &Runtime, st: &State) -> usize {
    let latency = if runtime.headers.latency { 2 } else { 0 };
    let edits = st
        .route(runtime)
        .and_then(|r| r.response_headers.as_deref())
        .map_or(0, |e| e.added());
    2 + latency + st.req.response_headers().len() + edits
}

/// Removes the matched path prefix for `strip_prefix` (the query is kept).
fn strip_prefix(upstream: &mut UpstreamHead<'_>, matched_len: usize) {
    if matched_len == 0 {
        return;
    }
    let uri = &upstream.parts().uri;
    let uri = uri
        .path()
        .get(matched_len..)
        .and_then(|rest| with_query(rest, uri));
    if let Some(uri) = uri {
        upstream.set_uri(uri);
    }
}

/// Everything the gateway and the plugins do to a request head on its way upstream, in
/// one pass over whichever form of the head applies.
fn edit_upstream(
    runtime: &Runtime,
    session: &Session,
    st: &mut State,
    upstream: &mut UpstreamHead<'_>,
) {
    let Some(route) = st.route(runtime) else {
        return;
    };
    if route.strip_prefix {
        strip_prefix(upstream, st.matched_len);
    }
    if let Some(rewrite) = &route.path_rewrite {
        if let Some(uri) = rewrite.apply(&upstream.parts().uri) {
            upstream.set_uri(uri);
        }
    }
    if !route.preserve_host {
        let target = st
            .selected
            .as_ref()
            .zip(st.upstream.as_ref())
            .and_then(|(sel, up)| up.targets().get(sel.index));
        if let Some(t) = target {
            upstream.insert_known(&headers::HOST, t.host_header().clone());
        }
    }
    request_head::single_content_length(upstream);
    if runtime.headers.forwarded {
        forwarding_headers(runtime, session, upstream, st);
    }
    let id = st.req.request_id.header_value().clone();
    upstream.insert_known(&runtime.headers.request_id, id);
    if let Some(via) = &runtime.headers.via {
        upstream.append_known(&headers::VIA, via.clone());
    }
    if let Some(edits) = &route.request_headers {
        edits.apply_request(upstream);
    }
    let (plugins, req) = st.chain_and_request(runtime);
    let mut view = UpstreamRequest::new(upstream, req);
    for p in plugins {
        p.plugin.on_upstream_request(&mut view);
    }
}

/// The headers the gateway adds to a proxied response, then the queued ones and the
/// plugins' `on_response`.
fn edit_response(
    runtime: &Runtime,
    st: &mut State,
    request: &http::request::Parts,
    response: &mut ResponseHeadOf<'_>,
) {
    if let Some(edits) = st
        .route(runtime)
        .and_then(|r| r.response_headers.as_deref())
    {
        edits.apply_response(response);
    }
    if runtime.headers.latency {
        if let Some(up) = st.upstream_latency {
            response.insert_known(&headers::UPSTREAM_LATENCY, millis_value(millis(up)));
        }
        if let Some(px) = st.proxy_latency {
            response.insert_known(&headers::PROXY_LATENCY, millis_value(millis(px)));
        }
    }
    finish_response_header(runtime, response, request, st);
}

/// Method, path and Host of a request for log lines, never the query string, which may
/// carry credentials (`?apikey=`, `?jwt=`).
fn request_summary(session: &Session) -> String {
    let req = session.req_header();
    let host = req
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    format!("{} {}, Host: {host}", req.method, req.uri.path())
}

/// 408 when a request body falls behind `client_body_min_rate` after its
/// `client_body_timeout` of grace: each `min_rate` bytes extend its deadline by a second
/// (mod_reqtimeout's rule). A body that stops altogether is ended by the read timeout
/// instead.
fn check_body_rate(runtime: &Runtime, st: &mut State, chunk: Option<&Bytes>) -> Result<()> {
    let settings = &runtime.config.proxy;
    let Some(len) = chunk.map(Bytes::len) else {
        return Ok(());
    };
    let started = *st.body_started.get_or_insert_with(Instant::now);
    st.body_bytes = st.body_bytes.saturating_add(len as u64);
    let min_rate = settings.client_body_min_rate;
    if min_rate == 0 {
        return Ok(());
    }
    let allowed =
        settings.client_body_timeout.get() + Duration::from_secs(st.body_bytes / min_rate);
    if started.elapsed() > allowed {
        let mut e = Error::explain(
            ErrorType::ReadTimedout,
            format!(
                "request body slower than client_body_min_rate ({} bytes in {:?})",
                st.body_bytes,
                started.elapsed()
            ),
        );
        e.as_down();
        return Err(e);
    }
    Ok(())
}

/// The access phase of a request whose head is valid: pre-routing plugins, routing,
/// the plugins' `on_request` (resolving the chain for an authenticated consumer),
/// `choose_upstream`, and the target. Returns the answer that ends the request early,
/// if any; the caller sends it once the client's head is back in the session.
async fn access(
    runtime: &Runtime,
    st: &mut State,
    client: &mut ClientRequest<'_>,
) -> Result<Option<Response>> {
    // Pre-routing: the global plugins that ask, before a route is known (on a 404
    // too); what they leave is what the router sees.
    for p in runtime.global_chain.rewriters() {
        let mut view = Request::new(&mut *client, &mut st.req, &runtime.services);
        if let Flow::Respond(resp) = p.plugin.on_rewrite(&mut view).await {
            return Ok(Some(resp));
        }
    }

    // Route.
    let found = {
        let req = client.parts();
        let unescaped = match request_head::escaped_slashes(
            req.uri.path(),
            runtime.config.proxy.escaped_slashes,
        ) {
            Ok(SlashOutcome::Unchanged) => None,
            Ok(SlashOutcome::Unescaped(p)) => Some(p),
            Err(rejection) => return Ok(Some(rejection.response())),
        };
        let path = match &unescaped {
            Some(p) => Cow::Owned(normalize_path(p).into_owned()),
            None => normalize_path(req.uri.path()),
        };
        // The host is looked up only when some route is chosen by it.
        let host = runtime.router.routes_by_host().then(|| {
            req.headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| req.uri.host())
        });
        let host = host.flatten();
        let found = runtime.router.find(&RouteRequest {
            host,
            path: &path,
            method: &req.method,
            headers: &req.headers,
            query: req.uri.query(),
        });
        // Plugins and the upstream see the normalized path, the one that was routed.
        let rewritten = match (&found, path) {
            (Some(_), Cow::Owned(p)) => with_query(&p, &req.uri),
            _ => None,
        };
        (found, rewritten)
    };
    let (found, rewritten) = found;
    if let Some(uri) = rewritten {
        client.set_uri(uri);
    }
    let Some(found) = found else {
        return Ok(Some(Response::error(
            StatusCode::NOT_FOUND,
            respond::NO_ROUTE,
        )));
    };
    let Some(route) = runtime.routes.get(found.route) else {
        return Error::e_explain(ErrorType::InternalError, "router returned an unknown route");
    };
    st.route = Some(found.route);
    st.matched_len = found.matched_len;
    st.req.route = Some(route.info.clone());
    // Kong checks the scheme once the route is known, before its plugins.
    if let Some(status) = route.https_only {
        if !crate::https_only::is_https(st.downstream_tls, st.peer_trusted, client.parts()) {
            let answer = crate::https_only::answer(status, st.peer_trusted, client.parts());
            return Ok(Some(answer));
        }
    }
    if route.chain.wants_timings() {
        st.timings = Some(Box::default());
    }
    if !route.chain.plugins().is_empty() {
        // Room, in one growth, for what plugins typically add here (an auth plugin's
        // four consumer headers) and for the gateway's upstream headers: the upstream
        // request is a copy of this head and keeps its table's size.
        client.reserve_headers(PLUGIN_HEADERS_ADDED + upstream_headers_added(runtime, Some(route)));
    }

    // Plugins, highest priority first; any may answer. Once a plugin authenticates
    // a consumer that has plugins of its own, the rest of the chain is resolved with
    // them (and that chain is kept for the later phases).
    let mut applied_consumer: Option<Arc<str>> = None;
    let mut i = 0;
    loop {
        let plugins = State::applicable(&st.chain_override, st.route, runtime).plugins();
        let Some(p) = plugins.get(i) else { break };
        let mut view = Request::new(&mut *client, &mut st.req, &runtime.services);
        let began = st.timings.is_some().then(Instant::now);
        let flow = p.plugin.on_request(&mut view).await;
        if let (Some(t), Some(began)) = (st.timings.as_deref_mut(), began) {
            let start = began.saturating_duration_since(st.req.started_at);
            t.record_phase(&p.name, "access", start, began.elapsed());
        }
        if let Flow::Respond(resp) = flow {
            return Ok(Some(resp));
        }
        // The anonymous consumer's plugins apply too (Kong's scoping), which is how
        // anonymous traffic gets its own limits.
        if let Some(consumer) = st.req.consumer() {
            if applied_consumer.as_deref() != Some(&*consumer.id) {
                if let Some(own) = runtime.consumer_plugins.get(&consumer.id) {
                    let resolved = resolve_for_consumer(route.chain.plugins(), &plugins[..=i], own);
                    applied_consumer = Some(consumer.id.clone());
                    st.chain_override = Some(Box::new(Chain::from_ordered(resolved)));
                }
            }
        }
        i += 1;
    }

    // Where the request goes: the route's upstream unless a plugin chose another
    // upstream or pinned a target.
    let mut choice = UpstreamChoice::default();
    {
        let (plugins, req) = st.chain_and_request(runtime);
        let view = Request::new(&mut *client, req, &runtime.services);
        for p in plugins {
            p.plugin.choose_upstream(&view, &mut choice);
        }
    }
    let upstream = match choice.upstream() {
        // The route's split, if it has one, else its upstream.
        None => Some(
            route
                .split
                .as_ref()
                .and_then(|s| s.pick(st.req.client_ip, client.parts()))
                .unwrap_or(&route.upstream)
                .clone(),
        ),
        Some(name) => runtime.upstreams.get(name).cloned(),
    };
    let Some(upstream) = upstream else {
        let unknown = choice.upstream().unwrap_or_default();
        log::warn!(
            "route {}: a plugin chose upstream {unknown:?}, which is not defined",
            route.info.name
        );
        return Ok(Some(Response::error(
            StatusCode::SERVICE_UNAVAILABLE,
            respond::status_message(503),
        )));
    };

    // Circuit breaking: a pool at its max_requests answers at once.
    match upstream.try_acquire() {
        Ok(slot) => st.upstream_slot = slot,
        Err(_) => {
            return Ok(Some(Response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                respond::UPSTREAM_FULL,
            )));
        }
    }
    st.attempts.begin(
        &upstream,
        route.timeout,
        route.retry.clone(),
        st.req.started_at,
    );

    // Pick the target now, so that "no healthy target" is an ordinary answer (the
    // client keeps its connection) rather than a proxying failure.
    st.pinned = choice.target();
    let selected = match st.pinned {
        Some(addr) => upstream.select_target(addr, &st.tried),
        None => upstream.select(
            &SelectRequest {
                client_ip: st.req.client_ip,
                header: client.parts(),
            },
            &st.tried,
        ),
    };
    st.upstream = Some(upstream);
    match selected {
        Some(sel) => st.selected = Some(sel),
        None => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            return Ok(Some(Response::error(status, respond::NO_HEALTHY_TARGET)));
        }
    }
    // A WebSocket session is not copied: a shadow cannot take part in it.
    if !route.mirrors.is_empty() && !st.upgrade {
        st.mirror_pending = route
            .mirrors
            .iter()
            .filter_map(crate::mirror::Mirror::draw)
            .collect();
    }
    Ok(None)
}

/// Starts the copies drawn for the route's mirrors with the head the upstream gets. On
/// a retry, copies whose body is still streaming are abandoned: Pingora sends the body
/// again from its buffer, which must not reach a shadow twice.
fn start_mirrors(session: &mut Session, head: &RequestHeader, st: &mut State, runtime: &Runtime) {
    st.mirror_feeds.clear();
    if st.mirror_pending.is_empty() {
        return;
    }
    let has_body = !session.is_body_empty();
    let preserve_host = st.route(runtime).is_some_and(|r| r.preserve_host);
    let client_host = preserve_host
        .then(|| session.req_header().headers.get(header::HOST))
        .flatten();
    for copy in st.mirror_pending.drain(..) {
        if let Some(feed) = copy.start(head, client_host, st.req.client_ip, has_body) {
            st.mirror_feeds.push(feed);
        }
    }
}

#[async_trait]
impl ProxyHttp for PingwayProxy {
    type CTX = ProxyCtx;

    fn new_ctx(&self) -> ProxyCtx {
        ProxyCtx {
            runtime: self.runtime.load_full(),
            state: Box::new(State {
                route: None,
                req: RequestCtx::new(
                    RequestId::default(),
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    None,
                ),
                peer_trusted: false,
                downstream_tls: false,
                matched_len: 0,
                selected: None,
                tried: Vec::new(),
                last_connect_error: None,
                upstream_sent_at: None,
                proxy_latency: None,
                upstream_latency: None,
                upstream_status: None,
                upstream_addr: None,
                chain_override: None,
                body_started: None,
                body_bytes: 0,
                body_rejection: None,
                peer_value: None,
                upstream_slot: None,
                timings: None,
                cache: None,
                attempts: Default::default(),
                upstream: None,
                pinned: None,
                mirror_pending: Vec::new(),
                mirror_feeds: Vec::new(),
                upgrade: false,
                grpc: false,
                upgrade_gate: None,
            }),
        }
    }

    /// What Pingora's own log lines say about a request: method, path and Host, never the
    /// query string, which may carry credentials (`?apikey=`, `?jwt=`).
    fn request_summary(&self, session: &Session, _ctx: &ProxyCtx) -> String {
        request_summary(session)
    }

    /// What the client did is routine, not the gateway's error: a client that went away
    /// before its response (nginx and Kong log a 499), a broken request body (invalid
    /// chunks, bytes after the body's end: a 400), a body too slow (408). nginx logs
    /// these at `info`; they are logged at debug level instead of Pingora's error line,
    /// and each request still has its access-log entry with the status it was answered
    /// with (0 when the client left before any answer). A client could
    /// otherwise write one error line per connection at will. Upstream failures keep
    /// their error line.
    fn suppress_error_log(&self, session: &Session, ctx: &ProxyCtx, error: &Error) -> bool {
        let clients = error.esource() == &ErrorSource::Downstream;
        if clients {
            log::debug!(
                "the client's side of a request failed: {error}, {}",
                self.request_summary(session, ctx)
            );
        }
        clients
    }

    /// No downstream modules unless a route compresses: Pingora's default adds a
    /// (disabled) compression module that still costs time on every request.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        let runtime = self.runtime.load();
        let compresses = runtime.routes.iter().any(|r| r.compression.is_some());
        crate::compression::install(modules, compresses);
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut ProxyCtx) -> Result<bool> {
        let ProxyCtx { runtime, state: st } = ctx;
        let runtime: &Runtime = runtime;

        // Client identity.
        let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
        let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        {
            let headers = &session.req_header().headers;
            st.peer_trusted = runtime.identity.is_trusted(peer_ip);
            let tls = session.digest().and_then(|d| d.ssl_digest.as_ref());
            st.downstream_tls = tls.is_some();
            // The client's certificate chain, kept by the handshake (unverified: the
            // route's mtls-auth verifies it).
            if let Some(chain) = tls.and_then(|t| t.extension.get::<crate::tls::PeerChain>()) {
                st.req.set_client_certificate_chain(chain.0.clone());
            }
            st.req.client_ip = runtime.identity.client_ip(peer_ip, headers);
            st.req.request_id = runtime.identity.request_id(st.peer_trusted, headers);
            st.req.peer_addr = peer;
            st.grpc = respond::is_grpc(headers);
        }
        st.upgrade = session.is_upgrade_req();

        // The head is in: its deadline is over, the body's begin.
        let proxy_settings = &runtime.config.proxy;
        if let Some(connection) = Connection::current() {
            connection.head_complete(proxy_settings.client_header_timeout.get());
            st.peer_value = connection.peer_value(|| ip_header(peer_ip.to_canonical()));
        }
        session.set_read_timeout(Some(proxy_settings.client_body_timeout.get()));

        // What is routed must be what the upstream acts on: refuse request-targets,
        // hosts and encoded slashes that a backend could read differently.
        if let Err(rejection) = request_head::check(session.req_header_mut(), &runtime.head_policy)
        {
            send_generated(session, runtime, st, rejection.response()).await?;
            return Ok(true);
        }

        // An ACME CA validating a certificate order (HTTP-01): answered on plain
        // listeners before routing, so no route or plugin can get in its way.
        if !st.downstream_tls {
            if let Some(resp) =
                crate::acme::challenge_response(&runtime.acme.challenges, session.req_header())
            {
                send_generated(session, runtime, st, resp).await?;
                return Ok(true);
            }
        }

        // The access phase edits the client's head: taken apart into parts (each edit
        // one map operation) unless the case of names is kept, and always put back.
        let taken = if runtime.headers.preserve_case {
            None
        } else {
            take_client_parts(session)
        };
        let answer = match taken {
            Some(mut parts) => {
                let answer = {
                    let mut client = ClientRequest::Plain {
                        parts: &mut parts,
                        session: &mut *session,
                    };
                    access(runtime, st, &mut client).await
                };
                restore_client_parts(session, parts);
                answer
            }
            None => access(runtime, st, &mut ClientRequest::Cased(&mut *session)).await,
        };
        match answer? {
            Some(resp) => {
                send_generated(session, runtime, st, resp).await?;
                Ok(true)
            }
            None => {
                if st.upgrade {
                    // The session's quiet spells are normal: the upstream's idle timeout
                    // replaces the client body timeouts for it.
                    if let Some(upstream) = &st.upstream {
                        session.set_read_timeout(Some(upstream.websocket_idle_timeout()));
                    }
                } else if let Some(c) = st.route(runtime).and_then(|r| r.compression.as_deref()) {
                    c.request(session);
                }
                Ok(false)
            }
        }
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut ProxyCtx) -> Result<()> {
        let ProxyCtx { runtime, state: st } = ctx;
        if st.upgrade {
            return Ok(());
        }
        if let Some(policy) = st.route(runtime).and_then(|r| r.cache.as_ref()) {
            st.cache = Some(crate::cache::hooks::enable(session, policy, &st.req));
        }
        Ok(())
    }

    fn cache_key_callback(
        &self,
        _session: &Session,
        ctx: &mut ProxyCtx,
    ) -> Result<pingora_cache::CacheKey> {
        crate::cache::hooks::cache_key(ctx.state.cache.as_deref())
    }

    fn response_cache_filter(
        &self,
        _session: &Session,
        resp: &ResponseHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<pingora_cache::RespCacheable> {
        Ok(crate::cache::hooks::response_cacheable(
            ctx.state.cache.as_deref(),
            resp,
        ))
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &pingora_cache::CacheMeta,
        _hit_handler: &mut pingora_cache::storage::HitHandler,
        _is_fresh: bool,
        ctx: &mut ProxyCtx,
    ) -> Result<Option<pingora_cache::ForcedFreshness>> {
        Ok(ctx
            .state
            .cache
            .as_ref()
            .and_then(|c| c.policy.hit_freshness(session.req_header(), meta)))
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        if ctx.state.upgrade && session.was_upgraded() {
            // WebSocket frames, not a request body: no body plugin, rate or mirror.
            return Ok(());
        }
        check_body_rate(&ctx.runtime, &mut ctx.state, body.as_ref())?;
        let ProxyCtx { runtime, state: st } = ctx;
        if st.chain(runtime).wants_request_body() {
            let (plugins, req) = st.chain_and_request(runtime);
            let mut rejection = None;
            for p in plugins.iter().filter(|p| p.plugin.wants_request_body()) {
                if let Err(resp) = p.plugin.on_request_body(body, end_of_stream, req) {
                    rejection = Some(resp);
                    break;
                }
            }
            if let Some(resp) = rejection {
                let status = resp.status.as_u16();
                st.body_rejection = Some(Box::new(resp));
                let mut e = Error::explain(
                    ErrorType::HTTPStatus(status),
                    "a plugin refused the request body",
                );
                e.as_down();
                return Err(e);
            }
        }
        // A plugin read the whole body and replaced it (key-auth's hide_credentials):
        // Pingora replays what was read from its retry buffer, in one piece; send the
        // replacement instead.
        if let Some(replacement) = ctx.state.req.upstream_body() {
            *body = if end_of_stream && !replacement.is_empty() {
                Some(replacement.clone())
            } else {
                None
            };
        }
        // The mirrors' copies get what the upstream gets.
        if !ctx.state.mirror_feeds.is_empty() {
            ctx.state
                .mirror_feeds
                .retain_mut(|feed| feed.feed(body.as_ref(), end_of_stream));
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut ProxyCtx,
    ) -> Result<Box<HttpPeer>> {
        let st = &mut ctx.state;
        if let Some(t) = st.timings.as_deref_mut() {
            t.connect_starts(st.req.started_at.elapsed());
        }
        let Some(upstream) = st.upstream.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no upstream for the request");
        };
        let cap = st.attempts.before_attempt(&upstream).await?;
        // The first attempt uses the target picked in request_filter (a pinned one, say);
        // retries pick again with the balancer, avoiding the targets that failed.
        let selected = match st.selected.take() {
            Some(sel) => Some(sel),
            None => {
                let request = SelectRequest {
                    client_ip: st.req.client_ip,
                    header: session.req_header(),
                };
                upstream.select(&request, &st.tried)
            }
        };
        match selected {
            Some(sel) => {
                let peer = if st.upgrade {
                    let (peer, gate) = upstream.upgrade_peer(&sel);
                    st.upgrade_gate = gate;
                    peer
                } else {
                    upstream.peer_within(&sel, cap)
                };
                st.upstream_addr = Some(sel.addr);
                st.selected = Some(sel);
                Ok(peer)
            }
            // Every target left already failed to connect: that failure is the answer.
            None if !st.tried.is_empty() => {
                let etype = st
                    .last_connect_error
                    .clone()
                    .unwrap_or(ErrorType::ConnectError);
                let mut e = Error::explain(etype, "every upstream target failed to connect");
                e.as_up();
                Err(e)
            }
            None => Error::e_explain(ErrorType::HTTPStatus(503), respond::NO_HEALTHY_TARGET),
        }
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora_core::protocols::Digest>,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        let st = &mut ctx.state;
        if let Some(t) = st.timings.as_deref_mut() {
            t.connected(st.req.started_at.elapsed(), reused);
        }
        // A WebSocket handshake to a TLS target: the TLS handshake is done and the
        // request not written yet, the moment the upgrade gate closes (see `upgrade`).
        if let Some(gate) = st.upgrade_gate.take() {
            gate.arm();
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut ProxyCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let st = &mut ctx.state;
        if let Some(sel) = st.selected.as_ref() {
            sel.record_error(UpstreamErrorKind::of(e.etype()));
        }
        st.last_connect_error = Some(e.etype().clone());
        let Some(upstream) = st.upstream.clone() else {
            e.set_retry(false);
            return e;
        };
        st.attempts
            .connect_failed(&upstream, session, &mut st.selected, &mut st.tried, e)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut ProxyCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let st = &mut ctx.state;
        let Some(upstream) = st.upstream.clone() else {
            e.set_retry(false);
            return e;
        };
        // The target's recent errors (admin API): an upstream failure, unless a reused
        // idle connection the target had closed (re-sent without counting) or a client
        // that stalled its request body (not the target's doing).
        let stale = matches!(e.retry, pingora_error::RetryType::ReusedOnly) && client_reused;
        if e.esource() == &ErrorSource::Upstream && !stale {
            let client_side = respond::status_for_error(&e) == 504 && !session.is_body_done();
            recent_errors::record_failure(st.selected.as_ref(), e.etype(), client_side);
        }
        let (selected, tried) = (&mut st.selected, &mut st.tried);
        st.attempts
            .proxy_failed(&upstream, session, selected, tried, client_reused, e)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        let ProxyCtx { runtime, state: st } = ctx;
        if st.route.is_none() {
            return Ok(());
        }
        if runtime.headers.preserve_case {
            edit_upstream(runtime, session, st, &mut UpstreamHead::Cased(upstream));
        } else {
            let added = upstream_headers_added(runtime, st.route(runtime));
            edit_upstream_plain(upstream, added, |head| {
                edit_upstream(runtime, session, st, head)
            });
        }
        if st.grpc && st.upstream.as_ref().is_some_and(|u| u.is_http2()) {
            // gRPC servers may insist on the `TE: trailers` that HTTP/2 allows (Envoy
            // sends it); Pingora drops `TE` when it turns an HTTP/1 request into an
            // HTTP/2 one, and a client may have left it out.
            let _ = upstream.insert_header(header::TE, HeaderValue::from_static("trailers"));
        }
        if !st.mirror_pending.is_empty() || !st.mirror_feeds.is_empty() {
            start_mirrors(session, upstream, st, runtime);
        }
        let now = Instant::now();
        st.proxy_latency = Some(now.saturating_duration_since(st.req.started_at));
        st.upstream_sent_at = Some(now);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        let ProxyCtx { runtime, state: st } = ctx;
        if let Some(upstream) = &st.upstream {
            let status = upstream_response.status.as_u16();
            let (selected, tried) = (&mut st.selected, &mut st.tried);
            st.attempts
                .response_status(upstream, session, selected, tried, status)?;
        }
        st.upstream_status = Some(upstream_response.status.as_u16());
        recent_errors::record_response(st.selected.as_ref(), upstream_response.status.as_u16());
        st.upstream_latency = st.upstream_sent_at.map(|t| t.elapsed());
        let (plugins, req) = st.chain_and_request(runtime);
        let mut head = ResponseHeadOf::Cased(upstream_response);
        let mut view = ResponseView::new(&mut head, session.req_header(), req);
        for p in plugins {
            p.plugin.on_upstream_response(&mut view);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut ProxyCtx,
    ) -> Result<()> {
        let ProxyCtx { runtime, state: st } = ctx;
        if let Some(cache) = &st.cache {
            cache.add_headers(session.cache.phase(), response);
        }
        if let Some(c) = st.route(runtime).and_then(|r| r.compression.as_deref()) {
            if st.upgrade {
                crate::compression::disable(session);
            } else {
                c.response(session, response);
            }
        }
        if runtime.headers.preserve_case {
            edit_response(
                runtime,
                st,
                session.req_header(),
                &mut ResponseHeadOf::Cased(response),
            );
        } else {
            let added = response_headers_added(runtime, st);
            edit_response_plain(response, added, |head| {
                edit_response(runtime, st, session.req_header(), head)
            });
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut ProxyCtx,
    ) -> Result<Option<Duration>> {
        let ProxyCtx { runtime, state: st } = ctx;
        // After an upgrade the bytes are WebSocket frames: response-body plugins stay out.
        let upgraded = st.upgrade && session.was_upgraded();
        if !upgraded && st.route.is_some() && st.chain(runtime).wants_body() {
            let (plugins, req) = st.chain_and_request(runtime);
            for p in plugins {
                if p.plugin.wants_response_body() {
                    p.plugin.on_response_body(body, end_of_stream, req);
                }
            }
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut ProxyCtx,
    ) -> FailToProxy {
        let ProxyCtx { runtime, state: st } = ctx;
        let mut code = respond::status_for_error(e);
        if code == 504 && e.esource() == &ErrorSource::Upstream && !session.is_body_done() {
            // The upstream was still waiting for the request body: the client stalled,
            // not the upstream (nginx counts the upstream's read timeout only once the
            // request is sent).
            log::warn!(
                "client timed out sending its request body (upstream waited {}), {}",
                e.etype().as_str(),
                request_summary(session)
            );
            code = 408;
        }
        if e.esource() == &ErrorSource::Upstream {
            recent_errors::record_failure(st.selected.as_ref(), e.etype(), code == 408);
        }
        if code > 0 && session.response_written().is_none() {
            // Pingora closes the client connection after a failed proxy attempt; say so
            // rather than promise keep-alive.
            session.set_keepalive(None);
            let message: Cow<'static, str> = match (st.attempts.take_message(), e.etype()) {
                (Some(chosen), _) => chosen.into(),
                (None, ErrorType::HTTPStatus(503)) if st.route.is_some() => {
                    respond::NO_HEALTHY_TARGET.into()
                }
                _ => respond::status_message(code).into(),
            };
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            // A request-body plugin's own answer (a size limit's 413), else the gateway's.
            let resp = st
                .body_rejection
                .take()
                .map(|r| *r)
                .unwrap_or_else(|| Response::error(status, message));
            if let Err(write_err) = send_generated(session, runtime, st, resp).await {
                log::debug!("could not send the error response: {write_err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut ProxyCtx) {
        let ProxyCtx { runtime, state: st } = ctx;
        if let Some(connection) = Connection::current() {
            connection.request_done();
        }
        // The target's and the pool's in-flight counts end with the request.
        st.selected = None;
        st.upstream_slot = None;
        // One clock read for the stats and the log entry.
        let elapsed = st.req.started_at.elapsed();
        crate::live_stats::record(
            st.route(runtime).map(|r| &*r.stats),
            session.response_written().map_or(0, |r| r.status.as_u16()),
            elapsed,
        );
        st.attempts.finish();
        let chain = st.chain(runtime).plugins();
        if chain.is_empty() && !crate::access_log::enabled(runtime) {
            return;
        }
        let response = session.response_written();
        let error = e.map(|e| e.to_string());
        let mut entry = LogEntry::new(session.req_header(), &st.req, elapsed);
        entry.response = response.map(|r| &**r);
        entry.status = response.map_or(0, |r| r.status.as_u16());
        entry.upstream = st.upstream.as_ref().map(|u| u.name());
        entry.upstream_addr = st.upstream_addr;
        entry.upstream_status = st.upstream_status;
        entry.proxy_latency = st.proxy_latency;
        entry.upstream_latency = st.upstream_latency;
        entry.bytes_received = session.body_bytes_read();
        entry.bytes_sent = session.body_bytes_sent();
        entry.error = error.as_deref();
        entry.timings = st.timings.as_deref();
        crate::access_log::record(runtime, &entry);
        for p in chain {
            p.plugin.on_log(&entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_header_values_match_the_standard_formatting() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_header(parsed).unwrap(), parsed.to_string().as_str());
        }
    }
}
