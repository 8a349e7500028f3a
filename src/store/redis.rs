//! Redis mode: the state shared by every gateway naming the same Redis
//! (`REDIS_URL`, `rediss://` for TLS through rustls with ring), every key
//! under `REDIS_PREFIX`:
//!
//! * `{p}keys` — hash, key id → `at|json KeyRecord` (the key sealed with `ENCRYPTION_KEY`);
//! * `{p}settings` — hash, name → `at|json Option<value>`;
//! * `{p}state:{id}` — hash: `disabled` → `at|json reason`, `failures` → `at|n`,
//!   `rest` and `cd:{model}` → `deadline|`;
//! * `{p}quota:{id}` — hash: `tier` → `at|json tier`, `free` → `at|` (a 429
//!   named a free-tier quota), `lim:{model}|{rpm,rpd,tpm}` → `at|value`
//!   (limits learned from 429s); kept apart from `state:{id}`, which an
//!   admin reset deletes;
//! * `{p}u:{grain}:{start}` — hash, `{key id}|{model}|{counter}` → count
//!   (`HINCRBY`: two replicas' counts add up exactly), expiring with its retention;
//! * `{p}events` — pub/sub channel: every batch of non-counter changes, so
//!   replicas apply each other's changes within milliseconds (pub/sub rather
//!   than polling: no load while idle, no 500 ms delay; a replica that was
//!   disconnected gets [`Event::Resync`](super::Event::Resync) and reloads).
//!
//! Stamped values go through one Lua script that keeps the value with the
//! larger stamp, so "the later change wins" and "the later deadline wins" hold
//! however replicas' writes interleave. A batch is one `MULTI`/`EXEC`.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Pipeline};

use super::crypt::Crypt;
use super::model::{Bucket, Change, Grain, KeyRecord, Lww, Snapshot, key_id};

/// Keep `ARGV[2]|ARGV[3]` in field `ARGV[1]` of hash `KEYS[1]` unless the
/// stored stamp is larger.
const LWW: &str = "local old = redis.call('HGET', KEYS[1], ARGV[1]) \
if old then local t = tonumber(string.match(old, '^(%d+)|')) \
if t and t > tonumber(ARGV[2]) then return 0 end end \
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3]) return 1";

const TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A connection to the shared store, reconnecting with backoff.
pub struct RedisStore {
    client: Client,
    con: Option<MultiplexedConnection>,
    prefix: String,
    crypt: std::sync::Arc<Crypt>,
    replica: String,
    next_try: Instant,
    backoff: Duration,
}

fn config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT))
}

pub(super) fn err(e: redis::RedisError) -> String {
    // the error text never holds the URL's password
    format!("redis: {:?}", e.kind())
}

impl RedisStore {
    /// A store on `url` (an invalid URL is an error; an unreachable Redis is
    /// not: the store starts disconnected and reconnects later).
    pub fn new(
        url: &str,
        prefix: &str,
        crypt: std::sync::Arc<Crypt>,
        replica: &str,
    ) -> Result<RedisStore, String> {
        let client = Client::open(url)
            .map_err(|_| "REDIS_URL: not a valid redis:// or rediss:// URL".to_string())?;
        Ok(RedisStore {
            client,
            con: None,
            prefix: prefix.to_string(),
            crypt,
            replica: replica.to_string(),
            next_try: Instant::now(),
            backoff: Duration::from_millis(250),
        })
    }

    /// The client (for the pub/sub task).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `REDIS_PREFIX`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Connected now?
    pub fn connected(&self) -> bool {
        self.con.is_some()
    }

