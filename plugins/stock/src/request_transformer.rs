//! `request-transformer`: edit the request before it goes upstream, as Kong's plugin does.
//!
//! Operations `remove`, `rename`, `replace` (only what is present), `add` (only what is
//! absent) and `append`, on `headers`, `querystring` and `body`, plus `replace.uri` and
//! `http_method`. Kong's order: URI, method, headers, body, query string; within each, the
//! five operations in that order.
//!
//! The body is edited when it is `application/json` (an object; values are strings) or
//! `application/x-www-form-urlencoded`, and only when the plugin has body operations: it
//! is read whole, up to [`MAX_BUFFERED_BODY`](crate::MAX_BUFFERED_BODY) (64 KiB), and the edited body is sent with a
//! new `Content-Length`. A larger body (by its `Content-Length`) is forwarded unchanged
//! and counted ([`RequestTransformer::bodies_too_large`]).

use std::sync::atomic::{AtomicU64, Ordering};

use http::{header::CONTENT_TYPE, Method, Uri};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::transform::{
    decode_params, encode_params, is_json, HeaderOps, Lists, ParamOps, Problems,
};
use crate::{BufferedBody, Flow, Plugin, Request};

/// Lists of one operation for each part of the request.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestParts {
    /// Header entries (`name` for `remove`, `old:new` for `rename`, `name:value`
    /// otherwise).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Query-string parameter entries.
    #[serde(default)]
    pub querystring: Vec<String>,
    /// Body parameter entries (JSON object keys or form fields).
    #[serde(default)]
    pub body: Vec<String>,
}

/// `replace`: the same lists, and the upstream path.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceParts {
    /// Header entries `name:value` (replaced only when present).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Query-string entries `name:value` (replaced only when present).
    #[serde(default)]
    pub querystring: Vec<String>,
    /// Body entries `name:value` (replaced only when present).
    #[serde(default)]
    pub body: Vec<String>,
    /// The path sent upstream instead of the request's (the query string is kept).
    #[serde(default)]
    pub uri: Option<String>,
}

/// Kong's `request-transformer` configuration.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestTransformerConfig {
    /// The method sent upstream instead of the request's.
    #[serde(default)]
    pub http_method: Option<String>,
    /// Names to remove.
    #[serde(default)]
    pub remove: RequestParts,
    /// `old:new` names to rename (only when `old` is present).
    #[serde(default)]
    pub rename: RequestParts,
    /// `name:value` entries to replace (only when present), and `uri`.
    #[serde(default)]
    pub replace: ReplaceParts,
    /// `name:value` entries to add (only when absent).
    #[serde(default)]
    pub add: RequestParts,
    /// `name:value` entries to append (a further value).
    #[serde(default)]
    pub append: RequestParts,
}

/// The `request-transformer` plugin.
#[derive(Debug)]
pub struct RequestTransformer {
    uri: Option<String>,
    method: Option<Method>,
    headers: HeaderOps,
    query: ParamOps,
    body: ParamOps,
    too_large: AtomicU64,
}

impl RequestTransformer {
    /// How many bodies were forwarded unchanged because they were larger than the
    /// gateway buffers (64 KiB).
    pub fn bodies_too_large(&self) -> u64 {
        self.too_large.load(Ordering::Relaxed)
    }

    /// The edited body, or `None` to leave it as it is.
    fn edit_body(&self, content_type: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
        if is_json(content_type) {
            let mut value: Value = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Object(Default::default())
            } else {
                serde_json::from_slice(body).ok()?
            };
            self.body.apply_json(value.as_object_mut()?);
            return serde_json::to_vec(&value).ok();
        }
        if is_form(content_type) {
            let mut params = decode_params(body);
            self.body.apply(&mut params);
            return Some(encode_params(&params).into_bytes());
        }
        None
    }
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

impl RequestTransformer {
    /// Kong's `http_method` to `GET`, `HEAD` or `TRACE`: the fields of a form body are
    /// added to the query string (the body is still sent).
    async fn form_into_query(&self, req: &mut Request<'_>) -> Result<(), crate::Response> {
        if !is_form(req.header_str(CONTENT_TYPE)) {
            return Ok(());
        }
        let body = match req.read_body().await {
            Ok(BufferedBody::Complete(body)) => body,
            Ok(_) => {
                self.too_large.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Err(e) => return Err(e.response()),
        };
        let form = decode_params(&body);
        if form.is_empty() {
            return Ok(());
        }
        let mut params = decode_params(req.query().unwrap_or_default().as_bytes());
        params.extend(form);
        if let Some(uri) = uri_of(req.path(), Some(&encode_params(&params))) {
            req.set_uri(uri);
        }
        Ok(())
    }
}

/// `path?query` as a URI; `None` (keep the old one) if it does not parse.
fn uri_of(path: &str, query: Option<&str>) -> Option<Uri> {
    let pq = match query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    };
    Uri::builder().path_and_query(pq).build().ok()
}

