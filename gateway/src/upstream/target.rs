//! A target of a pool and its live state (health, counters, in-flight requests).
//!
//! The state lives behind its own `Arc` so that a reload can hand it to the new pool
//! when the address stays: health and counters survive a configuration change.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A server of an upstream pool: one resolved address, its weight and its live state.
pub struct Target {
    addr: SocketAddr,
    weight: u32,
    /// The address as configured (`host:port`), sent as `Host` unless the route
    /// preserves the client's. An owned value made once per configured target and shared
    /// by its addresses: cloning it per request bumps a reference count, and it is freed
    /// with the pool (an interned `'static` value would leak one string per address ever
    /// configured, which endpoint churn through reloads grows without bound).
    host_header: http::HeaderValue,
    /// The index of the configured target (`targets[i]`) this address comes from.
    entry: usize,
    /// The slot of an address its name no longer resolves to, kept so that the other
    /// targets keep their index (see `names`); never picked, never probed.
    retired: bool,
    pub(crate) state: Arc<TargetState>,
}

/// What is known about a target beyond its configuration; shared across reloads.
#[derive(Debug)]
pub(crate) struct TargetState {
    healthy: AtomicBool,
    successes: AtomicU32,
    failures: AtomicU32,
    in_flight: AtomicUsize,
    /// When the health checker last started a probe of this target.
    last_probe: Mutex<Option<Instant>>,
    /// A probe is running; the checker never starts a second one.
    probing: AtomicBool,
    /// The last failures of requests proxied here.
    pub(crate) errors: super::recent_errors::RecentErrors,
    /// Passive health: failures in a row and ejection.
    pub(crate) outlier: super::outlier::OutlierState,
}

/// A change of health status caused by a probe result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The target was healthy and is now out of rotation.
    Down,
    /// The target was unhealthy and is back in rotation.
    Up,
}

impl TargetState {
    /// A target nobody has checked yet: healthy, no history.
    pub(crate) fn new() -> Self {
        TargetState {
            healthy: AtomicBool::new(true),
            successes: AtomicU32::new(0),
            failures: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
            last_probe: Mutex::new(None),
            probing: AtomicBool::new(false),
            errors: Default::default(),
            outlier: Default::default(),
        }
    }

    /// Whether the target is in rotation.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the status and forgets the consecutive results that led to the old one.
    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.successes.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Counts a successful probe; after `threshold` in a row an unhealthy target is
    /// healthy again.
    pub(crate) fn record_success(&self, threshold: u32) -> Option<Transition> {
        self.failures.store(0, Ordering::Relaxed);
        let n = saturating_increment(&self.successes);
        if !self.healthy.load(Ordering::Relaxed) && n >= threshold {
            self.healthy.store(true, Ordering::Relaxed);
            return Some(Transition::Up);
        }
        None
    }

    /// Counts a failed probe; after `threshold` in a row a healthy target goes out of
    /// rotation.
    pub(crate) fn record_failure(&self, threshold: u32) -> Option<Transition> {
        self.successes.store(0, Ordering::Relaxed);
        let n = saturating_increment(&self.failures);
        if self.healthy.load(Ordering::Relaxed) && n >= threshold {
            self.healthy.store(false, Ordering::Relaxed);
            return Some(Transition::Down);
        }
        None
    }

    /// When the last probe started, if any.
    pub(crate) fn last_probe(&self) -> Option<Instant> {
        match self.last_probe.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Claims the right to probe (false if a probe is already running) and stamps the
    /// start time.
    pub(crate) fn begin_probe(&self, now: Instant) -> bool {
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        match self.last_probe.lock() {
            Ok(mut guard) => *guard = Some(now),
            Err(poisoned) => *poisoned.into_inner() = Some(now),
        }
        true
    }

    /// Releases the claim taken by [`TargetState::begin_probe`].
    pub(crate) fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }
}

fn saturating_increment(counter: &AtomicU32) -> u32 {
    // Only the health checker writes these, one probe at a time per target, so a
    // load-then-store is enough and avoids wrapping after 4 billion probes.
    let n = counter.load(Ordering::Relaxed).saturating_add(1);
    counter.store(n, Ordering::Relaxed);
    n
}

impl Target {
    /// A target with the given state (new, or carried over from the previous pool),
    /// asked for with its IP as `Host`.
    #[cfg(test)]
    pub(crate) fn new(addr: SocketAddr, weight: u32, state: Arc<TargetState>) -> Self {
        Target::configured(0, host_header(&addr.to_string(), addr), addr, weight, state)
    }

    /// Address `addr` of configured target `entry`, sent `host_header` (see
    /// [`host_header`]).
    pub(crate) fn configured(
        entry: usize,
        host_header: http::HeaderValue,
        addr: SocketAddr,
        weight: u32,
        state: Arc<TargetState>,
    ) -> Self {
        Target {
            addr,
            weight,
            host_header,
            entry,
            retired: false,
            state,
        }
    }

    /// This slot once its address is gone: same entry and `Host`, weight 0, its own
    /// state (requests still in flight to the old address hold the old one).
    pub(crate) fn retired(&self) -> Self {
        Target {
            addr: self.addr,
            weight: 0,
            host_header: self.host_header.clone(),
            entry: self.entry,
            retired: true,
            state: Arc::new(TargetState::new()),
        }
    }

