//! The `pingway` binary: `run`, `validate`, `demo`, `schema`.

use clap::Parser;

/// mimalloc: measurably faster than the system allocator for Pingora's many small
/// per-request allocations (see benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Huge pages cost a proxy latency and memory (see `pingway::memory`).
    let thp = pingway::memory::disable_transparent_huge_pages();
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // The file watcher's backend logs every inotify event it reads at trace level, for
    // every file in the config's directory, where the log file often is: at `trace`, each
    // line logged would be an event that logs a line, without end. Its own events are
    // left out unless RUST_LOG names it.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("notify")) {
        logger.filter_module("notify", log::LevelFilter::Info);
    }
    logger.init();
    if let Err(e) = thp {
        log::warn!("could not turn transparent huge pages off: {e}");
    }
    let cli = pingway::cli::Cli::parse();
    let code = pingway::cli::run(cli, pingway::plugins::Registry::with_stock_plugins());
    std::process::exit(code);
}
