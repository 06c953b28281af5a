//! Proof files: parsing, byte-exact serialization and offline verification.
//!
//! Vectors exercised (paths relative to `testdata/vectors`):
//! * `derived/sigsum-v1-deterministic.json` — all 9 `proof_cases`, with the
//!   result sigsum-go gives (`expected_under_sigsum_go_semantics`); where
//!   sigsum-rs 0.3.0 differs, the test name says so.
//! * `sigsum-go/go-test-proofs.json` — both `verify_cases` (raw-hash mode,
//!   message `' '×26 + "foo-4\n"`), the one-witness proof without its
//!   cosignature, all `roundtrip_cases` (v2 incl. size 1, v1 → v2).
//! * `sigsum-rs/readme-proof.json` with the builtin policies in
//!   `sigsum-go/policy/` — valid under `sigsum-test-2025-3` only, and not
//!   for other data.
//! * `sigsum-go/doc-tools-md-examples.json` — both proof files parse and
//!   round-trip, their Merkle data verifies, and their v0 leaf signatures
//!   make verification fail.

use cairn_sigsum::ascii::Reason;
use cairn_sigsum::crypto::hash;
use cairn_sigsum::policy::Policy;
use cairn_sigsum::proof::{SigsumProof, VerifyError, message_from_data};
use cairn_sigsum::{Hash, PublicKey};
use cairn_testvectors::{JsonExt, bytes, json, unhex32};
use serde_json::Value;

fn policy(text: &str) -> Policy {
    Policy::parse(text.as_bytes()).unwrap_or_else(|e| panic!("policy {text:?}: {e}"))
}

