//! Cairn's internal gRPC API (`proto/cairn/v1/*.proto`).
//!
//! * `sequencer` — frontend/collector → sequencer.
//! * `raft` — sequencer ↔ sequencer (Raft transport).
//! * `admin` — operator tools → sequencer (cluster membership, status).
//! * [`SequencerPool`] — a sequencer client that follows the Raft leader.

pub mod pool;

pub use pool::{PoolError, PoolOptions, SequencerPool};

/// Package `cairn.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("cairn.v1");
}

/// Metadata key naming the leader's sequencer URL when a follower refuses a
/// leader-only call.
pub const LEADER_METADATA_KEY: &str = "cairn-leader";

/// Metadata key present (value `1`) on every refusal of a leader-only call
/// by a node that is not the leader, with or without
/// [`LEADER_METADATA_KEY`]: it tells "not the leader, leader unknown (an
/// election is on)" apart from a real `FAILED_PRECONDITION` rejection.
pub const NOT_LEADER_METADATA_KEY: &str = "cairn-not-leader";
