//! correlation-id as Kong clients observe it: an id goes upstream on every request that
//! lacks one, a client's own is kept, and with `echo_downstream` the response carries it
//! (a 404 for an unknown route too, the plugin being global).

use crate::common::*;

#[tokio::test]
async fn ids_go_upstream_and_come_back_with_echo_downstream() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
plugins:
  - name: correlation-id
    config: {{header_name: X-Correlation-Id, generator: uuid#counter, echo_downstream: true}}
routes:
  - name: api
    paths: [/api]
    upstream: up
",
        backend.addr
    );
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();

    let first = c.get(gw.url("/api")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let answered = first.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let seen = Echo::parse(&first.text().await.unwrap());
    let upstream = seen
        .header("x-correlation-id")
        .expect("sent upstream")
        .to_string();
    assert_eq!(
        answered, upstream,
        "the client gets the id the upstream saw"
    );
    let (uuid, n) = upstream.split_once('#').expect("uuid#counter");
    assert_eq!(uuid.len(), 36, "{upstream}");

    let second = c.get(gw.url("/api")).send().await.unwrap();
    let next = second.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (uuid2, n2) = next.split_once('#').expect("uuid#counter");
    assert_eq!(uuid2, uuid);
    assert!(
        n2.parse::<u64>().unwrap() > n.parse::<u64>().unwrap(),
        "{next} after {upstream}"
    );

    let own = c
        .get(gw.url("/api"))
        .header("x-correlation-id", "client-chosen")
        .send()
        .await
        .unwrap();
    assert_eq!(own.headers()["x-correlation-id"], "client-chosen");
    let seen = Echo::parse(&own.text().await.unwrap());
    assert_eq!(seen.header("x-correlation-id"), Some("client-chosen"));

    let missing = c.get(gw.url("/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let id = missing.headers()["x-correlation-id"].to_str().unwrap();
    assert!(id.contains('#'), "{id}");
    assert_eq!(backend.hits(), 3);
}

#[test]
fn an_unknown_generator_is_refused_at_load_with_its_field() {
    let (ok, out) = crate::auth_fixtures::validate(
        "listeners: [{address: \"127.0.0.1:8080\"}]
upstreams: [{name: up, targets: [\"127.0.0.1:9\"]}]
plugins:
  - name: correlation-id
    config: {generator: snowflake}
routes: [{name: r, upstream: up}]
",
    );
    assert!(!ok, "{out}");
    assert!(out.contains("generator"), "{out}");
}
