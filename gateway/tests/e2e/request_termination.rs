//! request-termination as Kong clients observe it: the gateway answers, the upstream is
//! never asked; with `trigger`, only flagged requests are stopped.

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
      - name: request-termination
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

#[tokio::test]
async fn the_default_is_503_service_unavailable_and_the_upstream_is_not_asked() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{}").await;
    let (status, message, request_id) =
        json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (503, "Service unavailable"));
    assert!(!request_id.is_empty());
    let gw = gateway(&backend, "{status_code: 403, message: So long and thanks}").await;
    let (status, message, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (403, "So long and thanks"));
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_body_with_its_content_type() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{status_code: 200, content_type: text/html, body: \"<h1>down for maintenance</h1>\"}",
    )
    .await;
    let r = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.text().await.unwrap(), "<h1>down for maintenance</h1>");
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_trigger_stops_only_flagged_requests_and_echo_returns_them() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{trigger: x-debug, echo: true, status_code: 404}").await;
    let c = client();
    assert_eq!(c.get(gw.url("/a")).send().await.unwrap().status(), 200);
    assert_eq!(backend.hits(), 1);
    let r = c
        .get(gw.url("/a?x=1"))
        .header("x-debug", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert_eq!(doc["message"], "Not found");
    assert_eq!(doc["request"]["path"], "/a");
    assert_eq!(doc["request"]["query"]["x"], "1");
    assert_eq!(doc["request"]["headers"]["x-debug"], "1");
    assert_eq!(doc["matched_route"]["name"], "api");
    let r = c.get(gw.url("/a?x-debug")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(backend.hits(), 1);
}
