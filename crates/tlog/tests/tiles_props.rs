//! Property tests for `cairn_tlog::tile`: path round-trips and canonicality,
//! totality on junk input, the tile builder against from-scratch builds and an
//! independent RFC 6962 root, the create-only invariant, node lookups, and
//! bundle/tile codec round-trips.

use std::collections::HashMap;
use std::sync::OnceLock;

use cairn_tlog::proof::NodeId;
use cairn_tlog::tile::{
    BundleBuilder, BundleId, HASH_SIZE, TileBuilder, TileId, TilePath, bundles_for_size,
    decode_bundle, decode_hash_tile, encode_bundle, encode_hash_tile, new_bundles, new_hash_tiles,
    node_hash_from_tile, node_tile, parse_path, partial_bundle_for_size, partial_tiles_for_size,
    tiles_for_size,
};
use cairn_tlog::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
use proptest::prelude::*;

/// Enough leaves for level-1 tiles to fill up and a level-2 tile to appear.
const MAX_LEAVES: usize = 140_000;

fn all_leaf_hashes() -> &'static [Hash] {
    static LEAVES: OnceLock<Vec<Hash>> = OnceLock::new();
    LEAVES.get_or_init(|| {
        (0..MAX_LEAVES as u64)
            .map(|i| leaf_hash(&i.to_be_bytes()))
            .collect()
    })
}

/// RFC 6962 Merkle Tree Hash by its recursive definition (split at the
/// largest power of two below n), independent of the crate's code paths.
fn mth(hashes: &[Hash]) -> Hash {
    match hashes.len() {
        0 => EMPTY_ROOT,
        1 => hashes[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&mth(&hashes[..k]), &mth(&hashes[k..]))
        }
    }
}

/// A builder resumed at `size` with arbitrary (but well-formed) right-edge
/// tiles, to exercise sizes far beyond what can be built leaf by leaf.
fn builder_at(size: u64) -> TileBuilder {
    let edge =
        partial_tiles_for_size(size).map(|t| (t, vec![0xa5; usize::from(t.width()) * HASH_SIZE]));
    TileBuilder::resume(size, edge).unwrap()
}

/// A tile index spread over the whole u64 range, small values included.
fn any_index() -> impl Strategy<Value = u64> {
    (any::<u64>(), 0u32..64).prop_map(|(raw, shift)| raw >> shift)
}

fn any_tile() -> impl Strategy<Value = TileId> {
    (0u8..8, any_index(), 1u16..=256).prop_filter_map("tile beyond u64 trees", |(l, i, w)| {
        TileId::new(l, i, w).ok()
    })
}

fn any_bundle() -> impl Strategy<Value = BundleId> {
    (any_index(), 1u16..=256)
        .prop_filter_map("bundle beyond u64 trees", |(i, w)| BundleId::new(i, w).ok())
}

fn any_path() -> impl Strategy<Value = TilePath> {
    prop_oneof![
        any_tile().prop_map(TilePath::Hash),
        any_bundle().prop_map(TilePath::Entries),
    ]
}

/// Batch sizes that sometimes cross tile boundaries and sometimes stay inside one.
fn batches(max_batch: usize, max_batches: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![0..4usize, 0..300usize, 0..=max_batch],
        1..=max_batches,
    )
}

