//! Known-answer tests for `cairn_tlog::tile` against `testdata/vectors`.
//!
//! Vectors exercised (paths relative to `testdata/vectors`):
//! * `c2sp/tlog-tiles-path-examples.tsv` — every row (index paths, tiles for
//!   sizes 70000 and 256, full tile size, partial width formula).
//! * `tessera/testdata-log/` — `KEYS.txt` (the 15 leaves), `tile/0/000.p/1..15`,
//!   `tile/entries/000.p/1..15`, `checkpoint.0..15` and `checkpoint` (roots).
//! * `sunlight/skylight-witness/mirror-tree/` — `checkpoint` (root at size 300),
//!   `tile/0/000`, `tile/0/001.p/44`, `tile/1/000.p/1`.
//! * `sunlight/navigli2025h2/tile/0/` — `000`, `001`, `002`, `003`, `003.p/10`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cairn_tlog::proof::{self, NodeId};
use cairn_tlog::tile::{
    BundleBuilder, BundleId, FULL_TILE_BYTES, TileBuilder, TileError, TileId, TilePath,
    bundles_for_size, decode_hash_tile, encode_bundle, encode_hash_tile, node_hash_from_tile,
    node_tile, parse_path, partial_tiles_for_size, tile_root, tiles_for_size,
};
use cairn_tlog::{EMPTY_ROOT, Hash, leaf_hash};

const TESSERA: &str = "tessera/testdata-log";
const MIRROR: &str = "sunlight/skylight-witness/mirror-tree";
const NAVIGLI: &str = "sunlight/navigli2025h2";

/// Size and root of a checkpoint file (second and third lines of its body).
fn checkpoint(rel: &str) -> (u64, Hash) {
    let text = cairn_testvectors::text(rel);
    let mut lines = text.lines();
    let _origin = lines.next();
    let size = lines
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{rel}: no size line"));
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .and_then(|r| Hash::try_from(r).ok())
        .unwrap_or_else(|| panic!("{rel}: no root line"));
    (size, root)
}

/// A tile or bundle of one vector log, read by its canonical path.
fn object(log: &str, path: impl std::fmt::Display) -> Vec<u8> {
    cairn_testvectors::bytes(&format!("{log}/{path}"))
}

/// The tree root at `size`, computed only from the log's published tiles:
/// each complete subtree of the root is located with `node_tile` and hashed
/// with `node_hash_from_tile`.
fn root_from_tiles(log: &str, size: u64) -> Hash {
    proof::tree_root(size, |node| node_from_tiles(log, size, node)).unwrap()
}

fn node_from_tiles(log: &str, size: u64, node: NodeId) -> Result<Hash, TileError> {
    let at = node_tile(node, size)?;
    node_hash_from_tile(&at, &object(log, at.tile()))
}

fn paths<T: ToString>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    items.into_iter().map(|t| t.to_string()).collect()
}

// ---- c2sp/tlog-tiles-path-examples.tsv -------------------------------------

/// Per level: (number of full tiles, width of the partial tile or 0), parsed
/// from e.g. "level0: 273 full + partial width 112; level2: partial width 1".
fn parse_level_description(text: &str) -> Vec<(u8, u64, u16)> {
    text.split("; ")
        .map(|part| {
            let (level, rest) = part.split_once(": ").expect("levelN: ...");
            let level: u8 = level.strip_prefix("level").unwrap().parse().unwrap();
            let (mut full, mut partial) = (0, 0);
            for piece in rest.split(" + ") {
                if let Some(n) = piece.strip_suffix(" full") {
                    full = n.parse().unwrap();
                } else if let Some(w) = piece.strip_prefix("partial width ") {
                    partial = w.parse().unwrap();
                } else {
                    panic!("unknown piece {piece:?} in {text:?}");
                }
            }
            (level, full, partial)
        })
        .collect()
}

/// What `tiles_for_size` says, in the same shape.
fn describe_levels(size: u64) -> Vec<(u8, u64, u16)> {
    let mut out: Vec<(u8, u64, u16)> = Vec::new();
    for tile in tiles_for_size(size) {
        if out.last().is_none_or(|l| l.0 != tile.level()) {
            out.push((tile.level(), 0, 0));
        }
        let last = out.last_mut().unwrap();
        if tile.is_full() {
            last.1 += 1;
        } else {
            assert_eq!(last.2, 0, "two partial tiles at level {}", tile.level());
            last.2 = tile.width();
        }
    }
    out
}

