//! `response-transformer`: edit the response the client gets, as Kong's plugin does.
//!
//! Operations `remove`, `rename`, `replace` (only what is present), `add` (only what is
//! absent) and `append`, in that order, on `headers` (every response, proxied or
//! generated) and on the top-level keys of a `json` body (proxied JSON responses), with
//! `json_types` giving each `json` value's type.
//!
//! A JSON body is collected as it streams, up to [`MAX_JSON_BODY`] (1 MiB), edited at its
//! end and sent without `Content-Length` (the upstream's is removed first). A larger
//! body, by its `Content-Length` or as it grows, passes unchanged (the part collected is
//! sent as is) and is counted ([`ResponseTransformer::bodies_too_large`]); so does a body
//! that is compressed (`Content-Encoding`) or not a JSON object.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::transform::{is_json, renames, HeaderOps, JsonOps, Lists, Problems};
use crate::{Plugin, RequestCtx, ResponseView, UpstreamRequest};

/// The largest JSON body the plugin collects to edit (1 MiB); a larger one passes
/// unchanged.
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// Lists of one operation for headers and JSON keys.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseParts {
    /// Header entries (`name` for `remove`, `old:new` for `rename`).
    #[serde(default)]
    pub headers: Vec<String>,
    /// JSON key entries (`name` for `remove`, `old:new` for `rename`).
    #[serde(default)]
    pub json: Vec<String>,
}

/// Lists of an operation with values: `name:value` entries, and the JSON values' types.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseValues {
    /// Header entries `name:value`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// JSON entries `key:value`.
    #[serde(default)]
    pub json: Vec<String>,
    /// The type of each `json` value, by position: `string` (the default), `number` or
    /// `boolean`.
    #[serde(default)]
    pub json_types: Vec<JsonType>,
}

/// The type of a `json` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonType {
    /// A JSON string (the default).
    String,
    /// A JSON number.
    Number,
    /// `true` (the value `true`) or `false` (anything else), as Kong casts.
    Boolean,
}

/// Kong's `response-transformer` configuration.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseTransformerConfig {
    /// Names to remove.
    #[serde(default)]
    pub remove: ResponseParts,
    /// `old:new` names to rename (only when `old` is present).
    #[serde(default)]
    pub rename: ResponseParts,
    /// Entries to replace (only when present).
    #[serde(default)]
    pub replace: ResponseValues,
    /// Entries to add (only when absent).
    #[serde(default)]
    pub add: ResponseValues,
    /// Entries to append (a further header value; a JSON key becomes an array).
    #[serde(default)]
    pub append: ResponseValues,
}

/// The `response-transformer` plugin.
#[derive(Debug)]
pub struct ResponseTransformer {
    headers: HeaderOps,
    json: Option<JsonOps>,
    too_large: AtomicU64,
}

/// The state of a body being edited, in the request context (`Clone` because
/// `http::Extensions` asks it; it is never cloned).
#[derive(Debug, Clone)]
enum BodyState {
    /// Collecting the body.
    Collecting(BytesMut),
    /// Too large or given up: the rest passes as it comes.
    Passing,
}

/// The request was a `HEAD`: its response has no body.
#[derive(Debug, Clone)]
struct HeadRequest;

impl ResponseTransformer {
    /// How many JSON bodies passed unchanged because they were larger than
    /// [`MAX_JSON_BODY`].
    pub fn bodies_too_large(&self) -> u64 {
        self.too_large.load(Ordering::Relaxed)
    }

    fn edit(&self, ops: &JsonOps, body: &[u8]) -> Option<Bytes> {
        let mut value: Value = serde_json::from_slice(body).ok()?;
        ops.apply(value.as_object_mut()?);
        serde_json::to_vec(&value).ok().map(Bytes::from)
    }
}

fn typed(
    entries: &[String],
    types: &[JsonType],
    field: &str,
    problems: &mut Problems,
) -> Vec<(String, Value)> {
    let field_json = format!("{field}.json");
    if types.len() > entries.len() {
        problems.add(format!("{field}.json_types"), "has more entries than json");
    }
    let mut out = Vec::with_capacity(entries.len());
    // Positions matter: `json_types[i]` is the type of `json[i]`.
    for (i, e) in entries.iter().enumerate() {
        let f = format!("{field_json}[{i}]");
        let Some((k, v)) = e.split_once(':').filter(|(k, _)| !k.trim().is_empty()) else {
            problems.add(f, format!("expected key:value, got {e:?}"));
            continue;
        };
        let (k, v) = (k.trim().to_string(), v.to_string());
        if v.contains("$(") {
            problems.add(&f, "templates are not supported; use a literal value");
            continue;
        }
        let value = match types.get(i).copied().unwrap_or(JsonType::String) {
            JsonType::String => Value::String(v),
            JsonType::Boolean => Value::Bool(v.trim() == "true"),
            JsonType::Number => match serde_json::from_str::<serde_json::Number>(v.trim()) {
                Ok(n) => Value::Number(n),
                Err(_) => {
                    problems.add(&f, format!("{v:?} is not a number (json_types[{i}])"));
                    continue;
                }
            },
        };
        out.push((k, value));
    }
    out
}

