//! Credential kinds a plugin brings: an auth plugin (mtls-auth, hmac-auth, oauth2...)
//! registers where its credentials are written under a consumer and how they are
//! indexed, and finds consumers by them at request time, with no change to the consumer
//! code.
//!
//! ```yaml
//! consumers:
//!   - username: alice
//!     hmacauth_credentials:          # a field a plugin registered
//!       - {username: alice-hmac, secret: s3cr3t}
//! ```
//!
//! The host reads the consumers (id, username, custom_id, groups and the stock
//! credentials), then, for each registered kind, hands it every entry of its field with
//! the consumer it belongs to; the index the kind builds becomes a shared service of the
//! configuration, which the plugin reaches with
//! [`Request::service`](crate::Request::service).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::config::{from_node, ConfigNode, Diagnostic};
use crate::context::Consumer;
use crate::registry::ConfigError;

/// One credential entry, with the consumer it belongs to.
#[derive(Debug)]
#[non_exhaustive]
pub struct Credential<C> {
    /// The consumer the credential is written under.
    pub consumer: Arc<Consumer>,
    /// The entry, typed.
    pub config: C,
    /// Its field path, such as `consumers[2].hmacauth_credentials[0]`; start a
    /// [`ConfigError`] field with it so problems point at the entry.
    pub path: String,
}

/// A kind of credential: the consumer field that holds it, its typed entries, and the
/// index built from them once per configuration load.
pub trait CredentialKind: Send + Sync + 'static {
    /// The consumer field, in Kong's naming (`hmacauth_credentials`, `mtls_auth_credentials`).
    const FIELD: &'static str;
    /// One entry. Unknown fields are rejected, as everywhere in the file.
    type Config: DeserializeOwned + JsonSchema;
    /// What requests look consumers up in (a map by key, a trie of subjects...).
    type Index: Send + Sync + 'static;

    /// Builds the index from every entry of every consumer. Reject duplicates and bad
    /// values here, with field paths starting from an entry's [`Credential::path`].
    fn index(entries: Vec<Credential<Self::Config>>) -> Result<Self::Index, ConfigError>;
}

/// A registered credential kind, type-erased (what the [`Registry`](crate::Registry)
/// keeps).
pub trait CredentialFactory: Send + Sync + 'static {
    /// The consumer field.
    fn field(&self) -> &'static str;

    /// Types every entry and builds the index, as a shared service value; or every
    /// problem found.
    fn build(
        &self,
        entries: Vec<(Arc<Consumer>, &ConfigNode, String)>,
    ) -> Result<IndexValue, Vec<Diagnostic>>;

    /// The JSON Schema of one entry.
    fn entry_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
}

/// A built index, ready to be offered as a shared service.
pub struct IndexValue {
    value: Arc<dyn Any + Send + Sync>,
    insert: fn(&mut crate::Services, Arc<dyn Any + Send + Sync>),
}

impl IndexValue {
    /// Adds the index to `services`, under its own type.
    pub fn insert_into(self, services: &mut crate::Services) {
        (self.insert)(services, self.value)
    }
}

impl std::fmt::Debug for IndexValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexValue")
    }
}

pub(crate) struct TypedCredentials<K>(pub(crate) PhantomData<fn() -> K>);

impl<K: CredentialKind> CredentialFactory for TypedCredentials<K> {
    fn field(&self) -> &'static str {
        K::FIELD
    }

    fn build(
        &self,
        entries: Vec<(Arc<Consumer>, &ConfigNode, String)>,
    ) -> Result<IndexValue, Vec<Diagnostic>> {
        let mut typed = Vec::with_capacity(entries.len());
        let mut problems = Vec::new();
        for (consumer, node, path) in entries {
            match from_node::<K::Config>(node, &path) {
                Ok(config) => typed.push(Credential {
                    consumer,
                    config,
                    path,
                }),
                Err(mut d) => problems.append(&mut d),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let index = K::index(typed).map_err(|e| {
            e.problems()
                .iter()
                .map(|(field, message)| Diagnostic::new(field.clone(), message.clone()))
                .collect::<Vec<_>>()
        })?;
        Ok(IndexValue {
            value: Arc::new(index),
            insert: |services, value| {
                if let Ok(index) = value.downcast::<K::Index>() {
                    services.insert(index);
                }
            },
        })
    }

    fn entry_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<K::Config>()
    }
}
