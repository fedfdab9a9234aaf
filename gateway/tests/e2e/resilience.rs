//! Retries (on statuses, timeouts, with a budget), the route's overall timeout, outlier
//! ejection and connection limits, against real backends.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A config with one listener, an admin API on `admin_port`, upstream `pool` over
/// `targets` with `extra` fields (YAML flow mapping entries), and a route to it with
/// `route_extra`.
fn config(targets: &[&Backend], extra: &str, route_extra: &str, admin_port: u16) -> String {
    let targets = targets
        .iter()
        .map(|b| format!("\"{}\"", b.addr))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin: {{listen: \"127.0.0.1:{admin_port}\"}}
upstreams:
  - {{name: pool, targets: [{targets}], {extra}}}
routes:
  - {{name: r, upstream: pool, {route_extra}}}
"
    )
}

/// The `pool` upstream as `GET /upstreams` shows it (waiting for the admin listener,
/// which may start after the proxy's).
async fn pool_view(admin_port: u16) -> Value {
    let url = format!("http://127.0.0.1:{admin_port}/upstreams");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        match c.get(&url).send().await {
            Ok(r) => break r.json::<Value>().await.unwrap(),
            Err(e) if Instant::now() > deadline => panic!("admin API unreachable: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    body.as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == "pool").cloned())
        .unwrap_or(Value::Null)
}

/// The value of the series `name{labels}` of the admin API's `/metrics`.
async fn metric(admin_port: u16, name: &str, labels: &str) -> Option<u64> {
    metric_value(admin_port, &format!("{name}{{{labels}}}")).await
}

/// The target at `addr` in a pool view.
fn target_view(pool: &Value, addr: std::net::SocketAddr) -> Value {
    pool["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["address"] == addr.to_string()).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn retry_on_5xx_succeeds_on_a_second_target() {
    let bad = Backend::start("bad", Behaviour::Status(503)).await;
    let good = Backend::start("good", Behaviour::Echo).await;
    let admin = free_port();
    let yaml = config(&[&bad, &good], "retries: 1, retry_on: [5xx]", "", admin);
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();
    for i in 0..10 {
        let r = c.get(gw.url(&format!("/item/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(backend_of(&r).as_deref(), Some("good"));
    }
    // Every first attempt that went to the failing target was retried on the other.
    assert!(bad.hits() > 0);
    assert_eq!(good.hits(), 10);
    let view = pool_view(admin).await;
    assert_eq!(view["resilience"]["retries_granted"], bad.hits());
}

#[tokio::test]
async fn a_post_is_retried_on_a_status_only_when_configured() {
    let bad = Backend::start("bad", Behaviour::Status(503)).await;
    let good = Backend::start("good", Behaviour::Echo).await;
    let admin = free_port();
    let gw = GatewayProcess::start(&config(
        &[&bad, &good],
        "retries: 1, retry_on: [503]",
        "",
        admin,
    ))
    .await;
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = c
            .post(gw.url("/orders"))
            .body("order=1")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    statuses.sort();
    // The target may have acted on a POST: its 503 is the answer.
    assert_eq!(statuses, vec![200, 200, 503, 503]);
    assert_eq!(bad.hits(), 2);
    // A GET to the same pool is retried.
    for _ in 0..4 {
        let r = c.get(gw.url("/orders")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(bad.hits() > 2, "GETs went to the failing target first");

    // With retry_non_idempotent, the POST is retried, its body replayed.
    let bad2 = Backend::start("bad", Behaviour::Status(503)).await;
    let good2 = Backend::start("good", Behaviour::Echo).await;
    let gw2 = GatewayProcess::start(&config(
        &[&bad2, &good2],
        "retries: 1, retry_on: [503], retry_non_idempotent: true",
        "",
        free_port(),
    ))
    .await;
    for i in 0..4 {
        let body = format!("order={i}");
        let r = c
            .post(gw2.url("/orders"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            text.ends_with(&body),
            "the body reached the second target: {text}"
        );
    }
    assert!(bad2.hits() > 0, "POSTs went to the failing target first");
}

#[tokio::test]
async fn a_body_larger_than_the_retry_buffer_is_not_retried() {
    let bad = Backend::start("bad", Behaviour::Status(503)).await;
    let good = Backend::start("good", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&config(
        &[&bad, &good],
        "retries: 1, retry_on: [503], retry_non_idempotent: true",
        "",
        free_port(),
    ))
    .await;
    let c = client();
    // Pingora keeps 64 KiB of a request body for replay; 1 MiB cannot be replayed.
    let big = vec![b'x'; 1024 * 1024];
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = c
            .put(gw.url("/blob"))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, vec![200, 503]);
    assert_eq!(bad.hits(), 1);
    // A small body to the same pool is retried.
    for _ in 0..2 {
        let r = c.put(gw.url("/blob")).body("small").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[tokio::test]
async fn per_try_timeout_moves_to_another_target() {
    let slow = Backend::start("slow", Behaviour::Slow(Duration::from_secs(30))).await;
    let fast = Backend::start("fast", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&config(
        &[&slow, &fast],
        "retries: 1, retry_on: [reset], per_try_timeout: 300ms",
        "",
        free_port(),
    ))
    .await;
    let c = client();
    for i in 0..4 {
        let r = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(backend_of(&r).as_deref(), Some("fast"));
    }
    assert!(slow.hits() > 0, "first attempts went to the slow target");
}

#[tokio::test]
async fn the_route_timeout_covers_every_attempt_and_answers_504() {
    let a = Backend::start("a", Behaviour::Slow(Duration::from_secs(30))).await;
    let b = Backend::start("b", Behaviour::Slow(Duration::from_secs(30))).await;
    let gw = GatewayProcess::start(&config(
        &[&a, &b],
        "retries: 5, retry_on: [reset], per_try_timeout: 20s",
        "timeout: 500ms",
        free_port(),
    ))
    .await;
    let r = client().get(gw.url("/")).send().await.unwrap();
    let (status, message, _) = json_message(r).await;
    assert_eq!(status, 504);
    assert_eq!(message, "The upstream server is timing out");
    // The deadline ended the first attempt; no time was left for another.
    assert_eq!(a.hits() + b.hits(), 1);
}

#[tokio::test]
async fn max_connections_overflow_answers_503_json_at_once() {
    let slow = Backend::start("slow", Behaviour::Slow(Duration::from_secs(2))).await;
    let admin = free_port();
    let gw = GatewayProcess::start(&config(
        &[&slow],
        "max_connections: 1, max_pending_requests: 1",
        "",
        admin,
    ))
    .await;
    let c = client();
    let spawn = |c: &reqwest::Client| {
        let (c, url) = (c.clone(), gw.url("/"));
        tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) })
    };
    let first = spawn(&c);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let n = slow.hits();
            async move { n == 1 }
        })
        .await
    );
    // The second waits for the connection.
    let second = spawn(&c);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            pool_view(admin).await["resilience"]["requests_pending"] == 1
        })
        .await,
        "the second request waits"
    );
    let pool = "upstream=\"pool\"";
    assert_eq!(
        metric(admin, "pingway_upstream_requests_pending", pool).await,
        Some(1)
    );
    assert_eq!(
        metric(admin, "pingway_upstream_connections_in_use", pool).await,
        Some(1)
    );
    // The third finds the connection taken and the queue full.
    let over = c.get(gw.url("/")).send().await.unwrap();
    let (status, message, _) = json_message(over).await;
    assert_eq!(status, 503);
    assert_eq!(
        message,
        "upstream at its connection limit (max_connections)"
    );
    assert_eq!(first.await.unwrap().unwrap(), 200);
    assert_eq!(second.await.unwrap().unwrap(), 200);
    assert_eq!(
        slow.hits(),
        2,
        "the refused request never reached the backend"
    );
    assert_eq!(
        pool_view(admin).await["resilience"]["connection_overflows"],
        1
    );
    assert_eq!(
        metric(
            admin,
            "pingway_upstream_overflows_total",
            "upstream=\"pool\",limit=\"max_connections\""
        )
        .await,
        Some(1)
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            pool_view(admin).await["resilience"]["connections_in_use"] == 0
        })
        .await,
        "the connections are given back"
    );
}

