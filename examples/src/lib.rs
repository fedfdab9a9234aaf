//! Plugins written outside Pingway, the way a user writes them, each in its own module:
//!
//! - [`request_digest`]: `request-digest` adds a header computed from the request to what
//!   the upstream receives (the first example);
//! - [`require_header`]: `require-header`, a synchronous header check (400 / 403);
//! - [`authorize`]: `http-authorize`, an async call-out to an authorization service with a
//!   bounded cache, failing closed;
//! - [`log_shipper`]: `log-shipper`, a bounded queue drained by a background task that
//!   batches entries to a collector and flushes on shutdown;
//! - [`phases`]: small plugins for the phases no stock plugin uses (pre-routing rewrite,
//!   upstream choice, request body, upstream response and response body).
//!
//! The binary `custom-gateway` (src/bin/custom-gateway.rs) registers them beside the
//! stock plugins ([`register`]) and runs Pingway's own command line, so
//! `custom-gateway run --config FILE` and `custom-gateway validate FILE` know them by
//! name.

#![warn(missing_docs)]

pub mod authorize;
pub mod config_duration;
pub mod log_shipper;
pub mod log_throttle;
pub mod phases;
pub mod request_digest;
pub mod require_header;
pub mod ttl_cache;

pub use authorize::HttpAuthorize;
pub use log_shipper::LogShipper;
pub use phases::{Canary, MaxBody, PathRewrite, ShoutText};
pub use request_digest::{digest, Part, RequestDigest, RequestDigestConfig};
pub use require_header::RequireHeader;

/// Adds every example plugin to `registry`: what `custom-gateway` does.
pub fn register(registry: &mut pingway::plugins::Registry) {
    registry
        .register::<RequestDigest>()
        .register::<RequireHeader>()
        .register::<HttpAuthorize>()
        .register::<LogShipper>()
        .register::<PathRewrite>()
        .register::<Canary>()
        .register::<MaxBody>()
        .register::<ShoutText>();
}
