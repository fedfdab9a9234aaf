//! `multipart/form-data` request bodies (RFC 7578 on RFC 2046): find a field by name,
//! and remove the parts of one name while keeping every other byte as it was sent.
//!
//! The parser works on a body already buffered (the auth plugins read at most 64 KiB),
//! borrows from it, and allocates only one small record per part, so its memory is
//! bounded by the body's size; the delimiter is searched for linearly. It is strict
//! where leniency could make the gateway and the upstream disagree on what the body
//! holds: a body without its closing delimiter, or with a part whose headers do not
//! end, is not multipart at all here ([`MultipartError`]), and is then neither searched
//! nor rewritten. Line ends may be CRLF, as the RFC says, or a bare LF, as some
//! clients send.

use std::borrow::Cow;
use std::ops::Range;

/// Why a body could not be read as `multipart/form-data`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The `Content-Type` has no usable `boundary` parameter (missing, empty, or longer
    /// than RFC 2046's 70 characters).
    #[error("no valid boundary in the content type")]
    NoBoundary,
    /// The body never contains the opening delimiter.
    #[error("the body has no opening delimiter")]
    NoOpening,
    /// A part's headers are not followed by an empty line.
    #[error("a part's headers do not end")]
    UnterminatedHeaders,
    /// The body ends without the closing delimiter (`--boundary--`).
    #[error("the body has no closing delimiter")]
    NoClosing,
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The `name` parameter of its `Content-Disposition: form-data`, if any.
    pub name: Option<Cow<'a, str>>,
    /// The `filename` parameter, for a file upload.
    pub filename: Option<Cow<'a, str>>,
    /// The content, exactly as sent (no transfer decoding: RFC 7578 deprecates it).
    pub content: &'a [u8],
    /// The bytes that make up the part, from the start of its delimiter to the start
    /// of the next one: cutting this range removes the part and nothing else.
    span: Range<usize>,
}

/// RFC 2046: a boundary is 1 to 70 characters.
const MAX_BOUNDARY: usize = 70;

/// The `boundary` parameter of a `multipart/form-data` content type, unquoted.
pub fn boundary(content_type: &str) -> Result<Cow<'_, str>, MultipartError> {
    let value = parameters(content_type)
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .ok_or(MultipartError::NoBoundary)?;
    if value.is_empty() || value.len() > MAX_BOUNDARY {
        return Err(MultipartError::NoBoundary);
    }
    Ok(value)
}

/// The `name=value` parameters after the first `;` of a header value such as
/// `form-data; name="a"; filename=b.txt`, values unquoted. Stops at the first
/// parameter it cannot read (no `=`, or an unterminated quoted string).
fn parameters(header: &str) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
    let mut rest = header.find(';').map_or("", |i| &header[i + 1..]);
    std::iter::from_fn(move || {
        let (name, tail) = rest.split_once('=')?;
        let tail = tail.trim_start();
        let (value, after) = match tail.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted)?,
            None => {
                let end = tail.find(';').unwrap_or(tail.len());
                (Cow::Borrowed(tail[..end].trim_end()), &tail[end..])
            }
        };
        // Up to and past the next `;` (anything before it is ignored).
        rest = after.find(';').map_or("", |i| &after[i + 1..]);
        // A parameter without `=` before this one (`form-data; x; name=a`) is skipped.
        let name = name.rsplit(';').next().unwrap_or(name);
        Some((name.trim(), value))
    })
}

/// A quoted string whose opening quote is already consumed: its content (`\x` stands
/// for `x`) and what follows the closing quote. `None` without a closing quote.
fn quoted_string(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut escaped = false;
    let mut close = None;
    for (i, c) in s.char_indices() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => {
                close = Some(i);
                break;
            }
            _ => {}
        }
    }
    let close = close?;
    let (inner, after) = (&s[..close], &s[close + 1..]);
    if !inner.contains('\\') {
        return Some((Cow::Borrowed(inner), after));
    }
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if !escaped && c == '\\' {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    Some((Cow::Owned(out), after))
}

