//! Cairn's sequencer: one openraft group per shard.
//!
//! * [`types`] — the Raft type configuration and replicated commands.
//! * [`log_store`] — the Raft log on RocksDB.
//! * [`state_machine`] — applied state on RocksDB: leaves not yet in full
//!   entry bundles, leaf-hash index, tree size and roots, integrated and
//!   published tree heads; file-backed, streamed snapshots.
//! * [`snapshot`] — the snapshot file format.
//! * [`network`] — Raft transport over tonic (one service for every shard).
//! * [`raft`] — a shard's Raft: default config, start, single-node
//!   initialization, proposals and leader hints.
//! * [`batcher`] — the leader's pool: many submissions, one Raft entry.
//! * [`integrator`] — writes tiles for committed leaves, then commits
//!   `Integrated`.
//! * [`signer`] — the one place that signs tree heads, and only integrated
//!   sizes derived from committed state.
//! * [`record`] — the durable record of the largest head a node signed,
//!   kept outside its database, so a restored old database cannot sign a
//!   second history.
//! * [`shard`] — one shard's Raft, state and pipeline tasks.
//! * [`metrics`] — what a shard's pipeline measures: latencies from
//!   submission to commit and from commit to each later step, the merge
//!   delay, leader changes.
//! * [`service`] — the `cairn.v1.Sequencer` gRPC service.
//! * [`health`] — the standard gRPC health service: liveness, the node's
//!   readiness, and which node leads each shard.
//! * [`admin`] — the `cairn.v1.Admin` gRPC service: create a shard's group,
//!   change its membership, report each node's view.

pub mod admin;
pub mod batcher;
pub mod gc;
pub mod health;
pub mod integrator;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod raft;
pub mod record;
pub mod registry;
pub mod service;
pub mod shard;
pub mod signer;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use log_store::{LockHolder, RaftLogStore, StoreError, open_shard_db};
pub use network::{GrpcNetworkFactory, RaftTransportService};
pub use raft::{
    DEFAULT_SNAPSHOT_LOGS, LeaderHint, RaftStartError, default_raft_config, initialize_single_node,
    start_raft,
};
pub use state_machine::StateMachine;
