//! The configuration file's structure. Field docs here are also the JSON Schema's
//! descriptions (see `config/pingway.schema.json`).

use std::fmt;

use pingway_plugins::config::{lenient_default, lenient_vec};
use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::defaults;
use super::duration::Duration;

pub use pingway_plugins::config::PluginConfig;
pub use pingway_plugins::consumers::{ConsumerConfig, Secret};

/// The whole gateway configuration: one YAML file is the whole truth.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Process settings, read at start-up (a reload that changes them logs that a restart
    /// is needed).
    #[serde(default, deserialize_with = "lenient_default")]
    pub server: ServerSettings,
    /// Where the gateway accepts connections: plain HTTP/1.1, or HTTPS (HTTP/1.1 and
    /// HTTP/2) with a `tls` block. Addresses are read at start-up; certificates reload.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub listeners: Vec<Listener>,
    /// Forwarding behaviour: trusted proxies, request ids, response headers.
    #[serde(default, deserialize_with = "lenient_default")]
    pub proxy: ProxySettings,
    /// Named pools of targets that routes send traffic to.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub upstreams: Vec<UpstreamConfig>,
    /// Rules that match requests to upstreams, each with its own plugins.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub routes: Vec<RouteConfig>,
    /// Global plugins: they run on every route that does not configure a plugin of the
    /// same name.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub plugins: Vec<PluginConfig>,
    /// Identities that authentication plugins recognise, with their credentials, ACL
    /// groups and own plugins (Kong's declarative shape).
    #[serde(default, deserialize_with = "lenient_vec")]
    pub consumers: Vec<ConsumerConfig>,
    /// Trusted CA certificates by id (Kong's `ca_certificates` entities), which
    /// `mtls-auth`'s `ca_certificates` and `mtls_auth_credentials[].ca_certificate`
    /// name. Read at every load.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub ca_certificates: Vec<CaCertificateConfig>,
    /// The admin API (status, running configuration, routes, upstreams, metrics, reload,
    /// explain). Off unless this section is present. Read at start-up, except `token`,
    /// which a reload changes.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The access log: one JSON line per request, to stdout or a file, written off the
    /// request path. Off unless this section is present.
    #[serde(default)]
    pub access_log: Option<AccessLogConfig>,
    /// Certificates from an ACME CA (Let's Encrypt, a private CA) for the certificate
    /// entries that say `acme: true`: the account, storage and renewal policy. Off
    /// unless this section is present.
    #[serde(default)]
    pub acme: Option<super::acme::AcmeConfig>,
}

/// A CA certificate (`ca_certificates[]`): one PEM certificate with the CA basic
/// constraint, inline (`cert`, as Kong's entity has it) or from a file (`cert_file`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaCertificateConfig {
    /// The id plugins name it by (a Kong UUID works as well as `internal-ca`).
    pub id: String,
    /// The certificate as PEM text.
    #[serde(default)]
    pub cert: Option<String>,
    /// Path of a PEM file holding the certificate. Read at every load.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Kong's digest of the certificate; accepted, not checked.
    #[serde(default)]
    pub cert_digest: Option<String>,
    /// Free-form tags (Kong's), kept for compatibility.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// When an HTTPS listener asks clients for a certificate (`listeners[].tls.client_certificate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertificateMode {
    /// Ask when the configuration serving now has an `mtls-auth` plugin anywhere
    /// (globally, on a route or on a consumer), as Kong does.
    #[default]
    Auto,
    /// Always ask.
    Request,
    /// Never ask (an `mtls-auth` route on this listener then answers 401).
    Off,
}

/// The access log (see docs/configuration.md#access-log).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// The file lines are appended to (created if missing, reopened on SIGUSR1 for
    /// logrotate). Absent: standard output.
    #[serde(default)]
    pub path: Option<String>,
    /// The fields of each line, in this order. Default: all of them.
    #[serde(default = "defaults::access_log_fields")]
    pub fields: Vec<AccessLogField>,
    /// Keep the query string in `path`. Off by default: queries carry secrets (API keys,
    /// tokens); even when on, the values of well-known credential parameters
    /// (`apikey`, `api_key`, `token`, `access_token`, `jwt`, ...) are replaced by `REDACTED`.
    #[serde(default)]
    pub include_query: bool,
    /// Lines waiting for the writer, at most (default 8192, at most 1000000). A line
    /// that finds the buffer full is dropped and counted
    /// (`pingway_access_log_lines_total{outcome="dropped"}`); a request never waits for the log.
    #[serde(default = "defaults::access_log_buffer")]
    pub buffer: usize,
}

