//! A C2SP tlog-witness (<https://c2sp.org/tlog-witness>, sigsum-protocol.md
//! §5 and §8): cosigns a log's checkpoint with an Ed25519 `cosignature/v1`
//! only if it is consistent with the last checkpoint it cosigned for that
//! log, and remembers that checkpoint durably before answering.
//!
//! * [`config`] — [`WitnessConfig`], the allow-list of [`KnownLog`]s, [`Clock`].
//! * [`request`] — the `add-checkpoint` body: parse (witness) and encode (client).
//! * [`state`] — [`WitnessState`]: one fsync'd file per origin, per-origin locks.
//! * [`witness`] — [`Witness::add_checkpoint`]: the checks, in spec order.
//! * [`http`] — [`router`]: `POST /add-checkpoint` for axum.
//! * [`file_config`] — [`WitnessSettings`]: the TOML file of a standalone
//!   witness (`cairnd witness --config FILE`), checked.
//!
//! Formats (notes, checkpoints, proofs, cosignatures) come from `cairn-tlog`;
//! this crate adds IO, state and the protocol's status codes.

pub mod config;
pub mod file_config;
pub mod http;
pub mod request;
pub mod state;
pub mod witness;

pub use config::{Clock, KnownLog, SystemClock, WitnessConfig};
pub use file_config::{FileConfigError, WitnessFileConfig, WitnessSettings};
pub use http::{HttpLimits, router, router_with_limits};
pub use request::AddCheckpointRequest;
pub use state::{CosignedState, WitnessState};
pub use witness::{AddCheckpointError, SetupError, Witness};
