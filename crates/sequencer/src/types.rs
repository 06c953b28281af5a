//! The Raft type configuration and the replicated commands of one shard.
//!
//! This is the contract between the Raft storage (log store, state machine)
//! and the sequencing pipeline (batcher, integrator, signer, gRPC service).
//! Everything a node may sign is derived from state applied from these
//! commands, so their meaning must never change once a shard has used them:
//! add new variants instead.

use cairn_tlog::Hash;
use serde::{Deserialize, Serialize};

/// Raft node id within a shard's group.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// openraft type configuration for a shard.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// Size in bytes of a Sigsum tree leaf.
pub const LEAF_SIZE: usize = 128;

/// A command replicated through a shard's Raft log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Sequence a batch of leaves. `leaves` is the concatenation of 128-byte
    /// Sigsum leaves (signatures already verified). Leaves whose leaf hash is
    /// already sequenced, or repeated within the batch, are not added again.
    Append {
        /// Concatenated leaves; length is a multiple of [`LEAF_SIZE`].
        leaves: Vec<u8>,
    },
    /// The leader wrote every tile and entry bundle of the tree of `size`
    /// leaves, and the tiles hash to `root`. Applied only if `size` is a size
    /// the tree had after an `Append` (a batch boundary), `root` equals the
    /// root the state machine computed for that size, and `size` is not below
    /// the integrated size already recorded; otherwise rejected.
    Integrated {
        /// Tree size now fully present in object storage.
        size: u64,
        /// Root hash of that tree, as computed from the tiles.
        root: Hash,
    },
    /// Publish a cosigned tree head. Applied only if `head.size` is integrated,
    /// `head.root` is the root at that size, and `head.size` is not below the
    /// published size; otherwise rejected.
    Cosigned {
        /// The tree head with the witness cosignatures that met the quorum.
        head: CosignedHead,
    },
    /// Freeze the log at its current tree size: from this entry on, every
    /// `Append` that would add a leaf is refused (`CommandResponse::Frozen`);
    /// integration, signing and publication of the leaves already sequenced
    /// go on. Applied once; a later `Freeze` changes nothing (the first
    /// successor stays).
    Freeze {
        /// The shard that takes new submissions instead, for the error
        /// that refused submitters see; empty if none is named.
        successor: String,
    },
    /// Change the cluster registry. Only the meta group
    /// ([`crate::registry::META_GROUP`]) carries these; they never touch
    /// the tree.
    Registry(crate::registry::RegistryChange),
}

/// What applying a [`Command`] produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// For `Append`: the index of every leaf of the batch, in batch order
    /// (a duplicate gets the index it already had).
    Appended {
        /// Leaf indices, one per leaf of the command.
        indices: Vec<u64>,
    },
    /// The command was applied.
    Applied,
    /// The command was not applied; the reason is for logs and errors only.
    Rejected {
        /// Why (human-readable).
        reason: String,
    },
    /// For `Append` on a frozen log: nothing was added (not even the
    /// leaves already in the tree are answered; look them up instead).
    Frozen(Frozen),
    /// Membership and blank entries, which carry no command.
    None,
}

/// A frozen log: no leaf is added after `size`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    /// The tree size when the log froze: its final size.
    pub size: u64,
    /// The shard named to take new submissions; empty if none.
    pub successor: String,
}

// Written out (not derived) so the default is visible next to the contract.
#[allow(clippy::derivable_impls)]
impl Default for CommandResponse {
    fn default() -> Self {
        CommandResponse::None
    }
}

/// One witness cosignature on a tree head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCosignature {
    /// SHA-256 of the witness's Ed25519 public key.
    pub key_hash: Hash,
    /// Cosignature timestamp (POSIX seconds).
    pub timestamp: u64,
    /// Ed25519 signature over the `cosignature/v1` message.
    pub signature: Vec<u8>,
    /// The witness's signed-note key name (for the checkpoint object).
    pub note_name: String,
}

/// A tree head signed by the log and cosigned by witnesses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignedHead {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// The log's Ed25519 signature over the checkpoint body.
    pub signature: Vec<u8>,
    /// Witness cosignatures, at most one per witness key hash.
    pub cosignatures: Vec<StoredCosignature>,
}

/// A consistent snapshot of a shard's applied state, published by the state
/// machine after every apply (see `StateMachine::subscribe`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardState {
    /// Raft log id of the last applied entry.
    pub last_applied: Option<openraft::LogId<NodeId>>,
    /// Number of sequenced leaves (committed and applied).
    pub tree_size: u64,
    /// Root of the tree of `tree_size` leaves.
    pub tree_root: Hash,
    /// Largest size whose tiles are all in object storage, and its root.
    /// Only these sizes may be signed.
    pub integrated_size: u64,
    /// Root at `integrated_size`.
    pub integrated_root: Hash,
    /// Latest published cosigned tree head.
    pub cosigned: Option<CosignedHead>,
    /// Set once the log is frozen ([`Command::Freeze`]).
    pub frozen: Option<Frozen>,
    /// The cluster registry; empty except in the meta group.
    pub registry: std::sync::Arc<crate::registry::Registry>,
}
