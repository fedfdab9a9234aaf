//! Basic-auth passwords: plain ones compared in constant time, stored hashes (bcrypt,
//! argon2) verified off the request threads and cached.
//!
//! # Cost of wrong credentials
//!
//! A plain password costs one SHA-256 of the given password and a constant-time compare
//! of two digests, right or wrong: a flood of wrong passwords costs what a flood of
//! right ones does.
//!
//! A stored hash is slow to check by design (that is its point). Checking it on every
//! request would make each wrong password cost a full bcrypt/argon2 run while right ones
//! could be cached, so a flood of wrong credentials would be far slower per request (and
//! burn CPU). So both outcomes are cached, keyed by an HMAC (with a per-load random key)
//! of the username and the password:
//! - a verified password is remembered in a positive cache (only a right password can
//!   enter it, so an attacker cannot evict entries with wrong guesses beyond its bound);
//! - a refused password is remembered in a separate negative cache, so repeating the
//!   same wrong credentials costs one HMAC, like repeating right ones;
//! - concurrent requests with the same credentials, before either cache knows them,
//!   share one hash run.
//!
//! What remains is inherent to slow hashes: each *distinct* wrong password against a
//! hashed credential costs one hash run. Those runs happen on the blocking thread pool,
//! on all CPU cores but one at most (one on a single core), so a flood of them never
//! stalls the proxy's own threads, though it slows them; prefer plain passwords (or
//! key-auth) where that matters. An unknown username costs no
//! hash at all (Kong behaves the same; it reveals which usernames exist to a client
//! that can time requests precisely). For plain passwords an unknown username costs the
//! same SHA-256 as a wrong password, so there it reveals nothing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ring::digest;
use subtle::ConstantTimeEq;

/// Entries per cache (positive and negative each).
const CACHE_ENTRIES: usize = 4096;

/// A stored basic-auth password.
pub(crate) enum StoredPassword {
    /// The SHA-256 digest of a plain password (the plain text is not kept).
    Plain([u8; 32]),
    /// A bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
    Bcrypt(Arc<str>),
    /// An argon2 PHC string (`$argon2id$`...).
    Argon2(Arc<str>),
}

#[cfg(test)]
thread_local! {
    /// SHA-256 runs on this thread, so tests can check that right and wrong passwords
    /// cost the same work.
    pub(crate) static SHA256_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn sha256(data: &[u8]) -> [u8; 32] {
    #[cfg(test)]
    SHA256_RUNS.with(|n| n.set(n.get() + 1));
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl StoredPassword {
    /// Recognises a stored hash by its prefix; anything else is a plain password.
    pub(crate) fn parse(value: &str) -> Result<StoredPassword, &'static str> {
        if value.is_empty() {
            return Err("must not be empty");
        }
        if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| value.starts_with(p))
        {
            // A bcrypt hash is 60 characters: $2b$NN$ + 53 characters of salt and hash.
            let cost_ok = value
                .get(4..6)
                .and_then(|c| c.parse::<u32>().ok())
                .is_some_and(|c| (4..=31).contains(&c));
            if value.len() != 60 || !cost_ok {
                return Err("looks like a bcrypt hash but is not a valid one");
            }
            return Ok(StoredPassword::Bcrypt(Arc::from(value)));
        }
        if value.starts_with("$argon2") {
            let valid = argon2::PasswordHash::new(value).is_ok_and(|h| {
                h.hash.is_some() && h.salt.is_some() && argon2::Params::try_from(&h).is_ok()
            });
            if !valid {
                return Err("looks like an argon2 hash but is not a valid one");
            }
            return Ok(StoredPassword::Argon2(Arc::from(value)));
        }
        Ok(StoredPassword::Plain(sha256(value.as_bytes())))
    }

    /// Checks `given` against a plain password, in constant time (digests of equal
    /// length are compared, so not even the length leaks). `None` for stored hashes.
    pub(crate) fn check_plain(&self, given: &[u8]) -> Option<bool> {
        match self {
            StoredPassword::Plain(d) => Some(bool::from(sha256(given).ct_eq(d))),
            _ => None,
        }
    }

    /// The work of [`Self::check_plain`] for a username that has no credential, so that
    /// an unknown username costs what a wrong plain password does. Always `false`.
    pub(crate) fn check_unknown_user(given: &[u8]) -> bool {
        // black_box: the digest and comparison must not be optimised away.
        std::hint::black_box(bool::from(sha256(given).ct_eq(&[0u8; 32])));
        false
    }

    /// Runs the slow verification of a stored hash (blocking).
    pub(crate) fn verify_hash(&self, given: &[u8]) -> bool {
        match self {
            StoredPassword::Plain(d) => bool::from(sha256(given).ct_eq(d)),
            StoredPassword::Bcrypt(hash) => bcrypt::verify(given, hash).unwrap_or(false),
            StoredPassword::Argon2(hash) => {
                use argon2::PasswordVerifier;
                argon2::PasswordHash::new(hash).is_ok_and(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(given, &parsed)
                        .is_ok()
                })
            }
        }
    }

    /// A copy for a blocking task.
    pub(crate) fn clone_for_task(&self) -> StoredPassword {
        match self {
            StoredPassword::Plain(d) => StoredPassword::Plain(*d),
            StoredPassword::Bcrypt(h) => StoredPassword::Bcrypt(h.clone()),
            StoredPassword::Argon2(h) => StoredPassword::Argon2(h.clone()),
        }
    }
}

