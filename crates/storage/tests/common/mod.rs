//! Shared test fixtures: deterministic leaves, a tree grown through the real
//! builders into a real `LocalFileSystem` store, and signed checkpoints.

#![allow(dead_code)] // Each test binary uses a different subset.

use cairn_storage::{TileStore, TrustedHead};
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::compact::CompactRange;
use cairn_tlog::cosignature::Cosigner;
use cairn_tlog::note::Ed25519NoteSigner;
use cairn_tlog::proof::{verify_consistency, verify_inclusion};
use cairn_tlog::tile::{BundleBuilder, TileBuilder, TilePath, parse_path};
use cairn_tlog::{Hash, leaf_hash};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use tempfile::TempDir;

/// The shard prefix every test uses.
pub const PREFIX: &str = "dev";

/// SplitMix64: a tiny deterministic generator, so every run (and every
/// failure) is reproducible from the seed printed by the test.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]` (slightly biased; fine for tests).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// Leaf `i`: 128 bytes that differ for every index.
pub fn leaf(i: u64) -> [u8; 128] {
    let mut out = [0u8; 128];
    for (k, chunk) in out.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(i.wrapping_mul(1_000_003) ^ (k as u64) << 56).to_be_bytes());
    }
    out
}

/// A store in a fresh temporary directory.
pub fn temp_store() -> (TempDir, TileStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TileStore::local(dir.path(), PREFIX).expect("local store");
    (dir, store)
}

/// A second handle on the same directory with an empty cache, as after a
/// process restart.
pub fn reopen(dir: &TempDir) -> TileStore {
    TileStore::local(dir.path(), PREFIX).expect("reopen local store")
}

/// A log grown through `TileBuilder`/`BundleBuilder` and
/// `TileStore::write_integration`, with the reference data to check reads
/// against: every leaf, and the root of every size from `CompactRange`.
pub struct Tree {
    pub tiles: TileBuilder,
    pub bundles: BundleBuilder,
    pub leaves: Vec<[u8; 128]>,
    /// `roots[s]` is the root of the first `s` leaves.
    pub roots: Vec<Hash>,
    compact: CompactRange,
}

impl Tree {
    pub fn new() -> Self {
        let compact = CompactRange::new();
        Self {
            tiles: TileBuilder::new(),
            bundles: BundleBuilder::new(),
            leaves: Vec::new(),
            roots: vec![compact.root()],
            compact,
        }
    }

    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Appends `n` leaves and writes the resulting objects to `store`.
    pub async fn grow(&mut self, store: &TileStore, n: u64) {
        let start = self.size();
        let batch: Vec<[u8; 128]> = (start..start + n).map(leaf).collect();
        let hashes: Vec<Hash> = batch.iter().map(|l| leaf_hash(l)).collect();
        for h in &hashes {
            self.compact.append(*h).unwrap();
            self.roots.push(self.compact.root());
        }
        let bundle_writes = self.bundles.append(&batch).unwrap();
        let tile_writes = self.tiles.append(&hashes).unwrap();
        assert_eq!(self.tiles.root(), self.compact.root());
        store
            .write_integration(&bundle_writes, &tile_writes)
            .await
            .expect("write_integration");
        self.leaves.extend_from_slice(&batch);
    }

    /// The trusted head of the first `size` leaves (a size this tree had).
    pub fn head(&self, size: u64) -> TrustedHead {
        TrustedHead::new(size, self.roots[size as usize])
    }

    pub fn leaf_hash(&self, i: u64) -> Hash {
        leaf_hash(&self.leaves[i as usize])
    }
}

/// The object store path of `key` below the test prefix.
pub fn raw_path(key: &str) -> Path {
    Path::from(format!("{PREFIX}/{key}"))
}

/// Overwrites `key` with `bytes`, bypassing create-only (simulates a disk
/// or operator corrupting an object).
pub async fn overwrite_raw(store: &TileStore, key: &str, bytes: Vec<u8>) {
    store
        .object_store()
        .put(&raw_path(key), bytes.into())
        .await
        .expect("raw put");
}

