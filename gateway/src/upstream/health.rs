//! Active health checking, run as a Pingora background service.
//!
//! Every tick the checker asks for the current pools (the configuration may have been
//! swapped since the last tick), starts a probe of each target whose interval has
//! elapsed, and sleeps until the next probe is due. Probe times and results live in the
//! target's shared state, so they survive a reload.
//!
//! Probes go through Pingora's own connectors (`TransportConnector` for TCP checks, the
//! HTTP `Connector` for HTTP checks) with an `HttpPeer`, as Pingora's load-balancing
//! health checks do, so a probe connects the way proxied requests do (HTTP checks of a
//! `tls: true` pool over TLS, with its verification and client certificate). Probe connections are never pooled:
//! each probe opens one and drops it (`Connection: close`), so a probe always tests
//! connecting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use log::{debug, info, warn};
use pingora_core::connectors::http::Connector as HttpConnector;
use pingora_core::connectors::TransportConnector;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;

use super::target::{Target, Transition};
use super::Upstream;
use crate::config::{HealthCheckConfig, HealthCheckKind};

/// Longest sleep between two ticks, so new pools are noticed quickly after a reload.
const MAX_TICK: Duration = Duration::from_secs(1);
/// Shortest sleep between two ticks.
const MIN_TICK: Duration = Duration::from_millis(10);
/// `User-Agent` of HTTP probes, so targets can tell them from traffic.
const USER_AGENT: &str = "pingway-health-check";

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No connection could be made.
    #[error("connect: {0}")]
    Connect(Box<pingora_error::Error>),
    /// The probe request could not be built (an invalid `path` or `host`).
    #[error("request: {0}")]
    Request(Box<pingora_error::Error>),
    /// The request could not be sent.
    #[error("send: {0}")]
    Send(Box<pingora_error::Error>),
    /// No valid response header came back.
    #[error("read: {0}")]
    Read(Box<pingora_error::Error>),
    /// The target answered with a status not in `expected_status`.
    #[error("status {0}")]
    Status(u16),
    /// The probe took longer than the check's `timeout`.
    #[error("no answer within {0}")]
    Timeout(crate::config::Duration),
}

/// The connectors probes go through, shared by every probe.
struct Probes {
    tcp: TransportConnector,
    http: HttpConnector,
}

/// Probes the targets of every pool that has a `health_check`, and takes targets out of
/// rotation (and back) by their results. Register it with Pingora as a background
/// service.
pub struct HealthChecker {
    source: Arc<dyn Fn() -> Vec<Arc<Upstream>> + Send + Sync>,
    probes: Arc<Probes>,
}

impl HealthChecker {
    /// A checker over the pools `source` returns. It is called on every tick and must
    /// return the pools of the *current* configuration.
    pub fn new(source: Arc<dyn Fn() -> Vec<Arc<Upstream>> + Send + Sync>) -> Self {
        HealthChecker {
            source,
            probes: Arc::new(Probes {
                tcp: TransportConnector::new(None),
                http: HttpConnector::new(None),
            }),
        }
    }

    /// Starts the probes that are due at `now`; returns when the next one will be.
    fn tick(&self, now: Instant) -> Instant {
        let mut next = now + MAX_TICK;
        for pool in (self.source)() {
            let Some(hc) = &pool.config().health_check else {
                continue;
            };
            let interval = hc.interval.get();
            // Retired slots (addresses a name no longer resolves to) are not probed.
            for target in pool.targets().iter().filter(|t| !t.is_retired()) {
                let due = target
                    .state
                    .last_probe()
                    .map_or(now, |last| last + interval);
                if due > now {
                    next = next.min(due);
                    continue;
                }
                // A target still being probed (slower than its interval) is looked at
                // again one interval later.
                next = next.min(now + interval);
                if !target.state.begin_probe(now) {
                    continue;
                }
                tokio::spawn(probe_and_record(
                    Arc::clone(&self.probes),
                    Arc::clone(&pool),
                    Arc::clone(target),
                ));
            }
        }
        next
    }
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let next = self.tick(Instant::now());
            let wait = next
                .saturating_duration_since(Instant::now())
                .clamp(MIN_TICK, MAX_TICK);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
    }
}

