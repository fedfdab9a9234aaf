//! Configuration pieces the logging plugins share, with Kong's field names and units.

use std::time::Duration;

use pingway_plugin::ConfigError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The largest `queue.max_entries` accepted (entries kept in memory while the
/// destination is slow or down).
pub const MAX_ENTRIES_LIMIT: usize = 1_000_000;

/// Kong's `queue` block (times in seconds, as in Kong).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Entries per batch, at most (default 1). With 1, `http-log` sends one JSON object
    /// per request; with more, a JSON array.
    #[serde(default = "one")]
    pub max_batch_size: usize,
    /// How long a batch waits for more entries once its first one came, in seconds
    /// (default 1).
    #[serde(default = "one_f")]
    pub max_coalescing_delay: f64,
    /// Entries waiting to be sent, at most (default 10000, at most 1000000); more are
    /// dropped and counted. One batch being sent or retried is held besides.
    #[serde(default = "max_entries")]
    pub max_entries: usize,
    /// How long a failing batch is retried before it is dropped and counted, in seconds
    /// (default 60).
    #[serde(default = "sixty")]
    pub max_retry_time: f64,
    /// The first retry's delay, in seconds (default 0.01); it doubles each time.
    #[serde(default = "initial_retry_delay")]
    pub initial_retry_delay: f64,
    /// The longest delay between retries, in seconds (default 60).
    #[serde(default = "sixty")]
    pub max_retry_delay: f64,
    /// Kong's `max_bytes`: not supported (only `null` is accepted).
    #[serde(default)]
    pub max_bytes: Option<serde_json::Value>,
    /// Kong's `concurrency_limit`: one batch at a time (only 1 or -1 is accepted).
    #[serde(default)]
    pub concurrency_limit: Option<i64>,
    /// Kong's `name` for a shared queue: accepted and ignored (each instance has its own).
    #[serde(default)]
    pub name: Option<String>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_batch_size: one(),
            max_coalescing_delay: one_f(),
            max_entries: max_entries(),
            max_retry_time: sixty(),
            initial_retry_delay: initial_retry_delay(),
            max_retry_delay: sixty(),
            max_bytes: None,
            concurrency_limit: None,
            name: None,
        }
    }
}

fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn max_entries() -> usize {
    10_000
}
fn sixty() -> f64 {
    60.0
}
fn initial_retry_delay() -> f64 {
    0.01
}

/// Checked queue settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSettings {
    /// Entries per batch, at most.
    pub max_batch_size: usize,
    /// How long a batch waits for more entries.
    pub max_coalescing_delay: Duration,
    /// Entries waiting, at most.
    pub max_entries: usize,
    /// How long a failing batch is retried.
    pub max_retry_time: Duration,
    /// The first retry's delay.
    pub initial_retry_delay: Duration,
    /// The longest delay between retries.
    pub max_retry_delay: Duration,
}

impl QueueConfig {
    /// Checks the block (its fields named under `queue.`).
    pub fn check(&self) -> Result<QueueSettings, ConfigError> {
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES_LIMIT {
            return Err(ConfigError::new(
                "queue.max_entries",
                format!("must be between 1 and {MAX_ENTRIES_LIMIT}"),
            ));
        }
        if self.max_batch_size == 0 || self.max_batch_size > self.max_entries {
            return Err(ConfigError::new(
                "queue.max_batch_size",
                "must be between 1 and queue.max_entries",
            ));
        }
        if self.max_bytes.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(ConfigError::new(
                "queue.max_bytes",
                "is not supported by Pingway (batches are bounded by max_batch_size)",
            ));
        }
        if self.concurrency_limit.is_some_and(|c| c != 1 && c != -1) {
            return Err(ConfigError::new(
                "queue.concurrency_limit",
                "only 1 is supported (one batch at a time)",
            ));
        }
        Ok(QueueSettings {
            max_batch_size: self.max_batch_size,
            max_coalescing_delay: seconds(
                "queue.max_coalescing_delay",
                self.max_coalescing_delay,
                0.0,
                3600.0,
            )?,
            max_entries: self.max_entries,
            max_retry_time: seconds("queue.max_retry_time", self.max_retry_time, 0.0, 86_400.0)?,
            initial_retry_delay: seconds(
                "queue.initial_retry_delay",
                self.initial_retry_delay,
                0.001,
                1_000_000.0,
            )?,
            max_retry_delay: seconds(
                "queue.max_retry_delay",
                self.max_retry_delay,
                0.001,
                1_000_000.0,
            )?,
        })
    }
}

/// `value` seconds as a duration, when it is within `[min, max]`.
pub fn seconds(field: &str, value: f64, min: f64, max: f64) -> Result<Duration, ConfigError> {
    if !value.is_finite() || value < min || value > max {
        return Err(ConfigError::new(
            field,
            format!("must be between {min} and {max} seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

/// `value` milliseconds (Kong's `timeout`, `keepalive`) as a duration, more than zero.
pub fn millis(field: &str, value: u64) -> Result<Duration, ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(
            field,
            "must be more than zero milliseconds",
        ));
    }
    Ok(Duration::from_millis(value))
}

/// Kong's `custom_fields_by_lua` runs Lua per entry; Pingway has no Lua. Rejects the
/// field unless it is absent, `null` or empty.
pub fn reject_custom_fields_by_lua(value: &Option<serde_json::Value>) -> Result<(), ConfigError> {
    let empty = match value {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Object(m)) => m.is_empty(),
        Some(_) => false,
    };
    if empty {
        Ok(())
    } else {
        Err(ConfigError::new(
            "custom_fields_by_lua",
            "is not supported: Pingway does not run Lua (remove the field; write a Rust plugin to add fields)",
        ))
    }
}