/// Grows a tree in `batches` and checks, after every batch, that the builder
/// (a) published the same tiles a from-scratch build of that size does,
/// (b) never rewrote a tile, so a full tile's bytes never change, and
/// (c) reports the RFC 6962 root, and resumes from its right edge.
fn check_growth(batches: &[usize]) -> Result<(), TestCaseError> {
    let leaves = all_leaf_hashes();
    let mut builder = TileBuilder::new();
    let mut published: HashMap<TileId, Vec<u8>> = HashMap::new();
    let mut size = 0usize;
    for &batch in batches {
        let batch = batch.min(leaves.len() - size);
        let old = size as u64;
        size += batch;
        let written = builder.append(&leaves[old as usize..size]).unwrap();
        let ids: Vec<TileId> = written.iter().map(|w| w.id).collect();
        prop_assert_eq!(
            &ids,
            &new_hash_tiles(old, size as u64)
                .unwrap()
                .collect::<Vec<_>>()
        );
        for w in written {
            // Create-only: an id is written once; a second write would have
            // to be byte-identical to be harmless, and none should happen.
            prop_assert!(!published.contains_key(&w.id), "{} written twice", w.id);
            published.insert(w.id, w.bytes);
        }

        let scratch = TileBuilder::new().append(&leaves[..size]).unwrap();
        let scratch_ids: Vec<TileId> = scratch.iter().map(|w| w.id).collect();
        prop_assert_eq!(
            &scratch_ids,
            &tiles_for_size(size as u64).collect::<Vec<_>>()
        );
        for w in &scratch {
            prop_assert_eq!(published.get(&w.id), Some(&w.bytes), "{} differs", w.id);
        }

        prop_assert_eq!(builder.size(), size as u64);
        prop_assert_eq!(builder.root(), mth(&leaves[..size]));
        let edge = builder.partial_tiles().into_iter().map(|w| (w.id, w.bytes));
        prop_assert_eq!(&TileBuilder::resume(size as u64, edge).unwrap(), &builder);
    }
    Ok(())
}

