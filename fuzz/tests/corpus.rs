//! Replays the checked-in seed corpora through the fuzz targets on stable
//! Rust, so that every seed (and every crash input added to a corpus as a
//! regression test) is exercised by the ordinary workspace test run.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn names_in(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter_map(|p| keep(&p))
        .collect()
}

fn target_names() -> BTreeSet<String> {
    cairn_fuzz::TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("target {target} has no corpus at {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    let targets = target_names();
    let corpora = names_in(&fuzz_dir().join("corpus"), |p| {
        p.is_dir()
            .then(|| p.file_name()?.to_str().map(str::to_owned))
            .flatten()
    });
    assert_eq!(
        corpora, targets,
        "corpus directories vs cairn_fuzz::TARGETS"
    );
    let binaries = names_in(&fuzz_dir().join("fuzz_targets"), |p| {
        (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(str::to_owned))?
    });
    assert_eq!(
        binaries, targets,
        "fuzz_targets/*.rs vs cairn_fuzz::TARGETS"
    );
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for t in &targets {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{t}.rs\"")),
            "fuzz/Cargo.toml has no [[bin]] for {t}"
        );
    }
    for t in &targets {
        assert!(!corpus_files(t).is_empty(), "corpus/{t} is empty");
    }
}

#[test]
fn corpora_replay_without_failure() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, target) in cairn_fuzz::TARGETS {
        for file in corpus_files(name) {
            let data = fs::read(&file).expect("corpus file");
            count += 1;
            // Keep going after a failure so one run names every bad seed.
            if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(count > 0);
    assert!(failures.is_empty(), "failing corpus inputs: {failures:#?}");
}
