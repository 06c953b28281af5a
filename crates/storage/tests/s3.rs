//! The S3 backend against a real S3-compatible server: moto's
//! (`python3 -m moto.server`, installed by `scripts/bootstrap.sh`), started
//! per test on a free port. Create-only tiles, the checkpoint contract, the
//! conditional-put fence between racing writers, and Merkle reads all hold
//! through `TileStore::s3` as they do on a local directory.
//!
//! Without python3 and moto these tests FAIL (they do not skip): a passing
//! run must mean the S3 path was exercised.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use cairn_storage::{
    CHECKPOINT_KEY, ObjectStoreConfig, S3Config, StorageError, TileStore, TileStoreOptions,
};
use cairn_testvectors::moto::MotoServer;
use common::{ORIGIN, PREFIX, Rng, Tree, note, read_raw, roots};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{Attribute, ObjectStoreExt};
use tempfile::TempDir;

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(60);

/// The bucket every test creates on its own server.
const BUCKET: &str = "cairn-tiles";

/// A moto S3 server on 127.0.0.1, killed when dropped, with one empty
/// bucket ([`BUCKET`]) and credential files for it.
struct Moto {
    server: MotoServer,
    /// Holds the credential files.
    secrets: TempDir,
}

impl Moto {
    /// Starts moto on a free port and creates [`BUCKET`]. Panics with
    /// instructions if python3 or moto is missing.
    async fn start() -> Self {
        let secrets = tempfile::tempdir().unwrap();
        std::fs::write(secrets.path().join("access_key_id"), "testing\n").unwrap();
        std::fs::write(secrets.path().join("secret_access_key"), "testing\n").unwrap();
        let moto = Self {
            server: MotoServer::start(),
            secrets,
        };
        moto.create_bucket().await;
        moto
    }

    /// moto accepts an unsigned `PUT /<bucket>` (object_store cannot create
    /// buckets).
    async fn create_bucket(&self) {
        let client = reqwest::Client::builder()
            .timeout(DEADLINE)
            .build()
            .unwrap();
        let url = format!("{}/{BUCKET}", self.endpoint());
        let response = client.put(&url).send().await.expect("PUT bucket");
        assert!(
            response.status().is_success(),
            "creating the bucket: {}",
            response.status()
        );
    }

    fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// The configuration of the bucket, credentials from files.
    fn config(&self) -> S3Config {
        let mut config = S3Config::new(BUCKET);
        config.endpoint = Some(self.endpoint());
        config.allow_http = true;
        config.access_key_id_file = Some(self.secret("access_key_id"));
        config.secret_access_key_file = Some(self.secret("secret_access_key"));
        config
    }

    fn secret(&self, name: &str) -> PathBuf {
        self.secrets.path().join(name)
    }

    /// A fresh handle (empty cache, as another process would have) on the
    /// test shard.
    fn store(&self) -> TileStore {
        TileStore::s3(&self.config(), PREFIX, TileStoreOptions::default()).expect("s3 store")
    }
}

/// Size and root of a stored checkpoint note.
#[tokio::test]
async fn tiles_on_s3_are_create_only() {
    let moto = Moto::start().await;
    let store = moto.store();
    let key = "tile/0/000.p/1";
    store.put_create_only(key, vec![1u8; 32]).await.unwrap();
    // The same bytes again (a new leader re-running integration) succeed.
    moto.store()
        .put_create_only(key, vec![1u8; 32])
        .await
        .unwrap();
    for other in [vec![2u8; 32], vec![1u8; 64]] {
        let err = store.put_create_only(key, other).await.unwrap_err();
        assert!(
            matches!(err, StorageError::Fork { ref path } if path == key),
            "{err:?}"
        );
        assert!(err.is_fatal());
        assert_eq!(read_raw(&store, key).await.unwrap(), vec![1u8; 32]);
    }

    // A whole integration re-run by another handle is a no-op.
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    let mut again = Tree::new();
    again.grow(&moto.store(), 300).await;
}

