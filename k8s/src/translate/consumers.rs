//! Kong's `KongConsumer`s to the `consumers:` section, with their credentials read from
//! Secrets as Kong's controller (3.x) reads them: a Secret named in the consumer's
//! `credentials` and labelled `konghq.com/credential: <type>` (`key-auth`, `basic-auth`,
//! `jwt`, `acl`), its fields the credential's. A Secret without the label but with the
//! legacy `kongCredType` data field is read too, when the snapshot holds it.
//!
//! Only consumers of our ingress class are read (Kong's rule: the
//! `kubernetes.io/ingress.class` annotation names the class; a consumer without it only
//! when our IngressClass is the default). A missing or malformed credential is left out
//! alone with a problem naming the consumer and the Secret; the consumer stays. The
//! whole set is then checked as the gateway builds it, so a key used by two consumers
//! is kept for the first (namespace/name order) and left out of the later one. No
//! problem ever carries a credential's value.
//!
//! Pingway has no consumer groups: a KongConsumer's `consumerGroups` are not carried
//! over; the consumer is kept without them, with a problem naming it.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use pingway::stock::config::{from_node, ConfigNode};
use pingway::stock::consumers::{ConsumerConfig, ConsumerSet};
use serde_json::{json, Map, Value};

use super::plugins::Catalogue;
use super::{annotation, class, comma_list, Options, Problem, Snapshot};

/// The label that marks a Secret as a consumer credential, its value the type.
pub const CREDENTIAL_LABEL: &str = "konghq.com/credential";
/// The data field that named the type before the label (Kong's controller before 2.x).
pub const LEGACY_TYPE_FIELD: &str = "kongCredType";

/// One consumer, with where each of its credentials came from.
pub struct ConsumerOut {
    /// The KongConsumer, for problems.
    pub meta: ObjectMeta,
    /// `username`, `custom_id`, `plugins`.
    base: Map<String, Value>,
    /// Its credentials, in `credentials` order.
    creds: Vec<Cred>,
}

struct Cred {
    /// The consumer field it goes under (`keyauth_credentials`, ...).
    field: &'static str,
    /// The entry.
    value: Value,
    /// The Secret's name, for problems.
    secret: String,
}

impl ConsumerOut {
    /// The `consumers:` entry.
    pub fn value(&self) -> Value {
        let mut m = self.base.clone();
        for c in &self.creds {
            let list = m.entry(c.field).or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                a.push(c.value.clone());
            }
        }
        Value::Object(m)
    }

    /// The index of the `j`-th credential under `field`.
    fn cred_index(&self, field: &str, j: usize) -> Option<usize> {
        self.creds
            .iter()
            .enumerate()
            .filter(|(_, c)| c.field == field)
            .nth(j)
            .map(|(i, _)| i)
    }
}

/// The consumers of our class in `snapshot`, each checked; problems for what is left out.
pub fn translate(
    snapshot: &Snapshot,
    options: &Options,
    catalogue: &Catalogue,
    problems: &mut Vec<Problem>,
) -> Vec<ConsumerOut> {
    let mut kcs: Vec<_> = snapshot
        .kong_consumers
        .iter()
        .filter(|c| {
            class::serves_annotated(
                &c.metadata,
                &snapshot.ingress_classes,
                &options.ingress_class,
            )
        })
        .collect();
    kcs.sort_by_key(|c| super::key(&c.metadata));
    let mut out = Vec::new();
    for kc in kcs {
        let meta = &kc.metadata;
        let ns = meta.namespace.clone().unwrap_or_default();
        let nonempty = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).is_some();
        if !nonempty(&kc.username) && !nonempty(&kc.custom_id) {
            problems.push(Problem::new(
                "KongConsumer",
                meta,
                "left out: it needs a `username` or a `custom_id`",
            ));
            continue;
        }
        if !kc.consumer_groups.is_empty() {
            problems.push(Problem::new(
                "KongConsumer",
                meta,
                format!(
                    "consumerGroups [{}] not carried over: Pingway has no consumer groups (the consumer is kept without them; give it its plugins through konghq.com/plugins)",
                    kc.consumer_groups.join(", ")
                ),
            ));
        }
        let mut base = Map::new();
        if let Some(u) = kc.username.as_ref().filter(|s| !s.is_empty()) {
            base.insert("username".into(), json!(u));
        }
        if let Some(c) = kc.custom_id.as_ref().filter(|s| !s.is_empty()) {
            base.insert("custom_id".into(), json!(c));
        }
        let names = annotation(meta, "plugins")
            .map(comma_list)
            .unwrap_or_default();
        match catalogue.resolve(&ns, &names) {
            Ok(p) if p.is_empty() => {}
            Ok(p) => {
                base.insert("plugins".into(), Value::Array(p));
            }
            Err(reason) => {
                problems.push(Problem::new(
                    "KongConsumer",
                    meta,
                    format!("left out: {reason}"),
                ));
                continue;
            }
        }
        let mut creds = Vec::new();
        let mut seen = BTreeSet::new();
        for secret in &kc.credentials {
            if !seen.insert(secret.as_str()) {
                continue;
            }
            match credential(snapshot, &ns, secret) {
                Ok((field, value)) => creds.push(Cred {
                    field,
                    value,
                    secret: secret.clone(),
                }),
                Err(reason) => problems.push(Problem::new(
                    "KongConsumer",
                    meta,
                    format!("credential Secret {ns}/{secret} left out: {reason}"),
                )),
            }
        }
        out.push(ConsumerOut {
            meta: meta.clone(),
            base,
            creds,
        });
    }
    check(&mut out, problems);
    out
}

