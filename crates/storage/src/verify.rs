//! Verification of what the read side takes from storage against a tree head
//! the caller trusts, so that a corrupt object is never used or served.
//!
//! Object storage is not trusted to return what the log wrote: a flipped bit
//! on a disk, a bad copy or an operator's mistake must turn into an error
//! naming the object, never into a wrong proof or leaf. The caller supplies a
//! [`TrustedHead`] (a size and root it has checked, e.g. the log-signed head)
//! and every tile and bundle is checked against it before use:
//!
//! * **The right edge.** The partial hash tiles at the trusted size (one per
//!   level that has one) hold exactly the right-edge subtrees of the tree,
//!   whose fold is the root: they verify together, as an [`Edge`], when they
//!   hash to the trusted root. If they do not, the edge tiles are checked
//!   against the objects below them (the level-0 one against its entry
//!   bundle, the others against the roots of the full tiles below) to tell
//!   which one is corrupt; under the likely assumption that a single object
//!   is damaged, exactly one disagrees.
//! * **Full hash tiles** verify when the RFC 6962 root of their 256 hashes
//!   is the hash their parent tile (one level up, itself verified, up to the
//!   edge) holds for them.
//! * **Entry bundles** verify when their entries' leaf hashes are the hashes
//!   of the (verified) level-0 tile of the same index.
//!
//! Verified full tiles and bundles go into the cache (and nothing else does),
//! so the cost is paid once per object: a full tile, once verified against
//! any head of the log, is correct for every later head, since the tree only
//! grows. The verified edges of the last few heads are kept too, so that the
//! requests of one head read and hash its partial tiles once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use cairn_tlog::proof::root_plan;
use cairn_tlog::tile::{
    BundleId, HASH_SIZE, TILE_WIDTH, TileError, TileId, TilePath, decode_hash_tile,
    node_hash_from_tile, node_tile, partial_tiles_for_size, tile_root,
};
use cairn_tlog::{EMPTY_ROOT, Hash, leaf_hash};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

use crate::error::{Corruption, StorageError};
use crate::store::{MAX_IN_FLIGHT, TileStore};

const WIDTH: u64 = TILE_WIDTH as u64;

/// How many recent heads' verified edges are kept: requests in flight when
/// a new head is published still use the previous one.
const EDGE_HEADS: usize = 4;

/// A tree head the caller trusts: a size and the root hash of the tree of
/// that many leaves, typically from a tree head whose log signature the
/// caller checked. Every Merkle read of a [`TileStore`] verifies the tiles
/// and bundles it uses against one (see the crate docs), and is limited to
/// trees of at most `size` leaves.
///
/// The tiles of `size` must be completely written (true of every signed
/// size: the integrator writes tiles before the head is signed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrustedHead {
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash of the tree of `size` leaves.
    pub root: Hash,
}

impl TrustedHead {
    /// The empty tree: nothing can be read against it, and every tile is
    /// beyond it.
    pub const EMPTY: TrustedHead = TrustedHead {
        size: 0,
        root: EMPTY_ROOT,
    };

    /// The head of `size` leaves with root `root`.
    pub fn new(size: u64, root: Hash) -> Self {
        Self { size, root }
    }
}

/// A tile or bundle read by [`TileStore::get_verified`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TileObject {
    /// Part of the trusted tree and verified against its head: safe to
    /// serve as what the log wrote (and, if full, to cache forever).
    Verified(Bytes),
    /// Beyond the trusted head (a wider partial, or a tile the trusted tree
    /// does not have yet): it decodes at the width its path names, but
    /// nothing the caller trusts covers it yet.
    BeyondHead(Bytes),
}

impl TileObject {
    /// The object's bytes.
    pub fn bytes(&self) -> &Bytes {
        match self {
            TileObject::Verified(b) | TileObject::BeyondHead(b) => b,
        }
    }

    /// Whether the object was verified against the trusted head.
    pub fn is_verified(&self) -> bool {
        matches!(self, TileObject::Verified(_))
    }
}

