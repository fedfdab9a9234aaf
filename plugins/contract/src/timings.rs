//! Where a request's time went, phase by phase: what a tracing plugin turns into spans.
//!
//! Recorded by the gateway only for requests whose chain has a plugin that
//! [asks for them](crate::Plugin::wants_timings), so requests without tracing pay
//! nothing. Offsets are measured from [`RequestCtx::started_at`](crate::RequestCtx).

use std::sync::Arc;
use std::time::Duration;

/// Plugin phase timings kept for one request, at most. A chain is bounded by the
/// configuration, but consumer scoping can add plugins; the excess is counted in
/// [`Timings::dropped`], not kept.
pub const MAX_PHASE_TIMINGS: usize = 64;

/// How long one plugin took in one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhaseTiming {
    /// The plugin's registered name.
    pub plugin: Arc<str>,
    /// The phase: `"rewrite"` or `"access"` (Kong's names).
    pub phase: &'static str,
    /// When the phase started, after the request arrived.
    pub start: Duration,
    /// How long it took.
    pub duration: Duration,
}

/// One connection attempt to an upstream target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectTiming {
    /// When the gateway started to look for a connection, after the request arrived.
    pub start: Duration,
    /// How long it took to have one (about zero for a reused connection).
    pub duration: Duration,
    /// Whether a pooled connection was reused.
    pub reused: bool,
}

/// A request's recorded timings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timings {
    /// Plugin phases, in the order they ran (at most [`MAX_PHASE_TIMINGS`]).
    pub phases: Vec<PhaseTiming>,
    /// Phase timings not kept because [`MAX_PHASE_TIMINGS`] were kept already.
    pub dropped: u32,
    /// The last connection attempt to the upstream, once one succeeded.
    pub connect: Option<ConnectTiming>,
    /// When the last connection attempt started (the host's bookkeeping until it
    /// succeeds).
    pub connect_started: Option<Duration>,
}

impl Timings {
    /// Records that `plugin` ran `phase` from `start` for `duration`; counts it as
    /// dropped beyond [`MAX_PHASE_TIMINGS`].
    pub fn record_phase(
        &mut self,
        plugin: &Arc<str>,
        phase: &'static str,
        start: Duration,
        duration: Duration,
    ) {
        if self.phases.len() >= MAX_PHASE_TIMINGS {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.phases.push(PhaseTiming {
            plugin: plugin.clone(),
            phase,
            start,
            duration,
        });
    }

    /// Records that a connection attempt starts at `at`.
    pub fn connect_starts(&mut self, at: Duration) {
        self.connect_started = Some(at);
    }

    /// Records that the attempt begun last has a connection at `at`.
    pub fn connected(&mut self, at: Duration, reused: bool) {
        let start = self.connect_started.unwrap_or(at);
        self.connect = Some(ConnectTiming {
            start,
            duration: at.saturating_sub(start),
            reused,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_beyond_the_bound_are_counted_not_kept() {
        let mut t = Timings::default();
        let name: Arc<str> = Arc::from("p");
        for i in 0..(MAX_PHASE_TIMINGS as u64 + 3) {
            t.record_phase(&name, "access", Duration::from_millis(i), Duration::ZERO);
        }
        assert_eq!(t.phases.len(), MAX_PHASE_TIMINGS);
        assert_eq!(t.dropped, 3);
    }

    #[test]
    fn a_connection_spans_from_its_attempt() {
        let mut t = Timings::default();
        t.connect_starts(Duration::from_millis(5));
        t.connected(Duration::from_millis(8), false);
        let c = t.connect.unwrap();
        assert_eq!(
            (c.start, c.duration, c.reused),
            (Duration::from_millis(5), Duration::from_millis(3), false)
        );
    }
}
