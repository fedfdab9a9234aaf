//! Checks that span fields: names that must be unique or must exist, addresses, CIDRs,
//! header names, and combinations of options. Route matchers (hosts, paths, methods
//! and header conditions) are checked when the router compiles them, plugin configs when
//! plugins are built.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use ipnet::IpNet;

use super::model::*;
use super::Diagnostic;

/// Returns every problem found; empty means the configuration is consistent.
pub fn check(config: &GatewayConfig) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_listeners(config, &mut out);
    check_proxy(&config.proxy, &mut out);
    check_upstreams(config, &mut out);
    check_routes(config, &mut out);
    check_plugin_lists(&config.plugins, "plugins", &mut out);
    check_consumers(config, &mut out);
    check_admin(config, &mut out);
    check_access_log(config, &mut out);
    super::acme::check(config, &mut out);
    out
}

/// The access log: a bounded buffer, a non-empty path, at least one field, each once.
fn check_access_log(config: &GatewayConfig, out: &mut Vec<Diagnostic>) {
    let Some(log) = &config.access_log else {
        return;
    };
    let max = super::defaults::MAX_ACCESS_LOG_BUFFER;
    if log.buffer == 0 || log.buffer > max {
        out.push(Diagnostic::new(
            "access_log.buffer",
            format!("must be between 1 and {max}"),
        ));
    }
    if log.path.as_deref().is_some_and(|p| p.trim().is_empty()) {
        out.push(Diagnostic::new(
            "access_log.path",
            "must not be empty (leave it out to log to standard output)",
        ));
    }
    if log.fields.is_empty() {
        out.push(Diagnostic::new(
            "access_log.fields",
            "name at least one field",
        ));
    }
    for (i, f) in log.fields.iter().enumerate() {
        if log.fields[..i].contains(f) {
            out.push(Diagnostic::new(
                format!("access_log.fields[{i}]"),
                "this field is already listed",
            ));
        }
    }
}

/// The admin listener: a valid address, loopback unless `allow_remote`, never the
/// address (or the port, when either side is a wildcard) of a proxy listener, and a
/// non-empty token if one is given.
fn check_admin(config: &GatewayConfig, out: &mut Vec<Diagnostic>) {
    let Some(admin) = &config.admin else { return };
    if admin.token.as_ref().is_some_and(|t| t.expose().is_empty()) {
        out.push(Diagnostic::new(
            "admin.token",
            "the token must not be empty",
        ));
    }
    let addr = match admin.listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            out.push(Diagnostic::new(
                "admin.listen",
                format!(
                    "invalid address {:?}; write IP:PORT such as 127.0.0.1:8001",
                    admin.listen
                ),
            ));
            return;
        }
    };
    if !addr.ip().is_loopback() && !admin.allow_remote {
        out.push(Diagnostic::new(
            "admin.listen",
            format!(
                "{addr} is not a loopback address; set admin.allow_remote: true (and a token) to expose the admin API"
            ),
        ));
    }
    for (i, l) in config.listeners.iter().enumerate() {
        let Ok(proxy) = l.address.parse::<SocketAddr>() else {
            continue;
        };
        let overlaps = proxy.port() == addr.port()
            && (proxy.ip() == addr.ip()
                || proxy.ip().is_unspecified()
                || addr.ip().is_unspecified());
        if overlaps {
            out.push(Diagnostic::new(
                "admin.listen",
                format!("{addr} is the address of the proxy listener listeners[{i}]; the admin API needs its own"),
            ));
        }
    }
}

