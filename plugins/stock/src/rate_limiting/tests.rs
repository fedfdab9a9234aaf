//! Plugin-level tests: configuration, identifiers, and the answer built from a check.
//! The counting itself is tested in `limiter`, the header values in `headers`.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::period::Period;
use super::*;
use crate::config::{from_node, ConfigNode, Diagnostic};
use crate::context::{Consumer, RouteInfo};
use crate::registry::{PluginScope, Registry};
use crate::Body;

const T0: u64 = 1_700_000_040; // a minute boundary

/// Builds through the registry, as the gateway does: diagnostics carry full paths.
fn build_diags(config: serde_json::Value) -> Result<(), Vec<Diagnostic>> {
    let mut registry = Registry::new();
    registry.register::<RateLimiting>();
    let factory = registry.get("rate-limiting").ok_or_else(Vec::new)?;
    factory
        .build(
            &ConfigNode::from_json(&config),
            "plugins[0].config",
            &BuildContext::new(PluginScope::Global),
        )
        .map(drop)
}

/// The problems of an invalid configuration, as (path, message).
fn problems(config: serde_json::Value) -> Vec<(String, String)> {
    match build_diags(config) {
        Ok(()) => Vec::new(),
        Err(d) => d.into_iter().map(|d| (d.path, d.message)).collect(),
    }
}

fn plugin(config: serde_json::Value) -> RateLimiting {
    let config: RateLimitingConfig =
        from_node(&ConfigNode::from_json(&config), "config").expect("config parses");
    RateLimiting::build(config, &BuildContext::new(PluginScope::Global)).expect("config is valid")
}

fn ctx(ip: &str) -> RequestCtx {
    let ip: IpAddr = ip.parse().expect("test IP");
    let mut ctx = RequestCtx::new(crate::RequestId::new("req-1").unwrap_or_default(), ip, None);
    ctx.route = Some(Arc::new(RouteInfo::new("orders", "orders-svc")));
    ctx
}

fn consumer(id: &str) -> Arc<Consumer> {
    Arc::new(Consumer::new(id.into(), None, None, Arc::from(Vec::new())))
}

/// Runs one request through the plugin's decision at `now`, as `on_request` does.
fn request(p: &RateLimiting, ctx: &mut RequestCtx, path: &str, now: u64) -> Flow {
    let outcome = p.limiter.check(p.identify(ctx, path, None), now);
    p.decide(ctx, &outcome)
}

