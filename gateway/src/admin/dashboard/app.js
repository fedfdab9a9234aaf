// The Pingway dashboard: polls GET /stats once a second and draws what it says.
// The admin token, when there is one, is read from the URL fragment
// (/dashboard#token=...), which browsers never send to the server, and goes in an
// Authorization header on each fetch. Everything from the server is inserted as text
// (textContent), never as HTML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const WINDOW = 10; // samples kept per route for the latency window
  const MAX_ROUTES = 500; // rows drawn at most (the rest are counted)
  const CLASSES = ["2xx", "3xx", "4xx", "5xx", "other"];

  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  // Per route: the samples of the last WINDOW polls ({t, requests, buckets}).
  const history = new Map();
  let bounds = [];

  const $ = (sel) => document.querySelector(sel);
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function fmt(ms) {
    if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
    return ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms).toString();
  }

  // The q quantile of bucket counts, interpolated inside its bucket (as the server's).
  function percentile(buckets, q) {
    const total = buckets.reduce((a, b) => a + b, 0);
    if (total === 0) return null;
    const rank = q * total;
    let below = 0;
    for (let i = 0; i < buckets.length; i++) {
      const n = buckets[i];
      if (n > 0 && below + n >= rank) {
        if (i >= bounds.length) return bounds[bounds.length - 1];
        const lower = i === 0 ? 0 : bounds[i - 1];
        const within = Math.min(1, Math.max(0, (rank - below) / n));
        return lower + (bounds[i] - lower) * within;
      }
      below += n;
    }
    return bounds[bounds.length - 1];
  }

  function routeRow(key, label, upstream, r, now) {
    const samples = history.get(key) || [];
    samples.push({ t: now, requests: r.requests, buckets: r.latency_buckets });
    while (samples.length > WINDOW + 1) samples.shift();
    history.set(key, samples);
    let rps = null;
    let lat = r.latency_ms;
    if (samples.length >= 2) {
      const prev = samples[samples.length - 2];
      const dt = (now - prev.t) / 1000;
      const dn = r.requests - prev.requests;
      // A smaller count means the counters were made anew (a route renamed back).
      if (dt > 0 && dn >= 0) rps = dn / dt;
      const first = samples[0];
      const delta = r.latency_buckets.map((n, i) => n - (first.buckets[i] || 0));
      if (delta.every((n) => n >= 0) && delta.some((n) => n > 0)) {
        lat = { p50: percentile(delta, 0.5), p95: percentile(delta, 0.95), p99: percentile(delta, 0.99) };
      }
    }
    const tr = el("tr");
    tr.dataset.route = key;
    tr.append(el("td", label, "name"), el("td", upstream, "upstream"));
    tr.append(el("td", rps === null ? "–" : rps.toFixed(1), "num rps"));
    tr.append(el("td", r.requests, "num requests"));
    for (const c of CLASSES) {
      const n = r.status[c] + (c === "other" ? r.status["1xx"] : 0);
      tr.append(el("td", n, "num s" + c + (n > 0 ? " c" + c : "")));
    }
    tr.append(el("td", fmt(lat.p50), "num p50"), el("td", fmt(lat.p95), "num p95"), el("td", fmt(lat.p99), "num p99"));
    return tr;
  }

  function drawRoutes(s, now) {
    const body = $("#routes tbody");
    const rows = [];
    const seen = new Set();
    for (const r of s.routes.slice(0, MAX_ROUTES)) {
      seen.add(r.name);
      rows.push(routeRow(r.name, r.name, r.upstream, r, now));
    }
    rows.push(routeRow("", "(no route)", "", s.unrouted, now));
    seen.add("");
    for (const k of [...history.keys()]) if (!seen.has(k)) history.delete(k);
    body.replaceChildren(...rows);
    const more = s.routes.length - MAX_ROUTES;
    $("#routes-more").textContent = more > 0 ? more + " more routes not shown (see GET /stats)" : "";
  }

  function drawUpstreams(s) {
    const rows = [];
    for (const u of s.upstreams) {
      for (const t of u.targets) {
        const tr = el("tr");
        tr.dataset.upstream = u.name;
        tr.dataset.address = t.address;
        const health = u.health_checks ? t.health : t.health + " (no checks)";
        tr.append(el("td", u.name), el("td", t.target), el("td", t.address));
        tr.append(el("td", health, "health " + t.health));
        tr.append(el("td", t.in_flight, "num"), el("td", t.errors_total, "num errors"));
        const last = (t.recent_errors || []).slice(0, 3).map((e) =>
          e.kind + (e.status ? " " + e.status : "") + " at " + e.at.replace("T", " ").replace("Z", ""));
        tr.append(el("td", last.join("; "), "errors-list"));
        rows.push(tr);
      }
    }
    $("#upstreams tbody").replaceChildren(...rows);
  }

  function drawReloads(s) {
    const c = s.reloads.counts;
    $("#reload-counts").textContent =
      "applied " + c.applied + ", failed " + c.failed + ", unchanged " + c.unchanged +
      (s.reloads.dropped ? "; " + s.reloads.dropped + " older loads not kept" : "");
    const items = s.reloads.recent.map((r) => {
      const li = el("li");
      li.dataset.outcome = r.outcome;
      li.append(el("span", r.at.replace("T", " ").replace("Z", " UTC") + " "));
      li.append(el("strong", r.outcome, r.outcome));
      li.append(el("span", " (config version " + r.version + ")"));
      if (r.problems.length) {
        const ul = el("ul", null, "problems");
        for (const p of r.problems) ul.append(el("li", p));
        if (r.problem_count > r.problems.length) {
          ul.append(el("li", (r.problem_count - r.problems.length) + " more problems"));
        }
        li.append(ul);
      }
      return li;
    });
    $("#reloads").replaceChildren(...items);
  }

  function setStatus(text, error) {
    const p = $("#status");
    p.textContent = text;
    p.className = error ? "status error" : "status";
  }

  async function poll() {
    try {
      const resp = await fetch("/stats", { headers, cache: "no-store" });
      if (resp.status === 401) {
        setStatus(token
          ? "401: the admin API refused this token"
          : "401: the admin API needs its token: open /dashboard#token=<token>", true);
        return;
      }
      if (!resp.ok) {
        setStatus("GET /stats answered " + resp.status, true);
        return;
      }
      const s = await resp.json();
      const now = performance.now();
      bounds = s.latency_buckets_ms;
      drawRoutes(s, now);
      drawUpstreams(s);
      drawReloads(s);
      setStatus("config version " + s.config.version + " (" + s.config.digest.slice(0, 19) +
        "…), loaded " + s.config.loaded_at + "; updated " + s.now, false);
    } catch (e) {
      setStatus("cannot reach the admin API: " + e, true);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
})();
