//! Durable per-origin witness state: the size and root of the latest
//! checkpoint the witness cosigned for each log.
//!
//! Layout: one directory, one small file per origin named by the lowercase
//! hex SHA-256 of the origin (origins are arbitrary text, file names are
//! not), plus a `LOCK` file that one process holds while it uses the
//! directory. A state file is
//!
//! ```text
//! cairn-witness-state/v1\n
//! <checkpoint body: origin\nsize\nbase64 root\n>
//! ```
//!
//! Writes are atomic and durable: write a temporary file, fsync it, rename
//! it over the old file, fsync the directory. A crash leaves either the old
//! or the new state, never a mix, and a reply is sent only after the new
//! state is durable — so the witness never cosigns something inconsistent
//! with what it already cosigned, even across crashes.
//!
//! Concurrency: [`WitnessState::lock_origin`] hands out one [`OriginLock`] per
//! origin at a time (an async mutex), so a request's old-size check and its
//! state update are atomic. File IO runs on the blocking pool and the lock
//! travels with it, so a caller that gives up mid-write (a dropped future)
//! cannot let another request in before the write has finished.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cairn_tlog::Hash;
use cairn_tlog::checkpoint::Checkpoint;
use tokio::sync::OwnedMutexGuard;

/// First line of every state file; a different line is a different format.
const HEADER: &str = "cairn-witness-state/v1\n";

/// Name of the directory lock file.
const LOCK_FILE: &str = "LOCK";

/// Largest state file read, in bytes: a header and a checkpoint body.
const MAX_STATE_FILE_BYTES: u64 = 64 * 1024;

/// Most distinct origins one state directory serves. The witness only locks
/// allow-listed origins; this bounds memory should a caller not.
pub const MAX_ORIGINS: usize = 100_000;

/// The latest checkpoint a witness cosigned for one origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CosignedState {
    /// Its tree size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// Why state could not be read or written. Every variant means the witness
/// must not cosign for the origin now; IO errors may clear up on retry,
/// [`StateError::Corrupt`] and [`StateError::Locked`] need an operator.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process (or another [`WitnessState`]) holds the directory.
    #[error("witness state directory {dir} is in use by another process")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A filesystem operation failed.
    #[error("witness state {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A state file exists but is not a valid state for its origin.
    #[error("witness state file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// More than [`MAX_ORIGINS`] origins were locked.
    #[error("witness state holds the maximum of {MAX_ORIGINS} origins")]
    TooManyOrigins,
    /// A blocking IO task panicked or was cancelled by runtime shutdown.
    #[error("witness state IO task failed: {0}")]
    Task(String),
}

impl StateError {
    /// Whether retrying later may succeed without operator action.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StateError::Io { .. } | StateError::Task(_))
    }
}

/// What the lock of one origin protects: the cached state, if loaded.
#[derive(Debug, Default)]
struct Slot {
    /// `None`: not loaded (or a write failed, so the file is the only truth);
    /// `Some(None)`: never cosigned; `Some(Some(s))`: latest cosigned state.
    cached: Option<Option<CosignedState>>,
}

/// The state directory of one witness. See the module documentation.
#[derive(Debug)]
pub struct WitnessState {
    dir: PathBuf,
    /// Held (flock) for the lifetime of this value.
    _lock: File,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl WitnessState {
    /// Opens (creating if needed) the state directory `dir` and takes its
    /// lock. Fails with [`StateError::Locked`] if another holder has it:
    /// two writers on one directory could each cosign a different fork.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StateError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(StateError::Locked { dir }),
            Err(fs::TryLockError::Error(e)) => return Err(io_err("lock", &lock_path)(e)),
        }
        Ok(WitnessState {
            dir,
            _lock: lock,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file of `origin`: `<dir>/<hex SHA-256(origin)>`.
    pub fn path_for(&self, origin: &str) -> PathBuf {
        self.dir
            .join(hex::encode(cairn_tlog::hash::sha256(origin.as_bytes())))
    }

    /// Waits for exclusive use of `origin`'s state. Requests for one origin
    /// are served in lock order; different origins never wait on each other.
    pub async fn lock_origin(self: &Arc<Self>, origin: &str) -> Result<OriginLock, StateError> {
        let slot = {
            let mut slots = self
                .slots
                .lock()
                .map_err(|_| StateError::Task("origin table lock poisoned".into()))?;
            if let Some(s) = slots.get(origin) {
                Arc::clone(s)
            } else {
                if slots.len() >= MAX_ORIGINS {
                    return Err(StateError::TooManyOrigins);
                }
                let s = Arc::new(tokio::sync::Mutex::new(Slot::default()));
                slots.insert(origin.to_owned(), Arc::clone(&s));
                s
            }
        };
        let guard = slot.lock_owned().await;
        Ok(OriginLock {
            state: Arc::clone(self),
            origin: origin.to_owned(),
            guard: Some(guard),
        })
    }

    /// Reads `origin`'s state file: `None` if it does not exist.
    fn read(&self, origin: &str) -> Result<Option<CosignedState>, StateError> {
        let path = self.path_for(origin);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let mut text = String::new();
        file.take(MAX_STATE_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io_err("read", &path))?;
        let corrupt = |reason: String| StateError::Corrupt {
            path: path.clone(),
            reason,
        };
        if text.len() as u64 > MAX_STATE_FILE_BYTES {
            return Err(corrupt("file too large".into()));
        }
        let body = text
            .strip_prefix(HEADER)
            .ok_or_else(|| corrupt("missing header line".into()))?;
        let cp = Checkpoint::parse(body).map_err(|e| corrupt(e.to_string()))?;
        if cp.origin != origin {
            return Err(corrupt(format!(
                "holds origin {:?}, not {origin:?}",
                cp.origin
            )));
        }
        Ok(Some(CosignedState {
            size: cp.size,
            root: cp.root,
        }))
    }

    /// Atomically and durably replaces `origin`'s state file.
    fn write(&self, origin: &str, state: &CosignedState) -> Result<(), StateError> {
        let path = self.path_for(origin);
        let tmp = path.with_extension("tmp");
        let mut text = String::from(HEADER);
        text.push_str(&Checkpoint::new(origin, state.size, state.root).to_body());
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))?;
        // The rename is durable only once the directory entry is.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", &self.dir))?;
        Ok(())
    }
}

