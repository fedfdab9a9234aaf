//! The `prometheus` plugin on the real gateway: Kong's families on the admin API's
//! `/metrics`, checked by `promtool check metrics` (Debian's `prometheus` package; the
//! test fails when promtool is missing), and series that survive a reload.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const TOKEN: &str = "metrics-token";

fn config(backend: &Backend, admin_port: u16, route_name: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin: {{listen: 127.0.0.1:{admin_port}, token: {TOKEN}}}
upstreams:
  - {{name: api, targets: [\"{}\"]}}
plugins:
  - name: prometheus
    config: {{per_consumer: true, status_code_metrics: true, latency_metrics: true, bandwidth_metrics: true, upstream_health_metrics: true}}
routes:
  - name: {route_name}
    paths: [/users]
    upstream: api
    plugins:
      - {{name: key-auth}}
consumers:
  - username: alice
    keyauth_credentials: [{{key: alice-key}}]
",
        backend.addr
    )
}

/// Runs `promtool check metrics` on `text`; returns its exit code and what it printed.
fn promtool(text: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool is required for this test: install Debian's `prometheus` package \
             (apt-get install -y prometheus), as .ci/run does",
        );
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), said)
}

/// promtool's lint findings that Kong's own names cause, kept on purpose so that Kong's
/// dashboards work after a prefix rename. Anything else fails the test.
const KONG_NAME_LINTS: &[&str] = &[
    "pingway_bandwidth_bytes counter metrics should have \"_total\" suffix",
    "pingway_request_latency_ms metric names should not contain abbreviated units",
    "pingway_upstream_latency_ms metric names should not contain abbreviated units",
    "pingway_gateway_latency_ms metric names should not contain abbreviated units",
];

#[test]
fn promtool_is_installed_and_catches_bad_text() {
    let (code, said) = promtool("not a metric{{ 1\n");
    assert_eq!(
        code, 1,
        "promtool should refuse a broken exposition: {said}"
    );
    let (code, said) = promtool("# HELP ok_total fine\n# TYPE ok_total counter\nok_total 1\n");
    assert_eq!(code, 0, "{said}");
}

