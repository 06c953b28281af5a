//! A shard's applied state on RocksDB: the openraft state machine, and the
//! read API of the sequencing pipeline.
//!
//! Column families (in the shard database of [`open_shard_db`](crate::log_store::open_shard_db)):
//!
//! | CF | key | value |
//! |---|---|---|
//! | `leaves` | big-endian u64 leaf index | the 128-byte leaf; only leaves not yet in a full entry bundle (see *Pruning*) |
//! | `leaf_index` | 32-byte leaf hash | big-endian u64 leaf index; every sequenced leaf, never pruned (dedup) |
//! | `roots` | big-endian u64 tree size after an `Append` | 32-byte root |
//! | `sm_meta` | `state` | postcard `StoredState`: last applied log id, last membership, tree size and right edge, integrated size and root, cosigned head; `V2` (written once the log is frozen) adds its final size and successor |
//! | `sm_meta` | `installing` | postcard `SnapshotMeta`; present only while a snapshot install replaces the column families (see *Snapshots*) |
//!
//! # Applying
//!
//! The meaning of each [`Command`] is fixed in [`crate::types`]. One call of
//! `apply` (any number of entries) is ONE `WriteBatch` holding the effects and
//! the new `state` record, including the last applied log id. So the state on
//! disk is always exactly "the log applied up to `last_applied`", and when a
//! restart loses the latest (unsynced) batches, openraft re-applies the
//! entries after `last_applied` from the Raft log and gets identical results.
//! The batch is not synced: the Raft log is the durable source, and the next
//! synced write of the log store (which shares the WAL) makes it durable —
//! in particular before any purge of the entries it came from.
//!
//! Invalid commands never panic and never fail the node: they are answered
//! with [`CommandResponse::Rejected`] and change nothing but `last_applied`.
//!
//! # Pruning
//!
//! Applying `Integrated{size}` deletes (in the same batch, with one range
//! delete) every leaf below [`prune_point`]`(size)`: `size` rounded down to
//! a multiple of 256, i.e. the leaves of the full entry bundles below it.
//! Those bundles are immutable objects the integrator wrote before it
//! proposed `Integrated`. The at most 255 leaves of the partial bundle stay,
//! because partial bundles are replaced as the tree grows (and an old copy
//! of the tiles put back in storage lacks them): the integrator can always
//! rebuild the tiles of the integrated size from full bundles plus the
//! state machine. [`StateMachine::leaves`] refuses pruned ranges with
//! [`StoreError::Pruned`]; `leaf_index` and `roots` are never pruned, so
//! deduplication and inclusion lookups are unaffected. The prune point is a
//! function of the applied integrated size, so it needs no record of its
//! own and every replica prunes identically.
//!
//! # Snapshots
//!
//! Snapshot files live in their own directory, by default *beside* the
//! database directory (`raft/<shard>.snapshots/` next to `raft/<shard>/`,
//! see [`SnapshotOptions::beside`]), never inside RocksDB's. The format is
//! in [`crate::snapshot`] (magic, version, one section per column family,
//! length-prefixed records, record count and SHA-256 at the end).
//!
//! * **Build**: under one RocksDB snapshot (a consistent view, while applies
//!   go on), each column family is iterated and written to `build-<n>.tmp`
//!   through a buffer of [`SnapshotOptions::write_chunk_bytes`]; the file is
//!   then renamed to `current.snap`, replacing the previous build. Memory is
//!   bounded by the chunk and one record, whatever the state's size. Builds
//!   and installs are serialised. openraft sends the file to followers in
//!   `Config::snapshot_max_chunk_size` chunks.
//! * **Receive**: `begin_receiving_snapshot` creates `recv-<n>.tmp` (and
//!   deletes an abandoned earlier one); openraft writes the chunks into it.
//! * **Install** (crash-safe although it takes many batches):
//!   1. The received file is fsynced and renamed to `install.snap` (a file
//!      that is not ours is copied there first).
//!   2. It is read once completely to validate it (format, checksum, the
//!      state record against openraft's metadata, contiguous leaves, one
//!      index entry per leaf). An invalid file is refused here and the
//!      previous state stays untouched.
//!   3. One synced batch clears every state-machine column family and
//!      writes the `installing` marker.
//!   4. The file is streamed into batches of at most
//!      [`SnapshotOptions::install_batch_bytes`] (unsynced; they share the
//!      WAL with the final synced batch). Leaves below the prune point are
//!      skipped, so a snapshot of an unpruned replica installs pruned.
//!   5. A final synced batch writes the `state` record and removes the
//!      marker; `install.snap` becomes `current.snap`.
//!
//!   While the marker is set, reads fail with [`StoreError::Installing`]
//!   and builds refuse. On open, a database with the marker finishes the
//!   interrupted install from `install.snap` (fsynced before the marker was
//!   written) if that file is there and valid — openraft may already have
//!   purged the Raft log up to the snapshot, so an empty state machine
//!   could not be re-applied from the log. Otherwise the state-machine
//!   column families are wiped and the state machine comes back empty
//!   (`last_applied` None), loudly logged, so that Raft sends a snapshot
//!   again; it never pretends to hold valid state.
//!
//! On disk there is at most one built snapshot (`current.snap`) plus the one
//! being received or installed. The latest built or installed snapshot is
//! kept across restarts: its file is synced and `current.meta` (written
//! last) records its Raft metadata, tree size and length, so a restarted
//! node neither rebuilds a snapshot (openraft counts its snapshot policy
//! from it) nor lacks one to send. Open reads it through and deletes a
//! `current.snap` whose metadata is missing or does not match it, or that
//! fails an installer's checks. `get_current_snapshot`
//! returns that snapshot, `None` before the first one.
//!
//! # When snapshots are built
//!
//! openraft's policy builds one every `LogsSinceLast` entries; the shard
//! also asks for one whenever [`snapshot_due`] holds (the leaves appended
//! since the last snapshot take more Raft log bytes than that snapshot),
//! so that the Raft log of large entries is purged without rebuilding a
//! large snapshot for a few leaves.

use std::collections::HashMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_tlog::compact::CompactRange;
use cairn_tlog::tile::TILE_WIDTH;
use cairn_tlog::{EMPTY_ROOT, Hash};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use rocksdb::{DB, WriteBatch};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::log_store::{
    CF_LEAF_INDEX, CF_LEAVES, CF_ROOTS, CF_SM_META, KEY_UPPER_BOUND, SM_CFS, StoreError, blocking,
    cf, decode_u64, index_key, sync_write,
};
use crate::registry::Registry;
pub use crate::snapshot::WriteStats;
use crate::snapshot::{FormatError, Frame, SECTION_ORDER, SnapshotReader, SnapshotWriter};
use crate::types::{
    Command, CommandResponse, CosignedHead, Frozen, LEAF_SIZE, NodeId, ShardState, TypeConfig,
};

/// Most leaves one `Append` may carry (8 MiB of leaves). A larger command is
/// rejected as a whole; batchers must stay below it.
pub const MAX_APPEND_LEAVES: usize = 65_536;

/// Most leaves one [`StateMachine::leaves`] call returns (8 MiB).
pub const MAX_READ_LEAVES: u64 = 65_536;

/// Pruning works in whole entry bundles of this many leaves.
pub const PRUNE_ALIGN: u64 = TILE_WIDTH as u64;

/// Default bytes the snapshot builder buffers per write (1 MiB).
pub const DEFAULT_WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Default bytes per `WriteBatch` when installing a snapshot (4 MiB).
pub const DEFAULT_INSTALL_BATCH_BYTES: usize = 4 << 20;

/// Every leaf below this index is pruned once `integrated_size` is
/// integrated: `integrated_size` rounded down to a multiple of
/// [`PRUNE_ALIGN`] (the leaves of the full entry bundles).
pub const fn prune_point(integrated_size: u64) -> u64 {
    integrated_size - integrated_size % PRUNE_ALIGN
}

/// Raft log bytes below which no extra snapshot is built to purge it
/// (64 MiB, about half a million leaves; see [`snapshot_due`]).
pub const MIN_PURGE_LOG_BYTES: u64 = 64 << 20;

/// Snapshot bytes per leaf, for a tree whose snapshot size is not known yet
/// (after a restart): one `leaf_index` record (frame, 32-byte key, 8-byte
/// value) per leaf; the roots and pruned leaves add little.
const ESTIMATED_SNAPSHOT_BYTES_PER_LEAF: u64 = 1 + 2 + 32 + 4 + 8;

/// The tree a snapshot holds and the bytes of its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPoint {
    /// Leaves of the snapshot's tree.
    pub tree_size: u64,
    /// Bytes of its file (estimated when the point is the state at open).
    pub bytes: u64,
}

