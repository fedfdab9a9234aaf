//! The "HTTP Echo" backend of Kong's Istio walkthroughs: it answers with the request line,
//! the headers it received, the body, and `<name> says OK at <time>`.

use std::time::SystemTime;

use async_trait::async_trait;
use http::Response;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::services::listening::Service;

/// Bodies longer than this are cut in the echo.
const MAX_ECHO_BODY: usize = 1 << 20;

/// An echo backend named `name` (the demo runs `one` and `two`).
pub struct EchoApp {
    name: String,
}

impl EchoApp {
    /// A backend that signs its answers with `name`.
    pub fn new(name: impl Into<String>) -> Self {
        EchoApp { name: name.into() }
    }
}

/// A listening Pingora service running an [`EchoApp`] on `address`.
pub fn echo_service(name: &str, address: &str) -> Service<EchoApp> {
    let mut service = Service::new(format!("echo {name}"), EchoApp::new(name));
    service.add_tcp(address);
    service
}

#[async_trait]
impl ServeHttp for EchoApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut out = Vec::with_capacity(512);
        {
            let req = session.req_header();
            let version = match req.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            };
            let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
            out.extend_from_slice(format!("{} {} {}\r\n", req.method, target, version).as_bytes());
            for (name, value) in req.headers.iter() {
                out.extend_from_slice(name.as_str().as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
        }
        let mut body_len = 0;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            let room = MAX_ECHO_BODY.saturating_sub(body_len);
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            body_len += chunk.len();
        }
        out.extend_from_slice(
            format!(
                "{} says OK at {}\n",
                self.name,
                httpdate::fmt_http_date(SystemTime::now())
            )
            .as_bytes(),
        );
        Response::builder()
            .status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .header("content-length", out.len())
            .header("x-echo-backend", self.name.as_str())
            .body(out)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
