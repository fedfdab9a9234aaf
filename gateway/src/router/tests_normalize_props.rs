//! Property tests over hostile paths: normalization is idempotent, leaves nothing a
//! backend would resolve differently, and routing agrees with it.

use std::borrow::Cow;

use http::{HeaderMap, Method};
use proptest::prelude::*;

use super::tests::{exact, prefix, regex, route};
use super::*;

/// Paths built from the pieces traversal and encoding tricks are made of.
fn hostile_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("//"),
        Just("."),
        Just(".."),
        Just("%2E"),
        Just("%2e"),
        Just("%2E%2E"),
        Just(".%2e"),
        Just("%"),
        Just("%zz"),
        Just("%41"),
        Just("%2F"),
        Just("%7E"),
        Just("a"),
        Just("admin"),
        Just("x"),
        Just("1"),
        Just("é"),
        Just("~"),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat()))
}

fn router() -> Router {
    Router::build(&[
        route(&[], vec![prefix("/admin")]),
        route(&[], vec![exact("/a")]),
        route(&[], vec![regex("/x/[0-9]+")]),
        route(&[], vec![prefix("/a/admin")]),
        route(&[], vec![prefix("/")]),
    ])
    .expect("valid routes")
}

fn find(router: &Router, path: &str) -> Option<RouteMatch> {
    router.find(&RouteRequest {
        host: Some("h"),
        path,
        method: &Method::GET,
        headers: &HeaderMap::new(),
        query: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn normalization_is_idempotent(path in hostile_path()) {
        let once = normalize_path(&path).into_owned();
        let twice = normalize_path(&once);
        prop_assert_eq!(&*twice, once.as_str());
        prop_assert!(matches!(twice, Cow::Borrowed(_)), "{:?} was rewritten again", once);
    }

    #[test]
    fn normalized_paths_have_no_dot_segments_or_unreserved_escapes(path in hostile_path()) {
        let n = normalize_path(&path);
        prop_assert!(n.starts_with('/'));
        for bad in ["//", "/./", "/../"] {
            prop_assert!(!n.contains(bad), "{:?} -> {:?}", path, n);
        }
        prop_assert!(!n.ends_with("/.") && !n.ends_with("/.."), "{:?} -> {:?}", path, n);
        for escape in ["%2E", "%2e", "%41", "%7E"] {
            prop_assert!(!n.contains(escape), "{:?} -> {:?}", path, n);
        }
    }

    /// What the gateway routes is what it forwards: routing the normalized path again (a
    /// second gateway, or the backend's own router) picks the same route, and a path with
    /// nothing to normalize routes as it is.
    #[test]
    fn routing_a_raw_path_agrees_with_routing_its_normal_form(path in hostile_path()) {
        let router = router();
        let normal = normalize_path(&path);
        let routed = find(&router, &normal);
        prop_assert_eq!(routed, find(&router, &normalize_path(&normal)));
        if matches!(normal, Cow::Borrowed(_)) {
            prop_assert_eq!(find(&router, &path), routed);
        }
    }
}
