//! Zipkin JSON v2 encoding: a request's spans as JSON objects joined by commas (the
//! sink wraps a batch in one array), what a Zipkin collector accepts at
//! `/api/v2/spans`. Times are microseconds; tags are strings.

use std::net::IpAddr;

use serde_json::{json, Map, Value as Json};

use super::propagation::hex;
use super::span::{Kind, Span, Value};

fn endpoint(ip: IpAddr, port: Option<u16>) -> Json {
    let mut e = Map::new();
    match ip {
        IpAddr::V4(v4) => e.insert("ipv4".into(), Json::String(v4.to_string())),
        IpAddr::V6(v6) => e.insert("ipv6".into(), Json::String(v6.to_string())),
    };
    if let Some(p) = port {
        e.insert("port".into(), Json::from(p));
    }
    Json::Object(e)
}

/// One span as a Zipkin v2 object. `short`: 64-bit trace ids are written as 16 hex
/// digits.
fn span(s: &Span, service: &str, short: bool, client_ip: Option<IpAddr>) -> Json {
    let trace = if short && s.trace_id[..8] == [0; 8] {
        hex(&s.trace_id[8..])
    } else {
        hex(&s.trace_id)
    };
    let start_us = s.start_ns / 1000;
    let duration_us = (s.end_ns.saturating_sub(s.start_ns) / 1000).max(1);
    let mut tags = Map::new();
    let mut peer_ip = None;
    let mut peer_port = None;
    for (k, v) in &s.attributes {
        let text = match v {
            Value::Str(t) => t.clone(),
            Value::Int(i) => i.to_string(),
        };
        match k.as_str() {
            "net.peer.ip" => peer_ip = text.parse::<IpAddr>().ok(),
            "net.peer.port" => peer_port = text.parse::<u16>().ok(),
            _ => {}
        }
        tags.insert(k.clone(), Json::String(text));
    }
    if s.error {
        tags.insert("error".into(), Json::String("true".into()));
    }
    let mut o = Map::new();
    o.insert("traceId".into(), Json::String(trace));
    o.insert("id".into(), Json::String(hex(&s.span_id)));
    if let Some(p) = s.parent_id {
        o.insert("parentId".into(), Json::String(hex(&p)));
    }
    o.insert("name".into(), Json::String(s.name.clone()));
    match s.kind {
        Kind::Server => {
            o.insert("kind".into(), json!("SERVER"));
            if let Some(ip) = client_ip {
                o.insert("remoteEndpoint".into(), endpoint(ip, None));
            }
        }
        Kind::Client => {
            o.insert("kind".into(), json!("CLIENT"));
            if let Some(ip) = peer_ip {
                o.insert("remoteEndpoint".into(), endpoint(ip, peer_port));
            }
        }
        Kind::Internal => {}
    }
    o.insert("timestamp".into(), Json::from(start_us));
    o.insert("duration".into(), Json::from(duration_us));
    o.insert("localEndpoint".into(), json!({ "serviceName": service }));
    o.insert("tags".into(), Json::Object(tags));
    Json::Object(o)
}

/// `spans` of one request, as JSON objects joined by commas (no brackets).
pub fn encode(spans: &[Span], service: &str, short: bool, client_ip: Option<IpAddr>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 * spans.len());
    for (i, s) in spans.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &span(s, service, short, client_ip));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_zipkin_v2_objects() {
        let spans = [
            Span {
                trace_id: [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
                span_id: [9; 8],
                parent_id: None,
                name: "GET".into(),
                kind: Kind::Server,
                start_ns: 5_000_000,
                end_ns: 7_000_000,
                attributes: vec![("http.status_code".into(), Value::Int(502))],
                error: true,
            },
            Span {
                trace_id: [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
                span_id: [10; 8],
                parent_id: Some([9; 8]),
                name: "GET (proxy)".into(),
                kind: Kind::Client,
                start_ns: 5_000_000,
                end_ns: 5_000_100,
                attributes: vec![
                    ("net.peer.ip".into(), Value::Str("127.0.0.1".into())),
                    ("net.peer.port".into(), Value::Int(8080)),
                ],
                error: false,
            },
        ];
        let body = [
            b"[".as_slice(),
            &encode(&spans, "kong", true, "10.0.0.1".parse().ok()),
            b"]",
        ]
        .concat();
        let v: Json = serde_json::from_slice(&body).unwrap();
        assert_eq!(v[0]["traceId"], "0102030405060708");
        assert_eq!(v[0]["kind"], "SERVER");
        assert_eq!(v[0]["timestamp"], 5000);
        assert_eq!(v[0]["duration"], 2000);
        assert_eq!(v[0]["tags"]["http.status_code"], "502");
        assert_eq!(v[0]["tags"]["error"], "true");
        assert_eq!(v[0]["remoteEndpoint"]["ipv4"], "10.0.0.1");
        assert_eq!(v[0]["localEndpoint"]["serviceName"], "kong");
        assert_eq!(v[1]["parentId"], "0909090909090909");
        assert_eq!(v[1]["duration"], 1);
        assert_eq!(v[1]["remoteEndpoint"]["port"], 8080);
        assert!(v[1].get("tags").unwrap().get("error").is_none());
    }
}
