//! Host conditions: checking and compiling configured hosts, and reducing a request's
//! `Host` header to the key the route table is looked up by.

use std::borrow::Cow;
use std::net::Ipv6Addr;

/// A configured host, compiled to lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// The request host equals this.
    Exact(String),
    /// `*.suffix`: labels (one or more, or exactly one, as the route's
    /// `wildcard_labels` says), then this suffix (stored without the `*.`).
    Wildcard(String),
    /// `prefix.*` (Kong's rightmost wildcard): this prefix, then labels (as many as
    /// for `Wildcard`), stored without the `.*`.
    WildcardEnd(String),
}

const WILDCARD_HELP: &str =
    "a wildcard is only allowed as the whole first or last label, as in *.example.com or example.*";

/// Checks a configured host and compiles it, or says what is wrong with it.
pub(crate) fn parse_host(raw: &str) -> Result<HostPattern, String> {
    match raw {
        "" => return Err("a host must not be empty; leave `hosts` out to match any host".into()),
        "*" => return Err("`*` alone is not a host; leave `hosts` out to match any host".into()),
        "*." => return Err("`*.` needs a domain after it, as in *.example.com".into()),
        _ => {}
    }
    if raw.starts_with('[') {
        return parse_ipv6_literal(raw);
    }
    if raw.matches(':').nth(1).is_some() {
        return Err(format!(
            "{raw:?}: write an IPv6 address in brackets, as in [2001:db8::1]"
        ));
    }
    if let Some((_, port)) = raw.rsplit_once(':') {
        if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("ports are not matched; remove :{port}"));
        }
    }
    // A fully qualified name may end with the root's dot; requests are reduced the same way.
    let name = raw.strip_suffix('.').unwrap_or(raw);
    if let Some(suffix) = name.strip_prefix("*.") {
        check_dns_name(suffix, raw)?;
        return Ok(HostPattern::Wildcard(suffix.to_ascii_lowercase()));
    }
    if let Some(prefix) = name.strip_suffix(".*") {
        check_dns_name(prefix, raw)?;
        return Ok(HostPattern::WildcardEnd(prefix.to_ascii_lowercase()));
    }
    check_dns_name(name, raw)?;
    Ok(HostPattern::Exact(name.to_ascii_lowercase()))
}

/// `[v6-address]`, as a `Host` header carries it.
fn parse_ipv6_literal(raw: &str) -> Result<HostPattern, String> {
    let invalid = || format!("{raw:?} is not a valid IPv6 literal such as [2001:db8::1]");
    let (inner, rest) = raw[1..].split_once(']').ok_or_else(invalid)?;
    if let Some(port) = rest.strip_prefix(':') {
        return Err(format!("ports are not matched; remove :{port}"));
    }
    if !rest.is_empty() || inner.parse::<Ipv6Addr>().is_err() {
        return Err(invalid());
    }
    Ok(HostPattern::Exact(raw.to_ascii_lowercase()))
}

/// Checks a DNS name (or IPv4 address): dot-separated labels of letters, digits, `-` and
/// `_`, at most 63 bytes each and 253 in all.
fn check_dns_name(name: &str, raw: &str) -> Result<(), String> {
    if name.contains('*') {
        return Err(WILDCARD_HELP.into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "invalid character {c:?} in host {raw:?}; hosts are DNS names such as api.example.com"
        ));
    }
    if name.len() > 253 {
        return Err(format!("host {raw:?} is longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!(
                "host {raw:?} has an empty label (`..` or a leading dot)"
            ));
        }
        if label.len() > 63 {
            return Err(format!(
                "host {raw:?} has a label longer than 63 characters"
            ));
        }
    }
    Ok(())
}

