//! YAML text to [`ConfigNode`] tree, keeping the line and column of every value.
//!
//! Built on `saphyr-parser` (a maintained YAML 1.2 parser whose events carry spans).
//! Anchors, aliases and `<<` merge keys work; duplicate keys, multiple documents and
//! non-scalar keys are rejected with their position.

use std::collections::HashMap;

use pingway_plugins::config::{ConfigNode, Diagnostic, Location, MapKey, NodeValue, Scalar};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

/// Parses one YAML document. An empty document is a null scalar.
pub fn parse(text: &str) -> Result<ConfigNode, Vec<Diagnostic>> {
    let mut builder = Builder::default();
    for item in Parser::new_from_str(text) {
        pingway_plugins::pace::point();
        match item {
            Ok((event, span)) => builder.on_event(event, location(span.start))?,
            Err(e) => {
                let marker = e.marker();
                return Err(vec![Diagnostic::new(
                    builder.path(),
                    format!("invalid YAML: {}", e.info()),
                )
                .at(Some(location(*marker)))]);
            }
        }
    }
    Ok(builder.root.unwrap_or_else(|| {
        ConfigNode::new(NodeValue::Scalar(Scalar {
            text: String::new(),
            plain: true,
        }))
    }))
}

fn location(m: Marker) -> Location {
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

enum Frame {
    Seq {
        items: Vec<ConfigNode>,
        anchor: usize,
        location: Location,
    },
    Map {
        entries: Vec<(MapKey, ConfigNode)>,
        key: Option<MapKey>,
        anchor: usize,
        location: Location,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, ConfigNode>,
    root: Option<ConfigNode>,
    documents: usize,
}

impl Builder {
    /// The field path of the value being built, for error messages.
    fn path(&self) -> String {
        let mut out = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq { items, .. } => out.push_str(&format!("[{}]", items.len())),
                Frame::Map { key: Some(k), .. } => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&k.name);
                }
                Frame::Map { key: None, .. } => {}
            }
        }
        out
    }

    fn on_event(&mut self, event: Event<'_>, at: Location) -> Result<(), Vec<Diagnostic>> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(vec![Diagnostic::new(
                        "",
                        "only one YAML document is allowed in a configuration file",
                    )
                    .at(Some(at))]);
                }
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let node = ConfigNode {
                    location: Some(at),
                    value: NodeValue::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    }),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node, at)?;
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                items: Vec::new(),
                anchor,
                location: at,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                entries: Vec::new(),
                key: None,
                anchor,
                location: at,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        items,
                        anchor,
                        location,
                    }) => (
                        ConfigNode {
                            location: Some(location),
                            value: NodeValue::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        entries,
                        anchor,
                        location,
                        ..
                    }) => (
                        ConfigNode {
                            location: Some(location),
                            value: NodeValue::Map(merge_keys(entries)?),
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.add(node, at)?;
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| {
                    vec![Diagnostic::new(self.path(), "alias to an unknown anchor").at(Some(at))]
                })?;
                self.add(node, at)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn add(&mut self, node: ConfigNode, at: Location) -> Result<(), Vec<Diagnostic>> {
        let path = self.path();
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let NodeValue::Scalar(s) = node.value else {
                        return Err(vec![Diagnostic::new(
                            path,
                            "mapping keys must be plain strings, not lists or mappings",
                        )
                        .at(Some(at))]);
                    };
                    if entries.iter().any(|(k, _)| k.name == s.text) {
                        let p = if path.is_empty() {
                            s.text.clone()
                        } else {
                            format!("{path}.{}", s.text)
                        };
                        return Err(vec![Diagnostic::new(p, "duplicate key").at(node.location)]);
                    }
                    *key = Some(MapKey {
                        name: s.text,
                        location: node.location,
                    });
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }
}

/// Applies YAML merge keys: `<<: *base` (or a list of them) contributes the entries the
/// mapping does not set itself.
fn merge_keys(
    entries: Vec<(MapKey, ConfigNode)>,
) -> Result<Vec<(MapKey, ConfigNode)>, Vec<Diagnostic>> {
    if !entries.iter().any(|(k, _)| k.name == "<<") {
        return Ok(entries);
    }
    let mut own = Vec::with_capacity(entries.len());
    let mut merged = Vec::new();
    for (k, v) in entries {
        if k.name != "<<" {
            own.push((k, v));
            continue;
        }
        let sources = match v.value {
            NodeValue::Map(m) => vec![m],
            NodeValue::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.value {
                        NodeValue::Map(m) => maps.push(m),
                        _ => {
                            return Err(vec![Diagnostic::new(
                                "<<",
                                "a merge key takes mappings only",
                            )
                            .at(item.location)])
                        }
                    }
                }
                maps
            }
            _ => {
                return Err(vec![Diagnostic::new(
                    "<<",
                    "a merge key takes a mapping or a list of mappings",
                )
                .at(k.location)])
            }
        };
        merged.extend(sources.into_iter().flatten());
    }
    for (k, v) in merged {
        if !own.iter().any(|(o, _)| o.name == k.name) {
            own.push((k, v));
        }
    }
    Ok(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions() {
        let doc = parse("a: 1\nb:\n  - x\n  - y: 2\n").unwrap();
        assert_eq!(
            doc.get("a").unwrap().location,
            Some(Location { line: 1, column: 4 })
        );
        assert_eq!(doc.locate("b[1].y"), Some(Location { line: 4, column: 8 }));
        assert_eq!(doc.key_location("b"), Some(Location { line: 2, column: 1 }));
    }

    #[test]
    fn rejects_duplicate_keys_with_position() {
        let err = parse("routes:\n  - name: a\n    name: b\n").unwrap_err();
        assert_eq!(err[0].path, "routes[0].name");
        assert_eq!(err[0].message, "duplicate key");
        assert_eq!(err[0].location, Some(Location { line: 3, column: 5 }));
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err[0].message.starts_with("invalid YAML"), "{:?}", err);
        assert!(err[0].location.is_some());
    }

    #[test]
    fn resolves_aliases_and_merge_keys() {
        let doc = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").unwrap();
        let other = doc.get("other").unwrap().to_json();
        assert_eq!(other, serde_json::json!({"y": 3, "x": 1}));
    }

    #[test]
    fn rejects_several_documents() {
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let doc = parse("a: '5'\nb: 5\n").unwrap();
        assert_eq!(doc.to_json(), serde_json::json!({"a": "5", "b": 5}));
    }
}
