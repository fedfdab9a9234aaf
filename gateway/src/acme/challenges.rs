//! The HTTP-01 answers of the orders in progress: the CA fetches
//! `http://<host>/.well-known/acme-challenge/<token>` and expects the key authorization
//! (`<token>.<account key thumbprint>`) as the body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Pending challenges, at most: one order of at most 100 names is in progress at a
/// time, so this is never reached by the gateway's own orders; a challenge beyond it is
/// refused (its order fails and is retried later).
pub const MAX_PENDING_CHALLENGES: usize = 256;

/// Where the CA fetches the answer.
pub const PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// The pending HTTP-01 challenges, by token.
#[derive(Debug, Default)]
pub struct Challenges {
    answers: RwLock<HashMap<String, Arc<str>>>,
    /// The map's size, read without the lock: a request pays one atomic load while no
    /// order is in progress.
    pending: AtomicUsize,
}

/// Why a challenge was not added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChallengeError {
    /// [`MAX_PENDING_CHALLENGES`] are already pending.
    #[error("{MAX_PENDING_CHALLENGES} challenges are already pending")]
    Full,
    /// The token has characters outside base64url (RFC 8555 §8.3).
    #[error("the CA's token is not base64url")]
    BadToken,
}

impl Challenges {
    /// The key authorization to answer for `path`, if it is a pending challenge's.
    pub fn answer(&self, path: &str) -> Option<Arc<str>> {
        if self.pending.load(Ordering::Acquire) == 0 {
            return None;
        }
        let token = path.strip_prefix(PATH_PREFIX)?;
        self.answers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    /// Adds a challenge; it is answered until the returned guard is dropped.
    pub fn add(
        self: &Arc<Self>,
        token: &str,
        key_authorization: &str,
    ) -> Result<ChallengeGuard, ChallengeError> {
        let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if token.is_empty() || !token.bytes().all(base64url) {
            return Err(ChallengeError::BadToken);
        }
        let mut answers = self.answers.write().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= MAX_PENDING_CHALLENGES && !answers.contains_key(token) {
            return Err(ChallengeError::Full);
        }
        answers.insert(token.to_string(), Arc::from(key_authorization));
        self.pending.store(answers.len(), Ordering::Release);
        Ok(ChallengeGuard {
            challenges: self.clone(),
            token: token.to_string(),
        })
    }

    /// Challenges pending now.
    pub fn len(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps a challenge answered; dropping it removes the answer.
#[derive(Debug)]
pub struct ChallengeGuard {
    challenges: Arc<Challenges>,
    token: String,
}

impl Drop for ChallengeGuard {
    fn drop(&mut self) {
        let mut answers = self
            .challenges
            .answers
            .write()
            .unwrap_or_else(|e| e.into_inner());
        answers.remove(&self.token);
        self.challenges
            .pending
            .store(answers.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_pending_tokens_under_the_well_known_path() {
        let c = Arc::new(Challenges::default());
        assert_eq!(c.answer("/.well-known/acme-challenge/abc"), None);
        let guard = c.add("abc-_1", "abc-_1.thumb").unwrap();
        assert_eq!(
            c.answer("/.well-known/acme-challenge/abc-_1").as_deref(),
            Some("abc-_1.thumb")
        );
        assert_eq!(c.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(c.answer("/abc-_1"), None);
        assert_eq!(c.len(), 1);
        drop(guard);
        assert!(c.is_empty());
        assert_eq!(c.answer("/.well-known/acme-challenge/abc-_1"), None);
        assert_eq!(c.add("../etc", "x").unwrap_err(), ChallengeError::BadToken);
        assert_eq!(c.add("", "x").unwrap_err(), ChallengeError::BadToken);
    }

    #[test]
    fn the_map_is_bounded() {
        let c = Arc::new(Challenges::default());
        let guards: Vec<_> = (0..MAX_PENDING_CHALLENGES)
            .map(|i| c.add(&format!("t{i}"), "k").unwrap())
            .collect();
        assert_eq!(c.add("one-more", "k").unwrap_err(), ChallengeError::Full);
        drop(guards);
        assert!(c.add("one-more", "k").is_ok());
    }
}
