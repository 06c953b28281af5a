//! Object keys: the shard prefix and the keys below it.
//!
//! Keys are restricted to what tlog-tiles and small metadata files need
//! (`[A-Za-z0-9._-]` segments separated by `/`) so that every key is also a
//! safe file name for `LocalFileSystem`, a plain URL path for a static HTTP
//! server or CDN, and an S3 key that needs no encoding. `.` and `..` segments
//! are refused, so a key can never leave its prefix.

use object_store::path::Path;

use crate::StorageError;

/// Longest key below the prefix, and longest prefix, in bytes. The longest
/// tile path (`tile/entries/x018/.../615.p/255`) is under 60 bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Rejected keys are echoed in errors only up to this many characters.
const ECHO_LIMIT: usize = 80;

fn invalid(key: &str, reason: &'static str) -> StorageError {
    StorageError::InvalidKey {
        key: key.chars().take(ECHO_LIMIT).collect(),
        reason,
    }
}

/// Checks `key` as `/`-separated segments of `[A-Za-z0-9._-]`, none empty,
/// `.` or `..`, at most [`MAX_KEY_LEN`] bytes in all.
fn check_segments(key: &str) -> Result<(), StorageError> {
    if key.len() > MAX_KEY_LEN {
        return Err(invalid(key, "longer than 256 bytes"));
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err(invalid(
                key,
                "empty segment (leading, trailing or double '/')",
            ));
        }
        if segment == "." || segment == ".." {
            return Err(invalid(key, "'.' or '..' segment"));
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if !segment.bytes().all(allowed) {
            return Err(invalid(
                key,
                "characters other than A-Z a-z 0-9 . _ - and '/'",
            ));
        }
    }
    Ok(())
}

/// Normalises a shard prefix: surrounding `/` are dropped (`dev/` and `dev`
/// are the same prefix); the empty prefix puts the log at the store root.
pub(crate) fn normalise_prefix(prefix: &str) -> Result<String, StorageError> {
    let trimmed = prefix.trim_matches('/');
    if !trimmed.is_empty() {
        check_segments(trimmed)?;
    }
    Ok(trimmed.to_owned())
}

/// The full object path of `key` below `prefix` (already normalised).
pub(crate) fn object_path(prefix: &str, key: &str) -> Result<Path, StorageError> {
    if key.is_empty() {
        return Err(invalid(key, "empty key"));
    }
    check_segments(key)?;
    let full = if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    };
    // The checks above are stricter than object_store's, so this cannot fail;
    // mapping instead of unwrapping keeps it so if they ever diverge.
    Path::parse(&full).map_err(|_| invalid(key, "not a valid object store path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_joined_below_the_normalised_prefix() {
        let prefix = normalise_prefix("/dev/").unwrap();
        assert_eq!(prefix, "dev");
        let p = object_path(&prefix, "tile/0/x001/234.p/7").unwrap();
        assert_eq!(p.as_ref(), "dev/tile/0/x001/234.p/7");
        assert_eq!(
            object_path("", "checkpoint").unwrap().as_ref(),
            "checkpoint"
        );
        assert_eq!(normalise_prefix("").unwrap(), "");
        assert_eq!(
            object_path("logs/2026", "checkpoint").unwrap().as_ref(),
            "logs/2026/checkpoint"
        );
    }

    #[test]
    fn keys_that_could_escape_or_need_encoding_are_refused() {
        for key in [
            "",
            "/checkpoint",
            "tile//0",
            "tile/0/",
            "../checkpoint",
            "tile/./0",
            "tile/0/000#1",
            "tile/0/000 1",
            "tile/0/%2e%2e",
            "tïle/0",
        ] {
            let err = object_path("dev", key).unwrap_err();
            assert!(
                matches!(err, StorageError::InvalidKey { .. }),
                "{key}: {err}"
            );
        }
        assert!(object_path("dev", &"a".repeat(MAX_KEY_LEN + 1)).is_err());
        for prefix in ["a//b", "..", "a/../b", "a b"] {
            assert!(normalise_prefix(prefix).is_err(), "{prefix}");
        }
    }
}
