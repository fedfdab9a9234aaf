//! TLS: the certificates of HTTPS listeners, chosen by SNI and reloaded with the
//! configuration, and the TLS settings of upstreams (verification, CA bundle, SNI,
//! client certificate).
//!
//! The backend is rustls (pingora-core's `rustls` feature, ring provider): TLS 1.2 and
//! 1.3 only, AEAD cipher suites with forward secrecy only. A listener's rustls
//! configuration holds an [`SniResolver`], which looks the certificate up in the
//! configuration serving now: a reload that changes a certificate is served on the next
//! handshake, while connections already open keep theirs.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora_core::utils::tls::{CertKey, WrappedX509};
use pingway_plugins::config::Diagnostic;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::acme::{ManagedCertificate, ManagedPool};
use crate::config::{CertificateConfig, ClientCertificateMode, ListenerTls, UpstreamConfig};
use crate::runtime::Runtime;
use pingway_plugins::ca_certificates::CaCertificates;

/// A certificate as a listener serves it: loaded from the configuration, or managed by
/// ACME (what the CA issued last, read at each handshake).
#[derive(Clone)]
enum Served {
    Fixed(Arc<CertifiedKey>),
    Acme(Arc<ManagedCertificate>),
}

impl Served {
    /// The certificate to serve now (`None` for an ACME one not issued yet).
    fn key(&self) -> Option<Arc<CertifiedKey>> {
        match self {
            Served::Fixed(key) => Some(key.clone()),
            Served::Acme(m) => m.served(),
        }
    }
}

/// One listener's certificates, by server name.
#[derive(Default)]
pub struct CertificateSet {
    /// Exact names (lowercase).
    exact: HashMap<String, Served>,
    /// Wildcards by the name they cover one label of (`*.example.com` as `example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For an SNI that matches nothing, or none.
    default: Option<Served>,
    /// The first certificate loaded from the configuration: served instead of a default
    /// managed by ACME that is not issued yet.
    fallback: Option<Arc<CertifiedKey>>,
    /// Whether handshakes ask the client for a certificate (`tls.client_certificate`,
    /// and for `auto` whether the configuration has an `mtls-auth`).
    pub asks_client_certificate: bool,
    /// The certificates loaded from the configuration, by the digest of their chain's
    /// and key's PEM: the next load of this listener reuses an unchanged one instead of
    /// parsing and checking it again (a reload that changes one certificate of 40,000
    /// parses one).
    loaded: Loaded,
}

impl std::fmt::Debug for CertificateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: never key material.
        f.debug_struct("CertificateSet")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .field("default", &self.default.is_some())
            .field("asks_client_certificate", &self.asks_client_certificate)
            .finish()
    }
}

impl CertificateSet {
    /// Loads and checks `tls.certificates` (files read now; `acme: true` entries taken
    /// from `managed`); every problem is reported at its field under `path`
    /// (`listeners[i].tls`).
    pub fn build(
        tls: &ListenerTls,
        path: &str,
        managed: &mut ManagedPool<'_>,
        diags: &mut Vec<Diagnostic>,
    ) -> CertificateSet {
        CertificateSet::build_reusing(tls, path, managed, None, diags)
    }

    /// [`CertificateSet::build`], reusing the certificates `previous` loaded from the
    /// same PEM (files are still read, and compared by content).
    pub fn build_reusing(
        tls: &ListenerTls,
        path: &str,
        managed: &mut ManagedPool<'_>,
        previous: Option<&CertificateSet>,
        diags: &mut Vec<Diagnostic>,
    ) -> CertificateSet {
        let mut set = CertificateSet::default();
        if tls.certificates.is_empty() {
            diags.push(Diagnostic::new(
                format!("{path}.certificates"),
                "an HTTPS listener needs at least one certificate",
            ));
            return set;
        }
        let defaults = tls.certificates.iter().filter(|c| c.default).count();
        if defaults > 1 {
            diags.push(Diagnostic::new(
                format!("{path}.certificates"),
                "at most one certificate can be `default: true`",
            ));
        }
        let mut first = None;
        let mut explicit_default = None;
        let (mut loads, loaded) = load_all(tls, path, previous.map(|p| &p.loaded));
        set.loaded = loaded;
        for (i, c) in tls.certificates.iter().enumerate() {
            let at = format!("{path}.certificates[{i}]");
            let key = if c.acme {
                // Its fields are checked by validation (config::acme); names here.
                let mut names = Vec::new();
                for (j, name) in c.snis.iter().enumerate() {
                    if let Some(n) = sni_pattern(name, &format!("{at}.snis[{j}]"), &mut Vec::new())
                    {
                        names.push(n);
                    }
                }
                if names.is_empty() || names.iter().any(|n| n.starts_with("*.")) {
                    continue;
                }
                Served::Acme(managed.get(names))
            } else {
                let (key, mut problems) = loads[i].take().unwrap_or_default();
                diags.append(&mut problems);
                let Some(key) = key else {
                    continue;
                };
                set.fallback.get_or_insert_with(|| key.clone());
                Served::Fixed(key)
            };
            first.get_or_insert_with(|| key.clone());
            if c.default {
                explicit_default = Some(key.clone());
            }
            for (j, name) in c.snis.iter().enumerate() {
                let name_at = format!("{at}.snis[{j}]");
                let Some(name) = sni_pattern(name, &name_at, diags) else {
                    continue;
                };
                let taken = match (name.strip_prefix("*."), &key) {
                    (Some(rest), Served::Fixed(k)) => {
                        set.wildcard.insert(rest.to_string(), k.clone()).is_some()
                    }
                    // Reported by validation: HTTP-01 cannot prove a wildcard.
                    (Some(_), Served::Acme(_)) => false,
                    (None, _) => set.exact.insert(name.clone(), key.clone()).is_some(),
                };
                if taken {
                    diags.push(Diagnostic::new(
                        name_at,
                        format!(
                            "{name} is already the name of another certificate of this listener"
                        ),
                    ));
                }
            }
        }
        set.default = explicit_default.or(first);
        set
    }

