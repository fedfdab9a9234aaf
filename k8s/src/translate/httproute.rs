//! HTTPRoutes to routes. An HTTPRoute is attached to the listeners of our Gateways that
//! its parentRefs name and that allow it (namespaces, kinds, host names); each match of
//! each rule becomes one route named `httproute.<ns>.<name>.<rule>.<match>`, serving the
//! union of the host names it got on the listeners it is attached to.
//!
//! Precedence: the router ranks host tiers and paths itself (exact, then the longest
//! prefix, then regexes), then, for the same path condition, a method match, then more
//! header matches, then more query parameter matches, then file order: the Gateway API's
//! order. The routes of HTTPRoutes are written in that order too (exact path, longest
//! prefix, method, most headers, most query parameters, oldest, namespace/name, rule
//! order, match order), so the file order breaks the router's remaining ties as the spec
//! does; a golden test (`precedence_through_the_router_is_the_spec_order`) checks the two
//! agree.
//!
//! Header and query parameter matches become the route's `headers` and `query_params`:
//! `Exact` as `exact`, `RegularExpression` as a `regex` anchored at both ends.
//!
//! What cannot be mapped never becomes a wrong route: an unsupported filter or an
//! invalid backend makes the rule's routes answer `500` (as the spec asks for invalid
//! backends and unresolvable filters), with a [`Problem`] and a status condition.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{IngressServiceBackend, ServiceBackendPort};
use serde_json::{json, Value};

use super::backend::{Services, NO_ENDPOINT_TARGET};
use super::gateway::{granted, intersect, GatewayApiStatus, Gateways, StatusOf};
use super::plugins::Catalogue;
use super::{Options, Output, Problem, RouteOut, Snapshot};
use crate::gateway_api::status::{HttpRouteStatus, RouteParentStatus};
use crate::gateway_api::{
    Condition, HttpRoute, HttpRouteFilter, HttpRouteMatch, ObjectRef, ParentReference,
    PathModifier, GROUP,
};

/// The upstream of routes that answer by themselves (500s, redirects): the config needs
/// an upstream per route; nothing is sent to it.
pub const NO_BACKEND_UPSTREAM: &str = "gateway-api.no-backend";

/// Translates every HTTPRoute attached to our Gateways into `out`, and records the status.
pub fn translate_all(
    snapshot: &Snapshot,
    gateways: &mut Gateways,
    services: &Services<'_>,
    catalogue: &Catalogue,
    options: &Options,
    out: &mut Output,
    status: &mut GatewayApiStatus,
) {
    let mut routes: Vec<&HttpRoute> = snapshot.http_routes.iter().map(|r| &**r).collect();
    // Oldest first, then namespace/name: the spec's tie-break between routes.
    routes.sort_by_key(|r| {
        (
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            super::key(&r.metadata),
        )
    });
    let mut generated: Vec<(SortKey, RouteOut)> = Vec::new();
    for (order, route) in routes.into_iter().enumerate() {
        translate_one(
            route,
            order,
            snapshot,
            gateways,
            services,
            catalogue,
            options,
            out,
            &mut generated,
            status,
        );
    }
    generated.sort_by_key(|a| a.0);
    out.routes.extend(generated.into_iter().map(|(_, r)| r));
    status
        .http_routes
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
}

/// The spec's precedence as a sort key (smaller first).
type SortKey = (
    u8,
    Reverse<usize>,
    bool,
    Reverse<usize>,
    Reverse<usize>,
    usize,
    usize,
    usize,
);

/// Where a route attached: its host names (empty: any) and whether only over HTTPS.
struct Attachment {
    hosts: BTreeSet<String>,
    any_host: bool,
    http: bool,
    https: bool,
}

