//! Lease leader election against the stand-in API server (tests/support/apiserver.rs),
//! with a one-second lease so that a takeover happens within the test.

mod support;

use std::time::{Duration, Instant};

use pingway_k8s::leader::{Elector, LeaderOptions};
use support::apiserver::ApiServer;

fn client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

fn options(identity: &str) -> LeaderOptions {
    let mut o = LeaderOptions::new("gw", identity);
    o.lease_duration = Duration::from_secs(1);
    o.renew_period = Duration::from_millis(200);
    o.renew_deadline = Duration::from_millis(700);
    o.retry_period = Duration::from_millis(100);
    o
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holder(server: &ApiServer) -> Option<String> {
    server
        .get("Lease", "gw", "pingway-k8s-leader")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
}

fn resource_version(server: &ApiServer) -> String {
    server
        .get("Lease", "gw", "pingway-k8s-leader")
        .and_then(|l| l["metadata"]["resourceVersion"].as_str().map(String::from))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_give_exactly_one_leader_and_the_other_takes_over_after_expiry() {
    let server = ApiServer::start().await;
    let a = Elector::start(client(&server), options("a"));
    let b = Elector::start(client(&server), options("b"));
    until("a leader", || a.is_leader() || b.is_leader()).await;

    // Through several renewals (the Lease's resourceVersion changes each time) there is
    // exactly one leader, and it is the Lease's holder.
    for _ in 0..4 {
        let rv = resource_version(&server);
        until("a renewal", || resource_version(&server) != rv).await;
        assert!(
            a.is_leader() != b.is_leader(),
            "a: {}, b: {}",
            a.is_leader(),
            b.is_leader()
        );
    }
    let (leader, follower, follower_name) = if a.is_leader() {
        (&a, &b, "b")
    } else {
        (&b, &a, "a")
    };
    let leader_name = if follower_name == "a" { "b" } else { "a" };
    assert_eq!(holder(&server).as_deref(), Some(leader_name));

    // The leader stops renewing (a crash): it is no longer leader, and the other takes
    // the Lease over once it has expired.
    leader.stop();
    until("the takeover", || {
        follower.is_leader() && holder(&server).as_deref() == Some(follower_name)
    })
    .await;
    let lease = server.get("Lease", "gw", "pingway-k8s-leader").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 1, "{lease}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_lease_held_by_someone_else_is_respected() {
    let server = ApiServer::start().await;
    let first = Elector::start(client(&server), options("first"));
    until("first leads", || first.is_leader()).await;
    let second = Elector::start(client(&server), options("second"));
    let mut leadership = second.leadership();
    // Several renewals by `first` while `second` watches: `second` never leads.
    for _ in 0..5 {
        let rv = resource_version(&server);
        until("a renewal", || resource_version(&server) != rv).await;
        assert!(
            !*leadership.borrow_and_update(),
            "second took a valid lease"
        );
        assert!(first.is_leader());
    }
    assert_eq!(holder(&server).as_deref(), Some("first"));
}
