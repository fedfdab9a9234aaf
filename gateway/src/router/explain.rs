//! Introspection: why one route does or does not accept a request, told with the
//! router's own compiled conditions (for `pingway explain` and the admin API). Not on
//! the request path: hosts and paths of the route asked about are compiled again, with
//! the same code the table is built with.

use std::fmt;

use crate::config::{RouteConfig, WildcardLabels};

use super::host::{self, HostPattern};
use super::path::{prefix_keys, PathCondition};
use super::query::LazyQuery;
use super::{RouteRequest, Router, Specificity};

/// How a route's host condition accepted the request (the host tier it is found in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFit {
    /// An exact host of the route equals the request's.
    Exact(String),
    /// A wildcard host of the route (`*.suffix` or `prefix.*`) covers the request's.
    Wildcard(String),
    /// The route has no hosts: it matches any host (the last tier).
    Any,
}

/// Which path condition of a route accepted the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathFit {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with this prefix (as configured, normalized; `/` for the root).
    Prefix(String),
    /// This regular expression matched the start of the path.
    Regex(String),
    /// The route has no paths: it matches every path.
    Any,
}

/// The first condition of a route that a request fails, in the order the router checks
/// them: host, path, method, headers, query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No host of the route matches the request's host (or the request has none).
    Host {
        /// The route's hosts.
        hosts: Vec<String>,
        /// The request's host, reduced as the router reduces it.
        request: Option<String>,
    },
    /// No path condition of the route matches.
    Path {
        /// The route's path conditions, written as `kind pattern`.
        paths: Vec<String>,
    },
    /// The method is not one of the route's.
    Method {
        /// The route's methods.
        allowed: Vec<String>,
    },
    /// A header condition does not hold.
    Header {
        /// Its index in the route's `headers`.
        index: usize,
        /// What the condition asks, such as `x-version == "2"`.
        condition: String,
    },
    /// A query parameter condition does not hold.
    Query {
        /// Its index in the route's `query_params`.
        index: usize,
        /// What the condition asks, such as `v == "2"`.
        condition: String,
    },
}

/// What the router makes of one route for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteCheck {
    /// Every condition holds.
    Accepts {
        /// The host condition that held.
        host: HostFit,
        /// The best path condition that held (exact, then the longest prefix, then the
        /// first regex, as in the table).
        path: PathFit,
        /// The route's rank among routes with the same host and path condition: a method
        /// list, then more header conditions, then more query conditions are tried first.
        weight: Specificity,
    },
    /// This condition failed first.
    Fails(Failure),
}

impl Router {
    /// Checks the route at `index`, configured as `cfg`, against `req` (whose path is
    /// already normalized), saying which condition holds or fails first.
    pub fn check_route(
        &self,
        index: usize,
        cfg: &RouteConfig,
        req: &RouteRequest<'_>,
    ) -> RouteCheck {
        let request_host = req.host.map(|h| host::request_host(h).into_owned());
        let host = match host_fit(cfg, request_host.as_deref()) {
            Some(fit) => fit,
            None => {
                return RouteCheck::Fails(Failure::Host {
                    hosts: cfg.hosts.clone(),
                    request: request_host,
                })
            }
        };
        let Some(path) = path_fit(cfg, req.path) else {
            return RouteCheck::Fails(Failure::Path {
                paths: cfg
                    .paths
                    .iter()
                    .map(|p| PathFit::from_config(p).to_string())
                    .collect(),
            });
        };
        let Some(conditions) = self.conditions.get(index) else {
            return RouteCheck::Fails(Failure::Method {
                allowed: Vec::new(),
            });
        };
        let query = LazyQuery::new(req.query);
        if let Some(f) = conditions.first_failure(req.method, req.headers, &query) {
            return RouteCheck::Fails(f);
        }
        RouteCheck::Accepts {
            host,
            path,
            weight: conditions.weight(),
        }
    }
}

fn host_fit(cfg: &RouteConfig, request: Option<&str>) -> Option<HostFit> {
    if cfg.hosts.is_empty() {
        return Some(HostFit::Any);
    }
    let request = request?;
    let patterns: Vec<(HostPattern, &String)> = cfg
        .hosts
        .iter()
        .filter_map(|raw| host::parse_host(raw).ok().map(|p| (p, raw)))
        .collect();
    let exact = patterns
        .iter()
        .find(|(p, _)| matches!(p, HostPattern::Exact(h) if h == request));
    if let Some((_, raw)) = exact {
        return Some(HostFit::Exact((*raw).clone()));
    }
    // The narrowest wildcard that covers the request's host, as the tables try them:
    // leftmost ones by the host's suffixes, then rightmost ones by its prefixes, only the
    // first (one label short of the host) of each when the route's `*` is one label.
    let keys = if cfg.wildcard_labels == WildcardLabels::One {
        1
    } else {
        usize::MAX
    };
    let leftmost = host::wildcard_suffixes(request).map(|(key, _)| (key, true));
    let rightmost = host::wildcard_prefixes(request).map(|(key, _)| (key, false));
    leftmost
        .take(keys)
        .chain(rightmost.take(keys))
        .find_map(|(key, leftmost)| {
            patterns.iter().find(|(p, _)| match p {
                HostPattern::Wildcard(s) => leftmost && s == key,
                HostPattern::WildcardEnd(s) => !leftmost && s == key,
                HostPattern::Exact(_) => false,
            })
        })
        .map(|(_, raw)| HostFit::Wildcard((*raw).clone()))
}

