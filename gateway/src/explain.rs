//! "Why did this request go there": which route serves a request and why, the nearest
//! routes that did not, the plugin chain, the upstream and target, and what the upstream
//! would see. Used by `pingway explain` and the admin API's `GET /explain`.
//!
//! Everything is asked of the compiled configuration itself: the router picks the route
//! ([`Router::find`]) and says why each route does or does not accept the request
//! ([`Router::check_route`]); the chain is the route's compiled chain; the target is
//! what the pool's balancer picks now. Plugins do not run: what a plugin would do to the
//! request (authenticate, rewrite, answer early, choose another upstream) is not shown.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pingora_http::RequestHeader;
use serde_json::{json, Value};

use crate::chain::{resolve_for_consumer, PluginInstance};
use crate::request_head::{self, SlashOutcome};
use crate::router::{
    normalize_path, Failure, HostFit, PathFit, RouteCheck, RouteRequest, Specificity,
};
use crate::runtime::Runtime;
use crate::upstream::SelectRequest;

/// Most headers an explained request may carry.
pub const MAX_HEADERS: usize = 64;
/// Most routes listed as near misses.
pub const MAX_NEAR_MISSES: usize = 5;
/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 8192;

/// Plugins that identify a consumer; a consumer's own plugins apply after the first of
/// them in the chain (for `--consumer`).
const AUTH_PLUGINS: &[&str] = &[
    "key-auth",
    "basic-auth",
    "jwt",
    "hmac-auth",
    "oauth2",
    "ldap-auth",
    "openid-connect",
];

/// Why a request cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The URL is not `http://host[:port]/path[?query]` or `/path[?query]`.
    #[error("invalid URL {0:?}: write http://host[:port]/path or /path")]
    Url(String),
    /// The method is not a valid token.
    #[error("invalid method {0:?}")]
    Method(String),
    /// A header is not `Name: value`, or too many headers.
    #[error("invalid header {0:?}: write 'Name: value'")]
    Header(String),
    /// More than [`MAX_HEADERS`] headers.
    #[error("too many headers (at most {MAX_HEADERS})")]
    TooManyHeaders,
    /// The client IP is not an IP address.
    #[error("invalid client IP {0:?}")]
    ClientIp(String),
    /// A query parameter of `/explain` is unknown or not percent-encoded properly.
    #[error("invalid query: {0}")]
    Query(String),
}

/// A request to explain.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    method: Method,
    /// The path as sent (before normalization), without the query.
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    /// The connection's address (the client unless trusted proxies say otherwise).
    peer: IpAddr,
    /// Explain as if this consumer had authenticated.
    consumer: Option<String>,
}