#[async_trait::async_trait]
impl Plugin for RequestTransformer {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if let Some(path) = &self.uri {
            if let Some(uri) = uri_of(path, req.query()) {
                req.set_uri(uri);
            }
        }
        if let Some(m) = &self.method {
            req.set_method(m.clone());
            if matches!(m.as_str(), "GET" | "HEAD" | "TRACE") {
                if let Err(answer) = self.form_into_query(req).await {
                    return Flow::Respond(answer);
                }
            }
        }
        if !self.headers.is_empty() {
            self.headers.apply(req);
        }
        if !self.body.is_empty() {
            let content_type = req.header_str(CONTENT_TYPE).map(str::to_owned);
            let wanted = is_json(content_type.as_deref()) || is_form(content_type.as_deref());
            if wanted {
                match req.read_body().await {
                    Ok(BufferedBody::Complete(body)) => {
                        if let Some(new) = self.edit_body(content_type.as_deref(), &body) {
                            req.set_upstream_body(new.into());
                        }
                    }
                    Ok(_) => {
                        self.too_large.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return Flow::Respond(e.response()),
                }
            }
        }
        if !self.query.is_empty() {
            let mut params = decode_params(req.query().unwrap_or_default().as_bytes());
            self.query.apply(&mut params);
            let query = encode_params(&params);
            if let Some(uri) = uri_of(req.path(), Some(&query)) {
                req.set_uri(uri);
            }
        }
        Flow::Continue
    }
}

impl BuildPlugin for RequestTransformer {
    const NAME: &'static str = "request-transformer";
    const PRIORITY: i32 = 801;
    type Config = RequestTransformerConfig;

