//! When to try a failed cluster write again: status patches the API server refused (a
//! 500 when etcd times out, a 409, a connection refused while it restarts, or a 429 or
//! 503 that outlasted kube's own retries) are tried again after [`Retry::FIRST`],
//! doubling up to [`Retry::MAX`], until one round succeeds, rather than only at the
//! next change in the cluster, which may never come.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::leader::Leadership;

/// A pending retry and the delay the next failure waits.
#[derive(Debug)]
pub struct Retry {
    due: Option<Instant>,
    delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            due: None,
            delay: Self::FIRST,
        }
    }
}

impl Retry {
    /// The wait after a first failure.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest wait between two tries.
    pub const MAX: Duration = Duration::from_secs(60);

    /// A round failed: schedules the next try and returns how long it waits (each
    /// failure in a row waits twice as long, at most [`Self::MAX`]).
    pub fn failed(&mut self) -> Duration {
        let wait = self.delay;
        self.due = Some(Instant::now() + wait);
        self.delay = (wait * 2).min(Self::MAX);
        wait
    }

    /// Nothing is left to retry (the round succeeded, or this replica stopped leading).
    pub fn clear(&mut self) {
        *self = Retry::default();
    }

    /// When the next try is due, if one is pending.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Resolves when the next try is due; never when none is pending (for `select!`).
    pub fn wait(&self) -> impl Future<Output = ()> {
        let due = self.due;
        async move {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        }
    }
}

/// What woke a cluster writer that retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A new translation, or a change of leadership: look at the latest round.
    Round,
    /// `retry` fell due: send again what failed.
    Retry,
}

/// Waits for a writer's next piece of work: a new round, a change of leadership, or the
/// retry falling due. `None` once the watch loop or the elector is gone (the writer
/// ends).
pub(crate) async fn next_wake<T>(
    rounds: &mut watch::Receiver<T>,
    leadership: &mut Leadership,
    retry: &Retry,
) -> Option<Wake> {
    tokio::select! {
        r = rounds.changed() => r.ok().map(|()| Wake::Round),
        l = leadership.changed() => l.ok().map(|()| Wake::Round),
        _ = retry.wait() => Some(Wake::Retry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_double_up_to_the_cap_and_clear_resets_them() {
        let mut r = Retry::default();
        assert_eq!(r.due(), None);
        let waits: Vec<Duration> = (0..8).map(|_| r.failed()).collect();
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert!(r.due().is_some());
        r.clear();
        assert_eq!(r.due(), None);
        assert_eq!(r.failed(), Retry::FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_resolves_when_due_and_not_before() {
        let mut r = Retry::default();
        let none = r.wait();
        tokio::select! {
            _ = none => panic!("nothing was pending"),
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        r.failed();
        let started = Instant::now();
        r.wait().await;
        assert!(Instant::now() >= started + Retry::FIRST);
    }
}
