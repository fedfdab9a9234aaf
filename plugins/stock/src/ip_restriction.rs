//! `ip-restriction`: allow or deny clients by IP address or CIDR range, as Kong does.
//!
//! - `deny` wins over `allow`;
//! - a non-empty `allow` list blocks every address not on it;
//! - blocked requests get `status` (403) and `{"message":"IP address not allowed: <ip>"}`
//!   unless `message` is set.
//!
//! The client address is [`RequestCtx::client_ip`](crate::RequestCtx::client_ip), which
//! the proxy takes from the connection, or from the real-IP header only when the
//! connection comes from a trusted proxy.

use std::collections::HashSet;
use std::net::IpAddr;

use http::StatusCode;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, Response};

/// Kong's `ip-restriction` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRestrictionConfig {
    /// Addresses or CIDR ranges allowed; when non-empty, everyone else is blocked.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Addresses or CIDR ranges blocked (checked first).
    #[serde(default)]
    pub deny: Vec<String>,
    /// Status code for blocked requests (default 403).
    #[serde(default)]
    pub status: Option<u16>,
    /// Message for blocked requests (default `IP address not allowed: <ip>`).
    #[serde(default)]
    pub message: Option<String>,
}

/// A set of addresses and ranges, with single addresses in a hash set so long allow
/// lists of hosts stay O(1).
#[derive(Debug, Default)]
struct IpSet {
    hosts: HashSet<IpAddr>,
    nets: Vec<IpNet>,
}

impl IpSet {
    fn parse(entries: &[String], field: &str) -> Result<IpSet, ConfigError> {
        let mut set = IpSet::default();
        let mut err: Option<ConfigError> = None;
        for (i, raw) in entries.iter().enumerate() {
            let entry = raw.trim();
            let parsed = entry
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) if net.prefix_len() == net.max_prefix_len() => {
                    set.hosts.insert(canonical(net.addr()));
                }
                Ok(net) => set.nets.push(net),
                Err(_) => {
                    let field = format!("{field}[{i}]");
                    let msg = format!("invalid IP address or CIDR range: {raw:?}");
                    err = Some(match err {
                        None => ConfigError::new(field, msg),
                        Some(e) => e.and(field, msg),
                    });
                }
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(set),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.hosts.contains(&ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are compared as IPv4, so a dual-stack
/// listener cannot be used to slip past an IPv4 rule.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The `ip-restriction` plugin.
#[derive(Debug)]
pub struct IpRestriction {
    allow: IpSet,
    deny: IpSet,
    status: StatusCode,
    message: Option<String>,
}

impl IpRestriction {
    /// Whether `ip` may pass.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.deny.contains(ip) {
            return false;
        }
        self.allow.is_empty() || self.allow.contains(ip)
    }
}

#[async_trait::async_trait]
impl Plugin for IpRestriction {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let ip = req.client_ip();
        if self.allows(ip) {
            return Flow::Continue;
        }
        let message = match &self.message {
            Some(m) => m.clone(),
            None => format!("IP address not allowed: {}", canonical(ip)),
        };
        Flow::Respond(Response::error(self.status, message))
    }
}

impl BuildPlugin for IpRestriction {
    const NAME: &'static str = "ip-restriction";
    const PRIORITY: i32 = 990;
    type Config = IpRestrictionConfig;

    fn build(config: IpRestrictionConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        if config.allow.is_empty() && config.deny.is_empty() {
            return Err(ConfigError::new(
                "",
                "at least one of these fields must be non-empty: 'allow', 'deny'",
            ));
        }
        let mut problems: Option<ConfigError> = None;
        let mut note = |e: ConfigError| {
            problems = Some(match problems.take() {
                None => e,
                Some(mut all) => {
                    for (f, m) in e.problems() {
                        all = all.and(f.clone(), m.clone());
                    }
                    all
                }
            });
        };
        let allow = IpSet::parse(&config.allow, "allow").map_err(&mut note).ok();
        let deny = IpSet::parse(&config.deny, "deny").map_err(&mut note).ok();
        let status = match config.status {
            None => Some(StatusCode::FORBIDDEN),
            Some(code) => StatusCode::from_u16(code)
                .ok()
                .filter(|s| (100..=599).contains(&s.as_u16()))
                .ok_or_else(|| {
                    ConfigError::new("status", format!("{code} is not an HTTP status code"))
                })
                .map_err(&mut note)
                .ok(),
        };
        let (Some(allow), Some(deny), Some(status)) = (allow, deny, status) else {
            return Err(problems.unwrap_or_else(|| ConfigError::new("", "invalid configuration")));
        };
        Ok(IpRestriction {
            allow,
            deny,
            status,
            message: config.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;

    #[tokio::test]
    async fn the_access_phase_answers_kongs_403_through_the_test_kit() {
        let p = build(&[], &["192.0.2.0/24"]).expect("valid");
        let mut denied = TestRequest::get("/").client_ip("192.0.2.9".parse().expect("ip"));
        let answer = denied.access(&p).await.expect("a 403");
        assert_eq!(answer.status, http::StatusCode::FORBIDDEN);
        assert!(matches!(
            &answer.body,
            crate::Body::Message(m) if m == "IP address not allowed: 192.0.2.9"
        ));
        let mut allowed = TestRequest::get("/").client_ip("198.51.100.1".parse().expect("ip"));
        assert!(allowed.access(&p).await.is_none());
    }

    fn build(allow: &[&str], deny: &[&str]) -> Result<IpRestriction, ConfigError> {
        IpRestriction::build(
            IpRestrictionConfig {
                allow: allow.iter().map(|s| s.to_string()).collect(),
                deny: deny.iter().map(|s| s.to_string()).collect(),
                status: None,
                message: None,
            },
            &BuildContext::new(PluginScope::Global),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allow_list_blocks_everyone_else() {
        let p = build(&["54.13.21.1", "10.0.0.0/8"], &[]).unwrap();
        assert!(p.allows(ip("54.13.21.1")));
        assert!(p.allows(ip("10.200.3.4")));
        assert!(!p.allows(ip("127.0.0.1")));
        assert!(!p.allows(ip("54.13.21.2")));
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = build(&["10.0.0.0/8"], &["10.1.2.3", "10.9.0.0/16"]).unwrap();
        assert!(p.allows(ip("10.1.2.4")));
        assert!(!p.allows(ip("10.1.2.3")));
        assert!(!p.allows(ip("10.9.255.1")));
    }

    #[test]
    fn deny_only_allows_the_rest() {
        let p = build(&[], &["192.168.0.0/16"]).unwrap();
        assert!(p.allows(ip("8.8.8.8")));
        assert!(!p.allows(ip("192.168.1.1")));
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let p = build(&["2001:db8::/32"], &["127.0.0.1"]).unwrap();
        assert!(p.allows(ip("2001:db8::1")));
        assert!(!p.allows(ip("2001:db9::1")));
        // ::ffff:127.0.0.1 is 127.0.0.1 and must hit the IPv4 deny rule.
        assert!(!p.allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn rejects_bad_entries_and_empty_config() {
        let e = build(&["10.0.0.0/33", "nope"], &["1.2.3.4/x"]).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["allow[0]", "allow[1]", "deny[0]"]);
        let e = IpRestriction::build(
            IpRestrictionConfig {
                allow: vec!["bad".into()],
                deny: vec![],
                status: Some(7000),
                message: None,
            },
            &BuildContext::new(PluginScope::Global),
        )
        .unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["allow[0]", "status"]);
        assert!(build(&[], &[]).is_err());
    }
}