    /// The certificate for `sni`: an exact name, else a wildcard covering its first
    /// label, else the default.
    /// An ACME name whose certificate is not issued yet gets the others' choice.
    pub fn resolve(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = sni {
            let sni = sni.trim_end_matches('.').to_ascii_lowercase();
            if let Some(key) = self.exact.get(&sni).and_then(Served::key) {
                return Some(key);
            }
            if let Some((_, parent)) = sni.split_once('.') {
                if let Some(key) = self.wildcard.get(parent) {
                    return Some(key.clone());
                }
            }
        }
        self.default
            .as_ref()
            .and_then(Served::key)
            .or_else(|| self.fallback.clone())
    }
}

/// A server name pattern of `snis`, lowercased: a DNS name, or `*.` and a DNS name of at
/// least two labels.
fn sni_pattern(name: &str, at: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let lower = name.trim().to_ascii_lowercase();
    let base = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let wildcard_ok = !lower.starts_with("*.") || base.contains('.');
    if base.is_empty() || !base.split('.').all(label_ok) || !wildcard_ok {
        diags.push(Diagnostic::new(
            at,
            format!(
                "{name:?} is not a server name; write a host name (api.example.com) or a wildcard for one label (*.example.com)"
            ),
        ));
        return None;
    }
    Some(lower)
}

/// Certificates loaded from the configuration, by the SHA-256 of their chain and key
/// PEM.
type Loaded = HashMap<[u8; 32], Arc<CertifiedKey>>;

/// What loading one certificate entry gave: the certificate, or the problems found.
type Load = (Option<Arc<CertifiedKey>>, Vec<Diagnostic>);

/// Below this many certificates a listener's are loaded on the calling thread alone.
const PARALLEL_LOAD_FROM: usize = 64;

/// Loads every certificate entry of `tls` that is not managed by ACME (by index; `None`
/// for the others), reusing those of `reuse`, and the map of what was loaded. Tens of
/// thousands are loaded on as many threads as there are cores (at most 8): parsing
/// and checking each is independent CPU work.
fn load_all(tls: &ListenerTls, path: &str, reuse: Option<&Loaded>) -> (Vec<Option<Load>>, Loaded) {
    let entries: Vec<(usize, &CertificateConfig)> = tls
        .certificates
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.acme)
        .collect();
    let work = |part: &[(usize, &CertificateConfig)]| {
        let mut loaded = HashMap::new();
        let out: Vec<(usize, Load)> = part
            .iter()
            .map(|(i, c)| {
                let mut d = Vec::new();
                let at = format!("{path}.certificates[{i}]");
                let key = load_certified_key(c, &at, reuse, &mut loaded, &mut d);
                (*i, (key, d))
            })
            .collect();
        (out, loaded)
    };
    let threads = if entries.len() >= PARALLEL_LOAD_FROM {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    } else {
        1
    };
    let parts = if threads <= 1 {
        vec![work(&entries)]
    } else {
        let chunk = entries.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|part| scope.spawn(|| work(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        })
    };
    let mut loads: Vec<Option<Load>> = vec![None; tls.certificates.len()];
    let mut loaded = HashMap::new();
    for (out, part_loaded) in parts {
        for (i, load) in out {
            loads[i] = Some(load);
        }
        loaded.extend(part_loaded);
    }
    (loads, loaded)
}

/// A name for `bytes` by their content: the first 128 bits of their SHA-256, in hex.
/// The Kubernetes watcher names certificate and key files with it (a file is rewritten
/// only when its content changes); the gateway keys its cache of loaded certificates by
/// it.
pub fn content_digest(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a PEM text comes from: a file or the YAML itself.
enum PemSource<'a> {
    File { path: &'a str, field: &'static str },
    Inline { text: &'a str, field: &'static str },
}

impl PemSource<'_> {
    fn field(&self) -> &'static str {
        match self {
            PemSource::File { field, .. } | PemSource::Inline { field, .. } => field,
        }
    }

    /// The PEM bytes, or why they cannot be read.
    fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            PemSource::File { path, .. } => {
                std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
            }
            PemSource::Inline { text, .. } => Ok(text.as_bytes().to_vec()),
        }
    }

    /// How to name it in a message (a file's path; never inline contents).
    fn describe(&self) -> String {
        match self {
            PemSource::File { path, .. } => path.to_string(),
            PemSource::Inline { field, .. } => format!("the `{field}` text"),
        }
    }
}

/// The one of (file, inline) given for a PEM value; reports neither or both.
fn pem_source<'a>(
    file: Option<&'a str>,
    inline: Option<&'a str>,
    (file_field, inline_field): (&'static str, &'static str),
    at: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<PemSource<'a>> {
    match (file, inline) {
        (Some(path), None) => Some(PemSource::File {
            path,
            field: file_field,
        }),
        (None, Some(text)) => Some(PemSource::Inline {
            text,
            field: inline_field,
        }),
        (None, None) => {
            diags.push(Diagnostic::new(
                at,
                format!("give `{file_field}` (a file) or `{inline_field}` (PEM text)"),
            ));
            None
        }
        (Some(_), Some(_)) => {
            diags.push(Diagnostic::new(
                format!("{at}.{inline_field}"),
                format!("give `{file_field}` or `{inline_field}`, not both"),
            ));
            None
        }
    }
}

/// The certificates of a PEM source (at least one).
fn read_certs(source: &PemSource<'_>) -> Result<Vec<CertificateDer<'static>>, String> {
    parse_certs(source, &source.read()?)
}

/// The certificates (at least one) of `bytes`, read from `source`.
fn parse_certs(
    source: &PemSource<'_>,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", source.describe()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
            source.describe()
        ));
    }
    for cert in &certs {
        if x509_parses(cert).is_err() {
            return Err(format!(
                "{}: a certificate is not valid X.509",
                source.describe()
            ));
        }
    }
    Ok(certs)
}

