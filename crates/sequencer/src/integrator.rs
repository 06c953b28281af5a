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
//!    `integrated_root` — storage that disagrees with Raft is fatal. If the
//!    tiles of that size are missing (storage lost them, or an older copy
//!    was put back), they are rebuilt from the committed leaves: the state
//!    machine's, and for the leaves it pruned (those of full entry bundles,
//!    see [`crate::state_machine`]) the full bundles still in storage, each
//!    leaf checked against the leaf-hash index. Leaves in neither place halt
//!    the shard.
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
//! [fatal](StorageError::is_fatal) storage error, a root mismatch, a
//! [fatal](StoreError::is_fatal) shard-database error — corruption, IO
//! errors, a panicked read task) halt the shard's pipeline: the loop stops,
//! logs at error level and sets the [`HaltFlag`] that readiness reports.
//! Retryable ones (object store unavailable, a rejected proposal, a Raft
//! hiccup, a busy database) back off exponentially and start again at
//! step 1. Losing leadership ends the loop.
//! Every write is idempotent, so re-running any step — on this leader after
//! an error, or on a new leader — is safe.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cairn_storage::{StorageError, TileStore};
use cairn_tlog::tile::{BundleBuilder, BundleId, TileBuilder};
use cairn_tlog::{EMPTY_ROOT, Hash};
use futures::{StreamExt, TryStreamExt};
use openraft::Raft;
use tokio::sync::watch;

use crate::log_store::{StoreError, blocking};
use crate::raft::{ProposeError, not_leader, propose};
use crate::state_machine::{MAX_READ_LEAVES, StateMachine};
use crate::types::{Command, CommandResponse, LEAF_SIZE, NodeId, ShardState, TypeConfig};

/// Default most leaves read, hashed and written per step (8 MiB of leaves).
pub const DEFAULT_MAX_STEP_LEAVES: u64 = 65_536;
/// Default first back-off after a retryable error.
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_millis(100);
/// Default longest back-off between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10);
/// Default [`IntegratorConfig::partial_tile_grace`]: ten minutes, far
/// longer than a client takes from reading a checkpoint to fetching its
/// tiles, and short enough that the partials of a busy log do not pile up.
pub const DEFAULT_PARTIAL_TILE_GRACE: Duration = Duration::from_secs(600);

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
    /// How long a partial tile or bundle is kept after the published tree
    /// has outgrown it, before the leader deletes it (see [`crate::gc`]);
    /// `None` keeps every partial forever. Default
    /// [`DEFAULT_PARTIAL_TILE_GRACE`].
    pub partial_tile_grace: Option<Duration>,
}

impl Default for IntegratorConfig {
    fn default() -> Self {
        IntegratorConfig {
            max_step_leaves: DEFAULT_MAX_STEP_LEAVES,
            retry_min: DEFAULT_RETRY_MIN,
            retry_max: DEFAULT_RETRY_MAX,
            partial_tile_grace: Some(DEFAULT_PARTIAL_TILE_GRACE),
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
                hex::encode(tiles.root()),
                hex::encode(expected)
            )));
        }
        tracing::info!(size, tree_size = state.tree_size, "integrator resumed");
        Ok((tiles, bundles))
    }

    /// Builders for `size`, made by re-writing every tile and bundle of the
    /// tree of `size` leaves from the committed leaves (existing identical
    /// objects are left alone; different ones are a fork). Leaves the state
    /// machine pruned are read from their full entry bundles, each checked
    /// against the state machine's leaf-hash index; leaves in neither place
    /// are a fatal error (see [`Integrator::leaves_from_bundles`]).
    async fn rebuild(&self, size: u64) -> Result<(TileBuilder, BundleBuilder), IntegrationError> {
        let step = self.config.max_step_leaves.clamp(1, MAX_READ_LEAVES);
        let mut tiles = TileBuilder::new();
        let mut bundles = BundleBuilder::new();
        let mut start = 0;
        while start < size {
            self.check_leader()?;
            let end = size.min(start + step);
            self.append_and_write(
                start,
                end,
                LeafSource::StateMachineOrBundles,
                &mut tiles,
                &mut bundles,
            )
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
        source: LeafSource,
        tiles: &mut TileBuilder,
        bundles: &mut BundleBuilder,
    ) -> Result<(), IntegrationError> {
        let (leaves, hashes) = match source {
            LeafSource::StateMachine => self.read_leaves(start, end).await?,
            LeafSource::StateMachineOrBundles => self.read_committed_leaves(start, end).await?,
        };
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
        // Leaves above the integrated size are never pruned.
        self.append_and_write(start, end, LeafSource::StateMachine, tiles, bundles)
            .await?;
        self.degraded.set(None);
        tracing::debug!(start, end, "tiles written");

        let sm = self.state_machine.clone();
        let boundary = blocking(move || sm.root_at(end)).await?;
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
                hex::encode(root),
                hex::encode(expected)
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
        Ok(blocking(move || {
            let leaves = sm.leaves(start, end)?;
            let hashes = leaves.iter().map(|l| cairn_tlog::leaf_hash(l)).collect();
            Ok::<_, StoreError>((leaves, hashes))
        })
        .await?)
    }
}

