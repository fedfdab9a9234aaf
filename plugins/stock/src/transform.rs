//! What `request-transformer` and `response-transformer` share: Kong's `name:value`
//! entries, parsed once at load, and the five operations (remove, rename, replace, add,
//! append) on headers, query/form parameters and JSON objects, in Kong's order.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::registry::ConfigError;

/// Problems collected while parsing a configuration, reported together.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<(String, String)>);

impl Problems {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    pub(crate) fn into_result<T>(self, ok: T) -> Result<T, ConfigError> {
        let mut it = self.0.into_iter();
        match it.next() {
            None => Ok(ok),
            Some((f, m)) => Err(it.fold(ConfigError::new(f, m), |e, (f, m)| e.and(f, m))),
        }
    }
}

/// Kong's templates (`$(headers.x)`) are not evaluated yet: reject them rather than send
/// the text literally.
fn check_template(value: &str, field: &str, problems: &mut Problems) {
    if value.contains("$(") {
        problems.add(
            field,
            "templates such as $(headers.name) are not supported; use a literal value",
        );
    }
}

/// Splits one of Kong's `name:value` entries (at the first `:`).
fn pair(entry: &str, field: &str, problems: &mut Problems) -> Option<(String, String)> {
    match entry.split_once(':') {
        Some((k, v)) if !k.trim().is_empty() => {
            check_template(v, field, problems);
            Some((k.trim().to_string(), v.to_string()))
        }
        _ => {
            problems.add(field, format!("expected name:value, got {entry:?}"));
            None
        }
    }
}

/// Splits Kong's `name:value` entries (at the first `:`).
pub(crate) fn pairs(
    entries: &[String],
    field: &str,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| pair(e, &format!("{field}[{i}]"), problems))
        .collect()
}

/// Kong's `old:new` rename entries.
pub(crate) fn renames(
    entries: &[String],
    field: &str,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        match e.split_once(':') {
            Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                out.push((a.trim().to_string(), b.trim().to_string()))
            }
            _ => problems.add(
                format!("{field}[{i}]"),
                format!("expected old:new, got {e:?}"),
            ),
        }
    }
    out
}

/// The header operations, in Kong's order, with names and values parsed.
#[derive(Debug, Default)]
pub(crate) struct HeaderOps {
    pub remove: Vec<HeaderName>,
    pub rename: Vec<(HeaderName, HeaderName)>,
    pub replace: Vec<(HeaderName, HeaderValue)>,
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub append: Vec<(HeaderName, HeaderValue)>,
}

fn header_name(s: &str, field: &str, problems: &mut Problems) -> Option<HeaderName> {
    HeaderName::from_bytes(s.as_bytes())
        .map_err(|_| problems.add(field, format!("{s:?} is not a valid header name")))
        .ok()
}

fn header_pairs(
    entries: &[String],
    field: &str,
    problems: &mut Problems,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Some((k, v)) = pair(e, &f, problems) else {
            continue;
        };
        let name = header_name(&k, &f, problems);
        let value = HeaderValue::from_str(&v)
            .map_err(|_| problems.add(&f, "the value has characters not allowed in a header"))
            .ok();
        if let (Some(n), Some(v)) = (name, value) {
            out.push((n, v));
        }
    }
    out
}

/// Lists of one kind of operand (`headers`, `querystring`, `body`, `json`) for the five
/// operations, as written in the configuration.
pub(crate) struct Lists<'a> {
    pub remove: &'a [String],
    pub rename: &'a [String],
    pub replace: &'a [String],
    pub add: &'a [String],
    pub append: &'a [String],
}

