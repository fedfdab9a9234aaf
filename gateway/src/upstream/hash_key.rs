//! The key consistent hashing is computed on: client IP, a header, a cookie or the
//! path. A missing header or cookie falls back to the client IP. Nothing here allocates.

use std::net::IpAddr;

use http::header::{HeaderName, COOKIE};

use super::ring::KeyHasher;

/// Where the hash key is read from, prepared once at build time.
#[derive(Debug, Clone)]
pub(crate) enum HashKey {
    /// The client IP.
    Ip,
    /// The first value of this header.
    Header(HeaderName),
    /// The value of this cookie.
    Cookie(String),
    /// The request path (without the query).
    Path,
}

impl HashKey {
    /// The 64-bit hash of this request's key.
    pub(crate) fn hash(&self, client_ip: IpAddr, header: &http::request::Parts) -> u64 {
        let mut h = KeyHasher::new();
        let found = match self {
            HashKey::Ip => false,
            HashKey::Header(name) => match header.headers.get(name) {
                Some(value) => {
                    h.write(value.as_bytes());
                    true
                }
                None => false,
            },
            HashKey::Cookie(name) => match cookie_value(header, name) {
                Some(value) => {
                    h.write(value);
                    true
                }
                None => false,
            },
            HashKey::Path => {
                h.write(header.uri.path().as_bytes());
                true
            }
        };
        if !found {
            write_ip(&mut h, client_ip);
        }
        h.finish()
    }
}

/// Feeds an IP; an IPv4-mapped IPv6 address hashes like the IPv4 address it carries,
/// so a dual-stack listener does not split one client over two keys.
fn write_ip(h: &mut KeyHasher, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => h.write(&v4.octets()),
            None => h.write(&v6.octets()),
        },
    }
}

/// The value of cookie `name` from the request's `Cookie` header(s), first match wins.
fn cookie_value<'a>(header: &'a http::request::Parts, name: &str) -> Option<&'a [u8]> {
    for value in header.headers.get_all(COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let pair = trim(pair);
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if trim(&pair[..eq]) == name.as_bytes() {
                return Some(trim(&pair[eq + 1..]));
            }
        }
    }
    None
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::testing::request;

    #[test]
    fn reads_cookies_across_headers_and_spacing() {
        let r = request(
            "/",
            &[("cookie", "a=1;  session = abc ; b=2"), ("cookie", "c=3")],
        );
        assert_eq!(cookie_value(&r, "session"), Some(&b"abc"[..]));
        assert_eq!(cookie_value(&r, "c"), Some(&b"3"[..]));
        assert_eq!(
            cookie_value(&r, "Session"),
            None,
            "names are case-sensitive"
        );
        assert_eq!(cookie_value(&r, "missing"), None);
    }

    #[test]
    fn missing_header_or_cookie_hashes_like_the_ip() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let r = request("/x", &[]);
        let by_ip = HashKey::Ip.hash(ip, &r);
        let header = HashKey::Header(HeaderName::from_static("x-user"));
        assert_eq!(header.hash(ip, &r), by_ip);
        assert_eq!(HashKey::Cookie("sid".into()).hash(ip, &r), by_ip);
        let with = request("/x", &[("x-user", "alice")]);
        assert_ne!(header.hash(ip, &with), by_ip);
    }

    #[test]
    fn path_ignores_query_and_mapped_ipv6_matches_ipv4() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = HashKey::Path.hash(ip, &request("/a?x=1", &[]));
        let b = HashKey::Path.hash(ip, &request("/a?x=2", &[]));
        assert_eq!(a, b);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let r = request("/", &[]);
        assert_eq!(HashKey::Ip.hash(ip, &r), HashKey::Ip.hash(mapped, &r));
    }
}
