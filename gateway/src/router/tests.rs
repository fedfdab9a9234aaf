//! The router against a table of requests, and the diagnostics of invalid routes.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::*;
use crate::config::{HeaderMatch, PathMatch};

pub(super) fn route(hosts: &[&str], paths: Vec<PathMatch>) -> RouteConfig {
    RouteConfig {
        name: String::new(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        wildcard_labels: Default::default(),
        paths,
        methods: Vec::new(),
        headers: Vec::new(),
        query_params: Vec::new(),
        upstream: "u".into(),
        strip_prefix: false,
        preserve_host: false,
        plugins: Vec::new(),
        split: Vec::new(),
        split_hash_on: Default::default(),
        split_hash_on_header: None,
        split_hash_on_cookie: None,
        request_headers: Default::default(),
        response_headers: Default::default(),
        path_rewrite: None,
        mirrors: Vec::new(),
        protocols: vec![
            crate::config::Protocol::Http,
            crate::config::Protocol::Https,
        ],
        https_redirect_status_code: 426,
        compression: None,
        timeout: None,
        retries: None,
    }
}

/// `r` with `wildcard_labels: one` (a Kubernetes Ingress's reading of `*.`).
pub(super) fn one_label(mut r: RouteConfig) -> RouteConfig {
    r.wildcard_labels = crate::config::WildcardLabels::One;
    r
}

pub(super) fn methods(mut r: RouteConfig, methods: &[&str]) -> RouteConfig {
    r.methods = methods.iter().map(|m| m.to_string()).collect();
    r
}

pub(super) fn header(mut r: RouteConfig, h: HeaderMatch) -> RouteConfig {
    r.headers.push(h);
    r
}

pub(super) fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.into())
}

pub(super) fn exact(p: &str) -> PathMatch {
    PathMatch::Exact(p.into())
}

pub(super) fn regex(p: &str) -> PathMatch {
    PathMatch::Regex(p.into())
}

fn hm(name: &str) -> HeaderMatch {
    HeaderMatch {
        name: name.into(),
        exact: None,
        regex: None,
        present: None,
    }
}

pub(super) fn h_exact(name: &str, v: &str) -> HeaderMatch {
    HeaderMatch {
        exact: Some(v.into()),
        ..hm(name)
    }
}

fn h_regex(name: &str, re: &str) -> HeaderMatch {
    HeaderMatch {
        regex: Some(re.into()),
        ..hm(name)
    }
}

pub(super) fn h_present(name: &str, present: bool) -> HeaderMatch {
    HeaderMatch {
        present: Some(present),
        ..hm(name)
    }
}

pub(super) fn header_map(headers: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        let name = HeaderName::from_bytes(n.as_bytes()).expect("test header name");
        map.append(name, HeaderValue::from_str(v).expect("test header value"));
    }
    map
}

