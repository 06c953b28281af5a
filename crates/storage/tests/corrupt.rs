//! Corrupt objects in storage are reported as `Corrupt` (fatal), never as a
//! panic and never served.

mod common;

use cairn_storage::{Corruption, StorageError};
use common::{Tree, overwrite_raw, reopen, temp_store};

fn assert_corrupt(err: &StorageError, key: &str) {
    assert!(
        matches!(err, StorageError::Corrupt { path, .. } if path == key),
        "expected Corrupt for {key}, got {err:?}"
    );
    assert!(err.is_fatal());
}

#[tokio::test]
async fn a_hash_tile_of_garbage_is_corrupt_for_proofs_and_get() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    overwrite_raw(&store, "tile/0/001.p/44", vec![0xAB; 33]).await;
    let fresh = reopen(&dir);
    assert_corrupt(
        &fresh
            .inclusion_proof(299, 300, tree.head(300))
            .await
            .unwrap_err(),
        "tile/0/001.p/44",
    );
    assert_corrupt(
        &fresh.root(299, tree.head(300)).await.unwrap_err(),
        "tile/0/001.p/44",
    );
    assert_corrupt(
        &fresh.leaf_hash(260, tree.head(300)).await.unwrap_err(),
        "tile/0/001.p/44",
    );
    assert_corrupt(
        &fresh.get("tile/0/001.p/44").await.unwrap_err(),
        "tile/0/001.p/44",
    );
    assert_corrupt(&fresh.resume(300).await.unwrap_err(), "tile/0/001.p/44");
}

#[tokio::test]
async fn a_full_tile_of_the_wrong_width_is_corrupt_and_not_cached() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    overwrite_raw(&store, "tile/0/000", vec![0; 255 * 32]).await;
    let fresh = reopen(&dir);
    let err = fresh
        .inclusion_proof(3, 300, tree.head(300))
        .await
        .unwrap_err();
    assert_corrupt(&err, "tile/0/000");
    assert!(
        matches!(
            err,
            StorageError::Corrupt {
                reason: Corruption::Tile(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fresh.cache_usage(), (0, 0));
    // A tile far larger than any tile is refused without reading it.
    overwrite_raw(&store, "tile/0/000", vec![0; 100_000]).await;
    let err = reopen(&dir).get("tile/0/000").await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Corrupt {
                reason: Corruption::TooLarge { len: 100_000, .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_malformed_bundle_is_corrupt_for_leaves() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    // Truncated in the middle of an entry.
    overwrite_raw(&store, "tile/entries/001.p/44", vec![0, 128, 1, 2, 3]).await;
    let err = reopen(&dir)
        .leaves(256, 260, tree.head(300))
        .await
        .unwrap_err();
    assert_corrupt(&err, "tile/entries/001.p/44");
    // Well-formed, right width, but entries that are not the log's leaves
    // (nor even Sigsum leaves): they do not hash to the tile's leaf hashes.
    let short: Vec<Vec<u8>> = (0..44).map(|_| vec![1u8; 5]).collect();
    let bytes = cairn_tlog::tile::encode_bundle(&short).unwrap();
    overwrite_raw(&store, "tile/entries/001.p/44", bytes).await;
    let err = reopen(&dir)
        .leaves(256, 260, tree.head(300))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Corrupt {
                reason: Corruption::EntryHashMismatch { entry: 0, .. },
                ref path,
            } if path == "tile/entries/001.p/44"
        ),
        "{err:?}"
    );
    // Leaves from intact bundles are still served.
    let ok = reopen(&dir).leaves(0, 10, tree.head(300)).await.unwrap();
    assert_eq!(ok.as_slice(), &tree.leaves[..10]);
}
