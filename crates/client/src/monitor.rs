//! A Sigsum monitor (`sigsum-protocol.md` §13): follows every log of a
//! policy, verifies what each log signs and serves, and reports the leaves
//! of watched submitter keys.
//!
//! One [`Monitor::pass`] does, per log with a URL in the policy:
//!
//! 1. `get-tree-head`; verify the log's signature (else [`Alert::BadLogSignature`]).
//! 2. Compare with the verified checkpoint: smaller is [`Alert::Shrink`],
//!    same size with another root [`Alert::SameSizeDifferentRoot`]; larger
//!    needs a `get-consistency-proof` from the checkpoint that verifies
//!    (else [`Alert::Inconsistent`]). This is checked for every log-signed
//!    head, cosigned or not: the log's signature alone makes it evidence.
//! 3. Verify the policy witnesses' cosignatures. A head whose valid ones do
//!    not satisfy the quorum is [`Warning::NoQuorum`] and is not adopted.
//!    The newest quorum's time (see below) older than
//!    [`MonitorConfig::max_age`] is [`Warning::Stale`].
//! 4. `get-leaves` from the checkpoint's size to the new size in batches of
//!    [`MonitorConfig::batch_size`] (logs may return fewer), hashing each
//!    leaf onto the checkpoint's compact range; leaves of watched keys are
//!    reported ([`Event::Leaf`]) after their signature verifies (an invalid
//!    one is [`Alert::InvalidLeafSignature`]). The resulting root must equal
//!    the signed root (else [`Alert::RootMismatch`]: the log served leaves
//!    that are not in its tree).
//! 5. Adopt the head as the new checkpoint and persist it with the compact
//!    range (O(log n) hashes, not the leaves) in the state directory.
//!
//! A failed request ends the log's pass; the next pass starts again from
//! the checkpoint. When no pass of a log has completed for longer than
//! `max_age` (by the persisted time of the last success, so restarts do not
//! reset it), that is [`Warning::Unreachable`]: a log that stays "down"
//! after handing out a cosigned proof hides the leaf from monitors
//! (the "liveness attack" discussed in the Sigsum project, 2025-09).
//!
//! **Quorum time.** A head's freshness is the largest `T` such that the
//! policy witnesses whose valid cosignatures carry timestamps `≥ T` satisfy
//! the quorum: when a quorum last vouched for the log's state. Under
//! `quorum none` there is no such time and no staleness check.
//!
//! **Alerts do not advance the checkpoint** (except an invalid watched-leaf
//! signature, whose leaf is verifiably in the tree): the next pass, and the
//! next process after a restart, compares against the same verified head
//! and raises the same alert again. Leaves are reported as they are
//! fetched, before the batch's root is checked, so a leaf is reported again
//! when its pass did not complete; it is never skipped.
//!
//! Logs are visited one after another; each request is bounded by the
//! client's timeouts. One process at a time may use a state directory (an
//! advisory lock on `<dir>/.lock` enforces it).

mod check;
mod event;
mod state;

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_sigsum::policy::{Policy, Witness};
use cairn_sigsum::quorum::CosignatureReview;
use cairn_sigsum::tree_head::{CosignedTreeHead, TreeHead};
use cairn_sigsum::{KeyHash, PublicKey};
use cairn_tlog::compact::CompactRange;
use cairn_tlog::proof::verify_consistency;

pub use check::Watchlist;
pub use event::{Alert, Event, LeafMatch, Progress, Warning};
pub use state::{STATE_FILE_SUFFIX, StateError};

use crate::client::{ClientConfig, LogClient};
use crate::error::ClientError;
use check::{Growth, LeafHasher, compare_heads};
use state::{LogState, StateFile};

/// Default leaves per `get-leaves` request: log-go's maximum.
pub const DEFAULT_BATCH_SIZE: u64 = 512;
/// Largest batch: about half of what fits in the client's
/// [`MAX_LEAVES_BYTES`](crate::MAX_LEAVES_BYTES) response limit.
pub const MAX_BATCH_SIZE: u64 = 2048;
/// Default [`MonitorConfig::max_age`]: one hour. Logs collect cosignatures
/// every few seconds to minutes and witnesses refresh timestamps even when
/// the tree does not grow, so an hour without a fresh quorum (or without
/// reaching the log) is no hiccup; it is also short enough that a hidden
/// leaf surfaces within the hour. Monitors polling at the default interval
/// (sigsum-go's 10 minutes) see six passes in that window.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// Default time between passes for a looping monitor (as sigsum-go).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);

