//! The `cairn.v1.Admin` gRPC service (`proto/cairn/v1/admin.proto`): create a
//! shard's Raft group, change its membership, and report each node's view.
//!
//! Status codes follow the Sequencer service ([`crate::service::status_for`]):
//! a follower refuses membership changes with `FAILED_PRECONDITION` and the
//! leader's URL in `cairn-leader`; creating a group over existing state is
//! `FAILED_PRECONDITION` without it; malformed requests `INVALID_ARGUMENT`;
//! a call that outlives its deadline `DEADLINE_EXCEEDED`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::v1::admin_server::{Admin, AdminServer};
use cairn_proto::v1::{
    AddNodeRequest, CanHostResponse, ChangeRegistryRequest, FreezeShardRequest,
    FreezeShardResponse, InitShardRequest, InitShardResponse, ListShardsRequest,
    ListShardsResponse, Member, MembershipResponse, RemoveNodeRequest, Replication, StatusRequest,
    StatusResponse, TransferLeaderRequest, TransferLeaderResponse,
};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Raft, ServerState};
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::raft::not_leader;
use crate::registry::{Lifecycle, META_GROUP, MetaGroup, RegistryChange};
use crate::service::{SequencerService, record_from_message, registry_message, status_for};
use crate::shard::{Shard, ShardError};
use crate::types::{NodeId, TypeConfig};

/// Most voters a group may be created with or grow to. Raft groups larger
/// than this only slow commits down.
pub const MAX_VOTERS: usize = 7;

/// Deadline of a membership change when the caller sets none: a learner
/// may need a snapshot of the whole shard.
pub const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(300);

/// Deadline of a leadership transfer when the caller sets none.
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin service over the shards of one node. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AdminService {
    shards: SequencerService,
}

impl AdminService {
    /// The admin service for the shards `sequencer` serves.
    pub fn new(sequencer: SequencerService) -> Self {
        AdminService { shards: sequencer }
    }

    /// The tonic server.
    pub fn into_server(self) -> AdminServer<Self> {
        AdminServer::new(self)
    }

    fn get(&self, name: &str) -> Result<Arc<Shard>, Status> {
        self.shards
            .shard(name)
            .ok_or_else(|| Status::not_found(format!("this node hosts no shard {name:?}")))
    }

    fn meta(&self) -> Result<Arc<MetaGroup>, Status> {
        self.shards.meta().cloned().ok_or_else(|| {
            Status::not_found(
                "this node keeps no cluster registry (no [registry] in its configuration)",
            )
        })
    }

    /// A shard, or the meta group for [`META_GROUP`].
    fn group(&self, name: &str) -> Result<Group, Status> {
        if name == META_GROUP {
            self.meta().map(Group::Meta)
        } else {
            self.get(name).map(Group::Shard)
        }
    }
}

/// A Raft group this node belongs to: a shard's, or the registry's.
enum Group {
    Shard(Arc<Shard>),
    Meta(Arc<MetaGroup>),
}

impl Group {
    fn name(&self) -> &str {
        match self {
            Group::Shard(s) => s.name(),
            Group::Meta(_) => META_GROUP,
        }
    }

    fn raft(&self) -> &Raft<TypeConfig> {
        match self {
            Group::Shard(s) => s.raft(),
            Group::Meta(m) => m.raft(),
        }
    }

    fn node_id(&self) -> NodeId {
        match self {
            Group::Shard(s) => s.node_id(),
            Group::Meta(m) => m.node_id(),
        }
    }
}

/// The deadline the client asked for (`grpc-timeout`), else `default`.
fn deadline_of<T>(request: &Request<T>, default: Duration) -> Instant {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout)
        .unwrap_or(default);
    Instant::now() + timeout
}

/// Parses a `grpc-timeout` header value (`<digits><unit>`).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn check_member(m: &Member) -> Result<(), Status> {
    if m.id == 0 {
        return Err(Status::invalid_argument("node id 0 is not allowed"));
    }
    if !(m.addr.starts_with("http://") || m.addr.starts_with("https://"))
        || m.addr.parse::<tonic::transport::Uri>().is_err()
    {
        return Err(Status::invalid_argument(format!(
            "node {} address {:?} is not an http(s)://host:port URL",
            m.id, m.addr
        )));
    }
    Ok(())
}

