//! `mtls-auth`: authenticate with the client certificate of the TLS handshake, as
//! Kong's (enterprise) plugin does.
//!
//! - The HTTPS listener asks for a client certificate and checks that the client holds
//!   its key; this plugin verifies the chain against its `ca_certificates` (ids of the
//!   top-level `ca_certificates:` section) with rustls' webpki: valid now, leading to one
//!   of the CAs (a root, unless `allow_partial_chain`), `clientAuth` usage allowed.
//! - No certificate (or a plain-HTTP request): 401 `No required TLS certificate was
//!   sent`. A chain that fails, or that matches no consumer: 401 `TLS certificate failed
//!   verification`. The reason goes to the log at debug level, never to the client.
//! - The consumer, unless `skip_consumer_lookup`, is found in Kong's order: for each
//!   subject name of the certificate (its SANs, then its CN), an `mtls_auth_credentials`
//!   mapping for that name and the CA the chain led to, then one for any CA; then, with
//!   `consumer_by`, for each name, a consumer whose `username` / `custom_id` is that
//!   name; then `default_consumer`. It is attached with `X-Consumer-*` headers as by
//!   every auth plugin.
//! - With `skip_consumer_lookup`, any client with a valid certificate passes: the
//!   upstream gets `X-Client-Cert-DN` and `X-Client-Cert-SAN`, and with
//!   `authenticated_group_by` (`CN` by default, or `DN`) the request carries that value
//!   as its authenticated group, which `acl` judges.
//! - Verified chains are remembered for `cache_ttl` seconds (never past a certificate's
//!   expiry), at most [`trust::MAX_CACHED_CHAINS`] per instance.
//! - Revocation (CRL, OCSP) is not checked: only `revocation_check_mode: SKIP` is
//!   accepted, and the other modes are refused at load rather than pretended.
//! - `anonymous` behaves as described in `stock::auth`.

pub mod credentials;
pub mod identity;
pub mod trust;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use super::auth;
use crate::ca_certificates::CaCertificates;
use crate::context::{Consumer, CredentialId};
use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, Response};
use credentials::MtlsCredentials;
use trust::{TrustSet, Verified};

/// Kong's answer when the client sent no certificate.
pub const NO_CERTIFICATE: &str = "No required TLS certificate was sent";
/// Kong's answer when the certificate failed, or matched no consumer.
pub const FAILED: &str = "TLS certificate failed verification";

/// `X-Client-Cert-DN` (with `skip_consumer_lookup`).
pub const CLIENT_CERT_DN: HeaderName = HeaderName::from_static("x-client-cert-dn");
/// `X-Client-Cert-SAN` (with `skip_consumer_lookup`).
pub const CLIENT_CERT_SAN: HeaderName = HeaderName::from_static("x-client-cert-san");

/// The certificate property that becomes the authenticated group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum GroupBy {
    /// The subject's common name.
    #[serde(rename = "CN")]
    Cn,
    /// The subject's distinguished name (`CN=alice,O=Acme`).
    #[serde(rename = "DN")]
    Dn,
}

/// Kong's revocation check modes. Only `SKIP` is accepted (no CRL or OCSP checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RevocationCheckMode {
    /// No revocation check.
    #[default]
    Skip,
    /// Check CRL/OCSP, tolerating unreachable responders (refused at load).
    IgnoreCaError,
    /// Check CRL/OCSP strictly (refused at load).
    Strict,
}

/// A consumer field certificate names are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerField {
    /// The consumer's `username`.
    Username,
    /// The consumer's `custom_id`.
    CustomId,
}

fn default_group_by() -> Option<GroupBy> {
    Some(GroupBy::Cn)
}

fn default_consumer_by() -> Option<Vec<ConsumerField>> {
    Some(vec![ConsumerField::Username, ConsumerField::CustomId])
}

fn default_cache_ttl() -> f64 {
    60.0
}

fn default_cert_cache_ttl() -> f64 {
    60_000.0
}

