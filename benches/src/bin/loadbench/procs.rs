//! Starting, pinning, probing and stopping the processes of a run, and reading what
//! they cost from `/proc`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Linux's USER_HZ: `/proc/*/stat` times are in these ticks on every architecture
/// that matters here.
const TICKS_PER_SECOND: f64 = 100.0;

/// Every process of a run gets the highest priority, so builds or other jobs on the
/// machine take as little of its cores as the scheduler allows (`nice` execs the
/// program, so the pid we hold is the program's).
const NICE: [&str; 3] = ["nice", "-n", "-20"];

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// SIGHUP.
pub const SIGHUP: i32 = 1;
/// SIGINT.
pub const SIGINT: i32 = 2;
/// SIGUSR2.
pub const SIGUSR2: i32 = 12;
/// SIGTERM.
pub const SIGTERM: i32 = 15;

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety requirements.
    unsafe {
        kill(pid as i32, sig);
    }
}

/// `program args` under `taskset -c core` and [`NICE`], with no stdin.
fn pinned(core: &str, program: &std::ffi::OsStr, args: &[String]) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(core)
        .args(NICE)
        .arg(program)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// A process we started, pinned to `core`; killed when dropped.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    stop_signal: i32,
}

impl Proc {
    /// Starts `program args` under `taskset -c core`, output to `log`.
    pub fn spawn(
        name: &str,
        core: &str,
        program: &Path,
        args: &[String],
        log: &Path,
        stop_signal: i32,
    ) -> anyhow::Result<Proc> {
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = pinned(core, program.as_os_str(), args)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {name} ({})", program.display()))?;
        Ok(Proc {
            name: name.to_string(),
            child,
            stop_signal,
        })
    }

    /// The process id (taskset execs the program, so it is the program's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Stops it with its stop signal, then SIGKILL after 3 s.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if self.exited() {
            return;
        }
        signal(self.pid(), self.stop_signal);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Waits until `GET path` with `Host: host` on `addr` answers `want` (or any status if
/// `want` is 0), or fails after `timeout`.
pub fn wait_http(
    proc: &mut Proc,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    want: u16,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if proc.exited() {
            bail!("{} exited during start-up", proc.name);
        }
        match http_status(addr, host, path, headers) {
            Ok(s) if want == 0 || s == want => return Ok(()),
            Ok(s) => last = format!("status {s}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!(
        "{} not ready on {addr} within {timeout:?}: {last}",
        proc.name
    )
}

/// Waits until `GET https://addr/` answers 200 (curl, certificate not verified), or
/// fails after `timeout`.
pub fn wait_https(proc: &mut Proc, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        if proc.exited() {
            bail!("{} exited during start-up", proc.name);
        }
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-m", "2", "-w", "%{http_code}"])
            .arg(format!("https://{addr}/"))
            .stdin(Stdio::null())
            .output()
            .context("curl")?;
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if code == "200" {
            return Ok(());
        }
        last = format!("curl: status {code:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!(
        "{} not ready on https://{addr}/ within {timeout:?}: {last}",
        proc.name
    )
}

/// What OpenSSL's client negotiates with the HTTPS server on `addr`, with its defaults
/// (as wrk does): protocol, cipher suite and key exchange, from `openssl s_client
/// -brief`; and whether a second connection offering the first one's session resumed it
/// (each sends a request and reads the answer, so TLS 1.3 tickets arrive first; wrk
/// offers its previous session when it reconnects).
pub fn tls_summary(addr: SocketAddr, dir: &Path) -> String {
    let connect = addr.to_string();
    let s_client = |args: &[&str], request: bool| -> String {
        let child = Command::new("openssl")
            .args(["s_client", "-connect", &connect])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            return String::new();
        };
        if let Some(mut stdin) = child.stdin.take() {
            if request {
                let _ = stdin
                    .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            }
        }
        match child.wait_with_output() {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("openssl s_client: {e}"),
        }
    };
    let text = s_client(&["-brief"], false);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let session = dir.join(format!("session-{}.pem", addr.port()));
    let session = session.display().to_string();
    s_client(&["-quiet", "-sess_out", &session], true);
    let again = s_client(&["-sess_in", &session], true);
    let resumed = if again.lines().any(|l| l.starts_with("Reused,")) {
        "resumed"
    } else {
        "not resumed"
    };
    format!(
        "{}, {}, key exchange {}; a reconnection offering the session: {resumed}",
        field("Protocol version"),
        field("Ciphersuite"),
        field("Server Temp Key")
    )
}

/// One blocking `GET` on a fresh connection: the response status.
pub fn http_status(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut head[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let text = String::from_utf8_lossy(&head[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line {text:?}"))
}

/// The process and its direct children (nginx's and HAProxy's workers).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if stat_fields(child).and_then(|f| f.get(1).and_then(|p| p.parse().ok())) == Some(pid) {
                pids.push(child);
            }
        }
    }
    pids
}