/// A bounded set of 32-byte cache keys. When full, an arbitrary entry makes room.
pub(crate) struct BoundedSet(Mutex<HashSet<[u8; 32]>>);

impl BoundedSet {
    pub(crate) fn new() -> Self {
        BoundedSet(Mutex::new(HashSet::new()))
    }

    pub(crate) fn contains(&self, key: &[u8; 32]) -> bool {
        self.0.lock().map(|s| s.contains(key)).unwrap_or(false)
    }

    pub(crate) fn insert(&self, key: [u8; 32]) {
        if let Ok(mut set) = self.0.lock() {
            if set.len() >= CACHE_ENTRIES {
                if let Some(victim) = set.iter().next().copied() {
                    set.remove(&victim);
                }
            }
            set.insert(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hashed_passwords() {
        let p = StoredPassword::parse("hunter2").unwrap();
        assert_eq!(p.check_plain(b"hunter2"), Some(true));
        assert_eq!(p.check_plain(b"hunter3"), Some(false));
        assert_eq!(p.check_plain(b""), Some(false));

        let hash = bcrypt::hash_with_salt("hunter2", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let b = StoredPassword::parse(&hash).unwrap();
        assert!(matches!(b, StoredPassword::Bcrypt(_)));
        assert_eq!(b.check_plain(b"hunter2"), None);
        assert!(b.verify_hash(b"hunter2"));
        assert!(!b.verify_hash(b"hunter3"));

        // argon2id, m=64 KiB, t=1, p=1; password "hunter2", salt "c29tZXNhbHQ".
        use argon2::PasswordHasher;
        let salt = argon2::password_hash::SaltString::from_b64("c29tZXNhbHQ").unwrap();
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"hunter2", &salt)
            .unwrap()
            .to_string();
        let a = StoredPassword::parse(&a2).unwrap();
        assert!(matches!(a, StoredPassword::Argon2(_)));
        assert!(a.verify_hash(b"hunter2"));
        assert!(!a.verify_hash(b"hunter3"));

        assert!(StoredPassword::parse("$2b$10$short").is_err());
        assert!(StoredPassword::parse("$argon2id$nonsense").is_err());
        assert!(StoredPassword::parse("").is_err());
    }

    #[test]
    fn bounded_set_stays_bounded() {
        let s = BoundedSet::new();
        for i in 0..(CACHE_ENTRIES + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s.insert(k);
        }
        assert_eq!(s.0.lock().unwrap().len(), CACHE_ENTRIES);
    }
}
