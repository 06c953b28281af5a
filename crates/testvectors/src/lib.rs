//! Locates and reads the known-answer vectors shared by the Cairn engineers
//! (`../shared/vectors` next to the repository root; see its README).
//!
//! Test-only: every function panics with a message naming the missing file,
//! because a test that cannot find its vectors must fail, never pass vacuously.
//!
//! Lookup order: `$CAIRN_VECTORS`, then `shared/vectors` beside the repository
//! root (how CI lays out a clone), then `testdata/vectors` inside the repository.

use std::path::{Path, PathBuf};

/// The vectors directory. Panics if none of the candidates exists.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CAIRN_VECTORS") {
        let d = PathBuf::from(d);
        assert!(
            d.is_dir(),
            "CAIRN_VECTORS={} is not a directory",
            d.display()
        );
        return d;
    }
    let repo = repo_root();
    let candidates = [
        repo.join("..").join("shared").join("vectors"),
        repo.join("testdata").join("vectors"),
    ];
    for c in &candidates {
        if c.is_dir() {
            return c.clone();
        }
    }
    panic!(
        "test vectors not found: tried $CAIRN_VECTORS, {} and {}",
        candidates[0].display(),
        candidates[1].display()
    );
}

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    // crates/testvectors -> repository root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .canonicalize()
        .expect("repository root exists")
}

/// Path of a vector file, relative to the vectors directory.
pub fn path(rel: &str) -> PathBuf {
    let p = dir().join(rel);
    assert!(p.exists(), "test vector {} does not exist", p.display());
    p
}

/// Raw bytes of a vector file.
pub fn bytes(rel: &str) -> Vec<u8> {
    let p = path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A vector file as UTF-8 text.
pub fn text(rel: &str) -> String {
    String::from_utf8(bytes(rel)).unwrap_or_else(|e| panic!("{rel} is not UTF-8: {e}"))
}

/// A JSON vector file.
pub fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&bytes(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// Decodes a hex string from a vector, panicking with context on error.
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?} in a vector: {e}"))
}

/// Decodes exactly 32 bytes of hex.
pub fn unhex32(s: &str) -> [u8; 32] {
    unhex(s)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("expected 32 bytes of hex, got {}", v.len()))
}

/// Helpers to walk JSON vectors with readable panics.
pub trait JsonExt {
    /// The string at `key`; panics if absent or not a string.
    fn str_at(&self, key: &str) -> &str;
    /// The unsigned integer at `key`; panics if absent or not a u64.
    fn u64_at(&self, key: &str) -> u64;
    /// The array at `key`; panics if absent or not an array.
    fn arr_at(&self, key: &str) -> &Vec<serde_json::Value>;
}

impl JsonExt for serde_json::Value {
    fn str_at(&self, key: &str) -> &str {
        self.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("vector field {key:?} missing or not a string"))
    }
    fn u64_at(&self, key: &str) -> u64 {
        self.get(key)
            .and_then(|v| v.as_u64())
            .unwrap_or_else(|| panic!("vector field {key:?} missing or not an integer"))
    }
    fn arr_at(&self, key: &str) -> &Vec<serde_json::Value> {
        self.get(key)
            .and_then(|v| v.as_array())
            .unwrap_or_else(|| panic!("vector field {key:?} missing or not an array"))
    }
}
