//! One shard on one node: its RocksDB, its Raft group member, and the
//! pipeline tasks (batcher, and — while this node leads — integrator and
//! checkpoint recovery).
//!
//! Lifecycle:
//!
//! * [`Shard::start`] opens `data_dir` (RocksDB: Raft log and state
//!   machine), starts Raft, makes a fresh node a one-member cluster when
//!   [`ShardConfig::bootstrap`] is set, and spawns the tasks.
//! * Every time this node becomes leader (including after a restart) the
//!   integrator resumes from the *applied* state, and once everything in the
//!   local log is applied the `checkpoint` object is re-written for the
//!   applied cosigned head: recovery needs nothing but the Raft log and the
//!   state machine. On leadership loss the integrator stops.
//! * [`Shard::shutdown`] stops the tasks and Raft. Nothing acknowledged is
//!   lost: a leaf is reported committed only once its `Append` entry is
//!   committed (fsynced) in the Raft log.
//!
//! Reads ([`Shard::state`], [`Shard::tree_heads`], [`Shard::leaf_index`])
//! serve this node's applied state on any node; writes ([`Shard::submit`],
//! [`Shard::publish_cosigned`]) need the leader and fail with
//! [`ShardError::NotLeader`] elsewhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::trace::traced;
use cairn_sigsum::tree_head::SignedTreeHead;
use cairn_sigsum::{KeyHash, PublicKey, SigningKey};
use cairn_storage::{StorageError, TileStore};
use cairn_tlog::Hash;
use openraft::{Raft, ServerState};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::batcher::{Batcher, BatcherConfig, FreezeGate, LeafStatus};
use crate::integrator::{Degraded, HaltFlag, Integrator, IntegratorConfig};
use crate::log_store::{LockHolder, StoreError, blocking, open_shard_db};
use crate::metrics::{ShardMetrics, Step};
use crate::network::{GrpcNetworkFactory, RaftTransportService};
use crate::raft::{
    LeaderHint, ProposeError, initialize_single_node, not_leader, propose, start_raft,
};
use crate::record::{RecordError, SignedRecord};
use crate::signer::{Signer, SignerError, WitnessKeys};
use crate::state_machine::{AppliedState, SnapshotPoint, StateMachine, snapshot_due};
use crate::types::{Command, CommandResponse, CosignedHead, Frozen, LEAF_SIZE, NodeId, TypeConfig};

/// Most attempts to re-write the `checkpoint` object on leadership gain when
/// the object store is unavailable; later publications write it anyway.
pub const RECOVERY_CHECKPOINT_ATTEMPTS: u32 = 5;

/// How long leadership recovery waits for the local log to be applied before
/// re-writing the checkpoint object.
pub const RECOVERY_APPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Shard::start`] waits for a database that an earlier instance
/// of the shard *in this process* still holds open. openraft's state-machine
/// worker exits asynchronously after Raft shutdown, so the previous
/// instance's database closes a moment after [`Shard::shutdown`] returns.
pub const OPEN_LOCK_WAIT: Duration = Duration::from_secs(10);

/// How long a freeze waits for the leaves accepted before it to be
/// proposed; past it the freeze goes ahead, and a leaf still queued is
/// refused by the state machine (its submitter was not yet answered 200).
pub const FREEZE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a scheduled freeze that is due is retried while it cannot be
/// done (no leader here yet, the leader not yet checked, Raft trouble).
const FREEZE_RETRY: Duration = Duration::from_secs(1);

/// Most Raft log entries a replica may hold unapplied and still be ready:
/// a replica further behind serves reads that are too old (a few seconds
/// of batches at full load).
pub const READY_MAX_APPLY_LAG: u64 = 1_000;

/// Longest a leader of several voters may go without an acknowledgement
/// from a quorum and still be ready: past it, it is probably cut off and
/// about to be replaced (several election timeouts).
pub const READY_MAX_QUORUM_SILENCE: Duration = Duration::from_secs(5);

/// Longest successor name accepted (a shard name).
pub const MAX_SUCCESSOR_LEN: usize = 64;

/// How long a requested snapshot may take before it is requested again
/// (openraft drops a request while a build is running, and a failed build
/// leaves the point where it was).
const SNAPSHOT_RETRY: Duration = Duration::from_secs(60);

/// Opens the shard database off the async threads, waiting up to
/// [`OPEN_LOCK_WAIT`] while this process still holds its lock (an in-process
/// restart). A lock held by another process fails at once.
pub(crate) async fn open_db(dir: &std::path::Path) -> Result<Arc<rocksdb::DB>, StoreError> {
    let deadline = Instant::now() + OPEN_LOCK_WAIT;
    loop {
        let d = dir.to_path_buf();
        match blocking(move || open_shard_db(&d)).await {
            Ok(db) => return Ok(db),
            Err(StoreError::Locked {
                holder: LockHolder::ThisProcess,
                ..
            }) if Instant::now() < deadline => {
                tracing::debug!(dir = %dir.display(), "database still held by a previous instance; waiting");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Everything one shard on one node needs.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// Shard name: the Raft group name on the transport, the gRPC `shard`
    /// field, and usually the object-store prefix.
    pub name: String,
    /// This node's Raft id in the shard's group.
    pub node_id: NodeId,
    /// The shard's RocksDB directory (Raft log and state machine), e.g.
    /// `DIR/raft/<shard>/`. Created if missing; exclusively locked while open.
    pub data_dir: PathBuf,
    /// The log's Ed25519 key. Its public key names the log (origin
    /// `sigsum.org/v1/tree/<key hash>`); a data dir whose published head was
    /// signed by another key is refused at start.
    pub signing_key: SigningKey,
    /// The witness keys of the shard's policy. A cosigned head may only carry
    /// cosignatures of these witnesses (their keys are needed to write the
    /// cosignature lines of the `checkpoint` object).
    pub witnesses: Vec<PublicKey>,
    /// Where the shard's tiles and checkpoint live.
    pub tile_store: TileStore,
    /// This node's address in the Raft membership, `http://host:port`: the
    /// gRPC server that serves both the Raft transport and the sequencer
    /// service (see [`crate::service::grpc_router`]). Followers hand it out
    /// as the leader's address.
    pub raft_addr: String,
    /// openraft settings; [`crate::raft::default_raft_config`] by default.
    pub raft_config: openraft::Config,
    /// Raft client connections; `None` makes a fresh pool. Pass one factory
    /// (any shard) to share connections between the shards of a node.
    pub network: Option<GrpcNetworkFactory>,
    /// The node's Raft transport server; the shard registers its Raft there
    /// so peers reach it (and unregisters on shutdown). `None` for a
    /// single-node shard nobody needs to reach.
    pub transport: Option<RaftTransportService>,
    /// The node's record of the largest tree head it signed
    /// ([`crate::record`]). Must live outside `data_dir`, so that restoring
    /// an old copy of the database does not restore an old record with it.
    /// Default: `data_dir` with `.signed-head` appended.
    pub signed_record: PathBuf,
    /// On a fresh data dir, make this node a one-member cluster (`cairnd
    /// dev`, or the first node of a new cluster). Ignored on a used data dir.
    pub bootstrap: bool,
    /// Batching limits; see [`BatcherConfig`] for the defaults.
    pub batcher: BatcherConfig,
    /// Integration limits; see [`IntegratorConfig`] for the defaults.
    pub integrator: IntegratorConfig,
    /// Temporal rotation: the log freezes itself (as [`Shard::freeze`]
    /// with [`ShardConfig::successor`]) once the clock passes this time.
    /// The leader does it; nodes may disagree on the time by their clock
    /// skew. `None` (the default): only an operator freezes the log.
    pub freeze_at: Option<std::time::SystemTime>,
    /// The successor named by a scheduled freeze. Default empty.
    pub successor: String,
}