/// Hash tile (`level`, `index`) as it exists in the tree of `size` leaves:
/// full, partial at its width there, or `None` if that tree does not have it.
pub(crate) fn tile_at_size(level: u8, index: u64, size: u64) -> Option<TileId> {
    let count = size
        .checked_shr(u32::from(level) * 8)
        .filter(|_| level < cairn_tlog::tile::TILE_LEVELS)?;
    if index < count / WIDTH {
        return TileId::full(level, index).ok();
    }
    let width = u16::try_from(count % WIDTH).ok()?;
    (index == count / WIDTH && width > 0)
        .then(|| TileId::new(level, index, width).ok())
        .flatten()
}

/// Entry bundle `index` as it exists in the tree of `size` leaves.
pub(crate) fn bundle_at_size(index: u64, size: u64) -> Option<BundleId> {
    let tile = tile_at_size(0, index, size)?;
    BundleId::new(tile.index(), tile.width()).ok()
}

/// The tile holding the hash of full tile `id` one level up, in the tree of
/// `size` leaves (which has `id`).
fn parent_at_size(id: TileId, size: u64) -> Option<TileId> {
    tile_at_size(id.level().checked_add(1)?, id.index() / WIDTH, size)
}

/// Hash number `position` of tile `id` whose bytes are `bytes`.
fn hash_in(id: TileId, bytes: &[u8], position: usize) -> Result<Hash, StorageError> {
    let start = position * HASH_SIZE;
    bytes
        .get(start..start + HASH_SIZE)
        .and_then(|h| Hash::try_from(h).ok())
        .ok_or_else(|| {
            StorageError::corrupt(
                id.path(),
                TileError::TileTooNarrow {
                    available: bytes.len() / HASH_SIZE,
                    needed: position + 1,
                },
            )
        })
}

/// The right-edge (partial) hash tiles of a trusted head, bottom-up, at
/// their width at its size: together they hash to its root.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Edge {
    head: TrustedHead,
    tiles: Vec<(TileId, Bytes)>,
}

impl Edge {
    fn tile(&self, id: TileId) -> Option<Bytes> {
        self.tiles
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, b)| b.clone())
    }
}

/// Verified edges of recent heads, and the last failed edge verification.
#[derive(Debug, Default)]
pub(crate) struct EdgeCache {
    recent: Mutex<VecDeque<Arc<Edge>>>,
    /// What the last failed verification blamed, for the edge bytes it
    /// found: requests that find the same bytes again get the same answer
    /// without repeating the diagnosis (which may read hundreds of tiles).
    failure: Mutex<Option<Failure>>,
}

#[derive(Clone, Debug)]
struct Failure {
    head: TrustedHead,
    tiles: Vec<(TileId, Bytes)>,
    blame: Blame,
}

/// Which edge tile a root mismatch is blamed on.
#[derive(Clone, Debug)]
enum Blame {
    /// The only one that fails its check against the objects below it.
    One { path: String, below: String },
    /// None, or several, fail it: these are the suspects.
    Several(Vec<String>),
}

