//! The `checkpoint` write is fenced: with several writers at once (a deposed
//! leader waking up late next to the new one) it never moves back or
//! sideways. Local directories are fenced by an OS file lock, other stores by
//! a conditional put on the version read.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_storage::{CHECKPOINT_KEY, CHECKPOINT_ROUNDS, StorageError, TileStore, TileStoreOptions};
use common::{
    ORIGIN, PREFIX, note, overwrite_raw, raw_path, read_raw, reopen, roots, size_and_root,
    temp_store,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tempfile::TempDir;

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(60);

/// Size and root of a stored checkpoint note.
/// A handle on the local store in `dir` with a lock wait of `wait`.
fn local(dir: &TempDir, wait: Duration) -> TileStore {
    let options = TileStoreOptions {
        checkpoint_lock_wait: wait,
        ..TileStoreOptions::default()
    };
    TileStore::local_with_options(dir.path(), PREFIX, options).expect("local store")
}

/// Opens and takes the lock `store` fences checkpoint writes with, as
/// another writer in the middle of its read-check-write would hold it.
fn hold_lock(store: &TileStore) -> File {
    let path = store
        .checkpoint_lock_file()
        .expect("a local store has a lock file");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open the lock file");
    file.try_lock().expect("the lock is free");
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_one_directory_never_move_the_checkpoint_back() {
    let dir = tempfile::tempdir().unwrap();
    let handles = [local(&dir, DEADLINE), local(&dir, DEADLINE)];
    common::race_checkpoint_writers(handles, reopen(&dir), 48, DEADLINE).await;
}

#[tokio::test]
async fn a_deposed_writer_cannot_move_the_checkpoint_back() {
    let (dir, deposed) = temp_store();
    common::deposed_writer_is_refused(&deposed, &reopen(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_checks_what_the_lock_holder_wrote_not_what_was_there_before() {
    let roots = roots(20);
    let dir = tempfile::tempdir().unwrap();
    let holder = local(&dir, DEADLINE);
    let waiter = local(&dir, DEADLINE);
    holder
        .put_checkpoint(10, note(ORIGIN, 10, roots[10], 0))
        .await
        .unwrap();

    // The holder is between its read and its write ...
    let lock = hold_lock(&holder);
    let waiters = note(ORIGIN, 15, roots[15], 0);
    let waiting = tokio::spawn(async move { waiter.put_checkpoint(15, waiters).await });
    // ... long enough for the waiter to reach the lock; an unfenced waiter
    // would read size 10 now and overwrite what the holder writes next.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "the waiter published while another writer held the lock"
    );
    let holders = note(ORIGIN, 20, roots[20], 0);
    overwrite_raw(&holder, CHECKPOINT_KEY, holders.clone()).await;
    drop(lock);

    let result = tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("the waiter finishes once the lock is released")
        .unwrap();
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CheckpointShrinks {
                stored: 20,
                requested: 15
            }
        ),
        "{err:?}"
    );
    assert_eq!(read_raw(&holder, CHECKPOINT_KEY).await.unwrap(), holders);
}

#[tokio::test]
async fn a_held_lock_makes_publication_fail_retryably_within_the_bounded_wait() {
    let dir = tempfile::tempdir().unwrap();
    let store = local(&dir, Duration::from_millis(200));
    let lock = hold_lock(&store);
    let bytes = note(ORIGIN, 5, [4; 32], 0);
    let err = tokio::time::timeout(DEADLINE, store.put_checkpoint(5, bytes.clone()))
        .await
        .expect("the bounded wait ends")
        .unwrap_err();
    assert!(
        matches!(err, StorageError::CheckpointBusy { waited, .. } if waited == Duration::from_millis(200)),
        "{err:?}"
    );
    assert!(err.is_retryable() && !err.is_fatal());
    assert_eq!(err.label(), "checkpoint_busy");
    assert_eq!(read_raw(&store, CHECKPOINT_KEY).await, None);

    // Once the holder lets go, the same call succeeds.
    drop(lock);
    tokio::time::timeout(DEADLINE, store.put_checkpoint(5, bytes.clone()))
        .await
        .expect("the lock is free")
        .unwrap();
    assert_eq!(read_raw(&store, CHECKPOINT_KEY).await.unwrap(), bytes);
}

#[tokio::test]
async fn the_lock_file_lies_beside_the_served_prefix_directory() {
    let (dir, store) = temp_store();
    let lock = store.checkpoint_lock_file().unwrap().to_owned();
    assert_eq!(lock, dir.path().join(".dev.checkpoint.lock"));
    assert!(!lock.starts_with(dir.path().join(PREFIX)));
    store
        .put_checkpoint(5, note(ORIGIN, 5, [4; 32], 0))
        .await
        .unwrap();
    assert!(lock.exists(), "created by the first checkpoint write");
    // Nothing but the checkpoint appears below the prefix.
    let listed: Vec<ObjectMeta> = store
        .object_store()
        .list(Some(&Path::from(PREFIX)))
        .map(|m| m.unwrap())
        .collect()
        .await;
    let keys: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(keys, vec![raw_path(CHECKPOINT_KEY).to_string()]);

    // Nested prefixes cannot collide with a flat one.
    let nested = TileStore::local(dir.path(), "a/b").unwrap();
    let flat = TileStore::local(dir.path(), "a_b").unwrap();
    assert_eq!(
        nested.checkpoint_lock_file().unwrap(),
        dir.path().join(".a%2Fb.checkpoint.lock")
    );
    assert_ne!(nested.checkpoint_lock_file(), flat.checkpoint_lock_file());
    // Stores with conditional writes have none.
    let memory = TileStore::new(Arc::new(InMemory::new()), PREFIX).unwrap();
    assert_eq!(memory.checkpoint_lock_file(), None);
}

/// An in-memory store that, just before the `n`-th conditional put
/// (`PutMode::Create` or `PutMode::Update`, counted from 0), overwrites the
/// checkpoint with `competing(n)` if that is `Some`: another writer winning
/// the race between `put_checkpoint`'s read and its write.
struct Interfering {
    inner: InMemory,
    competing: Box<dyn Fn(usize) -> Option<Vec<u8>> + Send + Sync>,
    conditional_puts: AtomicUsize,
}

impl Interfering {
    fn new(competing: impl Fn(usize) -> Option<Vec<u8>> + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemory::new(),
            competing: Box::new(competing),
            conditional_puts: AtomicUsize::new(0),
        })
    }

    fn conditional_puts(&self) -> usize {
        self.conditional_puts.load(Ordering::SeqCst)
    }

    async fn stored(&self) -> Option<Vec<u8>> {
        match self.inner.get(&raw_path(CHECKPOINT_KEY)).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    }
}

