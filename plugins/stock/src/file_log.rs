//! `file-log`: Kong's log entry for every request, one JSON line each, appended to a file
//! by a background task (see docs/plugins/file-log.md).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use pingway_plugin::{BuildContext, BuildPlugin, ConfigError, LogEntry, Plugin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::loggers::config::{reject_custom_fields_by_lua, QueueSettings};
use crate::loggers::{counters, kong_entry, Deliver, LogQueue};

/// `file-log` configuration (Kong's fields).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileLogConfig {
    /// The file entries are appended to (created if missing). Kong requires a path of
    /// letters, digits, `.`, `-`, `_` and `/`; so does Pingway.
    pub path: String,
    /// Close and reopen the file for every batch (default false), so a file that was
    /// moved away (logrotate) is recreated.
    #[serde(default)]
    pub reopen: bool,
    /// Kong's Lua hook: not supported; any value but `null` or `{}` is refused.
    #[serde(default)]
    pub custom_fields_by_lua: Option<serde_json::Value>,
}

/// Entries waiting to be written, at most (Kong's file-log has no queue settings);
/// more are dropped and counted.
pub const FILE_LOG_MAX_ENTRIES: usize = 10_000;

/// The `file-log` plugin.
#[derive(Debug)]
pub struct FileLog {
    queue: LogQueue,
}

#[async_trait]
impl Plugin for FileLog {
    fn on_log(&self, entry: &LogEntry<'_>) {
        if let Ok(mut line) = serde_json::to_vec(&kong_entry(entry)) {
            line.push(b'\n');
            self.queue.push(line);
        }
    }

    async fn drain(&self) {
        self.queue.drain(Duration::from_secs(5)).await;
    }
}

struct FileSink {
    path: PathBuf,
    reopen: bool,
    file: Option<File>,
}

impl FileSink {
    fn write(
        path: &PathBuf,
        file: Option<File>,
        reopen: bool,
        batch: Vec<u8>,
    ) -> Result<Option<File>, String> {
        let mut f = match file {
            Some(f) if !reopen => f,
            _ => OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
        };
        f.write_all(&batch)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(if reopen { None } else { Some(f) })
    }
}

#[async_trait]
impl Deliver for FileSink {
    async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), String> {
        let bytes = batch.concat();
        let path = self.path.clone();
        let file = self.file.take();
        let reopen = self.reopen;
        // File writes block: off the runtime's worker.
        let written =
            tokio::task::spawn_blocking(move || FileSink::write(&path, file, reopen, bytes))
                .await
                .map_err(|e| format!("the writer failed: {e}"))?;
        self.file = written?;
        Ok(())
    }
}

impl BuildPlugin for FileLog {
    const NAME: &'static str = "file-log";
    /// Kong's priority for file-log.
    const PRIORITY: i32 = 9;
    type Config = FileLogConfig;

    fn build(config: FileLogConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        reject_custom_fields_by_lua(&config.custom_fields_by_lua)?;
        let ok = !config.path.is_empty()
            && config
                .path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "./-_".contains(c))
            && !config.path.ends_with('/');
        if !ok {
            return Err(ConfigError::new(
                "path",
                "a file path of letters, digits, '.', '-', '_' and '/'",
            ));
        }
        let lifecycle = cx
            .lifecycle()
            .ok_or_else(|| ConfigError::new("", "no runtime for the background task"))?;
        let settings = QueueSettings {
            max_batch_size: 100,
            max_coalescing_delay: Duration::ZERO,
            max_entries: FILE_LOG_MAX_ENTRIES,
            max_retry_time: Duration::from_secs(10),
            initial_retry_delay: Duration::from_millis(10),
            max_retry_delay: Duration::from_secs(1),
        };
        let sink = FileSink {
            path: PathBuf::from(config.path),
            reopen: config.reopen,
            file: None,
        };
        let counters = counters(Self::NAME).ok_or_else(|| ConfigError::new("", "no counters"))?;
        Ok(FileLog {
            queue: LogQueue::start(Self::NAME, settings, sink, counters, &lifecycle),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reopen_recreates_a_file_moved_away_and_without_it_the_open_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        for reopen in [true, false] {
            let path = dir.path().join(format!("log-{reopen}"));
            let mut sink = FileSink {
                path: path.clone(),
                reopen,
                file: None,
            };
            sink.deliver(&[b"one\n".to_vec()]).await.unwrap();
            let moved = dir.path().join(format!("log-{reopen}.1"));
            std::fs::rename(&path, &moved).unwrap();
            sink.deliver(&[b"two\n".to_vec(), b"three\n".to_vec()])
                .await
                .unwrap();
            let (current, old) = (
                std::fs::read_to_string(&path).unwrap_or_default(),
                std::fs::read_to_string(&moved).unwrap(),
            );
            if reopen {
                assert_eq!((current.as_str(), old.as_str()), ("two\nthree\n", "one\n"));
            } else {
                assert_eq!((current.as_str(), old.as_str()), ("", "one\ntwo\nthree\n"));
            }
        }
    }

    #[test]
    fn paths_are_checked_as_kong_does() {
        let build = |path: &str| {
            let cx = BuildContext::new(pingway_plugin::PluginScope::Global);
            FileLog::build(
                FileLogConfig {
                    path: path.into(),
                    reopen: false,
                    custom_fields_by_lua: None,
                },
                &cx,
            )
            .err()
            .map(|e| e.problems()[0].0.clone())
        };
        assert_eq!(build("a b").as_deref(), Some("path"));
        assert_eq!(build("/var/log/").as_deref(), Some("path"));
        assert_eq!(build("").as_deref(), Some("path"));
    }
}
