//! The Pingway plugin contract and the stock plugins.
//!
//! A plugin is a type implementing [`Plugin`] (the request phases) and, usually,
//! [`BuildPlugin`] (its name, default priority and typed configuration). Register it in a
//! [`Registry`] and reference it by name in the gateway's YAML. See `docs/plugins.md` for
//! the contract in full and a worked example.
//!
//! Authentication plugins identify [`consumers`] (the `consumers:` section, compiled
//! once per load into a [`ConsumerSet`] that plugins reach through
//! [`PluginRequest::consumers`]) and record the identity in [`RequestCtx`], where later
//! plugins such as `rate-limiting` and `acl` read it.
//!
//! Plugin authors normally depend on `pingway`, which re-exports this crate as
//! `pingway::plugins`.

#![warn(missing_docs)]

pub mod config;
pub mod consumers;
pub mod context;
pub mod header_values;
pub mod pace;
pub mod plugin;
pub mod registry;
pub mod stock;

pub use async_trait::async_trait;
pub use consumers::ConsumerSet;
pub use context::{
    BufferedBody, Consumer, CredentialId, RequestCtx, RequestId, ResponseHeaderName, RouteInfo,
};
pub use plugin::{Body, BodyError, Flow, LogEntry, Plugin, PluginRequest, Response};
pub use registry::{BuildContext, BuildPlugin, ConfigError, PluginFactory, PluginScope, Registry};

/// Re-exported so plugin crates use the same versions as the gateway.
pub use {bytes, http, pingora_http, pingora_proxy, schemars, serde, serde_json};
