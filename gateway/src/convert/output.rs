//! The converted configuration before it is written: Pingway's sections, each entry
//! remembering the Kong path it came from, so that a problem the gateway's validation
//! finds in the result is reported at its place in the Kong file.

use crate::config::ConfigNode;

use super::node::{millis, plain, s, seq, str_seq, Map};

/// A plugin entry.
#[derive(Debug, Clone)]
pub(crate) struct Plugin {
    pub name: String,
    pub config: ConfigNode,
    /// Kong path of the plugin entry.
    pub origin: String,
    pub dropped: bool,
    /// The 503 `request-termination` standing in for an access plugin that could not
    /// be converted.
    pub stand_in: bool,
}

/// A route path condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathCond {
    Prefix(String),
    Regex(String),
}

/// A route.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub name: String,
    pub hosts: Vec<String>,
    pub paths: Vec<PathCond>,
    pub methods: Vec<String>,
    /// (name, regex) header conditions.
    pub headers: Vec<(String, String)>,
    pub upstream: String,
    pub strip_prefix: bool,
    pub preserve_host: bool,
    /// `protocols`, when not both `http` and `https`.
    pub protocols: Option<Vec<String>>,
    pub https_redirect_status_code: Option<u16>,
    /// `path_rewrite` (regex, replacement): the service's path.
    pub path_rewrite: Option<(String, String)>,
    /// A `Host` to send upstream (a Kong upstream's `host_header`).
    pub host_header: Option<String>,
    pub plugins: Vec<Plugin>,
    pub origin: String,
    /// Index of the Kong service (for plugin scoping).
    pub service: Option<usize>,
    pub regex_priority: i64,
    pub dropped: bool,
}

/// An upstream.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub name: String,
    pub targets: Vec<(String, u32)>,
    /// Extra fields (balancer, hashing, health check) from a Kong upstream.
    pub pool: Vec<(String, ConfigNode)>,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub retries: u32,
    pub tls: bool,
    pub tls_verify: Option<bool>,
    pub h2c: bool,
    pub origin: String,
    pub dropped: bool,
}

/// A credential or ACL group of a consumer.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    /// The consumer field (`keyauth_credentials`, `acls`...).
    pub field: String,
    pub value: ConfigNode,
    pub origin: String,
    pub dropped: bool,
}

/// A consumer.
#[derive(Debug, Clone)]
pub(crate) struct Consumer {
    pub id: Option<String>,
    pub username: Option<String>,
    pub custom_id: Option<String>,
    pub credentials: Vec<Credential>,
    pub plugins: Vec<Plugin>,
    pub origin: String,
    pub dropped: bool,
}

/// A certificate of the HTTPS listener.
#[derive(Debug, Clone)]
pub(crate) struct Certificate {
    pub cert: String,
    pub key: String,
    pub snis: Vec<String>,
    pub origin: String,
    pub dropped: bool,
}

/// The whole converted configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub plugins: Vec<Plugin>,
    pub consumers: Vec<Consumer>,
    pub certificates: Vec<Certificate>,
}

/// Where the gateway listens.
#[derive(Debug, Clone)]
pub(crate) struct Listeners {
    pub http: String,
    pub https: String,
    pub admin: String,
}

impl Output {
    /// Every plugin list (global, each route's, each consumer's).
    pub(crate) fn plugin_lists(&mut self) -> Vec<&mut Vec<Plugin>> {
        let mut lists = vec![&mut self.plugins];
        lists.extend(self.routes.iter_mut().map(|r| &mut r.plugins));
        lists.extend(self.consumers.iter_mut().map(|c| &mut c.plugins));
        lists
    }

    /// Drops entries marked `dropped` (so that indices match the next rendering).
    pub(crate) fn prune(&mut self) {
        self.upstreams.retain(|u| !u.dropped);
        self.routes.retain(|r| !r.dropped);
        self.consumers.retain(|c| !c.dropped);
        self.plugins.retain(|p| !p.dropped);
        for r in &mut self.routes {
            r.plugins.retain(|p| !p.dropped);
        }
        for c in &mut self.consumers {
            c.credentials.retain(|k| !k.dropped);
            c.plugins.retain(|p| !p.dropped);
        }
        self.certificates.retain(|c| !c.dropped);
    }

    /// The configuration tree. `for_check` writes each named target as `127.0.0.1`
    /// with its port: the converter checks its output without DNS lookups (the names
    /// are the user's network's, resolved when the gateway loads the file).
    pub(crate) fn render(&self, listeners: &Listeners, for_check: bool) -> ConfigNode {
        let mut top = Map::new();
        let mut ls = vec![Map::new()];
        ls[0].put("address", s(&listeners.http));
        let certs: Vec<&Certificate> = self.certificates.iter().collect();
        if !certs.is_empty() {
            let mut l = Map::new();
            l.put("address", s(&listeners.https));
            let mut tls = Map::new();
            tls.put(
                "certificates",
                seq(certs
                    .iter()
                    .map(|c| {
                        let mut m = Map::new();
                        m.put("cert_pem", s(&c.cert));
                        m.put("key_pem", s(&c.key));
                        m.put("snis", str_seq(&c.snis));
                        m.build()
                    })
                    .collect()),
            );
            l.put("tls", tls.build());
            ls.push(l);
        }
        top.put("listeners", seq(ls.into_iter().map(Map::build).collect()));
        let mut admin = Map::new();
        admin.put("listen", s(&listeners.admin));
        top.put("admin", admin.build());
        top.put(
            "upstreams",
            seq(self.upstreams.iter().map(|u| u.render(for_check)).collect()),
        );
        top.put(
            "routes",
            seq(self.routes.iter().map(Route::render).collect()),
        );
        if !self.plugins.is_empty() {
            top.put("plugins", plugins(&self.plugins));
        }
        if !self.consumers.is_empty() {
            top.put(
                "consumers",
                seq(self.consumers.iter().map(Consumer::render).collect()),
            );
        }
        top.build()
    }
}

