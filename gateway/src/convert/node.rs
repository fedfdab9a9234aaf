//! Reading values out of the Kong document's position-keeping tree.

use crate::config::ConfigNode;
use pingway_plugins::config::NodeValue;
use pingway_plugins::config::{MapKey, Resolved, Scalar};

/// The text of a scalar that is not null (a number's digits, a string's characters).
pub(crate) fn text(node: &ConfigNode) -> Option<&str> {
    match &node.value {
        NodeValue::Scalar(s) => match s.resolve() {
            Resolved::Null => None,
            Resolved::Str(t) => Some(t),
            _ => Some(s.text.as_str()),
        },
        _ => None,
    }
}

/// A boolean scalar.
pub(crate) fn boolean(node: &ConfigNode) -> Option<bool> {
    match &node.value {
        NodeValue::Scalar(s) => match s.resolve() {
            Resolved::Bool(b) => Some(b),
            _ => None,
        },
        _ => None,
    }
}

/// A number scalar, as f64.
pub(crate) fn number(node: &ConfigNode) -> Option<f64> {
    match &node.value {
        NodeValue::Scalar(s) => match s.resolve() {
            Resolved::Int(i) => Some(i as f64),
            Resolved::UInt(u) => Some(u as f64),
            Resolved::Float(f) => Some(f),
            _ => None,
        },
        _ => None,
    }
}

/// Whether the node is null (or an empty plain scalar).
pub(crate) fn is_null(node: &ConfigNode) -> bool {
    matches!(&node.value, NodeValue::Scalar(s) if s.resolve() == Resolved::Null)
}

/// The items of a list; nothing for anything else (null included).
pub(crate) fn items(node: &ConfigNode) -> &[ConfigNode] {
    match &node.value {
        NodeValue::Seq(items) => items,
        _ => &[],
    }
}

/// The entries of a mapping; nothing for anything else.
pub(crate) fn entries(node: &ConfigNode) -> &[(MapKey, ConfigNode)] {
    match &node.value {
        NodeValue::Map(entries) => entries,
        _ => &[],
    }
}

/// The strings of a list of scalars (others skipped).
pub(crate) fn strings(node: &ConfigNode) -> Vec<String> {
    items(node)
        .iter()
        .filter_map(text)
        .map(str::to_string)
        .collect()
}

/// A field of a mapping that is present and not null.
pub(crate) fn field<'a>(node: &'a ConfigNode, key: &str) -> Option<&'a ConfigNode> {
    node.get(key).filter(|v| !is_null(v))
}

/// A string field.
pub(crate) fn str_field<'a>(node: &'a ConfigNode, key: &str) -> Option<&'a str> {
    field(node, key).and_then(text)
}

/// Builds output trees.
pub(crate) struct Map(Vec<(MapKey, ConfigNode)>);

impl Map {
    /// An empty mapping.
    pub(crate) fn new() -> Self {
        Map(Vec::new())
    }

    /// Adds `key: value`.
    pub(crate) fn put(&mut self, key: &str, value: ConfigNode) -> &mut Self {
        self.0.push((
            MapKey {
                name: key.to_string(),
                location: None,
            },
            value,
        ));
        self
    }

    /// The finished node.
    pub(crate) fn build(self) -> ConfigNode {
        ConfigNode::new(NodeValue::Map(self.0))
    }
}

/// A string scalar.
pub(crate) fn s(text: &str) -> ConfigNode {
    ConfigNode::new(NodeValue::Scalar(Scalar {
        text: text.to_string(),
        plain: false,
    }))
}

/// A typed plain scalar (number, boolean).
pub(crate) fn plain(text: impl ToString) -> ConfigNode {
    ConfigNode::new(NodeValue::Scalar(Scalar {
        text: text.to_string(),
        plain: true,
    }))
}

/// A list.
pub(crate) fn seq(items: Vec<ConfigNode>) -> ConfigNode {
    ConfigNode::new(NodeValue::Seq(items))
}

/// A list of strings.
pub(crate) fn str_seq(items: &[String]) -> ConfigNode {
    seq(items.iter().map(|i| s(i)).collect())
}

/// A Kong duration in milliseconds as a Pingway duration (`60s`, `1500ms`).
pub(crate) fn millis(ms: u64) -> ConfigNode {
    if ms % 1000 == 0 {
        s(&format!("{}s", ms / 1000))
    } else {
        s(&format!("{ms}ms"))
    }
}
