//! The routes of one host tier (one exact host, one wildcard suffix, or any host),
//! indexed by path condition.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::key_hash::KeyMap;

use regex::{Regex, RegexSet};

use super::path::{prefix_keys, PathCondition};
use super::{RouteMatch, Specificity};

/// With this many distinct regexes or more, one `RegexSet` pass rules out a path that
/// none of them matches before they are tried one by one.
const REGEX_SET_THRESHOLD: usize = 8;

/// Candidates for one host tier. Every list of route indices is ordered by precedence:
/// more specific conditions ([`Specificity`]) first, then file order.
#[derive(Debug, Default)]
pub(crate) struct PathTable {
    exact: KeyMap<Box<str>, Vec<usize>>,
    /// Keyed by prefix without trailing slash; the root prefix is "".
    prefix: KeyMap<Box<str>, Vec<usize>>,
    /// The longest prefix key, so longer parts of a request path are not looked up.
    longest_prefix: usize,
    /// Distinct regexes in file order (of their first use).
    regexes: Vec<RegexGroup>,
    regex_set: Option<RegexSet>,
    /// Build-time only: regex source to its index in `regexes`.
    regex_index: HashMap<String, usize>,
}

#[derive(Debug)]
struct RegexGroup {
    regex: Regex,
    routes: Vec<usize>,
}

impl PathTable {
    /// Adds `route` under `condition`. Routes must be added in file order.
    pub(crate) fn insert(&mut self, condition: &PathCondition, route: usize) {
        let list = match condition {
            PathCondition::Exact(p) => self.exact.entry(p.as_str().into()).or_default(),
            PathCondition::Prefix(p) => {
                self.longest_prefix = self.longest_prefix.max(p.len());
                self.prefix.entry(p.as_str().into()).or_default()
            }
            PathCondition::Regex { source, regex } => {
                let next = self.regexes.len();
                let i = *self.regex_index.entry(source.clone()).or_insert(next);
                if i == next {
                    self.regexes.push(RegexGroup {
                        regex: regex.clone(),
                        routes: Vec::new(),
                    });
                }
                &mut self.regexes[i].routes
            }
        };
        // The same route twice under one condition (a repeated host or path) is one candidate.
        if list.last() != Some(&route) {
            list.push(route);
        }
    }

    /// Orders every candidate list by precedence, given each route's weight, and builds
    /// the regex prefilter.
    pub(crate) fn finish(&mut self, weights: &[Specificity]) {
        let order = |list: &mut Vec<usize>| {
            list.sort_by_key(|&r| (Reverse(weights.get(r).copied().unwrap_or_default()), r));
            list.shrink_to_fit();
        };
        self.exact.values_mut().for_each(order);
        self.prefix.values_mut().for_each(order);
        self.regexes.iter_mut().for_each(|g| order(&mut g.routes));
        self.regex_index = HashMap::new();
        if self.regexes.len() >= REGEX_SET_THRESHOLD {
            // A set too large for the regex size limits only loses the prefilter.
            self.regex_set = RegexSet::new(self.regexes.iter().map(|g| g.regex.as_str())).ok();
        }
    }

    /// The best route of this tier for `path` whose other conditions `accept` approves:
    /// exact path, then prefixes from the longest, then regexes in file order.
    pub(crate) fn find(&self, path: &str, accept: impl Fn(usize) -> bool) -> Option<RouteMatch> {
        let first = |list: &[usize]| list.iter().copied().find(|&r| accept(r));
        if let Some(route) = self.exact.get(path).and_then(|l| first(l)) {
            return Some(RouteMatch {
                route,
                matched_len: path.len(),
            });
        }
        if !self.prefix.is_empty() {
            for key in prefix_keys(path).filter(|k| k.len() <= self.longest_prefix) {
                if let Some(route) = self.prefix.get(key).and_then(|l| first(l)) {
                    return Some(RouteMatch {
                        route,
                        matched_len: key.len(),
                    });
                }
            }
        }
        if self.regexes.is_empty() || self.regex_set.as_ref().is_some_and(|s| !s.is_match(path)) {
            return None;
        }
        self.regexes.iter().find_map(|g| {
            let m = g.regex.find(path)?;
            Some(RouteMatch {
                route: first(&g.routes)?,
                matched_len: m.end(),
            })
        })
    }
}
