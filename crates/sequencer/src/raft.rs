//! A shard's Raft as the rest of the crate uses it: the default openraft
//! configuration, starting a shard's Raft on its database, making a fresh
//! node a one-member group, proposing commands, and who the leader is.
//!
//! The transport (how Raft messages travel between replicas) is
//! [`crate::network`]; this module only hands openraft a
//! [`GrpcNetworkFactory`] from there.
//!
//! * [`default_raft_config`] — openraft's defaults plus a sparse snapshot
//!   policy ([`DEFAULT_SNAPSHOT_LOGS`]).
//! * [`start_raft`], [`initialize_single_node`] — start one shard's Raft.
//! * `propose` (crate-internal) — the only place the pipeline calls
//!   `client_write`, so "not the leader" is recognised the same way
//!   everywhere.
//! * `not_leader` (crate-internal) — the cheap local leadership check, with
//!   a [`LeaderHint`] for redirects.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::error::{ClientWriteError, Fatal, ForwardToLeader, InitializeError, RaftError};
use openraft::{BasicNode, Raft, ServerState};
use rocksdb::DB;

use crate::log_store::{RaftLogStore, StoreError};
use crate::network::GrpcNetworkFactory;
use crate::state_machine::StateMachine;
use crate::types::{Command, CommandResponse, NodeId, TypeConfig};

/// Default number of applied log entries between state-machine snapshots.
///
/// A snapshot is built by streaming every state-machine column family
/// through a bounded buffer into a file beside the database, and sent to a
/// follower in chunks of that file (see [`crate::state_machine`] and
/// [`crate::snapshot`]): memory stays bounded whatever the tree's size, but
/// each build reads and writes the whole leaf-hash index and roots. It is
/// kept sparse so builds stay rare; between builds the Raft log keeps the
/// entries since the last one.
pub const DEFAULT_SNAPSHOT_LOGS: u64 = 10_000;

/// The openraft configuration used by default: openraft's defaults (50 ms
/// heartbeat, 150–300 ms election timeout) with snapshots every
/// [`DEFAULT_SNAPSHOT_LOGS`] entries.
pub fn default_raft_config() -> openraft::Config {
    openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(DEFAULT_SNAPSHOT_LOGS),
        ..openraft::Config::default()
    }
}

