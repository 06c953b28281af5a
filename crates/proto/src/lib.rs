//! Cairn's internal gRPC API (`proto/cairn/v1/*.proto`).
//!
//! * `sequencer` — frontend/collector → sequencer.
//! * `raft` — sequencer ↔ sequencer (Raft transport).
//! * `admin` — operator tools → sequencer (cluster membership, status).

#![allow(missing_docs, missing_debug_implementations, clippy::all)]

/// Package `cairn.v1`.
pub mod v1 {
    tonic::include_proto!("cairn.v1");
}

/// Metadata key naming the leader's sequencer URL when a follower refuses a
/// leader-only call.
pub const LEADER_METADATA_KEY: &str = "cairn-leader";
