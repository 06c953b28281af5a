//! Resuming the builders from storage after an integrator restart (e.g. on a
//! new Raft leader): the resumed builders produce exactly the tiles an
//! uninterrupted integrator would have.

mod common;

use cairn_storage::{Corruption, StorageError};
use cairn_tlog::leaf_hash;
use cairn_tlog::tile::{BundleBuilder, TileBuilder};
use common::{Rng, Tree, delete_raw, leaf, overwrite_raw, read_raw, reopen, temp_store};

#[tokio::test]
async fn resume_after_a_restart_continues_with_identical_tiles() {
    let mut rng = Rng::new(0x5eed_0003);
    for target in [0u64, 1, 255, 256, 257, 65_536, 65_537, 70_123] {
        let (dir, store) = temp_store();
        let mut tree = Tree::new();
        while tree.size() < target {
            let n = rng.range(1, 20_000).min(target - tree.size());
            tree.grow(&store, n).await;
        }
        // "Restart": a new process with nothing but the store.
        let restarted = reopen(&dir);
        let (mut tiles, mut bundles) = restarted.resume(target).await.unwrap();
        assert_eq!(tiles, tree.tiles, "tile builder at {target}");
        assert_eq!(bundles, tree.bundles, "bundle builder at {target}");
        assert_eq!(tiles.root(), tree.roots[target as usize]);
        // Both continue with the same leaves and must emit the same objects.
        for n in [1u64, 300, 700] {
            let start = tree.size();
            let batch: Vec<[u8; 128]> = (start..start + n).map(leaf).collect();
            let hashes: Vec<_> = batch.iter().map(|l| leaf_hash(l)).collect();
            let resumed_bundles = bundles.append(&batch).unwrap();
            let resumed_tiles = tiles.append(&hashes).unwrap();
            tree.grow(&store, n).await;
            restarted
                .write_integration(&resumed_bundles, &resumed_tiles)
                .await
                .expect("identical objects are accepted");
            for w in &resumed_tiles {
                assert_eq!(read_raw(&store, &w.id.path()).await.unwrap(), w.bytes);
            }
            assert_eq!(tiles, tree.tiles);
        }
    }
}

#[tokio::test]
async fn a_new_leader_resumes_from_an_older_integrated_size() {
    // The old leader wrote tiles up to 5000 but Raft only recorded 3000 as
    // integrated; the new leader resumes at 3000 and re-runs integration.
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 3000).await;
    let reference_at_3000 = (tree.tiles.clone(), tree.bundles.clone());
    tree.grow(&store, 2000).await;
    let leader = reopen(&dir);
    let (mut tiles, mut bundles) = leader.resume(3000).await.unwrap();
    assert_eq!((tiles.clone(), bundles.clone()), reference_at_3000);
    let batch: Vec<[u8; 128]> = (3000..5000).map(leaf).collect();
    let hashes: Vec<_> = batch.iter().map(|l| leaf_hash(l)).collect();
    let b = bundles.append(&batch).unwrap();
    let t = tiles.append(&hashes).unwrap();
    leader.write_integration(&b, &t).await.unwrap();
    assert_eq!(tiles, tree.tiles);
    assert_eq!(bundles, tree.bundles);
}

#[tokio::test]
async fn resume_recovers_garbage_collected_partials_from_full_tiles() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 200).await;
    let at_200 = (tree.tiles.clone(), tree.bundles.clone());
    tree.grow(&store, 100).await; // tile/0/000 and bundle 000 now full
    delete_raw(&store, "tile/0/000.p/200").await;
    delete_raw(&store, "tile/entries/000.p/200").await;
    let (tiles, bundles) = reopen(&dir).resume(200).await.unwrap();
    assert_eq!((tiles, bundles), at_200);
}

#[tokio::test]
async fn resume_with_a_missing_partial_tile_is_not_found() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    delete_raw(&store, "tile/1/000.p/1").await;
    let err = reopen(&dir).resume(300).await.unwrap_err();
    assert!(
        matches!(err, StorageError::NotFound { ref path } if path == "tile/1/000.p/1"),
        "{err:?}"
    );
    // A size that was never written at all.
    let err = reopen(&dir).resume(301).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn resume_refuses_a_bundle_that_disagrees_with_its_tile() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 5).await;
    // A well-formed bundle of the right width but other leaves.
    let other: Vec<[u8; 128]> = (100..105).map(leaf).collect();
    let forged = BundleBuilder::new().append(&other).unwrap();
    overwrite_raw(&store, "tile/entries/000.p/5", forged[0].bytes.clone()).await;
    let err = reopen(&dir).resume(5).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Corrupt {
                reason: Corruption::LeafHashMismatch { entry: 0 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_fatal());
    // The untouched store resumes fine at a size with no partial bundle.
    let (tiles, _) = store.resume(0).await.unwrap();
    assert_eq!(tiles, TileBuilder::new());
}