pub(super) fn find(
    router: &Router,
    host: Option<&str>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<RouteMatch> {
    let method = Method::from_bytes(method.as_bytes()).expect("test method");
    let headers = header_map(headers);
    // `path?query`: the router gets them apart, as the proxy gives them.
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    router.find(&RouteRequest {
        host,
        path,
        method: &method,
        headers: &headers,
        query,
    })
}

/// The routes of the table test; the comment is the index. Its wildcards are read as a
/// Kubernetes Ingress reads them (`wildcard_labels: one`); wildcards of any depth, the
/// default, have their own test below.
fn table_routes() -> Vec<RouteConfig> {
    vec![
        /* 0 */ route(&["api.example.com"], vec![prefix("/users")]),
        /* 1 */ route(&["api.example.com"], vec![exact("/users/me")]),
        /* 2 */ route(&["api.example.com"], vec![regex(r"/users/\d+/avatar")]),
        /* 3 */
        methods(
            route(&["API.Example.com"], vec![prefix("/admin/")]),
            &["get"],
        ),
        /* 4 */ one_label(route(&["*.example.com"], vec![prefix("/users")])),
        /* 5 */ one_label(route(&["*.example.com"], vec![prefix("/shop")])),
        /* 6 */ route(&[], vec![prefix("/shop")]),
        /* 7 */ route(&[], vec![prefix("/shop/cart")]),
        /* 8 */ route(&[], vec![exact("/shop/cart")]),
        /* 9 */ route(&[], vec![regex(r"/re/[0-9]+")]),
        /* 10 */ route(&[], vec![regex(r"/re/\d+/x")]),
        /* 11 */ methods(route(&[], vec![regex("/re/(a|b)$")]), &["POST"]),
        /* 12 */ route(&[], vec![regex("/re/(a|b)$")]),
        /* 13 */ methods(route(&[], vec![exact("/m")]), &["GET", "POST"]),
        /* 14 */
        header(
            methods(route(&[], vec![exact("/m")]), &["GET"]),
            h_exact("x-env", "canary"),
        ),
        /* 15 */ methods(route(&[], vec![prefix("/m")]), &["DELETE"]),
        /* 16 */ header(route(&[], vec![prefix("/h")]), h_regex("X-Ver", "^v[23]$")),
        /* 17 */ header(route(&[], vec![prefix("/h")]), h_present("x-debug", true)),
        /* 18 */ header(route(&[], vec![prefix("/h")]), h_present("x-block", false)),
        /* 19 */
        header(
            route(&[], vec![prefix("/hr")]),
            h_regex("user-agent", "curl"),
        ),
        /* 20 */ header(route(&[], vec![prefix("/he")]), h_exact("x-env", "Prod")),
        /* 21 */ one_label(route(&["*.example.com"], vec![prefix("/admin")])),
        /* 22 */ route(&["[::1]"], vec![prefix("/v6")]),
        /* 23 */ route(&["localhost", "127.0.0.1"], vec![exact("/local")]),
        /* 24 */ route(&["root.example.com"], vec![]),
        /* 25 */ route(&["strip.example.com"], vec![prefix("/api/")]),
        /* 26 */
        one_label(route(
            &["multi.test", "*.multi.test"],
            vec![prefix("/a"), exact("/b")],
        )),
        /* 27 */ one_label(route(&["*.wild.test"], vec![prefix("/")])),
        /* 28 */ route(&["exact.wild.test"], vec![exact("/only")]),
        /* 29 */ route(&["fqdn.test."], vec![prefix("/f")]),
    ]
}

type Case<'a> = (
    Option<&'a str>,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<(usize, usize)>,
    &'a str,
);