#[tokio::test]
async fn the_checkpoint_contract_holds_on_s3() {
    let moto = Moto::start().await;
    let store = moto.store();
    let tree = roots(20);
    assert_eq!(store.checkpoint().await.unwrap(), None);

    let first = note(ORIGIN, 10, tree[10], 1);
    store.put_checkpoint(10, first.clone()).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), first);

    // Never smaller.
    let err = store
        .put_checkpoint(9, note(ORIGIN, 9, tree[9], 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::CheckpointShrinks {
                stored: 10,
                requested: 9
            }
        ),
        "{err:?}"
    );
    // Another root at the same size is a fork, and fatal.
    let err = store
        .put_checkpoint(10, note(ORIGIN, 10, [0xee; 32], 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::CheckpointFork { size: 10 }),
        "{err:?}"
    );
    assert!(err.is_fatal());
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), first);

    // The same head with more cosignatures replaces it (a conditional
    // update on the ETag read); the identical note again is a no-op.
    let more = note(ORIGIN, 10, tree[10], 2);
    store.put_checkpoint(10, more.clone()).await.unwrap();
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), more);
    store.put_checkpoint(10, more.clone()).await.unwrap();
    // Growing is fine, from another handle too.
    let bigger = note(ORIGIN, 15, tree[15], 0);
    moto.store()
        .put_checkpoint(15, bigger.clone())
        .await
        .unwrap();
    assert_eq!(read_raw(&store, CHECKPOINT_KEY).await.unwrap(), bigger);
}