impl ExplainRequest {
    /// A request for `url` (`http://host[:port]/path?query`, or `/path?query` with the
    /// host from a `Host` header) with `method` and `Name: value` headers, from
    /// 127.0.0.1.
    pub fn new(method: &str, url: &str, headers: &[String]) -> Result<Self, ExplainError> {
        if url.len() > MAX_URL_BYTES {
            return Err(ExplainError::Url(url.chars().take(64).collect()));
        }
        if headers.len() > MAX_HEADERS {
            return Err(ExplainError::TooManyHeaders);
        }
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ExplainError::Method(method.to_string()))?;
        let with_scheme = if url.starts_with('/') || url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let uri: http::Uri = with_scheme
            .parse()
            .map_err(|_| ExplainError::Url(url.to_string()))?;
        let mut map = HeaderMap::new();
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| ExplainError::Header(h.clone()))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| ExplainError::Header(h.clone()))?;
            let value =
                HeaderValue::from_str(value.trim()).map_err(|_| ExplainError::Header(h.clone()))?;
            map.append(name, value);
        }
        if !map.contains_key(http::header::HOST) {
            if let Some(authority) = uri.authority() {
                let value = HeaderValue::from_str(authority.as_str())
                    .map_err(|_| ExplainError::Url(url.to_string()))?;
                map.insert(http::header::HOST, value);
            }
        }
        let path = match uri.path() {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        Ok(ExplainRequest {
            method,
            path,
            query: uri.query().map(str::to_string),
            headers: map,
            peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
            consumer: None,
        })
    }

    /// The same request from another connection address.
    pub fn from_peer(mut self, peer: &str) -> Result<Self, ExplainError> {
        self.peer = peer
            .parse()
            .map_err(|_| ExplainError::ClientIp(peer.to_string()))?;
        Ok(self)
    }

    /// The same request, as if `consumer` (an id, username or custom id) had
    /// authenticated.
    pub fn as_consumer(mut self, consumer: Option<String>) -> Self {
        self.consumer = consumer;
        self
    }

    /// From the admin API's query: `url=...&method=...&header=Name:value` (repeated),
    /// `client_ip=...`, `consumer=...`, each percent-encoded.
    pub fn from_query(query: &str) -> Result<Self, ExplainError> {
        let mut url = None;
        let mut method = "GET".to_string();
        let mut headers = Vec::new();
        let mut peer = None;
        let mut consumer = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)
                .ok_or_else(|| ExplainError::Query(format!("{k}: bad percent-encoding")))?;
            match k {
                "url" => url = Some(v),
                "method" => method = v,
                "header" => {
                    if headers.len() >= MAX_HEADERS {
                        return Err(ExplainError::TooManyHeaders);
                    }
                    headers.push(v)
                }
                "client_ip" => peer = Some(v),
                "consumer" => consumer = Some(v),
                other => {
                    return Err(ExplainError::Query(format!(
                        "unknown parameter {other:?} (url, method, header, client_ip, consumer)"
                    )))
                }
            }
        }
        let url = url.ok_or_else(|| ExplainError::Query("the url parameter is required".into()))?;
        let mut req = ExplainRequest::new(&method, &url, &headers)?.as_consumer(consumer);
        if let Some(p) = peer {
            req = req.from_peer(&p)?;
        }
        Ok(req)
    }
}

/// `%XX` and `+` decoding of a query value.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Where a plugin of a chain comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The top-level `plugins:`.
    Global,
    /// The route's `plugins:`.
    Route,
    /// The consumer's `plugins:`.
    Consumer,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Route => "route",
            Scope::Consumer => "consumer",
        }
    }
}

/// One plugin of a resolved chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStep {
    /// The plugin's name.
    pub name: String,
    /// Its effective priority.
    pub priority: i32,
    /// Where it is configured.
    pub scope: Scope,
}

impl PluginStep {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({ "name": self.name, "priority": self.priority, "scope": self.scope.as_str() })
    }
}

/// The compiled chain of route `index`, each plugin with its scope.
pub fn route_chain(rt: &Runtime, index: usize) -> Vec<PluginStep> {
    let (Some(route), Some(cfg)) = (rt.routes.get(index), rt.config.routes.get(index)) else {
        return Vec::new();
    };
    steps(route.chain.plugins(), |p| {
        if cfg.plugins.iter().any(|c| c.name == *p.name) {
            Scope::Route
        } else {
            Scope::Global
        }
    })
}

fn steps(plugins: &[PluginInstance], scope: impl Fn(&PluginInstance) -> Scope) -> Vec<PluginStep> {
    plugins
        .iter()
        .map(|p| PluginStep {
            name: p.name.to_string(),
            priority: p.priority,
            scope: scope(p),
        })
        .collect()
}

/// The route that serves the request, and why.
#[derive(Debug, Clone)]
pub struct Matched {
    /// Its index in `routes`.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// How its host condition held.
    pub host: HostFit,
    /// Which path condition held.
    pub path: PathFit,
    /// Its rank among routes with the same host and path: method list, then header
    /// conditions, then query conditions.
    pub weight: Specificity,
}

/// A route that does not serve the request.
#[derive(Debug, Clone)]
pub struct Miss {
    /// Its index in `routes`.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Why: the first condition it fails, or None when it accepts the request but the
    /// chosen route comes first in precedence.
    pub failure: Option<Failure>,
}

