//! Other replicas' changes, applied to this one: a task reads the store's
//! events ([`crate::store::StoreHandle::subscribe`], Redis pub/sub, within
//! milliseconds) and applies each to the key pool — keys added and removed,
//! disabled/enabled, cooldowns (the later deadline wins), rests, failure
//! counts, clears — settings through [`App::apply_setting_change`], and
//! the owners of files, caches and batches (`crate::affinity`). Missed
//! events (a reconnect, a lagging receiver) reload the whole store and
//! reconcile (a removal wins over a stale state). Applied changes are not
//! recorded again, so nothing echoes between replicas.
//!
//! Started once per [`App`] by [`start`], which `crate::server::serve` calls
//! (the binary and the tests both serve through it).

use std::sync::{Arc, Weak};

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::app::App;
use crate::store::{Change, Event};

/// Start applying other replicas' changes to `app` (once; later calls do
/// nothing). The task ends when the store closes or the app is dropped.
pub fn start(app: &Arc<App>) {
    if let Some(rx) = app.take_events() {
        tokio::spawn(run(Arc::downgrade(app), rx));
        if app.store.is_shared() {
            app.pool.share_quota();
            tokio::spawn(share_quota(Arc::downgrade(app)));
        }
    }
}

/// The quota sync tick (Redis mode): hand the pool's new counts to the
/// store and apply the other replicas' (see `crate::keys::shared`).
async fn share_quota(weak: Weak<App>) {
    loop {
        tokio::time::sleep(crate::store::QUOTA_SYNC_EVERY).await;
        let Some(app) = weak.upgrade() else { return };
        let deltas = app.pool.take_quota_deltas();
        let (now_ms, day) = app.pool.quota_now();
        let store = app.store.clone();
        drop(app); // not held across the round trip
        let Some(view) = store.quota_sync(deltas, now_ms, day).await else {
            continue;
        };
        let Some(app) = weak.upgrade() else { return };
        app.pool.apply_quota_view(&view);
    }
}

async fn run(weak: Weak<App>, mut rx: Receiver<Event>) {
    loop {
        let event = rx.recv().await;
        let Some(app) = weak.upgrade() else { return };
        match event {
            Ok(Event::Change(change)) => apply(&app, &change),
            Ok(Event::Resync) => resync(&app).await,
            Err(RecvError::Lagged(n)) => {
                crate::warn!("store: {n} replica event(s) missed; reloading the shared state");
                resync(&app).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Apply one change another replica made (never recorded again).
pub fn apply(app: &App, change: &Change) {
    match change {
        Change::Setting { .. } => {
            app.apply_setting_change(change);
        }
        Change::Affinity { name, owner } => {
            app.affinity.apply(name, owner.clone());
        }
        other => {
            app.pool.apply(other);
        }
    }
}

/// Reload the store and bring the pool (and the settings) in line with it.
pub async fn resync(app: &App) {
    let snap = app.store.load().await;
    app.pool.reconcile(&snap);
    app.affinity.restore(snap.affinity.clone());
    app.reload_settings(&snap.setting_overrides());
}
