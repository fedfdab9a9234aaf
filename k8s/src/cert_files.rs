//! Certificate chains and private keys as files beside the generated configuration,
//! which names them by path (`cert:`, `key:`) instead of holding their PEM inline: the
//! file stays small enough to parse fast with tens of thousands of certificates, and
//! keys are not in a file that is otherwise harmless to read.
//!
//! - Each file is named by its content ([`pingway::tls::content_digest`]): `<hex>.crt`
//!   or `<hex>.key`. An unchanged certificate is never rewritten, and a changed one gets
//!   a new name, so the configuration's text changes and the gateway reloads it.
//! - Written atomically (a temporary file in the directory, then renamed); keys with
//!   mode 0600, the directory 0700 when created.
//! - Kept: the files of the configuration just written and of the one before it (the
//!   gateway may still be loading that one). Any other file of ours in the directory is
//!   removed once it has been unreferenced for the grace period (a slow gateway load of
//!   an older configuration still finds its files). Files whose names are not ours are
//!   left alone.
//!
//! Bound: a configuration names at most two files per certificate, and certificates are
//! bounded by `--max-certificates` (default 50,000), so the directory holds at most
//! 4 × max-certificates files for the two generations kept, plus those unreferenced for
//! less than the grace period. Key material is never logged: messages name files only.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One file a configuration names: a certificate chain or a private key, in PEM.
#[derive(Clone)]
pub struct PemFile {
    /// The file name in the directory: `<content digest>.crt` or `.key`.
    pub name: String,
    text: Arc<str>,
    /// A private key: written with mode 0600.
    pub private: bool,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The name only: never the PEM (a key's is secret).
        f.debug_struct("PemFile")
            .field("name", &self.name)
            .field("private", &self.private)
            .finish_non_exhaustive()
    }
}

impl PemFile {
    /// A certificate chain's file.
    pub fn certificate(pem: impl Into<Arc<str>>) -> PemFile {
        PemFile::named(pem.into(), "crt", false)
    }

    /// A private key's file.
    pub fn key(pem: impl Into<Arc<str>>) -> PemFile {
        PemFile::named(pem.into(), "key", true)
    }

    fn named(text: Arc<str>, ext: &str, private: bool) -> PemFile {
        PemFile {
            name: format!("{}.{ext}", pingway::tls::content_digest(text.as_bytes())),
            text,
            private,
        }
    }

    /// The PEM text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The certificate directory of the configuration file `output`: `<output>.d/certs`,
/// absolute (the gateway may run from another working directory).
pub fn dir_for(output: &Path) -> PathBuf {
    let absolute = std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf());
    let mut name = absolute.as_os_str().to_os_string();
    name.push(".d");
    PathBuf::from(name).join("certs")
}

