//! The admin API: a small HTTP/1.1 JSON service on its own listener, off unless the
//! configuration has an `admin:` section (see docs/admin.md).
//!
//! It is served by Pingora's own [`ServeHttp`] mechanism in the gateway's Pingora
//! server, beside the proxy: no second HTTP stack, and it starts and stops (gracefully)
//! with the proxy. Each request is answered from the configuration serving at that
//! moment; nothing on the proxy's request path waits for it.
//!
//! Bounds: Pingora limits a request head's size; the admin API never reads a request
//! body; `/explain` takes at most [`explain::MAX_HEADERS`](crate::explain::MAX_HEADERS)
//! headers.

mod dashboard;
mod proxy_cache;
pub mod resilience_view;
pub mod stats;
pub mod time;
pub mod views;

use std::sync::Arc;

use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::explain::{self, ExplainRequest};
use crate::reload::{ReloadError, ReloadOutcome, Reloader};

pub use time::rfc3339;

/// Renders extra text series for `GET /metrics` (the prometheus plugin's registry and
/// the gateway's own series are joined by the gateway).
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The admin API service.
pub struct AdminApi {
    reloader: Arc<Reloader>,
    metrics: Option<MetricsRenderer>,
    /// Held while a `POST /reload` runs.
    reloading: tokio::sync::Mutex<()>,
}

/// An answer: status and JSON body (or a text body for `/metrics`).
struct Answer {
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: StatusCode, value: &Value) -> Answer {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Answer {
            status,
            content_type: "application/json",
            body,
        }
    }

    fn error(status: StatusCode, message: &str) -> Answer {
        Answer::json(status, &json!({ "message": message }))
    }

    /// An answer without a body (`204`).
    fn empty(status: StatusCode) -> Answer {
        Answer {
            status,
            content_type: "application/json",
            body: Vec::new(),
        }
    }
}

