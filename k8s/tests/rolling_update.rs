//! A rolling update under load: stand-in API server → `pingway-k8s` → file → the real
//! gateway → real backends, one per pod, on distinct loopback addresses and one port
//! (the EndpointSlice's port is per slice). Pods are replaced one at a time as a
//! Deployment with `maxSurge: 1, maxUnavailable: 0` does it:
//!
//! 1. the new pod starts and turns ready: the EndpointSlice lists it `ready: true`;
//! 2. the old pod is deleted: the EndpointSlice marks it `ready: false,
//!    terminating: true`, and the watcher leaves it out of the file;
//! 3. graceful (the default): the old pod's `preStop` hook outlasts the configuration's
//!    propagation, which this test stands for by waiting until the gateway's admin API no
//!    longer lists the target (the configuration is reloaded); only then does the server
//!    stop: it accepts no more connections, finishes the requests it has and closes
//!    its idle keep-alive connections (what Go's `Shutdown`, nginx's `quit` and hyper's
//!    graceful shutdown do on SIGTERM).
//!    Harsh (`PINGWAY_ROLLING_MODE=harsh`, no `preStop`): the server stops abruptly the
//!    moment it is marked terminating, connections reset, before the gateway knows;
//!    the gateway's retries on connect failures are all that helps.
//! 4. the endpoint leaves the slice.
//!
//! Clients send requests continuously on keep-alive connections through it all. The
//! graceful rollout must fail no request (no status ≥ 500, no connection error); the
//! harsh one is reported (benches/README.md), and must complete.
//!
//! `PINGWAY_ROLLING_PODS` (default 20) sets the number of pods; the benchmark runs 100.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::apiserver::ApiServer;
use support::objects::*;
use support::processes::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

/// How a pod's server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// No new connection; requests in progress finish; idle connections close.
    Graceful,
    /// Everything closes now.
    Abrupt,
}

/// One pod: a keep-alive HTTP/1.1 server answering `200 <name>`.
struct Pod {
    addr: SocketAddr,
    stop: watch::Sender<Stop>,
    served: Arc<AtomicU64>,
}

impl Pod {
    async fn start(addr: SocketAddr) -> Pod {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let (stop, mut stop_rx) = watch::channel(Stop::Running);
        let served = Arc::new(AtomicU64::new(0));
        let body = addr.ip().to_string();
        let counter = Arc::clone(&served);
        let conn_stop = stop.subscribe();
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((s, _)) = accepted else { continue };
                        conns.spawn(serve(s, body.clone(), Arc::clone(&counter), conn_stop.clone()));
                    }
                    _ = stop_rx.changed() => break,
                }
            }
            drop(listener);
            if *stop_rx.borrow() == Stop::Abrupt {
                conns.abort_all();
            }
            while conns.join_next().await.is_some() {}
        });
        Pod { addr, stop, served }
    }
}

/// Serves one connection until the peer closes it or the pod stops.
async fn serve(
    s: tokio::net::TcpStream,
    body: String,
    served: Arc<AtomicU64>,
    mut stop: watch::Receiver<Stop>,
) {
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    loop {
        // Idle between requests: a stop closes the connection here.
        let mut line = String::new();
        tokio::select! {
            n = r.read_line(&mut line) => match n { Ok(0) | Err(_) => return, Ok(_) => {} },
            _ = stop.changed() => return,
        }
        // A request has begun: read it to its end (GET, no body) and answer it.
        loop {
            let mut h = String::new();
            match r.read_line(&mut h).await {
                Ok(0) | Err(_) => return,
                Ok(_) if h == "\r\n" || h == "\n" => break,
                Ok(_) => {}
            }
        }
        let closing = *stop.borrow() != Stop::Running;
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n{body}",
            body.len(),
            if closing { "close" } else { "keep-alive" }
        );
        if w.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        served.fetch_add(1, Ordering::Relaxed);
        if closing {
            return;
        }
    }
}

