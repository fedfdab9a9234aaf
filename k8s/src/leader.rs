//! Leader election on a `coordination.k8s.io/v1` Lease (kube 5's runtime has no lease
//! lock, so this is a small one, after client-go's `leaderelection`).
//!
//! Every replica runs an [`Elector`]. It reads the Lease and:
//! - creates it, holding it, when it does not exist (`409 AlreadyExists`: someone else
//!   was first);
//! - renews it every `renew_period` while it holds it (a replace carrying the
//!   resourceVersion it read, so two writers never both win: the loser gets
//!   `409 Conflict`);
//! - takes it over when it has expired: nobody renewed it (its resourceVersion did not
//!   change) for `lease_duration` as measured by *this* replica's clock since it last
//!   saw it change, so clocks that disagree between nodes do not matter; or its holder
//!   is empty (released).
//!
//! A leader that cannot renew for `renew_deadline` (shorter than the lease duration)
//! steps down before anybody else can take over, so two replicas never both believe
//! they lead for longer than the clock drift within one lease duration.
//!
//! Leadership is published on a [`tokio::sync::watch`] channel: [`Leadership`] is what
//! the writers of status and Events (and any other writer that must run once per
//! cluster) wait on and check.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

/// Whether this replica holds the Lease now; cheap to clone, `changed()` to wait.
pub type Leadership = watch::Receiver<bool>;

/// A [`Leadership`] that is always `true`: for a single replica that writes without an
/// election (tests, `--no-leader-election`).
pub fn always() -> Leadership {
    let (tx, rx) = watch::channel(true);
    // Keep the sender alive so that `changed()` waits forever instead of failing.
    std::mem::forget(tx);
    rx
}

/// How the election runs.
#[derive(Debug, Clone)]
pub struct LeaderOptions {
    /// The Lease's namespace (the watcher's own).
    pub namespace: String,
    /// The Lease's name (default `pingway-k8s-leader`).
    pub name: String,
    /// This replica's identity, written as `holderIdentity`: the pod name.
    pub identity: String,
    /// How long a Lease stays valid without renewal (default 15 s).
    pub lease_duration: Duration,
    /// How often the leader renews (default 5 s).
    pub renew_period: Duration,
    /// A leader that could not renew for this long steps down (default 10 s; must be
    /// below `lease_duration`).
    pub renew_deadline: Duration,
    /// How often a non-leader looks at the Lease (default 2 s).
    pub retry_period: Duration,
}

impl LeaderOptions {
    /// The defaults: Lease `pingway-k8s-leader` in `namespace`, 15 s duration, renewed
    /// every 5 s.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> LeaderOptions {
        LeaderOptions {
            namespace: namespace.into(),
            name: "pingway-k8s-leader".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// This replica's identity: `POD_NAME` (the downward API), else `hostname-pid`.
pub fn default_identity() -> String {
    if let Ok(name) = std::env::var("POD_NAME") {
        if !name.is_empty() {
            return name;
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "pingway-k8s".into());
    format!("{host}-{}", std::process::id())
}

/// A running election; dropping it stops the election (without releasing the Lease:
/// another replica takes over once it expires).
#[derive(Debug)]
pub struct Elector {
    leadership: Leadership,
    task: tokio::task::JoinHandle<()>,
}

impl Elector {
    /// Starts electing in the background.
    pub fn start(client: Client, opts: LeaderOptions) -> Elector {
        let (tx, rx) = watch::channel(false);
        let api: Api<Lease> = Api::namespaced(client, &opts.namespace);
        let task = tokio::spawn(run(api, opts, tx));
        Elector {
            leadership: rx,
            task,
        }
    }

    /// Whether this replica leads, as a channel.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.leadership.borrow()
    }

    /// Stops renewing (as a crashed or partitioned leader would); leadership turns
    /// `false`.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Elector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one attempt found.
enum Attempt {
    /// We hold the Lease (created, renewed or taken over).
    Held,
    /// Someone else holds a valid Lease.
    Other,
    /// The API call failed (network, conflict): try again.
    Failed,
}

/// The last change of the Lease this replica saw, by its own clock.
struct Observed {
    resource_version: String,
    at: Instant,
}

async fn run(api: Api<Lease>, opts: LeaderOptions, tx: watch::Sender<bool>) {
    let mut observed: Option<Observed> = None;
    let mut last_renew: Option<Instant> = None;
    loop {
        let attempt = attempt(&api, &opts, &mut observed).await;
        let now = Instant::now();
        let leading = match attempt {
            Attempt::Held => {
                last_renew = Some(now);
                true
            }
            Attempt::Other => {
                last_renew = None;
                false
            }
            // Keep leading until the deadline since the last successful renewal.
            Attempt::Failed => last_renew.is_some_and(|t| now - t < opts.renew_deadline),
        };
        if !leading {
            last_renew = None;
        }
        tx.send_if_modified(|v| {
            if *v != leading {
                log::info!(
                    "{} {} the lease {}/{}",
                    opts.identity,
                    if leading {
                        "now holds"
                    } else {
                        "no longer holds"
                    },
                    opts.namespace,
                    opts.name
                );
                *v = leading;
                true
            } else {
                false
            }
        });
        let pause = if leading {
            opts.renew_period
        } else {
            opts.retry_period
        };
        tokio::time::sleep(pause).await;
    }
}

fn now_micro() -> MicroTime {
    MicroTime(Timestamp::now())
}

async fn attempt(
    api: &Api<Lease>,
    opts: &LeaderOptions,
    observed: &mut Option<Observed>,
) -> Attempt {
    let current = match api.get_opt(&opts.name).await {
        Ok(c) => c,
        Err(e) => {
            log::warn!("reading lease {}/{}: {e}", opts.namespace, opts.name);
            return Attempt::Failed;
        }
    };
    let Some(mut lease) = current else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(opts.name.clone()),
                namespace: Some(opts.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(opts.identity.clone()),
                lease_duration_seconds: Some(duration_seconds(opts.lease_duration)),
                acquire_time: Some(now_micro()),
                renew_time: Some(now_micro()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Attempt::Held,
            Err(kube::Error::Api(s)) if s.code == 409 => Attempt::Other,
            Err(e) => {
                log::warn!("creating lease {}/{}: {e}", opts.namespace, opts.name);
                Attempt::Failed
            }
        };
    };
    let rv = lease.metadata.resource_version.clone().unwrap_or_default();
    let now = Instant::now();
    match observed {
        Some(o) if o.resource_version == rv => {}
        _ => {
            *observed = Some(Observed {
                resource_version: rv.clone(),
                at: now,
            })
        }
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == opts.identity;
    if !ours && !holder.is_empty() {
        // Valid for its own duration (as written by its holder) since we saw it change.
        let duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(opts.lease_duration);
        let since = observed.as_ref().map_or(now, |o| o.at);
        if now - since < duration {
            return Attempt::Other;
        }
        log::info!(
            "lease {}/{} held by {holder} expired; taking it over",
            opts.namespace,
            opts.name
        );
    }
    if !ours {
        spec.holder_identity = Some(opts.identity.clone());
        spec.acquire_time = Some(now_micro());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now_micro());
    spec.lease_duration_seconds = Some(duration_seconds(opts.lease_duration));
    // The resourceVersion read above makes this a compare-and-swap.
    match api
        .replace(&opts.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Attempt::Held,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            if ours {
                Attempt::Failed
            } else {
                Attempt::Other
            }
        }
        Err(e) => {
            log::warn!("updating lease {}/{}: {e}", opts.namespace, opts.name);
            Attempt::Failed
        }
    }
}

fn duration_seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}
