//! What `http-log`, `file-log`, `tcp-log` and `udp-log` share: Kong's log entry
//! ([`entry`]), the bounded queue with batches, retries and the shutdown flush
//! ([`queue`]), the `queue:` settings ([`config`]) and the process-wide counters
//! ([`counters`]) the admin API's `/metrics` renders.

pub mod config;
pub mod entry;
pub mod queue;

use std::sync::atomic::AtomicU64;

pub use entry::{kong_entry, redact_query};
pub use queue::{Deliver, LogQueue};

/// Entries of one logging plugin, by outcome. Process-wide and per plugin name (every
/// instance of `http-log` adds to the same counters), so they survive reloads.
#[derive(Debug)]
pub struct LogCounters {
    /// Entries the destination accepted.
    pub sent: AtomicU64,
    /// Entries dropped because the queue held `max_entries` already.
    pub dropped: AtomicU64,
    /// Entries lost because sending failed until `max_retry_time` (or shutdown).
    pub failed: AtomicU64,
}

impl LogCounters {
    const fn new() -> Self {
        LogCounters {
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

static HTTP_LOG: LogCounters = LogCounters::new();
static FILE_LOG: LogCounters = LogCounters::new();
static TCP_LOG: LogCounters = LogCounters::new();
static UDP_LOG: LogCounters = LogCounters::new();
static OPENTELEMETRY: LogCounters = LogCounters::new();
static ZIPKIN: LogCounters = LogCounters::new();

/// The logging plugins' names, in the order `/metrics` lists them. The tracing plugins
/// (`opentelemetry`, `zipkin`) use the same queue; their entries are one request's spans.
pub const LOGGERS: [&str; 6] = [
    "file-log",
    "http-log",
    "opentelemetry",
    "tcp-log",
    "udp-log",
    "zipkin",
];

/// The counters of the logging plugin `name` (one of [`LOGGERS`]).
pub fn counters(name: &str) -> Option<&'static LogCounters> {
    match name {
        "http-log" => Some(&HTTP_LOG),
        "file-log" => Some(&FILE_LOG),
        "tcp-log" => Some(&TCP_LOG),
        "udp-log" => Some(&UDP_LOG),
        "opentelemetry" => Some(&OPENTELEMETRY),
        "zipkin" => Some(&ZIPKIN),
        _ => None,
    }
}
