//! The JSON bodies of the admin API's read endpoints. Secrets never appear: consumers'
//! credentials, the admin token and plugin settings that hold secrets are replaced by
//! `"<redacted>"` (see [`config`]).

use serde_json::{json, Map, Value};

use crate::config::{Diagnostic, GatewayConfig};
use crate::explain;
use crate::reload::Reloader;
use crate::runtime::Runtime;

use super::rfc3339;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// `GET /status`.
pub fn status(reloader: &Reloader) -> Value {
    let s = reloader.status();
    let counts = reloader.counts();
    let load = std::sync::atomic::Ordering::Relaxed;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "config": {
            "file": reloader.path().display().to_string(),
            "digest": format!("sha256:{}", s.digest),
            "loaded_at": rfc3339(s.loaded_at),
            "version": s.version,
        },
        "last_reload_error": s.last_error.map(|e| json!({
            "at": rfc3339(e.at),
            "problems": problems(&e.problems),
        })),
        "reloads": {
            "applied": counts.applied.load(load),
            "unchanged": counts.unchanged.load(load),
            "failed": counts.failed.load(load),
        },
        "acme": acme_status(&reloader.runtime().load()),
    })
}

/// The ACME-managed certificates (`null` without an `acme:` section): each one's names,
/// the expiry and serial of what is served, and its failed orders in a row with the
/// last reason; and the order counters.
fn acme_status(runtime: &crate::runtime::Runtime) -> Value {
    if runtime.config.acme.is_none() {
        return Value::Null;
    }
    let (issued, failed) = runtime.acme.order_counts();
    let mut certificates: Vec<Value> = runtime
        .certificates
        .managed()
        .map(|m| {
            let s = m.status();
            json!({
                "names": s.names,
                "not_after": s.not_after.map(rfc3339),
                "serial": s.serial,
                "failures": s.failures,
                "last_error": s.last_error,
            })
        })
        .collect();
    certificates.sort_by(|a, b| a["names"].to_string().cmp(&b["names"].to_string()));
    json!({
        "certificates": certificates,
        "orders": {"issued": issued, "failed": failed},
        "pending_challenges": runtime.acme.challenges.len(),
    })
}

/// Problems as JSON: field path, message, and line and column when known.
pub fn problems(diags: &[Diagnostic]) -> Value {
    diags
        .iter()
        .map(|d| {
            json!({
                "path": d.path,
                "message": d.message,
                "line": d.location.map(|l| l.line),
                "column": d.location.map(|l| l.column),
            })
        })
        .collect()
}

/// `GET /config`: the running configuration with every secret redacted: the admin
/// token; HTTPS listeners' inline private keys (`key_pem`); consumers' `keyauth_credentials[].key`, `basicauth_credentials[].password`,
/// `jwt_secrets[].secret` and every value of credential kinds plugins registered; and,
/// in every plugin's `config`, string values under a key that names a secret (containing
/// `secret`, `password`, `passwd`, `token`, `apikey`, `api_key`, `private_key`,
/// `credential` or `authorization`).
pub fn config(cfg: &GatewayConfig) -> Value {
    let mut v = serde_json::to_value(cfg).unwrap_or(Value::Null);
    redact_config(&mut v);
    v
}

fn redact_config(v: &mut Value) {
    if let Some(token) = v.pointer_mut("/admin/token") {
        if !token.is_null() {
            *token = Value::from(REDACTED);
        }
    }
    if let Some(Value::Array(listeners)) = v.get_mut("listeners") {
        for l in listeners {
            if let Some(Value::Array(certs)) = l.pointer_mut("/tls/certificates") {
                for c in certs {
                    if let Some(key) = c.get_mut("key_pem").filter(|k| !k.is_null()) {
                        *key = Value::from(REDACTED);
                    }
                }
            }
        }
    }
    if let Some(Value::Array(plugins)) = v.get_mut("plugins") {
        plugins.iter_mut().for_each(redact_plugin);
    }
    if let Some(Value::Array(routes)) = v.get_mut("routes") {
        for r in routes {
            if let Some(Value::Array(plugins)) = r.get_mut("plugins") {
                plugins.iter_mut().for_each(redact_plugin);
            }
        }
    }
    if let Some(Value::Array(consumers)) = v.get_mut("consumers") {
        consumers.iter_mut().for_each(redact_consumer);
    }
}

/// Consumer fields that are not credentials.
const CONSUMER_FIELDS: &[&str] = &["id", "username", "custom_id", "groups", "acls", "tags"];

fn redact_consumer(c: &mut Value) {
    let Value::Object(fields) = c else { return };
    for (field, value) in fields.iter_mut() {
        match field.as_str() {
            f if CONSUMER_FIELDS.contains(&f) => {}
            "plugins" => {
                if let Value::Array(plugins) = value {
                    plugins.iter_mut().for_each(redact_plugin);
                }
            }
            "keyauth_credentials" => redact_fields(value, &["key"]),
            "basicauth_credentials" => redact_fields(value, &["password"]),
            "jwt_secrets" => redact_fields(value, &["secret"]),
            // A credential kind a plugin registered: its shape is unknown here, so every
            // value goes.
            _ => redact_all(value),
        }
    }
}

/// In a list of objects, replaces the named fields (when set).
fn redact_fields(list: &mut Value, names: &[&str]) {
    let Value::Array(items) = list else { return };
    for item in items {
        for name in names {
            if let Some(v) = item.get_mut(*name) {
                if !v.is_null() {
                    *v = Value::from(REDACTED);
                }
            }
        }
    }
}

