//! Which pool key owns each Gemini resource the gateway created on a
//! client's behalf (`files/…`, `cachedContents/…`, `batches/…`), and the
//! Files API's resumable upload sessions.
//!
//! A file uploaded with one Gemini key belongs to that key's project: any
//! other key gets 403. So every resource the gateway sees created is
//! recorded with the key's stable id (never the key), a tag of the client
//! token that created it (a hash, never the token) and Google's expiry; calls
//! naming it go on that key. Records are kept in the store (see
//! `crate::store::Change::Affinity`) and restored from its snapshot.
//!
//! Upload sessions live in memory only: the session id in the URL handed to
//! the client is the credential of the chunk calls (which carry none), so it
//! is 128 random bits, bound to the token and key that started the upload,
//! and forgotten at finalize or after [`SESSION_TTL_MS`]. Both maps are
//! bounded.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::unix_ms;

/// Most resource records kept (the ones expiring first go when full).
pub const MAX_RECORDS: usize = 100_000;
/// Most upload sessions open at once.
pub const MAX_SESSIONS: usize = 10_000;
/// How long an upload session stays usable: one hour.
pub const SESSION_TTL_MS: u64 = 3_600_000;
/// How long Google keeps an uploaded file: 48 hours.
pub const FILE_TTL_MS: u64 = 48 * 3_600_000;

/// Who owns one resource (kept in the store as it is).
pub use crate::store::model::AffinityRecord as Owner;

/// One resumable upload in progress.
#[derive(Clone, Debug)]
pub struct Session {
    /// The upstream's upload path and query (on the upstream origin).
    pub upstream: String,
    /// The pool key's stable id.
    pub key_id: String,
    /// The tag of the token that started it.
    pub token: String,
    /// When it stops being usable (unix ms).
    pub expires_ms: u64,
    /// Bytes passed on so far.
    pub received: u64,
    /// The size announced at the start (`X-Goog-Upload-Header-Content-Length`).
    pub announced: Option<u64>,
}

/// The owners of resources and the open upload sessions (held by `App`).
#[derive(Default)]
pub struct Affinity {
    owners: Mutex<HashMap<String, Owner>>,
    sessions: Mutex<HashMap<String, Session>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A tag naming a client token without holding it (SHA-256, 16 bytes hex).
pub fn token_tag(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    crate::store::model::hex(&digest.as_ref()[..16])
}

/// A fresh unguessable session id: 128 random bits, hex.
pub fn new_session_id() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(crate::store::model::hex(&b))
}

/// The resource name a reference stands for: `files/x` from `files/x`,
/// `…/v1beta/files/x` (a file URI) or `files/x:download`; `cachedContents/c`
/// and `batches/b` likewise. `None` for anything else.
pub fn resource_name(reference: &str) -> Option<String> {
    for kind in ["files/", "cachedContents/", "batches/"] {
        let at = if reference.starts_with(kind) {
            Some(0)
        } else {
            reference.find(&format!("/{kind}")).map(|i| i + 1)
        };
        let Some(at) = at else { continue };
        let id = reference[at + kind.len()..]
            .split([':', '/', '?', '#'])
            .next()
            .unwrap_or("");
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return ok.then(|| format!("{kind}{id}"));
    }
    None
}

impl Affinity {
    /// Start from the records the store kept (expired ones left out).
    pub fn restore(&self, kept: impl IntoIterator<Item = (String, Owner)>) {
        let now = unix_ms();
        let mut m = lock(&self.owners);
        for (name, o) in kept {
            if o.expires_ms > now && m.len() < MAX_RECORDS {
                m.insert(name, o);
            }
        }
    }

    /// Remember that `name` belongs to `owner` (replacing an older record).
    pub fn insert(&self, name: &str, owner: Owner) {
        let mut m = lock(&self.owners);
        if m.len() >= MAX_RECORDS && !m.contains_key(name) {
            let now = unix_ms();
            m.retain(|_, o| o.expires_ms > now);
            if m.len() >= MAX_RECORDS
                && let Some(first) = m
                    .iter()
                    .min_by_key(|(_, o)| o.expires_ms)
                    .map(|(k, _)| k.clone())
            {
                m.remove(&first);
            }
        }
        m.insert(name.to_string(), owner);
    }

