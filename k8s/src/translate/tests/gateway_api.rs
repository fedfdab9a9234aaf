//! Gateway API golden tests: YAML fixtures of objects (k8s/tests/fixtures/gateway-api/)
//! after a set of the upstream HTTPRoute conformance cases, each checked on the
//! generated file (through the gateway's own router where it matters) and on the status.

use http::{HeaderMap, HeaderValue, Method};
use pingway::router::{RouteRequest, Router};

use super::*;
use crate::gateway_api::status::RouteParentStatus;
use crate::gateway_api::{Condition, Gateway, GatewayClass, HttpRoute, ReferenceGrant};

const BASE: &str = include_str!("../../../tests/fixtures/gateway-api/base.yaml");

/// Parses a multi-document YAML fixture into `s`, by kind.
fn load(s: &mut Snapshot, text: &str) {
    for doc in text.split("\n---\n") {
        let node = pingway::config::yaml::parse(doc).expect("fixture YAML");
        let v = node.to_json();
        if v.is_null() {
            continue;
        }
        match v["kind"].as_str().unwrap_or_default() {
            "GatewayClass" => s.gateway_classes.push(obj::<GatewayClass>(v)),
            "Gateway" => s.gateways.push(obj::<Gateway>(v)),
            "HTTPRoute" => s.http_routes.push(obj::<HttpRoute>(v)),
            "ReferenceGrant" => s.reference_grants.push(obj::<ReferenceGrant>(v)),
            "Service" => s.services.push(obj(v)),
            "EndpointSlice" => s.endpoint_slices.push(obj(v)),
            "Secret" => s.secrets.push(obj(v)),
            "GatewayPlugin" => s.gateway_plugins.push(obj(v)),
            other => panic!("fixture kind {other}"),
        }
    }
}

/// The base fixture plus `case`, translated and checked.
fn case(case: &str) -> Translation {
    let mut s = Snapshot::default();
    load(&mut s, BASE);
    load(&mut s, case);
    run(&s)
}

/// Our status entries of an HTTPRoute.
fn parents<'a>(t: &'a Translation, ns: &str, name: &str) -> &'a [RouteParentStatus] {
    &t.gateway_api_status
        .http_routes
        .iter()
        .find(|r| r.namespace == ns && r.name == name)
        .unwrap_or_else(|| panic!("no status for {ns}/{name}"))
        .status
        .parents
}

fn cond<'a>(conds: &'a [Condition], ty: &str) -> &'a Condition {
    conds
        .iter()
        .find(|c| c.type_ == ty)
        .unwrap_or_else(|| panic!("no {ty} in {conds:?}"))
}

/// The name of the route the gateway's router picks for a request.
fn serve(
    t: &Translation,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let router = Router::build(&t.config.routes).expect("router");
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let req = RouteRequest {
        host: Some(host),
        path,
        method: &method,
        headers: &h,
        query,
    };
    router
        .find(&req)
        .map(|m| t.config.routes[m.route].name.clone())
}

fn status_code_of(r: &RouteConfig) -> Option<u64> {
    r.plugins
        .iter()
        .find(|p| p.name == "request-termination")
        .and_then(|p| p.config.to_json()["status_code"].as_u64())
}

