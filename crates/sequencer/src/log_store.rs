//! The Raft log of one shard on RocksDB, and the shard's database itself.
//!
//! One RocksDB per shard directory (`raft/<shard>/`, docs/decisions/0002),
//! opened once by [`open_shard_db`] and shared (`Arc<DB>`) by the log store
//! and the [`StateMachine`](crate::state_machine::StateMachine). The two use
//! separate column families:
//!
//! | CF | key | value |
//! |---|---|---|
//! | `logs` | big-endian u64 log index | postcard `Entry<TypeConfig>` |
//! | `meta` | `format`, `vote`, `committed`, `last_purged` | postcard |
//! | `leaves`, `leaf_index`, `roots`, `sm_meta` | see [`crate::state_machine`] | |
//!
//! # Durability
//!
//! Every write of this module is one `WriteBatch` written with
//! `WriteOptions::set_sync(true)`: when [`RaftLogStore::append`] reports the
//! entries flushed, or `save_vote` returns, they are in the fsynced WAL. This
//! is what lets openraft count this node towards a commit, and so what makes
//! the frontend's 200 a promise. All column families share one WAL, so a
//! synced write also makes every earlier (unsynced) state-machine write
//! durable; the state machine relies on that before logs are purged.
//!
//! # Blocking
//!
//! RocksDB calls block (an fsync takes milliseconds, a replication read may
//! decode tens of MB), so every call that touches the database runs on
//! `tokio::task::spawn_blocking`; the async methods only await it. openraft
//! serialises writes to the log store (it takes `&mut self`), and each write
//! completes before its method returns, so writes are applied in call order.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBRecoveryMode, Options, WriteBatch,
    WriteBufferManager, WriteOptions,
};

use crate::types::{NodeId, TypeConfig};

/// Column family of the Raft log entries.
pub(crate) const CF_LOGS: &str = "logs";
/// Column family of the Raft vote, committed and last-purged log ids.
pub(crate) const CF_META: &str = "meta";
/// State machine: leaf index (big-endian u64) → 128-byte leaf.
pub(crate) const CF_LEAVES: &str = "leaves";
/// State machine: leaf hash → leaf index (big-endian u64).
pub(crate) const CF_LEAF_INDEX: &str = "leaf_index";
/// State machine: tree size at a batch boundary (big-endian u64) → root.
pub(crate) const CF_ROOTS: &str = "roots";
/// State machine: the applied-state record (see `state_machine`).
pub(crate) const CF_SM_META: &str = "sm_meta";

/// The state machine's column families (snapshot files order them by
/// [`crate::snapshot::SECTION_ORDER`]).
pub(crate) const SM_CFS: [&str; 4] = [CF_LEAVES, CF_LEAF_INDEX, CF_ROOTS, CF_SM_META];

/// Every column family of a shard database.
const ALL_CFS: [&str; 6] = [
    CF_LOGS,
    CF_META,
    CF_LEAVES,
    CF_LEAF_INDEX,
    CF_ROOTS,
    CF_SM_META,
];

/// On-disk layout version, kept in `meta/format`. Bump it (and add a
/// migration) when any key or value encoding of this crate changes.
const FORMAT_VERSION: u32 = 1;

const KEY_FORMAT: &[u8] = b"format";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

/// A key greater than every key this crate writes (all keys are at most 32
/// bytes): the exclusive end of a whole-column-family `delete_range`.
pub(crate) const KEY_UPPER_BOUND: [u8; 33] = [0xff; 33];