#[tokio::test]
async fn kongs_families_pass_promtool_and_survive_a_reload() {
    let backend = Backend::start("api", Behaviour::Echo).await;
    let admin_port = free_port();
    let gw =
        GatewayProcess::start_with_args(&config(&backend, admin_port, "users"), &["--no-watch"])
            .await;
    let c = client();
    let metrics_url = format!("http://127.0.0.1:{admin_port}/metrics");
    let scrape = || async {
        let r = c
            .get(&metrics_url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answers");
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        r.text().await.unwrap()
    };
    let up = wait_until(Duration::from_secs(10), || async {
        c.get(&metrics_url).send().await.is_ok()
    })
    .await;
    assert!(up, "{}", gw.log());

    for _ in 0..3 {
        let r = c
            .get(gw.url("/users/1"))
            .header("apikey", "alice-key")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c.get(gw.url("/users/1")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(gw.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // The log phase runs after the response: wait for the last request's series.
    let mut text = scrape().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains("code=\"404\"") && text.contains("code=\"401\""))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape().await;
    }
    let want = [
        r#"pingway_http_requests_total{service="api",route="users",code="200",source="service",consumer="alice"} 3"#,
        r#"pingway_http_requests_total{service="api",route="users",code="401",source="exit",consumer=""} 1"#,
        r#"pingway_http_requests_total{service="",route="",code="404",source="kong",consumer=""} 1"#,
        r#"pingway_request_latency_ms_count{service="api",route="users"} 4"#,
        r#"pingway_upstream_latency_ms_count{service="api",route="users"} 3"#,
        r#"pingway_gateway_latency_ms_count{service="api",route="users"} 4"#,
        r#"direction="egress",consumer="alice"}"#,
        "state=\"healthchecks_off\"} 1",
        "pingway_config_reloads_total{outcome=\"applied\"} 0",
        "pingway_connections_refused_total 0",
    ];
    for w in want {
        assert!(text.contains(w), "missing {w} in\n{text}");
    }
    assert!(text.contains(&format!(
        "pingway_upstream_target_health{{upstream=\"api\",target=\"{0}\",address=\"{0}\",state=\"healthy\"}} 0",
        backend.addr
    )), "{text}");

    let (code, said) = promtool(&text);
    assert_ne!(
        code, 1,
        "promtool cannot parse the exposition: {said}\n{text}"
    );
    for line in said.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            KONG_NAME_LINTS.iter().any(|k| line.contains(k)),
            "promtool: {line}\n{text}"
        );
    }

    // A reload (route renamed, one added): the old series stay, the new route records.
    gw.write_config(&config(&backend, admin_port, "people"));
    let r = c
        .post(format!("http://127.0.0.1:{admin_port}/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let r = c
        .get(gw.url("/users/2"))
        .header("apikey", "alice-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    text = scrape().await;
    while !text.contains(r#"route="people",code="200""#) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        text = scrape().await;
    }
    assert!(
        text.contains(r#"route="users",code="200",source="service",consumer="alice"} 3"#),
        "{text}"
    );
    assert!(
        text.contains("pingway_config_reloads_total{outcome=\"applied\"} 1"),
        "{text}"
    );
    let (code, said) = promtool(&text);
    assert_ne!(code, 1, "{said}");
}

/// The gateway's own series without the plugin: connections, reloads by outcome, the
/// configuration version and rate-limiting key evictions, all clean for promtool.
#[tokio::test]
async fn gateway_series_count_connections_reloads_and_rate_limit_evictions() {
    let backend = Backend::start("api", Behaviour::Echo).await;
    let admin_port = free_port();
    // Two keys tracked, one period (a year: no window ends during the test).
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin: {{listen: 127.0.0.1:{admin_port}, token: {TOKEN}}}
upstreams:
  - {{name: api, targets: [\"{}\"]}}
routes:
  - name: limited
    paths: [/limited]
    upstream: api
    plugins:
      - name: rate-limiting
        config: {{year: 100000, limit_by: header, header_name: x-client, max_tracked_keys: 2}}
",
        backend.addr
    );
    let gw = GatewayProcess::start_with_args(&yaml, &["--no-watch"]).await;
    let c = client();
    let admin = |path: &str| format!("http://127.0.0.1:{admin_port}{path}");
    let scrape = || async {
        let r = c
            .get(admin("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answers");
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    let up = wait_until(Duration::from_secs(10), || async {
        c.get(admin("/metrics")).send().await.is_ok()
    })
    .await;
    assert!(up, "{}", gw.log());

    // Ten clients through a table of two: the third and later each evict one.
    for i in 0..10 {
        let r = c
            .get(gw.url("/limited"))
            .header("x-client", format!("client-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A refused reload, then an applied one.
    gw.write_config(&yaml.replace("upstream: api\n", "upstream: missing\n"));
    let r = c
        .post(admin("/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    gw.write_config(&yaml.replace("year: 100000", "year: 100001"));
    let r = c
        .post(admin("/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let text = scrape().await;
    for w in [
        "pingway_rate_limiting_keys_evicted_total 8\n",
        "pingway_config_reloads_total{outcome=\"failed\"} 1\n",
        "pingway_config_reloads_total{outcome=\"applied\"} 1\n",
        "pingway_config_last_reload_successful 1\n",
        "pingway_config_version 2\n",
        "# TYPE pingway_connections_active gauge\n",
    ] {
        assert!(text.contains(w), "missing {w:?} in\n{text}");
    }
    let accepted: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pingway_connections_accepted_total "))
        .and_then(|n| n.parse().ok())
        .expect("pingway_connections_accepted_total");
    assert!(accepted >= 1, "{text}");
    let (code, said) = promtool(&text);
    assert_eq!(code, 0, "promtool: {said}\n{text}");
    assert!(said.trim().is_empty(), "promtool lints: {said}\n{text}");
}
