//! The plugin resources, each checked once: its plugin must be registered and must
//! accept its `config:`. A resource that fails is left out with a problem, and so is
//! every route that names it (a route is never served without a plugin it asks for).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use pingway::plugins::{BuildContext, PluginScope, Registry};
use pingway::stock::config::ConfigNode;
use serde_json::{json, Value};

use super::{Problem, Snapshot};

/// The label that makes a cluster-wide plugin resource apply to every route.
pub const GLOBAL_LABEL: &str = "global";

/// One plugin resource, checked.
struct Entry {
    /// `KongPlugin default/rate-limit`, for problems.
    source: String,
    /// The plugin's name.
    plugin: String,
    /// The `plugins:` entry, or why the resource is unusable.
    entry: Result<Value, String>,
}

/// Every plugin resource, by scope and name.
pub struct Catalogue {
    /// (namespace, name) → entry; ours first, then Kong's of the same name.
    namespaced: BTreeMap<(String, String), Entry>,
    /// name → entry, cluster-wide.
    cluster: BTreeMap<String, Entry>,
    /// Names of cluster-wide resources labelled global, in name order.
    global: Vec<String>,
}

struct Raw<'a> {
    kind: &'static str,
    meta: &'a ObjectMeta,
    plugin: &'a str,
    config: Option<&'a Value>,
    disabled: bool,
    priority: Option<i32>,
    config_from: bool,
}

impl Catalogue {
    /// Checks every plugin resource of `snapshot`, reporting each unusable one.
    pub fn build(
        snapshot: &Snapshot,
        registry: &Registry,
        problems: &mut Vec<Problem>,
    ) -> Catalogue {
        let mut c = Catalogue {
            namespaced: BTreeMap::new(),
            cluster: BTreeMap::new(),
            global: Vec::new(),
        };
        let namespaced = snapshot
            .gateway_plugins
            .iter()
            .map(|p| Raw {
                kind: "GatewayPlugin",
                meta: &p.metadata,
                plugin: &p.spec.plugin,
                config: p.spec.config.as_ref(),
                disabled: p.spec.disabled,
                priority: p.spec.priority,
                config_from: false,
            })
            .chain(snapshot.kong_plugins.iter().map(|p| Raw {
                kind: "KongPlugin",
                meta: &p.metadata,
                plugin: &p.plugin,
                config: p.config.as_ref(),
                disabled: p.disabled,
                priority: None,
                config_from: p.config_from.is_some(),
            }));
        for raw in namespaced {
            let key = (
                raw.meta.namespace.clone().unwrap_or_default(),
                raw.meta.name.clone().unwrap_or_default(),
            );
            let entry = check(&raw, registry, problems);
            // Ours win over Kong's of the same name (they come first).
            c.namespaced.entry(key).or_insert(entry);
        }
        let cluster = snapshot
            .cluster_gateway_plugins
            .iter()
            .map(|p| Raw {
                kind: "ClusterGatewayPlugin",
                meta: &p.metadata,
                plugin: &p.spec.plugin,
                config: p.spec.config.as_ref(),
                disabled: p.spec.disabled,
                priority: p.spec.priority,
                config_from: false,
            })
            .chain(snapshot.kong_cluster_plugins.iter().map(|p| Raw {
                kind: "KongClusterPlugin",
                meta: &p.metadata,
                plugin: &p.plugin,
                config: p.config.as_ref(),
                disabled: p.disabled,
                priority: None,
                config_from: p.config_from.is_some(),
            }));
        for raw in cluster {
            let name = raw.meta.name.clone().unwrap_or_default();
            let global = raw
                .meta
                .labels
                .as_ref()
                .and_then(|l| l.get(GLOBAL_LABEL))
                .is_some_and(|v| v == "true");
            let entry = check(&raw, registry, problems);
            if !c.cluster.contains_key(&name) {
                if global {
                    c.global.push(name.clone());
                }
                c.cluster.insert(name, entry);
            }
        }
        c.global.sort();
        c
    }

    /// The `plugins:` entries of the annotation list `names` for an object in `ns`:
    /// a same-namespace resource first, then a cluster-wide one. Two resources of the
    /// same plugin: the first listed is kept.
    pub fn resolve(&self, ns: &str, names: &[String]) -> Result<Vec<Value>, String> {
        let mut out: Vec<(String, Value)> = Vec::new();
        for name in names {
            let entry = self
                .namespaced
                .get(&(ns.to_string(), name.clone()))
                .or_else(|| self.cluster.get(name))
                .ok_or_else(|| {
                    format!("plugin resource `{name}` not found in namespace {ns} nor cluster-wide")
                })?;
            let value = entry.entry.as_ref().map_err(|_| {
                format!(
                    "plugin resource {} is unusable (see its own problem)",
                    entry.source
                )
            })?;
            if !out.iter().any(|(p, _)| *p == entry.plugin) {
                out.push((entry.plugin.clone(), value.clone()));
            }
        }
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    /// The global plugins (cluster-wide resources labelled `global: "true"`), one per
    /// plugin name, in resource-name order.
    pub fn global(&self) -> Vec<Value> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for name in &self.global {
            if let Some(Entry {
                plugin,
                entry: Ok(v),
                ..
            }) = self.cluster.get(name)
            {
                if !seen.contains(plugin) {
                    seen.push(plugin.clone());
                    out.push(v.clone());
                }
            }
        }
        out
    }
}

/// Checks one resource: a registered plugin that builds from its config.
fn check(raw: &Raw<'_>, registry: &Registry, problems: &mut Vec<Problem>) -> Entry {
    let source = match &raw.meta.namespace {
        Some(ns) => format!(
            "{} {ns}/{}",
            raw.kind,
            raw.meta.name.as_deref().unwrap_or("")
        ),
        None => format!("{} {}", raw.kind, raw.meta.name.as_deref().unwrap_or("")),
    };
    let entry = (|| {
        if raw.config_from {
            return Err(
                "`configFrom` (config from a Secret) is not supported; write `config:`".to_string(),
            );
        }
        let factory = registry
            .get(raw.plugin)
            .ok_or_else(|| format!("unknown plugin `{}`", raw.plugin))?;
        let config = raw.config.cloned().unwrap_or_else(|| json!({}));
        let node = ConfigNode::from_json(&config);
        // Build once to run the plugin's own checks (no services: the consumers are
        // not known here; plugins that need them check again when the gateway loads).
        factory
            .build(
                &node,
                "config",
                &BuildContext::new(PluginScope::Route("check")),
            )
            .map_err(|d| {
                d.iter()
                    .map(|d| format!("{}: {}", d.path, d.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
        let mut v = json!({ "name": raw.plugin, "config": config });
        if raw.disabled {
            v["enabled"] = json!(false);
        }
        if let Some(p) = raw.priority {
            v["priority"] = json!(p);
        }
        Ok(v)
    })();
    if let Err(reason) = &entry {
        problems.push(Problem::new(
            raw.kind,
            raw.meta,
            format!("left out: {reason}"),
        ));
    }
    Entry {
        source,
        plugin: raw.plugin.to_string(),
        entry,
    }
}
