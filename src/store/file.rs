//! File mode: the state in `$DATA_DIR/state.redb`, a [redb] database (pure
//! Rust, ACID, copy-on-write with checksummed commits: a crash or `kill -9`
//! leaves the last committed transaction, never a torn file).
//!
//! `DATA_DIR` is created 0700 when missing; the file is created 0600 and its
//! mode is set explicitly (whatever the umask). A store that does not open or
//! read is renamed aside (`state.redb.damaged-<unix time>`) with a loud
//! `error!` line and a fresh one started. The process keeps a mirror of
//! everything ([`Snapshot`]); a flush writes the current value of every record
//! a batch touched, so a failed write is simply retried later (idempotent).

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::crypt::Crypt;
use super::model::{Bucket, Change, Grain, KeyId, KeyRecord, Snapshot, key_id};

const KEYS: TableDefinition<&str, &str> = TableDefinition::new("keys");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const STATES: TableDefinition<&str, &str> = TableDefinition::new("states");
const USAGE: TableDefinition<(u8, u64, &str, &str), &str> = TableDefinition::new("usage");
const AFFINITY: TableDefinition<&str, &str> = TableDefinition::new("affinity");

/// The state file's name inside `DATA_DIR`.
pub const FILE_NAME: &str = "state.redb";

/// A record a batch touched (written from the mirror at the next flush).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touched {
    /// A key list entry.
    Key(KeyId),
    /// A setting override.
    Setting(String),
    /// A key's state.
    State(KeyId),
    /// A usage bucket.
    Bucket(Bucket),
    /// An affinity record (a file's, cache's or batch's owner).
    Affinity(String),
}

impl Touched {
    /// What `change` touches.
    pub fn of(change: &Change) -> Vec<Touched> {
        match change {
            Change::AddKey { key, .. } => vec![Touched::Key(key_id(key))],
            Change::RemoveKey { id, .. } => {
                vec![Touched::Key(id.clone()), Touched::State(id.clone())]
            }
            Change::Setting { name, .. } => vec![Touched::Setting(name.clone())],
            Change::Usage(u) => u.buckets().into_iter().map(Touched::Bucket).collect(),
            Change::Affinity { name, .. } => vec![Touched::Affinity(name.clone())],
            other => other
                .state_key()
                .map(|id| Touched::State(id.to_string()))
                .into_iter()
                .collect(),
        }
    }
}

/// An open state file.
pub struct FileStore {
    pub(super) db: Database,
    crypt: std::sync::Arc<Crypt>,
}

enum OpenError {
    /// Not a readable store: move it aside.
    Damaged(String),
    /// Anything else (locked by another process, no permission): stop.
    Other(String),
}

