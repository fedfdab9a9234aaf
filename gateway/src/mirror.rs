//! Request mirroring (`routes[].mirrors`): a copy of a share of a route's requests, body
//! included, goes to a shadow upstream — an Istio VirtualService's `mirrors`, Envoy's
//! request mirror policies.
//!
//! Fire and forget: the copy runs on its own task; the client's request never waits for
//! it, whatever the shadow does. The copy is the request as the primary upstream gets it
//! (after the route's and the plugins' edits), with `-shadow` appended to its `Host`, as
//! Envoy does, so a shadow can tell copies from live traffic.
//!
//! Bounds: at most `max_in_flight` copies per mirror run at once (a request drawn while
//! that many run is not copied, and counted as dropped); the body is streamed through a
//! queue of at most [`MAX_QUEUED_BODY`] bytes per copy: a shadow that reads slower than
//! the client sends abandons its copy (dropped too) rather than buffer the body or slow
//! the client. Outcomes are counted per mirror ([`MirrorStats`]), never logged per request.
//!
//! A shadow that refuses connections is not dialled for every request: after
//! [`PAUSE_AFTER_FAILURES`] connect failures in a row the mirror pauses its copies for a
//! second, doubling while the shadow keeps refusing (at most [`MAX_PAUSE`]), and resumes
//! with the first connection that succeeds ([`ConnectBreaker`]). Paused copies are counted.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderValue;
use pingora_core::connectors::http::Connector;
use pingora_http::RequestHeader;
use tokio::sync::mpsc;

use crate::config::MirrorConfig;
use crate::upstream::{SelectRequest, Upstream};

/// Body bytes queued for one copy before it is abandoned as too slow (1 MiB): with
/// `max_in_flight` copies, a mirror holds at most that many times this.
pub const MAX_QUEUED_BODY: usize = 1 << 20;

/// Connect failures in a row after which a mirror pauses its copies.
pub const PAUSE_AFTER_FAILURES: u32 = 5;

/// The first pause; each pause that ends in another run of failures doubles it.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(30);

/// How long a copy's connection may idle in the pool after its response.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// One compiled `routes[].mirrors[]` entry.
pub struct Mirror {
    upstream: Arc<Upstream>,
    /// Share copied, in millionths.
    per_million: u32,
    max_in_flight: u32,
    in_flight: Arc<AtomicU32>,
    stats: Arc<MirrorStats>,
    breaker: Arc<ConnectBreaker>,
}

/// What became of a mirror's copies since the configuration that defined it was loaded.
#[derive(Debug, Default)]
pub struct MirrorStats {
    /// Copies that got a response below 500 from the shadow.
    pub completed: AtomicU64,
    /// Copies that failed: no target, connect or I/O error, timeout, or a 5xx.
    pub failed: AtomicU64,
    /// Requests drawn but not copied: `max_in_flight` reached, or the shadow fell
    /// [`MAX_QUEUED_BODY`] behind the client's body.
    pub dropped: AtomicU64,
    /// Requests drawn but not copied because the shadow refused connections
    /// [`PAUSE_AFTER_FAILURES`] times in a row (see [`ConnectBreaker`]).
    pub paused: AtomicU64,
}

/// Pauses a mirror's copies while its shadow refuses connections, so a shadow that is
/// down costs a few failed connects, not one per request.
#[derive(Debug)]
pub struct ConnectBreaker {
    /// Connect failures since the last success or pause.
    failures: AtomicU32,
    /// Until when copies pause, in ms on [`clock_ms`]'s clock (0: not paused).
    paused_until: AtomicU64,
    /// The next pause's length, in ms.
    next_pause: AtomicU64,
}

impl Default for ConnectBreaker {
    fn default() -> Self {
        ConnectBreaker {
            failures: AtomicU32::new(0),
            paused_until: AtomicU64::new(0),
            next_pause: AtomicU64::new(FIRST_PAUSE.as_millis() as u64),
        }
    }
}

