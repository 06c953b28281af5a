//! A client for Sigsum v1 logs (`sigsum-protocol.md` §6), used by the `cairn`
//! CLI, the load generator and tests.
//!
//! * [`LogClient`] — one log's HTTP API: `add-leaf`, `get-tree-head`,
//!   `get-inclusion-proof`, `get-consistency-proof`, `get-leaves`. Every
//!   request has a timeout, every response a size limit, and every response
//!   body is parsed strictly by `cairn_sigsum`. Nothing is verified here:
//!   signatures, cosignatures and proofs are the caller's to check.
//! * [`Submitter`] — what `sigsum-submit` does: sign a message, POST
//!   `add-leaf` until the log answers 200, poll `get-tree-head` until a head
//!   signed by the log *and* satisfying the policy's witness quorum includes
//!   the leaf, fetch and verify the inclusion proof, and return a
//!   [`SigsumProof`](cairn_sigsum::proof::SigsumProof) that has been verified
//!   offline exactly as a verifier will. Logs are tried in policy order until
//!   one succeeds.
//! * [`token::TokenVerifier`] — what a log does with a `sigsum-token`
//!   header: look up the submitter's keys in DNS and check the token.
//! * [`Signer`] — where leaf and token signatures come from: a
//!   `SigningKey` in memory, or [`AgentSigner`], a key held by ssh-agent
//!   (`SSH_AUTH_SOCK`), as sigsum-go uses when given a public key file.
//! * [`monitor::Monitor`] — what `sigsum-monitor` does, and what it lacks:
//!   follow every log of a policy, verify each signed head's signature,
//!   witness quorum, freshness and consistency with the last verified head,
//!   hash every served leaf onto a persisted compact range and compare with
//!   the signed root, and report leaves of watched keys. Findings are typed
//!   [`monitor::Event`]s (alert, warning, leaf, progress); state survives
//!   restarts, so a fork across a restart is still detected.
//!
//! Errors: [`ClientError`] says what one request got (HTTP status and body,
//! transport failure, oversized or malformed response) and whether retrying
//! it may help ([`ClientError::is_retryable`]); [`SubmitError`] lists, per
//! log tried, why submission failed there.
//!
//! The wire formats, hashing, proofs and policy evaluation all come from
//! `cairn_sigsum` and `cairn_tlog`; this crate only moves bytes and decides
//! when to retry.

pub mod agent;
mod client;
mod error;
pub mod monitor;
mod signer;
mod submit;
pub mod token;

pub use agent::{AgentError, AgentSigner};

pub use client::{
    AddLeafStatus, ClientConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_USER_AGENT, LogClient, MAX_ERROR_BODY_BYTES, MAX_LEAVES_BYTES, MAX_PROOF_BYTES,
    MAX_TREE_HEAD_BYTES,
};
pub use error::{ClientError, MalformedResponse};
pub use signer::{SignError, Signer, sign_leaf};
pub use submit::{
    DEFAULT_CONCURRENCY, DEFAULT_MAX_BACKOFF, DEFAULT_PER_LOG_TIMEOUT, DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT, FailureReason, LogFailure, SetupError, Stage, SubmitConfig, SubmitError,
    Submitter, TokenConfig,
};
