//! What the watcher writes to the cluster, against the stand-in API server
//! (tests/support/apiserver.rs): `status.loadBalancer` of the Ingresses served, Events
//! for skipped objects (bounded per translation) and for what is not carried over (a
//! KongConsumer's consumerGroups), and neither while not leading.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingway_k8s::events::EventOptions;
use pingway_k8s::status::StatusOptions;
use pingway_k8s::watch::{self, ClusterWrites, Stats, WatchOptions};
use serde_json::{json, Value};
use support::apiserver::ApiServer;
use support::objects::*;
use tokio::sync::watch as channel;

fn client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The gateway's own Service with a load-balancer address.
fn gateway_service(ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "gw", "name": "pingway"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
}

fn lb(server: &ApiServer, ns: &str, name: &str) -> Value {
    server
        .get("Ingress", ns, name)
        .map(|i| i["status"]["loadBalancer"]["ingress"].clone())
        .unwrap_or(Value::Null)
}

struct Running {
    _dir: tempfile::TempDir,
    stats: Arc<Stats>,
    leader: channel::Sender<bool>,
}

fn start(server: &ApiServer, leading: bool, max_events: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = WatchOptions::new(dir.path().join("pingway.yaml"));
    opts.debounce = Duration::from_millis(20);
    opts.translate.https_listener = None;
    let (leader, leadership) = channel::channel(leading);
    let mut events = EventOptions::new("replica-1");
    events.max_per_round = max_events;
    opts.cluster_writes = Some(ClusterWrites {
        leadership,
        events,
        status: StatusOptions {
            publish_service: Some(("gw".into(), "pingway".into())),
            publish_addresses: vec![],
        },
    });
    let stats = Arc::new(Stats::default());
    let (c, s) = (client(server), Arc::clone(&stats));
    tokio::spawn(async move { watch::run(c, opts, s).await });
    Running {
        _dir: dir,
        stats,
        leader,
    }
}

