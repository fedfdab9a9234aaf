//! Scale and churn against the stand-in API server (tests/support/apiserver.rs): a burst
//! of 1,000 changed objects coalesces into a few writes, and a flood of objects far
//! beyond the configured bounds gives a bounded file that the real gateway serves.
//! (The large figures are in benches/README.md; these stay small enough for CI.)

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingway_k8s::translate::Limits;
use pingway_k8s::watch::{self, Stats, WatchOptions};
use serde_json::json;
use support::apiserver::ApiServer;
use support::objects::*;
use support::processes::*;

fn client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

/// Waits until the file satisfies `cond` (a deadline, no fixed sleep).
async fn file_until(path: &Path, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if cond(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the watch loop in this process (default debounce, 200 ms / 2 s).
fn start(server: &ApiServer, opts: WatchOptions) -> Arc<Stats> {
    let stats = Arc::new(Stats::default());
    let c = client(server);
    let s = Arc::clone(&stats);
    tokio::spawn(async move { watch::run(c, opts, s).await });
    stats
}

fn options(out: PathBuf) -> WatchOptions {
    let mut opts = WatchOptions::new(out);
    opts.translate.https_listener = None;
    opts
}

/// The address of pod `i` of generation `g` (distinct for every i < 65,536).
fn pod(g: u8, i: usize) -> std::net::SocketAddr {
    format!("10.{g}.{}.{}:8080", i / 256, i % 256)
        .parse()
        .unwrap()
}

const BURST: usize = 1_000;

/// 1,000 EndpointSlices changed at once (every Service's pod moves): the debounce gives
/// a few file writes, not 1,000, and the last one holds all 1,000 changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_changed_objects_gives_a_few_writes_with_every_change() {
    let server = ApiServer::start().await;
    for i in 0..BURST {
        let svc = format!("s{i:04}");
        server.apply(service("b", &svc));
        server.apply(slice("b", &svc, &[pod(1, i)]));
        server.apply(ingress(
            "b",
            &format!("i{i:04}"),
            &format!("h{i}.test"),
            "/",
            &svc,
            json!({}),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pingway.yaml");
    let stats = start(&server, options(out.clone()));
    let last = pod(1, BURST - 1).to_string();
    file_until(&out, "the first file", |t| t.contains(&last)).await;
    let before = stats.writes.load(Ordering::Relaxed);
    let regenerations = stats.regenerations.load(Ordering::Relaxed);

    for i in 0..BURST {
        server.apply(slice("b", &format!("s{i:04}"), &[pod(2, i)]));
    }
    let text = file_until(&out, "every new address", |t| {
        (0..BURST).all(|i| t.contains(&pod(2, i).to_string()))
    })
    .await;
    // Every change, and nothing of the old pods.
    assert!(!text.contains("10.1."), "an old address is left");
    let config = pingway_k8s::translate::check(&text).expect("valid");
    assert_eq!(config.routes.len(), BURST);
    let writes = stats.writes.load(Ordering::Relaxed) - before;
    let regens = stats.regenerations.load(Ordering::Relaxed) - regenerations;
    eprintln!("{BURST} changed EndpointSlices: {writes} writes, {regens} regenerations");
    assert!(
        (1..=10).contains(&writes),
        "{BURST} changes gave {writes} writes"
    );
}

/// Far more objects than the bounds: the file holds what the bounds allow, in sorted
/// order, passes `pingway validate`, the counters say how much was left out, and the
/// gateway serves it (and keeps serving as the flood grows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_beyond_the_bounds_gives_a_bounded_file_the_gateway_serves() {
    let gateway_bin = pingway_bin();
    // Ingress i000 (host h0.test) goes to a real backend; the other pods are closed
    // loopback ports (refused at once).
    let backend = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        addr
    };
    let server = ApiServer::start().await;
    let flood = |from: usize, to: usize| {
        for i in from..to {
            let svc = format!("s{i:03}");
            server.apply(service("f", &svc));
            let pods: Vec<_> = if i == 0 {
                vec![backend]
            } else {
                (0..3)
                    .map(|p| {
                        format!("127.{}.{}.{}:1", p + 1, i / 256, i % 256)
                            .parse()
                            .unwrap()
                    })
                    .collect()
            };
            server.apply(slice("f", &svc, &pods));
            server.apply(ingress(
                "f",
                &format!("i{i:03}"),
                &format!("h{i}.test"),
                "/",
                &svc,
                json!({}),
            ));
        }
    };
    flood(0, 500);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pingway.yaml");
    let (port, admin) = (free_port(), free_port());
    let mut opts = options(config.clone());
    opts.translate.http_listener = format!("127.0.0.1:{port}");
    opts.translate.admin_listen = Some(format!("127.0.0.1:{admin}"));
    // 1 + 3 × 99 targets fit the first 100 pools; of their routes, 50 fit.
    opts.translate.limits = Limits {
        max_routes: 50,
        max_upstreams: 1_000,
        max_targets: 1 + 3 * 99,
        max_certificates: 10,
    };
    let stats = start(&server, opts);
    file_until(&config, "the first file", |t| t.contains("f.i000.0.0")).await;
    let gateway_log = dir.path().join("gateway.log");
    let _gateway = spawn(
        &gateway_bin,
        &["run", "--config", config.to_str().unwrap()],
        &gateway_log,
    );
    let logs = [gateway_log.as_path()];
    until("h0.test served", &logs, async || {
        get(port, "h0.test", "/").await == Some((200, "ok".into()))
    })
    .await;

    let check = |want_left_out_routes: u64, want_upstreams: u64, want_targets: u64| {
        let text = std::fs::read_to_string(&config).unwrap();
        let c = pingway_k8s::translate::check(&text).expect("valid");
        assert_eq!(c.routes.len(), 50);
        // Sorted order: the first 50 Ingresses.
        assert_eq!(c.routes[0].name, "f.i000.0.0");
        assert_eq!(c.routes[49].name, "f.i049.0.0");
        assert_eq!(c.upstreams.len(), 100);
        let targets: usize = c.upstreams.iter().map(|u| u.targets.len()).sum();
        assert_eq!(targets, 298);
        assert_eq!(
            stats.left_out_routes.load(Ordering::Relaxed),
            want_left_out_routes
        );
        assert_eq!(
            stats.left_out_upstreams.load(Ordering::Relaxed),
            want_upstreams
        );
        assert_eq!(stats.left_out_targets.load(Ordering::Relaxed), want_targets);
        let validate = std::process::Command::new(&gateway_bin)
            .args(["validate", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            validate.status.success(),
            "{}",
            String::from_utf8_lossy(&validate.stderr)
        );
    };
    // 500 pools: 400 left out with their 1,200 targets; 450 routes (400 to those pools,
    // 50 beyond max_routes).
    check(450, 400, 1_200);
    // The 50th route is there (its closed pods give an error, not a 404); the 51st not.
    let last = get(port, "h49.test", "/").await.map(|r| r.0);
    assert!(matches!(last, Some(s) if s >= 500), "{last:?}");
    assert_eq!(get(port, "h50.test", "/").await.map(|r| r.0), Some(404));

    // The flood doubles: the file stays within the bounds (the same bytes: nothing is
    // rewritten, nothing reloaded), the gateway serves on.
    let writes = stats.writes.load(Ordering::Relaxed);
    flood(500, 1_000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.left_out_upstreams.load(Ordering::Relaxed) != 900 {
        assert!(
            Instant::now() < deadline,
            "the second flood was not translated"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check(950, 900, 2_700);
    assert_eq!(stats.writes.load(Ordering::Relaxed), writes);
    assert_eq!(get(port, "h0.test", "/").await, Some((200, "ok".into())));
}