/// Whether a snapshot is due so that openraft may purge the Raft log: the
/// leaves appended since `last` (128 bytes each in the log) take more bytes
/// than the snapshot that would replace them, and at least
/// [`MIN_PURGE_LOG_BYTES`]. Snapshot files grow with the tree (every leaf
/// hash is in one), so a fixed count of entries between snapshots
/// (openraft's `LogsSinceLast`) either keeps a Raft log of entries of up to
/// 1024 leaves unpurged for millions of leaves or rebuilds a large snapshot
/// for a few leaves; this rule keeps the unpurged log no larger than the
/// snapshot and the snapshot writes no larger than the log they purge.
pub fn snapshot_due(tree_size: u64, last: SnapshotPoint) -> bool {
    let log_bytes = tree_size
        .saturating_sub(last.tree_size)
        .saturating_mul(LEAF_SIZE as u64);
    log_bytes >= last.bytes.max(MIN_PURGE_LOG_BYTES)
}

/// The `sm_meta` key of the marker of an install in progress.
const KEY_INSTALLING: &[u8] = b"installing";
/// The latest built (or installed) snapshot, in the snapshot directory.
const CURRENT_FILE: &str = "current.snap";
/// What `current.snap` is a snapshot of (a [`KeptSnapshot`]), written after
/// it; without it the file is not kept.
const CURRENT_META: &str = "current.meta";
/// A received snapshot being installed; durable before the marker is set.
const INSTALL_FILE: &str = "install.snap";
/// A received snapshot copied from a file that is not ours.
const INSTALL_TMP: &str = "install.tmp";
/// Read buffer of snapshot files.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Where snapshot files go and how large the units of work are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The snapshot directory (created if missing; its files are this state
    /// machine's alone). Must not be inside the RocksDB directory.
    pub dir: PathBuf,
    /// Bytes the builder buffers before each write to the file (at least
    /// one record is written per write). Default
    /// [`DEFAULT_WRITE_CHUNK_BYTES`].
    pub write_chunk_bytes: usize,
    /// Bytes per `WriteBatch` when installing (at least one record per
    /// batch). Default [`DEFAULT_INSTALL_BATCH_BYTES`].
    pub install_batch_bytes: usize,
}

impl SnapshotOptions {
    /// The defaults for the database in `db_dir`: the snapshot directory is
    /// `<db_dir>.snapshots` beside it (e.g. `raft/dev.snapshots` for
    /// `raft/dev`), like the signed-head record.
    pub fn beside(db_dir: &Path) -> Self {
        let dir = match (db_dir.parent(), db_dir.file_name()) {
            (Some(parent), Some(name)) => {
                let mut name = name.to_os_string();
                name.push(".snapshots");
                parent.join(name)
            }
            // `/` or `..`: nothing to put it beside.
            _ => db_dir.join("snapshots"),
        };
        SnapshotOptions {
            dir,
            write_chunk_bytes: DEFAULT_WRITE_CHUNK_BYTES,
            install_batch_bytes: DEFAULT_INSTALL_BATCH_BYTES,
        }
    }
}

/// What the latest snapshot install did: evidence that it was batched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InstallStats {
    /// Records written to the column families (the state record included).
    pub records: u64,
    /// Leaves of the file below the prune point, not written.
    pub skipped_leaves: u64,
    /// `WriteBatch`es written after the marker (the final one included).
    pub batches: u64,
    /// Largest of those batches, in bytes.
    pub largest_batch: usize,
}

/// The `sm_meta` key of the applied-state record.
const KEY_STATE: &[u8] = b"state";

/// The applied-state record, versioned so a later layout can be told apart.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StoredState {
    V1(StateV1),
    /// `V1` and whether the log is frozen.
    V2(StateV1, Option<Frozen>),
    /// `V2` and the cluster registry (the meta group only).
    V3(StateV1, Option<Frozen>, Registry),
}

/// Everything of the applied state that is not a per-leaf or per-size record.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StateV1 {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    /// Leaves sequenced.
    tree_size: u64,
    /// Right-edge subtree hashes of the tree (`CompactRange::hashes`).
    right_edge: Vec<Hash>,
    integrated_size: u64,
    integrated_root: Hash,
    cosigned: Option<CosignedHead>,
}

/// The applied state held in memory; the disk copy is [`StateV1`].
#[derive(Clone, Debug)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, BasicNode>,
    tree: CompactRange,
    integrated_size: u64,
    integrated_root: Hash,
    cosigned: Option<CosignedHead>,
    frozen: Option<Frozen>,
    registry: Arc<Registry>,
}

impl Applied {
    fn empty() -> Self {
        Applied {
            last_applied: None,
            last_membership: StoredMembership::default(),
            tree: CompactRange::new(),
            integrated_size: 0,
            integrated_root: EMPTY_ROOT,
            cosigned: None,
            frozen: None,
            registry: Arc::default(),
        }
    }

    fn from_stored(stored: StoredState) -> Result<Self, StoreError> {
        let (s, frozen, registry) = match stored {
            StoredState::V1(s) => (s, None, Registry::new()),
            StoredState::V2(s, frozen) => (s, frozen, Registry::new()),
            StoredState::V3(s, frozen, registry) => (s, frozen, registry),
        };
        if let Some(f) = &frozen
            && f.size > s.tree_size
        {
            return Err(StoreError::Corrupt(format!(
                "frozen at size {} above tree size {}",
                f.size, s.tree_size
            )));
        }
        let tree = CompactRange::from_parts(s.tree_size, s.right_edge)
            .map_err(|e| StoreError::Corrupt(format!("sm_meta/state right edge: {e}")))?;
        if s.integrated_size > s.tree_size {
            return Err(StoreError::Corrupt(format!(
                "integrated size {} above tree size {}",
                s.integrated_size, s.tree_size
            )));
        }
        Ok(Applied {
            last_applied: s.last_applied,
            last_membership: s.last_membership,
            tree,
            integrated_size: s.integrated_size,
            integrated_root: s.integrated_root,
            cosigned: s.cosigned,
            frozen,
            registry: Arc::new(registry),
        })
    }

    fn to_stored(&self) -> StoredState {
        let state = StateV1 {
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            tree_size: self.tree.size(),
            right_edge: self.tree.hashes().to_vec(),
            integrated_size: self.integrated_size,
            integrated_root: self.integrated_root,
            cosigned: self.cosigned.clone(),
        };
        // A log that was never frozen keeps the V1 record, which the
        // previous release reads too.
        match (&self.frozen, self.registry.is_empty()) {
            (None, true) => StoredState::V1(state),
            (frozen, true) => StoredState::V2(state, frozen.clone()),
            (frozen, false) => StoredState::V3(state, frozen.clone(), (*self.registry).clone()),
        }
    }

    fn shard_state(&self) -> AppliedState {
        AppliedState(ShardState {
            last_applied: self.last_applied,
            tree_size: self.tree.size(),
            tree_root: self.tree.root(),
            integrated_size: self.integrated_size,
            integrated_root: self.integrated_root,
            cosigned: self.cosigned.clone(),
            frozen: self.frozen.clone(),
            registry: self.registry.clone(),
        })
    }
}

/// A [`ShardState`] exactly as this node's state machine applied it from
/// committed Raft entries — the only input [`crate::signer::Signer::sign`]
/// accepts. Only this module makes one (its field is private), so no code
/// path can hand the signer a size or root of its own choosing
/// (architecture.md §2, "Why there is no split view"). Reads go through
/// `Deref` to the plain [`ShardState`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedState(ShardState);

impl std::ops::Deref for AppliedState {
    type Target = ShardState;
    fn deref(&self) -> &ShardState {
        &self.0
    }
}

impl AppliedState {
    /// The plain state, for callers that take it apart.
    pub fn into_inner(self) -> ShardState {
        self.0
    }

    /// A state made up by a unit test of the signer.
    #[cfg(test)]
    pub(crate) fn for_test(state: ShardState) -> AppliedState {
        AppliedState(state)
    }
}

fn encode_state(applied: &Applied) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(&applied.to_stored())
        .map_err(|e| StoreError::Corrupt(format!("encoding sm_meta/state: {e}")))
}

fn decode_state(bytes: &[u8]) -> Result<Applied, StoreError> {
    let stored: StoredState = postcard::from_bytes(bytes)
        .map_err(|e| StoreError::Corrupt(format!("sm_meta/state: {e}")))?;
    Applied::from_stored(stored)
}

/// Snapshot files in the directory; guarded by `Inner::files`.
#[derive(Debug, Default)]
struct Files {
    /// Metadata of `current.snap`, if there is one.
    current: Option<SnapshotMeta<NodeId, BasicNode>>,
    /// The file `begin_receiving_snapshot` handed out last.
    receiving: Option<PathBuf>,
    /// Makes temp file names unique.
    next_seq: u64,
}

#[derive(Debug, Default)]
struct Stats {
    build: Option<WriteStats>,
    install: Option<InstallStats>,
    /// Snapshots built and installed since open (`cairn_raft_snapshots_*`).
    builds: u64,
    installs: u64,
    /// The latest snapshot built or installed, or the state at open.
    point: Option<SnapshotPoint>,
}