/// The lock file in the state directory.
const LOCK_FILE: &str = ".lock";

/// How a [`Monitor`] works. [`Default`] gives the documented defaults.
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// Leaves asked for per `get-leaves` request, 1 to [`MAX_BATCH_SIZE`].
    /// Default [`DEFAULT_BATCH_SIZE`].
    pub batch_size: u64,
    /// Limit on the age of the newest quorum of cosignatures and on the
    /// time since a log was last reached. Default [`DEFAULT_MAX_AGE`].
    pub max_age: Duration,
    /// The HTTP client's timeouts and user agent.
    pub client: ClientConfig,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            batch_size: DEFAULT_BATCH_SIZE,
            max_age: DEFAULT_MAX_AGE,
            client: ClientConfig::default(),
        }
    }
}

/// Why a monitor cannot start or continue. Log misbehaviour is never an
/// error (it is an [`Event`]); these are local problems.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The configuration or policy cannot be monitored.
    #[error("invalid monitor configuration: {0}")]
    Config(String),
    /// A log URL is unusable or the HTTP client cannot be built.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// A state file cannot be read, verified or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// Another process holds the state directory.
    #[error("state directory {0} is in use by another monitor")]
    Locked(PathBuf),
}

/// The log an [`Event`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogId<'a> {
    /// Its base URL, as in the policy.
    pub url: &'a str,
    /// Its key hash, which names it in proofs, origins and state files.
    pub key_hash: KeyHash,
}

/// What one pass reported, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// [`Event::Alert`]s.
    pub alerts: usize,
    /// [`Event::Warning`]s.
    pub warnings: usize,
    /// [`Event::Leaf`]s.
    pub leaves: usize,
}

impl PassSummary {
    fn count(&mut self, event: &Event) {
        match event {
            Event::Alert(_) => self.alerts += 1,
            Event::Warning(_) => self.warnings += 1,
            Event::Leaf(_) => self.leaves += 1,
            Event::Progress(_) => {}
        }
    }
}

/// Monitors every log of a policy that has a URL.
///
/// Owns the state directory while it lives (advisory lock). Not `Clone`;
/// one task drives it, pass after pass.
#[derive(Debug)]
pub struct Monitor {
    policy: Policy,
    watch: Watchlist,
    config: MonitorConfig,
    logs: Vec<LogMonitor>,
    unmonitored: Vec<KeyHash>,
    _lock: File,
}

impl Monitor {
    /// A monitor for `policy`'s logs, reporting leaves of `watch`, keeping
    /// state in `state_dir` (created if missing). Loads each log's state;
    /// `now` (POSIX seconds) starts the unreachability clock of logs never
    /// reached before. Fails on a bad configuration, a policy without any
    /// log URL, a state directory in use, or a state file that does not
    /// verify (see [`StateError::Invalid`]).
    pub fn new(
        policy: Policy,
        watch: Watchlist,
        state_dir: &Path,
        config: MonitorConfig,
        now: u64,
    ) -> Result<Self, MonitorError> {
        if !(1..=MAX_BATCH_SIZE).contains(&config.batch_size) {
            return Err(MonitorError::Config(format!(
                "batch size must be 1 to {MAX_BATCH_SIZE}, got {}",
                config.batch_size
            )));
        }
        if config.max_age.is_zero() {
            return Err(MonitorError::Config("max age must be positive".into()));
        }
        let lock = lock_dir(state_dir)?;
        let mut logs = Vec::new();
        let mut unmonitored = Vec::new();
        for log in policy.logs() {
            let Some(url) = log.url().and_then(|u| u.as_str()) else {
                unmonitored.push(*log.key_hash());
                continue;
            };
            let client = LogClient::with_config(url, &config.client)?;
            let file = StateFile::new(state_dir, log.key());
            let state = file.load(log.key())?;
            logs.push(LogMonitor {
                key: *log.key(),
                client,
                file,
                state,
                started: now,
            });
        }
        if logs.is_empty() {
            return Err(MonitorError::Config(
                "the policy lists no log with a URL to monitor".into(),
            ));
        }
        Ok(Monitor {
            policy,
            watch,
            config,
            logs,
            unmonitored,
            _lock: lock,
        })
    }

