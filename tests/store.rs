//! The state store (src/store) in its three modes: memory round trip; file
//! mode restart, file modes, a damaged file, a `kill -9` loop; Redis mode
//! against a real `redis-server` (two handles, restart, Redis down and back).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::redis::RedisServer;

use gemini_balance::store::{
    self, Change, Counts, Event, KeySource, Mode, Snapshot, Status, Usage, key_id,
};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gb-store-{name}-{}-{}",
        std::process::id(),
        now_ms()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn usage(key: &str, model: &str, requests: u64) -> Change {
    let counts = Counts {
        requests,
        successes: requests,
        prompt_tokens: 3 * requests,
        ..Counts::default()
    };
    Change::Usage(Usage {
        key_id: key_id(key),
        model: model.into(),
        at_ms: now_ms(),
        counts,
    })
}

fn total_requests(s: &Snapshot) -> u64 {
    s.usage
        .iter()
        .filter(|(b, _)| b.grain == store::Grain::Day)
        .map(|(_, c)| c.requests)
        .sum()
}

/// Every kind of change, as one replica would record it.
fn record_everything(h: &store::StoreHandle, later: u64) {
    let t = now_ms();
    h.record(Change::AddKey {
        key: "AIzaAdded".into(),
        source: KeySource::Added,
        at_ms: t,
    });
    h.record(Change::RemoveKey {
        id: key_id("AIzaEnv1"),
        at_ms: t,
    });
    h.record(Change::Disable {
        id: key_id("AIzaEnv2"),
        reason: Some("API key expired".into()),
        at_ms: t,
    });
    h.record(Change::Cooldown {
        id: key_id("AIzaEnv3"),
        model: "gemini-2.5-flash".into(),
        until_ms: later,
    });
    h.record(Change::Rest {
        id: key_id("AIzaEnv3"),
        until_ms: later,
    });
    h.record(Change::Failures {
        id: key_id("AIzaEnv3"),
        count: 2,
        at_ms: t,
    });
    h.record(Change::Setting {
        name: "MAX_RETRIES".into(),
        value: Some("5".into()),
        at_ms: t,
    });
    h.record(usage("AIzaEnv2", "gemini-2.5-flash", 7));
}

fn check_everything(s: &Snapshot, later: u64) {
    let env: Vec<String> = ["AIzaEnv1", "AIzaEnv2", "AIzaEnv3"]
        .map(String::from)
        .to_vec();
    let keys: Vec<String> = s.key_list(&env).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        ["AIzaEnv2", "AIzaEnv3", "AIzaAdded"],
        "removal remembered, addition kept"
    );
    assert_eq!(
        s.states[&key_id("AIzaEnv2")].disabled.value.as_deref(),
        Some("API key expired")
    );
    let st3 = &s.states[&key_id("AIzaEnv3")];
    assert_eq!(st3.cooldowns["gemini-2.5-flash"], later);
    assert_eq!((st3.rest_until_ms, st3.failures.value), (later, 2));
    assert_eq!(s.setting_overrides()["MAX_RETRIES"], "5");
    assert_eq!(total_requests(s), 7);
    let tokens: u64 = s.usage.values().map(|c| c.prompt_tokens).sum();
    assert_eq!(
        tokens,
        3 * 21,
        "minute, hour and day buckets each hold the tokens"
    );
}

#[tokio::test]
async fn memory_mode_round_trip() {
    let (h, snap) = store::open_mode(Mode::Memory, None).await.unwrap();
    assert_eq!(snap, Snapshot::default());
    assert_eq!(h.status(), Status::Memory);
    let later = now_ms() + 3_600_000;
    record_everything(&h, later);
    h.flush().await.unwrap();
    check_everything(&h.load().await, later);
}