struct Inner {
    db: Arc<DB>,
    /// The applied state. Only `apply` and `install_snapshot` change it (openraft
    /// calls them one at a time); the lock is held for a whole apply so that
    /// disk and memory change together.
    applied: Mutex<Applied>,
    /// Published after every apply and install; readers never take `applied`.
    state_tx: watch::Sender<AppliedState>,
    opts: SnapshotOptions,
    /// Serialises builds and installs (held for their whole length, in
    /// blocking tasks only). Lock order: `snapshot_lock`, `applied`, `files`.
    snapshot_lock: Mutex<()>,
    files: Mutex<Files>,
    /// A sequence lock for readers: odd while an install replaces the
    /// column families (and after an install failed half-way).
    install_gen: AtomicU64,
    stats: Mutex<Stats>,
}

/// A shard's state machine on RocksDB (see the module docs).
///
/// `Clone` shares one state (an `Arc`): openraft owns one handle and applies
/// through it, the pipeline reads through others. The read methods
/// ([`leaf_index`](Self::leaf_index), [`leaves`](Self::leaves),
/// [`root_at`](Self::root_at)) are short blocking RocksDB point or range
/// reads, safe concurrently with applies; they see data no older than the
/// last [`ShardState`] published (effects are written before the state is
/// published). Large `leaves` ranges may be worth a `spawn_blocking`. While
/// a snapshot is being installed they fail with [`StoreError::Installing`].
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

impl Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("state", &*self.inner.state_tx.borrow())
            .field("snapshot_dir", &self.inner.opts.dir)
            .finish_non_exhaustive()
    }
}

fn sm_err(e: StoreError) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::write_state_machine(AnyError::new(&e)).into()
}

fn sm_read_err(e: StoreError) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::read_state_machine(AnyError::new(&e)).into()
}

fn snapshot_read_err(e: StoreError) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::read_snapshot(None, AnyError::new(&e)).into()
}

fn lock_poisoned() -> StoreError {
    StoreError::Task("state machine lock poisoned by an earlier panic".into())
}

/// Maps an IO error on `path` to [`StoreError::SnapshotIo`].
fn snap_io(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::SnapshotIo {
        path: path.display().to_string(),
        source,
    }
}

/// A format error of a file being read: the snapshot is invalid (IO errors
/// stay IO errors).
fn invalid(path: &Path) -> impl FnOnce(FormatError) -> StoreError + '_ {
    move |e| match e {
        FormatError::Io(source) => snap_io(path)(source),
        other => StoreError::InvalidSnapshot(format!("{}: {other}", path.display())),
    }
}

/// Reads the applied state record, if any.
fn read_state(db: &DB) -> Result<Applied, StoreError> {
    match db.get_cf(cf(db, CF_SM_META)?, KEY_STATE)? {
        Some(bytes) => decode_state(&bytes),
        None => Ok(Applied::empty()),
    }
}

/// One synced batch clearing every state-machine column family; `marker`,
/// if given, is written after the clearing (the start of an install).
fn clear_state_machine(db: &DB, marker: Option<&[u8]>) -> Result<(), StoreError> {
    let mut batch = WriteBatch::default();
    for name in SM_CFS {
        batch.delete_range_cf(cf(db, name)?, Vec::new(), KEY_UPPER_BOUND.to_vec());
    }
    if let Some(marker) = marker {
        batch.put_cf(cf(db, CF_SM_META)?, KEY_INSTALLING, marker);
    }
    db.write_opt(batch, &sync_write())?;
    Ok(())
}

/// Removes `path` if it exists.
fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(snap_io(path)(e)),
        _ => Ok(()),
    }
}

/// Fsyncs a directory, so that renames in it are durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(snap_io(dir))
}

/// Whether the open `file` is the file at `path`.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        false
    }
}

/// Deletes what a previous process left in the snapshot directory: temp
/// files and the built snapshot (not trusted across restarts), and
/// `install.snap` unless an install is to be finished.
fn clean_snapshot_dir(dir: &Path, keep_install: bool) -> Result<(), StoreError> {
    for entry in fs::read_dir(dir).map_err(snap_io(dir))? {
        let entry = entry.map_err(snap_io(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = name.ends_with(".tmp") || (name == INSTALL_FILE && !keep_install);
        if stale {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// The metadata kept beside `current.snap` (postcard, in `current.meta`).
#[derive(Debug, Serialize, Deserialize)]
struct KeptSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    tree_size: u64,
    /// Bytes of `current.snap`.
    bytes: u64,
}

/// Makes the complete, synced snapshot file `src` the kept `current.snap`
/// and records `kept` in `current.meta`. The old metadata goes first and the
/// new is written (synced) last, so a crash in between leaves a file
/// without metadata, which [`kept_snapshot`] deletes.
fn keep_current(dir: &Path, src: &Path, kept: &KeptSnapshot) -> Result<(), StoreError> {
    let meta_path = dir.join(CURRENT_META);
    remove_if_present(&meta_path)?;
    let current = dir.join(CURRENT_FILE);
    fs::rename(src, &current).map_err(snap_io(&current))?;
    let bytes = postcard::to_stdvec(kept)
        .map_err(|e| StoreError::Corrupt(format!("encoding snapshot metadata: {e}")))?;
    let tmp = dir.join("current.meta.tmp");
    fs::write(&tmp, bytes)
        .and_then(|()| File::open(&tmp)?.sync_all())
        .map_err(snap_io(&tmp))?;
    fs::rename(&tmp, &meta_path).map_err(snap_io(&meta_path))?;
    sync_dir(dir)
}

/// The snapshot kept from before a restart, if `current.meta` describes
/// `current.snap` (its size) and a state no newer than `applied`, and the
/// file passes the checks an installer makes (format, checksum, the state
/// record against the metadata); anything else is deleted. Read through
/// once: a damaged file sent to a lagging follower would be refused there
/// again and again. That costs a read of the file (~1 s per 10^7 leaves),
/// less than the build openraft makes at start without one.
fn kept_snapshot(
    db: &DB,
    dir: &Path,
    applied: &Applied,
) -> Result<Option<KeptSnapshot>, StoreError> {
    let (meta_path, current) = (dir.join(CURRENT_META), dir.join(CURRENT_FILE));
    let kept = fs::read(&meta_path)
        .ok()
        .and_then(|b| postcard::from_bytes::<KeptSnapshot>(&b).ok())
        .filter(|k| {
            fs::metadata(&current).is_ok_and(|m| m.len() == k.bytes)
                && k.meta.last_log_id <= applied.last_applied
        })
        .filter(|k| match stream_snapshot(db, &current, &k.meta, None) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the kept snapshot is damaged; deleting it");
                false
            }
        });
    if kept.is_none() {
        remove_if_present(&meta_path)?;
        remove_if_present(&current)?;
    }
    Ok(kept)
}

/// Writes into the column families in batches of at most `bound` bytes
/// (unsynced), counting what it did.
struct BatchSink<'a> {
    db: &'a DB,
    batch: WriteBatch,
    bound: usize,
    stats: InstallStats,
}

/// RocksDB's per-record overhead in a `WriteBatch`, at most (tag, column
/// family id and two lengths as varints).
const BATCH_RECORD_OVERHEAD: usize = 16;

impl BatchSink<'_> {
    fn put(
        &mut self,
        cf: &rocksdb::ColumnFamily,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), StoreError> {
        let grown = self.batch.size_in_bytes() + key.len() + value.len() + BATCH_RECORD_OVERHEAD;
        if !self.batch.is_empty() && grown > self.bound {
            self.flush()?;
        }
        self.batch.put_cf(cf, key, value);
        self.stats.records += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut self.batch);
        self.note(&batch);
        self.db.write(batch)?;
        Ok(())
    }

    fn note(&mut self, batch: &WriteBatch) {
        self.stats.batches += 1;
        self.stats.largest_batch = self.stats.largest_batch.max(batch.size_in_bytes());
    }
}

