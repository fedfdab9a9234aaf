//! `pingway run --kubernetes`: the Kubernetes watcher lives in the `pingway-k8s` crate,
//! which depends on this one (contract ← plugins ← pingway ← pingway-k8s), so this
//! binary cannot link it. Instead it replaces itself (`execv`) with
//! `pingway-k8s serve ARGS...`, which runs the watcher and the gateway in one process
//! with one translation. The binary is looked for next to the running `pingway`, then
//! on `PATH`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The watcher binary's file name.
pub const WATCHER_BINARY: &str = "pingway-k8s";

/// Where `pingway-k8s` is: next to the current executable, else the first on `PATH`.
pub fn find_watcher() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(WATCHER_BINARY)));
    if let Some(p) = beside.filter(|p| is_executable(p)) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(WATCHER_BINARY))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Why `pingway run --kubernetes` could not start the watcher.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No `pingway-k8s` next to this binary nor on `PATH`.
    #[error(
        "pingway run --kubernetes needs the {WATCHER_BINARY} binary (the Kubernetes watcher), \
         next to this pingway ({beside}) or on PATH, and found none; install it \
         (`cargo install --path k8s`, or use the container image, which has both)"
    )]
    NotInstalled {
        /// The directory of the running binary.
        beside: String,
    },
    /// The exec itself failed.
    #[error("cannot execute {path}: {source}")]
    Exec {
        /// The binary.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Replaces this process with `pingway-k8s serve ARGS...`; returns only on failure.
pub fn exec_watcher(args: &[String]) -> ExecError {
    use std::os::unix::process::CommandExt as _;
    let Some(bin) = find_watcher() else {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.display().to_string()))
            .unwrap_or_else(|| "?".into());
        return ExecError::NotInstalled { beside };
    };
    let mut argv: Vec<OsString> = vec!["serve".into()];
    argv.extend(args.iter().map(OsString::from));
    let source = std::process::Command::new(&bin).args(argv).exec();
    ExecError::Exec {
        path: bin.display().to_string(),
        source,
    }
}
