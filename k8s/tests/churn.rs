//! Memory across regenerations: the stand-in API server churns EndpointSlices (every
//! change gives pods never seen before) → the `pingway-k8s` binary regenerates and
//! writes the file for each change → the real gateway reloads it. The resident memory
//! of both processes, sampled after a warm-up and at the end, must stay flat.
//!
//! `PINGWAY_CHURN_REGENERATIONS` (default 100) sets the number of changes; the benchmark
//! runs 10,000 and reports the samples this test prints.

mod support;

use std::net::SocketAddr;
use std::time::Instant;

use serde_json::json;
use support::apiserver::ApiServer;
use support::objects::*;
use support::processes::*;

/// Services (one Ingress each) and pods per Service.
const SERVICES: usize = 100;
const PODS: usize = 10;
/// The gateway is waited for (its admin API lists the change) every this many changes;
/// between, changes come faster than its 50 ms reload debounce.
const GATEWAY_EVERY: usize = 10;

/// The pods of change `n` of Service `s`: addresses never used before.
fn pods(n: usize) -> Vec<SocketAddr> {
    (0..PODS)
        .map(|p| {
            let k = n * PODS + p;
            format!(
                "10.{}.{}.{}:8080",
                (k >> 16) & 0xff,
                (k >> 8) & 0xff,
                k & 0xff
            )
            .parse()
            .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_flat_across_regenerations_and_reloads() {
    let changes: usize = std::env::var("PINGWAY_CHURN_REGENERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    assert!(changes >= 100 && changes * PODS < 1 << 24);
    let api = ApiServer::start().await;
    for s in 0..SERVICES {
        let svc = format!("s{s:03}");
        api.apply(service("c", &svc));
        api.apply(slice("c", &svc, &pods(s)));
        api.apply(ingress(
            "c",
            &format!("i{s:03}"),
            &format!("h{s}.test"),
            "/",
            &svc,
            json!({}),
        ));
    }
    let pair = WatcherAndGateway::start(&api.url(), &["--no-https", "--debounce-ms", "1"]).await;
    let (admin, logs) = (pair.admin, pair.logs());
    let (watcher, gateway) = (&pair.watcher, &pair.gateway);
    until("the gateway", &logs, async || {
        get(admin, "localhost", "/status").await.is_some()
    })
    .await;

    let started = Instant::now();
    let warm_up = changes / 10;
    let mut samples = Vec::new();
    for n in SERVICES..SERVICES + changes {
        let s = n % SERVICES;
        let new = pods(n);
        api.apply(slice("c", &format!("s{s:03}"), &new));
        // This change's file: its first new pod is in it.
        let marker = format!("\"{}\"", new[0]);
        until("the change written", &logs, async || {
            std::fs::read_to_string(&pair.config).is_ok_and(|t| t.contains(&marker))
        })
        .await;
        let done = n + 1 - SERVICES;
        if done.is_multiple_of(GATEWAY_EVERY) {
            until("the change reloaded", &logs, async || {
                get(admin, "localhost", "/upstreams")
                    .await
                    .is_some_and(|(_, v)| v.contains(&marker))
            })
            .await;
        }
        if done == warm_up || done == changes / 2 || done == changes {
            samples.push((done, watcher.rss_kib(), gateway.rss_kib()));
        }
    }
    let status = get(admin, "localhost", "/status")
        .await
        .map(|r| r.1)
        .unwrap_or_default();
    let applied = serde_json::from_str::<serde_json::Value>(&status)
        .ok()
        .and_then(|v| v["reloads"]["applied"].as_u64())
        .unwrap_or(0);
    eprintln!(
        "{changes} regenerations in {:.1} s ({applied} gateway reloads applied); RSS KiB \
         (after n changes: watcher, gateway): {samples:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(applied >= (changes / GATEWAY_EVERY) as u64, "{status}");
    let (_, w0, g0) = samples[0];
    let (_, w1, g1) = samples[samples.len() - 1];
    // Flat: what the stores and the running configuration hold does not grow with the
    // number of changes. The bound leaves room for allocator noise only (the churn
    // moves 10 × `changes` addresses through both processes).
    for (who, before, after) in [("watcher", w0, w1), ("gateway", g0, g1)] {
        assert!(
            after.saturating_sub(before) < 16 * 1024,
            "{who} RSS grew from {before} to {after} KiB over {} changes",
            changes - warm_up
        );
    }
}
