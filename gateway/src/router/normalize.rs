//! RFC 3986 path normalization, applied once to a request path before it is routed and
//! forwarded, so that `/api/%2E%2E/admin` cannot slip past a route on `/admin`.

use std::borrow::Cow;

/// Normalizes a request path (without its query string) for routing and forwarding.
///
/// - Percent-encoded *unreserved* characters (`ALPHA DIGIT - . _ ~`) are decoded, so
///   `%2E` becomes `.` and `%41` becomes `A`; other escapes (`%2F`, `%20`, ...) are kept
///   as they are, because decoding them would change what the path means.
/// - Dot segments are removed (`/a/./b/../c` becomes `/a/c`); `..` never climbs above
///   the root. A path ending in a dot segment keeps a trailing slash (`/a/b/..` is `/a/`).
/// - Repeated slashes are merged (`/a//b` becomes `/a/b`).
///
/// A path that does not start with `/` (such as `*` in `OPTIONS *`) is returned as is.
/// When nothing changes, which is the common case, the result borrows `path` and
/// nothing is allocated.
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') || !needs_normalization(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    Cow::Owned(remove_dot_segments(&decoded))
}

/// Whether `normalize_path` would change `path` (which starts with `/`).
fn needs_normalization(path: &[u8]) -> bool {
    let at = |i: usize| path.get(i).copied();
    let ends_segment = |i: usize| matches!(at(i), None | Some(b'/'));
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' if decode_escape(path, i).is_some() => return true,
            b'/' => match at(i + 1) {
                Some(b'/') => return true,
                Some(b'.') if ends_segment(i + 2) => return true,
                Some(b'.') if at(i + 2) == Some(b'.') && ends_segment(i + 3) => return true,
                _ => {}
            },
            _ => {}
        }
    }
    false
}

/// The unreserved character that the escape starting at `path[i]` (a `%`) encodes, if any.
fn decode_escape(path: &[u8], i: usize) -> Option<u8> {
    let hi = hex_value(*path.get(i + 1)?)?;
    let lo = hex_value(*path.get(i + 2)?)?;
    let c = (hi << 4) | lo;
    let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
    unreserved.then_some(c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes escapes of unreserved characters; every other byte is copied.
fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(c) = decode_escape(bytes, i) {
                out.push_str(&path[copied..i]);
                out.push(char::from(c));
                i += 3;
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&path[copied..]);
    Cow::Owned(out)
}

/// Removes `.` and `..` segments and empty segments from a path starting with `/`.
fn remove_dot_segments(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let rest = path.strip_prefix('/').unwrap_or(path);
    let mut trailing_slash = false;
    for segment in rest.split('/') {
        // Only the last segment decides whether the result ends with a slash.
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                let parent = out.rfind('/').unwrap_or(0);
                out.truncate(parent);
            }
            s => {
                out.push('/');
                out.push_str(s);
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths() {
        let cases = [
            ("/", "/"),
            ("//", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/a//b", "/a/b"),
            ("///a///b///", "/a/b/"),
            ("/a/./b/../c", "/a/c"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/.", "/"),
            ("/a/%2E%2E/b", "/b"),
            ("/a/%2e/b", "/a/b"),
            ("/api/%2E%2E/admin", "/admin"),
            ("/%41%62%7E%2D%5F%30", "/Ab~-_0"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%20b", "/a%20b"),
            ("/a%2fb", "/a%2fb"),
            ("/%252E", "/%252E"),
            ("/%", "/%"),
            ("/%4", "/%4"),
            ("/%zz/..", "/"),
            ("/.well-known/x", "/.well-known/x"),
            ("/...", "/..."),
            ("/a/..b/c", "/a/..b/c"),
            ("/a/b../c", "/a/b../c"),
            ("/é/./x", "/é/x"),
            ("*", "*"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input), want, "normalize_path({input:?})");
            let again = normalize_path(want);
            assert_eq!(again, want, "not idempotent on {want:?}");
        }
    }

    #[test]
    fn unchanged_paths_are_borrowed() {
        for p in [
            "/",
            "/api/users/42",
            "/a/b/",
            "/.well-known/acme",
            "/a%2Fb",
            "/x%20y",
            "/...",
            "*",
        ] {
            assert!(
                matches!(normalize_path(p), Cow::Borrowed(_)),
                "{p:?} should be borrowed"
            );
        }
        for p in ["/a//b", "/a/./b", "/%41", "/a/.."] {
            assert!(
                matches!(normalize_path(p), Cow::Owned(_)),
                "{p:?} should be rewritten"
            );
        }
    }
}
