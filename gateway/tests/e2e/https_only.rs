//! Routes that serve only HTTPS (`protocols: [https]`) through the real binary, with
//! Kong's answers (spec/02-integration/05-proxy/06-ssl_spec.lua): 426 `Please use HTTPS
//! protocol` with `Upgrade: TLS/1.2, HTTP/1.1`, or a redirect
//! with `https_redirect_status_code`; a trusted proxy's `X-Forwarded-Proto: https`
//! counts as HTTPS (TLS terminated in front), an untrusted one's does not.

use crate::common::*;

fn yaml(backend: &Backend, trusted: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
proxy: {{trusted_ips: [{trusted}]}}
upstreams: [{{name: app, targets: [\"{}\"]}}]
routes:
  - {{name: secure, hosts: [secure.example], upstream: app, protocols: [https]}}
  - {{name: moved, hosts: [moved.example], upstream: app, protocols: [https], https_redirect_status_code: 301}}
  - {{name: kept, hosts: [kept.example], upstream: app, protocols: [https], https_redirect_status_code: 308}}
  - {{name: either, hosts: [either.example], upstream: app}}
  - {{name: plain, hosts: [plain.example], upstream: app, protocols: [http]}}
",
        backend.addr
    )
}

#[tokio::test]
async fn a_plain_text_request_to_an_https_route_gets_426() {
    let backend = Backend::start("app", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&yaml(&backend, "10.0.0.0/8")).await;
    let r = client()
        .get(gw.url("/"))
        .header("host", "secure.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
    // Kong adds `Connection: Upgrade`; Pingora owns that header (keep-alive here).
    assert_eq!(r.headers()["upgrade"], "TLS/1.2, HTTP/1.1");
    let (status, message, _) = json_message(r).await;
    assert_eq!(
        (status, message.as_str()),
        (426, "Please use HTTPS protocol")
    );
    assert_eq!(backend.hits(), 0);

    // An untrusted peer cannot claim TLS.
    let r = client()
        .get(gw.url("/"))
        .header("host", "secure.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);

    // Routes that serve plain text are untouched.
    for host in ["either.example", "plain.example"] {
        let r = client()
            .get(gw.url("/"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn redirect_codes_send_the_client_to_the_https_url() {
    let backend = Backend::start("app", Behaviour::Echo).await;
    let gw = GatewayProcess::start(&yaml(&backend, "10.0.0.0/8")).await;
    for (host, status) in [("moved.example", 301), ("kept.example", 308)] {
        let r = client()
            .get(gw.url("/orders/7?expand=items"))
            .header("host", format!("{host}:8080"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{host}");
        assert_eq!(
            r.headers()["location"],
            format!("https://{host}/orders/7?expand=items").as_str()
        );
    }
    assert_eq!(backend.hits(), 0);
}

#[tokio::test]
async fn tls_terminated_by_a_trusted_proxy_is_https() {
    let backend = Backend::start("app", Behaviour::Echo).await;
    // The test client's address is the trusted proxy.
    let gw = GatewayProcess::start(&yaml(&backend, "127.0.0.1")).await;
    let r = client()
        .get(gw.url("/"))
        .header("host", "secure.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(backend.hits(), 1);
    let r = client()
        .get(gw.url("/"))
        .header("host", "secure.example")
        .header("x-forwarded-proto", "http")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
}

#[test]
fn bad_protocols_are_refused_with_their_fields() {
    for (route, field) in [
        ("protocols: []", "routes[0].protocols"),
        ("protocols: [grpc]", "routes[0].protocols"),
        (
            "https_redirect_status_code: 303",
            "routes[0].https_redirect_status_code",
        ),
    ] {
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]
upstreams: [{{name: app, targets: [\"127.0.0.1:2\"]}}]
routes:
  - name: r
    upstream: app
    {route}
"
        );
        let (ok, out) = crate::auth_fixtures::validate(&yaml);
        assert!(!ok, "{route}: {out}");
        assert!(out.contains(field), "{route}: {field} in {out}");
    }
}
