//! The connection to a target for a request that asks for a protocol upgrade (WebSocket).
//!
//! Pingora 0.9.1 relays upgraded HTTP/1 connections itself, with one race
//! (cloudflare/pingora#946): its upstream half waits at once for the target's response and
//! for the end of the client's request body, which for an upgrade request is empty and
//! queued at once. When the target's `101` is read first, the body's end that follows is
//! taken for the end of the tunnel, and the client gets the `101` and then the connection
//! closed. A target on the same host answers fast enough for this to happen about half the
//! time.
//!
//! [`GatedConnect`] makes the order certain: the connection it opens holds back reads from
//! the target until the request has been written whole, which Pingora marks with a flush
//! after the head and another after the (empty) body. The `101` then always comes after the
//! body's end, the order Pingora handles. Upgrade peers carry their own pool key
//! ([`UPGRADE_GROUP_KEY`]) so that they never reuse an idle connection opened without the
//! gate, and an upgraded connection is never pooled (it closes with the session).
//!
//! To a TLS target the gate sits under the TLS layer, where the handshake writes, flushes
//! and waits for the target's answers before any request byte: counting from the start
//! would hold the handshake's reads. There the connection starts open and a [`Gate`]
//! closes it once the handshake is done: the proxy arms it when Pingora reports the
//! connection made (`connected_to_upstream`, called after the handshake and before the
//! request is written), and from then on the same two flushes (each a flush of the TLS
//! stream, which flushes the connection below once) open it again.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr as InetSocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::connectors::L4Connect;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::protocols::l4::stream::Stream;
use pingora_core::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora_error::{Error, ErrorType, Result};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The pool key of upgrade peers: their connections are kept apart from ordinary ones.
pub const UPGRADE_GROUP_KEY: u64 = 0x7077_7773_7570_6772;

/// Flushes that make up a whole upgrade request: its head, then its empty body.
const FLUSHES_PER_REQUEST: u8 = 2;

/// How long reads wait for the request to be written whole before they go ahead anyway
/// (a safety net: Pingora writes both parts at once, well within it).
const GATE_FALLBACK: Duration = Duration::from_secs(1);

/// Opens TCP connections whose reads wait until the request is written (see the module
/// documentation), within `connect_timeout`.
#[derive(Debug)]
pub struct GatedConnect {
    connect_timeout: Duration,
    /// For a TLS target: the switch that closes the gate after the handshake (`None`:
    /// closed from the start).
    after_handshake: Option<Gate>,
}

impl GatedConnect {
    /// A connector for a plain target, whose connections are gated from the start; it
    /// gives up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        GatedConnect {
            connect_timeout,
            after_handshake: None,
        }
    }

    /// A connector for a TLS target: its connections stay open through the handshake
    /// and are gated once the returned [`Gate`] is armed.
    pub fn after_handshake(connect_timeout: Duration) -> (Self, Gate) {
        let gate = Gate::default();
        let connect = GatedConnect {
            connect_timeout,
            after_handshake: Some(gate.clone()),
        };
        (connect, gate)
    }
}

/// Closes the gate of a TLS target's connection once its handshake is done (see the module
/// documentation). Cloned into the connection; arming it again does nothing more.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    /// Holds the connection's reads from now until the request has been written whole.
    /// Call it after the TLS handshake and before the request is written.
    pub fn arm(&self) {
        self.0.store(true, Ordering::Release);
    }
}

#[async_trait]
impl L4Connect for GatedConnect {
    async fn connect(&self, addr: &SocketAddr) -> Result<Stream> {
        let Some(inet) = addr.as_inet().copied() else {
            return Error::e_explain(ErrorType::ConnectError, "not an IP address");
        };
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(inet)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(connect_error(e, inet)),
            Err(_) => {
                return Error::e_explain(
                    ErrorType::ConnectTimedout,
                    format!("timeout {:?} connecting to {inet}", self.connect_timeout),
                )
            }
        };
        let _ = tcp.set_nodelay(true);
        let gated = Gated {
            inner: tcp,
            flushes: 0,
            // A TLS target's connection is open until its gate is armed.
            open: self.after_handshake.is_some(),
            arm: self.after_handshake.clone(),
            waiting: None,
            fallback: None,
        };
        Ok(VirtualSocketStream::new(Box::new(gated)).into())
    }
}

