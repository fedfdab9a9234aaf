//! WebSocket passthrough: a real client and server (tokio-tungstenite) exchanging
//! messages through the gateway, across a configuration reload, with a body plugin on the
//! route that must stay out of the upgraded session; the idle timeout; the access log.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::common::*;

/// How long the long-lived session runs: a minute (issue 12), many times the upstream's
/// `read_timeout` and the client body timeout, with a reload in the middle. The other
/// tests run beside it.
const SESSION: Duration = Duration::from_secs(60);
/// Time between two messages of the session.
const INTERVAL: Duration = Duration::from_millis(100);
/// The longest wait for any one step.
const WAIT: Duration = Duration::from_secs(10);

type Client = WebSocketStream<TcpStream>;

/// A WebSocket server on 127.0.0.1 that answers each text message `t` with `echo:t` and
/// each binary message with itself.
async fn ws_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let reply = match msg {
                        Message::Text(t) => Message::text(format!("echo:{t}")),
                        Message::Binary(b) => Message::Binary(b),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn config(ws: SocketAddr, access_log: &Path, extra_route: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
proxy:
  client_body_timeout: 300ms
access_log:
  path: {}
  fields: [method, path, status, bytes_received, bytes_sent, latencies, route]
upstreams:
  - name: ws
    targets: [\"{ws}\"]
    read_timeout: 300ms
    write_timeout: 300ms
    websocket_idle_timeout: 1500ms
routes:
  - name: chat
    paths: [/chat]
    upstream: ws
    timeout: 300ms
    plugins:
      # Would refuse the session after 64 bytes if it counted WebSocket frames as a body.
      - {{name: request-size-limiting, config: {{allowed_payload_size: 64, size_unit: bytes}}}}
{extra_route}",
        access_log.display()
    )
}

async fn connect(gw: &GatewayProcess, path: &str) -> Client {
    let url = format!("ws://127.0.0.1:{}{path}", gw.port);
    let tcp = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake through the gateway");
    assert_eq!(resp.status(), 101);
    // The 101 is the gateway's proxied response: it carries the request id.
    assert!(resp.headers().contains_key("x-request-id"), "{resp:?}");
    ws
}

/// Sends `text` and returns the next text message.
async fn round_trip(ws: &mut Client, text: &str) -> String {
    ws.send(Message::text(text)).await.expect("send");
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("an answer in time")
            .expect("the session is open")
            .expect("a frame");
        match msg {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn access_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_session_passes_messages_both_ways_across_a_reload() {
    let ws = ws_echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = GatewayProcess::start(&config(ws, &log, "")).await;

    let mut client = connect(&gw, "/chat/room-1").await;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut reloaded = false;
    while started.elapsed() < SESSION {
        let text = format!("message {sent} {}", "x".repeat(40));
        assert_eq!(round_trip(&mut client, &text).await, format!("echo:{text}"));
        sent += 1;
        if !reloaded && started.elapsed() >= SESSION / 2 {
            // A reload half-way: the session keeps the configuration it started with.
            let before = gw.log().matches("configuration reloaded").count();
            gw.write_config(&config(
                ws,
                &log,
                "  - {name: other, paths: [/other], upstream: ws}\n",
            ));
            let applied = wait_until(WAIT, || async {
                gw.log().matches("configuration reloaded").count() > before
            })
            .await;
            assert!(applied, "the reload did not happen:\n{}", gw.log());
            reloaded = true;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    assert!(reloaded);
    // A binary message too, then a clean close.
    client
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let back = tokio::time::timeout(WAIT, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, Message::binary(vec![0u8, 1, 2, 255]));
    client.close(None).await.unwrap();
    let duration = started.elapsed();

    // The access log has the session: 101, the bytes each way, and how long it lasted.
    let found = wait_until(WAIT, || async {
        access_lines(&log).iter().any(|l| l["status"] == 101)
    })
    .await;
    let lines = access_lines(&log);
    assert!(found, "no 101 line in {lines:?}");
    let line = lines.iter().find(|l| l["status"] == 101).unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/chat/room-1");
    assert_eq!(line["route"], "chat");
    // Each text frame from the client is at least its text (masked, with a header).
    let min_up = (sent * 50) as u64;
    assert!(
        line["bytes_received"].as_u64().unwrap() >= min_up,
        "{line} (sent {sent} messages)"
    );
    assert!(
        line["bytes_sent"].as_u64().unwrap() >= min_up,
        "{line} (sent {sent} messages)"
    );
    let total_ms = line["latencies"]["request"].as_u64().unwrap();
    assert!(
        total_ms >= SESSION.as_millis() as u64 && total_ms <= duration.as_millis() as u64 + 5000,
        "{line}: the session lasted {duration:?}"
    );
    assert!(sent as u128 >= SESSION.as_millis() / (INTERVAL.as_millis() * 4));
}

#[tokio::test]
async fn an_idle_session_is_closed_after_websocket_idle_timeout() {
    let ws = ws_echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let gw = GatewayProcess::start(&config(ws, &log, "")).await;

    let mut client = connect(&gw, "/chat/quiet").await;
    assert_eq!(round_trip(&mut client, "hello").await, "echo:hello");
    let quiet_from = Instant::now();
    // Nothing is sent either way: the gateway ends the session after 1.5 s of quiet.
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match client.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the idle session was not closed");
    let quiet = quiet_from.elapsed();
    assert!(
        quiet >= Duration::from_millis(1400),
        "closed after {quiet:?}, before websocket_idle_timeout"
    );
}

#[tokio::test]
async fn a_plain_request_on_the_same_route_still_gets_its_body_plugins() {
    // The request-size-limiting plugin that stays out of WebSocket frames still applies
    // to an ordinary request with a body on the route.
    let ws = ws_echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = GatewayProcess::start(&config(ws, &dir.path().join("a.log"), "")).await;
    let resp = client()
        .post(gw.url("/chat/x"))
        .body("y".repeat(100))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn a_target_that_refuses_the_upgrade_is_relayed_as_an_ordinary_answer() {
    let plain = Backend::start("plain", Behaviour::Status(403)).await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: plain, targets: [\"{}\"]}}]
routes: [{{name: all, paths: [/], upstream: plain}}]
",
        plain.addr
    ))
    .await;
    let url = format!("ws://127.0.0.1:{}/socket", gw.port);
    let tcp = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    let refused = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(url, tcp))
        .await
        .expect("an answer in time");
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403);
            assert!(resp.headers().contains_key("x-request-id"));
        }
        other => panic!("expected the target's 403, got {other:?}"),
    }
    assert_eq!(plain.hits(), 1);
    // The gateway keeps serving.
    assert_eq!(
        client().get(gw.url("/x")).send().await.unwrap().status(),
        403
    );
}

#[tokio::test]
async fn the_handshake_goes_through_the_route_plugins() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let ws = ws_echo_server().await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: ws, targets: [\"{ws}\"]}}]
routes:
  - name: secure
    paths: [/secure]
    upstream: ws
    plugins: [{{name: key-auth}}]
consumers:
  - username: alice
    keyauth_credentials: [{{key: alice-key}}]
"
    ))
    .await;
    let url = format!("ws://127.0.0.1:{}/secure", gw.port);
    let tcp = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    match tokio_tungstenite::client_async(url.clone(), tcp).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected key-auth's 401, got {other:?}"),
    }
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("apikey", "alice-key".parse().unwrap());
    let tcp = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(round_trip(&mut ws, "hi").await, "echo:hi");
}

