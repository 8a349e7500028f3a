//! The build uses vendor/hyper (crates.io's hyper plus vendor/hyper.patch),
//! not crates.io's hyper: Cargo.toml's `[patch.crates-io]` only takes effect
//! while the vendored version satisfies every crate that asks for hyper, and
//! otherwise cargo quietly builds crates.io's copy, whose 16 KB of buffers per
//! HTTP/1 connection BENCHMARKS.md's silent-stream rows would then show.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test: failing loudly is the point

use std::fs;

/// Cargo.lock's `[[package]]` entry for `name`.
fn lock_entry(lock: &str, name: &str) -> String {
    let head = format!("[[package]]\nname = \"{name}\"\n");
    let at = lock
        .find(&head)
        .unwrap_or_else(|| panic!("{name} is not in Cargo.lock"));
    let rest = &lock[at + head.len()..];
    rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
}

#[test]
fn the_lock_takes_hyper_from_vendor_not_from_crates_io() {
    let lock = fs::read_to_string("Cargo.lock").unwrap();
    let entry = lock_entry(&lock, "hyper");
    assert!(
        !entry.contains("source ="),
        "Cargo.lock builds hyper from a registry ({entry}): the vendored version no longer \
         satisfies some dependency; run scripts/vendor-hyper.sh VERSION"
    );
    // Exactly one hyper in the build.
    assert_eq!(lock.matches("\nname = \"hyper\"\n").count(), 1);
    let manifest = fs::read_to_string("vendor/hyper/Cargo.toml").unwrap();
    let version = entry.lines().next().unwrap();
    assert!(
        manifest.contains(&format!("\n{version}\n")),
        "vendor/hyper is not the locked {version}"
    );
}

#[test]
fn the_vendored_hyper_carries_the_patch() {
    let io = fs::read_to_string("vendor/hyper/src/proto/h1/io.rs").unwrap();
    assert!(io.contains("next: INIT_READ_SIZE,"), "reads start at 1 KiB");
    assert!(
        io.contains("headers: Cursor::new(Vec::new()),"),
        "the head buffer grows on first use"
    );
    let dispatch = fs::read_to_string("vendor/hyper/src/client/dispatch.rs").unwrap();
    assert!(
        dispatch.contains("struct Envelope<T, U>(Option<Box<(T, Callback<T, U>)>>);"),
        "a client connection's queued requests are boxed"
    );
    let client = fs::read_to_string("vendor/hyper/src/proto/h2/client.rs").unwrap();
    assert!(
        client.contains("task: Pin<Box<ConnTask<T, B>>>,"),
        "the HTTP/2 connection task is boxed"
    );
    // The patch file names the same changes, so scripts/vendor-hyper.sh
    // re-makes this copy.
    let patch = fs::read_to_string("vendor/hyper.patch").unwrap();
    for line in [
        "+            next: INIT_READ_SIZE,",
        "+            headers: Cursor::new(Vec::new()),",
        "+            task: Pin<Box<ConnTask<T, B>>>,",
        "+struct Envelope<T, U>(Option<Box<(T, Callback<T, U>)>>);",
    ] {
        assert!(patch.contains(line), "vendor/hyper.patch lacks {line:?}");
    }
}
