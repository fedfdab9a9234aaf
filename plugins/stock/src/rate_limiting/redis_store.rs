//! `policy: redis`: counters in Redis, shared by every gateway that uses the same Redis.
//!
//! # Keys
//!
//! Kong's layout, `ratelimit:<route_id>:<service_id>:<identifier>:<period_date>:<period>`
//! (`kong/plugins/rate-limiting/policies/init.lua`), holding a plain integer:
//!
//! - `route_id` is the route's name for an instance configured on a route, else Kong's
//!   empty UUID `00000000-0000-0000-0000-000000000000`; `service_id` is always the
//!   empty UUID (Pingway's plugins are not attached to upstreams).
//! - `identifier` is what `limit_by` counts by: the consumer or credential id, the
//!   client IP as text, the header value, the path, the upstream or route name. One
//!   longer than 256 bytes or not UTF-8 is replaced by `sha256:<32 hex digits>` so that
//!   keys stay small.
//! - `period_date` is the start of the window in Unix milliseconds, `period` is
//!   `second` … `year`.
//!
//! # One round trip, exact
//!
//! Every configured period is checked and counted by one Lua script (`EVALSHA`, falling
//! back to `EVAL` once after a Redis restart): it reads every period's counter, and only
//! if all have room increments them all and sets their expiry (Kong's expirations;
//! twice that for sliding windows, whose previous window must survive one more
//! window). Redis runs a script atomically, so gateways sharing a Redis admit exactly
//! the limit between them, and a refused request counts nowhere.
//!
//! # `sync_rate`
//!
//! With a positive `sync_rate`, the first request of a client in a window goes to
//! Redis as above; later ones are checked against the last total read from Redis plus
//! what this gateway admitted since, with no I/O. A background task sends the admitted
//! counts (`INCRBY`, one pipeline for all keys) and reads the new totals every
//! `sync_rate` seconds. Between two syncs each gateway can admit up to what is left of
//! the limit as of its last sync, so the fleet can over-admit by about what the other
//! gateways admitted since their last sync: at most `(replicas − 1) × (requests one
//! gateway admits per sync interval)`, and never more than `(replicas − 1) × limit`
//! per window.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::lifecycle::Lifecycle;
use crate::redis::driver;
use crate::redis::{RedisClient, RedisError};

use super::limiter::{Identifier, Outcome, PeriodUsage};
use super::period::{Bounds, Period};

/// Kong's `EMPTY_UUID`: the route or service id of an instance not attached to one.
pub(crate) const EMPTY_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Identifiers longer than this are stored as a digest.
const MAX_IDENTIFIER_BYTES: usize = 256;

/// Kong's key expirations (seconds), by period.
fn expiration(period: Period) -> u64 {
    match period {
        Period::Second => 1,
        Period::Minute => 60,
        Period::Hour => 3_600,
        Period::Day => 86_400,
        Period::Month => 2_592_000,
        Period::Year => 31_536_000,
    }
}

