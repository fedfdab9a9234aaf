//! What the file watch sees: Kubernetes ConfigMap updates (a `..data` link swapped),
//! edits of a symbolic link's target, changes no watched directory sees (the periodic
//! check), and, at `RUST_LOG=trace` with the log file beside the config, nothing logged
//! for writes to other files.

use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use crate::common::*;

fn routing(to: &Backend, port: u16, extra_route: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{port}\"}}]
upstreams: [{{name: u, targets: [\"{}\"]}}]
routes:
  - {{name: main, paths: [/], upstream: u}}
{extra_route}",
        to.addr
    )
}

/// Waits (with a deadline) until `/` is answered by the backend named `want`.
async fn answered_by(gw: &GatewayProcess, want: &str) -> bool {
    let c = client();
    wait_until(Duration::from_secs(15), || async {
        c.get(gw.url("/"))
            .send()
            .await
            .ok()
            .and_then(|r| backend_of(&r))
            .as_deref()
            == Some(want)
    })
    .await
}

/// Writes a file and flushes it to the disk before returning.
fn write_synced(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test]
async fn reload_follows_a_kubernetes_configmap_update() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    // The layout kubelet mounts: dir/live.yaml → ..data/live.yaml, ..data → ..<time>.
    let gw = GatewayProcess::start_prepared(&[], "info", |dir, port| {
        let v1 = dir.join("..2026_12_01_v1");
        std::fs::create_dir(&v1).unwrap();
        write_synced(&v1.join("live.yaml"), &routing(&one, port, ""));
        symlink("..2026_12_01_v1", dir.join("..data")).unwrap();
        symlink("..data/live.yaml", dir.join("live.yaml")).unwrap();
        dir.join("live.yaml")
    })
    .await;
    assert!(answered_by(&gw, "one").await);

    // kubelet's atomic update: a new version directory, a temporary link to it renamed
    // over `..data`, then the old version removed. Nothing named live.yaml changes.
    let dir = gw.dir.path();
    let v2 = dir.join("..2026_12_01_v2");
    std::fs::create_dir(&v2).unwrap();
    write_synced(&v2.join("live.yaml"), &routing(&two, gw.port, ""));
    symlink("..2026_12_01_v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_12_01_v1")).unwrap();
    assert!(answered_by(&gw, "two").await, "{}", gw.log());

    // And the next update, from the directory the watch moved to.
    let v3 = dir.join("..2026_12_01_v3");
    std::fs::create_dir(&v3).unwrap();
    write_synced(&v3.join("live.yaml"), &routing(&one, gw.port, ""));
    symlink("..2026_12_01_v3", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    assert!(answered_by(&gw, "one").await, "{}", gw.log());
    assert!(gw.log().contains("configuration reloaded"));
}

#[tokio::test]
async fn reload_sees_an_in_place_edit_of_a_symlinks_target() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    // dir/gateway.yaml → dir/elsewhere/real.yaml (absolute link).
    let gw = GatewayProcess::start_prepared(&[], "info", |dir, port| {
        std::fs::create_dir(dir.join("elsewhere")).unwrap();
        let real = dir.join("elsewhere/real.yaml");
        write_synced(&real, &routing(&one, port, ""));
        symlink(&real, dir.join("gateway.yaml")).unwrap();
        dir.join("gateway.yaml")
    })
    .await;
    assert!(answered_by(&gw, "one").await);
    // Written where it is, not replaced: no event in the link's directory.
    let real = gw.dir.path().join("elsewhere/real.yaml");
    write_synced(&real, &routing(&two, gw.port, ""));
    assert!(answered_by(&gw, "two").await, "{}", gw.log());
}

#[tokio::test]
async fn reload_applies_a_change_no_watched_directory_sees_by_the_periodic_check() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    // dir/gateway.yaml → dir/conf/current/real.yaml; then `current` (a real directory,
    // not a link) is renamed away and a new one made in its place: the only event is in
    // dir/conf, which holds no entry of the chain.
    let gw = GatewayProcess::start_prepared(&[], "info", |dir, port| {
        std::fs::create_dir_all(dir.join("conf/current")).unwrap();
        let real = dir.join("conf/current/real.yaml");
        write_synced(&real, &routing(&one, port, ""));
        symlink(&real, dir.join("gateway.yaml")).unwrap();
        dir.join("gateway.yaml")
    })
    .await;
    assert!(answered_by(&gw, "one").await);
    let conf = gw.dir.path().join("conf");
    std::fs::create_dir(conf.join("next")).unwrap();
    write_synced(&conf.join("next/real.yaml"), &routing(&two, gw.port, ""));
    std::fs::rename(conf.join("current"), conf.join("old")).unwrap();
    std::fs::rename(conf.join("next"), conf.join("current")).unwrap();
    assert!(answered_by(&gw, "two").await, "{}", gw.log());
}

#[tokio::test]
async fn reload_logs_nothing_for_writes_to_other_files_in_the_configs_directory() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    // At trace level, with the log file (gateway.log) beside the config: the old watch
    // logged each event in the directory, its own log writes included, without end.
    let gw = GatewayProcess::start_prepared(&[], "trace", |dir, port| {
        let path = dir.join("gateway.yaml");
        write_synced(&path, &routing(&one, port, ""));
        path
    })
    .await;
    let other = gw.dir.path().join("other.txt");
    for i in 0..200 {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&other)
            .unwrap();
        writeln!(f, "line {i}").unwrap();
    }
    // A change to the config after them: once it is applied, the watch has had every
    // event of the writes before it (inotify keeps their order).
    gw.write_config(&routing(&two, gw.port, ""));
    assert!(answered_by(&gw, "two").await);
    let log = gw.log();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("other.txt"), 0, "events on other.txt logged");
    assert_eq!(count("gateway.log"), 0, "events on the log file logged");
    assert_eq!(count("inotify"), 0, "watcher events logged");
    assert!(count("configuration reloaded") >= 1);
}