impl Plugin for ResponseTransformer {
    fn on_upstream_request(&self, req: &mut UpstreamRequest<'_>) {
        if self.json.is_some() && req.method() == Method::HEAD {
            req.ctx_mut().extensions.insert(HeadRequest);
        }
    }

    fn on_upstream_response(&self, resp: &mut ResponseView<'_>) {
        if self.json.is_none()
            || resp.ctx().extensions.get::<HeadRequest>().is_some()
            || matches!(
                resp.status(),
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
            )
            || !is_json(resp.header_str(CONTENT_TYPE))
            || resp
                .header_str(CONTENT_ENCODING)
                .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            return;
        }
        let declared = resp
            .header_str(CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // The edited body has another length: the client gets it chunked.
        resp.remove_header(&CONTENT_LENGTH);
        let capacity = declared.map_or(8 * 1024, |n| n as usize);
        resp.ctx_mut()
            .extensions
            .insert(BodyState::Collecting(BytesMut::with_capacity(capacity)));
    }

    fn on_response(&self, resp: &mut ResponseView<'_>) {
        if !self.headers.is_empty() {
            self.headers.apply(resp);
        }
    }

    fn wants_response_body(&self) -> bool {
        self.json.is_some()
    }

    fn on_response_body(
        &self,
        chunk: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) {
        let Some(ops) = &self.json else { return };
        let Some(BodyState::Collecting(buf)) = ctx.extensions.get_mut::<BodyState>() else {
            return;
        };
        if let Some(c) = chunk.take() {
            buf.extend_from_slice(&c);
        }
        if buf.len() > MAX_JSON_BODY {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            *chunk = Some(std::mem::take(buf).freeze());
            ctx.extensions.insert(BodyState::Passing);
            return;
        }
        if !end_of_stream {
            return;
        }
        let body = std::mem::take(buf).freeze();
        ctx.extensions.insert(BodyState::Passing);
        *chunk = Some(self.edit(ops, &body).unwrap_or(body));
    }
}

impl BuildPlugin for ResponseTransformer {
    const NAME: &'static str = "response-transformer";
    const PRIORITY: i32 = 800;
    type Config = ResponseTransformerConfig;

