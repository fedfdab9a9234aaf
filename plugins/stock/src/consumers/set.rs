//! [`ConsumerSet`]: the consumers of one configuration, with hash maps from each kind of
//! credential to its consumer, built once per load.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use ring::rand::{SecureRandom, SystemRandom};
use siphasher::sip128::{Hasher128 as _, SipHasher24};
use subtle::ConstantTimeEq;

use super::config::{ConsumerConfig, JwtAlgorithm};
use super::jwt_key::JwtVerifier;
use super::password::{BoundedSet, StoredPassword};
use crate::config::Diagnostic;
use crate::context::{Consumer, CredentialId};

/// A consumer and the credential that identified it.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated<'a> {
    /// The consumer.
    pub consumer: &'a Arc<Consumer>,
    /// The credential.
    pub credential: &'a CredentialId,
}

/// A jwt credential: its consumer, algorithm and verification key.
#[derive(Debug)]
pub struct JwtCredential {
    consumer: usize,
    /// The identifier (the credential's `key`).
    pub credential: CredentialId,
    /// The algorithm tokens must use.
    pub algorithm: JwtAlgorithm,
    /// Verifies signatures.
    pub verifier: JwtVerifier,
}

type InFlight = Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>;

fn lock_in_flight(
    map: &InFlight,
) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes a slow verification's entry out of the in-flight map when its request is
/// done or dropped (unless a newer entry replaced it).
struct InFlightGuard<'a> {
    map: &'a InFlight,
    key: [u8; 32],
    cell: Arc<tokio::sync::OnceCell<bool>>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = lock_in_flight(self.map);
        if map
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
        {
            map.remove(&self.key);
        }
    }
}

struct KeyAuthEntry {
    consumer: usize,
    /// Keyed digest of the key under the set's lookup key (the key itself is not kept).
    digest: [u8; 32],
    credential: CredentialId,
}

struct BasicAuthEntry {
    consumer: usize,
    password: StoredPassword,
    credential: CredentialId,
}

/// The consumers of one configuration and their credentials.
///
/// Every lookup is a hash-map lookup. API keys are looked up by a keyed digest of the key
/// ([`LookupKey`]: SipHash-2-4, a pseudo-random function, under 256 random bits drawn
/// when the set is built), so neither the map's probing nor its comparisons depend on the
/// stored keys in a way a client could time; the matched digest is then compared again in
/// constant time. Secrets are not kept in the clear:
/// API keys and plain passwords are stored as digests.
pub struct ConsumerSet {
    consumers: Vec<Arc<Consumer>>,
    by_id: HashMap<Arc<str>, usize>,
    by_username: HashMap<Arc<str>, usize>,
    by_custom_id: HashMap<Arc<str>, usize>,
    lookup_key: LookupKey,
    key_auth: HashMap<[u8; 32], KeyAuthEntry>,
    basic_auth: HashMap<String, BasicAuthEntry>,
    jwt: HashMap<String, JwtCredential>,
    verified: BoundedSet,
    refused: BoundedSet,
    /// Slow verifications under way, by cache key: concurrent requests with the same
    /// credentials (a client opening a pool of connections, or a flood repeating one
    /// guess) wait for one hash run instead of each queueing its own.
    in_flight: InFlight,
    hash_slots: Arc<tokio::sync::Semaphore>,
    /// Slow hash verifications run (tests only).
    #[cfg(test)]
    slow_runs: std::sync::atomic::AtomicUsize,
}

impl fmt::Debug for ConsumerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerSet")
            .field("consumers", &self.consumers.len())
            .field("keyauth_credentials", &self.key_auth.len())
            .field("basicauth_credentials", &self.basic_auth.len())
            .field("jwt_secrets", &self.jwt.len())
            .finish()
    }
}

/// The secret of the set's lookup digests: two SipHash-2-4 keys (128 bits each), drawn
/// when the set is built and never shown.
///
/// SipHash is a keyed pseudo-random function made for short inputs (hash-flooding
/// resistance is what it was designed for): without the key a client can neither predict
/// a digest nor make two keys collide. Two independent 128-bit outputs make the 256-bit
/// digest the maps hold. It costs a few hundred instructions where HMAC-SHA-256 cost
/// several thousand on every key-auth request; the digest is an index, not a stored
/// password hash (those stay bcrypt / argon2 / SHA-256, see `password.rs`).
#[derive(Clone, Copy)]
pub(crate) struct LookupKey([SipHasher24; 2]);

