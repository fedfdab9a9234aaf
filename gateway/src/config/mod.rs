//! The configuration: its model, defaults, YAML loading, validation and JSON Schema.
//!
//! Loading is a pipeline that never stops at the first problem: YAML is parsed into a
//! position-keeping tree, deserialized into [`GatewayConfig`] by a deserializer that
//! collects every type error and unknown field, then checked for problems that span
//! fields (names that must exist, be unique, parse as addresses or CIDRs...). Each
//! problem is a [`Diagnostic`] with field path, line and column.

pub mod acme;
pub mod defaults;
pub mod duration;
pub mod file;
pub mod limits;
pub mod model;
pub mod resilience;
pub mod schema;
pub mod validate;
pub mod yaml;

use std::path::Path;

pub use acme::AcmeConfig;
pub use duration::Duration;
pub use model::*;
pub use pingway_plugins::config::{ConfigNode, Diagnostic, Location};
pub use resilience::{
    OutlierDetectionConfig, RetryBackoff, RetryBudgetConfig, RetryOn, RouteRetryConfig,
};

/// A configuration read from text, with the tree it came from (for positions).
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed configuration.
    pub config: GatewayConfig,
    /// The parsed document, used to place problems found later (plugin configs, routes).
    pub document: ConfigNode,
}

impl LoadedConfig {
    /// Gives every diagnostic without a position the best position the document has for
    /// its field path.
    pub fn locate(&self, diags: &mut [Diagnostic]) {
        locate_all(&self.document, diags);
    }
}

/// Fills in missing positions from `document`.
pub fn locate_all(document: &ConfigNode, diags: &mut [Diagnostic]) {
    for d in diags {
        if d.location.is_none() {
            d.location = document.locate(&d.path);
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{} problem(s) in the configuration", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// Parses configuration text into the typed model, reporting every structural problem
/// (syntax, types, unknown fields, missing fields). Checks across fields run when the
/// configuration is compiled ([`crate::runtime::Runtime::build`]), since they need a
/// structurally sound file to say anything useful.
pub fn load_str(text: &str) -> Result<LoadedConfig, Vec<Diagnostic>> {
    let document = yaml::parse(text)?;
    match pingway_plugins::config::from_node::<GatewayConfig>(&document, "") {
        Ok(config) => Ok(LoadedConfig { config, document }),
        Err(mut diags) => {
            locate_all(&document, &mut diags);
            sort(&mut diags);
            Err(diags)
        }
    }
}

/// Reads and parses a configuration file (refusing one over [`limits::MAX_FILE_BYTES`]).
pub fn load_file(path: &Path) -> Result<LoadedConfig, LoadError> {
    let text = file::read_config_file(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text).map_err(LoadError::Invalid)
}

/// Orders problems by position (those without one last), keeping discovery order on ties.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| {
        d.location
            .map_or((usize::MAX, usize::MAX), |l| (l.line, l.column))
    });
}

#[cfg(test)]
mod tests_mutations;

#[cfg(test)]
mod tests {
    use super::*;

