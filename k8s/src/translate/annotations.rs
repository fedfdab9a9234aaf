//! The route annotations, ours (`pingway.io/…`) and Kong's (`konghq.com/…`) read the
//! same, where Kong's controller reads them: on the Ingress `strip-path`,
//! `preserve-host`, `methods`, `protocols`, `headers.<name>`,
//! `https-redirect-status-code` and `regex-priority`; on the Service `path` and
//! `host-header` (and, in `backend.rs`, the timeouts, `retries`, `protocol`; the
//! `plugins` of both are resolved by the caller). A value that does not parse is
//! ignored with a problem naming its object; the rest of the object still applies.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Map, Value};

use super::{annotation, comma_list, Problem};

/// What an Ingress's annotations set on each of its routes.
#[derive(Default)]
pub struct RouteAnnotations {
    /// Route fields (`strip_prefix`, `methods`, `headers`, ...).
    pub fields: Map<String, Value>,
    /// `regex-priority`: routes with a higher one come first in the file (0 if unset).
    pub priority: i64,
}

/// The prefixes under which header-match annotations are written.
const HEADER_PREFIXES: [&str; 2] = ["pingway.io/headers.", "konghq.com/headers."];

/// Reads the route annotations of an Ingress (`kind`/`meta` name it in problems).
pub fn route(
    kind: &'static str,
    meta: &ObjectMeta,
    problems: &mut Vec<Problem>,
) -> RouteAnnotations {
    let mut out = RouteAnnotations::default();
    let m = &mut out.fields;
    let mut bad = |what: String| problems.push(Problem::new(kind, meta, what));
    let flag =
        |name: &str, v: &str, bad: &mut dyn FnMut(String)| match v.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                bad(format!(
                    "annotation {name} `{v}` ignored: use true or false"
                ));
                None
            }
        };
    if let Some(v) = annotation(meta, "strip-path") {
        if let Some(b) = flag("strip-path", v, &mut bad) {
            m.insert("strip_prefix".into(), json!(b));
        }
    }
    // Kong's controller forwards the client's Host by default; so does this one.
    let preserve = annotation(meta, "preserve-host")
        .and_then(|v| flag("preserve-host", v, &mut bad))
        .unwrap_or(true);
    m.insert("preserve_host".into(), json!(preserve));
    if let Some(v) = annotation(meta, "methods") {
        let methods: Vec<String> = comma_list(v)
            .into_iter()
            .map(|s| s.to_ascii_uppercase())
            .collect();
        if !methods.is_empty() && methods.iter().all(|m| is_token(m)) {
            m.insert("methods".into(), json!(methods));
        } else {
            bad(format!(
                "annotation methods `{v}` ignored: a comma list of method names"
            ));
        }
    }
    if let Some(v) = annotation(meta, "protocols") {
        let protocols: Vec<String> = comma_list(v)
            .into_iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if protocols.iter().all(|p| p == "http" || p == "https") && !protocols.is_empty() {
            m.insert("protocols".into(), json!(protocols));
        } else {
            bad(format!(
                "annotation protocols `{v}` ignored: only http and https apply"
            ));
        }
    }
    if let Some(v) = annotation(meta, "https-redirect-status-code") {
        match v.parse::<u16>() {
            Ok(code) if [301, 302, 307, 308, 426].contains(&code) => {
                m.insert("https_redirect_status_code".into(), json!(code));
            }
            _ => bad(format!(
                "annotation https-redirect-status-code `{v}` ignored: use 301, 302, 307, 308 or 426"
            )),
        }
    }
    if let Some(v) = annotation(meta, "regex-priority") {
        match v.parse::<i64>() {
            Ok(p) => out.priority = p,
            Err(_) => bad(format!(
                "annotation regex-priority `{v}` ignored: an integer"
            )),
        }
    }
    let headers = header_matches(meta, &mut bad);
    if !headers.is_empty() {
        out.fields.insert("headers".into(), Value::Array(headers));
    }
    out
}

