//! A format-neutral configuration tree that remembers where each value came from.
//!
//! The gateway parses its YAML file into a [`ConfigNode`] tree, then deserializes typed
//! configuration from it with [`super::from_node`]; plugins receive the subtree under their
//! `config:` key. Keeping positions in the tree is what lets every problem be reported
//! with its line and column, and comparing trees (positions ignored) is how a reload
//! decides that a plugin's configuration did not change.

use super::diagnostic::{join_path, Location};

/// One value in a configuration document, with its position when it came from a file.
#[derive(Clone, Debug)]
pub struct ConfigNode {
    /// Where the value starts in the source file, if it came from one.
    pub location: Option<Location>,
    /// The value.
    pub value: NodeValue,
}

/// The value of a [`ConfigNode`].
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    /// A scalar as written. Its type is resolved on use (YAML 1.2 core schema for plain
    /// scalars), so that `version: 2` can still be read as the string `"2"` where a string
    /// is expected.
    Scalar(Scalar),
    /// An ordered list.
    Seq(Vec<ConfigNode>),
    /// A mapping in source order. Keys are unique (the parser rejects duplicates).
    Map(Vec<(MapKey, ConfigNode)>),
}

/// A scalar as written in the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The text of the scalar after unquoting/unescaping.
    pub text: String,
    /// True for plain (unquoted) scalars, whose type is inferred (null, bool, int,
    /// float, string); quoted scalars are always strings.
    pub plain: bool,
}

/// A mapping key with its position.
#[derive(Clone, Debug)]
pub struct MapKey {
    /// The key text.
    pub name: String,
    /// Where the key is written.
    pub location: Option<Location>,
}

impl PartialEq for MapKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Positions are ignored: two trees are equal when they hold the same values.
impl PartialEq for ConfigNode {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// A scalar's type, resolved with the YAML 1.2 core schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved<'a> {
    /// `null`, `~` or an empty plain scalar.
    Null,
    /// `true` / `false` (any case variant the core schema allows).
    Bool(bool),
    /// A decimal, `0x` hex or `0o` octal integer that fits an `i64`.
    Int(i64),
    /// A non-negative integer too large for `i64`.
    UInt(u64),
    /// A float, including `.inf` and `.nan`.
    Float(f64),
    /// Anything else, or any quoted scalar.
    Str(&'a str),
}

impl Scalar {
    /// Resolves the scalar's type.
    pub fn resolve(&self) -> Resolved<'_> {
        if !self.plain {
            return Resolved::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
            "true" | "True" | "TRUE" => return Resolved::Bool(true),
            "false" | "False" | "FALSE" => return Resolved::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Resolved::Float(f64::INFINITY)
            }
            "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
            _ => {}
        }
        if let Some(hex) = t.strip_prefix("0x") {
            if let Ok(v) = i64::from_str_radix(hex, 16) {
                return Resolved::Int(v);
            }
        }
        if let Some(oct) = t.strip_prefix("0o") {
            if let Ok(v) = i64::from_str_radix(oct, 8) {
                return Resolved::Int(v);
            }
        }
        let bytes = t.as_bytes();
        let digits = bytes
            .strip_prefix(b"-")
            .or_else(|| bytes.strip_prefix(b"+"))
            .unwrap_or(bytes);
        if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            if let Ok(v) = t.parse::<i64>() {
                return Resolved::Int(v);
            }
            if let Ok(v) = t.trim_start_matches('+').parse::<u64>() {
                return Resolved::UInt(v);
            }
        }
        if looks_like_float(t) {
            if let Ok(v) = t.parse::<f64>() {
                return Resolved::Float(v);
            }
        }
        Resolved::Str(t)
    }
}

