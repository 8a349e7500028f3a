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
    let full = {
        let mut buf = buffer();
        stamp(&mut buf, level);
        let _ = writeln!(buf, "{args}");
        buf.len() > MAX_BUFFERED
    };
    after_write(level <= Level::Warn || full);
}

/// The per-request info line, `METHOD PATH STATUS 1.2ms model=M key=K`,
/// written without `fmt` machinery (it is the one line every request logs).
pub fn request(method: &str, path: &str, status: u16, tenths_ms: u64, model: &str, key: &str) {
    if !enabled(Level::Info) {
        return;
    }
    let full = {
        let mut buf = buffer();
        stamp(&mut buf, Level::Info);
        for piece in [method, " ", path, " "] {
            buf.extend_from_slice(piece.as_bytes());
        }
        push_int(&mut buf, u64::from(status), 1);
        buf.push(b' ');
        push_int(&mut buf, tenths_ms / 10, 1);
        buf.push(b'.');
        push_int(&mut buf, tenths_ms % 10, 1);
        for piece in ["ms model=", or_dash(model), " key=", or_dash(key), "\n"] {
            buf.extend_from_slice(piece.as_bytes());
        }
        buf.len() > MAX_BUFFERED
    };
    after_write(full);
}

/// `-` for an empty field.
fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// `n` in decimal, zero-padded to `width` digits (also the stream translator's
/// chunk indices: no `fmt` machinery per line or chunk).
pub(crate) fn push_int(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 && digits.len() - i >= width {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// `SECONDS.MILLIS LEVEL ` (the level padded to five characters).
fn stamp(buf: &mut Vec<u8>, level: Level) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    push_int(buf, now.as_secs(), 1);
    buf.push(b'.');
    push_int(buf, u64::from(now.subsec_millis()), 3);
    buf.push(b' ');
    let label = level.label();
    buf.extend_from_slice(label.as_bytes());
    buf.extend(std::iter::repeat_n(b' ', 6 - label.len()));
}

/// Write now when `now` (urgent or a full buffer), else make sure the
/// flusher thread runs.
fn after_write(now: bool) {
    if now {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_same_shape_both_ways() {
        let mut a = Vec::new();
        push_int(&mut a, 7, 3);
        push_int(&mut a, 0, 1);
        push_int(&mut a, 1234567890, 1);
        assert_eq!(a, b"00701234567890");
        let mut b = Vec::new();
        stamp(&mut b, Level::Info);
        let text = String::from_utf8(b).expect("utf8");
        let (secs, rest) = text.split_once('.').expect("dot");
        assert!(
            secs.bytes().all(|c| c.is_ascii_digit()) && secs.len() >= 10,
            "{text}"
        );
        assert_eq!(&rest[3..], " INFO  ", "{text}");
        let mut c = Vec::new();
        stamp(&mut c, Level::Error);
        assert!(String::from_utf8(c).expect("utf8").ends_with(" ERROR "));
    }
}
