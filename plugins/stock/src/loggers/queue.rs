//! The logging plugins' queue: bounded, batching, retrying with exponential backoff,
//! flushed on shutdown.
//!
//! - [`LogQueue::push`] (from `on_log`) `try_send`s an encoded entry into a channel of
//!   `max_entries`. It never waits: a full queue drops the entry and counts it.
//! - A task on the plugin runtime owns the receiver and the [`Deliver`] sink. It takes
//!   a first entry, waits at most `max_coalescing_delay` for up to `max_batch_size`,
//!   and delivers the batch. A failed delivery is retried after `initial_retry_delay`,
//!   doubling up to `max_retry_delay`, until `max_retry_time` has passed since the first
//!   attempt; then the batch is dropped and counted. Memory is bounded by the channel
//!   and the one batch in hand.
//! - It holds nothing of the plugin instance: when a reload drops the instance, the
//!   channel closes and the task delivers what is left and ends.
//! - At shutdown the lifecycle's stopping signal cuts waits short (no coalescing, a
//!   failing batch gets one last attempt), and [`LogQueue::drain`] waits, bounded, for
//!   everything queued to be delivered.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingway_plugin::Lifecycle;
use tokio::sync::{mpsc, oneshot};

use super::config::QueueSettings;
use super::LogCounters;

/// Where a logging plugin's batches go.
#[async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Sends `batch` (encoded entries, oldest first). An error is retried with backoff.
    async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), String>;
}

/// The sending side of a logging plugin's queue.
#[derive(Debug)]
pub struct LogQueue {
    name: &'static str,
    entries: mpsc::Sender<Vec<u8>>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
    counters: &'static LogCounters,
}

/// How often, at most, a plugin's delivery failures are logged.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

impl LogQueue {
    /// Starts the task that delivers `name`'s entries to `sink` on `lifecycle`.
    pub fn start<D: Deliver>(
        name: &'static str,
        settings: QueueSettings,
        sink: D,
        counters: &'static LogCounters,
        lifecycle: &Lifecycle,
    ) -> Self {
        let (entries, rx) = mpsc::channel(settings.max_entries);
        let (flush, flush_rx) = mpsc::channel(1);
        let task = Task {
            name,
            settings,
            sink,
            counters,
            lifecycle: lifecycle.clone(),
            last_warning: None,
            held_back: 0,
        };
        lifecycle.spawn(task.run(rx, flush_rx));
        LogQueue {
            name,
            entries,
            flush,
            counters,
        }
    }