/// The YAML 1.2 core schema float pattern: `[-+]? (\.[0-9]+ | [0-9]+ (\.[0-9]*)?) ([eE][-+]?[0-9]+)?`.
fn looks_like_float(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - s;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

impl ConfigNode {
    /// A node without a source position.
    pub fn new(value: NodeValue) -> Self {
        ConfigNode {
            location: None,
            value,
        }
    }

    /// An empty mapping, used when a plugin is declared without a `config:` block.
    pub fn empty_map() -> Self {
        ConfigNode::new(NodeValue::Map(Vec::new()))
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&ConfigNode> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The location of the key `key` when this node is a mapping that has it.
    pub fn key_location(&self, key: &str) -> Option<Location> {
        match &self.value {
            NodeValue::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == key)
                .and_then(|(k, _)| k.location),
            _ => None,
        }
    }

    /// Finds the best known position for a dotted field path such as
    /// `routes[2].plugins[0].config.minute`, relative to this node.
    ///
    /// When the path leads through missing fields, the position of the deepest node that
    /// exists is returned, so a "missing field" problem points at the mapping that lacks it.
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut node = self;
        let mut best = self.location;
        for seg in parse_path(path) {
            let next = match seg {
                PathSegment::Key(k) => {
                    if let Some(loc) = node.key_location(k) {
                        best = Some(loc);
                    }
                    node.get(k)
                }
                PathSegment::Index(i) => match &node.value {
                    NodeValue::Seq(items) => items.get(i),
                    _ => None,
                },
            };
            match next {
                Some(n) => {
                    node = n;
                    best = n.location.or(best);
                }
                None => break,
            }
        }
        best
    }

    /// Converts a JSON value into a node without positions. Used for configurations that
    /// come from an API rather than a file.
    pub fn from_json(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        let scalar = |text: String, plain: bool| NodeValue::Scalar(Scalar { text, plain });
        let value = match value {
            Value::Null => scalar("null".into(), true),
            Value::Bool(b) => scalar(b.to_string(), true),
            Value::Number(n) => scalar(n.to_string(), true),
            Value::String(s) => scalar(s.clone(), false),
            Value::Array(items) => {
                NodeValue::Seq(items.iter().map(ConfigNode::from_json).collect())
            }
            Value::Object(map) => NodeValue::Map(
                map.iter()
                    .map(|(k, v)| {
                        (
                            MapKey {
                                name: k.clone(),
                                location: None,
                            },
                            ConfigNode::from_json(v),
                        )
                    })
                    .collect(),
            ),
        };
        ConfigNode::new(value)
    }

    /// Converts the node to JSON (scalar types resolved). Used to show configurations
    /// and to compare them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.value {
            NodeValue::Scalar(s) => match s.resolve() {
                Resolved::Null => Value::Null,
                Resolved::Bool(b) => Value::Bool(b),
                Resolved::Int(i) => Value::from(i),
                Resolved::UInt(u) => Value::from(u),
                Resolved::Float(f) => serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(s.text.clone())),
                Resolved::Str(t) => Value::String(t.to_string()),
            },
            NodeValue::Seq(items) => Value::Array(items.iter().map(ConfigNode::to_json).collect()),
            NodeValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// One step of a field path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathSegment<'a> {
    /// A mapping key.
    Key(&'a str),
    /// A list index.
    Index(usize),
}

/// Splits `a.b[3].c` into `Key(a) Key(b) Index(3) Key(c)`.
pub fn parse_path(path: &str) -> Vec<PathSegment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        if part.is_empty() {
            continue;
        }
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(PathSegment::Key(key));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            if let Ok(i) = stripped[..end].parse() {
                out.push(PathSegment::Index(i));
            }
            rest = &stripped[end + 1..];
        }
    }
    out
}

/// Builds the path of the `index`-th element below `parent`.
pub fn index_path(parent: &str, index: usize) -> String {
    join_path(parent, &format!("[{index}]"))
}

impl Default for ConfigNode {
    /// An empty mapping.
    fn default() -> Self {
        ConfigNode::empty_map()
    }
}

