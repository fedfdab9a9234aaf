//! The watch loop: one kube-rs `watcher` and reflector store per kind; once every store
//! has finished its first list, each change (debounced) translates the stores' snapshot
//! and writes the file, atomically, only when its content changed. A watch that breaks
//! is resumed by the watcher (a relist after `410 Expired`), so an object deleted while
//! disconnected is gone after the relist. After each translation, three writers beside
//! the loop get it: the Gateway API status writer ([`crate::gateway_status`]: a patch
//! for each object whose status differs from the computed one), the Events writer and
//! the Ingress status writer; all three only with [`WatchOptions::cluster_writes`] and
//! while this replica holds the Lease ([`crate::leader`]), and none of them ever delays
//! the file.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::cert_files::CertificateDir;
use crate::crd::{
    ClusterGatewayPlugin, GatewayPlugin, KongClusterPlugin, KongConsumer, KongPlugin,
};
use crate::gateway_api::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use crate::translate::{translate, Options, Problem, Snapshot};

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The file written.
    pub output: PathBuf,
    /// Quiet time after a change before translating (default 200 ms): a burst of
    /// changes gives one translation.
    pub debounce: Duration,
    /// Longest a steady stream of changes can delay a translation (default 2 s).
    pub max_delay: Duration,
    /// The translation's options.
    pub translate: Options,
    /// The watcher's initial list: `true` asks for a streaming list
    /// (`sendInitialEvents=true`, Kubernetes 1.27+); `false` lists, then watches.
    pub streaming_list: bool,
    /// Writes to the cluster (Events, Ingress status), done only while leading; `None`
    /// for a read-only watcher.
    pub cluster_writes: Option<ClusterWrites>,
    /// Bumped after every write of the file (the in-process gateway reloads on it).
    pub written: Option<Arc<tokio::sync::watch::Sender<u64>>>,
    /// The largest file written: the gateway's bound on the file it reads
    /// (`--max-config-bytes`; default [`pingway::config::limits::MAX_FILE_BYTES`]). A
    /// larger translation is not written and the previous file stays.
    pub max_file_bytes: u64,
    /// How long a certificate file no configuration names any more stays in the
    /// certificate directory after the previous generation (default 30 s; see
    /// [`crate::cert_files`]).
    pub certificate_grace: Duration,
}

/// What the watcher writes to the cluster, and when it may.
#[derive(Debug, Clone)]
pub struct ClusterWrites {
    /// Whether this replica leads (see [`crate::leader`]): only the leader writes.
    pub leadership: crate::leader::Leadership,
    /// Events for skipped objects.
    pub events: crate::events::EventOptions,
    /// `status.loadBalancer` of the Ingresses served (nothing is written unless an
    /// address source is configured).
    pub status: crate::status::StatusOptions,
}

impl WatchOptions {
    /// Options with the defaults, writing `output`, with certificates and keys as
    /// files in [`crate::cert_files::dir_for`] `output`.
    pub fn new(output: PathBuf) -> WatchOptions {
        let translate = Options {
            certificate_dir: Some(crate::cert_files::dir_for(&output)),
            ..Options::default()
        };
        WatchOptions {
            output,
            debounce: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            translate,
            streaming_list: false,
            cluster_writes: None,
            written: None,
            max_file_bytes: pingway::config::limits::MAX_FILE_BYTES,
            certificate_grace: Duration::from_secs(30),
        }
    }
}

