//! Configuration of an upstream's resilience: the retry policy (Envoy's and Istio's
//! `retry_on`, per-try timeout, backoff), the retry budget (Linkerd's), outlier ejection
//! (Envoy's `outlier_detection`) and connection limits. See docs/routing.md#resilience.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::Duration;

/// A condition under which a failed attempt is retried (Envoy's `retry_on` values,
/// which Istio's `retryOn` uses too), or a status code to retry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// The connection to the target failed (refused, timed out, unreachable).
    ConnectFailure,
    /// An HTTP/2 upstream refused the stream (`REFUSED_STREAM`). Upstreams are spoken to
    /// in HTTP/1 today, so this never fires; accepted so that Istio policies load.
    RefusedStream,
    /// The connection was reset or closed, or the response did not come in time
    /// (`read_timeout`, `per_try_timeout`), before any response head.
    Reset,
    /// 502, 503 or 504 from the target, or a connect failure, reset or timeout.
    GatewayError,
    /// Any 5xx from the target, or a connect failure, reset or timeout.
    Server5xx,
    /// This status code from the target.
    Status(u16),
}

impl RetryOn {
    /// The spelling in the configuration.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            RetryOn::ConnectFailure => "connect-failure".into(),
            RetryOn::RefusedStream => "refused-stream".into(),
            RetryOn::Reset => "reset".into(),
            RetryOn::GatewayError => "gateway-error".into(),
            RetryOn::Server5xx => "5xx".into(),
            RetryOn::Status(s) => s.to_string().into(),
        }
    }

    fn parse(s: &str) -> Result<RetryOn, String> {
        Ok(match s {
            "connect-failure" | "connect_failure" => RetryOn::ConnectFailure,
            "refused-stream" | "refused_stream" => RetryOn::RefusedStream,
            "reset" => RetryOn::Reset,
            "gateway-error" | "gateway_error" => RetryOn::GatewayError,
            "5xx" => RetryOn::Server5xx,
            other => match other.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => RetryOn::Status(code),
                _ => {
                    return Err(format!(
                        "unknown retry condition {other:?}; expected one of connect-failure, refused-stream, reset, gateway-error, 5xx, or a status code (100 to 599)"
                    ))
                }
            },
        })
    }
}

impl Serialize for RetryOn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RetryOn::Status(code) => s.serialize_u16(*code),
            other => s.serialize_str(&other.name()),
        }
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RetryOn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a retry condition (connect-failure, refused-stream, reset, gateway-error, 5xx) or a status code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RetryOn, E> {
                RetryOn::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RetryOn, E> {
                RetryOn::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RetryOn, E> {
                RetryOn::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for RetryOn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RetryOn".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A retry condition (Envoy's and Istio's names) or a status code to retry on.",
            "oneOf": [
                { "type": "string", "enum": ["connect-failure", "refused-stream", "reset", "gateway-error", "5xx",
                    "connect_failure", "refused_stream", "gateway_error"] },
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string", "pattern": "^[1-5][0-9][0-9]$" }
            ]
        })
    }
}

/// Exponential backoff between attempts, with full jitter (Envoy's): retry `n` (from 1)
/// waits a random time between 0 and `min(base × 2^(n-1), max)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBackoff {
    /// The first retry's upper bound.
    #[serde(default = "default_backoff_base")]
    pub base: Duration,
    /// The largest upper bound.
    #[serde(default = "default_backoff_max")]
    pub max: Duration,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff {
            base: default_backoff_base(),
            max: default_backoff_max(),
        }
    }
}

fn default_backoff_base() -> Duration {
    Duration::from_millis(25)
}

fn default_backoff_max() -> Duration {
    Duration::from_millis(250)
}

/// A retry budget (Linkerd's): retries to a pool may add at most `ratio` of the pool's
/// requests over the last 10 seconds, plus `min_retries_per_second` × 10 that are always
/// allowed so that a quiet pool can still retry.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetConfig {
    /// Retries allowed per request, over the window (0 to 1000; 0.2: 20 % more load at
    /// most).
    #[serde(default = "default_budget_ratio")]
    pub ratio: f64,
    /// Retries per second always allowed, whatever the traffic.
    #[serde(default = "default_budget_min")]
    pub min_retries_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: default_budget_ratio(),
            min_retries_per_second: default_budget_min(),
        }
    }
}

