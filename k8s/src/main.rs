//! `pingway-k8s`: watches the cluster and keeps the gateway's YAML file up to date
//! (`run`), or does that and serves the gateway in the same process (`serve`, what
//! `pingway run --kubernetes` executes).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use pingway_k8s::events::EventOptions;
use pingway_k8s::leader::{self, Elector, LeaderOptions};
use pingway_k8s::status::{self, StatusOptions};
use pingway_k8s::translate::Limits;
use pingway_k8s::watch::{self, ClusterWrites, Stats, WatchOptions};
use pingway_k8s::UpstreamMode;

/// mimalloc, as the `pingway` binary (the `serve` mode runs the gateway here).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Pingway's Kubernetes watcher.
#[derive(Debug, Parser)]
#[command(name = "pingway-k8s", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Upstreams {
    /// Ready EndpointSlice addresses.
    Endpoints,
    /// The Service's cluster DNS name (for a mesh sidecar).
    Dns,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watch the cluster and write the gateway's configuration to FILE.
    Run(WatchArgs),
    /// Watch the cluster and serve the gateway in this process: the file is written as
    /// by `run` and the gateway reloads it at once after each write (what
    /// `pingway run --kubernetes` executes).
    Serve(WatchArgs),
    /// Print the CustomResourceDefinitions of GatewayPlugin and ClusterGatewayPlugin.
    Crds,
    /// Translate manifest files (as `kubectl apply -f` takes them) without a cluster:
    /// print the gateway's YAML, and each object left out on standard error.
    Translate {
        /// YAML files, several documents each.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The ingress class served (Kong users: `kong`).
        #[arg(long, default_value = "pingway")]
        ingress_class: String,
        /// Where routes send traffic (files rarely hold EndpointSlices: `dns` then).
        #[arg(long, value_enum, default_value = "dns")]
        upstreams: Upstreams,
    },
    /// Readiness check for an exec probe: GET the admin API's /status on loopback; exit
    /// 0 on a 200, else 1.
    Probe {
        /// What to ask.
        #[arg(long, default_value = "http://127.0.0.1:8001/status")]
        url: String,
        /// Timeout of each step, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

/// The watcher's options (`run` and `serve`).
#[derive(Debug, Args)]
struct WatchArgs {
    /// The YAML file written (and read by `pingway run --config`).
    #[arg(
        short,
        long,
        value_name = "FILE",
        default_value = "/etc/pingway/pingway.yaml"
    )]
    output: PathBuf,
    /// The ingress class served (Kong users: `kong`).
    #[arg(long, default_value = "pingway")]
    ingress_class: String,
    /// The Gateway API controller name served: GatewayClasses with this
    /// `spec.controllerName`.
    #[arg(long, default_value = pingway_k8s::translate::DEFAULT_GATEWAY_CONTROLLER)]
    gateway_controller: String,
    /// An address written into served Gateways' `status.addresses` (repeatable;
    /// default none).
    #[arg(long, value_name = "ADDRESS")]
    gateway_address: Vec<String>,
    /// Where routes send traffic.
    #[arg(long, value_enum, default_value = "endpoints")]
    upstreams: Upstreams,
    /// The cluster's DNS domain (for `--upstreams dns`).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The gateway's HTTP listener.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_listen: String,
    /// The gateway's HTTPS listener (written while some Ingress has a certificate).
    #[arg(long, default_value = "0.0.0.0:8443")]
    https_listen: String,
    /// Never write an HTTPS listener.
    #[arg(long)]
    no_https: bool,
    /// The gateway's admin API address (readiness probes use its /status).
    #[arg(long, default_value = "127.0.0.1:8001")]
    admin_listen: String,
    /// Quiet time after a change before regenerating, in milliseconds.
    #[arg(long, default_value_t = 200)]
    debounce_ms: u64,
    /// Ask for streaming initial lists (sendInitialEvents, Kubernetes 1.27+).
    #[arg(long)]
    streaming_list: bool,
    /// At most this many routes in the file (the rest, in namespace/name order, are
    /// left out and logged).
    #[arg(long, default_value_t = Limits::default().max_routes)]
    max_routes: usize,
    /// At most this many upstream pools (in name order).
    #[arg(long, default_value_t = Limits::default().max_upstreams)]
    max_upstreams: usize,
    /// At most this many targets over all pools.
    #[arg(long, default_value_t = Limits::default().max_targets)]
    max_targets: usize,
    /// At most this many certificates (TLS Secrets) on the HTTPS listener.
    #[arg(long, default_value_t = Limits::default().max_certificates)]
    max_certificates: usize,
    /// Talk to this API server URL without credentials (tests and `kubectl proxy`);
    /// default: in-cluster config, else the kubeconfig.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The watcher's own namespace (the Lease lives there); default `POD_NAMESPACE`,
    /// else the client's default namespace.
    #[arg(long, value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// This replica's identity in the Lease and in Events; default `POD_NAME`, else
    /// `HOSTNAME-PID`.
    #[arg(long, value_name = "NAME")]
    identity: Option<String>,
    /// The Lease's name.
    #[arg(long, default_value = "pingway-k8s-leader", value_name = "NAME")]
    lease_name: String,
    /// How long the Lease is valid without renewal, in seconds (renewed every third).
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    lease_duration: u64,
    /// Write nothing to the cluster (no Lease, no Events, no status): a read-only
    /// watcher.
    #[arg(long)]
    read_only: bool,
    /// The gateway's Service, whose `status.loadBalancer` is copied into the Ingresses
    /// served.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = status::parse_service)]
    publish_service: Option<(String, String)>,
    /// Addresses (IPs or host names) written into the Ingresses served, instead of the
    /// Service's.
    #[arg(long, value_name = "ADDRESS,...", value_delimiter = ',')]
    publish_address: Vec<String>,
    /// At most this many Events per translation (the rest are counted and retried).
    #[arg(long, default_value_t = 100, value_name = "N")]
    max_events: usize,
    /// The largest configuration file written, in bytes: the gateway's bound
    /// (`pingway run --max-config-bytes`), so give both the same. Default:
    /// `PINGWAY_MAX_CONFIG_BYTES`, else 4 MiB for `run` (as `pingway run`) and 64 MiB
    /// for `serve` (whose gateway is set to the same).
    #[arg(long, value_name = "BYTES")]
    max_config_bytes: Option<u64>,
    /// How long a certificate or key file that no configuration names any more (beyond
    /// the previous one) is kept, in milliseconds, before it is removed.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    certificate_grace_ms: u64,
}

