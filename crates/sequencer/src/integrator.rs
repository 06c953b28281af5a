//! The leader's integrator: committed leaves → tiles in object storage →
//! `Command::Integrated`.
//!
//! One loop per shard, run only while this node is the Raft leader (the shard
//! starts it on every leadership gain and stops it on loss; the loop also
//! checks leadership itself before every step):
//!
//! 1. On start (and after any error) resume the tile and bundle builders
//!    from storage at the applied `integrated_size` with
//!    [`TileStore::resume`], and check the resumed root against the applied
//!    `integrated_root` — storage that disagrees with Raft is fatal.
//! 2. While `tree_size > builder size`: read the next at most
//!    [`IntegratorConfig::max_step_leaves`] leaves from the state machine,
//!    hash them, append them to the builders, and write the new bundles and
//!    tiles create-only ([`TileStore::write_integration`]).
//! 3. When the builders reach a batch boundary (`root_at(size)` is `Some`),
//!    check the builders' root against it (mismatch is fatal) and propose
//!    `Integrated{size, root}`. The state machine applies it only if the root
//!    matches its own, so tiles and Raft must agree before the signer may
//!    sign that size.
//!
//! Errors: fatal ones (a [`StorageError::Fork`] or other
//! [fatal](StorageError::is_fatal) storage error, a root mismatch, a corrupt
//! shard database) halt the shard's pipeline: the loop stops, logs at error
//! level and sets the [`HaltFlag`] that readiness reports. Retryable ones
//! (object store unavailable, a rejected proposal, a Raft hiccup) back off
//! exponentially and start again at step 1. Losing leadership ends the loop.
//! Every write is idempotent, so re-running any step — on this leader after
//! an error, or on a new leader — is safe.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cairn_storage::{StorageError, TileStore};
use cairn_tlog::tile::{BundleBuilder, TileBuilder};
use cairn_tlog::{EMPTY_ROOT, Hash};
use openraft::Raft;
use tokio::sync::watch;

use crate::batcher::{ProposeError, not_leader, propose};
use crate::log_store::StoreError;
use crate::state_machine::{MAX_READ_LEAVES, StateMachine};
use crate::types::{Command, CommandResponse, LEAF_SIZE, NodeId, ShardState, TypeConfig};

/// Default most leaves read, hashed and written per step (8 MiB of leaves).
pub const DEFAULT_MAX_STEP_LEAVES: u64 = 65_536;
/// Default first back-off after a retryable error.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_millis(100);
/// Default longest back-off between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);

/// Integration limits and retry timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntegratorConfig {
    /// Most leaves per step (one state machine read, one tile write).
    /// Default [`DEFAULT_MAX_STEP_LEAVES`]; clamped to `1..=`
    /// [`MAX_READ_LEAVES`].
    pub max_step_leaves: u64,
    /// First back-off after a retryable error; doubles per consecutive
    /// failure. Default [`DEFAULT_RETRY_MIN`].
    pub retry_min: Duration,
    /// Longest back-off. Default [`DEFAULT_RETRY_MAX`].
    pub retry_max: Duration,
}

impl Default for IntegratorConfig {
    fn default() -> Self {
        IntegratorConfig {
            max_step_leaves: DEFAULT_MAX_STEP_LEAVES,
            retry_min: DEFAULT_RETRY_MIN,
            retry_max: DEFAULT_RETRY_MAX,
        }
    }
}

/// Set once, never cleared: the shard's pipeline hit a fatal error and must
/// not continue until an operator has looked (a restart clears it; if the
/// cause persists, the pipeline halts again). Cheap to clone; shared by the
/// integrator, the publisher and readiness checks.
#[derive(Clone, Debug, Default)]
pub struct HaltFlag(Arc<OnceLock<String>>);

impl HaltFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag with `reason` and logs it at error level; later calls
    /// keep the first reason.
    pub fn halt(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(%reason, "SHARD PIPELINE HALTED: fatal error, operator action needed");
        let _ = self.0.set(reason);
    }

    /// The reason, if the pipeline is halted.
    pub fn reason(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Whether the pipeline is halted.
    pub fn is_halted(&self) -> bool {
        self.0.get().is_some()
    }
}

/// What stopped an integration attempt.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// Storage holds objects a correct log never writes, or the tiles and
    /// Raft disagree, or the shard database is corrupt. Halts the shard.
    #[error("fatal: {0}")]
    Fatal(String),
    /// May pass: the loop backs off and resumes from storage.
    #[error("retryable: {0}")]
    Retryable(String),
    /// This node is no longer the leader; the loop ends.
    #[error("leadership lost")]
    NotLeader,
}

impl From<StorageError> for IntegrationError {
    fn from(e: StorageError) -> Self {
        if e.is_fatal() {
            IntegrationError::Fatal(format!("object storage: {e}"))
        } else {
            // Unavailable/Timeout, and also NotFound (a partial tile
            // missing on resume): retrying after a back-off is the only
            // sensible reaction, and loud logs make it visible.
            IntegrationError::Retryable(format!("object storage ({}): {e}", e.label()))
        }
    }
}

