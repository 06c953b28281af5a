//! The `cairn.v1.Sequencer` gRPC service (`proto/cairn/v1/sequencer.proto`)
//! over the shards of one node, and the router that serves it together with
//! the Raft transport on one address.
//!
//! Status codes:
//!
//! | condition | code |
//! |---|---|
//! | malformed request (leaf not 128 bytes, more than [`MAX_LEAVES_PER_CALL`] leaves, leaf hash not 32 bytes, missing or malformed head, invalid signatures, unknown witness) | `INVALID_ARGUMENT` |
//! | unknown shard | `NOT_FOUND` |
//! | not the leader | `FAILED_PRECONDITION`, metadata [`NOT_LEADER_METADATA_KEY`] `1`, leader URL in metadata [`LEADER_METADATA_KEY`] when known |
//! | cosigned size below the published one, rejected by the state machine, data published under another log key, an operator request refused in this state | `FAILED_PRECONDITION` (no leader metadata) |
//! | cosigned size not integrated yet, or root not the log's root at that size | `OUT_OF_RANGE` |
//! | too many leaves pending (pushback) | `RESOURCE_EXHAUSTED` |
//! | pipeline halted, leader not yet checked against the published log, state behind a head this node signed, Raft or object store unavailable, shutting down | `UNAVAILABLE` |
//! | shard database trouble that passes (not [fatal](crate::log_store::StoreError::is_fatal): a snapshot being installed, a busy database) | `UNAVAILABLE` |
//! | shard database unusable ([fatal](crate::log_store::StoreError::is_fatal): corruption, IO errors), a fatal or unclassified object-store error, refusal to sign an inconsistent state, shard start failure | `INTERNAL` |
//!
//! Errors with a typed source take their code from its classification:
//! [`ShardError::Store`] from [`StoreError::is_fatal`](crate::log_store::StoreError::is_fatal),
//! [`ShardError::Storage`] from
//! [`StorageError::is_retryable`](cairn_storage::StorageError::is_retryable).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cairn_proto::v1::sequencer_server::{Sequencer, SequencerServer};
use cairn_proto::v1::{
    AddLeavesRequest, AddLeavesResponse, Cosignature, CosignedTreeHead, GetLeafIndexRequest,
    GetLeafIndexResponse, GetLeafIndicesRequest, GetLeafIndicesResponse, GetTreeHeadsRequest,
    LeafResult, PublishCosignedRequest, PublishCosignedResponse, ReportWitnessAheadRequest,
    ReportWitnessAheadResponse, SignedTreeHead, TreeHeads,
};
use cairn_proto::{LEADER_METADATA_KEY, NOT_LEADER_METADATA_KEY};
use cairn_tlog::Hash;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::batcher::LeafStatus;
use crate::network::RaftTransportService;
use crate::raft::LeaderHint;
use crate::registry::{HostCheck, Lifecycle, MetaGroup, ShardRecord};
use crate::shard::{Shard, ShardError};
use crate::types::{CosignedHead, LEAF_SIZE, StoredCosignature};

/// Most leaves one `AddLeaves` call may carry.
pub const MAX_LEAVES_PER_CALL: usize = 4096;

/// Most leaf hashes one `GetLeafIndices` call may carry.
pub const MAX_LEAF_INDICES_PER_CALL: usize = 1024;

/// Longest `wait_ms` honoured; larger values are capped to it.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// Most cosignatures one `PublishCosigned` call may carry (a checkpoint
/// object carries at most this many).
pub const MAX_COSIGNATURES_PER_CALL: usize = crate::signer::MAX_COSIGNATURES;

/// Largest gRPC message accepted: a full `AddLeaves` call (512 KiB of
/// leaves) with room for framing.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The sequencer service for a set of shards, keyed by name, and the
/// node's replica of the cluster registry if it has one. Cheap to clone:
/// clones share the set, which changes while serving as the node starts
/// and stops shards ([`insert`](Self::insert), [`remove`](Self::remove)).
#[derive(Clone, Debug)]
pub struct SequencerService {
    shards: Arc<RwLock<HashMap<String, Arc<Shard>>>>,
    meta: Option<Arc<MetaGroup>>,
    host_check: Option<Arc<dyn HostCheck>>,
}

