//! [`StorageError`]: everything a [`TileStore`](crate::TileStore) call can
//! fail with, split into fatal, retryable and per-request failures.

use std::time::Duration;

use cairn_tlog::Hash;
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
///   unreachable, failed or timed out, or other writers kept the checkpoint
///   busy ([`CheckpointBusy`](Self::CheckpointBusy),
///   [`CheckpointContended`](Self::CheckpointContended)). The store already
///   retried [`RETRY_ATTEMPTS`](crate::RETRY_ATTEMPTS) times; the caller may
///   retry the whole operation later (all writes are idempotent).
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
    /// wrong width, a malformed bundle or checkpoint), or does not verify
    /// against the caller's [`TrustedHead`](crate::TrustedHead) (see
    /// [`Corruption`]). FATAL: the store does not hold what the log wrote.
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
    /// An object store configuration cannot be used (e.g. only one half of a
    /// pair of S3 credentials is given, or a credential file is empty).
    #[error("invalid object store configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A write or delete on a read-only store ([`TileStore::http`](crate::TileStore::http)):
    /// a role that writes a shard's objects was configured with a tile URL
    /// instead of a writable store.
    #[error("cannot {op} {path}: the object store is read-only (an HTTP tile URL)")]
    ReadOnly {
        /// The operation refused.
        op: &'static str,
        /// The object key relative to the shard prefix.
        path: String,
    },
    /// A credential file named in an S3 configuration could not be read.
    #[error("cannot read the credential file {path}: {source}")]
    CredentialFile {
        /// The file.
        path: String,
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
    /// Another writer held the local checkpoint lock for the whole bounded
    /// wait ([`TileStoreOptions::checkpoint_lock_wait`](crate::TileStoreOptions::checkpoint_lock_wait));
    /// nothing was written. Retryable: the holder is normally done within
    /// milliseconds; a holder that stays longer is stuck (e.g. a stopped
    /// process) and the checkpoint cannot move until it resumes or dies.
    #[error(
        "the checkpoint lock {lock_file} was held by another writer for {waited:?}; nothing written"
    )]
    CheckpointBusy {
        /// The lock file.
        lock_file: String,
        /// How long this call waited for it.
        waited: Duration,
    },
    /// The checkpoint object changed between every read and the conditional
    /// write that followed it, [`CHECKPOINT_ROUNDS`](crate::CHECKPOINT_ROUNDS)
    /// times in a row; nothing was written. Retryable: other writers are
    /// publishing right now.
    #[error("the checkpoint changed under {rounds} conditional writes in a row; nothing written")]
    CheckpointContended {
        /// Read-check-write rounds tried.
        rounds: u32,
    },
    /// The local checkpoint lock file could not be opened or locked (not a
    /// wait: an IO error such as a read-only or unwritable directory).
    #[error("cannot use the checkpoint lock file {path}: {source}")]
    LockFile {
        /// The lock file.
        path: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
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
    /// A read asked about a tree larger than the caller's
    /// [`TrustedHead`](crate::TrustedHead).
    #[error("tree size {size} is beyond the trusted tree size {trusted_size}")]
    SizeBeyondTrusted {
        /// The size asked about (or the end of a leaf range).
        size: u64,
        /// The size of the caller's trusted tree head.
        trusted_size: u64,
    },
    /// The tiles at the size of the caller's [`TrustedHead`](crate::TrustedHead)
    /// do not hash to its root, and no single object could be blamed. FATAL:
    /// the store does not hold the tree the log signed (or the head is not
    /// this log's).
    ///
    /// When one object can be blamed the error is [`Corrupt`](Self::Corrupt)
    /// naming it, with [`Corruption::RootMismatch`].
    #[error(
        "the stored tiles of tree size {size} do not hash to the trusted root {}; suspected objects: {}",
        hex::encode(.root),
        suspect_list(.suspects)
    )]
    TreeMismatch {
        /// The trusted size.
        size: u64,
        /// The trusted root.
        root: Hash,
        /// The objects of which at least one is corrupt: the right-edge
        /// tiles of the tree that disagree with (or could not be checked
        /// against) the objects below them, or all of them if none do.
        suspects: Vec<String>,
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
    /// level-0 tile of the same size holds for it (found when resuming,
    /// where neither object is verified; the tile is named).
    #[error("entry {entry} of the partial bundle does not hash to the tile's leaf hash")]
    LeafHashMismatch {
        /// Position within the bundle and the tile.
        entry: usize,
    },
    /// A full hash tile's hashes do not hash to the hash its (verified)
    /// parent tile holds for it.
    #[error(
        "it does not hash to {}, the hash {parent} holds for it (it hashes to {})",
        hex::encode(.expected),
        hex::encode(.actual)
    )]
    TileHashMismatch {
        /// The parent tile, verified against the trusted head.
        parent: String,
        /// The hash the parent holds.
        expected: Hash,
        /// The RFC 6962 root of the stored tile's hashes.
        actual: Hash,
    },
    /// An entry of an entry bundle does not hash (RFC 6962 leaf hash) to
    /// the leaf hash its (verified) level-0 tile holds.
    #[error(
        "entry {entry} does not hash to {}, the leaf hash {tile} holds for it",
        hex::encode(.expected)
    )]
    EntryHashMismatch {
        /// Position within the bundle and the tile.
        entry: usize,
        /// The level-0 tile, verified against the trusted head.
        tile: String,
        /// The leaf hash the tile holds.
        expected: Hash,
    },
    /// A narrower partial hash tile is not a prefix of the tile of the same
    /// index at the trusted size, which verifies.
    #[error("it is not a prefix of {tile}, which verifies against the trusted tree head")]
    NotPrefix {
        /// The verified tile at the trusted size.
        tile: String,
    },
    /// A right-edge tile of the trusted size: the edge tiles together do not
    /// hash to the trusted root, and this one is the only one that
    /// disagrees with (or could not be checked against) the objects below it.
    #[error(
        "the tiles of tree size {size} do not hash to the trusted root {}, and this one disagrees with {below}",
        hex::encode(.root)
    )]
    RootMismatch {
        /// The trusted size.
        size: u64,
        /// The trusted root.
        root: Hash,
        /// What it was checked against: the entry bundle or the hash tiles
        /// below it (or why it could not be checked).
        below: String,
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
                | Self::TreeMismatch { .. }
        )
    }

    /// Whether a stored object was found corrupt or not to verify against
    /// a trusted head ([`Corrupt`](Self::Corrupt),
    /// [`TreeMismatch`](Self::TreeMismatch)): what
    /// [`TileStore::corrupt_reads`](crate::TileStore::corrupt_reads) counts.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corrupt { .. } | Self::TreeMismatch { .. })
    }

    /// Whether the same call may succeed later: the store was unavailable or
    /// slow. The store has already retried internally.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Timeout { .. }
                | Self::CheckpointBusy { .. }
                | Self::CheckpointContended { .. }
        )
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
            Self::InvalidConfig { .. } => "invalid_config",
            Self::ReadOnly { .. } => "read_only",
            Self::CredentialFile { .. } => "credential_file",
            Self::NotFound { .. } => "not_found",
            Self::CheckpointShrinks { .. } => "checkpoint_shrinks",
            Self::CheckpointBusy { .. } => "checkpoint_busy",
            Self::CheckpointContended { .. } => "checkpoint_contended",
            Self::LockFile { .. } => "lock_file",
            Self::InvalidCheckpoint(_) => "invalid_checkpoint",
            Self::CheckpointSizeMismatch { .. } => "checkpoint_size_mismatch",
            Self::InvalidKey { .. } => "invalid_key",
            Self::InvalidWrite { .. } => "invalid_write",
            Self::SizeBeyondTrusted { .. } => "size_beyond_trusted",
            Self::TreeMismatch { .. } => "tree_mismatch",
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
            // S3 answers 404 for a missing bucket too: that is a
            // misconfiguration, not a missing object (an empty log).
            E::NotFound { .. } if names_missing_bucket(&source) => {
                Self::Backend { op, path, source }
            }
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

