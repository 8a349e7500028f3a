//! Generated images kept for `response_format: "url"`: the gateway serves
//! them at `/images/{id}.png`, where the id is 128 random bits (the URL is
//! the credential, like a signed URL). Each is kept `IMAGE_URL_TTL`; bounded
//! by [`MAX_IMAGES`] and [`MAX_BYTES`] (past them the oldest go first). In
//! memory, per process; with `DATA_DIR`, as files under `$DATA_DIR/images`
//! instead (`{id}.png` and the like, expiring by their modification time),
//! so they outlive a restart and are seen by replicas sharing the directory.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

/// Most images kept.
pub const MAX_IMAGES: usize = 1_000;
/// Most bytes of images kept, summed.
pub const MAX_BYTES: usize = 256 * 1024 * 1024;

/// One kept image.
struct Stored {
    mime: String,
    bytes: Bytes,
    expires_ms: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Stored>,
    order: VecDeque<String>,
    bytes: usize,
}

/// The kept images (see the module doc).
#[derive(Default)]
pub struct Kept {
    inner: Mutex<Inner>,
    /// Where the images are files (`DATA_DIR/images`), if anywhere.
    dir: Option<PathBuf>,
}

/// File extensions of the image types kept on disk, and their MIME types.
const TYPES: &[(&str, &str)] = &[
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("webp", "image/webp"),
    ("gif", "image/gif"),
];

/// Whether `id` is one of ours: 32 hex digits (nothing else reaches a path).
fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh unguessable id: 128 random bits, hex.
fn new_id() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Images kept as files in `dir` (created when missing).
    pub fn on_disk(dir: PathBuf) -> Kept {
        Kept {
            inner: Mutex::default(),
            dir: Some(dir),
        }
    }

    /// Keep an image for `ttl_ms`; its id, or `None` when it is larger than
    /// [`MAX_BYTES`], no random id could be drawn or the file not written.
    pub fn put(&self, mime: &str, bytes: Bytes, ttl_ms: u64) -> Option<String> {
        if bytes.len() > MAX_BYTES {
            return None;
        }
        let id = new_id()?;
        if let Some(dir) = &self.dir {
            // One writer at a time: the sweep and the bounds stay consistent.
            let _g = self.lock();
            return write_file(dir, &id, mime, &bytes, ttl_ms).then_some(id);
        }
        let now = crate::clock::unix_ms();
        let mut g = self.lock();
        g.drop_expired(now);
        while g.map.len() >= MAX_IMAGES || g.bytes + bytes.len() > MAX_BYTES {
            if !g.drop_oldest() {
                break;
            }
        }
        g.bytes += bytes.len();
        g.order.push_back(id.clone());
        let stored = Stored {
            mime: mime.to_string(),
            bytes,
            expires_ms: now.saturating_add(ttl_ms),
        };
        g.map.insert(id.clone(), stored);
        Some(id)
    }

    /// The image kept under `id` (its MIME type and bytes), unless unknown
    /// or expired (on disk: older than `ttl_ms`).
    pub fn get(&self, id: &str, ttl_ms: u64) -> Option<(String, Bytes)> {
        if !valid_id(id) {
            return None;
        }
        if let Some(dir) = &self.dir {
            return read_file(dir, id, ttl_ms);
        }
        let now = crate::clock::unix_ms();
        let mut g = self.lock();
        g.drop_expired(now);
        g.map
            .get(id)
            .filter(|s| s.expires_ms > now)
            .map(|s| (s.mime.clone(), s.bytes.clone()))
    }

    /// How many images are kept, and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.lock();
        (g.map.len(), g.bytes)
    }
}

