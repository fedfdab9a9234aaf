//! YAML text to [`ConfigNode`] tree, keeping the line and column of every value.
//!
//! Built on `saphyr-parser` (a maintained YAML 1.2 parser whose events carry spans).
//! Anchors, aliases and `<<` merge keys work; duplicate keys, multiple documents and
//! non-scalar keys are rejected with their position.
//!
//! An alias is expanded into a copy of its anchored subtree, so the builder keeps a
//! budget ([`super::limits`]): the values and scalar text the tree may hold grow with the
//! file's size, alias uses and nesting depth are capped, and a file past any of them is
//! refused at the alias or collection that crossed the limit, before it is copied.

use std::collections::{HashMap, HashSet};

use pingway_plugins::config::{ConfigNode, Diagnostic, Location, MapKey, NodeValue, Scalar};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle};

use super::limits::{self, MAX_ALIAS_USES, MAX_DEPTH};

/// Parses one YAML document. An empty document is a null scalar.
pub fn parse(text: &str) -> Result<ConfigNode, Vec<Diagnostic>> {
    let mut builder = Builder::new(text.len());
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

/// What a subtree costs against the budget: its values (keys included) and the bytes of
/// its scalar text; and how deep its lists and mappings nest, which an alias adds to the
/// depth where it is used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cost {
    nodes: usize,
    text: usize,
    /// Levels of lists and mappings: 0 for a scalar, 1 for a flat list.
    height: usize,
}

impl Cost {
    /// A scalar of `text` bytes.
    fn scalar(text: usize) -> Self {
        Cost {
            nodes: 1,
            text,
            height: 0,
        }
    }

    /// An empty list or mapping.
    const COLLECTION: Cost = Cost {
        nodes: 1,
        text: 0,
        height: 1,
    };

    /// Adds the values and text of `other` (what the budget counts).
    fn add(&mut self, other: Cost) {
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.text = self.text.saturating_add(other.text);
    }

    /// Adds `child` to this collection's cost.
    fn include(&mut self, child: Cost) {
        self.add(child);
        self.height = self.height.max(child.height + 1);
    }
}

/// What the tree built from one file may still grow by.
struct Budget {
    /// The limits, from the file's size.
    nodes: usize,
    text: usize,
    /// The file's size, for messages.
    file_len: usize,
    /// Spent so far (every value produced, copies made by aliases included).
    spent: Cost,
    aliases: usize,
}

impl Budget {
    fn new(file_len: usize) -> Self {
        Budget {
            nodes: limits::node_budget(file_len),
            text: limits::text_budget(file_len),
            file_len,
            spent: Cost::default(),
            aliases: 0,
        }
    }

    /// Charges `cost`, or says which limit it would cross (charging nothing).
    fn charge(&mut self, cost: Cost) -> Result<(), String> {
        let mut after = self.spent;
        after.add(cost);
        // The hint names aliases only when there are some to blame.
        let aliased = self.aliases > 0;
        if after.nodes > self.nodes {
            return Err(format!(
                "the document expands to more than {} values, the node budget for a file of \
                 {} bytes (NODES_PER_BYTE x size, within MIN_NODE_BUDGET..MAX_NODE_BUDGET){}",
                self.nodes,
                self.file_len,
                if aliased {
                    "; are aliases nested into an alias bomb?"
                } else {
                    ""
                }
            ));
        }
        if after.text > self.text {
            return Err(format!(
                "the document expands to more than {} bytes of text, the text budget for a \
                 file of {} bytes (TEXT_BYTES_PER_BYTE x size, at least MIN_TEXT_BUDGET){}",
                self.text,
                self.file_len,
                if aliased {
                    "; is a long string aliased many times?"
                } else {
                    ""
                }
            ));
        }
        self.spent = after;
        Ok(())
    }

    /// Counts one alias use, or says that the file has too many.
    fn use_alias(&mut self) -> Result<(), String> {
        self.aliases += 1;
        if self.aliases > MAX_ALIAS_USES {
            return Err(format!(
                "more than {MAX_ALIAS_USES} alias uses (`*name`) in one file (MAX_ALIAS_USES)"
            ));
        }
        Ok(())
    }
}