#[tokio::test]
async fn a_deposed_writer_on_s3_cannot_move_the_checkpoint_back() {
    let moto = Moto::start().await;
    common::deposed_writer_is_refused(&moto.store(), &moto.store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_on_s3_never_move_the_checkpoint_back() {
    // As on a local directory (tests/fence.rs), with two S3 handles.
    let moto = Moto::start().await;
    let handles = [moto.store(), moto.store()];
    common::race_checkpoint_writers(handles, moto.store(), 30, DEADLINE).await;
}

#[tokio::test]
async fn leaves_and_proofs_read_back_from_s3_verify() {
    let seed = 0x5eed_0053;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let moto = Moto::start().await;
    let writer = moto.store();
    let mut tree = Tree::new();
    // Batches crossing bundle and tile boundaries, including a full tile.
    for n in [1, 200, 56, 300, rng.range(1, 100)] {
        tree.grow(&writer, n).await;
    }
    let stored = tree.size();
    // A reader with a cold cache, as a frontend on another host.
    let reader = moto.store();
    let head = tree.head(stored);
    for size in [1, 2, 255, 256, 257, 556, stored] {
        let indices: Vec<u64> = (0..3).map(|_| rng.range(0, size - 1)).collect();
        common::check_size(&reader, &tree, size, stored, &indices).await;
    }
    let leaves = reader.leaves(250, 270, head).await.unwrap();
    assert_eq!(leaves.as_slice(), &tree.leaves[250..270]);
    let index = rng.range(0, stored - 1);
    assert_eq!(
        reader.leaf_hash(index, head).await.unwrap(),
        tree.leaf_hash(index)
    );
}

#[tokio::test]
async fn a_toml_object_store_config_opens_the_shard_under_the_bucket_prefix() {
    let moto = Moto::start().await;
    let toml = format!(
        r#"
        [s3]
        endpoint = "{}"
        bucket = "{BUCKET}"
        prefix = "logs/prod"
        allow_http = true
        access_key_id_file = "{}"
        secret_access_key_file = "{}"
        "#,
        moto.endpoint(),
        moto.secret("access_key_id").display(),
        moto.secret("secret_access_key").display(),
    );
    let config: ObjectStoreConfig = toml::from_str(&toml).unwrap();
    let ObjectStoreConfig::S3(s3) = &config else {
        panic!("{config:?}")
    };
    assert_eq!(s3.region, "us-east-1");
    assert!(!s3.virtual_hosted_style);
    let store = TileStore::open(&config, PREFIX, TileStoreOptions::default()).unwrap();
    assert_eq!(store.prefix(), "logs/prod/dev");
    assert_eq!(store.checkpoint_lock_file(), None);
    let bytes = note(ORIGIN, 3, roots(3)[3], 0);
    store.put_checkpoint(3, bytes.clone()).await.unwrap();

    let keys: Vec<String> = store
        .object_store()
        .list(Some(&Path::from("logs")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys, vec!["logs/prod/dev/checkpoint".to_owned()]);
    assert_eq!(store.checkpoint().await.unwrap().unwrap(), bytes);
}

#[tokio::test]
async fn a_missing_bucket_is_a_backend_error_not_an_empty_log() {
    let moto = Moto::start().await;
    let mut config = moto.config();
    config.bucket = "no-such-bucket".into();
    let store = TileStore::s3(&config, PREFIX, TileStoreOptions::default()).unwrap();
    let err = tokio::time::timeout(DEADLINE, store.checkpoint())
        .await
        .expect("answered within the deadline")
        .unwrap_err();
    // Not `Ok(None)` nor `NotFound`: a missing bucket must not read as a
    // log with no checkpoint yet.
    assert!(matches!(err, StorageError::Backend { .. }), "{err:?}");
    assert!(!err.is_fatal() && !err.is_retryable());
}

#[tokio::test]
async fn objects_on_s3_carry_the_headers_a_cdn_needs() {
    let moto = Moto::start().await;
    let store = moto.store();
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    common::publish(&store, &tree, 300).await;
    // Read as a CDN in front of the bucket would (signed: moto refuses
    // anonymous reads), looking at the headers the server answers with.
    for (key, content_type, cache_control) in [
        (
            "tile/0/000",
            "application/octet-stream",
            cairn_storage::FULL_TILE_CACHE_CONTROL,
        ),
        (
            "tile/entries/000",
            "application/octet-stream",
            cairn_storage::FULL_TILE_CACHE_CONTROL,
        ),
        (
            "tile/0/001.p/44",
            "application/octet-stream",
            cairn_storage::PARTIAL_TILE_CACHE_CONTROL,
        ),
        (
            "tile/1/000.p/1",
            "application/octet-stream",
            cairn_storage::PARTIAL_TILE_CACHE_CONTROL,
        ),
        (CHECKPOINT_KEY, "text/plain; charset=utf-8", "no-cache"),
    ] {
        let got = store
            .object_store()
            .get(&Path::from(format!("{PREFIX}/{key}")))
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e}"));
        let header = |a: Attribute| got.attributes.get(&a).map(|v| v.as_ref().to_owned());
        assert_eq!(
            header(Attribute::ContentType).as_deref(),
            Some(content_type),
            "{key}"
        );
        assert_eq!(
            header(Attribute::CacheControl).as_deref(),
            Some(cache_control),
            "{key}"
        );
    }
}

#[tokio::test]
async fn superseded_partials_are_collected_on_s3() {
    let moto = Moto::start().await;
    let store = moto.store();
    let mut tree = Tree::new();
    for n in [1, 3, 60, 200, 56, 300] {
        tree.grow(&store, n).await;
    }
    let size = tree.size();
    common::publish(&store, &tree, size).await;
    let before = common::stored_partials(&store).await;
    // Another host's writer: it knows the partials only from a listing.
    let successor = moto.store();
    assert_eq!(successor.scan_partials().await.unwrap(), before.len());
    let report = successor.collect_partials(size).await.unwrap();
    assert!(report.deleted > 0 && report.failed == 0, "{report:?}");
    let after = common::stored_partials(&store).await;
    assert_eq!(after.len(), before.len() - report.deleted);
    for old in [1, 4, 64, 264] {
        common::check_size(&moto.store(), &tree, old, size, &[0, old - 1]).await;
    }
}
