//! The `pingway` binary: `run`, `validate`, `demo`, `schema`.

use clap::Parser;

/// mimalloc: measurably faster than the system allocator for Pingora's many small
/// per-request allocations (see benches/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Huge pages cost a proxy latency and memory (see `pingway::memory`).
    let thp = pingway::memory::disable_transparent_huge_pages();
    // RUST_LOG, default info; never request or response contents (see pingway::logging).
    pingway::logging::init();
    if let Err(e) = thp {
        log::warn!("could not turn transparent huge pages off: {e}");
    }
    let cli = pingway::cli::Cli::parse();
    let code = pingway::cli::run(cli, pingway::stock::registry());
    std::process::exit(code);
}