fn check_listeners(config: &GatewayConfig, out: &mut Vec<Diagnostic>) {
    if config.server.threads == Some(0) {
        out.push(Diagnostic::new("server.threads", "must be at least 1"));
    }
    if config.listeners.is_empty() {
        out.push(Diagnostic::new(
            "listeners",
            "at least one listener is required",
        ));
    }
    let mut seen = HashMap::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let path = format!("listeners[{i}].address");
        match l.address.parse::<SocketAddr>() {
            Ok(addr) => {
                if let Some(first) = seen.insert(addr, i) {
                    out.push(Diagnostic::new(
                        path,
                        format!("address {addr} is already used by listeners[{first}]"),
                    ));
                }
            }
            Err(_) => out.push(Diagnostic::new(
                path,
                format!(
                    "invalid address {:?}; write IP:PORT such as 0.0.0.0:8080 or [::]:8080",
                    l.address
                ),
            )),
        }
        if l.h2c && l.tls.is_some() {
            out.push(Diagnostic::new(
                format!("listeners[{i}].h2c"),
                "h2c is HTTP/2 in clear text; an HTTPS listener offers HTTP/2 through ALPN (tls.http2)",
            ));
        }
        if l.tls
            .as_ref()
            .is_some_and(|t| t.client_hello_timeout.get().is_zero())
        {
            out.push(Diagnostic::new(
                format!("listeners[{i}].tls.client_hello_timeout"),
                "must be greater than 0",
            ));
        }
    }
}

/// Parses a CIDR range or a single address.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn check_header_name(name: &str, path: String, out: &mut Vec<Diagnostic>) {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        out.push(Diagnostic::new(
            path,
            format!("{name:?} is not a valid header name"),
        ));
    }
}

fn check_proxy(proxy: &ProxySettings, out: &mut Vec<Diagnostic>) {
    for (i, cidr) in proxy.trusted_ips.iter().enumerate() {
        if parse_cidr(cidr).is_none() {
            out.push(Diagnostic::new(
                format!("proxy.trusted_ips[{i}]"),
                format!("invalid IP address or CIDR range: {cidr:?}"),
            ));
        }
    }
    check_header_name(&proxy.real_ip_header, "proxy.real_ip_header".into(), out);
    check_header_name(
        &proxy.request_id_header,
        "proxy.request_id_header".into(),
        out,
    );
}

fn check_upstreams(config: &GatewayConfig, out: &mut Vec<Diagnostic>) {
    let mut names = HashMap::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        let base = format!("upstreams[{i}]");
        if u.name.is_empty() {
            out.push(Diagnostic::new(format!("{base}.name"), "must not be empty"));
        } else if let Some(first) = names.insert(u.name.as_str(), i) {
            out.push(Diagnostic::new(
                format!("{base}.name"),
                format!(
                    "duplicate upstream name {:?} (first used by upstreams[{first}])",
                    u.name
                ),
            ));
        }
        match (u.protocol, u.tls) {
            (super::UpstreamProtocol::H2c, true) => out.push(Diagnostic::new(
                format!("{base}.protocol"),
                "h2c is HTTP/2 in clear text; for HTTP/2 over TLS write `protocol: h2`",
            )),
            (super::UpstreamProtocol::H2, false) => out.push(Diagnostic::new(
                format!("{base}.protocol"),
                "h2 is HTTP/2 over TLS (ALPN h2) and needs `tls: true`; for HTTP/2 in clear text write `protocol: h2c`",
            )),
            _ => {}
        }
        if u.targets.is_empty() {
            out.push(Diagnostic::new(
                format!("{base}.targets"),
                "at least one target is required",
            ));
        } else if u.targets.iter().all(|t| t.weight == 0) {
            out.push(Diagnostic::new(
                format!("{base}.targets"),
                "every target has weight 0; at least one must take traffic",
            ));
        }
        match (u.balancer, u.hash_on) {
            (Balancer::ConsistentHash, HashOn::Header) if u.hash_on_header.is_none() => {
                out.push(Diagnostic::new(
                    format!("{base}.hash_on_header"),
                    "required when hash_on is header",
                ))
            }
            (Balancer::ConsistentHash, HashOn::Cookie) if u.hash_on_cookie.is_none() => {
                out.push(Diagnostic::new(
                    format!("{base}.hash_on_cookie"),
                    "required when hash_on is cookie",
                ))
            }
            _ => {}
        }
        super::resilience::check(u, &base, out);
        if u.connect_timeout.get().is_zero() {
            out.push(Diagnostic::new(
                format!("{base}.connect_timeout"),
                "must be greater than 0",
            ));
        }
        if u.read_timeout.get().is_zero() {
            out.push(Diagnostic::new(
                format!("{base}.read_timeout"),
                "must be greater than 0",
            ));
        }
        if u.write_timeout.get().is_zero() {
            out.push(Diagnostic::new(
                format!("{base}.write_timeout"),
                "must be greater than 0",
            ));
        }
        if u.websocket_idle_timeout.get().is_zero() {
            out.push(Diagnostic::new(
                format!("{base}.websocket_idle_timeout"),
                "must be greater than 0",
            ));
        }
        if let Some(hc) = &u.health_check {
            let hb = format!("{base}.health_check");
            if !hc.path.starts_with('/') {
                out.push(Diagnostic::new(format!("{hb}.path"), "must start with /"));
            }
            if hc.interval.get().is_zero() {
                out.push(Diagnostic::new(
                    format!("{hb}.interval"),
                    "must be greater than 0",
                ));
            }
            if hc.timeout.get().is_zero() {
                out.push(Diagnostic::new(
                    format!("{hb}.timeout"),
                    "must be greater than 0",
                ));
            }
            if hc.healthy_threshold == 0 {
                out.push(Diagnostic::new(
                    format!("{hb}.healthy_threshold"),
                    "must be at least 1",
                ));
            }
            if hc.unhealthy_threshold == 0 {
                out.push(Diagnostic::new(
                    format!("{hb}.unhealthy_threshold"),
                    "must be at least 1",
                ));
            }
            if hc.expected_status.is_empty() && hc.kind == HealthCheckKind::Http {
                out.push(Diagnostic::new(
                    format!("{hb}.expected_status"),
                    "at least one status is needed, or every probe fails",
                ));
            }
            for (j, s) in hc.expected_status.iter().enumerate() {
                if !(100..=599).contains(s) {
                    out.push(Diagnostic::new(
                        format!("{hb}.expected_status[{j}]"),
                        format!("{s} is not an HTTP status code"),
                    ));
                }
            }
        }
    }
}