/// The text an identifier is counted under in Redis: Kong's (the id or address itself),
/// or a SHA-256 digest for a long or non-UTF-8 one.
pub(crate) fn redis_identifier(id: Identifier<'_>) -> Cow<'_, str> {
    match id {
        Identifier::Ip(ip) => Cow::Owned(ip.to_string()),
        Identifier::Name(name) => match std::str::from_utf8(name) {
            Ok(s) if s.len() <= MAX_IDENTIFIER_BYTES => Cow::Borrowed(s),
            _ => {
                let d = ring::digest::digest(&ring::digest::SHA256, name);
                let mut out = String::with_capacity(7 + 32);
                out.push_str("sha256:");
                for b in &d.as_ref()[..16] {
                    let _ = write!(out, "{b:02x}");
                }
                Cow::Owned(out)
            }
        },
    }
}

/// Kong's counter key for one period's window.
pub(crate) fn counter_key(
    route_id: &str,
    service_id: &str,
    identifier: &str,
    window_start: u64,
    period: Period,
) -> String {
    format!(
        "ratelimit:{route_id}:{service_id}:{identifier}:{}:{period}",
        window_start * 1_000
    )
}

/// Checks every period and, if all have room, counts the request in all of them.
/// KEYS: the current windows' keys (n), then with sliding windows the previous windows'
/// keys (n). ARGV: n, sliding (0/1), then per period: limit, expiry (s), milliseconds
/// elapsed in the current window, window length (ms). Returns
/// `{allowed, count_1, limit_1, ..., count_n, limit_n}`: each period's count (after the
/// increment when allowed) and its effective limit (the sliding limit: see
/// `limiter::sliding_limit`, which computes the same in the same floating point).
const CHECK_SCRIPT: &str = r"
local n = tonumber(ARGV[1])
local sliding = ARGV[2] == '1'
local eff, used = {}, {}
local allowed = 1
for i = 1, n do
  local a = 2 + (i - 1) * 4
  local limit = tonumber(ARGV[a + 1])
  local e = limit
  if sliding then
    local prev = tonumber(redis.call('GET', KEYS[n + i]) or '0')
    local len = tonumber(ARGV[a + 4])
    if prev > 0 and len > 0 then
      local covered = len - tonumber(ARGV[a + 3])
      if covered < 0 then covered = 0 end
      e = limit - math.ceil(prev * covered / len)
      if e < 0 then e = 0 end
    end
  end
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  eff[i] = e
  used[i] = cur
  if cur >= e then allowed = 0 end
end
if allowed == 1 then
  for i = 1, n do
    used[i] = redis.call('INCRBY', KEYS[i], 1)
    redis.call('EXPIRE', KEYS[i], ARGV[2 + (i - 1) * 4 + 2])
  end
end
local out = { allowed }
for i = 1, n do
  out[#out + 1] = used[i]
  out[#out + 1] = eff[i]
end
return out
";

/// One period's window at the time of a request.
struct Slot {
    period: Period,
    limit: u64,
    bounds: Bounds,
    key: String,
    /// The previous window's key (sliding windows only).
    previous_key: Option<String>,
}

/// The Redis counters of one plugin instance.
pub(crate) struct RedisCounters {
    client: RedisClient,
    script: driver::Script,
    /// `(period, limit)`, shortest period first.
    limits: Vec<(Period, u64)>,
    sliding: bool,
    route_id: String,
    service_id: String,
    /// Set with a positive `sync_rate`.
    sync: Option<Arc<SyncState>>,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("client", &self.client)
            .field("limits", &self.limits)
            .field("sliding", &self.sliding)
            .field("route_id", &self.route_id)
            .field("sync", &self.sync.as_ref().map(|s| s.every))
            .finish()
    }
}

impl RedisCounters {
    /// Counters for `limits` in the Redis of `client`, under `route_id`.
    pub fn new(
        client: RedisClient,
        limits: &[(Period, u64)],
        sliding: bool,
        route_id: Option<&str>,
        sync_every: Option<Duration>,
        max_keys: usize,
        lifecycle: Option<Lifecycle>,
    ) -> Self {
        let mut limits = limits.to_vec();
        limits.sort_by_key(|(p, _)| *p);
        limits.dedup_by_key(|(p, _)| *p);
        RedisCounters {
            client,
            script: driver::Script::new(CHECK_SCRIPT),
            limits,
            sliding,
            route_id: route_id.unwrap_or(EMPTY_UUID).to_string(),
            service_id: EMPTY_UUID.to_string(),
            sync: sync_every.map(|every| {
                Arc::new(SyncState {
                    every,
                    max_keys,
                    lifecycle,
                    started: std::sync::Once::new(),
                    entries: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    fn slots(&self, identifier: &str, now: u64) -> Vec<Slot> {
        self.limits
            .iter()
            .map(|&(period, limit)| {
                let bounds = period.bounds(now);
                let key = |start| {
                    counter_key(&self.route_id, &self.service_id, identifier, start, period)
                };
                Slot {
                    period,
                    limit,
                    bounds,
                    key: key(bounds.start),
                    previous_key: self
                        .sliding
                        .then(|| key(period.bounds(bounds.start.saturating_sub(1)).start)),
                }
            })
            .collect()
    }

    /// Checks and counts a request by `identifier` at `now_ms` (Unix milliseconds).
    pub async fn check(&self, identifier: &str, now_ms: u64) -> Result<Outcome, RedisError> {
        let now = now_ms / 1_000;
        let slots = self.slots(identifier, now);
        if let Some(sync) = &self.sync {
            if let Some(outcome) = sync.check_locally(&slots, now) {
                return Ok(outcome);
            }
            sync.start(self);
        }
        let outcome = self.check_in_redis(&slots, now_ms).await?;
        if let Some(sync) = &self.sync {
            sync.learn(&slots, &outcome.1);
        }
        Ok(outcome.0)
    }

    /// The script's check: one round trip. Also returns each period's count.
    async fn check_in_redis(
        &self,
        slots: &[Slot],
        now_ms: u64,
    ) -> Result<(Outcome, Vec<u64>), RedisError> {
        let now = now_ms / 1_000;
        let mut invocation = self.script.prepare_invoke();
        for s in slots {
            invocation.key(&s.key);
        }
        for s in slots {
            if let Some(previous) = &s.previous_key {
                invocation.key(previous);
            }
        }
        invocation.arg(slots.len()).arg(u8::from(self.sliding));
        for s in slots {
            let ttl = expiration(s.period) * if self.sliding { 2 } else { 1 };
            invocation
                .arg(s.limit)
                .arg(ttl)
                .arg(now_ms.saturating_sub(s.bounds.start * 1_000))
                .arg((s.bounds.end - s.bounds.start) * 1_000);
        }
        let reply: Vec<i64> = self
            .client
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let allowed = reply.first() == Some(&1);
        let mut counts = Vec::with_capacity(slots.len());
        let usage: Vec<PeriodUsage> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let count = reply.get(1 + 2 * i).copied().unwrap_or(0).max(0) as u64;
                let limit = reply.get(2 + 2 * i).copied().unwrap_or(0).max(0) as u64;
                counts.push(count);
                PeriodUsage {
                    period: s.period,
                    limit: s.limit,
                    remaining: limit.saturating_sub(count),
                    reset: s.bounds.reset(now),
                }
            })
            .collect();
        Ok((Outcome::from_usage(allowed, usage), counts))
    }

    /// Sends this gateway's pending counts to Redis and reads the totals (sync mode).
    #[cfg(test)]
    pub async fn sync_now(&self) -> Result<(), RedisError> {
        match &self.sync {
            Some(sync) => sync.sync_once(&self.client).await,
            None => Ok(()),
        }
    }
}

/// The local side of `sync_rate`: per counter key of a current window, the total last
/// read from Redis and what this gateway admitted since.
struct SyncState {
    every: Duration,
    /// At most this many keys are tracked; a new key beyond it goes to Redis directly.
    max_keys: usize,
    lifecycle: Option<Lifecycle>,
    started: std::sync::Once,
    entries: Mutex<HashMap<String, SyncEntry>>,
}

#[derive(Debug, Clone, Copy)]
struct SyncEntry {
    /// The total in Redis at the last sync (including what this gateway sent).
    known: u64,
    /// Admitted here and not yet sent.
    pending: u64,
    limit: u64,
    /// End of the window (Unix seconds): the entry is dropped after it.
    end: u64,
    /// Expiry to set on the key (seconds).
    ttl: u64,
}

impl SyncState {
    /// The local check: `None` when a period's key has not been seen yet in this window
    /// (the request then goes to Redis, which also teaches the totals).
    fn check_locally(&self, slots: &[Slot], now: u64) -> Option<Outcome> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = Vec::with_capacity(slots.len());
        for s in slots {
            seen.push(*entries.get(&s.key)?);
        }
        let allowed = seen.iter().all(|e| e.known + e.pending < e.limit);
        if allowed {
            for s in slots {
                if let Some(e) = entries.get_mut(&s.key) {
                    e.pending += 1;
                }
            }
        }
        let usage = slots.iter().zip(&seen).map(|(s, e)| {
            let used = e.known + e.pending + u64::from(allowed);
            PeriodUsage {
                period: s.period,
                limit: s.limit,
                remaining: s.limit.saturating_sub(used),
                reset: s.bounds.reset(now),
            }
        });
        Some(Outcome::from_usage(allowed, usage))
    }

    /// Records the totals a direct check in Redis returned.
    fn learn(&self, slots: &[Slot], counts: &[u64]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for (s, &count) in slots.iter().zip(counts) {
            if let Some(e) = entries.get_mut(&s.key) {
                e.known = e.known.max(count);
                continue;
            }
            if entries.len() >= self.max_keys {
                continue;
            }
            entries.insert(
                s.key.clone(),
                SyncEntry {
                    known: count,
                    pending: 0,
                    limit: s.limit,
                    end: s.bounds.end,
                    ttl: expiration(s.period),
                },
            );
        }
    }

    /// Starts the periodic sync task (once).
    fn start(self: &Arc<Self>, counters: &RedisCounters) {
        self.started.call_once(|| {
            let Some(lifecycle) = self.lifecycle.clone().or_else(Lifecycle::process) else {
                return;
            };
            let weak: Weak<SyncState> = Arc::downgrade(self);
            let client = counters.client.clone();
            let every = self.every;
            let stopping = lifecycle.stopping();
            lifecycle.spawn(async move {
                let run = async {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let Some(state) = weak.upgrade() else { return };
                        if let Err(e) = state.sync_once(&client).await {
                            log::debug!("rate-limiting: sync with redis failed: {e}");
                        }
                    }
                };
                tokio::select! {
                    () = run => {}
                    () = stopping => {}
                }
            });
        });
    }

    /// One sync: sends every key's pending count (`INCRBY`, `EXPIRE`) in one pipeline
    /// and records the totals. On failure the counts stay pending for the next sync.
    async fn sync_once(&self, client: &RedisClient) -> Result<(), RedisError> {
        let now = super::unix_now();
        let batch: Vec<(String, u64, u64)> = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries.retain(|_, e| e.end > now);
            entries
                .iter_mut()
                .map(|(k, e)| {
                    let sent = std::mem::take(&mut e.pending);
                    (k.clone(), sent, e.ttl)
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = driver::pipe();
        for (key, sent, ttl) in &batch {
            pipe.cmd("INCRBY").arg(key).arg(*sent);
            pipe.cmd("EXPIRE").arg(key).arg(*ttl).ignore();
        }
        let result: Result<Vec<i64>, RedisError> = client
            .run(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(totals) => {
                for ((key, _, _), total) in batch.iter().zip(totals) {
                    if let Some(e) = entries.get_mut(key) {
                        e.known = total.max(0) as u64;
                    }
                }
                Ok(())
            }
            Err(e) => {
                for (key, sent, _) in &batch {
                    if let Some(entry) = entries.get_mut(key) {
                        entry.pending += sent;
                    }
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn keys_follow_kongs_layout() {
        // 2023-11-14 22:14:00 UTC, a minute boundary.
        let t0 = 1_700_000_040;
        let minute = Period::Minute.bounds(t0 + 13);
        assert_eq!(
            counter_key(
                "orders",
                EMPTY_UUID,
                "10.0.0.1",
                minute.start,
                Period::Minute
            ),
            "ratelimit:orders:00000000-0000-0000-0000-000000000000:10.0.0.1:1700000040000:minute"
        );
        let hour = Period::Hour.bounds(t0);
        assert_eq!(
            counter_key(EMPTY_UUID, EMPTY_UUID, "alice", hour.start, Period::Hour),
            format!("ratelimit:{EMPTY_UUID}:{EMPTY_UUID}:alice:1699999200000:hour")
        );
    }

    #[test]
    fn identifiers_are_kongs_text_or_a_digest() {
        let v4 = Identifier::Ip(IpAddr::from([192, 0, 2, 7]));
        assert_eq!(redis_identifier(v4), "192.0.2.7");
        let v6 = Identifier::Ip("2001:db8::1".parse().expect("ip"));
        assert_eq!(redis_identifier(v6), "2001:db8::1");
        assert_eq!(
            redis_identifier(Identifier::Name(b"consumer-1")),
            "consumer-1"
        );
        let long = vec![b'x'; 300];
        let d = redis_identifier(Identifier::Name(&long));
        assert!(d.starts_with("sha256:") && d.len() == 7 + 32, "{d}");
        // Deterministic (every gateway must agree), and distinct per input.
        assert_eq!(d, redis_identifier(Identifier::Name(&long)));
        assert_ne!(d, redis_identifier(Identifier::Name(&[0xff, 0xfe])));
    }

    // Against a real redis-server (see `redis::test_server`).

    use crate::redis::test_server::TestRedis;
    use crate::redis::{RedisPools, RedisSettings};

    /// One "gateway": counters with their own pools (so their own connection).
    fn replica(
        redis: &TestRedis,
        limits: &[(Period, u64)],
        sliding: bool,
        sync_every: Option<Duration>,
    ) -> RedisCounters {
        let client = RedisPools::new(4)
            .client(&RedisSettings::new("127.0.0.1", redis.port), None)
            .expect("client");
        RedisCounters::new(client, limits, sliding, Some("r"), sync_every, 1_000, None)
    }

    fn now_ms() -> u64 {
        super::super::unix_now_ms()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_replicas_admit_exactly_the_limit() {
        let redis = TestRedis::start();
        let replicas: Vec<Arc<RedisCounters>> = (0..3)
            .map(|_| {
                Arc::new(replica(
                    &redis,
                    &[(Period::Minute, 100), (Period::Hour, 1_000)],
                    false,
                    None,
                ))
            })
            .collect();
        let now = now_ms();
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let r = Arc::clone(&replicas[i % 3]);
                tokio::spawn(async move { r.check("alice", now).await })
            })
            .collect();
        let mut allowed = 0;
        for t in tasks {
            let outcome = t.await.expect("task").expect("redis answers");
            allowed += usize::from(outcome.allowed);
        }
        assert_eq!(allowed, 100);
        // The refused requests counted nowhere: the hour saw exactly 100.
        let o = replicas[0]
            .check("alice", now)
            .await
            .expect("redis answers");
        assert!(!o.allowed);
        assert_eq!(
            o.usage().map(|u| u.remaining).collect::<Vec<_>>(),
            vec![0, 900]
        );
    }

    #[tokio::test]
    async fn sliding_windows_weigh_the_previous_window() {
        let redis = TestRedis::start();
        let r = replica(&redis, &[(Period::Minute, 10)], true, None);
        // Far from now, so no other test's keys: a window [t0, t0 + 60).
        let t0 = 1_600_000_020_u64 * 1_000;
        for _ in 0..10 {
            assert!(r.check("bob", t0 + 5_000).await.expect("redis").allowed);
        }
        assert!(!r.check("bob", t0 + 5_000).await.expect("redis").allowed);
        // 30 s into the next window, half the previous window still counts: 5 left.
        let mid = t0 + 90_000;
        let mut passed = 0;
        for _ in 0..10 {
            passed += usize::from(r.check("bob", mid).await.expect("redis").allowed);
        }
        assert_eq!(passed, 5);
        // The same figure as the local store's arithmetic.
        assert_eq!(
            super::super::limiter::sliding_limit(10, 10, 30_000, 60_000),
            5
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sync_rate_over_admission_stays_within_the_documented_bound() {
        const REPLICAS: u64 = 3;
        const LIMIT: u64 = 100;
        // Requests each replica admits between two syncs.
        const PER_SYNC: u64 = 10;
        let redis = TestRedis::start();
        // A long interval: the test drives the syncs itself (the task's first tick may
        // also sync once, which only brings totals closer).
        let replicas: Vec<RedisCounters> = (0..REPLICAS)
            .map(|_| {
                replica(
                    &redis,
                    &[(Period::Hour, LIMIT)],
                    false,
                    Some(Duration::from_secs(3_600)),
                )
            })
            .collect();
        let now = now_ms();
        let mut admitted = 0;
        for _round in 0..(2 * LIMIT / PER_SYNC) {
            for r in &replicas {
                for _ in 0..PER_SYNC {
                    admitted += u64::from(r.check("carol", now).await.expect("redis").allowed);
                }
            }
            for r in &replicas {
                r.sync_now().await.expect("sync");
            }
        }
        let over = admitted.saturating_sub(LIMIT);
        eprintln!(
            "sync_rate: {REPLICAS} replicas, limit {LIMIT}, {PER_SYNC} requests per replica \
             per sync: admitted {admitted} (over-admission {over})"
        );
        assert!(admitted >= LIMIT, "admitted only {admitted}");
        assert!(
            over <= (REPLICAS - 1) * PER_SYNC,
            "over-admission {over} beyond (replicas - 1) x per-sync = {}",
            (REPLICAS - 1) * PER_SYNC
        );
        // Nothing admitted is lost: Redis holds exactly what was admitted.
        for r in &replicas {
            let o = r.check("carol", now).await.expect("redis");
            assert!(!o.allowed);
        }
        let key = counter_key(
            "r",
            EMPTY_UUID,
            "carol",
            Period::Hour.bounds(now / 1_000).start,
            Period::Hour,
        );
        let total: u64 = replicas[0]
            .client
            .run(|mut c| async move { driver::cmd("GET").arg(&key).query_async(&mut c).await })
            .await
            .expect("GET");
        assert_eq!(total, admitted);
    }

    #[tokio::test]
    async fn a_dead_redis_fails_fast_and_counting_resumes_when_it_is_back() {
        let mut redis = TestRedis::start();
        let port = redis.port;
        let r = replica(&redis, &[(Period::Hour, 1_000)], false, None);
        let now = now_ms();
        assert!(r.check("dave", now).await.expect("redis up").allowed);
        redis.kill();
        // The first command after the kill sees the broken connection; from then on
        // commands fail at once (the circuit is open), with no request waiting.
        let mut errors = 0;
        while errors < 3 {
            if r.check("dave", now).await.is_err() {
                errors += 1;
            }
        }
        assert!(!r.client.is_up());
        let _redis = TestRedis::start_on(port);
        // Wait on the condition (a check succeeding), with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(o) = r.check("dave", now).await {
                assert!(o.allowed);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "counting never resumed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
