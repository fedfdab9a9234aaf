//! The limits that bound what loading a configuration file may cost.
//!
//! A configuration file is untrusted input as far as memory goes: it may be written by a
//! generator, copied from an issue, or swapped in by a ConfigMap update, and a reload
//! runs inside the serving process. YAML aliases let a file of a few hundred bytes
//! describe a tree of billions of values (the "billion laughs" alias bomb), and deep
//! nesting makes every recursive walk of the tree (deserializing, dropping) overflow
//! the stack. These limits make the tree built from a file at most a fixed multiple of
//! the file's size, and its depth small, so a hostile file is refused with a diagnostic
//! instead of taking the gateway down.

use std::sync::atomic::{AtomicU64, Ordering};

/// The largest configuration file that is read by default, in bytes (4 MiB). A
/// 10,000-route file is about 1 MiB (and a Kubernetes ConfigMap holds at most 1 MiB);
/// anything much larger written by a person is a mistake (a log or a binary renamed over
/// the config). The size also bounds what the YAML parser's lookahead can cost (see
/// [`MAX_NODE_BUDGET`]): about 640 MB for a hostile 4 MiB file written as one flow list.
///
/// A generated file can be larger (the Kubernetes watcher's, for tens of thousands of
/// hosts): the process raises its bound with [`set_max_file_bytes`] (`pingway run
/// --max-config-bytes N`, or [`MAX_FILE_BYTES_ENV`]); [`max_file_bytes`] is the bound
/// in force.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The highest bound [`set_max_file_bytes`] accepts (1 GiB): the parser's lookahead on
/// a hostile file costs about 160 bytes per byte, so even this is for trusted,
/// generated files only.
pub const MAX_FILE_BYTES_CEILING: u64 = 1024 * 1024 * 1024;

/// The environment variable read when `--max-config-bytes` is not given (by `pingway
/// run`, `pingway validate` and `pingway-k8s`): a number of bytes.
pub const MAX_FILE_BYTES_ENV: &str = "PINGWAY_MAX_CONFIG_BYTES";

/// The bound in force (see [`max_file_bytes`]).
static FILE_BYTES: AtomicU64 = AtomicU64::new(MAX_FILE_BYTES);

/// The largest configuration file this process reads: [`MAX_FILE_BYTES`] unless raised
/// or lowered with [`set_max_file_bytes`].
pub fn max_file_bytes() -> u64 {
    FILE_BYTES.load(Ordering::Relaxed)
}

/// Sets the largest configuration file this process reads (for every later read: the
/// start, each reload, `validate`). Refuses 0 and more than [`MAX_FILE_BYTES_CEILING`].
pub fn set_max_file_bytes(bytes: u64) -> Result<(), String> {
    if bytes == 0 || bytes > MAX_FILE_BYTES_CEILING {
        return Err(format!(
            "the configuration file bound must be between 1 byte and {} MiB, not {bytes}",
            MAX_FILE_BYTES_CEILING / (1024 * 1024)
        ));
    }
    FILE_BYTES.store(bytes, Ordering::Relaxed);
    Ok(())
}

/// The bound to use from a command line's `--max-config-bytes` (`flag`), else
/// [`MAX_FILE_BYTES_ENV`], else `default`; an unreadable environment value is an error.
pub fn configured_max_file_bytes(flag: Option<u64>, default: u64) -> Result<u64, String> {
    if let Some(n) = flag {
        return Ok(n);
    }
    match std::env::var(MAX_FILE_BYTES_ENV) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{MAX_FILE_BYTES_ENV}={v:?} is not a number of bytes")),
        Err(_) => Ok(default),
    }
}

/// A byte count as people read it: `4 MiB` when whole mebibytes, else bytes.
pub fn describe_bytes(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{bytes} bytes")
    }
}

/// The deepest nesting of lists and mappings accepted. The configuration's own model is
/// about 8 levels deep, plugin `config:` blocks add a few; 128 leaves room for any real
/// file while keeping every recursive walk of the tree far from the end of the stack.
/// (The YAML parser stops flow collections `[[[` at 255 levels on its own, but block
/// collections `- - - ` have no such limit.)
pub const MAX_DEPTH: usize = 128;

/// The most alias uses (`*name`) a file may contain. Real files use aliases for shared
/// defaults a few dozen times; each use costs a copy of the anchored subtree, so the
/// count is bounded on its own as well as by [`node_budget`].
pub const MAX_ALIAS_USES: usize = 100_000;

/// Values (scalars, lists, mappings, keys) the tree may hold per byte of the file.
/// The sample files hold 0.05 to 0.07 values per byte (keys and values are words, lines
/// are indented, comments explain), and compact JSON-style lists of one-character values
/// 0.5; one per byte
/// leaves aliases several times the file's own values to share defaults, while a file
/// of `[:,:,...]` (1.5 values per byte, nothing a configuration would be) is refused.
pub const NODES_PER_BYTE: usize = 1;

/// The smallest value budget, whatever the file's size: a small file may still alias a
/// block of defaults into many routes.
pub const MIN_NODE_BUDGET: usize = 100_000;

/// Bytes of scalar text the tree may hold per byte of the file. Aliases copy text, so
/// an anchored long string used many times is bounded here rather than by the value
/// count.
pub const TEXT_BYTES_PER_BYTE: usize = 2;

/// The smallest text budget, whatever the file's size (1 MiB).
pub const MIN_TEXT_BUDGET: usize = 1024 * 1024;

/// The largest value budget of a file under the default bound (raised in proportion
/// when [`max_file_bytes`] is raised above [`MAX_FILE_BYTES`]): more than a [`MAX_FILE_BYTES`]
/// file of real configuration holds (the samples hold 0.07 values per byte, 300,000
/// at 4 MiB). Measured, a value costs about 220 bytes at the peak of parsing (its node,
/// key, text, and the slack of growing vectors), so a file refused at this ceiling has
/// taken about 450 MB.
///
/// It does not bound the YAML parser's own lookahead: a flow collection (`[...]`,
/// `{...}`) in a block could be an implicit key, so the parser holds its tokens, about
/// 160 bytes per byte of the collection, until it closes; a file of [`MAX_FILE_BYTES`] that
/// is one flow list peaks near 640 MB before any value reaches the budget.
pub const MAX_NODE_BUDGET: usize = 2_000_000;

/// How many values (nodes) the tree built from a file of `file_len` bytes may hold:
/// `NODES_PER_BYTE × file_len`, at least [`MIN_NODE_BUDGET`] and at most
/// [`MAX_NODE_BUDGET`] (times the factor [`max_file_bytes`] is above
/// [`MAX_FILE_BYTES`], when raised).
pub fn node_budget(file_len: usize) -> usize {
    let scale = usize::try_from(max_file_bytes().div_ceil(MAX_FILE_BYTES))
        .unwrap_or(1)
        .max(1);
    file_len
        .saturating_mul(NODES_PER_BYTE)
        .clamp(MIN_NODE_BUDGET, MAX_NODE_BUDGET.saturating_mul(scale))
}

/// How many bytes of scalar text the tree built from a file of `file_len` bytes may
/// hold: `max(MIN_TEXT_BUDGET, TEXT_BYTES_PER_BYTE × file_len)`.
pub fn text_budget(file_len: usize) -> usize {
    MIN_TEXT_BUDGET.max(file_len.saturating_mul(TEXT_BYTES_PER_BYTE))
}
