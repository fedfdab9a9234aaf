//! redirect as Kong clients observe it (Kong's spec: default 301, custom status,
//! keep_incoming_path).

use crate::common::*;

async fn gateway(backend: &Backend, plugin_config: &str) -> GatewayProcess {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: old
    paths: [/]
    upstream: up
    plugins:
      - name: redirect
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

#[tokio::test]
async fn requests_are_redirected_with_the_status_and_location() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{location: \"https://example.com/path?foo=bar\"}").await;
    let r = client().get(gw.url("/anything?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "https://example.com/path?foo=bar");
    assert_eq!(r.text().await.unwrap(), "redirecting");

    let gw = gateway(
        &backend,
        "{status_code: 302, location: \"https://example.com/some_path?foo=bar\", keep_incoming_path: true}",
    )
    .await;
    let r = client().get(gw.url("/v1/items?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://example.com/v1/items?x=1");
    assert_eq!(backend.hits(), 0);
}

/// Without `location`, parts of the request's own URL are replaced (Istio's `redirect`,
/// the Gateway API's `RequestRedirect`).
#[tokio::test]
async fn scheme_host_port_and_path_replace_those_of_the_request() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{scheme: https, status_code: 308}").await;
    let r = client()
        .get(gw.url("/cart?step=2"))
        .header("host", "shop.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "https://shop.example/cart?step=2");

    let gw = gateway(&backend, "{host: new.example, path: /moved}").await;
    let r = client()
        .get(gw.url("/old?q=1"))
        .header("host", "old.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "http://new.example/moved?q=1");
    assert_eq!(backend.hits(), 0);
}
