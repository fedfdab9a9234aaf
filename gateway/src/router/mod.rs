//! The compiled route table: which route serves a request.
//!
//! [`Router::build`] compiles the `routes:` of the configuration once; [`Router::find`]
//! picks the best route for a request without scanning the routes.
//!
//! # Matching
//!
//! A route matches when its host, path, method, header and query conditions all hold. Paths
//! follow Kubernetes Ingress rather than Kong where the two differ:
//!
//! - **Host**: exact (case-insensitive), or `*.example.com`, which matches one or more
//!   labels before `example.com` (`a.example.com` and `a.b.example.com`, not
//!   `example.com`), as Kong, nginx, Envoy and the Gateway API read it; a route with
//!   `wildcard_labels: one` reads it as a Kubernetes Ingress does, exactly one label.
//!   Kong's rightmost wildcard `example.*` is the mirror image (`example.com`,
//!   `example.co.uk`). A route without hosts matches any host. The request's port is
//!   ignored.
//! - **Path** (case-sensitive, against the path as [`normalize_path`] leaves it):
//!   `exact`; `prefix`, matched element by element (`/foo` matches `/foo`, `/foo/` and
//!   `/foo/bar`, not `/foobar`; `/foo/` is the same as `/foo`); `regex`, anchored at the
//!   start of the path. A route without paths matches every path.
//! - **Methods**: any of them; none listed means any method.
//! - **Headers**: every condition holds.
//! - **Query parameters**: every condition holds. Names and values are compared
//!   percent-decoded (`?a=b%20c` has `a` = `b c`; `+` is not a space), names
//!   case-sensitively; a repeated parameter counts by its first value; only the first
//!   [`MAX_QUERY_PARAMS`] parameters are looked at (the `query` module says how).
//!
//! # Precedence
//!
//! 1. Host tier: an exact host, then leftmost wildcard hosts from the narrowest (the
//!    longest suffix; at the same suffix a one-label wildcard before one of any depth),
//!    then rightmost ones the same way (the longest prefix first), then routes without
//!    hosts.
//! 2. Within a tier: an exact path, then prefixes from the longest, then regexes in
//!    file order.
//! 3. Among routes with the same host and path condition, as the Gateway API ranks
//!    HTTPRoute matches: a route with a method list first, then more header conditions,
//!    then more query conditions ([`Specificity`]), then file order.
//!
//! A candidate whose method, headers or query do not match gives way to the next one in this
//! order, across tiers too: a request for `api.example.com` that no `api.example.com`
//! route accepts can still be served by a `*.example.com` route or a route without hosts.
//!
//! # Cost
//!
//! A lookup is one hash lookup per host tier, one for the exact path, at most one per
//! path element for prefixes, and the tier's regexes only when nothing else matched. It
//! does not allocate unless the `Host` header has uppercase letters. The query is not
//! read unless a candidate route has a query condition; then it is parsed once for the
//! request (one allocation, bounded by [`MAX_QUERY_PARAMS`] parameters).

mod conditions;
mod explain;
mod host;
mod key_hash;
mod normalize;
mod path;
mod query;
mod table;
mod wildcard;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_large;
#[cfg(test)]
mod tests_normalize_props;
#[cfg(test)]
mod tests_query;

use crate::config::{Diagnostic, PathMatch, RouteConfig, WildcardLabels};

use self::conditions::Conditions;
use self::host::HostPattern;
use self::key_hash::KeyMap;
use self::path::PathCondition;
use self::query::LazyQuery;
use self::table::PathTable;
use self::wildcard::WildcardTables;

pub use self::conditions::Specificity;
pub use self::explain::{Failure, HostFit, PathFit, RouteCheck};
pub use self::normalize::normalize_path;
pub use self::query::{truncated_queries, MAX_QUERY_PARAMS};

/// The compiled route table. Immutable; share it (for instance in an `Arc`) and rebuild
/// it when the configuration changes.
#[derive(Debug)]
pub struct Router {
    /// Method and header conditions, indexed by route.
    conditions: Vec<Conditions>,
    /// Routes by exact host (lowercase).
    exact_hosts: KeyMap<Box<str>, PathTable>,
    /// Routes by leftmost wildcard suffix: `*.example.com` is stored under `example.com`.
    leftmost_wildcards: WildcardTables,
    /// Routes by rightmost wildcard prefix (Kong's `example.*`, stored under `example`).
    rightmost_wildcards: WildcardTables,
    /// Routes without hosts.
    any_host: PathTable,
}

/// What the router looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// Raw Host header value (may carry a port, may be an IPv6 literal `[::1]:8080`, any
    /// case), or None.
    pub host: Option<&'a str>,
    /// The request path, already normalized by [`normalize_path`], without query string.
    pub path: &'a str,
    /// The request method.
    pub method: &'a http::Method,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The query string, without the `?` (as `http::Uri::query` gives it), or None.
    /// Read only when a candidate route has query conditions.
    pub query: Option<&'a str>,
}

/// The route chosen for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index into the `routes` slice given to [`Router::build`].
    pub route: usize,
    /// How many bytes at the start of the path the path condition matched: for a prefix
    /// match the prefix length (without a trailing slash, so stripping `/api` from
    /// `/api/users` leaves `/users`; a root prefix `/` gives 0), for exact the whole path
    /// length, for regex the match end, for a route with no path conditions 0. Used to
    /// implement `strip_prefix`.
    pub matched_len: usize,
}