/// Why a shard's Raft could not be started or initialized.
#[derive(Debug, thiserror::Error)]
pub enum RaftStartError {
    /// The openraft configuration is invalid (fix the config; not retryable).
    #[error("invalid raft config: {0}")]
    Config(#[from] openraft::ConfigError),
    /// The shard database could not be read (see [`StoreError::is_fatal`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network factory was made for another shard (a wiring bug).
    #[error("network factory is for shard {network:?}, not {shard:?}")]
    ShardMismatch {
        /// The shard being started.
        shard: String,
        /// The factory's shard.
        network: String,
    },
    /// Raft stopped (storage error or shutdown) while starting.
    #[error("raft stopped: {0}")]
    Fatal(#[from] Fatal<NodeId>),
    /// Initializing the membership failed.
    #[error("initializing raft membership: {0}")]
    Initialize(#[from] RaftError<NodeId, InitializeError<NodeId, BasicNode>>),
}

/// Starts node `node_id`'s Raft for `shard` on the shard database `db` (from
/// [`open_shard_db`](crate::log_store::open_shard_db)), with `network` as its
/// transport.
///
/// Returns the Raft handle (register it with a
/// [`RaftTransportService`](crate::network::RaftTransportService) so peers
/// reach it) and a [`StateMachine`] handle for the pipeline's reads. The
/// state machine starts from the state on disk, and openraft re-applies any
/// committed entries beyond it. `config` is validated; its `cluster_name` is
/// set to the shard name (it only labels traces). Its snapshot policy
/// decides how often a snapshot file is built by streaming the whole state
/// machine to disk (see [`crate::state_machine`] and
/// [`DEFAULT_SNAPSHOT_LOGS`]); shards with large trees should use a sparse
/// policy. openraft 0.9 bounds every AppendEntries RPC (transfer plus the
/// follower's fsync) by `heartbeat_interval`, so that must leave room for
/// the largest batch; `max_payload_entries` × the largest entry must stay
/// below [`MAX_RAFT_MESSAGE_BYTES`](crate::network::MAX_RAFT_MESSAGE_BYTES)
/// or the RPC is split. Blocking reads at start are short (the state
/// record).
pub async fn start_raft(
    node_id: NodeId,
    shard: &str,
    db: Arc<DB>,
    config: openraft::Config,
    network: GrpcNetworkFactory,
) -> Result<(Raft<TypeConfig>, StateMachine), RaftStartError> {
    if network.shard() != shard {
        return Err(RaftStartError::ShardMismatch {
            shard: shard.to_string(),
            network: network.shard().to_string(),
        });
    }
    let config = openraft::Config {
        cluster_name: shard.to_string(),
        ..config
    }
    .validate()?;
    let log_store = RaftLogStore::new(db.clone())?;
    let state_machine = StateMachine::new(db)?;
    let raft = Raft::new(
        node_id,
        Arc::new(config),
        network,
        log_store,
        state_machine.clone(),
    )
    .await?;
    tracing::info!(shard, node_id, "raft started");
    Ok((raft, state_machine))
}

/// Makes `raft` a one-member cluster of `node_id` at `addr`
/// (`http://host:port`), if and only if its store is fresh.
///
/// Returns `true` if it initialized, `false` if the node already has a vote,
/// log or membership (a restart): re-initializing a used node is never done.
/// Safe to call on every start.
pub async fn initialize_single_node(
    raft: &Raft<TypeConfig>,
    node_id: NodeId,
    addr: impl Into<String>,
) -> Result<bool, RaftStartError> {
    if raft.is_initialized().await? {
        return Ok(false);
    }
    let members = BTreeMap::from([(node_id, BasicNode { addr: addr.into() })]);
    match raft.initialize(members).await {
        Ok(()) => {
            tracing::info!(node_id, "initialized single-node raft membership");
            Ok(true)
        }
        // Lost a race with another initialization: already initialized.
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Who the leader is, as far as this node knows; carried by "not leader"
/// errors so callers can redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's Raft node id, if known.
    pub leader_id: Option<NodeId>,
    /// The leader's address from the Raft membership (the address its
    /// sequencer gRPC server listens on), if known.
    pub leader_addr: Option<String>,
}

impl std::fmt::Display for LeaderHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.leader_id, &self.leader_addr) {
            (Some(id), Some(addr)) => write!(f, "leader is node {id} at {addr}"),
            (Some(id), None) => write!(f, "leader is node {id}"),
            _ => f.write_str("leader unknown"),
        }
    }
}

impl From<ForwardToLeader<NodeId, BasicNode>> for LeaderHint {
    /// What openraft's "forward to leader" answer (to a write or a
    /// membership change) says about the leader.
    fn from(f: ForwardToLeader<NodeId, BasicNode>) -> Self {
        LeaderHint {
            leader_id: f.leader_id,
            leader_addr: f.leader_node.map(|n| n.addr),
        }
    }
}

/// Why [`propose`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProposeError {
    /// Not the leader.
    #[error("not the leader ({0})")]
    NotLeader(LeaderHint),
    /// Raft failed or refused for another reason.
    #[error("{0}")]
    Raft(String),
}

/// Proposes `command` and waits until it is committed and applied,
/// returning the state machine's response. The single place the pipeline
/// calls `client_write`, so "not leader" is mapped the same way everywhere.
pub(crate) async fn propose(
    raft: &Raft<TypeConfig>,
    command: Command,
) -> Result<CommandResponse, ProposeError> {
    match raft.client_write(command).await {
        Ok(resp) => Ok(resp.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Err(ProposeError::NotLeader(f.into()))
        }
        Err(e) => Err(ProposeError::Raft(e.to_string())),
    }
}

