//! cors as Kong clients observe it: preflights answered at the gateway, origin
//! matching on actual responses, `preflight_continue`.

use crate::common::*;

async fn gateway(backend: &Backend, plugin_config: &str) -> GatewayProcess {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: api
    paths: [/]
    upstream: up
    plugins:
      - name: cors
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

fn h(r: &reqwest::Response, name: &str) -> Option<String> {
    let all: Vec<_> = r
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect();
    (!all.is_empty()).then(|| all.join(", "))
}

#[tokio::test]
async fn a_preflight_is_answered_by_the_gateway_with_200_and_kongs_headers() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{origins: [\"http://a.test\", \"(.*[.])?example[.]com\"], methods: [GET, POST], \
         headers: [x-one, x-two], credentials: true, max_age: 600, private_network: true}",
    )
    .await;
    let r = client()
        .request(reqwest::Method::OPTIONS, gw.url("/orders"))
        .header("origin", "https://api.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-private-network", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        h(&r, "access-control-allow-origin").as_deref(),
        Some("https://api.example.com")
    );
    assert_eq!(
        h(&r, "access-control-allow-methods").as_deref(),
        Some("GET,POST")
    );
    assert_eq!(
        h(&r, "access-control-allow-headers").as_deref(),
        Some("x-one,x-two")
    );
    assert_eq!(
        h(&r, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(h(&r, "access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        h(&r, "access-control-allow-private-network").as_deref(),
        Some("true")
    );
    assert_eq!(h(&r, "vary").as_deref(), Some("Origin"));
    assert_eq!(r.text().await.unwrap(), "");
    assert_eq!(backend.hits(), 0, "a preflight never reaches the upstream");
}

#[tokio::test]
async fn actual_requests_get_the_origin_only_when_it_matches() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{origins: [\"http://a.test\", \"https://b.test\"], exposed_headers: [x-total]}",
    )
    .await;
    let c = client();
    let ok = c
        .get(gw.url("/"))
        .header("origin", "http://a.test:80")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        h(&ok, "access-control-allow-origin").as_deref(),
        Some("http://a.test")
    );
    assert_eq!(
        h(&ok, "access-control-expose-headers").as_deref(),
        Some("x-total")
    );
    assert_eq!(h(&ok, "vary").as_deref(), Some("Origin"));
    let no = c
        .get(gw.url("/"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(no.status(), 200, "CORS is the browser's to enforce");
    assert_eq!(h(&no, "access-control-allow-origin"), None);
    assert_eq!(h(&no, "vary").as_deref(), Some("Origin"));
    assert_eq!(backend.hits(), 2);
}

#[tokio::test]
async fn defaults_allow_every_origin_with_star_and_no_vary() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{}").await;
    let r = client()
        .get(gw.url("/"))
        .header("origin", "http://anything.test")
        .send()
        .await
        .unwrap();
    assert_eq!(h(&r, "access-control-allow-origin").as_deref(), Some("*"));
    assert_eq!(h(&r, "vary"), None);
    // Error answers from the upstream get the headers too.
    backend.set(Behaviour::Status(500));
    let r = client()
        .get(gw.url("/"))
        .header("origin", "http://anything.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(h(&r, "access-control-allow-origin").as_deref(), Some("*"));
}

#[tokio::test]
async fn preflight_continue_sends_the_preflight_upstream_untouched() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{preflight_continue: true}").await;
    let r = client()
        .request(reqwest::Method::OPTIONS, gw.url("/x"))
        .header("origin", "http://a.test")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "access-control-allow-origin"), None);
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.request_line, "OPTIONS /x HTTP/1.1");
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn an_invalid_origin_regex_is_rejected_at_load_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "gw.yaml",
        "listeners: [{address: \"127.0.0.1:1\"}]
upstreams: [{name: up, targets: [\"127.0.0.1:2\"]}]
routes:
  - name: api
    paths: [/]
    upstream: up
    plugins:
      - name: cors
        config: {origins: [\"http://a.test\", \"(unclosed\"]}
",
    );
    let out = std::process::Command::new(pingway_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("origins[1]"), "{err}");
}

/// `config/edge-demo.yaml` does what its comments say.
#[tokio::test]
async fn the_edge_walkthrough_config_works_as_documented() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/edge-demo.yaml"
    ))
    .unwrap();
    let yaml = text
        .replace("127.0.0.1:8080", "127.0.0.1:{PORT}")
        .replace("127.0.0.1:9001", &one.addr.to_string());
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();

    let pre = c
        .request(reqwest::Method::OPTIONS, gw.url("/api/items"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert_eq!(
        h(&pre, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        h(&pre, "access-control-allow-methods").as_deref(),
        Some("GET,POST")
    );
    assert_eq!(h(&pre, "access-control-max-age").as_deref(), Some("600"));
    assert_eq!(one.hits(), 0);

    let r = c
        .get(gw.url("/api/items?debug=1"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(h(&r, "x-served-by").as_deref(), Some("edge"));
    assert_eq!(h(&r, "x-backend"), None);
    assert_eq!(
        h(&r, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.target(), "/api/items?source=edge");
    assert_eq!(echo.header("x-gateway"), Some("pingway"));

    let r = c.get(gw.url("/old/anything")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(
        h(&r, "location").as_deref(),
        Some("https://example.com/old/anything")
    );

    let (status, message, _) =
        json_message(c.get(gw.url("/maintenance")).send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (503, "Back at 10:00 UTC"));
    assert_eq!(one.hits(), 1);
}

#[tokio::test]
async fn preflights_pass_before_authentication_and_its_401_carries_the_headers() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: api
    paths: [/]
    upstream: up
    plugins:
      - name: cors
        config: {{origins: [\"http://a.test\", \"http://b.test\"]}}
      - name: key-auth
",
        backend.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();
    let pre = c
        .request(reqwest::Method::OPTIONS, gw.url("/"))
        .header("origin", "http://b.test")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200, "no credentials needed for a preflight");
    assert_eq!(
        h(&pre, "access-control-allow-origin").as_deref(),
        Some("http://b.test")
    );
    let denied = c
        .get(gw.url("/"))
        .header("origin", "http://b.test")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(
        h(&denied, "access-control-allow-origin").as_deref(),
        Some("http://b.test")
    );
    assert_eq!(h(&denied, "vary").as_deref(), Some("Origin"));
    assert_eq!(backend.hits(), 0);
}

/// A global cors answers by the request's own `Origin` in the response phase, so a 404
/// for a path no route serves (where no access phase ran) carries the headers too.
#[tokio::test]
async fn a_global_cors_puts_its_headers_on_a_404_for_an_unknown_route() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
plugins:
  - name: cors
    config: {{origins: [\"http://a.test\", \"http://b.test\"]}}
routes:
  - name: api
    paths: [/api]
    upstream: up
",
        backend.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();
    let missing = c
        .get(gw.url("/nowhere"))
        .header("origin", "http://a.test")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        h(&missing, "access-control-allow-origin").as_deref(),
        Some("http://a.test")
    );
    assert_eq!(h(&missing, "vary").as_deref(), Some("Origin"));
    let other = c
        .get(gw.url("/nowhere"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(h(&other, "access-control-allow-origin"), None);
    let proxied = c
        .get(gw.url("/api"))
        .header("origin", "http://a.test")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    assert_eq!(
        h(&proxied, "access-control-allow-origin").as_deref(),
        Some("http://a.test")
    );
    assert_eq!(backend.hits(), 1);
}
