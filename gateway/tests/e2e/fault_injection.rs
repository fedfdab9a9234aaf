//! fault-injection as clients observe it: aborts with a status, delays, and a header
//! condition that limits both.

use std::time::{Duration, Instant};

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
      - name: fault-injection
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

#[tokio::test]
async fn an_abort_answers_its_status_without_asking_the_upstream() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{abort: {http_status: 503, percentage: 100}}").await;
    let (status, message, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (503, "fault filter abort"));
    let gw = gateway(
        &backend,
        "{abort: {http_status: 500, body: oops, percentage: 100}}",
    )
    .await;
    let r = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.text().await.unwrap(), "oops");
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn a_delay_holds_only_requests_with_the_header() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{delay: {fixed_delay: 300ms}, header: {name: x-chaos, value: \"1\"}}",
    )
    .await;
    let c = client();
    let start = Instant::now();
    let r = c
        .get(gw.url("/"))
        .header("x-chaos", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(backend.hits(), 1, "delayed, then proxied");
    // Without the header: no fault (the abort below would show it).
    let gw = gateway(
        &backend,
        "{abort: {http_status: 418}, header: {name: x-chaos}}",
    )
    .await;
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);
    let r = c
        .get(gw.url("/"))
        .header("x-chaos", "any")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 418);
}
