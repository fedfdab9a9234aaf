//! `rate-limiting`: Kong's request limits, with Kong's fields, headers and answers,
//! counted in this gateway's memory (Kong's `local` policy: `limiter.rs`) or in Redis,
//! shared by every replica (`policy: redis`: `redis_store.rs`), in fixed calendar
//! windows (Kong's) or sliding ones (`window: sliding`).
//!
//! - Limits per `second`, `minute`, `hour`, `day`, `month` and `year`, in fixed windows
//!   aligned to UTC calendar boundaries. A request passes only if every configured
//!   period has room; it is then counted in all of them.
//! - Requests are counted by `limit_by`: consumer (default), credential, ip, service,
//!   header, path or route, falling back to the client IP when that is unknown.
//! - Every response carries `X-RateLimit-Limit-<Period>`, `X-RateLimit-Remaining-<Period>`
//!   and `RateLimit-Limit/Remaining/Reset` (computed in `headers.rs`) unless
//!   `hide_client_headers` is set. A limited request gets `error_code` (429),
//!   `{"message":"API rate limit exceeded"}` and, unless headers are hidden,
//!   `Retry-After`.
//!
//! Counters belong to the plugin instance, as Kong keys them by the plugin's own route
//! and service: a route's instance counts that route's traffic; a global instance counts
//! each client across all the routes it covers (use `limit_by: route` or `service` for
//! per-route or per-upstream totals).
//!
//! Unlike Kong, which reads the counter and increments it later (so concurrent requests
//! can overshoot), counting is exact: see `limiter.rs`, and for Redis the one script
//! that checks and counts every period in `redis_store.rs`. When Redis fails, the
//! request passes without rate-limit headers (`fault_tolerant`, the default) or gets
//! Kong's 500.
//!
//! Memory is bounded whatever clients send: identifiers are stored as a 16-byte keyed
//! digest (`key.rs`), and each period tracks at most `max_tracked_keys` (a Pingway
//! extension, default 100,000) identifiers per window, evicting when full
//! (`counters.rs`). [`RateLimiting::evictions`] counts evictions; they are also logged
//! at most once a minute.
//!
//! # Why not `governor`
//!
//! `governor` implements GCRA, a token bucket that refills continuously. Kong's plugin
//! counts in fixed calendar windows instead: a client may spend the whole minute's quota
//! at once, the counter drops to zero at the top of the minute, and the headers report
//! "remaining in this window" and "seconds until this window ends". GCRA has no window
//! to report and spreads requests out, so its answers would differ from Kong's on the
//! same traffic; the fixed-window counters here are small enough to own.

mod config;
mod counters;
mod headers;
mod key;
mod limiter;
mod period;
mod redis_store;

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, StatusCode};

pub use config::{LimitBy, Password, Policy, RateLimitingConfig, RedisConfig, WindowKind};
pub use limiter::keys_evicted_total;

use crate::context::RequestCtx;
use crate::redis::{RedisError, RedisPools};
use crate::registry::{BuildContext, BuildPlugin, ConfigError, PluginScope};
use crate::{Flow, Plugin, Request, Response};
use config::Settings;
use limiter::{Identifier, Limiter, Outcome};
use redis_store::RedisCounters;

/// The `rate-limiting` plugin: one instance's settings and counters.
#[derive(Debug)]
pub struct RateLimiting {
    settings: Settings,
    limiter: Limiter,
    /// Set with `policy: redis`: then the counters are there, not in `limiter`.
    redis: Option<RedisCounters>,
    /// Each period's limit as a header value, built once (by `Period::index`).
    limit_values: [HeaderValue; 6],
}

/// Kong's answer when the counter store fails and `fault_tolerant` is false.
const STORE_FAILED: &str = "An unexpected error occurred";

impl RateLimiting {
    /// How many counters this instance has evicted since it was built, to keep each
    /// period within `max_tracked_keys` identifiers. A growing number means more
    /// distinct clients per window than the cap (or a flood of made-up identifiers);
    /// evicted clients start again from zero.
    pub fn evictions(&self) -> u64 {
        self.limiter.evictions()
    }

