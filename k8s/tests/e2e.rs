//! End to end: the stand-in API server (tests/support/apiserver.rs; no kube-apiserver
//! can run on these machines) → the `pingway-k8s` binary writing the file → the real
//! `pingway run` gateway reloading it → HTTP requests answered by real backends on
//! 127.0.0.1 whose addresses are the EndpointSlice's.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::apiserver::ApiServer;
use support::objects::*;
use support::processes::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_to_running_gateway() {
    let one = backend("one").await;
    let two = backend("two").await;
    let api = ApiServer::start().await;
    api.apply(service("shop", "web"));
    api.apply(slice("shop", "web", &[one]));
    api.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));
    // A broken plugin and the Ingress that names it: left out, nothing else harmed.
    api.apply(kong_plugin(
        "shop",
        "bad",
        "rate-limiting",
        json!({"minute": "many"}),
    ));
    api.apply(ingress(
        "shop",
        "broken",
        "broken.test",
        "/",
        "web",
        json!({"konghq.com/plugins": "bad"}),
    ));

    let pair = WatcherAndGateway::start(&api.url(), &["--no-https", "--debounce-ms", "50"]).await;
    let (port, logs) = (pair.port, pair.logs());

    until("routed to backend one", &logs, async || {
        get(port, "shop.test", "/").await == Some((200, "one".into()))
    })
    .await;
    assert_eq!(get(port, "broken.test", "/").await.map(|r| r.0), Some(404));
    let validate = Command::new(pingway_bin())
        .args(["validate", pair.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        validate.status.success(),
        "{}",
        String::from_utf8_lossy(&validate.stderr)
    );
    let wlog = std::fs::read_to_string(&pair.watcher_log).unwrap();
    assert!(wlog.contains("KongPlugin shop/bad"), "{wlog}");

    // The pods move: traffic follows the EndpointSlice.
    api.apply(slice("shop", "web", &[two]));
    until("routed to backend two", &logs, async || {
        get(port, "shop.test", "/").await == Some((200, "two".into()))
    })
    .await;

    // Deleted: 404.
    api.delete("Ingress", "shop", "front");
    until("404 after deletion", &logs, async || {
        get(port, "shop.test", "/").await.map(|r| r.0) == Some(404)
    })
    .await;
}

/// The watcher's arguments for a stand-in at `api`, a file in `dir` and these ports.
fn watcher_args(api: &ApiServer, config: &Path, port: u16, admin: u16) -> Vec<String> {
    [
        "--server",
        &api.url(),
        "--output",
        config.to_str().unwrap(),
        "--http-listen",
        &format!("127.0.0.1:{port}"),
        "--admin-listen",
        &format!("127.0.0.1:{admin}"),
        "--no-https",
        "--debounce-ms",
        "50",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// GET the admin API's `/status` (what the Deployment's readiness probe asks).
async fn admin_status(admin: u16) -> Option<u16> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", admin))
        .await
        .ok()?;
    s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_watcher_and_gateway_serve_an_ingress() {
    let one = backend("one").await;
    let api = ApiServer::start().await;
    api.apply(service("shop", "web"));
    api.apply(slice("shop", "web", &[one]));
    api.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pingway.yaml");
    let (port, admin) = (free_port(), free_port());
    let log = dir.path().join("serve.log");
    let logs = [log.as_path()];
    let mut args = vec!["serve".to_string()];
    args.extend(watcher_args(&api, &config, port, admin));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _serve = spawn(Path::new(env!("CARGO_BIN_EXE_pingway-k8s")), &args, &log);

    until("routed to backend one", &logs, async || {
        get(port, "shop.test", "/").await == Some((200, "one".into()))
    })
    .await;
    until("the admin /status answers 200", &logs, async || {
        admin_status(admin).await == Some(200)
    })
    .await;
    // The readiness probe's command: ready here, not ready where nothing listens.
    let probe = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_pingway-k8s"))
            .args(["probe", &format!("--url=http://127.0.0.1:{port}/status")])
            .output()
            .unwrap()
    };
    let ready = probe(admin);
    assert!(
        ready.status.success(),
        "{}",
        String::from_utf8_lossy(&ready.stderr)
    );
    let unready = probe(free_port());
    assert_eq!(unready.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unready.stderr).contains("not ready"));
    // A change reaches the in-process gateway through the watcher's reload hook.
    api.apply(ingress(
        "shop",
        "second",
        "second.test",
        "/",
        "web",
        json!({}),
    ));
    until("the second Ingress served", &logs, async || {
        get(port, "second.test", "/").await == Some((200, "one".into()))
    })
    .await;
    api.delete("Ingress", "shop", "front");
    until("404 after deletion", &logs, async || {
        get(port, "shop.test", "/").await.map(|r| r.0) == Some(404)
    })
    .await;
    // The replica led (it was alone) and holds the Lease.
    let lease = api.get("Lease", "default", "pingway-k8s-leader");
    assert!(lease.is_some(), "no Lease written");
}

/// `bin` placed in `dir` (a hard link, else a copy).
fn place(bin: &Path, dir: &Path) -> PathBuf {
    let to = dir.join(bin.file_name().unwrap());
    if std::fs::hard_link(bin, &to).is_err() {
        std::fs::copy(bin, &to).unwrap();
    }
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingway_run_kubernetes_executes_the_watcher_beside_it() {
    let gateway_bin = pingway_bin();
    let watcher_bin = PathBuf::from(env!("CARGO_BIN_EXE_pingway-k8s"));
    // In the target directory's temporary space: the same file system, so hard links.
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));

    // Alone (and nothing on PATH): a clear error naming what is missing.
    let alone = tempfile::tempdir_in(&base).unwrap();
    let lonely = place(&gateway_bin, alone.path());
    let out = Command::new(&lonely)
        .args(["run", "--kubernetes", "--server", "http://127.0.0.1:1"])
        .env("PATH", alone.path().join("nothing-here"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs the pingway-k8s binary") && stderr.contains("found none"),
        "{stderr}"
    );

    // Both side by side: `pingway run --kubernetes` serves the cluster's Ingresses.
    let both = tempfile::tempdir_in(&base).unwrap();
    let gw = place(&gateway_bin, both.path());
    place(&watcher_bin, both.path());
    let one = backend("one").await;
    let api = ApiServer::start().await;
    api.apply(service("shop", "web"));
    api.apply(slice("shop", "web", &[one]));
    api.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));
    let config = both.path().join("pingway.yaml");
    let (port, admin) = (free_port(), free_port());
    let log = both.path().join("run.log");
    let mut args = vec!["run".to_string(), "--kubernetes".to_string()];
    args.extend(watcher_args(&api, &config, port, admin));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _run = spawn(&gw, &args, &log);
    until("routed to backend one", &[log.as_path()], async || {
        get(port, "shop.test", "/").await == Some((200, "one".into()))
    })
    .await;
}
