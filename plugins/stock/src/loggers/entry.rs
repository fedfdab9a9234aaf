//! Kong's log entry (`kong.log.serialize()`), built from the contract's `LogEntry`.
//!
//! ```json
//! {"request": {"method", "uri", "url", "querystring", "headers", "size"},
//!  "response": {"status", "headers", "size"},
//!  "latencies": {"request", "proxy", "gateway"},
//!  "route": {"name"}, "service": {"name"}, "upstream": "name",
//!  "consumer": {"id", "username", "custom_id"},
//!  "client_ip", "started_at", "upstream_uri", "upstream_status", "tries"}
//! ```
//!
//! Differences from Kong, on purpose: Kong's `latencies.kong` is `latencies.gateway`;
//! the sizes are body bytes (Kong counts the head too); `tries` holds the target that
//! served the request (one entry) since earlier attempts are not in the log entry;
//! `upstream_uri` is the request's path and query after plugin edits. Secrets never
//! leave: the values of `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
//! `apikey` and `x-api-key` headers, and of credential query parameters (see
//! [`redact_query`]), are `REDACTED`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use pingway_plugin::LogEntry;
use serde_json::{json, Map, Value};

/// What replaces a secret.
pub const REDACTED: &str = "REDACTED";

/// Header names whose values are never logged.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "apikey",
    "x-api-key",
];

/// Query parameters whose values are never logged (compared case-insensitively):
/// key-auth's default, JWT's, OAuth's and the usual others.
pub const SECRET_PARAMS: &[&str] = &[
    "apikey",
    "api_key",
    "api-key",
    "key",
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "jwt",
    "password",
    "secret",
    "client_secret",
    "signature",
    "sig",
];

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(name))
}

/// `q` with the values of [`SECRET_PARAMS`] replaced by `REDACTED`.
pub fn redact_query(q: &str) -> String {
    let mut out = String::with_capacity(q.len());
    for (i, pair) in q.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, value)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(if is_secret_param(name) {
                    REDACTED
                } else {
                    value
                });
            }
            None => out.push_str(pair),
        }
    }
    out
}

/// Kong's `querystring`: each parameter once (`true` without a value, a list when
/// repeated), secrets redacted. Values stay percent-encoded.
fn querystring(q: Option<&str>) -> Value {
    let mut map = Map::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (
                n,
                Value::from(if is_secret_param(n) { REDACTED } else { v }),
            ),
            None => (pair, Value::Bool(true)),
        };
        match map.get_mut(name) {
            Some(Value::Array(list)) => list.push(value),
            Some(first) => {
                let first = first.take();
                map.insert(name.to_string(), Value::Array(vec![first, value]));
            }
            None => {
                map.insert(name.to_string(), value);
            }
        }
    }
    Value::Object(map)
}

/// Headers as Kong logs them: lower-case names, a list for a repeated header, secrets
/// redacted, values that are not text lossily decoded.
fn headers(h: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in h.keys() {
        let secret = SECRET_HEADERS.contains(&name.as_str());
        let mut values: Vec<Value> = h
            .get_all(name)
            .iter()
            .map(|v| {
                if secret {
                    Value::from(REDACTED)
                } else {
                    Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned())
                }
            })
            .collect();
        let value = if values.len() == 1 {
            values.pop().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        map.insert(name.as_str().to_string(), value);
    }
    Value::Object(map)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The path and query of the request, the query's secrets redacted.
fn path_and_query(entry: &LogEntry<'_>) -> String {
    let uri = &entry.request.uri;
    match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), redact_query(q)),
        None => uri.path().to_string(),
    }
}

