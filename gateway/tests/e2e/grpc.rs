//! HTTP/2 in cleartext and gRPC: h2c listeners (with HTTP/1 clients still served),
//! `protocol: h2c` upstreams, a real gRPC client (tonic) and server (tonic's
//! `server::Grpc` on hyper's HTTP/2 server) for unary, server-streaming and bidirectional calls through
//! the gateway, and the gateway's own answers as gRPC statuses.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::time::Duration;

use http::uri::PathAndQuery;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;

use crate::common::*;
use crate::tls::{provider, Issued, TestCa};
use tokio_rustls::rustls;

/// The request of the test service (hand-written prost message: no protoc).
#[derive(Clone, PartialEq, prost::Message)]
struct EchoRequest {
    #[prost(string, tag = "1")]
    message: String,
    /// How many replies a streaming call sends.
    #[prost(uint32, tag = "2")]
    count: u32,
}

/// A reply of the test service.
#[derive(Clone, PartialEq, prost::Message)]
struct EchoReply {
    #[prost(string, tag = "1")]
    message: String,
    #[prost(uint32, tag = "2")]
    index: u32,
}

/// `Unary`: echoes the message with what the server saw of the request.
#[derive(Clone)]
struct Unary;

impl tonic::server::UnaryService<EchoRequest> for Unary {
    type Response = EchoReply;
    type Future = Ready<Result<Response<EchoReply>, Status>>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        let via = request
            .metadata()
            .get("via")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let te = request
            .metadata()
            .get("te")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let message = request.into_inner().message;
        if message == "not-found" {
            return ready(Err(Status::not_found("no such echo")));
        }
        ready(Ok(Response::new(EchoReply {
            message: format!("echo:{message} via:{via} te:{te}"),
            index: 0,
        })))
    }
}

/// `Stream`: `count` replies, then OK; with the message `fail`, an ABORTED status in the
/// trailers after the replies.
#[derive(Clone)]
struct Streaming;

impl tonic::server::ServerStreamingService<EchoRequest> for Streaming {
    type Response = EchoReply;
    type ResponseStream = ReceiverStream<Result<EchoReply, Status>>;
    type Future = Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
        let req = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            for index in 0..req.count {
                let reply = EchoReply {
                    message: format!("{} #{index}", req.message),
                    index,
                };
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
                // Replies come one by one, not in one piece.
                tokio::task::yield_now().await;
            }
            if req.message == "fail" {
                let _ = tx.send(Err(Status::aborted("stopped on purpose"))).await;
            }
        });
        ready(Ok(Response::new(ReceiverStream::new(rx))))
    }
}

/// `Chat`: a bidirectional stream that answers each request as it comes, so the client
/// sees a reply before it has sent its next request.
#[derive(Clone)]
struct Chat;

impl tonic::server::StreamingService<EchoRequest> for Chat {
    type Response = EchoReply;
    type ResponseStream = ReceiverStream<Result<EchoReply, Status>>;
    type Future = Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<tonic::Streaming<EchoRequest>>) -> Self::Future {
        let mut incoming = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut index = 0;
            while let Ok(Some(req)) = incoming.message().await {
                let reply = EchoReply {
                    message: format!("re:{}", req.message),
                    index,
                };
                index += 1;
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
            }
        });
        ready(Ok(Response::new(ReceiverStream::new(rx))))
    }
}

/// The gRPC server: any service name, the method picked by the path's last segment.
async fn grpc_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_grpc(stream));
        }
    });
    addr
}

/// The same gRPC server over TLS with `cert`, offering ALPN `h2` only (as gRPC servers
/// do): a client that does not negotiate HTTP/2 fails its handshake.
async fn grpc_tls_server(cert: &Issued) -> SocketAddr {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain(), cert.key())
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    serve_grpc(tls).await;
                }
            });
        }
    });
    addr
}

/// Serves the test service on one HTTP/2 connection.
async fn serve_grpc<S>(stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
            let method = req.uri().path().rsplit('/').next().unwrap_or("");
            let codec = ProstCodec::<EchoReply, EchoRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec);
            let resp = match method {
                "Unary" => grpc.unary(Unary, req).await,
                "Stream" => grpc.server_streaming(Streaming, req).await,
                "Chat" => grpc.streaming(Chat, req).await,
                _ => Status::unimplemented("unknown method").into_http(),
            };
            Ok::<_, Infallible>(resp)
        });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A plain HTTP/2-only (h2c) server: answers `VERSION METHOD PATH` and the request body.
