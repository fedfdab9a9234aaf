//! `opentelemetry`: a span per request (and per plugin access phase, upstream
//! connection and upstream request) exported as OTLP/HTTP protobuf to a collector, with
//! W3C, B3, Jaeger and OT context propagation (see docs/plugins/opentelemetry.md).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use pingway_plugin::{
    BuildContext, BuildPlugin, ConfigError, Flow, LogEntry, Plugin, Request, ResponseView,
    UpstreamRequest,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::loggers::config::QueueConfig;
use crate::loggers::{counters, redact_query, LogQueue};
use crate::tracing::config::{client, PropagationConfig};
use crate::tracing::propagation::{hex, Format, Propagation};
use crate::tracing::span::{request_spans, Naming, Value};
use crate::tracing::{collector_headers, endpoint, otlp, rate, Encoding, TraceSink, Tracer};

/// Resource attributes kept, at most (each becomes part of every export).
pub const MAX_RESOURCE_ATTRIBUTES: usize = 64;

/// `opentelemetry` configuration (Kong's fields).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenTelemetryConfig {
    /// The OTLP/HTTP traces URL (`http://collector:4318/v1/traces`).
    #[serde(default)]
    pub traces_endpoint: Option<String>,
    /// Kong's older name for `traces_endpoint`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Kong's log export: not supported (only `null` is accepted).
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// Headers added to every request to the collector.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The resource's attributes (`service.name` is `kong` unless given).
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    /// The queue (Kong's default batch here: 200 requests' spans).
    #[serde(default)]
    pub queue: Option<QueueConfig>,
    /// Kong's deprecated `batch_span_count`: `queue.max_batch_size`.
    #[serde(default)]
    pub batch_span_count: Option<usize>,
    /// Kong's deprecated `batch_flush_delay` (seconds): `queue.max_coalescing_delay`.
    #[serde(default)]
    pub batch_flush_delay: Option<f64>,
    /// Connecting to the collector, in milliseconds (default 1000).
    #[serde(default = "thousand")]
    pub connect_timeout: u64,
    /// Sending a batch, in milliseconds (default 5000).
    #[serde(default = "five_thousand")]
    pub send_timeout: u64,
    /// Reading the collector's answer, in milliseconds (default 5000).
    #[serde(default = "five_thousand")]
    pub read_timeout: u64,
    /// The probability that a request without a caller's sampling decision is traced,
    /// 0 to 1 (default 0.01, Kong's `tracing_sampling_rate`).
    #[serde(default)]
    pub sampling_rate: Option<f64>,
    /// Kong's `propagation` block; when absent, `header_type` decides.
    #[serde(default)]
    pub propagation: Option<PropagationConfig>,
    /// Kong's deprecated `header_type` (default `preserve`): `preserve`, `ignore`, or a
    /// format.
    #[serde(default)]
    pub header_type: Option<String>,
    /// A response header that carries the trace id to the client.
    #[serde(default)]
    pub http_response_header_for_traceid: Option<String>,
}

fn thousand() -> u64 {
    1000
}
fn five_thousand() -> u64 {
    5000
}

/// The `opentelemetry` plugin.
#[derive(Debug)]
pub struct OpenTelemetry {
    tracer: Tracer,
    resource: Vec<KeyValue>,
    response_header: Option<HeaderName>,
    queue: LogQueue,
    drain_limit: Duration,
}

/// Kong's attributes of the request span.
fn request_attributes(entry: &LogEntry<'_>) -> Vec<(String, Value)> {
    let req = entry.request;
    let uri = match req.uri.query() {
        Some(q) => format!("{}?{}", req.uri.path(), redact_query(q)),
        None => req.uri.path().to_string(),
    };
    let mut a: Vec<(String, Value)> = vec![
        ("http.method".into(), Value::Str(req.method.to_string())),
        ("http.url".into(), Value::Str(uri)),
        ("http.flavor".into(), Value::Str(flavor(req.version).into())),
        (
            "net.peer.ip".into(),
            Value::Str(entry.ctx.client_ip.to_string()),
        ),
        ("http.status_code".into(), Value::Int(entry.status.into())),
        (
            "kong.request.id".into(),
            Value::Str(entry.ctx.request_id.to_string()),
        ),
    ];
    if let Some(host) = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        a.push(("http.host".into(), Value::Str(host.to_string())));
    }
    if let Some(route) = &entry.ctx.route {
        a.push(("kong.route".into(), Value::Str(route.name.to_string())));
    }
    if let Some(up) = entry.upstream {
        a.push(("kong.service".into(), Value::Str(up.to_string())));
    }
    a
}

