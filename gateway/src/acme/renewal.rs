//! The background service that obtains and renews the managed certificates.
//!
//! Every second it looks at the configuration serving now (so a reload that adds a host
//! is handled within a second); each certificate is checked at most once per
//! `acme.check_interval`, and ordered when none is served or the one served expires
//! within `acme.renew_before`. Orders run one at a time. A failed order is logged
//! (the CA's problem, no key material), counted, and retried after a backoff, while the
//! certificate already served (if any) keeps being served.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use instant_acme::Account;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;

use super::client::{self, AccountSettings, OrderError};
use super::{AcmeState, Issued, ManagedCertificate};
use crate::config::AcmeConfig;
use crate::runtime::Runtime;

/// How often the service wakes up to look for work.
const TICK: Duration = Duration::from_secs(1);

/// One order, account set-up included, at most (a CA that hangs does not stall renewals
/// for ever).
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

/// Obtains and renews the managed certificates of whatever configuration serves.
pub struct AcmeRenewal {
    runtime: Arc<ArcSwap<Runtime>>,
}

impl AcmeRenewal {
    /// The service for the configurations `runtime` holds.
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        AcmeRenewal { runtime }
    }
}

/// The account, set up on first need and again when its settings change.
#[derive(Default)]
struct AccountCache(Option<(AccountSettings, Account)>);

impl AccountCache {
    async fn get(&mut self, cfg: &AcmeConfig) -> Result<Account, OrderError> {
        let settings = AccountSettings::of(cfg);
        if let Some((s, account)) = &self.0 {
            if *s == settings {
                return Ok(account.clone());
            }
        }
        let account = client::account(&settings).await?;
        log::info!("acme: account ready at {}", cfg.directory);
        self.0 = Some((settings, account.clone()));
        Ok(account)
    }
}

impl AcmeRenewal {
    /// One look at the configuration serving now: orders what is due, one at a time.
    async fn pass(&self, accounts: &mut AccountCache) {
        let (cfg, state, managed) = {
            let runtime = self.runtime.load();
            let Some(cfg) = runtime.config.acme.clone() else {
                return;
            };
            // Taken out so that the configuration is not held during an order.
            let managed: Vec<Arc<ManagedCertificate>> =
                runtime.certificates.managed().cloned().collect();
            (cfg, runtime.acme.clone(), managed)
        };
        let (interval, renew_before) = (cfg.check_interval.get(), cfg.renew_before.get());
        for m in managed {
            if !m.order_due(Instant::now(), SystemTime::now(), interval, renew_before) {
                continue;
            }
            let names = m.names().join(", ");
            let renewing = m.issued();
            log::info!(
                "acme: ordering a certificate for {names}{}",
                match &renewing {
                    Some(i) => format!(
                        " (the one served expires {})",
                        crate::admin::time::rfc3339(i.not_after)
                    ),
                    None => String::new(),
                }
            );
            let outcome =
                match tokio::time::timeout(ORDER_TIMEOUT, obtain(&cfg, &state, &m, accounts)).await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!("no certificate after {ORDER_TIMEOUT:?}")),
                };
            match &outcome {
                Ok(issued) => {
                    state.orders_issued.fetch_add(1, Ordering::Relaxed);
                    log::info!(
                        "acme: installed a certificate for {names} (serial {}, expires {})",
                        issued.serial,
                        crate::admin::time::rfc3339(issued.not_after)
                    );
                }
                Err(e) => {
                    state.orders_failed.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "acme: the order for {names} failed: {e}; {}",
                        if renewing.is_some() {
                            "the current certificate keeps being served"
                        } else {
                            "its names get the default certificate meanwhile"
                        }
                    );
                }
            }
            m.record(Instant::now(), outcome.map(|_| ()), interval);
        }
    }
}

/// Orders a certificate for `m`, stores it and serves it; what it installed.
async fn obtain(
    cfg: &AcmeConfig,
    state: &AcmeState,
    m: &Arc<ManagedCertificate>,
    accounts: &mut AccountCache,
) -> Result<Arc<Issued>, String> {
    let account = accounts.get(cfg).await.map_err(|e| {
        // Set up again next time: the CA may have been down.
        *accounts = AccountCache::default();
        format!("account: {e}")
    })?;
    let challenges = state.challenges.clone();
    let (chain, key) = client::order(&account, m.names(), &challenges)
        .await
        .map_err(|e| e.to_string())?;
    let issued = Issued::from_pem(&chain, &key, m.names(), SystemTime::now())
        .map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
    // Stored before it is served: what a restart finds is what was served.
    let (storage, id) = (PathBuf::from(&cfg.storage), m.id.clone());
    tokio::task::spawn_blocking(move || {
        super::storage::save_certificate(&storage, &id, &chain, &key)
    })
    .await
    .map_err(|e| format!("storage: {e}"))?
    .map_err(|e| format!("storage: cannot write {}: {e}", cfg.storage))?;
    m.install(issued);
    m.issued()
        .ok_or_else(|| "the installed certificate vanished".to_string())
}

#[async_trait]
impl BackgroundService for AcmeRenewal {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut accounts = AccountCache::default();
        loop {
            tokio::select! {
                _ = self.pass(&mut accounts) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
