//! A generated route table with mixed hosts, prefixes, exact paths and a few regexes,
//! and requests ("probes") spread over it, each aimed at one known route.
//!
//! The mix, for `n` routes (percentages of `n`):
//!
//! | kind | host | path | share |
//! |---|---|---|---|
//! | `HostPrefix` | exact `svc<h>.bench.local` (100 hosts) | prefix `/api/r<i>` | ~60% |
//! | `WildcardPrefix` | `*.wild<w>.bench.local` (50 domains) | prefix `/w/r<i>` | ~15% |
//! | `AnyPrefix` | any | prefix `/any/r<i>/v1` (two elements) | ~15% |
//! | `Exact` | any | exact `/exact/r<i>` | ~10% |
//! | `Regex` | any | regex `/re<j>/[0-9]+/items` | 10 routes |
//!
//! The probes never depend on precedence between routes: each matches exactly one route
//! whatever the matcher's tie-breaking, so nginx's and HAProxy's equivalents serve the
//! same routes as Pingway's.

use std::fmt::Write as _;

/// Exact hosts used by `HostPrefix` routes.
pub const HOSTS: usize = 100;
/// Wildcard domains used by `WildcardPrefix` routes.
pub const WILDCARDS: usize = 50;
/// Regex routes (always this many, whatever the table size, as long as it is ≥ 100).
pub const REGEXES: usize = 10;
/// The host sent with probes for routes that have no host.
pub const ANY_HOST: &str = "bench.local";

/// What kind of route a generated route is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exact host, path prefix.
    HostPrefix,
    /// Wildcard host, path prefix.
    WildcardPrefix,
    /// No host, two-element path prefix.
    AnyPrefix,
    /// No host, exact path.
    Exact,
    /// No host, anchored regex.
    Regex,
}

/// One generated route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Unique name (`r<i>`).
    pub name: String,
    /// The kind.
    pub kind: Kind,
    /// `svc3.bench.local`, `*.wild7.bench.local`, or `None` for any host.
    pub host: Option<String>,
    /// The prefix, exact path or regex (unanchored text; anchored at the start by the
    /// matchers).
    pub path: String,
}

/// One request aimed at one route.
#[derive(Clone, Debug)]
pub struct Probe {
    /// `Host` header.
    pub host: String,
    /// Request path.
    pub path: String,
    /// Index of the route it must match.
    pub route: usize,
}

/// A route table and the requests spread over it.
#[derive(Clone, Debug)]
pub struct RouteSet {
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// Requests, in the order a load generator should cycle through them.
    pub probes: Vec<Probe>,
}

/// The kind of route `i` of `n`: regexes spread evenly, then the shares above.
fn kind_of(i: usize, n: usize) -> Kind {
    let regex_every = (n / REGEXES).max(1);
    if n >= 100 && i % regex_every == regex_every / 2 {
        return Kind::Regex;
    }
    match i % 20 {
        0..=11 => Kind::HostPrefix,
        12..=14 => Kind::WildcardPrefix,
        15..=17 => Kind::AnyPrefix,
        _ => Kind::Exact,
    }
}

/// Generates `n` routes and `probes` requests spread over them (a fixed stride through
/// the table, so every kind and every part of the table is hit, deterministically).
pub fn generate(n: usize, probes: usize) -> RouteSet {
    let mut regex_no = 0;
    let routes: Vec<Route> = (0..n)
        .map(|i| {
            let kind = kind_of(i, n);
            let (host, path) = match kind {
                Kind::HostPrefix => (
                    Some(format!("svc{}.bench.local", i % HOSTS)),
                    format!("/api/r{i}"),
                ),
                Kind::WildcardPrefix => (
                    Some(format!("*.wild{}.bench.local", i % WILDCARDS)),
                    format!("/w/r{i}"),
                ),
                Kind::AnyPrefix => (None, format!("/any/r{i}/v1")),
                Kind::Exact => (None, format!("/exact/r{i}")),
                Kind::Regex => {
                    regex_no += 1;
                    (None, format!("/re{}/[0-9]+/items", regex_no - 1))
                }
            };
            Route {
                name: format!("r{i}"),
                kind,
                host,
                path,
            }
        })
        .collect();
    // A stride coprime with n visits the table in a scattered order.
    let stride = [7919usize, 7907, 7901, 7883]
        .into_iter()
        .find(|s| n % s != 0)
        .unwrap_or(1);
    let probes = (0..probes.min(n.max(1)))
        .filter(|_| n > 0)
        .map(|k| {
            let i = (k * stride) % n;
            let r = &routes[i];
            let (host, path) = match r.kind {
                Kind::HostPrefix => (
                    r.host.clone().unwrap_or_default(),
                    format!("{}/item/{k}", r.path),
                ),
                Kind::WildcardPrefix => (
                    r.host
                        .as_deref()
                        .unwrap_or_default()
                        .replacen('*', &format!("h{k}"), 1),
                    format!("{}/item/{k}", r.path),
                ),
                Kind::AnyPrefix => (ANY_HOST.to_string(), format!("{}/item/{k}", r.path)),
                Kind::Exact => (ANY_HOST.to_string(), r.path.clone()),
                Kind::Regex => {
                    let j = r
                        .path
                        .trim_start_matches("/re")
                        .split('/')
                        .next()
                        .unwrap_or("0");
                    (ANY_HOST.to_string(), format!("/re{j}/{k}/items"))
                }
            };
            Probe {
                host,
                path,
                route: i,
            }
        })
        .collect();
    RouteSet { routes, probes }
}

