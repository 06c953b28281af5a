//! `cairn fsck` against the Tessera and Sunlight test logs among the
//! vectors, and against tampered copies of them.

mod common;

use cairn_testvectors::logs;
use common::{Cairn, Output};

const TESSERA_VKEY: &str =
    "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
/// The Tessera test log's signing key, published with it (test-only).
const TESSERA_SKEY: &str =
    "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg";
const MIRROR_VKEY: &str =
    "mirror.example.org+3fb148ef+BAAjjch9GyYz0sJsJx7ALhbdAtz2ov0unbzSl1vMp94O";

#[test]
fn the_tessera_log_passes_and_each_tampered_copy_fails_naming_the_object() {
    let tmp = tempfile::tempdir().unwrap();
    let cairn = Cairn::new(tmp.path());
    let log = cairn_testvectors::path("tessera/testdata-log");
    let clean = fsck(&cairn, &log, TESSERA_VKEY, &["--json"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    let summary: serde_json::Value = serde_json::from_str(&clean.stdout).unwrap();
    assert_eq!(summary["result"], "ok");
    assert_eq!(summary["size"], 15);
    assert_eq!(summary["entries_checked"], 15);

    for (name, tamper, path) in [
        ("tile", "tile/0/000.p/15", "tile/0/000.p/15"),
        ("bundle", "tile/entries/000.p/15", "tile/entries/000.p/15"),
        ("missing", "", "tile/0/000.p/15"),
    ] {
        let copy = tmp.path().join(name);
        logs::copy_dir(&log, &copy);
        if tamper.is_empty() {
            std::fs::remove_file(copy.join(path)).unwrap();
        } else {
            logs::flip_byte(&copy.join(tamper), 40);
        }
        let out = fsck(&cairn, &copy, TESSERA_VKEY, &[]);
        out.assert_exit(1, &format!("{path}: "));
    }
}

/// `cairn fsck LOG --key KEY EXTRA...`.
fn fsck(cairn: &Cairn, log: &std::path::Path, key: &str, extra: &[&str]) -> Output {
    let log = log.to_str().expect("UTF-8 path");
    let mut args = vec!["fsck", log, "--key", key];
    args.extend_from_slice(extra);
    cairn.run(&args)
}

/// The checkpoint note `text` signed by the Tessera log's own key.
fn tessera_signed(text: &str) -> Vec<u8> {
    let skey = cairn_tlog::note::SignerKey::parse(TESSERA_SKEY).unwrap();
    cairn_tlog::note::Ed25519NoteSigner::from_skey(&skey)
        .unwrap()
        .sign_note(text)
        .unwrap()
        .to_bytes()
}

#[test]
fn a_validly_signed_checkpoint_of_another_tree_fails_on_the_checkpoint_not_a_tile() {
    let tmp = tempfile::tempdir().unwrap();
    let cairn = Cairn::new(tmp.path());
    let copy = tmp.path().join("log");
    logs::copy_dir(&cairn_testvectors::path("tessera/testdata-log"), &copy);
    // Size 15 with the root of the first 14 leaves: signed by the log's
    // key, but not the tree its tiles hold.
    let older = cairn_testvectors::text("tessera/testdata-log/checkpoint.14");
    let root_14 = older.lines().nth(2).unwrap();
    std::fs::write(
        copy.join("checkpoint"),
        tessera_signed(&format!("example.com/log/testdata\n15\n{root_14}\n")),
    )
    .unwrap();
    let out = fsck(&cairn, &copy, TESSERA_VKEY, &[]);
    out.assert_exit(1, "checkpoint: root ");
    assert!(
        out.stderr.contains("does not match the root"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_checkpoint_whose_signature_does_not_cover_its_text_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let cairn = Cairn::new(tmp.path());
    let copy = tmp.path().join("log");
    logs::copy_dir(&cairn_testvectors::path("tessera/testdata-log"), &copy);
    // The size-14 checkpoint's signature under the size-15 text.
    let older = cairn_testvectors::text("tessera/testdata-log/checkpoint.14");
    let current = cairn_testvectors::text("tessera/testdata-log/checkpoint");
    let signature = older.split("\n\n").nth(1).unwrap();
    let text = current.split("\n\n").next().unwrap();
    std::fs::write(copy.join("checkpoint"), format!("{text}\n\n{signature}")).unwrap();
    let out = fsck(&cairn, &copy, TESSERA_VKEY, &["--json"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["result"], "inconsistent");
    assert_eq!(summary["error"]["path"], "checkpoint");
    assert_eq!(summary["tiles_checked"], 0);
}

#[test]
fn an_older_checkpoint_of_the_same_log_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let cairn = Cairn::new(tmp.path());
    let log = cairn_testvectors::path("tessera/testdata-log");
    let older = log.join("checkpoint.9");
    let out = fsck(
        &cairn,
        &log,
        TESSERA_VKEY,
        &["--checkpoint", older.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("size 9"), "{}", out.stdout);
    assert!(out.stdout.contains("9 entries checked"), "{}", out.stdout);
}

#[test]
fn the_sunlight_mirror_tree_passes_without_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let log = cairn_testvectors::path("sunlight/skylight-witness/mirror-tree");
    let out = fsck(
        &Cairn::new(tmp.path()),
        &log,
        MIRROR_VKEY,
        &["--no-entries"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("size 300"), "{}", out.stdout);
}

/// The Navigli static-ct-api resources among the vectors, completed into a
/// log of 778 entries: its level-1 tile and a checkpoint signed by a test
/// key (the vectors hold neither). Returns the copy and the key's vkey.
fn navigli_log(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    use cairn_tlog::checkpoint::Checkpoint;
    use cairn_tlog::note::Ed25519NoteSigner;
    use cairn_tlog::tile::{decode_hash_tile, encode_hash_tile, tile_root};

    const SIZE: u64 = 778;
    let log = dir.join("navigli");
    logs::copy_dir(&cairn_testvectors::path("sunlight/navigli2025h2"), &log);
    let mut leaves = Vec::new();
    for tile in ["tile/0/000", "tile/0/001", "tile/0/002", "tile/0/003.p/10"] {
        leaves.extend(decode_hash_tile(&std::fs::read(log.join(tile)).unwrap()).unwrap());
    }
    assert_eq!(leaves.len() as u64, SIZE);
    let level_1: Vec<_> = leaves[..768]
        .chunks(256)
        .map(|c| tile_root(c).unwrap())
        .collect();
    std::fs::create_dir_all(log.join("tile/1/000.p")).unwrap();
    std::fs::write(
        log.join("tile/1/000.p/3"),
        encode_hash_tile(&level_1).unwrap(),
    )
    .unwrap();
    let root = cairn_tlog::proof::tree_root(SIZE, |node| {
        let (start, end) = (node.index << node.level, (node.index + 1) << node.level);
        Ok::<_, ()>(subtree_root(&leaves[start as usize..end as usize]))
    })
    .unwrap();
    let signer = Ed25519NoteSigner::new("navigli.test", &[7; 32]).unwrap();
    let note = signer
        .sign_note(&Checkpoint::new("navigli.test", SIZE, root).to_body())
        .unwrap();
    std::fs::write(log.join("checkpoint"), note.to_bytes()).unwrap();
    (log, signer.vkey().to_string())
}

/// The RFC 6962 root of a complete subtree's leaf hashes.
fn subtree_root(hashes: &[cairn_tlog::Hash]) -> cairn_tlog::Hash {
    match hashes {
        [one] => *one,
        _ => {
            let (left, right) = hashes.split_at(hashes.len() / 2);
            cairn_tlog::node_hash(&subtree_root(left), &subtree_root(right))
        }
    }
}

#[test]
fn a_sunlight_log_passes_with_its_static_ct_data_tiles_and_fails_with_a_flipped_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let cairn = Cairn::new(tmp.path());
    let (log, vkey) = navigli_log(tmp.path());
    let out = fsck(&cairn, &log, &vkey, &["--entries", "static-ct", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(summary["size"], 778);
    assert_eq!(summary["entries_checked"], 778);
    assert_eq!(summary["bundles_checked"], 4);

    // A byte inside the first certificate of data tile 1.
    logs::flip_byte(&log.join("tile/data/001"), 200);
    let out = fsck(&cairn, &log, &vkey, &["--entries", "static-ct"]);
    out.assert_exit(1, "tile/data/001: ");
}
