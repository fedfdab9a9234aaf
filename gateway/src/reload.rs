//! Live reload: parse → validate → build → swap, triggered by edits to the file (watched
//! with inotify via `notify`, through its symlink chain, with a periodic check as the
//! backstop) and by SIGHUP. A file that does not validate is refused
//! with the same messages as `pingway validate`, and the running configuration keeps
//! serving. Requests in flight finish on the configuration they started with, because
//! each holds its own `Arc` of it.

pub mod history;
mod symlink_chain;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use pingway_plugins::config::Diagnostic;
use pingway_plugins::Registry;

use crate::config::{self, Listener, LoadError, ServerSettings};
use crate::runtime::Runtime;

pub use watch::{ConfigWatch, CHECK_INTERVAL};

/// Edits closer together than this are applied as one reload.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Why a reload was refused. The running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] std::io::Error),
    /// The file is not a valid configuration.
    #[error("{} problem(s) in the configuration", .0.len())]
    Invalid(Vec<Diagnostic>),
}

impl From<LoadError> for ReloadError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Io { source, .. } => ReloadError::Read(source),
            LoadError::Invalid(d) => ReloadError::Invalid(d),
        }
    }
}

/// What a successful reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new configuration is serving.
    Applied {
        /// Routes in the new configuration.
        routes: usize,
        /// Plugin instances carried over (their state intact).
        reused_plugins: usize,
    },
    /// The file did not change since the last load.
    Unchanged,
}

/// Reloads one configuration file into a running gateway.
pub struct Reloader {
    path: PathBuf,
    registry: Arc<Registry>,
    runtime: Arc<ArcSwap<Runtime>>,
    /// The text last applied; also serializes reloads from the watcher and SIGHUP.
    last_text: Mutex<String>,
    /// Listeners and server settings the process started with: they do not reload.
    started_with: (Vec<Listener>, ServerSettings),
    /// Replaced configurations, kept until no request uses them so that they are
    /// dropped here rather than on a proxy worker (a 10,000-route table takes a few
    /// milliseconds to free).
    retired: Mutex<Vec<Arc<Runtime>>>,
    /// What is serving and how the last reload went (for the admin API).
    status: Mutex<LoadStatus>,
    /// Reloads by outcome, for the metrics.
    counts: ReloadCounts,
    /// The recent loads, for the dashboard.
    history: history::LoadHistory,
}

/// The configuration serving and the outcome of the last reload attempt.
#[derive(Debug, Clone)]
pub struct LoadStatus {
    /// SHA-256 of the file's bytes that are serving, in lowercase hex.
    pub digest: String,
    /// When they were loaded.
    pub loaded_at: SystemTime,
    /// How many configurations have been applied: 1 for the one the process started
    /// with, plus one per applied reload.
    pub version: u64,
    /// The last reload's failure, if the last reload attempt failed (cleared by the next
    /// successful or unchanged one).
    pub last_error: Option<ReloadFailure>,
}

/// A reload that was refused.
#[derive(Debug, Clone)]
pub struct ReloadFailure {
    /// When.
    pub at: SystemTime,
    /// Each problem, placed in the file (an unreadable file gives one without a place).
    pub problems: Vec<Diagnostic>,
}

/// Reloads counted by outcome since the process started.
#[derive(Debug, Default)]
pub struct ReloadCounts {
    /// A new configuration is serving.
    pub applied: AtomicU64,
    /// The file had not changed.
    pub unchanged: AtomicU64,
    /// The file was refused (unreadable or invalid).
    pub failed: AtomicU64,
}