enum Frame {
    Seq {
        items: Vec<ConfigNode>,
        anchor: usize,
        location: Location,
        cost: Cost,
    },
    Map {
        entries: Vec<(MapKey, ConfigNode)>,
        /// The keys so far, once there are enough for a linear search to cost (a
        /// generated mapping with 100,000 keys must not take 10^10 comparisons).
        seen: Option<HashSet<String>>,
        key: Option<MapKey>,
        anchor: usize,
        location: Location,
        cost: Cost,
    },
}

/// Keys a mapping may have before duplicates are looked up in a set rather than by a
/// linear search of its entries.
const LINEAR_KEY_SEARCH: usize = 16;

/// An anchored subtree, kept to be copied where it is aliased.
struct Anchored {
    node: ConfigNode,
    cost: Cost,
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchored>,
    root: Option<ConfigNode>,
    documents: usize,
    budget: Budget,
}

impl Builder {
    fn new(file_len: usize) -> Self {
        Builder {
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            documents: 0,
            budget: Budget::new(file_len),
        }
    }

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

    /// A problem at the value being built.
    fn refuse(&self, message: impl Into<String>, at: Location) -> Vec<Diagnostic> {
        vec![Diagnostic::new(self.path(), message).at(Some(at))]
    }

    /// Charges the budget for `cost`, refusing the file at `at` if it is spent.
    fn charge(&mut self, cost: Cost, at: Location) -> Result<(), Vec<Diagnostic>> {
        self.budget.charge(cost).map_err(|m| self.refuse(m, at))
    }