    fn build(c: ResponseTransformerConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
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
        let json = JsonOps {
            remove: c.remove.json.iter().map(|s| s.trim().to_string()).collect(),
            rename: renames(&c.rename.json, "rename.json", &mut problems),
            replace: typed(
                &c.replace.json,
                &c.replace.json_types,
                "replace",
                &mut problems,
            ),
            add: typed(&c.add.json, &c.add.json_types, "add", &mut problems),
            append: typed(
                &c.append.json,
                &c.append.json_types,
                "append",
                &mut problems,
            ),
        };
        let has_json = !(c.remove.json.is_empty()
            && c.rename.json.is_empty()
            && c.replace.json.is_empty()
            && c.add.json.is_empty()
            && c.append.json.is_empty());
        problems.into_result(ResponseTransformer {
            headers,
            json: has_json.then_some(json),
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
    use serde_json::json;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn build(c: ResponseTransformerConfig) -> ResponseTransformer {
        ResponseTransformer::build(c, &BuildContext::new(PluginScope::Global)).expect("valid")
    }

    fn json_config() -> ResponseTransformerConfig {
        let mut c = ResponseTransformerConfig::default();
        c.remove.json = v(&["secret"]);
        c.rename.json = v(&["name:username"]);
        c.replace.json = v(&["count:2"]);
        c.replace.json_types = vec![JsonType::Number];
        c.add.json = v(&["ok:true", "via:gateway"]);
        c.add.json_types = vec![JsonType::Boolean];
        c.append.json = v(&["tags:b"]);
        c
    }

    #[test]
    fn headers_follow_kongs_order_on_any_response() {
        let mut c = ResponseTransformerConfig::default();
        c.remove.headers = v(&["server"]);
        c.rename.headers = v(&["x-old:x-new"]);
        c.replace.headers = v(&["x-rep:replaced", "x-absent:no"]);
        c.add.headers = v(&["x-add:added", "x-rep:ignored"]);
        c.append.headers = v(&["x-multi:two"]);
        let p = build(c);
        let head = TestRequest::get("/").response(
            &p,
            StatusCode::UNAUTHORIZED,
            &[
                ("server", "s"),
                ("x-old", "o"),
                ("x-rep", "r"),
                ("x-multi", "one"),
            ],
        );
        assert!(head.headers.get("server").is_none());
        assert_eq!(head.headers["x-new"], "o");
        assert!(head.headers.get("x-old").is_none());
        assert_eq!(head.headers["x-rep"], "replaced");
        assert!(head.headers.get("x-absent").is_none());
        assert_eq!(head.headers["x-add"], "added");
        let multi: Vec<_> = head.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, vec!["one", "two"]);
    }

    #[test]
    fn a_json_body_is_collected_edited_and_sent_without_content_length() {
        let p = build(json_config());
        let mut req = TestRequest::get("/");
        let head = req.upstream_response(
            &p,
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                ("content-length", "60"),
            ],
        );
        assert!(head.headers.get("content-length").is_none());
        let out = req.response_body(
            &p,
            &[
                br#"{"name":"ann","secret":"#,
                br#""x","count":1,"tags":"a"}"#,
            ],
        );
        let out: Value = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(
            out,
            json!({"username":"ann","count":2,"tags":["a","b"],"ok":true,"via":"gateway"})
        );
    }

    #[test]
    fn other_bodies_pass_unchanged() {
        let p = build(json_config());
        // Not JSON: nothing collected, Content-Length kept.
        let mut req = TestRequest::get("/");
        let head = req.upstream_response(
            &p,
            StatusCode::OK,
            &[("content-type", "text/plain"), ("content-length", "3")],
        );
        assert_eq!(head.headers["content-length"], "3");
        assert_eq!(req.response_body(&p, &[b"abc"]), b"abc");
        // JSON but not an object, or broken: sent as it came.
        for body in [&b"[1,2]"[..], b"{broken"] {
            let mut req = TestRequest::get("/");
            req.upstream_response(&p, StatusCode::OK, &[("content-type", "application/json")]);
            assert_eq!(req.response_body(&p, &[body]), body);
        }
        // Compressed: untouched.
        let mut req = TestRequest::get("/");
        let head = req.upstream_response(
            &p,
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("content-length", "2"),
            ],
        );
        assert_eq!(head.headers["content-length"], "2");
        assert_eq!(req.response_body(&p, &[b"{}"]), b"{}");
    }

    #[test]
    fn a_body_over_the_limit_passes_unchanged_and_is_counted() {
        let p = build(json_config());
        // Declared too large: not even collected.
        let mut req = TestRequest::get("/");
        let big = (MAX_JSON_BODY + 1).to_string();
        let head = req.upstream_response(
            &p,
            StatusCode::OK,
            &[
                ("content-type", "application/json"),
                ("content-length", big.as_str()),
            ],
        );
        assert_eq!(head.headers["content-length"], big.as_str());
        assert_eq!(p.bodies_too_large(), 1);
        // Growing past the limit while streaming: what was collected goes out as is.
        let mut req = TestRequest::get("/");
        req.upstream_response(&p, StatusCode::OK, &[("content-type", "application/json")]);
        let half = vec![b' '; MAX_JSON_BODY / 2 + 1];
        let tail = b"{\"secret\":1}".to_vec();
        let out = req.response_body(&p, &[&half, &half, &tail]);
        assert_eq!(out.len(), half.len() * 2 + tail.len());
        assert!(out.ends_with(&tail));
        assert_eq!(p.bodies_too_large(), 2);
    }

    #[test]
    fn bad_entries_name_their_field() {
        let mut c = ResponseTransformerConfig::default();
        c.add.json = v(&["n:abc", "novalue"]);
        c.add.json_types = vec![JsonType::Number];
        c.rename.headers = v(&["x-a"]);
        c.replace.json_types = vec![JsonType::String];
        let e = ResponseTransformer::build(c, &BuildContext::new(PluginScope::Global)).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "rename.headers[0]",
                "replace.json_types",
                "add.json[0]",
                "add.json[1]"
            ]
        );
    }
}
