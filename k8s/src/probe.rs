//! `pingway-k8s probe`: a readiness check for an `exec` probe. It asks the admin API on
//! loopback (`GET http://127.0.0.1:8001/status`) and succeeds on a `200`, so the admin
//! API never has to listen where the kubelet's `httpGet` probes come from (the pod IP),
//! and the image needs no shell nor curl. Plain HTTP/1.1 over one TCP connection, with a
//! timeout on every step; the answer's body is not read beyond its status line.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

/// Why the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://HOST:PORT/PATH`.
    #[error("not an http://HOST:PORT/PATH URL: {0}")]
    Url(String),
    /// Connecting, sending or reading failed.
    #[error("{addr}: {source}")]
    Io {
        /// Where.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The answer was not `200`.
    #[error("{url} answered {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// Its status line.
        status: String,
    },
}

/// Splits `http://HOST:PORT/PATH` into the `HOST:PORT` and the path.
pub fn split_url(url: &str) -> Result<(String, String), ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::Url(url.into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || !authority.contains(':') {
        return Err(ProbeError::Url(url.into()));
    }
    Ok((authority.to_string(), path.to_string()))
}

/// GETs `url`; `Ok` on a `200`.
pub fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let (authority, path) = split_url(url)?;
    let io = |source| ProbeError::Io {
        addr: authority.clone(),
        source,
    };
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| ProbeError::Url(url.into()))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    // The status line only; at most 1 KiB is read.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = s.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.split(' ').nth(1) == Some("200") {
        Ok(())
    } else {
        Err(ProbeError::Status {
            url: url.into(),
            status: if line.is_empty() {
                "nothing".into()
            } else {
                line
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_authority_and_path() {
        let (a, p) = split_url("http://127.0.0.1:8001/status").unwrap();
        assert_eq!((a.as_str(), p.as_str()), ("127.0.0.1:8001", "/status"));
        let (_, p) = split_url("http://[::1]:8001").unwrap();
        assert_eq!(p, "/");
        assert!(split_url("https://127.0.0.1:8001/status").is_err());
        assert!(split_url("http:///status").is_err());
    }

    #[test]
    fn a_200_passes_and_anything_else_fails() {
        let serve = |answer: &'static str| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer.as_bytes());
            });
            format!("http://{addr}/status")
        };
        let t = Duration::from_secs(5);
        probe(&serve("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), t).unwrap();
        let e = probe(&serve("HTTP/1.1 503 Service Unavailable\r\n\r\n"), t).unwrap_err();
        assert!(e.to_string().contains("503"), "{e}");
        // Nothing listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(probe(&format!("http://{closed}/status"), t).is_err());
    }
}