#[tokio::test]
async fn file_mode_keeps_everything_across_a_restart_with_private_modes() {
    let dir = temp_dir("restart").join("data");
    let later = now_ms() + 3_600_000;
    {
        let (h, snap) = store::open_mode(Mode::File(dir.clone()), Some("enc-secret"))
            .await
            .unwrap();
        assert_eq!(snap, Snapshot::default());
        assert_eq!(h.status(), Status::File);
        record_everything(&h, later);
        h.shutdown().await.unwrap();
    }
    let mode = |p: &PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "DATA_DIR created 0700");
    for e in std::fs::read_dir(&dir).unwrap() {
        assert_eq!(mode(&e.unwrap().path()), 0o600, "every file 0600");
    }
    let raw = std::fs::read(dir.join("state.redb")).unwrap();
    assert!(
        !raw.windows(9).any(|w| w == b"AIzaAdded"),
        "the key is encrypted at rest"
    );
    let (h, snap) = store::open_mode(Mode::File(dir.clone()), Some("enc-secret"))
        .await
        .unwrap();
    check_everything(&snap, later);
    h.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn damaged_file_is_moved_aside_and_a_fresh_store_started() {
    let dir = temp_dir("damaged");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("state.redb"), vec![0x5a; 8192]).unwrap();
    let (h, snap) = store::open_mode(Mode::File(dir.clone()), None)
        .await
        .unwrap();
    assert_eq!(snap, Snapshot::default());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let aside: Vec<_> = names
        .iter()
        .filter(|n| n.starts_with("state.redb.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside: {names:?}");
    assert_eq!(
        std::fs::read(dir.join(aside[0])).unwrap(),
        vec![0x5a; 8192],
        "kept as it was"
    );
    h.record(usage("k", "m", 1));
    h.shutdown().await.unwrap();
    let (_h, snap) = store::open_mode(Mode::File(dir.clone()), None)
        .await
        .unwrap();
    assert_eq!(total_requests(&snap), 1, "the fresh store works");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Not a test on its own: the writer child of `kill_9_never_loses_the_store`.
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var("GB_STORE_WRITER_DIR") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (h, _) = store::open_mode(Mode::File(dir.into()), None)
            .await
            .unwrap();
        eprintln!("writer ready");
        let mut i = 0u64;
        loop {
            i += 1;
            h.record(usage("AIzaWriter", "m", 1));
            h.record(Change::Failures {
                id: key_id("AIzaWriter"),
                count: (i % 1000) as u32,
                at_ms: now_ms(),
            });
            if i.is_multiple_of(50) {
                h.flush().await.unwrap();
            }
            tokio::task::yield_now().await;
        }
    });
}

