//! A real `redis-server` for the tests (the Debian package; scripts/test.sh
//! installs it where missing), on its own loopback port, killed when dropped.
//! Absent binary: the test is skipped with a printed reason, unless `CI` is
//! set (in CI it must exist, and its absence fails the test).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gemini_balance::store::Mode;

/// A running `redis-server`.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Start one (on `port`, or a free one). `None` (after printing why)
    /// when `redis-server` is not installed and `CI` is unset.
    pub fn start(port: Option<u16>) -> Option<RedisServer> {
        RedisServer::start_with(port, None)
    }

    /// [`RedisServer::start`], keeping its data in `dir` when given (an
    /// append-only file synced on every write, so a `kill -9` loses nothing
    /// it acknowledged, and a server started again on `dir` has it all).
    pub fn start_with(port: Option<u16>, dir: Option<&std::path::Path>) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed, and CI is set: it must be (scripts/prereqs.sh installs it)"
            );
            eprintln!(
                "\n\n*** SKIPPED: redis-server is not installed (scripts/prereqs.sh installs it) ***\n"
            );
            return None;
        }
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match dir {
            Some(d) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(d),
            None => cmd.args(["--appendonly", "no"]),
        };
        let child = cmd.stdout(Stdio::null()).spawn().unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(RedisServer { child, port })
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The store mode on this server, under the `gbtest:` prefix.
    pub fn mode(&self) -> Mode {
        Mode::Redis {
            url: self.url(),
            prefix: "gbtest:".into(),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