proptest! {
    #[test]
    fn paths_round_trip(path in any_path()) {
        let text = path.to_string();
        prop_assert_eq!(parse_path(&text), Ok(path));
        let min = match path {
            TilePath::Hash(t) => t.min_tree_size(),
            TilePath::Entries(b) => b.min_tree_size(),
        };
        let exists = match path {
            TilePath::Hash(t) => t.exists_at(min),
            TilePath::Entries(b) => b.exists_at(min),
        };
        prop_assert!(exists, "{} does not exist at its minimum size {}", text, min);
    }

    #[test]
    fn junk_never_panics_the_path_parser(s in any::<String>()) {
        let _ = parse_path(&s);
    }

    #[test]
    fn accepted_paths_are_canonical(
        s in "tile/(entries|[0-9]{1,3})/(x?[0-9]{1,4}/){0,7}x?[0-9]{1,4}(\\.p/[0-9]{1,4})?/?"
    ) {
        // Near-miss paths: whatever parses must print back identically, so
        // every tile has exactly one accepted spelling.
        if let Ok(p) = parse_path(&s) {
            prop_assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn mutated_paths_never_panic_and_stay_canonical(
        path in any_path(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = path.to_string().into_bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b"0123456789x/.pentries"[usize::from(b) % 21];
        }
        let s = String::from_utf8(bytes).unwrap();
        if let Ok(p) = parse_path(&s) {
            prop_assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn tiles_for_size_lists_existing_tiles_with_spec_widths(size in 0u64..(1 << 21)) {
        let tiles: Vec<TileId> = tiles_for_size(size).collect();
        prop_assert!(tiles.iter().all(|t| t.exists_at(size)));
        prop_assert!(tiles.windows(2).all(|w| w[0] < w[1]), "not bottom-up, left to right");
        for level in 0..8u8 {
            let count = size >> (8 * u32::from(level));
            let at_level: Vec<&TileId> = tiles.iter().filter(|t| t.level() == level).collect();
            prop_assert_eq!(at_level.len() as u64, count.div_ceil(256));
            let hashes: u64 = at_level.iter().map(|t| u64::from(t.width())).sum();
            prop_assert_eq!(hashes, count);
        }
        let partials: Vec<TileId> = tiles.iter().copied().filter(|t| !t.is_full()).collect();
        prop_assert_eq!(partials, partial_tiles_for_size(size).collect::<Vec<_>>());
        let bundles: Vec<BundleId> = bundles_for_size(size).collect();
        let level0: Vec<TileId> = tiles.iter().copied().filter(|t| t.level() == 0).collect();
        prop_assert_eq!(bundles.iter().map(|b| b.hash_tile()).collect::<Vec<_>>(), level0);
        prop_assert_eq!(bundles.last().copied().filter(|b| !b.is_full()), partial_bundle_for_size(size));
    }

    #[test]
    fn builder_output_is_new_hash_tiles_anywhere_in_u64(
        old in any::<u64>(),
        added in 0usize..600,
    ) {
        let old = old.min(u64::MAX - added as u64);
        let mut b = builder_at(old);
        let written = b.append(&all_leaf_hashes()[..added]).unwrap();
        let ids: Vec<TileId> = written.iter().map(|w| w.id).collect();
        prop_assert_eq!(ids, new_hash_tiles(old, old + added as u64).unwrap().collect::<Vec<_>>());
        prop_assert!(written.iter().all(|w| w.id.exists_at(old + added as u64)));
        prop_assert!(written.iter().all(|w| w.bytes.len() == usize::from(w.id.width()) * HASH_SIZE));
    }

    #[test]
    fn node_hashes_read_from_tiles_are_subtree_roots(
        size in 1u64..3000,
        level in 0u8..12,
        pick in any::<prop::sample::Index>(),
    ) {
        let nodes = size >> level;
        prop_assume!(nodes > 0);
        let index = pick.index(nodes as usize) as u64;
        let leaves = &all_leaf_hashes()[..size as usize];
        let tiles = TileBuilder::new().append(leaves).unwrap();
        let at = node_tile(NodeId { level, index }, size).unwrap();
        prop_assert!(at.tile().exists_at(size));
        let bytes = &tiles.iter().find(|w| w.id == at.tile()).unwrap().bytes;
        let first = (index << level) as usize;
        let expected = mth(&leaves[first..first + (1 << level)]);
        prop_assert_eq!(node_hash_from_tile(&at, bytes).unwrap(), expected);
        // The next node at that level is not yet complete.
        let next = NodeId { level, index: nodes };
        prop_assert!(node_tile(next, size).is_err(), "{:?} is incomplete", next);
    }

    #[test]
    fn bundles_round_trip(entries in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..=256)) {
        let bytes = encode_bundle(&entries).unwrap();
        let decoded = decode_bundle(&bytes).unwrap();
        prop_assert_eq!(&decoded, &entries);
        let id = BundleId::new(0, entries.len() as u16).unwrap();
        prop_assert_eq!(id.decode(&bytes).unwrap(), decoded);
        // Losing the last byte always leaves a truncated entry.
        prop_assert!(decode_bundle(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn hash_tiles_round_trip(n in 1usize..=256) {
        let hashes = &all_leaf_hashes()[..n];
        let bytes = encode_hash_tile(hashes).unwrap();
        prop_assert_eq!(decode_hash_tile(&bytes).unwrap(), hashes);
        prop_assert_eq!(TileId::new(3, 7, n as u16).unwrap().decode(&bytes).unwrap(), hashes);
    }

    #[test]
    fn junk_never_panics_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..9000)) {
        let _ = decode_bundle(&bytes);
        let _ = decode_hash_tile(&bytes);
        let at = node_tile(NodeId { level: 3, index: 5 }, 100).unwrap();
        let _ = node_hash_from_tile(&at, &bytes);
    }

    #[test]
    fn bundle_builder_matches_from_scratch_encoding(steps in batches(600, 6)) {
        let entries: Vec<Vec<u8>> = (0..2000u32).map(|i| i.to_string().into_bytes()).collect();
        let mut b = BundleBuilder::new();
        let mut size = 0usize;
        for step in steps {
            let step = step.min(entries.len() - size);
            let written = b.append(&entries[size..size + step]).unwrap();
            let ids: Vec<BundleId> = written.iter().map(|w| w.id).collect();
            prop_assert_eq!(ids, new_bundles(size as u64, (size + step) as u64).unwrap().collect::<Vec<_>>());
            for w in &written {
                let first = w.id.index() as usize * 256;
                let want = encode_bundle(&entries[first..first + usize::from(w.id.width())]).unwrap();
                prop_assert_eq!(&w.bytes, &want);
            }
            size += step;
            let resumed = BundleBuilder::resume(size as u64, b.partial_bundle().map(|w| w.bytes));
            prop_assert_eq!(resumed.unwrap(), b.clone());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn growing_small_trees_in_random_batches_is_consistent(steps in batches(700, 12)) {
        check_growth(&steps)?;
    }
}

proptest! {
    // Each case rebuilds trees of up to 140k leaves from scratch several times.
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn growing_past_a_full_level1_tile_is_consistent(
        steps in prop::collection::vec(0usize..40_000, 4..=8),
    ) {
        check_growth(&steps)?;
    }
}

#[test]
fn growing_across_level1_and_level2_tile_boundaries_is_consistent() {
    check_growth(&[65_535, 1, 255, 1, 4_000, 65_536, 1]).unwrap();
}