fn queued(ctx: &mut RequestCtx) -> Vec<(String, String)> {
    ctx.take_response_headers()
        .into_iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

// ---- configuration ----

#[test]
fn kong_defaults() {
    let p = plugin(json!({"minute": 5}));
    let s = &p.settings;
    assert_eq!(s.limits, vec![(Period::Minute, 5)]);
    assert_eq!(s.limit_by, LimitBy::Consumer);
    assert!(!s.hide_client_headers);
    assert_eq!(s.error_code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(s.error_message, "API rate limit exceeded");
}

#[test]
fn a_full_kong_config_loads() {
    // What `deck dump` writes for a Kong 3.x plugin: every field, nulls included, and
    // both the `redis` record and the older flat redis_* fields.
    let config = json!({
        "second": null, "minute": 100, "hour": 1000, "day": null, "month": null,
        "year": null, "limit_by": "ip", "header_name": null, "path": null,
        "policy": "local", "fault_tolerant": true, "hide_client_headers": false,
        "error_code": 429, "error_message": "API rate limit exceeded", "sync_rate": -1,
        "redis": {
            "host": null, "port": 6379, "timeout": 2000, "username": null,
            "password": null, "database": 0, "ssl": false, "ssl_verify": false,
            "server_name": null
        },
        "redis_host": null, "redis_port": 6379, "redis_username": null,
        "redis_password": null, "redis_database": 0, "redis_timeout": 2000,
        "redis_ssl": false, "redis_ssl_verify": false, "redis_server_name": null
    });
    assert_eq!(build_diags(config), Ok(()));
}

#[test]
fn rejects_no_limit() {
    assert_eq!(
        problems(json!({"limit_by": "ip"})),
        vec![(
            "plugins[0].config".to_string(),
            "at least one of these fields must be non-empty: \
             'second', 'minute', 'hour', 'day', 'month', 'year'"
                .to_string()
        )]
    );
    // Explicit nulls are the same as absent.
    assert_eq!(problems(json!({"second": null, "minute": null})).len(), 1);
}

#[test]
fn rejects_zero() {
    assert_eq!(
        problems(json!({"second": 0, "minute": 10})),
        vec![(
            "plugins[0].config.second".to_string(),
            "must be greater than 0".to_string()
        )]
    );
}

#[test]
fn rejects_a_longer_period_with_a_lower_limit() {
    assert_eq!(
        problems(json!({"minute": 100, "hour": 50})),
        vec![(
            "plugins[0].config.hour".to_string(),
            "the limit for hour (50) must not be lower than the limit for minute (100)".to_string()
        )]
    );
    // Compared with the highest shorter limit; every offending field is named.
    let p = problems(json!({"second": 10, "minute": 20, "hour": 15, "day": 12}));
    let fields: Vec<_> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec!["plugins[0].config.hour", "plugins[0].config.day"]
    );
    assert!(p[1].1.contains("limit for minute (20)"), "{}", p[1].1);
    // Equal limits are fine.
    assert!(problems(json!({"second": 10, "minute": 10})).is_empty());
}

#[test]
fn header_and_path_modes_need_their_field() {
    assert_eq!(
        problems(json!({"minute": 1, "limit_by": "header"})),
        vec![(
            "plugins[0].config.header_name".to_string(),
            "required when limit_by is 'header'".to_string()
        )]
    );
    let p = problems(json!({"minute": 1, "limit_by": "header", "header_name": "bad name"}));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "plugins[0].config.header_name");
    assert_eq!(
        problems(json!({"minute": 1, "limit_by": "path"})),
        vec![(
            "plugins[0].config.path".to_string(),
            "required when limit_by is 'path'".to_string()
        )]
    );
    assert_eq!(
        problems(json!({"minute": 1, "limit_by": "path", "path": "v1"})).len(),
        1
    );
    // Set but unused: fine, as in Kong.
    assert!(problems(json!({"minute": 1, "header_name": "x-user"})).is_empty());
}

#[test]
fn rejects_unknown_fields_and_values() {
    let p = problems(json!({"minute": 1, "minutes": 2}));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "plugins[0].config.minutes");
    let p = problems(json!({"minute": 1, "redis": {"hots": "x"}}));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "plugins[0].config.redis.hots");
    let p = problems(json!({"minute": 1, "limit_by": "tenant"}));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "plugins[0].config.limit_by");
}

#[test]
fn rejects_unsupported_policies() {
    let p = problems(json!({"minute": 1, "policy": "cluster"}));
    assert_eq!(p.len(), 1);
    assert!(p[0].1.contains("use local or redis"), "{}", p[0].1);
}

#[test]
fn redis_policy_settings() {
    // Building does no I/O: a Redis that is not there is fine at load time.
    assert!(
        problems(json!({"minute": 1, "policy": "redis", "redis": {"host": "redis"}})).is_empty()
    );
    // Kong's flat layout is the same setting.
    assert!(problems(
        json!({"minute": 1, "policy": "redis", "redis_host": "redis", "redis_port": 6380})
    )
    .is_empty());
    // The host is required.
    assert_eq!(
        problems(json!({"minute": 1, "policy": "redis"})),
        vec![(
            "plugins[0].config.redis.host".to_string(),
            "required when policy is 'redis'".to_string()
        )]
    );
    // Both layouts must agree.
    let p = problems(
        json!({"minute": 1, "policy": "redis", "redis": {"host": "a"}, "redis_host": "b"}),
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "plugins[0].config.redis_host");
    // Unsupported deployments are refused, each at its field.
    let p = problems(json!({"minute": 1, "policy": "redis", "redis": {
        "host": "r", "ssl": true, "sentinel_master": "m",
        "sentinel_nodes": [{"host": "s", "port": 26379}],
        "cluster_nodes": [{"ip": "c", "port": 7000}]
    }}));
    let fields: Vec<_> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "plugins[0].config.redis.ssl",
            "plugins[0].config.redis.sentinel_master",
            "plugins[0].config.redis.sentinel_nodes",
            "plugins[0].config.redis.cluster_nodes",
        ]
    );
    assert!(p[0].1.contains("TLS"), "{}", p[0].1);
    assert!(p[1].1.contains("Sentinel is not supported"), "{}", p[1].1);
    assert!(p[3].1.contains("Cluster is not supported"), "{}", p[3].1);
    // Kong's defaults for those fields (ssl: false, empty lists) load fine.
    assert!(problems(json!({"minute": 1, "policy": "redis", "redis": {
        "host": "r", "ssl": false, "ssl_verify": false, "sentinel_nodes": null, "cluster_nodes": []
    }}))
    .is_empty());
    // And with the local policy, the Redis fields are not looked at.
    assert!(
        problems(json!({"minute": 1, "redis": {"ssl": true, "cluster_nodes": [{"ip": "c"}]}}))
            .is_empty()
    );
}

