//! Runs the converted configuration through the gateway's own loading and compiling
//! (what `pingway validate` does), and turns each problem into a report item at its
//! place in the Kong file, dropping or trimming what Pingway refuses, until the result
//! is accepted.

use pingway_plugins::config::{parse_path, PathSegment};

use crate::config::{self, ConfigNode, Diagnostic};
use crate::plugins::Registry;
use crate::runtime::Runtime;
use pingway_plugins::config::NodeValue;

use super::kong::{fail_closed, ACCESS_PLUGINS};
use super::output::{Listeners, Output, Plugin};
use super::report::Report;

/// Rounds of check-and-fix before giving up: each round removes at least one thing, and
/// problems of one kind are all fixed in the same round, so a handful is plenty.
const MAX_ROUNDS: usize = 16;

/// The problems the gateway finds in `text`, or none.
pub(crate) fn problems(text: &str, registry: &Registry) -> Vec<Diagnostic> {
    match config::load_str(text) {
        Ok(loaded) => match Runtime::build(&loaded, registry, None) {
            Ok(_) => Vec::new(),
            Err(d) => d,
        },
        Err(d) => d,
    }
}

/// Checks and fixes `out` until the gateway accepts it. Returns the problems left when
/// it cannot be fixed (an internal error of the converter).
pub(crate) fn settle(
    out: &mut Output,
    listeners: &Listeners,
    registry: &Registry,
    doc: &ConfigNode,
    report: &mut Report,
) -> Result<(), Vec<Diagnostic>> {
    for _ in 0..MAX_ROUNDS {
        for list in out.plugin_lists() {
            one_stand_in(list, doc, report);
        }
        out.prune();
        let text = super::emit::to_yaml(&out.render(listeners, true));
        let diags = problems(&text, registry);
        if diags.is_empty() {
            return Ok(());
        }
        let mut fixed = false;
        for d in &diags {
            fixed |= fix(out, d, doc, report);
        }
        if !fixed {
            return Err(diags);
        }
    }
    out.prune();
    let text = super::emit::to_yaml(&out.render(listeners, true));
    match problems(&text, registry) {
        d if d.is_empty() => Ok(()),
        d => Err(d),
    }
}

/// Keeps one 503 stand-in per plugin list (a scope runs one plugin of a name): the
/// first; a `request-termination` of the Kong file in the same scope is replaced by it,
/// since a stand-in must close the scope whatever that one's trigger.
fn one_stand_in(list: &mut [Plugin], doc: &ConfigNode, report: &mut Report) {
    let Some(first) = list.iter().position(|p| p.stand_in && !p.dropped) else {
        return;
    };
    for (i, p) in list.iter_mut().enumerate() {
        if i == first || p.dropped || p.name != "request-termination" {
            continue;
        }
        p.dropped = true;
        if !p.stand_in {
            report.unsupported(
                doc,
                &p.origin,
                "replaced by the 503 request-termination that closes this scope (an access plugin could not be converted)",
            );
        }
    }
}