impl ShardConfig {
    /// A configuration with the documented defaults: bootstrap on, default
    /// Raft, batching and integration settings, no transport registration,
    /// no witnesses.
    pub fn new(
        name: impl Into<String>,
        node_id: NodeId,
        data_dir: impl Into<PathBuf>,
        signing_key: SigningKey,
        tile_store: TileStore,
        raft_addr: impl Into<String>,
    ) -> Self {
        let data_dir: PathBuf = data_dir.into();
        let mut signed_record = data_dir.clone().into_os_string();
        signed_record.push(".signed-head");
        ShardConfig {
            name: name.into(),
            node_id,
            signed_record: signed_record.into(),
            data_dir,
            signing_key,
            witnesses: Vec::new(),
            tile_store,
            raft_addr: raft_addr.into(),
            raft_config: crate::raft::default_raft_config(),
            network: None,
            transport: None,
            bootstrap: true,
            batcher: BatcherConfig::default(),
            integrator: IntegratorConfig::default(),
            freeze_at: None,
            successor: String::new(),
        }
    }
}

/// Why a shard call (or a call of its [`Batcher`]) failed.
/// [`ShardError::is_retryable`] tells callers whether repeating the same
/// call later can succeed; the gRPC status of each variant is in
/// [`crate::service`].
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The shard could not be opened or started (database, Raft start,
    /// membership initialization). Not retryable without operator action.
    #[error("starting shard {shard}: {reason}")]
    Start {
        /// The shard.
        shard: String,
        /// What failed.
        reason: String,
    },
    /// The data dir holds a published head that the configured key did not
    /// sign: it belongs to another log.
    #[error("the shard data was published under another log key (origin is {origin})")]
    WrongKey {
        /// The origin of the configured key.
        origin: String,
    },
    /// This node is not the leader. Retry on the leader.
    #[error("not the leader ({0})")]
    NotLeader(LeaderHint),
    /// Too many leaves pending. Retry after a short delay.
    #[error("pushback: {requested} leaves would exceed the limit of {limit} pending leaves")]
    Pushback {
        /// Leaves refused.
        requested: usize,
        /// The pending limit.
        limit: usize,
    },
    /// The shard's pipeline hit a fatal error and is halted.
    #[error("shard pipeline halted: {0}")]
    Halted(String),
    /// A cosigned head that does not verify, or names unknown witnesses.
    #[error("invalid cosigned head: {0}")]
    InvalidHead(#[from] SignerError),
    /// A cosigned head whose size is below the published one.
    #[error("cosigned size {requested} is below the published size {published}")]
    Stale {
        /// The published size.
        published: u64,
        /// The offered size.
        requested: u64,
    },
    /// A cosigned head for a size that is not integrated yet, or whose root
    /// is not the log's root at that size.
    #[error("cosigned head for size {size} does not match the integrated tree: {reason}")]
    NotInTree {
        /// The offered size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// The state machine rejected the proposal, or answered it with
    /// something other than what the command calls for. Not retryable with
    /// the same input.
    #[error("rejected by the state machine: {0}")]
    Rejected(String),
    /// The signer refused to sign the applied state (it is inconsistent:
    /// the local database is corrupt).
    #[error("refusing to sign: {0}")]
    Signing(SignerError),
    /// The object store failed (see [`StorageError`] for fatal vs retryable).
    #[error("object storage: {0}")]
    Storage(#[from] StorageError),
    /// The local shard database failed; [`StoreError::is_fatal`] says
    /// whether it may pass (a snapshot being installed, a busy database) or
    /// the replica's database is unusable.
    #[error("shard database: {0}")]
    Store(#[from] StoreError),
    /// Raft failed or is shutting down.
    #[error("raft: {0}")]
    Raft(String),
    /// The shard (or its batcher, before the submission was proposed) is
    /// shutting down.
    #[error("the shard is shutting down")]
    ShuttingDown,
    /// Signing the applied state would contradict (or fall behind) a head
    /// this node signed before; see [`RecordError::is_retryable`].
    #[error("refusing to sign: {0}")]
    Record(#[from] RecordError),
    /// Tiles cannot be written right now (object store failing or full).
    /// Retry later.
    #[error("the log cannot write its tiles right now ({0}); retry later")]
    Degraded(String),
    /// An operator request that cannot be done in this state (e.g. creating
    /// a group over existing state). Not retryable as is.
    #[error("refused: {0}")]
    Refused(String),
    /// This node leads but has not yet checked its state against what was
    /// published (the checkpoint object, its signed-head record). Retry
    /// shortly.
    #[error("the leader is checking its state against the published log; retry shortly")]
    NotCleared,
    /// The log is frozen: it adds no leaf after its final size.
    #[error("{}", frozen_message(.0))]
    Frozen(Frozen),
}

/// The human-readable refusal of a frozen log.
pub fn frozen_message(frozen: &Frozen) -> String {
    let mut message = format!(
        "this log is frozen at tree size {} and accepts no new leaves",
        frozen.size
    );
    if !frozen.successor.is_empty() {
        message.push_str(&format!(
            "; submit to its successor, shard {:?}",
            frozen.successor
        ));
    }
    message
}

impl ShardError {
    /// Whether the same call may succeed later (on this node or, for
    /// [`ShardError::NotLeader`], on the leader). Errors with a typed
    /// source defer to its classification: [`StoreError::is_fatal`],
    /// [`StorageError::is_retryable`], [`RecordError::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        match self {
            ShardError::Store(e) => !e.is_fatal(),
            ShardError::NotLeader(_)
            | ShardError::Pushback { .. }
            | ShardError::Raft(_)
            | ShardError::NotInTree { .. }
            | ShardError::NotCleared
            | ShardError::Degraded(_) => true,
            ShardError::Storage(e) => e.is_retryable(),
            ShardError::Record(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<ProposeError> for ShardError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NotLeader(h) => ShardError::NotLeader(h),
            ProposeError::Raft(m) => ShardError::Raft(m),
        }
    }
}

/// A shard's tree heads as this node has applied them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeHeads {
    /// Leaves committed and applied (may be ahead of the signed size).
    pub tree_size: u64,
    /// The tree head signed at the applied integrated size.
    pub signed: SignedTreeHead,
    /// The latest published cosigned tree head, if any.
    pub cosigned: Option<CosignedHead>,
    /// Set once the log is frozen.
    pub frozen: Option<Frozen>,
}

/// Why a leader may not act on its applied state yet.
#[derive(Debug)]
enum WorldCheck {
    /// The published log could not be read; try again.
    Retry(String),
    /// What was published cannot be trusted or read: halt.
    Fatal(String),
    /// This node's own state is behind or contradicts what was published
    /// (a stale backup restored, a lost disk): halt, and leave the group's
    /// work to the others (see [`Pipeline::lead_term`]).
    Stale(String),
}

impl WorldCheck {
    /// The reason of a fatal outcome, `None` for [`WorldCheck::Retry`].
    fn fatal(&self) -> Option<&str> {
        match self {
            WorldCheck::Retry(_) => None,
            WorldCheck::Fatal(r) | WorldCheck::Stale(r) => Some(r),
        }
    }
}

/// The outcome of [`Pipeline::confirm_leadership`].
enum Confirmed {
    /// A quorum confirmed it; everything committed is applied.
    Yes,
    /// A newer term exists, or the local view no longer says leader.
    NotLeader(String),
    /// The shard is stopping.
    Stopped,
}

/// What the leadership task needs (cloned handles).
#[derive(Clone)]
struct Pipeline {
    name: String,
    node_id: NodeId,
    raft: Raft<TypeConfig>,
    state_machine: StateMachine,
    signer: Arc<Signer>,
    witnesses: Arc<WitnessKeys>,
    store: TileStore,
    integrator: IntegratorConfig,
    halt: HaltFlag,
    /// Serializes checkpoint writes so they happen in applied order.
    publish_lock: Arc<Mutex<()>>,
    /// The largest head this node signed, kept outside its database.
    record: Arc<SignedRecord>,
    /// Set while integration keeps failing (object store down or full).
    degraded: Degraded,
    /// True while this node leads and has checked its applied state against
    /// the published log this term; submissions wait for it.
    cleared: Arc<watch::Sender<bool>>,
    /// The batcher's gate, which a freeze closes first.
    gate: FreezeGate,
    /// What the pipeline measures about itself.
    metrics: Arc<ShardMetrics>,
}

/// One running shard. Share it behind an `Arc`; every method takes `&self`
/// and may be called concurrently. Call [`Shard::shutdown`] before dropping
/// it, or its tasks keep running.
pub struct Shard {
    pipeline: Pipeline,
    batcher: Batcher,
    transport: Option<RaftTransportService>,
    stop: watch::Sender<bool>,
    leadership: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("name", &self.pipeline.name)
            .field("node_id", &self.pipeline.node_id)
            .field("origin", &self.pipeline.signer.origin())
            .field("halted", &self.pipeline.halt.reason())
            .field("batcher", &self.batcher)
            .finish_non_exhaustive()
    }
}

impl Shard {
    /// Opens and starts the shard (see the module docs). Fails with
    /// [`ShardError::Start`] if the database or Raft cannot be started and
    /// [`ShardError::WrongKey`] if the data belongs to another log key.
    pub async fn start(config: ShardConfig) -> Result<Shard, ShardError> {
        let name = config.name.clone();
        let start_err = |reason: String| ShardError::Start {
            shard: name.clone(),
            reason,
        };
        let signer =
            Signer::new(config.signing_key.clone()).map_err(|e| start_err(e.to_string()))?;
        let record =
            SignedRecord::open(&config.signed_record).map_err(|e| start_err(e.to_string()))?;
        let db = open_db(&config.data_dir)
            .await
            .map_err(|e| start_err(format!("opening {}: {e}", config.data_dir.display())))?;
        let network = match &config.network {
            Some(n) => n.for_shard(name.as_str()),
            None => GrpcNetworkFactory::new(config.node_id, name.as_str()),
        };
        let (raft, state_machine) = start_raft(
            config.node_id,
            &name,
            db,
            config.raft_config.clone(),
            network,
        )
        .await
        .map_err(|e| start_err(e.to_string()))?;

        // Refuse to continue a log published under another key: it would
        // sign a second, different history for the same data.
        if let Some(head) = state_machine.state().into_inner().cosigned
            && signer
                .verify_tree_head(head.size, &head.root, &head.signature)
                .is_err()
        {
            let _ = raft.shutdown().await;
            return Err(ShardError::WrongKey {
                origin: signer.origin().to_owned(),
            });
        }

        if let Some(transport) = &config.transport {
            transport.register(name.as_str(), raft.clone());
        }
        if config.bootstrap {
            match initialize_single_node(&raft, config.node_id, config.raft_addr.as_str()).await {
                Ok(true) => tracing::info!(shard = %name, "initialized a new single-node shard"),
                Ok(false) => {}
                Err(e) => {
                    if let Some(transport) = &config.transport {
                        transport.unregister(&name);
                    }
                    let _ = raft.shutdown().await;
                    return Err(start_err(e.to_string()));
                }
            }
        }

        let batcher = Batcher::start(
            config.node_id,
            raft.clone(),
            state_machine.clone(),
            BatcherConfig {
                // The state machine refuses larger `Append`s.
                max_leaves: config
                    .batcher
                    .max_leaves
                    .min(crate::state_machine::MAX_APPEND_LEAVES),
                ..config.batcher.clone()
            },
        );
        let pipeline = Pipeline {
            name: name.clone(),
            node_id: config.node_id,
            raft,
            state_machine,
            signer: Arc::new(signer),
            witnesses: Arc::new(WitnessKeys::new(config.witnesses.iter().copied())),
            store: config.tile_store.clone(),
            integrator: config.integrator.clone(),
            halt: HaltFlag::new(),
            publish_lock: Arc::new(Mutex::new(())),
            record: Arc::new(record),
            degraded: Degraded::default(),
            cleared: Arc::new(watch::channel(false).0),
            gate: batcher.gate().clone(),
            metrics: Arc::new(ShardMetrics::default()),
        };
        let (stop, stop_rx) = watch::channel(false);
        // Every event of the shard's tasks carries its name and this node.
        let span = tracing::info_span!("shard", shard = %name, node = config.node_id);
        let leadership = tokio::spawn(
            pipeline
                .clone()
                .lead(stop_rx.clone())
                .instrument(span.clone()),
        );
        tokio::spawn(
            pipeline
                .clone()
                .trigger_snapshots(stop_rx.clone())
                .instrument(span.clone()),
        );
        if let Some(at) = config.freeze_at {
            tokio::spawn(
                pipeline
                    .clone()
                    .freeze_when_due(at, config.successor.clone(), stop_rx.clone())
                    .instrument(span.clone()),
            );
        }
        tokio::spawn(pipeline.clone().watch_progress(stop_rx.clone()));
        tokio::spawn(pipeline.clone().watch_raft_core(stop_rx).instrument(span));
        tracing::info!(shard = %name, node_id = config.node_id, origin = pipeline.signer.origin(), "shard started");
        Ok(Shard {
            pipeline,
            batcher,
            transport: config.transport,
            stop,
            leadership: std::sync::Mutex::new(Some(leadership)),
        })
    }

    /// The shard name.
    pub fn name(&self) -> &str {
        &self.pipeline.name
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> NodeId {
        self.pipeline.node_id
    }

    /// The log's signer (origin and public key).
    pub fn signer(&self) -> &Signer {
        &self.pipeline.signer
    }

    /// The latest applied state of this node.
    pub fn state(&self) -> AppliedState {
        self.pipeline.state_machine.state()
    }

    /// A receiver of this node's applied state, updated after every apply.
    pub fn subscribe(&self) -> watch::Receiver<AppliedState> {
        self.pipeline.state_machine.subscribe()
    }

    /// Resolves with the reason once openraft's core has stopped by itself
    /// (a fatal storage error); never resolves otherwise. A process that
    /// hosts the shard should then exit non-zero, so that its supervisor
    /// restarts it: the core does not come back within the process.
    pub async fn raft_core_stopped(&self) -> String {
        let mut metrics = self.pipeline.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                return fatal.to_string();
            }
            if metrics.changed().await.is_err() {
                return "the Raft core is gone".to_owned();
            }
        }
    }

    /// A receiver that turns `true` once [`Shard::shutdown`] has begun:
    /// long-lived calls (head streams) end on it.
    pub fn watch_stop(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// The Raft handle (metrics, membership changes).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.pipeline.raft
    }

    /// Why integration is currently failing (object store errors, a full
    /// disk), if it is; cleared by the next successful write.
    pub fn degraded(&self) -> Option<String> {
        self.pipeline.degraded.reason()
    }

    /// The reason the pipeline halted, if it did (for readiness checks).
    pub fn halted(&self) -> Option<String> {
        self.pipeline.halt.reason().map(str::to_owned)
    }

    /// Whether this node leads and has checked its applied state against
    /// the published log this term (it accepts leaves).
    pub fn cleared(&self) -> bool {
        *self.pipeline.cleared.borrow()
    }

    /// Why this replica cannot do its job now, if it cannot (`/readyz`
    /// and the gRPC health service): halted, integration failing, no
    /// known leader, more than [`READY_MAX_APPLY_LAG`] log entries not yet
    /// applied, a leader of several voters that heard from no quorum for
    /// [`READY_MAX_QUORUM_SILENCE`], or nothing published yet.
    pub fn unready(&self) -> Option<String> {
        if let Some(reason) = self.halted() {
            return Some(format!("halted: {reason}"));
        }
        if let Some(reason) = self.degraded() {
            return Some(format!("integration failing: {reason}"));
        }
        // Read under one short borrow, not cloned: probes run this often.
        let (leaderless, behind, silent) = {
            let metrics = self.pipeline.raft.metrics();
            let raft = metrics.borrow();
            let behind = raft
                .last_log_index
                .unwrap_or(0)
                .saturating_sub(raft.last_applied.map_or(0, |l| l.index));
            (
                raft.current_leader.is_none(),
                behind,
                self.quorum_silent_in(&raft),
            )
        };
        if leaderless {
            return Some("no Raft leader".to_owned());
        }
        if behind > READY_MAX_APPLY_LAG {
            return Some(format!(
                "{behind} Raft log entries not yet applied (at most {READY_MAX_APPLY_LAG})"
            ));
        }
        if silent {
            return Some(format!(
                "leader without an acknowledgement from a quorum for over {READY_MAX_QUORUM_SILENCE:?}"
            ));
        }
        if self.state().cosigned.is_none() {
            return Some("no cosigned tree head yet".to_owned());
        }
        None
    }

    /// Whether this node leads the shard and can take leaves now: checked
    /// this term, not halted, integration working, and (with several
    /// voters) heard from a quorum within [`READY_MAX_QUORUM_SILENCE`], so
    /// that a cut-off old leader does not claim it beside the new one.
    pub fn serving_as_leader(&self) -> bool {
        self.is_leader()
            && self.cleared()
            && self.halted().is_none()
            && self.degraded().is_none()
            && !self.quorum_silent()
    }

    /// Whether this node leads a group of several voters and has heard
    /// from no quorum for longer than [`READY_MAX_QUORUM_SILENCE`].
    fn quorum_silent(&self) -> bool {
        self.quorum_silent_in(&self.pipeline.raft.metrics().borrow())
    }

    /// [`Shard::quorum_silent`] of the metrics `raft`.
    fn quorum_silent_in(&self, raft: &openraft::RaftMetrics<NodeId, openraft::BasicNode>) -> bool {
        raft.current_leader == Some(self.node_id())
            && raft.membership_config.membership().voter_ids().count() > 1
            && raft
                .millis_since_quorum_ack
                .is_some_and(|ms| ms > READY_MAX_QUORUM_SILENCE.as_millis() as u64)
    }

    /// The shard's object store.
    pub fn tile_store(&self) -> &TileStore {
        &self.pipeline.store
    }

    /// Whether this node holds no Raft state at all for the shard: no
    /// membership, no vote, no log entry, nothing applied. Only such nodes
    /// may be named when a group is created.
    pub async fn is_empty(&self) -> Result<bool, ShardError> {
        let raft = &self.pipeline.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ShardError::Raft(e.to_string()))?;
        let metrics = raft.metrics().borrow().clone();
        let state = self.state();
        Ok(!initialized
            && metrics.vote.leader_id().term == 0
            && metrics.last_log_index.is_none()
            && state.last_applied.is_none()
            && state.tree_size == 0)
    }

    /// Creates the shard's Raft group with `voters` (node id → gRPC URL),
    /// which must include this node. Refused with [`ShardError::Refused`]
    /// if this node holds any state for the shard ([`Shard::is_empty`]) or
    /// the object store already holds a `checkpoint` for it: a group is
    /// created once, never over an existing log (architecture.md §8).
    pub async fn init_group(
        &self,
        voters: std::collections::BTreeMap<NodeId, String>,
    ) -> Result<(), ShardError> {
        let p = &self.pipeline;
        if !voters.contains_key(&p.node_id) {
            return Err(ShardError::Refused(format!(
                "node {} is not among the voters {:?}; send the call to one of them",
                p.node_id,
                voters.keys().collect::<Vec<_>>()
            )));
        }
        if !self.is_empty().await? {
            return Err(ShardError::Refused(format!(
                "node {} already holds Raft state for shard {:?}: a group is created once; \
                 use `cairn cluster add-node` to grow an existing group",
                p.node_id, p.name
            )));
        }
        if p.store.checkpoint().await?.is_some() {
            return Err(ShardError::Refused(format!(
                "the object store already holds a checkpoint for shard {:?}: this log exists; \
                 creating a new group over it would sign a second history",
                p.name
            )));
        }
        let members = voters
            .into_iter()
            .map(|(id, addr)| (id, openraft::BasicNode { addr }))
            .collect::<std::collections::BTreeMap<_, _>>();
        p.raft.initialize(members).await.map_err(|e| match e {
            openraft::error::RaftError::APIError(e) => ShardError::Refused(e.to_string()),
            e => ShardError::Raft(e.to_string()),
        })?;
        tracing::info!(shard = %p.name, node_id = p.node_id, "created the shard's Raft group");
        Ok(())
    }

    /// Hands leadership to voter `to` (maintenance), waiting until `to`
    /// leads or `deadline`; returns the leader then known. Sent to the
    /// leader: it stops heartbeats and elections of its own, asks `to`
    /// (through `to`'s admin service) to start an election once the
    /// followers' leader lease has run out, and resumes both afterwards,
    /// whatever happened. On `to` itself: waits out the lease, then starts
    /// an election. Best effort under load: appending entries also renews
    /// the lease, so a busy leader may keep leading.
    pub async fn transfer_leadership(
        &self,
        to: NodeId,
        deadline: Instant,
    ) -> Result<NodeId, ShardError> {
        let p = &self.pipeline;
        crate::raft::transfer_leadership(&p.raft, p.node_id, &p.name, to, deadline).await
    }

    /// Whether this node currently believes it is the shard's leader.
    pub fn is_leader(&self) -> bool {
        self.pipeline.is_leader()
    }

    /// Sequences leaves (see [`Batcher::submit`]): per leaf, its index or
    /// [`LeafStatus::Pending`] if not committed by `deadline`. Fails with
    /// [`ShardError::Halted`] while the pipeline is halted.
    pub async fn submit(
        &self,
        leaves: Vec<[u8; LEAF_SIZE]>,
        deadline: Instant,
    ) -> Result<Vec<LeafStatus>, ShardError> {
        let span =
            traced(|| tracing::info_span!("sequence", shard = %self.name(), leaves = leaves.len()));
        self.submit_untraced(leaves, deadline)
            .instrument(span)
            .await
    }

    async fn submit_untraced(
        &self,
        leaves: Vec<[u8; LEAF_SIZE]>,
        deadline: Instant,
    ) -> Result<Vec<LeafStatus>, ShardError> {
        if let Some(reason) = self.pipeline.halt.reason() {
            return Err(ShardError::Halted(reason.to_owned()));
        }
        // A leader that has not yet compared its state with the published
        // log could be a restored old copy: sequencing now could put new
        // leaves at indices the world has already seen with other leaves.
        if self.is_leader() && !*self.pipeline.cleared.borrow() {
            return Err(ShardError::NotCleared);
        }
        // Accepting more while tiles cannot be written only grows a backlog
        // nobody can be told about: refuse, retryably, until writes work.
        if let Some(reason) = self.pipeline.degraded.reason() {
            return Err(ShardError::Degraded(reason));
        }
        let started = Instant::now();
        let statuses = self.batcher.submit(leaves, deadline).await?;
        // Calls that ran out of time count too: they are the slow ones.
        self.pipeline.metrics.sequenced(started.elapsed());
        Ok(statuses)
    }

    /// What this shard's pipeline measures on this node.
    pub fn metrics(&self) -> &ShardMetrics {
        &self.pipeline.metrics
    }

    /// Snapshots this node built and installed since the shard started.
    pub fn snapshot_counts(&self) -> (u64, u64) {
        self.pipeline.state_machine.snapshot_counts()
    }

    /// The index of the leaf with RFC 6962 leaf hash `leaf_hash`, if it is
    /// sequenced on this node.
    pub async fn leaf_index(&self, leaf_hash: Hash) -> Result<Option<u64>, ShardError> {
        let sm = self.pipeline.state_machine.clone();
        Ok(blocking(move || sm.leaf_index(&leaf_hash)).await?)
    }

    /// [`leaf_index`](Self::leaf_index) of each of `leaf_hashes`, in order.
    pub async fn leaf_indices(
        &self,
        leaf_hashes: Vec<Hash>,
    ) -> Result<Vec<Option<u64>>, ShardError> {
        let sm = self.pipeline.state_machine.clone();
        Ok(blocking(move || sm.leaf_indices(&leaf_hashes)).await?)
    }

    /// The tree size, the tree head signed at the applied integrated size
    /// (the signer's only input is the applied state), and the published
    /// cosigned head.
    pub fn tree_heads(&self) -> Result<TreeHeads, ShardError> {
        self.heads_for(self.state())
    }

    /// The heads of an applied `state` of this shard (one from
    /// [`Shard::state`] or [`Shard::subscribe`]).
    ///
    /// The head is signed only if this node's signed-head record admits it
    /// (the record's head is in the applied history); a contradiction
    /// halts the shard. While halted nothing is signed or served.
    pub fn heads_for(&self, state: AppliedState) -> Result<TreeHeads, ShardError> {
        let p = &self.pipeline;
        if let Some(reason) = p.halt.reason() {
            return Err(ShardError::Halted(reason.to_owned()));
        }
        let signed = p.signer.sign(&state).map_err(ShardError::Signing)?;
        let sm = &p.state_machine;
        let admitted = p
            .record
            .admit(signed.tree_head.size, signed.tree_head.root_hash, |size| {
                sm.root_at(size)
            });
        if let Err(e) = admitted {
            if !e.is_retryable() {
                p.halt.halt(format!("signer: {e}"));
            }
            return Err(ShardError::Record(e));
        }
        if signed.tree_head.size > p.metrics.signed_size() {
            // Once per new size (heads are asked for far more often); the
            // chaos harness kills the leader on this line.
            tracing::debug!(shard = %p.name, size = signed.tree_head.size, "signed a larger tree head");
        }
        p.metrics.reached(Step::Signed, signed.tree_head.size);
        let state = state.into_inner();
        Ok(TreeHeads {
            tree_size: state.tree_size,
            signed,
            cosigned: state.cosigned,
            frozen: state.frozen,
        })
    }

    /// Freezes the log at its current size (architecture.md §4): the
    /// leader refuses new leaves at once, lets the leaves it accepted
    /// before be proposed (at most [`FREEZE_DRAIN_TIMEOUT`]), then commits
    /// `Command::Freeze`. From then on every replica refuses leaves that
    /// are not in the tree, with [`LeafStatus::Frozen`] naming `successor`;
    /// integration, signing and publication of the final size go on.
    /// Idempotent: on a frozen log it answers the existing freeze (with its
    /// first successor). Needs the leader ([`ShardError::NotLeader`]); a
    /// halted or unchecked leader refuses retryably.
    pub async fn freeze(&self, successor: &str) -> Result<Frozen, ShardError> {
        self.pipeline.freeze(successor).await
    }

    /// The freeze of this log: applied, or (on the leader, while a freeze
    /// is being committed) the one under way, at the current size.
    pub fn frozen(&self) -> Option<Frozen> {
        let state = self.state();
        state.frozen.clone().or_else(|| {
            self.pipeline.gate.closing().map(|successor| Frozen {
                size: state.tree_size,
                successor,
            })
        })
    }

    /// A witness says it cosigned `witness_size`: if that is beyond this
    /// node's applied integrated size, the world has seen a tree this node
    /// does not have, and the shard halts here (nothing more is accepted,
    /// signed or served). Returns whether it is halted.
    pub fn witness_ahead(&self, witness: &str, witness_size: u64) -> bool {
        // Only a leader that has applied its whole log this term can tell:
        // elsewhere the applied state may simply lag what was committed.
        if !self.is_leader() || !*self.pipeline.cleared.borrow() {
            tracing::warn!(shard = %self.pipeline.name, witness, witness_size, "a witness is reported ahead, but this node is not a checked leader; ignored here");
            return self.pipeline.halt.is_halted();
        }
        let applied = self.state().integrated_size;
        if witness_size > applied {
            let reason = format!(
                "HALTED: witness {witness:?} has cosigned tree size {witness_size}, but this \
                 node's state is at integrated size {applied}: its database is older than \
                 what was published (a restored backup?) or the log was forked. Restore \
                 newer state; do not reset the witness."
            );
            tracing::error!(shard = %self.pipeline.name, "{reason}");
            self.pipeline.halt.halt(reason);
        }
        self.pipeline.halt.is_halted()
    }

    /// Publishes a cosigned tree head: checks it (size not below the
    /// published one, integrated, root is the log's root at that size, log
    /// signature is this log's, every cosignature verifies under a known
    /// witness), commits `Command::Cosigned` through Raft, then writes the
    /// `checkpoint` object. Leader only.
    ///
    /// Re-publishing the published size is allowed (e.g. more cosignatures).
    /// If the checkpoint write fails after the commit, the error is returned
    /// and a retry of the same call completes it. A fatal storage error
    /// halts the shard.
    pub async fn publish_cosigned(&self, head: CosignedHead) -> Result<(), ShardError> {
        let span =
            traced(|| tracing::info_span!("publish", shard = %self.name(), size = head.size));
        self.publish_untraced(head).instrument(span).await
    }

    async fn publish_untraced(&self, head: CosignedHead) -> Result<(), ShardError> {
        let p = &self.pipeline;
        if let Some(reason) = p.halt.reason() {
            return Err(ShardError::Halted(reason.to_owned()));
        }
        if let Some(hint) = not_leader(&p.raft, p.node_id) {
            return Err(ShardError::NotLeader(hint));
        }
        let state = self.state();
        if let Some(published) = &state.cosigned
            && head.size < published.size
        {
            return Err(ShardError::Stale {
                published: published.size,
                requested: head.size,
            });
        }
        if head.size > state.integrated_size {
            return Err(ShardError::NotInTree {
                size: head.size,
                reason: format!("the integrated size is {}", state.integrated_size),
            });
        }
        let sm = p.state_machine.clone();
        let size = head.size;
        let root = blocking(move || sm.root_at(size)).await?;
        match root {
            Some(root) if root == head.root => {}
            Some(_) => {
                return Err(ShardError::NotInTree {
                    size,
                    reason: "the root differs from the log's root at that size".into(),
                });
            }
            None => {
                return Err(ShardError::NotInTree {
                    size,
                    reason: "the size is not a signed (batch boundary) size".into(),
                });
            }
        }
        // Verifies the log signature and every cosignature.
        let note = p.signer.checkpoint_note(&head, &p.witnesses)?;

        let _serial = p.publish_lock.lock().await;
        match propose(&p.raft, Command::Cosigned { head }).await? {
            CommandResponse::Applied => {}
            CommandResponse::Rejected { reason } => return Err(ShardError::Rejected(reason)),
            other => {
                return Err(ShardError::Rejected(format!(
                    "unexpected response {other:?}"
                )));
            }
        }
        tracing::debug!(shard = %p.name, size, "cosigned head committed; writing the checkpoint");
        // Traced here only: the recovery write at a term's start is the
        // pipeline's own work.
        let span = traced(|| tracing::info_span!("write_checkpoint", size));
        p.write_checkpoint(size, note).instrument(span).await
    }

    /// Stops the pipeline tasks (the integrator at its next await point;
    /// objects already written stay valid), fails queued submissions,
    /// unregisters from the transport and shuts Raft down. Idempotent.
    ///
    /// The database closes once the last handle is gone: when this `Shard`
    /// is dropped and openraft's state-machine worker has exited (shortly
    /// after this returns; see [`OPEN_LOCK_WAIT`]).
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let leadership = self.leadership.lock().ok().and_then(|mut h| h.take());
        if let Some(task) = leadership
            && let Err(e) = task.await
        {
            tracing::error!(shard = %self.pipeline.name, error = %e, "leadership task failed");
        }
        self.batcher.shutdown().await;
        if let Some(transport) = &self.transport {
            transport.unregister(&self.pipeline.name);
        }
        if let Err(e) = self.pipeline.raft.shutdown().await {
            tracing::error!(shard = %self.pipeline.name, error = %e, "raft shutdown failed");
        }
        tracing::info!(shard = %self.pipeline.name, "shard stopped");
    }
}

