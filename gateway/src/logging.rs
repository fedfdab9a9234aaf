//! The process logger: `env_logger` (`RUST_LOG`, default `info`) behind a filter that
//! keeps request and response contents out of the log at every level.
//!
//! Pingora's debug and trace lines print whole request heads (`Sending header to
//! upstream RequestHeader { .. headers: {"apikey": ..} }`), response heads and body
//! chunks, which carry API keys, `Authorization` values, tokens and cookies. Those lines
//! are dropped; Pingora's other lines (connection events, errors, timings) are kept.
//! Pingway's own lines never print header values or query strings. The file watcher's
//! backend (`notify`) is kept at `info` unless `RUST_LOG` names it (see [`init`]).

use log::{Log, Metadata, Record};

/// What gives a Pingora line away as carrying request or response contents: the
/// `Debug` form of a header map or of a body task, or a message that dumps one.
const CONTENT_MARKERS: &[&str] = &[
    "headers: {",
    "Body(",
    "Header(",
    "Trailer(",
    "Sending header to upstream",
    "Request header:",
    "Response header:",
    "Writing request header",
    "Response body:",
    "Request to h2:",
    "Request to custom:",
];

/// Installs the logger. Call once, first thing in `main` (what the bundled binary and
/// the examples do).
pub fn init() {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // The file watcher's backend logs every inotify event it reads at trace level, for
    // every file in the config's directory, where the log file often is: at `trace`, each
    // line logged would be an event that logs a line, without end. Its own events are left
    // out unless RUST_LOG names it.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("notify")) {
        builder.filter_module("notify", log::LevelFilter::Info);
    }
    let inner = builder.build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(RedactingLogger { inner })).is_ok() {
        log::set_max_level(max);
    }
}

/// A logger that drops Pingora's lines that carry request or response contents.
pub struct RedactingLogger<L> {
    inner: L,
}

impl<L> RedactingLogger<L> {
    /// Wraps `inner`.
    pub fn new(inner: L) -> Self {
        RedactingLogger { inner }
    }
}

/// Pingora's error lines that the gateway counts instead of logging one by one (a client
/// decides how often they happen), each logged as a total at most every ten seconds by
/// the module that counts it.
#[derive(Debug, PartialEq, Eq)]
enum Counted {
    /// A connection the head deadline closed (`pingway::downstream` counts it itself).
    HeadTimeout,
    /// A client connection that ended part-way through a request head.
    UnfinishedHead,
    /// A client TLS handshake that failed.
    HandshakeFailure,
}

/// Which counted kind `text`, a Pingora error line, is, if any.
fn counted(text: &str) -> Option<Counted> {
    use crate::downstream::{HEAD_TIMEOUT_MARKER, HEAD_UNFINISHED_MARKER};
    if text.starts_with(crate::tls::HANDSHAKE_ERROR_MARKER) {
        Some(Counted::HandshakeFailure)
    } else if text.contains(HEAD_TIMEOUT_MARKER) {
        Some(Counted::HeadTimeout)
    } else if text.starts_with("Fail to proxy: Downstream") && text.contains(HEAD_UNFINISHED_MARKER)
    {
        Some(Counted::UnfinishedHead)
    } else {
        None
    }
}

/// Whether a record would show request or response contents.
pub fn carries_contents(record: &Record<'_>) -> bool {
    // Only Pingora's debug and trace lines dump contents; its info, warn and error lines
    // quote Pingway's request summary (method, path, Host), never headers or the query.
    if record.level() <= log::Level::Info || !record.target().starts_with("pingora") {
        return false;
    }
    let text = match record.args().as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(record.args().to_string()),
    };
    CONTENT_MARKERS.iter().any(|m| text.contains(m))
}

