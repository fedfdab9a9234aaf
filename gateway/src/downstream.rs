//! Guards on client connections that Pingora does not give: a cap on the connections
//! served at once, and a deadline for a whole request head.
//!
//! Pingora times out each read of a request head separately, so a client that sends one
//! byte a second (slowloris) holds its connection for ever. [`GuardedApp`] wraps the
//! proxy's `ServerApp`: it refuses connections beyond `server.max_connections`, and wraps
//! each accepted stream in a [`GuardedStream`] that ends the connection when a request's
//! head has not fully arrived within `proxy.client_header_timeout` of its first byte (of
//! the accept, for the first request). A client that had sent part of a head gets a 408
//! first; one that had sent nothing is closed quietly, as nginx does.
//!
//! Pingora answers two kinds of request before the proxy sees their head: a head it
//! cannot parse (400) and `CONNECT` (405), with an empty body and `Server: Pingora`. The
//! stream writes Kong's JSON for the same status in their place ([`parser_answer`]), so
//! every 4xx a client gets from the gateway has the same form.
//!
//! The proxy tells the stream when a head is complete and when the request is over
//! through the [`Connection`] state, which it reaches with [`Connection::current`] (a
//! task-local: an HTTP/1 connection's requests all run on its own task).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::tls::{SslDigest, TlsRef};
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// What a client whose head timed out part-way gets before the connection closes.
const HEAD_TIMEOUT_RESPONSE: &[u8] = concat!(
    "HTTP/1.1 408 Request Timeout\r\n",
    "Content-Type: application/json; charset=utf-8\r\n",
    "Content-Length: 30\r\n",
    "Connection: close\r\n",
    "Server: pingway/",
    env!("CARGO_PKG_VERSION"),
    "\r\n\r\n",
    "{\"message\":\"Request timeout\"}\n",
)
.as_bytes();

/// How long a connection's close waits for a client to take a [`parser_answer`] that a
/// full socket held back.
const REPLACEMENT_DRAIN: Duration = Duration::from_secs(5);

tokio::task_local! {
    static CONNECTION: Arc<Connection>;
}

/// Words in the error a timed-out head ends with. Pingora logs that error once per
/// connection at error level; the process logger drops those lines (a slowloris flood
/// would fill the log) and [`GuardCounters`] logs a count at most every ten seconds.
pub const HEAD_TIMEOUT_MARKER: &str = "client_header_timeout: the request head did not arrive";

/// Words in Pingora's error line for a client connection that ended, or broke, part-way
/// through a request head (`Fail to proxy: Downstream ConnectionClosed context: while
/// reading request headers, bytes already read: 12`). The process logger drops those
/// lines and counts them with [`head_unfinished`], which logs a count at most every ten
/// seconds: a client can end a connection that way as often as it likes.
pub const HEAD_UNFINISHED_MARKER: &str = "while reading request headers";

static UNFINISHED_HEADS: AtomicU64 = AtomicU64::new(0);
static UNFINISHED_HEAD_LOG: EveryTenSeconds = EveryTenSeconds::new();

/// Counts a client connection that ended part-way through a request head; logs the count,
/// with the last one's reason, at most every ten seconds.
pub fn head_unfinished(reason: &str) {
    let n = UNFINISHED_HEADS.fetch_add(1, Ordering::Relaxed) + 1;
    if UNFINISHED_HEAD_LOG.due() {
        log::info!("client connections closed part-way through a request head: {n} so far (last: {reason})");
    }
}

/// Client connections that ended part-way through a request head since the process
/// started (those cut by `client_header_timeout` are [`GuardCounters::head_timeouts`]).
pub fn unfinished_heads() -> u64 {
    UNFINISHED_HEADS.load(Ordering::Relaxed)
}

/// Counters of what the guards refused, for logs and metrics.
#[derive(Debug, Default)]
pub struct GuardCounters {
    accepted_connections: AtomicU64,
    active_connections: AtomicU64,
    refused_connections: AtomicU64,
    head_timeouts: AtomicU64,
    parser_answers: AtomicU64,
    refusal_log: EveryTenSeconds,
    head_timeout_log: EveryTenSeconds,
}

/// A gate that opens at most once every ten seconds: events that come in floods are
/// logged as a count, not line by line.
#[derive(Debug, Default)]
pub(crate) struct EveryTenSeconds {
    /// Milliseconds since the process started when the gate last opened (0: never).
    last: AtomicU64,
}

