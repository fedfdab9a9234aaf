//! `GET /upstreams` tells each target's recent failures: a refused connection, a read
//! timeout, a 5xx answer, each with its kind; the history is bounded and counts all.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const TOKEN: &str = "errs-t0ken";

#[tokio::test]
async fn upstreams_lists_each_targets_recent_errors() {
    let failing = Backend::start("failing", Behaviour::Status(503)).await;
    let slow = Backend::start("slow", Behaviour::Slow(Duration::from_secs(5))).await;
    let healthy = Backend::start("fine", Behaviour::Echo).await;
    // A port nothing listens on: connections are refused.
    let closed = format!("127.0.0.1:{}", free_port());
    let admin_port = free_port();
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin: {{listen: 127.0.0.1:{admin_port}, token: {TOKEN}}}
upstreams:
  - {{name: five, targets: [\"{five}\"]}}
  - {{name: gone, retries: 0, targets: [\"{closed}\"]}}
  - {{name: slow, read_timeout: 200ms, targets: [\"{slow}\"]}}
  - {{name: fine, targets: [\"{fine}\"]}}
routes:
  - {{name: five, paths: [/five], upstream: five}}
  - {{name: gone, paths: [/gone], upstream: gone}}
  - {{name: slow, paths: [/slow], upstream: slow}}
  - {{name: fine, paths: [/fine], upstream: fine}}
",
        five = failing.addr,
        slow = slow.addr,
        fine = healthy.addr,
    );
    let gw = GatewayProcess::start_with_args(&yaml, &["--no-watch"]).await;
    let c = client();

    assert_eq!(c.get(gw.url("/five")).send().await.unwrap().status(), 503);
    assert_eq!(c.get(gw.url("/gone")).send().await.unwrap().status(), 502);
    assert_eq!(c.get(gw.url("/slow")).send().await.unwrap().status(), 504);
    assert_eq!(c.get(gw.url("/fine")).send().await.unwrap().status(), 200);

    let upstreams = || async {
        let r = c
            .get(format!("http://127.0.0.1:{admin_port}/upstreams"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answers");
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("JSON")
    };
    let target = |all: &Value, pool: &str| {
        all.as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == pool))
            .map(|p| p["targets"][0].clone())
            .unwrap_or(Value::Null)
    };

    let all = upstreams().await;
    let five = target(&all, "five");
    assert_eq!(five["errors_total"], 1, "{five}");
    assert_eq!(five["recent_errors"][0]["kind"], "http_5xx");
    assert_eq!(five["recent_errors"][0]["status"], 503);
    assert!(five["recent_errors"][0]["at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let gone = target(&all, "gone");
    assert_eq!(gone["errors_total"], 1, "{gone}");
    assert_eq!(gone["recent_errors"][0]["kind"], "connect_refused");
    let slow_t = target(&all, "slow");
    assert_eq!(slow_t["errors_total"], 1, "{slow_t}");
    assert_eq!(slow_t["recent_errors"][0]["kind"], "read_timeout");
    let fine = target(&all, "fine");
    assert_eq!(fine["errors_total"], 0, "{fine}");
    assert_eq!(fine["recent_errors"], serde_json::json!([]));

    // Bounded: the last 8 are kept, all are counted.
    for _ in 0..11 {
        assert_eq!(c.get(gw.url("/five")).send().await.unwrap().status(), 503);
    }
    let five = target(&upstreams().await, "five");
    assert_eq!(five["errors_total"], 12, "{five}");
    assert_eq!(five["recent_errors"].as_array().map(Vec::len), Some(8));
}
