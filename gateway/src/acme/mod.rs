//! ACME certificates (RFC 8555, HTTP-01): for each HTTPS certificate entry that says
//! `acme: true`, the gateway obtains a certificate from the CA of the `acme:` section,
//! keeps it on disk, serves it, and renews it before it expires (see docs/acme.md).
//!
//! - [`ManagedCertificate`] is one entry's certificate as served: the listeners' SNI
//!   resolvers read it at every handshake, so an issued or renewed certificate is
//!   installed by one atomic swap, without a reload or a restart. It is carried from
//!   one configuration to the next by its names, and loaded from the storage directory
//!   when first configured, so a restart serves the stored certificate at once.
//! - [`Challenges`] holds the HTTP-01 answers while an order is being validated; the
//!   proxy answers `GET /.well-known/acme-challenge/<token>` on plain listeners from it
//!   before routing.
//! - [`AcmeRenewal`] is the background service that orders what is missing or due,
//!   one order at a time, with a backoff after failures.

mod challenges;
mod client;
mod renewal;
mod storage;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use rustls::sign::CertifiedKey;

pub use challenges::{Challenges, MAX_PENDING_CHALLENGES};
pub use renewal::AcmeRenewal;

/// The ACME state of the process, carried from one configuration to the next: the
/// pending challenges and the order counters.
#[derive(Debug, Default)]
pub struct AcmeState {
    /// HTTP-01 answers of the orders in progress.
    pub challenges: Arc<Challenges>,
    /// Orders that ended with a certificate installed.
    pub orders_issued: AtomicU64,
    /// Orders that failed (the previous certificate, if any, kept serving).
    pub orders_failed: AtomicU64,
}

impl AcmeState {
    /// `(issued, failed)` orders since the process started.
    pub fn order_counts(&self) -> (u64, u64) {
        (
            self.orders_issued.load(Ordering::Relaxed),
            self.orders_failed.load(Ordering::Relaxed),
        )
    }
}

/// The answer to a request for a pending HTTP-01 challenge: the key authorization as
/// `text/plain`; `None` for any other request (one atomic load while no order is in
/// progress).
pub fn challenge_response(
    challenges: &Challenges,
    req: &pingora_http::RequestHeader,
) -> Option<pingway_plugins::Response> {
    if challenges.is_empty() || !matches!(req.method, http::Method::GET | http::Method::HEAD) {
        return None;
    }
    let answer = challenges.answer(req.uri.path())?;
    let mut resp = pingway_plugins::Response::empty(http::StatusCode::OK);
    resp.body = pingway_plugins::Body::Raw {
        content_type: http::HeaderValue::from_static("text/plain"),
        bytes: bytes::Bytes::copy_from_slice(answer.as_bytes()),
    };
    Some(resp)
}

/// A certificate the CA issued, ready to serve.
pub struct Issued {
    /// The chain and key as rustls serves them.
    pub key: Arc<CertifiedKey>,
    /// When the certificate expires.
    pub not_after: SystemTime,
    /// Its serial number, in hex.
    pub serial: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never key material.
        f.debug_struct("Issued")
            .field("not_after", &self.not_after)
            .field("serial", &self.serial)
            .finish()
    }
}