/// SHA-256 of `bytes` in lowercase hex.
pub fn digest(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl ReloadError {
    /// The problems, as diagnostics (an unreadable file gives one at the document root).
    pub fn problems(&self) -> Vec<Diagnostic> {
        match self {
            ReloadError::Read(e) => vec![Diagnostic::new("", format!("cannot read the file: {e}"))],
            ReloadError::Invalid(d) => d.clone(),
        }
    }
}

impl Reloader {
    /// A reloader for `path`, whose current contents `initial_text` are already serving.
    pub fn new(
        path: PathBuf,
        initial_text: String,
        registry: Arc<Registry>,
        runtime: Arc<ArcSwap<Runtime>>,
    ) -> Self {
        let started_with = {
            let current = runtime.load();
            (
                current.config.listeners.clone(),
                current.config.server.clone(),
            )
        };
        let status = LoadStatus {
            digest: digest(initial_text.as_bytes()),
            loaded_at: SystemTime::now(),
            version: 1,
            last_error: None,
        };
        Reloader {
            path,
            registry,
            runtime,
            last_text: Mutex::new(initial_text),
            started_with,
            retired: Mutex::new(Vec::new()),
            status: Mutex::new(status),
            counts: ReloadCounts::default(),
            history: {
                let h = history::LoadHistory::default();
                h.push(history::LoadOutcome::Started, 1, &[]);
                h
            },
        }
    }

    /// The recent loads (the start, applied and refused reloads), newest first.
    pub fn history(&self) -> &history::LoadHistory {
        &self.history
    }

    /// The configuration serving and how the last reload went.
    pub fn status(&self) -> LoadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reloads counted by outcome.
    pub fn counts(&self) -> &ReloadCounts {
        &self.counts
    }

    /// The compiled configuration serving now.
    pub fn runtime(&self) -> &Arc<ArcSwap<Runtime>> {
        &self.runtime
    }

    /// The plugin registry configurations are built with.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The file being served.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file and, if it changed and is valid, makes it the serving configuration.
    pub fn reload(&self) -> Result<ReloadOutcome, ReloadError> {
        self.reload_inner(false)
    }

    /// Like [`Self::reload`], but rebuilds even an unchanged file (host names are resolved
    /// again). What SIGHUP does.
    pub fn reload_forced(&self) -> Result<ReloadOutcome, ReloadError> {
        self.reload_inner(true)
    }

    fn reload_inner(&self, force: bool) -> Result<ReloadOutcome, ReloadError> {
        let result = self.try_reload(force);
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match &result {
            Ok(ReloadOutcome::Applied { .. }) => {
                self.counts.applied.fetch_add(1, Ordering::Relaxed);
                status.version += 1;
                status.loaded_at = SystemTime::now();
                status.last_error = None;
                self.history
                    .push(history::LoadOutcome::Applied, status.version, &[]);
            }
            Ok(ReloadOutcome::Unchanged) => {
                self.counts.unchanged.fetch_add(1, Ordering::Relaxed);
                status.last_error = None;
            }
            Err(e) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
                let problems = e.problems();
                self.history
                    .push(history::LoadOutcome::Failed, status.version, &problems);
                status.last_error = Some(ReloadFailure {
                    at: SystemTime::now(),
                    problems,
                });
            }
        }
        result
    }

    fn try_reload(&self, force: bool) -> Result<ReloadOutcome, ReloadError> {
        let mut last = self.last_text.lock().unwrap_or_else(|p| p.into_inner());
        let text = config::file::read_config_file(&self.path)?;
        if !force && *last == text {
            return Ok(ReloadOutcome::Unchanged);
        }
        let loaded = config::load_str(&text).map_err(ReloadError::Invalid)?;
        let current = self.runtime.load_full();
        let next = Runtime::build(&loaded, &self.registry, Some(&current))
            .map_err(ReloadError::Invalid)?;
        let (listeners, server) = &self.started_with;
        // A listener's certificates reload live; its address, TLS and HTTP/2 do not.
        let listeners_changed = !next
            .config
            .listeners
            .iter()
            .map(Listener::restart_key)
            .eq(listeners.iter().map(Listener::restart_key));
        if listeners_changed || next.config.server != *server {
            log::warn!(
                "{}: listeners and server settings changed; they take effect after a restart",
                self.path.display()
            );
        }
        let outcome = ReloadOutcome::Applied {
            routes: next.routes.len(),
            reused_plugins: next.reused_instances,
        };
        let old = self.runtime.swap(Arc::new(next));
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(old);
        self.status.lock().unwrap_or_else(|p| p.into_inner()).digest = digest(text.as_bytes());
        *last = text;
        Ok(outcome)
    }

    /// Drops the replaced configurations no request holds any more; returns how many
    /// are still in use.
    pub fn reap(&self) -> usize {
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.retain(|rt| Arc::strong_count(rt) > 1);
        retired.len()
    }

    /// Reaps replaced configurations every `period` from a background thread of low
    /// priority.
    pub fn reap_periodically(self: &Arc<Self>, period: Duration) -> std::io::Result<()> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("pingway-reaper".into())
            .spawn(move || {
                lower_thread_priority();
                loop {
                    std::thread::sleep(period);
                    me.reap();
                }
            })?;
        Ok(())
    }

    /// Reloads and logs the outcome (for the watcher and signal handler).
    pub fn reload_and_log(&self, force: bool) {
        let _ = self.reload_logged(force);
    }

    /// Reloads, logs the outcome, and returns it (for the admin API's `POST /reload`).
    pub fn reload_logged(&self, force: bool) -> Result<ReloadOutcome, ReloadError> {
        let file = self.path.display().to_string();
        let result = self.reload_inner(force);
        match &result {
            Ok(ReloadOutcome::Applied {
                routes,
                reused_plugins,
            }) => log::info!(
                "{file}: configuration reloaded ({routes} routes, {reused_plugins} plugin instances kept)"
            ),
            Ok(ReloadOutcome::Unchanged) => log::debug!("{file}: unchanged"),
            Err(ReloadError::Read(e)) => {
                log::error!("{file}: cannot read ({e}); keeping the running configuration")
            }
            Err(ReloadError::Invalid(diags)) => {
                for d in diags {
                    log::error!("{}", d.display_in(&file));
                }
                log::error!(
                    "{file}: {} problem(s); keeping the running configuration",
                    diags.len()
                );
            }
        }
        result
    }

    /// Watches the file and reloads after each burst of changes: file events on the
    /// directories of the file, of each symbolic link leading to it and of its target
    /// (so editors that replace the file by a rename, Kubernetes ConfigMap updates that
    /// swap a `..data` link, and edits of a link's target are all seen), and every
    /// [`CHECK_INTERVAL`] a cheap check of the file as the backstop. The watch lasts as
    /// long as the returned handle is kept.
    pub fn watch(self: &Arc<Self>) -> std::io::Result<ConfigWatch> {
        watch::spawn(Arc::clone(self))
    }

    /// Reloads on every SIGHUP, from a dedicated thread.
    pub fn reload_on_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("pingway-sighup".into())
            .spawn(move || {
                lower_thread_priority();
                for _ in signals.forever() {
                    log::info!("SIGHUP: reloading {}", me.path.display());
                    me.reload_and_log(true);
                }
            })?;
        Ok(())
    }
}

