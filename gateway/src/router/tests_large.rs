//! A 10,000-route table checked against a naive reference that scans every route.

use std::cmp::Reverse;

use regex::Regex;

use super::tests::{
    exact, find, h_exact, h_present, header, header_map, methods, prefix, regex, route,
};
use super::*;
use crate::config::{PathMatch, WildcardLabels};

const ROUTES: usize = 10_000;
const EXACT_HOSTS: usize = 300;
const WILDCARD_ZONES: usize = 30;

fn exact_host(rng: &mut fastrand::Rng) -> String {
    format!("svc{}.example.com", rng.usize(..EXACT_HOSTS))
}

/// `/api/v1/res3/items/2` cut to a depth drawn from `depths`.
fn api_path(rng: &mut fastrand::Rng, depths: std::ops::Range<usize>) -> String {
    let depth = rng.usize(depths);
    let mut p = format!("/api/v{}", rng.usize(1..4));
    if depth > 1 {
        p += &format!("/res{}", rng.usize(..40));
    }
    if depth > 2 {
        p += "/items";
    }
    if depth > 3 {
        p += &format!("/{}", rng.usize(..5));
    }
    p
}

fn generate_routes(rng: &mut fastrand::Rng) -> Vec<RouteConfig> {
    (0..ROUTES)
        .map(|i| {
            let zone = || format!("*.zone{}.example.org", i % WILDCARD_ZONES);
            let hosts = match rng.usize(..10) {
                0..=6 => vec![exact_host(rng)],
                7 => vec![zone()],
                8 => vec![exact_host(rng), zone()],
                _ => vec![],
            };
            let mut paths: Vec<PathMatch> = (0..rng.usize(1..3))
                .filter_map(|_| match rng.usize(..20) {
                    0..=11 => Some(prefix(&api_path(rng, 1..4))),
                    12..=16 => Some(exact(&api_path(rng, 4..5))),
                    17 => Some(regex(&format!("/rx{}/[0-9]+", i))),
                    _ => None,
                })
                .collect();
            if hosts.is_empty() && paths.is_empty() {
                // No catch-all for every host, so that some requests find nothing.
                paths.push(prefix(&api_path(rng, 2..4)));
            }
            let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let mut r = route(&host_refs, paths);
            if rng.bool() {
                r.wildcard_labels = WildcardLabels::One;
            }
            r = match rng.usize(..10) {
                0 | 1 => methods(r, &["GET"]),
                2 => methods(r, &["POST", "PUT"]),
                _ => r,
            };
            if rng.usize(..10) == 0 {
                r = header(r, h_exact("x-tenant", &format!("t{}", rng.usize(..3))));
            }
            if rng.usize(..20) == 0 {
                r = header(r, h_present("x-beta", true));
            }
            r
        })
        .collect()
}

/// The reference: every (host, path) combination of every route that matches, ranked
/// by the documented precedence, best first.
struct Naive {
    routes: Vec<RouteConfig>,
    regexes: Vec<Vec<Option<Regex>>>,
}

impl Naive {
    fn new(routes: Vec<RouteConfig>) -> Naive {
        let regexes = routes
            .iter()
            .map(|r| {
                let compile = |p: &PathMatch| match p {
                    PathMatch::Regex(s) => Some(Regex::new(&format!("^(?:{s})")).expect("valid")),
                    _ => None,
                };
                r.paths.iter().map(compile).collect()
            })
            .collect();
        Naive { routes, regexes }
    }

