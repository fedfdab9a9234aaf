//! The three worked examples (`require-header`, `http-authorize`, `log-shipper`) in the
//! real custom-gateway binary, against real backends and stand-in services.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, echo_backend, serve, wait_for, Gateway, Received, Reply};

async fn json(resp: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn require_header_answers_400_403_or_lets_through() {
    let backend = echo_backend("one").await;
    let gw = Gateway::start(&format!(
        "upstreams: [{{name: b, targets: [\"{backend}\"]}}]
routes:
  - name: r
    upstream: b
    plugins:
      - {{name: require-header, config: {{header: X-Tenant, values: [acme, globex]}}}}
"
    ))
    .await;
    let c = client();

    let missing = c.get(gw.url("/orders")).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    let body = json(missing).await;
    assert_eq!(body["message"], "X-Tenant is required");
    assert!(body["request_id"].is_string(), "{body}");

    let denied = c
        .get(gw.url("/orders"))
        .header("x-tenant", "initech")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        json(denied).await["message"],
        "X-Tenant value is not allowed"
    );

    let ok = c
        .get(gw.url("/orders"))
        .header("x-tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("x-tenant: acme"));
}

/// A stand-in authorization service: `Bearer good` is alice, `Bearer bad` is refused,
/// `Bearer slow` answers after far longer than the plugin waits, no token is a 401. It
/// counts the calls per `authorization` value.
async fn authorization_service() -> (std::net::SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = calls.clone();
    let addr = serve(move |r: Received| {
        let calls = counted.clone();
        async move {
            let token = r.header("authorization").unwrap_or("").to_string();
            *calls.lock().unwrap().entry(token.clone()).or_default() += 1;
            match token.as_str() {
                "Bearer good" => Reply::new(200).header("X-Authz-Subject", "alice"),
                "Bearer bad" => Reply::new(403),
                "Bearer slow" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Reply::new(200)
                }
                _ => Reply::new(401).header("www-authenticate", "Bearer realm=\"api\""),
            }
        }
    })
    .await;
    (addr, calls)
}

#[tokio::test]
async fn http_authorize_asks_the_service_caches_its_answers_and_fails_closed() {
    let backend = echo_backend("one").await;
    let (authz, calls) = authorization_service().await;
    let gw = Gateway::start(&format!(
        "upstreams: [{{name: b, targets: [\"{backend}\"]}}]
routes:
  - name: r
    upstream: b
    plugins:
      - name: http-authorize
        config:
          url: http://{authz}/check
          timeout: 250ms
          forward_headers: [authorization]
          upstream_headers: [X-Authz-Subject]
          cache_ttl: 1h
          cache_size: 100
          error_log_interval: 1h
"
    ))
    .await;
    let c = client();
    let calls_for = |token: &str| calls.lock().unwrap().get(token).copied().unwrap_or(0);

    // Allowed: the service's subject goes upstream (named in lower case, the documented
    // spelling of plugin-added request headers), the client's forged one does not.
    for _ in 0..2 {
        let ok = c
            .get(gw.url("/orders"))
            .header("authorization", "Bearer good")
            .header("x-authz-subject", "mallory")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let echoed = ok.text().await.unwrap();
        assert!(echoed.contains("x-authz-subject: alice"), "{echoed}");
        assert!(!echoed.contains("mallory"), "{echoed}");
    }
    // The second identical request was answered from the cache.
    assert_eq!(calls_for("Bearer good"), 1);

    let denied = c
        .get(gw.url("/orders"))
        .header("authorization", "Bearer bad")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        json(denied).await["message"],
        "You cannot consume this service"
    );

    let anonymous = c.get(gw.url("/orders")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Bearer realm=\"api\""
    );
    assert_eq!(json(anonymous).await["message"], "Unauthorized");

    // Slow: 503 once the timeout passed, every time (failures are not cached), and one
    // warning in the log for all of them.
    for i in 1..=3 {
        let slow = c
            .get(gw.url("/orders"))
            .header("authorization", "Bearer slow")
            .send()
            .await
            .unwrap();
        assert_eq!(slow.status(), 503);
        assert_eq!(
            json(slow).await["message"],
            "The authorization service is unavailable"
        );
        assert_eq!(calls_for("Bearer slow"), i);
    }
    let log = gw.log();
    assert_eq!(log.matches("http-authorize:").count(), 1, "{log}");
}

#[tokio::test]
async fn log_shipper_flushes_its_queue_when_the_gateway_stops() {
    const N: usize = 25;
    let backend = echo_backend("one").await;
    let lines: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let posts = Arc::new(AtomicUsize::new(0));
    let (received, counted) = (lines.clone(), posts.clone());
    let collector = serve(move |r: Received| {
        let (lines, posts) = (received.clone(), counted.clone());
        async move {
            posts.fetch_add(1, Ordering::SeqCst);
            let mut lines = lines.lock().unwrap();
            for line in r.body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                lines.push(serde_json::from_slice(line).unwrap());
            }
            Reply::new(204)
        }
    })
    .await;
    // A flush interval of an hour and batches larger than N: only the drain at SIGTERM
    // can deliver these lines. The grace period bounds the drain.
    let mut gw = Gateway::start(&format!(
        "server: {{grace_period: 3s}}
upstreams: [{{name: b, targets: [\"{backend}\"]}}]
plugins:
  - name: log-shipper
    config: {{url: \"http://{collector}/ingest\", queue_size: 1000, batch_size: 500, flush_interval: 1h}}
routes:
  - name: r
    upstream: b
"
    ))
    .await;
    let c = client();
    for i in 0..N {
        let resp = c
            .get(gw.url(&format!("/shipped/{i}?secret=s")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    assert_eq!(
        posts.load(Ordering::SeqCst),
        0,
        "nothing is sent before the drain"
    );

    let status = gw.terminate().await;
    assert!(status.success(), "{status}: {}", gw.log());
    // The process exited after the drain acknowledged the flush, so the collector has
    // the lines already; the wait only covers its own bookkeeping.
    let enough = wait_for(Duration::from_secs(5), || lines.lock().unwrap().len() >= N).await;
    let lines = lines.lock().unwrap();
    assert!(enough, "{} of {N} lines: {}", lines.len(), gw.log());
    assert_eq!(lines.len(), N, "{lines:?}");
    let mut paths: Vec<String> = lines
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("/shipped/{i}")).collect();
    expected.sort();
    assert_eq!(paths, expected);
    let first = &lines[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream"], "b");
    assert_eq!(first["target"], backend.to_string());
    assert!(first["request_id"].is_string());
    assert!(first["latency_ms"].is_u64());
}
