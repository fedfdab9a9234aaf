//! Reading a configuration file, refusing one larger than the bound in force
//! ([`max_file_bytes`], [`MAX_FILE_BYTES`] by default) before it is read whole.

use std::io::Read as _;
use std::path::Path;

#[cfg(test)]
use super::limits::MAX_FILE_BYTES;
use super::limits::{describe_bytes, max_file_bytes, MAX_FILE_BYTES_ENV};

/// A configuration file over the bound in force. Carried inside an [`std::io::Error`] of
/// kind [`std::io::ErrorKind::FileTooLarge`], so that every caller that reports a file it
/// cannot read reports this one too, with the limit named.
#[derive(Debug, thiserror::Error)]
#[error(
    "the file is {size} bytes, over the {} limit for a configuration file (MAX_FILE_BYTES; \
     raise it with --max-config-bytes or {MAX_FILE_BYTES_ENV})",
    describe_bytes(*limit)
)]
pub struct FileTooLarge {
    /// The file's size in bytes (at least what was read of it).
    pub size: u64,
    /// The bound it is over.
    pub limit: u64,
}

/// Reads a configuration file as UTF-8 text. A file over [`max_file_bytes`] is refused
/// with a [`FileTooLarge`] error, checked from its metadata first and then while
/// reading (a file still being appended to, or a special file that reports no size,
/// cannot slip past the check).
pub fn read_config_file(path: &Path) -> std::io::Result<String> {
    read_config_file_within(path, max_file_bytes())
}

/// [`read_config_file`] with the bound `limit` instead of the process's.
pub fn read_config_file_within(path: &Path, limit: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Err(too_large(size, limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte more than the limit tells a file that grew past it from one at it.
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64, limit));
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn too_large(size: u64, limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        FileTooLarge { size, limit },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_file_at_the_limit_and_refuses_one_byte_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let f = std::fs::File::create(&path).unwrap();
        // Sparse: no 4 MiB written to the disk.
        f.set_len(MAX_FILE_BYTES).unwrap();
        assert_eq!(
            read_config_file(&path).unwrap().len() as u64,
            MAX_FILE_BYTES
        );
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let err = read_config_file(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("4 MiB limit"), "{err}");
    }

    #[test]
    fn a_raised_or_lowered_bound_is_the_one_checked_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        let raised = 2 * MAX_FILE_BYTES;
        assert!(read_config_file_within(&path, raised).is_ok());
        let err = read_config_file_within(&path, 1000).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("1000 bytes limit"), "{err}");
        assert!(err.to_string().contains("--max-config-bytes"), "{err}");
    }

    #[test]
    fn refuses_text_that_is_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin.yaml");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_config_file(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
