//! Load generators: wrk for throughput (closed loop), `openloop` for latency at a fixed
//! rate. Both report through one `Sample`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use crate::procs;

/// What one measured run of one proxy gave.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Successful responses per second (wrk: all responses; errors counted apart).
    pub rps: f64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Peak RSS of the proxy's processes, KiB.
    pub rss_kib: f64,
    /// Proxy CPU time over wall time, percent of one core.
    pub cpu_pct: f64,
    /// Failed requests: socket errors and non-2xx/3xx responses.
    pub errors: f64,
    /// CPU used on the machine by anything other than the proxy, the upstream and the
    /// load generator, percent of one core (another build, say).
    pub foreign_cpu_pct: f64,
    /// Reloads applied during the run (reload scenario).
    pub reloads: f64,
    /// What each core did during the run (idle, softirq, steal).
    pub cores: String,
}

/// The wrk Lua `done` hook that prints the summary as one JSON line.
pub const WRK_DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\n{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"#;

/// Writes a wrk script: `body` (headers, request function), then the JSON `done` hook.
pub fn write_wrk_script(path: &Path, body: &str) -> anyhow::Result<()> {
    std::fs::write(path, format!("{body}\n{WRK_DONE}"))
        .with_context(|| format!("write {}", path.display()))
}

/// wrk's figures for one run against `http://addr/`: (sample without proxy-side
/// numbers, wrk's CPU seconds).
pub fn wrk(
    core: &str,
    addr: SocketAddr,
    connections: u32,
    seconds: f64,
    script: &Path,
) -> anyhow::Result<(Sample, f64)> {
    wrk_url(
        core,
        &format!("http://{addr}/"),
        connections,
        seconds,
        script,
    )
}

/// [`wrk`] against any URL (`https://...` for the TLS scenario: wrk speaks TLS through
/// OpenSSL, without session resumption, so a new connection is a full handshake).
pub fn wrk_url(
    core: &str,
    url: &str,
    connections: u32,
    seconds: f64,
    script: &Path,
) -> anyhow::Result<(Sample, f64)> {
    let args = vec![
        "-t1".to_string(),
        format!("-c{connections}"),
        format!("-d{}s", seconds.round().max(1.0) as u64),
        "--timeout".into(),
        "5s".into(),
        "-s".into(),
        script.display().to_string(),
        url.to_string(),
    ];
    let (out, cpu) = procs::run_pinned(core, "wrk", &args)?;
    let line = out
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .with_context(|| format!("no summary in wrk output:\n{out}"))?;
    let v: Value = serde_json::from_str(line).context("wrk summary")?;
    let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let secs = n("duration_us") / 1e6;
    let errors = n("connect") + n("read") + n("write") + n("status") + n("timeout");
    Ok((
        Sample {
            rps: if secs > 0.0 {
                (n("requests") - n("status")) / secs
            } else {
                0.0
            },
            p50_us: n("p50_us"),
            p99_us: n("p99_us"),
            p999_us: n("p999_us"),
            errors,
            ..Sample::default()
        },
        cpu,
    ))
}

/// Options of one open-loop run.
pub struct OpenLoop<'a> {
    /// The `openloop` binary.
    pub program: &'a Path,
    /// Requests per second.
    pub rate: f64,
    /// Measured seconds.
    pub seconds: f64,
    /// Unrecorded seconds first.
    pub warmup: f64,
    /// Connections.
    pub connections: u32,
}

/// One fixed-rate run: (sample without proxy-side numbers, the generator's CPU seconds).
pub fn open_loop(core: &str, addr: SocketAddr, o: &OpenLoop<'_>) -> anyhow::Result<(Sample, f64)> {
    let args = vec![
        "--addr".to_string(),
        addr.to_string(),
        "--rate".into(),
        o.rate.to_string(),
        "--duration".into(),
        o.seconds.to_string(),
        "--warmup".into(),
        o.warmup.to_string(),
        "--connections".into(),
        o.connections.to_string(),
    ];
    let (out, cpu) = procs::run_pinned(core, &o.program.display().to_string(), &args)?;
    let v: Value = serde_json::from_str(out.trim()).context("openloop output")?;
    let n = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    Ok((
        Sample {
            rps: n("achieved_rps"),
            p50_us: n("p50_us"),
            p99_us: n("p99_us"),
            p999_us: n("p999_us"),
            errors: n("non2xx") + n("socket_errors") + n("unsent"),
            ..Sample::default()
        },
        cpu,
    ))
}