fn connect_error(e: io::Error, addr: InetSocketAddr) -> Box<Error> {
    let etype = match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorType::ConnectTimedout,
        _ => ErrorType::ConnectError,
    };
    Error::because(etype, format!("Fail to connect to {addr}"), e)
}

/// A TCP stream whose reads wait for [`FLUSHES_PER_REQUEST`] completed flushes.
struct Gated {
    inner: TcpStream,
    flushes: u8,
    open: bool,
    /// A gate not armed yet (TLS targets): once armed, the stream closes and counts
    /// flushes from zero.
    arm: Option<Gate>,
    /// The read that waits for the gate.
    waiting: Option<Waker>,
    fallback: Option<Pin<Box<Sleep>>>,
}

impl Gated {
    /// Applies an armed [`Gate`]: closes the stream, flushes counted from now.
    fn take_arm(&mut self) {
        if self
            .arm
            .as_ref()
            .is_some_and(|g| g.0.load(Ordering::Acquire))
        {
            self.arm = None;
            self.open = false;
            self.flushes = 0;
        }
    }
}

impl fmt::Debug for Gated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gated")
            .field("inner", &self.inner)
            .field("open", &self.open)
            .finish()
    }
}

impl VirtualSocket for Gated {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        match opt {
            VirtualSockOpt::NoDelay => self.inner.set_nodelay(true),
            // Keep-alive probes matter for pooled connections; these are never pooled.
            _ => Ok(()),
        }
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.take_arm();
        if !this.open {
            let fallback = this
                .fallback
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(GATE_FALLBACK)));
            if fallback.as_mut().poll(cx).is_ready() {
                this.open = true;
            } else {
                this.waiting = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.take_arm();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            if !this.open {
                this.flushes += 1;
                if this.flushes >= FLUSHES_PER_REQUEST {
                    this.open = true;
                    this.fallback = None;
                    if let Some(waker) = this.waiting.take() {
                        waker.wake();
                    }
                }
            }
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_wait_for_the_second_flush() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // Answers before the request is complete, as a fast target does.
            s.write_all(b"early").await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            buf
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut gated = Gated {
            inner: tcp,
            flushes: 0,
            open: false,
            arm: None,
            waiting: None,
            fallback: None,
        };
        gated.write_all(b"head").await.unwrap();
        gated.flush().await.unwrap();
        let mut buf = [0u8; 5];
        // One flush: the answer waits (well under the fallback).
        let early = tokio::time::timeout(Duration::from_millis(200), gated.read(&mut buf)).await;
        assert!(early.is_err(), "read before the request was complete");
        gated.flush().await.unwrap();
        gated.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"early");
        assert_eq!(&server.await.unwrap(), b"head");
    }

    #[tokio::test]
    async fn a_tls_targets_connection_is_open_until_armed_then_gated() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // The handshake: one answer read at once.
            s.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 2];
            s.read_exact(&mut buf).await.unwrap();
            // The response, sent before the request is complete.
            s.write_all(b"early").await.unwrap();
            s.read_exact(&mut buf).await.unwrap();
        });
        let (connect, gate) = GatedConnect::after_handshake(Duration::from_secs(1));
        let stream = connect
            .connect(&SocketAddr::Inet(addr))
            .await
            .expect("connected");
        let mut stream = stream;
        // Handshake flushes and reads go through at once.
        stream.write_all(b"hi").await.unwrap();
        stream.flush().await.unwrap();
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_millis(500), stream.read_exact(&mut buf))
            .await
            .expect("not gated before it is armed")
            .unwrap();
        assert_eq!(&buf, b"hello");
        gate.arm();
        stream.write_all(b"rq").await.unwrap();
        stream.flush().await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        assert!(early.is_err(), "read before the request was complete");
        stream.flush().await.unwrap();
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"early");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn refused_connections_are_connect_errors() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: InetSocketAddr = ([127, 0, 0, 1], port).into();
        let err = GatedConnect::new(Duration::from_secs(1))
            .connect(&SocketAddr::Inet(addr))
            .await
            .unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ConnectRefused);
    }
}