    fn build(c: RequestTransformerConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let method = c.http_method.as_deref().and_then(|m| {
            let up = m.to_ascii_uppercase();
            if up.is_empty() || !up.bytes().all(|b| b.is_ascii_uppercase()) {
                problems.add("http_method", "expected an HTTP method such as GET or POST");
                return None;
            }
            Method::from_bytes(up.as_bytes()).ok()
        });
        if let Some(u) = &c.replace.uri {
            if !u.starts_with('/') || u.contains('?') || uri_of(u, None).is_none() {
                problems.add("replace.uri", "expected a path starting with / (no query)");
            }
            if u.contains("$(") {
                problems.add(
                    "replace.uri",
                    "templates such as $(uri_captures.x) are not supported",
                );
            }
        }
        let headers = HeaderOps::parse(
            Lists {
                remove: &c.remove.headers,
                rename: &c.rename.headers,
                replace: &c.replace.headers,
                add: &c.add.headers,
                append: &c.append.headers,
            },
            "headers",
            &mut problems,
        );
        let query = ParamOps::parse(
            Lists {
                remove: &c.remove.querystring,
                rename: &c.rename.querystring,
                replace: &c.replace.querystring,
                add: &c.add.querystring,
                append: &c.append.querystring,
            },
            "querystring",
            &mut problems,
        );
        let body = ParamOps::parse(
            Lists {
                remove: &c.remove.body,
                rename: &c.rename.body,
                replace: &c.replace.body,
                add: &c.add.body,
                append: &c.append.body,
            },
            "body",
            &mut problems,
        );
        problems.into_result(RequestTransformer {
            uri: c.replace.uri,
            method,
            headers,
            query,
            body,
            too_large: AtomicU64::new(0),
        })
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)] // one field per line reads best here
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;
    use crate::MAX_BUFFERED_BODY;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn build(c: RequestTransformerConfig) -> RequestTransformer {
        RequestTransformer::build(c, &BuildContext::new(PluginScope::Global)).expect("valid")
    }

    #[tokio::test]
    async fn headers_follow_kongs_order() {
        let mut c = RequestTransformerConfig::default();
        c.remove.headers = v(&["x-drop"]);
        c.rename.headers = v(&["x-old:x-new"]);
        c.replace.headers = v(&["x-rep:replaced", "x-absent:no"]);
        c.add.headers = v(&["x-add:added", "x-rep:not-added"]);
        c.append.headers = v(&["x-multi:two"]);
        let p = build(c);
        let mut req = TestRequest::get("/")
            .header("x-drop", "1")
            .header("x-old", "o")
            .header("x-rep", "r")
            .header("x-multi", "one");
        assert!(req.access(&p).await.is_none());
        let h = &req.parts().headers;
        assert!(h.get("x-drop").is_none());
        assert!(h.get("x-old").is_none());
        assert_eq!(h["x-new"], "o");
        assert_eq!(h["x-rep"], "replaced");
        assert!(h.get("x-absent").is_none());
        assert_eq!(h["x-add"], "added");
        let multi: Vec<_> = h.get_all("x-multi").iter().collect();
        assert_eq!(multi, vec!["one", "two"]);
    }

    #[tokio::test]
    async fn query_method_and_uri() {
        let mut c = RequestTransformerConfig::default();
        c.http_method = Some("post".into());
        c.replace.uri = Some("/v2/items".into());
        c.remove.querystring = v(&["debug"]);
        c.rename.querystring = v(&["q:search"]);
        c.add.querystring = v(&["page:1", "limit:10"]);
        c.append.querystring = v(&["tag:b"]);
        let p = build(c);
        let mut req = TestRequest::get("/v1/items?q=shoes&debug=1&limit=5&tag=a");
        assert!(req.access(&p).await.is_none());
        assert_eq!(req.parts().method, Method::POST);
        assert_eq!(
            req.parts().uri.to_string(),
            "/v2/items?search=shoes&limit=5&tag=a&page=1&tag=b"
        );
    }

    #[tokio::test]
    async fn json_and_form_bodies_are_rewritten_with_a_new_length() {
        let mut c = RequestTransformerConfig::default();
        c.remove.body = v(&["secret"]);
        c.rename.body = v(&["name:username"]);
        c.replace.body = v(&["role:user"]);
        c.add.body = v(&["source:gateway"]);
        c.append.body = v(&["tags:new"]);
        let p = build(c);
        let mut req = TestRequest::post(
            "/",
            r#"{"name":"ann","secret":"x","role":"admin","tags":"old"}"#,
        )
        .header("content-type", "application/json");
        assert!(req.access(&p).await.is_none());
        let body: Value = serde_json::from_slice(req.upstream_body().expect("rewritten")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"username":"ann","role":"user","source":"gateway","tags":["old","new"]})
        );
        let len = req.upstream_body().map(|b| b.len().to_string());
        assert_eq!(
            req.parts().headers["content-length"].to_str().ok(),
            len.as_deref()
        );

        let mut req = TestRequest::post("/", "name=ann&secret=x&role=admin")
            .header("content-type", "application/x-www-form-urlencoded");
        assert!(req.access(&p).await.is_none());
        assert_eq!(
            req.upstream_body().map(|b| b.to_vec()),
            Some(b"username=ann&role=user&source=gateway&tags=new".to_vec())
        );

        // Neither JSON nor a form: untouched. JSON that is not an object: untouched.
        let mut req = TestRequest::post("/", "name=ann").header("content-type", "text/plain");
        assert!(req.access(&p).await.is_none());
        assert!(req.upstream_body().is_none());
        let mut req = TestRequest::post("/", "[1]").header("content-type", "application/json");
        assert!(req.access(&p).await.is_none());
        assert!(req.upstream_body().is_none());
    }

    #[tokio::test]
    async fn a_form_body_joins_the_query_when_the_method_becomes_get() {
        let mut c = RequestTransformerConfig::default();
        c.http_method = Some("GET".into());
        c.add.querystring = v(&["page:1"]);
        let p = build(c);
        let mut req = TestRequest::post("/search?q=a", "q=b&lang=en")
            .header("content-type", "application/x-www-form-urlencoded");
        assert!(req.access(&p).await.is_none());
        assert_eq!(req.parts().method, Method::GET);
        assert_eq!(
            req.parts().uri.to_string(),
            "/search?q=a&q=b&lang=en&page=1"
        );
        // Not a form: only the method changes.
        let mut req =
            TestRequest::post("/search?q=a", "{}").header("content-type", "application/json");
        assert!(req.access(&p).await.is_none());
        assert_eq!(req.parts().uri.to_string(), "/search?q=a&page=1");
    }

    #[tokio::test]
    async fn a_body_larger_than_the_buffer_passes_unchanged_and_is_counted() {
        let mut c = RequestTransformerConfig::default();
        c.add.body = v(&["a:1"]);
        let p = build(c);
        let big = vec![b'x'; MAX_BUFFERED_BODY + 1];
        let mut req =
            TestRequest::post("/", big).header("content-type", "application/x-www-form-urlencoded");
        assert!(req.access(&p).await.is_none());
        assert!(req.upstream_body().is_none());
        assert_eq!(p.bodies_too_large(), 1);
    }

    #[test]
    fn bad_entries_name_their_field() {
        let mut c = RequestTransformerConfig::default();
        c.http_method = Some("G3T".into());
        c.replace.uri = Some("no-slash".into());
        c.add.headers = v(&["bad name:x", "x-ok"]);
        c.rename.querystring = v(&["only"]);
        c.append.body = v(&["k:$(headers.a)"]);
        let e = RequestTransformer::build(c, &BuildContext::new(PluginScope::Global)).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "http_method",
                "replace.uri",
                "add.headers[0]",
                "add.headers[1]",
                "rename.querystring[0]",
                "append.body[0]"
            ]
        );
    }
}