/// Counters of the loop, for logs and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Translations run.
    pub regenerations: AtomicU64,
    /// Files written (translations whose content changed).
    pub writes: AtomicU64,
    /// Write failures.
    pub write_errors: AtomicU64,
    /// Files not written because they exceed the gateway's size limit
    /// ([`WatchOptions::max_file_bytes`]); the previous file stays.
    pub oversize: AtomicU64,
    /// Certificate and key files written (see [`crate::cert_files`]).
    pub certificate_files_written: AtomicU64,
    /// Certificate and key files removed once no configuration named them.
    pub certificate_files_removed: AtomicU64,
    /// Watch errors (each retried with backoff by the watcher).
    pub watch_errors: AtomicU64,
    /// Gateway API status patches sent (leader only; only when different).
    pub gateway_status_writes: AtomicU64,
    /// Gateway API status patches that failed (sent again by a retry, or planned again
    /// at the next translation).
    pub gateway_status_errors: AtomicU64,
    /// Times failed Gateway API status patches were sent again with no new translation
    /// (see [`crate::retry`]).
    pub gateway_status_retries: AtomicU64,
    /// Routes the [`Limits`](crate::translate::Limits) left out of the last
    /// regeneration (a gauge).
    pub left_out_routes: AtomicU64,
    /// Upstream pools left out of the last regeneration (a gauge).
    pub left_out_upstreams: AtomicU64,
    /// Targets left out of the last regeneration (a gauge).
    pub left_out_targets: AtomicU64,
    /// Certificates left out of the last regeneration (a gauge).
    pub left_out_certificates: AtomicU64,
    /// Events published (leader only).
    pub events_published: AtomicU64,
    /// New problems not published because a translation had more than the bound
    /// ([`crate::events::EventOptions::max_per_round`]); tried again at the next one.
    pub events_dropped: AtomicU64,
    /// Events the API server refused.
    pub event_errors: AtomicU64,
    /// Translations the status writer looked at (leader or not).
    pub status_rounds: AtomicU64,
    /// Ingress status patches written (leader only; only when different).
    pub status_writes: AtomicU64,
    /// Ingress status patches refused.
    pub status_errors: AtomicU64,
    /// Rounds that tried refused Ingress status patches again (see [`crate::retry`]).
    pub status_retries: AtomicU64,
}

impl Stats {
    pub(crate) fn bump(c: &AtomicU64) -> u64 {
        c.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A store's watcher ended before its first list finished.
    #[error("the {0} watcher stopped before its first list")]
    NeverReady(&'static str),
    /// The certificate directory cannot be created or read.
    #[error("certificate directory {path}: {source}")]
    CertificateDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Checking whether an optional resource exists failed.
    #[error("cannot tell whether {kind} exists: {source}")]
    Discovery {
        /// The resource.
        kind: &'static str,
        /// The cause.
        source: kube::Error,
    },
}

/// A store and whether the kind is watched at all.
struct Watched<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Option<Store<K>>,
    kind: &'static str,
}

impl<K> Watched<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    fn start(
        api: Api<K>,
        kind: &'static str,
        cfg: &watcher::Config,
        changed: &Arc<Notify>,
        stats: &Arc<Stats>,
    ) -> Watched<K> {
        let (reader, writer) = reflector::store();
        let changed = Arc::clone(changed);
        let stats = Arc::clone(stats);
        let stream = watcher(api, cfg.clone()).default_backoff().reflect(writer);
        tokio::spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(_) => changed.notify_one(),
                    Err(e) => {
                        Stats::bump(&stats.watch_errors);
                        log::warn!("watching {kind}: {e}; retrying");
                    }
                }
            }
        });
        Watched {
            store: Some(reader),
            kind,
        }
    }

    fn absent(kind: &'static str) -> Watched<K> {
        Watched { store: None, kind }
    }

    async fn ready(&self) -> Result<(), WatchError> {
        match &self.store {
            Some(s) => s
                .wait_until_ready()
                .await
                .map_err(|_| WatchError::NeverReady(self.kind)),
            None => Ok(()),
        }
    }

    fn state(&self) -> Vec<Arc<K>> {
        self.store.as_ref().map(Store::state).unwrap_or_default()
    }
}

/// Whether the API server serves `K` (a CRD that may not be installed).
async fn exists<K>(api: &Api<K>, kind: &'static str) -> Result<bool, WatchError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.list(&kube::api::ListParams::default().limit(1)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(source) => Err(WatchError::Discovery { kind, source }),
    }
}

