//! The `pingway` binary: `run`, `validate`, `demo`, `schema`.

use clap::Parser;

/// mimalloc: measurably faster than the system allocator for Pingora's many small
/// per-request allocations (see benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = pingway::cli::Cli::parse();
    let code = pingway::cli::run(cli, pingway::plugins::Registry::with_stock_plugins());
    std::process::exit(code);
}