/// Exclusive use of one origin's state, from [`WitnessState::lock_origin`].
/// Dropping it releases the origin.
#[derive(Debug)]
pub struct OriginLock {
    state: Arc<WitnessState>,
    origin: String,
    /// `None` only after a blocking task that held it failed; every later
    /// call then fails rather than act without the lock.
    guard: Option<OwnedMutexGuard<Slot>>,
}

impl OriginLock {
    /// The locked origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The latest cosigned state (`None`: never cosigned), read from disk on
    /// first use and cached while this process holds the directory.
    pub async fn current(&mut self) -> Result<Option<CosignedState>, StateError> {
        if let Some(Some(cached)) = self.guard.as_ref().map(|g| g.cached) {
            return Ok(cached);
        }
        self.with_guard(|state, origin, slot| {
            let s = state.read(origin)?;
            slot.cached = Some(s);
            Ok(s)
        })
        .await
    }

    /// Durably records `new` as the latest cosigned state. Returns only
    /// after the state is on disk; on error the on-disk state is either the
    /// old or the new one, and the next [`OriginLock::current`] re-reads it.
    pub async fn update(&mut self, new: CosignedState) -> Result<(), StateError> {
        self.with_guard(move |state, origin, slot| {
            // Until the write is known to be durable the file is the truth.
            slot.cached = None;
            state.write(origin, &new)?;
            slot.cached = Some(Some(new));
            Ok(())
        })
        .await
    }

    /// Runs `f` on the blocking pool, moving the origin's guard into the
    /// task so the origin stays locked until `f` has finished even if this
    /// future is dropped.
    async fn with_guard<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&WitnessState, &str, &mut Slot) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let mut guard = self
            .guard
            .take()
            .ok_or_else(|| StateError::Task("origin lock lost by an earlier failed task".into()))?;
        let state = Arc::clone(&self.state);
        let origin = self.origin.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let r = f(&state, &origin, &mut guard);
            (guard, r)
        })
        .await;
        match joined {
            Ok((guard, r)) => {
                self.guard = Some(guard);
                r
            }
            Err(e) => Err(StateError::Task(e.to_string())),
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { op, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "example.org/log";

    #[tokio::test]
    async fn state_survives_reopening_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let st = Arc::new(WitnessState::open(dir.path()).expect("open"));
            let mut lock = st.lock_origin(ORIGIN).await.expect("lock");
            assert_eq!(lock.current().await.expect("read"), None);
            let s = CosignedState {
                size: 5,
                root: [9; 32],
            };
            lock.update(s).await.expect("write");
            assert_eq!(lock.current().await.expect("read"), Some(s));
        }
        let st = Arc::new(WitnessState::open(dir.path()).expect("reopen"));
        let mut lock = st.lock_origin(ORIGIN).await.expect("lock");
        assert_eq!(
            lock.current().await.expect("read"),
            Some(CosignedState {
                size: 5,
                root: [9; 32]
            })
        );
        let file = fs::read_to_string(st.path_for(ORIGIN)).expect("file");
        assert!(file.starts_with("cairn-witness-state/v1\nexample.org/log\n5\n"));
        assert!(!st.path_for(ORIGIN).with_extension("tmp").exists());
    }

    #[test]
    fn a_second_holder_of_the_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = WitnessState::open(dir.path()).expect("open");
        assert!(matches!(
            WitnessState::open(dir.path()),
            Err(StateError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn a_corrupt_or_misplaced_state_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Arc::new(WitnessState::open(dir.path()).expect("open"));
        fs::write(st.path_for(ORIGIN), "garbage\n").expect("write");
        let mut lock = st.lock_origin(ORIGIN).await.expect("lock");
        let err = lock.current().await.expect_err("corrupt");
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(!err.is_retryable());
        drop(lock);
        // A valid file for another origin under this origin's name.
        let other =
            "cairn-witness-state/v1\nother\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        fs::write(st.path_for(ORIGIN), other).expect("write");
        let mut lock = st.lock_origin(ORIGIN).await.expect("lock");
        assert!(matches!(
            lock.current().await,
            Err(StateError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn one_origin_is_locked_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Arc::new(WitnessState::open(dir.path()).expect("open"));
        let held = st.lock_origin(ORIGIN).await.expect("lock");
        // Another origin is independent.
        let _other = st.lock_origin("other").await.expect("lock");
        let st2 = Arc::clone(&st);
        let waiter = tokio::spawn(async move { st2.lock_origin(ORIGIN).await.map(|_| ()) });
        // The test runtime is single-threaded: yielding polls the waiter
        // until it blocks, so a lock that let it through would show here.
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter.await.expect("join").expect("lock after release");
    }
}
