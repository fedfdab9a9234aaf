//! What the `opentelemetry` and `zipkin` plugins share: trace context propagation
//! ([`propagation`]), the spans a request makes ([`span`]), their encodings ([`otlp`],
//! [`zipkin`]), the per-request trace state and the HTTP sink that the logging plugins'
//! bounded queue delivers to.
//!
//! The request's ids and sampling decision are made once, in the access (or
//! pre-routing) phase, and kept in the request context; the upstream request carries
//! them; `on_log` builds and encodes the spans and queues them without waiting (a full
//! queue drops and counts). Export happens on the plugin runtime, after the client has
//! its response.

pub mod config;
pub mod otlp;
pub mod propagation;
pub mod span;
pub mod zipkin;

use std::collections::BTreeMap;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use pingway_plugin::{ConfigError, RequestCtx, UpstreamRequest};

use crate::loggers::Deliver;
use propagation::{Format, Outgoing, Propagation, SpanId, TraceId};
use span::Naming;

/// A request's trace, as one tracing plugin decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceState {
    /// The trace id (the caller's, or a new one).
    pub trace_id: TraceId,
    /// The gateway's request span.
    pub root: SpanId,
    /// The gateway's upstream-request span (the parent sent upstream).
    pub client: SpanId,
    /// The caller's span, the request span's parent.
    pub parent: Option<SpanId>,
    /// Whether spans are exported (and the sampled flag sent upstream).
    pub sampled: bool,
    /// The format the caller's context came in.
    pub found: Option<Format>,
    /// W3C `tracestate` to pass on.
    pub tracestate: Option<HeaderValue>,
    /// Whether the trace id is 64 bits wide.
    pub short: bool,
    /// The instance that decided it (a route's instance re-decides what a global one
    /// decided before routing, with its own settings).
    owner: usize,
}

/// The trace states of a request, one per tracing plugin (both may trace a request).
#[derive(Debug, Clone, Default)]
struct TraceStates {
    opentelemetry: Option<TraceState>,
    zipkin: Option<TraceState>,
}

/// The shared behaviour of a tracing plugin instance: propagation and sampling.
#[derive(Debug)]
pub struct Tracer {
    /// How contexts are read and written.
    pub propagation: Propagation,
    /// The probability that a request without a caller's decision is sampled.
    pub sample_rate: f64,
    /// New trace ids are 64 bits wide (Zipkin's `traceid_byte_count: 8`).
    pub short_trace_ids: bool,
    /// Whose slot in the request context this tracer uses, and its span names.
    pub naming: Naming,
}

impl Tracer {
    /// Decides the trace of a request with `headers`: continues the caller's trace when
    /// a configured format carries one (and honours its sampled flag), else starts one.
    pub fn begin(&self, headers: &HeaderMap) -> TraceState {
        let incoming = propagation::extract(headers, &self.propagation.extract);
        let sampled = incoming
            .as_ref()
            .and_then(|i| i.sampled)
            .unwrap_or_else(|| self.sample_rate >= 1.0 || fastrand::f64() < self.sample_rate);
        match incoming {
            Some(i) => TraceState {
                trace_id: i.trace_id,
                root: span::new_span_id(),
                client: span::new_span_id(),
                parent: Some(i.span_id),
                sampled,
                found: Some(i.format),
                tracestate: i.tracestate,
                short: i.short_trace_id,
                owner: self.id(),
            },
            None => TraceState {
                trace_id: span::new_trace_id(self.short_trace_ids),
                root: span::new_span_id(),
                client: span::new_span_id(),
                parent: None,
                sampled,
                found: None,
                tracestate: None,
                short: self.short_trace_ids,
                owner: self.id(),
            },
        }
    }

    fn id(&self) -> usize {
        self as *const Tracer as usize
    }

    /// Whether this instance still has to decide the request's trace: it decides once,
    /// in the first of its pre-routing or access phases, and again when another
    /// instance (the global one, before routing) decided it.
    pub fn must_decide(&self, ctx: &RequestCtx) -> bool {
        self.state(ctx).is_none_or(|s| s.owner != self.id())
    }

