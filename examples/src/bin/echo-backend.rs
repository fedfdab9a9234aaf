//! The HTTP Echo backend of the demo, on its own: `echo-backend NAME ADDRESS`.
//!
//! ```text
//! cargo run -p pingway-examples --bin echo-backend -- one 127.0.0.1:9001
//! ```

use pingora_core::server::Server;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "one".into());
    let address = args.next().unwrap_or_else(|| "127.0.0.1:9001".into());
    let mut server = match Server::new(None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot create the server: {e}");
            std::process::exit(1);
        }
    };
    server.bootstrap();
    server.add_service(pingway::demo::echo::echo_service(&name, &address));
    println!("echo backend `{name}` on http://{address}");
    server.run_forever();
}
