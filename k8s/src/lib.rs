//! Pingway's Kubernetes watcher: it reads Ingresses, IngressClasses, Services,
//! EndpointSlices, TLS and credential Secrets, plugin resources (ours and Kong's) and
//! Kong's consumers, and keeps one gateway YAML file up to date, which `pingway run`
//! reloads as it does any edit.
//!
//! - [`translate`]: the pure function from a snapshot of objects to the configuration.
//! - [`watch`]: the kube-rs watchers and reflector stores that feed it, the debounce and
//!   the atomic write.
//! - [`cert_files`]: certificates and keys as files beside the YAML, named by content.
//! - [`crd`]: the plugin resources, and [`crd::crds`] for the manifests.
//! - [`gateway_api`]: the Gateway API resources read (not ours: not in the CRDs), and
//!   [`gateway_status`], which writes their status back.
//! - [`crd`]: the plugin and consumer resources, and [`crd::crds`] for the manifests.
//! - [`load`]: objects from manifest files, for `pingway-k8s translate` and tests.
//! - [`leader`]: Lease leader election; only the leader writes to the cluster:
//!   [`events`] (an Event per skipped object) and [`status`] (`status.loadBalancer` of
//!   the Ingresses served).

#![warn(missing_docs)]

pub mod cert_files;
pub mod crd;
pub mod events;
pub mod gateway_api;
pub mod gateway_status;
pub mod leader;
pub mod load;
pub mod probe;
pub mod render;
pub mod retry;
pub mod status;
pub mod translate;
pub mod watch;
pub mod write;

pub use translate::{
    translate, LeftOut, Limits, Options, Problem, Snapshot, Translation, UpstreamMode,
};