#[test]
fn simple_same_namespace_route_and_statuses() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/simple.yaml"
    ));
    let r = route(&t, "httproute.infra.simple.0.0");
    assert_eq!(r.upstream, "infra.web-v1.8080");
    assert!(r.hosts.is_empty());
    assert!(r.preserve_host);
    let up = t
        .config
        .upstreams
        .iter()
        .find(|u| u.name == r.upstream)
        .unwrap();
    assert_eq!(up.targets.len(), 1);
    assert!(
        !t.config.routes.iter().any(|r| r.name.contains("not-ours")),
        "a route of another controller's Gateway was translated"
    );
    let p = parents(&t, "infra", "simple");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].controller_name, "pingway.io/gateway-controller");
    assert_eq!(p[0].parent_ref.section_name.as_deref(), Some("infra-only"));
    let accepted = cond(&p[0].conditions, "Accepted");
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("True", "Accepted")
    );
    assert_eq!(accepted.observed_generation, Some(3));
    assert!(
        accepted.last_transition_time.is_none(),
        "the pure function reads no clock"
    );
    assert_eq!(cond(&p[0].conditions, "ResolvedRefs").status, "True");
    let st = &t.gateway_api_status;
    assert!(!st.http_routes.iter().any(|r| r.name == "not-ours"));
    // Classes: ours only, accepted.
    assert_eq!(st.gateway_classes.len(), 1);
    assert_eq!(st.gateway_classes[0].name, "pingway");
    assert_eq!(
        cond(&st.gateway_classes[0].status.conditions, "Accepted").status,
        "True"
    );
    // Gateways: ours only; the listener the route named counts it.
    assert_eq!(st.gateways.len(), 1);
    let gw = &st.gateways[0].status;
    assert_eq!(cond(&gw.conditions, "Programmed").status, "True");
    assert_eq!(
        cond(&gw.conditions, "Accepted").observed_generation,
        Some(2)
    );
    let attached: Vec<(&str, i32)> = gw
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.attached_routes))
        .collect();
    assert_eq!(
        attached,
        [
            ("http", 0),
            ("example", 0),
            ("infra-only", 1),
            ("selected", 0)
        ]
    );
    assert!(gw.addresses.is_empty());
    assert_eq!(
        serve(&t, "any.test", "GET", "/x", &[]).as_deref(),
        Some("httproute.infra.simple.0.0")
    );
}

#[test]
fn cross_namespace_backends_need_a_reference_grant() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/cross-namespace.yaml"
    ));
    let ok = route(&t, "httproute.app.granted.0.0");
    assert_eq!(ok.upstream, "other.remote.80");
    assert_eq!(ok.hosts, ["granted.test"]);
    assert_eq!(status_code_of(ok), None);
    let p = parents(&t, "app", "granted");
    assert_eq!(cond(&p[0].conditions, "ResolvedRefs").status, "True");

    let refused = route(&t, "httproute.other-team.refused.0.0");
    assert_eq!(status_code_of(refused), Some(500));
    assert_ne!(refused.upstream, "other.remote.80");
    let p = parents(&t, "other-team", "refused");
    assert_eq!(cond(&p[0].conditions, "Accepted").status, "True");
    let rr = cond(&p[0].conditions, "ResolvedRefs");
    assert_eq!(
        (rr.status.as_str(), rr.reason.as_str()),
        ("False", "RefNotPermitted")
    );
    assert_eq!(rr.observed_generation, Some(4));
    assert!(t
        .problems
        .iter()
        .any(|p| p.name == "refused" && p.reason.contains("ReferenceGrant")));
}

#[test]
fn hostnames_are_intersected_with_the_listener() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/hostnames.yaml"
    ));
    assert_eq!(
        route(&t, "httproute.app.narrower.0.0").hosts,
        ["*.example.com", "foo.example.com"]
    );
    // A wider route wildcard narrows to the listener's.
    assert_eq!(
        route(&t, "httproute.app.wider.0.0").hosts,
        ["*.example.com"]
    );
    // No hostnames: the listener's.
    assert_eq!(
        route(&t, "httproute.app.inherits.0.0").hosts,
        ["*.example.com"]
    );
    // No host in common: not accepted, no route.
    assert!(!t.config.routes.iter().any(|r| r.name.contains("no-meet")));
    let p = parents(&t, "app", "no-meet");
    let a = cond(&p[0].conditions, "Accepted");
    assert_eq!(
        (a.status.as_str(), a.reason.as_str()),
        ("False", "NoMatchingListenerHostname")
    );
    assert_eq!(a.observed_generation, Some(5));
    assert_eq!(serve(&t, "bar.other.org", "GET", "/", &[]), None);
    assert_eq!(
        serve(&t, "foo.example.com", "GET", "/", &[]).as_deref(),
        Some("httproute.app.narrower.0.0")
    );
    // A Gateway API wildcard covers any depth of labels, as the router's does.
    assert_eq!(
        route(&t, "httproute.app.wider.0.0").wildcard_labels,
        pingway::config::WildcardLabels::Any
    );
    assert!(serve(&t, "a.b.example.com", "GET", "/", &[]).is_some());
    // The listener `example` counts the three accepted routes.
    let gw = &t.gateway_api_status.gateways[0].status;
    assert_eq!(gw.listeners[1].name, "example");
    assert_eq!(gw.listeners[1].attached_routes, 3);
}