/// Reads the snapshot file at `path` completely, checking it and — if
/// `sink` is given — writing its records (but not the state record) into
/// it. Returns the state it holds. Nothing is written before the records
/// read so far checked out, but a file that fails late has had its earlier
/// records written: callers validate first (`sink` None), then write.
fn stream_snapshot(
    db: &DB,
    path: &Path,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    mut sink: Option<&mut BatchSink<'_>>,
) -> Result<Applied, StoreError> {
    let bad = |what: String| StoreError::InvalidSnapshot(format!("{}: {what}", path.display()));
    let file = File::open(path).map_err(snap_io(path))?;
    let mut reader = SnapshotReader::new(BufReader::with_capacity(READ_BUFFER_BYTES, file))
        .map_err(invalid(path))?;
    let (roots_cf, index_cf, leaves_cf) = (
        cf(db, CF_ROOTS)?,
        cf(db, CF_LEAF_INDEX)?,
        cf(db, CF_LEAVES)?,
    );
    let mut section: &str = "";
    let mut state: Option<Applied> = None;
    let mut index_entries = 0u64;
    // The next leaf expected, from the prune point of the state.
    let mut next_leaf = 0u64;
    let mut pruned = 0u64;
    loop {
        match reader.next_frame().map_err(invalid(path))? {
            Frame::Section(name) => {
                if section == CF_SM_META {
                    // The state record is complete: check it before the bulk.
                    let applied = state.get_or_insert_with(Applied::empty);
                    if applied.last_applied != meta.last_log_id
                        || applied.last_membership != meta.last_membership
                    {
                        return Err(bad(format!(
                            "snapshot {} holds state applied up to {:?}, its metadata says {:?}",
                            meta.snapshot_id, applied.last_applied, meta.last_log_id
                        )));
                    }
                    pruned = prune_point(applied.integrated_size);
                    next_leaf = pruned;
                }
                section = name;
            }
            Frame::Record { key, value } => match section {
                CF_SM_META => {
                    if key != KEY_STATE {
                        return Err(bad(format!(
                            "unexpected sm_meta record {:?}",
                            String::from_utf8_lossy(key)
                        )));
                    }
                    state = Some(decode_state(value).map_err(|e| bad(e.to_string()))?);
                }
                CF_ROOTS => {
                    if key.len() != 8 || value.len() != 32 {
                        return Err(bad("malformed roots record".into()));
                    }
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.put(roots_cf, key, value)?;
                    }
                }
                CF_LEAF_INDEX => {
                    if key.len() != 32 || value.len() != 8 {
                        return Err(bad("malformed leaf_index record".into()));
                    }
                    index_entries += 1;
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.put(index_cf, key, value)?;
                    }
                }
                CF_LEAVES => {
                    let index = decode_u64(key, "leaves key").map_err(|e| bad(e.to_string()))?;
                    if value.len() != LEAF_SIZE {
                        return Err(bad(format!("leaf {index} has {} bytes", value.len())));
                    }
                    if index < pruned {
                        if let Some(sink) = sink.as_deref_mut() {
                            sink.stats.skipped_leaves += 1;
                        }
                        continue;
                    }
                    if index != next_leaf {
                        return Err(bad(format!("leaf {next_leaf} is missing")));
                    }
                    next_leaf += 1;
                    if let Some(sink) = sink.as_deref_mut() {
                        sink.put(leaves_cf, key, value)?;
                    }
                }
                other => return Err(bad(format!("record in section {other:?}"))),
            },
            Frame::End => break,
        }
    }
    let Some(applied) = state else {
        return Err(bad("no state section".into()));
    };
    let size = applied.tree.size();
    if next_leaf != size {
        return Err(bad(format!(
            "leaves {pruned}..{next_leaf} for a tree of {size} (pruned below {pruned})"
        )));
    }
    if index_entries != size {
        return Err(bad(format!(
            "{index_entries} leaf_index entries for a tree of {size}"
        )));
    }
    Ok(applied)
}

/// Replaces the state-machine column families with the (validated)
/// snapshot at `path`: marker, batches, final batch (module docs, steps
/// 3–5). On error the marker stays: the state machine is empty.
fn install_file(
    db: &DB,
    opts: &SnapshotOptions,
    path: &Path,
    meta: &SnapshotMeta<NodeId, BasicNode>,
) -> Result<(Applied, InstallStats), StoreError> {
    let marker = postcard::to_stdvec(meta)
        .map_err(|e| StoreError::Corrupt(format!("encoding the install marker: {e}")))?;
    clear_state_machine(db, Some(&marker))?;
    let mut sink = BatchSink {
        db,
        batch: WriteBatch::default(),
        bound: opts.install_batch_bytes.max(1),
        stats: InstallStats::default(),
    };
    let applied = stream_snapshot(db, path, meta, Some(&mut sink))?;
    let meta_cf = cf(db, CF_SM_META)?;
    let state = encode_state(&applied)?;
    let grown = sink.batch.size_in_bytes()
        + KEY_STATE.len()
        + state.len()
        + KEY_INSTALLING.len()
        + 2 * BATCH_RECORD_OVERHEAD;
    if !sink.batch.is_empty() && grown > sink.bound {
        sink.flush()?;
    }
    let mut last = std::mem::take(&mut sink.batch);
    last.put_cf(meta_cf, KEY_STATE, state);
    last.delete_cf(meta_cf, KEY_INSTALLING);
    sink.stats.records += 1;
    sink.note(&last);
    // Synced: it also makes the unsynced batches before it durable (one
    // WAL), and openraft purges the Raft log up to the snapshot.
    db.write_opt(last, &sync_write())?;
    Ok((applied, sink.stats))
}

/// On open, with the `installing` marker set: finish the install from
/// `install.snap` if possible, else wipe the state machine (module docs).
fn recover_interrupted_install(
    db: &DB,
    opts: &SnapshotOptions,
    marker: &[u8],
) -> Result<(), StoreError> {
    let path = opts.dir.join(INSTALL_FILE);
    let meta: Option<SnapshotMeta<NodeId, BasicNode>> = postcard::from_bytes(marker).ok();
    if let Some(meta) = &meta
        && path.exists()
    {
        let finished = stream_snapshot(db, &path, meta, None)
            .and_then(|_| install_file(db, opts, &path, meta));
        match finished {
            Ok((applied, _)) => {
                tracing::warn!(
                    snapshot_id = %meta.snapshot_id,
                    tree_size = applied.tree.size(),
                    "finished a snapshot install that was interrupted"
                );
                let kept = KeptSnapshot {
                    meta: meta.clone(),
                    tree_size: applied.tree.size(),
                    bytes: fs::metadata(&path).map_err(snap_io(&path))?.len(),
                };
                return keep_current(&opts.dir, &path, &kept);
            }
            Err(e) => tracing::error!(
                snapshot_id = %meta.snapshot_id,
                error = %e,
                "an interrupted snapshot install cannot be finished from its file"
            ),
        }
    }
    tracing::error!(
        "the state machine was left half-way through a snapshot install: wiping it; \
         it is empty until Raft installs a snapshot again"
    );
    clear_state_machine(db, None)?;
    remove_if_present(&path)
}

impl StateMachine {
    /// The state machine on `db` (from [`open_shard_db`](crate::log_store::open_shard_db)), with
    /// [`SnapshotOptions::beside`] the database directory. See
    /// [`with_options`](Self::with_options).
    pub fn new(db: Arc<DB>) -> Result<Self, StoreError> {
        let opts = SnapshotOptions::beside(db.path());
        Self::with_options(db, opts)
    }

    /// The state machine on `db`, with the applied state read from disk:
    /// empty for a fresh database. Creates the snapshot directory and
    /// deletes stale files in it. A database left half-way through a
    /// snapshot install is repaired first (module docs), which may take as
    /// long as an install; otherwise a few reads. Blocking. Fails if a
    /// column family is missing, the state is corrupt, or the snapshot
    /// directory is not usable.
    pub fn with_options(db: Arc<DB>, opts: SnapshotOptions) -> Result<Self, StoreError> {
        for name in SM_CFS {
            cf(&db, name)?;
        }
        fs::create_dir_all(&opts.dir).map_err(snap_io(&opts.dir))?;
        let marker = db.get_cf(cf(&db, CF_SM_META)?, KEY_INSTALLING)?;
        clean_snapshot_dir(&opts.dir, marker.is_some())?;
        if let Some(marker) = marker {
            recover_interrupted_install(&db, &opts, &marker)?;
        }
        let applied = read_state(&db)?;
        let kept = kept_snapshot(&db, &opts.dir, &applied)?;
        // Without a kept snapshot the size of the last one is unknown:
        // count from the tree at open, so that a restart never builds a
        // snapshot at once; what is left of the log from before is purged
        // with the next one.
        let point = kept.as_ref().map_or(
            SnapshotPoint {
                tree_size: applied.tree.size(),
                bytes: applied
                    .tree
                    .size()
                    .saturating_mul(ESTIMATED_SNAPSHOT_BYTES_PER_LEAF),
            },
            |k| SnapshotPoint {
                tree_size: k.tree_size,
                bytes: k.bytes,
            },
        );
        let (state_tx, _) = watch::channel(applied.shard_state());
        Ok(StateMachine {
            inner: Arc::new(Inner {
                db,
                applied: Mutex::new(applied),
                state_tx,
                opts,
                snapshot_lock: Mutex::new(()),
                files: Mutex::new(Files {
                    current: kept.map(|k| k.meta),
                    ..Files::default()
                }),
                install_gen: AtomicU64::new(0),
                stats: Mutex::new(Stats {
                    point: Some(point),
                    ..Stats::default()
                }),
            }),
        })
    }

