//! Keys and parameters: polled from the store (a version counter, every `keys_poll`, default
//! 250 ms, so a key revoked anywhere is refused by every reactor within a second) and published
//! to the reactors as a new immutable [`KeySet`]. Admin calls that change the store land here.
//!
//! With the store unreachable the last published set stays in force. A copy of the set (hashes
//! only) is kept in `keys.snapshot` in the data directory, so a node that starts while its
//! store is down still knows the keys it knew.

use crate::side::deferred::CallKind;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::stats::{add, set};
use super::{Command, SideOptions, SideStats};
use crate::access::key::{from_hex, to_hex};
use crate::access::{Access, KeyEntry, KeySet, Limiter, Tier};
use crate::store::{NewKey, Store, StoredKey};
use beast_core::clock::wall_ms;

/// Gives every active key a stable slot in the [`Limiter`] across reloads.
#[derive(Default)]
pub(crate) struct KeyBook {
    slots: HashMap<u64, u32>,
    free: Vec<u32>,
    /// Slots of keys that just left: reactors may still hold a set naming them, so they are
    /// given out only from the next build on.
    cooling: Vec<u32>,
    next: u32,
}

impl KeyBook {
    /// The key set for `keys` (revoked ones left out); slots of keys that left are reset.
    pub fn build(&mut self, keys: &[StoredKey], limiter: &Limiter) -> KeySet {
        let active: HashMap<u64, &StoredKey> = keys
            .iter()
            .filter(|k| k.revoked_ms.is_none())
            .map(|k| (k.id, k))
            .collect();
        let gone: Vec<u64> = self
            .slots
            .keys()
            .filter(|id| !active.contains_key(id))
            .copied()
            .collect();
        self.free.append(&mut self.cooling);
        for id in gone {
            if let Some(slot) = self.slots.remove(&id) {
                self.cooling.push(slot);
            }
        }
        let mut entries = Vec::with_capacity(active.len());
        for key in keys.iter().filter(|k| k.revoked_ms.is_none()) {
            let slot = match self.slots.get(&key.id) {
                Some(slot) => *slot,
                None => {
                    let slot = match self.free.pop() {
                        Some(slot) => slot,
                        None if (self.next as usize) < limiter.capacity() => {
                            self.next += 1;
                            self.next - 1
                        }
                        None => {
                            tracing::error!(
                                key_id = key.id,
                                capacity = limiter.capacity(),
                                "more active keys than rate-limit slots; key not loaded"
                            );
                            continue;
                        }
                    };
                    limiter.reset(slot);
                    self.slots.insert(key.id, slot);
                    slot
                }
            };
            entries.push((
                key.hash,
                KeyEntry {
                    id: key.id,
                    tier: key.tier,
                    slot,
                },
            ));
        }
        KeySet::new(entries)
    }
}

/// The keys' last known state, hashes only (no secret is on disk).
#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    keys: Vec<(u64, String, String)>,
}

fn save_snapshot(dir: &Path, keys: &[StoredKey]) {
    let snapshot = Snapshot {
        keys: keys
            .iter()
            .filter(|k| k.revoked_ms.is_none())
            .map(|k| (k.id, to_hex(&k.hash), k.tier.name().to_string()))
            .collect(),
    };
    let path = dir.join("keys.snapshot");
    let tmp = dir.join("keys.snapshot.tmp");
    let written = serde_json::to_vec(&snapshot)
        .map_err(std::io::Error::other)
        .and_then(|bytes| std::fs::write(&tmp, bytes))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot save the key snapshot");
    }
}

fn load_snapshot(dir: &Path) -> Option<Vec<StoredKey>> {
    let bytes = std::fs::read(dir.join("keys.snapshot")).ok()?;
    let snapshot: Snapshot = serde_json::from_slice(&bytes).ok()?;
    Some(
        snapshot
            .keys
            .into_iter()
            .filter_map(|(id, hash, tier)| {
                Some(StoredKey {
                    id,
                    hash: from_hex(&hash)?,
                    prefix: String::new(),
                    name: String::new(),
                    tier: tier.parse::<Tier>().ok()?,
                    created_ms: 0,
                    revoked_ms: None,
                })
            })
            .collect(),
    )
}

struct Keeper {
    options: SideOptions,
    access: Arc<Access>,
    stats: Arc<SideStats>,
    book: KeyBook,
    store: Option<Store>,
    keys_version: Option<i64>,
    params_version: Option<i64>,
    /// Keys revoked by an admin call that the store does not have revoked yet: left out of
    /// every published set, and their revocation retried on every poll.
    revoking: std::collections::HashSet<u64>,
    outbox: Arc<crate::side::deferred::Outbox>,
    /// The store's being down at start has been logged.
    reported_down: bool,
}