/// How much nicer than the process the reload threads run (CFS then gives a worker about
/// 3 times the CPU of a reload thread on a shared core).
const NICER_BY: libc::c_int = 5;

/// How long a reload thread runs before it gives a shared core back to the workers (see
/// [`pingway_plugins::pace`]).
const PACE_BUDGET: std::time::Duration = std::time::Duration::from_micros(250);

/// Makes the calling thread a background one: [`NICER_BY`] nicer than it was, and
/// yielding the core every [`PACE_BUDGET`] in the long loops of loading and building a
/// configuration. Building a large configuration takes tens of milliseconds of CPU,
/// which the proxy workers should win when they share a core: the nice value decides how
/// much of the core the reload gets, the pacing how long a worker may wait for it
/// (otherwise up to a timer tick, several milliseconds, for every request in flight).
/// Relative, not absolute: under a gateway started at nice -20, an absolute nice 5 would
/// leave a reload thread 1/265 of a busy core, and a 10,000-route reload would take
/// seconds instead of a fraction of one.
fn lower_thread_priority() {
    // On Linux the nice value is per thread, and `nice(2)` (PRIO_PROCESS, who = 0)
    // changes only the calling thread's. It is clamped at 19.
    // SAFETY: a plain system call with an integer argument; failure only leaves the
    // priority unchanged.
    unsafe {
        libc::nice(NICER_BY);
    }
    pingway_plugins::pace::enable(PACE_BUDGET);
}

/// The calling thread's nice value (for tests).
#[cfg(test)]
fn thread_nice() -> libc::c_int {
    // SAFETY: plain system calls; a nice value of -1 is indistinguishable from an error
    // here, which the tests avoid by not running at nice -1.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::getpriority(libc::PRIO_PROCESS, tid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_threads_are_nicer_than_the_process_not_set_to_a_fixed_nice() {
        std::thread::spawn(|| {
            // Start from a nice value that is not the default: raising it is always
            // allowed, and an absolute setting would miss it.
            let start = (thread_nice() + 2).min(19);
            // SAFETY: plain system calls on the calling thread.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, start);
            }
            assert_eq!(thread_nice(), start);
            lower_thread_priority();
            assert_eq!(thread_nice(), (start + NICER_BY).min(19));
        })
        .join()
        .unwrap();
    }

    fn yaml(upstream_port: u16) -> String {
        format!(
            "listeners: [{{address: 127.0.0.1:1}}]\nupstreams: [{{name: u, targets: [127.0.0.1:{upstream_port}]}}]\nroutes: [{{name: r, upstream: u}}]\n"
        )
    }

    fn reloader(dir: &Path, text: &str) -> Reloader {
        let path = dir.join("gw.yaml");
        std::fs::write(&path, text).unwrap();
        let registry = Arc::new(pingway_plugins::registry());
        let loaded = config::load_str(text).unwrap();
        let rt = Runtime::build(&loaded, &registry, None).unwrap();
        Reloader::new(
            path,
            text.to_string(),
            registry,
            Arc::new(ArcSwap::from_pointee(rt)),
        )
    }

    #[test]
    fn replaced_configs_are_freed_only_when_no_request_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let r = reloader(dir.path(), &yaml(9001));
        let in_flight = r.runtime.load_full();
        std::fs::write(r.path(), yaml(9002)).unwrap();
        assert!(matches!(r.reload(), Ok(ReloadOutcome::Applied { .. })));
        // A request still works on the old configuration: it must stay alive.
        assert_eq!(r.reap(), 1);
        let weak = Arc::downgrade(&in_flight);
        drop(in_flight);
        assert_eq!(r.reap(), 0);
        assert!(
            weak.upgrade().is_none(),
            "the old configuration was not freed"
        );
    }

    #[test]
    fn an_invalid_file_changes_nothing_and_an_unchanged_one_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let r = reloader(dir.path(), &yaml(9001));
        let before = r.runtime.load_full();
        std::fs::write(r.path(), "listeners: nope\n").unwrap();
        assert!(matches!(r.reload(), Err(ReloadError::Invalid(_))));
        assert!(Arc::ptr_eq(&before, &r.runtime.load_full()));
        std::fs::write(r.path(), yaml(9001)).unwrap();
        assert_eq!(r.reload().unwrap(), ReloadOutcome::Unchanged);
        assert!(matches!(
            r.reload_forced(),
            Ok(ReloadOutcome::Applied { .. })
        ));
    }
}
