//! The write side, used by the integrator and publisher on the shard's Raft
//! leader: create-only tiles, resuming the tile builders, the checkpoint.
//!
//! Single writer: only the Raft leader writes, and a leader change can leave
//! two leaders writing for a short while. Create-only writes make that safe
//! for tiles (the same committed leaves give the same bytes; different bytes
//! are a fork and halt the shard). The checkpoint is a read-check-overwrite
//! that is only safe with one writer at a time; a later S3 version will make
//! it a conditional `PutMode::Update` on the ETag it read.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_tlog::checkpoint::SignedCheckpoint;
use cairn_tlog::leaf_hash;
use cairn_tlog::tile::{
    BundleBuilder, BundleWrite, TileBuilder, TileWrite, decode_bundle, decode_hash_tile,
    partial_bundle_for_size, partial_tiles_for_size,
};
use futures::{StreamExt, TryStreamExt};
use object_store::PutMode;

use crate::error::{Corruption, StorageError};
use crate::store::{CHECKPOINT_KEY, MAX_IN_FLIGHT, TileStore};

impl TileStore {
    /// Writes `bytes` to `key` (relative to the prefix, e.g. `tile/0/000`)
    /// only if no object exists there yet.
    ///
    /// * No object: it is created atomically; `Ok` once durable.
    /// * An object with identical bytes: `Ok` without writing — a new leader
    ///   re-running an integration, or a retry of a write that had succeeded.
    /// * An object with different bytes: [`StorageError::Fork`], FATAL. The
    ///   stored object is left untouched; the caller must halt the shard.
    ///
    /// Transient store failures are retried ([`RETRY_ATTEMPTS`](crate::RETRY_ATTEMPTS)
    /// attempts with backoff, each limited to
    /// [`ATTEMPT_TIMEOUT`](crate::ATTEMPT_TIMEOUT)); after that the error is
    /// [retryable](StorageError::is_retryable) and the caller may repeat the
    /// call: it is idempotent. Keys are checked as for
    /// [`TileStore::new`]'s prefix ([`StorageError::InvalidKey`]).
    pub async fn put_create_only(
        &self,
        key: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<(), StorageError> {
        let bytes = bytes.into();
        if self.write(key, &bytes, PutMode::Create).await? {
            return Ok(());
        }
        // Something is there: it must be exactly what we meant to write. A
        // longer stored object is a fork without downloading it (`read`
        // refuses it as too large).
        match self.read(key, bytes.len()).await {
            Ok(Some(stored)) if stored == bytes => {
                tracing::debug!(key, "object already written with identical bytes");
                Ok(())
            }
            Ok(Some(_))
            | Err(StorageError::Corrupt {
                reason: Corruption::TooLarge { .. },
                ..
            }) => {
                tracing::error!(
                    key,
                    "FORK: object exists with different bytes; not overwritten"
                );
                Err(StorageError::Fork {
                    path: key.to_owned(),
                })
            }
            // Create said it exists, the read says it does not: only a
            // deletion in between explains that (a GC racing the writer).
            // Retrying the whole call is the right answer.
            Ok(None) => Err(StorageError::Unavailable {
                op: "put",
                path: key.to_owned(),
                source: object_store::Error::Generic {
                    store: "cairn-storage",
                    source: "object reported as existing but not found on read".into(),
                },
            }),
            Err(e) => Err(e),
        }
    }

    /// Writes one integration's objects create-only: every entry bundle
    /// first, then the hash tiles level by level, bottom-up, so that a reader
    /// who finds a tile also finds everything it hashes over. Within one
    /// phase at most [`MAX_IN_FLIGHT`] writes run at once.
    ///
    /// Every input is checked to encode what its id names before anything is
    /// written ([`StorageError::InvalidWrite`]). Returns `Ok` only when every
    /// object is durable; on error, some objects may have been written, and
    /// the caller retries the whole call (each write is idempotent) or, for a
    /// [fatal](StorageError::is_fatal) [`StorageError::Fork`], halts.
    pub async fn write_integration(
        &self,
        bundles: &[BundleWrite],
        tiles: &[TileWrite],
    ) -> Result<(), StorageError> {
        for b in bundles {
            b.id.decode(&b.bytes)
                .map_err(|source| StorageError::InvalidWrite {
                    path: b.id.path(),
                    source,
                })?;
        }
        let mut levels: BTreeMap<u8, Vec<(String, Bytes)>> = BTreeMap::new();
        for t in tiles {
            t.id.decode(&t.bytes)
                .map_err(|source| StorageError::InvalidWrite {
                    path: t.id.path(),
                    source,
                })?;
            levels
                .entry(t.id.level())
                .or_default()
                .push((t.id.path(), Bytes::copy_from_slice(&t.bytes)));
        }
        let bundle_objects = bundles
            .iter()
            .map(|b| (b.id.path(), Bytes::copy_from_slice(&b.bytes)))
            .collect();
        self.put_all_create_only(bundle_objects).await?;
        for objects in levels.into_values() {
            self.put_all_create_only(objects).await?;
        }
        tracing::debug!(
            bundles = bundles.len(),
            tiles = tiles.len(),
            "integration objects written"
        );
        Ok(())
    }

    /// [`put_create_only`](Self::put_create_only) for each object, at most
    /// [`MAX_IN_FLIGHT`] at a time, stopping at the first error.
    async fn put_all_create_only(&self, objects: Vec<(String, Bytes)>) -> Result<(), StorageError> {
        futures::stream::iter(objects)
            .map(Ok)
            .try_for_each_concurrent(MAX_IN_FLIGHT, |(key, bytes)| async move {
                self.put_create_only(&key, bytes).await
            })
            .await
    }

    /// Builders that continue a tree of `size` leaves whose tiles are written:
    /// reads the right-edge partial hash tiles and the partial entry bundle
    /// of that size and resumes [`TileBuilder`] and [`BundleBuilder`] from
    /// them. Used when an integrator (re)starts, e.g. on a new leader, at the
    /// integrated size Raft recorded.
    ///
    /// A partial tile or bundle that is gone (garbage-collected after the
    /// tree grew) is recovered from the full tile of the same index, if that
    /// was written. Missing objects give [`StorageError::NotFound`]; objects
    /// that do not decode, and a partial bundle whose leaf hashes differ from
    /// the level-0 partial tile, give [`StorageError::Corrupt`].
    ///
    /// The hashes are otherwise taken on trust: the caller must compare
    /// [`TileBuilder::root`] with the root Raft recorded for `size` before
    /// appending.
    pub async fn resume(&self, size: u64) -> Result<(TileBuilder, BundleBuilder), StorageError> {
        let result = self.resume_inner(size).await;
        self.observed(result)
    }

    async fn resume_inner(&self, size: u64) -> Result<(TileBuilder, BundleBuilder), StorageError> {
        let edge: Vec<_> = partial_tiles_for_size(size).collect();
        let tiles = futures::future::try_join_all(
            edge.iter()
                .map(|&id| async move { Ok::<_, StorageError>((id, self.tile_at(id).await?)) }),
        )
        .await?;
        let bundle = match partial_bundle_for_size(size) {
            Some(id) => Some((id, self.bundle_at(id).await?)),
            None => None,
        };
        // The partial bundle's entries are the leaves behind the level-0
        // partial tile; a mismatch means one of the two is not what the log
        // wrote, and resuming from it would continue a wrong tree.
        if let (Some((bundle_id, bundle_bytes)), Some((tile_id, tile_bytes))) =
            (&bundle, tiles.first().filter(|(id, _)| id.level() == 0))
        {
            let entries = decode_bundle(bundle_bytes)
                .map_err(|e| StorageError::corrupt(bundle_id.path(), e))?;
            let hashes = decode_hash_tile(tile_bytes)
                .map_err(|e| StorageError::corrupt(tile_id.path(), e))?;
            if let Some(entry) = entries
                .iter()
                .zip(&hashes)
                .position(|(entry, hash)| leaf_hash(entry) != *hash)
            {
                return Err(StorageError::corrupt(
                    tile_id.path(),
                    Corruption::LeafHashMismatch { entry },
                ));
            }
        }
        let tile_builder = TileBuilder::resume(size, tiles)?;
        let bundle_builder = BundleBuilder::resume(size, bundle.map(|(_, bytes)| bytes))?;
        tracing::info!(size, "tile builders resumed from storage");
        Ok((tile_builder, bundle_builder))
    }

    /// Publishes `note`, a signed checkpoint note for tree size `size`, as
    /// the `checkpoint` object — never replacing a larger tree's checkpoint.
    ///
    /// Checks, in order: `note` parses as a signed checkpoint
    /// ([`StorageError::InvalidCheckpoint`]) whose size is `size`
    /// ([`StorageError::CheckpointSizeMismatch`]). Then the stored
    /// checkpoint, if any, is read: unparsable → [`StorageError::Corrupt`];
    /// another origin → [`StorageError::CheckpointOriginMismatch`]; a larger
    /// size → [`StorageError::CheckpointShrinks`] (nothing written); the
    /// same size with another root → [`StorageError::CheckpointFork`]. The
    /// same size and root with other bytes (more cosignatures) is replaced;
    /// identical bytes are left alone. Signatures are not verified here: the
    /// caller publishes only heads it signed and whose cosignatures it checked.
    ///
    /// Single-writer assumption: the read-check-overwrite is not atomic, so
    /// only the shard's Raft leader may call this (see the module docs). The
    /// overwrite is retried like [`put_create_only`](Self::put_create_only)
    /// and is durable when this returns `Ok`.
    pub async fn put_checkpoint(
        &self,
        size: u64,
        note: impl Into<Bytes>,
    ) -> Result<(), StorageError> {
        let note = note.into();
        let new = SignedCheckpoint::parse(&note).map_err(StorageError::InvalidCheckpoint)?;
        let new = new.checkpoint();
        if new.size != size {
            return Err(StorageError::CheckpointSizeMismatch {
                size,
                note_size: new.size,
            });
        }
        if let Some(stored_bytes) = self.checkpoint().await? {
            let stored = SignedCheckpoint::parse(&stored_bytes)
                .map_err(|e| StorageError::corrupt(CHECKPOINT_KEY, e))?;
            let stored = stored.checkpoint();
            if stored.origin != new.origin {
                return Err(StorageError::CheckpointOriginMismatch {
                    stored: stored.origin.clone(),
                    new: new.origin.clone(),
                });
            }
            if stored.size > size {
                return Err(StorageError::CheckpointShrinks {
                    stored: stored.size,
                    requested: size,
                });
            }
            if stored.size == size && stored.root != new.root {
                tracing::error!(
                    size,
                    "FORK: stored checkpoint has another root for this size"
                );
                return Err(StorageError::CheckpointFork { size });
            }
            if stored_bytes == note {
                return Ok(());
            }
        }
        self.write(CHECKPOINT_KEY, &note, PutMode::Overwrite)
            .await?;
        tracing::info!(size, "checkpoint published");
        Ok(())
    }
}