/// Kong's `mtls-auth` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MtlsAuthConfig {
    /// Ids of top-level `ca_certificates` entries: the CAs client certificates must
    /// chain to. At least one.
    pub ca_certificates: Vec<String>,
    /// Let any client with a valid certificate through without looking up a consumer.
    #[serde(default)]
    pub skip_consumer_lookup: bool,
    /// With `skip_consumer_lookup`: the certificate property (`CN` or `DN`) that
    /// becomes the request's authenticated group (for `acl`); `null` for none.
    #[serde(default = "default_group_by")]
    pub authenticated_group_by: Option<GroupBy>,
    /// `SKIP` only: revocation is not checked (the other modes are refused).
    #[serde(default)]
    pub revocation_check_mode: RevocationCheckMode,
    /// Accept a chain that ends at a configured intermediate CA (not a root).
    #[serde(default)]
    pub allow_partial_chain: bool,
    /// Consumer fields matched against the certificate's names (`username`,
    /// `custom_id`); `[]` or `null` to match only `mtls_auth_credentials`.
    #[serde(default = "default_consumer_by")]
    pub consumer_by: Option<Vec<ConsumerField>>,
    /// A consumer (id or username) to let failed requests through as.
    #[serde(default)]
    pub anonymous: Option<String>,
    /// A consumer (id or username) for a valid certificate that matches no consumer.
    #[serde(default)]
    pub default_consumer: Option<String>,
    /// Seconds a verified chain is remembered (0: verify on every request).
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: f64,
    /// Kong's revocation-status cache (milliseconds); accepted, no effect (no
    /// revocation checks).
    #[serde(default = "default_cert_cache_ttl")]
    pub cert_cache_ttl: f64,
    /// Name the plugin's CAs in the listener's certificate request (the hints clients
    /// choose a certificate by). Read when the listener starts.
    #[serde(default)]
    pub send_ca_dn: bool,
    /// Kong's timeout for revocation fetches (milliseconds); accepted, no effect.
    #[serde(default)]
    pub http_timeout: Option<f64>,
    /// Kong's proxy for revocation fetches; accepted, no effect.
    #[serde(default)]
    pub http_proxy_host: Option<String>,
    /// Kong's proxy for revocation fetches; accepted, no effect.
    #[serde(default)]
    pub http_proxy_port: Option<u16>,
    /// Kong's proxy for revocation fetches; accepted, no effect.
    #[serde(default)]
    pub https_proxy_host: Option<String>,
    /// Kong's proxy for revocation fetches; accepted, no effect.
    #[serde(default)]
    pub https_proxy_port: Option<u16>,
}

/// The `mtls-auth` plugin.
#[derive(Debug)]
pub struct MtlsAuth {
    trust: TrustSet,
    skip_consumer_lookup: bool,
    group_by: Option<GroupBy>,
    consumer_by: Vec<ConsumerField>,
    anonymous: Option<String>,
    default_consumer: Option<String>,
}

impl MtlsAuth {
    /// The CAs and the verified-chain cache of this instance.
    pub fn trust(&self) -> &TrustSet {
        &self.trust
    }

    fn failed() -> Response {
        Response::error(StatusCode::UNAUTHORIZED, FAILED)
    }

    fn verify(&self, req: &Request<'_>) -> Result<Arc<Verified>, Response> {
        let Some(chain) = req.client_certificate_chain() else {
            return Err(Response::error(StatusCode::UNAUTHORIZED, NO_CERTIFICATE));
        };
        self.trust.verify(chain, SystemTime::now()).map_err(|e| {
            log::debug!(
                "mtls-auth: client certificate refused on route {:?}: {e}",
                req.ctx().route_name()
            );
            Self::failed()
        })
    }

