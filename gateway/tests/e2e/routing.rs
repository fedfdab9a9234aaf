//! Routing and forwarding through the running gateway.

use crate::common::*;

async fn setup() -> (GatewayProcess, Vec<Backend>) {
    let mut backends = Vec::new();
    for name in [
        "exact-host",
        "wildcard",
        "any",
        "exact-path",
        "regex",
        "canary",
        "post",
    ] {
        backends.push(Backend::start(name, Behaviour::Echo).await);
    }
    let a = |i: usize| backends[i].addr.to_string();
    let yaml = format!(
        r#"
listeners: [{{address: "127.0.0.1:{{PORT}}"}}]
upstreams:
  - {{name: exact-host, targets: ["{}"]}}
  - {{name: wildcard, targets: ["{}"]}}
  - {{name: any, targets: ["{}"]}}
  - {{name: exact-path, targets: ["{}"]}}
  - {{name: regex, targets: ["{}"]}}
  - {{name: canary, targets: ["{}"]}}
  - {{name: post, targets: ["{}"]}}
routes:
  - name: api
    hosts: [api.example.com]
    paths: [/api]
    upstream: exact-host
    strip_prefix: true
  - name: api-preserve
    hosts: [api.example.com]
    paths: [/keep]
    upstream: exact-host
    preserve_host: true
  - name: wildcard
    hosts: ["*.example.com"]
    upstream: wildcard
  - name: one-label
    hosts: ["*.ingress.test"]
    wildcard_labels: one
    upstream: wildcard
  - name: rightmost
    hosts: ["shop.*"]
    upstream: wildcard
  - name: catch-all
    paths: [/]
    upstream: any
  - name: exact
    paths: [{{exact: /exact}}]
    upstream: exact-path
  - name: versioned
    hosts: [v.test]
    paths: [{{regex: "/v[0-9]+/items"}}]
    upstream: regex
  - name: canary
    paths: [/]
    headers: [{{name: x-canary, exact: "yes"}}]
    upstream: canary
  - name: post-only
    paths: [/submit]
    methods: [POST]
    upstream: post
"#,
        a(0),
        a(1),
        a(2),
        a(3),
        a(4),
        a(5),
        a(6)
    );
    (GatewayProcess::start(&yaml).await, backends)
}

async fn get(gw: &GatewayProcess, host: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Echo) {
    let mut req = client().get(gw.url(path)).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, Echo::parse(&resp.text().await.unwrap()))
}

#[tokio::test]
async fn routes_by_host_path_method_and_headers() {
    let (gw, _backends) = setup().await;
    let cases: &[(&str, &str, &str, &str)] = &[
        // (host, path, expected backend, expected upstream target)
        (
            "api.example.com",
            "/api/users?page=2",
            "exact-host",
            "/users?page=2",
        ),
        ("API.Example.com:8080", "/api", "exact-host", "/"),
        ("api.example.com", "/apix", "wildcard", "/apix"),
        ("api.example.com", "/other", "wildcard", "/other"),
        ("www.example.com", "/", "wildcard", "/"),
        // A wildcard covers any depth of labels, or one with `wildcard_labels: one`.
        ("a.b.example.com", "/", "wildcard", "/"),
        ("a.ingress.test", "/", "wildcard", "/"),
        ("a.b.ingress.test", "/", "any", "/"),
        // Kong's rightmost wildcard.
        ("shop.co.uk", "/", "wildcard", "/"),
        ("www.shop.test", "/", "any", "/"),
        ("example.com", "/", "any", "/"),
        ("other.test", "/exact", "exact-path", "/exact"),
        ("other.test", "/exact/", "any", "/exact/"),
        // Regexes are anchored at the start; a host tier without a match falls through.
        ("v.test", "/v2/items/7", "regex", "/v2/items/7"),
        ("v.test", "/x/v2/items", "any", "/x/v2/items"),
        // In one host tier a prefix (here the catch-all `/`) wins over a regex.
        ("other.test", "/v2/items/7", "any", "/v2/items/7"),
        ("other.test", "/submit", "any", "/submit"),
        // Dot segments are resolved before routing and forwarding.
        ("api.example.com", "/api/../admin", "wildcard", "/admin"),
        ("other.test", "/a/./b//c", "any", "/a/b/c"),
    ];
    for (host, path, backend, target) in cases {
        let (status, echo) = get(&gw, host, path, &[]).await;
        assert_eq!(status, 200, "{host} {path}");
        assert_eq!(echo.backend, *backend, "{host} {path}");
        assert_eq!(echo.target(), *target, "{host} {path}");
    }
    let (_, echo) = get(&gw, "other.test", "/anything", &[("x-canary", "yes")]).await;
    assert_eq!(echo.backend, "canary");
    let (_, echo) = get(&gw, "other.test", "/anything", &[("x-canary", "no")]).await;
    assert_eq!(echo.backend, "any");
    let resp = client()
        .post(gw.url("/submit"))
        .header("host", "other.test")
        .body("payload=1")
        .send()
        .await
        .unwrap();
    let echo = Echo::parse(&resp.text().await.unwrap());
    assert_eq!(echo.backend, "post");
    assert_eq!(echo.body, "payload=1");
}

