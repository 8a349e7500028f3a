//! Stored responses (`store`, default true): per response id the
//! conversation it ended (input items, earlier turns first), its output
//! items and the response object, owned by a hash of the token that made
//! it and kept for `RESPONSES_TTL`. `previous_response_id`, `item_reference`
//! and `GET`/`DELETE /v1/responses/{id}` read it; another token, an expired
//! or an unknown id all look the same (absent). Bounded: past [`MAX_KEPT`]
//! responses or [`MAX_BYTES`] of items the oldest go first. This is the
//! process's memory; the handler also writes each entry to the store
//! ([`Entry::to_json`], [`Entry::from_json`]) so that a restart or another
//! replica can continue it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;

/// Most responses kept.
pub const MAX_KEPT: usize = 10_000;
/// Most bytes of kept items (as JSON), summed over responses.
pub const MAX_BYTES: usize = 256 * 1024 * 1024;
/// Most output items indexed for `item_reference`.
const MAX_INDEXED: usize = 200_000;

/// One stored response.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Hash of the token that made it.
    pub owner: String,
    /// Unix seconds after which it is gone.
    pub expires: u64,
    /// The conversation's input items (earlier turns first).
    pub input: Vec<Value>,
    /// Its output items (stored form, with `encrypted_content`).
    pub output: Vec<Value>,
    /// The response object as the client saw it.
    pub response: Value,
    /// Size estimate in bytes.
    pub bytes: usize,
}

impl Entry {
    /// The entry as one JSON document (how the store keeps it).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "owner": self.owner,
            "expires": self.expires,
            "input": self.input,
            "output": self.output,
            "response": self.response,
        })
        .to_string()
    }

    /// An entry read back from [`Entry::to_json`]'s document; `None` when
    /// it is not one.
    pub fn from_json(text: &str) -> Option<Entry> {
        let mut v: Value = serde_json::from_str(text).ok()?;
        let owner = v.get("owner")?.as_str()?.to_string();
        let expires = v.get("expires")?.as_u64()?;
        let mut take = |k: &str| v.get_mut(k).map(Value::take);
        let (Some(Value::Array(input)), Some(Value::Array(output)), Some(response)) =
            (take("input"), take("output"), take("response"))
        else {
            return None;
        };
        Some(Entry {
            owner,
            expires,
            input,
            output,
            response,
            bytes: 0,
        })
    }
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    order: VecDeque<String>,
    items: HashMap<String, String>,
    bytes: usize,
}

/// The stored responses (see the module doc).
#[derive(Default)]
pub struct Kept {
    inner: Mutex<Inner>,
}

/// A hex SHA-256 of a token (the owner of what it stores).
pub fn owner_of(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep a response under `id`.
    pub fn put(&self, id: &str, mut entry: Entry) {
        entry.bytes = size(&entry.input) + size(&entry.output) + entry.response.to_string().len();
        if entry.bytes > MAX_BYTES / 4 {
            crate::warn!(
                "responses: response {id} too large to keep ({} bytes)",
                entry.bytes
            );
            return;
        }
        let mut g = self.lock();
        let now = crate::clock::unix_now();
        while g.map.len() >= MAX_KEPT
            || g.bytes + entry.bytes > MAX_BYTES
            || g.items.len() >= MAX_INDEXED
        {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            remove(&mut g, &old);
        }
        // Expired ones at the front go too.
        while let Some(front) = g.order.front().cloned() {
            if g.map.get(&front).is_some_and(|e| e.expires > now) {
                break;
            }
            g.order.pop_front();
            remove(&mut g, &front);
        }
        for item in &entry.output {
            if let Some(iid) = item.get("id").and_then(Value::as_str) {
                g.items.insert(iid.to_string(), id.to_string());
            }
        }
        g.bytes += entry.bytes;
        g.order.push_back(id.to_string());
        g.map.insert(id.to_string(), entry);
    }

    /// The response `id`, when `owner` made it and it has not expired.
    pub fn get(&self, id: &str, owner: &str) -> Option<Entry> {
        let g = self.lock();
        let now = crate::clock::unix_now();
        g.map
            .get(id)
            .filter(|e| e.owner == owner && e.expires > now)
            .cloned()
    }

    /// An output item of a response `owner` made, by item id.
    pub fn item(&self, item_id: &str, owner: &str) -> Option<Value> {
        let g = self.lock();
        let now = crate::clock::unix_now();
        let rid = g.items.get(item_id)?;
        let e = g
            .map
            .get(rid)
            .filter(|e| e.owner == owner && e.expires > now)?;
        e.output
            .iter()
            .find(|i| i.get("id").and_then(Value::as_str) == Some(item_id))
            .cloned()
    }

    /// Delete the response `id` if `owner` made it; whether it was there.
    pub fn delete(&self, id: &str, owner: &str) -> bool {
        let mut g = self.lock();
        let now = crate::clock::unix_now();
        if !g
            .map
            .get(id)
            .is_some_and(|e| e.owner == owner && e.expires > now)
        {
            return false;
        }
        g.order.retain(|x| x != id);
        remove(&mut g, id);
        true
    }
}

/// Forget a response and its item index entries.
fn remove(g: &mut Inner, id: &str) {
    if let Some(e) = g.map.remove(id) {
        g.bytes = g.bytes.saturating_sub(e.bytes);
        for item in &e.output {
            if let Some(iid) = item.get("id").and_then(Value::as_str)
                && g.items.get(iid).is_some_and(|r| r == id)
            {
                g.items.remove(iid);
            }
        }
    }
}

/// Bytes of items as JSON.
fn size(items: &[Value]) -> usize {
    items.iter().map(|v| v.to_string().len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(owner: &str, expires: u64) -> Entry {
        Entry {
            owner: owner.into(),
            expires,
            input: vec![json!({"role": "user", "content": "hi"})],
            output: vec![json!({"id": "msg_1", "type": "message"})],
            response: json!({"id": "resp_1"}),
            bytes: 0,
        }
    }

    #[test]
    fn owner_ttl_and_delete() {
        let k = Kept::default();
        let far = crate::clock::unix_now() + 100;
        k.put("resp_1", entry("a", far));
        assert!(k.get("resp_1", "a").is_some());
        assert!(k.get("resp_1", "b").is_none());
        assert!(k.item("msg_1", "a").is_some());
        assert!(k.item("msg_1", "b").is_none());
        assert!(!k.delete("resp_1", "b"));
        assert!(k.delete("resp_1", "a"));
        assert!(k.get("resp_1", "a").is_none());
        assert!(k.item("msg_1", "a").is_none());
        k.put("resp_2", entry("a", 1));
        assert!(k.get("resp_2", "a").is_none(), "expired");
        assert_ne!(owner_of("x"), owner_of("y"));
    }

    #[test]
    fn entries_round_trip_as_json() {
        let e = entry("a", 77);
        let back = Entry::from_json(&e.to_json()).unwrap();
        assert_eq!(
            (
                back.owner,
                back.expires,
                back.input,
                back.output,
                back.response
            ),
            (e.owner, e.expires, e.input, e.output, e.response)
        );
        assert!(Entry::from_json("{}").is_none());
        assert!(Entry::from_json("not json").is_none());
    }

    #[test]
    fn bounded() {
        let k = Kept::default();
        let far = crate::clock::unix_now() + 100;
        for i in 0..MAX_KEPT + 5 {
            let mut e = entry("a", far);
            e.output.clear();
            k.put(&format!("resp_{i}"), e);
        }
        assert_eq!(k.lock().map.len(), MAX_KEPT);
        assert!(k.get("resp_0", "a").is_none());
    }
}
