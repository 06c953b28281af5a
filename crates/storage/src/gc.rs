//! Garbage collection of partial tiles and bundles.
//!
//! Every integration writes the right edge of the tree as partial tiles
//! (`tile/<L>/<N>.p/<W>`) and a partial entry bundle; as the tree grows,
//! wider ones and finally the full tile replace them, and the old ones are
//! dead weight (at 1.45M leaves, more bytes than the full tiles). They cannot
//! go at once: a client that read a checkpoint a moment ago still fetches
//! the partials of its size. So the caller says which tree size is safe —
//! the published size as it was a grace period ago — and only partials that
//! tree has outgrown are deleted ([`TilePath::superseded_at`]); a partial
//! that the published checkpoint, or any later tree, can still name is never
//! touched. Readers that hold an older checkpoint and find a partial gone
//! fall back to a prefix of the full tile, as this crate's own reads do.
//!
//! Candidates are the partials this handle wrote
//! ([`TileStore::write_integration`]) plus those found by a listing
//! ([`TileStore::scan_partials`], run when a writer takes over, to catch the
//! leftovers of earlier writers and crashes). The set lives in memory: after
//! a restart, the next scan finds what was still pending.

use std::collections::BTreeSet;
use std::sync::Mutex;

use cairn_tlog::checkpoint::SignedCheckpoint;
use cairn_tlog::tile::{TilePath, parse_path};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;

use crate::error::StorageError;
use crate::retry::retry;
use crate::store::{CHECKPOINT_KEY, MAX_CHECKPOINT_BYTES, MAX_IN_FLIGHT, TileStore};

/// Most partials remembered for collection. Each integration adds a few, so
/// at thousands of integrations per second and a grace period of minutes
/// this holds the backlog; beyond it new candidates are dropped (and found
/// again by the next [`TileStore::scan_partials`]) rather than letting
/// memory grow without bound.
pub const MAX_GC_CANDIDATES: usize = 1 << 20;

/// The partials waiting for collection.
#[derive(Debug, Default)]
pub(crate) struct Candidates(Mutex<BTreeSet<TilePath>>);

impl Candidates {
    /// Adds partial tiles and bundles (full ones are ignored), up to
    /// [`MAX_GC_CANDIDATES`].
    pub(crate) fn add(&self, paths: impl IntoIterator<Item = TilePath>) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = 0usize;
        for path in paths.into_iter().filter(|p| !p.is_full()) {
            if set.len() < MAX_GC_CANDIDATES || set.contains(&path) {
                set.insert(path);
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "too many partial tiles waiting for garbage collection; the next scan finds the rest"
            );
        }
    }

    /// Removes and returns the candidates superseded at `size`.
    fn take_superseded(&self, size: u64) -> Vec<TilePath> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut taken = Vec::new();
        set.retain(|p| {
            let superseded = p.superseded_at(size);
            if superseded {
                taken.push(*p);
            }
            !superseded
        });
        taken
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// What one [`TileStore::collect_partials`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The tree size the collection went by: the caller's safe size,
    /// lowered to the stored checkpoint's if that is smaller.
    pub size: u64,
    /// Partials deleted (or already gone).
    pub deleted: usize,
    /// Partials whose deletion failed; they stay candidates.
    pub failed: usize,
    /// Candidates left for later (not yet superseded, or failed).
    pub pending: usize,
}

impl TileStore {
    /// Lists every object under the shard's `tile/` prefix and adds the
    /// partial tiles and bundles to the collection candidates; returns how
    /// many partials it found. One paged listing of the whole tile tree, so
    /// run it when a writer takes over, not per integration.
    pub async fn scan_partials(&self) -> Result<usize, StorageError> {
        self.check_writable("list", "tile/")?;
        let base = self.path("tile")?;
        let strip = format!("{}/", self.prefix());
        let mut found = 0usize;
        let mut listing = self.object_store().list(Some(&base));
        let mut batch = Vec::new();
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|e| StorageError::from_store("list", "tile/", e))?
        {
            let key = meta.location.as_ref();
            let key = if self.prefix().is_empty() {
                key
            } else {
                key.strip_prefix(&strip).unwrap_or(key)
            };
            // Anything else under tile/ (a temporary file of a local store,
            // an operator's stray object) is not ours to judge.
            if let Ok(path) = parse_path(key)
                && !path.is_full()
            {
                batch.push(path);
                found += 1;
            }
            if batch.len() >= 1024 {
                self.partials().add(batch.drain(..));
            }
        }
        self.partials().add(batch);
        Ok(found)
    }

    /// Deletes the candidate partials that a tree of `safe_size` leaves has
    /// outgrown. `safe_size` must be a size every reader may be assumed to
    /// be past: the published size as it was a grace period ago. As a guard
    /// against a caller passing too large a size, it is lowered to the
    /// stored checkpoint's size, so no partial the published checkpoint can
    /// name is ever deleted; without a readable checkpoint nothing is.
    ///
    /// Deletions run at most [`MAX_IN_FLIGHT`] at a time, each retried; an
    /// object already gone counts as deleted. A failed deletion leaves the
    /// candidate for the next call. Errors: reading the checkpoint failed
    /// (nothing deleted), or [`StorageError::ReadOnly`].
    pub async fn collect_partials(&self, safe_size: u64) -> Result<GcReport, StorageError> {
        self.check_writable("delete", "tile/")?;
        let Some(note) = self.read(CHECKPOINT_KEY, MAX_CHECKPOINT_BYTES).await? else {
            return Ok(GcReport {
                pending: self.partials().len(),
                ..GcReport::default()
            });
        };
        let published = SignedCheckpoint::parse(&note)
            .map_err(|e| StorageError::corrupt(CHECKPOINT_KEY, e))?
            .checkpoint()
            .size;
        let size = safe_size.min(published);
        let doomed = self.partials().take_superseded(size);
        let results: Vec<(TilePath, Result<(), StorageError>)> = futures::stream::iter(doomed)
            .map(|path| async move { (path, self.delete_object(&path.path()).await) })
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;
        let mut report = GcReport {
            size,
            ..GcReport::default()
        };
        let mut failed = Vec::new();
        for (path, result) in results {
            match result {
                Ok(()) => report.deleted += 1,
                Err(e) => {
                    tracing::warn!(tile = %path, error = %e, "deleting a superseded partial tile failed; will retry");
                    failed.push(path);
                }
            }
        }
        report.failed = failed.len();
        self.partials().add(failed);
        report.pending = self.partials().len();
        if report.deleted > 0 {
            tracing::debug!(
                size,
                deleted = report.deleted,
                pending = report.pending,
                "superseded partial tiles deleted"
            );
        }
        Ok(report)
    }

    /// Number of partials waiting for collection.
    pub fn pending_partials(&self) -> usize {
        self.partials().len()
    }

    /// Deletes `key`, retried; an object already gone is success.
    async fn delete_object(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        retry("delete", key, || async {
            match self.object_store().delete(&path).await {
                Ok(()) => Ok(()),
                Err(e) => match StorageError::from_store("delete", key, e) {
                    StorageError::NotFound { .. } => Ok(()),
                    e => Err(e),
                },
            }
        })
        .await
    }
}
