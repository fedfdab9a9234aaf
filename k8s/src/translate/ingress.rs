//! One Ingress to routes: a route per rule path, named `<ns>.<ingress>.<rule>.<path>`
//! (indices), and `<ns>.<ingress>.default` for its `defaultBackend`.

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use serde_json::{json, Value};

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
    let common = common_fields(ing, &mut out.problems);

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

/// Fields from the Ingress's annotations shared by all its routes.
fn common_fields(ing: &Ingress, problems: &mut Vec<Problem>) -> serde_json::Map<String, Value> {
    let meta = &ing.metadata;
    let mut m = serde_json::Map::new();
    let flag = |v: &str| v.eq_ignore_ascii_case("true");
    if let Some(v) = annotation(meta, "strip-path") {
        m.insert("strip_prefix".into(), json!(flag(v)));
    }
    // Kong's controller forwards the client's Host by default; so does this one.
    m.insert(
        "preserve_host".into(),
        json!(annotation(meta, "preserve-host").is_none_or(flag)),
    );
    if let Some(v) = annotation(meta, "methods") {
        let methods: Vec<String> = comma_list(v)
            .into_iter()
            .map(|s| s.to_ascii_uppercase())
            .collect();
        if !methods.is_empty() {
            m.insert("methods".into(), json!(methods));
        }
    }
    if let Some(v) = annotation(meta, "protocols") {
        let protocols: Vec<String> = comma_list(v)
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if protocols.iter().all(|p| p == "http" || p == "https") && !protocols.is_empty() {
            m.insert("protocols".into(), json!(protocols));
        } else {
            problems.push(Problem::new(
                "Ingress",
                meta,
                format!("annotation protocols `{v}` ignored: only http and https apply"),
            ));
        }
    }
    if let Some(v) = annotation(meta, "https-redirect-status-code") {
        match v.parse::<u16>() {
            Ok(code) if [301, 302, 307, 308, 426].contains(&code) => {
                m.insert("https_redirect_status_code".into(), json!(code));
            }
            _ => problems.push(Problem::new(
                "Ingress",
                meta,
                format!("annotation https-redirect-status-code `{v}` ignored: use 301, 302, 307, 308 or 426"),
            )),
        }
    }
    m
}

#[allow(clippy::too_many_arguments)]
fn add_route(
    mut route: Value,
    backend: &IngressBackend,
    ns: &str,
    ingress_plugins: &[Value],
    common: &serde_json::Map<String, Value>,
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
    for (k, v) in common {
        route[k] = v.clone();
    }
    route["upstream"] = json!(pool.name);
    if !plugins.is_empty() {
        route["plugins"] = Value::Array(plugins);
    }
    out.upstreams.entry(pool.name.clone()).or_insert(pool.value);
    out.routes.push(RouteOut {
        value: route,
        kind: "Ingress",
        meta: ing.metadata.clone(),
    });
}