#[tokio::test]
async fn retries_never_exceed_the_budget_while_every_target_answers_503() {
    let targets = [
        Backend::start("a", Behaviour::Status(503)).await,
        Backend::start("b", Behaviour::Status(503)).await,
        Backend::start("c", Behaviour::Status(503)).await,
    ];
    let admin = free_port();
    let refs: Vec<&Backend> = targets.iter().collect();
    let gw = GatewayProcess::start(&config(
        &refs,
        "retries: 2, retry_on: [5xx], retry_backoff: {base: 1ms, max: 2ms}, retry_budget: {ratio: 0.2, min_retries_per_second: 1}",
        "",
        admin,
    ))
    .await;
    let c = client();
    let requests = 200usize;
    let started = Instant::now();
    for _ in 0..requests {
        let r = c.get(gw.url("/")).send().await.unwrap();
        // The last attempt's answer is relayed as the target gave it.
        assert_eq!(r.status(), 503);
        assert!(backend_of(&r).is_some());
    }
    let elapsed = started.elapsed();
    let hits: usize = targets.iter().map(Backend::hits).sum();
    eprintln!("budget: {requests} requests, {hits} backend hits in {elapsed:?}");
    // The budget's reserve is 1 retry per second over each 10 s window the test touched.
    let windows = elapsed.as_secs() as usize / 10 + 1;
    let bound = requests + requests / 5 + 10 * windows;
    assert!(
        hits <= bound,
        "{hits} backend hits for {requests} requests (bound {bound})"
    );
    assert!(hits > requests, "retries were made within the budget");
    let view = pool_view(admin).await;
    let granted = view["resilience"]["retries_granted"].as_u64().unwrap() as usize;
    assert_eq!(hits, requests + granted);
    let refused = view["resilience"]["retries_refused_by_budget"]
        .as_u64()
        .unwrap();
    assert!(refused > 0);
    // The same counts on /metrics, for Prometheus.
    assert_eq!(
        metric(
            admin,
            "pingway_upstream_retries_total",
            "upstream=\"pool\",outcome=\"granted\""
        )
        .await,
        Some(granted as u64)
    );
    assert_eq!(
        metric(
            admin,
            "pingway_upstream_retries_total",
            "upstream=\"pool\",outcome=\"refused_by_budget\""
        )
        .await,
        Some(refused)
    );
}

