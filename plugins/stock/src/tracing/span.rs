//! A small span model, and the spans a request makes: one for the request, children
//! for the plugin phases that took time, the upstream connection and the upstream's
//! answer. What `otlp` and `zipkin` encode.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingway_plugin::LogEntry;

use super::propagation::{SpanId, TraceId};
use super::TraceState;

/// What a span stands for (OpenTelemetry's kinds; Zipkin knows server and client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request the gateway served.
    Server,
    /// The gateway's request to the upstream.
    Client,
    /// Work inside the gateway.
    Internal,
}

/// An attribute (tag) value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Str(String),
    /// An integer.
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent, if any.
    pub parent_id: Option<SpanId>,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_ns: u64,
    /// Attributes (tags).
    pub attributes: Vec<(String, Value)>,
    /// Whether it ended in an error (a 5xx, or no answer).
    pub error: bool,
}

/// How a plugin names its spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Kong's `opentelemetry` names: `kong`, `kong.access.plugin.<name>`,
    /// `kong.upstream.connect`, `kong.balancer`, `kong.upstream.ttfb`.
    OpenTelemetry,
    /// Kong's `zipkin` names: the method (or method and path) for the request,
    /// `<name> (proxy)` for the upstream request, `<name> (access <plugin>)`,
    /// `<name> (connect)`.
    Zipkin {
        /// Kong's `http_span_name: method_path`.
        with_path: bool,
    },
}

/// A fresh non-zero span id.
pub fn new_span_id() -> SpanId {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// A fresh non-zero trace id (`short`: 64 bits, Kong's `traceid_byte_count: 8`).
pub fn new_trace_id(short: bool) -> TraceId {
    let mut id = [0u8; 16];
    if !short {
        id[..8].copy_from_slice(&fastrand::u64(..).to_be_bytes());
    }
    id[8..].copy_from_slice(&new_span_id());
    id
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The spans of a finished request: the request span (the parent of the others, and
/// the child of the caller's span), then its children. At most 4 + the phase timings
/// kept (bounded by `MAX_PHASE_TIMINGS`).
pub fn request_spans(
    entry: &LogEntry<'_>,
    state: &TraceState,
    naming: Naming,
    attributes: Vec<(String, Value)>,
) -> Vec<Span> {
    let end = SystemTime::now();
    let start = end.checked_sub(entry.total_latency).unwrap_or(end);
    let start_ns = nanos(start);
    let at = |d: Duration| start_ns.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let method = entry.request.method.as_str();
    let root_name = match naming {
        Naming::OpenTelemetry => "kong".to_string(),
        Naming::Zipkin { with_path: false } => method.to_string(),
        Naming::Zipkin { with_path: true } => format!("{method} {}", entry.request.uri.path()),
    };
    let error = entry.status == 0 || entry.status >= 500;
    let mut spans = Vec::with_capacity(4);
    spans.push(Span {
        trace_id: state.trace_id,
        span_id: state.root,
        parent_id: state.parent,
        name: root_name.clone(),
        kind: Kind::Server,
        start_ns,
        end_ns: at(entry.total_latency),
        attributes,
        error,
    });
    let child = |name: String, kind: Kind, from: Duration, length: Duration, id: SpanId| Span {
        trace_id: state.trace_id,
        span_id: id,
        parent_id: Some(state.root),
        name,
        kind,
        start_ns: at(from),
        end_ns: at(from.saturating_add(length)),
        attributes: Vec::new(),
        error: false,
    };
    if let Some(t) = entry.timings {
        for p in &t.phases {
            let name = match naming {
                Naming::OpenTelemetry => format!("kong.{}.plugin.{}", p.phase, p.plugin),
                Naming::Zipkin { .. } => format!("{root_name} ({} {})", p.phase, p.plugin),
            };
            spans.push(child(
                name,
                Kind::Internal,
                p.start,
                p.duration,
                new_span_id(),
            ));
        }
        if let Some(c) = t.connect {
            let name = match naming {
                Naming::OpenTelemetry => "kong.upstream.connect".to_string(),
                Naming::Zipkin { .. } => format!("{root_name} (connect)"),
            };
            let mut span = child(name, Kind::Internal, c.start, c.duration, new_span_id());
            span.attributes.push((
                "pingway.connection_reused".into(),
                Value::Int(c.reused.into()),
            ));
            spans.push(span);
        }
    }
    // The upstream request: from the gateway sending it to the end of the response; the
    // span the upstream's own spans are children of (its id went upstream).
    if let Some(sent) = entry.proxy_latency {
        let name = match naming {
            Naming::OpenTelemetry => "kong.balancer".to_string(),
            Naming::Zipkin { .. } => format!("{root_name} (proxy)"),
        };
        let length = entry.total_latency.saturating_sub(sent);
        let mut span = child(name, Kind::Client, sent, length, state.client);
        if let Some(addr) = entry.upstream_addr {
            span.attributes
                .push(("net.peer.ip".into(), Value::Str(addr.ip().to_string())));
            span.attributes
                .push(("net.peer.port".into(), Value::Int(addr.port().into())));
        }
        if let Some(s) = entry.upstream_status {
            span.attributes
                .push(("http.status_code".into(), Value::Int(s.into())));
        }
        span.error = entry.upstream_status.is_none_or(|s| s >= 500);
        spans.push(span);
        // Time to the upstream's response head.
        if let Some(ttfb) = entry.upstream_latency {
            if naming == Naming::OpenTelemetry {
                spans.push(child(
                    "kong.upstream.ttfb".into(),
                    Kind::Internal,
                    sent,
                    ttfb,
                    new_span_id(),
                ));
            }
        }
    }
    spans
}
