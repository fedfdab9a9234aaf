//! Criterion micro-benchmarks: `cargo bench -p pingway-benches --bench micro`.
//!
//! - `router`: lookup among 10,000 generated routes (and 1, for scale); compiling them.
//! - `config`: parsing a 10,000-route YAML file and compiling it into a `Runtime`.
//! - `plugin_chain`: one request through a chain of 5 plugins (2 × ip-restriction,
//!   2 × rate-limiting, 1 header-adding user plugin), every phase: `on_request`,
//!   `on_upstream_request`, `on_response`, `on_log`; against the same scaffolding with
//!   an empty chain.
//! - `rate_limiting`: the rate-limit check through the plugin's only public door,
//!   `on_request` (the `Limiter` itself is `pub(crate)`), with and without the client
//!   headers it queues.
//! - `proxy_phases`: Pingway's `ProxyHttp` phases for one request (new_ctx,
//!   request_filter, upstream_peer, upstream_request_filter, response_filter, logging)
//!   against a bare `ProxyHttp` that only returns an `HttpPeer`: the per-request CPU
//!   cost Pingway adds on top of Pingora, without I/O.
//!
//! Phases that need a Pingora `Session` get one built over an in-memory request
//! (`Session::new_h1` over a `std::io::Cursor`, which pingora-core 0.9.1 implements its
//! IO traits for). Every phase measured here completes without waiting, so futures are
//! polled once with a no-op waker instead of going through a runtime.

use std::future::Future;
use std::hint::black_box;
use std::io::Cursor;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};
use pingway::chain::{Chain, PluginInstance, Slot};
use pingway::config::{load_str, PluginConfig};
use pingway::plugin_host::{ClientRequest, ResponseHeadOf, UpstreamHead};
use pingway::plugins::{
    BuildContext, Flow, LogEntry, Plugin, PluginScope, Registry, Request, RequestCtx, RequestId,
    ResponseHeaderName, ResponseView, RouteInfo, Services, UpstreamRequest,
};
use pingway::proxy::PingwayProxy;
use pingway::router::{normalize_path, RouteRequest, Router};
use pingway::runtime::Runtime;
use pingway_benches::routes;

/// mimalloc, as in the `pingway` binary, counting allocations so the benchmarks can
/// report allocations per request next to times. The counters are thread-local plain
/// cells (no atomic read-modify-write on every allocation, which would add several
/// nanoseconds to each and skew the timings); the benchmarks run on one thread.
struct Counting;

thread_local! {
    /// (allocations including reallocations, bytes currently allocated).
    static COUNTS: std::cell::Cell<(u64, i64)> = const { std::cell::Cell::new((0, 0)) };
}

fn count(allocs: u64, bytes: i64) {
    let _ = COUNTS.try_with(|c| {
        let (a, b) = c.get();
        c.set((a + allocs, b + bytes));
    });
}

fn counts() -> (u64, i64) {
    COUNTS.with(|c| c.get())
}

// SAFETY: every call is forwarded unchanged to mimalloc.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(1, layout.size() as i64);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        count(0, -(layout.size() as i64));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(1, layout.size() as i64);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        count(1, new as i64 - layout.size() as i64);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (including reallocations) that `f` makes, averaged over `n` calls.
fn allocations(n: u64, mut f: impl FnMut()) -> f64 {
    f(); // warm: lazily created state is not per-request
    let before = counts().0;
    for _ in 0..n {
        f();
    }
    (counts().0 - before) as f64 / n as f64
}

/// Polls a future that must complete without waiting.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a benchmarked phase waited; it must complete at once"),
    }
}