impl ConnectBreaker {
    /// Whether copies pause at `now_ms`.
    pub fn paused(&self, now_ms: u64) -> bool {
        let until = self.paused_until.load(Ordering::Acquire);
        until != 0 && now_ms < until
    }

    /// Whether copies pause now; reads the clock only while a pause is set.
    fn paused_now(&self) -> bool {
        self.paused_until.load(Ordering::Acquire) != 0 && self.paused(clock_ms())
    }

    /// A copy connected: the run of failures ends and pauses start short again.
    pub fn connected(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        let first = FIRST_PAUSE.as_millis() as u64;
        if self.next_pause.load(Ordering::Relaxed) != first {
            self.next_pause.store(first, Ordering::Relaxed);
        }
    }

    /// A copy could not connect at `now_ms`: the run grows, and pauses the copies once
    /// it is [`PAUSE_AFTER_FAILURES`] long.
    /// Failures of copies that started before a pause do not lengthen it.
    pub fn connect_failed(&self, now_ms: u64) {
        if self.paused(now_ms) {
            return;
        }
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= PAUSE_AFTER_FAILURES {
            self.failures.store(0, Ordering::Release);
            let pause = self.next_pause.load(Ordering::Acquire);
            self.paused_until.store(now_ms + pause, Ordering::Release);
            let longer = (pause * 2).min(MAX_PAUSE.as_millis() as u64);
            self.next_pause.store(longer, Ordering::Release);
        }
    }
}

/// Milliseconds on a monotonic clock started with the first call (never 0).
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    start.elapsed().as_millis() as u64 + 1
}

impl Mirror {
    /// Compiles `cfg`; `None` when its upstream is unknown (reported by validation).
    pub fn compile(
        cfg: &MirrorConfig,
        upstream: impl Fn(&str) -> Option<Arc<Upstream>>,
    ) -> Option<Mirror> {
        let percentage = cfg.percentage.clamp(0.0, 100.0);
        Some(Mirror {
            upstream: upstream(&cfg.upstream)?,
            per_million: (percentage * 10_000.0).round() as u32,
            max_in_flight: cfg.max_in_flight.max(1),
            in_flight: Arc::new(AtomicU32::new(0)),
            stats: Arc::new(MirrorStats::default()),
            breaker: Arc::new(ConnectBreaker::default()),
        })
    }

    /// The shadow upstream's name.
    pub fn upstream_name(&self) -> &str {
        self.upstream.name()
    }

    /// The outcome counters.
    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }

    /// Copies running now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Draws whether this request is copied and, if so, takes a place among the copies
    /// in flight (`None`: not drawn, or no place left, which counts as dropped).
    pub fn draw(&self) -> Option<PendingCopy> {
        let drawn = self.per_million >= 1_000_000 || fastrand::u32(..1_000_000) < self.per_million;
        if !drawn {
            return None;
        }
        if self.breaker.paused_now() {
            self.stats.paused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_in_flight).then_some(n + 1)
            });
        if taken.is_err() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(PendingCopy {
            upstream: self.upstream.clone(),
            stats: self.stats.clone(),
            breaker: self.breaker.clone(),
            _slot: Slot(self.in_flight.clone()),
        })
    }
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("upstream", &self.upstream.name())
            .field("per_million", &self.per_million)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// A place among a mirror's copies in flight, given back on drop.
struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A copy drawn for a request, waiting for the request head the upstream will get.
pub struct PendingCopy {
    upstream: Arc<Upstream>,
    stats: Arc<MirrorStats>,
    breaker: Arc<ConnectBreaker>,
    _slot: Slot,
}

/// A piece of the body for a copy.
enum Chunk {
    Data(Bytes),
    End,
}

/// The client side of a running copy whose body is still streaming. Dropped before the
/// end of the body (the client's request ended early, or was retried), it abandons the
/// copy, counted as dropped.
pub struct BodyFeed {
    tx: Option<mpsc::UnboundedSender<Chunk>>,
    /// Bytes sent to the copy's task and not yet written to the shadow.
    queued: Arc<AtomicUsize>,
    stats: Arc<MirrorStats>,
}

