//! Who may ask, and how often: API keys (kept as SHA-256 hashes), their tiers, and one rate
//! limiter per key, all checked on the request path without a lock or an allocation.
//!
//! The side thread builds a [`KeySet`] from the store and publishes it; every reactor reads the
//! current one through an `ArcSwap` (a wait-free load). Revoking a key is publishing a set
//! without it.

pub mod key;
pub(crate) mod limiter;
pub(crate) mod tier;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

pub use key::{ApiKey, KeyError, KeyHash};
pub use limiter::Limiter;
pub use tier::{Tier, TierError};

/// One usable key, as the request path sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The store's id of the key (what usage records name).
    pub id: u64,
    pub tier: Tier,
    /// This key's slot in the [`Limiter`].
    pub slot: u32,
}

/// SHA-256 outputs are already uniform: their first eight bytes are the hash.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 |= u64::from(*b) << (8 * i);
        }
    }
}

/// The usable keys at one moment.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: HashMap<KeyHash, KeyEntry, BuildHasherDefault<DigestHasher>>,
}

impl KeySet {
    pub fn new(entries: impl IntoIterator<Item = (KeyHash, KeyEntry)>) -> KeySet {
        KeySet {
            keys: entries.into_iter().collect(),
        }
    }

    pub fn get(&self, hash: &KeyHash) -> Option<&KeyEntry> {
        self.keys.get(hash)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// This set less one key (an admin revocation, published before the store has it).
    pub fn without(&self, hash: &KeyHash) -> KeySet {
        let mut keys = self.keys.clone();
        keys.remove(hash);
        KeySet { keys }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        self.keys.values()
    }
}

/// Who a request is served for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// No key, and keys are not required.
    Anonymous,
    Key {
        id: u64,
        tier: Tier,
    },
}

impl Grant {
    /// The key id usage records carry (0: anonymous).
    pub fn key_id(self) -> u64 {
        match self {
            Grant::Anonymous => 0,
            Grant::Key { id, .. } => id,
        }
    }
}

/// Why a request is refused. `Copy`: it is decided on the request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No key, and this node requires one.
    Missing,
    /// A key that is not (or no longer) valid.
    Invalid,
    /// Over the key's tier limit; retry after this many whole seconds.
    RateLimited { retry_after_s: u32 },
}

/// The keys in force and the limiter, shared by every reactor.
pub struct Access {
    keys: ArcSwap<KeySet>,
    limiter: Limiter,
    require_key: bool,
    performance: AtomicBool,
    epoch: Instant,
    /// Told of every change of mode (the log level follows the performance profile).
    on_mode: std::sync::OnceLock<ModeHook>,
}

/// Called with the new mode (true: performance) when it changes.
pub(crate) type ModeHook = Box<dyn Fn(bool) + Send + Sync>;

impl Access {
    pub fn new(require_key: bool, capacity: usize) -> Access {
        Access {
            keys: ArcSwap::from_pointee(KeySet::default()),
            limiter: Limiter::new(capacity),
            require_key,
            performance: AtomicBool::new(false),
            epoch: Instant::now(),
            on_mode: std::sync::OnceLock::new(),
        }
    }

    /// Installs what else a change of mode does (once; later calls are ignored).
    pub fn on_mode_change(&self, hook: ModeHook) {
        let _ = self.on_mode.set(hook);
    }

    /// Replaces the keys in force (the side thread, when the store changed).
    pub(crate) fn publish(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// The performance profile raises the demo tier's limit (`/admin/system-mode`). A change
    /// starts every key's limiter afresh: a schedule built at 3/s must not hold back 1 000/s.
    pub(crate) fn set_performance(&self, on: bool) {
        if self.performance.swap(on, Ordering::Relaxed) != on {
            self.limiter.reset_all();
            if let Some(hook) = self.on_mode.get() {
                hook(on);
            }
        }
    }

    pub fn performance(&self) -> bool {
        self.performance.load(Ordering::Relaxed)
    }

    pub(crate) fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Holds a key to a share of its tier's limit on this node (`None`: the node's default
    /// share), the side thread's cluster limits.
    pub(crate) fn set_share(&self, entry: &KeyEntry, share: Option<limiter::Share>) {
        let rate = entry.tier.rate(self.performance());
        self.limiter
            .set_share(entry.slot, share, self.now_us(), rate);
    }

    /// Decides a request: its key (if any) must be in force and within its tier's rate.
    /// Allocates nothing and takes no lock.
    pub fn check(&self, presented: Option<&[u8]>) -> Result<Grant, Denied> {
        let Some(presented) = presented else {
            return if self.require_key {
                Err(Denied::Missing)
            } else {
                Ok(Grant::Anonymous)
            };
        };
        let hash = ApiKey::hash_presented(presented).ok_or(Denied::Invalid)?;
        let entry = *self.keys.load().get(&hash).ok_or(Denied::Invalid)?;
        let now_us = self.now_us();
        let rate = entry.tier.rate(self.performance());
        match self.limiter.admit(entry.slot, now_us, rate) {
            Ok(()) => Ok(Grant::Key {
                id: entry.id,
                tier: entry.tier,
            }),
            Err(wait_us) => Err(Denied::RateLimited {
                retry_after_s: u32::try_from(wait_us.div_ceil(1_000_000))
                    .unwrap_or(u32::MAX)
                    .max(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access_with(key: &str, tier: Tier) -> Access {
        let access = Access::new(false, 16);
        let hash = ApiKey::hash_presented(key.as_bytes()).unwrap();
        access.publish(KeySet::new([(
            hash,
            KeyEntry {
                id: 7,
                tier,
                slot: 3,
            },
        )]));
        access
    }

    #[test]
    fn keys_are_checked_and_limited() {
        let access = access_with("bk_demo_key_0001", Tier::Demo);
        assert_eq!(access.check(None), Ok(Grant::Anonymous));
        assert_eq!(
            access.check(Some(b"bk_not_a_known_key")),
            Err(Denied::Invalid)
        );
        assert_eq!(access.check(Some(b"short")), Err(Denied::Invalid));
        let granted = (0..10)
            .filter(|_| access.check(Some(b"bk_demo_key_0001")).is_ok())
            .count();
        assert_eq!(granted, 3, "the demo tier's burst is 3");
        assert!(matches!(
            access.check(Some(b"bk_demo_key_0001")),
            Err(Denied::RateLimited { retry_after_s: 1 })
        ));
        access.publish(KeySet::default());
        assert_eq!(
            access.check(Some(b"bk_demo_key_0001")),
            Err(Denied::Invalid)
        );

        let strict = Access::new(true, 1);
        assert_eq!(strict.check(None), Err(Denied::Missing));
    }
}
