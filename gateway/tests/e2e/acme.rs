//! ACME certificates against a real ACME CA: Debian's `pebble`, started here on free
//! ports with an HTTPS certificate from a test CA (rcgen), a tiny DNS responder that
//! resolves every name to 127.0.0.1, and its HTTP-01 port set to one of the gateway's
//! plain listeners. Without `pebble` these tests fail, saying to install it.
//!
//! The gateway asks for a certificate for `app.test`; a TLS client that trusts only
//! pebble's root (fetched from its management API) connects with SNI `app.test`. Then:
//! a restart serves the stored certificate at once with pebble gone; and with
//! `renew_before` longer than pebble's validity, a new certificate is installed live
//! while a connection opened before keeps working.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use crate::common::*;

/// Where the Debian package installs it, if it is not on PATH.
const PEBBLE_PATHS: &[&str] = &["/usr/bin/pebble", "/usr/local/bin/pebble"];

fn pebble_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("pebble");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PEBBLE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "pebble (the test ACME CA) is not installed: run `apt-get install pebble` (Debian's package)"
            )
        })
}

/// A DNS server on 127.0.0.1 (UDP) answering every A question with 127.0.0.1 and every
/// other question with no records: how pebble finds the gateway for any name.
struct DnsStub {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DnsStub {
    async fn start() -> DnsStub {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                if let Some(answer) = dns_answer(&buf[..n]) {
                    let _ = socket.send_to(&answer, peer).await;
                }
            }
        });
        DnsStub { addr, task }
    }
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The response to one DNS query: its question echoed, and for type A one record
/// 127.0.0.1 (TTL 60); `None` for what is not a one-question query.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || u16::from_be_bytes([query[4], query[5]]) != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    loop {
        let len = *query.get(i)? as usize;
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        i += 1 + len;
    }
    let question = query.get(12..i + 4)?;
    let qtype = u16::from_be_bytes([query[i], query[i + 1]]);
    let is_a = qtype == 1;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[0..2]); // id
    out.push(0x84 | (query[2] & 0x79)); // QR, opcode kept, AA, RD kept
    out.push(0x80); // RA, NOERROR
    out.extend_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    out.extend_from_slice(question);
    if is_a {
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some(out)
}

/// A running pebble: its directory URL, the CA certificate its HTTPS is signed by, and
/// its management port. Killed on drop.
struct Pebble {
    child: Child,
    directory: String,
    management: u16,
    https_ca_pem: String,
    https_ca_file: PathBuf,
    log_path: PathBuf,
    _dns: DnsStub,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on 127.0.0.1:`http_port`, and waits until its
    /// directory answers.
    async fn start(http_port: u16) -> Pebble {
        let bin = pebble_bin();
        let dns = DnsStub::start().await;
        let dir = tempfile::tempdir().unwrap();
        // Its HTTPS certificate, from a CA of ours.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pebble test HTTPS CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "pebble");
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let (cert_file, key_file, ca_file) = (
            dir.path().join("pebble.crt"),
            dir.path().join("pebble.key"),
            dir.path().join("ca.pem"),
        );
        std::fs::write(&cert_file, leaf.pem()).unwrap();
        std::fs::write(&key_file, leaf_key.serialize_pem()).unwrap();
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let (listen, management) = (free_port(), free_port());
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": cert_file,
                "privateKey": key_file,
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log_path = dir.path().join("pebble.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&bin)
            .arg("-config")
            .arg(&config_file)
            .arg("-dnsserver")
            .arg(dns.addr.to_string())
            // No artificial sleeps before validating; never reject a good nonce.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pebble = Pebble {
            child,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
            https_ca_pem: ca.pem(),
            https_ca_file: ca_file,
            log_path,
            _dns: dns,
            _dir: dir,
        };
        let client = pebble.https_client();
        let up = wait_until(Duration::from_secs(20), || {
            let client = client.clone();
            let url = pebble.directory.clone();
            async move {
                client
                    .get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        assert!(up, "pebble did not start:\n{}", pebble.log());
        pebble
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A client that trusts pebble's HTTPS certificate.
    fn https_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.https_ca_pem.as_bytes()).unwrap(),
            )
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// The root pebble issues under (made anew at each start).
    async fn issuing_root(&self) -> String {
        self.https_client()
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- pebble log ---\n{}", self.log());
        }
    }
}

/// The gateway's configuration: a plain listener `{PORT}`, a plain one for HTTP-01
/// (`http01`), an HTTPS one asking ACME for `app.test`, the admin API, one backend.
fn gateway_yaml(
    pebble: &Pebble,
    storage: &Path,
    ports: &Ports,
    backend: SocketAddr,
    renew_before: &str,
) -> String {
    format!(
        "\
listeners:
  - address: 127.0.0.1:{{PORT}}
  - address: 127.0.0.1:{http01}
  - address: 127.0.0.1:{https}
    tls:
      certificates:
        - {{acme: true, snis: [app.test]}}
acme:
  directory: {directory}
  email: ops@example.com
  tos_accepted: true
  storage: {storage}
  ca_file: {ca_file}
  renew_before: {renew_before}
  check_interval: 1s
admin: {{listen: 127.0.0.1:{admin}}}
upstreams:
  - {{name: app, targets: [{backend}]}}
routes:
  - {{name: app, upstream: app}}
",
        http01 = ports.http01,
        https = ports.https,
        admin = ports.admin,
        directory = pebble.directory,
        storage = storage.display(),
        ca_file = pebble.https_ca_file.display(),
    )
}

struct Ports {
    http01: u16,
    https: u16,
    admin: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            http01: free_port(),
            https: free_port(),
            admin: free_port(),
        }
    }
}

