//! Checks on a request's head before it is routed, so that what the router decides on is
//! what the upstream will act on: the request-target's form (RFC 9112 §3.2), `Host`,
//! encoded slashes, the head's size, and the headers that `Connection` nominates.
//!
//! A request that fails gets a 4xx JSON answer before any plugin sees it. One that passes
//! is rewritten in place: an absolute-form target becomes origin-form with its authority
//! as `Host`; encoded slashes are decoded when configured to; headers nominated by
//! `Connection` are removed before plugins add theirs.

use http::header::{self, HeaderName};
use http::{HeaderValue, Method, StatusCode, Version};
use pingora_http::RequestHeader;
use pingway_plugins::RequestHead;

use crate::config::EscapedSlashes;

/// Why a request head is refused: the status and Kong-style message the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// 400 or 431.
    pub status: StatusCode,
    /// The `message` of the JSON body.
    pub message: &'static str,
}

impl Rejection {
    const fn bad_request(message: &'static str) -> Self {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    /// The JSON answer the client gets.
    pub fn response(&self) -> pingway_plugins::Response {
        pingway_plugins::Response::error(self.status, self.message)
    }
}

/// The request-target is none of the forms a gateway serves.
pub const INVALID_TARGET: Rejection = Rejection::bad_request("invalid request target");
/// An HTTP/1.1 request without `Host`, or with several.
pub const BAD_HOST: Rejection = Rejection::bad_request("missing or ambiguous Host header");
/// `Host` is not a host with an optional port.
pub const INVALID_HOST: Rejection = Rejection::bad_request("invalid Host header");
/// `%2F` or `%5C` in the path with `escaped_slashes: reject`.
pub const ESCAPED_SLASH: Rejection = Rejection::bad_request("encoded slash in request path");
/// `Connection` names a header the gateway sets.
pub const PROTECTED_NOMINATION: Rejection =
    Rejection::bad_request("Connection header names a header the gateway sets");
/// The head is over `max_request_header_bytes` or `max_request_headers`.
pub const HEAD_TOO_LARGE: Rejection = Rejection {
    status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    message: "Request header fields too large",
};

/// The limits and policies a head is checked against (from the `proxy:` settings).
#[derive(Debug, Clone)]
pub struct HeadPolicy {
    /// What to do with `%2F` / `%5C` in the path.
    pub escaped_slashes: EscapedSlashes,
    /// Largest head in bytes (request line and header lines).
    pub max_bytes: usize,
    /// Most header lines.
    pub max_headers: usize,
    /// Headers a client may not nominate in `Connection`, because the gateway or its
    /// plugins set them (lowercase).
    pub protected: Vec<HeaderName>,
}

/// Headers the gateway or the stock plugins set on the upstream request; a client that
/// could nominate them in `Connection` could have them stripped after they were set.
pub const PROTECTED_HEADERS: &[&str] = &[
    "host",
    "forwarded",
    "via",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-consumer-groups",
    "x-credential-identifier",
    "x-anonymous-consumer",
    "x-authenticated-groups",
    "x-authenticated-scope",
    "x-authenticated-userid",
    "content-length",
    "transfer-encoding",
];

impl HeadPolicy {
    /// The policy with `request_id_header` protected too.
    pub fn new(
        escaped_slashes: EscapedSlashes,
        max_bytes: usize,
        max_headers: usize,
        request_id_header: &str,
    ) -> Self {
        let mut protected: Vec<HeaderName> = PROTECTED_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect();
        if let Ok(id) = HeaderName::from_bytes(request_id_header.as_bytes()) {
            protected.push(id);
        }
        HeadPolicy {
            escaped_slashes,
            max_bytes,
            max_headers,
            protected,
        }
    }
}

/// The form of a request-target (RFC 9112 §3.2) that the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm<'a> {
    /// `/path?query`.
    Origin,
    /// `*`, for `OPTIONS` only.
    Asterisk,
    /// `http://authority/path?query` (what clients send to a forward proxy).
    Absolute {
        /// `host[:port]`.
        authority: &'a [u8],
        /// The rest of the target, possibly empty or starting with `?`.
        path_and_query: &'a [u8],
    },
}

/// Classifies a raw request-target. Anything that is not origin-form, `*` with
/// `OPTIONS`, or absolute-form with an `http`/`https` scheme and a host is refused:
/// `GET admin` or `GET ../admin` would otherwise reach a route on `/` and a backend that
/// resolves them to `/admin`. (CONNECT's authority-form is refused before this, by
/// Pingora.)
pub fn classify_target<'a>(method: &Method, raw: &'a [u8]) -> Result<TargetForm<'a>, Rejection> {
    match raw.first() {
        Some(b'/') => return Ok(TargetForm::Origin),
        Some(b'*') if raw.len() == 1 && method == Method::OPTIONS => {
            return Ok(TargetForm::Asterisk)
        }
        _ => {}
    }
    let rest = strip_scheme(raw).ok_or(INVALID_TARGET)?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    if !is_valid_authority(authority) {
        return Err(INVALID_TARGET);
    }
    if path_and_query.first() == Some(&b'#') {
        return Err(INVALID_TARGET);
    }
    Ok(TargetForm::Absolute {
        authority,
        path_and_query,
    })
}

