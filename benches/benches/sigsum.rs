//! Sigsum: leaf signatures, proof files and get-tree-head parsing.
//!
//! Baseline: raw Ed25519 verification with `ed25519-dalek` of the same
//! messages and signatures (key decoded once, outside the loop), and raw
//! SHA-256 of the parsed text's length, measured at the start of every
//! group (`<group>/baseline_*`) so that it runs under the same machine load
//! as what it is compared with. Report ratios, not absolute rates (see
//! `benches/README.md`).

use std::hint::black_box;
use std::time::Duration;

use cairn_sigsum::api::InclusionProof;
use cairn_sigsum::crypto::{Hash, PublicKey, SigningKey};
use cairn_sigsum::leaf::{Leaf, signed_bytes};
use cairn_sigsum::policy::Policy;
use cairn_sigsum::proof::{SigsumProof, message_from_data};
use cairn_sigsum::tree_head::{Cosignature, CosignedTreeHead, TreeHead};
use cairn_tlog::hash::sha256;
use cairn_tlog::proof::{NodeId, inclusion_proof, root_from_inclusion_proof};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Verifier;

/// A log of about a million leaves: a 21-hash inclusion path.
const TREE_SIZE: u64 = 1_234_567;
const LEAF_INDEX: u64 = 987_654;
const COSIGNED_AT: u64 = 1_750_000_000;

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

/// A signed message as the raw baseline verifies it.
struct RawSignature {
    key: ed25519_dalek::VerifyingKey,
    key_bytes: [u8; 32],
    message: Vec<u8>,
    signature: ed25519_dalek::Signature,
}

impl RawSignature {
    fn new(key: &PublicKey, message: &[u8], signature: &cairn_sigsum::Signature) -> Self {
        let raw = RawSignature {
            key: ed25519_dalek::VerifyingKey::from_bytes(&key.0).expect("valid key"),
            key_bytes: key.0,
            message: message.to_vec(),
            signature: ed25519_dalek::Signature::from_bytes(&signature.0),
        };
        assert!(raw.verify());
        raw
    }

    /// Verification with the key already decoded.
    fn verify(&self) -> bool {
        self.key.verify(&self.message, &self.signature).is_ok()
    }

    /// Verification that first decodes (decompresses) the key, as every
    /// verification from a `PublicKey`'s bytes must.
    fn decode_and_verify(&self) -> bool {
        ed25519_dalek::VerifyingKey::from_bytes(&self.key_bytes)
            .is_ok_and(|k| k.verify(&self.message, &self.signature).is_ok())
    }
}

/// A realistic v2 proof file: one submitter, one log, two witnesses, a
/// policy requiring both; deterministic seeds throughout.
struct Fixture {
    message: Hash,
    submitter: PublicKey,
    leaf: Leaf,
    policy: Policy,
    proof_text: String,
    tree_head_text: String,
    /// The four signatures proof verification checks: leaf, log, 2 witnesses.
    raw: Vec<RawSignature>,
}

fn fixture() -> Fixture {
    let submitter = SigningKey::from_seed(&[0x53; 32]);
    let log = SigningKey::from_seed(&[0x4c; 32]);
    let witnesses = [
        SigningKey::from_seed(&[0x57; 32]),
        SigningKey::from_seed(&[0x58; 32]),
    ];
    let message = message_from_data(b"cairn benchmark artefact\n");
    let leaf = Leaf::sign(&submitter, &message);

    // Any path will do, as long as the root is the one it leads to.
    let node = |id: NodeId| -> Result<Hash, ()> {
        let mut coords = [0u8; 9];
        coords[0] = id.level;
        coords[1..].copy_from_slice(&id.index.to_be_bytes());
        Ok(sha256(&coords))
    };
    let path = inclusion_proof(LEAF_INDEX, TREE_SIZE, node).expect("leaf in tree");
    let root_hash = root_from_inclusion_proof(&leaf.leaf_hash(), LEAF_INDEX, TREE_SIZE, &path)
        .expect("path length");
    let th = TreeHead {
        size: TREE_SIZE,
        root_hash,
    };
    let log_hash = log.public_key().key_hash();
    let signed = th.sign(&log);
    let cosignatures: Vec<Cosignature> = witnesses
        .iter()
        .enumerate()
        .map(|(i, w)| Cosignature::sign(w, &th, &log_hash, COSIGNED_AT + i as u64).expect("ts"))
        .collect();

    let mut raw = vec![
        RawSignature::new(
            &submitter.public_key(),
            &signed_bytes(&leaf.checksum),
            &leaf.signature,
        ),
        RawSignature::new(
            &log.public_key(),
            signed.checkpoint_body(&log.public_key()).as_bytes(),
            &signed.signature,
        ),
    ];
    for (w, c) in witnesses.iter().zip(&cosignatures) {
        let msg = th.cosigned_message(&log_hash, c.timestamp);
        raw.push(RawSignature::new(
            &w.public_key(),
            msg.as_bytes(),
            &c.signature,
        ));
    }

    let tree_head = CosignedTreeHead::new(signed, cosignatures).expect("distinct witnesses");
    let proof = SigsumProof {
        log_key_hash: log_hash,
        submitter_key_hash: leaf.key_hash,
        leaf_signature: leaf.signature,
        short_checksum: None,
        tree_head: tree_head.clone(),
        inclusion: InclusionProof {
            leaf_index: LEAF_INDEX,
            path,
        },
    };
    let policy_text = format!(
        "log {}\nwitness W1 {}\nwitness W2 {}\ngroup both all W1 W2\nquorum both\n",
        log.public_key().to_hex(),
        witnesses[0].public_key().to_hex(),
        witnesses[1].public_key().to_hex(),
    );
    let policy = Policy::parse(policy_text.as_bytes()).expect("valid policy");
    let fx = Fixture {
        message,
        submitter: submitter.public_key(),
        leaf,
        policy,
        proof_text: proof.to_ascii(),
        tree_head_text: tree_head.to_ascii(),
        raw,
    };
    let parsed = SigsumProof::parse(fx.proof_text.as_bytes()).expect("proof parses");
    assert_eq!(parsed, proof);
    parsed
        .verify(&fx.message, &[fx.submitter], &fx.policy)
        .expect("proof verifies");
    // Dropping either cosignature must break the quorum, or the bench would
    // not measure a policy requiring both.
    let one = CosignedTreeHead::new(signed, vec![tree_head.cosignatures()[0]]).expect("one");
    let weak = SigsumProof {
        tree_head: one,
        ..proof
    };
    assert!(
        weak.verify(&fx.message, &[fx.submitter], &fx.policy)
            .is_err()
    );
    fx
}

