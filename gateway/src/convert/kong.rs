//! Kong's declarative format (`_format_version: "3.0"`, decK state files) mapped onto
//! Pingway's sections, entity by entity. Field names and defaults are Kong's, from
//! `kong/db/schema/entities/*.lua`; what has no equivalent is reported at its place.

use std::collections::HashMap;

use crate::config::ConfigNode;
use crate::plugins::Registry;
use pingway_plugins::config::NodeValue;

use super::node::{
    boolean, entries, field, is_null, items, number, plain, s, str_field, strings, text, Map,
};
use super::output::{Certificate, Consumer, Credential, Output, PathCond, Plugin, Route, Upstream};
use super::report::Report;

/// Kong plugins that decide whether a request may pass. When one cannot be carried
/// over, the scope it guarded answers 503 instead of opening up (see
/// [`fail_closed`]).
pub(crate) const ACCESS_PLUGINS: &[&str] = &[
    "key-auth",
    "key-auth-enc",
    "basic-auth",
    "jwt",
    "jwt-signer",
    "acl",
    "ip-restriction",
    "bot-detection",
    "hmac-auth",
    "oauth2",
    "oauth2-introspection",
    "ldap-auth",
    "ldap-auth-advanced",
    "openid-connect",
    "mtls-auth",
    "session",
    "opa",
    "saml",
    "vault-auth",
    "request-validator",
];

/// The plugin that stands in for an access plugin that could not be converted.
pub(crate) fn fail_closed(name: &str, origin: &str) -> Plugin {
    let mut config = Map::new();
    config.put("status_code", plain(503));
    config.put(
        "message",
        s(&format!(
            "Kong plugin {name} could not be converted; this route is closed until it is replaced"
        )),
    );
    Plugin {
        name: "request-termination".into(),
        config: config.build(),
        origin: origin.to_string(),
        dropped: false,
        stand_in: true,
    }
}

/// Fields every entity may have that carry nothing over: ids used only as references,
/// timestamps, workspace ids.
const BOOKKEEPING: &[&str] = &["id", "created_at", "updated_at", "ws_id"];

/// What was learnt about a Kong service, for its routes.
#[derive(Debug, Clone)]
struct Service {
    upstream: String,
    path: Option<String>,
    host_header: Option<String>,
}

/// A plugin entry found in the file, with its scope.
struct Found<'a> {
    node: &'a ConfigNode,
    path: String,
    service: Option<usize>,
    route: Option<usize>,
    consumer: Option<usize>,
}

/// The conversion state.
pub(crate) struct Mapper<'a> {
    doc: &'a ConfigNode,
    registry: &'a Registry,
    pub(crate) report: Report,
    pub(crate) out: Output,
    /// `_format_version` is older than 3.0 (paths without `~` may be regexes).
    legacy_paths: bool,
    /// `_transform: false`: basic-auth passwords are Kong's hashes.
    hashed_passwords: bool,
    names: HashMap<String, usize>,
}

/// A reference to another entity: a name or id, as a string or `{id: ...}` / `{name: ...}`.
fn reference(node: &ConfigNode) -> Option<String> {
    text(node)
        .map(str::to_string)
        .or_else(|| str_field(node, "name").map(str::to_string))
        .or_else(|| str_field(node, "id").map(str::to_string))
}

/// The index of the entity that `r` names among `list` (by `name`, `username` or `id`).
fn find(list: &[(&ConfigNode, String)], r: &str, keys: &[&str]) -> Option<usize> {
    list.iter()
        .position(|(n, _)| keys.iter().any(|k| str_field(n, k) == Some(r)))
}

impl<'a> Mapper<'a> {
    pub(crate) fn new(doc: &'a ConfigNode, registry: &'a Registry) -> Self {
        Mapper {
            doc,
            registry,
            report: Report::default(),
            out: Output::default(),
            legacy_paths: false,
            hashed_passwords: false,
            names: HashMap::new(),
        }
    }

    fn unsupported(&mut self, path: &str, message: impl Into<String>) {
        self.report.unsupported(self.doc, path, message);
    }

    fn note(&mut self, path: &str, message: impl Into<String>) {
        self.report.note(self.doc, path, message);
    }

    /// A name not used yet in `kind` (routes and upstreams have unique names).
    fn unique(&mut self, kind: &str, wanted: &str) -> String {
        let mut name = wanted.to_string();
        let mut n = 1;
        while self.names.contains_key(&format!("{kind}/{name}")) {
            n += 1;
            name = format!("{wanted}-{n}");
        }
        self.names.insert(format!("{kind}/{name}"), 0);
        name
    }

    /// Reports every field of `node` that is not in `known` (bookkeeping fields pass
    /// silently, tags are counted).
    fn check_fields(&mut self, node: &ConfigNode, path: &str, kind: &str, known: &[&str]) {
        for (k, v) in entries(node) {
            let key = k.name.as_str();
            if key == "tags" {
                self.report.tags += items(v).len();
            } else if !known.contains(&key) && !BOOKKEEPING.contains(&key) && !is_null(v) {
                self.unsupported(
                    &format!("{path}.{key}"),
                    format!("Kong {kind} field `{key}` has no Pingway equivalent; left out"),
                );
            }
        }
    }

