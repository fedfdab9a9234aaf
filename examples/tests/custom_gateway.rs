//! Runs the example binary as a user would and checks its plugin end to end.

use std::net::TcpListener as StdListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A backend that answers with the request head it received.
async fn echo_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    head.len(),
                    head
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_custom_plugin_runs_inside_the_custom_binary() {
    let backend = echo_backend().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            "listeners: [{{address: \"127.0.0.1:{port}\"}}]
upstreams: [{{name: b, targets: [\"{backend}\"]}}]
routes:
  - name: r
    upstream: b
    plugins:
      - {{name: request-digest, config: {{header: x-digest, parts: [method, path], echo_downstream: true}}}}
"
        ),
    )
    .unwrap();
    let _child = Child(
        Command::new(env!("CARGO_BIN_EXE_custom-gateway"))
            .args(["run", "--config"])
            .arg(&config)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{port}/orders?id=7");
    let deadline = Instant::now() + Duration::from_secs(20);
    let resp = loop {
        match client.get(&url).send().await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("gateway did not start: {e}"),
        }
    };
    assert_eq!(resp.status(), 200);
    // FNV-1a 64 of "GET /orders?id=7", computed independently here.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in b"GET /orders?id=7" {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let expected = format!("{h:016x}");
    assert_eq!(resp.headers()["x-digest"].to_str().unwrap(), expected);
    let body = resp.text().await.unwrap();
    assert!(body.contains(&format!("x-digest: {expected}")), "{body}");
}

#[test]
fn validate_knows_the_custom_plugin_and_checks_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        "listeners: [{address: \"127.0.0.1:8080\"}]
upstreams: [{name: b, targets: [\"127.0.0.1:9001\"]}]
routes:
  - name: r
    upstream: b
    plugins:
      - {name: request-digest, config: {header: \"bad header\", colour: red}}
",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_custom-gateway"))
        .arg("validate")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("7:71: routes[0].plugins[0].config.colour: unknown field `colour`"),
        "{stderr}"
    );
    // The stock `pingway` binary does not know the plugin.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/custom-gateway.yaml");
    let ok = Command::new(env!("CARGO_BIN_EXE_custom-gateway"))
        .arg("validate")
        .arg(example)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
