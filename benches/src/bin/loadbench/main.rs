//! The load harness: Pingway against bare Pingora, nginx and HAProxy, same upstream,
//! same load, one worker each, alternating, several rounds, one table.
//!
//! ```text
//! cargo run --release -p pingway-benches --bin loadbench            # full run, ~10 min
//! cargo run --release -p pingway-benches --bin loadbench -- --quick # ~3 min
//! ```
//!
//! See benches/README.md for the method.

mod measure;
mod peers;
mod procs;
mod profile;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use pingway_benches::routes::{self, RouteSet};

use measure::Sample;
use peers::{HaproxySetup, NginxSetup};
use procs::Proc;

/// Command line.
#[derive(Parser, Debug, Clone)]
#[command(about = "Pingway vs bare Pingora, nginx and HAProxy: one table")]
struct Args {
    /// Shorter runs (1 s throughput without warm-up, 2 s fixed rate, 3 s reload), still 3
    /// rounds: about 3 minutes, for a sanity check rather than figures to quote.
    #[arg(long)]
    quick: bool,
    /// Rounds; every figure is the median of the rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of each throughput run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds of unrecorded load before each run (fills the connection pools).
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Scenario 4's fixed rate, requests per second.
    #[arg(long, default_value_t = 5000.0)]
    fixed_rate: f64,
    /// Seconds of each fixed-rate run.
    #[arg(long, default_value_t = 10)]
    fixed_duration: u64,
    /// Unrecorded seconds of fixed-rate load before each fixed-rate run.
    #[arg(long, default_value_t = 1.0)]
    fixed_warmup: f64,
    /// Seconds of each reload run (one reload per second).
    #[arg(long, default_value_t = 8)]
    reload_duration: u64,
    /// Scenarios to run (1 plain, 2 plugins, 3 10k routes, 4 fixed rate, 5 reloads,
    /// 6 HTTPS keep-alive, 7 HTTPS with a new connection, so a handshake, per request;
    /// 6 and 7 run Pingway and nginx only).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6,7")]
    scenarios: Vec<u8>,
    /// Proxies to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bare,pingway,nginx,haproxy"
    )]
    proxies: Vec<String>,
    /// key-auth in scenario 2: `auto` uses it when `pingway validate` accepts it.
    #[arg(long, default_value = "auto")]
    key_auth: String,
    /// Routes in scenario 3.
    #[arg(long, default_value_t = 10_000)]
    routes: usize,
    /// First of the ports used (upstream; proxies on the next four).
    #[arg(long, default_value_t = 18000)]
    base_port: u16,
    /// Core for the proxy under test.
    #[arg(long, default_value = "1")]
    proxy_core: String,
    /// Core for the upstream and the load generator.
    #[arg(long, default_value = "0")]
    load_core: String,
    /// Skip `cargo build --release` of the binaries.
    #[arg(long)]
    no_build: bool,
    /// Where the binaries are (default: next to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Put the report into benches/README.md, between the `<!-- loadbench:begin -->`
    /// and `<!-- loadbench:end -->` markers (`profile:` markers with `--profile`), so the
    /// table there is always a real run's output.
    #[arg(long)]
    update_readme: bool,
    /// A run is repeated (up to twice) when other processes used more than this much
    /// CPU during it, in percent of one core.
    #[arg(long, default_value_t = 5.0)]
    max_foreign_cpu: f64,
    /// Instead of the scenarios: profile these proxies under scenario 1's load (perf
    /// and strace), e.g. `--profile bare,pingway,nginx`.
    #[arg(long, value_delimiter = ',')]
    profile: Vec<String>,
    /// Instead of the scenarios: count user-space instructions and allocations per
    /// request under callgrind (valgrind), e.g. `--callgrind bare,pingway,nginx`.
    /// Deterministic: other jobs on the machine do not change these counts.
    #[arg(long, value_delimiter = ',')]
    callgrind: Vec<String>,
    /// The scenario `--callgrind` loads: 1 (one route), 2 (the plugins; bare Pingora
    /// without) or 3 (the route table, spread requests).
    #[arg(long, default_value_t = 1)]
    callgrind_scenario: u8,
    /// With `--callgrind`: also simulate the caches (slower) and report misses.
    #[arg(long)]
    callgrind_cache_sim: bool,
    /// With `--callgrind`: copy each proxy's dump into this folder as
    /// `callgrind.<proxy>.out`, for `callgrind_annotate` (where the instructions go).
    #[arg(long)]
    callgrind_keep: Option<std::path::PathBuf>,
    /// Seconds to wait for other processes to calm down before a run.
    #[arg(long, default_value_t = 300)]
    max_wait: u64,
    /// Scenario 2 also with `rate-limiting` `policy: redis` (Pingway only): starts a
    /// `redis-server` (Debian's package) on the load core, on the port after the
    /// proxies', and reports the ratio to `policy: local` and the p99 cost.
    #[arg(long)]
    redis: bool,
    /// Scenario 1 also with Pingway's observability on: the `prometheus` plugin with
    /// every metric and the JSON access log to a file; the targets list gives its req/s
    /// ratio to scenario 1 without them (issue 10: ≥ 0.93×).
    #[arg(long)]
    observability: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Bare,
    Pingway,
    Nginx,
    Haproxy,
}

impl Peer {
    fn key(self) -> &'static str {
        match self {
            Peer::Bare => "bare",
            Peer::Pingway => "pingway",
            Peer::Nginx => "nginx",
            Peer::Haproxy => "haproxy",
        }
    }
}

/// What a case sets up and how it loads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// One route, no plugins.
    Plain,
    /// Scenario 2's plugins (bare Pingora: none).
    Plugins,
    /// Scenario 2's plugins with `rate-limiting` counting in Redis (Pingway only).
    PluginsRedis,
    /// Scenario 2's plugins plus `cors` and `request-transformer` (Pingway only).
    PluginsEdge,
    /// One route, every request mirrored to a shadow that never answers (Pingway only).
    MirrorHang,
    /// One route, every request mirrored to a closed port (Pingway only).
    MirrorRefused,
    /// The generated routes; requests spread over them.
    Routes,
    /// One route; the same spread requests (what the route table costs, by difference).
    PlainSpread,
    /// One route with the `prometheus` plugin (every metric) and the JSON access log.
    Observed,
    /// One route at a fixed rate.
    Fixed,
    /// One route, reloaded every second.
    Reload,
    /// The generated routes, reloaded every second; spread requests.
    ReloadRoutes,
    /// One route behind an HTTPS listener (TLS 1.3 negotiated), keep-alive.
    Https,
    /// The same, every request on a new connection (`Connection: close`): a TLS
    /// handshake per request.
    HttpsHandshake,
}

