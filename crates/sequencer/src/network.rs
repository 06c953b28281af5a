//! The Raft transport between sequencer replicas, over tonic.
//!
//! One gRPC service, `cairn.v1.RaftTransport` (`proto/cairn/v1/raft.proto`),
//! carries every shard's Raft group: each [`RaftMessage`] names its shard,
//! and its payload is the postcard encoding of the openraft request; the
//! reply payload is the postcard encoding of `Result<response, RaftError>`.
//!
//! * Client: [`GrpcNetworkFactory`] (openraft's `RaftNetworkFactory`), one per
//!   shard. Channels are created lazily per target address and shared by every
//!   client of the factory (and of its [`for_shard`](GrpcNetworkFactory::for_shard)
//!   siblings); tonic reconnects them by itself.
//! * Server: [`RaftTransportService`] dispatches by shard name to the
//!   `Raft` handles [`register`](RaftTransportService::register)ed with it.
//!
//! Starting a shard's Raft on this transport is [`crate::raft`]'s.
//!
//! Messages are bounded by [`MAX_RAFT_MESSAGE_BYTES`] in both directions; an
//! AppendEntries above it is refused locally with `PayloadTooLarge`, so
//! openraft retries with fewer entries. Snapshots travel in chunks of
//! openraft's `Config::snapshot_max_chunk_size` (3 MiB by default), which must
//! stay below the bound.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_proto::v1::RaftMessage;
use cairn_proto::v1::raft_transport_client::RaftTransportClient;
use cairn_proto::v1::raft_transport_server::{RaftTransport, RaftTransportServer};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, Raft, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::types::{NodeId, TypeConfig};

/// Largest Raft message, request or reply, sent or accepted (64 MiB).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How long a client waits for a TCP connection to a peer before reporting it
/// unreachable (openraft then backs off before the next try).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Channels by target address, shared by the clients of one or more factories.
type ChannelPool = Arc<Mutex<HashMap<String, Channel>>>;

/// openraft's network factory for one shard: clients that send that shard's
/// Raft RPCs to `BasicNode::addr` (`http://host:port`) over gRPC.
///
/// Connections are made lazily on the first RPC and re-made after failures.
/// Each RPC is bounded by openraft's `RPCOption::hard_ttl` (→
/// `RPCError::Timeout`); a peer that cannot be connected to is
/// `RPCError::Unreachable` (openraft backs off), any other transport or
/// decoding failure is `RPCError::Network` (openraft retries), and a
/// `RaftError` returned by the peer is `RPCError::RemoteError`.
#[derive(Clone)]
pub struct GrpcNetworkFactory {
    node_id: NodeId,
    shard: String,
    channels: ChannelPool,
}

impl Debug for GrpcNetworkFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcNetworkFactory")
            .field("node_id", &self.node_id)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl GrpcNetworkFactory {
    /// The factory of node `node_id` (this replica, used in timeout errors)
    /// for `shard`.
    pub fn new(node_id: NodeId, shard: impl Into<String>) -> Self {
        GrpcNetworkFactory {
            node_id,
            shard: shard.into(),
            channels: Arc::default(),
        }
    }

    /// A factory for another shard of the same node that shares this one's
    /// connections (one HTTP/2 connection per peer for all shards).
    pub fn for_shard(&self, shard: impl Into<String>) -> Self {
        GrpcNetworkFactory {
            node_id: self.node_id,
            shard: shard.into(),
            channels: self.channels.clone(),
        }
    }

    /// The shard whose RPCs this factory's clients send.
    pub fn shard(&self) -> &str {
        &self.shard
    }

    /// The (lazily connecting) channel to `addr`, created on first use.
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        // A poisoned pool only means a panic elsewhere mid-insert; the map is
        // still valid.
        let mut pool = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = pool.get(addr) {
            return Ok(channel.clone());
        }
        let channel = Endpoint::from_shared(addr.to_string())?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        pool.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetworkFactory {
    type Network = GrpcNetwork;

    /// Never connects: the connection is made by the first RPC.
    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> GrpcNetwork {
        let client = self.channel(&node.addr).map_err(|e| {
            tracing::warn!(target, addr = %node.addr, error = %e, "invalid raft peer address");
            e.to_string()
        });
        GrpcNetwork {
            node_id: self.node_id,
            shard: self.shard.clone(),
            target,
            node: node.clone(),
            client: client.map(|channel| {
                RaftTransportClient::new(channel)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            }),
        }
    }
}

/// One shard's Raft client to one peer (made by [`GrpcNetworkFactory`]).
pub struct GrpcNetwork {
    node_id: NodeId,
    shard: String,
    target: NodeId,
    node: BasicNode,
    /// `Err` if the peer's address is not a valid URI (reported as
    /// unreachable on every RPC, so openraft backs off).
    client: Result<RaftTransportClient<Channel>, String>,
}

impl Debug for GrpcNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcNetwork")
            .field("shard", &self.shard)
            .field("target", &self.target)
            .field("addr", &self.node.addr)
            .finish_non_exhaustive()
    }
}

