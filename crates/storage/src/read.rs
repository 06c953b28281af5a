//! The read side, used by the frontend and the collector: objects verbatim,
//! and leaves, leaf hashes, proofs and roots computed from tiles.
//!
//! Every Merkle read takes `stored_size`: a tree size whose tiles are known
//! to be completely written (the latest integrated or signed size), and reads
//! each tile *as it exists at that size* — the full tile, or the partial tile
//! of the width the tree has at `stored_size`. For any smaller size the
//! needed hashes are a prefix of those tiles, so proofs for old sizes never
//! need the old, narrower partial tiles, which may have been garbage-collected.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use cairn_tlog::Hash;
use cairn_tlog::proof::{
    NodeId, ProofError, ProofPlan, consistency_plan, inclusion_plan, root_plan,
};
use cairn_tlog::tile::{
    BundleId, TILE_WIDTH, TileId, TilePath, node_hash_from_tile, node_tile, parse_path,
};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Corruption, StorageError};
use crate::store::{CHECKPOINT_KEY, MAX_CHECKPOINT_BYTES, MAX_IN_FLIGHT, TileStore};

/// Size of a Sigsum leaf (`checksum ‖ signature ‖ key_hash`) in an entry bundle.
pub const LEAF_SIZE: usize = 128;

/// Most leaves one [`TileStore::leaves`] call returns (Sigsum's
/// `get-leaves`, like log-go's default `max-range`, is clamped to 512).
pub const MAX_LEAVES_PER_CALL: u64 = 512;

const WIDTH: u64 = TILE_WIDTH as u64;