/// A node can be read from any serde format (JSON from the Kubernetes API, for example);
/// such nodes have no positions. Strings become quoted scalars, other scalars plain ones.
impl<'de> serde::Deserialize<'de> for ConfigNode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess, Visitor};
        use std::fmt;

        struct NodeVisitor;

        fn scalar(text: String, plain: bool) -> ConfigNode {
            ConfigNode::new(NodeValue::Scalar(Scalar { text, plain }))
        }

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = ConfigNode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<ConfigNode, E> {
                Ok(scalar(v.to_string(), true))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ConfigNode, E> {
                Ok(scalar(v.to_string(), true))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ConfigNode, E> {
                Ok(scalar(v.to_string(), true))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ConfigNode, E> {
                Ok(scalar(v.to_string(), true))
            }
            fn visit_str<E>(self, v: &str) -> Result<ConfigNode, E> {
                Ok(scalar(v.to_string(), false))
            }
            fn visit_unit<E>(self) -> Result<ConfigNode, E> {
                Ok(scalar("null".into(), true))
            }
            fn visit_none<E>(self) -> Result<ConfigNode, E> {
                Ok(scalar("null".into(), true))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<ConfigNode, D::Error> {
                <ConfigNode as serde::Deserialize>::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ConfigNode, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<ConfigNode>()? {
                    items.push(item);
                }
                Ok(ConfigNode::new(NodeValue::Seq(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigNode, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, ConfigNode>()? {
                    entries.push((
                        MapKey {
                            name: k,
                            location: None,
                        },
                        v,
                    ));
                }
                Ok(ConfigNode::new(NodeValue::Map(entries)))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

impl serde::Serialize for ConfigNode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl schemars::JsonSchema for ConfigNode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PluginConfigBlock".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A plugin's `config:` block; its fields depend on the plugin.",
            "type": ["object", "null"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(t: &str) -> Scalar {
        Scalar {
            text: t.into(),
            plain: true,
        }
    }

    #[test]
    fn resolves_core_schema_scalars() {
        assert_eq!(plain("").resolve(), Resolved::Null);
        assert_eq!(plain("~").resolve(), Resolved::Null);
        assert_eq!(plain("true").resolve(), Resolved::Bool(true));
        assert_eq!(plain("False").resolve(), Resolved::Bool(false));
        assert_eq!(plain("42").resolve(), Resolved::Int(42));
        assert_eq!(plain("-7").resolve(), Resolved::Int(-7));
        assert_eq!(plain("0x1f").resolve(), Resolved::Int(31));
        assert_eq!(plain("1.5").resolve(), Resolved::Float(1.5));
        assert_eq!(plain("1e3").resolve(), Resolved::Float(1000.0));
        assert_eq!(plain("54.13.21.1").resolve(), Resolved::Str("54.13.21.1"));
        assert_eq!(plain("5s").resolve(), Resolved::Str("5s"));
        assert_eq!(plain("yes").resolve(), Resolved::Str("yes"));
        let quoted = Scalar {
            text: "42".into(),
            plain: false,
        };
        assert_eq!(quoted.resolve(), Resolved::Str("42"));
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("routes[2].plugins[0].config.minute"),
            vec![
                PathSegment::Key("routes"),
                PathSegment::Index(2),
                PathSegment::Key("plugins"),
                PathSegment::Index(0),
                PathSegment::Key("config"),
                PathSegment::Key("minute"),
            ]
        );
        assert_eq!(parse_path(""), vec![]);
    }

    #[test]
    fn equality_ignores_positions() {
        let mut a = ConfigNode::from_json(&serde_json::json!({"minute": 5}));
        let b = ConfigNode::from_json(&serde_json::json!({"minute": 5}));
        a.location = Some(Location { line: 3, column: 1 });
        assert_eq!(a, b);
        let c = ConfigNode::from_json(&serde_json::json!({"minute": 6}));
        assert_ne!(a, c);
    }
}
