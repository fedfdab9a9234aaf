//! Kong's `rate-limiting` configuration, and its validation into what the plugin runs on.

use std::borrow::Cow;

use http::{HeaderName, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use super::period::Period;
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
    /// Where counters are kept. Only `local` (in this gateway's memory) is supported.
    #[serde(default)]
    pub policy: Policy,
    /// Whether to let requests through when the counter store fails. The `local`
    /// store cannot fail, so this has no effect yet.
    #[serde(default = "default_true")]
    pub fault_tolerant: bool,
    /// Whether to leave out the `X-RateLimit-*`, `RateLimit-*` and `Retry-After` headers.
    #[serde(default)]
    pub hide_client_headers: bool,
    /// Status code of the answer to a limited request (default 429).
    #[serde(default = "default_error_code")]
    pub error_code: u16,
    /// Message of the answer to a limited request.
    #[serde(default = "default_error_message")]
    pub error_message: String,
    /// How often counters are synchronized with Redis, in seconds; -1 (the default)
    /// means never. As in Kong, any other value is refused unless `policy` is `redis`.
    pub sync_rate: Option<f64>,
    /// Pingway extension (not a Kong field): how many clients (distinct identifiers)
    /// each configured period tracks at most in its current window; a new client
    /// beyond it evicts another's counter. Default 100,000.
    #[schemars(range(min = 1))]
    pub max_tracked_keys: Option<usize>,
    /// Redis connection settings (Kong 3.6+ layout). Accepted; unused with `local`.
    pub redis: Option<RedisConfig>,
    /// Redis host (Kong's older flat layout). Accepted; unused with `local`.
    pub redis_host: Option<String>,
    /// Redis port (flat layout). Accepted; unused with `local`.
    pub redis_port: Option<u16>,
    /// Redis username (flat layout). Accepted; unused with `local`.
    pub redis_username: Option<String>,
    /// Redis password (flat layout). Accepted; unused with `local`.
    pub redis_password: Option<String>,
    /// Redis database number (flat layout). Accepted; unused with `local`.
    pub redis_database: Option<i64>,
    /// Redis timeout in milliseconds (flat layout). Accepted; unused with `local`.
    pub redis_timeout: Option<u64>,
    /// Whether to use TLS to Redis (flat layout). Accepted; unused with `local`.
    pub redis_ssl: Option<bool>,
    /// Whether to verify Redis's certificate (flat layout). Accepted; unused with `local`.
    pub redis_ssl_verify: Option<bool>,
    /// SNI name for Redis (flat layout). Accepted; unused with `local`.
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
    /// In Redis (not supported yet).
    Redis,
}

/// Kong's `redis` sub-object. Accepted so Kong configurations load; unused with the
/// `local` policy.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// Redis host.
    pub host: Option<String>,
    /// Redis port.
    pub port: Option<u16>,
    /// Connection timeout in milliseconds.
    pub timeout: Option<u64>,
    /// ACL username.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Database number.
    pub database: Option<i64>,
    /// Whether to use TLS.
    pub ssl: Option<bool>,
    /// Whether to verify the server certificate.
    pub ssl_verify: Option<bool>,
    /// SNI name.
    pub server_name: Option<String>,
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

        match self.policy {
            Policy::Local => {}
            Policy::Redis => {
                problems.add("policy", "policy redis is not supported yet; use local");
            }
            Policy::Cluster => problems.add(
                "policy",
                "policy cluster is not supported (it needs Kong's database); use local",
            ),
        }

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
        })
    }
}