/// Whether a `NotFound` from the store is S3's `NoSuchBucket` (whose code
/// `object_store` keeps in the error text, from the response body).
fn names_missing_bucket(error: &object_store::Error) -> bool {
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = next {
        if e.to_string().contains("<Code>NoSuchBucket</Code>") {
            return true;
        }
        next = e.source();
    }
    false
}

/// `suspects` for an error message: comma-separated, or `none`.
fn suspect_list(suspects: &[String]) -> String {
    if suspects.is_empty() {
        "none".to_owned()
    } else {
        suspects.join(", ")
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
        let no_bucket = object_store::Error::NotFound {
            path: "x".into(),
            source: "404 Not Found: <Error><Code>NoSuchBucket</Code></Error>".into(),
        };
        let e = StorageError::from_store("get", "checkpoint", no_bucket);
        assert_eq!(e.label(), "backend", "{e:?}");
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

    #[test]
    fn a_busy_or_contended_checkpoint_is_retryable_not_fatal() {
        let errors = [
            StorageError::CheckpointBusy {
                lock_file: "/srv/tiles/.dev.checkpoint.lock".into(),
                waited: Duration::from_secs(10),
            },
            StorageError::CheckpointContended { rounds: 16 },
        ];
        for e in errors {
            assert!(e.is_retryable() && !e.is_fatal(), "{e:?}");
        }
        let unusable = StorageError::LockFile {
            path: "/srv/tiles/.dev.checkpoint.lock".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(!unusable.is_retryable() && !unusable.is_fatal());
        assert_eq!(unusable.label(), "lock_file");
    }
}
