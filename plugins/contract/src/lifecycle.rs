//! A plugin's life beyond a request: a runtime for background tasks (a log queue's
//! flusher, a pool's reconnects) and the signal that the process is stopping.
//!
//! Building an instance stays synchronous and free of I/O on purpose: `pingway validate`
//! builds every plugin of a file, and validation must give the same answer offline. A
//! plugin that needs a connection or a queue spawns it on [`Lifecycle::runtime`] from
//! `build` and owns it through the instance: a task that holds only a `Weak` to what it
//! serves, or a channel receiver, ends when the instance is dropped after a reload.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;
use tokio::sync::watch;

/// The runtime and shutdown signal a plugin's background work lives on.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    runtime: Handle,
    stopping: watch::Receiver<bool>,
}

/// The process-wide default: a small runtime of its own ("pingway-plugins", one worker
/// thread, created on first use) and a shutdown signal that [`ShutdownTrigger::fire`]
/// raises.
struct ProcessDefault {
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
}

fn default_parts() -> Option<&'static ProcessDefault> {
    static DEFAULT: OnceLock<Option<ProcessDefault>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("pingway-plugins")
                .enable_all()
                .build()
                .ok()?;
            let (stop, _) = watch::channel(false);
            Some(ProcessDefault { runtime, stop })
        })
        .as_ref()
}

impl Lifecycle {
    /// A lifecycle on `runtime`, stopping when `stopping` turns true.
    pub fn new(runtime: Handle, stopping: watch::Receiver<bool>) -> Self {
        Lifecycle { runtime, stopping }
    }

    /// The process-wide lifecycle: what the gateway gives every plugin. `None` only if
    /// the operating system refused the runtime's thread.
    pub fn process() -> Option<Lifecycle> {
        let d = default_parts()?;
        Some(Lifecycle {
            runtime: d.runtime.handle().clone(),
            stopping: d.stop.subscribe(),
        })
    }

    /// The runtime to spawn background tasks on. It outlives every instance; Pingora's
    /// request runtimes are not available when plugins are built.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Spawns `task` on the plugin runtime.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime.spawn(task)
    }

    /// Whether the process is stopping.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Resolves when the process starts to stop (at once if it already has).
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stopping.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// Raises the shutdown signal of the process-wide [`Lifecycle`]. Held by the host.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownTrigger;

impl ShutdownTrigger {
    /// Tells every plugin's background work that the process is stopping.
    pub fn fire(self) {
        if let Some(d) = default_parts() {
            d.stop.send_replace(true);
        }
    }
}

impl std::fmt::Debug for ProcessDefault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lifecycle default")
    }
}
