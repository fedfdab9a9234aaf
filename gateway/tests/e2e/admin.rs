//! The admin listener: its JSON endpoints, token, reload and explain against the running
//! configuration, and what it refuses to start with.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

const TOKEN: &str = "adm1n-t0ken-x";
const KEY: &str = "alice-s3cret-key";

fn config(backend: &Backend, admin_port: u16, extra_route: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:{{PORT}}\"}}]
admin:
  listen: 127.0.0.1:{admin_port}
  token: {TOKEN}
upstreams:
  - {{name: one, targets: [\"{}\"]}}
routes:
  - name: api
    hosts: [api.example.com]
    paths: [/v1]
    strip_prefix: true
    upstream: one
    plugins:
      - {{name: key-auth}}
  - name: api-post
    hosts: [api.example.com]
    paths: [/v1]
    methods: [POST]
    upstream: one
  - name: fallback
    paths: [{{exact: /health}}]
    upstream: one
{extra_route}consumers:
  - username: alice
    keyauth_credentials: [{{key: {KEY}}}]
",
        backend.addr
    )
}

struct Admin {
    port: u16,
    client: reqwest::Client,
}

impl Admin {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answers");
        let status = r.status().as_u16();
        (status, r.json().await.expect("a JSON body"))
    }

    async fn text(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    async fn reload(&self) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/reload"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin answers");
        let status = r.status().as_u16();
        (status, r.json().await.expect("a JSON body"))
    }
}

