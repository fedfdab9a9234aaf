//! The stock plugins, with Kong's names, configuration fields, priorities and responses.

pub mod acl;
pub mod auth;
pub mod basic_auth;
pub mod ip_restriction;
pub mod jwt;
pub mod key_auth;
pub mod rate_limiting;

use crate::registry::Registry;

/// Registers every stock plugin.
pub fn register_all(registry: &mut Registry) {
    registry
        .register::<acl::Acl>()
        .register::<basic_auth::BasicAuth>()
        .register::<ip_restriction::IpRestriction>()
        .register::<jwt::Jwt>()
        .register::<key_auth::KeyAuth>()
        .register::<rate_limiting::RateLimiting>();
}