    fn find(
        &self,
        host: Option<&str>,
        method: &str,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Option<RouteMatch> {
        let host = host.map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
        let mut best = None;
        for (i, r) in self.routes.iter().enumerate() {
            let method_ok = r.methods.is_empty() || r.methods.iter().any(|m| m == method);
            let headers_ok = r.headers.iter().all(|h| match (&h.exact, h.present) {
                (Some(v), _) => headers.get_all(h.name.as_str()).iter().any(|x| x == v),
                (None, Some(p)) => headers.contains_key(h.name.as_str()) == p,
                _ => unreachable!("generated routes use exact and present"),
            });
            if !method_ok || !headers_ok {
                continue;
            }
            // A method list, then more header conditions (then query conditions, which
            // the generated routes do not use).
            let weight = (!r.methods.is_empty(), r.headers.len());
            let tiers: Vec<usize> = if r.hosts.is_empty() {
                vec![3]
            } else {
                r.hosts
                    .iter()
                    .filter_map(|h| host_tier(h, r.wildcard_labels, host.as_deref()))
                    .collect()
            };
            for tier in tiers {
                for (j, p) in r.paths.iter().enumerate() {
                    let hit = match p {
                        PathMatch::Exact(e) => (path == e).then_some(((0, 0), path.len())),
                        PathMatch::Prefix(pre) => {
                            let pre = pre.trim_end_matches('/');
                            let rest = path.strip_prefix(pre);
                            let element = rest.is_some_and(|s| s.is_empty() || s.starts_with('/'));
                            element.then_some(((1, usize::MAX - pre.len()), pre.len()))
                        }
                        PathMatch::Regex(_) => {
                            let re = self.regexes[i][j].as_ref().expect("compiled");
                            re.find(path).map(|m| ((2, i), m.end()))
                        }
                    };
                    if let Some((rank, len)) = hit {
                        let key = (tier, rank, Reverse(weight), i);
                        if best.as_ref().is_none_or(|(k, _)| key < *k) {
                            best = Some((
                                key,
                                RouteMatch {
                                    route: i,
                                    matched_len: len,
                                },
                            ));
                        }
                    }
                }
                if r.paths.is_empty() {
                    let key = (tier, (1, usize::MAX), Reverse(weight), i);
                    if best.as_ref().is_none_or(|(k, _)| key < *k) {
                        best = Some((
                            key,
                            RouteMatch {
                                route: i,
                                matched_len: 0,
                            },
                        ));
                    }
                }
            }
        }
        best.map(|(_, m)| m)
    }
}

/// 0 for an exact host, 1 for a one-label wildcard, 2 for a wildcard of any depth, None
/// when the host does not match. (The generated wildcards all have suffixes of the same
/// length, so at the same suffix a one-label wildcard before a deeper one is the whole of
/// the narrowest-first rule here.)
fn host_tier(configured: &str, labels: WildcardLabels, host: Option<&str>) -> Option<usize> {
    let host = host?;
    match configured.strip_prefix("*.") {
        Some(suffix) => {
            let label = host.strip_suffix(suffix)?.strip_suffix('.')?;
            match labels {
                WildcardLabels::One => (!label.is_empty() && !label.contains('.')).then_some(1),
                WildcardLabels::Any => {
                    (!label.is_empty() && label.split('.').all(|l| !l.is_empty())).then_some(2)
                }
            }
        }
        None => (configured == host).then_some(0),
    }
}

#[test]
fn ten_thousand_routes_agree_with_a_full_scan() {
    let mut rng = fastrand::Rng::with_seed(0x9e37_79b9);
    let routes = generate_routes(&mut rng);
    let router = Router::build(&routes).expect("generated routes are valid");
    assert_eq!(router.len(), ROUTES);
    let naive = Naive::new(routes);

    let mut matched = 0;
    let samples = 1500;
    for _ in 0..samples {
        let host = match rng.usize(..10) {
            0..=5 => Some(exact_host(&mut rng)),
            6 => Some(format!("a.zone{}.example.org", rng.usize(..WILDCARD_ZONES))),
            7 => Some(format!(
                "a.b.zone{}.example.org:80",
                rng.usize(..WILDCARD_ZONES)
            )),
            8 => Some(format!("SVC{}.Example.com:8080", rng.usize(..EXACT_HOSTS))),
            _ => None,
        };
        let path = match rng.usize(..10) {
            0 => format!("/rx{}/{}", rng.usize(..ROUTES), rng.usize(..100)),
            1 => format!("{}/", api_path(&mut rng, 1..5)),
            _ => api_path(&mut rng, 1..6),
        };
        let method = ["GET", "POST", "DELETE"][rng.usize(..3)];
        let mut hdrs = Vec::new();
        let tenant = format!("t{}", rng.usize(..4));
        if rng.bool() {
            hdrs.push(("x-tenant", tenant.as_str()));
        }
        if rng.usize(..4) == 0 {
            hdrs.push(("x-beta", "1"));
        }
        let got = find(&router, host.as_deref(), method, &path, &hdrs);
        let want = naive.find(host.as_deref(), method, &path, &header_map(&hdrs));
        assert_eq!(got, want, "{host:?} {method} {path} {hdrs:?}");
        matched += usize::from(got.is_some());
    }
    // The sample must exercise both matches and misses.
    assert!(matched > samples / 2, "only {matched} of {samples} matched");
    assert!(samples - matched >= 15, "{matched} of {samples} matched");
}
