//! HTTPS listeners (certificates chosen by SNI, reloaded live, HTTP/2 through ALPN) and
//! upstream TLS (verification, CA bundle, mutual TLS), through the real binary with
//! certificates a test CA (rcgen) issues, real TLS clients (reqwest on rustls with the
//! test CA as its only root; tokio-rustls to read the certificate served) and real TLS
//! backends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::common::*;

/// A certificate authority for the tests (also the gRPC and WebSocket TLS upstreams').
pub(crate) struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate the test CA issued, as PEM.
pub(crate) struct Issued {
    cert_pem: String,
    key_pem: String,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses) with `cn` as its common name.
    pub(crate) fn issue(&self, cn: &str, names: &[&str]) -> Issued {
        self.issue_with(cn, names, |_| {})
    }

    fn issue_with(
        &self,
        cn: &str,
        names: &[&str],
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Issued {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.cert.der().to_vec()))
            .unwrap();
        roots
    }
}

impl Issued {
    /// Writes `NAME.crt` and `NAME.key` into `dir`; returns their paths.
    fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .unwrap()
            .unwrap()
    }
}

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The common name of the certificate a TLS handshake with `sni` on `port` is served,
/// and the protocol ALPN chose.
async fn served(ca: &TestCa, port: u16, sni: &str) -> (String, Option<Vec<u8>>) {
    let (stream, _) = connect(ca, port, sni, &[b"h2", b"http/1.1"]).await;
    let (_, conn) = stream.get_ref();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let cert = conn.peer_certificates().unwrap()[0].clone();
    (common_name(&cert), alpn)
}

fn common_name(cert: &CertificateDer<'_>) -> String {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert).unwrap();
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    cn
}

/// A TLS connection to 127.0.0.1:`port` sending `sni`, trusting only the test CA (name
/// verification off: the SNI test asks for names no certificate has, to get the default).
async fn connect(
    ca: &TestCa,
    port: u16,
    sni: &str,
    alpn: &[&[u8]],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    Vec<CertificateDer<'static>>,
) {
    connect_with(ca, port, sni, alpn, rustls::DEFAULT_VERSIONS).await
}

/// [`connect`] offering only `versions`.
async fn connect_with(
    ca: &TestCa,
    port: u16,
    sni: &str,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    Vec<CertificateDer<'static>>,
) {
    let (stream, certs, _) = handshake(ca, port, sni, alpn, versions).await;
    (stream, certs)
}

/// The OCSP response stapled to the certificate served for `sni` (empty: none).
async fn stapled(ca: &TestCa, port: u16, sni: &str) -> Vec<u8> {
    handshake(ca, port, sni, &[], rustls::DEFAULT_VERSIONS)
        .await
        .2
}

/// A handshake: the stream, the certificates served and the OCSP response stapled.
async fn handshake(
    ca: &TestCa,
    port: u16,
    sni: &str,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (
    tokio_rustls::client::TlsStream<TcpStream>,
    Vec<CertificateDer<'static>>,
    Vec<u8>,
) {
    #[derive(Debug)]
    struct AnyName(
        Arc<rustls::client::WebPkiServerVerifier>,
        Arc<std::sync::Mutex<Vec<u8>>>,
    );
    impl rustls::client::danger::ServerCertVerifier for AnyName {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            *self.1.lock().unwrap() = ocsp.to_vec();
            match self
                .0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(ca.roots()),
        provider(),
    )
    .build()
    .unwrap();
    let ocsp = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyName(verifier, ocsp.clone())))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let stream = connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    let certs = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let stapled = ocsp.lock().unwrap().clone();
    (stream, certs, stapled)
}

/// One HTTP/1.1 request on an open connection; the response's status.
async fn http1_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
) -> u16 {
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text[9..12].parse().unwrap();
            }
        }
    }
}

