//! A configuration compiled for serving: router, upstream pools, plugin chains and
//! forwarding settings. Built once per load, shared read-only by every request, and
//! swapped whole on reload.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use pingway_plugins::ca_certificates::CaCertificates;
use pingway_plugins::config::Diagnostic;
use pingway_plugins::prometheus::Metrics;
use pingway_plugins::{ConsumerSet, Registry, RouteInfo, Services};

use crate::chain::{CachedInstance, Chain, InstanceBuilder, InstanceKey, ScopeKey, Slot};
use crate::client_identity::ClientIdentity;
use crate::config::{self, GatewayConfig, LoadedConfig};
use crate::request_head::HeadPolicy;
use crate::router::Router;
use crate::upstream::Upstream;

/// One route, ready to serve.
pub struct CompiledRoute {
    /// Name and upstream name, as plugins see them.
    pub info: Arc<RouteInfo>,
    /// The pool that serves the route (what its split leaves, if it has one).
    pub upstream: Arc<Upstream>,
    /// The route's weighted split over other upstreams (`routes[].split`).
    pub split: Option<crate::upstream::RouteSplit>,
    /// Header edits on the upstream request (`routes[].request_headers`).
    pub request_headers: Option<Box<crate::route_headers::CompiledEdits>>,
    /// Header edits on the client's response (`routes[].response_headers`).
    pub response_headers: Option<Box<crate::route_headers::CompiledEdits>>,
    /// The regex path rewrite (`routes[].path_rewrite`).
    pub path_rewrite: Option<Box<crate::route_rewrite::CompiledRewrite>>,
    /// Remove the matched path prefix before forwarding.
    pub strip_prefix: bool,
    /// Forward the client's Host header.
    pub preserve_host: bool,
    /// Shadow upstreams copies of requests go to (`routes[].mirrors`).
    pub mirrors: Box<[crate::mirror::Mirror]>,
    /// What the route answers a plain-text request when it serves only HTTPS
    /// (`protocols: [https]`): its `https_redirect_status_code`.
    pub https_only: Option<http::StatusCode>,
    /// The request's deadline upstream, retries included (`routes[].timeout`).
    pub timeout: Option<std::time::Duration>,
    /// The route's own retry policy (`routes[].retries`).
    pub retry: Option<Arc<crate::upstream::RouteRetry>>,
    /// Plugins, highest priority first.
    pub chain: Chain,
    /// Request counters for the admin API's `/stats` (carried over by route name).
    pub stats: Arc<crate::live_stats::RouteStats>,
    /// The response cache its `proxy-cache` plugin enables.
    pub cache: Option<Arc<crate::cache::RouteCache>>,
    /// Response compression (`routes[].compression`).
    pub compression: Option<Box<crate::compression::CompiledCompression>>,
}

impl std::fmt::Debug for CompiledRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRoute")
            .field("name", &self.info.name)
            .field("upstream", &self.info.upstream)
            .field("chain", &self.chain)
            .finish()
    }
}

/// Response headers the proxy adds, precomputed.
#[derive(Debug, Clone)]
pub struct HeaderSettings {
    /// The request-id header name (configured; interned so adding it costs nothing).
    /// Interning leaks one string per distinct name for the life of the process; that is
    /// bounded by the names an operator writes into `proxy.request_id_header`, not by
    /// traffic or endpoint churn.
    pub request_id: crate::headers::Known,
    /// `X-Forwarded-Port` values for the listeners' ports. Interned too: at most one
    /// value per port number (65,536 of at most 5 bytes), whatever reloads do.
    pub ports: Vec<(u16, HeaderValue)>,
    /// `Via` value, when enabled.
    pub via: Option<HeaderValue>,
    /// Whether to add the latency headers.
    pub latency: bool,
    /// Whether to send X-Forwarded-* and X-Real-IP upstream.
    pub forwarded: bool,
    /// Whether header names go upstream spelled as the client sent them.
    pub preserve_case: bool,
}