/// Quotes a YAML scalar (double-quoted style; our strings have no quotes or backslashes
/// except regex backslashes, which are escaped).
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl RouteSet {
    /// The `routes:` section of a Pingway configuration, every route to `upstream`,
    /// each route with the given `plugins` block (already indented YAML list items, or
    /// empty).
    pub fn pingway_routes_yaml(&self, upstream: &str) -> String {
        let mut out = String::with_capacity(self.routes.len() * 80);
        out.push_str("routes:\n");
        for r in &self.routes {
            let _ = writeln!(out, "  - name: {}", r.name);
            if let Some(h) = &r.host {
                let _ = writeln!(out, "    hosts: [{}]", q(h));
            }
            match r.kind {
                Kind::Exact => {
                    let _ = writeln!(out, "    paths: [{{exact: {}}}]", q(&r.path));
                }
                Kind::Regex => {
                    let _ = writeln!(out, "    paths: [{{regex: {}}}]", q(&r.path));
                }
                _ => {
                    let _ = writeln!(out, "    paths: [{}]", q(&r.path));
                }
            }
            let _ = writeln!(out, "    upstream: {upstream}");
        }
        out
    }

    /// A whole Pingway configuration: one listener, one upstream `up`, these routes, one
    /// worker thread without work stealing.
    pub fn pingway_yaml(&self, listen: &str, upstream_addr: &str) -> String {
        format!(
            "server: {{threads: 1, work_stealing: false}}\n\
             listeners:\n  - address: {}\n\
             upstreams:\n  - name: up\n    targets: [{}]\n{}",
            q(listen),
            q(upstream_addr),
            self.pingway_routes_yaml("up")
        )
    }

    /// A wrk Lua script body that cycles through the probes (requests pre-formatted in
    /// `init`, so the per-request Lua cost is a table index).
    pub fn wrk_lua(&self) -> String {
        let mut out = String::with_capacity(self.probes.len() * 60 + 400);
        out.push_str("local probes = {\n");
        for p in &self.probes {
            let _ = writeln!(out, "  {{{:?}, {:?}}},", p.host, p.path);
        }
        out.push_str(
            "}\nlocal reqs = {}\nlocal n = 0\nlocal i = 0\n\
             init = function(args)\n  for _, p in ipairs(probes) do\n    n = n + 1\n    \
             reqs[n] = wrk.format(\"GET\", p[2], {[\"Host\"] = p[1]})\n  end\nend\n\
             request = function()\n  i = i % n + 1\n  return reqs[i]\nend\n",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingway::router::{normalize_path, RouteRequest, Router};

    #[test]
    fn the_mix_has_every_kind_and_ten_regexes() {
        let set = generate(10_000, 1_000);
        assert_eq!(set.routes.len(), 10_000);
        let count = |k| set.routes.iter().filter(|r| r.kind == k).count();
        assert_eq!(count(Kind::Regex), REGEXES);
        for k in [
            Kind::HostPrefix,
            Kind::WildcardPrefix,
            Kind::AnyPrefix,
            Kind::Exact,
        ] {
            assert!(count(k) > 500, "{k:?}: {}", count(k));
        }
        assert_eq!(set.probes.len(), 1_000);
        for k in [
            Kind::HostPrefix,
            Kind::WildcardPrefix,
            Kind::AnyPrefix,
            Kind::Exact,
            Kind::Regex,
        ] {
            assert!(
                set.probes.iter().any(|p| set.routes[p.route].kind == k),
                "{k:?}"
            );
        }
    }

    #[test]
    fn pingway_routes_every_probe_to_its_route() {
        let set = generate(10_000, 1_000);
        let loaded = pingway::config::load_str(&set.pingway_yaml("127.0.0.1:1", "127.0.0.1:2"))
            .expect("generated YAML loads");
        let router = Router::build(&loaded.config.routes).expect("routes compile");
        let headers = http::HeaderMap::new();
        for p in &set.probes {
            let path = normalize_path(&p.path);
            let found = router.find(&RouteRequest {
                host: Some(&p.host),
                path: &path,
                method: &http::Method::GET,
                headers: &headers,
                query: None,
            });
            assert_eq!(
                found.map(|m| m.route),
                Some(p.route),
                "{} {}",
                p.host,
                p.path
            );
        }
    }
}