/// A Pingora session whose request has been read from memory.
fn session(host: &str, path: &str, extra: &str) -> Session {
    let raw = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\nAccept: */*\r\n{extra}\r\n"
    );
    let mut s = Session::new_h1(Box::new(Cursor::new(raw.into_bytes())));
    assert!(
        ready(s.read_request()).expect("request parses"),
        "request read"
    );
    s
}

/// An upstream response header like nginx's (case-preserving, as read off the wire).
fn upstream_response() -> ResponseHeader {
    let mut r = ResponseHeader::build(200, Some(8)).expect("status");
    for (k, v) in [
        ("Server", "nginx/1.22.1"),
        ("Date", "Sat, 21 Nov 2026 10:00:00 GMT"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "20"),
        ("Connection", "keep-alive"),
    ] {
        r.append_header(k, v).expect("header");
    }
    r
}

// ---------------------------------------------------------------------------------------
// router and config

fn router(c: &mut Criterion) {
    let set = routes::generate(10_000, 1_000);
    let loaded = load_str(&set.pingway_yaml("127.0.0.1:1", "127.0.0.1:2")).expect("loads");
    let table = Router::build(&loaded.config.routes).expect("compiles");
    let one = routes::generate(1, 1);
    let one_loaded = load_str(&one.pingway_yaml("127.0.0.1:1", "127.0.0.1:2")).expect("loads");
    let one_table = Router::build(&one_loaded.config.routes).expect("compiles");
    let headers = http::HeaderMap::new();
    let method = http::Method::GET;

    let mut g = c.benchmark_group("router");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("find/10k_routes", |b| {
        b.iter(|| {
            let p = &set.probes[i % set.probes.len()];
            i = i.wrapping_add(1);
            black_box(table.find(&RouteRequest {
                host: Some(&p.host),
                path: &p.path,
                method: &method,
                headers: &headers,
                query: None,
            }))
        })
    });
    let mut i = 0usize;
    g.bench_function("normalize+find/10k_routes", |b| {
        b.iter(|| {
            let p = &set.probes[i % set.probes.len()];
            i = i.wrapping_add(1);
            let path = normalize_path(&p.path);
            black_box(table.find(&RouteRequest {
                host: Some(&p.host),
                path: &path,
                method: &method,
                headers: &headers,
                query: None,
            }))
        })
    });
    let p = &one.probes[0];
    g.bench_function("find/1_route", |b| {
        b.iter(|| {
            black_box(one_table.find(&RouteRequest {
                host: Some(&p.host),
                path: &p.path,
                method: &method,
                headers: &headers,
                query: None,
            }))
        })
    });

    // Query parameter conditions: a request that carries a query, on a table without
    // query conditions (the query is never read: no allocation) and on one where every
    // candidate has one (parsed once, at most MAX_QUERY_PARAMS parameters).
    let query_yaml = format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]
upstreams: [{{name: u, targets: [\"127.0.0.1:2\"]}}]
routes:
{}  - {{name: rest, paths: [/api], upstream: u}}
",
        (0..8)
            .map(|i| format!(
                "  - {{name: q{i}, paths: [/api], query_params: [{{name: v, exact: \"{i}\"}}, {{name: tenant, regex: \"^t[0-9]+$\"}}], upstream: u}}\n"
            ))
            .collect::<String>()
    );
    let query_loaded = load_str(&query_yaml).expect("loads");
    let query_table = Router::build(&query_loaded.config.routes).expect("compiles");
    let short = "tenant=t42&page=2&v=7";
    let long: String = (0..1000).map(|i| format!("p{i}=x&")).collect::<String>() + "v=7";
    let p = &set.probes[0];
    let find_q = |table: &Router, path: &str, query: &str| {
        table.find(&RouteRequest {
            host: Some(&p.host),
            path,
            method: &method,
            headers: &headers,
            query: Some(query),
        })
    };
    eprintln!(
        "allocations per find with a query: 10k routes without query conditions {:.1}, \
         9 routes with query conditions (3 parameters) {:.1}, (1,001 parameters) {:.1}",
        allocations(1000, || {
            black_box(find_q(&table, &p.path, short));
        }),
        allocations(1000, || {
            black_box(find_q(&query_table, "/api/x", short));
        }),
        allocations(100, || {
            black_box(find_q(&query_table, "/api/x", &long));
        }),
    );
    g.bench_function("find/query_params/3_params", |b| {
        b.iter(|| black_box(find_q(&query_table, "/api/x", short)))
    });
    g.bench_function("find/query_params/1001_params", |b| {
        b.iter(|| black_box(find_q(&query_table, "/api/x", &long)))
    });
    g.finish();

    let mut g = c.benchmark_group("router_build");
    g.sample_size(20);
    g.bench_function("10k_routes", |b| {
        b.iter(|| Router::build(black_box(&loaded.config.routes)).expect("compiles"))
    });
    g.finish();
}

fn config(c: &mut Criterion) {
    let set = routes::generate(10_000, 0);
    let yaml = set.pingway_yaml("127.0.0.1:1", "127.0.0.1:2");
    let registry = pingway::stock::registry();
    {
        let live = || counts().1 as f64 / 1048576.0;
        let base = live();
        let loaded = load_str(&yaml).expect("loads");
        let parsed = live() - base;
        let runtime = Runtime::build(&loaded, &registry, None).expect("builds");
        let both = live() - base;
        drop(loaded);
        let kept = live() - base;
        eprintln!(
            "heap for 10k routes: parsed config (document + typed) {parsed:.1} MiB; \
             + runtime {both:.1} MiB; runtime alone, once the parse is dropped, {kept:.1} MiB \
             (the YAML text itself: {:.1} MiB)",
            yaml.len() as f64 / 1048576.0
        );
        drop(runtime);
    }
    let mut g = c.benchmark_group("config");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("load_str+runtime_build/10k_routes", |b| {
        b.iter(|| {
            let loaded = load_str(black_box(&yaml)).expect("loads");
            Runtime::build(&loaded, &registry, None).expect("builds")
        })
    });
    g.bench_function("load_str/10k_routes", |b| {
        b.iter(|| load_str(black_box(&yaml)).expect("loads"))
    });
    let loaded = load_str(&yaml).expect("loads");
    g.bench_function("runtime_build/10k_routes", |b| {
        b.iter(|| Runtime::build(black_box(&loaded), &registry, None).expect("builds"))
    });
    let first = Runtime::build(&loaded, &registry, None).expect("builds");
    g.bench_function("runtime_build_reload/10k_routes", |b| {
        b.iter(|| Runtime::build(black_box(&loaded), &registry, Some(&first)).expect("builds"))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// plugins

/// A user plugin that adds a header upstream and one downstream: the shape of the
/// many "transform a header" plugins.
struct Tagger;

static TAG: http::HeaderName = http::HeaderName::from_static("x-bench-tag");

impl Plugin for Tagger {
    fn on_upstream_request(&self, upstream: &mut UpstreamRequest<'_>) {
        upstream.insert_header(TAG.clone(), http::HeaderValue::from_static("up"));
    }
    fn on_response(&self, response: &mut ResponseView<'_>) {
        response.insert_header(TAG.clone(), http::HeaderValue::from_static("down"));
    }
}

/// Plugin configurations read from YAML, as the gateway reads them.
fn plugin_configs(yaml_list: &str) -> Vec<PluginConfig> {
    let yaml = format!(
        "upstreams: [{{name: up, targets: [\"127.0.0.1:2\"]}}]\n\
         routes:\n  - name: bench\n    upstream: up\n    plugins:\n{yaml_list}"
    );
    let loaded = load_str(&yaml).expect("plugin YAML loads");
    loaded.config.routes[0].plugins.clone()
}

/// Builds each configured plugin through the registry and composes a chain.
fn chain(registry: &Registry, configs: &[PluginConfig], extra: Vec<Arc<dyn Plugin>>) -> Chain {
    let cx = BuildContext::new(PluginScope::Route("bench"));
    let mut slots: Vec<Slot> = configs
        .iter()
        .enumerate()
        .map(|(i, pc)| {
            let factory = registry.get(&pc.name).expect("registered");
            let plugin = factory
                .build(&pc.config, "bench", &cx)
                .unwrap_or_else(|d| panic!("{} does not build: {d:?}", pc.name));
            let name: Arc<str> = format!("{}#{i}", pc.name).into();
            Slot {
                name: name.clone(),
                instance: Some(PluginInstance {
                    name,
                    priority: pc.priority.unwrap_or_else(|| factory.default_priority()),
                    plugin,
                }),
            }
        })
        .collect();
    for (i, plugin) in extra.into_iter().enumerate() {
        let name: Arc<str> = format!("user#{i}").into();
        slots.push(Slot {
            name: name.clone(),
            instance: Some(PluginInstance {
                name,
                priority: 800,
                plugin,
            }),
        });
    }
    Chain::compose(&[], &slots)
}

/// One request through every phase of `chain`, as `pingway::proxy` drives them.
fn chain_pass(chain: &Chain, session: &mut Session, info: &Arc<RouteInfo>, ip: IpAddr) {
    let mut ctx = RequestCtx::new(RequestId::default(), ip, None);
    ctx.route = Some(info.clone());
    let services = Services::empty();
    for p in chain.plugins() {
        let mut source = ClientRequest::Cased(&mut *session);
        let flow = ready(
            p.plugin
                .on_request(&mut Request::new(&mut source, &mut ctx, services)),
        );
        if let Flow::Respond(r) = flow {
            panic!("{:?} answered {}", p, r.status);
        }
    }
    let mut upstream = session.req_header().clone();
    {
        let mut head = UpstreamHead::Cased(&mut upstream);
        let mut view = UpstreamRequest::new(&mut head, &mut ctx);
        for p in chain.plugins() {
            p.plugin.on_upstream_request(&mut view);
        }
    }
    let mut response = upstream_response();
    for (name, value) in ctx.take_response_headers() {
        let _ = match name {
            ResponseHeaderName::Static(name) => response.insert_header(name, value),
            ResponseHeaderName::Name(name) => response.insert_header(name, value),
        };
    }
    {
        let mut head = ResponseHeadOf::Cased(&mut response);
        let mut view = ResponseView::new(&mut head, session.req_header(), &mut ctx);
        for p in chain.plugins() {
            p.plugin.on_response(&mut view);
        }
    }
    let mut entry = LogEntry::new(session.req_header(), &ctx, Duration::from_micros(30));
    entry.status = 200;
    entry.upstream_status = Some(200);
    entry.bytes_sent = 20;
    for p in chain.plugins() {
        p.plugin.on_log(&entry);
    }
    black_box((&upstream, &response));
}

const FIVE_PLUGINS: &str = "      - name: ip-restriction
        config: {allow: [127.0.0.0/8, 10.0.0.0/8], deny: [192.0.2.0/24]}
      - name: ip-restriction
        priority: 980
        config: {deny: [192.0.2.0/24, 198.51.100.0/24, 203.0.113.7, 203.0.113.8, 203.0.113.9]}
      - name: rate-limiting
        config: {second: 1000000000000, policy: local, limit_by: ip}
      - name: rate-limiting
        priority: 900
        config: {minute: 1000000000000, hour: 1000000000000, policy: local, limit_by: header, header_name: x-client}
";

fn plugin_chain(c: &mut Criterion) {
    let registry = pingway::stock::registry();
    let five = chain(
        &registry,
        &plugin_configs(FIVE_PLUGINS),
        vec![Arc::new(Tagger) as Arc<dyn Plugin>],
    );
    assert_eq!(five.plugins().len(), 5);
    let empty = Chain::default();
    let info = Arc::new(RouteInfo::new("bench", "up"));
    let ip: IpAddr = "127.0.0.1".parse().expect("ip");
    let mut s = session("api.bench.local", "/api/users/42", "x-client: abc\r\n");

    eprintln!(
        "allocations per pass: 5-plugin chain {:.1}, empty chain {:.1}",
        allocations(1000, || chain_pass(&five, &mut s, &info, ip)),
        allocations(1000, || chain_pass(&empty, &mut s, &info, ip)),
    );
    let mut g = c.benchmark_group("plugin_chain");
    g.throughput(Throughput::Elements(1));
    g.bench_function("5_plugins/all_phases", |b| {
        b.iter(|| chain_pass(&five, &mut s, &info, ip))
    });
    g.bench_function("0_plugins/same_scaffolding", |b| {
        b.iter(|| chain_pass(&empty, &mut s, &info, ip))
    });
    g.finish();
}

fn rate_limiting(c: &mut Criterion) {
    let registry = pingway::stock::registry();
    let build = |yaml: &str| {
        let configs = plugin_configs(yaml);
        let chain = chain(&registry, &configs, Vec::new());
        chain.plugins()[0].plugin.clone()
    };
    let one_period = build(
        "      - name: rate-limiting\n        config: {second: 1000000000000, policy: local, limit_by: ip}\n",
    );
    let hidden = build("      - name: rate-limiting\n        config: {second: 1000000000000, policy: local, limit_by: ip, hide_client_headers: true}\n");
    let two_periods = build("      - name: rate-limiting\n        config: {second: 1000000000000, minute: 1000000000000, policy: local, limit_by: ip}\n");
    let mut s = session("api.bench.local", "/", "");
    let info = Arc::new(RouteInfo::new("bench", "up"));
    let ips: Vec<IpAddr> = (0..10_000u32)
        .map(|i| IpAddr::V4((0x0a00_0000 + i).into()))
        .collect();

    let mut g = c.benchmark_group("rate_limiting");
    g.throughput(Throughput::Elements(1));
    let mut check = |name: &str, plugin: &Arc<dyn Plugin>, many: bool| {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let ip = if many { ips[i % ips.len()] } else { ips[0] };
                i = i.wrapping_add(1);
                let mut ctx = RequestCtx::new(RequestId::default(), ip, None);
                ctx.route = Some(info.clone());
                let mut source = ClientRequest::Cased(&mut s);
                let flow = ready(plugin.on_request(&mut Request::new(
                    &mut source,
                    &mut ctx,
                    Services::empty(),
                )));
                black_box((flow, ctx))
            })
        });
    };
    check("on_request/second/1_client", &one_period, false);
    check("on_request/second/10k_clients", &one_period, true);
    check("on_request/second+minute/1_client", &two_periods, false);
    check(
        "on_request/second/1_client/hide_client_headers",
        &hidden,
        false,
    );
    g.finish();
}

// ---------------------------------------------------------------------------------------
// the proxy's own phases

/// A `ProxyHttp` that only returns the peer: what `bare-pingora` runs.
struct Bare(std::net::SocketAddr);

#[async_trait::async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora_core::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

/// Every phase Pingora calls for a proxied request, with no I/O: the ProxyHttp's own
/// cost. The request header clone and upstream response build are what Pingora does
/// anyway; they are in both the bare and the Pingway figures.
fn phases<P>(proxy: &P, session: &mut Session)
where
    P: ProxyHttp + Sync,
    P::CTX: Send + Sync,
{
    let mut ctx = proxy.new_ctx();
    let done = ready(proxy.request_filter(session, &mut ctx)).expect("request_filter");
    assert!(
        !done,
        "request answered early (no route, or a plugin refused)"
    );
    let peer = ready(proxy.upstream_peer(session, &mut ctx)).expect("peer");
    let mut upstream = session.req_header().clone();
    ready(proxy.upstream_request_filter(session, &mut upstream, &mut ctx)).expect("upstream req");
    let mut response = upstream_response();
    ready(proxy.upstream_response_filter(session, &mut response, &mut ctx)).expect("upstream resp");
    ready(proxy.response_filter(session, &mut response, &mut ctx)).expect("response");
    ready(proxy.logging(session, None, &mut ctx));
    black_box((peer, upstream, response));
}

fn pingway_proxy(yaml: &str) -> PingwayProxy {
    let loaded = load_str(yaml).expect("loads");
    let runtime = Runtime::build(&loaded, &pingway::stock::registry(), None).expect("builds");
    PingwayProxy::new(Arc::new(ArcSwap::from_pointee(runtime)))
}

/// The scenario-2 plugins of the load harness. The in-memory session has no peer
/// address, so the proxy sees client 0.0.0.0: it is allowed here too.
const SCENARIO2: &str = "    plugins:
      - name: ip-restriction
        config: {allow: [127.0.0.0/8, 10.0.0.0/8, 0.0.0.0/32], deny: [192.0.2.0/24]}
      - name: rate-limiting
        config: {second: 1000000000, policy: local, limit_by: ip}
";

/// Size of the future Pingora boxes for every request (`HttpServerApp::process_new_http`
/// is an `#[async_trait]` method, so `<T as ServerApp>::process_new` allocates it and
/// moves it into the box once per request on a keep-alive connection).
fn request_future_size<SV>(inner: SV) -> usize
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    use pingora_core::apps::HttpServerApp;
    let conf = Arc::new(pingora_core::server::configuration::ServerConf::default());
    let app = Arc::new(pingora_proxy::http_proxy(&conf, inner));
    let (_tx, shutdown) = tokio::sync::watch::channel(false);
    let session = pingora_core::protocols::http::ServerSession::new_http1(Box::new(Cursor::new(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
    )));
    let fut = app.process_new_http(session, &shutdown);
    std::mem::size_of_val(&*fut)
}

fn proxy_phases(c: &mut Criterion) {
    let one_route = "listeners: [{address: \"127.0.0.1:1\"}]\n\
                     upstreams: [{name: up, targets: [\"127.0.0.1:2\"]}]\n\
                     routes:\n  - name: all\n    paths: [\"/\"]\n    upstream: up\n";
    let pingway = pingway_proxy(one_route);
    let pingway_s2 = pingway_proxy(&format!("{one_route}{SCENARIO2}"));
    let set = routes::generate(10_000, 1_000);
    let pingway_10k = pingway_proxy(&set.pingway_yaml("127.0.0.1:1", "127.0.0.1:2"));
    let bare = Bare("127.0.0.1:2".parse().expect("addr"));
    let mut s = session("127.0.0.1:18082", "/", "");
    let mut sessions_10k: Vec<Session> = set
        .probes
        .iter()
        .take(100)
        .map(|p| session(&p.host, &p.path, ""))
        .collect();

    eprintln!(
        "per-request future boxed by Pingora (process_new_http): bare {} bytes, pingway {} bytes \
         (pingway::proxy::ProxyCtx: {} bytes)",
        request_future_size(Bare("127.0.0.1:2".parse().expect("addr"))),
        request_future_size(pingway_proxy(one_route)),
        std::mem::size_of::<pingway::proxy::ProxyCtx>(),
    );
    eprintln!(
        "allocations per request in the ProxyHttp phases (no I/O): bare {:.1}, pingway 1 route {:.1}, \
         + ip-restriction + rate-limiting {:.1}, 10k routes {:.1}, scaffolding alone {:.1}",
        allocations(1000, || phases(&bare, &mut s)),
        allocations(1000, || phases(&pingway, &mut s)),
        allocations(1000, || phases(&pingway_s2, &mut s)),
        allocations(100, || {
            for t in sessions_10k.iter_mut() {
                phases(&pingway_10k, t);
            }
        }) / sessions_10k.len() as f64,
        allocations(1000, || {
            black_box((s.req_header().clone(), upstream_response()));
        }),
    );
    let mut g = c.benchmark_group("proxy_phases");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_pingora", |b| b.iter(|| phases(&bare, &mut s)));
    g.bench_function("pingway/1_route", |b| b.iter(|| phases(&pingway, &mut s)));
    g.bench_function("pingway/1_route+ip-restriction+rate-limiting", |b| {
        b.iter(|| phases(&pingway_s2, &mut s))
    });
    let mut i = 0usize;
    g.bench_function("pingway/10k_routes", |b| {
        b.iter(|| {
            let n = sessions_10k.len();
            i = i.wrapping_add(1);
            phases(&pingway_10k, &mut sessions_10k[i % n])
        })
    });
    // For scale: what the request header clone and response build cost by themselves.
    g.bench_function("scaffolding_only", |b| {
        b.iter_batched_ref(
            || (),
            |_| black_box((s.req_header().clone(), upstream_response())),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// What one header insertion costs through `pingora_http`'s API on a request header
/// read off the wire (so it keeps header-name case, like every request Pingway
/// forwards), by the kind of name passed.
fn pingora_headers(c: &mut Criterion) {
    static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
    let s = session("api.bench.local", "/", "");
    let value = http::HeaderValue::from_static("127.0.0.1");
    let fresh = || s.req_header().clone();
    eprintln!(
        "allocations per insert_header on a wire request: custom HeaderName {:.1}, \
         &'static str {:.1}, standard HeaderName {:.1} (after the clone's own {:.1})",
        allocations(1000, || {
            let mut h = fresh();
            let _ = h.insert_header(X_FORWARDED_FOR.clone(), value.clone());
            black_box(h);
        }),
        allocations(1000, || {
            let mut h = fresh();
            let _ = h.insert_header("X-Forwarded-For", value.clone());
            black_box(h);
        }),
        allocations(1000, || {
            let mut h = fresh();
            let _ = h.insert_header(http::header::VIA, value.clone());
            black_box(h);
        }),
        allocations(1000, || {
            black_box(fresh());
        }),
    );
    let mut g = c.benchmark_group("pingora_headers");
    g.bench_function("clone_request_header", |b| b.iter(|| black_box(fresh())));
    g.bench_function("clone+insert/custom_HeaderName", |b| {
        b.iter(|| {
            let mut h = fresh();
            let _ = h.insert_header(X_FORWARDED_FOR.clone(), value.clone());
            h
        })
    });
    g.bench_function("clone+insert/static_str", |b| {
        b.iter(|| {
            let mut h = fresh();
            let _ = h.insert_header("X-Forwarded-For", value.clone());
            h
        })
    });
    g.bench_function("clone+insert/standard_HeaderName", |b| {
        b.iter(|| {
            let mut h = fresh();
            let _ = h.insert_header(http::header::VIA, value.clone());
            h
        })
    });
    const EIGHT: [http::HeaderName; 8] = [
        http::HeaderName::from_static("x-forwarded-for"),
        http::HeaderName::from_static("x-forwarded-proto"),
        http::HeaderName::from_static("x-forwarded-host"),
        http::HeaderName::from_static("x-forwarded-port"),
        http::HeaderName::from_static("x-real-ip"),
        http::HeaderName::from_static("x-request-id"),
        http::HeaderName::from_static("x-pingway-a"),
        http::HeaderName::from_static("x-pingway-b"),
    ];
    g.bench_function("clone+insert_8_distinct_custom", |b| {
        b.iter(|| {
            let mut h = fresh();
            for n in &EIGHT {
                let _ = h.insert_header(n.clone(), value.clone());
            }
            h
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    pingora_headers,
    router,
    config,
    plugin_chain,
    rate_limiting,
    proxy_phases
);
criterion_main!(benches);
