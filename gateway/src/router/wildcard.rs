//! The route tables of one kind of wildcard host (leftmost `*.example.com` or rightmost
//! `example.*`), keyed by the fixed part, and the order they are tried in for a request.

use super::key_hash::KeyMap;
use super::table::PathTable;
use super::RouteMatch;

/// Routes by the fixed part of their wildcard hosts, in two maps: those whose `*` is
/// exactly one label (`wildcard_labels: one`) and those whose `*` is any number.
#[derive(Debug)]
pub(crate) struct WildcardTables {
    one: KeyMap<Box<str>, PathTable>,
    any: KeyMap<Box<str>, PathTable>,
    /// The fewest and most labels of a key in `any`: keys of a request outside this
    /// range are not looked up.
    any_labels: (usize, usize),
}

impl Default for WildcardTables {
    fn default() -> Self {
        WildcardTables {
            one: KeyMap::default(),
            any: KeyMap::default(),
            any_labels: (usize::MAX, 0),
        }
    }
}

impl WildcardTables {
    /// The table for `key` (a suffix or prefix, lowercase), made if new.
    pub(crate) fn entry(&mut self, key: &str, one_label: bool) -> &mut PathTable {
        if one_label {
            return self.one.entry(key.into()).or_default();
        }
        let labels = key.split('.').count();
        let (least, most) = &mut self.any_labels;
        (*least, *most) = ((*least).min(labels), (*most).max(labels));
        self.any.entry(key.into()).or_default()
    }

    /// Every table, to finish once built.
    pub(crate) fn tables_mut(&mut self) -> impl Iterator<Item = &mut PathTable> {
        self.one.values_mut().chain(self.any.values_mut())
    }

    /// Whether no route has a wildcard of this kind.
    pub(crate) fn is_empty(&self) -> bool {
        self.one.is_empty() && self.any.is_empty()
    }

    /// The first route that accepts the request, trying `keys` (the request host's
    /// suffixes or prefixes with their label counts, the narrowest first): at the
    /// first key, one label short of the host, the one-label wildcards before those of
    /// any depth; then the others of any depth.
    pub(crate) fn find<'h>(
        &self,
        keys: impl Iterator<Item = (&'h str, usize)>,
        path: &str,
        accept: &impl Fn(usize) -> bool,
    ) -> Option<RouteMatch> {
        if self.is_empty() {
            return None;
        }
        let (least, most) = self.any_labels;
        for (k, (key, labels)) in keys.enumerate() {
            let one = if k == 0 { self.one.get(key) } else { None };
            let any = if (least..=most).contains(&labels) {
                self.any.get(key)
            } else {
                None
            };
            for table in [one, any].into_iter().flatten() {
                if let Some(m) = table.find(path, accept) {
                    return Some(m);
                }
            }
            // The keys only get shorter: none after this one has enough labels.
            if labels <= least {
                break;
            }
        }
        None
    }
}