fn redact_all(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(redact_all),
        Value::Object(map) => map.values_mut().for_each(redact_all),
        Value::Null => {}
        other => *other = Value::from(REDACTED),
    }
}

fn redact_plugin(p: &mut Value) {
    if let Some(config) = p.get_mut("config") {
        redact_secret_keys(config);
    }
}

/// Whether a settings key names a secret.
fn names_a_secret(key: &str) -> bool {
    const WORDS: &[&str] = &[
        "secret",
        "password",
        "passwd",
        "token",
        "apikey",
        "api_key",
        "private_key",
        "credential",
        "authorization",
    ];
    let key = key.to_ascii_lowercase();
    WORDS.iter().any(|w| key.contains(w))
}

fn redact_secret_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, value) in map.iter_mut() {
                if names_a_secret(k) && !matches!(value, Value::Bool(_) | Value::Null) {
                    redact_all(value);
                } else {
                    redact_secret_keys(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secret_keys),
        _ => {}
    }
}

/// `GET /routes`: every route with its conditions, upstream and resolved plugin chain.
pub fn routes(rt: &Runtime) -> Value {
    rt.config
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let chain = explain::route_chain(rt, i);
            json!({
                "name": r.name,
                "hosts": r.hosts,
                "paths": r.paths,
                "methods": r.methods,
                "headers": r.headers,
                "query_params": r.query_params,
                "upstream": r.upstream,
                "strip_prefix": r.strip_prefix,
                "preserve_host": r.preserve_host,
                "plugins": chain.iter().map(explain::PluginStep::to_json).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// `GET /upstreams`: every pool with every target and its live state.
pub fn upstreams(rt: &Runtime) -> Value {
    let mut names: Vec<&String> = rt.upstreams.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| rt.upstreams.get(name))
        .map(|u| {
            let cfg = u.config();
            let targets: Vec<Value> = u
                .targets()
                .iter()
                .filter(|t| !t.is_retired())
                .map(|t| {
                    json!({
                        "target": t.host_header().to_str().unwrap_or(""),
                        "address": t.addr().to_string(),
                        "weight": t.weight(),
                        "health": if t.is_healthy() { "healthy" } else { "unhealthy" },
                        "in_flight": t.in_flight(),
                        "consecutive_failures": t.consecutive_failures(),
                        "consecutive_successes": t.consecutive_successes(),
                        "errors_total": t.recent_errors().total(),
                        "recent_errors": t.recent_errors().recent().iter()
                            .map(|e| e.to_json()).collect::<Vec<_>>(),
                        "outlier": {
                            "ejected": t.is_ejected(),
                            "ejection_left_ms": t.ejection_left().as_millis() as u64,
                            "ejections": t.ejections(),
                            "consecutive_errors": t.consecutive_errors(),
                        },
                    })
                })
                .collect();
            json!({
                "name": cfg.name,
                "balancer": cfg.balancer,
                "health_checks": cfg.health_check.is_some(),
                "retries": cfg.retries,
                "resilience": crate::admin::resilience_view::upstream(u),
                "targets": targets,
            })
        })
        .collect()
}

/// `GET /consumers`: identities, groups, how many credentials of each kind (never the
/// credentials) and their own plugins.
pub fn consumers(rt: &Runtime) -> Value {
    rt.config
        .consumers
        .iter()
        .map(|c| {
            let mut credentials = Map::new();
            let mut count = |kind: &str, n: usize| {
                if n > 0 {
                    credentials.insert(kind.to_string(), Value::from(n));
                }
            };
            count("keyauth_credentials", c.keyauth_credentials.len());
            count("basicauth_credentials", c.basicauth_credentials.len());
            count("jwt_secrets", c.jwt_secrets.len());
            for (field, node) in &c.registered_credentials {
                let n = match &node.value {
                    pingway_plugins::config::NodeValue::Seq(items) => items.len(),
                    _ => 0,
                };
                count(field, n);
            }
            let mut groups: Vec<&str> = c.groups.iter().map(String::as_str).collect();
            groups.extend(c.acls.iter().map(|a| a.group.as_str()));
            json!({
                "id": c.effective_id(),
                "username": c.username,
                "custom_id": c.custom_id,
                "groups": groups,
                "credentials": credentials,
                "plugins": c.plugins.iter().map(|p| json!({
                    "name": p.name,
                    "enabled": p.enabled,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_everywhere() {
        let yaml = "\
listeners: [{address: 127.0.0.1:1}]
admin: {token: admin-tok-1}
upstreams: [{name: u, targets: [127.0.0.1:2]}]
plugins:
  - name: x
    config: {client_secret: cs-1, nested: {password: pw-1}, hide_credentials: true, key_names: [apikey]}
routes:
  - name: r
    upstream: u
    plugins: [{name: y, config: {api_key: ak-1}}]
consumers:
  - username: alice
    keyauth_credentials: [{key: kk-1}]
    basicauth_credentials: [{username: alice, password: bp-1}]
    jwt_secrets: [{key: iss, secret: js-1}]
    hmacauth_credentials: [{username: alice, secret: hs-1}]
    plugins: [{name: z, config: {token: zt-1}}]
";
        let loaded = crate::config::load_str(yaml).expect("parses");
        let shown = config(&loaded.config).to_string();
        for secret in [
            "admin-tok-1",
            "cs-1",
            "pw-1",
            "ak-1",
            "kk-1",
            "bp-1",
            "js-1",
            "hs-1",
            "zt-1",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        // What is not secret stays.
        for kept in ["alice", "hide_credentials\":true", "apikey", "\"iss\""] {
            assert!(shown.contains(kept), "{kept} missing from {shown}");
        }
    }
}
