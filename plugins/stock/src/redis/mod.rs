//! The Redis connection layer shared by the stock plugins (and any plugin that wants
//! one): `rate-limiting` with `policy: redis` uses it, and so can a cache or a session
//! store.
//!
//! - **Shared.** [`RedisPools`] maps connection settings to one [`RedisClient`]; every
//!   plugin instance configured with the same settings gets the same client, so the
//!   whole process holds one multiplexed connection per distinct Redis. The gateway
//!   offers one process-wide [`RedisPools`] as a shared service
//!   ([`BuildContext::service`](crate::BuildContext::service)); a plugin asks it for a
//!   client with [`RedisPools::client`]. The map holds at most [`RedisPools::cap`]
//!   distinct settings at once (default [`DEFAULT_MAX_CLIENTS`]); a client is freed
//!   when the last instance using it is dropped (after a reload, say).
//! - **Lazy.** Building a client does no I/O (`pingway validate` stays offline); the
//!   first command spawns the connection's task on the plugin
//!   [`Lifecycle`](crate::lifecycle::Lifecycle) runtime, never blocking a request thread.
//! - **Bounded.** Every command, including the wait for the first connection, ends
//!   within the configured timeout. A failed or timed-out command marks Redis down:
//!   while it is down, commands fail at once (no request waits on a dead Redis) and
//!   the connection task retries a connect (then a `PING`) with exponential backoff
//!   from [`MIN_BACKOFF`] to [`MAX_BACKOFF`]. Counting resumes by itself when Redis is
//!   back, without a restart.
//! - **Secret.** The password is never logged and is redacted in `Debug` output.
//!
//! Only a single Redis server over plain TCP is supported: Sentinel, Cluster and TLS
//! settings are refused when the configuration is loaded.

mod client;
mod pools;
mod settings;
/// A real `redis-server` for tests (this crate's, and the gateway's end-to-end tests
/// through the `test-redis` feature).
#[cfg(any(test, feature = "test-redis"))]
pub mod test_server;

pub use client::{RedisClient, RedisError, MAX_BACKOFF, MIN_BACKOFF};
pub use pools::{PoolError, RedisPools, TooManyRedisClients, DEFAULT_MAX_CLIENTS};
pub use settings::{RedisSettings, Secret};

/// The `redis` crate, re-exported so that a plugin using [`RedisClient::run`] builds
/// its commands with the same version.
pub use redis as driver;
