//! Path conditions: checking and compiling configured paths, and walking a request path's
//! element boundaries for prefix lookups.

use regex::Regex;

use super::normalize::normalize_path;
use crate::config::PathMatch;

/// A configured path condition, compiled.
#[derive(Debug, Clone)]
pub(crate) enum PathCondition {
    /// The whole (normalized) path equals this.
    Exact(String),
    /// The path starts with these elements. Stored without a trailing slash, so the root
    /// prefix `/` is the empty string.
    Prefix(String),
    /// Anchored at the start of the path.
    Regex {
        /// The pattern as written, which identifies "the same condition" across routes.
        source: String,
        /// The pattern anchored with `^(?:...)` unless it already starts with `^`.
        regex: Regex,
    },
}

impl PathCondition {
    /// The condition of a route without paths: every path.
    pub(crate) fn any() -> PathCondition {
        PathCondition::Prefix(String::new())
    }

    /// Checks a configured path and compiles it, or says what is wrong with it.
    ///
    /// Exact and prefix paths are normalized like request paths are (`/a/./b` is `/a/b`),
    /// so a condition can match what `normalize_path` makes of a request.
    pub(crate) fn compile(m: &PathMatch) -> Result<PathCondition, String> {
        match m {
            PathMatch::Exact(p) => Ok(PathCondition::Exact(check_plain(p)?)),
            PathMatch::Prefix(p) => {
                let p = check_plain(p)?;
                Ok(PathCondition::Prefix(p.trim_end_matches('/').to_string()))
            }
            PathMatch::Regex(source) => {
                // Checked as written first: wrapping an invalid pattern in `^(?:...)` can
                // make it valid (`)|(` becomes `^(?:)|()`), and its error would be confusing.
                Regex::new(source).map_err(|e| regex_error(&e))?;
                let anchored = if source.starts_with('^') {
                    source.clone()
                } else {
                    format!("^(?:{source})")
                };
                let regex = Regex::new(&anchored).map_err(|e| regex_error(&e))?;
                Ok(PathCondition::Regex {
                    source: source.clone(),
                    regex,
                })
            }
        }
    }
}

/// An exact or prefix path: starts with `/`, has no query, fragment, space or control
/// character. Returns it normalized.
fn check_plain(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("path {p:?} must start with `/`"));
    }
    if let Some(c) = p.chars().find(|c| matches!(c, '?' | '#')) {
        return Err(format!(
            "path {p:?} contains {c:?}; queries and fragments are not matched"
        ));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "path {p:?} contains a space or control character; percent-encode it"
        ));
    }
    Ok(normalize_path(p).into_owned())
}

/// The prefix keys a request path can match, longest first: the path without trailing
/// slashes, then cut at each `/` back to the root (the empty key).
/// `/api/users/` gives `/api/users`, `/api`, ``.
pub(crate) fn prefix_keys(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path.trim_end_matches('/'));
    std::iter::from_fn(move || {
        let key = next?;
        next = match key.rfind('/') {
            Some(cut) => Some(&key[..cut]),
            None if key.is_empty() => None,
            None => Some(""),
        };
        Some(key)
    })
}

/// A regex error on one line. The regex crate's own message draws a caret diagram over
/// several lines; diagnostics are one line each, and their position already points at
/// the pattern.
pub(crate) fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().next().unwrap_or("invalid pattern"));
    format!("invalid regular expression: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_keys_walk_element_boundaries() {
        let keys = |p| prefix_keys(p).collect::<Vec<_>>();
        assert_eq!(
            keys("/api/users/42"),
            ["/api/users/42", "/api/users", "/api", ""]
        );
        assert_eq!(keys("/api/users/"), ["/api/users", "/api", ""]);
        assert_eq!(keys("/"), [""]);
        assert_eq!(keys(""), [""]);
        assert_eq!(keys("*"), ["*", ""]);
    }

    #[test]
    fn compiles_paths() {
        let prefix = |p: &str| match PathCondition::compile(&PathMatch::Prefix(p.into())) {
            Ok(PathCondition::Prefix(k)) => k,
            other => panic!("{other:?}"),
        };
        assert_eq!(prefix("/"), "");
        assert_eq!(prefix("/foo/"), "/foo");
        assert_eq!(prefix("/foo"), "/foo");
        assert_eq!(prefix("/a/./b//c/"), "/a/b/c");
        let anchored = |p: &str| match PathCondition::compile(&PathMatch::Regex(p.into())) {
            Ok(PathCondition::Regex { regex, .. }) => regex.as_str().to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(anchored("/a|/b"), "^(?:/a|/b)");
        assert_eq!(anchored("^/x$"), "^/x$");
        assert!(PathCondition::compile(&PathMatch::Regex(")|(".into())).is_err());
    }
}
