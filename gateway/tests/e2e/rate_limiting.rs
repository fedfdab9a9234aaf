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
