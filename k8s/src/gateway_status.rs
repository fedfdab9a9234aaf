//! Writes the Gateway API status the translation computed
//! ([`crate::translate::GatewayApiStatus`]) back to the cluster: a JSON merge patch of
//! the `status` subresource of each GatewayClass, Gateway and HTTPRoute whose status
//! differs from what the object already has, and nothing for the others.
//!
//! [`plan`] is pure (the time is a parameter): it compares, carries each condition's
//! `lastTransitionTime` over while its status is unchanged, and keeps the
//! `status.parents` entries of other controllers on an HTTPRoute (a merge patch replaces
//! a list whole). [`apply`] sends the patches. The watch loop hands each translation to
//! the writer task ([`spawn`]), which applies them only while this replica holds the
//! Lease, beside the loop rather than in it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::gateway_api::status::{GatewayClassStatus, GatewayStatus, HttpRouteStatus};
use crate::gateway_api::{Condition, Gateway, GatewayClass, HttpRoute};
use crate::leader::Leadership;
use crate::retry::{next_wake, Retry, Wake};
use crate::translate::{GatewayApiStatus, Snapshot};
use crate::watch::Stats;

/// The kind of object a patch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A GatewayClass (cluster-scoped).
    GatewayClass,
    /// A Gateway.
    Gateway,
    /// An HTTPRoute.
    HttpRoute,
}

/// One status patch to send.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPatch {
    /// The kind.
    pub kind: Kind,
    /// The namespace (empty for a GatewayClass).
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The merge patch body: `{"status": ...}`.
    pub body: Value,
}

/// The current time as the API server writes it (RFC 3339, whole seconds, UTC).
pub fn now() -> String {
    let t = k8s_openapi::jiff::Timestamp::now();
    t.round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Desired conditions with times: an existing condition of the same type and status
/// keeps its `lastTransitionTime`; a new or changed one gets `now`.
fn with_times(desired: &[Condition], existing: &[Condition], now: &str) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let mut c = d.clone();
            c.last_transition_time = existing
                .iter()
                .find(|e| e.type_ == d.type_ && e.status == d.status)
                .and_then(|e| e.last_transition_time.clone())
                .or_else(|| Some(now.to_string()));
            c
        })
        .collect()
}

/// Whether two condition lists say the same, times aside.
fn same(a: &[Condition], b: &[Condition]) -> bool {
    let strip = |v: &[Condition]| {
        v.iter()
            .map(|c| Condition {
                last_transition_time: None,
                ..c.clone()
            })
            .collect::<Vec<_>>()
    };
    strip(a) == strip(b)
}

fn body<S: Serialize>(status: &S) -> Value {
    json!({ "status": serde_json::to_value(status).unwrap_or(Value::Null) })
}

/// The patches that bring the objects of `snapshot` to the `desired` status, for
/// controller `controller`, stamping changed conditions with `now`.
pub fn plan(
    snapshot: &Snapshot,
    desired: &GatewayApiStatus,
    controller: &str,
    now: &str,
) -> Vec<StatusPatch> {
    let mut out = Vec::new();
    let classes: BTreeMap<&str, &GatewayClass> = snapshot
        .gateway_classes
        .iter()
        .filter_map(|c| Some((c.metadata.name.as_deref()?, c.as_ref())))
        .collect();
    for d in &desired.gateway_classes {
        let Some(obj) = classes.get(d.name.as_str()) else {
            continue;
        };
        let have = obj.status.clone().unwrap_or_default();
        if same(&have.conditions, &d.status.conditions) {
            continue;
        }
        let st = GatewayClassStatus {
            conditions: with_times(&d.status.conditions, &have.conditions, now),
        };
        out.push(StatusPatch {
            kind: Kind::GatewayClass,
            namespace: String::new(),
            name: d.name.clone(),
            body: body(&st),
        });
    }
    let key = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    };
    let gateways: BTreeMap<(String, String), &Gateway> = snapshot
        .gateways
        .iter()
        .map(|g| (key(&g.metadata), g.as_ref()))
        .collect();
    for d in &desired.gateways {
        let Some(obj) = gateways.get(&(d.namespace.clone(), d.name.clone())) else {
            continue;
        };
        let have = obj.status.clone().unwrap_or_default();
        let listeners_same = have.listeners.len() == d.status.listeners.len()
            && have
                .listeners
                .iter()
                .zip(&d.status.listeners)
                .all(|(h, w)| {
                    h.name == w.name
                        && h.attached_routes == w.attached_routes
                        && h.supported_kinds == w.supported_kinds
                        && same(&h.conditions, &w.conditions)
                });
        if listeners_same
            && have.addresses == d.status.addresses
            && same(&have.conditions, &d.status.conditions)
        {
            continue;
        }
        let mut st: GatewayStatus = d.status.clone();
        st.conditions = with_times(&d.status.conditions, &have.conditions, now);
        for l in &mut st.listeners {
            let old = have
                .listeners
                .iter()
                .find(|h| h.name == l.name)
                .map(|h| h.conditions.clone())
                .unwrap_or_default();
            l.conditions = with_times(&l.conditions, &old, now);
        }
        out.push(StatusPatch {
            kind: Kind::Gateway,
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            body: body(&st),
        });
    }
    let routes: BTreeMap<(String, String), &HttpRoute> = snapshot
        .http_routes
        .iter()
        .map(|r| (key(&r.metadata), r.as_ref()))
        .collect();
    for d in &desired.http_routes {
        let Some(obj) = routes.get(&(d.namespace.clone(), d.name.clone())) else {
            continue;
        };
        let have = obj.status.clone().unwrap_or_default();
        let mine: Vec<_> = have
            .parents
            .iter()
            .filter(|p| p.controller_name == controller)
            .collect();
        let unchanged = mine.len() == d.status.parents.len()
            && mine
                .iter()
                .zip(&d.status.parents)
                .all(|(h, w)| h.parent_ref == w.parent_ref && same(&h.conditions, &w.conditions));
        if unchanged {
            continue;
        }
        let mut parents: Vec<_> = have
            .parents
            .iter()
            .filter(|p| p.controller_name != controller)
            .cloned()
            .collect();
        for w in &d.status.parents {
            let old = mine
                .iter()
                .find(|h| h.parent_ref == w.parent_ref)
                .map(|h| h.conditions.clone())
                .unwrap_or_default();
            let mut p = w.clone();
            p.conditions = with_times(&w.conditions, &old, now);
            parents.push(p);
        }
        out.push(StatusPatch {
            kind: Kind::HttpRoute,
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            body: body(&HttpRouteStatus { parents }),
        });
    }
    out
}