fn members<'a>(nodes: impl Iterator<Item = (&'a NodeId, &'a BasicNode)>) -> Vec<Member> {
    nodes
        .map(|(id, n)| Member {
            id: *id,
            addr: n.addr.clone(),
        })
        .collect()
}

/// The current voters and learners of `raft`.
fn membership(raft: &Raft<TypeConfig>) -> MembershipResponse {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    MembershipResponse {
        voters: members(membership.nodes().filter(|(id, _)| voters.contains(id))),
        learners: members(membership.nodes().filter(|(id, _)| !voters.contains(id))),
    }
}

/// Maps a failed membership change.
fn change_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>, group: &str) -> Status {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            status_for(&ShardError::NotLeader(f.into()))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Status::failed_precondition(format!("group {group}: {e}"))
        }
        e => Status::unavailable(format!("group {group}: raft: {e}")),
    }
}

/// Deadline of a registry change when the caller sets none (it asks every
/// new replica whether it can host the shard first).
pub const DEFAULT_REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);

/// Asks node `id` at `addr` whether it can host `record` (its CanHost).
async fn check_host(
    id: NodeId,
    addr: &str,
    record: &crate::registry::ShardRecord,
    deadline: Instant,
) -> Result<(), Status> {
    let channel = tonic::transport::Endpoint::from_shared(addr.to_owned())
        .map_err(|e| Status::invalid_argument(format!("node {id} address {addr:?}: {e}")))?
        .connect_timeout(CANDIDATE_STATUS_TIMEOUT)
        .connect_lazy();
    let mut request = Request::new(crate::service::record_message(record));
    request.set_timeout(
        deadline
            .saturating_duration_since(Instant::now())
            .min(CANDIDATE_STATUS_TIMEOUT),
    );
    match cairn_proto::v1::admin_client::AdminClient::new(channel)
        .can_host(request)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == tonic::Code::FailedPrecondition => {
            Err(Status::failed_precondition(format!(
                "node {id} cannot host shard {:?}: {}",
                record.name,
                e.message()
            )))
        }
        Err(e) => Err(Status::unavailable(format!(
            "node {id} ({addr}) did not answer whether it can host shard {:?}: {}: {}",
            record.name,
            e.code(),
            e.message()
        ))),
    }
}

/// How long a node being added gets to answer its Status call.
const CANDIDATE_STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// Refuses to add `node` unless it hosts the shard with the same log key:
/// a node without the shard would never catch up, and one with another key
/// would, once leader, sign heads no witness or verifier of this log
/// accepts.
async fn check_candidate(group: &Group, node: &Member) -> Result<(), Status> {
    let unreachable = |e: String| {
        Status::unavailable(format!(
            "node {} ({}) did not answer its status call: {e}",
            node.id, node.addr
        ))
    };
    let channel = tonic::transport::Endpoint::from_shared(node.addr.clone())
        .map_err(|e| Status::invalid_argument(format!("node address {:?}: {e}", node.addr)))?
        .connect_timeout(CANDIDATE_STATUS_TIMEOUT)
        .timeout(CANDIDATE_STATUS_TIMEOUT)
        .connect_lazy();
    let answer = cairn_proto::v1::admin_client::AdminClient::new(channel)
        .status(StatusRequest {
            shard: group.name().to_owned(),
        })
        .await;
    let status = match answer {
        Ok(s) => s.into_inner(),
        Err(e) if e.code() == tonic::Code::NotFound => {
            return Err(Status::failed_precondition(format!(
                "node {} ({}) does not host {:?}: add it (a shard with its log key, or \
                 [registry] for the meta group) to that node's configuration and restart it",
                node.id,
                node.addr,
                group.name()
            )));
        }
        Err(e) => return Err(unreachable(format!("{}: {}", e.code(), e.message()))),
    };
    if status.node_id != node.id {
        return Err(Status::failed_precondition(format!(
            "{} is node {}, not node {}: check the node id",
            node.addr, status.node_id, node.id
        )));
    }
    let Group::Shard(shard) = group else {
        return Ok(());
    };
    let ours = shard.signer().public_key().key_hash();
    if status.log_key_hash != ours.0 {
        return Err(Status::failed_precondition(format!(
            "node {} ({}) holds another log key for shard {:?} (key hash {}, this log's is {ours}): \
             every replica must hold the shard's key",
            node.id,
            node.addr,
            shard.name(),
            hex::encode(&status.log_key_hash),
        )));
    }
    Ok(())
}