/// Whether `cert` is DER the X.509 parser accepts (pingora's `CertKey` and `WrappedX509`
/// panic on one it does not, so nothing unparsable may reach them).
fn x509_parses(cert: &[u8]) -> Result<(), ()> {
    use x509_parser::prelude::FromDer;
    x509_parser::certificate::X509Certificate::from_der(cert)
        .map(|_| ())
        .map_err(|_| ())
}

/// A certificate chain (leaf first) and its private key from PEM text, checked to
/// match: an ACME order's result or its stored copy. Messages never quote the key.
pub(crate) fn certified_key_from_pem(
    chain_pem: &str,
    key_pem: &str,
) -> Result<CertifiedKey, String> {
    let certs = read_certs(&PemSource::Inline {
        text: chain_pem,
        field: "certificate",
    })?;
    let key = read_key(&PemSource::Inline {
        text: key_pem,
        field: "key",
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| "unsupported private key".to_string())?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(_) => Err("the private key does not belong to the certificate".to_string()),
    }
}

/// The private key of a PEM source. Error messages never quote the key.
fn read_key(source: &PemSource<'_>) -> Result<PrivateKeyDer<'static>, String> {
    parse_key(source, &source.read()?)
}

/// The private key of `bytes`, read from `source`. Error messages never quote the key.
fn parse_key(source: &PemSource<'_>, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    match rustls_pemfile::private_key(&mut BufReader::new(bytes)) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(format!(
            "{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found",
            source.describe()
        )),
        Err(_) => Err(format!("{}: bad PEM", source.describe())),
    }
}

/// A certificate entry as rustls serves it: chain, signing key, checked to match. One
/// whose chain and key PEM are those of an entry of `reuse` is that entry (not parsed
/// again); every one loaded without an OCSP file is added to `loaded`.
fn load_certified_key(
    c: &CertificateConfig,
    at: &str,
    reuse: Option<&Loaded>,
    loaded: &mut Loaded,
    diags: &mut Vec<Diagnostic>,
) -> Option<Arc<CertifiedKey>> {
    let cert_source = pem_source(
        c.cert.as_deref(),
        c.cert_pem.as_deref(),
        ("cert", "cert_pem"),
        at,
        diags,
    );
    let key_source = pem_source(
        c.key.as_deref(),
        c.key_pem.as_ref().map(|s| s.expose()),
        ("key", "key_pem"),
        at,
        diags,
    );
    let (cert_source, key_source) = (cert_source?, key_source?);
    let read = |source: &PemSource<'_>, diags: &mut Vec<Diagnostic>| match source.read() {
        Ok(b) => Some(b),
        Err(e) => {
            diags.push(Diagnostic::new(format!("{at}.{}", source.field()), e));
            None
        }
    };
    let cert_bytes = read(&cert_source, diags)?;
    let key_bytes = read(&key_source, diags)?;
    // An OCSP response is read again at each load: not reused.
    let digest = c.ocsp_file.is_none().then(|| {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&(cert_bytes.len() as u64).to_be_bytes());
        ctx.update(&cert_bytes);
        ctx.update(&key_bytes);
        let mut d = [0u8; 32];
        d.copy_from_slice(ctx.finish().as_ref());
        d
    });
    if let Some(d) = &digest {
        if let Some(known) = reuse.and_then(|r| r.get(d)).or_else(|| loaded.get(d)) {
            let known = Arc::clone(known);
            loaded.insert(*d, Arc::clone(&known));
            return Some(known);
        }
    }
    let certs = match parse_certs(&cert_source, &cert_bytes) {
        Ok(certs) => certs,
        Err(e) => {
            diags.push(Diagnostic::new(format!("{at}.{}", cert_source.field()), e));
            return None;
        }
    };
    let key = match parse_key(&key_source, &key_bytes) {
        Ok(key) => key,
        Err(e) => {
            diags.push(Diagnostic::new(format!("{at}.{}", key_source.field()), e));
            return None;
        }
    };
    let signing = match rustls::crypto::ring::sign::any_supported_type(&key) {
        Ok(k) => k,
        Err(_) => {
            diags.push(Diagnostic::new(
                format!("{at}.{}", key_source.field()),
                "unsupported private key (RSA, ECDSA P-256/P-384 or Ed25519 expected)",
            ));
            return None;
        }
    };
    let mut certified = CertifiedKey::new(certs, signing);
    if let Some(path) = c.ocsp_file.as_deref() {
        match std::fs::read(path) {
            // An OCSPResponse is a DER SEQUENCE; anything else is not one.
            Ok(der) if der.first() == Some(&0x30) => certified.ocsp = Some(der),
            Ok(_) => {
                diags.push(Diagnostic::new(
                    format!("{at}.ocsp_file"),
                    format!("{path}: not a DER OCSP response"),
                ));
                return None;
            }
            Err(e) => {
                diags.push(Diagnostic::new(
                    format!("{at}.ocsp_file"),
                    format!("cannot read {path}: {e}"),
                ));
                return None;
            }
        }
    }
    match certified.keys_match() {
        Ok(()) => {}
        // Some key types cannot tell their public key: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            diags.push(Diagnostic::new(
                format!("{at}.{}", key_source.field()),
                "the private key does not belong to the certificate",
            ));
            return None;
        }
        Err(e) => {
            diags.push(Diagnostic::new(
                format!("{at}.{}", cert_source.field()),
                format!("{}: unusable certificate: {e}", cert_source.describe()),
            ));
            return None;
        }
    }
    let certified = Arc::new(certified);
    if let Some(d) = digest {
        loaded.insert(d, Arc::clone(&certified));
    }
    Some(certified)
}

/// The certificate sets of the configuration's HTTPS listeners, by listener address,
/// and the ACME-managed certificates among them.
#[derive(Debug, Default)]
pub struct ListenerCertificates {
    sets: HashMap<String, Arc<CertificateSet>>,
    /// By their names joined with commas.
    managed: HashMap<String, Arc<ManagedCertificate>>,
}