/// Fields of `/proc/PID/stat` after the command name (so index 0 is the state, 1 the
/// parent pid, 11 utime, 12 stime, 13 cutime, 14 cstime).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU seconds used by `pid`, its live children, and the children it already reaped.
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut ticks = 0u64;
    for (i, p) in tree(pid).into_iter().enumerate() {
        if let Some(f) = stat_fields(p) {
            let field = |n: usize| f.get(n).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += field(11) + field(12);
            if i == 0 {
                ticks += field(13) + field(14);
            }
        }
    }
    ticks as f64 / TICKS_PER_SECOND
}

/// Peak resident memory (VmHWM) of `pid` and its children, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// Busy CPU seconds of the whole machine so far (all cores), from `/proc/stat`.
pub fn machine_busy_seconds() -> f64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = text.lines().next() else {
        return 0.0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: the kernel charges interrupt
    // ticks to the interrupted process's stime as well, so they are counted here too.
    let busy: u64 = v
        .iter()
        .take(7)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| *x)
        .sum();
    busy as f64 / TICKS_PER_SECOND
}

/// Per-core jiffies from `/proc/stat`: (core name, [user nice system idle iowait irq
/// softirq steal]).
pub fn core_times() -> Vec<(String, [u64; 8])> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next().unwrap_or("?").to_string();
            let mut v = [0u64; 8];
            for (slot, x) in v.iter_mut().zip(f) {
                *slot = x.parse().unwrap_or(0);
            }
            (name, v)
        })
        .collect()
}

/// What each core did between two `core_times` readings: "cpu0 idle 3% softirq 12%
/// steal 0%", ...
pub fn core_summary(before: &[(String, [u64; 8])], after: &[(String, [u64; 8])]) -> String {
    before
        .iter()
        .zip(after)
        .map(|((name, a), (_, b))| {
            let d: Vec<f64> = a
                .iter()
                .zip(b)
                .map(|(x, y)| y.saturating_sub(*x) as f64)
                .collect();
            let total: f64 = d.iter().sum::<f64>().max(1.0);
            format!(
                "{name} idle {:.0}% si {:.0}% st {:.0}%",
                100.0 * (d[3] + d[4]) / total,
                100.0 * d[6] / total,
                100.0 * d[7] / total
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `program args` to completion (pinned to `core`); returns its stdout and the CPU
/// seconds it used.
pub fn run_pinned(core: &str, program: &str, args: &[String]) -> anyhow::Result<(String, f64)> {
    let before = children_cpu_seconds();
    let out = pinned(core, program.as_ref(), args)
        .output()
        .with_context(|| format!("start {program}"))?;
    let cpu = children_cpu_seconds() - before;
    if !out.status.success() {
        bail!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), cpu))
}

/// `struct rusage` on 64-bit Linux: two `timeval`s, then 14 `long`s.
#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    rest: [i64; 14],
}

extern "C" {
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

/// CPU seconds of every child this process has waited for (RUSAGE_CHILDREN).
fn children_cpu_seconds() -> f64 {
    const RUSAGE_CHILDREN: i32 = -1;
    let mut u = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        rest: [0; 14],
    };
    // SAFETY: `u` is a properly sized, writable `struct rusage`.
    if unsafe { getrusage(RUSAGE_CHILDREN, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    tv(u.utime) + tv(u.stime)
}

/// Waits (up to `max`) until the machine's busy CPU over 0.3 s is under `threshold`
/// percent of a core. Returns how long it waited, or `None` if it never got quiet.
pub fn wait_quiet(threshold: f64, max: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut announced = false;
    loop {
        let b0 = machine_busy_seconds();
        std::thread::sleep(Duration::from_millis(300));
        let busy = 100.0 * (machine_busy_seconds() - b0) / 0.3;
        if busy < threshold {
            return Some(start.elapsed());
        }
        if start.elapsed() > max {
            return None;
        }
        if !announced {
            eprintln!("  waiting for the machine to be quiet (other processes use {busy:.0}% of a core)...");
            announced = true;
        }
    }
}

/// Whether something already listens on `addr`.
pub fn port_busy(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// First line of `program args` output (stdout or stderr), for version reports.
pub fn version_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or("?").trim().to_string()
        }
        Err(_) => format!("{program}: not found"),
    }
}
