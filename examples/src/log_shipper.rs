//! `log-shipper`: ships one JSON line per request to a collector, in batches, from a
//! background task; flushes what is queued when the process stops.
//!
//! ```yaml
//! plugins:
//!   - name: log-shipper
//!     config:
//!       url: http://collector.internal:9880/ingest
//!       queue_size: 10000
//!       batch_size: 100
//!       flush_interval: 5s
//! ```
//!
//! The parts, and why:
//!
//! - `on_log` builds the line and `try_send`s it into a bounded queue (`queue_size`
//!   lines). It never waits: a full queue drops the line and counts it
//!   ([`LogShipper::dropped`]).
//! - A task spawned at build on the plugin [`Lifecycle`] runtime owns the queue's
//!   receiver and a reqwest client. It sends a batch (newline-delimited JSON, one POST)
//!   when `batch_size` lines are waiting or every `flush_interval`. A failed POST is
//!   logged (at most once per 10 s) and its lines are dropped and counted, not retried:
//!   memory stays bounded by the queue and one batch.
//! - The task holds nothing of the instance but the receivers: when a reload drops the
//!   instance, the senders go with it, the task sends what is left and ends.
//! - [`Plugin::drain`] (at SIGTERM, within `server.grace_period`) asks the task, over a
//!   control channel, to send everything queued now, and waits for its acknowledgement
//!   for at most `drain_timeout`. From then on the task sends each line as it comes, so
//!   requests that finish during the grace period are shipped too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingway::plugins::{
    async_trait, BuildContext, BuildPlugin, ConfigError, Lifecycle, LogEntry, Plugin,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config_duration::ConfigDuration;
use crate::log_throttle::LogThrottle;

/// The largest `queue_size` accepted (lines kept in memory while the collector is slow).
pub const MAX_QUEUE_SIZE: usize = 1_000_000;

/// `log-shipper` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogShipperConfig {
    /// The collector's URL (`http://`); batches are POSTed there.
    pub url: String,
    /// Lines waiting to be sent, at most (default 10000); more are dropped and counted.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Lines per POST, at most (default 100).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Send what is waiting at least this often (default 5s).
    #[serde(default = "default_flush_interval")]
    pub flush_interval: ConfigDuration,
    /// How long one POST may take (default 5s).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// How long the shutdown flush may take (default 5s; the gateway's
    /// `server.grace_period` bounds it too).
    #[serde(default = "default_timeout")]
    pub drain_timeout: ConfigDuration,
}

fn default_queue_size() -> usize {
    10_000
}

fn default_batch_size() -> usize {
    100
}

fn default_flush_interval() -> ConfigDuration {
    ConfigDuration::from_millis(5_000)
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_millis(5_000)
}

/// One shipped line.
#[derive(Debug, Serialize)]
pub struct ShippedEntry<'a> {
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub time: u64,
    /// The request id (also sent upstream and to the client).
    pub request_id: &'a str,
    /// The method.
    pub method: &'a str,
    /// The path, without the query (which may carry secrets).
    pub path: &'a str,
    /// The status the client got (0 if none could be sent).
    pub status: u16,
    /// The upstream's name, if the request got that far.
    pub upstream: Option<&'a str>,
    /// The target that served it, if one was reached.
    pub target: Option<String>,
    /// Time from arrival to the end of the response, in milliseconds.
    pub latency_ms: u64,
    /// The consumer's username, when an auth plugin identified one.
    pub consumer: Option<&'a str>,
}