/// The EndpointSlice of Service `web`: `(address, ready)` endpoints on `port`.
fn endpoint_slice(port: u16, endpoints: &[(SocketAddr, bool)]) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(a, ready)| {
            json!({"addresses": [a.ip().to_string()],
                   "conditions": {"ready": ready, "serving": true, "terminating": !ready}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "roll", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": eps})
}

/// What the clients saw.
#[derive(Default)]
struct Load {
    ok: AtomicU64,
    /// Status ≥ 500.
    errors: AtomicU64,
    /// Connection errors and timeouts.
    broken: AtomicU64,
    stop: AtomicBool,
    first_failures: std::sync::Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut f = self.first_failures.lock().unwrap();
        if f.len() < 10 {
            f.push(what);
        }
    }
    fn failed(&self) -> u64 {
        self.errors.load(Ordering::Relaxed) + self.broken.load(Ordering::Relaxed)
    }
}

/// One client: keep-alive requests to the gateway, back to back, until told to stop.
async fn client(port: u16, load: Arc<Load>) {
    'conn: while !load.stop.load(Ordering::Relaxed) {
        let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            load.fail(&load.broken, "connect to the gateway".into());
            continue;
        };
        let (r, mut w) = s.into_split();
        let mut r = BufReader::new(r);
        while !load.stop.load(Ordering::Relaxed) {
            let one = async {
                w.write_all(b"GET / HTTP/1.1\r\nHost: roll.test\r\n\r\n")
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                let mut status_line = String::new();
                if r.read_line(&mut status_line)
                    .await
                    .map_err(|e| format!("read: {e}"))?
                    == 0
                {
                    return Err("closed before the response".to_string());
                }
                let status: u16 = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("bad status line {status_line:?}"))?;
                let (mut length, mut close) = (0usize, false);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h)
                        .await
                        .map_err(|e| format!("read: {e}"))?
                        == 0
                    {
                        return Err("closed in the headers".into());
                    }
                    if h == "\r\n" {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("connection:") && lower.contains("close") {
                        close = true;
                    }
                }
                let mut body = vec![0u8; length];
                r.read_exact(&mut body)
                    .await
                    .map_err(|e| format!("body: {e}"))?;
                Ok::<_, String>((status, close, body))
            };
            match tokio::time::timeout(Duration::from_secs(10), one).await {
                Ok(Ok((status, close, body))) => {
                    if status >= 500 {
                        load.fail(
                            &load.errors,
                            format!("{status} {}", String::from_utf8_lossy(&body)),
                        );
                    } else {
                        load.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    if close {
                        continue 'conn;
                    }
                }
                Ok(Err(e)) => {
                    load.fail(&load.broken, e);
                    continue 'conn;
                }
                Err(_) => {
                    load.fail(&load.broken, "no response within 10 s".into());
                    continue 'conn;
                }
            }
        }
    }
}

/// The gateway's admin view of its pools (its live configuration).
async fn upstreams(admin: u16) -> String {
    get(admin, "localhost", "/upstreams")
        .await
        .map(|r| r.1)
        .unwrap_or_default()
}