impl BodyFeed {
    /// Passes a chunk of the request body on, and the end of it when `end`. A copy
    /// that fell [`MAX_QUEUED_BODY`] behind is abandoned (counted as dropped). Returns
    /// whether the feed still wants the rest of the body.
    pub fn feed(&mut self, chunk: Option<&Bytes>, end: bool) -> bool {
        if let Some(data) = chunk.filter(|c| !c.is_empty()) {
            self.push(Chunk::Data(data.clone()));
        }
        if end {
            self.push(Chunk::End);
            // Done: whatever happened, nothing more to send.
            self.tx = None;
        }
        self.tx.is_some()
    }

    fn push(&mut self, chunk: Chunk) {
        let Some(tx) = &self.tx else { return };
        if let Chunk::Data(data) = &chunk {
            let queued = self.queued.fetch_add(data.len(), Ordering::AcqRel) + data.len();
            if queued > MAX_QUEUED_BODY {
                // Dropping the sender without `End` makes the task abandon the copy.
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.tx = None;
                return;
            }
        }
        if tx.send(chunk).is_err() {
            // The copy already ended (it failed, and was counted then).
            self.tx = None;
        }
    }
}

impl Drop for BodyFeed {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The connector copies go through: one pool of keep-alive connections to shadows for
/// the process.
fn connector() -> &'static Connector {
    static CONNECTOR: OnceLock<Connector> = OnceLock::new();
    CONNECTOR.get_or_init(|| Connector::new(None))
}

