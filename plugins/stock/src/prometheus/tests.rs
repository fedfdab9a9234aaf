use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::context::{Consumer, RequestCtx, RequestId, RouteInfo};
use crate::registry::{BuildContext, PluginScope};
use crate::Services;

fn all_on() -> PrometheusConfig {
    PrometheusConfig {
        per_consumer: true,
        status_code_metrics: true,
        latency_metrics: true,
        bandwidth_metrics: true,
        upstream_health_metrics: true,
        ..PrometheusConfig::default()
    }
}

fn plugin(config: PrometheusConfig, metrics: &Arc<Metrics>) -> Prometheus {
    let mut services = Services::new();
    services.insert(metrics.clone());
    let cx = BuildContext::new(PluginScope::Global).with_services(&services);
    Prometheus::build(config, &cx).expect("builds")
}

struct Req {
    parts: http::request::Parts,
    ctx: RequestCtx,
}

fn request(route: Option<(&str, &str)>, consumer: Option<&str>) -> Req {
    let (parts, ()) = http::Request::new(()).into_parts();
    let id = RequestId::new("r-1").expect("an id");
    let mut ctx = RequestCtx::new(id, [127, 0, 0, 1].into(), None);
    ctx.route = route.map(|(r, u)| Arc::new(RouteInfo::new(r, u)));
    if let Some(c) = consumer {
        let consumer = Consumer::new(Arc::from(c), Some(Arc::from(c)), None, Arc::from(vec![]));
        ctx.set_identity(Arc::new(consumer), Some(Arc::from("cred")));
    }
    Req { parts, ctx }
}

fn log(p: &Prometheus, req: &Req, status: u16, upstream: Option<(u16, u64)>, total_ms: u64) {
    let mut e = LogEntry::new(&req.parts, &req.ctx, Duration::from_millis(total_ms));
    e.status = status;
    if let Some((s, ms)) = upstream {
        e.upstream = req.ctx.route.as_ref().map(|r| &*r.upstream);
        e.upstream_status = Some(s);
        e.upstream_latency = Some(Duration::from_millis(ms));
    }
    e.bytes_received = 10;
    e.bytes_sent = 100;
    p.on_log(&e);
}

fn rendered(m: &Metrics) -> String {
    let mut out = String::new();
    m.render(&mut out);
    out
}

#[test]
fn records_kongs_families_with_interned_labels() {
    let m = Arc::new(Metrics::new());
    m.intern([("users", "api")], [("c-1", "alice")]);
    let p = plugin(all_on(), &m);
    log(
        &p,
        &request(Some(("users", "api")), Some("c-1")),
        200,
        Some((200, 30)),
        42,
    );
    log(
        &p,
        &request(Some(("users", "api")), Some("c-1")),
        200,
        Some((200, 3)),
        4,
    );
    log(&p, &request(Some(("users", "api")), None), 401, None, 1);
    log(&p, &request(None, None), 404, None, 0);
    let text = rendered(&m);
    for want in [
        r#"pingway_http_requests_total{service="api",route="users",code="200",source="service",consumer="alice"} 2"#,
        r#"pingway_http_requests_total{service="api",route="users",code="401",source="exit",consumer=""} 1"#,
        r#"pingway_http_requests_total{service="",route="",code="404",source="kong",consumer=""} 1"#,
        r#"pingway_request_latency_ms_bucket{service="api",route="users",le="5"} 2"#,
        r#"pingway_request_latency_ms_bucket{service="api",route="users",le="50"} 3"#,
        r#"pingway_request_latency_ms_count{service="api",route="users"} 3"#,
        r#"pingway_request_latency_ms_sum{service="api",route="users"} 47"#,
        r#"pingway_upstream_latency_ms_count{service="api",route="users"} 2"#,
        r#"pingway_gateway_latency_ms_bucket{service="api",route="users",le="1"} 2"#,
        r#"pingway_bandwidth_bytes{service="api",route="users",direction="egress",consumer="alice"} 200"#,
        r#"pingway_bandwidth_bytes{service="api",route="users",direction="ingress",consumer="alice"} 20"#,
        "# TYPE pingway_request_latency_ms histogram",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}

#[test]
fn unknown_names_fold_and_switched_off_groups_record_nothing() {
    let m = Arc::new(Metrics::new());
    m.intern([("known", "u")], []);
    let p = plugin(all_on(), &m);
    log(
        &p,
        &request(Some(("not-interned", "u")), Some("stranger")),
        200,
        Some((200, 1)),
        1,
    );
    let text = rendered(&m);
    assert!(
        text.contains(r#"pingway_http_requests_total{service="_other",route="_other",code="200",source="service",consumer="_other"} 1"#),
        "{text}"
    );

    let quiet = Arc::new(Metrics::new());
    let p = plugin(PrometheusConfig::default(), &quiet);
    log(
        &p,
        &request(Some(("known", "u")), None),
        200,
        Some((200, 1)),
        1,
    );
    assert_eq!(rendered(&quiet), "");

    // per_consumer off: the consumer label stays empty.
    let m = Arc::new(Metrics::new());
    m.intern([("r", "u")], [("c", "carol")]);
    let p = plugin(
        PrometheusConfig {
            per_consumer: false,
            ..all_on()
        },
        &m,
    );
    log(
        &p,
        &request(Some(("r", "u")), Some("c")),
        200,
        Some((200, 1)),
        1,
    );
    assert!(rendered(&m).contains(r#"consumer=""} 1"#));
}

#[test]
fn without_a_shared_registry_an_instance_has_its_own() {
    let cx = BuildContext::new(PluginScope::Global);
    let p = Prometheus::build(all_on(), &cx).expect("builds");
    log(&p, &request(None, None), 404, None, 0);
    assert!(rendered(p.metrics()).contains("code=\"404\""));
}
