//! What a monitor pass reports: [`Event`]s, one line of text each.

use std::fmt;

use cairn_sigsum::tree_head::TreeHead;
use cairn_sigsum::{Hash, KeyHash};
use cairn_tlog::proof::ProofError;

/// Something one pass observed about one log.
///
/// The severity is the variant: an [`Alert`] is evidence that the log (or
/// its witnesses) misbehaved, a [`Warning`] a condition that may become one
/// (a liveness attack hides leaves by withholding fresh heads), a
/// [`LeafMatch`] the monitor's product, and [`Progress`] diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Log misbehaviour; the checkpoint is not advanced past it.
    Alert(Alert),
    /// Freshness or availability trouble.
    Warning(Warning),
    /// A leaf by a watched key (or any leaf, without a watch list).
    Leaf(LeafMatch),
    /// What the pass did.
    Progress(Progress),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Alert(a) => a.fmt(f),
            Event::Warning(w) => w.fmt(f),
            Event::Leaf(l) => l.fmt(f),
            Event::Progress(p) => p.fmt(f),
        }
    }
}

/// Evidence of log misbehaviour. Each carries the signed data that proves
/// it, so the message can be handed to the log's operator or the public.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Alert {
    /// The log's signature on its tree head does not verify.
    #[error("tree head {} has an invalid log signature", Head(.head))]
    BadLogSignature {
        /// The head as served.
        head: TreeHead,
    },
    /// A signed head smaller than one verified before: the log dropped
    /// leaves (or forked).
    #[error("tree shrank: verified {} earlier, now signed {}", Head(.old), Head(.new))]
    Shrink {
        /// The verified checkpoint.
        old: TreeHead,
        /// The new signed head.
        new: TreeHead,
    },
    /// Two signed heads of one size with different roots: a fork.
    #[error("fork: verified {} earlier, now signed {}", Head(.old), Head(.new))]
    SameSizeDifferentRoot {
        /// The verified checkpoint.
        old: TreeHead,
        /// The new signed head.
        new: TreeHead,
    },
    /// The log's consistency proof between the verified checkpoint and a
    /// larger signed head does not verify: a fork (split view).
    #[error("fork: signed {} is not consistent with {} verified earlier: {error}", Head(.new), Head(.old))]
    Inconsistent {
        /// The verified checkpoint.
        old: TreeHead,
        /// The new signed head.
        new: TreeHead,
        /// Why the proof failed.
        error: ProofError,
    },
    /// The leaves the log served do not hash to the root it signed.
    #[error("leaves served for {} hash to root {}, not to the signed root", Head(.head), hex::encode(.computed))]
    RootMismatch {
        /// The signed head.
        head: TreeHead,
        /// The root of the served leaves.
        computed: Hash,
    },
    /// A leaf names a watched key but its signature does not verify: the
    /// log accepted a leaf it must have rejected.
    #[error("leaf {index} names watched key {key_hash} but its signature is invalid (checksum {})", hex::encode(.checksum))]
    InvalidLeafSignature {
        /// The leaf's index.
        index: u64,
        /// The watched key's hash.
        key_hash: KeyHash,
        /// The leaf's checksum.
        checksum: Hash,
    },
}

/// A condition that is not proof of misbehaviour but must not persist.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// The newest head's valid policy cosignatures do not satisfy the
    /// quorum; it is not adopted as the checkpoint.
    #[error("tree head {} does not satisfy the policy quorum (cosigned by: {}; invalid cosignatures from: {})", Head(.head), names(.cosigned_by), names(.invalid))]
    NoQuorum {
        /// The head as served.
        head: TreeHead,
        /// Policy witnesses whose cosignature verifies.
        cosigned_by: Vec<String>,
        /// Policy witnesses whose cosignature does not verify.
        invalid: Vec<String>,
    },
    /// The newest quorum-satisfying head is older than the limit: the log or
    /// its witnesses are not making progress, or the log withholds heads.
    #[error(
        "newest quorum of cosignatures is {age} s old (limit {max_age} s), on tree size {size}"
    )]
    Stale {
        /// The head's size.
        size: u64,
        /// How old the quorum's newest complete set of cosignatures is.
        age: u64,
        /// The configured limit.
        max_age: u64,
    },
    /// No pass has completed for longer than the limit.
    #[error("unreachable for {secs} s (limit {max_age} s): {error}")]
    Unreachable {
        /// Seconds since the last complete pass (or since monitoring
        /// started, if none ever completed).
        secs: u64,
        /// The configured limit.
        max_age: u64,
        /// The latest failure.
        error: String,
    },
}

/// A leaf the monitor reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafMatch {
    /// The leaf's index in the log.
    pub index: u64,
    /// The submitter key hash.
    pub key_hash: KeyHash,
    /// The leaf checksum, `SHA-256(message)`.
    pub checksum: Hash,
    /// Whether the signature was verified: true for watched keys, false
    /// when no watch list is configured and every leaf is reported.
    pub signature_verified: bool,
}

impl fmt::Display for LeafMatch {
    /// `<index> <keyhash> <checksum>`, hex lowercase.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.index,
            self.key_hash,
            hex::encode(self.checksum)
        )
    }
}

/// Diagnostics of a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A new head was fetched and its log signature verified.
    TreeHead {
        /// Its size.
        size: u64,
        /// Policy witnesses whose cosignature verifies.
        cosigned_by: Vec<String>,
        /// Policy witnesses whose cosignature does not verify (ignored, as
        /// sigsum-go does; a [`Warning::NoQuorum`] names them too).
        invalid: Vec<String>,
        /// Whether the valid ones satisfy the quorum.
        quorum: bool,
    },
    /// The log's tree grew under a quorum-cosigned head consistent with
    /// the checkpoint; its new leaves are fetched next.
    Grew {
        /// The checkpoint's size.
        from: u64,
        /// The new head's size.
        to: u64,
    },
    /// Leaves up to `next` (exclusive) of `target` were fetched and hashed;
    /// the [`Event::Leaf`]s reported among them precede this event.
    Leaves {
        /// The next leaf index to fetch.
        next: u64,
        /// The size being verified.
        target: u64,
    },
    /// The head of this size is verified and persisted as the checkpoint.
    Verified {
        /// Its size.
        size: u64,
    },
    /// A request failed; the pass stops and the next one retries.
    Failed {
        /// What failed.
        error: String,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::TreeHead {
                size,
                cosigned_by,
                invalid,
                quorum,
            } => write!(
                f,
                "tree size {size}, cosigned by: {}; invalid cosignatures from: {}; quorum {}",
                names(cosigned_by),
                names(invalid),
                if *quorum {
                    "satisfied"
                } else {
                    "not satisfied"
                }
            ),
            Progress::Grew { from, to } => write!(f, "tree grew from size {from} to {to}"),
            Progress::Leaves { next, target } => write!(f, "leaves {next}/{target} verified"),
            Progress::Verified { size } => write!(f, "tree size {size} verified"),
            Progress::Failed { error } => write!(f, "pass failed, will retry: {error}"),
        }
    }
}

/// A tree head for messages: `size N root <hex>`.
struct Head<'a>(&'a TreeHead);

impl fmt::Display for Head<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(size {} root {})",
            self.0.size,
            hex::encode(self.0.root_hash)
        )
    }
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}