/// Errors of the shard database outside openraft's own storage traits (open,
/// state-machine reads for the pipeline).
///
/// [`StoreError::is_fatal`] is the one classification of these errors: every
/// caller (the integrator, the shard's
/// [`ShardError::is_retryable`](crate::shard::ShardError::is_retryable), the
/// gRPC status of [`crate::service::status_for`]) decides with it alone.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB reported an error; its [kind](rocksdb::Error::kind) decides
    /// whether it is fatal (see [`StoreError::is_fatal`]).
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// The database directory is locked: RocksDB allows one open per
    /// directory, and someone has it open (only [`open_shard_db`] reports
    /// this).
    #[error("the shard database is locked by {holder}: {source}")]
    Locked {
        /// Who holds the lock.
        holder: LockHolder,
        /// RocksDB's error.
        source: rocksdb::Error,
    },
    /// Creating the shard directory failed.
    #[error("shard directory {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A stored value does not decode or violates an invariant.
    #[error("corrupt shard database: {0}")]
    Corrupt(String),
    /// The database was written by an incompatible version of this crate.
    #[error("shard database has format version {found}, this build reads {expected}")]
    IncompatibleFormat {
        /// Version found on disk.
        found: u32,
        /// Version this build reads and writes.
        expected: u32,
    },
    /// A column family is missing (the database was not opened with
    /// [`open_shard_db`]).
    #[error("shard database has no column family {0:?}")]
    MissingColumnFamily(&'static str),
    /// The request itself is invalid (e.g. a range too large or reversed).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// Leaves asked for were integrated into tiles and pruned from the state
    /// machine: read them from the entry bundles instead.
    #[error(
        "leaves {start}..{end} asked for, but leaves below {pruned_below} are pruned from the state machine (read them from the entry bundles)"
    )]
    Pruned {
        /// First leaf asked for.
        start: u64,
        /// End (exclusive) of the range asked for.
        end: u64,
        /// Every leaf below this index is pruned (a multiple of 256).
        pruned_below: u64,
    },
    /// A snapshot is being installed (or an install failed and the state
    /// machine is empty until the next one): the state is not readable.
    #[error("a snapshot is being installed; the state machine is not readable")]
    Installing,
    /// A snapshot file is malformed, truncated, or disagrees with its
    /// metadata; it was not installed.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    /// Reading or writing a snapshot file or its directory failed.
    #[error("snapshot file {path}: {source}")]
    SnapshotIo {
        /// The file or directory.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A blocking task panicked or was cancelled, or a lock was poisoned by
    /// such a panic.
    #[error("blocking database task failed: {0}")]
    Task(String),
}

/// Who holds the lock of a shard database that [`open_shard_db`] could not
/// open ([`StoreError::Locked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockHolder {
    /// This process: an earlier instance of the shard has not closed the
    /// database yet (openraft's state-machine worker exits a moment after
    /// Raft shutdown). Passes by itself.
    ThisProcess,
    /// Another process (a second node or tool on the same data directory).
    /// Needs an operator.
    OtherProcess,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockHolder::ThisProcess => {
                "this process (an earlier instance of the shard has not closed it yet)"
            }
            LockHolder::OtherProcess => "another process",
        })
    }
}

impl StoreError {
    /// Whether this replica's database (or a snapshot being installed into
    /// it) is unusable: the replica must stop, and be restarted or rebuilt
    /// from a snapshot of the other replicas. This is the one classification
    /// of shard-database errors; everything it does not call fatal is
    /// retryable:
    ///
    /// * [`StoreError::Installing`] passes once the snapshot install
    ///   completes;
    /// * [`StoreError::Locked`] by [`LockHolder::ThisProcess`] passes once
    ///   the earlier instance has closed the database;
    /// * [`StoreError::Db`] of a transient [kind](rocksdb::ErrorKind) may
    ///   pass by itself: `Busy`, `TryAgain`, `TimedOut`, `Expired`,
    ///   `Incomplete`, `Aborted`, `ShutdownInProgress` (see `is_transient`
    ///   in this module for why each kind is where it is);
    /// * [`StoreError::InvalidArgument`] and [`StoreError::Pruned`] are the
    ///   request's fault, not the database's: only a corrected request
    ///   succeeds (the integrator reads pruned leaves from the entry bundles
    ///   instead). The shard's own calls never produce them.
    ///
    /// Everything else is fatal: a RocksDB error of any other kind
    /// (corruption, IO errors including a full disk, ...), a lock held by
    /// another process, a corrupt value or snapshot, a wrong format version,
    /// a missing column family or directory, a panicked task.
    pub fn is_fatal(&self) -> bool {
        match self {
            StoreError::Db(e) => !is_transient(&e.kind()),
            StoreError::Locked { holder, .. } => *holder == LockHolder::OtherProcess,
            StoreError::InvalidArgument(_) | StoreError::Pruned { .. } | StoreError::Installing => {
                false
            }
            StoreError::Dir { .. }
            | StoreError::Corrupt(_)
            | StoreError::IncompatibleFormat { .. }
            | StoreError::MissingColumnFamily(_)
            | StoreError::InvalidSnapshot(_)
            | StoreError::SnapshotIo { .. }
            | StoreError::Task(_) => true,
        }
    }
}

