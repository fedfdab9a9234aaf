//! Who is asking: the client's real IP (believing forwarding headers only from trusted
//! proxies) and the request id.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use pingway_plugins::RequestId;

use crate::config::validate::parse_cidr;
use crate::config::ProxySettings;

/// How to find the client address behind trusted proxies. Compiled once per config.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    trusted: Vec<IpNet>,
    real_ip_header: HeaderName,
    /// The real-IP header holds a list (X-Forwarded-For style) rather than one address.
    list_header: bool,
    recursive: bool,
    request_id_header: HeaderName,
}

impl ClientIdentity {
    /// Compiles the proxy settings. Invalid entries were rejected by validation and are
    /// skipped here.
    pub fn new(settings: &ProxySettings) -> Self {
        let real_ip_header = HeaderName::from_bytes(settings.real_ip_header.as_bytes())
            .unwrap_or(http::header::FORWARDED);
        let list_header = real_ip_header.as_str() == "x-forwarded-for";
        ClientIdentity {
            trusted: settings
                .trusted_ips
                .iter()
                .filter_map(|s| parse_cidr(s))
                .collect(),
            real_ip_header,
            list_header,
            recursive: settings.real_ip_recursive,
            request_id_header: HeaderName::from_bytes(settings.request_id_header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-request-id")),
        }
    }

    /// Whether `ip` is one of the configured trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        if self.trusted.is_empty() {
            return false;
        }
        let ip = ip.to_canonical();
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The request-id header name.
    pub fn request_id_header(&self) -> &HeaderName {
        &self.request_id_header
    }

    /// The client address: the peer itself, unless the peer is trusted and the real-IP
    /// header names someone else.
    ///
    /// For `X-Forwarded-For`, every header line is read as one comma-separated list and
    /// walked from the right: with `real_ip_recursive` the first address that is not a
    /// trusted proxy is the client (if all are trusted, the left-most); without it, the
    /// right-most address. An entry that is not an address stops the walk, and the last
    /// trusted hop seen is used, so garbage cannot be used to pick an arbitrary address.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        if !self.list_header {
            return headers
                .get(&self.real_ip_header)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_addr)
                .unwrap_or(peer);
        }
        let mut current = peer;
        // Header lines in reverse, entries of each line in reverse: right to left overall.
        let lines: Vec<&HeaderValue> = headers.get_all(&self.real_ip_header).iter().collect();
        for line in lines.into_iter().rev() {
            let Ok(text) = line.to_str() else {
                return current;
            };
            for entry in text.rsplit(',') {
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                let Some(ip) = parse_addr(entry) else {
                    return current;
                };
                current = ip;
                if !self.recursive || !self.is_trusted(ip) {
                    return ip;
                }
            }
        }
        current
    }

    /// The request id: the incoming header's value when the peer is trusted and the value
    /// is sane, otherwise a new random id.
    pub fn request_id(&self, peer_trusted: bool, headers: &HeaderMap) -> RequestId {
        if peer_trusted {
            let incoming = headers
                .get(&self.request_id_header)
                .filter(|v| v.len() <= 200)
                .and_then(|v| RequestId::from_header_value(v.clone()));
            if let Some(id) = incoming {
                return id;
            }
        }
        new_request_id()
    }
}

/// Parses `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]` or `[::1]:5678`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end]
            .parse::<IpAddr>()
            .ok()
            .map(|ip| ip.to_canonical());
    }
    let (host, port) = s.rsplit_once(':')?;
    if port.bytes().all(|b| b.is_ascii_digit()) {
        return host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

/// Each byte's two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [HEX[b >> 4], HEX[b & 0xf]];
        b += 1;
    }
    t
};

