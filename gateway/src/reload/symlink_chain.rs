//! The directory entries a configuration path depends on: the path's own file name, each
//! symbolic link it is reached through, and the final file.
//!
//! A Kubernetes ConfigMap volume mounts `dir/live.yaml → ..data/live.yaml` with
//! `..data → ..2026_12_01_v1`, and updates the file by renaming a new `..data` link into
//! place: nothing named `live.yaml` changes in `dir`. A config path that is a link to a
//! file elsewhere is edited where the file is. Watching the entries along the chain, in
//! the directories that hold them, sees both.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Links followed before giving up, as the kernel does (`ELOOP` after 40).
const MAX_LINKS: usize = 40;

/// The directory entries a path depends on, by directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymlinkChain {
    /// Directory → the names in it that the path goes through (links and the final
    /// file). Directories are absolute, with every link before them resolved.
    entries: BTreeMap<PathBuf, BTreeSet<OsString>>,
    /// The file the path resolves to, when it exists.
    target: Option<PathBuf>,
}

/// One step of a path still to resolve.
enum Step {
    Root,
    Parent,
    Name(OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::Prefix(_) | Component::RootDir => Some(Step::Root),
        Component::CurDir => None,
        Component::ParentDir => Some(Step::Parent),
        Component::Normal(n) => Some(Step::Name(n.to_os_string())),
    })
}

impl SymlinkChain {
    /// Resolves `path` (relative to the current directory if relative), recording each
    /// link on the way and the final entry. A missing entry ends the chain there (it is
    /// recorded, so that its creation is seen).
    pub fn resolve(path: &Path) -> SymlinkChain {
        let mut chain = SymlinkChain::default();
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut pending: VecDeque<Step> = steps(&absolute).collect();
        let mut current = PathBuf::from("/");
        let mut links = 0;
        while let Some(step) = pending.pop_front() {
            let name = match step {
                Step::Root => {
                    current = PathBuf::from("/");
                    continue;
                }
                // `current` has no links in it, so its parent is the real one.
                Step::Parent => {
                    current.pop();
                    continue;
                }
                Step::Name(name) => name,
            };
            let candidate = current.join(&name);
            let last = pending.is_empty();
            let Ok(meta) = std::fs::symlink_metadata(&candidate) else {
                chain.record(&current, name);
                return chain;
            };
            if meta.file_type().is_symlink() {
                chain.record(&current, name);
                links += 1;
                let Ok(link) = std::fs::read_link(&candidate) else {
                    return chain;
                };
                if links > MAX_LINKS {
                    return chain;
                }
                for step in steps(&link).rev() {
                    pending.push_front(step);
                }
                continue;
            }
            if last {
                chain.record(&current, name);
                chain.target = Some(candidate);
                return chain;
            }
            current = candidate;
        }
        chain
    }

    fn record(&mut self, dir: &Path, name: OsString) {
        self.entries
            .entry(dir.to_path_buf())
            .or_default()
            .insert(name);
    }

    /// Whether a change to `path` (as reported by the watcher: a watched directory joined
    /// with an entry's name) concerns the configuration.
    pub fn concerns(&self, path: &Path) -> bool {
        match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => self
                .entries
                .get(dir)
                .is_some_and(|names| names.contains(name)),
            _ => false,
        }
    }

    /// The directories to watch.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.entries.keys().map(PathBuf::as_path)
    }

    /// The file the path resolves to, if it exists.
    pub fn target(&self) -> Option<&Path> {
        self.target.as_deref()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn names(chain: &SymlinkChain, dir: &Path) -> Vec<String> {
        chain
            .entries
            .get(dir)
            .map(|n| n.iter().map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_plain_file_is_its_own_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::write(dir.join("gw.yaml"), "a: 1").unwrap();
        let chain = SymlinkChain::resolve(&dir.join("gw.yaml"));
        assert_eq!(chain.dirs().collect::<Vec<_>>(), vec![dir.as_path()]);
        assert!(chain.concerns(&dir.join("gw.yaml")));
        assert!(!chain.concerns(&dir.join("gw.log")));
        assert_eq!(chain.target(), Some(dir.join("gw.yaml").as_path()));
    }

    #[test]
    fn a_configmap_volume_is_followed_through_its_data_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(dir.join("..2026_12_01_v1")).unwrap();
        std::fs::write(dir.join("..2026_12_01_v1/live.yaml"), "a: 1").unwrap();
        symlink("..2026_12_01_v1", dir.join("..data")).unwrap();
        symlink("..data/live.yaml", dir.join("live.yaml")).unwrap();
        let chain = SymlinkChain::resolve(&dir.join("live.yaml"));
        assert_eq!(names(&chain, &dir), vec!["..data", "live.yaml"]);
        let version = dir.join("..2026_12_01_v1");
        assert_eq!(names(&chain, &version), vec!["live.yaml"]);
        assert!(chain.concerns(&dir.join("..data")));
        assert!(!chain.concerns(&dir.join("..data_tmp")));
        assert_eq!(chain.target(), Some(version.join("live.yaml").as_path()));
    }

    #[test]
    fn a_link_to_a_file_elsewhere_watches_both_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::fs::write(root.join("real/gw.yaml"), "a: 1").unwrap();
        symlink(root.join("real/gw.yaml"), root.join("etc/gw.yaml")).unwrap();
        let chain = SymlinkChain::resolve(&root.join("etc/./gw.yaml"));
        assert_eq!(names(&chain, &root.join("etc")), vec!["gw.yaml"]);
        assert_eq!(names(&chain, &root.join("real")), vec!["gw.yaml"]);
    }

    #[test]
    fn a_missing_file_or_a_link_loop_ends_the_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().canonicalize().unwrap();
        let chain = SymlinkChain::resolve(&dir.join("none.yaml"));
        assert!(chain.concerns(&dir.join("none.yaml")));
        assert_eq!(chain.target(), None);
        symlink("b", dir.join("a")).unwrap();
        symlink("a", dir.join("b")).unwrap();
        let chain = SymlinkChain::resolve(&dir.join("a"));
        assert_eq!(names(&chain, &dir), vec!["a", "b"]);
        assert_eq!(chain.target(), None);
    }
}