/// A compiled configuration.
pub struct Runtime {
    /// The configuration it was compiled from.
    pub config: Arc<GatewayConfig>,
    /// Route lookup.
    pub router: Router,
    /// Routes by the router's index (the order of the file).
    pub routes: Vec<CompiledRoute>,
    /// Pools by name.
    pub upstreams: HashMap<String, Arc<Upstream>>,
    /// Global plugins alone: what runs (response and log phases) when no route matched.
    pub global_chain: Chain,
    /// The consumers and their credentials.
    pub consumers: Arc<ConsumerSet>,
    /// Shared services plugins reach by type (the consumers among them).
    pub services: Services,
    /// Each consumer's own plugins (only consumers that have some), by consumer id,
    /// sorted like a chain.
    pub consumer_plugins: HashMap<Arc<str>, Box<[Slot]>>,
    /// Client IP and request-id rules.
    pub identity: ClientIdentity,
    /// Headers the proxy adds to responses.
    pub headers: HeaderSettings,
    /// What a request head is checked against before routing.
    pub head_policy: HeadPolicy,
    /// Plugin instances by attachment, offered to the next reload for reuse.
    instances: HashMap<InstanceKey, CachedInstance>,
    /// How many plugin instances were carried over from the previous configuration.
    pub reused_instances: usize,
    /// The access log, when the configuration has an `access_log:` section (carried
    /// from the previous configuration when that section did not change).
    pub access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// The HTTPS listeners' certificates, by listener address (what their SNI resolvers
    /// read at each handshake).
    pub certificates: crate::tls::ListenerCertificates,
    /// Pending ACME challenges and order counters (one for the process, carried from
    /// configuration to configuration).
    pub acme: Arc<crate::acme::AcmeState>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("routes", &self.routes.len())
            .field("upstreams", &self.upstreams.len())
            .finish()
    }
}

/// Builds the index of every credential kind plugins registered from the consumers'
/// entries (an empty index for a kind no consumer uses, so its plugin always finds one)
/// and offers each as a shared service. A consumer field that is neither a built-in one
/// nor a registered kind is refused here, where the registry is known.
fn registered_credentials(
    configs: &[config::ConsumerConfig],
    consumers: &ConsumerSet,
    registry: &Registry,
    services: &mut Services,
    diags: &mut Vec<Diagnostic>,
) {
    let mut entries: HashMap<&str, Vec<_>> = registry
        .credential_kinds()
        .map(|k| (k.field(), Vec::new()))
        .collect();
    for (i, c) in configs.iter().enumerate() {
        let consumer = c.effective_id().and_then(|id| consumers.by_id(id));
        for (field, node) in &c.registered_credentials {
            let path = format!("consumers[{i}].{field}");
            let Some(list) = entries.get_mut(field.as_str()) else {
                let known: Vec<&str> = registry.credential_kinds().map(|k| k.field()).collect();
                diags.push(Diagnostic::new(
                    path,
                    format!(
                        "unknown field `{field}`: not a consumer field, nor a credential kind a plugin registered{}",
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", known.join(", "))
                        }
                    ),
                ));
                continue;
            };
            let Some(consumer) = consumer else { continue };
            match &node.value {
                pingway_plugins::config::NodeValue::Seq(items) => {
                    for (j, item) in items.iter().enumerate() {
                        list.push((consumer.clone(), item, format!("{path}[{j}]")));
                    }
                }
                _ => diags.push(Diagnostic::new(path, "expected a list of credentials")),
            }
        }
    }
    for kind in registry.credential_kinds() {
        let list = entries.remove(kind.field()).unwrap_or_default();
        match kind.build(list) {
            Ok(index) => index.insert_into(services),
            Err(mut d) => diags.append(&mut d),
        }
    }
}

/// The `Via` header value: `1.1 pingway/<version>`.
pub fn via_value() -> HeaderValue {
    HeaderValue::from_static(concat!("1.1 pingway/", env!("CARGO_PKG_VERSION")))
}

