//! A route's regex path rewrite (`routes[].path_rewrite`): the upstream receives the
//! path with the pattern's first match replaced, captures and all, as Envoy's
//! `regex_rewrite` and an Istio VirtualService's `uriRegexRewrite` do. A `?` in the
//! replacement starts a query, joined before the request's own.

use http::Uri;
use pingway_plugins::config::{join_path, Diagnostic};
use regex::{Regex, RegexBuilder};

use crate::config::PathRewrite;

/// The most memory a rewrite pattern may compile to.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// A compiled rewrite.
#[derive(Debug)]
pub struct CompiledRewrite {
    regex: Regex,
    replacement: String,
}

impl CompiledRewrite {
    /// The rewrite at field path `path`, reporting problems (a pattern that does not
    /// compile or is too large, a replacement naming a group the pattern lacks) into
    /// `diags`.
    pub fn compile(
        rewrite: &PathRewrite,
        path: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Box<CompiledRewrite>> {
        let regex = match RegexBuilder::new(&rewrite.regex)
            .size_limit(MAX_REGEX_BYTES)
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                diags.push(Diagnostic::new(
                    join_path(path, "regex"),
                    format!("not a usable regular expression: {e}"),
                ));
                return None;
            }
        };
        for group in referenced_groups(&rewrite.replacement) {
            let known = match group.parse::<usize>() {
                Ok(n) => n < regex.captures_len(),
                Err(_) => regex.capture_names().flatten().any(|n| n == group),
            };
            if !known {
                diags.push(Diagnostic::new(
                    join_path(path, "replacement"),
                    format!("${group} names no capture group of the pattern"),
                ));
            }
        }
        Some(Box::new(CompiledRewrite {
            regex,
            replacement: rewrite.replacement.clone(),
        }))
    }

    /// The rewritten target for `uri`, or `None` when the pattern does not match the
    /// path (or the result is not a valid request-target, which leaves it unchanged).
    pub fn apply(&self, uri: &Uri) -> Option<Uri> {
        let path = uri.path();
        if !self.regex.is_match(path) {
            return None;
        }
        let replaced = self.regex.replace(path, self.replacement.as_str());
        let (new_path, new_query) = match replaced.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (replaced.as_ref(), None),
        };
        let query = match (new_query.filter(|q| !q.is_empty()), uri.query()) {
            (Some(a), Some(b)) => format!("{a}&{b}"),
            (Some(a), None) => a.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => String::new(),
        };
        let slash = if new_path.starts_with('/') { "" } else { "/" };
        let sep = if query.is_empty() { "" } else { "?" };
        format!("{slash}{new_path}{sep}{query}").parse().ok()
    }
}

/// The groups a replacement refers to: `$1`, `${1}`, `$name`, `${name}` (`$$` is a
/// literal `$`).
fn referenced_groups(replacement: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = replacement.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'{') {
            if let Some(end) = replacement[i + 2..].find('}') {
                out.push(&replacement[i + 2..i + 2 + end]);
                i += end + 3;
                continue;
            }
        }
        let name_len = replacement[i + 1..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if name_len > 0 {
            out.push(&replacement[i + 1..i + 1 + name_len]);
        }
        i += 1 + name_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(regex: &str, replacement: &str) -> (Option<Box<CompiledRewrite>>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let r = CompiledRewrite::compile(
            &PathRewrite {
                regex: regex.into(),
                replacement: replacement.into(),
            },
            "routes[0].path_rewrite",
            &mut diags,
        );
        (r, diags)
    }

    #[test]
    fn captures_move_into_the_path_and_the_query() {
        let (r, diags) = rewrite(r"^/api/v(\d+)/(.*)", "/$2?version=$1");
        assert!(diags.is_empty(), "{diags:?}");
        let r = r.unwrap();
        let apply = |u: &str| r.apply(&u.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(
            apply("/api/v2/users/7").as_deref(),
            Some("/users/7?version=2")
        );
        assert_eq!(
            apply("/api/v2/users?page=3").as_deref(),
            Some("/users?version=2&page=3")
        );
        assert_eq!(apply("/other"), None, "no match: unchanged");
    }

    #[test]
    fn named_groups_and_braces_work_and_unknown_groups_are_refused() {
        let (r, diags) = rewrite(r"^/(?P<team>\w+)/(\w+)$", "/teams/${team}/${2}x");
        assert!(diags.is_empty(), "{diags:?}");
        let u = r.unwrap().apply(&"/blue/board".parse().unwrap()).unwrap();
        assert_eq!(u.to_string(), "/teams/blue/boardx");
        let (_, diags) = rewrite(r"^/(\w+)$", "/$2/$nope/$$");
        let msgs: Vec<_> = diags.iter().map(|d| d.message.clone()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert_eq!(diags[0].path, "routes[0].path_rewrite.replacement");
        let (r, diags) = rewrite("(", "/");
        assert!(r.is_none());
        assert_eq!(diags[0].path, "routes[0].path_rewrite.regex");
        // A pattern that would compile past the 1 MiB bound is refused, not built (the
        // regex crate's own default, 10 MiB, would take it).
        let big = r"\w{80}";
        assert!(Regex::new(big).is_ok());
        let (r, diags) = rewrite(big, "/");
        assert!(r.is_none());
        assert_eq!(diags[0].path, "routes[0].path_rewrite.regex");
    }
}
