//! Merkle hashing, compact-range appends, proof generation and verification.
//!
//! Baseline: raw SHA-256 via `cairn_tlog::hash::sha256` of the same input
//! sizes as the leaf and node hashes (129 and 65 bytes), measured at the
//! start of every group (`<group>/baseline_sha256/<len>B`) so that it runs
//! under the same machine load as what it is compared with. Report ratios,
//! not absolute rates (see `benches/README.md`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use cairn_tlog::compact::CompactRange;
use cairn_tlog::hash::{Hash, leaf_hash, node_hash, sha256};
use cairn_tlog::proof::{
    NodeId, consistency_plan, consistency_proof, inclusion_plan, inclusion_proof,
    root_from_inclusion_proof, tree_root, verify_consistency, verify_inclusion,
};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};

/// A Sigsum leaf is 128 bytes; its Merkle leaf hash input is 129.
const SIGSUM_LEAF_SIZE: usize = 128;
/// Leaves appended per `CompactRange` iteration.
const APPEND_LEAVES: u64 = 4096;
/// `log2` of the real tree whose nodes sit in a `HashMap`.
const REAL_TREE_LOG2: u32 = 16;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

/// Deterministic bytes: `byte(i) = i·31 + seed`.
fn filler<const N: usize>(seed: u8) -> [u8; N] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
}

/// The leaf hash of synthetic leaf `i`.
fn synthetic_leaf(i: u64) -> Hash {
    let mut leaf = [0u8; SIGSUM_LEAF_SIZE];
    leaf[..8].copy_from_slice(&i.to_be_bytes());
    leaf_hash(&leaf)
}

/// A "node hash" that costs nothing to produce: the node's coordinates laid
/// out in 32 bytes. Proof generation over it measures planning and assembly
/// only, not a storage read.
fn synthetic_node(id: NodeId) -> Result<Hash, Infallible> {
    let mut h = [0u8; 32];
    h[0] = id.level;
    h[1..9].copy_from_slice(&id.index.to_le_bytes());
    Ok(h)
}

/// Every complete subtree of the tree of `2^log2` leaves, as a storage
/// layer would hold them.
fn real_tree(log2: u32) -> (HashMap<NodeId, Hash>, Hash) {
    let mut range = CompactRange::new();
    let mut nodes = HashMap::with_capacity(2 << log2);
    for i in 0..1u64 << log2 {
        nodes.extend(range.append(synthetic_leaf(i)).expect("tree not full"));
    }
    (nodes, range.root())
}

/// The baseline, measured first in every group so that it shares the
/// group's machine load: raw SHA-256 of `len` bytes, one element per hash.
fn sha256_baseline(g: &mut BenchmarkGroup<'_, WallTime>, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31)).collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function(
        BenchmarkId::new("baseline_sha256", format!("{len}B")),
        |b| b.iter(|| sha256(black_box(&data))),
    );
}

fn hashing(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    let leaf: [u8; SIGSUM_LEAF_SIZE] = filler(3);
    let (left, right): ([u8; 32], [u8; 32]) = (filler(4), filler(5));
    sha256_baseline(&mut g, SIGSUM_LEAF_SIZE + 1);
    g.bench_function("leaf_hash/128B", |b| b.iter(|| leaf_hash(black_box(&leaf))));
    sha256_baseline(&mut g, 65);
    g.bench_function("node_hash", |b| {
        b.iter(|| node_hash(black_box(&left), black_box(&right)))
    });
    g.finish();
}

fn compact_range(c: &mut Criterion) {
    let mut g = c.benchmark_group("compact_range");
    let leaves: Vec<Hash> = (0..APPEND_LEAVES).map(synthetic_leaf).collect();
    sha256_baseline(&mut g, 65);
    g.throughput(Throughput::Elements(APPEND_LEAVES));
    g.bench_function(BenchmarkId::new("append", APPEND_LEAVES), |b| {
        b.iter(|| {
            let mut range = CompactRange::new();
            for leaf in &leaves {
                black_box(range.append(*leaf).expect("tree not full"));
            }
            range.root()
        })
    });
    g.finish();
}

/// A leaf two thirds into the tree and an old size that is not a power of
/// two (so the consistency proof has a folded right-edge element).
fn proof_points(size: u64) -> (u64, u64) {
    (size / 3 * 2 + 1, size / 5 * 3 + 7)
}