    /// Queues one encoded entry; never waits. Returns false if it was dropped.
    pub fn push(&self, entry: Vec<u8>) -> bool {
        if self.entries.try_send(entry).is_ok() {
            true
        } else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Counts `n` entries lost before they were queued (one that could never be sent).
    pub fn count_failed(&self, n: u64) {
        self.counters.failed.fetch_add(n, Ordering::Relaxed);
    }

    /// Delivers everything queued so far, waiting at most `limit` (the gateway's grace
    /// period bounds it too).
    pub async fn drain(&self, limit: Duration) {
        let (ack, done) = oneshot::channel();
        let flushed = async {
            if self.flush.send(ack).await.is_ok() {
                let _ = done.await;
            }
        };
        if tokio::time::timeout(limit, flushed).await.is_err() {
            log::warn!(
                "{}: the shutdown flush did not finish within {limit:?}",
                self.name
            );
        }
    }
}

struct Task<D> {
    name: &'static str,
    settings: QueueSettings,
    sink: D,
    counters: &'static LogCounters,
    lifecycle: Lifecycle,
    last_warning: Option<Instant>,
    held_back: u64,
}

impl<D: Deliver> Task<D> {
    async fn run(
        mut self,
        mut entries: mpsc::Receiver<Vec<u8>>,
        mut flush: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut flush_open = true;
        loop {
            let first = tokio::select! {
                biased;
                request = flush.recv(), if flush_open => {
                    match request {
                        Some(ack) => {
                            self.deliver_queued(&mut entries).await;
                            let _ = ack.send(());
                        }
                        None => flush_open = false,
                    }
                    continue;
                }
                entry = entries.recv() => match entry {
                    Some(entry) => entry,
                    // The instance is gone (a reload, or the end): everything is sent.
                    None => return,
                },
            };
            let mut batch = Vec::with_capacity(self.settings.max_batch_size.min(1024));
            batch.push(first);
            let mut closed = false;
            if !self.lifecycle.is_stopping() {
                let deadline = tokio::time::Instant::now() + self.settings.max_coalescing_delay;
                let stopping = self.lifecycle.stopping();
                tokio::pin!(stopping);
                while batch.len() < self.settings.max_batch_size {
                    tokio::select! {
                        entry = entries.recv() => match entry {
                            Some(e) => batch.push(e),
                            None => { closed = true; break; }
                        },
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = &mut stopping => break,
                    }
                }
            }
            while batch.len() < self.settings.max_batch_size {
                match entries.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            self.deliver(batch).await;
            if closed {
                self.deliver_queued(&mut entries).await;
                return;
            }
        }
    }

    /// Delivers everything waiting in the channel now, in batches.
    async fn deliver_queued(&mut self, entries: &mut mpsc::Receiver<Vec<u8>>) {
        loop {
            let mut batch = Vec::new();
            while batch.len() < self.settings.max_batch_size {
                match entries.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            self.deliver(batch).await;
        }
    }

    /// Delivers `batch`, retrying with backoff until `max_retry_time` (one attempt once
    /// the process is stopping); counts the outcome.
    async fn deliver(&mut self, batch: Vec<Vec<u8>>) {
        let n = batch.len() as u64;
        let started = Instant::now();
        let mut delay = self.settings.initial_retry_delay;
        loop {
            let problem = match self.sink.deliver(&batch).await {
                Ok(()) => {
                    self.counters.sent.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                Err(problem) => problem,
            };
            let waited = started.elapsed();
            if self.lifecycle.is_stopping() || waited + delay > self.settings.max_retry_time {
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                self.warn(&format!(
                    "{problem}; {n} entries dropped after {} ms of retries",
                    waited.as_millis()
                ));
                return;
            }
            let stopping = self.lifecycle.stopping();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopping => {}
            }
            delay = (delay * 2).min(self.settings.max_retry_delay);
        }
    }

    fn warn(&mut self, what: &str) {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|t| now.duration_since(t) < WARN_INTERVAL)
        {
            self.held_back += 1;
            return;
        }
        log::warn!(
            "{}: {what} ({} more such failures since the last warning)",
            self.name,
            self.held_back
        );
        self.last_warning = Some(now);
        self.held_back = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::watch;

    /// A sink that records batches and fails while `down` is set.
    #[derive(Clone, Default)]
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<Vec<u8>>>>>,
        down: Arc<std::sync::atomic::AtomicBool>,
        attempts: Arc<std::sync::atomic::AtomicU64>,
    }

    #[async_trait]
    impl Deliver for Recorder {
        async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), String> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err("down".into());
            }
            self.batches.lock().unwrap().push(batch.to_vec());
            Ok(())
        }
    }

    fn settings(max_entries: usize, batch: usize) -> QueueSettings {
        QueueSettings {
            max_batch_size: batch,
            max_coalescing_delay: Duration::from_millis(20),
            max_entries,
            max_retry_time: Duration::from_millis(200),
            initial_retry_delay: Duration::from_millis(5),
            max_retry_delay: Duration::from_millis(20),
        }
    }

    fn leak() -> &'static LogCounters {
        Box::leak(Box::new(LogCounters::new()))
    }

    async fn until(what: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !what() {
            assert!(Instant::now() < deadline, "condition not met in time");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    #[tokio::test]
    async fn entries_arrive_in_batches_of_at_most_max_batch_size() {
        let (_stop, stopping) = watch::channel(false);
        let lc = Lifecycle::new(tokio::runtime::Handle::current(), stopping);
        let sink = Recorder::default();
        let counters = leak();
        let q = LogQueue::start("test-log", settings(100, 3), sink.clone(), counters, &lc);
        for i in 0..7u8 {
            assert!(q.push(vec![i]));
        }
        until(|| counters.sent.load(Ordering::SeqCst) == 7).await;
        let batches = sink.batches.lock().unwrap().clone();
        assert!(batches.iter().all(|b| b.len() <= 3), "{batches:?}");
        let flat: Vec<u8> = batches.into_iter().flatten().flatten().collect();
        assert_eq!(flat, (0..7).collect::<Vec<u8>>());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_a_dead_sink_loses_only_what_it_held() {
        let (_stop, stopping) = watch::channel(false);
        let lc = Lifecycle::new(tokio::runtime::Handle::current(), stopping);
        let sink = Recorder::default();
        sink.down.store(true, Ordering::SeqCst);
        let counters = leak();
        let q = LogQueue::start("test-log", settings(4, 1), sink.clone(), counters, &lc);
        // The task takes the first entry into its batch and retries it; 4 more fit.
        assert!(q.push(vec![0]));
        until(|| sink.attempts.load(Ordering::SeqCst) >= 1).await;
        let accepted = (1..20u8).filter(|i| q.push(vec![*i])).count();
        assert_eq!(accepted, 4);
        assert_eq!(counters.dropped.load(Ordering::SeqCst), 15);
        // Retries give up after max_retry_time: every held entry is counted as failed.
        until(|| counters.failed.load(Ordering::SeqCst) == 5).await;
        assert!(sink.attempts.load(Ordering::SeqCst) > 5, "no retries");
        // The sink is back: later entries arrive.
        sink.down.store(false, Ordering::SeqCst);
        assert!(q.push(vec![99]));
        until(|| counters.sent.load(Ordering::SeqCst) == 1).await;
        assert_eq!(sink.batches.lock().unwrap().concat(), vec![vec![99u8]]);
    }

    #[tokio::test]
    async fn a_sink_that_comes_back_within_the_retry_time_gets_the_batch() {
        let (_stop, stopping) = watch::channel(false);
        let lc = Lifecycle::new(tokio::runtime::Handle::current(), stopping);
        let sink = Recorder::default();
        sink.down.store(true, Ordering::SeqCst);
        let counters = leak();
        let mut s = settings(10, 1);
        s.max_retry_time = Duration::from_secs(30);
        let q = LogQueue::start("test-log", s, sink.clone(), counters, &lc);
        assert!(q.push(b"kept".to_vec()));
        until(|| sink.attempts.load(Ordering::SeqCst) >= 3).await;
        sink.down.store(false, Ordering::SeqCst);
        until(|| counters.sent.load(Ordering::SeqCst) == 1).await;
        assert_eq!(counters.failed.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn drain_delivers_what_is_queued_without_waiting_for_the_delay() {
        let (stop, stopping) = watch::channel(false);
        let lc = Lifecycle::new(tokio::runtime::Handle::current(), stopping);
        let sink = Recorder::default();
        let counters = leak();
        let mut s = settings(100, 50);
        s.max_coalescing_delay = Duration::from_secs(3600);
        let q = LogQueue::start("test-log", s, sink.clone(), counters, &lc);
        for i in 0..10u8 {
            q.push(vec![i]);
        }
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), q.drain(Duration::from_secs(5)))
            .await
            .unwrap();
        until(|| counters.sent.load(Ordering::SeqCst) == 10).await;
    }
}