/// Releases a target's probe claim however the probe task ends.
struct ProbeClaim(Arc<Target>);

impl Drop for ProbeClaim {
    fn drop(&mut self) {
        self.0.state.end_probe();
    }
}

/// Probes one target (its claim already taken) and records the result.
async fn probe_and_record(probes: Arc<Probes>, pool: Arc<Upstream>, target: Arc<Target>) {
    let claim = ProbeClaim(target);
    let target = &claim.0;
    let Some(hc) = &pool.config().health_check else {
        return;
    };
    let addr = target.addr();
    let probe = probe(&probes, &pool, hc, addr, target.host_header());
    let result = match tokio::time::timeout(hc.timeout.get(), probe).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout(hc.timeout)),
    };
    match result {
        Ok(()) => {
            if target.state.record_success(hc.healthy_threshold.max(1)) == Some(Transition::Up) {
                // Back by active checks: an outlier ejection ends too.
                target.state.outlier.uneject();
                info!(
                    "upstream {}: target {addr} is healthy again after {} successful health checks",
                    pool.name(),
                    hc.healthy_threshold
                );
            }
        }
        Err(reason) => {
            debug!(
                "upstream {}: health check of {addr} failed: {reason}",
                pool.name()
            );
            if target.state.record_failure(hc.unhealthy_threshold.max(1)) == Some(Transition::Down)
            {
                warn!(
                    "upstream {}: target {addr} is unhealthy after {} failed health checks (last: {reason}); taken out of rotation",
                    pool.name(),
                    hc.unhealthy_threshold
                );
            }
        }
    }
}

/// The peer a probe connects to: the target, over TLS when the pool's is (its SNI the
/// target's host unless the pool sets one), the check's timeout for each step (the
/// caller also bounds the whole probe by it). A `tcp` check only connects: plain TCP.
fn probe_peer(
    pool: &Upstream,
    hc: &HealthCheckConfig,
    addr: SocketAddr,
    target_host: &http::HeaderValue,
) -> HttpPeer {
    let mut peer = if hc.kind == HealthCheckKind::Tcp {
        HttpPeer::new(addr, false, String::new())
    } else {
        pool.base_peer(addr, || super::host_of(target_host, addr))
    };
    let timeout = Some(hc.timeout.get());
    peer.options.connection_timeout = timeout;
    peer.options.read_timeout = timeout;
    peer.options.write_timeout = timeout;
    peer
}