/// The upstream and target.
#[derive(Debug, Clone)]
pub struct UpstreamPick {
    /// The pool's name.
    pub name: String,
    /// Its balancer.
    pub balancer: String,
    /// The target the balancer picks now (`host:port` as configured, and its address),
    /// or None when no target is healthy (the client would get 503).
    pub target: Option<(String, String)>,
    /// The route's weighted split, when it has one: every upstream with its percent, the
    /// route's own first (the request above was drawn like a real one).
    pub split: Vec<(String, u32)>,
}

/// The full explanation.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// Method, host, normalized path and query as routed.
    pub method: String,
    /// The Host header, if any.
    pub host: Option<String>,
    /// The path the router saw (normalized).
    pub path: String,
    /// The query (passed through unchanged).
    pub query: Option<String>,
    /// The client IP the gateway would see.
    pub client_ip: IpAddr,
    /// What the gateway answers before routing, if it refuses the request (400).
    pub refused: Option<String>,
    /// The route, if one matches (otherwise 404).
    pub matched: Option<Matched>,
    /// The nearest routes that do not serve the request (at most [`MAX_NEAR_MISSES`]).
    pub near_misses: Vec<Miss>,
    /// The plugins, in order (for no route: the global chain, whose pre-routing and
    /// response phases still run).
    pub plugins: Vec<PluginStep>,
    /// A note on how the consumer's plugins were applied.
    pub consumer_note: Option<String>,
    /// The upstream and target.
    pub upstream: Option<UpstreamPick>,
    /// The path and query the upstream would get.
    pub upstream_path: Option<String>,
    /// The headers the upstream would get (the client's, then the gateway's).
    pub upstream_headers: Vec<(String, String)>,
}

