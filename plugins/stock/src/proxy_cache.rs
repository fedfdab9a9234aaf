//! `proxy-cache`: Kong's response cache, configured with Kong's fields.
//!
//! The cache itself is a gateway feature (it lives in the proxy, on Pingora's cache, and
//! a plugin phase cannot serve a stored response). This plugin is its configuration: the
//! registry checks the `config:` block with the other plugins, the gateway compiles the
//! same [`ProxyCacheConfig`] into the route's cache policy, and the instance itself has no
//! phases. It applies to a route (its `plugins:`) or to every route (the top-level
//! `plugins:`); a consumer's `plugins:` cannot hold it.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError, PluginScope};
use crate::Plugin;

/// The largest `memory.max_bytes` accepted: 64 GiB.
pub const MAX_MEMORY_BYTES: u64 = 64 << 30;

/// Kong's `proxy-cache` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyCacheConfig {
    /// Upstream statuses that are cached (default `[200, 301, 404]`).
    #[serde(default = "default_codes")]
    pub response_code: Vec<u16>,
    /// Request methods that use the cache (default `[GET, HEAD]`).
    #[serde(default = "default_methods")]
    pub request_method: Vec<String>,
    /// Response media types that are cached, compared without parameters and
    /// case-insensitively; `type/*` and `*/*` match any subtype (default
    /// `["text/plain", "application/json"]`).
    #[serde(default = "default_types")]
    pub content_type: Vec<String>,
    /// Seconds an entry stays fresh (default 300).
    #[serde(default = "default_ttl")]
    pub cache_ttl: u64,
    /// Seconds an entry is kept at all: past it, a lookup is a `Miss` rather than a
    /// `Refresh` (default: kept until replaced or evicted).
    #[serde(default)]
    pub storage_ttl: Option<u64>,
    /// Honour the request's and the response's `Cache-Control` as RFC 7234 says
    /// (default false).
    #[serde(default)]
    pub cache_control: bool,
    /// Lower-case the path in the cache key (default false).
    #[serde(default)]
    pub ignore_uri_case: bool,
    /// Query parameters that make separate entries (default: all of them).
    #[serde(default)]
    pub vary_query_params: Vec<String>,
    /// Request headers that make separate entries (default: none).
    #[serde(default)]
    pub vary_headers: Vec<String>,
    /// Where entries are kept: only `memory` (the default).
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// The in-memory store.
    #[serde(default)]
    pub memory: MemoryConfig,
}

/// `memory:` of [`ProxyCacheConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// The store's name: plugin instances naming the same dictionary (with the same
    /// bounds) share one store (default `kong_db_cache`, Kong's).
    #[serde(default = "default_dictionary")]
    pub dictionary_name: String,
    /// The store's bound on cached body bytes; least recently used entries are evicted
    /// past it (default 64 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// The store's bound on entries, whatever their size (default 65 536).
    #[serde(default = "default_max_entries")]
    pub max_entries: u64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            dictionary_name: default_dictionary(),
            max_bytes: default_max_bytes(),
            max_entries: default_max_entries(),
        }
    }
}

fn default_codes() -> Vec<u16> {
    vec![200, 301, 404]
}
fn default_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into()]
}
fn default_types() -> Vec<String> {
    vec!["text/plain".into(), "application/json".into()]
}
fn default_ttl() -> u64 {
    300
}
fn default_strategy() -> String {
    "memory".into()
}
fn default_dictionary() -> String {
    "kong_db_cache".into()
}
fn default_max_bytes() -> u64 {
    64 << 20
}
fn default_max_entries() -> u64 {
    65_536
}

