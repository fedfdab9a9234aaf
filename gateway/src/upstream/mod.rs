//! Upstream pools: resolved targets, load balancing, active health checks, and the
//! Pingora peer (with timeouts) for a picked target.
//!
//! A pool is built once per configuration ([`Upstream::build`]); a reload builds new
//! pools and hands each target's live state (health, in-flight count) to the new pool
//! when its address stays. Between reloads, targets written as names are looked up again
//! every [`RESOLVE_INTERVAL`] ([`TargetRefresher`]) and the pool's members change with
//! the answer, with the same hand-over of state. [`Upstream::select`] runs on every
//! request: it takes no lock and allocates nothing.

mod balancer;
pub mod connections;
mod hash_key;
mod health;
mod members;
mod names;
pub mod outlier;
pub mod recent_errors;
mod refresher;
mod resolve;
pub mod retry;
mod ring;
mod split;
mod target;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
pub mod upgrade;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderName;
use pingora_core::upstreams::peer::HttpPeer;
use pingway_plugins::config::join_path;

use crate::config::{Diagnostic, HashOn, UpstreamConfig};
use balancer::Balancing;
use hash_key::HashKey;
use members::Members;
use names::{NameRecord, Names};
use resolve::ResolveFn;
use target::{InFlight, TargetState};

/// Concurrent streams the gateway opens on one HTTP/2 (`h2c` or `h2`) connection to a target before it
/// opens another (servers usually allow 100 or more).
const H2_MAX_STREAMS: usize = 100;

pub use connections::{ConnectionLimit, ConnectionSlot, Overflow};
pub use outlier::Outcome;
pub use retry::{Failure, RetryPolicy, RouteRetry};

pub use health::HealthChecker;
pub use members::Targets;
pub use names::RESOLVE_INTERVAL;
pub use refresher::TargetRefresher;
pub use split::RouteSplit;
pub use target::Target;

/// A named pool of targets with its balancer, built from an [`UpstreamConfig`].
pub struct Upstream {
    cfg: UpstreamConfig,
    /// The consistent-hash key source, kept to rebuild the ring when members change.
    key: HashKey,
    /// The targets and balancer, replaced whole when a target name resolves differently;
    /// loading them takes no lock.
    members: ArcSwap<Members>,
    /// The targets written as names, looked up again every [`RESOLVE_INTERVAL`].
    names: Names,
    /// Requests in flight to the pool, for `max_requests`.
    in_flight: Arc<AtomicUsize>,
    /// Requests answered 503 because the pool was at `max_requests`.
    overflowed: AtomicU64,
    /// The retry policy and budget.
    retry: RetryPolicy,
    /// `max_connections` and `max_pending_requests`.
    connections: ConnectionLimit,
    /// TLS to the targets (`tls: true`), with its files loaded.
    tls: Option<crate::tls::UpstreamTls>,
}

/// The pool is at its `max_requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One request counted against the pool's `max_requests` until dropped.
#[derive(Debug)]
pub struct RequestSlot(Arc<AtomicUsize>);

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a balancer may look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct SelectRequest<'a> {
    /// The client's address (after trusted-proxy processing); the consistent-hash key
    /// for `hash_on: ip` and the fallback when a header or cookie key is missing.
    pub client_ip: IpAddr,
    /// The request header, for `hash_on: header`, `cookie` and `path`.
    pub header: &'a http::request::Parts,
}

/// A picked target. Holding it counts one in-flight request on the target (read by
/// least-connections and useful for metrics); dropping it ends that request.
pub struct Selected {
    /// The target's index in [`Upstream::targets`]; pass it in `exclude` to pick
    /// another target on retry.
    pub index: usize,
    /// The target's address.
    pub addr: SocketAddr,
    _in_flight: InFlight,
}

