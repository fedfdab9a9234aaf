//! acl, black-box, in the style of Kong's `spec/03-plugins/18-acl` tests.

use crate::auth_fixtures::*;

const CONSUMERS: &str = r#"
consumers:
  - username: admin
    groups: [admins, staff]
    keyauth_credentials: [{key: admin-key}]
  - username: dev
    acls: [{group: developers}]
    keyauth_credentials: [{key: dev-key}]
  - username: loner
    keyauth_credentials: [{key: loner-key}]
  - username: anon
  - username: anon-guest
    groups: [guests]
"#;

fn route(name: &str, path: &str, auth: &str, acl: &str) -> String {
    format!(
        "  - name: {name}\n    paths: [\"{path}\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {auth}\n      - name: acl\n        config: {acl}\n"
    )
}

async fn gateway() -> AuthGateway {
    let routes = [
        route("allow", "/allow", "{}", "{allow: [admins]}"),
        route("deny", "/deny", "{}", "{deny: [developers]}"),
        route("hide", "/hide", "{}", "{allow: [admins], hide_groups_header: true}"),
        route("anon", "/anon", "{anonymous: anon}", "{allow: [admins]}"),
        route("guest", "/guest", "{anonymous: anon-guest}", "{allow: [guests, admins]}"),
        "  - name: noauth\n    paths: [\"/noauth\"]\n    upstream: echo\n    plugins:\n      - name: acl\n        config: {allow: [admins]}\n".to_string(),
    ]
    .concat();
    AuthGateway::start(&routes, CONSUMERS).await
}

#[tokio::test]
async fn allowed_group_passes_with_groups_header() {
    let g = gateway().await;
    let e = expect_echo(g.get("/allow", &[("apikey", "admin-key")]).await).await;
    assert_eq!(e.header("x-consumer-groups"), Some("admins, staff"));
    assert_eq!(e.header("x-consumer-username"), Some("admin"));
}

#[tokio::test]
async fn consumer_outside_the_allow_list_is_403() {
    let g = gateway().await;
    expect_error(
        g.get("/allow", &[("apikey", "dev-key")]).await,
        403,
        "You cannot consume this service",
    )
    .await;
    // A consumer with no group at all, authenticated: 403 too.
    expect_error(
        g.get("/allow", &[("apikey", "loner-key")]).await,
        403,
        "You cannot consume this service",
    )
    .await;
    assert_eq!(g.backend.hits(), 0);
}

#[tokio::test]
async fn deny_list_blocks_members_only() {
    let g = gateway().await;
    expect_error(
        g.get("/deny", &[("apikey", "dev-key")]).await,
        403,
        "You cannot consume this service",
    )
    .await;
    let e = expect_echo(g.get("/deny", &[("apikey", "admin-key")]).await).await;
    assert_eq!(e.header("x-consumer-groups"), Some("admins, staff"));
    // No groups is not a denied group; Kong still sends the header, empty.
    let e = expect_echo(g.get("/deny", &[("apikey", "loner-key")]).await).await;
    assert_eq!(e.header("x-consumer-groups"), Some(""));
}

#[tokio::test]
async fn no_consumer_is_401() {
    let g = gateway().await;
    expect_error(g.get("/noauth", &[]).await, 401, "Unauthorized").await;
    // Auth runs first: no key is key-auth's 401.
    expect_error(
        g.get("/allow", &[]).await,
        401,
        "No API key found in request",
    )
    .await;
}

