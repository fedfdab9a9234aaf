//! The translation: a snapshot of cluster objects to one gateway configuration. A pure
//! function of its inputs (no network, no files, no clock), so that the watcher, the
//! in-process mode and the tests share it and a given snapshot always gives the same YAML.
//!
//! A broken object (an unknown plugin, a plugin config the plugin refuses, a missing
//! Service or Secret, a path the router refuses) is left out with a [`Problem`] naming
//! it; the rest is translated as usual, and the result always passes the gateway's own
//! validation (the last step re-checks it and drops whatever still fails).

mod annotations;
mod backend;
mod class;
mod consumers;
pub mod gateway;
mod httproute;
mod ingress;
mod plugins;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use pingway::config::{GatewayConfig, RouteConfig};
use pingway::plugins::Registry;
use serde_json::{json, Value};

use crate::crd::{
    ClusterGatewayPlugin, GatewayPlugin, KongClusterPlugin, KongConsumer, KongPlugin,
};
use crate::gateway_api::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};

pub use consumers::{CREDENTIAL_LABEL, LEGACY_TYPE_FIELD};
pub use gateway::{GatewayApiStatus, StatusOf};

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
    /// Secrets: `kubernetes.io/tls` ones are read for certificates, those labelled
    /// `konghq.com/credential` for consumer credentials (the watcher holds only these).
    pub secrets: Vec<Arc<Secret>>,
    /// Our namespaced plugin resources.
    pub gateway_plugins: Vec<Arc<GatewayPlugin>>,
    /// Our cluster-wide plugin resources.
    pub cluster_gateway_plugins: Vec<Arc<ClusterGatewayPlugin>>,
    /// Kong's namespaced plugin resources.
    pub kong_plugins: Vec<Arc<KongPlugin>>,
    /// Kong's cluster-wide plugin resources.
    pub kong_cluster_plugins: Vec<Arc<KongClusterPlugin>>,
    /// Gateway API GatewayClasses (watched when their CRD is installed).
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    /// Gateway API Gateways.
    pub gateways: Vec<Arc<Gateway>>,
    /// Gateway API HTTPRoutes.
    pub http_routes: Vec<Arc<HttpRoute>>,
    /// Gateway API ReferenceGrants (cross-namespace backendRefs and certificateRefs).
    pub reference_grants: Vec<Arc<ReferenceGrant>>,
    /// Kong's consumers (their credentials are in [`Snapshot::secrets`]).
    pub kong_consumers: Vec<Arc<KongConsumer>>,
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

/// The Gateway API controller name served by default.
pub const DEFAULT_GATEWAY_CONTROLLER: &str = "pingway.io/gateway-controller";

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
    /// The Gateway API controller name this gateway serves: GatewayClasses whose
    /// `spec.controllerName` equals it (`--gateway-controller`, default
    /// `pingway.io/gateway-controller`).
    pub gateway_controller: String,
    /// The addresses written into Gateways' `status.addresses` (`--gateway-address`;
    /// default none).
    pub gateway_addresses: Vec<String>,
    /// The plugins the gateway knows: names are looked up and configs checked here.
    pub registry: Registry,
    /// The most the generated file holds, whatever the cluster has.
    pub limits: Limits,
    /// Where certificate and key files are named from (`cert:`/`key:` paths, their
    /// contents in [`Translation::certificate_files`] for the watcher to write); `None`
    /// writes them inline (`cert_pem`/`key_pem`), as `pingway-k8s translate` does.
    pub certificate_dir: Option<std::path::PathBuf>,
}

/// Bounds on the generated configuration. The watcher holds whatever the cluster has;
/// the file it writes holds at most this much. What is beyond a bound is left out
/// deterministically (upstreams in name order, routes in namespace/name order,
/// certificates in Secret namespace/name order), each with a [`Problem`], and counted in
/// [`Translation::left_out`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Routes (`--max-routes`, default 50,000).
    pub max_routes: usize,
    /// Upstream pools (`--max-upstreams`, default 20,000).
    pub max_upstreams: usize,
    /// Targets over all pools (`--max-targets`, default 200,000).
    pub max_targets: usize,
    /// Certificates of the HTTPS listener, one per Secret (`--max-certificates`,
    /// default 50,000).
    pub max_certificates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_routes: 50_000,
            max_upstreams: 20_000,
            max_targets: 200_000,
            max_certificates: 50_000,
        }
    }
}

