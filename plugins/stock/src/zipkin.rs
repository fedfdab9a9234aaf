//! `zipkin`: a span per request (and per plugin access phase, upstream connection and
//! upstream request) sent as Zipkin JSON v2 to a collector, with B3, W3C, Jaeger and OT
//! context propagation (see docs/plugins/zipkin.md).

use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use pingway_plugin::{
    BuildContext, BuildPlugin, ConfigError, Flow, LogEntry, Plugin, Request, ResponseView,
    UpstreamRequest,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::loggers::config::QueueConfig;
use crate::loggers::{counters, LogQueue};
use crate::opentelemetry::flavor;
use crate::tracing::config::{client, PropagationConfig};
use crate::tracing::propagation::{hex, Format, Propagation};
use crate::tracing::span::{request_spans, Naming, Value};
use crate::tracing::{collector_headers, endpoint, rate, zipkin, Encoding, TraceSink, Tracer};

/// Tags read from the `tags_header` of one request, at most; more are dropped and
/// counted in the span's `pingway.tags_dropped` tag.
pub const MAX_HEADER_TAGS: usize = 32;
/// The longest tag name or value read from the `tags_header` (longer pairs are
/// dropped and counted).
pub const MAX_TAG_LEN: usize = 256;
/// `static_tags` entries, at most.
pub const MAX_STATIC_TAGS: usize = 64;

/// One of Kong's `static_tags`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticTag {
    /// The tag's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// `zipkin` configuration (Kong's fields).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZipkinConfig {
    /// The collector's spans URL (`http://zipkin:9411/api/v2/spans`).
    pub http_endpoint: String,
    /// The probability that a request without a caller's sampling decision is traced,
    /// 0 to 1 (default 0.001).
    #[serde(default = "default_ratio")]
    pub sample_ratio: f64,
    /// The format written when the request carried none (default `b3`).
    #[serde(default = "default_header_type")]
    pub default_header_type: String,
    /// `preserve` (default), `ignore`, or a format written besides the incoming one.
    #[serde(default = "preserve")]
    pub header_type: String,
    /// Kong's `propagation` block; when present, it replaces `header_type` and
    /// `default_header_type`.
    #[serde(default)]
    pub propagation: Option<PropagationConfig>,
    /// Tag spans with the consumer and credential (default true).
    #[serde(default = "yes")]
    pub include_credential: bool,
    /// The request header whose `name=value; name2=value2` pairs become tags (default
    /// `Zipkin-Tags`).
    #[serde(default = "default_tags_header")]
    pub tags_header: String,
    /// The `localEndpoint.serviceName` of the spans (default `kong`).
    #[serde(default = "kong")]
    pub local_service_name: String,
    /// New trace ids' width in bytes: 16 (default) or 8.
    #[serde(default = "sixteen")]
    pub traceid_byte_count: u8,
    /// The request span's name: `method` (default) or `method_path`.
    #[serde(default = "default_span_name")]
    pub http_span_name: String,
    /// Tags added to every request span.
    #[serde(default)]
    pub static_tags: Vec<StaticTag>,
    /// Connecting to the collector, in milliseconds (default 2000).
    #[serde(default = "two_thousand")]
    pub connect_timeout: u64,
    /// Sending a batch, in milliseconds (default 5000).
    #[serde(default = "five_thousand")]
    pub send_timeout: u64,
    /// Reading the collector's answer, in milliseconds (default 5000).
    #[serde(default = "five_thousand")]
    pub read_timeout: u64,
    /// A response header that carries the trace id to the client.
    #[serde(default)]
    pub http_response_header_for_traceid: Option<String>,
    /// The queue: batch size, coalescing delay, bound, retries.
    #[serde(default)]
    pub queue: QueueConfig,
}

fn default_ratio() -> f64 {
    0.001
}
fn default_header_type() -> String {
    "b3".into()
}
fn preserve() -> String {
    "preserve".into()
}
fn yes() -> bool {
    true
}
fn default_tags_header() -> String {
    "Zipkin-Tags".into()
}
fn kong() -> String {
    "kong".into()
}
fn sixteen() -> u8 {
    16
}
fn default_span_name() -> String {
    "method".into()
}
fn two_thousand() -> u64 {
    2000
}
fn five_thousand() -> u64 {
    5000
}

