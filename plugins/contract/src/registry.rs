//! The open registry of plugin types: stock and user plugins register the same way and
//! are referenced by name in the configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::config::{from_node, join_path, ConfigNode, Diagnostic};
use crate::credentials::{CredentialFactory, CredentialKind, TypedCredentials};
use crate::lifecycle::Lifecycle;
use crate::plugin::Plugin;
use crate::services::Services;

/// Where a plugin instance is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginScope<'a> {
    /// In the top-level `plugins:` list: runs on every route that does not configure a
    /// plugin of the same name.
    Global,
    /// In a route's `plugins:` list.
    Route(&'a str),
    /// In a consumer's `plugins:` list (the consumer's id): runs on that consumer's
    /// requests once an auth plugin identified it, instead of the route's or the global
    /// plugin of the same name.
    Consumer(&'a str),
}

/// What a plugin's constructor may know about its surroundings.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct BuildContext<'a> {
    /// Where the instance is configured.
    pub scope: PluginScope<'a>,
    /// The configuration's shared services (the consumers, for instance).
    pub services: &'a Services,
    lifecycle: Option<&'a Lifecycle>,
}

impl<'a> BuildContext<'a> {
    /// A context for `scope`, with no services and the process-wide lifecycle.
    pub fn new(scope: PluginScope<'a>) -> Self {
        BuildContext {
            scope,
            services: Services::empty(),
            lifecycle: None,
        }
    }

    /// The same context with the configuration's shared services.
    pub fn with_services(mut self, services: &'a Services) -> Self {
        self.services = services;
        self
    }

    /// The same context with a given lifecycle (tests give their own).
    pub fn with_lifecycle(mut self, lifecycle: &'a Lifecycle) -> Self {
        self.lifecycle = Some(lifecycle);
        self
    }

    /// A shared service of the configuration, by type.
    pub fn service<T: Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.services.get::<T>()
    }

    /// The runtime and shutdown signal for the instance's background work. `None` only
    /// if no runtime thread could be started.
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        match self.lifecycle {
            Some(l) => Some(l.clone()),
            None => Lifecycle::process(),
        }
    }
}

/// Problems with a plugin's configuration that its constructor found (beyond what the
/// typed deserialization already rejects). Field paths are relative to the plugin's
/// `config:` block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    problems: Vec<(String, String)>,
}

impl ConfigError {
    /// One problem with `field` (relative to `config:`; empty for the block itself).
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![(field.into(), message.into())],
        }
    }

    /// Adds another problem.
    pub fn and(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.problems.push((field.into(), message.into()));
        self
    }

    /// The problems as (field, message) pairs.
    pub fn problems(&self) -> &[(String, String)] {
        &self.problems
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (field, msg)) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if field.is_empty() {
                write!(f, "{msg}")?;
            } else {
                write!(f, "{field}: {msg}")?;
            }
        }
        Ok(())
    }
}

/// A plugin type built from a typed configuration. This is the easy way to write a
/// plugin: implement [`Plugin`] and this trait, then
/// [`Registry::register::<YourPlugin>()`](Registry::register).
///
/// ```
/// use pingway_plugin::{BuildContext, BuildPlugin, ConfigError, Plugin};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct Config { header: String }
///
/// struct Tag { header: http::HeaderName }
///
/// impl Plugin for Tag {}
///
/// impl BuildPlugin for Tag {
///     const NAME: &'static str = "tag";
///     const PRIORITY: i32 = 500;
///     type Config = Config;
///     fn build(config: Config, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
///         let header = config.header.parse()
///             .map_err(|_| ConfigError::new("header", "not a valid header name"))?;
///         Ok(Tag { header })
///     }
/// }
/// ```
pub trait BuildPlugin: Plugin + Sized {
    /// The name used in the configuration's `plugins:` lists.
    const NAME: &'static str;
    /// The default priority: higher runs first. Stock plugins use Kong's numbers.
    const PRIORITY: i32;
    /// The typed `config:` block. Unknown fields are always rejected.
    type Config: DeserializeOwned + JsonSchema;
    /// Whether [`Self::build`] reads the consumers (a [`BuildContext::service`]). An instance is normally
    /// carried over a reload when its own configuration did not change; one that uses
    /// consumers is rebuilt whenever the `consumers:` section changed, so its checks run
    /// again.
    const USES_CONSUMERS: bool = false;