impl Blame {
    fn error(&self, head: TrustedHead) -> StorageError {
        match self {
            Blame::One { path, below } => StorageError::corrupt(
                path.clone(),
                Corruption::RootMismatch {
                    size: head.size,
                    root: head.root,
                    below: below.clone(),
                },
            ),
            Blame::Several(suspects) => StorageError::TreeMismatch {
                size: head.size,
                root: head.root,
                suspects: suspects.clone(),
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the value consistent, so a poisoned lock is still
    // usable; a cache must not take the service down.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EdgeCache {
    fn get(&self, head: &TrustedHead) -> Option<Arc<Edge>> {
        lock(&self.recent).iter().find(|e| e.head == *head).cloned()
    }

    fn insert(&self, edge: Arc<Edge>) {
        let mut recent = lock(&self.recent);
        if recent.iter().any(|e| e.head == edge.head) {
            return;
        }
        if recent.len() >= EDGE_HEADS {
            recent.pop_front();
        }
        recent.push_back(edge);
    }

    fn failure(&self, head: &TrustedHead, tiles: &[(TileId, Bytes)]) -> Option<Blame> {
        lock(&self.failure)
            .as_ref()
            .filter(|f| f.head == *head && f.tiles == tiles)
            .map(|f| f.blame.clone())
    }

    fn set_failure(&self, failure: Failure) {
        *lock(&self.failure) = Some(failure);
    }
}

/// The verified reads of one call against one trusted head. The edge is
/// verified lazily, once per call (and cached per head across calls), so a
/// read served entirely from cached full tiles does no IO at all.
pub(crate) struct Verifier<'a> {
    store: &'a TileStore,
    head: TrustedHead,
    edge: OnceCell<Arc<Edge>>,
}

impl<'a> Verifier<'a> {
    pub(crate) fn new(store: &'a TileStore, head: TrustedHead) -> Self {
        Self {
            store,
            head,
            edge: OnceCell::new(),
        }
    }

    pub(crate) fn head(&self) -> TrustedHead {
        self.head
    }

    async fn edge(&self) -> Result<&Arc<Edge>, StorageError> {
        self.edge
            .get_or_try_init(|| self.store.verified_edge(self.head))
            .await
    }

    /// Hash tile `id`, which must be a tile of the trusted tree at its width
    /// there, verified: from the cache, the verified edge, or read and
    /// checked against its parent (reading and checking the uncached full
    /// tiles above it first, up to a cached one or the edge).
    pub(crate) async fn tile(&self, id: TileId) -> Result<Bytes, StorageError> {
        let cache = self.store.cache();
        let mut chain = Vec::new();
        let mut current = id;
        let top = loop {
            if !current.is_full() {
                let edge = self.edge().await?;
                break edge.tile(current).ok_or_else(|| not_in_tree(current))?;
            }
            if let Some(bytes) = cache.get(&TilePath::Hash(current)) {
                break bytes;
            }
            chain.push(current);
            current = parent_at_size(current, self.head.size).ok_or_else(|| not_in_tree(id))?;
        };
        if chain.is_empty() {
            return Ok(top);
        }
        let fetched = futures::future::try_join_all(chain.iter().map(|&t| async move {
            self.store
                .fetch_tile(t)
                .await?
                .ok_or_else(|| StorageError::NotFound { path: t.path() })
        }))
        .await?;
        // Top-down: each tile is checked against its already verified parent.
        let (mut parent, mut parent_bytes) = (current, top);
        for (&t, bytes) in chain.iter().zip(fetched).rev() {
            let position = usize::try_from(t.index() % WIDTH).unwrap_or(0);
            let expected = hash_in(parent, &parent_bytes, position)?;
            let hashes = t
                .decode(&bytes)
                .map_err(|e| StorageError::corrupt(t.path(), e))?;
            let actual = tile_root(&hashes).map_err(|e| StorageError::corrupt(t.path(), e))?;
            if actual != expected {
                return Err(StorageError::corrupt(
                    t.path(),
                    Corruption::TileHashMismatch {
                        parent: parent.path(),
                        expected,
                        actual,
                    },
                ));
            }
            cache.insert(TilePath::Hash(t), bytes.clone());
            (parent, parent_bytes) = (t, bytes);
        }
        Ok(parent_bytes)
    }

    /// Entry bundle `id`, which must be a bundle of the trusted tree at its
    /// width there, verified against the level-0 tile of the same index.
    pub(crate) async fn bundle(&self, id: BundleId) -> Result<Bytes, StorageError> {
        let key = TilePath::Entries(id);
        if id.is_full()
            && let Some(bytes) = self.store.cache().get(&key)
        {
            return Ok(bytes);
        }
        let tile_id = id.hash_tile();
        let (bytes, tile) = futures::try_join!(self.store.bundle_at(id), self.tile(tile_id))?;
        check_entries(id, &bytes, tile_id, &tile)?;
        if id.is_full() {
            self.store.cache().insert(key, bytes.clone());
        }
        Ok(bytes)
    }
}

/// Checks that the entries of bundle `id` (`bytes`) hash to the leaf hashes
/// of its verified level-0 tile (`tile`), which may be wider.
fn check_entries(
    id: BundleId,
    bytes: &[u8],
    tile_id: TileId,
    tile: &[u8],
) -> Result<(), StorageError> {
    let entries = id
        .decode(bytes)
        .map_err(|e| StorageError::corrupt(id.path(), e))?;
    let hashes = decode_hash_tile(tile).map_err(|e| StorageError::corrupt(tile_id.path(), e))?;
    for (entry, data) in entries.iter().enumerate() {
        let expected = hashes.get(entry).copied().ok_or_else(|| {
            StorageError::corrupt(
                tile_id.path(),
                TileError::TileTooNarrow {
                    available: hashes.len(),
                    needed: entries.len(),
                },
            )
        })?;
        if leaf_hash(data) != expected {
            return Err(StorageError::corrupt(
                id.path(),
                Corruption::EntryHashMismatch {
                    entry,
                    tile: tile_id.path(),
                    expected,
                },
            ));
        }
    }
    Ok(())
}

/// A tile a caller asked about that the trusted tree does not have: the
/// tile arithmetic and the caller disagree (unreachable for tiles named by
/// `node_tile` and `bundle_at_size` at the trusted size).
fn not_in_tree(id: TileId) -> StorageError {
    StorageError::NotFound { path: id.path() }
}

/// The root the edge tiles of a tree of `size` leaves hash to.
fn edge_root(size: u64, tiles: &[(TileId, Bytes)]) -> Result<Hash, StorageError> {
    let proof = root_plan(size).assemble(|node| {
        let at = node_tile(node, size)?;
        let (_, bytes) = tiles
            .iter()
            .find(|(t, _)| *t == at.tile())
            .ok_or_else(|| not_in_tree(at.tile()))?;
        node_hash_from_tile(&at, bytes).map_err(|e| StorageError::corrupt(at.tile().path(), e))
    })?;
    Ok(proof.first().copied().unwrap_or(EMPTY_ROOT))
}

impl TileStore {
    /// The right-edge tiles of `head`, verified against its root: from the
    /// cache of recent heads, or read (the partial tiles at its size, or
    /// prefixes of full tiles where those are gone) and checked.
    async fn verified_edge(&self, head: TrustedHead) -> Result<Arc<Edge>, StorageError> {
        if let Some(edge) = self.edges().get(&head) {
            return Ok(edge);
        }
        let ids: Vec<TileId> = partial_tiles_for_size(head.size).collect();
        let tiles = futures::future::try_join_all(
            ids.iter()
                .map(|&id| async move { Ok::<_, StorageError>((id, self.tile_at(id).await?)) }),
        )
        .await?;
        if edge_root(head.size, &tiles)? != head.root {
            return Err(self.blame_edge(head, tiles).await);
        }
        let edge = Arc::new(Edge { head, tiles });
        self.edges().insert(Arc::clone(&edge));
        Ok(edge)
    }

    /// The error for edge tiles that do not hash to the trusted root: the one
    /// edge tile that disagrees with the objects below it, if exactly one
    /// does; otherwise the suspects. A transient failure while checking is
    /// returned as is (the next request diagnoses again).
    async fn blame_edge(&self, head: TrustedHead, tiles: Vec<(TileId, Bytes)>) -> StorageError {
        if let Some(blame) = self.edges().failure(&head, &tiles) {
            return blame.error(head);
        }
        let mut failing = Vec::new();
        for (id, bytes) in &tiles {
            match self.check_below(*id, bytes).await {
                Ok(None) => {}
                Ok(Some(below)) => failing.push((id.path(), below)),
                Err(e) if e.is_retryable() => return e,
                Err(e) => failing.push((
                    id.path(),
                    format!("it could not be checked against the objects below it: {e}"),
                )),
            }
        }
        let blame = match failing.as_slice() {
            [(path, below)] => Blame::One {
                path: path.clone(),
                below: below.clone(),
            },
            [] => Blame::Several(tiles.iter().map(|(id, _)| id.path()).collect()),
            _ => Blame::Several(failing.into_iter().map(|(path, _)| path).collect()),
        };
        tracing::error!(
            size = head.size,
            ?blame,
            "the stored right-edge tiles do not hash to the trusted root"
        );
        self.edges().set_failure(Failure {
            head,
            tiles,
            blame: blame.clone(),
        });
        blame.error(head)
    }

    /// Checks edge tile `id` against the objects below it: `None` if they
    /// agree, else what it disagrees with. Level 0: the leaf hashes of its
    /// entry bundle. Above: the roots of the full tiles one level down.
    async fn check_below(&self, id: TileId, bytes: &[u8]) -> Result<Option<String>, StorageError> {
        let hashes = id
            .decode(bytes)
            .map_err(|e| StorageError::corrupt(id.path(), e))?;
        if id.level() == 0 {
            let bundle_id = BundleId::new(id.index(), id.width())?;
            let bundle = self.bundle_at(bundle_id).await?;
            let entries = bundle_id
                .decode(&bundle)
                .map_err(|e| StorageError::corrupt(bundle_id.path(), e))?;
            let differs = entries
                .iter()
                .zip(&hashes)
                .position(|(entry, hash)| leaf_hash(entry) != *hash);
            return Ok(differs
                .map(|entry| format!("it disagrees with {} at entry {entry}", bundle_id.path())));
        }
        let level = id.level() - 1;
        let first = id
            .index()
            .checked_mul(WIDTH)
            .ok_or(TileError::TileBeyondMaxTree {
                level,
                index: id.index(),
                width: TILE_WIDTH,
            })?;
        // Owned items: a stream over borrowed ones would make the future not
        // `Send` for every lifetime (a known limit of the compiler's
        // higher-ranked inference), and callers spawn it.
        let mut roots = futures::stream::iter(hashes.into_iter().enumerate())
            .map(|(position, hash)| async move {
                let below = TileId::full(level, first + position as u64)?;
                let bytes = self
                    .fetch_tile(below)
                    .await?
                    .ok_or_else(|| StorageError::NotFound { path: below.path() })?;
                let root = tile_root(
                    &below
                        .decode(&bytes)
                        .map_err(|e| StorageError::corrupt(below.path(), e))?,
                )?;
                Ok::<_, StorageError>((position, below, root == hash))
            })
            .buffered(MAX_IN_FLIGHT);
        while let Some((position, below, agrees)) = roots.try_next().await? {
            if !agrees {
                return Ok(Some(format!(
                    "its hash {position} is not the root of {}",
                    below.path()
                )));
            }
        }
        Ok(None)
    }

    /// The tile or bundle `path`, checked against `head`, for serving.
    ///
    /// * A tile or bundle of the trusted tree (full below its size, or the
    ///   partial of exactly its width) is verified as the Merkle reads do.
    /// * A narrower partial of the same index (left from an older size) must
    ///   be a prefix of that verified one: its hashes, or its entries' leaf
    ///   hashes, are compared.
    /// * Anything beyond the trusted tree (a wider partial, a higher index,
    ///   a higher level) is returned as [`TileObject::BeyondHead`] if it
    ///   decodes at the width its path names.
    ///
    /// A narrower partial that is not stored (collected once the tree
    /// outgrew it) is served as the prefix of the verified one: the bytes it
    /// had. Otherwise `None` if the exact object does not exist. A
    /// verification failure is
    /// [`StorageError::Corrupt`] (naming the object, or the object it
    /// depends on that failed) or [`StorageError::TreeMismatch`]; both are
    /// counted in [`corrupt_reads`](Self::corrupt_reads).
    pub async fn get_verified(
        &self,
        path: TilePath,
        head: TrustedHead,
    ) -> Result<Option<TileObject>, StorageError> {
        let result = self.get_verified_inner(path, head).await;
        self.observed(result)
    }

    async fn get_verified_inner(
        &self,
        path: TilePath,
        head: TrustedHead,
    ) -> Result<Option<TileObject>, StorageError> {
        let v = Verifier::new(self, head);
        match path {
            TilePath::Hash(id) => {
                let Some(at) = tile_at_size(id.level(), id.index(), head.size)
                    .filter(|at| at.width() >= id.width())
                else {
                    return Ok(self.fetch_tile(id).await?.map(TileObject::BeyondHead));
                };
                if id.is_full() {
                    return exact(id.path(), v.tile(at).await);
                }
                let verified = v.tile(at).await?;
                let Some(bytes) = self.fetch_tile(id).await? else {
                    // Collected (or never written): the same bytes are the
                    // verified tile's first hashes.
                    let len = usize::from(id.width()) * cairn_tlog::tile::HASH_SIZE;
                    return Ok(verified
                        .get(..len)
                        .map(|_| TileObject::Verified(verified.slice(..len))));
                };
                if verified.get(..bytes.len()) != Some(&bytes[..]) {
                    return Err(StorageError::corrupt(
                        id.path(),
                        Corruption::NotPrefix { tile: at.path() },
                    ));
                }
                Ok(Some(TileObject::Verified(bytes)))
            }
            TilePath::Entries(id) => {
                let Some(at) =
                    bundle_at_size(id.index(), head.size).filter(|at| at.width() >= id.width())
                else {
                    return Ok(self.fetch_bundle(id).await?.map(TileObject::BeyondHead));
                };
                if id.is_full() {
                    return exact(id.path(), v.bundle(at).await);
                }
                let Some(bytes) = self.fetch_bundle(id).await? else {
                    // Collected (or never written): the verified bundle's
                    // first entries are the same bytes.
                    let verified = v.bundle(at).await?;
                    let entries = cairn_tlog::tile::decode_bundle(&verified)
                        .map_err(|e| StorageError::corrupt(at.path(), e))?;
                    let Some(prefix) = entries.get(..usize::from(id.width())) else {
                        return Ok(None);
                    };
                    let encoded = cairn_tlog::tile::encode_bundle(prefix)
                        .map_err(|e| StorageError::corrupt(at.path(), e))?;
                    return Ok(Some(TileObject::Verified(Bytes::from(encoded))));
                };
                let tile_id = at.hash_tile();
                let tile = v.tile(tile_id).await?;
                check_entries(id, &bytes, tile_id, &tile)?;
                Ok(Some(TileObject::Verified(bytes)))
            }
        }
    }
}

/// The verified read of a full object: `None` if that very object is
/// missing (not an object it depends on).
fn exact(
    path: String,
    read: Result<Bytes, StorageError>,
) -> Result<Option<TileObject>, StorageError> {
    match read {
        Ok(bytes) => Ok(Some(TileObject::Verified(bytes))),
        Err(StorageError::NotFound { path: missing }) if missing == path => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_named_at_their_width_in_a_tree() {
        let t = |level, index, width| TileId::new(level, index, width).unwrap();
        assert_eq!(tile_at_size(0, 0, 300), Some(t(0, 0, 256)));
        assert_eq!(tile_at_size(0, 1, 300), Some(t(0, 1, 44)));
        assert_eq!(tile_at_size(0, 2, 300), None);
        assert_eq!(tile_at_size(1, 0, 300), Some(t(1, 0, 1)));
        assert_eq!(tile_at_size(1, 0, 255), None);
        assert_eq!(tile_at_size(2, 0, 300), None);
        assert_eq!(tile_at_size(0, 1, 512), Some(t(0, 1, 256)));
        assert_eq!(tile_at_size(0, 2, 512), None);
        assert_eq!(tile_at_size(7, 0, u64::MAX), Some(t(7, 0, 255)));
        assert_eq!(tile_at_size(8, 0, u64::MAX), None);
        assert_eq!(tile_at_size(0, 0, 0), None);
        assert_eq!(
            parent_at_size(t(0, 1, 256), 600),
            Some(TileId::new(1, 0, 2).unwrap())
        );
        assert_eq!(bundle_at_size(1, 300), BundleId::new(1, 44).ok());
    }

    #[test]
    fn every_right_edge_node_lives_in_a_partial_tile_of_its_size() {
        // What edge verification relies on: the root is a function of the
        // partial tiles alone.
        for size in (1..70_000u64).step_by(97).chain([65_536, 65_792, 1 << 40]) {
            let partial: Vec<TileId> = partial_tiles_for_size(size).collect();
            for node in root_plan(size).nodes() {
                let at = node_tile(*node, size).unwrap();
                assert!(partial.contains(&at.tile()), "{size}: {node:?}");
            }
        }
    }
}
