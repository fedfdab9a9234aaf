//! The gateway's own Prometheus series, rendered by the admin API's `GET /metrics`
//! beside those of the `prometheus` plugin (see docs/admin.md).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::downstream::GuardCounters;
use crate::reload::Reloader;

/// The Prometheus text (exposition format 0.0.4) of the gateway-level series, followed
/// by the `prometheus` plugin's series when the running configuration has that plugin.
pub fn render(reloader: &Reloader, guard: &GuardCounters) -> String {
    let mut out = String::with_capacity(4096);
    let status = reloader.status();
    let counts = reloader.counts();
    family(
        &mut out,
        "pingway_config_info",
        "gauge",
        "The configuration serving: its SHA-256 digest and the Pingway version.",
    );
    let _ = writeln!(
        out,
        "pingway_config_info{{digest=\"sha256:{}\",version=\"{}\"}} 1",
        status.digest,
        env!("CARGO_PKG_VERSION")
    );
    family(
        &mut out,
        "pingway_config_version",
        "gauge",
        "Configurations applied since start (1 for the first).",
    );
    let _ = writeln!(out, "pingway_config_version {}", status.version);
    family(
        &mut out,
        "pingway_config_last_reload_successful",
        "gauge",
        "1 unless the last reload attempt was refused.",
    );
    let _ = writeln!(
        out,
        "pingway_config_last_reload_successful {}",
        u8::from(status.last_error.is_none())
    );
    family(
        &mut out,
        "pingway_config_reloads_total",
        "counter",
        "Reload attempts by outcome.",
    );
    for (outcome, n) in [
        ("applied", &counts.applied),
        ("unchanged", &counts.unchanged),
        ("failed", &counts.failed),
    ] {
        let _ = writeln!(
            out,
            "pingway_config_reloads_total{{outcome=\"{outcome}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "pingway_connections_refused_total",
        "counter",
        "Client connections closed at accept because server.max_connections were open.",
    );
    let _ = writeln!(
        out,
        "pingway_connections_refused_total {}",
        guard.refused_connections()
    );
    family(&mut out, "pingway_head_timeouts_total", "counter", "Client connections closed because a request head did not arrive within proxy.client_header_timeout.");
    let _ = writeln!(out, "pingway_head_timeouts_total {}", guard.head_timeouts());
    out
}

/// `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