#[test]
fn table() {
    let router = Router::build(&table_routes()).expect("table routes are valid");
    assert_eq!(router.len(), 30);
    assert!(!router.is_empty());
    let api = Some("api.example.com");
    let any: Option<&str> = None;
    let cases: &[Case] = &[
        // Hosts.
        (
            api,
            "GET",
            "/users",
            &[],
            Some((0, 6)),
            "exact host, prefix equal to path",
        ),
        (
            api,
            "GET",
            "/users/42",
            &[],
            Some((0, 6)),
            "exact host beats wildcard",
        ),
        (
            Some("shop.example.com"),
            "GET",
            "/users/1",
            &[],
            Some((4, 6)),
            "wildcard host",
        ),
        (
            Some("a.b.example.com"),
            "GET",
            "/users/1",
            &[],
            None,
            "wildcard is one label",
        ),
        (
            Some("example.com"),
            "GET",
            "/users",
            &[],
            None,
            "wildcard needs a label",
        ),
        (
            Some("API.Example.COM"),
            "GET",
            "/users",
            &[],
            Some((0, 6)),
            "host case",
        ),
        (
            Some("api.example.com:8443"),
            "GET",
            "/users",
            &[],
            Some((0, 6)),
            "port ignored",
        ),
        (
            Some("API.EXAMPLE.COM:443"),
            "GET",
            "/users/me",
            &[],
            Some((1, 9)),
            "case+port",
        ),
        (
            Some("[::1]:8080"),
            "GET",
            "/v6/x",
            &[],
            Some((22, 3)),
            "IPv6 literal with port",
        ),
        (
            Some("[::1]"),
            "GET",
            "/v6",
            &[],
            Some((22, 3)),
            "IPv6 literal",
        ),
        (
            Some("localhost:3000"),
            "GET",
            "/local",
            &[],
            Some((23, 6)),
            "first of two hosts",
        ),
        (
            Some("127.0.0.1"),
            "GET",
            "/local",
            &[],
            Some((23, 6)),
            "second of two hosts",
        ),
        (
            Some("fqdn.test"),
            "GET",
            "/f",
            &[],
            Some((29, 2)),
            "configured trailing dot",
        ),
        (
            Some("fqdn.test."),
            "GET",
            "/f",
            &[],
            Some((29, 2)),
            "request trailing dot",
        ),
        (
            Some("other.test"),
            "GET",
            "/shop",
            &[],
            Some((6, 5)),
            "unknown host: any tier",
        ),
        (
            any,
            "GET",
            "/shop",
            &[],
            Some((6, 5)),
            "no Host header: any tier",
        ),
        (
            any,
            "GET",
            "/users",
            &[],
            None,
            "no Host header skips host routes",
        ),
        (
            Some("a.wild.test"),
            "GET",
            "/anything",
            &[],
            Some((27, 0)),
            "wildcard, root",
        ),
        (
            Some("wild.test"),
            "GET",
            "/anything",
            &[],
            None,
            "wildcard excludes apex",
        ),
        (
            Some("exact.wild.test"),
            "GET",
            "/only",
            &[],
            Some((28, 5)),
            "exact host tier",
        ),
        (
            Some("exact.wild.test"),
            "GET",
            "/else",
            &[],
            Some((27, 0)),
            "exact tier falls to wildcard",
        ),
        // Host tier fall-through.
        (
            api,
            "GET",
            "/shop/x",
            &[],
            Some((5, 5)),
            "exact host tier has no /shop: wildcard",
        ),
        (
            Some("a.b.example.com"),
            "GET",
            "/shop",
            &[],
            Some((6, 5)),
            "no wildcard: any",
        ),
        (
            api,
            "GET",
            "/admin/x",
            &[],
            Some((3, 6)),
            "exact host, lowercase method in config",
        ),
        (
            api,
            "POST",
            "/admin/x",
            &[],
            Some((21, 6)),
            "method fails: fall to wildcard",
        ),
        // Paths: exact, prefix, regex, precedence.
        (
            any,
            "GET",
            "/shop/cart",
            &[],
            Some((8, 10)),
            "exact beats longest prefix",
        ),
        (
            any,
            "GET",
            "/shop/cart/",
            &[],
            Some((7, 10)),
            "exact is exact; prefix takes /",
        ),
        (
            any,
            "GET",
            "/shop/cart/1",
            &[],
            Some((7, 10)),
            "longest prefix",
        ),
        (
            any,
            "GET",
            "/shop/cartx",
            &[],
            Some((6, 5)),
            "prefix is element-wise",
        ),
        (any, "GET", "/shopping", &[], None, "no string-prefix match"),
        (any, "GET", "/Shop", &[], None, "paths are case-sensitive"),
        (
            api,
            "GET",
            "/USERS",
            &[],
            None,
            "paths are case-sensitive, every tier",
        ),
        (
            api,
            "GET",
            "/users/me",
            &[],
            Some((1, 9)),
            "exact beats prefix",
        ),
        (
            api,
            "GET",
            "/users/7/avatar",
            &[],
            Some((0, 6)),
            "prefix beats regex",
        ),
        (
            any,
            "GET",
            "/re/123",
            &[],
            Some((9, 7)),
            "regex, matched_len is match end",
        ),
        (
            any,
            "GET",
            "/re/12/x",
            &[],
            Some((9, 6)),
            "regexes in file order",
        ),
        (any, "GET", "/x/re/1", &[], None, "regex anchored at start"),
        (
            any,
            "POST",
            "/re/a",
            &[],
            Some((11, 5)),
            "same regex: more matchers first",
        ),
        (
            any,
            "GET",
            "/re/b",
            &[],
            Some((12, 5)),
            "same regex: fewer matchers next",
        ),
        (any, "GET", "/re/ab", &[], None, "regex end anchor"),
        // Methods and headers.
        (
            any,
            "GET",
            "/m",
            &[("x-env", "canary")],
            Some((14, 2)),
            "more matchers first",
        ),
        (
            any,
            "GET",
            "/m",
            &[],
            Some((13, 2)),
            "header fails: next candidate",
        ),
        (
            any,
            "POST",
            "/m",
            &[("x-env", "canary")],
            Some((13, 2)),
            "method fails: next",
        ),
        (
            any,
            "DELETE",
            "/m",
            &[],
            Some((15, 2)),
            "exact candidates fail: prefix",
        ),
        (any, "PUT", "/m", &[], None, "no method matches"),
        (
            any,
            "GET",
            "/h",
            &[("x-ver", "v2")],
            Some((16, 2)),
            "header regex",
        ),
        (
            any,
            "GET",
            "/h",
            &[("x-ver", "v4"), ("x-debug", "")],
            Some((17, 2)),
            "present",
        ),
        (any, "GET", "/h/x", &[], Some((18, 2)), "absent"),
        (
            any,
            "GET",
            "/h",
            &[("x-block", "1")],
            None,
            "present:false fails",
        ),
        (
            any,
            "GET",
            "/hr",
            &[("user-agent", "Mozilla curl/8")],
            Some((19, 3)),
            "unanchored",
        ),
        (
            any,
            "GET",
            "/hr",
            &[("user-agent", "wget")],
            None,
            "header regex fails",
        ),
        (
            any,
            "GET",
            "/he",
            &[("x-env", "Prod")],
            Some((20, 3)),
            "header exact",
        ),
        (
            any,
            "GET",
            "/he",
            &[("x-env", "prod")],
            None,
            "header exact is case-sensitive",
        ),
        (
            any,
            "GET",
            "/he",
            &[("x-env", "a"), ("x-env", "Prod")],
            Some((20, 3)),
            "any value",
        ),
        // matched_len and several hosts x paths.
        (
            Some("root.example.com"),
            "GET",
            "/x/y",
            &[],
            Some((24, 0)),
            "no paths: 0",
        ),
        (
            Some("strip.example.com"),
            "GET",
            "/api/users",
            &[],
            Some((25, 4)),
            "prefix len",
        ),
        (
            Some("strip.example.com"),
            "GET",
            "/api/",
            &[],
            Some((25, 4)),
            "trailing slash",
        ),
        (
            Some("strip.example.com"),
            "GET",
            "/api",
            &[],
            Some((25, 4)),
            "configured /api/",
        ),
        (
            Some("strip.example.com"),
            "GET",
            "/apix",
            &[],
            None,
            "no match",
        ),
        (
            Some("multi.test"),
            "GET",
            "/a/x",
            &[],
            Some((26, 2)),
            "host 1 x path 1",
        ),
        (
            Some("x.multi.test"),
            "GET",
            "/b",
            &[],
            Some((26, 2)),
            "host 2 x path 2",
        ),
        (Some("multi.test"), "GET", "/b/c", &[], None, "exact path"),
        (any, "GET", "/", &[], None, "nothing at the root"),
    ];
    assert!(cases.len() >= 40);
    for (host, method, path, headers, want, why) in cases {
        let got = find(&router, *host, method, path, headers);
        let want = want.map(|(route, matched_len)| RouteMatch { route, matched_len });
        assert_eq!(got, want, "{why}: {host:?} {method} {path} {headers:?}");
    }
}

