//! Trace context propagation: reading an incoming trace context from request headers and
//! writing the gateway's into the upstream request, in the formats Kong speaks.
//!
//! | Format | Headers |
//! |---|---|
//! | `w3c` | `traceparent: 00-{trace:32}-{span:16}-{flags:2}`, `tracestate` passed on |
//! | `b3` | `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-ParentSpanId`, `X-B3-Sampled`, `X-B3-Flags`; extraction also reads `b3` |
//! | `b3-single` | `b3: {trace}-{span}-{sampled}-{parent}` |
//! | `jaeger` | `uber-trace-id: {trace}:{span}:{parent}:{flags}` |
//! | `ot` | `ot-tracer-traceid`, `ot-tracer-spanid`, `ot-tracer-sampled` |
//!
//! A malformed header is ignored (the request starts a new trace), never an error.

use http::{HeaderMap, HeaderName, HeaderValue};
use pingway_plugin::ConfigError;

/// A trace id: 16 bytes (a 64-bit id has its high 8 bytes zero).
pub type TraceId = [u8; 16];
/// A span id: 8 bytes.
pub type SpanId = [u8; 8];

/// The longest `tracestate` passed on (W3C's 512-byte recommendation); a longer one is
/// dropped.
pub const MAX_TRACESTATE: usize = 512;

/// A propagation format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// W3C Trace Context (`traceparent`, `tracestate`).
    W3c,
    /// Zipkin B3, one header per field (`X-B3-*`).
    B3,
    /// Zipkin B3 in one `b3` header.
    B3Single,
    /// Jaeger's `uber-trace-id`.
    Jaeger,
    /// OpenTracing's `ot-tracer-*`.
    Ot,
}

/// Kong's format names that Pingway does not implement (refused at load).
const UNSUPPORTED: [&str; 4] = ["aws", "gcp", "datadog", "instana"];

impl Format {
    /// The format named `name` (Kong's names).
    pub fn parse(field: &str, name: &str) -> Result<Format, ConfigError> {
        Ok(match name {
            "w3c" => Format::W3c,
            "b3" => Format::B3,
            "b3-single" => Format::B3Single,
            "jaeger" => Format::Jaeger,
            "ot" => Format::Ot,
            other if UNSUPPORTED.contains(&other) => {
                return Err(ConfigError::new(
                    field,
                    format!("\"{other}\" is not supported by Pingway (w3c, b3, b3-single, jaeger and ot are)"),
                ))
            }
            other => {
                return Err(ConfigError::new(
                    field,
                    format!("unknown format \"{other}\" (expected w3c, b3, b3-single, jaeger or ot)"),
                ))
            }
        })
    }
}

/// What an incoming request said about its trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The trace id.
    pub trace_id: TraceId,
    /// The caller's span: the parent of the gateway's request span.
    pub span_id: SpanId,
    /// The caller's sampling decision, if it made one.
    pub sampled: Option<bool>,
    /// W3C `tracestate`, passed on unchanged (at most [`MAX_TRACESTATE`] bytes).
    pub tracestate: Option<HeaderValue>,
    /// The format it came in.
    pub format: Format,
    /// Whether the trace id came as 64 bits (written back the same width where the
    /// format allows).
    pub short_trace_id: bool,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses up to `N * 2` hex digits, right-aligned (left-padded with zeros), into `N`