/// `konghq.com/headers.x-foo: "a,b"`: the header `x-foo` must be present with one of
/// the values, compared case-insensitively (as Kong does); a value written `~*re` is a
/// regular expression (Kong's syntax). Ours win over Kong's for the same header.
fn header_matches(meta: &ObjectMeta, bad: &mut dyn FnMut(String)) -> Vec<Value> {
    let mut by_name: std::collections::BTreeMap<String, Value> = Default::default();
    let Some(anns) = meta.annotations.as_ref() else {
        return Vec::new();
    };
    // Kong's first, so that ours replace them.
    for prefix in HEADER_PREFIXES.iter().rev() {
        for (k, v) in anns {
            let Some(name) = k.strip_prefix(prefix) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if !is_token(&name) || name == "host" {
                bad(format!(
                    "annotation {k} ignored: `{name}` is not a header name that routes can match (hosts come from the rules)"
                ));
                continue;
            }
            let v = v.trim();
            let matcher = if let Some(re) = v.strip_prefix("~*") {
                if re.is_empty() {
                    bad(format!(
                        "annotation {k} ignored: an empty regular expression"
                    ));
                    continue;
                }
                json!({"name": name, "regex": format!("(?i){re}")})
            } else {
                let values = comma_list(v);
                if values.is_empty() || values.iter().any(|x| x.chars().any(char::is_control)) {
                    bad(format!(
                        "annotation {k} ignored: a comma list of header values"
                    ));
                    continue;
                }
                let alternatives: Vec<String> = values.iter().map(|x| escape(x)).collect();
                json!({"name": name, "regex": format!("^(?i:{})$", alternatives.join("|"))})
            };
            by_name.insert(name, matcher);
        }
    }
    by_name.into_values().collect()
}

/// What a Service's annotations set on the routes to it. `preserve_host` is the
/// route's: as in Kong, `host-header` applies only to routes that do not forward the
/// client's Host (`konghq.com/preserve-host: "false"`); `ingress` names the route's
/// Ingress when it has no effect for that reason.
pub fn service(
    meta: &ObjectMeta,
    preserve_host: bool,
    ingress: &ObjectMeta,
    problems: &mut Vec<Problem>,
) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(v) = annotation(meta, "host-header") {
        if is_host(v) && preserve_host {
            problems.push(Problem::new(
                "Service",
                meta,
                format!(
                    "annotation host-header has no effect on the routes of Ingress {}/{}: they preserve the client's Host (annotate the Ingress preserve-host: \"false\", as with Kong)",
                    ingress.namespace.as_deref().unwrap_or(""),
                    ingress.name.as_deref().unwrap_or("")
                ),
            ));
        } else if is_host(v) {
            m.insert("request_headers".into(), json!({"set": {"host": v}}));
        } else {
            problems.push(Problem::new(
                "Service",
                meta,
                format!("annotation host-header `{v}` ignored: a host name, optionally with :port"),
            ));
        }
    }
    if let Some(v) = annotation(meta, "path") {
        if is_upstream_path(v) {
            let base = v.trim_end_matches('/');
            if !base.is_empty() {
                // The Service's path in front of the request's (after strip-path), as
                // Kong joins a service path (`path_handling: v0`), and as `pingway
                // convert` writes it: `^/$` turns `/` into the base itself, the empty
                // match at `^` puts the base in front of any other path.
                m.insert(
                    "path_rewrite".into(),
                    json!({"regex": "^/$|^", "replacement": base}),
                );
            }
        } else {
            problems.push(Problem::new(
                "Service",
                meta,
                format!("annotation path `{v}` ignored: an absolute path of unreserved characters (no `$`, `?`, `#`, spaces)"),
            ));
        }
    }
    m
}

/// An HTTP token (method or header name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `name`, `name:port`, or `[v6]:port`.
fn is_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (s, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    host_ok && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0))
}

/// An absolute path the upstream can be given as a prefix.
fn is_upstream_path(s: &str) -> bool {
    s.starts_with('/')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%!&'()*+,;=:@".contains(&b))
}

/// `s` with the regular expression's special characters escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths_are_checked() {
        for ok in ["example.com", "a.b:8080", "[::1]:80", "svc"] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in ["", "a b", "a.com:0", "a.com:x", "a/b", "a.com:70000"] {
            assert!(!is_host(bad), "{bad}");
        }
        assert!(is_upstream_path("/api/v1"));
        for bad in ["api", "/a b", "/a$1", "/a?b", "/a#b"] {
            assert!(!is_upstream_path(bad), "{bad}");
        }
        assert_eq!(escape("a.b*c"), "a\\.b\\*c");
    }
}