/// Whether a RocksDB error of `kind` may pass by itself, so that the same
/// call can succeed later.
///
/// Transient: `Busy`, `TryAgain`, `TimedOut` and `Expired` (contention or a
/// deadline), `Incomplete` (a read that would need IO it may not do),
/// `Aborted` (an operation cancelled, e.g. a paused compaction) and
/// `ShutdownInProgress` (the database is closing with the node; a restart or
/// another replica serves the call).
///
/// Everything else is damage or a bug, and fatal: `Corruption`; `IOError`
/// (failed reads and writes, a full disk; a held lock at open is
/// [`StoreError::Locked`] instead); `NotFound` (a file the database needs is
/// gone: a missing key is `Ok(None)`, never an error); `NotSupported`,
/// `InvalidArgument`, `MergeInProgress`, `CompactionTooLarge` and
/// `ColumnFamilyDropped` (this crate uses none of those features, so they
/// mean a bug); and `Unknown`, because what is not recognised fails closed.
fn is_transient(kind: &rocksdb::ErrorKind) -> bool {
    use rocksdb::ErrorKind as K;
    match kind {
        K::Busy
        | K::TryAgain
        | K::TimedOut
        | K::Expired
        | K::Incomplete
        | K::Aborted
        | K::ShutdownInProgress => true,
        K::NotFound
        | K::Corruption
        | K::NotSupported
        | K::InvalidArgument
        | K::IOError
        | K::MergeInProgress
        | K::CompactionTooLarge
        | K::ColumnFamilyDropped
        | K::Unknown => false,
    }
}

/// Who holds the lock, if `e` (from opening a database) says the directory
/// is locked.
///
/// RocksDB reports a held lock as a plain `IOError`, and the Rust binding
/// exposes only the status code and its message (no subcode or errno), so
/// the message is all there is to tell a held lock from other IO errors.
/// Its `LockFile` (env/fs_posix.cc) words it in two ways: "lock hold by
/// current process" when this process's own lock table has the file (fcntl
/// locks are per process, so RocksDB keeps that table to refuse a second
/// open here), and "While lock file" when the fcntl lock itself is refused,
/// i.e. another process holds it. The tests of this module pin both, so a
/// RocksDB upgrade that rewords them fails there rather than silently.
fn lock_holder(e: &rocksdb::Error) -> Option<LockHolder> {
    if e.kind() != rocksdb::ErrorKind::IOError {
        return None;
    }
    let message = e.as_ref();
    if message.contains("lock hold by current process") {
        Some(LockHolder::ThisProcess)
    } else if message.contains("While lock file") {
        Some(LockHolder::OtherProcess)
    } else {
        None
    }
}

/// Memtable bytes of every column family of every shard database in this
/// process together; beyond it RocksDB flushes the largest memtable.
pub const MEMTABLE_BUDGET_BYTES: usize = 32 << 20;
/// Largest memtable of one column family.
const CF_WRITE_BUFFER_BYTES: usize = 16 << 20;
/// Block cache shared by every shard database in this process (data,
/// index and filter blocks).
pub const BLOCK_CACHE_BYTES: usize = 32 << 20;

/// The RocksDB memory that every shard database of the process shares: one
/// memtable budget and one block cache. A node's memory then does not grow
/// with the number of shards it hosts (a budget and a cache per database
/// would be 64 MiB per shard, 4 GiB at 64 shards); an idle shard holds
/// little of either, and a busy one takes what the idle ones leave.
struct SharedMemory {
    write_buffers: WriteBufferManager,
    cache: Cache,
}

