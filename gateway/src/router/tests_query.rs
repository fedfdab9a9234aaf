//! Query parameter conditions: matching, precedence against methods and headers,
//! explanations, diagnostics, and the bound on what a hostile query costs.

use http::Method;

use super::tests::{exact, find, h_exact, header, header_map, methods, prefix, route};
use super::*;
use crate::config::QueryMatch;

fn qm(name: &str) -> QueryMatch {
    QueryMatch {
        name: name.into(),
        exact: None,
        regex: None,
        present: None,
    }
}

fn q_exact(name: &str, v: &str) -> QueryMatch {
    QueryMatch {
        exact: Some(v.into()),
        ..qm(name)
    }
}

fn q_regex(name: &str, re: &str) -> QueryMatch {
    QueryMatch {
        regex: Some(re.into()),
        ..qm(name)
    }
}

fn q_present(name: &str, present: bool) -> QueryMatch {
    QueryMatch {
        present: Some(present),
        ..qm(name)
    }
}

fn query(mut r: RouteConfig, q: QueryMatch) -> RouteConfig {
    r.query_params.push(q);
    r
}

/// The route index `router` picks for `GET path?query`.
fn pick(router: &Router, path_and_query: &str) -> Option<usize> {
    find(router, None, "GET", path_and_query, &[]).map(|m| m.route)
}

#[test]
fn exact_regex_and_presence() {
    let routes = [
        /* 0 */ route(&[], vec![prefix("/")]),
        /* 1 */ query(route(&[], vec![prefix("/")]), q_exact("v", "2")),
        /* 2 */
        query(
            route(&[], vec![prefix("/")]),
            q_regex("tier", "^(gold|silver)$"),
        ),
        /* 3 */ query(route(&[], vec![prefix("/")]), q_present("debug", true)),
        /* 4 */ query(route(&[], vec![prefix("/x")]), q_present("legacy", false)),
        /* 5 */ route(&[], vec![prefix("/x")]),
    ];
    let router = Router::build(&routes).expect("valid");
    let cases: &[(&str, Option<usize>, &str)] = &[
        ("/a", Some(0), "no query: the route without conditions"),
        ("/a?v=2", Some(1), "exact"),
        ("/a?v=22", Some(0), "exact is whole"),
        ("/a?v=3", Some(0), "exact fails"),
        ("/a?V=2", Some(0), "names are case-sensitive"),
        ("/a?tier=gold", Some(2), "regex"),
        ("/a?tier=bronze", Some(0), "regex fails"),
        ("/a?debug", Some(3), "a bare name is present"),
        ("/a?debug=", Some(3), "an empty value is present"),
        ("/a?x=1&debug=0", Some(3), "present, not first"),
        ("/x/y", Some(4), "absent holds without a query"),
        ("/x/y?legacy=1", Some(5), "absent fails"),
        ("/a?v=2&v=3", Some(1), "the first value counts"),
        ("/a?v=3&v=2", Some(0), "a later value does not count"),
        ("/a?&&v=2&", Some(1), "empty parts are skipped"),
    ];
    for (pq, want, why) in cases {
        assert_eq!(pick(&router, pq), *want, "{why}: {pq}");
    }
}

#[test]
fn names_and_values_are_percent_decoded_and_plus_is_not_a_space() {
    let routes = [
        /* 0 */ route(&[], vec![]),
        /* 1 */ query(route(&[], vec![]), q_exact("a", "b c")),
        /* 2 */ query(route(&[], vec![]), q_exact("x=y", "1")),
        /* 3 */ query(route(&[], vec![]), q_exact("plus", "a+b")),
        /* 4 */ query(route(&[], vec![]), q_regex("re", "^é$")),
    ];
    let router = Router::build(&routes).expect("valid");
    assert_eq!(pick(&router, "/?a=b%20c"), Some(1));
    assert_eq!(pick(&router, "/?%61=b%20c"), Some(1), "the name too");
    assert_eq!(pick(&router, "/?a=b+c"), Some(0), "+ is not a space");
    assert_eq!(pick(&router, "/?x%3Dy=1"), Some(2));
    assert_eq!(pick(&router, "/?plus=a+b"), Some(3));
    assert_eq!(pick(&router, "/?plus=a%2Bb"), Some(3));
    assert_eq!(
        pick(&router, "/?re=%C3%A9"),
        Some(4),
        "decoded UTF-8 for regexes"
    );
    assert_eq!(
        pick(&router, "/?a=b%2"),
        Some(0),
        "an invalid escape is kept"
    );
}

#[test]
fn precedence_is_method_then_headers_then_query_then_file_order() {
    let routes = [
        /* 0 */ query(route(&[], vec![exact("/p")]), q_exact("a", "1")),
        /* 1 */
        query(
            query(route(&[], vec![exact("/p")]), q_exact("a", "1")),
            q_exact("b", "1"),
        ),
        /* 2 */ header(route(&[], vec![exact("/p")]), h_exact("x-h", "1")),
        /* 3 */
        header(
            header(route(&[], vec![exact("/p")]), h_exact("x-h", "1")),
            h_exact("x-i", "1"),
        ),
        /* 4 */ methods(route(&[], vec![exact("/p")]), &["GET"]),
        /* 5 */ route(&[], vec![exact("/p")]),
        /* 6 */ query(route(&[], vec![exact("/p")]), q_exact("a", "1")),
        /* 7 */ query(route(&[], vec![prefix("/p")]), q_exact("z", "1")),
    ];
    let router = Router::build(&routes).expect("valid");
    let at = |method: &str, pq: &str, headers: &[(&str, &str)]| {
        find(&router, None, method, pq, headers).map(|m| m.route)
    };
    let both = [("x-h", "1"), ("x-i", "1")];
    // A method list outranks two header conditions (the Gateway API's order).
    assert_eq!(at("GET", "/p?a=1&b=1", &both), Some(4));
    // Without the method: two headers, then one header, then two queries, then one.
    assert_eq!(at("POST", "/p?a=1&b=1", &both), Some(3));
    assert_eq!(at("POST", "/p?a=1&b=1", &[("x-h", "1")]), Some(2));
    assert_eq!(at("POST", "/p?a=1&b=1", &[]), Some(1));
    // Equal specificity: file order (0 before 6).
    assert_eq!(at("POST", "/p?a=1", &[]), Some(0));
    assert_eq!(at("POST", "/p", &[]), Some(5));
    // The path still comes first: an exact path without query conditions beats a
    // prefix with one.
    assert_eq!(at("POST", "/p?z=1", &[]), Some(5));
    assert_eq!(at("POST", "/p/q?z=1", &[]), Some(7));
}

