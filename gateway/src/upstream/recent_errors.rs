//! The last failures of a target, for the admin API's `/upstreams` and the dashboard.
//!
//! A lock-free ring of [`RECENT_ERRORS`] slots, each one `AtomicU64` packing the time
//! (Unix milliseconds) and what failed (the kind and, for a 5xx answer, the status).
//! Recording is one `fetch_add` and one store, on failure paths only. The total is
//! counted, so what the ring dropped is `total - kept`. Two failures recorded at the
//! same instant by different threads may overwrite one slot's predecessor a little
//! early; the ring is a view of recent history, not an audit log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pingora_error::ErrorType;
use serde_json::{json, Value};

/// How many failures a target keeps.
pub const RECENT_ERRORS: usize = 8;

/// What went wrong talking to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The connection was refused.
    ConnectRefused,
    /// The connection did not complete in `connect_timeout`.
    ConnectTimeout,
    /// No route to the target's host.
    ConnectNoRoute,
    /// Any other failure to connect (including TLS handshakes).
    ConnectError,
    /// The response did not come in `read_timeout`.
    ReadTimeout,
    /// The request could not be sent in `send_timeout`.
    WriteTimeout,
    /// The target closed the connection before its response.
    ConnectionClosed,
    /// Reading from or writing to the connection failed.
    IoError,
    /// The response was not valid HTTP.
    InvalidResponse,
    /// The target answered with this 5xx status.
    Status(u16),
    /// Another failure.
    Other,
}

impl UpstreamErrorKind {
    /// The kind of a Pingora error on an upstream connection.
    pub fn of(etype: &ErrorType) -> Self {
        use ErrorType as E;
        match etype {
            E::ConnectRefused => Self::ConnectRefused,
            E::ConnectTimedout => Self::ConnectTimeout,
            E::ConnectNoRoute => Self::ConnectNoRoute,
            E::TLSWantX509Lookup
            | E::TLSHandshakeFailure
            | E::TLSHandshakeTimedout
            | E::InvalidCert
            | E::HandshakeError
            | E::ConnectError
            | E::BindError
            | E::SocketError
            | E::ConnectProxyFailure => Self::ConnectError,
            E::ReadTimedout => Self::ReadTimeout,
            E::WriteTimedout => Self::WriteTimeout,
            E::ConnectionClosed => Self::ConnectionClosed,
            E::ReadError | E::WriteError => Self::IoError,
            E::InvalidHTTPHeader | E::H1Error | E::H2Error | E::InvalidH2 => Self::InvalidResponse,
            _ => Self::Other,
        }
    }

    /// The name shown: `connect_refused`, `connect_timeout`, `connect_no_route`,
    /// `connect_error`, `read_timeout`, `write_timeout`, `connection_closed`,
    /// `io_error`, `invalid_response`, `http_5xx`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::ConnectNoRoute => "connect_no_route",
            Self::ConnectError => "connect_error",
            Self::ReadTimeout => "read_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::ConnectionClosed => "connection_closed",
            Self::IoError => "io_error",
            Self::InvalidResponse => "invalid_response",
            Self::Status(_) => "http_5xx",
            Self::Other => "other",
        }
    }

    /// Packs into 16 bits: kind × 1000 + status.
    fn code(self) -> u64 {
        let (kind, status) = match self {
            Self::ConnectRefused => (1, 0),
            Self::ConnectTimeout => (2, 0),
            Self::ConnectNoRoute => (3, 0),
            Self::ConnectError => (4, 0),
            Self::ReadTimeout => (5, 0),
            Self::WriteTimeout => (6, 0),
            Self::ConnectionClosed => (7, 0),
            Self::IoError => (8, 0),
            Self::InvalidResponse => (9, 0),
            Self::Status(s) => (10, u64::from(s.min(999))),
            Self::Other => (11, 0),
        };
        kind * 1000 + status
    }

    fn from_code(code: u64) -> Self {
        match code / 1000 {
            1 => Self::ConnectRefused,
            2 => Self::ConnectTimeout,
            3 => Self::ConnectNoRoute,
            4 => Self::ConnectError,
            5 => Self::ReadTimeout,
            6 => Self::WriteTimeout,
            7 => Self::ConnectionClosed,
            8 => Self::IoError,
            9 => Self::InvalidResponse,
            10 => Self::Status((code % 1000) as u16),
            _ => Self::Other,
        }
    }
}

