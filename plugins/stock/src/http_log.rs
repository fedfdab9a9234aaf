//! `http-log`: Kong's log entry for every request, POSTed (or PUT, PATCH) to an HTTP
//! collector in batches from a bounded queue (see docs/plugins/http-log.md).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use pingway_plugin::{BuildContext, BuildPlugin, ConfigError, LogEntry, Plugin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::loggers::config::{millis, reject_custom_fields_by_lua, QueueConfig};
use crate::loggers::{counters, kong_entry, Deliver, LogQueue};

/// `http-log` configuration (Kong's fields).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpLogConfig {
    /// The collector's URL (`http://`). User information in it
    /// (`http://user:pass@host/`) is sent as Basic authentication.
    pub http_endpoint: String,
    /// `POST` (default), `PUT` or `PATCH`.
    #[serde(default = "default_method")]
    pub method: String,
    /// `application/json` (default) or `application/json; charset=utf-8`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// How long one request to the collector may take, in milliseconds (default 10000).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// How long an idle connection to the collector is kept, in milliseconds (default
    /// 60000).
    #[serde(default = "default_keepalive")]
    pub keepalive: u64,
    /// Headers added to every request to the collector (an `Authorization`, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The queue: batch size, coalescing delay, bound, retries.
    #[serde(default)]
    pub queue: QueueConfig,
    /// Kong's Lua hook: not supported; any value but `null` or `{}` is refused.
    #[serde(default)]
    pub custom_fields_by_lua: Option<serde_json::Value>,
    /// Kong's field before 3.3 (deprecated there, still accepted): when set, it
    /// replaces `queue.max_batch_size`, as in Kong.
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// Kong's field before 3.3, in seconds (deprecated there, still accepted): when set,
    /// it replaces `queue.max_coalescing_delay`, as in Kong.
    #[serde(default)]
    pub flush_timeout: Option<f64>,
    /// Kong's field before 3.3 (deprecated there): accepted and ignored, as Kong 3.3+
    /// ignores it; retries are bounded by `queue.max_retry_time`.
    #[serde(default)]
    pub retry_count: Option<i64>,
}

fn default_method() -> String {
    "POST".into()
}
fn default_content_type() -> String {
    "application/json".into()
}
fn default_timeout() -> u64 {
    10_000
}
fn default_keepalive() -> u64 {
    60_000
}

/// The `http-log` plugin.
#[derive(Debug)]
pub struct HttpLog {
    queue: LogQueue,
    drain_limit: Duration,
}

#[async_trait]
impl Plugin for HttpLog {
    fn on_log(&self, entry: &LogEntry<'_>) {
        if let Ok(body) = serde_json::to_vec(&kong_entry(entry)) {
            self.queue.push(body);
        }
    }

    async fn drain(&self) {
        self.queue.drain(self.drain_limit).await;
    }
}

/// Sends batches to the collector.
struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    basic: Option<(String, String)>,
    single: bool,
}

#[async_trait]
impl Deliver for HttpSink {
    async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), String> {
        // Kong: one object when the batch size is 1, an array otherwise.
        let body = if self.single && batch.len() == 1 {
            batch[0].clone()
        } else {
            let mut body = Vec::with_capacity(batch.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
            body.push(b'[');
            for (i, e) in batch.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e);
            }
            body.push(b']');
            body
        };
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .body(body);
        if let Some((user, pass)) = &self.basic {
            request = request.basic_auth(user, Some(pass));
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the collector answered {}", r.status())),
            Err(e) => Err(format!("cannot reach the collector: {}", e.without_url())),
        }
    }
}

impl BuildPlugin for HttpLog {
    const NAME: &'static str = "http-log";
    /// Kong's priority for http-log.
    const PRIORITY: i32 = 12;
    type Config = HttpLogConfig;

    fn build(config: HttpLogConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        reject_custom_fields_by_lua(&config.custom_fields_by_lua)?;
        let mut url = reqwest::Url::parse(&config.http_endpoint)
            .ok()
            .filter(|u| u.scheme() == "http" && u.host().is_some())
            .ok_or_else(|| {
                ConfigError::new(
                    "http_endpoint",
                    "must be an http:// URL with a host (https:// is not supported yet)",
                )
            })?;
        let basic = if url.username().is_empty() {
            None
        } else {
            let user = url.username().to_string();
            let pass = url.password().unwrap_or("").to_string();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            Some((user, pass))
        };
        let method = match config.method.as_str() {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            _ => return Err(ConfigError::new("method", "one of POST, PUT, PATCH")),
        };
        if !["application/json", "application/json; charset=utf-8"]
            .contains(&config.content_type.as_str())
        {
            return Err(ConfigError::new(
                "content_type",
                "one of \"application/json\", \"application/json; charset=utf-8\"",
            ));
        }
        let timeout = millis("timeout", config.timeout)?;
        let keepalive = millis("keepalive", config.keepalive)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let field = format!("headers.{name}");
            let n = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::new(field.clone(), "not a valid header name"))?;
            // The value is never repeated in the message: it may be a credential.
            let v = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| ConfigError::new(field, "not a valid header value"))?;
            headers.insert(n, v);
        }
        if let Ok(ct) = reqwest::header::HeaderValue::from_str(&config.content_type) {
            headers.insert(reqwest::header::CONTENT_TYPE, ct);
        }
        let mut queue = config.queue.clone();
        if let Some(n) = config.queue_size {
            queue.max_batch_size = n;
        }
        if let Some(t) = config.flush_timeout {
            queue.max_coalescing_delay = t;
        }
        let settings = queue.check()?;
        // No I/O: connections open when the first batch is sent.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .pool_idle_timeout(keepalive)
            .build()
            .map_err(|e| ConfigError::new("", format!("cannot create the HTTP client: {e}")))?;
        let lifecycle = cx
            .lifecycle()
            .ok_or_else(|| ConfigError::new("", "no runtime for the background task"))?;
        let sink = HttpSink {
            client,
            url,
            method,
            headers,
            basic,
            single: settings.max_batch_size == 1,
        };
        let counters = counters(Self::NAME).ok_or_else(|| ConfigError::new("", "no counters"))?;
        Ok(HttpLog {
            queue: LogQueue::start(Self::NAME, settings, sink, counters, &lifecycle),
            // Each attempt is bounded by `timeout`; the gateway's grace period bounds it all.
            drain_limit: timeout.max(Duration::from_secs(1)),
        })
    }
}
