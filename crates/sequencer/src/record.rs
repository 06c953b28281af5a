//! The node's durable record of the largest tree head it has signed.
//!
//! A node must never sign a head that contradicts one it signed before,
//! even after its database was replaced by an older copy (the stale-backup
//! restore that ended Venafi's CT log). The state machine cannot tell: a
//! restored database is self-consistent. So the largest signed `(size,
//! root)` is also kept in a small file *outside* the shard's RocksDB
//! directory, written (fsynced, atomically replaced) before a signature for
//! a larger size leaves the node. Before signing, the applied history must
//! contain the recorded head: its root at the recorded size must be the
//! recorded root.
//!
//! File format (text, one line each): `size <decimal>` and `root <hex>`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cairn_tlog::Hash;

use crate::log_store::StoreError;

/// Largest record file accepted (it is two short lines).
const MAX_RECORD_BYTES: u64 = 256;

/// Why a head may not be signed, or the record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The applied state is older than a head this node signed: it must
    /// catch up (from the Raft log or a peer) or be restored from a newer
    /// copy. Not a fork by itself; nothing may be signed meanwhile.
    #[error(
        "this node signed tree size {recorded} before, but its applied state is at size {applied}: \
         it is behind its own published history"
    )]
    Behind {
        /// The largest size signed, from the record.
        recorded: u64,
        /// The applied integrated size.
        applied: u64,
    },
    /// The applied history does not contain the recorded head: signing
    /// would make two views of the log.
    #[error(
        "this node signed tree size {size} with root {recorded}, but its applied history has {applied} there: \
         refusing to sign a second history"
    )]
    Fork {
        /// The recorded size.
        size: u64,
        /// The recorded root (hex).
        recorded: String,
        /// The applied root at that size (hex), or "none".
        applied: String,
    },
    /// The record file cannot be read or parsed: it must not be guessed at.
    #[error("signed-head record {path}: {reason}")]
    Io {
        /// The record file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Reading the applied history (the root at the recorded size) from
    /// the shard database failed; [`StoreError::is_fatal`] says whether it
    /// may pass. Says nothing about the record itself.
    #[error("reading the applied root to check the signed-head record: {0}")]
    Store(#[from] StoreError),
    /// The record could not be updated (e.g. the disk is full): nothing
    /// was signed; retry once the cause is gone.
    #[error("signed-head record {path} could not be written: {reason}")]
    Write {
        /// The record file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl RecordError {
    /// Whether waiting can help: [`RecordError::Behind`] (the node may
    /// still catch up), [`RecordError::Write`] (space may come back) and a
    /// [`RecordError::Store`] error that is not [fatal](StoreError::is_fatal).
    /// A fork or an unreadable record is fatal.
    pub fn is_retryable(&self) -> bool {
        match self {
            RecordError::Behind { .. } | RecordError::Write { .. } => true,
            RecordError::Store(e) => !e.is_fatal(),
            RecordError::Fork { .. } | RecordError::Io { .. } => false,
        }
    }
}

/// The record of one shard on one node. Share it behind an `Arc`.
#[derive(Debug)]
pub struct SignedRecord {
    path: PathBuf,
    largest: Mutex<Option<(u64, Hash)>>,
}

impl SignedRecord {
    /// Opens the record at `path` (none yet: nothing signed). Blocking.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RecordError> {
        let path = path.into();
        let largest = read(&path)?;
        Ok(SignedRecord {
            path,
            largest: Mutex::new(largest),
        })
    }

    /// The largest head recorded as signed.
    pub fn largest(&self) -> Option<(u64, Hash)> {
        *self.largest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits signing `(size, root)`, a head of the applied history: the
    /// recorded head must be part of that history too (`root_at(recorded
    /// size)` — from the state machine as it is now — is the recorded
    /// root), so that the two cannot contradict each other. A smaller
    /// `size` is fine then (a caller with a slightly older view of the same
    /// history); if the history does not reach the recorded size yet, the
    /// node is behind. A larger `size` is recorded durably before this
    /// returns. Blocking (an fsync when the size grows). A failure of
    /// `root_at` is returned as [`RecordError::Store`], classified by the
    /// database error, never as a fault of the record.
    pub fn admit(
        &self,
        size: u64,
        root: Hash,
        root_at: impl FnOnce(u64) -> Result<Option<Hash>, StoreError>,
    ) -> Result<(), RecordError> {
        let mut largest = self.largest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((recorded, recorded_root)) = *largest {
            let applied = if size == recorded {
                Some(root)
            } else {
                root_at(recorded)?
            };
            match applied {
                None if size < recorded => {
                    return Err(RecordError::Behind {
                        recorded,
                        applied: size,
                    });
                }
                Some(r) if r == recorded_root => {}
                other => {
                    return Err(RecordError::Fork {
                        size: recorded,
                        recorded: hex::encode(recorded_root),
                        applied: other.map_or_else(|| "none".to_owned(), hex::encode),
                    });
                }
            }
            if size <= recorded {
                return Ok(());
            }
        }
        write(&self.path, size, &root).map_err(|e| RecordError::Write {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        })?;
        *largest = Some((size, root));
        Ok(())
    }
}

fn read(path: &Path) -> Result<Option<(u64, Hash)>, RecordError> {
    let err = |reason: String| RecordError::Io {
        path: path.display().to_string(),
        reason,
    };
    let text = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
        Ok(m) if m.len() > MAX_RECORD_BYTES => {
            return Err(err(format!(
                "{} bytes, at most {MAX_RECORD_BYTES}",
                m.len()
            )));
        }
        Ok(_) => std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?,
    };
    let mut lines = text.lines();
    let size = lines
        .next()
        .and_then(|l| l.strip_prefix("size "))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| err("first line is not `size <decimal>`".into()))?;
    let root = lines
        .next()
        .and_then(|l| l.strip_prefix("root "))
        .and_then(|v| hex::decode(v).ok())
        .and_then(|v| Hash::try_from(v.as_slice()).ok())
        .ok_or_else(|| err("second line is not `root <64 hex digits>`".into()))?;
    if lines.next().is_some() {
        return Err(err("more than two lines".into()));
    }
    Ok(Some((size, root)))
}

