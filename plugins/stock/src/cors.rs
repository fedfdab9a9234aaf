//! `cors`: Cross-Origin Resource Sharing, as Kong's `cors` plugin does it.
//!
//! - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered
//!   at the gateway with `200`, an empty body and the CORS headers, unless
//!   `preflight_continue` is set, in which case it goes upstream untouched (and gets no
//!   CORS headers from the gateway: the upstream owns the preflight).
//! - Every other response (proxied or generated) gets `Access-Control-Allow-Origin`,
//!   `Access-Control-Allow-Credentials` and `Access-Control-Expose-Headers` as configured.
//! - `origins` entries are exact origins (compared after dropping default ports) or
//!   regexes (any character outside `A-Za-z0-9.:/-`), anchored at both ends; a regex
//!   without `:` is matched against the origin's host only, as Kong does.
//! - `Vary: Origin` is added whenever the answer depends on the origin.
//!
//! Like Kong's header filter, the response phase reads the request's `Origin` itself
//! (`ResponseView::request`), so every response gets its headers, a 404 for an unknown
//! route or another answer the gateway generated before the access phase included.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use regex::{Regex, RegexBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, Response, ResponseView};

/// The largest compiled size of one `origins` regex (bytes of the compiled program); a
/// larger pattern is rejected when the file is loaded.
pub const MAX_ORIGIN_REGEX_SIZE: usize = 64 * 1024;

/// The methods Kong allows by default, in Kong's order.
const ALL_METHODS: [&str; 9] = [
    "GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

const ACRPN: HeaderName = HeaderName::from_static("access-control-request-private-network");
const ACAPN: HeaderName = HeaderName::from_static("access-control-allow-private-network");

/// Kong's `cors` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins: exact (`https://app.example.com`), regexes
    /// (`https://.*\.example\.com`), or `*`. Empty (the default) allows every origin.
    #[serde(default)]
    pub origins: Vec<String>,
    /// `Access-Control-Allow-Methods` of a preflight (default: the nine HTTP methods).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// `Access-Control-Allow-Headers` of a preflight; empty (the default) echoes the
    /// request's `Access-Control-Request-Headers`.
    #[serde(default)]
    pub headers: Vec<String>,
    /// `Access-Control-Expose-Headers` of actual responses.
    #[serde(default)]
    pub exposed_headers: Vec<String>,
    /// Sends `Access-Control-Allow-Credentials: true` (default false).
    #[serde(default)]
    pub credentials: bool,
    /// `Access-Control-Max-Age` of a preflight, in seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Sends preflights upstream instead of answering them (default false).
    #[serde(default)]
    pub preflight_continue: bool,
    /// Answers `Access-Control-Request-Private-Network: true` with
    /// `Access-Control-Allow-Private-Network: true` (default false).
    #[serde(default)]
    pub private_network: bool,
    /// Adds the headers to responses of requests without `Origin` too (default true).
    #[serde(default = "yes")]
    pub allow_origin_absent: bool,
}

fn yes() -> bool {
    true
}

/// An `origins` entry, compiled.
#[derive(Debug)]
enum OriginRule {
    /// Matches any origin (a `*` in a list of several).
    Any,
    /// An exact origin, normalized.
    Exact(String),
    /// A regex, anchored, against the host (`by_host`) or the normalized origin.
    Regex { re: Regex, by_host: bool },
}

/// How the origin is decided.
#[derive(Debug)]
enum Origins {
    /// No list, or `[*]`: `Access-Control-Allow-Origin: *`.
    All,
    /// One plain origin, always sent as written.
    Single(HeaderValue),
    /// The request's origin is echoed when a rule matches.
    Rules(Vec<OriginRule>),
}

/// The `cors` plugin.
#[derive(Debug)]
pub struct Cors {
    origins: Origins,
    methods: HeaderValue,
    headers: Option<HeaderValue>,
    exposed: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
    preflight_continue: bool,
    private_network: bool,
    allow_origin_absent: bool,
}