/// `pingway-k8s serve`'s default bound on the configuration file (64 MiB): about
/// 100,000 TLS hosts with their routes (40,000 take about 24 MiB).
const SERVE_MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", pingway_k8s::crd::crds());
            Ok(())
        }
        Command::Run(args) => {
            let runtime = runtime()?;
            runtime.block_on(async move {
                let (client, opts, _elector) =
                    prepare(args, pingway::config::limits::MAX_FILE_BYTES).await?;
                watch::run(client, opts, Arc::new(Stats::default())).await?;
                Ok(())
            })
        }
        Command::Serve(args) => serve(args),
        Command::Translate {
            files,
            ingress_class,
            upstreams,
        } => {
            let mut snapshot = pingway_k8s::Snapshot::default();
            for f in &files {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?;
                let skipped = pingway_k8s::load::add_manifests(&mut snapshot, &text)
                    .with_context(|| format!("{}", f.display()))?;
                for s in skipped {
                    log::debug!("{}: {s} is not read by the translation", f.display());
                }
            }
            let opts = pingway_k8s::Options {
                ingress_class,
                upstreams: match upstreams {
                    Upstreams::Endpoints => UpstreamMode::Endpoints,
                    Upstreams::Dns => UpstreamMode::Dns,
                },
                ..pingway_k8s::Options::default()
            };
            let t = pingway_k8s::translate(&snapshot, &opts);
            for p in &t.problems {
                eprintln!("skipped: {p}");
            }
            print!("{}", t.yaml);
            Ok(())
        }
        Command::Probe { url, timeout_ms } => {
            match pingway_k8s::probe::probe(&url, Duration::from_millis(timeout_ms)) {
                Ok(()) => Ok(()),
                Err(e) => {
                    eprintln!("not ready: {e}");
                    std::process::exit(1)
                }
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("pingway-k8s")
        .enable_all()
        .build()?)
}

