//! `pingway demo`: the HTTP Echo walkthrough, started as a user would start it.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// Kills the demo if the test fails before it is stopped on purpose.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_walkthrough_works_and_ctrl_c_stops_everything() {
    let (port, one, two) = (free_port(), free_port(), free_port());
    let mut child = KillOnDrop(
        Command::new(pingway_bin())
            .args(["demo", "--port", &port.to_string()])
            .args([
                "--one-port",
                &one.to_string(),
                "--two-port",
                &two.to_string(),
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    // Wait for both backends and the gateway without spending the rate limit of `/`:
    // probe the backends directly and the gateway through `/v2`.
    let up = wait_until(Duration::from_secs(20), || async {
        let ok = |r: reqwest::Result<reqwest::Response>, want: u16| {
            r.map(|r| r.status().as_u16() == want).unwrap_or(false)
        };
        ok(c.get(format!("http://127.0.0.1:{one}/")).send().await, 200)
            && ok(c.get(format!("http://127.0.0.1:{two}/")).send().await, 200)
            && ok(c.get(format!("{base}/v2")).send().await, 403)
    })
    .await;
    assert!(up, "demo did not start");

    // `/` is echo backend `one`, five requests a minute.
    let first = c.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit-minute"], "5");
    let body = first.text().await.unwrap();
    assert!(body.starts_with("GET / HTTP/1.1\r\n"), "{body}");
    assert!(body.contains("one says OK at "), "{body}");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            c.get(format!("{base}/"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    // Five allowed in the minute (the first above included), then 429 — unless the
    // minute rolled over during these requests, which restarts the count.
    assert!(
        statuses == [200, 200, 200, 200, 429] || statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429) || statuses.iter().all(|s| *s == 200));

    // `/v2` is `two`, open only to 54.13.21.1.
    let (status, message, _) =
        json_message(c.get(format!("{base}/v2")).send().await.unwrap()).await;
    assert_eq!(
        (status, message.as_str()),
        (403, "IP address not allowed: 127.0.0.1")
    );
    // The backends answer directly too, signed with their names.
    let direct = c
        .get(format!("http://127.0.0.1:{two}/x"))
        .send()
        .await
        .unwrap();
    assert!(direct.text().await.unwrap().contains("two says OK at "));

    // Ctrl-C stops the gateway and both backends.
    Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = status.expect("demo did not stop on SIGINT");
    assert!(status.success(), "{status:?}");
    let mut out = String::new();
    use std::io::Read;
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains(&format!("curl -i {base}/v2")), "{out}");
    for p in [port, one, two] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
            "port {p} still open"
        );
    }
}
