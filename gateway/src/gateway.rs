//! The embedding API: build a gateway from a configuration file and a plugin registry,
//! add your own plugins or Pingora services, and run it.
//!
//! ```no_run
//! use pingway::Gateway;
//! # struct MyPlugin;
//! # impl pingway::plugins::Plugin for MyPlugin {}
//! # impl pingway::plugins::BuildPlugin for MyPlugin {
//! #     const NAME: &'static str = "my-plugin";
//! #     const PRIORITY: i32 = 500;
//! #     type Config = ();
//! #     fn build(_: (), _: &pingway::plugins::BuildContext<'_>) -> Result<Self, pingway::plugins::ConfigError> { Ok(MyPlugin) }
//! # }
//! let gateway = Gateway::builder()
//!     .register::<MyPlugin>()
//!     .config_file("gateway.yaml")
//!     .build()
//!     .unwrap_or_else(|e| { eprintln!("{e}"); std::process::exit(1) });
//! gateway.run();
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use pingora_core::services::ServiceWithDependents;
use pingway_plugins::config::Diagnostic;
use pingway_plugins::{BuildPlugin, PluginFactory, Registry};

use crate::admin::{AdminApi, MetricsRenderer};
use crate::config::{self, LoadError};
use crate::downstream::GuardedApp;
use crate::plugin_lifecycle::PluginDrain;
use crate::proxy::PingwayProxy;
use crate::reload::Reloader;
use crate::runtime::Runtime;
use crate::upstream::{HealthChecker, TargetRefresher};
use pingora_core::apps::HttpServerOptions;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No configuration file was given to the builder.
    #[error("no configuration file given")]
    NoConfig,
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid configuration; each problem names its line and field.
    #[error("{}", render_diagnostics(.path, .diagnostics))]
    Invalid {
        /// The file.
        path: String,
        /// The problems.
        diagnostics: Vec<Diagnostic>,
    },
    /// An HTTPS listener's TLS settings could not be made.
    #[error("cannot set up TLS on {address}: {message}")]
    Tls {
        /// The listener's address.
        address: String,
        /// The cause.
        message: String,
    },
    /// A listener address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// `FILE:LINE:COLUMN: path: message`, one per line.