/// A field of the access log's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogField {
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    Time,
    /// The request id (also sent upstream and to the client).
    RequestId,
    /// The client address (the real IP when the peer is a trusted proxy).
    ClientIp,
    /// The method.
    Method,
    /// The Host header (or the request target's authority).
    Host,
    /// The path, without the query unless `include_query`.
    Path,
    /// The status the client got (0 if none could be sent).
    Status,
    /// Body bytes received from the client.
    BytesReceived,
    /// Body bytes sent to the client.
    BytesSent,
    /// `latencies`: `request` (arrival to the end of the response), `upstream` (the
    /// upstream's time to its response head, null without one) and `gateway` (the
    /// request's time less the upstream's, as Kong's `kong` latency), in milliseconds.
    Latencies,
    /// The matched route's name.
    Route,
    /// The upstream's name.
    Upstream,
    /// The target that served the request (`IP:PORT`).
    Target,
    /// The consumer's username (or id) when an auth plugin identified one.
    Consumer,
    /// The User-Agent header.
    UserAgent,
}

impl AccessLogField {
    /// Every field, in the default order.
    pub const ALL: [AccessLogField; 15] = [
        AccessLogField::Time,
        AccessLogField::RequestId,
        AccessLogField::ClientIp,
        AccessLogField::Method,
        AccessLogField::Host,
        AccessLogField::Path,
        AccessLogField::Status,
        AccessLogField::BytesReceived,
        AccessLogField::BytesSent,
        AccessLogField::Latencies,
        AccessLogField::Route,
        AccessLogField::Upstream,
        AccessLogField::Target,
        AccessLogField::Consumer,
        AccessLogField::UserAgent,
    ];
}

/// The admin API listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `IP:PORT` the admin API listens on. Must be a loopback address unless
    /// `allow_remote` is true, and must differ from every proxy listener.
    #[serde(default = "defaults::admin_listen")]
    pub listen: String,
    /// Allow a non-loopback `listen` address. Set a `token` too: the admin API can
    /// reload the configuration and shows its routes and upstreams.
    #[serde(default)]
    pub allow_remote: bool,
    /// A bearer token every admin request must carry (`Authorization: Bearer <token>`),
    /// compared in constant time. Never shown by the admin API or in logs.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// Process settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Worker threads for the proxy. Default: one per CPU core.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Let idle worker threads steal tasks from busy ones.
    #[serde(default = "defaults::work_stealing")]
    pub work_stealing: bool,
    /// On SIGTERM, time given to in-flight requests before the process exits.
    #[serde(default = "defaults::grace_period")]
    pub grace_period: Duration,
    /// Idle upstream connections kept for reuse.
    #[serde(default = "defaults::upstream_keepalive_pool")]
    pub upstream_keepalive_pool: usize,
    /// Client connections served at once by the whole process; a connection beyond it is
    /// closed as soon as it is accepted (and counted). 0: no limit.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: None,
            work_stealing: defaults::work_stealing(),
            grace_period: defaults::grace_period(),
            upstream_keepalive_pool: defaults::upstream_keepalive_pool(),
            max_connections: defaults::max_connections(),
        }
    }
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `IP:PORT` to listen on, such as `0.0.0.0:8080` or `[::]:8080`.
    pub address: String,
    /// Also accept HTTP/2 in cleartext with prior knowledge (h2c), as gRPC clients
    /// speak it. A connection that opens with the HTTP/2 preface is served as HTTP/2,
    /// any other as HTTP/1.1, so HTTP/1 clients keep working. Off by default.
    #[serde(default)]
    pub h2c: bool,
    /// Serve HTTPS on this listener: the certificates, chosen by the client's SNI, and
    /// HTTP/2 through ALPN. Absent: plain HTTP/1.1. Adding or removing it takes a restart;
    /// the certificates themselves are reloaded live.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
}

impl Listener {
    /// What of a listener only a restart applies: its address, `h2c`, whether it is TLS,
    /// whether it offers HTTP/2 and its handshake bounds (its certificates are reloaded
    /// live).
    pub fn restart_key(&self) -> (&str, bool, Option<(bool, u32, Duration)>) {
        (
            &self.address,
            self.h2c,
            self.tls
                .as_ref()
                .map(|t| (t.http2, t.max_handshakes, t.client_hello_timeout)),
        )
    }
}

