//! One access log line: a JSON object of the selected fields, built straight into a
//! byte buffer.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingway_plugins::loggers::redact_query;
use pingway_plugins::LogEntry;

use crate::config::AccessLogField;

/// The line for `entry` with `fields`, newline-terminated.
pub fn format_line(
    entry: &LogEntry<'_>,
    fields: &[AccessLogField],
    include_query: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    out.push(b'{');
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(&mut out, entry, *field, include_query);
    }
    out.extend_from_slice(b"}\n");
    out
}

fn write_field(out: &mut Vec<u8>, e: &LogEntry<'_>, field: AccessLogField, include_query: bool) {
    use AccessLogField as F;
    let header =
        |name: http::header::HeaderName| e.request.headers.get(name).and_then(|v| v.to_str().ok());
    match field {
        F::Time => {
            key(out, "time");
            let arrived = SystemTime::now()
                .checked_sub(e.total_latency)
                .unwrap_or_else(SystemTime::now);
            out.push(b'"');
            write_rfc3339_millis(out, arrived);
            out.push(b'"');
        }
        F::RequestId => {
            key(out, "request_id");
            string(out, e.ctx.request_id.as_str());
        }
        F::ClientIp => {
            key(out, "client_ip");
            // An address needs no escaping.
            out.push(b'"');
            write_ip(out, e.ctx.client_ip);
            out.push(b'"');
        }
        F::Method => {
            key(out, "method");
            string(out, e.request.method.as_str());
        }
        F::Host => {
            key(out, "host");
            let host = header(http::header::HOST).or_else(|| e.request.uri.host());
            opt_string(out, host);
        }
        F::Path => {
            key(out, "path");
            match e.request.uri.query().filter(|_| include_query) {
                Some(q) => {
                    let full = format!("{}?{}", e.request.uri.path(), redact_query(q));
                    string(out, &full);
                }
                None => string(out, e.request.uri.path()),
            }
        }
        F::Status => {
            key(out, "status");
            number(out, u64::from(e.status));
        }
        F::BytesReceived => {
            key(out, "bytes_received");
            number(out, e.bytes_received as u64);
        }
        F::BytesSent => {
            key(out, "bytes_sent");
            number(out, e.bytes_sent as u64);
        }
        F::Latencies => {
            key(out, "latencies");
            out.extend_from_slice(b"{\"request\":");
            number(out, millis(e.total_latency));
            out.extend_from_slice(b",\"upstream\":");
            let upstream = e.upstream_latency.map(millis);
            opt_number(out, upstream);
            // Kong's `kong` latency, as the prometheus plugin and http-log count it: the
            // request's time less the upstream's.
            out.extend_from_slice(b",\"gateway\":");
            let request = millis(e.total_latency);
            number(out, upstream.map_or(request, |u| request.saturating_sub(u)));
            out.push(b'}');
        }
        F::Route => {
            key(out, "route");
            opt_string(out, e.ctx.route.as_ref().map(|r| &*r.name));
        }
        F::Upstream => {
            key(out, "upstream");
            opt_string(out, e.upstream);
        }
        F::Target => {
            key(out, "target");
            match e.upstream_addr {
                Some(a) => {
                    out.push(b'"');
                    match a {
                        SocketAddr::V4(v4) => {
                            write_ip(out, IpAddr::V4(*v4.ip()));
                            out.push(b':');
                            number(out, u64::from(v4.port()));
                        }
                        SocketAddr::V6(_) => {
                            let _ = write!(out, "{a}");
                        }
                    }
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        F::Consumer => {
            key(out, "consumer");
            let consumer = e
                .ctx
                .consumer()
                .map(|c| c.username.as_deref().unwrap_or(&c.id));
            opt_string(out, consumer);
        }
        F::UserAgent => {
            key(out, "user_agent");
            opt_string(out, header(http::header::USER_AGENT));
        }
    }
}

fn key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn string(out: &mut Vec<u8>, s: &str) {
    // Most values need no escaping: copy them as they are.
    if !s
        .bytes()
        .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a &str to a Vec cannot fail; serde_json escapes it.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// An IPv4 address octet by octet (no formatting machinery); IPv6 as `Display` writes it.
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                number(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// `n` in `width` digits, zero-padded (`n` below 10^width).
fn padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = n;
    for i in (0..width.min(20)).rev() {
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[..width.min(20)]);
}

fn opt_number(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => number(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `t` as `2026-12-02T14:47:13.123Z`.
#[cfg(test)]
fn rfc3339_millis(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_millis(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `t` as `2026-12-02T14:47:13.123Z`.
fn write_rfc3339_millis(out: &mut Vec<u8>, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    padded(out, u64::try_from(y).unwrap_or(0), 4);
    out.push(b'-');
    padded(out, u64::from(m), 2);
    out.push(b'-');
    padded(out, u64::from(d), 2);
    out.push(b'T');
    padded(out, rem / 3600, 2);
    out.push(b':');
    padded(out, (rem / 60) % 60, 2);
    out.push(b':');
    padded(out, rem % 60, 2);
    out.push(b'.');
    padded(out, u64::from(since.subsec_millis()), 3);
    out.push(b'Z');
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingway_plugins::testkit::TestRequest;

    fn line_for(uri: &str, fields: &[AccessLogField], include_query: bool) -> serde_json::Value {
        let req = TestRequest::get(uri)
            .header("authorization", "Bearer very-secret")
            .header("apikey", "also-secret")
            .header("user-agent", "curl/8");
        let mut entry = LogEntry::new(req.parts(), req.ctx(), Duration::from_millis(12));
        entry.status = 200;
        entry.upstream = Some("backend");
        entry.upstream_latency = Some(Duration::from_millis(7));
        let line = format_line(&entry, fields, include_query);
        assert_eq!(line.last(), Some(&b'\n'));
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn a_line_has_the_selected_fields_in_order_and_no_secrets() {
        let v = line_for("/orders?apikey=k1&page=2", &AccessLogField::ALL, false);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), AccessLogField::ALL.len());
        assert_eq!(v["path"], "/orders");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["status"], 200);
        assert_eq!(v["upstream"], "backend");
        assert_eq!(v["latencies"]["request"], 12);
        assert_eq!(v["latencies"]["upstream"], 7);
        assert_eq!(v["latencies"]["gateway"], 5);
        assert_eq!(v["user_agent"], "curl/8");
        assert_eq!(v["request_id"], "test-request");
        let text = v.to_string();
        assert!(!text.contains("secret") && !text.contains("k1"), "{text}");

        let req = TestRequest::get("/x");
        let mut entry = LogEntry::new(req.parts(), req.ctx(), Duration::ZERO);
        entry.status = 404;
        let line = format_line(
            &entry,
            &[AccessLogField::Status, AccessLogField::Method],
            false,
        );
        assert_eq!(line, b"{\"status\":404,\"method\":\"GET\"}\n");
    }

    #[test]
    fn include_query_keeps_the_query_but_not_credentials() {
        let v = line_for(
            "/o?page=2&APIKEY=k1&jwt=abc&flag",
            &[AccessLogField::Path],
            true,
        );
        assert_eq!(v["path"], "/o?page=2&APIKEY=REDACTED&jwt=REDACTED&flag");
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_033_123);
        assert_eq!(rfc3339_millis(t), "2026-11-18T11:07:13.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn strings_are_escaped_only_when_needed_and_numbers_are_exact() {
        for text in [
            "plain",
            "",
            "quote\"d",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "ünïcode ✓",
        ] {
            let mut out = Vec::new();
            string(&mut out, text);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, text);
        }
        for n in [0, 7, 10, 999, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            number(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn the_client_ip_and_target_are_json_strings() {
        let req = TestRequest::get("/");
        let entry = LogEntry::new(req.parts(), req.ctx(), Duration::ZERO);
        let fields = [AccessLogField::ClientIp, AccessLogField::Target];
        let v: serde_json::Value =
            serde_json::from_slice(&format_line(&entry, &fields, false)).unwrap();
        assert_eq!(v["client_ip"], entry.ctx.client_ip.to_string());
        assert!(v["target"].is_null());
        for (target, ip) in [
            ("[::1]:8443", "::1"),
            ("10.0.255.7:80", "10.0.255.7"),
            ("0.0.0.0:65535", "0.0.0.0"),
        ] {
            let req = TestRequest::get("/").client_ip(ip.parse().unwrap());
            let mut entry = LogEntry::new(req.parts(), req.ctx(), Duration::ZERO);
            entry.upstream_addr = Some(target.parse().unwrap());
            let v: serde_json::Value =
                serde_json::from_slice(&format_line(&entry, &fields, false)).unwrap();
            assert_eq!(v["target"], target);
            assert_eq!(v["client_ip"], ip);
        }
    }
}