    /// Structural problems, or else the cross-field ones, as `LINE:COL: path: message`.
    fn errors(text: &str) -> Vec<String> {
        let mut diags = match load_str(text) {
            Ok(loaded) => {
                let mut d = validate::check(&loaded.config);
                loaded.locate(&mut d);
                d
            }
            Err(d) => d,
        };
        sort(&mut diags);
        diags.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn loads_a_minimal_file_with_defaults() {
        let c = load_str(
            "listeners: [{address: 127.0.0.1:8080}]\nupstreams:\n  - name: one\n    targets: [127.0.0.1:9001]\nroutes:\n  - name: r\n    upstream: one\n",
        )
        .unwrap()
        .config;
        assert_eq!(c.upstreams[0].targets[0].weight, 100);
        assert_eq!(c.upstreams[0].read_timeout, Duration::from_secs(60));
        assert_eq!(c.proxy.request_id_header, "x-request-id");
        assert!(c.routes[0].paths.is_empty());
    }

    #[test]
    fn reports_every_problem_with_line_and_column() {
        let text = "\
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
    read_timeout: 5
    bogus: 1
routes:
  - name: a
    upstream: one
    colour: red
    strip_prefix: maybe
  - name: b
    upstream: one
    paths: [{regexp: /x}]
  - upstream: one
";
        let errs = errors(text);
        assert_eq!(
            errs,
            vec![
                "5:19: upstreams[0].read_timeout: duration \"5\" has no unit; write it like 5ms or 5s",
                "6:5: upstreams[0].bogus: unknown field `bogus`, expected one of `name`, `targets`, `balancer`, `hash_on`, `hash_on_header`, `hash_on_cookie`, `health_check`, `connect_timeout`, `read_timeout`, `write_timeout`, `retries`, `max_requests`, `retry_on`, `per_try_timeout`, `retry_backoff`, `retry_non_idempotent`, `retry_budget`, `outlier_detection`, `max_connections`, `max_pending_requests`, `protocol`, `websocket_idle_timeout`, `tls`, `tls_verify`, `ca_file`, `sni`, `client_cert`, `client_key`",
                "10:5: routes[0].colour: unknown field `colour`, expected one of `name`, `hosts`, `wildcard_labels`, `paths`, `methods`, `headers`, `query_params`, `upstream`, `strip_prefix`, `preserve_host`, `plugins`, `split`, `split_hash_on`, `split_hash_on_header`, `split_hash_on_cookie`, `request_headers`, `response_headers`, `path_rewrite`, `mirrors`, `protocols`, `https_redirect_status_code`, `compression`, `timeout`, `retries`",
                "11:19: routes[0].strip_prefix: invalid type: string \"maybe\", expected a boolean",
                "14:13: routes[1].paths[0]: unknown field `regexp`, expected one of `exact`, `prefix`, `regex`",
                "15:5: routes[2]: missing field `name`",
            ],
            "{errs:#?}"
        );
    }

    #[test]
    fn semantic_problems_point_at_the_field() {
        let text = "\
listeners: [{address: 127.0.0.1:8080}, {address: nowhere}]
proxy:
  trusted_ips: [10.0.0.0/8, 300.1.1.1]
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
routes:
  - name: a
    upstream: two
  - name: a
    upstream: one
";
        let errs = errors(text);
        assert_eq!(
            errs,
            vec![
                "1:50: listeners[1].address: invalid address \"nowhere\"; write IP:PORT such as 0.0.0.0:8080 or [::]:8080",
                "3:29: proxy.trusted_ips[1]: invalid IP address or CIDR range: \"300.1.1.1\"",
                "9:15: routes[0].upstream: no upstream named \"two\" is defined",
                "10:11: routes[1].name: duplicate route name \"a\" (first used by routes[0])",
            ],
            "{errs:#?}"
        );
    }

    #[test]
    fn h2c_is_refused_with_tls_on_listeners_and_upstreams_and_h2_needs_tls() {
        let text = "\
listeners: [{address: 127.0.0.1:8443, h2c: true, tls: {certificates: []}}]
upstreams:
  - {name: one, targets: [127.0.0.1:9001], protocol: h2c, tls: true}
  - {name: two, targets: [127.0.0.1:9002], protocol: h2}
  - {name: three, targets: [127.0.0.1:9003], protocol: h2, tls: true}
routes:
  - {name: a, upstream: one}
";
        let errs = errors(text);
        assert!(
            errs.iter().any(|e| e.starts_with("1:") && e.contains("listeners[0].h2c: h2c is HTTP/2 in clear text; an HTTPS listener offers HTTP/2 through ALPN")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("3:") && e.contains("upstreams[0].protocol: h2c is HTTP/2 in clear text; for HTTP/2 over TLS write `protocol: h2`")),
            "{errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.starts_with("4:") && e.contains("upstreams[1].protocol: h2 is HTTP/2 over TLS (ALPN h2) and needs `tls: true`")),
            "{errs:#?}"
        );
        assert!(
            !errs.iter().any(|e| e.contains("upstreams[2]")),
            "{errs:#?}"
        );
    }
}