#[test]
fn the_redis_password_is_never_shown() {
    let config: RateLimitingConfig = from_node(
        &ConfigNode::from_json(&json!({
            "minute": 1, "policy": "redis", "redis_password": "flat-secret",
            "redis": {"host": "r", "password": "nested-secret", "sentinel_password": "s-secret"}
        })),
        "config",
    )
    .expect("config parses");
    let shown = format!("{config:?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    // The errors name the fields, never the values.
    let err = RateLimiting::build(config, &BuildContext::new(PluginScope::Global))
        .expect_err("conflicting passwords, sentinel");
    assert!(!err.to_string().contains("secret"), "{err}");
    // A built instance does not show it either.
    let p = plugin(json!({
        "minute": 1, "policy": "redis", "redis": {"host": "r", "password": "nested-secret"}
    }));
    let shown = format!("{p:?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
}

#[test]
fn sync_rate_is_refused_without_the_redis_policy() {
    // Kong: "sync_rate can only be used with the redis policy", unless it is -1 (off).
    let expected = vec![(
        "plugins[0].config.sync_rate".to_string(),
        "sync_rate can only be used with the redis policy".to_string(),
    )];
    assert_eq!(problems(json!({"minute": 1, "sync_rate": 10})), expected);
    assert_eq!(
        problems(json!({"minute": 1, "policy": "local", "sync_rate": 0.5})),
        expected
    );
    assert!(problems(json!({"minute": 1, "sync_rate": -1})).is_empty());
    assert!(problems(json!({"minute": 1, "sync_rate": null})).is_empty());
    // With redis: -1, 0 and positive numbers of seconds.
    let redis = |extra: serde_json::Value| {
        let mut c = json!({"minute": 1, "policy": "redis", "redis": {"host": "r"}});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        problems(c)
    };
    for ok in [-1.0, 0.0, 0.5, 10.0] {
        assert!(redis(json!({"sync_rate": ok})).is_empty(), "{ok}");
    }
    let p = redis(json!({"sync_rate": -2}));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "plugins[0].config.sync_rate");
    let p = redis(json!({"sync_rate": 1, "window": "sliding"}));
    assert_eq!(p.len(), 1);
    assert!(p[0].1.contains("sliding"), "{}", p[0].1);
}

#[test]
fn max_tracked_keys_is_a_positive_pingway_extension() {
    assert!(problems(json!({"minute": 1, "max_tracked_keys": 10})).is_empty());
    assert_eq!(
        problems(json!({"minute": 1, "max_tracked_keys": 0})),
        vec![(
            "plugins[0].config.max_tracked_keys".to_string(),
            "must be greater than 0".to_string()
        )]
    );
    assert_eq!(
        plugin(json!({"minute": 1})).settings.max_keys,
        limiter::DEFAULT_MAX_KEYS
    );
    assert_eq!(plugin(json!({"minute": 1})).evictions(), 0);
}

#[test]
fn reports_every_problem_at_once() {
    let p = problems(json!({
        "minute": 0, "limit_by": "header", "policy": "cluster", "error_code": 1000
    }));
    let fields: Vec<_> = p.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "plugins[0].config.minute",
            "plugins[0].config.header_name",
            "plugins[0].config.policy",
            "plugins[0].config.error_code",
        ]
    );
}

// ---- identifiers ----

#[test]
fn limit_by_ip_ignores_the_consumer() {
    let p = plugin(json!({"minute": 1, "limit_by": "ip"}));
    let mut a = ctx("10.0.0.1");
    a.set_identity(consumer("alice"), Some("key-1".into()));
    assert_eq!(
        p.identify(&a, "/", None),
        Identifier::Ip("10.0.0.1".parse().expect("ip"))
    );
    // An IPv4-mapped IPv6 address is the IPv4 client.
    let b = ctx("::ffff:10.0.0.1");
    assert_eq!(p.identify(&b, "/", None), p.identify(&a, "/", None));
}

