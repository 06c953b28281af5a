//! The cosignature collector of one shard (architecture.md §2 step 5,
//! docs/decisions/0002-dev-slice.md): polls the sequencer's signed tree
//! head, obtains C2SP tlog-witness cosignatures from the Sigsum policy's
//! witnesses, and publishes the head through the sequencer once the policy
//! quorum holds (fail-closed by default).
//!
//! * [`config`] — [`CollectorConfig`] and its defaults.
//! * [`client`] — [`WitnessClient`]: `add-checkpoint` over HTTP(S).
//! * [`collector`] — [`Collector`]: the poll/cosign/publish loop.
//! * [`metrics`] — [`CollectorMetrics`]: counters for the server to export.
//!
//! State: none on disk. Each witness's latest cosigned size is kept in
//! memory and relearned after a restart from the witness's 409 answer.

pub mod client;
pub mod collector;
pub mod config;
pub mod metrics;

pub use client::{WitnessClient, WitnessError, add_checkpoint_url};
pub use collector::{Collector, CollectorError};
pub use config::{
    CollectorConfig, DEFAULT_EXTRA_WAIT, DEFAULT_POLL_INTERVAL, DEFAULT_RECOSIGN_INTERVAL,
    DEFAULT_WITNESS_TIMEOUT,
};
pub use metrics::{CollectorMetrics, MetricsSnapshot};