    /// The base URLs of the monitored logs, in policy order.
    pub fn log_urls(&self) -> impl Iterator<Item = &str> {
        self.logs.iter().map(|l| l.client.base_url())
    }

    /// Key hashes of policy logs without a URL, which cannot be monitored.
    pub fn unmonitored(&self) -> &[KeyHash] {
        &self.unmonitored
    }

    /// The verified checkpoint of the log with `log_key`, if any.
    pub fn checkpoint(&self, log_key: &PublicKey) -> Option<&CosignedTreeHead> {
        self.logs
            .iter()
            .find(|l| &l.key == log_key)
            .and_then(|l| l.state.checkpoint.as_ref())
    }

    /// One pass over every log (see the module documentation), at time
    /// `now` (POSIX seconds). Each event is handed to `sink` with the log it
    /// is about as it happens. Fails only if a state file cannot be
    /// written; the logs after it are then not visited.
    pub async fn pass(
        &mut self,
        now: u64,
        mut sink: impl FnMut(LogId<'_>, &Event),
    ) -> Result<PassSummary, MonitorError> {
        let mut summary = PassSummary::default();
        let cx = Context {
            policy: &self.policy,
            watch: &self.watch,
            batch_size: self.config.batch_size,
            max_age: self.config.max_age.as_secs(),
        };
        for log in &mut self.logs {
            let url = log.client.base_url().to_owned();
            let key_hash = log.key.key_hash();
            let mut emit = |e: Event| {
                summary.count(&e);
                sink(
                    LogId {
                        url: &url,
                        key_hash,
                    },
                    &e,
                );
            };
            log.pass(&cx, now, &mut emit).await?;
        }
        Ok(summary)
    }
}

/// The current time in POSIX seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Takes the state directory's advisory lock, creating the directory.
fn lock_dir(dir: &Path) -> Result<File, MonitorError> {
    let io = |error| {
        MonitorError::State(StateError::Io {
            path: dir.to_owned(),
            error,
        })
    };
    fs::create_dir_all(dir).map_err(io)?;
    let lock = File::create(dir.join(LOCK_FILE)).map_err(io)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(MonitorError::Locked(dir.to_owned())),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

/// What every log's pass shares.
struct Context<'a> {
    policy: &'a Policy,
    watch: &'a Watchlist,
    batch_size: u64,
    max_age: u64,
}

/// One log: its client, key and state.
#[derive(Debug)]
struct LogMonitor {
    key: PublicKey,
    client: LogClient,
    file: StateFile,
    state: LogState,
    /// When this process started monitoring; the unreachability clock of a
    /// log that has never been reached.
    started: u64,
}

impl LogMonitor {
    async fn pass(
        &mut self,
        cx: &Context<'_>,
        now: u64,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), StateError> {
        match self.examine(cx, now, emit).await {
            Err(error) => {
                let since = self.state.last_success.unwrap_or(self.started);
                let secs = now.saturating_sub(since);
                emit(if secs > cx.max_age {
                    Event::Warning(Warning::Unreachable {
                        secs,
                        max_age: cx.max_age,
                        error: error.to_string(),
                    })
                } else {
                    Event::Progress(Progress::Failed {
                        error: error.to_string(),
                    })
                });
                Ok(())
            }
            Ok(adopt) => {
                if let Some((head, range)) = adopt {
                    self.state.checkpoint = Some(head);
                    self.state.range = range;
                }
                self.state.last_success = Some(now);
                self.file.store(&self.state)
            }
        }
    }

