//! What clients saw during a run: every acknowledgement, every tree head,
//! every fault. Times are seconds since the run began.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use cairn_tlog::Hash;

/// Where a tree head was read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A frontend's `get-tree-head` (its index among the frontends).
    Frontend(usize),
    /// The `checkpoint` object read from the object store directly.
    Store,
    /// A checkpoint the log asked witness N (1-based) to cosign, as the
    /// proxy in front of that witness recorded it.
    Witness(usize),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Frontend(i) => write!(f, "frontend {}", i + 1),
            Source::Store => f.write_str("object store"),
            Source::Witness(n) => write!(f, "a request to witness {n}"),
        }
    }
}

/// A leaf the log answered add-leaf with 200 for: committed, so it must be
/// in every later tree the log publishes.
#[derive(Clone, Debug)]
pub struct Ack {
    pub at: f64,
    pub frontend: usize,
    pub leaf_hash: Hash,
}

/// A tree head whose log signature verified.
#[derive(Clone, Debug)]
pub struct Head {
    pub at: f64,
    pub source: Source,
    pub size: u64,
    pub root: Hash,
}

/// A fault the nemesis injected (`healed` once it was undone).
#[derive(Clone, Debug)]
pub struct Fault {
    pub row: String,
    pub what: String,
    pub at: f64,
    pub healed: Option<f64>,
}

/// Everything recorded in one run. Cheap to clone (shared); safe to record
/// from many tasks.
#[derive(Clone, Debug)]
pub struct Recorder {
    began: Instant,
    inner: Arc<Mutex<History>>,
}

/// The recorded events.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub acks: Vec<Ack>,
    pub heads: Vec<Head>,
    pub faults: Vec<Fault>,
    /// Heads that failed to verify, or answers no client should get.
    pub bad: Vec<String>,
    /// Add-leaf attempts answered with something other than 200 or 202.
    pub refused: u64,
    /// Add-leaf attempts answered with 202.
    pub accepted: u64,
    /// Seconds the run lasted.
    pub duration: f64,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Recorder {
            began: Instant::now(),
            inner: Arc::new(Mutex::new(History::default())),
        }
    }

    /// Seconds since the run began.
    pub fn now(&self) -> f64 {
        self.began.elapsed().as_secs_f64()
    }

    fn with<T>(&self, f: impl FnOnce(&mut History) -> T) -> T {
        f(&mut self.inner.lock().expect("history lock"))
    }

    pub fn ack(&self, frontend: usize, leaf_hash: Hash) {
        let at = self.now();
        self.with(|h| {
            h.acks.push(Ack {
                at,
                frontend,
                leaf_hash,
            })
        });
    }

    pub fn accepted(&self) {
        self.with(|h| h.accepted += 1);
    }

    pub fn refused(&self) {
        self.with(|h| h.refused += 1);
    }

    pub fn head(&self, source: Source, size: u64, root: Hash) {
        self.head_at(self.now(), source, size, root);
    }

    /// A head seen `at` seconds into the run (recorded elsewhere first).
    pub fn head_at(&self, at: f64, source: Source, size: u64, root: Hash) {
        self.with(|h| {
            h.heads.push(Head {
                at,
                source,
                size,
                root,
            })
        });
    }

    pub fn bad(&self, what: String) {
        self.with(|h| h.bad.push(what));
    }

    /// Records the start of a fault; returns its index for [`Recorder::healed`].
    pub fn fault(&self, row: &str, what: String) -> usize {
        let at = self.now();
        self.with(|h| {
            h.faults.push(Fault {
                row: row.to_owned(),
                what,
                at,
                healed: None,
            });
            h.faults.len() - 1
        })
    }

    pub fn healed(&self, fault: usize) {
        let at = self.now();
        self.with(|h| h.faults[fault].healed = Some(at));
    }

    /// Ends the run's clock (the workload stopped): availability is over
    /// the seconds until now, whatever is recorded afterwards.
    pub fn end(&self) {
        let now = self.now();
        self.with(|h| h.duration = now);
    }

    /// The history so far (its duration up to [`Recorder::end`], or now).
    pub fn snapshot(&self) -> History {
        let now = self.now();
        self.with(|h| History {
            duration: if h.duration > 0.0 { h.duration } else { now },
            ..h.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_lasts_until_it_is_ended_not_until_it_is_checked() {
        let r = Recorder::new();
        std::thread::sleep(std::time::Duration::from_millis(5));
        r.end();
        let ended = r.snapshot().duration;
        assert!(ended > 0.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        r.head(Source::Store, 1, [0; 32]);
        let later = r.snapshot();
        assert_eq!(later.duration, ended);
        assert_eq!(later.heads.len(), 1);
    }
}
