//! An open-loop HTTP/1.1 load generator for tail latency at a fixed rate (what wrk2 does;
//! wrk2 is not packaged in Debian).
//!
//! Requests are scheduled at a fixed rate, `t_i = start + i / rate`, whatever the
//! server does. Latency is measured from the *scheduled* time to the end of the
//! response, so a stalled server is charged for every request that should have been
//! sent during the stall (no coordinated omission). A pacing thread releases requests
//! on time (`nanosleep` with a 1 µs timer slack, not tokio's 1 ms timer wheel); keep-
//! alive connections on a single-threaded tokio runtime send them, each connection
//! taking the next due request when it is free. If every connection is busy, requests
//! wait, and that wait is part of their latency.
//!
//! All latencies are kept and sorted (a 10 s run at 5,000 req/s is 50,000 numbers), so
//! percentiles are exact.
//!
//! ```text
//! openloop --addr 127.0.0.1:8080 --rate 5000 --duration 10 --warmup 1 --connections 32 \
//!          [--host example.com] [--path /] [--header "apikey: x"]
//! ```
//!
//! Prints one JSON object: rate asked and achieved, requests, errors (socket errors and
//! non-2xx), and latency percentiles in microseconds.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    about = "Open-loop fixed-rate HTTP/1.1 load generator (latency from scheduled send time)"
)]
struct Args {
    /// Server address, `IP:PORT`.
    #[arg(long)]
    addr: SocketAddr,
    /// Requests per second.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring starts (not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// `Host` header.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Extra header lines, `Name: value`.
    #[arg(long)]
    header: Vec<String>,
}

/// A request released by the pacer: its index and scheduled time.
#[derive(Clone, Copy)]
struct Due {
    at: Instant,
    measured: bool,
}

#[derive(Default)]
struct Results {
    latencies_us: Vec<u32>,
    ok: u64,
    non2xx: u64,
    socket_errors: u64,
    unsent: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.rate > 0.0 && args.connections > 0,
        "rate and connections must be > 0"
    );
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: openloop\r\n",
        args.path, args.host
    );
    for h in &args.header {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let request: Rc<[u8]> = request.into_bytes().into();

    let (tx, rx) = mpsc::unbounded_channel::<Due>();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let warm = Duration::from_secs_f64(args.warmup);
    let total = warm + Duration::from_secs_f64(args.duration);
    let start = Instant::now() + Duration::from_millis(50);

    // The pacer: releases each request at its scheduled time.
    let pacer = std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            // SAFETY: prctl with PR_SET_TIMERSLACK only changes this thread's timer slack.
            unsafe {
                libc_timerslack(1_000);
            }
            let mut i: u64 = 0;
            loop {
                let offset = interval.mul_f64(i as f64);
                if offset >= total {
                    break;
                }
                let at = start + offset;
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                if tx
                    .send(Due {
                        at,
                        measured: offset >= warm,
                    })
                    .is_err()
                {
                    break;
                }
                i += 1;
            }
        })?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = Rc::new(RefCell::new(Results::default()));
    let rx = Rc::new(tokio::sync::Mutex::new(rx));
    let local = tokio::task::LocalSet::new();
    let end_of_schedule = start + total;
    local.block_on(&rt, async {
        let mut tasks = Vec::new();
        for _ in 0..args.connections {
            let rx = rx.clone();
            let results = results.clone();
            let request = request.clone();
            let addr = args.addr;
            tasks.push(tokio::task::spawn_local(async move {
                connection(addr, &request, rx, results).await
            }));
        }
        // After the schedule ends, give in-flight requests 2 s, then stop.
        tokio::time::sleep_until((end_of_schedule + Duration::from_secs(2)).into()).await;
        for t in &tasks {
            t.abort();
        }
        // Requests released but never answered in time count with the time they waited.
        let now = Instant::now();
        let mut rx = rx.lock().await;
        let mut r = results.borrow_mut();
        while let Ok(due) = rx.try_recv() {
            if due.measured {
                r.unsent += 1;
                r.latencies_us.push(micros(now - due.at));
            }
        }
    });
    let _ = pacer.join();

    let mut r = results.borrow_mut();
    let measured = r.ok + r.non2xx + r.socket_errors + r.unsent;
    r.latencies_us.sort_unstable();
    let pct = |p: f64| -> u32 {
        if r.latencies_us.is_empty() {
            return 0;
        }
        let idx = ((p / 100.0) * r.latencies_us.len() as f64).ceil() as usize;
        r.latencies_us[idx.clamp(1, r.latencies_us.len()) - 1]
    };
    println!(
        "{}",
        serde_json::json!({
            "rate": args.rate,
            "achieved_rps": r.ok as f64 / args.duration,
            "requests": measured,
            "ok": r.ok,
            "non2xx": r.non2xx,
            "socket_errors": r.socket_errors,
            "unsent": r.unsent,
            "p50_us": pct(50.0),
            "p90_us": pct(90.0),
            "p99_us": pct(99.0),
            "p999_us": pct(99.9),
            "max_us": r.latencies_us.last().copied().unwrap_or(0),
        })
    );
    Ok(())
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// Sets this thread's timer slack (ns), so `nanosleep` wakes close to the asked time.
///
/// # Safety
/// Calls `prctl(PR_SET_TIMERSLACK, ns)`, which has no memory-safety requirements.
unsafe fn libc_timerslack(ns: u64) {
    extern "C" {
        fn prctl(option: i32, ...) -> i32;
    }
    const PR_SET_TIMERSLACK: i32 = 29;
    // SAFETY: see the function's contract.
    unsafe {
        prctl(PR_SET_TIMERSLACK, ns as std::ffi::c_ulong);
    }
}

