//! Pingway's Kubernetes watcher: it reads Ingresses, IngressClasses, Services,
//! EndpointSlices, TLS Secrets and plugin resources (ours and Kong's) and keeps one
//! gateway YAML file up to date, which `pingway run` reloads as it does any edit.
//!
//! - [`translate`]: the pure function from a snapshot of objects to the configuration.
//! - [`watch`]: the kube-rs watchers and reflector stores that feed it, the debounce and
//!   the atomic write.
//! - [`crd`]: the plugin resources, and [`crd::crds`] for the manifests.

#![warn(missing_docs)]

pub mod crd;
pub mod render;
pub mod translate;
pub mod watch;
pub mod write;

pub use translate::{
    translate, LeftOut, Limits, Options, Problem, Snapshot, Translation, UpstreamMode,
};