#[tokio::test]
async fn hide_groups_header_and_no_spoofing() {
    let g = gateway().await;
    let e = expect_echo(
        g.get(
            "/hide",
            &[("apikey", "admin-key"), ("x-consumer-groups", "forged")],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-groups"), None);
    let e = expect_echo(
        g.get(
            "/allow",
            &[("apikey", "admin-key"), ("x-consumer-groups", "forged")],
        )
        .await,
    )
    .await;
    assert_eq!(e.header("x-consumer-groups"), Some("admins, staff"));
}

#[tokio::test]
async fn anonymous_consumers_and_groups() {
    let g = gateway().await;
    // The anonymous consumer has no group: 401, as in Kong.
    expect_error(g.get("/anon", &[]).await, 401, "Unauthorized").await;
    expect_echo(g.get("/anon", &[("apikey", "admin-key")]).await).await;
    // An anonymous consumer in an allowed group passes.
    let e = expect_echo(g.get("/guest", &[]).await).await;
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
    assert_eq!(e.header("x-consumer-groups"), Some("guests"));
    expect_error(
        g.get("/guest", &[("apikey", "dev-key")]).await,
        403,
        "You cannot consume this service",
    )
    .await;
}

#[tokio::test]
async fn exactly_one_of_allow_and_deny() {
    let backend = crate::common::Backend::start("echo", crate::common::Behaviour::Echo).await;
    let both = config(
        &backend,
        &route("r", "/", "{}", "{allow: [a], deny: [b]}"),
        CONSUMERS,
    );
    let (ok, out) = validate(&both);
    assert!(!ok);
    assert!(
        out.contains("routes[0].plugins[1].config: only one of these fields must be non-empty: 'allow', 'deny'"),
        "{out}"
    );
    let none = config(&backend, &route("r", "/", "{}", "{}"), CONSUMERS);
    let (ok, out) = validate(&none);
    assert!(!ok);
    assert!(
        out.contains("at least one of these fields must be non-empty"),
        "{out}"
    );
}

async fn more() -> AuthGateway {
    let routes = [
        route("devs", "/devs", "{}", "{allow: [developers]}"),
        route("case", "/case", "{}", "{allow: [Admins]}"),
        route("multi", "/multi", "{}", "{allow: [nobody, staff]}"),
        route(
            "anon-deny",
            "/anon-deny",
            "{anonymous: anon-guest}",
            "{deny: [guests]}",
        ),
        route(
            "anon-nogroups",
            "/anon-nogroups",
            "{anonymous: anon}",
            "{deny: [developers]}",
        ),
    ]
    .concat();
    let global =
        format!("{CONSUMERS}plugins:\n  - name: acl\n    config: {{deny: [developers]}}\n");
    let routes = routes
        + "  - name: global\n    paths: [\"/global\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n";
    AuthGateway::start(&routes, &global).await
}

#[tokio::test]
async fn kong_acls_shape_counts_as_groups() {
    let g = more().await;
    let e = expect_echo(g.get("/devs", &[("apikey", "dev-key")]).await).await;
    assert_eq!(e.header("x-consumer-groups"), Some("developers"));
}

#[tokio::test]
async fn group_names_are_matched_exactly() {
    let g = more().await;
    expect_error(
        g.get("/case", &[("apikey", "admin-key")]).await,
        403,
        "You cannot consume this service",
    )
    .await;
}

#[tokio::test]
async fn any_one_allowed_group_is_enough() {
    let g = more().await;
    let e = expect_echo(g.get("/multi", &[("apikey", "admin-key")]).await).await;
    assert_eq!(e.header("x-consumer-groups"), Some("admins, staff"));
}

#[tokio::test]
async fn a_consumer_without_groups_gets_an_empty_groups_header() {
    let g = more().await;
    // The anonymous consumer has no groups: Kong sends `X-Consumer-Groups` empty.
    let e = expect_echo(
        g.get("/anon-nogroups", &[("x-consumer-groups", "forged")])
            .await,
    )
    .await;
    assert_eq!(e.header("x-anonymous-consumer"), Some("true"));
    assert_eq!(e.header("x-consumer-groups"), Some(""));
}

#[tokio::test]
async fn deny_list_applies_to_the_anonymous_consumer() {
    let g = more().await;
    expect_error(
        g.get("/anon-deny", &[]).await,
        403,
        "You cannot consume this service",
    )
    .await;
    expect_echo(g.get("/anon-deny", &[("apikey", "dev-key")]).await).await;
}

#[tokio::test]
async fn a_global_acl_applies_after_a_route_auth_plugin() {
    let g = more().await;
    expect_error(
        g.get("/global", &[("apikey", "dev-key")]).await,
        403,
        "You cannot consume this service",
    )
    .await;
    expect_echo(g.get("/global", &[("apikey", "admin-key")]).await).await;
    expect_error(
        g.get("/global", &[]).await,
        401,
        "No API key found in request",
    )
    .await;
}

#[tokio::test]
async fn a_deny_list_without_any_consumer_is_401() {
    let routes = "  - name: d\n    paths: [\"/d\"]\n    upstream: echo\n    plugins:\n      - name: acl\n        config: {deny: [developers]}\n  - name: p\n    paths: [\"/p\"]\n    upstream: echo\n    plugins:\n      - name: key-auth\n        config: {run_on_preflight: false}\n      - name: acl\n        config: {deny: [developers]}\n";
    let g = AuthGateway::start(routes, CONSUMERS).await;
    let h = expect_error(
        g.get("/d", &[("x-consumer-username", "admin")]).await,
        401,
        "Unauthorized",
    )
    .await;
    // acl's own 401 names no scheme (as Kong's `kong.response.error(401)`).
    assert_eq!(www(&h), "");
    // A preflight that key-auth lets through unauthenticated still meets the acl.
    let resp = g.preflight("/p").await;
    expect_error(resp, 401, "Unauthorized").await;
    assert_eq!(g.backend.hits(), 0);
}
