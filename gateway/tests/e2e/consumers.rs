//! Consumers across plugins: rate limits per consumer, reloads that add consumers, and
//! per-consumer plugins.

use std::time::Duration;

use crate::auth_fixtures::*;
use crate::common::*;

fn routes(limit: u32) -> String {
    format!(
        r#"  - name: r
    paths: ["/"]
    upstream: echo
    plugins:
      - name: key-auth
      - name: rate-limiting
        config: {{minute: {limit}, limit_by: consumer}}
"#
    )
}

const ALICE_BOB: &str = r#"
consumers:
  - username: alice
    keyauth_credentials: [{key: alice-key}]
  - username: bob
    keyauth_credentials: [{key: bob-key}]
"#;

fn remaining(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-ratelimit-remaining-minute")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn rate_limiting_by_consumer_keeps_budgets_apart() {
    let g = AuthGateway::start(&routes(3), ALICE_BOB).await;
    early_in_a_minute().await;
    for left in ["2", "1", "0"] {
        let r = g.get("/", &[("apikey", "alice-key")]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(remaining(&r).as_deref(), Some(left));
    }
    expect_error(
        g.get("/", &[("apikey", "alice-key")]).await,
        429,
        "API rate limit exceeded",
    )
    .await;
    // Bob has his own budget, from the same client IP.
    let r = g.get("/", &[("apikey", "bob-key")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(remaining(&r).as_deref(), Some("2"));
}

#[tokio::test]
async fn rate_limiting_by_credential() {
    let consumers = r#"
consumers:
  - username: alice
    keyauth_credentials: [{key: k1}, {key: k2}]
"#;
    let routes = r#"  - name: r
    paths: ["/"]
    upstream: echo
    plugins:
      - name: key-auth
      - name: rate-limiting
        config: {minute: 1, limit_by: credential}
"#;
    let g = AuthGateway::start(routes, consumers).await;
    early_in_a_minute().await;
    assert_eq!(g.get("/", &[("apikey", "k1")]).await.status(), 200);
    assert_eq!(g.get("/", &[("apikey", "k1")]).await.status(), 429);
    assert_eq!(g.get("/", &[("apikey", "k2")]).await.status(), 200);
}

#[tokio::test]
async fn reload_adds_consumers_and_keeps_counters() {
    let g = AuthGateway::start(&routes(2), ALICE_BOB).await;
    for _ in 0..2 {
        assert_eq!(g.get("/", &[("apikey", "alice-key")]).await.status(), 200);
    }
    assert_eq!(g.get("/", &[("apikey", "alice-key")]).await.status(), 429);
    let r = g.get("/", &[("apikey", "bob-key")]).await;
    assert_eq!(remaining(&r).as_deref(), Some("1"));
    expect_error(
        g.get("/", &[("apikey", "carol-key")]).await,
        401,
        "Unauthorized",
    )
    .await;

    let more =
        format!("{ALICE_BOB}  - username: carol\n    keyauth_credentials: [{{key: carol-key}}]\n");
    g.gw.write_config(&config(&g.backend, &routes(2), &more));
    let client = client();
    let url = g.gw.url("/");
    let carol_in = wait_until(Duration::from_secs(10), || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(&url)
                .header("apikey", "carol-key")
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    assert!(carol_in, "carol's key never worked:\n{}", g.gw.log());
    // The rate-limiting instance (unchanged config) kept its counters.
    assert_eq!(g.get("/", &[("apikey", "alice-key")]).await.status(), 429);
    let r = g.get("/", &[("apikey", "bob-key")]).await;
    assert_eq!(remaining(&r).as_deref(), Some("0"));
    // Secrets stay out of the log.
    let log = g.gw.log();
    assert!(
        !log.contains("alice-key") && !log.contains("carol-key"),
        "{log}"
    );
}

#[tokio::test]
async fn reload_that_removes_the_anonymous_consumer_is_refused() {
    let routes = "  - name: r\n    paths: [\"/\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {anonymous: guest}\n";
    let with_guest = format!("{ALICE_BOB}  - username: guest\n");
    let g = AuthGateway::start(routes, &with_guest).await;
    let e = expect_echo(g.get("/", &[]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("guest"));
    // Same plugin config, but the consumer it names is gone: the reload must fail.
    g.gw.write_config(&config(&g.backend, routes, ALICE_BOB));
    let refused = wait_until(Duration::from_secs(10), || {
        let log = g.gw.log();
        async move { log.contains("no consumer with id or username \"guest\"") }
    })
    .await;
    assert!(refused, "{}", g.gw.log());
    let e = expect_echo(g.get("/", &[]).await).await;
    assert_eq!(e.header("x-consumer-username"), Some("guest"));
}

#[tokio::test]
async fn consumer_plugins_replace_route_plugins_for_that_consumer() {
    let consumers = r#"
consumers:
  - username: alice
    keyauth_credentials: [{key: alice-key}]
  - username: vip
    keyauth_credentials: [{key: vip-key}]
    plugins:
      - name: rate-limiting
        config: {minute: 100}
  - username: blocked
    keyauth_credentials: [{key: blocked-key}]
    plugins:
      - name: ip-restriction
        config: {deny: [127.0.0.1]}
"#;
    let g = AuthGateway::start(&routes(2), consumers).await;
    let limit = |r: &reqwest::Response| {
        r.headers()
            .get("x-ratelimit-limit-minute")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let r = g.get("/", &[("apikey", "vip-key")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(limit(&r).as_deref(), Some("100"));
    let r = g.get("/", &[("apikey", "alice-key")]).await;
    assert_eq!(limit(&r).as_deref(), Some("2"));
    for _ in 0..3 {
        assert_eq!(g.get("/", &[("apikey", "vip-key")]).await.status(), 200);
    }
    // A consumer-only plugin runs for that consumer alone.
    expect_error(
        g.get("/", &[("apikey", "blocked-key")]).await,
        403,
        "IP address not allowed: 127.0.0.1",
    )
    .await;
    assert_eq!(g.get("/", &[("apikey", "alice-key")]).await.status(), 200);
}

#[tokio::test]
async fn duplicate_credentials_are_reported_with_their_paths() {
    let backend = Backend::start("echo", Behaviour::Echo).await;
    let yaml = config(
        &backend,
        &routes(1),
        r#"
consumers:
  - username: a
    keyauth_credentials: [{key: same-secret-key}]
    jwt_secrets: [{key: iss-1, secret: s}]
  - username: b
    keyauth_credentials: [{key: other}, {key: same-secret-key}]
    jwt_secrets: [{key: iss-1, secret: t}]
  - username: a
"#,
    );
    let (ok, out) = validate(&yaml);
    assert!(!ok, "{out}");
    for needle in [
        "consumers[1].keyauth_credentials[1].key: duplicate key (the same key is used by consumers[0].keyauth_credentials[0])",
        "consumers[1].jwt_secrets[0].key: duplicate jwt key \"iss-1\" (first used by consumers[0].jwt_secrets[0])",
        "consumers[2].username: duplicate consumer id \"a\" (first used by consumers[0])",
    ] {
        assert!(out.contains(needle), "{needle} missing in:\n{out}");
    }
    assert!(!out.contains("same-secret-key"), "{out}");
}

/// Right and wrong credentials of every kind, in headers, the query and the body, a
/// refused reload that names them, and upstream failures (which Pingora logs with the
/// request line): no secret in the log, even at trace level, where Pingora dumps request
/// and response heads and bodies.
///
/// The key-auth routes hide credentials: Pingora's "Fail to proxy" lines quote the
/// request's path and query as the plugins left them, so without `hide_credentials` a
/// key sent in the query string would show there (the proxy's request summary, not the
/// plugin, decides that).
#[tokio::test]
async fn secrets_never_reach_the_log() {
    use base64::Engine as _;
    let consumers = r#"
consumers:
  - username: alice
    keyauth_credentials: [{key: SeCrEt-KeY-1}]
    basicauth_credentials: [{username: al, password: SeCrEt-PaSs-2}]
    jwt_secrets: [{key: iss-1, secret: SeCrEt-HmAc-3}]
"#;
    let route = |name: &str, upstream: &str, plugin: &str| {
        format!("  - name: {name}\n    paths: [\"/{name}\"]\n    upstream: {upstream}\n    plugins:\n      - name: {plugin}\n        config: {{hide_credentials: true}}\n")
    };
    let jwt_route = |name: &str, upstream: &str| {
        format!("  - name: {name}\n    paths: [\"/{name}\"]\n    upstream: {upstream}\n    plugins:\n      - name: jwt\n")
    };
    let routes = [
        route("k", "echo", "key-auth"),
        route("b", "echo", "basic-auth"),
        jwt_route("j", "echo"),
        route("kd", "down", "key-auth"),
        route("bd", "down", "basic-auth"),
        jwt_route("jd", "down"),
        // Keys in a form body: Pingora's trace lines print body chunks.
        "  - name: kb\n    paths: [\"/kb\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {key_in_body: true, hide_credentials: true}\n".to_string(),
    ]
    .concat();
    let backend = Backend::start("echo", Behaviour::Echo).await;
    let yaml = |consumers: &str| {
        config(&backend, &routes, consumers).replace(
            "upstreams:\n",
            "upstreams:\n  - name: down\n    targets: [\"127.0.0.1:1\"]\n",
        )
    };
    let gw = GatewayProcess::start_logging(&yaml(consumers), &[], "trace").await;
    let client = client();
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    // An HS256 token signed with the secret (the signature is not a secret, the HMAC key
    // is).
    let token = {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256"}"#),
            b64(br#"{"iss":"iss-1"}"#)
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"SeCrEt-HmAc-3");
        format!(
            "{input}.{}",
            b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    let mut statuses = Vec::new();
    for suffix in ["", "d"] {
        let k = format!("/k{suffix}");
        let b = format!("/b{suffix}");
        let j = format!("/j{suffix}");
        let requests = [
            client.get(gw.url(&k)).header("apikey", "SeCrEt-KeY-1"),
            client.get(gw.url(&k)).header("apikey", "SeCrEt-KeY-wrong"),
            client.get(gw.url(&format!("{k}?apikey=SeCrEt-KeY-1"))),
            client.get(gw.url(&format!("{k}?apikey=SeCrEt-KeY-wrong"))),
            client
                .get(gw.url(&b))
                .header("authorization", basic("al", "SeCrEt-PaSs-2")),
            client
                .get(gw.url(&b))
                .header("authorization", basic("al", "SeCrEt-PaSs-wrong")),
            client
                .get(gw.url(&b))
                .header("proxy-authorization", basic("al", "SeCrEt-PaSs-2")),
            client
                .get(gw.url(&j))
                .header("authorization", format!("Bearer {token}")),
            client
                .get(gw.url(&j))
                .header("authorization", "Bearer SeCrEt-garbage"),
        ];
        for r in requests {
            statuses.push(r.send().await.unwrap().status().as_u16());
        }
    }
    assert_eq!(
        statuses,
        [
            200, 401, 200, 401, 200, 401, 200, 200, 401, 502, 401, 502, 401, 502, 401, 502, 502,
            401
        ]
    );
    for (body, want) in [
        ("apikey=SeCrEt-KeY-1&x=1", 200),
        ("apikey=SeCrEt-KeY-wrong", 401),
    ] {
        let r = client
            .post(gw.url("/kb"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{body}");
    }
    // A reload refused because of a duplicate key.
    let dup =
        format!("{consumers}  - username: bob\n    keyauth_credentials: [{{key: SeCrEt-KeY-1}}]\n");
    gw.write_config(&yaml(&dup));
    let refused = wait_until(Duration::from_secs(10), || {
        let log = gw.log();
        async move { log.contains("duplicate key") }
    })
    .await;
    let log = gw.log();
    assert!(refused, "{log}");
    assert!(!log.contains("SeCrEt"), "{log}");
}

#[tokio::test]
async fn every_auth_plugin_checks_its_anonymous_consumer_at_load() {
    let backend = Backend::start("echo", Behaviour::Echo).await;
    let routes = "  - name: r\n    paths: [\"/\"]\n    upstream: echo\n    plugins:\n      - name: jwt\n        config: {anonymous: ghost-1}\n      - name: key-auth\n        config: {anonymous: ghost-2}\n      - name: basic-auth\n        config: {anonymous: ghost-3}\n";
    let global =
        format!("{ALICE_BOB}plugins:\n  - name: key-auth\n    config: {{anonymous: ghost-4}}\n");
    let (ok, out) = validate(&config(&backend, routes, &global));
    assert!(!ok, "{out}");
    for needle in [
        "routes[0].plugins[0].config.anonymous: no consumer with id or username \"ghost-1\"",
        "routes[0].plugins[1].config.anonymous: no consumer with id or username \"ghost-2\"",
        "routes[0].plugins[2].config.anonymous: no consumer with id or username \"ghost-3\"",
        "plugins[0].config.anonymous: no consumer with id or username \"ghost-4\"",
    ] {
        assert!(out.contains(needle), "{needle} missing in:\n{out}");
    }
}

#[tokio::test]
async fn anonymous_may_name_a_consumer_by_id_or_username() {
    let consumers = format!("{ALICE_BOB}  - id: 6f0c-guest\n    username: guest\n");
    let routes = "  - name: by-id\n    paths: [\"/id\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {anonymous: 6f0c-guest}\n  - name: by-name\n    paths: [\"/name\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {anonymous: guest}\n";
    let g = AuthGateway::start(routes, &consumers).await;
    for path in ["/id", "/name"] {
        let e = expect_echo(g.get(path, &[("apikey", "wrong")]).await).await;
        assert_eq!(e.header("x-consumer-id"), Some("6f0c-guest"), "{path}");
        assert_eq!(e.header("x-consumer-username"), Some("guest"), "{path}");
        assert_eq!(e.header("x-anonymous-consumer"), Some("true"), "{path}");
        assert_eq!(e.header("x-credential-identifier"), None, "{path}");
    }
}

/// `config/auth-demo.yaml` does what its comments say.
#[tokio::test]
async fn the_auth_walkthrough_config_works_as_documented() {
    let one = Backend::start("one", Behaviour::Echo).await;
    let two = Backend::start("two", Behaviour::Echo).await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/auth-demo.yaml"
    ))
    .unwrap();
    let yaml = text
        .replace("127.0.0.1:8080", "127.0.0.1:{PORT}")
        .replace("127.0.0.1:9001", &one.addr.to_string())
        .replace("127.0.0.1:9002", &two.addr.to_string());
    let gw = GatewayProcess::start(&yaml).await;
    let client = client();
    let get = |path: &str, key: Option<&str>| {
        let mut r = client.get(gw.url(path));
        if let Some(k) = key {
            r = r.header("apikey", k.to_string());
        }
        r.send()
    };
    let h = expect_error(
        get("/", None).await.unwrap(),
        401,
        "No API key found in request",
    )
    .await;
    assert_eq!(www(&h), "Key");
    let e = expect_echo(get("/", Some("alice-demo-key")).await.unwrap()).await;
    assert_eq!(e.backend, "one");
    assert_eq!(e.header("x-consumer-username"), Some("alice"));
    assert_eq!(e.header("apikey"), None);
    let r = get("/?apikey=bob-demo-key", None).await.unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit-minute"], "20");
    let e = expect_echo(r).await;
    assert_eq!(e.header("x-consumer-username"), Some("bob"));
    assert_eq!(e.target(), "/");
    for _ in 0..4 {
        assert_eq!(
            get("/", Some("alice-demo-key")).await.unwrap().status(),
            200
        );
    }
    expect_error(
        get("/", Some("alice-demo-key")).await.unwrap(),
        429,
        "API rate limit exceeded",
    )
    .await;
    assert_eq!(get("/", Some("bob-demo-key")).await.unwrap().status(), 200);
    expect_error(
        get("/admin", Some("bob-demo-key")).await.unwrap(),
        403,
        "You cannot consume this service",
    )
    .await;
    let e = expect_echo(get("/admin", Some("alice-demo-key")).await.unwrap()).await;
    assert_eq!(e.backend, "two");
    assert_eq!(e.header("x-consumer-groups"), Some("admins"));
}

/// Kong's scoping includes the anonymous consumer: anonymous traffic gets its own,
/// lower limit, while identified consumers keep the route's.
#[tokio::test]
async fn the_anonymous_consumers_own_plugins_apply() {
    let rest = r#"
consumers:
  - username: alice
    keyauth_credentials: [{key: alice-key}]
  - username: guest
    plugins:
      - name: rate-limiting
        config: {minute: 1, limit_by: ip}
"#;
    let routes = r#"  - name: r
    paths: ["/"]
    upstream: echo
    plugins:
      - name: key-auth
        config: {anonymous: guest}
      - name: rate-limiting
        config: {minute: 100, limit_by: consumer}
"#;
    let g = AuthGateway::start(routes, rest).await;
    let first = g.get("/", &[]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-minute"], "1");
    let echo = expect_echo(first).await;
    assert_eq!(echo.header("x-anonymous-consumer"), Some("true"));
    // The anonymous budget is spent (unless the minute just rolled over).
    let second = g.get("/", &[]).await;
    assert!(second.status() == 429 || second.headers()["x-ratelimit-remaining-minute"] == "0");
    // Alice is not affected.
    let r = g.get("/", &[("apikey", "alice-key")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit-minute"], "100");
}

/// Pingora's error lines name the request; they must not carry a key from the query.
#[tokio::test]
async fn a_key_in_the_query_never_reaches_the_log() {
    let dead = format!("127.0.0.1:{}", free_port());
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: down, targets: [\"{dead}\"], retries: 0}}]
routes:
  - name: r
    upstream: down
    plugins: [{{name: key-auth}}]
consumers:
  - username: alice
    keyauth_credentials: [{{key: SECRET-QUERY-KEY-123}}]
"
    );
    let gw = GatewayProcess::start(&yaml).await;
    let r = client()
        .get(gw.url("/orders?apikey=SECRET-QUERY-KEY-123&page=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let logged = wait_until(Duration::from_secs(5), || async {
        gw.log().contains("GET /orders")
    })
    .await;
    assert!(logged, "the failure was not logged:\n{}", gw.log());
    assert!(!gw.log().contains("SECRET-QUERY-KEY-123"), "{}", gw.log());
}
