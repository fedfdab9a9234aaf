//! `status.loadBalancer` of the Ingresses the gateway serves: the addresses clients
//! reach it at, as ingress-nginx and Kong's controller publish them.
//!
//! The addresses are `--publish-address` when given (IPs and host names), else the
//! `status.loadBalancer.ingress` of the gateway's own Service (`--publish-service
//! NAMESPACE/NAME`, usually of type LoadBalancer), read from the watcher's Service store
//! so that a new load-balancer address reaches the Ingresses at the next translation.
//!
//! After each translation the leader (only the leader, see [`crate::leader`]) compares
//! the addresses with each accepted Ingress's status as the store holds it, and
//! merge-patches `/status` of those that differ; nothing is written when they agree.
//! Patches the API server refuses are tried again after 1 s, doubling up to a minute
//! ([`crate::retry`]), until they succeed or a newer translation replaces them.
//! Ingresses this replica wrote while leading and that are no longer served (class
//! changed, every route skipped, ...) get their addresses removed, if they still carry
//! the ones written. An Ingress written by an earlier leader and dropped while no
//! replica led keeps its addresses (as ingress-nginx without
//! `--update-status-on-shutdown`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::leader::Leadership;
use crate::retry::{next_wake, Retry, Wake};
use crate::translate::Snapshot;
use crate::watch::Stats;

/// Where the published addresses come from.
#[derive(Debug, Clone, Default)]
pub struct StatusOptions {
    /// `NAMESPACE/NAME` of the gateway's Service whose load-balancer status is copied.
    pub publish_service: Option<(String, String)>,
    /// Fixed addresses (IPs or host names), overriding the Service's.
    pub publish_addresses: Vec<String>,
}

impl StatusOptions {
    /// Whether any address source is configured (otherwise status is never written).
    pub fn enabled(&self) -> bool {
        self.publish_service.is_some() || !self.publish_addresses.is_empty()
    }
}

/// Parses `NAMESPACE/NAME`.
pub fn parse_service(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}

/// One translation's accepted Ingresses and the objects.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    pub snapshot: Arc<Snapshot>,
    pub accepted: Arc<Vec<(String, String)>>,
}

/// Starts the status writer; send it each translation's [`Round`].
pub(crate) fn spawn(
    client: Client,
    leadership: Leadership,
    opts: StatusOptions,
    stats: Arc<Stats>,
) -> watch::Sender<Option<Round>> {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(status_loop(client, leadership, opts, stats, rx));
    tx
}

/// The `status.loadBalancer.ingress` entries to publish, as JSON (`ip` or `hostname`).
pub(crate) fn addresses(opts: &StatusOptions, snapshot: &Snapshot) -> Vec<Value> {
    if !opts.publish_addresses.is_empty() {
        return opts
            .publish_addresses
            .iter()
            .map(|a| match a.parse::<IpAddr>() {
                Ok(ip) => json!({"ip": ip.to_string()}),
                Err(_) => json!({"hostname": a}),
            })
            .collect();
    }
    let Some((ns, name)) = &opts.publish_service else {
        return Vec::new();
    };
    snapshot
        .services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(ns.as_str())
                && s.metadata.name.as_deref() == Some(name.as_str())
        })
        .and_then(|s| s.status.as_ref()?.load_balancer.as_ref()?.ingress.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| entry(i.ip, i.hostname))
        .collect()
}

fn entry(ip: Option<String>, hostname: Option<String>) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(ip) = ip {
        m.insert("ip".into(), json!(ip));
    }
    if let Some(h) = hostname {
        m.insert("hostname".into(), json!(h));
    }
    Value::Object(m)
}

/// An Ingress's current addresses, in the same form (ports are not compared).
fn current(ing: &Ingress) -> Vec<Value> {
    ing.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| entry(i.ip, i.hostname))
        .collect()
}