/// bytes; `None` for an empty, too long, non-hex or all-zero id.
fn hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    let mut nibbles = [0u8; 64];
    let pad = N * 2 - b.len();
    for (i, c) in b.iter().enumerate() {
        nibbles[pad + i] = hex_val(*c)?;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    (out != [0u8; N]).then_some(out)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// A trace id parsed from 16 or 32 hex digits (`short` when 16).
fn trace_id(s: &str) -> Option<(TraceId, bool)> {
    match s.len() {
        16 => hex_id::<16>(s).map(|t| (t, true)),
        32 => hex_id::<16>(s).map(|t| (t, false)),
        _ => None,
    }
}

fn parse_span_id(s: &str) -> Option<SpanId> {
    (s.len() == 16).then(|| hex_id::<8>(s)).flatten()
}

fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// W3C `traceparent` (and `tracestate`).
fn w3c(headers: &HeaderMap) -> Option<Incoming> {
    let tp = get(headers, "traceparent")?;
    let mut parts = tp.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    let hex_version = version.len() == 2 && version.bytes().all(|b| hex_val(b).is_some());
    if !hex_version || version.eq_ignore_ascii_case("ff") {
        return None;
    }
    // Version 00 has exactly four fields; later versions may add more.
    if version == "00" && rest.is_some() {
        return None;
    }
    if trace.len() != 32 || flags.len() != 2 {
        return None;
    }
    let trace_id = hex_id::<16>(trace)?;
    let span_id = parse_span_id(span)?;
    let flags = hex_val(flags.as_bytes()[0])? << 4 | hex_val(flags.as_bytes()[1])?;
    let tracestate = headers
        .get("tracestate")
        .filter(|v| !v.is_empty() && v.len() <= MAX_TRACESTATE)
        .cloned();
    Some(Incoming {
        trace_id,
        span_id,
        sampled: Some(flags & 1 == 1),
        tracestate,
        format: Format::W3c,
        short_trace_id: false,
    })
}

fn b3_sampled(s: &str) -> Option<bool> {
    match s {
        "1" | "true" | "d" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// B3 multi (`X-B3-*`).
fn b3_multi(headers: &HeaderMap) -> Option<Incoming> {
    let (trace_id, short) = trace_id(get(headers, "x-b3-traceid")?)?;
    let span_id = parse_span_id(get(headers, "x-b3-spanid")?)?;
    let debug = get(headers, "x-b3-flags") == Some("1");
    let sampled = if debug {
        Some(true)
    } else {
        get(headers, "x-b3-sampled").and_then(b3_sampled)
    };
    Some(Incoming {
        trace_id,
        span_id,
        sampled,
        tracestate: None,
        format: Format::B3,
        short_trace_id: short,
    })
}

/// B3 single (`b3`).
fn b3_single(headers: &HeaderMap) -> Option<Incoming> {
    let v = get(headers, "b3")?;
    let mut parts = v.split('-');
    let (trace_id, short) = trace_id(parts.next()?)?;
    let span_id = parse_span_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => None,
        Some(s) => Some(b3_sampled(s)?),
    };
    if let Some(parent) = parts.next() {
        parse_span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Incoming {
        trace_id,
        span_id,
        sampled,
        tracestate: None,
        format: Format::B3Single,
        short_trace_id: short,
    })
}

/// Jaeger `uber-trace-id: {trace}:{span}:{parent}:{flags}` (colons may come
/// URL-encoded).
fn jaeger(headers: &HeaderMap) -> Option<Incoming> {
    let raw = get(headers, "uber-trace-id")?;
    let v = raw.replace("%3A", ":").replace("%3a", ":");
    let mut parts = v.split(':');
    let trace = parts.next()?;
    let span = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let short = trace.len() <= 16;
    let trace_id = hex_id::<16>(trace)?;
    let span_id = hex_id::<8>(span)?;
    if parent != "0" && hex_id::<8>(parent).is_none() {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(Incoming {
        trace_id,
        span_id,
        sampled: Some(flags & 1 == 1),
        tracestate: None,
        format: Format::Jaeger,
        short_trace_id: short,
    })
}

/// OpenTracing `ot-tracer-*`.
fn ot(headers: &HeaderMap) -> Option<Incoming> {
    let (trace_id, short) = trace_id(get(headers, "ot-tracer-traceid")?)?;
    let span_id = parse_span_id(get(headers, "ot-tracer-spanid")?)?;
    let sampled = get(headers, "ot-tracer-sampled").and_then(b3_sampled);
    Some(Incoming {
        trace_id,
        span_id,
        sampled,
        tracestate: None,
        format: Format::Ot,
        short_trace_id: short,
    })
}

/// Reads the first valid context among `formats`, in order. `b3` reads the multi
/// headers, then the single `b3` header.
pub fn extract(headers: &HeaderMap, formats: &[Format]) -> Option<Incoming> {
    formats.iter().find_map(|f| match f {
        Format::W3c => w3c(headers),
        Format::B3 | Format::B3Single => b3_multi(headers).or_else(|| b3_single(headers)),
        Format::Jaeger => jaeger(headers),
        Format::Ot => ot(headers),
    })
}

/// The context the gateway sends upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// The trace id.
    pub trace_id: TraceId,
    /// The gateway's span the upstream's work is a child of.
    pub span_id: SpanId,
    /// That span's parent (the gateway's request span), for formats that carry it.
    pub parent_id: Option<SpanId>,
    /// Whether the trace is sampled.
    pub sampled: bool,
    /// `tracestate` to pass on (W3C).
    pub tracestate: Option<&'a HeaderValue>,
    /// Write 64-bit trace ids where the format allows (the caller sent one).
    pub short_trace_id: bool,
}

/// Every header name any format writes (what injecting a format replaces, and what
/// `clear` can name).
pub const ALL_HEADERS: [&str; 12] = [
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "uber-trace-id",
    "ot-tracer-traceid",
    "ot-tracer-spanid",
    "ot-tracer-sampled",
];

/// The headers that carry `out` in `format`.
pub fn inject(format: Format, out: &Outgoing<'_>) -> Vec<(HeaderName, HeaderValue)> {
    let trace = if out.short_trace_id && out.trace_id[..8] == [0; 8] {
        hex(&out.trace_id[8..])
    } else {
        hex(&out.trace_id)
    };
    let span = hex(&out.span_id);
    let bit = if out.sampled { "1" } else { "0" };
    let mut h: Vec<(HeaderName, String)> = Vec::with_capacity(5);
    match format {
        Format::W3c => {
            let flags = if out.sampled { "01" } else { "00" };
            h.push((
                HeaderName::from_static("traceparent"),
                format!("00-{}-{span}-{flags}", hex(&out.trace_id)),
            ));
        }
        Format::B3 => {
            h.push((HeaderName::from_static("x-b3-traceid"), trace));
            h.push((HeaderName::from_static("x-b3-spanid"), span));
            if let Some(p) = out.parent_id {
                h.push((HeaderName::from_static("x-b3-parentspanid"), hex(&p)));
            }
            h.push((HeaderName::from_static("x-b3-sampled"), bit.into()));
        }
        Format::B3Single => {
            let mut v = format!("{trace}-{span}-{bit}");
            if let Some(p) = out.parent_id {
                v.push('-');
                v.push_str(&hex(&p));
            }
            h.push((HeaderName::from_static("b3"), v));
        }
        Format::Jaeger => {
            let parent = out.parent_id.map_or_else(|| "0".to_string(), |p| hex(&p));
            let flags = if out.sampled { "01" } else { "00" };
            h.push((
                HeaderName::from_static("uber-trace-id"),
                format!("{trace}:{span}:{parent}:{flags}"),
            ));
        }
        Format::Ot => {
            h.push((HeaderName::from_static("ot-tracer-traceid"), trace));
            h.push((HeaderName::from_static("ot-tracer-spanid"), span));
            h.push((
                HeaderName::from_static("ot-tracer-sampled"),
                if out.sampled { "true" } else { "false" }.into(),
            ));
        }
    }
    let mut headers: Vec<(HeaderName, HeaderValue)> = h
        .into_iter()
        .filter_map(|(n, v)| HeaderValue::from_str(&v).ok().map(|v| (n, v)))
        .collect();
    if format == Format::W3c {
        if let Some(ts) = out.tracestate {
            headers.push((HeaderName::from_static("tracestate"), ts.clone()));
        }
    }
    headers
}

/// One entry of Kong's `propagation.inject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// Kong's `preserve`: the format the request came in (the default format when it
    /// came with none).
    Preserve,
    /// This format.
    Format(Format),
}

/// Compiled propagation settings: Kong's `propagation` block, or what a legacy
/// `header_type` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    /// Formats read from the request, first match wins (empty: incoming contexts are
    /// ignored).
    pub extract: Vec<Format>,
    /// Formats written upstream.
    pub inject: Vec<Inject>,
    /// Headers removed from the upstream request before injecting.
    pub clear: Vec<HeaderName>,
    /// The format for `preserve` when the request had no context.
    pub default_format: Format,
}