/// An HTTPS listener's settings (`listeners[].tls`). TLS 1.2 and 1.3 only, with rustls's
/// cipher suites (AEAD only, forward secrecy only).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The certificates the listener serves, each for its `snis`. The one marked
    /// `default: true` (else the first) answers a client whose SNI matches none, or that
    /// sends none.
    pub certificates: Vec<CertificateConfig>,
    /// Offer HTTP/2 through ALPN (`h2`, then `http/1.1`). Default true; false offers
    /// only `http/1.1`.
    #[serde(default = "defaults::tls_http2")]
    pub http2: bool,
    /// Ask clients for a certificate (`auto`, `request`, `off`; default `auto`: when an
    /// `mtls-auth` plugin is configured). Asked, not required: a client without one
    /// still connects, and only `mtls-auth` routes refuse it. Reloads.
    #[serde(default)]
    pub client_certificate: ClientCertificateMode,
    /// At most this many TLS handshakes in progress on this listener at once; a
    /// connection beyond them is closed at once, before its handshake (counted). Default
    /// 1024; 0: no bound. Read at start-up.
    #[serde(default = "defaults::tls_max_handshakes")]
    pub max_handshakes: u32,
    /// A client must have sent its first TLS record (the ClientHello) whole within this
    /// long of the accept, or the connection is closed (counted). Default 10s. Read at
    /// start-up.
    #[serde(default = "defaults::tls_client_hello_timeout")]
    pub client_hello_timeout: Duration,
}

/// A certificate and its private key, from files (`cert`, `key`) or written inline
/// (`cert_pem`, `key_pem`), or obtained from the ACME CA (`acme: true`), for the names
/// in `snis`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Path of a PEM file: the certificate, then its intermediates. Read at every load.
    #[serde(default)]
    pub cert: Option<String>,
    /// Path of a PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub key: Option<String>,
    /// The certificate chain as PEM text, instead of `cert`.
    #[serde(default)]
    pub cert_pem: Option<String>,
    /// The private key as PEM text, instead of `key`. Never shown by the admin API.
    #[serde(default)]
    pub key_pem: Option<Secret>,
    /// The server names this certificate is served for: exact (`api.example.com`) or a
    /// wildcard for one label (`*.example.com`). An exact name wins over a wildcard.
    /// Empty: only as the default certificate.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub snis: Vec<String>,
    /// Serve this certificate to clients whose SNI matches no certificate (at most one
    /// per listener; default: the first).
    #[serde(default)]
    pub default: bool,
    /// Path of a DER OCSP response for the certificate, stapled to every handshake
    /// (nginx's `ssl_stapling_file`). Read at each load: refresh the file and reload
    /// before the response expires.
    #[serde(default)]
    pub ocsp_file: Option<String>,
    /// Obtain and renew this certificate from the CA of the top-level `acme:` section
    /// (HTTP-01, answered on the plain HTTP listeners), for the host names in `snis`;
    /// no `cert` or `key`. Until it is issued, its names get the default certificate.
    #[serde(default)]
    pub acme: bool,
}

/// How requests are forwarded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxySettings {
    /// Peers (IPs or CIDR ranges) whose `real_ip_header`, `X-Forwarded-Proto`,
    /// `X-Forwarded-Host` and request id are believed. Empty: no peer is trusted and
    /// the client IP is always the connection's address.
    #[serde(default)]
    pub trusted_ips: Vec<String>,
    /// The header naming the client address, read only from trusted peers.
    #[serde(default = "defaults::real_ip_header")]
    pub real_ip_header: String,
    /// With `X-Forwarded-For`, take the right-most address that is not a trusted proxy
    /// (rather than the right-most address).
    #[serde(default = "defaults::real_ip_recursive")]
    pub real_ip_recursive: bool,
    /// Request-id header: kept from trusted peers, generated otherwise, sent upstream and
    /// returned to the client.
    #[serde(default = "defaults::request_id_header")]
    pub request_id_header: String,
    /// Send `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`,
    /// `X-Forwarded-Port` and `X-Real-IP` upstream (as Kong does). Turn off when the
    /// upstreams do not use them: each header costs time on every request.
    #[serde(default = "defaults::forwarded_headers")]
    pub forwarded_headers: bool,
    /// Add `Via: 1.1 pingway/<version>` to requests and responses, and
    /// `Server: pingway/<version>` to the responses the gateway generates itself.
    #[serde(default = "defaults::via_header")]
    pub via_header: bool,
    /// Add `X-Pingway-Upstream-Latency` and `X-Pingway-Proxy-Latency` (ms) to proxied
    /// responses and `X-Pingway-Response-Latency` to responses the gateway generates.
    #[serde(default = "defaults::latency_headers")]
    pub latency_headers: bool,
    /// Send header names upstream spelled as the client sent them (`X-Api-Version`).
    /// Off by default: names go upstream in lower case, as HTTP/2 and HAProxy send every
    /// name (HTTP header names are case-insensitive), and each header the gateway adds
    /// costs a third of the work.
    #[serde(default)]
    pub preserve_header_case: bool,
    /// What to do with `%2F` and `%5C` (encoded `/` and `\`) in a request path. Many
    /// backends decode them into path separators after the gateway has routed, so
    /// `/admin%2Fx` could reach an `/admin` handler through a route without its plugins.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// Time a client has to send a request's head (request line and headers), counted from
    /// its first byte (from the connection's start for the first request). Past it the
    /// connection is closed, after a 408 if part of the head had come.
    #[serde(default = "defaults::client_header_timeout")]
    pub client_header_timeout: Duration,
    /// Longest wait for the next piece of a request body (nginx's
    /// `client_body_timeout`), and the time a body always has before
    /// `client_body_min_rate` applies. Past it the client gets 408.
    #[serde(default = "defaults::client_body_timeout")]
    pub client_body_timeout: Duration,
    /// Slowest average rate, in bytes per second, at which a request body may arrive once
    /// `client_body_timeout` has passed since its start: each `client_body_min_rate` bytes
    /// received extend the body's deadline by one second (Apache's `mod_reqtimeout`
    /// `MinRate`). A body that falls behind gets 408. 0: no rate floor.
    #[serde(default = "defaults::client_body_min_rate")]
    pub client_body_min_rate: u64,
    /// Largest request head, in bytes: the request line and every header line. A larger
    /// one gets 431 before any plugin runs.
    #[serde(default = "defaults::max_request_header_bytes")]
    pub max_request_header_bytes: usize,
    /// Most header lines a request may have; more get 431 before any plugin runs.
    #[serde(default = "defaults::max_request_headers")]
    pub max_request_headers: usize,
}

