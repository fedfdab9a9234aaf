//! Pool-level tests: balancers through [`Upstream::select`], exclusion and health,
//! state carried over a reload, resolution diagnostics, peers.

use std::net::IpAddr;
use std::time::Duration;

use super::testing::{config, request};
use super::*;
use crate::config::{Balancer, HealthCheckConfig, HealthCheckKind};

const ALL: [Balancer; 4] = [
    Balancer::RoundRobin,
    Balancer::Random,
    Balancer::ConsistentHash,
    Balancer::LeastConnections,
];

fn ip(n: u32) -> IpAddr {
    IpAddr::from((0x0a00_0000u32 + n).to_be_bytes())
}

fn pool(targets: &[(&str, u32)], balancer: Balancer) -> Upstream {
    Upstream::build(&config("pool", targets, balancer), "upstreams[0]", None).unwrap()
}

/// Picks `n` times (dropping each selection) and counts picks per target index.
fn pick_counts(pool: &Upstream, n: usize) -> Vec<usize> {
    let header = request("/", &[]);
    let mut counts = vec![0; pool.targets().len()];
    for i in 0..n {
        let req = SelectRequest {
            client_ip: ip(i as u32),
            header: &header,
        };
        counts[pool.select(&req, &[]).unwrap().index] += 1;
    }
    counts
}

fn assert_shares(counts: &[usize], weights: &[u32], tolerance: f64) {
    let total: usize = counts.iter().sum();
    let wsum: u32 = weights.iter().sum();
    for (c, w) in counts.iter().zip(weights) {
        let expected = total as f64 * f64::from(*w) / f64::from(wsum);
        let off = (*c as f64 - expected).abs() / expected;
        assert!(
            off <= tolerance,
            "counts {counts:?} for weights {weights:?}"
        );
    }
}

const THREE: [(&str, u32); 3] = [("10.0.0.1:80", 1), ("10.0.0.2:80", 2), ("10.0.0.3:80", 7)];
const TWO: [(&str, u32); 2] = [("10.0.0.1:80", 100), ("10.0.0.2:80", 50)];

#[test]
fn round_robin_respects_weights() {
    let counts = pick_counts(&pool(&THREE, Balancer::RoundRobin), 10_000);
    assert_shares(&counts, &[1, 2, 7], 0.05);
    let counts = pick_counts(&pool(&TWO, Balancer::RoundRobin), 10_000);
    assert_shares(&counts, &[100, 50], 0.05);
}

#[test]
fn round_robin_is_smooth() {
    let p = pool(
        &[("10.0.0.1:80", 5), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)],
        Balancer::RoundRobin,
    );
    let header = request("/", &[]);
    let req = SelectRequest {
        client_ip: ip(1),
        header: &header,
    };
    let picks: Vec<usize> = (0..700)
        .map(|_| p.select(&req, &[]).unwrap().index)
        .collect();
    // Every window of one period holds exactly each target's weight...
    for window in picks.windows(7) {
        assert_eq!(window.iter().filter(|i| **i == 0).count(), 5, "{window:?}");
    }
    // ...and the heavy target never gets a burst of its whole share in a row.
    let longest_run = picks
        .split(|i| *i != 0)
        .map(|run| run.len())
        .max()
        .unwrap_or(0);
    assert!(longest_run < 5, "burst of {longest_run}");
}

#[test]
fn random_respects_weights() {
    fastrand::seed(7);
    let counts = pick_counts(&pool(&THREE, Balancer::Random), 100_000);
    assert_shares(&counts, &[1, 2, 7], 0.05);
    let counts = pick_counts(&pool(&TWO, Balancer::Random), 100_000);
    assert_shares(&counts, &[100, 50], 0.05);
}

#[test]
fn zero_weight_is_never_picked() {
    for balancer in ALL {
        let p = pool(&[("10.0.0.1:80", 0), ("10.0.0.2:80", 3)], balancer);
        assert_eq!(pick_counts(&p, 1_000)[0], 0, "{balancer:?}");
        let p = pool(&[("10.0.0.1:80", 0)], balancer);
        let header = request("/", &[]);
        let req = SelectRequest {
            client_ip: ip(1),
            header: &header,
        };
        assert!(p.select(&req, &[]).is_none(), "{balancer:?}");
    }
}