/// Every format Pingway reads, in Kong's order.
pub const ALL_FORMATS: [Format; 4] = [Format::W3c, Format::B3, Format::Jaeger, Format::Ot];

impl Propagation {
    /// Kong's legacy `header_type` semantics: `preserve` reads any format and writes the
    /// one that came (else `default`); `ignore` reads none and writes `default`; a format
    /// reads any and writes that format and the one that came.
    pub fn from_header_type(header_type: &str, default: Format) -> Result<Self, ConfigError> {
        let (extract, inject) = match header_type {
            "preserve" => (ALL_FORMATS.to_vec(), vec![Inject::Preserve]),
            "ignore" => (Vec::new(), vec![Inject::Format(default)]),
            other => {
                let f = Format::parse("header_type", other)?;
                (
                    ALL_FORMATS.to_vec(),
                    vec![Inject::Preserve, Inject::Format(f)],
                )
            }
        };
        Ok(Propagation {
            extract,
            inject,
            clear: Vec::new(),
            default_format: default,
        })
    }

    /// The formats to write for a request whose context came in `found`.
    pub fn inject_formats(&self, found: Option<Format>) -> Vec<Format> {
        let mut out: Vec<Format> = Vec::with_capacity(self.inject.len());
        for i in &self.inject {
            let f = match i {
                Inject::Preserve => found.unwrap_or(self.default_format),
                Inject::Format(f) => *f,
            };
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn to_map(pairs: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(n, v);
        }
        h
    }

    const TRACE: TraceId = [
        0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47,
        0x36,
    ];
    const SPAN: SpanId = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];
    const PARENT: SpanId = [1, 2, 3, 4, 5, 6, 7, 8];

