//! Plugin chains: which plugin instances run for a route, in which order, and how
//! instances are carried over a reload.

use std::collections::HashMap;
use std::sync::Arc;

use pingway_plugins::config::{ConfigNode, Diagnostic};
use pingway_plugins::{BuildContext, Plugin, PluginScope, Registry, Services};

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
    wants_request_body: bool,
    wants_timings: bool,
    rewriters: Box<[PluginInstance]>,
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

    /// Whether any plugin wants to see request bodies.
    pub fn wants_request_body(&self) -> bool {
        self.wants_request_body
    }

    /// Whether any plugin wants the request's phase timings recorded.
    pub fn wants_timings(&self) -> bool {
        self.wants_timings
    }

    /// The plugins with a pre-routing phase, in execution order (for the global chain,
    /// which is the one that runs it).
    pub fn rewriters(&self) -> &[PluginInstance] {
        &self.rewriters
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
        Chain::from_ordered(plugins)
    }

    /// A chain of `plugins` already in execution order (such as the chain resolved for a
    /// consumer).
    pub fn from_ordered(plugins: Vec<PluginInstance>) -> Chain {
        let wants_body = plugins.iter().any(|p| p.plugin.wants_response_body());
        let wants_request_body = plugins.iter().any(|p| p.plugin.wants_request_body());
        let wants_timings = plugins.iter().any(|p| p.plugin.wants_timings());
        let rewriters = plugins
            .iter()
            .filter(|p| p.plugin.wants_rewrite())
            .cloned()
            .collect();
        Chain {
            plugins: plugins.into_boxed_slice(),
            wants_body,
            wants_request_body,
            wants_timings,
            rewriters,
        }
    }
}

/// Order of a plugin in a chain: higher priority first, then by name.
fn runs_before(a: &PluginInstance, b: &PluginInstance) -> bool {
    (b.priority, &*a.name) < (a.priority, &*b.name)
}

/// The chain for the rest of a request once a consumer with its own plugins is
/// authenticated (Kong's scoping: a consumer's instance of a plugin replaces the route's
/// or the global one of the same name).
///
/// `executed` are the plugins that already ran, the last of them being the one that
/// identified the consumer; `base` is the route's chain. The result starts with
/// `executed`; then come the base plugins that sort after the last executed one, each
/// replaced by the consumer's instance of the same name (or dropped when the consumer
/// disables it), and the consumer's other plugins that sort after it. A consumer plugin
/// that sorts before the current position can no longer run (as in Kong, where plugins
/// run in one pass of priority order), unless it replaces a plugin still to come.
pub fn resolve_for_consumer(
    base: &[PluginInstance],
    executed: &[PluginInstance],
    consumer: &[Slot],
) -> Vec<PluginInstance> {
    let mut out: Vec<PluginInstance> = executed.to_vec();
    let Some(last) = executed.last() else {
        return out;
    };
    let mut rest: Vec<PluginInstance> = Vec::new();
    for p in base.iter().filter(|p| runs_before(last, p)) {
        match consumer.iter().find(|s| s.name == p.name) {
            Some(slot) => rest.extend(slot.instance.clone()),
            None => rest.push(p.clone()),
        }
    }
    for slot in consumer {
        let Some(instance) = &slot.instance else {
            continue;
        };
        let replaced = base
            .iter()
            .any(|p| p.name == slot.name && runs_before(last, p));
        let ran = executed.iter().any(|p| p.name == slot.name);
        if !replaced && !ran && runs_before(last, instance) {
            rest.push(instance.clone());
        }
    }
    rest.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
    out.extend(rest);
    out
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

/// Where a `plugins:` list is, owned (see [`PluginScope`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScopeKey {
    /// The top-level list.
    Global,
    /// A route's list, by route name.
    Route(String),
    /// A consumer's list, by consumer id.
    Consumer(String),
}