impl AdminApi {
    /// An admin API over the gateway's reloader (which holds the serving configuration).
    pub fn new(reloader: Arc<Reloader>) -> Self {
        AdminApi {
            reloader,
            metrics: None,
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Adds a source of Prometheus text for `GET /metrics`.
    pub fn with_metrics(mut self, metrics: MetricsRenderer) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether the request carries the configured token (always true without one).
    /// Both sides are hashed first so that the comparison takes the same time whatever
    /// the token's length and contents.
    fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        let runtime = self.reloader.runtime().load();
        let Some(token) = runtime.config.admin.as_ref().and_then(|a| a.token.as_ref()) else {
            return true;
        };
        let Some(given) = authorization.and_then(bearer) else {
            return false;
        };
        let want = ring::digest::digest(&ring::digest::SHA256, token.expose().as_bytes());
        let got = ring::digest::digest(&ring::digest::SHA256, given);
        want.as_ref().ct_eq(got.as_ref()).into()
    }

    /// Answers one request.
    async fn answer(
        &self,
        method: &Method,
        uri: &http::Uri,
        authorization: Option<&[u8]>,
    ) -> Answer {
        let path = uri.path();
        // The dashboard's static files hold no data: a browser loads them without the
        // token, and their script sends the token (from the URL fragment) to `/stats`.
        if let Some(asset) = dashboard::asset(path) {
            if !GET_ONLY.contains(method) {
                return Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            return Answer {
                status: StatusCode::OK,
                content_type: asset.content_type,
                body: asset.body.as_bytes().to_vec(),
            };
        }
        // The token first: without it, not even which paths exist is told.
        if !self.authorized(authorization) {
            return Answer::error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid admin token (Authorization: Bearer <token>)",
            );
        }
        let Some(allowed) = allowed_methods(path) else {
            return Answer::error(StatusCode::NOT_FOUND, "no such admin endpoint");
        };
        if !allowed.contains(method) {
            return Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        if proxy_cache::matches(path) {
            return proxy_cache::answer(method, path).await;
        }
        let runtime = self.reloader.runtime().load_full();
        match path {
            "/status" => Answer::json(StatusCode::OK, &views::status(&self.reloader)),
            "/config" => Answer::json(StatusCode::OK, &views::config(&runtime.config)),
            "/routes" => Answer::json(StatusCode::OK, &views::routes(&runtime)),
            "/upstreams" => Answer::json(StatusCode::OK, &views::upstreams(&runtime)),
            "/consumers" => Answer::json(StatusCode::OK, &views::consumers(&runtime)),
            "/stats" => Answer::json(StatusCode::OK, &stats::stats(&self.reloader)),
            "/reload" => self.reload().await,
            "/explain" => match ExplainRequest::from_query(uri.query().unwrap_or("")) {
                Ok(req) => match explain::explain(&runtime, &req) {
                    Ok(e) => Answer::json(StatusCode::OK, &e.to_json()),
                    Err(e) => Answer::error(StatusCode::BAD_REQUEST, &e.to_string()),
                },
                Err(e) => Answer::error(StatusCode::BAD_REQUEST, &e.to_string()),
            },
            "/metrics" => Answer {
                status: StatusCode::OK,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self
                    .metrics
                    .as_ref()
                    .map(|m| m())
                    .unwrap_or_default()
                    .into_bytes(),
            },
            _ => Answer::error(StatusCode::NOT_FOUND, "no such admin endpoint"),
        }
    }

    /// Reloads the file now (off the async workers: reading the file and resolving
    /// target names block).
    async fn reload(&self) -> Answer {
        // One admin reload at a time: more would only queue on the reloader's lock, each
        // holding a blocking thread.
        let Ok(_running) = self.reloading.try_lock() else {
            return Answer::error(StatusCode::CONFLICT, "a reload is already running");
        };
        let reloader = self.reloader.clone();
        let result = tokio::task::spawn_blocking(move || reloader.reload_logged(true)).await;
        match result {
            Ok(Ok(ReloadOutcome::Applied {
                routes,
                reused_plugins,
            })) => Answer::json(
                StatusCode::OK,
                &json!({
                    "outcome": "applied",
                    "routes": routes,
                    "reused_plugins": reused_plugins,
                    "config": views::status(&self.reloader)["config"],
                }),
            ),
            Ok(Ok(ReloadOutcome::Unchanged)) => {
                Answer::json(StatusCode::OK, &json!({ "outcome": "unchanged" }))
            }
            Ok(Err(e)) => {
                let message = match &e {
                    ReloadError::Read(_) => {
                        "the configuration file cannot be read; the running configuration is kept"
                    }
                    ReloadError::Invalid(_) => {
                        "the configuration file is invalid; the running configuration is kept"
                    }
                };
                Answer::json(
                    StatusCode::BAD_REQUEST,
                    &json!({
                        "message": message,
                        "problems": views::problems(&e.problems()),
                    }),
                )
            }
            Err(_) => Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the reload did not finish",
            ),
        }
    }
}

/// The methods of the read endpoints.
const GET_ONLY: &[Method] = &[Method::GET, Method::HEAD];

/// The methods each endpoint answers, or None for an unknown path.
fn allowed_methods(path: &str) -> Option<&'static [Method]> {
    const POST: &[Method] = &[Method::POST];
    if dashboard::asset(path).is_some() {
        return Some(GET_ONLY);
    }
    match path {
        "/status" | "/config" | "/routes" | "/upstreams" | "/consumers" | "/explain"
        | "/metrics" | "/stats" => Some(GET_ONLY),
        "/reload" => Some(POST),
        p if proxy_cache::matches(p) => Some(&[Method::GET, Method::HEAD, Method::DELETE]),
        _ => None,
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
        .filter(|t| !t.is_empty())
}

#[async_trait]
impl ServeHttp for AdminApi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let uri = req.uri.clone();
        let authorization = req
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let answer = self.answer(&method, &uri, authorization.as_deref()).await;
        let mut builder = Response::builder().status(answer.status);
        if answer.status != StatusCode::NO_CONTENT {
            builder = builder
                .header(header::CONTENT_TYPE, answer.content_type)
                .header(header::CONTENT_LENGTH, answer.body.len());
        }
        builder = builder.header(header::CACHE_CONTROL, "no-store");
        if answer.status == StatusCode::METHOD_NOT_ALLOWED {
            let allow = allowed_methods(uri.path())
                .unwrap_or(&[])
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            builder = builder.header(header::ALLOW, allow);
        }
        if dashboard::asset(uri.path()).is_some() {
            for (name, value) in dashboard::SECURITY_HEADERS {
                builder = builder.header(*name, *value);
            }
        }
        if answer.status == StatusCode::UNAUTHORIZED {
            builder = builder.header(header::WWW_AUTHENTICATE, "Bearer realm=\"pingway-admin\"");
        }
        let body = if method == Method::HEAD {
            Vec::new()
        } else {
            answer.body
        };
        builder.body(body).unwrap_or_else(|_| {
            let mut r = Response::new(Vec::new());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_taken_from_the_header() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bear"), None);
    }

    #[test]
    fn methods_per_endpoint() {
        assert!(allowed_methods("/reload").unwrap().contains(&Method::POST));
        assert!(!allowed_methods("/status").unwrap().contains(&Method::POST));
        assert!(allowed_methods("/nope").is_none());
    }
}