fn builtin(name: &str) -> Policy {
    let rel = format!("sigsum-go/policy/{name}.builtin-policy");
    Policy::parse(&bytes(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn parse(text: &str) -> SigsumProof {
    SigsumProof::parse(text.as_bytes()).unwrap_or_else(|e| panic!("proof does not parse: {e}"))
}

// ------------------------------------------------- derived proof_cases

fn derived_case(name: &str) -> Value {
    let v = json("derived/sigsum-v1-deterministic.json");
    v.arr_at("proof_cases")
        .iter()
        .find(|c| c.str_at("name") == name)
        .unwrap_or_else(|| panic!("no proof case {name:?}"))
        .clone()
}

/// Parses and verifies a derived case; a parse error is returned as its
/// reason, verification as its result.
fn run_derived(name: &str) -> Result<Result<(), VerifyError>, Reason> {
    let c = derived_case(name);
    let message = unhex32(c.str_at("message_hex"));
    assert_eq!(message, message_from_data(c.str_at("data_utf8").as_bytes()));
    let submitter = PublicKey(unhex32(c.str_at("submitter_public_key_hex")));
    let pol = policy(c.str_at("policy"));
    let text = c.str_at("proof");
    let proof = SigsumProof::parse(text.as_bytes()).map_err(|e| e.reason)?;
    assert_eq!(
        proof.to_ascii(),
        text,
        "{name}: serialization is byte-exact"
    );
    Ok(proof.verify(&message, &[submitter], &pol))
}

#[test]
fn derived_cases_are_all_covered_here() {
    let v = json("derived/sigsum-v1-deterministic.json");
    let names: Vec<&str> = v
        .arr_at("proof_cases")
        .iter()
        .map(|c| c.str_at("name"))
        .collect();
    assert_eq!(
        names,
        [
            "valid-2of2",
            "valid-size1-quorum-none",
            "wrong-message",
            "bad-cosig-known-witness-quorum-any",
            "bad-cosig-known-witness-quorum-2of2",
            "duplicate-cosignature-keyhash",
            "no-cosignatures-quorum-none",
            "no-cosignatures-quorum-2of2",
            "unknown-log",
        ]
    );
}

#[test]
fn valid_2of2_proof_verifies() {
    assert_eq!(run_derived("valid-2of2"), Ok(Ok(())));
}

#[test]
fn size_1_proof_without_inclusion_block_verifies_like_sigsum_go_unlike_sigsum_rs() {
    let c = derived_case("valid-size1-quorum-none");
    assert!(!c.str_at("proof").contains("leaf_index"));
    assert_eq!(run_derived("valid-size1-quorum-none"), Ok(Ok(())));
}

#[test]
fn wrong_message_fails_at_the_leaf_signature() {
    assert_eq!(
        run_derived("wrong-message"),
        Ok(Err(VerifyError::BadLeafSignature))
    );
}

#[test]
fn invalid_cosignature_from_known_witness_counts_as_absent_like_sigsum_go() {
    // sigsum-rs 0.3.0 rejects this proof ("bad witness cosignature").
    assert_eq!(
        run_derived("bad-cosig-known-witness-quorum-any"),
        Ok(Ok(()))
    );
}

#[test]
fn invalid_cosignature_from_known_witness_leaves_a_2of2_quorum_unmet() {
    assert_eq!(
        run_derived("bad-cosig-known-witness-quorum-2of2"),
        Ok(Err(VerifyError::QuorumNotSatisfied {
            total: 2,
            verified: 1,
            invalid: 1
        }))
    );
}

#[test]
fn duplicate_cosignature_key_hash_is_rejected_at_parse_like_sigsum_go_unlike_sigsum_rs() {
    let dup = derived_case("duplicate-cosignature-keyhash");
    let e = SigsumProof::parse(dup.str_at("proof").as_bytes()).unwrap_err();
    assert_eq!(e.line, 10);
    assert_eq!(e.key, "cosignature");
    assert!(matches!(e.reason, Reason::DuplicateCosignature(k)
        if k.to_hex() == "9c889e4221530204430bcf551b445a0036581745a3b7d3461123b9b91beabef8"));
}

#[test]
fn no_cosignatures_satisfy_quorum_none() {
    assert_eq!(run_derived("no-cosignatures-quorum-none"), Ok(Ok(())));
}

#[test]
fn no_cosignatures_fail_a_2of2_quorum() {
    assert_eq!(
        run_derived("no-cosignatures-quorum-2of2"),
        Ok(Err(VerifyError::QuorumNotSatisfied {
            total: 0,
            verified: 0,
            invalid: 0
        }))
    );
}

#[test]
fn log_missing_from_the_policy_is_an_unknown_log() {
    let r = run_derived("unknown-log");
    assert!(
        matches!(&r, Ok(Err(VerifyError::UnknownLog(k)))
            if k.to_hex() == "b4bd9412f7f3135a7583e79a92ab72e0aaa40a7f46d4551a144eb97171abcc1a"),
        "{r:?}"
    );
}

// ---------------------------------------------- sigsum-go proof_test.go

fn go_proofs() -> Value {
    json("sigsum-go/go-test-proofs.json")
}

fn go_case(name: &str) -> Value {
    go_proofs()
        .arr_at("verify_cases")
        .iter()
        .find(|c| c.str_at("name") == name)
        .unwrap_or_else(|| panic!("no verify case {name:?}"))
        .clone()
}

fn raw_hash_message(c: &Value) -> Hash {
    let m = unhex32(c.str_at("message_hex"));
    let mut expected = [b' '; 32];
    expected[26..].copy_from_slice(b"foo-4\n");
    assert_eq!(m, expected);
    m
}

#[test]
fn go_proof_without_cosignatures_verifies_in_raw_hash_mode() {
    let c = go_case("no-cosignatures");
    let proof = parse(c.str_at("proof"));
    assert_eq!(proof.to_ascii(), c.str_at("proof"));
    let submitter = PublicKey(unhex32(c.str_at("submitter_public_key_hex")));
    let pol = policy(c.str_at("policy"));
    assert_eq!(
        proof.verify(&raw_hash_message(&c), &[submitter], &pol),
        Ok(())
    );
    // Raw-hash mode means the 32 bytes are the message, not data to hash.
    assert_eq!(
        proof.verify(
            &message_from_data(&raw_hash_message(&c)),
            &[submitter],
            &pol
        ),
        Err(VerifyError::BadLeafSignature)
    );
}

#[test]
fn go_one_witness_proof_verifies_and_fails_without_its_cosignature() {
    let c = go_case("one-witness");
    let text = c.str_at("proof");
    let proof = parse(text);
    assert_eq!(proof.to_ascii(), text);
    let submitter = PublicKey(unhex32(c.str_at("submitter_public_key_hex")));
    let pol = policy(c.str_at("policy"));
    let m = raw_hash_message(&c);
    assert_eq!(proof.verify(&m, &[submitter], &pol), Ok(()));

    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("cosignature="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        parse(&without).verify(&m, &[submitter], &pol),
        Err(VerifyError::QuorumNotSatisfied {
            total: 0,
            verified: 0,
            invalid: 0
        })
    );
}

#[test]
fn go_v2_proofs_round_trip_including_size_1() {
    let v = go_proofs();
    let cases = v["roundtrip_cases"].arr_at("v2");
    assert_eq!(cases.len(), 2);
    for c in cases {
        let text = c.as_str().expect("proof text");
        let proof = parse(text);
        assert_eq!(proof.short_checksum, None);
        assert_eq!(proof.to_ascii(), text);
    }
    let size1 = parse(cases[0].as_str().expect("proof text"));
    assert_eq!(size1.tree_head.tree_head().size, 1);
    assert!(size1.inclusion.path.is_empty());
}

#[test]
fn go_v1_proofs_are_read_and_written_as_v2() {
    let v = go_proofs();
    let cases = v["roundtrip_cases"].arr_at("v1_to_v2");
    assert_eq!(cases.len(), 2);
    for c in cases {
        let proof = parse(c.str_at("v1"));
        assert!(proof.short_checksum.is_some());
        assert_eq!(proof.to_ascii(), c.str_at("v2"));
        let mut v2 = parse(c.str_at("v2"));
        v2.short_checksum = proof.short_checksum;
        assert_eq!(proof, v2);
    }
}

// ---------------------------------------------------- sigsum-rs README

#[test]
fn sigsum_rs_readme_proof_verifies_under_sigsum_test_2025_3_only() {
    let v = json("sigsum-rs/readme-proof.json");
    let data = v.str_at("data_utf8").as_bytes();
    let message = message_from_data(data);
    assert_eq!(hex::encode(message), v.str_at("message_hex"));
    assert_eq!(hex::encode(hash(&message)), v.str_at("checksum_hex"));
    let submitter = PublicKey(unhex32(v.str_at("submitter_public_key_hex")));
    let text = v.str_at("proof");
    let proof = parse(text);
    assert_eq!(proof.to_ascii(), text);
    assert_eq!(proof.tree_head.cosignatures().len(), 8);
    assert_eq!(
        hex::encode(proof.leaf(&message).leaf_hash()),
        v.str_at("leaf_hash_hex")
    );

    assert_eq!(v.str_at("policy_name"), "sigsum-test-2025-3");
    let test3 = builtin("sigsum-test-2025-3");
    assert_eq!(proof.verify(&message, &[submitter], &test3), Ok(()));

    for other in [
        "sigsum-test1-2025",
        "sigsum-test2-2025",
        "sigsum-generic-2025-1",
    ] {
        assert_eq!(
            proof.verify(&message, &[submitter], &builtin(other)),
            Err(VerifyError::UnknownLog(proof.log_key_hash)),
            "{other}"
        );
    }
    for other_data in [&b"Hello, Sigsum!"[..], b"hello, Sigsum!\n", b""] {
        assert_eq!(
            proof.verify(&message_from_data(other_data), &[submitter], &test3),
            Err(VerifyError::BadLeafSignature)
        );
    }
}

// ------------------------------------------- sigsum-go doc/tools.md (v0)

#[test]
fn doc_tools_proofs_parse_and_hold_valid_merkle_data_but_v0_leaf_signatures() {
    let v = json("sigsum-go/doc-tools-md-examples.json");
    let submitter = PublicKey(unhex32(v.str_at("submitter_public_key_hex")));
    let pol = policy(v.str_at("policy"));
    for ex in v.arr_at("examples") {
        let text = ex.str_at("proof_text");
        let proof = parse(text);
        assert_eq!(proof.to_ascii(), text);
        let message = message_from_data(ex.str_at("data_utf8").as_bytes());
        let leaf = proof.leaf(&message);
        assert_eq!(hex::encode(leaf.leaf_hash()), ex.str_at("leaf_hash_hex"));
        assert_eq!(
            proof
                .inclusion
                .verify(&leaf.leaf_hash(), proof.tree_head.tree_head()),
            Ok(())
        );
        assert_eq!(
            proof.verify(&message, &[submitter], &pol),
            Err(VerifyError::BadLeafSignature)
        );
    }
}
