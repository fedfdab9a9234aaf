//! Logs on the real gateway: the access log (lines for proxied, 404 and 401 answers,
//! reopened on SIGUSR1 after a rename) and the logging plugins against stand-in
//! collectors (an HTTP server that records batches, a TCP listener, a UDP socket, a
//! file): Kong's entry shape, a collector that is down (the gateway keeps serving, the
//! loss is counted, later entries arrive once it is back), and the flush at SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(15);

/// A stand-in HTTP log collector: records each request's method, content type and JSON
/// body (the batches), answers 200.
struct Collector {
    addr: SocketAddr,
    batches: Arc<Mutex<Vec<(String, String, Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start_on(port: u16) -> Collector {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&batches);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    loop {
                        let mut request_line = String::new();
                        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let method = request_line.split(' ').next().unwrap_or("").to_string();
                        let (mut length, mut content_type) = (0usize, String::new());
                        loop {
                            let mut line = String::new();
                            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = line.split_once(':') {
                                match k.to_ascii_lowercase().as_str() {
                                    "content-length" => length = v.trim().parse().unwrap_or(0),
                                    "content-type" => content_type = v.trim().to_string(),
                                    _ => {}
                                }
                            }
                        }
                        let mut body = vec![0; length];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        seen.lock().unwrap().push((method, content_type, value));
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.get_mut().write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Collector {
            addr,
            batches,
            task,
        }
    }

    /// Every entry received, batches flattened.
    fn entries(&self) -> Vec<Value> {
        let batches = self.batches.lock().unwrap();
        batches
            .iter()
            .flat_map(|(_, _, v)| match v {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            })
            .collect()
    }

    fn batch_count(&self) -> usize {
        self.batches.lock().unwrap().len()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

async fn wait_for_lines(path: &Path, n: usize) -> Vec<Value> {
    let ok = wait_until(WAIT, || async { read_lines(path).len() >= n }).await;
    let lines = read_lines(path);
    assert!(
        ok,
        "expected {n} lines in {}, got {lines:?}",
        path.display()
    );
    lines
}

#[tokio::test]
async fn the_access_log_has_a_line_per_answer_without_secrets_and_reopens_on_sigusr1() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let addr = backend.addr;
    let gw = GatewayProcess::start_prepared(&[], "info", |dir, port| {
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:{port}\"}}]
access_log:
  path: {}
upstreams:
  - {{name: api, targets: [\"{addr}\"]}}
routes:
  - {{name: open, paths: [/open], upstream: api}}
  - name: secure
    paths: [/secure]
    upstream: api
    plugins: [{{name: key-auth}}]
consumers:
  - username: alice
    keyauth_credentials: [{{key: alice-key}}]
",
            dir.join("access.log").display()
        );
        write_file(dir, "gateway.yaml", &yaml)
    })
    .await;
    let log = gw.dir.path().join("access.log");
    let c = client();
    let get = |path: &str| c.get(gw.url(path)).header("user-agent", "e2e/1");
    assert_eq!(
        get("/open/a?apikey=query-secret&page=2")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(get("/nowhere").send().await.unwrap().status(), 404);
    assert_eq!(get("/secure").send().await.unwrap().status(), 401);
    let ok = get("/secure/x")
        .header("apikey", "alice-key")
        .header("authorization", "Bearer header-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let lines = wait_for_lines(&log, 4).await;
    let statuses: Vec<u64> = lines
        .iter()
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 404, 401, 200]);
    let first = &lines[0];
    assert_eq!(first["path"], "/open/a", "no query by default");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["route"], "open");
    assert_eq!(first["upstream"], "api");
    assert_eq!(first["target"], addr.to_string());
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["user_agent"], "e2e/1");
    assert!(first["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(first["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(first["latencies"]["request"].is_u64());
    assert!(first["latencies"]["upstream"].is_u64());
    assert!(first["bytes_sent"].as_u64().unwrap() > 0);
    assert_eq!(lines[1]["route"], Value::Null);
    assert_eq!(lines[2]["route"], "secure");
    assert_eq!(lines[2]["consumer"], Value::Null);
    assert_eq!(lines[3]["consumer"], "alice");
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in ["query-secret", "alice-key", "header-secret"] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }

    // logrotate: move the file away, then SIGUSR1; the gateway recreates the file and
    // writes there, and the old file gets nothing more.
    let rotated = gw.dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    gw.signal("USR1");
    assert!(
        wait_until(WAIT, || async { log.exists() }).await,
        "the access log was not reopened: {}",
        gw.log()
    );
    assert_eq!(get("/open/after").send().await.unwrap().status(), 200);
    let lines = wait_for_lines(&log, 1).await;
    assert_eq!(lines[0]["path"], "/open/after");
    assert_eq!(read_lines(&rotated).len(), 4);
    assert!(gw.log().contains("SIGUSR1"), "{}", gw.log());
}

#[tokio::test]
async fn http_log_ships_kongs_entry_in_batches_to_the_collector() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = Collector::start_on(0).await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: api, targets: [\"{}\"]}}
routes:
  - name: orders
    paths: [/orders]
    upstream: api
    plugins:
      - name: http-log
        config:
          http_endpoint: http://{}/ingest
          method: PUT
          headers: {{x-collector-key: k}}
          queue: {{max_batch_size: 2, max_coalescing_delay: 0.05}}
",
        backend.addr, collector.addr
    ))
    .await;
    let c = client();
    for i in 0..3 {
        let r = c
            .get(gw.url(&format!("/orders/{i}?apikey=secret-{i}")))
            .header("authorization", "Basic c2VjcmV0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A request no route of http-log matched is not logged by it.
    assert_eq!(
        c.get(gw.url("/elsewhere")).send().await.unwrap().status(),
        404
    );
    assert!(wait_until(WAIT, || async { collector.entries().len() >= 3 }).await);
    let entries = collector.entries();
    assert_eq!(entries.len(), 3, "{entries:?}");
    let batches = collector.batches.lock().unwrap().clone();
    for (method, content_type, body) in &batches {
        assert_eq!(method, "PUT");
        assert_eq!(content_type, "application/json");
        assert!(body.is_array(), "batches of up to 2 are arrays: {body}");
    }
    let e = &entries[0];
    assert_eq!(e["request"]["method"], "GET");
    assert_eq!(e["request"]["uri"], "/orders/0?apikey=REDACTED");
    assert_eq!(e["request"]["querystring"]["apikey"], "REDACTED");
    assert_eq!(e["request"]["headers"]["authorization"], "REDACTED");
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(e["upstream_status"], 200);
    assert_eq!(e["route"]["name"], "orders");
    assert_eq!(e["service"]["name"], "api");
    assert_eq!(e["client_ip"], "127.0.0.1");
    assert!(e["started_at"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(e["latencies"]["request"].is_u64());
    assert!(e["latencies"]["proxy"].is_u64());
    assert!(e["latencies"]["gateway"].is_u64());
    assert_eq!(e["tries"][0]["port"], backend.addr.port());
    let all = serde_json::to_string(&entries).unwrap();
    assert!(
        !all.contains("secret-") && !all.contains("c2VjcmV0"),
        "{all}"
    );
}

#[tokio::test]
async fn a_down_collector_loses_only_what_the_queue_could_not_hold_and_gets_later_entries() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector_port = free_port();
    let admin_port = free_port();
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin: {{listen: \"127.0.0.1:{admin_port}\"}}
upstreams:
  - {{name: api, targets: [\"{}\"]}}
plugins:
  - name: http-log
    config:
      http_endpoint: http://127.0.0.1:{collector_port}/ingest
      timeout: 1000
      queue: {{max_entries: 3, max_retry_time: 2, initial_retry_delay: 0.01, max_retry_delay: 0.05}}
routes:
  - {{name: all, paths: [/], upstream: api}}
",
        backend.addr
    ))
    .await;
    let c = client();
    // The collector is down: every request is still served.
    for i in 0..20 {
        let r = c.get(gw.url(&format!("/before/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        wait_until(WAIT, || async {
            log_counter(admin_port, "http-log", "failed").await >= 1
        })
        .await,
        "no failed entries counted"
    );
    let dropped = log_counter(admin_port, "http-log", "dropped").await;
    assert!(
        dropped >= 5,
        "only {dropped} of 20 dropped with a queue of 3"
    );
    assert!(
        gw.log().contains("http-log: cannot reach the collector"),
        "{}",
        gw.log()
    );

    // The collector comes back: entries logged from then on arrive.
    let collector = Collector::start_on(collector_port).await;
    assert!(
        wait_until(WAIT, || async {
            let r = c.get(gw.url("/after")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            collector
                .entries()
                .iter()
                .any(|e| e["request"]["uri"] == "/after")
        })
        .await,
        "entries did not arrive once the collector was back: {}",
        gw.log()
    );
    assert!(log_counter(admin_port, "http-log", "sent").await >= 1);
}

#[tokio::test]
async fn sigterm_flushes_what_http_log_and_the_access_log_hold() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = Collector::start_on(0).await;
    let mut gw = GatewayProcess::start_prepared(&[], "info", |dir, port| {
        // An hour of coalescing and batches larger than N: only the drain at SIGTERM can
        // deliver these entries.
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:{port}\"}}]
server: {{grace_period: 3s}}
access_log: {{path: {}, fields: [path, status]}}
upstreams:
  - {{name: api, targets: [\"{}\"]}}
plugins:
  - name: http-log
    config:
      http_endpoint: http://{}/ingest
      queue: {{max_batch_size: 100, max_coalescing_delay: 3600}}
routes:
  - {{name: all, paths: [/], upstream: api}}
",
            dir.join("access.log").display(),
            backend.addr,
            collector.addr
        );
        write_file(dir, "gateway.yaml", &yaml)
    })
    .await;
    let c = client();
    for i in 0..5 {
        let r = c.get(gw.url(&format!("/n/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    assert_eq!(
        collector.batch_count(),
        0,
        "sent before the coalescing delay"
    );
    gw.terminate().await;
    let entries = collector.entries();
    // All five (in one batch, or two when the last request's log phase ran after the
    // stop began: a client can have its response before its entry is queued).
    assert_eq!(entries.len(), 5, "{}", gw.log());
    assert!(collector.batch_count() <= 2);
    let lines = read_lines(&gw.dir.path().join("access.log"));
    assert_eq!(lines.len(), 5);
    let text = std::fs::read_to_string(gw.dir.path().join("access.log")).unwrap();
    assert_eq!(text.lines().last(), Some(r#"{"path":"/n/4","status":200}"#));
}

#[tokio::test]
async fn tcp_log_udp_log_and_file_log_receive_kongs_entry() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let tcp_lines = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = Arc::clone(&tcp_lines);
    let tcp_task = tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    seen.lock()
                        .unwrap()
                        .push(serde_json::from_str(&line).unwrap());
                }
            });
        }
    });
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let udp_datagrams = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = Arc::clone(&udp_datagrams);
    let udp_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = udp.recv(&mut buf).await {
            seen.lock()
                .unwrap()
                .push(serde_json::from_slice(&buf[..n]).unwrap());
        }
    });
    let gw = GatewayProcess::start_prepared(&[], "info", |dir, port| {
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:{port}\"}}]
upstreams:
  - {{name: api, targets: [\"{}\"]}}
plugins:
  - {{name: tcp-log, config: {{host: 127.0.0.1, port: {tcp_port}}}}}
  - {{name: udp-log, config: {{host: 127.0.0.1, port: {udp_port}}}}}
  - {{name: file-log, config: {{path: {}}}}}
routes:
  - {{name: all, paths: [/], upstream: api}}
",
            backend.addr,
            dir.join("file.log").display()
        );
        write_file(dir, "gateway.yaml", &yaml)
    })
    .await;
    let c = client();
    for path in ["/one", "/two?x=1"] {
        assert_eq!(c.get(gw.url(path)).send().await.unwrap().status(), 200);
    }
    assert_eq!(
        c.get(gw.url("/three"))
            .header("x-n", "3")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let file = gw.dir.path().join("file.log");
    let from_file = wait_for_lines(&file, 3).await;
    assert!(wait_until(WAIT, || async { tcp_lines.lock().unwrap().len() >= 3 }).await);
    assert!(wait_until(WAIT, || async { udp_datagrams.lock().unwrap().len() >= 3 }).await);
    let from_tcp = tcp_lines.lock().unwrap().clone();
    let from_udp = udp_datagrams.lock().unwrap().clone();
    for entries in [&from_file, &from_tcp, &from_udp] {
        let uris: Vec<&str> = entries
            .iter()
            .map(|e| e["request"]["uri"].as_str().unwrap())
            .collect();
        assert_eq!(uris, ["/one", "/two?x=1", "/three"]);
        assert_eq!(entries[1]["request"]["querystring"]["x"], "1");
        assert_eq!(entries[2]["request"]["headers"]["x-n"], "3");
        assert_eq!(entries[0]["response"]["status"], 200);
        assert_eq!(entries[0]["route"]["name"], "all");
        assert!(entries[0]["latencies"]["request"].is_u64());
    }
    tcp_task.abort();
    udp_task.abort();
}

#[tokio::test]
async fn unsupported_kong_fields_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (config, expect) in [
        (
            "{name: http-log, config: {http_endpoint: http://c/x, custom_fields_by_lua: {a: \"return 1\"}}}",
            "custom_fields_by_lua: is not supported",
        ),
        ("{name: tcp-log, config: {host: c, port: 1, tls: true}}", "tls: TLS to the collector is not supported"),
        ("{name: http-log, config: {http_endpoint: http://c/x, queue: {max_entries: 0}}}", "queue.max_entries"),
        ("{name: file-log, config: {path: \"a b\"}}", "path:"),
    ] {
        let yaml = format!(
            "upstreams: [{{name: api, targets: [\"127.0.0.1:1\"]}}]\nroutes: [{{name: r, paths: [/], upstream: api}}]\nplugins:\n  - {config}\n"
        );
        let path = write_file(dir.path(), "gw.yaml", &yaml);
        let out = std::process::Command::new(pingway_bin())
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{config} accepted");
        assert!(said.contains(expect), "{config}: {said}");
    }
}

#[tokio::test]
async fn a_reload_changes_the_access_log_fields_and_loses_no_line() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let yaml = |dir: &Path, port: u16, fields: &str| {
        format!(
            "listeners: [{{address: \"127.0.0.1:{port}\"}}]
access_log: {{path: {}, fields: [{fields}]}}
upstreams:
  - {{name: api, targets: [\"{}\"]}}
routes:
  - {{name: all, paths: [/], upstream: api}}
",
            dir.join("access.log").display(),
            backend.addr
        )
    };
    let gw = GatewayProcess::start_prepared(&[], "info", |dir, port| {
        write_file(dir, "gateway.yaml", &yaml(dir, port, "path"))
    })
    .await;
    let log = gw.dir.path().join("access.log");
    let c = client();
    assert_eq!(c.get(gw.url("/before")).send().await.unwrap().status(), 200);
    wait_for_lines(&log, 1).await;
    gw.write_config(&yaml(gw.dir.path(), gw.port, "status, path"));
    let mut sent = 1;
    assert!(
        wait_until(WAIT, || {
            sent += 1;
            let c = c.clone();
            let url = gw.url("/after");
            let log = log.clone();
            async move {
                assert_eq!(c.get(url).send().await.unwrap().status(), 200);
                read_lines(&log)
                    .last()
                    .is_some_and(|l| l.get("status").is_some())
            }
        })
        .await,
        "the reload did not change the fields: {}",
        gw.log()
    );
    let lines = wait_for_lines(&log, sent).await;
    assert_eq!(lines.len(), sent, "every request has its line");
    assert_eq!(lines[0], serde_json::json!({"path": "/before"}));
    // The fields in the order the new configuration lists them.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.lines().last(),
        Some(r#"{"status":200,"path":"/after"}"#)
    );
}

#[tokio::test]
async fn without_a_path_the_access_log_goes_to_standard_output() {
    use std::io::BufRead as _;
    let backend = Backend::start("one", Behaviour::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_file(
        dir.path(),
        "gateway.yaml",
        &format!(
            "listeners: [{{address: \"127.0.0.1:{port}\"}}]
access_log: {{fields: [method, path, status]}}
upstreams:
  - {{name: api, targets: [\"{}\"]}}
routes:
  - {{name: all, paths: [/], upstream: api}}
",
            backend.addr
        ),
    );
    let mut child = std::process::Command::new(pingway_bin())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let url = format!("http://127.0.0.1:{port}/stdout?token=t");
    let c = client();
    let served = wait_until(WAIT, || {
        let c = c.clone();
        let url = url.clone();
        async move { c.get(url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let line = rx.recv_timeout(WAIT);
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "the gateway did not serve");
    assert_eq!(
        line.as_deref(),
        Ok(r#"{"method":"GET","path":"/stdout","status":200}"#)
    );
}
