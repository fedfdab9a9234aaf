//! The access log's writer thread: owns the file, writes batches, reopens on SIGUSR1.
//!
//! A plain thread rather than a task: file writes block, and the plugin runtime has one
//! worker that log queues and Redis reconnects share.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::stats;

/// Raised by each SIGUSR1: writers compare it with the generation their file was opened
/// at.
static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

/// How long an idle writer waits before looking at the reopen generation again, so a
/// rotated file is reopened (recreated) soon even when no request comes.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// How long a busy writer lets lines gather before it writes them. While requests keep
/// coming the writer does not wait on the channel (a blocked receiver makes every
/// request's send wake it: a futex call, a context switch and a one-line write on the
/// proxy's cores); it sleeps this long and writes what gathered in one go. A line thus
/// reaches the file within about this much time under load, at once when traffic is
/// light (an idle writer blocks on the channel).
const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Lines written in one batch, at most.
const MAX_BATCH: usize = 4096;

/// How often, at most, a write error is logged (the lines lost are counted anyway).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Makes SIGUSR1 reopen every access log file (what logrotate's `postrotate` sends),
/// from a dedicated thread. Installed whether or not an access log is configured, so a
/// stray SIGUSR1 never kills the process.
pub fn reopen_on_sigusr1() -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
    std::thread::Builder::new()
        .name("pingway-sigusr1".into())
        .spawn(move || {
            for _ in signals.forever() {
                log::info!("SIGUSR1: reopening the access log");
                REOPEN_GENERATION.fetch_add(1, Ordering::AcqRel);
            }
        })?;
    Ok(())
}

/// Starts the writer of `path` (standard output if `None`) on its own thread.
pub(super) fn spawn(
    path: Option<String>,
    lines: Receiver<Vec<u8>>,
    pending: Arc<AtomicUsize>,
) -> io::Result<()> {
    let mut writer = Writer {
        path: path.map(PathBuf::from),
        out: None,
        generation: REOPEN_GENERATION.load(Ordering::Acquire),
        last_error_log: None,
    };
    std::thread::Builder::new()
        .name("pingway-access-log".into())
        .spawn(move || writer.run(&lines, &pending))?;
    Ok(())
}

struct Writer {
    path: Option<PathBuf>,
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    generation: u64,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn run(&mut self, lines: &Receiver<Vec<u8>>, pending: &AtomicUsize) {
        let mut batch = Vec::with_capacity(64);
        // Whether the last round found lines: then the writer sleeps between rounds
        // instead of blocking on the channel (see BATCH_INTERVAL).
        let mut busy = false;
        loop {
            let mut gone = false;
            if busy {
                std::thread::sleep(BATCH_INTERVAL);
            } else {
                match lines.recv_timeout(IDLE_CHECK) {
                    Ok(line) => batch.push(line),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => gone = true,
                }
            }
            while batch.len() < MAX_BATCH {
                match lines.try_recv() {
                    Ok(line) => batch.push(line),
                    Err(TryRecvError::Empty) => break,
                    // The configuration that owned this log is gone: write what is
                    // left and end.
                    Err(TryRecvError::Disconnected) => {
                        gone = true;
                        break;
                    }
                }
            }
            self.reopen_if_asked();
            busy = !batch.is_empty();
            if busy {
                self.write_batch(&batch, pending);
                batch.clear();
            }
            if gone && !busy {
                return;
            }
        }
    }

    /// Writes and flushes `batch`, counting the lines written or lost.
    fn write_batch(&mut self, batch: &[Vec<u8>], pending: &AtomicUsize) {
        let n = batch.len();
        match self.write(batch) {
            Ok(()) => stats().written.fetch_add(n as u64, Ordering::Relaxed),
            Err(e) => {
                self.problem(&format!("{n} lines lost: {e}"));
                // Reopen on the next batch: the file may have been removed.
                self.out = None;
                stats().failed.fetch_add(n as u64, Ordering::Relaxed)
            }
        };
        pending.fetch_sub(n, Ordering::AcqRel);
    }

    fn reopen_if_asked(&mut self) {
        let now = REOPEN_GENERATION.load(Ordering::Acquire);
        if now != self.generation {
            self.generation = now;
            if self.path.is_some() {
                if let Some(mut old) = self.out.take() {
                    let _ = old.flush();
                }
                stats().reopens.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.open() {
                    self.problem(&format!("cannot reopen: {e}"));
                }
            }
        }
    }

    fn open(&mut self) -> io::Result<&mut BufWriter<Box<dyn Write + Send>>> {
        if self.out.is_none() {
            let sink: Box<dyn Write + Send> = match &self.path {
                Some(p) => Box::new(open_append(p)?),
                None => Box::new(io::stdout()),
            };
            self.out = Some(BufWriter::with_capacity(64 * 1024, sink));
        }
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("no output"))
    }

    /// Writes the batch and flushes: the file is complete once the batch is written.
    fn write(&mut self, batch: &[Vec<u8>]) -> io::Result<()> {
        let out = self.open()?;
        for line in batch {
            out.write_all(line)?;
        }
        out.flush()
    }

    fn problem(&mut self, what: &str) {
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
        {
            self.last_error_log = Some(now);
            let path = self
                .path
                .as_ref()
                .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
            log::warn!("access log {path}: {what}");
        }
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}
