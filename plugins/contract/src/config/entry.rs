//! One entry of a `plugins:` list, wherever the list appears (top level, route, consumer).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigNode;

fn enabled() -> bool {
    true
}

/// A plugin in a `plugins:` list.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin's registered name, such as `rate-limiting`.
    pub name: String,
    /// The plugin's own settings (Kong's field names for Kong's plugins).
    #[serde(default)]
    pub config: ConfigNode,
    /// Overrides the plugin's default priority (higher runs first).
    #[serde(default)]
    pub priority: Option<i32>,
    /// `false` keeps the plugin configured but off (and, on a route or a consumer, still
    /// replaces a plugin of the same name from a wider scope).
    #[serde(default = "enabled")]
    pub enabled: bool,
}
