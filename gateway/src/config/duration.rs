//! Durations written as strings with units: `250ms`, `5s`, `1m`, `1h30m`.

use std::fmt;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration from the configuration file. Units: `ms`, `s`, `m`, `h`, `d`; several may be
/// combined (`1m30s`). A bare number is refused so that nobody has to guess the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// `n` milliseconds.
    pub const fn from_millis(n: u64) -> Self {
        Duration(StdDuration::from_millis(n))
    }

    /// `n` seconds.
    pub const fn from_secs(n: u64) -> Self {
        Duration(StdDuration::from_secs(n))
    }

    /// The standard-library value.
    pub fn get(self) -> StdDuration {
        self.0
    }
}

pub use pingway_plugins::config::parse_duration;

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 || ms == 0 {
            write!(f, "{ms}ms")
        } else if ms % 60_000 != 0 {
            write!(f, "{}s", ms / 1000)
        } else if ms % 3_600_000 != 0 {
            write!(f, "{}m", ms / 60_000)
        } else {
            write!(f, "{}h", ms / 3_600_000)
        }
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 250ms, 5s or 1m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map(Duration).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(V)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration with units: 250ms, 5s, 1m, 1h30m.",
            "type": "string",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration("250ms"), Ok(StdDuration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(StdDuration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(StdDuration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(StdDuration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(StdDuration::from_secs(86400)));
    }

    #[test]
    fn refuses_missing_or_unknown_units() {
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(Duration::from_millis(250).to_string(), "250ms");
        assert_eq!(Duration::from_secs(5).to_string(), "5s");
        assert_eq!(Duration::from_secs(120).to_string(), "2m");
    }
}
