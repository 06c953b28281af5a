//! In-memory LRU caches: of full hash tiles and full entry bundles, and of
//! the complete-subtree hashes computed from verified tiles.
//!
//! Only full tiles and bundles go in: they are written create-only and never
//! change, so a cached copy is valid forever and needs no invalidation.
//! Partial tiles are replaced by wider ones as the tree grows and are never
//! cached. The budget is in bytes because the two kinds differ in size (a
//! full hash tile is 8 KiB, a full bundle of Sigsum leaves 33 KiB).

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use cairn_tlog::Hash;
use cairn_tlog::proof::NodeId;
use cairn_tlog::tile::TilePath;
use lru::LruCache;

/// Default cache budget: 64 MiB, about 8000 hash tiles or 2000 bundles.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// A byte-bounded LRU map from full tile/bundle to its verified bytes.
///
/// Shared by every clone of a [`TileStore`](crate::TileStore); the lock is
/// held only for map operations, never across IO.
pub(crate) struct TileCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

struct Inner {
    entries: LruCache<TilePath, Bytes>,
    /// Sum of the lengths of the cached values.
    bytes: usize,
}

impl TileCache {
    /// An empty cache holding at most `max_bytes` of tile data (0 disables it).
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is consistent after every operation (none can panic midway
        // in a way that breaks the byte count badly), so a poisoned lock is
        // still usable; a cache must not take the service down.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached bytes of `key`, marking it most recently used.
    pub(crate) fn get(&self, key: &TilePath) -> Option<Bytes> {
        self.lock().entries.get(key).cloned()
    }

    /// Caches `value` for `key`, a FULL tile or bundle whose bytes have been
    /// verified, evicting least recently used entries to stay within budget.
    pub(crate) fn insert(&self, key: TilePath, value: Bytes) {
        if value.len() > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        let len = value.len();
        if let Some(old) = inner.entries.put(key, value) {
            inner.bytes = inner.bytes.saturating_sub(old.len());
        }
        inner.bytes += len;
        while inner.bytes > self.max_bytes {
            let Some((_, evicted)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes = inner.bytes.saturating_sub(evicted.len());
        }
    }

    /// Number of cached objects and their total size in bytes.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.entries.len(), inner.bytes)
    }
}

impl fmt::Debug for TileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (objects, bytes) = self.usage();
        f.debug_struct("TileCache")
            .field("max_bytes", &self.max_bytes)
            .field("objects", &objects)
            .field("bytes", &bytes)
            .finish()
    }
}

/// Complete-subtree hashes remembered: 65 536 nodes, ~5 MiB.
pub(crate) const NODE_CACHE_ENTRIES: usize = 1 << 16;

/// An LRU map from complete-subtree node to its hash, computed from a
/// verified full tile. A proof step inside a tile costs up to 255 hashes to
/// compute from the tile's level below (a node `h` levels above the tile's
/// level hashes `2^h` of its entries), and the same nodes recur in every
/// proof about nearby leaves. A full tile never changes (the tile cache
/// keeps verified ones for every later head on the same grounds), so
/// neither do the nodes computed from it.
pub(crate) type NodeCache = LruMap<NodeId, Hash>;

/// A map of at most a fixed number of entries behind a lock, evicting the
/// least recently used: the caches of values that never change once
/// known (subtree hashes here; prepared keys and leaf indices in the
/// frontend). The lock is held only for the map operation.
pub struct LruMap<K, V> {
    entries: Mutex<LruCache<K, V>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> LruMap<K, V> {
    /// An empty map of at most `max` entries.
    pub fn new(max: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(max)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, V>> {
        // As for the tile cache: every operation leaves the map usable, and
        // a cache must not take the service down.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, marking it most recently used.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    /// Keeps `value` for `key`, evicting the least recently used entry if
    /// the map is full.
    pub fn insert(&self, key: K, value: V) {
        self.lock().put(key, value);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the map holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> fmt::Debug for LruMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruMap")
            .field("entries", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_tlog::tile::TileId;

    fn key(index: u64) -> TilePath {
        TilePath::Hash(TileId::full(0, index).unwrap())
    }

    #[test]
    fn least_recently_used_tiles_are_evicted_to_stay_within_budget() {
        let cache = TileCache::new(3 * 100);
        for i in 0..3 {
            cache.insert(key(i), Bytes::from(vec![i as u8; 100]));
        }
        assert_eq!(cache.usage(), (3, 300));
        // Touch tile 0 so that tile 1 is the least recently used.
        assert!(cache.get(&key(0)).is_some());
        cache.insert(key(3), Bytes::from(vec![3; 100]));
        assert_eq!(cache.usage(), (3, 300));
        assert!(cache.get(&key(1)).is_none());
        for i in [0, 2, 3] {
            assert_eq!(cache.get(&key(i)).unwrap()[0], i as u8);
        }
    }

    #[test]
    fn values_larger_than_the_budget_are_not_cached() {
        let cache = TileCache::new(10);
        cache.insert(key(0), Bytes::from(vec![0; 11]));
        assert_eq!(cache.usage(), (0, 0));
        let disabled = TileCache::new(0);
        disabled.insert(key(0), Bytes::from_static(b"x"));
        assert!(disabled.get(&key(0)).is_none());
    }

    #[test]
    fn replacing_an_entry_keeps_the_byte_count_exact() {
        let cache = TileCache::new(1000);
        cache.insert(key(0), Bytes::from(vec![0; 100]));
        cache.insert(key(0), Bytes::from(vec![0; 40]));
        assert_eq!(cache.usage(), (1, 40));
    }
}