    /// The owner of `name`, unless unknown or expired.
    pub fn owner(&self, name: &str) -> Option<Owner> {
        let now = unix_ms();
        lock(&self.owners)
            .get(name)
            .filter(|o| o.expires_ms > now)
            .cloned()
    }

    /// Apply another replica's record of `name` (`None`: deleted).
    pub fn apply(&self, name: &str, owner: Option<Owner>) {
        match owner {
            Some(o) if o.expires_ms > unix_ms() => self.insert(name, o),
            Some(_) => {}
            None => self.remove(name),
        }
    }

    /// Forget `name` (deleted).
    pub fn remove(&self, name: &str) {
        lock(&self.owners).remove(name);
    }

    /// The key ids holding resources of `kind` (`"files/"`, …) that `token`
    /// created (`None`: anyone's).
    pub fn holders(&self, kind: &str, token: Option<&str>) -> Vec<String> {
        let now = unix_ms();
        let mut ids: Vec<String> = lock(&self.owners)
            .iter()
            .filter(|(n, o)| {
                n.starts_with(kind) && o.expires_ms > now && token.is_none_or(|t| o.token == t)
            })
            .map(|(_, o)| o.key_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Open an upload session; its id, or `None` when too many are open.
    pub fn open_session(&self, session: Session) -> Option<String> {
        let id = new_session_id()?;
        let mut m = lock(&self.sessions);
        if m.len() >= MAX_SESSIONS {
            let now = unix_ms();
            m.retain(|_, s| s.expires_ms > now);
            if m.len() >= MAX_SESSIONS {
                return None;
            }
        }
        m.insert(id.clone(), session);
        Some(id)
    }

    /// The open session `id` (expired ones are forgotten).
    pub fn session(&self, id: &str) -> Option<Session> {
        let now = unix_ms();
        let mut m = lock(&self.sessions);
        match m.get(id) {
            Some(s) if s.expires_ms > now => Some(s.clone()),
            Some(_) => {
                m.remove(id);
                None
            }
            None => None,
        }
    }

    /// Count `n` more bytes passed on in session `id`.
    pub fn received(&self, id: &str, n: u64) {
        if let Some(s) = lock(&self.sessions).get_mut(id) {
            s.received = s.received.saturating_add(n);
        }
    }

    /// Close session `id` (finalized or cancelled).
    pub fn close_session(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// Make session `id` expire at `at_ms` (tests).
    pub fn expire_session_at(&self, id: &str, at_ms: u64) {
        if let Some(s) = lock(&self.sessions).get_mut(id) {
            s.expires_ms = at_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_references() {
        assert_eq!(resource_name("files/abc-1").as_deref(), Some("files/abc-1"));
        assert_eq!(
            resource_name("https://generativelanguage.googleapis.com/v1beta/files/x7k2").as_deref(),
            Some("files/x7k2")
        );
        assert_eq!(
            resource_name("/files/x7k2:download").as_deref(),
            Some("files/x7k2")
        );
        assert_eq!(
            resource_name("cachedContents/p9w3").as_deref(),
            Some("cachedContents/p9w3")
        );
        assert_eq!(resource_name("https://youtube.com/watch?v=1"), None);
        assert_eq!(resource_name("files/"), None);
        assert_eq!(resource_name("files/a b"), None);
    }

    #[test]
    fn records_are_bounded_and_expire() {
        let a = Affinity::default();
        let o = |exp| Owner {
            key_id: "k".into(),
            token: "t".into(),
            expires_ms: exp,
        };
        a.insert("files/old", o(1));
        assert_eq!(a.owner("files/old"), None, "expired");
        for i in 0..MAX_RECORDS + 5 {
            a.insert(&format!("files/{i}"), o(unix_ms() + 1000 + i as u64));
        }
        assert!(lock(&a.owners).len() <= MAX_RECORDS);
        assert!(a.owner(&format!("files/{}", MAX_RECORDS + 4)).is_some());
        assert_eq!(a.holders("files/", Some("t")), vec!["k".to_string()]);
        assert!(a.holders("files/", Some("other")).is_empty());
    }

    #[test]
    fn session_ids_are_long_and_distinct() {
        let a = new_session_id().unwrap();
        let b = new_session_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