/// Sends requests from `workers` tasks until `stop`, counting non-200 answers.
fn load(
    url: String,
    workers: usize,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|_| {
            let (url, stop, errors, sent) =
                (url.clone(), stop.clone(), errors.clone(), sent.clone());
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::SeqCst) {
                    let ok = matches!(c.get(&url).send().await, Ok(r) if r.status() == 200);
                    if !ok {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn a_killed_target_is_ejected_after_its_threshold_and_back_once_healthy() {
    let a = Backend::start("a", Behaviour::Echo).await;
    let b = Backend::start("b", Behaviour::Echo).await;
    let dead = Backend::start("c", Behaviour::Echo).await;
    let dead_addr = dead.addr;
    let admin = free_port();
    const THRESHOLD: usize = 3;
    const WORKERS: usize = 4;
    // No retries: every failed attempt is an error the client sees. The ejection is long
    // (60 s): what brings the target back here is the active health check.
    let gw = GatewayProcess::start(&config(
        &[&a, &b, &dead],
        &format!(
            "retries: 0, outlier_detection: {{consecutive_gateway_errors: {THRESHOLD}, consecutive_5xx: 0, base_ejection_time: 60s, max_ejection_percent: 34}}, \
             health_check: {{path: /health, interval: 100ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 5}}"
        ),
        "",
        admin,
    ))
    .await;
    let (stop, errors, sent) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let workers = load(
        gw.url("/"),
        WORKERS,
        stop.clone(),
        errors.clone(),
        sent.clone(),
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            let n = dead.hits();
            async move { n > 10 }
        })
        .await,
        "the load reaches every target"
    );
    assert_eq!(errors.load(Ordering::SeqCst), 0);

    // Kill it: open connections hang up, new ones are refused.
    dead.set(Behaviour::Hangup);
    dead.stop();
    assert!(
        wait_until(Duration::from_secs(10), || async {
            target_view(&pool_view(admin).await, dead_addr)["outlier"]["ejected"] == true
        })
        .await,
        "the dead target is ejected"
    );
    // Let the requests that were on their way to the target when it was ejected end.
    let more = |n: usize| {
        let sent = sent.clone();
        let from = sent.load(Ordering::SeqCst);
        async move {
            wait_until(Duration::from_secs(20), || {
                let now = sent.load(Ordering::SeqCst);
                async move { now >= from + n }
            })
            .await
        }
    };
    assert!(more(WORKERS * 2).await);
    let errors_until_ejection = errors.load(Ordering::SeqCst);
    eprintln!("ejection: {errors_until_ejection} errors before the dead target was ejected");
    // Each failure counts towards the threshold; requests already on their way to the
    // target when it was ejected (at most one per other worker) fail too.
    assert!(
        (1..THRESHOLD + WORKERS).contains(&errors_until_ejection),
        "{errors_until_ejection} errors before the ejection"
    );
    // Then no error at all.
    assert!(more(300).await);
    assert_eq!(
        errors.load(Ordering::SeqCst),
        errors_until_ejection,
        "no error once the target is ejected"
    );
    let view = target_view(&pool_view(admin).await, dead_addr);
    assert_eq!(view["outlier"]["ejections"], 1);

    // The active checks see it down too; once it is up again, they bring it back long
    // before its 60 s ejection ends.
    assert!(
        wait_until(Duration::from_secs(10), || async {
            target_view(&pool_view(admin).await, dead_addr)["health"] == "unhealthy"
        })
        .await
    );
    let revived = Backend::start_on(dead_addr.port(), "c", Behaviour::Echo).await;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let n = revived.hits();
            async move { n > 0 }
        })
        .await,
        "the revived target gets traffic again"
    );
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        errors.load(Ordering::SeqCst),
        errors_until_ejection,
        "no error while it came back"
    );
}

