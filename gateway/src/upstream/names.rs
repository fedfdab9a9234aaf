//! Re-resolution of target names: a target written `host:port` is looked up again every
//! [`RESOLVE_INTERVAL`], and the pool's members change when the answer does.
//!
//! The system resolver reports no TTL, so the interval is fixed rather than taken from
//! the DNS answer. Lookups block, so [`Upstream::refresh_names`] is called from a
//! blocking task (see `refresher`), never on a proxy worker; it holds no lock while it
//! looks up.
//!
//! Indexes stay stable: an address that survives keeps its slot (and so its health,
//! counters and in-flight count), a new address of the same name takes the slot of one
//! that is gone, and a slot left over is retired (weight 0) rather than removed. A request
//! that picked index `i` before the change therefore still finds a target of the same
//! configured entry (the same `Host`) at `i` after it, and a retry's excluded indexes
//! keep meaning what they meant. A name's slots never outnumber the most addresses it
//! ever resolved to in this pool's lifetime (a reload builds a fresh pool).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log::{info, warn};

use super::members::Members;
use super::resolve::{ResolveError, ResolveFn};
use super::target::{Target, TargetState};
use super::Upstream;

/// How often target names are looked up again. Fixed: the system resolver gives no TTL.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// A configured target written as a name, and when to look it up next.
#[derive(Debug)]
pub(crate) struct NameRecord {
    /// Its index in the pool's `targets`.
    pub(crate) entry: usize,
    /// `host:port` as configured.
    pub(crate) address: String,
    /// The configured weight, for new addresses.
    pub(crate) weight: u32,
    /// `Host` for its addresses (shared by all of them).
    pub(crate) host_header: http::HeaderValue,
    /// When the next lookup is due.
    pub(crate) next_due: Instant,
    /// When a failed lookup was last logged: once per interval at most.
    pub(crate) failure_logged_at: Option<Instant>,
}

/// A pool's names and the refresh in progress, if any.
#[derive(Debug)]
pub(crate) struct Names {
    interval: Duration,
    records: Mutex<Vec<NameRecord>>,
    /// A refresh is running: a second one would only repeat its lookups.
    refreshing: AtomicBool,
}

/// What one call of [`Upstream::refresh_names`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RefreshReport {
    /// Names looked up (those that were due).
    pub looked_up: usize,
    /// Names whose addresses changed, so the pool's members were replaced.
    pub changed: usize,
    /// Lookups that failed (their last good addresses were kept).
    pub failed: usize,
    /// Failures written to the log (at most one per name per interval).
    pub failures_logged: usize,
}

impl Names {
    /// Names to look up every `interval`, the first time one interval from now.
    pub(crate) fn new(records: Vec<NameRecord>, interval: Duration) -> Self {
        Names {
            interval,
            records: Mutex::new(records),
            refreshing: AtomicBool::new(false),
        }
    }

    fn records(&self) -> MutexGuard<'_, Vec<NameRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a lookup is due at `now` and no refresh is running. Never waits long: the
    /// lock is only held between lookups.
    pub(crate) fn due(&self, now: Instant) -> bool {
        !self.refreshing.load(Ordering::Acquire) && self.records().iter().any(|r| r.next_due <= now)
    }

    fn claim(&self) -> Option<RefreshClaim<'_>> {
        self.refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| RefreshClaim(&self.refreshing))
    }
}

/// Releases the refresh claim however the refresh ends.
struct RefreshClaim<'a>(&'a AtomicBool);

impl Drop for RefreshClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Upstream {
    /// Whether some target name of this pool is due for a lookup at `now` (and no
    /// refresh is running).
    pub fn names_due(&self, now: Instant) -> bool {
        self.names.due(now)
    }

    /// Looks up the names that are due at `now` with `resolve` (blocking: call it from a
    /// blocking task), and replaces the pool's members if an answer changed. A failed or
    /// empty answer keeps the last good addresses. Returns what it did; does nothing if
    /// another refresh of this pool is running.
    pub(crate) fn refresh_names(&self, now: Instant, resolve: &ResolveFn<'_>) -> RefreshReport {
        let mut report = RefreshReport::default();
        let Some(_claim) = self.names.claim() else {
            return report;
        };
        let due: Vec<(usize, String)> = self
            .names
            .records()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.next_due <= now)
            .map(|(i, r)| (i, r.address.clone()))
            .collect();
        if due.is_empty() {
            return report;
        }
        // The lookups block: no lock is held while they run.
        let answers: Vec<_> = due
            .into_iter()
            .map(|(i, address)| (i, resolve(&address)))
            .collect();