impl PendingCopy {
    /// Starts the copy of a request whose upstream head is `head`, on its own task.
    /// Returns the feed for its body when the request has one (`has_body`).
    ///
    /// `client_host` is the client's `Host` when the route preserves it; otherwise the
    /// shadow target's own host is used. Either way `-shadow` is appended to the host.
    pub fn start(
        self,
        head: &RequestHeader,
        client_host: Option<&HeaderValue>,
        client_ip: IpAddr,
        has_body: bool,
    ) -> Option<BodyFeed> {
        let (tx, rx) = if has_body {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let queued = Arc::new(AtomicUsize::new(0));
        let task_queued = queued.clone();
        let head = head.clone();
        let client_host = client_host.cloned();
        let stats = self.stats.clone();
        tokio::spawn(async move {
            let outcome = self
                .send(head, client_host, client_ip, rx, &task_queued)
                .await;
            let counter = match outcome {
                Outcome::Completed => &self.stats.completed,
                Outcome::Failed => &self.stats.failed,
                // Counted by the feed that gave up.
                Outcome::Abandoned => return,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        tx.map(|tx| BodyFeed {
            tx: Some(tx),
            queued,
            stats,
        })
    }

    async fn send(
        &self,
        mut head: RequestHeader,
        client_host: Option<HeaderValue>,
        client_ip: IpAddr,
        body: Option<mpsc::UnboundedReceiver<Chunk>>,
        queued: &AtomicUsize,
    ) -> Outcome {
        let selected = self.upstream.select(
            &SelectRequest {
                client_ip,
                header: &head,
            },
            &[],
        );
        let Some(selected) = selected else {
            return Outcome::Failed;
        };
        let host = match &client_host {
            Some(h) => h.clone(),
            None => match self.upstream.targets().get(selected.index) {
                Some(t) => t.host_header().clone(),
                None => return Outcome::Failed,
            },
        };
        if let Some(shadow) = shadow_host(&host) {
            // The header map is already valid; only a bad value could fail here.
            if head.insert_header(http::header::HOST, shadow).is_err() {
                return Outcome::Failed;
            }
        }
        let peer = self.upstream.peer(&selected);
        let Ok((mut session, _reused)) = connector().get_http_session(&*peer).await else {
            self.breaker.connect_failed(clock_ms());
            return Outcome::Failed;
        };
        self.breaker.connected();
        if session.write_request_header(Box::new(head)).await.is_err() {
            return Outcome::Failed;
        }
        if let Some(mut rx) = body {
            loop {
                match rx.recv().await {
                    Some(Chunk::Data(data)) => {
                        let len = data.len();
                        let written = session.write_request_body(data, false).await;
                        queued.fetch_sub(len, Ordering::AcqRel);
                        if written.is_err() {
                            return Outcome::Failed;
                        }
                    }
                    Some(Chunk::End) => break,
                    // The feed went away without the end: the client's request ended
                    // early or the copy fell behind. The half-sent request is dropped
                    // with its connection.
                    None => return Outcome::Abandoned,
                }
            }
        }
        if session.finish_request_body().await.is_err()
            || session.read_response_header().await.is_err()
        {
            return Outcome::Failed;
        }
        let status = session.response_header().map_or(0, |h| h.status.as_u16());
        // The shadow's body is read and discarded, so its connection can be reused.
        loop {
            match session.read_response_body().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return Outcome::Failed,
            }
        }
        connector()
            .release_http_session(session, &*peer, Some(POOL_IDLE))
            .await;
        drop(selected);
        if (100..500).contains(&status) {
            Outcome::Completed
        } else {
            Outcome::Failed
        }
    }
}

/// How a copy ended.
enum Outcome {
    Completed,
    Failed,
    Abandoned,
}

/// `host-shadow`, with the port kept after it (`api:8080` → `api-shadow:8080`); a
/// bracketed IPv6 literal is left as it is.
fn shadow_host(host: &HeaderValue) -> Option<HeaderValue> {
    let host = host.to_str().ok()?;
    if host.starts_with('[') {
        return None;
    }
    let shadowed = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{host}-shadow"),
    };
    HeaderValue::from_str(&shadowed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_pauses_after_a_run_of_failures_doubles_and_resets() {
        let b = ConnectBreaker::default();
        let first = FIRST_PAUSE.as_millis() as u64;
        for _ in 1..PAUSE_AFTER_FAILURES {
            b.connect_failed(10);
        }
        assert!(!b.paused(10), "one failure short of the run");
        b.connect_failed(10);
        assert!(b.paused(11));
        // Copies that started before the pause fail during it: no longer pause.
        for _ in 0..20 {
            b.connect_failed(12);
        }
        assert!(b.paused(10 + first - 1));
        assert!(!b.paused(10 + first));
        // Still refusing after the pause: the next pause is twice as long.
        let t = 10 + first;
        for _ in 0..PAUSE_AFTER_FAILURES {
            b.connect_failed(t);
        }
        assert!(b.paused(t + 2 * first - 1));
        assert!(!b.paused(t + 2 * first));
        // A success ends the run and the pauses start short again.
        b.connected();
        let t = t + 2 * first;
        for _ in 1..PAUSE_AFTER_FAILURES {
            b.connect_failed(t);
        }
        b.connected();
        b.connect_failed(t);
        assert!(!b.paused(t), "the run was broken by a success");
        for _ in 1..PAUSE_AFTER_FAILURES {
            b.connect_failed(t);
        }
        assert!(b.paused(t + first - 1));
        assert!(!b.paused(t + first));
    }

    #[test]
    fn pauses_stop_growing_at_the_maximum() {
        let b = ConnectBreaker::default();
        let mut t = 1;
        for _ in 0..20 {
            for _ in 0..PAUSE_AFTER_FAILURES {
                b.connect_failed(t);
            }
            assert!(b.paused(t));
            let mut len = 0;
            while b.paused(t + len) {
                len += 500;
            }
            assert!(len <= MAX_PAUSE.as_millis() as u64 + 500, "{len}");
            t += len;
        }
        assert!(!b.paused(t));
    }

    #[test]
    fn the_shadow_suffix_goes_before_the_port() {
        let cases = [
            ("api.example.com", Some("api.example.com-shadow")),
            ("api.example.com:8080", Some("api.example.com-shadow:8080")),
            ("127.0.0.1:9000", Some("127.0.0.1-shadow:9000")),
            ("[::1]:80", None),
        ];
        for (host, want) in cases {
            let got = shadow_host(&HeaderValue::from_static(host));
            assert_eq!(got.as_ref().and_then(|v| v.to_str().ok()), want, "{host}");
        }
    }
}
