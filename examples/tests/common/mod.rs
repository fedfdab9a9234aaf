//! What the end-to-end tests share: the custom-gateway binary started on an ephemeral
//! port, and small real HTTP/1.1 servers standing in for backends and services.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A request as a stand-in server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Names as they were sent (case kept).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of header `name`, whatever its case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a stand-in server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

type Handler = Arc<dyn Fn(Received) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Serves HTTP/1.1 on an ephemeral port of 127.0.0.1, one request per connection, each
/// answered by `handler`.
pub async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Received) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let handler: Handler = Arc::new(move |r| Box::pin(handler(r)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = answer(stream, handler).await;
            });
        }
    });
    addr
}

async fn answer(mut s: TcpStream, handler: Handler) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    loop {
        let complete = match length {
            Some(len) => body.len() >= len,
            None if chunked => body.ends_with(b"0\r\n\r\n"),
            None => true,
        };
        if complete {
            break;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let reply = handler(Received {
        method,
        path,
        headers,
        body,
    })
    .await;
    let mut out = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (n, v) in &reply.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        reply.body.len()
    ));
    s.write_all(out.as_bytes()).await?;
    s.write_all(&reply.body).await?;
    s.shutdown().await
}

/// A backend that answers `text/plain` with the request line and headers it received
/// (names spelled as they came), and says who it is in `x-backend`.
pub async fn echo_backend(name: &'static str) -> SocketAddr {
    serve(move |r: Received| async move {
        let mut text = format!("{} {}\n", r.method, r.path);
        for (n, v) in &r.headers {
            text.push_str(&format!("{n}: {v}\n"));
        }
        text.push_str(&format!("body bytes: {}\n", r.body.len()));
        Reply::new(200)
            .header("content-type", "text/plain")
            .header("x-backend", name)
            .body(text)
    })
    .await
}

/// The custom-gateway binary, running; killed when dropped.
pub struct Gateway {
    pub child: std::process::Child,
    pub port: u16,
    pub stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts custom-gateway with `config` (in which `{port}` is replaced by its
    /// listener's port) and waits until its listener accepts connections.
    pub async fn start(config: &str) -> Gateway {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.yaml");
        let config = config.replace("{port}", &port.to_string());
        let config = format!("listeners: [{{address: \"127.0.0.1:{port}\"}}]\n{config}");
        std::fs::write(&file, config).unwrap();
        let stderr = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_custom-gateway"))
            .args(["run", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut gw = Gateway {
            child,
            port,
            stderr,
            _dir: dir,
        };
        // A connection accepted is the listener up: no request, so nothing is logged.
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Ok(Some(status)) = gw.child.try_wait() {
                panic!("the gateway exited with {status}: {}", gw.log());
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not start: {}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gw
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the gateway wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (with a deadline) for the process to exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
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
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that ignores proxy settings of the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Waits until `condition` holds, for at most `limit`; whether it does.
pub async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