fn plugins(list: &[Plugin]) -> ConfigNode {
    seq(list
        .iter()
        .map(|p| {
            let mut m = Map::new();
            m.put("name", s(&p.name));
            m.put("config", p.config.clone());
            m.build()
        })
        .collect())
}

impl Upstream {
    fn render(&self, for_check: bool) -> ConfigNode {
        let mut m = Map::new();
        m.put("name", s(&self.name));
        let targets = self
            .targets
            .iter()
            .map(|(address, weight)| {
                let address = match address.rsplit_once(':') {
                    Some((host, port))
                        if for_check
                            && address.parse::<std::net::SocketAddr>().is_err()
                            && !host.is_empty() =>
                    {
                        format!("127.0.0.1:{port}")
                    }
                    _ => address.clone(),
                };
                let mut t = Map::new();
                t.put("address", s(&address));
                t.put("weight", plain(weight));
                t.build()
            })
            .collect();
        m.put("targets", seq(targets));
        for (k, v) in &self.pool {
            m.put(k, v.clone());
        }
        m.put("connect_timeout", millis(self.connect_timeout_ms));
        m.put("read_timeout", millis(self.read_timeout_ms));
        m.put("write_timeout", millis(self.write_timeout_ms));
        m.put("retries", plain(self.retries));
        if self.h2c {
            m.put("protocol", s("h2c"));
        }
        if self.tls {
            m.put("tls", plain(true));
            if let Some(v) = self.tls_verify {
                m.put("tls_verify", plain(v));
            }
        }
        m.build()
    }
}

impl Route {
    fn render(&self) -> ConfigNode {
        let mut m = Map::new();
        m.put("name", s(&self.name));
        if !self.hosts.is_empty() {
            m.put("hosts", str_seq(&self.hosts));
        }
        if !self.paths.is_empty() {
            let paths = self
                .paths
                .iter()
                .map(|p| match p {
                    PathCond::Prefix(p) => s(p),
                    PathCond::Regex(r) => {
                        let mut m = Map::new();
                        m.put("regex", s(r));
                        m.build()
                    }
                })
                .collect();
            m.put("paths", seq(paths));
        }
        if !self.methods.is_empty() {
            m.put("methods", str_seq(&self.methods));
        }
        if !self.headers.is_empty() {
            let headers = self
                .headers
                .iter()
                .map(|(name, regex)| {
                    let mut h = Map::new();
                    h.put("name", s(name));
                    h.put("regex", s(regex));
                    h.build()
                })
                .collect();
            m.put("headers", seq(headers));
        }
        m.put("upstream", s(&self.upstream));
        m.put("strip_prefix", plain(self.strip_prefix));
        m.put("preserve_host", plain(self.preserve_host));
        if let Some(protocols) = &self.protocols {
            m.put("protocols", str_seq(protocols));
        }
        if let Some(code) = self.https_redirect_status_code {
            m.put("https_redirect_status_code", plain(code));
        }
        if let Some((regex, replacement)) = &self.path_rewrite {
            let mut rw = Map::new();
            rw.put("regex", s(regex));
            rw.put("replacement", s(replacement));
            m.put("path_rewrite", rw.build());
        }
        if let Some(host) = &self.host_header {
            let mut set = Map::new();
            set.put("host", s(host));
            let mut edits = Map::new();
            edits.put("set", set.build());
            m.put("request_headers", edits.build());
        }
        if !self.plugins.is_empty() {
            m.put("plugins", plugins(&self.plugins));
        }
        m.build()
    }
}

impl Consumer {
    fn render(&self) -> ConfigNode {
        let mut m = Map::new();
        if let Some(id) = &self.id {
            m.put("id", s(id));
        }
        if let Some(u) = &self.username {
            m.put("username", s(u));
        }
        if let Some(c) = &self.custom_id {
            m.put("custom_id", s(c));
        }
        let mut fields: Vec<&str> = Vec::new();
        for c in &self.credentials {
            if !fields.contains(&c.field.as_str()) {
                fields.push(&c.field);
            }
        }
        for field in fields {
            let list = self
                .credentials
                .iter()
                .filter(|c| c.field == field)
                .map(|c| c.value.clone())
                .collect();
            m.put(field, seq(list));
        }
        if !self.plugins.is_empty() {
            m.put("plugins", plugins(&self.plugins));
        }
        m.build()
    }
}