/// What the [`Limits`] left out of one translation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeftOut {
    /// Routes beyond `max_routes`, or to an upstream that was left out.
    pub routes: usize,
    /// Upstream pools beyond `max_upstreams` or with no target left in `max_targets`.
    pub upstreams: usize,
    /// Targets beyond `max_targets` (including those of the pools left out).
    pub targets: usize,
    /// Certificates beyond `max_certificates`.
    pub certificates: usize,
}

impl LeftOut {
    /// Whether anything was left out.
    pub fn any(&self) -> bool {
        *self != LeftOut::default()
    }
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
            .field("gateway_controller", &self.gateway_controller)
            .field("gateway_addresses", &self.gateway_addresses)
            .field("limits", &self.limits)
            .field("certificate_dir", &self.certificate_dir)
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
            gateway_controller: DEFAULT_GATEWAY_CONTROLLER.into(),
            gateway_addresses: Vec::new(),
            registry: pingway_plugins::registry(),
            limits: Limits::default(),
            certificate_dir: None,
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
    /// The status of the Gateway API objects this gateway serves, for the writer.
    pub gateway_api_status: GatewayApiStatus,
    /// What the [`Limits`] left out (also named in `problems`).
    pub left_out: LeftOut,
    /// The Ingresses served: `(namespace, name)` of each Ingress of our class with at
    /// least one route in [`Translation::config`], sorted (their `status.loadBalancer`
    /// is written, see [`crate::status`]).
    pub accepted_ingresses: Vec<(String, String)>,
    /// The certificate and key files [`Translation::yaml`] names (with
    /// [`Options::certificate_dir`]), each once: written before the YAML.
    pub certificate_files: Vec<crate::cert_files::PemFile>,
}

/// One generated route, with the object it came from (to name it if it must be dropped).
struct RouteOut {
    value: Value,
    kind: &'static str,
    meta: ObjectMeta,
    /// `regex-priority`: higher comes first in the file, where the router breaks ties
    /// between regex paths (and between otherwise equal routes) by file order.
    priority: i64,
    /// The route as the gateway reads it, once checked alone (in [`finish`]); boxed, as
    /// it is large and most of the list's life it is absent.
    typed: Option<Box<RouteConfig>>,
}

/// What a route keeps of the object it came from: the namespace and name its problems
/// name. (A whole ObjectMeta per route, annotations and managed fields included, was a
/// large share of a big translation's memory.)
fn origin(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        ..ObjectMeta::default()
    }
}

/// What the translation accumulates.
#[derive(Default)]
struct Output {
    upstreams: BTreeMap<String, Value>,
    routes: Vec<RouteOut>,
    consumers: Vec<consumers::ConsumerOut>,
    problems: Vec<Problem>,
    left_out: LeftOut,
}