impl Issued {
    /// Parses a PEM chain (leaf first) and its PEM private key, and checks that the
    /// leaf covers every one of `names` and has not expired at `now`. Messages never
    /// quote the key.
    pub fn from_pem(
        chain_pem: &str,
        key_pem: &str,
        names: &[String],
        now: SystemTime,
    ) -> Result<Issued, String> {
        use x509_parser::prelude::FromDer;
        let key = crate::tls::certified_key_from_pem(chain_pem, key_pem)?;
        let leaf = key
            .end_entity_cert()
            .map_err(|_| "no certificate in the chain".to_string())?;
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(leaf)
            .map_err(|_| "the certificate is not valid X.509".to_string())?;
        let not_after_secs = cert.validity().not_after.timestamp();
        let not_after = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(not_after_secs).unwrap_or(0));
        if not_after <= now {
            return Err("the certificate has expired".to_string());
        }
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => {
                            Some(d.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(missing) = names.iter().find(|n| !sans.contains(n)) {
            return Err(format!("the certificate does not cover {missing}"));
        }
        let serial = cert.raw_serial_as_string().replace(':', "");
        Ok(Issued {
            key: Arc::new(key),
            not_after,
            serial,
        })
    }
}

/// When the renewal service next looks at a certificate, and how its last order went.
#[derive(Debug, Default)]
struct Schedule {
    /// When it was last checked for renewal.
    checked_at: Option<Instant>,
    /// Orders failed in a row.
    failures: u32,
    /// After a failure: not before this instant.
    retry_at: Option<Instant>,
    /// The last failure's reason (no secrets: the CA's problem document or an I/O error).
    last_error: Option<String>,
}

/// The first retry's delay after a failed order; each further failure doubles it, up to
/// `acme.check_interval`.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);

/// One `acme: true` certificate entry's certificate, as served and renewed.
pub struct ManagedCertificate {
    /// The host names it covers: lowercase, sorted, each once.
    names: Box<[String]>,
    /// Its file name in the storage directory (without extension).
    id: String,
    /// What the SNI resolvers serve; `None` until the first certificate is issued.
    current: ArcSwapOption<Issued>,
    /// Held only for short, synchronous updates (never across an await).
    schedule: Mutex<Schedule>,
}

impl std::fmt::Debug for ManagedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedCertificate")
            .field("names", &self.names)
            .field("current", &self.current.load())
            .finish()
    }
}

/// What the admin API shows of a managed certificate.
#[derive(Debug, Clone)]
pub struct ManagedStatus {
    /// Its host names.
    pub names: Vec<String>,
    /// Expiry and serial of the certificate served, if one is.
    pub not_after: Option<SystemTime>,
    /// Serial (hex) of the certificate served.
    pub serial: Option<String>,
    /// Orders failed in a row.
    pub failures: u32,
    /// The last failure's reason.
    pub last_error: Option<String>,
}

impl ManagedCertificate {
    /// A certificate for `names` (already lowercase), nothing issued yet.
    fn new(names: Vec<String>) -> ManagedCertificate {
        let mut names = names;
        names.sort();
        names.dedup();
        let id = storage::file_id(&names);
        ManagedCertificate {
            names: names.into_boxed_slice(),
            id,
            current: ArcSwapOption::empty(),
            schedule: Mutex::new(Schedule::default()),
        }
    }

    /// The host names it covers.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The certificate to serve now, if one was issued.
    pub fn served(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|i| i.key.clone())
    }

    /// The certificate served now, with its expiry and serial.
    pub fn issued(&self) -> Option<Arc<Issued>> {
        self.current.load_full()
    }

    /// Serves `issued` from the next handshake on; connections already open keep theirs.
    pub fn install(&self, issued: Issued) {
        self.current.store(Some(Arc::new(issued)));
    }

    /// Its state for the admin API.
    pub fn status(&self) -> ManagedStatus {
        let issued = self.issued();
        let schedule = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        ManagedStatus {
            names: self.names.to_vec(),
            not_after: issued.as_ref().map(|i| i.not_after),
            serial: issued.as_ref().map(|i| i.serial.clone()),
            failures: schedule.failures,
            last_error: schedule.last_error.clone(),
        }
    }

    /// Whether an order is due now: after a failure, once its backoff has passed;
    /// otherwise at most once per `check_interval`, when nothing is served or what is
    /// served expires within `renew_before`.
    fn order_due(
        &self,
        now: Instant,
        wall: SystemTime,
        check_interval: Duration,
        renew_before: Duration,
    ) -> bool {
        let mut s = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = s.retry_at {
            return now >= at;
        }
        if s.checked_at
            .is_some_and(|t| now.duration_since(t) < check_interval)
        {
            return false;
        }
        s.checked_at = Some(now);
        match self.current.load().as_ref() {
            None => true,
            Some(issued) => issued
                .not_after
                .duration_since(wall)
                .map_or(true, |left| left <= renew_before),
        }
    }

    /// Records an order's outcome: a success clears the backoff; a failure sets the
    /// next attempt after [`FIRST_RETRY`], doubled per failure in a row, at most
    /// `check_interval`.
    fn record(&self, now: Instant, outcome: Result<(), String>, check_interval: Duration) {
        let mut s = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        s.checked_at = Some(now);
        match outcome {
            Ok(()) => {
                s.failures = 0;
                s.retry_at = None;
                s.last_error = None;
            }
            Err(e) => {
                s.failures = s.failures.saturating_add(1);
                let delay = FIRST_RETRY
                    .saturating_mul(1 << (s.failures - 1).min(16))
                    .min(check_interval.max(FIRST_RETRY));
                s.retry_at = Some(now + delay);
                s.last_error = Some(e);
            }
        }
    }
}

