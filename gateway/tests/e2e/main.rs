//! End-to-end tests: the real `pingway` binary on 127.0.0.1 ephemeral ports, real
//! backends, real HTTP clients. One test binary (linking Pingora once) with a module per
//! area.

mod common;

mod acl;
mod admin;
mod auth_fixtures;
mod balancing;
mod basic_auth;
mod bot_detection;
mod cli;
mod consumers;
mod correlation_id;
mod cors;
mod demo;
mod errors;
mod fault_injection;
mod hardening;
mod ip_restriction;
mod jwt;
mod key_auth;
mod logging;
mod prometheus;
mod rate_limit_redis;
mod rate_limiting;
mod redirect;
mod reload;
mod reload_limits;
mod reload_watch;
mod request_size_limiting;
mod request_termination;
mod request_transformer;
mod resilience;
mod response_transformer;
mod route_headers;
mod routing;
mod split;
mod upstream_targets;
