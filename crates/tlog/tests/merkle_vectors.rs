//! Known-answer tests for Merkle roots, proof generation and proof
//! verification. Vector files exercised (paths relative to
//! `testdata/vectors`, see its README):
//!
//! * `derived/merkle-rfc6962.json`: roots for sizes 0–33; every inclusion and
//!   consistency path, generated from the leaf hashes byte for byte and
//!   verified; every invalid case, rejected with its exact error.
//! * `sigsum-rs/merkle/inclusion-valid.json`, `inclusion-invalid.json`: the
//!   CCTV inclusion cases (base64), accepted and rejected respectively.
//! * `azul/argon2020-rfc6962/*`: recorded responses of Google's Argon2020 CT
//!   log at tree size 961,984,011: inclusion of entry 10000 and consistency
//!   3654490 → 961984011 against the STH root, and their bit-flipped forms.
//! * `derived/sigsum-v1-deterministic.json`: leaf hashes, `roots_by_size_hex`,
//!   `inclusion_proofs_size7` and `consistency_proofs` (Sigsum ASCII responses).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cairn_testvectors::{JsonExt, json, unhex32};
use cairn_tlog::compact::{CompactRange, right_edge_nodes};
use cairn_tlog::proof::{
    NodeId, ProofError, consistency_plan, consistency_proof, inclusion_plan, inclusion_proof,
    tree_root, verify_consistency, verify_inclusion,
};
use cairn_tlog::{Hash, leaf_hash};
use serde_json::Value;