impl Router {
    /// Compiles the route table. Diagnostics carry field paths such as `routes[3].paths[1]`,
    /// `routes[0].hosts[2]`, `routes[2].headers[0].regex`, `routes[1].methods[0]`,
    /// `routes[4].query_params[1].regex`, location
    /// None (the caller fills positions in from the document by path).
    pub fn build(routes: &[RouteConfig]) -> Result<Router, Vec<Diagnostic>> {
        let mut diagnostics = Vec::new();
        let mut conditions = Vec::with_capacity(routes.len());
        let mut matchers = Vec::with_capacity(routes.len());
        for (i, route) in routes.iter().enumerate() {
            pingway_plugins::pace::point();
            let base = format!("routes[{i}]");
            let mut hosts = Vec::with_capacity(route.hosts.len());
            for (j, raw) in route.hosts.iter().enumerate() {
                match host::parse_host(raw) {
                    Ok(h) => hosts.push(h),
                    Err(message) => {
                        diagnostics.push(Diagnostic::new(format!("{base}.hosts[{j}]"), message))
                    }
                }
            }
            let mut paths = Vec::with_capacity(route.paths.len().max(1));
            for (j, m) in route.paths.iter().enumerate() {
                match PathCondition::compile(m) {
                    Ok(p) => paths.push(p),
                    Err(message) => {
                        // Point at the pattern itself when it is a `{regex: ...}`.
                        let field = match m {
                            PathMatch::Regex(_) => format!("{base}.paths[{j}].regex"),
                            _ => format!("{base}.paths[{j}]"),
                        };
                        diagnostics.push(Diagnostic::new(field, message))
                    }
                }
            }
            if route.paths.is_empty() {
                paths.push(PathCondition::any());
            }
            conditions.push(Conditions::compile(
                &route.methods,
                &route.headers,
                &route.query_params,
                &base,
                &mut diagnostics,
            ));
            matchers.push((hosts, paths));
        }
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }

        let mut router = Router {
            conditions,
            exact_hosts: KeyMap::default(),
            leftmost_wildcards: WildcardTables::default(),
            rightmost_wildcards: WildcardTables::default(),
            any_host: PathTable::default(),
        };
        for (route, (hosts, paths)) in matchers.iter().enumerate() {
            let index_under = |table: &mut PathTable| {
                paths.iter().for_each(|p| table.insert(p, route));
            };
            if hosts.is_empty() {
                index_under(&mut router.any_host);
            }
            let one_label = routes
                .get(route)
                .is_some_and(|r| r.wildcard_labels == WildcardLabels::One);
            for h in hosts {
                let table = match h {
                    HostPattern::Exact(h) => {
                        router.exact_hosts.entry(h.as_str().into()).or_default()
                    }
                    HostPattern::Wildcard(s) => router.leftmost_wildcards.entry(s, one_label),
                    HostPattern::WildcardEnd(p) => router.rightmost_wildcards.entry(p, one_label),
                };
                index_under(table);
            }
        }
        let weights: Vec<Specificity> = router.conditions.iter().map(Conditions::weight).collect();
        let tables = router.exact_hosts.values_mut();
        let tables = tables.chain(router.leftmost_wildcards.tables_mut());
        let tables = tables.chain(router.rightmost_wildcards.tables_mut());
        tables.for_each(|t| t.finish(&weights));
        router.any_host.finish(&weights);
        Ok(router)
    }

    /// The best route for a request, or None.
    pub fn find(&self, req: &RouteRequest<'_>) -> Option<RouteMatch> {
        // Parsed on first use only, by a candidate with query conditions.
        let query = LazyQuery::new(req.query);
        let accept = |route: usize| {
            self.conditions
                .get(route)
                .is_some_and(|c| c.matches(req.method, req.headers, &query))
        };
        // Without host tiers (the common single-site table) the host is not even read.
        if let Some(raw) = req.host.filter(|_| self.routes_by_host()) {
            let host = host::request_host(raw);
            let exact = self.exact_hosts.get(&*host);
            if let Some(m) = exact.and_then(|t| t.find(req.path, accept)) {
                return Some(m);
            }
            if let Some(m) = self.find_wildcard(&host, req.path, &accept) {
                return Some(m);
            }
        }
        self.any_host.find(req.path, accept)
    }

    /// The wildcard tier: leftmost wildcards by the request host's suffixes, then
    /// rightmost ones by its prefixes, each from the narrowest ([`WildcardTables::find`]).
    fn find_wildcard(
        &self,
        host: &str,
        path: &str,
        accept: &impl Fn(usize) -> bool,
    ) -> Option<RouteMatch> {
        let leftmost = &self.leftmost_wildcards;
        let rightmost = &self.rightmost_wildcards;
        leftmost
            .find(host::wildcard_suffixes(host), path, accept)
            .or_else(|| rightmost.find(host::wildcard_prefixes(host), path, accept))
    }

    /// Whether any route names hosts: without one, [`Self::find`] never reads the
    /// request's host, and a caller need not look it up.
    pub fn routes_by_host(&self) -> bool {
        !(self.exact_hosts.is_empty()
            && self.leftmost_wildcards.is_empty()
            && self.rightmost_wildcards.is_empty())
    }

    /// Number of routes compiled.
    pub fn len(&self) -> usize {
        self.conditions.len()
    }

    /// Whether there are no routes (every request finds none).
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }
}
