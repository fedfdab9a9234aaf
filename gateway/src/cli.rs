//! The `pingway` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::demo::{self, DemoOptions};
use crate::explain::{self, ExplainRequest};
use crate::gateway::{validate_file, Gateway};
use crate::plugins::Registry;

/// Pingway: an API gateway on Pingora with Kong-compatible plugins.
#[derive(Debug, Parser)]
#[command(name = "pingway", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the configuration in FILE, reloading it when it changes or on SIGHUP; or,
    /// with `--kubernetes`, watch a Kubernetes cluster and serve what it says.
    Run {
        /// The YAML configuration.
        #[arg(
            short,
            long,
            value_name = "FILE",
            required_unless_present = "kubernetes",
            conflicts_with = "kubernetes"
        )]
        config: Option<PathBuf>,
        /// Do not watch the file (SIGHUP still reloads).
        #[arg(long)]
        no_watch: bool,
        /// The largest configuration file read, at the start and at each reload, in
        /// bytes (default: `PINGWAY_MAX_CONFIG_BYTES`, else 4 MiB). A larger file is
        /// refused and the running configuration kept. With `--kubernetes`, passed on
        /// to the watcher (whose default is 256 MiB).
        #[arg(long, value_name = "BYTES")]
        max_config_bytes: Option<u64>,
        /// Run the Kubernetes watcher and the gateway in one process: executes
        /// `pingway-k8s serve [ARGS...]` (the `pingway-k8s` binary next to this one, else
        /// on PATH). The arguments after `--kubernetes` are the watcher's (see
        /// `pingway-k8s serve --help`).
        #[arg(long)]
        kubernetes: bool,
        /// The watcher's arguments (with `--kubernetes`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            requires = "kubernetes",
            value_name = "ARGS"
        )]
        watcher_args: Vec<String>,
    },
    /// Check configuration files; print FILE:LINE:COLUMN: field: problem for each problem.
    Validate {
        /// The YAML configurations.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The largest file read, in bytes (default: `PINGWAY_MAX_CONFIG_BYTES`, else
        /// 4 MiB), as `pingway run --max-config-bytes`.
        #[arg(long, value_name = "BYTES")]
        max_config_bytes: Option<u64>,
    },
    /// Run the HTTP Echo walkthrough on this machine: two echo backends and the gateway.
    Demo {
        /// The demo configuration (the built-in copy is used when the file is missing).
        #[arg(long, default_value = "config/demo.yaml", value_name = "FILE")]
        config: PathBuf,
        /// Gateway port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Port of echo backend `one`.
        #[arg(long, default_value_t = 9001)]
        one_port: u16,
        /// Port of echo backend `two`.
        #[arg(long, default_value_t = 9002)]
        two_port: u16,
    },
    /// Print the configuration file's JSON Schema.
    Schema,
    /// Convert a Kong declarative file (kong.yml, decK state; YAML or JSON) into a
    /// Pingway configuration. Prints what cannot be carried over on stderr as
    /// FILE:LINE:COLUMN: path: what. Exits 0 when everything converted, 2 when
    /// something was reported (the configuration is still written), 1 when the file
    /// cannot be read.
    Convert {
        /// The Kong declarative file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write the configuration here instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The HTTP listener's address (Kong's proxy port by default).
        #[arg(long, default_value = "0.0.0.0:8000", value_name = "ADDRESS")]
        listen: String,
        /// The HTTPS listener's address, written when the file has certificates.
        #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDRESS")]
        https_listen: String,
        /// The admin API's address.
        #[arg(long, default_value = "127.0.0.1:8001", value_name = "ADDRESS")]
        admin_listen: String,
    },
    /// Explain which route would serve a request and why, its plugins, upstream and
    /// target, and what the upstream would see.
    Explain {
        /// The YAML configuration.
        #[arg(short, long, value_name = "FILE", default_value = "pingway.yaml")]
        config: PathBuf,
        /// The request method.
        #[arg(
            short = 'X',
            long = "request",
            default_value = "GET",
            value_name = "METHOD"
        )]
        method: String,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header", value_name = "HEADER")]
        headers: Vec<String>,
        /// The connection's address (the client, unless it is a trusted proxy).
        #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
        client_ip: String,
        /// Explain as if this consumer (id, username or custom id) had authenticated.
        #[arg(long, value_name = "CONSUMER")]
        consumer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// `http://host[:port]/path?query`, or `/path` with a `Host` header.
        #[arg(value_name = "URL")]
        url: String,
    },
}

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli, registry: Registry) -> i32 {
    use crate::config::limits;
    let flag = match &cli.command {
        Command::Run {
            max_config_bytes, ..
        }
        | Command::Validate {
            max_config_bytes, ..
        } => *max_config_bytes,
        _ => None,
    };
    let bound = limits::configured_max_file_bytes(flag, limits::MAX_FILE_BYTES)
        .and_then(|n| limits::set_max_file_bytes(n).map(|()| n));
    if let Err(e) = &bound {
        eprintln!("pingway: {e}");
        return 2;
    }
    match cli.command {
        Command::Run {
            kubernetes: true,
            mut watcher_args,
            max_config_bytes,
            ..
        } => {
            if let Some(n) = max_config_bytes {
                watcher_args.insert(0, format!("--max-config-bytes={n}"));
            }
            let err = crate::kubernetes::exec_watcher(&watcher_args);
            eprintln!("{err}");
            1
        }
        Command::Run {
            config, no_watch, ..
        } => {
            let Some(config) = config else {
                eprintln!("pingway run: --config FILE or --kubernetes is required");
                return 2;
            };
            let gateway = Gateway::builder()
                .registry(registry)
                .config_file(config)
                .watch_file(!no_watch)
                .build();
            match gateway {
                Ok(g) => g.run(),
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            }
        }
        Command::Validate { files, .. } => {
            let mut failed = false;
            for file in files {
                match validate_file(&file, &registry) {
                    Ok(rt) => println!(
                        "{}: ok ({} routes, {} upstreams)",
                        file.display(),
                        rt.routes.len(),
                        rt.upstreams.len()
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        failed = true;
                    }
                }
            }
            i32::from(failed)
        }
        Command::Demo {
            config,
            port,
            one_port,
            two_port,
        } => {
            let opts = DemoOptions {
                config,
                port,
                one_port,
                two_port,
            };
            match demo::run(&opts) {
                Ok(never) => match never {},
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            }
        }
        Command::Explain {
            config,
            method,
            headers,
            client_ip,
            consumer,
            json,
            url,
        } => {
            let runtime = match validate_file(&config, &registry) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("{e}");
                    return 1;
                }
            };
            let req = ExplainRequest::new(&method, &url, &headers)
                .and_then(|r| r.from_peer(&client_ip))
                .map(|r| r.as_consumer(consumer));
            match req.and_then(|r| explain::explain(&runtime, &r)) {
                Ok(e) if json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&e.to_json()).unwrap_or_default()
                    );
                    0
                }
                Ok(e) => {
                    print!("{e}");
                    0
                }
                Err(e) => {
                    eprintln!("{e}");
                    2
                }
            }
        }
        Command::Convert {
            file,
            output,
            listen,
            https_listen,
            admin_listen,
        } => {
            let options = crate::convert::ConvertOptions {
                listen,
                https_listen,
                admin_listen,
            };
            convert(&file, output.as_deref(), &options, &registry)
        }
        Command::Schema => {
            let schema = crate::config::schema::generate(&registry);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            0
        }
    }
}

