//! `prometheus`: Kong's Prometheus plugin, with Kong's fields and metric families under
//! a `pingway_` prefix (so Kong's Grafana dashboards work after a prefix rename).
//!
//! The plugin records in its log phase into the shared [`Metrics`] registry, which the
//! gateway offers as a service of every configuration (the same registry across
//! reloads, so series survive them) and renders on the admin API's `GET /metrics`.
//!
//! Families (labels as Kong's, `service` being the route's upstream):
//!
//! - `pingway_http_requests_total{service,route,code,source,consumer}` (with
//!   `status_code_metrics`; `consumer` is empty unless `per_consumer`);
//! - `pingway_request_latency_ms`, `pingway_upstream_latency_ms`,
//!   `pingway_gateway_latency_ms` histograms `{service,route}` with Kong's buckets
//!   (with `latency_metrics`);
//! - `pingway_bandwidth_bytes{service,route,direction,consumer}` (with
//!   `bandwidth_metrics`);
//! - `pingway_upstream_target_health{upstream,target,address,state}` (with
//!   `upstream_health_metrics`; rendered by the gateway, which knows the targets).
//!
//! Recording takes no lock: label sets are interned when a configuration is built and
//! looked up in an immutable snapshot; counters are atomics. The bounds are in
//! [`registry`].

mod registry;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{LogEntry, Plugin};

pub use registry::{
    escape, Metrics, Source, LATENCY_BUCKETS_MS, MAX_CONSUMERS, MAX_REQUEST_SERIES, MAX_ROUTES,
    OTHER,
};

/// Kong's `prometheus` configuration. As in Kong 3, every metric group is off unless
/// enabled.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Add the consumer's username (or id) as the `consumer` label of
    /// `pingway_http_requests_total` and `pingway_bandwidth_bytes`.
    #[serde(default)]
    pub per_consumer: bool,
    /// Record `pingway_http_requests_total`.
    #[serde(default)]
    pub status_code_metrics: bool,
    /// Record the latency histograms.
    #[serde(default)]
    pub latency_metrics: bool,
    /// Record `pingway_bandwidth_bytes`.
    #[serde(default)]
    pub bandwidth_metrics: bool,
    /// Export `pingway_upstream_target_health`.
    #[serde(default)]
    pub upstream_health_metrics: bool,
    /// Kong's AI metrics (accepted for compatibility; Pingway has no AI proxy).
    #[serde(default)]
    pub ai_metrics: bool,
    /// Kong's wasm metrics (accepted for compatibility; not used).
    #[serde(default)]
    pub wasm_metrics: bool,
}

/// A `prometheus` plugin instance.
pub struct Prometheus {
    config: PrometheusConfig,
    metrics: std::sync::Arc<Metrics>,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("config", &self.config)
            .finish()
    }
}

impl Prometheus {
    /// The registry this instance records into.
    pub fn metrics(&self) -> &std::sync::Arc<Metrics> {
        &self.metrics
    }
}

impl Plugin for Prometheus {
    fn on_log(&self, entry: &LogEntry<'_>) {
        let c = &self.config;
        if c.status_code_metrics || c.latency_metrics || c.bandwidth_metrics {
            self.metrics.record(entry, c);
        }
    }
}

impl BuildPlugin for Prometheus {
    const NAME: &'static str = "prometheus";
    // Kong's priority for prometheus: a log-phase plugin.
    const PRIORITY: i32 = 13;
    type Config = PrometheusConfig;

    fn build(config: PrometheusConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        // The gateway's registry; a registry of its own where there is none (the test
        // kit, an embedding without one).
        let metrics = cx
            .services
            .get_arc::<Metrics>()
            .unwrap_or_else(|| std::sync::Arc::new(Metrics::new()));
        Ok(Prometheus { config, metrics })
    }
}

#[cfg(test)]
mod tests;