    /// A receiver of the applied [`ShardState`], updated after every apply
    /// and snapshot install. The initial value is the state at open (for an
    /// empty tree `tree_root` and `integrated_root` are `EMPTY_ROOT`).
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.inner.state_tx.subscribe()
    }

    /// The latest applied state.
    pub fn state(&self) -> AppliedState {
        self.inner.state_tx.borrow().clone()
    }

    /// The directory of this state machine's snapshot files.
    pub fn snapshot_dir(&self) -> &Path {
        &self.inner.opts.dir
    }

    /// Every leaf below this index is pruned: [`prune_point`] of the
    /// published integrated size.
    pub fn pruned_below(&self) -> u64 {
        prune_point(self.inner.state_tx.borrow().integrated_size)
    }

    /// What the latest snapshot build since open wrote, if any.
    pub fn last_build_stats(&self) -> Option<WriteStats> {
        self.inner.stats.lock().ok().and_then(|s| s.build)
    }

    /// The tree and file size of the latest snapshot built or installed;
    /// before the first one since open, the tree at open with an estimated
    /// size. See [`snapshot_due`].
    pub fn snapshot_point(&self) -> SnapshotPoint {
        self.inner
            .stats
            .lock()
            .ok()
            .and_then(|s| s.point)
            .unwrap_or(SnapshotPoint {
                tree_size: 0,
                bytes: 0,
            })
    }

    /// Snapshots built and snapshots installed since open.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        self.inner
            .stats
            .lock()
            .map(|s| (s.builds, s.installs))
            .unwrap_or_default()
    }

    /// What the latest snapshot install since open wrote, if any.
    pub fn last_install_stats(&self) -> Option<InstallStats> {
        self.inner.stats.lock().ok().and_then(|s| s.install)
    }

    /// Runs `read` unless an install is (or was, during it) replacing the
    /// column families: a sequence lock, so a read never mixes states.
    fn guarded<T>(&self, read: impl FnOnce(&DB) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let generation = self.inner.install_gen.load(Ordering::SeqCst);
        if generation % 2 == 1 {
            return Err(StoreError::Installing);
        }
        let out = read(&self.inner.db);
        if self.inner.install_gen.load(Ordering::SeqCst) != generation {
            return Err(StoreError::Installing);
        }
        out
    }

    /// The index of the leaf whose RFC 6962 leaf hash is `leaf_hash`, if it
    /// is sequenced (committed and applied). Pruned leaves are still found.
    pub fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.guarded(|db| {
            db.get_cf(cf(db, CF_LEAF_INDEX)?, leaf_hash)?
                .map(|v| decode_u64(&v, "leaf_index value"))
                .transpose()
        })
    }

    /// [`leaf_index`](Self::leaf_index) of each of `leaf_hashes`, in order,
    /// in one batched read.
    pub fn leaf_indices(&self, leaf_hashes: &[Hash]) -> Result<Vec<Option<u64>>, StoreError> {
        self.guarded(|db| {
            let index_cf = cf(db, CF_LEAF_INDEX)?;
            db.multi_get_cf(leaf_hashes.iter().map(|h| (index_cf, h.as_slice())))
                .into_iter()
                .map(|found| {
                    found?
                        .map(|v| decode_u64(&v, "leaf_index value"))
                        .transpose()
                })
                .collect()
        })
    }

    /// The leaves with indices `[start, end)`, in order.
    ///
    /// Fails with [`StoreError::InvalidArgument`] if `start > end`, if more
    /// than [`MAX_READ_LEAVES`] are asked for, or if `end` is above the
    /// published tree size; with [`StoreError::Pruned`] if the range is not
    /// empty and starts below [`pruned_below`](Self::pruned_below) (those
    /// leaves are in the entry bundles); with [`StoreError::Corrupt`] if a
    /// leaf of the range is missing otherwise.
    pub fn leaves(&self, start: u64, end: u64) -> Result<Vec<[u8; LEAF_SIZE]>, StoreError> {
        if start > end {
            return Err(StoreError::InvalidArgument(format!(
                "leaf range {start}..{end} is reversed"
            )));
        }
        let count = end - start;
        if count > MAX_READ_LEAVES {
            return Err(StoreError::InvalidArgument(format!(
                "{count} leaves asked for, at most {MAX_READ_LEAVES} per read"
            )));
        }
        let tree_size = self.inner.state_tx.borrow().tree_size;
        if end > tree_size {
            return Err(StoreError::InvalidArgument(format!(
                "leaf range {start}..{end} is beyond the tree size {tree_size}"
            )));
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        let pruned = |pruned_below| StoreError::Pruned {
            start,
            end,
            pruned_below,
        };
        let pruned_below = self.pruned_below();
        if start < pruned_below {
            return Err(pruned(pruned_below));
        }
        self.guarded(|db| {
            // A leaf missing because an apply pruned it meanwhile is pruned,
            // not corruption.
            let missing = |index: u64| {
                let now = self.pruned_below();
                if index < now {
                    pruned(now)
                } else {
                    StoreError::Corrupt(format!("leaf {index} is missing"))
                }
            };
            let start_key = index_key(start);
            let mode = rocksdb::IteratorMode::From(&start_key, rocksdb::Direction::Forward);
            // `count ≤ MAX_READ_LEAVES`, so the capacity is small.
            let mut out = Vec::with_capacity(count as usize);
            let mut expected = start;
            for item in db.iterator_cf(cf(db, CF_LEAVES)?, mode) {
                if expected == end {
                    break;
                }
                let (key, value) = item?;
                let index = decode_u64(&key, "leaves key")?;
                if index != expected {
                    return Err(missing(expected));
                }
                let leaf = <[u8; LEAF_SIZE]>::try_from(&*value).map_err(|_| {
                    StoreError::Corrupt(format!("leaf {index} has {} bytes", value.len()))
                })?;
                out.push(leaf);
                expected += 1;
            }
            if expected != end {
                return Err(missing(expected));
            }
            Ok(out)
        })
    }

    /// The root of the tree of `size` leaves if `size` is 0 (`EMPTY_ROOT`) or
    /// a batch boundary (a size the tree had after an `Append`); `None` for
    /// any other size.
    pub fn root_at(&self, size: u64) -> Result<Option<Hash>, StoreError> {
        if size == 0 {
            return Ok(Some(EMPTY_ROOT));
        }
        self.guarded(|db| {
            db.get_cf(cf(db, CF_ROOTS)?, index_key(size))?
                .map(|v| decode_hash(&v, "roots value"))
                .transpose()
        })
    }

    /// Publishes `applied` to subscribers.
    fn publish(&self, applied: &Applied) {
        self.inner.state_tx.send_replace(applied.shard_state());
    }

    /// Applies `entries` in one `WriteBatch` (see the module docs). Blocking.
    fn apply_blocking(
        &self,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<CommandResponse>, StoreError> {
        let db = &self.inner.db;
        let mut guard = self.inner.applied.lock().map_err(|_| lock_poisoned())?;
        // Work on a copy: if a write fails, memory keeps matching disk.
        let mut work = guard.clone();
        let mut batch = Batch {
            db,
            batch: WriteBatch::default(),
            new_indices: HashMap::new(),
            new_roots: HashMap::new(),
        };
        let mut responses = Vec::with_capacity(entries.len());
        for entry in entries {
            work.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => CommandResponse::None,
                EntryPayload::Membership(m) => {
                    work.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    CommandResponse::None
                }
                EntryPayload::Normal(command) => batch.apply(&mut work, command)?,
            };
            if let CommandResponse::Rejected { reason } = &response {
                tracing::warn!(log_id = %entry.log_id, reason, "rejected command");
            }
            responses.push(response);
        }
        let mut wb = batch.batch;
        wb.put_cf(cf(db, CF_SM_META)?, KEY_STATE, encode_state(&work)?);
        db.write(wb)?;
        *guard = work;
        self.publish(&guard);
        Ok(responses)
    }

    fn next_seq(&self) -> Result<u64, StoreError> {
        let mut files = self.inner.files.lock().map_err(|_| lock_poisoned())?;
        files.next_seq += 1;
        Ok(files.next_seq)
    }

    /// Streams a consistent snapshot of the state-machine CFs into a file
    /// and makes it the current snapshot (module docs). Blocking.
    fn build_blocking(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let _serial = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| lock_poisoned())?;
        let db = &self.inner.db;
        let dir = &self.inner.opts.dir;
        let snap = db.snapshot();
        let meta_cf = cf(db, CF_SM_META)?;
        if snap.get_cf(meta_cf, KEY_INSTALLING)?.is_some() {
            // Only after a failed install: there is no valid state.
            return Err(StoreError::Installing);
        }
        let applied = match snap.get_cf(meta_cf, KEY_STATE)? {
            Some(bytes) => decode_state(&bytes)?,
            None => Applied::empty(),
        };
        let seq = self.next_seq()?;
        let tmp = dir.join(format!("build-{seq}.tmp"));
        let written = (|| {
            let file = File::create(&tmp).map_err(snap_io(&tmp))?;
            let mut writer = SnapshotWriter::new(file, self.inner.opts.write_chunk_bytes);
            let format = |e: FormatError| match e {
                FormatError::Io(source) => snap_io(&tmp)(source),
                other => StoreError::Corrupt(format!("building a snapshot: {other}")),
            };
            for name in SECTION_ORDER {
                writer.begin_section(name).map_err(format)?;
                for item in snap.iterator_cf(cf(db, name)?, rocksdb::IteratorMode::Start) {
                    let (key, value) = item?;
                    writer.record(&key, &value).map_err(format)?;
                }
            }
            // Synced: it is kept across a restart.
            let (file, stats) = writer.finish().map_err(format)?;
            file.sync_all().map_err(snap_io(&tmp))?;
            Ok(stats)
        })();
        let stats = match written {
            Ok(stats) => stats,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.last_membership.clone(),
            snapshot_id: snapshot_id(&applied.last_applied, seq),
        };
        let file = {
            let mut files = self.inner.files.lock().map_err(|_| lock_poisoned())?;
            files.current = None;
            let kept = KeptSnapshot {
                meta: meta.clone(),
                tree_size: applied.tree.size(),
                bytes: stats.bytes,
            };
            if let Err(e) = keep_current(dir, &tmp, &kept) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            files.current = Some(meta.clone());
            let current = dir.join(CURRENT_FILE);
            File::open(&current).map_err(snap_io(&current))?
        };
        if let Ok(mut s) = self.inner.stats.lock() {
            s.build = Some(stats);
            s.builds += 1;
            s.point = Some(SnapshotPoint {
                tree_size: applied.tree.size(),
                bytes: stats.bytes,
            });
        }
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            tree_size = applied.tree.size(),
            bytes = stats.bytes,
            records = stats.records,
            "built state machine snapshot"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }

    /// The current snapshot file, opened for reading. Blocking.
    fn current_blocking(&self) -> Result<Option<Snapshot<TypeConfig>>, StoreError> {
        let files = self.inner.files.lock().map_err(|_| lock_poisoned())?;
        let Some(meta) = files.current.clone() else {
            return Ok(None);
        };
        let path = self.inner.opts.dir.join(CURRENT_FILE);
        let file = File::open(&path).map_err(snap_io(&path))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }

    /// A fresh file to receive a snapshot into; an earlier one that was
    /// never installed is deleted. Blocking.
    fn begin_receiving_blocking(&self) -> Result<File, StoreError> {
        let mut files = self.inner.files.lock().map_err(|_| lock_poisoned())?;
        if let Some(abandoned) = files.receiving.take() {
            remove_if_present(&abandoned)?;
        }
        files.next_seq += 1;
        let path = self
            .inner
            .opts
            .dir
            .join(format!("recv-{}.tmp", files.next_seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(snap_io(&path))?;
        files.receiving = Some(path);
        Ok(file)
    }

    /// Makes the received `data` the durable `install.snap`: renamed if it
    /// is the file `begin_receiving_snapshot` handed out, copied otherwise.
    fn take_received(&self, mut data: File, install: &Path) -> Result<(), StoreError> {
        let dir = &self.inner.opts.dir;
        let received = self
            .inner
            .files
            .lock()
            .map_err(|_| lock_poisoned())?
            .receiving
            .take();
        match received {
            Some(path) if same_file(&data, &path) => {
                data.sync_all().map_err(snap_io(&path))?;
                fs::rename(&path, install).map_err(snap_io(install))?;
            }
            other => {
                if let Some(abandoned) = other {
                    remove_if_present(&abandoned)?;
                }
                let tmp = dir.join(INSTALL_TMP);
                let mut out = File::create(&tmp).map_err(snap_io(&tmp))?;
                data.seek(SeekFrom::Start(0)).map_err(snap_io(&tmp))?;
                io::copy(&mut data, &mut out).map_err(snap_io(&tmp))?;
                out.sync_all().map_err(snap_io(&tmp))?;
                fs::rename(&tmp, install).map_err(snap_io(install))?;
            }
        }
        sync_dir(dir)
    }

    /// Replaces the state with a snapshot's (module docs, *Install*).
    /// Blocking.
    fn install_blocking(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: File,
    ) -> Result<(), StoreError> {
        let _serial = self
            .inner
            .snapshot_lock
            .lock()
            .map_err(|_| lock_poisoned())?;
        let db = &self.inner.db;
        let dir = &self.inner.opts.dir;
        let install = dir.join(INSTALL_FILE);
        self.take_received(data, &install)?;
        // Validate completely before anything changes.
        if let Err(e) = stream_snapshot(db, &install, meta, None) {
            remove_if_present(&install)?;
            return Err(e);
        }
        let mut guard = self.inner.applied.lock().map_err(|_| lock_poisoned())?;
        self.inner.install_gen.fetch_add(1, Ordering::SeqCst);
        let (applied, stats) = match install_file(db, &self.inner.opts, &install, meta) {
            Ok(done) => done,
            Err(e) => {
                // The marker is set (or the database failed): empty, and
                // reads keep failing. `install.snap` stays for the next open.
                *guard = Applied::empty();
                self.publish(&guard);
                if let Ok(mut files) = self.inner.files.lock() {
                    files.current = None;
                }
                tracing::error!(snapshot_id = %meta.snapshot_id, error = %e, "snapshot install failed half-way; the state machine is empty");
                return Err(e);
            }
        };
        *guard = applied;
        self.inner.install_gen.fetch_add(1, Ordering::SeqCst);
        self.publish(&guard);
        let file_bytes = fs::metadata(&install).map_or(0, |m| m.len());
        {
            // The installed file (synced before the install) is a snapshot
            // of exactly this state.
            let mut files = self.inner.files.lock().map_err(|_| lock_poisoned())?;
            files.current = None;
            let kept = KeptSnapshot {
                meta: meta.clone(),
                tree_size: guard.tree.size(),
                bytes: file_bytes,
            };
            match keep_current(dir, &install, &kept) {
                Ok(()) => files.current = Some(meta.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, "keeping the installed snapshot file failed; the next one is built");
                    files.current = None;
                    remove_if_present(&install)?;
                }
            }
        }
        if let Ok(mut s) = self.inner.stats.lock() {
            s.install = Some(stats);
            s.installs += 1;
            s.point = Some(SnapshotPoint {
                tree_size: guard.tree.size(),
                bytes: file_bytes,
            });
        }
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            tree_size = guard.tree.size(),
            records = stats.records,
            batches = stats.batches,
            "installed state machine snapshot"
        );
        Ok(())
    }
}

