//! `cairn fsck` against the Tessera and Sunlight test logs among the
//! vectors, and against tampered copies of them.

mod common;

use std::path::Path;

use common::Cairn;

const TESSERA_VKEY: &str =
    "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";
const MIRROR_VKEY: &str =
    "mirror.example.org+3fb148ef+BAAjjch9GyYz0sJsJx7ALhbdAtz2ov0unbzSl1vMp94O";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 1;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn the_tessera_log_passes_and_each_tampered_copy_fails_naming_the_object() {
    let tmp = tempfile::tempdir().unwrap();
    let cairn = Cairn::new(tmp.path());
    let log = cairn_testvectors::path("tessera/testdata-log");
    let clean = cairn.run(&[
        "fsck",
        log.to_str().unwrap(),
        "--key",
        TESSERA_VKEY,
        "--json",
    ]);
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
        copy_dir(&log, &copy);
        if tamper.is_empty() {
            std::fs::remove_file(copy.join(path)).unwrap();
        } else {
            flip(&copy.join(tamper), 40);
        }
        let out = cairn.run(&["fsck", copy.to_str().unwrap(), "--key", TESSERA_VKEY]);
        out.assert_exit(1, &format!("{path}: "));
    }
}

#[test]
fn the_sunlight_mirror_tree_passes_without_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let log = cairn_testvectors::path("sunlight/skylight-witness/mirror-tree");
    let out = Cairn::new(tmp.path()).run(&[
        "fsck",
        log.to_str().unwrap(),
        "--no-entries",
        "--key",
        MIRROR_VKEY,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("size 300"), "{}", out.stdout);
}