fn leader_only(group: &Group) -> Result<(), Status> {
    match not_leader(group.raft(), group.node_id()) {
        None => Ok(()),
        Some(hint) => Err(status_for(&ShardError::NotLeader(hint))),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn init_shard(
        &self,
        request: Request<InitShardRequest>,
    ) -> Result<Response<InitShardResponse>, Status> {
        let req = request.into_inner();
        let group = self.group(&req.shard)?;
        if req.voters.is_empty() || req.voters.len() > MAX_VOTERS {
            return Err(Status::invalid_argument(format!(
                "a group needs 1 to {MAX_VOTERS} voters, got {}",
                req.voters.len()
            )));
        }
        let mut voters = BTreeMap::new();
        for m in &req.voters {
            check_member(m)?;
            if voters.insert(m.id, m.addr.clone()).is_some() {
                return Err(Status::invalid_argument(format!(
                    "node id {} is named twice",
                    m.id
                )));
            }
        }
        match &group {
            Group::Shard(shard) => shard.init_group(voters).await,
            Group::Meta(meta) => meta.init_group(voters).await,
        }
        .map_err(|e| status_for(&e))?;
        Ok(Response::new(InitShardResponse {}))
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let deadline = deadline_of(&request, DEFAULT_CHANGE_TIMEOUT);
        let req = request.into_inner();
        let group = self.group(&req.shard)?;
        let node = req
            .node
            .ok_or_else(|| Status::invalid_argument("the node to add is missing"))?;
        check_member(&node)?;
        leader_only(&group)?;
        let raft = group.raft();
        let name = group.name();
        let current = membership(raft);
        if current.voters.iter().any(|m| m.id == node.id) {
            return Ok(Response::new(current));
        }
        check_candidate(&group, &node).await?;
        if current.voters.len() >= MAX_VOTERS {
            return Err(Status::failed_precondition(format!(
                "the group already has {MAX_VOTERS} voters"
            )));
        }
        let work = async {
            // Blocking: returns once the learner has caught up with the log
            // as it was when it was added (by replication or a snapshot).
            raft.add_learner(
                node.id,
                BasicNode {
                    addr: node.addr.clone(),
                },
                true,
            )
            .await
            .map_err(|e| change_error(e, name))?;
            tracing::info!(group = %name, node = node.id, addr = %node.addr, "learner caught up; promoting to voter");
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node.id])), false)
                .await
                .map_err(|e| change_error(e, name))?;
            Ok::<_, Status>(())
        };
        tokio::time::timeout_at(deadline, work)
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "node {} did not catch up in time; it may remain a learner: repeat the call \
                 to finish",
                    node.id
                ))
            })??;
        tracing::info!(group = %name, node = node.id, "node added as a voter");
        Ok(Response::new(membership(raft)))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let deadline = deadline_of(&request, DEFAULT_CHANGE_TIMEOUT);
        let req = request.into_inner();
        let group = self.group(&req.shard)?;
        leader_only(&group)?;
        let raft = group.raft();
        let current = membership(raft);
        let is_voter = current.voters.iter().any(|m| m.id == req.id);
        let is_learner = current.learners.iter().any(|m| m.id == req.id);
        let ids = BTreeSet::from([req.id]);
        let change = if is_voter {
            if current.voters.len() == 1 {
                return Err(Status::failed_precondition(
                    "refusing to remove the last voter of the group",
                ));
            }
            ChangeMembers::RemoveVoters(ids)
        } else if is_learner {
            ChangeMembers::RemoveNodes(ids)
        } else {
            return Ok(Response::new(current));
        };
        tokio::time::timeout_at(deadline, raft.change_membership(change, false))
            .await
            .map_err(|_| Status::deadline_exceeded("the membership change did not commit in time"))?
            .map_err(|e| change_error(e, group.name()))?;
        tracing::info!(group = %group.name(), node = req.id, "node removed from the group");
        Ok(Response::new(membership(raft)))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let req = request.into_inner();
        let group = self.group(&req.shard)?;
        let raft = group.raft();
        let (empty, state) = match &group {
            Group::Shard(s) => (s.is_empty().await, s.state()),
            Group::Meta(m) => (m.is_empty().await, m.state()),
        };
        let empty = empty.map_err(|e| status_for(&e))?;
        let m = raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let initialized = membership.nodes().next().is_some();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower if voter_ids.contains(&group.node_id()) => "follower",
            ServerState::Follower | ServerState::Learner => "learner",
            ServerState::Candidate => "candidate",
            ServerState::Shutdown => "shutdown",
        };
        let leader_addr = m
            .current_leader
            .and_then(|id| membership.get_node(&id).map(|n| n.addr.clone()))
            .unwrap_or_default();
        let replication = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, log)| Replication {
                        id: *id,
                        matched: log.map(|l| l.index),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let shard = match &group {
            Group::Shard(s) => Some(s),
            Group::Meta(_) => None,
        };
        Ok(Response::new(StatusResponse {
            shard: group.name().to_owned(),
            node_id: group.node_id(),
            role: role.to_owned(),
            term: m.current_term,
            leader_id: m.current_leader,
            leader_addr,
            initialized,
            empty,
            voters: members(membership.nodes().filter(|(id, _)| voter_ids.contains(id))),
            learners: members(membership.nodes().filter(|(id, _)| !voter_ids.contains(id))),
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            tree_size: state.tree_size,
            integrated_size: state.integrated_size,
            published_size: state.cosigned.as_ref().map_or(0, |c| c.size),
            replication,
            halted: shard.and_then(|s| s.halted()).unwrap_or_default(),
            degraded: shard.and_then(|s| s.degraded()).unwrap_or_default(),
            cleared: shard.is_some_and(|s| s.cleared()),
            tree_root: state.tree_root.to_vec(),
            frozen: state.frozen.clone().map(crate::service::frozen_message),
            log_key_hash: shard
                .map(|s| s.signer().public_key().key_hash().0.to_vec())
                .unwrap_or_default(),
        }))
    }

    async fn list_shards(
        &self,
        _request: Request<ListShardsRequest>,
    ) -> Result<Response<ListShardsResponse>, Status> {
        Ok(Response::new(ListShardsResponse {
            shards: self.shards.names(),
        }))
    }

    async fn freeze_shard(
        &self,
        request: Request<FreezeShardRequest>,
    ) -> Result<Response<FreezeShardResponse>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        let frozen = shard
            .freeze(&req.successor)
            .await
            .map_err(|e| status_for(&e))?;
        Ok(Response::new(FreezeShardResponse {
            frozen: Some(crate::service::frozen_message(frozen)),
        }))
    }

    async fn change_registry(
        &self,
        request: Request<ChangeRegistryRequest>,
    ) -> Result<Response<cairn_proto::v1::Registry>, Status> {
        use cairn_proto::v1::change_registry_request::Change;
        let deadline = deadline_of(&request, DEFAULT_REGISTRY_TIMEOUT);
        let meta = self.meta()?;
        if let Some(hint) = not_leader(meta.raft(), meta.node_id()) {
            return Err(status_for(&ShardError::NotLeader(hint)));
        }
        let change = match request.into_inner().change {
            None => return Err(Status::invalid_argument("no change given")),
            Some(Change::Create(record)) => {
                let record = record_from_message(record)?;
                crate::registry::check_record(&record).map_err(Status::invalid_argument)?;
                RegistryChange::Create(record)
            }
            Some(Change::SetState(s)) => RegistryChange::SetState {
                state: Lifecycle::parse(&s.state).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "state {:?} is not frozen or retired",
                        s.state
                    ))
                })?,
                name: s.shard,
                successor: s.successor,
            },
            Some(Change::SetReplicas(r)) => RegistryChange::SetReplicas {
                name: r.shard,
                replicas: r.replicas,
            },
        };
        // Nodes that would start hosting the shard must be able to: ask
        // them before anything is recorded.
        let registry = meta.registry();
        let (record, new_nodes) = match &change {
            RegistryChange::Create(r) => (Some(r.clone()), r.replicas.clone()),
            RegistryChange::SetReplicas { name, replicas } => match registry.get(name) {
                Some(r) => (
                    Some(r.clone()),
                    replicas
                        .iter()
                        .filter(|id| !r.replicas.contains(id))
                        .copied()
                        .collect(),
                ),
                None => (None, Vec::new()),
            },
            RegistryChange::SetState { .. } => (None, Vec::new()),
        };
        if let Some(record) = record {
            let m = meta.raft().metrics().borrow().clone();
            let nodes = m.membership_config.membership().clone();
            for id in new_nodes {
                let Some(node) = nodes.get_node(&id) else {
                    return Err(Status::failed_precondition(format!(
                        "node {id} is not a member of the registry's group: add it with \
                         `cairn cluster add-node --shard {META_GROUP}` first"
                    )));
                };
                check_host(id, &node.addr, &record, deadline).await?;
            }
        }
        tokio::time::timeout_at(deadline, meta.change(change))
            .await
            .map_err(|_| Status::deadline_exceeded("the registry change did not commit in time"))?
            .map_err(|e| match e {
                ShardError::Rejected(reason) => Status::failed_precondition(reason),
                e => status_for(&e),
            })?;
        Ok(Response::new(registry_message(&meta)))
    }

    async fn can_host(
        &self,
        request: Request<cairn_proto::v1::ShardRecord>,
    ) -> Result<Response<CanHostResponse>, Status> {
        let record = record_from_message(request.into_inner())?;
        let check = self.shards.host_check().ok_or_else(|| {
            Status::failed_precondition(
                "this node hosts no registry shards (no [registry] in its configuration)",
            )
        })?;
        check.check(&record).map_err(Status::failed_precondition)?;
        Ok(Response::new(CanHostResponse {}))
    }

    async fn transfer_leader(
        &self,
        request: Request<TransferLeaderRequest>,
    ) -> Result<Response<TransferLeaderResponse>, Status> {
        let deadline = deadline_of(&request, DEFAULT_TRANSFER_TIMEOUT);
        let req = request.into_inner();
        let leader = match self.group(&req.shard)? {
            Group::Shard(shard) => shard.transfer_leadership(req.to, deadline).await,
            Group::Meta(meta) => {
                crate::raft::transfer_leadership(
                    meta.raft(),
                    meta.node_id(),
                    META_GROUP,
                    req.to,
                    deadline,
                )
                .await
            }
        }
        .map_err(|e| status_for(&e))?;
        Ok(Response::new(TransferLeaderResponse { leader_id: leader }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
        assert_eq!(parse_grpc_timeout("5x"), None);
    }

    #[test]
    fn members_need_an_id_and_a_url() {
        let ok = Member {
            id: 1,
            addr: "http://127.0.0.1:7001".into(),
        };
        assert!(check_member(&ok).is_ok());
        for bad in [
            Member {
                id: 0,
                addr: ok.addr.clone(),
            },
            Member {
                id: 2,
                addr: "127.0.0.1:7001".into(),
            },
            Member {
                id: 3,
                addr: "http://bad host".into(),
            },
        ] {
            assert_eq!(
                check_member(&bad).unwrap_err().code(),
                tonic::Code::InvalidArgument
            );
        }
    }
}
