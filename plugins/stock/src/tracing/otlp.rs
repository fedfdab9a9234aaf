//! OTLP encoding: a request's spans as an `ExportTraceServiceRequest` (protobuf, the
//! `opentelemetry-proto` crate's prost types), what OTLP/HTTP collectors accept at
//! `/v1/traces` with `Content-Type: application/x-protobuf`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status, ResourceSpans, ScopeSpans, Span as OtlpSpan, Status,
};
use prost::Message;

use super::span::{Kind, Span, Value};

/// The instrumentation scope named in every export.
pub const SCOPE: &str = "pingway";

/// A string attribute.
pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn attribute(key: &str, value: &Value) -> KeyValue {
    let v = match value {
        Value::Str(s) => any_value::Value::StringValue(s.clone()),
        Value::Int(i) => any_value::Value::IntValue(*i),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn span(s: &Span, tracestate: &str) -> OtlpSpan {
    let kind = match s.kind {
        Kind::Server => SpanKind::Server,
        Kind::Client => SpanKind::Client,
        Kind::Internal => SpanKind::Internal,
    };
    OtlpSpan {
        trace_id: s.trace_id.to_vec(),
        span_id: s.span_id.to_vec(),
        trace_state: tracestate.to_string(),
        parent_span_id: s.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
        name: s.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: s.end_ns,
        attributes: s.attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
        status: Some(Status {
            code: if s.error {
                status::StatusCode::Error
            } else {
                status::StatusCode::Unset
            } as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `spans` of one request, under `resource`, as an encoded `ExportTraceServiceRequest`.
/// Encoded requests concatenate into one (their `resource_spans` are a repeated field).
pub fn encode(spans: &[Span], resource: &[KeyValue], tracestate: &str) -> Vec<u8> {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource.to_vec(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..Default::default()
                }),
                spans: spans.iter().map(|s| span(s, tracestate)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    request.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: [7; 16],
            span_id: [id; 8],
            parent_id: parent.map(|p| [p; 8]),
            name: format!("s{id}"),
            kind: Kind::Internal,
            start_ns: 1,
            end_ns: 2,
            attributes: vec![("n".into(), Value::Int(3))],
            error: false,
        }
    }

    #[test]
    fn encoded_requests_concatenate_into_one() {
        let res = [string_attribute("service.name", "kong")];
        let mut body = encode(&[s(1, None), s(2, Some(1))], &res, "");
        body.extend(encode(&[s(3, None)], &res, "a=b"));
        let decoded = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        assert_eq!(decoded.resource_spans.len(), 2);
        let first = &decoded.resource_spans[0].scope_spans[0].spans;
        assert_eq!(first[1].parent_span_id, vec![1; 8]);
        assert!(first[0].parent_span_id.is_empty());
        let second = &decoded.resource_spans[1].scope_spans[0].spans[0];
        assert_eq!(second.trace_state, "a=b");
        assert_eq!(
            decoded.resource_spans[1]
                .resource
                .as_ref()
                .unwrap()
                .attributes[0]
                .key,
            "service.name"
        );
    }
}