#[test]
fn matches_and_precedence_follow_the_spec() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/matching.yaml"
    ));
    let get = |path: &str, method: &str, headers: &[(&str, &str)]| {
        serve(&t, "match.test", method, path, headers).unwrap_or_default()
    };
    // Exact beats any prefix; the longer prefix beats `/`.
    assert_eq!(get("/exact", "GET", &[]), "httproute.app.matching.1.0");
    assert_eq!(get("/exact/x", "GET", &[]), "httproute.app.older.0.0");
    assert_eq!(
        get("/prefix/longer/x", "GET", &[]),
        "httproute.app.matching.1.1"
    );
    // A method match beats the plain `/` of the same path.
    assert_eq!(get("/any", "POST", &[]), "httproute.app.matching.3.0");
    // Both headers must hold; values are case-sensitive; the regex is whole-value.
    assert_eq!(
        get("/any", "GET", &[("version", "two"), ("x-tier", "gold")]),
        "httproute.app.matching.2.0"
    );
    assert_eq!(
        get("/any", "GET", &[("version", "two")]),
        "httproute.app.older.0.0"
    );
    assert_eq!(
        get("/any", "GET", &[("version", "two"), ("x-tier", "golden")]),
        "httproute.app.older.0.0"
    );
    // Same match, two routes: the older route wins.
    assert_eq!(get("/", "GET", &[]), "httproute.app.older.0.0");
    // A regex is anchored at both ends, and tried after the prefixes of its host, so
    // only a request no prefix takes reaches it; here `/` takes every path.
    let re = route(&t, "httproute.app.matching.1.2");
    assert_eq!(re.paths, [PathMatch::Regex("^(?:/re/[0-9]+)$".into())]);
    // A query parameter match is a route condition of its own.
    assert_eq!(
        get("/q?animal=whale", "GET", &[]),
        "httproute.app.matching.4.0"
    );
    assert_eq!(get("/q?animal=orca", "GET", &[]), "httproute.app.older.0.0");
    assert_eq!(
        status_code_of(route(&t, "httproute.app.matching.4.0")),
        None
    );
    let p = parents(&t, "app", "matching");
    let pi = cond(&p[0].conditions, "PartiallyInvalid");
    assert_eq!(
        (pi.status.as_str(), pi.reason.as_str()),
        ("True", "UnsupportedValue")
    );
    assert!(!pi.message.contains("queryParams"), "{}", pi.message);
    assert_eq!(cond(&p[0].conditions, "Accepted").status, "True");
    // A regex the router refuses: that route is left out, the rest stays, and the
    // status says which.
    assert!(route_opt(&t, "httproute.app.matching.5.0").is_none());
    assert!(
        pi.message.contains("httproute.app.matching.5.0 left out"),
        "{}",
        pi.message
    );
    assert!(t
        .problems
        .iter()
        .any(|p| p.name == "matching" && p.reason.contains("httproute.app.matching.5.0")));
}

