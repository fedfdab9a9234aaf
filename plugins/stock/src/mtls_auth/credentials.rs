//! `mtls_auth_credentials`: a consumer's certificate subject names (Kong's manual
//! mappings), a credential kind registered through the contract.
//!
//! ```yaml
//! consumers:
//!   - username: billing
//!     mtls_auth_credentials:
//!       - subject_name: billing.internal          # a SAN or the CN
//!         ca_certificate: internal-ca             # optional: only from this CA
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::ca_certificates::CaCertificates;
use crate::config::Diagnostic;
use crate::context::Consumer;
use crate::credentials::{Credential, CredentialKind};
use crate::registry::ConfigError;
use crate::Services;

/// One `mtls_auth_credentials` entry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MtlsAuthCredentialConfig {
    /// The credential's id (Kong's declarative files carry one); sent upstream as
    /// `X-Credential-Identifier`.
    #[serde(default)]
    pub id: Option<String>,
    /// A subject alternative name or the common name of the client's certificate.
    pub subject_name: String,
    /// The id of a `ca_certificates` entry: the mapping then holds only for
    /// certificates that chain to that CA. Without it, any CA of the plugin.
    #[serde(default)]
    pub ca_certificate: Option<String>,
    /// Free-form tags (Kong's), kept for compatibility.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// A mapping's consumer and its credential id.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The consumer the subject name belongs to.
    pub consumer: Arc<Consumer>,
    /// The credential's id, else the subject name.
    pub credential: Arc<str>,
}

/// The mappings of every consumer, by (subject name, CA id).
#[derive(Debug, Default)]
pub struct MtlsCredentials {
    by_subject: HashMap<(String, Option<String>), Mapping>,
    /// Each entry's CA id, with its field path, for [`check_ca_references`].
    ca_references: Vec<(String, String)>,
}

impl MtlsCredentials {
    /// The mapping of `subject_name` for certificates from the CA `ca_id`, else for
    /// any CA (Kong's order).
    pub fn find(&self, subject_name: &str, ca_id: &str) -> Option<&Mapping> {
        self.by_subject
            .get(&(subject_name.to_string(), Some(ca_id.to_string())))
            .or_else(|| self.by_subject.get(&(subject_name.to_string(), None)))
    }
}

/// The `mtls_auth_credentials` credential kind.
#[derive(Debug)]
pub struct MtlsAuthCredentials;

impl CredentialKind for MtlsAuthCredentials {
    const FIELD: &'static str = "mtls_auth_credentials";
    type Config = MtlsAuthCredentialConfig;
    type Index = MtlsCredentials;

    fn index(entries: Vec<Credential<Self::Config>>) -> Result<MtlsCredentials, ConfigError> {
        let mut index = MtlsCredentials::default();
        let mut error: Option<ConfigError> = None;
        let mut first_at: HashMap<(String, Option<String>), String> = HashMap::new();
        for entry in entries {
            let c = entry.config;
            if c.subject_name.is_empty() {
                let e = (format!("{}.subject_name", entry.path), "must not be empty");
                error = Some(match error {
                    None => ConfigError::new(e.0, e.1),
                    Some(err) => err.and(e.0, e.1),
                });
                continue;
            }
            let key = (c.subject_name.clone(), c.ca_certificate.clone());
            if let Some(first) = first_at.get(&key) {
                let field = format!("{}.subject_name", entry.path);
                let message = format!(
                    "subject_name {:?} is mapped already (at {first}) for the same ca_certificate",
                    c.subject_name
                );
                error = Some(match error {
                    None => ConfigError::new(field, message),
                    Some(err) => err.and(field, message),
                });
                continue;
            }
            first_at.insert(key.clone(), entry.path.clone());
            if let Some(ca) = &c.ca_certificate {
                index
                    .ca_references
                    .push((format!("{}.ca_certificate", entry.path), ca.clone()));
            }
            let credential = Arc::from(c.id.as_deref().unwrap_or(&c.subject_name));
            index.by_subject.insert(
                key,
                Mapping {
                    consumer: entry.consumer,
                    credential,
                },
            );
        }
        match error {
            Some(e) => Err(e),
            None => Ok(index),
        }
    }
}

/// Every `mtls_auth_credentials[].ca_certificate` that names no entry of the
/// configuration's `ca_certificates` (both found in `services`), with its field path.
/// The host calls it once both are built.
pub fn check_ca_references(services: &Services) -> Vec<Diagnostic> {
    let Some(index) = services.get::<MtlsCredentials>() else {
        return Vec::new();
    };
    let cas = services.get::<CaCertificates>();
    index
        .ca_references
        .iter()
        .filter(|(_, id)| cas.is_none_or(|c| c.get(id).is_none()))
        .map(|(path, id)| {
            Diagnostic::new(
                path.clone(),
                format!("no CA certificate with id {id:?} in the top-level `ca_certificates`"),
            )
        })
        .collect()
}
