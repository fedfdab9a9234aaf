//! Kong's `rate-limiting` configuration, and its validation into what the plugin runs on.

use std::borrow::Cow;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use super::period::Period;
use crate::redis::{RedisSettings, Secret};
use crate::registry::ConfigError;

/// Kong's `rate-limiting` configuration. Every Kong field is accepted, so a KongPlugin's
/// `config:` block works unchanged; only the `local` policy is implemented.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingConfig {
    /// Requests allowed per second (UTC-aligned window).
    pub second: Option<u64>,
    /// Requests allowed per minute.
    pub minute: Option<u64>,
    /// Requests allowed per hour.
    pub hour: Option<u64>,
    /// Requests allowed per day (midnight to midnight UTC).
    pub day: Option<u64>,
    /// Requests allowed per calendar month (UTC).
    pub month: Option<u64>,
    /// Requests allowed per calendar year (UTC).
    pub year: Option<u64>,
    /// What requests are counted by; when it cannot be determined, the client IP is used.
    #[serde(default)]
    pub limit_by: LimitBy,
    /// The request header whose value identifies the client (with `limit_by: header`).
    pub header_name: Option<String>,
    /// The path counted (with `limit_by: path`); requests to other paths are counted by
    /// client IP.
    pub path: Option<String>,
    /// Where counters are kept: `local` (this gateway's memory, the default) or `redis`
    /// (shared by every gateway using the same Redis).
    #[serde(default)]
    pub policy: Policy,
    /// With `policy: redis`: whether to let requests through (without rate-limit
    /// headers) when Redis fails or is down (true, the default), or to answer 500
    /// (false). The `local` store cannot fail.
    #[serde(default = "default_true")]
    pub fault_tolerant: bool,
    /// Pingway extension (Kong Enterprise's `window_type`): `fixed` (default, Kong's
    /// calendar windows) or `sliding` (the previous window's count, weighted by how
    /// much of it the last period still covers, plus the current window's).
    #[serde(default, alias = "window_type")]
    pub window: WindowKind,
    /// Whether to leave out the `X-RateLimit-*`, `RateLimit-*` and `Retry-After` headers.
    #[serde(default)]
    pub hide_client_headers: bool,
    /// Status code of the answer to a limited request (default 429).
    #[serde(default = "default_error_code")]
    pub error_code: u16,
    /// Message of the answer to a limited request.
    #[serde(default = "default_error_message")]
    pub error_message: String,
    /// With `policy: redis`: -1 (the default) or 0 checks and counts every request in
    /// Redis as it comes (exact across gateways); a positive number of seconds counts
    /// locally and synchronizes with Redis that often (faster, may over-admit: see the
    /// docs). As in Kong, any value but -1 is refused unless `policy` is `redis`.
    pub sync_rate: Option<f64>,
    /// Pingway extension (not a Kong field): how many clients (distinct identifiers)
    /// each configured period tracks at most in its current window; a new client
    /// beyond it evicts another's counter. Default 100,000.
    #[schemars(range(min = 1))]
    pub max_tracked_keys: Option<usize>,
    /// Redis connection settings (Kong 3.6+ layout), required with `policy: redis`.
    pub redis: Option<RedisConfig>,
    /// Redis host (Kong's older flat layout of `redis.host`).
    pub redis_host: Option<String>,
    /// Redis port (flat layout of the same `redis` field).
    pub redis_port: Option<u16>,
    /// Redis username (flat layout of the same `redis` field).
    pub redis_username: Option<String>,
    /// Redis password (flat layout of the same `redis` field).
    pub redis_password: Option<Password>,
    /// Redis database number (flat layout of the same `redis` field).
    pub redis_database: Option<i64>,
    /// Redis timeout in milliseconds (flat layout of the same `redis` field).
    pub redis_timeout: Option<u64>,
    /// Whether to use TLS to Redis (flat layout of the same `redis` field).
    pub redis_ssl: Option<bool>,
    /// Whether to verify Redis's certificate (flat layout of the same `redis` field).
    pub redis_ssl_verify: Option<bool>,
    /// SNI name for Redis (flat layout of the same `redis` field).
    pub redis_server_name: Option<String>,
}

/// What a `rate-limiting` instance counts requests by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LimitBy {
    /// The authenticated consumer, else the credential, else the client IP (Kong's default).
    #[default]
    Consumer,
    /// The credential that authenticated the request, else the client IP.
    Credential,
    /// The client IP address.
    Ip,
    /// The upstream the route sends to (Kong's service), shared by every client.
    Service,
    /// The value of the `header_name` request header, else the client IP.
    Header,
    /// The request path when it equals `path`, else the client IP.
    Path,
    /// The matched route, shared by every client.
    Route,
}