pub async fn run(
    options: SideOptions,
    access: Arc<Access>,
    stats: Arc<SideStats>,
    (mut mailbox, keys_read, outbox): (
        mpsc::Receiver<Command>,
        std::sync::mpsc::Sender<()>,
        Arc<crate::side::deferred::Outbox>,
    ),
    mut stopped: watch::Receiver<bool>,
) {
    let mut keeper = Keeper {
        options,
        access,
        stats,
        book: KeyBook::default(),
        store: None,
        keys_version: None,
        params_version: None,
        revoking: std::collections::HashSet::new(),
        outbox,
        reported_down: false,
    };
    if let Some(keys) = load_snapshot(&keeper.options.data_dir) {
        keeper.publish(&keys, false);
    }
    keeper.refresh().await;
    let _ = keys_read.send(());
    let mut tick = tokio::time::interval(keeper.options.keys_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => keeper.refresh().await,
            Some(command) = mailbox.recv() => keeper.apply(command).await,
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
}

impl Keeper {
    async fn store(&mut self) -> Option<&mut Store> {
        if self.store.as_ref().is_none_or(Store::is_closed) {
            self.store = None;
            let url = self.options.database_url.clone();
            match tokio::time::timeout(
                Duration::from_secs(3),
                Store::open(url.as_deref(), &self.options.data_dir),
            )
            .await
            {
                Ok(Ok(store)) => self.store = Some(store),
                Ok(Err(e)) => self.failed(&e.to_string()),
                Err(_) => self.failed("timed out connecting"),
            }
        }
        self.store.as_mut()
    }

    fn failed(&mut self, error: &str) {
        let was_up = self.stats.store_up.swap(false, Ordering::Relaxed);
        if was_up {
            tracing::warn!(
                error,
                "key store unreachable; the keys in force stay in force"
            );
        } else if !std::mem::replace(&mut self.reported_down, true) {
            // Down from the start: said once, with what the node serves with instead.
            tracing::error!(
                error,
                keys = self.access.keys().len(),
                "key store unreachable at start; serving with the keys of keys.snapshot (if any) until it answers"
            );
        }
        add(&self.stats.store_errors, 1);
    }

    fn publish(&mut self, keys: &[StoredKey], from_store: bool) {
        let kept: Vec<StoredKey> = keys
            .iter()
            .filter(|k| !self.revoking.contains(&k.id))
            .cloned()
            .collect();
        let set_ = self.book.build(&kept, self.access.limiter());
        set(&self.stats.keys_active, set_.len() as u64);
        if from_store {
            set(&self.stats.keys_total, keys.len() as u64);
            self.stats.keys_loaded.store(true, Ordering::Release);
        }
        self.access.publish(set_);
        add(&self.stats.key_reloads, 1);
    }

    /// Reloads keys and parameters if the store says they changed.
    async fn refresh(&mut self) {
        self.retry_revocations().await;
        let (known_keys, known_params) = (self.keys_version, self.params_version);
        let Some(store) = self.store().await else {
            return;
        };
        let result = async {
            let keys_version = store.version("keys").await?;
            let params_version = store.version("params").await?;
            let keys = if Some(keys_version) != known_keys {
                Some(store.keys().await?)
            } else {
                None
            };
            let params = if Some(params_version) != known_params {
                Some(store.params().await?)
            } else {
                None
            };
            Ok::<_, crate::store::StoreError>((keys_version, keys, params_version, params))
        }
        .await;
        match result {
            Ok((keys_version, keys, params_version, params)) => {
                if !self.stats.store_up.swap(true, Ordering::Relaxed) {
                    tracing::info!("key store reachable");
                }
                if let Some(keys) = keys {
                    self.publish(&keys, true);
                    let kept: Vec<StoredKey> = keys
                        .into_iter()
                        .filter(|k| !self.revoking.contains(&k.id))
                        .collect();
                    save_snapshot(&self.options.data_dir, &kept);
                    self.keys_version = Some(keys_version);
                    set(
                        &self.stats.keys_version,
                        u64::try_from(keys_version).unwrap_or(0),
                    );
                }
                if let Some(params) = params {
                    self.apply_params(&params);
                    self.params_version = Some(params_version);
                }
            }
            Err(e) => {
                if e.is_retryable() {
                    self.store = None;
                }
                self.failed(&e.to_string());
            }
        }
    }

    /// Stores the admin revocations the store did not take yet.
    async fn retry_revocations(&mut self) {
        if self.revoking.is_empty() {
            return;
        }
        let ids: Vec<u64> = self.revoking.iter().copied().collect();
        let now = wall_ms();
        for id in ids {
            let Some(store) = self.store().await else {
                return;
            };
            match store.revoke_key(id, now).await {
                // Revoked now, or already: the store's own state keeps it out from here on.
                Ok(_) => {
                    self.revoking.remove(&id);
                }
                Err(e) => {
                    self.failed(&e.to_string());
                    return;
                }
            }
        }
    }

    fn apply_params(&mut self, params: &[(String, String)]) {
        for (name, value) in params {
            match (name.as_str(), value.as_str()) {
                ("system_mode", "performance") => self.access.set_performance(true),
                ("system_mode", _) => self.access.set_performance(false),
                _ => tracing::debug!(name, "parameter without a live setting"),
            }
        }
        add(&self.stats.param_reloads, 1);
    }

    async fn apply(&mut self, command: Command) {
        if let Command::Subscription(call) = command {
            // The owner's call over HTTP: answered whatever happens, so the connection waiting
            // for it is released.
            let policy = self.options.subscriptions.clone();
            let answer = match (self.store().await, &call.kind) {
                (Some(store), CallKind::Subscriptions) => {
                    crate::push::api::execute(store, &policy, &call).await
                }
                (Some(store), CallKind::UsageReport(request)) => {
                    crate::report::usage::execute(store, request).await
                }
                (None, _) => crate::push::api::unavailable(),
            };
            self.outbox.post(crate::side::deferred::Answered {
                waiter: call.waiter,
                answer,
            });
            return;
        }
        tracing::info!(command = command.name(), "admin command");
        if let Command::RevokeKey { id } = command {
            // Out of every set from now on; stored by the retry below or on a later poll. The
            // snapshot loses it too, so a restart while the store is down does not bring it back.
            self.revoking.insert(id);
            if let Some(keys) = load_snapshot(&self.options.data_dir) {
                let kept: Vec<StoredKey> = keys.into_iter().filter(|k| k.id != id).collect();
                save_snapshot(&self.options.data_dir, &kept);
            }
            self.refresh().await;
            return;
        }
        let now = wall_ms();
        let Some(store) = self.store().await else {
            tracing::error!(
                command = command.name(),
                "admin command not stored: the store is unreachable"
            );
            if matches!(command, Command::CreateKey { .. }) {
                self.stats.bootstrapped.store(false, Ordering::Release);
            }
            return;
        };
        let result = match &command {
            // Answered above.
            Command::Subscription(_) => Ok(()),
            Command::ReloadParams => {
                self.keys_version = None;
                self.params_version = None;
                Ok(())
            }
            Command::RevokeKey { .. } => Ok(()),
            Command::CreateKey {
                hash,
                prefix,
                tier,
                name,
            } => {
                // Bootstrap only on an empty store: check again where the truth is.
                match store.keys().await {
                    Ok(keys) if keys.is_empty() => store
                        .create_key(&NewKey {
                            hash: *hash,
                            prefix,
                            name,
                            tier: *tier,
                            now_ms: now,
                        })
                        .await
                        .map(|_| ()),
                    Ok(_) => {
                        tracing::warn!("bootstrap key not stored: the store already has keys");
                        self.keys_version = None;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Command::SystemMode { performance } => {
                let mode = if *performance {
                    "performance"
                } else {
                    "normal"
                };
                store.set_param("system_mode", mode, now).await
            }
        };
        if let Err(e) = result {
            tracing::error!(command = command.name(), error = %e, "admin command failed");
            self.failed(&e.to_string());
            if matches!(command, Command::CreateKey { .. }) {
                // Not stored: the operator may ask for a bootstrap key again.
                self.stats.bootstrapped.store(false, Ordering::Release);
            }
        }
        self.refresh().await;
    }
}

impl Command {
    fn name(&self) -> &'static str {
        match self {
            Command::ReloadParams => "reload-params",
            Command::RevokeKey { .. } => "invalidate-key",
            Command::CreateKey { .. } => "bootstrap-key",
            Command::SystemMode { .. } => "system-mode",
            Command::Subscription(_) => "subscription",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::ApiKey;

    fn stored(id: u64, revoked: bool) -> StoredKey {
        StoredKey {
            id,
            hash: ApiKey::hash_presented(format!("bk_key_{id:08}").as_bytes()).unwrap(),
            prefix: String::new(),
            name: String::new(),
            tier: Tier::Demo,
            created_ms: 0,
            revoked_ms: revoked.then_some(1),
        }
    }

    #[test]
    fn slots_are_stable_and_reused_one_build_later() {
        let limiter = Limiter::new(3);
        let mut book = KeyBook::default();
        let set1 = book.build(&[stored(1, false), stored(2, false)], &limiter);
        let slot = |set: &KeySet, id: u64| set.get(&stored(id, false).hash).map(|e| e.slot);
        assert_eq!((slot(&set1, 1), slot(&set1, 2)), (Some(0), Some(1)));
        let set2 = book.build(
            &[stored(1, false), stored(2, true), stored(3, false)],
            &limiter,
        );
        assert_eq!(slot(&set2, 1), Some(0), "kept");
        assert_eq!(slot(&set2, 2), None, "revoked");
        assert_eq!(
            slot(&set2, 3),
            Some(2),
            "the freed slot cools down for one build"
        );
        let set3 = book.build(
            &[stored(1, false), stored(3, false), stored(4, false)],
            &limiter,
        );
        assert_eq!(slot(&set3, 4), Some(1), "then it is given out again");
        let set4 = book.build(
            &[
                stored(1, false),
                stored(3, false),
                stored(4, false),
                stored(5, false),
            ],
            &limiter,
        );
        assert_eq!(set4.len(), 3, "no slot left for key 5");
    }
}
