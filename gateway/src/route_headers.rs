//! A route's header edits (`routes[].request_headers`, `routes[].response_headers`), as
//! an Istio VirtualService's `headers.request` / `headers.response`: names and values
//! parsed once at load, applied as `remove`, then `set`, then `add`.

use http::{HeaderName, HeaderValue};
use pingway_plugins::config::{join_path, Diagnostic};
use pingway_plugins::{RequestHead, ResponseHead};

use crate::config::HeaderEdits;

/// Names a route may not edit: they frame the message or the connection, which the
/// gateway and Pingora own.
const FRAMING: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// Compiled header edits.
#[derive(Debug, Default)]
pub struct CompiledEdits {
    remove: Box<[HeaderName]>,
    set: Box<[(HeaderName, HeaderValue)]>,
    add: Box<[(HeaderName, HeaderValue)]>,
}

impl CompiledEdits {
    /// The edits of `edits` (at field path `path`), reporting every problem with its
    /// field into `diags`; `None` when there are none.
    pub fn compile(
        edits: &HeaderEdits,
        path: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Box<CompiledEdits>> {
        if edits.is_empty() {
            return None;
        }
        let mut remove = Vec::new();
        for (i, n) in edits.remove.iter().enumerate() {
            if let Some(h) = name(n, join_path(path, &format!("remove[{i}]")), diags) {
                remove.push(h);
            }
        }
        let set = pairs(&edits.set, &join_path(path, "set"), diags);
        let add = pairs(&edits.add, &join_path(path, "add"), diags);
        Some(Box::new(CompiledEdits {
            remove: remove.into(),
            set: set.into(),
            add: add.into(),
        }))
    }

    /// How many headers the edits set or add at most (to size a header map once).
    pub fn added(&self) -> usize {
        self.set.len() + self.add.len()
    }

    /// Applies the edits to a request head.
    pub fn apply_request(&self, head: &mut dyn RequestHead) {
        for n in self.remove.iter() {
            head.remove_header(n);
        }
        for (n, v) in self.set.iter() {
            head.insert_header(n.clone(), v.clone());
        }
        for (n, v) in self.add.iter() {
            head.append_header(n.clone(), v.clone());
        }
    }

    /// Applies the edits to a response head.
    pub fn apply_response(&self, head: &mut dyn ResponseHead) {
        for n in self.remove.iter() {
            head.remove_header(n);
        }
        for (n, v) in self.set.iter() {
            head.insert_header(n.clone(), v.clone());
        }
        for (n, v) in self.add.iter() {
            head.append_header(n.clone(), v.clone());
        }
    }
}

/// A header name a route may edit, or a problem at `at`.
fn name(n: &str, at: String, diags: &mut Vec<Diagnostic>) -> Option<HeaderName> {
    match HeaderName::from_bytes(n.as_bytes()) {
        Ok(h) if FRAMING.contains(&h.as_str()) => {
            diags.push(Diagnostic::new(
                at,
                format!("{n:?} frames the message or the connection and cannot be edited"),
            ));
            None
        }
        Ok(h) => Some(h),
        Err(_) => {
            diags.push(Diagnostic::new(
                at,
                format!("{n:?} is not a valid header name"),
            ));
            None
        }
    }
}

/// The name-value pairs of a `set` or `add` map at `path`.
fn pairs(
    map: &std::collections::BTreeMap<String, String>,
    path: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (n, v) in map {
        let at = join_path(path, n);
        let Some(h) = name(n, at.clone(), diags) else {
            continue;
        };
        match HeaderValue::from_str(v) {
            Ok(v) => out.push((h, v)),
            Err(_) => diags.push(Diagnostic::new(at, "not a valid header value")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(remove: &[&str], set: &[(&str, &str)], add: &[(&str, &str)]) -> HeaderEdits {
        HeaderEdits {
            remove: remove.iter().map(|s| s.to_string()).collect(),
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            add: add
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn remove_then_set_then_add() {
        let mut diags = Vec::new();
        let e = CompiledEdits::compile(
            &edits(&["x-drop"], &[("x-env", "prod")], &[("x-tag", "b")]),
            "routes[0].request_headers",
            &mut diags,
        )
        .expect("edits");
        assert!(diags.is_empty(), "{diags:?}");
        let mut parts = http::Request::builder()
            .header("x-drop", "1")
            .header("x-env", "dev")
            .header("x-tag", "a")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        e.apply_request(&mut crate::plugin_host::UpstreamHead::Plain(&mut parts));
        let h = &parts.headers;
        assert!(h.get("x-drop").is_none());
        assert_eq!(h.get_all("x-env").iter().collect::<Vec<_>>(), ["prod"]);
        assert_eq!(h.get_all("x-tag").iter().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn bad_names_values_and_framing_headers_are_refused_with_their_fields() {
        let mut diags = Vec::new();
        CompiledEdits::compile(
            &edits(
                &["bad name"],
                &[("content-length", "1")],
                &[("x-ok", "bad\nvalue")],
            ),
            "routes[0].request_headers",
            &mut diags,
        );
        let fields: Vec<_> = diags.iter().map(|d| d.path.clone()).collect();
        assert_eq!(
            fields,
            [
                "routes[0].request_headers.remove[0]",
                "routes[0].request_headers.set.content-length",
                "routes[0].request_headers.add.x-ok",
            ]
        );
        assert!(CompiledEdits::compile(&HeaderEdits::default(), "x", &mut diags).is_none());
    }
}
