//! The deployment path, proven where no Docker engine runs.
//!
//! * The scratch smoke test: the static binary (scripts/build-static.sh) is
//!   copied into an otherwise empty directory holding only `etc/hosts` and
//!   `etc/resolv.conf` (what Docker provides to a FROM-scratch container), and
//!   run there with `chroot` exactly as the Dockerfile's final stage says:
//!   its COPY destination, USER, ENV, ENTRYPOINT and HEALTHCHECK. It checks
//!   /health, the uptime routes, a chat completion, the `healthcheck`
//!   subcommand, a graceful stop, and an upstream named through `/etc/hosts` and
//!   through DNS (`/etc/resolv.conf` → a responder on 127.0.0.1:53).
//!   It needs root (chroot); elsewhere it is skipped with a message.
//! * The Dockerfile's shape, `.dockerignore`, the Space settings (space.yaml
//!   against README.md's front matter), the publishing workflow, the Worker's
//!   settings, and the binary size stated in the README.
//!
//! The static binary is `$GEMINI_BALANCE_STATIC_BIN` (scripts/test.sh sets it,
//! and then a missing file fails), else `target/<arch>-unknown-linux-gnu/release/`
//! under `$CARGO_TARGET_DIR` or the repository.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common; // the harness; this suite uses only its blocking helpers

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::blocking::Reply;
use serde_json::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join(name))
        .unwrap_or_else(|e| panic!("cannot read {name}: {e}"))
}

/// Printed past the test harness's capture, so a skip is seen in `cargo test`.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

// ---------------------------------------------------------------------------
// The static binary
// ---------------------------------------------------------------------------

/// The static binary, or `None` (with the reason) when it is not built and
/// nobody asked for it explicitly.
fn static_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GEMINI_BALANCE_STATIC_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GEMINI_BALANCE_STATIC_BIN={} does not exist",
            p.display()
        );
        return Ok(p);
    }
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(Path::new(REPO).join("target"));
    for d in &dirs {
        let p = d.join(&triple).join("release").join("gemini-balance");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "the static binary is not built (run scripts/build-static.sh, or set GEMINI_BALANCE_STATIC_BIN); looked in {}",
        dirs.iter()
            .map(|d| d.join(&triple).join("release").display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn find_chroot() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("chroot"))
        .find(|p| p.is_file())
}

#[test]
fn static_binary_carries_its_tls_roots() {
    let bin = match static_binary() {
        Ok(b) => b,
        Err(why) => {
            note(&format!("SKIP static_binary_carries_its_tls_roots: {why}"));
            return;
        }
    };
    let bytes = std::fs::read(&bin).unwrap();
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    // Google's API chains to Google Trust Services; both compiled in (webpki-roots).
    for root in ["GTS Root R1", "GTS Root R4", "ISRG Root X1"] {
        assert!(has(root), "{root} is not compiled into {}", bin.display());
    }
    // Nothing points at a system certificate store a scratch image lacks.
    for path in ["/etc/ssl/certs", "ca-certificates.crt", "SSL_CERT_FILE"] {
        assert!(!has(path), "{} refers to {path}", bin.display());
    }
    // Statically linked: no ELF interpreter named.
    assert!(
        !has("/lib64/ld-linux") && !has("/lib/ld-linux"),
        "names a dynamic loader"
    );
    let size = bytes.len();
    assert!(size <= 8 * 1024 * 1024, "{size} bytes is over 8 MiB");
}

#[test]
fn release_profile_is_small_and_keeps_unwinding() {
    let toml = repo_file("Cargo.toml");
    let start = toml.find("[profile.release]").expect("a [profile.release]");
    let section = toml[start + 17..].split("\n[").next().unwrap();
    let settings: BTreeMap<String, String> = section
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect();
    let get = |k: &str| settings.get(k).map(String::as_str).unwrap_or("");
    assert!(["true", "fat"].contains(&get("lto")), "LTO: {settings:?}");
    assert_eq!(get("codegen-units"), "1");
    assert!(
        ["true", "symbols"].contains(&get("strip")),
        "strip: {settings:?}"
    );
    // A panicking request must be caught by the server's guard, not abort it.
    assert!(
        ["unwind", ""].contains(&get("panic")),
        "panic: {settings:?}"
    );
}