    #[test]
    fn w3c_parses_the_spec_example() {
        let h = headers(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
        ]);
        let got = extract(&h, &ALL_FORMATS).unwrap();
        assert_eq!(got.trace_id, TRACE);
        assert_eq!(got.span_id, SPAN);
        assert_eq!(got.sampled, Some(true));
        assert_eq!(got.format, Format::W3c);
        assert_eq!(got.tracestate.unwrap(), "congo=t61rcWkgMzE");
    }

    #[test]
    fn every_format_round_trips() {
        let ts = HeaderValue::from_static("a=b");
        for format in [
            Format::W3c,
            Format::B3,
            Format::B3Single,
            Format::Jaeger,
            Format::Ot,
        ] {
            for sampled in [true, false] {
                let out = Outgoing {
                    trace_id: TRACE,
                    span_id: SPAN,
                    parent_id: Some(PARENT),
                    sampled,
                    tracestate: Some(&ts),
                    short_trace_id: false,
                };
                let h = to_map(inject(format, &out));
                let got = extract(&h, &[format]).unwrap_or_else(|| panic!("{format:?}: {h:?}"));
                assert_eq!(got.trace_id, TRACE, "{format:?}");
                assert_eq!(got.span_id, SPAN, "{format:?}");
                assert_eq!(got.sampled, Some(sampled), "{format:?}");
                let expected = if format == Format::B3Single {
                    Format::B3Single
                } else {
                    format
                };
                assert_eq!(got.format, expected);
                assert_eq!(got.tracestate.is_some(), format == Format::W3c);
            }
        }
    }

    #[test]
    fn short_trace_ids_keep_their_width_where_the_format_allows() {
        let h = headers(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
        ]);
        let got = extract(&h, &ALL_FORMATS).unwrap();
        assert!(got.short_trace_id);
        assert_eq!(got.sampled, None);
        let out = Outgoing {
            trace_id: got.trace_id,
            span_id: PARENT,
            parent_id: None,
            sampled: true,
            tracestate: None,
            short_trace_id: got.short_trace_id,
        };
        let b3 = to_map(inject(Format::B3, &out));
        assert_eq!(b3["x-b3-traceid"], "a3ce929d0e0e4736");
        let w3c = to_map(inject(Format::W3c, &out));
        assert_eq!(
            w3c["traceparent"],
            "00-0000000000000000a3ce929d0e0e4736-0102030405060708-01"
        );
    }

    #[test]
    fn jaeger_accepts_short_unpadded_and_url_encoded_ids() {
        let h = headers(&[("uber-trace-id", "abc%3A1f%3A0%3A1")]);
        let got = extract(&h, &[Format::Jaeger]).unwrap();
        assert_eq!(got.trace_id[13..], [0, 0x0a, 0xbc]);
        assert_eq!(got.span_id, [0, 0, 0, 0, 0, 0, 0, 0x1f]);
        assert_eq!(got.sampled, Some(true));
    }

    #[test]
    fn b3_single_with_only_ids_and_b3_flags_debug() {
        let h = headers(&[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")]);
        assert_eq!(extract(&h, &[Format::B3]).unwrap().sampled, None);
        let h = headers(&[
            ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]);
        assert_eq!(extract(&h, &[Format::B3]).unwrap().sampled, Some(true));
    }

    #[test]
    fn malformed_headers_are_ignored() {
        let bad: &[(&'static str, &str)] = &[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            ),
            (
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            ),
            (
                "traceparent",
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            ),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            ),
            ("b3", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-x"),
            ("b3", "4bf92f-00f067aa0ba902b7-1"),
            (
                "uber-trace-id",
                "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0",
            ),
            ("uber-trace-id", "4bf92f3577b34da6a3ce929d0e0e4736:zz:0:1"),
            ("ot-tracer-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ];
        for (name, value) in bad {
            let h = headers(&[(name, value)]);
            assert_eq!(extract(&h, &ALL_FORMATS), None, "{name}: {value}");
        }
        let long = "a=".to_string() + &"b".repeat(MAX_TRACESTATE);
        let h = headers(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            ),
            ("tracestate", &long),
        ]);
        let got = extract(&h, &ALL_FORMATS).unwrap();
        assert_eq!((got.sampled, got.tracestate), (Some(false), None));
    }

    #[test]
    fn extraction_follows_the_configured_order_and_only_those_formats() {
        let h = headers(&[
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("ot-tracer-traceid", "0000000000000000000000000000000a"),
            ("ot-tracer-spanid", "000000000000000b"),
        ]);
        assert_eq!(
            extract(&h, &[Format::Ot, Format::W3c]).unwrap().format,
            Format::Ot
        );
        assert_eq!(
            extract(&h, &[Format::W3c, Format::Ot]).unwrap().format,
            Format::W3c
        );
        assert_eq!(extract(&h, &[Format::Jaeger]), None);
        assert_eq!(extract(&h, &[]), None);
    }

    #[test]
    fn header_type_semantics() {
        let p = Propagation::from_header_type("preserve", Format::B3).unwrap();
        assert_eq!(p.inject_formats(None), vec![Format::B3]);
        assert_eq!(p.inject_formats(Some(Format::Jaeger)), vec![Format::Jaeger]);
        let p = Propagation::from_header_type("ignore", Format::B3).unwrap();
        assert!(p.extract.is_empty());
        assert_eq!(p.inject_formats(None), vec![Format::B3]);
        let p = Propagation::from_header_type("w3c", Format::B3).unwrap();
        assert_eq!(
            p.inject_formats(Some(Format::Ot)),
            vec![Format::Ot, Format::W3c]
        );
        assert_eq!(p.inject_formats(None), vec![Format::B3, Format::W3c]);
        let e = Propagation::from_header_type("aws", Format::B3).unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
