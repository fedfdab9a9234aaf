//! The `zipkin` plugin on the real gateway against a stand-in Zipkin collector that
//! decodes the JSON v2 spans it receives: names, kinds, parent/child ids, an incoming B3
//! context continued, Kong's `header_type` / `default_header_type` at a real backend,
//! tags (the `Zipkin-Tags` header, the credential only with `include_credential`),
//! sampling and the flush at SIGTERM.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::trace_collector::*;

const WAIT: Duration = Duration::from_secs(15);

const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const CALLER_SPAN: &str = "e457b5a2e4d86bd1";

/// Every span received (each body is a JSON array).
fn spans(c: &TraceCollector) -> Vec<Value> {
    c.received()
        .iter()
        .flat_map(|r| match serde_json::from_slice::<Value>(&r.body) {
            Ok(Value::Array(items)) => items,
            other => panic!("not a JSON array: {other:?}"),
        })
        .collect()
}

async fn wait_for_trace(c: &TraceCollector, trace: &str) -> Vec<Value> {
    let arrived = wait_until(WAIT, || async {
        spans(c)
            .iter()
            .any(|s| s["traceId"] == trace && s["kind"] == "SERVER")
    })
    .await;
    let all = spans(c);
    assert!(arrived, "trace {trace} did not arrive: {all:?}");
    all.into_iter().filter(|s| s["traceId"] == trace).collect()
}

