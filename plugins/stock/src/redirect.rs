//! `redirect`: answer every request of the route with a redirect, as Kong's plugin does.
//!
//! `status_code` (301) with `Location: <location>` and the body `redirecting`; with
//! `keep_incoming_path`, the request's path and query string replace those of
//! `location` (its scheme, host and port are kept).
//!
//! Without `location` (a Pingway extension), the redirect is built from the request's
//! own URL with some parts replaced — `scheme`, `host`, `port`, `path` — as an Istio
//! VirtualService's `redirect` and the Gateway API's `RequestRedirect` filter do.

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
    /// The URL to redirect to (absolute: `https://example.com/path`). Required unless
    /// one of `scheme`, `host`, `port` or `path` is given.
    #[serde(default)]
    pub location: Option<String>,
    /// Without `location`: the scheme of the redirect (`http` or `https`; default the
    /// request's, `http` on a plain-text listener).
    #[serde(default)]
    pub scheme: Option<String>,
    /// Without `location`: the host of the redirect (default the request's `Host`).
    #[serde(default)]
    pub host: Option<String>,
    /// Without `location`: the port of the redirect (default: the request's, unless
    /// `scheme` changes it, when the new scheme's default port is implied).
    #[serde(default)]
    pub port: Option<u16>,
    /// Without `location`: the path of the redirect, replacing the request's whole path
    /// (the query string is kept).
    #[serde(default)]
    pub path: Option<String>,
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
    /// The parts replaced in the request's URL when there is no `location`.
    parts: Option<UrlParts>,
}

/// The `scheme`, `host`, `port` and `path` of a redirect without `location`.
#[derive(Debug)]
struct UrlParts {
    scheme: Option<&'static str>,
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
}

impl UrlParts {
    /// The request's URL with the configured parts replaced.
    fn location(&self, req: &Request<'_>) -> Option<HeaderValue> {
        let request_host = req
            .header_str(http::header::HOST)
            .or_else(|| req.uri().host())
            .unwrap_or_default();
        let (req_name, req_port) = split_port(request_host);
        let scheme = self.scheme.unwrap_or("http");
        let name = self.host.as_deref().unwrap_or(req_name);
        if name.is_empty() {
            return None;
        }
        // A new scheme implies its default port unless one is given.
        let port = match (self.port, self.scheme) {
            (Some(p), _) => Some(p),
            (None, Some(_)) => None,
            (None, None) => req_port,
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let path = self.path.as_deref().unwrap_or_else(|| req.path());
        let mut url = format!("{scheme}://{name}");
        if let Some(p) = port.filter(|&p| p != default_port) {
            url.push_str(&format!(":{p}"));
        }
        url.push_str(path);
        if let Some(q) = req.query().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        HeaderValue::from_str(&url).ok()
    }
}

/// `host[:port]` apart (a bracketed IPv6 literal keeps its brackets).
fn split_port(host: &str) -> (&str, Option<u16>) {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => match host[i + 1..].parse() {
            Ok(port) => (&host[..i], Some(port)),
            Err(_) => (host, None),
        },
        _ => (host, None),
    }
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
        if let Some(parts) = &self.parts {
            return Flow::Respond(match parts.location(req) {
                Some(location) => self.response(location),
                None => Response::error(StatusCode::BAD_REQUEST, "Bad request"),
            });
        }
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
        let by_parts =
            c.scheme.is_some() || c.host.is_some() || c.port.is_some() || c.path.is_some();
        let parts = match (&c.location, by_parts) {
            (Some(_), true) => {
                problems.add(
                    "location",
                    "give either location or scheme/host/port/path, not both",
                );
                None
            }
            (None, false) => {
                problems.add("location", "required (or one of scheme, host, port, path)");
                None
            }
            (Some(_), false) => None,
            (None, true) => Some(url_parts(&c, &mut problems)),
        };
        let location_text = c.location.as_deref().unwrap_or("/");
        let parsed = location_text
            .parse::<Uri>()
            .ok()
            .and_then(|u| Some((u.scheme()?.clone(), u.authority()?.clone())));
        if c.location.is_some() && parsed.is_none() {
            problems.add(
                "location",
                "expected an absolute URL such as https://example.com/path",
            );
        }
        let location =
            HeaderValue::from_str(location_text).unwrap_or(HeaderValue::from_static("/"));
        problems.into_result(Redirect {
            status: status.unwrap_or(StatusCode::MOVED_PERMANENTLY),
            location,
            origin: if c.keep_incoming_path { parsed } else { None },
            parts,
        })
    }
}