/// A plain error message as a `std::error::Error`, for openraft's error
/// constructors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl GrpcNetwork {
    /// Sends one RPC of `kind` with the encoded `payload` and decodes the
    /// peer's `Result<Resp, RaftError<E>>`.
    async fn call<Resp, E>(
        &mut self,
        kind: RPCTypes,
        payload: Vec<u8>,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let mut client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => {
                return Err(RPCError::Unreachable(Unreachable::new(&TransportError(
                    format!("invalid address {:?}: {e}", self.node.addr),
                ))));
            }
        };
        let ttl = option.hard_ttl();
        let mut request = Request::new(RaftMessage {
            shard: self.shard.clone(),
            payload,
        });
        request.set_timeout(ttl);
        let send = async {
            match kind {
                RPCTypes::AppendEntries => client.append_entries(request).await,
                RPCTypes::Vote => client.vote(request).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(ttl, send).await {
            Err(_elapsed) => {
                return Err(RPCError::Timeout(Timeout {
                    action: kind,
                    id: self.node_id,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Ok(Err(status)) => return Err(self.status_error(kind, status, ttl)),
            Ok(Ok(reply)) => reply.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> = postcard::from_bytes(&reply.payload)
            .map_err(|e| {
                RPCError::Network(NetworkError::new(&TransportError(format!(
                    "undecodable {kind} reply from node {}: {e}",
                    self.target
                ))))
            })?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }

    /// Maps a gRPC failure: no connection → unreachable, deadline → timeout,
    /// anything else (including a peer not hosting the shard) → network.
    fn status_error<E: std::error::Error>(
        &self,
        kind: RPCTypes,
        status: Status,
        ttl: Duration,
    ) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
        let err = TransportError(format!(
            "{kind} to node {} at {}: {}: {}",
            self.target,
            self.node.addr,
            status.code(),
            status.message()
        ));
        match status.code() {
            tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&err)),
            tonic::Code::DeadlineExceeded => RPCError::Timeout(Timeout {
                action: kind,
                id: self.node_id,
                target: self.target,
                timeout: ttl,
            }),
            _ => RPCError::Network(NetworkError::new(&err)),
        }
    }
}

/// Postcard-encodes a request; failure is a local bug, reported as a network
/// error rather than a panic.
fn encode_request<T: Serialize>(kind: RPCTypes, request: &T) -> Result<Vec<u8>, NetworkError> {
    postcard::to_stdvec(request)
        .map_err(|e| NetworkError::new(&TransportError(format!("encoding {kind} request: {e}"))))
}

impl RaftNetwork<TypeConfig> for GrpcNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let entries = rpc.entries.len();
        let payload = encode_request(RPCTypes::AppendEntries, &rpc).map_err(RPCError::Network)?;
        if payload.len() > MAX_RAFT_MESSAGE_BYTES {
            if entries > 1 {
                // openraft re-sends with at most this many entries.
                return Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint((entries / 2) as u64),
                ));
            }
            return Err(RPCError::Network(NetworkError::new(&TransportError(
                format!(
                    "one log entry of {} bytes exceeds the {MAX_RAFT_MESSAGE_BYTES}-byte message limit",
                    payload.len()
                ),
            ))));
        }
        self.call(RPCTypes::AppendEntries, payload, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let payload = encode_request(RPCTypes::InstallSnapshot, &rpc).map_err(RPCError::Network)?;
        self.call(RPCTypes::InstallSnapshot, payload, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        let payload = encode_request(RPCTypes::Vote, &rpc).map_err(RPCError::Network)?;
        self.call(RPCTypes::Vote, payload, &option).await
    }
}

/// The server side of `cairn.v1.RaftTransport`: routes each message to the
/// Raft of its shard.
///
/// Cheap to clone (shared registry). A message for a shard not registered is
/// answered `NOT_FOUND`; an undecodable payload `INVALID_ARGUMENT`. Requests
/// and replies are bounded by [`MAX_RAFT_MESSAGE_BYTES`] when served through
/// [`into_server`](Self::into_server).
#[derive(Clone, Default)]
pub struct RaftTransportService {
    rafts: Arc<RwLock<HashMap<String, Raft<TypeConfig>>>>,
}

impl Debug for RaftTransportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shards: Vec<String> = self
            .rafts
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("RaftTransportService")
            .field("shards", &shards)
            .finish()
    }
}

impl RaftTransportService {
    /// A service with no shards.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `shard`'s messages to `raft` from now on; returns the handle it
    /// replaces, if any.
    pub fn register(
        &self,
        shard: impl Into<String>,
        raft: Raft<TypeConfig>,
    ) -> Option<Raft<TypeConfig>> {
        self.rafts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(shard.into(), raft)
    }

    /// Stops routing `shard`'s messages (they get `NOT_FOUND`); returns the
    /// handle, if any.
    pub fn unregister(&self, shard: &str) -> Option<Raft<TypeConfig>> {
        self.rafts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(shard)
    }

    /// The tonic service, with message sizes bounded by [`MAX_RAFT_MESSAGE_BYTES`].
    pub fn into_server(self) -> RaftTransportServer<Self> {
        RaftTransportServer::new(self)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
    }

    /// The Raft of the message's shard and the decoded request.
    fn route<T: DeserializeOwned>(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<(Raft<TypeConfig>, T), Status> {
        let message = request.into_inner();
        let raft = self
            .rafts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&message.shard)
            .cloned()
            .ok_or_else(|| {
                Status::not_found(format!(
                    "no raft group for shard {:?} on this node",
                    message.shard
                ))
            })?;
        let rpc = postcard::from_bytes(&message.payload)
            .map_err(|e| Status::invalid_argument(format!("undecodable raft request: {e}")))?;
        Ok((raft, rpc))
    }
}

/// Encodes a Raft reply.
fn reply<T: Serialize>(result: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = postcard::to_stdvec(result)
        .map_err(|e| Status::internal(format!("encoding raft reply: {e}")))?;
    Ok(Response::new(RaftMessage {
        shard: String::new(),
        payload,
    }))
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (raft, rpc): (_, AppendEntriesRequest<TypeConfig>) = self.route(request)?;
        reply(&raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let (raft, rpc): (_, VoteRequest<NodeId>) = self.route(request)?;
        reply(&raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let (raft, rpc): (_, InstallSnapshotRequest<TypeConfig>) = self.route(request)?;
        reply(&raft.install_snapshot(rpc).await)
    }
}
