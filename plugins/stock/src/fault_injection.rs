//! `fault-injection`: delay or abort a percentage of requests, with Istio's `fault`
//! semantics (a VirtualService's `fault.delay` and `fault.abort`), to test how clients
//! and callers cope with a slow or failing service.
//!
//! - `delay`: wait `fixed_delay` before going on, for `percentage` of requests;
//! - `abort`: answer `http_status` instead of proxying, for `percentage` of requests
//!   (after the delay, when both are drawn, as Envoy's fault filter does);
//! - `header`: only requests with this header (and value, if given) are faulted.
//!
//! Draws are independent per request and per fault (a fast thread-local generator).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::parse_duration;
use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::transform::Problems;
use crate::{Body, Flow, Plugin, Request, Response};

/// The longest `fixed_delay` accepted (10 minutes): a delay holds a connection and a
/// task for its whole length.
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// The default abort message, Envoy's.
const ABORT_MESSAGE: &str = "fault filter abort";

/// A delay fault.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayConfig {
    /// How long to wait, with a unit: `250ms`, `5s`, `1m` (at most 10 minutes).
    pub fixed_delay: String,
    /// The share of requests delayed, 0 to 100 (default 100).
    #[serde(default = "hundred")]
    pub percentage: f64,
}

/// An abort fault.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortConfig {
    /// The status of the answer (200 to 599).
    pub http_status: u16,
    /// A text body instead of the JSON `{"message":"fault filter abort"}`.
    #[serde(default)]
    pub body: Option<String>,
    /// The share of requests aborted, 0 to 100 (default 100).
    #[serde(default = "hundred")]
    pub percentage: f64,
}

/// Only requests with this header are faulted.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    /// The header name.
    pub name: String,
    /// The exact value required; any value when absent.
    #[serde(default)]
    pub value: Option<String>,
}

fn hundred() -> f64 {
    100.0
}

/// The `fault-injection` configuration (Istio's `fault`, in snake_case).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultInjectionConfig {
    /// Delay a share of requests.
    #[serde(default)]
    pub delay: Option<DelayConfig>,
    /// Answer a share of requests with an error.
    #[serde(default)]
    pub abort: Option<AbortConfig>,
    /// Only requests with this header are faulted.
    #[serde(default)]
    pub header: Option<HeaderCondition>,
}

/// The `fault-injection` plugin.
#[derive(Debug)]
pub struct FaultInjection {
    delay: Option<(Duration, f64)>,
    abort: Option<(Response, f64)>,
    header: Option<(HeaderName, Option<HeaderValue>)>,
}

fn percentage(p: f64, field: &str, problems: &mut Problems) -> f64 {
    if !(0.0..=100.0).contains(&p) {
        problems.add(field, "must be between 0 and 100");
    }
    p
}

/// Whether a fault with `percentage` hits this request.
fn draw(percentage: f64) -> bool {
    percentage >= 100.0 || (percentage > 0.0 && fastrand::f64() * 100.0 < percentage)
}