    /// This tracer's state for the request, if it decided one.
    pub fn state<'c>(&self, ctx: &'c RequestCtx) -> Option<&'c TraceState> {
        let states = ctx.extensions.get::<TraceStates>()?;
        match self.naming {
            Naming::OpenTelemetry => states.opentelemetry.as_ref(),
            Naming::Zipkin { .. } => states.zipkin.as_ref(),
        }
    }

    /// Keeps `state` as the request's trace (the first phase that runs decides; see
    /// [`Self::state`]).
    pub fn store(&self, ctx: &mut RequestCtx, state: TraceState) {
        let states = match ctx.extensions.get_mut::<TraceStates>() {
            Some(s) => s,
            None => {
                ctx.extensions.insert(TraceStates::default());
                match ctx.extensions.get_mut::<TraceStates>() {
                    Some(s) => s,
                    None => return,
                }
            }
        };
        match self.naming {
            Naming::OpenTelemetry => states.opentelemetry = Some(state),
            Naming::Zipkin { .. } => states.zipkin = Some(state),
        }
    }

    /// Writes the trace context into the upstream request: removes `clear` headers and
    /// those of the formats written, then writes each format to inject.
    pub fn inject(&self, req: &mut UpstreamRequest<'_>) {
        let Some(state) = self.state(req.ctx()).cloned() else {
            return;
        };
        for name in &self.propagation.clear {
            req.remove_header(name);
        }
        let out = Outgoing {
            trace_id: state.trace_id,
            span_id: state.client,
            parent_id: Some(state.root),
            sampled: state.sampled,
            tracestate: state.tracestate.as_ref(),
            short_trace_id: state.short,
        };
        for format in self.propagation.inject_formats(state.found) {
            for (name, value) in propagation::inject(format, &out) {
                req.insert_header(name, value);
            }
        }
    }
}

/// What a sink sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// OTLP/HTTP protobuf: each entry is an encoded `ExportTraceServiceRequest`, so a
    /// batch is their concatenation (repeated fields concatenate).
    OtlpProtobuf,
    /// Zipkin JSON v2: each entry is spans joined by commas; a batch is one array.
    ZipkinJson,
}

/// Sends span batches to a collector over HTTP.
pub struct TraceSink {
    /// The HTTP client (timeouts set).
    pub client: reqwest::Client,
    /// The collector's URL.
    pub url: reqwest::Url,
    /// Headers for every request (content type included).
    pub headers: reqwest::header::HeaderMap,
    /// The body's encoding.
    pub encoding: Encoding,
}

#[async_trait]
impl Deliver for TraceSink {
    async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), String> {
        let size = batch.iter().map(|e| e.len() + 1).sum::<usize>() + 2;
        let mut body = Vec::with_capacity(size);
        match self.encoding {
            Encoding::OtlpProtobuf => {
                for e in batch {
                    body.extend_from_slice(e);
                }
            }
            Encoding::ZipkinJson => {
                body.push(b'[');
                for (i, e) in batch.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(e);
                }
                body.push(b']');
            }
        }
        let request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body);
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("the collector answered {}", r.status())),
            Err(e) => Err(format!("cannot reach the collector: {}", e.without_url())),
        }
    }
}

/// An `http://` collector URL from `field`.
pub fn endpoint(field: &str, value: &str) -> Result<reqwest::Url, ConfigError> {
    reqwest::Url::parse(value)
        .ok()
        .filter(|u| u.scheme() == "http" && u.host().is_some())
        .ok_or_else(|| {
            ConfigError::new(
                field,
                "must be an http:// URL with a host (https:// is not supported yet)",
            )
        })
}

/// Headers for the collector from `field` (values never repeated in errors: they may be
/// credentials).
pub fn collector_headers(
    field: &str,
    headers: &BTreeMap<String, String>,
    content_type: &'static str,
) -> Result<reqwest::header::HeaderMap, ConfigError> {
    let mut out = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        let f = format!("{field}.{name}");
        let n = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::new(f.clone(), "not a valid header name"))?;
        let v = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| ConfigError::new(f, "not a valid header value"))?;
        out.insert(n, v);
    }
    out.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static(content_type),
    );
    Ok(out)
}

/// A sampling rate from `field`, between 0 and 1.
pub fn rate(field: &str, value: f64) -> Result<f64, ConfigError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(ConfigError::new(field, "must be between 0 and 1"));
    }
    Ok(value)
}
