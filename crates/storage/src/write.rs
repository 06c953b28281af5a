//! The write side, used by the integrator and publisher on the shard's Raft
//! leader: create-only tiles, resuming the tile builders, the checkpoint.
//!
//! Several writers: only the Raft leader should write, but a leader change
//! can leave two leaders writing for a while — a deposed leader may wake up
//! late (a GC pause, a stopped process) and finish a write it prepared
//! long ago. Every write is safe against that:
//!
//! * Tiles and bundles are create-only: the same committed leaves give the
//!   same bytes, and different bytes are a fork that halts the shard.
//! * The checkpoint is read, checked against the new one (never smaller,
//!   never another root at the same size), and written **only if it is still
//!   exactly the object that was checked** — fenced, so no writer can move it
//!   back or sideways:
//!   - on stores with conditional writes, `PutMode::Create` when there was
//!     no object and `PutMode::Update` on the ETag/version read otherwise;
//!     when the condition fails (someone wrote in between) the round starts
//!     again from the read, at most [`CHECKPOINT_ROUNDS`] times;
//!   - on a local directory (`LocalFileSystem` has no `PutMode::Update`),
//!     under an exclusive OS lock on a lock file beside the prefix directory
//!     (see [`crate::lock`]), held from before the read until the write has
//!     finished — also when the caller stops waiting, so a write cannot land
//!     after the lock is released.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use cairn_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use cairn_tlog::leaf_hash;
use cairn_tlog::tile::{
    BundleBuilder, BundleWrite, TileBuilder, TilePath, TileWrite, decode_bundle, decode_hash_tile,
    partial_bundle_for_size, partial_tiles_for_size,
};
use futures::{StreamExt, TryStreamExt};
use object_store::{PutMode, UpdateVersion};