/// Proof generation with the free synthetic lookup: the cost of planning
/// (which subtrees) and assembly (collecting and folding them).
fn proof_generation(c: &mut Criterion) {
    let mut g = c.benchmark_group("proof_gen");
    sha256_baseline(&mut g, 65);
    for log2 in [10u32, 20, 30] {
        let size = 1u64 << log2;
        let (index, old_size) = proof_points(size);
        let label = format!("2^{log2}");
        g.bench_function(BenchmarkId::new("inclusion", &label), |b| {
            b.iter(|| inclusion_proof(black_box(index), black_box(size), synthetic_node))
        });
        g.bench_function(BenchmarkId::new("consistency", &label), |b| {
            b.iter(|| consistency_proof(black_box(old_size), black_box(size), synthetic_node))
        });
    }
    g.finish();

    // The plans alone: which nodes, no lookups.
    let mut g = c.benchmark_group("proof_plan");
    sha256_baseline(&mut g, 65);
    for log2 in [10u32, 20, 30] {
        let size = 1u64 << log2;
        let (index, old_size) = proof_points(size);
        let label = format!("2^{log2}");
        g.bench_function(BenchmarkId::new("inclusion", &label), |b| {
            b.iter(|| inclusion_plan(black_box(index), black_box(size)))
        });
        g.bench_function(BenchmarkId::new("consistency", &label), |b| {
            b.iter(|| consistency_plan(black_box(old_size), black_box(size)))
        });
    }
    g.finish();

    // The same over a real tree's nodes in a HashMap (SipHash per lookup).
    let (nodes, root) = real_tree(REAL_TREE_LOG2);
    let size = 1u64 << REAL_TREE_LOG2;
    let (index, old_size) = proof_points(size);
    let lookup = |id: NodeId| nodes.get(&id).copied().ok_or(id);
    assert_eq!(tree_root(size, lookup), Ok(root));
    let mut g = c.benchmark_group("proof_gen_hashmap");
    sha256_baseline(&mut g, 65);
    let label = format!("2^{REAL_TREE_LOG2}");
    g.bench_function(BenchmarkId::new("inclusion", &label), |b| {
        b.iter(|| inclusion_proof(black_box(index), black_box(size), lookup))
    });
    g.bench_function(BenchmarkId::new("consistency", &label), |b| {
        b.iter(|| consistency_proof(black_box(old_size), black_box(size), lookup))
    });
    g.finish();
}

/// Verification, per node hash of the proof (so the ratio to the raw
/// SHA-256(65 B) baseline is the hashing efficiency of the verifier).
fn proof_verification(c: &mut Criterion) {
    let mut g = c.benchmark_group("proof_verify");
    let (nodes, root) = real_tree(REAL_TREE_LOG2);
    let size = 1u64 << REAL_TREE_LOG2;
    let lookup = |id: NodeId| nodes.get(&id).copied().ok_or(id);
    let label = format!("2^{REAL_TREE_LOG2}");
    let (index, old_size) = proof_points(size);
    sha256_baseline(&mut g, 65);

    let leaf = synthetic_leaf(index);
    let path = inclusion_proof(index, size, lookup).expect("leaf in tree");
    verify_inclusion(&leaf, index, size, &path, &root).expect("valid proof");
    g.throughput(Throughput::Elements(path.len() as u64));
    g.bench_function(BenchmarkId::new("inclusion", &label), |b| {
        b.iter(|| verify_inclusion(black_box(&leaf), index, size, black_box(&path), &root))
    });

    // Inclusion in a 2^30 tree: the path is synthetic, the root the one it
    // leads to, so the check passes and the full path is hashed.
    let big = 1u64 << 30;
    let (big_index, _) = proof_points(big);
    let big_path = inclusion_proof(big_index, big, synthetic_node).expect("leaf in tree");
    let big_root = root_from_inclusion_proof(&leaf, big_index, big, &big_path).expect("path ok");
    g.throughput(Throughput::Elements(big_path.len() as u64));
    g.bench_function(BenchmarkId::new("inclusion", "2^30"), |b| {
        b.iter(|| {
            verify_inclusion(
                black_box(&leaf),
                big_index,
                big,
                black_box(&big_path),
                &big_root,
            )
        })
    });

    let old_root = tree_root(old_size, lookup).expect("nodes present");
    let path = consistency_proof(old_size, size, lookup).expect("sizes ordered");
    verify_consistency(old_size, size, &path, &old_root, &root).expect("valid proof");
    // The verifier hashes along both the old and the new root: count the
    // proof's hashes as the unit, as for inclusion.
    g.throughput(Throughput::Elements(path.len() as u64));
    g.bench_function(BenchmarkId::new("consistency", &label), |b| {
        b.iter(|| verify_consistency(old_size, size, black_box(&path), &old_root, &root))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = hashing, compact_range, proof_generation, proof_verification
}
criterion_main!(benches);