/// A reqwest client over rustls trusting only the test CA, with `names` resolved to
/// 127.0.0.1.
fn https_client(ca: &TestCa, port: u16, names: &[&str], h2_only: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(10));
    for n in names {
        b = b.resolve(n, SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if h2_only {
        b = b.http2_prior_knowledge();
    } else {
        b = b.http1_only();
    }
    b.build().unwrap()
}

/// A gateway with a plain listener on `{PORT}` and an HTTPS one on `tls_port` serving
/// `certs` (YAML flow mappings), routing everything to `backend`.
fn gateway_yaml(tls_port: u16, certs: &[String], backend: &Backend, extra: &str) -> String {
    format!(
        "listeners:
  - address: \"127.0.0.1:{{PORT}}\"
  - address: \"127.0.0.1:{tls_port}\"
    tls:
      certificates:
{}
upstreams: [{{name: app, targets: [\"{}\"]}}]
routes:
  - {{name: all, paths: [/], upstream: app}}
{extra}",
        certs
            .iter()
            .map(|c| format!("        - {c}\n"))
            .collect::<String>(),
        backend.addr
    )
}

/// The common start of the HTTPS tests: `api.example.com`'s certificate, issued by a
/// test CA, as the default of an HTTPS listener on `tls_port`, in front of an echo
/// backend `app`.
struct ApiHost {
    ca: TestCa,
    tls_port: u16,
    backend: Backend,
    cert: (PathBuf, PathBuf),
    _dir: tempfile::TempDir,
}

impl ApiHost {
    async fn new() -> Self {
        let ca = TestCa::new("Pingway Test CA");
        let dir = tempfile::tempdir().unwrap();
        let cert = ca
            .issue("api", &["api.example.com"])
            .write(dir.path(), "api");
        ApiHost {
            ca,
            tls_port: free_port(),
            backend: Backend::start("app", Behaviour::Echo).await,
            cert,
            _dir: dir,
        }
    }

    /// The gateway's configuration ([`gateway_yaml`]) with `extra` after the routes.
    fn yaml(&self, extra: &str) -> String {
        let cert = cert_entry(&self.cert, &["api.example.com"], true);
        gateway_yaml(self.tls_port, &[cert], &self.backend, extra)
    }
}

fn cert_entry(paths: &(PathBuf, PathBuf), snis: &[&str], default: bool) -> String {
    format!(
        "{{cert: \"{}\", key: \"{}\", snis: [{}], default: {default}}}",
        paths.0.display(),
        paths.1.display(),
        snis.join(", ")
    )
}

#[tokio::test]
async fn sni_picks_each_hosts_certificate_and_the_default_for_others() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let api = ca
        .issue("api", &["api.example.com"])
        .write(dir.path(), "api");
    let shop = ca
        .issue("shop", &["shop.example.com"])
        .write(dir.path(), "shop");
    let wild = ca
        .issue("wildcard", &["*.apps.example.com"])
        .write(dir.path(), "wild");
    let fallback = ca
        .issue("fallback", &["fallback.example"])
        .write(dir.path(), "fallback");
    let backend = Backend::start("app", Behaviour::Echo).await;
    let tls_port = free_port();
    let gw = GatewayProcess::start(&gateway_yaml(
        tls_port,
        &[
            cert_entry(&api, &["api.example.com"], false),
            cert_entry(&shop, &["Shop.Example.com"], false),
            cert_entry(&wild, &["\"*.apps.example.com\""], false),
            cert_entry(&fallback, &[], true),
        ],
        &backend,
        "",
    ))
    .await;

    for (sni, cn) in [
        ("api.example.com", "api"),
        ("shop.example.com", "shop"),
        ("one.apps.example.com", "wildcard"),
        // A wildcard covers one label only.
        ("a.b.apps.example.com", "fallback"),
        ("unknown.example.org", "fallback"),
    ] {
        let (served, alpn) = served(&ca, tls_port, sni).await;
        assert_eq!(served, cn, "SNI {sni}\n{}", gw.log());
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "h2 is offered first");
    }

    // TLS 1.3 by default, TLS 1.2 for a client that offers only it.
    for (versions, want) in [
        (
            &[&rustls::version::TLS13][..],
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            &[&rustls::version::TLS12][..],
            rustls::ProtocolVersion::TLSv1_2,
        ),
    ] {
        let (stream, _) = connect_with(&ca, tls_port, "api.example.com", &[], versions).await;
        assert_eq!(stream.get_ref().1.protocol_version(), Some(want));
    }

    // A real client verifying names gets through on each host.
    let c = https_client(
        &ca,
        tls_port,
        &[
            "api.example.com",
            "shop.example.com",
            "one.apps.example.com",
        ],
        false,
    );
    for host in [
        "api.example.com",
        "shop.example.com",
        "one.apps.example.com",
    ] {
        let r = c
            .get(format!("https://{host}:{tls_port}/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let echo = Echo::parse(&r.text().await.unwrap());
        assert_eq!(echo.header("x-forwarded-proto"), Some("https"), "{host}");
        let port = tls_port.to_string();
        assert_eq!(echo.header("x-forwarded-port"), Some(port.as_str()));
    }
    // The plain listener still speaks plain HTTP and says so upstream.
    let r = client().get(gw.url("/x")).send().await.unwrap();
    let echo = Echo::parse(&r.text().await.unwrap());
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
}

#[tokio::test]
async fn http2_through_alpn_runs_the_same_plugins_as_http1() {
    let host = ApiHost::new().await;
    let (ca, tls_port) = (&host.ca, host.tls_port);
    let extra = "  - {name: by-host, hosts: [api.example.com], paths: [/by-host], upstream: app, preserve_host: true}
  - name: locked
    paths: [/locked]
    upstream: app
    plugins: [{name: key-auth}]
  - {name: secure, paths: [/secure], upstream: app, protocols: [https]}
consumers:
  - username: alice
    keyauth_credentials: [{key: alice-key}]
";
    let gw = GatewayProcess::start(&host.yaml(extra)).await;
    let h1 = https_client(ca, tls_port, &["api.example.com"], false);
    let h2 = https_client(ca, tls_port, &["api.example.com"], true);
    let base = format!("https://api.example.com:{tls_port}");

    let mut bodies = Vec::new();
    for (c, version) in [
        (&h1, reqwest::Version::HTTP_11),
        (&h2, reqwest::Version::HTTP_2),
    ] {
        // Proxied: the request id comes back and goes upstream.
        let r = c.get(format!("{base}/hello")).send().await.unwrap();
        assert_eq!(r.version(), version);
        assert_eq!(r.status(), 200);
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let echo = Echo::parse(&r.text().await.unwrap());
        assert_eq!(echo.header("x-request-id"), Some(rid.as_str()));
        assert_eq!(echo.header("x-forwarded-proto"), Some("https"));

        // Host matching sees HTTP/2's :authority as HTTP/1's Host.
        let r = c.get(format!("{base}/by-host")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{version:?}");
        let text = r.text().await.unwrap();
        let echo = Echo::parse(&text);
        assert_eq!(
            echo.header("x-forwarded-host"),
            Some(format!("api.example.com:{tls_port}").as_str()),
            "{version:?}\n{text}"
        );
        assert_eq!(
            echo.header("host"),
            Some(format!("api.example.com:{tls_port}").as_str()),
            "preserve_host, {version:?}"
        );

        // key-auth answers the same 401 JSON body.
        let r = c.get(format!("{base}/locked")).send().await.unwrap();
        assert_eq!(r.version(), version);
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let mut body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        // The body names the request's own id; the rest is identical.
        assert_eq!(body["request_id"], rid.as_str());
        body["request_id"] = serde_json::Value::Null;
        bodies.push(body);
        let r = c
            .get(format!("{base}/locked"))
            .header("apikey", "alice-key")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        // A route that serves only HTTPS serves a request on the TLS listener.
        let r = c.get(format!("{base}/secure")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{version:?}");
    }
    assert_eq!(
        bodies[0], bodies[1],
        "the 401 body is the same in h1 and h2"
    );
    assert_eq!(bodies[0]["message"], "No API key found in request");

    // The same https-only route refuses plain text on the plain listener.
    let r = client().get(gw.url("/secure")).send().await.unwrap();
    assert_eq!(r.status(), 426);
}

#[tokio::test]
async fn without_http2_only_http1_is_offered() {
    let host = ApiHost::new().await;
    let (ca, tls_port) = (&host.ca, host.tls_port);
    let yaml = host
        .yaml("")
        .replace("    tls:\n", "    tls:\n      http2: false\n");
    let _gw = GatewayProcess::start(&yaml).await;
    let (_, alpn) = served(ca, tls_port, "api.example.com").await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn an_unparseable_head_over_tls_gets_kongs_json_400() {
    let host = ApiHost::new().await;
    let (ca, tls_port) = (&host.ca, host.tls_port);
    let _gw = GatewayProcess::start(&host.yaml("")).await;
    let (mut stream, _) = connect(ca, tls_port, "api.example.com", &[b"http/1.1"]).await;
    assert_eq!(http1_get(&mut stream, "api.example.com").await, 200);
    // Pingora's parser refuses this head before the proxy sees it; the answer is the
    // gateway's JSON all the same, inside TLS.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: api.example.com\r\nno colon\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.ends_with("{\"message\":\"Bad request\"}"),
        "{answer}"
    );
    assert!(!answer.contains("Pingora"), "{answer}");
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_keeps_open_connections() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let first = ca.issue("first", &["api.example.com"]);
    let second = ca.issue("second", &["api.example.com"]);
    let backend = Backend::start("app", Behaviour::Echo).await;
    let tls_port = free_port();
    // The first certificate inline (cert_pem, key_pem), the second from files.
    let inline = format!(
        "{{cert_pem: {:?}, key_pem: {:?}, snis: [api.example.com]}}",
        first.cert_pem, first.key_pem
    );
    let gw = GatewayProcess::start(&gateway_yaml(
        tls_port,
        std::slice::from_ref(&inline),
        &backend,
        "",
    ))
    .await;

    // A kept-alive connection opened on the first certificate.
    let (mut kept, certs) = connect(&ca, tls_port, "api.example.com", &[b"http/1.1"]).await;
    assert_eq!(common_name(&certs[0]), "first");
    assert_eq!(http1_get(&mut kept, "api.example.com").await, 200);

    let files = second.write(dir.path(), "second");
    let yaml = gateway_yaml(
        tls_port,
        &[cert_entry(&files, &["api.example.com"], false)],
        &backend,
        "",
    );
    gw.write_config(&yaml);
    let swapped = wait_until(Duration::from_secs(10), || async {
        served(&ca, tls_port, "api.example.com").await.0 == "second"
    })
    .await;
    assert!(swapped, "the new certificate is not served\n{}", gw.log());

    // The connection opened before the reload still serves requests.
    assert_eq!(http1_get(&mut kept, "api.example.com").await, 200);
    assert_eq!(http1_get(&mut kept, "api.example.com").await, 200);

    // A certificate renewed in place, the YAML unchanged: read again on SIGHUP.
    ca.issue("third", &["api.example.com"])
        .write(dir.path(), "second");
    gw.sighup();
    let renewed = wait_until(Duration::from_secs(10), || async {
        served(&ca, tls_port, "api.example.com").await.0 == "third"
    })
    .await;
    assert!(renewed, "the renewed file is not served\n{}", gw.log());
    assert_eq!(http1_get(&mut kept, "api.example.com").await, 200);

    // No restart was asked for: only certificates changed.
    assert!(
        !gw.log().contains("take effect after a restart"),
        "{}",
        gw.log()
    );
}

#[tokio::test]
async fn the_admin_api_redacts_inline_keys() {
    let ca = TestCa::new("Pingway Test CA");
    let first = ca.issue("first", &["api.example.com"]);
    let backend = Backend::start("app", Behaviour::Echo).await;
    let tls_port = free_port();
    let admin_port = free_port();
    let inline = format!(
        "{{cert_pem: {:?}, key_pem: {:?}, snis: [api.example.com]}}",
        first.cert_pem, first.key_pem
    );
    let _gw = GatewayProcess::start(&gateway_yaml(
        tls_port,
        std::slice::from_ref(&inline),
        &backend,
        &format!("admin: {{listen: \"127.0.0.1:{admin_port}\"}}\n"),
    ))
    .await;
    let c = client();
    let url = format!("http://127.0.0.1:{admin_port}/config");
    assert!(
        wait_until(Duration::from_secs(5), || async {
            c.get(&url).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await
    );
    let body = c.get(&url).send().await.unwrap().text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cert = &v["listeners"][1]["tls"]["certificates"][0];
    assert_eq!(cert["key_pem"], "<redacted>");
    assert!(cert["cert_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(!body.contains("PRIVATE KEY"), "{body}");
}

#[tokio::test]
async fn a_missing_or_bad_certificate_is_a_config_error_and_keeps_the_running_one() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let api = ca
        .issue("api", &["api.example.com"])
        .write(dir.path(), "api");
    let backend = Backend::start("app", Behaviour::Echo).await;
    let tls_port = free_port();
    let gw = GatewayProcess::start(&gateway_yaml(
        tls_port,
        &[cert_entry(&api, &["api.example.com"], true)],
        &backend,
        "",
    ))
    .await;

    // A key file that does not exist.
    let missing = (api.0.clone(), dir.path().join("nope.key"));
    gw.write_config(&gateway_yaml(
        tls_port,
        &[cert_entry(&missing, &["api.example.com"], true)],
        &backend,
        "",
    ));
    let refused = wait_until(Duration::from_secs(5), || async {
        gw.log()
            .contains("listeners[1].tls.certificates[0].key: cannot read")
    })
    .await;
    assert!(refused, "{}", gw.log());
    assert!(gw.log().contains("keeping the running configuration"));
    assert_eq!(served(&ca, tls_port, "api.example.com").await.0, "api");

    // A certificate file that is not PEM, via `pingway validate`: file, line, column.
    let bad = dir.path().join("bad.crt");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let yaml = gateway_yaml(
        tls_port,
        &[cert_entry(
            &(bad, api.1.clone()),
            &["api.example.com"],
            true,
        )],
        &backend,
        "",
    )
    .replace("{PORT}", "8080");
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = std::process::Command::new(pingway_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // Placed at the entry's line (6) and named by its field.
    let at = format!("{}:6:", file.display());
    assert!(
        stderr.starts_with(&at)
            && stderr.contains(" listeners[1].tls.certificates[0].cert: ")
            && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}

/// An HTTPS backend with `cert`, asking for a client certificate the CA issued when
/// `client_ca` is given.
async fn tls_backend(name: &str, cert: &Issued, client_ca: Option<&TestCa>) -> Backend {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(ca.roots()),
                provider(),
            )
            .build()
            .unwrap(),
        ),
    };
    let config = builder.with_single_cert(cert.chain(), cert.key()).unwrap();
    Backend::start_tls(
        name,
        Behaviour::Echo,
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    )
    .await
}

fn upstream_yaml(backend: &Backend, tls: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
upstreams:
  - name: secure
    targets: [\"{}\"]
    retries: 0
    tls: true
{tls}
routes:
  - {{name: all, paths: [/], upstream: secure}}
",
        backend.addr
    )
}

#[tokio::test]
async fn upstream_tls_verifies_against_the_ca_file() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let backend = tls_backend(
        "tls-app",
        &ca.issue("backend", &["backend.internal", "127.0.0.1"]),
        None,
    )
    .await;

    // Trusted through ca_file, verified against the target's IP.
    let gw = GatewayProcess::start(&upstream_yaml(
        &backend,
        &format!("    ca_file: \"{}\"", ca_file.display()),
    ))
    .await;
    let r = client().get(gw.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", gw.log());
    assert_eq!(backend_of(&r).as_deref(), Some("tls-app"));

    // With an SNI override, verified against that name.
    gw.write_config(&upstream_yaml(
        &backend,
        &format!(
            "    ca_file: \"{}\"\n    sni: backend.internal",
            ca_file.display()
        ),
    ));
    let c = client();
    assert!(
        wait_until(Duration::from_secs(5), || async {
            gw.log().contains("reloaded")
                && c.get(gw.url("/b"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "{}",
        gw.log()
    );
    // A name the certificate does not have fails verification: 502.
    gw.write_config(&upstream_yaml(
        &backend,
        &format!(
            "    ca_file: \"{}\"\n    sni: other.internal",
            ca_file.display()
        ),
    ));
    assert!(
        wait_until(Duration::from_secs(5), || async {
            c.get(gw.url("/c"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 502)
        })
        .await,
        "{}",
        gw.log()
    );
}

#[tokio::test]
async fn an_untrusted_or_expired_upstream_certificate_is_a_502_with_a_clear_log_line() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let backend = tls_backend("tls-app", &ca.issue("backend", &["127.0.0.1"]), None).await;

    // No ca_file: the system's roots do not know the test CA.
    let gw = GatewayProcess::start(&upstream_yaml(&backend, "")).await;
    let r = client().get(gw.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        wait_until(Duration::from_secs(5), || async {
            gw.log().contains("UnknownIssuer")
        })
        .await,
        "no log line names the verification failure:\n{}",
        gw.log()
    );
    assert_eq!(backend.hits(), 0);

    // tls_verify: false accepts it.
    gw.write_config(&upstream_yaml(&backend, "    tls_verify: false"));
    let c = client();
    assert!(
        wait_until(Duration::from_secs(5), || async {
            c.get(gw.url("/b"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "{}",
        gw.log()
    );

    // An expired certificate from the trusted CA.
    let expired = tls_backend(
        "expired",
        &ca.issue_with("expired", &["127.0.0.1"], |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }),
        None,
    )
    .await;
    let gw = GatewayProcess::start(&upstream_yaml(
        &expired,
        &format!("    ca_file: \"{}\"", ca_file.display()),
    ))
    .await;
    let r = client().get(gw.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        wait_until(Duration::from_secs(5), || async {
            gw.log().contains("certificate expired")
        })
        .await,
        "no log line names the expiry:\n{}",
        gw.log()
    );
}

#[tokio::test]
async fn upstream_mtls_sends_the_client_certificate() {
    let ca = TestCa::new("Pingway Test CA");
    let clients = TestCa::new("Mesh Client CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (client_cert, client_key) = clients
        .issue("gateway", &["gateway.mesh"])
        .write(dir.path(), "client");
    let backend = tls_backend(
        "mesh-app",
        &ca.issue("backend", &["127.0.0.1"]),
        Some(&clients),
    )
    .await;

    // Without a client certificate the backend refuses the handshake.
    let gw = GatewayProcess::start(&upstream_yaml(
        &backend,
        &format!("    ca_file: \"{}\"", ca_file.display()),
    ))
    .await;
    let r = client().get(gw.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 502);

    gw.write_config(&upstream_yaml(
        &backend,
        &format!(
            "    ca_file: \"{}\"\n    client_cert: \"{}\"\n    client_key: \"{}\"",
            ca_file.display(),
            client_cert.display(),
            client_key.display()
        ),
    ));
    let c = client();
    assert!(
        wait_until(Duration::from_secs(5), || async {
            c.get(gw.url("/b"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200 && backend_of(&r).as_deref() == Some("mesh-app"))
        })
        .await,
        "{}",
        gw.log()
    );
}

#[tokio::test]
async fn http_health_checks_of_a_tls_pool_go_over_tls() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let backend = tls_backend("tls-app", &ca.issue("backend", &["127.0.0.1"]), None).await;
    let gw = GatewayProcess::start(&upstream_yaml(
        &backend,
        &format!(
            "    ca_file: \"{}\"
    health_check: {{path: /health, interval: 100ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 1}}",
            ca_file.display()
        ),
    ))
    .await;
    // The probes read the backend's /health answers: a 500 takes it out...
    backend.set_healthy(false);
    assert!(
        wait_until(Duration::from_secs(5), || async {
            gw.log()
                .contains("is unhealthy after 1 failed health checks")
        })
        .await,
        "{}",
        gw.log()
    );
    // ... and a 200 brings it back, which a probe in plain text to a TLS port never gets.
    backend.set_healthy(true);
    assert!(
        wait_until(Duration::from_secs(5), || async {
            gw.log().contains("is healthy again")
        })
        .await,
        "{}",
        gw.log()
    );
    let r = client().get(gw.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_ocsp_response_file_is_stapled() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let api = ca
        .issue("api", &["api.example.com"])
        .write(dir.path(), "api");
    let other = ca
        .issue("other", &["other.example.com"])
        .write(dir.path(), "other");
    // What a responder returned, as the operator fetched it (`openssl ocsp -respout`):
    // the gateway staples the bytes as they are; clients check them.
    let response = b"\x30\x03\x0a\x01\x06".to_vec();
    let ocsp_file = dir.path().join("api.ocsp");
    std::fs::write(&ocsp_file, &response).unwrap();
    let backend = Backend::start("app", Behaviour::Echo).await;
    let tls_port = free_port();
    let with_ocsp = cert_entry(&api, &["api.example.com"], true).replace(
        ", snis:",
        &format!(", ocsp_file: \"{}\", snis:", ocsp_file.display()),
    );
    let _gw = GatewayProcess::start(&gateway_yaml(
        tls_port,
        &[with_ocsp, cert_entry(&other, &["other.example.com"], false)],
        &backend,
        "",
    ))
    .await;
    assert_eq!(stapled(&ca, tls_port, "api.example.com").await, response);
    assert!(stapled(&ca, tls_port, "other.example.com").await.is_empty());
}

#[tokio::test]
async fn failed_client_handshakes_are_counted_not_logged_one_by_one() {
    let host = ApiHost::new().await;
    let (ca, tls_port) = (&host.ca, host.tls_port);
    let admin_port = free_port();
    let admin = format!("admin: {{listen: \"127.0.0.1:{admin_port}\"}}\n");
    let gw = GatewayProcess::start(&host.yaml(&admin)).await;
    // Plain HTTP to the HTTPS port, three times: each handshake fails.
    for _ in 0..3 {
        let r = client()
            .get(format!("http://127.0.0.1:{tls_port}/"))
            .send()
            .await;
        assert!(
            r.is_err(),
            "a plain-text request to an HTTPS port got {r:?}"
        );
    }
    let c = client();
    let metrics = format!("http://127.0.0.1:{admin_port}/metrics");
    let counted = wait_until(Duration::from_secs(5), || async {
        let Ok(r) = c.get(&metrics).send().await else {
            return false;
        };
        r.text()
            .await
            .unwrap_or_default()
            .lines()
            .any(|l| l == "pingway_tls_handshake_failures_total 3")
    })
    .await;
    assert!(counted, "{}", gw.log());
    let log = gw.log();
    assert!(
        log.contains("client TLS handshakes failed: 1 so far (last: Downstream handshake"),
        "{log}"
    );
    assert!(!log.contains("] Downstream handshake"), "{log}");
    // The listener still serves TLS clients.
    assert_eq!(served(ca, tls_port, "api.example.com").await.0, "api");
}

/// `tls.max_handshakes` and `tls.client_hello_timeout`: connections that never send a
/// ClientHello hold at most the bound of handshake slots, a connection beyond it is closed
/// at once (counted), the stalled ones are closed when their ClientHello is overdue
/// (counted), and then a real client gets through.
#[tokio::test]
async fn stalled_handshakes_are_bounded_and_time_out() {
    let ca = TestCa::new("Pingway Test CA");
    let dir = tempfile::tempdir().unwrap();
    let api = ca
        .issue("api", &["api.example.com"])
        .write(dir.path(), "api");
    let backend = Backend::start("app", Behaviour::Echo).await;
    let tls_port = free_port();
    let admin_port = free_port();
    let gw = GatewayProcess::start(&format!(
        "listeners:
  - address: \"127.0.0.1:{{PORT}}\"
  - address: \"127.0.0.1:{tls_port}\"
    tls:
      max_handshakes: 3
      client_hello_timeout: 3s
      certificates:
        - {}
upstreams: [{{name: app, targets: [\"{}\"]}}]
routes:
  - {{name: all, paths: [/], upstream: app}}
admin: {{listen: \"127.0.0.1:{admin_port}\"}}
",
        cert_entry(&api, &["api.example.com"], true),
        backend.addr
    ))
    .await;

    // Open connections that send nothing until one is closed at once: the bound is
    // reached. The ones that stay open hold a slot each (never more than 3 at a time).
    let mut stalled = Vec::new();
    let mut refused = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !refused && std::time::Instant::now() < deadline {
        let mut s = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
        let mut buf = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => refused = true,
            Ok(Ok(_)) => panic!("the gateway sent bytes before any ClientHello"),
            Err(_) => stalled.push(s),
        }
    }
    assert!(refused, "no connection was refused past tls.max_handshakes");
    assert!(stalled.len() >= 3, "{}", stalled.len());
    assert!(
        metric_value(admin_port, "pingway_tls_handshakes_refused_total")
            .await
            .is_some_and(|n| n >= 1),
        "{}",
        gw.log()
    );

    // The stalled connections are closed once their ClientHello is overdue.
    for mut s in stalled.drain(..) {
        let mut buf = [0u8; 1];
        let end = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf)).await;
        assert!(
            matches!(end, Ok(Ok(0)) | Ok(Err(_))),
            "a stalled handshake was not closed: {end:?}"
        );
    }
    assert!(
        metric_value(admin_port, "pingway_tls_client_hello_timeouts_total")
            .await
            .is_some_and(|n| n >= 3),
        "{}",
        gw.log()
    );

    // A real client gets through, and the slots are free again.
    let c = https_client(&ca, tls_port, &["api.example.com"], false);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            c.get(format!("https://api.example.com:{tls_port}/"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await,
        "{}",
        gw.log()
    );
    // The refusals and timeouts are logged as counts, not one line each.
    let log = gw.log();
    assert!(log.contains("tls.max_handshakes (3) reached"), "{log}");
    assert!(
        log.matches("tls.max_handshakes (3) reached").count() <= 2,
        "{log}"
    );
}
