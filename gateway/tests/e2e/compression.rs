//! routes[].compression as clients see it: the body decoded with gzip and zstd equals
//! the original; small, already-encoded, non-listed and not-accepted responses are sent
//! as they are; routes without it never compress; `br` is refused at load.

use std::io::{Read, Write};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::*;

/// A JSON document of `n` bytes or so, repetitive enough to compress.
fn big_json() -> Vec<u8> {
    let items: Vec<String> = (0..200)
        .map(|i| format!("{{\"id\":{i},\"name\":\"item number {i}\",\"ok\":true}}"))
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A backend answering by path: `/big` (JSON, large), `/small` (JSON, 11 bytes), `/png`
/// (image/png, large), `/encoded` (JSON, already gzip-encoded).
async fn backend() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let (ctype, extra, body) = match path.as_str() {
                        "/c/small" | "/p/small" => {
                            ("application/json", "", b"{\"a\":true}\n".to_vec())
                        }
                        "/c/png" => ("image/png", "", vec![7u8; 4000]),
                        "/c/encoded" => (
                            "application/json",
                            "content-encoding: gzip\r\n",
                            gzip(&big_json()),
                        ),
                        _ => ("application/json; charset=utf-8", "", big_json()),
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\n{extra}content-length: {}\r\n\r\n",
                        body.len()
                    );
                    if stream.write_all(resp.as_bytes()).await.is_err()
                        || stream.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, task)
}

async fn start(compression: &str) -> (GatewayProcess, tokio::task::JoinHandle<()>) {
    let (addr, task) = backend().await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{addr}\"]}}]
routes:
  - name: compressed
    paths: [/c]
    upstream: up
    compression: {compression}
  - name: plain
    paths: [/p]
    upstream: up
"
    );
    (GatewayProcess::start(&yaml).await, task)
}

/// Content-Encoding, Vary and the raw body of a GET with `accept`.
async fn fetch(
    gw: &GatewayProcess,
    path: &str,
    accept: Option<&str>,
) -> (Option<String>, String, Vec<u8>) {
    let mut req = client().get(gw.url(path));
    if let Some(a) = accept {
        req = req.header("accept-encoding", a);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string());
    let (ce, vary) = (h("content-encoding"), h("vary").unwrap_or_default());
    (ce, vary, r.bytes().await.unwrap().to_vec())
}

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::decode_all(body).unwrap(),
        other => panic!("unexpected encoding {other}"),
    }
    out
}

#[tokio::test]
async fn each_algorithm_decodes_to_the_original() {
    let (gw, _b) = start("{min_size: 100}").await;
    let original = big_json();
    for encoding in ["gzip", "zstd"] {
        let (ce, vary, body) = fetch(&gw, "/c/big", Some(encoding)).await;
        assert_eq!(ce.as_deref(), Some(encoding));
        assert!(
            vary.to_ascii_lowercase().contains("accept-encoding"),
            "Vary: {vary}"
        );
        assert!(body.len() < original.len(), "{encoding} made it smaller");
        assert_eq!(decode(encoding, &body), original, "{encoding} round trip");
    }
    // The client's preference among what it accepts.
    let (ce, _, body) = fetch(&gw, "/c/big", Some("gzip;q=0.5, br, zstd")).await;
    assert_eq!(ce.as_deref(), Some("zstd"));
    assert_eq!(decode("zstd", &body), original);
    // Nothing accepted, nothing encoded.
    let (ce, _, body) = fetch(&gw, "/c/big", None).await;
    assert_eq!((ce, body), (None, original.clone()));
    let (ce, _, body) = fetch(&gw, "/c/big", Some("deflate")).await;
    assert_eq!((ce, body), (None, original));
}

#[tokio::test]
async fn small_encoded_unlisted_and_other_routes_are_left_alone() {
    let (gw, _b) = start("{min_size: 100}").await;
    let (ce, _, body) = fetch(&gw, "/c/small", Some("gzip")).await;
    assert_eq!(
        (ce, body),
        (None, b"{\"a\":true}\n".to_vec()),
        "under min_size"
    );
    let (ce, _, body) = fetch(&gw, "/c/png", Some("gzip")).await;
    assert_eq!((ce, body.len()), (None, 4000), "a type not listed");
    let (ce, _, body) = fetch(&gw, "/c/encoded", Some("gzip")).await;
    assert_eq!(ce.as_deref(), Some("gzip"));
    assert_eq!(
        body,
        gzip(&big_json()),
        "already encoded: passed through, not encoded twice"
    );
    let (ce, _, body) = fetch(&gw, "/p/big", Some("gzip, br, zstd")).await;
    assert_eq!(
        (ce, body),
        (None, big_json()),
        "a route without compression"
    );
}

#[tokio::test]
async fn only_the_routes_algorithms_are_used() {
    let (gw, _b) = start("{algorithms: [gzip], content_types: [application/json], level: 9}").await;
    // br is the client's first choice, but the route offers gzip only.
    let (ce, _, body) = fetch(&gw, "/c/big", Some("br, gzip;q=0.8")).await;
    assert_eq!(ce.as_deref(), Some("gzip"));
    assert_eq!(decode("gzip", &body), big_json());
    let (ce, _, _) = fetch(&gw, "/c/big", Some("br, zstd")).await;
    assert_eq!(ce, None);
}

#[tokio::test]
async fn brotli_and_bad_fields_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "listeners: [{address: \"127.0.0.1:1\"}]
upstreams: [{name: up, targets: [\"127.0.0.1:2\"]}]
routes:
  - name: r
    paths: [/]
    upstream: up
    compression: {algorithms: [gzip, br], level: 12}
";
    let path = write_file(dir.path(), "gw.yaml", yaml);
    let out = std::process::Command::new(pingway_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("routes[0].compression.algorithms[1]"),
        "{text}"
    );
    assert!(text.contains("br is not supported"), "{text}");
    assert!(text.contains("routes[0].compression.level"), "{text}");
}