/// Reduces a raw `Host` header value to its lookup key: the port is removed (also after
/// an IPv6 literal, `[::1]:8080` gives `[::1]`), a trailing root dot is removed, and the
/// rest is lowercased. Borrows when the value is already lowercase.
pub(crate) fn request_host(raw: &str) -> Cow<'_, str> {
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.find(':') {
            // One colon: `host:port`. More: an unbracketed IPv6 address, kept whole.
            Some(colon) if !raw[colon + 1..].contains(':') => &raw[..colon],
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Every suffix of a request host that a wildcard could be keyed by, the longest
/// (narrowest) first, with its number of labels (a one-label wildcard is keyed by the
/// first only): `a.b.example.com` gives
/// `b.example.com` (3), `example.com` (2), `com` (1). Labels in front of a suffix must
/// not be empty: a host that starts with a dot or has `..` gives nothing past that point.
/// One suffix per dot, without copying; the router looks up only those whose label count
/// some configured wildcard has, so a long hostile `Host` costs a pass over its bytes and
/// a few lookups.
pub(crate) fn wildcard_suffixes(host: &str) -> impl Iterator<Item = (&str, usize)> {
    let labels = host.bytes().filter(|&b| b == b'.').count() + 1;
    let mut previous_dot: Option<usize> = None;
    host.match_indices('.')
        .map(|(i, _)| i)
        .take_while(move |&i| {
            let label_before = previous_dot.map_or(i, |p| i - p - 1);
            previous_dot = Some(i);
            label_before > 0
        })
        .enumerate()
        .map(move |(k, i)| (&host[i + 1..], labels - k - 1))
        .filter(|(suffix, _)| !suffix.is_empty())
}

/// Every prefix of a request host that a rightmost wildcard (`example.*`) could be keyed
/// by, the longest (narrowest) first, with its number of labels: `example.co.uk` gives
/// `example.co` (2), `example` (1). The labels after a prefix must not be empty. As for
/// [`wildcard_suffixes`], one per dot, without copying.
pub(crate) fn wildcard_prefixes(host: &str) -> impl Iterator<Item = (&str, usize)> {
    let labels = host.bytes().filter(|&b| b == b'.').count() + 1;
    let mut previous_dot = host.len();
    host.rmatch_indices('.')
        .map(|(i, _)| i)
        .take_while(move |&i| {
            let label_after = previous_dot - i - 1;
            previous_dot = i;
            label_after > 0
        })
        .enumerate()
        .map(move |(k, i)| (&host[..i], labels - k - 1))
        .filter(|(prefix, _)| !prefix.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_configured_hosts() {
        let exact = |s: &str| Ok(HostPattern::Exact(s.into()));
        let wild = |s: &str| Ok(HostPattern::Wildcard(s.into()));
        assert_eq!(parse_host("api.example.com"), exact("api.example.com"));
        assert_eq!(parse_host("API.Example.COM"), exact("api.example.com"));
        assert_eq!(parse_host("api.example.com."), exact("api.example.com"));
        assert_eq!(parse_host("localhost"), exact("localhost"));
        assert_eq!(parse_host("10.0.0.1"), exact("10.0.0.1"));
        assert_eq!(parse_host("[::1]"), exact("[::1]"));
        assert_eq!(parse_host("[2001:DB8::1]"), exact("[2001:db8::1]"));
        assert_eq!(parse_host("my_svc.internal"), exact("my_svc.internal"));
        assert_eq!(parse_host("*.Example.com"), wild("example.com"));
        assert_eq!(parse_host("*.com"), wild("com"));
    }

    #[test]
    fn reduces_request_hosts() {
        let cases = [
            ("api.example.com", "api.example.com", true),
            ("api.example.com:8080", "api.example.com", true),
            ("API.Example.com:443", "api.example.com", false),
            ("api.example.com.", "api.example.com", true),
            ("[::1]:8080", "[::1]", true),
            ("[::1]", "[::1]", true),
            ("[2001:DB8::1]:80", "[2001:db8::1]", false),
            ("::1", "::1", true),
            ("", "", true),
        ];
        for (raw, want, borrowed) in cases {
            let got = request_host(raw);
            assert_eq!(got, want, "request_host({raw:?})");
            assert_eq!(matches!(got, Cow::Borrowed(_)), borrowed, "{raw:?}");
        }
    }

    #[test]
    fn wildcard_prefixes_go_from_narrowest_to_widest() {
        let all = |h| wildcard_prefixes(h).collect::<Vec<_>>();
        assert_eq!(all("example.co.uk"), [("example.co", 2), ("example", 1)]);
        assert_eq!(all("example.com"), [("example", 1)]);
        assert_eq!(all("localhost"), []);
        assert_eq!(all("example.com."), []);
        assert_eq!(all("example..com"), [("example.", 2)]);
        assert_eq!(all(".com"), []);
    }

    #[test]
    fn wildcard_suffixes_go_from_narrowest_to_widest() {
        let all = |h| wildcard_suffixes(h).collect::<Vec<_>>();
        assert_eq!(
            all("a.b.example.com"),
            [("b.example.com", 3), ("example.com", 2), ("com", 1)]
        );
        assert_eq!(all("a.example.com"), [("example.com", 2), ("com", 1)]);
        assert_eq!(all("localhost"), []);
        assert_eq!(all(".example.com"), []);
        assert_eq!(all("a..example.com"), [(".example.com", 3)]);
        assert_eq!(all("a."), []);
    }
}
