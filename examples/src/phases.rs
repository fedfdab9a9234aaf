//! Small plugins for the phases no stock plugin uses, each the least that shows its
//! phase at work (the end-to-end tests in `tests/phases.rs` run them in the real binary):
//!
//! - [`PathRewrite`] (`path-rewrite`): pre-routing ([`Plugin::on_rewrite`]);
//! - [`Canary`] (`canary`): choosing the upstream ([`Plugin::choose_upstream`]);
//! - [`MaxBody`] (`max-body`): the streamed request body ([`Plugin::on_request_body`]);
//! - [`ShoutText`] (`shout-text`): the upstream response head
//!   ([`Plugin::on_upstream_response`]) and the response body
//!   ([`Plugin::on_response_body`]).

use pingway::plugins::bytes::Bytes;
use pingway::plugins::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use pingway::plugins::{
    async_trait, BuildContext, BuildPlugin, ConfigError, Flow, Plugin, Request, RequestCtx,
    Response, ResponseView, UpstreamChoice,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// The header on every response to a request [`PathRewrite`] rewrote: the path the client
/// asked for (so the rewrite is visible even on a 404).
pub const REWRITTEN_FROM: &str = "x-rewritten-from";

/// `path-rewrite` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRewriteConfig {
    /// The path prefix to replace (`/old/`).
    pub from: String,
    /// What replaces it (`/new/`).
    pub to: String,
}

/// `path-rewrite`: before routing, replaces the path prefix `from` with `to`, so that
/// the router (and the upstream) see the new path. A global plugin only: pre-routing
/// runs before any route is known, so a route's instance would never be asked.
#[derive(Debug)]
pub struct PathRewrite {
    from: String,
    to: String,
}

#[async_trait]
impl Plugin for PathRewrite {
    fn wants_rewrite(&self) -> bool {
        true
    }

    async fn on_rewrite(&self, req: &mut Request<'_>) -> Flow {
        let Some(rest) = req.path().strip_prefix(&self.from) else {
            return Flow::Continue;
        };
        let new = match req.query() {
            Some(q) => format!("{}{rest}?{q}", self.to),
            None => format!("{}{rest}", self.to),
        };
        let Ok(uri) = new.parse::<Uri>() else {
            return Flow::Continue;
        };
        let from = HeaderValue::from_str(req.path()).ok();
        req.set_uri(uri);
        if let Some(from) = from {
            req.ctx_mut()
                .add_response_header(HeaderName::from_static(REWRITTEN_FROM), from);
        }
        Flow::Continue
    }
}

impl BuildPlugin for PathRewrite {
    const NAME: &'static str = "path-rewrite";
    /// Only rewriters are ordered in the pre-routing phase; run early among them.
    const PRIORITY: i32 = 3000;
    type Config = PathRewriteConfig;

    fn build(config: PathRewriteConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        if !matches!(cx.scope, pingway::plugins::PluginScope::Global) {
            return Err(ConfigError::new(
                "",
                "path-rewrite runs before routing: configure it in the top-level plugins",
            ));
        }
        for (field, value) in [("from", &config.from), ("to", &config.to)] {
            if !value.starts_with('/') {
                return Err(ConfigError::new(field, "a path prefix starts with /"));
            }
        }
        Ok(PathRewrite {
            from: config.from,
            to: config.to,
        })
    }
}

/// `canary` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The request header that asks for the canary (default `x-canary`).
    #[serde(default = "default_canary_header")]
    pub header: String,
    /// The value that asks for it (default `1`).
    #[serde(default = "default_canary_value")]
    pub value: String,
    /// The upstream (by name) that serves the canary.
    pub upstream: String,
}

fn default_canary_header() -> String {
    "x-canary".into()
}

fn default_canary_value() -> String {
    "1".into()
}

/// `canary`: requests with `header: value` go to another named upstream.
#[derive(Debug)]
pub struct Canary {
    header: HeaderName,
    value: String,
    upstream: std::sync::Arc<str>,
}

impl Plugin for Canary {
    fn choose_upstream(&self, req: &Request<'_>, choice: &mut UpstreamChoice) {
        if req.header_str(&self.header) == Some(self.value.as_str()) {
            // An `Arc<str>` clone: no allocation per request.
            choice.set_upstream(self.upstream.clone());
        }
    }
}

impl BuildPlugin for Canary {
    const NAME: &'static str = "canary";
    const PRIORITY: i32 = 800;
    type Config = CanaryConfig;

    fn build(config: CanaryConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let header = HeaderName::from_bytes(config.header.as_bytes()).map_err(|_| {
            ConfigError::new(
                "header",
                format!("{:?} is not a valid header name", config.header),
            )
        })?;
        if config.upstream.is_empty() {
            return Err(ConfigError::new("upstream", "name an upstream"));
        }
        Ok(Canary {
            header,
            value: config.value,
            upstream: config.upstream.into(),
        })
    }
}

/// `max-body` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxBodyConfig {
    /// The most request body bytes let through.
    pub limit: usize,
}

/// `max-body`: counts the request body as it streams to the upstream and ends the
/// request with 413 once it passes `limit`, whether or not a `Content-Length` announced
/// it (a chunked body is caught too). Nothing is buffered.
#[derive(Debug)]
pub struct MaxBody {
    limit: usize,
}

/// Body bytes seen so far for this request.
#[derive(Debug, Clone, Copy, Default)]
struct BodySeen(usize);

impl Plugin for MaxBody {
    fn wants_request_body(&self) -> bool {
        true
    }

