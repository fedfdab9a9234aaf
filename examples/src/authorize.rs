//! `http-authorize`: asks an HTTP service whether to let each request through (an
//! external authorization call-out, like nginx's `auth_request` or Traefik's
//! ForwardAuth).
//!
//! ```yaml
//! plugins:
//!   - name: http-authorize
//!     config:
//!       url: http://authz.internal:8181/check
//!       timeout: 250ms              # or 250 (milliseconds)
//!       forward_headers: [authorization]
//!       upstream_headers: [x-authz-subject]
//!       cache_ttl: 10s
//!       cache_size: 1000
//! ```
//!
//! For each request the plugin sends `method` (GET by default) to `url` with the
//! request's `forward_headers` (and nothing else: the decision depends on them alone,
//! which is what makes it cacheable). The service's answer:
//!
//! - 2xx → the request goes on; the service's `upstream_headers` are copied onto it
//!   (after removing any the client sent, so a client cannot forge them);
//! - 401 / 403 → that status, with Kong's messages (`Unauthorized`, `You cannot consume
//!   this service`), and the service's `WWW-Authenticate` on a 401;
//! - anything else, a timeout, a refused connection → 503 (fail closed), and a warning
//!   at most once per `error_log_interval`, never per request.
//!
//! Answers 2xx, 401 and 403 are cached for `cache_ttl`, keyed by the forwarded header
//! values (a hash to find the entry, the values themselves compared to confirm it), in a
//! [`TtlCache`] of at most `cache_size` entries. Failures are not cached. Concurrent
//! identical requests that miss the cache each ask the service (no request coalescing:
//! a deliberate simplification).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pingway::plugins::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use pingway::plugins::{
    async_trait, BuildContext, BuildPlugin, ConfigError, Flow, Plugin, Request, Response,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config_duration::ConfigDuration;
use crate::log_throttle::LogThrottle;
use crate::ttl_cache::TtlCache;

/// The largest `cache_size` accepted: the cache is memory the gateway keeps per instance.
pub const MAX_CACHE_SIZE: usize = 100_000;

/// How much of the service's response body is read (to reuse its connection) before it
/// is dropped: the decision is in the status and headers, never in the body.
const MAX_SERVICE_BODY: usize = 16 * 1024;

/// The method of the authorization request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuthorizeMethod {
    /// `GET` (the default).
    #[default]
    Get,
    /// `POST`, with an empty body.
    Post,
}

/// `http-authorize` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpAuthorizeConfig {
    /// The authorization service's URL (`http://`).
    pub url: String,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: AuthorizeMethod,
    /// How long to wait for the service's answer (default 250ms).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Request headers sent to the service (default `[authorization]`).
    #[serde(default = "default_forward_headers")]
    pub forward_headers: Vec<String>,
    /// Headers of the service's 2xx answer copied onto the request sent upstream (the
    /// client's own values of them are always removed).
    #[serde(default)]
    pub upstream_headers: Vec<String>,
    /// How long an answer is reused (default 10s; 0 disables the cache).
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: ConfigDuration,
    /// The most answers cached (default 1000, at most 100000).
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// At most one warning about an unreachable service per this interval (default 10s).
    #[serde(default = "default_error_log_interval")]
    pub error_log_interval: ConfigDuration,
}

fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_millis(250)
}

fn default_forward_headers() -> Vec<String> {
    vec!["authorization".into()]
}

fn default_cache_ttl() -> ConfigDuration {
    ConfigDuration::from_millis(10_000)
}

fn default_cache_size() -> usize {
    1000
}

fn default_error_log_interval() -> ConfigDuration {
    ConfigDuration::from_millis(10_000)
}

/// What the service decided (what the cache keeps).
#[derive(Debug, Clone)]
enum Decision {
    /// Let the request through with these headers added upstream.
    Allow(Vec<(HeaderName, HeaderValue)>),
    /// 401, with the service's `WWW-Authenticate` if it sent one.
    Unauthorized(Option<HeaderValue>),
    /// 403.
    Forbidden,
}

/// Why the service gave no decision: every one of these answers 503.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the service: {0}")]
    Unreachable(reqwest::Error),
    #[error("unexpected status {0}")]
    Status(StatusCode),
}

/// The forwarded header values of a request: the cache key.
type CacheKey = (u64, Vec<Option<HeaderValue>>);