    /// Builds an instance, once per configuration load. Reject invalid combinations
    /// here with a [`ConfigError`] naming the field.
    fn build(config: Self::Config, cx: &BuildContext<'_>) -> Result<Self, ConfigError>;
}

/// Builds plugin instances of one type from their configuration. [`BuildPlugin`] types
/// get one for free; implement this directly only for plugins whose configuration is not
/// a fixed Rust type.
pub trait PluginFactory: Send + Sync + 'static {
    /// The plugin's name in the configuration.
    fn name(&self) -> &str;
    /// Its default priority.
    fn default_priority(&self) -> i32;
    /// Builds an instance from the `config:` node found at field path `path`.
    fn build(
        &self,
        config: &ConfigNode,
        path: &str,
        cx: &BuildContext<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<Diagnostic>>;
    /// The JSON Schema of the `config:` block.
    fn config_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
    /// Whether building reads the consumer set (see [`BuildPlugin::USES_CONSUMERS`]).
    fn uses_consumers(&self) -> bool {
        false
    }
}

struct TypedFactory<P>(std::marker::PhantomData<fn() -> P>);

impl<P: BuildPlugin> PluginFactory for TypedFactory<P> {
    fn name(&self) -> &str {
        P::NAME
    }

    fn default_priority(&self) -> i32 {
        P::PRIORITY
    }

    fn build(
        &self,
        config: &ConfigNode,
        path: &str,
        cx: &BuildContext<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<Diagnostic>> {
        let typed: P::Config = from_node(config, path)?;
        match P::build(typed, cx) {
            Ok(p) => Ok(Arc::new(p)),
            Err(e) => Err(e
                .problems
                .into_iter()
                .map(|(field, msg)| {
                    let full = join_path(path, &field);
                    let location = config.locate(&field).or(config.location);
                    Diagnostic::new(full, msg).at(location)
                })
                .collect()),
        }
    }

    fn config_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<P::Config>()
    }

    fn uses_consumers(&self) -> bool {
        P::USES_CONSUMERS
    }
}

/// The set of plugin types a gateway knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Arc<dyn PluginFactory>>,
    credentials: BTreeMap<&'static str, Arc<dyn CredentialFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a credential kind: consumers may then carry entries under
    /// `K::FIELD`, and its index is a shared service of each configuration. A later
    /// registration of the same field replaces the earlier one.
    pub fn register_credential<K: CredentialKind>(&mut self) -> &mut Self {
        self.credentials.insert(
            K::FIELD,
            Arc::new(TypedCredentials::<K>(std::marker::PhantomData)),
        );
        self
    }

    /// The registered credential kinds, by consumer field.
    pub fn credential_kinds(&self) -> impl Iterator<Item = &Arc<dyn CredentialFactory>> {
        self.credentials.values()
    }

    /// The credential kind whose entries are under consumer field `field`.
    pub fn credential_kind(&self, field: &str) -> Option<&Arc<dyn CredentialFactory>> {
        self.credentials.get(field)
    }

    /// Registers a plugin type. A later registration under the same name replaces the
    /// earlier one, so an embedder can swap in their own version of a stock plugin.
    pub fn register<P: BuildPlugin>(&mut self) -> &mut Self {
        self.register_factory(Arc::new(TypedFactory::<P>(std::marker::PhantomData)))
    }

    /// Registers a hand-written factory.
    pub fn register_factory(&mut self, factory: Arc<dyn PluginFactory>) -> &mut Self {
        self.factories.insert(factory.name().to_string(), factory);
        self
    }

    /// The factory for `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn PluginFactory>> {
        self.factories.get(name)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }

    /// All factories, sorted by name.
    pub fn factories(&self) -> impl Iterator<Item = &Arc<dyn PluginFactory>> {
        self.factories.values()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("plugins", &self.factories.keys().collect::<Vec<_>>())
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .finish()
    }
}