/// One probe, without the overall timeout (the caller applies it).
async fn probe(
    probes: &Probes,
    pool: &Upstream,
    hc: &HealthCheckConfig,
    addr: SocketAddr,
    target_host: &http::HeaderValue,
) -> Result<(), ProbeError> {
    let peer = probe_peer(pool, hc, addr, target_host);
    if hc.kind == HealthCheckKind::Tcp {
        // A new stream, never one from the pool: the probe is of connecting.
        probes
            .tcp
            .new_stream(&peer)
            .await
            .map_err(ProbeError::Connect)?;
        return Ok(());
    }
    let mut request =
        RequestHeader::build("GET", hc.path.as_bytes(), None).map_err(ProbeError::Request)?;
    // The same Host proxied requests carry: the target as configured.
    let host = match &hc.host {
        Some(host) => http::HeaderValue::from_str(host).map_err(|_| {
            ProbeError::Request(pingora_error::Error::explain(
                pingora_error::ErrorType::InvalidHTTPHeader,
                "invalid health_check.host",
            ))
        })?,
        None => target_host.clone(),
    };
    request
        .insert_header("Host", host)
        .map_err(ProbeError::Request)?;
    for (name, value) in [
        ("Connection", "close"),
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
    ] {
        request
            .insert_header(name, value)
            .map_err(ProbeError::Request)?;
    }
    // No pooled connection to reuse: probe sessions are never released to the pool.
    let (mut session, _reused) = probes
        .http
        .get_http_session(&peer)
        .await
        .map_err(ProbeError::Connect)?;
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(ProbeError::Send)?;
    session
        .finish_request_body()
        .await
        .map_err(ProbeError::Send)?;
    session
        .read_response_header()
        .await
        .map_err(ProbeError::Read)?;
    let status = session
        .response_header()
        .map(|h| h.status.as_u16())
        .ok_or_else(|| {
            ProbeError::Read(pingora_error::Error::explain(
                pingora_error::ErrorType::InvalidHTTPHeader,
                "no response header",
            ))
        })?;
    // Dropped, not released: the connection closes (the request said so too).
    drop(session);
    if hc.expected_status.contains(&status) {
        Ok(())
    } else {
        Err(ProbeError::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::watch;

    use super::*;
    use crate::config::{Balancer, Duration as ConfigDuration};
    use crate::upstream::testing::{config, request};
    use crate::upstream::SelectRequest;

    /// A tiny HTTP server answering every request with the current `status`.
    struct Backend {
        addr: std::net::SocketAddr,
        status: Arc<AtomicU16>,
        hits: Arc<AtomicUsize>,
        last_request: Arc<Mutex<String>>,
    }

    async fn backend() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let last_request = Arc::new(Mutex::new(String::new()));
        let (s, h, l) = (status.clone(), hits.clone(), last_request.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (s, h, l) = (s.clone(), h.clone(), l.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 512];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    *l.lock().unwrap() = String::from_utf8_lossy(&buf).into_owned();
                    h.fetch_add(1, Ordering::SeqCst);
                    let code = s.load(Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        Backend {
            addr,
            status,
            hits,
            last_request,
        }
    }

    fn health_check(kind: HealthCheckKind) -> HealthCheckConfig {
        HealthCheckConfig {
            kind,
            path: "/healthz".into(),
            host: None,
            expected_status: vec![200, 204],
            interval: ConfigDuration::from_millis(50),
            timeout: ConfigDuration::from_millis(500),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        }
    }

    async fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs a checker over whatever `pools` holds at each tick; returns the shutdown
    /// switch and the task.
    fn run_checker(
        pools: Arc<Mutex<Vec<Arc<Upstream>>>>,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let checker = HealthChecker::new(Arc::new(move || pools.lock().unwrap().clone()));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(async move { checker.start(rx).await });
        (tx, task)
    }

    #[tokio::test]
    async fn http_checks_take_a_failing_target_out_and_bring_it_back() {
        let good = backend().await;
        let flaky = backend().await;
        let mut cfg = config(
            "api",
            &[(&good.addr.to_string(), 1), (&flaky.addr.to_string(), 1)],
            Balancer::RoundRobin,
        );
        cfg.health_check = Some(health_check(HealthCheckKind::Http));
        let pool = Arc::new(Upstream::build(&cfg, "upstreams[0]", None).unwrap());
        let (shutdown, task) = run_checker(Arc::new(Mutex::new(vec![pool.clone()])));

        wait_until("both targets are probed", || {
            good.hits.load(Ordering::SeqCst) >= 2 && flaky.hits.load(Ordering::SeqCst) >= 2
        })
        .await;
        let sent = good.last_request.lock().unwrap().clone();
        assert!(sent.starts_with("GET /healthz HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains(&format!("Host: {}\r\n", good.addr)), "{sent}");
        assert!(sent.contains("Connection: close\r\n"), "{sent}");
        assert!(
            sent.contains("User-Agent: pingway-health-check\r\n"),
            "{sent}"
        );
        assert!(pool.targets()[1].is_healthy());

        flaky.status.store(500, Ordering::SeqCst);
        wait_until("the failing target is unhealthy", || {
            !pool.targets()[1].is_healthy()
        })
        .await;
        assert!(pool.targets()[0].is_healthy());
        let header = request("/", &[]);
        let req = SelectRequest {
            client_ip: "192.0.2.1".parse().unwrap(),
            header: &header,
        };
        for _ in 0..100 {
            assert_eq!(pool.select(&req, &[]).unwrap().index, 0);
        }

        flaky.status.store(204, Ordering::SeqCst);
        wait_until("the target is healthy again", || {
            pool.targets()[1].is_healthy()
        })
        .await;
        let picked: Vec<usize> = (0..10)
            .map(|_| pool.select(&req, &[]).unwrap().index)
            .collect();
        assert!(picked.contains(&1), "{picked:?}");

        shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the checker stops on shutdown")
            .unwrap();
    }

    #[tokio::test]
    async fn tcp_check_against_a_closed_port_turns_unhealthy_and_pools_are_reread() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut cfg = config("db", &[(&closed.to_string(), 1)], Balancer::Random);
        cfg.health_check = Some(health_check(HealthCheckKind::Tcp));
        let pool = Arc::new(Upstream::build(&cfg, "upstreams[0]", None).unwrap());

        // The checker starts with no pools; the pool appears later, as after a reload.
        let pools = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, task) = run_checker(pools.clone());
        pools.lock().unwrap().push(pool.clone());

        wait_until("the closed port is unhealthy", || {
            !pool.targets()[0].is_healthy()
        })
        .await;
        let header = request("/", &[]);
        let req = SelectRequest {
            client_ip: "192.0.2.1".parse().unwrap(),
            header: &header,
        };
        assert!(pool.select(&req, &[]).is_none());
        shutdown.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_target_that_does_not_speak_http_fails_http_checks() {
        // Answers every connection with an SSH banner, as a wrong port would.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            }
        });
        let mut cfg = config("ssh", &[(&addr.to_string(), 1)], Balancer::Random);
        cfg.health_check = Some(health_check(HealthCheckKind::Http));
        let pool = Arc::new(Upstream::build(&cfg, "upstreams[0]", None).unwrap());
        let (shutdown, task) = run_checker(Arc::new(Mutex::new(vec![pool.clone()])));
        wait_until("the non-HTTP target is unhealthy", || {
            !pool.targets()[0].is_healthy()
        })
        .await;
        shutdown.send(true).unwrap();
        task.await.unwrap();
    }

    #[test]
    fn probe_errors_say_what_failed() {
        let timeout = ConfigDuration::from_millis(500);
        assert_eq!(ProbeError::Status(503).to_string(), "status 503");
        assert_eq!(
            ProbeError::Timeout(timeout).to_string(),
            format!("no answer within {timeout}")
        );
    }

    #[tokio::test]
    async fn pools_without_health_check_are_not_probed() {
        let checked = backend().await;
        let unchecked = backend().await;
        let mut with = config("a", &[(&checked.addr.to_string(), 1)], Balancer::Random);
        with.health_check = Some(health_check(HealthCheckKind::Http));
        let without = config("b", &[(&unchecked.addr.to_string(), 1)], Balancer::Random);
        let pools = vec![
            Arc::new(Upstream::build(&with, "upstreams[0]", None).unwrap()),
            Arc::new(Upstream::build(&without, "upstreams[1]", None).unwrap()),
        ];
        let (shutdown, task) = run_checker(Arc::new(Mutex::new(pools)));
        wait_until("the checked pool is probed several times", || {
            checked.hits.load(Ordering::SeqCst) >= 3
        })
        .await;
        assert_eq!(unchecked.hits.load(Ordering::SeqCst), 0);
        shutdown.send(true).unwrap();
        task.await.unwrap();
    }
}
