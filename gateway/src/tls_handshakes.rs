//! Bounds on the TLS handshakes an HTTPS listener runs at once, and a deadline for the
//! client's first TLS record (its ClientHello).
//!
//! Pingora starts a task for each accepted connection and gives its TLS handshake 60
//! seconds, with no bound on how many run at once; `server.max_connections` counts a
//! connection only from the end of its handshake. A client that opens connections and
//! never sends a ClientHello would so hold a task, a socket and buffers for a minute each,
//! as many as it likes. [`HandshakeLimits`] runs in Pingora's pre-TLS hook, on the task of
//! the connection, before the handshake:
//!
//! - it takes one of the listener's `tls.max_handshakes` slots, or closes the connection
//!   at once (counted: `pingway_tls_handshakes_refused_total`);
//! - it waits up to `tls.client_hello_timeout` for the client's whole first TLS record and
//!   puts it back for the handshake, or closes the connection (counted:
//!   `pingway_tls_client_hello_timeouts_total`).
//!
//! The slot is given back when the handshake is done (the proxy's app calls
//! [`HandshakeLimits::handshake_done`] with the connection's descriptor before serving it)
//! or when the connection closes, whichever comes first: the stream's tracer hook runs on
//! close, before the descriptor is released, so a descriptor names one connection for as
//! long as it holds a slot.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::listeners::PreTlsProcess;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::GetSocketDigest;
use pingora_core::upstreams::peer::{Tracer, Tracing};
use pingora_error::{Error, ErrorType, Result};
use tokio::io::AsyncReadExt;

use crate::config::Listener;
use crate::downstream::EveryTenSeconds;

/// A TLS record's header: content type, version, length.
const RECORD_HEADER: usize = 5;
/// The content type of handshake records (the ClientHello's).
const HANDSHAKE_RECORD: u8 = 22;
/// The largest record a client may send before encryption (2^14 bytes, RFC 8446 §5.1).
const MAX_PLAINTEXT_RECORD: usize = 1 << 14;

static REFUSED: AtomicU64 = AtomicU64::new(0);
static HELLO_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
static REFUSAL_LOG: EveryTenSeconds = EveryTenSeconds::new();
static HELLO_TIMEOUT_LOG: EveryTenSeconds = EveryTenSeconds::new();

/// Connections closed because their listener had `tls.max_handshakes` handshakes running.
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Connections closed because their ClientHello did not arrive within
/// `tls.client_hello_timeout`.
pub fn client_hello_timeouts() -> u64 {
    HELLO_TIMEOUTS.load(Ordering::Relaxed)
}

/// One HTTPS listener's bounds and its handshakes in progress.
#[derive(Debug)]
struct ListenerSlots {
    address: SocketAddr,
    /// At most this many handshakes at once (0: no bound).
    max: usize,
    used: AtomicUsize,
    hello_timeout: Duration,
}

impl ListenerSlots {
    /// Takes a slot if one is free.
    fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.max).then_some(used + 1)
            })
            .is_ok()
    }
}

/// The handshake bounds of every HTTPS listener of the process (fixed at start-up, as the
/// listeners are), and the handshakes holding a slot, by connection descriptor.
#[derive(Debug)]
pub struct HandshakeLimits {
    listeners: Vec<Arc<ListenerSlots>>,
    in_progress: Mutex<HashMap<RawFd, Arc<ListenerSlots>>>,
    /// Entries of `in_progress`: lets [`Self::handshake_done`] skip the lock when none.
    holding: AtomicUsize,
}

impl HandshakeLimits {
    /// The bounds of the HTTPS listeners among `listeners`; `None` if there are none.
    pub fn new(listeners: &[Listener]) -> Option<Arc<Self>> {
        let slots: Vec<Arc<ListenerSlots>> = listeners
            .iter()
            .filter_map(|l| {
                let tls = l.tls.as_ref()?;
                let address = l.address.parse().ok()?;
                Some(Arc::new(ListenerSlots {
                    address,
                    max: tls.max_handshakes as usize,
                    used: AtomicUsize::new(0),
                    hello_timeout: tls.client_hello_timeout.get(),
                }))
            })
            .collect();
        (!slots.is_empty()).then(|| {
            Arc::new(HandshakeLimits {
                listeners: slots,
                in_progress: Mutex::new(HashMap::new()),
                holding: AtomicUsize::new(0),
            })
        })
    }

    /// The listener a connection accepted on `local` came in through: the one with
    /// that address, else the one listening on every address with that port.
    fn listener_of(&self, local: SocketAddr) -> Option<&Arc<ListenerSlots>> {
        self.listeners
            .iter()
            .find(|s| s.address == local)
            .or_else(|| {
                self.listeners
                    .iter()
                    .find(|s| s.address.ip().is_unspecified() && s.address.port() == local.port())
            })
    }

    /// Takes a slot of `slots` for the connection `fd`; false if none is free.
    fn hold(&self, fd: RawFd, slots: &Arc<ListenerSlots>) -> bool {
        if !slots.take() {
            return false;
        }
        let Ok(mut map) = self.in_progress.lock() else {
            slots.used.fetch_sub(1, Ordering::AcqRel);
            return false;
        };
        match map.insert(fd, slots.clone()) {
            // A descriptor still marked (it cannot be: released before it closes).
            Some(old) => {
                old.used.fetch_sub(1, Ordering::AcqRel);
            }
            None => {
                self.holding.fetch_add(1, Ordering::AcqRel);
            }
        }
        true
    }

