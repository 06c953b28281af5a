//! Shared test fixtures: deterministic leaves, a tree grown through the real
//! builders into a real `LocalFileSystem` store, and signed checkpoints.

#![allow(dead_code)] // Each test binary uses a different subset.

use cairn_storage::{TileStore, TrustedHead};
use cairn_tlog::checkpoint::Checkpoint;
use cairn_tlog::compact::CompactRange;
use cairn_tlog::cosignature::Cosigner;
use cairn_tlog::note::Ed25519NoteSigner;
use cairn_tlog::tile::{BundleBuilder, TileBuilder};
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