fn five_targets() -> Vec<(String, u32)> {
    (1..=5).map(|i| (format!("10.0.0.{i}:80"), 1)).collect()
}

fn hashed_pool(targets: &[(String, u32)], hash_on: HashOn) -> Upstream {
    let t: Vec<(&str, u32)> = targets.iter().map(|(a, w)| (a.as_str(), *w)).collect();
    let mut cfg = config("pool", &t, Balancer::ConsistentHash);
    cfg.hash_on = hash_on;
    cfg.hash_on_header = Some("x-user".into());
    cfg.hash_on_cookie = Some("session".into());
    Upstream::build(&cfg, "upstreams[0]", None).unwrap()
}

/// The address each of 10,000 `x-user` keys maps to.
fn key_map(pool: &Upstream) -> Vec<SocketAddr> {
    (0..10_000)
        .map(|k| {
            let header = request("/", &[("x-user", &format!("user-{k}"))]);
            let req = SelectRequest {
                client_ip: ip(1),
                header: &header,
            };
            pool.select(&req, &[]).unwrap().addr
        })
        .collect()
}

#[test]
fn consistent_hash_is_stable_and_moves_few_keys_when_a_target_goes() {
    let mut targets = five_targets();
    let before = key_map(&hashed_pool(&targets, HashOn::Header));
    assert_eq!(before, key_map(&hashed_pool(&targets, HashOn::Header)));

    let removed: SocketAddr = targets.remove(2).0.parse().unwrap();
    let after = key_map(&hashed_pool(&targets, HashOn::Header));
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    assert!(
        (1_000..=3_000).contains(&moved),
        "{moved} of 10000 keys moved"
    );
    let stayed_elsewhere = before
        .iter()
        .zip(&after)
        .filter(|(b, _)| **b != removed)
        .all(|(b, a)| b == a);
    assert!(stayed_elsewhere, "keys of the remaining targets must stay");
}

#[test]
fn consistent_hash_keys_on_header_cookie_path_and_ip() {
    let targets = five_targets();
    let select_addr = |pool: &Upstream, client: IpAddr, header: &pingora_http::RequestHeader| {
        let req = SelectRequest {
            client_ip: client,
            header,
        };
        pool.select(&req, &[]).unwrap().addr
    };
    let distinct = |addrs: Vec<SocketAddr>| {
        let mut a = addrs;
        a.sort();
        a.dedup();
        a.len()
    };

    // header: same value from any client → same target; values spread.
    let by_header = hashed_pool(&targets, HashOn::Header);
    let alice = request("/", &[("x-user", "alice")]);
    let first = select_addr(&by_header, ip(1), &alice);
    assert!((2..50).all(|c| select_addr(&by_header, ip(c), &alice) == first));
    let spread: Vec<_> = (0..100)
        .map(|k| {
            select_addr(
                &by_header,
                ip(1),
                &request("/", &[("x-user", &k.to_string())]),
            )
        })
        .collect();
    assert!(distinct(spread) >= 3);

    // A missing header falls back to the client IP.
    let by_ip = hashed_pool(&targets, HashOn::Ip);
    let bare = request("/", &[]);
    for c in 0..100 {
        assert_eq!(
            select_addr(&by_header, ip(c), &bare),
            select_addr(&by_ip, ip(c), &bare)
        );
    }
    let spread: Vec<_> = (0..100)
        .map(|c| select_addr(&by_ip, ip(c), &bare))
        .collect();
    assert!(distinct(spread) >= 3);

    // cookie
    let by_cookie = hashed_pool(&targets, HashOn::Cookie);
    let with_cookie = request("/", &[("cookie", "theme=dark; session=s-42")]);
    let first = select_addr(&by_cookie, ip(1), &with_cookie);
    assert!((2..50).all(|c| select_addr(&by_cookie, ip(c), &with_cookie) == first));
    let spread: Vec<_> = (0..100)
        .map(|k| {
            let cookie = format!("session=s-{k}");
            select_addr(&by_cookie, ip(1), &request("/", &[("cookie", &cookie)]))
        })
        .collect();
    assert!(distinct(spread) >= 3);
    let other_cookie = request("/", &[("cookie", "theme=dark")]);
    assert_eq!(
        select_addr(&by_cookie, ip(9), &other_cookie),
        select_addr(&by_ip, ip(9), &bare)
    );

    // path
    let by_path = hashed_pool(&targets, HashOn::Path);
    let p = request("/users/7?x=1", &[]);
    let first = select_addr(&by_path, ip(1), &p);
    assert!((2..50).all(|c| select_addr(&by_path, ip(c), &p) == first));
    let spread: Vec<_> = (0..100)
        .map(|k| select_addr(&by_path, ip(1), &request(&format!("/users/{k}"), &[])))
        .collect();
    assert!(distinct(spread) >= 3);
}

