//! The checkpoint lock of a local store: an exclusive OS file lock
//! (`flock(LOCK_EX)` on Linux, through `std::fs::File::try_lock`) that every
//! checkpoint writer on the directory holds across its read-check-write.
//!
//! `flock` locks belong to an open file description, so two handles that
//! open the file separately exclude each other whether they are in one
//! process or two; each acquisition therefore opens the file afresh (a
//! shared `File` would let every task of one handle "re-acquire" the lock it
//! already holds). The kernel drops the lock when its holder dies, so a
//! crashed writer never blocks the others.
//!
//! Liveness caveat: a holder that is alive but not running (stopped by
//! `SIGSTOP`, a frozen VM) keeps the lock; other writers wait
//! [`TileStoreOptions::checkpoint_lock_wait`](crate::TileStoreOptions::checkpoint_lock_wait)
//! and fail with the retryable [`StorageError::CheckpointBusy`] until it
//! resumes or dies. Safety does not depend on it: a frozen holder that
//! resumes finishes the write it had checked while holding the lock, so
//! nobody else wrote in between.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::StorageError;

/// First pause between two attempts to take a busy lock; doubled up to
/// [`MAX_POLL`]. Holders keep the lock for one read and one write, so short
/// polls find it free soon after it is released.
const FIRST_POLL: Duration = Duration::from_millis(1);

/// Longest pause between two attempts to take a busy lock.
const MAX_POLL: Duration = Duration::from_millis(50);

/// A held checkpoint lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking explicitly also
        // releases it should the descriptor have been duplicated.
        if let Err(e) = self.file.unlock() {
            tracing::warn!(error = %e, "unlocking the checkpoint lock failed; closing the file releases it");
        }
    }
}

/// Takes the exclusive lock on `lock_file` (created if missing), waiting at
/// most `wait`: [`StorageError::CheckpointBusy`] if another holder keeps it
/// that long, [`StorageError::LockFile`] if the file cannot be opened or
/// locked. Waits asynchronously (polling `try_lock` with short sleeps), so
/// dropping the future stops the wait.
pub(crate) async fn acquire(lock_file: &Path, wait: Duration) -> Result<LockGuard, StorageError> {
    let deadline = Instant::now() + wait;
    let file = open(lock_file.to_owned()).await?;
    let mut poll = FIRST_POLL;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(LockGuard { file }),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(source)) => {
                return Err(StorageError::LockFile {
                    path: lock_file.display().to_string(),
                    source,
                });
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(StorageError::CheckpointBusy {
                lock_file: lock_file.display().to_string(),
                waited: wait,
            });
        }
        tokio::time::sleep(poll.min(deadline - now)).await;
        poll = (poll * 2).min(MAX_POLL);
    }
}

/// Opens (creating) the lock file on a blocking thread, as `LocalFileSystem`
/// does its file IO.
async fn open(lock_file: PathBuf) -> Result<File, StorageError> {
    let path = lock_file.display().to_string();
    let opened = tokio::task::spawn_blocking(move || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_file)
    })
    .await;
    match opened {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(source)) => Err(StorageError::LockFile { path, source }),
        Err(join) => Err(StorageError::Unavailable {
            op: "lock",
            path,
            source: object_store::Error::JoinError { source: join },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_opens_of_one_lock_file_in_one_process_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".dev.checkpoint.lock");
        let held = acquire(&path, Duration::from_secs(5)).await.unwrap();
        let err = acquire(&path, Duration::from_millis(20)).await.unwrap_err();
        assert!(
            matches!(err, StorageError::CheckpointBusy { .. }) && err.is_retryable(),
            "{err:?}"
        );
        drop(held);
        let again = tokio::time::timeout(
            Duration::from_secs(10),
            acquire(&path, Duration::from_secs(5)),
        )
        .await
        .expect("lock taken within 10 s of its release");
        again.unwrap();
    }

    #[tokio::test]
    async fn an_unopenable_lock_file_is_an_error_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join(".dev.checkpoint.lock");
        let err = acquire(&path, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, StorageError::LockFile { .. }), "{err:?}");
    }
}