/// Replaces the record atomically and durably: a temporary file is written
/// and fsynced, renamed over the record, and the directory is fsynced.
fn write(path: &Path, size: u64, root: &Hash) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        write!(file, "size {size}\nroot {}\n", hex::encode(root))?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(n: u8) -> Hash {
        [n; 32]
    }

    #[test]
    fn a_fresh_record_admits_any_head_and_remembers_it_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signed-head");
        let record = SignedRecord::open(&path).unwrap();
        assert_eq!(record.largest(), None);
        record.admit(5, root(5), |_| unreachable!()).unwrap();
        drop(record);
        let record = SignedRecord::open(&path).unwrap();
        assert_eq!(record.largest(), Some((5, root(5))));
    }

    #[test]
    fn a_history_that_does_not_reach_the_recorded_size_is_behind_and_retryable() {
        let dir = tempfile::tempdir().unwrap();
        let record = SignedRecord::open(dir.path().join("r")).unwrap();
        record.admit(10, root(10), |_| unreachable!()).unwrap();
        let e = record.admit(4, root(4), |_| Ok(None)).unwrap_err();
        assert!(
            matches!(
                e,
                RecordError::Behind {
                    recorded: 10,
                    applied: 4
                }
            ),
            "{e}"
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn a_smaller_head_of_the_same_history_is_admitted_without_rewriting() {
        let dir = tempfile::tempdir().unwrap();
        let record = SignedRecord::open(dir.path().join("r")).unwrap();
        record.admit(10, root(10), |_| unreachable!()).unwrap();
        // A caller whose view is older than the record, on the same history.
        record
            .admit(4, root(4), |s| Ok((s == 10).then(|| root(10))))
            .unwrap();
        assert_eq!(record.largest(), Some((10, root(10))));
        // The same smaller head on a history without the recorded head.
        let e = record
            .admit(4, root(4), |_| Ok(Some(root(77))))
            .unwrap_err();
        assert!(matches!(e, RecordError::Fork { .. }), "{e}");
    }

    #[test]
    fn another_root_at_the_recorded_size_is_a_fork() {
        let dir = tempfile::tempdir().unwrap();
        let record = SignedRecord::open(dir.path().join("r")).unwrap();
        record.admit(10, root(10), |_| unreachable!()).unwrap();
        let e = record.admit(10, root(11), |_| unreachable!()).unwrap_err();
        assert!(matches!(e, RecordError::Fork { size: 10, .. }), "{e}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn a_larger_head_needs_the_recorded_head_in_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let record = SignedRecord::open(dir.path().join("r")).unwrap();
        record.admit(10, root(10), |_| unreachable!()).unwrap();
        let e = record
            .admit(20, root(20), |_| Ok(Some(root(99))))
            .unwrap_err();
        assert!(matches!(e, RecordError::Fork { .. }), "{e}");
        assert_eq!(record.largest(), Some((10, root(10))));
        record
            .admit(20, root(20), |s| Ok((s == 10).then(|| root(10))))
            .unwrap();
        assert_eq!(record.largest(), Some((20, root(20))));
    }

    #[test]
    fn a_database_read_failure_is_the_databases_and_classified_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let record = SignedRecord::open(dir.path().join("r")).unwrap();
        record.admit(10, root(10), |_| unreachable!()).unwrap();
        // A snapshot install passes: waiting helps, nothing is halted.
        let e = record
            .admit(20, root(20), |_| Err(StoreError::Installing))
            .unwrap_err();
        assert!(
            matches!(e, RecordError::Store(StoreError::Installing)),
            "{e}"
        );
        assert!(e.is_retryable());
        // A corrupt database does not.
        let e = record
            .admit(20, root(20), |_| Err(StoreError::Corrupt("x".into())))
            .unwrap_err();
        assert!(!e.is_retryable(), "{e}");
        assert_eq!(record.largest(), Some((10, root(10))));
    }

    #[test]
    fn a_damaged_record_is_refused_rather_than_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        std::fs::write(&path, "size 12\nroot zz\n").unwrap();
        assert!(matches!(
            SignedRecord::open(&path),
            Err(RecordError::Io { .. })
        ));
    }
}
