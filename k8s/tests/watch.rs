//! The watch loop driven by the real kube client against the stand-in API server
//! (tests/support/apiserver.rs: no kube-apiserver can run on these machines).

mod support;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingway_k8s::watch::{self, Stats, WatchOptions};
use serde_json::json;
use support::apiserver::ApiServer;
use support::objects::*;

fn client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

/// Waits until the file satisfies `cond` (a deadline, no fixed sleep).
async fn file_until(path: &Path, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if cond(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn addr(s: &str) -> std::net::SocketAddr {
    s.parse().unwrap()
}

async fn start(
    server: &ApiServer,
    streaming: bool,
) -> (tempfile::TempDir, std::path::PathBuf, Arc<Stats>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pingway.yaml");
    let mut opts = WatchOptions::new(out.clone());
    opts.streaming_list = streaming;
    opts.translate.https_listener = None;
    let stats = Arc::new(Stats::default());
    let c = client(server);
    let s = Arc::clone(&stats);
    tokio::spawn(async move { watch::run(c, opts, s).await });
    (dir, out, stats)
}

async fn adds_updates_and_deletes_reach_the_file(streaming: bool) {
    let server = ApiServer::start_without(&["KongClusterPlugin"]).await;
    server.apply(service("shop", "web"));
    server.apply(slice("shop", "web", &[addr("10.1.0.1:8080")]));
    server.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));
    let (_dir, out, stats) = start(&server, streaming).await;

    let text = file_until(&out, "first write", |t| t.contains("shop.front.0.0")).await;
    assert!(text.contains("10.1.0.1:8080"), "{text}");
    pingway_k8s::translate::check(&text).expect("valid");

    // An endpoint change moves the targets.
    server.apply(slice(
        "shop",
        "web",
        &[addr("10.1.0.2:8080"), addr("10.1.0.3:8080")],
    ));
    file_until(&out, "new endpoints", |t| {
        t.contains("10.1.0.3:8080") && !t.contains("10.1.0.1")
    })
    .await;

    // A new Ingress with a plugin.
    server.apply(kong_plugin(
        "shop",
        "rl",
        "rate-limiting",
        json!({"minute": 10}),
    ));
    server.apply(ingress(
        "shop",
        "api",
        "api.test",
        "/v1",
        "web",
        json!({"konghq.com/plugins": "rl"}),
    ));
    file_until(&out, "second ingress", |t| {
        t.contains("shop.api.0.0") && t.contains("rate-limiting")
    })
    .await;

    // Deleted: its routes go.
    server.delete("Ingress", "shop", "front");
    let text = file_until(&out, "deletion", |t| !t.contains("shop.front")).await;
    pingway_k8s::translate::check(&text).expect("valid");

    // Dropped watches and a compacted history: a deletion while disconnected is
    // noticed at the relist that the 410 forces.
    server.compact();
    server.drop_watches();
    server.delete("Ingress", "shop", "api");
    file_until(&out, "deletion across a relist", |t| {
        !t.contains("shop.api")
    })
    .await;
    assert!(server.counters.expired.load(Ordering::Relaxed) > 0);
    // Each mode was the one used: streaming lists ask for initial events, the other
    // lists first.
    let streamed = server.counters.streaming.load(Ordering::Relaxed);
    assert_eq!(streamed > 0, streaming, "{streamed} streaming watches");
    let writes = stats.writes.load(Ordering::Relaxed);
    let regenerations = stats.regenerations.load(Ordering::Relaxed);
    assert!(
        writes >= 5 && regenerations >= writes,
        "writes {writes}, regenerations {regenerations}"
    );
}

#[tokio::test]
async fn list_then_watch() {
    adds_updates_and_deletes_reach_the_file(false).await;
}

#[tokio::test]
async fn streaming_lists() {
    adds_updates_and_deletes_reach_the_file(true).await;
}

#[tokio::test]
async fn a_burst_of_changes_coalesces_and_an_unchanged_result_is_not_rewritten() {
    let server = ApiServer::start().await;
    server.apply(service("b", "web"));
    server.apply(slice("b", "web", &[addr("10.2.0.1:8080")]));
    let (_dir, out, stats) = start(&server, false).await;
    file_until(&out, "first write", |t| t.contains("listeners")).await;
    for i in 0..200 {
        server.apply(ingress(
            "b",
            &format!("i{i:03}"),
            &format!("h{i}.test"),
            "/",
            "web",
            json!({}),
        ));
    }
    file_until(&out, "all 200", |t| t.contains("b.i199.0.0")).await;
    let writes = stats.writes.load(Ordering::Relaxed);
    assert!(writes < 50, "200 changes gave {writes} writes");
    // A change that does not alter the output: a regeneration, no write.
    let regen = stats.regenerations.load(Ordering::Relaxed);
    server.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "b", "name": "other"}, "spec": {}}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.regenerations.load(Ordering::Relaxed) == regen {
        assert!(Instant::now() < deadline, "no regeneration");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.writes.load(Ordering::Relaxed), writes);
}