#[test]
fn kill_9_never_loses_the_store() {
    let dir = temp_dir("kill9");
    let exe = std::env::current_exe().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut last = 0u64;
    let mut seed = now_ms();
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env("GB_STORE_WRITER_DIR", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_ready(&mut child);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(300 + (seed >> 33) % 700));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (h, snap) = rt
            .block_on(store::open_mode(Mode::File(dir.clone()), None))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let n = total_requests(&snap);
        assert!(n > last, "round {round}: counters went from {last} to {n}");
        last = n;
        rt.block_on(h.shutdown()).unwrap();
        assert!(
            !std::fs::read_dir(&dir).unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("damaged"))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn wait_ready(child: &mut Child) {
    use std::io::{BufRead, BufReader};
    let err = child.stderr.take().unwrap();
    let mut lines = BufReader::new(err).lines();
    for l in lines.by_ref() {
        if l.unwrap().contains("writer ready") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
}

// ---- Redis mode ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_handles_share_counts_and_state_and_survive_restart() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let (a, _) = store::open_mode(redis.mode(), Some("enc")).await.unwrap();
    let (b, _) = store::open_mode(redis.mode(), Some("enc")).await.unwrap();
    assert_eq!((a.status(), b.status()), (Status::Redis, Status::Redis));
    let mut events = b.subscribe();
    tokio::time::sleep(Duration::from_millis(300)).await; // the subscriber is connected
    for _ in 0..100 {
        a.record(usage("AIzaShared", "m", 1));
        b.record(usage("AIzaShared", "m", 1));
    }
    let t0 = Instant::now();
    a.record(Change::Disable {
        id: key_id("AIzaShared"),
        reason: Some("suspended".into()),
        at_ms: now_ms(),
    });
    let seen = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Ok(Event::Change(Change::Disable { reason, .. })) = events.recv().await {
                return reason;
            }
        }
    })
    .await
    .expect("the other handle sees the disabled key within 1 s");
    assert_eq!(seen.as_deref(), Some("suspended"));
    assert!(t0.elapsed() < Duration::from_secs(1));
    let later = now_ms() + 600_000;
    a.record(Change::Cooldown {
        id: key_id("AIzaShared"),
        model: "m".into(),
        until_ms: later,
    });
    b.record(Change::Cooldown {
        id: key_id("AIzaShared"),
        model: "m".into(),
        until_ms: later - 5000,
    });
    a.record(Change::AddKey {
        key: "AIzaAddedA".into(),
        source: KeySource::Added,
        at_ms: now_ms(),
    });
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    drop((a, b));
    let (c, snap) = store::open_mode(redis.mode(), Some("enc")).await.unwrap();
    assert_eq!(
        total_requests(&snap),
        200,
        "counts from both add up exactly"
    );
    let st = &snap.states[&key_id("AIzaShared")];
    assert_eq!(st.disabled.value.as_deref(), Some("suspended"));
    assert_eq!(st.cooldowns["m"], later, "the later deadline wins");
    assert_eq!(snap.key_list(&[]).len(), 1);
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_never_blocks_and_merges_when_back() {
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let port = redis.port;
    let mode = redis.mode();
    let (a, _) = store::open_mode(mode.clone(), None).await.unwrap();
    a.record(usage("AIzaK", "m", 5));
    a.flush().await.unwrap();
    drop(redis); // Redis stops
    let t = Instant::now();
    for _ in 0..10_000 {
        a.record(usage("AIzaK", "m", 1));
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "record never blocks"
    );
    assert!(a.flush().await.is_err());
    assert_eq!(a.status(), Status::Degraded);
    let later = now_ms() + 600_000;
    a.record(Change::Cooldown {
        id: key_id("AIzaK"),
        model: "m".into(),
        until_ms: later,
    });
    let redis = RedisServer::start(Some(port)).unwrap(); // back, empty
    let t = Instant::now();
    while a.status() != Status::Redis {
        assert!(t.elapsed() < Duration::from_secs(10), "reconnects");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.flush().await.unwrap();
    let snap = a.load().await;
    assert_eq!(
        total_requests(&snap),
        10_000,
        "the counts kept while down are added on reconnect"
    );
    assert_eq!(snap.states[&key_id("AIzaK")].cooldowns["m"], later);
    drop(redis);
}

#[tokio::test]
async fn redis_unreachable_at_start_is_degraded_not_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mode = Mode::Redis {
        url: format!("redis://127.0.0.1:{port}/"),
        prefix: "gb:".into(),
    };
    let (h, snap) = store::open_mode(mode, None).await.unwrap();
    assert_eq!(h.status(), Status::Degraded);
    assert_eq!(snap, Snapshot::default());
    h.record(usage("k", "m", 1));
    assert!(
        store::open_mode(
            Mode::Redis {
                url: "nonsense://x".into(),
                prefix: "gb:".into()
            },
            None
        )
        .await
        .is_err()
    );
}

/// With `ENCRYPTION_KEY`, a key added by one replica travels to the others
/// sealed (as it is stored): the pub/sub channel never carries it in clear,
/// and the other handle still receives the key itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_events_carry_added_keys_sealed() {
    use futures_util::StreamExt;
    let Some(redis) = RedisServer::start(None) else {
        return;
    };
    let (a, _) = store::open_mode(redis.mode(), Some("enc")).await.unwrap();
    let (b, _) = store::open_mode(redis.mode(), Some("enc")).await.unwrap();
    let mut events = b.subscribe();
    // A plain subscriber on the same channel: what anyone with Redis access sees.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe("gbtest:events").await.unwrap();
    let mut raw = ps.into_on_message();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let secret = format!("AIza{}", "S".repeat(35));
    a.record(Change::AddKey {
        key: secret.clone(),
        source: KeySource::Added,
        at_ms: now_ms(),
    });
    a.flush().await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(2), raw.next())
        .await
        .expect("a message on the channel")
        .expect("a message");
    let payload = String::from_utf8_lossy(msg.get_payload_bytes()).to_string();
    assert!(payload.contains("enc1:"), "sealed: {payload}");
    assert!(
        !payload.contains(&secret),
        "the key in clear on pub/sub: {payload}"
    );
    let got = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Ok(Event::Change(Change::AddKey { key, .. })) = events.recv().await {
                return key;
            }
        }
    })
    .await
    .expect("the other handle gets the added key");
    assert_eq!(got, secret);
    drop((a, b));
}