impl fmt::Debug for Interfering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interfering").finish_non_exhaustive()
    }
}

impl fmt::Display for Interfering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interfering({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Interfering {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if matches!(opts.mode, PutMode::Create | PutMode::Update(_)) {
            let n = self.conditional_puts.fetch_add(1, Ordering::SeqCst);
            if let Some(bytes) = (self.competing)(n) {
                self.inner
                    .put_opts(location, bytes.into(), PutOptions::default())
                    .await?;
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A tile store on `interfering` with the size-10 checkpoint published
/// (with the interference starting at the next conditional put).
async fn published_10(
    competing: impl Fn(usize) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> (Arc<Interfering>, TileStore) {
    let armed = AtomicBool::new(false);
    let interfering = Interfering::new(move |n| {
        // The first conditional put publishes size 10 undisturbed.
        if armed.swap(true, Ordering::SeqCst) {
            competing(n - 1)
        } else {
            None
        }
    });
    let store = TileStore::new(interfering.clone(), PREFIX).unwrap();
    store
        .put_checkpoint(10, note(ORIGIN, 10, roots(10)[10], 0))
        .await
        .unwrap();
    assert_eq!(interfering.conditional_puts(), 1);
    (interfering, store)
}

#[tokio::test]
async fn a_larger_checkpoint_written_between_read_and_write_wins() {
    let tree = roots(20);
    let larger = note(ORIGIN, 20, tree[20], 0);
    let competing = larger.clone();
    let (interfering, store) = published_10(move |n| (n == 0).then(|| competing.clone())).await;
    let err = store
        .put_checkpoint(15, note(ORIGIN, 15, tree[15], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CheckpointShrinks {
                stored: 20,
                requested: 15
            }
        ),
        "{err:?}"
    );
    assert_eq!(interfering.stored().await.unwrap(), larger);
    assert_eq!(
        interfering.conditional_puts(),
        2,
        "one lost conditional write"
    );
}

#[tokio::test]
async fn a_larger_checkpoint_created_between_read_and_create_wins() {
    let tree = roots(20);
    let larger = note(ORIGIN, 20, tree[20], 0);
    let competing = larger.clone();
    let interfering = Interfering::new(move |n| (n == 0).then(|| competing.clone()));
    let store = TileStore::new(interfering.clone(), PREFIX).unwrap();
    let err = store
        .put_checkpoint(15, note(ORIGIN, 15, tree[15], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CheckpointShrinks {
                stored: 20,
                requested: 15
            }
        ),
        "{err:?}"
    );
    assert_eq!(interfering.stored().await.unwrap(), larger);
}

#[tokio::test]
async fn another_root_at_the_same_size_written_between_read_and_write_is_a_fork() {
    let tree = roots(20);
    let other = note(ORIGIN, 15, [0xee; 32], 0);
    let competing = other.clone();
    let (interfering, store) = published_10(move |n| (n == 0).then(|| competing.clone())).await;
    let err = store
        .put_checkpoint(15, note(ORIGIN, 15, tree[15], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::CheckpointFork { size: 15 }),
        "{err:?}"
    );
    assert!(err.is_fatal());
    assert_eq!(interfering.stored().await.unwrap(), other);
}

#[tokio::test]
async fn the_same_note_written_between_read_and_write_is_success() {
    let tree = roots(20);
    let mine = note(ORIGIN, 15, tree[15], 1);
    let competing = mine.clone();
    let (interfering, store) = published_10(move |n| (n == 0).then(|| competing.clone())).await;
    store.put_checkpoint(15, mine.clone()).await.unwrap();
    assert_eq!(interfering.stored().await.unwrap(), mine);
    assert_eq!(
        interfering.conditional_puts(),
        2,
        "no write after finding the note already there"
    );
}

#[tokio::test]
async fn more_cosignatures_written_between_read_and_write_are_replaced_by_the_other_note() {
    // Same head, other signatures: legitimate either way; the re-checked
    // write goes through on the new version.
    let tree = roots(20);
    let competing = note(ORIGIN, 15, tree[15], 2);
    let mine = note(ORIGIN, 15, tree[15], 1);
    let (interfering, store) = published_10(move |n| (n == 0).then(|| competing.clone())).await;
    store.put_checkpoint(15, mine.clone()).await.unwrap();
    assert_eq!(interfering.stored().await.unwrap(), mine);
    assert_eq!(interfering.conditional_puts(), 3);
}

#[tokio::test]
async fn a_checkpoint_that_keeps_changing_gives_a_retryable_error_after_bounded_rounds() {
    // Another writer keeps re-publishing size 10 with alternating
    // cosignatures, so every conditional write loses.
    let tree = roots(20);
    let variants = [note(ORIGIN, 10, tree[10], 1), note(ORIGIN, 10, tree[10], 2)];
    let (interfering, store) = published_10(move |n| Some(variants[n % 2].clone())).await;
    let err = store
        .put_checkpoint(15, note(ORIGIN, 15, tree[15], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::CheckpointContended { rounds } if rounds == CHECKPOINT_ROUNDS),
        "{err:?}"
    );
    assert!(err.is_retryable() && !err.is_fatal());
    assert_eq!(
        interfering.conditional_puts(),
        1 + CHECKPOINT_ROUNDS as usize
    );
    let (size, _) = size_and_root(&interfering.stored().await.unwrap());
    assert_eq!(size, 10);
}

#[tokio::test]
async fn the_conditional_path_keeps_the_checkpoint_contract() {
    let tree = roots(20);
    let store = TileStore::new(Arc::new(InMemory::new()), PREFIX).unwrap();
    let mut published = BTreeMap::new();
    for (size, cosigners) in [(5, 0), (5, 1), (5, 1), (9, 0)] {
        let bytes = note(ORIGIN, size, tree[size as usize], cosigners);
        store.put_checkpoint(size, bytes.clone()).await.unwrap();
        assert_eq!(store.checkpoint().await.unwrap().unwrap(), bytes);
        published.insert(size, bytes);
    }
    let err = store
        .put_checkpoint(7, note(ORIGIN, 7, tree[7], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CheckpointShrinks {
                stored: 9,
                requested: 7
            }
        ),
        "{err:?}"
    );
    let err = store
        .put_checkpoint(9, note(ORIGIN, 9, [0xee; 32], 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::CheckpointFork { size: 9 }),
        "{err:?}"
    );
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), published[&9]);
}

#[tokio::test]
async fn a_store_without_conditional_updates_refuses_instead_of_overwriting() {
    // `TileStore::new` on a `LocalFileSystem` (use `TileStore::local`):
    // creating the first checkpoint works, updating it is refused, never
    // done blindly.
    let dir = tempfile::tempdir().unwrap();
    let store = TileStore::new(
        Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
        PREFIX,
    )
    .unwrap();
    assert_eq!(store.checkpoint_lock_file(), None);
    let first = note(ORIGIN, 5, [4; 32], 0);
    store.put_checkpoint(5, first.clone()).await.unwrap();
    let err = store
        .put_checkpoint(6, note(ORIGIN, 6, [5; 32], 0))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Backend { .. }), "{err:?}");
    assert!(!err.is_fatal() && !err.is_retryable());
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), first);
}