    /// Opens a list or mapping, unless that nests too deep.
    fn open(&mut self, frame: Frame, at: Location) -> Result<(), Vec<Diagnostic>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.refuse(
                format!("lists and mappings nest deeper than {MAX_DEPTH} levels (MAX_DEPTH)"),
                at,
            ));
        }
        self.charge(Cost::COLLECTION, at)?;
        self.stack.push(frame);
        Ok(())
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
                let cost = Cost::scalar(text.len());
                self.charge(cost, at)?;
                let node = ConfigNode {
                    location: Some(at),
                    value: NodeValue::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    }),
                };
                if anchor > 0 {
                    self.anchors.insert(
                        anchor,
                        Anchored {
                            node: node.clone(),
                            cost,
                        },
                    );
                }
                self.add(node, cost, at)?;
            }
            Event::SequenceStart(anchor, _) => self.open(
                Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    location: at,
                    cost: Cost::COLLECTION,
                },
                at,
            )?,
            Event::MappingStart(anchor, _) => self.open(
                Frame::Map {
                    entries: Vec::new(),
                    seen: None,
                    key: None,
                    anchor,
                    location: at,
                    cost: Cost::COLLECTION,
                },
                at,
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                // Collections are shrunk to their length: a vector grows to 4 entries at
                // its first push and doubles after, and in a tree of mostly small
                // mappings the spare room would be most of the memory.
                let (node, anchor, cost) = match self.stack.pop() {
                    Some(Frame::Seq {
                        mut items,
                        anchor,
                        location,
                        cost,
                    }) => {
                        items.shrink_to_fit();
                        (
                            ConfigNode {
                                location: Some(location),
                                value: NodeValue::Seq(items),
                            },
                            anchor,
                            cost,
                        )
                    }
                    Some(Frame::Map {
                        entries,
                        anchor,
                        location,
                        cost,
                        ..
                    }) => {
                        let mut entries = merge_keys(entries)?;
                        entries.shrink_to_fit();
                        (
                            ConfigNode {
                                location: Some(location),
                                value: NodeValue::Map(entries),
                            },
                            anchor,
                            cost,
                        )
                    }
                    None => return Ok(()),
                };
                if anchor > 0 {
                    self.anchors.insert(
                        anchor,
                        Anchored {
                            node: node.clone(),
                            cost,
                        },
                    );
                }
                self.add(node, cost, at)?;
            }
            Event::Alias(id) => {
                self.budget.use_alias().map_err(|m| self.refuse(m, at))?;
                let cost = match self.anchors.get(&id) {
                    Some(anchored) => anchored.cost,
                    None => return Err(self.refuse("alias to an unknown anchor", at)),
                };
                // The copy nests as deep as the anchor did, below the current collection:
                // without this, anchors nested in anchors would build any depth.
                if self.stack.len() + cost.height > MAX_DEPTH {
                    return Err(self.refuse(
                        format!(
                            "lists and mappings nest deeper than {MAX_DEPTH} levels (MAX_DEPTH) \
                             once this alias is expanded"
                        ),
                        at,
                    ));
                }
                // Charged before the copy is made: a refused alias allocates nothing.
                self.charge(cost, at)?;
                let node = match self.anchors.get(&id) {
                    Some(anchored) => anchored.node.clone(),
                    None => return Err(self.refuse("alias to an unknown anchor", at)),
                };
                self.add(node, cost, at)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Adds a finished value (already charged) to the collection being built.
    fn add(&mut self, node: ConfigNode, cost: Cost, at: Location) -> Result<(), Vec<Diagnostic>> {
        let path = match self.stack.last() {
            Some(Frame::Map { key: None, .. }) => self.path(),
            _ => String::new(),
        };
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq {
                items, cost: total, ..
            }) => {
                total.include(cost);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                seen,
                key,
                cost: total,
                ..
            }) => {
                total.include(cost);
                match key.take() {
                    None => {
                        let NodeValue::Scalar(s) = node.value else {
                            return Err(vec![Diagnostic::new(
                                path,
                                "mapping keys must be plain strings, not lists or mappings",
                            )
                            .at(Some(at))]);
                        };
                        if is_duplicate(entries, seen, &s.text) {
                            let p = if path.is_empty() {
                                s.text.clone()
                            } else {
                                format!("{path}.{}", s.text)
                            };
                            return Err(
                                vec![Diagnostic::new(p, "duplicate key").at(node.location)],
                            );
                        }
                        *key = Some(MapKey {
                            name: s.text,
                            location: node.location,
                        });
                    }
                    Some(k) => entries.push((k, node)),
                }
            }
        }
        Ok(())
    }
}

