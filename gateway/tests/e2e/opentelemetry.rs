//! The `opentelemetry` plugin on the real gateway against a stand-in OTLP/HTTP collector
//! that decodes what it receives (`ExportTraceServiceRequest`, the opentelemetry-proto
//! crate's prost types): span names, kinds and parent/child ids, an incoming
//! `traceparent` continued, the context in every inject format at a real backend,
//! resource attributes and headers at the collector, sampling, a collector that is down
//! (requests still served, the loss counted) and the flush at SIGTERM.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::common::*;
use crate::trace_collector::*;

const WAIT: Duration = Duration::from_secs(15);

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Every export the collector decoded, with the resource's attributes.
fn exports(c: &TraceCollector) -> Vec<ExportTraceServiceRequest> {
    c.received()
        .iter()
        .map(|r| {
            ExportTraceServiceRequest::decode(r.body.as_slice()).expect("an OTLP protobuf body")
        })
        .collect()
}

/// Every span received.
fn spans(c: &TraceCollector) -> Vec<Span> {
    exports(c)
        .into_iter()
        .flat_map(|e| e.resource_spans)
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

/// The spans of trace `trace` (hex), once its request span arrived.
async fn wait_for_trace(c: &TraceCollector, trace: &str) -> Vec<Span> {
    let arrived = wait_until(WAIT, || async {
        spans(c)
            .iter()
            .any(|s| hex(&s.trace_id) == trace && s.kind == SpanKind::Server as i32)
    })
    .await;
    let all = spans(c);
    assert!(arrived, "trace {trace} did not arrive: {all:?}");
    all.into_iter()
        .filter(|s| hex(&s.trace_id) == trace)
        .collect()
}

fn string_attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        })
}

