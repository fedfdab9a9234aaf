//! Consumers: the identities that authentication plugins attach to requests, with their
//! credentials, ACL groups and per-consumer plugins.
//!
//! The `consumers:` section of the configuration uses Kong's declarative shape
//! ([`ConsumerConfig`]). It is compiled once per load into a [`ConsumerSet`], whose
//! credential lookups are hash maps. The gateway offers the set as a shared service of
//! the configuration: plugins reach it per request with
//! [`Request::service`](crate::Request::service) and at build time with
//! [`BuildContext::service`](crate::BuildContext::service) (to check names such as
//! `anonymous`); [`crate::auth::consumers`] does both lookups for the stock plugins.
//!
//! Secrets ([`Secret`]) never appear in `Debug` output, logs or error messages, and are
//! not kept in the clear once the set is built.

mod config;
mod jwt_key;
mod password;
mod set;

pub use config::{
    AclGroupConfig, BasicAuthCredentialConfig, ConsumerConfig, JwtAlgorithm, JwtSecretConfig,
    KeyAuthCredentialConfig, Secret,
};
pub use jwt_key::{decode_base64_lenient, JwtVerifier, VerifyError};
pub use set::{Authenticated, ConsumerSet, JwtCredential};
