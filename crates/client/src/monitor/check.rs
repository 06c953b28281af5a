//! The pure core of a monitor pass: judging a tree head against the
//! verified checkpoint, and hashing served leaves into the checkpoint's
//! compact range. No IO and no clock. (Judging its cosignatures against the
//! policy is `Policy::review_cosignatures`, shared with proof verification
//! and the submitter.)

use std::collections::HashMap;

use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::tree_head::TreeHead;
use cairn_sigsum::{KeyHash, PublicKey};
use cairn_tlog::compact::CompactRange;

use super::event::{Alert, LeafMatch};

/// How a new signed head relates to the verified checkpoint, before any
/// proof is fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Growth {
    /// Same size and root.
    Unchanged,
    /// Larger: needs a consistency proof and the new leaves.
    Grew,
}

/// Rejects a head that shrank or that has the checkpoint's size but
/// another root.
pub(crate) fn compare_heads(old: &TreeHead, new: &TreeHead) -> Result<Growth, Alert> {
    if new.size < old.size {
        return Err(Alert::Shrink {
            old: *old,
            new: *new,
        });
    }
    if new.size == old.size {
        if new.root_hash != old.root_hash {
            return Err(Alert::SameSizeDifferentRoot {
                old: *old,
                new: *new,
            });
        }
        return Ok(Growth::Unchanged);
    }
    Ok(Growth::Grew)
}

/// The submitter keys whose leaves are reported. Empty means every leaf is
/// reported, unverified (as sigsum-monitor does without keys).
#[derive(Clone, Debug, Default)]
pub struct Watchlist {
    keys: HashMap<KeyHash, PublicKey>,
}

impl Watchlist {
    /// Watches `keys` (duplicates are harmless).
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        Watchlist {
            keys: keys.into_iter().map(|k| (k.key_hash(), k)).collect(),
        }
    }

    /// Whether no key is watched (every leaf is then reported).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// What leaf `index` means to the watcher: nothing, a match, or an
    /// alert for a watched key's leaf whose signature does not verify.
    pub(crate) fn check(&self, index: u64, leaf: &Leaf) -> Option<Result<LeafMatch, Alert>> {
        let matched = |signature_verified| LeafMatch {
            index,
            key_hash: leaf.key_hash,
            checksum: leaf.checksum,
            signature_verified,
        };
        if self.keys.is_empty() {
            return Some(Ok(matched(false)));
        }
        let key = self.keys.get(&leaf.key_hash)?;
        Some(match leaf.verify(key) {
            Ok(()) => Ok(matched(true)),
            Err(_) => Err(Alert::InvalidLeafSignature {
                index,
                key_hash: leaf.key_hash,
                checksum: leaf.checksum,
            }),
        })
    }
}

/// Hashes leaves into a copy of the checkpoint's compact range; the result
/// replaces the checkpoint's range only once its root equals a signed root.
#[derive(Clone, Debug)]
pub(crate) struct LeafHasher {
    range: CompactRange,
}

impl LeafHasher {
    pub(crate) fn new(range: CompactRange) -> Self {
        LeafHasher { range }
    }

    /// The index the next leaf must have.
    pub(crate) fn next_index(&self) -> u64 {
        self.range.size()
    }

    /// Appends the next leaf. A tree of `u64::MAX` leaves cannot be signed
    /// (sizes are at most 2^63−1), so the append cannot fail.
    pub(crate) fn push(&mut self, leaf: &Leaf) {
        let _ = self.range.append(leaf.leaf_hash());
    }

    /// The range, if the leaves so far hash to `head`'s root (and cover
    /// exactly `head`'s size).
    pub(crate) fn finish(self, head: &TreeHead) -> Result<CompactRange, Alert> {
        let computed = self.range.root();
        if self.range.size() == head.size && computed == head.root_hash {
            Ok(self.range)
        } else {
            Err(Alert::RootMismatch {
                head: *head,
                computed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::SigningKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32])
    }

    #[test]
    fn shrinking_and_same_size_forks_are_alerts_growth_is_not() {
        let old = TreeHead {
            size: 5,
            root_hash: [1; 32],
        };
        let fork = TreeHead {
            root_hash: [2; 32],
            ..old
        };
        let smaller = TreeHead { size: 4, ..old };
        let larger = TreeHead { size: 6, ..fork };
        assert_eq!(compare_heads(&old, &old), Ok(Growth::Unchanged));
        assert_eq!(compare_heads(&old, &larger), Ok(Growth::Grew));
        assert!(matches!(
            compare_heads(&old, &fork),
            Err(Alert::SameSizeDifferentRoot { .. })
        ));
        assert!(matches!(
            compare_heads(&old, &smaller),
            Err(Alert::Shrink { .. })
        ));
    }

    #[test]
    fn watched_leaves_are_verified_others_ignored_and_no_keys_means_all() {
        let watched = key(7);
        let other = key(8);
        let good = Leaf::sign(&watched, &[1; 32]);
        let bad = Leaf {
            signature: cairn_sigsum::Signature([3; 64]),
            ..good
        };
        let list = Watchlist::new([watched.public_key()]);
        assert!(matches!(
            list.check(0, &good),
            Some(Ok(LeafMatch {
                signature_verified: true,
                ..
            }))
        ));
        assert!(matches!(
            list.check(1, &bad),
            Some(Err(Alert::InvalidLeafSignature { index: 1, .. }))
        ));
        assert_eq!(list.check(2, &Leaf::sign(&other, &[1; 32])), None);
        assert!(matches!(
            Watchlist::default().check(3, &bad),
            Some(Ok(LeafMatch {
                signature_verified: false,
                ..
            }))
        ));
    }

    #[test]
    fn leaves_must_hash_to_the_signed_root_and_size() {
        let k = key(7);
        let leaves: Vec<Leaf> = (0..5).map(|i| Leaf::sign(&k, &[i; 32])).collect();
        let mut full = CompactRange::new();
        for l in &leaves {
            full.append(l.leaf_hash()).unwrap();
        }
        let head = TreeHead {
            size: 5,
            root_hash: full.root(),
        };
        // Continue from a persisted range of the first two leaves.
        let mut prefix = CompactRange::new();
        for l in &leaves[..2] {
            prefix.append(l.leaf_hash()).unwrap();
        }
        let mut h = LeafHasher::new(prefix.clone());
        for l in &leaves[2..] {
            h.push(l);
        }
        assert_eq!(h.finish(&head), Ok(full));

        let mut tampered = LeafHasher::new(prefix);
        tampered.push(&leaves[3]);
        tampered.push(&leaves[2]);
        tampered.push(&leaves[4]);
        assert!(matches!(
            tampered.finish(&head),
            Err(Alert::RootMismatch { .. })
        ));
    }
}