/// Flips the lowest bit of byte `at` of `key`, bypassing the tile store
/// (simulates bit rot); returns the original bytes.
pub async fn flip_byte(store: &TileStore, key: &str, at: usize) -> Vec<u8> {
    let original = read_raw(store, key).await.expect("object to corrupt");
    let mut bytes = original.clone();
    bytes[at] ^= 1;
    overwrite_raw(store, key, bytes).await;
    original
}

/// Reads `key` bypassing the tile store.
pub async fn read_raw(store: &TileStore, key: &str) -> Option<Vec<u8>> {
    match store.object_store().get(&raw_path(key)).await {
        Ok(r) => Some(r.bytes().await.expect("raw body").to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("raw get {key}: {e}"),
    }
}

/// Deletes `key` bypassing the tile store.
pub async fn delete_raw(store: &TileStore, key: &str) {
    store
        .object_store()
        .delete(&raw_path(key))
        .await
        .expect("raw delete");
}

/// The origin of the test log's checkpoints.
pub const ORIGIN: &str = "example.org/cairn-test";

/// A checkpoint note for `size`/`root`, signed by the log and by
/// `cosigners` witnesses (so the same head can come with more signatures).
pub fn note(origin: &str, size: u64, root: [u8; 32], cosigners: usize) -> Vec<u8> {
    let cp = Checkpoint::new(origin, size, root);
    let signer = Ed25519NoteSigner::new(origin, &[7; 32]).unwrap();
    let mut note = signer.sign_note(&cp.to_body()).unwrap();
    for w in 0..cosigners {
        let witness = Cosigner::new(&format!("witness-{w}.example"), &[w as u8 + 1; 32]).unwrap();
        note.add_signature(witness.note_signature(&cp, 1_700_000_000).unwrap())
            .unwrap();
    }
    note.to_bytes()
}

/// The roots of the first `0..=n` leaves (`leaf(i)`) of the test tree:
/// `roots(n)[s]` is the root of size `s`.
pub fn roots(n: u64) -> Vec<Hash> {
    let mut compact = CompactRange::new();
    let mut roots = vec![compact.root()];
    for i in 0..n {
        compact.append(leaf_hash(&leaf(i))).unwrap();
        roots.push(compact.root());
    }
    roots
}

/// The size and root of a stored checkpoint note.
pub fn size_and_root(bytes: &[u8]) -> (u64, Hash) {
    let signed =
        cairn_tlog::checkpoint::SignedCheckpoint::parse(bytes).expect("stored checkpoint parses");
    (signed.checkpoint().size, signed.checkpoint().root)
}

/// Two handles (two "leaders") on one store, three tasks each; each task
/// publishes every third size up to `top` in increasing order, so every
/// size is published once by each handle. The two histories are the same
/// tree (same root per size) with different cosignatures, so same-size
/// replacements are legitimate and only a step back would be wrong.
/// `reader` samples the object throughout: sizes never decrease and every
/// size carries the tree's root. Ends with the object at `top`.
pub async fn race_checkpoint_writers(
    handles: [TileStore; 2],
    reader: TileStore,
    top: u64,
    deadline: std::time::Duration,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const TASKS: u64 = 3;
    let roots = Arc::new(roots(top));
    let writers_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let roots = Arc::clone(&roots);
        let writers_done = Arc::clone(&writers_done);
        tokio::spawn(async move {
            let mut last = 0;
            let mut samples = 0u32;
            loop {
                // Read the flag first: the sample after it is seen set is
                // taken after every write.
                let finished = writers_done.load(Ordering::SeqCst);
                if let Some(bytes) = reader.checkpoint().await.expect("reader") {
                    let (size, root) = size_and_root(&bytes);
                    assert!(size >= last, "checkpoint went back from {last} to {size}");
                    assert_eq!(root, roots[size as usize], "wrong root for size {size}");
                    last = size;
                    samples += 1;
                }
                if finished {
                    return (last, samples);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for (history, store) in handles.iter().enumerate() {
        for task in 0..TASKS {
            let store = store.clone();
            let roots = Arc::clone(&roots);
            writers.push(tokio::spawn(async move {
                let mut refused = 0u32;
                for size in (1..=top).filter(|s| s % TASKS == task) {
                    let bytes = note(ORIGIN, size, roots[size as usize], history);
                    match store.put_checkpoint(size, bytes).await {
                        Ok(()) => {}
                        Err(cairn_storage::StorageError::CheckpointShrinks {
                            stored,
                            requested,
                        }) => {
                            assert!(stored > requested, "{stored} <= {requested}");
                            refused += 1;
                        }
                        Err(e) => panic!("history {history} size {size}: {e}"),
                    }
                }
                refused
            }));
        }
    }
    let refused = tokio::time::timeout(deadline, futures::future::try_join_all(writers))
        .await
        .expect("writers finish within the deadline")
        .expect("no writer panicked");
    writers_done.store(true, Ordering::SeqCst);
    let (last_seen, samples) = tokio::time::timeout(deadline, reader)
        .await
        .expect("reader finishes within the deadline")
        .expect("reader saw no step back");
    println!(
        "refused as stale: {} of {}; reader samples: {samples}",
        refused.iter().sum::<u32>(),
        2 * top
    );
    let stored = read_raw(&handles[0], cairn_storage::CHECKPOINT_KEY)
        .await
        .unwrap();
    assert_eq!(size_and_root(&stored), (top, roots[top as usize]));
    assert_eq!(last_seen, top);
}

/// A deposed leader saw size 10, the new leader publishes 15, and the
/// deposed one, waking up, tries 12 (larger than what it saw): refused as
/// stale, and the object stays the new leader's.
pub async fn deposed_writer_is_refused(deposed: &TileStore, leader: &TileStore) {
    let roots = roots(20);
    deposed
        .put_checkpoint(10, note(ORIGIN, 10, roots[10], 0))
        .await
        .unwrap();
    let seen = deposed.checkpoint().await.unwrap().unwrap();
    assert_eq!(size_and_root(&seen).0, 10);
    let published = note(ORIGIN, 15, roots[15], 1);
    leader.put_checkpoint(15, published.clone()).await.unwrap();
    let err = deposed
        .put_checkpoint(12, note(ORIGIN, 12, roots[12], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            cairn_storage::StorageError::CheckpointShrinks {
                stored: 15,
                requested: 12
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_fatal() && !err.is_retryable());
    assert_eq!(
        read_raw(leader, cairn_storage::CHECKPOINT_KEY)
            .await
            .unwrap(),
        published
    );
}

/// Publishes the tree's checkpoint of `size` to `store`.
pub async fn publish(store: &TileStore, tree: &Tree, size: u64) {
    let root = tree.roots[size as usize];
    store
        .put_checkpoint(size, note(ORIGIN, size, root, 0))
        .await
        .expect("publish checkpoint");
}

/// The partial tiles and bundles stored under the test prefix, sorted.
pub async fn stored_partials(store: &TileStore) -> Vec<TilePath> {
    use futures::TryStreamExt;
    let listed: Vec<_> = store
        .object_store()
        .list(Some(&raw_path("tile")))
        .try_collect()
        .await
        .expect("list");
    let strip = format!("{PREFIX}/");
    let mut partials: Vec<TilePath> = listed
        .iter()
        .filter_map(|m| parse_path(m.location.as_ref().strip_prefix(&strip)?).ok())
        .filter(|p| !p.is_full())
        .collect();
    partials.sort();
    partials
}

/// Checks every read about the tree of `size` leaves against the reference,
/// reading the tiles at `stored`: the root, the consistency proof to
/// `stored`, and inclusion proofs for `indices`.
pub async fn check_size(store: &TileStore, tree: &Tree, size: u64, stored: u64, indices: &[u64]) {
    let root = store.root(size, tree.head(stored)).await.unwrap();
    assert_eq!(
        root, tree.roots[size as usize],
        "root of {size} at {stored}"
    );
    let proof = store
        .consistency_proof(size, stored, tree.head(stored))
        .await
        .unwrap();
    verify_consistency(
        size,
        stored,
        &proof,
        &tree.roots[size as usize],
        &tree.roots[stored as usize],
    )
    .unwrap_or_else(|e| panic!("consistency {size} -> {stored}: {e}"));
    for &index in indices {
        let proof = store
            .inclusion_proof(index, size, tree.head(stored))
            .await
            .unwrap();
        verify_inclusion(
            &tree.leaf_hash(index),
            index,
            size,
            &proof,
            &tree.roots[size as usize],
        )
        .unwrap_or_else(|e| panic!("inclusion of {index} in {size} at {stored}: {e}"));
    }
}