/// The `http-authorize` plugin.
#[derive(Debug)]
pub struct HttpAuthorize {
    /// One client, so one connection pool, for every request of the instance. The call
    /// runs on the proxy's own runtime (awaited in `on_request`): its connections live
    /// as long as that runtime, which is the process's.
    client: reqwest::Client,
    url: reqwest::Url,
    method: reqwest::Method,
    timeout: Duration,
    forward: Vec<HeaderName>,
    upstream_headers: Vec<HeaderName>,
    hasher: RandomState,
    /// Held only to read or insert, never across an `.await`.
    cache: Mutex<TtlCache<CacheKey, Decision>>,
    throttle: LogThrottle,
}

impl HttpAuthorize {
    fn key(&self, headers: &HeaderMap) -> CacheKey {
        let values: Vec<Option<HeaderValue>> = self
            .forward
            .iter()
            .map(|name| headers.get(name).cloned())
            .collect();
        // A per-instance random key: nobody can aim two credentials at one hash.
        let hash = self.hasher.hash_one(&values);
        (hash, values)
    }

    async fn ask(&self, key: &CacheKey) -> Result<Decision, CallError> {
        let mut headers = HeaderMap::new();
        for (name, value) in self.forward.iter().zip(&key.1) {
            if let Some(v) = value {
                headers.insert(name.clone(), v.clone());
            }
        }
        let sent = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(headers)
            .timeout(self.timeout)
            .send()
            .await;
        let mut resp = sent.map_err(|e| {
            if e.is_timeout() {
                CallError::Timeout(self.timeout)
            } else {
                CallError::Unreachable(e)
            }
        })?;
        let status = resp.status();
        let decision = if status.is_success() {
            let copied = self
                .upstream_headers
                .iter()
                .filter_map(|n| resp.headers().get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            Decision::Allow(copied)
        } else if status == StatusCode::UNAUTHORIZED {
            Decision::Unauthorized(resp.headers().get(header::WWW_AUTHENTICATE).cloned())
        } else if status == StatusCode::FORBIDDEN {
            Decision::Forbidden
        } else {
            return Err(CallError::Status(status));
        };
        // Read a small body to the end so the connection can be reused; a larger or a
        // failing one is just dropped (the decision is already made).
        let mut read = 0;
        while let Ok(Some(chunk)) = resp.chunk().await {
            read += chunk.len();
            if read > MAX_SERVICE_BODY {
                break;
            }
        }
        Ok(decision)
    }
}

#[async_trait]
impl Plugin for HttpAuthorize {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        // Whatever the decision, the client's own copies of these never go upstream.
        for name in &self.upstream_headers {
            req.remove_header(name);
        }
        let key = self.key(req.headers());
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key, Instant::now());
        let decision = match cached {
            Some(d) => d,
            None => match self.ask(&key).await {
                Ok(d) => {
                    self.cache
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, d.clone(), Instant::now());
                    d
                }
                Err(e) => {
                    if let Some(held_back) = self.throttle.permit() {
                        log::warn!(
                            "http-authorize: {} ({e}); answering 503 ({held_back} more such failures since the last warning)",
                            self.url
                        );
                    }
                    return Flow::Respond(Response::error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The authorization service is unavailable",
                    ));
                }
            },
        };
        match decision {
            Decision::Allow(headers) => {
                for (name, value) in headers {
                    req.insert_header(name, value);
                }
                Flow::Continue
            }
            Decision::Unauthorized(challenge) => {
                let resp = Response::error(StatusCode::UNAUTHORIZED, "Unauthorized");
                Flow::Respond(match challenge {
                    Some(c) => resp.with_header(header::WWW_AUTHENTICATE, c),
                    None => resp,
                })
            }
            Decision::Forbidden => Flow::Respond(Response::error(
                StatusCode::FORBIDDEN,
                "You cannot consume this service",
            )),
        }
    }
}

fn header_names(field: &str, names: &[String]) -> Result<Vec<HeaderName>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                ConfigError::new(
                    format!("{field}[{i}]"),
                    format!("{n:?} is not a valid header name"),
                )
            })
        })
        .collect()
}

impl BuildPlugin for HttpAuthorize {
    const NAME: &'static str = "http-authorize";
    /// With the authentication plugins (Kong's `key-auth` is 1250, `basic-auth` 1100):
    /// before `ip-restriction` and `rate-limiting`.
    const PRIORITY: i32 = 1050;
    type Config = HttpAuthorizeConfig;

