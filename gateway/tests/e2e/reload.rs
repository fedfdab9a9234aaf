//! Live reload: file edits and SIGHUP, under load, with broken files refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

fn routing(to: &str, one: &Backend, two: &Backend, extra_route: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: one, targets: [\"{}\"]}}
  - {{name: two, targets: [\"{}\"]}}
routes:
  - name: main
    paths: [/]
    upstream: {to}
    plugins:
      - {{name: rate-limiting, config: {{year: 1000000, limit_by: ip}}}}
{extra_route}",
        one.addr, two.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_rewrites_under_load_lose_no_request() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    let configs = [
        routing("one", &one, &two, ""),
        routing("two", &one, &two, ""),
    ];
    let gw = Arc::new(GatewayProcess::start(&configs[0]).await);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..6 {
        let (gw, stop, ok) = (gw.clone(), stop.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let c = client();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match c.get(gw.url("/")).send().await {
                    Ok(r) if r.status() == 200 => {
                        let backend = r.headers()["x-backend"].to_str().unwrap_or("").to_string();
                        let body = r.text().await.unwrap_or_default();
                        // Every answer is consistent with one of the two configurations.
                        if !(backend == "one" || backend == "two") || !body.starts_with(&backend) {
                            failures.push(format!("inconsistent answer from {backend:?}"));
                        }
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(format!("error {e}")),
                }
            }
            failures
        }));
    }

    for i in 1..=50 {
        gw.write_config(&configs[i % 2]);
        let want = if i % 2 == 0 { "one" } else { "two" };
        // Each rewrite is live within a second.
        let c = client();
        let applied = wait_until(Duration::from_secs(1), || async {
            match c.get(gw.url("/")).send().await {
                Ok(r) => r.headers().get("x-backend").and_then(|v| v.to_str().ok()) == Some(want),
                Err(_) => false,
            }
        })
        .await;
        assert!(applied, "rewrite {i} not live within a second");
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    assert!(gw.log().contains("configuration reloaded"));
}

#[tokio::test]
async fn a_broken_file_is_refused_and_the_old_config_keeps_serving() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&routing("one", &one, &two, "")).await;
    let broken =
        routing("two", &one, &two, "").replace("paths: [/]", "paths: [/]\n    colour: blue");
    gw.write_config(&broken);
    let refused = wait_until(Duration::from_secs(5), || async {
        gw.log().contains("keeping the running configuration")
    })
    .await;
    assert!(refused, "{}", gw.log());
    // The same message `pingway validate` prints, with file, line and column.
    let expected = format!(
        "{}:8:5: routes[0].colour: unknown field `colour`",
        gw.config_path.display()
    );
    assert!(
        gw.log().contains(&expected),
        "missing {expected:?} in\n{}",
        gw.log()
    );
    let resp = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(resp.headers()["x-backend"], "one");
    // Fixing the file applies it.
    gw.write_config(&routing("two", &one, &two, ""));
    let c = client();
    assert!(
        wait_until(Duration::from_secs(2), || async {
            c.get(gw.url("/"))
                .send()
                .await
                .ok()
                .and_then(|r| backend_of(&r))
                .as_deref()
                == Some("two")
        })
        .await
    );
}

#[tokio::test]
async fn sighup_reloads_when_the_watch_is_off() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    let gw =
        GatewayProcess::start_with_args(&routing("one", &one, &two, ""), &["--no-watch"]).await;
    gw.write_config(&routing("two", &one, &two, ""));
    gw.sighup();
    let c = client();
    assert!(
        wait_until(Duration::from_secs(3), || async {
            c.get(gw.url("/"))
                .send()
                .await
                .ok()
                .and_then(|r| backend_of(&r))
                .as_deref()
                == Some("two")
        })
        .await,
        "{}",
        gw.log()
    );
    assert!(gw.log().contains("SIGHUP"));
}

#[tokio::test]
async fn plugin_state_survives_a_reload_that_changes_another_route() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&routing("one", &one, &two, "")).await;
    let c = client();
    let remaining = |r: &reqwest::Response| -> u64 {
        r.headers()["x-ratelimit-remaining-year"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mut last = 0;
    for _ in 0..5 {
        last = remaining(&c.get(gw.url("/")).send().await.unwrap());
    }
    // Add a route elsewhere; the main route's rate-limiting config is unchanged.
    let extra = "  - {name: extra, paths: [/extra], upstream: two}\n";
    gw.write_config(&routing("one", &one, &two, extra));
    assert!(
        wait_until(Duration::from_secs(2), || async {
            c.get(gw.url("/extra"))
                .send()
                .await
                .ok()
                .and_then(|r| backend_of(&r))
                .as_deref()
                == Some("two")
        })
        .await
    );
    let after = remaining(&c.get(gw.url("/")).send().await.unwrap());
    // Counting went on where it was (the polls above were counted too) rather than
    // restarting at 999,999. The window is a year, so it does not roll over meanwhile.
    assert!(
        after < last,
        "counter reset by the reload: {last} then {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let slow = Backend::start("one", Behaviour::Slow(Duration::from_millis(1500))).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    let gw = Arc::new(GatewayProcess::start(&routing("one", &slow, &two, "")).await);
    let in_flight = {
        let gw = gw.clone();
        tokio::spawn(async move {
            client()
                .get(gw.url("/"))
                .send()
                .await
                .map(|r| backend_of(&r))
        })
    };
    assert!(wait_until(Duration::from_secs(5), || async { slow.hits() == 1 }).await);
    gw.write_config(&routing("two", &slow, &two, ""));
    let c = client();
    assert!(
        wait_until(Duration::from_secs(2), || async {
            c.get(gw.url("/"))
                .send()
                .await
                .ok()
                .and_then(|r| backend_of(&r))
                .as_deref()
                == Some("two")
        })
        .await
    );
    // The old request was not cut off or re-routed: it completes from `one`.
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(answer.as_deref(), Some("one"));
}