fn random_key() -> LookupKey {
    let mut bytes = [0u8; 32];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // No system randomness: fall back to a per-process value. The lookup key only
        // hardens timing; correctness does not depend on it.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes[..16].copy_from_slice(&seed.to_le_bytes());
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    LookupKey([
        SipHasher24::new_with_keys(word(0), word(1)),
        SipHasher24::new_with_keys(word(2), word(3)),
    ])
}

#[cfg(test)]
thread_local! {
    /// Digest runs on this thread, so tests can check that right and wrong keys cost the
    /// same work.
    static DIGEST_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn digest_of(key: &LookupKey, parts: &[&[u8]]) -> [u8; 32] {
    use std::hash::Hasher as _;
    #[cfg(test)]
    DIGEST_RUNS.with(|n| n.set(n.get() + 1));
    let mut out = [0u8; 32];
    for (half, base) in out.chunks_exact_mut(16).zip(key.0) {
        let mut h = base;
        for p in parts {
            // Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
            h.write(&(p.len() as u64).to_le_bytes());
            h.write(p);
        }
        let tag = h.finish128();
        half[..8].copy_from_slice(&tag.h1.to_le_bytes());
        half[8..].copy_from_slice(&tag.h2.to_le_bytes());
    }
    out
}

fn has_control_chars(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7F)
}