#[allow(clippy::too_many_arguments)]
fn translate_one(
    route: &HttpRoute,
    order: usize,
    snapshot: &Snapshot,
    gateways: &mut Gateways,
    services: &Services<'_>,
    catalogue: &Catalogue,
    options: &Options,
    out: &mut Output,
    generated: &mut Vec<(SortKey, RouteOut)>,
    status: &mut GatewayApiStatus,
) {
    let meta = &route.metadata;
    let (ns, name) = super::key(meta);
    let generation = meta.generation;
    let mut att = Attachment {
        hosts: BTreeSet::new(),
        any_host: false,
        http: false,
        https: false,
    };
    // Parent by parent: Accepted and its reason.
    let mut parents: Vec<(ParentReference, Condition)> = Vec::new();
    for pref in &route.spec.parent_refs {
        if pref.group.as_deref().is_some_and(|g| g != GROUP)
            || pref.kind.as_deref().is_some_and(|k| k != "Gateway")
        {
            continue;
        }
        let gw_ns = pref.namespace.clone().unwrap_or_else(|| ns.clone());
        let Some(gw) = gateways.by_key.get(&(gw_ns.clone(), pref.name.clone())) else {
            continue; // not one of ours: another controller's business
        };
        let named: Vec<_> = gw
            .listeners
            .iter()
            .filter(|l| pref.section_name.as_ref().is_none_or(|s| *s == l.name))
            .filter(|l| pref.port.is_none_or(|p| p == l.port))
            .collect();
        let accepted = if named.is_empty() {
            Condition::new(
                "Accepted",
                false,
                "NoMatchingParent",
                "no listener of the Gateway has this sectionName / port",
                generation,
            )
        } else {
            let allowed: Vec<_> = named
                .iter()
                .filter(|l| {
                    l.usable
                        && match l.from.as_str() {
                            "All" => true,
                            "Selector" => false,
                            _ => gw_ns == ns,
                        }
                })
                .collect();
            if allowed.is_empty() {
                Condition::new(
                    "Accepted",
                    false,
                    "NotAllowedByListeners",
                    "no listener named allows routes from this namespace",
                    generation,
                )
            } else {
                let mut any = false;
                for l in allowed {
                    if let Some(hosts) = intersect(l.hostname.as_deref(), &route.spec.hostnames) {
                        any = true;
                        if hosts.is_empty() {
                            att.any_host = true;
                        }
                        att.hosts.extend(hosts);
                        if l.https {
                            att.https = true;
                        } else {
                            att.http = true;
                        }
                        *gateways
                            .attached
                            .entry((gw_ns.clone(), pref.name.clone(), l.name.clone()))
                            .or_insert(0) += 1;
                    }
                }
                if any {
                    Condition::new("Accepted", true, "Accepted", "", generation)
                } else {
                    Condition::new(
                        "Accepted",
                        false,
                        "NoMatchingListenerHostname",
                        "no host name of the route meets a listener's",
                        generation,
                    )
                }
            }
        };
        parents.push((pref.clone(), accepted));
    }
    if parents.is_empty() {
        return; // no parent of ours
    }
    let attached = parents.iter().any(|(_, c)| c.status == "True");
    let mut resolved: Option<(String, String)> = None; // first failure: (reason, message)
    let mut unsupported: Vec<String> = Vec::new();
    if attached {
        for (i, rule) in route.spec.rules.iter().enumerate() {
            rule_routes(
                route,
                i,
                order,
                rule,
                &att,
                snapshot,
                services,
                catalogue,
                options,
                out,
                generated,
                &mut resolved,
                &mut unsupported,
            );
        }
    }
    for m in &unsupported {
        out.problems
            .push(Problem::new("HTTPRoute", meta, m.clone()));
    }
    if let Some((_, m)) = &resolved {
        out.problems
            .push(Problem::new("HTTPRoute", meta, m.clone()));
    }
    let mut entries = Vec::new();
    for (pref, accepted) in parents {
        let mut conditions = vec![accepted];
        conditions.push(match &resolved {
            None => Condition::new("ResolvedRefs", true, "ResolvedRefs", "", generation),
            Some((reason, m)) => {
                Condition::new("ResolvedRefs", false, reason, m.clone(), generation)
            }
        });
        if !unsupported.is_empty() {
            conditions.push(Condition::new(
                "PartiallyInvalid",
                true,
                "UnsupportedValue",
                unsupported.join("; "),
                generation,
            ));
        }
        entries.push(RouteParentStatus {
            parent_ref: pref,
            controller_name: options.gateway_controller.clone(),
            conditions,
        });
    }
    status.http_routes.push(StatusOf {
        namespace: ns,
        name,
        status: HttpRouteStatus { parents: entries },
    });
}