#[test]
fn least_connections_prefers_idle_targets_and_rotates_ties() {
    let p = pool(
        &[("10.0.0.1:80", 1), ("10.0.0.2:80", 1)],
        Balancer::LeastConnections,
    );
    let header = request("/", &[]);
    let req = SelectRequest {
        client_ip: ip(1),
        header: &header,
    };
    // Three requests held on target 0.
    let busy: Vec<Selected> = (0..3).map(|_| p.select(&req, &[1]).unwrap()).collect();
    assert!(busy.iter().all(|s| s.index == 0));
    assert_eq!(p.targets()[0].in_flight(), 3);
    // New picks go to the idle target until it carries as much.
    let held: Vec<Selected> = (0..3).map(|_| p.select(&req, &[]).unwrap()).collect();
    assert!(held.iter().all(|s| s.index == 1), "{held:?}");
    drop(busy);
    drop(held);
    assert_eq!(p.targets()[0].in_flight() + p.targets()[1].in_flight(), 0);

    // Idle and equal: ties are not always broken for the first target.
    let counts = pick_counts(&p, 100);
    assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
    // Held picks balance evenly.
    let held: Vec<Selected> = (0..100).map(|_| p.select(&req, &[]).unwrap()).collect();
    let on_first = held.iter().filter(|s| s.index == 0).count();
    assert_eq!(on_first, 50);
}

#[test]
fn least_connections_weighs_load() {
    let p = pool(
        &[("10.0.0.1:80", 3), ("10.0.0.2:80", 1)],
        Balancer::LeastConnections,
    );
    let header = request("/", &[]);
    let req = SelectRequest {
        client_ip: ip(1),
        header: &header,
    };
    let held: Vec<Selected> = (0..400).map(|_| p.select(&req, &[]).unwrap()).collect();
    let on_heavy = held.iter().filter(|s| s.index == 0).count();
    assert!((295..=305).contains(&on_heavy), "{on_heavy}");
}

#[test]
fn every_balancer_counts_in_flight_requests() {
    for balancer in ALL {
        let p = pool(&[("10.0.0.1:80", 1)], balancer);
        let header = request("/", &[]);
        let req = SelectRequest {
            client_ip: ip(1),
            header: &header,
        };
        let a = p.select(&req, &[]).unwrap();
        let b = p.select(&req, &[]).unwrap();
        assert_eq!(p.targets()[0].in_flight(), 2, "{balancer:?}");
        drop((a, b));
        assert_eq!(p.targets()[0].in_flight(), 0, "{balancer:?}");
    }
}

#[test]
fn excluded_and_unhealthy_targets_are_never_picked() {
    let targets = [("10.0.0.1:80", 1), ("10.0.0.2:80", 5), ("10.0.0.3:80", 1)];
    for balancer in ALL {
        let p = pool(&targets, balancer);
        let header = request("/", &[]);
        for i in 0..500 {
            let req = SelectRequest {
                client_ip: ip(i),
                header: &header,
            };
            let s = p.select(&req, &[1]).unwrap();
            assert_ne!(s.index, 1, "{balancer:?}");
            assert!(p.select(&req, &[0, 1, 2]).is_none(), "{balancer:?}");
        }

        p.targets()[1].set_healthy(false);
        let counts = pick_counts(&p, 500);
        assert_eq!(counts[1], 0, "{balancer:?}");
        assert_eq!(counts[0] + counts[2], 500);
        let req = SelectRequest {
            client_ip: ip(1),
            header: &header,
        };
        assert_eq!(p.select(&req, &[0]).unwrap().index, 2, "{balancer:?}");

        p.targets()[0].set_healthy(false);
        p.targets()[2].set_healthy(false);
        assert!(p.select(&req, &[]).is_none(), "{balancer:?}");
    }
}

