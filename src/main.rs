//! The `gemini-balance` command.
//!
//! * `gemini-balance` (or `serve`) — run the gateway; with neither `API_KEYS`
//!   nor `ALLOWED_TOKENS` set (or with `--demo` / `DEMO=true`) it runs against a
//!   built-in fake Gemini and prints how to call it.
//! * `gemini-balance healthcheck` — GET `/health` on the local port; exit 0 or 1
//!   (the Docker `HEALTHCHECK`, since a scratch image has no curl).
//! * `gemini-balance fake [--port N]` — run only the fake Gemini upstream (benchmark).
//!
//! The fake upstream (crate `fake-gemini`) is in the binary through the `demo`
//! feature, on by default; a build without it (`--no-default-features`) refuses
//! demo mode and `fake` with a clear error at start-up.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use gemini_balance::app::App;
use gemini_balance::config::Config;
use gemini_balance::{info, log, scheduler, server};

const USAGE: &str =
    "usage: gemini-balance [serve] [--demo] | healthcheck | fake [--port N] | --help";

/// What a build without the `demo` feature says when demo mode or `fake` is asked for.
#[cfg(not(feature = "demo"))]
const NO_DEMO: &str = "this build of gemini-balance has no built-in fake Gemini upstream (it was \
     built without the `demo` feature), so neither demo mode nor `fake`: set API_KEYS to your \
     Gemini API keys, or use a build with the default features";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut demo = false;
    let mut command = "serve";
    let mut port: Option<u16> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--demo" => demo = true,
            "serve" | "healthcheck" | "fake" => {
                command = if args[i] == "serve" {
                    "serve"
                } else if args[i] == "fake" {
                    "fake"
                } else {
                    "healthcheck"
                }
            }
            "--port" => {
                i += 1;
                port = args.get(i).and_then(|p| p.parse().ok());
                if port.is_none() {
                    eprintln!("--port needs a number\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
            "-h" | "--help" => {
                println!(
                    "{USAGE}\nConfiguration comes from the environment and .env; see .env.example."
                );
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("gemini-balance {}", gemini_balance::VERSION);
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        "healthcheck" => rt.block_on(healthcheck()),
        "fake" => rt.block_on(run_fake(port.unwrap_or(9000))),
        // On a worker thread, not in `block_on`: the accept loop then runs
        // where the connections run, and a new connection costs no wake-up
        // hand-off between the main thread and a worker.
        _ => rt.block_on(async move {
            tokio::spawn(serve(demo, port))
                .await
                .unwrap_or(ExitCode::FAILURE)
        }),
    }
}

#[cfg(feature = "demo")]
async fn run_fake(port: u16) -> ExitCode {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match server::listen(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "fake Gemini listening on http://{}/v1beta",
        listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    tokio::select! {
        _ = fake_gemini::serve(listener, fake_gemini::FakeState::new()) => {},
        _ = server::shutdown_signal() => {},
    }
    ExitCode::SUCCESS
}

#[cfg(not(feature = "demo"))]
async fn run_fake(_port: u16) -> ExitCode {
    eprintln!("{NO_DEMO}");
    ExitCode::from(2)
}

/// Demo mode: start the built-in fake Gemini and point `cfg` at it (demo keys
/// and the `sk-demo` token unless set). The fake stops when the value is dropped.
#[cfg(feature = "demo")]
async fn start_demo(cfg: &mut Config) -> Result<fake_gemini::Fake, ExitCode> {
    let f = match fake_gemini::Fake::start().await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot start the demo upstream: {e}");
            return Err(ExitCode::FAILURE);
        }
    };
    cfg.base_url = f.base_url();
    cfg.base_url_unversioned = false;
    if cfg.api_keys.is_empty() {
        cfg.api_keys = vec![
            "demo-key-1".into(),
            "demo-key-2".into(),
            "demo-key-3".into(),
        ];
        cfg.pin("API_KEYS", cfg.api_keys.join(","));
    }
    if cfg.allowed_tokens.is_empty() {
        cfg.allowed_tokens = vec![DEMO_TOKEN.into()];
        // Kept when settings change at run time (PATCH /admin/config).
        cfg.pin("ALLOWED_TOKENS", DEMO_TOKEN.into());
    }
    cfg.keepalive_url = None;
    Ok(f)
}

/// Demo mode without the fake compiled in: a clear start-up error.
#[cfg(not(feature = "demo"))]
async fn start_demo(_cfg: &mut Config) -> Result<(), ExitCode> {
    eprintln!("{NO_DEMO}");
    Err(ExitCode::from(2))
}

async fn serve(demo_flag: bool, port: Option<u16>) -> ExitCode {
    let mut extra: Vec<(&str, String)> = Vec::new();
    if demo_flag {
        extra.push(("DEMO", "true".into()));
    }
    if let Some(p) = port {
        extra.push(("PORT", p.to_string()));
    }
    let mut cfg = match Config::load_with(&extra) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    log::set_level(cfg.log_level);
    for (k, v) in &cfg.seen {
        info!("config {k}={v}");
    }
    for (level, note) in &cfg.notes {
        if log::enabled(*level) {
            log::write(*level, format_args!("{note}"));
        }
    }

    let mut _demo_upstream = None;
    if cfg.demo {
        match start_demo(&mut cfg).await {
            Ok(f) => _demo_upstream = Some(f),
            Err(code) => return code,
        }
    }

    let addr = format!("{}:{}", cfg.host, cfg.port);
    let listener = match server::listen(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}", bind_error(&addr, cfg.port, &e));
            return ExitCode::FAILURE;
        }
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    let banner = cfg.demo.then(|| demo_banner(&cfg, &local));
    let app = match App::open(cfg).await {
        Ok(app) => Arc::new(app),
        Err(e) => {
            eprintln!("cannot open the state store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let n = app.pool.len();
    info!(
        "gemini-balance {} listening on http://{} with {} {}",
        gemini_balance::VERSION,
        local,
        n,
        if n == 1 { "key" } else { "keys" }
    );
    if let Some(banner) = banner {
        println!("{banner}");
    }
    let _jobs = scheduler::start(app.clone()).await;
    server::serve(app.clone(), listener, server::shutdown_signal()).await;
    if let Err(e) = app.store.shutdown().await {
        gemini_balance::warn!("store: last changes not written at shutdown: {e}");
    }
    ExitCode::SUCCESS
}

/// The token demo mode accepts when `ALLOWED_TOKENS` is not set. It is public
/// (the README's first screen uses it), so the banner shows it in full; a
/// configured token is shown masked like every other secret.
const DEMO_TOKEN: &str = "sk-demo";

/// What demo mode prints on stdout: why it runs, and a call to try.
fn demo_banner(cfg: &Config, local: &str) -> String {
    let port = local.rsplit(':').next().unwrap_or("8000");
    let why = if cfg.seen.iter().any(|(k, _)| k == "DEMO") {
        "DEMO=true"
    } else {
        "neither API_KEYS nor ALLOWED_TOKENS is set"
    };
    let (auth, token_line) = match cfg.allowed_tokens.first() {
        Some(t) if t == DEMO_TOKEN => (format!("Bearer {DEMO_TOKEN}"), String::new()),
        Some(t) => (
            "Bearer $T".to_string(),
            format!(
                "T is your first ALLOWED_TOKENS entry ({}).\n",
                gemini_balance::keys::mask(t)
            ),
        ),
        None => ("Bearer anything".to_string(), String::new()),
    };
    format!(
        "\nDemo mode ({why}): answers come from a built-in fake Gemini, not from Google.\n\
         {token_line}Try:\n  curl http://127.0.0.1:{port}/v1/chat/completions \\\n    -H \"Authorization: {auth}\" -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"gemini-2.5-flash\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'\n"
    )
}

/// One line for a listener that could not be opened, saying what to change.
fn bind_error(addr: &str, port: u16, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: port {port} is in use ({e}); set PORT to another port"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "cannot listen on {addr}: permission denied for port {port}; set PORT to a port above 1023"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: {e}; set HOST to an address of this machine")
        }
        _ => format!("cannot listen on {addr}: {e}; check HOST and PORT"),
    }
}

/// GET /health on the local port; exit 0 on HTTP 200.
async fn healthcheck() -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = Config::load_with(&[("DEMO", "true".into())])
        .map(|c| c.port)
        .unwrap_or(8000);
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Some(true)) => {
            println!("healthy");
            ExitCode::SUCCESS
        }
        _ => {
            println!("unhealthy");
            ExitCode::FAILURE
        }
    }
}
