//! The end of plugins' lives: when the process stops gracefully (SIGTERM), every plugin
//! is told (the [`Lifecycle`](pingway_plugins::Lifecycle) stopping signal) and the
//! instances of the running configuration are drained, all at once, within
//! `server.grace_period`, so that a log queue flushes before the process exits.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingway_plugins::ShutdownTrigger;

use crate::runtime::Runtime;

/// A background service that drains the plugins at shutdown.
pub struct PluginDrain {
    runtime: Arc<ArcSwap<Runtime>>,
    limit: Duration,
}

impl PluginDrain {
    /// Drains the plugins of whatever configuration `runtime` holds at shutdown, for at
    /// most `limit`.
    pub fn new(runtime: Arc<ArcSwap<Runtime>>, limit: Duration) -> Self {
        PluginDrain { runtime, limit }
    }

    /// Tells every plugin the process is stopping and awaits the running configuration's
    /// instances' drains for at most the limit; returns how many finished in time.
    pub async fn drain(&self) -> usize {
        ShutdownTrigger.fire();
        let current = self.runtime.load_full();
        let tasks: Vec<_> = current
            .plugin_instances()
            .map(|p| {
                let p = p.clone();
                tokio::spawn(async move { p.drain().await })
            })
            .collect();
        let total = tasks.len();
        // The access log's queued lines are written within the same limit.
        let access_log = crate::access_log::drain(&current, self.limit);
        let all = async {
            access_log.await;
            let mut done = 0;
            for t in tasks {
                if t.await.is_ok() {
                    done += 1;
                }
            }
            done
        };
        match tokio::time::timeout(self.limit, all).await {
            Ok(done) => {
                log::info!("plugins drained ({done} of {total} instances)");
                done
            }
            Err(_) => {
                log::warn!(
                    "plugins still draining after {:?}: stopping without them",
                    self.limit
                );
                0
            }
        }
    }
}

#[async_trait]
impl BackgroundService for PluginDrain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                // The server is gone without a graceful shutdown: nothing to wait for.
                return;
            }
        }
        self.drain().await;
    }
}
