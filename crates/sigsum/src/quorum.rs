//! Judging a cosigned tree head against a policy (`sigsum-protocol.md`
//! §11 semantics, §12 step 4): which policy witnesses validly cosigned it,
//! whether they satisfy the quorum, and since when.
//!
//! One function for every consumer — offline proof verification, the
//! submitter waiting for a cosigned head, the monitor — so that they cannot
//! disagree on what a valid cosignature is. As in sigsum-go, a cosignature
//! by a witness the policy does not list is ignored, and an invalid one by
//! a listed witness counts as absent (sigsum-rs would fail the whole head
//! instead); it is still reported, since it is worth a diagnostic.

use std::collections::HashSet;

use crate::crypto::KeyHash;
use crate::policy::{Policy, Quorum, Witness};
use crate::tree_head::CosignedTreeHead;

/// A policy witness's cosignature that verifies on the reviewed head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidCosignature<'p> {
    /// The witness, as the policy lists it.
    pub witness: &'p Witness,
    /// The time at which it vouched for the head (POSIX seconds).
    pub timestamp: u64,
}

/// What the cosignatures on one tree head amount to under a policy; made by
/// [`Policy::review_cosignatures`]. Pure data: nothing here does IO or
/// reads a clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignatureReview<'p> {
    policy: &'p Policy,
    /// Policy witnesses whose cosignature verifies, in the head's order.
    pub valid: Vec<ValidCosignature<'p>>,
    /// Policy witnesses whose cosignature does not verify, in the head's
    /// order. They count as absent.
    pub invalid: Vec<&'p Witness>,
}

impl Policy {
    /// Verifies the cosignatures on `head`, the tree head of the log with
    /// key hash `log_key_hash`, that come from witnesses of this policy;
    /// others are ignored. The log's own signature is not checked here.
    pub fn review_cosignatures(
        &self,
        head: &CosignedTreeHead,
        log_key_hash: &KeyHash,
    ) -> CosignatureReview<'_> {
        let mut valid = Vec::new();
        let mut invalid = Vec::new();
        for c in head.cosignatures() {
            let Some(witness) = self.witness_by_key_hash(&c.key_hash) else {
                continue;
            };
            if c.verify(witness.key(), head.tree_head(), log_key_hash) {
                valid.push(ValidCosignature {
                    witness,
                    timestamp: c.timestamp,
                });
            } else {
                invalid.push(witness);
            }
        }
        CosignatureReview {
            policy: self,
            valid,
            invalid,
        }
    }
}

