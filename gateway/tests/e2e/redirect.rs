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