#[test]
fn limit_by_consumer_counts_the_consumer_else_the_ip() {
    let p = plugin(json!({"minute": 1}));
    let mut c = ctx("10.0.0.1");
    assert_eq!(
        p.identify(&c, "/", None),
        Identifier::Ip("10.0.0.1".parse().expect("ip"))
    );
    c.set_identity(consumer("alice"), Some("key-1".into()));
    assert_eq!(p.identify(&c, "/", None), Identifier::Name(b"alice"));

    let p = plugin(json!({"minute": 1, "limit_by": "credential"}));
    assert_eq!(p.identify(&c, "/", None), Identifier::Name(b"key-1"));
}

#[test]
fn limit_by_header_path_service_route() {
    let c = ctx("10.0.0.1");
    let ip = Identifier::Ip("10.0.0.1".parse().expect("ip"));

    let p = plugin(json!({"minute": 1, "limit_by": "header", "header_name": "X-Tenant"}));
    let v = HeaderValue::from_static("acme");
    assert_eq!(p.identify(&c, "/", Some(&v)), Identifier::Name(b"acme"));
    assert_eq!(p.identify(&c, "/", None), ip);

    let p = plugin(json!({"minute": 1, "limit_by": "path", "path": "/v1/orders"}));
    assert_eq!(
        p.identify(&c, "/v1/orders", None),
        Identifier::Name(b"/v1/orders")
    );
    assert_eq!(p.identify(&c, "/v1/items", None), ip);

    let p = plugin(json!({"minute": 1, "limit_by": "service"}));
    assert_eq!(p.identify(&c, "/", None), Identifier::Name(b"orders-svc"));
    let p = plugin(json!({"minute": 1, "limit_by": "route"}));
    assert_eq!(p.identify(&c, "/", None), Identifier::Name(b"orders"));
}

#[test]
fn limit_by_service_is_shared_by_all_clients() {
    let p = plugin(json!({"minute": 2, "limit_by": "service"}));
    assert!(matches!(
        request(&p, &mut ctx("10.0.0.1"), "/", T0),
        Flow::Continue
    ));
    assert!(matches!(
        request(&p, &mut ctx("10.0.0.2"), "/", T0),
        Flow::Continue
    ));
    assert!(matches!(
        request(&p, &mut ctx("10.0.0.3"), "/", T0),
        Flow::Respond(_)
    ));
}

// ---- answers and headers ----

#[test]
fn allowed_requests_get_headers_on_ctx() {
    let p = plugin(json!({"second": 5, "minute": 10, "limit_by": "ip"}));
    let mut c = ctx("10.0.0.1");
    assert!(matches!(request(&p, &mut c, "/", T0 + 15), Flow::Continue));
    assert_eq!(
        queued(&mut c),
        [
            ("x-ratelimit-limit-second", "5"),
            ("x-ratelimit-remaining-second", "4"),
            ("x-ratelimit-limit-minute", "10"),
            ("x-ratelimit-remaining-minute", "9"),
            ("ratelimit-limit", "5"),
            ("ratelimit-remaining", "4"),
            ("ratelimit-reset", "1"),
        ]
        .map(|(n, v)| (n.to_string(), v.to_string()))
    );
}

#[test]
fn limited_requests_get_the_error_and_retry_after() {
    let p = plugin(json!({"minute": 2, "limit_by": "ip"}));
    let mut c = ctx("10.0.0.1");
    for remaining in ["1", "0"] {
        assert!(matches!(request(&p, &mut c, "/", T0 + 45), Flow::Continue));
        assert_eq!(
            header(&queued(&mut c), "x-ratelimit-remaining-minute"),
            Some(remaining)
        );
    }
    let Flow::Respond(r) = request(&p, &mut c, "/", T0 + 45) else {
        panic!("third request should be limited");
    };
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(matches!(&r.body, Body::Message(m) if m == "API rate limit exceeded"));
    assert_eq!(
        r.headers,
        vec![(http::header::RETRY_AFTER, HeaderValue::from_static("15"))]
    );
    let h = queued(&mut c);
    assert_eq!(header(&h, "x-ratelimit-remaining-minute"), Some("0"));
    assert_eq!(header(&h, "ratelimit-remaining"), Some("0"));
    assert_eq!(header(&h, "ratelimit-reset"), Some("15"));

    // Another client is not affected; the next window lets the first one in again.
    assert!(matches!(
        request(&p, &mut ctx("10.0.0.2"), "/", T0 + 45),
        Flow::Continue
    ));
    assert!(matches!(request(&p, &mut c, "/", T0 + 60), Flow::Continue));
}

