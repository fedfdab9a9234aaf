//! The method and header conditions of a route, checked after its host and path matched.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use regex::bytes::Regex;

use crate::config::{Diagnostic, HeaderMatch};

/// A route's method and header conditions, compiled.
#[derive(Debug)]
pub(crate) struct Conditions {
    /// Empty: any method.
    methods: Box<[Method]>,
    headers: Box<[HeaderCondition]>,
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
        Conditions {
            methods: compiled_methods.into(),
            headers: compiled_headers,
        }
    }

    /// How specific the conditions are: 1 for a method list, plus 1 per header condition.
    /// Among routes with the same host and path condition, the higher weight is tried first.
    pub(crate) fn weight(&self) -> usize {
        usize::from(!self.methods.is_empty()) + self.headers.len()
    }

    /// Whether a request with this method and these headers satisfies every condition.
    pub(crate) fn matches(&self, method: &Method, headers: &HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.headers.iter().all(|h| h.matches(headers))
    }
}

impl Conditions {
    /// The first condition a request fails (for explanations), or None.
    pub(crate) fn first_failure(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<super::Failure> {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return Some(super::Failure::Method {
                allowed: self.methods.iter().map(|m| m.to_string()).collect(),
            });
        }
        let (index, h) = self
            .headers
            .iter()
            .enumerate()
            .find(|(_, h)| !h.matches(headers))?;
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
