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
