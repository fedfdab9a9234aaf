//! The translation: a snapshot of cluster objects to one gateway configuration. A pure
//! function of its inputs (no network, no files, no clock), so that the watcher, the
//! in-process mode and the tests share it and a given snapshot always gives the same YAML.
//!
//! A broken object (an unknown plugin, a plugin config the plugin refuses, a missing
//! Service or Secret, a path the router refuses) is left out with a [`Problem`] naming
//! it; the rest is translated as usual, and the result always passes the gateway's own
//! validation (the last step re-checks it and drops whatever still fails).

mod backend;
mod class;
mod ingress;
mod plugins;
mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use pingway::config::{GatewayConfig, RouteConfig};
use pingway::plugins::Registry;
use serde_json::{json, Value};

use crate::crd::{ClusterGatewayPlugin, GatewayPlugin, KongClusterPlugin, KongPlugin};

/// Every object the translation reads, as the watcher's stores hold them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `networking.k8s.io/v1` Ingresses, all namespaces.
    pub ingresses: Vec<Arc<Ingress>>,
    /// IngressClasses (to find whether ours is the default class).
    pub ingress_classes: Vec<Arc<IngressClass>>,
    /// Services (ports by name, ExternalName, plugin annotations).
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices (the ready addresses behind each Service).
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Secrets (`kubernetes.io/tls` ones are read for certificates).
    pub secrets: Vec<Arc<Secret>>,
    /// Our namespaced plugin resources.
    pub gateway_plugins: Vec<Arc<GatewayPlugin>>,
    /// Our cluster-wide plugin resources.
    pub cluster_gateway_plugins: Vec<Arc<ClusterGatewayPlugin>>,
    /// Kong's namespaced plugin resources.
    pub kong_plugins: Vec<Arc<KongPlugin>>,
    /// Kong's cluster-wide plugin resources.
    pub kong_cluster_plugins: Vec<Arc<KongClusterPlugin>>,
}

/// Where routes send traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamMode {
    /// The ready addresses of the Service's EndpointSlices (the gateway balances, checks
    /// health and retries per pod).
    #[default]
    Endpoints,
    /// The Service's cluster DNS name and port (what a mesh sidecar wants: the mesh
    /// balances).
    Dns,
}

/// How to translate.
#[derive(Clone)]
pub struct Options {
    /// The ingress class this gateway serves (`--ingress-class`, default `pingway`; Kong
    /// users pass `kong`).
    pub ingress_class: String,
    /// Endpoint addresses or Service DNS names.
    pub upstreams: UpstreamMode,
    /// The cluster's DNS domain, for [`UpstreamMode::Dns`] (default `cluster.local`).
    pub cluster_domain: String,
    /// The plain HTTP listener's address.
    pub http_listener: String,
    /// The HTTPS listener's address; it is written only while some Ingress has a usable
    /// certificate (adding or removing it takes a gateway restart).
    pub https_listener: Option<String>,
    /// The admin API's address, when wanted (the Deployment's readiness probe uses it).
    pub admin_listen: Option<String>,
    /// The plugins the gateway knows: names are looked up and configs checked here.
    pub registry: Registry,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("ingress_class", &self.ingress_class)
            .field("upstreams", &self.upstreams)
            .field("cluster_domain", &self.cluster_domain)
            .field("http_listener", &self.http_listener)
            .field("https_listener", &self.https_listener)
            .field("admin_listen", &self.admin_listen)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ingress_class: "pingway".into(),
            upstreams: UpstreamMode::Endpoints,
            cluster_domain: "cluster.local".into(),
            http_listener: "0.0.0.0:8080".into(),
            https_listener: Some("0.0.0.0:8443".into()),
            admin_listen: Some("127.0.0.1:8001".into()),
            registry: pingway_plugins::registry(),
        }
    }
}

/// An object (or a part of one) left out of the configuration, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The object's kind (`Ingress`, `KongPlugin`, ...).
    pub kind: &'static str,
    /// Its namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What is wrong and what was left out.
    pub reason: String,
}

impl Problem {
    fn new(kind: &'static str, meta: &ObjectMeta, reason: impl Into<String>) -> Problem {
        Problem {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}: {}", self.kind, self.name, self.reason)
        } else {
            write!(
                f,
                "{} {}/{}: {}",
                self.kind, self.namespace, self.name, self.reason
            )
        }
    }
}

/// The result: a configuration the gateway accepts, its YAML, and what was left out.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The configuration, as the gateway reads it from [`Translation::yaml`].
    pub config: GatewayConfig,
    /// The YAML text to write (deterministic: the same snapshot gives the same bytes).
    pub yaml: String,
    /// Objects or parts left out, sorted, each once.
    pub problems: Vec<Problem>,
    /// The Ingresses served: `(namespace, name)` of each Ingress of our class with at
    /// least one route in [`Translation::config`], sorted (their `status.loadBalancer`
    /// is written, see [`crate::status`]).
    pub accepted_ingresses: Vec<(String, String)>,
}

/// One generated route, with the object it came from (to name it if it must be dropped).
struct RouteOut {
    value: Value,
    kind: &'static str,
    meta: ObjectMeta,
}

/// What the translation accumulates.
#[derive(Default)]
struct Output {
    upstreams: BTreeMap<String, Value>,
    routes: Vec<RouteOut>,
    problems: Vec<Problem>,
}

