//! Test fixtures: the real `pingway` binary on an ephemeral port, and small real HTTP
//! backends on 127.0.0.1.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A free TCP port on 127.0.0.1 (bound and released; the kernel will not hand it out
/// again right away).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Polls `cond` until it holds or `timeout` passes.
pub async fn wait_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Waits (on the clock, not a fixed sleep) until at least 20 seconds are left in the
/// current minute, so that a burst counted against `minute:` stays in one window.
pub async fn early_in_a_minute() {
    let ok = wait_until(Duration::from_secs(30), || async {
        let s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        s % 60 < 40
    })
    .await;
    assert!(ok, "the clock never reached the start of a minute");
}

/// The `pingway` binary built for these tests, or the one `PINGWAY_BIN` names (to run
/// the suite against a release build, or against an older build to see a test fail).
pub fn pingway_bin() -> PathBuf {
    std::env::var_os("PINGWAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pingway")))
}

/// A running `pingway run` process with its config in a temporary directory. Killed on
/// drop; its log is kept for assertions and printed when a test fails.
pub struct GatewayProcess {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log_path: PathBuf,
}

impl GatewayProcess {
    /// Starts the gateway with `yaml`, where `{PORT}` is replaced by a free port, and waits
    /// until it answers HTTP.
    pub async fn start(yaml: &str) -> GatewayProcess {
        Self::start_with_args(yaml, &[]).await
    }

    /// Like [`Self::start`], with extra `pingway run` arguments.
    pub async fn start_with_args(yaml: &str, extra: &[&str]) -> GatewayProcess {
        Self::start_logging(yaml, extra, "info").await
    }

    /// Like [`Self::start_with_args`], with `RUST_LOG` set to `level`.
    pub async fn start_logging(yaml: &str, extra: &[&str], level: &str) -> GatewayProcess {
        Self::start_prepared(extra, level, |dir, port| {
            let config_path = dir.join("gateway.yaml");
            std::fs::write(&config_path, yaml.replace("{PORT}", &port.to_string())).unwrap();
            config_path
        })
        .await
    }