/// The client, the watcher's options and the running election (kept alive by the
/// caller), from the command line; `max_bytes` is the file bound when neither
/// `--max-config-bytes` nor `PINGWAY_MAX_CONFIG_BYTES` says.
async fn prepare(
    args: WatchArgs,
    max_bytes: u64,
) -> anyhow::Result<(kube::Client, WatchOptions, Option<Elector>)> {
    use pingway::config::limits;
    let mut opts = WatchOptions::new(args.output);
    opts.max_file_bytes = limits::configured_max_file_bytes(args.max_config_bytes, max_bytes)
        .map_err(anyhow::Error::msg)?;
    // This process's own reads (the gateway of `serve`) use the same bound.
    limits::set_max_file_bytes(opts.max_file_bytes).map_err(anyhow::Error::msg)?;
    opts.certificate_grace = Duration::from_millis(args.certificate_grace_ms);
    opts.debounce = Duration::from_millis(args.debounce_ms);
    opts.streaming_list = args.streaming_list;
    let t = &mut opts.translate;
    t.ingress_class = args.ingress_class;
    t.gateway_controller = args.gateway_controller;
    t.gateway_addresses = args.gateway_address;
    t.upstreams = match args.upstreams {
        Upstreams::Endpoints => UpstreamMode::Endpoints,
        Upstreams::Dns => UpstreamMode::Dns,
    };
    t.cluster_domain = args.cluster_domain;
    t.http_listener = args.http_listen;
    t.https_listener = (!args.no_https).then_some(args.https_listen);
    t.admin_listen = Some(args.admin_listen);
    t.limits = Limits {
        max_routes: args.max_routes,
        max_upstreams: args.max_upstreams,
        max_targets: args.max_targets,
        max_certificates: args.max_certificates,
    };
    let client = match args.server {
        Some(url) => {
            let uri = url.parse().context("--server is not a URL")?;
            kube::Client::try_from(kube::Config::new(uri))?
        }
        None => kube::Client::try_default().await?,
    };
    if args.read_only {
        return Ok((client, opts, None));
    }
    let namespace = args
        .namespace
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity = args.identity.unwrap_or_else(leader::default_identity);
    let mut lopts = LeaderOptions::new(namespace, identity.clone());
    lopts.name = args.lease_name;
    lopts.lease_duration = Duration::from_secs(args.lease_duration.max(3));
    lopts.renew_period = lopts.lease_duration / 3;
    lopts.renew_deadline = lopts.lease_duration * 2 / 3;
    lopts.retry_period = (lopts.lease_duration / 7).max(Duration::from_secs(1));
    log::info!(
        "electing a leader on lease {}/{} as {identity}",
        lopts.namespace,
        lopts.name
    );
    let elector = Elector::start(client.clone(), lopts);
    let mut events = EventOptions::new(identity);
    events.max_per_round = args.max_events;
    opts.cluster_writes = Some(ClusterWrites {
        leadership: elector.leadership(),
        events,
        status: StatusOptions {
            publish_service: args.publish_service,
            publish_addresses: args.publish_address,
        },
    });
    Ok((client, opts, Some(elector)))
}

/// The watcher on its own runtime, the gateway on Pingora's, one process: the gateway
/// starts once the first file is written, and reloads right after each later write.
fn serve(args: WatchArgs) -> anyhow::Result<()> {
    if let Err(e) = pingway::memory::disable_transparent_huge_pages() {
        log::warn!("could not turn transparent huge pages off: {e}");
    }
    let output = args.output.clone();
    // The file is this process's own: a stale one from an earlier run is not served.
    let _ = std::fs::remove_file(&output);
    let runtime = runtime()?;
    let (written_tx, mut written_rx) = tokio::sync::watch::channel(0u64);
    let written_tx = Arc::new(written_tx);
    let (failed_tx, failed_rx) = std::sync::mpsc::channel::<String>();
    let (client, mut opts, elector) = runtime.block_on(prepare(args, SERVE_MAX_CONFIG_BYTES))?;
    opts.written = Some(Arc::clone(&written_tx));
    let stats = Arc::new(Stats::default());
    runtime.spawn(async move {
        let _elector = elector;
        let e = match watch::run(client, opts, stats).await {
            Ok(()) => "the watcher stopped".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = failed_tx.send(e);
    });
    // Wait for the first file (every store listed and translated once).
    let first = runtime.block_on(async {
        loop {
            if *written_rx.borrow_and_update() > 0 {
                return Ok(());
            }
            if let Ok(e) = failed_rx.try_recv() {
                return Err(anyhow::anyhow!(e));
            }
            tokio::select! {
                _ = written_rx.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    });
    first?;
    let gateway = pingway::Gateway::builder()
        .registry(pingway::stock::registry())
        .config_file(&output)
        // The watcher says when the file changed; no file watch needed.
        .watch_file(false)
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let reloader = Arc::clone(gateway.reloader());
    runtime.spawn(async move {
        while written_rx.changed().await.is_ok() {
            let r = Arc::clone(&reloader);
            let _ = tokio::task::spawn_blocking(move || r.reload_and_log(false)).await;
        }
    });
    std::thread::Builder::new()
        .name("pingway-k8s-exit".into())
        .spawn(move || {
            if let Ok(e) = failed_rx.recv() {
                log::error!("watcher: {e}; exiting");
                std::process::exit(1);
            }
        })?;
    // Keep the watcher's runtime alive while Pingora serves (run never returns).
    let _runtime = runtime;
    gateway.run()
}