impl FileStore {
    /// Open (or create) `dir/state.redb` and read everything in it. A damaged
    /// file is moved aside and a fresh one started.
    pub fn open(dir: &Path, crypt: std::sync::Arc<Crypt>) -> Result<(FileStore, Snapshot), String> {
        if !dir.exists() {
            fs::create_dir_all(dir)
                .map_err(|e| format!("DATA_DIR {}: cannot create: {e}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("DATA_DIR {}: cannot set mode 0700: {e}", dir.display()))?;
        }
        let path = dir.join(FILE_NAME);
        match open_db(&path, &crypt) {
            Ok((db, snap)) => Ok((FileStore { db, crypt }, snap)),
            Err(OpenError::Other(e)) => Err(e),
            Err(OpenError::Damaged(why)) => {
                let aside = dir.join(format!("{FILE_NAME}.damaged-{}", crate::clock::unix_now()));
                fs::rename(&path, &aside).map_err(|e| {
                    format!(
                        "{}: damaged ({why}) and cannot be moved aside: {e}",
                        path.display()
                    )
                })?;
                crate::error!(
                    "store: {} is damaged ({why}); moved aside to {} and starting a fresh store: keys added at runtime, key states, settings and usage from before are NOT loaded",
                    path.display(),
                    aside.display()
                );
                match open_db(&path, &crypt) {
                    Ok((db, snap)) => Ok((FileStore { db, crypt }, snap)),
                    Err(OpenError::Damaged(e) | OpenError::Other(e)) => Err(e),
                }
            }
        }
    }

    /// Write the mirror's current value of every touched record, in one
    /// durable transaction (committed to disk when this returns).
    pub fn write(&mut self, touched: &BTreeSet<Touched>, mirror: &Snapshot) -> Result<(), String> {
        let e = |e: redb::Error| format!("store write: {e}");
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut keys = txn.open_table(KEYS).map_err(|x| e(x.into()))?;
            let mut settings = txn.open_table(SETTINGS).map_err(|x| e(x.into()))?;
            let mut states = txn.open_table(STATES).map_err(|x| e(x.into()))?;
            let mut usage = txn.open_table(USAGE).map_err(|x| e(x.into()))?;
            let mut affinity = txn.open_table(AFFINITY).map_err(|x| e(x.into()))?;
            for t in touched {
                let r = match t {
                    Touched::Key(id) => match mirror.keys.get(id) {
                        Some(rec) => {
                            let rec = KeyRecord {
                                key: self.crypt.seal(&rec.key)?,
                                ..rec.clone()
                            };
                            keys.insert(id.as_str(), json(&rec)?.as_str()).map(drop)
                        }
                        None => keys.remove(id.as_str()).map(drop),
                    },
                    Touched::Setting(n) => match mirror.settings.get(n) {
                        Some(v) => settings.insert(n.as_str(), json(v)?.as_str()).map(drop),
                        None => settings.remove(n.as_str()).map(drop),
                    },
                    Touched::State(id) => match mirror.states.get(id) {
                        Some(s) => states.insert(id.as_str(), json(s)?.as_str()).map(drop),
                        None => states.remove(id.as_str()).map(drop),
                    },
                    Touched::Affinity(n) => match mirror.affinity.get(n) {
                        Some(o) => affinity.insert(n.as_str(), json(o)?.as_str()).map(drop),
                        None => affinity.remove(n.as_str()).map(drop),
                    },
                    Touched::Bucket(b) => {
                        let k = (b.grain.tag(), b.start, b.key_id.as_str(), b.model.as_str());
                        match mirror.usage.get(b) {
                            Some(c) => usage.insert(k, json(c)?.as_str()).map(drop),
                            None => usage.remove(k).map(drop),
                        }
                    }
                };
                r.map_err(|x| e(x.into()))?;
            }
        }
        txn.commit().map_err(|x| e(x.into()))
    }

    /// Delete usage buckets past their retention (`now_ms`).
    pub fn prune(&mut self, now_ms: u64) -> Result<(), String> {
        let e = |e: redb::Error| format!("store prune: {e}");
        let txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        {
            let mut usage = txn.open_table(USAGE).map_err(|x| e(x.into()))?;
            usage
                .retain(|(tag, start, key_id, model), _| {
                    Grain::from_tag(tag).is_some_and(|grain| {
                        !Bucket {
                            grain,
                            start,
                            key_id: key_id.to_string(),
                            model: model.to_string(),
                        }
                        .expired(now_ms)
                    })
                })
                .map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| format!("store: cannot encode a record: {e}"))
}

/// Create (0600) or open the file, open the database, read everything.
fn open_db(path: &PathBuf, crypt: &Crypt) -> Result<(Database, Snapshot), OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| OpenError::Other(format!("{}: cannot open: {e}", path.display())))?;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| OpenError::Other(format!("{}: cannot set mode 0600: {e}", path.display())))?;
    let db = redb::Builder::new().create_file(file).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            OpenError::Other(format!("{}: already open in another process (one gateway per DATA_DIR; use REDIS_URL for replicas)", path.display()))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if !matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
        {
            OpenError::Other(format!("{}: {io}", path.display()))
        }
        other => OpenError::Damaged(other.to_string()),
    })?;
    let snap = read_all(&db, crypt).map_err(|e| OpenError::Damaged(e.to_string()))?;
    Ok((db, snap))
}

/// Everything in the database as a [`Snapshot`].
fn read_all(db: &Database, crypt: &Crypt) -> Result<Snapshot, redb::Error> {
    // make sure every table exists, so that reading an empty store works
    let txn = db.begin_write()?;
    txn.open_table(KEYS)?;
    txn.open_table(SETTINGS)?;
    txn.open_table(STATES)?;
    txn.open_table(USAGE)?;
    txn.open_table(AFFINITY)?;
    txn.commit()?;
    let mut snap = Snapshot::default();
    let r = db.begin_read()?;
    for row in r.open_table(KEYS)?.iter()? {
        let (id, v) = row?;
        let Some(mut rec) = parse::<KeyRecord>("key", v.value()) else {
            continue;
        };
        match crypt.open(&rec.key) {
            Ok(k) => rec.key = k,
            Err(e) => {
                crate::error!("store: key {} not loaded: {e}", id.value());
                continue;
            }
        }
        snap.keys.insert(id.value().to_string(), rec);
    }
    for row in r.open_table(SETTINGS)?.iter()? {
        let (n, v) = row?;
        if let Some(v) = parse("setting", v.value()) {
            snap.settings.insert(n.value().to_string(), v);
        }
    }
    for row in r.open_table(STATES)?.iter()? {
        let (id, v) = row?;
        if let Some(v) = parse("key state", v.value()) {
            snap.states.insert(id.value().to_string(), v);
        }
    }
    let now = crate::clock::unix_ms();
    for row in r.open_table(AFFINITY)?.iter()? {
        let (n, v) = row?;
        if let Some(o) = parse::<super::model::AffinityRecord>("affinity", v.value())
            && o.expires_ms > now
        {
            snap.affinity.insert(n.value().to_string(), o);
        }
    }
    for row in r.open_table(USAGE)?.iter()? {
        let (k, v) = row?;
        let (tag, start, key_id, model) = k.value();
        if let (Some(grain), Some(c)) = (Grain::from_tag(tag), parse("usage", v.value())) {
            snap.usage.insert(
                Bucket {
                    grain,
                    start,
                    key_id: key_id.to_string(),
                    model: model.to_string(),
                },
                c,
            );
        }
    }
    Ok(snap)
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> Option<T> {
    serde_json::from_str(v)
        .map_err(|e| crate::error!("store: a stored {what} record does not parse ({e}); skipped"))
        .ok()
}