#[test]
fn c2sp_path_examples_hold_for_every_row() {
    let tsv = cairn_testvectors::text("c2sp/tlog-tiles-path-examples.tsv");
    let mut rows = 0;
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [kind, input, expected] = fields[..] else {
            panic!("malformed row {line:?}");
        };
        rows += 1;
        match kind {
            "tile_index_path" => {
                let index: u64 = input.parse().unwrap();
                let tile = TileId::full(0, index).unwrap();
                assert_eq!(tile.path(), format!("tile/0/{expected}"));
                let bundle = BundleId::full(index).unwrap();
                assert_eq!(bundle.path(), format!("tile/entries/{expected}"));
                assert_eq!(parse_path(&tile.path()), Ok(TilePath::Hash(tile)));
                assert_eq!(parse_path(&bundle.path()), Ok(TilePath::Entries(bundle)));
            }
            "tiles_for_tree_size" => {
                let size: u64 = input.parse().unwrap();
                assert_eq!(
                    describe_levels(size),
                    parse_level_description(expected),
                    "tree size {size}"
                );
            }
            "full_tile_bytes" => {
                let hashes: usize = input.strip_suffix(" hashes").unwrap().parse().unwrap();
                let bytes: usize = expected.parse().unwrap();
                assert_eq!(FULL_TILE_BYTES, bytes);
                let tile = encode_hash_tile(&vec![[0u8; 32]; hashes]).unwrap();
                assert_eq!(tile.len(), bytes);
                assert!(TileId::full(0, 0).unwrap().decode(&tile).is_ok());
            }
            "partial_tile_width_formula" => {
                assert!(
                    expected.starts_with("floor(s / 256^l) mod 256"),
                    "{expected}"
                );
                check_partial_width_formula();
            }
            _ => panic!("row kind {kind:?} has no test: add one"),
        }
    }
    assert_eq!(rows, 5);
}

/// floor(s / 256^l) mod 256 is the partial width at level l, 0 meaning none.
fn check_partial_width_formula() {
    let sizes = [
        0,
        1,
        255,
        256,
        257,
        65_535,
        65_536,
        70_000,
        16_777_217,
        (1 << 40) + 12_345,
        u64::MAX - 1,
        u64::MAX,
    ];
    for s in sizes {
        let partials: Vec<TileId> = partial_tiles_for_size(s).collect();
        for l in 0..8u8 {
            let want = (s / 256u64.pow(u32::from(l))) % 256;
            let got = partials.iter().find(|t| t.level() == l);
            assert_eq!(got.map_or(0, |t| u64::from(t.width())), want, "s={s} l={l}");
        }
        if s <= 1 << 20 {
            let from_all: Vec<TileId> = tiles_for_size(s).filter(|t| !t.is_full()).collect();
            assert_eq!(from_all, partials, "s={s}");
        }
    }
}

// ---- tessera/testdata-log -----------------------------------------------------

fn tessera_leaves() -> Vec<Vec<u8>> {
    let keys = cairn_testvectors::text(&format!("{TESSERA}/KEYS.txt"));
    let mut lines = keys.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("Leaves, in order"))
        .expect("KEYS.txt lists the leaves");
    let leaves: Vec<Vec<u8>> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|w| w.as_bytes().to_vec())
        .collect();
    assert_eq!(leaves.len(), 15);
    assert_eq!(leaves[0], b"one");
    assert_eq!(leaves[14], b"fivten");
    leaves
}

#[test]
fn tessera_level0_tiles_are_the_concatenated_leaf_hashes() {
    let leaves = tessera_leaves();
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    for n in 1..=15u16 {
        let id = TileId::new(0, 0, n).unwrap();
        let bytes = object(TESSERA, id);
        assert_eq!(bytes, hashes[..usize::from(n)].concat(), "size {n}");
        assert_eq!(id.decode(&bytes).unwrap(), &hashes[..usize::from(n)]);
        assert_eq!(paths(tiles_for_size(n.into())), [id.path()]);
    }
}