/// The managed certificates of one configuration, by their names; those of the
/// configuration being replaced are carried over, new ones are loaded from storage.
pub struct ManagedPool<'a> {
    previous: Option<&'a HashMap<String, Arc<ManagedCertificate>>>,
    storage: Option<&'a Path>,
    built: HashMap<String, Arc<ManagedCertificate>>,
}

impl<'a> ManagedPool<'a> {
    /// A pool that reuses `previous` and reads new certificates from `storage`.
    pub fn new(
        previous: Option<&'a HashMap<String, Arc<ManagedCertificate>>>,
        storage: Option<&'a Path>,
    ) -> Self {
        ManagedPool {
            previous,
            storage,
            built: HashMap::new(),
        }
    }

    /// The managed certificate for `names` (lowercase): the same one for every entry
    /// and listener with the same names.
    pub fn get(&mut self, names: Vec<String>) -> Arc<ManagedCertificate> {
        let fresh = ManagedCertificate::new(names);
        let key = fresh.names.join(",");
        if let Some(m) = self.built.get(&key) {
            return m.clone();
        }
        let m = match self.previous.and_then(|p| p.get(&key)) {
            Some(prev) => prev.clone(),
            None => {
                if let Some(dir) = self.storage {
                    match storage::load_certificate(dir, &fresh.id, &fresh.names) {
                        Ok(Some(issued)) => {
                            log::info!(
                                "acme: serving the stored certificate for {} (serial {}, expires {})",
                                key,
                                issued.serial,
                                crate::admin::time::rfc3339(issued.not_after)
                            );
                            fresh.install(issued);
                        }
                        Ok(None) => {}
                        Err(e) => log::warn!(
                            "acme: the stored certificate for {key} is not used ({e}); a new one will be ordered"
                        ),
                    }
                }
                Arc::new(fresh)
            }
        };
        self.built.insert(key, m.clone());
        m
    }

    /// The managed certificates, by their names joined with commas.
    pub fn finish(self) -> HashMap<String, Arc<ManagedCertificate>> {
        self.built
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_when_missing_or_close_to_expiry_and_failures_back_off() {
        let m = ManagedCertificate::new(vec!["b.test".into(), "a.test".into(), "a.test".into()]);
        assert_eq!(m.names(), ["a.test", "b.test"]);
        let hour = Duration::from_secs(3600);
        let t0 = Instant::now();
        let wall = SystemTime::now();
        assert!(m.order_due(t0, wall, hour, hour), "nothing served yet");
        m.record(t0, Err("refused".into()), hour);
        assert!(!m.order_due(t0 + Duration::from_secs(9), wall, hour, hour));
        assert!(m.order_due(t0 + FIRST_RETRY, wall, hour, hour));
        m.record(t0 + FIRST_RETRY, Err("refused".into()), hour);
        let second = t0 + FIRST_RETRY + FIRST_RETRY;
        assert!(!m.order_due(second, wall, hour, hour), "doubled");
        assert!(m.order_due(second + FIRST_RETRY, wall, hour, hour));
        assert_eq!(m.status().failures, 2);
        assert_eq!(m.status().last_error.as_deref(), Some("refused"));
        m.record(second, Ok(()), hour);
        assert_eq!(m.status().failures, 0);
        // Checked just now: not again before the interval.
        assert!(!m.order_due(second, wall, hour, hour));
        assert!(
            m.order_due(second + hour, wall, hour, hour),
            "still nothing served"
        );
    }

    #[test]
    fn backoff_never_exceeds_the_check_interval() {
        let m = ManagedCertificate::new(vec!["a.test".into()]);
        let interval = Duration::from_secs(60);
        let t0 = Instant::now();
        for _ in 0..40 {
            m.record(t0, Err("x".into()), interval);
        }
        assert!(m.order_due(t0 + interval, SystemTime::now(), interval, interval));
    }
}
