//! Merkle reads from tiles: a tree grown in random batches through the real
//! builders serves leaves, roots, inclusion and consistency proofs that
//! verify against roots computed independently with `CompactRange`, at the
//! current size and at older sizes, without needing old partial tiles.

mod common;

use std::collections::BTreeSet;

use cairn_storage::{MAX_LEAVES_PER_CALL, StorageError, TileObject, TileStore, TrustedHead};
use cairn_tlog::proof::{ProofError, verify_consistency};
use cairn_tlog::tile::{TilePath, parse_path, partial_tiles_for_size};
use common::{Rng, Tree, check_size, delete_raw, reopen, stored_partials, temp_store};

#[tokio::test]
async fn growing_tree_serves_verifiable_proofs_at_every_batch_size() {
    let seed = 0x5eed_0001;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    let mut sizes = vec![];
    // Past 65536 leaves, so that level-1 tiles fill and level 2 appears.
    while tree.size() < 70_000 {
        // Mostly small batches (as integrations are), some large ones.
        let n = if rng.range(0, 9) == 0 {
            rng.range(1000, 9000)
        } else {
            rng.range(1, 600)
        };
        tree.grow(&store, n).await;
        let stored = tree.size();
        sizes.push(stored);
        // The current size, and every earlier batch boundary in a sample.
        let mut old: BTreeSet<u64> = (0..4)
            .map(|_| sizes[rng.range(0, sizes.len() as u64 - 1) as usize])
            .collect();
        old.insert(stored);
        old.insert(1);
        for &size in &old {
            let indices: Vec<u64> = (0..3).map(|_| rng.range(0, size - 1)).collect();
            check_size(&store, &tree, size, stored, &indices).await;
        }
        let start = rng.range(0, stored - 1);
        let end = rng.range(start + 1, stored.min(start + 700));
        let leaves = store.leaves(start, end, tree.head(stored)).await.unwrap();
        let expected_end = end.min(start + MAX_LEAVES_PER_CALL);
        assert_eq!(
            leaves.as_slice(),
            &tree.leaves[start as usize..expected_end as usize],
            "leaves [{start}, {end}) at {stored}"
        );
        let index = rng.range(0, stored - 1);
        assert_eq!(
            store.leaf_hash(index, tree.head(stored)).await.unwrap(),
            tree.leaf_hash(index)
        );
    }

    // Garbage-collect every partial tile except those of the current size,
    // then serve proofs for the older sizes from a fresh process.
    let stored = tree.size();
    let keep: BTreeSet<TilePath> = partial_tiles_for_size(stored)
        .map(TilePath::Hash)
        .chain(cairn_tlog::tile::partial_bundle_for_size(stored).map(TilePath::Entries))
        .collect();
    let mut deleted = 0;
    for p in stored_partials(&store).await {
        if !keep.contains(&p) {
            delete_raw(&store, &p.path()).await;
            deleted += 1;
        }
    }
    assert!(deleted > 50, "only {deleted} old partial objects to delete");
    assert_eq!(stored_partials(&store).await.len(), keep.len());
    let fresh = reopen(&dir);
    for &size in &sizes {
        let indices = [0, size / 2, size - 1];
        check_size(&fresh, &tree, size, stored, &indices).await;
        for &other in &sizes {
            if other <= size {
                let proof = fresh
                    .consistency_proof(other, size, tree.head(stored))
                    .await
                    .unwrap();
                verify_consistency(
                    other,
                    size,
                    &proof,
                    &tree.roots[other as usize],
                    &tree.roots[size as usize],
                )
                .unwrap();
            }
        }
        let start = size - 1;
        assert_eq!(
            fresh.leaves(start, size, tree.head(stored)).await.unwrap(),
            [tree.leaves[start as usize]]
        );
    }
}

#[tokio::test]
async fn every_proof_of_a_small_tree_verifies() {
    let mut rng = Rng::new(0x5eed_0002);
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    while tree.size() < 600 {
        let n = rng.range(1, 90);
        tree.grow(&store, n).await;
    }
    let stored = tree.size();
    // Every size, including ones that were never a batch boundary.
    for size in 1..=stored {
        let root = store.root(size, tree.head(stored)).await.unwrap();
        assert_eq!(root, tree.roots[size as usize], "root of {size}");
        let proof = store
            .consistency_proof(size, stored, tree.head(stored))
            .await
            .unwrap();
        verify_consistency(
            size,
            stored,
            &proof,
            &tree.roots[size as usize],
            &tree.roots[stored as usize],
        )
        .unwrap();
    }
    // Every leaf in every 11th size (and the full size).
    for size in (1..=stored).step_by(11).chain([stored]) {
        let indices: Vec<u64> = (0..size).collect();
        check_size(&store, &tree, size, stored, &indices).await;
    }
    assert_eq!(
        store.root(0, tree.head(stored)).await.unwrap(),
        cairn_tlog::EMPTY_ROOT
    );
}

