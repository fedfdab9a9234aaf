//! One Redis server: a multiplexed connection, the task that (re)connects it, and a
//! circuit that makes commands fail at once while Redis is known to be down.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::time::Instant;

use super::settings::RedisSettings;
use crate::lifecycle::Lifecycle;

/// The first retry after a failure waits this long; each failed retry doubles it.
pub const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Retries never wait longer than this, so counting resumes at most about a second
/// after Redis is back.
pub const MAX_BACKOFF: Duration = Duration::from_millis(1_000);

/// Why a Redis command did not give an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// Redis is known to be down (a recent command or connect failed); the connection
    /// task is retrying in the background and the command was not sent.
    #[error("redis {0} is unavailable (reconnecting in the background)")]
    Unavailable(String),
    /// No answer within the configured timeout.
    #[error("redis {server} did not answer within {timeout:?}")]
    Timeout {
        /// `host:port/db`.
        server: String,
        /// The configured bound.
        timeout: Duration,
    },
    /// The connection failed while the command was under way.
    #[error("redis {server}: connection failed: {source}")]
    Connection {
        /// `host:port/db`.
        server: String,
        /// The driver's error.
        source: redis::RedisError,
    },
    /// Redis answered with an error (a wrong type, a script error...).
    #[error("redis {server} answered with an error: {source}")]
    Command {
        /// `host:port/db`.
        server: String,
        /// The driver's error.
        source: redis::RedisError,
    },
    /// No runtime thread could be started for the connection task.
    #[error("no runtime is available for the redis connection")]
    NoRuntime,
}

/// The state of the link to Redis, published by the connection task.
#[derive(Clone)]
enum Link {
    /// Not connected yet: the first connection is under way. Commands wait for it,
    /// within their timeout.
    Starting,
    /// Connected; the number tells one connection from the next, so that a failure
    /// seen on an old connection does not mark a newer one down.
    Up(MultiplexedConnection, u64),
    /// Known down: commands fail at once until the task has reconnected.
    Down,
}

pub(crate) struct Inner {
    settings: RedisSettings,
    /// `host:port/db`, for logs and errors.
    server: String,
    client: redis::Client,
    lifecycle: Option<Lifecycle>,
    link: watch::Sender<Link>,
    started: AtomicBool,
}

/// A shared handle on one Redis server (cheap to clone). Obtain it from
/// [`RedisPools::client`](super::RedisPools::client) so that instances with the same
/// settings share the connection.
#[derive(Clone)]
pub struct RedisClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl RedisClient {
    /// A client for `settings` whose connection task will run on `lifecycle`'s runtime.
    /// Does no I/O: the first command connects.
    pub(crate) fn new(
        settings: RedisSettings,
        lifecycle: Option<Lifecycle>,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(settings.connection_info()?)?;
        let (link, _) = watch::channel(Link::Starting);
        Ok(RedisClient {
            inner: Arc::new(Inner {
                server: settings.to_string(),
                settings,
                client,
                lifecycle,
                link,
                started: AtomicBool::new(false),
            }),
        })
    }

    /// The settings this client connects with.
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<RedisClient> {
        weak.upgrade().map(|inner| RedisClient { inner })
    }

    /// Whether the last connection attempt or command succeeded (false before the first
    /// connection).
    pub fn is_up(&self) -> bool {
        matches!(*self.inner.link.borrow(), Link::Up(..))
    }

