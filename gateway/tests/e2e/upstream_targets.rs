//! Upstream targets over time: target sets churned through reloads keep memory flat,
//! and a target written as a host name serves.

use std::time::{Duration, Instant};

use crate::common::*;

/// Reloads in the churn test.
const RELOADS: usize = 200;
/// RSS is sampled after this many reloads (allocator and buffers warmed up)...
const WARM_UP: usize = 20;
/// ...and again after all of them. Distinct targets per reload.
const TARGETS_PER_RELOAD: usize = 2_500;

/// A configuration whose `churn` pool has `TARGETS_PER_RELOAD` target addresses never
/// seen before (reload `n`), and whose `/gen-n` route tells when it is applied.
fn churn_config(n: usize, backend: &Backend) -> String {
    let mut targets = String::with_capacity(TARGETS_PER_RELOAD * 52);
    for t in 0..TARGETS_PER_RELOAD {
        // 47 characters, the longest IP:port literal there is (no DNS needed): each one
        // distinct across the whole test.
        targets.push_str(&format!(
            "\"[fd00:1111:2222:3333:4444:5555:{n:04x}:{t:04x}]:65535\", "
        ));
    }
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - {{name: live, targets: [\"{live}\"]}}
  - {{name: churn, targets: [{targets}]}}
routes:
  - {{name: gen-{n}, paths: [/gen-{n}], upstream: live}}
  - {{name: churn, paths: [/churn], upstream: churn}}
",
        live = backend.addr
    )
}

/// 200 reloads × 2,500 distinct 47-byte target addresses = 500,000 addresses that each
/// live for one reload. RSS may grow while the allocator warms up, then must stay flat.
///
/// The code this replaced interned every target address for the life of the process (a
/// `Box::leak`ed string plus a `HashSet<&'static str>` entry). For the 450,000 addresses
/// churned between the two samples that is 450,000 × 48 bytes (mimalloc's size class for
/// 47) ≈ 21 MB of strings, plus the set's table (16-byte entry + 1 control byte, at most
/// 7/8 full, power-of-two sized: 2^19 → 2^20 buckets × 17 bytes ≈ 9 → 18 MB): 30–40 MB
/// in all. Measured on a debug build: the leaking code grew by 35,928 and 37,552 KiB,
/// the owned values by 392 KiB. The bound, 15 MiB, sits well between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churning_target_sets_through_reloads_keeps_rss_flat() {
    let backend = Backend::start("live", Behaviour::Status(204)).await;
    let gw = GatewayProcess::start(&churn_config(0, &backend)).await;
    let c = client();
    let started = Instant::now();
    let mut warm_rss = 0;
    for n in 1..=RELOADS {
        gw.write_config(&churn_config(n, &backend));
        let path = format!("/gen-{n}");
        let applied = wait_until(Duration::from_secs(10), || async {
            matches!(c.get(gw.url(&path)).send().await, Ok(r) if r.status() == 204)
        })
        .await;
        assert!(applied, "reload {n} was not applied within 10 s");
        if n == WARM_UP {
            warm_rss = gw.rss_kib();
        }
    }
    let final_rss = gw.rss_kib();
    let grown_kib = final_rss.saturating_sub(warm_rss);
    eprintln!(
        "RSS after {WARM_UP} reloads: {warm_rss} KiB, after {RELOADS}: {final_rss} KiB \
         (+{grown_kib} KiB), {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        grown_kib < 15 * 1024,
        "RSS grew by {grown_kib} KiB over {} reloads of {TARGETS_PER_RELOAD} new targets",
        RELOADS - WARM_UP
    );
}

/// A target written `localhost:PORT` is resolved (through /etc/hosts, no DNS server)
/// and asked for with `Host: localhost:PORT`, the address as configured.
#[tokio::test]
async fn a_target_named_by_host_serves_with_its_name_as_host() {
    let backend = Backend::start("named", Behaviour::Echo).await;
    let port = backend.addr.port();
    let gw = GatewayProcess::start(&format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - name: named
    targets: [\"localhost:{port}\"]
    health_check: {{type: tcp, interval: 100ms}}
routes: [{{name: r, upstream: named}}]
"
    ))
    .await;
    let c = client();
    for _ in 0..5 {
        let r = c.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let echo = Echo::parse(&r.text().await.unwrap());
        assert_eq!(echo.backend, "named");
        let host = echo
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.as_str());
        assert_eq!(host, Some(format!("localhost:{port}").as_str()));
    }
}
