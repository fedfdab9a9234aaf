//! ip-restriction as Kong clients observe it, including trusted-proxy handling.

use crate::common::*;

async fn gateway(backend: &Backend, plugin_config: &str, proxy: &str) -> GatewayProcess {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
{proxy}
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: guarded
    paths: [/]
    upstream: up
    plugins:
      - name: ip-restriction
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

#[tokio::test]
async fn an_allow_list_blocks_everyone_else_with_403() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{allow: [54.13.21.1]}", "").await;
    let (status, message, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!(
        (status, message.as_str()),
        (403, "IP address not allowed: 127.0.0.1")
    );
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn deny_wins_and_cidrs_match() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{allow: [127.0.0.0/8], deny: [127.0.0.1/32]}", "").await;
    let (status, _, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!(status, 403);
    let gw = gateway(&backend, "{allow: [10.0.0.0/8, 127.0.0.0/8]}", "").await;
    assert_eq!(
        client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );
    let gw = gateway(&backend, "{deny: [192.168.0.0/16, \"::1\"]}", "").await;
    assert_eq!(
        client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn custom_status_and_message() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{deny: [127.0.0.1], status: 401, message: go away}",
        "",
    )
    .await;
    let (status, message, _) = json_message(client().get(gw.url("/")).send().await.unwrap()).await;
    assert_eq!((status, message.as_str()), (401, "go away"));
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{allow: [54.13.21.1]}",
        "proxy: {trusted_ips: [10.0.0.0/8]}",
    )
    .await;
    let r = client()
        .get(gw.url("/"))
        .header("x-forwarded-for", "54.13.21.1")
        .send()
        .await
        .unwrap();
    let (status, message, _) = json_message(r).await;
    assert_eq!(
        (status, message.as_str()),
        (403, "IP address not allowed: 127.0.0.1")
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_judged() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(
        &backend,
        "{allow: [54.13.21.1]}",
        "proxy: {trusted_ips: [127.0.0.1]}",
    )
    .await;
    let c = client();
    let ok = c
        .get(gw.url("/"))
        .header("x-forwarded-for", "54.13.21.1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let echo = Echo::parse(&ok.text().await.unwrap());
    assert_eq!(echo.header("x-real-ip"), Some("54.13.21.1"));
    // The walk goes right to left: the right-most untrusted address is the client.
    let r = c
        .get(gw.url("/"))
        .header("x-forwarded-for", "54.13.21.1, 6.6.6.6")
        .send()
        .await
        .unwrap();
    let (status, message, _) = json_message(r).await;
    assert_eq!(
        (status, message.as_str()),
        (403, "IP address not allowed: 6.6.6.6")
    );
    // Another header can be named instead.
    let gw = gateway(
        &backend,
        "{allow: [54.13.21.1]}",
        "proxy: {trusted_ips: [127.0.0.1], real_ip_header: x-real-ip}",
    )
    .await;
    let r = c
        .get(gw.url("/"))
        .header("x-real-ip", "54.13.21.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
