//! `tcp-log` and `udp-log`: Kong's log entry for every request, as a JSON line over a
//! TCP connection or one UDP datagram per entry, from a bounded queue (see
//! docs/plugins/tcp-log.md and docs/plugins/udp-log.md).

use std::time::Duration;

use async_trait::async_trait;
use pingway_plugin::{BuildContext, BuildPlugin, ConfigError, LogEntry, Plugin};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::loggers::config::{millis, reject_custom_fields_by_lua, QueueSettings};
use crate::loggers::{counters, kong_entry, Deliver, LogQueue};

/// Entries waiting to be sent by `tcp-log` or `udp-log`, at most (Kong's plugins have
/// no queue settings); more are dropped and counted.
pub const SOCKET_LOG_MAX_ENTRIES: usize = 10_000;

fn socket_queue() -> QueueSettings {
    QueueSettings {
        max_batch_size: 100,
        max_coalescing_delay: Duration::ZERO,
        max_entries: SOCKET_LOG_MAX_ENTRIES,
        max_retry_time: Duration::from_secs(60),
        initial_retry_delay: Duration::from_millis(10),
        max_retry_delay: Duration::from_secs(5),
    }
}

fn check_host(host: &str) -> Result<(), ConfigError> {
    if host.is_empty()
        || host.contains(['/', ' ', ':']) && host.parse::<std::net::IpAddr>().is_err()
    {
        return Err(ConfigError::new("host", "a host name or an IP address"));
    }
    Ok(())
}

fn check_port(port: u16) -> Result<(), ConfigError> {
    if port == 0 {
        return Err(ConfigError::new("port", "between 1 and 65535"));
    }
    Ok(())
}

/// `host:port`, with an IPv6 address in brackets.
fn socket_address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn lifecycle(cx: &BuildContext<'_>) -> Result<pingway_plugin::Lifecycle, ConfigError> {
    cx.lifecycle()
        .ok_or_else(|| ConfigError::new("", "no runtime for the background task"))
}

/// `tcp-log` configuration (Kong's fields).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpLogConfig {
    /// The collector's host name or IP address.
    pub host: String,
    /// The collector's port.
    pub port: u16,
    /// How long connecting and sending a batch may take, in milliseconds (default 10000).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// How long an idle connection is kept, in milliseconds (default 60000).
    #[serde(default = "default_keepalive")]
    pub keepalive: u64,
    /// TLS to the collector: not supported yet (`true` is refused).
    #[serde(default)]
    pub tls: bool,
    /// The TLS server name: only meaningful with `tls`, which is not supported.
    #[serde(default)]
    pub tls_sni: Option<String>,
    /// Kong's Lua hook: not supported; any value but `null` or `{}` is refused.
    #[serde(default)]
    pub custom_fields_by_lua: Option<serde_json::Value>,
}

fn default_timeout() -> u64 {
    10_000
}
fn default_keepalive() -> u64 {
    60_000
}

/// The `tcp-log` plugin.
#[derive(Debug)]
pub struct TcpLog {
    queue: LogQueue,
    timeout: Duration,
}

#[async_trait]
impl Plugin for TcpLog {
    fn on_log(&self, entry: &LogEntry<'_>) {
        if let Ok(mut line) = serde_json::to_vec(&kong_entry(entry)) {
            line.push(b'\n');
            self.queue.push(line);
        }
    }

    async fn drain(&self) {
        self.queue.drain(self.timeout).await;
    }
}

/// One connection, kept while it works and reopened when it fails or idled too long.
struct TcpSink {
    address: String,
    timeout: Duration,
    keepalive: Duration,
    stream: Option<(TcpStream, tokio::time::Instant)>,
}

#[async_trait]
impl Deliver for TcpSink {
    async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), String> {
        let fresh = self
            .stream
            .take()
            .filter(|(_, used)| used.elapsed() < self.keepalive);
        let mut stream = match fresh {
            Some((s, _)) => s,
            None => tokio::time::timeout(self.timeout, TcpStream::connect(&self.address))
                .await
                .map_err(|_| "connecting timed out".to_string())?
                .map_err(|e| format!("cannot connect: {e}"))?,
        };
        let bytes = batch.concat();
        match tokio::time::timeout(self.timeout, stream.write_all(&bytes)).await {
            Ok(Ok(())) => {
                self.stream = Some((stream, tokio::time::Instant::now()));
                Ok(())
            }
            Ok(Err(e)) => Err(format!("cannot send: {e}")),
            Err(_) => Err("sending timed out".into()),
        }
    }
}