/// Checks the `scheme`, `host`, `port` and `path` of a redirect without `location`.
fn url_parts(c: &RedirectConfig, problems: &mut Problems) -> UrlParts {
    let scheme = match c.scheme.as_deref() {
        None => None,
        Some("http") => Some("http"),
        Some("https") => Some("https"),
        Some(_) => {
            problems.add("scheme", "expected one of: http, https");
            None
        }
    };
    if let Some(h) = &c.host {
        if h.is_empty() || h.parse::<Authority>().is_err() || h.contains(['/', '@', ':']) {
            problems.add("host", "expected a host name without a port");
        }
    }
    if c.port == Some(0) {
        problems.add("port", "must be between 1 and 65535");
    }
    if let Some(p) = &c.path {
        if !p.starts_with('/') || p.parse::<http::uri::PathAndQuery>().is_err() || p.contains('?') {
            problems.add("path", "expected an absolute path such as /new/place");
        }
    }
    UrlParts {
        scheme,
        host: c.host.clone(),
        port: c.port,
        path: c.path.clone(),
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
                location: Some(location.into()),
                keep_incoming_path: keep,
                scheme: None,
                host: None,
                port: None,
                path: None,
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

    fn by_parts(
        scheme: Option<&str>,
        host: Option<&str>,
        port: Option<u16>,
        path: Option<&str>,
    ) -> Result<Redirect, ConfigError> {
        Redirect::build(
            RedirectConfig {
                status_code: 308,
                location: None,
                keep_incoming_path: false,
                scheme: scheme.map(Into::into),
                host: host.map(Into::into),
                port,
                path: path.map(Into::into),
            },
            &BuildContext::new(PluginScope::Global),
        )
    }

    #[tokio::test]
    async fn parts_replace_those_of_the_request_url() {
        let cases = [
            // Istio's https redirect: the scheme changes, its default port is implied.
            (
                by_parts(Some("https"), None, None, None),
                "https://shop.example/a/b?x=1",
            ),
            (
                by_parts(None, Some("new.example"), None, None),
                "http://new.example:8080/a/b?x=1",
            ),
            (
                by_parts(None, None, Some(9000), Some("/moved")),
                "http://shop.example:9000/moved?x=1",
            ),
            (
                by_parts(Some("https"), Some("secure.example"), Some(443), None),
                "https://secure.example/a/b?x=1",
            ),
        ];
        for (plugin, want) in cases {
            let r = TestRequest::get("/a/b?x=1")
                .header("host", "shop.example:8080")
                .access(&plugin.expect("valid"))
                .await
                .expect("redirect");
            assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
            assert_eq!(location(&r), Some(want));
        }
    }

    #[test]
    fn parts_and_location_are_checked() {
        let fields = |r: Result<Redirect, ConfigError>| -> Vec<String> {
            r.unwrap_err()
                .problems()
                .iter()
                .map(|(f, _)| f.to_string())
                .collect()
        };
        assert_eq!(
            fields(by_parts(Some("ftp"), Some("a:1"), Some(0), Some("rel"))),
            vec!["scheme", "host", "port", "path"]
        );
        assert_eq!(fields(by_parts(None, None, None, None)), vec!["location"]);
        let both = Redirect::build(
            RedirectConfig {
                status_code: 301,
                location: Some("https://a.example/".into()),
                keep_incoming_path: false,
                scheme: Some("https".into()),
                host: None,
                port: None,
                path: None,
            },
            &BuildContext::new(PluginScope::Global),
        );
        assert_eq!(fields(both), vec!["location"]);
    }

    #[test]
    fn bad_fields_are_named() {
        let e = build(600, "/relative", false).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["status_code", "location"]);
    }
}
