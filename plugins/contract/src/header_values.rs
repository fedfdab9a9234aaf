//! Header names and values that cost nothing to add on every request.
//!
//! Pingora keeps a case-preserving name map beside each HTTP/1 `HeaderMap`, so adding a
//! header with a `HeaderName` copies the name twice, while a `&'static str` name costs
//! one copy less; and a value made from static text clones for free, where one made
//! from a number allocates. So headers added per request use static names, and their
//! values come from here: small numbers from a table built once, configuration values
//! interned once.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use http::HeaderValue;

/// Numbers below this come from a static table.
const TABLE: u64 = 4096;

/// `n` as a header value: no allocation for `n` below 4096 (latencies in milliseconds,
/// rate-limit counters and resets, ports...).
pub fn number(n: u64) -> HeaderValue {
    static VALUES: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let table = VALUES.get_or_init(|| {
        (0..TABLE)
            .map(|n| HeaderValue::from_static(intern(&n.to_string())))
            .collect()
    });
    match usize::try_from(n).ok().and_then(|i| table.get(i)) {
        Some(v) => v.clone(),
        None => HeaderValue::from(n),
    }
}

/// How many distinct texts [`static_value`] interns at most. Values beyond it (a watcher
/// that churns configuration values through many reloads) are made as ordinary,
/// reference-counted header values instead: a little slower to clone, never leaked.
pub const MAX_INTERNED_VALUES: usize = 16_384;

fn interned() -> std::sync::MutexGuard<'static, HashSet<&'static str>> {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A `'static` copy of `text`, made once per distinct text. For header names an operator
/// writes into the configuration (bounded by their edits), never for request data or
/// values a program generates, which would grow without bound: those go through
/// [`static_value`], which is capped.
pub fn intern(text: &str) -> &'static str {
    let mut seen = interned();
    if let Some(s) = seen.get(text) {
        return s;
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    seen.insert(leaked);
    leaked
}

/// A header value from configuration text, free to clone while fewer than
/// [`MAX_INTERNED_VALUES`] texts are interned (an ordinary value after that); `None` when
/// the text is not a valid header value.
pub fn static_value(text: &str) -> Option<HeaderValue> {
    let owned = HeaderValue::from_str(text).ok()?;
    let mut seen = interned();
    if let Some(s) = seen.get(text) {
        return Some(HeaderValue::from_static(s));
    }
    if seen.len() >= MAX_INTERNED_VALUES {
        return Some(owned);
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    seen.insert(leaked);
    Some(HeaderValue::from_static(leaked))
}

/// `x-request-id` as `X-Request-Id`: how header names are conventionally written.
pub fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_values_stop_interning_at_the_cap() {
        let texts: Vec<String> = (0..MAX_INTERNED_VALUES + 100)
            .map(|i| format!("cap-test-{i}"))
            .collect();
        for text in &texts {
            assert_eq!(static_value(text).unwrap(), text.as_str());
        }
        let seen = interned();
        let kept = texts.iter().filter(|t| seen.contains(t.as_str())).count();
        assert!(kept <= MAX_INTERNED_VALUES, "{kept} interned");
        assert!(kept < texts.len(), "nothing was left uninterned");
    }

    #[test]
    fn numbers_are_exact_inside_and_outside_the_table() {
        assert_eq!(number(0), "0");
        assert_eq!(number(7), "7");
        assert_eq!(number(4095), "4095");
        assert_eq!(number(4096), "4096");
        assert_eq!(number(123_456_789), "123456789");
    }

    #[test]
    fn interning_returns_the_same_text_once() {
        let a = intern("x-trace-id");
        let b = intern(&String::from("x-trace-id"));
        assert_eq!(a, "x-trace-id");
        assert!(std::ptr::eq(a, b));
        assert_eq!(static_value("8080").unwrap(), "8080");
        assert!(static_value("bad\nvalue").is_none());
        assert_eq!(title_case("x-request-id"), "X-Request-Id");
        assert_eq!(title_case("X-CORRELATION-ID"), "X-Correlation-Id");
    }
}