impl ListenerCertificates {
    /// Loads every HTTPS listener's certificates. A listener that was HTTPS in
    /// `previous` and has lost its `tls` block keeps its certificates: it stays HTTPS
    /// until a restart.
    pub fn build(
        cfg: &crate::config::GatewayConfig,
        previous: Option<&ListenerCertificates>,
        diags: &mut Vec<Diagnostic>,
    ) -> ListenerCertificates {
        let mut sets = HashMap::new();
        let storage = cfg.acme.as_ref().map(|a| std::path::Path::new(&a.storage));
        let mut managed = ManagedPool::new(previous.map(|p| &p.managed), storage);
        for (i, l) in cfg.listeners.iter().enumerate() {
            if let Some(tls) = &l.tls {
                let before = previous
                    .and_then(|p| p.sets.get(&l.address))
                    .map(Arc::as_ref);
                let mut set = CertificateSet::build_reusing(
                    tls,
                    &format!("listeners[{i}].tls"),
                    &mut managed,
                    before,
                    diags,
                );
                set.asks_client_certificate = asks_client_certificate(tls, cfg);
                sets.insert(l.address.clone(), Arc::new(set));
            }
        }
        // Listeners only a restart changes keep serving what they started with.
        if let Some(prev) = previous {
            for (addr, set) in &prev.sets {
                sets.entry(addr.clone()).or_insert_with(|| set.clone());
            }
        }
        ListenerCertificates {
            sets,
            managed: managed.finish(),
        }
    }

    /// The certificates of the listener on `address`.
    pub fn get(&self, address: &str) -> Option<&Arc<CertificateSet>> {
        self.sets.get(address)
    }

    /// The ACME-managed certificates, each once (however many listeners serve it).
    pub fn managed(&self) -> impl Iterator<Item = &Arc<ManagedCertificate>> {
        self.managed.values()
    }
}

/// Chooses an HTTPS listener's certificate by SNI from the configuration serving now.
pub struct SniResolver {
    runtime: Arc<ArcSwap<Runtime>>,
    address: String,
}

impl SniResolver {
    /// The resolver of the listener on `address`.
    pub fn new(runtime: Arc<ArcSwap<Runtime>>, address: String) -> Self {
        SniResolver { runtime, address }
    }
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("address", &self.address)
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let runtime = self.runtime.load();
        let found = runtime
            .certificates
            .get(&self.address)
            .and_then(|set| set.resolve(client_hello.server_name()));
        if found.is_none() {
            log::warn!(
                "{}: no certificate for SNI {:?}; handshake refused",
                self.address,
                client_hello.server_name()
            );
        }
        found
    }
}

/// Words that begin Pingora's error line for a client TLS handshake that failed or
/// timed out (a plain-text request to an HTTPS port, a client that trusts none of the
/// certificates, a scanner): one line per connection, which the process logger drops
/// and [`handshake_failed`] counts instead.
pub const HANDSHAKE_ERROR_MARKER: &str = "Downstream handshake";

static HANDSHAKE_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

static HANDSHAKE_FAILURE_LOG: std::sync::OnceLock<crate::downstream::EveryTenSeconds> =
    std::sync::OnceLock::new();

/// Counts a client TLS handshake that failed; logs the count, with the last failure's
/// reason, at most every ten seconds.
pub fn handshake_failed(reason: &str) {
    use std::sync::atomic::Ordering;
    let failures = HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed) + 1;
    if HANDSHAKE_FAILURE_LOG.get_or_init(Default::default).due() {
        log::warn!("client TLS handshakes failed: {failures} so far (last: {reason})");
    }
}

/// Client TLS handshakes that failed since the process started.
pub fn handshake_failures() -> u64 {
    HANDSHAKE_FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

/// The Pingora TLS settings of an HTTPS listener: TLS 1.2 and 1.3 (rustls's protocol
/// versions), certificates from `resolver`, ALPN `h2` then `http/1.1` (or only
/// `http/1.1` without `http2`), client certificates asked for by `client_auth` and
/// handed to requests by [`PeerChainCallback`].
pub fn listener_settings(
    resolver: Arc<SniResolver>,
    client_auth: Arc<ClientCertRequest>,
    http2: bool,
) -> pingora_error::Result<pingora_core::listeners::tls::TlsSettings> {
    use pingora_core::protocols::ALPN;
    // Without certificate paths: `build` then takes the certificates from the resolver.
    let mut settings =
        pingora_core::listeners::tls::TlsSettings::with_callbacks(Box::new(PeerChainCallback))?;
    settings.set_cert_resolver(resolver);
    settings.set_client_cert_verifier(client_auth);
    settings.set_alpn(if http2 { ALPN::H2H1 } else { ALPN::H1 });
    Ok(settings)
}

/// The certificate chain a client presented in its handshake (DER, its own first), as
/// the connection's TLS digest carries it to each request.
#[derive(Debug)]
pub struct PeerChain(pub Arc<[bytes::Bytes]>);

/// Keeps the client's certificate chain once a handshake completes, in the session's
/// TLS digest (Pingora's `SslDigestExtension`), where the proxy finds it for each request
/// of the connection.
#[derive(Debug)]
pub struct PeerChainCallback;

#[async_trait::async_trait]
impl pingora_core::listeners::TlsAccept for PeerChainCallback {
    async fn handshake_complete_callback(
        &self,
        tls: &pingora_core::protocols::tls::TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let chain = tls.peer_cert_chain_der().filter(|c| !c.is_empty())?;
        let chain: Arc<[bytes::Bytes]> = chain
            .iter()
            .map(|c| bytes::Bytes::copy_from_slice(c.as_ref()))
            .collect();
        Some(Arc::new(PeerChain(chain)))
    }
}

/// An HTTPS listener's client-certificate policy, as rustls asks it at each handshake:
/// whether to ask (from the configuration serving now: `tls.client_certificate`, and for
/// `auto` whether any `mtls-auth` is configured), never to require one, and which CA
/// names to hint (read at start-up).
///
/// Any chain is accepted at the handshake: which CAs a certificate must chain to is a
/// per-route decision, made by the `mtls-auth` plugin of the route. What the handshake
/// does check is that the client holds the key of the certificate it sent: its
/// handshake signature is verified against the certificate's public key (rustls'
/// webpki helpers).
pub struct ClientCertRequest {
    runtime: Arc<ArcSwap<Runtime>>,
    address: String,
    hints: Vec<rustls::DistinguishedName>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for ClientCertRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertRequest")
            .field("address", &self.address)
            .field("hints", &self.hints.len())
            .finish()
    }
}