/// Where counters are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// In this gateway process's memory.
    #[default]
    Local,
    /// In Kong's database (not available in Pingway).
    Cluster,
    /// In Redis, shared by every gateway using it.
    Redis,
}

/// Kong's `redis` sub-object. A single Redis server over plain TCP is supported;
/// Sentinel, Cluster and TLS fields are refused with `policy: redis` (and ignored with
/// `local`, so Kong configurations load).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis host.
    pub host: Option<String>,
    /// Redis port (default 6379).
    pub port: Option<u16>,
    /// Bound on every Redis command and connection attempt, in milliseconds (default
    /// 2000).
    pub timeout: Option<u64>,
    /// Kong's connect timeout (ms); when set, the bound is the smallest of the timeouts.
    pub connect_timeout: Option<u64>,
    /// Kong's send timeout (ms); when set, the bound is the smallest of the timeouts.
    pub send_timeout: Option<u64>,
    /// Kong's read timeout (ms); when set, the bound is the smallest of the timeouts.
    pub read_timeout: Option<u64>,
    /// ACL username (Redis 6+).
    pub username: Option<String>,
    /// Password. Never logged.
    pub password: Option<Password>,
    /// Database number (default 0).
    pub database: Option<i64>,
    /// Whether to use TLS. Not supported: `true` is refused with `policy: redis`.
    pub ssl: Option<bool>,
    /// Whether to verify the server certificate (only meaningful with `ssl`).
    pub ssl_verify: Option<bool>,
    /// SNI name (only meaningful with `ssl`).
    pub server_name: Option<String>,
    /// Kong's keepalive pool size: accepted, unused (one multiplexed connection is
    /// shared per Redis).
    pub keepalive_pool_size: Option<u64>,
    /// Kong's keepalive backlog: accepted, unused.
    pub keepalive_backlog: Option<u64>,
    /// Sentinel master name. Not supported: refused with `policy: redis`.
    pub sentinel_master: Option<String>,
    /// Sentinel role. Not supported.
    pub sentinel_role: Option<String>,
    /// Sentinel nodes. Not supported.
    pub sentinel_nodes: Option<Vec<serde_json::Value>>,
    /// Sentinel username. Not supported.
    pub sentinel_username: Option<String>,
    /// Sentinel password. Not supported.
    pub sentinel_password: Option<Password>,
    /// Cluster nodes. Not supported: refused with `policy: redis`.
    pub cluster_nodes: Option<Vec<serde_json::Value>>,
    /// Cluster redirections. Not supported.
    pub cluster_max_redirections: Option<u64>,
    /// Whether Redis is behind a proxy (Kong). Accepted, unused.
    pub connection_is_proxied: Option<bool>,
}

/// A password from the configuration: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// How a period's limit is applied over time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    /// Kong's fixed calendar windows: the count drops to zero when a window ends.
    #[default]
    Fixed,
    /// A sliding window: the current window's count plus the previous window's,
    /// weighted by the share of the previous window the last period still covers.
    Sliding,
}

fn default_true() -> bool {
    true
}

fn default_error_code() -> u16 {
    429
}

fn default_error_message() -> String {
    DEFAULT_MESSAGE.to_string()
}

const DEFAULT_MESSAGE: &str = "API rate limit exceeded";

/// Kong's `SYNC_RATE_REALTIME`: the default `sync_rate`, meaning no periodic sync.
const SYNC_RATE_OFF: f64 = -1.0;

/// A validated configuration, in the form the plugin uses per request.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The configured periods and limits, shortest period first.
    pub limits: Vec<(Period, u64)>,
    pub limit_by: LimitBy,
    /// Set when `limit_by` is `header`.
    pub header_name: Option<HeaderName>,
    /// Set when `limit_by` is `path`.
    pub path: Option<String>,
    pub hide_client_headers: bool,
    pub error_code: StatusCode,
    pub error_message: Cow<'static, str>,
    /// The most identifiers each period tracks (`max_tracked_keys`).
    pub max_keys: usize,
    /// Fixed or sliding windows.
    pub window: WindowKind,
    /// Set when `policy` is `redis`.
    pub redis: Option<RedisStore>,
}

/// The validated `policy: redis` settings.
#[derive(Debug, Clone)]
pub(crate) struct RedisStore {
    pub settings: RedisSettings,
    pub fault_tolerant: bool,
    /// `None`: every request is checked in Redis; `Some(interval)`: counted locally and
    /// synchronized this often.
    pub sync_every: Option<Duration>,
}