fn n(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Makes the watcher translate again (an unrelated Service) and waits until the status
/// writer has looked at that translation.
async fn another_round(server: &ApiServer, stats: &Stats, tag: &str) {
    let rounds = n(&stats.status_rounds);
    server.apply(service("unrelated", tag));
    until("another status round", || n(&stats.status_rounds) > rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_ingresses_get_the_service_address_and_follow_it() {
    let server = ApiServer::start().await;
    server.apply(gateway_service("192.0.2.10"));
    server.apply(service("shop", "web"));
    server.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));
    let mut foreign = ingress("shop", "foreign", "f.test", "/", "web", json!({}));
    foreign["spec"]["ingressClassName"] = json!("other");
    server.apply(foreign);
    let run = start(&server, true, 100);

    until("the address on the Ingress", || {
        lb(&server, "shop", "front") == json!([{"ip": "192.0.2.10"}])
    })
    .await;
    // Another controller's Ingress is left alone.
    assert_eq!(lb(&server, "shop", "foreign"), Value::Null);

    // The load balancer's address changes: the Ingress follows.
    server.apply(gateway_service("192.0.2.11"));
    until("the new address on the Ingress", || {
        lb(&server, "shop", "front") == json!([{"ip": "192.0.2.11"}])
    })
    .await;

    // Nothing changes: nothing is written.
    let writes = n(&run.stats.status_writes);
    another_round(&server, &run.stats, "a").await;
    another_round(&server, &run.stats, "b").await;
    assert_eq!(n(&run.stats.status_writes), writes);
    assert_eq!(n(&run.stats.status_errors), 0);

    // The Ingress moves to another class: the address written is removed.
    let mut moved = server.get("Ingress", "shop", "front").unwrap();
    moved["spec"]["ingressClassName"] = json!("other");
    server.apply(moved);
    until("the address removed", || {
        lb(&server, "shop", "front") == json!([])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_leader_writes_nothing_until_it_leads() {
    let server = ApiServer::start().await;
    server.apply(gateway_service("192.0.2.20"));
    server.apply(service("shop", "web"));
    server.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));
    // Skipped: names a plugin resource that does not exist.
    server.apply(ingress(
        "shop",
        "broken",
        "broken.test",
        "/",
        "web",
        json!({"konghq.com/plugins": "missing"}),
    ));
    let run = start(&server, false, 100);

    until("a status round", || n(&run.stats.status_rounds) >= 1).await;
    another_round(&server, &run.stats, "c").await;
    assert_eq!(lb(&server, "shop", "front"), Value::Null);
    assert_eq!(n(&run.stats.status_writes), 0);
    assert_eq!(n(&run.stats.events_published), 0);
    assert!(server.list("Event").is_empty());

    // Leadership comes: the status and the Event are written.
    run.leader.send(true).unwrap();
    until("the address on the Ingress", || {
        lb(&server, "shop", "front") == json!([{"ip": "192.0.2.20"}])
    })
    .await;
    until("an Event", || !server.list("Event").is_empty()).await;
    let events = server.list("Event");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["reason"], "Skipped");
    assert_eq!(e["reportingController"], "pingway.io/pingway-k8s");
    assert_eq!(e["reportingInstance"], "replica-1");
    assert_eq!(e["metadata"]["namespace"], "shop");
    let regarding = &e["regarding"];
    assert_eq!(regarding["kind"], "Ingress");
    assert_eq!(regarding["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(regarding["name"], "broken");
    let uid = server.get("Ingress", "shop", "broken").unwrap()["metadata"]["uid"].clone();
    assert_eq!(regarding["uid"], uid);
    assert!(
        e["note"].as_str().unwrap().contains("missing"),
        "{}",
        e["note"]
    );
    // Losing leadership stops the writes.
    run.leader.send(false).unwrap();
    let writes = n(&run.stats.status_writes);
    server.apply(gateway_service("192.0.2.21"));
    another_round(&server, &run.stats, "d").await;
    assert_eq!(lb(&server, "shop", "front"), json!([{"ip": "192.0.2.20"}]));
    assert_eq!(n(&run.stats.status_writes), writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_bounded_per_translation_and_the_rest_follow_later() {
    let server = ApiServer::start().await;
    server.apply(service("shop", "web"));
    for i in 0..5 {
        server.apply(ingress(
            "shop",
            &format!("broken-{i}"),
            &format!("b{i}.test"),
            "/",
            "web",
            json!({"konghq.com/plugins": "missing"}),
        ));
    }
    let run = start(&server, true, 2);
    until("the first round's Events", || {
        n(&run.stats.events_published) == 2 && n(&run.stats.events_dropped) == 3
    })
    .await;
    assert_eq!(server.list("Event").len(), 2);
    // The next translation publishes the next ones, not the same again.
    server.apply(service("unrelated", "e"));
    until("the second round's Events", || {
        n(&run.stats.events_published) == 4
    })
    .await;
    server.apply(service("unrelated", "f"));
    until("the last Event", || n(&run.stats.events_published) == 5).await;
    let mut named: Vec<String> = server
        .list("Event")
        .iter()
        .map(|e| e["regarding"]["name"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    assert_eq!(
        named,
        ["broken-0", "broken-1", "broken-2", "broken-3", "broken-4"]
    );
    assert_eq!(n(&run.stats.event_errors), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kong_consumer_with_consumer_groups_is_kept_with_a_warning_event() {
    let server = ApiServer::start().await;
    let mut kc = kong_consumer("team", "alice", "pingway", "alice", &[]);
    kc["consumerGroups"] = json!(["gold", "beta"]);
    server.apply(kc);
    let run = start(&server, true, 100);
    let file = run._dir.path().join("pingway.yaml");
    until("the consumer in the file", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("username: \"alice\""))
    })
    .await;
    until("an Event", || !server.list("Event").is_empty()).await;
    let events = server.list("Event");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["type"], "Warning");
    assert_eq!(e["regarding"]["kind"], "KongConsumer");
    assert_eq!(e["regarding"]["name"], "alice");
    assert_eq!(e["metadata"]["namespace"], "team");
    let note = e["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("consumerGroups [gold, beta] not carried over"),
        "{note}"
    );
}

/// The API server refuses the status writes (a 500, as when etcd times out): the writer
/// tries them again on its own timer, with no new translation to wake it, and stops
/// once they are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_ingress_status_writes_are_tried_again_without_a_change() {
    let server = ApiServer::start().await;
    server.apply(gateway_service("192.0.2.20"));
    server.apply(service("shop", "web"));
    server.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));
    server.refuse_status_writes(u64::MAX);
    let run = start(&server, true, 100);

    until("a retry refused", || {
        n(&run.stats.status_retries) >= 1 && n(&run.stats.status_errors) >= 2
    })
    .await;
    assert_eq!(lb(&server, "shop", "front"), Value::Null);
    assert_eq!(n(&run.stats.status_writes), 0);

    server.refuse_status_writes(0);
    until("the address on the Ingress", || {
        lb(&server, "shop", "front") == json!([{"ip": "192.0.2.20"}])
    })
    .await;
    let (errors, retries) = (n(&run.stats.status_errors), n(&run.stats.status_retries));
    another_round(&server, &run.stats, "after").await;
    assert_eq!(n(&run.stats.status_errors), errors);
    assert_eq!(n(&run.stats.status_retries), retries);
}
