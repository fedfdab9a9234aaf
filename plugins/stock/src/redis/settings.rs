//! What identifies one Redis server and how to reach it.

use std::fmt;
use std::time::Duration;

pub use crate::consumers::Secret;

/// The connection settings of one Redis server. Two plugin instances with equal
/// settings share one client (see [`RedisPools`](super::RedisPools)).
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RedisSettings {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name (Redis 6+), if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Secret>,
    /// Database number (`SELECT`).
    pub database: i64,
    /// The bound on every command, and on a connection attempt.
    pub timeout: Duration,
}

impl RedisSettings {
    /// Settings for `host:port`, database 0, no credentials and Kong's default timeout
    /// (2 seconds).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        RedisSettings {
            host: host.into(),
            port,
            username: None,
            password: None,
            database: 0,
            timeout: Duration::from_millis(2_000),
        }
    }

    /// The same settings with an ACL user and password.
    pub fn with_credentials(mut self, username: Option<String>, password: Option<Secret>) -> Self {
        self.username = username;
        self.password = password;
        self
    }

    /// The same settings with database `database`.
    pub fn with_database(mut self, database: i64) -> Self {
        self.database = database;
        self
    }

    /// The same settings with a command timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The driver's connection info.
    pub(crate) fn connection_info(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        use redis::IntoConnectionInfo;
        let mut redis = redis::RedisConnectionInfo::default()
            .set_db(self.database)
            .set_skip_set_lib_name();
        if let Some(user) = &self.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password.expose());
        }
        let addr = redis::ConnectionAddr::Tcp(self.host.clone(), self.port);
        Ok(addr.into_connection_info()?.set_redis_settings(redis))
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl fmt::Display for RedisSettings {
    /// `host:port/db`: what logs name a Redis by (never the credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_redacted() {
        let s = RedisSettings::new("cache", 6379)
            .with_credentials(Some("app".into()), Some(Secret::new("hunter2")));
        let shown = format!("{s:?} {s}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(s.to_string(), "cache:6379/0");
    }
}