fn shared_memory() -> &'static SharedMemory {
    static SHARED: std::sync::OnceLock<SharedMemory> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| SharedMemory {
        write_buffers: WriteBufferManager::new_write_buffer_manager(MEMTABLE_BUDGET_BYTES, false),
        cache: Cache::new_lru_cache(BLOCK_CACHE_BYTES),
    })
}
/// WAL bytes kept before RocksDB flushes the column families that hold the
/// oldest WAL files back (a column family written rarely, such as the Raft
/// metadata, otherwise pins every WAL file since its last write).
const MAX_TOTAL_WAL_BYTES: u64 = 128 << 20;

/// Opens (creating it if needed) the RocksDB of one shard in `dir`, with every
/// column family the log store and the state machine use.
///
/// Call it once per shard and process: RocksDB takes an exclusive lock on the
/// directory, so a second open (here or in another process) fails with
/// [`StoreError::Locked`]. A database of another format version fails with
/// [`StoreError::IncompatibleFormat`]. Blocking (file IO): call it from
/// startup code or `spawn_blocking`.
pub fn open_shard_db(dir: &Path) -> Result<Arc<DB>, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
        path: dir.display().to_string(),
        source,
    })?;
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Fail closed on a damaged database. The default recovery mode
    // (point-in-time) silently drops everything after a corrupt WAL record,
    // which rolls the tree back below leaves this node acknowledged; with
    // every durable write fsynced, a WAL that does not read back whole is
    // damage, not a torn write, and must stop the node for an operator.
    opts.set_wal_recovery_mode(DBRecoveryMode::AbsoluteConsistency);
    opts.set_paranoid_checks(true);
    // Memory is bounded per process, whatever the trees' sizes and the
    // number of shards: memtables of all column families of all shard
    // databases share one budget, and one block cache holds data, index
    // and filter blocks alike (by default RocksDB keeps every table's index
    // and filter outside the cache, which grows with the data).
    let shared = shared_memory();
    opts.set_write_buffer_manager(&shared.write_buffers);
    opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    let cfs = ALL_CFS.iter().map(|name| {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&shared.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        if *name == CF_LEAF_INDEX {
            // Most lookups are of new leaves (deduplication on submit),
            // which a filter answers without reading a data block.
            table.set_bloom_filter(10.0, false);
        }
        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);
        cf_opts.set_write_buffer_size(CF_WRITE_BUFFER_BYTES);
        ColumnFamilyDescriptor::new(*name, cf_opts)
    });
    let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| match lock_holder(&e) {
        Some(holder) => StoreError::Locked { holder, source: e },
        None => StoreError::Db(e),
    })?;

    let meta = cf(&db, CF_META)?;
    match db.get_cf(meta, KEY_FORMAT)? {
        None => {
            let mut batch = WriteBatch::default();
            batch.put_cf(meta, KEY_FORMAT, FORMAT_VERSION.to_be_bytes());
            db.write_opt(batch, &sync_write())?;
        }
        Some(v) => {
            let found = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::Corrupt(format!("meta/format is {} bytes", v.len())))?;
            if found != FORMAT_VERSION {
                return Err(StoreError::IncompatibleFormat {
                    found,
                    expected: FORMAT_VERSION,
                });
            }
        }
    }
    Ok(Arc::new(db))
}

/// The column family `name`, which [`open_shard_db`] always creates.
pub(crate) fn cf<'a>(
    db: &'a DB,
    name: &'static str,
) -> Result<&'a rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or(StoreError::MissingColumnFamily(name))
}

/// Write options of every durable write: fsync the WAL before returning.
pub(crate) fn sync_write() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// Runs blocking database work on tokio's blocking pool. A task that
/// panicked (or was cancelled) fails with [`StoreError::Task`], converted
/// into the caller's error type like any other database error.
pub(crate) async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| E::from(StoreError::Task(e.to_string())))?
}

/// The big-endian key of a log index or leaf index: byte order = numeric order.
pub(crate) fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Decodes an 8-byte big-endian key or value.
pub(crate) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt(format!("{what}: {} bytes, expected 8", bytes.len())))
}

/// Maps a database error into openraft's storage error for log IO.
fn log_err(e: StoreError) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::write_logs(AnyError::new(&e)).into()
}