/// Collects every problem before failing, so one run reports them all.
#[derive(Default)]
struct Problems(Option<ConfigError>);

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0 = Some(match self.0.take() {
            None => ConfigError::new(field, message),
            Some(e) => e.and(field, message),
        });
    }
}

impl RateLimitingConfig {
    /// The limit configured for `period`.
    fn limit(&self, period: Period) -> Option<u64> {
        match period {
            Period::Second => self.second,
            Period::Minute => self.minute,
            Period::Hour => self.hour,
            Period::Day => self.day,
            Period::Month => self.month,
            Period::Year => self.year,
        }
    }

    /// Checks what serde cannot and converts to [`Settings`].
    pub(crate) fn validate(self) -> Result<Settings, ConfigError> {
        let mut problems = Problems::default();

        let configured: Vec<(Period, u64)> = Period::ALL
            .iter()
            .filter_map(|&p| self.limit(p).map(|l| (p, l)))
            .collect();
        if configured.is_empty() {
            problems.add(
                "",
                "at least one of these fields must be non-empty: \
                 'second', 'minute', 'hour', 'day', 'month', 'year'",
            );
        }
        for &(p, limit) in &configured {
            if limit == 0 {
                problems.add(p.name(), "must be greater than 0");
            }
        }
        // A longer period may not allow fewer requests than a shorter one: compare each
        // with the highest limit among the shorter periods.
        let mut highest: Option<(Period, u64)> = None;
        for &(p, limit) in &configured {
            match highest {
                Some((shorter, max)) if limit < max && limit > 0 => problems.add(
                    p.name(),
                    format!(
                        "the limit for {p} ({limit}) must not be lower than the limit \
                         for {shorter} ({max})"
                    ),
                ),
                Some((_, max)) if limit <= max => {}
                _ => highest = Some((p, limit)),
            }
        }

        let header_name = match (self.limit_by, &self.header_name) {
            (LimitBy::Header, None) => {
                problems.add("header_name", "required when limit_by is 'header'");
                None
            }
            (LimitBy::Header, Some(name)) => match HeaderName::try_from(name.as_str()) {
                Ok(h) => Some(h),
                Err(_) => {
                    problems.add("header_name", format!("not a valid header name: {name:?}"));
                    None
                }
            },
            _ => None,
        };

        let path = match (self.limit_by, &self.path) {
            (LimitBy::Path, None) => {
                problems.add("path", "required when limit_by is 'path'");
                None
            }
            (LimitBy::Path, Some(path)) if !path.starts_with('/') => {
                problems.add("path", format!("should start with: / (got {path:?})"));
                None
            }
            (LimitBy::Path, Some(path)) => Some(path.clone()),
            _ => None,
        };

        let redis = match self.policy {
            Policy::Local => None,
            Policy::Redis => self.redis_store(&mut problems),
            Policy::Cluster => {
                problems.add(
                    "policy",
                    "policy cluster is not supported (it needs Kong's database); use local or redis",
                );
                None
            }
        };

        let max_keys = match self.max_tracked_keys {
            None => super::limiter::DEFAULT_MAX_KEYS,
            Some(0) => {
                problems.add("max_tracked_keys", "must be greater than 0");
                1
            }
            Some(n) => n,
        };

        // Kong's schema check: `sync_rate` other than -1 (its default, "off") is refused
        // unless the policy is redis, rather than silently ignored.
        if let Some(rate) = self.sync_rate {
            if self.policy != Policy::Redis && rate != SYNC_RATE_OFF {
                problems.add(
                    "sync_rate",
                    "sync_rate can only be used with the redis policy",
                );
            } else if !(rate == SYNC_RATE_OFF || rate >= 0.0) || !rate.is_finite() {
                problems.add(
                    "sync_rate",
                    format!("must be -1 (every request), 0 (the same) or a positive number of seconds (got {rate})"),
                );
            } else if rate > 0.0 && self.window == WindowKind::Sliding {
                problems.add(
                    "sync_rate",
                    "a positive sync_rate is not supported with window: sliding; use -1",
                );
            }
        }

        let error_code = match StatusCode::from_u16(self.error_code) {
            Ok(s) if (100..=599).contains(&s.as_u16()) => s,
            _ => {
                problems.add(
                    "error_code",
                    format!("{} is not an HTTP status code", self.error_code),
                );
                StatusCode::TOO_MANY_REQUESTS
            }
        };

        if let Some(e) = problems.0 {
            return Err(e);
        }
        let error_message = if self.error_message == DEFAULT_MESSAGE {
            Cow::Borrowed(DEFAULT_MESSAGE)
        } else {
            Cow::Owned(self.error_message)
        };
        Ok(Settings {
            limits: configured,
            limit_by: self.limit_by,
            header_name,
            path,
            hide_client_headers: self.hide_client_headers,
            error_code,
            error_message,
            max_keys,
            window: self.window,
            redis,
        })
    }