/// Translates `snapshot` into the gateway's configuration.
pub fn translate(snapshot: &Snapshot, options: &Options) -> Translation {
    let mut out = Output::default();
    let catalogue = plugins::Catalogue::build(snapshot, &options.registry, &mut out.problems);
    let services = backend::Services::index(snapshot);
    let mut certificates = tls::Certificates::new(snapshot);

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
            certificates.collect(ing, &mut out.problems);
        }
    }

    // Stable: routes of equal priority keep their namespace/name order.
    out.routes.sort_by_key(|r| std::cmp::Reverse(r.priority));

    let mut status = GatewayApiStatus::default();
    let mut gateways = gateway::collect(
        snapshot,
        options,
        &mut certificates,
        &mut out.problems,
        &mut status,
    );
    httproute::translate_all(
        snapshot,
        &mut gateways,
        &services,
        &catalogue,
        options,
        &mut out,
        &mut status,
    );

    let mut listeners = vec![json!({"address": options.http_listener})];
    let mut certificate_files = Vec::new();
    if let Some(address) = &options.https_listener {
        let (certs, dropped) = certificates.finish(
            options.limits.max_certificates,
            options.certificate_dir.as_deref(),
            &mut certificate_files,
            &mut out.left_out.certificates,
            &mut out.problems,
        );
        gateways.certificates_dropped(&dropped);
        if !certs.is_empty() {
            listeners.push(json!({"address": address, "tls": {"certificates": certs}}));
        }
    }
    gateways.finish(&mut status);
    let mut doc = serde_json::Map::new();
    doc.insert("listeners".into(), Value::Array(listeners));
    if let Some(admin) = &options.admin_listen {
        doc.insert("admin".into(), json!({ "listen": admin }));
    }
    out.consumers = consumers::translate(snapshot, options, &catalogue, &mut out.problems);
    let global = catalogue.global();
    if !global.is_empty() {
        doc.insert("plugins".into(), Value::Array(global));
    }
    // Routes of HTTPRoutes, to report any that the last checks drop.
    let from_http_routes: Vec<(String, (String, String))> = out
        .routes
        .iter()
        .filter(|r| r.kind == "HTTPRoute")
        .map(|r| (route_name(&r.value).to_string(), key(&r.meta)))
        .collect();
    let mut t = finish(doc, out, &options.limits);
    let kept: std::collections::BTreeSet<&str> =
        t.config.routes.iter().map(|r| r.name.as_str()).collect();
    for (route, (ns, name)) in &from_http_routes {
        if !kept.contains(route.as_str()) {
            httproute::mark_dropped(&mut status, ns, name, route);
        }
    }
    t.gateway_api_status = status;
    t.certificate_files = certificate_files;
    t
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
fn finish(
    mut doc: serde_json::Map<String, Value>,
    mut out: Output,
    limits: &Limits,
) -> Translation {
    // A route whose hosts or paths the router refuses is dropped by itself, naming its
    // Ingress, before the whole file is checked.
    out.routes.retain_mut(|r| match typed_route(&r.value) {
        Ok(typed) => {
            r.typed = Some(Box::new(typed));
            true
        }
        Err(reason) => {
            out.problems.push(Problem::new(r.kind, &r.meta, reason));
            false
        }
    });
    bound(&mut out, limits);
    // The whole file: anything left that the gateway would refuse is dropped, by route,
    // until the file passes (a bug of this translation if it ever happens; bounded by
    // the number of routes).
    loop {
        if out.consumers.is_empty() {
            doc.remove("consumers");
        } else {
            doc.insert(
                "consumers".into(),
                Value::Array(out.consumers.iter().map(|c| c.value()).collect()),
            );
        }
        // Checked as the document, not by parsing the text rendered from it: the
        // renderer's output reads back as the same document (its tests, and every
        // translation test checks the text), and parsing 10,000 routes back was half of
        // a translation's time and most of its peak memory. The routes, already read
        // one by one above, are not read again.
        let value = Value::Object(std::mem::take(&mut doc));
        // Moved into the configuration; read again for the routes kept if a later
        // check fails (not expected: every route passed alone).
        let routes = out
            .routes
            .iter_mut()
            .filter_map(|r| match r.typed.take() {
                Some(t) => Some(*t),
                None => typed_route(&r.value).ok(),
            })
            .collect();
        let upstreams: Vec<&Value> = out.upstreams.values().collect();
        let checked = check_parts(&value, routes, &upstreams);
        let yaml = match (&checked, &value) {
            (Ok(_), Value::Object(map)) => {
                let routes: Vec<&Value> = out.routes.iter().map(|r| &r.value).collect();
                crate::render::to_yaml_with(map, &[("routes", &routes), ("upstreams", &upstreams)])
            }
            _ => String::new(),
        };
        drop(upstreams);
        if let Value::Object(map) = value {
            doc = map;
        }
        match checked {
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
                    gateway_api_status: GatewayApiStatus::default(),
                    left_out: out.left_out,
                    accepted_ingresses,
                    certificate_files: Vec::new(),
                };
            }
            Err(diags) => {
                // A consumer the gateway refuses (already checked alone, so this is
                // not expected) is dropped by itself, naming its KongConsumer.
                let bad_consumers: BTreeSet<usize> = diags
                    .iter()
                    .filter_map(|d| consumer_index(&d.path))
                    .filter(|i| *i < out.consumers.len())
                    .collect();
                if !bad_consumers.is_empty() {
                    for &i in bad_consumers.iter().rev() {
                        let c = out.consumers.remove(i);
                        out.problems.push(Problem::new(
                            "KongConsumer",
                            &c.meta,
                            "left out: the gateway refused it",
                        ));
                    }
                    continue;
                }
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
                    out.consumers.clear();
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

/// Applies the [`Limits`]: upstreams in name order until `max_upstreams` pools or
/// `max_targets` targets (the pool that crosses the bound keeps its first targets in
/// sorted order), then the routes in order, without those whose upstream was left out,
/// until `max_routes`. One problem per object that lost something.
/// Every string under an `upstream` key in `v` (a route's pool, its split's, its
/// mirror's).
fn upstreams_named<'v>(v: &'v Value, found: &mut Vec<&'v str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("upstream", Value::String(s)) => found.push(s),
                    _ => upstreams_named(x, found),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| upstreams_named(x, found)),
        _ => {}
    }
}

