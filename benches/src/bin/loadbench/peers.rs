//! Configuration of every proxy for every scenario, written so that each does the same
//! job with its own nearest means: one worker, keep-alive to the client and to the
//! upstream kept open indefinitely, no access log.

use std::fmt::Write as _;
use std::path::Path;

use pingway_benches::routes::{Kind, RouteSet};

/// The key-auth pieces of scenario 2 (Kong's names: `key_names`, consumers'
/// `keyauth_credentials`). The key every request sends.
pub const API_KEY: &str = "bench-key";
/// The header carrying it.
pub const API_KEY_HEADER: &str = "apikey";

/// Scenario 2's plugin block for Pingway's route (YAML list items at 4 spaces), and
/// the top-level `consumers:` section when key-auth is on. With `redis_port`,
/// rate-limiting counts in the Redis on that loopback port (`policy: redis`).
pub fn pingway_scenario2(key_auth: bool, redis_port: Option<u16>) -> (String, String) {
    let store = match redis_port {
        None => "policy: local".to_string(),
        Some(port) => format!("policy: redis, redis: {{host: 127.0.0.1, port: {port}}}"),
    };
    let mut plugins = format!(
        "    plugins:\n\
         \x20     - name: ip-restriction\n\
         \x20       config: {{allow: [127.0.0.0/8, 10.0.0.0/8], deny: [192.0.2.0/24]}}\n\
         \x20     - name: rate-limiting\n\
         \x20       config: {{second: 1000000000, {store}, limit_by: ip}}\n",
    );
    let mut consumers = String::new();
    if key_auth {
        plugins.push_str(&format!(
            "      - name: key-auth\n        config: {{key_names: [{API_KEY_HEADER}]}}\n"
        ));
        consumers = format!(
            "consumers:\n  - username: bench\n    keyauth_credentials: [{{key: {API_KEY}}}]\n"
        );
    }
    (plugins, consumers)
}

/// The `Origin` scenario 2's edge case sends (allowed by its `cors`).
pub const EDGE_ORIGIN: &str = "https://app.example.com";

/// Scenario 2's edge additions, after its plugins: `cors` (the requests carry an
/// allowed origin) and `request-transformer` (a header renamed, one removed, a header
/// and a query parameter added).
pub fn pingway_edge_plugins() -> String {
    format!(
        "      - name: cors\n\
         \x20       config: {{origins: [\"{EDGE_ORIGIN}\"], credentials: true, exposed_headers: [X-Request-Id], max_age: 3600}}\n\
         \x20     - name: request-transformer\n\
         \x20       config: {{remove: {{headers: [x-debug]}}, rename: {{headers: [\"x-old:x-new\"]}}, add: {{headers: [\"x-source:gateway\"], querystring: [\"src:edge\"]}}}}\n"
    )
}

/// Scenario 1's route with every request mirrored to `shadow` (a server that never
/// answers, or a closed port): what a misbehaving shadow costs the client.
pub fn pingway_mirrored(listen: &str, upstream: &str, shadow: &str) -> String {
    format!(
        "server: {{threads: 1, work_stealing: false}}\n\
         listeners:\n  - address: \"{listen}\"\n\
         upstreams:\n  - name: up\n    targets: [\"{upstream}\"]\n\
         \x20 - name: shadow\n    targets: [\"{shadow}\"]\n    connect_timeout: 1s\n\
         routes:\n  - name: all\n    paths: [\"/\"]\n    upstream: up\n    mirrors: [{{upstream: shadow}}]\n"
    )
}

/// A Pingway configuration with one route `/` (and, for the reload scenario's second
/// routing, a `/b` route), optionally with scenario 2's plugins (`(key_auth,
/// redis_port)`).
pub fn pingway_one_route(
    listen: &str,
    upstream: &str,
    scenario2: Option<(bool, Option<u16>)>,
    variant_b: bool,
) -> String {
    let (plugins, consumers) = match scenario2 {
        Some((key_auth, redis_port)) => pingway_scenario2(key_auth, redis_port),
        None => (String::new(), String::new()),
    };
    let mut out = format!(
        "server: {{threads: 1, work_stealing: false}}\n\
         listeners:\n  - address: \"{listen}\"\n\
         upstreams:\n  - name: up\n    targets: [\"{upstream}\"]\n\
         routes:\n  - name: all\n    paths: [\"/\"]\n    upstream: up\n{plugins}"
    );
    if variant_b {
        out.push_str("  - name: b\n    paths: [\"/b\"]\n    upstream: up\n");
    }
    out.push_str(&consumers);
    out
}