    /// The Redis settings of `policy: redis`, from the `redis` block or Kong's flat
    /// `redis_*` fields (a field set in both must agree). Unsupported deployments
    /// (TLS, Sentinel, Cluster) are refused by name.
    fn redis_store(&self, problems: &mut Problems) -> Option<RedisStore> {
        let empty = RedisConfig::default();
        let r = self.redis.as_ref().unwrap_or(&empty);
        fn pick<T: Clone + PartialEq>(
            problems: &mut Problems,
            field: &str,
            nested: &Option<T>,
            flat: &Option<T>,
        ) -> Option<T> {
            match (nested, flat) {
                (Some(a), Some(b)) if a != b => {
                    problems.add(
                        &format!("redis_{field}"),
                        format!("conflicts with redis.{field}; set only one"),
                    );
                    Some(a.clone())
                }
                (Some(a), _) => Some(a.clone()),
                (None, b) => b.clone(),
            }
        }
        let host = pick(problems, "host", &r.host, &self.redis_host);
        let port = pick(problems, "port", &r.port, &self.redis_port);
        let username = pick(problems, "username", &r.username, &self.redis_username);
        let password = pick(problems, "password", &r.password, &self.redis_password);
        let database = pick(problems, "database", &r.database, &self.redis_database);
        let timeout = pick(problems, "timeout", &r.timeout, &self.redis_timeout);
        let ssl = pick(problems, "ssl", &r.ssl, &self.redis_ssl);

        let mut ok = true;
        let mut refuse = |field: &str, message: &str| {
            problems.add(field, message);
            ok = false;
        };
        let host = match host {
            Some(h) if !h.trim().is_empty() => h,
            _ => {
                refuse("redis.host", "required when policy is 'redis'");
                String::new()
            }
        };
        if port == Some(0) {
            refuse("redis.port", "must be between 1 and 65535");
        }
        if database.is_some_and(|d| d < 0) {
            refuse("redis.database", "must be 0 or more");
        }
        if ssl == Some(true) {
            refuse(
                "redis.ssl",
                "TLS to Redis is not supported by Pingway yet; use a plain TCP Redis \
                 (or a local TLS-terminating proxy)",
            );
        }
        let unsupported = [
            ("redis.sentinel_master", r.sentinel_master.is_some()),
            ("redis.sentinel_role", r.sentinel_role.is_some()),
            (
                "redis.sentinel_nodes",
                r.sentinel_nodes.as_ref().is_some_and(|n| !n.is_empty()),
            ),
            ("redis.sentinel_username", r.sentinel_username.is_some()),
            ("redis.sentinel_password", r.sentinel_password.is_some()),
        ];
        for (field, set) in unsupported {
            if set {
                refuse(
                    field,
                    "Redis Sentinel is not supported by Pingway yet; use a single Redis host",
                );
            }
        }
        if r.cluster_nodes.as_ref().is_some_and(|n| !n.is_empty()) {
            refuse(
                "redis.cluster_nodes",
                "Redis Cluster is not supported by Pingway yet; use a single Redis host",
            );
        }
        let timeouts = [timeout, r.connect_timeout, r.send_timeout, r.read_timeout];
        let millis = timeouts
            .iter()
            .flatten()
            .copied()
            .min()
            .unwrap_or(DEFAULT_REDIS_TIMEOUT_MS);
        if millis == 0 {
            refuse("redis.timeout", "must be greater than 0");
        }
        let sync_every = match self.sync_rate {
            Some(rate) if rate > 0.0 && rate.is_finite() => Some(Duration::from_secs_f64(rate)),
            _ => None,
        };
        if !ok {
            return None;
        }
        let settings = RedisSettings::new(host, port.unwrap_or(6379))
            .with_credentials(username, password.map(|p| Secret::new(p.0)))
            .with_database(database.unwrap_or(0))
            .with_timeout(Duration::from_millis(millis));
        Some(RedisStore {
            settings,
            fault_tolerant: self.fault_tolerant,
            sync_every,
        })
    }
}

/// Kong's default `redis.timeout`, in milliseconds.
const DEFAULT_REDIS_TIMEOUT_MS: u64 = 2_000;