impl Runtime {
    /// Compiles `loaded`, reusing plugin instances and upstream target state from
    /// `previous` where their configuration did not change. Returns every problem found,
    /// each placed in the file.
    pub fn build(
        loaded: &LoadedConfig,
        registry: &Registry,
        previous: Option<&Runtime>,
    ) -> Result<Runtime, Vec<Diagnostic>> {
        let cfg = &loaded.config;
        let mut diags = config::validate::check(cfg);
        let started = std::time::Instant::now();
        let certificates = crate::tls::ListenerCertificates::build(
            cfg,
            previous.map(|p| &p.certificates),
            &mut diags,
        );
        log::debug!(
            "listener certificates loaded in {:.3} s",
            started.elapsed().as_secs_f64()
        );

        let mut upstreams = HashMap::with_capacity(cfg.upstreams.len());
        for (i, u) in cfg.upstreams.iter().enumerate() {
            let prev = previous
                .and_then(|p| p.upstreams.get(&u.name))
                .map(Arc::as_ref);
            match Upstream::build(u, &format!("upstreams[{i}]"), prev) {
                Ok(pool) => {
                    upstreams.insert(u.name.clone(), Arc::new(pool));
                }
                Err(mut d) => diags.append(&mut d),
            }
        }

        let router = match Router::build(&cfg.routes) {
            Ok(r) => Some(r),
            Err(mut d) => {
                diags.append(&mut d);
                None
            }
        };

        let consumers = match ConsumerSet::build(&cfg.consumers, "consumers") {
            Ok(set) => Arc::new(set),
            Err(mut d) => {
                diags.append(&mut d);
                Arc::new(ConsumerSet::new_empty())
            }
        };
        let ca_certificates = Arc::new(crate::tls::ca_certificates(
            &cfg.ca_certificates,
            &mut diags,
        ));
        // Plugins that read the consumers or the CA certificates when built (auth
        // plugins, mtls-auth's trusted CAs) are rebuilt when either changed.
        let consumers_changed = previous.is_none_or(|p| {
            p.config.consumers != cfg.consumers
                || p.services.get::<CaCertificates>() != Some(&*ca_certificates)
        });
        let mut services = Services::new();
        services.insert(ca_certificates);
        registered_credentials(
            &cfg.consumers,
            &consumers,
            registry,
            &mut services,
            &mut diags,
        );
        services.insert(consumers.clone());
        diags.extend(pingway_plugins::mtls_auth::credentials::check_ca_references(&services));
        // One set of Redis clients for the process: connections survive reloads, and
        // every plugin configured with the same Redis shares one.
        services.insert(pingway_plugins::redis::RedisPools::process());
        // The prometheus plugin's series: one registry for the process, carried from
        // the configuration being replaced, with this configuration's names interned.
        let metrics = previous
            .and_then(|p| p.services.get_arc::<Metrics>())
            .unwrap_or_else(|| Arc::new(Metrics::new()));
        metrics.intern(
            cfg.routes
                .iter()
                .map(|r| (r.name.as_str(), r.upstream.as_str())),
            cfg.consumers.iter().filter_map(|c| {
                let id = c.effective_id()?;
                Some((id, c.username.as_deref().unwrap_or(id)))
            }),
        );
        services.insert(metrics);
        let mut instances = InstanceBuilder::new(
            registry,
            previous.map(|p| &p.instances),
            &services,
            consumers_changed,
        );
        let global = instances.build_list(&cfg.plugins, "plugins", &ScopeKey::Global, &mut diags);
        let mut consumer_plugins = HashMap::new();
        for (i, c) in cfg.consumers.iter().enumerate() {
            let Some(id) = c.effective_id().filter(|_| !c.plugins.is_empty()) else {
                continue;
            };
            let mut slots = instances.build_list(
                &c.plugins,
                &format!("consumers[{i}].plugins"),
                &ScopeKey::Consumer(id.to_string()),
                &mut diags,
            );
            slots.sort_by(|a, b| {
                let p = |s: &Slot| s.instance.as_ref().map_or(i32::MIN, |i| i.priority);
                p(b).cmp(&p(a)).then_with(|| a.name.cmp(&b.name))
            });
            consumer_plugins.insert(Arc::from(id), slots.into_boxed_slice());
        }
        let mut routes = Vec::with_capacity(cfg.routes.len());
        let previous_stats = crate::live_stats::by_name(
            previous
                .into_iter()
                .flat_map(|p| p.routes.iter().map(|r| (&*r.info.name, &r.stats))),
        );
        for (i, r) in cfg.routes.iter().enumerate() {
            pingway_plugins::pace::point();
            let slots = instances.build_list(
                &r.plugins,
                &format!("routes[{i}].plugins"),
                &ScopeKey::Route(r.name.clone()),
                &mut diags,
            );
            let request_headers = crate::route_headers::CompiledEdits::compile(
                &r.request_headers,
                &format!("routes[{i}].request_headers"),
                &mut diags,
            );
            let response_headers = crate::route_headers::CompiledEdits::compile(
                &r.response_headers,
                &format!("routes[{i}].response_headers"),
                &mut diags,
            );
            let path_rewrite = r.path_rewrite.as_ref().and_then(|rw| {
                crate::route_rewrite::CompiledRewrite::compile(
                    rw,
                    &format!("routes[{i}].path_rewrite"),
                    &mut diags,
                )
            });
            let compression = r.compression.as_ref().and_then(|c| {
                crate::compression::CompiledCompression::compile(
                    c,
                    &format!("routes[{i}].compression"),
                    &mut diags,
                )
            });
            let Some(upstream) = upstreams.get(&r.upstream) else {
                continue; // reported by validation (or by the upstream's own build)
            };
            routes.push(CompiledRoute {
                info: Arc::new(RouteInfo::new(r.name.as_str(), r.upstream.as_str())),
                upstream: upstream.clone(),
                split: crate::upstream::RouteSplit::compile(r, |name| upstreams.get(name).cloned()),
                request_headers,
                response_headers,
                path_rewrite,
                strip_prefix: r.strip_prefix,
                preserve_host: r.preserve_host,
                mirrors: r
                    .mirrors
                    .iter()
                    .filter_map(|m| {
                        crate::mirror::Mirror::compile(m, |name| upstreams.get(name).cloned())
                    })
                    .collect(),
                https_only: (!r.protocols.contains(&config::Protocol::Http))
                    .then(|| http::StatusCode::from_u16(r.https_redirect_status_code).ok())
                    .flatten(),
                timeout: r.timeout.map(|t| t.get()),
                retry: r
                    .retries
                    .as_ref()
                    .map(|c| Arc::new(crate::upstream::RouteRetry::new(c))),
                chain: Chain::compose(&global, &slots),
                stats: previous_stats
                    .get(r.name.as_str())
                    .cloned()
                    .unwrap_or_default(),
                cache: crate::cache::RouteCache::for_route(&r.plugins, &cfg.plugins),
                compression,
            });
        }

        if !diags.is_empty() {
            loaded.locate(&mut diags);
            config::sort(&mut diags);
            return Err(diags);
        }
        let Some(router) = router else {
            return Err(vec![Diagnostic::new(
                "routes",
                "the route table could not be compiled",
            )]);
        };
        let reused_instances = instances.reused;
        let instances = instances.finish();
        let access_log = match &cfg.access_log {
            Some(c) => Some(
                crate::access_log::AccessLog::start(
                    c,
                    previous.and_then(|p| p.access_log.as_ref()),
                )
                .map_err(|e| {
                    vec![Diagnostic::new(
                        "access_log",
                        format!("cannot start the writer: {e}"),
                    )]
                })?,
            ),
            None => None,
        };
        Ok(Runtime {
            config: Arc::new(cfg.clone()),
            router,
            routes,
            upstreams,
            global_chain: Chain::compose(&global, &[]),
            consumers,
            services,
            consumer_plugins,
            identity: ClientIdentity::new(&cfg.proxy),
            head_policy: HeadPolicy::new(
                cfg.proxy.escaped_slashes,
                cfg.proxy.max_request_header_bytes,
                cfg.proxy.max_request_headers,
                &cfg.proxy.request_id_header,
            ),
            headers: HeaderSettings {
                request_id: crate::headers::Known::configured(&crate::headers::title_case(
                    &cfg.proxy.request_id_header,
                ))
                .unwrap_or(crate::headers::REQUEST_ID),
                ports: cfg
                    .listeners
                    .iter()
                    .filter_map(|l| l.address.parse::<std::net::SocketAddr>().ok())
                    .filter_map(|a| {
                        Some((
                            a.port(),
                            crate::headers::static_value(&a.port().to_string())?,
                        ))
                    })
                    .collect(),
                via: cfg.proxy.via_header.then(via_value),
                latency: cfg.proxy.latency_headers,
                forwarded: cfg.proxy.forwarded_headers,
                preserve_case: cfg.proxy.preserve_header_case,
            },
            instances,
            reused_instances,
            access_log,
            certificates,
            acme: previous.map_or_else(Default::default, |p| p.acme.clone()),
        })
    }

