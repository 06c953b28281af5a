//! [`TileStore`]: the handle, its constructors, and the object reads and
//! writes the write and read sides are built from.

use std::num::NonZeroUsize;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cairn_tlog::tile::{
    BundleId, FULL_TILE_BYTES, MAX_ENTRY_SIZE, TILE_WIDTH, TileError, TileId, TilePath,
    decode_bundle, encode_bundle,
};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode};

use crate::cache::{DEFAULT_CACHE_BYTES, NODE_CACHE_ENTRIES, NodeCache, TileCache};
use crate::error::StorageError;
use crate::headers::ObjectHeaders;
use crate::key::{normalise_prefix, object_path};
use crate::metrics::{Instrumented, StoreMetrics};
use crate::retry::retry;
use crate::verify::EdgeCache;

/// Key of the checkpoint object below the shard prefix.
pub const CHECKPOINT_KEY: &str = "checkpoint";

/// Most concurrent object store requests one call makes (a write of an
/// integration's objects, the tile reads of one proof).
pub const MAX_IN_FLIGHT: usize = 8;

/// Largest possible entry bundle: 256 entries of 65535 bytes with their
/// 2-byte length prefixes. Larger objects under a bundle key are corrupt.
pub const MAX_BUNDLE_BYTES: usize = TILE_WIDTH as usize * (2 + MAX_ENTRY_SIZE);

/// Largest checkpoint object accepted: the signed-note size limit.
pub const MAX_CHECKPOINT_BYTES: usize = cairn_tlog::note::MAX_NOTE_BYTES;

/// Default longest wait for the checkpoint lock of a local store
/// ([`TileStoreOptions::checkpoint_lock_wait`]). A holder keeps it for one
/// small read and one fsynced write, milliseconds; ten seconds means the
/// holder is stuck, and the caller is better told (retryably) than blocked.
pub const CHECKPOINT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Most read-check-write rounds of one conditional checkpoint write before
/// it gives up with [`StorageError::CheckpointContended`]: each lost round
/// means another writer published in between, and two leaders overlap only
/// briefly, so sixteen lost rounds in a row mean something keeps rewriting
/// the object.
pub const CHECKPOINT_ROUNDS: u32 = 16;

/// Tunables of a [`TileStore`]; `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileStoreOptions {
    /// Budget of the in-memory cache of verified full hash tiles and full
    /// entry bundles, in bytes; 0 disables it. Default [`DEFAULT_CACHE_BYTES`]
    /// (64 MiB: ~8000 hash tiles, or ~2000 bundles of Sigsum leaves).
    pub cache_bytes: usize,
    /// Longest wait for the checkpoint lock of a local store
    /// ([`TileStore::local`]) before [`put_checkpoint`](TileStore::put_checkpoint)
    /// fails with the retryable [`StorageError::CheckpointBusy`]. Unused by
    /// other stores. Default [`CHECKPOINT_LOCK_WAIT`].
    pub checkpoint_lock_wait: Duration,
    /// Where the latency and errors of every object store call are
    /// recorded (see [`StoreMetrics`] for the contract). Default: families
    /// of their own, which no registry sees.
    pub metrics: StoreMetrics,
}

impl Default for TileStoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            checkpoint_lock_wait: CHECKPOINT_LOCK_WAIT,
            metrics: StoreMetrics::default(),
        }
    }
}

/// How [`TileStore::put_checkpoint`] makes its write conditional on what it
/// read; fixed when the store is built.
#[derive(Debug)]
pub(crate) enum CheckpointFence {
    /// The store's own compare-and-swap: `PutMode::Create` when no object
    /// was read, else `PutMode::Update` on the version read.
    Conditional,
    /// A local directory, whose `LocalFileSystem` has no `PutMode::Update`:
    /// an exclusive OS lock on `lock_file`, held across read-check-write.
    LockFile {
        /// Outside the served prefix (see [`lock_file_for`]).
        lock_file: PathBuf,
        /// Longest wait for the lock.
        wait: Duration,
    },
    /// A store only read from ([`TileStore::http`]): every write and delete
    /// is refused with [`StorageError::ReadOnly`] before any IO.
    ReadOnly,
}