impl ScopeKey {
    fn scope(&self) -> PluginScope<'_> {
        match self {
            ScopeKey::Global => PluginScope::Global,
            ScopeKey::Route(r) => PluginScope::Route(r),
            ScopeKey::Consumer(c) => PluginScope::Consumer(c),
        }
    }
}

/// Identifies an instance across reloads: where it is attached and which plugin it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    /// Where the instance is attached.
    pub scope: ScopeKey,
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

impl CachedInstance {
    /// The instance.
    pub fn plugin(&self) -> &Arc<dyn Plugin> {
        &self.instance.plugin
    }
}

/// Instances of the configuration being built, reusing those of the previous
/// configuration whose plugin config did not change (so their state, such as rate-limit
/// counters, survives the reload). Plugins that read the consumer set when they are
/// built are not reused when the `consumers:` section changed, so their checks (such as
/// "the anonymous consumer exists") run again.
pub struct InstanceBuilder<'a> {
    registry: &'a Registry,
    previous: Option<&'a HashMap<InstanceKey, CachedInstance>>,
    services: &'a Services,
    consumers_changed: bool,
    built: HashMap<InstanceKey, CachedInstance>,
    /// How many instances were carried over from the previous configuration.
    pub reused: usize,
}

impl<'a> InstanceBuilder<'a> {
    /// Starts building against `registry` and the configuration's `services` (its
    /// consumers among them), reusing from `previous`.
    /// `consumers_changed` says whether the consumers differ from the previous
    /// configuration's.
    pub fn new(
        registry: &'a Registry,
        previous: Option<&'a HashMap<InstanceKey, CachedInstance>>,
        services: &'a Services,
        consumers_changed: bool,
    ) -> Self {
        InstanceBuilder {
            registry,
            previous,
            services,
            consumers_changed,
            built: HashMap::new(),
            reused: 0,
        }
    }

    /// Builds the entries of one `plugins:` list found at field path `base`.
    pub fn build_list(
        &mut self,
        entries: &[PluginConfig],
        base: &str,
        scope: &ScopeKey,
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
                scope: scope.clone(),
                plugin: entry.name.clone(),
            };
            let stale = self.consumers_changed && factory.uses_consumers();
            let reusable = self
                .previous
                .filter(|_| !stale)
                .and_then(|p| p.get(&key))
                .filter(|c| c.config == entry.config && c.priority == priority);
            let instance = match reusable {
                Some(cached) => {
                    self.reused += 1;
                    cached.instance.clone()
                }
                None => {
                    let cx = BuildContext::new(scope.scope()).with_services(self.services);
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

    fn instances(slots: &[Slot]) -> Vec<PluginInstance> {
        slots.iter().filter_map(|s| s.instance.clone()).collect()
    }

    #[test]
    fn consumer_plugins_replace_and_join_the_rest_of_the_chain() {
        let base = instances(&[
            slot("cors", 2000, true),
            slot("key-auth", 1250, true),
            slot("rate-limiting", 910, true),
            slot("request-termination", 2, true),
        ]);
        let consumer = [
            slot("rate-limiting", 910, true),
            slot("request-transformer", 801, true),
            slot("cors", 2000, true), // already past: cannot run any more
            slot("request-termination", 2, false), // disabled: removes the route's
        ];
        let executed = &base[..2];
        let resolved = resolve_for_consumer(&base, executed, &consumer);
        let names: Vec<String> = resolved.iter().map(|p| format!("{p:?}")).collect();
        assert_eq!(
            names,
            vec![
                "cors@2000",
                "key-auth@1250",
                "rate-limiting@910",
                "request-transformer@801"
            ]
        );
        // The consumer's rate-limiting instance, not the route's.
        assert!(Arc::ptr_eq(
            &resolved[2].plugin,
            consumer[0].instance.as_ref().map(|i| &i.plugin).unwrap()
        ));
    }

    #[test]
    fn ties_are_ordered_by_name() {
        let c = Chain::compose(&[slot("b", 1, true), slot("a", 1, true)], &[]);
        assert_eq!(names(&c), vec!["a@1", "b@1"]);
    }
}
