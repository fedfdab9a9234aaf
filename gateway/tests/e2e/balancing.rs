//! Balancing and health checks seen through the gateway.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;

fn pool(backends: &[(&Backend, u32)], extra: &str) -> String {
    let targets = backends
        .iter()
        .map(|(b, w)| format!("{{address: \"{}\", weight: {w}}}", b.addr))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]\nupstreams:\n  - name: pool\n    targets: [{targets}]\n{extra}\nroutes: [{{name: r, upstream: pool}}]\n"
    )
}

async fn count(
    gw: &GatewayProcess,
    n: usize,
    header: Option<(&str, String)>,
) -> HashMap<String, usize> {
    let c = client();
    let mut seen = HashMap::new();
    for i in 0..n {
        let mut req = c.get(gw.url("/"));
        if let Some((name, prefix)) = &header {
            req = req.header(*name, format!("{prefix}{i}"));
        }
        let r = req.send().await.unwrap();
        *seen
            .entry(r.headers()["x-backend"].to_str().unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn weighted_round_robin_splits_exactly() {
    let a = Backend::start("a", Behaviour::Echo).await;
    let b = Backend::start("b", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&pool(&[(&a, 1), (&b, 3)], "")).await;
    let seen = count(&gw, 400, None).await;
    assert_eq!(seen["a"], 100);
    assert_eq!(seen["b"], 300);
}

#[tokio::test]
async fn consistent_hashing_keeps_a_key_on_one_target() {
    let a = Backend::start("a", Behaviour::Echo).await;
    let b = Backend::start("b", Behaviour::Echo).await;
    let c = Backend::start("c", Behaviour::Echo).await;
    let extra = "    balancer: consistent_hash\n    hash_on: header\n    hash_on_header: x-user";
    let gw = GatewayProcess::start(&pool(&[(&a, 100), (&b, 100), (&c, 100)], extra)).await;
    let http = client();
    for user in ["alice", "bob", "carol", "dave"] {
        let mut backends = std::collections::HashSet::new();
        for _ in 0..10 {
            let r = http
                .get(gw.url("/"))
                .header("x-user", user)
                .send()
                .await
                .unwrap();
            backends.insert(r.headers()["x-backend"].to_str().unwrap().to_string());
        }
        assert_eq!(backends.len(), 1, "{user} moved: {backends:?}");
    }
    // Different keys spread over the targets.
    let seen = count(&gw, 300, Some(("x-user", "user-".into()))).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[tokio::test]
async fn a_target_failing_its_health_check_gets_no_traffic_until_it_recovers() {
    let a = Backend::start("a", Behaviour::Echo).await;
    let b = Backend::start("b", Behaviour::Echo).await;
    let extra = "    health_check: {path: /health, interval: 100ms, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}";
    let gw = GatewayProcess::start(&pool(&[(&a, 1), (&b, 1)], extra)).await;
    assert_eq!(count(&gw, 10, None).await.len(), 2);

    b.set_healthy(false);
    let drained = wait_until(Duration::from_secs(10), || async {
        !count(&gw, 4, None).await.contains_key("b")
    })
    .await;
    assert!(drained, "b still receives traffic");
    let before = b.hits();
    let seen = count(&gw, 50, None).await;
    assert_eq!(seen.get("a"), Some(&50));
    assert_eq!(b.hits(), before);
    assert!(gw.log().contains("unhealthy"), "{}", gw.log());

    b.set_healthy(true);
    let back = wait_until(Duration::from_secs(10), || async {
        count(&gw, 4, None).await.contains_key("b")
    })
    .await;
    assert!(back, "b never came back");
}

#[tokio::test]
async fn least_connections_prefers_the_idle_target() {
    let slow = Backend::start("slow", Behaviour::Slow(Duration::from_millis(1500))).await;
    let fast = Backend::start("fast", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&pool(
        &[(&slow, 1), (&fast, 1)],
        "    balancer: least_connections",
    ))
    .await;
    // Occupy one target with a long request, then the others all go to the idle one.
    let c = client();
    let url = gw.url("/");
    let mut pending = Vec::new();
    for _ in 0..2 {
        let (c, url) = (c.clone(), url.clone());
        pending.push(tokio::spawn(async move {
            c.get(url).send().await.unwrap().status()
        }));
    }
    let busy = wait_until(Duration::from_secs(5), || async { slow.hits() >= 1 }).await;
    assert!(busy);
    let seen = count(&gw, 20, None).await;
    assert_eq!(seen.get("fast"), Some(&20), "{seen:?}");
    for p in pending {
        assert_eq!(p.await.unwrap(), 200);
    }
}
