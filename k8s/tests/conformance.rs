//! Golden tests over YAML fixtures of objects (tests/fixtures/): the Ingress
//! conformance cases (kubernetes-sigs/ingress-controller-conformance: default backend,
//! host rules, path rules, ingress classes), precedence across Ingresses and the route
//! annotations. Each fixture is translated as the watcher would, the typed
//! configuration is checked, and requests are matched through the gateway's real
//! router (`Router::build` + `find`), so precedence is asserted on matching, not on the
//! text of the file. (translate/tests.rs covers each rule alone; this covers them as a
//! controller meets them, together.)

use std::path::Path;

use pingway::config::{GatewayConfig, PathMatch, Protocol};
use pingway::router::{normalize_path, RouteRequest, Router};
use pingway_k8s::{translate, Options, Snapshot, Translation, UpstreamMode};

fn fixture(name: &str) -> Snapshot {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut s = Snapshot::default();
    pingway_k8s::load::add_manifests(&mut s, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
    s
}

fn run(s: &Snapshot, class: &str) -> Translation {
    let opts = Options {
        ingress_class: class.into(),
        upstreams: UpstreamMode::Dns,
        ..Options::default()
    };
    let t = translate(s, &opts);
    if let Err(d) = pingway_k8s::translate::check(&t.yaml) {
        panic!("the gateway refuses the output: {d:?}\n{}", t.yaml);
    }
    t
}

/// The Service (`<ns>.<svc>.<port>` upstream → `svc`) a request reaches, or None for 404.
fn reaches(config: &GatewayConfig, router: &Router, host: &str, path: &str) -> Option<String> {
    reaches_with(config, router, host, "GET", path, &http::HeaderMap::new())
}

fn reaches_with(
    config: &GatewayConfig,
    router: &Router,
    host: &str,
    method: &str,
    path: &str,
    headers: &http::HeaderMap,
) -> Option<String> {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let path = normalize_path(path);
    let m = router.find(&RouteRequest {
        host: Some(host),
        path: &path,
        method: &method,
        headers,
        query,
    })?;
    let upstream = &config.routes[m.route].upstream;
    Some(upstream.split('.').nth(1).unwrap_or_default().to_string())
}

fn check_cases(t: &Translation, cases: &[(&str, &str, Option<&str>)]) {
    let router = Router::build(&t.config.routes).expect("the router takes the routes");
    for (host, path, want) in cases {
        assert_eq!(
            reaches(&t.config, &router, host, path).as_deref(),
            *want,
            "{host}{path}\n{}",
            t.yaml
        );
    }
}

#[test]
fn path_rules() {
    let t = run(&fixture("conformance/path-rules.yaml"), "pingway");
    assert!(t.problems.is_empty(), "{:#?}", t.problems);
    let h = "path-rules";
    check_cases(
        &t,
        &[
            // Exact over Prefix for the same path; Prefix is element-wise.
            (h, "/foo", Some("foo-exact")),
            (h, "/foo/", Some("foo-prefix")),
            (h, "/foo/bar", Some("foo-prefix")),
            (h, "/foobar", None),
            // The longest prefix wins, element by element.
            (h, "/aaa/bbb", Some("aaa-slash-bbb-prefix")),
            (h, "/aaa/bbb/", Some("aaa-slash-bbb-prefix")),
            (h, "/aaa/bbb/ccc", Some("aaa-slash-bbb-prefix")),
            (h, "/aaa/bbbxyz", Some("aaa-prefix")),
            (h, "/aaa", Some("aaa-prefix")),
            (h, "/aaa/ccc", Some("aaa-prefix")),
            (h, "/xyz", None),
            // A trailing slash on a Prefix is ignored; on an Exact path it is not.
            (h, "/bar", Some("bar-trailing-prefix")),
            (h, "/bar/", Some("bar-trailing-prefix")),
            (h, "/bar/x", Some("bar-trailing-prefix")),
            (h, "/barx", None),
            (h, "/baz/", Some("baz-trailing-exact")),
            (h, "/baz", None),
            // Another host: nothing.
            ("other", "/foo", None),
        ],
    );
    // And the typed output: one route per path, the matcher as written.
    let paths: Vec<&PathMatch> = t.config.routes.iter().flat_map(|r| &r.paths).collect();
    assert!(paths.contains(&&PathMatch::Exact("/foo".into())));
    assert!(paths.contains(&&PathMatch::Prefix("/bar/".into())));
    assert_eq!(t.config.routes.len(), 6);
}

#[test]
fn host_rules() {
    let t = run(&fixture("conformance/host-rules.yaml"), "pingway");
    assert!(t.problems.is_empty(), "{:#?}", t.problems);
    check_cases(
        &t,
        &[
            ("foo.bar.com", "/", Some("host-exact")),
            ("FOO.bar.COM", "/x", Some("host-exact")),
            ("foo.bar.com:8080", "/", Some("host-exact")),
            ("bar.com", "/", None),
            ("bar.foo.com", "/", Some("host-wildcard")),
            ("BAR.foo.com", "/", Some("host-wildcard")),
            // One label only.
            ("baz.bar.foo.com", "/", None),
            ("foo.com", "/", None),
        ],
    );
    let hosts: Vec<&str> = t
        .config
        .routes
        .iter()
        .flat_map(|r| &r.hosts)
        .map(String::as_str)
        .collect();
    assert_eq!(hosts, ["foo.bar.com", "*.foo.com"]);
}

#[test]
fn default_backend() {
    let t = run(&fixture("conformance/default-backend.yaml"), "pingway");
    assert!(t.problems.is_empty(), "{:#?}", t.problems);
    check_cases(
        &t,
        &[
            ("anything.test", "/", Some("default-backend")),
            ("anything.test", "/some/path", Some("default-backend")),
            ("rules.test", "/only", Some("ruled")),
            ("rules.test", "/only/more", Some("ruled")),
            // The rule's host does not match this path: the default backend takes it.
            ("rules.test", "/other", Some("default-backend")),
        ],
    );
    let d = t
        .config
        .routes
        .iter()
        .find(|r| r.name == "conformance.default-backend.default")
        .expect("default route");
    assert!(d.hosts.is_empty() && d.paths.is_empty());
}

#[test]
fn precedence_across_ingresses() {
    let t = run(&fixture("conformance/precedence.yaml"), "pingway");
    assert!(t.problems.is_empty(), "{:#?}", t.problems);
    check_cases(
        &t,
        &[
            // An exact host takes its requests even when a wildcard has a longer path.
            ("app.example.com", "/api/x", Some("exact-host-root")),
            ("app.example.com", "/", Some("exact-host-root")),
            // A wildcard host before no host.
            ("other.example.com", "/api/x", Some("wildcard-api")),
            // The wildcard's paths do not match: on to the routes without hosts.
            ("other.example.com", "/", Some("catch-all")),
            // Two labels: not the wildcard.
            ("a.b.example.com", "/api", Some("catch-all")),
            // Longest prefix, then Exact over Prefix, across Ingresses.
            ("unknown.test", "/api/v1/users", Some("v1-prefix")),
            ("unknown.test", "/api/v1", Some("v1-exact")),
            ("unknown.test", "/api/v1/", Some("v1-prefix")),
            ("unknown.test", "/api/v10", Some("catch-all")),
        ],
    );
}

#[test]
fn ingress_classes() {
    let s = fixture("conformance/ingress-class.yaml");
    let served = |class: &str| -> Vec<String> {
        let t = run(&s, class);
        let mut hosts: Vec<String> = t
            .config
            .routes
            .iter()
            .flat_map(|r| r.hosts.clone())
            .collect();
        hosts.sort();
        hosts
    };
    // `kong` is the default class: class-less Ingresses are its.
    assert_eq!(
        served("kong"),
        [
            "by-annotation-kong.test",
            "by-name-kong.test",
            "class-less.test"
        ]
    );
    assert_eq!(
        served("pingway"),
        ["by-annotation-pingway.test", "by-name-pingway.test"]
    );
    // A class no IngressClass names, and no default: nothing.
    assert_eq!(served("does-not-exist"), ["unknown-class.test"]);
    assert_eq!(served("nginx"), Vec::<String>::new());
}

#[test]
fn annotations() {
    let s = fixture("annotations.yaml");
    let t = run(&s, "kong");
    let route = |name: &str| {
        t.config
            .routes
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no route {name}\n{}", t.yaml))
    };
    let r = route("ann.routes.0.0");
    assert!(r.strip_prefix);
    assert!(!r.preserve_host);
    assert_eq!(r.methods, ["GET", "POST"]);
    assert_eq!(r.protocols, [Protocol::Https]);
    assert_eq!(r.https_redirect_status_code, 301);
    // Service annotations: the upstream's path and Host, on every route to it.
    assert_eq!(
        r.request_headers.set.get("host").map(String::as_str),
        Some("internal.example:8080")
    );
    let rw = r.path_rewrite.as_ref().expect("path from the Service");
    assert_eq!(
        (rw.regex.as_str(), rw.replacement.as_str()),
        ("^/$|^", "/v2")
    );
    assert_eq!(r.plugins[0].name, "rate-limiting");
    let u = t
        .config
        .upstreams
        .iter()
        .find(|u| u.name == "ann.api.80")
        .unwrap();
    assert_eq!(
        u.connect_timeout.get(),
        std::time::Duration::from_millis(250)
    );
    assert_eq!(u.read_timeout.get(), std::time::Duration::from_millis(5000));
    assert_eq!(
        u.write_timeout.get(),
        std::time::Duration::from_millis(6000)
    );
    assert_eq!(u.retries, 3);
    assert!(u.tls);

    // Header matches through the real router: one of the values, any case; ours
    // (a regex) replaces Kong's for the same header.
    let router = Router::build(&t.config.routes).unwrap();
    let req = |pairs: &[(&str, &str)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        reaches_with(
            &t.config,
            &router,
            "api.example.com",
            "GET",
            "/orders/1",
            &h,
        )
    };
    assert_eq!(
        req(&[("x-tenant", "ACME"), ("x-env", "Production")]).as_deref(),
        Some("api")
    );
    assert_eq!(
        req(&[("x-tenant", "globex.io"), ("x-env", "prod-eu")]).as_deref(),
        Some("api")
    );
    // `.` is literal, the value whole.
    assert_eq!(req(&[("x-tenant", "globexXio"), ("x-env", "prod")]), None);
    assert_eq!(req(&[("x-tenant", "acme-corp"), ("x-env", "prod")]), None);
    assert_eq!(req(&[("x-tenant", "acme"), ("x-env", "staging")]), None);
    assert_eq!(req(&[("x-env", "prod")]), None);
    let h = http::HeaderMap::new();
    assert_eq!(
        reaches_with(
            &t.config,
            &router,
            "api.example.com",
            "DELETE",
            "/orders",
            &h
        ),
        None
    );

    // Bad values: ignored one by one with a problem; the route is served.
    let bad = route("ann.bad-values.0.0");
    assert!(!bad.strip_prefix && bad.methods.is_empty() && bad.headers.is_empty());
    assert_eq!(bad.https_redirect_status_code, 426);
    assert!(bad.path_rewrite.is_none() && bad.request_headers.set.is_empty());
    let problems: Vec<String> = t.problems.iter().map(|p| p.to_string()).collect();
    for want in [
        "Ingress ann/bad-values: annotation strip-path `yes` ignored",
        "Ingress ann/bad-values: annotation methods `GET POST` ignored",
        "Ingress ann/bad-values: annotation regex-priority `high` ignored",
        "Ingress ann/bad-values: annotation konghq.com/headers.host ignored",
        "Ingress ann/bad-values: annotation https-redirect-status-code `200` ignored",
        "Service ann/bad-svc: annotation connect-timeout `fast` ignored",
        "Service ann/bad-svc: annotation retries `-1` ignored",
        "Service ann/bad-svc: annotation protocol `ftp` ignored",
        "Service ann/bad-svc: annotation path `no-slash` ignored",
        "Service ann/bad-svc: annotation host-header `a b` ignored",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "{want}\n{problems:#?}"
        );
    }
    assert_eq!(problems.len(), 10, "{problems:#?}");
    let u = t
        .config
        .upstreams
        .iter()
        .find(|u| u.name == "ann.bad-svc.80")
        .unwrap();
    assert_eq!(u.retries, pingway::config::defaults::retries());

    // regex-priority through the router: both regexes match /items/5; the higher
    // priority is tried first; without it, file (namespace/name) order decides.
    assert_eq!(
        reaches(&t.config, &router, "regex.example.com", "/items/5").as_deref(),
        Some("high")
    );
    let mut s = s;
    let b = s
        .ingresses
        .iter_mut()
        .find(|i| i.metadata.name.as_deref() == Some("regex-b"))
        .unwrap();
    std::sync::Arc::make_mut(b).metadata.annotations = None;
    let t = run(&s, "kong");
    let router = Router::build(&t.config.routes).unwrap();
    assert_eq!(
        reaches(&t.config, &router, "regex.example.com", "/items/5").as_deref(),
        Some("low")
    );
}
