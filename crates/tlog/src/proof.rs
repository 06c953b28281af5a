//! Inclusion and consistency proofs for RFC 6962 Merkle trees, following
//! RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency); Sigsum uses the same
//! proofs (see `sigsum-protocol.md` §9).
//!
//! Verification is a pure function of its arguments.
//!
//! Generation is split so that no IO happens here: the services read node
//! hashes asynchronously from hash tiles in object storage.
//!
//! 1. A *plan* ([`inclusion_plan`], [`consistency_plan`], [`root_plan`]) says
//!    which complete subtrees ([`NodeId`]s) the proof needs.
//! 2. The caller fetches those hashes however it likes.
//! 3. [`ProofPlan::assemble`] turns them into the proof.
//!
//! [`inclusion_proof`], [`consistency_proof`] and [`tree_root`] do all three
//! steps with a synchronous lookup function.
//!
//! Proof hashes are ordered leaf-sibling first (RFC 6962 and Sigsum wire
//! order). A proof hash is either one complete subtree or, on the right edge
//! of the tree, the hash of an incomplete subtree folded from several complete
//! ones; a plan records which.

use std::ops::Range;

use crate::compact::fold_right_edge;
use crate::hash::{Hash, node_hash};

/// The most hashes a proof may carry. sigsum-go refuses longer proofs, and the
/// C2SP witness protocol allows at most 63 proof lines. A tree needs 64 only
/// beyond 2^63 leaves, which Sigsum sizes (at most 2^63 − 1) never reach.
pub const MAX_PROOF_HASHES: usize = 63;

/// The complete subtree covering leaves `[index << level, (index + 1) << level)`.
///
/// Level 0 nodes are leaf hashes; a level-`l` node has `2^l` leaves. Hash
/// tiles store the level-`8·L` nodes as the entries of tile level `L`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves: `log2` of the number of leaves covered.
    pub level: u8,
    /// Position among the nodes of the same level, counting from 0 at the left.
    pub index: u64,
}

impl NodeId {
    /// The leaf hash of leaf `index`.
    pub const fn leaf(index: u64) -> Self {
        Self { level: 0, index }
    }

    /// The leaves this node covers, or `None` if the range does not fit in a
    /// `u64` (such a node can never be complete in any tree).
    pub fn leaf_range(self) -> Option<Range<u64>> {
        let width = 1u64.checked_shl(u32::from(self.level))?;
        let start = self.index.checked_mul(width)?;
        let end = start.checked_add(width)?;
        Some(start..end)
    }
}

/// Why a proof was rejected, or why a proof cannot exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf is not in the tree: `index ≥ size`.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// A consistency proof cannot go from a larger tree to a smaller one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeAboveNewSize {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
    /// The proof has more than [`MAX_PROOF_HASHES`] hashes.
    #[error("proof has {len} hashes, more than the limit of {MAX_PROOF_HASHES}")]
    PathTooLong {
        /// Number of hashes received.
        len: usize,
    },
    /// The proof does not have the number of hashes the sizes determine.
    #[error("proof has {got} hashes, but these tree sizes need exactly {expected}")]
    WrongPathLength {
        /// Number of hashes a valid proof has.
        expected: usize,
        /// Number of hashes received.
        got: usize,
    },
    /// A consistency proof from size 0, or between equal sizes, must be empty.
    #[error("consistency proof from size {old_size} to {new_size} must be empty, got {len} hashes")]
    NonEmptyTrivialProof {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
        /// Number of hashes received.
        len: usize,
    },
    /// The inclusion proof leads to a different root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The consistency proof does not match the old root.
    #[error("consistency proof does not match the old root")]
    OldRootMismatch,
    /// The consistency proof does not lead to the new root.
    #[error("consistency proof does not lead to the new root")]
    NewRootMismatch,
    /// Two different roots were claimed for the same tree size.
    #[error("two different roots claimed for tree size {size}")]
    SameSizeDifferentRoots {
        /// The common tree size.
        size: u64,
    },
}

/// Failure of proof generation through a lookup function: either no such
/// proof exists, or the lookup failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofSourceError<E> {
    /// The requested proof does not exist (index or sizes out of range).
    #[error(transparent)]
    Request(#[from] ProofError),
    /// The lookup function failed; its error is passed through unchanged.
    #[error("reading node hashes for a proof failed")]
    Source(#[source] E),
}

/// Which complete subtrees a proof (or root) needs, and how to combine them.
///
/// Obtain one from [`inclusion_plan`], [`consistency_plan`] or [`root_plan`];
/// fetch the hashes of [`nodes`](Self::nodes); call
/// [`assemble`](Self::assemble). A plan holds O(log size) nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProofPlan {
    /// Every needed node, in proof order; within one proof hash, left to right.
    nodes: Vec<NodeId>,
    /// For each proof hash, the end (exclusive) of its nodes in `nodes`; it
    /// starts where the previous one ended.
    ends: Vec<usize>,
}