impl<L: Log> Log for RedactingLogger<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if record.target().starts_with("pingora") && record.level() == log::Level::Error {
            // Formatted once, to tell the counted kinds apart; the count's own line is
            // not Pingora's.
            let text = record.args().to_string();
            match counted(&text) {
                Some(Counted::HandshakeFailure) => return crate::tls::handshake_failed(&text),
                Some(Counted::UnfinishedHead) => return crate::downstream::head_unfinished(&text),
                Some(Counted::HeadTimeout) => return,
                None => {}
            }
        }
        if self.inner.enabled(record.metadata()) && !carries_contents(record) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);

    impl Log for Capture {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &Record<'_>) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn log_one(logger: &RedactingLogger<Capture>, level: log::Level, target: &str, msg: &str) {
        logger.log(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{msg}"))
                .build(),
        );
    }

    #[test]
    fn pingora_content_dumps_are_dropped_and_the_rest_kept() {
        let logger = RedactingLogger::new(Capture::default());
        let head = r#"Sending header to upstream RequestHeader { base: Parts { method: GET, headers: {"apikey": "k1"} } }"#;
        log_one(&logger, log::Level::Debug, "pingora_proxy::proxy_h1", head);
        log_one(
            &logger,
            log::Level::Trace,
            "pingora_core::protocols::http::v1::client",
            "Response body: Some(b\"token\")",
        );
        log_one(
            &logger,
            log::Level::Debug,
            "pingora_proxy::proxy_h1",
            "upstream event: Body(Some(b\"apikey=k1\"), false)",
        );
        log_one(
            &logger,
            log::Level::Debug,
            "pingora_core::connectors",
            "Inet FD to: 127.0.0.1:80 is reusable",
        );
        log_one(&logger, log::Level::Debug, "pingway::proxy", "headers: {");
        log_one(
            &logger,
            log::Level::Error,
            "pingora_proxy",
            "Fail to proxy: Upstream ConnectRefused, GET /k, Host: h",
        );
        let kept = logger.inner.0.lock().unwrap().clone();
        assert_eq!(
            kept,
            [
                "Inet FD to: 127.0.0.1:80 is reusable",
                "headers: {",
                "Fail to proxy: Upstream ConnectRefused, GET /k, Host: h",
            ]
        );
    }

    #[test]
    fn pingora_handshake_errors_are_counted_not_logged() {
        let logger = RedactingLogger::new(Capture::default());
        let before = crate::tls::handshake_failures();
        log_one(
            &logger,
            log::Level::Error,
            "pingora_core::listeners",
            "Downstream handshake error from 127.0.0.1:5000: TLSHandshakeFailure",
        );
        log_one(
            &logger,
            log::Level::Error,
            "pingway::proxy",
            "Downstream handshake is not Pingora's line here",
        );
        assert!(crate::tls::handshake_failures() > before);
        let kept = logger.inner.0.lock().unwrap().clone();
        assert_eq!(kept, ["Downstream handshake is not Pingora's line here"]);
    }

    #[test]
    fn pingora_lines_for_unfinished_heads_are_counted_not_logged() {
        let logger = RedactingLogger::new(Capture::default());
        let before = crate::downstream::unfinished_heads();
        let unfinished = [
            "Fail to proxy: Downstream ConnectionClosed context: while reading request headers, bytes already read: 12, downstream session type: h1",
            "Fail to proxy: Downstream ReadError context: while reading request headers cause: Connection reset by peer (os error 104), downstream session type: h1",
        ];
        for line in unfinished {
            log_one(&logger, log::Level::Error, "pingora_proxy", line);
        }
        // Not these: a head cut by the deadline (counted elsewhere), an upstream's
        // failure, and Pingway's own lines.
        let timeout = format!(
            "Fail to proxy: Downstream ReadError context: while reading request headers cause: {}",
            crate::downstream::HEAD_TIMEOUT_MARKER
        );
        log_one(&logger, log::Level::Error, "pingora_proxy", &timeout);
        let upstream =
            "Fail to proxy: Upstream ConnectionClosed context: while reading response headers";
        log_one(&logger, log::Level::Error, "pingora_proxy", upstream);
        let own = "Fail to proxy: Downstream while reading request headers";
        log_one(&logger, log::Level::Error, "pingway::proxy", own);
        // Other tests may count at the same time: at least this test's two.
        assert!(crate::downstream::unfinished_heads() >= before + 2);
        let kept = logger.inner.0.lock().unwrap().clone();
        assert_eq!(kept, [upstream, own]);
    }
}
