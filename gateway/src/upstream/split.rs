//! A route's weighted split over upstreams (`routes[].split`): each side takes a whole
//! percentage of the requests, the route's own upstream the rest; optionally sticky, so
//! that a client (by IP, header or cookie) always lands on the same side.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderName;

use super::hash_key::HashKey;
use super::Upstream;
use crate::config::{RouteConfig, SplitHashOn};

/// A compiled split: its sides in file order with their percentages, and the key that
/// makes it sticky.
#[derive(Debug)]
pub struct RouteSplit {
    sides: Box<[(Arc<Upstream>, u32)]>,
    key: Option<HashKey>,
}

impl RouteSplit {
    /// The split of `route`, its upstreams looked up by `upstream`; `None` when the route
    /// has no split (or names an upstream that is not built, which validation reports).
    pub fn compile(
        route: &RouteConfig,
        upstream: impl Fn(&str) -> Option<Arc<Upstream>>,
    ) -> Option<RouteSplit> {
        if route.split.is_empty() {
            return None;
        }
        let sides = route
            .split
            .iter()
            .map(|s| Some((upstream(&s.upstream)?, s.weight)))
            .collect::<Option<Box<[_]>>>()?;
        let key = match route.split_hash_on {
            SplitHashOn::None => None,
            SplitHashOn::Ip => Some(HashKey::Ip),
            SplitHashOn::Header => route
                .split_hash_on_header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .map(HashKey::Header),
            SplitHashOn::Cookie => route.split_hash_on_cookie.clone().map(HashKey::Cookie),
        };
        Some(RouteSplit { sides, key })
    }

    /// The sides, in file order: upstream name and percent.
    pub fn sides(&self) -> impl Iterator<Item = (&str, u32)> {
        self.sides.iter().map(|(u, w)| (u.name(), *w))
    }

    /// The side this request goes to, or `None` for the route's own upstream.
    pub fn pick(
        &self,
        client_ip: IpAddr,
        request: &http::request::Parts,
    ) -> Option<&Arc<Upstream>> {
        let point = match &self.key {
            Some(key) => (key.hash(client_ip, request) % 100) as u32,
            None => fastrand::u32(0..100),
        };
        self.side_at(point)
    }

    /// The side whose share covers `point` (0 to 99), sides in file order.
    fn side_at(&self, point: u32) -> Option<&Arc<Upstream>> {
        let mut upto = 0u32;
        for (upstream, weight) in self.sides.iter() {
            upto = upto.saturating_add(*weight);
            if point < upto {
                return Some(upstream);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Balancer, SplitConfig};
    use crate::upstream::testing::{config, request};

    fn upstream(name: &str) -> Arc<Upstream> {
        let cfg = config(name, &[("127.0.0.1:9", 1)], Balancer::RoundRobin);
        Arc::new(Upstream::build(&cfg, "upstreams[0]", None).unwrap())
    }

    fn route(split: &[(&str, u32)], on: SplitHashOn) -> RouteConfig {
        let mut r = RouteConfig {
            name: "r".into(),
            hosts: Vec::new(),
            wildcard_labels: Default::default(),
            paths: Vec::new(),
            methods: Vec::new(),
            headers: Vec::new(),
            query_params: Vec::new(),
            upstream: "main".into(),
            strip_prefix: false,
            preserve_host: false,
            plugins: Vec::new(),
            split: Vec::new(),
            split_hash_on: SplitHashOn::None,
            split_hash_on_header: None,
            split_hash_on_cookie: None,
            request_headers: Default::default(),
            response_headers: Default::default(),
            path_rewrite: None,
            mirrors: Vec::new(),
            protocols: vec![
                crate::config::Protocol::Http,
                crate::config::Protocol::Https,
            ],
            https_redirect_status_code: 426,
            compression: None,
            timeout: None,
            retries: None,
        };
        r.split = split
            .iter()
            .map(|(u, w)| SplitConfig {
                upstream: u.to_string(),
                weight: *w,
            })
            .collect();
        r.split_hash_on = on;
        r.split_hash_on_header = Some("x-user".into());
        r
    }

    fn compile(r: &RouteConfig) -> RouteSplit {
        RouteSplit::compile(r, |n| Some(upstream(n))).expect("a split")
    }

    #[test]
    fn shares_are_whole_percents_in_file_order_and_the_rest_stays() {
        let s = compile(&route(&[("a", 10), ("b", 25)], SplitHashOn::None));
        let name = |p| s.side_at(p).map(|u| u.name().to_string());
        assert_eq!(name(0).as_deref(), Some("a"));
        assert_eq!(name(9).as_deref(), Some("a"));
        assert_eq!(name(10).as_deref(), Some("b"));
        assert_eq!(name(34).as_deref(), Some("b"));
        assert_eq!(name(35), None, "the route's own upstream");
        assert_eq!(name(99), None);
        assert!(
            RouteSplit::compile(&route(&[], SplitHashOn::None), |n| Some(upstream(n))).is_none()
        );
    }

    #[test]
    fn a_random_split_follows_its_weights() {
        let s = compile(&route(&[("canary", 10)], SplitHashOn::None));
        let req = request("/", &[]);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let n = 20_000;
        let hits = (0..n).filter(|_| s.pick(ip, &req).is_some()).count();
        let share = hits as f64 / n as f64;
        // Binomial sd at p = 0.1, n = 20,000 is 0.0021: 0.02 is over 9 of them.
        assert!((share - 0.10).abs() < 0.02, "{share}");
    }

    #[test]
    fn a_sticky_split_keeps_each_key_on_one_side() {
        let s = compile(&route(&[("canary", 30)], SplitHashOn::Header));
        let ip = IpAddr::from([10, 0, 0, 1]);
        let mut canary = 0;
        for user in 0..1000 {
            let value = format!("user-{user}");
            let req = request("/", &[("x-user", &value)]);
            let first = s.pick(ip, &req).is_some();
            for _ in 0..5 {
                assert_eq!(s.pick(ip, &req).is_some(), first, "{value} moved");
            }
            canary += usize::from(first);
        }
        assert!(
            (200..400).contains(&canary),
            "{canary} of 1000 users on the 30% side"
        );
    }
}