/// A backendRef (or a mirror's) resolved to a pool name, or why not: (reason, message).
fn backend(
    r: &ObjectRef,
    ns: &str,
    snapshot: &Snapshot,
    services: &Services<'_>,
    options: &Options,
    out: &mut Output,
) -> Result<(String, bool), (&'static str, String)> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Service");
    if !group.is_empty() || kind != "Service" {
        return Err((
            "InvalidKind",
            format!(
                "backendRef {group}/{kind} {}: only Services are supported",
                r.name
            ),
        ));
    }
    let target_ns = r.namespace.clone().unwrap_or_else(|| ns.to_string());
    if target_ns != ns && !granted(snapshot, "HTTPRoute", ns, "Service", &target_ns, &r.name) {
        return Err((
            "RefNotPermitted",
            format!(
                "Service {target_ns}/{} is in another namespace and no ReferenceGrant there allows it",
                r.name
            ),
        ));
    }
    let Some(port) = r.port else {
        return Err((
            "BackendNotFound",
            format!("backendRef Service {target_ns}/{} has no port", r.name),
        ));
    };
    let b = IngressServiceBackend {
        name: r.name.clone(),
        port: Some(ServiceBackendPort {
            name: None,
            number: Some(port),
        }),
    };
    let pool = services
        .resolve(&target_ns, &b, options)
        .map_err(|e| ("BackendNotFound", e))?;
    out.upstreams.entry(pool.name.clone()).or_insert(pool.value);
    Ok((pool.name, pool.empty))
}

/// Whole percents from weights, largest remainders first; their sum is 100.
fn percents(weights: &[u64]) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut p: Vec<u32> = weights.iter().map(|w| (w * 100 / total) as u32).collect();
    let mut rest: i64 = 100 - p.iter().map(|&x| i64::from(x)).sum::<i64>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (Reverse((weights[i] * 100) % total), i));
    for i in order {
        if rest <= 0 {
            break;
        }
        if weights[i] > 0 {
            p[i] += 1;
            rest -= 1;
        }
    }
    p
}

/// Escapes the regex meta characters of `s`.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `$` doubled, for a rewrite's replacement.
fn replacement_escape(s: &str) -> String {
    s.replace('$', "$$")
}

/// A `ReplacePrefixMatch` of the prefix `prefix` as a regex rewrite.
fn prefix_rewrite(prefix: &str, with: &str) -> Value {
    let p = regex_escape(prefix.trim_end_matches('/'));
    let w = with.trim_end_matches('/');
    if w.is_empty() {
        json!({"regex": format!("^{p}/?(.*)$"), "replacement": "/${1}"})
    } else {
        json!({"regex": format!("^{p}(/.*)?$"), "replacement": format!("{}${{1}}", replacement_escape(w))})
    }
}