    fn build(config: HttpAuthorizeConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let url = reqwest::Url::parse(&config.url)
            .ok()
            .filter(|u| u.scheme() == "http" && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::new(
                    "url",
                    format!("{:?} is not an http:// URL with a host", config.url),
                )
            })?;
        if config.timeout.get().is_zero() {
            return Err(ConfigError::new("timeout", "must be more than zero"));
        }
        if config.cache_size > MAX_CACHE_SIZE {
            return Err(ConfigError::new(
                "cache_size",
                format!("at most {MAX_CACHE_SIZE}"),
            ));
        }
        let forward = header_names("forward_headers", &config.forward_headers)?;
        let upstream_headers = header_names("upstream_headers", &config.upstream_headers)?;
        // Building a client does no I/O (connections open on first use), so `pingway
        // validate` can build this plugin offline. Proxy variables of the environment
        // are ignored: the service is addressed directly.
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| ConfigError::new("", format!("cannot create the HTTP client: {e}")))?;
        Ok(HttpAuthorize {
            client,
            url,
            method: match config.method {
                AuthorizeMethod::Get => reqwest::Method::GET,
                AuthorizeMethod::Post => reqwest::Method::POST,
            },
            timeout: config.timeout.get(),
            forward,
            upstream_headers,
            hasher: RandomState::new(),
            cache: Mutex::new(TtlCache::new(config.cache_size, config.cache_ttl.get())),
            throttle: LogThrottle::new(config.error_log_interval.get()),
        })
    }
}

#[cfg(test)]
mod tests {
    use pingway::plugins::testkit::TestRequest;
    use pingway::plugins::PluginScope;

    use super::*;

    fn config(url: &str) -> HttpAuthorizeConfig {
        serde_json::from_value(serde_json::json!({
            "url": url,
            "upstream_headers": ["x-authz-subject"],
        }))
        .unwrap()
    }

    fn build(config: HttpAuthorizeConfig) -> Result<HttpAuthorize, ConfigError> {
        HttpAuthorize::build(config, &BuildContext::new(PluginScope::Global))
    }

    /// A port nothing listens on: bound, then released.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn an_unreachable_service_fails_closed_and_client_headers_are_stripped() {
        let p = build(config(&format!("http://127.0.0.1:{}/check", closed_port()))).unwrap();
        let mut req = TestRequest::get("/")
            .header("authorization", "Bearer t")
            .header("x-authz-subject", "forged");
        let answer = req.access(&p).await.unwrap();
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(req.parts().headers.get("x-authz-subject").is_none());
        // Failures are not cached.
        assert!(p.cache.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_cached_decision_answers_without_the_service() {
        let p = build(config(&format!("http://127.0.0.1:{}/check", closed_port()))).unwrap();
        let allowed = TestRequest::get("/").header("authorization", "Bearer good");
        let denied = TestRequest::get("/").header("authorization", "Bearer bad");
        let subject = HeaderValue::from_static("alice");
        let now = Instant::now();
        {
            let mut cache = p.cache.lock().unwrap();
            cache.insert(
                p.key(&allowed.parts().headers),
                Decision::Allow(vec![(HeaderName::from_static("x-authz-subject"), subject)]),
                now,
            );
            cache.insert(p.key(&denied.parts().headers), Decision::Forbidden, now);
        }
        let mut allowed = allowed;
        assert!(allowed.access(&p).await.is_none());
        assert_eq!(allowed.parts().headers["x-authz-subject"], "alice");
        let mut denied = denied;
        assert_eq!(
            denied.access(&p).await.unwrap().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn keys_compare_values_not_only_hashes() {
        let p = build(config("http://127.0.0.1:1/")).unwrap();
        let a = TestRequest::get("/").header("authorization", "a");
        let b = TestRequest::get("/").header("authorization", "b");
        assert_ne!(p.key(&a.parts().headers), p.key(&b.parts().headers));
        assert_eq!(p.key(&a.parts().headers), p.key(&a.parts().headers));
    }

    #[test]
    fn configuration_is_checked_at_build() {
        assert_eq!(
            build(config("ftp://x/")).unwrap_err().problems()[0].0,
            "url"
        );
        let mut c = config("http://authz/");
        c.cache_size = MAX_CACHE_SIZE + 1;
        assert_eq!(build(c).unwrap_err().problems()[0].0, "cache_size");
        let mut c = config("http://authz/");
        c.forward_headers = vec!["ok".into(), "not ok".into()];
        assert_eq!(build(c).unwrap_err().problems()[0].0, "forward_headers[1]");
        let c: HttpAuthorizeConfig =
            serde_json::from_value(serde_json::json!({"url": "http://a/", "timeout": 1500}))
                .unwrap();
        assert_eq!(c.timeout.get(), Duration::from_millis(1500));
    }
}
