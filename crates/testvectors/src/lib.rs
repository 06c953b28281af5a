//! Locates and reads Cairn's known-answer test vectors, which live in the
//! repository at `testdata/vectors/` (see its README for where each file
//! comes from and under which licence).
//!
//! Test-only: every function panics with a message naming the missing file,
//! because a test that cannot find its vectors must fail, never pass vacuously.
//!
//! Location: `$CAIRN_VECTORS` if set (it must then be a directory), else
//! `testdata/vectors` of the repository this crate was built from, found
//! from `CARGO_MANIFEST_DIR`. Nothing outside the repository is consulted.

pub mod logs;
pub mod moto;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the vectors directory.
pub const ENV_OVERRIDE: &str = "CAIRN_VECTORS";

/// The vectors directory, relative to the repository root.
pub const REPO_DIR: &str = "testdata/vectors";

/// The vectors directory. Panics if it does not exist (see [`resolve`]).
pub fn dir() -> PathBuf {
    resolve(
        std::env::var_os(ENV_OVERRIDE).as_deref(),
        &repo_root().join(REPO_DIR),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Picks the vectors directory: `env_override` (the value of
/// [`ENV_OVERRIDE`]) when given, else `in_repo`. Errors name the directory
/// that is missing and how to fix it; there is no fallback, so a missing
/// directory is never papered over by another one.
pub fn resolve(env_override: Option<&OsStr>, in_repo: &Path) -> Result<PathBuf, String> {
    if let Some(d) = env_override {
        let d = PathBuf::from(d);
        return if d.is_dir() {
            Ok(d)
        } else {
            Err(format!(
                "{ENV_OVERRIDE}={} is not a directory (unset it to use {REPO_DIR} of the repository)",
                d.display()
            ))
        };
    }
    if in_repo.is_dir() {
        Ok(in_repo.to_path_buf())
    } else {
        Err(format!(
            "test vectors not found at {}: they are part of the repository ({REPO_DIR}); \
             restore them from git, or point {ENV_OVERRIDE} at a copy",
            in_repo.display()
        ))
    }
}

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    // Prefer the crate under test, which cargo names at run time: a path
    // baked in at compile time may name another checkout whose build was
    // reused from a shared target dir. The workspace root is the nearest
    // ancestor holding `Cargo.lock`.
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(&start)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn in_repo() -> PathBuf {
        repo_root().join(REPO_DIR)
    }

    #[test]
    fn the_repository_carries_its_vectors() {
        // Checked without the override: a clone must be self-sufficient.
        let dir = in_repo();
        for rel in [
            "README.md",
            "derived/sigsum-v1-deterministic.json",
            "tessera/testdata-log/checkpoint",
        ] {
            assert!(
                dir.join(rel).is_file(),
                "{} is missing",
                dir.join(rel).display()
            );
        }
    }

    #[test]
    fn every_vector_directory_is_accounted_for_in_the_readme() {
        let readme = std::fs::read_to_string(in_repo().join("README.md")).unwrap();
        for entry in std::fs::read_dir(in_repo()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name == "README.md" {
                continue;
            }
            assert!(
                readme.contains(&format!("`{name}/")),
                "testdata/vectors/{name} has no source and licence in its README"
            );
        }
    }

    #[test]
    fn without_an_override_the_repository_directory_is_used() {
        assert_eq!(resolve(None, &in_repo()).unwrap(), in_repo());
    }

    #[test]
    fn an_override_wins_over_the_repository_directory() {
        let other = in_repo().join("derived");
        assert_eq!(resolve(Some(other.as_os_str()), &in_repo()).unwrap(), other);
    }

    #[test]
    fn a_missing_repository_directory_fails_and_names_it() {
        let missing = repo_root().join("testdata").join("no-such-vectors");
        let err = resolve(None, &missing).unwrap_err();
        assert!(err.contains("no-such-vectors"), "{err}");
        assert!(err.contains(ENV_OVERRIDE), "{err}");
    }

    #[test]
    fn an_override_that_is_not_a_directory_fails_without_falling_back() {
        let file = in_repo().join("README.md");
        let err = resolve(Some(file.as_os_str()), &in_repo()).unwrap_err();
        assert!(err.contains("is not a directory"), "{err}");
    }
}