/// The checkpoint lock file of the shard `prefix` (normalised) in the local
/// store at `dir`: `<dir>/.<prefix>.checkpoint.lock`, with each `/` of the
/// prefix written `%2F` (which no prefix contains, so two prefixes never share
/// a lock file).
///
/// It lies outside the prefix directory because that directory is served as
/// static files: a lock file inside it would be published next to the tiles.
/// With the empty prefix the log is the whole directory and there is no
/// outside within it; the file is then `<dir>/.checkpoint.lock`, a hidden
/// empty file (which listings of the store root see).
pub(crate) fn lock_file_for(dir: &FsPath, prefix: &str) -> PathBuf {
    let name = if prefix.is_empty() {
        ".checkpoint.lock".to_owned()
    } else {
        format!(".{}.checkpoint.lock", prefix.replace('/', "%2F"))
    };
    dir.join(name)
}

/// Whether objects are written with their HTTP headers ([`ObjectHeaders`]):
/// only on stores known to keep and serve them (S3). A generic store may
/// refuse attributes (`LocalFileSystem` does), and a local directory's
/// static server decides its own headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Headers {
    Stored,
    NotStored,
}

/// The outcome of a conditional write ([`TileStore::write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The object was written and is durable.
    Done,
    /// The condition did not hold: for `PutMode::Create` an object exists,
    /// for `PutMode::Update` the object is no longer the version read.
    Conflict,
}

/// One shard's C2SP tlog-tiles in an object store, under a key prefix.
///
/// Object keys are exactly the tlog-tiles paths below the prefix
/// (`<prefix>/checkpoint`, `<prefix>/tile/<L>/<N>[.p/<W>]`,
/// `<prefix>/tile/entries/<N>[.p/<W>]`), so the prefix can be served as is by
/// any static HTTP server or CDN.
///
/// Writers: the shard's Raft leader writes, through
/// [`write_integration`](Self::write_integration) (create-only tiles) and
/// [`put_checkpoint`](Self::put_checkpoint) (a fenced compare-and-swap).
/// Both are safe with several writers at once — a deposed leader that wakes
/// up late next to the new one, in this process or another: tiles are
/// create-only, and the checkpoint write is conditional on exactly the
/// object it was checked against, so it can never move back or sideways.
/// Readers (frontend, collector) can share one handle: cloning is cheap,
/// and clones share the cache of verified tiles and the
/// [`corrupt_reads`](Self::corrupt_reads) counter. Every method takes
/// `&self` and may be called concurrently.
///
/// Generic over any [`ObjectStore`]. [`TileStore::new`] needs a store with
/// conditional writes (`PutMode::Create` and `PutMode::Update` on the ETag
/// or version read: `InMemory`, S3 with conditional put enabled, GCS,
/// Azure). [`TileStore::local`] builds the `LocalFileSystem` one used by
/// `cairnd dev`, which has no `PutMode::Update`; there the checkpoint write
/// is fenced by an OS file lock instead (see
/// [`checkpoint_lock_file`](Self::checkpoint_lock_file)). Which of the two a
/// store uses is fixed by its constructor.
#[derive(Clone, Debug)]
pub struct TileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    /// Normalised: no leading or trailing `/`; empty for the store root.
    prefix: String,
    /// Verified full tiles and bundles only.
    cache: TileCache,
    /// Node hashes computed from verified tiles.
    nodes: NodeCache,
    /// Verified right edges of recent trusted heads.
    edges: EdgeCache,
    /// Read calls that failed on a corrupt object (see `corrupt_reads`).
    corrupt_reads: AtomicU64,
    /// How checkpoint writes are made conditional.
    fence: CheckpointFence,
    /// Whether objects are written with their HTTP headers (see [`Headers`]).
    headers: bool,
    /// Partial tiles and bundles that may be garbage-collected once
    /// superseded (see [`crate::gc`]).
    partials: crate::gc::Candidates,
}

