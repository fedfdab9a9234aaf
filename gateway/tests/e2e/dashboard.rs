//! The admin listener's live dashboard in a real headless Chromium (driven over
//! WebDriver by chromedriver): it loads, lists the running configuration's routes and
//! targets, its numbers move when traffic flows, and it shows a refused reload with its
//! problem. Also `/stats` itself, and that the page needs no token but its data does.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::webdriver::Browser;

const TOKEN: &str = "dash-t0ken-9";

fn config(backend: &Backend, admin_port: u16) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin: {{listen: 127.0.0.1:{admin_port}, token: {TOKEN}}}
upstreams:
  - {{name: shop, targets: [\"{}\"]}}
routes:
  - name: orders
    paths: [/orders]
    upstream: shop
  - name: catalog
    paths: [/catalog]
    upstream: shop
",
        backend.addr
    )
}

/// The text of the cell `class` in the row of route `route`, or null.
fn cell(route: &str, class: &str) -> String {
    format!(
        "const c = document.querySelector('#routes tr[data-route=\"{route}\"] td.{class}'); \
         return c ? c.textContent : null;"
    )
}

fn number(v: &Value) -> Option<u64> {
    v.as_str().and_then(|s| s.trim().parse().ok())
}

#[tokio::test]
async fn the_dashboard_shows_routes_and_live_numbers_in_a_real_browser() {
    let backend = Backend::start("shop", Behaviour::Echo).await;
    let admin_port = free_port();
    let gw = GatewayProcess::start_with_args(&config(&backend, admin_port), &["--no-watch"]).await;
    let c = client();
    let admin = |path: &str| format!("http://127.0.0.1:{admin_port}{path}");
    let up = wait_until(Duration::from_secs(10), || async {
        c.get(admin("/dashboard")).send().await.is_ok()
    })
    .await;
    assert!(up, "{}", gw.log());

    // The page is static and needs no token; its data does.
    let page = c.get(admin("/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/dashboard/app.js"));
    assert!(!html.contains("orders"), "the page holds no data");
    let r = c.get(admin("/stats")).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let browser = Browser::start().await;
    browser
        .goto(&admin(&format!("/dashboard#token={TOKEN}")))
        .await;

    // It lists the configured routes.
    let (names, ok) = browser
        .wait_for(
            Duration::from_secs(20),
            "return Array.from(document.querySelectorAll('#routes tr[data-route]')) \
             .map(r => r.dataset.route).filter(n => n !== '');",
            |v| v == &serde_json::json!(["orders", "catalog"]),
        )
        .await;
    assert!(ok, "routes shown: {names}; log:\n{}", gw.log());

    // Its numbers move when traffic flows.
    let before = number(&browser.eval(&cell("orders", "requests")).await)
        .expect("a request count for orders");
    for _ in 0..5 {
        let r = c.get(gw.url("/orders/1")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c.get(gw.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let (after, ok) = browser
        .wait_for(Duration::from_secs(20), &cell("orders", "requests"), |v| {
            number(v).is_some_and(|n| n >= before + 5)
        })
        .await;
    assert!(ok, "orders shows {after} requests, {before} before 5 more");
    let ok2xx = number(&browser.eval(&cell("orders", "s2xx")).await).unwrap_or(0);
    assert!(ok2xx >= 5, "2xx count {ok2xx}");
    let catalog = number(&browser.eval(&cell("catalog", "requests")).await);
    assert_eq!(catalog, Some(0), "no traffic went to catalog");
    let (unrouted, ok) = browser
        .wait_for(Duration::from_secs(20), &cell("", "s4xx"), |v| {
            number(v).is_some_and(|n| n >= 1)
        })
        .await;
    assert!(ok, "the 404 shows under (no route): {unrouted}");
    let p50 = browser.eval(&cell("orders", "p50")).await;
    assert!(
        p50.as_str().is_some_and(|s| s.parse::<f64>().is_ok()),
        "a latency percentile: {p50}"
    );

    // The target and its health.
    let (health, ok) = browser
        .wait_for(
            Duration::from_secs(10),
            &format!(
                "const r = document.querySelector('#upstreams tr[data-address=\"{}\"] td.health'); \
                 return r ? r.textContent : null;",
                backend.addr
            ),
            |v| v.as_str().is_some_and(|s| s.starts_with("healthy")),
        )
        .await;
    assert!(ok, "target health shown: {health}");

    // A refused reload shows, with its problem.
    let (reloads, ok) = browser
        .wait_for(
            Duration::from_secs(10),
            "return Array.from(document.querySelectorAll('#reloads > li')).map(l => l.dataset.outcome);",
            |v| v == &serde_json::json!(["started"]),
        )
        .await;
    assert!(ok, "reloads shown: {reloads}");
    gw.write_config(&config(&backend, admin_port).replace("upstream: shop\n", "upstream: nope\n"));
    let r = c
        .post(admin("/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (failed, ok) = browser
        .wait_for(
            Duration::from_secs(20),
            "const l = document.querySelector('#reloads > li[data-outcome=\"failed\"]'); \
             return l ? l.textContent : null;",
            |v| v.as_str().is_some_and(|s| s.contains("routes[0].upstream")),
        )
        .await;
    assert!(ok, "the failed reload shows its problem: {failed}");

    // Without the token in the fragment, the page says what is missing.
    browser.goto(&admin("/dashboard")).await;
    let (status, ok) = browser
        .wait_for(
            Duration::from_secs(20),
            "return document.querySelector('#status').textContent;",
            |v| v.as_str().is_some_and(|s| s.contains("401")),
        )
        .await;
    assert!(ok, "status line: {status}");
}

#[tokio::test]
async fn stats_counts_per_route_and_keeps_counts_across_a_reload() {
    let backend = Backend::start("shop", Behaviour::Echo).await;
    let admin_port = free_port();
    let gw = GatewayProcess::start_with_args(&config(&backend, admin_port), &["--no-watch"]).await;
    let c = client();
    let stats = || async {
        let r = c
            .get(format!("http://127.0.0.1:{admin_port}/stats"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answers");
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("JSON")
    };
    let up = wait_until(Duration::from_secs(10), || async {
        c.get(format!("http://127.0.0.1:{admin_port}/stats"))
            .send()
            .await
            .is_ok()
    })
    .await;
    assert!(up, "{}", gw.log());
    for _ in 0..3 {
        assert_eq!(
            c.get(gw.url("/catalog/x")).send().await.unwrap().status(),
            200
        );
    }
    let route = |s: &Value, name: &str| {
        s["routes"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name).cloned())
            .unwrap_or(Value::Null)
    };
    // The log phase runs after the response is sent: wait for it to be counted.
    let counted = wait_until(Duration::from_secs(10), || async {
        route(&stats().await, "catalog")["requests"] == 3
    })
    .await;
    let s = stats().await;
    assert!(counted, "{s:#}");
    let catalog = route(&s, "catalog");
    assert_eq!(catalog["status"]["2xx"], 3);
    assert_eq!(catalog["upstream"], "shop");
    assert!(catalog["latency_ms"]["p99"].is_number(), "{catalog}");
    let buckets: u64 = catalog["latency_buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(buckets, 3);
    assert_eq!(route(&s, "orders")["requests"], 0);
    assert_eq!(s["reloads"]["recent"][0]["outcome"], "started");

    // A reload that keeps the route's name keeps its counters.
    gw.write_config(&config(&backend, admin_port).replace("/catalog]", "/catalog, /items]"));
    let r = c
        .post(format!("http://127.0.0.1:{admin_port}/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.get(gw.url("/items/1")).send().await.unwrap().status(),
        200
    );
    let counted = wait_until(Duration::from_secs(10), || async {
        route(&stats().await, "catalog")["requests"] == 4
    })
    .await;
    let s = stats().await;
    assert!(counted, "{s:#}");
    assert_eq!(s["reloads"]["recent"][0]["outcome"], "applied");
    assert_eq!(s["reloads"]["recent"][0]["version"], 2);
    assert_eq!(s["config"]["version"], 2);
}