impl Setup {
    /// Whether the proxy listens with TLS.
    fn https(self) -> bool {
        matches!(self, Setup::Https | Setup::HttpsHandshake)
    }
}

#[derive(Clone, Debug)]
struct Case {
    scenario: u8,
    label: String,
    peer: Peer,
    setup: Setup,
}

/// Everything a run needs to know.
struct Bench {
    args: Args,
    dir: PathBuf,
    bins: PathBuf,
    upstream: SocketAddr,
    key_auth: bool,
    set: RouteSet,
    scripts: Scripts,
    /// nginx without a master process (for callgrind, which follows one process).
    single_process: AtomicBool,
    /// A server that accepts connections and never answers (a hanging mirror shadow).
    black_hole: SocketAddr,
    /// A loopback port nothing listens on (a refusing mirror shadow).
    closed_port: SocketAddr,
    /// The certificate of the HTTPS scenarios (6, 7), when one of them runs.
    tls: Option<peers::TlsFiles>,
    /// What each HTTPS proxy negotiated with OpenSSL's client (protocol, cipher, key
    /// exchange), by proxy, for the report.
    tls_seen: std::sync::Mutex<Vec<(&'static str, String)>>,
}

struct Scripts {
    plain: PathBuf,
    plugins: PathBuf,
    edge: PathBuf,
    spread: PathBuf,
    /// `Connection: close` on every request (scenario 7).
    close: PathBuf,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("loadbench: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.duration = 1;
        args.warmup = 0;
        args.fixed_duration = 2;
        args.fixed_warmup = 0.5;
        args.reload_duration = 3;
    }
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let https = args.scenarios.iter().any(|s| matches!(s, 6 | 7));
    let mut tools = vec!["wrk", "nginx", "haproxy", "taskset"];
    if https {
        tools.extend(["openssl", "curl"]);
    }
    for tool in tools {
        let found = std::process::Command::new("which")
            .arg(tool)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        anyhow::ensure!(
            found,
            "{tool} not found: apt-get install -y wrk nginx haproxy util-linux openssl curl"
        );
    }

    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    if !args.no_build {
        eprintln!("building pingway, bare-pingora and openloop (release)...");
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(&root)
            .args([
                "build",
                "--release",
                "-p",
                "pingway",
                "-p",
                "pingway-benches",
                "--bins",
            ])
            .status()
            .context("cargo build")?;
        anyhow::ensure!(status.success(), "cargo build failed");
    }
    let bins = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .to_path_buf(),
    };
    for b in ["pingway", "bare-pingora", "openloop"] {
        anyhow::ensure!(
            bins.join(b).exists(),
            "{} missing: build with cargo build --release -p pingway -p pingway-benches --bins",
            bins.join(b).display()
        );
    }

