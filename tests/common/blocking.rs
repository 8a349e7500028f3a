//! Blocking helpers for tests that drive the real binary as a child process:
//! collecting a pipe's output on a thread, and one HTTP/1.1 request per
//! connection (chunked answers decoded).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// Read `r` (a child's stdout or stderr) to its end on a thread; the buffer
/// fills as output arrives.
pub fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    collect_joinable(r).0
}

/// [`collect`], with the reading thread to join once the child has exited
/// (then the buffer holds everything it wrote).
pub fn collect_joinable(
    mut r: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let thread = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    (buf, thread)
}

/// A whole answer to [`http`].
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The status line and header block, as sent.
    pub headers: String,
    /// The body (dechunked), as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request to `addr` (`host:port`) on a fresh connection
/// (`Connection: close`), read to its end (20 s at most per read).
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A reset after the answer (the server closing first) is not an error here.
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Reply {
        status,
        headers: head,
        body: String::from_utf8(body).expect("a UTF-8 body"),
    }
}

/// Undo HTTP/1.1 chunked transfer coding.
pub fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&s[..eol]);
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size:?}"));
        if n == 0 {
            break;
        }
        let data = &s[eol + 2..];
        out.extend_from_slice(&data[..n]);
        s = data[n..].strip_prefix(b"\r\n").unwrap_or(&data[n..]);
    }
    out
}

/// The gateway binary in a child process (a clean environment: loopback, a
/// free port, debug log level, no jobs, plus `vars`), its stderr collected;
/// killed (by its id) when dropped.
pub struct Binary {
    child: std::process::Child,
    log: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// `http://HOST:PORT`, from its listening line.
    pub base: String,
}

impl Binary {
    /// Start it and wait (at most 20 s) for its listening line.
    pub fn start(vars: &[(&str, &str)]) -> Binary {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gemini-balance"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ENV_FILE", "/nonexistent/.env")
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_LEVEL", "debug")
            .env("CHECK_INTERVAL_HOURS", "0")
            .env("KEEPALIVE_MINUTES", "0")
            .env("SHUTDOWN_GRACE", "2");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (log, reader) = collect_joinable(child.stderr.take().unwrap());
        let mut bin = Binary {
            child,
            log,
            reader: Some(reader),
            base: String::new(),
        };
        let t = std::time::Instant::now();
        bin.base = loop {
            let text = bin.text();
            if let Some(a) = text
                .split("listening on http://")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                break format!("http://{a}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no listening line: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        bin
    }

    /// Everything it logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// SIGTERM, wait for the exit (at most 10 s), and return everything it logged.
    pub async fn stop(mut self) -> Vec<u8> {
        let pid = self.child.id().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let t = std::time::Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
