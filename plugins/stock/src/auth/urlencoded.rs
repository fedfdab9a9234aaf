//! `application/x-www-form-urlencoded` text (query strings and form bodies): find a
//! parameter as Kong's `get_query`/`get_body` would; remove one while keeping every
//! other byte as it was ([`remove`], for form bodies); or remove one from a query string
//! as Kong's `kong.service.request.clear_query_arg` does ([`clear_query_arg`]).

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

/// Kong's `kong.service.request.clear_query_arg(name)` (Kong 3.10 and later, used by
/// `key-auth`'s `hide_credentials`): the query string is parsed and serialized again
/// as WHATWG `URLSearchParams` does (Kong uses the ada library), without `name`, then
/// Kong writes spaces as `%20` instead of `+`. So the order of the other parameters is
/// kept, but their encoding is normalized:
///
/// - `&&` and other empty pairs are dropped; a pair without `=` gets one (`c` → `c=`);
/// - names and values are percent-decoded (`+` is a space; an invalid `%` sequence is
///   taken literally), read as UTF-8 (invalid bytes become U+FFFD), and encoded again
///   with every byte except ASCII letters, digits and `*-._` escaped as `%XX` (upper
///   case hex), spaces as `%20`: `c=valu%651` becomes `c=value1`, `b=x+y` becomes
///   `b=x%20y`, `z=%zz` becomes `z=%25zz`.
///
/// Kong 3.0 to 3.8 rebuilt the query from a table instead (`set_query`), sorting the
/// parameters; 3.9 kept `+`. This follows the current behaviour.
pub fn clear_query_arg(text: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for part in text.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (key, value) = match part.iter().position(|&b| b == b'=') {
            Some(eq) => (&part[..eq], &part[eq + 1..]),
            None => (part, &b""[..]),
        };
        let key = String::from_utf8_lossy(&decode(key)).into_owned();
        if key == name {
            continue;
        }
        let value = decode(value);
        if !out.is_empty() {
            out.push(b'&');
        }
        encode_component(key.as_bytes(), &mut out);
        out.push(b'=');
        encode_component(String::from_utf8_lossy(&value).as_bytes(), &mut out);
    }
    out
}

/// The `application/x-www-form-urlencoded` byte serializer, with `%20` for spaces (see
/// [`clear_query_arg`]).
fn encode_component(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
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
    fn clearing_a_query_arg_normalizes_the_rest_as_kong() {
        let clear = |q: &str| String::from_utf8(clear_query_arg(q.as_bytes(), "apikey")).unwrap();
        assert_eq!(clear("a=1&apikey=k&c=valu%651"), "a=1&c=value1");
        // Order kept, spaces as %20, reserved bytes escaped, pairs without '=' get one.
        assert_eq!(
            clear("z=1&a=%2F1&apikey=k&b=x+y%20w&c&&d=~!'()"),
            "z=1&a=%2F1&b=x%20y%20w&c=&d=%7E%21%27%28%29"
        );
        // Every occurrence, under any spelling of the name, goes.
        assert_eq!(clear("apikey=a&api%6Bey=b&apikey&x=%2b"), "x=%2B");
        // Invalid escapes are literal; invalid UTF-8 becomes U+FFFD; empty names stay.
        assert_eq!(
            clear("z=%zz&=e&f=&u=%C3%A9%FF"),
            "z=%25zz&=e&f=&u=%C3%A9%EF%BF%BD"
        );
        assert_eq!(clear("apikey=k"), "");
        assert_eq!(clear(""), "");
        assert_eq!(clear("a-b.c_d*=A*"), "a-b.c_d*=A*");
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode(b"a%41+b%zz%4").as_ref(), b"aA b%zz%4");
    }
}
