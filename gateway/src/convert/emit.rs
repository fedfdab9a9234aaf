//! Writes a [`ConfigNode`] tree as block-style YAML.
//!
//! The gateway has no YAML serializer (the loader is a parser with positions), and the
//! converter's output is small and regular: block mappings and lists, scalars either
//! plain (when the loader reads them back as the same value) or double-quoted with JSON
//! escapes, which YAML's double-quoted style accepts. The converter reads its own output
//! back through the loader, so an emitter mistake cannot reach a user as a broken file.

use crate::config::ConfigNode;
use pingway_plugins::config::NodeValue;
use pingway_plugins::config::{Resolved, Scalar};

/// The YAML text of `node` (a mapping at the top).
pub fn to_yaml(node: &ConfigNode) -> String {
    let mut out = String::new();
    match &node.value {
        NodeValue::Map(entries) if !entries.is_empty() => write_map(&mut out, entries, 0),
        _ => {
            out.push_str(&inline(node).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// A scalar or an empty collection, written on one line; `None` for anything else.
fn inline(node: &ConfigNode) -> Option<String> {
    match &node.value {
        NodeValue::Scalar(s) => Some(scalar(s)),
        NodeValue::Seq(items) if items.is_empty() => Some("[]".into()),
        NodeValue::Map(entries) if entries.is_empty() => Some("{}".into()),
        _ => None,
    }
}

fn write_map(
    out: &mut String,
    entries: &[(pingway_plugins::config::MapKey, ConfigNode)],
    indent: usize,
) {
    for (i, (k, v)) in entries.iter().enumerate() {
        // The first entry of a list item follows its "- " on the same line.
        if i > 0 || !out.ends_with("- ") {
            push_indent(out, indent);
        }
        out.push_str(&string(&k.name));
        out.push(':');
        write_value(out, v, indent);
    }
}

fn write_value(out: &mut String, v: &ConfigNode, indent: usize) {
    match inline(v) {
        Some(text) => {
            out.push(' ');
            out.push_str(&text);
            out.push('\n');
        }
        None => {
            out.push('\n');
            match &v.value {
                NodeValue::Map(entries) => write_map(out, entries, indent + 2),
                NodeValue::Seq(items) => write_seq(out, items, indent + 2),
                NodeValue::Scalar(_) => {}
            }
        }
    }
}

fn write_seq(out: &mut String, items: &[ConfigNode], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push_str("- ");
        match inline(item) {
            Some(text) => {
                out.push_str(&text);
                out.push('\n');
            }
            None => match &item.value {
                NodeValue::Map(entries) => write_map(out, entries, indent + 2),
                NodeValue::Seq(inner) => {
                    out.push('\n');
                    write_seq(out, inner, indent + 2);
                }
                NodeValue::Scalar(_) => {}
            },
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar as written: typed plain scalars (numbers, booleans, null) as they are,
/// strings by [`string`].
fn scalar(s: &Scalar) -> String {
    match s.resolve() {
        Resolved::Str(t) => string(t),
        _ => s.text.clone(),
    }
}

/// A string: plain when that reads back as the same string, else double-quoted.
pub(crate) fn string(text: &str) -> String {
    if plain_is_safe(text) {
        text.to_string()
    } else {
        serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
    }
}

fn plain_is_safe(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let plain = Scalar {
        text: text.to_string(),
        plain: true,
    };
    (first.is_ascii_alphanumeric() || first == '/' || first == '_')
        && !text.ends_with(':')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-@:".contains(c))
        && matches!(plain.resolve(), Resolved::Str(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_reads_back_as_the_same_tree() {
        let text = r#"
a: plain
b: "true"
c: 12
d: "12"
e: "*.example.com"
f: "line\nbreak \"quoted\" \\ é"
g: []
h: {}
i:
  - x
  - {k: 1, l: [1, 2, {m: null}]}
  - [a, b]
j: "0.0.0.0:8000"
k: ~
l: "key: value"
m: ""
"#;
        let node = crate::config::yaml::parse(text).unwrap();
        let yaml = to_yaml(&node);
        let back = crate::config::yaml::parse(&yaml).unwrap();
        assert_eq!(node.to_json(), back.to_json(), "{yaml}");
        assert!(yaml.contains("a: plain\n"), "{yaml}");
        assert!(yaml.contains("b: \"true\"\n"), "{yaml}");
        assert!(yaml.contains("j: 0.0.0.0:8000\n"), "{yaml}");
    }
}