impl EveryTenSeconds {
    /// A gate that has never opened (for statics).
    pub(crate) const fn new() -> Self {
        EveryTenSeconds {
            last: AtomicU64::new(0),
        }
    }

    /// Whether to log now (at most once every ten seconds).
    pub(crate) fn due(&self) -> bool {
        let now = millis(process_start().elapsed()).max(1);
        let last = self.last.load(Ordering::Relaxed);
        (last == 0 || now.saturating_sub(last) >= 10_000)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl GuardCounters {
    fn connection_refused(&self) {
        let refused = self.refused_connections.fetch_add(1, Ordering::Relaxed) + 1;
        if self.refusal_log.due() {
            log::warn!(
                "server.max_connections reached: closing new connections ({refused} so far)"
            );
        }
    }

    fn head_timed_out(&self) {
        let timeouts = self.head_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if self.head_timeout_log.due() {
            log::warn!(
                "request heads not received within client_header_timeout: {timeouts} connection(s) closed so far"
            );
        }
    }

    /// Client connections accepted and served (those refused at the cap not counted).
    pub fn accepted_connections(&self) -> u64 {
        self.accepted_connections.load(Ordering::Relaxed)
    }

    /// Client connections being served now.
    pub fn active_connections(&self) -> u64 {
        self.active_connections.load(Ordering::Relaxed)
    }

    /// Connections closed at accept because `server.max_connections` were open.
    pub fn refused_connections(&self) -> u64 {
        self.refused_connections.load(Ordering::Relaxed)
    }

    /// Connections closed because a request head did not arrive in time.
    pub fn head_timeouts(&self) -> u64 {
        self.head_timeouts.load(Ordering::Relaxed)
    }

    /// Requests Pingora refused before the proxy saw their head (an unparseable head:
    /// 400; `CONNECT`: 405), answered with [`parser_answer`]'s JSON.
    pub fn parser_answers(&self) -> u64 {
        self.parser_answers.load(Ordering::Relaxed)
    }
}

/// The state one client connection shares between its stream and the proxy.
#[derive(Debug)]
pub struct Connection {
    /// Whether a request's head has been read and the request is not over yet.
    in_request: AtomicBool,
    /// `proxy.client_header_timeout` in milliseconds, refreshed by each request from the
    /// configuration it runs on.
    head_timeout_ms: AtomicU64,
    /// The peer's address as a header value (X-Forwarded-For, X-Real-IP), made by the
    /// connection's first request: the peer of a connection never changes.
    peer_value: std::sync::OnceLock<Option<http::HeaderValue>>,
}

impl Connection {
    fn new(head_timeout: Duration) -> Self {
        Connection {
            in_request: AtomicBool::new(false),
            head_timeout_ms: AtomicU64::new(millis(head_timeout)),
            peer_value: std::sync::OnceLock::new(),
        }
    }

    /// The peer's address as a header value, made by `make` once per connection.
    pub fn peer_value(
        &self,
        make: impl FnOnce() -> Option<http::HeaderValue>,
    ) -> Option<http::HeaderValue> {
        self.peer_value.get_or_init(make).clone()
    }

    /// The connection the current task serves, if it runs behind a [`GuardedApp`].
    pub fn current() -> Option<Arc<Connection>> {
        CONNECTION.try_with(Arc::clone).ok()
    }

    /// The request's head is complete: its deadline no longer applies. `head_timeout` is
    /// the one the next head on this connection gets.
    pub fn head_complete(&self, head_timeout: Duration) {
        self.head_timeout_ms
            .store(millis(head_timeout), Ordering::Relaxed);
        self.in_request.store(true, Ordering::Release);
    }

    /// The request is over: the next bytes start a new head, which has a deadline again.
    pub fn request_done(&self) {
        self.in_request.store(false, Ordering::Release);
    }

    fn awaiting_head(&self) -> bool {
        !self.in_request.load(Ordering::Acquire)
    }

    fn head_timeout(&self) -> Duration {
        Duration::from_millis(self.head_timeout_ms.load(Ordering::Relaxed))
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// A `ServerApp` that applies the connection cap and the head deadline around another.
pub struct GuardedApp<A> {
    inner: Arc<A>,
    /// One permit per connection served; `None` when there is no cap.
    slots: Option<Arc<Semaphore>>,
    /// The head timeout a new connection starts with.
    head_timeout: Arc<dyn Fn() -> Duration + Send + Sync>,
    counters: Arc<GuardCounters>,
    /// The HTTPS listeners' handshake slots, given back once a handshake is done.
    handshakes: Option<Arc<crate::tls_handshakes::HandshakeLimits>>,
}

impl<A> GuardedApp<A> {
    /// Guards `inner`: at most `max_connections` at once (0: no cap); `head_timeout` says
    /// what `proxy.client_header_timeout` is now.
    pub fn new(
        inner: A,
        max_connections: usize,
        head_timeout: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Self {
        let slots = (max_connections > 0)
            .then(|| Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))));
        GuardedApp {
            inner: Arc::new(inner),
            slots,
            head_timeout: Arc::new(head_timeout),
            counters: Arc::new(GuardCounters::default()),
            handshakes: None,
        }
    }

    /// Frees a connection's slot under `limits` (taken before its TLS handshake) when
    /// the connection reaches the app, its handshake done.
    pub fn with_handshake_limits(
        mut self,
        limits: Option<Arc<crate::tls_handshakes::HandshakeLimits>>,
    ) -> Self {
        self.handshakes = limits;
        self
    }

    /// Guards `inner` under the same cap, head timeout and counters as `self`: another
    /// app of the proxy (one with other server options, such as h2c) on other listeners,
    /// whose connections count towards the same `max_connections`.
    pub fn sharing_guards(&self, inner: A) -> Self {
        GuardedApp {
            inner: Arc::new(inner),
            slots: self.slots.clone(),
            head_timeout: self.head_timeout.clone(),
            counters: self.counters.clone(),
            handshakes: self.handshakes.clone(),
        }
    }

    /// What the guards refused so far.
    pub fn counters(&self) -> Arc<GuardCounters> {
        self.counters.clone()
    }
}

fn process_start() -> &'static std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now)
}

#[async_trait]
impl<A> ServerApp for GuardedApp<A>
where
    A: ServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if let Some(handshakes) = &self.handshakes {
            if stream.get_ssl().is_some() {
                handshakes.handshake_done(stream.id());
            }
        }
        let permit = match &self.slots {
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    self.counters.connection_refused();
                    return None;
                }
            },
            None => None,
        };
        let _active = ActiveConnection::start(&self.counters);
        let connection = Arc::new(Connection::new((self.head_timeout)()));
        let stream: Stream = Box::new(GuardedStream::new(
            stream,
            connection.clone(),
            permit,
            self.counters.clone(),
        ));
        CONNECTION
            .scope(connection, self.inner.process_new(stream, shutdown))
            .await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Counts a connection as accepted, and as active for as long as it lives.