/// A snapshot id: the last applied log id (the content is a function of
/// the applied prefix), made unique per build so that a receiver never
/// mixes the chunks of two files.
fn snapshot_id(last_applied: &Option<LogId<NodeId>>, seq: u64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    match last_applied {
        Some(id) => format!("{id}-{nanos:x}-{seq}"),
        None => format!("empty-{nanos:x}-{seq}"),
    }
}

fn decode_hash(bytes: &[u8], what: &str) -> Result<Hash, StoreError> {
    Hash::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{what}: {} bytes, expected 32", bytes.len())))
}

/// The effects of one `apply` call, before they are written: the batch, and
/// the index and root records it adds (invisible to database reads until
/// written, so later commands of the same call look here first).
struct Batch<'a> {
    db: &'a DB,
    batch: WriteBatch,
    new_indices: HashMap<Hash, u64>,
    new_roots: HashMap<u64, Hash>,
}

fn rejected(reason: String) -> CommandResponse {
    CommandResponse::Rejected { reason }
}

impl Batch<'_> {
    /// Applies one command to `work` and the batch. `Err` only for database
    /// errors; every invalid command is `Rejected` with `work` unchanged.
    fn apply(
        &mut self,
        work: &mut Applied,
        command: Command,
    ) -> Result<CommandResponse, StoreError> {
        match command {
            Command::Append { leaves } => self.append(work, &leaves),
            Command::Integrated { size, root } => {
                let tree_size = work.tree.size();
                if size > tree_size {
                    return Ok(rejected(format!(
                        "integrated size {size} is beyond the tree size {tree_size}"
                    )));
                }
                if size < work.integrated_size {
                    return Ok(rejected(format!(
                        "integrated size {size} is below the integrated size {}",
                        work.integrated_size
                    )));
                }
                match self.root_at(size)? {
                    None => Ok(rejected(format!(
                        "integrated size {size} is not a batch boundary"
                    ))),
                    Some(expected) if expected != root => Ok(rejected(format!(
                        "integrated root for size {size} does not match the sequenced tree"
                    ))),
                    Some(_) => {
                        // Leaves of full entry bundles below the new size are
                        // in object storage for good: prune them (see the
                        // module docs). The dedup index stays.
                        let before = prune_point(work.integrated_size);
                        let after = prune_point(size);
                        if after > before {
                            self.batch.delete_range_cf(
                                cf(self.db, CF_LEAVES)?,
                                index_key(0),
                                index_key(after),
                            );
                        }
                        work.integrated_size = size;
                        work.integrated_root = root;
                        Ok(CommandResponse::Applied)
                    }
                }
            }
            Command::Cosigned { head } => {
                if head.size > work.integrated_size {
                    return Ok(rejected(format!(
                        "cosigned size {} is beyond the integrated size {}",
                        head.size, work.integrated_size
                    )));
                }
                let published = work.cosigned.as_ref().map_or(0, |c| c.size);
                if head.size < published {
                    return Ok(rejected(format!(
                        "cosigned size {} is below the published size {published}",
                        head.size
                    )));
                }
                match self.root_at(head.size)? {
                    None => Ok(rejected(format!(
                        "cosigned size {} is not a batch boundary",
                        head.size
                    ))),
                    Some(expected) if expected != head.root => Ok(rejected(format!(
                        "cosigned root for size {} does not match the sequenced tree",
                        head.size
                    ))),
                    Some(_) => {
                        work.cosigned = Some(head);
                        Ok(CommandResponse::Applied)
                    }
                }
            }
            Command::Freeze { successor } => {
                if work.frozen.is_none() {
                    work.frozen = Some(Frozen {
                        size: work.tree.size(),
                        successor,
                    });
                }
                Ok(CommandResponse::Applied)
            }
            Command::Registry(change) => {
                let mut registry = (*work.registry).clone();
                match crate::registry::apply(&mut registry, change) {
                    Ok(()) => {
                        work.registry = Arc::new(registry);
                        Ok(CommandResponse::Applied)
                    }
                    Err(reason) => Ok(rejected(reason)),
                }
            }
        }
    }

    fn append(&mut self, work: &mut Applied, leaves: &[u8]) -> Result<CommandResponse, StoreError> {
        if !leaves.len().is_multiple_of(LEAF_SIZE) {
            return Ok(rejected(format!(
                "append of {} bytes is not a whole number of {LEAF_SIZE}-byte leaves",
                leaves.len()
            )));
        }
        let count = leaves.len() / LEAF_SIZE;
        if count > MAX_APPEND_LEAVES {
            return Ok(rejected(format!(
                "append of {count} leaves is above the limit of {MAX_APPEND_LEAVES}"
            )));
        }
        if let Some(frozen) = &work.frozen {
            // Deterministic on every replica: an append proposed before the
            // freeze was known (a race with the leader's gate, or an old
            // leader's batch) adds nothing after it.
            return Ok(CommandResponse::Frozen(frozen.clone()));
        }
        // `count ≤ MAX_APPEND_LEAVES` fits any u64.
        if work.tree.size().checked_add(count as u64).is_none() {
            return Ok(rejected(format!(
                "the tree is full at {} leaves",
                work.tree.size()
            )));
        }
        let chunks: Vec<&[u8]> = leaves.chunks_exact(LEAF_SIZE).collect();
        let hashes: Vec<Hash> = chunks
            .iter()
            .map(|leaf| cairn_tlog::leaf_hash(leaf))
            .collect();
        let index_cf = cf(self.db, CF_LEAF_INDEX)?;
        let known = self
            .db
            .multi_get_cf(hashes.iter().map(|h| (index_cf, h.as_slice())));
        let leaves_cf = cf(self.db, CF_LEAVES)?;
        let mut indices = Vec::with_capacity(count);
        let mut added = false;
        for ((leaf, hash), known) in chunks.iter().zip(&hashes).zip(known) {
            if let Some(v) = known? {
                indices.push(decode_u64(&v, "leaf_index value")?);
                continue;
            }
            if let Some(&index) = self.new_indices.get(hash) {
                indices.push(index);
                continue;
            }
            let index = work.tree.size();
            // Cannot fail: capacity was checked above.
            work.tree
                .append(*hash)
                .map_err(|e| StoreError::Corrupt(format!("compact range: {e}")))?;
            self.batch.put_cf(leaves_cf, index_key(index), leaf);
            self.batch.put_cf(index_cf, hash, index_key(index));
            self.new_indices.insert(*hash, index);
            indices.push(index);
            added = true;
        }
        if added {
            let size = work.tree.size();
            let root = work.tree.root();
            self.batch
                .put_cf(cf(self.db, CF_ROOTS)?, index_key(size), root);
            self.new_roots.insert(size, root);
        }
        Ok(CommandResponse::Appended { indices })
    }

    /// The root at `size` if it is 0 or a batch boundary, including the
    /// boundaries of this batch.
    fn root_at(&self, size: u64) -> Result<Option<Hash>, StoreError> {
        if size == 0 {
            return Ok(Some(EMPTY_ROOT));
        }
        if let Some(root) = self.new_roots.get(&size) {
            return Ok(Some(*root));
        }
        self.db
            .get_cf(cf(self.db, CF_ROOTS)?, index_key(size))?
            .map(|v| decode_hash(&v, "roots value"))
            .transpose()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// Streams the state into a new snapshot file (module docs).
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let this = self.clone();
        blocking(move || this.build_blocking())
            .await
            .map_err(snapshot_read_err)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let guard = self
            .inner
            .applied
            .lock()
            .map_err(|_| sm_read_err(lock_poisoned()))?;
        Ok((guard.last_applied, guard.last_membership.clone()))
    }

    /// One response per entry, in order; one `WriteBatch` per call.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        blocking(move || this.apply_blocking(entries))
            .await
            .map_err(sm_err)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    /// A new, empty `recv-<n>.tmp` in the snapshot directory.
    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<NodeId>> {
        let this = self.clone();
        let file = blocking(move || this.begin_receiving_blocking())
            .await
            .map_err(|e| StorageIOError::<NodeId>::write_snapshot(None, AnyError::new(&e)))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    /// Validates the whole file, then replaces the state in bounded batches
    /// (module docs). An invalid file changes nothing.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<NodeId>> {
        // Waits for any write openraft left in flight on the file.
        let data = snapshot.into_std().await;
        let this = self.clone();
        let owned_meta = meta.clone();
        blocking(move || this.install_blocking(&owned_meta, data))
            .await
            .map_err(|e| {
                StorageIOError::<NodeId>::write_snapshot(Some(meta.signature()), AnyError::new(&e))
                    .into()
            })
    }

    /// The latest snapshot built or installed since open, opened afresh;
    /// `None` before the first.
    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let this = self.clone();
        blocking(move || this.current_blocking())
            .await
            .map_err(snapshot_read_err)
    }
}