    /// Who the request is counted for. `path` is the request path; `header` is the
    /// `header_name` header's value, when `limit_by` is `header`.
    fn identify<'a>(
        &'a self,
        ctx: &'a RequestCtx,
        path: &'a str,
        header: Option<&'a HeaderValue>,
    ) -> Identifier<'a> {
        let name: Option<&'a [u8]> = match self.settings.limit_by {
            LimitBy::Ip => None,
            LimitBy::Consumer => ctx
                .consumer()
                .map(|c| c.id.as_bytes())
                .or_else(|| ctx.credential().map(|c| c.as_bytes())),
            LimitBy::Credential => ctx.credential().map(|c| c.as_bytes()),
            LimitBy::Service => ctx.route.as_deref().map(|r| r.upstream.as_bytes()),
            LimitBy::Route => ctx.route.as_deref().map(|r| r.name.as_bytes()),
            LimitBy::Header => header.map(HeaderValue::as_bytes),
            LimitBy::Path => self
                .settings
                .path
                .as_deref()
                .filter(|p| *p == path)
                .map(str::as_bytes),
        };
        match name {
            Some(name) => Identifier::Name(name),
            // IPv4-mapped IPv6 addresses count as the IPv4 address, so a dual-stack
            // listener does not give a client two counters.
            None => Identifier::Ip(canonical(ctx.client_ip)),
        }
    }

    /// The answer when Redis failed: let the request through without rate-limit headers
    /// (`fault_tolerant`, the default), or Kong's 500.
    fn store_failed(&self, error: &RedisError) -> Flow {
        let fault_tolerant = self
            .settings
            .redis
            .as_ref()
            .is_none_or(|r| r.fault_tolerant);
        // Redis's own module logs when it goes down and comes back; per request this
        // is only worth a debug line.
        log::debug!("rate-limiting: counter store failed: {error}");
        if fault_tolerant {
            Flow::Continue
        } else {
            Flow::Respond(Response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                STORE_FAILED,
            ))
        }
    }

    /// Turns a check's outcome into the plugin's answer: queues the rate-limit headers
    /// on `ctx` (unless hidden), and answers a limited request with `error_code`,
    /// `error_message` and `Retry-After`.
    fn decide(&self, ctx: &mut RequestCtx, outcome: &Outcome) -> Flow {
        if !self.settings.hide_client_headers {
            ctx.reserve_response_headers(headers::count(outcome));
            headers::rate_limit_headers(
                outcome,
                |i| self.limit_values[i].clone(),
                |name, value| ctx.add_response_header(name, value),
            );
        }
        if outcome.allowed {
            return Flow::Continue;
        }
        let mut response = Response::error(
            self.settings.error_code,
            self.settings.error_message.clone(),
        );
        if !self.settings.hide_client_headers {
            if let Some((name, value)) = headers::retry_after(outcome) {
                response = response.with_header(name, value);
            }
        }
        Flow::Respond(response)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Unix time in whole seconds (Kong's `ngx.time()`); 0 if the clock is before 1970.
fn unix_now() -> u64 {
    unix_now_ms() / 1_000
}

/// Unix time in milliseconds (the sliding windows' resolution).
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[async_trait::async_trait]
impl Plugin for RateLimiting {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let header = self
            .settings
            .header_name
            .as_ref()
            .and_then(|name| req.header(name));
        let id = self.identify(req.ctx(), req.path(), header);
        let outcome = match &self.redis {
            None => self.limiter.check_ms(id, unix_now_ms()),
            Some(redis) => {
                // Owned before the round trip, so that the request is free again after it.
                let identifier = redis_store::redis_identifier(id).into_owned();
                match redis.check(&identifier, unix_now_ms()).await {
                    Ok(outcome) => outcome,
                    Err(e) => return self.store_failed(&e),
                }
            }
        };
        self.decide(req.ctx_mut(), &outcome)
    }
}

impl BuildPlugin for RateLimiting {
    const NAME: &'static str = "rate-limiting";
    const PRIORITY: i32 = 910;
    type Config = RateLimitingConfig;

    fn build(config: RateLimitingConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let settings = config.validate()?;
        let sliding = settings.window == WindowKind::Sliding;
        // With Redis, the local limiter is never used: keep it minimal.
        let local_keys = if settings.redis.is_some() {
            1
        } else {
            settings.max_keys
        };
        let limiter = Limiter::with_window(settings.limits.iter().copied(), local_keys, sliding)
            .map_err(|e| ConfigError::new("", e.to_string()))?;
        let redis = match &settings.redis {
            None => None,
            Some(store) => {
                // The gateway offers its process-wide pools; without one (a test kit,
                // an embedder) the same process-wide pools are used directly.
                let process;
                let pools: &RedisPools = match cx.service::<RedisPools>() {
                    Some(p) => p,
                    None => {
                        process = RedisPools::process();
                        &process
                    }
                };
                let client = pools
                    .client(&store.settings, cx.lifecycle())
                    .map_err(|e| ConfigError::new("redis", e.to_string()))?;
                let route = match cx.scope {
                    PluginScope::Route(name) => Some(name),
                    _ => None,
                };
                Some(RedisCounters::new(
                    client,
                    &settings.limits,
                    sliding,
                    route,
                    store.sync_every,
                    settings.max_keys,
                    cx.lifecycle(),
                ))
            }
        };
        let mut limit_values: [HeaderValue; 6] =
            std::array::from_fn(|_| HeaderValue::from_static("0"));
        for (period, limit) in &settings.limits {
            limit_values[period.index()] = crate::header_values::static_value(&limit.to_string())
                .unwrap_or_else(|| crate::header_values::number(*limit));
        }
        Ok(RateLimiting {
            settings,
            limiter,
            redis,
            limit_values,
        })
    }
}

#[cfg(test)]
mod tests;