#[tokio::test]
async fn forwarding_headers_request_id_and_host() {
    let (gw, backends) = setup().await;
    let resp = client()
        .get(gw.url("/api/x"))
        .header("host", "api.example.com")
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "hop-by-hop")
        .header("x-request-id", "client-chosen")
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(resp.headers()["via"]
        .to_str()
        .unwrap()
        .starts_with("1.1 pingway/"));
    assert!(resp.headers().contains_key("x-pingway-upstream-latency"));
    assert!(resp.headers().contains_key("x-pingway-proxy-latency"));
    let echo = Echo::parse(&resp.text().await.unwrap());
    // No trusted proxies configured: the client's id is not believed, a new one is made.
    assert_ne!(rid, "client-chosen");
    assert_eq!(rid.len(), 36);
    assert_eq!(echo.header("x-request-id"), Some(rid.as_str()));
    // X-Forwarded-For is appended to, never replaced.
    assert_eq!(
        echo.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(echo.header("x-real-ip"), Some("127.0.0.1"));
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    assert_eq!(echo.header("x-forwarded-host"), Some("api.example.com"));
    assert_eq!(
        echo.header("x-forwarded-port"),
        Some(gw.port.to_string().as_str())
    );
    // Host is the target, and hop-by-hop headers named by Connection are not forwarded.
    assert_eq!(
        echo.header("host"),
        Some(backends[0].addr.to_string().as_str())
    );
    assert_eq!(echo.header("x-secret"), None);
    assert!(echo.header("via").unwrap().contains("pingway/"));

    let (_, echo) = get(&gw, "api.example.com", "/keep/me", &[]).await;
    assert_eq!(echo.header("host"), Some("api.example.com"));
}

#[tokio::test]
async fn no_route_is_a_json_404_with_the_request_id() {
    let backend = Backend::start("only", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]\nupstreams: [{{name: only, targets: [\"{}\"]}}]\nroutes:\n  - {{name: only, hosts: [only.test], upstream: only}}\n",
        backend.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let resp = client()
        .get(gw.url("/x"))
        .header("host", "elsewhere.test")
        .send()
        .await
        .unwrap();
    let header_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let (status, message, body_id) = json_message(resp).await;
    assert_eq!((status, message.as_str()), (404, "no route matched"));
    assert_eq!(body_id, header_id);
    assert_eq!(backend.hits(), 0);
    let (status, _) = get(&gw, "ONLY.test", "/x", &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn via_and_latency_headers_can_be_turned_off() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]\nproxy: {{via_header: false, latency_headers: false, forwarded_headers: false, request_id_header: x-correlation-id}}\nupstreams: [{{name: b, targets: [\"{}\"]}}]\nroutes: [{{name: r, upstream: b}}]\n",
        backend.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let r = client().get(gw.url("/")).send().await.unwrap();
    for absent in [
        "via",
        "x-pingway-upstream-latency",
        "x-pingway-proxy-latency",
        "x-request-id",
    ] {
        assert!(
            !r.headers().contains_key(absent),
            "{absent} present: {:?}",
            r.headers()
        );
    }
    let id = r.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.header("x-correlation-id"), Some(id.as_str()));
    assert_eq!(echo.header("via"), None);
    for absent in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-real-ip",
    ] {
        assert_eq!(echo.header(absent), None, "{absent} sent upstream");
    }
    let r = client()
        .get(gw.url("/nowhere-special"))
        .header("host", "x")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("server"));
}