fn with_health_check(targets: &[(&str, u32)]) -> UpstreamConfig {
    let mut cfg = config("pool", targets, Balancer::RoundRobin);
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
    cfg
}

#[test]
fn reload_keeps_the_state_of_unchanged_addresses() {
    let cfg = with_health_check(&[("10.0.0.1:80", 1), ("10.0.0.2:80", 1)]);
    let old = Upstream::build(&cfg, "upstreams[0]", None).unwrap();
    old.targets()[0].set_healthy(false);
    old.targets()[0].state.record_failure(3);
    let header = request("/", &[]);
    let req = SelectRequest {
        client_ip: ip(1),
        header: &header,
    };
    let held = old.select(&req, &[]).unwrap();
    assert_eq!(held.index, 1);

    // Reordered, reweighted, one address replaced.
    let cfg = with_health_check(&[("10.0.0.3:80", 1), ("10.0.0.1:80", 4), ("10.0.0.2:80", 2)]);
    let new = Upstream::build(&cfg, "upstreams[0]", Some(&old)).unwrap();
    let t = new.targets();
    assert!(t[0].is_healthy(), "a new address starts healthy");
    assert!(!t[1].is_healthy(), "health survives the reload");
    assert_eq!(t[1].consecutive_failures(), 1);
    assert_eq!(t[1].weight(), 4, "the weight comes from the new config");
    assert_eq!(t[2].in_flight(), 1, "in-flight requests carry over");
    drop(held);
    assert_eq!(t[2].in_flight(), 0);

    // Without health checks nothing could bring it back: it starts afresh, and the
    // running pool is left alone.
    let mut plain = cfg.clone();
    plain.health_check = None;
    let unchecked = Upstream::build(&plain, "upstreams[0]", Some(&new)).unwrap();
    assert!(unchecked.targets().iter().all(|t| t.is_healthy()));
    assert!(!new.targets()[1].is_healthy());
}

#[test]
fn names_resolve_and_failures_name_the_target() {
    let p = pool(&[("localhost:8080", 1)], Balancer::RoundRobin);
    assert!(!p.targets().is_empty());
    assert!(p
        .targets()
        .iter()
        .all(|t| t.addr().ip().is_loopback() && t.addr().port() == 8080 && t.weight() == 1));

    let cfg = config(
        "pool",
        &[
            ("10.0.0.1:80", 1),
            ("no-such-host.invalid:80", 1),
            ("missing-port", 1),
        ],
        Balancer::RoundRobin,
    );
    let errors = Upstream::build(&cfg, "upstreams[3]", None).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].path, "upstreams[3].targets[1]");
    assert!(errors[0]
        .message
        .starts_with("cannot resolve no-such-host.invalid:80: "));
    assert_eq!(errors[0].location, None);
    assert_eq!(errors[1].path, "upstreams[3].targets[2]");
}

#[test]
fn bad_hash_header_name_is_reported() {
    let mut cfg = config("pool", &[("10.0.0.1:80", 1)], Balancer::ConsistentHash);
    cfg.hash_on = HashOn::Header;
    cfg.hash_on_header = Some("bad header".into());
    let errors = Upstream::build(&cfg, "upstreams[0]", None).unwrap_err();
    assert_eq!(errors[0].path, "upstreams[0].hash_on_header");
}

