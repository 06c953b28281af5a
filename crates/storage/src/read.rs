//! The read side, used by the frontend and the collector: objects verbatim,
//! and leaves, leaf hashes, proofs and roots computed from tiles.
//!
//! Every Merkle read takes a [`TrustedHead`]: a tree size whose tiles are
//! known to be completely written (a signed size) and its root, which the
//! caller trusts. Tiles are read *as they exist at that size* — the full
//! tile, or the partial tile of the width the tree has there — and verified
//! against the head before use (see `crate::verify`). For any smaller size
//! the needed hashes are a prefix of those tiles, so proofs for old sizes
//! never need the old, narrower partial tiles, which may have been
//! garbage-collected.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use cairn_tlog::Hash;
use cairn_tlog::proof::{
    NodeId, ProofError, ProofPlan, consistency_plan, inclusion_plan, root_plan,
};
use cairn_tlog::tile::{TILE_WIDTH, TileId, TilePath, node_hash_from_tile, node_tile, parse_path};
use futures::{StreamExt, TryStreamExt};

use crate::error::{Corruption, StorageError};
use crate::store::{CHECKPOINT_KEY, MAX_CHECKPOINT_BYTES, MAX_IN_FLIGHT, TileStore};
use crate::verify::{TrustedHead, Verifier, bundle_at_size};

/// Size of a Sigsum leaf (`checksum ‖ signature ‖ key_hash`) in an entry bundle.
pub const LEAF_SIZE: usize = 128;

/// Most leaves one [`TileStore::leaves`] call returns (Sigsum's
/// `get-leaves`, like log-go's default `max-range`, is clamped to 512).
pub const MAX_LEAVES_PER_CALL: u64 = 512;

const WIDTH: u64 = TILE_WIDTH as u64;

