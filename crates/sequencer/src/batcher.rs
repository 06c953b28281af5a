//! The leader's pool: many submissions, one Raft entry per batch.
//!
//! [`Batcher::submit`] answers leaves that are already sequenced at once from
//! the state machine's leaf-hash index (no proposal). The rest wait in a
//! bounded pool; a background task takes what is queued when a proposal slot
//! is free, closes the batch after [`BatcherConfig::max_delay`] (none by
//! default) or at [`BatcherConfig::max_leaves`], and proposes it as *one*
//! `Command::Append` through `raft.client_write`. When
//! the entry is committed and applied, every submitter of the batch gets its
//! leaves' indices from `CommandResponse::Appended`.
//!
//! Backpressure: at most [`BatcherConfig::max_pending`] leaves may be queued
//! or in flight; beyond that, [`ShardError::Pushback`] (the gRPC service maps
//! it to `RESOURCE_EXHAUSTED`, the frontend to 429/503). Accepted leaves hold
//! their share of the limit until their proposal finishes, even if the
//! submitter stopped waiting.
//!
//! Freezing: [`FreezeGate::close`] refuses new leaves ([`LeafStatus::Frozen`])
//! before the leader proposes `Command::Freeze`, and [`FreezeGate::drained`]
//! waits until every leaf accepted before it is proposed, so that a leaf
//! either is in the frozen tree or was refused — never accepted and then
//! dropped. Leaves already sequenced are still answered with their index.
//!
//! Deadlines: a submitter whose deadline passes before its batch commits gets
//! [`LeafStatus::Pending`] for those leaves (Sigsum 202). The proposal
//! continues; a resubmission then finds the leaf in the index. Nothing is lost
//! either way: a leaf is only ever reported `Committed` once its `Append`
//! entry is committed in the Raft log.

use std::sync::Arc;
use std::time::Duration;

use cairn_tlog::Hash;
use openraft::Raft;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::log_store::blocking;
use crate::raft::{ProposeError, not_leader, propose};
use crate::shard::ShardError;
use crate::state_machine::StateMachine;
use crate::types::{Command, CommandResponse, LEAF_SIZE, NodeId, TypeConfig};

/// Default time a batch stays open after its first submission: none. The
/// frontends already batch concurrent submissions (one `AddLeaves` call per
/// batch), so a batch here is whatever is queued when a proposal slot is
/// free: at light load every call is proposed at once, and under load the
/// submissions that arrive while [`DEFAULT_MAX_IN_FLIGHT`] proposals are
/// being committed make the next entry (group commit). A second timed
/// batching layer only added its delay to every leaf's latency.
pub const DEFAULT_MAX_DELAY: Duration = Duration::ZERO;
/// Default most leaves per batch (one Raft entry of 128 KiB).
pub const DEFAULT_MAX_LEAVES: usize = 1024;
/// Default most leaves queued or in flight before submissions are refused.
pub const DEFAULT_MAX_PENDING: usize = 65_536;
/// Default most `Append` proposals in flight at once. More than one lets the
/// next batch fill while the previous one is being fsynced and replicated.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Batching limits. All limits are enforced; zero values are raised to 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatcherConfig {
    /// How long a batch stays open after its first submission before it is
    /// proposed; with zero, it holds what was queued when the slot became
    /// free. Default [`DEFAULT_MAX_DELAY`] (zero).
    pub max_delay: Duration,
    /// Most leaves in one batch (one Raft entry). A submission larger than
    /// this is split over several batches. Default [`DEFAULT_MAX_LEAVES`].
    pub max_leaves: usize,
    /// Most leaves queued or in flight; more are refused with
    /// [`ShardError::Pushback`]. Default [`DEFAULT_MAX_PENDING`].
    pub max_pending: usize,
    /// Most batches proposed and not yet committed at once.
    /// Default [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
}

impl Default for BatcherConfig {
    fn default() -> Self {
        BatcherConfig {
            max_delay: DEFAULT_MAX_DELAY,
            max_leaves: DEFAULT_MAX_LEAVES,
            max_pending: DEFAULT_MAX_PENDING,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// The outcome for one submitted leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafStatus {
    /// Committed in the Raft log and applied: the leaf has this index.
    Committed(u64),
    /// Not committed before the deadline. It stays in the pipeline; submit
    /// it again to learn its index.
    Pending,
    /// Not in the tree, and never will be: the log is frozen (or freezing).
    Frozen,
}

/// The leader's gate for a freeze: closed before `Command::Freeze` is
/// proposed, so that no leaf is accepted that the freeze would then refuse.
/// Cheap to clone; every clone is the same gate.
#[derive(Clone, Debug)]
pub struct FreezeGate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    /// `Some(successor)` while closed. Submissions take the read lock while
    /// they check it *and* take their pending permits, so once `close` has
    /// the write lock, [`FreezeGate::drained`] sees every accepted leaf.
    closing: std::sync::RwLock<Option<String>>,
    pending: Arc<Semaphore>,
    max_pending: usize,
}

impl FreezeGate {
    /// Refuses new leaves from now on, naming `successor`.
    pub fn close(&self, successor: &str) {
        *self
            .inner
            .closing
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(successor.to_owned());
    }