async fn h2c_http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let target = req.uri().path_and_query().map(|p| p.to_string());
                        let line = format!(
                            "{:?} {} {}",
                            req.version(),
                            req.method(),
                            target.unwrap_or_default()
                        );
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        let body = String::from_utf8_lossy(&body.unwrap_or_default()).to_string();
                        Ok::<_, Infallible>(http::Response::new(format!("{line}\n{body}")))
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn config(grpc: SocketAddr, dead: u16) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\", h2c: true}}]
upstreams:
  - {{name: grpc, protocol: h2c, targets: [\"{grpc}\"]}}
  - {{name: dead, protocol: h2c, targets: [\"127.0.0.1:{dead}\"], retries: 0}}
routes:
  - {{name: echo, paths: [/test.Echo], upstream: grpc}}
  - name: secured
    paths: [/test.Secured]
    upstream: grpc
    plugins: [{{name: key-auth}}]
  - name: denied
    paths: [/test.Denied]
    upstream: grpc
    plugins: [{{name: ip-restriction, config: {{deny: [127.0.0.1]}}}}]
  - name: limited
    paths: [/test.Limited]
    upstream: grpc
    plugins: [{{name: rate-limiting, config: {{minute: 1, limit_by: ip}}}}]
  - {{name: down, paths: [/test.Down], upstream: dead}}
consumers:
  - username: alice
    keyauth_credentials: [{{key: alice-key}}]
"
    )
}

async fn channel(gw: &GatewayProcess) -> Channel {
    Channel::from_shared(format!("http://127.0.0.1:{}", gw.port))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("an HTTP/2 connection to the gateway")
}

async fn unary(
    channel: &Channel,
    path: &'static str,
    request: Request<EchoRequest>,
) -> Result<Response<EchoReply>, Status> {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let codec = ProstCodec::<EchoRequest, EchoReply>::default();
    client
        .unary(request, PathAndQuery::from_static(path), codec)
        .await
}

async fn stream(
    channel: &Channel,
    request: EchoRequest,
) -> Result<(Vec<EchoReply>, Option<Status>), Status> {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(e.to_string()))?;
    let codec = ProstCodec::<EchoRequest, EchoReply>::default();
    let resp = client
        .server_streaming(
            Request::new(request),
            PathAndQuery::from_static("/test.Echo/Stream"),
            codec,
        )
        .await?;
    let mut replies = Vec::new();
    let mut stream = resp.into_inner();
    loop {
        match stream.message().await {
            Ok(Some(r)) => replies.push(r),
            Ok(None) => return Ok((replies, None)),
            Err(status) => return Ok((replies, Some(status))),
        }
    }
}

fn echo(message: &str) -> Request<EchoRequest> {
    Request::new(EchoRequest {
        message: message.into(),
        count: 0,
    })
}

#[tokio::test]
async fn unary_and_streaming_calls_pass_through_with_their_trailers() {
    let server = grpc_server().await;
    let gw = GatewayProcess::start(&config(server, free_port())).await;
    let ch = channel(&gw).await;

    let resp = unary(&ch, "/test.Echo/Unary", echo("hello")).await.unwrap();
    let meta = resp.metadata().clone();
    let reply = resp.into_inner();
    // The upstream got the gateway's headers (Via), the client its request id.
    assert!(
        reply.message.starts_with("echo:hello via:") && reply.message.contains("pingway"),
        "{reply:?}"
    );
    // The client's `te: trailers` reaches the server.
    assert!(reply.message.ends_with(" te:trailers"), "{reply:?}");
    assert!(meta.get("x-request-id").is_some(), "{meta:?}");

    // The upstream's own error status comes through (trailers-only from the server).
    let err = unary(&ch, "/test.Echo/Unary", echo("not-found"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(err.message(), "no such echo");

    // Server streaming: every reply in order, then the OK trailers.
    let (replies, end) = stream(
        &ch,
        EchoRequest {
            message: "tick".into(),
            count: 50,
        },
    )
    .await
    .unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(replies.len(), 50);
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.index as usize, i);
        assert_eq!(r.message, format!("tick #{i}"));
    }

    // An error status in the trailers after some replies reaches the client as such.
    let (replies, end) = stream(
        &ch,
        EchoRequest {
            message: "fail".into(),
            count: 3,
        },
    )
    .await
    .unwrap();
    assert_eq!(replies.len(), 3);
    let end = end.expect("the trailers' status");
    assert_eq!(end.code(), Code::Aborted);
    assert_eq!(end.message(), "stopped on purpose");

    // Many calls at once over the one client connection, multiplexed upstream too.
    let calls = (0..20).map(|i| {
        let ch = ch.clone();
        async move {
            let msg = format!("n{i}");
            let r = unary(&ch, "/test.Echo/Unary", echo(&msg)).await.unwrap();
            assert!(r.into_inner().message.starts_with(&format!("echo:{msg} ")));
        }
    });
    futures_util::future::join_all(calls).await;
}

/// `protocol: h2` with `tls: true`: HTTP/2 over TLS, ALPN `h2`, to a gRPC server that
/// offers nothing else; a server whose certificate the pool does not trust fails the call
/// with UNAVAILABLE and a log line naming the reason.
#[tokio::test]
async fn calls_reach_a_grpc_server_over_tls_with_alpn_h2() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let trusted = grpc_tls_server(&ca.issue("grpc", &["127.0.0.1"])).await;
    let stranger = TestCa::new("Unknown CA");
    let untrusted = grpc_tls_server(&stranger.issue("grpc", &["127.0.0.1"])).await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\", h2c: true}}]
upstreams:
  - {{name: grpcs, protocol: h2, tls: true, ca_file: \"{ca}\", targets: [\"{trusted}\"]}}
  - {{name: stranger, protocol: h2, tls: true, ca_file: \"{ca}\", targets: [\"{untrusted}\"], retries: 0}}
routes:
  - {{name: echo, paths: [/test.Echo], upstream: grpcs}}
  - {{name: untrusted, paths: [/test.Untrusted], upstream: stranger}}
",
        ca = ca_file.display()
    ))
    .await;
    let ch = channel(&gw).await;

    let reply = unary(&ch, "/test.Echo/Unary", echo("over tls"))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", gw.log()))
        .into_inner();
    assert!(
        reply.message.starts_with("echo:over tls via:") && reply.message.ends_with(" te:trailers"),
        "{reply:?}"
    );
    let (replies, end) = stream(
        &ch,
        EchoRequest {
            message: "tls-tick".into(),
            count: 20,
        },
    )
    .await
    .unwrap();
    assert!(end.is_none(), "{end:?}");
    assert_eq!(replies.len(), 20);
    assert_eq!(replies[19].message, "tls-tick #19");

    let err = unary(&ch, "/test.Untrusted/Unary", echo("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        wait_until(Duration::from_secs(5), || async {
            gw.log().contains("UnknownIssuer")
        })
        .await,
        "no log line names the verification failure:\n{}",
        gw.log()
    );
    // The trusted pool still serves after the failure.
    unary(&ch, "/test.Echo/Unary", echo("again")).await.unwrap();
}

#[tokio::test]
async fn a_bidirectional_stream_is_relayed_message_by_message() {
    let server = grpc_server().await;
    let gw = GatewayProcess::start(&config(server, free_port())).await;
    let ch = channel(&gw).await;
    let mut client = tonic::client::Grpc::new(ch.clone());
    client.ready().await.unwrap();
    // The client sends its next request only once the previous answer came back
    // through the gateway: nothing is buffered whole on the way.
    let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
    let codec = ProstCodec::<EchoRequest, EchoReply>::default();
    tx.send(EchoRequest {
        message: "m0".into(),
        count: 0,
    })
    .await
    .unwrap();
    let resp = client
        .streaming(
            Request::new(ReceiverStream::new(rx)),
            PathAndQuery::from_static("/test.Echo/Chat"),
            codec,
        )
        .await
        .unwrap();
    let mut replies = resp.into_inner();
    for i in 0..10u32 {
        let reply = tokio::time::timeout(Duration::from_secs(10), replies.message())
            .await
            .expect("a reply in time")
            .unwrap()
            .expect("a reply");
        assert_eq!(reply.message, format!("re:m{i}"));
        assert_eq!(reply.index, i);
        if i < 9 {
            tx.send(EchoRequest {
                message: format!("m{}", i + 1),
                count: 0,
            })
            .await
            .unwrap();
        }
    }
    drop(tx);
    // The client's end of stream reaches the server, whose OK trailers come back.
    let end = tokio::time::timeout(Duration::from_secs(10), replies.message())
        .await
        .expect("the end in time");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test]
async fn gateway_answers_are_grpc_statuses() {
    let server = grpc_server().await;
    let gw = GatewayProcess::start(&config(server, free_port())).await;
    let ch = channel(&gw).await;

    // key-auth without a key: UNAUTHENTICATED with Kong's message; with one, through.
    let err = unary(&ch, "/test.Secured/Unary", echo("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert_eq!(err.message(), "No API key found in request");
    let mut with_key = echo("x");
    with_key
        .metadata_mut()
        .insert("apikey", "alice-key".parse().unwrap());
    let ok = unary(&ch, "/test.Secured/Unary", with_key).await.unwrap();
    assert!(ok.into_inner().message.starts_with("echo:x"));

    // ip-restriction: PERMISSION_DENIED.
    let err = unary(&ch, "/test.Denied/Unary", echo("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // rate-limiting: the first call passes, the second is RESOURCE_EXHAUSTED (both in
    // one minute window).
    early_in_a_minute().await;
    unary(&ch, "/test.Limited/Unary", echo("x")).await.unwrap();
    let err = unary(&ch, "/test.Limited/Unary", echo("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(err.message(), "API rate limit exceeded");

    // No route: UNIMPLEMENTED.
    let err = unary(&ch, "/other.Service/Unary", echo("x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert_eq!(err.message(), "no route matched");

    // An upstream that refuses connections: UNAVAILABLE.
    let err = unary(&ch, "/test.Down/Unary", echo("x")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    // The connection is still good after all those answers.
    unary(&ch, "/test.Echo/Unary", echo("again")).await.unwrap();
}

#[tokio::test]
async fn an_h2c_listener_serves_http2_and_http1_clients_with_the_same_plugins() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\", h2c: true}}]
upstreams:
  - {{name: api, targets: [\"{}\"]}}
routes:
  - {{name: open, paths: [/open], upstream: api}}
  - name: secured
    paths: [/secured]
    upstream: api
    plugins: [{{name: key-auth}}]
consumers:
  - username: alice
    keyauth_credentials: [{{key: alice-key}}]
",
        backend.addr
    ))
    .await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = h2
        .get(gw.url("/open/a?b=1"))
        .header("x-custom", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    assert!(resp.headers()["via"].to_str().unwrap().contains("pingway"));
    let echo = Echo::parse(&resp.text().await.unwrap());
    // The HTTP/1 upstream gets the request with the gateway's forwarding headers.
    assert_eq!(echo.target(), "/open/a?b=1");
    assert_eq!(echo.header("x-custom"), Some("yes"));
    assert_eq!(echo.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        echo.header("x-forwarded-host"),
        Some(format!("127.0.0.1:{}", gw.port).as_str())
    );

    // A plugin's answer over HTTP/2 is the usual JSON.
    let resp = h2.get(gw.url("/secured")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let (status, message, _) = json_message(resp).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "No API key found in request")
    );
    let resp = h2
        .get(gw.url("/secured"))
        .header("apikey", "alice-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = h2.get(gw.url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // An HTTP/1.1 client on the same listener.
    let resp = client().get(gw.url("/open/h1")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_listener_without_h2c_does_not_speak_http2() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: api, targets: [\"{}\"]}}]
routes: [{{name: open, paths: [/], upstream: api}}]
",
        backend.addr
    ))
    .await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(h2.get(gw.url("/")).send().await.is_err());
    assert_eq!(
        client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn http1_clients_reach_an_h2c_upstream() {
    let server = h2c_http_server().await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: h2, protocol: h2c, targets: [\"{server}\"]}}]
routes: [{{name: all, paths: [/], upstream: h2}}]
"
    ))
    .await;
    let c = client();
    let resp = c.get(gw.url("/a/b?c=1")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.text().await.unwrap(), "HTTP/2.0 GET /a/b?c=1\n");
    let resp = c
        .post(gw.url("/upload"))
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "HTTP/2.0 POST /upload\npayload");
}

#[tokio::test]
async fn a_grpc_request_over_http1_reaches_the_h2c_upstream_with_te_trailers() {
    // Pingora drops `TE` when it turns an HTTP/1 request into an HTTP/2 one; the gateway
    // sets `te: trailers` again on gRPC requests to h2c upstreams.
    use prost::Message as _;
    let server = grpc_server().await;
    let gw = GatewayProcess::start(&config(server, free_port())).await;
    let message = EchoRequest {
        message: "h1".into(),
        count: 0,
    }
    .encode_to_vec();
    // One uncompressed gRPC frame: flag, big-endian length, message.
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let resp = client()
        .post(gw.url("/test.Echo/Unary"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let body = resp.bytes().await.unwrap();
    assert!(body.len() > 5, "{body:?}");
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let reply = EchoReply::decode(&body[5..5 + len]).unwrap();
    assert!(reply.message.starts_with("echo:h1 "), "{reply:?}");
    assert!(reply.message.ends_with(" te:trailers"), "{reply:?}");
}