impl ClientCertRequest {
    /// The policy of the listener on `address`, hinting the CA subjects of the
    /// `mtls-auth` instances with `send_ca_dn: true` in the configuration serving now.
    pub fn new(runtime: Arc<ArcSwap<Runtime>>, address: String) -> Self {
        let hints = ca_hints(&runtime.load());
        ClientCertRequest {
            runtime,
            address,
            hints,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

/// The subjects of the CAs that `mtls-auth` instances with `send_ca_dn: true` name.
fn ca_hints(runtime: &Runtime) -> Vec<rustls::DistinguishedName> {
    use x509_parser::prelude::FromDer;
    let Some(store) = runtime.services.get::<CaCertificates>() else {
        return Vec::new();
    };
    let mut ids: Vec<String> = Vec::new();
    for plugin in mtls_auth_plugins(&runtime.config) {
        let sends = plugin
            .config
            .get("send_ca_dn")
            .and_then(|n| match &n.value {
                // Resolved as the plugin's own config reads it (`True` is true too).
                pingway_plugins::config::NodeValue::Scalar(s) => Some(matches!(
                    s.resolve(),
                    pingway_plugins::config::Resolved::Bool(true)
                )),
                _ => None,
            })
            .unwrap_or(false);
        if !sends {
            continue;
        }
        if let Some(pingway_plugins::config::NodeValue::Seq(items)) =
            plugin.config.get("ca_certificates").map(|n| &n.value)
        {
            for item in items {
                if let pingway_plugins::config::NodeValue::Scalar(s) = &item.value {
                    if !ids.contains(&s.text) {
                        ids.push(s.text.clone());
                    }
                }
            }
        }
    }
    ids.iter()
        .filter_map(|id| store.get(id))
        .filter_map(|der| {
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
            Some(rustls::DistinguishedName::from(
                cert.subject().as_raw().to_vec(),
            ))
        })
        .collect()
}

/// Every enabled `mtls-auth` plugin of `cfg`: global, on routes, on consumers.
fn mtls_auth_plugins(
    cfg: &crate::config::GatewayConfig,
) -> impl Iterator<Item = &crate::config::PluginConfig> {
    cfg.plugins
        .iter()
        .chain(cfg.routes.iter().flat_map(|r| r.plugins.iter()))
        .chain(cfg.consumers.iter().flat_map(|c| c.plugins.iter()))
        .filter(|p| p.enabled && p.name == "mtls-auth")
}

/// Whether the listener settings `tls` ask clients for a certificate under `cfg`.
pub fn asks_client_certificate(tls: &ListenerTls, cfg: &crate::config::GatewayConfig) -> bool {
    match tls.client_certificate {
        ClientCertificateMode::Request => true,
        ClientCertificateMode::Off => false,
        ClientCertificateMode::Auto => mtls_auth_plugins(cfg).next().is_some(),
    }
}

impl rustls::server::danger::ClientCertVerifier for ClientCertRequest {
    fn offer_client_auth(&self) -> bool {
        self.runtime
            .load()
            .certificates
            .get(&self.address)
            .is_some_and(|set| set.asks_client_certificate)
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        // The chain is the route's plugin's to judge (see the type's docs).
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Loads the top-level `ca_certificates`: each entry one PEM certificate with the CA
/// basic constraint, not expired, under a unique id; problems reported at their field.
pub fn ca_certificates(
    entries: &[crate::config::CaCertificateConfig],
    diags: &mut Vec<Diagnostic>,
) -> CaCertificates {
    use x509_parser::prelude::FromDer;
    let mut store = CaCertificates::new();
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("ca_certificates[{i}]");
        if e.id.trim().is_empty() {
            diags.push(Diagnostic::new(format!("{at}.id"), "must not be empty"));
            continue;
        }
        if let Some(first) = first_at.insert(&e.id, i) {
            diags.push(Diagnostic::new(
                format!("{at}.id"),
                format!(
                    "duplicate id {:?} (first used by ca_certificates[{first}])",
                    e.id
                ),
            ));
            continue;
        }
        let Some(source) = pem_source(
            e.cert_file.as_deref(),
            e.cert.as_deref(),
            ("cert_file", "cert"),
            &at,
            diags,
        ) else {
            continue;
        };
        let field = format!("{at}.{}", source.field());
        let certs = match read_certs(&source) {
            Ok(c) => c,
            Err(m) => {
                diags.push(Diagnostic::new(field, m));
                continue;
            }
        };
        if certs.len() != 1 {
            diags.push(Diagnostic::new(
                field,
                format!(
                    "{}: one certificate expected, found {}",
                    source.describe(),
                    certs.len()
                ),
            ));
            continue;
        }
        let der = certs[0].as_ref();
        let problem = match x509_parser::certificate::X509Certificate::from_der(der) {
            Err(_) => Some("not valid X.509".to_string()),
            Ok((_, cert)) if !cert.is_ca() => {
                Some("not a CA certificate: it lacks the CA basic constraint".to_string())
            }
            Ok((_, cert)) if cert.validity().not_after.timestamp() < unix_now() => Some(format!(
                "the certificate expired ({})",
                cert.validity().not_after
            )),
            Ok(_) => None,
        };
        match problem {
            Some(p) => diags.push(Diagnostic::new(
                field,
                format!("{}: {p}", source.describe()),
            )),
            None => {
                store.insert(e.id.clone(), der.to_vec());
            }
        }
    }
    store
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An upstream's TLS settings, loaded once per configuration.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The SNI sent and verified; `None`: the target's host.
    pub sni: Option<String>,
    /// Whether the target's certificate is verified.
    pub verify: bool,
    /// The CA certificates that verify targets (`None`: the system's roots).
    pub ca: Option<Arc<[WrappedX509]>>,
    /// The client certificate and key for mutual TLS.
    pub client: Option<Arc<CertKey>>,
    /// Keeps pooled connections apart by CA bundle: Pingora's connection reuse key
    /// covers SNI, verification and client certificate but not the CAs, so without it a
    /// reload that changes `ca_file` could reuse a connection the old CAs verified.
    pub pool_group: u64,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("verify", &self.verify)
            .field("ca", &self.ca.as_ref().map(|c| c.len()))
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

impl UpstreamTls {
    /// The TLS settings of `cfg` (`None` without `tls: true`); files are read now and
    /// problems reported at their field under `path` (`upstreams[i]`).
    pub fn build(
        cfg: &UpstreamConfig,
        path: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<UpstreamTls> {
        if !cfg.tls {
            for (field, set) in [
                ("ca_file", cfg.ca_file.is_some()),
                ("sni", cfg.sni.is_some()),
                ("client_cert", cfg.client_cert.is_some()),
                ("client_key", cfg.client_key.is_some()),
            ] {
                if set {
                    diags.push(Diagnostic::new(
                        format!("{path}.{field}"),
                        "applies only with `tls: true`",
                    ));
                }
            }
            return None;
        }
        let mut ok = true;
        let mut pool_group = 0;
        let ca = match cfg.ca_file.as_deref() {
            None => None,
            Some(file) => {
                let source = PemSource::File {
                    path: file,
                    field: "ca_file",
                };
                match read_certs(&source) {
                    Ok(certs) => Some({
                        use std::hash::{Hash, Hasher};
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        certs.hash(&mut h);
                        pool_group = h.finish();
                        certs
                            .into_iter()
                            .map(|c| {
                                WrappedX509::new(c.to_vec(), pingora_core::utils::tls::parse_x509)
                            })
                            .collect::<Vec<_>>()
                            .into()
                    }),
                    Err(e) => {
                        diags.push(Diagnostic::new(format!("{path}.ca_file"), e));
                        ok = false;
                        None
                    }
                }
            }
        };
        let client = match (cfg.client_cert.as_deref(), cfg.client_key.as_deref()) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                let missing = if cfg.client_cert.is_some() {
                    "client_key"
                } else {
                    "client_cert"
                };
                diags.push(Diagnostic::new(
                    format!("{path}.{missing}"),
                    "`client_cert` and `client_key` go together",
                ));
                ok = false;
                None
            }
            (Some(cert), Some(key)) => {
                let certs = read_certs(&PemSource::File {
                    path: cert,
                    field: "client_cert",
                });
                let key = read_key(&PemSource::File {
                    path: key,
                    field: "client_key",
                });
                match (certs, key) {
                    (Ok(certs), Ok(key)) => {
                        // Pingora turns the key's DER back into a key on every
                        // handshake (and panics if it cannot): check that it can.
                        let reparsed = PrivateKeyDer::try_from(key.secret_der().to_vec());
                        if reparsed.is_err()
                            || rustls::crypto::ring::sign::any_supported_type(&key).is_err()
                        {
                            diags.push(Diagnostic::new(
                                format!("{path}.client_key"),
                                "unsupported private key (RSA, ECDSA P-256/P-384 or Ed25519 expected)",
                            ));
                            ok = false;
                            None
                        } else {
                            Some(Arc::new(CertKey::new(
                                certs.into_iter().map(|c| c.to_vec()).collect(),
                                key.secret_der().to_vec(),
                            )))
                        }
                    }
                    (certs, key) => {
                        if let Err(e) = certs {
                            diags.push(Diagnostic::new(format!("{path}.client_cert"), e));
                        }
                        if let Err(e) = key {
                            diags.push(Diagnostic::new(format!("{path}.client_key"), e));
                        }
                        ok = false;
                        None
                    }
                }
            }
        };
        let sni = match cfg.sni.as_deref() {
            Some(s) if s.trim().is_empty() => {
                diags.push(Diagnostic::new(
                    format!("{path}.sni"),
                    "must not be empty (leave it out to send the target's host)",
                ));
                ok = false;
                None
            }
            other => other.map(str::to_string),
        };
        ok.then_some(UpstreamTls {
            sni,
            verify: cfg.tls_verify,
            ca,
            client,
            pool_group,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// A self-signed certificate for `names` (its CN the first name), as PEM.
    fn self_signed(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn inline(names: &[&str], snis: &[&str], default: bool) -> CertificateConfig {
        let (cert, key) = self_signed(names);
        CertificateConfig {
            cert: None,
            key: None,
            cert_pem: Some(cert),
            key_pem: Some(Secret::new(key)),
            snis: snis.iter().map(|s| s.to_string()).collect(),
            default,
            ocsp_file: None,
            acme: false,
        }
    }

    fn listener(certificates: Vec<CertificateConfig>) -> ListenerTls {
        ListenerTls {
            certificates,
            http2: true,
            client_certificate: Default::default(),
            max_handshakes: crate::config::defaults::tls_max_handshakes(),
            client_hello_timeout: crate::config::defaults::tls_client_hello_timeout(),
        }
    }

    /// The first DNS name of the certificate `resolve(sni)` picks.
    fn picked(set: &CertificateSet, sni: Option<&str>) -> Option<String> {
        use x509_parser::prelude::FromDer;
        let key = set.resolve(sni)?;
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(key.end_entity_cert().ok()?)
                .ok()?;
        let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
        Some(cn.to_string())
    }

    #[test]
    fn exact_names_win_over_wildcards_which_cover_one_label() {
        let tls = listener(vec![
            inline(&["first.test"], &[], false),
            inline(&["api.example.com"], &["API.example.com"], false),
            inline(&["wild.example.com"], &["*.example.com"], false),
            inline(&["fallback.test"], &[], true),
        ]);
        let mut d = Vec::new();
        let set = CertificateSet::build(
            &tls,
            "listeners[0].tls",
            &mut ManagedPool::new(None, None),
            &mut d,
        );
        assert!(d.is_empty(), "{d:?}");
        let p = |sni| picked(&set, sni);
        assert_eq!(
            p(Some("api.example.com")).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            p(Some("Api.Example.COM.")).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            p(Some("www.example.com")).as_deref(),
            Some("wild.example.com")
        );
        assert_eq!(p(Some("a.b.example.com")).as_deref(), Some("fallback.test"));
        assert_eq!(p(Some("example.com")).as_deref(), Some("fallback.test"));
        assert_eq!(p(None).as_deref(), Some("fallback.test"));
    }

    #[test]
    fn a_reload_reuses_certificates_whose_files_did_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let file_entry = |name: &str, sni: &str| {
            let (cert, key) = self_signed(&[sni]);
            let (c, k) = (
                dir.path().join(format!("{name}.crt")),
                dir.path().join(format!("{name}.key")),
            );
            std::fs::write(&c, cert).unwrap();
            std::fs::write(&k, key).unwrap();
            CertificateConfig {
                cert: Some(c.display().to_string()),
                key: Some(k.display().to_string()),
                cert_pem: None,
                key_pem: None,
                ..inline(&[sni], &[sni], false)
            }
        };
        let tls = listener(vec![file_entry("a", "a.test"), file_entry("b", "b.test")]);
        let build = |previous: Option<&CertificateSet>| {
            let mut d = Vec::new();
            let set = CertificateSet::build_reusing(
                &tls,
                "l",
                &mut ManagedPool::new(None, None),
                previous,
                &mut d,
            );
            assert!(d.is_empty(), "{d:?}");
            set
        };
        let first = build(None);
        let second = build(Some(&first));
        let same = |x: &CertificateSet, y: &CertificateSet, sni: &str| {
            Arc::ptr_eq(
                &x.resolve(Some(sni)).unwrap(),
                &y.resolve(Some(sni)).unwrap(),
            )
        };
        assert!(same(&first, &second, "a.test") && same(&first, &second, "b.test"));
        // b's file gets another certificate for the same name: loaded anew, a reused.
        let (cert, key) = self_signed(&["b.test"]);
        std::fs::write(dir.path().join("b.crt"), cert).unwrap();
        std::fs::write(dir.path().join("b.key"), key).unwrap();
        let third = build(Some(&second));
        assert!(same(&second, &third, "a.test"));
        assert!(!same(&second, &third, "b.test"));
        assert_eq!(picked(&third, Some("b.test")).as_deref(), Some("b.test"));
        // Without a previous set nothing is shared.
        assert!(!same(&third, &build(None), "a.test"));
    }

    #[test]
    fn without_a_marked_default_the_first_certificate_is_it() {
        let tls = listener(vec![
            inline(&["first.test"], &["first.test"], false),
            inline(&["second.test"], &["second.test"], false),
        ]);
        let mut d = Vec::new();
        let set = CertificateSet::build(&tls, "l", &mut ManagedPool::new(None, None), &mut d);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            picked(&set, Some("other.test")).as_deref(),
            Some("first.test")
        );
    }

    fn problems(tls: &ListenerTls) -> Vec<String> {
        let mut d = Vec::new();
        CertificateSet::build(
            tls,
            "listeners[1].tls",
            &mut ManagedPool::new(None, None),
            &mut d,
        );
        d.iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }

    #[test]
    fn certificate_problems_name_their_field() {
        assert_eq!(
            problems(&listener(vec![])),
            ["listeners[1].tls.certificates: an HTTPS listener needs at least one certificate"]
        );

        let mut both = inline(&["a.test"], &[], false);
        both.cert = Some("/etc/a.crt".into());
        let mut neither = inline(&["a.test"], &[], false);
        neither.key_pem = None;
        let p = problems(&listener(vec![both, neither]));
        assert_eq!(
            p,
            [
                "listeners[1].tls.certificates[0].cert_pem: give `cert` or `cert_pem`, not both",
                "listeners[1].tls.certificates[1]: give `key` (a file) or `key_pem` (PEM text)",
            ]
        );

        let mut missing = inline(&["a.test"], &[], false);
        missing.cert_pem = None;
        missing.cert = Some("/nonexistent/a.crt".into());
        let mut bad_key = inline(&["a.test"], &[], false);
        bad_key.key_pem = Some(Secret::new("-----BEGIN PRIVATE KEY-----\nnot base64\n"));
        let mut other_key = inline(&["a.test"], &[], false);
        other_key.key_pem = Some(Secret::new(self_signed(&["b.test"]).1));
        let p = problems(&listener(vec![missing, bad_key, other_key]));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].starts_with(
                "listeners[1].tls.certificates[0].cert: cannot read /nonexistent/a.crt:"
            ),
            "{p:?}"
        );
        assert!(
            p[1].starts_with("listeners[1].tls.certificates[1].key_pem: "),
            "{p:?}"
        );
        assert_eq!(
            p[2],
            "listeners[1].tls.certificates[2].key_pem: the private key does not belong to the certificate"
        );
        let mut no_ocsp = inline(&["a.test"], &[], false);
        no_ocsp.ocsp_file = Some("/nonexistent/a.ocsp".into());
        let p2 = problems(&listener(vec![no_ocsp]));
        assert!(
            p2[0].starts_with(
                "listeners[1].tls.certificates[0].ocsp_file: cannot read /nonexistent/a.ocsp:"
            ),
            "{p2:?}"
        );
        // The key text never appears in a message.
        assert!(p.iter().all(|m| !m.contains("not base64")), "{p:?}");

        let p = problems(&listener(vec![
            inline(&["a.test"], &["a.test"], true),
            inline(&["b.test"], &["A.test", "*"], true),
        ]));
        assert_eq!(
            p,
            [
                "listeners[1].tls.certificates: at most one certificate can be `default: true`",
                "listeners[1].tls.certificates[1].snis[0]: a.test is already the name of another certificate of this listener",
                "listeners[1].tls.certificates[1].snis[1]: \"*\" is not a server name; write a host name (api.example.com) or a wildcard for one label (*.example.com)",
            ]
        );
    }

    #[test]
    fn certificates_reload_while_address_tls_and_http2_need_a_restart() {
        use crate::config::Listener;
        let a = Listener {
            address: "127.0.0.1:8443".into(),
            h2c: false,
            tls: Some(listener(vec![inline(&["a.test"], &["a.test"], false)])),
        };
        let mut renewed = a.clone();
        renewed.tls = Some(listener(vec![inline(&["b.test"], &["b.test"], true)]));
        assert_ne!(a, renewed);
        assert_eq!(a.restart_key(), renewed.restart_key());
        let mut h1 = a.clone();
        if let Some(t) = h1.tls.as_mut() {
            t.http2 = false;
        }
        assert_ne!(a.restart_key(), h1.restart_key());
        let plain = Listener {
            address: a.address.clone(),
            h2c: false,
            tls: None,
        };
        assert_ne!(a.restart_key(), plain.restart_key());
        let h2c = Listener {
            h2c: true,
            ..plain.clone()
        };
        assert_ne!(plain.restart_key(), h2c.restart_key());
    }

    #[test]
    fn upstream_tls_fields_are_checked() {
        let mut cfg = crate::upstream::testing::config(
            "u",
            &[("127.0.0.1:1", 1)],
            crate::config::Balancer::RoundRobin,
        );
        cfg.sni = Some("api.test".into());
        cfg.client_key = Some("/k".into());
        let mut d = Vec::new();
        assert!(UpstreamTls::build(&cfg, "upstreams[0]", &mut d).is_none());
        let p: Vec<String> = d
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        assert_eq!(
            p,
            [
                "upstreams[0].sni: applies only with `tls: true`",
                "upstreams[0].client_key: applies only with `tls: true`",
            ]
        );

        cfg.tls = true;
        cfg.ca_file = Some("/nonexistent/ca.pem".into());
        let mut d = Vec::new();
        assert!(UpstreamTls::build(&cfg, "upstreams[0]", &mut d).is_none());
        let p: Vec<String> = d
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("upstreams[0].ca_file: cannot read /nonexistent/ca.pem:"));
        assert_eq!(
            p[1],
            "upstreams[0].client_cert: `client_cert` and `client_key` go together"
        );

        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(&["gateway.mesh"]);
        let (cert_path, key_path) = (dir.path().join("c.crt"), dir.path().join("c.key"));
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        cfg.ca_file = Some(cert_path.display().to_string());
        cfg.client_cert = Some(cert_path.display().to_string());
        cfg.client_key = Some(key_path.display().to_string());
        let mut d = Vec::new();
        let tls = UpstreamTls::build(&cfg, "upstreams[0]", &mut d).expect("valid");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(tls.sni.as_deref(), Some("api.test"));
        assert!(tls.verify && tls.client.is_some());
        assert_eq!(tls.ca.as_ref().map(|c| c.len()), Some(1));
        assert_ne!(tls.pool_group, 0);
        // Nothing of the key in its Debug form.
        assert!(!format!("{tls:?}").contains("PRIVATE"));
    }

    #[test]
    fn acme_names_are_served_once_issued_and_carried_across_reloads() {
        let yaml = "\
listeners:
  - address: 127.0.0.1:1
  - address: 127.0.0.1:2
    tls: {certificates: [{acme: true, snis: [App.test], default: true}]}
  - address: 127.0.0.1:3
    tls: {certificates: [{acme: true, snis: [app.test]}]}
";
        let mut cfg = crate::config::load_str(yaml).unwrap().config;
        let (fixed_cert, fixed_key) = self_signed(&["fixed.test"]);
        let tls = cfg.listeners[1].tls.as_mut().unwrap();
        tls.certificates.push(CertificateConfig {
            cert_pem: Some(fixed_cert),
            key_pem: Some(Secret::new(fixed_key)),
            snis: vec!["fixed.test".into()],
            ..tls.certificates[0].clone()
        });
        tls.certificates[1].acme = false;
        tls.certificates[1].default = false;
        let mut d = Vec::new();
        let first = ListenerCertificates::build(&cfg, None, &mut d);
        assert!(d.is_empty(), "{d:?}");
        // One managed certificate for both listeners.
        assert_eq!(first.managed().count(), 1);
        let set2 = first.get("127.0.0.1:2").unwrap();
        let set3 = first.get("127.0.0.1:3").unwrap();
        // Not issued yet: the default (the ACME entry) falls back to the file's one.
        assert_eq!(
            picked(set2, Some("app.test")).as_deref(),
            Some("fixed.test")
        );
        assert!(set3.resolve(Some("app.test")).is_none());

        let (cert, key) = self_signed(&["app.test"]);
        let managed = first.managed().next().unwrap().clone();
        let issued = crate::acme::Issued::from_pem(
            &cert,
            &key,
            managed.names(),
            std::time::SystemTime::now(),
        )
        .unwrap();
        managed.install(issued);
        assert_eq!(picked(set2, Some("APP.test")).as_deref(), Some("app.test"));
        assert_eq!(picked(set3, None).as_deref(), Some("app.test"));

        // A reload keeps the issued certificate (no storage to read it back from).
        let mut d = Vec::new();
        let next = ListenerCertificates::build(&cfg, Some(&first), &mut d);
        assert!(d.is_empty(), "{d:?}");
        let set = next.get("127.0.0.1:3").unwrap();
        assert_eq!(picked(set, Some("app.test")).as_deref(), Some("app.test"));
    }

    #[test]
    fn sni_patterns() {
        let mut d = Vec::new();
        assert_eq!(
            sni_pattern("API.Example.com", "x", &mut d).as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            sni_pattern("*.example.com", "x", &mut d).as_deref(),
            Some("*.example.com")
        );
        assert!(d.is_empty());
        for bad in ["*", "*.com", "a..b", "", "a.*.b", "exa mple.com"] {
            assert!(sni_pattern(bad, "x", &mut d).is_none(), "{bad}");
        }
        assert_eq!(d.len(), 6);
    }
}
