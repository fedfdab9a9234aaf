//! The Kubernetes watcher's translation at scale: a synthetic snapshot of cluster
//! objects (Ingresses, Services, EndpointSlices, KongPlugins) translated into the
//! gateway's configuration, timed, with the memory it takes.
//!
//! ```text
//! k8sscale translate [--ingresses 5000] [--pods 10] [--runs 5] [--kind ingress|httproute]
//! k8sscale regenerate [--ingresses 500] [--pods 10] [--count 10000] [--kind ingress|httproute]
//! ```
//!
//! `translate` prints the time of each translation and its peak heap (a counting
//! allocator over the system allocator, which the `pingway-k8s` binary uses) and the RSS
//! growth. `regenerate` translates `count` times, each time with one Service's pods
//! replaced by pods never seen before (what a rolling deployment does), and prints the
//! live heap and the RSS at the start, the middle and the end.
//!
//! Each Ingress has one host and two paths (`/api` with `strip-path`, `/`), one in five
//! names a rate-limiting KongPlugin; each Service has one EndpointSlice of `pods` ready
//! endpoints. With `--kind httproute` the same routes come from HTTPRoutes instead (one
//! per Service, attached to one Gateway listener allowing all namespaces: `/api` with a
//! URLRewrite of its prefix to `/`, `/`, one in five with an ExtensionRef to the
//! rate-limiting KongPlugin).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use pingway_k8s::{translate, Options, Snapshot};
use serde_json::{json, Value};

/// The system allocator, counting the bytes live and the peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are
// added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Parser)]
#[command(about = "The Kubernetes translation at scale")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time one translation of a large snapshot and its memory.
    Translate {
        /// Ingresses (and Services).
        #[arg(long, default_value_t = 5_000)]
        ingresses: usize,
        /// Ready endpoints per Service.
        #[arg(long, default_value_t = 10)]
        pods: usize,
        /// Translations timed.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// What the routes come from.
        #[arg(long, value_enum, default_value_t = Kind::Ingress)]
        kind: Kind,
    },
    /// Translate many times with churning endpoints; memory at start, middle, end.
    Regenerate {
        /// Ingresses (and Services).
        #[arg(long, default_value_t = 500)]
        ingresses: usize,
        /// Ready endpoints per Service.
        #[arg(long, default_value_t = 10)]
        pods: usize,
        /// Regenerations.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// What the routes come from.
        #[arg(long, value_enum, default_value_t = Kind::Ingress)]
        kind: Kind,
    },
}

/// The kind of object the routes of the synthetic snapshot come from.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    /// `networking.k8s.io/v1` Ingresses.
    Ingress,
    /// Gateway API HTTPRoutes attached to one Gateway.
    Httproute,
}

fn obj<K: serde::de::DeserializeOwned>(v: Value) -> Arc<K> {
    Arc::new(serde_json::from_value(v).expect("a valid object"))
}

const NAMESPACES: usize = 50;

