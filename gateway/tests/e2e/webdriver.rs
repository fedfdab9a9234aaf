//! A small W3C WebDriver client over `reqwest`: starts `chromedriver` (Debian's
//! `chromium-driver`) on a free port and drives a headless Chromium (Debian's
//! `chromium`). Both must be installed (`.ci/run` installs them); the test fails
//! otherwise. The session is closed and chromedriver's process group killed on drop.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{free_port, wait_until};

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// The Chromium binary: `CHROMIUM` if set, else the first of `chromium`,
/// `chromium-browser` on PATH.
fn chromium_binary() -> String {
    if let Ok(b) = std::env::var("CHROMIUM") {
        return b;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in path.split(':') {
            let p = std::path::Path::new(dir).join(name);
            if p.is_file() {
                return p.display().to_string();
            }
        }
    }
    panic!("chromium is required for this test: install Debian's `chromium` and `chromium-driver` (as .ci/run does)");
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session.
    pub async fn start() -> Browser {
        let binary = chromium_binary();
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that drop can end chromedriver and the browsers
            // it started together.
            .process_group(0)
            .spawn()
            .expect(
                "chromedriver is required for this test: install Debian's `chromium-driver` \
                 (apt-get install -y chromium chromium-driver), as .ci/run does",
            );
        let profile = tempfile::tempdir().expect("a profile directory");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a client");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            http,
            _profile: profile,
        };
        let status_url = browser.url("/status");
        let ready = wait_until(Duration::from_secs(20), || async {
            match browser.http.get(&status_url).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .map(|v| v["value"]["ready"] == true)
                    .unwrap_or(false),
                Err(_) => false,
            }
        })
        .await;
        assert!(ready, "chromedriver did not become ready on port {port}");
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": binary,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--no-first-run",
                            format!("--user-data-dir={}", browser._profile.path().display()),
                        ],
                    },
                },
            },
        });
        let created = browser.command("POST", "/session", Some(caps)).await;
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends a WebDriver command; returns its `value` (panics on a WebDriver error).
    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let req = match method {
            "POST" => self
                .http
                .post(self.url(path))
                .json(&body.unwrap_or(json!({}))),
            "DELETE" => self.http.delete(self.url(path)),
            _ => self.http.get(self.url(path)),
        };
        let resp = req.send().await.expect("chromedriver answers");
        let status = resp.status();
        let v: Value = resp.json().await.expect("a JSON answer");
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    /// Opens `url` (waits for the page to load).
    pub async fn goto(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        self.command("POST", &path, Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body: `return ...`) in the page; returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        self.command("POST", &path, Some(json!({ "script": script, "args": [] })))
            .await
    }

    /// Polls `script` until `ok` accepts its result or `timeout` passes; returns the
    /// last result and whether it was accepted.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        script: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> (Value, bool) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let v = self.eval(script).await;
            if ok(&v) {
                return (v, true);
            }
            if std::time::Instant::now() >= deadline {
                return (v, false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Close the session (Chromium quits), then end whatever is left of the group.
        if !self.session.is_empty() {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
            }
        }
        let pgid = self.driver.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this test created.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
