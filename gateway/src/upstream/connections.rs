//! `max_connections` and `max_pending_requests`: Envoy's connection circuit breakers,
//! made honest for Pingora's HTTP/1 pool.
//!
//! An HTTP/1 connection carries one request at a time, and Pingora opens a new one
//! whenever no idle one is pooled, so what is limited is the number of attempts holding
//! a connection to the pool's targets at once: from picking the target until the
//! response has been relayed (or the attempt failed). Idle keep-alive connections
//! waiting in Pingora's pool are not counted (they are bounded by
//! `server.upstream_keepalive_pool`). A request that finds every connection taken waits
//! for one, up to `connect_timeout`, if fewer than `max_pending_requests` already wait;
//! otherwise it is answered 503 at once. Both are counted.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One attempt's hold on a connection under `max_connections`, released on drop.
#[derive(Debug)]
pub struct ConnectionSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Why no connection slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Every connection is taken and `max_pending_requests` requests already wait.
    PendingFull,
    /// The request waited `connect_timeout` for a connection.
    WaitedTooLong,
}

/// A pool's connection limit.
#[derive(Debug)]
pub struct ConnectionLimit {
    slots: Arc<Semaphore>,
    max: usize,
    max_pending: usize,
    pending: AtomicUsize,
    wait: Duration,
    overflowed: AtomicU64,
}

struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConnectionLimit {
    /// `max` connections (0: no limit), `max_pending` waiting requests, each waiting at
    /// most `wait`.
    pub fn new(max: u32, max_pending: u32, wait: Duration) -> Self {
        let max = max as usize;
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            max,
            max_pending: max_pending as usize,
            pending: AtomicUsize::new(0),
            wait,
            overflowed: AtomicU64::new(0),
        }
    }

    /// A slot for one attempt: `Ok(None)` without a limit (nothing counted).
    pub async fn acquire(&self) -> Result<Option<ConnectionSlot>, Overflow> {
        self.acquire_within(None).await
    }

    /// [`Self::acquire`], waiting at most `cap` when that is shorter than the pool's
    /// wait (what is left of the route's timeout).
    pub async fn acquire_within(
        &self,
        cap: Option<Duration>,
    ) -> Result<Option<ConnectionSlot>, Overflow> {
        if self.max == 0 {
            return Ok(None);
        }
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(Some(ConnectionSlot(permit)));
        }
        let max_pending = self.max_pending;
        let queued = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_pending).then_some(n + 1)
            })
            .is_ok();
        if !queued {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            return Err(Overflow::PendingFull);
        }
        let _pending = Pending(&self.pending);
        let wait = cap.map_or(self.wait, |c| c.min(self.wait));
        match tokio::time::timeout(wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(ConnectionSlot(permit))),
            // Timed out (the semaphore is never closed).
            _ => {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                Err(Overflow::WaitedTooLong)
            }
        }
    }

    /// Connections in use now.
    pub fn in_use(&self) -> usize {
        self.max.saturating_sub(self.slots.available_permits())
    }

    /// Requests waiting for a connection now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Requests answered 503 for want of a connection, since the pool was built.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_limit_counts_nothing() {
        let l = ConnectionLimit::new(0, 0, Duration::from_secs(1));
        assert!(l.acquire().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn overflow_without_pending_is_immediate_and_slots_come_back() {
        let l = ConnectionLimit::new(2, 0, Duration::from_secs(60));
        let a = l.acquire().await.unwrap();
        let _b = l.acquire().await.unwrap();
        assert_eq!(l.in_use(), 2);
        assert_eq!(l.acquire().await.unwrap_err(), Overflow::PendingFull);
        assert_eq!(l.overflowed(), 1);
        drop(a);
        assert!(l.acquire().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_pending_request_gets_the_next_free_slot() {
        let l = Arc::new(ConnectionLimit::new(1, 1, Duration::from_secs(60)));
        let held = l.acquire().await.unwrap();
        let waiter = {
            let l = Arc::clone(&l);
            tokio::spawn(async move { l.acquire().await.map(|s| s.is_some()) })
        };
        // Wait until it queues, then a third overflows at once.
        while l.pending() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(l.acquire().await.unwrap_err(), Overflow::PendingFull);
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok(true));
        assert_eq!(l.pending(), 0);
    }
}
