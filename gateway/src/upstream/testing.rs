//! Helpers shared by the upstream tests.

use pingora_http::RequestHeader;

use crate::config::{defaults, Balancer, HashOn, TargetConfig, UpstreamConfig};

/// A pool config with the given `(address, weight)` targets and default settings.
pub(crate) fn config(name: &str, targets: &[(&str, u32)], balancer: Balancer) -> UpstreamConfig {
    UpstreamConfig {
        name: name.into(),
        targets: targets
            .iter()
            .map(|(address, weight)| TargetConfig {
                address: (*address).into(),
                weight: *weight,
            })
            .collect(),
        balancer,
        hash_on: HashOn::Ip,
        hash_on_header: None,
        hash_on_cookie: None,
        health_check: None,
        connect_timeout: defaults::connect_timeout(),
        read_timeout: defaults::read_timeout(),
        write_timeout: defaults::write_timeout(),
        retries: defaults::retries(),
        max_requests: 0,
        retry_on: crate::config::resilience::default_retry_on(),
        per_try_timeout: None,
        retry_backoff: Default::default(),
        retry_non_idempotent: false,
        retry_budget: Default::default(),
        outlier_detection: None,
        max_connections: 0,
        max_pending_requests: 0,
        protocol: Default::default(),
        websocket_idle_timeout: defaults::websocket_idle_timeout(),
        tls: false,
        tls_verify: true,
        ca_file: None,
        sni: None,
        client_cert: None,
        client_key: None,
    }
}

/// A GET request header for `path` with `headers`.
pub(crate) fn request(path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    for (name, value) in headers {
        r.append_header(name.to_string(), *value).unwrap();
    }
    r
}
