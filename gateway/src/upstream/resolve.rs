//! Turns a target's `host:port` into socket addresses.
//!
//! The lookup is the system resolver's (`getaddrinfo`, through `ToSocketAddrs`): it
//! honours /etc/hosts and nsswitch but blocks and reports no TTL. So it runs only where
//! blocking is harmless: when a configuration is loaded (the reload thread) and in the
//! target refresher's blocking tasks, never on a proxy worker.

use std::net::{SocketAddr, ToSocketAddrs};

/// Why a target address gave no socket address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The text is neither `IP:port`, `[IPv6]:port` nor `host:port` with a numeric port.
    #[error("`{0}` is not host:port")]
    NotHostPort(String),
    /// The resolver failed (unknown name, no DNS server...).
    #[error("cannot resolve {address}: {source}")]
    Lookup {
        /// The target as configured.
        address: String,
        /// What the resolver said.
        source: std::io::Error,
    },
    /// The resolver answered with no address.
    #[error("cannot resolve {0}: no address found")]
    NoAddress(String),
}

/// A lookup function: the system resolver in production, a table in tests.
pub(crate) type ResolveFn<'a> =
    dyn Fn(&str) -> Result<Vec<SocketAddr>, ResolveError> + Send + Sync + 'a;

/// The literal socket address, when `address` is one (`IP:port`, `[IPv6]:port`): such
/// a target needs no lookup, now or later.
pub(crate) fn literal(address: &str) -> Option<SocketAddr> {
    address.parse().ok()
}

/// Resolves `host:port` (an `IP:port` or `[IPv6]:port` needs no lookup). A name with
/// several addresses gives each once, in the resolver's order. This blocks on DNS.
pub(crate) fn resolve(address: &str) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Some(addr) = literal(address) {
        return Ok(vec![addr]);
    }
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(ResolveError::NotHostPort(address.to_string()));
    }
    let found = address
        .to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            address: address.to_string(),
            source,
        })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(ResolveError::NoAddress(address.to_string()));
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
        assert!(literal("localhost:80").is_none());
    }

    #[test]
    fn names_resolve_to_loopback() {
        let addrs = resolve("localhost:9").unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }

    #[test]
    fn bad_addresses_are_explained() {
        let message = |a: &str| resolve(a).unwrap_err().to_string();
        assert!(message("localhost").contains("not host:port"));
        assert!(message("localhost:http").contains("not host:port"));
        assert!(message(":80").contains("not host:port"));
        let e = message("no-such-host.invalid:80");
        assert!(
            e.starts_with("cannot resolve no-such-host.invalid:80: "),
            "{e}"
        );
    }
}
