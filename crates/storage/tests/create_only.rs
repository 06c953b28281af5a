//! Create-only tile writes: identical bytes again succeed, different bytes
//! are a fatal fork that never overwrites.

mod common;

use cairn_storage::StorageError;
use cairn_tlog::leaf_hash;
use cairn_tlog::tile::{BundleBuilder, BundleId, BundleWrite, TileBuilder, TileId, TileWrite};
use common::{Tree, leaf, read_raw, reopen, temp_store};

#[tokio::test]
async fn writing_identical_bytes_again_succeeds() {
    let (_dir, store) = temp_store();
    store
        .put_create_only("tile/0/000.p/1", vec![1u8; 32])
        .await
        .unwrap();
    store
        .put_create_only("tile/0/000.p/1", vec![1u8; 32])
        .await
        .unwrap();
    assert_eq!(
        read_raw(&store, "tile/0/000.p/1").await.unwrap(),
        vec![1u8; 32]
    );
}

#[tokio::test]
async fn different_bytes_are_a_fatal_fork_and_the_original_stays() {
    let (_dir, store) = temp_store();
    store
        .put_create_only("tile/0/000.p/1", vec![1u8; 32])
        .await
        .unwrap();
    // Same length, different content; and a different length.
    for other in [vec![2u8; 32], vec![1u8; 64], Vec::new()] {
        let err = store
            .put_create_only("tile/0/000.p/1", other)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::Fork { ref path } if path == "tile/0/000.p/1"),
            "{err:?}"
        );
        assert!(err.is_fatal() && !err.is_retryable());
        assert_eq!(
            read_raw(&store, "tile/0/000.p/1").await.unwrap(),
            vec![1u8; 32]
        );
    }
}

#[tokio::test]
async fn a_rerun_integration_by_a_new_leader_is_a_no_op() {
    let (dir, store) = temp_store();
    let leaves: Vec<[u8; 128]> = (0..300).map(leaf).collect();
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let bundles = BundleBuilder::new().append(&leaves).unwrap();
    let tiles = TileBuilder::new().append(&hashes).unwrap();
    store.write_integration(&bundles, &tiles).await.unwrap();
    // Another process (a new leader) re-runs the same integration.
    let other = reopen(&dir);
    other.write_integration(&bundles, &tiles).await.unwrap();
    for w in &tiles {
        assert_eq!(read_raw(&store, &w.id.path()).await.unwrap(), w.bytes);
    }
    for w in &bundles {
        assert_eq!(read_raw(&store, &w.id.path()).await.unwrap(), w.bytes);
    }
}

#[tokio::test]
async fn concurrent_identical_integrations_both_succeed() {
    let (dir, store) = temp_store();
    let other = reopen(&dir);
    let leaves: Vec<[u8; 128]> = (0..1000).map(leaf).collect();
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let bundles = BundleBuilder::new().append(&leaves).unwrap();
    let tiles = TileBuilder::new().append(&hashes).unwrap();
    let (a, b) = tokio::join!(
        store.write_integration(&bundles, &tiles),
        other.write_integration(&bundles, &tiles)
    );
    a.unwrap();
    b.unwrap();
}

#[tokio::test]
async fn an_integration_that_disagrees_with_stored_tiles_is_a_fork() {
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    // A divergent history for the same sizes: a different leaf 5.
    let mut leaves: Vec<[u8; 128]> = (0..300).map(leaf).collect();
    leaves[5][0] ^= 1;
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let bundles = BundleBuilder::new().append(&leaves).unwrap();
    let tiles = TileBuilder::new().append(&hashes).unwrap();
    let err = store.write_integration(&bundles, &tiles).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Fork { ref path } if path == "tile/entries/000"),
        "{err:?}"
    );
    assert!(err.is_fatal());
    // Bundles are written first, so the divergent tiles were never attempted.
    let err = store.write_integration(&[], &tiles).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Fork { ref path } if path == "tile/0/000"),
        "{err:?}"
    );
    let stored = read_raw(&store, "tile/0/000").await.unwrap();
    assert_eq!(&stored[5 * 32..6 * 32], &tree.leaf_hash(5));
}

#[tokio::test]
async fn bytes_that_do_not_match_their_id_are_refused_before_any_write() {
    let (_dir, store) = temp_store();
    let good = TileWrite {
        id: TileId::new(0, 0, 1).unwrap(),
        bytes: vec![0; 32],
    };
    let bad = TileWrite {
        id: TileId::new(0, 1, 2).unwrap(),
        bytes: vec![0; 32],
    };
    let err = store
        .write_integration(&[], &[good.clone(), bad])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidWrite { ref path, .. } if path == "tile/0/001.p/2"),
        "{err:?}"
    );
    assert_eq!(read_raw(&store, &good.id.path()).await, None);
    let bad_bundle = BundleWrite {
        id: BundleId::new(0, 2).unwrap(),
        bytes: vec![0, 1, 7],
    };
    let err = store
        .write_integration(&[bad_bundle], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidWrite { .. }), "{err:?}");
}

#[tokio::test]
async fn keys_that_could_escape_the_prefix_are_refused() {
    let (_dir, store) = temp_store();
    for key in [
        "../checkpoint",
        "/tile/0/000",
        "tile//0",
        "",
        "tile/0/000#1",
    ] {
        let err = store.put_create_only(key, vec![0u8; 32]).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidKey { .. }),
            "{key}: {err:?}"
        );
    }
    for key in [
        "../checkpoint",
        "tile/0/0",
        "tile/0/000.p/256",
        "index.html",
    ] {
        let err = store.get(key).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidKey { .. }),
            "{key}: {err:?}"
        );
    }
}

#[tokio::test]
async fn tiles_are_written_only_after_their_data_and_lower_levels() {
    let leaves: Vec<[u8; 128]> = (0..300).map(leaf).collect();
    let hashes: Vec<_> = leaves.iter().map(|l| leaf_hash(l)).collect();
    let bundles = BundleBuilder::new().append(&leaves).unwrap();
    let tiles = TileBuilder::new().append(&hashes).unwrap();

    // A bundle write fails (fatally): no hash tile may have been written.
    let (_dir, store) = temp_store();
    store
        .put_create_only("tile/entries/000", vec![0, 1, 9])
        .await
        .unwrap();
    let err = store.write_integration(&bundles, &tiles).await.unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
    for w in &tiles {
        assert_eq!(read_raw(&store, &w.id.path()).await, None, "{}", w.id);
    }

    // A level-0 tile write fails: the level-1 tile must not exist.
    let (_dir, store) = temp_store();
    store
        .put_create_only("tile/0/000", vec![0u8; 256 * 32])
        .await
        .unwrap();
    let err = store.write_integration(&bundles, &tiles).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Fork { ref path } if path == "tile/0/000"),
        "{err:?}"
    );
    assert_eq!(read_raw(&store, "tile/1/000.p/1").await, None);
    for w in &bundles {
        assert_eq!(read_raw(&store, &w.id.path()).await.unwrap(), w.bytes);
    }
}