impl TileStore {
    /// The stored object `key` verbatim, for serving: `key` is `checkpoint`
    /// or a canonical tlog-tiles path (`tile/<L>/<N>[.p/<W>]`,
    /// `tile/entries/<N>[.p/<W>]`), else [`StorageError::InvalidKey`].
    /// `None` if that exact object does not exist.
    ///
    /// Tiles and bundles are checked to decode at the width their path names
    /// ([`StorageError::Corrupt`] otherwise), so corrupt bytes are never
    /// handed out to be cached as immutable; full ones are served from the
    /// cache when present. The checkpoint is returned unchecked.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        if key == CHECKPOINT_KEY {
            return self.checkpoint().await;
        }
        let tile = parse_path(key).map_err(|_| StorageError::InvalidKey {
            key: key.chars().take(80).collect(),
            reason: "not `checkpoint` or a canonical tile path",
        })?;
        match tile {
            TilePath::Hash(id) => self.fetch_tile(id).await,
            TilePath::Entries(id) => self.fetch_bundle(id).await,
        }
    }

    /// The stored `checkpoint` object verbatim (a signed checkpoint note), or
    /// `None` before the first [`put_checkpoint`](Self::put_checkpoint).
    /// Never cached: it changes with every published tree head.
    pub async fn checkpoint(&self) -> Result<Option<Bytes>, StorageError> {
        self.read(CHECKPOINT_KEY, MAX_CHECKPOINT_BYTES).await
    }

    /// The leaves `[start, end)` from the entry bundles, clamped to at most
    /// [`MAX_LEAVES_PER_CALL`] leaves: the result is leaves
    /// `start .. min(end, start + 512)`, never empty. Callers page by asking
    /// again from `start + result.len()`. A call touches at most three
    /// bundles, read concurrently.
    ///
    /// Fails with [`StorageError::EmptyRange`] unless `start < end`, and
    /// [`StorageError::SizeBeyondStored`] if `end > stored_size`. A bundle
    /// entry that is not 128 bytes is [`StorageError::Corrupt`].
    pub async fn leaves(
        &self,
        start: u64,
        end: u64,
        stored_size: u64,
    ) -> Result<Vec<[u8; LEAF_SIZE]>, StorageError> {
        if start >= end {
            return Err(StorageError::EmptyRange { start, end });
        }
        if end > stored_size {
            return Err(StorageError::SizeBeyondStored {
                size: end,
                stored_size,
            });
        }
        let end = end.min(start.saturating_add(MAX_LEAVES_PER_CALL));
        let ids = (start / WIDTH..=(end - 1) / WIDTH)
            .map(|index| bundle_at_size(index, stored_size))
            .collect::<Result<Vec<_>, _>>()?;
        let bundles =
            futures::future::try_join_all(ids.iter().map(|&id| self.bundle_at(id))).await?;
        let mut leaves = Vec::new();
        for (id, bytes) in ids.iter().zip(&bundles) {
            let path = id.path();
            let entries = id
                .decode(bytes)
                .map_err(|e| StorageError::corrupt(&path, e))?;
            let first = id.index() * WIDTH;
            for (position, entry) in entries.iter().enumerate() {
                let index = first + position as u64;
                if !(start..end).contains(&index) {
                    continue;
                }
                let leaf = <[u8; LEAF_SIZE]>::try_from(*entry).map_err(|_| {
                    StorageError::corrupt(
                        &path,
                        Corruption::LeafSize {
                            entry: position,
                            len: entry.len(),
                        },
                    )
                })?;
                leaves.push(leaf);
            }
        }
        Ok(leaves)
    }

    /// The leaf hash of leaf `index`, read from its level-0 hash tile.
    /// Fails with [`ProofError::IndexOutOfRange`] unless `index < stored_size`.
    pub async fn leaf_hash(&self, index: u64, stored_size: u64) -> Result<Hash, StorageError> {
        if index >= stored_size {
            return Err(ProofError::IndexOutOfRange {
                index,
                size: stored_size,
            }
            .into());
        }
        let node = NodeId::leaf(index);
        let hashes = self.node_hashes(&[node], stored_size).await?;
        hashes
            .get(&node)
            .copied()
            .ok_or_else(|| missing_node(node, stored_size))
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves
    /// (leaf sibling first), computed from the tiles at `stored_size`.
    ///
    /// Fails with [`StorageError::SizeBeyondStored`] if `size > stored_size`
    /// and [`StorageError::Proof`] if `index >= size`. A size-1 tree has the
    /// empty proof.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
        stored_size: u64,
    ) -> Result<Vec<Hash>, StorageError> {
        check_size(size, stored_size)?;
        let plan = inclusion_plan(index, size)?;
        self.assemble(&plan, stored_size).await
    }

    /// The consistency proof from the tree of `old_size` leaves to that of
    /// `new_size` leaves, computed from the tiles at `stored_size`; empty
    /// when `old_size` is 0 or equals `new_size`.
    ///
    /// Fails with [`StorageError::SizeBeyondStored`] if
    /// `new_size > stored_size` and [`StorageError::Proof`] if
    /// `old_size > new_size`.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
        stored_size: u64,
    ) -> Result<Vec<Hash>, StorageError> {
        check_size(new_size, stored_size)?;
        let plan = consistency_plan(old_size, new_size)?;
        self.assemble(&plan, stored_size).await
    }

    /// The root hash of the tree of `size` leaves, computed from the tiles at
    /// `stored_size` ([`EMPTY_ROOT`](cairn_tlog::EMPTY_ROOT) for 0). Fails
    /// with [`StorageError::SizeBeyondStored`] if `size > stored_size`.
    pub async fn root(&self, size: u64, stored_size: u64) -> Result<Hash, StorageError> {
        check_size(size, stored_size)?;
        let proof = self.assemble(&root_plan(size), stored_size).await?;
        Ok(proof.first().copied().unwrap_or(cairn_tlog::EMPTY_ROOT))
    }

    /// Fetches the plan's node hashes from the tiles at `stored_size` and
    /// assembles the proof.
    async fn assemble(
        &self,
        plan: &ProofPlan,
        stored_size: u64,
    ) -> Result<Vec<Hash>, StorageError> {
        let hashes = self.node_hashes(plan.nodes(), stored_size).await?;
        plan.assemble(|node| {
            hashes
                .get(&node)
                .copied()
                .ok_or_else(|| missing_node(node, stored_size))
        })
    }

    /// The hashes of complete-subtree `nodes` of the tree at `stored_size`:
    /// each node's tile at its `stored_size` width, distinct tiles fetched
    /// concurrently (at most [`MAX_IN_FLIGHT`] at once).
    async fn node_hashes(
        &self,
        nodes: &[NodeId],
        stored_size: u64,
    ) -> Result<HashMap<NodeId, Hash>, StorageError> {
        let located = nodes
            .iter()
            .map(|&node| Ok((node, node_tile(node, stored_size)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let distinct: BTreeSet<TileId> = located.iter().map(|(_, at)| at.tile()).collect();
        let tiles: HashMap<TileId, Bytes> = futures::stream::iter(distinct)
            .map(|id| async move { Ok::<_, StorageError>((id, self.tile_at(id).await?)) })
            .buffer_unordered(MAX_IN_FLIGHT)
            .try_collect()
            .await?;
        located
            .into_iter()
            .map(|(node, at)| {
                let tile = at.tile();
                let bytes = tiles
                    .get(&tile)
                    .ok_or_else(|| missing_node(node, stored_size))?;
                let hash = node_hash_from_tile(&at, bytes)
                    .map_err(|e| StorageError::corrupt(tile.path(), e))?;
                Ok((node, hash))
            })
            .collect()
    }
}

/// A read about the tree of `size` leaves needs `size ≤ stored_size`.
fn check_size(size: u64, stored_size: u64) -> Result<(), StorageError> {
    if size > stored_size {
        return Err(StorageError::SizeBeyondStored { size, stored_size });
    }
    Ok(())
}

/// Entry bundle `index` at the width it has in a tree of `stored_size`
/// leaves (the caller ensures the bundle has leaves below `stored_size`).
fn bundle_at_size(index: u64, stored_size: u64) -> Result<BundleId, StorageError> {
    if index < stored_size / WIDTH {
        return Ok(BundleId::full(index)?);
    }
    // `stored_size % WIDTH` < 256, so it fits; 0 means the caller asked for a
    // bundle past the tree, which `BundleId::new` rejects.
    let width = u16::try_from(stored_size % WIDTH).unwrap_or(0);
    Ok(BundleId::new(index, width)?)
}

/// A node the lookup was not given: unreachable unless the tile arithmetic
/// and the plan disagree, reported instead of panicking.
fn missing_node(node: NodeId, stored_size: u64) -> StorageError {
    StorageError::Tile(cairn_tlog::tile::TileError::NodeNotInTree {
        node,
        tree_size: stored_size,
    })
}