impl<'a> ShippedEntry<'a> {
    /// The line for `entry`.
    pub fn of(entry: &'a LogEntry<'a>) -> Self {
        let arrived = SystemTime::now()
            .checked_sub(entry.total_latency)
            .unwrap_or_else(SystemTime::now);
        ShippedEntry {
            time: millis(arrived.duration_since(UNIX_EPOCH).unwrap_or_default()),
            request_id: entry.ctx.request_id.as_str(),
            method: entry.request.method.as_str(),
            path: entry.request.uri.path(),
            status: entry.status,
            upstream: entry.upstream,
            target: entry.upstream_addr.map(|a| a.to_string()),
            latency_ms: millis(entry.total_latency),
            consumer: entry.ctx.consumer().and_then(|c| c.username.as_deref()),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Counters shared by the instance and its task.
#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    failed: AtomicU64,
    shipped: AtomicU64,
}

/// The `log-shipper` plugin.
#[derive(Debug)]
pub struct LogShipper {
    lines: mpsc::Sender<Vec<u8>>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
    drain_timeout: Duration,
    counters: Arc<Counters>,
}

impl LogShipper {
    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Lines whose POST failed.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Lines the collector accepted.
    pub fn shipped(&self) -> u64 {
        self.counters.shipped.load(Ordering::Relaxed)
    }

    /// Builds the instance and spawns its task on `lifecycle`.
    fn start(config: Checked, lifecycle: &Lifecycle) -> Self {
        let (lines, lines_rx) = mpsc::channel(config.queue_size);
        // One pending flush request is enough: drain is called once per instance.
        let (flush, flush_rx) = mpsc::channel(1);
        let counters = Arc::new(Counters::default());
        let drain_timeout = config.drain_timeout;
        let task = Shipper {
            client: config.client,
            url: config.url,
            timeout: config.timeout,
            batch_size: config.batch_size,
            counters: Arc::clone(&counters),
            throttle: LogThrottle::new(Duration::from_secs(10)),
        };
        lifecycle.spawn(task.run(lines_rx, flush_rx, config.flush_interval));
        LogShipper {
            lines,
            flush,
            drain_timeout,
            counters,
        }
    }
}

#[async_trait]
impl Plugin for LogShipper {
    fn on_log(&self, entry: &LogEntry<'_>) {
        let Ok(line) = serde_json::to_vec(&ShippedEntry::of(entry)) else {
            return;
        };
        if self.lines.try_send(line).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn drain(&self) {
        let (ack, done) = oneshot::channel();
        let flushed = async {
            if self.flush.send(ack).await.is_ok() {
                let _ = done.await;
            }
        };
        if tokio::time::timeout(self.drain_timeout, flushed)
            .await
            .is_err()
        {
            log::warn!(
                "log-shipper: the shutdown flush did not finish within {:?}",
                self.drain_timeout
            );
        }
    }
}

/// The background task's state: what it needs to send, nothing of the instance.
struct Shipper {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    batch_size: usize,
    counters: Arc<Counters>,
    throttle: LogThrottle,
}

impl Shipper {
    async fn run(
        self,
        mut lines: mpsc::Receiver<Vec<u8>>,
        mut flush: mpsc::Receiver<oneshot::Sender<()>>,
        every: Duration,
    ) {
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(self.batch_size);
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut flush_open = true;
        // Once drained, the process is stopping: requests still finishing within the
        // grace period log too, and their lines are sent at once rather than batched.
        let mut draining = false;
        loop {
            tokio::select! {
                // A flush request first, so that drain is not kept waiting by traffic.
                biased;
                request = flush.recv(), if flush_open => match request {
                    Some(ack) => {
                        draining = true;
                        self.send_queued(&mut batch, &mut lines).await;
                        let _ = ack.send(());
                    }
                    None => flush_open = false,
                },
                line = lines.recv() => match line {
                    Some(line) => {
                        self.push(&mut batch, line).await;
                        if draining {
                            self.send_queued(&mut batch, &mut lines).await;
                        }
                    }
                    None => {
                        // The instance is gone (a reload, or the end): send the rest.
                        self.send(&mut batch).await;
                        return;
                    }
                },
                _ = ticker.tick() => self.send(&mut batch).await,
            }
        }
    }

    /// Sends the batch and everything waiting in the queue now.
    async fn send_queued(&self, batch: &mut Vec<Vec<u8>>, lines: &mut mpsc::Receiver<Vec<u8>>) {
        while let Ok(line) = lines.try_recv() {
            self.push(batch, line).await;
        }
        self.send(batch).await;
    }

    async fn push(&self, batch: &mut Vec<Vec<u8>>, line: Vec<u8>) {
        batch.push(line);
        if batch.len() >= self.batch_size {
            self.send(batch).await;
        }
    }

    /// POSTs `batch` as newline-delimited JSON and empties it, whatever the outcome.
    async fn send(&self, batch: &mut Vec<Vec<u8>>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let mut body = Vec::with_capacity(batch.iter().map(|l| l.len() + 1).sum());
        for line in batch.drain(..) {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .timeout(self.timeout)
            .send()
            .await;
        let problem = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the collector answered {}", r.status())),
            Err(e) => Some(format!("cannot reach the collector: {e}")),
        };
        match problem {
            None => {
                self.counters.shipped.fetch_add(n, Ordering::Relaxed);
            }
            Some(problem) => {
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                if let Some(held_back) = self.throttle.permit() {
                    log::warn!(
                        "log-shipper: {problem}; {n} lines dropped ({held_back} more such failures since the last warning)"
                    );
                }
            }
        }
    }
}

/// A configuration checked and turned into what the task needs.
struct Checked {
    client: reqwest::Client,
    url: reqwest::Url,
    queue_size: usize,
    batch_size: usize,
    flush_interval: Duration,
    timeout: Duration,
    drain_timeout: Duration,
}

fn check(config: LogShipperConfig) -> Result<Checked, ConfigError> {
    let url = reqwest::Url::parse(&config.url)
        .ok()
        .filter(|u| u.scheme() == "http" && u.host().is_some())
        .ok_or_else(|| {
            ConfigError::new(
                "url",
                format!("{:?} is not an http:// URL with a host", config.url),
            )
        })?;
    if config.queue_size == 0 || config.queue_size > MAX_QUEUE_SIZE {
        return Err(ConfigError::new(
            "queue_size",
            format!("between 1 and {MAX_QUEUE_SIZE}"),
        ));
    }
    if config.batch_size == 0 || config.batch_size > config.queue_size {
        return Err(ConfigError::new("batch_size", "between 1 and queue_size"));
    }
    for (field, d) in [
        ("flush_interval", config.flush_interval),
        ("timeout", config.timeout),
        ("drain_timeout", config.drain_timeout),
    ] {
        if d.get().is_zero() {
            return Err(ConfigError::new(field, "must be more than zero"));
        }
    }
    // No I/O: connections open when the first batch is sent.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| ConfigError::new("", format!("cannot create the HTTP client: {e}")))?;
    Ok(Checked {
        client,
        url,
        queue_size: config.queue_size,
        batch_size: config.batch_size,
        flush_interval: config.flush_interval.get(),
        timeout: config.timeout.get(),
        drain_timeout: config.drain_timeout.get(),
    })
}

impl BuildPlugin for LogShipper {
    const NAME: &'static str = "log-shipper";
    /// Logging last, as Kong's loggers (`http-log` is 12).
    const PRIORITY: i32 = 12;
    type Config = LogShipperConfig;

    fn build(config: LogShipperConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let checked = check(config)?;
        let lifecycle = cx
            .lifecycle()
            .ok_or_else(|| ConfigError::new("", "no runtime for the background task"))?;
        Ok(LogShipper::start(checked, &lifecycle))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pingway::plugins::testkit::TestRequest;
    use pingway::plugins::{Consumer, PluginScope, RequestCtx, RequestId};
    use tokio::sync::watch;

    use super::*;

    fn config(url: &str, queue_size: usize) -> LogShipperConfig {
        serde_json::from_value(serde_json::json!({
            "url": url,
            "queue_size": queue_size,
            "batch_size": 1,
            "flush_interval": "1h",
            "timeout": "2s",
            "drain_timeout": "5s",
        }))
        .unwrap()
    }

    #[test]
    fn the_line_has_the_request_and_no_query() {
        let (mut parts, ()) = pingway::plugins::http::Request::new(()).into_parts();
        parts.uri = "/orders/7?token=secret".parse().unwrap();
        let mut ctx = RequestCtx::new(
            RequestId::new("req-1").unwrap(),
            "192.0.2.1".parse().unwrap(),
            None,
        );
        let alice = Consumer::new("c1".into(), Some("alice".into()), None, Arc::from([]));
        ctx.set_identity(Arc::new(alice), Some("key-1".into()));
        let mut entry = LogEntry::new(&parts, &ctx, Duration::from_millis(12));
        entry.status = 201;
        entry.upstream = Some("orders");
        entry.upstream_addr = Some("127.0.0.1:9001".parse().unwrap());
        let line: serde_json::Value = serde_json::to_value(ShippedEntry::of(&entry)).unwrap();
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["method"], "GET");
        assert_eq!(line["path"], "/orders/7");
        assert_eq!(line["status"], 201);
        assert_eq!(line["upstream"], "orders");
        assert_eq!(line["target"], "127.0.0.1:9001");
        assert_eq!(line["latency_ms"], 12);
        assert_eq!(line["consumer"], "alice");
        assert!(line["time"].as_u64().unwrap() > 1_600_000_000_000);
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        // A runtime nobody drives: the task never takes anything off the queue.
        let idle = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (_stop, stopping) = watch::channel(false);
        let lifecycle = Lifecycle::new(idle.handle().clone(), stopping);
        let cx = BuildContext::new(PluginScope::Global).with_lifecycle(&lifecycle);
        let p = LogShipper::build(config("http://127.0.0.1:1/", 2), &cx).unwrap();
        let req = TestRequest::get("/a");
        for _ in 0..5 {
            req.log(&p, 200, Duration::from_millis(1));
        }
        assert_eq!(p.dropped(), 3);
    }

    #[tokio::test]
    async fn drain_sends_what_is_queued_then_each_line_as_it_comes() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (_stop, stopping) = watch::channel(false);
        let lifecycle = Lifecycle::new(tokio::runtime::Handle::current(), stopping);
        let cx = BuildContext::new(PluginScope::Global).with_lifecycle(&lifecycle);
        let mut c = config(&format!("http://127.0.0.1:{port}/"), 100);
        c.batch_size = 100;
        let p = LogShipper::build(c, &cx).unwrap();
        let req = TestRequest::get("/a");
        for _ in 0..3 {
            req.log(&p, 200, Duration::from_millis(1));
        }
        // Nothing listens: the flush is attempted, fails, and is counted.
        p.drain().await;
        assert_eq!(p.failed(), 3);
        assert_eq!(p.shipped(), 0);
        assert_eq!(p.dropped(), 0);
        // After the drain, a line is sent as it comes (no batch, no interval).
        req.log(&p, 200, Duration::from_millis(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while p.failed() < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "the line was not sent"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn dropping_the_instance_sends_the_rest_and_ends_the_task() {
        let (_stop, stopping) = watch::channel(false);
        let lifecycle = Lifecycle::new(tokio::runtime::Handle::current(), stopping);
        let cx = BuildContext::new(PluginScope::Global).with_lifecycle(&lifecycle);
        let mut c = config("http://127.0.0.1:1/", 100);
        c.batch_size = 100;
        let p = LogShipper::build(c, &cx).unwrap();
        let counters = Arc::clone(&p.counters);
        let req = TestRequest::get("/a");
        req.log(&p, 200, Duration::from_millis(1));
        req.log(&p, 200, Duration::from_millis(1));
        // What a reload does to a replaced instance.
        drop(p);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&counters) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the task is still running"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // It tried to send the two lines before it ended (nothing listens on port 1).
        assert_eq!(counters.failed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn configuration_is_checked_at_build() {
        assert_eq!(
            check(config("nope", 10)).err().unwrap().problems()[0].0,
            "url"
        );
        assert_eq!(
            check(config("http://c/", 0)).err().unwrap().problems()[0].0,
            "queue_size"
        );
        let mut c = config("http://c/", 10);
        c.batch_size = 11;
        assert_eq!(check(c).err().unwrap().problems()[0].0, "batch_size");
    }
}