    /// Maps the whole document.
    pub(crate) fn map(mut self) -> (Output, Report) {
        let doc = self.doc;
        let version = str_field(doc, "_format_version").unwrap_or("");
        if version != "3.0" {
            self.legacy_paths = true;
            self.note(
                "_format_version",
                format!("format {version:?}: paths are read as Kong 3.0 does after its migration (a path with regex characters is a regex)"),
            );
        }
        self.hashed_passwords = field(doc, "_transform").and_then(boolean) == Some(false);
        for (k, v) in entries(doc) {
            let key = k.name.as_str();
            match key {
                "_format_version"
                | "_transform"
                | "_comment"
                | "services"
                | "routes"
                | "upstreams"
                | "targets"
                | "consumers"
                | "plugins"
                | "certificates"
                | "snis"
                | "keyauth_credentials"
                | "basicauth_credentials"
                | "jwt_secrets"
                | "acls" => {}
                "_info" | "_workspace" | "_konnect" => self.unsupported(
                    key,
                    format!("decK's `{key}` has no Pingway equivalent; left out"),
                ),
                "ca_certificates" => {
                    for (i, _) in items(v).iter().enumerate() {
                        self.unsupported(
                            &format!("ca_certificates[{i}]"),
                            "CA certificates are not carried over: Pingway reads an upstream's CA bundle from a file (`upstreams[].ca_file`)",
                        );
                    }
                }
                _ if is_null(v) || items(v).is_empty() && !matches!(v.value, NodeValue::Map(_)) => {
                }
                _ => self.unsupported(
                    key,
                    format!("Kong's `{key}` has no Pingway equivalent; left out"),
                ),
            }
        }

        let services: Vec<(&ConfigNode, String)> = items_with_paths(doc, "services");
        let upstreams: Vec<(&ConfigNode, String)> = items_with_paths(doc, "upstreams");
        let consumers: Vec<(&ConfigNode, String)> = items_with_paths(doc, "consumers");

        let mut used_upstreams = vec![false; upstreams.len()];
        let mut service_info: Vec<Option<Service>> = Vec::new();
        for (node, path) in &services {
            let info = self.service(node, path, &upstreams, &mut used_upstreams);
            service_info.push(info);
        }
        for (i, used) in used_upstreams.iter().enumerate() {
            if !used {
                let path = upstreams[i].1.clone();
                self.note(&path, "no service uses this upstream; left out");
            }
        }

        // Routes: nested under services, then top-level ones that name their service.
        let mut route_nodes: Vec<(&ConfigNode, String)> = Vec::new();
        for (si, (node, path)) in services.iter().enumerate() {
            for (ri, r) in items(node.get("routes").unwrap_or(&EMPTY))
                .iter()
                .enumerate()
            {
                let rpath = format!("{path}.routes[{ri}]");
                route_nodes.push((r, rpath.clone()));
                let svc = service_info[si].clone();
                let svc_name = str_field(node, "name")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("service-{si}"));
                self.route(
                    r,
                    &rpath,
                    svc.as_ref(),
                    Some(si),
                    &format!("{svc_name}-{ri}"),
                );
            }
        }
        for (ri, (r, rpath)) in items_with_paths(doc, "routes").into_iter().enumerate() {
            route_nodes.push((r, rpath.clone()));
            let si = field(r, "service")
                .and_then(reference)
                .and_then(|name| find(&services, &name, &["name", "id"]));
            match si {
                Some(si) => {
                    let svc = service_info[si].clone();
                    self.route(r, &rpath, svc.as_ref(), Some(si), &format!("route-{ri}"));
                }
                None => self.unsupported(
                    &rpath,
                    "route without a service (or naming one the file does not have): a Pingway route needs an upstream; left out",
                ),
            }
        }

        // Consumers and their credentials.
        for (node, path) in &consumers {
            self.consumer(node, path);
        }
        for kind in [
            "keyauth_credentials",
            "basicauth_credentials",
            "jwt_secrets",
            "acls",
        ] {
            for (cred, path) in items_with_paths(doc, kind) {
                let ci = field(cred, "consumer")
                    .and_then(reference)
                    .and_then(|r| find(&consumers, &r, &["username", "id", "custom_id"]));
                match ci {
                    Some(ci) if !self.out.consumers[ci].dropped => {
                        if let Some(c) = self.credential(kind, cred, &path) {
                            self.out.consumers[ci].credentials.push(c);
                        }
                    }
                    _ => self.unsupported(&path, "credential of no consumer in the file; left out"),
                }
            }
        }

        self.certificates(doc);
        self.plugins(&services, &route_nodes, &consumers);

