//! End-to-end tests: the real `pingway` binary on 127.0.0.1 ephemeral ports, real
//! backends, real HTTP clients. One test binary (linking Pingora once) with a module per
//! area.

mod common;

mod balancing;
mod cli;
mod demo;
mod errors;
mod ip_restriction;
mod rate_limiting;
mod reload;
mod routing;
