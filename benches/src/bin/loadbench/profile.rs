//! `--profile`: where a proxy spends its core under scenario 1's load.
//!
//! - `perf record -e cpu-clock` (software clock sampling: these VMs expose no hardware
//!   counters) on the proxy's processes during a wrk run; reported as the kernel / user
//!   split by DSO and the top symbols by self time.
//! - `strace -c -f` attached during a shorter wrk run: system calls per request (strace
//!   slows the proxy down a lot; only the counts are meaningful, not the times).

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::{measure, procs, Bench, Case, Peer, Setup};

/// Profiles each of `peers` in turn; returns a Markdown section.
pub fn run(bench: &Bench, peers: &[Peer], upstream_pid: u32) -> anyhow::Result<String> {
    let mut out = String::from("**Profiles under scenario 1 load**\n\n");
    for &peer in peers {
        let case = Case {
            scenario: 1,
            label: peer.key().to_string(),
            peer,
            setup: Setup::Plain,
        };
        let _ = upstream_pid;
        let proc = bench.start(&case)?;
        let pid = proc.pid();
        let addr = bench.addr(peer);
        let load = &bench.args.load_core;
        let script = bench.script(Setup::Plain);
        measure::wrk(load, addr, bench.args.connections, 1.0, script)?;

        // perf, during a wrk run.
        let data = bench.dir.join(format!("{}.perf.data", peer.key()));
        let pids = procs::tree(pid)
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let secs = bench.args.duration.max(3);
        let perf = Command::new("taskset")
            .args([
                "-c",
                load,
                "perf",
                "record",
                "-q",
                "-e",
                "cpu-clock",
                "-F",
                "999",
                "-p",
            ])
            .arg(&pids)
            .arg("-o")
            .arg(&data)
            .args(["--", "sleep", &secs.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("perf record (apt-get install -y linux-perf)")?;
        let stat = Command::new("taskset")
            .args(["-c", load, "perf", "stat", "-x", ",", "-e"])
            .arg("task-clock,context-switches,cpu-migrations,page-faults")
            .arg("-p")
            .arg(&pids)
            .args(["--", "sleep", &secs.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("perf stat")?;
        std::thread::sleep(Duration::from_millis(200));
        let (sample, _) = measure::wrk(
            load,
            addr,
            bench.args.connections,
            secs as f64 - 0.5,
            script,
        )?;
        let perf_out = perf.wait_with_output()?;
        let stat_out = stat.wait_with_output()?;
        let counters = per_request_counters(
            &String::from_utf8_lossy(&stat_out.stderr),
            sample.rps * secs as f64,
        );
        anyhow::ensure!(
            perf_out.status.success(),
            "perf record: {}",
            String::from_utf8_lossy(&perf_out.stderr)
        );
        let dso = perf_report(&data, "dso", 0.5)?;
        let sym = perf_report(&data, "dso,sym", 0.7)?;

        // strace, during a short wrk run.
        let trace = bench.dir.join(format!("{}.strace", peer.key()));
        let mut strace = Command::new("taskset");
        strace
            .args(["-c", load, "strace", "-c", "-f", "-o"])
            .arg(&trace);
        // Every process (nginx's and HAProxy's workers are not followed by -f when
        // they already exist).
        for p in procs::tree(pid) {
            strace.arg("-p").arg(p.to_string());
        }
        let strace = strace
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("strace (apt-get install -y strace)")?;
        std::thread::sleep(Duration::from_millis(500));
        let (traced, _) = measure::wrk(load, addr, bench.args.connections, 2.0, script)?;
        procs::signal(strace.id(), procs::SIGINT);
        let _ = strace.wait_with_output();
        let calls = std::fs::read_to_string(&trace).unwrap_or_default();
        proc.stop();

        let requests = traced.rps * 2.0;
        let _ = writeln!(
            out,
            "#### {}\n\nUnder perf: {:.1}k req/s; per request (perf stat, software events): {}.\n\nSamples by DSO (self time):\n\n```\n{}```\n\nTop symbols (self time, ≥ 0.7%):\n\n```\n{}```\n\nSystem calls per request (strace -c -f, {:.0} requests while attached):\n\n```\n{}```\n",
            case.label,
            sample.rps / 1000.0,
            counters,
            dso,
            sym,
            requests,
            per_request(&calls, requests)
        );
    }
    Ok(out)
}

/// `perf report` sorted by `keys`, lines above `limit` percent, comments stripped.
fn perf_report(data: &std::path::Path, keys: &str, limit: f64) -> anyhow::Result<String> {
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "-q", "--sort", keys])
        .arg(format!("--percent-limit={limit}"))
        .arg("-i")
        .arg(data)
        .output()
        .context("perf report")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_end()))
        .take(40)
        .collect())
}

