//! Upstream pools: resolved targets, load balancing, active health checks, and the
//! Pingora peer (with timeouts) for a picked target.
//!
//! A pool is built once per configuration ([`Upstream::build`]); a reload builds new
//! pools and hands each target's live state (health, in-flight count) to the new pool
//! when its address stays. [`Upstream::select`] runs on every request: it takes no lock
//! and allocates nothing.

mod balancer;
mod hash_key;
mod health;
mod resolve;
mod ring;
mod target;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::HeaderName;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use pingway_plugins::config::join_path;

use crate::config::{Balancer, Diagnostic, HashOn, UpstreamConfig};
use balancer::{Balancing, LeastConnections, RoundRobin, WeightedRandom};
use hash_key::HashKey;
use ring::Ring;
use target::{InFlight, TargetState};

pub use health::HealthChecker;
pub use target::Target;

/// A named pool of targets with its balancer, built from an [`UpstreamConfig`].
pub struct Upstream {
    cfg: UpstreamConfig,
    targets: Vec<Arc<Target>>,
    balancing: Balancing,
}

/// What a balancer may look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct SelectRequest<'a> {
    /// The client's address (after trusted-proxy processing); the consistent-hash key
    /// for `hash_on: ip` and the fallback when a header or cookie key is missing.
    pub client_ip: IpAddr,
    /// The request header, for `hash_on: header`, `cookie` and `path`.
    pub header: &'a RequestHeader,
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
    /// with the configured weight.
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
        let mut diagnostics = Vec::new();
        let mut targets: Vec<Arc<Target>> = Vec::new();
        for (i, t) in cfg.targets.iter().enumerate() {
            let addrs = match resolve::resolve(&t.address) {
                Ok(addrs) => addrs,
                Err(message) => {
                    let at = join_path(path, &format!("targets[{i}]"));
                    diagnostics.push(Diagnostic::new(at, message));
                    continue;
                }
            };
            for addr in addrs {
                // The same address twice in one pool is one server: one state.
                let known = targets
                    .iter()
                    .chain(previous.into_iter().flat_map(|p| p.targets.iter()))
                    .find(|x| x.addr() == addr)
                    .map(|x| Arc::clone(&x.state));
                // Without health checks nothing would ever bring an unhealthy target
                // back, so it starts afresh; the old state is not touched, as the
                // running pool still uses it if this reload fails elsewhere. (An
                // unhealthy target has no requests in flight worth carrying over.)
                let state = match known {
                    Some(state) if cfg.health_check.is_some() || state.is_healthy() => state,
                    _ => Arc::new(TargetState::new()),
                };
                targets.push(Arc::new(
                    Target::new(addr, t.weight, state).with_configured_address(&t.address),
                ));
            }
        }

        let weights: Vec<u32> = targets.iter().map(|t| t.weight()).collect();
        let balancing = match cfg.balancer {
            Balancer::RoundRobin => Balancing::RoundRobin(RoundRobin::new(&weights)),
            Balancer::Random => Balancing::Random(WeightedRandom::new(&weights)),
            Balancer::LeastConnections => Balancing::LeastConnections(LeastConnections::default()),
            Balancer::ConsistentHash => {
                let key = match hash_key(cfg, path) {
                    Ok(key) => key,
                    Err(d) => {
                        diagnostics.push(d);
                        HashKey::Ip
                    }
                };
                let points: Vec<(SocketAddr, u32)> =
                    targets.iter().map(|t| (t.addr(), t.weight())).collect();
                Balancing::ConsistentHash(Ring::new(&points), key)
            }
        };

        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        Ok(Upstream {
            cfg: cfg.clone(),
            targets,
            balancing,
        })
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
        let targets = &self.targets;
        let available =
            |i: usize| !exclude.contains(&i) && targets.get(i).is_some_and(|t| t.is_available());
        let index = match &self.balancing {
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

    /// The target at `addr`, if the pool has it and it is available (what a plugin that
    /// pins a target gets); `None` otherwise (the proxy answers 503).
    pub fn select_target(&self, addr: SocketAddr, exclude: &[usize]) -> Option<Selected> {
        let (index, target) = self
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

    /// The Pingora peer for a selection: plain HTTP (no TLS, empty SNI) with the pool's
    /// connect, read and write timeouts.
    pub fn peer(&self, selected: &Selected) -> Box<HttpPeer> {
        let mut peer = HttpPeer::new(selected.addr, false, String::new());
        peer.options.connection_timeout = Some(self.cfg.connect_timeout.get());
        peer.options.read_timeout = Some(self.cfg.read_timeout.get());
        peer.options.write_timeout = Some(self.cfg.write_timeout.get());
        Box::new(peer)
    }

    /// The targets with their live state, in selection-index order, for the health
    /// checker, the admin API and tests.
    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.cfg.name)
            .field("balancer", &self.cfg.balancer)
            .field("targets", &self.targets)
            .finish()
    }
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