impl TileStore {
    /// The stored object `key` verbatim: `key` is `checkpoint` or a
    /// canonical tlog-tiles path (`tile/<L>/<N>[.p/<W>]`,
    /// `tile/entries/<N>[.p/<W>]`), else [`StorageError::InvalidKey`].
    /// `None` if that exact object does not exist.
    ///
    /// Tiles and bundles are only checked to decode at the width their path
    /// names ([`StorageError::Corrupt`] otherwise); they are NOT verified
    /// against any tree head, so this is for tools that verify by
    /// themselves. To serve tiles use [`get_verified`](Self::get_verified).
    /// Full ones come from the cache of verified objects when present. The
    /// checkpoint is returned unchecked.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        if key == CHECKPOINT_KEY {
            return self.checkpoint().await;
        }
        let tile = parse_path(key).map_err(|_| StorageError::InvalidKey {
            key: key.chars().take(80).collect(),
            reason: "not `checkpoint` or a canonical tile path",
        })?;
        let result = match tile {
            TilePath::Hash(id) => self.fetch_tile(id).await,
            TilePath::Entries(id) => self.fetch_bundle(id).await,
        };
        self.observed(result)
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
    /// bundles, read concurrently, each verified against `head` (its
    /// entries' leaf hashes against its verified level-0 tile).
    ///
    /// Fails with [`StorageError::EmptyRange`] unless `start < end`, and
    /// [`StorageError::SizeBeyondTrusted`] if `end > head.size`. A bundle
    /// that does not verify, or an entry that is not 128 bytes, is
    /// [`StorageError::Corrupt`] naming the object.
    pub async fn leaves(
        &self,
        start: u64,
        end: u64,
        head: TrustedHead,
    ) -> Result<Vec<[u8; LEAF_SIZE]>, StorageError> {
        let result = self.leaves_inner(start, end, head).await;
        self.observed(result)
    }

    async fn leaves_inner(
        &self,
        start: u64,
        end: u64,
        head: TrustedHead,
    ) -> Result<Vec<[u8; LEAF_SIZE]>, StorageError> {
        if start >= end {
            return Err(StorageError::EmptyRange { start, end });
        }
        check_size(end, head)?;
        let end = end.min(start.saturating_add(MAX_LEAVES_PER_CALL));
        let ids = (start / WIDTH..=(end - 1) / WIDTH)
            .map(|index| {
                bundle_at_size(index, head.size).ok_or(StorageError::SizeBeyondTrusted {
                    size: end,
                    trusted_size: head.size,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let v = Verifier::new(self, head);
        let bundles = futures::future::try_join_all(ids.iter().map(|&id| v.bundle(id))).await?;
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

    /// The leaf hash of leaf `index`, read from its verified level-0 hash
    /// tile. Fails with [`ProofError::IndexOutOfRange`] unless
    /// `index < head.size`.
    pub async fn leaf_hash(&self, index: u64, head: TrustedHead) -> Result<Hash, StorageError> {
        let result = async {
            if index >= head.size {
                return Err(ProofError::IndexOutOfRange {
                    index,
                    size: head.size,
                }
                .into());
            }
            let node = NodeId::leaf(index);
            let hashes = self
                .node_hashes(&[node], &Verifier::new(self, head))
                .await?;
            hashes
                .get(&node)
                .copied()
                .ok_or_else(|| missing_node(node, head.size))
        }
        .await;
        self.observed(result)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves
    /// (leaf sibling first), computed from the tiles at `head`, verified.
    ///
    /// Fails with [`StorageError::SizeBeyondTrusted`] if `size > head.size`
    /// and [`StorageError::Proof`] if `index >= size`. A size-1 tree has the
    /// empty proof.
    pub async fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
        head: TrustedHead,
    ) -> Result<Vec<Hash>, StorageError> {
        let result = async {
            check_size(size, head)?;
            let plan = inclusion_plan(index, size)?;
            self.assemble(&plan, head).await
        }
        .await;
        self.observed(result)
    }

    /// The consistency proof from the tree of `old_size` leaves to that of
    /// `new_size` leaves, computed from the tiles at `head`, verified; empty
    /// when `old_size` is 0 or equals `new_size`.
    ///
    /// Fails with [`StorageError::SizeBeyondTrusted`] if
    /// `new_size > head.size` and [`StorageError::Proof`] if
    /// `old_size > new_size`.
    pub async fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
        head: TrustedHead,
    ) -> Result<Vec<Hash>, StorageError> {
        let result = async {
            check_size(new_size, head)?;
            let plan = consistency_plan(old_size, new_size)?;
            self.assemble(&plan, head).await
        }
        .await;
        self.observed(result)
    }

    /// The root hash of the tree of `size` leaves, computed from the tiles
    /// at `head`, verified ([`EMPTY_ROOT`](cairn_tlog::EMPTY_ROOT) for 0);
    /// `head.root` itself, without reading anything, for `head.size`. Fails
    /// with [`StorageError::SizeBeyondTrusted`] if `size > head.size`.
    pub async fn root(&self, size: u64, head: TrustedHead) -> Result<Hash, StorageError> {
        let result = async {
            check_size(size, head)?;
            if size == head.size {
                return Ok(head.root);
            }
            let proof = self.assemble(&root_plan(size), head).await?;
            Ok(proof.first().copied().unwrap_or(cairn_tlog::EMPTY_ROOT))
        }
        .await;
        self.observed(result)
    }

    /// Fetches the plan's node hashes from the verified tiles at `head` and
    /// assembles the proof.
    async fn assemble(
        &self,
        plan: &ProofPlan,
        head: TrustedHead,
    ) -> Result<Vec<Hash>, StorageError> {
        let hashes = self
            .node_hashes(plan.nodes(), &Verifier::new(self, head))
            .await?;
        plan.assemble(|node| {
            hashes
                .get(&node)
                .copied()
                .ok_or_else(|| missing_node(node, head.size))
        })
    }

    /// The hashes of complete-subtree `nodes` of the trusted tree: each
    /// remembered one (computed from a verified full tile) from the node
    /// cache, the others from their tile at
    /// its width at the trusted size, verified, distinct tiles fetched
    /// concurrently (at most [`MAX_IN_FLIGHT`] at once).
    async fn node_hashes(
        &self,
        nodes: &[NodeId],
        v: &Verifier<'_>,
    ) -> Result<HashMap<NodeId, Hash>, StorageError> {
        let size = v.head().size;
        let cache = self.nodes();
        let mut found = HashMap::with_capacity(nodes.len());
        let mut located = Vec::new();
        for &node in nodes {
            match cache.get(&node) {
                Some(hash) => {
                    found.insert(node, hash);
                }
                None => located.push((node, node_tile(node, size)?)),
            }
        }
        let distinct: BTreeSet<TileId> = located.iter().map(|(_, at)| at.tile()).collect();
        let tiles: HashMap<TileId, Bytes> = futures::stream::iter(distinct)
            .map(|id| async move { Ok::<_, StorageError>((id, v.tile(id).await?)) })
            .buffer_unordered(MAX_IN_FLIGHT)
            .try_collect()
            .await?;
        for (node, at) in located {
            let tile = at.tile();
            let bytes = tiles.get(&tile).ok_or_else(|| missing_node(node, size))?;
            let hash = node_hash_from_tile(&at, bytes)
                .map_err(|e| StorageError::corrupt(tile.path(), e))?;
            // Only from full tiles, which the tile cache too trusts for
            // every later head once verified; a partial tile is checked
            // against each head that uses it.
            if tile.is_full() {
                cache.insert(node, hash);
            }
            found.insert(node, hash);
        }
        Ok(found)
    }
}

/// A read about the tree of `size` leaves needs `size ≤ head.size`.
fn check_size(size: u64, head: TrustedHead) -> Result<(), StorageError> {
    if size > head.size {
        return Err(StorageError::SizeBeyondTrusted {
            size,
            trusted_size: head.size,
        });
    }
    Ok(())
}

/// A node the lookup was not given: unreachable unless the tile arithmetic
/// and the plan disagree, reported instead of panicking.
fn missing_node(node: NodeId, size: u64) -> StorageError {
    StorageError::Tile(cairn_tlog::tile::TileError::NodeNotInTree {
        node,
        tree_size: size,
    })
}