#[tokio::test]
async fn an_ejected_target_returns_when_its_ejection_time_is_over() {
    let flaky = Backend::start("flaky", Behaviour::Status(500)).await;
    let good = Backend::start("good", Behaviour::Echo).await;
    let admin = free_port();
    let gw = GatewayProcess::start(&config(
        &[&flaky, &good],
        "retries: 0, outlier_detection: {consecutive_5xx: 2, base_ejection_time: 1s, max_ejection_percent: 50}",
        "",
        admin,
    ))
    .await;
    let c = client();
    let mut failures = 0;
    // Round-robin: the flaky target's second 500 ejects it.
    for _ in 0..4 {
        if c.get(gw.url("/")).send().await.unwrap().status() != 200 {
            failures += 1;
        }
    }
    assert_eq!(failures, 2);
    let view = target_view(&pool_view(admin).await, flaky.addr);
    assert_eq!(view["outlier"]["ejected"], true);
    let hits_at_ejection = flaky.hits();
    flaky.set(Behaviour::Echo);
    // Back after its ejection time (polled, no sleep).
    assert!(
        wait_until(Duration::from_secs(10), || async {
            let r = c.get(gw.url("/")).send().await.unwrap();
            r.status() == 200 && backend_of(&r).as_deref() == Some("flaky")
        })
        .await,
        "the target is back after its ejection"
    );
    assert!(flaky.hits() > hits_at_ejection);
    let view = target_view(&pool_view(admin).await, flaky.addr);
    assert_eq!(view["outlier"]["ejected"], false);
    assert_eq!(view["outlier"]["ejections"], 1);
}

#[tokio::test]
async fn a_route_retry_policy_replaces_the_upstreams() {
    let bad = Backend::start("bad", Behaviour::Status(503)).await;
    let good = Backend::start("good", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: pool, targets: [\"{}\", \"{}\"], retries: 0}}
routes:
  - {{name: plain, paths: [/plain], upstream: pool}}
  - {{name: retried, paths: [/retried], upstream: pool, retries: {{attempts: 1, retry_on: [503]}}}}
",
        bad.addr, good.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();
    let mut plain = Vec::new();
    for _ in 0..4 {
        plain.push(
            c.get(gw.url("/plain"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    plain.sort();
    assert_eq!(
        plain,
        vec![200, 200, 503, 503],
        "the upstream does not retry"
    );
    let bad_before = bad.hits();
    for i in 0..4 {
        let r = c.get(gw.url("/retried")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert!(
        bad.hits() > bad_before,
        "first attempts went to the failing target"
    );
}

/// A backend that answers a head promising 100 bytes, sends 7 and closes; counts the
/// requests it got.
async fn broken_body_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                    .await;
                let _ = stream.flush().await;
            });
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn a_response_broken_off_after_its_head_is_not_retried() {
    let (a, a_hits) = broken_body_backend().await;
    let (b, b_hits) = broken_body_backend().await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: pool, targets: [\"{a}\", \"{b}\"], retries: 1, retry_on: [reset, 5xx]}}
routes:
  - {{name: r, upstream: pool}}
"
    );
    let gw = GatewayProcess::start(&yaml).await;
    let r = client().get(gw.url("/")).send().await.unwrap();
    // The head was relayed; the body breaks off.
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body is cut short");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let n = a_hits.load(Ordering::SeqCst) + b_hits.load(Ordering::SeqCst);
            async move { n >= 1 }
        })
        .await
    );
    // One request reached a backend: no second response was attempted.
    assert_eq!(
        a_hits.load(Ordering::SeqCst) + b_hits.load(Ordering::SeqCst),
        1
    );
}