        let interval = self.names.interval;
        let health_checked = self.cfg.health_check.is_some();
        let mut targets = self.members.load().targets.clone();
        let mut records = self.names.records();
        for (i, answer) in answers {
            let Some(record) = records.get_mut(i) else {
                continue;
            };
            report.looked_up += 1;
            record.next_due = now + interval;
            // An empty answer is no answer: it would take every address away.
            let answer = answer.and_then(|addrs| match addrs.is_empty() {
                true => Err(ResolveError::NoAddress(record.address.clone())),
                false => Ok(addrs),
            });
            match answer {
                Ok(addrs) => {
                    record.failure_logged_at = None;
                    if let Some(next) = reslot(&targets, record, &addrs, health_checked) {
                        info!(
                            "upstream {}: {} now resolves to {:?} (was {:?})",
                            self.name(),
                            record.address,
                            addrs,
                            live_addrs(&targets, record.entry)
                        );
                        targets = next;
                        report.changed += 1;
                    }
                }
                Err(e) => {
                    report.failed += 1;
                    let logged_lately = record
                        .failure_logged_at
                        .is_some_and(|at| now.saturating_duration_since(at) < interval);
                    if !logged_lately {
                        warn!(
                            "upstream {}: {e}; keeping its last addresses {:?}",
                            self.name(),
                            live_addrs(&targets, record.entry)
                        );
                        record.failure_logged_at = Some(now);
                        report.failures_logged += 1;
                    }
                }
            }
        }
        drop(records);
        if report.changed > 0 {
            let members = Members::new(targets, self.cfg.balancer, &self.key);
            self.members.store(Arc::new(members));
        }
        report
    }
}

/// The addresses configured target `entry` currently has.
fn live_addrs(targets: &[Arc<Target>], entry: usize) -> Vec<SocketAddr> {
    targets
        .iter()
        .filter(|t| t.entry() == entry && !t.is_retired())
        .map(|t| t.addr())
        .collect()
}