fn check_routes(config: &GatewayConfig, out: &mut Vec<Diagnostic>) {
    let mut names = HashMap::new();
    // Looked up by every route, split and mirror: a set, not a scan (10,000 routes over
    // 5,000 upstreams were 50 million name comparisons).
    let upstreams: HashSet<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    for (i, r) in config.routes.iter().enumerate() {
        pingway_plugins::pace::point();
        let base = format!("routes[{i}]");
        if r.name.is_empty() {
            out.push(Diagnostic::new(format!("{base}.name"), "must not be empty"));
        } else if let Some(first) = names.insert(r.name.as_str(), i) {
            out.push(Diagnostic::new(
                format!("{base}.name"),
                format!(
                    "duplicate route name {:?} (first used by routes[{first}])",
                    r.name
                ),
            ));
        }
        if !upstreams.contains(r.upstream.as_str()) {
            out.push(Diagnostic::new(
                format!("{base}.upstream"),
                format!("no upstream named {:?} is defined", r.upstream),
            ));
        }
        if r.timeout.is_some_and(|t| t.get().is_zero()) {
            out.push(Diagnostic::new(
                format!("{base}.timeout"),
                "must be greater than 0",
            ));
        }
        if let Some(retries) = &r.retries {
            super::resilience::check_route(retries, &base, out);
        }
        check_split(&upstreams, r, &base, out);
        check_mirrors(&upstreams, r, &base, out);
        if r.protocols.is_empty() {
            out.push(Diagnostic::new(
                format!("{base}.protocols"),
                "must name at least one of http, https",
            ));
        }
        if ![426, 301, 302, 307, 308].contains(&r.https_redirect_status_code) {
            out.push(Diagnostic::new(
                format!("{base}.https_redirect_status_code"),
                "must be one of 426, 301, 302, 307, 308",
            ));
        }
        check_plugin_lists(&r.plugins, &format!("{base}.plugins"), out);
    }
}

/// Most shadow upstreams one route may copy its requests to.
pub const MAX_MIRRORS_PER_ROUTE: usize = 8;