/// `pingway convert`: returns the exit code.
fn convert(
    file: &std::path::Path,
    output: Option<&std::path::Path>,
    options: &crate::convert::ConvertOptions,
    registry: &Registry,
) -> i32 {
    use crate::convert::{convert_kong, ConvertError};
    let name = file.display().to_string();
    let text = match crate::config::file::read_config_file(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {name}: {e}");
            return 1;
        }
    };
    let conversion = match convert_kong(&text, options, registry) {
        Ok(c) => c,
        Err(ConvertError::Syntax(diags)) => {
            for d in diags {
                eprintln!("{}", d.display_in(&name));
            }
            return 1;
        }
        Err(e @ ConvertError::NotKong(_)) => {
            eprintln!("{name}: {e}");
            return 1;
        }
        Err(ConvertError::Refused(diags)) => {
            eprintln!("{name}: the converted configuration is refused by the gateway; please report this converter bug:");
            for d in diags {
                eprintln!("  {d}");
            }
            return 1;
        }
    };
    for item in conversion.report.items() {
        eprintln!("{}", item.display_in(&name));
    }
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &conversion.yaml) {
                eprintln!("cannot write {}: {e}", path.display());
                return 1;
            }
        }
        None => print!("{}", conversion.yaml),
    }
    if conversion.report.has_unsupported() {
        2
    } else {
        0
    }
}
