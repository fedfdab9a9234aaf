//! Many TLS hosts from the first sync: Ingresses with `tls:` entries and their
//! `kubernetes.io/tls` Secrets on the stand-in API server → the `pingway-k8s` binary →
//! the file → the real gateway serving HTTPS with each host's own certificate (a real
//! TLS client sends the SNI and verifies the chain and the name against the test CA).
//!
//! Each host has its own certificate (its name only, signed by one test CA); to generate
//! them fast, all share one key pair. `PINGWAY_TLS_HOSTS` (default 200) sets the number
//! of hosts; the benchmark runs 40,000 and reports the times this test prints.
//!
//! The file names each certificate and key by path in the watcher's certificate
//! directory (no PEM inline; keys mode 0600). A Secret's certificate changed in the
//! cluster reaches new handshakes, and the file of the replaced certificate is removed
//! once two newer configurations are written.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SerialNumber};
use serde_json::json;
use support::apiserver::ApiServer;
use support::objects::*;
use support::processes::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

fn host(i: usize) -> String {
    format!("t{i}.tls.test")
}

/// GET / on `host` over TLS to `127.0.0.1:port` with SNI `host`, the certificate
/// verified against `roots` (chain and name): the status and body, or why not.
async fn https_get(
    roots: &Arc<rustls::RootCertStore>,
    port: u16,
    host: &str,
) -> Result<(u16, String), String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(Arc::clone(roots))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // A close without close_notify still gives the whole response.
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no response: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The leaf certificate (DER) the listener on `port` serves for `host`, verified against
/// `roots`.
async fn served_certificate(
    roots: &Arc<rustls::RootCertStore>,
    port: u16,
    host: &str,
) -> Result<Vec<u8>, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(Arc::clone(roots))
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| "no certificate".to_string())
}

