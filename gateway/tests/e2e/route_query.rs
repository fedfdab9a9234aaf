//! Query parameter conditions (`query_params`) on the running gateway: real requests to
//! real backends, the precedence against methods and headers, a query with thousands
//! of parameters, and a refused condition named by file, line and field.

use std::process::Command;

use crate::common::*;

async fn setup() -> (GatewayProcess, u16, Vec<Backend>) {
    let mut backends = Vec::new();
    for name in ["v1", "v2", "spaced", "method", "headers", "last"] {
        backends.push(Backend::start(name, Behaviour::Echo).await);
    }
    let a = |i: usize| backends[i].addr.to_string();
    let admin_port = free_port();
    let yaml = format!(
        r#"
listeners: [{{address: "127.0.0.1:{{PORT}}"}}]
admin: {{listen: "127.0.0.1:{admin_port}"}}
upstreams:
  - {{name: v1, targets: ["{}"]}}
  - {{name: v2, targets: ["{}"]}}
  - {{name: spaced, targets: ["{}"]}}
  - {{name: method, targets: ["{}"]}}
  - {{name: headers, targets: ["{}"]}}
  - {{name: last, targets: ["{}"]}}
routes:
  - name: api
    paths: [/api]
    upstream: v1
  - name: api-v2
    paths: [/api]
    query_params: [{{name: v, exact: "2"}}]
    upstream: v2
  - name: api-spaced
    paths: [/api]
    query_params: [{{name: q, exact: "b c"}}, {{name: debug, present: false}}]
    upstream: spaced
  - name: tier
    paths: [/tier]
    query_params: [{{name: tier, regex: "^(gold|silver)$"}}]
    upstream: v2
  - name: tier-default
    paths: [/tier]
    upstream: v1
  - name: two-headers
    paths: [/rank]
    headers: [{{name: x-a, exact: "1"}}, {{name: x-b, exact: "1"}}]
    upstream: headers
  - name: get-only
    paths: [/rank]
    methods: [GET]
    upstream: method
  - name: last-param
    paths: [/many]
    query_params: [{{name: last, present: true}}]
    upstream: last
  - name: many-default
    paths: [/many]
    upstream: v1
"#,
        a(0),
        a(1),
        a(2),
        a(3),
        a(4),
        a(5),
    );
    (GatewayProcess::start(&yaml).await, admin_port, backends)
}

async fn get(gw: &GatewayProcess, path: &str, headers: &[(&str, &str)]) -> (u16, Echo) {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, Echo::parse(&resp.text().await.unwrap()))
}

#[tokio::test]
async fn routes_by_query_parameters_decoded_first_value_and_forwards_the_query_unchanged() {
    let (gw, _admin, _backends) = setup().await;
    let cases: &[(&str, &str)] = &[
        ("/api/x", "v1"),
        ("/api/x?v=2", "v2"),
        ("/api/x?v=3", "v1"),
        ("/api/x?V=2", "v1"),
        ("/api/x?v=2&v=3", "v2"),
        ("/api/x?v=3&v=2", "v1"),
        ("/api/x?q=b%20c", "spaced"),
        ("/api/x?%71=b%20c", "spaced"),
        ("/api/x?q=b+c", "v1"),
        ("/api/x?q=b%20c&debug", "v1"),
        ("/tier?tier=gold", "v2"),
        ("/tier?tier=bronze", "v1"),
        ("/tier", "v1"),
    ];
    for (path, backend) in cases {
        let (status, echo) = get(&gw, path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(echo.backend, *backend, "{path}");
        assert_eq!(
            echo.target(),
            *path,
            "the query reaches the upstream as sent"
        );
    }
}

#[tokio::test]
async fn a_method_list_outranks_header_conditions_as_in_the_gateway_api() {
    let (gw, _admin, _backends) = setup().await;
    let both = [("x-a", "1"), ("x-b", "1")];
    let (_, echo) = get(&gw, "/rank", &both).await;
    assert_eq!(echo.backend, "method");
    let resp = client()
        .delete(gw.url("/rank"))
        .header("x-a", "1")
        .header("x-b", "1")
        .send()
        .await
        .unwrap();
    let echo = Echo::parse(&resp.text().await.unwrap());
    assert_eq!(echo.backend, "headers");
}

#[tokio::test]
async fn thousands_of_parameters_are_looked_at_up_to_the_bound_and_counted() {
    let (gw, admin, _backends) = setup().await;
    let series = "pingway_route_query_truncated_total";
    assert_eq!(metric_value(admin, series).await, Some(0));
    // Within the bound: the 100th parameter is seen.
    let mut params: Vec<String> = (0..99).map(|i| format!("p{i}=x")).collect();
    params.push("last=1".into());
    let (_, echo) = get(&gw, &format!("/many?{}", params.join("&")), &[]).await;
    assert_eq!(echo.backend, "last");
    assert_eq!(metric_value(admin, series).await, Some(0));
    // Past it: `last` does not exist for routing, and the request is counted.
    let mut params: Vec<String> = (0..3000).map(|i| format!("p{i}=x")).collect();
    params.push("last=1".into());
    let (status, echo) = get(&gw, &format!("/many?{}", params.join("&")), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(echo.backend, "v1");
    assert_eq!(metric_value(admin, series).await, Some(1));
    // Where no candidate route has query conditions the query is not read, however long.
    let (_, echo) = get(&gw, &format!("/rank?{}", params.join("&")), &[]).await;
    assert_eq!(echo.backend, "method");
    assert_eq!(metric_value(admin, series).await, Some(1));
}

#[test]
fn an_invalid_query_condition_is_refused_with_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "query.yaml",
        "listeners: [{address: 127.0.0.1:8080}]
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
routes:
  - name: a
    upstream: one
    query_params:
      - {name: v, exact: \"2\"}
      - {name: w, regex: \"(unclosed\"}
      - {name: x}
",
    );
    let out = Command::new(pingway_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let f = file.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "{f}:10:26: routes[0].query_params[1].regex: invalid regular expression: unclosed group"
        )),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("{f}:11:9: routes[0].query_params[2]: a query parameter condition needs exactly one of exact, regex, present")),
        "{}",
        lines[1]
    );
}