/// Explains `req` against the configuration `rt`.
///
/// Asking the balancer is real: a round-robin pool moves on by one target.
pub fn explain(rt: &Runtime, req: &ExplainRequest) -> Result<Explanation, ExplainError> {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let peer_trusted = rt.identity.is_trusted(req.peer);
    let client_ip = rt.identity.client_ip(req.peer, &req.headers);
    let mut out = Explanation {
        method: req.method.to_string(),
        host: host.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        client_ip,
        refused: None,
        matched: None,
        near_misses: Vec::new(),
        plugins: Vec::new(),
        consumer_note: None,
        upstream: None,
        upstream_path: None,
        upstream_headers: Vec::new(),
    };
    let unescaped = match request_head::escaped_slashes(&req.path, rt.config.proxy.escaped_slashes)
    {
        Ok(SlashOutcome::Unchanged) => None,
        Ok(SlashOutcome::Unescaped(p)) => Some(p),
        Err(rejection) => {
            out.refused = Some(format!(
                "{} {}",
                rejection.status.as_u16(),
                rejection.message
            ));
            return Ok(out);
        }
    };
    let path = normalize_path(unescaped.as_deref().unwrap_or(&req.path)).into_owned();
    out.path = path.clone();
    let route_req = RouteRequest {
        host: host.as_deref(),
        path: &path,
        method: &req.method,
        headers: &req.headers,
        query: req.query.as_deref(),
    };
    let found = rt.router.find(&route_req);

    // Why each route does or does not serve the request.
    let mut misses: Vec<Miss> = Vec::new();
    for (i, cfg) in rt.config.routes.iter().enumerate() {
        let check = rt.router.check_route(i, cfg, &route_req);
        match (check, found) {
            (RouteCheck::Accepts { host, path, weight }, Some(f)) if f.route == i => {
                out.matched = Some(Matched {
                    index: i,
                    name: cfg.name.clone(),
                    host,
                    path,
                    weight,
                });
            }
            (RouteCheck::Accepts { .. }, _) => misses.push(Miss {
                index: i,
                name: cfg.name.clone(),
                failure: None,
            }),
            (RouteCheck::Fails(failure), _) => misses.push(Miss {
                index: i,
                name: cfg.name.clone(),
                failure: Some(failure),
            }),
        }
    }
    // Nearest first: routes that accept it but lose on precedence, then those that
    // failed latest (query, headers, method, path, host); file order among equals.
    misses.sort_by_key(|m| {
        (
            std::cmp::Reverse(m.failure.as_ref().map_or(5, Failure::depth)),
            m.index,
        )
    });
    misses.truncate(MAX_NEAR_MISSES);
    out.near_misses = misses;

    let Some(found) = found else {
        out.plugins = steps(rt.global_chain.plugins(), |_| Scope::Global);
        return Ok(out);
    };
    let (Some(route), Some(cfg)) = (
        rt.routes.get(found.route),
        rt.config.routes.get(found.route),
    ) else {
        return Ok(out);
    };

    // The chain, with the consumer's plugins when asked.
    out.plugins = route_chain(rt, found.route);
    if let Some(reference) = &req.consumer {
        match rt.consumers.find(reference) {
            None => out.consumer_note = Some(format!("no consumer {reference:?}")),
            Some(consumer) => {
                let base = route.chain.plugins();
                let own = rt.consumer_plugins.get(&consumer.id);
                let auth = base.iter().position(|p| AUTH_PLUGINS.contains(&&*p.name));
                match (own, auth) {
                    (None, _) => {
                        out.consumer_note = Some(format!(
                            "consumer {} has no plugins of its own",
                            consumer.id
                        ))
                    }
                    (Some(_), None) => {
                        out.consumer_note = Some(format!(
                        "no authentication plugin on route {}: consumer {}'s plugins cannot apply",
                        cfg.name, consumer.id
                    ))
                    }
                    (Some(own), Some(at)) => {
                        let resolved = resolve_for_consumer(base, &base[..=at], own);
                        out.plugins = steps(&resolved, |p| {
                            if own.iter().any(|s| {
                                s.name == p.name
                                    && s.instance.as_ref().is_some_and(|i| {
                                        std::sync::Arc::ptr_eq(&i.plugin, &p.plugin)
                                    })
                            }) {
                                Scope::Consumer
                            } else if cfg.plugins.iter().any(|c| c.name == *p.name) {
                                Scope::Route
                            } else {
                                Scope::Global
                            }
                        });
                        out.consumer_note = Some(format!(
                            "consumer {}'s plugins apply after {} identifies it",
                            consumer.id, base[at].name
                        ));
                    }
                }
            }
        }
    }

    // The upstream (the route's split draws now, as the proxy would) and the target its
    // balancer picks now.
    let mut head = RequestHeader::build(req.method.clone(), req.path.as_bytes(), None)
        .map_err(|_| ExplainError::Url(req.path.clone()))?;
    for (name, value) in &req.headers {
        let _ = head.append_header(name.clone(), value.clone());
    }
    let upstream = route
        .split
        .as_ref()
        .and_then(|s| s.pick(client_ip, &head))
        .unwrap_or(&route.upstream);
    let split: Vec<(String, u32)> = route.split.as_ref().map_or_else(Vec::new, |s| {
        let mut sides: Vec<_> = s.sides().map(|(n, w)| (n.to_string(), w)).collect();
        let rest = 100u32.saturating_sub(sides.iter().map(|(_, w)| w).sum());
        sides.insert(0, (route.upstream.name().to_string(), rest));
        sides
    });
    let selected = upstream.select(
        &SelectRequest {
            client_ip,
            header: &head,
        },
        &[],
    );
    let target = selected
        .as_ref()
        .and_then(|s| upstream.targets().get(s.index));
    out.upstream = Some(UpstreamPick {
        name: upstream.name().to_string(),
        balancer: serde_json::to_value(upstream.config().balancer)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        target: target.as_ref().map(|t| {
            (
                t.host_header().to_str().unwrap_or("").to_string(),
                t.addr().to_string(),
            )
        }),
        split,
    });
    drop(selected);

    // The path: as routed, less the matched prefix with strip_prefix.
    let mut upstream_path = path.clone();
    if cfg.strip_prefix && found.matched_len > 0 {
        upstream_path = path.get(found.matched_len..).unwrap_or("").to_string();
        if !upstream_path.starts_with('/') {
            upstream_path.insert(0, '/');
        }
    }
    if let Some(q) = &req.query {
        upstream_path.push('?');
        upstream_path.push_str(q);
    }
    out.upstream_path = Some(upstream_path);

    // The headers: the client's, with Host replaced unless preserved, then the
    // gateway's own.
    let mut headers: Vec<(String, String)> = Vec::new();
    let shown = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    for (name, value) in &req.headers {
        if name == http::header::HOST && !cfg.preserve_host {
            continue;
        }
        headers.push((name.to_string(), shown(value)));
    }
    if !cfg.preserve_host {
        let host = target.as_ref().map_or_else(
            || "(the picked target)".to_string(),
            |t| shown(t.host_header()),
        );
        headers.insert(0, ("host".into(), host));
    }
    let set = |headers: &mut Vec<(String, String)>, name: &str, value: String| {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.to_ascii_lowercase(), value));
    };
    if rt.config.proxy.forwarded_headers {
        let incoming: Vec<String> = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(shown)
            .collect();
        let mut xff = incoming.join(", ");
        if !xff.is_empty() {
            xff.push_str(", ");
        }
        xff.push_str(&req.peer.to_string());
        set(&mut headers, "x-forwarded-for", xff);
        let keep = |name: &str| peer_trusted && req.headers.contains_key(name);
        if !keep("x-forwarded-proto") {
            set(&mut headers, "x-forwarded-proto", "http".into());
        }
        if !keep("x-forwarded-host") {
            if let Some(h) = &host {
                set(&mut headers, "x-forwarded-host", h.clone());
            }
        }
        if !keep("x-forwarded-port") {
            let port = rt
                .config
                .listeners
                .first()
                .and_then(|l| l.address.parse::<std::net::SocketAddr>().ok())
                .map_or_else(
                    || "(the listener's port)".to_string(),
                    |a| a.port().to_string(),
                );
            set(&mut headers, "x-forwarded-port", port);
        }
        set(&mut headers, "x-real-ip", client_ip.to_string());
    }
    let id_header = rt.config.proxy.request_id_header.to_ascii_lowercase();
    let id = rt.identity.request_id(peer_trusted, &req.headers);
    let kept = peer_trusted
        && req
            .headers
            .get(&id_header)
            .is_some_and(|v| v.as_bytes() == id.as_str().as_bytes());
    set(
        &mut headers,
        &id_header,
        if kept {
            id.as_str().to_string()
        } else {
            "(a new request id)".into()
        },
    );
    if let Some(via) = &rt.headers.via {
        let mut value = req
            .headers
            .get_all("via")
            .iter()
            .map(shown)
            .collect::<Vec<_>>();
        value.push(shown(via));
        set(&mut headers, "via", value.join(", "));
    }
    out.upstream_headers = headers;
    Ok(out)
}