/// The echo server over TLS with `cert` (a `wss://` target).
async fn wss_echo_server(cert: &crate::tls::Issued) -> SocketAddr {
    use tokio_rustls::rustls;
    let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain(), cert.key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let reply = match msg {
                        Message::Text(t) => Message::text(format!("echo:{t}")),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A target behind TLS (`tls: true`): the upgrade gate (Pingora's upgrade race, see
/// `upstream::upgrade`) closes after the TLS handshake, so every one of many sessions
/// opens and carries messages; without the gate about half of them got the 101 and then
/// a closed connection.
#[tokio::test]
async fn sessions_to_a_tls_target_open_every_time() {
    let ca = crate::tls::TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let wss = wss_echo_server(&ca.issue("ws", &["127.0.0.1"])).await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: wss, targets: [\"{wss}\"], tls: true, ca_file: \"{}\", retries: 0}}
routes:
  - {{name: chat, paths: [/chat], upstream: wss}}
",
        ca_file.display()
    ))
    .await;
    for i in 0..20 {
        let mut client = connect(&gw, "/chat").await;
        let text = format!("over tls {i}");
        assert_eq!(
            round_trip(&mut client, &text).await,
            format!("echo:{text}"),
            "session {i}\n{}",
            gw.log()
        );
        client.close(None).await.ok();
    }
}