/// Whether `name` is already a key of the mapping; records it otherwise.
fn is_duplicate(
    entries: &[(MapKey, ConfigNode)],
    seen: &mut Option<HashSet<String>>,
    name: &str,
) -> bool {
    if let Some(set) = seen {
        return !set.insert(name.to_string());
    }
    if entries.iter().any(|(k, _)| k.name == name) {
        return true;
    }
    if entries.len() + 1 >= LINEAR_KEY_SEARCH {
        let mut set: HashSet<String> = entries.iter().map(|(k, _)| k.name.clone()).collect();
        set.insert(name.to_string());
        *seen = Some(set);
    }
    false
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
    // A set rather than a search of `own` per merged entry: both sides may be large.
    let mut names: HashSet<String> = own.iter().map(|(k, _)| k.name.clone()).collect();
    for (k, v) in merged {
        if names.insert(k.name.clone()) {
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

    /// The "billion laughs" file of the hardening issue: `levels` anchors, each a list of
    /// `width` aliases of the one before.
    fn alias_bomb(levels: usize, width: usize) -> String {
        let mut out = format!("a0: &a0 [{}]\n", vec!["lol"; width].join(", "));
        for i in 1..levels {
            let prev = format!("*a{}", i - 1);
            out.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; width].join(", ")));
        }
        out
    }

    /// Levels of lists and mappings in a tree.
    fn depth(node: &ConfigNode) -> usize {
        match &node.value {
            NodeValue::Scalar(_) => 0,
            NodeValue::Seq(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            NodeValue::Map(entries) => 1 + entries.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        }
    }

    /// Values in a tree, mapping keys included (what the budget counts).
    fn count_nodes(node: &ConfigNode) -> usize {
        1 + match &node.value {
            NodeValue::Scalar(_) => 0,
            NodeValue::Seq(items) => items.iter().map(count_nodes).sum(),
            NodeValue::Map(entries) => entries.iter().map(|(_, v)| 1 + count_nodes(v)).sum(),
        }
    }

    #[test]
    fn the_alias_bomb_is_refused_at_the_alias_that_crosses_the_node_budget() {
        let bomb = alias_bomb(10, 10);
        assert!(bomb.len() < 800, "{}", bomb.len());
        let err = parse(&bomb).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].message.contains("node budget"), "{err:?}");
        assert!(err[0].message.contains("100000 values"), "{err:?}");
        // a4 holds 111,111 values (a_k holds about 10^(k+1)): its 8th alias of a3 is the
        // one that takes the tree past 100,000.
        assert_eq!(err[0].path, "a4[7]");
        assert_eq!(
            err[0].location,
            Some(Location {
                line: 5,
                column: 45
            })
        );
    }

    #[test]
    fn shared_defaults_used_by_many_routes_stay_well_within_the_budget() {
        let mut text = String::from(
            "defaults: &d {strip_prefix: true, preserve_host: false, methods: [GET, POST]}\nroutes:\n",
        );
        for i in 0..500 {
            text.push_str(&format!("  - {{<<: *d, name: r{i}, upstream: u}}\n"));
        }
        let doc = parse(&text).unwrap();
        let routes = doc.get("routes").unwrap().to_json();
        assert_eq!(routes.as_array().unwrap().len(), 500);
        assert_eq!(
            routes[499],
            serde_json::json!({"name": "r499", "upstream": "u", "strip_prefix": true,
                "preserve_host": false, "methods": ["GET", "POST"]})
        );
    }

    #[test]
    fn merge_keys_take_a_list_of_aliases_and_own_keys_win() {
        let doc =
            parse("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  x: 3\n").unwrap();
        assert_eq!(
            doc.get("c").unwrap().to_json(),
            serde_json::json!({"x": 3, "y": 1, "z": 2})
        );
    }

    #[test]
    fn the_budget_allows_exactly_its_limit_and_refuses_one_more() {
        let mut b = Budget::new(10);
        assert_eq!(b.nodes, limits::MIN_NODE_BUDGET);
        b.charge(Cost {
            nodes: limits::MIN_NODE_BUDGET,
            text: limits::MIN_TEXT_BUDGET,
            height: 0,
        })
        .unwrap();
        assert!(b.charge(Cost::scalar(0)).is_err());
        assert!(b
            .charge(Cost {
                nodes: 0,
                text: 1,
                height: 0
            })
            .is_err());
        // A refused charge spends nothing.
        assert_eq!(b.spent.nodes, limits::MIN_NODE_BUDGET);
        // The budget grows with the file, up to a ceiling.
        assert_eq!(
            Budget::new(1_000_000).nodes,
            1_000_000 * limits::NODES_PER_BYTE
        );
        assert_eq!(
            Budget::new(limits::MAX_FILE_BYTES as usize).nodes,
            limits::MAX_NODE_BUDGET
        );
    }

    #[test]
    fn a_long_string_aliased_many_times_is_refused_by_the_text_budget() {
        let long = "x".repeat(10_000);
        let text = format!("a: &a \"{long}\"\nb: [{}]\n", vec!["*a"; 200].join(", "));
        let err = parse(&text).unwrap_err();
        assert!(err[0].message.contains("text budget"), "{err:?}");
        assert_eq!(err[0].location.unwrap().line, 2);
    }

    #[test]
    fn alias_uses_are_capped() {
        let uses = MAX_ALIAS_USES + 1;
        let text = format!("a: &a 1\nb: [{}]\n", vec!["*a"; uses].join(","));
        let err = parse(&text).unwrap_err();
        assert!(err[0].message.contains("MAX_ALIAS_USES"), "{err:?}");
        let ok = format!("a: &a 1\nb: [{}]\n", vec!["*a"; MAX_ALIAS_USES].join(","));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn nesting_is_capped_for_flow_and_block_collections() {
        let flow = |depth: usize| format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        // `a:` holds the root mapping, one level.
        assert!(parse(&flow(MAX_DEPTH - 1)).is_ok());
        let err = parse(&flow(MAX_DEPTH)).unwrap_err();
        assert!(err[0].message.contains("MAX_DEPTH"), "{err:?}");
        assert_eq!(
            err[0].location,
            Some(Location {
                line: 1,
                column: 4 + MAX_DEPTH - 1
            })
        );
        // Block lists have no limit in the parser; a million levels must not overflow.
        let block = format!("{}x\n", "- ".repeat(1_000_000));
        let err = parse(&block).unwrap_err();
        assert!(err[0].message.contains("MAX_DEPTH"), "{err:?}");
    }

    #[test]
    fn dense_files_without_aliases_fit_the_node_budget_and_nonsense_does_not() {
        // Large enough that the budget is NODES_PER_BYTE per byte, not the floor.
        let n = 100_000;
        // Compact JSON-style lists of one-character values (0.5 values per byte), and
        // one-entry mappings (0.75), are the densest real-looking files.
        for (text, values) in [
            (format!("[{}]", "x,".repeat(n)), 1 + n),
            (format!("[{}]", "{a: b},".repeat(n)), 1 + 3 * n),
            ("- x\n".repeat(n), 1 + n),
        ] {
            assert!(limits::node_budget(text.len()) > limits::MIN_NODE_BUDGET);
            let doc = parse(&text).unwrap();
            assert_eq!(count_nodes(&doc), values);
        }
        // `[:,:,...]`: each `:,` an empty key and value, 1.5 values per byte.
        let err = parse(&format!("[{}]", ":,".repeat(n))).unwrap_err();
        assert!(err[0].message.contains("node budget"), "{err:?}");
        assert!(!err[0].message.contains("alias"), "{err:?}");
    }

    #[test]
    fn the_sample_configurations_hold_a_quarter_of_a_value_per_byte_or_less() {
        for file in ["demo.yaml", "auth-demo.yaml"] {
            let path = format!("{}/../config/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(path).unwrap();
            let values = count_nodes(&parse(&text).unwrap());
            let per_byte = values as f64 / text.len() as f64;
            eprintln!("{file}: {values} values in {} bytes", text.len());
            assert!(per_byte <= 0.25, "{file}: {per_byte:.2} values per byte");
        }
    }

    #[test]
    fn aliases_cannot_nest_past_the_depth_limit() {
        // Each anchor nests 100 levels and holds the one before: 300 levels in all.
        let level = |name: &str, inner: &str| {
            format!(
                "{name}: &{name} {}{inner}{}\n",
                "[".repeat(100),
                "]".repeat(100)
            )
        };
        let text = level("a", "x") + &level("b", "*a") + &level("c", "*b");
        let err = parse(&text).unwrap_err();
        assert!(err[0].message.contains("MAX_DEPTH"), "{err:?}");
        assert!(
            err[0].message.contains("once this alias is expanded"),
            "{err:?}"
        );
        assert_eq!(err[0].location.map(|l| l.line), Some(2));
        // An alias that fits is fine: 1 (root) + 20 + 100 levels.
        let ok = level("a", "x") + &format!("b: {}*a{}\n", "[".repeat(20), "]".repeat(20));
        assert_eq!(depth(&parse(&ok).unwrap()), 1 + 20 + 100);
    }

    #[test]
    fn duplicate_keys_are_found_in_large_mappings_too() {
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("k{i}: {i}\n"));
        }
        assert_eq!(count_nodes(&parse(&text).unwrap()), 201);
        text.push_str("k42: again\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err[0].path, "k42");
        assert_eq!(err[0].message, "duplicate key");
        assert_eq!(
            err[0].location,
            Some(Location {
                line: 101,
                column: 1
            })
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use super::{alias_bomb, count_nodes, depth};

        /// Pieces of YAML syntax, so that generated text reaches deep into the parser and
        /// the builder (anchors, aliases, merges, nesting) rather than failing at once.
        const FRAGMENTS: &[&str] = &[
            "&a ",
            "&b ",
            "*a",
            "*b",
            "*c",
            "<<: ",
            "[",
            "]",
            "{",
            "}",
            ":",
            ": ",
            ", ",
            "-",
            "- ",
            "? ",
            "'",
            "\"",
            "\n",
            "\n  ",
            "\t",
            " ",
            "x",
            "lol",
            "1",
            "#",
            "|",
            ">",
            "!!str ",
            "---\n",
            "...\n",
            "~",
            "\\",
            "%YAML 1.2\n",
        ];

        fn yamlish() -> impl Strategy<Value = String> {
            prop::collection::vec(prop::sample::select(FRAGMENTS), 0..96)
                .prop_map(|parts| parts.concat())
        }

        /// Well-formed flow YAML with anchors and aliases at random places, so that
        /// aliases do resolve and expand (random fragments rarely parse that far).
        fn anchored_flow() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("x".to_string()),
                Just("''".to_string()),
                (0..4u8).prop_map(|i| format!("*a{i}")),
            ];
            leaf.prop_recursive(6, 256, 8, |inner| {
                (
                    prop::option::of(0..4u8),
                    prop::bool::ANY,
                    prop::collection::vec(inner, 0..8),
                )
                    .prop_map(|(anchor, is_map, items)| {
                        let anchor = anchor.map(|i| format!("&a{i} ")).unwrap_or_default();
                        if is_map {
                            let entries: Vec<String> = items
                                .iter()
                                .enumerate()
                                .map(|(k, v)| format!("k{k}: {v}"))
                                .collect();
                            format!("{anchor}{{{}}}", entries.join(", "))
                        } else {
                            format!("{anchor}[{}]", items.join(", "))
                        }
                    })
            })
        }

        fn config() -> ProptestConfig {
            ProptestConfig {
                cases: 384,
                // Nothing is written into the source tree; a failure prints its input.
                failure_persistence: None,
                ..ProptestConfig::default()
            }
        }

        /// The tree is within the node budget for the text's size, and the depth limit.
        fn within_budget(text: &str) {
            if let Ok(doc) = parse(text) {
                let nodes = count_nodes(&doc);
                assert!(
                    nodes <= limits::node_budget(text.len()),
                    "{nodes} values from {} bytes",
                    text.len()
                );
                assert!(depth(&doc) <= MAX_DEPTH);
            }
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let text = String::from_utf8_lossy(&bytes);
                within_budget(&text);
                let _ = crate::config::load_str(&text);
            }

            #[test]
            fn yaml_like_text_never_panics_and_stays_within_budget(text in yamlish()) {
                within_budget(&text);
                let _ = crate::config::load_str(&text);
            }

            #[test]
            fn anchored_documents_stay_within_budget(
                docs in prop::collection::vec(anchored_flow(), 1..6),
            ) {
                // One key per document, in order, so later ones alias earlier anchors.
                let text: String = docs
                    .iter()
                    .enumerate()
                    .map(|(i, d)| format!("d{i}: {d}\n"))
                    .collect();
                within_budget(&text);
                let _ = crate::config::load_str(&text);
            }
        }

        proptest! {
            // Each case that reaches the budget builds 100,000 values: fewer cases.
            #![proptest_config(ProptestConfig { cases: 64, ..config() })]

            #[test]
            fn nested_aliases_never_exceed_the_budget(levels in 1usize..12, width in 1usize..12) {
                let text = alias_bomb(levels, width);
                match parse(&text) {
                    Ok(doc) => prop_assert!(count_nodes(&doc) <= limits::node_budget(text.len())),
                    Err(e) => prop_assert!(e[0].message.contains("budget"), "{:?}", e),
                }
            }
        }
    }
}
