//! Build script: the admin console's page, stylesheet and scripts
//! (`src/dashboard*`) are embedded gzip-compressed (about a quarter of their
//! size), so the static binary stays within its 8 MiB budget;
//! `src/dashboard.rs` serves them as they are to browsers that accept gzip
//! (all do) and inflates them for the rest.

use std::io::Write;
use std::path::Path;

/// The console's files, relative to `src/`.
const FILES: &[&str] = &[
    "dashboard.html",
    "dashboard.css",
    "dashboard.js",
    "dashboard/i18n.js",
    "dashboard/ui.js",
    "dashboard/keys.js",
    "dashboard/settings.js",
    "dashboard/logs.js",
    "dashboard/usage.js",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::var("OUT_DIR")?;
    for f in FILES {
        let src = Path::new("src").join(f);
        println!("cargo:rerun-if-changed={}", src.display());
        let text = std::fs::read(&src)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&text)?;
        let dest = Path::new(&out).join(format!("{}.gz", f.replace('/', "-")));
        std::fs::write(dest, gz.finish()?)?;
    }
    Ok(())
}