// ---------------------------------------------------------------------------
// The Dockerfile
// ---------------------------------------------------------------------------

/// One instruction: keyword (upper case) and its arguments (continuations joined).
#[derive(Debug, Clone)]
struct Instr {
    op: String,
    args: String,
}

fn dockerfile_stages() -> Vec<Vec<Instr>> {
    let text = repo_file("Dockerfile");
    let mut logical: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') && cur.is_empty() {
            continue;
        }
        if t.starts_with('#') {
            continue; // a comment inside a continued instruction
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        if !cur.trim().is_empty() {
            logical.push(std::mem::take(&mut cur));
        }
        cur.clear();
    }
    let mut stages: Vec<Vec<Instr>> = Vec::new();
    for l in logical {
        let (op, args) = l
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((l.trim(), ""));
        let ins = Instr {
            op: op.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if ins.op == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(s) = stages.last_mut() {
            s.push(ins);
        }
    }
    stages
}

/// What the final stage says to run, read from the Dockerfile.
struct Image {
    binary_path: String,
    user: String,
    env: Vec<(String, String)>,
    entrypoint: Vec<String>,
    healthcheck: Vec<String>,
    exposed: Vec<String>,
}

fn json_argv(s: &str, what: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(s)
        .unwrap_or_else(|e| panic!("{what} must be exec form (a JSON array), got {s:?}: {e}"));
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not an array"))
        .iter()
        .map(|x| x.as_str().expect("argv strings").to_string())
        .collect()
}

fn final_image() -> Image {
    let stages = dockerfile_stages();
    let last = stages.last().expect("Dockerfile has stages");
    let mut img = Image {
        binary_path: String::new(),
        user: String::new(),
        env: Vec::new(),
        entrypoint: Vec::new(),
        healthcheck: Vec::new(),
        exposed: Vec::new(),
    };
    for i in last {
        match i.op.as_str() {
            "COPY" => {
                let parts: Vec<&str> = i.args.split(' ').filter(|p| !p.starts_with("--")).collect();
                img.binary_path = parts.last().unwrap().to_string();
            }
            "USER" => img.user = i.args.clone(),
            "ENV" => {
                for kv in i.args.split(' ') {
                    let (k, v) = kv.split_once('=').expect("ENV in KEY=value form");
                    img.env.push((k.to_string(), v.to_string()));
                }
            }
            "ENTRYPOINT" => img.entrypoint = json_argv(&i.args, "ENTRYPOINT"),
            "HEALTHCHECK" => {
                let cmd = i
                    .args
                    .split_once("CMD ")
                    .expect("HEALTHCHECK ... CMD [...]")
                    .1;
                img.healthcheck = json_argv(cmd, "HEALTHCHECK CMD");
            }
            "EXPOSE" => img.exposed = i.args.split(' ').map(str::to_string).collect(),
            _ => {}
        }
    }
    img
}

#[test]
fn dockerfile_builds_with_the_script_and_ships_only_the_binary() {
    let stages = dockerfile_stages();
    assert!(stages.len() >= 2, "a multi-stage build");
    let build = &stages[0];
    assert!(
        build[0].args.contains(" AS build") || build[0].args.contains(" as build"),
        "the first stage is named build: {:?}",
        build[0]
    );
    assert!(
        build
            .iter()
            .any(|i| i.op == "RUN" && i.args.contains("scripts/build-static.sh")),
        "the build stage runs scripts/build-static.sh"
    );
    let last = stages.last().unwrap();
    assert_eq!(last[0].args, "scratch", "the final stage is FROM scratch");
    let copies: Vec<&Instr> = last
        .iter()
        .filter(|i| i.op == "COPY" || i.op == "ADD")
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "only the binary goes into the image: {copies:?}"
    );
    assert!(
        copies[0].args.starts_with("--from=build "),
        "{:?}",
        copies[0]
    );
    assert!(
        !last.iter().any(|i| i.op == "RUN"),
        "scratch has no shell: no RUN in the final stage"
    );

    let img = final_image();
    assert_eq!(img.binary_path, "/gemini-balance");
    let uid = img.user.split(':').next().unwrap();
    assert_eq!(uid, "1000", "runs as uid 1000, as Hugging Face does");
    assert_eq!(img.exposed, vec!["8000"]);
    assert!(
        img.env.contains(&("PORT".into(), "8000".into())),
        "{:?}",
        img.env
    );
    assert_eq!(img.entrypoint, vec![img.binary_path.clone()]);
    assert_eq!(
        img.healthcheck,
        vec![img.binary_path.clone(), "healthcheck".to_string()],
        "the HEALTHCHECK calls the binary itself (no curl in scratch)"
    );

    // The build context: what the build needs is in, secrets and bulk are out.
    let ignore = repo_file(".dockerignore");
    let rules: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for must in ["target/", ".git/", ".env", "**/node_modules/"] {
        assert!(rules.contains(&must), ".dockerignore lacks {must}");
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "scripts",
        "scripts/build-static.sh",
        "crates/fake-gemini",
    ] {
        assert!(
            !rules.iter().any(|r| r.trim_end_matches('/') == needed),
            ".dockerignore drops {needed}, which the build needs"
        );
        assert!(Path::new(REPO).join(needed).exists(), "{needed} missing");
    }
}

