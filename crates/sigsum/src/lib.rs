//! Sigsum v1 wire formats, byte-exact with sigsum-go (the interop baseline)
//! and log-go. The specifications are upstream: the log protocol
//! (<https://github.com/sigsum/sigsum/blob/main/log.md>), sigsum-go's
//! `doc/` for policies, proofs and tools, and the C2SP specs for checkpoints,
//! cosignatures and witnesses (<https://c2sp.org>). The summary these modules
//! implement, cited as `sigsum-protocol.md` §N, is the repository's
//! `docs/sigsum-protocol.md`.
//!
//! * [`crypto`] — key, key-hash and signature types; Ed25519 with Sigsum's
//!   namespaces.
//! * [`ascii`] — the strict `key=value` request/response codec.
//! * [`leaf`] — the 128-byte tree leaf and its signature.
//! * [`tree_head`] — signed tree heads, cosignatures and their lines.
//! * [`token`] — submit tokens and the `sigsum-token` header.
//! * [`api`] — the log API's request and response messages.
//! * [`key`] — key files: raw hex, OpenSSH public and private keys, vkeys.
//! * [`policy`] — the policy file and quorum evaluation.
//! * [`quorum`] — which policy witnesses validly cosigned a tree head, and
//!   whether (and since when) they satisfy the quorum.
//! * [`proof`] — the proof file (version 2; version 1 read) and offline
//!   verification against a policy.
//!
//! Pure: no IO, no clock, no randomness. Callers pass bytes, times and seeds.

pub mod api;
pub mod ascii;
pub mod crypto;
pub mod key;
pub mod leaf;
pub mod policy;
pub mod proof;
pub mod quorum;
pub mod token;
pub mod tree_head;

pub use crypto::{Hash, KeyHash, PublicKey, Signature, SigningKey, StrongKey, WeakKeyError};