/// Where [`Integrator::append_and_write`] reads leaves from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafSource {
    /// The state machine only: integration of new leaves, which are never
    /// pruned.
    StateMachine,
    /// The state machine, and the full entry bundles for the leaves it
    /// pruned: rebuilding tiles below the integrated size.
    StateMachineOrBundles,
}

impl Integrator {
    /// Leaves `[start, end)` and their hashes for a rebuild: from the state
    /// machine, except the pruned ones, which come from their full entry
    /// bundles ([`leaves_from_bundles`](Self::leaves_from_bundles)).
    async fn read_committed_leaves(
        &self,
        start: u64,
        end: u64,
    ) -> Result<(Vec<[u8; LEAF_SIZE]>, Vec<Hash>), IntegrationError> {
        let sm = self.state_machine.clone();
        let read = blocking(move || sm.leaves(start, end)).await;
        let pruned_below = match read {
            Ok(leaves) => {
                let hashes = leaves.iter().map(|l| cairn_tlog::leaf_hash(l)).collect();
                return Ok((leaves, hashes));
            }
            Err(StoreError::Pruned { pruned_below, .. }) => pruned_below,
            Err(e) => return Err(e.into()),
        };
        let split = pruned_below.min(end);
        let (mut leaves, mut hashes) = self.leaves_from_bundles(start, split).await?;
        if split < end {
            let (more, more_hashes) = self.read_leaves(split, end).await?;
            leaves.extend(more);
            hashes.extend(more_hashes);
        }
        Ok((leaves, hashes))
    }

    /// Leaves `[start, end)`, all below the prune point, read from their
    /// full entry bundles in object storage and checked one by one against
    /// the state machine's leaf-hash index (committed state): a bundle that
    /// holds anything else is fatal, and so is a missing bundle — the
    /// leaves are then neither in the state machine nor in the object store,
    /// and the shard halts rather than build tiles from a guess.
    async fn leaves_from_bundles(
        &self,
        start: u64,
        end: u64,
    ) -> Result<(Vec<[u8; LEAF_SIZE]>, Vec<Hash>), IntegrationError> {
        const WIDTH: u64 = cairn_tlog::tile::TILE_WIDTH as u64;
        /// Bundles read concurrently.
        const IN_FLIGHT: usize = 8;
        if start >= end {
            return Ok((Vec::new(), Vec::new()));
        }
        let ids = (start / WIDTH..=(end - 1) / WIDTH)
            .map(|index| {
                BundleId::full(index)
                    .map_err(|e| IntegrationError::Fatal(format!("bundle {index}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bundles: Vec<_> = futures::stream::iter(ids)
            .map(|id| async move {
                let bytes = self.store.get(&id.path()).await?;
                Ok::<_, IntegrationError>((id, bytes))
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        let mut leaves = Vec::new();
        for (id, bytes) in &bundles {
            let path = id.path();
            let Some(bytes) = bytes else {
                return Err(IntegrationError::Fatal(format!(
                    "leaves {start}..{end} are neither in the state machine nor in the \
                     object store: the state machine pruned the leaves below {}, and the \
                     entry bundle {path} is missing",
                    self.state_machine.pruned_below()
                )));
            };
            let entries = id
                .decode(bytes)
                .map_err(|e| IntegrationError::Fatal(format!("{path}: {e}")))?;
            let first = id.index() * WIDTH;
            for (position, entry) in entries.iter().enumerate() {
                let index = first + position as u64;
                if !(start..end).contains(&index) {
                    continue;
                }
                let leaf = <[u8; LEAF_SIZE]>::try_from(*entry).map_err(|_| {
                    IntegrationError::Fatal(format!(
                        "{path}: entry {position} has {} bytes",
                        entry.len()
                    ))
                })?;
                leaves.push(leaf);
            }
        }
        let sm = self.state_machine.clone();
        blocking(move || {
            let mut hashes = Vec::with_capacity(leaves.len());
            for (offset, leaf) in leaves.iter().enumerate() {
                let index = start + offset as u64;
                let hash = cairn_tlog::leaf_hash(leaf);
                if sm.leaf_index(&hash)? != Some(index) {
                    return Err(IntegrationError::Fatal(format!(
                        "entry bundle {} holds at index {index} a leaf the state machine \
                         did not sequence there",
                        BundleId::full(index / WIDTH).map_or_else(|_| "?".into(), |id| id.path())
                    )));
                }
                hashes.push(hash);
            }
            Ok((leaves, hashes))
        })
        .await
    }
}