/// A route's mirrors: known upstreams, each once, percentages from 0 to 100, an
/// in-flight bound from 1 to 10,000.
fn check_mirrors(
    upstreams: &HashSet<&str>,
    r: &RouteConfig,
    base: &str,
    out: &mut Vec<Diagnostic>,
) {
    if r.mirrors.len() > MAX_MIRRORS_PER_ROUTE {
        out.push(Diagnostic::new(
            format!("{base}.mirrors"),
            format!(
                "{} mirrors; at most {MAX_MIRRORS_PER_ROUTE} per route",
                r.mirrors.len()
            ),
        ));
    }
    let mut seen = HashMap::new();
    for (i, m) in r.mirrors.iter().enumerate() {
        let at = format!("{base}.mirrors[{i}]");
        if !upstreams.contains(m.upstream.as_str()) {
            out.push(Diagnostic::new(
                format!("{at}.upstream"),
                format!("no upstream named {:?} is defined", m.upstream),
            ));
        } else if let Some(first) = seen.insert(m.upstream.as_str(), i) {
            out.push(Diagnostic::new(
                format!("{at}.upstream"),
                format!("{:?} is already mirrored at mirrors[{first}]", m.upstream),
            ));
        }
        if !(0.0..=100.0).contains(&m.percentage) {
            out.push(Diagnostic::new(
                format!("{at}.percentage"),
                "must be between 0 and 100",
            ));
        }
        if !(1..=10_000).contains(&m.max_in_flight) {
            out.push(Diagnostic::new(
                format!("{at}.max_in_flight"),
                "must be between 1 and 10000",
            ));
        }
    }
}

/// A route's split: known upstreams, each once and not the route's own, weights that
/// add up to at most 100, and the key its `split_hash_on` names.
fn check_split(upstreams: &HashSet<&str>, r: &RouteConfig, base: &str, out: &mut Vec<Diagnostic>) {
    let mut seen = HashMap::new();
    let mut total = 0u32;
    for (i, s) in r.split.iter().enumerate() {
        let at = format!("{base}.split[{i}]");
        if !upstreams.contains(s.upstream.as_str()) {
            out.push(Diagnostic::new(
                format!("{at}.upstream"),
                format!("no upstream named {:?} is defined", s.upstream),
            ));
        } else if s.upstream == r.upstream {
            out.push(Diagnostic::new(
                format!("{at}.upstream"),
                "is the route's own upstream, which already serves what the split leaves",
            ));
        } else if let Some(first) = seen.insert(s.upstream.as_str(), i) {
            out.push(Diagnostic::new(
                format!("{at}.upstream"),
                format!("{:?} is already in the split at split[{first}]", s.upstream),
            ));
        }
        if s.weight > 100 {
            out.push(Diagnostic::new(
                format!("{at}.weight"),
                "must be between 0 and 100",
            ));
        }
        total = total.saturating_add(s.weight);
    }
    if total > 100 {
        out.push(Diagnostic::new(
            format!("{base}.split"),
            format!(
                "weights add up to {total}; at most 100 (the route's upstream serves the rest)"
            ),
        ));
    }
    match r.split_hash_on {
        SplitHashOn::Header
            if r.split_hash_on_header
                .as_deref()
                .is_none_or(|h| http::HeaderName::from_bytes(h.as_bytes()).is_err()) =>
        {
            out.push(Diagnostic::new(
                format!("{base}.split_hash_on_header"),
                "a valid header name is required with split_hash_on: header",
            ));
        }
        SplitHashOn::Cookie if r.split_hash_on_cookie.as_deref().is_none_or(str::is_empty) => {
            out.push(Diagnostic::new(
                format!("{base}.split_hash_on_cookie"),
                "a cookie name is required with split_hash_on: cookie",
            ));
        }
        _ => {}
    }
}

fn check_plugin_lists(plugins: &[PluginConfig], base: &str, out: &mut Vec<Diagnostic>) {
    let mut seen = HashMap::new();
    for (i, p) in plugins.iter().enumerate() {
        if let Some(first) = seen.insert(p.name.as_str(), i) {
            out.push(Diagnostic::new(
                format!("{base}[{i}].name"),
                format!(
                    "plugin {:?} is already configured here at {base}[{first}]",
                    p.name
                ),
            ));
        }
    }
}

fn check_consumers(config: &GatewayConfig, out: &mut Vec<Diagnostic>) {
    // Names, ids and credentials are checked when the consumer set is built
    // (`pingway_plugins::consumers::ConsumerSet::build`); here, only the plugin lists.
    for (i, c) in config.consumers.iter().enumerate() {
        check_plugin_lists(&c.plugins, &format!("consumers[{i}].plugins"), out);
    }
}