/// The target after `http://` or `https://` (scheme case-insensitive), if it has one.
fn strip_scheme(raw: &[u8]) -> Option<&[u8]> {
    let colon = raw.iter().position(|&b| b == b':')?;
    let (scheme, rest) = raw.split_at(colon);
    let scheme_ok = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https");
    if !scheme_ok {
        return None;
    }
    rest.strip_prefix(b"://")
}

/// An RFC 3986 authority without userinfo, with a host (RFC 9110 §4.2.1 forbids an
/// empty one in `http` URIs): `reg-name` or `[IP-literal]`, then an optional `:port`.
fn is_valid_authority(authority: &[u8]) -> bool {
    let (host, port) = if authority.first() == Some(&b'[') {
        let Some(end) = authority.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &authority[1..end];
        let literal_ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'));
        if !literal_ok {
            return false;
        }
        (&authority[..=end], &authority[end + 1..])
    } else {
        let colon = authority
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(authority.len());
        let (name, port) = authority.split_at(colon);
        if name.is_empty() || !is_reg_name(name) {
            return false;
        }
        (name, port)
    };
    let port_ok = port.is_empty() || (port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit));
    !host.is_empty() && port_ok
}

/// The bytes of an RFC 3986 `reg-name` other than `%`: unreserved and sub-delims.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    t
};

/// RFC 3986 `reg-name`: unreserved, sub-delims and percent-encoded bytes (one table
/// lookup a byte: every request's `Host` goes through this).
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b == b'%' {
            let hex = name.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
            continue;
        }
        if !REG_NAME[usize::from(b)] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `value` is a valid `Host`: empty (allowed when the target has no authority),
/// or an authority without userinfo.
fn is_valid_host(value: &[u8]) -> bool {
    value.is_empty() || is_valid_authority(value)
}

/// What [`escaped_slashes`] decided for a path.
#[derive(Debug, PartialEq, Eq)]
pub enum SlashOutcome {
    /// Nothing to do: no encoded slash, or `keep`.
    Unchanged,
    /// `unescape`: the path with `%2F` → `/` and `%5C` → `\`.
    Unescaped(String),
}

