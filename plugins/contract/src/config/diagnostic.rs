//! Problems found in a configuration, each tied to a field path and a place in the file.

use std::fmt;

/// A position in a configuration file: 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in a configuration: where it is (field path and, when known, file
/// position) and what is wrong.
///
/// Rendered as `LINE:COLUMN: path: message` (or `path: message` without a position);
/// the CLI prefixes the file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Dotted field path from the document root, such as `routes[0].plugins[1].config.minute`.
    /// Empty for the document itself.
    pub path: String,
    /// What is wrong, in words a user can act on.
    pub message: String,
    /// Where in the file, when the configuration came from a file.
    pub location: Option<Location>,
}

impl Diagnostic {
    /// A problem at `path` with no known file position (yet).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.into(),
            message: message.into(),
            location: None,
        }
    }

    /// The same problem, placed at `location`.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Renders the problem prefixed by a file name: `FILE:LINE:COLUMN: path: message`.
    pub fn display_in<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        struct InFile<'a>(&'a Diagnostic, &'a str);
        impl fmt::Display for InFile<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0.location {
                    Some(_) => write!(f, "{}:{}", self.1, self.0),
                    None => write!(f, "{}: {}", self.1, self.0),
                }
            }
        }
        InFile(self, file)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = self.location {
            write!(f, "{loc}: ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Joins a parent field path and a child segment with the dotted/indexed syntax used in
/// diagnostics: `join_path("routes[0]", "name")` is `routes[0].name`.
pub fn join_path(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else if child.is_empty() {
        parent.to_string()
    } else if child.starts_with('[') {
        format!("{parent}{child}")
    } else {
        format!("{parent}.{child}")
    }
}