fn default_budget_ratio() -> f64 {
    0.2
}

fn default_budget_min() -> u32 {
    10
}

/// Passive health checking (Envoy's `outlier_detection`): a target that fails requests
/// in a row is ejected from the pool for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetectionConfig {
    /// 5xx responses in a row that eject a target (0: not counted).
    #[serde(default = "default_consecutive")]
    pub consecutive_5xx: u32,
    /// Gateway errors in a row (502, 503, 504, connect failures, resets and timeouts)
    /// that eject a target (0: not counted).
    #[serde(default = "default_consecutive")]
    pub consecutive_gateway_errors: u32,
    /// How long a target must stay in the pool for one step of its ejection multiplier
    /// to be forgiven.
    #[serde(default = "default_outlier_interval")]
    pub interval: Duration,
    /// An ejection lasts this long times the number of times the target has been
    /// ejected (less the forgiven steps).
    #[serde(default = "default_base_ejection_time")]
    pub base_ejection_time: Duration,
    /// The longest an ejection lasts.
    #[serde(default = "default_max_ejection_time")]
    pub max_ejection_time: Duration,
    /// At most this percent of the pool's targets are ejected at once (at least one
    /// target may always be ejected, as in Envoy).
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetectionConfig {
    fn default() -> Self {
        OutlierDetectionConfig {
            consecutive_5xx: default_consecutive(),
            consecutive_gateway_errors: default_consecutive(),
            interval: default_outlier_interval(),
            base_ejection_time: default_base_ejection_time(),
            max_ejection_time: default_max_ejection_time(),
            max_ejection_percent: default_max_ejection_percent(),
        }
    }
}

fn default_consecutive() -> u32 {
    5
}

fn default_outlier_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_base_ejection_time() -> Duration {
    Duration::from_secs(30)
}

fn default_max_ejection_time() -> Duration {
    Duration::from_secs(300)
}

fn default_max_ejection_percent() -> u32 {
    10
}

/// A route's own retry policy, in the shape of an Istio VirtualService's `retries`
/// (`attempts`, `perTryTimeout`, `retryOn`): it replaces the upstream's `retries`,
/// `per_try_timeout` and `retry_on` for the route's requests. Backoff, the budget and
/// `retry_non_idempotent` stay the upstream's (the budget protects the pool, whatever
/// route the request came by).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRetryConfig {
    /// Retries after the first attempt (0 to 15; Istio's `attempts`).
    pub attempts: u32,
    /// Each attempt's timeout cap; default: the upstream's `per_try_timeout`.
    #[serde(default)]
    pub per_try_timeout: Option<Duration>,
    /// What is retried; default: the upstream's `retry_on`.
    #[serde(default)]
    pub retry_on: Option<Vec<RetryOn>>,
}

/// Checks a route's `retries`; `base` is its field path (`routes[1]`).
pub(crate) fn check_route(
    r: &RouteRetryConfig,
    base: &str,
    out: &mut Vec<pingway_plugins::config::Diagnostic>,
) {
    use pingway_plugins::config::Diagnostic;
    if r.attempts > MAX_RETRIES {
        out.push(Diagnostic::new(
            format!("{base}.retries.attempts"),
            format!("at most {MAX_RETRIES} (Pingora makes at most 16 attempts)"),
        ));
    }
    if r.per_try_timeout.is_some_and(|t| t.get().is_zero()) {
        out.push(Diagnostic::new(
            format!("{base}.retries.per_try_timeout"),
            "must be greater than 0",
        ));
    }
}

/// The default `retry_on`: connection failures only (what `retries` did before the
/// other conditions existed).
pub fn default_retry_on() -> Vec<RetryOn> {
    vec![RetryOn::ConnectFailure]
}

