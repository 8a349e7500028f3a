//! Minimal leveled logging to stderr: one line per event, no dependencies.
//!
//! Callers are responsible for masking secrets (see [`crate::keys::mask`]);
//! nothing in the gateway ever passes a full key or token to these macros.
//!
//! Every field is written with its control characters escaped (`\n`, `\r`,
//! `\t`, `\x1b`, `\u{9b}`, …), so text from a client or from upstream (a
//! model name, Google's error message) can neither forge a line nor send
//! escape sequences to a terminal: one event is always one line.

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
        let start = buf.len();
        let _ = write!(buf, "{args}");
        escape_from(&mut buf, start);
        buf.push(b'\n');
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
        push_escaped(&mut buf, method.as_bytes());
        buf.push(b' ');
        push_escaped(&mut buf, path.as_bytes());
        buf.push(b' ');
        push_int(&mut buf, u64::from(status), 1);
        buf.push(b' ');
        push_int(&mut buf, tenths_ms / 10, 1);
        buf.push(b'.');
        push_int(&mut buf, tenths_ms % 10, 1);
        buf.extend_from_slice(b"ms model=");
        push_escaped(&mut buf, or_dash(model).as_bytes());
        buf.extend_from_slice(b" key=");
        push_escaped(&mut buf, or_dash(key).as_bytes());
        buf.push(b'\n');
        buf.len() > MAX_BUFFERED
    };
    after_write(full);
}

/// Whether `b` may start a control character in UTF-8: C0, DEL, or `0xC2`,
/// the lead byte of C1 (U+0080..U+009F) and of a few printable characters.
#[inline]
fn suspicious(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == 0xc2
}

/// Append `s` with its control characters escaped: `\n`, `\r`, `\t`, other
/// C0 and DEL as `\xNN`, C1 as `\u{NN}`. Text without any is copied as is
/// after one scan.
pub(crate) fn push_escaped(buf: &mut Vec<u8>, s: &[u8]) {
    if !s.iter().any(|b| suspicious(*b)) {
        buf.extend_from_slice(s);
        return;
    }
    let hex = |buf: &mut Vec<u8>, b: u8| {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        buf.push(DIGITS[usize::from(b >> 4)]);
        buf.push(DIGITS[usize::from(b & 15)]);
    };
    let mut copied = 0;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let c1 = b == 0xc2 && s.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n));
        if !(b < 0x20 || b == 0x7f || c1) {
            i += 1;
            continue;
        }
        buf.extend_from_slice(&s[copied..i]);
        match b {
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            _ if c1 => {
                buf.extend_from_slice(b"\\u{");
                hex(buf, s[i + 1]);
                buf.push(b'}');
                i += 1;
            }
            _ => {
                buf.extend_from_slice(b"\\x");
                hex(buf, b);
            }
        }
        i += 1;
        copied = i;
    }
    buf.extend_from_slice(&s[copied..]);
}

/// Escape (as [`push_escaped`]) what was written to `buf` from `start` on.
fn escape_from(buf: &mut Vec<u8>, start: usize) {
    if buf[start..].iter().any(|b| suspicious(*b)) {
        let tail = buf.split_off(start);
        push_escaped(buf, &tail);
    }
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

    fn escaped(s: &str) -> String {
        let mut b = b"keep".to_vec();
        push_escaped(&mut b, s.as_bytes());
        String::from_utf8(b).expect("utf8")
    }

    #[test]
    fn control_characters_are_escaped() {
        for (raw, want) in [
            ("plain text, ünïcödé © ¡", "plain text, ünïcödé © ¡"),
            ("", ""),
            ("x\n2026-01-01 ERROR forged", r"x\n2026-01-01 ERROR forged"),
            ("a\r\tb", r"a\r\tb"),
            ("\u{1b}[2J", r"\x1b[2J"),
            ("\0\u{7}\u{1f}\u{7f}", r"\x00\x07\x1f\x7f"),
            (
                "\u{9b}31m\u{80}\u{85}\u{9f}\u{a0}",
                "\\u{9b}31m\\u{80}\\u{85}\\u{9f}\u{a0}",
            ),
            ("end\n", r"end\n"),
        ] {
            assert_eq!(escaped(raw), format!("keep{want}"), "{raw:?}");
        }
        // A C1 lead byte at the very end (not valid UTF-8 on its own) is kept.
        let mut b = Vec::new();
        push_escaped(&mut b, &[b'a', 0xc2]);
        assert_eq!(b, [b'a', 0xc2]);
        // Only what follows `start` is rewritten.
        let mut b = b"1.000 INFO  ".to_vec();
        b.extend_from_slice(b"a\nb");
        escape_from(&mut b, 12);
        assert_eq!(b, br"1.000 INFO  a\nb");
    }
}