/// strace's summary as calls per request, busiest first.
fn per_request(summary: &str, requests: f64) -> String {
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    for line in summary.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if f.len() < 5 || f[0].parse::<f64>().is_err() || f.last() == Some(&"total") {
            continue;
        }
        let Ok(calls) = f[3].parse::<f64>() else {
            continue;
        };
        let errors = if f.len() == 6 {
            f[4].parse::<f64>().unwrap_or(0.0)
        } else {
            0.0
        };
        let name = f.last().unwrap_or(&"?").to_string();
        rows.push((name, calls, errors));
    }
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let mut out = String::new();
    for (name, calls, errors) in rows.iter().filter(|r| r.1 / requests.max(1.0) >= 0.01) {
        let _ = writeln!(
            out,
            "{name:<16} {:>6.2} per request{}",
            calls / requests.max(1.0),
            if *errors > 0.0 {
                format!(" ({:.2} failed, EAGAIN)", errors / requests.max(1.0))
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        out,
        "{:<16} {:>6.2} per request",
        "all",
        total / requests.max(1.0)
    );
    out
}

/// `perf stat -x,` output as figures per request.
fn per_request_counters(csv: &str, requests: f64) -> String {
    let mut parts = Vec::new();
    for line in csv.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 3 {
            continue;
        }
        let Ok(v) = f[0].parse::<f64>() else { continue };
        let per = v / requests.max(1.0);
        let name = f[2];
        parts.push(match name {
            "task-clock" => format!("{:.1} µs CPU", per * 1000.0),
            _ => format!("{per:.3} {name}"),
        });
    }
    parts.join(", ")
}