    /// The index of the configured target this address comes from.
    pub(crate) fn entry(&self) -> usize {
        self.entry
    }

    /// Whether this is the slot of an address that is gone (its name no longer resolves
    /// to it). Such a slot is never picked nor probed; it keeps the other targets at
    /// their index until a new address of the same name takes it.
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// The `Host` header value for requests to this target when the route does not
    /// preserve the client's.
    pub fn host_header(&self) -> &http::HeaderValue {
        &self.host_header
    }

    /// The resolved address requests are sent to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configured weight; 0 means the target is never picked.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Whether the target is in rotation. Targets start healthy; only active health
    /// checks (or [`Target::set_healthy`]) change this.
    pub fn is_healthy(&self) -> bool {
        self.state.is_healthy()
    }

    /// Requests currently holding a [`Selected`](super::Selected) for this target.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    /// Consecutive successful health probes (reset by a failure).
    pub fn consecutive_successes(&self) -> u32 {
        self.state.successes.load(Ordering::Relaxed)
    }

    /// Consecutive failed health probes (reset by a success).
    pub fn consecutive_failures(&self) -> u32 {
        self.state.failures.load(Ordering::Relaxed)
    }

    /// The last failures of requests proxied to this target (connect errors, timeouts,
    /// 5xx answers), and how many there were in all.
    pub fn recent_errors(&self) -> &super::recent_errors::RecentErrors {
        &self.state.errors
    }

    /// Forces the health status (for an admin override or tests); the health checker,
    /// if configured, keeps updating it from probe results afterwards.
    pub fn set_healthy(&self, healthy: bool) {
        self.state.set_healthy(healthy);
    }

    /// Whether a request may be sent here: positive weight, healthy and not ejected by
    /// outlier detection (a retired slot has weight 0).
    pub(crate) fn is_available(&self) -> bool {
        self.weight > 0 && self.is_healthy() && !self.state.outlier.is_ejected()
    }

    /// Whether outlier detection has the target ejected now.
    pub fn is_ejected(&self) -> bool {
        self.state.outlier.is_ejected()
    }

    /// Time left of the target's current ejection (zero when not ejected).
    pub fn ejection_left(&self) -> std::time::Duration {
        self.state.outlier.ejection_left()
    }

    /// Times outlier detection has ejected the target.
    pub fn ejections(&self) -> u64 {
        self.state.outlier.ejections()
    }

    /// Requests the target failed in a row, as outlier detection counts them.
    pub fn consecutive_errors(&self) -> u32 {
        self.state.outlier.consecutive_failures()
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("weight", &self.weight)
            .field("healthy", &self.is_healthy())
            .field("in_flight", &self.in_flight())
            .field("retired", &self.retired)
            .finish()
    }
}

/// The `Host` value for a configured target: the address as written (so a target written
/// `api.internal:8080` is asked for `api.internal:8080`, not for its IP), or the resolved
/// address if the text is not a valid header value. Owned, never interned: built once per
/// configured target per load and freed with the pool.
pub(crate) fn host_header(configured: &str, resolved: SocketAddr) -> http::HeaderValue {
    http::HeaderValue::from_str(configured).unwrap_or_else(|_| {
        // A SocketAddr prints as ASCII digits, dots, colons and brackets: always valid.
        http::HeaderValue::from_str(&resolved.to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("localhost"))
    })
}

/// Counts one in-flight request on a target for as long as it lives.
pub(crate) struct InFlight(Arc<TargetState>);

impl InFlight {
    /// Starts counting a request on `state`.
    pub(crate) fn start(state: &Arc<TargetState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(state))
    }

    /// The state of the target the request is on.
    pub(crate) fn state(&self) -> &TargetState {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_change_status_only_after_consecutive_results() {
        let s = TargetState::new();
        assert_eq!(s.record_failure(3), None);
        assert_eq!(s.record_failure(3), None);
        // A success in between resets the run of failures.
        assert_eq!(s.record_success(2), None);
        assert_eq!(s.record_failure(3), None);
        assert_eq!(s.record_failure(3), None);
        assert_eq!(s.record_failure(3), Some(Transition::Down));
        assert!(!s.healthy.load(Ordering::Relaxed));
        assert_eq!(s.record_failure(3), None, "already down");
        assert_eq!(s.record_success(2), None);
        assert_eq!(s.record_success(2), Some(Transition::Up));
        assert_eq!(s.record_success(2), None, "already up");
    }

    #[test]
    fn in_flight_guard_counts_while_alive() {
        let state = Arc::new(TargetState::new());
        let t = Target::new("127.0.0.1:1".parse().unwrap(), 1, Arc::clone(&state));
        let a = InFlight::start(&state);
        let b = InFlight::start(&state);
        assert_eq!(t.in_flight(), 2);
        drop(a);
        assert_eq!(t.in_flight(), 1);
        drop(b);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn only_one_probe_at_a_time() {
        let s = TargetState::new();
        let now = Instant::now();
        assert!(s.begin_probe(now));
        assert!(!s.begin_probe(now));
        assert_eq!(s.last_probe(), Some(now));
        s.end_probe();
        assert!(s.begin_probe(now));
    }
}