#[cfg(test)]
mod tests {
    //! Crash recovery of installs, which needs the on-disk marker; the rest
    //! is tested through the public API in `tests/raft_storage.rs`.

    use super::*;
    use crate::log_store::open_shard_db;
    use openraft::CommittedLeaderId;

    fn leaf(n: u32) -> [u8; LEAF_SIZE] {
        let mut l = [0u8; LEAF_SIZE];
        l[..4].copy_from_slice(&n.to_be_bytes());
        l
    }

    fn open(dir: &Path) -> StateMachine {
        StateMachine::new(open_shard_db(&dir.join("db")).unwrap()).unwrap()
    }

    /// Applies appends of `per_batch` leaves for `0..n`, then `Integrated`
    /// at `integrated` (a batch boundary).
    async fn grow(sm: &mut StateMachine, n: u32, per_batch: u32, integrated: u64) {
        let mut index = 1;
        let mut entry = |command| {
            index += 1;
            Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
                payload: EntryPayload::Normal(command),
            }
        };
        let entries: Vec<_> = (0..n)
            .step_by(per_batch as usize)
            .map(|first| {
                entry(Command::Append {
                    leaves: (first..n.min(first + per_batch)).flat_map(leaf).collect(),
                })
            })
            .collect();
        sm.apply(entries).await.unwrap();
        let root = sm.root_at(integrated).unwrap().unwrap();
        let last = entry(Command::Integrated {
            size: integrated,
            root,
        });
        sm.apply([last]).await.unwrap();
        assert_eq!(sm.state().integrated_size, integrated);
    }

    fn count(db: &DB, name: &'static str) -> usize {
        db.iterator_cf(cf(db, name).unwrap(), rocksdb::IteratorMode::Start)
            .count()
    }

    /// A database left as a crash half-way through an install leaves it:
    /// marker set, some of the new records written.
    fn crash_mid_install(dir: &Path, meta: &SnapshotMeta<NodeId, BasicNode>) {
        let db = open_shard_db(&dir.join("db")).unwrap();
        let marker = postcard::to_stdvec(meta).unwrap();
        clear_state_machine(&db, Some(&marker)).unwrap();
        db.put_cf(cf(&db, CF_LEAVES).unwrap(), index_key(0), leaf(0))
            .unwrap();
    }

    async fn built(sm: &mut StateMachine) -> Snapshot<TypeConfig> {
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_built_snapshot_is_kept_across_a_reopen_and_stays_current() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        grow(&mut sm, 300, 100, 300).await;
        let snapshot = built(&mut sm).await;
        let bytes = fs::read(sm.snapshot_dir().join(CURRENT_FILE)).unwrap();
        let point = sm.snapshot_point();
        assert_eq!(point.tree_size, 300);
        assert_eq!(point.bytes, bytes.len() as u64);
        drop(sm);

        let mut sm = open(dir.path());
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot.meta);
        let mut file = current.snapshot.into_std().await;
        let mut read = Vec::new();
        io::Read::read_to_end(&mut file, &mut read).unwrap();
        assert_eq!(read, bytes);
        assert_eq!(sm.snapshot_point(), point);
    }

    #[tokio::test]
    async fn a_kept_snapshot_without_matching_metadata_or_intact_content_is_deleted_at_open() {
        for damage in ["no metadata", "other length", "a flipped byte"] {
            let dir = tempfile::tempdir().unwrap();
            let mut sm = open(dir.path());
            grow(&mut sm, 300, 100, 300).await;
            built(&mut sm).await;
            let snapshots = sm.snapshot_dir().to_path_buf();
            drop(sm);
            match damage {
                "no metadata" => fs::remove_file(snapshots.join(CURRENT_META)).unwrap(),
                "a flipped byte" => {
                    let path = snapshots.join(CURRENT_FILE);
                    let mut bytes = fs::read(&path).unwrap();
                    let middle = bytes.len() / 2;
                    bytes[middle] ^= 1;
                    fs::write(&path, bytes).unwrap();
                }
                _ => {
                    let file = OpenOptions::new()
                        .append(true)
                        .open(snapshots.join(CURRENT_FILE))
                        .unwrap();
                    io::Write::write_all(&mut &file, b"x").unwrap();
                }
            }

            let mut sm = open(dir.path());
            assert!(
                sm.get_current_snapshot().await.unwrap().is_none(),
                "{damage}"
            );
            assert!(!snapshots.join(CURRENT_FILE).exists(), "{damage}");
            assert!(!snapshots.join(CURRENT_META).exists(), "{damage}");
            // Counted from the tree at open: no snapshot is due at once.
            assert_eq!(sm.snapshot_point().tree_size, 300, "{damage}");
        }
    }

    #[test]
    fn a_snapshot_is_due_once_the_log_since_the_last_outgrows_it() {
        let leaves = |bytes: u64| bytes / LEAF_SIZE as u64;
        let small = SnapshotPoint {
            tree_size: 1000,
            bytes: 50_000,
        };
        // Below the floor, however small the snapshot.
        assert!(!snapshot_due(1000 + leaves(MIN_PURGE_LOG_BYTES) - 1, small));
        assert!(snapshot_due(1000 + leaves(MIN_PURGE_LOG_BYTES), small));
        // Above it, when the log since outgrows the snapshot.
        let large = SnapshotPoint {
            tree_size: 10_000_000,
            bytes: 470_000_000,
        };
        assert!(!snapshot_due(10_000_000 + leaves(470_000_000) - 1, large));
        assert!(snapshot_due(10_000_000 + leaves(470_000_000), large));
        // A tree that shrank (a snapshot of a longer log was installed
        // elsewhere) is never due.
        assert!(!snapshot_due(5, large));
    }

    #[tokio::test]
    async fn a_store_reopened_mid_install_without_its_file_comes_back_empty() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(ldir.path());
        grow(&mut leader, 300, 100, 300).await;
        let snapshot = built(&mut leader).await;
        let mut follower = open(fdir.path());
        grow(&mut follower, 10, 5, 10).await;
        drop(follower);

        crash_mid_install(fdir.path(), &snapshot.meta);
        let mut follower = open(fdir.path());
        // Not the old state, not half of the new one: nothing, so Raft
        // sends a snapshot again.
        let (last_applied, _) = follower.applied_state().await.unwrap();
        assert_eq!(last_applied, None);
        assert_eq!(follower.state(), Applied::empty().shard_state());
        let db = &follower.inner.db;
        for name in SM_CFS {
            assert_eq!(count(db, name), 0, "{name} is not empty");
        }
        assert_eq!(
            follower
                .leaf_index(&cairn_tlog::leaf_hash(&leaf(3)))
                .unwrap(),
            None
        );
        // It installs the next snapshot normally.
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.state(), leader.state());
    }

    #[tokio::test]
    async fn a_store_reopened_mid_install_finishes_it_from_the_received_file() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(ldir.path());
        grow(&mut leader, 300, 100, 300).await;
        let snapshot = built(&mut leader).await;
        let follower = open(fdir.path());
        let snapshots = follower.snapshot_dir().to_path_buf();
        drop(follower);

        crash_mid_install(fdir.path(), &snapshot.meta);
        fs::copy(
            leader.snapshot_dir().join(CURRENT_FILE),
            snapshots.join(INSTALL_FILE),
        )
        .unwrap();
        let mut follower = open(fdir.path());
        assert_eq!(follower.state(), leader.state());
        let (last_applied, _) = follower.applied_state().await.unwrap();
        assert_eq!(last_applied, snapshot.meta.last_log_id);
        assert_eq!(
            follower.leaves(256, 300).unwrap(),
            leader.leaves(256, 300).unwrap()
        );
        let db = &follower.inner.db;
        assert!(
            db.get_cf(cf(db, CF_SM_META).unwrap(), KEY_INSTALLING)
                .unwrap()
                .is_none()
        );
        assert_eq!(count(db, CF_LEAVES), 44, "pruned as the snapshot");
        assert!(!snapshots.join(INSTALL_FILE).exists());
    }

    #[tokio::test]
    async fn a_store_reopened_mid_install_with_a_damaged_file_comes_back_empty() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(ldir.path());
        grow(&mut leader, 300, 100, 300).await;
        let snapshot = built(&mut leader).await;
        let follower = open(fdir.path());
        let snapshots = follower.snapshot_dir().to_path_buf();
        drop(follower);

        crash_mid_install(fdir.path(), &snapshot.meta);
        let bytes = fs::read(leader.snapshot_dir().join(CURRENT_FILE)).unwrap();
        fs::write(snapshots.join(INSTALL_FILE), &bytes[..bytes.len() - 1]).unwrap();
        let follower = open(fdir.path());
        assert_eq!(follower.state(), Applied::empty().shard_state());
        assert_eq!(count(&follower.inner.db, CF_LEAF_INDEX), 0);
        assert!(!snapshots.join(INSTALL_FILE).exists());
    }

    #[tokio::test]
    async fn a_snapshot_holding_pruned_leaves_installs_pruned() {
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = open(ldir.path());
        grow(&mut leader, 600, 300, 600).await;
        // As a replica that has not pruned yet (written before pruning
        // existed) would hold them.
        let db = leader.inner.db.clone();
        for n in 0..512 {
            db.put_cf(cf(&db, CF_LEAVES).unwrap(), index_key(n), leaf(n as u32))
                .unwrap();
        }
        let snapshot = built(&mut leader).await;
        let mut follower = open(fdir.path());
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.last_install_stats().unwrap().skipped_leaves, 512);
        assert_eq!(count(&follower.inner.db, CF_LEAVES), 88);
        assert_eq!(follower.state(), leader.state());
    }

    #[tokio::test]
    async fn the_registry_survives_a_reopen_and_a_snapshot_install_and_refusals_change_nothing() {
        use crate::registry::{Lifecycle, RegistryChange, ShardRecord};
        let (ldir, fdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut meta = open(ldir.path());
        let record = ShardRecord {
            name: "y2027".into(),
            log_key: [7; 32],
            policy: "quorum none\n".into(),
            prefix: "y2027".into(),
            replicas: vec![1, 2, 3],
            state: Lifecycle::Active,
            successor: String::new(),
            freeze_at: Some(1_800_000_000),
        };
        let entry = |index, change| Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Command::Registry(change)),
        };
        let answers = meta
            .apply([
                entry(1, RegistryChange::Create(record.clone())),
                entry(2, RegistryChange::Create(record.clone())),
            ])
            .await
            .unwrap();
        assert_eq!(answers[0], CommandResponse::Applied);
        assert!(
            matches!(&answers[1], CommandResponse::Rejected { reason } if reason.contains("exists"))
        );
        assert_eq!(
            *meta.state().registry,
            Registry::from([("y2027".into(), record.clone())])
        );
        drop(meta);

        let mut meta = open(ldir.path());
        assert_eq!(meta.state().registry["y2027"], record);
        assert_eq!(meta.state().tree_size, 0);
        let snapshot = built(&mut meta).await;
        let mut follower = open(fdir.path());
        follower
            .install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.state(), meta.state());
        assert_eq!(follower.state().registry["y2027"], record);
    }

    #[tokio::test]
    async fn reads_during_an_install_fail_rather_than_see_a_mixed_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = open(dir.path());
        grow(&mut sm, 10, 10, 10).await;
        assert_eq!(sm.leaves(0, 1).unwrap(), vec![leaf(0)]);
        sm.inner.install_gen.fetch_add(1, Ordering::SeqCst);
        assert!(matches!(sm.leaves(0, 1), Err(StoreError::Installing)));
        assert!(matches!(
            sm.leaf_index(&cairn_tlog::leaf_hash(&leaf(0))),
            Err(StoreError::Installing)
        ));
        assert!(matches!(sm.root_at(10), Err(StoreError::Installing)));
        assert!(!StoreError::Installing.is_fatal());
        sm.inner.install_gen.fetch_add(1, Ordering::SeqCst);
        assert_eq!(sm.root_at(10).unwrap(), Some(sm.state().tree_root));
    }
}