#[test]
fn tessera_tiles_are_what_the_builder_writes_one_leaf_at_a_time_and_at_once() {
    let hashes: Vec<Hash> = tessera_leaves().iter().map(|l| leaf_hash(l)).collect();
    let mut incremental = TileBuilder::new();
    for (i, h) in hashes.iter().enumerate() {
        let n = i + 1;
        let expected = object(TESSERA, format!("tile/0/000.p/{n}"));
        let step = incremental.append(std::slice::from_ref(h)).unwrap();
        let at_once = TileBuilder::new().append(&hashes[..n]).unwrap();
        for written in [&step, &at_once] {
            assert_eq!(written.len(), 1, "size {n}");
            assert_eq!(written[0].id.path(), format!("tile/0/000.p/{n}"));
            assert_eq!(written[0].bytes, expected, "size {n}");
        }
    }
}

#[test]
fn tessera_bundles_match_encoding_and_decode_back() {
    let leaves = tessera_leaves();
    let mut incremental = BundleBuilder::new();
    for n in 1..=15u16 {
        let id = BundleId::new(0, n).unwrap();
        let first = &leaves[..usize::from(n)];
        let bytes = object(TESSERA, id);
        assert_eq!(encode_bundle(first).unwrap(), bytes, "size {n}");
        assert_eq!(id.decode(&bytes).unwrap(), first);
        assert_eq!(paths(bundles_for_size(n.into())), [id.path()]);

        let step = incremental.append(&first[first.len() - 1..]).unwrap();
        let at_once = BundleBuilder::new().append(first).unwrap();
        for written in [&step, &at_once] {
            assert_eq!(written.len(), 1, "size {n}");
            assert_eq!(written[0].id, id);
            assert_eq!(written[0].bytes, bytes, "size {n}");
        }
        // The hash tile behind the bundle holds the entries' leaf hashes.
        let tile = object(TESSERA, id.hash_tile());
        let entry_hashes: Vec<Hash> = id
            .decode(&bytes)
            .unwrap()
            .iter()
            .map(|e| leaf_hash(e))
            .collect();
        assert_eq!(decode_hash_tile(&tile).unwrap(), entry_hashes);
    }
}

#[test]
fn tessera_checkpoint_roots_are_computed_from_the_tiles() {
    let (size, root) = checkpoint(&format!("{TESSERA}/checkpoint.0"));
    assert_eq!((size, root), (0, EMPTY_ROOT));
    assert_eq!(TileBuilder::new().root(), EMPTY_ROOT);

    for n in 1..=15u16 {
        let (size, root) = checkpoint(&format!("{TESSERA}/checkpoint.{n}"));
        assert_eq!(size, u64::from(n));
        let id = TileId::new(0, 0, n).unwrap();
        let resumed = TileBuilder::resume(size, [(id, object(TESSERA, id))]).unwrap();
        assert_eq!(resumed.root(), root, "builder root at size {n}");
        assert_eq!(
            root_from_tiles(TESSERA, size),
            root,
            "tile root at size {n}"
        );
    }
    assert_eq!(
        checkpoint(&format!("{TESSERA}/checkpoint")),
        checkpoint(&format!("{TESSERA}/checkpoint.15"))
    );
}

#[test]
fn tessera_proofs_served_from_tiles_verify_against_checkpoints() {
    let hashes: Vec<Hash> = tessera_leaves().iter().map(|l| leaf_hash(l)).collect();
    let roots: Vec<Hash> = (0..=15)
        .map(|n| checkpoint(&format!("{TESSERA}/checkpoint.{n}")).1)
        .collect();
    for n in 1..=15u64 {
        let lookup = |node| node_from_tiles(TESSERA, n, node);
        let root = &roots[n as usize];
        for i in 0..n {
            let path = proof::inclusion_proof(i, n, lookup).unwrap();
            proof::verify_inclusion(&hashes[i as usize], i, n, &path, root)
                .unwrap_or_else(|e| panic!("inclusion {i} in {n}: {e}"));
        }
        for m in 1..n {
            let path = proof::consistency_proof(m, n, lookup).unwrap();
            proof::verify_consistency(m, n, &path, &roots[m as usize], root)
                .unwrap_or_else(|e| panic!("consistency {m} -> {n}: {e}"));
        }
    }
}

// ---- sunlight/skylight-witness/mirror-tree -------------------------------------

#[test]
fn mirror_tree_of_300_has_exactly_the_published_tiles() {
    assert_eq!(
        paths(tiles_for_size(300)),
        ["tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1"]
    );
    for p in paths(tiles_for_size(300)) {
        let TilePath::Hash(id) = parse_path(&p).unwrap() else {
            panic!("{p} is a hash tile")
        };
        id.decode(&object(MIRROR, &p)).unwrap();
    }
}