#[test]
fn empty_router_finds_nothing() {
    let router = Router::build(&[]).expect("no routes is valid");
    assert!(router.is_empty());
    assert_eq!(router.len(), 0);
    assert_eq!(find(&router, Some("a.test"), "GET", "/", &[]), None);
}

#[test]
fn catch_all_route_matches_everything() {
    let router = Router::build(&[route(&[], vec![])]).expect("valid");
    for path in ["/", "/a", "/a/b/", "*", ""] {
        let want = Some(RouteMatch {
            route: 0,
            matched_len: 0,
        });
        assert_eq!(find(&router, None, "PATCH", path, &[]), want, "{path:?}");
    }
}

#[test]
fn file_order_breaks_ties() {
    let routes = [
        route(&["a.test"], vec![prefix("/x")]),
        route(&["a.test"], vec![prefix("/x/")]),
        methods(route(&[], vec![]), &["GET"]),
        methods(route(&[], vec![prefix("/")]), &["GET"]),
    ];
    let router = Router::build(&routes).expect("valid");
    assert_eq!(
        find(&router, Some("a.test"), "GET", "/x/y", &[]).map(|m| m.route),
        Some(0)
    );
    assert_eq!(
        find(&router, None, "GET", "/z", &[]).map(|m| m.route),
        Some(2)
    );
}