#[test]
fn query_param_matches_follow_the_conformance_case() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/query-params.yaml"
    ));
    let get = |path: &str, headers: &[(&str, &str)]| serve(&t, "query.test", "GET", path, headers);
    let at = |path: &str| get(path, &[]);
    let r = |rule: usize, m: usize| Some(format!("httproute.app.query-param-matching.{rule}.{m}"));
    // The upstream conformance requests (HTTPRouteQueryParamMatching).
    assert_eq!(at("/?animal=whale"), r(0, 0));
    assert_eq!(at("/?animal=dolphin"), r(1, 0));
    assert_eq!(at("/?animal=dolphin&color=blue"), r(2, 0));
    assert_eq!(at("/?color=blue&animal=dolphin"), r(2, 0));
    assert_eq!(at("/?ANIMAL=Whale"), r(2, 1));
    assert_eq!(at("/?animal=whale&otherparam=irrelevant"), r(0, 0));
    assert_eq!(at("/?animal=dolphin&color=yellow"), r(1, 0));
    assert_eq!(at("/?color=blue"), None);
    assert_eq!(at("/?animal=shark"), None);
    assert_eq!(
        at("/?ANIMAL=whale"),
        None,
        "names and values are case-sensitive"
    );
    assert_eq!(at("/"), None);
    // The first value of a repeated parameter counts.
    assert_eq!(at("/?animal=whale&animal=dolphin"), r(0, 0));
    // A RegularExpression matches the whole value, with the path and header too.
    let keeper = [("x-keeper", "yes")];
    assert_eq!(get("/zoo/a?id=42", &keeper), r(3, 0));
    assert_eq!(get("/zoo/a?id=42x", &keeper), None);
    assert_eq!(get("/zoo/a?id=42", &[]), None);
    let zoo = route(&t, "httproute.app.query-param-matching.3.0");
    assert_eq!(
        zoo.query_params,
        [pingway::config::QueryMatch {
            name: "id".into(),
            exact: None,
            regex: Some("^(?:[0-9]+)$".into()),
            present: None,
        }]
    );
    // The URLRewrite of a match with query conditions is kept.
    assert!(zoo.path_rewrite.is_some());
    // Nothing is refused, and the status says so.
    let p = parents(&t, "app", "query-param-matching");
    assert!(
        p[0].conditions
            .iter()
            .all(|c| c.type_ != "PartiallyInvalid"),
        "{:?}",
        p[0].conditions
    );
    assert_eq!(cond(&p[0].conditions, "Accepted").status, "True");
    assert_eq!(cond(&p[0].conditions, "ResolvedRefs").status, "True");
    assert!(
        t.problems.iter().all(|p| p.name != "query-param-matching"),
        "{:?}",
        t.problems
    );
}

/// Whether an HTTPRoute match holds for a request, by the spec (paths: Exact and
/// element-wise PathPrefix; header names case-insensitive; query names exact, first value).
fn spec_holds(
    m: &crate::gateway_api::HttpRouteMatch,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    query: &[(&str, &str)],
) -> bool {
    let p = m.path.as_ref();
    let ptype = p.and_then(|p| p.type_.as_deref()).unwrap_or("PathPrefix");
    let pvalue = p.and_then(|p| p.value.as_deref()).unwrap_or("/");
    let path_ok = match ptype {
        "Exact" => path == pvalue,
        _ => {
            let v = pvalue.trim_end_matches('/');
            v.is_empty() || path == v || path.starts_with(&format!("{v}/"))
        }
    };
    path_ok
        && m.method.as_deref().is_none_or(|x| x == method)
        && m.headers.iter().all(|h| {
            headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(&h.name) && *v == h.value)
        })
        && m.query_params.iter().all(|q| {
            query
                .iter()
                .find(|(n, _)| *n == q.name)
                .is_some_and(|(_, v)| *v == q.value)
        })
}

