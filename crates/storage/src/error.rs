//! [`StorageError`]: everything a [`TileStore`](crate::TileStore) call can
//! fail with, split into fatal, retryable and per-request failures.

use std::time::Duration;

use cairn_tlog::checkpoint::SignedCheckpointError;
use cairn_tlog::proof::ProofError;
use cairn_tlog::tile::TileError;

/// Why a [`TileStore`](crate::TileStore) call failed.
///
/// Three classes, which drive both control flow and the metric label
/// ([`StorageError::label`]):
///
/// * **fatal** ([`is_fatal`](Self::is_fatal)): object storage holds something
///   a correct log never writes ([`Fork`](Self::Fork),
///   [`CheckpointFork`](Self::CheckpointFork),
///   [`CheckpointOriginMismatch`](Self::CheckpointOriginMismatch),
///   [`Corrupt`](Self::Corrupt)). The integrator and publisher must halt the
///   shard and page an operator: retrying cannot help and carrying on could
///   publish a tree the tiles contradict. A reader answers 500.
/// * **retryable** ([`is_retryable`](Self::is_retryable)): the store was
///   unreachable, failed or timed out. The store already retried
///   [`RETRY_ATTEMPTS`](crate::RETRY_ATTEMPTS) times; the caller may retry the
///   whole operation later (all writes are idempotent).
/// * everything else: the request cannot be served as asked (bad argument,
///   missing object, stale checkpoint, a store misconfiguration); retrying
///   the same request gives the same answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A create-only object already exists with different bytes. FATAL: two
    /// integrations disagree about the tree; never overwrite, halt the shard.
    #[error("fork: object {path} already exists with different bytes")]
    Fork {
        /// The object key relative to the shard prefix.
        path: String,
    },
    /// The stored checkpoint has the same tree size as the new one but a
    /// different root hash: a split view. FATAL.
    #[error("fork: the stored checkpoint for tree size {size} has a different root hash")]
    CheckpointFork {
        /// The common tree size.
        size: u64,
    },
    /// The stored checkpoint belongs to another log (different origin line):
    /// the prefix is shared with another log or misconfigured. FATAL.
    #[error("the stored checkpoint has origin {stored:?}, the new one {new:?}")]
    CheckpointOriginMismatch {
        /// Origin of the stored checkpoint.
        stored: String,
        /// Origin of the checkpoint to publish.
        new: String,
    },
    /// A stored object does not decode as what its key names (a tile of the
    /// wrong width, a malformed bundle or checkpoint). FATAL: the store does
    /// not hold what the log wrote.
    #[error("stored object {path} is corrupt: {reason}")]
    Corrupt {
        /// The object key relative to the shard prefix.
        path: String,
        /// What is wrong with it.
        #[source]
        reason: Corruption,
    },
    /// The object store failed in a way that may pass (network error, 5xx,
    /// local IO error, task join error), after all retries. Retryable.
    #[error("object store {op} of {path} failed: {source}")]
    Unavailable {
        /// The operation: `get`, `put` or `delete`.
        op: &'static str,
        /// The object key relative to the shard prefix.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// One attempt of an object store operation took longer than
    /// [`ATTEMPT_TIMEOUT`](crate::ATTEMPT_TIMEOUT), after all retries.
    /// Retryable. A timed-out write may still have taken effect.
    #[error("object store {op} of {path} timed out after {after:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The object key relative to the shard prefix.
        path: String,
        /// The per-attempt limit that was hit.
        after: Duration,
    },
    /// The object store refused in a way retrying does not fix (permission,
    /// unsupported operation, invalid configuration).
    #[error("object store {op} of {path} was refused: {source}")]
    Backend {
        /// The operation.
        op: &'static str,
        /// The object key (or local directory) concerned.
        path: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A local object-store directory could not be created.
    #[error("cannot create the object store directory {dir}: {source}")]
    LocalDir {
        /// The directory.
        dir: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// An object the caller asked for does not exist. For tiles below the
    /// caller's `stored_size` this means the caller's promise that the tiles
    /// are written did not hold.
    #[error("object {path} not found")]
    NotFound {
        /// The object key relative to the shard prefix.
        path: String,
    },
    /// The stored checkpoint is for a larger tree than the one to publish;
    /// nothing was written (a checkpoint never shrinks). The caller is behind
    /// and should catch up rather than retry.
    #[error("refusing to replace the checkpoint for tree size {stored} with one for {requested}")]
    CheckpointShrinks {
        /// Tree size of the stored checkpoint.
        stored: u64,
        /// Tree size of the rejected checkpoint.
        requested: u64,
    },
    /// The bytes given to publish are not a signed checkpoint note.
    #[error("not a signed checkpoint: {0}")]
    InvalidCheckpoint(#[source] SignedCheckpointError),
    /// The checkpoint's size line differs from the size the caller claimed.
    #[error("checkpoint note says tree size {note_size}, the caller said {size}")]
    CheckpointSizeMismatch {
        /// Size the caller passed.
        size: u64,
        /// Size in the note.
        note_size: u64,
    },
    /// An object key or shard prefix is not acceptable (see
    /// [`TileStore::new`](crate::TileStore::new)).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key, truncated to 80 characters.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A tile or bundle handed to a write does not encode what its id names
    /// (a caller bug: builders never produce one). Nothing was written for it.
    #[error("refusing to write {path}: {source}")]
    InvalidWrite {
        /// The object key relative to the shard prefix.
        path: String,
        /// Why the bytes do not match the id.
        #[source]
        source: TileError,
    },
    /// A read asked about a tree larger than the size whose tiles the caller
    /// says are written.
    #[error("tree size {size} is beyond the stored tree size {stored_size}")]
    SizeBeyondStored {
        /// The size asked about (or the end of a leaf range).
        size: u64,
        /// The caller's stored size.
        stored_size: u64,
    },
    /// An empty or reversed leaf range.
    #[error("leaf range [{start}, {end}) is empty")]
    EmptyRange {
        /// First leaf asked for.
        start: u64,
        /// End (exclusive) asked for.
        end: u64,
    },
    /// The proof asked for does not exist (leaf index not below the size,
    /// old size above the new size).
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// A tile computation refused its input (a node outside the tree, a
    /// tree-size overflow): a request no tree of the stored size can answer.
    #[error(transparent)]
    Tile(#[from] TileError),
}

/// What is wrong with a corrupt stored object ([`StorageError::Corrupt`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// A hash tile or entry bundle that does not decode at the width its key
    /// names, or a partial one that is not a prefix of what it should hold.
    #[error(transparent)]
    Tile(#[from] TileError),
    /// The stored checkpoint is not a signed checkpoint note.
    #[error(transparent)]
    Checkpoint(#[from] SignedCheckpointError),
    /// An entry of an entry bundle is not a 128-byte Sigsum leaf.
    #[error("entry {entry} is {len} bytes, a Sigsum leaf is 128")]
    LeafSize {
        /// Position of the entry within its bundle.
        entry: usize,
        /// Its length.
        len: usize,
    },
    /// A partial entry bundle's entry does not hash to the leaf hash the
    /// level-0 tile of the same size holds for it.
    #[error("entry {entry} of the partial bundle does not hash to the tile's leaf hash")]
    LeafHashMismatch {
        /// Position within the bundle and the tile.
        entry: usize,
    },
    /// The object is larger than anything stored under its key can be.
    #[error("object is {len} bytes, more than the {max} its key allows")]
    TooLarge {
        /// Size the store reported.
        len: u64,
        /// The limit for this kind of object.
        max: u64,
    },
}

impl StorageError {
    /// Whether the shard must halt: the store holds data a correct log never
    /// writes. See the type docs.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Fork { .. }
                | Self::CheckpointFork { .. }
                | Self::CheckpointOriginMismatch { .. }
                | Self::Corrupt { .. }
        )
    }

    /// Whether the same call may succeed later: the store was unavailable or
    /// slow. The store has already retried internally.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }

    /// A short, fixed name for the error's kind, for metric labels and
    /// structured logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Fork { .. } => "fork",
            Self::CheckpointFork { .. } => "checkpoint_fork",
            Self::CheckpointOriginMismatch { .. } => "checkpoint_origin_mismatch",
            Self::Corrupt { .. } => "corrupt",
            Self::Unavailable { .. } => "unavailable",
            Self::Timeout { .. } => "timeout",
            Self::Backend { .. } => "backend",
            Self::LocalDir { .. } => "local_dir",
            Self::NotFound { .. } => "not_found",
            Self::CheckpointShrinks { .. } => "checkpoint_shrinks",
            Self::InvalidCheckpoint(_) => "invalid_checkpoint",
            Self::CheckpointSizeMismatch { .. } => "checkpoint_size_mismatch",
            Self::InvalidKey { .. } => "invalid_key",
            Self::InvalidWrite { .. } => "invalid_write",
            Self::SizeBeyondStored { .. } => "size_beyond_stored",
            Self::EmptyRange { .. } => "empty_range",
            Self::Proof(_) => "proof",
            Self::Tile(_) => "tile",
        }
    }

    /// Classifies an object store error for `op` on `path`. `NotFound`
    /// becomes [`StorageError::NotFound`]; errors that can pass (IO, network,
    /// join) are [`StorageError::Unavailable`]; the rest are
    /// [`StorageError::Backend`].
    pub(crate) fn from_store(op: &'static str, path: &str, source: object_store::Error) -> Self {
        use object_store::Error as E;
        let path = path.to_owned();
        match source {
            E::NotFound { .. } => Self::NotFound { path },
            // Generic covers IO and HTTP failures that survived the store's
            // own retries; JoinError a panicked or cancelled blocking task.
            E::Generic { .. } | E::JoinError { .. } => Self::Unavailable { op, path, source },
            _ => Self::Backend { op, path, source },
        }
    }

    /// A corrupt-object error for `path`.
    pub(crate) fn corrupt(path: impl Into<String>, reason: impl Into<Corruption>) -> Self {
        Self::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic() -> object_store::Error {
        object_store::Error::Generic {
            store: "test",
            source: "connection reset".into(),
        }
    }

    #[test]
    fn store_errors_are_classified_by_whether_they_can_pass() {
        let e = StorageError::from_store("get", "tile/0/000", generic());
        assert!(e.is_retryable() && !e.is_fatal(), "{e:?}");
        let missing = object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        };
        let e = StorageError::from_store("get", "tile/0/000", missing);
        assert!(matches!(e, StorageError::NotFound { ref path } if path == "tile/0/000"));
        assert!(!e.is_retryable() && !e.is_fatal());
        let denied = object_store::Error::PermissionDenied {
            path: "x".into(),
            source: "no".into(),
        };
        let e = StorageError::from_store("put", "checkpoint", denied);
        assert_eq!(e.label(), "backend");
        assert!(!e.is_retryable() && !e.is_fatal());
    }

    #[test]
    fn forks_and_corruption_are_fatal_and_not_retryable() {
        let errors = [
            StorageError::Fork {
                path: "tile/0/000".into(),
            },
            StorageError::CheckpointFork { size: 3 },
            StorageError::CheckpointOriginMismatch {
                stored: "a".into(),
                new: "b".into(),
            },
            StorageError::corrupt("tile/0/000", TileError::EmptyBundle),
        ];
        for e in errors {
            assert!(e.is_fatal() && !e.is_retryable(), "{e:?}");
        }
        let stale = StorageError::CheckpointShrinks {
            stored: 5,
            requested: 4,
        };
        assert!(!stale.is_fatal() && !stale.is_retryable());
    }
}