fn read_log_err(e: StoreError) -> StorageError<NodeId> {
    StorageIOError::<NodeId>::read_logs(AnyError::new(&e)).into()
}

/// The Raft log of one shard, on the shard's RocksDB.
///
/// Cheap to clone (an `Arc`); a clone is also the [`RaftLogReader`] openraft
/// hands to its replication tasks, which read concurrently with appends
/// (RocksDB reads are safe alongside writes, and openraft never reads an
/// index it is still writing).
#[derive(Clone)]
pub struct RaftLogStore {
    db: Arc<DB>,
}

impl Debug for RaftLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogStore").finish_non_exhaustive()
    }
}

impl RaftLogStore {
    /// A log store on `db`, which must come from [`open_shard_db`].
    /// Fails with [`StoreError::MissingColumnFamily`] otherwise.
    pub fn new(db: Arc<DB>) -> Result<Self, StoreError> {
        for name in [CF_LOGS, CF_META] {
            cf(&db, name)?;
        }
        Ok(Self { db })
    }

    /// Reads and decodes `meta/key`, if present.
    async fn read_meta<T>(&self, key: &'static [u8]) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let Some(bytes) = db.get_cf(cf(&db, CF_META)?, key)? else {
                return Ok(None);
            };
            postcard::from_bytes(&bytes).map(Some).map_err(|e| {
                StoreError::Corrupt(format!("meta/{}: {e}", String::from_utf8_lossy(key)))
            })
        })
        .await
    }

    /// Writes (or with `None` deletes) `meta/key`, durably if `sync`.
    async fn write_meta<T>(
        &self,
        key: &'static [u8],
        value: Option<&T>,
        sync: bool,
    ) -> Result<(), StoreError>
    where
        T: serde::Serialize,
    {
        let encoded = value
            .map(postcard::to_stdvec)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("encoding meta: {e}")))?;
        let db = self.db.clone();
        blocking(move || {
            let meta = cf(&db, CF_META)?;
            let mut batch = WriteBatch::default();
            match encoded {
                Some(v) => batch.put_cf(meta, key, v),
                None => batch.delete_cf(meta, key),
            }
            let opts = if sync {
                sync_write()
            } else {
                WriteOptions::default()
            };
            db.write_opt(batch, &opts)?;
            Ok(())
        })
        .await
    }

    /// The log id of the last entry present, if any.
    fn last_log_id_blocking(db: &DB) -> Result<Option<LogId<NodeId>>, StoreError> {
        let mut it = db.iterator_cf(cf(db, CF_LOGS)?, rocksdb::IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item?;
                let entry = decode_entry(&key, &value)?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

/// Decodes a `logs` record, checking that it is stored under its own index.
fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry<TypeConfig>, StoreError> {
    let index = decode_u64(key, "log key")?;
    let entry: Entry<TypeConfig> = postcard::from_bytes(value)
        .map_err(|e| StoreError::Corrupt(format!("log entry {index}: {e}")))?;
    if entry.log_id.index != index {
        return Err(StoreError::Corrupt(format!(
            "log entry under key {index} has index {}",
            entry.log_id.index
        )));
    }
    Ok(entry)
}

/// `[start, end)` of a range of log indices; `end == None` means unbounded.
fn index_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for RaftLogStore {
    /// Returns the entries present in `range`, in order. Entries below the
    /// purge point are simply absent (openraft only asks for present ones).
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let (start, end) = index_bounds(&range);
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let db = self.db.clone();
        blocking(move || {
            let logs = cf(&db, CF_LOGS)?;
            let start_key = index_key(start);
            let mode = rocksdb::IteratorMode::From(&start_key, rocksdb::Direction::Forward);
            let mut entries = Vec::new();
            for item in db.iterator_cf(logs, mode) {
                let (key, value) = item?;
                let index = decode_u64(&key, "log key")?;
                if end.is_some_and(|end| index >= end) {
                    break;
                }
                entries.push(decode_entry(&key, &value)?);
            }
            Ok(entries)
        })
        .await
        .map_err(read_log_err)
    }
}

impl RaftLogStorage<TypeConfig> for RaftLogStore {
    type LogReader = RaftLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self
            .read_meta(KEY_LAST_PURGED)
            .await
            .map_err(read_log_err)?;
        let db = self.db.clone();
        let last = blocking(move || Self::last_log_id_blocking(&db))
            .await
            .map_err(read_log_err)?;
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// Durable (synced) before returning, as openraft requires.
    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_meta(KEY_VOTE, Some(vote), true)
            .await
            .map_err(|e| StorageIOError::<NodeId>::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.read_meta(KEY_VOTE)
            .await
            .map_err(|e| StorageIOError::<NodeId>::read_vote(AnyError::new(&e)).into())
    }

    /// Not synced: losing the latest committed id only means openraft
    /// re-learns it from the leader instead of re-applying at startup. It
    /// reaches the disk with the next synced write at the latest.
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.write_meta(KEY_COMMITTED, committed.as_ref(), false)
            .await
            .map_err(log_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        self.read_meta(KEY_COMMITTED).await.map_err(read_log_err)
    }

    /// Writes all `entries` in one synced `WriteBatch`, then reports them
    /// flushed. The callback is called only after the fsync, and the entries
    /// are readable when this returns. On a write error the callback gets the
    /// error too, and openraft stops this node (a replica that cannot write
    /// its log must not vote or acknowledge).
    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let value = postcard::to_stdvec(&entry).map_err(|e| {
                StorageIOError::<NodeId>::write_log_entry(entry.log_id, AnyError::new(&e))
            })?;
            encoded.push((entry.log_id.index, value));
        }
        let db = self.db.clone();
        let res: Result<(), StoreError> = blocking(move || {
            let logs = cf(&db, CF_LOGS)?;
            let mut batch = WriteBatch::default();
            for (index, value) in encoded {
                batch.put_cf(logs, index_key(index), value);
            }
            db.write_opt(batch, &sync_write())?;
            Ok(())
        })
        .await;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(log_err(e))
            }
        }
    }

    /// Deletes every entry with index ≥ `log_id.index`, synced.
    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "truncating raft log");
        let db = self.db.clone();
        blocking(move || {
            let mut batch = WriteBatch::default();
            // The 9-byte end key is above every 8-byte index key.
            batch.delete_range_cf(
                cf(&db, CF_LOGS)?,
                index_key(log_id.index).to_vec(),
                vec![0xff; 9],
            );
            db.write_opt(batch, &sync_write())?;
            Ok(())
        })
        .await
        .map_err(log_err)
    }

    /// Records `log_id` as last purged and deletes every entry up to and
    /// including it, in one synced batch (so the log never has a hole, even
    /// across a crash). The sync also makes all earlier state-machine writes
    /// durable, which openraft relies on: it purges only entries already in a
    /// snapshot of the applied state.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "purging raft log");
        let value = postcard::to_stdvec(&log_id)
            .map_err(|e| StorageIOError::<NodeId>::write_logs(AnyError::new(&e)))?;
        let db = self.db.clone();
        blocking(move || {
            let mut batch = WriteBatch::default();
            batch.put_cf(cf(&db, CF_META)?, KEY_LAST_PURGED, value);
            let end = match log_id.index.checked_add(1) {
                Some(next) => index_key(next).to_vec(),
                None => vec![0xff; 9],
            };
            batch.delete_range_cf(cf(&db, CF_LOGS)?, index_key(0).to_vec(), end);
            db.write_opt(batch, &sync_write())?;
            Ok(())
        })
        .await
        .map_err(log_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_database_of_the_process_charges_one_memtable_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let budget = &shared_memory().write_buffers;
        let write = |db: &DB| {
            let meta = cf(db, CF_META).unwrap();
            db.put_cf(meta, b"test/filler", vec![7u8; 64 << 10])
                .unwrap();
        };
        let first = open_shard_db(&tmp.path().join("a")).unwrap();
        write(&first);
        let one = budget.get_usage();
        assert!(one > 0, "the first database's memtable is not charged");
        let second = open_shard_db(&tmp.path().join("b")).unwrap();
        write(&second);
        assert!(
            budget.get_usage() > one,
            "the second database's memtable is charged elsewhere ({one} bytes before and after)"
        );
        assert_eq!(budget.get_buffer_size(), MEMTABLE_BUDGET_BYTES);
    }

    #[test]
    fn index_bounds_cover_every_range_form() {
        assert_eq!(index_bounds(&(3..7)), (3, Some(7)));
        assert_eq!(index_bounds(&(3..=7)), (3, Some(8)));
        assert_eq!(index_bounds(&(3..)), (3, None));
        assert_eq!(index_bounds(&(..)), (0, None));
        assert_eq!(index_bounds(&(..=u64::MAX)), (0, None));
    }

    #[test]
    fn reopening_a_database_of_another_format_fails() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open_shard_db(dir.path()).unwrap();
            db.put_cf(cf(&db, CF_META).unwrap(), KEY_FORMAT, 99u32.to_be_bytes())
                .unwrap();
        }
        match open_shard_db(dir.path()) {
            Err(StoreError::IncompatibleFormat {
                found: 99,
                expected,
            }) => {
                assert_eq!(expected, FORMAT_VERSION)
            }
            other => panic!("expected IncompatibleFormat, got {other:?}"),
        }
    }

    #[test]
    fn a_second_open_in_the_same_process_is_locked_by_this_process_and_passes() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_shard_db(dir.path()).unwrap();
        match open_shard_db(dir.path()) {
            Err(
                e @ StoreError::Locked {
                    holder: LockHolder::ThisProcess,
                    ..
                },
            ) => assert!(!e.is_fatal(), "{e}"),
            other => panic!("expected Locked by this process, got {other:?}"),
        }
        drop(db);
        open_shard_db(dir.path()).expect("opens once the first handle is closed");
    }

    /// Names the directory [`hold_the_lock_for_another_test`] opens.
    const HOLD_DIR_ENV: &str = "CAIRN_TEST_HOLD_SHARD_DB";

    /// Not a test by itself: the child process of
    /// [`a_database_open_in_another_process_is_locked_by_another_process`]
    /// holds the database open until the parent lets go (bounded).
    #[test]
    #[ignore = "run in a child process by another test"]
    fn hold_the_lock_for_another_test() {
        let Some(dir) = std::env::var_os(HOLD_DIR_ENV).map(std::path::PathBuf::from) else {
            return;
        };
        let _db = open_shard_db(&dir.join("db")).unwrap();
        std::fs::write(dir.join("ready"), b"").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !dir.join("release").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn a_database_open_in_another_process_is_locked_by_another_process() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "log_store::tests::hold_the_lock_for_another_test",
                "--ignored",
            ])
            .env(HOLD_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !dir.path().join("ready").exists() {
            let exited = child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child did not open the database (exit {exited:?})");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let opened = open_shard_db(&dir.path().join("db"));
        std::fs::write(dir.path().join("release"), b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the child did not exit");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        match opened {
            Err(
                e @ StoreError::Locked {
                    holder: LockHolder::OtherProcess,
                    ..
                },
            ) => assert!(e.is_fatal(), "{e}"),
            other => panic!("expected Locked by another process, got {other:?}"),
        }
    }

    #[test]
    fn rocksdb_errors_are_fatal_unless_their_kind_is_transient() {
        use rocksdb::ErrorKind as K;
        for kind in [
            K::Busy,
            K::TryAgain,
            K::TimedOut,
            K::Expired,
            K::Incomplete,
            K::Aborted,
            K::ShutdownInProgress,
        ] {
            assert!(is_transient(&kind), "{kind:?}");
        }
        for kind in [
            K::NotFound,
            K::Corruption,
            K::NotSupported,
            K::InvalidArgument,
            K::IOError,
            K::MergeInProgress,
            K::CompactionTooLarge,
            K::ColumnFamilyDropped,
            K::Unknown,
        ] {
            assert!(!is_transient(&kind), "{kind:?}");
        }
        // A real one: RocksDB refuses to open a missing database when told
        // not to create it (InvalidArgument), which says nothing about a lock.
        let dir = tempfile::tempdir().unwrap();
        let e = DB::open(&Options::default(), dir.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), rocksdb::ErrorKind::InvalidArgument, "{e}");
        assert_eq!(lock_holder(&e), None);
        assert!(StoreError::from(e).is_fatal());
    }
}
