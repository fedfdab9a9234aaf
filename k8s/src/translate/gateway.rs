//! The Gateway API's GatewayClasses and Gateways: which are ours (the class's
//! `controllerName` equals [`Options::gateway_controller`]), their listeners (HTTP and
//! HTTPS, the latter's certificates from `kubernetes.io/tls` Secrets), which routes each
//! listener allows, host name intersection, ReferenceGrants, and the status of each, as
//! data ([`GatewayApiStatus`]) that [`crate::gateway_status`] writes back.
//!
//! Every listener of every Gateway of our classes is served by the gateway's own two
//! listeners (`--http-listen`, `--https-listen`): the Service in front maps the Gateway's
//! ports to them, so a listener's `port` is not opened by itself.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::tls::Certificates;
use super::{Options, Problem, Snapshot};
use crate::gateway_api::status::{
    GatewayAddress, GatewayClassStatus, GatewayStatus, HttpRouteStatus, ListenerStatus,
};
use crate::gateway_api::{Condition, Gateway, RouteGroupKind, GROUP};

/// The status this controller wants on one object.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusOf<S> {
    /// The object's namespace (empty for a GatewayClass).
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The status (conditions without `lastTransitionTime`).
    pub status: S,
}

/// The Gateway API status computed by the translation, for the writer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayApiStatus {
    /// Our GatewayClasses.
    pub gateway_classes: Vec<StatusOf<GatewayClassStatus>>,
    /// Gateways of our classes.
    pub gateways: Vec<StatusOf<GatewayStatus>>,
    /// HTTPRoutes with at least one parentRef to a Gateway of ours; `parents` holds our
    /// entries only (the writer keeps other controllers' entries).
    pub http_routes: Vec<StatusOf<HttpRouteStatus>>,
}

/// A listener of one of our Gateways, checked.
#[derive(Debug, Clone)]
pub struct OurListener {
    /// The listener's name.
    pub name: String,
    /// Its host name, lowercased.
    pub hostname: Option<String>,
    /// Its port.
    pub port: i32,
    /// HTTPS (else HTTP).
    pub https: bool,
    /// It can take routes (a supported protocol, HTTPRoute among its kinds, and for
    /// HTTPS an HTTPS listener configured).
    pub usable: bool,
    /// `allowedRoutes.namespaces.from`: `Same`, `All` or `Selector`.
    pub from: String,
    /// The certificate Secrets (namespace, name) it named and that could be read.
    pub secrets: Vec<(String, String)>,
}

/// One of our Gateways.
#[derive(Debug, Clone)]
pub struct OurGateway {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Listeners, in spec order.
    pub listeners: Vec<OurListener>,
}

/// Our Gateways, by (namespace, name), and their status under construction.
pub struct Gateways {
    /// The Gateways.
    pub by_key: BTreeMap<(String, String), OurGateway>,
    statuses: BTreeMap<(String, String), (GatewayStatus, Option<i64>)>,
    /// Routes attached per (namespace, gateway, listener).
    pub attached: BTreeMap<(String, String, String), i32>,
}

/// The kind a listener takes.
fn http_route_kind() -> RouteGroupKind {
    RouteGroupKind {
        group: Some(GROUP.into()),
        kind: "HTTPRoute".into(),
    }
}

