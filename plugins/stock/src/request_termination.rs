//! `request-termination`: answer at the gateway instead of proxying, as Kong's plugin does.
//!
//! - `status_code` (503) with `{"message": ...}`: `message`, or Kong's default for the
//!   status (`Service unavailable` for 503; no body for a status Kong has no text for);
//! - or `body` with `content_type`, sent as is;
//! - or, with `echo`, a JSON copy of the request (for debugging a live route);
//! - only when the `trigger` header or query parameter is present, if `trigger` is set.
//!
//! Its priority (2) is Kong's: authentication and rate limits still apply to a
//! terminated route.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::transform::{decode_params, is_json, Problems};
use crate::{Body, BufferedBody, Flow, Plugin, Request, Response};

/// Kong's `request-termination` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestTerminationConfig {
    /// The status of the answer (100 to 599; default 503).
    #[serde(default = "default_status")]
    pub status_code: u16,
    /// The message of the JSON answer (default: Kong's text for the status).
    #[serde(default)]
    pub message: Option<String>,
    /// The `Content-Type` of `body` (needs `body`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// A raw body sent instead of the JSON message.
    #[serde(default)]
    pub body: Option<String>,
    /// Answers with a JSON copy of the request (default false).
    #[serde(default)]
    pub echo: bool,
    /// Terminates only requests with this header or query parameter.
    #[serde(default)]
    pub trigger: Option<String>,
}

fn default_status() -> u16 {
    503
}

/// Kong's default messages (`DEFAULT_RESPONSE` of the handler).
fn default_message(status: u16) -> Option<&'static str> {
    Some(match status {
        401 => "Unauthorized",
        404 => "Not found",
        405 => "Method not allowed",
        500 => "An unexpected error occurred",
        502 => "Bad Gateway",
        503 => "Service unavailable",
        _ => return None,
    })
}

/// The `request-termination` plugin.
#[derive(Debug)]
pub struct RequestTermination {
    status: StatusCode,
    message: Option<String>,
    /// `body` with its content type, ready to send.
    raw: Option<(HeaderValue, Bytes)>,
    echo: bool,
    trigger: Option<(HeaderName, String)>,
}

impl RequestTermination {
    fn triggered(&self, req: &Request<'_>) -> bool {
        let Some((header, query_name)) = &self.trigger else {
            return true;
        };
        req.headers().contains_key(header)
            || req.query().is_some_and(|q| {
                decode_params(q.as_bytes())
                    .iter()
                    .any(|(k, _)| k == query_name)
            })
    }

    async fn echo(&self, req: &mut Request<'_>) -> Value {
        let mut headers: BTreeMap<&str, Value> = BTreeMap::new();
        for (name, value) in req.headers() {
            let v = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
            headers
                .entry(name.as_str())
                .and_modify(|e| match e {
                    Value::Array(a) => a.push(v.clone()),
                    other => *other = Value::Array(vec![other.take(), v.clone()]),
                })
                .or_insert(v);
        }
        let headers = json!(headers);
        let mut query: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in decode_params(req.query().unwrap_or_default().as_bytes()) {
            let v = Value::String(v);
            match query.get_mut(&k) {
                Some(Value::Array(a)) => a.push(v),
                Some(other) => *other = Value::Array(vec![other.take(), v]),
                None => {
                    query.insert(k, v);
                }
            }
        }
        let content_type = req
            .header_str(http::header::CONTENT_TYPE)
            .map(str::to_owned);
        // Bounded by the gateway's body buffer (64 KiB); a larger body is not echoed.
        let raw = match req.read_body().await {
            Ok(BufferedBody::Complete(b)) if !b.is_empty() => Some(b),
            _ => None,
        };
        let body = raw.as_ref().and_then(|b| {
            if is_json(content_type.as_deref()) {
                serde_json::from_slice::<Value>(b).ok()
            } else {
                None
            }
        });
        json!({
            "message": self.message.as_deref().or(default_message(self.status.as_u16())),
            "request": {
                "host": req.header_str(http::header::HOST),
                "headers": headers,
                "query": query,
                "body": body,
                "raw_body": raw.map(|b| String::from_utf8_lossy(&b).into_owned()),
                "method": req.method().as_str(),
                "path": req.path(),
            },
            "matched_route": req.ctx().route.as_ref().map(|r| json!({"name": &*r.name})),
        })
    }
}

#[async_trait::async_trait]
impl Plugin for RequestTermination {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if !self.triggered(req) {
            return Flow::Continue;
        }
        if self.echo {
            let doc = self.echo(req).await;
            return Flow::Respond(Response::json(self.status, doc));
        }
        if let Some((content_type, bytes)) = &self.raw {
            let mut r = Response::empty(self.status);
            r.body = Body::Raw {
                content_type: content_type.clone(),
                bytes: bytes.clone(),
            };
            return Flow::Respond(r);
        }
        let message = self
            .message
            .clone()
            .map(std::borrow::Cow::Owned)
            .or_else(|| default_message(self.status.as_u16()).map(std::borrow::Cow::Borrowed));
        Flow::Respond(match message {
            Some(m) => Response::error(self.status, m),
            None => Response::empty(self.status),
        })
    }
}

impl BuildPlugin for RequestTermination {
    const NAME: &'static str = "request-termination";
    const PRIORITY: i32 = 2;
    type Config = RequestTerminationConfig;