/// Kong's log entry for `entry`.
pub fn kong_entry(entry: &LogEntry<'_>) -> Value {
    let req = entry.request;
    let uri = path_and_query(entry);
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.host())
        .unwrap_or("");
    let scheme = req.uri.scheme_str().unwrap_or("http");
    let started_at = SystemTime::now()
        .checked_sub(entry.total_latency)
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0);
    let request_latency = millis(entry.total_latency);
    let proxy = entry.upstream_latency.map(millis);
    // Kong's `kong` latency: the gateway's own time, the request's less the upstream's.
    let gateway = proxy.map_or(request_latency, |p| request_latency.saturating_sub(p));
    let response = match entry.response {
        Some(r) => {
            json!({"status": entry.status, "headers": headers(&r.headers), "size": entry.bytes_sent})
        }
        None => json!({"status": entry.status, "headers": {}, "size": entry.bytes_sent}),
    };
    let consumer = entry.ctx.consumer().map(|c| {
        json!({"id": &*c.id, "username": c.username.as_deref(), "custom_id": c.custom_id.as_deref()})
    });
    let tries: Vec<Value> = entry
        .upstream_addr
        .map(|a| json!({"ip": a.ip().to_string(), "port": a.port()}))
        .into_iter()
        .collect();
    json!({
        "request": {
            "method": req.method.as_str(),
            "uri": uri,
            "url": format!("{scheme}://{host}{uri}"),
            "querystring": querystring(req.uri.query()),
            "headers": headers(&req.headers),
            "size": entry.bytes_received,
            "id": entry.ctx.request_id.as_str(),
        },
        "response": response,
        "latencies": {"request": request_latency, "proxy": proxy, "gateway": gateway},
        "route": entry.ctx.route.as_ref().map(|r| json!({"name": &*r.name})),
        "service": entry.upstream.map(|u| json!({"name": u})),
        "upstream": entry.upstream,
        "consumer": consumer,
        "client_ip": entry.ctx.client_ip.to_string(),
        "started_at": started_at,
        "upstream_uri": uri,
        "upstream_status": entry.upstream_status,
        "tries": tries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingway_plugin::testkit::TestRequest;

    #[test]
    fn the_entry_has_kongs_shape_and_no_secrets() {
        let req = TestRequest::get("/orders/1?apikey=k1&page=2&page=3&flag")
            .header("host", "api.example.com")
            .header("authorization", "Basic c2VjcmV0")
            .header("apikey", "k2")
            .header("x-tenant", "acme")
            .route("orders", "orders-svc");
        let mut entry = LogEntry::new(req.parts(), req.ctx(), Duration::from_millis(30));
        entry.status = 201;
        entry.upstream = Some("orders-svc");
        entry.upstream_status = Some(201);
        entry.upstream_latency = Some(Duration::from_millis(20));
        entry.upstream_addr = Some("127.0.0.1:8081".parse().unwrap());
        entry.bytes_sent = 42;
        let v = kong_entry(&entry);
        assert_eq!(v["request"]["method"], "GET");
        assert_eq!(
            v["request"]["uri"],
            "/orders/1?apikey=REDACTED&page=2&page=3&flag"
        );
        assert_eq!(
            v["request"]["url"],
            "http://api.example.com/orders/1?apikey=REDACTED&page=2&page=3&flag"
        );
        assert_eq!(
            v["request"]["querystring"],
            json!({"apikey": "REDACTED", "page": ["2", "3"], "flag": true})
        );
        assert_eq!(v["request"]["headers"]["authorization"], "REDACTED");
        assert_eq!(v["request"]["headers"]["apikey"], "REDACTED");
        assert_eq!(v["request"]["headers"]["x-tenant"], "acme");
        assert_eq!(v["response"]["status"], 201);
        assert_eq!(v["response"]["size"], 42);
        assert_eq!(
            v["latencies"],
            json!({"request": 30, "proxy": 20, "gateway": 10})
        );
        assert_eq!(v["route"]["name"], "orders");
        assert_eq!(v["service"]["name"], "orders-svc");
        assert_eq!(v["upstream_status"], 201);
        assert_eq!(v["tries"], json!([{"ip": "127.0.0.1", "port": 8081}]));
        assert_eq!(v["client_ip"], "192.0.2.1");
        assert_eq!(v["consumer"], Value::Null);
        assert!(v["started_at"].as_u64().unwrap() > 1_700_000_000_000);
        let text = v.to_string();
        for secret in ["k1", "k2", "c2VjcmV0"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn a_request_without_a_response_or_upstream_still_has_every_key() {
        let req = TestRequest::get("/nothing");
        let entry = LogEntry::new(req.parts(), req.ctx(), Duration::from_millis(1));
        let v = kong_entry(&entry);
        for key in [
            "request",
            "response",
            "latencies",
            "route",
            "service",
            "consumer",
            "client_ip",
            "started_at",
            "upstream_uri",
            "tries",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v["latencies"]["proxy"], Value::Null);
        assert_eq!(v["response"]["status"], 0);
    }
}
