//! Hostile requests over raw sockets, so that no client library normalises anything:
//! request-targets, encoded slashes, `Connection` nominations, slow heads and bodies,
//! stalled bodies, oversized heads, the connection cap.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Route `/admin` behind key-auth (key `k1`), route `/` open, one echo backend.
fn two_routes(backend: &Backend, proxy: &str, admin_plugin: &str) -> String {
    format!(
        r#"listeners: [{{address: "127.0.0.1:{{PORT}}"}}]
{proxy}
upstreams:
  - name: up
    targets: ["{addr}"]
    read_timeout: 5s
routes:
  - name: admin
    paths: [/admin]
    upstream: up
    plugins:
      - name: key-auth
        config: {admin_plugin}
  - name: open
    paths: [/]
    upstream: up
consumers:
  - username: alice
    keyauth_credentials: [{{key: k1}}]
  - username: anon
"#,
        addr = backend.addr
    )
}

/// [`two_routes`] with the admin API on a free port: the backend, the gateway and that port.
async fn two_routes_with_admin() -> (Backend, GatewayProcess, u16) {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let admin_port = free_port();
    let admin = format!("admin: {{listen: \"127.0.0.1:{admin_port}\"}}");
    let gw = GatewayProcess::start(&two_routes(&backend, &admin, "{}")).await;
    (backend, gw, admin_port)
}

/// A response read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn message(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        v["message"].as_str().unwrap_or_default().to_string()
    }

    fn echo(&self) -> Echo {
        Echo::parse(&self.body)
    }
}

/// Reads one response (head and `Content-Length` body) from `stream`; None when the
/// connection closes first.
async fn read_response(stream: &mut TcpStream) -> Option<Raw> {
    let mut buf = Vec::new();
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())
                            .flatten()
                    })
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                return Some(Raw { status, head, body });
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("a response or a close within the test's limit")
}