/// Applies the fix for one problem; false when there is none.
fn fix(out: &mut Output, d: &Diagnostic, doc: &ConfigNode, report: &mut Report) -> bool {
    let segs = parse_path(&d.path);
    use PathSegment::{Index, Key};
    match segs.as_slice() {
        [Key("routes"), Index(i), Key("plugins"), Index(j), rest @ ..] => {
            let Some(route) = out.routes.get_mut(*i) else {
                return false;
            };
            fix_plugin(&mut route.plugins, *j, rest, d, doc, report)
        }
        [Key("plugins"), Index(j), rest @ ..] => {
            fix_plugin(&mut out.plugins, *j, rest, d, doc, report)
        }
        [Key("consumers"), Index(i), Key("plugins"), Index(j), rest @ ..] => {
            let Some(c) = out.consumers.get_mut(*i) else {
                return false;
            };
            fix_plugin(&mut c.plugins, *j, rest, d, doc, report)
        }
        [Key("consumers"), Index(i), Key(field), Index(k), ..] => {
            let Some(c) = out.consumers.get_mut(*i) else {
                return false;
            };
            let Some(cred) = c
                .credentials
                .iter_mut()
                .filter(|c| c.field == *field)
                .nth(*k)
            else {
                return false;
            };
            if cred.dropped {
                return true;
            }
            cred.dropped = true;
            report.unsupported(
                doc,
                &cred.origin,
                format!("{}; credential left out", message(d)),
            );
            true
        }
        [Key("consumers"), Index(i), ..] => {
            let Some(c) = out.consumers.get_mut(*i) else {
                return false;
            };
            if !c.dropped {
                c.dropped = true;
                report.unsupported(doc, &c.origin, format!("{}; consumer left out", message(d)));
            }
            true
        }
        [Key("routes"), Index(i), ..] => {
            let Some(r) = out.routes.get_mut(*i) else {
                return false;
            };
            if !r.dropped {
                r.dropped = true;
                report.unsupported(
                    doc,
                    &r.origin,
                    format!(
                        "Pingway refuses the converted route ({}: {}); route left out",
                        strip_index(&d.path),
                        d.message
                    ),
                );
            }
            true
        }
        [Key("upstreams"), Index(i), ..] => {
            let Some(u) = out.upstreams.get_mut(*i) else {
                return false;
            };
            if !u.dropped {
                u.dropped = true;
                let name = u.name.clone();
                report.unsupported(doc, &u.origin, format!("Pingway refuses the converted upstream ({}: {}); it and its routes are left out", strip_index(&d.path), d.message));
                for r in out.routes.iter_mut().filter(|r| r.upstream == name) {
                    r.dropped = true;
                }
            }
            true
        }
        [Key("listeners"), Index(1), Key("tls"), Key("certificates"), Index(k), ..] => {
            let Some(c) = out.certificates.get_mut(*k) else {
                return false;
            };
            if !c.dropped {
                c.dropped = true;
                report.unsupported(
                    doc,
                    &c.origin,
                    format!("{}; certificate left out", message(d)),
                );
            }
            true
        }
        _ => false,
    }
}

/// `routes[3].paths[0]` → `paths[0]`: the part of a Pingway path below its entry.
fn strip_index(path: &str) -> &str {
    path.split_once("].").map_or(path, |(_, rest)| rest)
}

/// The diagnostic's message, prefixed by the field below the entry when there is one.
fn message(d: &Diagnostic) -> String {
    format!("Pingway refuses it: {}", d.message)
}

fn fix_plugin(
    plugins: &mut Vec<Plugin>,
    j: usize,
    rest: &[PathSegment<'_>],
    d: &Diagnostic,
    doc: &ConfigNode,
    report: &mut Report,
) -> bool {
    let Some(p) = plugins.get_mut(j) else {
        return false;
    };
    if p.dropped {
        return true;
    }
    if let [PathSegment::Key("config"), inner @ ..] = rest {
        if d.message.starts_with("unknown field")
            && !inner.is_empty()
            && remove_at(&mut p.config, inner)
        {
            let sub = render_path(inner);
            report.unsupported(
                doc,
                &format!("{}.config.{sub}", p.origin),
                format!("Pingway's {} has no `{sub}`; left out", p.name),
            );
            return true;
        }
    }
    let at = if rest.is_empty() {
        p.origin.clone()
    } else {
        format!("{}.{}", p.origin, render_path(rest))
    };
    p.dropped = true;
    if ACCESS_PLUGINS.contains(&p.name.as_str()) {
        report.unsupported(
            doc,
            &at,
            format!("Pingway refuses it: {}; where the {} plugin applied, requests are answered 503 (request-termination) until you fix it", d.message, p.name),
        );
        let stand_in = fail_closed(&p.name, &p.origin);
        plugins.push(stand_in);
    } else {
        report.unsupported(
            doc,
            &at,
            format!("Pingway refuses it: {}; plugin left out", d.message),
        );
    }
    true
}

fn render_path(segs: &[PathSegment<'_>]) -> String {
    let mut out = String::new();
    for s in segs {
        match s {
            PathSegment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Removes the value at `segs` below `node`; false when there is none.
fn remove_at(node: &mut ConfigNode, segs: &[PathSegment<'_>]) -> bool {
    match segs {
        [] => false,
        [PathSegment::Key(k)] => match &mut node.value {
            NodeValue::Map(entries) => {
                let before = entries.len();
                entries.retain(|(key, _)| key.name != *k);
                entries.len() != before
            }
            _ => false,
        },
        [first, rest @ ..] => {
            let child = match (first, &mut node.value) {
                (PathSegment::Key(k), NodeValue::Map(entries)) => entries
                    .iter_mut()
                    .find(|(key, _)| key.name == *k)
                    .map(|(_, v)| v),
                (PathSegment::Index(i), NodeValue::Seq(items)) => items.get_mut(*i),
                _ => None,
            };
            child.is_some_and(|c| remove_at(c, rest))
        }
    }
}