fn gateway_yaml(backend: &Backend, collector: &TraceCollector, extra: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
server: {{grace_period: 3s}}
consumers:
  - username: alice
    keyauth_credentials: [{{key: alice-key, id: alice-cred}}]
upstreams:
  - {{name: api, targets: [\"{b}\"]}}
routes:
  - name: traced
    paths: [/traced]
    upstream: api
    plugins:
      - name: key-auth
      - name: zipkin
        config:
          http_endpoint: http://{c}/api/v2/spans
          sample_ratio: 1
          local_service_name: edge-gw
          static_tags: [{{name: region, value: eu}}]
          queue: {{max_batch_size: 1, max_coalescing_delay: 0.01}}
  - name: private
    paths: [/private]
    upstream: api
    plugins:
      - name: key-auth
      - name: zipkin
        config:
          http_endpoint: http://{c}/api/v2/spans
          sample_ratio: 1
          include_credential: false
          queue: {{max_batch_size: 1, max_coalescing_delay: 0.01}}
{extra}",
        b = backend.addr,
        c = collector.addr
    )
}

#[tokio::test]
async fn a_b3_trace_is_continued_with_request_and_proxy_spans_and_tags() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = TraceCollector::start().await;
    let gw = GatewayProcess::start(&gateway_yaml(&backend, &collector, "")).await;
    let r = client()
        .get(gw.url("/traced/items"))
        .header("apikey", "alice-key")
        .header("x-b3-traceid", TRACE)
        .header("x-b3-spanid", CALLER_SPAN)
        .header("x-b3-sampled", "1")
        .header("zipkin-tags", "team=core; build = 42 ;broken")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = Echo::parse(&r.text().await.unwrap());
    // preserve: the upstream gets B3 multi (what came in), the same trace.
    assert_eq!(echo.header("x-b3-traceid"), Some(TRACE));
    assert_eq!(echo.header("x-b3-sampled"), Some("1"));
    let upstream_parent = echo.header("x-b3-spanid").unwrap().to_string();
    assert_eq!(echo.header("traceparent"), None);

    let trace = wait_for_trace(&collector, TRACE).await;
    let request = trace.iter().find(|s| s["kind"] == "SERVER").unwrap();
    assert_eq!(request["name"], "GET");
    assert_eq!(request["parentId"], CALLER_SPAN);
    assert_eq!(request["localEndpoint"]["serviceName"], "edge-gw");
    assert_eq!(request["remoteEndpoint"]["ipv4"], "127.0.0.1");
    let tags = &request["tags"];
    assert_eq!(tags["http.method"], "GET");
    assert_eq!(tags["http.path"], "/traced/items");
    assert_eq!(tags["http.status_code"], "200");
    assert_eq!(tags["kong.route"], "traced");
    assert_eq!(tags["kong.credential"], "alice-cred");
    assert_eq!(tags["region"], "eu");
    assert_eq!(tags["team"], "core");
    assert_eq!(tags["build"], "42");
    assert!(tags.get("broken").is_none());
    assert!(
        request["timestamp"].as_u64().unwrap() > 0 && request["duration"].as_u64().unwrap() >= 1
    );

    let proxy = trace
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .expect("a proxy span");
    assert_eq!(proxy["name"], "GET (proxy)");
    assert_eq!(
        proxy["id"], upstream_parent,
        "the upstream's parent is the proxy span"
    );
    assert_eq!(echo.header("x-b3-parentspanid"), request["id"].as_str());
    assert_eq!(proxy["remoteEndpoint"]["port"], backend.addr.port());
    for child in trace.iter().filter(|s| s["kind"] != "SERVER") {
        assert_eq!(child["parentId"], request["id"], "{child}");
    }
    let names: Vec<&str> = trace.iter().filter_map(|s| s["name"].as_str()).collect();
    for name in [
        "GET (access key-auth)",
        "GET (access zipkin)",
        "GET (connect)",
    ] {
        assert!(names.contains(&name), "no {name} in {names:?}");
    }
    let received = collector.received();
    assert_eq!(received[0].path, "/api/v2/spans");
    assert_eq!(received[0].header("content-type"), Some("application/json"));

    // include_credential: false leaves the credential out.
    let r = client()
        .get(gw.url("/private"))
        .header("apikey", "alice-key")
        .header("b3", format!("{TRACE}-{CALLER_SPAN}-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = Echo::parse(&r.text().await.unwrap());
    // A B3 single context is preserved as B3 single.
    assert!(echo.header("b3").is_some_and(|b| b.starts_with(TRACE)));
    assert_eq!(echo.header("x-b3-traceid"), None);
    let arrived = wait_until(WAIT, || async {
        spans(&collector)
            .iter()
            .any(|s| s["tags"]["kong.route"] == "private")
    })
    .await;
    assert!(arrived);
    let private = spans(&collector)
        .into_iter()
        .find(|s| s["tags"]["kong.route"] == "private")
        .unwrap();
    assert!(
        private["tags"].get("kong.credential").is_none(),
        "{private}"
    );
}

#[tokio::test]
async fn header_type_and_default_header_type_decide_what_goes_upstream() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = TraceCollector::start().await;
    let route = |name: &str, cfg: &str| {
        format!(
            "  - name: {name}
    paths: [/{name}]
    upstream: api
    plugins:
      - name: zipkin
        config: {{http_endpoint: \"http://{}/api/v2/spans\", sample_ratio: 0{cfg}}}
",
            collector.addr
        )
    };
    let extra = [
        route("default", ""),
        route("single", ", default_header_type: b3-single"),
        route("also-w3c", ", header_type: w3c"),
        route(
            "ignore",
            ", header_type: ignore, default_header_type: jaeger",
        ),
    ]
    .concat();
    let gw = GatewayProcess::start(&gateway_yaml(&backend, &collector, &extra)).await;
    let c = client();
    let get = |path: &'static str, headers: Vec<(&'static str, String)>| {
        let c = c.clone();
        let url = gw.url(path);
        async move {
            let mut req = c.get(url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            Echo::parse(&r.text().await.unwrap())
        }
    };
    // No context: the default header type, b3 (unsampled at ratio 0).
    let e = get("/default", vec![]).await;
    assert_eq!(e.header("x-b3-sampled"), Some("0"));
    assert_eq!(e.header("x-b3-traceid").map(str::len), Some(32));
    let e = get("/single", vec![]).await;
    assert!(
        e.header("b3")
            .is_some_and(|b| b.ends_with("-0") || b.contains("-0-")),
        "{:?}",
        e.header("b3")
    );
    // header_type w3c: written besides the incoming format, same trace.
    let e = get(
        "/also-w3c",
        vec![
            ("x-b3-traceid", TRACE.into()),
            ("x-b3-spanid", CALLER_SPAN.into()),
        ],
    )
    .await;
    assert_eq!(e.header("x-b3-traceid"), Some(TRACE));
    assert!(e.header("traceparent").is_some_and(|t| t.contains(TRACE)));
    // ignore: the incoming context is not read; a new trace in the default type.
    let e = get(
        "/ignore",
        vec![
            ("x-b3-traceid", TRACE.into()),
            ("x-b3-spanid", CALLER_SPAN.into()),
        ],
    )
    .await;
    let jaeger = e.header("uber-trace-id").expect("jaeger upstream");
    assert!(!jaeger.starts_with(TRACE), "{jaeger}");
    // An incoming sampled flag is honoured even at ratio 0.
    get("/default", vec![("b3", format!("{TRACE}-{CALLER_SPAN}-1"))]).await;
    wait_for_trace(&collector, TRACE).await;
    assert!(
        spans(&collector).iter().all(|s| s["traceId"] == TRACE),
        "ratio 0 sent others"
    );
}

#[tokio::test]
async fn sigterm_flushes_the_queued_spans() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = TraceCollector::start().await;
    let mut gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
server: {{grace_period: 3s}}
upstreams:
  - {{name: api, targets: [\"{}\"]}}
plugins:
  - name: zipkin
    config:
      http_endpoint: http://{}/api/v2/spans
      sample_ratio: 1
      queue: {{max_batch_size: 100, max_coalescing_delay: 3600}}
routes:
  - {{name: all, paths: [/n], upstream: api}}
",
        backend.addr, collector.addr
    ))
    .await;
    let c = client();
    for i in 0..3 {
        let r = c.get(gw.url(&format!("/n/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // A 404 (no route) is traced too, by the global instance.
    let r = c.get(gw.url("/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        collector.received().is_empty(),
        "sent before the coalescing delay"
    );
    gw.terminate().await;
    let requests: Vec<Value> = spans(&collector)
        .into_iter()
        .filter(|s| s["kind"] == "SERVER")
        .collect();
    assert_eq!(requests.len(), 4, "{}", gw.log());
}