    fn build(c: RequestTerminationConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let status = StatusCode::from_u16(c.status_code)
            .ok()
            .filter(|s| (100..=599).contains(&s.as_u16()));
        if status.is_none() {
            problems.add("status_code", "must be between 100 .. 599");
        }
        let present = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
        if present(&c.message) && (present(&c.content_type) || present(&c.body)) {
            problems.add("", "message cannot be used with content_type or body");
        }
        if present(&c.content_type) && !present(&c.body) {
            problems.add("", "content_type requires a body");
        }
        if c.echo && (present(&c.content_type) || present(&c.body)) {
            problems.add("", "echo cannot be used with content_type and body");
        }
        let raw = match c.body.as_deref().filter(|b| !b.is_empty()) {
            None => None,
            Some(body) => {
                let ct = c
                    .content_type
                    .as_deref()
                    .unwrap_or("text/plain; charset=utf-8");
                match HeaderValue::from_str(ct) {
                    Ok(v) => Some((v, Bytes::from(body.to_owned()))),
                    Err(_) => {
                        problems.add("content_type", "not a valid header value");
                        None
                    }
                }
            }
        };
        let trigger = match c.trigger.as_deref() {
            None => None,
            Some(t) => match HeaderName::from_bytes(t.as_bytes()) {
                Ok(h) => Some((h, t.to_string())),
                Err(_) => {
                    problems.add("trigger", format!("{t:?} is not a valid header name"));
                    None
                }
            },
        };
        let instance = RequestTermination {
            status: status.unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            message: c.message.filter(|m| !m.is_empty()),
            raw,
            echo: c.echo,
            trigger,
        };
        problems.into_result(instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;

    fn config() -> RequestTerminationConfig {
        RequestTerminationConfig {
            status_code: 503,
            message: None,
            content_type: None,
            body: None,
            echo: false,
            trigger: None,
        }
    }

    fn build(c: RequestTerminationConfig) -> RequestTermination {
        RequestTermination::build(c, &BuildContext::new(PluginScope::Global)).expect("valid")
    }

    fn message(r: &Response) -> Option<&str> {
        match &r.body {
            Body::Message(m) => Some(m),
            _ => None,
        }
    }

    #[tokio::test]
    async fn defaults_answer_503_service_unavailable() {
        let r = TestRequest::get("/")
            .access(&build(config()))
            .await
            .expect("answered");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(message(&r), Some("Service unavailable"));
        // A status without Kong text: no body.
        let mut c = config();
        c.status_code = 418;
        let r = TestRequest::get("/")
            .access(&build(c))
            .await
            .expect("answered");
        assert_eq!(r.status.as_u16(), 418);
        assert!(matches!(r.body, Body::Empty));
        let mut c = config();
        c.status_code = 403;
        c.message = Some("So long".into());
        let r = TestRequest::get("/")
            .access(&build(c))
            .await
            .expect("answered");
        assert_eq!((r.status.as_u16(), message(&r)), (403, Some("So long")));
    }

    #[tokio::test]
    async fn a_raw_body_goes_out_with_its_content_type() {
        let mut c = config();
        c.status_code = 200;
        c.body = Some("<h1>maintenance</h1>".into());
        c.content_type = Some("text/html".into());
        let r = TestRequest::get("/")
            .access(&build(c))
            .await
            .expect("answered");
        match r.body {
            Body::Raw {
                content_type,
                bytes,
            } => {
                assert_eq!(content_type, "text/html");
                assert_eq!(&bytes[..], b"<h1>maintenance</h1>");
            }
            other => panic!("expected a raw body, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_trigger_limits_it_to_requests_with_the_header_or_query_parameter() {
        let mut c = config();
        c.trigger = Some("X-Terminate".into());
        let p = build(c);
        assert!(TestRequest::get("/?other=1").access(&p).await.is_none());
        let mut by_header = TestRequest::get("/").header("x-terminate", "1");
        assert!(by_header.access(&p).await.is_some());
        assert!(TestRequest::get("/?X-Terminate").access(&p).await.is_some());
    }

    #[tokio::test]
    async fn echo_returns_the_request() {
        let mut c = config();
        c.echo = true;
        c.status_code = 404;
        let p = build(c);
        let r = TestRequest::post("/orders?a=1&a=2", r#"{"k":"v"}"#)
            .header("content-type", "application/json")
            .header("x-one", "1")
            .route("orders", "up")
            .access(&p)
            .await
            .expect("answered");
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let Body::Json(doc) = r.body else {
            panic!("expected JSON")
        };
        assert_eq!(doc["message"], "Not found");
        assert_eq!(doc["request"]["method"], "POST");
        assert_eq!(doc["request"]["path"], "/orders");
        assert_eq!(doc["request"]["query"]["a"], json!(["1", "2"]));
        assert_eq!(doc["request"]["headers"]["x-one"], "1");
        assert_eq!(doc["request"]["body"], json!({"k": "v"}));
        assert_eq!(doc["request"]["raw_body"], r#"{"k":"v"}"#);
        assert_eq!(doc["matched_route"]["name"], "orders");
    }

    #[test]
    fn kongs_checks_with_kongs_messages() {
        let mut c = config();
        c.status_code = 700;
        c.message = Some("m".into());
        c.body = Some("b".into());
        c.trigger = Some("bad header".into());
        let e = RequestTermination::build(c, &BuildContext::new(PluginScope::Global)).unwrap_err();
        let got: Vec<_> = e
            .problems()
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect();
        assert_eq!(
            got,
            vec![
                "status_code: must be between 100 .. 599",
                ": message cannot be used with content_type or body",
                "trigger: \"bad header\" is not a valid header name",
            ]
        );
        let mut c = config();
        c.content_type = Some("text/plain".into());
        c.echo = true;
        let e = RequestTermination::build(c, &BuildContext::new(PluginScope::Global)).unwrap_err();
        let got: Vec<_> = e.problems().iter().map(|(_, m)| m.as_str()).collect();
        assert_eq!(
            got,
            vec![
                "content_type requires a body",
                "echo cannot be used with content_type and body"
            ]
        );
    }
}
