//! Submitter keys, checked and decompressed once.
//!
//! Every add-leaf names its submitter's public key, and submitters reuse
//! their keys for every leaf. Checking a key (canonical, large order) and
//! decompressing its point cost a square root and a field inversion, a
//! noticeable share of the signature check that follows, so the frontend
//! keeps the prepared keys of recent submitters. Refused keys are not kept: they
//! are refused again, at the same cost, every time.

use std::num::NonZeroUsize;

use cairn_sigsum::{PublicKey, StrongKey, WeakKeyError};
use cairn_storage::LruMap;

/// Submitter keys a shard's frontend keeps prepared (about 260 bytes
/// each): more than a busy log's active submitters, small next to its
/// other caches.
pub(crate) const KEYS_KEPT: NonZeroUsize = NonZeroUsize::new(4096).expect("non-zero");

/// The least recently used prepared keys.
#[derive(Debug)]
pub(crate) struct KeyCache {
    keys: LruMap<PublicKey, StrongKey>,
}

impl KeyCache {
    pub(crate) fn new(capacity: NonZeroUsize) -> KeyCache {
        KeyCache {
            keys: LruMap::new(capacity),
        }
    }

    /// `key` prepared, or why it is refused as a submitter key.
    pub(crate) fn get(&self, key: &PublicKey) -> Result<StrongKey, WeakKeyError> {
        if let Some(kept) = self.keys.get(key) {
            return Ok(kept);
        }
        // Prepared outside the lock: concurrent first uses of one key may
        // both do the work; the cache ends with one copy either way.
        let prepared = StrongKey::new(*key)?;
        self.keys.insert(*key, prepared.clone());
        Ok(prepared)
    }
}

#[cfg(test)]
mod tests {
    use cairn_sigsum::SigningKey;

    use super::*;

    fn key(seed: u8) -> PublicKey {
        SigningKey::from_seed(&[seed; 32]).public_key()
    }

    #[test]
    fn a_kept_key_is_the_key_asked_for() {
        let cache = KeyCache::new(NonZeroUsize::new(2).unwrap());
        for _ in 0..2 {
            for seed in 1..=3 {
                let prepared = cache.get(&key(seed)).unwrap();
                assert_eq!(*prepared.public_key(), key(seed));
                assert_eq!(*prepared.key_hash(), key(seed).key_hash());
            }
        }
        assert_eq!(cache.keys.len(), 2);
    }

    #[test]
    fn a_weak_key_is_refused_every_time_and_never_kept() {
        let cache = KeyCache::new(KEYS_KEPT);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for _ in 0..2 {
            assert_eq!(
                cache.get(&PublicKey(identity)).unwrap_err(),
                WeakKeyError::SmallOrder
            );
        }
        assert!(cache.keys.is_empty());
    }
}