    let dir = std::env::temp_dir().join(format!("pingway-loadbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for sub in ["upstream-tmp", "proxy-tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let upstream: SocketAddr = format!("127.0.0.1:{}", args.base_port).parse()?;
    for p in 0..5u16 {
        let a: SocketAddr = format!("127.0.0.1:{}", args.base_port + p).parse()?;
        anyhow::ensure!(
            !procs::port_busy(a),
            "port {a} is already in use (see --base-port)"
        );
    }

    let set = routes::generate(args.routes, 1_000);
    let scripts = Scripts {
        plain: dir.join("plain.lua"),
        plugins: dir.join("plugins.lua"),
        edge: dir.join("edge.lua"),
        spread: dir.join("spread.lua"),
        close: dir.join("close.lua"),
    };
    measure::write_wrk_script(&scripts.close, "wrk.headers[\"Connection\"] = \"close\"")?;
    measure::write_wrk_script(
        &scripts.edge,
        &format!(
            "wrk.headers[\"{}\"] = \"{}\"\nwrk.headers[\"Origin\"] = \"{}\"\nwrk.headers[\"X-Old\"] = \"1\"",
            peers::API_KEY_HEADER,
            peers::API_KEY,
            peers::EDGE_ORIGIN
        ),
    )?;
    measure::write_wrk_script(&scripts.plain, "")?;
    measure::write_wrk_script(
        &scripts.plugins,
        &format!(
            "wrk.headers[\"{}\"] = \"{}\"",
            peers::API_KEY_HEADER,
            peers::API_KEY
        ),
    )?;
    measure::write_wrk_script(&scripts.spread, &set.wrk_lua())?;

    let mut bench = Bench {
        args: args.clone(),
        dir: dir.clone(),
        bins,
        upstream,
        key_auth: false,
        set,
        scripts,
        single_process: AtomicBool::new(false),
        black_hole: black_hole()?,
        closed_port: closed_port()?,
        tls: if https {
            Some(make_certificate(&dir)?)
        } else {
            None
        },
        tls_seen: Default::default(),
    };
    let key_auth_note = bench.decide_key_auth()?;

    // The upstream, on the load core for the whole run.
    let up_conf = dir.join("upstream.conf");
    std::fs::write(&up_conf, peers::nginx_upstream(&dir, upstream.port()))?;
    let mut up = Proc::spawn(
        "upstream nginx",
        &args.load_core,
        Path::new("/usr/sbin/nginx"),
        &[
            "-p".into(),
            dir.display().to_string(),
            "-c".into(),
            up_conf.display().to_string(),
        ],
        &dir.join("upstream.log"),
        procs::SIGTERM,
    )?;
    procs::wait_http(
        &mut up,
        upstream,
        "up",
        "/",
        &[],
        200,
        Duration::from_secs(5),
    )?;

    // Redis for scenario 2's `policy: redis` case, on the load core like the upstream.
    let mut redis = if args.redis && args.scenarios.contains(&2) {
        let port = bench.redis_port();
        let mut redis = Proc::spawn(
            "redis-server",
            &args.load_core,
            Path::new("redis-server"),
            &[
                "--port".into(),
                port.to_string(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
            ],
            &dir.join("redis.log"),
            procs::SIGTERM,
        )
        .context("--redis needs redis-server on PATH (apt-get install -y redis-server)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if redis.exited() || Instant::now() > deadline {
                bail!("redis-server did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    } else {
        None
    };

    let mut header = bench.header(&key_auth_note);
    // The load side's ceiling: wrk straight to the upstream, both on the load core.
    let (ceiling, _) = measure::wrk(
        &args.load_core,
        upstream,
        args.connections,
        args.duration as f64,
        &bench.scripts.plain,
    )?;
    let _ = writeln!(
        header,
        "- Load-side ceiling (wrk straight to the upstream, both on core {}): {:.1}k req/s",
        args.load_core,
        ceiling.rps / 1000.0
    );
    eprintln!("{header}");

    if !args.callgrind.is_empty() {
        let peers: Vec<Peer> = [Peer::Bare, Peer::Pingway, Peer::Nginx, Peer::Haproxy]
            .into_iter()
            .filter(|p| args.callgrind.iter().any(|k| k == p.key()))
            .collect();
        let report = format!(
            "{header}\n{}",
            profile::callgrind(&bench, &peers, args.callgrind_scenario)?
        );
        up.stop();
        println!("{report}");
        if let Some(out) = &args.out {
            std::fs::write(out, &report)?;
        }
        if args.update_readme {
            let marker = if args.callgrind_scenario == 1 {
                "callgrind".to_string()
            } else {
                format!("callgrind{}", args.callgrind_scenario)
            };
            update_readme(&marker, &report)?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    if !args.profile.is_empty() {
        let peers: Vec<Peer> = [Peer::Bare, Peer::Pingway, Peer::Nginx, Peer::Haproxy]
            .into_iter()
            .filter(|p| args.profile.iter().any(|k| k == p.key()))
            .collect();
        procs::wait_quiet(args.max_foreign_cpu, Duration::from_secs(args.max_wait));
        let report = format!("{header}\n{}", profile::run(&bench, &peers, up.pid())?);
        up.stop();
        println!("{report}");
        if let Some(out) = &args.out {
            std::fs::write(out, &report)?;
        }
        if args.update_readme {
            update_readme("profile", &report)?;
        }
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }

    let cases = bench.cases();
    let mut results: Vec<(Case, Vec<Sample>)> =
        cases.iter().map(|c| (c.clone(), Vec::new())).collect();
    let started = Instant::now();
    let mut repeated = 0;
    for round in 0..args.rounds {
        for &scenario in &args.scenarios {
            let mut in_scenario: Vec<usize> = (0..results.len())
                .filter(|&i| results[i].0.scenario == scenario)
                .collect();
            // Alternate the order between rounds, so no proxy always runs first.
            let len = in_scenario.len().max(1);
            in_scenario.rotate_left(round % len);
            for i in in_scenario {
                let case = results[i].0.clone();
                let mut attempt = 0;
                let sample = loop {
                    if procs::wait_quiet(args.max_foreign_cpu, Duration::from_secs(args.max_wait))
                        .is_none()
                    {
                        eprintln!(
                            "  the machine stayed busy for {} s; measuring anyway",
                            args.max_wait
                        );
                    }
                    let s = bench
                        .run_case(&case, up.pid())
                        .with_context(|| format!("scenario {} {}", case.scenario, case.label))?;
                    attempt += 1;
                    if s.foreign_cpu_pct <= args.max_foreign_cpu || attempt >= 4 {
                        break s;
                    }
                    repeated += 1;
                    eprintln!(
                        "  (other processes used {:.0}% of a core: repeating)",
                        s.foreign_cpu_pct
                    );
                };
                eprintln!(
                    "round {} · scenario {} · {:<28} {:>8.0} req/s  p99 {:>6.0} µs  cpu {:>4.0}%  rss {:>6.1} MB  err {}  other {:.0}%{}  [{}]",
                    round + 1,
                    case.scenario,
                    case.label,
                    sample.rps,
                    sample.p99_us,
                    sample.cpu_pct,
                    sample.rss_kib / 1024.0,
                    sample.errors,
                    sample.foreign_cpu_pct,
                    if sample.reloads > 0.0 {
                        format!("  reloads {}", sample.reloads)
                    } else {
                        String::new()
                    },
                    sample.cores
                );
                results[i].1.push(sample);
            }
        }
    }
    up.stop();
    if let Some(redis) = redis.take() {
        redis.stop();
    }

    for (peer, seen) in bench.tls_seen.lock().map(|v| v.clone()).unwrap_or_default() {
        let _ = writeln!(
            header,
            "- HTTPS (scenarios 6, 7), {peer} negotiated: {seen}"
        );
    }
    let report = format!(
        "{header}- Harness wall time: {:.0} s; {repeated} run(s) repeated because other processes used more than {}% of a core during them\n\n{}",
        started.elapsed().as_secs_f64(),
        args.max_foreign_cpu,
        table(&results, &args)
    );
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
    }
    if args.update_readme {
        update_readme("loadbench", &report)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Replaces what lies between `<!-- {name}:begin -->` and `<!-- {name}:end -->` in
/// benches/README.md with `report`.
fn update_readme(name: &str, report: &str) -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        bail!("{} has no {begin} ... {end} markers", path.display());
    };
    anyhow::ensure!(b < e, "{begin} comes after {end} in {}", path.display());
    let updated = format!(
        "{}{begin}\n{}\n{}",
        &text[..b],
        report.trim_end(),
        &text[e..]
    );
    std::fs::write(&path, updated)?;
    eprintln!("updated {}", path.display());
    Ok(())
}

impl Bench {
    fn port(&self, peer: Peer) -> u16 {
        self.args.base_port
            + match peer {
                Peer::Bare => 1,
                Peer::Pingway => 2,
                Peer::Nginx => 3,
                Peer::Haproxy => 4,
            }
    }

    /// The port of the Redis that scenario 2's `policy: redis` case counts in: the
    /// one after the proxies' four.
    fn redis_port(&self) -> u16 {
        self.args.base_port + 5
    }

    fn addr(&self, peer: Peer) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(peer)))
    }

    /// The URL wrk loads for `case`: `https://` for the HTTPS scenarios.
    fn url(&self, case: &Case) -> String {
        let scheme = if case.setup.https() { "https" } else { "http" };
        format!("{scheme}://{}/", self.addr(case.peer))
    }

    /// The HTTPS scenarios' certificate (generated at start when 6 or 7 is asked for).
    fn tls_files(&self) -> anyhow::Result<&peers::TlsFiles> {
        self.tls
            .as_ref()
            .context("no certificate: the HTTPS scenarios (6, 7) were not asked for")
    }

    /// Records, once per proxy, what `openssl s_client` negotiates with it (the same
    /// library wrk uses, with its defaults).
    fn note_tls(&self, peer: Peer) {
        let Ok(mut seen) = self.tls_seen.lock() else {
            return;
        };
        if seen.iter().any(|(p, _)| *p == peer.key()) {
            return;
        }
        seen.push((peer.key(), procs::tls_summary(self.addr(peer), &self.dir)));
    }

    fn wants(&self, peer: Peer) -> bool {
        self.args.proxies.iter().any(|p| p == peer.key())
    }

    /// Whether `pingway validate` accepts a key-auth plugin; the note says what was
    /// decided and why.
    fn decide_key_auth(&mut self) -> anyhow::Result<String> {
        let file = self.dir.join("key-auth-probe.yaml");
        std::fs::write(
            &file,
            peers::pingway_one_route("127.0.0.1:1", "127.0.0.1:2", Some((true, None)), false),
        )?;
        let out = std::process::Command::new(self.bins.join("pingway"))
            .arg("validate")
            .arg(&file)
            .output()?;
        let accepted = out.status.success();
        let why = String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        let (on, note) = match (self.args.key_auth.as_str(), accepted) {
            ("off", _) => (false, "key-auth: off (--key-auth off)".to_string()),
            ("on", false) => bail!("--key-auth on, but pingway validate refuses it: {why}"),
            (_, true) => (
                true,
                "key-auth: on (`pingway validate` accepts it)".to_string(),
            ),
            (_, false) => (
                false,
                format!("key-auth: skipped, `pingway validate` refuses it ({why})"),
            ),
        };
        self.key_auth = on;
        Ok(note)
    }

    fn header(&self, key_auth_note: &str) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "?".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let a = &self.args;
        let mut h = String::new();
        let _ = writeln!(
            h,
            "**loadbench, {} (UTC)**\n",
            procs::version_of("date", &["-u", "+%Y-%m-%d %H:%M"])
        );
        let _ = writeln!(
            h,
            "- Machine: {cores} cores, {cpu}, kernel {}",
            procs::version_of("uname", &["-r"])
        );
        let _ = writeln!(
            h,
            "- Pingway commit {}; {}; {}; {}",
            procs::version_of(
                "git",
                &[
                    "-C",
                    env!("CARGO_MANIFEST_DIR"),
                    "rev-parse",
                    "--short",
                    "HEAD"
                ]
            ),
            procs::version_of("nginx", &["-v"]),
            procs::version_of("haproxy", &["-v"]),
            procs::version_of("wrk", &["-v"]),
        );
        let _ = writeln!(
            h,
            "- Cores: proxy under test alone on core {}; upstream nginx (1 worker, 20-byte body) and the load generator share core {}",
            a.proxy_core, a.load_core
        );
        let _ = writeln!(
            h,
            "- One worker each: bare Pingora threads=1 and Pingway `server: {{threads: 1, work_stealing: false}}` (mimalloc, lto=fat, codegen-units=1); nginx worker_processes 1, upstream keepalive 64; HAProxy nbthread 1, http-reuse always. Keep-alive on both sides, never closed during a run."
        );
        let _ = writeln!(
            h,
            "- Load: wrk -t1 -c{} for {} s after {} s warm-up (scenarios 1-3; scenario 5 for {} s); openloop at {} req/s for {} s after {} s, 32 connections, latency from the scheduled send time (scenario 4); {} round(s), proxies alternating, medians",
            a.connections, a.duration, a.warmup, a.reload_duration, a.fixed_rate, a.fixed_duration, a.fixed_warmup, a.rounds
        );
        let _ = writeln!(
            h,
            "- Scenario 2: ip-restriction + rate-limiting (never triggers); {key_auth_note}"
        );
        if self.tls.is_some() {
            let _ = writeln!(
                h,
                "- Scenarios 6, 7 (HTTPS, Pingway and nginx only): one self-signed ECDSA P-256 certificate generated with `openssl req` for both; TLS 1.2 and 1.3 offered by both, wrk (OpenSSL) negotiates 1.3; plain HTTP/1.1 keep-alive to the same upstream. Scenario 7 sends `Connection: close`: one TCP connection and one TLS handshake per request (wrk offers the session of its previous connection, so a proxy that accepts resumption does a PSK handshake, still with an ECDHE key exchange)"
            );
        }
        h
    }

    fn cases(&self) -> Vec<Case> {
        let mut out = Vec::new();
        let mut add = |scenario: u8, label: &str, peer: Peer, setup: Setup| {
            if self.args.scenarios.contains(&scenario) && self.wants(peer) {
                out.push(Case {
                    scenario,
                    label: label.to_string(),
                    peer,
                    setup,
                });
            }
        };
        let n = self.set.routes.len();
        let ka = if self.key_auth { "+key-auth " } else { "" };
        add(1, "bare pingora", Peer::Bare, Setup::Plain);
        add(1, "pingway", Peer::Pingway, Setup::Plain);
        add(1, "pingway mirror→hang", Peer::Pingway, Setup::MirrorHang);
        add(
            1,
            "pingway mirror→refused",
            Peer::Pingway,
            Setup::MirrorRefused,
        );
        if self.args.observability {
            add(
                1,
                "pingway +prometheus +access log",
                Peer::Pingway,
                Setup::Observed,
            );
        }
        add(1, "nginx", Peer::Nginx, Setup::Plain);
        add(1, "haproxy", Peer::Haproxy, Setup::Plain);
        add(2, "bare pingora (no plugins)", Peer::Bare, Setup::Plain);
        add(
            2,
            &format!("pingway ip+rl {ka}"),
            Peer::Pingway,
            Setup::Plugins,
        );
        add(
            2,
            &format!("pingway ip+rl {ka}+cors+rt"),
            Peer::Pingway,
            Setup::PluginsEdge,
        );
        if self.args.redis {
            add(
                2,
                &format!("pingway ip+rl redis {ka}"),
                Peer::Pingway,
                Setup::PluginsRedis,
            );
        }
        add(
            2,
            &format!(
                "nginx allow+limit_req {}",
                if self.key_auth { "+map" } else { "" }
            ),
            Peer::Nginx,
            Setup::Plugins,
        );
        add(
            2,
            &format!(
                "haproxy acl+stick {}",
                if self.key_auth { "+map" } else { "" }
            ),
            Peer::Haproxy,
            Setup::Plugins,
        );
        add(
            3,
            "bare pingora (spread reqs)",
            Peer::Bare,
            Setup::PlainSpread,
        );
        add(
            3,
            &format!("pingway {n} routes"),
            Peer::Pingway,
            Setup::Routes,
        );
        add(
            3,
            "pingway 1 route (spread reqs)",
            Peer::Pingway,
            Setup::PlainSpread,
        );
        add(
            3,
            &format!("nginx {n} locations"),
            Peer::Nginx,
            Setup::Routes,
        );
        add(
            3,
            &format!("haproxy {n} routes (maps)"),
            Peer::Haproxy,
            Setup::Routes,
        );
        add(4, "bare pingora", Peer::Bare, Setup::Fixed);
        add(4, "pingway", Peer::Pingway, Setup::Fixed);
        // Mirroring's cost where it matters: the client's latency at a rate the proxy
        // can carry (at saturation a mirror shares the proxy's cores by nature).
        add(4, "pingway mirror→hang", Peer::Pingway, Setup::MirrorHang);
        add(
            4,
            "pingway mirror→refused",
            Peer::Pingway,
            Setup::MirrorRefused,
        );
        add(4, "nginx", Peer::Nginx, Setup::Fixed);
        add(4, "haproxy", Peer::Haproxy, Setup::Fixed);
        add(5, "pingway (file rewrite)", Peer::Pingway, Setup::Reload);
        add(
            5,
            &format!("pingway {n} routes (rewrite)"),
            Peer::Pingway,
            Setup::ReloadRoutes,
        );
        add(5, "nginx (SIGHUP)", Peer::Nginx, Setup::Reload);
        add(5, "haproxy -W (SIGUSR2)", Peer::Haproxy, Setup::Reload);
        // HTTPS: Pingway against nginx, the peer the issue names (bare Pingora has no
        // TLS listener in this harness; HAProxy's TLS is not compared).
        add(6, "pingway https", Peer::Pingway, Setup::Https);
        add(6, "nginx https", Peer::Nginx, Setup::Https);
        add(
            7,
            "pingway https new conn/req",
            Peer::Pingway,
            Setup::HttpsHandshake,
        );
        add(
            7,
            "nginx https new conn/req",
            Peer::Nginx,
            Setup::HttpsHandshake,
        );
        out
    }

    /// Writes the proxy's configuration (`variant_b`: the reload scenario's second
    /// routing) and returns the file.
    fn write_config(&self, peer: Peer, setup: Setup, variant_b: bool) -> anyhow::Result<PathBuf> {
        let listen = self.addr(peer).to_string();
        let up = self.upstream.to_string();
        let (name, text) = match peer {
            Peer::Bare => return Ok(PathBuf::new()),
            Peer::Pingway => {
                let text = match setup {
                    Setup::Routes | Setup::ReloadRoutes => {
                        peers::pingway_many_routes(&listen, &up, &self.set, variant_b)
                    }
                    Setup::Plugins => {
                        peers::pingway_one_route(&listen, &up, Some((self.key_auth, None)), false)
                    }
                    Setup::PluginsEdge => {
                        let base = peers::pingway_one_route(
                            &listen,
                            &up,
                            Some((self.key_auth, None)),
                            false,
                        );
                        // The edge plugins go after the route's own list.
                        let edge = peers::pingway_edge_plugins();
                        match base.find("consumers:") {
                            Some(i) => format!("{}{edge}{}", &base[..i], &base[i..]),
                            None => format!("{base}{edge}"),
                        }
                    }
                    Setup::MirrorHang => {
                        peers::pingway_mirrored(&listen, &up, &self.black_hole.to_string())
                    }
                    Setup::MirrorRefused => {
                        peers::pingway_mirrored(&listen, &up, &self.closed_port.to_string())
                    }
                    Setup::Observed => {
                        peers::pingway_observed(&listen, &up, &self.dir.join("pingway-access.log"))
                    }
                    Setup::Https | Setup::HttpsHandshake => {
                        peers::pingway_https(&listen, &up, self.tls_files()?)
                    }
                    Setup::PluginsRedis => peers::pingway_one_route(
                        &listen,
                        &up,
                        Some((self.key_auth, Some(self.redis_port()))),
                        false,
                    ),
                    _ => peers::pingway_one_route(&listen, &up, None, variant_b),
                };
                ("pingway.yaml", text)
            }
            Peer::Nginx => {
                let s = match setup {
                    Setup::Plugins => NginxSetup::Plugins {
                        key_auth: self.key_auth,
                    },
                    Setup::Routes | Setup::ReloadRoutes => NginxSetup::Routes(&self.set),
                    Setup::Https | Setup::HttpsHandshake => NginxSetup::Https(self.tls_files()?),
                    _ if variant_b => NginxSetup::PlainB,
                    _ => NginxSetup::Plain,
                };
                let mut text =
                    peers::nginx_proxy(&self.dir, self.port(peer), self.upstream.port(), &s);
                if self.single_process.load(Ordering::Relaxed) {
                    text = text.replacen("daemon off;\n", "daemon off;\nmaster_process off;\n", 1);
                }
                ("nginx-proxy.conf", text)
            }
            Peer::Haproxy => {
                let s = match setup {
                    Setup::Plugins => HaproxySetup::Plugins {
                        key_auth: self.key_auth,
                    },
                    Setup::Routes | Setup::ReloadRoutes => HaproxySetup::Routes(&self.set),
                    _ if variant_b => HaproxySetup::PlainB,
                    _ => HaproxySetup::Plain,
                };
                (
                    "haproxy.cfg",
                    peers::haproxy(&self.dir, self.port(peer), self.upstream.port(), &s)?,
                )
            }
        };
        let file = self.dir.join(name);
        // Write then rename, so a watching proxy never reads half a file.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &file)?;
        Ok(file)
    }

    fn start(&self, case: &Case) -> anyhow::Result<Proc> {
        self.start_wrapped(case, &[])
    }

    /// Starts the case's proxy, its command prefixed by `wrapper` (e.g. valgrind), and
    /// waits until it answers.
    fn start_wrapped(&self, case: &Case, wrapper: &[String]) -> anyhow::Result<Proc> {
        let peer = case.peer;
        let core = &self.args.proxy_core;
        let log = self.dir.join(format!("{}.log", peer.key()));
        let conf = self.write_config(peer, case.setup, false)?;
        let (name, program, mut args, stop): (&str, PathBuf, Vec<String>, i32) = match peer {
            Peer::Bare => (
                "bare pingora",
                self.bins.join("bare-pingora"),
                vec![
                    "--listen".into(),
                    self.addr(peer).to_string(),
                    "--upstream".into(),
                    self.upstream.to_string(),
                ],
                procs::SIGINT,
            ),
            Peer::Pingway => (
                "pingway",
                self.bins.join("pingway"),
                vec!["run".into(), "--config".into(), conf.display().to_string()],
                procs::SIGINT,
            ),
            Peer::Nginx => (
                "nginx",
                PathBuf::from("/usr/sbin/nginx"),
                vec![
                    "-p".into(),
                    self.dir.display().to_string(),
                    "-c".into(),
                    conf.display().to_string(),
                ],
                procs::SIGTERM,
            ),
            Peer::Haproxy => {
                let mut a = vec!["-db".to_string(), "-f".into(), conf.display().to_string()];
                if matches!(case.setup, Setup::Reload | Setup::ReloadRoutes) {
                    a.insert(0, "-W".into());
                }
                (
                    "haproxy",
                    PathBuf::from("/usr/sbin/haproxy"),
                    a,
                    procs::SIGTERM,
                )
            }
        };
        let program = match wrapper.split_first() {
            Some((first, rest)) => {
                args.insert(0, program.display().to_string());
                for (i, w) in rest.iter().enumerate() {
                    args.insert(i, w.clone());
                }
                PathBuf::from(first)
            }
            None => program,
        };
        let ready_within = if wrapper.is_empty() { 20 } else { 120 };
        let mut proc = Proc::spawn(name, core, &program, &args, &log, stop)?;
        let (host, path) = match case.setup {
            Setup::Routes | Setup::ReloadRoutes | Setup::PlainSpread => {
                let p = &self.set.probes[0];
                (p.host.clone(), p.path.clone())
            }
            _ => ("localhost".to_string(), "/".to_string()),
        };
        let headers: Vec<(&str, &str)> = if matches!(
            case.setup,
            Setup::Plugins | Setup::PluginsRedis | Setup::PluginsEdge
        ) {
            vec![(peers::API_KEY_HEADER, peers::API_KEY)]
        } else {
            Vec::new()
        };
        if case.setup.https() {
            procs::wait_https(
                &mut proc,
                self.addr(peer),
                Duration::from_secs(ready_within),
            )
            .with_context(|| format!("log: {}", log.display()))?;
            self.note_tls(peer);
            return Ok(proc);
        }
        procs::wait_http(
            &mut proc,
            self.addr(peer),
            &host,
            &path,
            &headers,
            200,
            Duration::from_secs(ready_within),
        )
        .with_context(|| format!("log: {}", log.display()))?;
        Ok(proc)
    }

    fn script(&self, setup: Setup) -> &Path {
        match setup {
            Setup::Plugins | Setup::PluginsRedis => &self.scripts.plugins,
            Setup::PluginsEdge => &self.scripts.edge,
            Setup::Routes | Setup::ReloadRoutes | Setup::PlainSpread => &self.scripts.spread,
            Setup::HttpsHandshake => &self.scripts.close,
            _ => &self.scripts.plain,
        }
    }

    fn run_case(&self, case: &Case, upstream_pid: u32) -> anyhow::Result<Sample> {
        let proc = self.start(case)?;
        let addr = self.addr(case.peer);
        let url = self.url(case);
        let load = &self.args.load_core;
        let pid = proc.pid();
        if case.scenario != 4 && self.args.warmup > 0 {
            measure::wrk_url(
                load,
                &url,
                self.args.connections,
                self.args.warmup as f64,
                self.script(case.setup),
            )?;
        }

        let reloading = matches!(case.setup, Setup::Reload | Setup::ReloadRoutes);
        let stop = Arc::new(AtomicBool::new(false));
        let reloads = Arc::new(AtomicU32::new(0));
        let log = self.dir.join(format!("{}.log", case.peer.key()));
        let applied_before = count_lines(&log, "configuration reloaded");

        let cpu0 = procs::cpu_seconds(pid);
        let up0 = procs::cpu_seconds(upstream_pid);
        let busy0 = procs::machine_busy_seconds();
        let cores0 = procs::core_times();
        let t0 = Instant::now();
        let (mut sample, loadgen_cpu) = std::thread::scope(|scope| {
            if reloading {
                let stop = stop.clone();
                let reloads = reloads.clone();
                scope.spawn(move || self.reload_loop(case, pid, &stop, &reloads));
            }
            let r = if case.scenario == 4 {
                measure::open_loop(
                    load,
                    addr,
                    &measure::OpenLoop {
                        program: &self.bins.join("openloop"),
                        rate: self.args.fixed_rate,
                        seconds: self.args.fixed_duration as f64,
                        warmup: self.args.fixed_warmup,
                        connections: 32,
                    },
                )
            } else {
                let secs = if reloading {
                    self.args.reload_duration
                } else {
                    self.args.duration
                };
                measure::wrk_url(
                    load,
                    &url,
                    self.args.connections,
                    secs as f64,
                    self.script(case.setup),
                )
            };
            stop.store(true, Ordering::SeqCst);
            r
        })?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = procs::cpu_seconds(pid) - cpu0;
        let up_cpu = procs::cpu_seconds(upstream_pid) - up0;
        let busy = procs::machine_busy_seconds() - busy0;
        sample.cores = procs::core_summary(&cores0, &procs::core_times());
        sample.cpu_pct = 100.0 * cpu / wall;
        sample.rss_kib = procs::peak_rss_kib(pid) as f64;
        sample.foreign_cpu_pct = (100.0 * (busy - cpu - up_cpu - loadgen_cpu) / wall).max(0.0);
        if reloading {
            sample.reloads = match case.peer {
                // Pingway logs each reload it applied.
                Peer::Pingway => {
                    std::thread::sleep(Duration::from_millis(200));
                    (count_lines(&log, "configuration reloaded") - applied_before) as f64
                }
                _ => f64::from(reloads.load(Ordering::SeqCst)),
            };
        }
        proc.stop();
        Ok(sample)
    }

    /// Every second: switch the configuration to the other routing and make the proxy
    /// load it (Pingway watches its file; nginx gets SIGHUP; HAProxy -W SIGUSR2).
    fn reload_loop(&self, case: &Case, pid: u32, stop: &AtomicBool, reloads: &AtomicU32) {
        let mut b = false;
        let mut next = Instant::now() + Duration::from_secs(1);
        while !stop.load(Ordering::SeqCst) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            next += Duration::from_secs(1);
            b = !b;
            if let Err(e) = self.write_config(case.peer, case.setup, b) {
                eprintln!("  reload: cannot write the configuration: {e:#}");
                continue;
            }
            match case.peer {
                Peer::Nginx => procs::signal(pid, procs::SIGHUP),
                Peer::Haproxy => procs::signal(pid, procs::SIGUSR2),
                _ => {}
            }
            reloads.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn count_lines(file: &Path, needle: &str) -> usize {
    std::fs::read_to_string(file)
        .map(|t| t.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// the table

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Clone, Copy, Default)]
struct Medians {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    rss_mb: f64,
    cpu: f64,
    errors: f64,
    reloads: f64,
}

fn medians(samples: &[Sample]) -> Medians {
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Medians {
        rps: m(|s| s.rps),
        p50: m(|s| s.p50_us),
        p99: m(|s| s.p99_us),
        p999: m(|s| s.p999_us),
        rss_mb: m(|s| s.rss_kib / 1024.0),
        cpu: m(|s| s.cpu_pct),
        errors: m(|s| s.errors),
        reloads: m(|s| s.reloads),
    }
}

fn fmt_rps(v: f64) -> String {
    format!("{:.1}k", v / 1000.0)
}

fn fmt_us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn ratio(v: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 && v.is_finite() => format!("{:.2}", v / b),
        _ => "–".into(),
    }
}

fn table(results: &[(Case, Vec<Sample>)], args: &Args) -> String {
    let mut out = String::new();
    out.push_str(
        "Scenarios: 1 one route, no plugins; 2 ip-restriction + rate-limiting (and peers' equivalents); \
         3 10,000 routes, requests spread over 1,000 of them; 4 fixed rate (open loop); \
         5 a reload every second under load; 6 HTTPS (TLS 1.3) keep-alive, Pingway and nginx; \
         7 HTTPS with a new connection (a handshake) per request.\n\n",
    );
    out.push_str(
        "Each cell: value (ratio to bare Pingora | ratio to nginx, same scenario). Medians of the rounds. \
         req/s counts successful responses; CPU is the proxy's user+system time over wall time (100% = one core); \
         peak RSS is VmHWM summed over the proxy's processes; errors are socket errors + non-2xx (median per run).\n\n",
    );
    out.push_str("| # | proxy | req/s | p50 | p99 | p99.9 | peak RSS | CPU | errors |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let find = |scenario: u8, peer: Peer| {
        results
            .iter()
            .find(|(c, s)| c.scenario == scenario && c.peer == peer && !s.is_empty())
            .map(|(_, s)| medians(s))
    };
    for (case, samples) in results {
        if samples.is_empty() {
            continue;
        }
        let m = medians(samples);
        let bare = find(case.scenario, Peer::Bare);
        let nginx = find(case.scenario, Peer::Nginx);
        let cell = |v: f64, f: &dyn Fn(&Medians) -> f64, show: String| {
            format!(
                "{show} ({} \\| {})",
                ratio(v, bare.map(|b| f(&b))),
                ratio(v, nginx.map(|n| f(&n)))
            )
        };
        let errors = if case.setup == Setup::Reload || case.setup == Setup::ReloadRoutes {
            format!("{:.0} ({:.0} reloads)", m.errors, m.reloads)
        } else {
            format!("{:.0}", m.errors)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            case.scenario,
            case.label.trim(),
            cell(m.rps, &|x| x.rps, fmt_rps(m.rps)),
            cell(m.p50, &|x| x.p50, fmt_us(m.p50)),
            cell(m.p99, &|x| x.p99, fmt_us(m.p99)),
            cell(m.p999, &|x| x.p999, fmt_us(m.p999)),
            cell(m.rss_mb, &|x| x.rss_mb, format!("{:.1} MB", m.rss_mb)),
            cell(m.cpu, &|x| x.cpu, format!("{:.0}%", m.cpu)),
            errors,
        );
    }
    out.push('\n');
    out.push_str(&targets(results, args));
    out
}

fn targets(results: &[(Case, Vec<Sample>)], args: &Args) -> String {
    let get = |scenario: u8, peer: Peer, setup: Setup| {
        results
            .iter()
            .find(|(c, s)| {
                c.scenario == scenario && c.peer == peer && c.setup == setup && !s.is_empty()
            })
            .map(|(_, s)| medians(s))
    };
    let mut out = String::from("Targets (issue 3):\n\n");
    let mut line = |name: &str, value: Option<f64>, pass: &dyn Fn(f64) -> bool, unit: &str| {
        let _ = match value {
            Some(v) if v.is_finite() => writeln!(
                out,
                "- {name}: {v:.2}{unit} — {}",
                if pass(v) { "met" } else { "NOT met" }
            ),
            _ => writeln!(out, "- {name}: not measured in this run"),
        };
    };
    let s1_bare = get(1, Peer::Bare, Setup::Plain);
    let s1_pw = get(1, Peer::Pingway, Setup::Plain);
    line(
        "Pingway no plugins ≥ 0.95× bare Pingora (req/s)",
        s1_pw.zip(s1_bare).map(|(p, b)| p.rps / b.rps),
        &|v| v >= 0.95,
        "×",
    );
    let s2_pw = get(2, Peer::Pingway, Setup::Plugins);
    let s2_bare = get(2, Peer::Bare, Setup::Plain);
    line(
        "Pingway scenario-2 plugins ≥ 0.90× bare Pingora (req/s)",
        s2_pw.zip(s2_bare).map(|(p, b)| p.rps / b.rps),
        &|v| v >= 0.90,
        "×",
    );
    let s2_edge = get(2, Peer::Pingway, Setup::PluginsEdge);
    line(
        "Pingway scenario-2 plugins + cors + request-transformer, against bare Pingora (req/s; reported, issue 11)",
        s2_edge.zip(s2_bare).map(|(p, b)| p.rps / b.rps),
        &|_| true,
        "×",
    );
    for (setup, what) in [
        (Setup::MirrorHang, "hangs"),
        (Setup::MirrorRefused, "refuses"),
    ] {
        let m = get(1, Peer::Pingway, setup);
        line(
            &format!("Pingway mirroring every request to a shadow that {what}, against no mirror (req/s; ≈1 expected)"),
            m.zip(s1_pw).map(|(m, p)| m.rps / p.rps),
            &|v| v >= 0.9,
            "×",
        );
        line(
            "  p99 latency, same, against no mirror",
            m.zip(s1_pw).map(|(m, p)| m.p99 / p.p99),
            &|v| v <= 1.25,
            "×",
        );
    }
    let s3_pw = get(3, Peer::Pingway, Setup::Routes);
    line(
        &format!(
            "Pingway {} routes ≥ 0.95× Pingway 1 route, scenario 1 (req/s)",
            args.routes
        ),
        s3_pw.zip(s1_pw).map(|(p, b)| p.rps / b.rps),
        &|v| v >= 0.95,
        "×",
    );
    let s3_one = get(3, Peer::Pingway, Setup::PlainSpread);
    line(
        "  same, against 1 route under the same spread requests",
        s3_pw.zip(s3_one).map(|(p, b)| p.rps / b.rps),
        &|v| v >= 0.95,
        "×",
    );
    line(
        &format!("RSS with {} routes < 64 MB", args.routes),
        s3_pw.map(|p| p.rss_mb),
        &|v| v < 64.0,
        " MB",
    );
    let s4_pw = get(4, Peer::Pingway, Setup::Fixed);
    let s4_bare = get(4, Peer::Bare, Setup::Fixed);
    line(
        &format!(
            "Fixed rate ({} req/s): Pingway p99 ≤ 1.1× bare Pingora",
            args.fixed_rate
        ),
        s4_pw.zip(s4_bare).map(|(p, b)| p.p99 / b.p99),
        &|v| v <= 1.1,
        "×",
    );
    for (setup, what) in [
        (Setup::MirrorHang, "hangs"),
        (Setup::MirrorRefused, "refuses"),
    ] {
        line(
            &format!(
                "  fixed rate, every request mirrored to a shadow that {what}: p99 against no mirror (≈1 expected)"
            ),
            get(4, Peer::Pingway, setup)
                .zip(s4_pw)
                .map(|(m, p)| m.p99 / p.p99),
            &|v| v <= 1.25,
            "×",
        );
    }
    let s5 = get(5, Peer::Pingway, Setup::Reload);
    line(
        "Reloads under load: Pingway failed requests = 0",
        s5.map(|p| p.errors),
        &|v| v == 0.0,
        "",
    );
    line(
        "Reloads under load: Pingway p99 ≤ 2× steady state (scenario 1)",
        s5.zip(s1_pw).map(|(r, s)| r.p99 / s.p99),
        &|v| v <= 2.0,
        "×",
    );
    let s5_10k = get(5, Peer::Pingway, Setup::ReloadRoutes);
    line(
        &format!("  with {} routes: failed requests", args.routes),
        s5_10k.map(|p| p.errors),
        &|v| v == 0.0,
        "",
    );
    line(
        &format!(
            "  with {} routes: p99 ≤ 2× steady state (scenario 3)",
            args.routes
        ),
        s5_10k.zip(s3_pw).map(|(r, s)| r.p99 / s.p99),
        &|v| v <= 2.0,
        "×",
    );
    out.push_str(
        "- Router lookup < 1 µs and building 10,000 routes from YAML < 200 ms: see `cargo bench -p pingway-benches --bench micro`\n",
    );
    if let Some((observed, plain)) = get(1, Peer::Pingway, Setup::Observed).zip(s1_pw) {
        let _ = writeln!(
            out,
            "- Scenario 1 with prometheus (every metric) + JSON access log ≥ 0.93× without (issue 10, req/s): \
             {:.2}× ({:.1}k vs {:.1}k), p99 {:.0} vs {:.0} µs — {}",
            observed.rps / plain.rps,
            observed.rps / 1000.0,
            plain.rps / 1000.0,
            observed.p99,
            plain.p99,
            if observed.rps / plain.rps >= 0.93 { "met" } else { "NOT met" }
        );
    }
    // Issue 13 sets no target here: it asks for the figures.
    if let Some((redis, local)) = get(2, Peer::Pingway, Setup::PluginsRedis).zip(s2_pw) {
        let _ = writeln!(
            out,
            "- Scenario 2, rate-limiting policy: redis vs policy: local (issue 13, no target): \
             {:.2}× the req/s ({:.1}k vs {:.1}k), p99 {:+.0} µs ({:.0} vs {:.0} µs)",
            redis.rps / local.rps,
            redis.rps / 1000.0,
            local.rps / 1000.0,
            redis.p99 - local.p99,
            redis.p99,
            local.p99
        );
    }
    // Issue 12 asks for the ratio to nginx, with no target.
    for (scenario, setup, what) in [
        (6, Setup::Https, "HTTPS keep-alive"),
        (
            7,
            Setup::HttpsHandshake,
            "HTTPS, a new connection and handshake per request",
        ),
    ] {
        if let Some((pw, ng)) =
            get(scenario, Peer::Pingway, setup).zip(get(scenario, Peer::Nginx, setup))
        {
            let _ = writeln!(
                out,
                "- Scenario {scenario}, {what}, Pingway vs nginx (issue 12, no target): \
                 {:.2}× the req/s ({:.1}k vs {:.1}k), p99 {:.0} vs {:.0} µs ({:.2}×)",
                pw.rps / ng.rps,
                pw.rps / 1000.0,
                ng.rps / 1000.0,
                pw.p99,
                ng.p99,
                pw.p99 / ng.p99
            );
        }
    }
    out
}

/// The HTTPS scenarios' certificate and key, made with `openssl req` in `dir`: ECDSA
/// P-256 (the common choice, and cheap to sign with for both proxies), self-signed, for
/// `localhost` and 127.0.0.1 (wrk does not verify it).
fn make_certificate(dir: &Path) -> anyhow::Result<peers::TlsFiles> {
    let files = peers::TlsFiles {
        cert: dir.join("bench.crt"),
        key: dir.join("bench.key"),
    };
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "7",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&files.key)
        .arg("-out")
        .arg(&files.cert)
        .output()
        .context("openssl req")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(files)
}

/// A loopback server that accepts connections and holds them without answering, for the
/// whole run (a mirror shadow that hangs).
fn black_hole() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    Ok(addr)
}

/// A loopback port that refuses connections (a mirror shadow that is down).
fn closed_port() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(addr)
}