impl SequencerService {
    /// A service for `shards` (a later shard with the same name replaces an
    /// earlier one).
    pub fn new(shards: impl IntoIterator<Item = Arc<Shard>>) -> Self {
        SequencerService {
            shards: Arc::new(RwLock::new(
                shards
                    .into_iter()
                    .map(|s| (s.name().to_owned(), s))
                    .collect(),
            )),
            meta: None,
            host_check: None,
        }
    }

    /// The same service with the node's replica of the registry, and how
    /// the node decides whether it can host a shard of it.
    pub fn with_registry(mut self, meta: Arc<MetaGroup>, host_check: Arc<dyn HostCheck>) -> Self {
        self.meta = Some(meta);
        self.host_check = Some(host_check);
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Shard>>> {
        // A panic while holding the lock leaves a valid map behind.
        self.shards.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `shard` from now on; returns the shard it replaced, if any.
    pub fn insert(&self, shard: Arc<Shard>) -> Option<Arc<Shard>> {
        let mut map = self.shards.write().unwrap_or_else(|e| e.into_inner());
        map.insert(shard.name().to_owned(), shard)
    }

    /// Stops serving `name` (calls for it are NOT_FOUND from now on);
    /// returns the shard, which the caller shuts down.
    pub fn remove(&self, name: &str) -> Option<Arc<Shard>> {
        let mut map = self.shards.write().unwrap_or_else(|e| e.into_inner());
        map.remove(name)
    }

    /// The names of the shards, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Every shard served now.
    pub fn all(&self) -> Vec<Arc<Shard>> {
        self.read().values().cloned().collect()
    }

    /// The shard named `name`.
    pub fn shard(&self, name: &str) -> Option<Arc<Shard>> {
        self.read().get(name).cloned()
    }

    /// The node's replica of the registry, if it has one.
    pub fn meta(&self) -> Option<&Arc<MetaGroup>> {
        self.meta.as_ref()
    }

    /// How the node decides whether it can host a shard, if it hosts
    /// registry shards.
    pub fn host_check(&self) -> Option<&Arc<dyn HostCheck>> {
        self.host_check.as_ref()
    }

    /// The tonic server, with message sizes bounded by
    /// [`MAX_MESSAGE_BYTES`].
    pub fn into_server(self) -> SequencerServer<Self> {
        SequencerServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn get(&self, name: &str) -> Result<Arc<Shard>, Status> {
        self.shard(name)
            .ok_or_else(|| Status::not_found(format!("unknown shard {name:?}")))
    }
}

/// The registry as a protobuf message.
pub fn registry_message(meta: &MetaGroup) -> cairn_proto::v1::Registry {
    let state = meta.state();
    let initialized = !meta.member_addrs().is_empty();
    cairn_proto::v1::Registry {
        shards: state.registry.values().map(record_message).collect(),
        applied_index: state.last_applied.map_or(0, |l| l.index),
        initialized,
    }
}

/// A registry record as a protobuf message.
pub fn record_message(r: &ShardRecord) -> cairn_proto::v1::ShardRecord {
    cairn_proto::v1::ShardRecord {
        name: r.name.clone(),
        log_key: r.log_key.to_vec(),
        policy: r.policy.clone(),
        prefix: r.prefix.clone(),
        replicas: r.replicas.clone(),
        state: r.state.as_str().to_owned(),
        successor: r.successor.clone(),
        freeze_at: r.freeze_at,
    }
}

/// A registry record from its protobuf message.
pub fn record_from_message(m: cairn_proto::v1::ShardRecord) -> Result<ShardRecord, Status> {
    let log_key: [u8; 32] =
        m.log_key.as_slice().try_into().map_err(|_| {
            Status::invalid_argument("log_key must be a 32-byte Ed25519 public key")
        })?;
    let state = Lifecycle::parse(&m.state).ok_or_else(|| {
        Status::invalid_argument(format!(
            "state {:?} is not active, frozen or retired",
            m.state
        ))
    })?;
    Ok(ShardRecord {
        name: m.name,
        log_key,
        policy: m.policy,
        prefix: m.prefix,
        replicas: m.replicas,
        state,
        successor: m.successor,
        freeze_at: m.freeze_at,
    })
}

/// A router serving the sequencer, admin, health and Raft transport
/// services on one address (health `Watch` streams end when `stop` turns
/// true, so that a graceful shutdown does not wait for them); serve it with `serve`/`serve_with_incoming_shutdown`.
pub fn grpc_router(
    sequencer: SequencerService,
    transport: RaftTransportService,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // Continues the callers' traces (cairn_proto::trace).
        .trace_fn(cairn_proto::trace::server_span)
        .add_service(crate::admin::AdminService::new(sequencer.clone()).into_server())
        .add_service(crate::health::HealthService::new(sequencer.clone(), stop).into_server())
        .add_service(sequencer.into_server())
        .add_service(transport.into_server())
}

/// The gRPC status for a shard error (see the module table).
pub fn status_for(e: &ShardError) -> Status {
    let msg = e.to_string();
    match e {
        ShardError::NotLeader(hint) => not_leader_status(msg, hint),
        ShardError::Pushback { .. } => Status::resource_exhausted(msg),
        ShardError::InvalidHead(_) => Status::invalid_argument(msg),
        ShardError::Stale { .. }
        | ShardError::Rejected(_)
        | ShardError::WrongKey { .. }
        | ShardError::Frozen(_)
        | ShardError::Refused(_) => Status::failed_precondition(msg),
        ShardError::NotInTree { .. } => Status::out_of_range(msg),
        ShardError::Halted(_)
        | ShardError::Raft(_)
        | ShardError::ShuttingDown
        | ShardError::Record(_)
        | ShardError::NotCleared
        | ShardError::Degraded(_) => Status::unavailable(msg),
        ShardError::Storage(e) if e.is_retryable() => Status::unavailable(msg),
        ShardError::Store(e) if !e.is_fatal() => Status::unavailable(msg),
        ShardError::Storage(_)
        | ShardError::Store(_)
        | ShardError::Signing(_)
        | ShardError::Start { .. } => Status::internal(msg),
    }
}

fn not_leader_status(msg: String, hint: &LeaderHint) -> Status {
    let mut status = Status::failed_precondition(msg);
    status
        .metadata_mut()
        .insert(NOT_LEADER_METADATA_KEY, MetadataValue::from_static("1"));
    if let Some(addr) = &hint.leader_addr
        && let Ok(value) = MetadataValue::try_from(addr.as_str())
    {
        status.metadata_mut().insert(LEADER_METADATA_KEY, value);
    }
    status
}

/// The wire form of a shard's heads.
fn tree_heads_message(heads: crate::shard::TreeHeads) -> TreeHeads {
    let signed = SignedTreeHead {
        size: heads.signed.tree_head.size,
        root_hash: heads.signed.tree_head.root_hash.to_vec(),
        signature: heads.signed.signature.0.to_vec(),
    };
    let cosigned = heads.cosigned.map(|c| CosignedTreeHead {
        signed: Some(SignedTreeHead {
            size: c.size,
            root_hash: c.root.to_vec(),
            signature: c.signature,
        }),
        cosignatures: c
            .cosignatures
            .into_iter()
            .map(|s| Cosignature {
                key_hash: s.key_hash.to_vec(),
                timestamp: s.timestamp,
                signature: s.signature,
                note_name: s.note_name,
            })
            .collect(),
    });
    TreeHeads {
        tree_size: heads.tree_size,
        signed: Some(signed),
        cosigned,
        frozen: heads.frozen.map(frozen_message),
    }
}

/// The wire form of a freeze.
pub(crate) fn frozen_message(frozen: crate::types::Frozen) -> cairn_proto::v1::Frozen {
    cairn_proto::v1::Frozen {
        size: frozen.size,
        successor: frozen.successor,
    }
}

/// What makes a `WatchTreeHeads` message worth sending: the signed size,
/// the published head (its size and cosignatures, as a re-publication may
/// add some or renew them) and whether the log is frozen. The bare tree
/// size alone changes with every batch and is not worth a message.
type Watched = (u64, Option<(u64, Vec<StoredCosignature>)>, bool);

fn watched_of(integrated_size: u64, cosigned: Option<&CosignedHead>, frozen: bool) -> Watched {
    (
        integrated_size,
        cosigned.map(|c| (c.size, c.cosignatures.clone())),
        frozen,
    )
}

fn watched(heads: &crate::shard::TreeHeads) -> Watched {
    watched_of(
        heads.signed.tree_head.size,
        heads.cosigned.as_ref(),
        heads.frozen.is_some(),
    )
}

/// Feeds one `WatchTreeHeads` stream until the reader goes away or the
/// shard stops (which must end the stream, or the gRPC server's graceful
/// shutdown would wait for it forever).
async fn watch_heads(
    shard: Arc<Shard>,
    first: crate::shard::TreeHeads,
    tx: mpsc::Sender<Result<TreeHeads, Status>>,
) {
    let mut states = shard.subscribe();
    let mut stop = shard.watch_stop();
    let mut last = watched(&first);
    if tx.send(Ok(tree_heads_message(first))).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            changed = states.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
            () = tx.closed() => return,
        }
        // Signing happens only here, for a state that moved: one signature
        // per new head and stream, not one per poll.
        let state = states.borrow_and_update().clone();
        if watched_of(
            state.integrated_size,
            state.cosigned.as_ref(),
            state.frozen.is_some(),
        ) == last
        {
            continue;
        }
        let heads = match shard.heads_for(state) {
            Ok(h) => h,
            Err(e) => {
                let _ = tx.send(Err(status_for(&e))).await;
                return;
            }
        };
        last = watched(&heads);
        if tx.send(Ok(tree_heads_message(heads))).await.is_err() {
            return;
        }
    }
}

fn hash(bytes: &[u8], what: &str) -> Result<Hash, Status> {
    bytes
        .try_into()
        .map_err(|_| Status::invalid_argument(format!("{what} is {} bytes, want 32", bytes.len())))
}

#[tonic::async_trait]
impl Sequencer for SequencerService {
    async fn add_leaves(
        &self,
        request: Request<AddLeavesRequest>,
    ) -> Result<Response<AddLeavesResponse>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        if req.leaves.len() > MAX_LEAVES_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "{} leaves in one call, at most {MAX_LEAVES_PER_CALL}",
                req.leaves.len()
            )));
        }
        let leaves = req
            .leaves
            .iter()
            .enumerate()
            .map(|(i, leaf)| {
                <[u8; LEAF_SIZE]>::try_from(leaf.as_slice()).map_err(|_| {
                    Status::invalid_argument(format!(
                        "leaf {i} is {} bytes, a Sigsum leaf is {LEAF_SIZE}",
                        leaf.len()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let wait = Duration::from_millis(u64::from(req.wait_ms)).min(MAX_WAIT);
        let statuses = shard
            .submit(leaves, Instant::now() + wait)
            .await
            .map_err(|e| status_for(&e))?;
        let frozen = statuses
            .contains(&LeafStatus::Frozen)
            .then(|| shard.frozen().map(frozen_message))
            .flatten();
        let results = statuses
            .into_iter()
            .map(|s| match s {
                LeafStatus::Committed(index) => LeafResult {
                    committed: true,
                    index,
                    frozen: false,
                },
                LeafStatus::Pending => LeafResult {
                    committed: false,
                    index: 0,
                    frozen: false,
                },
                LeafStatus::Frozen => LeafResult {
                    committed: false,
                    index: 0,
                    frozen: true,
                },
            })
            .collect();
        Ok(Response::new(AddLeavesResponse { results, frozen }))
    }

    async fn get_leaf_index(
        &self,
        request: Request<GetLeafIndexRequest>,
    ) -> Result<Response<GetLeafIndexResponse>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        let leaf_hash = hash(&req.leaf_hash, "leaf_hash")?;
        let index = shard
            .leaf_index(leaf_hash)
            .await
            .map_err(|e| status_for(&e))?;
        Ok(Response::new(GetLeafIndexResponse {
            found: index.is_some(),
            index: index.unwrap_or(0),
        }))
    }

    async fn get_leaf_indices(
        &self,
        request: Request<GetLeafIndicesRequest>,
    ) -> Result<Response<GetLeafIndicesResponse>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        if req.leaf_hashes.len() > MAX_LEAF_INDICES_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "{} leaf hashes in one call; at most {MAX_LEAF_INDICES_PER_CALL}",
                req.leaf_hashes.len()
            )));
        }
        let hashes = req
            .leaf_hashes
            .iter()
            .map(|h| hash(h, "leaf_hashes"))
            .collect::<Result<Vec<_>, _>>()?;
        let indices = shard
            .leaf_indices(hashes)
            .await
            .map_err(|e| status_for(&e))?;
        Ok(Response::new(GetLeafIndicesResponse {
            results: indices
                .into_iter()
                .map(|index| GetLeafIndexResponse {
                    found: index.is_some(),
                    index: index.unwrap_or(0),
                })
                .collect(),
        }))
    }

    async fn get_registry(
        &self,
        _request: Request<cairn_proto::v1::GetRegistryRequest>,
    ) -> Result<Response<cairn_proto::v1::Registry>, Status> {
        let meta = self
            .meta
            .as_ref()
            .ok_or_else(|| Status::not_found("this node keeps no cluster registry"))?;
        Ok(Response::new(registry_message(meta)))
    }

    async fn get_tree_heads(
        &self,
        request: Request<GetTreeHeadsRequest>,
    ) -> Result<Response<TreeHeads>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        let heads = cairn_proto::trace::traced(|| tracing::info_span!("sign", shard = %req.shard))
            .in_scope(|| shard.tree_heads())
            .map_err(|e| status_for(&e))?;
        Ok(Response::new(tree_heads_message(heads)))
    }

    type WatchTreeHeadsStream = ReceiverStream<Result<TreeHeads, Status>>;

    async fn watch_tree_heads(
        &self,
        request: Request<GetTreeHeadsRequest>,
    ) -> Result<Response<Self::WatchTreeHeadsStream>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        // Fails the call itself (rather than the stream) if the shard
        // cannot sign its current head.
        let first = shard.tree_heads().map_err(|e| status_for(&e))?;
        // One slot: the task waits for the reader instead of queueing heads,
        // and sends whatever is newest when the reader catches up.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(watch_heads(shard, first, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_cosigned(
        &self,
        request: Request<PublishCosignedRequest>,
    ) -> Result<Response<PublishCosignedResponse>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        let head = req
            .head
            .ok_or_else(|| Status::invalid_argument("head is missing"))?;
        let signed = head
            .signed
            .ok_or_else(|| Status::invalid_argument("head.signed is missing"))?;
        if head.cosignatures.len() > MAX_COSIGNATURES_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "{} cosignatures, at most {MAX_COSIGNATURES_PER_CALL}",
                head.cosignatures.len()
            )));
        }
        if signed.signature.len() != 64 {
            return Err(Status::invalid_argument(format!(
                "log signature is {} bytes, want 64",
                signed.signature.len()
            )));
        }
        let cosignatures = head
            .cosignatures
            .into_iter()
            .map(|c| {
                if c.signature.len() != 64 {
                    return Err(Status::invalid_argument(format!(
                        "cosignature is {} bytes, want 64",
                        c.signature.len()
                    )));
                }
                Ok(StoredCosignature {
                    key_hash: hash(&c.key_hash, "cosignature key_hash")?,
                    timestamp: c.timestamp,
                    signature: c.signature,
                    note_name: c.note_name,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let head = CosignedHead {
            size: signed.size,
            root: hash(&signed.root_hash, "root_hash")?,
            signature: signed.signature,
            cosignatures,
        };
        shard
            .publish_cosigned(head)
            .await
            .map_err(|e| status_for(&e))?;
        Ok(Response::new(PublishCosignedResponse {}))
    }

    async fn report_witness_ahead(
        &self,
        request: Request<ReportWitnessAheadRequest>,
    ) -> Result<Response<ReportWitnessAheadResponse>, Status> {
        let req = request.into_inner();
        let shard = self.get(&req.shard)?;
        let halted = shard.witness_ahead(&req.witness, req.witness_size);
        Ok(Response::new(ReportWitnessAheadResponse { halted }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_store::StoreError;

    #[test]
    fn shard_database_errors_are_unavailable_when_they_pass_and_internal_when_fatal() {
        let passes = ShardError::Store(StoreError::Installing);
        assert!(passes.is_retryable());
        assert_eq!(status_for(&passes).code(), tonic::Code::Unavailable);
        let fatal = ShardError::Store(StoreError::Corrupt("leaf 7 is missing".into()));
        assert!(!fatal.is_retryable());
        assert_eq!(status_for(&fatal).code(), tonic::Code::Internal);
    }
}