/// Checks an upstream's resilience fields; `base` is its field path (`upstreams[2]`).
pub(crate) fn check(
    u: &super::UpstreamConfig,
    base: &str,
    out: &mut Vec<pingway_plugins::config::Diagnostic>,
) {
    use pingway_plugins::config::Diagnostic;
    let mut bad = |field: &str, msg: &str| {
        out.push(Diagnostic::new(format!("{base}.{field}"), msg.to_string()));
    };
    if u.retries > MAX_RETRIES {
        bad(
            "retries",
            &format!("at most {MAX_RETRIES} (Pingora makes at most 16 attempts)"),
        );
    }
    if u.per_try_timeout.is_some_and(|t| t.get().is_zero()) {
        bad("per_try_timeout", "must be greater than 0");
    }
    if u.retry_backoff.base.get().is_zero() {
        bad("retry_backoff.base", "must be greater than 0");
    }
    if u.retry_backoff.max < u.retry_backoff.base {
        bad("retry_backoff.max", "must be at least retry_backoff.base");
    }
    let ratio = u.retry_budget.ratio;
    if !ratio.is_finite() || !(0.0..=1000.0).contains(&ratio) {
        bad("retry_budget.ratio", "must be between 0 and 1000");
    }
    if u.retry_budget.min_retries_per_second > 1_000_000 {
        bad("retry_budget.min_retries_per_second", "at most 1000000");
    }
    if let Some(od) = &u.outlier_detection {
        if od.max_ejection_percent > 100 {
            bad("outlier_detection.max_ejection_percent", "at most 100");
        }
        if od.base_ejection_time.get().is_zero() {
            bad(
                "outlier_detection.base_ejection_time",
                "must be greater than 0",
            );
        }
        if od.max_ejection_time < od.base_ejection_time {
            bad(
                "outlier_detection.max_ejection_time",
                "must be at least base_ejection_time",
            );
        }
        if od.interval.get().is_zero() {
            bad("outlier_detection.interval", "must be greater than 0");
        }
    }
    if u.max_pending_requests > 0 && u.max_connections == 0 {
        bad(
            "max_pending_requests",
            "needs max_connections (requests wait for a connection under that limit)",
        );
    }
}

/// The largest `retries`: Pingora makes at most 16 attempts per request.
pub const MAX_RETRIES: u32 = 15;

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        let diags = match crate::config::load_str(text) {
            Ok(loaded) => crate::config::validate::check(&loaded.config),
            Err(diags) => diags,
        };
        diags.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn retry_on_takes_envoy_names_and_status_codes() {
        let text = "\
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
    retry_on: [connect-failure, gateway_error, 5xx, 409, \"429\"]
routes: [{name: a, upstream: one}]
";
        let cfg = crate::config::load_str(text).unwrap();
        assert_eq!(
            cfg.config.upstreams[0].retry_on,
            vec![
                RetryOn::ConnectFailure,
                RetryOn::GatewayError,
                RetryOn::Server5xx,
                RetryOn::Status(409),
                RetryOn::Status(429)
            ]
        );
    }

    #[test]
    fn bad_resilience_fields_are_named() {
        let text = "\
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
    retries: 20
    retry_on: [sometimes]
    retry_budget: {ratio: -1}
    retry_backoff: {base: 100ms, max: 10ms}
    outlier_detection: {max_ejection_percent: 150}
    max_pending_requests: 3
routes: [{name: a, upstream: one, timeout: 0ms, retries: {attempts: 99}}]
";
        let errs = errors(text).join("\n");
        let wanted = "upstreams[0].retry_on[0]: unknown retry condition \"sometimes\"";
        assert!(errs.contains(wanted), "{wanted} in:\n{errs}");
        let text = text.replace("retry_on: [sometimes]", "retry_on: [5xx]");
        let errs = errors(&text).join("\n");
        for field in [
            "upstreams[0].retries: at most 15",
            "upstreams[0].retry_budget.ratio: must be between 0 and 1000",
            "upstreams[0].retry_backoff.max: must be at least retry_backoff.base",
            "upstreams[0].outlier_detection.max_ejection_percent: at most 100",
            "upstreams[0].max_pending_requests: needs max_connections",
            "routes[0].timeout: must be greater than 0",
            "routes[0].retries.attempts: at most 15",
        ] {
            assert!(errs.contains(field), "{field} in:\n{errs}");
        }
    }
}
