//! A shard's applied state on RocksDB: the openraft state machine, and the
//! read API of the sequencing pipeline.
//!
//! Column families (in the shard database of [`open_shard_db`](crate::log_store::open_shard_db)):
//!
//! | CF | key | value |
//! |---|---|---|
//! | `leaves` | big-endian u64 leaf index | the 128-byte leaf |
//! | `leaf_index` | 32-byte leaf hash | big-endian u64 leaf index |
//! | `roots` | big-endian u64 tree size after an `Append` | 32-byte root |
//! | `sm_meta` | `state` | postcard [`StoredState`]: last applied log id, last membership, tree size and right edge, integrated size and root, cosigned head |
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
//! # Snapshots
//!
//! A snapshot is a consistent RocksDB read (one RocksDB snapshot) of every
//! state-machine column family, serialized with postcard into the
//! `Cursor<Vec<u8>>` openraft transfers; installing one replaces the column
//! families' contents in one synced `WriteBatch`. This holds the whole state
//! in memory while it is built or received, which is fine for the dev slice;
//! a RocksDB-checkpoint-based snapshot streamed from files is later work. No
//! snapshot is kept: once one was built or installed,
//! `get_current_snapshot` builds a fresh one from the current state, which is
//! as valid (it covers more applied entries) and saves holding a copy of the
//! whole log in memory between transfers.

use std::collections::HashMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_tlog::compact::CompactRange;
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
use crate::types::{
    Command, CommandResponse, CosignedHead, LEAF_SIZE, NodeId, ShardState, TypeConfig,
};

/// Most leaves one `Append` may carry (8 MiB of leaves). A larger command is
/// rejected as a whole; batchers must stay below it.
pub const MAX_APPEND_LEAVES: usize = 65_536;

/// Most leaves one [`StateMachine::leaves`] call returns (8 MiB).
pub const MAX_READ_LEAVES: u64 = 65_536;

/// The `sm_meta` key of the applied-state record.
const KEY_STATE: &[u8] = b"state";

/// The applied-state record, versioned so a later layout can be told apart.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum StoredState {
    V1(StateV1),
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
        }
    }

    fn from_stored(stored: StoredState) -> Result<Self, StoreError> {
        let StoredState::V1(s) = stored;
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
        })
    }

    fn to_stored(&self) -> StoredState {
        StoredState::V1(StateV1 {
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            tree_size: self.tree.size(),
            right_edge: self.tree.hashes().to_vec(),
            integrated_size: self.integrated_size,
            integrated_root: self.integrated_root,
            cosigned: self.cosigned.clone(),
        })
    }

    fn shard_state(&self) -> ShardState {
        ShardState {
            last_applied: self.last_applied,
            tree_size: self.tree.size(),
            tree_root: self.tree.root(),
            integrated_size: self.integrated_size,
            integrated_root: self.integrated_root,
            cosigned: self.cosigned.clone(),
        }
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

/// The records of one column family, `(key, value)` in key order.
type CfRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// The snapshot file: every state-machine column family, key-ordered.
#[derive(Debug, Serialize, Deserialize)]
enum SnapshotFile {
    V1 {
        /// `(column family, [(key, value)])`, one per [`SM_CFS`] entry.
        cfs: Vec<(String, CfRecords)>,
    },
}

struct Inner {
    db: Arc<DB>,
    /// The applied state. Only `apply` and `install_snapshot` change it (openraft
    /// calls them one at a time); the lock is held for a whole apply so that
    /// disk and memory change together.
    applied: Mutex<Applied>,
    /// Published after every apply and install; readers never take `applied`.
    state_tx: watch::Sender<ShardState>,
    /// Whether a snapshot was built or installed since open (see module docs).
    has_snapshot: AtomicBool,
}

/// A shard's state machine on RocksDB (see the module docs).
///
/// `Clone` shares one state (an `Arc`): openraft owns one handle and applies
/// through it, the pipeline reads through others. The read methods
/// ([`leaf_index`](Self::leaf_index), [`leaves`](Self::leaves),
/// [`root_at`](Self::root_at)) are short blocking RocksDB point or range
/// reads, safe concurrently with applies; they see data no older than the
/// last [`ShardState`] published (effects are written before the state is
/// published). Large `leaves` ranges may be worth a `spawn_blocking`.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

impl Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("state", &*self.inner.state_tx.borrow())
            .finish_non_exhaustive()
    }
}

