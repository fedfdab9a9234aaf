//! The recent configuration loads, for the admin API's `/stats` and the dashboard: a
//! ring of the last [`HISTORY_LEN`] loads that changed something (the start, each applied
//! reload, each refused one), with when, the outcome and, for a refused one, its first
//! problems. Reloads that found the file unchanged are only counted (the watcher's
//! periodic check would otherwise fill the ring).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::config::Diagnostic;

/// How many loads the ring keeps; older ones are dropped (and counted).
pub const HISTORY_LEN: usize = 16;
/// How many problems of a refused reload are kept; the rest are counted.
pub const PROBLEMS_KEPT: usize = 5;
/// The longest problem text kept, in bytes (longer ones are cut at a character
/// boundary and end with `…`).
pub const PROBLEM_TEXT_MAX: usize = 300;

/// What a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    /// The configuration the process started with.
    Started,
    /// A reload made a new configuration serve.
    Applied,
    /// A reload was refused; the running configuration was kept.
    Failed,
}

impl LoadOutcome {
    fn as_str(self) -> &'static str {
        match self {
            LoadOutcome::Started => "started",
            LoadOutcome::Applied => "applied",
            LoadOutcome::Failed => "failed",
        }
    }
}

/// One load.
#[derive(Debug, Clone)]
pub struct LoadRecord {
    /// When it finished.
    pub at: SystemTime,
    /// Its outcome.
    pub outcome: LoadOutcome,
    /// The configuration version serving after it.
    pub version: u64,
    /// A refused reload's first [`PROBLEMS_KEPT`] problems, as text.
    pub problems: Vec<String>,
    /// How many problems it had in all.
    pub problem_count: usize,
}

/// The ring of recent loads.
#[derive(Debug, Default)]
pub struct LoadHistory {
    ring: Mutex<(VecDeque<LoadRecord>, u64)>,
}

impl LoadHistory {
    /// Adds a load, dropping the oldest beyond [`HISTORY_LEN`].
    pub fn push(&self, outcome: LoadOutcome, version: u64, problems: &[Diagnostic]) {
        let record = LoadRecord {
            at: SystemTime::now(),
            outcome,
            version,
            problems: problems
                .iter()
                .take(PROBLEMS_KEPT)
                .map(|d| cut(problem_text(d)))
                .collect(),
            problem_count: problems.len(),
        };
        let mut guard = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let (ring, dropped) = &mut *guard;
        if ring.len() >= HISTORY_LEN {
            ring.pop_front();
            *dropped += 1;
        }
        ring.push_back(record);
    }

    /// The loads kept, newest first, and how many older ones were dropped.
    pub fn recent(&self) -> (Vec<LoadRecord>, u64) {
        let guard = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        (guard.0.iter().rev().cloned().collect(), guard.1)
    }

    /// As JSON: `recent` (newest first, each with `at`, `outcome`, `version`,
    /// `problems`, `problem_count`) and `dropped`.
    pub fn to_json(&self) -> Value {
        let (recent, dropped) = self.recent();
        json!({
            "recent": recent.iter().map(|r| json!({
                "at": crate::admin::rfc3339(r.at),
                "outcome": r.outcome.as_str(),
                "version": r.version,
                "problems": r.problems,
                "problem_count": r.problem_count,
            })).collect::<Vec<_>>(),
            "dropped": dropped,
        })
    }
}

fn problem_text(d: &Diagnostic) -> String {
    let place = match d.location {
        Some(l) => format!(" (line {}, column {})", l.line, l.column),
        None => String::new(),
    };
    if d.path.is_empty() {
        format!("{}{place}", d.message)
    } else {
        format!("{}: {}{place}", d.path, d.message)
    }
}

fn cut(mut s: String) -> String {
    if s.len() > PROBLEM_TEXT_MAX {
        let mut end = PROBLEM_TEXT_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_is_bounded_and_counts_what_it_drops() {
        let h = LoadHistory::default();
        h.push(LoadOutcome::Started, 1, &[]);
        for v in 2..=(HISTORY_LEN as u64 + 3) {
            h.push(LoadOutcome::Applied, v, &[]);
        }
        let (recent, dropped) = h.recent();
        assert_eq!(recent.len(), HISTORY_LEN);
        assert_eq!(dropped, 3);
        assert_eq!(recent[0].version, HISTORY_LEN as u64 + 3, "newest first");
    }

    #[test]
    fn failures_keep_their_first_problems_cut_to_size() {
        let h = LoadHistory::default();
        let mut diags: Vec<Diagnostic> = (0..8)
            .map(|i| Diagnostic::new(format!("routes[{i}].upstream"), "no such upstream"))
            .collect();
        diags[0] = Diagnostic::new("routes[0].name", "é".repeat(400));
        h.push(LoadOutcome::Failed, 1, &diags);
        let (recent, _) = h.recent();
        let r = &recent[0];
        assert_eq!(r.outcome, LoadOutcome::Failed);
        assert_eq!(r.problem_count, 8);
        assert_eq!(r.problems.len(), PROBLEMS_KEPT);
        assert!(r.problems[0].len() <= PROBLEM_TEXT_MAX + '…'.len_utf8());
        assert!(r.problems[0].ends_with('…'));
        assert_eq!(r.problems[1], "routes[1].upstream: no such upstream");
    }
}