#[allow(clippy::too_many_arguments)]
fn rule_routes(
    route: &HttpRoute,
    rule_index: usize,
    order: usize,
    rule: &crate::gateway_api::HttpRouteRule,
    att: &Attachment,
    snapshot: &Snapshot,
    services: &Services<'_>,
    catalogue: &Catalogue,
    options: &Options,
    out: &mut Output,
    generated: &mut Vec<(SortKey, RouteOut)>,
    resolved: &mut Option<(String, String)>,
    unsupported: &mut Vec<String>,
) {
    let meta = &route.metadata;
    let (ns, name) = super::key(meta);
    let fail = |reason: &str, msg: String, resolved: &mut Option<(String, String)>| {
        if resolved.is_none() {
            *resolved = Some((reason.to_string(), msg));
        }
    };
    // Backends: (pool, weight, empty).
    let mut pools: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    let mut invalid_backend: Option<String> = None;
    for b in &rule.backend_refs {
        if !b.filters.is_empty() {
            unsupported.push(format!(
                "rule {rule_index}: backendRefs[].filters are not supported; the rule answers 500"
            ));
            invalid_backend = Some("per-backend filters are not supported".into());
        }
        let weight = u64::try_from(b.weight.unwrap_or(1)).unwrap_or(0);
        match backend(&b.target, &ns, snapshot, services, options, out) {
            Ok((pool, empty)) => {
                let e = pools.entry(pool).or_insert((0, empty));
                e.0 += weight;
            }
            Err((reason, msg)) => {
                out.problems.push(Problem::new(
                    "HTTPRoute",
                    meta,
                    format!("rule {rule_index}: {msg}"),
                ));
                fail(reason, format!("rule {rule_index}: {msg}"), resolved);
                if invalid_backend.is_none() {
                    invalid_backend = Some(msg);
                }
            }
        }
    }
    // Route fields common to the rule's matches, from its filters.
    let mut fields = serde_json::Map::new();
    fields.insert("preserve_host".into(), json!(true));
    let mut plugins: Vec<Value> = Vec::new();
    let mut redirect = false;
    let mut answer_500: Option<String> = None;
    let mut rewrite: Option<&PathModifier> = None;
    for f in &rule.filters {
        if let Err(msg) = filter(
            f,
            &ns,
            snapshot,
            services,
            catalogue,
            options,
            out,
            &mut fields,
            &mut plugins,
            &mut redirect,
            &mut rewrite,
        ) {
            match msg {
                FilterError::Unsupported(m) => {
                    unsupported.push(format!("rule {rule_index}: {m}; the rule answers 500"));
                    answer_500.get_or_insert(m);
                }
                FilterError::Ref(reason, m) => {
                    out.problems.push(Problem::new(
                        "HTTPRoute",
                        meta,
                        format!("rule {rule_index}: {m}"),
                    ));
                    fail(reason, format!("rule {rule_index}: {m}"), resolved);
                    answer_500.get_or_insert(m);
                }
            }
        }
    }
    // The upstream and split.
    let live: Vec<(&String, u64, bool)> = pools
        .iter()
        .filter(|(_, (w, _))| *w > 0)
        .map(|(p, (w, e))| (p, *w, *e))
        .collect();
    if answer_500.is_none() && !redirect {
        if let Some(why) = invalid_backend.filter(|_| live.is_empty()) {
            answer_500 = Some(why);
        } else if live.is_empty() {
            answer_500 = Some("no backend with a weight above 0".into());
        }
    }
    if answer_500.is_none() && !redirect {
        // The heaviest backend is the route's upstream; the others are its split.
        let weights: Vec<u64> = live.iter().map(|l| l.1).collect();
        let pc = percents(&weights);
        let main = (0..live.len())
            .max_by_key(|&i| (pc[i], Reverse(i)))
            .unwrap_or(0);
        fields.insert("upstream".into(), json!(live[main].0));
        let split: Vec<Value> = (0..live.len())
            .filter(|&i| i != main && pc[i] > 0)
            .map(|i| json!({"upstream": live[i].0, "weight": pc[i]}))
            .collect();
        if !split.is_empty() {
            fields.insert("split".into(), Value::Array(split));
        }
        if live.iter().all(|l| l.2) {
            plugins.retain(|p| p["name"] != "request-termination");
            plugins.push(json!({
                "name": "request-termination",
                "config": {"status_code": 503, "message": "no ready endpoints"}
            }));
        }
    } else {
        out.upstreams
            .entry(NO_BACKEND_UPSTREAM.into())
            .or_insert_with(
                || json!({"name": NO_BACKEND_UPSTREAM, "targets": [NO_ENDPOINT_TARGET]}),
            );
        fields.insert("upstream".into(), json!(NO_BACKEND_UPSTREAM));
        fields.remove("split");
        fields.remove("mirrors");
        if let Some(why) = &answer_500 {
            plugins.retain(|p| p["name"] != "request-termination" && p["name"] != "redirect");
            plugins.push(json!({
                "name": "request-termination",
                "config": {"status_code": 500, "message": why}
            }));
        }
    }
    if !plugins.is_empty() {
        fields.insert("plugins".into(), Value::Array(plugins));
    }
    if !att.any_host && !att.hosts.is_empty() {
        fields.insert("hosts".into(), json!(att.hosts));
    }
    if att.https && !att.http {
        fields.insert("protocols".into(), json!(["https"]));
    }

    let default_match = [HttpRouteMatch::default()];
    let matches: &[HttpRouteMatch] = if rule.matches.is_empty() {
        &default_match
    } else {
        &rule.matches
    };
    for (j, m) in matches.iter().enumerate() {
        let mut r = json!({ "name": format!("httproute.{ns}.{name}.{rule_index}.{j}") });
        let ptype = m
            .path
            .as_ref()
            .and_then(|p| p.type_.clone())
            .unwrap_or_else(|| "PathPrefix".into());
        let pvalue = m
            .path
            .as_ref()
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| "/".into());
        let (rank, len) = match ptype.as_str() {
            "Exact" => {
                r["paths"] = json!([{ "exact": pvalue }]);
                (0, pvalue.len())
            }
            "RegularExpression" => {
                r["paths"] = json!([{ "regex": format!("^(?:{pvalue})$") }]);
                (2, 0)
            }
            _ => {
                r["paths"] = json!([{ "prefix": pvalue }]);
                (1, pvalue.trim_end_matches('/').len())
            }
        };
        for (k, v) in &fields {
            r[k] = v.clone();
        }
        if let Some(method) = &m.method {
            r["methods"] = json!([method.to_ascii_uppercase()]);
        }
        if !m.headers.is_empty() {
            r["headers"] = Value::Array(m.headers.iter().map(value_match).collect());
        }
        if !m.query_params.is_empty() {
            r["query_params"] = Value::Array(m.query_params.iter().map(value_match).collect());
        }
        if let Some(pm) = rewrite {
            match (pm.type_.as_str(), ptype.as_str()) {
                ("ReplaceFullPath", _) => {
                    let full = pm.replace_full_path.clone().unwrap_or_else(|| "/".into());
                    r["path_rewrite"] =
                        json!({"regex": "^.*$", "replacement": replacement_escape(&full)});
                }
                ("ReplacePrefixMatch", "PathPrefix") => {
                    let with = pm
                        .replace_prefix_match
                        .clone()
                        .unwrap_or_else(|| "/".into());
                    r["path_rewrite"] = prefix_rewrite(&pvalue, &with);
                }
                _ => {
                    unsupported.push(format!(
                        "rule {rule_index} match {j}: URLRewrite ReplacePrefixMatch needs a PathPrefix match; that match answers 500"
                    ));
                    r["upstream"] = json!(NO_BACKEND_UPSTREAM);
                    out.upstreams
                        .entry(NO_BACKEND_UPSTREAM.into())
                        .or_insert_with(|| json!({"name": NO_BACKEND_UPSTREAM, "targets": [NO_ENDPOINT_TARGET]}));
                    if let Some(o) = r.as_object_mut() {
                        o.remove("split");
                        o.remove("mirrors");
                    }
                    r["plugins"] = json!([{"name": "request-termination", "config": {"status_code": 500, "message": "URLRewrite ReplacePrefixMatch needs a PathPrefix match"}}]);
                }
            }
        }
        let key: SortKey = (
            rank,
            Reverse(len),
            m.method.is_none(),
            Reverse(m.headers.len()),
            Reverse(m.query_params.len()),
            order,
            rule_index,
            j,
        );
        generated.push((
            key,
            RouteOut {
                value: r,
                kind: "HTTPRoute",
                meta: super::origin(meta),
                // Spec precedence is the order written; `regex-priority` is Kong's.
                priority: 0,
                typed: None,
            },
        ));
    }
}

