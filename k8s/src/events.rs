//! Kubernetes Events for objects the translation skipped: each new [`Problem`] becomes
//! one `Warning` Event (reason `Skipped`, note = what was left out and why) regarding the
//! object, through kube-runtime's [`Recorder`] (`events.k8s.io/v1`; the same problem
//! again within its cache time becomes a series on the same Event, not a new one).
//!
//! Only the leader publishes (see [`crate::leader`]). The publisher keeps the set of
//! problems it has published; after each translation it publishes those not yet
//! published, at most [`EventOptions::max_per_round`] of them (the rest are counted in
//! [`Stats::events_dropped`], logged as one summary line and tried again at the next
//! translation), and forgets those that went away, so a problem that comes back is
//! published again. A replica that becomes leader publishes the current problems.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use tokio::sync::watch;

use crate::leader::Leadership;
use crate::translate::{Problem, Snapshot};
use crate::watch::Stats;

/// How Events are published.
#[derive(Debug, Clone)]
pub struct EventOptions {
    /// The `reportingController` (default `pingway.io/pingway-k8s`).
    pub controller: String,
    /// The `reportingInstance`: this replica (its pod name).
    pub instance: String,
    /// At most this many Events per translation (default 100).
    pub max_per_round: usize,
}

impl EventOptions {
    /// The defaults, for replica `instance`.
    pub fn new(instance: impl Into<String>) -> EventOptions {
        EventOptions {
            controller: "pingway.io/pingway-k8s".into(),
            instance: instance.into(),
            max_per_round: 100,
        }
    }
}

/// One translation's problems and the objects they name.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    pub snapshot: Arc<Snapshot>,
    pub problems: Arc<Vec<Problem>>,
}

/// Starts the publisher; send it each translation's [`Round`].
pub(crate) fn spawn(
    client: Client,
    leadership: Leadership,
    opts: EventOptions,
    stats: Arc<Stats>,
) -> watch::Sender<Option<Round>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(publish_loop(client, leadership, opts, stats, rx));
    tx
}

async fn publish_loop(
    client: Client,
    mut leadership: Leadership,
    opts: EventOptions,
    stats: Arc<Stats>,
    mut rounds: watch::Receiver<Option<Round>>,
) {
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: opts.controller.clone(),
            instance: Some(opts.instance.clone()),
        },
    );
    let mut published: BTreeSet<Problem> = BTreeSet::new();
    loop {
        tokio::select! {
            r = rounds.changed() => if r.is_err() { return },
            l = leadership.changed() => if l.is_err() { return },
        }
        let round = rounds.borrow_and_update().clone();
        let leading = *leadership.borrow_and_update();
        let Some(round) = round else { continue };
        if !leading {
            published.clear();
            continue;
        }
        let current: BTreeSet<&Problem> = round.problems.iter().collect();
        published.retain(|p| current.contains(&p));
        let new: Vec<&Problem> = current
            .into_iter()
            .filter(|p| !published.contains(*p) && p.kind != "Configuration")
            .collect();
        for (sent, p) in new.iter().enumerate() {
            if sent == opts.max_per_round {
                let rest = (new.len() - sent) as u64;
                stats
                    .events_dropped
                    .fetch_add(rest, std::sync::atomic::Ordering::Relaxed);
                log::warn!(
                    "{rest} more skipped objects this round; at most {} Events per translation \
                     (the rest are tried again at the next one)",
                    opts.max_per_round
                );
                break;
            }
            let reference = reference(&round.snapshot, p);
            match recorder.publish(&event(p), &reference).await {
                Ok(()) => {
                    Stats::bump(&stats.events_published);
                    published.insert((*p).clone());
                }
                Err(e) => {
                    Stats::bump(&stats.event_errors);
                    log::warn!(
                        "cannot publish an Event for {} {}/{}: {e}",
                        p.kind,
                        p.namespace,
                        p.name
                    );
                }
            }
        }
    }
}

/// The Event for `p`. The recorder merges Events with the same regarding object,
/// reason and action into a series, whatever their notes; the action carries a short
/// digest of the note so that two different problems of one object stay two Events.
fn event(p: &Problem) -> Event {
    Event {
        type_: EventType::Warning,
        reason: "Skipped".into(),
        note: Some(truncate(&p.reason, 1024)),
        action: format!("Translate-{:08x}", fnv(p.reason.as_bytes())),
        secondary: None,
    }
}

/// The object `p` names, with its apiVersion and uid from the snapshot when found there.
pub(crate) fn reference(snapshot: &Snapshot, p: &Problem) -> ObjectReference {
    let found = match p.kind {
        "Ingress" => find(&snapshot.ingresses, p),
        "IngressClass" => find(&snapshot.ingress_classes, p),
        "Service" => find(&snapshot.services, p),
        "EndpointSlice" => find(&snapshot.endpoint_slices, p),
        "Secret" => find(&snapshot.secrets, p),
        "GatewayPlugin" => find(&snapshot.gateway_plugins, p),
        "ClusterGatewayPlugin" => find(&snapshot.cluster_gateway_plugins, p),
        "KongPlugin" => find(&snapshot.kong_plugins, p),
        "KongClusterPlugin" => find(&snapshot.kong_cluster_plugins, p),
        _ => None,
    };
    found.unwrap_or_else(|| ObjectReference {
        kind: Some(p.kind.to_string()),
        name: Some(p.name.clone()),
        namespace: (!p.namespace.is_empty()).then(|| p.namespace.clone()),
        ..ObjectReference::default()
    })
}

fn find<K: Resource<DynamicType = ()>>(items: &[Arc<K>], p: &Problem) -> Option<ObjectReference> {
    items
        .iter()
        .find(|o| {
            let m = o.meta();
            m.name.as_deref() == Some(p.name.as_str())
                && m.namespace.as_deref().unwrap_or("") == p.namespace
        })
        .map(|o| o.object_ref(&()))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// FNV-1a, 32 bits: a stable digest (the same in every build and process).
fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_bounded_on_a_character_boundary() {
        let long = "é".repeat(1000);
        let t = truncate(&long, 1024);
        assert!(t.len() <= 1024, "{}", t.len());
        assert!(t.ends_with("..."));
        assert_eq!(truncate("short", 1024), "short");
    }

    #[test]
    fn different_problems_of_one_object_get_different_actions() {
        let p = |reason: &str| Problem {
            kind: "Ingress",
            namespace: "a".into(),
            name: "b".into(),
            reason: reason.into(),
        };
        assert_ne!(event(&p("x")).action, event(&p("y")).action);
        assert_eq!(event(&p("x")).action, event(&p("x")).action);
        assert!(event(&p("x")).action.len() <= 128);
    }

    #[test]
    fn references_carry_the_uid_from_the_snapshot() {
        let ing: k8s_openapi::api::networking::v1::Ingress = serde_json::from_value(
            serde_json::json!({"metadata": {"namespace": "a", "name": "b", "uid": "u-1"}}),
        )
        .unwrap();
        let snapshot = Snapshot {
            ingresses: vec![Arc::new(ing)],
            ..Snapshot::default()
        };
        let p = Problem {
            kind: "Ingress",
            namespace: "a".into(),
            name: "b".into(),
            reason: "r".into(),
        };
        let r = reference(&snapshot, &p);
        assert_eq!(r.uid.as_deref(), Some("u-1"));
        assert_eq!(r.api_version.as_deref(), Some("networking.k8s.io/v1"));
        assert_eq!(r.kind.as_deref(), Some("Ingress"));
        let missing = Problem {
            name: "gone".into(),
            ..p
        };
        assert_eq!(reference(&snapshot, &missing).uid, None);
    }
}