#[tokio::test]
async fn a_partial_tile_gone_after_its_tile_filled_is_read_from_the_full_tile() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 100).await;
    tree.grow(&store, 200).await; // tile 0 and bundle 0 are now full
    delete_raw(&store, "tile/0/000.p/100").await;
    delete_raw(&store, "tile/entries/000.p/100").await;
    let fresh = reopen(&dir);
    // A reader still on the old stored size 100.
    check_size(&fresh, &tree, 57, 100, &[0, 13, 56]).await;
    check_size(&fresh, &tree, 100, 100, &[99]).await;
    assert_eq!(
        fresh
            .leaves(90, 100, tree.head(100))
            .await
            .unwrap()
            .as_slice(),
        &tree.leaves[90..100]
    );
    // The exact object is gone, and `get` serves objects verbatim.
    assert_eq!(fresh.get("tile/0/000.p/100").await.unwrap(), None);
}

#[tokio::test]
async fn leaves_are_clamped_to_512_and_cross_bundles() {
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 1290).await;
    tree.grow(&store, 10).await;
    let got = store.leaves(10, 1300, tree.head(1300)).await.unwrap();
    assert_eq!(got.len() as u64, MAX_LEAVES_PER_CALL);
    assert_eq!(got.as_slice(), &tree.leaves[10..522]);
    // A range within a partial bundle, read at an older stored size.
    let got = store.leaves(1280, 1290, tree.head(1290)).await.unwrap();
    assert_eq!(got.as_slice(), &tree.leaves[1280..1290]);
}

#[tokio::test]
async fn reads_outside_the_stored_tree_are_refused() {
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 10).await;
    let err = store.leaves(5, 11, tree.head(10)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::SizeBeyondTrusted {
                size: 11,
                trusted_size: 10
            }
        ),
        "{err:?}"
    );
    let err = store.leaves(5, 5, tree.head(10)).await.unwrap_err();
    assert!(matches!(err, StorageError::EmptyRange { .. }), "{err:?}");
    let err = store
        .inclusion_proof(0, 11, tree.head(10))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::SizeBeyondTrusted { .. }),
        "{err:?}"
    );
    let err = store
        .inclusion_proof(10, 10, tree.head(10))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Proof(ProofError::IndexOutOfRange {
                index: 10,
                size: 10
            })
        ),
        "{err:?}"
    );
    let err = store
        .consistency_proof(6, 5, tree.head(10))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Proof(_)), "{err:?}");
    let err = store.root(11, tree.head(10)).await.unwrap_err();
    assert!(
        matches!(err, StorageError::SizeBeyondTrusted { .. }),
        "{err:?}"
    );
    let err = store.leaf_hash(10, tree.head(10)).await.unwrap_err();
    assert!(matches!(err, StorageError::Proof(_)), "{err:?}");
    assert!(!err.is_fatal() && !err.is_retryable());
}

#[tokio::test]
async fn a_trusted_size_whose_tiles_are_missing_is_not_found() {
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 10).await;
    // The caller trusts a head of 20 leaves; their tiles are not written.
    let head = TrustedHead::new(20, [7; 32]);
    let err = store.inclusion_proof(3, 10, head).await.unwrap_err();
    assert!(
        matches!(err, StorageError::NotFound { ref path } if path == "tile/0/000.p/20"),
        "{err:?}"
    );
    let err = store.leaves(0, 10, head).await.unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }), "{err:?}");
}

async fn get_verified(store: &TileStore, key: &str, head: TrustedHead) -> Option<TileObject> {
    store
        .get_verified(parse_path(key).unwrap(), head)
        .await
        .unwrap()
}

#[tokio::test]
async fn verified_full_tiles_are_cached_and_served_verbatim() {
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 300).await;
    let head = tree.head(300);
    // Unverified reads never fill the cache.
    store.get("tile/0/000").await.unwrap().unwrap();
    store.get("tile/entries/000").await.unwrap().unwrap();
    assert_eq!(store.cache_usage(), (0, 0));
    let full = get_verified(&store, "tile/0/000", head).await.unwrap();
    assert!(full.is_verified());
    assert_eq!(full.bytes().len(), 256 * 32);
    assert_eq!(&full.bytes()[32..64], &tree.leaf_hash(1));
    let partial = get_verified(&store, "tile/0/001.p/44", head).await.unwrap();
    assert!(partial.is_verified());
    assert_eq!(partial.bytes().len(), 44 * 32);
    let bundle = get_verified(&store, "tile/entries/000", head)
        .await
        .unwrap();
    assert!(bundle.is_verified());
    // Only the two full objects are cached.
    assert_eq!(store.cache_usage().0, 2);
    let key = parse_path("tile/0/000").unwrap();
    assert_eq!(store.cached(key).as_ref(), Some(full.bytes()));
    assert_eq!(store.cached(parse_path("tile/0/001.p/44").unwrap()), None);
    // A cached full tile is served even after the object is gone: full
    // tiles never change, so the cache needs no invalidation.
    delete_raw(&store, "tile/0/000").await;
    assert_eq!(get_verified(&store, "tile/0/000", head).await, Some(full));
    assert_eq!(get_verified(&store, "tile/0/002", head).await, None);
}