/// Instructions, memcpy instructions and allocator calls per request of each of `peers`
/// under callgrind, instrumentation switched on only while wrk runs (scenario 1, 2 or 3).
pub fn callgrind(bench: &Bench, peers: &[Peer], scenario: u8) -> anyhow::Result<String> {
    bench
        .single_process
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // Scenario 3: the route table, and Pingway with one route under the same requests.
    let mut cases: Vec<Case> = Vec::new();
    for &peer in peers {
        let (setup, label) = match (scenario, peer) {
            (3, Peer::Bare) => (Setup::PlainSpread, "bare (spread reqs)".to_string()),
            (3, _) => (
                Setup::Routes,
                format!("{} {} routes", peer.key(), bench.set.routes.len()),
            ),
            // Scenario 2: the plugins (bare Pingora has none: it stays the floor).
            (2, Peer::Bare) => (Setup::Plain, "bare (no plugins)".to_string()),
            (2, _) => (Setup::Plugins, format!("{} plugins", peer.key())),
            _ => (Setup::Plain, peer.key().to_string()),
        };
        cases.push(Case {
            scenario,
            label,
            peer,
            setup,
        });
        // Scenario 1 with --observability: Pingway again with prometheus (every metric)
        // and the JSON access log (issue 10's cost).
        if scenario == 1 && peer == Peer::Pingway && bench.args.observability {
            cases.push(Case {
                scenario,
                label: "pingway +prometheus +access log".into(),
                peer,
                setup: Setup::Observed,
            });
        }
        if scenario == 3 && peer == Peer::Pingway {
            cases.push(Case {
                scenario,
                label: "pingway 1 route (spread reqs)".into(),
                peer,
                setup: Setup::PlainSpread,
            });
        }
    }
    let mut rows: Vec<(Case, f64, f64, f64, f64)> = Vec::new();
    let mut misses: Vec<(String, String)> = Vec::new();
    for (i, case) in cases.into_iter().enumerate() {
        let peer = case.peer;
        // Each case its own dump name: a peer may run in two cases.
        let name = format!("callgrind.{}-{i}", peer.key());
        let out = bench.dir.join(&name);
        let wrapper = vec![
            "valgrind".to_string(),
            "--tool=callgrind".into(),
            "--instr-atstart=no".into(),
            format!("--callgrind-out-file={}.%p", out.display()),
        ];
        let mut wrapper = wrapper;
        if bench.args.callgrind_cache_sim {
            wrapper.push("--cache-sim=yes".into());
        }
        let proc = bench.start_wrapped(&case, &wrapper)?;
        let pid = proc.pid();
        let addr = bench.addr(peer);
        let load = &bench.args.load_core;
        let script = bench.script(case.setup);
        measure::wrk(load, addr, 8, 2.0, script)?;
        let control = |arg: &[&str]| {
            Command::new("callgrind_control")
                .args(arg)
                .arg(pid.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
        control(&["-i", "on"])?;
        let (sample, _) = measure::wrk(load, addr, 8, 10.0, script)?;
        control(&["-i", "off"])?;
        control(&["-d"])?;
        std::thread::sleep(Duration::from_millis(500));
        proc.stop();
        let requests = sample.rps * 10.0;
        // The dump made by `-d` is the file with a part number.
        let dump = std::fs::read_dir(&bench.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}.")) && n.ends_with(".1"))
            })
            .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .context("no callgrind dump")?;
        if let Some(keep) = &bench.args.callgrind_keep {
            std::fs::create_dir_all(keep)?;
            std::fs::copy(&dump, keep.join(format!("{name}.out")))?;
        }
        let text = std::fs::read_to_string(&dump)?;
        let (total, memcpy, allocs) = parse_callgrind(&text);
        if bench.args.callgrind_cache_sim {
            misses.push((case.label.clone(), cache_misses(&text, requests)));
        }
        rows.push((
            case,
            total / requests,
            memcpy / requests,
            allocs / requests,
            requests,
        ));
    }
    let find = |p: Peer| rows.iter().find(|r| r.0.peer == p).map(|r| r.1);
    let out = String::from(
        "**Instructions per request (callgrind, scenario {scenario}, 10 s of wrk -c8 while instrumented)**\n\n\
         | proxy | instructions / request | × bare | × nginx | of which memcpy | allocator calls / request | requests |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut out = out.replace("{scenario}", &scenario.to_string());
    for (case, ir, memcpy, allocs, requests) in &rows {
        let ratio = |b: Option<f64>| b.map_or("–".to_string(), |b| format!("{:.2}", ir / b));
        let _ = writeln!(
            out,
            "| {} | {:.1}k | {} | {} | {:.1}k | {:.1} | {:.0} |",
            case.label,
            ir / 1000.0,
            ratio(find(Peer::Bare)),
            ratio(find(Peer::Nginx)),
            memcpy / 1000.0,
            allocs,
            requests
        );
    }
    let of = |setup: Setup| {
        rows.iter()
            .find(|r| r.0.peer == Peer::Pingway && r.0.setup == setup)
            .map(|r| r.1)
    };
    if let Some((observed, plain)) = of(Setup::Observed).zip(of(Setup::Plain)) {
        let _ = writeln!(
            out,
            "\nPingway with prometheus (every metric) + JSON access log: {:.2}× the instructions \
             per request of Pingway without (issue 10's cost; a ≥ 0.93× throughput target is \
             ≤ 1.075× the instructions when the proxy is CPU-bound).",
            observed / plain
        );
    }
    if !misses.is_empty() {
        out.push_str("\nSimulated cache misses per request (callgrind --cache-sim=yes):\n\n");
        for (label, m) in &misses {
            let _ = writeln!(out, "- {label}: {m}");
        }
    }
    out.push_str(
        "\nUser space only (the kernel is not instrumented); allocator calls are calls to \
         malloc/calloc/realloc (nginx, HAProxy) or mimalloc's entry points (Pingora, Pingway).\n",
    );
    Ok(out)
}

/// (total instructions, instructions in memcpy/memmove, allocator calls) from a
/// callgrind output file.
fn parse_callgrind(text: &str) -> (f64, f64, f64) {
    let mut names: std::collections::HashMap<String, String> = Default::default();
    let mut total = 0.0;
    let mut memcpy = 0.0;
    let mut allocs = 0.0;
    let mut in_memcpy = false;
    let mut callee: Option<String> = None;
    let mut take_call = false;
    let is_alloc = |n: &str| {
        matches!(
            n,
            "mi_malloc_aligned"
                | "mi_zalloc_aligned"
                | "mi_realloc_aligned"
                | "mi_malloc"
                | "mi_zalloc"
                | "mi_realloc"
                | "malloc"
                | "calloc"
                | "realloc"
        )
    };
    // `fn=(id) name` the first time, `fn=(id)` after.
    let name_of = |line: &str, names: &mut std::collections::HashMap<String, String>| {
        let rest = line.split_once('=').map_or("", |(_, r)| r);
        let (id, name) = match rest.split_once(' ') {
            Some((id, name)) => (id.to_string(), Some(name.to_string())),
            None => (rest.trim().to_string(), None),
        };
        if let Some(n) = name {
            names.insert(id.clone(), n);
        }
        names.get(&id).cloned().unwrap_or_default()
    };
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("totals:") {
            total = t
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        } else if line.starts_with("fn=") {
            let n = name_of(line, &mut names);
            in_memcpy = n.contains("memcpy") || n.contains("memmove");
            callee = None;
        } else if line.starts_with("cfn=") {
            callee = Some(name_of(line, &mut names));
        } else if let Some(c) = line.strip_prefix("calls=") {
            take_call = true;
            if callee.as_deref().is_some_and(is_alloc) {
                allocs += c
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*')
        {
            if take_call {
                // The cost line of a call: inclusive, already counted in the callee.
                take_call = false;
            } else if in_memcpy {
                memcpy += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
        } else if !line.starts_with("cob=")
            && !line.starts_with("cfi=")
            && !line.starts_with("cfl=")
        {
            // fl=, fi=, fe=, ob= etc. do not end a call line; nothing to do.
        }
    }
    (total, memcpy, allocs)
}

/// Data-cache misses per request from a `--cache-sim=yes` callgrind file.
fn cache_misses(text: &str, requests: f64) -> String {
    let events: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .map(|e| e.split_whitespace().collect())
        .unwrap_or_default();
    let totals: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let get = |name: &str| {
        events
            .iter()
            .position(|e| *e == name)
            .and_then(|i| totals.get(i))
            .copied()
            .unwrap_or(0.0)
            / requests.max(1.0)
    };
    format!(
        "L1 data {:.0} (read {:.0}, write {:.0}), last level data {:.1}, L1 instruction {:.0}",
        get("D1mr") + get("D1mw"),
        get("D1mr"),
        get("D1mw"),
        get("DLmr") + get("DLmw"),
        get("I1mr")
    )
}
