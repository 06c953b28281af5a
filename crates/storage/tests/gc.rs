//! Garbage collection of superseded partial tiles and bundles: what goes,
//! what never goes, and that every proof still verifies afterwards — read
//! through Cairn's own store and, with none of Cairn's code serving, from a
//! plain static web server over HTTP.

mod common;

use cairn_storage::{HttpConfig, StorageError, TileStore, TileStoreOptions};
use cairn_testvectors::logs::StaticServer;
use cairn_tlog::tile::TilePath;
use common::{PREFIX, Tree, check_size, publish, reopen, stored_partials, temp_store};

/// The batches every test grows its tree by: they cross bundle and tile
/// boundaries and leave partials of many widths behind.
const BATCHES: [u64; 7] = [1, 3, 60, 200, 56, 300, 17];

/// Checks roots, inclusion and consistency proofs of interesting old sizes
/// through `reader` at the latest head; with `old_heads`, also each old
/// tree at its own head, which needs the collected partials' hashes (cut
/// from the full tile or, for a tile still partial such as level 1's, from
/// a wider partial found by listing). And the leaves of each old tree's
/// last bundle, whose partial may be gone.
async fn proofs_verify(reader: &TileStore, tree: &Tree, old_heads: bool) {
    let stored = tree.size();
    for size in [1, 4, 64, 264, 320, 620, stored] {
        let indices = [0, size / 2, size - 1];
        check_size(reader, tree, size, stored, &indices).await;
        let mut heads = vec![tree.head(stored)];
        if old_heads {
            check_size(reader, tree, size, size, &indices).await;
            heads.push(tree.head(size));
        }
        let start = (size - 1) / 256 * 256;
        for trusted in heads {
            let leaves = reader.leaves(start, size, trusted).await.unwrap();
            assert!(
                leaves.as_slice() == &tree.leaves[start as usize..size as usize],
                "leaves {start}..{size} read at size {}",
                trusted.size
            );
        }
    }
}

#[tokio::test]
async fn superseded_partials_are_deleted_and_every_proof_still_verifies() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    for n in BATCHES {
        tree.grow(&store, n).await;
    }
    let size = tree.size();
    publish(&store, &tree, size).await;
    let before = stored_partials(&store).await;
    let outgrown = before.iter().filter(|p| p.superseded_at(size)).count();
    // Seven sizes: seven level-0 partials and bundles, two level-1 widths;
    // all but the right edge of 637 (three objects) outgrown.
    assert_eq!((before.len(), outgrown), (16, 13), "{before:?}");

    // What a client holding an old checkpoint fetches, before collection.
    let old_partials = ["tile/0/001.p/8", "tile/entries/001.p/8", "tile/1/000.p/1"];
    let mut old_bytes = Vec::new();
    for key in old_partials {
        old_bytes.push(common::read_raw(&store, key).await.expect(key));
    }

    let report = store.collect_partials(size).await.unwrap();
    assert_eq!(report.deleted, outgrown);
    assert_eq!((report.failed, report.size), (0, size));
    let after = stored_partials(&store).await;
    // The edge stays a candidate for when the tree outgrows it.
    assert_eq!(report.pending, after.len());
    assert_eq!(after.len(), before.len() - outgrown, "{after:?}");
    for path in &after {
        assert!(!path.superseded_at(size), "{path} survived");
    }
    // The right edge of the published tree is all that is left.
    let mut edge: Vec<TilePath> = cairn_tlog::tile::partial_tiles_for_size(size)
        .map(TilePath::Hash)
        .chain(cairn_tlog::tile::partial_bundle_for_size(size).map(TilePath::Entries))
        .collect();
    edge.sort();
    assert_eq!(after, edge);

    // Served all the same, cut from what the tree grew into.
    for (key, bytes) in old_partials.iter().zip(&old_bytes) {
        assert_eq!(common::read_raw(&store, key).await, None, "{key} collected");
        let served = reopen(&dir)
            .get_verified(key.parse().unwrap(), tree.head(size))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} not served"));
        assert!(served.is_verified());
        assert_eq!(served.bytes().as_ref(), bytes.as_slice(), "{key}");
    }
    proofs_verify(&reopen(&dir), &tree, true).await;
    // From a static web server, with a fresh reader over HTTP, which reads
    // at its latest head as a frontend does (plain HTTP cannot list).
    let server = StaticServer::start(dir.path());
    let http = HttpConfig::new(server.url());
    let reader = TileStore::http(&http, PREFIX, TileStoreOptions::default()).unwrap();
    proofs_verify(&reader, &tree, false).await;
    let served = reader
        .checkpoint()
        .await
        .unwrap()
        .expect("checkpoint over HTTP");
    assert_eq!(
        common::size_and_root(&served),
        (size, tree.roots[size as usize])
    );
}

