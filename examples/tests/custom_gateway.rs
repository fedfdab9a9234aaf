//! Runs the example binary as a user would and checks its plugin end to end.

mod common;

use std::process::Command;

use common::{client, echo_backend, Gateway};

#[tokio::test]
async fn the_custom_plugin_runs_inside_the_custom_binary() {
    let backend = echo_backend("one").await;
    let gw = Gateway::start(&format!(
        "upstreams: [{{name: b, targets: [\"{backend}\"]}}]
routes:
  - name: r
    upstream: b
    plugins:
      - {{name: request-digest, config: {{header: x-digest, parts: [method, path], echo_downstream: true}}}}
"
    ))
    .await;
    let resp = client().get(gw.url("/orders?id=7")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // FNV-1a 64 of "GET /orders?id=7", computed independently here.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in b"GET /orders?id=7" {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let expected = format!("{h:016x}");
    assert_eq!(resp.headers()["x-digest"].to_str().unwrap(), expected);
    let body = resp.text().await.unwrap();
    assert!(body.contains(&format!("x-digest: {expected}")), "{body}");
}

#[test]
fn validate_knows_the_custom_plugin_and_checks_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        "listeners: [{address: \"127.0.0.1:8080\"}]
upstreams: [{name: b, targets: [\"127.0.0.1:9001\"]}]
routes:
  - name: r
    upstream: b
    plugins:
      - {name: request-digest, config: {header: \"bad header\", colour: red}}
",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_custom-gateway"))
        .arg("validate")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("7:71: routes[0].plugins[0].config.colour: unknown field `colour`"),
        "{stderr}"
    );
    // The sample files use plugins only the custom binary knows.
    for sample in ["custom-gateway.yaml", "worked-examples.yaml"] {
        let example = format!("{}/{sample}", env!("CARGO_MANIFEST_DIR"));
        let ok = Command::new(env!("CARGO_BIN_EXE_custom-gateway"))
            .arg("validate")
            .arg(&example)
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "{sample}: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
    }
}
