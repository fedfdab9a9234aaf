//! The storage directory (`acme.storage`): the account key and each certificate with its
//! key, written atomically (a temporary file renamed over the old one) with keys readable
//! by the owner only.
//!
//! ```text
//! <storage>/account.key                 the account's ECDSA P-256 key (PKCS#8 PEM), 0600
//! <storage>/certificates/<id>.crt       the certificate chain (PEM), leaf first
//! <storage>/certificates/<id>.key       its private key (PKCS#8 PEM), 0600
//! ```
//!
//! `<id>` is the certificate's host name, or for several names the first one and a
//! digest of them all (`app.example.com-3f2a9c1b`).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Issued;

/// The file name (without extension) of the certificate for `names` (sorted).
pub fn file_id(names: &[String]) -> String {
    let safe = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    let first = names.first().map_or_else(String::new, |n| safe(n));
    if names.len() <= 1 {
        return first;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, names.join(",").as_bytes());
    let hex: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{first}-{hex}")
}

fn certificates_dir(storage: &Path) -> PathBuf {
    storage.join("certificates")
}

/// The stored certificate `id`, if both its files are there: `Err` when they are there
/// but unusable (unreadable, mismatched, expired, or not covering `names`).
pub fn load_certificate(
    storage: &Path,
    id: &str,
    names: &[String],
) -> Result<Option<Issued>, String> {
    let dir = certificates_dir(storage);
    let (crt, key) = (dir.join(format!("{id}.crt")), dir.join(format!("{id}.key")));
    if !crt.exists() && !key.exists() {
        return Ok(None);
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let (chain, key) = (read(&crt)?, read(&key)?);
    Issued::from_pem(&chain, &key, names, SystemTime::now()).map(Some)
}

/// Writes the certificate `id` (chain and key), replacing the stored one.
pub fn save_certificate(
    storage: &Path,
    id: &str,
    chain_pem: &str,
    key_pem: &str,
) -> std::io::Result<()> {
    let dir = certificates_dir(storage);
    create_private_dir(&dir)?;
    // The key first: a crash between the two leaves a pair that does not match, which
    // the next start refuses (and orders again) rather than serving a wrong key.
    write_atomically(&dir.join(format!("{id}.key")), key_pem.as_bytes(), 0o600)?;
    write_atomically(&dir.join(format!("{id}.crt")), chain_pem.as_bytes(), 0o644)
}

/// The account key's PKCS#8 DER, created (and stored, 0600) on first use.
pub fn account_key(storage: &Path) -> std::io::Result<Vec<u8>> {
    let path = storage.join("account.key");
    match std::fs::read(&path) {
        Ok(pem) => {
            let (label, der) = pem_rfc7468::decode_vec(&pem)
                .map_err(|_| invalid(format!("{}: not a PEM private key", path.display())))?;
            if label != "PRIVATE KEY" {
                return Err(invalid(format!(
                    "{}: expected a PKCS#8 PRIVATE KEY",
                    path.display()
                )));
            }
            Ok(der)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (_, der) = instant_acme::Key::generate_pkcs8()
                .map_err(|e| invalid(format!("cannot generate the account key: {e}")))?;
            let der = der.secret_pkcs8_der().to_vec();
            let pem = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
                .map_err(|e| invalid(format!("cannot encode the account key: {e}")))?;
            create_private_dir(storage)?;
            write_atomically(&path, pem.as_bytes(), 0o600)?;
            log::info!("acme: created the account key {}", path.display());
            Ok(der)
        }
        Err(e) => Err(e),
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Creates `dir` and its parents, owner-only (an existing directory is left as it is).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` through a temporary file in the same directory, flushed to
/// disk and renamed over `path`: a reader sees the old file or the new one, never half.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_ids_are_the_name_or_the_first_name_and_a_digest() {
        assert_eq!(file_id(&["app.test".into()]), "app.test");
        let two = file_id(&["a.test".into(), "b.test".into()]);
        assert!(
            two.starts_with("a.test-") && two.len() == "a.test-".len() + 8,
            "{two}"
        );
        assert_ne!(two, file_id(&["a.test".into(), "c.test".into()]));
        assert_eq!(file_id(&["../x".into()]), ".._x");
    }

    #[test]
    fn the_account_key_is_created_once_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("acme");
        let first = account_key(&storage).unwrap();
        let mode = std::fs::metadata(storage.join("account.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&storage).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(account_key(&storage).unwrap(), first);
        // A usable P-256 key.
        assert!(instant_acme::Key::from_pkcs8_der(first.into()).is_ok());
    }

    #[test]
    fn a_saved_certificate_loads_back_and_a_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["app.test".to_string()];
        assert!(load_certificate(dir.path(), "app.test", &names)
            .unwrap()
            .is_none());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names.clone())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        save_certificate(dir.path(), "app.test", &cert.pem(), &key.serialize_pem()).unwrap();
        let key_mode = std::fs::metadata(dir.path().join("certificates/app.test.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(key_mode & 0o777, 0o600);
        let issued = load_certificate(dir.path(), "app.test", &names)
            .unwrap()
            .expect("stored");
        assert!(issued.not_after > SystemTime::now());
        // Not covering a name asked for.
        let more = vec!["app.test".to_string(), "www.app.test".to_string()];
        let err = load_certificate(dir.path(), "app.test", &more).unwrap_err();
        assert!(err.contains("does not cover www.app.test"), "{err}");
        // Another key.
        let other = rcgen::KeyPair::generate().unwrap();
        save_certificate(dir.path(), "app.test", &cert.pem(), &other.serialize_pem()).unwrap();
        let err = load_certificate(dir.path(), "app.test", &names).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
        assert!(!err.contains("PRIVATE"), "{err}");
    }
}
