//! The right edge of a Merkle tree: a "compact range" over leaves `[0, size)`.
//!
//! A tree of `size` leaves is a left-to-right sequence of complete subtrees,
//! one per set bit of `size`, largest first. Their hashes are all that is
//! needed to compute the root and to keep appending, so an integrator holds
//! O(log size) hashes however large the log grows. Each append reports the
//! complete subtrees it finished, which are exactly the new entries of the
//! hash tiles; after a restart the range is rebuilt from the tiles' hashes of
//! [`right_edge_nodes`].

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::proof::{NodeId, complete_subtrees};

/// Why a compact range cannot be built or grown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompactRangeError {
    /// `from_parts` got a hash count other than one per set bit of the size.
    #[error("a tree of size {size} has {expected} right-edge subtrees, got {got} hashes")]
    WrongHashCount {
        /// The claimed tree size.
        size: u64,
        /// `popcount(size)`.
        expected: usize,
        /// Number of hashes received.
        got: usize,
    },
    /// The tree already has `u64::MAX` leaves, so no index is left for another.
    #[error("the tree is full at {size} leaves")]
    Full {
        /// The current size (`u64::MAX`).
        size: u64,
    },
}

/// The hashes of the complete subtrees on the right edge of a tree of `size`
/// leaves, largest (leftmost) first.
///
/// Invariant: exactly one hash per set bit of `size`. Nothing here can check
/// that the hashes are the right ones; that is the caller's trust decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A range from a size and its right-edge hashes, largest subtree first
    /// (the hashes of [`right_edge_nodes`]`(size)`, in that order). Fails if
    /// the count is not `popcount(size)`.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, CompactRangeError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(CompactRangeError::WrongHashCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge subtree hashes, largest first; their nodes are
    /// [`right_edge_nodes`](Self::right_edge_nodes).
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The nodes of [`hashes`](Self::hashes), in the same order.
    pub fn right_edge_nodes(&self) -> impl Iterator<Item = NodeId> + use<> {
        right_edge_nodes(self.size)
    }

    /// Appends the leaf with hash `leaf_hash` at index [`size`](Self::size).
    ///
    /// Returns every complete subtree this append finished, bottom-up: the
    /// leaf itself at level 0, then each parent it completed (as many as the
    /// old size has trailing one bits). Across appends from an empty range,
    /// these are each complete subtree of the tree exactly once. Fails, leaving
    /// the range unchanged, only if the size is already `u64::MAX`.
    pub fn append(&mut self, leaf_hash: Hash) -> Result<Vec<(NodeId, Hash)>, CompactRangeError> {
        let index = self.size;
        let new_size = index
            .checked_add(1)
            .ok_or(CompactRangeError::Full { size: index })?;
        // The trailing one bits of the old size are the smallest subtrees on
        // the edge; the new leaf merges with each in turn.
        let merges = index.trailing_ones();
        let mut completed = Vec::with_capacity(merges as usize + 1);
        let mut hash = leaf_hash;
        completed.push((NodeId::leaf(index), hash));
        for level in 1..=merges {
            // The invariant guarantees a stored hash per trailing one bit.
            let Some(left) = self.hashes.pop() else { break };
            hash = node_hash(&left, &hash);
            // `level ≤ 63` because `index < u64::MAX`.
            completed.push((
                NodeId {
                    level: level as u8,
                    index: index >> level,
                },
                hash,
            ));
        }
        self.hashes.push(hash);
        self.size = new_size;
        Ok(completed)
    }

    /// The tree root: [`EMPTY_ROOT`] for size 0.
    pub fn root(&self) -> Hash {
        fold_right_edge(&self.hashes)
    }
}

/// The complete subtrees on the right edge of a tree of `size` leaves,
/// largest (leftmost) first: one per set bit of `size`. A restarting
/// integrator reads these hashes from its tiles and passes them to
/// [`CompactRange::from_parts`].
pub fn right_edge_nodes(size: u64) -> impl Iterator<Item = NodeId> {
    complete_subtrees(0, size)
}

