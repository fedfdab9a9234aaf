//! The stock plugins, with Kong's names, configuration fields, priorities and responses.

pub mod ip_restriction;
pub mod rate_limiting;

use crate::registry::Registry;

/// Registers every stock plugin.
pub fn register_all(registry: &mut Registry) {
    registry
        .register::<ip_restriction::IpRestriction>()
        .register::<rate_limiting::RateLimiting>();
}