/// The origin headers for one request.
#[derive(Debug, Default, PartialEq)]
struct OriginAnswer {
    allow_origin: Option<HeaderValue>,
    credentials: bool,
    vary: bool,
}

/// An origin split as Kong's `normalize_origin` does: `scheme://host[:port]` with the
/// default port dropped, and the host.
fn normalize_origin(origin: &str) -> (String, String) {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return (origin.to_string(), origin.to_string());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':')),
            None => (authority.to_string(), None),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return (origin.to_string(), origin.to_string());
    }
    let default = matches!(
        (scheme, port),
        ("http", Some("80")) | ("https", Some("443"))
    );
    let domain = match port {
        Some(p) if !default && !p.is_empty() => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    };
    (domain, host)
}

fn looks_plain(entry: &str) -> bool {
    !entry.is_empty()
        && entry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'-'))
}

impl Cors {
    fn answer(&self, origin: Option<&HeaderValue>) -> OriginAnswer {
        let mut a = OriginAnswer::default();
        match &self.origins {
            Origins::All => {
                a.allow_origin = Some(HeaderValue::from_static("*"));
                if self.credentials {
                    // `*` cannot go with credentials: echo the origin instead.
                    if let Some(o) = origin {
                        a.allow_origin = Some(o.clone());
                        a.credentials = true;
                        a.vary = true;
                    }
                }
                return a;
            }
            Origins::Single(v) => a.allow_origin = Some(v.clone()),
            Origins::Rules(rules) => {
                if let Some(origin) = origin.and_then(|o| o.to_str().ok()) {
                    let (domain, host) = normalize_origin(origin);
                    let hit = rules.iter().any(|r| match r {
                        OriginRule::Any => true,
                        OriginRule::Exact(d) => *d == domain,
                        OriginRule::Regex { re, by_host } => {
                            re.is_match(if *by_host { &host } else { &domain })
                        }
                    });
                    if hit {
                        a.allow_origin = HeaderValue::from_str(&domain).ok();
                    }
                }
            }
        }
        a.vary = true;
        a.credentials = self.credentials;
        a
    }

    fn preflight(&self, req: &Request<'_>, origin: Option<&HeaderValue>) -> Response {
        let a = self.answer(origin);
        let mut r = Response::empty(StatusCode::OK);
        if let Some(v) = a.allow_origin {
            r = r.with_header(ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        if a.vary {
            r = r.with_header(VARY, HeaderValue::from_static("Origin"));
        }
        if a.credentials {
            r = r.with_header(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        let allow_headers = self
            .headers
            .clone()
            .or_else(|| req.header(ACCESS_CONTROL_REQUEST_HEADERS).cloned());
        if let Some(h) = allow_headers {
            r = r.with_header(ACCESS_CONTROL_ALLOW_HEADERS, h);
        }
        r = r.with_header(ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        if let Some(m) = &self.max_age {
            r = r.with_header(ACCESS_CONTROL_MAX_AGE, m.clone());
        }
        if self.private_network && req.header_str(ACRPN) == Some("true") {
            r = r.with_header(ACAPN, HeaderValue::from_static("true"));
        }
        r
    }
}

/// Adds `Origin` to `Vary` unless it is there already (the upstream's own `Vary` values
/// are kept).
fn add_vary_origin(resp: &mut ResponseView<'_>) {
    let present = resp.headers().get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("origin"))
        })
    });
    if !present {
        resp.append_header(VARY, HeaderValue::from_static("Origin"));
    }
}

