//! `pingway-k8s`: watches the cluster and keeps the gateway's YAML file up to date.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use pingway_k8s::translate::Limits;
use pingway_k8s::watch::{self, Stats, WatchOptions};
use pingway_k8s::UpstreamMode;

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

// Parsed once at start: the size of the `Run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Watch the cluster and write the gateway's configuration to FILE.
    Run {
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
    },
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
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match Cli::parse().command {
        Command::Crds => {
            print!("{}", pingway_k8s::crd::crds());
            Ok(())
        }
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
        Command::Run {
            output,
            ingress_class,
            gateway_controller,
            gateway_address,
            upstreams,
            cluster_domain,
            http_listen,
            https_listen,
            no_https,
            admin_listen,
            debounce_ms,
            streaming_list,
            max_routes,
            max_upstreams,
            max_targets,
            max_certificates,
            server,
        } => {
            let mut opts = WatchOptions::new(output);
            opts.debounce = Duration::from_millis(debounce_ms);
            opts.streaming_list = streaming_list;
            let t = &mut opts.translate;
            t.ingress_class = ingress_class;
            t.gateway_controller = gateway_controller;
            t.gateway_addresses = gateway_address;
            t.upstreams = match upstreams {
                Upstreams::Endpoints => UpstreamMode::Endpoints,
                Upstreams::Dns => UpstreamMode::Dns,
            };
            t.cluster_domain = cluster_domain;
            t.http_listener = http_listen;
            t.https_listener = (!no_https).then_some(https_listen);
            t.admin_listen = Some(admin_listen);
            t.limits = Limits {
                max_routes,
                max_upstreams,
                max_targets,
                max_certificates,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let client = match server {
                    Some(url) => {
                        let uri = url.parse().context("--server is not a URL")?;
                        kube::Client::try_from(kube::Config::new(uri))?
                    }
                    None => kube::Client::try_default().await?,
                };
                watch::run(client, opts, Arc::new(Stats::default())).await?;
                Ok(())
            })
        }
    }
}
