//! An Ingress's `tls:` entries (and a Gateway's HTTPS listeners' certificateRefs) to the
//! HTTPS listener's certificates, for the hosts the entries list: each
//! `kubernetes.io/tls` Secret's chain and key as files named by their content (with
//! [`super::Options::certificate_dir`]; see [`crate::cert_files`]), else inline PEM.
//! Each certificate is checked as the gateway will check it; a bad one is left out
//! alone.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::Secret;

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use pingway::config::{CertificateConfig, ListenerTls, Secret as SecretText};
use serde_json::{json, Value};

use super::{Problem, Snapshot};
use crate::cert_files::PemFile;

/// The Secret type that holds a certificate and its key.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Certificates gathered from the Ingresses and Gateways, by Secret (namespace, name).
pub struct Certificates<'a> {
    secrets: SecretIndex<'a>,
    by_secret: BTreeMap<(String, String), Cert>,
}

struct Cert {
    cert: String,
    key: String,
    snis: BTreeSet<String>,
    /// The kind of the object that first named it, for problems.
    kind: &'static str,
    /// The object that first named it.
    owner: ObjectMeta,
}

impl<'a> Certificates<'a> {
    /// No certificates yet; Secrets are read from `snapshot`.
    pub fn new(snapshot: &'a Snapshot) -> Certificates<'a> {
        Certificates {
            secrets: SecretIndex::build(snapshot),
            by_secret: BTreeMap::new(),
        }
    }

    /// Adds the Secrets `ingress` names in its `tls:` entries.
    pub fn collect(&mut self, ingress: &Ingress, problems: &mut Vec<Problem>) {
        let ns = ingress.metadata.namespace.clone().unwrap_or_default();
        for tls in ingress.spec.iter().flat_map(|s| s.tls.iter().flatten()) {
            let Some(secret_name) = &tls.secret_name else {
                continue;
            };
            let hosts: Vec<String> = tls.hosts.iter().flatten().cloned().collect();
            if let Err(reason) = self.add("Ingress", &ingress.metadata, &ns, secret_name, &hosts) {
                problems.push(Problem::new(
                    "Ingress",
                    &ingress.metadata,
                    format!("tls entry left out: {reason}"),
                ));
            }
        }
    }

    /// Adds the Secret `ns/secret_name` for `hosts`, named by the object `meta` of
    /// `kind` (an Ingress, a Gateway), or says why it cannot be read.
    pub fn add(
        &mut self,
        kind: &'static str,
        meta: &ObjectMeta,
        ns: &str,
        secret_name: &str,
        hosts: &[String],
    ) -> Result<(), String> {
        let key = (ns.to_string(), secret_name.to_string());
        if !self.by_secret.contains_key(&key) {
            let (cert, k) = read_secret(&self.secrets, ns, secret_name)?;
            self.by_secret.insert(
                key.clone(),
                Cert {
                    cert,
                    key: k,
                    snis: BTreeSet::new(),
                    kind,
                    owner: meta.clone(),
                },
            );
        }
        if let Some(c) = self.by_secret.get_mut(&key) {
            for h in hosts {
                let h = h.trim().to_ascii_lowercase();
                if !h.is_empty() {
                    c.snis.insert(h);
                }
            }
        }
        Ok(())
    }

    /// The listener's `certificates:` entries: each checked alone; a name already
    /// served by an earlier Secret (in namespace/name order) is not served twice.
    /// At most `max` of them: the rest, in the same order, are left out and counted in
    /// `left_out`. Also names the Secrets (namespace, name) left out, because the
    /// gateway refuses their certificate or key or beyond `max`.
    ///
    /// With `dir`, the entries name files in `dir` (`cert:`, `key:`) whose contents are
    /// added to `files`, each distinct content once; without, the PEM is inline.
    pub fn finish(
        self,
        max: usize,
        dir: Option<&std::path::Path>,
        files: &mut Vec<PemFile>,
        left_out: &mut usize,
        problems: &mut Vec<Problem>,
    ) -> (Vec<Value>, Vec<(String, String)>) {
        let mut taken: HashSet<String> = HashSet::new();
        let mut named: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let mut dropped = Vec::new();
        // The gateway's check of each certificate is independent CPU work: done first,
        // for the first `max` (the others are checked only if some of those fail), on
        // every core. A name taken by an earlier Secret is one that passed the check,
        // so checking before removing taken names finds the same problems.
        let mut checked = {
            let first: Vec<&Cert> = self.by_secret.values().take(max).collect();
            parallel_map(&first, |c| check(c))
        }
        .into_iter();
        for ((ns, name), mut c) in self.by_secret {
            if out.len() >= max {
                *left_out += 1;
                problems.push(Problem::new(
                    c.kind,
                    &c.owner,
                    format!("Secret {ns}/{name} left out: the HTTPS listener holds at most {max} certificates (--max-certificates)"),
                ));
                dropped.push((ns, name));
                continue;
            }
            c.snis.retain(|s| {
                if taken.contains(s) {
                    problems.push(Problem::new(
                        c.kind,
                        &c.owner,
                        format!("{s} already has a certificate from another Secret; Secret {ns}/{name} is not served for it"),
                    ));
                    false
                } else {
                    true
                }
            });
            let diags = checked.next().unwrap_or_else(|| check(&c));
            if !diags.is_empty() {
                problems.push(Problem::new(
                    c.kind,
                    &c.owner,
                    format!("Secret {ns}/{name} left out: {}", diags.join("; ")),
                ));
                dropped.push((ns, name));
                continue;
            }
            taken.extend(c.snis.iter().cloned());
            match dir {
                Some(dir) => {
                    let cert = PemFile::certificate(c.cert);
                    let key = PemFile::key(c.key);
                    let entry = json!({
                        "cert": dir.join(&cert.name).to_string_lossy(),
                        "key": dir.join(&key.name).to_string_lossy(),
                        "snis": c.snis,
                    });
                    for f in [cert, key] {
                        if named.insert(f.name.clone()) {
                            files.push(f);
                        }
                    }
                    out.push(entry);
                }
                None => out.push(json!({"cert_pem": c.cert, "key_pem": c.key, "snis": c.snis})),
            }
        }
        (out, dropped)
    }
}

/// What the gateway says of `c`'s certificate, key and names, loaded alone: nothing
/// when it serves them.
fn check(c: &Cert) -> Vec<String> {
    let config = CertificateConfig {
        cert: None,
        key: None,
        cert_pem: Some(c.cert.clone()),
        key_pem: Some(SecretText::new(c.key.clone())),
        snis: c.snis.iter().cloned().collect(),
        default: false,
        ocsp_file: None,
        acme: false,
    };
    let mut diags = Vec::new();
    let listener = ListenerTls {
        certificates: vec![config],
        http2: true,
        client_certificate: Default::default(),
        max_handshakes: pingway::config::defaults::tls_max_handshakes(),
        client_hello_timeout: pingway::config::defaults::tls_client_hello_timeout(),
    };
    // Inline certificates only: no ACME pool to draw from.
    let mut no_acme = pingway::acme::ManagedPool::new(None, None);
    pingway::tls::CertificateSet::build(&listener, "tls", &mut no_acme, &mut diags);
    diags.into_iter().map(|d| d.message).collect()
}

/// `f` of each item, in order; from 64 items on, on as many threads as there are cores
/// (at most 8).
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = if items.len() >= 64 {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    } else {
        1
    };
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The snapshot's Secrets by namespace and name.
pub struct SecretIndex<'a>(HashMap<(&'a str, &'a str), &'a Secret>);

impl<'a> SecretIndex<'a> {
    /// Indexes `snapshot.secrets`.
    pub fn build(snapshot: &'a Snapshot) -> SecretIndex<'a> {
        SecretIndex(
            snapshot
                .secrets
                .iter()
                .filter_map(|s| {
                    let m = &s.metadata;
                    Some(((m.namespace.as_deref()?, m.name.as_deref()?), s.as_ref()))
                })
                .collect(),
        )
    }
}

/// The PEM certificate and key of a `kubernetes.io/tls` Secret.
fn read_secret(
    secrets: &SecretIndex<'_>,
    ns: &str,
    name: &str,
) -> Result<(String, String), String> {
    let secret = secrets
        .0
        .get(&(ns, name))
        .ok_or_else(|| format!("Secret {ns}/{name} not found"))?;
    if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err(format!(
            "Secret {ns}/{name} is not of type {TLS_SECRET_TYPE}"
        ));
    }
    let field = |k: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(k))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("Secret {ns}/{name} has no PEM `{k}`"))
    };
    Ok((field("tls.crt")?, field("tls.key")?))
}
