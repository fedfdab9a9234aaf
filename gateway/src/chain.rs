//! Plugin chains: which plugin instances run for a route, in which order, and how
//! instances are carried over a reload.

use std::collections::HashMap;
use std::sync::Arc;

use pingway_plugins::config::{ConfigNode, Diagnostic};
use pingway_plugins::{BuildContext, Plugin, PluginScope, Registry};

use crate::config::PluginConfig;

/// One configured plugin, ready to run.
#[derive(Clone)]
pub struct PluginInstance {
    /// The plugin's registered name.
    pub name: Arc<str>,
    /// Its effective priority (configured, or the plugin's default).
    pub priority: i32,
    /// The instance.
    pub plugin: Arc<dyn Plugin>,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.priority)
    }
}

/// The plugins of one route, highest priority first.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    plugins: Box<[PluginInstance]>,
    wants_body: bool,
}

impl Chain {
    /// The plugins in execution order.
    pub fn plugins(&self) -> &[PluginInstance] {
        &self.plugins
    }

    /// Whether any plugin wants to see response bodies.
    pub fn wants_body(&self) -> bool {
        self.wants_body
    }

    /// Merges global and route instances: a route instance replaces the global one of the
    /// same name; disabled entries remove the name. Sorted by descending priority, ties
    /// by name so the order never depends on the file's order.
    pub fn compose(global: &[Slot], route: &[Slot]) -> Chain {
        let mut plugins: Vec<PluginInstance> = Vec::with_capacity(global.len() + route.len());
        for slot in route {
            if let Some(i) = &slot.instance {
                plugins.push(i.clone());
            }
        }
        for slot in global {
            if route.iter().any(|r| r.name == slot.name) {
                continue;
            }
            if let Some(i) = &slot.instance {
                plugins.push(i.clone());
            }
        }
        plugins.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.name.cmp(&b.name))
        });
        let wants_body = plugins.iter().any(|p| p.plugin.wants_response_body());
        Chain {
            plugins: plugins.into_boxed_slice(),
            wants_body,
        }
    }
}

/// A plugin entry of a `plugins:` list after building: its name, and the instance unless
/// it is disabled.
#[derive(Clone)]
pub struct Slot {
    /// The plugin's name.
    pub name: Arc<str>,
    /// The running instance, or `None` for `enabled: false`.
    pub instance: Option<PluginInstance>,
}

/// Identifies an instance across reloads: where it is attached and which plugin it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    /// `None` for global, the route name otherwise.
    pub route: Option<String>,
    /// The plugin's name.
    pub plugin: String,
}

/// A built instance with the configuration it was built from.
#[derive(Clone)]
pub struct CachedInstance {
    config: ConfigNode,
    priority: i32,
    instance: PluginInstance,
}

/// Instances of the configuration being built, reusing those of the previous
/// configuration whose plugin config did not change (so their state, such as rate-limit
/// counters, survives the reload).
pub struct InstanceBuilder<'a> {
    registry: &'a Registry,
    previous: Option<&'a HashMap<InstanceKey, CachedInstance>>,
    built: HashMap<InstanceKey, CachedInstance>,
    /// How many instances were carried over from the previous configuration.
    pub reused: usize,
}

impl<'a> InstanceBuilder<'a> {
    /// Starts building against `registry`, reusing from `previous`.
    pub fn new(
        registry: &'a Registry,
        previous: Option<&'a HashMap<InstanceKey, CachedInstance>>,
    ) -> Self {
        InstanceBuilder {
            registry,
            previous,
            built: HashMap::new(),
            reused: 0,
        }
    }

    /// Builds the entries of one `plugins:` list found at field path `base`.
    pub fn build_list(
        &mut self,
        entries: &[PluginConfig],
        base: &str,
        route: Option<&str>,
        diags: &mut Vec<Diagnostic>,
    ) -> Vec<Slot> {
        let mut slots = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let path = format!("{base}[{i}]");
            let Some(factory) = self.registry.get(&entry.name) else {
                let known: Vec<&str> = self.registry.names().collect();
                diags.push(Diagnostic::new(
                    format!("{path}.name"),
                    format!(
                        "unknown plugin {:?}; known plugins: {}",
                        entry.name,
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let name: Arc<str> = Arc::from(entry.name.as_str());
            let priority = entry.priority.unwrap_or_else(|| factory.default_priority());
            let key = InstanceKey {
                route: route.map(str::to_string),
                plugin: entry.name.clone(),
            };
            let reusable = self
                .previous
                .and_then(|p| p.get(&key))
                .filter(|c| c.config == entry.config && c.priority == priority);
            let instance = match reusable {
                Some(cached) => {
                    self.reused += 1;
                    cached.instance.clone()
                }
                None => {
                    let scope = match route {
                        Some(r) => PluginScope::Route(r),
                        None => PluginScope::Global,
                    };
                    let cx = BuildContext::new(scope);
                    match factory.build(&entry.config, &format!("{path}.config"), &cx) {
                        Ok(plugin) => PluginInstance {
                            name: name.clone(),
                            priority,
                            plugin,
                        },
                        Err(mut problems) => {
                            diags.append(&mut problems);
                            continue;
                        }
                    }
                }
            };
            self.built.insert(
                key,
                CachedInstance {
                    config: entry.config.clone(),
                    priority,
                    instance: instance.clone(),
                },
            );
            slots.push(Slot {
                name,
                instance: entry.enabled.then_some(instance),
            });
        }
        slots
    }

    /// The instances built, to be offered to the next reload.
    pub fn finish(self) -> HashMap<InstanceKey, CachedInstance> {
        self.built
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nop;
    impl Plugin for Nop {}

    fn slot(name: &str, priority: i32, enabled: bool) -> Slot {
        Slot {
            name: name.into(),
            instance: enabled.then(|| PluginInstance {
                name: name.into(),
                priority,
                plugin: Arc::new(Nop),
            }),
        }
    }

    fn names(c: &Chain) -> Vec<String> {
        c.plugins().iter().map(|p| format!("{:?}", p)).collect()
    }

    #[test]
    fn route_instance_replaces_global_and_order_is_by_priority() {
        let global = [slot("rate-limiting", 910, true), slot("cors", 2000, true)];
        let route = [slot("rate-limiting", 5, true), slot("key-auth", 1250, true)];
        let c = Chain::compose(&global, &route);
        assert_eq!(
            names(&c),
            vec!["cors@2000", "key-auth@1250", "rate-limiting@5"]
        );
    }

    #[test]
    fn disabled_route_entry_removes_the_global_plugin() {
        let global = [slot("ip-restriction", 990, true)];
        let route = [slot("ip-restriction", 990, false)];
        assert!(Chain::compose(&global, &route).plugins().is_empty());
    }

    #[test]
    fn ties_are_ordered_by_name() {
        let c = Chain::compose(&[slot("b", 1, true), slot("a", 1, true)], &[]);
        assert_eq!(names(&c), vec!["a@1", "b@1"]);
    }
}