impl From<StoreError> for IntegrationError {
    fn from(e: StoreError) -> Self {
        if e.is_fatal() {
            IntegrationError::Fatal(format!("shard database: {e}"))
        } else {
            IntegrationError::Retryable(format!("shard database: {e}"))
        }
    }
}

/// The latest retryable integration failure, cleared by the next success:
/// while set, the shard is degraded (its object store is failing, e.g. a
/// full disk), refuses new submissions with a retryable error and reports
/// itself not ready. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Degraded(Arc<std::sync::Mutex<Option<String>>>);

impl Degraded {
    /// The current failure, if integration is failing.
    pub fn reason(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, reason: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = reason;
    }
}

/// Everything the loop needs; cloned handles.
#[derive(Clone)]
pub(crate) struct Integrator {
    pub(crate) node_id: NodeId,
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) state_machine: StateMachine,
    pub(crate) store: TileStore,
    pub(crate) config: IntegratorConfig,
    pub(crate) halt: HaltFlag,
    pub(crate) degraded: Degraded,
    /// Turns true once the builders are resumed (storage holds the tiles of
    /// the integrated size): the checkpoint is only re-written after that.
    pub(crate) resumed: Arc<watch::Sender<bool>>,
}

impl Integrator {
    /// Runs until `stop` turns true (or its sender is dropped), leadership
    /// is lost, or a fatal error halts the shard.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let max_step = self.config.max_step_leaves.clamp(1, MAX_READ_LEAVES);
        let mut backoff = self.config.retry_min;
        tracing::info!(node_id = self.node_id, "integrator started");
        loop {
            if *stop.borrow() || self.halt.is_halted() {
                break;
            }
            let attempt = tokio::select! {
                r = self.integrate(max_step) => r,
                _ = stop.wait_for(|s| *s) => break,
            };
            match attempt {
                // `integrate` only returns Ok when stopped.
                Ok(()) => break,
                Err(IntegrationError::NotLeader) => {
                    tracing::info!("integrator stopping: not the leader");
                    break;
                }
                Err(IntegrationError::Fatal(reason)) => {
                    self.halt.halt(format!("integrator: {reason}"));
                    break;
                }
                Err(IntegrationError::Retryable(reason)) => {
                    tracing::warn!(%reason, backoff_ms = backoff.as_millis() as u64, "integration failed; retrying");
                    self.degraded.set(Some(reason));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    backoff = (backoff * 2).min(self.config.retry_max.max(self.config.retry_min));
                }
            }
        }
        tracing::info!(node_id = self.node_id, "integrator stopped");
    }

    /// One session: resume from storage, then integrate every new leaf as it
    /// is applied. Returns only on error (or never; the caller cancels it).
    async fn integrate(&self, max_step: u64) -> Result<(), IntegrationError> {
        let mut states = self.state_machine.subscribe();
        let state = states.borrow_and_update().clone();
        self.check_leader()?;
        let (mut tiles, mut bundles) = self.resume(&state).await?;
        // Storage answers again: submissions may resume.
        self.degraded.set(None);
        self.resumed.send_replace(true);
        loop {
            let state = states.borrow_and_update().clone();
            if tiles.size() >= state.tree_size {
                // Caught up: wait for the next apply.
                if states.changed().await.is_err() {
                    return Err(IntegrationError::Retryable("state machine closed".into()));
                }
                continue;
            }
            self.check_leader()?;
            self.step(&state, &mut tiles, &mut bundles, max_step)
                .await?;
        }
    }

    fn check_leader(&self) -> Result<(), IntegrationError> {
        match not_leader(&self.raft, self.node_id) {
            None => Ok(()),
            Some(_) => Err(IntegrationError::NotLeader),
        }
    }

    /// Builders at the applied integrated size, checked against its root.
    async fn resume(
        &self,
        state: &ShardState,
    ) -> Result<(TileBuilder, BundleBuilder), IntegrationError> {
        let size = state.integrated_size;
        let (tiles, bundles) = if size == 0 {
            (TileBuilder::new(), BundleBuilder::new())
        } else {
            match self.store.resume(size).await {
                Ok(builders) => builders,
                Err(StorageError::NotFound { path }) => {
                    // Tiles are derived from the committed leaves: storage
                    // restored from an older copy (or lost) is rebuilt, and
                    // create-only writes still refuse any tile that differs.
                    tracing::warn!(size, %path, "tiles of the integrated size are missing from storage; rebuilding them from the committed leaves");
                    self.rebuild(size).await?
                }
                Err(e) => return Err(e.into()),
            }
        };
        let expected = if size == 0 {
            EMPTY_ROOT
        } else {
            state.integrated_root
        };
        if tiles.root() != expected {
            return Err(IntegrationError::Fatal(format!(
                "tiles in storage at integrated size {size} have root {}, Raft recorded {}",
                hex(&tiles.root()),
                hex(&expected)
            )));
        }
        tracing::info!(size, tree_size = state.tree_size, "integrator resumed");
        Ok((tiles, bundles))
    }

    /// Builders for `size`, made by re-writing every tile and bundle of the
    /// tree of `size` leaves from the state machine (existing identical
    /// objects are left alone; different ones are a fork).
    async fn rebuild(&self, size: u64) -> Result<(TileBuilder, BundleBuilder), IntegrationError> {
        let step = self.config.max_step_leaves.clamp(1, MAX_READ_LEAVES);
        let mut tiles = TileBuilder::new();
        let mut bundles = BundleBuilder::new();
        let mut start = 0;
        while start < size {
            self.check_leader()?;
            let end = size.min(start + step);
            self.append_and_write(start, end, &mut tiles, &mut bundles)
                .await?;
            start = end;
        }
        tracing::info!(size, "tiles rebuilt from the committed leaves");
        Ok((tiles, bundles))
    }

    /// Reads leaves `[start, end)`, appends them to the builders and writes
    /// the new bundles and tiles create-only. The builders move on before
    /// the write; if it fails, the caller discards them and resumes from
    /// storage (see `TileBuilder`).
    async fn append_and_write(
        &self,
        start: u64,
        end: u64,
        tiles: &mut TileBuilder,
        bundles: &mut BundleBuilder,
    ) -> Result<(), IntegrationError> {
        let (leaves, hashes) = self.read_leaves(start, end).await?;
        let bundle_writes = bundles
            .append(&leaves)
            .map_err(|e| IntegrationError::Fatal(format!("bundle builder at {start}: {e}")))?;
        let tile_writes = tiles
            .append(&hashes)
            .map_err(|e| IntegrationError::Fatal(format!("tile builder at {start}: {e}")))?;
        self.store
            .write_integration(&bundle_writes, &tile_writes)
            .await?;
        Ok(())
    }

    /// Integrates the next at most `max_step` leaves, and proposes
    /// `Integrated` if that reaches a batch boundary.
    async fn step(
        &self,
        state: &ShardState,
        tiles: &mut TileBuilder,
        bundles: &mut BundleBuilder,
        max_step: u64,
    ) -> Result<(), IntegrationError> {
        let start = tiles.size();
        if bundles.size() != start {
            return Err(IntegrationError::Retryable(format!(
                "builders out of step: tiles at {start}, bundles at {}",
                bundles.size()
            )));
        }
        let end = state.tree_size.min(start.saturating_add(max_step));
        self.append_and_write(start, end, tiles, bundles).await?;
        self.degraded.set(None);
        tracing::debug!(start, end, "tiles written");

        let sm = self.state_machine.clone();
        let boundary = tokio::task::spawn_blocking(move || sm.root_at(end))
            .await
            .map_err(|e| IntegrationError::Retryable(format!("root lookup task: {e}")))??;
        let Some(expected) = boundary else {
            if end == state.tree_size {
                // Every tree size is a batch boundary; the database says
                // otherwise.
                return Err(IntegrationError::Fatal(format!(
                    "no root recorded at tree size {end}"
                )));
            }
            // Mid-batch: keep going; the next step reaches a boundary.
            return Ok(());
        };
        let root = tiles.root();
        if root != expected {
            return Err(IntegrationError::Fatal(format!(
                "tiles at size {end} have root {}, the state machine computed {}",
                hex(&root),
                hex(&expected)
            )));
        }
        match propose(&self.raft, Command::Integrated { size: end, root }).await {
            Ok(CommandResponse::Applied) => {
                tracing::debug!(size = end, "integrated");
                Ok(())
            }
            Ok(CommandResponse::Rejected { reason }) => Err(IntegrationError::Retryable(format!(
                "Integrated{{size: {end}}} rejected: {reason}"
            ))),
            Ok(other) => Err(IntegrationError::Retryable(format!(
                "unexpected response to Integrated{{size: {end}}}: {other:?}"
            ))),
            Err(ProposeError::NotLeader(_)) => Err(IntegrationError::NotLeader),
            Err(ProposeError::Raft(e)) => Err(IntegrationError::Retryable(format!("raft: {e}"))),
        }
    }

    /// Leaves `[start, end)` and their leaf hashes, read and hashed off the
    /// async threads.
    async fn read_leaves(
        &self,
        start: u64,
        end: u64,
    ) -> Result<(Vec<[u8; LEAF_SIZE]>, Vec<Hash>), IntegrationError> {
        let sm = self.state_machine.clone();
        tokio::task::spawn_blocking(move || {
            let leaves = sm.leaves(start, end)?;
            let hashes = leaves.iter().map(|l| cairn_tlog::leaf_hash(l)).collect();
            Ok::<_, StoreError>((leaves, hashes))
        })
        .await
        .map_err(|e| IntegrationError::Retryable(format!("leaf read task: {e}")))?
        .map_err(IntegrationError::from)
    }
}

/// Lowercase hex of a hash, for messages.
fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}
