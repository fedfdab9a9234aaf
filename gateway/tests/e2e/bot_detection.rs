//! bot-detection as Kong clients observe it: built-in rules, allow and deny lists.

use crate::common::*;

async fn gateway(backend: &Backend, plugin_config: &str) -> GatewayProcess {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams: [{{name: up, targets: [\"{}\"]}}]
routes:
  - name: site
    paths: [/]
    upstream: up
    plugins:
      - name: bot-detection
        config: {plugin_config}
",
        backend.addr
    );
    GatewayProcess::start(&yaml).await
}

async fn status(gw: &GatewayProcess, agent: &str) -> u16 {
    client()
        .get(gw.url("/"))
        .header("user-agent", agent)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn bots_get_403_browsers_pass_and_the_lists_decide_first() {
    let backend = Backend::start("b", Behaviour::Echo).await;
    let gw = gateway(&backend, "{allow: [\"^Googlebot\"], deny: [\"^curl/\"]}").await;
    let r = client()
        .get(gw.url("/"))
        .header("user-agent", "Mozilla/5.0 (compatible; bingbot/2.0)")
        .send()
        .await
        .unwrap();
    let (code, message, _) = json_message(r).await;
    assert_eq!((code, message.as_str()), (403, "Forbidden"));
    assert_eq!(status(&gw, "Googlebot/2.1").await, 200, "allow wins");
    assert_eq!(status(&gw, "curl/8.5.0").await, 403, "deny");
    assert_eq!(
        status(&gw, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0").await,
        200
    );
    assert_eq!(backend.hits(), 2);
}