/// Checks the consumers as the gateway will build them, leaving out each credential
/// (or, for a fault of the consumer itself, each consumer) the gateway would refuse,
/// until the set builds. Bounded: every round removes at least one thing.
fn check(out: &mut Vec<ConsumerOut>, problems: &mut Vec<Problem>) {
    loop {
        let mut diags = Vec::new();
        let mut configs = Vec::with_capacity(out.len());
        for (i, c) in out.iter().enumerate() {
            let node = ConfigNode::from_json(&c.value());
            match from_node::<ConsumerConfig>(&node, &format!("consumers[{i}]")) {
                Ok(cfg) => configs.push(cfg),
                Err(mut d) => diags.append(&mut d),
            }
        }
        if diags.is_empty() {
            match ConsumerSet::build(&configs, "consumers") {
                Ok(_) => return,
                Err(d) => diags = d,
            }
        }
        // (consumer, Some(credential)) or (consumer, None) for the consumer itself.
        let mut bad: BTreeSet<(usize, Option<usize>)> = BTreeSet::new();
        for d in &diags {
            let Some((i, rest)) = indexed(&d.path, "consumers") else {
                continue;
            };
            let Some(c) = out.get(i) else { continue };
            let rest = rest.strip_prefix('.').unwrap_or(rest);
            let field = rest.split(['[', '.']).next().unwrap_or("");
            let cred = indexed(rest, field).and_then(|(j, _)| {
                CREDENTIAL_FIELDS
                    .iter()
                    .find(|f| **f == field)
                    .and_then(|f| c.cred_index(f, j))
            });
            let what = match cred {
                Some(k) => format!(
                    "credential Secret {}/{} left out",
                    c.meta.namespace.as_deref().unwrap_or(""),
                    c.creds[k].secret
                ),
                None => "left out".to_string(),
            };
            // Field and message only: the gateway's messages never quote a secret.
            let place = rest.split_once('.').map_or("", |(_, f)| f);
            let field_note = if place.is_empty() {
                String::new()
            } else {
                format!("{place}: ")
            };
            problems.push(Problem::new(
                "KongConsumer",
                &c.meta,
                format!("{what}: {field_note}{}", d.message),
            ));
            bad.insert((i, cred));
        }
        if bad.is_empty() {
            // Not attributable (should not happen): no consumers rather than a file
            // the gateway refuses.
            for c in out.iter() {
                problems.push(Problem::new(
                    "KongConsumer",
                    &c.meta,
                    "left out: the consumers failed the gateway's checks",
                ));
            }
            out.clear();
            return;
        }
        let whole: BTreeSet<usize> = bad
            .iter()
            .filter(|(_, c)| c.is_none())
            .map(|(i, _)| *i)
            .collect();
        for &(i, k) in bad.iter().rev() {
            if let (Some(k), false) = (k, whole.contains(&i)) {
                out[i].creds.remove(k);
            }
        }
        for &i in whole.iter().rev() {
            out.remove(i);
        }
    }
}

/// The consumer fields credentials go under.
const CREDENTIAL_FIELDS: [&str; 4] = [
    "keyauth_credentials",
    "basicauth_credentials",
    "jwt_secrets",
    "acls",
];

/// `consumers[3].x` with `name` = `consumers` → (3, ".x").
fn indexed<'a>(path: &'a str, name: &str) -> Option<(usize, &'a str)> {
    let rest = path.strip_prefix(name)?.strip_prefix('[')?;
    let end = rest.find(']')?;
    Some((rest[..end].parse().ok()?, &rest[end + 1..]))
}

/// The credential in Secret `ns/name`: the consumer field it goes under and its entry.
fn credential(snapshot: &Snapshot, ns: &str, name: &str) -> Result<(&'static str, Value), String> {
    let secret = find_secret(&snapshot.secrets, ns, name).ok_or_else(|| {
        format!("not found (the watcher reads only Secrets labelled `{CREDENTIAL_LABEL}`)")
    })?;
    let field = |k: &str| -> Result<Option<String>, String> {
        // The API server gives `data`; `stringData` is read too for manifests as
        // written (the server merges it into `data`, and it wins).
        let raw = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(k).map(|s| s.as_bytes().to_vec()))
            .or_else(|| {
                secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .map(|b| b.0.clone())
            });
        match raw {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| format!("field `{k}` is not UTF-8 text")),
        }
    };
    let required = |k: &str| -> Result<String, String> {
        field(k)?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("field `{k}` is missing or empty"))
    };
    let label = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CREDENTIAL_LABEL))
        .cloned();
    let ty = match label {
        Some(t) => t,
        None => field(LEGACY_TYPE_FIELD)?.ok_or_else(|| {
            format!("it has no `{CREDENTIAL_LABEL}` label naming the credential type")
        })?,
    };
    match ty.trim() {
        "key-auth" | "keyauth_credential" => Ok((
            "keyauth_credentials",
            json!({"key": required("key")?, "id": name}),
        )),
        "basic-auth" | "basicauth_credential" => Ok((
            "basicauth_credentials",
            json!({"username": required("username")?, "password": required("password")?}),
        )),
        "jwt" | "jwt_secret" => {
            let mut v = json!({"key": required("key")?});
            for k in ["algorithm", "secret", "rsa_public_key"] {
                if let Some(x) = field(k)?.filter(|x| !x.is_empty()) {
                    v[k] = json!(x);
                }
            }
            Ok(("jwt_secrets", v))
        }
        "acl" => Ok(("acls", json!({"group": required("group")?}))),
        other => Err(format!(
            "credential type `{other}` is not supported (key-auth, basic-auth, jwt, acl are)"
        )),
    }
}

fn find_secret<'a>(secrets: &'a [Arc<Secret>], ns: &str, name: &str) -> Option<&'a Secret> {
    secrets
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns) && s.metadata.name.as_deref() == Some(name)
        })
        .map(Arc::as_ref)
}