/// Milliseconds since a file was last written (0 when unknown or in the future).
fn age_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Write `{dir}/{id}.{ext}` (through a temporary name), after dropping the
/// expired files and, past the bounds, the oldest; whether it was written.
fn write_file(dir: &Path, id: &str, mime: &str, bytes: &[u8], ttl_ms: u64) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let mut files: Vec<(u64, u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file()
                .then(|| (age_ms(&meta), meta.len(), e.path()))
        })
        .collect();
    // Oldest first.
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    let mut count = files.len();
    for (age, len, path) in &files {
        let over = count >= MAX_IMAGES || total + bytes.len() as u64 > MAX_BYTES as u64;
        if *age < ttl_ms && !over {
            break;
        }
        if std::fs::remove_file(path).is_ok() {
            total -= len;
            count -= 1;
        }
    }
    let ext = TYPES.iter().find(|t| t.1 == mime).map_or("png", |t| t.0);
    let tmp = dir.join(format!("{id}.tmp"));
    std::fs::write(&tmp, bytes).is_ok()
        && std::fs::rename(&tmp, dir.join(format!("{id}.{ext}"))).is_ok()
}

/// The file kept for `id`, unless missing or older than `ttl_ms`.
fn read_file(dir: &Path, id: &str, ttl_ms: u64) -> Option<(String, Bytes)> {
    TYPES.iter().find_map(|(ext, mime)| {
        let path = dir.join(format!("{id}.{ext}"));
        let meta = std::fs::metadata(&path).ok()?;
        if age_ms(&meta) >= ttl_ms {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        Some((mime.to_string(), Bytes::from(bytes)))
    })
}

impl Inner {
    /// Drop the oldest image; whether there was one.
    fn drop_oldest(&mut self) -> bool {
        let Some(id) = self.order.pop_front() else {
            return false;
        };
        if let Some(s) = self.map.remove(&id) {
            self.bytes -= s.bytes.len();
        }
        true
    }

    /// Drop the expired images at the front (all share one TTL, so the
    /// oldest expire first; a TTL changed at run time evens out).
    fn drop_expired(&mut self, now: u64) {
        while let Some(id) = self.order.front() {
            match self.map.get(id) {
                Some(s) if s.expires_ms > now => break,
                _ => {
                    self.drop_oldest();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_images_under_unguessable_ids_within_bounds() {
        let kept = Kept::default();
        let a = kept.put("image/png", Bytes::from_static(b"png-a"), 60_000);
        let a = a.expect("id");
        assert_eq!(a.len(), 32, "128 bits in hex");
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        let b = kept.put("image/png", Bytes::from_static(b"png-b"), 60_000);
        assert_ne!(Some(&a), b.as_ref());
        assert_eq!(
            kept.get(&a, 60_000).map(|x| x.1),
            Some(Bytes::from_static(b"png-a"))
        );
        assert!(kept.get("0123", 60_000).is_none());
        // Expired: gone.
        let gone = kept
            .put("image/png", Bytes::from_static(b"x"), 0)
            .expect("id");
        assert!(kept.get(&gone, 60_000).is_none());
        // Too large for the store at all.
        let huge = Bytes::from(vec![0u8; MAX_BYTES + 1]);
        assert!(kept.put("image/png", huge, 60_000).is_none());
        // The count bound: the oldest go first.
        for _ in 0..MAX_IMAGES {
            kept.put("image/png", Bytes::from_static(b"y"), 60_000);
        }
        assert_eq!(kept.usage().0, MAX_IMAGES);
        assert!(kept.get(&a, 60_000).is_none(), "the oldest was dropped");
    }

    #[test]
    fn on_disk_images_outlive_the_store_and_expire() {
        let dir = std::env::temp_dir().join(format!("gb-kept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kept = Kept::on_disk(dir.clone());
        let id = kept
            .put("image/png", Bytes::from_static(b"png"), 60_000)
            .expect("written");
        assert!(dir.join(format!("{id}.png")).is_file());
        // Another store on the same directory (a restart, a replica) sees it.
        let again = Kept::on_disk(dir.clone());
        let got = again.get(&id, 60_000).expect("kept");
        assert_eq!(got, ("image/png".to_string(), Bytes::from_static(b"png")));
        assert!(again.get(&id, 0).is_none(), "past the TTL");
        assert!(again.get("../../etc/passwd", 60_000).is_none());
        // A put with a TTL of 0 sweeps the expired file away.
        again.put("image/jpeg", Bytes::from_static(b"jpg"), 0);
        assert!(!dir.join(format!("{id}.png")).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