    /// Steps 1–4 of a pass. `Ok(Some(..))`: the head and range to adopt;
    /// `Ok(None)`: every answer was received but nothing is adopted (an
    /// alert or a head without quorum); `Err`: a request failed.
    async fn examine(
        &self,
        cx: &Context<'_>,
        now: u64,
        emit: &mut dyn FnMut(Event),
    ) -> Result<Option<(CosignedTreeHead, CompactRange)>, ClientError> {
        let head = self.client.get_tree_head().await?;
        let th = *head.tree_head();
        if !head.signed.verify(&self.key) {
            emit(Event::Alert(Alert::BadLogSignature { head: th }));
            return Ok(None);
        }
        let review = cx.policy.review_cosignatures(&head, &self.key.key_hash());
        let quorum = review.quorum_satisfied();
        emit(Event::Progress(Progress::TreeHead {
            size: th.size,
            cosigned_by: cosigner_names(&review),
            invalid: names(&review.invalid),
            quorum,
        }));

        let checkpoint = self.state.checkpoint.as_ref();
        let old = checkpoint.map_or(TreeHead::empty(), |c| *c.tree_head());
        let growth = match compare_heads(&old, &th) {
            Ok(g) => g,
            Err(alert) => {
                emit(Event::Alert(alert));
                return Ok(None);
            }
        };
        if growth == Growth::Grew && old.size > 0 {
            let proof = self.client.get_consistency_proof(old.size, th.size).await?;
            if let Err(error) = verify_consistency(
                old.size,
                th.size,
                &proof.path,
                &old.root_hash,
                &th.root_hash,
            ) {
                emit(Event::Alert(Alert::Inconsistent {
                    old,
                    new: th,
                    error,
                }));
                return Ok(None);
            }
        }

        self.check_freshness(cx, now, &th, &review, emit);
        if !quorum {
            return Ok(None);
        }
        if growth == Growth::Grew {
            emit(Event::Progress(Progress::Grew {
                from: old.size,
                to: th.size,
            }));
        }

        let mut hasher = LeafHasher::new(self.state.range.clone());
        while hasher.next_index() < th.size {
            let start = hasher.next_index();
            let end = th.size.min(start.saturating_add(cx.batch_size));
            for leaf in self.client.get_leaves(start, end).await? {
                if let Some(found) = cx.watch.check(hasher.next_index(), &leaf) {
                    emit(match found {
                        Ok(m) => Event::Leaf(m),
                        Err(alert) => Event::Alert(alert),
                    });
                }
                hasher.push(&leaf);
            }
            emit(Event::Progress(Progress::Leaves {
                next: hasher.next_index(),
                target: th.size,
            }));
        }
        match hasher.finish(&th) {
            Ok(range) => {
                emit(Event::Progress(Progress::Verified { size: th.size }));
                Ok(Some((head, range)))
            }
            Err(alert) => {
                emit(Event::Alert(alert));
                Ok(None)
            }
        }
    }

    /// Warns about a head without quorum, and about the newest quorum known
    /// (this head's, else the checkpoint's) being older than the limit.
    fn check_freshness(
        &self,
        cx: &Context<'_>,
        now: u64,
        th: &TreeHead,
        review: &CosignatureReview<'_>,
        emit: &mut dyn FnMut(Event),
    ) {
        let newest = if review.quorum_satisfied() {
            review.quorum_time().map(|t| (th.size, t))
        } else {
            emit(Event::Warning(Warning::NoQuorum {
                head: *th,
                cosigned_by: cosigner_names(review),
                invalid: names(&review.invalid),
            }));
            self.state.checkpoint.as_ref().and_then(|c| {
                cx.policy
                    .review_cosignatures(c, &self.key.key_hash())
                    .quorum_time()
                    .map(|t| (c.tree_head().size, t))
            })
        };
        if let Some((size, t)) = newest {
            let age = now.saturating_sub(t);
            if age > cx.max_age {
                emit(Event::Warning(Warning::Stale {
                    size,
                    age,
                    max_age: cx.max_age,
                }));
            }
        }
    }
}

/// The policy names of the witnesses whose cosignature verified.
fn cosigner_names(review: &CosignatureReview<'_>) -> Vec<String> {
    review
        .valid
        .iter()
        .map(|v| v.witness.name().to_string())
        .collect()
}

/// The policy names of `witnesses`.
fn names(witnesses: &[&Witness]) -> Vec<String> {
    witnesses.iter().map(|w| w.name().to_string()).collect()
}