// ---------------------------------------------------------------------------
// The scratch smoke test
// ---------------------------------------------------------------------------

/// A process that is killed if a test panics before stopping it.
struct Proc {
    child: Option<Child>,
    name: &'static str,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn check_alive(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "{} exited with {status} (a dynamically linked binary cannot start in an empty root):\n{}",
                self.name,
                self.output()
            );
        }
    }

    /// SIGTERM, then wait (up to 15 s) for a clean exit.
    fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                let out = self.output();
                assert!(
                    st.success(),
                    "{} exited with {st} on SIGTERM:\n{out}",
                    self.name
                );
                return out;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not stop on SIGTERM:\n{}", self.name, self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The empty root: the binary where the Dockerfile puts it, etc/hosts and
/// etc/resolv.conf as Docker writes them. `base` holds it (`root/`) and the
/// processes' logs; removed on drop.
struct Root {
    base: PathBuf,
    dir: PathBuf,
    chroot: PathBuf,
    img: Image,
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

const HOSTS_NAME: &str = "gemini-upstream.hosts.test";
const DNS_NAME: &str = "gemini-upstream.dns.test";

impl Root {
    fn new(bin: &Path, chroot: PathBuf) -> Root {
        let img = final_image();
        let base = std::env::temp_dir().join(format!(
            "gemini-balance-scratch-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let dir = base.join("root");
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("logs")).unwrap();
        let target = dir.join(img.binary_path.trim_start_matches('/'));
        std::fs::copy(bin, &target).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.join("etc/hosts"),
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                 fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\n127.0.0.1\t{HOSTS_NAME}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("etc/resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n",
        )
        .unwrap();
        // Nothing else: no lib/, no dev/, no etc/ssl, no etc/passwd.
        let mut entries: Vec<String> = walk(&dir)
            .into_iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        entries.sort();
        assert_eq!(
            entries,
            vec![
                "etc".to_string(),
                "etc/hosts".into(),
                "etc/resolv.conf".into(),
                img.binary_path.trim_start_matches('/').into()
            ]
        );
        Root {
            base,
            dir,
            chroot,
            img,
        }
    }

    /// A command run inside the root as the image's USER, with only `env`.
    fn command(&self, argv: &[String], env: &[(&str, String)]) -> Command {
        let mut c = Command::new(&self.chroot);
        c.arg(format!("--userspec={}", self.img.user))
            .arg(&self.dir)
            .args(argv)
            .env_clear()
            .current_dir("/");
        for (k, v) in &self.img.env {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn spawn(&self, name: &'static str, argv: &[String], env: &[(&str, String)]) -> Proc {
        let log = self
            .base
            .join("logs")
            .join(format!("{}.log", name.replace(' ', "-")));
        let f = std::fs::File::create(&log).unwrap();
        let child = self
            .command(argv, env)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} with chroot: {e}"));
        Proc {
            child: Some(child),
            name,
            log,
        }
    }

    /// The HEALTHCHECK command, as Docker would run it: exit code and output.
    fn healthcheck(&self, port: u16) -> (bool, String) {
        let out = self
            .command(&self.img.healthcheck, &[("PORT", port.to_string())])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if p.is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request to the loopback `port` on a fresh connection.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    common::blocking::http(&format!("127.0.0.1:{port}"), method, path, headers, body)
}

fn wait_healthy(p: &mut Proc, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        p.check_alive();
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", "/health", &[], "").status == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never became healthy:\n{}",
            p.name,
            p.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chat(port: u16, path: &str, token: &str, text: &str) -> Reply {
    let body = serde_json::json!({
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": text}],
    })
    .to_string();
    http(
        port,
        "POST",
        path,
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        &body,
    )
}

fn assert_chat_answers(r: &Reply, text: &str) {
    assert_eq!(r.status, 200, "chat: {}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    let content = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        content.contains(text),
        "the answer {content:?} does not echo {text:?}"
    );
}

/// The uid a running process has (real uid, from /proc).
fn uid_of(pid: u32) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A tiny DNS server on 127.0.0.1:53: A records for `*.dns.test` → 127.0.0.1,
/// no AAAA records, NXDOMAIN for anything else. Remembers the names asked.
struct Dns {
    stop: Arc<AtomicBool>,
    asked: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dns {
    fn start() -> std::io::Result<Dns> {
        let sock = UdpSocket::bind("127.0.0.1:53")?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (s2, a2) = (stop.clone(), asked.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((reply, name)) = dns_answer(&buf[..n]) {
                    a2.lock().unwrap().push(name);
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        Ok(Dns {
            stop,
            asked,
            thread: Some(thread),
        })
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn dns_answer(q: &[u8]) -> Option<(Vec<u8>, String)> {
    if q.len() < 17 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    while *q.get(i)? != 0 {
        let len = q[i] as usize;
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + len)?).into_owned());
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let qend = i + 5;
    let name = labels.join(".").to_ascii_lowercase();
    let ours = name.ends_with(".dns.test");
    let answer = ours && qtype == 1;
    let mut r = Vec::new();
    r.extend_from_slice(&q[..2]); // id
    let rcode = if ours { 0 } else { 3 };
    r.extend_from_slice(&[0x81, 0x80 | rcode]);
    r.extend_from_slice(&[0, 1, 0, answer as u8, 0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..qend)?);
    if answer {
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some((r, name))
}

#[test]
fn scratch_image_needs_only_the_binary() {
    if effective_uid() != Some(0) {
        note(&format!(
            "SKIP scratch_image_needs_only_the_binary: chroot needs root (running as uid {}); \
             run it as root (as CI does) to prove the scratch image",
            effective_uid().map_or("unknown".to_string(), |u| u.to_string())
        ));
        return;
    }
    let bin = match static_binary() {
        Ok(b) => b,
        Err(why) => {
            note(&format!("SKIP scratch_image_needs_only_the_binary: {why}"));
            return;
        }
    };
    let Some(chroot) = find_chroot() else {
        note("SKIP scratch_image_needs_only_the_binary: no chroot command (coreutils)");
        return;
    };
    let root = Root::new(&bin, chroot);
    let entry = root.img.entrypoint.clone();

    // 1. `docker run IMAGE` with no keys: demo mode, token sk-demo.
    let port = free_port();
    let mut gw = root.spawn(
        "gateway (demo)",
        &entry,
        &[("PORT", port.to_string()), ("HOST", "127.0.0.1".into())],
    );
    wait_healthy(&mut gw, port);
    assert_eq!(
        uid_of(gw.pid()),
        1000,
        "the gateway runs as the image's user"
    );

    let health = http(port, "GET", "/health", &[], "");
    let v: Value = serde_json::from_str(&health.body).unwrap();
    assert_eq!(v["status"], "ok", "{}", health.body);
    assert!(v["keys"]["total"].as_u64().unwrap() >= 1);
    let root_page = http(port, "GET", "/", &[], "");
    assert_eq!(root_page.status, 200);
    assert!(
        root_page.body.contains("gemini-balance"),
        "{}",
        root_page.body
    );
    let head = http(port, "HEAD", "/", &[], "");
    assert_eq!(head.status, 200, "{}", head.headers);
    assert!(head.body.is_empty());

    assert_chat_answers(
        &chat(
            port,
            "/v1/chat/completions",
            "sk-demo",
            "Hello from scratch",
        ),
        "Hello from scratch",
    );
    assert_chat_answers(
        &chat(port, "/hf/v1/chat/completions", "sk-demo", "Hello via hf"),
        "Hello via hf",
    );
    assert_eq!(
        chat(port, "/v1/chat/completions", "sk-wrong", "x").status,
        401
    );

    let (ok, said) = root.healthcheck(port);
    assert!(ok, "healthcheck failed on a healthy server: {said}");
    assert_eq!(said, "healthy");

    let out = gw.stop();
    assert!(out.contains("sk-demo"), "demo mode shows its token:\n{out}");
    assert!(
        out.contains(&format!("config PORT={port}")),
        "start-up lists what it read:\n{out}"
    );
    let (ok, said) = root.healthcheck(port);
    assert!(!ok, "healthcheck passed with no server");
    assert_eq!(said, "unhealthy");

    // 2. A real configuration with the upstream named in /etc/hosts. The
    //    scheduler (re-verification) starts too: it needs random numbers,
    //    which must not need /dev/urandom.
    let fake_port = free_port();
    let mut fake = root.spawn(
        "fake upstream",
        &[
            entry[0].clone(),
            "fake".into(),
            "--port".into(),
            fake_port.to_string(),
        ],
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", fake_port)).is_err() {
        fake.check_alive();
        assert!(Instant::now() < deadline, "the fake never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = "AIzaSScratchTest000000000000000000wxyz";
    let run_named = |name: &str| {
        let port = free_port();
        let mut gw = root.spawn(
            "gateway (named upstream)",
            &entry,
            &[
                ("PORT", port.to_string()),
                ("HOST", "127.0.0.1".into()),
                ("API_KEYS", format!("[\"{key}\"]")),
                ("ALLOWED_TOKENS", "sk-scratch-0123456789".into()),
                ("BASE_URL", format!("http://{name}:{fake_port}/v1beta")),
            ],
        );
        wait_healthy(&mut gw, port);
        let text = format!("Resolved {name}");
        assert_chat_answers(
            &chat(port, "/v1/chat/completions", "sk-scratch-0123456789", &text),
            &text,
        );
        let out = gw.stop();
        assert!(
            out.contains("config API_KEYS="),
            "start-up lists API_KEYS:\n{out}"
        );
        assert!(!out.contains(key), "the key is masked in the log:\n{out}");
        assert!(
            !out.contains("sk-scratch-0123456789"),
            "the token is masked:\n{out}"
        );
    };
    run_named(HOSTS_NAME);

    // 3. The same upstream found through DNS (etc/resolv.conf → 127.0.0.1:53).
    match Dns::start() {
        Ok(dns) => {
            run_named(DNS_NAME);
            let asked = dns.asked.lock().unwrap().clone();
            assert!(
                asked.iter().any(|n| n == DNS_NAME),
                "the gateway did not ask DNS for {DNS_NAME}: {asked:?}"
            );
        }
        Err(e) => note(&format!(
            "SKIP the DNS part of scratch_image_needs_only_the_binary: cannot listen on 127.0.0.1:53 ({e})"
        )),
    }
    fake.stop();
}

// ---------------------------------------------------------------------------
// Hugging Face Space settings
// ---------------------------------------------------------------------------

/// Flat `key: value` YAML (what a Space's settings are), quotes removed.
fn flat_yaml(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| {
            assert!(
                !l.starts_with(' '),
                "nested YAML is not expected here: {l:?}"
            );
            let (k, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("not key: value: {l:?}"));
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

fn readme_front_matter() -> BTreeMap<String, String> {
    let readme = repo_file("README.md");
    let rest = readme
        .strip_prefix("---\n")
        .expect("README.md starts with --- (the Space's YAML front matter)");
    let end = rest.find("\n---\n").expect("front matter closes with ---");
    flat_yaml(&rest[..end + 1])
}

#[test]
fn space_yaml_and_readme_front_matter_agree() {
    let space = flat_yaml(&repo_file("space.yaml"));
    let front = readme_front_matter();
    assert_eq!(
        space, front,
        "space.yaml and README.md's front matter differ"
    );
    assert_eq!(space["sdk"], "docker");
    let img = final_image();
    assert_eq!(
        vec![space["app_port"].clone()],
        img.exposed,
        "app_port is the EXPOSEd port"
    );
    assert_eq!(space["app_port"], "8000");
    for k in ["title", "emoji", "short_description"] {
        assert!(
            !space.get(k).map(String::as_str).unwrap_or("").is_empty(),
            "{k} is set"
        );
    }
    assert!(
        space["short_description"].chars().count() <= 60,
        "Hugging Face allows 60 characters in short_description"
    );
    assert!(
        [
            "red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"
        ]
        .contains(&space["colorFrom"].as_str()),
        "colorFrom is one of Hugging Face's colors"
    );
}

#[test]
fn readme_explains_the_deployment() {
    let readme = repo_file("README.md");
    let deploy = &readme[readme.find("\n## Deploy").expect("a Deploy section")..];
    for must in [
        // No published Space to duplicate: the guide pushes this repository to one.
        "git remote add space https://huggingface.co/spaces/",
        "write",
        "wrangler login",
        "wrangler secret put SPACE_HOST",
        "keep_vars",
        "<your-subdomain>.workers.dev",
        "Not tested",
        "API_KEYS",
        "ALLOWED_TOKENS",
        "https://<user>-<space>.hf.space",
        "/hf/v1/chat/completions",
        "SPACE_HOST",
        "deploy/cloudflare-worker.js",
        "uptime-kuma",
        "KEEPALIVE_URL",
        "scripts/build-static.sh",
        "crates/fake-gemini",
        "docker build",
        "ghcr.io",
    ] {
        assert!(
            deploy.contains(must),
            "the Deploy section does not mention {must}"
        );
    }
    // The binary's size is stated next to the command that shows it.
    let line = deploy
        .lines()
        .find(|l| l.contains("ls -l") && l.contains("MB"))
        .expect("a line with the binary's size (… MB) and the `ls -l` command");
    let mb: f64 = line
        .split_whitespace()
        .zip(line.split_whitespace().skip(1))
        .find(|(_, unit)| unit.trim_matches(|c: char| !c.is_alphanumeric()) == "MB")
        .and_then(|(n, _)| {
            n.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
                .parse()
                .ok()
        })
        .expect("a number before MB");
    assert!(mb > 0.5 && mb <= 8.0, "stated size {mb} MB");
    if let Ok(bin) = static_binary() {
        let real = std::fs::metadata(&bin).unwrap().len() as f64 / 1e6;
        assert!(
            (real - mb).abs() / real < 0.25,
            "README says {mb} MB, the binary is {real:.1} MB: update the README"
        );
    }
}

// ---------------------------------------------------------------------------
// The Worker's settings and the publishing workflow
// ---------------------------------------------------------------------------

#[test]
fn worker_reads_the_space_host_from_a_variable() {
    let js = repo_file("deploy/cloudflare-worker.js");
    assert!(
        js.contains("env.SPACE_HOST"),
        "the Space host comes from a variable"
    );
    let code: String = js
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !code.contains(".hf.space\""),
        "no Space host is written into the code"
    );
    let toml = repo_file("deploy/wrangler.toml");
    assert!(toml.contains("main = \"cloudflare-worker.js\""));
    assert!(toml.contains("SPACE_HOST"));
    let pkg: Value = serde_json::from_str(&repo_file("tests/worker/package.json")).unwrap();
    let mf = pkg["devDependencies"]["miniflare"]
        .as_str()
        .expect("miniflare pinned");
    assert!(
        mf.chars().next().unwrap().is_ascii_digit(),
        "an exact version: {mf}"
    );
    assert!(
        Path::new(REPO)
            .join("tests/worker/package-lock.json")
            .is_file()
    );
}

#[test]
fn workflow_publishes_a_multi_arch_image_on_tags() {
    let dir = Path::new(REPO).join(".github/workflows");
    let mut found = false;
    for e in std::fs::read_dir(&dir).expect(".github/workflows") {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        if !text.contains("docker/build-push-action") {
            continue;
        }
        found = true;
        assert!(text.contains("tags: [\"v*\"]"), "runs on version tags");
        assert!(
            text.contains("ghcr.io"),
            "publishes to the GitHub container registry"
        );
        assert!(text.contains("packages: write"), "may write packages");
        assert!(text.contains("linux/amd64,linux/arm64"), "multi-arch");
        assert!(text.contains("push: true"));
        assert!(
            text.contains("scripts/build-static.sh"),
            "checks the static binary first"
        );
    }
    assert!(found, "no workflow builds the image");
}