    fn on_request_body(
        &self,
        chunk: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<(), Response> {
        let n = chunk.as_ref().map_or(0, Bytes::len);
        let seen = ctx
            .extensions
            .get::<BodySeen>()
            .copied()
            .unwrap_or_default();
        let total = seen.0.saturating_add(n);
        ctx.extensions.insert(BodySeen(total));
        if total > self.limit {
            return Err(Response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request size limit exceeded",
            ));
        }
        Ok(())
    }
}

impl BuildPlugin for MaxBody {
    const NAME: &'static str = "max-body";
    /// Kong's `request-size-limiting` number.
    const PRIORITY: i32 = 951;
    type Config = MaxBodyConfig;

    fn build(config: MaxBodyConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        Ok(MaxBody {
            limit: config.limit,
        })
    }
}

/// The header [`ShoutText`] adds: the status the upstream answered.
pub const UPSTREAM_STATUS: &str = "x-upstream-status";

/// `shout-text` configuration: none.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShoutTextConfig {}

/// `shout-text`: tells the client the upstream's status in `x-upstream-status` (from the
/// upstream response head), and upper-cases `text/*` bodies as they stream.
///
/// ASCII upper-casing keeps every byte's length, so the upstream's `Content-Length`
/// stays right; a transformation that changes the length would have to remove it in
/// [`Plugin::on_upstream_response`] (and the body would go chunked).
#[derive(Debug)]
pub struct ShoutText;

/// Marks a response whose body is text, for the body phase.
#[derive(Debug, Clone, Copy)]
struct IsText;

impl Plugin for ShoutText {
    fn on_upstream_response(&self, resp: &mut ResponseView<'_>) {
        let status = HeaderValue::from(resp.status().as_u16());
        resp.insert_header(HeaderName::from_static(UPSTREAM_STATUS), status);
        let text = resp
            .header_str(header::CONTENT_TYPE)
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/"));
        if text {
            resp.ctx_mut().extensions.insert(IsText);
        }
    }

    fn wants_response_body(&self) -> bool {
        true
    }

    fn on_response_body(
        &self,
        chunk: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) {
        if ctx.extensions.get::<IsText>().is_none() {
            return;
        }
        if let Some(c) = chunk.as_mut() {
            *c = Bytes::from(c.to_ascii_uppercase());
        }
    }
}

impl BuildPlugin for ShoutText {
    const NAME: &'static str = "shout-text";
    const PRIORITY: i32 = 700;
    type Config = ShoutTextConfig;

    fn build(_config: ShoutTextConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        Ok(ShoutText)
    }
}

#[cfg(test)]
mod tests {
    use pingway::plugins::testkit::TestRequest;
    use pingway::plugins::PluginScope;

    use super::*;

    fn global() -> BuildContext<'static> {
        BuildContext::new(PluginScope::Global)
    }

    #[tokio::test]
    async fn path_rewrite_replaces_the_prefix_and_keeps_the_query() {
        let p = PathRewrite::build(
            PathRewriteConfig {
                from: "/old/".into(),
                to: "/new/".into(),
            },
            &global(),
        )
        .unwrap();
        let mut req = TestRequest::get("/old/a/b?x=1");
        assert!(req.rewrite(&p).await.is_none());
        assert_eq!(req.parts().uri, "/new/a/b?x=1");
        let head = req.response(&p, StatusCode::NOT_FOUND, &[]);
        assert_eq!(head.headers[REWRITTEN_FROM], "/old/a/b");
        let mut other = TestRequest::get("/older");
        other.rewrite(&p).await;
        assert_eq!(other.parts().uri, "/older");
    }

    #[test]
    fn path_rewrite_is_global_only() {
        let e = PathRewrite::build(
            PathRewriteConfig {
                from: "/old/".into(),
                to: "/new/".into(),
            },
            &BuildContext::new(PluginScope::Route("r")),
        )
        .unwrap_err();
        assert!(e.to_string().contains("top-level"), "{e}");
    }

    #[test]
    fn canary_chooses_the_other_upstream_on_its_header() {
        let p = Canary::build(
            serde_json::from_value(serde_json::json!({"upstream": "canary"})).unwrap(),
            &global(),
        )
        .unwrap();
        let mut asks = TestRequest::get("/").header("x-canary", "1");
        assert_eq!(asks.choose_upstream(&p).upstream(), Some("canary"));
        let mut plain = TestRequest::get("/").header("x-canary", "0");
        assert_eq!(plain.choose_upstream(&p).upstream(), None);
    }

    #[test]
    fn max_body_counts_across_chunks() {
        let p = MaxBody::build(MaxBodyConfig { limit: 5 }, &global()).unwrap();
        let mut ok = TestRequest::post("/", "");
        assert_eq!(ok.request_body(&p, &[b"ab", b"cde"]).unwrap(), b"abcde");
        let mut big = TestRequest::post("/", "");
        let answer = big.request_body(&p, &[b"abc", b"def"]).unwrap_err();
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn shout_text_upper_cases_text_only() {
        let mut req = TestRequest::get("/");
        let head = req.upstream_response(
            &ShoutText,
            StatusCode::CREATED,
            &[("content-type", "text/plain")],
        );
        assert_eq!(head.headers[UPSTREAM_STATUS], "201");
        assert_eq!(
            req.response_body(&ShoutText, &[b"hello ", b"world"]),
            b"HELLO WORLD"
        );
        let mut json = TestRequest::get("/");
        json.upstream_response(
            &ShoutText,
            StatusCode::OK,
            &[("content-type", "application/json")],
        );
        assert_eq!(
            json.response_body(&ShoutText, &[b"{\"a\":1}"]),
            b"{\"a\":1}"
        );
    }
}