/// A client for `https://app.test:<port>` that trusts only `root_pem` and verifies the
/// name.
fn app_client(root_pem: &str, port: u16) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root_pem.as_bytes()).unwrap())
        .resolve("app.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A TLS connection to the gateway with SNI `app.test`, verified against `root_pem`.
async fn tls_connect(root_pem: &str, port: u16) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile_certs(root_pem) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("app.test").unwrap(), tcp)
        .await
        .expect("a certificate for app.test that pebble's root verifies")
}

fn rustls_pemfile_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The serial (hex) and the DNS names of the certificate a TLS stream was served.
fn served(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> (String, Vec<String>, String) {
    use x509_parser::prelude::FromDer;
    let cert = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&cert).unwrap();
    let names = parsed
        .subject_alternative_name()
        .unwrap()
        .map(|e| {
            e.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let issuer = parsed.issuer().to_string();
    (parsed.raw_serial_as_string(), names, issuer)
}

/// One HTTP/1.1 keep-alive request on an open TLS connection; the status.
async fn request_on(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> u16 {
    stream
        .write_all(b"GET /on-open-connection HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("a content-length");
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until `https://app.test/` answers 200 through a client trusting `root`.
async fn wait_served(root: &str, port: u16, gateway: &GatewayProcess) {
    let client = app_client(root, port);
    let ok = wait_until(Duration::from_secs(90), || {
        let client = client.clone();
        async move {
            client
                .get("https://app.test/")
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    assert!(
        ok,
        "no pebble certificate served for app.test:\n{}",
        gateway.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_is_issued_stored_and_served_from_storage_after_a_restart() {
    let backend = Backend::start("app", Behaviour::Echo).await;
    let ports = Ports::new();
    let pebble = Pebble::start(ports.http01).await;
    let root = pebble.issuing_root().await;
    let storage_dir = tempfile::tempdir().unwrap();
    let storage = storage_dir.path().join("acme");
    let yaml = gateway_yaml(&pebble, &storage, &ports, backend.addr, "30d");

    let mut gw = GatewayProcess::start(&yaml).await;
    wait_served(&root, ports.https, &gw).await;
    let stream = tls_connect(&root, ports.https).await;
    let (serial, names, issuer) = served(&stream);
    assert_eq!(names, ["app.test"]);
    assert!(issuer.contains("Pebble"), "{issuer}");
    let issued = "pingway_acme_orders_total{outcome=\"issued\"}";
    assert_eq!(metric_value(ports.admin, issued).await, Some(1));
    // The backend answered through it.
    let resp = app_client(&root, ports.https)
        .get("https://app.test/hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().starts_with("app\nGET /hello"));
    // The admin status shows it.
    let status: serde_json::Value = client()
        .get(format!("http://127.0.0.1:{}/status", ports.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cert = &status["acme"]["certificates"][0];
    assert_eq!(cert["names"], serde_json::json!(["app.test"]));
    assert_eq!(
        cert["serial"].as_str().unwrap(),
        serial.replace(':', "").as_str()
    );
    // Stored, the keys owner-only.
    use std::os::unix::fs::PermissionsExt;
    for (file, mode) in [
        ("account.key", 0o600),
        ("certificates/app.test.key", 0o600),
        ("certificates/app.test.crt", 0o644),
    ] {
        let meta = std::fs::metadata(storage.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let account_key = std::fs::read(storage.join("account.key")).unwrap();
    drop(stream);
    gw.terminate().await;

    // Pebble gone, the same storage: served at once, and nothing ordered.
    drop(pebble);
    let gw = GatewayProcess::start(&yaml).await;
    let stream = tls_connect(&root, ports.https).await;
    assert_eq!(served(&stream).0, serial);
    let resp = app_client(&root, ports.https)
        .get("https://app.test/again")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(metric_value(ports.admin, issued).await, Some(0));
    assert_eq!(
        metric_value(ports.admin, "pingway_acme_orders_total{outcome=\"failed\"}").await,
        Some(0)
    );
    assert!(!gw.log().contains("acme: ordering"), "{}", gw.log());
    assert_eq!(
        std::fs::read(storage.join("account.key")).unwrap(),
        account_key
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_due_for_renewal_is_replaced_live() {
    let backend = Backend::start("app", Behaviour::Echo).await;
    let ports = Ports::new();
    let pebble = Pebble::start(ports.http01).await;
    let root = pebble.issuing_root().await;
    let storage_dir = tempfile::tempdir().unwrap();
    // Longer than pebble's validity: every check finds the certificate due.
    let yaml = gateway_yaml(
        &pebble,
        &storage_dir.path().join("acme"),
        &ports,
        backend.addr,
        "100000d",
    );
    let gw = GatewayProcess::start(&yaml).await;
    wait_served(&root, ports.https, &gw).await;
    let mut open = tls_connect(&root, ports.https).await;
    let first = served(&open).0;
    assert_eq!(request_on(&mut open).await, 200);

    // A new certificate, served to new connections without a restart or a reload.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let mut renewed = loop {
        let stream = tls_connect(&root, ports.https).await;
        if served(&stream).0 != first {
            break Some(stream);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(renewed.is_some(), "no renewed certificate:\n{}", gw.log());
    let mut renewed = renewed.take().unwrap();
    assert_eq!(served(&renewed).1, ["app.test"]);
    assert_eq!(request_on(&mut renewed).await, 200);
    // The connection opened on the first certificate keeps working.
    assert_eq!(request_on(&mut open).await, 200);
    assert!(
        metric_value(ports.admin, "pingway_acme_orders_total{outcome=\"issued\"}")
            .await
            .unwrap()
            >= 2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_order_is_counted_shown_and_retried_later() {
    let backend = Backend::start("app", Behaviour::Echo).await;
    let ports = Ports::new();
    // Pebble validates on a port where nothing listens: every challenge fails.
    let pebble = Pebble::start(free_port()).await;
    let storage_dir = tempfile::tempdir().unwrap();
    let yaml = gateway_yaml(
        &pebble,
        &storage_dir.path().join("acme"),
        &ports,
        backend.addr,
        "30d",
    );
    let gw = GatewayProcess::start(&yaml).await;
    let failed = "pingway_acme_orders_total{outcome=\"failed\"}";
    let counted = wait_until(Duration::from_secs(60), || async {
        metric_value(ports.admin, failed).await.unwrap_or(0) >= 1
    })
    .await;
    assert!(counted, "no failed order counted:\n{}", gw.log());
    let status: serde_json::Value = client()
        .get(format!("http://127.0.0.1:{}/status", ports.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cert = &status["acme"]["certificates"][0];
    assert!(cert["failures"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        cert["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{status}"
    );
    assert!(cert["serial"].is_null(), "{status}");
    assert_eq!(status["acme"]["pending_challenges"], 0, "{status}");
    // Retried after the backoff (10s), not in a tight loop.
    assert_eq!(metric_value(ports.admin, failed).await, Some(1));
    assert_eq!(
        metric_value(ports.admin, "pingway_acme_orders_total{outcome=\"issued\"}").await,
        Some(0)
    );
    let log = gw.log();
    assert!(log.contains("acme: the order for app.test failed"), "{log}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}
