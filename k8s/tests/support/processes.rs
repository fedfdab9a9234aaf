//! The real processes of the end-to-end tests: the `pingway` gateway binary and the
//! `pingway-k8s` watcher binary, run against the stand-in API server, with their logs
//! in files shown when a wait times out; and raw HTTP/1.1 requests to the gateway.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `pingway` gateway binary: `PINGWAY_BIN`, else the one beside this test in the
/// target directory, built with cargo first if it is not there.
pub fn pingway_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PINGWAY_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let bin = dir.join(format!("pingway{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "pingway", "--bin", "pingway"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo build -p pingway");
        assert!(status.success(), "building the gateway failed");
    }
    assert!(bin.exists(), "no gateway binary at {}", bin.display());
    bin
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Killed {
    /// The process's resident set size in KiB (Linux), 0 if unknown.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.0.id())
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` of process `pid` in KiB, 0 if unknown.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Starts `bin args` with its output in `log`.
pub fn spawn(bin: &Path, args: &[&str], log: &Path) -> Killed {
    let f = std::fs::File::create(log).unwrap();
    Killed(
        Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display())),
    )
}

/// Starts the `pingway-k8s` watcher against `api_url`, writing `config` with the HTTP
/// listener on `port` and the admin API on `admin`; `extra` are more flags.
pub fn spawn_watcher(
    api_url: &str,
    config: &Path,
    port: u16,
    admin: u16,
    extra: &[&str],
    log: &Path,
) -> Killed {
    let http = format!("127.0.0.1:{port}");
    let admin = format!("127.0.0.1:{admin}");
    let mut args = vec![
        "run",
        "--server",
        api_url,
        "--output",
        config.to_str().unwrap(),
        "--http-listen",
        &http,
        "--admin-listen",
        &admin,
    ];
    args.extend_from_slice(extra);
    spawn(Path::new(env!("CARGO_BIN_EXE_pingway-k8s")), &args, log)
}

/// `pingway-k8s run` against the stand-in at `api_url` (with `watcher_args` after the
/// listen addresses) and, once its first file is written, the real gateway serving that
/// file: a fresh directory, free ports, a log file each. Both processes are killed when
/// this is dropped, before the directory goes.
pub struct WatcherAndGateway {
    /// The watcher.
    pub watcher: Killed,
    /// The gateway.
    pub gateway: Killed,
    /// The file the watcher writes and the gateway serves.
    pub config: PathBuf,
    /// The gateway's HTTP port.
    pub port: u16,
    /// The gateway's admin port.
    pub admin: u16,
    /// The watcher's log file.
    pub watcher_log: PathBuf,
    /// The gateway's log file.
    pub gateway_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl WatcherAndGateway {
    /// Starts both (see the type); returns once the gateway is started, not yet serving.
    pub async fn start(api_url: &str, watcher_args: &[&str]) -> WatcherAndGateway {
        let gateway_bin = pingway_bin();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("pingway.yaml");
        let (port, admin) = (free_port(), free_port());
        let watcher_log = dir.path().join("watcher.log");
        let gateway_log = dir.path().join("gateway.log");
        let watcher = spawn_watcher(api_url, &config, port, admin, watcher_args, &watcher_log);
        let logs = [watcher_log.as_path(), gateway_log.as_path()];
        until("the first file", &logs, async || config.exists()).await;
        let gateway = spawn(
            &gateway_bin,
            &["run", "--config", config.to_str().unwrap()],
            &gateway_log,
        );
        WatcherAndGateway {
            watcher,
            gateway,
            config,
            port,
            admin,
            watcher_log,
            gateway_log,
            _dir: dir,
        }
    }

    /// The two log files, for [`until`] to show on a timeout.
    pub fn logs(&self) -> [&Path; 2] {
        [self.watcher_log.as_path(), self.gateway_log.as_path()]
    }
}

/// Waits (polling, 60 s at most) until `cond` holds; on timeout prints `logs` and panics.
pub async fn until(what: &str, logs: &[&Path], mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond().await {
        if Instant::now() > deadline {
            for l in logs {
                let text = std::fs::read_to_string(l).unwrap_or_default();
                let tail: String = text
                    .chars()
                    .rev()
                    .take(20_000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                eprintln!("--- {}\n{tail}", l.display());
            }
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GET `path` with `Host: host` from `127.0.0.1:port`, one connection: (status, body),
/// or None if it does not answer.
pub async fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    get_with(port, host, path, &[]).await
}

/// [`get`] with the extra request headers `headers`.
pub async fn get_with(
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// A backend answering every request with the value of the request header `echo`
/// (lower case) it received, or `-` when there was none.
pub async fn header_echo(echo: &'static str) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got).into_owned();
                let value = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(echo))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_else(|| "-".into());
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{value}",
                    value.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

/// A backend answering every request with `name`.
pub async fn backend(name: &'static str) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}