async fn start() -> (GatewayProcess, Admin, Backend) {
    let backend = Backend::start("one", Behaviour::Echo).await;
    let admin_port = free_port();
    let gw =
        GatewayProcess::start_with_args(&config(&backend, admin_port, ""), &["--no-watch"]).await;
    let admin = Admin {
        port: admin_port,
        client: client(),
    };
    let up = wait_until(Duration::from_secs(10), || async {
        admin.client.get(admin.url("/status")).send().await.is_ok()
    })
    .await;
    assert!(up, "the admin API did not come up:\n{}", gw.log());
    (gw, admin, backend)
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn tokens_paths_and_methods_are_checked() {
    let (_gw, admin, _b) = start().await;
    let c = &admin.client;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic YWRtaW46eA=="),
        Some("Bearer adm1n-t0ken"),
    ] {
        let mut req = c.get(admin.url("/status"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("token"),
            "{body}"
        );
    }
    // Without the token, not even which paths exist is told.
    let r = c.get(admin.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(admin.url("/nope"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
    let r = c
        .post(admin.url("/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    assert!(r.json::<Value>().await.unwrap()["message"].is_string());
    let r = c
        .get(admin.url("/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn read_endpoints_show_the_running_config_without_secrets() {
    let (gw, admin, backend) = start().await;
    let (s, status) = admin.get("/status").await;
    assert_eq!(s, 200);
    let file = std::fs::read(&gw.config_path).unwrap();
    assert_eq!(
        status["config"]["digest"],
        format!("sha256:{}", sha256_hex(&file))
    );
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["config"]["loaded_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(status["last_reload_error"].is_null());

    let (s, config) = admin.text("/config").await;
    assert_eq!(s, 200);
    assert!(!config.contains(KEY), "{config}");
    assert!(!config.contains(TOKEN), "{config}");
    assert!(config.contains("<redacted>"), "{config}");
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["routes"][0]["name"], "api");

    let (_, routes) = admin.get("/routes").await;
    let names: Vec<&str> = routes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "api-post", "fallback"]);
    assert_eq!(routes[0]["plugins"][0]["name"], "key-auth");
    assert_eq!(routes[0]["plugins"][0]["scope"], "route");

    let (_, upstreams) = admin.get("/upstreams").await;
    assert_eq!(upstreams[0]["name"], "one");
    assert_eq!(
        upstreams[0]["targets"][0]["address"],
        backend.addr.to_string()
    );
    assert_eq!(upstreams[0]["targets"][0]["health"], "healthy");

    let (s, consumers) = admin.text("/consumers").await;
    assert_eq!(s, 200);
    assert!(!consumers.contains(KEY), "{consumers}");
    let consumers: Value = serde_json::from_str(&consumers).unwrap();
    assert_eq!(consumers[0]["username"], "alice");
    assert_eq!(consumers[0]["credentials"]["keyauth_credentials"], 1);

    // The proxy listener does not serve the admin API.
    let r = client()
        .get(gw.url("/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn reload_reports_problems_with_their_place_and_keeps_serving() {
    let (gw, admin, backend) = start().await;
    let good = std::fs::read_to_string(&gw.config_path).unwrap();
    // Line 5 (the token) is fine; a bad route field on a known line.
    let bad = good.replace("    strip_prefix: true\n", "    strip_prefix: maybe\n");
    let line = bad.lines().position(|l| l.contains("maybe")).unwrap() + 1;
    gw.write_config(&bad);
    let (s, body) = admin.reload().await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["problems"][0]["path"], "routes[0].strip_prefix");
    assert_eq!(body["problems"][0]["line"], line);
    let (_, status) = admin.get("/status").await;
    assert_eq!(
        status["last_reload_error"]["problems"][0]["line"], line,
        "{status}"
    );
    assert_eq!(status["reloads"]["failed"], 1);
    // Still serving the old configuration.
    let r = client().get(gw.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let admin_port = admin.port;
    let extra = "  - {name: added, paths: [/added], upstream: one}\n";
    gw.write_config(&config(&backend, admin_port, extra));
    let (s, body) = admin.reload().await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["outcome"], "applied");
    assert_eq!(body["routes"], 4);
    let (_, status) = admin.get("/status").await;
    assert!(status["last_reload_error"].is_null(), "{status}");
    assert_eq!(status["config"]["version"], 2);
    let (_, routes) = admin.get("/routes").await;
    assert_eq!(routes[3]["name"], "added");

    let (s, metrics) = admin.text("/metrics").await;
    assert_eq!(s, 200);
    assert!(
        metrics.contains("pingway_config_reloads_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pingway_config_reloads_total{outcome=\"applied\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn explain_on_the_admin_api_uses_the_running_config() {
    let (_gw, admin, backend) = start().await;
    let (s, e) = admin
        .get("/explain?url=http%3A%2F%2Fapi.example.com%2Fv1%2Fusers%3Fx%3D1&method=GET&header=X-Test%3A%201")
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["route"]["name"], "api");
    assert_eq!(e["route"]["host"]["kind"], "exact");
    assert_eq!(e["route"]["path"]["kind"], "prefix");
    assert_eq!(e["near_misses"][0]["name"], "api-post");
    assert_eq!(e["near_misses"][0]["failed"], "method");
    assert_eq!(e["plugins"][0]["name"], "key-auth");
    assert_eq!(e["upstream"]["target"]["address"], backend.addr.to_string());
    assert_eq!(e["upstream_request"]["path"], "/users?x=1");
    let (s, e) = admin.get("/explain?method=GET").await;
    assert_eq!(s, 400, "{e}");
}

#[test]
fn a_remote_admin_address_needs_allow_remote_and_never_a_proxy_address() {
    let dir = tempfile::tempdir().unwrap();
    let base = "listeners: [{address: 127.0.0.1:18080}]\nupstreams: [{name: u, targets: [127.0.0.1:1]}]\nroutes: [{name: r, upstream: u}]\n";
    let check = |admin: &str| {
        let file = write_file(dir.path(), "gw.yaml", &format!("{base}{admin}"));
        let out = Command::new(pingway_bin())
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = check("admin: {listen: 0.0.0.0:18001}\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("admin.listen") && err.contains("allow_remote"),
        "{err}"
    );
    let (code, err) = check("admin: {listen: 0.0.0.0:18001, allow_remote: true}\n");
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = check("admin: {listen: 127.0.0.1:18080}\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("proxy listener"), "{err}");
    let (code, _) = check("admin: {}\n");
    assert_eq!(code, Some(0));
}

#[test]
fn the_explain_subcommand_reads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "gw.yaml",
        "listeners: [{address: 127.0.0.1:18080}]
upstreams: [{name: u, targets: [127.0.0.1:19001]}]
routes:
  - {name: api, hosts: [api.example.com], paths: [/v1], strip_prefix: true, upstream: u}
  - {name: api-post, hosts: [api.example.com], paths: [/v1], methods: [POST], upstream: u}
",
    );
    let run = |args: &[&str]| {
        let out = Command::new(pingway_bin())
            .arg("explain")
            .arg("--config")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, err) = run(&["-H", "Host: api.example.com", "/v1/users"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("route: api (routes[0])"), "{text}");
    assert!(
        text.contains("api-post (routes[1]): method: not one of [POST]"),
        "{text}"
    );
    assert!(text.contains("upstream request: GET /users"), "{text}");
    assert!(text.contains("target now: 127.0.0.1:19001"), "{text}");

    let (code, json, err) = run(&["--json", "-X", "POST", "http://api.example.com/v1/x"]);
    assert_eq!(code, Some(0), "{err}");
    let e: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(e["route"]["name"], "api-post");
    assert_eq!(e["route"]["weight"], 1);

    let (code, _, err) = run(&["-H", "bad header", "/"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid header"), "{err}");
}