impl Pipeline {
    fn is_leader(&self) -> bool {
        not_leader(&self.raft, self.node_id).is_none()
    }

    /// See [`Shard::freeze`].
    async fn freeze(&self, successor: &str) -> Result<Frozen, ShardError> {
        if successor.len() > MAX_SUCCESSOR_LEN
            || !successor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(ShardError::Refused(format!(
                "successor {successor:?} is not a shard name (at most {MAX_SUCCESSOR_LEN} \
                 letters, digits, '-', '_' or '.')"
            )));
        }
        if let Some(frozen) = self.state_machine.state().frozen.clone() {
            return Ok(frozen);
        }
        if let Some(reason) = self.halt.reason() {
            return Err(ShardError::Halted(reason.to_owned()));
        }
        if let Some(hint) = not_leader(&self.raft, self.node_id) {
            return Err(ShardError::NotLeader(hint));
        }
        if !*self.cleared.borrow() {
            return Err(ShardError::NotCleared);
        }
        self.gate.close(successor);
        if !self
            .gate
            .drained(Instant::now() + FREEZE_DRAIN_TIMEOUT)
            .await
        {
            tracing::warn!(shard = %self.name, "freezing with leaves still queued; they will be refused");
        }
        let outcome = propose(
            &self.raft,
            Command::Freeze {
                successor: successor.to_owned(),
            },
        )
        .await;
        let frozen = match outcome {
            Ok(CommandResponse::Applied) => self.state_machine.state().frozen.clone(),
            Ok(other) => {
                self.gate.reopen();
                return Err(ShardError::Rejected(format!("{other:?} for a Freeze")));
            }
            Err(e) => {
                self.gate.reopen();
                return Err(e.into());
            }
        };
        let frozen = frozen.ok_or_else(|| {
            ShardError::Rejected("Freeze applied but the state is not frozen".into())
        })?;
        tracing::info!(shard = %self.name, size = frozen.size, successor = %frozen.successor, "the log is frozen");
        Ok(frozen)
    }

    /// Temporal rotation: freezes the log once the clock passes `at`
    /// (retrying every [`FREEZE_RETRY`] on the leader until it is done).
    /// Every node runs it; only a checked leader can freeze, and the first
    /// freeze applied ends it everywhere.
    async fn freeze_when_due(
        self,
        at: std::time::SystemTime,
        successor: String,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if self.state_machine.state().frozen.is_some() {
                return;
            }
            let wait = match at.duration_since(std::time::SystemTime::now()) {
                // Sleep in bounded steps: the wall clock may be set
                // forward meanwhile.
                Ok(until) if !until.is_zero() => until.min(Duration::from_secs(60)),
                _ => {
                    if self.is_leader() && *self.cleared.borrow() {
                        match self.freeze(&successor).await {
                            Ok(_) => return,
                            Err(e) => {
                                tracing::warn!(shard = %self.name, error = %e, "scheduled freeze failed; retrying")
                            }
                        }
                    }
                    FREEZE_RETRY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Feeds the shard's metrics from the applied state (commits,
    /// integration, publication) and Raft (leader changes), until `stop`.
    async fn watch_progress(self, mut stop: watch::Receiver<bool>) {
        let mut applied = self.state_machine.subscribe();
        let mut raft = self.raft.metrics();
        let mut leader = raft.borrow().current_leader;
        loop {
            let (tree, integrated, published) = {
                let state = applied.borrow_and_update();
                let published = state.cosigned.as_ref().map_or(0, |h| h.size);
                (state.tree_size, state.integrated_size, published)
            };
            let m = &self.metrics;
            m.committed(tree);
            m.reached(Step::Integrated, integrated);
            m.reached(Step::Published, published);
            let now = raft.borrow_and_update().current_leader;
            if now.is_some() && now != leader {
                if leader.is_some() {
                    self.metrics.leader_changed();
                }
                leader = now;
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                r = raft.changed() => if r.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Halts the shard if openraft's core stops by itself (a fatal storage
    /// error such as a full disk on a Raft log write): the core does not
    /// restart, so without this the node would look alive and refuse every
    /// write forever. The process owner sees it through
    /// [`Shard::halted`] and should restart the node.
    async fn watch_raft_core(self, mut stop: watch::Receiver<bool>) {
        let mut metrics = self.raft.metrics();
        loop {
            let fatal = match &metrics.borrow_and_update().running_state {
                Err(fatal) => Some(fatal.to_string()),
                Ok(()) => None,
            };
            if let Some(fatal) = fatal {
                if !*stop.borrow() {
                    let reason = format!(
                        "the Raft core stopped: {fatal}. Nothing was acknowledged that is \
                         not durable; fix the cause (disk space, I/O errors) and restart the node"
                    );
                    tracing::error!(shard = %self.name, "{reason}");
                    self.halt.halt(reason);
                }
                return;
            }
            tokio::select! {
                r = metrics.changed() => if r.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Asks openraft for a snapshot whenever [`snapshot_due`] says the Raft
    /// log since the last one is worth purging (openraft purges the log up
    /// to a snapshot once it is built), on every node: each replica
    /// snapshots and purges its own log. At most one request is
    /// outstanding: the next waits until the snapshot point moves, or for
    /// [`SNAPSHOT_RETRY`] if a build failed.
    async fn trigger_snapshots(self, mut stop: watch::Receiver<bool>) {
        let mut applied = self.state_machine.subscribe();
        let mut requested: Option<(SnapshotPoint, Instant)> = None;
        loop {
            let size = applied.borrow_and_update().tree_size;
            let point = self.state_machine.snapshot_point();
            let waiting =
                requested.is_some_and(|(at, when)| at == point && when.elapsed() < SNAPSHOT_RETRY);
            if !waiting && snapshot_due(size, point) {
                tracing::info!(
                    shard = %self.name,
                    tree_size = size,
                    last_snapshot_tree_size = point.tree_size,
                    last_snapshot_bytes = point.bytes,
                    "building a snapshot to purge the Raft log"
                );
                if self.raft.trigger().snapshot().await.is_err() {
                    return;
                }
                requested = Some((point, Instant::now()));
            }
            tokio::select! {
                r = applied.changed() => if r.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Runs the leader-only tasks for each term this node leads, until
    /// `stop`.
    async fn lead(self, mut stop: watch::Receiver<bool>) {
        let mut metrics = self.raft.metrics();
        loop {
            // Wait for leadership.
            while !self.is_leader() {
                let shutting_down = metrics.borrow().state == ServerState::Shutdown;
                if shutting_down {
                    return;
                }
                tokio::select! {
                    r = metrics.changed() => if r.is_err() { return },
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            if *stop.borrow() {
                return;
            }
            let current_term = metrics.borrow().current_term;
            tracing::info!(shard = %self.name, node_id = self.node_id, term = current_term, "leadership gained; starting integrator");
            let (term_stop, term_stop_rx) = watch::channel(false);
            let integrator = Integrator {
                node_id: self.node_id,
                raft: self.raft.clone(),
                state_machine: self.state_machine.clone(),
                store: self.store.clone(),
                config: self.integrator.clone(),
                halt: self.halt.clone(),
                degraded: self.degraded.clone(),
                resumed: Arc::new(watch::channel(false).0),
            };
            let term = tokio::spawn(
                self.clone()
                    .lead_term(integrator, term_stop_rx)
                    .instrument(tracing::info_span!("term", term = current_term)),
            );

            // Wait for leadership loss or stop.
            let stopped = loop {
                if !self.is_leader() {
                    break false;
                }
                tokio::select! {
                    r = metrics.changed() => if r.is_err() { break true },
                    _ = stop.wait_for(|s| *s) => break true,
                }
            };
            term_stop.send_replace(true);
            self.cleared.send_replace(false);
            if let Err(e) = term.await {
                tracing::error!(shard = %self.name, error = %e, "leader task failed");
            }
            if stopped {
                return;
            }
            tracing::info!(shard = %self.name, node_id = self.node_id, "leadership lost; integrator stopped");
        }
    }

    /// One term of leadership: apply the whole local log, check the applied
    /// state against what the world has seen ([`Pipeline::check_world`]),
    /// and only then accept submissions, integrate, and make sure the
    /// `checkpoint` object is current.
    async fn lead_term(self, integrator: Integrator, mut stop: watch::Receiver<bool>) {
        let mut backoff = self.integrator.retry_min;
        loop {
            // Leadership as the local metrics show it is not enough: openraft
            // 0.9 restarts a node that led before its crash as the leader of
            // its old term, before it has heard of any newer one. Only a
            // quorum's confirmation, with every entry committed so far
            // applied here, makes the applied state "everything the log has
            // ever acknowledged" — what the world check compares.
            match self.confirm_leadership(&mut stop).await {
                Confirmed::Yes => {}
                Confirmed::Stopped => return,
                Confirmed::NotLeader(reason) => {
                    tracing::info!(shard = %self.name, %reason, "leadership not confirmed by a quorum; not acting as leader this term");
                    return;
                }
            }
            match self.check_world().await {
                Ok(()) => break,
                Err(e @ (WorldCheck::Fatal(_) | WorldCheck::Stale(_))) => {
                    let reason = e.fatal().unwrap_or_default().to_owned();
                    // The world may have moved on because this node was
                    // deposed (frozen, cut off) after it confirmed its
                    // leadership: a successor published more. Halt only if
                    // the fault survives a second confirmation.
                    match self.confirm_leadership(&mut stop).await {
                        Confirmed::Yes => {}
                        Confirmed::Stopped => return,
                        Confirmed::NotLeader(why) => {
                            tracing::info!(shard = %self.name, %why, "deposed while checking the published log; not halting");
                            return;
                        }
                    }
                    if let Err(e) = self.check_world().await
                        && let Some(reason) = e.fatal()
                    {
                        tracing::error!(shard = %self.name, "{reason}");
                        self.halt.halt(reason);
                        if let WorldCheck::Stale(_) = e {
                            // Halting alone keeps this node the leader:
                            // openraft restores a restarted leader's term,
                            // and its heartbeats keep the others, which hold
                            // the whole log, from electing one. So it stops
                            // sending heartbeats and never stands for
                            // election again in this process: another voter
                            // takes over, and this one follows, halted
                            // (unready) until the operator wipes it and adds
                            // it back. Alone in its group it stays leader and
                            // halted, which is all it can do.
                            tracing::error!(
                                shard = %self.name,
                                node_id = self.node_id,
                                "this node's state is older than the published log: stepping down for good; remove, wipe and re-add the node"
                            );
                            self.raft.runtime_config().heartbeat(false);
                            self.raft.runtime_config().elect(false);
                        }
                        return;
                    }
                    tracing::info!(shard = %self.name, first = %reason, "the published log check passed on a second look");
                    continue;
                }
                Err(WorldCheck::Retry(reason)) => {
                    tracing::warn!(shard = %self.name, %reason, "cannot check the published log yet; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(self.integrator.retry_max);
        }
        self.cleared.send_replace(true);
        tracing::info!(shard = %self.name, node_id = self.node_id, "state checked against the published log; accepting leaves");
        let mut resumed = integrator.resumed.subscribe();
        let integrating = tokio::spawn(integrator.run(stop.clone()));
        // The checkpoint may only point at tiles that exist.
        let resumed = tokio::select! {
            r = resumed.wait_for(|r| *r) => r.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        // Garbage collection deletes only what the published tree outgrew,
        // so it needs the resumed tiles no more than readers do; it starts
        // with them anyway, so that a term that cannot integrate does no
        // storage work beyond the essential.
        let collecting = match self.integrator.partial_tile_grace {
            Some(grace) if resumed => Some(tokio::spawn(crate::gc::run(
                self.store.clone(),
                grace,
                self.state_machine.subscribe(),
                stop.clone(),
            ))),
            _ => None,
        };
        if resumed {
            self.recover_checkpoint(stop).await;
        }
        if let Err(e) = integrating.await {
            tracing::error!(shard = %self.name, error = %e, "integrator task failed");
        }
        // Deletions are idempotent; cutting one short only leaves a
        // candidate for the next leader's listing.
        if let Some(collecting) = collecting {
            collecting.abort();
        }
    }

    /// Confirms with a quorum that this node leads and waits until every
    /// entry committed so far is applied (openraft's linearizable read).
    /// Retries while the local view says leader (no quorum reachable yet,
    /// or a newer term not yet absorbed) until `stop`; a local view that is
    /// no longer leader, or a stopped Raft, is [`Confirmed::NotLeader`].
    async fn confirm_leadership(&self, stop: &mut watch::Receiver<bool>) -> Confirmed {
        let mut backoff = self.integrator.retry_min;
        loop {
            if !self.is_leader() {
                return Confirmed::NotLeader("no longer leader in the local view".into());
            }
            let confirmed =
                tokio::time::timeout(RECOVERY_APPLY_TIMEOUT, self.raft.ensure_linearizable());
            tokio::select! {
                r = confirmed => match r {
                    Ok(Ok(_)) => return Confirmed::Yes,
                    // Raft stopped: nothing to lead.
                    Ok(Err(openraft::error::RaftError::Fatal(e))) => {
                        return Confirmed::NotLeader(e.to_string());
                    }
                    // A newer term (the local view changes with it, which
                    // the next round sees) or no quorum reachable yet (a
                    // network blip: the term may well be ours). Never give
                    // up while the local view still says leader, or a
                    // leader that lost one round would refuse leaves for
                    // its whole term.
                    Ok(Err(e)) => {
                        tracing::info!(shard = %self.name, error = %e, "leadership not confirmed yet; retrying");
                    }
                    Err(_) => {
                        tracing::warn!(shard = %self.name, "no quorum confirmed this node's leadership in time; retrying");
                    }
                },
                _ = stop.wait_for(|s| *s) => return Confirmed::Stopped,
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return Confirmed::Stopped,
            }
            backoff = (backoff * 2).min(self.integrator.retry_max);
        }
    }

    /// Compares the applied state (the whole local log applied) with what
    /// the world has seen of this log: this node's signed-head record and
    /// the `checkpoint` object. Being behind either, or holding another
    /// root at their size, is fatal for a leader: it has every committed
    /// entry, so nothing will make it catch up, and acting would publish a
    /// second history.
    async fn check_world(&self) -> Result<(), WorldCheck> {
        let state = self.state_machine.state();
        let applied = state.integrated_size;
        let recover = "Recover by restoring this node's data from a copy at least as new as \
             what was published, or (in a cluster) by wiping this node's data directory \
             so that it rejoins from a peer; do not delete the record or the checkpoint \
             to make the error go away: that publishes a second history.";
        if let Some((size, root)) = self.record.largest() {
            if size > applied {
                return Err(WorldCheck::Stale(format!(
                    "HALTED: this node signed tree size {size} before, but its whole Raft log \
                     applies only to integrated size {applied} (tree size {}): its database \
                     is older than what it published. {recover}",
                    state.tree_size
                )));
            }
            self.same_root(size, &root, "this node's signed-head record", recover)?;
        }
        let bytes = match self.store.checkpoint().await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(()),
            Err(e) if e.is_retryable() => {
                return Err(WorldCheck::Retry(format!(
                    "reading the checkpoint object: {e}"
                )));
            }
            Err(e) => {
                return Err(WorldCheck::Fatal(format!(
                    "HALTED: the checkpoint object cannot be read: {e}"
                )));
            }
        };
        let (size, root) = self.signer.verify_checkpoint(&bytes).map_err(|e| {
            WorldCheck::Fatal(format!(
                "HALTED: {e}. The object store holds a checkpoint this log did not sign; \
                 inspect it (and who can write the bucket) before removing it."
            ))
        })?;
        if size > applied {
            return Err(WorldCheck::Stale(format!(
                "HALTED: the published checkpoint has tree size {size}, but this node's whole \
                 Raft log applies only to integrated size {applied} (tree size {}): its \
                 database is older than what was published. {recover}",
                state.tree_size
            )));
        }
        self.same_root(size, &root, "the published checkpoint", recover)
    }

    /// Fails (fatally) unless the applied history has `root` at `size`.
    fn same_root(
        &self,
        size: u64,
        root: &Hash,
        what: &str,
        recover: &str,
    ) -> Result<(), WorldCheck> {
        let ours = self.state_machine.root_at(size).map_err(|e| {
            let reason = format!("reading the root at size {size}: {e}");
            if e.is_fatal() {
                WorldCheck::Fatal(format!("HALTED: {reason}"))
            } else {
                WorldCheck::Retry(reason)
            }
        })?;
        if ours.as_ref() != Some(root) {
            return Err(WorldCheck::Stale(format!(
                "HALTED: {what} has root {} at tree size {size}, but this node's history has {}: \
                 the database and the published log disagree (a fork). {recover}",
                hex::encode(root),
                ours.map_or_else(|| "no root there".to_owned(), hex::encode)
            )));
        }
        Ok(())
    }

    /// Once per term, after the world check: re-writes the `checkpoint`
    /// object for the applied cosigned head if a crash between the Raft
    /// commit and the object write left it behind.
    async fn recover_checkpoint(&self, mut stop: watch::Receiver<bool>) {
        let Some(mut head) = self.state_machine.state().into_inner().cosigned else {
            return;
        };
        // The usual case: the object was written right after the commit.
        // Only a crash between the two leaves something to recover, and
        // only then is the note rebuilt.
        let stored = self.store.checkpoint().await.map(|bytes| {
            bytes.and_then(|b| {
                cairn_tlog::checkpoint::SignedCheckpoint::parse(&b)
                    .ok()
                    .map(|c| c.checkpoint().size)
            })
        });
        match stored {
            Ok(Some(stored)) if stored >= head.size => {
                tracing::debug!(shard = %self.name, stored, applied = head.size, "checkpoint object is current");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(shard = %self.name, error = %e, "reading the checkpoint object failed; re-writing it");
            }
        }
        // Witnesses removed from the policy since this head was cosigned
        // are no longer trusted here: their lines are left out rather than
        // making the note unwritable.
        let before = head.cosignatures.len();
        head.cosignatures
            .retain(|c| self.witnesses.get(&KeyHash(c.key_hash)).is_some());
        if head.cosignatures.len() < before {
            tracing::info!(
                shard = %self.name,
                size = head.size,
                dropped = before - head.cosignatures.len(),
                "re-writing the checkpoint without the cosignatures of witnesses no longer configured"
            );
        }
        let note = match self.signer.checkpoint_note(&head, &self.witnesses) {
            Ok(note) => note,
            Err(e) => {
                tracing::error!(shard = %self.name, size = head.size, error = %e, "applied cosigned head cannot be written as a checkpoint");
                return;
            }
        };
        let mut backoff = self.integrator.retry_min;
        for attempt in 1..=RECOVERY_CHECKPOINT_ATTEMPTS {
            let serial = self.publish_lock.lock().await;
            match self.write_checkpoint(head.size, note.clone()).await {
                Ok(()) => {
                    tracing::info!(shard = %self.name, size = head.size, "checkpoint re-written for the applied cosigned head");
                    return;
                }
                Err(ShardError::Storage(e)) if e.is_retryable() => {
                    tracing::warn!(shard = %self.name, attempt, error = %e, "re-writing the checkpoint failed");
                }
                Err(e) => {
                    tracing::error!(shard = %self.name, error = %e, "re-writing the checkpoint failed");
                    return;
                }
            }
            drop(serial);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(self.integrator.retry_max);
        }
    }

    /// Writes the `checkpoint` object (caller holds `publish_lock`). A
    /// larger stored checkpoint is success (a later head is already
    /// published); a fatal storage error halts the shard.
    async fn write_checkpoint(&self, size: u64, note: Vec<u8>) -> Result<(), ShardError> {
        match self.store.put_checkpoint(size, note).await {
            Ok(()) => Ok(()),
            Err(StorageError::CheckpointShrinks { stored, requested }) => {
                // Benign only if the larger checkpoint is part of our own
                // history (a later publication won a race); otherwise the
                // world has seen a tree this node does not have.
                let ours = match self.state_machine.root_at(stored) {
                    Ok(root) => root,
                    // Not a verdict on the stored checkpoint: report the
                    // database's trouble as such (halting only if fatal).
                    Err(e) => {
                        if e.is_fatal() {
                            self.halt
                                .halt(format!("reading the root at size {stored}: {e}"));
                        }
                        return Err(ShardError::Store(e));
                    }
                };
                let theirs = match self.store.checkpoint().await {
                    Ok(Some(b)) => self.signer.verify_checkpoint(&b).ok(),
                    _ => None,
                };
                match theirs {
                    Some((size, root)) if size == stored && ours == Some(root) => {
                        tracing::debug!(shard = %self.name, stored, requested, "a larger checkpoint of this history is already published");
                        Ok(())
                    }
                    _ => {
                        let reason = format!(
                            "HALTED: the published checkpoint (size {stored}) is ahead of this \
                             node's publication (size {requested}) and not part of its history"
                        );
                        tracing::error!(shard = %self.name, "{reason}");
                        self.halt.halt(reason.clone());
                        Err(ShardError::Halted(reason))
                    }
                }
            }
            Err(e) => {
                if e.is_fatal() {
                    self.halt
                        .halt(format!("writing the checkpoint for size {size}: {e}"));
                }
                Err(ShardError::Storage(e))
            }
        }
    }
}
