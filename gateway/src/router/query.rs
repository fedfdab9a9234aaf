//! Query parameter conditions of a route, and the request's query as they read it.
//!
//! The query is parsed at most once per request, and only when a candidate route has a
//! query condition ([`LazyQuery`]); a table without query conditions never reads it.
//!
//! Semantics (Gateway API HTTPRoute `queryParams`, Istio's `queryParams`):
//! - the query is split on `&`; a part without `=` is a parameter with an empty value;
//!   empty parts are skipped;
//! - names and values are percent-decoded (`%20` is a space; `+` stays a plus sign: it
//!   means a space only in HTML form bodies); an invalid escape is kept as written;
//! - names are case-sensitive; when a name appears more than once, its first value is
//!   the one compared;
//! - only the first [`MAX_QUERY_PARAMS`] parameters are looked at: a parameter after them
//!   does not exist for routing, and each such request is counted
//!   ([`truncated_queries`], `pingway_route_query_truncated_total`).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};

use regex::bytes::Regex;

use crate::config::{Diagnostic, QueryMatch};

/// How many parameters of a request's query the router looks at, at most. Bounds the
/// work and memory a request with thousands of parameters can cost the router.
pub const MAX_QUERY_PARAMS: usize = 100;

/// Requests whose query had more than [`MAX_QUERY_PARAMS`] parameters when a route's
/// query condition read it.
static TRUNCATED: AtomicU64 = AtomicU64::new(0);

/// How many requests had parameters past [`MAX_QUERY_PARAMS`] ignored by the router,
/// since the process started.
pub fn truncated_queries() -> u64 {
    TRUNCATED.load(Ordering::Relaxed)
}

/// One compiled query condition.
#[derive(Debug)]
pub(crate) struct QueryCondition {
    name: Box<[u8]>,
    test: QueryTest,
}

#[derive(Debug)]
enum QueryTest {
    /// The first value equals this, decoded.
    Exact(Box<[u8]>),
    /// The first value, decoded, contains a match (unanchored).
    Regex(Regex),
    /// `true`: the parameter is present; `false`: it is absent.
    Present(bool),
}

/// A request's query, parsed on first use.
pub(crate) struct LazyQuery<'a> {
    raw: Option<&'a str>,
    parsed: OnceCell<Params<'a>>,
}

/// Decoded (name, value) pairs in request order, at most [`MAX_QUERY_PARAMS`].
type Params<'a> = Vec<(Cow<'a, [u8]>, Cow<'a, [u8]>)>;

impl<'a> LazyQuery<'a> {
    /// A query string (without the `?`) not parsed yet. Costs nothing until read.
    pub(crate) fn new(raw: Option<&'a str>) -> LazyQuery<'a> {
        LazyQuery {
            raw,
            parsed: OnceCell::new(),
        }
    }

    /// The first value of parameter `name` (decoded), or None.
    fn first(&self, name: &[u8]) -> Option<&[u8]> {
        let params = self.parsed.get_or_init(|| parse(self.raw.unwrap_or("")));
        params
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// Splits and decodes the first [`MAX_QUERY_PARAMS`] parameters of `raw`.
fn parse(raw: &str) -> Params<'_> {
    let mut parts = raw.split('&').filter(|p| !p.is_empty());
    // One allocation: a parameter takes at least one byte and a separator.
    let mut params = Vec::with_capacity(MAX_QUERY_PARAMS.min(raw.len() / 2 + 1));
    for part in parts.by_ref().take(MAX_QUERY_PARAMS) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        params.push((percent_decode(name), percent_decode(value)));
    }
    if parts.next().is_some() {
        TRUNCATED.fetch_add(1, Ordering::Relaxed);
    }
    params
}

/// `%XX` escapes decoded; anything else, an invalid escape included, kept as it is.
/// Borrows unless there is an escape.
fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    let bytes = s.as_bytes();
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

impl QueryCondition {
    /// Whether the request's query satisfies this condition.
    pub(crate) fn matches(&self, query: &LazyQuery<'_>) -> bool {
        let value = query.first(&self.name);
        match (&self.test, value) {
            (QueryTest::Present(present), v) => v.is_some() == *present,
            (QueryTest::Exact(want), Some(v)) => v == want.as_ref(),
            (QueryTest::Regex(re), Some(v)) => re.is_match(v),
            (_, None) => false,
        }
    }