/// A header or query parameter match as a route condition: `Exact` (the default) as
/// `exact`, `RegularExpression` as a `regex` anchored at both ends (the whole value).
fn value_match(v: &crate::gateway_api::ValueMatch) -> Value {
    match v.type_.as_deref().unwrap_or("Exact") {
        "RegularExpression" => json!({"name": v.name, "regex": format!("^(?:{})$", v.value)}),
        _ => json!({"name": v.name, "exact": v.value}),
    }
}

enum FilterError {
    Unsupported(String),
    Ref(&'static str, String),
}

/// Header edits of a modifier filter into `{set, add, remove}`.
fn edits(m: &crate::gateway_api::HeaderModifier) -> Value {
    let mut v = serde_json::Map::new();
    if !m.remove.is_empty() {
        v.insert("remove".into(), json!(m.remove));
    }
    if !m.set.is_empty() {
        let set: serde_json::Map<String, Value> = m
            .set
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), json!(h.value)))
            .collect();
        v.insert("set".into(), Value::Object(set));
    }
    if !m.add.is_empty() {
        let add: serde_json::Map<String, Value> = m
            .add
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), json!(h.value)))
            .collect();
        v.insert("add".into(), Value::Object(add));
    }
    Value::Object(v)
}

#[allow(clippy::too_many_arguments)]
fn filter<'a>(
    f: &'a HttpRouteFilter,
    ns: &str,
    snapshot: &Snapshot,
    services: &Services<'_>,
    catalogue: &Catalogue,
    options: &Options,
    out: &mut Output,
    fields: &mut serde_json::Map<String, Value>,
    plugins: &mut Vec<Value>,
    redirect: &mut bool,
    rewrite: &mut Option<&'a PathModifier>,
) -> Result<(), FilterError> {
    let missing = || FilterError::Unsupported(format!("filter {} has no settings", f.type_));
    match f.type_.as_str() {
        "RequestHeaderModifier" => {
            let m = f.request_header_modifier.as_ref().ok_or_else(missing)?;
            fields.insert("request_headers".into(), edits(m));
        }
        "ResponseHeaderModifier" => {
            let m = f.response_header_modifier.as_ref().ok_or_else(missing)?;
            fields.insert("response_headers".into(), edits(m));
        }
        "RequestRedirect" => {
            let r = f.request_redirect.as_ref().ok_or_else(missing)?;
            let mut config = serde_json::Map::new();
            config.insert("status_code".into(), json!(r.status_code.unwrap_or(302)));
            if let Some(s) = &r.scheme {
                config.insert("scheme".into(), json!(s.to_ascii_lowercase()));
            }
            if let Some(h) = &r.hostname {
                config.insert("host".into(), json!(h));
            }
            if let Some(p) = r.port {
                config.insert("port".into(), json!(p));
            }
            if let Some(p) = &r.path {
                match (p.type_.as_str(), &p.replace_full_path) {
                    ("ReplaceFullPath", Some(full)) => {
                        config.insert("path".into(), json!(full));
                    }
                    _ => {
                        return Err(FilterError::Unsupported(
                            "RequestRedirect path ReplacePrefixMatch is not supported".into(),
                        ))
                    }
                }
            }
            if config.len() == 1 {
                return Err(FilterError::Unsupported(
                    "RequestRedirect without scheme, hostname, port or path would redirect to itself".into(),
                ));
            }
            plugins.push(json!({"name": "redirect", "config": Value::Object(config)}));
            *redirect = true;
        }
        "URLRewrite" => {
            let r = f.url_rewrite.as_ref().ok_or_else(missing)?;
            if let Some(h) = &r.hostname {
                let mut rh = fields
                    .get("request_headers")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                rh["set"]["host"] = json!(h);
                fields.insert("request_headers".into(), rh);
            }
            if let Some(p) = &r.path {
                match p.type_.as_str() {
                    "ReplaceFullPath" | "ReplacePrefixMatch" => *rewrite = Some(p),
                    other => {
                        return Err(FilterError::Unsupported(format!(
                            "URLRewrite path type {other} is not supported"
                        )))
                    }
                }
            }
        }
        "RequestMirror" => {
            let m = f.request_mirror.as_ref().ok_or_else(missing)?;
            let (pool, _) = backend(&m.backend_ref, ns, snapshot, services, options, out).map_err(
                |(reason, msg)| FilterError::Ref(reason, format!("RequestMirror: {msg}")),
            )?;
            let percentage = match (&m.percent, &m.fraction) {
                (Some(p), _) => f64::from(*p),
                (None, Some(fr)) => {
                    let d = fr.denominator.unwrap_or(100).max(1);
                    f64::from(fr.numerator) * 100.0 / f64::from(d)
                }
                (None, None) => 100.0,
            };
            let mut mirrors = fields
                .get("mirrors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            mirrors.push(json!({"upstream": pool, "percentage": percentage.clamp(0.0, 100.0)}));
            fields.insert("mirrors".into(), Value::Array(mirrors));
        }
        "ExtensionRef" => {
            let r = f.extension_ref.as_ref().ok_or_else(missing)?;
            let group = r.group.as_deref().unwrap_or("");
            let kind = r.kind.as_deref().unwrap_or("");
            let ok = (group == "pingway.io" && kind == "GatewayPlugin")
                || (group == crate::crd::KONG_GROUP && kind == "KongPlugin");
            if !ok {
                return Err(FilterError::Unsupported(format!(
                    "ExtensionRef to {group}/{kind}: only pingway.io GatewayPlugin and configuration.konghq.com KongPlugin are supported"
                )));
            }
            let found = catalogue
                .resolve(ns, std::slice::from_ref(&r.name))
                .map_err(|e| FilterError::Ref("BackendNotFound", format!("ExtensionRef: {e}")))?;
            for p in found {
                if !plugins.iter().any(|q| q["name"] == p["name"]) {
                    plugins.push(p);
                }
            }
        }
        other => {
            return Err(FilterError::Unsupported(format!(
                "filter type {other} is not supported"
            )))
        }
    }
    Ok(())
}

/// Records in the status of HTTPRoute `ns/name` that its route `route` was left out by
/// the final checks (a regex or host the router refuses): a `PartiallyInvalid`
/// condition on each parent that accepted it.
pub fn mark_dropped(status: &mut GatewayApiStatus, ns: &str, name: &str, route: &str) {
    let Some(entry) = status
        .http_routes
        .iter_mut()
        .find(|r| r.namespace == ns && r.name == name)
    else {
        return;
    };
    let msg = format!("route {route} left out: the gateway refuses it (see the log)");
    for parent in &mut entry.status.parents {
        let Some(generation) = parent
            .conditions
            .iter()
            .find(|c| c.type_ == "Accepted" && c.status == "True")
            .map(|c| c.observed_generation)
        else {
            continue;
        };
        match parent
            .conditions
            .iter_mut()
            .find(|c| c.type_ == "PartiallyInvalid")
        {
            Some(c) => {
                c.message.push_str("; ");
                c.message.push_str(&msg);
            }
            None => parent.conditions.push(Condition::new(
                "PartiallyInvalid",
                true,
                "UnsupportedValue",
                msg.clone(),
                generation,
            )),
        }
    }
}
