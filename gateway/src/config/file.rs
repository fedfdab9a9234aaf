//! Reading a configuration file, refusing one larger than [`MAX_FILE_BYTES`] before it
//! is read whole.

use std::io::Read as _;
use std::path::Path;

use super::limits::MAX_FILE_BYTES;

/// A configuration file over [`MAX_FILE_BYTES`]. Carried inside an [`std::io::Error`] of
/// kind [`std::io::ErrorKind::FileTooLarge`], so that every caller that reports a file it
/// cannot read reports this one too, with the limit named.
#[derive(Debug, thiserror::Error)]
#[error(
    "the file is {size} bytes, over the {} MiB limit for a configuration file (MAX_FILE_BYTES)",
    MAX_FILE_BYTES / (1024 * 1024)
)]
pub struct FileTooLarge {
    /// The file's size in bytes (at least what was read of it).
    pub size: u64,
}

/// Reads a configuration file as UTF-8 text. A file over [`MAX_FILE_BYTES`] is refused
/// with a [`FileTooLarge`] error, checked from its metadata first and then while
/// reading (a file still being appended to, or a special file that reports no size,
/// cannot slip past the check).
pub fn read_config_file(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > MAX_FILE_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte more than the limit tells a file that grew past it from one at it.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn too_large(size: u64) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::FileTooLarge, FileTooLarge { size })
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
    fn refuses_text_that_is_not_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin.yaml");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let err = read_config_file(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