    /// What the condition asks, for explanations: `v == "2"`, `v ~ /^[23]$/`.
    pub(crate) fn describe(&self) -> String {
        let name = String::from_utf8_lossy(&self.name);
        match &self.test {
            QueryTest::Present(true) => format!("{name} is present"),
            QueryTest::Present(false) => format!("{name} is absent"),
            QueryTest::Exact(v) => format!("{name} == {:?}", String::from_utf8_lossy(v)),
            QueryTest::Regex(re) => format!("{name} ~ /{}/", re.as_str()),
        }
    }
}

/// Compiles the query condition at field path `base` (`routes[3].query_params[0]`),
/// adding a diagnostic to `out` for each problem.
pub(crate) fn compile(
    q: &QueryMatch,
    base: &str,
    out: &mut Vec<Diagnostic>,
) -> Option<QueryCondition> {
    let name = if q.name.is_empty() {
        let message = "a query parameter name must not be empty";
        out.push(Diagnostic::new(format!("{base}.name"), message));
        None
    } else {
        Some(q.name.as_bytes().into())
    };
    let test = match (&q.exact, &q.regex, q.present) {
        (Some(exact), None, None) => Some(QueryTest::Exact(exact.as_bytes().into())),
        (None, Some(re), None) => match Regex::new(re) {
            Ok(re) => Some(QueryTest::Regex(re)),
            Err(e) => {
                let message = super::path::regex_error(&e);
                out.push(Diagnostic::new(format!("{base}.regex"), message));
                None
            }
        },
        (None, None, Some(present)) => Some(QueryTest::Present(present)),
        _ => {
            out.push(Diagnostic::new(
                base,
                "a query parameter condition needs exactly one of exact, regex, present",
            ));
            None
        }
    };
    Some(QueryCondition {
        name: name?,
        test: test?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first<'q>(q: &'q LazyQuery<'_>, name: &str) -> Option<&'q [u8]> {
        q.first(name.as_bytes())
    }

    #[test]
    fn parses_decodes_and_takes_the_first_value() {
        let q = LazyQuery::new(Some("a=b%20c&&flag&a=second&x%3Dy=1&plus=a+b&bad=%zz%4"));
        assert_eq!(first(&q, "a"), Some(&b"b c"[..]));
        assert_eq!(first(&q, "flag"), Some(&b""[..]));
        assert_eq!(first(&q, "x=y"), Some(&b"1"[..]));
        assert_eq!(first(&q, "plus"), Some(&b"a+b"[..]));
        assert_eq!(first(&q, "bad"), Some(&b"%zz%4"[..]));
        assert_eq!(first(&q, "A"), None, "names are case-sensitive");
        assert_eq!(first(&q, "missing"), None);
    }

    #[test]
    fn no_query_has_no_parameters() {
        assert_eq!(first(&LazyQuery::new(None), "a"), None);
        assert_eq!(first(&LazyQuery::new(Some("")), "a"), None);
    }

    #[test]
    fn looks_at_most_at_the_bound_and_counts_the_rest() {
        let mut raw: Vec<String> = (0..5000).map(|i| format!("p{i}=v{i}")).collect();
        raw.push("last=1".into());
        let raw = raw.join("&");
        let before = truncated_queries();
        let q = LazyQuery::new(Some(&raw));
        let inside = format!("p{}", MAX_QUERY_PARAMS - 1);
        assert_eq!(
            first(&q, &inside),
            Some(format!("v{}", MAX_QUERY_PARAMS - 1).as_bytes())
        );
        assert_eq!(first(&q, &format!("p{MAX_QUERY_PARAMS}")), None);
        assert_eq!(
            first(&q, "last"),
            None,
            "past the bound a parameter does not exist"
        );
        assert_eq!(q.parsed.get().map(Vec::len), Some(MAX_QUERY_PARAMS));
        // Other tests may count too; this one added at least its own request, once.
        assert!(truncated_queries() > before);
    }

    #[test]
    fn is_not_parsed_until_read() {
        let q = LazyQuery::new(Some("a=1"));
        assert!(q.parsed.get().is_none());
        let _ = first(&q, "a");
        assert!(q.parsed.get().is_some());
    }
}