impl ProofPlan {
    /// The nodes whose hashes [`assemble`](Self::assemble) will ask for, each
    /// exactly once, in the order it asks. Every node is a complete subtree of
    /// the tree the plan was made for.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The nodes of each proof hash, in proof order. A single node is used as
    /// is; several nodes (left to right, largest first) are the complete
    /// subtrees of one right-edge subtree and are folded into its hash. The
    /// empty list (only in [`root_plan`]`(0)`) stands for the empty tree.
    pub fn elements(&self) -> impl Iterator<Item = &[NodeId]> {
        self.ends.iter().scan(0, |start, &end| {
            let element = self.nodes.get(*start..end);
            *start = end;
            element
        })
    }

    /// Number of hashes the assembled proof has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the assembled proof is empty (a trivial consistency proof).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Builds the proof from node hashes. Calls `lookup` once per entry of
    /// [`nodes`](Self::nodes), in that order, and stops at its first error.
    /// The result is only as correct as the hashes `lookup` returns.
    pub fn assemble<E>(
        &self,
        mut lookup: impl FnMut(NodeId) -> Result<Hash, E>,
    ) -> Result<Vec<Hash>, E> {
        let mut proof = Vec::with_capacity(self.len());
        let mut subtrees = Vec::new();
        for element in self.elements() {
            subtrees.clear();
            for &id in element {
                subtrees.push(lookup(id)?);
            }
            proof.push(fold_right_edge(&subtrees));
        }
        Ok(proof)
    }

    /// A plan whose proof hashes are the subtrees `[start, end)`, in order.
    fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut plan = Self::default();
        for (start, end) in ranges {
            plan.nodes.extend(complete_subtrees(start, end));
            plan.ends.push(plan.nodes.len());
        }
        plan
    }
}

/// Plan for the inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162 §2.1.3.1). Fails only if `index ≥ size`. Trees beyond 2^63
/// leaves can need 64 hashes, more than verifiers accept
/// ([`MAX_PROOF_HASHES`]).
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Descend from the root towards the leaf; each step's sibling subtree is
    // one proof hash. Only a sibling to the right can be incomplete.
    let mut siblings = Vec::new();
    let (mut start, mut end) = (0, size);
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            siblings.push((mid, end));
            end = mid;
        } else {
            siblings.push((start, mid));
            start = mid;
        }
    }
    // The descent meets the root-side siblings first; proofs list leaf-side first.
    Ok(ProofPlan::from_ranges(siblings.into_iter().rev()))
}

/// Plan for the consistency proof from the tree of `old_size` leaves to the
/// tree of `new_size` leaves (RFC 9162 §2.1.4.1). The plan is empty when
/// `old_size` is 0 or equals `new_size`. Fails only if `old_size > new_size`.
pub fn consistency_plan(old_size: u64, new_size: u64) -> Result<ProofPlan, ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeAboveNewSize { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(ProofPlan::default());
    }
    // RFC 9162 SUBPROOF, unrolled: descend towards the subtree ending at
    // `old_size`, collecting siblings. If the descent never steps right, that
    // subtree is the whole old tree, whose root the verifier already holds,
    // so it is left out (the RFC's flag `b`).
    let mut subtrees = Vec::new();
    let (mut start, mut end) = (0, new_size);
    let mut on_left_edge = true;
    while old_size != end {
        let mid = start + split_point(end - start);
        if old_size <= mid {
            subtrees.push((mid, end));
            end = mid;
        } else {
            subtrees.push((start, mid));
            start = mid;
            on_left_edge = false;
        }
    }
    if !on_left_edge {
        subtrees.push((start, end));
    }
    Ok(ProofPlan::from_ranges(subtrees.into_iter().rev()))
}