    /// Starts the gateway on a configuration that `prepare` lays out in a fresh temporary
    /// directory for a given free port, returning the path to pass to `--config` (for
    /// symbolic-link layouts). Logs at `rust_log` to `gateway.log` in that directory.
    pub async fn start_prepared(
        extra: &[&str],
        rust_log: &str,
        prepare: impl Fn(&Path, u16) -> PathBuf,
    ) -> GatewayProcess {
        for _ in 0..3 {
            let port = free_port();
            let dir = tempfile::tempdir().expect("tempdir");
            let config_path = prepare(dir.path(), port);
            let log_path = dir.path().join("gateway.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let child = Command::new(pingway_bin())
                .arg("run")
                .arg("--config")
                .arg(&config_path)
                .args(extra)
                .env("RUST_LOG", rust_log)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn pingway");
            let mut gw = GatewayProcess {
                child,
                port,
                dir,
                config_path,
                log_path,
            };
            if gw.wait_ready(Duration::from_secs(20)).await {
                return gw;
            }
            eprintln!("gateway did not start on port {port}:\n{}", gw.log());
        }
        panic!("the gateway did not start");
    }

    async fn wait_ready(&mut self, timeout: Duration) -> bool {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(addr).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Replaces the config file (write to a temp file, then rename: atomic, like editors).
    pub fn write_config(&self, yaml: &str) {
        let tmp = self.dir.path().join("gateway.yaml.tmp");
        let mut f = std::fs::File::create(&tmp).unwrap();
        f.write_all(yaml.replace("{PORT}", &self.port.to_string()).as_bytes())
            .unwrap();
        f.sync_all().unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// Sends SIGHUP.
    pub fn sighup(&self) {
        let _ = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Sends a signal by name (`USR1`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM and waits (at most 30 s) for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id, e.g. to read `/proc/PID/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident set size in KiB (`VmRSS` in `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        self.memory_status("VmRSS")
            .expect("VmRSS in /proc/PID/status")
            / 1024
    }

    /// The path of the log file (in the config's directory).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// A `kB` line of `/proc/PID/status`, such as `VmRSS` or `VmHWM` (the peak resident
    /// size), in bytes.
    pub fn memory_status(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- gateway log ---\n{}", self.log());
        }
    }
}

/// How a test backend answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 with `name` in the `x-backend` header and the body, plus the request echoed:
    /// the body is `name\n` followed by `METHOD TARGET` and each `header: value` line.
    Echo,
    /// Like `Echo`, after sleeping.
    Slow(Duration),
    /// Answer with this status and an empty body.
    Status(u16),
    /// Accept, then close without answering.
    Hangup,
    /// 200 with `Content-Type: application/json` and this body (with `Content-Length`).
    Json(String),
}

/// A small HTTP/1.1 server (keep-alive, Content-Length bodies) on 127.0.0.1.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    hits: Arc<AtomicUsize>,
    behaviour: Arc<Mutex<Behaviour>>,
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts a backend on an ephemeral port.
    pub async fn start(name: &str, behaviour: Behaviour) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, name, behaviour)
    }

    /// Starts a backend on a given port (to restart one where it was).
    pub async fn start_on(port: u16, name: &str, behaviour: Behaviour) -> Backend {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        Self::serve(listener, name, behaviour)
    }

    /// Starts a backend that speaks HTTPS with `acceptor`'s certificate (and its client
    /// certificate check, if any), on an ephemeral port.
    pub async fn start_tls(
        name: &str,
        behaviour: Behaviour,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_with(listener, name, behaviour, Some(acceptor))
    }

    fn serve(listener: TcpListener, name: &str, behaviour: Behaviour) -> Backend {
        Self::serve_with(listener, name, behaviour, None)
    }

    fn serve_with(
        listener: TcpListener,
        name: &str,
        behaviour: Behaviour,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Backend {
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let healthy = Arc::new(AtomicBool::new(true));
        let (h, b, ok, n) = (
            hits.clone(),
            behaviour.clone(),
            healthy.clone(),
            name.to_string(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, b, ok, n) = (h.clone(), b.clone(), ok.clone(), n.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let _ = handle_conn(stream, &n, &h, &b, &ok).await;
                        }
                        Some(acceptor) => {
                            // A failed handshake (an untrusted client) just ends.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = handle_conn(stream, &n, &h, &b, &ok).await;
                            }
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            name: name.to_string(),
            hits,
            behaviour,
            healthy,
            task,
        }
    }

    /// Requests served (health checks to `/health` not counted).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Changes how it answers.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Makes `/health` answer 200 (true) or 500 (false).
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Stops listening (connections are refused afterwards).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle_conn<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    name: &str,
    hits: &AtomicUsize,
    behaviour: &Mutex<Behaviour>,
    healthy: &AtomicBool,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);

        let target = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        if target == "/health" {
            let status = if healthy.load(Ordering::SeqCst) {
                "200 OK"
            } else {
                "500 Internal Server Error"
            };
            let resp = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
            stream.write_all(resp.as_bytes()).await?;
            continue;
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let b = behaviour.lock().unwrap().clone();
        let status = match b {
            Behaviour::Hangup => return Ok(()),
            Behaviour::Slow(d) => {
                tokio::time::sleep(d).await;
                200
            }
            Behaviour::Status(s) => s,
            Behaviour::Echo => 200,
            Behaviour::Json(body) => {
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-backend: {name}\r\ncontent-type: application/json\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(resp.as_bytes()).await?;
                continue;
            }
        };
        let mut out = Vec::new();
        if status == 200 {
            out.extend_from_slice(format!("{name}\n{request_line}\n").as_bytes());
            for (k, v) in &headers {
                out.extend_from_slice(format!("{k}: {v}\n").as_bytes());
            }
            out.extend_from_slice(b"\n");
            out.extend_from_slice(&body);
        }
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nx-backend: {name}\r\ncontent-type: text/plain\r\n\r\n",
            out.len()
        );
        stream.write_all(resp.as_bytes()).await?;
        stream.write_all(&out).await?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A reqwest client that does not follow redirects or use proxies.
/// The value of one series of the admin API's `/metrics`, written `name{labels}` as the
/// text has it (`None`: unreachable, or no such series).
pub async fn metric_value(admin_port: u16, series: &str) -> Option<u64> {
    let text = client()
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of a `pingway_log_entries_total` series on the admin API (panics if absent).
pub async fn log_counter(admin_port: u16, plugin: &str, outcome: &str) -> u64 {
    let series = format!("pingway_log_entries_total{{plugin=\"{plugin}\",outcome=\"{outcome}\"}}");
    metric_value(admin_port, &series)
        .await
        .unwrap_or_else(|| panic!("no {series} on /metrics"))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// A parsed echo from a test backend.
#[derive(Debug)]
pub struct Echo {
    pub backend: String,
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Echo {
    pub fn parse(text: &str) -> Echo {
        let mut parts = text.splitn(2, "\n\n");
        let head = parts.next().unwrap_or_default();
        let body = parts.next().unwrap_or_default().to_string();
        let mut lines = head.lines();
        let backend = lines.next().unwrap_or_default().to_string();
        let request_line = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Echo {
            backend,
            request_line,
            headers,
            body,
        }
    }

    /// The request target the backend saw (`/path?query`).
    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A JSON error body `{"message": ..., "request_id": ...}`.
pub async fn json_message(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.expect("JSON body");
    (
        status,
        v["message"].as_str().unwrap_or_default().to_string(),
        v["request_id"].as_str().unwrap_or_default().to_string(),
    )
}

/// Writes `yaml` to a file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// The test backend that answered, from its `x-backend` header.
pub fn backend_of(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("x-backend")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