/// What to do with an encoded slash (`%2F`) or backslash (`%5C`) in a request path, after
/// Envoy's `path_with_escaped_slashes_action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Answer 400: the safe choice when backends may decode them into separators.
    #[default]
    Reject,
    /// Decode them to `/` and `\` before routing, then normalize; routes and backends
    /// see the same path.
    Unescape,
    /// Route and forward them encoded (for APIs that put encoded slashes in identifiers;
    /// only safe when no backend decodes them into separators).
    Keep,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            trusted_ips: Vec::new(),
            real_ip_header: defaults::real_ip_header(),
            real_ip_recursive: defaults::real_ip_recursive(),
            request_id_header: defaults::request_id_header(),
            forwarded_headers: defaults::forwarded_headers(),
            via_header: defaults::via_header(),
            latency_headers: defaults::latency_headers(),
            preserve_header_case: false,
            escaped_slashes: EscapedSlashes::default(),
            client_header_timeout: defaults::client_header_timeout(),
            client_body_timeout: defaults::client_body_timeout(),
            client_body_min_rate: defaults::client_body_min_rate(),
            max_request_header_bytes: defaults::max_request_header_bytes(),
            max_request_headers: defaults::max_request_headers(),
        }
    }
}

/// A named pool of targets.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Unique name that routes refer to.
    pub name: String,
    /// The servers in the pool.
    #[serde(deserialize_with = "lenient_vec")]
    pub targets: Vec<TargetConfig>,
    /// How a target is picked for each request.
    #[serde(default)]
    pub balancer: Balancer,
    /// With `balancer: consistent_hash`: what the hash is computed on.
    #[serde(default)]
    pub hash_on: HashOn,
    /// With `hash_on: header`: the header name.
    #[serde(default)]
    pub hash_on_header: Option<String>,
    /// With `hash_on: cookie`: the cookie name.
    #[serde(default)]
    pub hash_on_cookie: Option<String>,
    /// Active health checks; without them every target is considered healthy.
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
    /// Time allowed to connect to a target.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed between reads from a target; exceeding it answers 504.
    #[serde(default = "defaults::read_timeout")]
    pub read_timeout: Duration,
    /// Time allowed between writes to a target.
    #[serde(default = "defaults::write_timeout")]
    pub write_timeout: Duration,
    /// After a failed attempt that `retry_on` lists, how many more attempts to make,
    /// each on a target not tried yet for the request.
    #[serde(default = "defaults::retries")]
    pub retries: u32,
    /// Circuit breaking: at most this many requests in flight to the pool at once (0, the
    /// default: no limit); one more is answered 503 at once instead of queueing.
    #[serde(default)]
    pub max_requests: u32,
    /// What failures are retried: `connect-failure` (default), `refused-stream`, `reset`,
    /// `gateway-error`, `5xx`, or status codes.
    #[serde(default = "super::resilience::default_retry_on")]
    pub retry_on: Vec<super::resilience::RetryOn>,
    /// Longest wait for each attempt's connection and for each read of its response
    /// (so for its response head); past it the attempt fails as a timeout. Default: none
    /// (`connect_timeout` and `read_timeout` apply).
    #[serde(default)]
    pub per_try_timeout: Option<Duration>,
    /// Wait between attempts: exponential with full jitter.
    #[serde(default)]
    pub retry_backoff: super::resilience::RetryBackoff,
    /// Retry requests whose method is not idempotent (POST, PATCH) after they reached a
    /// target. Off by default: the target may have acted on the first one. (A request
    /// that never reached a target, a connect failure, is always retried.)
    #[serde(default)]
    pub retry_non_idempotent: bool,
    /// Caps retries to a share of the pool's requests so that an outage is not
    /// multiplied.
    #[serde(default)]
    pub retry_budget: super::resilience::RetryBudgetConfig,
    /// Passive health checking: eject targets that fail requests in a row. Off unless
    /// present.
    #[serde(default)]
    pub outlier_detection: Option<super::resilience::OutlierDetectionConfig>,
    /// Circuit breaking: at most this many requests hold a connection to the pool's
    /// targets at once (0, the default: no limit).
    #[serde(default)]
    pub max_connections: u32,
    /// With `max_connections`: at most this many requests wait for a connection (up to
    /// `connect_timeout`); one more is answered 503 at once. 0 (the default): none wait.
    #[serde(default)]
    pub max_pending_requests: u32,
    /// The protocol spoken to the targets: `http` (HTTP/1.1, the default), `h2c`
    /// (HTTP/2 in cleartext with prior knowledge, for gRPC services) or `h2` (HTTP/2
    /// over TLS, negotiated with ALPN `h2`; needs `tls: true`). Requests are multiplexed
    /// over HTTP/2 connections.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// An upgraded (WebSocket) connection is closed when nothing has been read for this
    /// long from the client or from the target (each way separately); it replaces
    /// `read_timeout`, `write_timeout`, the route's `timeout` and the client body
    /// timeouts once the request asks for an upgrade. Keep it above the application's
    /// ping interval so that a healthy connection is never cut.
    #[serde(default = "defaults::websocket_idle_timeout")]
    pub websocket_idle_timeout: Duration,
    /// Connect to the targets over TLS (HTTPS upstreams).
    #[serde(default)]
    pub tls: bool,
    /// With `tls`: verify the target's certificate (its chain against `ca_file`, or the
    /// system's roots without one, and its name against `sni`). Default true; false
    /// accepts any certificate.
    #[serde(default = "defaults::tls_verify")]
    pub tls_verify: bool,
    /// With `tls`: a PEM file of the CA certificates that verify the targets (instead of
    /// the system's roots).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// With `tls`: the server name sent (SNI) and verified. Default: the target's host
    /// as written in `targets` (an IP address is verified against the certificate's IP
    /// names).
    #[serde(default)]
    pub sni: Option<String>,
    /// With `tls`: a PEM file with the client certificate (then its intermediates) sent
    /// to targets that ask for one (mutual TLS, Istio's STRICT mode). Needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// With `client_cert`: a PEM file with its private key.
    #[serde(default)]
    pub client_key: Option<String>,
}

