//! Verifying a client's certificate chain against one plugin instance's CAs, with a
//! bounded cache of chains verified recently.
//!
//! The handshake only proved that the client holds the key of its certificate; whether
//! the certificate chains to a trusted CA is decided here, with rustls' webpki: the
//! chain must lead to one of the instance's CAs, every certificate must be valid now,
//! and the client's certificate must allow client authentication (its extended key
//! usage, when it has one, must include `clientAuth`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage, VerifiedPath};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::identity::Identity;

/// The most verified chains one instance remembers. A new chain that finds the cache
/// full (after expired entries are dropped) is verified but not remembered, and counted
/// ([`TrustSet::cache_drops`]).
pub const MAX_CACHED_CHAINS: usize = 4096;

/// The signature algorithms a chain may use (ring's, as rustls' own verifier).
static ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_3072_8192_SHA384,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// One trusted CA.
struct Anchor {
    id: Arc<str>,
    anchor: TrustAnchor<'static>,
    /// Its subject is its issuer: a root, which ends a chain without `allow_partial_chain`.
    self_issued: bool,
    /// Unix seconds after which it no longer vouches for anything.
    not_after: i64,
}

/// A chain that verified: the CA it led to and the names of the client's certificate.
#[derive(Debug)]
pub struct Verified {
    /// The id of the CA the chain led to.
    pub ca_id: Arc<str>,
    /// The client certificate's names.
    pub identity: Identity,
    /// Unix seconds until which the verdict may be reused: the cache TTL, or the first
    /// expiry of a certificate on the path if sooner.
    valid_until: i64,
}

/// Why a chain did not verify (logged at debug level; the client only learns that it
/// failed).
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The chain is empty.
    #[error("no certificate")]
    Empty,
    /// webpki's verdict.
    #[error("{0}")]
    Chain(webpki::Error),
    /// The certificate verified but its names cannot be read.
    #[error("{0}")]
    Names(#[from] super::identity::BadCertificate),
}

/// The CAs of one plugin instance and its cache of verified chains.
pub struct TrustSet {
    anchors: Vec<Anchor>,
    allow_partial_chain: bool,
    cache_ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], Arc<Verified>>>,
    cache_drops: AtomicU64,
}

impl std::fmt::Debug for TrustSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustSet")
            .field(
                "cas",
                &self.anchors.iter().map(|a| &a.id).collect::<Vec<_>>(),
            )
            .field("allow_partial_chain", &self.allow_partial_chain)
            .finish()
    }
}

/// Why a CA certificate cannot be trusted.
#[derive(Debug, thiserror::Error)]
#[error("not a usable CA certificate: {0}")]
pub struct BadAnchor(String);

fn unix_now(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The expiry (Unix seconds) and self-issuance of a DER certificate.
fn validity(der: &[u8]) -> Option<(i64, bool)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    Some((cert.validity().not_after.timestamp(), self_issued))
}

