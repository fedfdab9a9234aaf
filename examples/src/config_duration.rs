//! A duration in a plugin's configuration: a string with units (`250ms`, `5s`, `1m`), as
//! everywhere in Pingway, or a bare number of milliseconds, as Kong's plugins write their
//! timeouts (so a KongPlugin's `timeout: 10000` works unchanged).

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

/// A configured duration: `"250ms"`-style text or a number of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// `n` milliseconds.
    pub const fn from_millis(n: u64) -> Self {
        ConfigDuration(Duration::from_millis(n))
    }

    /// The standard-library value.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfigDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 250ms, 5s or 1m, or a number of milliseconds")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ConfigDuration, E> {
                Ok(ConfigDuration::from_millis(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ConfigDuration, E> {
                u64::try_from(v)
                    .map(ConfigDuration::from_millis)
                    .map_err(|_| E::custom(format!("a duration cannot be negative: {v}")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<ConfigDuration, E> {
                pingway::config::duration::parse_duration(v)
                    .map(ConfigDuration)
                    .map_err(E::custom)
            }
        }
        // `any`: the configuration's scalars say themselves whether they are numbers.
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for ConfigDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConfigDuration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration with units (250ms, 5s, 1m) or a number of milliseconds.",
            "oneOf": [
                {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d))+$"},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_units_and_bare_milliseconds() {
        let d: ConfigDuration = serde_json::from_str("\"250ms\"").unwrap();
        assert_eq!(d.get(), Duration::from_millis(250));
        let d: ConfigDuration = serde_json::from_str("1500").unwrap();
        assert_eq!(d.get(), Duration::from_millis(1500));
        assert!(serde_json::from_str::<ConfigDuration>("-1").is_err());
        assert!(serde_json::from_str::<ConfigDuration>("\"5 parsecs\"").is_err());
    }
}
