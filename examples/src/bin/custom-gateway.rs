//! A gateway binary of your own: Pingway's command line, the stock plugins, and yours
//! (every plugin of `pingway_examples`).
//!
//! ```text
//! cargo run -p pingway-examples --bin custom-gateway -- run --config examples/custom-gateway.yaml
//! ```

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // As the bundled binary does: huge pages cost a proxy latency and memory.
    let _ = pingway::memory::disable_transparent_huge_pages();
    // RUST_LOG, default info; never request or response contents (see pingway::logging).
    pingway::logging::init();
    let mut registry = pingway::stock::registry();
    pingway_examples::register(&mut registry);
    let cli = pingway::cli::Cli::parse();
    std::process::exit(pingway::cli::run(cli, registry));
}
