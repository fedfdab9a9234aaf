//! A real `redis-server` for tests: started on a free loopback port with persistence
//! off, waited on with `PING`, killed when dropped. Missing `redis-server` fails the
//! test with a clear message (never a skip).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct TestRedis {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl TestRedis {
    /// Starts one on a free port.
    pub fn start() -> TestRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        TestRedis::start_on(port)
    }

    /// Starts one on `port` (to bring a killed one back on the same address).
    pub fn start_on(port: u16) -> TestRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need a real redis-server on PATH \
                     (Debian: apt-get install -y redis-server): {e}"
                )
            });
        let mut server = TestRedis {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ping(port) {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                panic!("redis-server on port {port} exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} never answered PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    /// Stops (`true`: SIGSTOP) or continues (`false`: SIGCONT) it: a Redis that keeps
    /// its connections open but does not answer.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().map(Child::id).expect("running");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a Redis on `port` answers `PING`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