        // Kong tries regex routes by `regex_priority`; Pingway tries regexes in file
        // order, so higher priorities are written first.
        self.out
            .routes
            .sort_by_key(|r| std::cmp::Reverse(r.regex_priority));
        (self.out, self.report)
    }

    fn service(
        &mut self,
        node: &ConfigNode,
        path: &str,
        upstreams: &[(&ConfigNode, String)],
        used: &mut [bool],
    ) -> Option<Service> {
        self.check_fields(
            node,
            path,
            "service",
            &[
                "name",
                "url",
                "protocol",
                "host",
                "port",
                "path",
                "retries",
                "connect_timeout",
                "read_timeout",
                "write_timeout",
                "enabled",
                "routes",
                "plugins",
                "tls_verify",
            ],
        );
        let name = str_field(node, "name")
            .map(str::to_string)
            .unwrap_or_else(|| format!("service-{}", self.out.upstreams.len()));
        let mut protocol = str_field(node, "protocol").unwrap_or("http").to_string();
        let mut host = str_field(node, "host").map(str::to_string);
        let mut port = field(node, "port").and_then(number).map(|p| p as u16);
        let mut spath = str_field(node, "path").map(str::to_string);
        if let Some(url) = str_field(node, "url") {
            match parse_url(url) {
                Some(u) => {
                    protocol = u.scheme;
                    host = Some(u.host);
                    port = u.port;
                    spath = u.path;
                }
                None => {
                    self.unsupported(
                        &format!("{path}.url"),
                        format!("cannot read the URL {url:?}; service left out"),
                    );
                    return None;
                }
            }
        }
        if field(node, "enabled").and_then(boolean) == Some(false) {
            self.unsupported(
                &format!("{path}.enabled"),
                "service disabled in Kong, which serves none of its routes; it and its routes are left out",
            );
            return None;
        }
        let (tls, h2c) = match protocol.as_str() {
            "http" => (false, false),
            "https" => (true, false),
            "grpc" => (false, true),
            other => {
                self.unsupported(
                    path,
                    format!("protocol {other:?} is not carried over (Pingway proxies HTTP, HTTPS and gRPC in clear text); service and its routes left out"),
                );
                return None;
            }
        };
        let Some(host) = host else {
            self.unsupported(path, "service without a host; left out");
            return None;
        };
        let port = port.unwrap_or(if protocol == "https" { 443 } else { 80 });
        let ms = |key: &str| {
            field(node, key)
                .and_then(number)
                .map_or(60_000, |v| v.max(1.0) as u64)
        };
        let tls_verify = if tls {
            field(node, "tls_verify").and_then(boolean)
        } else {
            None
        };
        let upstream_name = self.unique("upstream", &name);
        let mut up = Upstream {
            name: upstream_name.clone(),
            targets: Vec::new(),
            pool: Vec::new(),
            connect_timeout_ms: ms("connect_timeout"),
            read_timeout_ms: ms("read_timeout"),
            write_timeout_ms: ms("write_timeout"),
            retries: field(node, "retries")
                .and_then(number)
                .map_or(5, |v| v as u32),
            tls,
            tls_verify,
            h2c,
            origin: path.to_string(),
            dropped: false,
        };
        let mut host_header = None;
        match upstreams
            .iter()
            .position(|(u, _)| str_field(u, "name") == Some(host.as_str()))
        {
            Some(ui) => {
                used[ui] = true;
                let (unode, upath) = &upstreams[ui];
                up.targets = self.targets(unode, upath);
                up.pool = self.pool(unode, upath);
                host_header = str_field(unode, "host_header").map(str::to_string);
            }
            None => {
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host
                };
                up.targets = vec![(format!("{host}:{port}"), 100)];
            }
        }
        let spath = spath.filter(|p| p != "/" && !p.is_empty());
        self.out.upstreams.push(up);
        Some(Service {
            upstream: upstream_name,
            path: spath,
            host_header,
        })
    }

    /// A Kong upstream's targets, nested or top-level (`targets:` with `upstream:`).
    fn targets(&mut self, unode: &ConfigNode, upath: &str) -> Vec<(String, u32)> {
        let mut found: Vec<(&ConfigNode, String)> = items(unode.get("targets").unwrap_or(&EMPTY))
            .iter()
            .enumerate()
            .map(|(i, t)| (t, format!("{upath}.targets[{i}]")))
            .collect();
        let uname = str_field(unode, "name");
        let uid = str_field(unode, "id");
        for (t, p) in items_with_paths(self.doc, "targets") {
            let r = field(t, "upstream").and_then(reference);
            if r.is_some() && (r.as_deref() == uname || r.as_deref() == uid) {
                found.push((t, p));
            }
        }
        let mut out = Vec::new();
        for (t, p) in found {
            self.check_fields(t, &p, "target", &["target", "weight", "upstream"]);
            let Some(target) = str_field(t, "target") else {
                self.unsupported(&p, "target without `target`; left out");
                continue;
            };
            let weight = field(t, "weight")
                .and_then(number)
                .map_or(100, |w| w as u32);
            out.push((with_default_port(target), weight));
        }
        out
    }

    /// The pool settings of a Kong upstream: balancer, hashing, active health checks.
    fn pool(&mut self, u: &ConfigNode, path: &str) -> Vec<(String, ConfigNode)> {
        self.check_fields(
            u,
            path,
            "upstream",
            &[
                "name",
                "algorithm",
                "hash_on",
                "hash_on_header",
                "hash_on_cookie",
                "hash_fallback",
                "hash_on_cookie_path",
                "slots",
                "healthchecks",
                "host_header",
                "targets",
                "use_srv_name",
            ],
        );
        let mut pool = Vec::new();
        let algorithm = str_field(u, "algorithm").unwrap_or("round-robin");
        let hash_on = str_field(u, "hash_on").unwrap_or("none");
        match algorithm {
            "round-robin" => {}
            "least-connections" => pool.push(("balancer".into(), s("least_connections"))),
            "consistent-hashing" => match hash_on {
                "ip" | "path" => {
                    pool.push(("balancer".into(), s("consistent_hash")));
                    pool.push(("hash_on".into(), s(hash_on)));
                }
                "header" | "cookie" => {
                    let key = format!("hash_on_{hash_on}");
                    if let Some(v) = str_field(u, &key) {
                        pool.push(("balancer".into(), s("consistent_hash")));
                        pool.push(("hash_on".into(), s(hash_on)));
                        pool.push((key, s(v)));
                    }
                    if hash_on == "cookie" {
                        self.note(
                            &format!("{path}.hash_on_cookie"),
                            "Pingway hashes on the cookie when the client sends it; it does not set one as Kong does",
                        );
                    }
                }
                other => self.unsupported(
                    &format!("{path}.hash_on"),
                    format!("hashing on {other:?} has no Pingway equivalent (ip, header, cookie, path); round-robin used"),
                ),
            },
            other => self.unsupported(
                &format!("{path}.algorithm"),
                format!("algorithm {other:?} has no Pingway equivalent; round-robin used"),
            ),
        }
        if str_field(u, "hash_fallback").is_some_and(|f| f != "none") {
            self.unsupported(
                &format!("{path}.hash_fallback"),
                "Pingway has no hash fallback: a request without the header or cookie is hashed on its client IP",
            );
        }
        if field(u, "use_srv_name").and_then(boolean) == Some(true) {
            self.unsupported(
                &format!("{path}.use_srv_name"),
                "SRV names are not resolved by Pingway",
            );
        }
        if let Some(hc) = field(u, "healthchecks") {
            if let Some(check) = self.health_check(hc, &format!("{path}.healthchecks")) {
                pool.push(("health_check".into(), check));
            }
        }
        pool
    }

    /// Kong's active health checks as Pingway's `health_check`; passive ones reported.
    fn health_check(&mut self, hc: &ConfigNode, path: &str) -> Option<ConfigNode> {
        let num = |n: Option<&ConfigNode>, k: &str| {
            n.and_then(|n| field(n, k)).and_then(number).unwrap_or(0.0)
        };
        if let Some(passive) = field(hc, "passive") {
            let unhealthy = field(passive, "unhealthy");
            if ["http_failures", "tcp_failures", "timeouts"]
                .iter()
                .any(|k| num(unhealthy, k) > 0.0)
            {
                self.unsupported(
                    &format!("{path}.passive"),
                    "passive health checks are not carried over (Pingway's closest is `outlier_detection`, which ejects for a time rather than until an active check succeeds)",
                );
            }
        }
        if field(hc, "threshold")
            .and_then(number)
            .is_some_and(|t| t > 0.0)
        {
            self.unsupported(
                &format!("{path}.threshold"),
                "Pingway has no upstream health threshold",
            );
        }
        let active = field(hc, "active")?;
        let healthy = field(active, "healthy");
        let unhealthy = field(active, "unhealthy");
        let (hi, ui) = (num(healthy, "interval"), num(unhealthy, "interval"));
        if hi <= 0.0 && ui <= 0.0 {
            return None;
        }
        let apath = format!("{path}.active");
        let kind = str_field(active, "type").unwrap_or("http");
        if !matches!(kind, "http" | "tcp") {
            self.unsupported(
                &format!("{apath}.type"),
                format!("active {kind} checks are not carried over (Pingway probes with http or tcp); no health check"),
            );
            return None;
        }
        if hi > 0.0 && ui > 0.0 && hi != ui {
            self.note(
                &format!("{apath}.unhealthy.interval"),
                "Pingway probes at one interval; healthy.interval is used",
            );
        }
        let interval = if hi > 0.0 { hi } else { ui };
        let mut m = Map::new();
        m.put("type", s(kind));
        if let Some(p) = str_field(active, "http_path") {
            m.put("path", s(p));
        }
        m.put("interval", super::node::millis((interval * 1000.0) as u64));
        if let Some(t) = field(active, "timeout").and_then(number) {
            m.put("timeout", super::node::millis((t * 1000.0).max(1.0) as u64));
        }
        if let Some(statuses) = healthy.and_then(|h| field(h, "http_statuses")) {
            m.put(
                "expected_status",
                super::node::seq(
                    items(statuses)
                        .iter()
                        .filter_map(number)
                        .map(|n| plain(n as u16))
                        .collect(),
                ),
            );
        }
        let successes = num(healthy, "successes");
        if successes > 0.0 {
            m.put("healthy_threshold", plain(successes as u32));
        }
        let failures: Vec<f64> = ["http_failures", "tcp_failures", "timeouts"]
            .iter()
            .map(|k| num(unhealthy, k))
            .filter(|f| *f > 0.0)
            .collect();
        if let Some(max) = failures.iter().cloned().reduce(f64::max) {
            m.put("unhealthy_threshold", plain(max as u32));
            if failures.iter().any(|f| *f != max) {
                self.note(
                    &format!("{apath}.unhealthy"),
                    "Pingway counts every failed probe against one threshold; the largest of http_failures, tcp_failures and timeouts is used",
                );
            }
        }
        if active
            .get("headers")
            .is_some_and(|h| !is_null(h) && !entries(h).is_empty())
        {
            self.unsupported(
                &format!("{apath}.headers"),
                "probe headers are not carried over",
            );
        }
        Some(m.build())
    }

    fn route(
        &mut self,
        r: &ConfigNode,
        path: &str,
        svc: Option<&Service>,
        service_index: Option<usize>,
        fallback_name: &str,
    ) {
        self.check_fields(
            r,
            path,
            "route",
            &[
                "name",
                "protocols",
                "methods",
                "hosts",
                "paths",
                "headers",
                "https_redirect_status_code",
                "regex_priority",
                "strip_path",
                "path_handling",
                "preserve_host",
                "request_buffering",
                "response_buffering",
                "snis",
                "service",
                "plugins",
            ],
        );
        let Some(svc) = svc else {
            self.unsupported(path, "its service could not be converted; route left out");
            return;
        };
        if field(r, "expression").is_some() {
            self.unsupported(
                path,
                "routes of Kong's expressions router have no Pingway equivalent; route left out",
            );
            return;
        }
        let protocols = field(r, "protocols")
            .map(strings)
            .unwrap_or_else(|| vec!["http".into(), "https".into()]);
        if let Some(p) = protocols
            .iter()
            .find(|p| !matches!(p.as_str(), "http" | "https"))
        {
            self.unsupported(
                &format!("{path}.protocols"),
                format!("protocol {p:?} routes are not carried over; route left out"),
            );
            return;
        }
        let protocols = (protocols.len() == 1).then_some(protocols);
        if let Some(snis) = field(r, "snis") {
            if !items(snis).is_empty() {
                self.unsupported(
                    &format!("{path}.snis"),
                    "Pingway routes on the Host header, not on the TLS SNI: the condition is left out",
                );
            }
        }
        let mut hosts = Vec::new();
        let host_list = field(r, "hosts").map(strings).unwrap_or_default();
        for (i, h) in host_list.iter().enumerate() {
            let hpath = format!("{path}.hosts[{i}]");
            let (name, port) = match h.rsplit_once(':') {
                Some((n, p)) if !h.ends_with(']') && p.parse::<u16>().is_ok() => (n, true),
                _ => (h.as_str(), false),
            };
            if port {
                self.unsupported(
                    &hpath,
                    "Pingway ignores the request's port when matching hosts: the port is left out",
                );
            }
            if name.ends_with('*') && !name.ends_with(".*") {
                self.unsupported(
                    &hpath,
                    "a wildcard must be a whole label (example.*); left out",
                );
                continue;
            }
            hosts.push(name.to_string());
        }
        if !host_list.is_empty() && hosts.is_empty() {
            self.unsupported(path, "none of its hosts could be carried over; route left out rather than matching every host");
            return;
        }
        let mut paths = Vec::new();
        let path_list = field(r, "paths").map(strings).unwrap_or_default();
        for (i, p) in path_list.iter().enumerate() {
            let ppath = format!("{path}.paths[{i}]");
            let regex = p
                .strip_prefix('~')
                .map(str::to_string)
                .or_else(|| (self.legacy_paths && looks_like_regex(p)).then(|| p.clone()));
            match regex {
                Some(re) => match regex::Regex::new(&re) {
                    Ok(_) => paths.push(PathCond::Regex(re)),
                    Err(e) => self.unsupported(
                        &ppath,
                        format!("the regex does not compile in Rust's regex syntax (no look-around, no back-references): {}; left out", first_line(&e.to_string())),
                    ),
                },
                None if p.contains(['?', '#', ' ']) || !p.starts_with('/') => {
                    self.unsupported(&ppath, "Pingway paths start with / and cannot contain ?, # or spaces; left out")
                }
                None => {
                    if p.len() > 1 && p.ends_with('/') {
                        self.note(&ppath, format!("Kong does not match {} with this path; Pingway's prefix does (a trailing slash makes no difference)", p.trim_end_matches('/')));
                    }
                    paths.push(PathCond::Prefix(p.clone()));
                }
            }
        }
        if !path_list.is_empty() && paths.is_empty() {
            self.unsupported(path, "none of its paths could be carried over; route left out rather than matching every path");
            return;
        }
        let mut headers = Vec::new();
        for (k, v) in entries(r.get("headers").unwrap_or(&EMPTY)) {
            let values = strings(v);
            let hpath = format!("{path}.headers.{}", k.name);
            let pattern = match values.as_slice() {
                [one] if one.starts_with("~*") => format!("(?i){}", &one[2..]),
                _ => format!(
                    "(?i)^(?:{})$",
                    values
                        .iter()
                        .map(|v| regex::escape(v))
                        .collect::<Vec<_>>()
                        .join("|")
                ),
            };
            match regex::Regex::new(&pattern) {
                Ok(_) => headers.push((k.name.to_lowercase(), pattern)),
                Err(_) => {
                    self.unsupported(
                        &hpath,
                        "the header regex does not compile in Rust's regex syntax; route left out",
                    );
                    return;
                }
            }
        }
        let strip = field(r, "strip_path").and_then(boolean).unwrap_or(true);
        let path_rewrite = svc.path.as_ref().map(|base| {
            let base = base.trim_end_matches('/');
            // `^/$` turns `/` into the base path itself, the empty match at `^` puts
            // the base in front of any other path: Kong's v0 joining.
            ("^/$|^".to_string(), base.replace('$', "$$"))
        });
        if path_rewrite.is_some() && str_field(r, "path_handling") == Some("v1") {
            self.unsupported(
                &format!("{path}.path_handling"),
                "path_handling v1 is not carried over: the service path is joined as v0 does (with a / between)",
            );
        }
        let regex_priority = field(r, "regex_priority").and_then(number).unwrap_or(0.0) as i64;
        if regex_priority != 0 {
            self.note(
                &format!("{path}.regex_priority"),
                "routes are written in descending regex_priority: Pingway tries regex paths in file order",
            );
        }
        let wanted = str_field(r, "name").unwrap_or(fallback_name).to_string();
        let name = self.unique("route", &wanted);
        self.out.routes.push(Route {
            name,
            hosts,
            paths,
            methods: field(r, "methods").map(strings).unwrap_or_default(),
            headers,
            upstream: svc.upstream.clone(),
            strip_prefix: strip,
            preserve_host: field(r, "preserve_host").and_then(boolean).unwrap_or(false),
            protocols,
            https_redirect_status_code: field(r, "https_redirect_status_code")
                .and_then(number)
                .map(|n| n as u16)
                .filter(|c| *c != 426),
            path_rewrite,
            host_header: svc
                .host_header
                .clone()
                .filter(|_| !field(r, "preserve_host").and_then(boolean).unwrap_or(false)),
            plugins: Vec::new(),
            origin: path.to_string(),
            service: service_index,
            regex_priority,
            dropped: false,
        });
    }

    fn consumer(&mut self, node: &ConfigNode, path: &str) {
        let registered: Vec<String> = self
            .registry
            .credential_kinds()
            .map(|k| k.field().to_string())
            .collect();
        let mut known = vec![
            "username",
            "custom_id",
            "plugins",
            "keyauth_credentials",
            "basicauth_credentials",
            "jwt_secrets",
            "acls",
        ];
        known.extend(registered.iter().map(String::as_str));
        self.check_fields(node, path, "consumer", &known);
        let mut c = Consumer {
            id: str_field(node, "id").map(str::to_string),
            username: str_field(node, "username").map(str::to_string),
            custom_id: str_field(node, "custom_id").map(str::to_string),
            credentials: Vec::new(),
            plugins: Vec::new(),
            origin: path.to_string(),
            dropped: false,
        };
        for kind in [
            "keyauth_credentials",
            "basicauth_credentials",
            "jwt_secrets",
            "acls",
        ] {
            for (i, cred) in items(node.get(kind).unwrap_or(&EMPTY)).iter().enumerate() {
                if let Some(k) = self.credential(kind, cred, &format!("{path}.{kind}[{i}]")) {
                    c.credentials.push(k);
                }
            }
        }
        for kind in &registered {
            for (i, cred) in items(node.get(kind).unwrap_or(&EMPTY)).iter().enumerate() {
                c.credentials.push(Credential {
                    field: kind.clone(),
                    value: cred.clone(),
                    origin: format!("{path}.{kind}[{i}]"),
                    dropped: false,
                });
            }
        }
        self.out.consumers.push(c);
    }

    fn credential(&mut self, kind: &str, cred: &ConfigNode, path: &str) -> Option<Credential> {
        let fields: &[&str] = match kind {
            "keyauth_credentials" => &["key"],
            "basicauth_credentials" => &["username", "password"],
            "jwt_secrets" => &["key", "algorithm", "secret", "rsa_public_key"],
            _ => &["group"],
        };
        let mut known = fields.to_vec();
        known.push("consumer");
        self.check_fields(cred, path, "credential", &known);
        if kind == "basicauth_credentials" && self.hashed_passwords {
            self.unsupported(
                &format!("{path}.password"),
                "with `_transform: false` the password is Kong's salted SHA-1 digest, which Pingway cannot check; credential left out (set the plain password or a bcrypt/argon2 hash)",
            );
            return None;
        }
        let mut m = Map::new();
        if let Some(id) = str_field(cred, "id") {
            m.put("id", s(id));
        }
        for f in fields {
            if let Some(v) = field(cred, f) {
                m.put(f, v.clone());
            }
        }
        Some(Credential {
            field: kind.to_string(),
            value: m.build(),
            origin: path.to_string(),
            dropped: false,
        })
    }

    fn certificates(&mut self, doc: &ConfigNode) {
        let certs = items_with_paths(doc, "certificates");
        let mut snis: Vec<Vec<String>> = vec![Vec::new(); certs.len()];
        for (i, (c, path)) in certs.iter().enumerate() {
            self.check_fields(c, path, "certificate", &["cert", "key", "snis"]);
            for (j, sni) in items(c.get("snis").unwrap_or(&EMPTY)).iter().enumerate() {
                match text(sni).or_else(|| str_field(sni, "name")) {
                    Some(n) => snis[i].push(n.to_string()),
                    None => self
                        .unsupported(&format!("{path}.snis[{j}]"), "SNI without a name; left out"),
                }
            }
        }
        for (sni, path) in items_with_paths(doc, "snis") {
            let ci = field(sni, "certificate").and_then(reference).and_then(|r| {
                certs
                    .iter()
                    .position(|(c, _)| str_field(c, "id") == Some(r.as_str()))
            });
            match (ci, str_field(sni, "name")) {
                (Some(ci), Some(name)) => snis[ci].push(name.to_string()),
                _ => self.unsupported(&path, "SNI of no certificate in the file; left out"),
            }
        }
        for (i, (c, path)) in certs.iter().enumerate() {
            for alt in ["cert_alt", "key_alt"] {
                if field(c, alt).is_some() {
                    self.unsupported(
                        &format!("{path}.{alt}"),
                        "Pingway serves one certificate per entry: the alternate (ECDSA/RSA) certificate is left out",
                    );
                }
            }
            match (str_field(c, "cert"), str_field(c, "key")) {
                (Some(cert), Some(key)) => self.out.certificates.push(Certificate {
                    cert: cert.to_string(),
                    key: key.to_string(),
                    snis: std::mem::take(&mut snis[i]),
                    origin: path.clone(),
                    dropped: false,
                }),
                _ => self.unsupported(path, "certificate without `cert` and `key`; left out"),
            }
        }
    }

    /// Collects plugin entries from every level, then places each in Pingway's scopes:
    /// global, route (a service's plugins go to each of its routes that does not have
    /// its own of the same name, as Kong's precedence Route > Service does), consumer.
    fn plugins(
        &mut self,
        services: &[(&'a ConfigNode, String)],
        routes: &[(&'a ConfigNode, String)],
        consumers: &[(&'a ConfigNode, String)],
    ) {
        let doc = self.doc;
        let mut found: Vec<Found<'_>> = Vec::new();
        let nested = |node: &'a ConfigNode, path: &str| -> Vec<(&'a ConfigNode, String)> {
            items(node.get("plugins").unwrap_or(&EMPTY))
                .iter()
                .enumerate()
                .map(|(i, p)| (p, format!("{path}.plugins[{i}]")))
                .collect()
        };
        for (p, path) in nested(doc, "")
            .into_iter()
            .map(|(p, path)| (p, path.trim_start_matches('.').to_string()))
        {
            found.push(Found {
                node: p,
                path,
                service: None,
                route: None,
                consumer: None,
            });
        }
        for (si, (s, spath)) in services.iter().enumerate() {
            for (p, path) in nested(s, spath) {
                found.push(Found {
                    node: p,
                    path,
                    service: Some(si),
                    route: None,
                    consumer: None,
                });
            }
        }
        for (ri, (r, rpath)) in routes.iter().enumerate() {
            for (p, path) in nested(r, rpath) {
                found.push(Found {
                    node: p,
                    path,
                    service: None,
                    route: Some(ri),
                    consumer: None,
                });
            }
        }
        for (ci, (c, cpath)) in consumers.iter().enumerate() {
            for (p, path) in nested(c, cpath) {
                found.push(Found {
                    node: p,
                    path,
                    service: None,
                    route: None,
                    consumer: Some(ci),
                });
            }
        }
        // Foreign keys on any entry (top-level ones use them to say where they apply).
        for f in &mut found {
            if let Some(r) = field(f.node, "service").and_then(reference) {
                f.service = find(services, &r, &["name", "id"]).or(f.service);
            }
            if let Some(r) = field(f.node, "route").and_then(reference) {
                f.route = find(routes, &r, &["name", "id"]).or(f.route);
            }
            if let Some(r) = field(f.node, "consumer").and_then(reference) {
                f.consumer = find(consumers, &r, &["username", "id", "custom_id"]).or(f.consumer);
            }
        }
        let mut service_plugins: Vec<(usize, Plugin)> = Vec::new();
        for f in found {
            let Some(plugin) = self.plugin(f.node, &f.path) else {
                continue;
            };
            let scopes = [f.service.is_some(), f.route.is_some(), f.consumer.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            if f.consumer.is_some() && scopes > 1 {
                self.unsupported(
                    &f.path,
                    "a plugin for one consumer on one route or service has no Pingway equivalent (consumer plugins apply on every route); left out",
                );
                continue;
            }
            if let Some(ci) = f.consumer {
                self.out.consumers[ci].plugins.push(plugin);
            } else if let Some(ri) = f.route {
                // Kong's route plugin wins over the service's; Pingway's route list
                // holds both scopes, so the route's own goes first.
                let origin = &routes[ri].1;
                // (No route: it was left out, and reported.)
                if let Some(route) = self.out.routes.iter_mut().find(|r| &r.origin == origin) {
                    route.plugins.push(plugin);
                }
            } else if let Some(si) = f.service {
                service_plugins.push((si, plugin));
            } else {
                self.out.plugins.push(plugin);
            }
        }
        for (si, plugin) in service_plugins {
            for route in self.out.routes.iter_mut().filter(|r| r.service == Some(si)) {
                // A stand-in closes the route even where the route has its own
                // request-termination (which may only trigger on a header).
                if plugin.stand_in || !route.plugins.iter().any(|p| p.name == plugin.name) {
                    route.plugins.push(plugin.clone());
                }
            }
        }
        // Likewise a global stand-in, which a route's own request-termination would
        // otherwise replace.
        let global: Vec<Plugin> = self
            .out
            .plugins
            .iter()
            .filter(|p| p.stand_in)
            .cloned()
            .collect();
        for stand_in in global {
            for route in &mut self.out.routes {
                if route.plugins.iter().any(|p| p.name == stand_in.name) {
                    route.plugins.push(stand_in.clone());
                }
            }
        }
    }

    /// One plugin entry, or `None` when it is left out (reported).
    fn plugin(&mut self, node: &ConfigNode, path: &str) -> Option<Plugin> {
        self.check_fields(
            node,
            path,
            "plugin",
            &[
                "name",
                "config",
                "enabled",
                "protocols",
                "instance_name",
                "service",
                "route",
                "consumer",
            ],
        );
        let Some(name) = str_field(node, "name") else {
            self.unsupported(path, "plugin without a name; left out");
            return None;
        };
        if field(node, "enabled").and_then(boolean) == Some(false) {
            self.note(
                &format!("{path}.enabled"),
                "disabled in Kong, which then ignores it; left out (a disabled Pingway entry would switch off a wider one of the same name)",
            );
            return None;
        }
        if let Some(protocols) = field(node, "protocols") {
            let p = strings(protocols);
            if !(p.iter().any(|x| x == "http") && p.iter().any(|x| x == "https")) {
                self.unsupported(
                    &format!("{path}.protocols"),
                    "Pingway runs a plugin for both http and https requests",
                );
            }
        }
        if self.registry.get(name).is_none() {
            if ACCESS_PLUGINS.contains(&name) {
                self.unsupported(
                    path,
                    format!("Pingway has no {name} plugin; where it applied, requests are answered 503 (request-termination) until you replace it"),
                );
                return Some(fail_closed(name, path));
            }
            self.unsupported(path, format!("Pingway has no {name} plugin; left out"));
            return None;
        }
        let mut config = field(node, "config").cloned().unwrap_or_default();
        self.report.null_fields += drop_nulls(&mut config);
        Some(Plugin {
            name: name.to_string(),
            config,
            origin: path.to_string(),
            dropped: false,
            stand_in: false,
        })
    }
}

static EMPTY: std::sync::LazyLock<ConfigNode> = std::sync::LazyLock::new(ConfigNode::default);

/// The items of the top-level list `key`, with their paths.
fn items_with_paths<'a>(doc: &'a ConfigNode, key: &str) -> Vec<(&'a ConfigNode, String)> {
    items(doc.get(key).unwrap_or(&EMPTY))
        .iter()
        .enumerate()
        .map(|(i, n)| (n, format!("{key}[{i}]")))
        .collect()
}

/// Removes null fields from mappings, recursively; returns how many.
fn drop_nulls(node: &mut ConfigNode) -> usize {
    let mut n = 0;
    match &mut node.value {
        NodeValue::Map(entries) => {
            let before = entries.len();
            entries.retain(|(_, v)| !is_null(v));
            n += before - entries.len();
            for (_, v) in entries.iter_mut() {
                n += drop_nulls(v);
            }
        }
        NodeValue::Seq(items) => {
            for v in items.iter_mut() {
                n += drop_nulls(v);
            }
        }
        NodeValue::Scalar(_) => {}
    }
    n
}

/// Kong's rule for 1.1/2.1 files: a path with characters outside the unreserved set
/// and `/` is a regex.
fn looks_like_regex(p: &str) -> bool {
    !p.chars()
        .all(|c| c.is_ascii_alphanumeric() || "./-_~%".contains(c))
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// `host` or `host:port` with Kong's target default port, 8000.
fn with_default_port(target: &str) -> String {
    let has_port = if target.starts_with('[') {
        target.contains("]:")
    } else {
        target.matches(':').count() == 1
    };
    if has_port {
        target.to_string()
    } else if target.contains(':') && !target.starts_with('[') {
        format!("[{target}]:8000")
    } else {
        format!("{target}:8000")
    }
}

/// The parts of a service `url`.
#[derive(Debug, PartialEq)]
struct Url {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: Option<String>,
}

/// Parses `scheme://host[:port][/path]` as Kong's `url` shorthand does.
fn parse_url(url: &str) -> Option<Url> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (
            h.to_string(),
            after
                .strip_prefix(':')
                .map(|p| p.parse().ok())
                .unwrap_or(None),
        )
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let port = port.or(match scheme.as_str() {
        "https" => Some(443),
        _ => Some(80),
    });
    Some(Url {
        scheme,
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_kong_reads_them() {
        assert_eq!(
            parse_url("http://orders.svc:8080/api").unwrap(),
            Url {
                scheme: "http".into(),
                host: "orders.svc".into(),
                port: Some(8080),
                path: Some("/api".into())
            }
        );
        assert_eq!(parse_url("https://a.example").unwrap().port, Some(443));
        assert_eq!(parse_url("http://a.example").unwrap().port, Some(80));
        assert_eq!(parse_url("http://[::1]:9000").unwrap().host, "::1");
        assert!(parse_url("nonsense").is_none());
    }

    #[test]
    fn targets_default_to_port_8000() {
        assert_eq!(with_default_port("10.0.0.1"), "10.0.0.1:8000");
        assert_eq!(with_default_port("a.svc:9000"), "a.svc:9000");
        assert_eq!(with_default_port("::1"), "[::1]:8000");
        assert_eq!(with_default_port("[::1]:81"), "[::1]:81");
    }

    #[test]
    fn legacy_regex_detection_follows_kongs_migration() {
        assert!(!looks_like_regex("/plain/path-1_2.x~"));
        assert!(looks_like_regex("/items/\\d+"));
        assert!(looks_like_regex("/v[12]/x"));
    }
}