/// The protocol a pool's targets speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (WebSocket upgrades pass through).
    #[default]
    Http,
    /// HTTP/2 in cleartext with prior knowledge (gRPC); no upgrades.
    H2c,
    /// HTTP/2 over TLS: the handshake offers only ALPN `h2` (gRPC over TLS); needs
    /// `tls: true`; no upgrades.
    H2,
}

impl UpstreamProtocol {
    /// Whether the targets are spoken to in HTTP/2 (`h2c` or `h2`).
    pub fn is_http2(self) -> bool {
        matches!(self, UpstreamProtocol::H2c | UpstreamProtocol::H2)
    }
}

/// A server in an upstream pool. Written as `host:port` or as a mapping with a weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetConfig {
    /// `host:port`; host names are resolved when the configuration is loaded.
    pub address: String,
    /// Share of traffic relative to the pool's other targets; 0 takes the target out of
    /// rotation.
    #[serde(default = "defaults::weight")]
    pub weight: u32,
}

impl JsonSchema for TargetConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TargetConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A server in an upstream pool: `host:port`, or a mapping with `address` and `weight`.",
            "oneOf": [
                { "type": "string", "description": "`host:port`; host names are resolved when the configuration is loaded." },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["address"],
                    "properties": {
                        "address": { "type": "string", "description": "`host:port`; host names are resolved when the configuration is loaded." },
                        "weight": { "type": "integer", "minimum": 0, "default": 100, "description": "Share of traffic relative to the pool's other targets; 0 takes the target out of rotation." }
                    }
                }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for TargetConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            address: String,
            #[serde(default = "defaults::weight")]
            weight: u32,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TargetConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`host:port` or a mapping with `address` and `weight`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TargetConfig, E> {
                Ok(TargetConfig {
                    address: v.to_string(),
                    weight: defaults::weight(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TargetConfig, A::Error> {
                let full = Full::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(TargetConfig {
                    address: full.address,
                    weight: full.weight,
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Load-balancing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Weighted round-robin, smooth (no bursts to heavy targets).
    #[default]
    #[serde(alias = "round-robin")]
    RoundRobin,
    /// Weighted random.
    Random,
    /// A consistent-hash ring (Ketama): a key stays on its target, and removing one of N
    /// targets moves only about 1/N of the keys.
    #[serde(alias = "consistent-hashing")]
    ConsistentHash,
    /// The target with the fewest in-flight requests relative to its weight.
    #[serde(alias = "least-connections")]
    LeastConnections,
}

impl JsonSchema for Balancer {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Balancer".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Load-balancing algorithm (Kong's spellings are accepted too).",
            "type": "string",
            "enum": [
                "round_robin", "random", "consistent_hash", "least_connections",
                "round-robin", "consistent-hashing", "least-connections"
            ],
            "default": "round_robin"
        })
    }
}

/// What consistent hashing keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HashOn {
    /// The client IP.
    #[default]
    Ip,
    /// A request header (`hash_on_header`).
    Header,
    /// A cookie (`hash_on_cookie`).
    Cookie,
    /// The request path.
    Path,
}

/// Active health checking of a pool's targets.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// `http` (a GET whose status must be in `expected_status`) or `tcp` (a connect).
    #[serde(default, rename = "type")]
    pub kind: HealthCheckKind,
    /// Path requested by HTTP checks.
    #[serde(default = "defaults::health_path")]
    pub path: String,
    /// `Host` header for HTTP checks (default: the target address).
    #[serde(default)]
    pub host: Option<String>,
    /// Statuses that count as healthy.
    #[serde(default = "defaults::health_expected_status")]
    pub expected_status: Vec<u16>,
    /// Time between two probes of a target.
    #[serde(default = "defaults::health_interval")]
    pub interval: Duration,
    /// Time a probe may take before it counts as failed.
    #[serde(default = "defaults::health_timeout")]
    pub timeout: Duration,
    /// Consecutive successes that bring an unhealthy target back.
    #[serde(default = "defaults::healthy_threshold")]
    pub healthy_threshold: u32,
    /// Consecutive failures that take a target out of rotation.
    #[serde(default = "defaults::unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

/// Kind of health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// An HTTP GET.
    #[default]
    Http,
    /// A TCP connect.
    Tcp,
}

/// A route: which requests it matches, where they go, and its plugins.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name.
    pub name: String,
    /// Hosts: exact (`api.example.com`), a wildcard (`*.example.com`, or Kong's
    /// rightmost `example.*`; see `wildcard_labels`), or empty for any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// How many labels the `*` of a wildcard host stands for: `any` (the default: one or
    /// more, as Kong, nginx, Envoy, Istio and the Gateway API read `*.example.com`, and
    /// Kong reads `example.*`) or `one` (exactly one, as a Kubernetes Ingress reads it).
    #[serde(default, skip_serializing_if = "WildcardLabels::is_any")]
    pub wildcard_labels: WildcardLabels,
    /// Paths: a string is a prefix; or `{exact: ...}`, `{prefix: ...}`, `{regex: ...}`.
    /// Empty matches every path.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub paths: Vec<PathMatch>,
    /// HTTP methods; empty matches any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header conditions; all must hold.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions (Gateway API's and Istio's `queryParams`); all must
    /// hold. Names and values are compared percent-decoded; a repeated parameter counts
    /// by its first value; only the first 100 parameters of a query are looked at.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub query_params: Vec<QueryMatch>,
    /// The upstream that serves the route.
    pub upstream: String,
    /// Remove the matched path prefix before forwarding (`/api/users` → `/users`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Forward the client's `Host` header instead of the target address.
    #[serde(default)]
    pub preserve_host: bool,
    /// Plugins of this route; one with the same name as a global plugin replaces it.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub plugins: Vec<PluginConfig>,
    /// A weighted split of the route's traffic (a canary, a blue-green move): each entry
    /// sends `weight` percent of requests to its upstream; `upstream` serves the rest.
    /// Weights are whole percents and add up to at most 100.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub split: Vec<SplitConfig>,
    /// What keeps a client on one side of the split: `none` (default: each request is
    /// drawn at random), `ip`, `header` (`split_hash_on_header`) or `cookie`
    /// (`split_hash_on_cookie`); a request without the header or cookie is keyed by its
    /// client IP.
    #[serde(default)]
    pub split_hash_on: SplitHashOn,
    /// The header for `split_hash_on: header`.
    #[serde(default)]
    pub split_hash_on_header: Option<String>,
    /// The cookie for `split_hash_on: cookie`.
    #[serde(default)]
    pub split_hash_on_cookie: Option<String>,
    /// Header edits on the request the upstream receives (an Istio VirtualService's
    /// `headers.request`).
    #[serde(default)]
    pub request_headers: HeaderEdits,
    /// Header edits on the response the client receives (`headers.response`).
    #[serde(default)]
    pub response_headers: HeaderEdits,
    /// A regex rewrite of the path the upstream receives, with captures:
    /// `{regex: "^/api/v(\\d+)/(.*)", replacement: "/$2?version=$1"}`.
    #[serde(default)]
    pub path_rewrite: Option<PathRewrite>,
    /// Shadow upstreams that get a copy of a share of the route's requests, body included
    /// (an Istio VirtualService's `mirrors`, Envoy's request mirror policies). Fire and
    /// forget: the client's response never waits on a mirror.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub mirrors: Vec<MirrorConfig>,
    /// The schemes the route serves (Kong's `protocols`): `http`, `https` or both
    /// (default). A route that serves only `https` answers a plain-text request with
    /// `https_redirect_status_code`. A request is HTTPS when it arrived on a TLS
    /// listener, or when a trusted proxy says so in `X-Forwarded-Proto`.
    #[serde(default = "default_protocols", deserialize_with = "lenient_vec")]
    pub protocols: Vec<Protocol>,
    /// What an `https`-only route answers a plain-text request (Kong's field): 426
    /// (default, `{"message":"Please use HTTPS protocol"}`) or a redirect to the same
    /// URL over HTTPS with 301, 302, 307 or 308.
    #[serde(default = "default_https_redirect_status_code")]
    pub https_redirect_status_code: u16,
    /// Response compression (gzip, zstd) for clients that accept it:
    /// `{algorithms: [gzip, zstd], min_size: 1024, content_types: [...], level: 6}`.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// The whole request's deadline upstream, retries and backoff included; past it the
    /// client gets 504. Default: none.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// The route's own retry policy (Istio's `retries`: `attempts`, `per_try_timeout`,
    /// `retry_on`), replacing the upstream's for its requests. Default: the upstream's.
    #[serde(default)]
    pub retries: Option<super::resilience::RouteRetryConfig>,
}

