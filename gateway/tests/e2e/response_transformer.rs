//! response-transformer as clients observe it: headers on every response, JSON bodies
//! edited with a correct framing, large bodies untouched.

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
      - name: response-transformer
        config:
{plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

const CONFIG: &str = "          remove: {headers: [x-backend], json: [secret]}
          rename: {json: [\"name:username\"]}
          replace: {json: [\"count:2\"], json_types: [number]}
          add: {headers: [\"x-added:yes\"], json: [\"ok:true\"], json_types: [boolean]}
          append: {headers: [\"x-multi:a\", \"x-multi:b\"], json: [\"tags:b\"]}";

#[tokio::test]
async fn a_json_body_is_edited_and_headers_are_changed() {
    let backend = Backend::start(
        "b",
        Behaviour::Json(r#"{"name":"ann","secret":"s3","count":1,"tags":"a"}"#.into()),
    )
    .await;
    let gw = gateway(&backend, CONFIG).await;
    let r = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h.get("x-backend").is_none());
    assert_eq!(h["x-added"], "yes");
    let multi: Vec<_> = h.get_all("x-multi").iter().collect();
    assert_eq!(multi, vec!["a", "b"]);
    let text = r.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        body,
        serde_json::json!({"username": "ann", "count": 2, "tags": ["a", "b"], "ok": true})
    );
    // Keep-alive still works after a re-framed body: a second request on the client.
    let again = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn other_responses_keep_their_body_and_get_the_headers() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, CONFIG).await;
    let r = client().get(gw.url("/plain")).send().await.unwrap();
    assert_eq!(r.headers()["x-added"], "yes");
    let len: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = r.text().await.unwrap();
    assert_eq!(text.len(), len);
    assert!(text.contains("GET /plain HTTP/1.1"));

    // A body larger than the 1 MiB the plugin collects passes unchanged.
    let big = format!(r#"{{"secret":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    backend.set(Behaviour::Json(big.clone()));
    let r = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), big);
}
