//! Cairn's internal gRPC API (`proto/cairn/v1/*.proto`).
//!
//! * `sequencer` — frontend/collector → sequencer.
//! * `raft` — sequencer ↔ sequencer (Raft transport).
//! * `admin` — operator tools → sequencer (cluster membership, status).
//! * [`SequencerPool`] — a sequencer client that follows the Raft leader.
//! * [`trace`] — trace context across the gRPC calls.

pub mod pool;
pub mod trace;

pub use pool::{Client, PoolError, PoolOptions, SequencerPool};

/// Package `cairn.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("cairn.v1");
}

/// The standard gRPC health service (`grpc.health.v1.Health`) name of a
/// sequencer node as a whole: `SERVING` when every shard it hosts is
/// ready.
pub const SEQUENCER_HEALTH_SERVICE: &str = "cairn.v1.Sequencer";

/// The health service name that is `SERVING` on the node that leads
/// `shard` and takes leaves, `NOT_SERVING` on its other replicas.
pub fn shard_leader_health_service(shard: &str) -> String {
    format!("{SEQUENCER_HEALTH_SERVICE}/{shard}")
}

/// Metadata key naming the leader's sequencer URL when a follower refuses a
/// leader-only call.
pub const LEADER_METADATA_KEY: &str = "cairn-leader";

/// Metadata key present (value `1`) on every refusal of a leader-only call
/// by a node that is not the leader, with or without
/// [`LEADER_METADATA_KEY`]: it tells "not the leader, leader unknown (an
/// election is on)" apart from a real `FAILED_PRECONDITION` rejection.
pub const NOT_LEADER_METADATA_KEY: &str = "cairn-not-leader";