/// A scheme a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Plain-text HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

fn default_protocols() -> Vec<Protocol> {
    vec![Protocol::Http, Protocol::Https]
}

fn default_https_redirect_status_code() -> u16 {
    426
}

/// One shadow upstream of a route (`routes[].mirrors[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The shadow upstream (its targets, balancer and timeouts apply).
    pub upstream: String,
    /// Percent of the route's requests copied (0 to 100, fractions allowed; default 100).
    #[serde(default = "default_mirror_percentage")]
    pub percentage: f64,
    /// Copies in flight at once to this shadow (1 to 10,000; default 64). A request
    /// drawn while that many are still running is not mirrored, and is counted as
    /// dropped: a shadow that hangs costs at most this many tasks and body buffers.
    #[serde(default = "default_mirror_max_in_flight")]
    pub max_in_flight: u32,
}

fn default_mirror_percentage() -> f64 {
    100.0
}

fn default_mirror_max_in_flight() -> u32 {
    64
}

/// A route's response compression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// The encodings offered, among `gzip` and `zstd` (default both; `br` is refused
    /// until Pingora's brotli encoder ends its streams); the client's preference
    /// (`Accept-Encoding`) picks among them.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Responses whose `Content-Length` is below this many bytes are sent as they are
    /// (default 1024). Responses without a length are compressed.
    #[serde(default = "default_min_size")]
    pub min_size: u64,
    /// Media types compressed (without parameters, case-insensitive; `type/*` matches any
    /// subtype). Default: text/html, text/plain, text/css, text/javascript,
    /// application/javascript, application/json, application/xml, image/svg+xml.
    #[serde(default = "default_compressed_types")]
    pub content_types: Vec<String>,
    /// The compression level, 1 (fastest) to 9 (smallest) (default 6).
    #[serde(default = "default_level")]
    pub level: u32,
}

