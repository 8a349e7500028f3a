//! Generated images kept for `response_format: "url"`: the gateway serves
//! them at `/images/{id}.png`, where the id is 128 random bits (the URL is
//! the credential, like a signed URL). Each is kept `IMAGE_URL_TTL`; bounded
//! by [`MAX_IMAGES`] and [`MAX_BYTES`] (past them the oldest go first). In
//! memory, per process.

use std::collections::{HashMap, VecDeque};
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

    /// Keep an image for `ttl_ms`; its id, or `None` when it is larger than
    /// [`MAX_BYTES`] or no random id could be drawn.
    pub fn put(&self, mime: &str, bytes: Bytes, ttl_ms: u64) -> Option<String> {
        if bytes.len() > MAX_BYTES {
            return None;
        }
        let id = new_id()?;
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

    /// The image kept under `id` (its MIME type and bytes), unless unknown or expired.
    pub fn get(&self, id: &str) -> Option<(String, Bytes)> {
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
            kept.get(&a).map(|x| x.1),
            Some(Bytes::from_static(b"png-a"))
        );
        assert!(kept.get("0123").is_none());
        // Expired: gone.
        let gone = kept
            .put("image/png", Bytes::from_static(b"x"), 0)
            .expect("id");
        assert!(kept.get(&gone).is_none());
        // Too large for the store at all.
        let huge = Bytes::from(vec![0u8; MAX_BYTES + 1]);
        assert!(kept.put("image/png", huge, 60_000).is_none());
        // The count bound: the oldest go first.
        for _ in 0..MAX_IMAGES {
            kept.put("image/png", Bytes::from_static(b"y"), 60_000);
        }
        assert_eq!(kept.usage().0, MAX_IMAGES);
        assert!(kept.get(&a).is_none(), "the oldest was dropped");
    }
}