#[test]
fn precedence_through_the_router_is_the_spec_order() {
    let fixture = include_str!("../../../tests/fixtures/gateway-api/precedence.yaml");
    let t = case(fixture);
    let mut objects = Snapshot::default();
    load(&mut objects, fixture);
    // Every match of the fixture with the spec's key: exact path, longest prefix, method,
    // most headers, most query parameters, oldest, namespace/name, rule, match order.
    type Key = (
        u8,
        std::cmp::Reverse<usize>,
        bool,
        std::cmp::Reverse<usize>,
        std::cmp::Reverse<usize>,
        String,
        String,
        usize,
        usize,
    );
    let mut all: Vec<(Key, String, &crate::gateway_api::HttpRouteMatch)> = Vec::new();
    for hr in &objects.http_routes {
        let (ns, name) = super::super::key(&hr.metadata);
        let created = hr
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        for (i, rule) in hr.spec.rules.iter().enumerate() {
            for (j, m) in rule.matches.iter().enumerate() {
                let p = m.path.as_ref();
                let exact = p.and_then(|p| p.type_.as_deref()) == Some("Exact");
                let len = p
                    .and_then(|p| p.value.as_deref())
                    .unwrap_or("/")
                    .trim_end_matches('/')
                    .len();
                let key = (
                    u8::from(!exact),
                    std::cmp::Reverse(len),
                    m.method.is_none(),
                    std::cmp::Reverse(m.headers.len()),
                    std::cmp::Reverse(m.query_params.len()),
                    created.clone(),
                    format!("{ns}/{name}"),
                    i,
                    j,
                );
                all.push((key, format!("httproute.{ns}.{name}.{i}.{j}"), m));
            }
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let header_sets: [&[(&str, &str)]; 4] = [
        &[],
        &[("h1", "1")],
        &[("h2", "1")],
        &[("h1", "1"), ("h2", "1")],
    ];
    let query_sets: [&[(&str, &str)]; 4] = [
        &[],
        &[("q1", "1")],
        &[("q2", "1")],
        &[("q1", "1"), ("q2", "1")],
    ];
    let mut checked = 0;
    let mut winners = std::collections::BTreeSet::new();
    for path in ["/p/a", "/p/x", "/p/x/y"] {
        for method in ["GET", "POST", "PUT"] {
            for headers in header_sets {
                for query in query_sets {
                    let want = all
                        .iter()
                        .find(|(_, _, m)| spec_holds(m, method, path, headers, query))
                        .map(|(_, name, _)| name.clone());
                    let qs: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();
                    let url = format!("{path}?{}", qs.join("&"));
                    let got = serve(&t, "prec.test", method, &url, headers);
                    assert_eq!(got, want, "{method} {url} {headers:?}");
                    winners.extend(got);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 144);
    // The fixture exercises each tie-break: most of its matches win some request.
    assert!(winners.len() >= 9, "{winners:?}");
}

#[test]
fn weights_filters_redirects_rewrites_and_mirrors() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/weights-and-filters.yaml"
    ));
    let r = |i: usize| route(&t, &format!("httproute.app.filters.{i}.0"));
    let split = |rc: &RouteConfig| -> Vec<(String, u32)> {
        rc.split
            .iter()
            .map(|s| (s.upstream.clone(), s.weight))
            .collect()
    };
    assert_eq!(r(0).upstream, "app.web-v1.8080");
    assert_eq!(split(r(0)), [("app.web-v2.8080".to_string(), 30)]);
    // 1:2 is 33/67 in whole percents; the heavier backend is the route's upstream.
    assert_eq!(r(1).upstream, "app.web-v2.8080");
    assert_eq!(split(r(1)), [("app.web-v1.8080".to_string(), 33)]);
    // Header modifiers.
    let h = r(2);
    assert_eq!(
        h.request_headers.set.get("x-env").map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        h.request_headers.add.get("x-via").map(String::as_str),
        Some("pingway")
    );
    assert_eq!(h.request_headers.remove, ["x-debug"]);
    assert_eq!(
        h.response_headers
            .set
            .get("cache-control")
            .map(String::as_str),
        Some("no-store")
    );
    // Redirects: the redirect plugin, nothing sent upstream.
    let red = r(3);
    let p = red
        .plugins
        .iter()
        .find(|p| p.name == "redirect")
        .expect("redirect");
    assert_eq!(
        p.config.to_json(),
        json!({"status_code": 301, "scheme": "https", "host": "secure.test"})
    );
    let full = r(4);
    let p = full
        .plugins
        .iter()
        .find(|p| p.name == "redirect")
        .expect("redirect");
    assert_eq!(
        p.config.to_json(),
        json!({"status_code": 302, "path": "/elsewhere"})
    );
    assert_eq!(
        status_code_of(r(5)),
        Some(500),
        "ReplacePrefixMatch redirects are not supported"
    );
    // Rewrites, checked with the gateway's own rewrite.
    let rewrite = |rc: &RouteConfig, path: &str| -> String {
        let mut d = Vec::new();
        let c = pingway::route_rewrite::CompiledRewrite::compile(
            rc.path_rewrite.as_ref().expect("path_rewrite"),
            "x",
            &mut d,
        )
        .expect("compiles");
        assert!(d.is_empty(), "{d:?}");
        let uri: http::Uri = path.parse().unwrap();
        c.apply(&uri)
            .map(|u| u.to_string())
            .unwrap_or_else(|| path.to_string())
    };
    let old = r(6);
    assert_eq!(
        old.request_headers.set.get("host").map(String::as_str),
        Some("rewritten.test")
    );
    assert_eq!(rewrite(old, "/old"), "/new");
    assert_eq!(rewrite(old, "/old/x?y=1"), "/new/x?y=1");
    assert_eq!(rewrite(r(7), "/strip"), "/");
    assert_eq!(rewrite(r(7), "/strip/a/b"), "/a/b");
    assert_eq!(rewrite(r(8), "/full/deep/path"), "/one");
    // Mirror.
    let m = r(9);
    assert_eq!(m.mirrors.len(), 1);
    assert_eq!(m.mirrors[0].upstream, "app.web-v2.8080");
    assert_eq!(m.mirrors[0].percentage, 25.0);
    // ExtensionRef to a GatewayPlugin.
    assert!(r(10).plugins.iter().any(|p| p.name == "rate-limiting"));
    // An unknown filter: 500, reported.
    assert_eq!(status_code_of(r(11)), Some(500));
    let p = parents(&t, "app", "filters");
    let pi = cond(&p[0].conditions, "PartiallyInvalid");
    assert!(
        pi.message.contains("CORS") && pi.message.contains("ReplacePrefixMatch"),
        "{}",
        pi.message
    );
    assert_eq!(pi.observed_generation, Some(7));
}

#[test]
fn invalid_backends_answer_500_with_reasons() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/invalid-backends.yaml"
    ));
    assert_eq!(
        status_code_of(route(&t, "httproute.app.invalid.0.0")),
        Some(500)
    );
    assert_eq!(
        status_code_of(route(&t, "httproute.app.invalid.1.0")),
        Some(500)
    );
    // One valid backend of two: it takes all the traffic.
    let half = route(&t, "httproute.app.invalid.2.0");
    assert_eq!(status_code_of(half), None);
    assert_eq!(half.upstream, "app.web-v1.8080");
    assert!(half.split.is_empty());
    let p = parents(&t, "app", "invalid");
    let rr = cond(&p[0].conditions, "ResolvedRefs");
    assert_eq!(
        (rr.status.as_str(), rr.reason.as_str()),
        ("False", "InvalidKind")
    );
    assert!(t
        .problems
        .iter()
        .any(|p| p.reason.contains("Service app/nowhere not found")));
}

