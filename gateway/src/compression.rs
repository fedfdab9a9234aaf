//! Per-route response compression (`routes[].compression`) through Pingora's
//! `ResponseCompression` downstream module.
//!
//! The module is installed only when a route of the configuration the gateway starts
//! with asks for compression, and installed at level 0 (off): each request of such a
//! route turns it on for the route's algorithms in the request phase, with the client's
//! `Accept-Encoding` narrowed to those algorithms (so the client's first choice among
//! them wins). The response phase turns it off again for a response that is too small
//! (`min_size`, by `Content-Length`) or of a type not listed. Pingora leaves alone a
//! response that is already encoded, one without a body, and types it does not
//! consider compressible (its own list: text, JSON, JavaScript, XML, SVG and the like).

use http::{header, HeaderValue};
use pingora_core::modules::http::compression::{ResponseCompression, ResponseCompressionBuilder};
use pingora_core::modules::http::HttpModules;
use pingora_core::protocols::http::compression::Algorithm;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use pingway_plugins::config::Diagnostic;

use crate::cache::MediaType;
use crate::config::model::Compression;

/// The highest `level` accepted (the range every algorithm has).
pub const MAX_LEVEL: u32 = 9;

/// A route's compiled `compression`.
#[derive(Debug)]
pub struct CompiledCompression {
    algorithms: Vec<Algorithm>,
    min_size: u64,
    types: Vec<MediaType>,
    level: u32,
}

fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "gzip" => Some(Algorithm::Gzip),
        "br" => Some(Algorithm::Brotli),
        "zstd" => Some(Algorithm::Zstd),
        _ => None,
    }
}

impl CompiledCompression {
    /// Compiles `config` found at `path`, reporting problems into `diags`.
    pub fn compile(
        config: &Compression,
        path: &str,
        diags: &mut Vec<Diagnostic>,
    ) -> Option<Box<CompiledCompression>> {
        let before = diags.len();
        if config.algorithms.is_empty() {
            diags.push(Diagnostic::new(
                format!("{path}.algorithms"),
                "must not be empty",
            ));
        }
        let mut algorithms = Vec::new();
        for (i, name) in config.algorithms.iter().enumerate() {
            match algorithm(name) {
                // Pingora 0.9.1's brotli encoder flushes at the end of a body but never
                // ends the stream, which strict decoders reject: not offered until it does.
                Some(Algorithm::Brotli) => diags.push(Diagnostic::new(
                    format!("{path}.algorithms[{i}]"),
                    "br is not supported yet (Pingora 0.9.1's brotli encoder leaves the stream unterminated); use gzip or zstd",
                )),
                Some(a) if !algorithms.contains(&a) => algorithms.push(a),
                Some(_) => {}
                None => diags.push(Diagnostic::new(
                    format!("{path}.algorithms[{i}]"),
                    format!("unknown algorithm {name:?} (expected gzip or zstd)"),
                )),
            }
        }
        let mut types = Vec::new();
        for (i, t) in config.content_types.iter().enumerate() {
            match MediaType::parse(t) {
                Some(m) => types.push(m),
                None => diags.push(Diagnostic::new(
                    format!("{path}.content_types[{i}]"),
                    format!("{t:?} is not a media type (type/subtype)"),
                )),
            }
        }
        if config.content_types.is_empty() {
            diags.push(Diagnostic::new(
                format!("{path}.content_types"),
                "must not be empty",
            ));
        }
        if !(1..=MAX_LEVEL).contains(&config.level) {
            diags.push(Diagnostic::new(
                format!("{path}.level"),
                format!("must be between 1 and {MAX_LEVEL}"),
            ));
        }
        (diags.len() == before).then(|| {
            Box::new(CompiledCompression {
                algorithms,
                min_size: config.min_size,
                types,
                level: config.level,
            })
        })
    }

