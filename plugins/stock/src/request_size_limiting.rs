//! `request-size-limiting`: refuse request bodies larger than a limit, as Kong does.
//!
//! - A `Content-Length` over the limit is answered at once: `413` `Request size limit
//!   exceeded` (`417` when the client sent `Expect: 100-continue`), before any byte of
//!   the body is read.
//! - A body without `Content-Length` (chunked) is counted while it streams, in the
//!   request-body phase; the chunk that crosses the limit ends the request with the same
//!   answer. Nothing is buffered.
//! - `require_content_length`: a request with neither a valid `Content-Length` nor
//!   `Transfer-Encoding: chunked` is answered `411` `A valid Content-Length header is
//!   required` (Kong's check; note that it applies to requests without a body too).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING};
use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, RequestCtx, Response};

/// The unit of `allowed_payload_size` (1024-based, as Kong's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SizeUnit {
    /// 1 048 576 bytes (the default).
    #[default]
    Megabytes,
    /// 1024 bytes.
    Kilobytes,
    /// Bytes.
    Bytes,
}

impl SizeUnit {
    fn factor(self) -> u64 {
        match self {
            SizeUnit::Megabytes => 1024 * 1024,
            SizeUnit::Kilobytes => 1024,
            SizeUnit::Bytes => 1,
        }
    }
}

/// Kong's `request-size-limiting` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSizeLimitingConfig {
    /// The largest body allowed, in `size_unit`s (default 128).
    #[serde(default = "default_size")]
    pub allowed_payload_size: u64,
    /// `megabytes` (default), `kilobytes` or `bytes`.
    #[serde(default)]
    pub size_unit: SizeUnit,
    /// Answers 411 to requests with neither a valid `Content-Length` nor a chunked body
    /// (default false).
    #[serde(default)]
    pub require_content_length: bool,
}

fn default_size() -> u64 {
    128
}

/// The `request-size-limiting` plugin.
#[derive(Debug)]
pub struct RequestSizeLimiting {
    limit: u64,
    require_content_length: bool,
}

/// A body without `Content-Length` being counted.
#[derive(Debug, Clone)]
struct Counting {
    seen: u64,
    expect_continue: bool,
}

fn too_large(expect_continue: bool) -> Response {
    let status = if expect_continue {
        StatusCode::EXPECTATION_FAILED
    } else {
        StatusCode::PAYLOAD_TOO_LARGE
    };
    Response::error(status, "Request size limit exceeded")
}

impl RequestSizeLimiting {
    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

#[async_trait::async_trait]
impl Plugin for RequestSizeLimiting {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let expect_continue = req
            .header_str(EXPECT)
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"));
        let declared = req
            .header_str(CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = declared {
            if n > self.limit {
                return Flow::Respond(too_large(expect_continue));
            }
            return Flow::Continue;
        }
        let chunked = req
            .header_str(TRANSFER_ENCODING)
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if self.require_content_length && !chunked {
            return Flow::Respond(Response::error(
                StatusCode::LENGTH_REQUIRED,
                "A valid Content-Length header is required",
            ));
        }
        req.ctx_mut().extensions.insert(Counting {
            seen: 0,
            expect_continue,
        });
        Flow::Continue
    }

    fn wants_request_body(&self) -> bool {
        true
    }

    fn on_request_body(
        &self,
        chunk: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<(), Response> {
        let Some(counting) = ctx.extensions.get_mut::<Counting>() else {
            return Ok(());
        };
        counting.seen = counting
            .seen
            .saturating_add(chunk.as_ref().map_or(0, |c| c.len() as u64));
        if counting.seen > self.limit {
            *chunk = None;
            return Err(too_large(counting.expect_continue));
        }
        Ok(())
    }
}

impl BuildPlugin for RequestSizeLimiting {
    const NAME: &'static str = "request-size-limiting";
    const PRIORITY: i32 = 951;
    type Config = RequestSizeLimitingConfig;

    fn build(c: RequestSizeLimitingConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let limit = c
            .allowed_payload_size
            .checked_mul(c.size_unit.factor())
            .ok_or_else(|| ConfigError::new("allowed_payload_size", "too large"))?;
        Ok(RequestSizeLimiting {
            limit,
            require_content_length: c.require_content_length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;
    use crate::Body;

    fn build(size: u64, unit: SizeUnit, require: bool) -> RequestSizeLimiting {
        RequestSizeLimiting::build(
            RequestSizeLimitingConfig {
                allowed_payload_size: size,
                size_unit: unit,
                require_content_length: require,
            },
            &BuildContext::new(PluginScope::Global),
        )
        .expect("valid")
    }

    fn message(r: &Response) -> &str {
        match &r.body {
            Body::Message(m) => m,
            _ => "",
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_413_or_417() {
        let p = build(1, SizeUnit::Kilobytes, false);
        assert_eq!(p.limit(), 1024);
        assert!(TestRequest::post("/", vec![b'x'; 1024])
            .access(&p)
            .await
            .is_none());
        let r = TestRequest::post("/", vec![b'x'; 1025])
            .access(&p)
            .await
            .expect("refused");
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(message(&r), "Request size limit exceeded");
        let r = TestRequest::post("/", vec![b'x'; 1025])
            .header("expect", "100-Continue")
            .access(&p)
            .await
            .expect("refused");
        assert_eq!(r.status, StatusCode::EXPECTATION_FAILED);
    }

    #[tokio::test]
    async fn a_chunked_body_is_counted_while_it_streams() {
        let p = build(10, SizeUnit::Bytes, true);
        let mut req =
            TestRequest::new(http::Method::POST, "/").header("transfer-encoding", "chunked");
        assert!(req.access(&p).await.is_none());
        assert_eq!(
            req.request_body(&p, &[b"12345", b"12345"]).ok(),
            Some(b"1234512345".to_vec())
        );

        let mut req =
            TestRequest::new(http::Method::POST, "/").header("transfer-encoding", "chunked");
        assert!(req.access(&p).await.is_none());
        let r = req
            .request_body(&p, &[b"12345", b"123456", b"more"])
            .unwrap_err();
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn require_content_length_answers_411_as_kong_does() {
        let p = build(128, SizeUnit::Megabytes, true);
        let r = TestRequest::get("/").access(&p).await.expect("refused");
        assert_eq!(r.status, StatusCode::LENGTH_REQUIRED);
        assert_eq!(message(&r), "A valid Content-Length header is required");
        let mut ok = TestRequest::get("/").header("content-length", "0");
        assert!(ok.access(&p).await.is_none());
        let p = build(128, SizeUnit::Megabytes, false);
        assert!(TestRequest::get("/").access(&p).await.is_none());
    }

    #[test]
    fn an_overflowing_limit_is_refused() {
        let e = RequestSizeLimiting::build(
            RequestSizeLimitingConfig {
                allowed_payload_size: u64::MAX,
                size_unit: SizeUnit::Kilobytes,
                require_content_length: false,
            },
            &BuildContext::new(PluginScope::Global),
        )
        .unwrap_err();
        assert_eq!(e.problems()[0].0, "allowed_payload_size");
    }
}