    /// Runs `command` on the shared connection, bounded by the configured timeout
    /// (which includes the wait for a first connection). A timeout or a connection
    /// failure marks Redis down, so that later commands fail at once until the
    /// background task has reconnected.
    ///
    /// ```no_run
    /// # async fn f(client: pingway_plugins::redis::RedisClient) {
    /// let n: Result<i64, _> = client
    ///     .run(|mut c| async move { pingway_plugins::redis::driver::cmd("INCR").arg("k").query_async(&mut c).await })
    ///     .await;
    /// # }
    /// ```
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, RedisError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = Instant::now() + self.inner.settings.timeout;
        let (conn, generation) = self.connection(deadline).await?;
        match tokio::time::timeout_at(deadline, command(conn)).await {
            Ok(Ok(v)) => Ok(v),
            // The driver's own response timeout (the same bound) may fire first.
            Ok(Err(e)) if e.is_timeout() => {
                self.mark_down(generation, "a command timed out");
                Err(self.timeout_error())
            }
            Ok(Err(e)) if is_link_failure(&e) => {
                self.mark_down(generation, &e.to_string());
                Err(RedisError::Connection {
                    server: self.inner.server.clone(),
                    source: e,
                })
            }
            Ok(Err(e)) => Err(RedisError::Command {
                server: self.inner.server.clone(),
                source: e,
            }),
            Err(_) => {
                self.mark_down(generation, "a command timed out");
                Err(self.timeout_error())
            }
        }
    }

    fn timeout_error(&self) -> RedisError {
        RedisError::Timeout {
            server: self.inner.server.clone(),
            timeout: self.inner.settings.timeout,
        }
    }

    /// The current connection, waiting (until `deadline`) only for the very first one.
    async fn connection(
        &self,
        deadline: Instant,
    ) -> Result<(MultiplexedConnection, u64), RedisError> {
        self.ensure_started()?;
        let current = self.inner.link.borrow().clone();
        match current {
            Link::Up(conn, generation) => Ok((conn, generation)),
            Link::Down => Err(RedisError::Unavailable(self.inner.server.clone())),
            Link::Starting => {
                let mut rx = self.inner.link.subscribe();
                let waited = tokio::time::timeout_at(
                    deadline,
                    rx.wait_for(|l| !matches!(l, Link::Starting)),
                )
                .await;
                match waited {
                    Ok(Ok(link)) => match &*link {
                        Link::Up(conn, generation) => Ok((conn.clone(), *generation)),
                        _ => Err(RedisError::Unavailable(self.inner.server.clone())),
                    },
                    Ok(Err(_)) => Err(RedisError::Unavailable(self.inner.server.clone())),
                    Err(_) => Err(self.timeout_error()),
                }
            }
        }
    }

    /// Marks connection `generation` down and wakes the connection task, unless a newer
    /// connection has replaced it already.
    fn mark_down(&self, generation: u64, why: &str) {
        let changed = self.inner.link.send_if_modified(|link| match link {
            Link::Up(_, g) if *g == generation => {
                *link = Link::Down;
                true
            }
            _ => false,
        });
        if changed {
            log::warn!(
                "redis {}: {why}; failing fast and reconnecting in the background",
                self.inner.server
            );
        }
    }

    /// Spawns the connection task on first use.
    fn ensure_started(&self) -> Result<(), RedisError> {
        if self.inner.started.load(Ordering::Acquire) {
            return Ok(());
        }
        if self
            .inner
            .started
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Ok(());
        }
        let Some(lifecycle) = self.inner.lifecycle.clone().or_else(Lifecycle::process) else {
            self.inner.link.send_replace(Link::Down);
            return Err(RedisError::NoRuntime);
        };
        let weak = Arc::downgrade(&self.inner);
        let stopping = lifecycle.stopping();
        lifecycle.spawn(async move {
            tokio::select! {
                () = keep_connected(weak) => {}
                () = stopping => {}
            }
        });
        Ok(())
    }
}

/// Whether `e` means the connection itself is broken (rather than a command refused).
fn is_link_failure(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

/// Connects, then reconnects whenever a command marks the link down, with exponential
/// backoff between failed attempts. Holds the client only weakly: when the last plugin
/// instance using it is dropped, the task ends (and the connection with it).
async fn keep_connected(weak: Weak<Inner>) {
    let mut backoff = MIN_BACKOFF;
    let mut generation = 0u64;
    let mut was_down = false;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        match connect(&inner).await {
            Ok(conn) => {
                generation += 1;
                if was_down {
                    log::info!("redis {}: reconnected", inner.server);
                }
                was_down = false;
                backoff = MIN_BACKOFF;
                let mut rx = inner.link.subscribe();
                inner.link.send_replace(Link::Up(conn, generation));
                drop(inner);
                // Wait until a command marks this connection down (or the client is
                // dropped, which closes the channel).
                if rx.wait_for(|l| matches!(l, Link::Down)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                if !was_down {
                    log::warn!(
                        "redis {}: cannot connect ({e}); retrying with backoff",
                        inner.server
                    );
                }
                was_down = true;
                inner.link.send_replace(Link::Down);
                drop(inner);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One connection attempt and a `PING`, together bounded by the timeout.
async fn connect(inner: &Inner) -> Result<MultiplexedConnection, String> {
    let timeout = inner.settings.timeout;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let attempt = async {
        let mut conn = inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING")
            .query_async::<redis::Value>(&mut conn)
            .await
            .map(|_| conn)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::test_server::TestRedis;

    async fn ping(client: &RedisClient) -> Result<(), RedisError> {
        client
            .run(
                |mut c| async move { redis::cmd("PING").query_async::<redis::Value>(&mut c).await },
            )
            .await
            .map(drop)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_redis_costs_one_timeout_then_fails_fast() {
        let redis = TestRedis::start();
        let settings =
            RedisSettings::new("127.0.0.1", redis.port).with_timeout(Duration::from_millis(300));
        let client = RedisClient::new(settings, None).expect("client");
        ping(&client).await.expect("redis up");
        assert!(client.is_up());

        // Frozen: the connection stays open but nothing answers. The command in
        // flight ends at the timeout and opens the circuit...
        redis.freeze(true);
        let e = ping(&client).await.expect_err("no answer");
        assert!(matches!(e, RedisError::Timeout { .. }), "{e}");
        // ...so the next ones are not sent at all: they fail at once, as unavailable.
        for _ in 0..3 {
            let e = ping(&client).await.expect_err("circuit open");
            assert!(matches!(e, RedisError::Unavailable(_)), "{e}");
        }

        // Answering again: the background task's reconnect (connect + PING) closes the
        // circuit by itself.
        redis.freeze(false);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while ping(&client).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "never reconnected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(client.is_up());
    }

    #[tokio::test]
    async fn nothing_listening_fails_within_the_timeout_and_is_reported_unavailable() {
        // A port nobody listens on: the first connect is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let client = RedisClient::new(RedisSettings::new("127.0.0.1", port), None).expect("client");
        let e = ping(&client).await.expect_err("nothing there");
        assert!(matches!(e, RedisError::Unavailable(_)), "{e}");
        assert!(!client.is_up());
    }
}
