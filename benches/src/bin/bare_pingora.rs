//! The floor Pingway is measured against: a bare Pingora 0.9.1 reverse proxy whose
//! `ProxyHttp` does nothing but return one `HttpPeer`.
//!
//! Built like the `pingway` binary (mimalloc global allocator, the workspace's release
//! profile with fat LTO and one codegen unit), so the difference between the two is
//! what Pingway does per request, not how it is compiled.
//!
//! ```text
//! bare-pingora --listen 127.0.0.1:8081 --upstream 127.0.0.1:8000 [--threads 1]
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use clap::Parser;
use pingora_core::modules::http::HttpModules;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "A bare Pingora reverse proxy to one upstream (benchmark floor)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// The one upstream, `IP:PORT`.
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Let idle worker threads steal work (Pingora's default is on; off pins each
    /// connection to one thread, which is what we compare with one worker).
    #[arg(long)]
    work_stealing: bool,
    /// Drop Pingora's default downstream modules (a response-compression module that is
    /// disabled but still visited on every request). Off by default: the floor is the
    /// plainest `ProxyHttp`.
    #[arg(long)]
    no_modules: bool,
}

/// The whole proxy: one upstream.
struct Bare {
    upstream: SocketAddr,
    no_modules: bool,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        if !self.no_modules {
            // What the trait's default does.
            modules.add_module(
                pingora_core::modules::http::compression::ResponseCompressionBuilder::enable(0),
            );
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    // The same allocator settings as the `pingway` binary, so that the floor is fair.
    let _ = pingway::memory::disable_transparent_huge_pages();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let conf = ServerConf {
        threads: args.threads,
        work_stealing: args.work_stealing,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        Bare {
            upstream: args.upstream,
            no_modules: args.no_modules,
        },
        "bare pingora",
    );
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.run_forever();
}
