//! The JSON Schema of the configuration file, generated from the Rust types.
//!
//! `config/pingway.schema.json` is this output for the stock plugins; a test fails when
//! the file is stale. Regenerate it with `cargo run -p pingway -- schema >
//! config/pingway.schema.json`. Editors that speak JSON Schema (VS Code's YAML extension,
//! for one) then check and complete the file as it is typed.

use pingway_plugins::Registry;
use serde_json::{json, Value};

/// The schema of the whole file, with each registered plugin's `config:` schema selected
/// by the plugin's `name`.
pub fn generate(registry: &Registry) -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let root = generator.root_schema_for::<super::GatewayConfig>();
    let mut branches = Vec::new();
    for factory in registry.factories() {
        let config = factory.config_schema(&mut generator);
        branches.push(json!({
            "if": { "properties": { "name": { "const": factory.name() } }, "required": ["name"] },
            "then": { "properties": { "config": config } }
        }));
    }
    let credentials: Vec<(&str, schemars::Schema)> = registry
        .credential_kinds()
        .map(|k| (k.field(), k.entry_schema(&mut generator)))
        .collect();
    let mut root = root.to_value();
    let extra = generator.take_definitions(true);
    if let Some(defs) = root.get_mut("$defs").and_then(Value::as_object_mut) {
        for (k, v) in extra {
            defs.entry(k).or_insert(v);
        }
        if let Some(plugin) = defs.get_mut("PluginConfig").and_then(Value::as_object_mut) {
            plugin.insert("allOf".into(), Value::Array(branches));
        }
        // A consumer's other fields are the credential kinds plugins registered, and
        // nothing else.
        if let Some(consumer) = defs
            .get_mut("ConsumerConfig")
            .and_then(Value::as_object_mut)
        {
            if let Some(props) = consumer
                .get_mut("properties")
                .and_then(Value::as_object_mut)
            {
                for (field, entry) in credentials {
                    props.insert(
                        field.into(),
                        json!({
                            "description": "Credentials of a kind a plugin registered.",
                            "type": "array",
                            "items": entry.to_value(),
                        }),
                    );
                }
            }
            consumer.insert("additionalProperties".into(), json!(false));
        }
    }
    if let Some(obj) = root.as_object_mut() {
        obj.insert("title".into(), json!("Pingway gateway configuration"));
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema must be what the types generate today.
    #[test]
    fn committed_schema_is_current() {
        let generated = generate(&pingway_plugins::registry());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/pingway.schema.json");
        let committed: Value = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        assert!(
            committed == generated,
            "config/pingway.schema.json is stale; regenerate it with \
             `cargo run -p pingway -- schema > config/pingway.schema.json`"
        );
    }

    /// The configuration files shipped in the repository are valid against the schema,
    /// and a mistake an editor should flag is not.
    #[test]
    fn shipped_configs_pass_the_schema() {
        let schema = generate(&pingway_plugins::registry());
        let validator = jsonschema::validator_for(&schema).expect("the schema itself is valid");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).expect("config/") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable");
            let doc = crate::config::yaml::parse(&text)
                .expect("valid YAML")
                .to_json();
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            checked += 1;
        }
        assert!(checked >= 1);
        let bad = serde_json::json!({
            "listeners": [{"address": "127.0.0.1:8080"}],
            "routes": [{"name": "r", "upstream": "u", "paths": [{"regexp": "/x"}]}],
            "plugins": [{"name": "rate-limiting", "config": {"minute": "lots"}}]
        });
        assert!(validator.iter_errors(&bad).count() >= 2);
    }

    #[test]
    fn plugin_configs_are_selected_by_name() {
        let s = generate(&pingway_plugins::registry());
        let branches = s["$defs"]["PluginConfig"]["allOf"].as_array().unwrap();
        let names: Vec<&str> = branches
            .iter()
            .map(|b| b["if"]["properties"]["name"]["const"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"ip-restriction"), "{names:?}");
        assert!(names.contains(&"rate-limiting"), "{names:?}");
        assert!(s["$defs"].get("IpRestrictionConfig").is_some());
    }
}