/// Where each of the 16 bytes' two digits go in the 8-4-4-4-12 layout.
const UUID_OFFSETS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/// `v` in the 8-4-4-4-12 hex layout.
fn uuid_text(v: u128) -> [u8; 36] {
    let mut out = *b"00000000-0000-0000-0000-000000000000";
    for (byte, at) in v.to_be_bytes().into_iter().zip(UUID_OFFSETS) {
        out[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    out
}

/// A random 128-bit id in the 8-4-4-4-12 hex layout of a UUID (version 4 bits set),
/// formatted with a table of digit pairs (every request makes one).
pub fn new_request_id() -> RequestId {
    let mut v = fastrand::u128(..);
    v = (v & !(0xf << 76)) | (0x4 << 76); // version 4
    v = (v & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
    let out = uuid_text(v);
    // Only ASCII hex digits and dashes were written: always a valid header value.
    HeaderValue::from_bytes(&out)
        .ok()
        .and_then(RequestId::from_header_value)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(trusted: &[&str], header: &str, recursive: bool) -> ClientIdentity {
        ClientIdentity::new(&ProxySettings {
            trusted_ips: trusted.iter().map(|s| s.to_string()).collect(),
            real_ip_header: header.into(),
            real_ip_recursive: recursive,
            ..ProxySettings::default()
        })
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_headers_say() {
        let id = identity(&["10.0.0.0/8"], "x-forwarded-for", true);
        let h = headers(&[("x-forwarded-for", "54.13.21.1")]);
        assert_eq!(id.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        let none = identity(&[], "x-forwarded-for", true);
        assert_eq!(none.client_ip(ip("10.1.1.1"), &h), ip("10.1.1.1"));
    }

    #[test]
    fn walks_forwarded_for_from_the_right_skipping_trusted_hops() {
        let id = identity(&["10.0.0.0/8", "192.168.0.1"], "x-forwarded-for", true);
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2, 192.168.0.1"),
            ("x-forwarded-for", "10.0.0.7"),
        ]);
        assert_eq!(id.client_ip(ip("10.0.0.1"), &h), ip("2.2.2.2"));
        // Not recursive: the right-most address, trusted or not.
        let flat = identity(&["10.0.0.0/8"], "x-forwarded-for", false);
        assert_eq!(flat.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.7"));
        // All trusted: the left-most.
        let h = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.4")]);
        assert_eq!(id.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.3"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let id = identity(&["10.0.0.0/8"], "x-forwarded-for", true);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, nonsense, 10.0.0.9")]);
        assert_eq!(id.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.9"));
        let h = headers(&[]);
        assert_eq!(id.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn single_address_headers_and_ports() {
        let id = identity(&["127.0.0.1"], "x-real-ip", true);
        let h = headers(&[("x-real-ip", "[2001:db8::1]:443")]);
        assert_eq!(id.client_ip(ip("127.0.0.1"), &h), ip("2001:db8::1"));
        let id = identity(&["127.0.0.1"], "x-forwarded-for", true);
        let h = headers(&[("x-forwarded-for", "203.0.113.9:5555")]);
        assert_eq!(id.client_ip(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn uuid_text_matches_the_standard_formatting() {
        for v in [
            0u128,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            1 << 100,
        ] {
            let hex = format!("{v:032x}");
            let want = format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            );
            assert_eq!(std::str::from_utf8(&uuid_text(v)).unwrap(), want);
        }
    }

    #[test]
    fn request_ids_are_random_uuids_unless_a_trusted_peer_sent_one() {
        let id = identity(&[], "x-forwarded-for", true);
        let a = new_request_id();
        assert_eq!(a.as_str().len(), 36);
        assert_eq!(&a.as_str()[14..15], "4");
        for (i, c) in a.as_str().char_indices() {
            match i {
                8 | 13 | 18 | 23 => assert_eq!(c, '-', "{a:?}"),
                _ => assert!(matches!(c, '0'..='9' | 'a'..='f'), "{a:?}"),
            }
        }
        assert!(
            matches!(&a.as_str()[19..20], "8" | "9" | "a" | "b"),
            "{a:?}"
        );
        assert_ne!(a, new_request_id());
        let h = headers(&[("x-request-id", "abc-123")]);
        assert_eq!(id.request_id(true, &h).as_str(), "abc-123");
        assert_ne!(id.request_id(false, &h).as_str(), "abc-123");
        let bad = headers(&[("x-request-id", "has space")]);
        assert_ne!(id.request_id(true, &bad).as_str(), "has space");
    }
}