/// Builds `routes` and returns its diagnostics as (path, message) pairs.
fn errors(routes: &[RouteConfig]) -> Vec<(String, String)> {
    match Router::build(routes) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .into_iter()
            .map(|d| {
                assert_eq!(d.location, None);
                (d.path, d.message)
            })
            .collect(),
    }
}

#[test]
fn rejects_invalid_hosts() {
    let cases = [
        ("", "must not be empty"),
        ("*", "`*` alone"),
        ("*.", "`*.` needs a domain"),
        ("a.*.com", "only allowed as the whole first or last label"),
        (
            "*example.com",
            "only allowed as the whole first or last label",
        ),
        (
            "*.example.*",
            "only allowed as the whole first or last label",
        ),
        (
            "**.example.com",
            "only allowed as the whole first or last label",
        ),
        (
            "*.*.example.com",
            "only allowed as the whole first or last label",
        ),
        (
            "example.**",
            "only allowed as the whole first or last label",
        ),
        (
            "api.example.com:8080",
            "ports are not matched; remove :8080",
        ),
        ("*.example.com:443", "ports are not matched; remove :443"),
        ("[::1]:8080", "ports are not matched; remove :8080"),
        ("::1", "in brackets"),
        ("[zz::1]", "not a valid IPv6 literal"),
        ("bad host.com", "invalid character ' '"),
        ("exa!mple.com", "invalid character '!'"),
        ("héllo.com", "invalid character 'é'"),
        ("example.com:", "invalid character ':'"),
        ("a..b", "empty label"),
        (".example.com", "empty label"),
    ];
    for (host, message) in cases {
        let routes = [
            route(&["ok.test"], vec![]),
            route(&["fine.test", host], vec![]),
        ];
        let errs = errors(&routes);
        assert_eq!(errs.len(), 1, "{host:?}: {errs:?}");
        assert_eq!(errs[0].0, "routes[1].hosts[1]", "{host:?}");
        assert!(errs[0].1.contains(message), "{host:?}: {}", errs[0].1);
    }
}

#[test]
fn rejects_invalid_paths() {
    let cases = [
        (exact("users"), "must start with `/`"),
        (prefix("api"), "must start with `/`"),
        (prefix(""), "must start with `/`"),
        (exact("/a?b=1"), "queries and fragments are not matched"),
        (prefix("/a#x"), "queries and fragments are not matched"),
        (prefix("/a b"), "space or control character"),
        (regex("(/a"), "invalid regular expression: unclosed group"),
        (regex("(/a"), "unclosed group"),
        (regex(")|("), "unopened group"),
    ];
    for (path, message) in cases {
        let routes = [route(&[], vec![prefix("/ok"), path.clone()])];
        let errs = errors(&routes);
        assert_eq!(errs.len(), 1, "{path:?}: {errs:?}");
        let field = match path {
            PathMatch::Regex(_) => "routes[0].paths[1].regex",
            _ => "routes[0].paths[1]",
        };
        assert_eq!(errs[0].0, field, "{path:?}");
        assert!(errs[0].1.contains(message), "{path:?}: {}", errs[0].1);
    }
}

#[test]
fn rejects_invalid_methods() {
    for (method, message) in [
        ("", "must not be empty"),
        ("GE T", "not a valid HTTP method"),
        ("G(ET", "not a valid HTTP method"),
        ("GÉT", "not a valid HTTP method"),
    ] {
        let routes = [
            route(&[], vec![]),
            methods(route(&[], vec![]), &["GET", method]),
        ];
        let errs = errors(&routes);
        assert_eq!(errs.len(), 1, "{method:?}: {errs:?}");
        assert_eq!(errs[0].0, "routes[1].methods[1]");
        assert!(errs[0].1.contains(message), "{method:?}: {}", errs[0].1);
    }
}