/// The first position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The length of the line end at `at` (CRLF: 2, LF: 1), or `None`.
fn line_end(body: &[u8], at: usize) -> Option<usize> {
    match body.get(at..)? {
        [b'\r', b'\n', ..] => Some(2),
        [b'\n', ..] => Some(1),
        _ => None,
    }
}

/// What follows a delimiter.
#[derive(Clone, Copy)]
enum After {
    /// `--`: the closing delimiter.
    Close,
    /// Transport padding and a line end; the part's headers start at this index.
    Open(usize),
}

/// Whether the bytes at `at`, just after `--boundary`, complete a delimiter line. A line
/// that merely starts with the delimiter (`--boundaryx`) is content, not a delimiter.
fn after_delimiter(body: &[u8], at: usize) -> Option<After> {
    if body.get(at..at + 2) == Some(b"--") {
        return Some(After::Close);
    }
    let mut i = at;
    while matches!(body.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    line_end(body, i).map(|n| After::Open(i + n))
}

/// The next delimiter at or after `from`, at a line start (after CRLF or LF): (where
/// the content before it ends, where its `--` starts, what follows it).
fn next_delimiter(body: &[u8], delimiter: &[u8], from: usize) -> Option<(usize, usize, After)> {
    let mut at = from;
    loop {
        let d = find(body, delimiter, at)?;
        at = d + 1;
        let before = if d >= 2 && &body[d - 2..d] == b"\r\n" {
            2
        } else if d >= 1 && body[d - 1] == b'\n' {
            1
        } else {
            continue;
        };
        if let Some(after) = after_delimiter(body, d + delimiter.len()) {
            return Some((d - before, d, after));
        }
    }
}

/// Splits `body` into its parts.
pub fn parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let mut delimiter = Vec::with_capacity(boundary.len() + 2);
    delimiter.extend_from_slice(b"--");
    delimiter.extend_from_slice(boundary.as_bytes());
    let delimiter = delimiter.as_slice();

    // The first delimiter may open the body, or follow a preamble (ignored) on its own
    // line.
    let opening = if body.starts_with(delimiter) {
        after_delimiter(body, delimiter.len()).map(|a| (0, a))
    } else {
        None
    };
    let (mut start, mut after) = match opening {
        Some(o) => o,
        None => next_delimiter(body, delimiter, 0)
            .map(|(_, d, a)| (d, a))
            .ok_or(MultipartError::NoOpening)?,
    };
    let mut out = Vec::new();
    loop {
        let mut at = match after {
            // What follows is the epilogue, ignored.
            After::Close => return Ok(out),
            After::Open(at) => at,
        };
        // Headers, up to an empty line (which may come at once: no headers).
        let headers_start = at;
        let content_start = loop {
            match line_end(body, at) {
                Some(n) => break at + n,
                None => {
                    let eol = body[at..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .ok_or(MultipartError::UnterminatedHeaders)?;
                    at += eol + 1;
                }
            }
        };
        let headers = &body[headers_start..content_start];
        let (content_end, next, next_after) =
            next_delimiter(body, delimiter, content_start).ok_or(MultipartError::NoClosing)?;
        let (name, filename) = disposition(headers);
        out.push(Part {
            name,
            filename,
            content: &body[content_start..content_end],
            span: start..next,
        });
        start = next;
        after = next_after;
    }
}

/// The `name` and `filename` of a part's `Content-Disposition: form-data` header.
fn disposition(headers: &[u8]) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some((header, value)) = line.split_once(':') else {
            continue;
        };
        if !header.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let (mut name, mut filename) = (None, None);
        for (key, v) in parameters(value) {
            if key.eq_ignore_ascii_case("name") && name.is_none() {
                name = Some(v);
            } else if key.eq_ignore_ascii_case("filename") && filename.is_none() {
                filename = Some(v);
            }
        }
        return (name, filename);
    }
    (None, None)
}

