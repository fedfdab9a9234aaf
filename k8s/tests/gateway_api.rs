//! The Gateway API through the stand-in API server (tests/support/apiserver.rs; no
//! kube-apiserver can run on these machines): the watch loop turns a Gateway and an
//! HTTPRoute into routes and writes their status back; and end to end, the
//! `pingway-k8s` binary and the real `pingway run` gateway send a weighted, header-matched
//! HTTPRoute's requests, and a query-matched one's, to the right real backends.

mod support;

use std::sync::Arc;
use std::time::Duration;

use pingway_k8s::events::EventOptions;
use pingway_k8s::status::StatusOptions;
use pingway_k8s::watch::{self, ClusterWrites, Stats, WatchOptions};
use serde_json::{json, Value};
use support::apiserver::ApiServer;
use support::objects::*;
use support::processes::*;

fn client(server: &ApiServer) -> kube::Client {
    kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap()
}

/// The condition `ty` of our status entry of an HTTPRoute as the stand-in holds it.
fn route_condition(api: &ApiServer, ns: &str, name: &str, ty: &str) -> Option<Value> {
    let obj = api.get("HTTPRoute", ns, name)?;
    obj["status"]["parents"]
        .as_array()?
        .iter()
        .find(|p| p["controllerName"] == "pingway.io/gateway-controller")?["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .cloned()
}

/// Service `shop/web` with one endpoint, our GatewayClass, Gateway `infra/edge`, and
/// HTTPRoute `shop/front` for `host` sending everything to `web`.
fn apply_shop_front(api: &ApiServer, host: &str) {
    api.apply(service("shop", "web"));
    api.apply(slice("shop", "web", &["10.1.0.1:8080".parse().unwrap()]));
    api.apply(gateway_class());
    api.apply(gateway("infra", "edge"));
    apply_front_route(api, host);
}

/// HTTPRoute `shop/front` for `host` on `infra/edge`, everything to `web`.
fn apply_front_route(api: &ApiServer, host: &str) {
    api.apply(http_route(
        "shop",
        "front",
        "infra",
        "edge",
        host,
        json!([{"backendRefs": [{"name": "web", "port": 80}]}]),
    ));
}

/// The watch loop against `api`, writing a file in a temporary directory, leading (only a
/// leader writes status) until the test ends.
struct Watching {
    stats: Arc<Stats>,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _leader: tokio::sync::watch::Sender<bool>,
}

impl Watching {
    /// The generated file as it is now (empty before the first write).
    fn file(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

fn watch_leading(api: &ApiServer) -> Watching {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pingway.yaml");
    let mut opts = WatchOptions::new(out.clone());
    opts.translate.https_listener = None;
    opts.debounce = Duration::from_millis(20);
    let (leader, leadership) = tokio::sync::watch::channel(true);
    opts.cluster_writes = Some(ClusterWrites {
        leadership,
        events: EventOptions::new("gateway-api-test"),
        status: StatusOptions::default(),
    });
    let stats = Arc::new(Stats::default());
    let (c, s) = (client(api), Arc::clone(&stats));
    tokio::spawn(async move { watch::run(c, opts, s).await });
    Watching {
        stats,
        out,
        _dir: dir,
        _leader: leader,
    }
}

fn n(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_httproute_reach_the_file_and_status_is_written_back() {
    let api = ApiServer::start().await;
    apply_shop_front(&api, "shop.test");
    let watching = watch_leading(&api);
    let stats = &watching.stats;
    let read = || watching.file();
    until("the route in the file", &[], async || {
        read().contains("httproute.shop.front.0.0")
    })
    .await;
    let text = read();
    assert!(
        text.contains("10.1.0.1:8080") && text.contains("shop.test"),
        "{text}"
    );
    pingway_k8s::translate::check(&text).expect("valid");

    // Status written back: the route accepted with resolved refs, the Gateway
    // programmed with one attached route, the class accepted.
    until("HTTPRoute status", &[], async || {
        route_condition(&api, "shop", "front", "Accepted").is_some_and(|c| c["status"] == "True")
    })
    .await;
    let rr = route_condition(&api, "shop", "front", "ResolvedRefs").unwrap();
    assert_eq!(rr["status"], "True");
    assert_eq!(rr["observedGeneration"], 1);
    assert!(
        rr["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{rr}"
    );
    until("Gateway status", &[], async || {
        api.get("Gateway", "infra", "edge")
            .is_some_and(|g| g["status"]["listeners"][0]["attachedRoutes"] == 1)
    })
    .await;
    let gw = api.get("Gateway", "infra", "edge").unwrap();
    assert!(gw["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Programmed" && c["status"] == "True"));
    until("GatewayClass status", &[], async || {
        api.get("GatewayClass", "", "pingway")
            .is_some_and(|g| g["status"]["conditions"][0]["type"] == "Accepted")
    })
    .await;

    // The Service goes away: ResolvedRefs turns False with BackendNotFound.
    api.delete("Service", "shop", "web");
    until("ResolvedRefs False", &[], async || {
        route_condition(&api, "shop", "front", "ResolvedRefs")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "BackendNotFound")
    })
    .await;
    // Status writes stop once nothing differs: the patches sent so far are few.
    let writes = n(&stats.gateway_status_writes);
    assert!((3..=8).contains(&writes), "{writes} status writes");
    assert_eq!(n(&stats.gateway_status_errors), 0);
}

/// The API server refuses the status writes (a 500, as when etcd times out): the
/// watcher sends them again on its own timer, with no change in the cluster to wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_status_writes_are_tried_again_without_a_change() {
    let api = ApiServer::start().await;
    apply_shop_front(&api, "shop.test");
    // Every status write is refused until the test says otherwise.
    api.refuse_status_writes(u64::MAX);
    let watching = watch_leading(&api);
    let stats = &watching.stats;

    // The first round's three patches (class, Gateway, route) are refused, and the
    // retry timer, not a change, runs the next try, which is refused too.
    until("a retry refused", &[], async || {
        n(&stats.gateway_status_retries) >= 1 && n(&stats.gateway_status_errors) >= 6
    })
    .await;
    assert_eq!(n(&stats.gateway_status_writes), 0);
    assert!(route_condition(&api, "shop", "front", "Accepted").is_none());

    // The API server takes writes again: a later retry writes every status.
    api.refuse_status_writes(0);
    until("every status written", &[], async || {
        route_condition(&api, "shop", "front", "Accepted").is_some_and(|c| c["status"] == "True")
            && api
                .get("Gateway", "infra", "edge")
                .is_some_and(|g| g["status"]["listeners"][0]["attachedRoutes"] == 1)
            && api
                .get("GatewayClass", "", "pingway")
                .is_some_and(|g| g["status"]["conditions"][0]["type"] == "Accepted")
    })
    .await;
    // Written, the retries stop: no failure is left to try again.
    let errors = n(&stats.gateway_status_errors);
    let retries = n(&stats.gateway_status_retries);
    let rounds = n(&stats.regenerations);
    api.apply(service("unrelated", "x"));
    until("another translation", &[], async || {
        n(&stats.regenerations) > rounds
    })
    .await;
    assert_eq!(n(&stats.gateway_status_errors), errors);
    assert_eq!(n(&stats.gateway_status_retries), retries);
}

/// An API server that stalls on status writes holds the status, not the file: the
/// route reaches the file, and so does a change to it, while every patch waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_status_write_does_not_hold_the_file() {
    let api = ApiServer::start().await;
    apply_shop_front(&api, "shop.test");
    api.hold_status_writes(true);
    let watching = watch_leading(&api);
    let stats = &watching.stats;
    let read = || watching.file();
    until("the route in the file", &[], async || {
        read().contains("shop.test")
    })
    .await;
    apply_front_route(&api, "shop2.test");
    until("the changed route in the file", &[], async || {
        read().contains("shop2.test")
    })
    .await;
    assert_eq!(
        n(&stats.gateway_status_writes),
        0,
        "every status write is held"
    );
    assert!(route_condition(&api, "shop", "front", "Accepted").is_none());

    // Released, the held writes complete and the status catches up.
    api.hold_status_writes(false);
    until("the status written", &[], async || {
        route_condition(&api, "shop", "front", "Accepted").is_some_and(|c| c["status"] == "True")
    })
    .await;
}

/// What [`shop`] started: the gateway's port, and the stand-in API server, the
/// processes and their directory, kept until the test ends.
struct Shop {
    port: u16,
    /// The file the watcher wrote.
    text: String,
    _api: ApiServer,
    _processes: WatcherAndGateway,
}

/// Services `v1` (backend answering "one") and `v2` ("two") in namespace `shop`, our
/// GatewayClass and Gateway `infra/edge`, and HTTPRoute `shop/<name>` for host
/// `shop.test` with `rules`, on the stand-in API server → the watcher → the file → the
/// real gateway, once it serves `GET /` on `shop.test`.
async fn shop(name: &str, rules: serde_json::Value) -> Shop {
    let one = backend("one").await;
    let two = backend("two").await;
    let api = ApiServer::start().await;
    api.apply(service("shop", "v1"));
    api.apply(slice("shop", "v1", &[one]));
    api.apply(service("shop", "v2"));
    api.apply(slice("shop", "v2", &[two]));
    api.apply(gateway_class());
    api.apply(gateway("infra", "edge"));
    api.apply(http_route(
        "shop",
        name,
        "infra",
        "edge",
        "shop.test",
        rules,
    ));

    let pair = WatcherAndGateway::start(&api.url(), &["--no-https", "--debounce-ms", "50"]).await;
    let (port, logs) = (pair.port, pair.logs());
    let first_route = format!("httproute.shop.{name}.1.0");
    until("the file with the route", &logs, async || {
        std::fs::read_to_string(&pair.config).is_ok_and(|t| t.contains(&first_route))
    })
    .await;
    let text = std::fs::read_to_string(&pair.config).unwrap();
    until("the gateway serves the route", &logs, async || {
        get(port, "shop.test", "/")
            .await
            .is_some_and(|(s, _)| s == 200)
    })
    .await;
    Shop {
        port,
        text,
        _api: api,
        _processes: pair,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_and_header_matched_httproute_through_the_real_gateway() {
    // `x-canary: yes` goes to v2 only; the rest is split 50/50.
    let shop = shop(
        "canary",
        json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "x-canary", "value": "yes"}]}],
             "backendRefs": [{"name": "v2", "port": 80}]},
            {"backendRefs": [{"name": "v1", "port": 80, "weight": 50}, {"name": "v2", "port": 80, "weight": 50}]}
        ]),
    )
    .await;
    let port = shop.port;

    // The header match: every request to v2.
    for _ in 0..20 {
        assert_eq!(
            get_with(port, "shop.test", "/x", &[("x-canary", "yes")]).await,
            Some((200, "two".into()))
        );
    }
    // The split: both backends answer, and nothing else does (at most 400 requests; at
    // 50/50 the chance of missing one side is 2^-399).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..400 {
        let (status, body) = get(port, "shop.test", "/y").await.expect("answer");
        assert_eq!(status, 200);
        assert!(body == "one" || body == "two", "{body}");
        seen.insert(body);
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "only {seen:?} answered the 50/50 split");
    // Another host: no route.
    assert_eq!(get(port, "other.test", "/").await.map(|r| r.0), Some(404));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_matched_httproute_through_the_real_gateway() {
    // `?v=2` goes to v2; everything else to v1.
    let shop = shop(
        "versions",
        json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "queryParams": [{"name": "v", "value": "2"}]}],
             "backendRefs": [{"name": "v2", "port": 80}]},
            {"backendRefs": [{"name": "v1", "port": 80}]}
        ]),
    )
    .await;
    let (port, text) = (shop.port, &shop.text);
    assert!(text.contains("query_params"), "{text}");
    assert!(!text.contains("request-termination"), "{text}");

    let cases = [
        ("/?v=2", "two"),
        ("/items?page=1&v=2", "two"),
        ("/?v=%32", "two"),
        ("/?v=2&v=1", "two"),
        ("/", "one"),
        ("/?v=3", "one"),
        ("/?v=1&v=2", "one"),
        ("/?V=2", "one"),
    ];
    for (path, want) in cases {
        assert_eq!(
            get(port, "shop.test", path).await,
            Some((200, want.to_string())),
            "{path}"
        );
    }
}