pub fn render_diagnostics(file: &str, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.display_in(file).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Configures a [`Gateway`].
pub struct GatewayBuilder {
    registry: Registry,
    config_path: Option<PathBuf>,
    watch: bool,
    services: Vec<Box<dyn ServiceWithDependents>>,
}

impl Default for GatewayBuilder {
    fn default() -> Self {
        GatewayBuilder {
            registry: pingway_plugins::registry(),
            config_path: None,
            watch: true,
            services: Vec::new(),
        }
    }
}

impl GatewayBuilder {
    /// Registers a plugin type beside the stock ones (a later registration of the same
    /// name replaces the earlier).
    pub fn register<P: BuildPlugin>(mut self) -> Self {
        self.registry.register::<P>();
        self
    }

    /// Registers a hand-written plugin factory.
    pub fn register_factory(mut self, factory: Arc<dyn PluginFactory>) -> Self {
        self.registry.register_factory(factory);
        self
    }

    /// Replaces the registry (for example one without the stock plugins).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// The configuration file to serve (and to watch for changes).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// Whether to reload when the file changes (default true). SIGHUP always reloads.
    pub fn watch_file(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Runs another Pingora service in the same server (the demo adds its echo backends
    /// this way).
    pub fn add_service(mut self, service: impl ServiceWithDependents + 'static) -> Self {
        self.services.push(Box::new(service));
        self
    }

    /// Loads and compiles the configuration. Nothing listens yet.
    pub fn build(self) -> Result<Gateway, StartError> {
        let path = self.config_path.ok_or(StartError::NoConfig)?;
        let file = path.display().to_string();
        let text = config::file::read_config_file(&path).map_err(|source| StartError::Read {
            path: file.clone(),
            source,
        })?;
        let invalid = |diagnostics| StartError::Invalid {
            path: file.clone(),
            diagnostics,
        };
        let started = std::time::Instant::now();
        let loaded = config::load_str(&text).map_err(invalid)?;
        let parsed = started.elapsed();
        let registry = Arc::new(self.registry);
        let runtime = Runtime::build(&loaded, &registry, None).map_err(invalid)?;
        log::info!(
            "{file}: {} bytes parsed in {:.3} s, compiled in {:.3} s",
            text.len(),
            parsed.as_secs_f64(),
            (started.elapsed() - parsed).as_secs_f64()
        );
        let runtime = Arc::new(ArcSwap::from_pointee(runtime));
        let reloader = Arc::new(Reloader::new(path, text, registry.clone(), runtime.clone()));
        Ok(Gateway {
            registry,
            runtime,
            reloader,
            watch: self.watch,
            services: self.services,
        })
    }
}

/// A gateway ready to run.
pub struct Gateway {
    registry: Arc<Registry>,
    runtime: Arc<ArcSwap<Runtime>>,
    reloader: Arc<Reloader>,
    watch: bool,
    services: Vec<Box<dyn ServiceWithDependents>>,
}

impl Gateway {
    /// Starts configuring a gateway with the stock plugins registered.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// The configuration currently serving (swapped on reload).
    pub fn runtime(&self) -> &Arc<ArcSwap<Runtime>> {
        &self.runtime
    }

    /// The plugin registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Reloads the configuration file now.
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// What `GET /metrics` on the admin API renders.
    fn metrics_renderer(&self, guard: Arc<crate::downstream::GuardCounters>) -> MetricsRenderer {
        let reloader = self.reloader.clone();
        Arc::new(move || crate::metrics::render(&reloader, &guard))
    }

    /// The Pingora server with the proxy, the health checker, the target-name refresher
    /// and any added services, not
    /// yet running. Listener addresses are checked here so a busy port is reported
    /// clearly rather than as a panic inside Pingora.
    pub fn into_server(self) -> Result<Server, StartError> {
        let current = self.runtime.load_full();
        let settings = &current.config.server;
        for l in &current.config.listeners {
            if let Ok(addr) = l.address.parse::<SocketAddr>() {
                check_bindable(addr).map_err(|source| StartError::Listen {
                    address: l.address.clone(),
                    source,
                })?;
            }
        }

        let conf = ServerConf {
            threads: settings
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            work_stealing: settings.work_stealing,
            grace_period_seconds: Some(settings.grace_period.get().as_secs()),
            graceful_shutdown_timeout_seconds: Some(settings.grace_period.get().as_secs().max(1)),
            upstream_keepalive_pool_size: settings.upstream_keepalive_pool,
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();

        // The proxy behind the client-connection guards (connection cap, head deadline).
        let proxy = pingora_proxy::http_proxy(
            &server.configuration,
            PingwayProxy::new(self.runtime.clone()),
        );
        let head_rt = self.runtime.clone();
        let handshakes = crate::tls_handshakes::HandshakeLimits::new(&current.config.listeners);
        let guarded = GuardedApp::new(proxy, settings.max_connections, move || {
            head_rt.load().config.proxy.client_header_timeout.get()
        })
        .with_handshake_limits(handshakes.clone());
        let guard_counters = guarded.counters();
        // A listener on a service: plain TCP, or TLS with its SNI resolver.
        let add_listener = |service: &mut Service<_>, l: &crate::config::Listener| {
            match &l.tls {
                None => service.add_tcp(&l.address),
                Some(tls) => {
                    let resolver = Arc::new(crate::tls::SniResolver::new(
                        self.runtime.clone(),
                        l.address.clone(),
                    ));
                    let client_auth = Arc::new(crate::tls::ClientCertRequest::new(
                        self.runtime.clone(),
                        l.address.clone(),
                    ));
                    let settings = crate::tls::listener_settings(resolver, client_auth, tls.http2)
                        .map_err(|e| StartError::Tls {
                            address: l.address.clone(),
                            message: e.to_string(),
                        })?;
                    service.add_tls_with_settings(&l.address, None, settings);
                }
            }
            Ok::<(), StartError>(())
        };
        // h2c is an option of Pingora's whole app, not of a listener: listeners with
        // `h2c: true` get a second app of the same proxy, under the same guards.
        let (h2c, h1): (Vec<_>, Vec<_>) = current.config.listeners.iter().partition(|l| l.h2c);
        let has_h2c = !h2c.is_empty();
        if has_h2c {
            let mut app = pingora_proxy::http_proxy(
                &server.configuration,
                PingwayProxy::new(self.runtime.clone()),
            );
            let mut options = HttpServerOptions::default();
            options.h2c = true;
            app.server_options = Some(options);
            let mut service = Service::new(
                "pingway proxy (h2c)".to_string(),
                guarded.sharing_guards(app),
            );
            for l in h2c {
                add_listener(&mut service, l)?;
            }
            if let Some(h) = &handshakes {
                service.endpoints().set_pre_tls_callback(h.pre_tls());
            }
            server.add_service(service);
        }
        if !h1.is_empty() || !has_h2c {
            let mut proxy = Service::new("pingway proxy".to_string(), guarded);
            for l in h1 {
                add_listener(&mut proxy, l)?;
            }
            if let Some(h) = &handshakes {
                proxy.endpoints().set_pre_tls_callback(h.pre_tls());
            }
            server.add_service(proxy);
        }

        if let Some(admin) = &current.config.admin {
            let addr: SocketAddr = admin.listen.parse().map_err(|_| StartError::Listen {
                address: admin.listen.clone(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
            check_bindable(addr).map_err(|source| StartError::Listen {
                address: admin.listen.clone(),
                source,
            })?;
            let api = AdminApi::new(self.reloader.clone())
                .with_metrics(self.metrics_renderer(guard_counters));
            let mut service = Service::new(
                "pingway admin".to_string(),
                pingora_core::apps::http_app::HttpServer::new_app(api),
            );
            service.add_tcp(&admin.listen);
            server.add_service(service);
            log::info!("admin API on {}", admin.listen);
        }

        let source_rt = self.runtime.clone();
        let checker = HealthChecker::new(Arc::new(move || source_rt.load().upstream_list()));
        server.add_service(background_service("health checks", checker));
        let source_rt = self.runtime.clone();
        let refresher = TargetRefresher::new(Arc::new(move || source_rt.load().upstream_list()));
        server.add_service(background_service("target names", refresher));
        // ACME certificates: obtained and renewed in the background (idle without an
        // `acme:` section; a reload that adds one is picked up).
        let acme = crate::acme::AcmeRenewal::new(self.runtime.clone());
        server.add_service(background_service("acme certificates", acme));
        // Plugins drain (a log queue flushes) within the grace period of a SIGTERM.
        let drain = PluginDrain::new(self.runtime.clone(), settings.grace_period.get());
        server.add_service(background_service("plugin drain", drain));
        for s in self.services {
            server.add_boxed_service(s);
        }

        if self.watch {
            match self.reloader.watch() {
                // The watcher lives as long as the process.
                Ok(watcher) => std::mem::forget(watcher),
                Err(e) => log::warn!(
                    "cannot watch {}: {e}; reload with SIGHUP",
                    self.reloader.path().display()
                ),
            }
        }
        if let Err(e) = crate::access_log::reopen_on_sigusr1() {
            log::warn!("cannot handle SIGUSR1 (access log reopening): {e}");
        }
        if let Err(e) = self.reloader.reload_on_sighup() {
            log::warn!("cannot handle SIGHUP: {e}");
        }
        if let Err(e) = self
            .reloader
            .reap_periodically(std::time::Duration::from_millis(250))
        {
            log::warn!("cannot start the configuration reaper: {e}");
        }
        log::info!(
            "serving {} routes from {} on {}",
            current.routes.len(),
            self.reloader.path().display(),
            current
                .config
                .listeners
                .iter()
                .map(|l| l.address.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(server)
    }

    /// Runs until SIGINT/SIGTERM. Exits the process when done.
    pub fn run(self) -> ! {
        match self.into_server() {
            Ok(server) => server.run_forever(),
            Err(e) => {
                log::error!("{e}");
                eprintln!("{e}");
                std::process::exit(1)
            }
        }
    }
}

/// Loads and compiles `path` without serving it: what `pingway validate` does.
pub fn validate_file(path: &Path, registry: &Registry) -> Result<Runtime, StartError> {
    let file = path.display().to_string();
    let loaded = config::load_file(path).map_err(|e| match e {
        LoadError::Io { path, source } => StartError::Read { path, source },
        LoadError::Invalid(diagnostics) => StartError::Invalid {
            path: file.clone(),
            diagnostics,
        },
    })?;
    Runtime::build(&loaded, registry, None).map_err(|diagnostics| StartError::Invalid {
        path: file,
        diagnostics,
    })
}

/// Whether `addr` can be bound, checked without listening on it: a socket that listened
/// for the check would accept connections for a moment before Pingora's own listener
/// exists, and a client (or a readiness probe) connecting then would be refused right
/// after. The same `SO_REUSEADDR` as the listeners, so a port in `TIME_WAIT` passes.
fn check_bindable(addr: SocketAddr) -> std::io::Result<()> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bind_check_refuses_a_busy_port_and_never_accepts_connections() {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let err = check_bindable(addr).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(busy);
        // A free port passes, and the check left nothing listening on it.
        check_bindable(addr).unwrap();
        let refused = std::net::TcpStream::connect(addr).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