/// Sends `byte` one at a time, every 50 ms for at most 30 s (a slow client), until the
/// gateway answers or closes; returns everything it sent back.
async fn trickle(s: &mut TcpStream, byte: u8) -> String {
    let mut answer = Vec::new();
    for _ in 0..600 {
        if s.write_all(&[byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    // Whatever the loop left unread.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    answer.extend_from_slice(&rest);
    String::from_utf8_lossy(&answer).into_owned()
}

async fn connect(gw: &GatewayProcess) -> TcpStream {
    TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap()
}

/// Sends `request` as is and reads the answer.
async fn send_raw(gw: &GatewayProcess, request: &[u8]) -> Raw {
    let mut s = connect(gw).await;
    s.write_all(request).await.unwrap();
    read_response(&mut s).await.expect("a response")
}

async fn get(gw: &GatewayProcess, target: &str, extra: &str) -> Raw {
    let req = format!("GET {target} HTTP/1.1\r\nHost: gw\r\n{extra}Connection: close\r\n\r\n");
    send_raw(gw, req.as_bytes()).await
}

#[tokio::test]
async fn targets_without_a_leading_slash_get_400_and_never_reach_a_route() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&two_routes(&backend, "", "{}")).await;
    for target in [
        "admin",
        "admin/secret",
        "../admin",
        "x/../admin",
        "?x=/admin",
    ] {
        let r = get(&gw, target, "").await;
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert_eq!(r.message(), "invalid request target", "{target}");
        assert!(r.header("x-request-id").is_some());
    }
    assert_eq!(backend.hits(), 0);
    // The forms RFC 9112 allows still work; absolute-form goes upstream as origin-form.
    // (Pingora itself refuses an absolute-form target whose authority differs from Host.)
    assert_eq!(get(&gw, "/admin", "").await.status, 401);
    assert_eq!(get(&gw, "/admin", "apikey: k1\r\n").await.status, 200);
    let r = send_raw(
        &gw,
        b"GET http://api.example.com/admin/x?y=1 HTTP/1.1\r\nHost: api.example.com\r\napikey: k1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let e = r.echo();
    assert_eq!(e.target(), "/admin/x?y=1");
    assert_eq!(e.header("x-forwarded-host"), Some("api.example.com"));
    let r = send_raw(
        &gw,
        b"GET HTTP://h/admin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
}

#[tokio::test]
async fn encoded_slashes_are_refused_unless_configured() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&two_routes(&backend, "", "{}")).await;
    for target in [
        "/admin%2fsecret",
        "/%2fadmin",
        "/admin%2f",
        "/admin%2Fsecret",
        "/admin%5Csecret",
        "/x/..%2fadmin",
    ] {
        let r = get(&gw, target, "").await;
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert_eq!(r.message(), "encoded slash in request path");
    }
    assert_eq!(backend.hits(), 0);
    // A query may carry them.
    let r = get(&gw, "/open?next=%2Fadmin", "").await;
    assert_eq!(r.status, 200);

    // unescape: routed as the backend will read it, so the admin route's key-auth runs.
    let gw = GatewayProcess::start(&two_routes(
        &backend,
        "proxy: {escaped_slashes: unescape}",
        "{}",
    ))
    .await;
    assert_eq!(get(&gw, "/admin%2fsecret", "").await.status, 401);
    assert_eq!(get(&gw, "/%2Fadmin", "").await.status, 401);
    let r = get(&gw, "/admin%2Fsecret", "apikey: k1\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().target(), "/admin/secret");

    // keep: today's behaviour, forwarded as sent.
    let gw = GatewayProcess::start(&two_routes(
        &backend,
        "proxy: {escaped_slashes: keep}",
        "{}",
    ))
    .await;
    let r = get(&gw, "/admin%2fsecret", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().target(), "/admin%2fsecret");
}

#[tokio::test]
async fn connection_cannot_strip_the_identity_headers_the_gateway_adds() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&two_routes(&backend, "", "{anonymous: anon}")).await;
    // Anonymous: without the fix the upstream saw no X-Anonymous-Consumer.
    let r = get(&gw, "/admin", "Connection: close, X-Anonymous-Consumer\r\n").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.message(),
        "Connection header names a header the gateway sets"
    );
    let r = get(
        &gw,
        "/admin",
        "apikey: k1\r\nConnection: X-Consumer-Username, X-Consumer-ID, X-Credential-Identifier, X-Consumer-Groups\r\n",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(backend.hits(), 0);
    // Other nominated headers are hop-by-hop: removed before the plugins run.
    let r = get(
        &gw,
        "/admin",
        "apikey: k1\r\nX-Hop: 1\r\nConnection: keep-alive, X-Hop\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let e = r.echo();
    assert_eq!(e.header("x-hop"), None);
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    let r = get(&gw, "/admin", "").await;
    assert_eq!(r.echo().header("x-anonymous-consumer"), Some("true"));
}

#[tokio::test]
async fn host_framing_and_head_size_follow_rfc_9112_with_stated_limits() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&two_routes(
        &backend,
        "proxy: {max_request_header_bytes: 4096, max_request_headers: 20}",
        "{}",
    ))
    .await;
    // HTTP/1.1 needs exactly one Host; HTTP/1.0 may omit it.
    let r = send_raw(&gw, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.message(), "missing or ambiguous Host header");
    let r = send_raw(
        &gw,
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(send_raw(&gw, b"GET / HTTP/1.0\r\n\r\n").await.status, 200);
    // Two identical Content-Length headers: the upstream gets one.
    let r = send_raw(
        &gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let e = r.echo();
    let lengths: Vec<_> = e
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .collect();
    assert_eq!(lengths.len(), 1, "{e:?}");
    assert_eq!(e.body, "hello");
    // Different ones are refused (by Pingora, before the gateway's checks).
    let r = send_raw(
        &gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    // Over the limits: 431, before any plugin (the backend is never asked).
    let hits = backend.hits();
    let big = format!("X-Big: {}\r\n", "v".repeat(5000));
    let r = get(&gw, "/", &big).await;
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(r.message(), "Request header fields too large");
    let many: String = (0..25).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_eq!(get(&gw, "/", &many).await.status, 431);
    assert_eq!(backend.hits(), hits);
}

/// Asserts that `r` is Kong's JSON answer with `status` and `message`, from Pingway (not
/// Pingora's empty-bodied one), on a connection about to close.
fn assert_kong_json(r: &Raw, status: u16, message: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.message(), message, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8"),
        "{r:?}"
    );
    assert!(
        r.header("server")
            .is_some_and(|s| s.starts_with("pingway/")),
        "{r:?}"
    );
    assert!(!r.head.to_ascii_lowercase().contains("pingora"), "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
}

#[tokio::test]
async fn heads_pingora_refuses_before_routing_get_kongs_json_too() {
    let (_backend, gw, admin_port) = two_routes_with_admin().await;
    // Heads Pingora's parser refuses: bytes that are no method, a request line without a
    // version, a header line without a colon, two different Content-Lengths.
    let unparseable: [&[u8]; 4] = [
        b"\xff\xfe / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ];
    for head in unparseable {
        let r = send_raw(&gw, head).await;
        assert_kong_json(&r, 400, "Bad request");
    }
    // CONNECT is refused by Pingora too, with 405.
    let r = send_raw(
        &gw,
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    )
    .await;
    assert_kong_json(&r, 405, "Method not allowed");
    // A bad head after a good one on the same connection: the first is proxied, the
    // second answered the same way, and the connection closes after it.
    let mut s = connect(&gw).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut s).await.expect("the first response");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.echo().request_line, "GET / HTTP/1.1");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n")
        .await
        .unwrap();
    let second = read_response(&mut s).await.expect("the second response");
    assert_kong_json(&second, 400, "Bad request");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?} {rest:?}");
    // Counted, and the gateway still serves.
    assert_eq!(
        metric_value(admin_port, "pingway_parser_answers_total").await,
        Some(6)
    );
    assert_eq!(get(&gw, "/", "").await.status, 200);
}