/// The bound on the configuration file given to both the watcher and the gateway: the
/// default 4 MiB holds about 6,000 TLS hosts.
const MAX_CONFIG_BYTES: &str = "67108864";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tls_host_is_served_with_its_certificate_after_the_first_sync() {
    let hosts: usize = std::env::var("PINGWAY_TLS_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let gateway_bin = pingway_bin();
    let backend = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\ntls",
                        )
                        .await;
                });
            }
        });
        addr
    };

    // The test CA, and one certificate per host (one shared key).
    let generated = Instant::now();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let key_pem = leaf_key.serialize_pem();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let tls_secret = |name: &str, cert_pem: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"namespace": "tls", "name": name},
        "data": {"tls.crt": b64(cert_pem), "tls.key": b64(&key_pem)}})
    };
    let api = ApiServer::start().await;
    api.apply(service("tls", "web"));
    api.apply(slice("tls", "web", &[backend]));
    let mut first_pem = None;
    for i in 0..hosts {
        let cert = CertificateParams::new(vec![host(i)])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        first_pem.get_or_insert_with(|| cert.pem());
        api.apply(tls_secret(&format!("c{i}"), &cert.pem()));
        let mut ing = ingress("tls", &format!("i{i}"), &host(i), "/", "web", json!({}));
        ing["spec"]["tls"] = json!([{"hosts": [host(i)], "secretName": format!("c{i}")}]);
        api.apply(ing);
    }
    let generated = generated.elapsed();
    let first_pem = first_pem.expect("at least one host");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let roots = Arc::new(roots);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pingway.yaml");
    let (http, https, admin) = (free_port(), free_port(), free_port());
    let watcher_log = dir.path().join("watcher.log");
    let gateway_log = dir.path().join("gateway.log");
    let logs = [watcher_log.as_path(), gateway_log.as_path()];
    let started = Instant::now();
    let https_listen = format!("127.0.0.1:{https}");
    let watcher = spawn_watcher(
        &api.url(),
        &config,
        http,
        admin,
        &[
            "--https-listen",
            &https_listen,
            "--max-config-bytes",
            MAX_CONFIG_BYTES,
            "--certificate-grace-ms",
            "300",
        ],
        &watcher_log,
    );
    until("the first file", &logs, async || config.exists()).await;
    let written = started.elapsed();
    let watcher_rss = watcher.rss_kib();
    let gateway = spawn(
        &gateway_bin,
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--max-config-bytes",
            MAX_CONFIG_BYTES,
        ],
        &gateway_log,
    );
    // A sample of hosts across the range, first and last included.
    let sample: Vec<usize> = {
        let step = (hosts / 20).max(1);
        let mut s: Vec<usize> = (0..hosts).step_by(step).collect();
        s.push(hosts - 1);
        s
    };
    until("HTTPS on the first sampled host", &logs, async || {
        https_get(&roots, https, &host(sample[0])).await.is_ok()
    })
    .await;
    for &i in &sample {
        let got = https_get(&roots, https, &host(i)).await;
        assert_eq!(got, Ok((200, "tls".to_string())), "host {}", host(i));
    }
    let served = started.elapsed();
    // A name with no certificate of its own is not verified as one.
    let stranger = https_get(&roots, https, "nobody.tls.test").await;
    assert!(stranger.is_err(), "{stranger:?}");
    let file_mib = std::fs::metadata(&config).unwrap().len() as f64 / 1048576.0;
    // Where the time went, as the two processes log it (first translation, first load).
    for (who, log, what) in [
        ("watcher", &watcher_log, "translated in"),
        ("gateway", &gateway_log, "parsed in"),
    ] {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(what)) {
            eprintln!("{who}: {line}");
        }
    }

    // Certificates and keys are files the YAML names, keys readable by their owner only.
    let yaml = std::fs::read_to_string(&config).unwrap();
    assert!(!yaml.contains("key_pem"), "a key inline");
    assert!(!yaml.contains("-----BEGIN"), "PEM inline");
    let certs_dir = {
        let mut d = config.clone().into_os_string();
        d.push(".d/certs");
        std::path::PathBuf::from(d)
    };
    let named = |ext: &str| -> Vec<std::path::PathBuf> {
        yaml.lines()
            .map(|l| l.trim().trim_start_matches("- "))
            .filter_map(|l| l.strip_prefix(&format!("{ext}: ")))
            .map(|p| std::path::PathBuf::from(p.trim_matches('"')))
            .collect()
    };
    let (cert_files, key_files) = (named("cert"), named("key"));
    assert_eq!(cert_files.len(), hosts, "one certificate entry per host");
    // One key shared by every host: one file.
    assert_eq!(
        key_files
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    for f in cert_files.iter().chain(&key_files) {
        assert!(
            f.starts_with(&certs_dir),
            "{} not in {}",
            f.display(),
            certs_dir.display()
        );
    }
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_files[0])
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        assert_eq!(std::fs::read_to_string(&key_files[0]).unwrap(), key_pem);
    }

    // The first host's Secret gets a new certificate, twice: each reaches new
    // handshakes; the first one's file is removed after the second change (it is then
    // two configurations old), the second one's is kept (one configuration old).
    let file_of = |pem: &str| {
        certs_dir.join(format!(
            "{}.crt",
            pingway::tls::content_digest(pem.as_bytes())
        ))
    };
    assert_eq!(
        std::fs::read_to_string(file_of(&first_pem)).unwrap(),
        first_pem
    );
    let mut replaced = vec![first_pem];
    for serial in [1u64, 2] {
        let mut params = CertificateParams::new(vec![host(0)]).unwrap();
        params.serial_number = Some(SerialNumber::from(1_000_000 + serial));
        let cert = params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        api.apply(tls_secret("c0", &cert.pem()));
        let want = cert.der().to_vec();
        until("the new certificate served", &logs, async || {
            served_certificate(&roots, https, &host(0))
                .await
                .ok()
                .as_ref()
                == Some(&want)
        })
        .await;
        assert!(file_of(&cert.pem()).exists());
        replaced.push(cert.pem());
    }
    until(
        "the replaced certificate's file removed",
        &logs,
        async || !file_of(&replaced[0]).exists(),
    )
    .await;
    assert!(
        file_of(&replaced[1]).exists(),
        "the previous generation's file is kept"
    );
    assert_eq!(
        https_get(&roots, https, &host(0)).await,
        Ok((200, "tls".to_string()))
    );
    eprintln!(
        "{hosts} TLS hosts: certificates generated and applied in {:.1} s; first file written \
         {:.2} s after the watcher started ({file_mib:.1} MiB); {} sampled hosts served over \
         HTTPS {:.2} s after the watcher started; RSS watcher {} MiB, gateway {} MiB",
        generated.as_secs_f64(),
        written.as_secs_f64(),
        sample.len(),
        served.as_secs_f64(),
        watcher_rss / 1024,
        gateway.rss_kib() / 1024
    );
}