#[test]
fn rejects_invalid_header_conditions() {
    let both = HeaderMatch {
        regex: Some("x".into()),
        ..h_exact("x-a", "a")
    };
    let cases = [
        (
            h_regex("x-a", "(unclosed"),
            "routes[2].headers[0].regex",
            "unclosed group",
        ),
        (
            h_exact("bad name", "v"),
            "routes[2].headers[0].name",
            "not a valid header name",
        ),
        (
            h_exact("x-a", "line\nbreak"),
            "routes[2].headers[0].exact",
            "not a valid header value",
        ),
        (
            hm("x-a"),
            "routes[2].headers[0]",
            "exactly one of exact, regex, present",
        ),
        (
            both,
            "routes[2].headers[0]",
            "exactly one of exact, regex, present",
        ),
    ];
    for (h, path, message) in cases {
        let routes = [
            route(&[], vec![]),
            route(&[], vec![]),
            header(route(&[], vec![]), h),
        ];
        let errs = errors(&routes);
        assert_eq!(errs.len(), 1, "{path}: {errs:?}");
        assert_eq!(errs[0].0, path);
        assert!(errs[0].1.contains(message), "{path}: {}", errs[0].1);
    }
}

#[test]
fn reports_every_problem() {
    let routes = [
        methods(route(&["a.test:80", "*"], vec![exact("x")]), &[""]),
        route(&["ok.test"], vec![regex("[")]),
    ];
    let paths: Vec<String> = errors(&routes).into_iter().map(|(p, _)| p).collect();
    let want = [
        "routes[0].hosts[0]",
        "routes[0].hosts[1]",
        "routes[0].paths[0]",
        "routes[0].methods[0]",
        "routes[1].paths[0].regex",
    ];
    assert_eq!(paths, want);
}

#[test]
fn wildcards_match_any_depth_narrowest_first_and_one_label_when_asked() {
    let routes = vec![
        /* 0 */ route(&["*.example.com"], vec![prefix("/")]),
        /* 1 */ route(&["*.b.example.com"], vec![prefix("/")]),
        /* 2 */ one_label(route(&["*.b.example.com"], vec![prefix("/one")])),
        /* 3 */ route(&["*.c.example.com"], vec![prefix("/only")]),
        /* 4 */ one_label(route(&["*.ingress.test"], vec![prefix("/")])),
        /* 5 */ route(&["x.b.example.com"], vec![exact("/exact")]),
    ];
    let router = Router::build(&routes).expect("valid");
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        ("a.example.com", "/", Some(0), "one label"),
        ("x.y.z.example.com", "/", Some(0), "three labels"),
        (
            "A.B.Example.COM:8443",
            "/",
            Some(1),
            "case and port, as for exact hosts",
        ),
        ("a.b.example.com", "/", Some(1), "the narrower suffix first"),
        (
            "x.y.b.example.com",
            "/",
            Some(1),
            "the narrower suffix, two labels deep",
        ),
        (
            "a.b.example.com",
            "/one",
            Some(2),
            "one-label before any-depth at one suffix",
        ),
        (
            "x.y.b.example.com",
            "/one",
            Some(1),
            "one-label covers one label only",
        ),
        (
            "a.c.example.com",
            "/other",
            Some(0),
            "the narrower has no such path: the wider",
        ),
        ("a.c.example.com", "/only", Some(3), "the narrower"),
        (
            "x.b.example.com",
            "/exact",
            Some(5),
            "an exact host before every wildcard",
        ),
        (
            "x.b.example.com",
            "/",
            Some(1),
            "the exact host has no such path",
        ),
        ("a.ingress.test", "/", Some(4), "one label, as in Ingress"),
        ("a.b.ingress.test", "/", None, "two labels, not in Ingress"),
        ("example.com", "/", None, "the apex is not covered"),
        (
            "b.example.com",
            "/",
            Some(0),
            "b.example.com is under *.example.com",
        ),
        (".example.com", "/", None, "an empty label is not a label"),
        ("a..example.com", "/", None, "nor is one in the middle"),
    ];
    for (host, path, want, why) in cases {
        let got = find(&router, Some(host), "GET", path, &[]).map(|m| m.route);
        assert_eq!(got, *want, "{host} {path}: {why}");
    }
    // What `pingway explain` says agrees with the table.
    let no_headers = HeaderMap::new();
    let req = |host| RouteRequest {
        host: Some(host),
        path: "/",
        method: &Method::GET,
        headers: &no_headers,
        query: None,
    };
    let fits = |i: usize, host| match router.check_route(i, &routes[i], &req(host)) {
        RouteCheck::Accepts { host, .. } => Some(host),
        RouteCheck::Fails(_) => None,
    };
    assert_eq!(
        fits(0, "x.y.example.com"),
        Some(HostFit::Wildcard("*.example.com".into()))
    );
    assert_eq!(
        fits(4, "a.ingress.test"),
        Some(HostFit::Wildcard("*.ingress.test".into()))
    );
    assert_eq!(fits(4, "a.b.ingress.test"), None);
}

