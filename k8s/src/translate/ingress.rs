//! One Ingress to routes: a route per rule path, named `<ns>.<ingress>.<rule>.<path>`
//! (indices), and `<ns>.<ingress>.default` for its `defaultBackend`.

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use serde_json::{json, Value};

use super::annotations::{self, RouteAnnotations};
use super::backend::Services;
use super::plugins::Catalogue;
use super::{annotation, comma_list, Options, Output, Problem, RouteOut};

/// Translates `ing` into `out`. Each path that cannot be served (a missing Service or
/// port, a missing or unusable plugin) is left out with a problem; the others stay.
pub fn translate_one(
    ing: &Ingress,
    services: &Services<'_>,
    catalogue: &Catalogue,
    options: &Options,
    out: &mut Output,
) {
    let meta = &ing.metadata;
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let Some(spec) = &ing.spec else { return };

    let plugin_names = annotation(meta, "plugins")
        .map(comma_list)
        .unwrap_or_default();
    let plugins = match catalogue.resolve(&ns, &plugin_names) {
        Ok(p) => p,
        Err(reason) => {
            out.problems
                .push(Problem::new("Ingress", meta, format!("left out: {reason}")));
            return;
        }
    };
    let common = annotations::route("Ingress", meta, &mut out.problems);

    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let host = rule.host.as_deref().map(str::to_ascii_lowercase);
        for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
            let route_name = format!("{ns}.{name}.{i}.{j}");
            let p = path
                .path
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("/");
            let matcher = match path.path_type.as_str() {
                "Exact" => json!({ "exact": p }),
                "Prefix" => json!({ "prefix": p }),
                // Kong's convention: an ImplementationSpecific path written `/~...` is
                // a regular expression; otherwise it is a prefix.
                _ => match p.strip_prefix("/~") {
                    Some(re) => json!({ "regex": re }),
                    None => json!({ "prefix": p }),
                },
            };
            let mut route = json!({ "name": route_name, "paths": [matcher] });
            if let Some(h) = &host {
                route["hosts"] = json!([h]);
                // An Ingress's `*.example.com` covers exactly one label.
                if h.starts_with("*.") {
                    route["wildcard_labels"] = json!("one");
                }
            }
            add_route(
                route,
                &path.backend,
                &ns,
                &plugins,
                &common,
                ing,
                services,
                catalogue,
                options,
                out,
            );
        }
    }
    if let Some(backend) = &spec.default_backend {
        let route = json!({ "name": format!("{ns}.{name}.default") });
        add_route(
            route, backend, &ns, &plugins, &common, ing, services, catalogue, options, out,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn add_route(
    mut route: Value,
    backend: &IngressBackend,
    ns: &str,
    ingress_plugins: &[Value],
    common: &RouteAnnotations,
    ing: &Ingress,
    services: &Services<'_>,
    catalogue: &Catalogue,
    options: &Options,
    out: &mut Output,
) {
    let route_name = route["name"].as_str().unwrap_or_default().to_string();
    let left_out = |out: &mut Output, why: String| {
        out.problems.push(Problem::new(
            "Ingress",
            &ing.metadata,
            format!("route {route_name} left out: {why}"),
        ));
    };
    let Some(svc_backend) = &backend.service else {
        left_out(
            out,
            "only Service backends are supported (not `resource`)".into(),
        );
        return;
    };
    let pool = match services.resolve(ns, svc_backend, options) {
        Ok(p) => p,
        Err(why) => return left_out(out, why),
    };
    // Plugins named on the Service apply to every route to it; the Ingress's own
    // instance of a plugin wins.
    let svc_names = annotation(&pool.service.metadata, "plugins")
        .map(comma_list)
        .unwrap_or_default();
    let mut plugins: Vec<Value> = ingress_plugins.to_vec();
    match catalogue.resolve(ns, &svc_names) {
        Ok(extra) => {
            for p in extra {
                if !plugins.iter().any(|q| q["name"] == p["name"]) {
                    plugins.push(p);
                }
            }
        }
        Err(why) => return left_out(out, format!("on Service {ns}/{}: {why}", svc_backend.name)),
    }
    if pool.empty {
        // No ready endpoint: answer 503 as a pool with no healthy target would.
        plugins.retain(|p| p["name"] != "request-termination");
        plugins.push(json!({
            "name": "request-termination",
            "config": {"status_code": 503, "message": "no ready endpoints"}
        }));
    }
    for (k, v) in &common.fields {
        route[k] = v.clone();
    }
    // What Kong reads from the Service: its upstream path and Host.
    let preserve_host = common
        .fields
        .get("preserve_host")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    for (k, v) in annotations::service(
        &pool.service.metadata,
        preserve_host,
        &ing.metadata,
        &mut out.problems,
    ) {
        route[k] = v;
    }
    for note in &pool.notes {
        out.problems.push(Problem::new(
            "Service",
            &pool.service.metadata,
            note.clone(),
        ));
    }
    route["upstream"] = json!(pool.name);
    if !plugins.is_empty() {
        route["plugins"] = Value::Array(plugins);
    }
    out.upstreams.entry(pool.name.clone()).or_insert(pool.value);
    out.routes.push(RouteOut {
        value: route,
        kind: "Ingress",
        meta: super::origin(&ing.metadata),
        priority: common.priority,
        typed: None,
    });
}
