//! rate-limiting as Kong clients observe it.

use std::collections::HashMap;

use crate::common::*;

async fn gateway(backend: &Backend, plugin_config: &str, proxy: &str) -> GatewayProcess {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
{proxy}
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: limited
    paths: [/]
    upstream: up
    plugins:
      - name: rate-limiting
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn counts_down_then_answers_429_with_kong_headers() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{hour: 3, day: 10, limit_by: ip}", "").await;
    let c = client();
    for expected_remaining in [2, 1, 0] {
        let r = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit-hour").as_deref(), Some("3"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining-hour"),
            Some(expected_remaining.to_string())
        );
        assert_eq!(header(&r, "x-ratelimit-limit-day").as_deref(), Some("10"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining-day"),
            Some((7 + expected_remaining).to_string())
        );
        // RateLimit-* describe the tightest window: the hour.
        assert_eq!(header(&r, "ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&r, "ratelimit-remaining"),
            Some(expected_remaining.to_string())
        );
        let reset: u64 = header(&r, "ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=3600).contains(&reset));
    }
    let r = c.get(gw.url("/")).send().await.unwrap();
    let retry_after: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after));
    assert_eq!(
        header(&r, "x-ratelimit-remaining-hour").as_deref(),
        Some("0")
    );
    let (status, message, request_id) = json_message(r).await;
    assert_eq!((status, message.as_str()), (429, "API rate limit exceeded"));
    assert_eq!(request_id.len(), 36);
    assert_eq!(backend.hits(), 3);
}

#[tokio::test]
async fn custom_code_message_and_hidden_headers() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let cfg = "{hour: 1, hide_client_headers: true, error_code: 503, error_message: slow down}";
    let gw = gateway(&backend, cfg, "").await;
    let c = client();
    let r = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().contains("ratelimit")),
        "{:?}",
        r.headers()
    );
    let (status, message, _) = json_message(c.get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (503, "slow down"));
}

#[tokio::test]
async fn limit_by_header_keeps_clients_apart() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{hour: 2, limit_by: header, header_name: x-tenant}",
        "",
    )
    .await;
    let c = client();
    let mut statuses: HashMap<&str, Vec<u16>> = HashMap::new();
    for tenant in ["a", "b", "a", "b", "a", "b"] {
        let r = c
            .get(gw.url("/"))
            .header("x-tenant", tenant)
            .send()
            .await
            .unwrap();
        statuses
            .entry(tenant)
            .or_default()
            .push(r.status().as_u16());
    }
    assert_eq!(statuses["a"], vec![200, 200, 429]);
    assert_eq!(statuses["b"], vec![200, 200, 429]);
}

/// 20,000 clients, each with a distinct 4 KB identifier, against `max_tracked_keys:
/// 1000`: every one is answered as a new client, the gateway's memory does not grow
/// with what clients send (identifiers stored whole would take 80 MB), and the
/// evictions are logged, not once per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_long_identifiers_keep_memory_bounded() {
    const CLIENTS: usize = 20_000;
    const TASKS: usize = 4;
    let backend = Backend::start("b", Behaviour::Status(204)).await;
    let gw = gateway(
        &backend,
        "{hour: 2, limit_by: header, header_name: x-client, max_tracked_keys: 1000}",
        "",
    )
    .await;
    let c = client();
    // A 4 KB identifier, distinct per client.
    let id = |i: usize| format!("{i:08}-{}", "x".repeat(4087));
    let send = |c: reqwest::Client, url: String, value: String| async move {
        let r = c.get(url).header("x-client", value).send().await.unwrap();
        (
            r.status().as_u16(),
            header(&r, "x-ratelimit-remaining-hour"),
        )
    };
    // Warm up (connections, buffers, the allocator) before taking the baseline.
    for i in 0..200 {
        let (status, _) = send(c.clone(), gw.url("/"), id(CLIENTS + i)).await;
        assert_eq!(status, 204);
    }
    let before = gw.rss_kib();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (c, url) = (c.clone(), gw.url("/"));
            tokio::spawn(async move {
                let mut wrong = Vec::new();
                for i in (t..CLIENTS).step_by(TASKS) {
                    let answer = send(c.clone(), url.clone(), id(i)).await;
                    if answer != (204, Some("1".to_string())) {
                        wrong.push((i, answer));
                    }
                }
                wrong
            })
        })
        .collect();
    for t in tasks {
        let wrong = t.await.unwrap();
        assert!(
            wrong.is_empty(),
            "wrong answers: {:?}",
            &wrong[..wrong.len().min(5)]
        );
    }
    let grown_kib = gw.rss_kib().saturating_sub(before);
    assert!(
        grown_kib < 50 * 1024,
        "RSS grew by {grown_kib} KiB for {CLIENTS} identifiers of 4 KB"
    );
    // At the cap, a client is still counted exactly.
    let fresh = id(CLIENTS + 1_000);
    for remaining in ["1", "0"] {
        assert_eq!(
            send(c.clone(), gw.url("/"), fresh.clone()).await,
            (204, Some(remaining.to_string()))
        );
    }
    assert_eq!(send(c.clone(), gw.url("/"), fresh).await.0, 429);
    // Evictions are logged at most once a minute, not per request.
    let warnings = gw.log().matches("evicting counters").count();
    let minutes = started.elapsed().as_secs() / 60;
    assert!(
        (1..=1 + minutes as usize).contains(&warnings),
        "{warnings} eviction warnings in {minutes} min"
    );
}

/// 400 requests at once against a limit of 100: exactly 100 pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_under_concurrency() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{hour: 100, limit_by: ip}",
        "server: {threads: 2}",
    )
    .await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(400)
        .build()
        .unwrap();
    let url = gw.url("/");
    let tasks: Vec<_> = (0..400)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for t in tasks {
        *counts.entry(t.await.unwrap().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.get(&200), Some(&100), "{counts:?}");
    assert_eq!(counts.get(&429), Some(&300), "{counts:?}");
    assert_eq!(backend.hits(), 100);
}

#[tokio::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    // Untrusted peer: spoofed X-Forwarded-For changes nothing; one counter for all.
    let gw = gateway(&backend, "{hour: 2, limit_by: ip}", "").await;
    let c = client();
    let mut statuses = Vec::new();
    for ip in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        let r = c
            .get(gw.url("/"))
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 429]);

    // Trusted peer: each forwarded client has its own budget.
    let gw = gateway(
        &backend,
        "{hour: 2, limit_by: ip}",
        "proxy: {trusted_ips: [127.0.0.0/8]}",
    )
    .await;
    for ip in ["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1", "1.1.1.1"] {
        let r = c
            .get(gw.url("/"))
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[3..], &[200, 200, 200, 200, 429]);
}
