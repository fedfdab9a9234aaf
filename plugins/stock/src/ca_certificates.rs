//! The configuration's CA certificates (Kong's `ca_certificates` entities): trusted
//! certificates by id, which `mtls-auth` and its `mtls_auth_credentials` name.
//!
//! The gateway reads the top-level `ca_certificates:` section (inline PEM or a file,
//! each checked to be one CA certificate) and offers the result as a shared service of
//! the configuration; plugins find it with
//! [`BuildContext::service`](crate::BuildContext::service).

use std::collections::BTreeMap;

use bytes::Bytes;

/// CA certificates by id, as DER.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CaCertificates {
    by_id: BTreeMap<String, Bytes>,
}

impl CaCertificates {
    /// An empty set.
    pub fn new() -> Self {
        CaCertificates::default()
    }

    /// Adds the certificate `der` under `id`; `false` (and nothing changes) when the id
    /// is taken already.
    pub fn insert(&mut self, id: impl Into<String>, der: impl Into<Bytes>) -> bool {
        match self.by_id.entry(id.into()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(der.into());
                true
            }
        }
    }

    /// The certificate with id `id` (DER).
    pub fn get(&self, id: &str) -> Option<&Bytes> {
        self.by_id.get(id)
    }

    /// The ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