/// The certificate both HTTPS proxies serve (scenarios 6 and 7), generated once per run.
pub struct TlsFiles {
    /// PEM certificate (self-signed, ECDSA P-256, for `localhost` and 127.0.0.1).
    pub cert: std::path::PathBuf,
    /// PEM private key (PKCS#8).
    pub key: std::path::PathBuf,
}

/// Scenario 1's route behind an HTTPS listener serving `tls`'s certificate (Pingway's
/// defaults: TLS 1.2 and 1.3, ALPN h2 and http/1.1).
pub fn pingway_https(listen: &str, upstream: &str, tls: &TlsFiles) -> String {
    format!(
        "server: {{threads: 1, work_stealing: false}}\n\
         listeners:\n  - address: \"{listen}\"\n    tls:\n      certificates:\n\
         \x20       - {{cert: \"{}\", key: \"{}\"}}\n\
         upstreams:\n  - name: up\n    targets: [\"{upstream}\"]\n\
         routes:\n  - name: all\n    paths: [\"/\"]\n    upstream: up\n",
        tls.cert.display(),
        tls.key.display()
    )
}

/// Scenario 1's Pingway configuration with observability on: the `prometheus` plugin
/// (global, every metric) and the JSON access log (every field) appended to `log`.
pub fn pingway_observed(listen: &str, upstream: &str, log: &Path) -> String {
    let mut out = pingway_one_route(listen, upstream, None, false);
    out.push_str(&format!(
        "plugins:\n  - name: prometheus\n    config: {{per_consumer: true, status_code_metrics: true, \
         latency_metrics: true, bandwidth_metrics: true, upstream_health_metrics: true}}\n\
         access_log:\n  path: \"{}\"\n",
        log.display()
    ));
    out
}

/// A Pingway configuration with the generated routes; `variant_b` adds one more route
/// (the reload scenario alternates the two).
pub fn pingway_many_routes(
    listen: &str,
    upstream: &str,
    set: &RouteSet,
    variant_b: bool,
) -> String {
    let mut out = set.pingway_yaml(listen, upstream);
    if variant_b {
        out.push_str("  - name: reload-b\n    paths: [\"/reload-b\"]\n    upstream: up\n");
    }
    out
}

/// The fast upstream: nginx answering every request with a fixed 20-byte body.
pub fn nginx_upstream(dir: &Path, port: u16) -> String {
    format!(
        "{head}\
         \x20 server {{\n\
         \x20   listen 127.0.0.1:{port} backlog=4096;\n\
         \x20   location / {{ default_type text/plain; return 200 \"hello from upstream\\n\"; }}\n\
         \x20 }}\n\
         }}\n",
        head = nginx_head(dir, "upstream", "upstream"),
    )
}

/// The part every nginx configuration here shares, up to inside `http {`: one worker in
/// the foreground, its pid and error log named `<file>`, no access log, keep-alive
/// without limits, temporary files under `<tmp>-tmp/`.
fn nginx_head(dir: &Path, file: &str, tmp: &str) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;\n\
         daemon off;\n\
         pid {d}/{file}.pid;\n\
         error_log {d}/{file}.error.log warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{\n\
         \x20 access_log off;\n\
         \x20 keepalive_timeout 300s;\n\
         \x20 keepalive_requests 100000000;\n\
         \x20 client_body_temp_path {d}/{tmp}-tmp/body;\n\
         \x20 proxy_temp_path {d}/{tmp}-tmp/proxy;\n\
         \x20 fastcgi_temp_path {d}/{tmp}-tmp/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/{tmp}-tmp/uwsgi;\n\
         \x20 scgi_temp_path {d}/{tmp}-tmp/scgi;\n"
    )
}