/// What a multipart body holds under a field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<'a> {
    /// No part of that name.
    Absent,
    /// Exactly one part, with this content.
    One(&'a [u8]),
    /// Several parts of that name.
    Many,
}

/// The parts named `name` in `body`.
pub fn field<'a>(body: &'a [u8], boundary: &str, name: &str) -> Result<Field<'a>, MultipartError> {
    let mut found = Field::Absent;
    for part in parts(body, boundary)? {
        if part.name.as_deref() != Some(name) {
            continue;
        }
        found = match found {
            Field::Absent => Field::One(part.content),
            _ => Field::Many,
        };
    }
    Ok(found)
}

/// `body` without the parts named `name`: every other byte (preamble, other parts,
/// epilogue) is kept. `None` if no part has that name or the body is not valid
/// multipart.
pub fn remove(body: &[u8], boundary: &str, name: &str) -> Option<Vec<u8>> {
    let parts = parts(body, boundary).ok()?;
    let cuts: Vec<&Range<usize>> = parts
        .iter()
        .filter(|p| p.name.as_deref() == Some(name))
        .map(|p| &p.span)
        .collect();
    if cuts.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for cut in cuts {
        out.extend_from_slice(&body[at..cut.start]);
        at = cut.end;
    }
    out.extend_from_slice(&body[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--XyZ\r\n\
        Content-Disposition: form-data; name=\"a\"\r\n\
        \r\n\
        one\r\n\
        --XyZ\r\n\
        content-disposition: form-data; name=\"apikey\"\r\n\
        \r\n\
        alice-key\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
        Content-Type: text/plain\r\n\
        \r\n\
        line 1\r\nline 2\r\n\
        --XyZ--\r\n";

    #[test]
    fn boundaries_plain_and_quoted() {
        let b = |ct| boundary(ct).map(|b| b.into_owned());
        assert_eq!(b("multipart/form-data; boundary=XyZ").as_deref(), Ok("XyZ"));
        assert_eq!(
            b("multipart/form-data; charset=utf-8; BOUNDARY=\"a b:c\"").as_deref(),
            Ok("a b:c")
        );
        assert_eq!(
            b("multipart/form-data;boundary=\"q\\\"x\"").as_deref(),
            Ok("q\"x")
        );
        assert_eq!(
            b("multipart/form-data; boundary=\"a;b\"; charset=x").as_deref(),
            Ok("a;b")
        );
        assert_eq!(b("multipart/form-data"), Err(MultipartError::NoBoundary));
        assert_eq!(
            b("multipart/form-data; boundary="),
            Err(MultipartError::NoBoundary)
        );
        assert_eq!(
            b("multipart/form-data; boundary=\"unterminated"),
            Err(MultipartError::NoBoundary)
        );
        let long = format!("multipart/form-data; boundary={}", "x".repeat(71));
        assert_eq!(b(&long), Err(MultipartError::NoBoundary));
    }

    #[test]
    fn a_well_formed_body() {
        let p = parts(BODY.as_bytes(), "XyZ").expect("valid");
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name.as_deref(), Some("a"));
        assert_eq!(p[0].content, b"one");
        assert_eq!(p[1].name.as_deref(), Some("apikey"));
        assert_eq!(p[1].content, b"alice-key");
        assert_eq!(p[1].filename, None);
        // A file field: its name, its filename, its content with its inner line ends.
        assert_eq!(p[2].name.as_deref(), Some("file"));
        assert_eq!(p[2].filename.as_deref(), Some("a.txt"));
        assert_eq!(p[2].content, b"line 1\r\nline 2");
        assert_eq!(
            field(BODY.as_bytes(), "XyZ", "apikey"),
            Ok(Field::One(&b"alice-key"[..]))
        );
        assert_eq!(field(BODY.as_bytes(), "XyZ", "b"), Ok(Field::Absent));
    }

    #[test]
    fn removing_a_part_keeps_every_other_byte() {
        let out = remove(BODY.as_bytes(), "XyZ", "apikey").expect("present");
        let expected = BODY.replace(
            "--XyZ\r\ncontent-disposition: form-data; name=\"apikey\"\r\n\r\nalice-key\r\n",
            "",
        );
        assert_eq!(String::from_utf8_lossy(&out), expected);
        assert_eq!(parts(&out, "XyZ").map(|p| p.len()), Ok(2));
        assert_eq!(remove(BODY.as_bytes(), "XyZ", "nope"), None);
        // The last part, and the only part.
        let out = remove(BODY.as_bytes(), "XyZ", "file").expect("present");
        assert!(out.ends_with(b"alice-key\r\n--XyZ--\r\n"));
        let only = "--b\r\nContent-Disposition: form-data; name=k\r\n\r\nv\r\n--b--";
        assert_eq!(
            remove(only.as_bytes(), "b", "k").as_deref(),
            Some(&b"--b--"[..])
        );
    }

    #[test]
    fn the_closing_delimiter_is_required() {
        let truncated = &BODY[..BODY.len() - "--XyZ--\r\n".len()];
        assert_eq!(
            parts(truncated.as_bytes(), "XyZ"),
            Err(MultipartError::NoClosing)
        );
        assert!(field(truncated.as_bytes(), "XyZ", "apikey").is_err());
        assert_eq!(remove(truncated.as_bytes(), "XyZ", "apikey"), None);
        assert_eq!(
            parts(b"--XyZ\r\nContent-Disposition: form-data; name=a", "XyZ"),
            Err(MultipartError::UnterminatedHeaders)
        );
        assert_eq!(parts(b"--XyZ", "XyZ"), Err(MultipartError::NoOpening));
        assert_eq!(
            parts(b"no delimiter", "XyZ"),
            Err(MultipartError::NoOpening)
        );
        // A first line that only starts like the delimiter is preamble.
        assert_eq!(parts(b"--XyZjunk\r\n\r\nx\r\n--XyZ--", "XyZ"), Ok(vec![]));
    }

    #[test]
    fn preamble_epilogue_lf_and_lookalikes() {
        // A large preamble (and one mentioning the boundary mid-line), a delimiter-like
        // line inside content that is not the delimiter, bare LF line ends, an epilogue.
        let preamble = "p".repeat(60 * 1024);
        let body = format!(
            "{preamble} --XyZ\nmore\n--XyZ\nContent-Disposition: form-data; name=apikey\n\nk--XyZ\n--XyZx\n--XyZ--\nepilogue"
        );
        let p = parts(body.as_bytes(), "XyZ").expect("valid");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].content, b"k--XyZ\n--XyZx");
        let out = remove(body.as_bytes(), "XyZ", "apikey").expect("present");
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("{preamble} --XyZ\nmore\n--XyZ--\nepilogue")
        );
    }

    #[test]
    fn duplicate_and_unnamed_parts() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n1\r\n\
                    --b\r\n\r\nno headers\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n2\r\n--b--\r\n";
        assert_eq!(field(body.as_bytes(), "b", "k"), Ok(Field::Many));
        let p = parts(body.as_bytes(), "b").expect("valid");
        assert_eq!(p[1].name, None);
        assert_eq!(p[1].content, b"no headers");
        let out = remove(body.as_bytes(), "b", "k").expect("present");
        assert_eq!(out, b"--b\r\n\r\nno headers\r\n--b--\r\n".to_vec());
    }

    #[test]
    fn escaped_names() {
        let body = "--b\r\nContent-Disposition: form-data; filename=\"x;y.txt\"; name=\"a\\\"b\"\r\n\r\nv\r\n--b--";
        let p = parts(body.as_bytes(), "b").expect("valid");
        assert_eq!(p[0].name.as_deref(), Some("a\"b"));
        assert_eq!(p[0].filename.as_deref(), Some("x;y.txt"));
        let body = "--b\r\nContent-Disposition: form-data; odd; NAME=k\r\n\r\nv\r\n--b--";
        let p = parts(body.as_bytes(), "b").expect("valid");
        assert_eq!(p[0].name.as_deref(), Some("k"));
    }
}