impl Selected {
    /// Records a failure of the request on this target in the target's
    /// [`recent errors`](Target::recent_errors).
    pub fn record_error(&self, kind: recent_errors::UpstreamErrorKind) {
        self._in_flight.state().errors.record(kind);
    }
}

impl fmt::Debug for Selected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selected")
            .field("index", &self.index)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Upstream {
    /// Builds a pool from its config. `path` is the config field path of this upstream
    /// (such as `upstreams[2]`), used in diagnostics (`upstreams[2].targets[1]`; the
    /// location is left for the caller to fill).
    ///
    /// Target addresses `host:port` are resolved here, blocking on DNS (an `IP:port`
    /// needs no lookup); a name with several addresses gives one target per address, each
    /// with the configured weight. Names are looked up again every
    /// [`RESOLVE_INTERVAL`] by the [`TargetRefresher`].
    ///
    /// `previous` is the pool of the same name from the configuration being replaced:
    /// targets with the same resolved address keep their state (health, counters,
    /// in-flight count, last probe), so a reload does not reset health. A pool without
    /// `health_check` marks every target healthy.
    pub fn build(
        cfg: &UpstreamConfig,
        path: &str,
        previous: Option<&Upstream>,
    ) -> Result<Upstream, Vec<Diagnostic>> {
        Self::build_with(cfg, path, previous, &resolve::resolve, RESOLVE_INTERVAL)
    }

    /// [`Upstream::build`] with a given lookup function and re-resolution interval.
    pub(crate) fn build_with(
        cfg: &UpstreamConfig,
        path: &str,
        previous: Option<&Upstream>,
        resolve: &ResolveFn<'_>,
        resolve_interval: Duration,
    ) -> Result<Upstream, Vec<Diagnostic>> {
        let mut diagnostics = Vec::new();
        // Live state by address: the previous pool's, then this pool's as it is built
        // (the same address twice in one pool is one server: one state). A map rather
        // than a scan, as pools generated from Kubernetes endpoints can be large.
        let previous_members = previous.map(|p| p.members.load_full());
        let mut known: HashMap<SocketAddr, Arc<TargetState>> = previous_members
            .iter()
            .flat_map(|m| m.targets.iter())
            .filter(|t| !t.is_retired())
            .map(|t| (t.addr(), Arc::clone(&t.state)))
            .collect();
        let mut targets: Vec<Arc<Target>> = Vec::new();
        let mut names = Vec::new();
        let now = Instant::now();
        for (i, t) in cfg.targets.iter().enumerate() {
            let addrs = match resolve(&t.address) {
                Ok(addrs) => addrs,
                Err(e) => {
                    let at = join_path(path, &format!("targets[{i}]"));
                    diagnostics.push(Diagnostic::new(at, e.to_string()));
                    continue;
                }
            };
            let Some(first) = addrs.first() else {
                continue;
            };
            // One owned value per configured target, shared by its addresses.
            let host_header = target::host_header(&t.address, *first);
            if resolve::literal(&t.address).is_none() {
                names.push(NameRecord {
                    entry: i,
                    address: t.address.clone(),
                    weight: t.weight,
                    host_header: host_header.clone(),
                    next_due: now + resolve_interval,
                    failure_logged_at: None,
                });
            }
            for addr in addrs {
                // Without health checks nothing would ever bring an unhealthy target
                // back, so it starts afresh; the old state is not touched, as the
                // running pool still uses it if this reload fails elsewhere. (An
                // unhealthy target has no requests in flight worth carrying over.)
                let state = match known.get(&addr) {
                    Some(state) if cfg.health_check.is_some() || state.is_healthy() => {
                        Arc::clone(state)
                    }
                    _ => {
                        let fresh = Arc::new(TargetState::new());
                        known.insert(addr, Arc::clone(&fresh));
                        fresh
                    }
                };
                targets.push(Arc::new(Target::configured(
                    i,
                    host_header.clone(),
                    addr,
                    t.weight,
                    state,
                )));
            }
        }

        let key = match hash_key(cfg, path) {
            Ok(key) => key,
            Err(d) => {
                diagnostics.push(d);
                HashKey::Ip
            }
        };
        let tls = crate::tls::UpstreamTls::build(cfg, path, &mut diagnostics);
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        let members = Members::new(targets, cfg.balancer, &key);
        Ok(Upstream {
            cfg: cfg.clone(),
            key,
            members: ArcSwap::from_pointee(members),
            names: Names::new(names, resolve_interval),
            in_flight: Arc::default(),
            overflowed: AtomicU64::new(0),
            retry: RetryPolicy::new(cfg),
            connections: ConnectionLimit::new(
                cfg.max_connections,
                cfg.max_pending_requests,
                cfg.connect_timeout.get(),
            ),
            tls,
        })
    }

    /// Counts a request against `max_requests`: `Ok(Some(slot))` to hold while the request
    /// is in flight, `Ok(None)` when the pool has no limit (nothing counted, nothing
    /// paid), `Err(Full)` when it is full (the request is answered 503; counted).
    pub fn try_acquire(&self) -> Result<Option<RequestSlot>, Full> {
        let max = self.cfg.max_requests as usize;
        if max == 0 {
            return Ok(None);
        }
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if taken {
            Ok(Some(RequestSlot(self.in_flight.clone())))
        } else {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            Err(Full)
        }
    }

    /// Requests answered 503 because the pool was at `max_requests`, since it was built.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The pool's retry policy and budget.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The pool's connection limit (`max_connections`, `max_pending_requests`).
    pub fn connections(&self) -> &ConnectionLimit {
        &self.connections
    }

    /// Records an attempt's result on its target for outlier detection, ejecting the
    /// target when it reached a threshold and the pool's `max_ejection_percent` allows.
    /// Nothing is counted without `outlier_detection`.
    pub fn report(&self, selected: &Selected, outcome: Outcome) {
        let Some(od) = &self.cfg.outlier_detection else {
            return;
        };
        let state = &selected._in_flight.state().outlier;
        if state.record(od, outcome).is_none() {
            return;
        }
        // A threshold was reached: rare, so a scan of the pool is fine here.
        let members = self.members.load();
        let now = outlier::now_micros();
        let live = members.targets.iter().filter(|t| !t.is_retired());
        let (total, ejected) = live.fold((0, 0), |(n, e), t| {
            (n + 1, e + usize::from(t.state.outlier.is_ejected_at(now)))
        });
        if ejected >= outlier::max_ejected(total, od.max_ejection_percent) {
            log::warn!(
                "upstream {}: target {} failed {} requests in a row but is not ejected: {ejected} of {total} targets are already (max_ejection_percent {})",
                self.name(),
                selected.addr,
                state.consecutive_failures(),
                od.max_ejection_percent
            );
            state.reset_counts();
            return;
        }
        if let Some(length) = state.eject(od, now) {
            log::warn!(
                "upstream {}: target {} ejected for {length:?} after failing requests in a row (ejection {})",
                self.name(),
                selected.addr,
                state.ejections()
            );
        }
    }

    /// The pool's name, as routes refer to it.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The configuration the pool was built from.
    pub fn config(&self) -> &UpstreamConfig {
        &self.cfg
    }

    /// Picks a healthy target with the configured balancer, skipping the target indexes
    /// in `exclude` (those already tried for this request). `None` when no healthy,
    /// non-excluded target of positive weight is left (the proxy answers 503).
    pub fn select(&self, req: &SelectRequest<'_>, exclude: &[usize]) -> Option<Selected> {
        let members = self.members.load();
        let targets = &members.targets;
        let available =
            |i: usize| !exclude.contains(&i) && targets.get(i).is_some_and(|t| t.is_available());
        let index = match &members.balancing {
            Balancing::RoundRobin(rr) => rr.pick(available),
            Balancing::Random(random) => {
                random.pick(|i| targets.get(i).map_or(0, |t| t.weight()), available)
            }
            Balancing::ConsistentHash(ring, key) => {
                ring.pick(key.hash(req.client_ip, req.header), available)
            }
            Balancing::LeastConnections(lc) => lc.pick(targets, available),
        }?;
        let target = targets.get(index)?;
        Some(Selected {
            index,
            addr: target.addr(),
            _in_flight: InFlight::start(&target.state),
        })
    }

    /// Whether a target outside `exclude` is available (a retry has somewhere to go).
    /// A scan of the pool: called only when a retry is considered.
    pub fn has_available(&self, exclude: &[usize]) -> bool {
        let members = self.members.load();
        members
            .targets
            .iter()
            .enumerate()
            .any(|(i, t)| !exclude.contains(&i) && t.is_available())
    }

    /// The target at `addr`, if the pool has it and it is available (what a plugin that
    /// pins a target gets); `None` otherwise (the proxy answers 503).
    pub fn select_target(&self, addr: SocketAddr, exclude: &[usize]) -> Option<Selected> {
        let members = self.members.load();
        let (index, target) = members
            .targets
            .iter()
            .enumerate()
            .find(|(i, t)| t.addr() == addr && !exclude.contains(i) && t.is_available())?;
        Some(Selected {
            index,
            addr: target.addr(),
            _in_flight: InFlight::start(&target.state),
        })
    }

    /// The Pingora peer for a selection, with the pool's connect, read and write timeouts:
    /// plain HTTP, or TLS with the pool's verification, CA bundle, SNI and client
    /// certificate.
    pub fn peer(&self, selected: &Selected) -> Box<HttpPeer> {
        self.peer_within(selected, None)
    }

    /// [`Self::peer`] with the connect, read and write timeouts cut to `cap` when it is
    /// shorter (an attempt's `per_try_timeout`, or what is left of the route's
    /// `timeout`).
    pub fn peer_within(&self, selected: &Selected, cap: Option<Duration>) -> Box<HttpPeer> {
        let cut = |d: Duration| Some(cap.map_or(d, |c| c.min(d)));
        let mut peer = self.base_peer(selected.addr, || self.target_host(selected.index));
        peer.options.connection_timeout = cut(self.cfg.connect_timeout.get());
        peer.options.read_timeout = cut(self.cfg.read_timeout.get());
        peer.options.write_timeout = cut(self.cfg.write_timeout.get());
        if self.cfg.protocol.is_http2() {
            // h2c: prior knowledge (with no TLS there is no ALPN, and Pingora speaks
            // HTTP/2 in cleartext only when HTTP/1 is ruled out). h2: the TLS handshake
            // offers ALPN `h2` alone (a target that picks no protocol is spoken to in
            // HTTP/1.1 by Pingora, and a gRPC server then fails the call).
            peer.options.set_http_version(2, 2);
            peer.options.max_h2_streams = H2_MAX_STREAMS;
        }
        Box::new(peer)
    }

    /// The peer for a request that asks for a protocol upgrade (WebSocket): reads and
    /// writes wait up to `websocket_idle_timeout`, since after the upgrade the
    /// connection carries a long-lived session whose quiet spells are normal. The route's
    /// `timeout` does not cut it: that bounds a response, and this is a session.
    ///
    /// For a TLS pool it also returns the [`upgrade::Gate`] to arm once the connection
    /// is made (after its handshake, before the request is written).
    pub fn upgrade_peer(&self, selected: &Selected) -> (Box<HttpPeer>, Option<upgrade::Gate>) {
        let mut peer = self.peer_within(selected, None);
        let idle = Some(self.cfg.websocket_idle_timeout.get());
        peer.options.read_timeout = idle;
        peer.options.write_timeout = idle;
        // Works around Pingora's upgrade race (see `upgrade`). The gate counts flushes
        // of the TCP connection: from the start without TLS; after the handshake (which
        // flushes, and waits on reads, before the request) with it.
        let timeout = self.cfg.connect_timeout.get();
        let (connect, gate) = if peer.is_tls() {
            let (connect, gate) = upgrade::GatedConnect::after_handshake(timeout);
            (connect, Some(gate))
        } else {
            (upgrade::GatedConnect::new(timeout), None)
        };
        peer.options.custom_l4 = Some(Arc::new(connect));
        // Its own pool key, kept apart from any the peer already has.
        peer.group_key ^= upgrade::UPGRADE_GROUP_KEY;
        (peer, gate)
    }

    /// Whether the pool's targets speak HTTP/2 (`protocol: h2c` or `h2`).
    pub fn is_http2(&self) -> bool {
        self.cfg.protocol.is_http2()
    }

    /// How long an upgraded connection may be idle (`websocket_idle_timeout`).
    pub fn websocket_idle_timeout(&self) -> Duration {
        self.cfg.websocket_idle_timeout.get()
    }

    /// A peer for `addr` without timeouts: plain HTTP, or TLS with the pool's
    /// verification, CA bundle, client certificate and SNI (`sni`, else `host()`).
    pub(crate) fn base_peer(&self, addr: SocketAddr, host: impl FnOnce() -> String) -> HttpPeer {
        match &self.tls {
            None => HttpPeer::new(addr, false, String::new()),
            Some(tls) => {
                let sni = match &tls.sni {
                    Some(sni) => sni.clone(),
                    None => host(),
                };
                let mut peer = HttpPeer::new(addr, true, sni);
                peer.options.verify_cert = tls.verify;
                peer.options.verify_hostname = tls.verify;
                peer.options.ca = tls.ca.clone();
                peer.client_cert_key = tls.client.clone();
                peer.group_key = tls.pool_group;
                peer
            }
        }
    }

    /// The host of target `index` as configured (`host` of `host:port`, an IPv6 literal
    /// without its brackets): the default SNI of upstream TLS.
    fn target_host(&self, index: usize) -> String {
        let members = self.members.load();
        match members.targets.get(index) {
            Some(t) => host_of(t.host_header(), t.addr()),
            None => String::new(),
        }
    }

    /// The current targets with their live state, in selection-index order, for the
    /// proxy (a selected target's `Host`), the health checker, the admin API and tests.
    /// A snapshot: a re-resolution after this call does not change it, and keeps the
    /// index of every target that survives (see [`Target::is_retired`]).
    pub fn targets(&self) -> Targets {
        Targets(self.members.load_full())
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.cfg.name)
            .field("balancer", &self.cfg.balancer)
            .field("targets", &self.members.load().targets)
            .finish()
    }
}

/// The host of a `Host` value (`host:port`, `[v6]:port`), without port or brackets; the
/// address's IP when the value is not text.
pub(crate) fn host_of(host_header: &http::HeaderValue, addr: SocketAddr) -> String {
    let Ok(h) = host_header.to_str() else {
        return addr.ip().to_string();
    };
    let host = match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => &h[..i],
        _ => h,
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// The consistent-hash key source, with the header name parsed once.
fn hash_key(cfg: &UpstreamConfig, path: &str) -> Result<HashKey, Diagnostic> {
    Ok(match cfg.hash_on {
        HashOn::Ip => HashKey::Ip,
        HashOn::Path => HashKey::Path,
        HashOn::Cookie => match &cfg.hash_on_cookie {
            Some(name) => HashKey::Cookie(name.clone()),
            None => HashKey::Ip,
        },
        HashOn::Header => match &cfg.hash_on_header {
            Some(name) => {
                HashKey::Header(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    Diagnostic::new(
                        join_path(path, "hash_on_header"),
                        format!("{name:?} is not a valid header name"),
                    )
                })?)
            }
            None => HashKey::Ip,
        },
    })
}