/// Reads our classes and Gateways; adds HTTPS listeners' certificates to `certs`.
pub fn collect(
    snapshot: &Snapshot,
    options: &Options,
    certs: &mut Certificates<'_>,
    problems: &mut Vec<Problem>,
    status: &mut GatewayApiStatus,
) -> Gateways {
    let mut ours: Vec<String> = Vec::new();
    for class in &snapshot.gateway_classes {
        if class.spec.controller_name != options.gateway_controller {
            continue;
        }
        let name = class.metadata.name.clone().unwrap_or_default();
        status.gateway_classes.push(StatusOf {
            namespace: String::new(),
            name: name.clone(),
            status: GatewayClassStatus {
                conditions: vec![Condition::new(
                    "Accepted",
                    true,
                    "Accepted",
                    "served by pingway",
                    class.metadata.generation,
                )],
            },
        });
        ours.push(name);
    }
    status.gateway_classes.sort_by(|a, b| a.name.cmp(&b.name));
    let addresses: Vec<GatewayAddress> = options
        .gateway_addresses
        .iter()
        .map(|a| GatewayAddress {
            type_: Some(
                if a.parse::<IpAddr>().is_ok() {
                    "IPAddress"
                } else {
                    "Hostname"
                }
                .into(),
            ),
            value: a.clone(),
        })
        .collect();

    let mut gws = Gateways {
        by_key: BTreeMap::new(),
        statuses: BTreeMap::new(),
        attached: BTreeMap::new(),
    };
    let mut gateways: Vec<&Gateway> = snapshot
        .gateways
        .iter()
        .map(|g| &**g)
        .filter(|g| ours.contains(&g.spec.gateway_class_name))
        .collect();
    gateways.sort_by_key(|g| super::key(&g.metadata));
    for gw in gateways {
        let (ns, name) = super::key(&gw.metadata);
        let generation = gw.metadata.generation;
        let mut listeners = Vec::new();
        let mut lstatus = Vec::new();
        for l in &gw.spec.listeners {
            let (ol, st) = listener(gw, l, snapshot, options, certs, problems);
            listeners.push(ol);
            lstatus.push(st);
        }
        let programmed = listeners.iter().any(|l| l.usable);
        let conditions = vec![
            Condition::new(
                "Accepted",
                true,
                "Accepted",
                "served by pingway",
                generation,
            ),
            if programmed {
                Condition::new("Programmed", true, "Programmed", "", generation)
            } else {
                Condition::new(
                    "Programmed",
                    false,
                    "Invalid",
                    "no listener can be served",
                    generation,
                )
            },
        ];
        gws.statuses.insert(
            (ns.clone(), name.clone()),
            (
                GatewayStatus {
                    addresses: addresses.clone(),
                    conditions,
                    listeners: lstatus,
                },
                generation,
            ),
        );
        gws.by_key.insert(
            (ns.clone(), name.clone()),
            OurGateway {
                namespace: ns,
                name,
                listeners,
            },
        );
    }
    gws
}

/// One listener: whether it is usable, and its status (without `attachedRoutes`).
fn listener(
    gw: &Gateway,
    l: &crate::gateway_api::Listener,
    snapshot: &Snapshot,
    options: &Options,
    certs: &mut Certificates<'_>,
    problems: &mut Vec<Problem>,
) -> (OurListener, ListenerStatus) {
    let generation = gw.metadata.generation;
    let ns = gw.metadata.namespace.clone().unwrap_or_default();
    let from = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
        .and_then(|n| n.from.clone())
        .unwrap_or_else(|| "Same".into());
    let mut ol = OurListener {
        name: l.name.clone(),
        hostname: l.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
        port: l.port,
        https: l.protocol == "HTTPS",
        usable: true,
        from: from.clone(),
        secrets: Vec::new(),
    };
    let mut accepted = Condition::new("Accepted", true, "Accepted", "", generation);
    let mut resolved = Condition::new("ResolvedRefs", true, "ResolvedRefs", "", generation);
    let mut supported = vec![http_route_kind()];
    if from == "Selector" {
        problems.push(Problem::new(
            "Gateway",
            &gw.metadata,
            format!(
                "listener {}: allowedRoutes.namespaces.from Selector is not supported (Namespaces are not watched); no route attaches",
                l.name
            ),
        ));
    }
    let mut bad = |ol: &mut OurListener, c: &mut Condition, reason: &str, msg: String| {
        ol.usable = false;
        *c = Condition::new(&c.type_.clone(), false, reason, msg.clone(), generation);
        problems.push(Problem::new(
            "Gateway",
            &gw.metadata,
            format!("listener {}: {msg}", l.name),
        ));
    };
    if l.protocol != "HTTP" && l.protocol != "HTTPS" {
        supported.clear();
        bad(
            &mut ol,
            &mut accepted,
            "UnsupportedProtocol",
            format!(
                "protocol {} is not supported (HTTP and HTTPS are)",
                l.protocol
            ),
        );
    }
    if let Some(kinds) = l.allowed_routes.as_ref().map(|a| &a.kinds) {
        if !kinds.is_empty() {
            let ok = kinds
                .iter()
                .any(|k| k.kind == "HTTPRoute" && k.group.as_deref().is_none_or(|g| g == GROUP));
            if !ok {
                supported.clear();
                bad(
                    &mut ol,
                    &mut resolved,
                    "InvalidRouteKinds",
                    "allowedRoutes.kinds has no HTTPRoute (the only kind served)".into(),
                );
            }
        }
    }
    if ol.usable && ol.https {
        let tls = l.tls.clone().unwrap_or_default();
        if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
            bad(
                &mut ol,
                &mut accepted,
                "UnsupportedValue",
                "tls.mode Passthrough is not supported".into(),
            );
        } else if options.https_listener.is_none() {
            bad(
                &mut ol,
                &mut accepted,
                "UnsupportedProtocol",
                "HTTPS listeners are off (--no-https)".into(),
            );
        } else if tls.certificate_refs.is_empty() {
            bad(
                &mut ol,
                &mut resolved,
                "InvalidCertificateRef",
                "an HTTPS listener needs tls.certificateRefs".into(),
            );
        } else {
            let hosts: Vec<String> = ol.hostname.iter().cloned().collect();
            for r in &tls.certificate_refs {
                let target_ns = r.namespace.clone().unwrap_or_else(|| ns.clone());
                let kind_ok = r.group.as_deref().unwrap_or("").is_empty()
                    && r.kind.as_deref().unwrap_or("Secret") == "Secret";
                let outcome = if !kind_ok {
                    Err((
                        "InvalidCertificateRef",
                        "certificateRefs name Secrets only".to_string(),
                    ))
                } else if target_ns != ns
                    && !granted(snapshot, "Gateway", &ns, "Secret", &target_ns, &r.name)
                {
                    Err((
                        "RefNotPermitted",
                        format!(
                            "Secret {target_ns}/{} is in another namespace and no ReferenceGrant there allows it",
                            r.name
                        ),
                    ))
                } else {
                    certs
                        .add("Gateway", &gw.metadata, &target_ns, &r.name, &hosts)
                        .map(|()| ol.secrets.push((target_ns.clone(), r.name.clone())))
                        .map_err(|e| ("InvalidCertificateRef", e))
                };
                if let Err((reason, msg)) = outcome {
                    bad(&mut ol, &mut resolved, reason, msg);
                }
            }
        }
    }
    let programmed = if ol.usable {
        Condition::new("Programmed", true, "Programmed", "", generation)
    } else {
        Condition::new("Programmed", false, "Invalid", "", generation)
    };
    let st = ListenerStatus {
        name: l.name.clone(),
        supported_kinds: supported,
        attached_routes: 0,
        conditions: vec![accepted, programmed, resolved],
    };
    (ol, st)
}