/// The root of a tree given its right-edge subtree hashes, largest first:
/// hashing right to left matches RFC 6962's split at the largest power of two.
/// No hashes is the empty tree.
pub(crate) fn fold_right_edge(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => EMPTY_ROOT,
        Some((last, rest)) => rest
            .iter()
            .rev()
            .fold(*last, |right, left| node_hash(left, &right)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn leaf(i: u64) -> Hash {
        leaf_hash(&i.to_be_bytes())
    }

    /// RFC 6962 §2.1.1 MTH, recursively: the oracle for roots.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves {
            [] => EMPTY_ROOT,
            [leaf] => *leaf,
            _ => {
                let k = leaves.len().next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn empty_range_has_the_empty_root_and_no_edge() {
        let range = CompactRange::new();
        assert_eq!(range.size(), 0);
        assert_eq!(range.root(), EMPTY_ROOT);
        assert_eq!(range.right_edge_nodes().count(), 0);
    }

    #[test]
    fn root_matches_the_rfc_definition_at_every_size() {
        let mut range = CompactRange::new();
        let mut leaves = Vec::new();
        for i in 0..100 {
            range.append(leaf(i)).unwrap();
            leaves.push(leaf(i));
            assert_eq!(range.root(), mth(&leaves), "size {}", i + 1);
            assert_eq!(range.hashes().len(), range.size().count_ones() as usize);
        }
    }

    #[test]
    fn appending_the_fourth_leaf_completes_two_parents() {
        let mut range = CompactRange::new();
        for i in 0..3 {
            range.append(leaf(i)).unwrap();
        }
        let completed = range.append(leaf(3)).unwrap();
        let ids: Vec<NodeId> = completed.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids,
            [
                NodeId::leaf(3),
                NodeId { level: 1, index: 1 },
                NodeId { level: 2, index: 0 }
            ]
        );
        let leaves = [leaf(0), leaf(1), leaf(2), leaf(3)];
        assert_eq!(completed[1].1, mth(&leaves[2..]));
        assert_eq!(completed[2].1, mth(&leaves));
        assert_eq!(range.hashes(), [mth(&leaves)]);
    }

    #[test]
    fn right_edge_nodes_are_the_set_bits_of_the_size_largest_first() {
        let nodes: Vec<NodeId> = right_edge_nodes(13).collect();
        assert_eq!(
            nodes,
            [
                NodeId { level: 3, index: 0 },
                NodeId { level: 2, index: 2 },
                NodeId {
                    level: 0,
                    index: 12
                },
            ]
        );
        assert_eq!(right_edge_nodes(u64::MAX).count(), 64);
    }

    #[test]
    fn from_parts_rejects_a_hash_count_other_than_popcount_of_size() {
        assert_eq!(
            CompactRange::from_parts(13, vec![[0; 32]; 2]),
            Err(CompactRangeError::WrongHashCount {
                size: 13,
                expected: 3,
                got: 2
            })
        );
        assert!(CompactRange::from_parts(0, vec![[0; 32]]).is_err());
    }

    #[test]
    fn range_rebuilt_from_its_parts_continues_identically() {
        let mut original = CompactRange::new();
        for i in 0..21 {
            original.append(leaf(i)).unwrap();
        }
        let mut rebuilt =
            CompactRange::from_parts(original.size(), original.hashes().to_vec()).unwrap();
        for i in 21..40 {
            assert_eq!(rebuilt.append(leaf(i)), original.append(leaf(i)));
        }
        assert_eq!(rebuilt, original);
    }

    #[test]
    fn appending_to_a_full_tree_fails_and_changes_nothing() {
        let mut range = CompactRange::from_parts(u64::MAX, vec![[1; 32]; 64]).unwrap();
        let before = range.clone();
        assert_eq!(
            range.append([2; 32]),
            Err(CompactRangeError::Full { size: u64::MAX })
        );
        assert_eq!(range, before);
    }

    #[test]
    fn appending_leaf_2_pow_63_minus_1_completes_63_parents() {
        let mut range = CompactRange::from_parts((1 << 63) - 1, vec![[1; 32]; 63]).unwrap();
        let completed = range.append([2; 32]).unwrap();
        assert_eq!(completed.len(), 64);
        assert_eq!(
            completed[63].0,
            NodeId {
                level: 63,
                index: 0
            }
        );
        assert_eq!(range.size(), 1 << 63);
        assert_eq!(range.hashes(), [completed[63].1]);
    }
}