/// One recorded failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamError {
    /// When (millisecond precision).
    pub at: SystemTime,
    /// What failed.
    pub kind: UpstreamErrorKind,
}

impl UpstreamError {
    /// As JSON: `at` (RFC 3339), `kind`, and `status` for a 5xx answer.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "at": crate::admin::rfc3339(self.at),
            "kind": self.kind.name(),
        });
        if let UpstreamErrorKind::Status(s) = self.kind {
            v["status"] = Value::from(s);
        }
        v
    }
}

/// The ring of a target's recent failures.
#[derive(Debug)]
pub struct RecentErrors {
    slots: [AtomicU64; RECENT_ERRORS],
    /// Failures recorded since the target was first configured (the next slot to write).
    total: AtomicU64,
}

impl Default for RecentErrors {
    fn default() -> Self {
        RecentErrors {
            slots: [const { AtomicU64::new(0) }; RECENT_ERRORS],
            total: AtomicU64::new(0),
        }
    }
}

impl RecentErrors {
    /// Records a failure now.
    pub fn record(&self, kind: UpstreamErrorKind) {
        self.record_at(SystemTime::now(), kind);
    }

    fn record_at(&self, at: SystemTime, kind: UpstreamErrorKind) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
            // 48 bits of milliseconds last until the year 10889.
            & ((1 << 48) - 1);
        let n = self.total.fetch_add(1, Ordering::Relaxed);
        let slot = (n % RECENT_ERRORS as u64) as usize;
        self.slots[slot].store((ms << 16) | kind.code(), Ordering::Relaxed);
    }

    /// Failures recorded in all (the ring keeps the last [`RECENT_ERRORS`]).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The failures kept, newest first.
    pub fn recent(&self) -> Vec<UpstreamError> {
        let mut out: Vec<UpstreamError> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&v| v != 0)
            .map(|v| UpstreamError {
                at: UNIX_EPOCH + Duration::from_millis(v >> 16),
                kind: UpstreamErrorKind::from_code(v & 0xffff),
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.at));
        out
    }
}

/// Records a failed attempt (connect error, timeout, broken response) on the target it
/// was sent to, if one was picked. A failure the client caused (a stalled request body:
/// pass `client_side`) is not the target's and is not recorded.
pub fn record_failure(selected: Option<&super::Selected>, etype: &ErrorType, client_side: bool) {
    if let (Some(sel), false) = (selected, client_side) {
        sel.record_error(UpstreamErrorKind::of(etype));
    }
}

/// Records a 5xx answer of the target the request was sent to.
pub fn record_response(selected: Option<&super::Selected>, status: u16) {
    if let (Some(sel), 500..=599) = (selected, status) {
        sel.record_error(UpstreamErrorKind::Status(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_the_packing() {
        for kind in [
            UpstreamErrorKind::ConnectRefused,
            UpstreamErrorKind::ReadTimeout,
            UpstreamErrorKind::Status(502),
            UpstreamErrorKind::Status(599),
            UpstreamErrorKind::Other,
        ] {
            assert_eq!(UpstreamErrorKind::from_code(kind.code()), kind);
        }
        assert_eq!(
            UpstreamErrorKind::of(&ErrorType::ConnectRefused).name(),
            "connect_refused"
        );
        assert_eq!(
            UpstreamErrorKind::of(&ErrorType::ReadTimedout).name(),
            "read_timeout"
        );
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_all() {
        let r = RecentErrors::default();
        assert!(r.recent().is_empty());
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for i in 0..(RECENT_ERRORS as u64 + 4) {
            r.record_at(
                t0 + Duration::from_millis(i),
                UpstreamErrorKind::Status(500 + i as u16),
            );
        }
        assert_eq!(r.total(), RECENT_ERRORS as u64 + 4);
        let recent = r.recent();
        assert_eq!(recent.len(), RECENT_ERRORS);
        assert_eq!(
            recent[0].kind,
            UpstreamErrorKind::Status(500 + RECENT_ERRORS as u16 + 3)
        );
        assert_eq!(
            recent[0].at,
            t0 + Duration::from_millis(RECENT_ERRORS as u64 + 3)
        );
        assert_eq!(
            recent[RECENT_ERRORS - 1].kind,
            UpstreamErrorKind::Status(504)
        );
    }
}
