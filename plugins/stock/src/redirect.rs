//! `redirect`: answer every request of the route with a redirect, as Kong's plugin does.
//!
//! `status_code` (301) with `Location: <location>` and the body `redirecting`; with
//! `keep_incoming_path`, the request's path and query string replace those of
//! `location` (its scheme, host and port are kept).

use bytes::Bytes;
use http::header::LOCATION;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, StatusCode, Uri};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::transform::Problems;
use crate::{Body, Flow, Plugin, Request, Response};

/// Kong's `redirect` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// The status of the answer (100 to 599; default 301).
    #[serde(default = "default_status")]
    pub status_code: u16,
    /// The URL to redirect to (absolute: `https://example.com/path`).
    pub location: String,
    /// Uses the request's path and query string instead of those of `location`
    /// (default false).
    #[serde(default)]
    pub keep_incoming_path: bool,
}

fn default_status() -> u16 {
    301
}

/// The `redirect` plugin.
#[derive(Debug)]
pub struct Redirect {
    status: StatusCode,
    location: HeaderValue,
    /// Scheme and authority of `location`, for `keep_incoming_path`.
    origin: Option<(Scheme, Authority)>,
}

impl Redirect {
    fn response(&self, location: HeaderValue) -> Response {
        let mut r = Response::empty(self.status).with_header(LOCATION, location);
        r.body = Body::Raw {
            content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
            bytes: Bytes::from_static(b"redirecting"),
        };
        r
    }
}

#[async_trait::async_trait]
impl Plugin for Redirect {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let location = match &self.origin {
            None => self.location.clone(),
            Some((scheme, authority)) => {
                let pq = match req.query() {
                    Some(q) if !q.is_empty() => format!("{}?{q}", req.path()),
                    _ => req.path().to_string(),
                };
                Uri::builder()
                    .scheme(scheme.clone())
                    .authority(authority.clone())
                    .path_and_query(pq)
                    .build()
                    .ok()
                    .and_then(|u| HeaderValue::from_str(&u.to_string()).ok())
                    .unwrap_or_else(|| self.location.clone())
            }
        };
        Flow::Respond(self.response(location))
    }
}

impl BuildPlugin for Redirect {
    const NAME: &'static str = "redirect";
    const PRIORITY: i32 = 779;
    type Config = RedirectConfig;

    fn build(c: RedirectConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let status = StatusCode::from_u16(c.status_code)
            .ok()
            .filter(|s| (100..=599).contains(&s.as_u16()));
        if status.is_none() {
            problems.add("status_code", "must be between 100 .. 599");
        }
        let parsed = c
            .location
            .parse::<Uri>()
            .ok()
            .and_then(|u| Some((u.scheme()?.clone(), u.authority()?.clone())));
        if parsed.is_none() {
            problems.add(
                "location",
                "expected an absolute URL such as https://example.com/path",
            );
        }
        let location = HeaderValue::from_str(&c.location).unwrap_or(HeaderValue::from_static("/"));
        problems.into_result(Redirect {
            status: status.unwrap_or(StatusCode::MOVED_PERMANENTLY),
            location,
            origin: if c.keep_incoming_path { parsed } else { None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;

    fn build(status: u16, location: &str, keep: bool) -> Result<Redirect, ConfigError> {
        Redirect::build(
            RedirectConfig {
                status_code: status,
                location: location.into(),
                keep_incoming_path: keep,
            },
            &BuildContext::new(PluginScope::Global),
        )
    }

    fn location(r: &Response) -> Option<&str> {
        r.headers
            .iter()
            .find(|(n, _)| n == LOCATION)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[tokio::test]
    async fn every_request_is_redirected_to_the_location() {
        let p = build(301, "https://example.com/path?foo=bar", false).expect("valid");
        let r = TestRequest::get("/some/where?x=1")
            .access(&p)
            .await
            .expect("redirect");
        assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(location(&r), Some("https://example.com/path?foo=bar"));
        assert!(matches!(&r.body, Body::Raw { bytes, .. } if &bytes[..] == b"redirecting"));
    }

    #[tokio::test]
    async fn keep_incoming_path_takes_the_requests_path_and_query() {
        let p = build(302, "https://example.com:8443/some_path?foo=bar", true).expect("valid");
        let r = TestRequest::get("/a/b?x=1")
            .access(&p)
            .await
            .expect("redirect");
        assert_eq!(r.status, StatusCode::FOUND);
        assert_eq!(location(&r), Some("https://example.com:8443/a/b?x=1"));
        let r = TestRequest::get("/a").access(&p).await.expect("redirect");
        assert_eq!(location(&r), Some("https://example.com:8443/a"));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = build(600, "/relative", false).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["status_code", "location"]);
    }
}