/// One keep-alive connection: takes the next due request, sends it, reads the
/// response, records the latency from the scheduled time; reconnects after errors.
async fn connection(
    addr: SocketAddr,
    request: &[u8],
    rx: Rc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Due>>>,
    results: Rc<RefCell<Results>>,
) {
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let due = {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(d) => d,
                None => return,
            }
        };
        if conn.is_none() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    conn = Some(s);
                }
                Err(_) => {
                    if due.measured {
                        results.borrow_mut().socket_errors += 1;
                    }
                    continue;
                }
            }
        }
        let Some(stream) = conn.as_mut() else {
            continue;
        };
        let outcome = exchange(stream, request, &mut buf).await;
        let latency = micros(due.at.elapsed());
        let mut r = results.borrow_mut();
        match outcome {
            Ok((status, keep)) => {
                if due.measured {
                    if (200..300).contains(&status) {
                        r.ok += 1;
                    } else {
                        r.non2xx += 1;
                    }
                    r.latencies_us.push(latency);
                }
                if !keep {
                    conn = None;
                }
            }
            Err(_) => {
                if due.measured {
                    r.socket_errors += 1;
                    r.latencies_us.push(latency);
                }
                conn = None;
            }
        }
    }
}

/// Sends one request and reads one response (Content-Length or chunked body).
/// Returns the status and whether the connection can be reused.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<(u16, bool)> {
    use std::io::{Error, ErrorKind};
    stream.write_all(request).await?;
    buf.clear();
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if read_more(stream, buf).await? == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "closed before the header",
            ));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| Error::new(ErrorKind::InvalidData, "header not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad status line"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = true;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.parse().ok();
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.eq_ignore_ascii_case("chunked");
        } else if k.eq_ignore_ascii_case("connection") {
            keep = !v.eq_ignore_ascii_case("close");
        }
    }
    if chunked {
        // Read until the terminating zero-length chunk.
        loop {
            if find(&buf[head_end..], b"0\r\n\r\n").is_some() {
                break;
            }
            if read_more(stream, buf).await? == 0 {
                return Err(Error::new(
                    ErrorKind::UnexpectedEof,
                    "closed in a chunked body",
                ));
            }
        }
    } else if let Some(len) = length {
        while buf.len() < head_end + len {
            if read_more(stream, buf).await? == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "closed in the body"));
            }
        }
    } else {
        // No length: the body runs to the end of the connection.
        while read_more(stream, buf).await? > 0 {}
        keep = false;
    }
    Ok((status, keep))
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    stream.read_buf(buf).await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
