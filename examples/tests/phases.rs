//! The phases no stock plugin uses, through the real custom-gateway binary: pre-routing
//! (`path-rewrite`), choosing the upstream (`canary`), the streamed request body
//! (`max-body`), the upstream response head and the response body (`shout-text`). The
//! log phase is covered by `log-shipper` in `worked_examples.rs`.

mod common;

use common::{client, echo_backend, Gateway};

#[tokio::test]
async fn on_rewrite_changes_the_path_before_routing_and_runs_on_a_404() {
    let backend = echo_backend("one").await;
    let gw = Gateway::start(&format!(
        "upstreams: [{{name: b, targets: [\"{backend}\"]}}]
plugins:
  - {{name: path-rewrite, config: {{from: /old/, to: /new/}}}}
routes:
  - name: new-api
    paths: [/new/api]
    upstream: b
"
    ))
    .await;
    let c = client();

    // Only a route on /new exists: /old/api/... is served by it.
    let served = c.get(gw.url("/old/api/items?x=1")).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["x-rewritten-from"], "/old/api/items");
    let echoed = served.text().await.unwrap();
    assert!(echoed.starts_with("GET /new/api/items?x=1\n"), "{echoed}");

    // Rewritten to a path no route has: the 404 shows the rewrite ran before it.
    let missing = c.get(gw.url("/old/gone")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-rewritten-from"], "/old/gone");

    // Paths outside the prefix are left alone.
    let other = c.get(gw.url("/new/api")).send().await.unwrap();
    assert_eq!(other.status(), 200);
    assert!(other.headers().get("x-rewritten-from").is_none());
}

#[tokio::test]
async fn choose_upstream_sends_canary_requests_to_the_other_upstream() {
    let stable = echo_backend("stable").await;
    let canary = echo_backend("canary").await;
    let gw = Gateway::start(&format!(
        "upstreams:
  - {{name: stable, targets: [\"{stable}\"]}}
  - {{name: canary, targets: [\"{canary}\"]}}
routes:
  - name: r
    upstream: stable
    plugins:
      - {{name: canary, config: {{header: x-canary, value: \"1\", upstream: canary}}}}
"
    ))
    .await;
    let c = client();
    let plain = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(plain.headers()["x-backend"], "stable");
    let asks = c
        .get(gw.url("/"))
        .header("x-canary", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(asks.status(), 200);
    assert_eq!(asks.headers()["x-backend"], "canary");
}

#[tokio::test]
async fn on_request_body_ends_an_oversized_upload_with_413() {
    let backend = echo_backend("one").await;
    let gw = Gateway::start(&format!(
        "upstreams: [{{name: b, targets: [\"{backend}\"]}}]
routes:
  - name: upload
    upstream: b
    plugins:
      - {{name: max-body, config: {{limit: 1024}}}}
"
    ))
    .await;
    let c = client();
    let small = c
        .post(gw.url("/upload"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    assert!(small.text().await.unwrap().contains("body bytes: 1000"));

    let large = c
        .post(gw.url("/upload"))
        .body(vec![b'a'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 413);
    let body: serde_json::Value = serde_json::from_slice(&large.bytes().await.unwrap()).unwrap();
    assert_eq!(body["message"], "Request size limit exceeded");
}

#[tokio::test]
async fn upstream_response_and_response_body_phases_transform_the_answer() {
    let backend = echo_backend("one").await;
    let gw = Gateway::start(&format!(
        "upstreams: [{{name: b, targets: [\"{backend}\"]}}]
routes:
  - name: loud
    paths: [/loud]
    upstream: b
    plugins:
      - {{name: shout-text, config: {{}}}}
  - name: quiet
    paths: [/quiet]
    upstream: b
"
    ))
    .await;
    let c = client();
    let loud = c.get(gw.url("/loud/words")).send().await.unwrap();
    assert_eq!(loud.status(), 200);
    assert_eq!(loud.headers()["x-upstream-status"], "200");
    let text = loud.text().await.unwrap();
    assert!(text.starts_with("GET /LOUD/WORDS\n"), "{text}");
    assert_eq!(text, text.to_ascii_uppercase());

    let quiet = c.get(gw.url("/quiet/words")).send().await.unwrap();
    assert!(quiet.headers().get("x-upstream-status").is_none());
    assert!(quiet
        .text()
        .await
        .unwrap()
        .starts_with("GET /quiet/words\n"));
}
