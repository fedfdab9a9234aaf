//! `application/x-www-form-urlencoded` text (query strings and form bodies): find a
//! parameter as Kong's `get_query`/`get_body` would, and remove one while keeping every
//! other byte as it was.

use std::borrow::Cow;

/// What a parameter name holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param<'a> {
    /// Not present.
    Absent,
    /// Present once, without `=` (`?apikey`): Kong reads the boolean `true`, which is
    /// no key but still ends the search for this name.
    Flag,
    /// Exactly one value, decoded.
    One(Cow<'a, [u8]>),
    /// Several values (Kong reads a table: "duplicate").
    Many,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s`, with `+` as a space. Borrowed when there is nothing to decode.
pub fn decode(s: &[u8]) -> Cow<'_, [u8]> {
    if !s.iter().any(|&b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// The `&`-separated pairs of `text` as (raw key, raw value if `=` present, span).
fn pairs(text: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>, (usize, usize))> {
    let mut start = 0;
    text.split(|&b| b == b'&').map(move |part| {
        let span = (start, start + part.len());
        start += part.len() + 1;
        match part.iter().position(|&b| b == b'=') {
            Some(eq) => (&part[..eq], Some(&part[eq + 1..]), span),
            None => (part, None, span),
        }
    })
}

/// Looks `name` up in `text`.
pub fn find<'a>(text: &'a [u8], name: &str) -> Param<'a> {
    let mut found: Option<Cow<'a, [u8]>> = None;
    let mut count = 0;
    for (key, value, _) in pairs(text) {
        if key.is_empty() || decode(key).as_ref() != name.as_bytes() {
            continue;
        }
        count += 1;
        // `?name` alone is Kong's boolean `true`: present, but not a string.
        found = value.map(decode);
    }
    match (count, found) {
        (0, _) => Param::Absent,
        (1, Some(v)) => Param::One(v),
        (1, None) => Param::Flag,
        _ => Param::Many,
    }
}

/// Every value given for `name` (pairs without `=` are skipped), decoded.
pub fn values<'a>(text: &'a [u8], name: &'a str) -> impl Iterator<Item = Cow<'a, [u8]>> + 'a {
    pairs(text).filter_map(move |(key, value, _)| {
        let value = value?;
        (!key.is_empty() && decode(key).as_ref() == name.as_bytes()).then(|| decode(value))
    })
}

/// `text` without any `name` parameter: the other parameters keep their bytes and
/// their order. `None` when `name` does not occur.
pub fn remove(text: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut kept: Vec<(usize, usize)> = Vec::new();
    let mut removed = false;
    for (key, _, span) in pairs(text) {
        if !key.is_empty() && decode(key).as_ref() == name.as_bytes() {
            removed = true;
        } else {
            kept.push(span);
        }
    }
    if !removed {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    for (i, (a, b)) in kept.into_iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(&text[a..b]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_decoded_values_and_duplicates() {
        assert_eq!(
            find(b"a=1&apikey=k%20y+z", "apikey"),
            Param::One(Cow::Owned(b"k y z".to_vec()))
        );
        assert_eq!(
            find(b"api%6Bey=x", "apikey"),
            Param::One(Cow::Owned(b"x".to_vec()))
        );
        assert_eq!(find(b"apikey=a&apikey=b", "apikey"), Param::Many);
        assert_eq!(find(b"apikey=", "apikey"), Param::One(Cow::Borrowed(b"")));
        assert_eq!(find(b"apikey", "apikey"), Param::Flag);
        assert_eq!(find(b"apikey&apikey=x", "apikey"), Param::Many);
        assert_eq!(find(b"other=1", "apikey"), Param::Absent);
        assert_eq!(find(b"", "apikey"), Param::Absent);
    }

    #[test]
    fn removal_keeps_the_rest_byte_for_byte() {
        assert_eq!(
            remove(b"a=%2F1&apikey=k&b=x+y&&c", "apikey").unwrap(),
            b"a=%2F1&b=x+y&&c".to_vec()
        );
        assert_eq!(remove(b"apikey=k", "apikey").unwrap(), b"".to_vec());
        assert_eq!(
            remove(b"apikey=k&apikey=j&z=1", "apikey").unwrap(),
            b"z=1".to_vec()
        );
        assert_eq!(remove(b"a=1", "apikey"), None);
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode(b"a%41+b%zz%4").as_ref(), b"aA b%zz%4");
    }
}