impl Explanation {
    /// The HTTP status the client would get from the gateway itself (400 refused, 404
    /// no route, 503 no healthy target), or None when the request is proxied.
    pub fn gateway_status(&self) -> Option<u16> {
        if self.refused.is_some() {
            Some(400)
        } else if self.matched.is_none() {
            Some(404)
        } else if self.upstream.as_ref().is_some_and(|u| u.target.is_none()) {
            Some(503)
        } else {
            None
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "request": {
                "method": self.method,
                "host": self.host,
                "path": self.path,
                "query": self.query,
                "client_ip": self.client_ip.to_string(),
            },
            "refused": self.refused,
            "gateway_status": self.gateway_status(),
            "route": self.matched.as_ref().map(|m| json!({
                "index": m.index,
                "name": m.name,
                "host": { "kind": m.host.kind(), "pattern": match &m.host {
                    HostFit::Exact(h) | HostFit::Wildcard(h) => Some(h.as_str()),
                    HostFit::Any => None,
                }},
                "path": { "kind": m.path.kind(), "pattern": m.path.pattern() },
                "weight": m.weight.conditions(),
                "precedence": precedence(m),
            })),
            "near_misses": self.near_misses.iter().map(|m| json!({
                "index": m.index,
                "name": m.name,
                "failed": m.failure.as_ref().map(Failure::condition),
                "reason": match &m.failure {
                    Some(f) => f.to_string(),
                    None => "matches too, but comes after the chosen route in precedence".to_string(),
                },
            })).collect::<Vec<_>>(),
            "plugins": self.plugins.iter().map(PluginStep::to_json).collect::<Vec<_>>(),
            "consumer": self.consumer_note,
            "upstream": self.upstream.as_ref().map(|u| json!({
                "name": u.name,
                "balancer": u.balancer,
                "target": u.target.as_ref().map(|(t, a)| json!({ "target": t, "address": a })),
                "split": u.split.iter().map(|(n, w)| json!({ "upstream": n, "weight": w })).collect::<Vec<_>>(),
            })),
            "upstream_request": self.upstream_path.as_ref().map(|p| json!({
                "path": p,
                "headers": self.upstream_headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            })),
        })
    }
}