/// Applies the `escaped_slashes` policy to a path (without its query).
pub fn escaped_slashes(path: &str, policy: EscapedSlashes) -> Result<SlashOutcome, Rejection> {
    if policy == EscapedSlashes::Keep || !has_escaped_slash(path.as_bytes()) {
        return Ok(SlashOutcome::Unchanged);
    }
    if policy == EscapedSlashes::Reject {
        return Err(ESCAPED_SLASH);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(c) = escaped_slash_at(bytes, i) {
            out.push_str(&path[copied..i]);
            out.push(c);
            i += 3;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&path[copied..]);
    Ok(SlashOutcome::Unescaped(out))
}

fn has_escaped_slash(path: &[u8]) -> bool {
    (0..path.len()).any(|i| escaped_slash_at(path, i).is_some())
}

/// The separator `%2F` / `%5C` (any case) at `path[i]` encodes, if it is one.
fn escaped_slash_at(path: &[u8], i: usize) -> Option<char> {
    match path.get(i..i + 3)? {
        [b'%', b'2', b'f' | b'F'] => Some('/'),
        [b'%', b'5', b'c' | b'C'] => Some('\\'),
        _ => None,
    }
}

/// Checks the head and rewrites it for routing: the target's form, `Host`, size limits
/// and `Connection` nominations. Encoded slashes are handled with the path, by
/// [`escaped_slashes`].
pub fn check(req: &mut RequestHeader, policy: &HeadPolicy) -> Result<(), Rejection> {
    let scan = check_size(req, policy)?;
    let absolute = match classify_target(&req.method, req.raw_path())? {
        TargetForm::Absolute {
            authority,
            path_and_query,
        } => Some((
            HeaderValue::from_bytes(authority).map_err(|_| INVALID_TARGET)?,
            origin_form(path_and_query)?,
        )),
        TargetForm::Origin | TargetForm::Asterisk => None,
    };
    check_host(req, &scan)?;
    host_from_authority(req)?;
    if let Some((authority, origin)) = absolute {
        // RFC 9112 §3.2.2: the target's authority wins over Host, and upstreams get the
        // origin-form they expect.
        req.set_uri(origin);
        req.insert_header(header::HOST, authority)
            .map_err(|_| INVALID_TARGET)?;
    }
    if !scan.connection {
        return Ok(());
    }
    strip_nominated(req, policy)
}

/// What the pass over a head's lines (for its size) noted on the way, so that the checks
/// after it need no lookups of their own.
struct Scan {
    /// `Host` lines, counted up to two.
    hosts: u8,
    /// Whether the only (or first) `Host` is a valid one.
    host_valid: bool,
    /// Whether the head has a `Connection` line.
    connection: bool,
}

/// `path_and_query` of an absolute-form target as an origin-form URI.
fn origin_form(path_and_query: &[u8]) -> Result<http::Uri, Rejection> {
    let text = std::str::from_utf8(path_and_query).map_err(|_| INVALID_TARGET)?;
    let uri = match text.as_bytes().first() {
        None => Ok(http::Uri::from_static("/")),
        Some(b'/') => text.parse(),
        Some(_) => format!("/{text}").parse(),
    };
    uri.map_err(|_| INVALID_TARGET)
}

/// 431 when the head is over the byte or line limit; otherwise what the same pass over
/// its lines noted (see [`Scan`]).
fn check_size(req: &RequestHeader, policy: &HeadPolicy) -> Result<Scan, Rejection> {
    if req.headers.len() > policy.max_headers {
        return Err(HEAD_TOO_LARGE);
    }
    let mut scan = Scan {
        hosts: 0,
        host_valid: false,
        connection: false,
    };
    // "METHOD target HTTP/1.1\r\n", then "name: value\r\n" each.
    let mut bytes = req.method.as_str().len() + req.raw_path().len() + 12;
    for (name, value) in req.headers.iter() {
        bytes += name.as_str().len() + value.len() + 4;
        if bytes > policy.max_bytes {
            return Err(HEAD_TOO_LARGE);
        }
        if *name == header::HOST {
            if scan.hosts == 0 {
                scan.host_valid = is_valid_host(value.as_bytes());
            }
            scan.hosts = scan.hosts.saturating_add(1).min(2);
        } else if *name == header::CONNECTION {
            scan.connection = true;
        }
    }
    if bytes > policy.max_bytes {
        return Err(HEAD_TOO_LARGE);
    }
    Ok(scan)
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one valid `Host`; HTTP/1.0 at most one.
fn check_host(req: &RequestHeader, scan: &Scan) -> Result<(), Rejection> {
    match scan.hosts {
        2.. => Err(BAD_HOST),
        0 if req.version == Version::HTTP_11 => Err(BAD_HOST),
        1 if !scan.host_valid => Err(INVALID_HOST),
        _ => Ok(()),
    }
}

/// An HTTP/2 request without `Host` gets one from its `:authority` (RFC 9113 §8.3.1, what
/// an intermediary forwarding it as HTTP/1.1 does), so that routing, plugins, the
/// forwarding headers and `preserve_host` see the same `Host` as over HTTP/1.1.
fn host_from_authority(req: &mut RequestHeader) -> Result<(), Rejection> {
    if req.version != Version::HTTP_2 || req.headers.contains_key(header::HOST) {
        return Ok(());
    }
    let Some(authority) = req.uri.authority() else {
        return Ok(());
    };
    let value = HeaderValue::from_str(authority.as_str()).map_err(|_| INVALID_HOST)?;
    if !is_valid_host(value.as_bytes()) {
        return Err(INVALID_HOST);
    }
    req.insert_header(header::HOST, value)
        .map_err(|_| INVALID_HOST)
}

/// Removes the headers `Connection` nominates (they are hop-by-hop: RFC 9110 §7.6.1) now,
/// before plugins add theirs, and refuses nominations of headers the gateway sets. Only
/// the connection options `close`, `keep-alive` and `upgrade` stay in `Connection`.
fn strip_nominated(req: &mut RequestHeader, policy: &HeadPolicy) -> Result<(), Rejection> {
    let mut nominated: Vec<HeaderName> = Vec::new();
    let mut options: Vec<&'static str> = Vec::new();
    for value in req.headers.get_all(header::CONNECTION) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            if let Some(option) = ["close", "keep-alive", "upgrade"]
                .into_iter()
                .find(|o| token.eq_ignore_ascii_case(o.as_bytes()))
            {
                if !options.contains(&option) {
                    options.push(option);
                }
                continue;
            }
            let Ok(name) = HeaderName::from_bytes(token) else {
                return Err(Rejection::bad_request("invalid Connection header"));
            };
            if policy.protected.contains(&name) {
                return Err(PROTECTED_NOMINATION);
            }
            nominated.push(name);
        }
    }
    if nominated.is_empty() {
        return Ok(());
    }
    for name in &nominated {
        req.remove_header(name);
    }
    if options.is_empty() {
        req.remove_header(&header::CONNECTION);
    } else {
        let value = HeaderValue::from_str(&options.join(", ")).map_err(|_| INVALID_TARGET)?;
        let _ = req.insert_header(header::CONNECTION, value);
    }
    Ok(())
}

/// One `Content-Length` for the upstream when the client sent the same value more than
/// once (`Content-Length: 5` twice, or `5, 5`); Pingora has already refused differing
/// values.
pub fn single_content_length(req: &mut impl RequestHead) {
    let mut values = req.parts().headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = values.next() else { return };
    let repeated = values.next().is_some() || first.as_bytes().contains(&b',');
    if !repeated {
        return;
    }
    let length = first
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .map(<[u8]>::trim_ascii)
        .and_then(|v| HeaderValue::from_bytes(v).ok());
    if let Some(length) = length {
        req.insert_header(header::CONTENT_LENGTH, length);
    }
}

#[cfg(test)]
mod tests;
