//! The background service that keeps target names resolved.
//!
//! Every tick it asks for the current pools and, for each pool with a name due for a
//! lookup, starts one blocking task (`spawn_blocking`) that looks the pool's due names
//! up and updates its members. The system resolver blocks, so it never runs on an async
//! thread, and a slow DNS server delays only that pool's refresh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use log::debug;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::resolve::{self, ResolveFn};
use super::Upstream;

/// How often the pools are looked at for names due; small against
/// [`RESOLVE_INTERVAL`](super::RESOLVE_INTERVAL), so a due name waits at most this long.
const TICK: Duration = Duration::from_secs(1);

/// Looks target names up again every [`RESOLVE_INTERVAL`](super::RESOLVE_INTERVAL) and
/// updates their pools. Register it with Pingora as a background service.
pub struct TargetRefresher {
    source: Arc<dyn Fn() -> Vec<Arc<Upstream>> + Send + Sync>,
    resolve: Arc<ResolveFn<'static>>,
}

impl TargetRefresher {
    /// A refresher over the pools `source` returns (called on every tick; it must return
    /// the pools of the *current* configuration), with the system resolver.
    pub fn new(source: Arc<dyn Fn() -> Vec<Arc<Upstream>> + Send + Sync>) -> Self {
        TargetRefresher {
            source,
            resolve: Arc::new(resolve::resolve),
        }
    }

    /// Starts a blocking refresh of each pool with a name due at `now`; returns how many.
    fn tick(&self, now: Instant) -> usize {
        let mut started = 0;
        for pool in (self.source)() {
            if !pool.names_due(now) {
                continue;
            }
            let resolve = Arc::clone(&self.resolve);
            started += 1;
            // Detached: the refresh claims the pool, so a slow lookup still running at
            // the next tick is not started twice.
            drop(tokio::task::spawn_blocking(move || {
                let report = pool.refresh_names(Instant::now(), resolve.as_ref());
                debug!("upstream {}: names refreshed: {report:?}", pool.name());
            }));
        }
        started
    }
}

#[async_trait]
impl BackgroundService for TargetRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.tick(Instant::now());
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::config::Balancer;
    use crate::upstream::resolve::ResolveError;
    use crate::upstream::testing::config;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn due_pools_are_refreshed_in_blocking_tasks() {
        let answer = Arc::new(Mutex::new(vec!["10.0.0.1:80"
            .parse::<SocketAddr>()
            .unwrap()]));
        let lookups = Arc::new(AtomicUsize::new(0));
        let (a, n) = (answer.clone(), lookups.clone());
        let resolve: Arc<ResolveFn<'static>> =
            Arc::new(move |_: &str| -> Result<_, ResolveError> {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(a.lock().unwrap().clone())
            });
        let cfg = config("api", &[("api.test:80", 1)], Balancer::RoundRobin);
        let pool = Arc::new(
            Upstream::build_with(&cfg, "upstreams[0]", None, resolve.as_ref(), Duration::ZERO)
                .unwrap(),
        );
        let source_pool = pool.clone();
        let refresher = TargetRefresher {
            source: Arc::new(move || vec![source_pool.clone()]),
            resolve,
        };
        *answer.lock().unwrap() = vec!["10.0.0.2:80".parse().unwrap()];
        assert_eq!(refresher.tick(Instant::now()), 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.targets()[0].addr().to_string() != "10.0.0.2:80" {
            assert!(Instant::now() < deadline, "the pool was not refreshed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            lookups.load(Ordering::SeqCst) >= 2,
            "once at build, once refreshed"
        );
    }
}