/// Whether `name` is one of ours: a content-named file, or one of our temporary files.
fn ours(name: &str) -> bool {
    let content_named = |n: &str| {
        n.strip_suffix(".crt")
            .or_else(|| n.strip_suffix(".key"))
            .is_some_and(|stem| stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    content_named(name)
        || name
            .strip_prefix('.')
            .and_then(|n| n.split_once(".tmp-"))
            .is_some_and(|(n, _)| content_named(n))
}

/// The directory's files and which configurations name them.
#[derive(Debug)]
pub struct CertificateDir {
    dir: PathBuf,
    grace: Duration,
    /// Files known to be in the directory with their right content (written or checked
    /// by this process).
    present: HashSet<String>,
    /// Named by the configuration written last.
    current: HashSet<String>,
    /// Named by the one before.
    previous: HashSet<String>,
    /// Our files named by neither, since when they are seen so.
    unreferenced: HashMap<String, Instant>,
}

/// What one [`CertificateDir::collect`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Files removed.
    pub removed: usize,
    /// Unreferenced files kept for now (within the grace period).
    pub waiting: usize,
    /// Files that could not be removed.
    pub errors: usize,
}

impl CertificateDir {
    /// Opens (creating, mode 0700) the directory `dir`. Files already there (from an
    /// earlier run, which a gateway may still be serving) count as the current
    /// generation: they are kept until a second configuration is committed.
    pub fn open(dir: PathBuf, grace: Duration) -> std::io::Result<CertificateDir> {
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut current = HashSet::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if ours(&name) && !name.starts_with('.') {
                current.insert(name);
            }
        }
        Ok(CertificateDir {
            dir,
            grace,
            present: HashSet::new(),
            current,
            previous: HashSet::new(),
            unreferenced: HashMap::new(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes the files not already there with this content; returns how many were
    /// written. Call before writing the configuration that names them.
    pub fn write(&mut self, files: &[PemFile]) -> std::io::Result<usize> {
        let mut written = 0;
        for f in files {
            if self.present.contains(&f.name) {
                continue;
            }
            let path = self.dir.join(&f.name);
            // From an earlier run, or rewritten after a crash: checked once.
            let same = std::fs::read(&path).is_ok_and(|b| b == f.text.as_bytes());
            if !same {
                write_file(&self.dir, &f.name, f.text.as_bytes(), f.private)?;
                written += 1;
            }
            self.present.insert(f.name.clone());
        }
        Ok(written)
    }

    /// Records that the configuration naming `files` is written: the one before it
    /// becomes the previous generation (unless `files` is the same set as now).
    pub fn commit(&mut self, files: &[PemFile]) {
        let names: HashSet<String> = files.iter().map(|f| f.name.clone()).collect();
        if names != self.current {
            self.previous = std::mem::replace(&mut self.current, names);
        }
    }

    /// Removes our files named by neither the current nor the previous configuration
    /// and unreferenced for the grace period (as of `now`). After a failure, the files
    /// waiting are tried again a grace period later.
    pub fn collect(&mut self, now: Instant) -> std::io::Result<Collected> {
        let result = self.try_collect(now);
        if result.is_err() {
            self.unreferenced
                .values_mut()
                .for_each(|since| *since = now);
        }
        result
    }

    fn try_collect(&mut self, now: Instant) -> std::io::Result<Collected> {
        let mut done = Collected::default();
        let mut seen = HashSet::new();
        let entries = std::fs::read_dir(&self.dir)?.collect::<Result<Vec<_>, _>>()?;
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !ours(&name) {
                continue;
            }
            seen.insert(name.clone());
            if self.current.contains(&name) || self.previous.contains(&name) {
                self.unreferenced.remove(&name);
                continue;
            }
            let since = *self.unreferenced.entry(name.clone()).or_insert(now);
            if now.saturating_duration_since(since) < self.grace {
                done.waiting += 1;
                continue;
            }
            match std::fs::remove_file(self.dir.join(&name)) {
                Ok(()) => done.removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    done.errors += 1;
                    log::warn!("cannot remove {}: {e}", self.dir.join(&name).display());
                    // Tried again a grace period later, not at once.
                    self.unreferenced.insert(name, now);
                    continue;
                }
            }
            self.unreferenced.remove(&name);
            self.present.remove(&name);
        }
        // Gone from the directory (removed by someone else): forget them, and write
        // them again if named.
        self.unreferenced.retain(|n, _| seen.contains(n));
        self.present.retain(|n| seen.contains(n));
        Ok(done)
    }

    /// When the next unreferenced file's grace period ends, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.unreferenced
            .values()
            .min()
            .map(|since| *since + self.grace)
    }
}

/// Writes `dir/name` atomically (a temporary file, then a rename); mode 0600 when
/// `private`, else 0644. Not synced file by file: tens of thousands of fsyncs would
/// take minutes, and after a crash [`CertificateDir::write`] checks every file's
/// content again before the configuration naming it is written.
fn write_file(dir: &Path, name: &str, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if private { 0o600 } else { 0o644 })
            .open(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn sorted(files: &[&PemFile]) -> Vec<String> {
        let mut v: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn files_are_named_by_content_and_keys_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertificateDir::open(tmp.path().join("certs"), Duration::ZERO).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        let cert = PemFile::certificate("CERT A");
        let key = PemFile::key("KEY A");
        assert_eq!(cert.name, PemFile::certificate("CERT A").name);
        assert_ne!(cert.name, PemFile::certificate("CERT B").name);
        assert!(!format!("{key:?}").contains("KEY A"));
        assert_eq!(dir.write(&[cert.clone(), key.clone()]).unwrap(), 2);
        // Unchanged content is not written again.
        assert_eq!(dir.write(&[cert.clone(), key.clone()]).unwrap(), 0);
        let read = |f: &PemFile| std::fs::read_to_string(dir.path().join(&f.name)).unwrap();
        assert_eq!(read(&cert), "CERT A");
        assert_eq!(read(&key), "KEY A");
        assert_eq!(mode(&dir.path().join(&key.name)), 0o600);
        assert_eq!(mode(&dir.path().join(&cert.name)), 0o644);
        assert_eq!(names(dir.path()), sorted(&[&cert, &key]));
    }

    #[test]
    fn collection_keeps_two_generations_and_waits_out_the_grace_period() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("certs");
        std::fs::create_dir_all(&path).unwrap();
        // A file from an earlier run, and one that is not ours.
        let old = PemFile::certificate("OLD");
        std::fs::write(path.join(&old.name), "OLD").unwrap();
        std::fs::write(path.join("README"), "not ours").unwrap();
        let grace = Duration::from_secs(30);
        let mut dir = CertificateDir::open(path.clone(), grace).unwrap();
        let t0 = Instant::now();

        let (a, b, c) = (
            PemFile::certificate("A"),
            PemFile::certificate("B"),
            PemFile::certificate("C"),
        );
        let key = PemFile::key("K");
        let gen1 = [a.clone(), key.clone()];
        dir.write(&gen1).unwrap();
        dir.commit(&gen1);
        // The earlier run's file is the previous generation: kept.
        assert_eq!(dir.collect(t0).unwrap(), Collected::default());
        assert_eq!(dir.next_due(), None);

        let gen2 = [b.clone(), key.clone()];
        dir.write(&gen2).unwrap();
        dir.commit(&gen2);
        // `old` is named by neither generation now: waits out the grace period.
        let got = dir.collect(t0).unwrap();
        assert_eq!((got.removed, got.waiting), (0, 1));
        assert_eq!(dir.next_due(), Some(t0 + grace));
        assert!(path.join(&old.name).exists());
        let got = dir.collect(t0 + grace).unwrap();
        assert_eq!((got.removed, got.waiting), (1, 0));
        assert!(!path.join(&old.name).exists());
        // `a` is the previous generation's: kept.
        assert!(path.join(&a.name).exists());

        // The same set again changes nothing (the previous generation stays).
        dir.commit(&gen2);
        assert_eq!(dir.collect(t0 + grace).unwrap(), Collected::default());
        assert!(path.join(&a.name).exists());

        let gen3 = [c.clone(), key.clone()];
        dir.write(&gen3).unwrap();
        dir.commit(&gen3);
        let later = t0 + 2 * grace;
        let got = dir.collect(later).unwrap();
        assert_eq!((got.removed, got.waiting), (0, 1));
        let got = dir.collect(later + grace).unwrap();
        assert_eq!((got.removed, got.waiting), (1, 0));
        assert_eq!(dir.next_due(), None);
        let mut want = sorted(&[&b, &c, &key]);
        want.push("README".into());
        want.sort();
        assert_eq!(names(&path), want);

        // A file removed by someone else is written again when named.
        std::fs::remove_file(path.join(&c.name)).unwrap();
        dir.collect(later + grace).unwrap();
        assert_eq!(dir.write(&gen3).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(path.join(&c.name)).unwrap(), "C");
    }

    #[test]
    fn only_content_named_and_temporary_files_are_ours() {
        let name = PemFile::key("K").name;
        assert!(ours(&name));
        assert!(ours(&format!(".{name}.tmp-42")));
        assert!(!ours("README"));
        assert!(!ours("tls.key"));
        assert!(!ours(&name.replace(".key", ".pem")));
    }

    #[test]
    fn the_directory_sits_beside_the_file_and_is_absolute() {
        let d = dir_for(Path::new("out/pingway.yaml"));
        assert!(d.is_absolute(), "{}", d.display());
        assert!(d.ends_with("out/pingway.yaml.d/certs"), "{}", d.display());
    }
}