#[tokio::test]
async fn what_clients_break_is_counted_and_answered_not_logged_as_errors() {
    let (_backend, gw, admin_port) = two_routes_with_admin().await;
    // Connections that end part-way through a head: nothing to answer.
    for part in [&b"GET / HT"[..], b"GET / HTTP/1.1\r\nHost: a\r\n"] {
        let mut s = connect(&gw).await;
        s.write_all(part).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0))), "{closed:?} {rest:?}");
    }
    // A broken chunked body and bytes after a GET's end: the client's 400s.
    let r = send_raw(
        &gw,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.message(), "Bad request", "{r:?}");
    // Pingora logs each as its connection task ends: wait for both to be counted.
    let counted = wait_until(Duration::from_secs(30), || async {
        metric_value(admin_port, "pingway_unfinished_heads_total").await == Some(2)
    })
    .await;
    assert!(counted, "{}", gw.log());
    // Still serving, and none of it is an error line in the log.
    assert_eq!(get(&gw, "/", "").await.status, 200);
    let log = gw.log();
    assert!(!log.contains("ERROR"), "{log}");
}

#[tokio::test]
async fn a_pipelined_request_is_never_lost_silently_nor_proxied_behind_another() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&two_routes(&backend, "", "{}")).await;
    // The second request (key-auth's route, with a key) rides behind the first.
    let mut s = connect(&gw).await;
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\napikey: k1\r\n\r\n",
    )
    .await
    .unwrap();
    let first = read_response(&mut s).await.expect("the first response");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.echo().request_line, "GET /one HTTP/1.1");
    // Then the connection closes: the client knows to send the second again.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "{closed:?}");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // The upstream saw the first request only.
    assert_eq!(backend.hits(), 1);
}

#[tokio::test]
async fn a_head_sent_byte_by_byte_is_cut_with_408() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&two_routes(
        &backend,
        "proxy: {client_header_timeout: 500ms}",
        "{}",
    ))
    .await;
    let mut s = connect(&gw).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n")
        .await
        .unwrap();
    // Each byte comes well within Pingora's per-read timeout, so only a deadline on the
    // whole head ends it.
    let text = trickle(&mut s, b'X').await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("Request timeout"), "{text}");
    assert_eq!(backend.hits(), 0);
    // Logged as a count, not as an error line per connection.
    let counted = wait_until(Duration::from_secs(10), || {
        let log = gw.log();
        async move { log.contains("request heads not received within client_header_timeout") }
    })
    .await;
    assert!(counted, "{}", gw.log());
    assert!(!gw.log().contains("ERROR"), "{}", gw.log());

    // A connection that never sends a byte is closed without an answer.
    let mut idle = connect(&gw).await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(30), idle.read_to_end(&mut buf))
        .await
        .expect("the gateway closes an idle connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf));

    // A keep-alive connection: the second head has its deadline too.
    let mut s = connect(&gw).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut s).await.unwrap().status, 200);
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let r = read_response(&mut s).await.expect("a 408");
    assert_eq!(r.status, 408);
}

#[tokio::test]
async fn a_body_trickled_below_the_minimum_rate_gets_408() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&two_routes(
        &backend,
        "proxy: {client_body_timeout: 500ms, client_body_min_rate: 1000}",
        "{}",
    ))
    .await;
    let mut s = connect(&gw).await;
    s.write_all(b"POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let text = trickle(&mut s, b'x').await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("\"message\":\"Request timeout\""), "{text}");
}

