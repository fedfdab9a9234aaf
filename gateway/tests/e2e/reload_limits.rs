//! Hostile configuration files (an alias bomb, deep nesting, a huge file) are refused by
//! `pingway validate` and by a running gateway's reload, which keeps serving with little
//! memory.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// The alias bomb of the hardening issue (590 bytes here): ten anchors, each a list of
/// ten aliases of the one before (10^10 values once expanded).
fn alias_bomb() -> String {
    let mut out = format!("a0: &a0 [{}]\n", ["lol"; 10].join(", "));
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        out.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    out
}

/// A million nested block lists (`- - - ... x`): the YAML parser has no depth limit
/// for block collections, and every recursive walk of such a tree overflows the stack.
fn deep_nesting() -> String {
    format!("{}x\n", "- ".repeat(1_000_000))
}

fn one_route(backend: &Backend) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: one, targets: [\"{}\"]}}]
routes: [{{name: main, paths: [/], upstream: one}}]
",
        backend.addr
    )
}

/// `pingway validate FILE`: exit code and standard error.
fn validate(path: &Path) -> (i32, String) {
    let out = Command::new(pingway_bin())
        .arg("validate")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces the running config with `hostile`, then checks that the refusal names the
/// limit, that the gateway still serves its old route, and that its peak memory stayed
/// small (the old code grew to 1.7 GB in 1.5 s on the bomb and died).
async fn refused_while_serving(hostile: &str, limit: &str) {
    let one = Backend::start("one", Behaviour::Echo).await;
    let mut gw = GatewayProcess::start(&one_route(&one)).await;
    gw.write_config(hostile);
    let refused = wait_until(Duration::from_secs(20), || async {
        gw.log().contains("keeping the running configuration")
    })
    .await;
    assert!(refused, "no refusal logged:\n{}", gw.log());
    let file = gw.config_path.display().to_string();
    assert!(
        gw.log()
            .lines()
            .any(|l| l.contains(&format!("{file}:")) && l.contains(limit)),
        "no `{file}:LINE:COL: ...` line naming {limit:?}:\n{}",
        gw.log()
    );
    assert!(gw.is_running());
    let resp = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(backend_of(&resp).as_deref(), Some("one"));
    let peak = gw.memory_status("VmHWM").expect("/proc/PID/status");
    assert!(peak < 200 << 20, "peak resident memory {} MB", peak >> 20);
}

#[tokio::test]
async fn reload_refuses_an_alias_bomb_renamed_over_the_config_and_keeps_serving() {
    refused_while_serving(&alias_bomb(), "node budget").await;
}

#[tokio::test]
async fn reload_refuses_deep_nesting_and_keeps_serving() {
    refused_while_serving(&deep_nesting(), "MAX_DEPTH").await;
}

#[test]
fn validate_refuses_an_alias_bomb_naming_the_limit_and_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = alias_bomb();
    assert!(bomb.len() < 1000);
    let file = write_file(dir.path(), "bomb.yaml", &bomb);
    let (code, stderr) = validate(&file);
    assert_eq!(code, 1, "{stderr}");
    // Refused at the alias of line 5 (`a4`'s 8th) that takes the tree past 100,000 values.
    let at = format!("{}:5:45: a4[7]: ", file.display());
    assert!(stderr.starts_with(&at), "{stderr}");
    assert!(stderr.contains("node budget"), "{stderr}");
}

#[test]
fn validate_refuses_deep_nesting_naming_the_limit_and_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "deep.yaml", &deep_nesting());
    let (code, stderr) = validate(&file);
    assert_eq!(code, 1, "{stderr}");
    // The 129th list opens at column 257.
    let at = format!("{}:1:257:", file.display());
    assert!(stderr.starts_with(&at), "{stderr}");
    assert!(
        stderr.contains("nest deeper than 128 levels (MAX_DEPTH)"),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_a_file_over_the_size_limit_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    // Sparse: 4 MiB + 1 byte that take no room on the disk.
    std::fs::File::create(&path)
        .unwrap()
        .set_len((4 << 20) + 1)
        .unwrap();
    let (code, stderr) = validate(&path);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("4 MiB limit"), "{stderr}");
    assert!(stderr.contains("MAX_FILE_BYTES"), "{stderr}");
}

/// `one_route` followed by comment lines up to at least `size` bytes.
fn padded(yaml: &str, size: usize) -> String {
    let mut out = yaml.to_string();
    let line = format!("# {}\n", "x".repeat(70));
    while out.len() < size {
        out.push_str(&line);
    }
    out
}

#[tokio::test]
async fn a_reload_over_the_configured_size_bound_is_refused_and_the_running_config_kept() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    let gw =
        GatewayProcess::start_with_args(&one_route(&one), &["--max-config-bytes", "4000"]).await;
    // Over the bound set on the command line, far under the default 4 MiB.
    gw.write_config(&padded(&one_route(&two), 5000));
    let refused = wait_until(Duration::from_secs(20), || async {
        gw.log().contains("keeping the running configuration")
    })
    .await;
    assert!(refused, "no refusal logged:\n{}", gw.log());
    let log = gw.log();
    assert!(log.contains("over the 4000 bytes limit"), "{log}");
    assert!(log.contains("--max-config-bytes"), "{log}");
    let resp = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(backend_of(&resp).as_deref(), Some("one"));
    // Within the bound again: served.
    gw.write_config(&padded(&one_route(&two), 3000));
    let moved = wait_until(Duration::from_secs(20), || async {
        let resp = client().get(gw.url("/")).send().await;
        resp.is_ok_and(|r| backend_of(&r).as_deref() == Some("two"))
    })
    .await;
    assert!(moved, "{}", gw.log());
}

#[test]
fn validate_reads_a_file_over_4_mib_when_the_bound_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = padded(
        "listeners: [{address: \"127.0.0.1:1\"}]\nupstreams: [{name: one, targets: [\"127.0.0.1:2\"]}]\nroutes: [{name: main, paths: [/], upstream: one}]\n",
        (4 << 20) + 1000,
    );
    let file = write_file(dir.path(), "big.yaml", &yaml);
    let (code, stderr) = validate(&file);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("4 MiB limit"), "{stderr}");
    let out = Command::new(pingway_bin())
        .args(["validate", "--max-config-bytes", "8388608"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The environment variable, when the flag is not given.
    let out = Command::new(pingway_bin())
        .arg("validate")
        .arg(&file)
        .env("PINGWAY_MAX_CONFIG_BYTES", "8388608")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