#[test]
fn listeners_allowed_routes_and_section_names() {
    let t = case(include_str!(
        "../../../tests/fixtures/gateway-api/listeners.yaml"
    ));
    assert!(!t.config.routes.iter().any(|r| r.name.contains("from-app")));
    let p = parents(&t, "app", "from-app");
    let reasons: Vec<&str> = p
        .iter()
        .map(|e| cond(&e.conditions, "Accepted").reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "NotAllowedByListeners",
            "NotAllowedByListeners",
            "NoMatchingParent"
        ]
    );
    assert!(t
        .problems
        .iter()
        .any(|p| p.kind == "Gateway" && p.reason.contains("Selector")));
}

#[test]
fn https_listeners_serve_their_certificates_and_refuse_ungranted_ones() {
    let mut s = Snapshot::default();
    load(&mut s, BASE);
    let cert = rcgen_free_cert();
    for (ns, name) in [("infra", "good"), ("other", "elsewhere")] {
        s.secrets
            .push(obj(json!({"metadata": {"namespace": ns, "name": name},
            "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(&cert.0), "tls.key": b64(&cert.1)}})));
    }
    s.secrets.push(obj(
        json!({"metadata": {"namespace": "infra", "name": "junk"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64("not pem"), "tls.key": b64("nor this")}}),
    ));
    s.gateways.push(obj(json!({
    "metadata": {"namespace": "infra", "name": "secure", "generation": 1},
    "spec": {"gatewayClassName": "pingway", "listeners": [
        {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "a.example.com",
         "tls": {"certificateRefs": [{"name": "good"}]}},
        {"name": "ungranted", "port": 443, "protocol": "HTTPS", "hostname": "b.example.com",
         "tls": {"certificateRefs": [{"name": "elsewhere", "namespace": "other"}]}},
        {"name": "tcp", "port": 9000, "protocol": "TCP"},
            {"name": "junk", "port": 443, "protocol": "HTTPS", "hostname": "c.example.com",
             "tls": {"certificateRefs": [{"name": "junk"}]}}
    ]}})));
    s.http_routes.push(obj(json!({
        "metadata": {"namespace": "infra", "name": "tls-only", "generation": 1},
        "spec": {"parentRefs": [{"name": "secure", "sectionName": "https"}],
                 "rules": [{"backendRefs": [{"name": "web-v1", "port": 8080}]}]}})));
    let t = run(&s);
    let tls = t.config.listeners[1].tls.as_ref().expect("https listener");
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(tls.certificates[0].snis, ["a.example.com"]);
    let r = route(&t, "httproute.infra.tls-only.0.0");
    assert_eq!(r.hosts, ["a.example.com"]);
    assert_eq!(r.protocols, [pingway::config::Protocol::Https]);
    let gw = &t
        .gateway_api_status
        .gateways
        .iter()
        .find(|g| g.name == "secure")
        .unwrap()
        .status;
    assert_eq!(gw.listeners[0].attached_routes, 1);
    let rr = cond(&gw.listeners[1].conditions, "ResolvedRefs");
    assert_eq!(
        (rr.status.as_str(), rr.reason.as_str()),
        ("False", "RefNotPermitted")
    );
    let acc = cond(&gw.listeners[2].conditions, "Accepted");
    assert_eq!(
        (acc.status.as_str(), acc.reason.as_str()),
        ("False", "UnsupportedProtocol")
    );
    assert!(gw.listeners[2].supported_kinds.is_empty());
    // A Secret whose PEM the gateway refuses: left out, and the listener says so.
    assert_eq!(
        cond(&gw.listeners[0].conditions, "ResolvedRefs").status,
        "True"
    );
    let rr = cond(&gw.listeners[3].conditions, "ResolvedRefs");
    assert_eq!(
        (rr.status.as_str(), rr.reason.as_str()),
        ("False", "InvalidCertificateRef")
    );
    // A grant makes the second certificate usable.
    s.reference_grants.push(obj(json!({
        "metadata": {"namespace": "other", "name": "certs"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra"}],
                 "to": [{"group": "", "kind": "Secret", "name": "elsewhere"}]}})));
    let t = run(&s);
    let tls = t.config.listeners[1].tls.as_ref().expect("https listener");
    assert_eq!(tls.certificates.len(), 2);
}

#[test]
fn gateway_controller_option_selects_classes() {
    let mut s = Snapshot::default();
    load(&mut s, BASE);
    load(
        &mut s,
        include_str!("../../../tests/fixtures/gateway-api/simple.yaml"),
    );
    let opts = Options {
        gateway_controller: "example.com/another-controller".into(),
        gateway_addresses: vec!["203.0.113.7".into(), "lb.example.net".into()],
        ..Options::default()
    };
    let t = translate(&s, &opts);
    // Now `theirs` is ours and `gw` is not.
    assert!(route_opt(&t, "httproute.infra.not-ours.0.0").is_some());
    assert!(route_opt(&t, "httproute.infra.simple.0.0").is_none());
    let gw = &t.gateway_api_status.gateways;
    assert_eq!(gw.len(), 1);
    assert_eq!(gw[0].name, "theirs");
    let addrs: Vec<(Option<&str>, &str)> = gw[0]
        .status
        .addresses
        .iter()
        .map(|a| (a.type_.as_deref(), a.value.as_str()))
        .collect();
    assert_eq!(
        addrs,
        [
            (Some("IPAddress"), "203.0.113.7"),
            (Some("Hostname"), "lb.example.net")
        ]
    );
}

fn route_opt<'a>(t: &'a Translation, name: &str) -> Option<&'a RouteConfig> {
    t.config.routes.iter().find(|r| r.name == name)
}

#[test]
fn istio_host_routing_example() {
    let mut s = Snapshot::default();
    load(&mut s, BASE);
    load(
        &mut s,
        include_str!("../../../examples/istio-host-routing/gateway.yaml"),
    );
    load(
        &mut s,
        "apiVersion: v1\nkind: Service\nmetadata: {name: apigateway, namespace: istioinaction}\nspec: {ports: [{name: http, port: 8080}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: apigateway-x, namespace: istioinaction, labels: {kubernetes.io/service-name: apigateway}}\naddressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints: [{addresses: [10.9.0.1]}]\n",
    );
    let t = run(&s);
    let r = route(&t, "httproute.istioinaction.apigateway-vs-from-gw.0.0");
    assert_eq!(r.hosts, ["apiserver.istioinaction.io"]);
    assert_eq!(r.upstream, "istioinaction.apigateway.8080");
    assert_eq!(
        serve(&t, "apiserver.istioinaction.io", "GET", "/", &[]).as_deref(),
        Some("httproute.istioinaction.apigateway-vs-from-gw.0.0")
    );
    assert_eq!(serve(&t, "192.168.64.27:31380", "GET", "/", &[]), None);
    let p = parents(&t, "istioinaction", "apigateway-vs-from-gw");
    assert_eq!(cond(&p[0].conditions, "Accepted").status, "True");
    assert_eq!(cond(&p[0].conditions, "ResolvedRefs").status, "True");
}

#[test]
fn status_plan_patches_only_differences_and_keeps_times() {
    use crate::gateway_status::{plan, Kind};
    let mut s = Snapshot::default();
    load(&mut s, BASE);
    load(
        &mut s,
        include_str!("../../../tests/fixtures/gateway-api/simple.yaml"),
    );
    let t = run(&s);
    let ctl = "pingway.io/gateway-controller";
    let first = plan(&s, &t.gateway_api_status, ctl, "2026-01-01T00:00:00Z");
    let kinds: Vec<(Kind, &str)> = first.iter().map(|p| (p.kind, p.name.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (Kind::GatewayClass, "pingway"),
            (Kind::Gateway, "gw"),
            (Kind::HttpRoute, "simple")
        ]
    );
    // Apply the patches to the objects as the API server would, with another
    // controller's entry already on the route.
    let mut objs = s.clone();
    let other = json!({"parentRef": {"name": "theirs"}, "controllerName": "example.com/another-controller",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "2020-01-01T00:00:00Z"}]});
    for p in &first {
        let mut status = p.body["status"].clone();
        match p.kind {
            Kind::GatewayClass => {
                let mut c = (*objs.gateway_classes[0]).clone();
                c.status = serde_json::from_value(status).unwrap();
                objs.gateway_classes[0] = Arc::new(c);
            }
            Kind::Gateway => {
                let i = objs
                    .gateways
                    .iter()
                    .position(|g| g.metadata.name.as_deref() == Some("gw"))
                    .unwrap();
                let mut g = (*objs.gateways[i]).clone();
                g.status = serde_json::from_value(status).unwrap();
                objs.gateways[i] = Arc::new(g);
            }
            Kind::HttpRoute => {
                status["parents"]
                    .as_array_mut()
                    .unwrap()
                    .insert(0, other.clone());
                let i = objs
                    .http_routes
                    .iter()
                    .position(|r| r.metadata.name.as_deref() == Some("simple"))
                    .unwrap();
                let mut r = (*objs.http_routes[i]).clone();
                r.status = serde_json::from_value(status).unwrap();
                objs.http_routes[i] = Arc::new(r);
            }
        }
    }
    // Nothing differs: nothing to write.
    assert_eq!(
        plan(&objs, &t.gateway_api_status, ctl, "2026-01-02T00:00:00Z"),
        []
    );
    // The route's backend goes away: only the route's status changes; Accepted keeps
    // its time, ResolvedRefs gets the new one, and the other controller's entry stays.
    let mut broken = objs.clone();
    broken
        .services
        .retain(|s| s.metadata.namespace.as_deref() != Some("infra"));
    let t2 = run(&broken);
    let second = plan(&broken, &t2.gateway_api_status, ctl, "2026-01-03T00:00:00Z");
    assert_eq!(second.len(), 1, "{second:#?}");
    assert_eq!(second[0].kind, Kind::HttpRoute);
    let parents = second[0].body["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0], other);
    let conds = parents[1]["conditions"].as_array().unwrap();
    let time =
        |ty: &str| conds.iter().find(|c| c["type"] == ty).unwrap()["lastTransitionTime"].clone();
    assert_eq!(time("Accepted"), "2026-01-01T00:00:00Z");
    assert_eq!(time("ResolvedRefs"), "2026-01-03T00:00:00Z");
}