#[tokio::test]
async fn no_partial_the_published_checkpoint_names_is_ever_deleted() {
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    for n in [1, 3, 60] {
        tree.grow(&store, n).await;
    }
    let published = tree.size();
    publish(&store, &tree, published).await;
    for n in [200, 56] {
        tree.grow(&store, n).await;
    }
    // A caller asking for more than is published gets the published size.
    let report = store.collect_partials(tree.size()).await.unwrap();
    assert_eq!(report.size, published);
    let left = stored_partials(&store).await;
    for id in cairn_tlog::tile::partial_tiles_for_size(published) {
        assert!(
            left.contains(&TilePath::Hash(id)),
            "{id} of the published tree was deleted"
        );
    }
    // Partials of the integrated but unpublished tree stay too.
    for id in cairn_tlog::tile::partial_tiles_for_size(tree.size()) {
        assert!(
            left.contains(&TilePath::Hash(id)),
            "{id} ahead of the checkpoint was deleted"
        );
    }
}

#[tokio::test]
async fn nothing_is_collected_before_a_checkpoint_is_published() {
    let (_dir, store) = temp_store();
    let mut tree = Tree::new();
    for n in [1, 3, 60] {
        tree.grow(&store, n).await;
    }
    let before = stored_partials(&store).await;
    let report = store.collect_partials(u64::MAX).await.unwrap();
    assert_eq!(report.deleted, 0);
    assert_eq!(stored_partials(&store).await, before);
}

#[tokio::test]
async fn a_new_writer_finds_the_leftovers_of_the_last_one_by_listing() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    for n in BATCHES {
        tree.grow(&store, n).await;
    }
    publish(&store, &tree, tree.size()).await;
    let before = stored_partials(&store).await.len();
    drop(store);
    // A new leader's handle knows nothing of what the last one wrote.
    let successor = reopen(&dir);
    assert_eq!(successor.pending_partials(), 0);
    assert_eq!(successor.scan_partials().await.unwrap(), before);
    let report = successor.collect_partials(tree.size()).await.unwrap();
    assert!(report.deleted > 0);
    assert_eq!(
        stored_partials(&successor).await.len(),
        before - report.deleted
    );
    proofs_verify(&reopen(&dir), &tree, true).await;
}

#[tokio::test]
async fn a_tile_url_is_read_only() {
    let (dir, store) = temp_store();
    let mut tree = Tree::new();
    tree.grow(&store, 10).await;
    publish(&store, &tree, 10).await;
    let server = StaticServer::start(dir.path());
    let http = HttpConfig::new(server.url());
    let reader = TileStore::http(&http, PREFIX, TileStoreOptions::default()).unwrap();
    let read_only = |e: StorageError| matches!(e, StorageError::ReadOnly { .. });
    assert!(read_only(
        reader
            .put_create_only("tile/0/000.p/11", vec![0; 352])
            .await
            .unwrap_err()
    ));
    assert!(read_only(
        reader
            .put_checkpoint(10, common::note(common::ORIGIN, 10, tree.roots[10], 0))
            .await
            .unwrap_err()
    ));
    assert!(read_only(reader.scan_partials().await.unwrap_err()));
    assert!(read_only(reader.collect_partials(10).await.unwrap_err()));
    // Missing objects are absent, not errors, as on any store.
    assert_eq!(reader.get("tile/0/001").await.unwrap(), None);
    assert!(reader.get("tile/0/000.p/10").await.unwrap().is_some());
}