/// Plan for the root of the tree of `size` leaves: one "proof hash", the
/// root, folded from the complete subtrees of the tree's right edge (one per
/// set bit of `size`). For `size` 0 it needs no nodes and yields
/// [`EMPTY_ROOT`](crate::EMPTY_ROOT).
pub fn root_plan(size: u64) -> ProofPlan {
    ProofPlan::from_ranges([(0, size)])
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, reading
/// node hashes through `lookup` (see [`inclusion_plan`]).
pub fn inclusion_proof<E>(
    index: u64,
    size: u64,
    lookup: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, ProofSourceError<E>> {
    inclusion_plan(index, size)?
        .assemble(lookup)
        .map_err(ProofSourceError::Source)
}

/// The consistency proof from `old_size` to `new_size`, reading node hashes
/// through `lookup` (see [`consistency_plan`]).
pub fn consistency_proof<E>(
    old_size: u64,
    new_size: u64,
    lookup: impl FnMut(NodeId) -> Result<Hash, E>,
) -> Result<Vec<Hash>, ProofSourceError<E>> {
    consistency_plan(old_size, new_size)?
        .assemble(lookup)
        .map_err(ProofSourceError::Source)
}

/// The root of the tree of `size` leaves, reading node hashes through
/// `lookup` (see [`root_plan`]).
pub fn tree_root<E>(size: u64, lookup: impl FnMut(NodeId) -> Result<Hash, E>) -> Result<Hash, E> {
    let subtrees = complete_subtrees(0, size)
        .map(lookup)
        .collect::<Result<Vec<_>, E>>()?;
    Ok(fold_right_edge(&subtrees))
}

/// Checks that `path` proves leaf `leaf_hash` at `index` is in the tree of
/// `size` leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion_proof(leaf_hash, index, size, path)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// The root that `path` proves leaf `leaf_hash` at `index` belongs to, for a
/// tree of `size` leaves. Checks everything [`verify_inclusion`] checks except
/// the root itself; monitors use it to compare against roots they hold.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let last = size - 1;
    check_path_len(path, sibling_sides(index, last).count())?;
    let root = sibling_sides(index, last)
        .zip(path)
        .fold(*leaf_hash, |node, (side, sibling)| {
            side.join(&node, sibling)
        });
    Ok(root)
}

/// Checks that `path` proves the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root
/// `new_root` (RFC 9162 §2.1.4.2). From size 0 any tree is consistent: the
/// proof must be empty and neither root is examined (as in sigsum-go).
/// Between equal sizes the proof must be empty and the roots equal.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    path: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeAboveNewSize { old_size, new_size });
    }
    if path.len() > MAX_PROOF_HASHES {
        return Err(ProofError::PathTooLong { len: path.len() });
    }
    if old_size == 0 || old_size == new_size {
        if !path.is_empty() {
            return Err(ProofError::NonEmptyTrivialProof {
                old_size,
                new_size,
                len: path.len(),
            });
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::SameSizeDifferentRoots { size: new_size });
        }
        return Ok(());
    }
    let (computed_old, computed_new) = consistency_roots(old_size, new_size, path, old_root)?;
    if computed_old != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if computed_new != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The (old, new) roots a non-trivial consistency proof leads to
/// (`0 < old_size < new_size`); `old_root` seeds the walk when the proof
/// leaves it out (old size a power of two).
fn consistency_roots(
    old_size: u64,
    new_size: u64,
    path: &[Hash],
    old_root: &Hash,
) -> Result<(Hash, Hash), ProofError> {
    // Start from the subtree ending at the old size: the highest node whose
    // leaves all lie in the old tree, i.e. skip the trailing zero bits.
    let shift = old_size.trailing_zeros();
    let node = (old_size - 1) >> shift;
    let last = (new_size - 1) >> shift;
    // If that node is the whole old tree (old size a power of two), the
    // verifier holds its hash already and the proof omits it.
    let seed_in_path = node > 0;
    check_path_len(
        path,
        sibling_sides(node, last).count() + usize::from(seed_in_path),
    )?;
    let (seed, rest) = match (seed_in_path, path.split_first()) {
        (true, Some((first, rest))) => (*first, rest),
        _ => (*old_root, path),
    };
    let (mut old_acc, mut new_acc) = (seed, seed);
    for (side, sibling) in sibling_sides(node, last).zip(rest) {
        new_acc = side.join(&new_acc, sibling);
        // Left siblings lie inside the old tree; right ones only in the new.
        if side == Side::Left {
            old_acc = node_hash(sibling, &old_acc);
        }
    }
    Ok((old_acc, new_acc))
}

fn check_path_len(path: &[Hash], expected: usize) -> Result<(), ProofError> {
    if path.len() > MAX_PROOF_HASHES {
        return Err(ProofError::PathTooLong { len: path.len() });
    }
    if path.len() != expected {
        return Err(ProofError::WrongPathLength {
            expected,
            got: path.len(),
        });
    }
    Ok(())
}