async fn status_loop(
    client: Client,
    mut leadership: Leadership,
    opts: StatusOptions,
    stats: Arc<Stats>,
    mut rounds: watch::Receiver<Option<Round>>,
) {
    // Ingresses written while leading, with what was written.
    let mut written: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    // Refused patches are tried again on a timer, with the last round's objects.
    let mut retry = Retry::default();
    loop {
        // A retry looks at the round it already saw, whose objects do not show the
        // patches that round made: those are known from `written` instead.
        let Some(wake) = next_wake(&mut rounds, &mut leadership, &retry).await else {
            return;
        };
        let retrying = wake == Wake::Retry;
        if retrying {
            Stats::bump(&stats.status_retries);
        }
        let round = rounds.borrow_and_update().clone();
        let leading = *leadership.borrow_and_update();
        let Some(round) = round else { continue };
        if !retrying {
            Stats::bump(&stats.status_rounds);
        }
        if !leading {
            written.clear();
            retry.clear();
            continue;
        }
        let mut failed = 0usize;
        let want = addresses(&opts, &round.snapshot);
        let by_key: BTreeMap<(String, String), &Ingress> = round
            .snapshot
            .ingresses
            .iter()
            .map(|i| {
                (
                    (
                        i.metadata.namespace.clone().unwrap_or_default(),
                        i.metadata.name.clone().unwrap_or_default(),
                    ),
                    i.as_ref(),
                )
            })
            .collect();
        let accepted: BTreeSet<&(String, String)> = round.accepted.iter().collect();
        for key in &accepted {
            let Some(ing) = by_key.get(*key) else {
                continue;
            };
            if current(ing) == want {
                written.insert((*key).clone(), want.clone());
                continue;
            }
            if retrying && written.get(*key) == Some(&want) {
                continue;
            }
            if patch(&client, key, &json!(want), &stats).await {
                written.insert((*key).clone(), want.clone());
            } else {
                failed += 1;
            }
        }
        // No longer ours: remove what this replica wrote, if it is still there.
        let gone: Vec<(String, String)> = written
            .keys()
            .filter(|k| !accepted.contains(k))
            .cloned()
            .collect();
        for key in gone {
            let ours = written.remove(&key).unwrap_or_default();
            let carries_ours = by_key
                .get(&key)
                .is_some_and(|ing| !ours.is_empty() && current(ing) == ours);
            if carries_ours && !patch(&client, &key, &json!([]), &stats).await {
                // Still ours to remove at the retry.
                written.insert(key, ours);
                failed += 1;
            }
        }
        if failed > 0 {
            let wait = retry.failed();
            log::warn!(
                "{failed} Ingress status patches failed; trying again in {}s",
                wait.as_secs()
            );
        } else {
            retry.clear();
        }
    }
}

/// Merge-patches `status.loadBalancer.ingress` of one Ingress; whether it succeeded.
async fn patch(client: &Client, key: &(String, String), ingress: &Value, stats: &Stats) -> bool {
    let api: Api<Ingress> = Api::namespaced(client.clone(), &key.0);
    let body = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    match api
        .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => {
            Stats::bump(&stats.status_writes);
            true
        }
        Err(e) => {
            Stats::bump(&stats.status_errors);
            log::warn!(
                "cannot write the status of Ingress {}/{}: {e}",
                key.0,
                key.1
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_addresses_override_and_tell_ips_from_host_names() {
        let opts = StatusOptions {
            publish_service: Some(("gw".into(), "pingway".into())),
            publish_addresses: vec![
                "192.0.2.1".into(),
                "lb.example.com".into(),
                "2001:db8::1".into(),
            ],
        };
        assert_eq!(
            addresses(&opts, &Snapshot::default()),
            vec![
                json!({"ip": "192.0.2.1"}),
                json!({"hostname": "lb.example.com"}),
                json!({"ip": "2001:db8::1"})
            ]
        );
    }

    #[test]
    fn the_service_status_is_copied() {
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
            "metadata": {"namespace": "gw", "name": "pingway"},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "a.elb"}]}}
        }))
        .unwrap();
        let snapshot = Snapshot {
            services: vec![Arc::new(svc)],
            ..Snapshot::default()
        };
        let opts = StatusOptions {
            publish_service: Some(("gw".into(), "pingway".into())),
            publish_addresses: vec![],
        };
        assert_eq!(
            addresses(&opts, &snapshot),
            vec![json!({"ip": "203.0.113.9"}), json!({"hostname": "a.elb"})]
        );
        let other = StatusOptions {
            publish_service: Some(("gw".into(), "missing".into())),
            publish_addresses: vec![],
        };
        assert!(addresses(&other, &snapshot).is_empty());
    }

    #[test]
    fn service_names_parse() {
        assert_eq!(
            parse_service("gw/pingway"),
            Ok(("gw".into(), "pingway".into()))
        );
        assert!(parse_service("pingway").is_err());
        assert!(parse_service("a/b/c").is_err());
        assert!(parse_service("/b").is_err());
    }
}
