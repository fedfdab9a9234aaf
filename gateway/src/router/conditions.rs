//! The method, header and query conditions of a route, checked after its host and path
//! matched.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use regex::bytes::Regex;

use crate::config::{Diagnostic, HeaderMatch, QueryMatch};

use super::query::{self, LazyQuery, QueryCondition};

/// A route's method, header and query conditions, compiled.
#[derive(Debug)]
pub(crate) struct Conditions {
    /// Empty: any method.
    methods: Box<[Method]>,
    headers: Box<[HeaderCondition]>,
    /// Empty for most routes: then the request's query is never read.
    query: Box<[QueryCondition]>,
}

/// How specific a route's conditions are beyond host and path. Among routes with the
/// same host and path condition the more specific is tried first, compared as the
/// Gateway API ranks HTTPRoute matches: a method condition first, then more header
/// conditions, then more query conditions (the derived order compares the fields in
/// this order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    /// The route lists methods.
    pub method: bool,
    /// How many header conditions it has.
    pub headers: usize,
    /// How many query parameter conditions it has.
    pub query_params: usize,
}

impl Specificity {
    /// How many conditions these are: 1 for a method list, plus 1 per header and query
    /// condition.
    pub fn conditions(&self) -> usize {
        usize::from(self.method) + self.headers + self.query_params
    }
}

impl std::fmt::Display for Specificity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            "{}, {} header condition{}, {} query condition{}",
            if self.method {
                "a method list"
            } else {
                "no method list"
            },
            self.headers,
            plural(self.headers),
            self.query_params,
            plural(self.query_params),
        )
    }
}

#[derive(Debug)]
struct HeaderCondition {
    name: HeaderName,
    test: HeaderTest,
}

#[derive(Debug)]
enum HeaderTest {
    /// Some value of the header equals this (case-sensitive).
    Exact(HeaderValue),
    /// Some value of the header contains a match (unanchored).
    Regex(Regex),
    /// `true`: the header is present; `false`: it is absent.
    Present(bool),
}

impl Conditions {
    /// Compiles the conditions of the route at field path `base` (`routes[3]`), adding a
    /// diagnostic to `out` for each problem.
    pub(crate) fn compile(
        methods: &[String],
        headers: &[HeaderMatch],
        query_params: &[QueryMatch],
        base: &str,
        out: &mut Vec<Diagnostic>,
    ) -> Conditions {
        let mut compiled_methods: Vec<Method> = Vec::with_capacity(methods.len());
        for (i, m) in methods.iter().enumerate() {
            match parse_method(m) {
                Ok(m) if !compiled_methods.contains(&m) => compiled_methods.push(m),
                Ok(_) => {}
                Err(message) => out.push(Diagnostic::new(format!("{base}.methods[{i}]"), message)),
            }
        }
        let compiled_headers = headers
            .iter()
            .enumerate()
            .filter_map(|(i, h)| compile_header(h, &format!("{base}.headers[{i}]"), out))
            .collect();
        let compiled_query = query_params
            .iter()
            .enumerate()
            .filter_map(|(i, q)| query::compile(q, &format!("{base}.query_params[{i}]"), out))
            .collect();
        Conditions {
            methods: compiled_methods.into(),
            headers: compiled_headers,
            query: compiled_query,
        }
    }

    /// How specific the conditions are; among routes with the same host and path
    /// condition, the more specific is tried first.
    pub(crate) fn weight(&self) -> Specificity {
        Specificity {
            method: !self.methods.is_empty(),
            headers: self.headers.len(),
            query_params: self.query.len(),
        }
    }

    /// Whether a request with this method, these headers and this query satisfies every
    /// condition. The query is read only when the route has query conditions.
    pub(crate) fn matches(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: &LazyQuery<'_>,
    ) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.headers.iter().all(|h| h.matches(headers))
            && self.query.iter().all(|q| q.matches(query))
    }
}

impl Conditions {
    /// The first condition a request fails (for explanations), or None.
    pub(crate) fn first_failure(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: &LazyQuery<'_>,
    ) -> Option<super::Failure> {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return Some(super::Failure::Method {
                allowed: self.methods.iter().map(|m| m.to_string()).collect(),
            });
        }
        let failed_query = || {
            let (index, q) = self
                .query
                .iter()
                .enumerate()
                .find(|(_, q)| !q.matches(query))?;
            Some(super::Failure::Query {
                index,
                condition: q.describe(),
            })
        };
        let Some((index, h)) = self
            .headers
            .iter()
            .enumerate()
            .find(|(_, h)| !h.matches(headers))
        else {
            return failed_query();
        };
        let condition = match &h.test {
            HeaderTest::Present(true) => format!("{} is present", h.name),
            HeaderTest::Present(false) => format!("{} is absent", h.name),
            HeaderTest::Exact(v) => {
                format!("{} == {:?}", h.name, String::from_utf8_lossy(v.as_bytes()))
            }
            HeaderTest::Regex(re) => format!("{} ~ /{}/", h.name, re.as_str()),
        };
        Some(super::Failure::Header { index, condition })
    }
}

impl HeaderCondition {
    fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.name).iter();
        match &self.test {
            HeaderTest::Present(present) => headers.contains_key(&self.name) == *present,
            HeaderTest::Exact(want) => values.any(|v| v == want),
            HeaderTest::Regex(re) => values.any(|v| re.is_match(v.as_bytes())),
        }
    }
}

/// A method token, uppercased (`get` in the file means `GET`).
fn parse_method(raw: &str) -> Result<Method, String> {
    if raw.is_empty() {
        return Err("a method must not be empty".into());
    }
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !raw.bytes().all(is_tchar) {
        return Err(format!(
            "{raw:?} is not a valid HTTP method; write a token such as GET or POST"
        ));
    }
    Method::from_bytes(raw.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{raw:?} is not a valid HTTP method"))
}

fn compile_header(
    h: &HeaderMatch,
    base: &str,
    out: &mut Vec<Diagnostic>,
) -> Option<HeaderCondition> {
    let name = match HeaderName::from_bytes(h.name.as_bytes()) {
        Ok(name) => Some(name),
        Err(_) => {
            let message = format!("{:?} is not a valid header name", h.name);
            out.push(Diagnostic::new(format!("{base}.name"), message));
            None
        }
    };
    let test = match (&h.exact, &h.regex, h.present) {
        (Some(exact), None, None) => match HeaderValue::from_str(exact) {
            Ok(v) => Some(HeaderTest::Exact(v)),
            Err(_) => {
                let message = format!("{exact:?} is not a valid header value");
                out.push(Diagnostic::new(format!("{base}.exact"), message));
                None
            }
        },
        (None, Some(re), None) => match Regex::new(re) {
            Ok(re) => Some(HeaderTest::Regex(re)),
            Err(e) => {
                let message = super::path::regex_error(&e);
                out.push(Diagnostic::new(format!("{base}.regex"), message));
                None
            }
        },
        (None, None, Some(present)) => Some(HeaderTest::Present(present)),
        _ => {
            out.push(Diagnostic::new(
                base,
                "a header condition needs exactly one of exact, regex, present",
            ));
            None
        }
    };
    Some(HeaderCondition {
        name: name?,
        test: test?,
    })
}