    /// The handshake of connection `fd` is over (done, failed or closed): its slot, if
    /// it holds one, is free again.
    pub fn handshake_done(&self, fd: RawFd) {
        if self.holding.load(Ordering::Acquire) == 0 {
            return;
        }
        let released = match self.in_progress.lock() {
            Ok(mut map) => map.remove(&fd),
            Err(_) => None,
        };
        if let Some(slots) = released {
            self.holding.fetch_sub(1, Ordering::AcqRel);
            slots.used.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Handshakes holding a slot now, over all listeners.
    pub fn in_progress(&self) -> usize {
        self.listeners
            .iter()
            .map(|s| s.used.load(Ordering::Relaxed))
            .sum()
    }

    /// The hook to install on the listeners' TLS stacks.
    pub fn pre_tls(self: &Arc<Self>) -> Arc<dyn PreTlsProcess> {
        Arc::new(PreTls(self.clone()))
    }
}

/// Pingora's pre-TLS hook around [`HandshakeLimits`].
struct PreTls(Arc<HandshakeLimits>);

#[async_trait]
impl PreTlsProcess for PreTls {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let limits = &self.0;
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet().copied()));
        let Some(slots) = local.and_then(|a| limits.listener_of(a)).cloned() else {
            return Ok(());
        };
        if slots.max > 0 {
            let fd = stream.as_raw_fd();
            if !limits.hold(fd, &slots) {
                let n = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
                if REFUSAL_LOG.due() {
                    log::warn!(
                        "{}: tls.max_handshakes ({}) reached: closing new connections before their handshake ({n} so far)",
                        slots.address,
                        slots.max
                    );
                }
                return Error::e_explain(
                    ErrorType::AcceptError,
                    "tls.max_handshakes reached: connection closed before its handshake",
                );
            }
            // Gives the slot back when the connection closes, if its handshake did not
            // end first.
            stream.tracer = Some(Tracer(Box::new(Release {
                limits: limits.clone(),
                fd,
            })));
        }
        match tokio::time::timeout(slots.hello_timeout, first_record(stream)).await {
            Ok(Ok(first)) => {
                stream.rewind(&first);
                Ok(())
            }
            Ok(Err(e)) => Error::e_because(ErrorType::ReadError, "reading the ClientHello", e),
            Err(_) => {
                let n = HELLO_TIMEOUTS.fetch_add(1, Ordering::Relaxed) + 1;
                if HELLO_TIMEOUT_LOG.due() {
                    log::warn!(
                        "{}: no ClientHello within tls.client_hello_timeout ({:?}): {n} connection(s) closed so far",
                        slots.address,
                        slots.hello_timeout
                    );
                }
                Error::e_explain(
                    ErrorType::ReadTimedout,
                    "tls.client_hello_timeout: the ClientHello did not arrive",
                )
            }
        }
    }
}

/// Reads the client's first TLS record whole (header and body), or what came before the
/// client closed, or before the bytes showed it is not a TLS handshake record (a plain
/// HTTP request, say: the handshake then fails on them at once).
async fn first_record(stream: &mut L4Stream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let want = if buf.len() < RECORD_HEADER {
            RECORD_HEADER
        } else if buf[0] != HANDSHAKE_RECORD {
            return Ok(buf);
        } else {
            let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
            RECORD_HEADER + len.min(MAX_PLAINTEXT_RECORD)
        };
        if buf.len() >= want {
            return Ok(buf);
        }
        let room = (want - buf.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Ok(buf);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Frees a connection's handshake slot when the connection closes.
#[derive(Debug, Clone)]
struct Release {
    limits: Arc<HandshakeLimits>,
    fd: RawFd,
}

impl Tracing for Release {
    fn on_connected(&self) {}

    fn on_disconnected(&self) {
        self.limits.handshake_done(self.fd);
    }

    fn boxed_clone(&self) -> Box<dyn Tracing> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(address: &str, max_handshakes: Option<u32>) -> Listener {
        Listener {
            address: address.into(),
            h2c: false,
            tls: max_handshakes.map(|max_handshakes| crate::config::ListenerTls {
                certificates: Vec::new(),
                http2: true,
                max_handshakes,
                client_hello_timeout: crate::config::Duration::from_secs(10),
                client_certificate: Default::default(),
            }),
        }
    }

    fn limits(max: u32) -> Arc<HandshakeLimits> {
        HandshakeLimits::new(&[
            listener("127.0.0.1:8080", None),
            listener("127.0.0.1:8443", Some(max)),
        ])
        .unwrap()
    }

    #[test]
    fn slots_are_bounded_and_given_back_once() {
        let l = limits(2);
        let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let slots = l.listener_of(addr).unwrap().clone();
        assert!(l.listener_of("127.0.0.1:8080".parse().unwrap()).is_none());
        assert!(l.hold(10, &slots));
        assert!(l.hold(11, &slots));
        assert!(!l.hold(12, &slots), "a third handshake past the bound");
        assert_eq!(l.in_progress(), 2);
        l.handshake_done(10);
        // Released twice (handshake done, then the connection closed): once.
        l.handshake_done(10);
        assert_eq!(l.in_progress(), 1);
        assert!(l.hold(12, &slots));
        l.handshake_done(11);
        l.handshake_done(12);
        assert_eq!(l.in_progress(), 0);
        assert_eq!(l.holding.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_wildcard_listener_takes_connections_to_any_of_its_addresses() {
        let limits = HandshakeLimits::new(&[listener("0.0.0.0:8443", Some(5))]).unwrap();
        assert!(limits
            .listener_of("10.1.2.3:8443".parse().unwrap())
            .is_some());
        assert!(limits
            .listener_of("10.1.2.3:9443".parse().unwrap())
            .is_none());
    }
}
