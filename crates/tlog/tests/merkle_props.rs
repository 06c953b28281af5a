//! Property tests for proofs and compact ranges over random trees of up to a
//! few thousand leaves. Oracles: the RFC 6962 recursive MTH definition and a
//! bottom-up table of every complete subtree.

use std::collections::BTreeMap;

use cairn_tlog::compact::{CompactRange, right_edge_nodes};
use cairn_tlog::proof::{
    NodeId, consistency_proof, inclusion_proof, tree_root, verify_consistency, verify_inclusion,
};
use cairn_tlog::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
use proptest::prelude::*;
use proptest::sample::Index;

const MAX_SIZE: u64 = 3000;

/// Leaves beyond the proven tree, so tampering can also claim a larger size.
const EXTRA: u64 = 64;

/// Leaf hashes of a random tree; deriving them from a seed keeps proptest's
/// inputs (and shrinking) small.
fn leaves(seed: u64, size: u64) -> Vec<Hash> {
    (0..size)
        .map(|i| leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat()))
        .collect()
}

/// RFC 6962 §2.1.1 MTH, recursively.
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

/// Every complete subtree of a tree, keyed by node, built bottom-up.
fn complete_subtrees(leaves: &[Hash]) -> BTreeMap<NodeId, Hash> {
    let mut all = BTreeMap::new();
    let mut level_hashes = leaves.to_vec();
    for level in 0u8.. {
        for (index, hash) in level_hashes.iter().enumerate() {
            all.insert(
                NodeId {
                    level,
                    index: index as u64,
                },
                *hash,
            );
        }
        if level_hashes.len() < 2 {
            break;
        }
        level_hashes = level_hashes
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    all
}

/// Node lookup for proof generation; asking for a node the tree lacks fails.
fn lookup(tree: &BTreeMap<NodeId, Hash>) -> impl FnMut(NodeId) -> Result<Hash, NodeId> + '_ {
    |id| tree.get(&id).copied().ok_or(id)
}

fn flip_bit(hash: &mut Hash, bit: usize) {
    hash[bit / 8] ^= 1 << (bit % 8);
}

/// Roots for every size `0..=leaves.len()`, via the compact range.
fn roots_by_size(leaves: &[Hash]) -> Vec<Hash> {
    let mut range = CompactRange::new();
    let mut roots = vec![range.root()];
    for leaf in leaves {
        range.append(*leaf).unwrap();
        roots.push(range.root());
    }
    roots
}

/// One way of tampering with a proof check.
#[derive(Clone, Debug)]
enum Tamper {
    PathBit(Index, usize),
    LeafOrOldRootBit(usize),
    RootBit(usize),
    /// Another index (inclusion) or old size (consistency).
    First(Index),
    /// Another tree size, checked against that size's true root.
    Size(Index),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (any::<Index>(), 0..256usize).prop_map(|(i, b)| Tamper::PathBit(i, b)),
        (0..256usize).prop_map(Tamper::LeafOrOldRootBit),
        (0..256usize).prop_map(Tamper::RootBit),
        any::<Index>().prop_map(Tamper::First),
        any::<Index>().prop_map(Tamper::Size),
    ]
}

/// `range` without `except`, picked by `pick`; `None` if nothing is left.
fn other_than(pick: &Index, range: std::ops::Range<u64>, except: u64) -> Option<u64> {
    let candidates: Vec<u64> = range.filter(|&v| v != except).collect();
    (!candidates.is_empty()).then(|| *pick.get(&candidates))
}

proptest! {
    // Each case checks every proof of a tree of up to MAX_SIZE leaves.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_generated_inclusion_proof_verifies(seed: u64, size in 1..=MAX_SIZE) {
        let leaves = leaves(seed, size);
        let tree = complete_subtrees(&leaves);
        let root = mth(&leaves);
        for index in 0..size {
            let path = inclusion_proof(index, size, lookup(&tree)).unwrap();
            prop_assert_eq!(
                verify_inclusion(&leaves[index as usize], index, size, &path, &root),
                Ok(())
            );
        }
    }

    #[test]
    fn every_generated_consistency_proof_verifies(seed: u64, new_size in 0..=MAX_SIZE) {
        let leaves = leaves(seed, new_size);
        let tree = complete_subtrees(&leaves);
        let roots = roots_by_size(&leaves);
        let new_root = &roots[new_size as usize];
        for old_size in 0..=new_size {
            let path = consistency_proof(old_size, new_size, lookup(&tree)).unwrap();
            let old_root = &roots[old_size as usize];
            prop_assert_eq!(
                verify_consistency(old_size, new_size, &path, old_root, new_root),
                Ok(()),
                "{} -> {}", old_size, new_size
            );
        }
    }

    #[test]
    fn compact_and_plan_roots_match_the_rfc_definition_at_every_size(
        seed: u64,
        size in 0..=512u64,
    ) {
        let leaves = leaves(seed, size);
        let tree = complete_subtrees(&leaves);
        let mut range = CompactRange::new();
        for n in 0..=size as usize {
            let expected = mth(&leaves[..n]);
            prop_assert_eq!(range.root(), expected, "size {}", n);
            prop_assert_eq!(tree_root(n as u64, lookup(&tree)), Ok(expected));
            if let Some(leaf) = leaves.get(n) {
                range.append(*leaf).unwrap();
            }
        }
    }

    #[test]
    fn appended_nodes_are_exactly_the_complete_subtrees(seed: u64, size in 0..=MAX_SIZE) {
        let leaves = leaves(seed, size);
        let mut range = CompactRange::new();
        let mut reported = BTreeMap::new();
        for leaf in &leaves {
            for (id, hash) in range.append(*leaf).unwrap() {
                prop_assert!(reported.insert(id, hash).is_none(), "{:?} reported twice", id);
            }
        }
        prop_assert_eq!(reported, complete_subtrees(&leaves));
    }

    #[test]
    fn range_rebuilt_from_right_edge_nodes_continues_identically(
        seed: u64,
        size in 0..=MAX_SIZE,
        cut: Index,
    ) {
        let leaves = leaves(seed, size);
        let cut = cut.index(size as usize + 1);
        let mut original = CompactRange::new();
        for leaf in &leaves[..cut] {
            original.append(*leaf).unwrap();
        }
        // What a restarted integrator does: read the edge nodes from tiles.
        let tree = complete_subtrees(&leaves[..cut]);
        let edge: Vec<Hash> = right_edge_nodes(cut as u64).map(|id| tree[&id]).collect();
        let mut rebuilt = CompactRange::from_parts(cut as u64, edge).unwrap();
        prop_assert_eq!(&rebuilt, &original);
        for leaf in &leaves[cut..] {
            prop_assert_eq!(rebuilt.append(*leaf), original.append(*leaf));
        }
        prop_assert_eq!(rebuilt.root(), mth(&leaves));
    }
}