/// The `zipkin` plugin.
#[derive(Debug)]
pub struct Zipkin {
    tracer: Tracer,
    service: String,
    include_credential: bool,
    tags_header: HeaderName,
    static_tags: Vec<(String, Value)>,
    response_header: Option<HeaderName>,
    queue: LogQueue,
    drain_limit: Duration,
}

/// Kong's `Zipkin-Tags` format: `name=value` pairs separated by `;`, spaces trimmed.
/// Keeps at most [`MAX_HEADER_TAGS`] pairs of at most [`MAX_TAG_LEN`] bytes each;
/// returns the tags and how many pairs were dropped (malformed pairs are ignored, not
/// counted).
pub fn parse_tags(header: &str) -> (Vec<(String, String)>, usize) {
    let mut tags = Vec::new();
    let mut dropped = 0;
    for pair in header.split(';') {
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || value.is_empty() {
            continue;
        }
        if tags.len() >= MAX_HEADER_TAGS || name.len() > MAX_TAG_LEN || value.len() > MAX_TAG_LEN {
            dropped += 1;
            continue;
        }
        tags.push((name.to_string(), value.to_string()));
    }
    (tags, dropped)
}

impl Zipkin {
    fn request_tags(&self, entry: &LogEntry<'_>) -> Vec<(String, Value)> {
        let req = entry.request;
        let mut t: Vec<(String, Value)> = vec![
            ("lc".into(), Value::Str("kong".into())),
            ("http.method".into(), Value::Str(req.method.to_string())),
            ("http.path".into(), Value::Str(req.uri.path().to_string())),
            (
                "http.protocol".into(),
                Value::Str(flavor(req.version).into()),
            ),
            ("http.status_code".into(), Value::Int(entry.status.into())),
        ];
        if let Some(route) = &entry.ctx.route {
            t.push(("kong.route".into(), Value::Str(route.name.to_string())));
        }
        if let Some(up) = entry.upstream {
            t.push(("kong.service".into(), Value::Str(up.to_string())));
        }
        if self.include_credential && entry.ctx.is_authenticated() {
            if let Some(c) = entry.ctx.credential() {
                t.push(("kong.credential".into(), Value::Str(c.to_string())));
            }
            if let Some(c) = entry.ctx.consumer() {
                t.push(("kong.consumer".into(), Value::Str(c.id.to_string())));
            }
        }
        t.extend(self.static_tags.iter().cloned());
        if let Some(h) = req
            .headers
            .get(&self.tags_header)
            .and_then(|v| v.to_str().ok())
        {
            let (tags, dropped) = parse_tags(h);
            t.extend(tags.into_iter().map(|(k, v)| (k, Value::Str(v))));
            if dropped > 0 {
                t.push(("pingway.tags_dropped".into(), Value::Int(dropped as i64)));
            }
        }
        t
    }
}

#[async_trait]
impl Plugin for Zipkin {
    fn wants_rewrite(&self) -> bool {
        true
    }

    async fn on_rewrite(&self, req: &mut Request<'_>) -> Flow {
        if self.tracer.must_decide(req.ctx()) {
            let state = self.tracer.begin(req.headers());
            self.tracer.store(req.ctx_mut(), state);
        }
        Flow::Continue
    }

    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        self.on_rewrite(req).await
    }

    fn wants_timings(&self) -> bool {
        true
    }

    fn on_upstream_request(&self, req: &mut UpstreamRequest<'_>) {
        self.tracer.inject(req);
    }

    fn on_response(&self, resp: &mut ResponseView<'_>) {
        if let Some(name) = &self.response_header {
            let id = self.tracer.state(resp.ctx()).map(|s| {
                if s.short && s.trace_id[..8] == [0; 8] {
                    hex(&s.trace_id[8..])
                } else {
                    hex(&s.trace_id)
                }
            });
            if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                resp.insert_header(name.clone(), v);
            }
        }
    }

    fn on_log(&self, entry: &LogEntry<'_>) {
        let state = match self.tracer.state(entry.ctx) {
            Some(s) => s.clone(),
            None => self.tracer.begin(&entry.request.headers),
        };
        if !state.sampled {
            return;
        }
        let spans = request_spans(entry, &state, self.tracer.naming, self.request_tags(entry));
        self.queue.push(zipkin::encode(
            &spans,
            &self.service,
            state.short,
            Some(entry.ctx.client_ip),
        ));
    }

    async fn drain(&self) {
        self.queue.drain(self.drain_limit).await;
    }
}

