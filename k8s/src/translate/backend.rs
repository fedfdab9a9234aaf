//! A Service backend to an upstream pool: the ready addresses of its EndpointSlices on
//! the port the Ingress names (by name or number), or its cluster DNS name.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::IngressServiceBackend;
use serde_json::{json, Value};

use super::{annotation, Options, Snapshot, UpstreamMode};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A placeholder target for a pool whose Service has no ready endpoint: the gateway's
/// config needs one target per pool, and every route to such a pool answers 503 itself
/// (a `request-termination` plugin) before any target would be picked.
pub const NO_ENDPOINT_TARGET: &str = "127.0.0.1:9";

/// Services and their slices by namespace and name.
pub struct Services<'a> {
    services: BTreeMap<(&'a str, &'a str), &'a Service>,
    slices: BTreeMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

/// A resolved backend.
pub struct Pool<'a> {
    /// The upstream's name: `<namespace>.<service>.<port>`.
    pub name: String,
    /// The upstream's configuration.
    pub value: Value,
    /// No ready endpoint: routes to it answer 503.
    pub empty: bool,
    /// The Service, for its plugin annotations.
    pub service: &'a Service,
    /// Annotations of the Service that were ignored, and why.
    pub notes: Vec<String>,
}

impl<'a> Services<'a> {
    /// Indexes the snapshot's Services and EndpointSlices.
    pub fn index(snapshot: &'a Snapshot) -> Services<'a> {
        let mut services = BTreeMap::new();
        for s in &snapshot.services {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                services.insert((ns.as_str(), name.as_str()), s.as_ref());
            }
        }
        let mut slices: BTreeMap<_, Vec<&EndpointSlice>> = BTreeMap::new();
        for s in &snapshot.endpoint_slices {
            let owner = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(svc)) = (&s.metadata.namespace, owner) {
                slices
                    .entry((ns.as_str(), svc.as_str()))
                    .or_default()
                    .push(s.as_ref());
            }
        }
        Services { services, slices }
    }

    /// The pool for `backend` in namespace `ns`, or why there is none.
    pub fn resolve(
        &self,
        ns: &str,
        backend: &IngressServiceBackend,
        options: &Options,
    ) -> Result<Pool<'a>, String> {
        let svc: &'a Service = self
            .services
            .get(&(ns, backend.name.as_str()))
            .ok_or_else(|| format!("Service {ns}/{} not found", backend.name))?;
        let default_spec = Default::default();
        let spec: &ServiceSpec = svc.spec.as_ref().unwrap_or(&default_spec);
        let wanted = backend.port.as_ref();
        let ports: &[ServicePort] = spec.ports.as_deref().unwrap_or_default();
        let port: &ServicePort = ports
            .iter()
            .find(|p| match wanted {
                Some(w) if w.number.is_some() => w.number == Some(p.port),
                Some(w) => w.name.is_some() && w.name == p.name,
                None => ports.len() == 1,
            })
            .ok_or_else(|| {
                let asked = wanted
                    .and_then(|w| w.name.clone().or(w.number.map(|n| n.to_string())))
                    .unwrap_or_else(|| "(none)".into());
                format!("Service {ns}/{} has no port {asked}", backend.name)
            })?;
        let name = format!("{ns}.{}.{}", backend.name, port.port);
        let mut targets = BTreeSet::new();
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(host) = &spec.external_name {
                targets.insert(format!("{host}:{}", port.port));
            }
        } else {
            match options.upstreams {
                UpstreamMode::Dns => {
                    targets.insert(format!(
                        "{}.{ns}.svc.{}:{}",
                        backend.name, options.cluster_domain, port.port
                    ));
                }
                UpstreamMode::Endpoints => {
                    for slice in self
                        .slices
                        .get(&(ns, backend.name.as_str()))
                        .into_iter()
                        .flatten()
                    {
                        ready_targets(slice, port, &mut targets);
                    }
                }
            }
        }
        let empty = targets.is_empty();
        let mut value = json!({
            "name": name,
            "targets": if empty { vec![NO_ENDPOINT_TARGET.to_string()] } else { targets.into_iter().collect() },
        });
        let notes = upstream_annotations(&svc.metadata, &mut value);
        Ok(Pool {
            name,
            value,
            empty,
            service: svc,
            notes,
        })
    }
}

/// The ready addresses of `slice` on the slice port that carries `port`'s name.
fn ready_targets(slice: &EndpointSlice, port: &ServicePort, out: &mut BTreeSet<String>) {
    let Some(number) = slice
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or(""))
        .and_then(|p| p.port)
    else {
        return;
    };
    let v6 = slice.address_type == "IPv6";
    if slice.address_type != "IPv4" && !v6 {
        return; // FQDN slices are not addresses the gateway can connect to as they are
    }
    for e in slice.endpoints.iter().flatten() {
        // `ready` absent means ready (the API's rule); terminating endpoints are not ready.
        let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        // Addresses of one endpoint are fungible: the first is the one to use.
        if let (true, Some(addr)) = (ready, e.addresses.first()) {
            out.insert(if v6 {
                format!("[{addr}]:{number}")
            } else {
                format!("{addr}:{number}")
            });
        }
    }
}

/// Kong's Service annotations that map to pool fields: timeouts in milliseconds, the
/// retry count and the protocol spoken to the targets. A value that does not parse is
/// ignored, and said so in the returned notes.
fn upstream_annotations(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    value: &mut Value,
) -> Vec<String> {
    let mut notes = Vec::new();
    for (ann, field) in [
        ("connect-timeout", "connect_timeout"),
        ("read-timeout", "read_timeout"),
        ("write-timeout", "write_timeout"),
    ] {
        if let Some(v) = annotation(meta, ann) {
            match v.parse::<u64>() {
                Ok(ms) if ms > 0 && ms <= 86_400_000 => value[field] = json!(format!("{ms}ms")),
                _ => notes.push(format!(
                    "annotation {ann} `{v}` ignored: milliseconds from 1 to 86400000"
                )),
            }
        }
    }
    if let Some(v) = annotation(meta, "retries") {
        match v.parse::<u32>() {
            Ok(n) if n <= MAX_RETRIES => value["retries"] = json!(n),
            _ => notes.push(format!(
                "annotation retries `{v}` ignored: a count from 0 to {MAX_RETRIES}"
            )),
        }
    }
    if let Some(v) = annotation(meta, "protocol") {
        match v.to_ascii_lowercase().as_str() {
            "http" => {}
            "https" => value["tls"] = json!(true),
            "grpc" => value["protocol"] = json!("h2c"),
            "grpcs" => {
                value["protocol"] = json!("h2");
                value["tls"] = json!(true);
            }
            _ => notes.push(format!(
                "annotation protocol `{v}` ignored: use http, https, grpc or grpcs"
            )),
        }
    }
    notes
}

/// The most retries the `retries` annotation may ask for (Kong allows 32767; more than
/// a handful only multiplies an outage).
pub const MAX_RETRIES: u32 = 100;