impl HeaderOps {
    pub(crate) fn parse(l: Lists<'_>, kind: &str, problems: &mut Problems) -> HeaderOps {
        let remove = l
            .remove
            .iter()
            .enumerate()
            .filter_map(|(i, n)| header_name(n.trim(), &format!("remove.{kind}[{i}]"), problems))
            .collect();
        let field = format!("rename.{kind}");
        let rename = renames(l.rename, &field, problems)
            .into_iter()
            .enumerate()
            .filter_map(|(i, (a, b))| {
                let f = format!("{field}[{i}]");
                Some((
                    header_name(&a, &f, problems)?,
                    header_name(&b, &f, problems)?,
                ))
            })
            .collect();
        HeaderOps {
            remove,
            rename,
            replace: header_pairs(l.replace, &format!("replace.{kind}"), problems),
            add: header_pairs(l.add, &format!("add.{kind}"), problems),
            append: header_pairs(l.append, &format!("append.{kind}"), problems),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.replace.is_empty()
            && self.add.is_empty()
            && self.append.is_empty()
    }

    /// Applies the operations through a view's header methods (`get` reads the current
    /// headers; `edit` writes).
    pub(crate) fn apply<V: HeaderEdit>(&self, view: &mut V) {
        for n in &self.remove {
            view.remove(n);
        }
        for (old, new) in &self.rename {
            let values: Vec<HeaderValue> = view.headers().get_all(old).iter().cloned().collect();
            if values.is_empty() {
                continue;
            }
            view.remove(old);
            view.remove(new);
            for v in values {
                view.append(new.clone(), v);
            }
        }
        for (n, v) in &self.replace {
            if view.headers().contains_key(n) {
                view.insert(n.clone(), v.clone());
            }
        }
        for (n, v) in &self.add {
            if !view.headers().contains_key(n) {
                view.insert(n.clone(), v.clone());
            }
        }
        for (n, v) in &self.append {
            view.append(n.clone(), v.clone());
        }
    }
}

/// The header methods the views have in common.
pub(crate) trait HeaderEdit {
    fn headers(&self) -> &HeaderMap;
    fn insert(&mut self, n: HeaderName, v: HeaderValue);
    fn append(&mut self, n: HeaderName, v: HeaderValue);
    fn remove(&mut self, n: &HeaderName);
}

macro_rules! header_edit {
    ($t:ty) => {
        impl crate::transform::HeaderEdit for $t {
            fn headers(&self) -> &http::HeaderMap {
                <$t>::headers(self)
            }
            fn insert(&mut self, n: http::HeaderName, v: http::HeaderValue) {
                self.insert_header(n, v)
            }
            fn append(&mut self, n: http::HeaderName, v: http::HeaderValue) {
                self.append_header(n, v)
            }
            fn remove(&mut self, n: &http::HeaderName) {
                self.remove_header(n);
            }
        }
    };
}

header_edit!(crate::Request<'_>);
header_edit!(crate::ResponseView<'_>);

/// Operations on a list of `name=value` parameters (a query string, a form body),
/// keeping their order.
#[derive(Debug, Default)]
pub(crate) struct ParamOps {
    pub remove: Vec<String>,
    pub rename: Vec<(String, String)>,
    pub replace: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub append: Vec<(String, String)>,
}

impl ParamOps {
    pub(crate) fn parse(l: Lists<'_>, kind: &str, problems: &mut Problems) -> ParamOps {
        ParamOps {
            remove: l.remove.iter().map(|s| s.trim().to_string()).collect(),
            rename: renames(l.rename, &format!("rename.{kind}"), problems),
            replace: pairs(l.replace, &format!("replace.{kind}"), problems),
            add: pairs(l.add, &format!("add.{kind}"), problems),
            append: pairs(l.append, &format!("append.{kind}"), problems),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.rename.is_empty()
            && self.replace.is_empty()
            && self.add.is_empty()
            && self.append.is_empty()
    }

    /// Applies the operations to decoded parameters.
    pub(crate) fn apply(&self, params: &mut Vec<(String, String)>) {
        params.retain(|(k, _)| !self.remove.contains(k));
        for (old, new) in &self.rename {
            if params.iter().any(|(k, _)| k == old) {
                params.retain(|(k, _)| k != new);
                for (k, _) in params.iter_mut().filter(|(k, _)| k == old) {
                    k.clone_from(new);
                }
            }
        }
        for (name, value) in &self.replace {
            // In place: the first occurrence takes the value, later ones go.
            let mut seen = false;
            params.retain_mut(|(k, v)| {
                if k != name {
                    return true;
                }
                if seen {
                    return false;
                }
                seen = true;
                v.clone_from(value);
                true
            });
        }
        for (name, value) in &self.add {
            if !params.iter().any(|(k, _)| k == name) {
                params.push((name.clone(), value.clone()));
            }
        }
        for (name, value) in &self.append {
            params.push((name.clone(), value.clone()));
        }
    }

    /// Applies the operations to a JSON object, with string values; `append` makes an
    /// array (Kong's `append_value`).
    pub(crate) fn apply_json(&self, obj: &mut Map<String, Value>) {
        JsonOps {
            remove: self.remove.clone(),
            rename: self.rename.clone(),
            replace: to_json(&self.replace),
            add: to_json(&self.add),
            append: to_json(&self.append),
        }
        .apply(obj)
    }
}

fn to_json(pairs: &[(String, String)]) -> Vec<(String, Value)> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// Operations on the top-level keys of a JSON object (keys with dots are plain keys, as
/// with Kong's default `dots_in_keys: true`).
#[derive(Debug, Default)]
pub(crate) struct JsonOps {
    pub remove: Vec<String>,
    pub rename: Vec<(String, String)>,
    pub replace: Vec<(String, Value)>,
    pub add: Vec<(String, Value)>,
    pub append: Vec<(String, Value)>,
}

impl JsonOps {
    pub(crate) fn apply(&self, obj: &mut Map<String, Value>) {
        for k in &self.remove {
            obj.remove(k);
        }
        for (old, new) in &self.rename {
            if let Some(v) = obj.remove(old) {
                obj.insert(new.clone(), v);
            }
        }
        for (k, v) in &self.replace {
            if let Some(slot) = obj.get_mut(k) {
                *slot = v.clone();
            }
        }
        for (k, v) in &self.add {
            if !obj.contains_key(k) {
                obj.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in &self.append {
            let slot = obj.entry(k.clone()).or_insert(Value::Null);
            match slot {
                Value::Array(a) => a.push(v.clone()),
                Value::Null => *slot = Value::Array(vec![v.clone()]),
                other => *other = Value::Array(vec![other.take(), v.clone()]),
            }
        }
    }
}

/// Decodes `a=1&b=2` (form-urlencoded) into ordered pairs.
pub(crate) fn decode_params(s: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(s).into_owned().collect()
}

/// Encodes ordered pairs as form-urlencoded text.
pub(crate) fn encode_params(params: &[(String, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// Whether a `Content-Type` is JSON (`application/json`, `application/*+json`).
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.split(';').next().unwrap_or_default().trim();
        ct.eq_ignore_ascii_case("application/json")
            || (ct.len() > 17
                && ct[..12].eq_ignore_ascii_case("application/")
                && ct.to_ascii_lowercase().ends_with("+json"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[(&str, &str)]) -> Vec<(String, String)> {
        s.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn params_follow_kongs_order() {
        let ops = ParamOps {
            remove: vec!["drop".into()],
            rename: p(&[("old", "new")]),
            replace: p(&[("r", "R"), ("absent", "x")]),
            add: p(&[("a", "A"), ("r", "no")]),
            append: p(&[("m", "2")]),
        };
        let mut params = p(&[("drop", "1"), ("old", "o"), ("r", "1"), ("m", "1")]);
        ops.apply(&mut params);
        assert_eq!(
            params,
            p(&[("new", "o"), ("r", "R"), ("m", "1"), ("a", "A"), ("m", "2")])
        );
    }

    #[test]
    fn json_append_makes_arrays() {
        let ops = JsonOps {
            append: vec![
                ("s".into(), json!("b")),
                ("arr".into(), json!(3)),
                ("new".into(), json!("x")),
            ],
            ..Default::default()
        };
        let mut v = json!({"s": "a", "arr": [1, 2]});
        ops.apply(v.as_object_mut().unwrap());
        assert_eq!(v, json!({"s": ["a", "b"], "arr": [1, 2, 3], "new": ["x"]}));
    }

    #[test]
    fn entries_are_checked() {
        let mut problems = Problems::default();
        let l = [String::from("novalue"), String::from("x:$(headers.a)")];
        pairs(&l, "add.headers", &mut problems);
        let e = problems.into_result(()).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["add.headers[0]", "add.headers[1]"]);
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