impl BuildPlugin for Zipkin {
    const NAME: &'static str = "zipkin";
    /// Kong's priority for zipkin.
    const PRIORITY: i32 = 100_000;
    type Config = ZipkinConfig;

    fn build(config: ZipkinConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let url = endpoint("http_endpoint", &config.http_endpoint)?;
        let sample_rate = rate("sample_ratio", config.sample_ratio)?;
        let default = Format::parse("default_header_type", &config.default_header_type)?;
        let propagation = match &config.propagation {
            Some(p) => p.compile(default)?,
            None => Propagation::from_header_type(&config.header_type, default)?,
        };
        let short_trace_ids = match config.traceid_byte_count {
            16 => false,
            8 => true,
            _ => return Err(ConfigError::new("traceid_byte_count", "one of 8, 16")),
        };
        let with_path = match config.http_span_name.as_str() {
            "method" => false,
            "method_path" => true,
            _ => {
                return Err(ConfigError::new(
                    "http_span_name",
                    "one of method, method_path",
                ))
            }
        };
        let tags_header = HeaderName::from_bytes(config.tags_header.as_bytes())
            .map_err(|_| ConfigError::new("tags_header", "not a valid header name"))?;
        if config.static_tags.len() > MAX_STATIC_TAGS {
            return Err(ConfigError::new(
                "static_tags",
                format!("at most {MAX_STATIC_TAGS} tags"),
            ));
        }
        let static_tags = config
            .static_tags
            .iter()
            .map(|t| (t.name.clone(), Value::Str(t.value.clone())))
            .collect();
        let response_header = match &config.http_response_header_for_traceid {
            Some(n) => Some(HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                ConfigError::new(
                    "http_response_header_for_traceid",
                    "not a valid header name",
                )
            })?),
            None => None,
        };
        let settings = config.queue.check()?;
        let (client, total) = client(
            config.connect_timeout,
            config.send_timeout,
            config.read_timeout,
        )?;
        let headers = collector_headers("headers", &Default::default(), "application/json")?;
        let lifecycle = cx
            .lifecycle()
            .ok_or_else(|| ConfigError::new("", "no runtime for the background task"))?;
        let counters = counters(Self::NAME).ok_or_else(|| ConfigError::new("", "no counters"))?;
        let sink = TraceSink {
            client,
            url,
            headers,
            encoding: Encoding::ZipkinJson,
        };
        Ok(Zipkin {
            tracer: Tracer {
                propagation,
                sample_rate,
                short_trace_ids,
                naming: Naming::Zipkin { with_path },
            },
            service: config.local_service_name,
            include_credential: config.include_credential,
            tags_header,
            static_tags,
            response_header,
            queue: LogQueue::start(Self::NAME, settings, sink, counters, &lifecycle),
            drain_limit: total.max(Duration::from_secs(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_header_is_parsed_and_bounded() {
        let (tags, dropped) = parse_tags(" env = prod ;team=core; broken; =x; y= ");
        assert_eq!(
            tags,
            vec![
                ("env".into(), "prod".into()),
                ("team".into(), "core".into())
            ]
        );
        assert_eq!(dropped, 0);
        let many: Vec<String> = (0..MAX_HEADER_TAGS + 5)
            .map(|i| format!("t{i}=v"))
            .collect();
        let (tags, dropped) = parse_tags(&many.join(";"));
        assert_eq!((tags.len(), dropped), (MAX_HEADER_TAGS, 5));
        let long = format!("a={}", "v".repeat(MAX_TAG_LEN + 1));
        assert_eq!(parse_tags(&long), (vec![], 1));
    }
}