use crate::error::{Corruption, StorageError};
use crate::retry::retry_to_completion;
use crate::store::{
    CHECKPOINT_KEY, CHECKPOINT_ROUNDS, CheckpointFence, MAX_CHECKPOINT_BYTES, MAX_IN_FLIGHT, Put,
    TileStore, Written, put_classified,
};
use crate::{ATTEMPT_TIMEOUT, RETRY_ATTEMPTS, RETRY_BASE_DELAY, lock};

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
        if self.write(key, &bytes, PutMode::Create).await? == Written::Done {
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
        // Written partials become garbage once the published tree outgrows
        // them (see `crate::gc`).
        self.partials().add(
            bundles
                .iter()
                .map(|b| TilePath::Entries(b.id))
                .chain(tiles.iter().map(|t| TilePath::Hash(t.id)))
                .filter(|p| !p.is_full()),
        );
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
    /// the `checkpoint` object — never replacing a larger tree's checkpoint,
    /// even with other writers (a deposed leader) publishing at the same time.
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
    /// Fenced: the write happens only if the object is still exactly the one
    /// checked (see the module docs for how, per store kind). If another
    /// writer got in between, the checks run again against what it wrote, so
    /// the answer is the one the final object deserves: a larger checkpoint
    /// written meanwhile gives [`StorageError::CheckpointShrinks`], the same
    /// note gives `Ok`. Retryable failures: the store was unavailable
    /// (retried as for [`put_create_only`](Self::put_create_only)); the
    /// object changed under [`CHECKPOINT_ROUNDS`] conditional writes in a
    /// row ([`StorageError::CheckpointContended`]); a local store's lock was
    /// held by another writer for the whole bounded wait
    /// ([`StorageError::CheckpointBusy`]). The write is durable when this
    /// returns `Ok`; the call is idempotent.
    pub async fn put_checkpoint(
        &self,
        size: u64,
        note: impl Into<Bytes>,
    ) -> Result<(), StorageError> {
        let note = note.into();
        let parsed = SignedCheckpoint::parse(&note).map_err(StorageError::InvalidCheckpoint)?;
        let new = parsed.checkpoint();
        if new.size != size {
            return Err(StorageError::CheckpointSizeMismatch {
                size,
                note_size: new.size,
            });
        }
        match self.fence() {
            CheckpointFence::Conditional => self.put_checkpoint_conditional(&note, new).await,
            CheckpointFence::LockFile { lock_file, wait } => {
                let guard = lock::acquire(lock_file, *wait).await?;
                self.put_checkpoint_locked(guard, &note, new).await
            }
            CheckpointFence::ReadOnly => Err(StorageError::ReadOnly {
                op: "put",
                path: CHECKPOINT_KEY.to_owned(),
            }),
        }
    }

    /// The compare-and-swap loop: read with version, check, write on that
    /// version; a lost race starts a new round.
    async fn put_checkpoint_conditional(
        &self,
        note: &Bytes,
        new: &Checkpoint,
    ) -> Result<(), StorageError> {
        for round in 1..=CHECKPOINT_ROUNDS {
            let stored = self
                .read_with_meta(CHECKPOINT_KEY, MAX_CHECKPOINT_BYTES)
                .await?;
            let mode = match &stored {
                None => PutMode::Create,
                Some((_, meta)) => {
                    if meta.e_tag.is_none() && meta.version.is_none() {
                        // Without either, `Update` cannot name what was
                        // checked; refuse rather than overwrite blindly.
                        return Err(StorageError::Backend {
                            op: "put",
                            path: CHECKPOINT_KEY.to_owned(),
                            source: object_store::Error::NotImplemented {
                                operation: "conditional checkpoint update: the store gave the \
                                            object neither an ETag nor a version"
                                    .into(),
                                implementer: self.object_store().to_string(),
                            },
                        });
                    }
                    PutMode::Update(UpdateVersion {
                        e_tag: meta.e_tag.clone(),
                        version: meta.version.clone(),
                    })
                }
            };
            if check_checkpoint(stored.as_ref().map(|(bytes, _)| bytes), note, new)?
                == Publish::Unchanged
            {
                return Ok(());
            }
            match self.write(CHECKPOINT_KEY, note, mode).await? {
                Written::Done => {
                    tracing::info!(size = new.size, "checkpoint published");
                    return Ok(());
                }
                Written::Conflict => {
                    tracing::debug!(
                        size = new.size,
                        round,
                        "checkpoint changed between read and write; checking again"
                    );
                }
            }
        }
        tracing::warn!(
            size = new.size,
            rounds = CHECKPOINT_ROUNDS,
            "checkpoint kept changing under conditional writes"
        );
        Err(StorageError::CheckpointContended {
            rounds: CHECKPOINT_ROUNDS,
        })
    }

    /// Read-check-write under the local lock `guard`. The overwrite runs in
    /// a task of its own that owns the guard and runs every attempt to
    /// completion, so the lock is released only once no write of this call
    /// can still land — even if the caller stops waiting (cancellation, or
    /// the bound below), when the task carries on detached. The critical
    /// section is just the read, the check and the write.
    async fn put_checkpoint_locked(
        &self,
        guard: lock::LockGuard,
        note: &Bytes,
        new: &Checkpoint,
    ) -> Result<(), StorageError> {
        let stored = self.read(CHECKPOINT_KEY, MAX_CHECKPOINT_BYTES).await?;
        if check_checkpoint(stored.as_ref(), note, new)? == Publish::Unchanged {
            return Ok(());
        }
        let store = Arc::clone(self.object_store());
        let path = self.path(CHECKPOINT_KEY)?;
        let bytes = note.clone();
        let attributes = self.attributes_for(CHECKPOINT_KEY);
        let write = tokio::spawn(async move {
            let result = retry_to_completion("put", CHECKPOINT_KEY, || {
                let put = Put {
                    path: &path,
                    key: CHECKPOINT_KEY,
                    bytes: &bytes,
                    attributes: attributes.clone(),
                };
                put_classified(store.as_ref(), put, PutMode::Overwrite)
            })
            .await;
            drop(guard);
            result
        });
        // As long as `retry` would take for the same attempts; past that the
        // write is stuck, and the caller hears so while the task keeps the
        // lock until the write ends.
        let bound = ATTEMPT_TIMEOUT * RETRY_ATTEMPTS + RETRY_BASE_DELAY * (1 << RETRY_ATTEMPTS);
        match tokio::time::timeout(bound, write).await {
            Ok(Ok(Ok(_))) => {
                tracing::info!(size = new.size, "checkpoint published");
                Ok(())
            }
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(join)) => Err(StorageError::Unavailable {
                op: "put",
                path: CHECKPOINT_KEY.to_owned(),
                source: object_store::Error::JoinError { source: join },
            }),
            Err(_elapsed) => Err(StorageError::Timeout {
                op: "put",
                path: CHECKPOINT_KEY.to_owned(),
                after: bound,
            }),
        }
    }
}

/// What [`TileStore::put_checkpoint`] should do about the stored checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    /// The stored object is already `note`, byte for byte.
    Unchanged,
    /// Replace the stored object (or create it) with `note`.
    Write,
}

/// The checks of [`TileStore::put_checkpoint`] of `note` (which parses as
/// `new`) against the `stored` checkpoint object, if any.
fn check_checkpoint(
    stored: Option<&Bytes>,
    note: &Bytes,
    new: &Checkpoint,
) -> Result<Publish, StorageError> {
    let Some(stored_bytes) = stored else {
        return Ok(Publish::Write);
    };
    let parsed = SignedCheckpoint::parse(stored_bytes)
        .map_err(|e| StorageError::corrupt(CHECKPOINT_KEY, e))?;
    let stored = parsed.checkpoint();
    if stored.origin != new.origin {
        return Err(StorageError::CheckpointOriginMismatch {
            stored: stored.origin.clone(),
            new: new.origin.clone(),
        });
    }
    if stored.size > new.size {
        return Err(StorageError::CheckpointShrinks {
            stored: stored.size,
            requested: new.size,
        });
    }
    if stored.size == new.size && stored.root != new.root {
        tracing::error!(
            size = new.size,
            "FORK: stored checkpoint has another root for this size"
        );
        return Err(StorageError::CheckpointFork { size: new.size });
    }
    if stored_bytes == note {
        return Ok(Publish::Unchanged);
    }
    Ok(Publish::Write)
}