#[async_trait::async_trait]
impl Plugin for Cors {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let origin = req.header(ORIGIN).cloned();
        let preflight = req.method() == Method::OPTIONS
            && origin.is_some()
            && req.header(ACCESS_CONTROL_REQUEST_METHOD).is_some();
        match (preflight && !self.preflight_continue).then(|| self.preflight(req, origin.as_ref()))
        {
            Some(r) => Flow::Respond(r),
            None => Flow::Continue,
        }
    }

    fn on_response(&self, resp: &mut ResponseView<'_>) {
        let request = resp.request();
        let origin = request.headers.get(ORIGIN).cloned();
        // A preflight: the gateway answered it with its headers, or it went upstream
        // (`preflight_continue`); either way this phase adds nothing.
        let preflight = request.method == Method::OPTIONS
            && origin.is_some()
            && request.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if preflight || (!self.allow_origin_absent && origin.is_none()) {
            return;
        }
        let a = self.answer(origin.as_ref());
        match a.allow_origin {
            Some(v) => resp.insert_header(ACCESS_CONTROL_ALLOW_ORIGIN, v),
            None => {
                resp.remove_header(&ACCESS_CONTROL_ALLOW_ORIGIN);
            }
        }
        if a.vary {
            add_vary_origin(resp);
        }
        if a.credentials {
            resp.insert_header(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(e) = &self.exposed {
            resp.insert_header(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
        }
    }
}

/// Joins `items` with `,` into one header value, or reports `field`.
fn joined(items: &[String], field: &str) -> Result<Option<HeaderValue>, ConfigError> {
    if items.is_empty() {
        return Ok(None);
    }
    HeaderValue::from_str(&items.join(","))
        .map(Some)
        .map_err(|_| ConfigError::new(field, "contains characters not allowed in a header"))
}

impl BuildPlugin for Cors {
    const NAME: &'static str = "cors";
    const PRIORITY: i32 = 2000;
    type Config = CorsConfig;

    fn build(config: CorsConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let origins = match config.origins.as_slice() {
            [] => Origins::All,
            [one] if one == "*" => Origins::All,
            [one] if looks_plain(one) => match HeaderValue::from_str(one) {
                Ok(v) => Origins::Single(v),
                Err(_) => {
                    problems.push(("origins[0]".into(), "not a valid header value".into()));
                    Origins::All
                }
            },
            many => {
                let mut rules = Vec::with_capacity(many.len());
                for (i, entry) in many.iter().enumerate() {
                    if entry == "*" {
                        rules.push(OriginRule::Any);
                    } else if looks_plain(entry) {
                        rules.push(OriginRule::Exact(normalize_origin(entry).0));
                    } else {
                        let body = entry.strip_prefix('^').unwrap_or(entry);
                        let body = body.strip_suffix('$').unwrap_or(body);
                        match RegexBuilder::new(&format!("^(?:{body})$"))
                            .size_limit(MAX_ORIGIN_REGEX_SIZE)
                            .build()
                        {
                            Ok(re) => rules.push(OriginRule::Regex {
                                re,
                                by_host: !entry.contains(':'),
                            }),
                            Err(e) => problems.push((
                                format!("origins[{i}]"),
                                format!(
                                    "invalid regex: {}",
                                    e.to_string().lines().last().unwrap_or_default()
                                ),
                            )),
                        }
                    }
                }
                Origins::Rules(rules)
            }
        };
        let methods = match &config.methods {
            None => {
                HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT")
            }
            Some(list) => {
                for (i, m) in list.iter().enumerate() {
                    if !ALL_METHODS.contains(&m.as_str()) {
                        problems.push((
                            format!("methods[{i}]"),
                            format!("expected one of: {}", ALL_METHODS.join(", ")),
                        ));
                    }
                }
                HeaderValue::from_str(&list.join(",")).unwrap_or(HeaderValue::from_static(""))
            }
        };
        let mut field = |r: Result<Option<HeaderValue>, ConfigError>| match r {
            Ok(v) => v,
            Err(e) => {
                problems.extend(e.problems().iter().cloned());
                None
            }
        };
        let headers = field(joined(&config.headers, "headers"));
        let exposed = field(joined(&config.exposed_headers, "exposed_headers"));
        if let Some((first, rest)) = problems.split_first() {
            let mut e = ConfigError::new(first.0.clone(), first.1.clone());
            for (f, m) in rest {
                e = e.and(f.clone(), m.clone());
            }
            return Err(e);
        }
        Ok(Cors {
            origins,
            methods,
            headers,
            exposed,
            credentials: config.credentials,
            max_age: config.max_age.map(HeaderValue::from),
            preflight_continue: config.preflight_continue,
            private_network: config.private_network,
            allow_origin_absent: config.allow_origin_absent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;

    fn config(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            origins: origins.iter().map(|s| s.to_string()).collect(),
            methods: None,
            headers: vec![],
            exposed_headers: vec![],
            credentials: false,
            max_age: None,
            preflight_continue: false,
            private_network: false,
            allow_origin_absent: true,
        }
    }

    fn build(c: CorsConfig) -> Cors {
        Cors::build(c, &BuildContext::new(PluginScope::Global)).expect("valid config")
    }

    fn header(r: &Response, name: &str) -> Option<String> {
        r.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap_or_default().to_string())
    }

    fn preflight(origin: &str) -> TestRequest {
        TestRequest::new(Method::OPTIONS, "/")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
    }

    /// Runs access then the response phase of a proxied 200; the client's head.
    async fn actual(p: &Cors, origin: Option<&str>) -> http::response::Parts {
        let mut req = TestRequest::get("/");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        assert!(req.access(p).await.is_none());
        req.response(p, StatusCode::OK, &[("vary", "Accept-Encoding")])
    }

    fn get(parts: &http::response::Parts, name: &str) -> Option<String> {
        let all: Vec<_> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect();
        (!all.is_empty()).then(|| all.join(", "))
    }

    #[tokio::test]
    async fn a_preflight_is_answered_200_with_kongs_default_headers() {
        let p = build(config(&[]));
        let r = preflight("http://a.test")
            .header("access-control-request-headers", "x-one,x-two")
            .access(&p)
            .await
            .expect("answered at the gateway");
        assert_eq!(r.status, StatusCode::OK);
        assert!(matches!(r.body, crate::Body::Empty));
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some("*")
        );
        assert_eq!(
            header(&r, "access-control-allow-methods").as_deref(),
            Some("GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT")
        );
        assert_eq!(
            header(&r, "access-control-allow-headers").as_deref(),
            Some("x-one,x-two")
        );
        assert_eq!(header(&r, "vary"), None);
        assert_eq!(header(&r, "access-control-max-age"), None);
    }

    #[tokio::test]
    async fn a_configured_preflight_uses_every_field() {
        let mut c = config(&["http://a.test"]);
        c.methods = Some(vec!["GET".into(), "POST".into()]);
        c.headers = vec!["x-a".into(), "x-b".into()];
        c.credentials = true;
        c.max_age = Some(3600);
        c.private_network = true;
        let p = build(c);
        let r = preflight("http://b.test")
            .header("access-control-request-private-network", "true")
            .access(&p)
            .await
            .expect("answered");
        // A single plain origin is sent as written, whatever the request's.
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some("http://a.test")
        );
        assert_eq!(header(&r, "vary").as_deref(), Some("Origin"));
        assert_eq!(
            header(&r, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        assert_eq!(
            header(&r, "access-control-allow-methods").as_deref(),
            Some("GET,POST")
        );
        assert_eq!(
            header(&r, "access-control-allow-headers").as_deref(),
            Some("x-a,x-b")
        );
        assert_eq!(
            header(&r, "access-control-max-age").as_deref(),
            Some("3600")
        );
        assert_eq!(
            header(&r, "access-control-allow-private-network").as_deref(),
            Some("true")
        );
    }

    #[tokio::test]
    async fn not_a_preflight_without_origin_or_request_method_and_continue_passes() {
        let p = build(config(&[]));
        let mut no_acrm = TestRequest::new(Method::OPTIONS, "/").header("origin", "http://a");
        assert!(no_acrm.access(&p).await.is_none());
        // Not a preflight: the actual-response headers are added.
        let head = no_acrm.response(&p, StatusCode::OK, &[]);
        assert_eq!(
            get(&head, "access-control-allow-origin").as_deref(),
            Some("*")
        );

        let mut c = config(&[]);
        c.preflight_continue = true;
        let p = build(c);
        let mut req = preflight("http://a.test");
        assert!(req.access(&p).await.is_none());
        // The upstream owns the preflight: nothing added to its answer.
        let head = req.response(&p, StatusCode::NO_CONTENT, &[]);
        assert_eq!(get(&head, "access-control-allow-origin"), None);
    }

    #[tokio::test]
    async fn regex_and_exact_origins_are_echoed_only_when_they_match() {
        let mut c = config(&[
            "http://exact.test:80",
            r"(.*[.])?example\.com",
            "https://x.test:8443",
        ]);
        c.exposed_headers = vec!["x-total".into(), "x-page".into()];
        c.credentials = true;
        let p = build(c);
        let ok = actual(&p, Some("http://exact.test")).await;
        assert_eq!(
            get(&ok, "access-control-allow-origin").as_deref(),
            Some("http://exact.test")
        );
        assert_eq!(get(&ok, "vary").as_deref(), Some("Accept-Encoding, Origin"));
        assert_eq!(
            get(&ok, "access-control-expose-headers").as_deref(),
            Some("x-total,x-page")
        );
        assert_eq!(
            get(&ok, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        // By host: any scheme and port, normalized.
        let ok = actual(&p, Some("https://api.example.com:443")).await;
        assert_eq!(
            get(&ok, "access-control-allow-origin").as_deref(),
            Some("https://api.example.com")
        );
        // Anchored: a suffix trick does not match.
        let no = actual(&p, Some("https://example.com.evil.test")).await;
        assert_eq!(get(&no, "access-control-allow-origin"), None);
        assert_eq!(get(&no, "vary").as_deref(), Some("Accept-Encoding, Origin"));
        let ok = actual(&p, Some("https://x.test:8443")).await;
        assert!(get(&ok, "access-control-allow-origin").is_some());
        let no = actual(&p, Some("https://x.test")).await;
        assert_eq!(get(&no, "access-control-allow-origin"), None);
    }

    #[tokio::test]
    async fn star_with_credentials_reflects_the_origin() {
        let mut c = config(&["*"]);
        c.credentials = true;
        let p = build(c);
        let h = actual(&p, Some("http://a.test")).await;
        assert_eq!(
            get(&h, "access-control-allow-origin").as_deref(),
            Some("http://a.test")
        );
        assert_eq!(
            get(&h, "access-control-allow-credentials").as_deref(),
            Some("true")
        );
        let h = actual(&p, None).await;
        assert_eq!(get(&h, "access-control-allow-origin").as_deref(), Some("*"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        assert_eq!(get(&h, "vary").as_deref(), Some("Accept-Encoding"));

        let mut c = config(&["*"]);
        c.allow_origin_absent = false;
        let h = actual(&build(c), None).await;
        assert_eq!(get(&h, "access-control-allow-origin"), None);
    }

    #[test]
    fn bad_fields_are_named() {
        let mut c = config(&["http://ok.test", "(unclosed", "a{99999}{99999}"]);
        c.methods = Some(vec!["GET".into(), "FETCH".into()]);
        c.headers = vec!["bad\nvalue".into()];
        let e = Cors::build(c, &BuildContext::new(PluginScope::Global)).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec!["origins[1]", "origins[2]", "methods[1]", "headers"]
        );
    }

    #[test]
    fn origins_normalize_like_kong() {
        assert_eq!(
            normalize_origin("https://a.test:443"),
            ("https://a.test".into(), "a.test".into())
        );
        assert_eq!(
            normalize_origin("http://a.test:8080/x"),
            ("http://a.test:8080".into(), "a.test".into())
        );
        assert_eq!(
            normalize_origin("http://[::1]:80"),
            ("http://[::1]".into(), "[::1]".into())
        );
        assert_eq!(normalize_origin("null"), ("null".into(), "null".into()));
    }
}
