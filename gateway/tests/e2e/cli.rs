//! `pingway validate`: exit status and `FILE:LINE:COLUMN: field: problem` messages.

use std::process::Command;

use crate::common::*;

fn validate(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(pingway_bin())
        .arg("validate")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_good_file_exits_zero() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.yaml");
    let (code, stdout, _) = validate(std::path::Path::new(demo));
    assert_eq!(code, 0);
    assert!(stdout.contains("ok (2 routes, 2 upstreams)"), "{stdout}");
}

#[test]
fn structural_problems_are_all_listed_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "bad.yaml",
        "listeners:
  - address: 127.0.0.1:8080
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
    retries: many
routes:
  - name: a
    upstream: one
    colour: red
  - name: b
    upstream: one
    strip_prefix: 3
",
    );
    let (code, _, stderr) = validate(&file);
    assert_eq!(code, 1);
    let f = file.display();
    let expected = format!(
        "{f}:6:14: upstreams[0].retries: invalid type: string \"many\", expected u32
{f}:10:5: routes[0].colour: unknown field `colour`, expected one of `name`, `hosts`, `wildcard_labels`, `paths`, `methods`, `headers`, `query_params`, `upstream`, `strip_prefix`, `preserve_host`, `plugins`, `split`, `split_hash_on`, `split_hash_on_header`, `split_hash_on_cookie`, `request_headers`, `response_headers`, `path_rewrite`, `mirrors`, `protocols`, `https_redirect_status_code`, `compression`, `timeout`, `retries`
{f}:13:19: routes[1].strip_prefix: invalid type: integer `3`, expected a boolean
"
    );
    assert_eq!(stderr, expected);
}

#[test]
fn semantic_and_plugin_problems_are_all_listed_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "bad.yaml",
        "listeners: [{address: 127.0.0.1:8080}]
proxy:
  trusted_ips: [10.0.0.0/33]
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
routes:
  - name: a
    upstream: nowhere
  - name: a
    upstream: one
    paths: [{regex: \"/v(\"}]
  - name: c
    upstream: one
    plugins:
      - name: no-such-plugin
      - name: rate-limiting
        config: {minute: 10, hour: 5}
      - name: ip-restriction
        config: {allow: [not-an-ip]}
",
    );
    let (code, _, stderr) = validate(&file);
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let f = file.display().to_string();
    let want_prefixes = [
        format!("{f}:3:17: proxy.trusted_ips[0]: invalid IP address or CIDR range: \"10.0.0.0/33\""),
        format!("{f}:9:15: routes[0].upstream: no upstream named \"nowhere\" is defined"),
        format!("{f}:10:11: routes[1].name: duplicate route name \"a\" (first used by routes[0])"),
        format!("{f}:12:21: routes[1].paths[0].regex: invalid regular expression: unclosed group"),
        format!("{f}:16:15: routes[2].plugins[0].name: unknown plugin \"no-such-plugin\""),
        format!("{f}:18:36: routes[2].plugins[1].config.hour: the limit for hour (5) must not be lower than the limit for minute (10)"),
        format!("{f}:20:26: routes[2].plugins[2].config.allow[0]: invalid IP address or CIDR range"),
    ];
    assert_eq!(lines.len(), want_prefixes.len(), "{stderr}");
    for (line, want) in lines.iter().zip(&want_prefixes) {
        assert!(
            line.starts_with(want.as_str()),
            "\n got: {line}\nwant: {want}"
        );
    }
}

#[test]
fn sync_rate_without_the_redis_policy_is_refused_as_kong_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "sync.yaml",
        "listeners: [{address: 127.0.0.1:8080}]
upstreams:
  - name: one
    targets: [127.0.0.1:9001]
routes:
  - name: r
    upstream: one
    plugins:
      - name: rate-limiting
        config: {minute: 10, policy: local, sync_rate: 10}
  - name: off
    upstream: one
    paths: [/off]
    plugins:
      - name: rate-limiting
        config: {minute: 10, sync_rate: -1}
",
    );
    let (code, _, stderr) = validate(&file);
    assert_eq!(code, 1, "{stderr}");
    let f = file.display().to_string();
    let want = format!(
        "{f}:10:56: routes[0].plugins[0].config.sync_rate: sync_rate can only be used with the redis policy"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&want),
        "\n got: {}\nwant: {want}",
        lines[0]
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let (code, _, stderr) = validate(std::path::Path::new("/nonexistent/pingway.yaml"));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot read /nonexistent/pingway.yaml"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_an_invalid_file_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "bad.yaml", "listeners: []\n");
    let out = Command::new(pingway_bin())
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listeners: at least one listener is required"),
        "{stderr}"
    );
}