#[test]
fn mirror_tree_level1_entry_is_the_root_of_the_full_level0_tile() {
    let level0 = TileId::full(0, 0)
        .unwrap()
        .decode(&object(MIRROR, "tile/0/000"))
        .unwrap();
    let level1 = TileId::new(1, 0, 1)
        .unwrap()
        .decode(&object(MIRROR, "tile/1/000.p/1"))
        .unwrap();
    assert_eq!(level1, [tile_root(&level0).unwrap()]);
}

#[test]
fn mirror_tree_root_computed_from_tiles_matches_the_checkpoint() {
    let (size, root) = checkpoint(&format!("{MIRROR}/checkpoint"));
    assert_eq!(size, 300);
    assert_eq!(root_from_tiles(MIRROR, size), root);
    let edge = partial_tiles_for_size(size).map(|id| (id, object(MIRROR, id)));
    assert_eq!(TileBuilder::resume(size, edge).unwrap().root(), root);
}

#[test]
fn mirror_tree_tiles_are_what_the_builder_writes() {
    // The leaves are not published, but their hashes are the level-0 tiles.
    let mut leaf_hashes = decode_hash_tile(&object(MIRROR, "tile/0/000")).unwrap();
    leaf_hashes.extend(decode_hash_tile(&object(MIRROR, "tile/0/001.p/44")).unwrap());
    for split in [0, 1, 255, 256, 257, 299] {
        let mut b = TileBuilder::new();
        let mut written = b.append(&leaf_hashes[..split]).unwrap();
        written.extend(b.append(&leaf_hashes[split..]).unwrap());
        for tile in tiles_for_size(300) {
            // The last write of each tile is what storage ends up holding.
            let last = written.iter().rev().find(|w| w.id == tile).unwrap();
            assert_eq!(
                last.bytes,
                object(MIRROR, tile),
                "{tile} after split {split}"
            );
        }
    }
}

// ---- sunlight/navigli2025h2/tile/0 ---------------------------------------------

fn navigli_level0() -> Vec<Vec<Hash>> {
    (0..4)
        .map(|i| {
            let id = TileId::full(0, i).unwrap();
            id.decode(&object(NAVIGLI, id)).unwrap()
        })
        .collect()
}

#[test]
fn navigli_level0_tiles_decode_as_full_tiles() {
    let tiles = navigli_level0();
    assert!(tiles.iter().all(|t| t.len() == 256));
    for i in 0..4 {
        let id = TileId::full(0, i).unwrap();
        assert_eq!(
            id.decode(&object(NAVIGLI, id)[..FULL_TILE_BYTES - 32]),
            Err(TileError::HashTileWidthMismatch {
                expected: 256,
                actual: 255
            })
        );
    }
}

#[test]
fn navigli_partial_tile_is_a_prefix_of_the_full_tile() {
    let full = &navigli_level0()[3];
    let id = TileId::new(0, 3, 10).unwrap();
    assert_eq!(id.path(), "tile/0/003.p/10");
    assert_eq!(id.decode(&object(NAVIGLI, id)).unwrap(), &full[..10]);
    assert!(id.exists_at(778));
    assert!(paths(tiles_for_size(778)).contains(&"tile/0/003.p/10".to_string()));
    assert_eq!(
        paths(tiles_for_size(778).filter(|t| t.level() == 0)),
        ["tile/0/000", "tile/0/001", "tile/0/002", "tile/0/003.p/10"]
    );
}

#[test]
fn navigli_tiles_are_what_the_builder_writes() {
    let leaf_hashes: Vec<Hash> = navigli_level0().concat();
    let mut b = TileBuilder::new();
    let first = b.append(&leaf_hashes[..778]).unwrap();
    let partial = first
        .iter()
        .find(|w| w.id.path() == "tile/0/003.p/10")
        .unwrap();
    assert_eq!(partial.bytes, object(NAVIGLI, "tile/0/003.p/10"));
    let rest = b.append(&leaf_hashes[778..]).unwrap();
    for i in 0..4 {
        let id = TileId::full(0, i).unwrap();
        let written = first.iter().chain(&rest).find(|w| w.id == id).unwrap();
        assert_eq!(written.bytes, object(NAVIGLI, id), "{id}");
    }
}