fn bound(out: &mut Output, limits: &Limits) {
    let mut budget = limits.max_targets;
    let mut dropped = std::collections::BTreeSet::new();
    for (i, (name, pool)) in out.upstreams.iter_mut().enumerate() {
        let Some(Value::Array(targets)) = pool.get_mut("targets") else {
            continue;
        };
        if i >= limits.max_upstreams || budget == 0 {
            out.left_out.upstreams += 1;
            out.left_out.targets += targets.len();
            dropped.insert(name.clone());
            continue;
        }
        if targets.len() > budget {
            out.left_out.targets += targets.len() - budget;
            out.problems.push(Problem {
                kind: "Upstream",
                namespace: String::new(),
                name: name.clone(),
                reason: format!(
                    "{} of its {} targets left out: the configuration holds at most {} targets (--max-targets)",
                    targets.len() - budget,
                    targets.len(),
                    limits.max_targets
                ),
            });
            targets.truncate(budget);
        }
        budget -= targets.len();
    }
    out.upstreams.retain(|name, _| !dropped.contains(name));
    let mut kept = 0;
    let left_out = &mut out.left_out;
    let problems = &mut out.problems;
    out.routes.retain(|r| {
        // The route's own pool, its split's and its mirror's.
        let mut refs = Vec::new();
        upstreams_named(&r.value, &mut refs);
        let upstream = refs.into_iter().find(|u| dropped.contains(*u));
        let reason = if upstream.is_some() {
            format!(
                "route {} left out: its upstream {} is beyond the configuration's bounds (at most {} upstreams, {} targets: --max-upstreams, --max-targets)",
                route_name(&r.value),
                upstream.unwrap_or_default(),
                limits.max_upstreams,
                limits.max_targets
            )
        } else if kept >= limits.max_routes {
            format!(
                "route {} left out: the configuration holds at most {} routes (--max-routes)",
                route_name(&r.value),
                limits.max_routes
            )
        } else {
            kept += 1;
            return true;
        };
        left_out.routes += 1;
        problems.push(Problem::new(r.kind, &r.meta, reason));
        false
    });
}

fn route_name(route: &Value) -> &str {
    route.get("name").and_then(Value::as_str).unwrap_or("")
}

/// `routes[7].paths[0]` → 7.
fn route_index(path: &str) -> Option<usize> {
    let rest = path.strip_prefix("routes[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// `consumers[3].username` → 3.
fn consumer_index(path: &str) -> Option<usize> {
    let rest = path.strip_prefix("consumers[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// One route read as the gateway reads it, or why the gateway or its router refuses it.
fn typed_route(route: &Value) -> Result<RouteConfig, String> {
    let node = pingway::stock::config::ConfigNode::from_json(route);
    let typed: RouteConfig = match pingway::stock::config::from_node(&node, "") {
        Ok(r) => r,
        Err(diags) => return Err(join(&diags)),
    };
    match pingway::router::Router::build(std::slice::from_ref(&typed)) {
        Ok(_) => Ok(typed),
        Err(diags) => Err(format!("route {} left out: {}", typed.name, join(&diags))),
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
    check_config(pingway::config::load_str(yaml)?.config)
}

/// [`check`] of the document the YAML is rendered from, without rendering and parsing
/// it: the same deserializer, cross-field validation and route table. `doc` has no
/// `routes` nor `upstreams`: the routes come already read, the upstreams are read one
/// by one (never a tree of all of them at once), both in the order they are written.
fn check_parts(
    doc: &Value,
    routes: Vec<RouteConfig>,
    upstreams: &[&Value],
) -> Result<GatewayConfig, Vec<pingway::config::Diagnostic>> {
    use pingway::stock::config::{from_node, ConfigNode};
    let mut diags = Vec::new();
    let mut typed = Vec::with_capacity(upstreams.len());
    for (i, u) in upstreams.iter().enumerate() {
        match from_node(&ConfigNode::from_json(u), &format!("upstreams[{i}]")) {
            Ok(u) => typed.push(u),
            Err(mut d) => diags.append(&mut d),
        }
    }
    let mut config = match from_node::<GatewayConfig>(&ConfigNode::from_json(doc), "") {
        Ok(c) => c,
        Err(mut d) => {
            diags.append(&mut d);
            return Err(diags);
        }
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    config.upstreams = typed;
    config.routes = routes;
    check_config(config)
}

fn check_config(config: GatewayConfig) -> Result<GatewayConfig, Vec<pingway::config::Diagnostic>> {
    let mut diags = pingway::config::validate::check(&config);
    if let Err(mut d) = pingway::router::Router::build(&config.routes) {
        diags.append(&mut d);
    }
    if diags.is_empty() {
        Ok(config)
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
