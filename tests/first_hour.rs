//! The first hour: configuration mistakes a newcomer
//! makes, checked through the real binary's exit code, stderr and stdout (with
//! the environment cleared and no `.env` read), plus two in-process checks
//! (`/verify` on pool keys and a `BASE_URL` without an API version).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::blocking::{Reply, collect, http};
use gemini_balance::keys::mask;
use http::{Method, StatusCode};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_gemini-balance");

/// The binary with an empty environment: only `PATH`, no `.env`, a loopback
/// listener on a free port, no background jobs, plus `vars`.
fn command(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENV_FILE", "/nonexistent/first-hour/.env")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("CHECK_INTERVAL_HOURS", "0")
        .env("KEEPALIVE_MINUTES", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

/// A running process whose stdout and stderr are collected; killed (by its
/// id) when dropped.
struct Proc {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
}

impl Proc {
    fn spawn(args: &[&str], vars: &[(&str, &str)]) -> Proc {
        let mut child = command(args, vars).spawn().expect("the binary starts");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Proc { child, out, err }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned()
    }

    /// Wait until `needle` shows up in stdout or stderr; the text after it up
    /// to the next whitespace.
    fn wait_for(&mut self, needle: &str) -> String {
        let t = Instant::now();
        loop {
            for text in [self.stderr(), self.stdout()] {
                if let Some(rest) = text.split(needle).nth(1) {
                    return rest.split_whitespace().next().unwrap_or("").to_string();
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "exited ({status}) before {needle:?}:\n{}\n{}",
                    self.stderr(),
                    self.stdout()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no {needle:?} within 20 s:\n{}\n{}",
                self.stderr(),
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The gateway's address, from its listening line.
    fn gateway_addr(&mut self) -> String {
        self.wait_for("listening on http://")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the binary expecting it to stop on its own within 10 s: (exit code,
/// stderr, stdout). A gateway that starts instead is killed and reported as
/// `None` (and its output).
fn run_to_exit(vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut p = Proc::spawn(&[], vars);
    let t = Instant::now();
    loop {
        if let Ok(Some(status)) = p.child.try_wait() {
            // Let the reader threads drain the pipes.
            std::thread::sleep(Duration::from_millis(100));
            return (status.code(), p.stderr(), p.stdout());
        }
        if t.elapsed() > Duration::from_secs(10) {
            return (None, p.stderr(), p.stdout());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fake Gemini upstream in its own process: (process, `http://ADDR`).
fn fake() -> (Proc, String) {
    let mut p = Proc::spawn(&["fake", "--port", "0"], &[]);
    let addr = p.wait_for("fake Gemini listening on http://");
    let origin = format!("http://{}", addr.trim_end_matches("/v1beta"));
    (p, origin)
}

fn chat(addr: &str, token: &str, text: &str) -> Reply {
    let body =
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": text}]});
    http(
        addr,
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    )
}

fn assert_answers(r: &Reply, text: &str) {
    assert_eq!(r.status, 200, "{}", r.body);
    let said = r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(said.contains(text), "{said}");
}

// ---------------------------------------------------------------------------
// demo mode only when asked for (or nothing is set)
// ---------------------------------------------------------------------------

#[test]
fn a_misspelled_api_keys_stops_start_up_and_names_the_variable() {
    // Built at run time so that no key-shaped literal is committed.
    let key = format!("AIza{}", "FirstHourCANARY0000000000000000wxyz");
    let key = key.as_str();
    for (typo, suggestion) in [
        ("API_KEY", "API_KEY"),
        ("api_keys", "api_keys"),
        ("APIKEYS", "APIKEYS"),
        ("GEMINI_API_KEY", "GEMINI_API_KEY"),
    ] {
        let (code, err, out) = run_to_exit(&[
            (typo, key),
            ("ALLOWED_TOKENS", r#"["sk-first-hour-000001"]"#),
        ]);
        assert!(
            code.is_some_and(|c| c != 0),
            "{typo}: started anyway ({code:?}):\n{err}\n{out}"
        );
        assert!(err.contains("API_KEYS"), "{typo}: {err}");
        assert!(
            err.contains(&format!("{suggestion} is set")),
            "{typo}: no near-miss hint: {err}"
        );
        assert!(!err.contains(key) && !out.contains(key), "{err}{out}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // A near miss alone does not silently turn into demo mode either.
    let (code, err, _) = run_to_exit(&[("API_KEY", key)]);
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {err}");
    assert!(err.contains("did you mean API_KEYS"), "{err}");
}

#[test]
fn nothing_set_runs_the_demo_and_health_says_so() {
    let mut gw = Proc::spawn(&[], &[]);
    let addr = gw.gateway_addr();
    let health = http(&addr, "GET", "/health", &[], "").json();
    assert_eq!(health["mode"], "demo", "{health}");
    assert_answers(&chat(&addr, "sk-demo", "Hello demo"), "Hello demo");
    // The built-in token is public (the README names it): shown in full.
    gw.wait_for("Bearer sk-demo");
}

#[test]
fn demo_true_serves_the_fake_with_the_configured_token_masked() {
    let token = "sk-firsthour-CANARY-123456";
    let mut gw = Proc::spawn(
        &[],
        &[
            ("DEMO", "true"),
            ("ALLOWED_TOKENS", &format!("[\"{token}\"]")),
        ],
    );
    let addr = gw.gateway_addr();
    gw.wait_for("Demo mode");
    assert_eq!(
        http(&addr, "GET", "/health", &[], "").json()["mode"],
        "demo"
    );
    assert_eq!(chat(&addr, "sk-demo", "x").status, 401);
    assert_answers(&chat(&addr, token, "Hello fake"), "Hello fake");
    std::thread::sleep(Duration::from_millis(200));
    let (out, err) = (gw.stdout(), gw.stderr());
    assert!(
        !out.contains(token) && !err.contains(token),
        "the configured token is printed in clear:\n{out}\n{err}"
    );
    assert!(
        out.contains(&mask(token)),
        "the banner names it masked: {out}"
    );
}

// ---------------------------------------------------------------------------
// quoted values and keys holding separators
// ---------------------------------------------------------------------------

#[test]
fn quoted_values_are_unquoted_not_garbage() {
    let (_f, origin) = fake();
    let keys = ["good-key-aaaa0001", "good-key-bbbb0002"];
    let token = "sk-quoted-token-0001";
    let admin = "adm-quoted-admin-0001";
    let mut gw = Proc::spawn(
        &[],
        &[
            // What a shell line pasted into a Space secret or an --env-file holds.
            ("API_KEYS", &format!("'[\"{}\",\"{}\"]'", keys[0], keys[1])),
            ("ALLOWED_TOKENS", &format!("'[\"{token}\"]'")),
            ("AUTH_TOKEN", &format!("\"{admin}\"")),
            ("BASE_URL", &format!("\"{origin}/v1beta\"")),
            ("MAX_RETRIES", "'2'"),
        ],
    );
    let addr = gw.gateway_addr();
    assert_answers(&chat(&addr, token, "quoted"), "quoted");
    let status = http(
        &addr,
        "GET",
        "/status",
        &[("Authorization", &format!("Bearer {admin}"))],
        "",
    );
    assert_eq!(status.status, 200, "{}", status.body);
    let shown: Vec<String> = status.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown, vec![mask(keys[0]), mask(keys[1])]);
    assert!(!status.body.contains(keys[0]) && !status.body.contains(keys[1]));
}

#[test]
fn a_key_holding_whitespace_or_a_comma_is_an_error() {
    for (var, value) in [
        ("API_KEYS", r#"["good-key-0001 good-key-0002"]"#),
        ("API_KEYS", "good-key-0001 good-key-0002"),
        ("ALLOWED_TOKENS", r#"["sk-one,sk-two"]"#),
        ("API_KEYS", r#"'["good-key-0001","good-key-0002"]"#),
    ] {
        let mut vars = vec![
            ("API_KEYS", r#"["good-key-0000000001"]"#),
            ("ALLOWED_TOKENS", r#"["sk-first-hour-000001"]"#),
        ];
        vars.retain(|(k, _)| *k != var);
        vars.push((var, value));
        let (code, err, out) = run_to_exit(&vars);
        assert_eq!(code, Some(2), "{var}={value} accepted:\n{err}\n{out}");
        assert!(
            err.starts_with(&format!("configuration error: {var}:")),
            "{err}"
        );
        assert!(
            !err.contains("good-key-0001") && !err.contains("sk-one"),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------
// BASE_URL without an API version
// ---------------------------------------------------------------------------

#[test]
fn a_base_url_without_a_path_gets_v1beta() {
    let (_f, origin) = fake();
    let mut gw = Proc::spawn(
        &[],
        &[
            ("API_KEYS", r#"["good-key-0000000001"]"#),
            ("ALLOWED_TOKENS", r#"["sk-first-hour-000001"]"#),
            ("BASE_URL", &origin),
        ],
    );
    let addr = gw.gateway_addr();
    assert_answers(
        &chat(&addr, "sk-first-hour-000001", "versioned"),
        "versioned",
    );
    let err = gw.stderr();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("BASE_URL") && l.contains("/v1beta") && !l.contains("config "))
        .collect();
    assert_eq!(lines.len(), 1, "one line says /v1beta was added:\n{err}");
}

// ---------------------------------------------------------------------------
// numbers, plurals, a port in use
// ---------------------------------------------------------------------------

#[test]
fn an_out_of_range_port_names_the_range() {
    let (code, err, _) = run_to_exit(&[
        ("API_KEYS", r#"["good-key-0000000001"]"#),
        ("ALLOWED_TOKENS", r#"["sk-first-hour-000001"]"#),
        ("PORT", "99999"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("PORT") && err.contains("1–65535"), "{err}");
    assert!(!err.contains("non-negative"), "{err}");
}

#[test]
fn a_port_in_use_suggests_setting_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, err, _) = run_to_exit(&[
        ("API_KEYS", r#"["good-key-0000000001"]"#),
        ("ALLOWED_TOKENS", r#"["sk-first-hour-000001"]"#),
        ("PORT", &port),
    ]);
    assert!(code.is_some_and(|c| c != 0), "{code:?}: {err}");
    assert!(err.contains(&format!("port {port} is in use")), "{err}");
    assert!(err.contains("set PORT"), "{err}");
    drop(taken);
}

#[test]
fn one_key_is_one_key() {
    let mut gw = Proc::spawn(
        &[],
        &[
            ("API_KEYS", r#"["good-key-0000000001"]"#),
            ("ALLOWED_TOKENS", r#"["sk-first-hour-000001"]"#),
        ],
    );
    let rest_of_line = gw.wait_for("listening on http://");
    assert!(!rest_of_line.is_empty());
    let err = gw.stderr();
    let line = err.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(line.ends_with("with 1 key"), "{line}");
}

// ---------------------------------------------------------------------------
// In-process: /verify and /health agree; a 404 names BASE_URL
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_pool_key_verify_called_bad_is_disabled_in_health() {
    let gw = common::start(&[("API_KEYS", r#"["bad-key-00000001","good-key-0000001"]"#)]).await;
    let health = common::get(&gw, "/health").await.json();
    assert_eq!(health["mode"], "gateway", "{health}");
    assert_eq!(health["keys"]["active"], 2, "{health}");
    let r = common::send(
        Method::POST,
        &gw.url("/verify?format=json"),
        &[
            ("authorization", &format!("Bearer {}", common::TOKEN)),
            ("x-goog-api-key", "bad-key-00000001"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["bad"], 1, "{}", r.text());
    let health = common::get(&gw, "/health").await.json();
    assert_eq!(health["keys"]["disabled"], 1, "{health}");
    assert_eq!(health["keys"]["active"], 1, "{health}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_404_behind_an_unversioned_base_url_names_base_url() {
    let fake = fake_gemini::Fake::start().await.unwrap();
    let base = format!("{}/proxy", fake.base_url().trim_end_matches("/v1beta"));
    let gw = common::start_with_fake(fake, &[("BASE_URL", &base)]).await;
    assert!(gw.app.cfg().base_url_unversioned);
    let r = common::post_json(
        &gw,
        "/v1/chat/completions",
        &json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("BASE_URL"), "{msg}");
    let r = common::send(
        Method::POST,
        &gw.url("/v1beta/models/gemini-2.5-flash:generateContent"),
        &[
            ("x-goog-api-key", common::TOKEN),
            ("content-type", "application/json"),
        ],
        r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("BASE_URL"), "{msg}");
    gw.shutdown().await;
}
