//! rate-limiting with `policy: redis`: several real gateway processes sharing one real
//! `redis-server` (Debian's package; started here on a free port, persistence off).
//! Without `redis-server` on PATH these tests fail, saying so.

use std::process::Command;
use std::time::Duration;

use pingway_plugins::redis::test_server::TestRedis as Redis;

use crate::common::*;

/// A gateway whose routes are `(name, path, rate-limiting config)`.
async fn gateway(backend: &Backend, routes: &[(&str, &str, String)]) -> GatewayProcess {
    let mut yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
",
        backend.addr
    );
    for (name, path, config) in routes {
        yaml.push_str(&format!(
            "  - name: {name}
    paths: [{path}]
    upstream: up
    plugins:
      - name: rate-limiting
        config: {config}
"
        ));
    }
    GatewayProcess::start(&yaml).await
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_one_redis_admit_exactly_the_limit() {
    let redis = Redis::start();
    let backend = Backend::start("b", Behaviour::Echo).await;
    let config = format!(
        "{{minute: 100, limit_by: ip, policy: redis, redis: {{host: 127.0.0.1, port: {}}}}}",
        redis.port
    );
    let routes = [("shared", "/", config)];
    let gateways = [
        gateway(&backend, &routes).await,
        gateway(&backend, &routes).await,
        gateway(&backend, &routes).await,
    ];
    early_in_a_minute().await;

    let c = client();
    let requests: Vec<_> = (0..1_000)
        .map(|i| {
            let url = gateways[i % 3].url("/");
            let c = c.clone();
            tokio::spawn(async move {
                let r = c.get(url).send().await.expect("response");
                let status = r.status().as_u16();
                let message = if status == 429 {
                    json_message(r).await.1
                } else {
                    String::new()
                };
                (status, message)
            })
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for r in requests {
        match r.await.expect("task") {
            (200, _) => ok += 1,
            (429, message) => {
                assert_eq!(message, "API rate limit exceeded");
                limited += 1;
            }
            (status, _) => panic!("unexpected status {status}"),
        }
    }
    assert_eq!((ok, limited), (100, 900));
    assert_eq!(backend.hits(), 100);
    // Every gateway agrees the minute is spent.
    for gw in &gateways {
        let r = c.get(gw.url("/")).send().await.expect("response");
        assert_eq!(r.status(), 429);
        assert_eq!(
            header(&r, "x-ratelimit-remaining-minute").as_deref(),
            Some("0")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_then_back_in_both_fault_tolerant_modes() {
    let mut redis = Redis::start();
    let port = redis.port;
    let backend = Backend::start("b", Behaviour::Echo).await;
    let config = |tolerant: bool| {
        format!(
            "{{hour: 1000, limit_by: ip, policy: redis, fault_tolerant: {tolerant}, \
             redis: {{host: 127.0.0.1, port: {port}, timeout: 500}}}}"
        )
    };
    let gw = gateway(
        &backend,
        &[
            ("tolerant", "/tolerant", config(true)),
            ("strict", "/strict", config(false)),
        ],
    )
    .await;
    let c = client();
    let get = |path: &'static str| {
        let c = c.clone();
        let url = gw.url(path);
        async move { c.get(url).send().await.expect("response") }
    };

    // Redis up: counted, with headers.
    for path in ["/tolerant", "/strict"] {
        let r = get(path).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-ratelimit-remaining-hour").as_deref(),
            Some("999")
        );
    }

    redis.kill();
    // fault_tolerant: true → served, without rate-limit headers.
    let r = get("/tolerant").await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-ratelimit-remaining-hour").is_none());
    assert!(header(&r, "ratelimit-remaining").is_none());
    // fault_tolerant: false → Kong's 500.
    let r = get("/strict").await;
    let (status, message, _) = json_message(r).await;
    assert_eq!(
        (status, message.as_str()),
        (500, "An unexpected error occurred")
    );
    let hits_while_down = backend.hits();
    assert_eq!(hits_while_down, 3);

    // Back on the same port: counting resumes without restarting the gateway (the
    // restarted Redis is empty, so the count starts again).
    let _redis = Redis::start_on(port);
    let resumed = wait_until(Duration::from_secs(20), || async {
        let r = get("/strict").await;
        r.status() == 200 && header(&r, "x-ratelimit-remaining-hour").is_some()
    })
    .await;
    assert!(resumed, "counting did not resume:\n{}", gw.log());
    let first = get("/tolerant").await;
    let second = get("/tolerant").await;
    let remaining = |r: &reqwest::Response| -> u64 {
        header(r, "x-ratelimit-remaining-hour")
            .and_then(|v| v.parse().ok())
            .expect("counted again")
    };
    assert_eq!(remaining(&first), 999);
    assert_eq!(remaining(&second), 998);
}

#[tokio::test]
async fn unsupported_redis_deployments_are_refused_by_name() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: r
    paths: [/]
    upstream: up
    plugins:
      - name: rate-limiting
        config:
          minute: 5
          policy: redis
          redis: {{host: 127.0.0.1, ssl: true, cluster_nodes: [{{ip: 127.0.0.1, port: 7000}}]}}
",
        backend.addr
    );
    let path = write_file(dir.path(), "gateway.yaml", &yaml);
    let out = Command::new(pingway_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .expect("pingway validate");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("redis.ssl"), "{text}");
    assert!(text.contains("redis.cluster_nodes"), "{text}");
}