fn default_algorithms() -> Vec<String> {
    vec!["gzip".into(), "zstd".into()]
}
fn default_min_size() -> u64 {
    1024
}
fn default_compressed_types() -> Vec<String> {
    [
        "text/html",
        "text/plain",
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/json",
        "application/xml",
        "image/svg+xml",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
fn default_level() -> u32 {
    6
}

/// A route's regex path rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathRewrite {
    /// The pattern, matched against the path (without the query); its first match is
    /// replaced.
    pub regex: String,
    /// The replacement: `$1` or `${1}` for a capture group, `${name}` for a named one;
    /// a `?` in it starts a query, joined before the request's own query.
    pub replacement: String,
}

/// Header edits a route makes: `remove` first, then `set` (replacing every value of the
/// name), then `add` (after the existing values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    /// Names to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Names and the value that replaces theirs.
    #[serde(default)]
    pub set: std::collections::BTreeMap<String, String>,
    /// Names and a value added after theirs.
    #[serde(default)]
    pub add: std::collections::BTreeMap<String, String>,
}

impl HeaderEdits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// One side of a route's weighted split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// The upstream that gets this share.
    pub upstream: String,
    /// Percent of the route's requests (0 to 100).
    pub weight: u32,
}

/// How many labels the `*` of a route's wildcard hosts stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WildcardLabels {
    /// One or more: `*.example.com` matches `a.example.com` and `a.b.example.com`.
    #[default]
    Any,
    /// Exactly one: `*.example.com` matches `a.example.com`, not `a.b.example.com`.
    One,
}

