//! The compiled route table. (Stub with the agreed API; the real one is being written.)
#![allow(missing_docs, unused_variables)]

use crate::config::{Diagnostic, RouteConfig};

pub struct Router {
    n: usize,
}
impl Router {
    pub fn build(routes: &[RouteConfig]) -> Result<Router, Vec<Diagnostic>> {
        Ok(Router { n: routes.len() })
    }
    pub fn find(&self, req: &RouteRequest<'_>) -> Option<RouteMatch> {
        if self.n > 0 {
            Some(RouteMatch { route: 0, matched_len: 0 })
        } else {
            None
        }
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}
pub struct RouteRequest<'a> {
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: usize,
    pub matched_len: usize,
}
pub fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    std::borrow::Cow::Borrowed(path)
}