/// Where a proof hash sits relative to the node being hashed upwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl Side {
    fn join(self, node: &Hash, sibling: &Hash) -> Hash {
        match self {
            Side::Left => node_hash(sibling, node),
            Side::Right => node_hash(node, sibling),
        }
    }
}

/// The side of each sibling met walking up from position `node` to the root,
/// in a tree whose last position at the starting level is `last`
/// (`node ≤ last`). One item per proof hash, so its count is the proof length.
///
/// At each level an odd position has a left sibling, an even one has a right
/// sibling unless it is the last (rightmost) node, which is promoted unchanged.
fn sibling_sides(mut node: u64, mut last: u64) -> impl Iterator<Item = Side> {
    std::iter::from_fn(move || {
        while last > 0 {
            let side = if node & 1 == 1 {
                Some(Side::Left)
            } else if node < last {
                Some(Side::Right)
            } else {
                None
            };
            node >>= 1;
            last >>= 1;
            if side.is_some() {
                return side;
            }
        }
        None
    })
}

/// The largest power of two below `width` (`width ≥ 2`): where RFC 6962
/// splits a subtree of `width` leaves into its left and right halves.
fn split_point(width: u64) -> u64 {
    1 << (u64::BITS - 1 - (width - 1).leading_zeros())
}

/// The complete subtrees making up the RFC 6962 subtree of leaves
/// `[start, end)`, left to right (largest first): one per set bit of
/// `end - start`. `start` must be a multiple of the largest of them, which
/// holds for every subtree the RFC 6962 recursion produces.
pub(crate) fn complete_subtrees(start: u64, end: u64) -> impl Iterator<Item = NodeId> {
    let width = end.saturating_sub(start);
    let mut cursor = start;
    (0..u64::BITS as u8)
        .rev()
        .filter(move |&level| (width >> level) & 1 == 1)
        .map(move |level| {
            let id = NodeId {
                level,
                index: cursor >> level,
            };
            cursor += 1 << level;
            id
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{EMPTY_ROOT, leaf_hash};

    /// Leaf hashes of a tree of `size` leaves whose leaf `i` is the byte `i`.
    fn leaves(size: usize) -> Vec<Hash> {
        (0..size).map(|i| leaf_hash(&[i as u8])).collect()
    }

    /// RFC 6962 §2.1.1 MTH, written recursively as in the RFC: an oracle
    /// independent of the code under test.
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

    /// Looks nodes up by recomputing them; fails for nodes outside `leaves`
    /// so a plan asking for a node the tree lacks is caught.
    fn lookup(leaves: &[Hash]) -> impl FnMut(NodeId) -> Result<Hash, NodeId> + '_ {
        |id| {
            let range = id.leaf_range().ok_or(id)?;
            let start = usize::try_from(range.start).map_err(|_| id)?;
            let end = usize::try_from(range.end).map_err(|_| id)?;
            leaves.get(start..end).map(mth).ok_or(id)
        }
    }

    #[test]
    fn inclusion_proof_for_last_leaf_of_power_of_two_tree_verifies() {
        let tree = leaves(16);
        let path = inclusion_proof(15, 16, lookup(&tree)).unwrap();
        assert_eq!(path.len(), 4);
        assert_eq!(
            verify_inclusion(&tree[15], 15, 16, &path, &mth(&tree)),
            Ok(())
        );
    }

    #[test]
    fn inclusion_proofs_for_every_leaf_of_small_trees_verify() {
        for size in 1..=40 {
            let tree = leaves(size);
            let root = mth(&tree);
            for index in 0..size {
                let path = inclusion_proof(index as u64, size as u64, lookup(&tree)).unwrap();
                let result =
                    verify_inclusion(&tree[index], index as u64, size as u64, &path, &root);
                assert_eq!(result, Ok(()), "index {index} size {size}");
            }
        }
    }

    #[test]
    fn inclusion_proof_with_index_not_below_size_is_rejected() {
        let err = ProofError::IndexOutOfRange { index: 5, size: 5 };
        assert_eq!(inclusion_plan(5, 5), Err(err));
        assert_eq!(verify_inclusion(&[0; 32], 5, 5, &[], &[0; 32]), Err(err));
        assert_eq!(
            verify_inclusion(&[0; 32], 0, 0, &[], &EMPTY_ROOT),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
    }

    #[test]
    fn inclusion_proof_of_wrong_length_reports_the_expected_length() {
        let tree = leaves(9);
        let mut path = inclusion_proof(5, 9, lookup(&tree)).unwrap();
        path.push([0; 32]);
        assert_eq!(
            verify_inclusion(&tree[5], 5, 9, &path, &mth(&tree)),
            Err(ProofError::WrongPathLength {
                expected: 4,
                got: 5
            })
        );
    }

    #[test]
    fn inclusion_proof_with_a_flipped_bit_reports_root_mismatch() {
        let tree = leaves(11);
        let mut path = inclusion_proof(6, 11, lookup(&tree)).unwrap();
        path[2][31] ^= 1;
        assert_eq!(
            verify_inclusion(&tree[6], 6, 11, &path, &mth(&tree)),
            Err(ProofError::RootMismatch)
        );
    }

    #[test]
    fn proofs_longer_than_the_sigsum_limit_are_rejected() {
        let path = [[0; 32]; MAX_PROOF_HASHES + 1];
        assert_eq!(
            verify_inclusion(&[0; 32], u64::MAX - 1, u64::MAX, &path, &[0; 32]),
            Err(ProofError::PathTooLong { len: 64 })
        );
        assert_eq!(
            verify_consistency(1, u64::MAX, &path, &[0; 32], &[0; 32]),
            Err(ProofError::PathTooLong { len: 64 })
        );
    }

    #[test]
    fn verification_at_u64_max_sizes_returns_errors_without_panicking() {
        let h = [7; 32];
        assert_eq!(
            verify_inclusion(&h, 0, u64::MAX, &[], &h),
            Err(ProofError::WrongPathLength {
                expected: 64,
                got: 0
            })
        );
        assert_eq!(
            verify_inclusion(&h, u64::MAX - 1, u64::MAX, &[], &h),
            Err(ProofError::WrongPathLength {
                expected: 63,
                got: 0
            })
        );
        let path = [h; 63];
        assert!(verify_inclusion(&h, 0, u64::MAX, &path, &h).is_err());
        for (old, new) in [(u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX), (3, u64::MAX)] {
            assert!(verify_consistency(old, new, &path, &h, &h).is_err());
            assert!(verify_consistency(old, new, &path[..2], &h, &h).is_err());
        }
    }

    #[test]
    fn plans_for_huge_trees_stay_logarithmic() {
        let size = u64::MAX;
        let inclusion = inclusion_plan(0, size).unwrap();
        assert_eq!(inclusion.len(), 64);
        assert!(inclusion.nodes().len() <= 2 * 64);
        let consistency = consistency_plan(size / 3, size).unwrap();
        assert!(consistency.nodes().len() <= 2 * 64);
        assert_eq!(root_plan(size).nodes().len(), 64);
    }

    #[test]
    fn plans_request_only_complete_subtrees_inside_the_tree() {
        for size in 1..=40u64 {
            let within = |plan: &ProofPlan| {
                plan.nodes()
                    .iter()
                    .all(|id| id.leaf_range().is_some_and(|r| r.end <= size))
            };
            assert!(within(&root_plan(size)));
            for i in 0..size {
                assert!(within(&inclusion_plan(i, size).unwrap()));
                assert!(within(&consistency_plan(i, size).unwrap()));
            }
        }
    }

    #[test]
    fn right_edge_sibling_is_folded_from_its_complete_subtrees() {
        // Leaf 0 of 7: siblings are leaf 1, leaves 2..4, and the incomplete
        // subtree over leaves 4..7 made of leaves 4..6 and leaf 6.
        let plan = inclusion_plan(0, 7).unwrap();
        let elements: Vec<&[NodeId]> = plan.elements().collect();
        let expected: [&[NodeId]; 3] = [
            &[NodeId::leaf(1)],
            &[NodeId { level: 1, index: 1 }],
            &[NodeId { level: 1, index: 2 }, NodeId::leaf(6)],
        ];
        assert_eq!(elements, expected);
        let tree = leaves(7);
        assert_eq!(plan.assemble(lookup(&tree)).unwrap()[2], mth(&tree[4..7]));
    }

    #[test]
    fn consistency_proofs_between_all_small_sizes_verify() {
        for new in 0..=40usize {
            let tree = leaves(new);
            let new_root = mth(&tree);
            for old in 0..=new {
                let path = consistency_proof(old as u64, new as u64, lookup(&tree)).unwrap();
                let old_root = mth(&tree[..old]);
                let result =
                    verify_consistency(old as u64, new as u64, &path, &old_root, &new_root);
                assert_eq!(result, Ok(()), "{old} -> {new}");
            }
        }
    }

    #[test]
    fn consistency_from_size_zero_needs_an_empty_proof() {
        assert_eq!(consistency_plan(0, 9), Ok(ProofPlan::default()));
        assert_eq!(verify_consistency(0, 9, &[], &EMPTY_ROOT, &[1; 32]), Ok(()));
        assert_eq!(
            verify_consistency(0, 9, &[[1; 32]], &EMPTY_ROOT, &[1; 32]),
            Err(ProofError::NonEmptyTrivialProof {
                old_size: 0,
                new_size: 9,
                len: 1
            })
        );
    }

    #[test]
    fn consistency_between_equal_sizes_needs_an_empty_proof_and_equal_roots() {
        assert!(consistency_plan(5, 5).unwrap().is_empty());
        assert_eq!(verify_consistency(5, 5, &[], &[1; 32], &[1; 32]), Ok(()));
        assert_eq!(
            verify_consistency(5, 5, &[], &[1; 32], &[2; 32]),
            Err(ProofError::SameSizeDifferentRoots { size: 5 })
        );
        assert_eq!(
            verify_consistency(5, 5, &[[1; 32]], &[1; 32], &[1; 32]),
            Err(ProofError::NonEmptyTrivialProof {
                old_size: 5,
                new_size: 5,
                len: 1
            })
        );
    }

    #[test]
    fn consistency_from_a_larger_tree_is_rejected() {
        let err = ProofError::OldSizeAboveNewSize {
            old_size: 7,
            new_size: 3,
        };
        assert_eq!(consistency_plan(7, 3), Err(err));
        assert_eq!(verify_consistency(7, 3, &[], &[0; 32], &[0; 32]), Err(err));
    }

    #[test]
    fn consistency_with_wrong_roots_names_the_root_that_differs() {
        let tree = leaves(13);
        let path = consistency_proof(6, 13, lookup(&tree)).unwrap();
        let (old_root, new_root) = (mth(&tree[..6]), mth(&tree));
        assert_eq!(
            verify_consistency(6, 13, &path, &[0; 32], &new_root),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify_consistency(6, 13, &path, &old_root, &[0; 32]),
            Err(ProofError::NewRootMismatch)
        );
    }

    #[test]
    fn consistency_from_a_power_of_two_checks_the_old_root_through_the_new_one() {
        // The proof omits the old root, so a wrong one shows up in the new root.
        let tree = leaves(13);
        let path = consistency_proof(8, 13, lookup(&tree)).unwrap();
        assert_eq!(
            verify_consistency(8, 13, &path, &[0; 32], &mth(&tree)),
            Err(ProofError::NewRootMismatch)
        );
    }

    #[test]
    fn root_plan_of_the_empty_tree_assembles_to_the_empty_root() {
        let plan = root_plan(0);
        assert!(plan.nodes().is_empty());
        assert_eq!(plan.assemble(lookup(&[])), Ok(vec![EMPTY_ROOT]));
        assert_eq!(tree_root(0, lookup(&[])), Ok(EMPTY_ROOT));
    }

    #[test]
    fn tree_root_matches_the_rfc_definition() {
        for size in 0..=40 {
            let tree = leaves(size);
            assert_eq!(tree_root(size as u64, lookup(&tree)), Ok(mth(&tree)));
        }
    }

    #[test]
    fn lookup_errors_are_passed_through_unchanged() {
        let failing = |id: NodeId| Err::<Hash, _>(id);
        assert_eq!(
            inclusion_proof(3, 8, failing),
            Err(ProofSourceError::Source(NodeId::leaf(2)))
        );
        assert_eq!(
            consistency_proof(9, 8, failing),
            Err(ProofSourceError::Request(ProofError::OldSizeAboveNewSize {
                old_size: 9,
                new_size: 8
            }))
        );
    }

    #[test]
    fn leaf_range_is_none_when_it_leaves_u64() {
        assert_eq!(NodeId { level: 3, index: 2 }.leaf_range(), Some(16..24));
        assert_eq!(
            NodeId {
                level: 63,
                index: 1
            }
            .leaf_range(),
            None
        );
        assert_eq!(
            NodeId {
                level: 64,
                index: 0
            }
            .leaf_range(),
            None
        );
        assert_eq!(
            NodeId {
                level: 255,
                index: 0
            }
            .leaf_range(),
            None
        );
    }
}
