//! The access log: one JSON line per request, to standard output or a file, written off
//! the request path (see docs/configuration.md#access-log).
//!
//! - The proxy's log phase calls [`record`] with the contract's `LogEntry`. When the
//!   running configuration has no `access_log:` section, that is one `Option` check.
//! - The line is built in the request's task (a few hundred bytes, the selected fields
//!   only) and handed to the writer with a non-blocking `try_send` into a channel of
//!   `buffer` lines. A full buffer drops the line and counts it
//!   ([`stats`]`().dropped`, `pingway_access_log_lines_total{outcome="dropped"}`): a request never waits for the disk.
//! - One writer thread per log owns the file: it writes what is waiting in one go and
//!   flushes whenever the channel is empty, reopens the file after SIGUSR1
//!   ([`reopen_on_sigusr1`]) and, at SIGTERM, [`drain`] waits (bounded) until every line
//!   queued so far is written.
//! - The instance survives reloads whose `access_log:` section did not change; a new
//!   section starts a new writer and the old one finishes its lines and ends.

mod line;
mod writer;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingway_plugins::LogEntry;

use crate::config::{AccessLogConfig, AccessLogField};
use crate::runtime::Runtime;

pub use line::format_line;
pub use writer::reopen_on_sigusr1;

/// Process-wide access log counters (they survive reloads), rendered by `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines written.
    pub written: AtomicU64,
    /// Lines dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Lines lost to a write error (a full disk, a file that cannot be opened).
    pub failed: AtomicU64,
    /// SIGUSR1 reopens performed.
    pub reopens: AtomicU64,
}

/// The process's access log counters.
pub fn stats() -> &'static Stats {
    static STATS: Stats = Stats {
        written: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        reopens: AtomicU64::new(0),
    };
    &STATS
}

/// A running access log: the line format and the sending side of its writer.
#[derive(Debug)]
pub struct AccessLog {
    config: AccessLogConfig,
    lines: SyncSender<Vec<u8>>,
    /// Lines sent to the writer and not yet written and flushed.
    pending: Arc<AtomicUsize>,
}

impl AccessLog {
    /// Starts the log of `config` (its writer thread), or reuses `previous` when its
    /// configuration is the same.
    pub fn start(
        config: &AccessLogConfig,
        previous: Option<&Arc<AccessLog>>,
    ) -> std::io::Result<Arc<AccessLog>> {
        if let Some(p) = previous.filter(|p| p.config == *config) {
            return Ok(Arc::clone(p));
        }
        let (lines, rx) = mpsc::sync_channel(config.buffer);
        let pending = Arc::new(AtomicUsize::new(0));
        writer::spawn(config.path.clone(), rx, Arc::clone(&pending))?;
        Ok(Arc::new(AccessLog {
            config: config.clone(),
            lines,
            pending,
        }))
    }

    /// The fields each line carries.
    pub fn fields(&self) -> &[AccessLogField] {
        &self.config.fields
    }

    /// Formats `entry` and queues it for the writer; never blocks. Returns false when the
    /// line was dropped (buffer full, or the writer gone).
    pub fn record(&self, entry: &LogEntry<'_>) -> bool {
        let line = format_line(entry, &self.config.fields, self.config.include_query);
        self.pending.fetch_add(1, Ordering::AcqRel);
        match self.lines.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::AcqRel);
                stats().dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until every line queued so far is written and flushed, for at most `limit`.
    /// Returns whether it got there.
    pub async fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.pending.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// The proxy's log phase: records `entry` in the running configuration's access log, if
/// it has one.
#[inline]
pub fn record(runtime: &Runtime, entry: &LogEntry<'_>) {
    if let Some(log) = &runtime.access_log {
        log.record(entry);
    }
}

/// Whether the configuration has an access log (the log phase needs an entry then even
/// with no plugin to show it to).
#[inline]
pub fn enabled(runtime: &Runtime) -> bool {
    runtime.access_log.is_some()
}

/// At SIGTERM: waits (at most `limit`) until the access log has written every line
/// queued so far.
pub async fn drain(runtime: &Runtime, limit: Duration) {
    if let Some(log) = &runtime.access_log {
        if !log.flush(limit).await {
            log::warn!("access log: lines still unwritten after {limit:?} at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingway_plugins::testkit::TestRequest;

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts_and_flush_is_bounded() {
        let config = AccessLogConfig {
            path: None,
            fields: vec![AccessLogField::Status],
            include_query: false,
            buffer: 2,
        };
        // A writer that never reads: the buffer fills.
        let (lines, rx) = mpsc::sync_channel(config.buffer);
        let log = AccessLog {
            config,
            lines,
            pending: Arc::new(AtomicUsize::new(0)),
        };
        let req = TestRequest::get("/x");
        let entry = LogEntry::new(req.parts(), req.ctx(), Duration::ZERO);
        let before = stats().dropped.load(Ordering::Relaxed);
        let kept = (0..5).filter(|_| log.record(&entry)).count();
        assert_eq!(kept, 2);
        assert!(stats().dropped.load(Ordering::Relaxed) >= before + 3);
        assert!(
            !log.flush(Duration::from_millis(30)).await,
            "two lines unwritten"
        );
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[tokio::test]
    async fn lines_reach_the_file_and_flush_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let config = AccessLogConfig {
            path: Some(path.display().to_string()),
            fields: vec![AccessLogField::Path, AccessLogField::Status],
            include_query: false,
            buffer: 100,
        };
        let log = AccessLog::start(&config, None).unwrap();
        assert!(Arc::ptr_eq(
            &log,
            &AccessLog::start(&config, Some(&log)).unwrap()
        ));
        let req = TestRequest::get("/a?apikey=secret");
        let mut entry = LogEntry::new(req.parts(), req.ctx(), Duration::ZERO);
        entry.status = 201;
        for _ in 0..3 {
            assert!(log.record(&entry));
        }
        assert!(log.flush(Duration::from_secs(5)).await);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"path\":\"/a\",\"status\":201}\n".repeat(3));
    }

    #[tokio::test]
    async fn a_burst_is_written_whole_in_batches_and_a_dropped_log_writes_its_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let config = AccessLogConfig {
            path: Some(path.display().to_string()),
            fields: vec![AccessLogField::Status],
            include_query: false,
            buffer: 20_000,
        };
        let log = AccessLog::start(&config, None).unwrap();
        let req = TestRequest::get("/");
        let mut entry = LogEntry::new(req.parts(), req.ctx(), Duration::ZERO);
        // Keep the writer busy (it then batches), with more lines than one batch holds.
        for round in 0..4 {
            for _ in 0..3000 {
                entry.status = 200 + round;
                assert!(log.record(&entry));
            }
            tokio::task::yield_now().await;
        }
        assert!(log.flush(Duration::from_secs(10)).await);
        let pending = Arc::clone(&log.pending);
        for _ in 0..500 {
            entry.status = 299;
            assert!(log.record(&entry));
        }
        // The configuration goes: the writer writes what it holds, then ends.
        drop(log);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pending.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12_500);
        for (round, chunk) in lines[..12_000].chunks(3000).enumerate() {
            let want = format!("{{\"status\":{}}}", 200 + round);
            assert!(chunk.iter().all(|l| *l == want), "round {round}");
        }
        assert!(lines[12_000..].iter().all(|l| *l == "{\"status\":299}"));
    }
}
