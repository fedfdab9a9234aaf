//! `rate-limiting`: Kong's fixed-window request limits. (Being written.)

#[allow(dead_code)] // used by the plugin once it is wired up
mod headers;
#[allow(dead_code)] // used by the plugin once it is wired up
mod limiter;
#[allow(dead_code)] // used by the plugin once it is wired up
mod period;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::plugin::Plugin;
use crate::registry::{BuildContext, BuildPlugin, ConfigError};

/// Kong's `rate-limiting` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitingConfig {
    /// Requests per second.
    pub second: Option<u64>,
}

/// The `rate-limiting` plugin.
pub struct RateLimiting;

impl Plugin for RateLimiting {}

impl BuildPlugin for RateLimiting {
    const NAME: &'static str = "rate-limiting";
    const PRIORITY: i32 = 910;
    type Config = RateLimitingConfig;
    fn build(_config: RateLimitingConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        Ok(RateLimiting)
    }
}