/// Sends `patches`; returns the ones that failed (each logged).
pub async fn apply(client: &Client, patches: Vec<StatusPatch>) -> Vec<StatusPatch> {
    let pp = PatchParams::default();
    let mut failed = Vec::new();
    for p in patches {
        let patch = Patch::Merge(&p.body);
        let res = match p.kind {
            Kind::GatewayClass => Api::<GatewayClass>::all(client.clone())
                .patch_status(&p.name, &pp, &patch)
                .await
                .map(|_| ()),
            Kind::Gateway => Api::<Gateway>::namespaced(client.clone(), &p.namespace)
                .patch_status(&p.name, &pp, &patch)
                .await
                .map(|_| ()),
            Kind::HttpRoute => Api::<HttpRoute>::namespaced(client.clone(), &p.namespace)
                .patch_status(&p.name, &pp, &patch)
                .await
                .map(|_| ()),
        };
        if let Err(e) = res {
            log::warn!(
                "cannot write the status of {:?} {}/{}: {e}",
                p.kind,
                p.namespace,
                p.name
            );
            failed.push(p);
        }
    }
    failed
}

/// One translation's Gateway API status and the objects it was computed from.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    pub snapshot: Arc<Snapshot>,
    pub status: Arc<GatewayApiStatus>,
}

/// Starts the status writer; send it each translation's [`Round`]. It runs beside the
/// watch loop, so a slow or throttling API server delays the status, never the file
/// (kube's client itself waits out 429, 503 and 504 answers, up to fifteen times with
/// a growing backoff). It writes only while `leadership` says this replica leads;
/// patches that fail are sent again on a [`Retry`] timer until they succeed or a newer
/// round replaces them.
pub(crate) fn spawn(
    client: Client,
    leadership: Leadership,
    controller: String,
    stats: Arc<Stats>,
) -> watch::Sender<Option<Round>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(writer(client, leadership, controller, stats, rx));
    tx
}

async fn writer(
    client: Client,
    mut leadership: Leadership,
    controller: String,
    stats: Arc<Stats>,
    mut rounds: watch::Receiver<Option<Round>>,
) {
    let mut retry = Retry::default();
    // The patches that failed last, sent again when the retry is due.
    let mut pending: Vec<StatusPatch> = Vec::new();
    loop {
        let Some(wake) = next_wake(&mut rounds, &mut leadership, &retry).await else {
            return;
        };
        let retrying = wake == Wake::Retry;
        if retrying {
            Stats::bump(&stats.gateway_status_retries);
        }
        if !*leadership.borrow_and_update() {
            pending.clear();
            retry.clear();
            continue;
        }
        let patches = if retrying {
            std::mem::take(&mut pending)
        } else {
            let Some(round) = rounds.borrow_and_update().clone() else {
                continue;
            };
            plan(&round.snapshot, &round.status, &controller, &now())
        };
        let sent = patches.len();
        let failed = if sent == 0 {
            Vec::new()
        } else {
            apply(&client, patches).await
        };
        stats
            .gateway_status_writes
            .fetch_add((sent - failed.len()) as u64, Ordering::Relaxed);
        stats
            .gateway_status_errors
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        if failed.is_empty() {
            retry.clear();
        } else {
            let wait = retry.failed();
            log::warn!(
                "{} of {sent} Gateway API status patches failed; trying again in {}s",
                failed.len(),
                wait.as_secs()
            );
            pending = failed;
        }
    }
}
