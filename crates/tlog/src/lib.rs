//! Transparency-log primitives shared by every Cairn role, and by anyone who
//! wants to read a Cairn log without Cairn's services.
//!
//! * [`hash`] — RFC 6962 §2.1 leaf and interior hashing.
//! * [`proof`] — inclusion and consistency proofs (RFC 9162 §2.1.3–2.1.4):
//!   generation from any source of node hashes, and verification.
//! * [`compact`] — the right edge of a tree: append leaves, get roots, in
//!   O(log n) memory.
//! * [`tile`] — C2SP tlog-tiles: paths, hash tiles, entry bundles, and which
//!   tiles a tree of a given size has.
//! * [`note`] — C2SP signed-note: parse, sign, verify, key IDs, vkeys.
//! * [`checkpoint`] — C2SP tlog-checkpoint bodies.
//! * [`cosignature`] — C2SP tlog-cosignature (`cosignature/v1`, Ed25519).
//!
//! This crate is pure: it performs no IO, spawns nothing and reads no clock.
//! Callers pass in bytes, times and keys, and get bytes and verdicts back.

pub mod checkpoint;
pub mod compact;
pub mod cosignature;
pub mod hash;
pub mod note;
pub mod proof;
pub mod tile;

pub use hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
