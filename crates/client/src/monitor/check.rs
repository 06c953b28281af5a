//! The pure core of a monitor pass: judging a tree head against the policy
//! and the verified checkpoint, and hashing served leaves into the
//! checkpoint's compact range. No IO and no clock; times come in as
//! arguments.

use std::collections::{HashMap, HashSet};

use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::policy::{Policy, Quorum};
use cairn_sigsum::tree_head::{CosignedTreeHead, TreeHead};
use cairn_sigsum::{KeyHash, PublicKey};
use cairn_tlog::compact::CompactRange;

use super::event::{Alert, LeafMatch};

/// What the cosignatures on a head amount to under a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CosignatureReview {
    /// Names of policy witnesses whose cosignature verifies, in head order.
    pub cosigned_by: Vec<String>,
    /// Names of policy witnesses whose cosignature does not verify (counted
    /// as absent, as sigsum-go does).
    pub invalid: Vec<String>,
    /// Whether the verified witnesses satisfy the quorum.
    pub quorum: bool,
    /// The newest time at which a quorum vouched for the head: the largest
    /// `T` such that the witnesses with cosignature timestamps `≥ T` satisfy
    /// the quorum. `None` without quorum, and for `quorum none`, where no
    /// cosignature carries time.
    pub quorum_time: Option<u64>,
}

/// Verifies the policy witnesses' cosignatures on `head` of the log with
/// key `log_key`; cosignatures of other witnesses are ignored.
pub(crate) fn review_cosignatures(
    policy: &Policy,
    log_key: &PublicKey,
    head: &CosignedTreeHead,
) -> CosignatureReview {
    let log_hash = log_key.key_hash();
    let mut valid: Vec<(KeyHash, u64)> = Vec::new();
    let mut cosigned_by = Vec::new();
    let mut invalid = Vec::new();
    for c in head.cosignatures() {
        let Some(w) = policy.witness_by_key_hash(&c.key_hash) else {
            continue;
        };
        if c.verify(w.key(), head.tree_head(), &log_hash) {
            valid.push((c.key_hash, c.timestamp));
            cosigned_by.push(w.name().to_string());
        } else {
            invalid.push(w.name().to_string());
        }
    }
    let all: HashSet<KeyHash> = valid.iter().map(|(k, _)| *k).collect();
    CosignatureReview {
        cosigned_by,
        invalid,
        quorum: policy.quorum_satisfied(&all),
        quorum_time: quorum_time(policy, valid),
    }
}

/// See [`CosignatureReview::quorum_time`]. Adding witnesses newest first,
/// the timestamp of the one that completes the quorum is that time (the
/// quorum is monotone in the set of witnesses).
fn quorum_time(policy: &Policy, mut valid: Vec<(KeyHash, u64)>) -> Option<u64> {
    if policy.quorum() == Quorum::None {
        return None;
    }
    valid.sort_by_key(|&(_, t)| std::cmp::Reverse(t));
    let mut set = HashSet::new();
    for (key_hash, timestamp) in valid {
        set.insert(key_hash);
        if policy.quorum_satisfied(&set) {
            return Some(timestamp);
        }
    }
    None
}

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
    use cairn_sigsum::tree_head::Cosignature;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32])
    }

    fn head_with(log: &SigningKey, witnesses: &[(&SigningKey, u64)]) -> CosignedTreeHead {
        let th = TreeHead {
            size: 3,
            root_hash: [9; 32],
        };
        let log_hash = log.public_key().key_hash();
        let cosignatures = witnesses
            .iter()
            .map(|(w, t)| Cosignature::sign(w, &th, &log_hash, *t).unwrap())
            .collect();
        CosignedTreeHead::new(th.sign(log), cosignatures).unwrap()
    }

    fn policy(log: &SigningKey, quorum: &str) -> Policy {
        let text = format!(
            "log {}\nwitness A {}\nwitness B {}\nwitness C {}\ngroup G 2 A B C\nquorum {quorum}\n",
            log.public_key(),
            key(1).public_key(),
            key(2).public_key(),
            key(3).public_key()
        );
        Policy::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn quorum_time_is_the_oldest_timestamp_among_the_newest_quorum() {
        let log = key(0x4c);
        let (a, b, c) = (key(1), key(2), key(3));
        let head = head_with(&log, &[(&a, 100), (&b, 300), (&c, 200)]);
        let r = review_cosignatures(&policy(&log, "G"), &log.public_key(), &head);
        assert!(r.quorum);
        assert_eq!(r.cosigned_by, ["A", "B", "C"]);
        // B (300) and C (200) are the newest two-of-three.
        assert_eq!(r.quorum_time, Some(200));
    }

    #[test]
    fn an_invalid_cosignature_counts_as_absent_and_is_named() {
        let log = key(0x4c);
        let (a, b) = (key(1), key(2));
        let mut head = head_with(&log, &[(&a, 100)]);
        let forged = Cosignature {
            signature: cairn_sigsum::Signature([0; 64]),
            ..Cosignature::sign(&b, head.tree_head(), &log.public_key().key_hash(), 500).unwrap()
        };
        head.add_cosignature(forged).unwrap();
        let r = review_cosignatures(&policy(&log, "G"), &log.public_key(), &head);
        assert!(!r.quorum);
        assert_eq!(r.quorum_time, None);
        assert_eq!(r.invalid, ["B"]);
    }

    #[test]
    fn quorum_none_is_satisfied_without_a_time() {
        let log = key(0x4c);
        let head = head_with(&log, &[]);
        let r = review_cosignatures(&policy(&log, "none"), &log.public_key(), &head);
        assert!(r.quorum);
        assert_eq!(r.quorum_time, None);
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
