//! The shipped configuration files, mutated at random (tokens spliced in, bytes cut,
//! lines repeated or dropped, bytes changed), must never panic the loader or the
//! compiler, and every problem found in them must name its line and column: what a user
//! who breaks a working file by hand gets.

use proptest::prelude::*;

use super::load_str;
use crate::runtime::Runtime;

const SEEDS: [&str; 3] = [
    include_str!("../../../config/demo.yaml"),
    include_str!("../../../config/auth-demo.yaml"),
    include_str!("../../../config/edge-demo.yaml"),
];

/// What a hand edit or a bad template tends to leave behind.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    "- ",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!int ",
    "'",
    "\"",
    "\n",
    "  ",
    "\t",
    "~",
    "null",
    "-1",
    "99999999999999999999",
    "1e400",
    ".inf",
    "0x10",
    "1s",
    "-5ms",
    "999999h",
    "\u{fffd}",
    "%",
    "---\n",
    "...\n",
    "? ",
    "|\n  x",
    ">\n  y",
    "0.0.0.0:0",
    "[::1]:80",
    "*.",
    "**",
    "(?",
    "weight: -1",
    "name: \"\"",
    "upstream: nope",
];

#[derive(Debug, Clone)]
enum Edit {
    Splice(usize, usize),
    Cut(usize, usize),
    RepeatLine(usize, usize),
    DropLine(usize),
    Byte(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, t)| Edit::Splice(at, t)),
        (any::<usize>(), 1usize..20).prop_map(|(at, n)| Edit::Cut(at, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Edit::RepeatLine(from, to)),
        any::<usize>().prop_map(Edit::DropLine),
        (any::<usize>(), 0x20u8..0x7f).prop_map(|(at, b)| Edit::Byte(at, b)),
    ]
}

/// Applies `edit` to `text` (positions taken modulo its length, at character
/// boundaries).
fn apply(text: &mut String, edit: &Edit) {
    let boundary = |text: &str, at: usize| {
        let mut at = at % (text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match *edit {
        Edit::Splice(at, t) => {
            let at = boundary(text, at);
            text.insert_str(at, TOKENS[t]);
        }
        Edit::Cut(at, n) => {
            let from = boundary(text, at);
            let to = boundary(text, from + n);
            if to > from {
                text.replace_range(from..to, "");
            }
        }
        Edit::RepeatLine(from, to) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let line = lines[from % lines.len()];
                lines.insert(to % (lines.len() + 1), line);
                *text = lines.join("\n");
            }
        }
        Edit::DropLine(at) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                lines.remove(at % lines.len());
                *text = lines.join("\n");
            }
        }
        Edit::Byte(at, b) => {
            let at = boundary(text, at);
            let end = boundary(text, at + 1);
            if end > at {
                text.replace_range(at..end, &char::from(b).to_string());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_broken_shipped_file_is_refused_with_a_line_and_column_for_every_problem(
        seed in 0..SEEDS.len(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let mut text = SEEDS[seed].to_string();
        for e in &edits {
            apply(&mut text, e);
        }
        let problems = match load_str(&text) {
            Ok(loaded) => match Runtime::build(&loaded, &pingway_plugins::registry(), None) {
                Ok(_) => Vec::new(),
                Err(diags) => diags,
            },
            Err(diags) => diags,
        };
        for d in &problems {
            prop_assert!(d.location.is_some(), "no line for {d}\n--- file:\n{text}");
        }
    }
}