    /// Every plugin instance of this configuration (global, route and consumer ones),
    /// each once.
    pub fn plugin_instances(&self) -> impl Iterator<Item = &Arc<dyn pingway_plugins::Plugin>> {
        self.instances.values().map(|c| c.plugin())
    }

    /// `X-Forwarded-Port` for a request that arrived on `port`.
    pub fn port_value(&self, port: u16) -> HeaderValue {
        self.headers
            .ports
            .iter()
            .find(|(p, _)| *p == port)
            .map_or_else(|| HeaderValue::from(port), |(_, v)| v.clone())
    }

    /// All upstream pools (for the health checker).
    pub fn upstream_list(&self) -> Vec<Arc<Upstream>> {
        self.upstreams.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str, previous: Option<&Runtime>) -> Runtime {
        let loaded = config::load_str(yaml).expect("parses");
        Runtime::build(&loaded, &pingway_plugins::registry(), previous).expect("builds")
    }

    const BASE: &str = "\
listeners: [{address: 127.0.0.1:1}]
upstreams: [{name: u, targets: [127.0.0.1:2]}]
routes:
  - name: r
    upstream: u
    plugins:
      - name: key-auth
        config: {anonymous: a}
      - name: rate-limiting
        config: {minute: 1}
";

    /// A credential kind a third-party plugin brings: tokens, indexed by value.
    struct Tokens;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct TokenEntry {
        token: String,
    }