fn sm_err(e: StoreError) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::write_state_machine(AnyError::new(&e)).into()
}

fn sm_read_err(e: StoreError) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::read_state_machine(AnyError::new(&e)).into()
}

fn lock_poisoned() -> StoreError {
    StoreError::Task("state machine lock poisoned by an earlier panic".into())
}

impl StateMachine {
    /// The state machine on `db` (from [`open_shard_db`](crate::log_store::open_shard_db)), with the applied
    /// state read from disk: empty for a fresh database. Blocking (a few
    /// reads). Fails if a column family is missing or the state is corrupt.
    pub fn new(db: Arc<DB>) -> Result<Self, StoreError> {
        for name in SM_CFS {
            cf(&db, name)?;
        }
        let applied = match db.get_cf(cf(&db, CF_SM_META)?, KEY_STATE)? {
            Some(bytes) => decode_state(&bytes)?,
            None => Applied::empty(),
        };
        let (state_tx, _) = watch::channel(applied.shard_state());
        Ok(StateMachine {
            inner: Arc::new(Inner {
                db,
                applied: Mutex::new(applied),
                state_tx,
                has_snapshot: AtomicBool::new(false),
            }),
        })
    }

    /// A receiver of the applied [`ShardState`], updated after every apply
    /// and snapshot install. The initial value is the state at open (for an
    /// empty tree `tree_root` and `integrated_root` are `EMPTY_ROOT`).
    pub fn subscribe(&self) -> watch::Receiver<ShardState> {
        self.inner.state_tx.subscribe()
    }

    /// The latest applied state.
    pub fn state(&self) -> ShardState {
        self.inner.state_tx.borrow().clone()
    }

    /// The index of the leaf whose RFC 6962 leaf hash is `leaf_hash`, if it
    /// is sequenced (committed and applied).
    pub fn leaf_index(&self, leaf_hash: &Hash) -> Result<Option<u64>, StoreError> {
        let db = &self.inner.db;
        db.get_cf(cf(db, CF_LEAF_INDEX)?, leaf_hash)?
            .map(|v| decode_u64(&v, "leaf_index value"))
            .transpose()
    }