    /// Turns compression on for this request, for the route's algorithms that the
    /// client accepts.
    pub fn request(&self, session: &mut Session) {
        let accepted = narrowed_accept_encoding(session.req_header(), &self.algorithms);
        let Some(accepted) = accepted else {
            return;
        };
        let Some(module) = session
            .downstream_modules_ctx
            .get_mut::<ResponseCompression>()
        else {
            return;
        };
        if !module.is_header_phase() {
            return;
        }
        for a in &self.algorithms {
            module.adjust_algorithm_level(*a, self.level);
        }
        // Pingora's module read Accept-Encoding while it was off; give it the client's
        // preferences among the route's algorithms.
        if let Ok(mut narrowed) = RequestHeader::build("GET", b"/", Some(1)) {
            if narrowed
                .insert_header(header::ACCEPT_ENCODING, accepted)
                .is_ok()
            {
                module.request_filter(&narrowed);
            }
        }
    }

    /// Turns compression off again for a response too small or of another type.
    pub fn response(&self, session: &mut Session, resp: &ResponseHeader) {
        if self.qualifies(resp) {
            return;
        }
        disable(session);
    }

    fn qualifies(&self, resp: &ResponseHeader) -> bool {
        let len = resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if len.is_some_and(|l| l < self.min_size) {
            return false;
        }
        let media = resp
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(MediaType::parse);
        media.is_some_and(|m| self.types.iter().any(|t| t.matches(&m)))
    }
}

/// Turns the module off for this request (for the gateway's own answers).
pub fn disable(session: &mut Session) {
    if let Some(module) = session
        .downstream_modules_ctx
        .get_mut::<ResponseCompression>()
    {
        if module.is_header_phase() {
            module.adjust_level(0);
        }
    }
}

/// Installs the module (off) when some route of `routes` compresses.
pub fn install(modules: &mut HttpModules, any_route_compresses: bool) {
    if any_route_compresses {
        modules.add_module(ResponseCompressionBuilder::enable(0));
    }
}

/// The client's `Accept-Encoding` entries naming one of `algorithms`, most preferred
/// first (by `q`, then by order; `q=0` excluded), or none when it names none of them.
/// Pingora's module takes the first entry it is given, whatever the weights.
fn narrowed_accept_encoding(req: &RequestHeader, algorithms: &[Algorithm]) -> Option<HeaderValue> {
    let mut picked: Vec<(u32, &str)> = Vec::new();
    for value in req.headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let name = parts.next().unwrap_or("").trim();
            let known = algorithm(&name.to_ascii_lowercase());
            if !known.is_some_and(|a| algorithms.contains(&a)) {
                continue;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            // Thousandths, as RFC 9110 writes weights.
            let q = (q.clamp(0.0, 1.0) * 1000.0).round() as u32;
            if q > 0 {
                picked.push((q, name));
            }
        }
    }
    if picked.is_empty() {
        return None;
    }
    picked.sort_by_key(|p| std::cmp::Reverse(p.0));
    let names: Vec<&str> = picked.iter().map(|(_, n)| *n).collect();
    HeaderValue::from_str(&names.join(", ")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_narrowed_to_the_routes_algorithms() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("accept-encoding", "deflate, zstd;q=0.5, GZIP, br, identity")
            .unwrap();
        let got = narrowed_accept_encoding(&req, &[Algorithm::Gzip, Algorithm::Zstd]);
        assert_eq!(got.unwrap(), "GZIP, zstd");
        assert!(narrowed_accept_encoding(&req, &[Algorithm::Brotli]).unwrap() == "br");
        let mut none = RequestHeader::build("GET", b"/", None).unwrap();
        none.insert_header("accept-encoding", "gzip;q=0, deflate")
            .unwrap();
        assert!(narrowed_accept_encoding(&none, &[Algorithm::Gzip]).is_none());
    }

    #[test]
    fn bad_fields_are_named() {
        let c = Compression {
            algorithms: vec!["gzip".into(), "lz4".into()],
            min_size: 0,
            content_types: vec!["json".into()],
            level: 0,
        };
        let mut d = Vec::new();
        assert!(CompiledCompression::compile(&c, "routes[0].compression", &mut d).is_none());
        let paths: Vec<_> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "routes[0].compression.algorithms[1]",
                "routes[0].compression.content_types[0]",
                "routes[0].compression.level"
            ]
        );
    }
}
