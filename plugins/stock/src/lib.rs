//! Pingway's stock plugins, with Kong's names, configuration fields, priorities and
//! responses, and the consumers they authenticate.
//!
//! Built on the plugin contract (`pingway-plugin`), which this crate re-exports whole:
//! the stock plugins are written, registered and configured exactly as a third-party
//! plugin is. Authentication plugins identify [`consumers`] (the `consumers:` section,
//! compiled once per load into a [`ConsumerSet`] that the gateway offers as a shared
//! service) and record the identity in the [`RequestCtx`], where later plugins such as
//! `rate-limiting` and `acl` read it.

#![warn(missing_docs)]

pub mod acl;
pub mod auth;
pub mod basic_auth;
pub mod bot_detection;
pub mod ca_certificates;
pub mod consumers;
pub mod correlation_id;
pub mod cors;
pub mod fault_injection;
pub mod file_log;
pub mod http_log;
pub mod ip_restriction;
pub mod jwt;
pub mod key_auth;
pub mod loggers;
pub mod mtls_auth;
pub mod opentelemetry;
pub mod prometheus;
pub mod proxy_cache;
pub mod rate_limiting;
pub mod redirect;
pub mod redis;
pub mod request_size_limiting;
pub mod request_termination;
pub mod request_transformer;
pub mod response_transformer;
pub mod tcp_log;
pub mod tracing;
mod transform;
pub mod zipkin;

pub use consumers::ConsumerSet;
pub use pingway_plugin::*;

/// The contract's modules, under the paths this crate used before the contract had a
/// crate of its own.
pub use pingway_plugin::{config, context, header_values, pace, plugin, registry};

/// Registers every stock plugin in `registry`.
pub fn register_all(registry: &mut Registry) {
    registry
        .register::<acl::Acl>()
        .register::<basic_auth::BasicAuth>()
        .register::<bot_detection::BotDetection>()
        .register::<correlation_id::CorrelationId>()
        .register::<cors::Cors>()
        .register::<fault_injection::FaultInjection>()
        .register::<file_log::FileLog>()
        .register::<http_log::HttpLog>()
        .register::<ip_restriction::IpRestriction>()
        .register::<jwt::Jwt>()
        .register::<key_auth::KeyAuth>()
        .register::<mtls_auth::MtlsAuth>()
        .register::<opentelemetry::OpenTelemetry>()
        .register::<prometheus::Prometheus>()
        .register::<proxy_cache::ProxyCache>()
        .register::<rate_limiting::RateLimiting>()
        .register::<redirect::Redirect>()
        .register::<request_size_limiting::RequestSizeLimiting>()
        .register::<request_termination::RequestTermination>()
        .register::<request_transformer::RequestTransformer>()
        .register::<response_transformer::ResponseTransformer>()
        .register::<tcp_log::TcpLog>()
        .register::<tcp_log::UdpLog>()
        .register::<zipkin::Zipkin>()
        .register_credential::<mtls_auth::credentials::MtlsAuthCredentials>();
}

/// A registry with every stock plugin: what the bundled `pingway` binary serves.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    register_all(&mut r);
    r
}
