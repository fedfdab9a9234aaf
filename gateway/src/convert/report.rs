//! What a conversion could not carry over, each item placed in the Kong file.

use std::fmt;

use crate::config::{ConfigNode, Location};
use pingway_plugins::config::parse_path;

/// How much an item matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something was left out or behaves differently: the converted file is not
    /// equivalent (the command exits 2).
    Unsupported,
    /// Converted, with a documented difference worth knowing (does not change the exit
    /// code).
    Note,
}

/// One thing the conversion reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportItem {
    /// Path in the Kong file, such as `services[2].routes[0].plugins[1]`.
    pub path: String,
    /// Where that path is written in the Kong file, when it is.
    pub location: Option<Location>,
    /// What happened, in words a user can act on.
    pub message: String,
    /// Whether the item makes the result differ from Kong.
    pub severity: Severity,
}

impl ReportItem {
    /// Renders the item prefixed by a file name: `FILE:LINE:COL: path: what`.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct InFile<'a>(&'a ReportItem, &'a str);
        impl fmt::Display for InFile<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let item = self.0;
                match item.location {
                    Some(l) => write!(f, "{}:{}:{}: ", self.1, l.line, l.column)?,
                    None => write!(f, "{}: ", self.1)?,
                }
                if !item.path.is_empty() {
                    write!(f, "{}: ", item.path)?;
                }
                if item.severity == Severity::Note {
                    f.write_str("note: ")?;
                }
                f.write_str(&item.message)
            }
        }
        InFile(self, file)
    }
}

/// Where `path` is written: a field's key, else the value's start.
fn place(doc: &ConfigNode, path: &str) -> Option<Location> {
    use pingway_plugins::config::{NodeValue, PathSegment};
    let segs = parse_path(path);
    if let Some((PathSegment::Key(last), parents)) = segs.split_last() {
        let mut node = doc;
        let mut found = true;
        for seg in parents {
            let next = match (seg, &node.value) {
                (PathSegment::Key(k), _) => node.get(k),
                (PathSegment::Index(i), NodeValue::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if let Some(at) = node.key_location(last).filter(|_| found) {
            return Some(at);
        }
    }
    doc.locate(path)
}

/// The items of one conversion, deduplicated (a service plugin copied onto several
/// routes is reported once), plus summary lines.
#[derive(Debug, Default)]
pub struct Report {
    items: Vec<ReportItem>,
    /// Tags met (ignored, summarised in one line).
    pub(crate) tags: usize,
    /// Null fields of plugin configs left out (Kong's way of writing "unset").
    pub(crate) null_fields: usize,
}

impl Report {
    /// Adds an item at `path`, placed with `doc` (the Kong document).
    pub(crate) fn add(
        &mut self,
        doc: &ConfigNode,
        path: &str,
        severity: Severity,
        message: String,
    ) {
        let item = ReportItem {
            path: path.to_string(),
            location: place(doc, path),
            message,
            severity,
        };
        if !self.items.contains(&item) {
            self.items.push(item);
        }
    }

    /// Something left out or different.
    pub(crate) fn unsupported(&mut self, doc: &ConfigNode, path: &str, message: impl Into<String>) {
        self.add(doc, path, Severity::Unsupported, message.into());
    }

    /// A documented difference.
    pub(crate) fn note(&mut self, doc: &ConfigNode, path: &str, message: impl Into<String>) {
        self.add(doc, path, Severity::Note, message.into());
    }

    /// The items in file order (those without a place last).
    pub fn items(&self) -> Vec<ReportItem> {
        let mut items = self.items.clone();
        items.sort_by_key(|i| {
            i.location
                .map_or((usize::MAX, usize::MAX), |l| (l.line, l.column))
        });
        let summary = |message: String| ReportItem {
            path: String::new(),
            location: None,
            message,
            severity: Severity::Note,
        };
        if self.tags > 0 {
            items.push(summary(format!(
                "{} tag(s) ignored: Pingway has no tags",
                self.tags
            )));
        }
        if self.null_fields > 0 {
            items.push(summary(format!(
                "{} plugin config field(s) set to null left out (null is Kong's \"unset\"; Pingway's default applies)",
                self.null_fields
            )));
        }
        items
    }

    /// Whether anything was left out or differs.
    pub fn has_unsupported(&self) -> bool {
        self.items
            .iter()
            .any(|i| i.severity == Severity::Unsupported)
    }
}