struct ActiveConnection<'a>(&'a GuardCounters);

impl<'a> ActiveConnection<'a> {
    fn start(counters: &'a GuardCounters) -> Self {
        counters
            .accepted_connections
            .fetch_add(1, Ordering::Relaxed);
        counters.active_connections.fetch_add(1, Ordering::Relaxed);
        ActiveConnection(counters)
    }
}

impl Drop for ActiveConnection<'_> {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a connection say about its protocol.
#[derive(Debug, Default)]
struct Opening {
    /// Bytes seen so far that match the HTTP/2 preface.
    matched: usize,
    /// Decided: `Some(true)` for HTTP/2, `Some(false)` for anything else.
    decided: Option<bool>,
}

impl Opening {
    fn is_http2(&self) -> bool {
        self.decided == Some(true)
    }

    /// Feeds bytes just read; true once they have made up the HTTP/2 preface.
    fn see(&mut self, bytes: &[u8]) -> bool {
        if self.decided.is_none() {
            let want = &H2_PREFACE[self.matched..];
            let n = want.len().min(bytes.len());
            if bytes[..n] != want[..n] {
                self.decided = Some(false);
            } else {
                self.matched += n;
                if self.matched == H2_PREFACE.len() {
                    self.decided = Some(true);
                }
            }
        }
        self.is_http2()
    }
}

/// A client stream whose request heads must arrive within their deadline.
pub struct GuardedStream {
    inner: Stream,
    connection: Arc<Connection>,
    /// The running head's deadline: from the accept for the first head, else from the
    /// first time part of a head is in and the rest must be waited for; `None` otherwise.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether the running head has had any bytes (a 408 is owed if it times out).
    head_started: bool,
    /// The first bytes of the connection, until they tell HTTP/1 from the HTTP/2
    /// connection preface: an HTTP/2 connection's streams have no HTTP/1 head, so the
    /// deadline does not apply to it (its requests run on tasks of their own).
    opening: Opening,
    /// Held for as long as the connection is open.
    _permit: Option<OwnedSemaphorePermit>,
    counters: Arc<GuardCounters>,
    /// Set once Pingora wrote its own answer to a head the proxy never saw: the JSON
    /// written in its place ([`parser_answer`]). Pingora closes the connection after
    /// such an answer, so everything else it writes is dropped.
    replaced: Option<Replacement>,
}