impl CosignatureReview<'_> {
    /// The key hashes of the witnesses with valid cosignatures: the set
    /// [`Policy::quorum_satisfied`] takes.
    pub fn key_hashes(&self) -> HashSet<KeyHash> {
        self.valid.iter().map(|v| *v.witness.key_hash()).collect()
    }

    /// Whether the valid cosignatures satisfy the policy's quorum.
    pub fn quorum_satisfied(&self) -> bool {
        self.policy.quorum_satisfied(&self.key_hashes())
    }

    /// The newest time at which a quorum vouched for the head: the largest
    /// `T` such that the witnesses whose valid cosignatures carry
    /// timestamps `≥ T` satisfy the quorum. `None` without a quorum, and
    /// under `quorum none`, where no cosignature is needed and so none
    /// dates the head.
    pub fn quorum_time(&self) -> Option<u64> {
        if self.policy.quorum() == Quorum::None {
            return None;
        }
        // Adding witnesses newest first, the one that completes the quorum
        // carries that time (the quorum is monotone in the set).
        let mut newest_first: Vec<_> = self.valid.iter().collect();
        newest_first.sort_by_key(|v| std::cmp::Reverse(v.timestamp));
        let mut set = HashSet::new();
        for v in newest_first {
            set.insert(*v.witness.key_hash());
            if self.policy.quorum_satisfied(&set) {
                return Some(v.timestamp);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Signature, SigningKey};
    use crate::tree_head::{Cosignature, TreeHead};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32])
    }

    fn log() -> SigningKey {
        key(0x4c)
    }

    fn head_with(witnesses: &[(&SigningKey, u64)]) -> CosignedTreeHead {
        let th = TreeHead {
            size: 3,
            root_hash: [9; 32],
        };
        let log_hash = log().public_key().key_hash();
        let cosignatures = witnesses
            .iter()
            .map(|(w, t)| Cosignature::sign(w, &th, &log_hash, *t).unwrap())
            .collect();
        CosignedTreeHead::new(th.sign(&log()), cosignatures).unwrap()
    }

    /// Witnesses A, B, C (seeds 1, 2, 3) in a 2-of-3 group G.
    fn policy(quorum: &str) -> Policy {
        let text = format!(
            "log {}\nwitness A {}\nwitness B {}\nwitness C {}\ngroup G 2 A B C\nquorum {quorum}\n",
            log().public_key(),
            key(1).public_key(),
            key(2).public_key(),
            key(3).public_key()
        );
        Policy::parse(text.as_bytes()).unwrap()
    }

    fn names(witnesses: impl IntoIterator<Item = &'static str>) -> Vec<String> {
        witnesses.into_iter().map(str::to_owned).collect()
    }

    fn valid_names(r: &CosignatureReview<'_>) -> Vec<String> {
        r.valid
            .iter()
            .map(|v| v.witness.name().to_string())
            .collect()
    }

    #[test]
    fn valid_cosignatures_of_policy_witnesses_are_listed_in_head_order() {
        let p = policy("G");
        let head = head_with(&[(&key(3), 5), (&key(1), 6)]);
        let r = p.review_cosignatures(&head, &log().public_key().key_hash());
        assert_eq!(valid_names(&r), names(["C", "A"]));
        assert_eq!(r.valid[0].timestamp, 5);
        assert!(r.invalid.is_empty());
        assert_eq!(
            r.key_hashes(),
            HashSet::from([
                key(1).public_key().key_hash(),
                key(3).public_key().key_hash()
            ])
        );
        assert!(r.quorum_satisfied());
    }

    #[test]
    fn unknown_witnesses_are_ignored_and_invalid_ones_count_as_absent() {
        let p = policy("G");
        let stranger = key(9);
        let mut head = head_with(&[(&key(1), 100), (&stranger, 100)]);
        let forged = Cosignature {
            signature: Signature([0; 64]),
            ..Cosignature::sign(&key(2), head.tree_head(), &KeyHash([0; 32]), 500).unwrap()
        };
        head.add_cosignature(forged).unwrap();
        let r = p.review_cosignatures(&head, &log().public_key().key_hash());
        assert_eq!(valid_names(&r), names(["A"]));
        let invalid: Vec<String> = r.invalid.iter().map(|w| w.name().to_string()).collect();
        assert_eq!(invalid, names(["B"]));
        assert!(!r.quorum_satisfied());
        assert_eq!(r.quorum_time(), None);
    }

    #[test]
    fn cosignatures_for_another_log_do_not_verify() {
        let p = policy("A");
        let head = head_with(&[(&key(1), 100)]);
        let r = p.review_cosignatures(&head, &key(0x4d).public_key().key_hash());
        assert!(r.valid.is_empty());
        assert_eq!(r.invalid.len(), 1);
        assert!(!r.quorum_satisfied());
    }

    #[test]
    fn quorum_time_is_the_oldest_timestamp_among_the_newest_quorum() {
        let p = policy("G");
        let head = head_with(&[(&key(1), 100), (&key(2), 300), (&key(3), 200)]);
        let r = p.review_cosignatures(&head, &log().public_key().key_hash());
        assert!(r.quorum_satisfied());
        // B (300) and C (200) are the newest two of three.
        assert_eq!(r.quorum_time(), Some(200));
    }

    #[test]
    fn quorum_none_is_satisfied_without_a_time() {
        let p = policy("none");
        let r = p.review_cosignatures(&head_with(&[]), &log().public_key().key_hash());
        assert!(r.quorum_satisfied());
        assert_eq!(r.quorum_time(), None);
    }
}