    /// A connection, connecting when the backoff allows.
    pub async fn connection(&mut self) -> Result<MultiplexedConnection, String> {
        if let Some(c) = &self.con {
            return Ok(c.clone());
        }
        if Instant::now() < self.next_try {
            return Err("redis: waiting to reconnect".into());
        }
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config())
            .await
        {
            Ok(c) => {
                self.con = Some(c.clone());
                self.backoff = Duration::from_millis(250);
                Ok(c)
            }
            Err(e) => {
                self.failed();
                Err(err(e))
            }
        }
    }

    /// Forget the connection and wait the backoff before the next one.
    pub(super) fn failed(&mut self) {
        self.con = None;
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn lww(&self, p: &mut Pipeline, key: &str, field: &str, at: u64, value: &str) {
        p.cmd("EVAL")
            .arg(LWW)
            .arg(1)
            .arg(key)
            .arg(field)
            .arg(at)
            .arg(value)
            .ignore();
    }

    /// Write a batch in one transaction and publish its non-counter changes.
    pub async fn write(&mut self, changes: &[Change]) -> Result<(), String> {
        let mut con = self.connection().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut shared = Vec::new();
        for c in changes {
            self.queue(&mut pipe, c)?;
            if !c.is_counter() {
                // Other replicas get keys sealed, as they are stored.
                shared.push(match c {
                    Change::AddKey { key, source, at_ms } => Change::AddKey {
                        key: self.crypt.seal(key)?,
                        source: *source,
                        at_ms: *at_ms,
                    },
                    other => other.clone(),
                });
            }
        }
        if !shared.is_empty() {
            let msg = serde_json::json!({ "from": self.replica, "changes": shared });
            pipe.publish(format!("{}events", self.prefix), msg.to_string())
                .ignore();
        }
        let r: Result<(), _> = pipe.query_async(&mut con).await;
        r.map_err(|e| {
            self.failed();
            err(e)
        })
    }

    /// Add one change's commands to the transaction `pipe`.
    fn queue(&self, pipe: &mut redis::Pipeline, c: &Change) -> Result<(), String> {
        let p = &self.prefix;
        match c {
            Change::AddKey { key, source, at_ms } => {
                let rec = KeyRecord {
                    key: self.crypt.seal(key)?,
                    source: *source,
                    removed: false,
                    at_ms: *at_ms,
                };
                self.lww(
                    pipe,
                    &format!("{p}keys"),
                    &key_id(key),
                    *at_ms,
                    &json(&rec)?,
                );
            }
            Change::RemoveKey { id, at_ms } => {
                let rec = KeyRecord {
                    key: String::new(),
                    source: super::model::KeySource::Added,
                    removed: true,
                    at_ms: *at_ms,
                };
                // a removal wins a tie: stamp it 1 ms later than an add of the same ms
                self.lww(pipe, &format!("{p}keys"), id, at_ms + 1, &json(&rec)?);
                pipe.del(format!("{p}state:{id}")).ignore();
                pipe.del(format!("{p}quota:{id}")).ignore();
            }
            Change::Setting { name, value, at_ms } => {
                self.lww(pipe, &format!("{p}settings"), name, *at_ms, &json(value)?);
            }
            Change::Disable { id, reason, at_ms } => {
                self.lww(
                    pipe,
                    &format!("{p}state:{id}"),
                    "disabled",
                    *at_ms,
                    &json(reason)?,
                );
            }
            Change::Failures { id, count, at_ms } => {
                self.lww(
                    pipe,
                    &format!("{p}state:{id}"),
                    "failures",
                    *at_ms,
                    &count.to_string(),
                );
            }
            Change::Rest { id, until_ms } => {
                self.lww(pipe, &format!("{p}state:{id}"), "rest", *until_ms, "")
            }
            Change::Cooldown {
                id,
                model,
                until_ms,
            } => {
                self.lww(
                    pipe,
                    &format!("{p}state:{id}"),
                    &format!("cd:{model}"),
                    *until_ms,
                    "",
                );
            }
            Change::Clear { id, model, at_ms } => {
                let key = format!("{p}state:{id}");
                match model {
                    Some(m) => {
                        pipe.hdel(&key, format!("cd:{m}")).ignore();
                    }
                    None => {
                        pipe.del(&key).ignore();
                        self.lww(pipe, &key, "disabled", *at_ms, "null");
                        self.lww(pipe, &key, "failures", *at_ms, "0");
                    }
                }
            }
            Change::Tier { .. } | Change::Learned { .. } => self.queue_quota(pipe, c)?,
            Change::Usage(u) => {
                for b in u.buckets() {
                    let key = format!("{p}u:{}:{}", b.grain.tag(), b.start);
                    for (name, v) in u.counts.fields() {
                        if v > 0 {
                            pipe.hincr(&key, format!("{}|{}|{name}", b.key_id, b.model), v)
                                .ignore();
                        }
                    }
                    pipe.expire_at(
                        &key,
                        (b.start + b.grain.seconds() + b.grain.retention()) as i64,
                    )
                    .ignore();
                }
            }
            Change::Affinity { name, owner } => {
                let key = format!("{p}aff:{name}");
                match owner {
                    Some(o) => {
                        pipe.set(&key, json(o)?).ignore();
                        pipe.cmd("PEXPIREAT").arg(&key).arg(o.expires_ms).ignore();
                    }
                    None => {
                        pipe.del(&key).ignore();
                    }
                }
            }
        }
        Ok(())
    }

    /// A key's tier or learned limit into `{p}quota:{id}`.
    fn queue_quota(&self, pipe: &mut redis::Pipeline, c: &Change) -> Result<(), String> {
        let p = &self.prefix;
        match c {
            Change::Tier { id, tier, at_ms } => {
                self.lww(
                    pipe,
                    &format!("{p}quota:{id}"),
                    "tier",
                    *at_ms,
                    &json(tier)?,
                );
            }
            Change::Learned {
                id,
                model,
                window,
                value,
                free,
                at_ms,
            } => {
                let key = format!("{p}quota:{id}");
                if let Some(v) = value {
                    let f = format!("lim:{model}|{window}");
                    self.lww(pipe, &key, &f, *at_ms, &v.to_string());
                }
                if *free {
                    self.lww(pipe, &key, "free", *at_ms, "");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Read the whole shared state.
    pub async fn read_all(&mut self) -> Result<Snapshot, String> {
        let r = self.read_inner().await;
        if r.is_err() {
            self.failed();
        }
        r
    }

    async fn read_inner(&mut self) -> Result<Snapshot, String> {
        let mut con = self.connection().await?;
        let p = self.prefix.clone();
        let mut snap = Snapshot::default();
        let keys: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(format!("{p}keys"))
            .query_async(&mut con)
            .await
            .map_err(err)?;
        for (id, v) in keys {
            let Some(mut rec) = stamped::<KeyRecord>(&v) else {
                continue;
            };
            match self.crypt.open(&rec.key) {
                Ok(k) => rec.key = k,
                Err(e) => {
                    crate::error!("store: key {id} not loaded: {e}");
                    continue;
                }
            }
            snap.merge_key(id, rec);
        }
        let settings: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(format!("{p}settings"))
            .query_async(&mut con)
            .await
            .map_err(err)?;
        for (name, v) in settings {
            if let Some((at_ms, value)) = split_stamp(&v) {
                let value = serde_json::from_str(value).unwrap_or(None);
                snap.settings.insert(name, Lww { at_ms, value });
            }
        }
        for key in scan(&mut con, &format!("{p}state:*")).await? {
            let id = key[p.len() + 6..].to_string();
            let fields: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut con)
                .await
                .map_err(err)?;
            for (f, v) in fields {
                let Some((at, val)) = split_stamp(&v) else {
                    continue;
                };
                let change = match f.as_str() {
                    "disabled" => Change::Disable {
                        id: id.clone(),
                        reason: serde_json::from_str(val).unwrap_or(None),
                        at_ms: at,
                    },
                    "failures" => Change::Failures {
                        id: id.clone(),
                        count: val.parse().unwrap_or(0),
                        at_ms: at,
                    },
                    "rest" => Change::Rest {
                        id: id.clone(),
                        until_ms: at,
                    },
                    f => match f.strip_prefix("cd:") {
                        Some(model) => Change::Cooldown {
                            id: id.clone(),
                            model: model.to_string(),
                            until_ms: at,
                        },
                        None => continue,
                    },
                };
                snap.apply(&change);
            }
        }
        for key in scan(&mut con, &format!("{p}quota:*")).await? {
            read_quota(&mut con, &key, &key[p.len() + 6..], &mut snap).await?;
        }
        for key in scan(&mut con, &format!("{p}u:*")).await? {
            read_usage(&mut con, &p, &key, &mut snap).await?;
        }
        for key in scan(&mut con, &format!("{p}aff:*")).await? {
            let v: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await
                .map_err(err)?;
            if let Some(owner) = v.and_then(|v| serde_json::from_str(&v).ok()) {
                snap.apply(&Change::Affinity {
                    name: key[p.len() + 4..].to_string(),
                    owner: Some(owner),
                });
            }
        }
        Ok(snap)
    }
}

/// Read one key's `{p}quota:{id}` hash (tier, learned tier and limits).
async fn read_quota(
    con: &mut MultiplexedConnection,
    key: &str,
    id: &str,
    snap: &mut Snapshot,
) -> Result<(), String> {
    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(con)
        .await
        .map_err(err)?;
    for (f, v) in fields {
        let Some((at_ms, val)) = split_stamp(&v) else {
            continue;
        };
        let id = id.to_string();
        let change = if f == "tier" {
            Change::Tier {
                id,
                tier: serde_json::from_str(val).unwrap_or(None),
                at_ms,
            }
        } else if f == "free" {
            Change::Learned {
                id,
                model: String::new(),
                window: String::new(),
                value: None,
                free: true,
                at_ms,
            }
        } else if let Some((model, window)) =
            f.strip_prefix("lim:").and_then(|m| m.rsplit_once('|'))
        {
            Change::Learned {
                id,
                model: model.to_string(),
                window: window.to_string(),
                value: val.parse().ok(),
                free: false,
                at_ms,
            }
        } else {
            continue;
        };
        snap.apply(&change);
    }
    Ok(())
}

async fn read_usage(
    con: &mut MultiplexedConnection,
    p: &str,
    key: &str,
    snap: &mut Snapshot,
) -> Result<(), String> {
    let mut parts = key[p.len() + 2..].splitn(2, ':');
    let grain = parts
        .next()
        .and_then(|t| t.parse().ok())
        .and_then(Grain::from_tag);
    let start = parts.next().and_then(|s| s.parse::<u64>().ok());
    let (Some(grain), Some(start)) = (grain, start) else {
        return Ok(());
    };
    let fields: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(con)
        .await
        .map_err(err)?;
    for (f, v) in fields {
        let Some((key_id, rest)) = f.split_once('|') else {
            continue;
        };
        let Some((model, counter)) = rest.rsplit_once('|') else {
            continue;
        };
        let b = Bucket {
            grain,
            start,
            key_id: key_id.to_string(),
            model: model.to_string(),
        };
        snap.usage.entry(b).or_default().add_named(counter, v);
    }
    Ok(())
}

async fn scan(con: &mut MultiplexedConnection, pattern: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(con)
            .await
            .map_err(err)?;
        out.extend(keys);
        if next == 0 {
            return Ok(out);
        }
        cursor = next;
    }
}

fn split_stamp(v: &str) -> Option<(u64, &str)> {
    let (at, rest) = v.split_once('|')?;
    Some((at.parse().ok()?, rest))
}

fn stamped<T: serde::de::DeserializeOwned>(v: &str) -> Option<T> {
    split_stamp(v).and_then(|(_, j)| serde_json::from_str(j).ok())
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| format!("store: cannot encode a record: {e}"))
}

/// A message on `{prefix}events`: who sent it and its changes.
#[derive(serde::Deserialize)]
pub struct EventMsg {
    /// The sending replica's id.
    pub from: String,
    /// Its non-counter changes.
    pub changes: Vec<Change>,
}
