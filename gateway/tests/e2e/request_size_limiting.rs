//! request-size-limiting as Kong clients observe it: a declared length over the limit
//! is refused before the body is read; a chunked body is counted while it streams.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

async fn gateway(backend: &Backend, plugin_config: &str) -> GatewayProcess {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: api
    paths: [/]
    upstream: up
    plugins:
      - name: request-size-limiting
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_413_and_never_reaches_the_upstream() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{allowed_payload_size: 1, size_unit: kilobytes}").await;
    let c = client();
    let ok = c
        .post(gw.url("/"))
        .body(vec![b'a'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(backend.hits(), 1);
    let r = c
        .post(gw.url("/"))
        .body(vec![b'a'; 1025])
        .send()
        .await
        .unwrap();
    let (status, message, _) = json_message(r).await;
    assert_eq!(
        (status, message.as_str()),
        (413, "Request size limit exceeded")
    );
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn require_content_length_is_411_without_one() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{require_content_length: true}").await;
    let (status, message, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!(
        (status, message.as_str()),
        (411, "A valid Content-Length header is required")
    );
    let ok = client().post(gw.url("/")).body("x").send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_chunked_body_is_refused_when_it_crosses_the_limit() {
    // The upstream is slow, so the answer the client gets can only be the gateway's.
    let backend = Backend::start("b", Behaviour::Slow(Duration::from_secs(10))).await;
    let gw = gateway(&backend, "{allowed_payload_size: 1, size_unit: kilobytes}").await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    // Two chunks of 1 KiB: the second crosses the limit.
    for _ in 0..2 {
        let _ = s.write_all(chunk.as_bytes()).await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("Request size limit exceeded"), "{text}");
}
