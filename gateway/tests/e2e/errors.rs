//! Upstream failures answer 502/503/504 in JSON, quickly; retries move on to other
//! targets.

use std::time::{Duration, Instant};

use crate::common::*;

fn config(targets: &[String], extra: &str) -> String {
    let list = targets
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]\nupstreams:\n  - name: up\n    targets: [{list}]\n{extra}\nroutes:\n  - {{name: r, upstream: up}}\n"
    )
}

#[tokio::test]
async fn upstream_down_is_502_json() {
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = GatewayProcess::start(&config(&[dead], "    retries: 0")).await;
    let started = Instant::now();
    let resp = client().get(gw.url("/")).send().await.unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let (status, message, body_id) = json_message(resp).await;
    assert_eq!(status, 502);
    assert_eq!(
        message,
        "An invalid response was received from the upstream server"
    );
    assert_eq!(body_id, rid);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn upstream_hanging_up_is_502() {
    let backend = Backend::start("rude", Behaviour::Hangup).await;
    let gw = GatewayProcess::start(&config(&[backend.addr.to_string()], "    retries: 0")).await;
    let (status, _, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn upstream_slower_than_the_read_timeout_is_504() {
    let backend = Backend::start("slow", Behaviour::Slow(Duration::from_secs(3))).await;
    let gw = GatewayProcess::start(&config(
        &[backend.addr.to_string()],
        "    read_timeout: 300ms",
    ))
    .await;
    let started = Instant::now();
    let (status, message, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!(status, 504);
    assert_eq!(message, "The upstream server is timing out");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn no_healthy_target_is_503() {
    let backend = Backend::start("sick", Behaviour::Echo).await;
    backend.set_healthy(false);
    let extra = "    health_check: {path: /health, interval: 100ms, timeout: 500ms, unhealthy_threshold: 1}";
    let gw = GatewayProcess::start(&config(&[backend.addr.to_string()], extra)).await;
    let c = client();
    let became_503 = wait_until(Duration::from_secs(10), || async {
        c.get(gw.url("/"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
            == Some(503)
    })
    .await;
    assert!(became_503, "never 503");
    let (status, message, _) = json_message(c.get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!(
        (status, message.as_str()),
        (503, "no healthy upstream target")
    );
}

#[tokio::test]
async fn connect_failures_are_retried_on_other_targets() {
    let good = Backend::start("good", Behaviour::Echo).await;
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = GatewayProcess::start(&config(
        &[dead.clone(), good.addr.to_string()],
        "    retries: 1",
    ))
    .await;
    let c = client();
    for _ in 0..20 {
        let resp = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(Echo::parse(&resp.text().await.unwrap()).backend, "good");
    }
    assert_eq!(good.hits(), 20);
    // With no retries allowed, the dead target's share of requests fails with 502.
    gw.write_config(&config(&[dead, good.addr.to_string()], "    retries: 0"));
    let saw_502 = wait_until(Duration::from_secs(5), || async {
        c.get(gw.url("/"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
            == Some(502)
    })
    .await;
    assert!(saw_502);
}

#[tokio::test]
async fn a_malformed_request_gets_400_and_the_gateway_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Backend::start("b", Behaviour::Echo).await;
    let mut gw = GatewayProcess::start(&config(&[backend.addr.to_string()], "")).await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(gw.is_running());
    assert_eq!(
        client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn a_client_that_leaves_early_is_not_logged_as_an_error_but_upstream_failures_are() {
    let slow = Backend::start("slow", Behaviour::Slow(Duration::from_millis(800))).await;
    let mut gw = GatewayProcess::start(&config(&[slow.addr.to_string()], "    retries: 0")).await;
    // The client gives up before the upstream answers.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    assert!(impatient.get(gw.url("/leaving")).send().await.is_err());
    // Let the gateway notice: the upstream answers after 800 ms, and the write fails.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(gw.is_running(), "the gateway survives the client leaving");
    let log = gw.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("ERROR") && l.contains("/leaving")),
        "a client leaving early is not an error:\n{log}"
    );

    // An upstream that is down still gets its error line.
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = GatewayProcess::start(&config(&[dead], "    retries: 0")).await;
    let resp = client().get(gw.url("/broken")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    // The line is written after the response: give it a moment.
    let logged = |log: &str| {
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("/broken"))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logged(&gw.log()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = gw.log();
    assert!(logged(&log), "upstream failures stay errors:\n{log}");
}