    /// The consumer of a verified certificate, in Kong's order, with its credential id.
    fn consumer_of<'a>(
        &self,
        req: &Request<'a>,
        verified: &Verified,
    ) -> Option<(Arc<Consumer>, Arc<str>)> {
        let names = &verified.identity.names;
        if let Some(index) = req.service::<MtlsCredentials>() {
            for name in names {
                if let Some(m) = index.find(name, &verified.ca_id) {
                    return Some((m.consumer.clone(), m.credential.clone()));
                }
            }
        }
        let consumers = auth::consumers(req);
        for name in names {
            for field in &self.consumer_by {
                let found = match field {
                    ConsumerField::Username => consumers.by_username(name),
                    ConsumerField::CustomId => consumers.by_custom_id(name),
                };
                if let Some(c) = found {
                    return Some((c.clone(), c.id.clone()));
                }
            }
        }
        let default = consumers.find(self.default_consumer.as_deref()?)?;
        Some((default.clone(), default.id.clone()))
    }

    fn authenticate(&self, req: &mut Request<'_>) -> Result<(), Response> {
        let verified = self.verify(req)?;
        let identity = &verified.identity;
        if self.skip_consumer_lookup {
            if let Some(group_by) = self.group_by {
                let group = match group_by {
                    GroupBy::Cn => identity.cn.clone().ok_or_else(|| {
                        log::debug!("mtls-auth: the certificate has no common name");
                        Self::failed()
                    })?,
                    GroupBy::Dn => identity.dn.clone(),
                };
                req.ctx_mut()
                    .set_authenticated_groups(Arc::from(vec![Arc::<str>::from(group)]));
            }
            if req.ctx().consumer().is_none() {
                auth::clear_identity_headers(req);
            }
            req.remove_header(&CLIENT_CERT_DN);
            req.remove_header(&CLIENT_CERT_SAN);
            if let Ok(dn) = HeaderValue::try_from(identity.dn.as_str()) {
                req.insert_header(CLIENT_CERT_DN, dn);
            }
            if !identity.sans.is_empty() {
                if let Ok(san) = HeaderValue::try_from(identity.sans.join(",")) {
                    req.insert_header(CLIENT_CERT_SAN, san);
                }
            }
            return Ok(());
        }
        let Some((consumer, credential)) = self.consumer_of(req, &verified) else {
            log::debug!(
                "mtls-auth: the certificate is valid but matches no consumer (names {:?})",
                identity.names
            );
            return Err(Self::failed());
        };
        let credential = CredentialId::new(&credential).or_else(|| CredentialId::new(&consumer.id));
        auth::set_consumer(req, &consumer, credential.as_ref());
        Ok(())
    }
}

#[async_trait::async_trait]
impl Plugin for MtlsAuth {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let anonymous = self.anonymous.as_deref();
        if auth::already_authenticated(req, anonymous) {
            return Flow::Continue;
        }
        let result = self.authenticate(req);
        auth::outcome(req, result, anonymous)
    }
}

impl BuildPlugin for MtlsAuth {
    const NAME: &'static str = "mtls-auth";
    const PRIORITY: i32 = 1600;
    const USES_CONSUMERS: bool = true;
    type Config = MtlsAuthConfig;

    fn build(config: MtlsAuthConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        if config.ca_certificates.is_empty() {
            return Err(ConfigError::new(
                "ca_certificates",
                "at least one CA certificate id is required",
            ));
        }
        if config.revocation_check_mode != RevocationCheckMode::Skip {
            return Err(ConfigError::new(
                "revocation_check_mode",
                "only SKIP is supported: Pingway does not check CRLs or OCSP, so it refuses a mode it would not honour",
            ));
        }
        if !(config.cache_ttl.is_finite() && config.cache_ttl >= 0.0) {
            return Err(ConfigError::new(
                "cache_ttl",
                "must be a number of seconds, 0 or more",
            ));
        }
        let store = cx.service::<CaCertificates>();
        let mut cas = Vec::with_capacity(config.ca_certificates.len());
        let mut error: Option<ConfigError> = None;
        for (i, id) in config.ca_certificates.iter().enumerate() {
            match store.and_then(|s| s.get(id)) {
                Some(der) => cas.push((id.as_str(), der.as_ref())),
                None => {
                    let (f, m) = (
                        format!("ca_certificates[{i}]"),
                        format!(
                            "no CA certificate with id {id:?} in the top-level `ca_certificates`"
                        ),
                    );
                    error = Some(match error {
                        None => ConfigError::new(f, m),
                        Some(e) => e.and(f, m),
                    });
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        let trust = TrustSet::new(
            cas,
            config.allow_partial_chain,
            Duration::from_secs_f64(config.cache_ttl.min(u32::MAX as f64)),
        )
        .map_err(|(id, e)| ConfigError::new("ca_certificates", format!("{id}: {e}")))?;
        let default_consumer = match config.default_consumer.filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => {
                if auth::consumers_at_build(cx).find(&d).is_none() {
                    return Err(ConfigError::new(
                        "default_consumer",
                        format!("no consumer with id or username {d:?} is defined"),
                    ));
                }
                Some(d)
            }
        };
        Ok(MtlsAuth {
            trust,
            skip_consumer_lookup: config.skip_consumer_lookup,
            group_by: config.authenticated_group_by,
            consumer_by: config.consumer_by.unwrap_or_default(),
            anonymous: auth::check_anonymous(config.anonymous, cx)?,
            default_consumer,
        })
    }
}

#[cfg(test)]
mod tests;
