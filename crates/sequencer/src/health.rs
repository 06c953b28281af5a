//! The standard gRPC health service (`grpc.health.v1.Health`) on a
//! sequencer node's gRPC listener, for load balancers, Kubernetes gRPC
//! probes and Cairn's own frontends. Statuses are computed from the
//! node's shards at each call, so they cannot go stale:
//!
//! | service | `SERVING` when |
//! |---|---|
//! | `""` | the node serves gRPC (liveness) |
//! | [`SERVICE`] (`cairn.v1.Sequencer`) | every shard here is ready ([`Shard::unready`]), as `/readyz` |
//! | `cairn.v1.Sequencer/<shard>` ([`shard_service`]) | this node leads `<shard>` and takes leaves ([`Shard::serving_as_leader`]); `NOT_SERVING` on its other replicas, `NOT_FOUND` where it is not hosted |
//!
//! `Watch` re-evaluates every [`WATCH_INTERVAL`] and sends a message when
//! the status changes (and once at the start); it ends when the node
//! shuts down.
//!
//! `cairn.v1.Sequencer/<shard>` is what Cairn's frontends ask; do not gate
//! Raft traffic between nodes on the node-wide status: a node is not ready
//! before its group has elected, which needs that traffic.

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::service::SequencerService;
use crate::shard::Shard;

pub use cairn_proto::{
    SEQUENCER_HEALTH_SERVICE as SERVICE, shard_leader_health_service as shard_service,
};

/// How often `Watch` re-evaluates a status.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Longest service name accepted (a prefix and a shard name, with room).
const MAX_SERVICE_LEN: usize = 256;

/// The health service of one node (see the module docs).
#[derive(Clone, Debug)]
pub struct HealthService {
    sequencer: SequencerService,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl HealthService {
    /// The health of the shards `sequencer` hosts (now and later). `Watch`
    /// streams end once `stop` is true (the node is shutting down).
    pub fn new(sequencer: SequencerService, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        HealthService { sequencer, stop }
    }

    /// The tonic server.
    pub fn into_server(self) -> HealthServer<Self> {
        HealthServer::new(self)
    }

    fn status(&self, service: &str) -> Result<ServingStatus, Status> {
        if service.len() > MAX_SERVICE_LEN {
            return Err(Status::invalid_argument("service name too long"));
        }
        let serving = |yes: bool| {
            if yes {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            }
        };
        if service.is_empty() {
            return Ok(ServingStatus::Serving);
        }
        if service == SERVICE {
            let all = self.sequencer.all();
            return Ok(serving(all.iter().all(|s| s.unready().is_none())));
        }
        let shard = service
            .strip_prefix(SERVICE)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|name| self.sequencer.shard(name));
        match shard {
            Some(shard) => Ok(serving(Shard::serving_as_leader(&shard))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let status = self.status(&request.into_inner().service)?;
        Ok(Response::new(HealthCheckResponse {
            status: status.into(),
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let service = request.into_inner().service;
        // An unknown service is refused at once; later it reads as
        // SERVICE_UNKNOWN (a shard moved away), as the protocol asks.
        self.status(&service)?;
        let stream = futures::stream::unfold(
            (self.clone(), service, None::<ServingStatus>),
            |(this, service, last)| async move {
                loop {
                    if last.is_some() {
                        tokio::time::sleep(WATCH_INTERVAL).await;
                    }
                    let now = this
                        .status(&service)
                        .unwrap_or(ServingStatus::ServiceUnknown);
                    if last != Some(now) {
                        let message = HealthCheckResponse { status: now.into() };
                        return Some((Ok(message), (this, service, Some(now))));
                    }
                }
            },
        );
        let mut stop = self.stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        Ok(Response::new(Box::pin(stream.take_until(stopped))))
    }
}