#[tokio::test]
async fn a_stalled_body_is_the_clients_408_not_the_upstreams_504() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    // The upstream's read timeout is the shorter: it fires first, while the gateway is
    // still waiting for the client's body.
    let yaml = two_routes(&backend, "proxy: {client_body_timeout: 3s}", "{}")
        .replace("read_timeout: 5s", "read_timeout: 300ms");
    let gw = GatewayProcess::start(&yaml).await;
    let mut s = connect(&gw).await;
    s.write_all(b"POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let r = read_response(&mut s).await.expect("an answer");
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.message(), "Request timeout");
    let logged = wait_until(Duration::from_secs(10), || {
        let log = gw.log();
        async move { log.contains("client timed out sending its request body") }
    })
    .await;
    assert!(logged, "{}", gw.log());

    // The client's own body timeout, when it is the shorter.
    let yaml = two_routes(&backend, "proxy: {client_body_timeout: 300ms}", "{}");
    let gw = GatewayProcess::start(&yaml).await;
    let mut s = connect(&gw).await;
    s.write_all(b"POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let r = read_response(&mut s).await.expect("an answer");
    assert_eq!(r.status, 408, "{r:?}");
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed_at_once() {
    let backend = Backend::start("up", Behaviour::Echo).await;
    let yaml = two_routes(&backend, "server: {max_connections: 2}", "{}");
    let gw = GatewayProcess::start(&yaml).await;
    // Hold two connections open with a served request each.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&gw).await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut s).await.unwrap().status, 200);
        held.push(s);
    }
    // A third is closed unanswered (the readiness probe's connection may still be
    // closing at first: wait for the refusal).
    let refused = wait_until(Duration::from_secs(10), || {
        let port = gw.port;
        async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
                .await
                .ok();
            read_response(&mut s).await.is_none()
        }
    })
    .await;
    assert!(refused, "a third connection was served");
    // Once one closes, a new connection is served again.
    drop(held.pop());
    let served = wait_until(Duration::from_secs(10), || {
        let port = gw.port;
        async move {
            let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
                .await
                .ok();
            read_response(&mut s).await.is_some_and(|r| r.status == 200)
        }
    })
    .await;
    assert!(served);
    let logged = gw.log().contains("server.max_connections reached");
    assert!(logged, "{}", gw.log());
}

/// A backend that answers one request with the request head exactly as it came (names
/// spelled as sent), for checks the echo backend cannot make (it lower-cases names).
async fn raw_head_backend() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed before the head ended");
            head.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let resp = format!(
            "HTTP/1.1 200 OK\r\nX-Backend-Case: 1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        text
    });
    (addr, task)
}

/// Header names travel in lower case both ways by default (as Envoy and HAProxy write
/// them), the dozen standard names Pingora titles excepted; `preserve_header_case` keeps
/// the spelling each side used and writes the gateway's own names in Kong's spelling.
#[tokio::test]
async fn header_names_travel_in_lower_case_unless_case_is_preserved() {
    for (proxy, sent_as, answered) in [
        (
            "",
            "x-custom-case: 1\r\n",
            ["x-backend-case: 1", "x-pingway-upstream-latency: ", "via: "],
        ),
        (
            "proxy: {preserve_header_case: true}",
            "X-Custom-Case: 1\r\n",
            ["X-Backend-Case: 1", "X-Pingway-Upstream-Latency: ", "Via: "],
        ),
    ] {
        let (addr, head) = raw_head_backend().await;
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]\n{proxy}\nupstreams: [{{name: up, targets: [\"{addr}\"]}}]\nroutes: [{{name: r, upstream: up}}]\n"
        );
        let gw = GatewayProcess::start(&yaml).await;
        let r = get(&gw, "/", "X-Custom-Case: 1\r\n").await;
        assert_eq!(r.status, 200, "{r:?}");
        let seen = head.await.unwrap();
        assert!(seen.contains(sent_as), "{proxy:?}: {seen}");
        for name in answered {
            assert!(r.head.contains(name), "{proxy:?}: {name:?} in {}", r.head);
        }
        if proxy.is_empty() {
            // A standard name Pingora titles gets its usual spelling (the backend wrote
            // `content-length`); with case preserved it stays as the backend wrote it.
            assert!(r.head.contains("Content-Length: "), "{}", r.head);
        }
    }
}