/// Why the matched route wins, in the router's precedence order.
fn precedence(m: &Matched) -> String {
    let tier = match m.host {
        HostFit::Exact(_) => "host tier 1 of 3 (exact hosts)",
        HostFit::Wildcard(_) => "host tier 2 of 3 (wildcard hosts)",
        HostFit::Any => "host tier 3 of 3 (routes without hosts)",
    };
    let path = match m.path {
        PathFit::Exact(_) => "an exact path (tried first)",
        PathFit::Prefix(_) | PathFit::Any => "the longest matching prefix (after exact paths)",
        PathFit::Regex(_) => "the first matching regex (after exact paths and prefixes)",
    };
    format!(
        "{tier}; {path}; weight {} ({}) among routes with the same host and path, ranked by method list, then header conditions, then query conditions; then file order (routes[{}])",
        m.weight.conditions(), m.weight, m.index
    )
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        let _ = write!(s, "{} {}", self.method, self.path);
        if let Some(q) = &self.query {
            let _ = write!(s, "?{q}");
        }
        let _ = writeln!(
            s,
            "  (host {}, client {})",
            self.host.as_deref().unwrap_or("none"),
            self.client_ip
        );
        if let Some(r) = &self.refused {
            let _ = writeln!(s, "\nrefused before routing: {r}");
            return f.write_str(&s);
        }
        match &self.matched {
            Some(m) => {
                let _ = writeln!(s, "\nroute: {} (routes[{}])", m.name, m.index);
                let _ = writeln!(s, "  host: {}", m.host);
                let _ = writeln!(s, "  path: {}", m.path);
                let _ = writeln!(s, "  why:  {}", precedence(m));
            }
            None => {
                let _ = writeln!(s, "\nno route matches: the gateway answers 404");
            }
        }
        if !self.near_misses.is_empty() {
            let _ = writeln!(s, "\nnearest routes that do not serve it:");
            for m in &self.near_misses {
                let reason = match &m.failure {
                    Some(f) => f.to_string(),
                    None => "matches too, but comes after the chosen route in precedence".into(),
                };
                let _ = writeln!(s, "  {} (routes[{}]): {reason}", m.name, m.index);
            }
        }
        let _ = writeln!(s, "\nplugins, in order:");
        if self.plugins.is_empty() {
            let _ = writeln!(s, "  (none)");
        }
        for (i, p) in self.plugins.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {}. {} (priority {}, {})",
                i + 1,
                p.name,
                p.priority,
                p.scope.as_str()
            );
        }
        if let Some(note) = &self.consumer_note {
            let _ = writeln!(s, "  {note}");
        }
        if let Some(u) = &self.upstream {
            let _ = writeln!(s, "\nupstream: {} ({})", u.name, u.balancer);
            if !u.split.is_empty() {
                let shares: Vec<String> =
                    u.split.iter().map(|(n, w)| format!("{n} {w}%")).collect();
                let _ = writeln!(
                    s,
                    "  split: {} (this request drew {})",
                    shares.join(", "),
                    u.name
                );
            }
            match &u.target {
                Some((t, a)) => {
                    let _ = writeln!(s, "  target now: {t} ({a})");
                }
                None => {
                    let _ = writeln!(s, "  no healthy target: the gateway answers 503");
                }
            }
        }
        if let Some(p) = &self.upstream_path {
            let _ = writeln!(s, "\nupstream request: {} {p}", self.method);
            for (n, v) in &self.upstream_headers {
                let _ = writeln!(s, "  {n}: {v}");
            }
            let _ = writeln!(
                s,
                "\n(plugins do not run here: what they add, remove or answer is not shown)"
            );
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  - {name: one, targets: [127.0.0.1:9001]}
  - {name: two, targets: [127.0.0.1:9002]}
plugins:
  - {name: rate-limiting, config: {minute: 100}}
routes:
  - name: users
    hosts: [api.example.com]
    paths: [/v1/users]
    strip_prefix: true
    upstream: one
    plugins:
      - {name: key-auth}
  - name: users-v2
    hosts: [api.example.com]
    paths: [/v1/users]
    headers: [{name: x-version, exact: '2'}]
    upstream: two
  - name: wild
    hosts: ['*.example.com']
    upstream: two
  - name: static
    paths: [{exact: /health}]
    preserve_host: true
    upstream: two
consumers:
  - username: alice
    keyauth_credentials: [{key: k}]
    plugins:
      - {name: rate-limiting, config: {minute: 5}}
";

    fn runtime() -> Runtime {
        let loaded = crate::config::load_str(YAML).expect("parses");
        Runtime::build(&loaded, &pingway_plugins::registry(), None).expect("builds")
    }

    fn explain_url(method: &str, url: &str, headers: &[&str]) -> Explanation {
        let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
        let req = ExplainRequest::new(method, url, &headers).expect("a valid request");
        explain(&runtime(), &req).expect("explained")
    }

    #[test]
    fn names_the_route_its_reasons_and_the_nearest_misses() {
        let e = explain_url("GET", "http://API.example.com:8080/v1/users/42?q=1", &[]);
        let m = e.matched.as_ref().expect("a route");
        assert_eq!(m.name, "users");
        assert_eq!(m.host, HostFit::Exact("api.example.com".into()));
        assert_eq!(m.path, PathFit::Prefix("/v1/users".into()));
        // users-v2 failed last (its header), then wild accepts it but ranks lower, ...
        assert_eq!(e.near_misses[0].name, "wild");
        assert!(e.near_misses[0].failure.is_none());
        assert_eq!(e.near_misses[1].name, "users-v2");
        assert!(matches!(
            e.near_misses[1].failure,
            Some(Failure::Header { index: 0, .. })
        ));
        assert_eq!(e.near_misses[2].name, "static");
        assert_eq!(
            e.near_misses[2].failure.as_ref().map(Failure::condition),
            Some("path")
        );
        // The chain: route key-auth before global rate-limiting.
        let chain: Vec<(&str, Scope)> = e
            .plugins
            .iter()
            .map(|p| (p.name.as_str(), p.scope))
            .collect();
        assert_eq!(
            chain,
            [("key-auth", Scope::Route), ("rate-limiting", Scope::Global)]
        );
        // strip_prefix, the target's Host, the query kept.
        assert_eq!(e.upstream_path.as_deref(), Some("/42?q=1"));
        let header = |n: &str| {
            e.upstream_headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("host"), Some("127.0.0.1:9001"));
        assert_eq!(header("x-forwarded-host"), Some("API.example.com:8080"));
        assert_eq!(header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(header("x-forwarded-port"), Some("8080"));
        let u = e.upstream.as_ref().expect("an upstream");
        assert_eq!(u.name, "one");
        assert_eq!(
            u.target.as_ref().map(|t| t.1.as_str()),
            Some("127.0.0.1:9001")
        );
        assert_eq!(e.gateway_status(), None);
        let text = e.to_string();
        assert!(text.contains("route: users (routes[0])"), "{text}");
        assert!(text.contains("1. key-auth (priority"), "{text}");
    }

    #[test]
    fn a_header_condition_wins_and_a_wildcard_serves_other_hosts() {
        let e = explain_url(
            "GET",
            "/v1/users",
            &["Host: api.example.com", "X-Version: 2"],
        );
        assert_eq!(
            e.matched.as_ref().map(|m| m.name.as_str()),
            Some("users-v2")
        );
        assert_eq!(e.matched.as_ref().map(|m| m.weight.conditions()), Some(1));
        let e = explain_url("GET", "http://www.example.com/v1/users", &[]);
        let m = e.matched.as_ref().expect("a route");
        assert_eq!(m.name, "wild");
        assert_eq!(m.host, HostFit::Wildcard("*.example.com".into()));
        assert_eq!(m.path, PathFit::Any);
    }

    #[test]
    fn no_route_gives_404_and_the_global_chain() {
        let e = explain_url("GET", "http://other.test/nothing", &[]);
        assert!(e.matched.is_none());
        assert_eq!(e.gateway_status(), Some(404));
        assert_eq!(e.plugins.len(), 1);
        assert!(e.near_misses.iter().any(
            |m| m.name == "users" && m.failure.as_ref().map(Failure::condition) == Some("host")
        ));
        assert!(e.to_string().contains("no route matches"));
    }

    #[test]
    fn preserve_host_and_consumer_plugins() {
        let e = explain_url("GET", "http://client.test/health", &[]);
        let host = e.upstream_headers.iter().find(|(k, _)| k == "host");
        assert_eq!(host.map(|(_, v)| v.as_str()), Some("client.test"));
        let req = ExplainRequest::new("GET", "http://api.example.com/v1/users", &[])
            .unwrap()
            .as_consumer(Some("alice".into()));
        let e = explain(&runtime(), &req).unwrap();
        let chain: Vec<(&str, Scope)> = e
            .plugins
            .iter()
            .map(|p| (p.name.as_str(), p.scope))
            .collect();
        assert_eq!(
            chain,
            [
                ("key-auth", Scope::Route),
                ("rate-limiting", Scope::Consumer)
            ]
        );
    }

    #[test]
    fn requests_are_checked() {
        assert!(ExplainRequest::new("G T", "/", &[]).is_err());
        assert!(ExplainRequest::new("GET", "/", &["no colon".into()]).is_err());
        let many: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1")).collect();
        assert!(matches!(
            ExplainRequest::new("GET", "/", &many),
            Err(ExplainError::TooManyHeaders)
        ));
        let q = ExplainRequest::from_query("url=%2Fa%2Fb&header=X-A%3A+1&method=post").unwrap();
        assert_eq!(q.method, Method::POST);
        assert_eq!(q.headers["x-a"], "1");
        assert!(ExplainRequest::from_query("url=/&bogus=1").is_err());
        assert!(ExplainRequest::from_query("url=%zz").is_err());
    }

    #[test]
    fn query_conditions_decide_and_a_failed_one_is_the_nearest_miss() {
        let yaml = "
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  - {name: one, targets: [127.0.0.1:9001]}
routes:
  - name: plain
    paths: [/api]
    upstream: one
  - name: v2
    paths: [/api]
    query_params: [{name: v, exact: '2'}]
    upstream: one
  - name: get
    paths: [/api]
    methods: [GET]
    upstream: one
";
        let loaded = crate::config::load_str(yaml).expect("parses");
        let rt = Runtime::build(&loaded, &pingway_plugins::registry(), None).expect("builds");
        let run = |method: &str, url: &str| {
            let req = ExplainRequest::new(method, url, &[]).expect("a valid request");
            explain(&rt, &req).expect("explained")
        };
        let e = run("POST", "/api/x?v=2");
        let m = e.matched.as_ref().expect("a route");
        assert_eq!(m.name, "v2");
        assert_eq!(m.weight.query_params, 1);
        assert!(
            precedence(m).contains("1 query condition"),
            "{}",
            precedence(m)
        );
        // A method list outranks a query condition.
        assert_eq!(
            run("GET", "/api/x?v=2").matched.map(|m| m.name),
            Some("get".into())
        );
        let e = run("POST", "/api/x?v=3");
        assert_eq!(e.matched.as_ref().map(|m| m.name.as_str()), Some("plain"));
        let miss = &e.near_misses[0];
        assert_eq!(miss.name, "v2");
        assert_eq!(miss.failure.as_ref().map(Failure::condition), Some("query"));
        assert!(
            e.to_string()
                .contains("query condition query_params[0]: v == \"2\" does not hold"),
            "{e}"
        );
    }
}