/// The EndpointSlice of Service `i` with the pods of generation `generation`.
fn slice(i: usize, pods: usize, generation: usize) -> Value {
    let ns = format!("ns{:02}", i % NAMESPACES);
    let eps: Vec<Value> = (0..pods)
        .map(|p| {
            // Distinct for every (generation, service, pod) up to 2^24 pods.
            let k = (generation * 100_003 + i * pods + p) % (1 << 24);
            json!({"addresses": [format!("10.{}.{}.{}", k >> 16, (k >> 8) & 0xff, k & 0xff)],
                   "conditions": {"ready": true}})
        })
        .collect();
    json!({"metadata": {"namespace": ns, "name": format!("svc{i}-abcde"),
            "labels": {"kubernetes.io/service-name": format!("svc{i}")}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": eps})
}

fn snapshot(ingresses: usize, pods: usize, kind: Kind) -> Snapshot {
    let mut s = Snapshot::default();
    if kind == Kind::Httproute {
        s.gateway_classes
            .push(obj(json!({"metadata": {"name": "pingway"},
            "spec": {"controllerName": "pingway.io/gateway-controller"}})));
        s.gateways.push(obj(
            json!({"metadata": {"namespace": "infra", "name": "gw"},
            "spec": {"gatewayClassName": "pingway", "listeners": [{"name": "http", "port": 80,
                "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
        ));
    }
    for n in 0..NAMESPACES {
        s.kong_plugins.push(obj(
            json!({"metadata": {"namespace": format!("ns{n:02}"), "name": "rl"},
            "plugin": "rate-limiting", "config": {"minute": 600}}),
        ));
    }
    for i in 0..ingresses {
        let ns = format!("ns{:02}", i % NAMESPACES);
        let svc = format!("svc{i}");
        s.services
            .push(obj(json!({"metadata": {"namespace": ns, "name": svc},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})));
        s.endpoint_slices.push(obj(slice(i, pods, 0)));
        let mut annotations = json!({"konghq.com/strip-path": "true"});
        if i % 5 == 0 {
            annotations["konghq.com/plugins"] = json!("rl");
        }
        if kind == Kind::Httproute {
            s.http_routes.push(obj(http_route(i, &ns, &svc)));
            continue;
        }
        let backend = json!({"service": {"name": svc, "port": {"number": 80}}});
        s.ingresses.push(obj(json!({
            "metadata": {"namespace": ns, "name": format!("ing{i}"), "annotations": annotations},
            "spec": {"ingressClassName": "pingway", "rules": [{"host": format!("app{i}.example.com"),
                "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": backend},
                    {"path": "/", "pathType": "Prefix", "backend": backend}]}}]}})));
    }
    s
}

/// HTTPRoute `i`: the routes of Ingress `i` as the Gateway API writes them.
fn http_route(i: usize, ns: &str, svc: &str) -> Value {
    let backend = json!([{"name": svc, "port": 80}]);
    let mut api_filters = vec![json!({"type": "URLRewrite",
        "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}})];
    let mut root_filters = vec![];
    if i % 5 == 0 {
        let plugin = json!({"type": "ExtensionRef", "extensionRef":
            {"group": "configuration.konghq.com", "kind": "KongPlugin", "name": "rl"}});
        api_filters.push(plugin.clone());
        root_filters.push(plugin);
    }
    json!({
        "metadata": {"namespace": ns, "name": format!("route{i}")},
        "spec": {"parentRefs": [{"name": "gw", "namespace": "infra"}],
            "hostnames": [format!("app{i}.example.com")],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                 "filters": api_filters, "backendRefs": backend},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "filters": root_filters, "backendRefs": backend}]}})
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

fn options() -> Options {
    Options {
        https_listener: None,
        ..Options::default()
    }
}

fn main() {
    match Cli::parse().command {
        Command::Translate {
            ingresses,
            pods,
            runs,
            kind,
        } => {
            let s = snapshot(ingresses, pods, kind);
            let opts = options();
            let (snapshot_heap, rss_before) = (LIVE.load(Ordering::Relaxed), rss_kib());
            println!(
                "snapshot: {ingresses} {}, {ingresses} Services, {} endpoints; {:.1} MiB of heap",
                if kind == Kind::Ingress {
                    "Ingresses"
                } else {
                    "HTTPRoutes"
                },
                ingresses * pods,
                mib(snapshot_heap)
            );
            let mut times = Vec::new();
            for run in 0..runs {
                let base = LIVE.load(Ordering::Relaxed);
                PEAK.store(base, Ordering::Relaxed);
                let t0 = Instant::now();
                let t = translate(&s, &opts);
                let took = t0.elapsed();
                let peak = PEAK.load(Ordering::Relaxed) - base;
                let kept = LIVE.load(Ordering::Relaxed) - base;
                println!(
                    "run {run}: {:.0} ms; {} routes ({} with plugins), {} upstreams, {} targets, {} problems; \
                     YAML {:.1} MiB; peak heap during the translation +{:.1} MiB, result +{:.1} MiB; RSS +{} MiB",
                    took.as_secs_f64() * 1000.0,
                    t.config.routes.len(),
                    t.config.routes.iter().filter(|r| !r.plugins.is_empty()).count(),
                    t.config.upstreams.len(),
                    t.config.upstreams.iter().map(|u| u.targets.len()).sum::<usize>(),
                    t.problems.len(),
                    mib(t.yaml.len()),
                    mib(peak),
                    mib(kept),
                    (rss_kib().saturating_sub(rss_before)) / 1024
                );
                assert!(
                    t.problems.is_empty(),
                    "{:?}",
                    &t.problems[..3.min(t.problems.len())]
                );
                times.push(took);
                drop(t);
            }
            times.sort();
            println!(
                "translate: min {:.0} ms, median {:.0} ms",
                times[0].as_secs_f64() * 1000.0,
                times[times.len() / 2].as_secs_f64() * 1000.0
            );
        }
        Command::Regenerate {
            ingresses,
            pods,
            count,
            kind,
        } => {
            let mut s = snapshot(ingresses, pods, kind);
            let opts = options();
            let started = Instant::now();
            let mut last = String::new();
            let mut total = Duration::ZERO;
            for n in 1..=count {
                let i = n % ingresses;
                s.endpoint_slices[i] = obj(slice(i, pods, n));
                let t0 = Instant::now();
                let t = translate(&s, &opts);
                total += t0.elapsed();
                assert_ne!(t.yaml, last, "regeneration {n} changed nothing");
                last = t.yaml;
                if n == 1 || n == count / 10 || n == count / 2 || n == count {
                    println!(
                        "after {n:>6} regenerations: live heap {:.1} MiB, RSS {} KiB",
                        mib(LIVE.load(Ordering::Relaxed)),
                        rss_kib()
                    );
                }
            }
            println!(
                "{count} regenerations of {ingresses} {} / {} endpoints in {:.1} s \
                 ({:.1} ms per translation)",
                if kind == Kind::Ingress {
                    "Ingresses"
                } else {
                    "HTTPRoutes"
                },
                ingresses * pods,
                started.elapsed().as_secs_f64(),
                total.as_secs_f64() * 1000.0 / count as f64
            );
        }
    }
}
