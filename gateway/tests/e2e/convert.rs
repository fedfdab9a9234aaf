//! `pingway convert`: a realistic decK file (gateway/tests/fixtures/kong.yml) converted by
//! the real binary, its report checked line by line, the result accepted by `pingway
//! validate`, then served by the real gateway against real backends: Kong's key-auth,
//! acl and strip_path behaviour, through the converted file.

use std::process::Command;

use crate::common::*;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kong.yml");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(pingway_bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_fixture_converts_with_each_difference_reported_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pingway.yaml");
    let (code, stdout, stderr) = run(&["convert", FIXTURE, "-o", out.to_str().unwrap()]);
    assert_eq!(code, 2, "something was reported: exit 2\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let expected = format!(
        "{FIXTURE}:52:9: services[1].routes[0].path_handling: path_handling v1 is not carried over: the service path is joined as v0 does (with a / between)
{FIXTURE}:54:13: services[1].routes[0].plugins[0]: Pingway has no datadog plugin; left out
{FIXTURE}: note: 1 tag(s) ignored: Pingway has no tags
{FIXTURE}: note: 2 plugin config field(s) set to null left out (null is Kong's \"unset\"; Pingway's default applies)
"
    );
    assert_eq!(stderr, expected);
    // What was written is a configuration the gateway accepts.
    let (code, stdout, stderr) = run(&["validate", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (3 routes, 2 upstreams)"), "{stdout}");
}

#[test]
fn unreadable_and_non_kong_input_exit_one() {
    let (code, _, stderr) = run(&["convert", "/nonexistent/kong.yml"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "k.yml", "services: [\n");
    let (code, _, stderr) = run(&["convert", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("k.yml:"), "{stderr}");
    let f = write_file(dir.path(), "p.yml", "listeners: []\n");
    let (code, _, stderr) = run(&["convert", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("_format_version"), "{stderr}");
}

#[test]
fn a_clean_file_exits_zero_and_prints_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        dir.path(),
        "kong.yml",
        "_format_version: \"3.0\"\nservices:\n  - {name: s, url: \"http://127.0.0.1:9001\", routes: [{name: r, paths: [/]}]}\n",
    );
    let (code, stdout, stderr) =
        run(&["convert", f.to_str().unwrap(), "--listen", "127.0.0.1:8080"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.contains("address: 127.0.0.1:8080"), "{stdout}");
}

#[tokio::test]
async fn the_converted_fixture_serves_as_kong_would() {
    let orders = Backend::start("orders", Behaviour::Echo).await;
    let catalog_a = Backend::start("catalog-a", Behaviour::Echo).await;
    let catalog_b = Backend::start("catalog-b", Behaviour::Echo).await;
    let (_, yaml, stderr) = run(&["convert", FIXTURE]);
    assert!(yaml.contains("listeners:"), "{stderr}");
    // The fixture's targets and listeners, moved to this test's ports.
    let admin = free_port();
    let yaml = yaml
        .replace("127.0.0.1:19001", &orders.addr.to_string())
        .replace("127.0.0.1:19002", &catalog_a.addr.to_string())
        .replace("127.0.0.1:19003", &catalog_b.addr.to_string())
        .replace("0.0.0.0:8000", "127.0.0.1:{PORT}")
        .replace("127.0.0.1:8001", &format!("127.0.0.1:{admin}"));
    let gw = GatewayProcess::start(&yaml).await;
    let c = client();

    // key-auth on the service: Kong's 401 without a key.
    let (status, message, _) = json_message(c.get(gw.url("/orders/7")).send().await.unwrap()).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "No API key found in request")
    );
    let (status, message, _) = json_message(
        c.get(gw.url("/orders/7"))
            .header("apikey", "wrong")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, message.as_str()), (401, "Unauthorized"));

    // The converted key works, and strip_path (Kong's default) strips /orders.
    let r = c
        .get(gw.url("/orders/7?x=1"))
        .header("apikey", "alice-secret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit-minute"], "100");
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.backend, "orders");
    assert_eq!(echo.target(), "/7?x=1");
    assert_eq!(echo.header("x-consumer-username"), Some("alice"));
    assert_eq!(echo.header("x-consumer-custom-id"), Some("alice-1"));
    let r = c
        .get(gw.url("/orders"))
        .header("apikey", "alice-secret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(Echo::parse(&r.text().await.unwrap()).target(), "/");
    // methods: [GET, POST]
    let r = c
        .delete(gw.url("/orders/7"))
        .header("apikey", "alice-secret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The regex route keeps its path (strip_path: false); its acl admits admins only.
    let r = c
        .get(gw.url("/order/42"))
        .header("apikey", "alice-secret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(Echo::parse(&r.text().await.unwrap()).target(), "/order/42");
    let (status, message, _) = json_message(
        c.get(gw.url("/order/42"))
            .header("apikey", "bob-secret-key")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, message.as_str()),
        (403, "You cannot consume this service")
    );
    let (status, _, _) = json_message(c.get(gw.url("/order/42")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    // The regex is anchored at the end: /order/42/x is not this route's.
    let r = c
        .get(gw.url("/order/42/x"))
        .header("apikey", "alice-secret-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The catalog service: its upstream's targets, its path joined in front of the
    // stripped request path, no auth.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let r = c.get(gw.url("/catalog/items/3")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let echo = Echo::parse(&r.text().await.unwrap());
        assert_eq!(echo.target(), "/v2/items/3");
        seen.insert(echo.backend);
    }
    assert_eq!(seen.len(), 2, "round-robin over both targets: {seen:?}");
    let r = c.get(gw.url("/catalog")).send().await.unwrap();
    assert_eq!(Echo::parse(&r.text().await.unwrap()).target(), "/v2");
    assert_eq!(orders.hits(), 3);
}
