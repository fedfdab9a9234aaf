//! One test per rule; each checks the generated file with the gateway's own validation.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use pingway::config::PathMatch;

fn obj<K: serde::de::DeserializeOwned>(v: Value) -> Arc<K> {
    Arc::new(serde_json::from_value(v).expect("object"))
}

fn ingress(ns: &str, name: &str, annotations: Value, spec: Value) -> Arc<Ingress> {
    obj(
        json!({"metadata": {"namespace": ns, "name": name, "annotations": annotations}, "spec": spec}),
    )
}

fn service(ns: &str, name: &str, ports: Value) -> Arc<Service> {
    obj(json!({"metadata": {"namespace": ns, "name": name}, "spec": {"ports": ports}}))
}

fn slice(
    ns: &str,
    svc: &str,
    port_name: Option<&str>,
    port: i32,
    eps: Value,
) -> Arc<EndpointSlice> {
    obj(
        json!({"metadata": {"namespace": ns, "name": format!("{svc}-x"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "ports": [{"name": port_name, "port": port}], "endpoints": eps}),
    )
}

fn path(p: &str, ty: &str, svc: &str, port: Value) -> Value {
    json!({"path": p, "pathType": ty, "backend": {"service": {"name": svc, "port": port}}})
}

/// A namespace `ns` with Service `web` (port 80 named http) and two ready pods.
fn base() -> Snapshot {
    Snapshot {
        services: vec![service("ns", "web", json!([{"name": "http", "port": 80}]))],
        endpoint_slices: vec![slice(
            "ns",
            "web",
            Some("http"),
            8080,
            json!([{"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
                   {"addresses": ["10.0.0.1"]},
                   {"addresses": ["10.0.0.3"], "conditions": {"ready": false}}]),
        )],
        ..Snapshot::default()
    }
}

fn class_ingress(name: &str, spec_extra: Value) -> Arc<Ingress> {
    let mut spec = json!({"ingressClassName": "pingway",
        "rules": [{"host": "a.example.com", "http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    ingress("ns", name, json!({}), spec)
}

/// Translates and checks that the file passes the gateway's validation and reads back
/// as the configuration the translation checked (it checks the document the text is
/// rendered from, not the text).
fn run(s: &Snapshot) -> Translation {
    let t = translate(s, &Options::default());
    match check(&t.yaml) {
        Err(d) => panic!("invalid output: {d:?}\n{}", t.yaml),
        Ok(read_back) => assert_eq!(
            serde_json::to_value(&read_back).expect("serializes"),
            serde_json::to_value(&t.config).expect("serializes"),
            "the file does not read back as the checked configuration:\n{}",
            t.yaml
        ),
    }
    t
}

fn route<'a>(t: &'a Translation, name: &str) -> &'a RouteConfig {
    t.config
        .routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name}: {}", t.yaml))
}

#[test]
fn ingress_class_rules() {
    let mut default_class: IngressClass =
        serde_json::from_value(json!({"metadata": {"name": "pingway",
        "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}}}))
        .unwrap();
    let plain_class: IngressClass =
        serde_json::from_value(json!({"metadata": {"name": "pingway"}})).unwrap();
    let rules = json!([{"http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}}]);
    // (case, ingressClassName, legacy annotation, our class is default, served?)
    let cases = [
        ("class name ours", Some("pingway"), None, false, true),
        ("class name other", Some("nginx"), None, true, false),
        ("annotation ours", None, Some("pingway"), false, true),
        ("annotation other", None, Some("kong"), true, false),
        ("class-less, ours default", None, None, true, true),
        ("class-less, ours not default", None, None, false, false),
    ];
    for (case, class, ann, is_default, served) in cases {
        let mut spec = json!({"rules": rules});
        if let Some(c) = class {
            spec["ingressClassName"] = json!(c);
        }
        let anns = match ann {
            Some(a) => json!({"kubernetes.io/ingress.class": a}),
            None => json!({}),
        };
        let mut s = base();
        s.ingresses = vec![ingress("ns", "i", anns, spec)];
        if is_default {
            default_class.metadata.name = Some("pingway".into());
            s.ingress_classes = vec![Arc::new(default_class.clone())];
        } else {
            s.ingress_classes = vec![Arc::new(plain_class.clone())];
        }
        let t = run(&s);
        assert_eq!(!t.config.routes.is_empty(), served, "{case}");
    }
}

#[test]
fn path_types() {
    // (pathType, path, expected matcher)
    let cases = [
        ("Exact", "/a", PathMatch::Exact("/a".into())),
        ("Prefix", "/a/b", PathMatch::Prefix("/a/b".into())),
        (
            "ImplementationSpecific",
            "/a",
            PathMatch::Prefix("/a".into()),
        ),
        (
            "ImplementationSpecific",
            "/~/v[0-9]+$",
            PathMatch::Regex("/v[0-9]+$".into()),
        ),
        ("Prefix", "", PathMatch::Prefix("/".into())),
    ];
    for (ty, p, want) in cases {
        let mut s = base();
        s.ingresses = vec![ingress(
            "ns",
            "i",
            json!({}),
            json!({"ingressClassName": "pingway",
            "rules": [{"http": {"paths": [path(p, ty, "web", json!({"number": 80}))]}}]}),
        )];
        let t = run(&s);
        assert_eq!(route(&t, "ns.i.0.0").paths, vec![want], "{ty} {p}");
    }
}

#[test]
fn hosts_exact_and_wildcard_and_default_backend() {
    let mut s = base();
    s.ingresses = vec![ingress(
        "ns",
        "i",
        json!({}),
        json!({"ingressClassName": "pingway",
        "defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}},
        "rules": [
            {"host": "A.example.com", "http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}},
            {"host": "*.example.org", "http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}}]}),
    )];
    let t = run(&s);
    assert_eq!(route(&t, "ns.i.0.0").hosts, vec!["a.example.com"]);
    assert_eq!(route(&t, "ns.i.1.0").hosts, vec!["*.example.org"]);
    // An Ingress's wildcard is one label; the router's default is any depth.
    assert_eq!(
        route(&t, "ns.i.1.0").wildcard_labels,
        pingway::config::WildcardLabels::One
    );
    assert!(t.yaml.contains("wildcard_labels: \"one\""), "{}", t.yaml);
    let d = route(&t, "ns.i.default");
    assert!(d.hosts.is_empty() && d.paths.is_empty());
}

#[test]
fn targets_are_ready_endpoints_on_the_named_port_or_the_dns_name() {
    for port in [json!({"number": 80}), json!({"name": "http"})] {
        let mut s = base();
        s.ingresses = vec![class_ingress("i", json!({}))];
        s.ingresses = vec![ingress(
            "ns",
            "i",
            json!({}),
            json!({"ingressClassName": "pingway",
            "rules": [{"http": {"paths": [path("/", "Prefix", "web", port)]}}]}),
        )];
        let t = run(&s);
        let u = &t.config.upstreams[0];
        assert_eq!(u.name, "ns.web.80");
        let addrs: Vec<&str> = u.targets.iter().map(|t| t.address.as_str()).collect();
        assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
    }
    let mut s = base();
    s.ingresses = vec![class_ingress("i", json!({}))];
    let opts = Options {
        upstreams: UpstreamMode::Dns,
        ..Options::default()
    };
    let t = translate(&s, &opts);
    assert_eq!(
        t.config.upstreams[0].targets[0].address,
        "web.ns.svc.cluster.local:80"
    );
}

#[test]
fn a_service_without_ready_endpoints_answers_503() {
    let mut s = base();
    s.endpoint_slices.clear();
    s.ingresses = vec![class_ingress("i", json!({}))];
    let t = run(&s);
    let r = route(&t, "ns.i.0.0");
    assert_eq!(r.plugins[0].name, "request-termination");
}

#[test]
fn broken_objects_are_left_out_alone_with_a_problem() {
    let mut s = base();
    s.kong_plugins = vec![
        obj(
            json!({"metadata": {"namespace": "ns", "name": "bad"}, "plugin": "rate-limiting", "config": {"minute": "lots"}}),
        ),
        obj(
            json!({"metadata": {"namespace": "ns", "name": "unknown"}, "plugin": "no-such-plugin"}),
        ),
        obj(
            json!({"metadata": {"namespace": "ns", "name": "rl"}, "plugin": "rate-limiting", "config": {"minute": 5}}),
        ),
    ];
    s.ingresses = vec![
        ingress(
            "ns",
            "uses-bad",
            json!({"konghq.com/plugins": "bad"}),
            json!({"ingressClassName": "pingway",
            "rules": [{"host": "bad.test", "http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}}]}),
        ),
        ingress(
            "ns",
            "uses-unknown",
            json!({"konghq.com/plugins": "unknown"}),
            json!({"ingressClassName": "pingway",
            "rules": [{"host": "unknown.test", "http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}}]}),
        ),
        ingress(
            "ns",
            "missing-service",
            json!({}),
            json!({"ingressClassName": "pingway",
            "rules": [{"host": "m.test", "http": {"paths": [path("/", "Prefix", "nope", json!({"number": 80})),
                                                          path("/ok", "Prefix", "web", json!({"number": 80}))]}}]}),
        ),
        ingress(
            "ns",
            "good",
            json!({"konghq.com/plugins": "rl", "konghq.com/strip-path": "true",
                                      "konghq.com/methods": "get,post", "konghq.com/protocols": "https"}),
            json!({"ingressClassName": "pingway",
            "rules": [{"host": "good.test", "http": {"paths": [path("/api", "Prefix", "web", json!({"number": 80}))]}}]}),
        ),
    ];
    let t = run(&s);
    let names: Vec<&str> = t.config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["ns.good.0.0", "ns.missing-service.0.1"],
        "{}",
        t.yaml
    );
    let good = route(&t, "ns.good.0.0");
    assert_eq!(good.plugins[0].name, "rate-limiting");
    assert!(good.strip_prefix && good.preserve_host);
    assert_eq!(good.methods, ["GET", "POST"]);
    assert_eq!(good.protocols, [pingway::config::Protocol::Https]);
    let problems: Vec<String> = t.problems.iter().map(|p| p.to_string()).collect();
    let has = |s: &str| problems.iter().any(|p| p.contains(s));
    assert!(has("KongPlugin ns/bad: left out"), "{problems:#?}");
    assert!(
        has("KongPlugin ns/unknown: left out: unknown plugin `no-such-plugin`"),
        "{problems:#?}"
    );
    assert!(has("Ingress ns/uses-bad: left out"), "{problems:#?}");
    assert!(has("Ingress ns/missing-service: route ns.missing-service.0.0 left out: Service ns/nope not found"), "{problems:#?}");
}

#[test]
fn namespaced_plugins_win_over_cluster_ones_and_global_label_applies_everywhere() {
    let mut s = base();
    s.kong_plugins = vec![obj(
        json!({"metadata": {"namespace": "ns", "name": "p"}, "plugin": "rate-limiting", "config": {"minute": 1}}),
    )];
    s.kong_cluster_plugins = vec![
        obj(
            json!({"metadata": {"name": "p"}, "plugin": "rate-limiting", "config": {"minute": 99}}),
        ),
        obj(
            json!({"metadata": {"name": "cors-all", "labels": {"global": "true"}}, "plugin": "cors"}),
        ),
    ];
    s.cluster_gateway_plugins = vec![obj(
        json!({"metadata": {"name": "only-cluster"}, "spec": {"plugin": "correlation-id"}}),
    )];
    s.ingresses = vec![ingress(
        "ns",
        "i",
        json!({"pingway.io/plugins": "p, only-cluster"}),
        json!({"ingressClassName": "pingway",
        "rules": [{"http": {"paths": [path("/", "Prefix", "web", json!({"number": 80}))]}}]}),
    )];
    let t = run(&s);
    let r = route(&t, "ns.i.0.0");
    let names: Vec<&str> = r.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["rate-limiting", "correlation-id"]);
    assert_eq!(r.plugins[0].config.to_json()["minute"], json!(1));
    assert_eq!(t.config.plugins[0].name, "cors");
}

#[test]
fn tls_hosts_become_sni_certificates_and_bad_secrets_are_left_out() {
    let mut s = base();
    let cert = rcgen_free_cert();
    s.secrets = vec![
        obj(
            json!({"metadata": {"namespace": "ns", "name": "good"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(&cert.0), "tls.key": b64(&cert.1)}}),
        ),
        obj(
            json!({"metadata": {"namespace": "ns", "name": "junk"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64("not pem"), "tls.key": b64("nor this")}}),
        ),
    ];
    s.ingresses = vec![
        class_ingress(
            "a",
            json!({"tls": [{"hosts": ["a.example.com"], "secretName": "good"}]}),
        ),
        class_ingress(
            "b",
            json!({"tls": [{"hosts": ["b.example.com"], "secretName": "junk"},
                                          {"hosts": ["c.example.com"], "secretName": "missing"}]}),
        ),
    ];
    let t = run(&s);
    let tls = t.config.listeners[1].tls.as_ref().expect("https listener");
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(tls.certificates[0].snis, ["a.example.com"]);
    let problems: Vec<String> = t.problems.iter().map(|p| p.to_string()).collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Secret ns/junk left out")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("Secret ns/missing not found")),
        "{problems:#?}"
    );
    // No usable certificate: no HTTPS listener.
    s.secrets.truncate(0);
    assert_eq!(run(&s).config.listeners.len(), 1);
}

#[test]
fn the_same_snapshot_gives_the_same_bytes() {
    let mut s = base();
    s.ingresses = vec![class_ingress("b", json!({})), class_ingress("a", json!({}))];
    let one = run(&s).yaml;
    s.ingresses.reverse();
    s.endpoint_slices.reverse();
    assert_eq!(one, run(&s).yaml);
    assert!(one.find("ns.a.0.0").unwrap() < one.find("ns.b.0.0").unwrap());
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A self-signed certificate for `a.example.com` and its key, as PEM.
fn rcgen_free_cert() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["a.example.com".to_string()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

mod gateway_api;

/// `n` Services `s000..`, each with `pods` ready endpoints, and one Ingress per Service.
fn many(n: usize, pods: usize) -> Snapshot {
    let mut s = Snapshot::default();
    for i in 0..n {
        let svc = format!("s{i:03}");
        s.services
            .push(service("ns", &svc, json!([{"name": "http", "port": 80}])));
        let eps: Vec<Value> = (0..pods)
            .map(|p| json!({"addresses": [format!("10.{}.{}.{}", i / 256, i % 256, p + 1)]}))
            .collect();
        s.endpoint_slices
            .push(slice("ns", &svc, Some("http"), 8080, json!(eps)));
        s.ingresses.push(ingress(
            "ns",
            &format!("i{i:03}"),
            json!({}),
            json!({"ingressClassName": "pingway", "rules": [{"host": format!("h{i}.example.com"),
                "http": {"paths": [path("/", "Prefix", &svc, json!({"number": 80}))]}}]}),
        ));
    }
    s
}

#[test]
fn the_limits_bound_the_file_in_sorted_order_and_count_what_is_left_out() {
    let s = many(10, 3);
    let unbounded = translate(&s, &Options::default());
    assert_eq!(unbounded.config.routes.len(), 10);
    assert!(!unbounded.left_out.any());

    // Routes: the first four Ingresses in namespace/name order.
    let mut opts = Options::default();
    opts.limits.max_routes = 4;
    let t = translate(&s, &opts);
    check(&t.yaml).expect("valid");
    let names: Vec<&str> = t.config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["ns.i000.0.0", "ns.i001.0.0", "ns.i002.0.0", "ns.i003.0.0"]
    );
    assert_eq!(t.left_out.routes, 6);
    let named = t
        .problems
        .iter()
        .filter(|p| p.reason.contains("--max-routes"))
        .count();
    assert_eq!(named, 6, "{:?}", t.problems);

    // Targets: 3 per pool, 7 in all: two full pools, the third keeps one, the rest of
    // the pools and their routes are left out.
    let mut opts = Options::default();
    opts.limits.max_targets = 7;
    let t = translate(&s, &opts);
    check(&t.yaml).expect("valid");
    let total: usize = t.config.upstreams.iter().map(|u| u.targets.len()).sum();
    assert_eq!(total, 7);
    assert_eq!(t.config.upstreams.len(), 3);
    assert_eq!(t.config.upstreams[2].targets.len(), 1);
    assert_eq!(t.config.routes.len(), 3);
    assert_eq!(
        t.left_out,
        LeftOut {
            routes: 7,
            upstreams: 7,
            targets: 23,
            certificates: 0
        }
    );

    // Upstreams: the first two pools by name, and only their routes.
    let mut opts = Options::default();
    opts.limits.max_upstreams = 2;
    let t = translate(&s, &opts);
    check(&t.yaml).expect("valid");
    let pools: Vec<&str> = t.config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(pools, ["ns.s000.80", "ns.s001.80"]);
    assert_eq!(t.config.routes.len(), 2);
    assert_eq!((t.left_out.upstreams, t.left_out.routes), (8, 8));
    // Deterministic: the same snapshot, the same bytes.
    assert_eq!(translate(&s, &opts).yaml, t.yaml);
}

#[test]
fn the_certificate_limit_keeps_the_first_secrets_in_order() {
    let mut s = base();
    let cert = rcgen_free_cert();
    for name in ["c", "a", "b"] {
        s.secrets.push(obj(
            json!({"metadata": {"namespace": "ns", "name": name}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": b64(&cert.0), "tls.key": b64(&cert.1)}}),
        ));
        s.ingresses.push(class_ingress(
            name,
            json!({"tls": [{"hosts": [format!("{name}.example.com")], "secretName": name}]}),
        ));
    }
    let mut opts = Options::default();
    opts.limits.max_certificates = 2;
    let t = translate(&s, &opts);
    check(&t.yaml).expect("valid");
    let tls = t.config.listeners[1].tls.as_ref().expect("https listener");
    let snis: Vec<&str> = tls
        .certificates
        .iter()
        .flat_map(|c| c.snis.iter().map(String::as_str))
        .collect();
    assert_eq!(snis, ["a.example.com", "b.example.com"]);
    assert_eq!(t.left_out.certificates, 1);
    assert!(
        t.problems
            .iter()
            .any(|p| p.reason.contains("Secret ns/c left out")
                && p.reason.contains("--max-certificates")),
        "{:?}",
        t.problems
    );
}
