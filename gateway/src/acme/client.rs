//! Talking to the CA with `instant-acme` (ring, rustls): the account, set up once per
//! process from the stored key, and an order for one certificate through HTTP-01.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::challenges::Challenges;
use crate::config::AcmeConfig;

/// Why an account could not be set up or an order failed. Messages carry the CA's
/// problem document or the I/O error, never key material.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The CA refused, or could not be reached.
    #[error("{0}")]
    Acme(#[from] instant_acme::Error),
    /// The storage directory (account key, certificate files).
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    /// The CA's answers did not lead to a certificate.
    #[error("{0}")]
    Failed(String),
}

/// The settings an account depends on: when one changes, the account is set up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSettings {
    directory: String,
    ca_file: Option<String>,
    storage: String,
    email: Option<String>,
}

impl AccountSettings {
    /// The account settings of `cfg`.
    pub fn of(cfg: &AcmeConfig) -> Self {
        AccountSettings {
            directory: cfg.directory.clone(),
            ca_file: cfg.ca_file.clone(),
            storage: cfg.storage.clone(),
            email: cfg.email.clone(),
        }
    }
}

/// The account of `settings`' stored key (the key created on first use): an existing
/// account is found by its key, a new one is registered (agreeing to the terms of
/// service, which validation made `acme.tos_accepted` say), and its contact set to the
/// configured email.
pub async fn account(settings: &AccountSettings) -> Result<Account, OrderError> {
    let storage = PathBuf::from(&settings.storage);
    let der = tokio::task::spawn_blocking(move || super::storage::account_key(&storage))
        .await
        .map_err(|e| OrderError::Failed(format!("the account key task failed: {e}")))??;
    let key = instant_acme::Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(der.as_slice()))?;
    let builder = match &settings.ca_file {
        None => Account::builder()?,
        Some(file) => Account::builder_with_http(Box::new(client_trusting(file).await?)),
    };
    let (account, _) = builder
        .create_from_key(
            (key, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))),
            settings.directory.clone(),
        )
        .await?;
    if let Some(email) = &settings.email {
        let contact = format!("mailto:{email}");
        account.update_contacts(&[contact.as_str()]).await?;
    }
    Ok(account)
}

/// An HTTPS client that trusts the certificates of the PEM file `ca_file` (all of them;
/// `instant-acme`'s own `builder_with_root` takes only the first), with ring.
async fn client_trusting(
    ca_file: &str,
) -> Result<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        BodyWrapper<Bytes>,
    >,
    OrderError,
> {
    let path = PathBuf::from(ca_file);
    let pem = tokio::task::spawn_blocking(move || std::fs::read(&path))
        .await
        .map_err(|e| OrderError::Failed(format!("reading acme.ca_file failed: {e}")))?
        .map_err(|e| OrderError::Failed(format!("cannot read {ca_file}: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| OrderError::Failed(format!("{ca_file}: bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| OrderError::Failed(format!("{ca_file}: unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(OrderError::Failed(format!(
            "{ca_file}: no PEM certificate found"
        )));
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| OrderError::Failed(format!("TLS settings: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// How long the CA may take to validate the challenges, and then to issue.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(90);

/// A certificate for `names`: its PEM chain and its new private key (PEM). The HTTP-01
/// answers are in `challenges` while the CA validates, and removed after, whatever
/// happens.
pub async fn order(
    account: &Account,
    names: &[String],
    challenges: &Arc<Challenges>,
) -> Result<(String, String), OrderError> {
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut answering = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Validated recently for this account: nothing to prove.
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(OrderError::Failed(format!(
                    "an authorization is {other:?}, not pending"
                )))
            }
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| OrderError::Failed("the CA offers no HTTP-01 challenge".to_string()))?;
        let key_authorization = challenge.key_authorization();
        let guard = challenges
            .add(&challenge.token, key_authorization.as_str())
            .map_err(|e| OrderError::Failed(e.to_string()))?;
        answering.push(guard);
        challenge.set_ready().await?;
    }
    let retries = RetryPolicy::default()
        .initial_delay(Duration::from_millis(250))
        .timeout(VALIDATION_TIMEOUT);
    let status = order.poll_ready(&retries).await?;
    drop(answering);
    if status != OrderStatus::Ready {
        return Err(OrderError::Failed(match &order.state().error {
            Some(problem) => format!("the order is {status:?}: {problem}"),
            None => format!("the order is {status:?}, not ready"),
        }));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&retries).await?;
    Ok((chain_pem, key_pem))
}