impl WildcardLabels {
    /// Whether this is the default, `any`.
    pub fn is_any(&self) -> bool {
        *self == WildcardLabels::Any
    }
}

/// What keeps a client on one side of a route's split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SplitHashOn {
    /// Each request drawn at random.
    #[default]
    None,
    /// The client IP.
    Ip,
    /// A request header (`split_hash_on_header`).
    Header,
    /// A cookie (`split_hash_on_cookie`).
    Cookie,
}

/// A path condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// The whole path equals this.
    Exact(String),
    /// The path starts with these path elements, like a Kubernetes Ingress `Prefix`:
    /// `/foo` matches `/foo` and `/foo/bar` but not `/foobar`.
    Prefix(String),
    /// A regular expression, anchored at the start of the path (as in Kong).
    Regex(String),
}

impl JsonSchema for PathMatch {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PathMatch".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = |key: &str, doc: &str| {
            serde_json::json!({
                "type": "object",
                "additionalProperties": false,
                "required": [key],
                "properties": { key: { "type": "string", "description": doc } }
            })
        };
        schemars::json_schema!({
            "description": "A path condition: a string is a prefix; or one of {exact: ...}, {prefix: ...}, {regex: ...}.",
            "oneOf": [
                { "type": "string", "description": "A prefix, element-wise like a Kubernetes Ingress `Prefix`." },
                one("exact", "The whole path equals this."),
                one("prefix", "The path starts with these path elements: `/foo` matches `/foo` and `/foo/bar` but not `/foobar`."),
                one("regex", "A regular expression, anchored at the start of the path (as in Kong).")
            ]
        })
    }
}

impl<'de> Deserialize<'de> for PathMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PathMatch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path prefix, or one of {exact: ...}, {prefix: ...}, {regex: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PathMatch, E> {
                Ok(PathMatch::Prefix(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PathMatch, A::Error> {
                const KINDS: &[&str] = &["exact", "prefix", "regex"];
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "empty path condition; use one of exact, prefix, regex",
                    ));
                };
                let value: String = map.next_value()?;
                let m = match kind.as_str() {
                    "exact" => PathMatch::Exact(value),
                    "prefix" => PathMatch::Prefix(value),
                    "regex" => PathMatch::Regex(value),
                    other => return Err(de::Error::unknown_field(other, KINDS)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a path condition has exactly one of exact, prefix, regex; found `{extra}` too"
                    )));
                }
                Ok(m)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A header condition: exactly one of `exact`, `regex`, `present`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    /// Header name (case-insensitive).
    pub name: String,
    /// The value equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value matches this regular expression (unanchored unless you anchor it).
    #[serde(default)]
    pub regex: Option<String>,
    /// `true`: the header is present; `false`: it is absent.
    #[serde(default)]
    pub present: Option<bool>,
}

/// A query parameter condition: exactly one of `exact`, `regex`, `present`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryMatch {
    /// Parameter name, percent-decoded (case-sensitive: `Id` is not `id`).
    pub name: String,
    /// The parameter's first value, percent-decoded, equals this (case-sensitive).
    #[serde(default)]
    pub exact: Option<String>,
    /// The parameter's first value, percent-decoded, matches this regular expression
    /// (unanchored unless you anchor it).
    #[serde(default)]
    pub regex: Option<String>,
    /// `true`: the parameter is present (with any value, even empty); `false`: absent.
    #[serde(default)]
    pub present: Option<bool>,
}