    /// Accepts new leaves again (a freeze that did not commit).
    pub fn reopen(&self) {
        *self
            .inner
            .closing
            .write()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The successor named by [`FreezeGate::close`], while closed.
    pub fn closing(&self) -> Option<String> {
        self.inner
            .closing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until no accepted leaf is queued or in flight, or `deadline`
    /// passes; says which.
    pub async fn drained(&self, deadline: Instant) -> bool {
        loop {
            if self.inner.pending.available_permits() >= self.inner.max_pending {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Where a submission's indices (or its error) are sent.
type Reply = oneshot::Sender<Result<Vec<u64>, ShardError>>;

/// Leaves of one batch slot, waiting to be proposed. Holds its share of the
/// pending limit until its proposal finishes.
struct Submission {
    leaves: Vec<[u8; LEAF_SIZE]>,
    reply: Reply,
    permit: OwnedSemaphorePermit,
}

/// The pool of one shard. Create with [`Batcher::start`] on every node (it
/// refuses work while the node is not the leader); stop with
/// [`Batcher::shutdown`].
///
/// `submit` may be called concurrently from any number of tasks.
pub struct Batcher {
    node_id: NodeId,
    raft: Raft<TypeConfig>,
    state_machine: StateMachine,
    config: BatcherConfig,
    /// Unbounded on purpose: its length is bounded by `pending` permits.
    tx: mpsc::UnboundedSender<Submission>,
    pending: Arc<Semaphore>,
    gate: FreezeGate,
    shutdown: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("node_id", &self.node_id)
            .field("config", &self.config)
            .field("pending_leaves", &self.pending_leaves())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("leaves", &self.leaves.len())
            .finish_non_exhaustive()
    }
}

impl Batcher {
    /// Starts the batching task for the shard whose Raft node is `raft`
    /// (node id `node_id`) and whose state machine is `state_machine`.
    /// Must be called within a tokio runtime.
    pub fn start(
        node_id: NodeId,
        raft: Raft<TypeConfig>,
        state_machine: StateMachine,
        config: BatcherConfig,
    ) -> Batcher {
        let config = BatcherConfig {
            max_delay: config.max_delay,
            max_leaves: config.max_leaves.max(1),
            max_pending: config.max_pending.clamp(1, Semaphore::MAX_PERMITS),
            max_in_flight: config.max_in_flight.max(1),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(run(raft.clone(), config.clone(), rx, shutdown_rx));
        let pending = Arc::new(Semaphore::new(config.max_pending));
        Batcher {
            node_id,
            raft,
            state_machine,
            gate: FreezeGate {
                inner: Arc::new(GateInner {
                    closing: std::sync::RwLock::new(None),
                    pending: Arc::clone(&pending),
                    max_pending: config.max_pending,
                }),
            },
            pending,
            config,
            tx,
            shutdown,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    /// The effective configuration (zero limits raised to 1).
    pub fn config(&self) -> &BatcherConfig {
        &self.config
    }

    /// The gate a freeze closes (see the module docs).
    pub fn gate(&self) -> &FreezeGate {
        &self.gate
    }

    /// Leaves currently queued or in flight.
    pub fn pending_leaves(&self) -> usize {
        self.config
            .max_pending
            .saturating_sub(self.pending.available_permits())
    }

    /// Sequences `leaves` and reports, per leaf and in order, its index or
    /// that it was not committed by `deadline`.
    ///
    /// * Leaves already sequenced are answered from the index without a
    ///   proposal, on any node.
    /// * On a frozen log (applied, or the gate closed for a freeze) the
    ///   other leaves are [`LeafStatus::Frozen`].
    /// * Otherwise this node must be the leader ([`ShardError::NotLeader`]
    ///   with the leader's id and address), and the pool must have room for
    ///   the new leaves ([`ShardError::Pushback`]; nothing is queued then).
    /// * An error from the proposal (leadership lost, Raft failure) fails the
    ///   whole call; resubmitting is always safe (the state machine dedups by
    ///   leaf hash).
    pub async fn submit(
        &self,
        leaves: Vec<[u8; LEAF_SIZE]>,
        deadline: Instant,
    ) -> Result<Vec<LeafStatus>, ShardError> {
        let mut results = vec![LeafStatus::Pending; leaves.len()];
        let known = self.lookup(&leaves).await?;
        let mut new_positions = Vec::new();
        let mut new_leaves = Vec::new();
        for (i, (leaf, index)) in leaves.into_iter().zip(known).enumerate() {
            match (index, results.get_mut(i)) {
                (Some(index), Some(slot)) => *slot = LeafStatus::Committed(index),
                _ => {
                    new_positions.push(i);
                    new_leaves.push(leaf);
                }
            }
        }
        if new_leaves.is_empty() {
            return Ok(results);
        }
        let refuse = |mut results: Vec<LeafStatus>, positions: &[usize]| {
            for &pos in positions {
                if let Some(slot) = results.get_mut(pos) {
                    *slot = LeafStatus::Frozen;
                }
            }
            Ok(results)
        };
        if self.state_machine.state().frozen.is_some() {
            return refuse(results, &new_positions);
        }
        if let Some(hint) = not_leader(&self.raft, self.node_id) {
            return Err(ShardError::NotLeader(hint));
        }
        if *self.shutdown.borrow() {
            return Err(ShardError::ShuttingDown);
        }
        let requested = new_leaves.len();
        let pushback = || ShardError::Pushback {
            requested,
            limit: self.config.max_pending,
        };
        let count = u32::try_from(requested).map_err(|_| pushback())?;
        let permit = {
            let closing = self
                .gate
                .inner
                .closing
                .read()
                .unwrap_or_else(|e| e.into_inner());
            if closing.is_some() {
                drop(closing);
                return refuse(results, &new_positions);
            }
            Arc::clone(&self.pending)
                .try_acquire_many_owned(count)
                .map_err(|_| pushback())?
        };

        // One submission per batch-sized chunk, so no batch exceeds
        // `max_leaves` however large the call. Each chunk carries its share
        // of the permit.
        let chunk_count = new_leaves.len().div_ceil(self.config.max_leaves);
        let mut permit = Some(permit);
        let mut waiting = Vec::with_capacity(chunk_count);
        let mut leaves_iter = new_leaves.into_iter();
        let mut positions_iter = new_positions.into_iter();
        for k in 0..chunk_count {
            let chunk: Vec<[u8; LEAF_SIZE]> =
                leaves_iter.by_ref().take(self.config.max_leaves).collect();
            let chunk_positions: Vec<usize> = positions_iter.by_ref().take(chunk.len()).collect();
            let share = if k + 1 == chunk_count {
                permit.take()
            } else {
                permit.as_mut().and_then(|p| p.split(chunk.len()))
            };
            let Some(share) = share else {
                return Err(ShardError::Rejected(
                    "pending-limit permit split failed".into(),
                ));
            };
            let (reply, rx) = oneshot::channel();
            let submission = Submission {
                leaves: chunk.clone(),
                reply,
                permit: share,
            };
            self.tx
                .send(submission)
                .map_err(|_| ShardError::ShuttingDown)?;
            waiting.push((chunk_positions, chunk, rx));
        }

        for (chunk_positions, chunk, rx) in waiting {
            match tokio::time::timeout_at(deadline, rx).await {
                // Deadline passed: these leaves stay `Pending`.
                Err(_elapsed) => {}
                Ok(Err(_dropped)) => return Err(ShardError::ShuttingDown),
                // The log froze before this batch: a leaf of it that is in
                // the tree anyway (submitted twice at once) keeps its index.
                Ok(Ok(Err(ShardError::Frozen(_)))) => {
                    let known = self.lookup(&chunk).await?;
                    for (pos, index) in chunk_positions.into_iter().zip(known) {
                        if let Some(slot) = results.get_mut(pos) {
                            *slot = index.map_or(LeafStatus::Frozen, LeafStatus::Committed);
                        }
                    }
                }
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Ok(Ok(indices))) => {
                    if indices.len() != chunk_positions.len() {
                        return Err(ShardError::Rejected(format!(
                            "{} indices for {} leaves",
                            indices.len(),
                            chunk_positions.len()
                        )));
                    }
                    for (pos, index) in chunk_positions.into_iter().zip(indices) {
                        if let Some(slot) = results.get_mut(pos) {
                            *slot = LeafStatus::Committed(index);
                        }
                    }
                }
            }
        }
        Ok(results)
    }

    /// The index of each leaf, if already sequenced (read off the async
    /// threads: RocksDB reads block).
    async fn lookup(&self, leaves: &[[u8; LEAF_SIZE]]) -> Result<Vec<Option<u64>>, ShardError> {
        let hashes: Vec<Hash> = leaves.iter().map(|l| cairn_tlog::leaf_hash(l)).collect();
        let sm = self.state_machine.clone();
        Ok(blocking(move || sm.leaf_indices(&hashes)).await?)
    }

    /// Stops taking submissions, lets the batches already proposed finish
    /// (their submitters get their answers) and fails queued, not yet
    /// proposed submissions with [`ShardError::ShuttingDown`]. Idempotent.
    /// Call before shutting down Raft.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "batcher task failed");
        }
    }
}

/// The batching loop: one batch at a time, at most `max_in_flight`
/// proposals outstanding.
async fn run(
    raft: Raft<TypeConfig>,
    config: BatcherConfig,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    mut shutdown: watch::Receiver<bool>,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
    let mut proposals = JoinSet::new();
    // A submission that did not fit the previous batch opens the next one.
    let mut carry: Option<Submission> = None;
    'outer: loop {
        while proposals.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = Arc::clone(&in_flight).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let first = match carry.take() {
            Some(s) => s,
            None => tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => s,
                    None => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            },
        };
        let mut count = first.leaves.len();
        let mut batch = vec![first];
        let close_at = Instant::now() + config.max_delay;
        while count < config.max_leaves {
            tokio::select! {
                biased;
                s = rx.recv() => match s {
                    Some(s) if count + s.leaves.len() > config.max_leaves => {
                        carry = Some(s);
                        break;
                    }
                    Some(s) => {
                        count += s.leaves.len();
                        batch.push(s);
                    }
                    None => {
                        proposals.spawn(propose_batch(raft.clone(), batch, slot));
                        break 'outer;
                    }
                },
                _ = tokio::time::sleep_until(close_at) => break,
            }
        }
        proposals.spawn(propose_batch(raft.clone(), batch, slot));
    }
    // Queued but never proposed: answer now rather than leave them waiting.
    rx.close();
    drop(carry);
    while let Ok(s) = rx.try_recv() {
        let _ = s.reply.send(Err(ShardError::ShuttingDown));
    }
    // Proposed batches finish so their submitters learn their indices.
    while proposals.join_next().await.is_some() {}
}

/// Proposes one batch as a single `Append` and answers its submitters.
async fn propose_batch(
    raft: Raft<TypeConfig>,
    batch: Vec<Submission>,
    _slot: OwnedSemaphorePermit,
) {
    let total: usize = batch.iter().map(|s| s.leaves.len()).sum();
    let mut leaves = Vec::with_capacity(total * LEAF_SIZE);
    for s in &batch {
        for leaf in &s.leaves {
            leaves.extend_from_slice(leaf);
        }
    }
    let started = Instant::now();
    let result = propose(&raft, Command::Append { leaves }).await;
    tracing::debug!(
        leaves = total,
        submissions = batch.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        ok = result.is_ok(),
        "append batch proposed"
    );
    // The proposal is finished: free the batch's share of the pending limit
    // before anyone is answered, so an answered submitter that submits again
    // finds the room its leaves took.
    let waiting: Vec<(usize, Reply)> = batch
        .into_iter()
        .map(|s| {
            drop(s.permit);
            (s.leaves.len(), s.reply)
        })
        .collect();
    match result {
        Ok(CommandResponse::Appended { indices }) if indices.len() == total => {
            let mut indices = indices.into_iter();
            for (count, reply) in waiting {
                let mine: Vec<u64> = indices.by_ref().take(count).collect();
                let _ = reply.send(Ok(mine));
            }
        }
        Ok(CommandResponse::Frozen(frozen)) => {
            for (_, reply) in waiting {
                let _ = reply.send(Err(ShardError::Frozen(frozen.clone())));
            }
        }
        Ok(other) => {
            tracing::error!(response = ?other, leaves = total, "unexpected response to Append");
            let reason = format!("{other:?} for an Append of {total} leaves");
            for (_, reply) in waiting {
                let _ = reply.send(Err(ShardError::Rejected(reason.clone())));
            }
        }
        Err(e) => {
            if !matches!(e, ProposeError::NotLeader(_)) {
                tracing::warn!(error = %e, leaves = total, "append proposal failed");
            }
            for (_, reply) in waiting {
                let _ = reply.send(Err(ShardError::from(e.clone())));
            }
        }
    }
}