/// Every complete subtree of a tree, computed bottom-up from its leaves; a
/// stand-in for the hash tiles the services read proofs from.
struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    fn new(leaves: &[Hash]) -> Self {
        let mut levels = vec![leaves.to_vec()];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let above = below
                .chunks_exact(2)
                .map(|pair| cairn_tlog::node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// The hash of a complete subtree; a node the tree lacks is an error, so
    /// a plan asking for one fails the test.
    fn lookup(&self, id: NodeId) -> Result<Hash, NodeId> {
        let index = usize::try_from(id.index).map_err(|_| id)?;
        self.levels
            .get(usize::from(id.level))
            .and_then(|level| level.get(index))
            .copied()
            .ok_or(id)
    }
}

fn hex_hashes(values: &[Value]) -> Vec<Hash> {
    values
        .iter()
        .map(|v| unhex32(v.as_str().expect("hex string")))
        .collect()
}

fn b64_hash(s: &str) -> Hash {
    BASE64
        .decode(s)
        .expect("base64")
        .try_into()
        .expect("32 bytes")
}

fn b64_hashes(values: &[Value]) -> Vec<Hash> {
    values
        .iter()
        .map(|v| b64_hash(v.as_str().expect("base64 string")))
        .collect()
}

fn compact_root(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaves {
        range.append(*leaf).unwrap();
    }
    range.root()
}

fn flip_bit(hash: &Hash, bit: usize) -> Hash {
    let mut flipped = *hash;
    flipped[bit / 8] ^= 1 << (bit % 8);
    flipped
}

// ---------------------------------------------------------------------------
// derived/merkle-rfc6962.json

struct Rfc6962 {
    vectors: Value,
    leaves: Vec<Hash>,
    roots: Vec<Hash>,
}

fn rfc6962() -> Rfc6962 {
    let vectors = json("derived/merkle-rfc6962.json");
    let leaves = hex_hashes(vectors.arr_at("leaf_hash_hex"));
    let roots = (0..=leaves.len())
        .map(|size| unhex32(vectors["root_hex_by_size"].str_at(&size.to_string())))
        .collect();
    Rfc6962 {
        vectors,
        leaves,
        roots,
    }
}

#[test]
fn rfc6962_leaf_hashes_are_hashes_of_single_bytes() {
    let v = rfc6962();
    assert_eq!(v.leaves.len(), 33);
    for (i, leaf) in v.leaves.iter().enumerate() {
        assert_eq!(*leaf, leaf_hash(&[i as u8]));
    }
}

#[test]
fn rfc6962_roots_match_for_every_size_from_0_to_33() {
    let v = rfc6962();
    let tree = Tree::new(&v.leaves);
    for (size, root) in v.roots.iter().enumerate() {
        assert_eq!(
            tree_root(size as u64, |id| tree.lookup(id)),
            Ok(*root),
            "size {size}"
        );
        assert_eq!(compact_root(&v.leaves[..size]), *root, "size {size}");
    }
}

#[test]
fn rfc6962_inclusion_paths_are_generated_byte_for_byte_and_verify() {
    let v = rfc6962();
    let cases = v.vectors.arr_at("inclusion");
    assert_eq!(cases.len(), 189);
    for case in cases {
        let (index, size) = (case.u64_at("index"), case.u64_at("size"));
        let expected = hex_hashes(case.arr_at("path_hex"));
        let tree = Tree::new(&v.leaves[..size as usize]);
        let generated = inclusion_proof(index, size, |id| tree.lookup(id)).unwrap();
        assert_eq!(generated, expected, "index {index} size {size}");
        let leaf = &v.leaves[index as usize];
        let root = &v.roots[size as usize];
        assert_eq!(verify_inclusion(leaf, index, size, &expected, root), Ok(()));
    }
}

#[test]
fn rfc6962_consistency_paths_are_generated_byte_for_byte_and_verify() {
    let v = rfc6962();
    let cases = v.vectors.arr_at("consistency");
    assert_eq!(cases.len(), 155);
    for case in cases {
        let (old, new) = (case.u64_at("old_size"), case.u64_at("new_size"));
        let expected = hex_hashes(case.arr_at("path_hex"));
        let tree = Tree::new(&v.leaves[..new as usize]);
        let generated = consistency_proof(old, new, |id| tree.lookup(id)).unwrap();
        assert_eq!(generated, expected, "{old} -> {new}");
        let (old_root, new_root) = (&v.roots[old as usize], &v.roots[new as usize]);
        assert_eq!(
            verify_consistency(old, new, &expected, old_root, new_root),
            Ok(())
        );
    }
}

#[test]
fn rfc6962_invalid_inclusion_cases_are_rejected_with_the_right_error() {
    let v = rfc6962();
    let cases = v
        .vectors
        .arr_at("invalid")
        .iter()
        .filter(|c| c.str_at("kind") == "inclusion");
    let mut seen = 0;
    for case in cases {
        let (index, size) = (case.u64_at("index"), case.u64_at("size"));
        let path = hex_hashes(case.arr_at("path_hex"));
        let leaf = unhex32(case.str_at("leaf_hash_hex"));
        let root = unhex32(case.str_at("root_hex"));
        let why = case.str_at("why");
        let wrong_length = || ProofError::WrongPathLength {
            expected: inclusion_plan(index, size).unwrap().len(),
            got: path.len(),
        };
        let expected = match why {
            "index >= size" => ProofError::IndexOutOfRange { index, size },
            "path too long (extra element)" | "path too short" | "size 1 with non-empty path" => {
                wrong_length()
            }
            "wrong leaf index (path for 5 used as 4)" | "path order reversed" => {
                ProofError::RootMismatch
            }
            other => panic!("unknown invalid inclusion case {other:?}"),
        };
        assert_eq!(
            verify_inclusion(&leaf, index, size, &path, &root),
            Err(expected),
            "{why}"
        );
        seen += 1;
    }
    assert_eq!(seen, 6);
}

#[test]
fn rfc6962_invalid_consistency_cases_are_rejected_with_the_right_error() {
    let v = rfc6962();
    let cases = v
        .vectors
        .arr_at("invalid")
        .iter()
        .filter(|c| c.str_at("kind") == "consistency");
    let mut seen = 0;
    for case in cases {
        let (old, new) = (case.u64_at("old_size"), case.u64_at("new_size"));
        let path = hex_hashes(case.arr_at("path_hex"));
        let why = case.str_at("why");
        let expected = match why {
            "old == new but non-empty path" | "old == 0 but non-empty path" => {
                ProofError::NonEmptyTrivialProof {
                    old_size: old,
                    new_size: new,
                    len: path.len(),
                }
            }
            "truncated path" | "wrong old size claimed (path for 3->7 used as 4->7)" => {
                ProofError::WrongPathLength {
                    expected: consistency_plan(old, new).unwrap().len(),
                    got: path.len(),
                }
            }
            "old > new" => ProofError::OldSizeAboveNewSize {
                old_size: old,
                new_size: new,
            },
            other => panic!("unknown invalid consistency case {other:?}"),
        };
        // The cases carry no roots: use the true ones, so only the proof is wrong.
        let root = |size: u64| v.roots[size as usize];
        let result = verify_consistency(old, new, &path, &root(old), &root(new));
        assert_eq!(result, Err(expected), "{why}");
        seen += 1;
    }
    assert_eq!(seen, 5);
}

// ---------------------------------------------------------------------------
// sigsum-rs/merkle (CCTV)

fn check_cctv_inclusion_file(rel: &str, should_verify: bool) {
    let cases = json(rel);
    let cases = cases.as_array().expect("array of cases");
    assert!(!cases.is_empty());
    for case in cases {
        let leaf = b64_hash(case.str_at("leaf_hash"));
        let (index, size) = (case.u64_at("leaf_index"), case.u64_at("tree_size"));
        let root = b64_hash(case.str_at("root_hash"));
        let path = b64_hashes(case.arr_at("inclusion_path"));
        let result = verify_inclusion(&leaf, index, size, &path, &root);
        if should_verify {
            assert_eq!(result, Ok(()), "{rel}: index {index} size {size}");
        } else {
            // Every invalid case mutates the leaf hash only.
            assert_eq!(
                result,
                Err(ProofError::RootMismatch),
                "{rel}: index {index} size {size}"
            );
        }
    }
}

#[test]
fn cctv_valid_inclusion_proofs_verify() {
    check_cctv_inclusion_file("sigsum-rs/merkle/inclusion-valid.json", true);
}

#[test]
fn cctv_inclusion_proofs_with_mutated_leaf_hashes_are_rejected() {
    check_cctv_inclusion_file("sigsum-rs/merkle/inclusion-invalid.json", false);
}

// ---------------------------------------------------------------------------
// azul/argon2020-rfc6962

const ARGON: &str = "azul/argon2020-rfc6962";
const ARGON_ENTRY: u64 = 10000;
const ARGON_OLD_SIZE: u64 = 3_654_490;

/// (tree size, root) of the recorded signed tree head.
fn argon_sth() -> (u64, Hash) {
    let sth = json(&format!("{ARGON}/get-sth"));
    (
        sth.u64_at("tree_size"),
        b64_hash(sth.str_at("sha256_root_hash")),
    )
}

fn argon_entry_leaf_hash() -> Hash {
    let entries = json(&format!("{ARGON}/get-entries-start-10000-end-10000"));
    let [entry] = entries.arr_at("entries").as_slice() else {
        panic!("expected exactly one entry");
    };
    leaf_hash(
        &BASE64
            .decode(entry.str_at("leaf_input"))
            .expect("base64 leaf_input"),
    )
}

fn argon_inclusion_path() -> Vec<Hash> {
    let proof = json(&format!(
        "{ARGON}/get-proof-by-hash-tree-size-961984011-hash-nCs3mfIydh9x4CKyQ-2Bu2xtmpxmFggA5MLymHwNQSlLg-3D"
    ));
    assert_eq!(proof.u64_at("leaf_index"), ARGON_ENTRY);
    b64_hashes(proof.arr_at("audit_path"))
}

fn argon_consistency_path() -> Vec<Hash> {
    let proof = json(&format!(
        "{ARGON}/get-sth-consistency-first-3654490-second-961984011"
    ));
    b64_hashes(proof.arr_at("consistency"))
}

/// The old root a consistency proof commits to, for an old size that is not
/// a power of two. The proof hashes lying wholly inside the old tree are
/// exactly the old tree's right-edge subtrees, so a compact range built from
/// them has the old root. This derives the root without the verifier's walk.
fn old_root_committed_by(old_size: u64, new_size: u64, path: &[Hash]) -> Hash {
    let plan = consistency_plan(old_size, new_size).unwrap();
    let inside_old: BTreeMap<NodeId, Hash> = plan
        .elements()
        .zip(path)
        .filter_map(|(nodes, hash)| match nodes {
            [id] if id.leaf_range().unwrap().end <= old_size => Some((*id, *hash)),
            _ => None,
        })
        .collect();
    let edge: Vec<Hash> = right_edge_nodes(old_size)
        .map(|id| inside_old[&id])
        .collect();
    assert_eq!(edge.len(), inside_old.len());
    CompactRange::from_parts(old_size, edge).unwrap().root()
}

#[test]
fn argon2020_entry_leaf_hash_is_the_one_the_proof_was_requested_for() {
    // The get-proof-by-hash file name carries the leaf hash, URL-escaped with
    // `-` for `%` (`-2B` is `+`, `-3D` is `=`).
    let requested = b64_hash("nCs3mfIydh9x4CKyQ+u2xtmpxmFggA5MLymHwNQSlLg=");
    assert_eq!(argon_entry_leaf_hash(), requested);
}

#[test]
fn argon2020_inclusion_proof_of_entry_10000_verifies_against_the_sth() {
    let (size, root) = argon_sth();
    assert_eq!(size, 961_984_011);
    let path = argon_inclusion_path();
    let leaf = argon_entry_leaf_hash();
    assert_eq!(
        verify_inclusion(&leaf, ARGON_ENTRY, size, &path, &root),
        Ok(())
    );
}

#[test]
fn argon2020_inclusion_proof_with_any_flipped_bit_fails() {
    let (size, root) = argon_sth();
    let path = argon_inclusion_path();
    let leaf = argon_entry_leaf_hash();
    let fails = |leaf: &Hash, index: u64, path: &[Hash], root: &Hash| {
        verify_inclusion(leaf, index, size, path, root).is_err()
    };
    for bit in [0, 77, 255] {
        assert!(fails(&flip_bit(&leaf, bit), ARGON_ENTRY, &path, &root));
        assert!(fails(&leaf, ARGON_ENTRY, &path, &flip_bit(&root, bit)));
        for i in 0..path.len() {
            let mut bad = path.clone();
            bad[i] = flip_bit(&bad[i], bit);
            assert!(
                fails(&leaf, ARGON_ENTRY, &bad, &root),
                "element {i} bit {bit}"
            );
        }
    }
    assert!(fails(&leaf, ARGON_ENTRY + 1, &path, &root));
}

#[test]
fn argon2020_consistency_proof_verifies_against_the_sth() {
    let (size, root) = argon_sth();
    let path = argon_consistency_path();
    let old_root = old_root_committed_by(ARGON_OLD_SIZE, size, &path);
    assert_eq!(
        verify_consistency(ARGON_OLD_SIZE, size, &path, &old_root, &root),
        Ok(())
    );
}

#[test]
fn argon2020_consistency_proof_with_any_flipped_bit_fails() {
    let (size, root) = argon_sth();
    let path = argon_consistency_path();
    let old_root = old_root_committed_by(ARGON_OLD_SIZE, size, &path);
    let verify = |path: &[Hash], old_root: &Hash, root: &Hash| {
        verify_consistency(ARGON_OLD_SIZE, size, path, old_root, root)
    };
    for bit in [0, 100, 255] {
        assert_eq!(
            verify(&path, &flip_bit(&old_root, bit), &root),
            Err(ProofError::OldRootMismatch)
        );
        assert_eq!(
            verify(&path, &old_root, &flip_bit(&root, bit)),
            Err(ProofError::NewRootMismatch)
        );
        for i in 0..path.len() {
            let mut bad = path.clone();
            bad[i] = flip_bit(&bad[i], bit);
            assert!(
                verify(&bad, &old_root, &root).is_err(),
                "element {i} bit {bit}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// derived/sigsum-v1-deterministic.json

/// Minimal parse of a Sigsum proof response (`sigsum-protocol.md` §2, §6):
/// an optional `leaf_index=` line, then `node_hash=` lines, each LF-terminated.
fn parse_sigsum_proof(response: &str) -> (Option<u64>, Vec<Hash>) {
    assert!(
        response.ends_with('\n'),
        "unterminated response {response:?}"
    );
    let mut leaf_index = None;
    let mut path = Vec::new();
    for line in response.split_terminator('\n') {
        match line.split_once('=') {
            Some(("leaf_index", v)) if path.is_empty() => leaf_index = Some(v.parse().unwrap()),
            Some(("node_hash", v)) => path.push(unhex32(v)),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    (leaf_index, path)
}

struct SigsumScenario {
    vectors: Value,
    leaves: Vec<Hash>,
    roots: Vec<Hash>,
}

fn sigsum_scenario() -> SigsumScenario {
    let vectors = json("derived/sigsum-v1-deterministic.json");
    let leaves: Vec<Hash> = vectors
        .arr_at("leaves")
        .iter()
        .map(|leaf| unhex32(leaf.str_at("leaf_hash_hex")))
        .collect();
    let roots = (0..=leaves.len())
        .map(|size| unhex32(vectors["roots_by_size_hex"].str_at(&size.to_string())))
        .collect();
    SigsumScenario {
        vectors,
        leaves,
        roots,
    }
}

#[test]
fn sigsum_scenario_leaf_hashes_hash_the_leaf_bytes() {
    let s = sigsum_scenario();
    assert_eq!(s.leaves.len(), 7);
    for (leaf, hash) in s.vectors.arr_at("leaves").iter().zip(&s.leaves) {
        let bytes = cairn_testvectors::unhex(leaf.str_at("leaf_bytes_hex"));
        assert_eq!(bytes.len(), 128);
        assert_eq!(leaf_hash(&bytes), *hash);
    }
}

#[test]
fn sigsum_scenario_roots_match_for_every_size() {
    let s = sigsum_scenario();
    let tree = Tree::new(&s.leaves);
    assert_eq!(s.roots[0], unhex32(s.vectors.str_at("empty_tree_root_hex")));
    for (size, root) in s.roots.iter().enumerate() {
        assert_eq!(
            tree_root(size as u64, |id| tree.lookup(id)),
            Ok(*root),
            "size {size}"
        );
        assert_eq!(compact_root(&s.leaves[..size]), *root, "size {size}");
    }
}

#[test]
fn sigsum_scenario_inclusion_responses_are_generated_exactly_and_verify() {
    let s = sigsum_scenario();
    let tree = Tree::new(&s.leaves);
    let size = s.leaves.len() as u64;
    let cases = s.vectors.arr_at("inclusion_proofs_size7");
    assert_eq!(cases.len(), 7);
    for case in cases {
        let index = case.u64_at("leaf_index");
        let leaf = unhex32(case.str_at("leaf_hash_hex"));
        assert_eq!(leaf, s.leaves[index as usize]);
        let (response_index, path) = parse_sigsum_proof(case.str_at("response"));
        assert_eq!(response_index, Some(index));
        assert_eq!(
            inclusion_proof(index, size, |id| tree.lookup(id)),
            Ok(path.clone())
        );
        assert_eq!(
            verify_inclusion(&leaf, index, size, &path, &s.roots[7]),
            Ok(())
        );
    }
}

#[test]
fn sigsum_scenario_consistency_responses_are_generated_exactly_and_verify() {
    let s = sigsum_scenario();
    let tree = Tree::new(&s.leaves);
    let cases = s.vectors.arr_at("consistency_proofs");
    assert_eq!(cases.len(), 21);
    for case in cases {
        let (old, new) = (case.u64_at("old_size"), case.u64_at("new_size"));
        let (leaf_index, path) = parse_sigsum_proof(case.str_at("response"));
        assert_eq!(leaf_index, None);
        let generated = consistency_proof(old, new, |id| tree.lookup(id));
        assert_eq!(generated, Ok(path.clone()), "{old} -> {new}");
        let (old_root, new_root) = (&s.roots[old as usize], &s.roots[new as usize]);
        assert_eq!(
            verify_consistency(old, new, &path, old_root, new_root),
            Ok(())
        );
    }
}
