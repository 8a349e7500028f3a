//! Unit tests of the key pool (selection, outcomes, timing, the slot list).

use super::pool::*;
use super::*;
use std::time::Duration;
use tokio::time::Instant;

fn pool(n: usize) -> KeyPool {
    KeyPool::new(
        (0..n).map(|i| format!("key-{i}-abcdefghijkl")).collect(),
        Selection::RoundRobin,
        2,
    )
}

#[test]
fn position_finds_full_keys_only() {
    let p = KeyPool::new(
        vec!["key-one-000000".into(), "key-two-000000".into()],
        Selection::RoundRobin,
        3,
    );
    assert_eq!(p.position("key-two-000000"), Some(1));
    assert_eq!(p.position("key-one-000000"), Some(0));
    assert_eq!(p.position("key-two"), None);
    assert_eq!(p.position(p.masked(0)), None);
}

#[test]
fn masks_keys() {
    assert_eq!(mask("AIzaSA1234567890abcdefghijklmnopqrx1Y2"), "AIza…x1Y2");
    assert_eq!(mask("sk-12345"), "…45");
    assert_eq!(mask("abc"), "…");
}

#[test]
fn round_robin_is_even() {
    let p = pool(3);
    let mut counts = [0; 3];
    for _ in 0..300 {
        if let Pick::Key(i) = p.pick("m", &[]) {
            counts[i] += 1;
        }
    }
    assert_eq!(counts, [100, 100, 100]);
}