/// The target list with `record`'s name now at `addrs`, or `None` when that is what it
/// already has. Surviving addresses keep their slot and their `Target` (state and all);
/// new ones fill the name's freed slots, then go at the end; leftover slots are retired.
fn reslot(
    targets: &[Arc<Target>],
    record: &NameRecord,
    addrs: &[SocketAddr],
    health_checked: bool,
) -> Option<Vec<Arc<Target>>> {
    let current = live_addrs(targets, record.entry);
    if current.len() == addrs.len() && addrs.iter().all(|a| current.contains(a)) {
        return None;
    }
    let mut next = targets.to_vec();
    let mut free: std::collections::VecDeque<usize> = targets
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.entry() == record.entry && (t.is_retired() || !addrs.contains(&t.addr()))
        })
        .map(|(i, _)| i)
        .collect();
    for addr in addrs.iter().filter(|a| !current.contains(a)) {
        // The same address under another configured target is one server: one state
        // (with the rule of `Upstream::build` for pools without health checks).
        let state = targets
            .iter()
            .find(|t| !t.is_retired() && t.addr() == *addr)
            .map(|t| Arc::clone(&t.state))
            .filter(|s| health_checked || s.is_healthy())
            .unwrap_or_else(|| Arc::new(TargetState::new()));
        let target = Arc::new(Target::configured(
            record.entry,
            record.host_header.clone(),
            *addr,
            record.weight,
            state,
        ));
        match free.pop_front() {
            Some(slot) => next[slot] = target,
            None => next.push(target),
        }
    }
    for slot in free {
        if !next[slot].is_retired() {
            next[slot] = Arc::new(next[slot].retired());
        }
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Balancer, HealthCheckConfig, HealthCheckKind};
    use crate::upstream::testing::{config, request};
    use crate::upstream::SelectRequest;

    const INTERVAL: Duration = Duration::from_secs(30);

    /// A resolver answering from a table that the test changes; counts lookups.
    #[derive(Default)]
    struct Table {
        answers: Mutex<HashMap<String, Result<Vec<SocketAddr>, String>>>,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl Table {
        fn set(&self, name: &str, addrs: &[&str]) {
            let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
            self.answers.lock().unwrap().insert(name.into(), Ok(addrs));
        }

        fn fail(&self, name: &str) {
            let e = Err("SERVFAIL".to_string());
            self.answers.lock().unwrap().insert(name.into(), e);
        }

        fn resolve(&self, address: &str) -> Result<Vec<SocketAddr>, ResolveError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if let Ok(addr) = address.parse() {
                return Ok(vec![addr]);
            }
            match self.answers.lock().unwrap().get(address) {
                Some(Ok(addrs)) => Ok(addrs.clone()),
                Some(Err(e)) => Err(ResolveError::Lookup {
                    address: address.into(),
                    source: std::io::Error::other(e.clone()),
                }),
                None => Err(ResolveError::NoAddress(address.into())),
            }
        }
    }

    fn checked_pool(table: &Table) -> Upstream {
        let mut cfg = config(
            "api",
            &[("api.test:80", 5), ("10.0.0.9:80", 1)],
            Balancer::RoundRobin,
        );
        cfg.health_check = Some(HealthCheckConfig {
            kind: HealthCheckKind::Tcp,
            path: "/".into(),
            host: None,
            expected_status: vec![200],
            interval: crate::config::Duration::from_secs(5),
            timeout: crate::config::Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
        });
        Upstream::build_with(&cfg, "upstreams[0]", None, &|a| table.resolve(a), INTERVAL).unwrap()
    }

    fn addrs(pool: &Upstream) -> Vec<String> {
        pool.targets()
            .iter()
            .map(|t| {
                let mark = if t.is_retired() { " (retired)" } else { "" };
                format!("{}{mark}", t.addr())
            })
            .collect()
    }

    #[test]
    fn a_changed_answer_keeps_surviving_targets_their_slot_and_state() {
        let table = Table::default();
        table.set("api.test:80", &["10.0.0.1:80", "10.0.0.2:80"]);
        let pool = checked_pool(&table);
        assert_eq!(addrs(&pool), ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.9:80"]);
        let start = Instant::now();
        let header = request("/", &[]);
        let req = SelectRequest {
            client_ip: "192.0.2.1".parse().unwrap(),
            header: &header,
        };
        // 10.0.0.2 is unhealthy-ish (two failures) and has a request in flight.
        pool.targets()[1].state.record_failure(3);
        pool.targets()[1].state.record_failure(3);
        let held = pool.select(&req, &[0, 2]).unwrap();
        assert_eq!(held.index, 1);
        let before = pool.targets();

        // .1 goes, .3 comes: .3 takes .1's slot; .2 keeps its own, state and all.
        table.set("api.test:80", &["10.0.0.2:80", "10.0.0.3:80"]);
        let report = pool.refresh_names(start + INTERVAL, &|a| table.resolve(a));
        assert_eq!(
            report.looked_up, 1,
            "literal targets are never looked up again"
        );
        assert_eq!(report.changed, 1);
        assert_eq!(addrs(&pool), ["10.0.0.3:80", "10.0.0.2:80", "10.0.0.9:80"]);
        let after = pool.targets();
        assert!(
            Arc::ptr_eq(&before[1], &after[1]),
            "the surviving target itself"
        );
        assert_eq!(after[1].consecutive_failures(), 2);
        assert_eq!(after[1].in_flight(), 1);
        assert_eq!(
            after[0].consecutive_failures(),
            0,
            "a new address starts afresh"
        );
        assert_eq!(after[0].weight(), 5);
        assert!(after
            .iter()
            .take(2)
            .all(|t| t.host_header() == "api.test:80"));
        assert!(Arc::ptr_eq(&before[2], &after[2]));
        assert_eq!(
            addrs_of(&before),
            ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.9:80"]
        );
        drop(held);
        assert_eq!(after[1].in_flight(), 0);

        // Down to one address: the freed slot is retired, never picked; indexes stay.
        table.set("api.test:80", &["10.0.0.2:80"]);
        let report = pool.refresh_names(start + 2 * INTERVAL, &|a| table.resolve(a));
        assert_eq!(report.changed, 1);
        assert_eq!(
            addrs(&pool),
            ["10.0.0.3:80 (retired)", "10.0.0.2:80", "10.0.0.9:80"]
        );
        for _ in 0..50 {
            assert_ne!(pool.select(&req, &[]).unwrap().index, 0);
        }

        // Up to three: the retired slot is taken again, the third goes at the end.
        table.set(
            "api.test:80",
            &["10.0.0.4:80", "10.0.0.2:80", "10.0.0.5:80"],
        );
        pool.refresh_names(start + 3 * INTERVAL, &|a| table.resolve(a));
        assert_eq!(
            addrs(&pool),
            ["10.0.0.4:80", "10.0.0.2:80", "10.0.0.9:80", "10.0.0.5:80"]
        );
        let picked: std::collections::HashSet<usize> = (0..100)
            .map(|_| pool.select(&req, &[]).unwrap().index)
            .collect();
        assert_eq!(picked.len(), 4, "every live target is picked: {picked:?}");
    }

    fn addrs_of(targets: &crate::upstream::Targets) -> Vec<String> {
        targets.iter().map(|t| t.addr().to_string()).collect()
    }

    #[test]
    fn names_are_looked_up_once_per_interval_and_same_answers_change_nothing() {
        let table = Table::default();
        table.set("api.test:80", &["10.0.0.1:80", "10.0.0.2:80"]);
        let pool = checked_pool(&table);
        let start = Instant::now();
        let lookups = || table.lookups.load(Ordering::SeqCst);
        let built = lookups();

        assert!(!pool.names_due(start));
        let report = pool.refresh_names(start, &|a| table.resolve(a));
        assert_eq!(report, RefreshReport::default(), "nothing due yet");
        assert_eq!(lookups(), built);

        // The same addresses in another order: no change, the very same members.
        table.set("api.test:80", &["10.0.0.2:80", "10.0.0.1:80"]);
        let before = pool.targets();
        assert!(pool.names_due(start + INTERVAL));
        let report = pool.refresh_names(start + INTERVAL, &|a| table.resolve(a));
        assert_eq!((report.looked_up, report.changed), (1, 0));
        assert!(Arc::ptr_eq(&before.0, &pool.targets().0));
        assert!(!pool.names_due(start + INTERVAL + Duration::from_secs(1)));
    }

    #[test]
    fn failed_or_empty_lookups_keep_the_last_addresses_and_log_once_per_interval() {
        let table = Table::default();
        table.set("api.test:80", &["10.0.0.1:80"]);
        let pool = checked_pool(&table);
        let start = Instant::now();

        table.fail("api.test:80");
        let report = pool.refresh_names(start + INTERVAL, &|a| table.resolve(a));
        assert_eq!(
            report,
            RefreshReport {
                looked_up: 1,
                changed: 0,
                failed: 1,
                failures_logged: 1
            }
        );
        assert_eq!(addrs(&pool), ["10.0.0.1:80", "10.0.0.9:80"]);
        // Asked again within the interval: not looked up, so not logged either.
        let report = pool.refresh_names(start + INTERVAL + INTERVAL / 2, &|a| table.resolve(a));
        assert_eq!(report, RefreshReport::default());

        // An empty answer counts as a failure too, logged once for this interval.
        table.set("api.test:80", &[]);
        let report = pool.refresh_names(start + 2 * INTERVAL, &|a| table.resolve(a));
        assert_eq!((report.failed, report.failures_logged), (1, 1));
        assert_eq!(addrs(&pool), ["10.0.0.1:80", "10.0.0.9:80"]);

        // Back: a real change applies again.
        table.set("api.test:80", &["10.0.0.7:80"]);
        let report = pool.refresh_names(start + 3 * INTERVAL, &|a| table.resolve(a));
        assert_eq!((report.failed, report.changed), (0, 1));
        assert_eq!(addrs(&pool), ["10.0.0.7:80", "10.0.0.9:80"]);
    }

    #[test]
    fn a_refresh_already_running_is_not_repeated() {
        let table = Table::default();
        table.set("api.test:80", &["10.0.0.1:80"]);
        let pool = checked_pool(&table);
        let later = Instant::now() + INTERVAL;
        let claim = pool.names.claim().unwrap();
        assert!(!pool.names_due(later));
        assert_eq!(
            pool.refresh_names(later, &|a| table.resolve(a)),
            RefreshReport::default()
        );
        drop(claim);
        assert!(pool.names_due(later));
    }
}