#[test]
fn peer_carries_the_timeouts() {
    let mut cfg = config("pool", &[("10.0.0.1:80", 1)], Balancer::RoundRobin);
    cfg.connect_timeout = crate::config::Duration::from_millis(250);
    cfg.read_timeout = crate::config::Duration::from_secs(7);
    cfg.write_timeout = crate::config::Duration::from_secs(9);
    let p = Upstream::build(&cfg, "upstreams[0]", None).unwrap();
    assert_eq!(p.name(), "pool");
    assert_eq!(p.config(), &cfg);
    let header = request("/", &[]);
    let req = SelectRequest {
        client_ip: ip(1),
        header: &header,
    };
    let s = p.select(&req, &[]).unwrap();
    let peer = p.peer(&s);
    assert_eq!(peer._address.to_string(), "10.0.0.1:80");
    assert!(!peer.is_tls());
    assert!(peer.sni.is_empty());
    assert_eq!(
        peer.options.connection_timeout,
        Some(Duration::from_millis(250))
    );
    assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(7)));
    assert_eq!(peer.options.write_timeout, Some(Duration::from_secs(9)));
    assert_eq!(peer.options.total_connection_timeout, None);
}

#[test]
fn h2c_pools_speak_http2_only_and_upgrades_get_the_idle_timeout() {
    let mut cfg = config("pool", &[("10.0.0.1:80", 1)], Balancer::RoundRobin);
    cfg.read_timeout = crate::config::Duration::from_secs(7);
    cfg.websocket_idle_timeout = crate::config::Duration::from_secs(600);
    let header = request("/", &[]);
    let req = SelectRequest {
        client_ip: ip(1),
        header: &header,
    };

    let plain = Upstream::build(&cfg, "upstreams[0]", None).unwrap();
    let s = plain.select(&req, &[]).unwrap();
    let peer = plain.peer(&s);
    assert_eq!(peer.options.alpn.get_max_http_version(), 1);
    assert!(!plain.is_http2());
    // An upgrade waits the idle timeout, whatever the cap of an ordinary attempt.
    let (peer, gate) = plain.upgrade_peer(&s);
    assert!(
        gate.is_none(),
        "a plain target's connection is gated from the start"
    );
    assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(600)));
    assert_eq!(peer.options.write_timeout, Some(Duration::from_secs(600)));
    assert_eq!(plain.websocket_idle_timeout(), Duration::from_secs(600));
    // Through the gated connector, in a pool of its own.
    assert!(peer.options.custom_l4.is_some());
    assert_ne!(peer.group_key, plain.peer(&s).group_key);

    cfg.protocol = crate::config::UpstreamProtocol::H2c;
    let h2c = Upstream::build(&cfg, "upstreams[0]", None).unwrap();
    assert!(h2c.is_http2());
    let s = h2c.select(&req, &[]).unwrap();
    let peer = h2c.peer_within(&s, Some(Duration::from_secs(1)));
    assert_eq!(peer.options.alpn.get_min_http_version(), 2);
    assert_eq!(peer.options.alpn.get_max_http_version(), 2);
    assert!(peer.options.max_h2_streams > 1);
    assert!(!peer.is_tls());
    assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(1)));

    // h2: TLS whose handshake offers ALPN h2 alone.
    cfg.protocol = crate::config::UpstreamProtocol::H2;
    cfg.tls = true;
    let h2 = Upstream::build(&cfg, "upstreams[0]", None).unwrap();
    assert!(h2.is_http2());
    let s = h2.select(&req, &[]).unwrap();
    let peer = h2.peer(&s);
    assert!(peer.is_tls());
    assert_eq!(peer.options.alpn, pingora_core::protocols::ALPN::H2);
    assert!(peer.options.max_h2_streams > 1);

    // An upgrade to a TLS (HTTP/1.1) pool: gated too, with a gate to arm after the
    // handshake.
    cfg.protocol = crate::config::UpstreamProtocol::Http;
    let tls = Upstream::build(&cfg, "upstreams[0]", None).unwrap();
    let s = tls.select(&req, &[]).unwrap();
    let (peer, gate) = tls.upgrade_peer(&s);
    assert!(peer.is_tls() && gate.is_some());
    assert!(peer.options.custom_l4.is_some());
    assert_ne!(peer.group_key, tls.peer(&s).group_key);
}