fn listed(view: &str, a: SocketAddr) -> bool {
    view.contains(&format!("\"{a}\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_under_load_fails_no_request() {
    let pods: usize = std::env::var("PINGWAY_ROLLING_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    assert!((1..=250).contains(&pods), "PINGWAY_ROLLING_PODS: 1 to 250");
    let harsh = std::env::var("PINGWAY_ROLLING_MODE").as_deref() == Ok("harsh");
    let clients: usize = std::env::var("PINGWAY_ROLLING_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);

    // Old pods on 127.0.0.2.., new ones on 127.0.1.2.., all on one port.
    let ip = |net: u8, i: usize| IpAddr::V4(Ipv4Addr::new(127, 0, net, i as u8 + 2));
    let port = {
        let l = std::net::TcpListener::bind((ip(0, 0), 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let mut old = Vec::new();
    for i in 0..pods {
        old.push(Pod::start(SocketAddr::new(ip(0, i), port)).await);
    }
    let api = ApiServer::start().await;
    api.apply(service("roll", "web"));
    let mut endpoints: Vec<(SocketAddr, bool)> = old.iter().map(|p| (p.addr, true)).collect();
    api.apply(endpoint_slice(port, &endpoints));
    api.apply(ingress("roll", "web", "roll.test", "/", "web", json!({})));

    let pair = WatcherAndGateway::start(&api.url(), &["--no-https", "--debounce-ms", "50"]).await;
    let (gw_port, admin, logs) = (pair.port, pair.admin, pair.logs());
    until("every old pod listed", &logs, async || {
        let v = upstreams(admin).await;
        old.iter().all(|p| listed(&v, p.addr))
    })
    .await;
    until("served", &logs, async || {
        matches!(get(gw_port, "roll.test", "/").await, Some((200, _)))
    })
    .await;

    let load = Arc::new(Load::default());
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(client(gw_port, Arc::clone(&load))))
        .collect();
    let started = Instant::now();
    let mut new = Vec::new();
    for (i, old_pod) in old.iter().enumerate() {
        // 1. The new pod is ready.
        let pod = Pod::start(SocketAddr::new(ip(1, i), port)).await;
        endpoints.push((pod.addr, true));
        api.apply(endpoint_slice(port, &endpoints));
        let a = pod.addr;
        until("the new pod listed", &logs, async || {
            listed(&upstreams(admin).await, a)
        })
        .await;
        new.push(pod);
        // 2. The old pod is terminating.
        let gone = old_pod.addr;
        for e in endpoints.iter_mut().filter(|e| e.0 == gone) {
            e.1 = false;
        }
        api.apply(endpoint_slice(port, &endpoints));
        if harsh {
            old_pod.stop.send_replace(Stop::Abrupt);
        }
        until("the old pod unlisted", &logs, async || {
            !listed(&upstreams(admin).await, gone)
        })
        .await;
        // 3. preStop has outlasted the propagation: SIGTERM.
        if !harsh {
            old_pod.stop.send_replace(Stop::Graceful);
        }
        // 4. The pod is gone from the slice.
        endpoints.retain(|e| e.0 != gone);
        api.apply(endpoint_slice(port, &endpoints));
    }
    let rollout = started.elapsed();
    // Some more traffic on the new pods only, then stop the clients.
    let ok_at_end = load.ok.load(Ordering::Relaxed);
    until("traffic after the rollout", &logs, async || {
        load.ok.load(Ordering::Relaxed) >= ok_at_end + 100
    })
    .await;
    load.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let ok = load.ok.load(Ordering::Relaxed);
    let old_served: u64 = old.iter().map(|p| p.served.load(Ordering::Relaxed)).sum();
    let new_served: u64 = new.iter().map(|p| p.served.load(Ordering::Relaxed)).sum();
    eprintln!(
        "rolling update of {pods} pods ({}): {:.1} s, {ok} requests ok, {} with status >= 500, \
         {} connection errors; {old_served} served by old pods, {new_served} by new ones; first failures: {:?}",
        if harsh { "harsh" } else { "graceful" },
        rollout.as_secs_f64(),
        load.errors.load(Ordering::Relaxed),
        load.broken.load(Ordering::Relaxed),
        load.first_failures.lock().unwrap()
    );
    let view = upstreams(admin).await;
    assert!(new.iter().all(|p| listed(&view, p.addr)), "{view}");
    assert!(!old.iter().any(|p| listed(&view, p.addr)), "{view}");
    assert!(old_served > 0 && new_served > 0);
    if !harsh {
        assert_eq!(
            load.failed(),
            0,
            "failed requests during a graceful rolling update: {:?}",
            load.first_failures.lock().unwrap()
        );
    }
}
