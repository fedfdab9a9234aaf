//! The stand-in API server's write verbs, driven by the real kube client: what the
//! leader election, the event recorder and the status writers rely on.

mod support;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::Api;
use serde_json::json;
use support::apiserver::ApiServer;
use support::objects::*;

fn client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

fn lease(name: &str, holder: &str) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "gw"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}
    }))
    .unwrap()
}

#[tokio::test]
async fn create_conflicts_replace_checks_the_resource_version_delete_removes() {
    let server = ApiServer::start().await;
    let leases: Api<Lease> = Api::namespaced(client(&server), "gw");

    let created = leases
        .create(&PostParams::default(), &lease("l", "a"))
        .await
        .unwrap();
    let rv1 = rv(&created);
    let again = leases
        .create(&PostParams::default(), &lease("l", "b"))
        .await;
    match again {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("expected 409 AlreadyExists, got {other:?}"),
    }

    // A replace naming the current resourceVersion succeeds and bumps it.
    let mut next = created.clone();
    next.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let replaced = leases
        .replace("l", &PostParams::default(), &next)
        .await
        .unwrap();
    let rv2 = rv(&replaced);
    assert_ne!(rv1, rv2);
    assert_eq!(replaced.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // The same stale object again: 409 Conflict, and the stored holder is unchanged.
    match leases.replace("l", &PostParams::default(), &next).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected 409 Conflict, got {other:?}"),
    }
    let stored = leases.get("l").await.unwrap();
    assert_eq!(stored.spec.unwrap().holder_identity.as_deref(), Some("b"));

    leases.delete("l", &DeleteParams::default()).await.unwrap();
    match leases.get("l").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn status_patches_change_only_status_and_main_patches_leave_it() {
    let server = ApiServer::start().await;
    server.apply(ingress("shop", "front", "shop.test", "/", "web", json!({})));
    let ingresses: Api<Ingress> = Api::namespaced(client(&server), "shop");
    let before = server
        .counters
        .writes
        .load(std::sync::atomic::Ordering::Relaxed);

    // A status patch that also tries to change the spec: only the status changes.
    let patch = json!({
        "spec": {"ingressClassName": "other"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    });
    let patched = ingresses
        .patch_status("front", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        patched.spec.as_ref().unwrap().ingress_class_name.as_deref(),
        Some("pingway")
    );
    let stored = server.get("Ingress", "shop", "front").unwrap();
    assert_eq!(
        stored["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.7"
    );
    assert_eq!(stored["spec"]["ingressClassName"], "pingway");

    // The same status again changes nothing: no write, no new resourceVersion.
    let writes = server
        .counters
        .writes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(writes, before + 1);
    ingresses
        .patch_status("front", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(
        server
            .counters
            .writes
            .load(std::sync::atomic::Ordering::Relaxed),
        writes
    );

    // A main-resource patch changes the spec and ignores the status in it.
    let main = json!({"spec": {"ingressClassName": "kong"}, "status": {"loadBalancer": {}}});
    ingresses
        .patch("front", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    let stored = server.get("Ingress", "shop", "front").unwrap();
    assert_eq!(stored["spec"]["ingressClassName"], "kong");
    assert_eq!(
        stored["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.7"
    );
}

#[tokio::test]
async fn writes_reach_watchers() {
    let server = ApiServer::start().await;
    let leases: Api<Lease> = Api::namespaced(client(&server), "gw");
    let stream = watcher(leases.clone(), watcher::Config::default());
    futures_util::pin_mut!(stream);
    // The initial (empty) list.
    loop {
        if let watcher::Event::InitDone = stream.next().await.unwrap().unwrap() {
            break;
        }
    }
    leases
        .create(&PostParams::default(), &lease("w", "a"))
        .await
        .unwrap();
    match stream.next().await.unwrap().unwrap() {
        watcher::Event::Apply(l) => assert_eq!(l.metadata.name.as_deref(), Some("w")),
        other => panic!("expected the created Lease, got {other:?}"),
    }
    leases.delete("w", &DeleteParams::default()).await.unwrap();
    match stream.next().await.unwrap().unwrap() {
        watcher::Event::Delete(l) => assert_eq!(l.metadata.name.as_deref(), Some("w")),
        other => panic!("expected the deleted Lease, got {other:?}"),
    }
}

fn rv(lease: &Lease) -> String {
    lease
        .metadata
        .resource_version
        .clone()
        .expect("a resourceVersion")
}