impl ConsumerSet {
    /// A set with no consumers.
    pub fn empty() -> &'static ConsumerSet {
        static EMPTY: OnceLock<ConsumerSet> = OnceLock::new();
        EMPTY.get_or_init(ConsumerSet::new_empty)
    }

    /// A new set with no consumers.
    pub fn new_empty() -> ConsumerSet {
        ConsumerSet {
            consumers: Vec::new(),
            by_id: HashMap::new(),
            by_username: HashMap::new(),
            by_custom_id: HashMap::new(),
            lookup_key: random_key(),
            key_auth: HashMap::new(),
            basic_auth: HashMap::new(),
            jwt: HashMap::new(),
            verified: BoundedSet::new(),
            refused: BoundedSet::new(),
            in_flight: Mutex::default(),
            hash_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            #[cfg(test)]
            slow_runs: Default::default(),
        }
    }

    /// Builds the set from the `consumers:` list found at field path `base`. Returns
    /// every problem found (duplicates, missing fields, unusable keys), each with its
    /// field path; no message quotes a secret.
    pub fn build(configs: &[ConsumerConfig], base: &str) -> Result<ConsumerSet, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let lookup_key = random_key();
        let mut consumers = Vec::with_capacity(configs.len());
        let mut by_id: HashMap<Arc<str>, usize> = HashMap::new();
        let mut by_username: HashMap<Arc<str>, usize> = HashMap::new();
        let mut by_custom_id: HashMap<&str, usize> = HashMap::new();
        let mut key_auth: HashMap<[u8; 32], KeyAuthEntry> = HashMap::new();
        let mut key_paths: HashMap<[u8; 32], String> = HashMap::new();
        let mut basic_auth: HashMap<String, BasicAuthEntry> = HashMap::new();
        let mut basic_paths: HashMap<String, String> = HashMap::new();
        let mut jwt: HashMap<String, JwtCredential> = HashMap::new();
        let mut jwt_paths: HashMap<String, String> = HashMap::new();

        for (i, c) in configs.iter().enumerate() {
            let cb = format!("{base}[{i}]");
            let index = consumers.len();
            if c.username.is_none() && c.custom_id.is_none() {
                diags.push(Diagnostic::new(
                    cb.clone(),
                    "at least one of these fields must be non-empty: 'custom_id', 'username'",
                ));
                continue;
            }
            let mut ok = true;
            for (field, value) in [
                ("id", c.id.as_deref()),
                ("username", c.username.as_deref()),
                ("custom_id", c.custom_id.as_deref()),
            ] {
                match value {
                    Some("") => {
                        diags.push(Diagnostic::new(
                            format!("{cb}.{field}"),
                            "must not be empty",
                        ));
                        ok = false;
                    }
                    Some(v) if has_control_chars(v) => {
                        diags.push(Diagnostic::new(
                            format!("{cb}.{field}"),
                            "must not contain control characters (it is sent in a header)",
                        ));
                        ok = false;
                    }
                    _ => {}
                }
            }
            let Some(id) = c.effective_id().filter(|_| ok) else {
                continue;
            };
            let id: Arc<str> = Arc::from(id);
            let id_field = if c.id.is_some() {
                "id"
            } else if c.username.is_some() {
                "username"
            } else {
                "custom_id"
            };
            if let Some(&first) = by_id.get(&id) {
                diags.push(Diagnostic::new(
                    format!("{cb}.{id_field}"),
                    format!("duplicate consumer id {id:?} (first used by {base}[{first}])"),
                ));
                continue;
            }
            if let Some(u) = &c.username {
                if let Some(&first) = by_username.get(u.as_str()) {
                    diags.push(Diagnostic::new(
                        format!("{cb}.username"),
                        format!("duplicate username {u:?} (first used by {base}[{first}])"),
                    ));
                    continue;
                }
            }
            if let Some(cid) = &c.custom_id {
                if let Some(&first) = by_custom_id.get(cid.as_str()) {
                    diags.push(Diagnostic::new(
                        format!("{cb}.custom_id"),
                        format!("duplicate custom_id {cid:?} (first used by {base}[{first}])"),
                    ));
                    continue;
                }
            }

            let mut groups: Vec<Arc<str>> = Vec::new();
            let named = c
                .groups
                .iter()
                .enumerate()
                .map(|(j, g)| (format!("{cb}.groups[{j}]"), g));
            let acls = c
                .acls
                .iter()
                .enumerate()
                .map(|(j, a)| (format!("{cb}.acls[{j}].group"), &a.group));
            for (path, g) in named.chain(acls) {
                if g.is_empty() || has_control_chars(g) || g.contains(',') {
                    diags.push(Diagnostic::new(
                        path,
                        "a group name must be non-empty, without commas or control characters",
                    ));
                } else if !groups.iter().any(|x| **x == **g) {
                    groups.push(Arc::from(g.as_str()));
                }
            }

            by_id.insert(id.clone(), index);
            let username: Option<Arc<str>> = c.username.as_deref().map(Arc::from);
            if let Some(u) = &username {
                by_username.insert(u.clone(), index);
            }
            if let Some(cid) = &c.custom_id {
                by_custom_id.insert(cid.as_str(), index);
            }
            consumers.push(Arc::new(Consumer::new(
                id.clone(),
                username,
                c.custom_id.as_deref().map(Arc::from),
                Arc::from(groups),
            )));

            for (j, k) in c.keyauth_credentials.iter().enumerate() {
                let kb = format!("{cb}.keyauth_credentials[{j}]");
                if k.key.expose().is_empty() {
                    diags.push(Diagnostic::new(format!("{kb}.key"), "must not be empty"));
                    continue;
                }
                let digest = digest_of(&lookup_key, &[k.key.expose().as_bytes()]);
                if let Some(first) = key_paths.get(&digest) {
                    diags.push(Diagnostic::new(
                        format!("{kb}.key"),
                        format!("duplicate key (the same key is used by {first})"),
                    ));
                    continue;
                }
                let cred_id = match &k.id {
                    Some(x) => x.clone(),
                    None => format!("{id}-key-{j}"),
                };
                let Some(credential) = CredentialId::new(&cred_id) else {
                    diags.push(Diagnostic::new(
                        format!("{kb}.id"),
                        "must not contain control characters (it is sent in a header)",
                    ));
                    continue;
                };
                key_paths.insert(digest, kb);
                key_auth.insert(
                    digest,
                    KeyAuthEntry {
                        consumer: index,
                        digest,
                        credential,
                    },
                );
            }

            for (j, b) in c.basicauth_credentials.iter().enumerate() {
                let bb = format!("{cb}.basicauth_credentials[{j}]");
                if b.username.is_empty() || b.username.contains(':') {
                    diags.push(Diagnostic::new(
                        format!("{bb}.username"),
                        "must be non-empty and must not contain ':'",
                    ));
                    continue;
                }
                if let Some(first) = basic_paths.get(&b.username) {
                    diags.push(Diagnostic::new(
                        format!("{bb}.username"),
                        format!(
                            "duplicate basic-auth username {:?} (first used by {first})",
                            b.username
                        ),
                    ));
                    continue;
                }
                let password = match StoredPassword::parse(b.password.expose()) {
                    Ok(p) => p,
                    Err(msg) => {
                        diags.push(Diagnostic::new(format!("{bb}.password"), msg));
                        continue;
                    }
                };
                let Some(credential) = CredentialId::new(&b.username) else {
                    diags.push(Diagnostic::new(
                        format!("{bb}.username"),
                        "must not contain control characters (it is sent in a header)",
                    ));
                    continue;
                };
                basic_paths.insert(b.username.clone(), bb);
                basic_auth.insert(
                    b.username.clone(),
                    BasicAuthEntry {
                        consumer: index,
                        password,
                        credential,
                    },
                );
            }

            for (j, s) in c.jwt_secrets.iter().enumerate() {
                let jb = format!("{cb}.jwt_secrets[{j}]");
                if s.key.is_empty() {
                    diags.push(Diagnostic::new(format!("{jb}.key"), "must not be empty"));
                    continue;
                }
                if let Some(first) = jwt_paths.get(&s.key) {
                    diags.push(Diagnostic::new(
                        format!("{jb}.key"),
                        format!("duplicate jwt key {:?} (first used by {first})", s.key),
                    ));
                    continue;
                }
                let verifier = match JwtVerifier::build(
                    s.algorithm,
                    s.secret.as_ref(),
                    s.rsa_public_key.as_deref(),
                ) {
                    Ok(v) => v,
                    Err((field, msg)) => {
                        diags.push(Diagnostic::new(format!("{jb}.{field}"), msg));
                        continue;
                    }
                };
                let Some(credential) = CredentialId::new(&s.key) else {
                    diags.push(Diagnostic::new(
                        format!("{jb}.key"),
                        "must not contain control characters (it is sent in a header)",
                    ));
                    continue;
                };
                jwt_paths.insert(s.key.clone(), jb);
                jwt.insert(
                    s.key.clone(),
                    JwtCredential {
                        consumer: index,
                        credential,
                        algorithm: s.algorithm,
                        verifier,
                    },
                );
            }
        }

        if !diags.is_empty() {
            return Err(diags);
        }
        // Slow hashes run at most one per core but one at a time, so that a flood of
        // distinct wrong passwords leaves a core to the proxy (on a 2-core machine,
        // letting hashes take both halved the throughput of everyone else).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hash_slots = cores.saturating_sub(1).max(1);
        let by_custom_id = by_custom_id
            .into_iter()
            .map(|(cid, i)| (Arc::from(cid), i))
            .collect();
        Ok(ConsumerSet {
            consumers,
            by_id,
            by_username,
            by_custom_id,
            lookup_key,
            key_auth,
            basic_auth,
            jwt,
            verified: BoundedSet::new(),
            refused: BoundedSet::new(),
            in_flight: Mutex::default(),
            hash_slots: Arc::new(tokio::sync::Semaphore::new(hash_slots)),
            #[cfg(test)]
            slow_runs: Default::default(),
        })
    }

    /// Number of consumers.
    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    /// Whether there are no consumers.
    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }

    /// All consumers, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Consumer>> {
        self.consumers.iter()
    }

    /// The consumer whose id is `id`.
    pub fn by_id(&self, id: &str) -> Option<&Arc<Consumer>> {
        self.by_id.get(id).map(|&i| &self.consumers[i])
    }

    /// The consumer named by `reference`: its id, else its username (how Kong's
    /// `anonymous` setting names a consumer).
    pub fn find(&self, reference: &str) -> Option<&Arc<Consumer>> {
        self.by_id
            .get(reference)
            .or_else(|| self.by_username.get(reference))
            .map(|&i| &self.consumers[i])
    }

    /// The consumer whose username is `username`.
    pub fn by_username(&self, username: &str) -> Option<&Arc<Consumer>> {
        self.by_username.get(username).map(|&i| &self.consumers[i])
    }

    /// The consumer whose custom_id is `custom_id`.
    pub fn by_custom_id(&self, custom_id: &str) -> Option<&Arc<Consumer>> {
        self.by_custom_id
            .get(custom_id)
            .map(|&i| &self.consumers[i])
    }

    /// The key-auth credential with API key `key`.
    pub fn key_auth(&self, key: &[u8]) -> Option<Authenticated<'_>> {
        let digest = digest_of(&self.lookup_key, &[key]);
        let entry = self.key_auth.get(&digest)?;
        // The map matched on the digest already; compare again in constant time so the
        // final decision does not rest on the map's (short-circuiting) equality.
        if !bool::from(entry.digest.ct_eq(&digest)) {
            return None;
        }
        Some(Authenticated {
            consumer: &self.consumers[entry.consumer],
            credential: &entry.credential,
        })
    }

    /// Whether a basic-auth credential has this username.
    pub fn has_basic_auth_user(&self, username: &str) -> bool {
        self.basic_auth.contains_key(username)
    }

    /// Checks a basic-auth username and password. Plain passwords are compared in
    /// constant time; stored hashes are verified on the blocking pool (on all cores
    /// but one at most) and both outcomes are cached (see `password.rs`). An unknown
    /// username costs the digest a wrong plain password costs.
    pub async fn basic_auth(&self, username: &str, password: &[u8]) -> Option<Authenticated<'_>> {
        let Some(entry) = self.basic_auth.get(username) else {
            StoredPassword::check_unknown_user(password);
            return None;
        };
        let ok = match entry.password.check_plain(password) {
            Some(ok) => ok,
            None => {
                let key = digest_of(&self.lookup_key, &[username.as_bytes(), password]);
                self.verify_cached(key, &entry.password, password).await
            }
        };
        ok.then(|| Authenticated {
            consumer: &self.consumers[entry.consumer],
            credential: &entry.credential,
        })
    }

    /// A stored hash checked through the caches: a known outcome costs nothing more;
    /// otherwise one hash run, shared by every concurrent request with the same `key`.
    async fn verify_cached(&self, key: [u8; 32], stored: &StoredPassword, given: &[u8]) -> bool {
        let cached = || {
            if self.verified.contains(&key) {
                Some(true)
            } else if self.refused.contains(&key) {
                Some(false)
            } else {
                None
            }
        };
        if let Some(ok) = cached() {
            return ok;
        }
        let cell = lock_in_flight(&self.in_flight)
            .entry(key)
            .or_default()
            .clone();
        // Removes the entry however this ends, a client that went away included: an
        // abandoned entry would stay in the map for good.
        let _guard = InFlightGuard {
            map: &self.in_flight,
            key,
            cell: cell.clone(),
        };
        let ok = *cell
            .get_or_init(|| async {
                // A run that finished just before this cell was made filled a cache.
                if let Some(ok) = cached() {
                    return ok;
                }
                let ok = self.verify_slow(stored, given).await;
                if ok {
                    self.verified.insert(key);
                } else {
                    self.refused.insert(key);
                }
                ok
            })
            .await;
        ok
    }

    async fn verify_slow(&self, stored: &StoredPassword, given: &[u8]) -> bool {
        let Ok(_permit) = self.hash_slots.clone().acquire_owned().await else {
            return false;
        };
        #[cfg(test)]
        self.slow_runs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stored = stored.clone_for_task();
        let given = given.to_vec();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || stored.verify_hash(&given))
                .await
                .unwrap_or(false),
            Err(_) => stored.verify_hash(&given),
        }
    }

    /// The jwt credential with key `key`, and its consumer.
    pub fn jwt(&self, key: &str) -> Option<(&Arc<Consumer>, &JwtCredential)> {
        let c = self.jwt.get(key)?;
        Some((&self.consumers[c.consumer], c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{from_node, ConfigNode};

    fn set(json: serde_json::Value) -> Result<ConsumerSet, Vec<Diagnostic>> {
        let configs: Vec<ConsumerConfig> =
            from_node(&ConfigNode::from_json(&json), "consumers").expect("parses");
        ConsumerSet::build(&configs, "consumers")
    }

    fn problems(json: serde_json::Value) -> Vec<String> {
        match set(json) {
            Ok(_) => vec![],
            Err(d) => d
                .iter()
                .map(|d| format!("{}: {}", d.path, d.message))
                .collect(),
        }
    }

    #[test]
    fn lookups_by_each_credential() {
        let s = set(serde_json::json!([
            {"username": "alice", "custom_id": "a-1", "groups": ["admins"], "acls": [{"group": "ops"}, {"group": "admins"}],
             "keyauth_credentials": [{"key": "alice-key"}, {"key": "alice-2", "id": "k2"}],
             "basicauth_credentials": [{"username": "al", "password": "pw"}],
             "jwt_secrets": [{"key": "alice-iss", "secret": "s"}]},
            {"id": "b-id", "username": "bob"}
        ]))
        .unwrap();
        let a = s.key_auth(b"alice-key").unwrap();
        assert_eq!(&*a.consumer.id, "alice");
        assert_eq!(&*a.credential.id, "alice-key-0");
        assert_eq!(&*s.key_auth(b"alice-2").unwrap().credential.id, "k2");
        assert!(s.key_auth(b"alice-ke").is_none());
        assert_eq!(
            a.consumer.groups.iter().map(|g| &**g).collect::<Vec<_>>(),
            vec!["admins", "ops"]
        );
        assert_eq!(a.consumer.headers().groups.as_ref().unwrap(), "admins, ops");
        assert_eq!(&*s.jwt("alice-iss").unwrap().0.id, "alice");
        assert_eq!(&*s.find("bob").unwrap().id, "b-id");
        assert_eq!(&*s.find("b-id").unwrap().id, "b-id");
        assert!(s.find("carol").is_none());
        let shown = format!("{s:?}");
        assert!(!shown.contains("alice-key"), "{shown}");
    }

    #[tokio::test]
    async fn basic_auth_plain_and_bcrypt_with_caches() {
        let hash = bcrypt::hash_with_salt("pw2", 4, [1u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        let s = set(serde_json::json!([
            {"username": "a", "basicauth_credentials": [{"username": "u1", "password": "pw1"},
                                                        {"username": "u2", "password": hash}]}
        ]))
        .unwrap();
        assert_eq!(
            &*s.basic_auth("u1", b"pw1").await.unwrap().credential.id,
            "u1"
        );
        assert!(s.basic_auth("u1", b"pw2").await.is_none());
        assert!(s.basic_auth("nobody", b"pw1").await.is_none());
        for _ in 0..2 {
            assert!(s.basic_auth("u2", b"pw2").await.is_some());
            assert!(s.basic_auth("u2", b"nope").await.is_none());
        }
    }

    fn digest_runs() -> usize {
        DIGEST_RUNS.with(|n| n.get())
    }

    fn sha256_runs() -> usize {
        super::super::password::SHA256_RUNS.with(|n| n.get())
    }

    /// A wrong API key costs what a right one does: one keyed digest and one map lookup,
    /// whatever its length.
    #[test]
    fn right_and_wrong_keys_cost_the_same_digests() {
        let s = set(serde_json::json!([
            {"username": "a", "keyauth_credentials": [{"key": "the-right-key"}]}
        ]))
        .unwrap();
        for (key, found) in [
            (&b"the-right-key"[..], true),
            (b"the-wrong-key", false),
            (b"x", false),
            (&[b'k'; 4096][..], false),
        ] {
            let before = digest_runs();
            assert_eq!(s.key_auth(key).is_some(), found);
            assert_eq!(digest_runs() - before, 1, "{}", key.len());
        }
    }

    /// Plain passwords: a right one, a wrong one and an unknown username each cost one
    /// SHA-256 and no slow hash.
    #[tokio::test]
    async fn right_and_wrong_plain_passwords_cost_the_same_digests() {
        let s = set(serde_json::json!([
            {"username": "a", "basicauth_credentials": [{"username": "u", "password": "pw"}]}
        ]))
        .unwrap();
        for (user, pw, ok) in [
            ("u", &b"pw"[..], true),
            ("u", b"wrong", false),
            ("u", b"", false),
            ("nobody", b"pw", false),
        ] {
            let before = sha256_runs();
            assert_eq!(s.basic_auth(user, pw).await.is_some(), ok, "{user}");
            assert_eq!(sha256_runs() - before, 1, "{user}");
        }
        assert_eq!(s.slow_runs.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    /// Hashed passwords: each distinct (username, password) costs one slow hash; after
    /// that a repeated right or wrong password costs one keyed digest and no hash, and an
    /// unknown username never costs a hash.
    #[tokio::test]
    async fn hashed_passwords_cost_one_hash_per_distinct_attempt() {
        let hash = bcrypt::hash_with_salt("pw", 4, [3u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let s = set(serde_json::json!([
            {"username": "a", "basicauth_credentials": [{"username": "h", "password": hash}]}
        ]))
        .unwrap();
        let slow = || s.slow_runs.load(std::sync::atomic::Ordering::SeqCst);
        for round in 0..3 {
            assert!(s.basic_auth("h", b"pw").await.is_some());
            assert!(s.basic_auth("h", b"wrong").await.is_none());
            assert!(s.basic_auth("nobody", b"pw").await.is_none());
            assert_eq!(slow(), 2, "round {round}");
        }
        for round in 0..3 {
            let before = (digest_runs(), sha256_runs());
            assert!(s.basic_auth("h", b"pw").await.is_some());
            assert!(s.basic_auth("h", b"wrong").await.is_none());
            assert_eq!(
                (digest_runs() - before.0, sha256_runs() - before.1),
                (2, 0),
                "round {round}"
            );
        }
        assert!(s.basic_auth("h", b"wrong-2").await.is_none());
        assert_eq!(slow(), 3);
    }

    /// Concurrent requests with the same new credentials share one hash run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_identical_attempts_share_one_hash() {
        let hash = bcrypt::hash_with_salt("pw", 6, [5u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let s = Arc::new(
            set(serde_json::json!([
                {"username": "a", "basicauth_credentials": [{"username": "h", "password": hash}]}
            ]))
            .unwrap(),
        );
        for (pw, ok) in [("pw", true), ("wrong", false)] {
            let before = s.slow_runs.load(std::sync::atomic::Ordering::SeqCst);
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let s = s.clone();
                    tokio::spawn(async move { s.basic_auth("h", pw.as_bytes()).await.is_some() })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), ok, "{pw}");
            }
            let runs = s.slow_runs.load(std::sync::atomic::Ordering::SeqCst) - before;
            assert_eq!(runs, 1, "{pw}");
            assert!(s.in_flight.lock().unwrap().is_empty());
        }
        // Requests dropped while they wait (clients that went away) leave nothing behind.
        // A costlier hash here, so that all eight are surely still waiting when dropped,
        // however loaded the machine is.
        let slow_hash = bcrypt::hash_with_salt("pw", 11, [6u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let s = Arc::new(
            set(serde_json::json!([
                {"username": "a", "basicauth_credentials": [{"username": "h", "password": slow_hash}]}
            ]))
            .unwrap(),
        );
        let waiting: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    let pw = format!("gone-{i}");
                    s.basic_auth("h", pw.as_bytes()).await.is_some()
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while s.in_flight.lock().unwrap().len() < 8 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(s.in_flight.lock().unwrap().len(), 8);
        for t in &waiting {
            t.abort();
        }
        for t in waiting {
            let _ = t.await;
        }
        assert!(s.in_flight.lock().unwrap().is_empty());
    }

    #[test]
    fn reports_duplicates_with_paths_and_without_secrets() {
        let p = problems(serde_json::json!([
            {"username": "a", "keyauth_credentials": [{"key": "topsecret"}]},
            {"username": "a"},
            {"username": "b", "keyauth_credentials": [{"key": "topsecret"}],
             "basicauth_credentials": [{"username": "x", "password": "p"}]},
            {"custom_id": "c", "basicauth_credentials": [{"username": "x", "password": "q"}],
             "jwt_secrets": [{"key": "k", "algorithm": "RS256"}]},
            {}
        ]));
        assert_eq!(
            p,
            vec![
                "consumers[1].username: duplicate consumer id \"a\" (first used by consumers[0])",
                "consumers[2].keyauth_credentials[0].key: duplicate key (the same key is used by consumers[0].keyauth_credentials[0])",
                "consumers[3].basicauth_credentials[0].username: duplicate basic-auth username \"x\" (first used by consumers[2].basicauth_credentials[0])",
                "consumers[3].jwt_secrets[0].rsa_public_key: a public key in PEM is required for algorithm RS256",
                "consumers[4]: at least one of these fields must be non-empty: 'custom_id', 'username'",
            ]
        );
        assert!(!p.iter().any(|m| m.contains("topsecret")));
    }
}
