//! Request mirroring (`routes[].mirrors`) through the real binary: the shadow gets every
//! mirrored request with its body and a `-shadow` host; a share is copied as configured;
//! a shadow that hangs or refuses changes nothing for the client, and what became of the
//! copies is counted on the admin API's `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// How a shadow answers.
#[derive(Clone, Copy)]
enum Shadow {
    /// 200, empty body.
    Ok,
    /// Reads the request, never answers.
    Hang,
}

/// What a shadow saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    host: String,
    target: String,
    body: Vec<u8>,
}

/// A shadow server that records every complete request it reads.
struct Recorder {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start(mode: Shadow) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, mode, &record).await;
                });
            }
        });
        Recorder { addr, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads requests (Content-Length or chunked bodies) and records them.
async fn serve(
    mut stream: TcpStream,
    mode: Shadow,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if !read_more(&mut stream, &mut buf).await? {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let target = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default()
            .to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&buf, b"\r\n") {
                        break i;
                    }
                    if !read_more(&mut stream, &mut buf).await? {
                        return Ok(());
                    }
                };
                let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
                while buf.len() < line_end + 2 + size + 2 {
                    if !read_more(&mut stream, &mut buf).await? {
                        return Ok(());
                    }
                }
                body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
                buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        } else {
            let len: usize = get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                if !read_more(&mut stream, &mut buf).await? {
                    return Ok(());
                }
            }
            buf.drain(..len).collect()
        };
        seen.lock().unwrap().push(Seen {
            host: get("host").unwrap_or_default(),
            target,
            body,
        });
        match mode {
            Shadow::Ok => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await?;
            }
            Shadow::Hang => {
                // Hold the connection open, answering nothing, until the peer goes.
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                return Ok(());
            }
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn config(primary: &Backend, shadow: &str, mirror: &str, admin_port: u16) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin: {{listen: \"127.0.0.1:{admin_port}\"}}
proxy: {{latency_headers: false}}
upstreams:
  - {{name: live, targets: [\"{}\"]}}
  - {{name: shadow, targets: [\"{shadow}\"], read_timeout: 5m}}
routes:
  - name: api
    upstream: live
    mirrors: [{mirror}]
",
        primary.addr
    )
}

/// The value of a `pingway_mirror_*` series for route `api` and upstream `shadow`.
async fn metric(admin_port: u16, family: &str, outcome: Option<&str>) -> Option<u64> {
    let series = match outcome {
        Some(o) => format!("{family}{{route=\"api\",upstream=\"shadow\",outcome=\"{o}\"}}"),
        None => format!("{family}{{route=\"api\",upstream=\"shadow\"}}"),
    };
    metric_value(admin_port, &series).await
}

#[tokio::test]
async fn every_mirrored_request_reaches_the_shadow_with_its_body() {
    let primary = Backend::start("live", Behaviour::Echo).await;
    let shadow = Recorder::start(Shadow::Ok).await;
    let admin_port = free_port();
    let gw = GatewayProcess::start(&config(
        &primary,
        &shadow.addr.to_string(),
        "{upstream: shadow}",
        admin_port,
    ))
    .await;
    let c = client();
    let n = 20;
    for i in 0..n {
        // Bodies of several hundred KiB travel in many chunks.
        let body = format!("request {i} ").repeat(if i % 5 == 0 { 30_000 } else { 10 });
        let r = c
            .post(gw.url(&format!("/orders/{i}?q={i}")))
            .header("host", "shop.example")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            backend_of(&r).as_deref(),
            Some("live"),
            "the client gets the primary's answer"
        );
    }
    assert!(
        wait_until(Duration::from_secs(20), || async {
            shadow.seen().len() >= n
        })
        .await,
        "the shadow saw {} of {n}",
        shadow.seen().len()
    );
    let mut seen = shadow.seen();
    seen.sort_by_key(|s| s.target.clone());
    for i in 0..n {
        let want = format!("request {i} ").repeat(if i % 5 == 0 { 30_000 } else { 10 });
        let s = seen
            .iter()
            .find(|s| s.target == format!("/orders/{i}?q={i}"))
            .unwrap_or_else(|| panic!("request {i} was not mirrored: {seen:?}"));
        assert_eq!(s.body.len(), want.len(), "request {i}'s body");
        assert!(s.body == want.as_bytes(), "request {i}'s body bytes");
        assert_eq!(s.host, format!("127.0.0.1-shadow:{}", shadow.addr.port()));
    }
    assert!(
        wait_until(Duration::from_secs(10), || async {
            metric(
                admin_port,
                "pingway_mirror_requests_total",
                Some("completed"),
            )
            .await
                == Some(n as u64)
        })
        .await,
        "completed copies are counted"
    );
    assert_eq!(
        metric(admin_port, "pingway_mirror_requests_total", Some("dropped")).await,
        Some(0)
    );
    assert_eq!(primary.hits(), n);
}

#[tokio::test]
async fn preserve_host_sends_the_clients_host_with_the_shadow_suffix() {
    let primary = Backend::start("live", Behaviour::Echo).await;
    let shadow = Recorder::start(Shadow::Ok).await;
    let admin_port = free_port();
    let yaml = config(
        &primary,
        &shadow.addr.to_string(),
        "{upstream: shadow}",
        admin_port,
    )
    .replace(
        "    upstream: live\n",
        "    upstream: live\n    preserve_host: true\n",
    );
    let gw = GatewayProcess::start(&yaml).await;
    let r = client()
        .get(gw.url("/x"))
        .header("host", "shop.example:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            !shadow.seen().is_empty()
        })
        .await
    );
    assert_eq!(shadow.seen()[0].host, "shop.example-shadow:8443");
}

#[tokio::test]
async fn a_percentage_copies_about_that_share() {
    let primary = Backend::start("live", Behaviour::Echo).await;
    let shadow = Recorder::start(Shadow::Ok).await;
    let admin_port = free_port();
    let gw = GatewayProcess::start(&config(
        &primary,
        &shadow.addr.to_string(),
        "{upstream: shadow, percentage: 25}",
        admin_port,
    ))
    .await;
    let c = client();
    let n = 800;
    for _ in 0..n {
        assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);
    }
    // Every copy drawn has ended once none is in flight.
    assert!(
        wait_until(Duration::from_secs(20), || async {
            metric(admin_port, "pingway_mirror_in_flight", None).await == Some(0)
        })
        .await
    );
    let completed = metric(
        admin_port,
        "pingway_mirror_requests_total",
        Some("completed"),
    )
    .await
    .unwrap();
    assert_eq!(completed as usize, shadow.seen().len());
    // 25% of 800 is 200, with a standard deviation of about 12: 140..260 is five of them.
    assert!(
        (140..=260).contains(&completed),
        "{completed} of {n} copied at 25%"
    );
}

#[tokio::test]
async fn a_hanging_shadow_changes_nothing_for_the_client() {
    let primary = Backend::start("live", Behaviour::Echo).await;
    let shadow = Recorder::start(Shadow::Hang).await;
    let admin_port = free_port();
    let gw = GatewayProcess::start(&config(
        &primary,
        &shadow.addr.to_string(),
        "{upstream: shadow, max_in_flight: 2}",
        admin_port,
    ))
    .await;
    let c = client();
    let n = 30;
    for i in 0..n {
        let r = c
            .post(gw.url("/pay"))
            .body(format!("payment {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert!(r.text().await.unwrap().ends_with(&format!("payment {i}")));
    }
    // Two copies hang in the shadow; every later one found no place and was dropped.
    assert_eq!(
        metric(admin_port, "pingway_mirror_in_flight", None).await,
        Some(2)
    );
    assert_eq!(
        metric(admin_port, "pingway_mirror_requests_total", Some("dropped")).await,
        Some(n - 2)
    );
    assert_eq!(primary.hits(), n as usize);
}

#[tokio::test]
async fn a_refusing_shadow_is_counted_not_felt() {
    let primary = Backend::start("live", Behaviour::Echo).await;
    // Nothing listens there.
    let closed = format!("127.0.0.1:{}", free_port());
    let admin_port = free_port();
    let gw =
        GatewayProcess::start(&config(&primary, &closed, "{upstream: shadow}", admin_port)).await;
    let c = client();
    // Until the mirror pauses (after 5 connect failures in a row), at most 200 requests.
    let mut sent = 0;
    while sent < 200 {
        assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);
        sent += 1;
        if metric(admin_port, "pingway_mirror_requests_total", Some("paused"))
            .await
            .unwrap_or(0)
            > 0
        {
            break;
        }
    }
    let counts = || async {
        let failed = metric(admin_port, "pingway_mirror_requests_total", Some("failed"))
            .await
            .unwrap_or(0);
        let paused = metric(admin_port, "pingway_mirror_requests_total", Some("paused"))
            .await
            .unwrap_or(0);
        (failed, paused)
    };
    let all_counted = wait_until(Duration::from_secs(20), || async {
        let (failed, paused) = counts().await;
        failed + paused == sent
    })
    .await;
    let (failed, paused) = counts().await;
    assert!(
        all_counted,
        "every copy is counted failed or paused: {failed} + {paused} of {sent}"
    );
    assert!(paused > 0, "the mirror paused after a run of failures");
    // Copies already started when the pause began may fail too, at most the requests
    // in flight then (one at a time here).
    assert!(
        (5..=6).contains(&failed),
        "{failed} failed connects before the pause"
    );
    assert!(
        !gw.log().contains(&closed),
        "a shadow's failures are counted, not logged per request"
    );
}

#[test]
fn bad_mirrors_are_refused_with_their_fields() {
    for (mirrors, field) in [
        ("[{upstream: nowhere}]", "routes[0].mirrors[0].upstream"),
        (
            "[{upstream: shadow, percentage: 101}]",
            "routes[0].mirrors[0].percentage",
        ),
        (
            "[{upstream: shadow, max_in_flight: 0}]",
            "routes[0].mirrors[0].max_in_flight",
        ),
        (
            "[{upstream: shadow}, {upstream: shadow}]",
            "routes[0].mirrors[1].upstream",
        ),
        ("[{upstream: shadow, percent: 5}]", "percent"),
    ] {
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]
upstreams:
  - {{name: live, targets: [\"127.0.0.1:2\"]}}
  - {{name: shadow, targets: [\"127.0.0.1:3\"]}}
routes:
  - name: api
    upstream: live
    mirrors: {mirrors}
"
        );
        let (ok, out) = crate::auth_fixtures::validate(&yaml);
        assert!(!ok, "{mirrors}: {out}");
        assert!(out.contains(field), "{mirrors}: {field} in {out}");
    }
}
