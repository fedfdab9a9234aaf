//! Turns a target's `host:port` into socket addresses when a pool is built.

use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `host:port` (an `IP:port` or `[IPv6]:port` needs no lookup). A name with
/// several addresses gives each once, in the resolver's order. This blocks on DNS; it
/// runs at configuration load, never on a request.
pub(crate) fn resolve(address: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(format!("`{address}` is not host:port"));
    }
    let found = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(format!("cannot resolve {address}: no address found"));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_need_no_lookup() {
        assert_eq!(
            resolve("127.0.0.1:8080").unwrap(),
            vec!["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:80").unwrap(),
            vec!["[::1]:80".parse().unwrap()]
        );
    }

    #[test]
    fn names_resolve_to_loopback() {
        let addrs = resolve("localhost:9").unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }

    #[test]
    fn bad_addresses_are_explained() {
        assert!(resolve("localhost").unwrap_err().contains("not host:port"));
        assert!(resolve("localhost:http")
            .unwrap_err()
            .contains("not host:port"));
        assert!(resolve(":80").unwrap_err().contains("not host:port"));
        let e = resolve("no-such-host.invalid:80").unwrap_err();
        assert!(
            e.starts_with("cannot resolve no-such-host.invalid:80: "),
            "{e}"
        );
    }
}
