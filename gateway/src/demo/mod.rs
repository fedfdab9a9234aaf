//! `pingway demo`: Kong's "HTTP Echo" walkthrough on one machine.
//!
//! One process runs two echo backends (`one`, `two`) and the gateway, loaded from
//! `config/demo.yaml` (or the copy built into the binary when that file is not there):
//! `/` goes to `one` with `rate-limiting` at 5 a minute, `/v2` to `two` with
//! `ip-restriction` allowing only 54.13.21.1. Ctrl-C stops everything.

pub mod echo;

use std::path::{Path, PathBuf};

use crate::config::{self, GatewayConfig, Listener, TargetConfig};
use crate::{Gateway, StartError};

/// The demo configuration shipped with the binary.
pub const DEMO_YAML: &str = include_str!("../../../config/demo.yaml");

/// Where the demo listens.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The configuration file to serve; the built-in copy is used when it does not exist.
    pub config: PathBuf,
    /// Gateway port.
    pub port: u16,
    /// Port of backend `one`.
    pub one_port: u16,
    /// Port of backend `two`.
    pub two_port: u16,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            config: PathBuf::from("config/demo.yaml"),
            port: 8080,
            one_port: 9001,
            two_port: 9002,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The gateway could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The demo configuration could not be prepared.
    #[error("cannot prepare the demo configuration: {0}")]
    Prepare(String),
}

/// The file the gateway serves: the given file as is when it exists and the ports are the
/// defaults (so edits to it are live), otherwise a copy with the requested ports in the
/// temporary directory.
fn demo_config_file(opts: &DemoOptions) -> Result<PathBuf, DemoError> {
    let defaults = DemoOptions::default();
    let same_ports = opts.port == defaults.port
        && opts.one_port == defaults.one_port
        && opts.two_port == defaults.two_port;
    if same_ports && opts.config.exists() {
        return Ok(opts.config.clone());
    }
    let text = std::fs::read_to_string(&opts.config).unwrap_or_else(|_| DEMO_YAML.to_string());
    let loaded = config::load_str(&text).map_err(|d| {
        DemoError::Prepare(crate::gateway::render_diagnostics(
            &opts.config.display().to_string(),
            &d,
        ))
    })?;
    let mut cfg: GatewayConfig = loaded.config;
    cfg.listeners = vec![Listener {
        address: format!("127.0.0.1:{}", opts.port),
        h2c: false,
        tls: None,
    }];
    for u in &mut cfg.upstreams {
        let port = match u.name.as_str() {
            "one" => opts.one_port,
            "two" => opts.two_port,
            _ => continue,
        };
        u.targets = vec![TargetConfig {
            address: format!("127.0.0.1:{port}"),
            weight: 100,
        }];
    }
    // JSON is YAML, so the copy needs no YAML writer.
    let json = serde_json::to_string_pretty(&cfg).map_err(|e| DemoError::Prepare(e.to_string()))?;
    let path = std::env::temp_dir().join(format!("pingway-demo-{}.yaml", std::process::id()));
    std::fs::write(&path, json)
        .map_err(|e| DemoError::Prepare(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// The walkthrough printed once everything listens.
pub fn banner(config: &Path, port: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    format!(
        "\
Pingway demo: the HTTP Echo walkthrough
  gateway  {base}    (config: {config}, edits are live)
  one      /   -> echo backend `one`, rate-limiting 5/minute per client
  two      /v2 -> echo backend `two`, ip-restriction allowing only 54.13.21.1

Try:
  curl -i {base}/
      200 from `one`, with x-ratelimit-limit-minute: 5 and x-ratelimit-remaining-minute
  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}}\\n' {base}/; done
      the sixth request in a minute gets 429 {{\"message\":\"API rate limit exceeded\"}}
  curl -i {base}/v2
      403 {{\"message\":\"IP address not allowed: 127.0.0.1\"}}
  curl -i {base}/nowhere -H 'Host: example.com'
      still `one`: / is a prefix of every path

Ctrl-C stops the gateway and both backends.
",
        config = config.display()
    )
}

/// Runs the demo until Ctrl-C.
pub fn run(opts: &DemoOptions) -> Result<std::convert::Infallible, DemoError> {
    let file = demo_config_file(opts)?;
    let gateway = Gateway::builder()
        .config_file(&file)
        .add_service(echo::echo_service(
            "one",
            &format!("127.0.0.1:{}", opts.one_port),
        ))
        .add_service(echo::echo_service(
            "two",
            &format!("127.0.0.1:{}", opts.two_port),
        ))
        .build()?;
    for port in [opts.one_port, opts.two_port] {
        std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|source| StartError::Listen {
            address: format!("127.0.0.1:{port}"),
            source,
        })?;
    }
    let server = gateway.into_server()?;
    println!("{}", banner(&file, opts.port));
    server.run_forever()
}
