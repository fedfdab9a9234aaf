//! Helpers for the authentication tests: a gateway with one echo backend, requests
//! with headers, and the echo as seen by the upstream.

#![allow(dead_code)]

use std::process::Command;

use crate::common::*;

/// A gateway with one `Echo` backend named `echo`. `routes` is the YAML list of routes
/// (each with `upstream: echo`), `rest` more top-level YAML (consumers, plugins).
pub struct AuthGateway {
    pub gw: GatewayProcess,
    pub backend: Backend,
    pub client: reqwest::Client,
}

/// The configuration text for `routes` and `rest` against `backend`.
pub fn config(backend: &Backend, routes: &str, rest: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]\nupstreams:\n  - name: echo\n    targets: [\"{}\"]\nroutes:\n{routes}\n{rest}\n",
        backend.addr
    )
}

impl AuthGateway {
    pub async fn start(routes: &str, rest: &str) -> AuthGateway {
        let backend = Backend::start("echo", Behaviour::Echo).await;
        let gw = GatewayProcess::start(&config(&backend, routes, rest)).await;
        AuthGateway {
            gw,
            backend,
            client: client(),
        }
    }

    /// A request builder for `method path`.
    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.client.request(m, self.gw.url(path))
    }

    /// GET `path` with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self.req("GET", path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send().await.expect("request")
    }

    /// A CORS preflight for `path`: OPTIONS with `Origin` and
    /// `Access-Control-Request-Method: GET`.
    pub async fn preflight(&self, path: &str) -> reqwest::Response {
        self.req("OPTIONS", path)
            .header("origin", "http://example.com")
            .header("access-control-request-method", "GET")
            .send()
            .await
            .expect("request")
    }
}

/// Asserts a 401/403 JSON answer with `message`, and returns the response headers.
pub async fn expect_error(
    resp: reqwest::Response,
    status: u16,
    message: &str,
) -> reqwest::header::HeaderMap {
    let headers = resp.headers().clone();
    let (got_status, got_message, _) = json_message(resp).await;
    assert_eq!((got_status, got_message.as_str()), (status, message));
    headers
}

/// Asserts a 200 from the echo backend and returns what the upstream received.
pub async fn expect_echo(resp: reqwest::Response) -> Echo {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "unexpected answer: {text}");
    Echo::parse(&text)
}

/// The value of `WWW-Authenticate`.
pub fn www(headers: &reqwest::header::HeaderMap) -> &str {
    headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Runs `pingway validate` on `yaml`; returns (success, output).
pub fn validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "gateway.yaml", &yaml.replace("{PORT}", "18080"));
    let out = Command::new(pingway_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .expect("run pingway validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