impl Gateways {
    /// Marks the listeners whose certificate Secrets the gateway refused (bad PEM):
    /// `ResolvedRefs: False`, `InvalidCertificateRef`.
    pub fn certificates_dropped(&mut self, dropped: &[(String, String)]) {
        if dropped.is_empty() {
            return;
        }
        for (key, gw) in &self.by_key {
            let Some((st, generation)) = self.statuses.get_mut(key) else {
                continue;
            };
            for (l, ls) in gw.listeners.iter().zip(st.listeners.iter_mut()) {
                let Some((ns, name)) = l.secrets.iter().find(|s| dropped.contains(s)) else {
                    continue;
                };
                for c in &mut ls.conditions {
                    if c.type_ == "ResolvedRefs" {
                        *c = Condition::new(
                            "ResolvedRefs",
                            false,
                            "InvalidCertificateRef",
                            format!("Secret {ns}/{name} holds no certificate and key the gateway accepts"),
                            *generation,
                        );
                    }
                }
            }
        }
    }

    /// The Gateways' statuses, with `attachedRoutes` filled in.
    pub fn finish(self, status: &mut GatewayApiStatus) {
        for ((ns, name), (mut st, _)) in self.statuses {
            for l in &mut st.listeners {
                l.attached_routes = self
                    .attached
                    .get(&(ns.clone(), name.clone(), l.name.clone()))
                    .copied()
                    .unwrap_or(0);
            }
            status.gateways.push(StatusOf {
                namespace: ns,
                name,
                status: st,
            });
        }
    }
}

/// Whether a ReferenceGrant in `to_ns` lets a `from_kind` of namespace `from_ns` refer to
/// the core `to_kind` named `to_name`.
pub fn granted(
    snapshot: &Snapshot,
    from_kind: &str,
    from_ns: &str,
    to_kind: &str,
    to_ns: &str,
    to_name: &str,
) -> bool {
    snapshot.reference_grants.iter().any(|g| {
        g.metadata.namespace.as_deref() == Some(to_ns)
            && g.spec
                .from
                .iter()
                .any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_ns)
            && g.spec.to.iter().any(|t| {
                t.group.is_empty()
                    && t.kind == to_kind
                    && t.name.as_deref().is_none_or(|n| n == to_name)
            })
    })
}

/// The host names a route serves on a listener: `None` when they do not meet, `Some`
/// of an empty list for any host. A wildcard (`*.example.com`) covers any name ending
/// in `.example.com`, as the Gateway API says; when both are wildcards the narrower wins.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let route: Vec<String> = route.iter().map(|h| h.to_ascii_lowercase()).collect();
    let Some(l) = listener else {
        return Some(route);
    };
    if route.is_empty() {
        return Some(vec![l.to_string()]);
    }
    let covers = |wild: &str, name: &str| {
        wild.strip_prefix('*')
            .is_some_and(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
    };
    let mut out = Vec::new();
    for h in &route {
        let picked = if h == l || covers(l, h) {
            Some(h.clone())
        } else if covers(h, l) {
            Some(l.to_string())
        } else {
            None
        };
        if let Some(p) = picked {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}
