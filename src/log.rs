//! Minimal leveled logging to stderr: one line per event, no dependencies.
//!
//! Callers are responsible for masking secrets (see [`crate::keys::mask`]);
//! nothing in the gateway ever passes a full key or token to these macros.

use std::sync::atomic::{AtomicU8, Ordering};

/// Log levels, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error = 0,
    /// Something looks wrong but the gateway goes on.
    Warn = 1,
    /// One line per request, start-up and job summaries.
    Info = 2,
    /// Retries, key state changes.
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

impl Level {
    /// Parse `LOG_LEVEL` (case-insensitive: error, warn/warning, info, debug/trace).
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" | "critical" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" | "trace" => Some(Level::Debug),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

/// Set the global level.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether messages at `level` are printed.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Lines waiting to be written by the flusher thread.
static BUFFER: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
/// Starts the flusher thread once.
static FLUSHER: std::sync::Once = std::sync::Once::new();
/// A buffer larger than this is written at once by the logging thread itself.
const MAX_BUFFERED: usize = 256 * 1024;
/// How often buffered lines are written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

fn buffer() -> std::sync::MutexGuard<'static, Vec<u8>> {
    BUFFER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Write every buffered line to stderr now (also called on shutdown).
pub fn flush() {
    use std::io::Write;
    let pending = std::mem::take(&mut *buffer());
    if !pending.is_empty() {
        let _ = std::io::stderr().lock().write_all(&pending);
    }
}

/// Print one line at `level` (use the macros instead).
///
/// The line is formatted into one buffer first (stderr is unbuffered, so
/// writing the pieces directly costs a syscall each). Info and debug lines are
/// batched and written every 50 ms by a background thread, so request logging
/// costs no syscall on the request path; warnings and errors are written at once.
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let urgent = level <= Level::Warn;
    // Formatted straight into the shared buffer: no per-line allocation.
    let full = {
        let mut buf = buffer();
        let _ = writeln!(
            buf,
            "{}.{:03} {:5} {}",
            now.as_secs(),
            now.subsec_millis(),
            level.label(),
            args
        );
        buf.len() > MAX_BUFFERED
    };
    if urgent || full {
        flush();
    } else {
        FLUSHER.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| {
                    loop {
                        std::thread::sleep(FLUSH_EVERY);
                        flush();
                    }
                });
        });
    }
}

/// Log at error level.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Error) { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } };
}
/// Log at warn level.
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Warn) { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } };
}
/// Log at info level.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Info) { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } };
}
/// Log at debug level.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { if $crate::log::enabled($crate::log::Level::Debug) { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } };
}