    struct TokenIndex(HashMap<String, Arc<pingway_plugins::Consumer>>);

    impl pingway_plugins::CredentialKind for Tokens {
        const FIELD: &'static str = "token_credentials";
        type Config = TokenEntry;
        type Index = TokenIndex;

        fn index(
            entries: Vec<pingway_plugins::Credential<TokenEntry>>,
        ) -> Result<TokenIndex, pingway_plugins::ConfigError> {
            let mut map = HashMap::new();
            for e in entries {
                if map.insert(e.config.token, e.consumer).is_some() {
                    return Err(pingway_plugins::ConfigError::new(
                        format!("{}.token", e.path),
                        "duplicate token",
                    ));
                }
            }
            Ok(TokenIndex(map))
        }
    }

    fn with_tokens() -> Registry {
        let mut r = pingway_plugins::registry();
        r.register_credential::<Tokens>();
        r
    }

    fn problems(yaml: &str, registry: &Registry) -> Vec<String> {
        let loaded = config::load_str(yaml).expect("parses");
        match Runtime::build(&loaded, registry, None) {
            Ok(_) => Vec::new(),
            Err(d) => d
                .into_iter()
                .map(|d| format!("{}: {}", d.path, d.message))
                .collect(),
        }
    }

    #[test]
    fn a_registered_credential_kind_is_indexed_as_a_service() {
        let yaml = format!(
            "{BASE}consumers:\n  - username: a\n  - username: bob\n    token_credentials: [{{token: t-1}}, {{token: t-2}}]\n"
        );
        let loaded = config::load_str(&yaml).expect("parses");
        let rt = Runtime::build(&loaded, &with_tokens(), None).expect("builds");
        let index = rt
            .services
            .get::<TokenIndex>()
            .expect("the index is a service");
        assert_eq!(index.0.len(), 2);
        assert_eq!(index.0.get("t-2").map(|c| &*c.id), Some("bob"));
        // The consumer set itself is unchanged by the kind.
        assert_eq!(rt.consumers.len(), 2);
    }

    #[test]
    fn credential_fields_are_checked_against_the_registry() {
        // Not registered: refused with its path, naming what is.
        let yaml = format!("{BASE}consumers:\n  - username: a\n  - username: b\n    token_credentials: [{{token: t}}]\n");
        let p = problems(&yaml, &pingway_plugins::registry());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("consumers[1].token_credentials: unknown field"),
            "{p:?}"
        );
        // A typo next to a registered kind.
        let typo = yaml.replace("token_credentials", "token_credential");
        let p = problems(&typo, &with_tokens());
        // (the stock registry brings mtls-auth's kind too)
        assert!(
            p[0].contains("(mtls_auth_credentials, token_credentials)"),
            "{p:?}"
        );
        // An entry that does not type, and a duplicate the kind's index refuses.
        let bad = yaml.replace("{token: t}", "{token: t, extra: 1}");
        let p = problems(&bad, &with_tokens());
        assert!(
            p.iter()
                .any(|m| m.starts_with("consumers[1].token_credentials[0].extra")),
            "{p:?}"
        );
        let dup = yaml.replace("{token: t}", "{token: t}, {token: t}");
        let p = problems(&dup, &with_tokens());
        assert_eq!(
            p,
            ["consumers[1].token_credentials[1].token: duplicate token"]
        );
    }

    #[test]
    fn consumer_changes_rebuild_only_plugins_that_use_consumers() {
        let one = format!("{BASE}consumers: [{{username: a}}]\n");
        let first = build(&one, None);
        let same = build(&one, Some(&first));
        assert_eq!(same.reused_instances, 2);
        // key-auth checks its anonymous consumer at build: rebuilt; rate-limiting (and
        // its counters) carried over.
        let two = format!("{BASE}consumers: [{{username: a}}, {{username: b}}]\n");
        let next = build(&two, Some(&same));
        assert_eq!(next.reused_instances, 1);
        assert_eq!(next.consumers.len(), 2);
    }

    #[test]
    fn consumer_plugins_are_kept_by_consumer_id() {
        let yaml = format!(
            "{BASE}consumers:\n  - username: a\n  - username: b\n    id: b-1\n    plugins:\n      - name: rate-limiting\n        config: {{minute: 5}}\n"
        );
        let rt = build(&yaml, None);
        assert!(!rt.consumer_plugins.contains_key("a"));
        let slots = rt.consumer_plugins.get("b-1").expect("b's plugins");
        assert_eq!(&*slots[0].name, "rate-limiting");
    }
}