/// What the nginx proxy does besides proxying.
pub enum NginxSetup<'a> {
    /// One `location /`.
    Plain,
    /// Scenario 2: allow/deny, limit_req with a rate never reached, a map on the key.
    Plugins { key_auth: bool },
    /// Scenario 3: one server per host and one location per route.
    Routes(&'a RouteSet),
    /// Reload scenario, second routing: `location /` plus `location /b`.
    PlainB,
    /// Scenarios 6 and 7: `location /` behind `listen ... ssl` with the shared
    /// certificate, TLS 1.2 and 1.3 as Pingway offers.
    Https(&'a TlsFiles),
}

/// The nginx reverse proxy: one worker, upstream keep-alive.
pub fn nginx_proxy(dir: &Path, port: u16, upstream_port: u16, setup: &NginxSetup<'_>) -> String {
    let mut http = String::new();
    let mut servers = String::new();
    let pass = "proxy_pass http://up;";
    match setup {
        NginxSetup::Plain | NginxSetup::PlainB => {
            let _ = write!(
                servers,
                "  server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    location / {{ {pass} }}\n"
            );
            if matches!(setup, NginxSetup::PlainB) {
                let _ = writeln!(servers, "    location /b {{ {pass} }}");
            }
            servers.push_str("  }\n");
        }
        NginxSetup::Https(tls) => {
            let _ = write!(
                servers,
                "  server {{\n    listen 127.0.0.1:{port} ssl backlog=4096;\n\
                 \x20   ssl_certificate {};\n    ssl_certificate_key {};\n\
                 \x20   ssl_protocols TLSv1.2 TLSv1.3;\n\
                 \x20   location / {{ {pass} }}\n  }}\n",
                tls.cert.display(),
                tls.key.display()
            );
        }
        NginxSetup::Plugins { key_auth } => {
            http.push_str("  limit_req_zone $binary_remote_addr zone=rl:10m rate=1000000r/s;\n");
            if *key_auth {
                let _ = writeln!(
                    http,
                    "  map $http_{API_KEY_HEADER} $consumer {{ default \"\"; \"{API_KEY}\" bench; }}"
                );
            }
            let _ = write!(
                servers,
                "  server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    location / {{\n\
                 \x20     deny 192.0.2.0/24;\n      allow 127.0.0.0/8;\n      allow 10.0.0.0/8;\n      deny all;\n\
                 \x20     limit_req zone=rl burst=1000000 nodelay;\n"
            );
            if *key_auth {
                servers.push_str("      if ($consumer = \"\") { return 401; }\n");
            }
            let _ = write!(servers, "      {pass}\n    }}\n  }}\n");
        }
        NginxSetup::Routes(set) => {
            http.push_str(
                "  server_names_hash_max_size 4096;\n  server_names_hash_bucket_size 128;\n",
            );
            // Group routes by host, keeping file order inside each server.
            let mut order: Vec<&str> = Vec::new();
            let mut by_host: std::collections::HashMap<&str, Vec<String>> = Default::default();
            for r in &set.routes {
                let host = r.host.as_deref().unwrap_or("");
                let loc = match r.kind {
                    Kind::Exact => format!("    location = {} {{ {pass} }}\n", r.path),
                    Kind::Regex => format!("    location ~ ^{} {{ {pass} }}\n", r.path),
                    _ => format!("    location ^~ {} {{ {pass} }}\n", r.path),
                };
                by_host
                    .entry(host)
                    .or_insert_with(|| {
                        order.push(host);
                        Vec::new()
                    })
                    .push(loc);
            }
            if !by_host.contains_key("") {
                order.push("");
            }
            for host in order {
                let name = if host.is_empty() { "_" } else { host };
                let default = if host.is_empty() {
                    " default_server"
                } else {
                    ""
                };
                let _ = write!(
                    servers,
                    "  server {{\n    listen 127.0.0.1:{port}{default};\n    server_name {name};\n"
                );
                for loc in by_host.get(host).map(Vec::as_slice).unwrap_or(&[]) {
                    servers.push_str(loc);
                }
                servers.push_str("    location / { return 404; }\n  }\n");
            }
        }
    }
    format!(
        "{head}\
         \x20 upstream up {{\n\
         \x20   server 127.0.0.1:{upstream_port};\n\
         \x20   keepalive 64;\n\
         \x20   keepalive_requests 100000000;\n\
         \x20   keepalive_timeout 300s;\n\
         \x20 }}\n\
         \x20 proxy_http_version 1.1;\n\
         \x20 proxy_set_header Connection \"\";\n\
         {http}{servers}}}\n",
        head = nginx_head(dir, "nginx-proxy", "proxy"),
    )
}

/// What HAProxy does besides proxying.
pub enum HaproxySetup<'a> {
    /// Plain forwarding.
    Plain,
    /// Scenario 2: src ACLs, a stick table with a rate never reached, a map on the key.
    Plugins { key_auth: bool },
    /// Scenario 3: the routes as maps (prefix trees) and a regex map.
    Routes(&'a RouteSet),
    /// Reload scenario, second routing: one more (unused) ACL rule.
    PlainB,
}

/// The HAProxy configuration; writes the map files it needs into `dir`.
pub fn haproxy(
    dir: &Path,
    port: u16,
    upstream_port: u16,
    setup: &HaproxySetup<'_>,
) -> anyhow::Result<String> {
    let d = dir.display();
    let mut rules = String::new();
    match setup {
        HaproxySetup::Plain => {}
        HaproxySetup::PlainB => {
            rules.push_str("  http-request set-header X-Reload b if { path_beg /b }\n");
        }
        HaproxySetup::Plugins { key_auth } => {
            rules.push_str(
                "  acl blocked src 192.0.2.0/24\n\
                 \x20 acl allowed src 127.0.0.0/8 10.0.0.0/8\n\
                 \x20 http-request deny deny_status 403 if blocked || !allowed\n\
                 \x20 stick-table type ip size 100k expire 60s store http_req_rate(1s)\n\
                 \x20 http-request track-sc0 src\n\
                 \x20 http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000000 }\n",
            );
            if *key_auth {
                std::fs::write(dir.join("keys.map"), format!("{API_KEY} bench\n"))?;
                let _ = writeln!(
                    rules,
                    "  http-request deny deny_status 401 unless {{ req.hdr({API_KEY_HEADER}),map({d}/keys.map) -m found }}"
                );
            }
        }
        HaproxySetup::Routes(set) => {
            let mut hosted = String::new();
            let mut wild = String::new();
            let mut any = String::new();
            let mut exact = String::new();
            let mut re = String::new();
            for r in &set.routes {
                let host = r.host.as_deref().unwrap_or("");
                let _ = match r.kind {
                    Kind::HostPrefix => writeln!(hosted, "{host}{} {}", r.path, r.name),
                    Kind::WildcardPrefix => writeln!(wild, "{host}{} {}", r.path, r.name),
                    Kind::AnyPrefix => writeln!(any, "{} {}", r.path, r.name),
                    Kind::Exact => writeln!(exact, "{} {}", r.path, r.name),
                    Kind::Regex => writeln!(re, "^{} {}", r.path, r.name),
                };
            }
            for (name, text) in [
                ("hosted.map", hosted),
                ("wild.map", wild),
                ("any.map", any),
                ("exact.map", exact),
                ("re.map", re),
            ] {
                std::fs::write(dir.join(name), text)?;
            }
            let _ = write!(
                rules,
                "  http-request set-var(txn.path) path\n\
                 \x20 http-request set-var(txn.r) base,map_beg({d}/hosted.map)\n\
                 \x20 http-request set-var(txn.r) path,map({d}/exact.map) unless {{ var(txn.r) -m found }}\n\
                 \x20 http-request set-var(txn.wk) req.hdr(host),regsub(^[^.]*,*),concat(,txn.path) unless {{ var(txn.r) -m found }}\n\
                 \x20 http-request set-var(txn.r) var(txn.wk),map_beg({d}/wild.map) unless {{ var(txn.r) -m found }}\n\
                 \x20 http-request set-var(txn.r) path,map_beg({d}/any.map) unless {{ var(txn.r) -m found }}\n\
                 \x20 http-request set-var(txn.r) path,map_reg({d}/re.map) unless {{ var(txn.r) -m found }}\n\
                 \x20 http-request return status 404 unless {{ var(txn.r) -m found }}\n"
            );
        }
    }
    Ok(format!(
        "global\n\
         \x20 nbthread 1\n\
         \x20 maxconn 4000\n\
         \x20 pidfile {d}/haproxy.pid\n\
         defaults\n\
         \x20 mode http\n\
         \x20 timeout connect 5s\n\
         \x20 timeout client 300s\n\
         \x20 timeout server 300s\n\
         \x20 timeout http-keep-alive 300s\n\
         \x20 option http-keep-alive\n\
         \x20 http-reuse always\n\
         frontend fe\n\
         \x20 bind 127.0.0.1:{port}\n\
         {rules}\
         \x20 default_backend be\n\
         backend be\n\
         \x20 server up 127.0.0.1:{upstream_port}\n"
    ))
}