#[test]
fn custom_error_code_and_message() {
    let p = plugin(json!({
        "second": 1, "limit_by": "ip", "error_code": 503, "error_message": "slow down"
    }));
    let mut c = ctx("10.0.0.1");
    request(&p, &mut c, "/", T0);
    let Flow::Respond(r) = request(&p, &mut c, "/", T0) else {
        panic!("second request should be limited");
    };
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(matches!(&r.body, Body::Message(m) if m == "slow down"));
    assert_eq!(
        r.headers,
        vec![(http::header::RETRY_AFTER, HeaderValue::from(1u64))]
    );
}

#[test]
fn hide_client_headers_hides_them_all() {
    let p = plugin(json!({"minute": 1, "limit_by": "ip", "hide_client_headers": true}));
    let mut c = ctx("10.0.0.1");
    assert!(matches!(request(&p, &mut c, "/", T0), Flow::Continue));
    assert!(queued(&mut c).is_empty());
    let Flow::Respond(r) = request(&p, &mut c, "/", T0) else {
        panic!("second request should be limited");
    };
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Kong computes Retry-After only alongside the other headers, so it is hidden too.
    assert!(r.headers.is_empty());
    assert!(queued(&mut c).is_empty());
}

// ---- the real phases, through the contract's test kit ----

mod through_the_test_kit {
    use super::*;
    use crate::testkit::TestRequest;

    fn client(name: &str) -> TestRequest {
        TestRequest::get("/orders")
            .header("x-client", name)
            .route("orders", "orders-svc")
    }

    /// `on_request` and `on_response` as the gateway calls them (a yearly window, so
    /// that no window boundary falls inside the test).
    #[tokio::test]
    async fn counts_answers_429_and_sets_kongs_headers() {
        let p = plugin(json!({"year": 2, "limit_by": "header", "header_name": "x-client"}));
        for remaining in ["1", "0"] {
            let mut req = client("a");
            assert!(req.access(&p).await.is_none(), "under the limit");
            let head = req.response(&p, StatusCode::OK, &[]);
            assert_eq!(head.headers["x-ratelimit-limit-year"], "2");
            assert_eq!(head.headers["x-ratelimit-remaining-year"], remaining);
            assert_eq!(head.headers["ratelimit-limit"], "2");
        }
        let mut req = client("a");
        let answer = req.access(&p).await.expect("the third request is refused");
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(&answer.body, Body::Message(m) if m == "API rate limit exceeded"));
        assert!(
            answer.headers.iter().any(|(n, _)| n == "retry-after"),
            "{:?}",
            answer.headers
        );
        let head = req.response(&p, answer.status, &[]);
        assert_eq!(head.headers["x-ratelimit-remaining-year"], "0");
        // Another client has its own count.
        assert!(client("b").access(&p).await.is_none());
    }

    #[tokio::test]
    async fn a_consumer_set_by_an_earlier_plugin_is_what_is_counted() {
        let p = plugin(json!({"year": 1}));
        let mut alice = TestRequest::get("/").client_ip("10.0.0.1".parse().expect("ip"));
        alice
            .ctx_mut()
            .set_identity(consumer("alice"), Some("key-1".into()));
        assert!(alice.access(&p).await.is_none());
        // Same consumer from another address: counted together, refused.
        let mut again = TestRequest::get("/").client_ip("10.0.0.2".parse().expect("ip"));
        again
            .ctx_mut()
            .set_identity(consumer("alice"), Some("key-1".into()));
        assert!(again.access(&p).await.is_some());
        // No consumer: counted by IP, apart.
        let mut anonymous = TestRequest::get("/").client_ip("10.0.0.2".parse().expect("ip"));
        assert!(anonymous.access(&p).await.is_none());
    }
}