/// The JSON answer written instead of Pingora's, and how much of it is out.
#[derive(Debug)]
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
}

impl Replacement {
    /// Writes what is left of the answer to `inner`.
    fn drain(&mut self, inner: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.bytes.len() {
            match Pin::new(&mut *inner).poll_write(cx, &self.bytes[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Kong's JSON answer for the status of `canned`, a response Pingora wrote by itself
/// (`HTTP/1.1 400 Bad Request`, empty body, `Server: Pingora`): `{"message":"Bad
/// request"}` for 400, `{"message":"Method not allowed"}` for 405, with
/// `Connection: close` as Pingora's had. `None` when `canned` does not start with an
/// HTTP/1 status line of a 4xx or 5xx.
pub fn parser_answer(canned: &[u8]) -> Option<Vec<u8>> {
    let line = canned.get(..12)?;
    if !line.starts_with(b"HTTP/1.") || line[8] != b' ' {
        return None;
    }
    let code: u16 = std::str::from_utf8(&line[9..12]).ok()?.parse().ok()?;
    if !(400..600).contains(&code) {
        return None;
    }
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = serde_json::json!({ "message": crate::respond::status_message(code) }).to_string();
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\n\
         Content-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         Server: pingway/{}\r\n\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION"),
    );
    Some([head.into_bytes(), body.into_bytes()].concat())
}

impl GuardedStream {
    fn new(
        inner: Stream,
        connection: Arc<Connection>,
        permit: Option<OwnedSemaphorePermit>,
        counters: Arc<GuardCounters>,
    ) -> Self {
        // The first head's clock starts at the accept: a connection that never sends
        // anything is a slowloris too.
        let deadline = Some(Box::pin(tokio::time::sleep(connection.head_timeout())));
        GuardedStream {
            inner,
            connection,
            deadline,
            head_started: false,
            opening: Opening::default(),
            _permit: permit,
            counters,
            replaced: None,
        }
    }

    /// Whether `first` (the start of a write) is Pingora's own answer to a head the
    /// proxy never saw; if so, its replacement is set up and counted.
    fn replaces(&mut self, first: &[u8]) -> bool {
        if self.replaced.is_some() {
            return true;
        }
        // The proxy marks each head it receives; a response written while none is
        // marked, on an HTTP/1 connection, is one Pingora wrote on its own.
        if !self.connection.awaiting_head() || self.opening.is_http2() {
            return false;
        }
        let Some(bytes) = parser_answer(first) else {
            return false;
        };
        self.counters.parser_answers.fetch_add(1, Ordering::Relaxed);
        self.replaced = Some(Replacement { bytes, written: 0 });
        true
    }

    /// Writes what is left of a replacement answer (nothing to do without one).
    fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.replaced {
            Some(r) => r.drain(&mut self.inner, cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// The head's deadline passed: a 408 if part of it came (best effort, without
    /// waiting), then end the read.
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.counters.head_timed_out();
        self.deadline = None;
        if !self.head_started {
            // Nothing of a request came: end of stream, closed quietly.
            return Poll::Ready(Ok(()));
        }
        let _ = Pin::new(&mut self.inner).poll_write(cx, HEAD_TIMEOUT_RESPONSE);
        let _ = Pin::new(&mut self.inner).poll_flush(cx);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            HEAD_TIMEOUT_MARKER,
        )))
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let awaiting = this.connection.awaiting_head() && !this.opening.is_http2();
        if !awaiting {
            this.deadline = None;
            this.head_started = false;
        } else if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return this.head_timed_out(cx);
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if !awaiting {
            return read;
        }
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                if this.opening.see(&buf.filled()[before..]) {
                    // HTTP/2: no head deadline for this connection.
                    this.deadline = None;
                    return read;
                }
                this.head_started = true;
            }
            Poll::Pending if this.head_started && this.deadline.is_none() => {
                // Part of a head came and the rest is awaited: its deadline runs from
                // now. A head that comes whole in one read (the usual case) never needs
                // a timer. A later request's idle time before its first byte is the
                // keep-alive timeout's business.
                let mut deadline = Box::pin(tokio::time::sleep(this.connection.head_timeout()));
                if deadline.as_mut().poll(cx).is_ready() {
                    return this.head_timed_out(cx);
                }
                this.deadline = Some(deadline);
            }
            _ => {}
        }
        read
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replaces(buf) {
            // Pingora's bytes are taken and dropped; the answer goes out in their place
            // (what a full socket leaves is written at the flush or the shutdown).
            if let Poll::Ready(Err(e)) = this.drain_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.drain_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if this.replaces(first) {
            if let Poll::Ready(Err(e)) = this.drain_replacement(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        // A replacement answer still owed goes out before the close, unless the client
        // does not take ~150 bytes within REPLACEMENT_DRAIN.
        let drain = std::future::poll_fn(|cx| self.drain_replacement(cx));
        let _ = tokio::time::timeout(REPLACEMENT_DRAIN, drain).await;
        self.inner.shutdown().await
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for GuardedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for GuardedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedStream")
            .field("inner", &self.inner)
            .field("awaiting_head", &self.connection.awaiting_head())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_timeout_response_is_well_framed_json() {
        let text = std::str::from_utf8(HEAD_TIMEOUT_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(body.len(), length);
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["message"], "Request timeout");
    }

    #[test]
    fn parser_answers_are_well_framed_json_for_error_status_lines_only() {
        let canned = b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nContent-Length: 0\r\n\r\n";
        let answer = String::from_utf8(parser_answer(canned).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(!head.contains("Pingora"), "{head}");
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap();
        assert_eq!(length.parse::<usize>().unwrap(), body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["message"], "Bad request");
        let answer = parser_answer(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").unwrap();
        assert!(String::from_utf8(answer)
            .unwrap()
            .ends_with("{\"message\":\"Method not allowed\"}"));
        // Not an error status line: left alone.
        for other in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 101 Switching Protocols\r\n",
            b"\x00\x00\x12\x04\x00\x00\x00\x00\x00",
            b"HTTP/1.1 4",
            b"HTTP/1.1 4x0 Odd\r\n",
            b"",
        ] {
            assert!(parser_answer(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn apps_sharing_guards_share_the_cap_and_the_counters() {
        let first = GuardedApp::new((), 2, || Duration::from_secs(7));
        let second = first.sharing_guards(());
        assert!(Arc::ptr_eq(&first.counters(), &second.counters()));
        let (Some(a), Some(b)) = (&first.slots, &second.slots) else {
            panic!("a cap of 2 has slots");
        };
        assert!(Arc::ptr_eq(a, b));
        let _held = a.clone().try_acquire_owned().unwrap();
        assert_eq!(b.available_permits(), 1);
        assert_eq!((second.head_timeout)(), Duration::from_secs(7));
    }

    /// A guarded server side of a real loopback connection, and its client side.
    async fn pair(head_timeout: Duration) -> (GuardedStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let stream: Stream = Box::new(pingora_core::protocols::l4::stream::Stream::from(server));
        let guarded = GuardedStream::new(
            stream,
            Arc::new(Connection::new(head_timeout)),
            None,
            Arc::new(GuardCounters::default()),
        );
        (guarded, client)
    }

    /// With the clock paused, time jumps to the next timer whenever every task waits, so
    /// "the deadline passed" needs no real waiting.
    #[tokio::test(start_paused = true)]
    async fn an_unfinished_http1_head_times_out_and_an_http2_connection_does_not() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 64];

        let (mut server, mut client) = pair(Duration::from_secs(60)).await;
        client.write_all(b"GET / HT").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 8);
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 408"));

        let (mut server, mut client) = pair(Duration::from_secs(60)).await;
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        server.read_exact(&mut buf[..10]).await.unwrap();
        client.write_all(&H2_PREFACE[10..]).await.unwrap();
        server.read_exact(&mut buf[..14]).await.unwrap();
        // An hour of silence later, the read is still waiting: no head deadline.
        let waited = tokio::time::timeout(Duration::from_secs(3600), server.read(&mut buf)).await;
        assert!(waited.is_err(), "the HTTP/2 connection was cut: {waited:?}");
    }

    #[test]
    fn the_http2_preface_is_recognised_however_it_is_split() {
        let mut o = Opening::default();
        assert!(!o.see(b"PRI * HTTP/"));
        assert!(o.see(b"2.0\r\n\r\nSM\r\n\r\nextra"));
        let mut o = Opening::default();
        assert!(!o.see(b"GET / HTTP/1.1\r\n"));
        assert!(!o.see(H2_PREFACE));
    }

    #[test]
    fn flood_logs_open_at_most_once_per_ten_seconds() {
        let gate = EveryTenSeconds::default();
        assert!(gate.due());
        assert!(!gate.due());
        assert!(!gate.due());
    }
}