fn path_fit(cfg: &RouteConfig, path: &str) -> Option<PathFit> {
    if cfg.paths.is_empty() {
        return Some(PathFit::Any);
    }
    let compiled: Vec<(PathCondition, &crate::config::PathMatch)> = cfg
        .paths
        .iter()
        .filter_map(|m| PathCondition::compile(m).ok().map(|c| (c, m)))
        .collect();
    for (c, m) in &compiled {
        if matches!(c, PathCondition::Exact(p) if p == path) {
            return Some(PathFit::from_config(m));
        }
    }
    for key in prefix_keys(path) {
        for (c, m) in &compiled {
            if matches!(c, PathCondition::Prefix(p) if p == key) {
                return Some(PathFit::from_config(m));
            }
        }
    }
    compiled.iter().find_map(|(c, m)| match c {
        PathCondition::Regex { regex, .. } if regex.is_match(path) => Some(PathFit::from_config(m)),
        _ => None,
    })
}

impl PathFit {
    fn from_config(m: &crate::config::PathMatch) -> PathFit {
        match m {
            crate::config::PathMatch::Exact(p) => PathFit::Exact(p.clone()),
            crate::config::PathMatch::Prefix(p) => PathFit::Prefix(p.clone()),
            crate::config::PathMatch::Regex(p) => PathFit::Regex(p.clone()),
        }
    }

    /// The kind of condition: `exact`, `prefix`, `regex` or `any`.
    pub fn kind(&self) -> &'static str {
        match self {
            PathFit::Exact(_) => "exact",
            PathFit::Prefix(_) => "prefix",
            PathFit::Regex(_) => "regex",
            PathFit::Any => "any",
        }
    }

    /// The pattern as configured (none for a route without paths).
    pub fn pattern(&self) -> Option<&str> {
        match self {
            PathFit::Exact(p) | PathFit::Prefix(p) | PathFit::Regex(p) => Some(p),
            PathFit::Any => None,
        }
    }
}

impl fmt::Display for PathFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pattern() {
            Some(p) => write!(f, "{} {p}", self.kind()),
            None => f.write_str("any path"),
        }
    }
}

impl HostFit {
    /// The host tier: `exact`, `wildcard` or `any`.
    pub fn kind(&self) -> &'static str {
        match self {
            HostFit::Exact(_) => "exact",
            HostFit::Wildcard(_) => "wildcard",
            HostFit::Any => "any",
        }
    }
}

impl fmt::Display for HostFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostFit::Exact(h) => write!(f, "exact host {h}"),
            HostFit::Wildcard(h) => write!(f, "wildcard host {h}"),
            HostFit::Any => f.write_str("any host (the route has no hosts)"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Host { hosts, request } => write!(
                f,
                "host: {} is not one of [{}]",
                request.as_deref().unwrap_or("(no Host header)"),
                hosts.join(", ")
            ),
            Failure::Path { paths } => write!(f, "path: none of [{}] matches", paths.join(", ")),
            Failure::Method { allowed } => {
                write!(f, "method: not one of [{}]", allowed.join(", "))
            }
            Failure::Header { index, condition } => {
                write!(
                    f,
                    "header condition headers[{index}]: {condition} does not hold"
                )
            }
            Failure::Query { index, condition } => {
                write!(
                    f,
                    "query condition query_params[{index}]: {condition} does not hold"
                )
            }
        }
    }
}

impl Failure {
    /// Which condition failed: `host`, `path`, `method`, `header` or `query`.
    pub fn condition(&self) -> &'static str {
        match self {
            Failure::Host { .. } => "host",
            Failure::Path { .. } => "path",
            Failure::Method { .. } => "method",
            Failure::Header { .. } => "header",
            Failure::Query { .. } => "query",
        }
    }

    /// How far the request got: 0 (host) to 4 (query). Routes that failed later are
    /// nearer misses.
    pub fn depth(&self) -> u8 {
        match self {
            Failure::Host { .. } => 0,
            Failure::Path { .. } => 1,
            Failure::Method { .. } => 2,
            Failure::Header { .. } => 3,
            Failure::Query { .. } => 4,
        }
    }
}
