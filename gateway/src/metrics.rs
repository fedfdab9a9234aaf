//! The gateway's own Prometheus series, rendered by the admin API's `GET /metrics`
//! beside those of the `prometheus` plugin (see docs/admin.md).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use pingway_plugins::prometheus::{escape, Metrics};

use crate::config::{GatewayConfig, PluginConfig};
use crate::downstream::GuardCounters;
use crate::reload::Reloader;
use crate::runtime::Runtime;

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
    series(
        &mut out,
        "pingway_config_version",
        "gauge",
        "Configurations applied since start (1 for the first).",
        status.version,
    );
    series(
        &mut out,
        "pingway_config_last_reload_successful",
        "gauge",
        "1 unless the last reload attempt was refused.",
        u8::from(status.last_error.is_none()),
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
    series(
        &mut out,
        "pingway_connections_accepted_total",
        "counter",
        "Client connections accepted on the proxy listeners (not those refused at server.max_connections).",
        guard.accepted_connections(),
    );
    series(
        &mut out,
        "pingway_connections_active",
        "gauge",
        "Client connections open on the proxy listeners now.",
        guard.active_connections(),
    );
    series(
        &mut out,
        "pingway_connections_refused_total",
        "counter",
        "Client connections closed at accept because server.max_connections were open.",
        guard.refused_connections(),
    );
    series(
        &mut out,
        "pingway_head_timeouts_total",
        "counter",
        "Client connections closed because a request head did not arrive within proxy.client_header_timeout.",
        guard.head_timeouts(),
    );
    series(
        &mut out,
        "pingway_unfinished_heads_total",
        "counter",
        "Client connections that closed or broke part-way through a request head.",
        crate::downstream::unfinished_heads(),
    );
    series(
        &mut out,
        "pingway_parser_answers_total",
        "counter",
        "Requests refused before routing because their head could not be parsed (400) or used CONNECT (405).",
        guard.parser_answers(),
    );
    series(
        &mut out,
        "pingway_tls_handshake_failures_total",
        "counter",
        "Client TLS handshakes on HTTPS listeners that failed or timed out.",
        crate::tls::handshake_failures(),
    );
    series(
        &mut out,
        "pingway_tls_handshakes_refused_total",
        "counter",
        "Connections to HTTPS listeners closed before their handshake because tls.max_handshakes handshakes were in progress.",
        crate::tls_handshakes::refused(),
    );
    series(
        &mut out,
        "pingway_tls_client_hello_timeouts_total",
        "counter",
        "Connections to HTTPS listeners closed because no ClientHello arrived within tls.client_hello_timeout.",
        crate::tls_handshakes::client_hello_timeouts(),
    );

    acme(&mut out, &reloader.runtime().load());

    series(
        &mut out,
        "pingway_route_query_truncated_total",
        "counter",
        "Requests whose query had more parameters than the router looks at (router::MAX_QUERY_PARAMS); the rest were ignored by query conditions.",
        crate::router::truncated_queries(),
    );

    family(
        &mut out,
        "pingway_access_log_lines_total",
        "counter",
        "Access log lines by outcome: written, dropped (the buffer was full), failed (a write error).",
    );
    let log = crate::access_log::stats();
    for (outcome, n) in [
        ("written", &log.written),
        ("dropped", &log.dropped),
        ("failed", &log.failed),
    ] {
        let _ = writeln!(
            out,
            "pingway_access_log_lines_total{{outcome=\"{outcome}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }

    family(
        &mut out,
        "pingway_log_entries_total",
        "counter",
        "Entries of the logging plugins by outcome: sent, dropped (the queue held max_entries), failed (retries gave up).",
    );
    for plugin in pingway_plugins::loggers::LOGGERS {
        let Some(c) = pingway_plugins::loggers::counters(plugin) else {
            continue;
        };
        for (outcome, n) in [
            ("sent", &c.sent),
            ("dropped", &c.dropped),
            ("failed", &c.failed),
        ] {
            let _ = writeln!(
                out,
                "pingway_log_entries_total{{plugin=\"{plugin}\",outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }

    series(
        &mut out,
        "pingway_rate_limiting_keys_evicted_total",
        "counter",
        "Client keys the rate-limiting plugin's local counters evicted to stay within max_tracked_keys (all instances).",
        pingway_plugins::rate_limiting::keys_evicted_total(),
    );

    let runtime = reloader.runtime().load_full();
    mirrors(&runtime, &mut out);
    if let Some(metrics) = runtime.services.get::<Metrics>() {
        metrics.render(&mut out);
    }
    if wants_target_health(&runtime.config) {
        target_health(&runtime, &mut out);
    }
    resilience(&runtime, &mut out);
    out
}

/// Each upstream's retries (granted, refused by the budget), limit overflows, ejections,
/// and connections in use and waiting, since the pool was built (the admin API's
/// `/upstreams` shows the same). One series per upstream and label value: bounded by the
/// configuration.
fn resilience(runtime: &Runtime, out: &mut String) {
    let mut names: Vec<&String> = runtime.upstreams.keys().collect();
    if names.is_empty() {
        return;
    }
    names.sort();
    let pools: Vec<_> = names
        .iter()
        .filter_map(|n| runtime.upstreams.get(*n).map(|u| (escape(n), u)))
        .collect();
    family(
        out,
        "pingway_upstream_retries_total",
        "counter",
        "Retries of requests to each upstream: granted, or refused by its retry budget.",
    );
    for (name, u) in &pools {
        let budget = &u.retry_policy().budget;
        for (outcome, n) in [
            ("granted", budget.granted()),
            ("refused_by_budget", budget.refused()),
        ] {
            let _ = writeln!(
                out,
                "pingway_upstream_retries_total{{upstream=\"{name}\",outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    family(out, "pingway_upstream_overflows_total", "counter", "Requests answered 503 at once because the upstream was at a limit: max_connections (with max_pending_requests) or max_requests.");
    for (name, u) in &pools {
        for (limit, n) in [
            ("max_connections", u.connections().overflowed()),
            ("max_requests", u.overflowed()),
        ] {
            let _ = writeln!(
                out,
                "pingway_upstream_overflows_total{{upstream=\"{name}\",limit=\"{limit}\"}} {n}"
            );
        }
    }
    family(
        out,
        "pingway_upstream_ejections_total",
        "counter",
        "Times outlier detection ejected a target of the upstream.",
    );
    for (name, u) in &pools {
        let n: u64 = u.targets().iter().map(|t| t.ejections()).sum();
        let _ = writeln!(
            out,
            "pingway_upstream_ejections_total{{upstream=\"{name}\"}} {n}"
        );
    }
    family(out, "pingway_upstream_connections_in_use", "gauge", "Attempts holding a connection to the upstream's targets now (what max_connections counts).");
    for (name, u) in &pools {
        let _ = writeln!(
            out,
            "pingway_upstream_connections_in_use{{upstream=\"{name}\"}} {}",
            u.connections().in_use()
        );
    }
    family(
        out,
        "pingway_upstream_requests_pending",
        "gauge",
        "Requests waiting for a connection to the upstream now (at most max_pending_requests).",
    );
    for (name, u) in &pools {
        let _ = writeln!(
            out,
            "pingway_upstream_requests_pending{{upstream=\"{name}\"}} {}",
            u.connections().pending()
        );
    }
}

/// `pingway_mirror_requests_total{route,upstream,outcome}`: what became of the copies of
/// each route's mirrors since the configuration was loaded (absent without mirrors).
fn mirrors(runtime: &Runtime, out: &mut String) {
    let mut routes = runtime
        .routes
        .iter()
        .filter(|r| !r.mirrors.is_empty())
        .peekable();
    if routes.peek().is_none() {
        return;
    }
    family(out, "pingway_mirror_requests_total", "counter", "Request copies sent to shadow upstreams by outcome: completed (a response below 500), failed (no target, an I/O error, a timeout or a 5xx), dropped (max_in_flight reached, or the shadow fell behind the client's body), paused (not sent: the shadow refused connections 5 times in a row).");
    let routes: Vec<_> = routes.collect();
    for route in &routes {
        for m in route.mirrors.iter() {
            let stats = m.stats();
            for (outcome, n) in [
                ("completed", &stats.completed),
                ("failed", &stats.failed),
                ("dropped", &stats.dropped),
                ("paused", &stats.paused),
            ] {
                let _ = writeln!(
                    out,
                    "pingway_mirror_requests_total{{route=\"{}\",upstream=\"{}\",outcome=\"{outcome}\"}} {}",
                    escape(&route.info.name),
                    escape(m.upstream_name()),
                    n.load(Ordering::Relaxed)
                );
            }
        }
    }
    family(
        out,
        "pingway_mirror_in_flight",
        "gauge",
        "Request copies to shadow upstreams running now (at most the mirror's max_in_flight).",
    );
    for route in &routes {
        for m in route.mirrors.iter() {
            let _ = writeln!(
                out,
                "pingway_mirror_in_flight{{route=\"{}\",upstream=\"{}\"}} {}",
                escape(&route.info.name),
                escape(m.upstream_name()),
                m.in_flight()
            );
        }
    }
}

/// Whether an enabled `prometheus` plugin anywhere in the configuration asks for
/// `upstream_health_metrics`.
fn wants_target_health(cfg: &GatewayConfig) -> bool {
    let asks = |p: &PluginConfig| {
        p.enabled
            && p.name == "prometheus"
            && serde_json::to_value(&p.config)
                .ok()
                .and_then(|v| v.get("upstream_health_metrics").and_then(|b| b.as_bool()))
                .unwrap_or(false)
    };
    cfg.plugins.iter().any(asks)
        || cfg.routes.iter().any(|r| r.plugins.iter().any(asks))
        || cfg.consumers.iter().any(|c| c.plugins.iter().any(asks))
}

/// `pingway_upstream_target_health{upstream,target,address,state}`: Kong's states, 1 for
/// the target's current one. Targets of pools without health checks are
/// `healthchecks_off`.
fn target_health(runtime: &Runtime, out: &mut String) {
    const STATES: [&str; 4] = ["healthchecks_off", "healthy", "unhealthy", "dns_error"];
    family(out, "pingway_upstream_target_health", "gauge", "Health of each upstream target: 1 for its current state (healthchecks_off, healthy, unhealthy, dns_error).");
    let mut names: Vec<&String> = runtime.upstreams.keys().collect();
    names.sort();
    for name in names {
        let Some(u) = runtime.upstreams.get(name) else {
            continue;
        };
        let checked = u.config().health_check.is_some();
        for t in u.targets().iter().filter(|t| !t.is_retired()) {
            let state = match (checked, t.is_healthy()) {
                (false, _) => "healthchecks_off",
                (true, true) => "healthy",
                (true, false) => "unhealthy",
            };
            let target = t.host_header().to_str().unwrap_or("");
            for s in STATES {
                let _ = writeln!(
                    out,
                    "pingway_upstream_target_health{{upstream=\"{}\",target=\"{}\",address=\"{}\",state=\"{s}\"}} {}",
                    escape(name),
                    escape(target),
                    t.addr(),
                    u8::from(s == state)
                );
            }
        }
    }
}

/// `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A family of one unlabelled sample: its `HELP` and `TYPE` lines, then `name value`.
fn series(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// The ACME series: orders by outcome, and each managed certificate's expiry.
fn acme(out: &mut String, runtime: &Runtime) {
    family(
        out,
        "pingway_acme_orders_total",
        "counter",
        "ACME certificate orders by outcome: issued (installed and stored), failed (the certificate served before, if any, kept serving).",
    );
    let (issued, failed) = runtime.acme.order_counts();
    let _ = writeln!(
        out,
        "pingway_acme_orders_total{{outcome=\"issued\"}} {issued}"
    );
    let _ = writeln!(
        out,
        "pingway_acme_orders_total{{outcome=\"failed\"}} {failed}"
    );
    family(
        out,
        "pingway_acme_certificate_expiry_timestamp_seconds",
        "gauge",
        "When each ACME-managed certificate served now expires (Unix time), by its first host name.",
    );
    for m in runtime.certificates.managed() {
        if let Some(issued) = m.issued() {
            let at = issued
                .not_after
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let name = m.names().first().map_or("", String::as_str);
            let _ = writeln!(
                out,
                "pingway_acme_certificate_expiry_timestamp_seconds{{certificate=\"{}\"}} {at}",
                escape(name)
            );
        }
    }
}
