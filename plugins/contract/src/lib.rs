//! The Pingway plugin contract.
//!
//! A plugin is a type implementing [`Plugin`] (one method per phase of a request, each
//! with an empty default) and [`BuildPlugin`] (its name, default priority and typed
//! configuration). Register it in a [`Registry`] and reference it by name in the
//! gateway's YAML. See `docs/plugins.md` for the contract in full with worked examples.
//!
//! Plugins see Pingway's own views of the request and the response ([`Request`],
//! [`UpstreamRequest`], [`ResponseView`]), built on the `http` crate's types; no Pingora
//! type appears in this crate, and it depends on no Pingora and no cryptography, so a
//! plugin crate that depends on it alone builds quickly and survives Pingora upgrades.
//! The [`testkit`] drives a plugin's phases in a unit test, without a server.
//!
//! Plugin authors normally depend on `pingway`, which re-exports this crate as
//! `pingway::plugins`.

#![warn(missing_docs)]

pub mod config;
pub mod context;
pub mod credentials;
pub mod header_values;
pub mod lifecycle;
pub mod pace;
pub mod plugin;
pub mod registry;
pub mod response;
pub mod services;
pub mod testkit;
pub mod timings;
pub mod view;

pub use async_trait::async_trait;
pub use context::{
    BufferedBody, Consumer, CredentialId, RequestCtx, RequestId, ResponseHeaderName, RouteInfo,
};
pub use credentials::{Credential, CredentialKind};
pub use lifecycle::{Lifecycle, ShutdownTrigger};
pub use plugin::{Flow, LogEntry, Plugin};
pub use registry::{BuildContext, BuildPlugin, ConfigError, PluginFactory, PluginScope, Registry};
pub use response::{Body, Response};
pub use services::Services;
pub use timings::{ConnectTiming, PhaseTiming, Timings};
pub use view::{
    BodyError, Request, RequestBodySource, RequestHead, RequestSource, ResponseHead, ResponseView,
    UpstreamChoice, UpstreamRequest, MAX_BUFFERED_BODY,
};

/// Re-exported so plugin crates use the same versions as the gateway.
pub use {bytes, http, schemars, serde, serde_json};