fn config(backend: &Backend, plugin: &str, admin: Option<u16>) -> String {
    let admin = admin.map_or(String::new(), |p| {
        format!("admin: {{listen: \"127.0.0.1:{p}\"}}\n")
    });
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
server: {{grace_period: 3s}}
{admin}upstreams:
  - {{name: api, targets: [\"{}\"]}}
plugins:
{plugin}
routes:
  - name: orders
    paths: [/]
    upstream: api
    plugins:
      - name: request-transformer
        config: {{add: {{headers: [\"x-added:1\"]}}}}
",
        backend.addr
    )
}

#[tokio::test]
async fn a_continued_trace_reaches_the_collector_with_its_parents_resource_and_headers() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = TraceCollector::start().await;
    let gw = GatewayProcess::start(&config(
        &backend,
        &format!(
            "  - name: opentelemetry
    config:
      traces_endpoint: http://{}/v1/traces
      headers: {{x-otlp-key: k-123}}
      resource_attributes: {{service.name: edge, deployment.environment: test}}
      sampling_rate: 1
      http_response_header_for_traceid: x-trace-id
      queue: {{max_batch_size: 1, max_coalescing_delay: 0.01}}",
            collector.addr
        ),
        None,
    ))
    .await;
    let r = client()
        .get(gw.url("/orders/7?apikey=secret"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-trace-id"], TRACE);
    let echo = Echo::parse(&r.text().await.unwrap());

    // The upstream continues the same trace, as the child of the gateway's span.
    let tp = echo.header("traceparent").expect("traceparent upstream");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE, "01"), "{tp}");
    assert_ne!(parts[2], CALLER_SPAN);
    assert_eq!(echo.header("tracestate"), Some("congo=t61rcWkgMzE"));

    let trace = wait_for_trace(&collector, TRACE).await;
    let root = trace
        .iter()
        .find(|s| s.name == "kong")
        .expect("the request span");
    assert_eq!(root.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&root.parent_span_id),
        CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(root.trace_state, "congo=t61rcWkgMzE");
    assert_eq!(
        string_attr(&root.attributes, "http.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        string_attr(&root.attributes, "http.url").as_deref(),
        Some("/orders/7?apikey=REDACTED"),
        "secrets in the query are redacted"
    );
    assert_eq!(
        string_attr(&root.attributes, "http.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        string_attr(&root.attributes, "kong.route").as_deref(),
        Some("orders")
    );
    assert!(root.end_time_unix_nano >= root.start_time_unix_nano);

    // Children: each plugin's access phase, the connection, the upstream request; all
    // the request span's children.
    let names: Vec<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    for name in [
        "kong.access.plugin.opentelemetry",
        "kong.access.plugin.request-transformer",
        "kong.upstream.connect",
        "kong.balancer",
        "kong.upstream.ttfb",
    ] {
        assert!(names.contains(&name), "no {name} span in {names:?}");
    }
    for child in trace.iter().filter(|s| s.name != "kong") {
        assert_eq!(
            child.parent_span_id, root.span_id,
            "{} is not the request's child",
            child.name
        );
        assert!(
            child.start_time_unix_nano >= root.start_time_unix_nano,
            "{}",
            child.name
        );
    }
    let balancer = trace.iter().find(|s| s.name == "kong.balancer").unwrap();
    assert_eq!(balancer.kind, SpanKind::Client as i32);
    assert_eq!(
        hex(&balancer.span_id),
        parts[2],
        "the upstream's parent is the client span"
    );
    assert_eq!(
        string_attr(&balancer.attributes, "net.peer.port").as_deref(),
        Some(backend.addr.port().to_string().as_str())
    );

    // The resource and the configured headers reach the collector.
    let received = collector.received();
    let first = &received[0];
    assert_eq!(first.path, "/v1/traces");
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(first.header("x-otlp-key"), Some("k-123"));
    let export = &exports(&collector)[0];
    let resource = export.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("edge")
    );
    assert_eq!(
        string_attr(&resource.attributes, "deployment.environment").as_deref(),
        Some("test")
    );
    assert_eq!(
        export.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .unwrap()
            .name,
        "pingway"
    );
}

#[tokio::test]
async fn the_upstream_receives_the_context_in_every_inject_format() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = TraceCollector::start().await;
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: api, targets: [\"{}\"]}}
routes:
  - name: every
    paths: [/every]
    upstream: api
    plugins:
      - name: opentelemetry
        config:
          traces_endpoint: http://{c}/v1/traces
          sampling_rate: 1
          propagation:
            extract: [w3c]
            inject: [w3c, b3, b3-single, jaeger, ot]
            clear: [x-legacy-trace]
  - name: preserve
    paths: [/preserve]
    upstream: api
    plugins:
      - name: opentelemetry
        config:
          traces_endpoint: http://{c}/v1/traces
          sampling_rate: 1
",
        backend.addr,
        c = collector.addr
    ))
    .await;
    let c = client();
    let r = c
        .get(gw.url("/every"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-legacy-trace", "gone")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = Echo::parse(&r.text().await.unwrap());
    let tp = echo.header("traceparent").expect("w3c");
    let span = tp.split('-').nth(2).unwrap().to_string();
    assert_eq!(echo.header("x-b3-traceid"), Some(TRACE));
    assert_eq!(echo.header("x-b3-spanid"), Some(span.as_str()));
    assert_eq!(echo.header("x-b3-sampled"), Some("1"));
    let b3 = echo.header("b3").expect("b3 single");
    assert!(b3.starts_with(&format!("{TRACE}-{span}-1-")), "{b3}");
    let jaeger = echo.header("uber-trace-id").expect("jaeger");
    assert!(
        jaeger.starts_with(&format!("{TRACE}:{span}:")) && jaeger.ends_with(":01"),
        "{jaeger}"
    );
    assert_eq!(echo.header("ot-tracer-traceid"), Some(TRACE));
    assert_eq!(echo.header("ot-tracer-spanid"), Some(span.as_str()));
    assert_eq!(echo.header("ot-tracer-sampled"), Some("true"));
    assert_eq!(echo.header("x-legacy-trace"), None, "cleared");
    // The request span is the parent named in the formats that carry one.
    let trace = wait_for_trace(&collector, TRACE).await;
    let root = trace.iter().find(|s| s.name == "kong").unwrap();
    assert_eq!(
        echo.header("x-b3-parentspanid"),
        Some(hex(&root.span_id).as_str())
    );

    // Only w3c is read on /every: a B3 context there starts a new trace.
    let r = c
        .get(gw.url("/every"))
        .header("x-b3-traceid", "a3ce929d0e0e4736")
        .header("x-b3-spanid", CALLER_SPAN)
        .send()
        .await
        .unwrap();
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_ne!(echo.header("x-b3-traceid"), Some("a3ce929d0e0e4736"));

    // The default (`preserve`): the upstream gets the format the request came in, with
    // a 64-bit id kept 64 bits wide, and not the others.
    let r = c
        .get(gw.url("/preserve"))
        .header("x-b3-traceid", "a3ce929d0e0e4736")
        .header("x-b3-spanid", CALLER_SPAN)
        .header("x-b3-sampled", "1")
        .send()
        .await
        .unwrap();
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.header("x-b3-traceid"), Some("a3ce929d0e0e4736"));
    assert_ne!(echo.header("x-b3-spanid"), Some(CALLER_SPAN));
    assert_eq!(echo.header("traceparent"), None);
    // Without a context, preserve writes the default format, w3c.
    let r = c.get(gw.url("/preserve")).send().await.unwrap();
    let echo = Echo::parse(&r.text().await.unwrap());
    assert!(echo
        .header("traceparent")
        .is_some_and(|t| t.ends_with("-01")));
    assert_eq!(echo.header("x-b3-traceid"), None);
}

#[tokio::test]
async fn sampling_zero_sends_nothing_but_a_callers_sampled_flag_is_honoured() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = TraceCollector::start().await;
    let gw = GatewayProcess::start(&config(
        &backend,
        &format!(
            "  - name: opentelemetry
    config:
      traces_endpoint: http://{}/v1/traces
      sampling_rate: 0
      queue: {{max_batch_size: 1, max_coalescing_delay: 0.01}}",
            collector.addr
        ),
        None,
    ))
    .await;
    let c = client();
    for _ in 0..10 {
        let r = c.get(gw.url("/unsampled")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let echo = Echo::parse(&r.text().await.unwrap());
        // The decision travels upstream too.
        assert!(echo
            .header("traceparent")
            .is_some_and(|t| t.ends_with("-00")));
    }
    // A caller that sampled its trace is traced; the queue is first in, first out, so
    // once its spans arrived, anything sampled before would have arrived too.
    let r = c
        .get(gw.url("/sampled"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for_trace(&collector, TRACE).await;
    let all = spans(&collector);
    assert!(
        all.iter().all(|s| hex(&s.trace_id) == TRACE),
        "unsampled spans were sent: {all:?}"
    );
    assert_eq!(collector.received().len(), 1);
}

#[tokio::test]
async fn a_down_collector_neither_fails_requests_nor_loses_count_of_spans() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let down = free_port();
    let admin = free_port();
    let gw = GatewayProcess::start(&config(
        &backend,
        &format!(
            "  - name: opentelemetry
    config:
      traces_endpoint: http://127.0.0.1:{down}/v1/traces
      sampling_rate: 1
      connect_timeout: 200
      queue: {{max_batch_size: 1, max_entries: 2, max_retry_time: 1, initial_retry_delay: 0.01, max_retry_delay: 0.05}}"
        ),
        Some(admin),
    ))
    .await;
    let c = client();
    for i in 0..20 {
        let r = c.get(gw.url(&format!("/n/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    assert!(
        wait_until(WAIT, || async {
            log_counter(admin, "opentelemetry", "failed").await >= 1
        })
        .await,
        "no failed export counted: {}",
        gw.log()
    );
    let dropped = log_counter(admin, "opentelemetry", "dropped").await;
    assert!(
        dropped >= 1,
        "nothing dropped with a queue of 2 and 20 requests"
    );
    assert!(
        gw.log()
            .contains("opentelemetry: cannot reach the collector"),
        "{}",
        gw.log()
    );
}

#[tokio::test]
async fn sigterm_flushes_the_queued_spans() {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let collector = TraceCollector::start().await;
    let mut gw = GatewayProcess::start(&config(
        &backend,
        &format!(
            "  - name: opentelemetry
    config:
      traces_endpoint: http://{}/v1/traces
      sampling_rate: 1
      queue: {{max_batch_size: 100, max_coalescing_delay: 3600}}",
            collector.addr
        ),
        None,
    ))
    .await;
    let c = client();
    for i in 0..3 {
        let r = c.get(gw.url(&format!("/n/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    assert!(
        collector.received().is_empty(),
        "sent before the coalescing delay"
    );
    gw.terminate().await;
    let roots: Vec<Span> = spans(&collector)
        .into_iter()
        .filter(|s| s.name == "kong")
        .collect();
    assert_eq!(roots.len(), 3, "{}", gw.log());
}

#[tokio::test]
async fn bad_tracing_config_is_refused_naming_the_field() {
    for (config, field, says) in [
        (
            "traces_endpoint: https://c/v1/traces",
            "traces_endpoint",
            "http://",
        ),
        (
            "traces_endpoint: http://c/v1/traces\n      sampling_rate: 2",
            "sampling_rate",
            "between 0 and 1",
        ),
        (
            "traces_endpoint: http://c/v1/traces\n      propagation: {extract: [datadog]}",
            "propagation.extract",
            "not supported",
        ),
        (
            "endpoint: http://c/v1/traces\n      header_type: morse",
            "header_type",
            "unknown format",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "g.yaml",
            &format!(
                "listeners: [{{address: \"127.0.0.1:1\"}}]
upstreams: [{{name: api, targets: [\"127.0.0.1:1\"]}}]
plugins:
  - name: opentelemetry
    config:
      {config}
routes: [{{name: all, paths: [/], upstream: api}}]
"
            ),
        );
        let out = std::process::Command::new(pingway_bin())
            .arg("validate")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{config} was accepted");
        assert!(
            text.contains(field) && text.contains(says),
            "{config}: {text}"
        );
    }
}