impl ProxyCacheConfig {
    /// Every problem of the configuration, as `(field, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if self.response_code.is_empty() {
            p.push(("response_code", "must not be empty".to_string()));
        }
        for code in &self.response_code {
            if !(100..=599).contains(code) {
                p.push((
                    "response_code",
                    format!("{code} is not between 100 and 599"),
                ));
            }
        }
        if self.request_method.is_empty() {
            p.push(("request_method", "must not be empty".to_string()));
        }
        for m in &self.request_method {
            if http::Method::from_bytes(m.as_bytes()).is_err()
                || m.chars().any(|c| c.is_ascii_lowercase())
            {
                p.push((
                    "request_method",
                    format!("{m:?} is not an upper-case HTTP method"),
                ));
            }
        }
        if self.content_type.is_empty() {
            p.push(("content_type", "must not be empty".to_string()));
        }
        for t in &self.content_type {
            if t.split_once('/')
                .is_none_or(|(a, b)| a.trim().is_empty() || b.trim().is_empty())
            {
                p.push((
                    "content_type",
                    format!("{t:?} is not a media type (type/subtype)"),
                ));
            }
        }
        if self.cache_ttl == 0 || self.cache_ttl > u64::from(u32::MAX) {
            p.push((
                "cache_ttl",
                "must be between 1 and 4294967295 seconds".to_string(),
            ));
        }
        if self
            .storage_ttl
            .is_some_and(|s| s == 0 || s > u64::from(u32::MAX))
        {
            p.push((
                "storage_ttl",
                "must be between 1 and 4294967295 seconds".to_string(),
            ));
        }
        for h in &self.vary_headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                p.push(("vary_headers", format!("{h:?} is not a header name")));
            }
        }
        if self.strategy != "memory" {
            p.push((
                "strategy",
                format!("{:?} is not supported (expected memory)", self.strategy),
            ));
        }
        if self.memory.dictionary_name.is_empty() {
            p.push(("memory.dictionary_name", "must not be empty".to_string()));
        }
        if self.memory.max_bytes == 0 || self.memory.max_bytes > MAX_MEMORY_BYTES {
            p.push((
                "memory.max_bytes",
                format!("must be between 1 and {MAX_MEMORY_BYTES}"),
            ));
        }
        if self.memory.max_entries == 0 || self.memory.max_entries > u64::from(u32::MAX) {
            p.push((
                "memory.max_entries",
                "must be between 1 and 4294967295".to_string(),
            ));
        }
        p
    }
}

/// The `proxy-cache` plugin entry: the configuration is checked here, and the gateway
/// serves the cache. It has no phases.
#[derive(Debug)]
pub struct ProxyCache;

impl Plugin for ProxyCache {}

impl BuildPlugin for ProxyCache {
    const NAME: &'static str = "proxy-cache";
    /// Kong's priority (100): the cache is consulted after authentication and limits.
    const PRIORITY: i32 = 100;
    type Config = ProxyCacheConfig;

    fn build(c: ProxyCacheConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut err: Option<ConfigError> = None;
        if matches!(cx.scope, PluginScope::Consumer(_)) {
            err = Some(ConfigError::new(
                "",
                "proxy-cache applies to a route or globally, not to a consumer",
            ));
        }
        for (field, message) in c.problems() {
            err = Some(match err {
                None => ConfigError::new(field, message),
                Some(e) => e.and(field, message),
            });
        }
        match err {
            Some(e) => Err(e),
            None => Ok(ProxyCache),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kong_defaults_are_valid() {
        let c: ProxyCacheConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c.response_code, vec![200, 301, 404]);
        assert_eq!(c.request_method, vec!["GET", "HEAD"]);
        assert_eq!(c.cache_ttl, 300);
        assert!(!c.cache_control);
        assert!(c.problems().is_empty());
    }

    #[test]
    fn bad_fields_are_named() {
        let c: ProxyCacheConfig = serde_json::from_str(
            r#"{"response_code":[99],"request_method":["get"],"content_type":["json"],
                "cache_ttl":0,"strategy":"redis","memory":{"max_bytes":0}}"#,
        )
        .unwrap();
        let fields: Vec<_> = c.problems().into_iter().map(|(f, _)| f).collect();
        for f in [
            "response_code",
            "request_method",
            "content_type",
            "cache_ttl",
            "strategy",
            "memory.max_bytes",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }
}