proptest! {
    // Cheap per case, so many cases: each draws one tampering.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn tampered_inclusion_checks_fail(
        seed: u64,
        size in 1..=MAX_SIZE,
        index: Index,
        tamper in tamper(),
    ) {
        let leaves = leaves(seed, size + EXTRA);
        let tree = complete_subtrees(&leaves[..size as usize]);
        let roots = roots_by_size(&leaves);
        let index = index.index(size as usize) as u64;
        let mut path = inclusion_proof(index, size, lookup(&tree)).unwrap();
        let (mut leaf, mut root) = (leaves[index as usize], roots[size as usize]);
        let (mut claimed_index, mut claimed_size) = (index, size);
        match tamper {
            Tamper::PathBit(element, bit) => {
                prop_assume!(!path.is_empty());
                let element = element.index(path.len());
                flip_bit(&mut path[element], bit);
            }
            Tamper::LeafOrOldRootBit(bit) => flip_bit(&mut leaf, bit),
            Tamper::RootBit(bit) => flip_bit(&mut root, bit),
            Tamper::First(pick) => {
                let other = other_than(&pick, 0..size, index);
                prop_assume!(other.is_some());
                claimed_index = other.unwrap_or(index);
            }
            Tamper::Size(pick) => {
                claimed_size = other_than(&pick, index + 1..size + EXTRA + 1, size)
                    .expect("EXTRA leaves other sizes");
                root = roots[claimed_size as usize];
            }
        }
        let result = verify_inclusion(&leaf, claimed_index, claimed_size, &path, &root);
        prop_assert!(result.is_err(), "{:?} was accepted", tamper);
    }

    #[test]
    fn tampered_consistency_checks_fail(
        seed: u64,
        new_size in 1..=MAX_SIZE,
        old: Index,
        tamper in tamper(),
    ) {
        let leaves = leaves(seed, new_size + EXTRA);
        let tree = complete_subtrees(&leaves[..new_size as usize]);
        let roots = roots_by_size(&leaves);
        // From size 0 nothing is checked, so there is nothing to tamper with.
        let old_size = old.index(new_size as usize) as u64 + 1;
        let mut path = consistency_proof(old_size, new_size, lookup(&tree)).unwrap();
        let (mut old_root, mut new_root) = (roots[old_size as usize], roots[new_size as usize]);
        let (mut claimed_old, mut claimed_new) = (old_size, new_size);
        match tamper {
            Tamper::PathBit(element, bit) => {
                prop_assume!(!path.is_empty());
                let element = element.index(path.len());
                flip_bit(&mut path[element], bit);
            }
            Tamper::LeafOrOldRootBit(bit) => flip_bit(&mut old_root, bit),
            Tamper::RootBit(bit) => flip_bit(&mut new_root, bit),
            Tamper::First(pick) => {
                // Another old size, with that size's true root.
                let other = other_than(&pick, 0..new_size + 1, old_size);
                prop_assume!(other.is_some_and(|o| o > 0 || !path.is_empty()));
                claimed_old = other.unwrap_or(old_size);
                old_root = roots[claimed_old as usize];
            }
            Tamper::Size(pick) => {
                claimed_new = other_than(&pick, old_size..new_size + EXTRA + 1, new_size)
                    .expect("EXTRA leaves other sizes");
                new_root = roots[claimed_new as usize];
            }
        }
        let result = verify_consistency(claimed_old, claimed_new, &path, &old_root, &new_root);
        prop_assert!(result.is_err(), "{:?} was accepted", tamper);
    }
}