#[test]
fn explain_names_the_failing_query_condition_and_ranks_it_last() {
    let routes = [header(
        query(
            query(route(&[], vec![prefix("/")]), q_exact("a", "1")),
            q_regex("b", "^x"),
        ),
        h_exact("x-h", "1"),
    )];
    let router = Router::build(&routes).expect("valid");
    let headers = header_map(&[("x-h", "1")]);
    let check = |path_query: Option<&str>, headers: &http::HeaderMap| {
        router.check_route(
            0,
            &routes[0],
            &RouteRequest {
                host: None,
                path: "/",
                method: &Method::GET,
                headers,
                query: path_query,
            },
        )
    };
    match check(Some("a=1&b=y"), &headers) {
        RouteCheck::Fails(f) => {
            assert_eq!(
                f,
                Failure::Query {
                    index: 1,
                    condition: "b ~ /^x/".into()
                }
            );
            assert_eq!(f.condition(), "query");
            assert_eq!(f.depth(), 4);
            assert_eq!(
                f.to_string(),
                "query condition query_params[1]: b ~ /^x/ does not hold"
            );
        }
        other => panic!("{other:?}"),
    }
    // A header failure is reported before the query's.
    match check(Some("b=y"), &http::HeaderMap::new()) {
        RouteCheck::Fails(f) => assert_eq!(f.condition(), "header"),
        other => panic!("{other:?}"),
    }
    match check(Some("a=1&b=xy"), &headers) {
        RouteCheck::Accepts { weight, .. } => {
            assert_eq!(
                weight,
                Specificity {
                    method: false,
                    headers: 1,
                    query_params: 2
                }
            );
            assert_eq!(weight.conditions(), 3);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejects_invalid_query_conditions_naming_the_field() {
    let both = QueryMatch {
        regex: Some("x".into()),
        ..q_exact("a", "a")
    };
    let cases = [
        (
            q_regex("a", "(unclosed"),
            "routes[1].query_params[0].regex",
            "unclosed group",
        ),
        (
            q_regex("a", "x{1000}{1000}"),
            "routes[1].query_params[0].regex",
            "invalid regular expression",
        ),
        (q_exact("", "v"), "routes[1].query_params[0].name", "empty"),
        (
            qm("a"),
            "routes[1].query_params[0]",
            "exactly one of exact, regex, present",
        ),
        (
            both,
            "routes[1].query_params[0]",
            "exactly one of exact, regex, present",
        ),
    ];
    for (q, path, message) in cases {
        let routes = [route(&[], vec![]), query(route(&[], vec![]), q)];
        let errs: Vec<Diagnostic> = Router::build(&routes).err().unwrap_or_default();
        assert_eq!(errs.len(), 1, "{path}: {errs:?}");
        assert_eq!(errs[0].path, path);
        assert!(
            errs[0].message.contains(message),
            "{path}: {}",
            errs[0].message
        );
    }
}

#[test]
fn thousands_of_parameters_cost_at_most_the_bound() {
    let routes = [
        /* 0 */ route(&[], vec![]),
        /* 1 */ query(route(&[], vec![]), q_exact("last", "1")),
        /* 2 */ query(route(&[], vec![]), q_exact("early", "1")),
    ];
    let router = Router::build(&routes).expect("valid");
    let mut params: Vec<String> = vec!["early=1".into()];
    params.extend((0..20_000).map(|i| format!("p{i}=v")));
    params.push("last=1".into());
    let pq = format!("/?{}", params.join("&"));
    let before = truncated_queries();
    // `last` is past the bound: it does not exist for routing, and the request counts.
    assert_eq!(pick(&router, &pq), Some(2));
    assert!(truncated_queries() > before);
    // Within the bound, the last parameter looked at still counts.
    let mut params: Vec<String> = (0..MAX_QUERY_PARAMS - 1)
        .map(|i| format!("p{i}=v"))
        .collect();
    params.push("last=1".into());
    assert_eq!(pick(&router, &format!("/?{}", params.join("&"))), Some(1));
}

#[test]
fn a_table_without_query_conditions_ignores_the_query() {
    let routes = [
        header(route(&[], vec![prefix("/")]), h_exact("x-h", "1")),
        route(&[], vec![prefix("/")]),
    ];
    let router = Router::build(&routes).expect("valid");
    // Even a malformed or huge query changes nothing.
    let huge = format!("/?{}", vec!["a=%zz"; 5000].join("&"));
    assert_eq!(pick(&router, &huge), Some(1));
    assert_eq!(
        find(&router, None, "GET", &huge, &[("x-h", "1")]).map(|m| m.route),
        Some(0)
    );
}