/// Kong's `http.flavor` / Zipkin's `http.protocol` text for a version.
pub(crate) fn flavor(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

#[async_trait]
impl Plugin for OpenTelemetry {
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
            let id = self.tracer.state(resp.ctx()).map(|s| hex(&s.trace_id));
            if let Some(v) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                resp.insert_header(name.clone(), v);
            }
        }
    }

    fn on_log(&self, entry: &LogEntry<'_>) {
        // A request no phase of this plugin saw (answered before it ran) is traced from
        // its headers now.
        let state = match self.tracer.state(entry.ctx) {
            Some(s) => s.clone(),
            None => self.tracer.begin(&entry.request.headers),
        };
        if !state.sampled {
            return;
        }
        let spans = request_spans(
            entry,
            &state,
            Naming::OpenTelemetry,
            request_attributes(entry),
        );
        let tracestate = state
            .tracestate
            .as_ref()
            .and_then(|t| t.to_str().ok())
            .unwrap_or("");
        self.queue
            .push(otlp::encode(&spans, &self.resource, tracestate));
    }

    async fn drain(&self) {
        self.queue.drain(self.drain_limit).await;
    }
}

impl BuildPlugin for OpenTelemetry {
    const NAME: &'static str = "opentelemetry";
    /// Kong's priority for opentelemetry.
    const PRIORITY: i32 = 14;
    type Config = OpenTelemetryConfig;

    fn build(config: OpenTelemetryConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let url = match (&config.traces_endpoint, &config.endpoint) {
            (Some(t), _) => endpoint("traces_endpoint", t)?,
            (None, Some(e)) => endpoint("endpoint", e)?,
            (None, None) => {
                return Err(ConfigError::new("traces_endpoint", "is required"));
            }
        };
        if config.logs_endpoint.is_some() {
            return Err(ConfigError::new(
                "logs_endpoint",
                "is not supported by Pingway (traces only)",
            ));
        }
        let headers = collector_headers("headers", &config.headers, "application/x-protobuf")?;
        if config.resource_attributes.len() > MAX_RESOURCE_ATTRIBUTES {
            return Err(ConfigError::new(
                "resource_attributes",
                format!("at most {MAX_RESOURCE_ATTRIBUTES} attributes"),
            ));
        }
        let mut resource: Vec<KeyValue> = Vec::with_capacity(config.resource_attributes.len() + 1);
        if !config.resource_attributes.contains_key("service.name") {
            resource.push(otlp::string_attribute("service.name", "kong"));
        }
        for (k, v) in &config.resource_attributes {
            resource.push(otlp::string_attribute(k, v));
        }
        let sample_rate = rate("sampling_rate", config.sampling_rate.unwrap_or(0.01))?;
        let propagation = match &config.propagation {
            Some(p) => p.compile(Format::W3c)?,
            None => Propagation::from_header_type(
                config.header_type.as_deref().unwrap_or("preserve"),
                Format::W3c,
            )?,
        };
        let response_header = match &config.http_response_header_for_traceid {
            Some(n) => Some(HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                ConfigError::new(
                    "http_response_header_for_traceid",
                    "not a valid header name",
                )
            })?),
            None => None,
        };
        let mut queue = config.queue.clone().unwrap_or_else(|| QueueConfig {
            max_batch_size: 200,
            ..QueueConfig::default()
        });
        if let Some(n) = config.batch_span_count {
            queue.max_batch_size = n;
        }
        if let Some(d) = config.batch_flush_delay {
            queue.max_coalescing_delay = d;
        }
        let settings = queue.check()?;
        let (client, total) = client(
            config.connect_timeout,
            config.send_timeout,
            config.read_timeout,
        )?;
        let lifecycle = cx
            .lifecycle()
            .ok_or_else(|| ConfigError::new("", "no runtime for the background task"))?;
        let counters = counters(Self::NAME).ok_or_else(|| ConfigError::new("", "no counters"))?;
        let sink = TraceSink {
            client,
            url,
            headers,
            encoding: Encoding::OtlpProtobuf,
        };
        Ok(OpenTelemetry {
            tracer: Tracer {
                propagation,
                sample_rate,
                short_trace_ids: false,
                naming: Naming::OpenTelemetry,
            },
            resource,
            response_header,
            queue: LogQueue::start(Self::NAME, settings, sink, counters, &lifecycle),
            drain_limit: total.max(Duration::from_secs(1)),
        })
    }
}
