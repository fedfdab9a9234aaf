//! mtls-auth through the real binary: an HTTPS listener that asks for client
//! certificates, a test CA (rcgen) issuing them, reqwest on rustls presenting them, and
//! a live reload that trusts a second CA.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::common::*;

const NO_CERT: &str = "No required TLS certificate was sent";
const FAILED: &str = "TLS certificate failed verification";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Certificate and key PEM for `cn` (none when empty) and DNS `sans`.
    fn issue(&self, cn: &str, sans: &[&str], expired: bool) -> String {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        if !cn.is_empty() {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    }
}

/// A client trusting `server_ca`, presenting `identity` (certificate and key PEM).
fn client(server_ca: &Ca, port: u16, identity: Option<&str>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(server_ca.cert.pem().as_bytes()).unwrap(),
        )
        .resolve("api.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .timeout(Duration::from_secs(10));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn yaml(
    dir: &Path,
    tls_port: u16,
    server: &Ca,
    cas: &[(&str, &Ca)],
    secure_cas: &str,
    backend: &Backend,
) -> String {
    let server_pem = server.issue("api.test", &["api.test"], false);
    std::fs::write(dir.join("server.pem"), &server_pem).unwrap();
    let mut ca_entries = String::new();
    for (id, ca) in cas {
        let file = dir.join(format!("{id}.pem"));
        std::fs::write(&file, ca.cert.pem()).unwrap();
        ca_entries.push_str(&format!(
            "  - {{id: {id}, cert_file: \"{}\"}}\n",
            file.display()
        ));
    }
    let server_file = dir.join("server.pem");
    format!(
        "listeners:
  - address: \"127.0.0.1:{{PORT}}\"
  - address: \"127.0.0.1:{tls_port}\"
    tls:
      certificates:
        - {{cert: \"{s}\", key: \"{s}\"}}
ca_certificates:
{ca_entries}consumers:
  - username: alice
  - username: svc.example.com
upstreams: [{{name: app, targets: [\"{backend}\"]}}]
routes:
  - name: secure
    paths: [/secure]
    upstream: app
    plugins:
      - name: mtls-auth
        config: {{ca_certificates: {secure_cas}}}
  - name: devices
    paths: [/devices]
    upstream: app
    plugins:
      - name: mtls-auth
        config: {{ca_certificates: [ca-1], skip_consumer_lookup: true}}
      - name: acl
        config: {{allow: [device-7]}}
  - name: open
    paths: [/open]
    upstream: app
",
        s = server_file.display(),
        backend = backend.addr,
    )
}

async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).send().await.expect("a response")
}

#[tokio::test]
async fn client_certificates_authenticate_consumers_and_a_reload_trusts_a_new_ca() {
    let backend = Backend::start("app", Behaviour::Echo).await;
    let (server_ca, ca1, ca2) = (
        Ca::new("Server CA"),
        Ca::new("Client CA 1"),
        Ca::new("Client CA 2"),
    );
    let tls_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = yaml(
        dir.path(),
        tls_port,
        &server_ca,
        &[("ca-1", &ca1), ("ca-2", &ca2)],
        "[ca-1]",
        &backend,
    );
    let gw = GatewayProcess::start(&config).await;
    let https = |path: &str| format!("https://api.test:{tls_port}{path}");

    // No certificate, over HTTPS or plain HTTP: Kong's 401.
    let anonymous = client(&server_ca, tls_port, None);
    let (status, message, _) = json_message(get(&anonymous, &https("/secure")).await).await;
    assert_eq!((status, message.as_str()), (401, NO_CERT));
    let (status, message, _) =
        json_message(get(&crate::common::client(), &gw.url("/secure")).await).await;
    assert_eq!((status, message.as_str()), (401, NO_CERT));
    // A route without mtls-auth needs no certificate.
    assert_eq!(get(&anonymous, &https("/open")).await.status(), 200);

    // The CN names a consumer.
    let alice = client(&server_ca, tls_port, Some(&ca1.issue("alice", &[], false)));
    let resp = get(&alice, &https("/secure")).await;
    assert_eq!(resp.status(), 200);
    let echo = Echo::parse(&resp.text().await.unwrap());
    assert_eq!(echo.header("x-consumer-username"), Some("alice"));

    // A SAN alone names a consumer.
    let svc = client(
        &server_ca,
        tls_port,
        Some(&ca1.issue("", &["svc.example.com"], false)),
    );
    let resp = get(&svc, &https("/secure")).await;
    assert_eq!(resp.status(), 200);
    let echo = Echo::parse(&resp.text().await.unwrap());
    assert_eq!(echo.header("x-consumer-username"), Some("svc.example.com"));

    // Another CA, an expired certificate, a certificate that names nobody.
    let hits = backend.hits();
    for identity in [
        ca2.issue("alice", &[], false),
        ca1.issue("alice", &[], true),
        ca1.issue("mallory", &[], false),
    ] {
        let c = client(&server_ca, tls_port, Some(&identity));
        let (status, message, _) = json_message(get(&c, &https("/secure")).await).await;
        assert_eq!((status, message.as_str()), (401, FAILED));
    }
    assert_eq!(backend.hits(), hits, "nothing refused reached the backend");

    // skip_consumer_lookup: the CN is the authenticated group acl judges.
    let device7 = client(
        &server_ca,
        tls_port,
        Some(&ca1.issue("device-7", &[], false)),
    );
    let resp = get(&device7, &https("/devices")).await;
    assert_eq!(resp.status(), 200);
    let echo = Echo::parse(&resp.text().await.unwrap());
    assert_eq!(echo.header("x-client-cert-dn"), Some("CN=device-7"));
    assert_eq!(echo.header("x-consumer-groups"), Some("device-7"));
    let device8 = client(
        &server_ca,
        tls_port,
        Some(&ca1.issue("device-8", &[], false)),
    );
    assert_eq!(get(&device8, &https("/devices")).await.status(), 403);

    // A reload makes the route trust ca-2 too: the same client certificate from ca-2
    // that was refused is accepted, without a restart.
    let from_ca2 = client(&server_ca, tls_port, Some(&ca2.issue("alice", &[], false)));
    gw.write_config(&yaml(
        dir.path(),
        tls_port,
        &server_ca,
        &[("ca-1", &ca1), ("ca-2", &ca2)],
        "[ca-1, ca-2]",
        &backend,
    ));
    gw.sighup();
    let accepted = wait_until(Duration::from_secs(10), || async {
        get(&from_ca2, &https("/secure")).await.status() == 200
    })
    .await;
    assert!(accepted, "ca-2 not trusted after the reload:\n{}", gw.log());
}

#[tokio::test]
async fn unknown_ca_ids_and_revocation_modes_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Client CA");
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, ca.cert.pem()).unwrap();
    let config = format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]
ca_certificates:
  - {{id: ca-1, cert_file: \"{}\"}}
consumers:
  - username: alice
    mtls_auth_credentials:
      - {{subject_name: alice, ca_certificate: ca-9}}
upstreams: [{{name: app, targets: [\"127.0.0.1:1\"]}}]
routes:
  - name: r
    paths: [/]
    upstream: app
    plugins:
      - name: mtls-auth
        config: {{ca_certificates: [ca-1, ca-2], revocation_check_mode: STRICT}}
",
        file.display()
    );
    let path = write_file(dir.path(), "gateway.yaml", &config);
    let out = std::process::Command::new(pingway_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("consumers[0].mtls_auth_credentials[0].ca_certificate"),
        "{text}"
    );
    assert!(
        text.contains("routes[0].plugins[0].config.revocation_check_mode"),
        "{text}"
    );
}
