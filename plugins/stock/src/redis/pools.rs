//! The process's Redis clients, one per distinct settings, bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::client::{Inner, RedisClient};
use super::settings::RedisSettings;
use crate::lifecycle::Lifecycle;

/// How many distinct Redis settings (servers, databases, credentials, timeouts) one
/// process connects to at most, by default.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// More distinct Redis settings are in use than the cap allows.
#[derive(Debug, thiserror::Error)]
#[error(
    "too many distinct redis connection settings in use (at most {cap}); \
     share one redis (same host, port, database, credentials and timeout) between plugins"
)]
pub struct TooManyRedisClients {
    /// The cap.
    pub cap: usize,
}

/// The shared Redis clients of a process, keyed by their settings: instances configured
/// with the same settings get the same [`RedisClient`] and so share one connection.
/// The gateway offers one as a shared service; [`RedisPools::process`] is that one.
pub struct RedisPools {
    clients: Mutex<HashMap<RedisSettings, Weak<Inner>>>,
    cap: usize,
}

impl std::fmt::Debug for RedisPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPools")
            .field("live", &self.live())
            .field("cap", &self.cap)
            .finish()
    }
}

impl RedisPools {
    /// An empty set holding at most `cap` distinct settings at once.
    pub fn new(cap: usize) -> Self {
        RedisPools {
            clients: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    /// The process-wide set (cap [`DEFAULT_MAX_CLIENTS`]): what the gateway offers to
    /// every configuration it loads, so connections survive reloads.
    pub fn process() -> Arc<RedisPools> {
        static PROCESS: OnceLock<Arc<RedisPools>> = OnceLock::new();
        Arc::clone(PROCESS.get_or_init(|| Arc::new(RedisPools::new(DEFAULT_MAX_CLIENTS))))
    }

    /// The most distinct settings held at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// How many clients are in use.
    pub fn live(&self) -> usize {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.values().filter(|w| w.strong_count() > 0).count()
    }

    /// The shared client for `settings`, creating it (without I/O) if no instance uses
    /// one yet. Its connection task runs on `lifecycle` (the process's by default).
    /// Fails when `cap` other settings are in use, or if the settings cannot form a
    /// connection address.
    pub fn client(
        &self,
        settings: &RedisSettings,
        lifecycle: Option<Lifecycle>,
    ) -> Result<RedisClient, PoolError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients.get(settings).and_then(RedisClient::upgrade) {
            return Ok(client);
        }
        // Forget clients no instance uses any more before counting.
        clients.retain(|_, w| w.strong_count() > 0);
        if clients.len() >= self.cap {
            return Err(PoolError::TooMany(TooManyRedisClients { cap: self.cap }));
        }
        let client = RedisClient::new(settings.clone(), lifecycle).map_err(PoolError::Invalid)?;
        clients.insert(settings.clone(), client.downgrade());
        Ok(client)
    }
}

/// Why no client could be handed out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The cap on distinct settings is reached.
    #[error(transparent)]
    TooMany(#[from] TooManyRedisClients),
    /// The settings do not form a valid connection.
    #[error("invalid redis settings: {0}")]
    Invalid(redis::RedisError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_settings_share_a_client_and_the_map_is_bounded() {
        let pools = RedisPools::new(2);
        let a = RedisSettings::new("127.0.0.1", 1);
        let b = RedisSettings::new("127.0.0.1", 2);
        let c = RedisSettings::new("127.0.0.1", 3);
        let a1 = pools.client(&a, None).expect("first");
        let a2 = pools.client(&a, None).expect("same");
        assert!(Arc::ptr_eq(
            &a1.downgrade().upgrade().expect("live"),
            &a2.downgrade().upgrade().expect("live")
        ));
        let b1 = pools.client(&b, None).expect("second");
        assert_eq!(pools.live(), 2);
        assert!(matches!(pools.client(&c, None), Err(PoolError::TooMany(_))));
        // When no instance uses a client any more, its slot is free again.
        drop(b1);
        let _c1 = pools.client(&c, None).expect("slot freed");
        assert_eq!(pools.live(), 2);
        drop((a1, a2));
    }
}