#[test]
fn other_selections_spread_and_skip_dead_keys() {
    for sel in [
        Selection::Random,
        Selection::LeastUsed,
        Selection::TimeWindow,
    ] {
        let p = KeyPool::new(
            (0..4).map(|i| format!("key-{i}-abcdefghijkl")).collect(),
            sel,
            3,
        );
        p.report(2, "m", &Outcome::KeyInvalid("bad".into()));
        let mut counts = [0; 4];
        for _ in 0..400 {
            match p.pick("m", &[]) {
                Pick::Key(i) => counts[i] += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(counts[2], 0, "{sel:?} never picks a disabled key");
        match sel {
            Selection::LeastUsed => assert!(
                counts
                    .iter()
                    .enumerate()
                    .all(|(i, c)| i == 2 || (133..=134).contains(c)),
                "{counts:?}"
            ),
            Selection::Random => assert!(
                counts.iter().enumerate().all(|(i, c)| i == 2 || *c > 50),
                "{sel:?} {counts:?}"
            ),
            // One 10-second slice: the same key every time (its key, 0, is usable).
            _ => assert_eq!(counts.iter().filter(|c| **c > 0).count(), 1, "{counts:?}"),
        }
    }
    assert_eq!(Selection::parse("time-window"), Some(Selection::TimeWindow));
    assert_eq!(Selection::parse("nope"), None);
}

#[test]
fn invalid_keys_are_skipped_until_reset() {
    let p = pool(2);
    p.report(0, "m", &Outcome::KeyInvalid("bad".into()));
    for _ in 0..10 {
        assert_eq!(p.pick("m", &[]), Pick::Key(1));
    }
    p.report(1, "m", &Outcome::KeyInvalid("bad".into()));
    assert_eq!(p.pick("m", &[]), Pick::Unavailable);
    p.reset(0);
    assert_eq!(p.pick("m", &[]), Pick::Key(0));
}

// Timing tests run on tokio's paused clock: `advance` moves the pool's
// time exactly, without sleeping.
#[tokio::test(start_paused = true)]
async fn quota_cools_per_model() {
    let p = pool(1);
    let q = Outcome::Quota {
        cooldown: Duration::from_secs(30),
        daily: false,
        message: "q".into(),
    };
    p.report(0, "a", &q);
    assert!(
        matches!(p.pick("a", &[]), Pick::Cooling(d) if d <= Duration::from_secs(30) && d > Duration::from_secs(28))
    );
    assert_eq!(p.pick("b", &[]), Pick::Key(0));
}

#[tokio::test(start_paused = true)]
async fn quota_cooldown_ends_exactly_on_time() {
    let p = pool(1);
    let q = Outcome::Quota {
        cooldown: Duration::from_secs(30),
        daily: false,
        message: "q".into(),
    };
    p.report(0, "a", &q);
    tokio::time::advance(Duration::from_millis(29_500)).await;
    assert_eq!(p.pick("a", &[]), Pick::Cooling(Duration::from_millis(500)));
    assert_eq!(p.counts().cooling, 1);
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(p.pick("a", &[]), Pick::Key(0), "back after exactly 30 s");
    assert_eq!(p.counts().active, 1);
}

#[tokio::test(start_paused = true)]
async fn rests_double_from_five_seconds_to_five_minutes() {
    let p = pool(1); // MAX_FAILURES = 2
    let mut expected = FIRST_BACKOFF;
    for _ in 0..9 {
        p.report(0, "m", &Outcome::Transient("503".into()));
        p.report(0, "m", &Outcome::Transient("503".into()));
        assert_eq!(p.pick("m", &[]), Pick::Cooling(expected));
        tokio::time::advance(expected - Duration::from_millis(1)).await;
        assert_eq!(p.counts().resting, 1, "still resting 1 ms before the end");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(p.pick("m", &[]), Pick::Key(0), "usable after {expected:?}");
        expected = (expected * 2).min(MAX_BACKOFF);
    }
    assert_eq!(expected, MAX_BACKOFF, "the rests reached the cap");
    p.report(0, "m", &Outcome::Success);
    p.report(0, "m", &Outcome::Transient("503".into()));
    p.report(0, "m", &Outcome::Transient("503".into()));
    assert_eq!(
        p.pick("m", &[]),
        Pick::Cooling(FIRST_BACKOFF),
        "a success restarts the backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn time_window_moves_every_ten_seconds() {
    let p = KeyPool::new(
        (0..3).map(|i| format!("key-{i}-abcdefghijkl")).collect(),
        Selection::TimeWindow,
        2,
    );
    for window in [0, 1, 2, 0, 1] {
        for _ in 0..5 {
            assert_eq!(p.pick("m", &[]), Pick::Key(window));
        }
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert_eq!(p.pick("m", &[]), Pick::Key(window), "same 10 s window");
        tokio::time::advance(Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn daily_reset_clears_per_day_cooldowns_only() {
    let p = pool(3);
    let daily = Outcome::Quota {
        cooldown: Duration::from_secs(20 * 3600),
        daily: true,
        message: "per day".into(),
    };
    let minute = Outcome::Quota {
        cooldown: Duration::from_secs(60),
        daily: false,
        message: "per minute".into(),
    };
    p.report(0, "a", &daily);
    p.report(1, "a", &minute);
    p.report(2, "a", &daily);
    p.report(2, "b", &minute);
    assert_eq!(p.counts().cooling, 3);
    assert_eq!(p.reset_daily_quotas(), 2);
    // Key 0 is back for "a"; key 1 still cools for "a"; key 2 is back for
    // "a" but still cools for "b".
    assert_eq!(p.pick("a", &[1, 2]), Pick::Key(0));
    assert_eq!(p.pick("a", &[0, 2]), Pick::Cooling(Duration::from_secs(60)));
    assert_eq!(p.pick("a", &[0, 1]), Pick::Key(2));
    assert_eq!(p.pick("b", &[0, 1]), Pick::Cooling(Duration::from_secs(60)));
    assert_eq!(p.counts().cooling, 2);
    assert_eq!(p.reset_daily_quotas(), 0, "nothing left to clear");
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(p.counts().active, 3, "the per-minute cooldowns ran out");
    // An expired per-day cooldown is dropped but not counted.
    p.report(0, "a", &daily);
    tokio::time::advance(Duration::from_secs(20 * 3600)).await;
    assert_eq!(p.reset_daily_quotas(), 0);
}

#[test]
fn the_clock_works_outside_a_runtime() {
    // The pool is also used from plain threads (no tokio runtime): its
    // clock then falls back to std's.
    let p = pool(1);
    p.report(
        0,
        "a",
        &Outcome::Quota {
            cooldown: Duration::from_millis(20),
            daily: false,
            message: "q".into(),
        },
    );
    assert!(matches!(p.pick("a", &[]), Pick::Cooling(_)));
    std::thread::sleep(Duration::from_millis(25));
    assert_eq!(p.pick("a", &[]), Pick::Key(0));
}

#[test]
fn a_keys_cooling_list_is_capped() {
    let p = pool(1);
    let quota = |secs| Outcome::Quota {
        cooldown: Duration::from_secs(secs),
        daily: false,
        message: "q".into(),
    };
    // A long cooldown first: it outlives the flood below.
    p.report(0, "gemini-2.5-pro", &quota(86_400));
    for i in 0..1000 {
        p.report(0, &format!("m-{i}"), &quota(60 + i));
    }
    let len = || lock(&p.slots.get(0).unwrap().state).cooling.len();
    assert_eq!(len(), MAX_COOLING);
    assert!(matches!(p.pick("gemini-2.5-pro", &[]), Pick::Cooling(_)));
    assert!(matches!(p.pick("m-999", &[]), Pick::Cooling(_)));
    assert_eq!(
        p.pick("m-0", &[]),
        Pick::Key(0),
        "the soonest-ending made room"
    );
    // Invalid names are recorded as `other`, whole names never.
    let huge = "x".repeat(100_000);
    p.report(0, &huge, &quota(90_000));
    let st = lock(&p.slots.get(0).unwrap().state);
    assert_eq!(st.cooling.len(), MAX_COOLING);
    assert!(
        st.cooling
            .iter()
            .all(|c| c.model.len() <= crate::model::MAX_LEN)
    );
    assert!(st.cooling.iter().any(|c| c.model == crate::model::OTHER));
    drop(st);
    // Expired entries are pruned before anything is evicted.
    let entry = |model: &str, until| Cooling {
        model: model.to_string(),
        until,
        daily: false,
    };
    let mut list = vec![entry("old", Instant::now())];
    let now = Instant::now() + Duration::from_millis(1);
    cool(&mut list, entry("new", now + Duration::from_secs(1)), now);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].model, "new");
}

#[test]
fn transient_failures_rest_then_success_resets() {
    let p = pool(1);
    p.report(0, "m", &Outcome::Transient("503".into()));
    assert_eq!(p.pick("m", &[]), Pick::Key(0));
    p.report(0, "m", &Outcome::Success);
    p.report(0, "m", &Outcome::Transient("503".into()));
    assert_eq!(p.pick("m", &[]), Pick::Key(0), "success reset the streak");
    p.report(0, "m", &Outcome::Transient("503".into()));
    assert!(matches!(p.pick("m", &[]), Pick::Cooling(d) if d <= FIRST_BACKOFF));
    assert_eq!(p.counts().resting, 1);
}

#[test]
fn tried_keys_are_skipped() {
    let p = pool(2);
    let first = match p.pick("m", &[]) {
        Pick::Key(i) => i,
        other => panic!("{other:?}"),
    };
    assert_eq!(p.pick("m", &[first]), Pick::Key(1 - first));
    assert_eq!(p.pick("m", &[0, 1]), Pick::Unavailable);
}

#[test]
fn constant_time_tokens() {
    let toks = vec!["sk-1".to_string(), "sk-2".to_string()];
    assert!(token_matches(&toks, "sk-2"));
    assert!(!token_matches(&toks, "sk-3"));
    assert!(!token_matches(&toks, ""));
}

// ---- the dynamic pool and the store ----

use crate::store::model::{Change, KeySource, KeyState, Lww, Snapshot, key_id};
use std::sync::{Arc, Mutex as StdMutex};

/// A pool whose recorded changes land in the returned list.
fn recorded_pool(n: usize) -> (KeyPool, Arc<StdMutex<Vec<Change>>>) {
    let p = pool(n);
    let seen: Arc<StdMutex<Vec<Change>>> = Arc::default();
    let s = seen.clone();
    assert!(p.set_recorder(Box::new(move |c| s.lock().unwrap().push(c))));
    (p, seen)
}

#[test]
fn keys_added_and_removed_while_indices_are_held() {
    let p = pool(2);
    let held = match p.pick("m", &[]) {
        Pick::Key(i) => i,
        other => panic!("{other:?}"),
    };
    let key = p.key(held).to_string();
    assert_eq!(
        p.add("key-new-abcdefghijkl", KeySource::Added),
        Added::New(2)
    );
    assert_eq!(
        p.add("key-new-abcdefghijkl", KeySource::Added),
        Added::Duplicate(2)
    );
    assert_eq!(p.len(), 3);
    assert!(p.remove(held));
    assert!(!p.remove(held), "removed once");
    assert_eq!(p.len(), 2);
    // The held index still names the same key: an in-flight call finishes.
    assert_eq!(p.key(held), key);
    p.report(held, "m", &Outcome::Success);
    for _ in 0..20 {
        assert_ne!(
            p.pick("m", &[]),
            Pick::Key(held),
            "a removed key is never picked"
        );
    }
    assert_eq!(p.counts().active, 2);
    assert_eq!(p.find(&held.to_string()), None);
    assert!(!p.live_indices().contains(&held));
    // Added again: the same slot, fresh.
    assert_eq!(p.add(&key, KeySource::Added), Added::Revived(held));
    assert_eq!(p.len(), 3);
    assert_eq!(p.position_of_id(&key_id(&key)), Some(held));
    assert_eq!(p.find(&key_id(&key)), Some(held));
}

#[test]
fn a_pool_grows_past_its_first_segments_under_concurrent_picks() {
    let p = Arc::new(pool(1));
    let picker = {
        let p = p.clone();
        std::thread::spawn(move || {
            for _ in 0..20_000 {
                if let Pick::Key(i) = p.pick("m", &[]) {
                    assert!(!p.key(i).is_empty());
                    p.report(i, "m", &Outcome::Success);
                }
            }
        })
    };
    for i in 0..500 {
        assert!(
            p.add(&format!("key-grow-{i:06}-xxxx"), KeySource::Added)
                .is_added()
        );
    }
    picker.join().unwrap();
    assert_eq!(p.len(), 501);
    assert_eq!(p.counts().active, 501);
}

#[test]
fn every_state_change_is_recorded_and_a_healthy_success_is_not() {
    let (p, seen) = recorded_pool(1);
    let id = key_id(p.key(0));
    p.report(0, "m", &Outcome::Success);
    assert!(seen.lock().unwrap().is_empty(), "nothing changed");
    p.report(0, "m", &Outcome::Transient("503".into()));
    p.report(0, "m", &Outcome::Transient("503".into())); // MAX_FAILURES = 2: rests
    p.report(
        0,
        "gemini-2.5-flash",
        &Outcome::Quota {
            cooldown: Duration::from_secs(30),
            daily: false,
            message: "q".into(),
        },
    );
    p.report(0, "m", &Outcome::KeyInvalid("bad".into()));
    p.report(0, "m", &Outcome::KeyInvalid("bad".into())); // already disabled
    p.reset(0);
    p.reset(0); // nothing left to clear
    let got = seen.lock().unwrap().clone();
    let kinds: Vec<&str> = got
        .iter()
        .map(|c| match c {
            Change::Failures { count: 1, .. } => "failures=1",
            Change::Failures { count: 0, .. } => "failures=0",
            Change::Rest { .. } => "rest",
            Change::Cooldown { model, .. } if model == "gemini-2.5-flash" => "cooldown",
            Change::Disable {
                reason: Some(_), ..
            } => "disable",
            Change::Clear { model: None, .. } => "clear",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "failures=1",
            "rest",
            "failures=0",
            "cooldown",
            "disable",
            "clear"
        ]
    );
    assert!(got.iter().all(|c| c.state_key() == Some(id.as_str())));
    let now = crate::clock::unix_ms();
    for c in &got {
        if let Change::Cooldown { until_ms, .. } | Change::Rest { until_ms, .. } = c {
            assert!(*until_ms > now && *until_ms <= now + 31_000, "{c:?}");
        }
    }
    // Keys added/removed are recorded too; a removed key's outcomes are not.
    seen.lock().unwrap().clear();
    assert!(p.add("key-added-abcdefgh", KeySource::Added).is_added());
    assert!(p.remove(0));
    p.report(0, "m", &Outcome::KeyInvalid("late".into()));
    let got = seen.lock().unwrap().clone();
    assert!(
        matches!(&got[0], Change::AddKey { key, source: KeySource::Added, .. } if key == "key-added-abcdefgh")
    );
    assert!(matches!(&got[1], Change::RemoveKey { id: i, .. } if *i == id));
    assert_eq!(got.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn other_replicas_changes_apply_without_being_recorded() {
    let (p, seen) = recorded_pool(2);
    let id0 = key_id(p.key(0));
    let now = crate::clock::unix_ms();
    assert!(p.apply(&Change::Disable {
        id: id0.clone(),
        reason: Some("suspended".into()),
        at_ms: now,
    }));
    assert_eq!(p.pick("m", &[]), Pick::Key(1));
    assert_eq!(p.pick("m", &[]), Pick::Key(1));
    // A stale enable loses; a later one wins.
    p.apply(&Change::Disable {
        id: id0.clone(),
        reason: None,
        at_ms: now - 10,
    });
    assert_eq!(p.counts().disabled, 1);
    p.apply(&Change::Disable {
        id: id0.clone(),
        reason: None,
        at_ms: now + 10,
    });
    assert_eq!(p.counts().disabled, 0);
    // Cooldowns: the later deadline wins.
    let id1 = key_id(p.key(1));
    for secs in [60, 20] {
        p.apply(&Change::Cooldown {
            id: id1.clone(),
            model: "m".into(),
            until_ms: crate::clock::unix_ms() + secs * 1000,
        });
    }
    assert!(
        matches!(p.pick("m", &[0]), Pick::Cooling(d) if d > Duration::from_secs(59) && d <= Duration::from_secs(60))
    );
    p.apply(&Change::Clear {
        id: id1.clone(),
        model: Some("m".into()),
        at_ms: now,
    });
    assert_eq!(p.pick("m", &[0]), Pick::Key(1));
    p.apply(&Change::Rest {
        id: id1.clone(),
        until_ms: crate::clock::unix_ms() + 5_000,
    });
    assert_eq!(p.counts().resting, 1);
    assert!(p.apply(&Change::AddKey {
        key: "key-remote-abcdefg".into(),
        source: KeySource::Added,
        at_ms: now,
    }));
    assert!(p.apply(&Change::RemoveKey {
        id: id0.clone(),
        at_ms: now,
    }));
    assert_eq!(p.len(), 2);
    assert!(!p.apply(&Change::Setting {
        name: "X".into(),
        value: None,
        at_ms: now,
    }));
    assert!(
        seen.lock().unwrap().is_empty(),
        "no echo: {:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test(start_paused = true)]
async fn load_and_reconcile_follow_the_snapshot() {
    let env: Vec<String> = (0..3).map(|i| format!("key-{i}-abcdefghijkl")).collect();
    let now = crate::clock::unix_ms();
    let mut snap = Snapshot::default();
    snap.apply(&Change::RemoveKey {
        id: key_id(&env[0]),
        at_ms: now,
    });
    snap.apply(&Change::AddKey {
        key: env[1].clone(),
        source: KeySource::Env,
        at_ms: 0,
    });
    snap.apply(&Change::AddKey {
        key: "key-added-abcdefgh".into(),
        source: KeySource::Added,
        at_ms: now,
    });
    let st = KeyState {
        disabled: Lww {
            at_ms: now,
            value: Some("expired".into()),
        },
        ..KeyState::default()
    };
    snap.states.insert(key_id(&env[1]), st);
    let mut cooling = KeyState::default();
    cooling.cooldowns.insert("m".into(), now + 90_000);
    cooling.cooldowns.insert("old".into(), now - 1);
    snap.states.insert(key_id("key-added-abcdefgh"), cooling);
    let p = KeyPool::new(Vec::new(), Selection::RoundRobin, 3);
    let new_env = p.load(&env, &snap);
    assert_eq!(new_env, [env[2].clone()], "only the key new in API_KEYS");
    assert_eq!(
        p.len(),
        3,
        "env[1], env[2] and the added key; env[0] stays removed"
    );
    assert_eq!(p.position(&env[0]), None);
    let info = p.list();
    let by = |k: &str| info.iter().find(|i| i.id == key_id(k)).unwrap().clone();
    assert_eq!(by(&env[1]).state, "disabled");
    assert_eq!(by(&env[1]).reason.as_deref(), Some("expired"));
    assert_eq!(by("key-added-abcdefgh").state, "cooling");
    assert_eq!(by("key-added-abcdefgh").source, KeySource::Added);
    assert_eq!(by("key-added-abcdefgh").cooling, [("m".to_string(), 90)]);
    assert_eq!(by(&env[2]).state, "active");
    // A resync: env[2] was removed elsewhere, env[0] added back.
    let mut later = snap.clone();
    later.apply(&Change::RemoveKey {
        id: key_id(&env[2]),
        at_ms: now + 5,
    });
    later.apply(&Change::AddKey {
        key: env[0].clone(),
        source: KeySource::Added,
        at_ms: now + 5,
    });
    p.reconcile(&later);
    assert!(p.find(&key_id(&env[2])).is_none());
    assert!(p.find(&key_id(&env[0])).is_some());
    assert_eq!(p.len(), 3);
}

/// A pool whose keys are held to `rpm` calls a minute on every model.
fn limited(n: usize, rpm: u32) -> KeyPool {
    let p = pool(n);
    let v = serde_json::json!({"*": {"rpm": rpm}});
    p.set_quota(quota::Policy {
        configured: quota::ModelLimits::parse(&v).unwrap(),
        ..quota::Policy::default()
    });
    p
}

#[tokio::test(start_paused = true)]
async fn keys_without_headroom_are_skipped_and_round_robin_stays_even() {
    let p = limited(3, 4);
    let mut counts = [0; 3];
    for _ in 0..12 {
        match p.pick("m", &[]) {
            Pick::Key(i) => counts[i] += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(counts, [4, 4, 4]);
    match p.pick("m", &[]) {
        Pick::Quota(q) => {
            assert_eq!((q.keys, q.limit, q.window), (3, 4, quota::Window::Minute));
            assert_eq!(q.wait, Duration::from_secs(60));
            assert_eq!(
                q.message("m"),
                "all 3 keys are at their 4 requests/minute limit for m; the next slot opens in 60 s"
            );
        }
        other => panic!("{other:?}"),
    }
    // Another model has its own counts.
    assert!(matches!(p.pick("n", &[]), Pick::Key(_)));
    // A minute later every key has room again.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(matches!(p.pick("m", &[]), Pick::Key(_)));
    // Off: no counting, no skipping.
    p.set_quota(quota::Policy {
        aware: false,
        ..(*p.quota_policy()).clone()
    });
    for _ in 0..20 {
        assert!(matches!(p.pick("m", &[]), Pick::Key(_)));
    }
}

#[test]
fn concurrent_picks_never_overshoot_a_limit() {
    let p = std::sync::Arc::new(limited(4, 25));
    let served = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    if let Pick::Key(_) = p.pick("m", &[]) {
                        served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(
        served.into_inner(),
        100,
        "4 keys x 25 a minute, not one more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_gives_its_slot_back_and_teaches_googles_value() {
    let p = limited(1, 5);
    assert!(matches!(p.pick("m", &[]), Pick::Key(0)));
    let body = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaDimensions":{"model":"m"},"quotaValue":"2"}]}]}}"#;
    p.learn(0, "m", body);
    p.report(
        0,
        "m",
        &Outcome::Quota {
            cooldown: Duration::from_secs(1),
            daily: false,
            message: "q".into(),
        },
    );
    let info = &p.list()[0].quota[0];
    assert_eq!((info.minute.used, info.minute.limit), (0, Some(2)));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(matches!(p.pick("m", &[]), Pick::Key(0)));
    assert!(matches!(p.pick("m", &[]), Pick::Key(0)));
    assert!(matches!(p.pick("m", &[]), Pick::Quota(_)));
}

// ---- the cost of a pick: parked keys ----

fn quota_for(secs: u64) -> Outcome {
    Outcome::Quota {
        cooldown: Duration::from_secs(secs),
        daily: false,
        message: "q".into(),
    }
}

/// Picks `rounds` times; the keys chosen, per key.
fn picks(p: &KeyPool, model: &str, rounds: usize) -> std::collections::BTreeMap<usize, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..rounds {
        match p.pick(model, &[]) {
            Pick::Key(i) => *seen.entry(i).or_default() += 1,
            other => panic!("{other:?}"),
        }
    }
    seen
}

fn examined(p: &KeyPool) -> u64 {
    p.examined.swap(0, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn a_pick_looks_at_a_few_keys_when_9900_of_10000_are_cooling() {
    for sel in [
        Selection::RoundRobin,
        Selection::Random,
        Selection::TimeWindow,
    ] {
        let p = KeyPool::new(
            (0..10_000)
                .map(|i| format!("key-{i}-abcdefghijkl"))
                .collect(),
            sel,
            3,
        );
        // Every 100th key serves; the others cool (in runs of 99 between).
        for i in (0..10_000).filter(|i| i % 100 != 0) {
            p.report(i, "m", &quota_for(3_600));
        }
        // Each cooling key is looked at once, then parked until its time.
        picks(&p, "m", 5_000);
        let first = examined(&p);
        assert!(
            first <= 9_900 + 2 * 5_000,
            "{sel:?}: {first} keys looked at for the first 5,000 picks"
        );
        let seen = picks(&p, "m", 1_000);
        let looked = examined(&p);
        assert!(seen.keys().all(|i| i % 100 == 0), "{sel:?} {seen:?}");
        assert!(
            looked <= 2 * 1_000,
            "{sel:?}: {looked} keys looked at for 1,000 picks"
        );
        if sel == Selection::RoundRobin {
            assert!(seen.values().all(|c| *c == 10), "even: {seen:?}");
        }
        if sel == Selection::Random {
            assert!(seen.len() > 80, "spread: {} keys", seen.len());
        }
        // Another model's rotation is its own: every key serves it.
        let other = picks(&p, "n", 10_000);
        if sel == Selection::RoundRobin {
            assert_eq!(other.len(), 10_000);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_parked_key_comes_back_at_its_time_or_when_something_frees_it() {
    let p = pool(1_000);
    for i in (0..1_000).filter(|i| *i != 20) {
        p.report(i, "m", &quota_for(if i == 10 { 30 } else { 3_600 }));
    }
    assert_eq!(picks(&p, "m", 50).keys().collect::<Vec<_>>(), [&20]);
    tokio::time::advance(Duration::from_millis(29_999)).await;
    assert_eq!(picks(&p, "m", 5).keys().collect::<Vec<_>>(), [&20]);
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        picks(&p, "m", 10).into_iter().collect::<Vec<_>>(),
        [(10, 5), (20, 5)],
        "key 10 is back after exactly 30 s"
    );
    examined(&p);
    // A reset brings a parked key back at once (not at its wake-up).
    p.reset(500);
    let seen = picks(&p, "m", 30);
    assert_eq!(seen.get(&500), Some(&10), "{seen:?}");
    assert!(examined(&p) <= 2 * 30, "still only the usable keys");
    // A daily reset, a reset of every key, the same.
    p.report(
        700,
        "m",
        &Outcome::Quota {
            cooldown: Duration::from_secs(20 * 3600),
            daily: true,
            message: "day".into(),
        },
    );
    picks(&p, "m", 10);
    assert_eq!(p.reset_daily_quotas(), 1);
    assert!(picks(&p, "m", 40).contains_key(&700));
    // A disabled key parked for good comes back when re-verified.
    p.report(20, "m", &Outcome::KeyInvalid("bad".into()));
    assert!(!picks(&p, "m", 40).contains_key(&20));
    p.reset(20);
    assert!(picks(&p, "m", 40).contains_key(&20));
}

#[tokio::test(start_paused = true)]
async fn keys_parked_for_quota_come_back_when_the_limit_rises_or_for_a_smaller_call() {
    let p = limited(200, 1);
    // Each key takes one call a minute; then all are full.
    assert_eq!(picks(&p, "m", 200).len(), 200);
    assert!(matches!(p.pick("m", &[]), Pick::Quota(_)));
    // MODEL_LIMITS raised: every key has room again at once.
    let limits = serde_json::json!({"*": {"rpm": 3, "tpm": 1000}});
    p.set_quota(quota::Policy {
        configured: quota::ModelLimits::parse(&limits).unwrap(),
        ..quota::Policy::default()
    });
    assert_eq!(p.pick_tokens("m", &[], 900), Pick::Key(0));
    for _ in 0..199 {
        assert!(matches!(p.pick_tokens("m", &[], 900), Pick::Key(i) if i != 0));
    }
    // Every key is full for another 900 tokens, not for 50: skipped for
    // the big call, not parked for the small one.
    assert!(
        matches!(p.pick_tokens("m", &[], 900), Pick::Quota(q) if q.window == quota::Window::Tokens)
    );
    assert_eq!(p.pick_tokens("m", &[], 50), Pick::Key(0));
    assert_eq!(p.pick_tokens("m", &[], 50), Pick::Key(1));
    // The minute passes: a slot opens on every key.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(picks(&p, "m", 200).len(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_key_parked_for_a_model_whose_counts_made_room_comes_back() {
    let ms = Duration::from_millis(1);
    let p = limited(1, 1);
    assert_eq!(p.pick("m", &[]), Pick::Key(0));
    tokio::time::advance(ms).await;
    // Calls on as many other models as a key keeps counts for, "m" the
    // stalest of them (its index is not: it is looked at last).
    for k in 0..MAX_COOLING - 1 {
        assert_eq!(p.pick(&format!("other-{k}"), &[]), Pick::Key(0));
    }
    tokio::time::advance(ms).await;
    assert!(matches!(p.pick("m", &[]), Pick::Quota(_)), "full: parked");
    tokio::time::advance(ms).await;
    // One more model: "m"'s counts make room, and with them its minute's.
    assert_eq!(p.pick("last", &[]), Pick::Key(0));
    assert_eq!(p.pick("m", &[]), Pick::Key(0), "back at once");
}
