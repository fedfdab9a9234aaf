//! Watching the configuration file: file events on every directory of its symlink chain,
//! and a periodic check of the file as the backstop.
//!
//! Only events on the entries of the chain ([`SymlinkChain`]) wake the reload thread, and
//! nothing is logged for any other event: the config's directory often holds the
//! gateway's own log file, and logging a line per event there would feed itself.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher};

use super::symlink_chain::SymlinkChain;
use super::{lower_thread_priority, Reloader, DEBOUNCE};

/// How often the file is checked even when no event came: its size, modification time
/// and inode, and the links leading to it, are compared with the last check's (a few
/// `stat` calls; the file is read only when they differ). It catches what events miss:
/// a file system without inotify (some network and FUSE mounts), a watch that could not
/// be set up, a change in a directory outside the chain.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The watch of a configuration file. It stops when this is dropped.
#[must_use = "the watch stops when this is dropped"]
pub struct ConfigWatch {
    wake: mpsc::Sender<Wake>,
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        let _ = self.wake.send(Wake::Stop);
    }
}

/// Why the watch thread wakes up.
enum Wake {
    /// An event on an entry of the chain.
    Changed,
    /// The watch was dropped.
    Stop,
}

/// What the periodic check compares: enough to tell that the file was replaced or
/// written, without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    chain: SymlinkChain,
    file: Option<(u64, Option<SystemTime>, u64, u64)>,
}

impl Fingerprint {
    fn of(path: &Path) -> Fingerprint {
        let file = std::fs::metadata(path).ok().map(|m| {
            #[cfg(unix)]
            let (dev, ino) = {
                use std::os::unix::fs::MetadataExt as _;
                (m.dev(), m.ino())
            };
            #[cfg(not(unix))]
            let (dev, ino) = (0, 0);
            (m.len(), m.modified().ok(), dev, ino)
        });
        Fingerprint {
            chain: SymlinkChain::resolve(path),
            file,
        }
    }
}

/// Starts watching `reloader`'s file from a background thread. If file events cannot
/// be had (no inotify instance left, say), the periodic check still runs.
pub(super) fn spawn(reloader: Arc<Reloader>) -> std::io::Result<ConfigWatch> {
    let (tx, rx) = mpsc::channel::<Wake>();
    let path = reloader.path().to_path_buf();
    let mut fingerprint = Fingerprint::of(&path);
    let chain = Arc::new(ArcSwap::from_pointee(fingerprint.chain.clone()));
    let mut events = match file_events(&chain, tx.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            log::warn!(
                "cannot watch {} for changes ({e}); checking it every {}s instead",
                path.display(),
                CHECK_INTERVAL.as_secs()
            );
            None
        }
    };
    if let Some(w) = events.as_mut() {
        watch_dirs(w, &fingerprint.chain, None);
    }
    std::thread::Builder::new()
        .name("pingway-config-watch".into())
        .spawn(move || {
            lower_thread_priority();
            loop {
                match rx.recv_timeout(CHECK_INTERVAL) {
                    Ok(Wake::Changed) => {
                        // Let a burst of writes settle, then reload once.
                        loop {
                            match rx.recv_timeout(DEBOUNCE) {
                                Ok(Wake::Changed) => continue,
                                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                                Err(RecvTimeoutError::Timeout) => break,
                            }
                        }
                    }
                    Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Err(RecvTimeoutError::Timeout) => {
                        if Fingerprint::of(&path) == fingerprint {
                            continue;
                        }
                        log::debug!(
                            "{}: changed without a file event; reloading",
                            path.display()
                        );
                    }
                }
                // Taken before reading, so a change made during the reload differs from
                // it and is picked up by the next check.
                let now = Fingerprint::of(&path);
                if now.chain != fingerprint.chain {
                    log::debug!(
                        "{}: now resolves to {}",
                        path.display(),
                        now.chain
                            .target()
                            .map_or_else(|| "nothing".to_string(), |t| t.display().to_string())
                    );
                    if let Some(w) = events.as_mut() {
                        watch_dirs(w, &now.chain, Some(&fingerprint.chain));
                    }
                    chain.store(Arc::new(now.chain.clone()));
                }
                fingerprint = now;
                reloader.reload_and_log(false);
            }
        })?;
    // The serving text was read before the watch began: one check now applies a change
    // made in between (a file whose text did not change is not reloaded).
    let _ = tx.send(Wake::Changed);
    Ok(ConfigWatch { wake: tx })
}

/// A file-event watcher that wakes the watch thread for events on the entries of the
/// current chain, and ignores (without logging) every other event.
fn file_events(
    chain: &Arc<ArcSwap<SymlinkChain>>,
    wake: mpsc::Sender<Wake>,
) -> notify::Result<notify::RecommendedWatcher> {
    let chain = Arc::clone(chain);
    notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            // An overflowed event queue or a failed watch: check as after a change.
            let _ = wake.send(Wake::Changed);
            return;
        };
        if is_read_only(&event.kind) {
            return;
        }
        let current = chain.load();
        if event.paths.iter().any(|p| current.concerns(p)) {
            let _ = wake.send(Wake::Changed);
        }
    })
}

/// Events that cannot change the file: opening it, reading it, closing it unwritten.
fn is_read_only(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

/// Watches the directories of `chain`, and stops watching those of `before` that it no
/// longer has. A directory that cannot be watched (it was just removed) is left to the
/// periodic check.
fn watch_dirs(
    watcher: &mut notify::RecommendedWatcher,
    chain: &SymlinkChain,
    before: Option<&SymlinkChain>,
) {
    let wanted: Vec<PathBuf> = chain.dirs().map(Path::to_path_buf).collect();
    if let Some(before) = before {
        for dir in before.dirs().filter(|d| !wanted.iter().any(|w| w == d)) {
            // A removed directory (kubelet deletes the old version) ends its own watch,
            // and the watcher drops it when it reads that event; removing it here too
            // would race with that and log a warning for every ConfigMap update.
            if std::fs::symlink_metadata(dir).is_ok() {
                let _ = watcher.unwatch(dir);
            }
        }
    }
    let already: Vec<&Path> = before.map(|b| b.dirs().collect()).unwrap_or_default();
    for dir in wanted.iter().filter(|d| !already.contains(&d.as_path())) {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            log::warn!(
                "cannot watch {} ({e}); changes there are seen by the check every {}s",
                dir.display(),
                CHECK_INTERVAL.as_secs()
            );
        }
    }
}