/// Raw Ed25519 baselines, measured first in each group so that they share
/// the group's machine load: the leaf signature alone (key decoded once,
/// and decoded each time), or all four signatures a proof needs.
fn ed25519_baseline(g: &mut BenchmarkGroup<'_, WallTime>, fx: &Fixture, all_four: bool) {
    g.throughput(Throughput::Elements(1));
    if all_four {
        g.bench_function("baseline_ed25519_verify/x4", |b| {
            b.iter(|| black_box(&fx.raw).iter().all(RawSignature::verify))
        });
    } else {
        let leaf_sig = &fx.raw[0];
        g.bench_function("baseline_ed25519_verify/leaf", |b| {
            b.iter(|| black_box(leaf_sig).verify())
        });
        g.bench_function("baseline_ed25519_decode_verify/leaf", |b| {
            b.iter(|| black_box(leaf_sig).decode_and_verify())
        });
    }
}

fn leaf_verify(c: &mut Criterion, fx: &Fixture) {
    let mut g = c.benchmark_group("leaf");
    ed25519_baseline(&mut g, fx, false);
    g.bench_function("verify", |b| {
        b.iter(|| black_box(&fx.leaf).verify(black_box(&fx.submitter)))
    });
    g.finish();
}

fn proof_file(c: &mut Criterion, fx: &Fixture) {
    let mut g = c.benchmark_group("proof");
    let submitters = [fx.submitter];
    let parsed = SigsumProof::parse(fx.proof_text.as_bytes()).expect("proof parses");
    ed25519_baseline(&mut g, fx, true);
    g.bench_function("parse_verify/v2_2wit", |b| {
        b.iter(|| {
            let p = SigsumProof::parse(black_box(fx.proof_text.as_bytes())).expect("parses");
            p.verify(&fx.message, &submitters, &fx.policy)
        })
    });
    g.bench_function("verify/v2_2wit", |b| {
        b.iter(|| black_box(&parsed).verify(&fx.message, &submitters, &fx.policy))
    });
    g.bench_function("parse/v2_2wit", |b| {
        b.iter(|| SigsumProof::parse(black_box(fx.proof_text.as_bytes())))
    });
    g.finish();
}

fn tree_head_parse(c: &mut Criterion, fx: &Fixture) {
    let mut g = c.benchmark_group("get_tree_head");
    let text = fx.tree_head_text.as_bytes();
    CosignedTreeHead::parse(text).expect("parses");
    // Raw SHA-256 of as many bytes, as a yardstick for this machine.
    let same_size = vec![b'a'; text.len()];
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function(format!("baseline_sha256/{}B", text.len()), |b| {
        b.iter(|| sha256(black_box(&same_size)))
    });
    g.bench_function("parse/2_cosignatures", |b| {
        b.iter(|| CosignedTreeHead::parse(black_box(text)))
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let fx = fixture();
    leaf_verify(c, &fx);
    proof_file(c, &fx);
    tree_head_parse(c, &fx);
}

criterion_group! {
    name = sigsum;
    config = config();
    targets = benches
}
criterion_main!(sigsum);
