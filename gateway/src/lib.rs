//! Pingway: a programmable API gateway on Cloudflare's Pingora.
//!
//! One Pingora `ProxyHttp` implementation runs every request through a chain of plugins
//! chosen by a declarative YAML file that is reloaded live. Use it three ways: run the
//! `pingway` binary, write plugins against [`plugins`], or embed the gateway in your own
//! binary with [`Gateway`].

#![warn(missing_docs)]

pub mod config;
pub mod convert;
pub mod router;
pub mod upstream;

/// The plugin contract (the `pingway-plugin` crate): what a plugin author needs.
pub use pingway_plugin as plugins;
/// The stock plugins and consumers (the `pingway-plugins` crate).
pub use pingway_plugins as stock;
pub mod access_log;
pub mod acme;
pub mod admin;
pub mod cache;
pub mod chain;
pub mod client_identity;
pub mod compression;
pub mod demo;
pub mod downstream;
pub mod explain;
pub mod gateway;
pub mod headers;
pub mod https_only;
pub mod kubernetes;
pub mod live_stats;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod mirror;
pub mod plugin_host;
pub mod plugin_lifecycle;
pub mod proxy;
pub mod reload;
pub mod request_head;
pub mod resilience;
pub mod respond;
pub mod route_headers;
pub mod route_rewrite;
pub mod runtime;
pub mod tls;
pub mod tls_handshakes;

pub use gateway::{Gateway, GatewayBuilder, StartError};
pub mod cli;
