//! Upstream pools. (Stub with the agreed API; the real one is being written.)
#![allow(missing_docs, unused_variables, dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::config::{Diagnostic, UpstreamConfig};
use pingora_core::upstreams::peer::HttpPeer;

pub struct Upstream {
    cfg: UpstreamConfig,
    targets: Vec<Arc<Target>>,
}
pub struct Target {
    addr: SocketAddr,
}
impl Target {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
pub struct SelectRequest<'a> {
    pub client_ip: IpAddr,
    pub header: &'a pingora_http::RequestHeader,
}
pub struct Selected {
    pub index: usize,
    pub addr: SocketAddr,
}
impl Upstream {
    pub fn build(cfg: &UpstreamConfig, path: &str, previous: Option<&Upstream>) -> Result<Upstream, Vec<Diagnostic>> {
        let targets = cfg
            .targets
            .iter()
            .map(|t| Arc::new(Target { addr: t.address.parse().unwrap() }))
            .collect();
        Ok(Upstream { cfg: cfg.clone(), targets })
    }
    pub fn name(&self) -> &str {
        &self.cfg.name
    }
    pub fn config(&self) -> &UpstreamConfig {
        &self.cfg
    }
    pub fn select(&self, req: &SelectRequest<'_>, exclude: &[usize]) -> Option<Selected> {
        let i = (0..self.targets.len()).find(|i| !exclude.contains(i))?;
        Some(Selected { index: i, addr: self.targets[i].addr })
    }
    pub fn peer(&self, selected: &Selected) -> Box<HttpPeer> {
        Box::new(HttpPeer::new(selected.addr, false, String::new()))
    }
    pub fn targets(&self) -> &[Arc<Target>] {
        &self.targets
    }
}
pub struct HealthChecker;
impl HealthChecker {
    pub fn new(source: Arc<dyn Fn() -> Vec<Arc<Upstream>> + Send + Sync>) -> Self {
        HealthChecker
    }
}
#[async_trait::async_trait]
impl pingora_core::services::background::BackgroundService for HealthChecker {
    async fn start(&self, _shutdown: pingora_core::server::ShutdownWatch) {}
}