impl TrustSet {
    /// A set trusting `cas` (id, DER).
    pub fn new<'a>(
        cas: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        allow_partial_chain: bool,
        cache_ttl: Duration,
    ) -> Result<TrustSet, (String, BadAnchor)> {
        let mut anchors = Vec::new();
        for (id, der) in cas {
            let cert = CertificateDer::from(der);
            let anchor = webpki::anchor_from_trusted_cert(&cert)
                .map_err(|e| (id.to_string(), BadAnchor(e.to_string())))?
                .to_owned();
            let (not_after, self_issued) = validity(der)
                .ok_or_else(|| (id.to_string(), BadAnchor("not valid X.509".into())))?;
            anchors.push(Anchor {
                id: Arc::from(id),
                anchor,
                self_issued,
                not_after,
            });
        }
        Ok(TrustSet {
            anchors,
            allow_partial_chain,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
            cache_drops: AtomicU64::new(0),
        })
    }

    /// Verified chains that were not remembered because the cache was full.
    pub fn cache_drops(&self) -> u64 {
        self.cache_drops.load(Ordering::Relaxed)
    }

    /// Verifies `chain` (DER, the client's certificate first) at `now`, from the cache
    /// when it verified lately.
    pub fn verify(&self, chain: &[Bytes], now: SystemTime) -> Result<Arc<Verified>, Rejected> {
        let now_secs = unix_now(now);
        let key = (!self.cache_ttl.is_zero()).then(|| chain_key(chain));
        if let Some(key) = &key {
            if let Ok(cache) = self.cache.lock() {
                if let Some(hit) = cache.get(key).filter(|v| v.valid_until > now_secs) {
                    return Ok(hit.clone());
                }
            }
        }
        let verified = Arc::new(self.verify_uncached(chain, now)?);
        if let Some(key) = key {
            self.remember(key, verified.clone(), now_secs);
        }
        Ok(verified)
    }

    fn remember(&self, key: [u8; 32], verified: Arc<Verified>, now_secs: i64) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= MAX_CACHED_CHAINS && !cache.contains_key(&key) {
            cache.retain(|_, v| v.valid_until > now_secs);
            if cache.len() >= MAX_CACHED_CHAINS {
                let drops = self.cache_drops.fetch_add(1, Ordering::Relaxed) + 1;
                if drops == 1 || drops % 1000 == 0 {
                    log::warn!(
                        "mtls-auth: the cache of verified client certificates is full ({MAX_CACHED_CHAINS}); {drops} verdict(s) not remembered so far"
                    );
                }
                return;
            }
        }
        cache.insert(key, verified);
    }

    fn verify_uncached(&self, chain: &[Bytes], now: SystemTime) -> Result<Verified, Rejected> {
        let (leaf, rest) = chain.split_first().ok_or(Rejected::Empty)?;
        let leaf_der = CertificateDer::from(leaf.as_ref());
        let end_entity = EndEntityCert::try_from(&leaf_der).map_err(Rejected::Chain)?;
        let intermediates: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_ref()))
            .collect();
        let now_secs = unix_now(now);
        let time =
            UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO));
        let anchors: Vec<TrustAnchor<'_>> = self.anchors.iter().map(|a| a.anchor.clone()).collect();
        // OpenSSL (Kong) checks the CA's own validity and, without partial chains,
        // wants the path to end at a root; webpki checks neither, so the path is
        // refused here and the search goes on for another.
        let acceptable = |path: &VerifiedPath<'_>| match self.anchor_of(path.anchor()) {
            Some(a) if a.not_after < now_secs => Err(webpki::Error::CertExpired {
                time,
                not_after: UnixTime::since_unix_epoch(Duration::from_secs(
                    u64::try_from(a.not_after).unwrap_or(0),
                )),
            }),
            Some(a) if !a.self_issued && !self.allow_partial_chain => {
                Err(webpki::Error::UnknownIssuer)
            }
            Some(_) => Ok(()),
            None => Err(webpki::Error::UnknownIssuer),
        };
        let path = end_entity
            .verify_for_usage(
                ALGORITHMS,
                &anchors,
                &intermediates,
                time,
                KeyUsage::client_auth(),
                None,
                Some(&acceptable),
            )
            .map_err(Rejected::Chain)?;
        let anchor = self
            .anchor_of(path.anchor())
            .ok_or(Rejected::Chain(webpki::Error::UnknownIssuer))?;
        // The verdict holds until the first certificate of the path expires.
        let mut valid_until = now_secs
            .saturating_add(i64::try_from(self.cache_ttl.as_secs()).unwrap_or(i64::MAX))
            .min(anchor.not_after);
        let ders = std::iter::once(leaf_der.clone())
            .chain(path.intermediate_certificates().map(|c| c.der()));
        for der in ders {
            if let Some((not_after, _)) = validity(&der) {
                valid_until = valid_until.min(not_after);
            }
        }
        Ok(Verified {
            ca_id: anchor.id.clone(),
            identity: Identity::of(leaf)?,
            valid_until,
        })
    }

    fn anchor_of(&self, found: &TrustAnchor<'_>) -> Option<&Anchor> {
        self.anchors.iter().find(|a| {
            a.anchor.subject.as_ref() == found.subject.as_ref()
                && a.anchor.subject_public_key_info.as_ref()
                    == found.subject_public_key_info.as_ref()
        })
    }
}

/// The cache key of a chain: SHA-256 over its certificates, each length-prefixed.
fn chain_key(chain: &[Bytes]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for cert in chain {
        ctx.update(&(cert.len() as u64).to_be_bytes());
        ctx.update(cert);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