impl BuildPlugin for TcpLog {
    const NAME: &'static str = "tcp-log";
    /// Kong's priority for tcp-log.
    const PRIORITY: i32 = 7;
    type Config = TcpLogConfig;

    fn build(config: TcpLogConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        reject_custom_fields_by_lua(&config.custom_fields_by_lua)?;
        if config.tls {
            return Err(ConfigError::new(
                "tls",
                "TLS to the collector is not supported yet; use a local TLS forwarder",
            ));
        }
        check_host(&config.host)?;
        check_port(config.port)?;
        let timeout = millis("timeout", config.timeout)?;
        let keepalive = millis("keepalive", config.keepalive)?;
        let sink = TcpSink {
            address: socket_address(&config.host, config.port),
            timeout,
            keepalive,
            stream: None,
        };
        let counters = counters(Self::NAME).ok_or_else(|| ConfigError::new("", "no counters"))?;
        Ok(TcpLog {
            queue: LogQueue::start(Self::NAME, socket_queue(), sink, counters, &lifecycle(cx)?),
            timeout,
        })
    }
}

/// The largest UDP payload over IPv4; a larger entry is counted as failed, not sent.
pub const MAX_DATAGRAM: usize = 65_507;

/// `udp-log` configuration (Kong's fields).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UdpLogConfig {
    /// The collector's host name or IP address.
    pub host: String,
    /// The collector's port.
    pub port: u16,
    /// How long sending one datagram may take, in milliseconds (default 10000).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Kong's Lua hook: not supported; any value but `null` or `{}` is refused.
    #[serde(default)]
    pub custom_fields_by_lua: Option<serde_json::Value>,
}

/// The `udp-log` plugin. UDP gives no delivery guarantee: an entry counts as sent once
/// its datagram left (a datagram too large for UDP, about 64 KiB, is lost and counted).
#[derive(Debug)]
pub struct UdpLog {
    queue: LogQueue,
    timeout: Duration,
}

#[async_trait]
impl Plugin for UdpLog {
    fn on_log(&self, entry: &LogEntry<'_>) {
        if let Ok(datagram) = serde_json::to_vec(&kong_entry(entry)) {
            if datagram.len() > MAX_DATAGRAM {
                // It could never be sent: counted at once rather than retried.
                self.queue.count_failed(1);
                return;
            }
            self.queue.push(datagram);
        }
    }

    async fn drain(&self) {
        self.queue.drain(self.timeout).await;
    }
}

struct UdpSink {
    address: String,
    timeout: Duration,
    socket: Option<UdpSocket>,
}

#[async_trait]
impl Deliver for UdpSink {
    async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), String> {
        let socket = match self.socket.take() {
            Some(s) => s,
            None => {
                let bind = if self.address.starts_with('[') {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let s = UdpSocket::bind(bind)
                    .await
                    .map_err(|e| format!("cannot open a socket: {e}"))?;
                tokio::time::timeout(self.timeout, s.connect(&self.address))
                    .await
                    .map_err(|_| "resolving timed out".to_string())?
                    .map_err(|e| format!("cannot resolve: {e}"))?;
                s
            }
        };
        for datagram in batch {
            let sent = tokio::time::timeout(self.timeout, socket.send(datagram)).await;
            match sent {
                Ok(Ok(_)) => {}
                // The socket is dropped: the next batch resolves the name again.
                Ok(Err(e)) => return Err(format!("cannot send: {e}")),
                Err(_) => return Err("sending timed out".into()),
            }
        }
        self.socket = Some(socket);
        Ok(())
    }
}

impl BuildPlugin for UdpLog {
    const NAME: &'static str = "udp-log";
    /// Kong's priority for udp-log.
    const PRIORITY: i32 = 8;
    type Config = UdpLogConfig;

    fn build(config: UdpLogConfig, cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        reject_custom_fields_by_lua(&config.custom_fields_by_lua)?;
        check_host(&config.host)?;
        check_port(config.port)?;
        let timeout = millis("timeout", config.timeout)?;
        let sink = UdpSink {
            address: socket_address(&config.host, config.port),
            timeout,
            socket: None,
        };
        let counters = counters(Self::NAME).ok_or_else(|| ConfigError::new("", "no counters"))?;
        Ok(UdpLog {
            queue: LogQueue::start(Self::NAME, socket_queue(), sink, counters, &lifecycle(cx)?),
            timeout,
        })
    }
}