/// `None` if `node_id` is the leader according to `raft`'s latest metrics,
/// otherwise what is known about the leader. A cheap local check; the
/// authoritative answer is `client_write`'s.
pub(crate) fn not_leader(raft: &Raft<TypeConfig>, node_id: NodeId) -> Option<LeaderHint> {
    let metrics = raft.metrics();
    let m = metrics.borrow();
    if m.state == ServerState::Leader && m.current_leader == Some(node_id) {
        return None;
    }
    let leader_addr = m.current_leader.and_then(|id| {
        m.membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    });
    Some(LeaderHint {
        leader_id: m.current_leader,
        leader_addr,
    })
}

/// Hands `raft`'s leadership to voter `to` (maintenance), waiting until `to`
/// leads or `deadline`; returns the leader then known. See
/// [`crate::shard::Shard::transfer_leadership`]; `name` is the group's name
/// in Admin calls (a shard, or the meta group).
pub(crate) async fn transfer_leadership(
    raft: &Raft<TypeConfig>,
    node_id: NodeId,
    name: &str,
    to: NodeId,
    deadline: tokio::time::Instant,
) -> Result<NodeId, crate::shard::ShardError> {
    use crate::shard::ShardError;
    use std::time::Duration;
    use tokio::time::Instant;
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership().clone();
    let Some(target) = membership.get_node(&to).cloned() else {
        return Err(ShardError::Refused(format!("node {to} is not a member")));
    };
    if !membership.voter_ids().any(|id| id == to) {
        return Err(ShardError::Refused(format!("node {to} is not a voter")));
    }
    let lease = Duration::from_millis(raft.config().election_timeout_max);
    let wait_leader = |deadline: Instant| async move {
        let mut m = raft.metrics();
        let _ = tokio::time::timeout_at(
            deadline,
            m.wait_for(|m| m.current_leader == Some(to) && m.state != ServerState::Candidate),
        )
        .await;
        raft.metrics().borrow().current_leader
    };
    if to == node_id {
        if not_leader(raft, node_id).is_none() {
            return Ok(to);
        }
        tokio::time::sleep_until((Instant::now() + lease).min(deadline)).await;
        raft.trigger()
            .elect()
            .await
            .map_err(|e| ShardError::Raft(e.to_string()))?;
        let leader = wait_leader(deadline).await;
        return leader.ok_or_else(|| ShardError::Raft("no leader after the election".into()));
    }
    if let Some(hint) = not_leader(raft, node_id) {
        return Err(ShardError::NotLeader(hint));
    }
    tracing::info!(shard = %name, to, "transferring leadership");
    raft.runtime_config().heartbeat(false);
    raft.runtime_config().elect(false);
    let asked = async {
        let channel = tonic::transport::Endpoint::from_shared(target.addr.clone())
            .map_err(|e| ShardError::Raft(format!("node {to} address: {e}")))?
            .connect_timeout(crate::network::CONNECT_TIMEOUT)
            .connect_lazy();
        let mut client = cairn_proto::v1::admin_client::AdminClient::new(channel);
        let mut request = tonic::Request::new(cairn_proto::v1::TransferLeaderRequest {
            shard: name.to_owned(),
            to,
        });
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        client
            .transfer_leader(request)
            .await
            .map_err(|s| ShardError::Raft(format!("node {to}: {}", s.message())))
    };
    let result = tokio::time::timeout_at(deadline, asked).await;
    raft.runtime_config().heartbeat(true);
    raft.runtime_config().elect(true);
    match result {
        Ok(Ok(answer)) => Ok(answer.into_inner().leader_id),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(raft.metrics().borrow().current_leader.unwrap_or(node_id)),
    }
}