/// Starts an optional kind's watcher if its CRD is installed.
async fn optional<K>(
    client: &Client,
    kind: &'static str,
    cfg: &watcher::Config,
    changed: &Arc<Notify>,
    stats: &Arc<Stats>,
) -> Result<Watched<K>, WatchError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    if exists(&api, kind).await? {
        Ok(Watched::start(api, kind, cfg, changed, stats))
    } else {
        log::info!("{kind} is not served by this cluster (CRD not installed); not watched");
        Ok(Watched::absent(kind))
    }
}

/// Runs the loop until an unrecoverable error. `stats` is updated as it goes. With
/// [`WatchOptions::cluster_writes`], the leader also writes Events, Ingress status and
/// Gateway API status; without, nothing is written to the cluster.
pub async fn run(client: Client, opts: WatchOptions, stats: Arc<Stats>) -> Result<(), WatchError> {
    let changed = Arc::new(Notify::new());
    let mut cfg = watcher::Config::default();
    if opts.streaming_list {
        cfg = cfg.streaming_lists();
    }
    let c = &client;
    let ingresses =
        Watched::<Ingress>::start(Api::all(c.clone()), "Ingress", &cfg, &changed, &stats);
    let classes =
        Watched::<IngressClass>::start(Api::all(c.clone()), "IngressClass", &cfg, &changed, &stats);
    let services =
        Watched::<Service>::start(Api::all(c.clone()), "Service", &cfg, &changed, &stats);
    let slices = Watched::<EndpointSlice>::start(
        Api::all(c.clone()),
        "EndpointSlice",
        &cfg,
        &changed,
        &stats,
    );
    // Only TLS Secrets: the others are none of the gateway's business, and holding them
    // all would cost memory in proportion to the whole cluster.
    let secrets_cfg = cfg.clone().fields("type=kubernetes.io/tls");
    let secrets = Watched::<Secret>::start(
        Api::all(c.clone()),
        "Secret",
        &secrets_cfg,
        &changed,
        &stats,
    );
    // Consumer credentials: only Secrets labelled `konghq.com/credential`, as Kong's
    // controller reads them (never every Secret of the cluster).
    let cred_cfg = cfg.clone().labels(crate::translate::CREDENTIAL_LABEL);
    let cred_secrets = Watched::<Secret>::start(
        Api::all(c.clone()),
        "Secret (credential)",
        &cred_cfg,
        &changed,
        &stats,
    );
    let gwp = optional::<GatewayPlugin>(c, "GatewayPlugin", &cfg, &changed, &stats).await?;
    let cgwp =
        optional::<ClusterGatewayPlugin>(c, "ClusterGatewayPlugin", &cfg, &changed, &stats).await?;
    let kp = optional::<KongPlugin>(c, "KongPlugin", &cfg, &changed, &stats).await?;
    let kcp = optional::<KongClusterPlugin>(c, "KongClusterPlugin", &cfg, &changed, &stats).await?;
    let gwc = optional::<GatewayClass>(c, "GatewayClass", &cfg, &changed, &stats).await?;
    let gw = optional::<Gateway>(c, "Gateway", &cfg, &changed, &stats).await?;
    let hr = optional::<HttpRoute>(c, "HTTPRoute", &cfg, &changed, &stats).await?;
    let rg = optional::<ReferenceGrant>(c, "ReferenceGrant", &cfg, &changed, &stats).await?;
    let kc = optional::<KongConsumer>(c, "KongConsumer", &cfg, &changed, &stats).await?;

    ingresses.ready().await?;
    classes.ready().await?;
    services.ready().await?;
    slices.ready().await?;
    secrets.ready().await?;
    cred_secrets.ready().await?;
    gwp.ready().await?;
    cgwp.ready().await?;
    kp.ready().await?;
    kcp.ready().await?;
    gwc.ready().await?;
    gw.ready().await?;
    hr.ready().await?;
    rg.ready().await?;
    kc.ready().await?;
    log::info!(
        "every store has its first list; writing {}",
        opts.output.display()
    );

    let (events_tx, status_tx, gateway_status_tx) = match &opts.cluster_writes {
        Some(w) => (
            Some(crate::events::spawn(
                client.clone(),
                w.leadership.clone(),
                w.events.clone(),
                Arc::clone(&stats),
            )),
            w.status.enabled().then(|| {
                crate::status::spawn(
                    client.clone(),
                    w.leadership.clone(),
                    w.status.clone(),
                    Arc::clone(&stats),
                )
            }),
            Some(crate::gateway_status::spawn(
                client.clone(),
                w.leadership.clone(),
                opts.translate.gateway_controller.clone(),
                Arc::clone(&stats),
            )),
        ),
        None => (None, None, None),
    };
    // A replica that becomes leader translates again, so the Gateway API status it now
    // owns is written without waiting for a change in the cluster.
    if let Some(w) = &opts.cluster_writes {
        let mut leadership = w.leadership.clone();
        let changed = Arc::clone(&changed);
        tokio::spawn(async move {
            while leadership.changed().await.is_ok() {
                if *leadership.borrow_and_update() {
                    changed.notify_one();
                }
            }
        });
    }

    let mut certs = match &opts.translate.certificate_dir {
        Some(dir) => Some(
            CertificateDir::open(dir.clone(), opts.certificate_grace).map_err(|source| {
                WatchError::CertificateDir {
                    path: dir.display().to_string(),
                    source,
                }
            })?,
        ),
        None => None,
    };
    let mut last = std::fs::read_to_string(&opts.output).ok();
    let mut reported: BTreeSet<Problem> = BTreeSet::new();
    let mut first = true;
    loop {
        if !first {
            // Waiting for a change, removing certificate files as their grace ends.
            loop {
                let due = certs.as_ref().and_then(CertificateDir::next_due);
                let Some(due) = due else {
                    changed.notified().await;
                    break;
                };
                tokio::select! {
                    _ = changed.notified() => break,
                    _ = tokio::time::sleep_until(due.into()) => collect(&mut certs, &stats),
                }
            }
            // Debounce: wait for a quiet `debounce`, at most `max_delay` in all.
            let deadline = tokio::time::Instant::now() + opts.max_delay;
            loop {
                let quiet = tokio::time::sleep(opts.debounce);
                tokio::select! {
                    _ = changed.notified() => {
                        if tokio::time::Instant::now() >= deadline { break; }
                    }
                    _ = quiet => break,
                }
            }
        }
        first = false;
        let snapshot = Arc::new(Snapshot {
            ingresses: ingresses.state(),
            ingress_classes: classes.state(),
            services: services.state(),
            endpoint_slices: slices.state(),
            // A TLS Secret that is also a credential is in both stores: the
            // translation looks Secrets up by name, so the copy is harmless.
            secrets: [secrets.state(), cred_secrets.state()].concat(),
            gateway_plugins: gwp.state(),
            cluster_gateway_plugins: cgwp.state(),
            kong_plugins: kp.state(),
            kong_cluster_plugins: kcp.state(),
            kong_consumers: kc.state(),
            gateway_classes: gwc.state(),
            gateways: gw.state(),
            http_routes: hr.state(),
            reference_grants: rg.state(),
        });
        let options = opts.translate.clone();
        let input = Arc::clone(&snapshot);
        // Translating thousands of objects is CPU work: off the async threads.
        let started = std::time::Instant::now();
        let mut t = match tokio::task::spawn_blocking(move || translate(&input, &options)).await {
            Ok(t) => t,
            Err(e) => {
                log::error!("translation failed: {e}");
                continue;
            }
        };
        let translated = started.elapsed();
        let n = Stats::bump(&stats.regenerations);
        let lo = t.left_out;
        for (gauge, v) in [
            (&stats.left_out_routes, lo.routes),
            (&stats.left_out_upstreams, lo.upstreams),
            (&stats.left_out_targets, lo.targets),
            (&stats.left_out_certificates, lo.certificates),
        ] {
            gauge.store(v as u64, Ordering::Relaxed);
        }
        if lo.any() {
            log::warn!(
                "regeneration {n}: beyond the configuration's bounds, left out: {} routes, {} upstreams, {} targets, {} certificates",
                lo.routes, lo.upstreams, lo.targets, lo.certificates
            );
        }
        // One log line per problem when it appears, not at every regeneration.
        let now: BTreeSet<Problem> = t.problems.iter().cloned().collect();
        for p in now.difference(&reported) {
            log::warn!("skipped: {p}");
        }
        reported = now;
        // The cluster writers take the latest translation (a newer one replaces one not
        // yet handled) and write only while this replica leads.
        if let Some(tx) = &gateway_status_tx {
            tx.send_replace(Some(crate::gateway_status::Round {
                snapshot: Arc::clone(&snapshot),
                status: Arc::new(std::mem::take(&mut t.gateway_api_status)),
            }));
        }
        if let Some(tx) = &events_tx {
            tx.send_replace(Some(crate::events::Round {
                snapshot: Arc::clone(&snapshot),
                problems: Arc::new(t.problems.clone()),
            }));
        }
        if let Some(tx) = &status_tx {
            tx.send_replace(Some(crate::status::Round {
                snapshot: Arc::clone(&snapshot),
                accepted: Arc::new(t.accepted_ingresses.clone()),
            }));
        }
        // The gateway refuses a file over its size limit: keep the previous one.
        let limit = opts.max_file_bytes;
        if t.yaml.len() as u64 > limit {
            if last.as_deref() != Some(t.yaml.as_str()) {
                Stats::bump(&stats.oversize);
                log::error!(
                    "regeneration {n}: the file would be {} bytes, over the gateway's {} limit \
                     (--max-config-bytes); not written (raise it on both the watcher and the \
                     gateway, or lower --max-routes, --max-targets or --max-certificates)",
                    t.yaml.len(),
                    pingway::config::limits::describe_bytes(limit)
                );
            }
            continue;
        }
        // The files the YAML names are in place before it is (also when it is
        // unchanged: the directory may have lost one).
        if let Some(dir) = certs.as_mut() {
            match dir.write(&t.certificate_files) {
                Ok(w) => {
                    stats
                        .certificate_files_written
                        .fetch_add(w as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    Stats::bump(&stats.write_errors);
                    log::error!(
                        "regeneration {n}: cannot write certificate files in {}: {e}; the \
                         configuration is not written",
                        dir.path().display()
                    );
                    continue;
                }
            }
        }
        if last.as_deref() == Some(t.yaml.as_str()) {
            log::debug!("regeneration {n}: no change");
            if let Some(dir) = certs.as_mut() {
                dir.commit(&t.certificate_files);
            }
            continue;
        }
        match crate::write::write_atomic(&opts.output, &t.yaml) {
            Ok(()) => {
                let w = Stats::bump(&stats.writes);
                log::info!(
                    "wrote {} ({} routes, {} upstreams, {} problems; regeneration {n}, write {w}; \
                     translated in {:.3} s, written {:.3} s after)",
                    opts.output.display(),
                    t.config.routes.len(),
                    t.config.upstreams.len(),
                    t.problems.len(),
                    translated.as_secs_f64(),
                    (started.elapsed() - translated).as_secs_f64()
                );
                last = Some(t.yaml);
                if let Some(tx) = &opts.written {
                    tx.send_modify(|n| *n += 1);
                }
                if let Some(dir) = certs.as_mut() {
                    dir.commit(&t.certificate_files);
                }
                collect(&mut certs, &stats);
            }
            Err(e) => {
                Stats::bump(&stats.write_errors);
                log::error!("cannot write {}: {e}", opts.output.display());
            }
        }
    }
}

/// Removes the certificate files whose grace period is over (see [`crate::cert_files`]).
fn collect(certs: &mut Option<CertificateDir>, stats: &Stats) {
    let Some(dir) = certs.as_mut() else {
        return;
    };
    match dir.collect(std::time::Instant::now()) {
        Ok(c) => {
            stats
                .certificate_files_removed
                .fetch_add(c.removed as u64, Ordering::Relaxed);
            if c.removed > 0 {
                log::info!(
                    "removed {} certificate files no configuration names ({} waiting)",
                    c.removed,
                    c.waiting
                );
            }
        }
        Err(e) => log::warn!("cannot read {}: {e}", dir.path().display()),
    }
}