    /// The leaves with indices `[start, end)`, in order.
    ///
    /// Fails with [`StoreError::InvalidArgument`] if `start > end`, if more
    /// than [`MAX_READ_LEAVES`] are asked for, or if `end` is above the
    /// published tree size; with [`StoreError::Corrupt`] if a leaf of the
    /// range is missing.
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
        let db = &self.inner.db;
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
                return Err(StoreError::Corrupt(format!("leaf {expected} is missing")));
            }
            let leaf = <[u8; LEAF_SIZE]>::try_from(&*value).map_err(|_| {
                StoreError::Corrupt(format!("leaf {index} has {} bytes", value.len()))
            })?;
            out.push(leaf);
            expected += 1;
        }
        if expected != end {
            return Err(StoreError::Corrupt(format!("leaf {expected} is missing")));
        }
        Ok(out)
    }

    /// The root of the tree of `size` leaves if `size` is 0 (`EMPTY_ROOT`) or
    /// a batch boundary (a size the tree had after an `Append`); `None` for
    /// any other size.
    pub fn root_at(&self, size: u64) -> Result<Option<Hash>, StoreError> {
        if size == 0 {
            return Ok(Some(EMPTY_ROOT));
        }
        let db = &self.inner.db;
        db.get_cf(cf(db, CF_ROOTS)?, index_key(size))?
            .map(|v| decode_hash(&v, "roots value"))
            .transpose()
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

    /// Reads a consistent snapshot of the state-machine CFs. Blocking.
    fn build_blocking(&self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let db = &self.inner.db;
        let snap = db.snapshot();
        let applied = match snap.get_cf(cf(db, CF_SM_META)?, KEY_STATE)? {
            Some(bytes) => decode_state(&bytes)?,
            None => Applied::empty(),
        };
        let mut cfs = Vec::with_capacity(SM_CFS.len());
        for name in SM_CFS {
            let mut records = Vec::new();
            for item in snap.iterator_cf(cf(db, name)?, rocksdb::IteratorMode::Start) {
                let (k, v) = item?;
                records.push((k.into_vec(), v.into_vec()));
            }
            cfs.push((name.to_string(), records));
        }
        let data = postcard::to_stdvec(&SnapshotFile::V1 { cfs })
            .map_err(|e| StoreError::Corrupt(format!("encoding snapshot: {e}")))?;
        // The content is a function of the applied log prefix, so the last
        // applied log id identifies it.
        let snapshot_id = match &applied.last_applied {
            Some(id) => id.to_string(),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.last_membership.clone(),
            snapshot_id,
        };
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            tree_size = applied.tree.size(),
            bytes = data.len(),
            "built state machine snapshot"
        );
        self.inner.has_snapshot.store(true, Ordering::Release);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    /// Replaces the state with a snapshot's, in one synced batch. Blocking.
    fn install_blocking(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let SnapshotFile::V1 { cfs } = postcard::from_bytes(data)
            .map_err(|e| StoreError::Corrupt(format!("snapshot {}: {e}", meta.snapshot_id)))?;
        let db = &self.inner.db;
        let mut batch = WriteBatch::default();
        for name in SM_CFS {
            batch.delete_range_cf(cf(db, name)?, Vec::new(), KEY_UPPER_BOUND.to_vec());
        }
        let mut seen = Vec::new();
        let mut state = None;
        let mut leaf_count = 0u64;
        for (name, records) in &cfs {
            let Some(&known) = SM_CFS.iter().find(|n| **n == name.as_str()) else {
                return Err(StoreError::Corrupt(format!(
                    "snapshot has unknown column family {name:?}"
                )));
            };
            if seen.contains(&known) {
                return Err(StoreError::Corrupt(format!(
                    "snapshot repeats column family {name:?}"
                )));
            }
            seen.push(known);
            let handle = cf(db, known)?;
            for (k, v) in records {
                if known == CF_SM_META && k == KEY_STATE {
                    state = Some(decode_state(v)?);
                }
                if known == CF_LEAVES {
                    leaf_count += 1;
                }
                batch.put_cf(handle, k, v);
            }
        }
        let applied = state.unwrap_or_else(Applied::empty);
        if applied.last_applied != meta.last_log_id {
            return Err(StoreError::Corrupt(format!(
                "snapshot {} holds state applied up to {:?}, its metadata says {:?}",
                meta.snapshot_id, applied.last_applied, meta.last_log_id
            )));
        }
        if leaf_count != applied.tree.size() {
            return Err(StoreError::Corrupt(format!(
                "snapshot {} holds {leaf_count} leaves for a tree of {}",
                meta.snapshot_id,
                applied.tree.size()
            )));
        }
        let mut guard = self.inner.applied.lock().map_err(|_| lock_poisoned())?;
        // Synced: openraft purges the Raft log up to the snapshot next, so the
        // installed state must survive a crash on its own.
        db.write_opt(batch, &sync_write())?;
        *guard = applied;
        self.inner.has_snapshot.store(true, Ordering::Release);
        self.publish(&guard);
        tracing::info!(
            snapshot_id = %meta.snapshot_id,
            tree_size = guard.tree.size(),
            "installed state machine snapshot"
        );
        Ok(())
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
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let this = self.clone();
        blocking(move || this.build_blocking())
            .await
            .map_err(|e| StorageIOError::<NodeId>::read_snapshot(None, AnyError::new(&e)).into())
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

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let this = self.clone();
        let owned_meta = meta.clone();
        let data = snapshot.into_inner();
        blocking(move || this.install_blocking(&owned_meta, &data))
            .await
            .map_err(|e| {
                StorageIOError::<NodeId>::write_snapshot(Some(meta.signature()), AnyError::new(&e))
                    .into()
            })
    }

    /// `None` until a snapshot was built or installed since open; then a
    /// fresh snapshot of the current state (see the module docs).
    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        if !self.inner.has_snapshot.load(Ordering::Acquire) {
            return Ok(None);
        }
        self.build_snapshot().await.map(Some)
    }
}
