//! request-transformer as the upstream observes it: headers, query string, method, URI
//! and JSON / form bodies edited in Kong's order.

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
      - name: request-transformer
        config:
{plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

#[tokio::test]
async fn headers_query_method_and_uri_reach_the_upstream_edited() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "          http_method: POST
          remove: {headers: [x-drop], querystring: [debug]}
          rename: {headers: [\"x-old:x-new\"], querystring: [\"q:search\"]}
          replace: {uri: /v2/items, headers: [\"x-rep:replaced\", \"x-absent:no\"]}
          add: {headers: [\"x-add:added\", \"x-rep:ignored\"], querystring: [\"page:1\"]}
          append: {headers: [\"x-multi:two\"], querystring: [\"tag:b\"]}",
    )
    .await;
    let r = client()
        .get(gw.url("/v1/items?q=shoes&debug=1&tag=a"))
        .header("x-drop", "1")
        .header("x-old", "o")
        .header("x-rep", "r")
        .header("x-multi", "one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(
        echo.request_line,
        "POST /v2/items?search=shoes&tag=a&page=1&tag=b HTTP/1.1"
    );
    assert_eq!(echo.header("x-drop"), None);
    assert_eq!(echo.header("x-old"), None);
    assert_eq!(echo.header("x-new"), Some("o"));
    assert_eq!(echo.header("x-rep"), Some("replaced"));
    assert_eq!(echo.header("x-absent"), None);
    assert_eq!(echo.header("x-add"), Some("added"));
    let multi: Vec<_> = echo
        .headers
        .iter()
        .filter(|(k, _)| k == "x-multi")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(multi, vec!["one", "two"]);
}

#[tokio::test]
async fn json_and_form_bodies_are_rewritten_and_a_large_body_passes_unchanged() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "          remove: {body: [secret]}
          rename: {body: [\"name:username\"]}
          add: {body: [\"source:gateway\"]}",
    )
    .await;
    let c = client();
    let r = c
        .post(gw.url("/"))
        .header("content-type", "application/json")
        .body(r#"{"name":"ann","secret":"s3"}"#)
        .send()
        .await
        .unwrap();
    let echo = Echo::parse(&r.text().await.unwrap());
    let body: serde_json::Value = serde_json::from_str(&echo.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"username": "ann", "source": "gateway"})
    );
    assert_eq!(
        echo.header("content-length"),
        Some(echo.body.len().to_string().as_str())
    );

    let r = c
        .post(gw.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=ann&secret=s3&x=1")
        .send()
        .await
        .unwrap();
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.body, "username=ann&x=1&source=gateway");

    // Past the 64 KiB the gateway buffers: forwarded as it came.
    let big = format!("secret={}", "x".repeat(70 * 1024));
    let r = c
        .post(gw.url("/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.body, big);
}