impl TileStore {
    /// A store for the shard whose objects live in `store` under `prefix`
    /// (`dev`, `dev/` and `/dev` are the same prefix; `""` is the store
    /// root), with default options.
    ///
    /// Checkpoint writes are compare-and-swaps with `PutMode::Create` and
    /// `PutMode::Update`, which `store` must implement: with a store that
    /// does not (`LocalFileSystem`; use [`TileStore::local`]) every
    /// checkpoint update fails with [`StorageError::Backend`] and nothing is
    /// written.
    ///
    /// Fails with [`StorageError::InvalidKey`] unless the prefix is made of
    /// `/`-separated `[A-Za-z0-9._-]` segments (no empty, `.` or `..` ones).
    /// Performs no IO.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<Self, StorageError> {
        Self::with_options(store, prefix, TileStoreOptions::default())
    }

    /// [`TileStore::new`] with explicit options.
    pub fn with_options(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        options: TileStoreOptions,
    ) -> Result<Self, StorageError> {
        let prefix = normalise_prefix(prefix)?;
        Ok(Self::build(
            store,
            prefix,
            &options,
            CheckpointFence::Conditional,
            Headers::NotStored,
        ))
    }

    pub(crate) fn build(
        store: Arc<dyn ObjectStore>,
        prefix: String,
        options: &TileStoreOptions,
        fence: CheckpointFence,
        headers: Headers,
    ) -> Self {
        let headers = headers == Headers::Stored;
        // Every call below goes through the wrapper, so none escapes the
        // metrics.
        let store: Arc<dyn ObjectStore> =
            Arc::new(Instrumented::new(store, options.metrics.clone()));
        Self {
            inner: Arc::new(Inner {
                store,
                prefix,
                cache: TileCache::new(options.cache_bytes),
                nodes: NodeCache::new(
                    NonZeroUsize::new(NODE_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
                ),
                edges: EdgeCache::default(),
                corrupt_reads: AtomicU64::new(0),
                fence,
                headers,
                partials: crate::gc::Candidates::default(),
            }),
        }
    }

    /// A store on the local filesystem: objects are files below `dir`
    /// (created if missing) under `prefix`, e.g. `dir/dev/tile/0/000`.
    ///
    /// Writes are fsynced (file and directory) before they return, so "Ok"
    /// means durable, as with a remote object store; `PutMode::Create` is an
    /// atomic hard link, so create-only holds between processes too.
    ///
    /// Checkpoint writes are fenced by an exclusive OS lock (`flock` on
    /// Unix) on [`checkpoint_lock_file`](Self::checkpoint_lock_file), created
    /// on the first checkpoint write: every handle on `dir` and `prefix`, in
    /// this process or another on the same host, takes it around its
    /// read-check-write. (Not across hosts: a directory shared over a network
    /// filesystem needs a store with conditional writes instead.)
    pub fn local(dir: &FsPath, prefix: &str) -> Result<Self, StorageError> {
        Self::local_with_options(dir, prefix, TileStoreOptions::default())
    }

    /// [`TileStore::local`] with explicit options.
    pub fn local_with_options(
        dir: &FsPath,
        prefix: &str,
        options: TileStoreOptions,
    ) -> Result<Self, StorageError> {
        let prefix = normalise_prefix(prefix)?;
        std::fs::create_dir_all(dir).map_err(|source| StorageError::LocalDir {
            dir: dir.display().to_string(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|source| StorageError::Backend {
                op: "open",
                path: dir.display().to_string(),
                source,
            })?
            .with_fsync(true);
        let fence = CheckpointFence::LockFile {
            lock_file: lock_file_for(dir, &prefix),
            wait: options.checkpoint_lock_wait,
        };
        Ok(Self::build(
            Arc::new(fs),
            prefix,
            &options,
            fence,
            Headers::NotStored,
        ))
    }

    /// The file whose OS lock fences checkpoint writes, for a store made by
    /// [`TileStore::local`]: `<dir>/.<prefix>.checkpoint.lock` (each `/` of
    /// the prefix written `%2F`), beside the prefix directory rather than in
    /// it, because the prefix directory is served as static files. `None`
    /// for other stores, whose writes are conditional puts.
    pub fn checkpoint_lock_file(&self) -> Option<&FsPath> {
        match &self.inner.fence {
            CheckpointFence::LockFile { lock_file, .. } => Some(lock_file),
            CheckpointFence::Conditional | CheckpointFence::ReadOnly => None,
        }
    }

    /// Whether the store only reads ([`TileStore::http`]).
    pub fn is_read_only(&self) -> bool {
        matches!(self.inner.fence, CheckpointFence::ReadOnly)
    }

    /// [`StorageError::ReadOnly`] for `op` on `key` if the store only reads.
    pub(crate) fn check_writable(&self, op: &'static str, key: &str) -> Result<(), StorageError> {
        if self.is_read_only() {
            return Err(StorageError::ReadOnly {
                op,
                path: key.to_owned(),
            });
        }
        Ok(())
    }

    /// The `object_store` attributes to write `key` with: its HTTP headers
    /// on stores that keep them, none otherwise.
    pub(crate) fn attributes_for(&self, key: &str) -> object_store::Attributes {
        match ObjectHeaders::for_key(key) {
            Some(headers) if self.inner.headers => headers.attributes(),
            _ => object_store::Attributes::new(),
        }
    }

    /// Node hashes computed from verified tiles (see `crate::read`).
    pub(crate) fn nodes(&self) -> &NodeCache {
        &self.inner.nodes
    }

    pub(crate) fn partials(&self) -> &crate::gc::Candidates {
        &self.inner.partials
    }

    pub(crate) fn fence(&self) -> &CheckpointFence {
        &self.inner.fence
    }

    /// The underlying object store (for tools such as GC or fsck that list
    /// objects; keys below [`prefix`](Self::prefix)).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The normalised shard prefix (no surrounding `/`; empty for the root).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Number of objects in the cache of verified full tiles and bundles,
    /// and their total size in bytes (for metrics).
    pub fn cache_usage(&self) -> (usize, usize) {
        self.inner.cache.usage()
    }

    /// The full hash tile or full entry bundle `path` if it is in the cache,
    /// which holds only objects verified against some trusted head of this
    /// log (and so correct for every later head); `None` for partial ones,
    /// which are never cached. No IO: lets a server answer hot full tiles
    /// without first fetching a head to verify against.
    pub fn cached(&self, path: TilePath) -> Option<Bytes> {
        self.inner.cache.get(&path)
    }

    /// How many read calls on this store (and its clones) failed because a
    /// stored object is corrupt or does not verify against the caller's
    /// trusted head ([`StorageError::is_corruption`]): monotone, for the
    /// `cairn_storage_corrupt_objects_total` metric. Counts failed calls,
    /// not distinct objects: a corrupt tile that many requests need counts
    /// once per request, so the rate shows how much traffic it breaks.
    pub fn corrupt_reads(&self) -> u64 {
        self.inner.corrupt_reads.load(Ordering::Relaxed)
    }

    /// Passes `result` through, counting and logging it if it is a
    /// corruption: every public read ends with this.
    pub(crate) fn observed<T>(&self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &result
            && e.is_corruption()
        {
            self.inner.corrupt_reads.fetch_add(1, Ordering::Relaxed);
            tracing::error!(prefix = %self.inner.prefix, error = %e, "corrupt stored object; not used");
        }
        result
    }

    pub(crate) fn cache(&self) -> &TileCache {
        &self.inner.cache
    }

    pub(crate) fn edges(&self) -> &EdgeCache {
        &self.inner.edges
    }

    /// The full object path of `key` below the prefix.
    pub(crate) fn path(&self, key: &str) -> Result<Path, StorageError> {
        object_path(&self.inner.prefix, key)
    }

    /// Reads the object `key`: `None` if it does not exist. Objects over
    /// `max_len` bytes are [`StorageError::Corrupt`] and are not downloaded.
    /// Retried as [`retry`] describes.
    pub(crate) async fn read(
        &self,
        key: &str,
        max_len: usize,
    ) -> Result<Option<Bytes>, StorageError> {
        Ok(self
            .read_with_meta(key, max_len)
            .await?
            .map(|(bytes, _)| bytes))
    }

    /// [`read`](Self::read), with the metadata of the same GET response: its
    /// `e_tag` and `version` name exactly the bytes returned, so a later
    /// `PutMode::Update` on them succeeds only if the object is still these
    /// bytes.
    pub(crate) async fn read_with_meta(
        &self,
        key: &str,
        max_len: usize,
    ) -> Result<Option<(Bytes, ObjectMeta)>, StorageError> {
        let path = self.path(key)?;
        let max = u64::try_from(max_len).unwrap_or(u64::MAX);
        retry("get", key, || async {
            let result = match self.inner.store.get(&path).await {
                Ok(result) => result,
                Err(e) => {
                    return match StorageError::from_store("get", key, e) {
                        StorageError::NotFound { .. } => Ok(None),
                        e => Err(e),
                    };
                }
            };
            let too_large =
                |len| StorageError::corrupt(key, crate::error::Corruption::TooLarge { len, max });
            if result.meta.size > max {
                return Err(too_large(result.meta.size));
            }
            let meta = result.meta.clone();
            let bytes = result
                .bytes()
                .await
                .map_err(|e| StorageError::from_store("get", key, e))?;
            // The size in the metadata is the store's claim; check the body.
            if bytes.len() > max_len {
                return Err(too_large(u64::try_from(bytes.len()).unwrap_or(u64::MAX)));
            }
            Ok(Some((bytes, meta)))
        })
        .await
    }

    /// Writes `bytes` to `key` with `mode`, retried. Maps every store error
    /// with [`StorageError::from_store`] except a failed condition, which is
    /// [`Written::Conflict`] for the caller to inspect: `AlreadyExists` or
    /// `Precondition` (stores differ in which they report), and for
    /// `PutMode::Update` also `NotFound` (the object read was deleted).
    ///
    /// A retried conditional write whose first attempt took effect unseen
    /// (e.g. timed out after the store applied it) reports `Conflict`; the
    /// caller re-reads and finds its own bytes.
    pub(crate) async fn write(
        &self,
        key: &str,
        bytes: &Bytes,
        mode: PutMode,
    ) -> Result<Written, StorageError> {
        self.check_writable("put", key)?;
        let path = self.path(key)?;
        let attributes = self.attributes_for(key);
        retry("put", key, || async {
            let put = Put {
                path: &path,
                key,
                bytes,
                attributes: attributes.clone(),
            };
            put_classified(self.inner.store.as_ref(), put, mode.clone()).await
        })
        .await
    }

    /// Reads hash tile `id` exactly as named: `None` if that object does not
    /// exist. The bytes must decode at the id's width, else
    /// [`StorageError::Corrupt`]. Not verified: a cached (verified) copy is
    /// used if there is one, but what is read is never cached.
    pub(crate) async fn fetch_tile(&self, id: TileId) -> Result<Option<Bytes>, StorageError> {
        self.fetch_checked(TilePath::Hash(id), id.is_full(), FULL_TILE_BYTES, |b| {
            id.decode(b).map(drop)
        })
        .await
    }

    /// Reads entry bundle `id` exactly as named, like [`fetch_tile`](Self::fetch_tile).
    pub(crate) async fn fetch_bundle(&self, id: BundleId) -> Result<Option<Bytes>, StorageError> {
        self.fetch_checked(TilePath::Entries(id), id.is_full(), MAX_BUNDLE_BYTES, |b| {
            id.decode(b).map(drop)
        })
        .await
    }

    /// Reads the object `key` names (at most `max_len` bytes), rejecting
    /// bytes `check` refuses as corrupt. Full (immutable) objects come from
    /// the cache when verified ones are there; nothing read here goes into
    /// it, since only verification (`crate::verify`) may put objects there.
    async fn fetch_checked(
        &self,
        key: TilePath,
        full: bool,
        max_len: usize,
        check: impl FnOnce(&[u8]) -> Result<(), TileError>,
    ) -> Result<Option<Bytes>, StorageError> {
        if full && let Some(bytes) = self.inner.cache.get(&key) {
            return Ok(Some(bytes));
        }
        let path = key.path();
        let Some(bytes) = self.read(&path, max_len).await? else {
            return Ok(None);
        };
        check(&bytes).map_err(|e| StorageError::corrupt(&path, e))?;
        Ok(Some(bytes))
    }

    /// The bytes of hash tile `id` as it exists in a tree where it has this
    /// width: the object `id` names, or — if that partial tile is gone
    /// (partial tiles are garbage-collected once the published tree has
    /// outgrown them) — the first `width` hashes of a wider version of the
    /// same tile ([`grown_into`](Self::grown_into)), which a tile only ever
    /// grows into. [`StorageError::NotFound`] (naming `id`) if none exists.
    pub(crate) async fn tile_at(&self, id: TileId) -> Result<Bytes, StorageError> {
        if let Some(bytes) = self.fetch_tile(id).await? {
            return Ok(bytes);
        }
        let not_found = || StorageError::NotFound { path: id.path() };
        let (source, bytes) = self
            .grown_into(TilePath::Hash(id))
            .await?
            .ok_or_else(not_found)?;
        tracing::debug!(tile = %id, %source, "partial tile gone; cut from a wider one");
        Ok(bytes.slice(..usize::from(id.width()) * cairn_tlog::tile::HASH_SIZE))
    }

    /// The bytes of entry bundle `id` as it exists in a tree where it has
    /// this width, falling back to a prefix of a wider bundle like
    /// [`tile_at`](Self::tile_at).
    pub(crate) async fn bundle_at(&self, id: BundleId) -> Result<Bytes, StorageError> {
        if let Some(bytes) = self.fetch_bundle(id).await? {
            return Ok(bytes);
        }
        let (source, bytes) = self
            .grown_into(TilePath::Entries(id))
            .await?
            .ok_or_else(|| StorageError::NotFound { path: id.path() })?;
        let path = source.path();
        let entries = decode_bundle(&bytes).map_err(|e| StorageError::corrupt(&path, e))?;
        let prefix = entries
            .get(..usize::from(id.width()))
            .ok_or_else(|| StorageError::NotFound { path: id.path() })?;
        let encoded = encode_bundle(prefix).map_err(|e| StorageError::corrupt(&path, e))?;
        tracing::debug!(bundle = %id, %source, "partial bundle gone; cut from a wider one");
        Ok(Bytes::from(encoded))
    }

    /// A stored version of the partial tile or bundle `partial` that holds
    /// more: the full one if it exists, else the narrowest wider partial
    /// found by listing the index's `.p/` directory (not on a read-only
    /// HTTP store, which cannot list). `None` for a full `partial` or if
    /// nothing wider is stored. The bytes are checked to decode at their
    /// width, not verified: the caller verifies what it cuts from them.
    async fn grown_into(
        &self,
        partial: TilePath,
    ) -> Result<Option<(TilePath, Bytes)>, StorageError> {
        if partial.is_full() {
            return Ok(None);
        }
        // A full version of this index may not fit any u64 tree; then there
        // is nothing wider.
        let full = match partial {
            TilePath::Hash(id) => TileId::full(id.level(), id.index()).map(TilePath::Hash),
            TilePath::Entries(id) => BundleId::full(id.index()).map(TilePath::Entries),
        };
        let Ok(full) = full else {
            return Ok(None);
        };
        if let Some(bytes) = self.fetch_path(full).await? {
            return Ok(Some((full, bytes)));
        }
        if self.is_read_only() {
            return Ok(None);
        }
        let dir = format!("{}.p", full.path());
        let listed: Vec<ObjectMeta> = self
            .inner
            .store
            .list(Some(&self.path(&dir)?))
            .try_collect()
            .await
            .map_err(|e| StorageError::from_store("list", &dir, e))?;
        let width = |p: TilePath| match p {
            TilePath::Hash(id) => id.width(),
            TilePath::Entries(id) => id.width(),
        };
        let mut wider: Vec<TilePath> = listed
            .iter()
            .filter_map(|m| {
                let w = m.location.filename()?;
                cairn_tlog::tile::parse_path(&format!("{dir}/{w}")).ok()
            })
            .filter(|p| width(*p) > width(partial))
            .collect();
        wider.sort_by_key(|p| width(*p));
        for candidate in wider {
            if let Some(bytes) = self.fetch_path(candidate).await? {
                return Ok(Some((candidate, bytes)));
            }
        }
        Ok(None)
    }

    /// [`fetch_tile`](Self::fetch_tile) or [`fetch_bundle`](Self::fetch_bundle).
    async fn fetch_path(&self, path: TilePath) -> Result<Option<Bytes>, StorageError> {
        match path {
            TilePath::Hash(id) => self.fetch_tile(id).await,
            TilePath::Entries(id) => self.fetch_bundle(id).await,
        }
    }
}

/// What one put writes: `bytes` to `path` (the store path of `key`), with
/// `attributes`.
pub(crate) struct Put<'a> {
    pub path: &'a Path,
    pub key: &'a str,
    pub bytes: &'a Bytes,
    pub attributes: object_store::Attributes,
}

/// One `put_opts` of `put` with `mode`, classified as [`TileStore::write`]
/// describes. Free of `&TileStore` so that a write can run in a task of its
/// own.
pub(crate) async fn put_classified(
    store: &dyn ObjectStore,
    put: Put<'_>,
    mode: PutMode,
) -> Result<Written, StorageError> {
    let Put {
        path,
        key,
        bytes,
        attributes,
    } = put;
    let update = matches!(mode, PutMode::Update(_));
    let opts = object_store::PutOptions {
        mode,
        attributes,
        ..Default::default()
    };
    match store.put_opts(path, bytes.clone().into(), opts).await {
        Ok(_) => Ok(Written::Done),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(Written::Conflict),
        Err(object_store::Error::NotFound { .. }) if update => Ok(Written::Conflict),
        Err(e) => Err(StorageError::from_store("put", key, e)),
    }
}