#[test]
fn a_host_of_many_labels_is_one_pass_and_still_matches_a_deep_wildcard() {
    let routes = vec![
        route(&["*.example.com"], vec![prefix("/")]),
        one_label(route(&["*.one.test"], vec![prefix("/")])),
    ];
    let router = Router::build(&routes).expect("valid");
    let deep = format!("{}example.com", "a.".repeat(50_000));
    let got = find(&router, Some(&deep), "GET", "/", &[]).map(|m| m.route);
    assert_eq!(got, Some(0));
    let deep_one = format!("{}one.test", "a.".repeat(50_000));
    assert_eq!(find(&router, Some(&deep_one), "GET", "/", &[]), None);
    let dots = ".".repeat(100_000);
    assert_eq!(find(&router, Some(&dots), "GET", "/", &[]), None);
}

#[test]
fn rightmost_wildcards_match_like_kong_after_leftmost_ones() {
    let routes = vec![
        /* 0 */ route(&["example.*"], vec![prefix("/")]),
        /* 1 */ route(&["example.co.*"], vec![prefix("/")]),
        /* 2 */ one_label(route(&["shop.*"], vec![prefix("/")])),
        /* 3 */ route(&["*.example.com"], vec![prefix("/left")]),
        /* 4 */ route(&["example.org"], vec![exact("/exact")]),
    ];
    let router = Router::build(&routes).expect("valid");
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        ("example.com", "/", Some(0), "one label after"),
        ("Example.ORG:8080", "/", Some(0), "case and port"),
        ("example.net.cn", "/", Some(0), "two labels after"),
        ("example.co.uk", "/", Some(1), "the longer prefix first"),
        ("example", "/", None, "a label must follow"),
        ("www.example.com", "/", None, "the prefix starts the host"),
        ("www.example.com", "/left", Some(3), "a leftmost wildcard"),
        (
            "example.example.com",
            "/left",
            Some(3),
            "leftmost before rightmost",
        ),
        (
            "example.example.com",
            "/",
            Some(0),
            "the leftmost has no such path",
        ),
        ("example.org", "/exact", Some(4), "an exact host first"),
        (
            "example.org",
            "/",
            Some(0),
            "the exact host has no such path",
        ),
        ("shop.de", "/", Some(2), "one label, as asked"),
        (
            "shop.co.uk",
            "/",
            None,
            "two labels, not with wildcard_labels: one",
        ),
        ("example..com", "/", None, "no empty label after the prefix"),
    ];
    for (host, path, want, why) in cases {
        let got = find(&router, Some(host), "GET", path, &[]).map(|m| m.route);
        assert_eq!(got, *want, "{host} {path}: {why}");
    }
    let no_headers = HeaderMap::new();
    let req = RouteRequest {
        host: Some("example.co.uk"),
        path: "/",
        method: &Method::GET,
        headers: &no_headers,
        query: None,
    };
    match router.check_route(0, &routes[0], &req) {
        RouteCheck::Accepts { host, .. } => {
            assert_eq!(host, HostFit::Wildcard("example.*".into()))
        }
        RouteCheck::Fails(f) => panic!("{f:?}"),
    }
    // A long hostile host: one pass over it and a few lookups.
    let long = format!("example{}", ".a".repeat(50_000));
    assert_eq!(
        find(&router, Some(&long), "GET", "/", &[]).map(|m| m.route),
        Some(0)
    );
}