/// Translates `snapshot` into the gateway's configuration.
pub fn translate(snapshot: &Snapshot, options: &Options) -> Translation {
    let mut out = Output::default();
    let catalogue = plugins::Catalogue::build(snapshot, &options.registry, &mut out.problems);
    let services = backend::Services::index(snapshot);
    let mut certificates = tls::Certificates::default();

    let mut ingresses: Vec<&Ingress> = snapshot
        .ingresses
        .iter()
        .map(Arc::as_ref)
        .filter(|i| class::serves(i, &snapshot.ingress_classes, &options.ingress_class))
        .collect();
    ingresses.sort_by_key(|a| key(&a.metadata));
    for ing in ingresses {
        ingress::translate_one(ing, &services, &catalogue, options, &mut out);
        if options.https_listener.is_some() {
            certificates.collect(ing, snapshot, &mut out.problems);
        }
    }

    let mut listeners = vec![json!({"address": options.http_listener})];
    if let Some(address) = &options.https_listener {
        let certs = certificates.finish(&mut out.problems);
        if !certs.is_empty() {
            listeners.push(json!({"address": address, "tls": {"certificates": certs}}));
        }
    }
    let mut doc = serde_json::Map::new();
    doc.insert("listeners".into(), Value::Array(listeners));
    if let Some(admin) = &options.admin_listen {
        doc.insert("admin".into(), json!({ "listen": admin }));
    }
    let global = catalogue.global();
    if !global.is_empty() {
        doc.insert("plugins".into(), Value::Array(global));
    }
    finish(doc, out)
}

/// The namespace/name sort key of an object.
fn key(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// Checks each route alone (matchers), then the whole file as the gateway will, dropping
/// what fails; renders the YAML.
fn finish(mut doc: serde_json::Map<String, Value>, mut out: Output) -> Translation {
    // A route whose hosts or paths the router refuses is dropped by itself, naming its
    // Ingress, before the whole file is checked.
    out.routes.retain(|r| match route_problem(&r.value) {
        None => true,
        Some(reason) => {
            out.problems.push(Problem::new(r.kind, &r.meta, reason));
            false
        }
    });
    // The whole file: anything left that the gateway would refuse is dropped, by route,
    // until the file passes (a bug of this translation if it ever happens; bounded by
    // the number of routes).
    loop {
        doc.insert(
            "upstreams".into(),
            Value::Array(out.upstreams.values().cloned().collect()),
        );
        doc.insert(
            "routes".into(),
            Value::Array(out.routes.iter().map(|r| r.value.clone()).collect()),
        );
        let value = Value::Object(doc.clone());
        let yaml = crate::render::to_yaml(&value);
        match check(&yaml) {
            Ok(config) => {
                out.problems.sort();
                out.problems.dedup();
                let mut accepted_ingresses: Vec<(String, String)> = out
                    .routes
                    .iter()
                    .filter(|r| r.kind == "Ingress")
                    .map(|r| key(&r.meta))
                    .collect();
                accepted_ingresses.sort();
                accepted_ingresses.dedup();
                return Translation {
                    config,
                    yaml,
                    problems: out.problems,
                    accepted_ingresses,
                };
            }
            Err(diags) => {
                let bad: Vec<usize> = diags.iter().filter_map(|d| route_index(&d.path)).collect();
                if bad.is_empty() {
                    // Not a route's fault: keep the listeners only, which always pass.
                    out.problems.push(Problem {
                        kind: "Configuration",
                        namespace: String::new(),
                        name: "pingway".into(),
                        reason: format!(
                            "the generated file failed validation ({}); routes left out",
                            diags
                                .iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    });
                    out.routes.clear();
                    out.upstreams.clear();
                    doc.remove("plugins");
                    continue;
                }
                let mut i = 0;
                out.routes.retain(|r| {
                    let keep = !bad.contains(&i);
                    i += 1;
                    if !keep {
                        let why = diags
                            .iter()
                            .filter(|d| route_index(&d.path) == Some(i - 1))
                            .map(|d| d.message.clone())
                            .collect::<Vec<_>>()
                            .join("; ");
                        out.problems.push(Problem::new(
                            r.kind,
                            &r.meta,
                            format!("route {} left out: {why}", route_name(&r.value)),
                        ));
                    }
                    keep
                });
            }
        }
    }
}

fn route_name(route: &Value) -> &str {
    route.get("name").and_then(Value::as_str).unwrap_or("")
}

/// `routes[7].paths[0]` → 7.
fn route_index(path: &str) -> Option<usize> {
    let rest = path.strip_prefix("routes[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// What the router says of one route's matchers, if it refuses them.
fn route_problem(route: &Value) -> Option<String> {
    let node = pingway::stock::config::ConfigNode::from_json(route);
    let typed: RouteConfig = match pingway::stock::config::from_node(&node, "") {
        Ok(r) => r,
        Err(diags) => return Some(join(&diags)),
    };
    match pingway::router::Router::build(std::slice::from_ref(&typed)) {
        Ok(_) => None,
        Err(diags) => Some(format!("route {} left out: {}", typed.name, join(&diags))),
    }
}

fn join(diags: &[pingway::config::Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses `yaml` as the gateway does and runs the checks that need no DNS and no files:
/// structure, cross-field validation, the route table. (`pingway validate` also resolves
/// target names; endpoint targets are addresses and need no lookup.)
pub fn check(yaml: &str) -> Result<GatewayConfig, Vec<pingway::config::Diagnostic>> {
    let loaded = pingway::config::load_str(yaml)?;
    let mut diags = pingway::config::validate::check(&loaded.config);
    if let Err(mut d) = pingway::router::Router::build(&loaded.config.routes) {
        diags.append(&mut d);
    }
    if diags.is_empty() {
        Ok(loaded.config)
    } else {
        Err(diags)
    }
}

/// Reads `pingway.io/<name>`, else Kong's `konghq.com/<name>`.
fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    let a = meta.annotations.as_ref()?;
    a.get(&format!("pingway.io/{name}"))
        .or_else(|| a.get(&format!("konghq.com/{name}")))
        .map(|s| s.trim())
}

/// A comma list, trimmed, empty items dropped.
fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests;