impl FaultInjection {
    fn applies(&self, req: &Request<'_>) -> bool {
        match &self.header {
            None => true,
            Some((name, None)) => req.headers().contains_key(name),
            Some((name, Some(value))) => req.headers().get_all(name).iter().any(|v| v == value),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for FaultInjection {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        if !self.applies(req) {
            return Flow::Continue;
        }
        if let Some((delay, p)) = self.delay {
            if draw(p) {
                tokio::time::sleep(delay).await;
            }
        }
        match &self.abort {
            Some((response, p)) if draw(*p) => Flow::Respond(response.clone()),
            _ => Flow::Continue,
        }
    }
}

impl BuildPlugin for FaultInjection {
    const NAME: &'static str = "fault-injection";
    const PRIORITY: i32 = 5;
    type Config = FaultInjectionConfig;

    fn build(c: FaultInjectionConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        if c.delay.is_none() && c.abort.is_none() {
            problems.add(
                "",
                "at least one of these fields must be set: 'delay', 'abort'",
            );
        }
        let delay = c.delay.as_ref().and_then(|d| {
            let p = percentage(d.percentage, "delay.percentage", &mut problems);
            match parse_duration(&d.fixed_delay) {
                Ok(t) if t > MAX_DELAY => {
                    problems.add("delay.fixed_delay", "must be at most 10m");
                    None
                }
                Ok(t) => Some((t, p)),
                Err(e) => {
                    problems.add("delay.fixed_delay", e);
                    None
                }
            }
        });
        let abort = c.abort.as_ref().and_then(|a| {
            let p = percentage(a.percentage, "abort.percentage", &mut problems);
            let Some(status) = StatusCode::from_u16(a.http_status)
                .ok()
                .filter(|s| (200..=599).contains(&s.as_u16()))
            else {
                problems.add("abort.http_status", "must be between 200 and 599");
                return None;
            };
            let response = match &a.body {
                None => Response::error(status, ABORT_MESSAGE),
                Some(text) => {
                    let mut r = Response::empty(status);
                    r.body = Body::Raw {
                        content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
                        bytes: Bytes::from(text.clone()),
                    };
                    r
                }
            };
            Some((response, p))
        });
        let header = c.header.as_ref().and_then(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| problems.add("header.name", "not a valid header name"))
                .ok()?;
            let value = match &h.value {
                None => None,
                Some(v) => Some(
                    HeaderValue::from_str(v)
                        .map_err(|_| problems.add("header.value", "not a valid header value"))
                        .ok()?,
                ),
            };
            Some((name, value))
        });
        problems.into_result(FaultInjection {
            delay,
            abort,
            header,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;
    use std::time::Instant;

    fn build(c: FaultInjectionConfig) -> Result<FaultInjection, ConfigError> {
        FaultInjection::build(c, &BuildContext::new(PluginScope::Global))
    }

    fn abort(status: u16, percentage: f64) -> FaultInjectionConfig {
        FaultInjectionConfig {
            delay: None,
            abort: Some(AbortConfig {
                http_status: status,
                body: None,
                percentage,
            }),
            header: None,
        }
    }

    #[tokio::test]
    async fn an_abort_at_100_percent_answers_every_request() {
        let p = build(abort(503, 100.0)).expect("valid");
        let r = TestRequest::get("/").access(&p).await.expect("aborted");
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(matches!(&r.body, Body::Message(m) if m == "fault filter abort"));
        let p = build(abort(503, 0.0)).expect("valid");
        assert!(TestRequest::get("/").access(&p).await.is_none());
    }

    #[tokio::test]
    async fn the_share_aborted_follows_the_percentage() {
        let p = build(abort(500, 30.0)).expect("valid");
        let mut hits = 0;
        for _ in 0..10_000 {
            if TestRequest::get("/").access(&p).await.is_some() {
                hits += 1;
            }
        }
        // 30% of 10 000 is 3000, with a standard deviation of about 46.
        assert!((2700..=3300).contains(&hits), "{hits}");
    }

    #[tokio::test]
    async fn a_delay_waits_and_the_header_condition_limits_faults() {
        let mut c = abort(418, 100.0);
        c.delay = Some(DelayConfig {
            fixed_delay: "50ms".into(),
            percentage: 100.0,
        });
        c.header = Some(HeaderCondition {
            name: "x-fault".into(),
            value: Some("on".into()),
        });
        let p = build(c).expect("valid");
        assert!(TestRequest::get("/").access(&p).await.is_none());
        let mut off = TestRequest::get("/").header("x-fault", "off");
        assert!(off.access(&p).await.is_none());
        let start = Instant::now();
        let mut on = TestRequest::get("/").header("x-fault", "on");
        let r = on.access(&p).await.expect("aborted after the delay");
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert_eq!(r.status.as_u16(), 418);
    }

    #[test]
    fn bad_fields_are_named() {
        let c = FaultInjectionConfig {
            delay: Some(DelayConfig {
                fixed_delay: "5".into(),
                percentage: 101.0,
            }),
            abort: Some(AbortConfig {
                http_status: 99,
                body: None,
                percentage: -1.0,
            }),
            header: Some(HeaderCondition {
                name: "bad name".into(),
                value: None,
            }),
        };
        let e = build(c).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "delay.percentage",
                "delay.fixed_delay",
                "abort.percentage",
                "abort.http_status",
                "header.name"
            ]
        );
        let e = build(FaultInjectionConfig {
            delay: None,
            abort: None,
            header: None,
        })
        .unwrap_err();
        assert_eq!(e.problems()[0].0, "");
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("11m").is_ok());
        let e = build(FaultInjectionConfig {
            delay: Some(DelayConfig {
                fixed_delay: "11m".into(),
                percentage: 100.0,
            }),
            abort: None,
            header: None,
        })
        .unwrap_err();
        assert_eq!(e.problems()[0].0, "delay.fixed_delay");
    }
}
