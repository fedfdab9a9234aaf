//! A route's weighted split (`routes[].split`) through the real binary: a 90/10 canary
//! lands within 2 percentage points of its weights over 10,000 requests; a sticky split
//! keeps each user on one side; bad splits are refused at load with their fields.

use std::time::Duration;

use crate::common::*;

fn yaml(one: &Backend, two: &Backend, extra: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
proxy: {{latency_headers: false}}
upstreams:
  - {{name: stable, targets: [\"{}\"]}}
  - {{name: canary, targets: [\"{}\"]}}
routes:
  - name: api
    upstream: stable
    split: [{{upstream: canary, weight: 10}}]
{extra}",
        one.addr, two.addr
    )
}

#[tokio::test]
async fn a_90_10_split_is_within_two_points_of_its_weights() {
    let stable = Backend::start("stable", Behaviour::Echo).await;
    let canary = Backend::start("canary", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&yaml(&stable, &canary, "")).await;
    let c = client();
    let n = 10_000;
    // 32 clients at once, each sending its share one request after another.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (c, url) = (c.clone(), gw.url("/"));
        workers.spawn(async move {
            let mut ok = 0;
            for _ in 0..n / 32 + 1 {
                if c.get(url.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    ok += 1;
                }
            }
            ok
        });
    }
    let n = (n / 32 + 1) * 32;
    let mut ok = 0;
    while let Some(done) = workers.join_next().await {
        ok += done.unwrap();
    }
    assert_eq!(ok, n);
    let share = canary.hits() as f64 / n as f64;
    assert_eq!(stable.hits() + canary.hits(), n);
    assert!((share - 0.10).abs() <= 0.02, "canary got {share}");
}

#[tokio::test]
async fn a_sticky_split_keeps_each_user_on_one_side() {
    let stable = Backend::start("stable", Behaviour::Echo).await;
    let canary = Backend::start("canary", Behaviour::Echo).await;
    let extra = "    split_hash_on: header\n    split_hash_on_header: x-user\n";
    let gw = GatewayProcess::start(&yaml(&stable, &canary, extra)).await;
    let c = client();
    let mut on_canary = 0;
    for user in 0..200 {
        let mut sides = Vec::new();
        for _ in 0..4 {
            let r = c
                .get(gw.url("/"))
                .header("x-user", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            sides.push(Echo::parse(&r.text().await.unwrap()).backend);
        }
        assert!(
            sides.iter().all(|s| *s == sides[0]),
            "user-{user} moved: {sides:?}"
        );
        on_canary += usize::from(sides[0] == "canary");
    }
    assert!(
        (5..60).contains(&on_canary),
        "{on_canary} of 200 users on the 10% side"
    );
}

#[test]
fn bad_splits_are_refused_with_their_fields() {
    for (split, field) in [
        (
            "[{upstream: nowhere, weight: 10}]",
            "routes[0].split[0].upstream",
        ),
        (
            "[{upstream: canary, weight: 60}, {upstream: other, weight: 50}]",
            "routes[0].split",
        ),
        (
            "[{upstream: stable, weight: 10}]",
            "routes[0].split[0].upstream",
        ),
    ] {
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: stable, targets: [\"127.0.0.1:9\"]}}
  - {{name: canary, targets: [\"127.0.0.1:9\"]}}
  - {{name: other, targets: [\"127.0.0.1:9\"]}}
routes:
  - name: api
    upstream: stable
    split: {split}
"
        );
        let (ok, out) = crate::auth_fixtures::validate(&yaml);
        assert!(!ok, "{split}: {out}");
        assert!(out.contains(field), "{split}: {field} in {out}");
    }
}

/// Circuit breaking: a pool at its `max_requests` answers the next request 503 at once
/// (the backend never sees it), and serves again once a request finishes.
#[tokio::test]
async fn a_pool_at_max_requests_answers_503_at_once() {
    let slow = Backend::start("slow", Behaviour::Slow(Duration::from_secs(2))).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"], max_requests: 2}}]
routes: [{{name: api, upstream: up}}]
",
        slow.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (c, url) = (c.clone(), gw.url("/"));
            tokio::spawn(async move { c.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let n = slow.hits();
            async move { n == 2 }
        })
        .await,
        "both requests reached the backend"
    );
    let over = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(over.status(), 503);
    let (_, message, _) = json_message(over).await;
    assert!(message.contains("max_requests"), "{message}");
    assert_eq!(
        slow.hits(),
        2,
        "the refused request never reached the backend"
    );
    for h in held {
        assert_eq!(h.await.unwrap().unwrap(), 200);
    }
    let again = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(again.status(), 200, "slots are given back");
}
