//! Fuzz targets for every parser in `cairn-tlog` and `cairn-sigsum`.
//!
//! Each target is a plain function here rather than inside its libFuzzer
//! binary, so that `tests/corpus.rs` can replay the checked-in seed corpora on
//! stable Rust and a crash found on nightly reproduces in an ordinary test.
//!
//! Beyond "never panics", every target asserts what the format promises:
//! whatever parses serializes to something that parses to an equal value, and
//! where the format is canonical the serialized bytes equal the input (up to
//! the hex case the Sigsum ASCII format accepts on input). A failed assertion
//! is a library bug, not a fuzzer artefact.

use std::collections::HashSet;
use std::sync::LazyLock;

use cairn_sigsum::api::{
    AddLeafRequest, ConsistencyProof, ConsistencyProofRequest, Endpoint, InclusionProof,
    InclusionProofRequest, Leaves, LeavesRequest,
};
use cairn_sigsum::ascii::{self, parse_hex, split_blocks};
use cairn_sigsum::key::{
    self, PublicKeyFile, PublicKeyLine, format_openssh_public_key, format_public_key_hex,
    parse_key_hash_hex, parse_openssh_public_key, parse_private_key_file, parse_public_key_file,
    parse_public_key_hex, parse_vkey, write_openssh_private_key,
};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::policy::{Member, Policy, Quorum};
use cairn_sigsum::proof::SigsumProof;
use cairn_sigsum::token::SubmitHeader;
use cairn_sigsum::tree_head::{CosignedTreeHead, SignedTreeHead, TreeHead};
use cairn_sigsum::{Hash, KeyHash, PublicKey, Signature};
use cairn_tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use cairn_tlog::cosignature::{
    Cosignature, CosignatureVerifier, Cosigner, cosignature_from_witness_response, signed_message,
};
use cairn_tlog::note::{
    Ed25519NoteSigner, Ed25519NoteVerifier, Note, NoteSignature, NoteVerifier,
    SIGSUM_MAX_SIGNATURES, SignerKey, VerifierKey,
};
use cairn_tlog::proof::{root_from_inclusion_proof, verify_consistency, verify_inclusion};
use cairn_tlog::tile::{
    BundleId, TileId, TilePath, decode_bundle, decode_hash_tile, encode_bundle, encode_hash_tile,
    parse_path, partial_bundle_for_size, partial_tiles_for_size, tile_root,
};

/// A fuzz target: takes any bytes, panics only on a library bug.
pub type Target = fn(&[u8]);

/// Every target by name: the libFuzzer binaries in `fuzz_targets/` and the
/// corpus directories must match this list (the corpus test checks both).
pub const TARGETS: &[(&str, Target)] = &[
    ("ascii", ascii),
    ("policy", policy),
    ("proof", proof),
    ("signed_note", signed_note),
    ("checkpoint", checkpoint),
    ("openssh_key", openssh_key),
    ("tile_path", tile_path),
];

// --- Targets ---------------------------------------------------------------

/// The Sigsum ASCII messages: every API request and response body, GET path
/// arguments, the `sigsum-token` header and the proof-file block splitter.
///
/// The input is tried as each of them; parsers reject a wrong message at its
/// first line, so trying all costs little and needs no routing byte that
/// would keep real messages from being seeds.
pub fn ascii(data: &[u8]) {
    if let Some(cth) = ascii_round_trip(data, CosignedTreeHead::parse, CosignedTreeHead::to_ascii) {
        tree_head_invariants(&cth);
    }
    if let Some(sth) = ascii_round_trip(data, SignedTreeHead::parse, SignedTreeHead::to_ascii) {
        let _ = sth.verify(&FIXTURES.log_key);
    }
    if let Some(req) = ascii_round_trip(data, AddLeafRequest::parse, AddLeafRequest::to_ascii)
        && let Ok(leaf) = req.to_leaf()
    {
        assert_eq!(leaf.verify(&req.public_key), Ok(()));
        assert_eq!(leaf.key_hash, req.public_key.key_hash());
    }
    if let Some(p) = ascii_round_trip(data, InclusionProof::parse, InclusionProof::to_ascii) {
        inclusion_invariants(&p);
    }
    if let Some(p) = ascii_round_trip(data, ConsistencyProof::parse, ConsistencyProof::to_ascii) {
        // Consistency responses carry no sizes: try every pair of the known
        // tree so that seeds reach the full verification.
        for (old, old_root) in FIXTURES.roots.iter().enumerate() {
            for (new, new_root) in FIXTURES.roots.iter().enumerate().skip(old) {
                let _ = verify_consistency(old as u64, new as u64, &p.path, old_root, new_root);
            }
        }
    }
    if let Some(leaves) = ascii_round_trip(data, Leaves::parse, Leaves::to_ascii) {
        for leaf in &leaves.leaves {
            assert_eq!(Leaf::from_bytes(&leaf.to_bytes()), Ok(*leaf));
        }
    }
    if let Ok(leaf) = Leaf::from_bytes(data) {
        assert_eq!(leaf.to_bytes().as_slice(), data);
    }
    blocks_invariants(data);
    if let Ok(s) = std::str::from_utf8(data) {
        request_path(s);
        submit_header(s);
    }
}

/// Policy files: canonical form, lookups and quorum evaluation.
pub fn policy(data: &[u8]) {
    let Ok(policy) = Policy::parse(data) else {
        return;
    };
    let canonical = policy.to_bytes();
    let reparsed = Policy::parse(&canonical);
    assert_eq!(
        reparsed.as_ref(),
        Ok(&policy),
        "canonical form {:?} does not parse back to the policy",
        String::from_utf8_lossy(&canonical)
    );
    assert_eq!(reparsed.map(|p| p.to_bytes()), Ok(canonical));
    let _ = policy.explain();

    for log in policy.logs() {
        assert_eq!(log.key().key_hash(), *log.key_hash());
        assert_eq!(policy.log_by_key_hash(log.key_hash()), Some(log));
    }
    for w in policy.witnesses() {
        assert_eq!(w.key().key_hash(), *w.key_hash());
        assert_eq!(policy.witness_by_key_hash(w.key_hash()), Some(w));
    }
    for (i, g) in policy.groups().iter().enumerate() {
        assert!((1..=g.members().len()).contains(&g.threshold()));
        for m in g.members() {
            // Members are defined before their group, which is what bounds
            // the recursion of quorum evaluation.
            match *m {
                Member::Witness(w) => assert!(w < policy.witnesses().len()),
                Member::Group(h) => assert!(h < i),
            }
            assert!(policy.member_name(*m).is_some());
        }
    }

    let everyone: HashSet<KeyHash> = policy.witnesses().iter().map(|w| *w.key_hash()).collect();
    assert!(policy.quorum_satisfied(&everyone));
    assert_eq!(
        policy.quorum_satisfied(&HashSet::new()),
        policy.quorum() == Quorum::None
    );
    // Monotonicity along an input-chosen order of witnesses.
    let mut order: Vec<usize> = (0..policy.witnesses().len()).collect();
    order.sort_by_key(|&i| (data.get(i * 7 % data.len().max(1)).copied(), i));
    let mut satisfied = HashSet::new();
    let mut was = policy.quorum_satisfied(&satisfied);
    for i in order {
        if let Some(w) = policy.witnesses().get(i) {
            satisfied.insert(*w.key_hash());
        }
        let now = policy.quorum_satisfied(&satisfied);
        assert!(now || !was, "adding a cosignature made the quorum fail");
        was = now;
    }
}

/// Sigsum proof files (version 1 and 2), and their offline verification.
pub fn proof(data: &[u8]) {
    let Ok(proof) = SigsumProof::parse(data) else {
        return;
    };
    let size = proof.tree_head.tree_head().size;
    assert!(size >= 1);
    if size == 1 {
        assert_eq!(
            proof.inclusion,
            InclusionProof {
                leaf_index: 0,
                path: Vec::new()
            }
        );
    }
    let text = proof.to_ascii();
    let reparsed = SigsumProof::parse(text.as_bytes());
    // Writing always produces version 2, which has no short checksum.
    let as_v2 = SigsumProof {
        short_checksum: None,
        ..proof.clone()
    };
    assert_eq!(reparsed.as_ref(), Ok(&as_v2), "written proof: {text:?}");
    if proof.short_checksum.is_none() {
        assert_eq!(text.as_bytes(), data.to_ascii_lowercase().as_slice());
    }
    assert_eq!(as_v2.to_ascii(), text);

    for s in &FIXTURES.proof_scenarios {
        if proof.verify(&s.message, &s.submitters, &s.policy).is_ok() {
            // Conversion to version 2 only drops a check.
            assert_eq!(as_v2.verify(&s.message, &s.submitters, &s.policy), Ok(()));
        }
    }
}

/// C2SP signed notes, vkeys and skeys.
pub fn signed_note(data: &[u8]) {
    if let Ok(note) = Note::parse(data) {
        assert_eq!(note.to_bytes(), data);
        assert!(!note.signatures().is_empty());
        let mut rebuilt = Note::new(note.text()).expect("parsed note text is valid text");
        for sig in note.signatures() {
            let line = sig.to_line();
            assert_eq!(NoteSignature::parse_line(&line).as_ref(), Ok(sig));
            if let Ok(c) = Cosignature::from_note_signature(sig) {
                assert_eq!(c.to_blob().as_slice(), sig.blob());
            }
            rebuilt
                .add_signature(sig.clone())
                .expect("signatures of a parsed note fit in a note");
        }
        assert_eq!(rebuilt, note);
        let limited = Note::parse_with_max_signatures(data, SIGSUM_MAX_SIGNATURES);
        assert_eq!(
            limited.is_ok(),
            note.signatures().len() <= SIGSUM_MAX_SIGNATURES
        );
        let _ = note.verify(&FIXTURES.note_verifiers());
    }

    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(vkey) = VerifierKey::parse(s) {
        vkey_invariants(s, &vkey);
        if let Ok(v) = Ed25519NoteVerifier::from_vkey(&vkey) {
            assert_eq!(v.vkey(), vkey);
        }
        if let Ok(v) = CosignatureVerifier::from_vkey(&vkey) {
            assert_eq!(v.vkey(), vkey);
        }
    }
    if let Ok(skey) = SignerKey::parse(s) {
        let vkey = skey.verifier_key();
        assert_eq!(vkey.key_id(), skey.key_id());
        assert_eq!(VerifierKey::parse(&vkey.to_string()).as_ref(), Ok(&vkey));
        if let Ok(signer) = Ed25519NoteSigner::from_skey(&skey) {
            assert_eq!(signer.vkey(), vkey);
            let note = signer
                .sign_note("fuzz\n")
                .expect("a one-line text is valid");
            let verifier = signer.verifier();
            assert!(note.verify(&[&verifier]).is_ok());
        }
        if let Ok(cosigner) = Cosigner::from_skey(&skey) {
            assert_eq!(cosigner.vkey(), vkey);
            let cp = Checkpoint::new("fuzz", 1, [0; 32]);
            let cosig = cosigner.cosign(&cp, 1).expect("valid checkpoint");
            assert!(
                cosigner
                    .verifier()
                    .verify_cosignature(cp.to_body().as_bytes(), &cosig.to_blob())
                    .is_ok()
            );
        }
    }
}

/// C2SP checkpoints: bare bodies, signed checkpoints, and a witness's
/// add-checkpoint response (the cosignature lines) for known checkpoints.
pub fn checkpoint(data: &[u8]) {
    if let Ok(body) = std::str::from_utf8(data)
        && let Ok(cp) = Checkpoint::parse(body)
    {
        assert_eq!(cp.to_body(), body);
        assert_eq!(cp.validate(), Ok(()));
    }
    if let Ok(signed) = SignedCheckpoint::parse(data) {
        assert_eq!(signed.note().to_bytes(), data);
        assert_eq!(signed.note().text(), signed.checkpoint().to_body());
        let _ = signed.verify(&FIXTURES.note_verifiers());
    }
    for (key, cp) in &FIXTURES.witness_scenarios {
        if let Ok(c) = cosignature_from_witness_response(key, cp, data) {
            let msg = signed_message(&cp.to_body(), c.timestamp).expect("accepted timestamp");
            assert!(PublicKey(*key).verify(&msg, &Signature(c.signature)));
        }
    }
}

/// Key files: OpenSSH public key lines and files, private key files, vkeys
/// holding Sigsum keys, and raw hex keys.
pub fn openssh_key(data: &[u8]) {
    if let Ok(line) = parse_openssh_public_key(data) {
        let written = public_key_line_text(&line);
        assert_eq!(
            parse_openssh_public_key(written.as_bytes()).as_ref(),
            Ok(&line)
        );
        // Base64 is accepted only in canonical form, so the blob field is
        // exactly what we write.
        let expected = format_openssh_public_key(&line.key, None);
        let blob = expected.rsplit(' ').next();
        let mut fields = data
            .split(|&b| b == b' ' || b == b'\t' || b == b'\n' || b == b'\r')
            .filter(|f| !f.is_empty());
        if line.policy_name.is_some() {
            fields.next();
        }
        fields.next();
        assert_eq!(fields.next(), blob.map(str::as_bytes));
    }
    if let Ok(file) = PublicKeyFile::parse(data) {
        let text: String = file
            .entries()
            .iter()
            .map(|e| public_key_line_text(e) + "\n")
            .collect();
        assert_eq!(PublicKeyFile::parse(text.as_bytes()).as_ref(), Ok(&file));
        let pairs: Vec<(PublicKey, Option<String>)> = file
            .entries()
            .iter()
            .map(|e| (e.key, e.policy_name.clone()))
            .collect();
        assert_eq!(parse_public_key_file(data), Ok(pairs));
        let _ = file.policy_name();
    }
    if let Ok(signer) = parse_private_key_file(data) {
        const CHECK_INT: u32 = 0x3031_3233;
        let written = write_openssh_private_key(&signer, CHECK_INT);
        let again = parse_private_key_file(written.as_bytes())
            .unwrap_or_else(|e| panic!("written key {written:?} does not parse: {e}"));
        assert_eq!(again.seed(), signer.seed());
        assert_eq!(write_openssh_private_key(&again, CHECK_INT), written);
    }

    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((vkey, pk)) = parse_vkey(s) {
        vkey_invariants(s.trim_ascii(), &vkey);
        assert_eq!(parse_vkey(&vkey.to_string()), Ok((vkey.clone(), pk)));
        if vkey.sig_type() == key::VKEY_TYPE_WITNESS {
            assert_eq!(key::witness_vkey(vkey.name(), &pk).as_ref(), Ok(&vkey));
        } else if vkey.name() == key::log_origin(&pk) {
            assert_eq!(key::log_vkey(&pk).as_ref(), Ok(&vkey));
        }
    }
    if let Ok(pk) = parse_public_key_hex(s) {
        assert_eq!(format_public_key_hex(&pk), s.to_ascii_lowercase());
    }
    if let Ok(kh) = parse_key_hash_hex(s) {
        assert_eq!(kh.to_hex(), s.to_ascii_lowercase());
    }
}

/// C2SP tlog-tiles paths, hash tiles and entry bundles.
///
/// Input: a path line, then optionally `\n` and the tile's bytes. The
/// decoders also see the whole input, so raw tiles work as seeds too.
pub fn tile_path(data: &[u8]) {
    let (first, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (data.get(..i).unwrap_or_default(), data.get(i + 1..)),
        None => (data, None),
    };
    if let Ok(path) = std::str::from_utf8(first)
        && let Ok(tp) = parse_path(path)
    {
        assert_eq!(tp.to_string(), path);
        assert_eq!(tp.path(), path);
        assert_eq!(path.parse::<TilePath>(), Ok(tp));
        match tp {
            TilePath::Hash(t) => hash_tile_invariants(t, body),
            TilePath::Entries(b) => bundle_invariants(b, body),
        }
    }
    for bytes in [Some(data), body].into_iter().flatten() {
        if let Ok(hashes) = decode_hash_tile(bytes) {
            assert_eq!(encode_hash_tile(&hashes).as_deref(), Ok(bytes));
            assert_eq!(tile_root(&hashes).is_ok(), hashes.len() == 256);
        }
        if let Ok(entries) = decode_bundle(bytes) {
            assert_eq!(encode_bundle(&entries).as_deref(), Ok(bytes));
            let leaf_hashes: Vec<Hash> = entries.iter().map(|e| cairn_tlog::leaf_hash(e)).collect();
            assert!(encode_hash_tile(&leaf_hashes).is_ok());
        }
    }
}

// --- Shared invariants -----------------------------------------------------

/// Parses with `parse`; if that succeeds, checks that `print` writes the input
/// back (lowercased: hex is read in either case, written in lowercase; keys,
/// integers and separators have no case) and that it parses to the same value.
fn ascii_round_trip<T: PartialEq + std::fmt::Debug>(
    data: &[u8],
    parse: fn(&[u8]) -> Result<T, ascii::Error>,
    print: fn(&T) -> String,
) -> Option<T> {
    let value = parse(data).ok()?;
    let text = print(&value);
    assert_eq!(text.as_bytes(), data.to_ascii_lowercase().as_slice());
    assert_eq!(parse(text.as_bytes()).as_ref(), Ok(&value));
    Some(value)
}

fn tree_head_invariants(cth: &CosignedTreeHead) {
    let th = cth.tree_head();
    let rebuilt = CosignedTreeHead::new(cth.signed, cth.cosignatures().to_vec());
    assert_eq!(rebuilt.as_ref(), Ok(cth));
    for c in cth.cosignatures() {
        assert_eq!(cth.cosignature_by(&c.key_hash), Some(c));
    }
    // The signed body is a C2SP checkpoint that must read back as this head.
    let log_key_hash = FIXTURES.log_key.key_hash();
    let body = th.checkpoint_body(&log_key_hash);
    assert_eq!(
        Checkpoint::parse(&body),
        Ok(th.checkpoint(&log_key_hash)),
        "{body:?}"
    );
    let _ = cth.signed.verify(&FIXTURES.log_key);
    for c in cth.cosignatures() {
        for w in &FIXTURES.witness_keys {
            let _ = c.verify(w, th, &log_key_hash);
        }
    }
}

fn inclusion_invariants(p: &InclusionProof) {
    if let Some((leaf_hash, root)) = usize::try_from(p.leaf_index)
        .ok()
        .and_then(|i| FIXTURES.leaf_hashes.get(i))
        .zip(FIXTURES.roots.last())
    {
        let head = TreeHead {
            size: (FIXTURES.roots.len() - 1) as u64,
            root_hash: *root,
        };
        let _ = p.verify(leaf_hash, &head);
    }
    let leaf = [0x42; 32];
    let sizes = [
        p.leaf_index.saturating_add(1),
        p.leaf_index.saturating_add(2),
        p.leaf_index.saturating_mul(2).saturating_add(1),
        ascii::MAX_INT,
    ];
    for size in sizes {
        if let Ok(root) = root_from_inclusion_proof(&leaf, p.leaf_index, size, &p.path) {
            assert_eq!(
                verify_inclusion(&leaf, p.leaf_index, size, &p.path, &root),
                Ok(())
            );
        }
    }
}

fn blocks_invariants(data: &[u8]) {
    let blocks = split_blocks(data);
    let parts: Vec<&[u8]> = blocks.iter().map(|b| b.bytes).collect();
    assert_eq!(parts.join(&b'\n'), data);
    let mut line = 1;
    for b in &blocks {
        assert_eq!(b.first_line, line);
        line += b.bytes.iter().filter(|&&c| c == b'\n').count() + 1;
    }
}

/// GET path arguments, with or without the endpoint name in front.
fn request_path(s: &str) {
    let (endpoint, args) = match s.split_once('/') {
        Some((name, args)) => match Endpoint::from_name(name) {
            Some(e) => (Some(e), args),
            None => (None, s),
        },
        None => (None, s),
    };
    if let Ok(r) = InclusionProofRequest::parse_args(args) {
        assert!(r.size >= 2);
        assert_eq!(r.to_args(), args.to_ascii_lowercase());
        assert_eq!(InclusionProofRequest::parse_args(&r.to_args()), Ok(r));
        if endpoint == Some(Endpoint::GetInclusionProof) {
            assert_eq!(r.to_path(), s.to_ascii_lowercase());
        }
    }
    if let Ok(r) = ConsistencyProofRequest::parse_args(args) {
        assert!(0 < r.old_size && r.old_size < r.new_size);
        assert_eq!(r.to_args(), args);
        if endpoint == Some(Endpoint::GetConsistencyProof) {
            assert_eq!(r.to_path(), s);
        }
    }
    if let Ok(r) = LeavesRequest::parse_args(args) {
        assert!(r.start < r.end);
        assert_eq!(r.to_args(), args);
        if endpoint == Some(Endpoint::GetLeaves) {
            assert_eq!(r.to_path(), s);
        }
    }
}

fn submit_header(s: &str) {
    let Ok(h) = SubmitHeader::parse(s) else {
        return;
    };
    let value = h.to_header_value();
    let (domain, token) = s.split_once(' ').unwrap_or_default();
    assert_eq!(value, format!("{domain} {}", token.to_ascii_lowercase()));
    assert_eq!(SubmitHeader::parse(&value), Ok(h));
}

/// A vkey prints back as read, except for the key ID's hex case.
fn vkey_invariants(s: &str, vkey: &VerifierKey) {
    let printed = vkey.to_string();
    let (name, rest) = s.split_once('+').unwrap_or_default();
    let (id, b64) = rest.split_once('+').unwrap_or_default();
    assert_eq!(printed, format!("{name}+{}+{b64}", id.to_ascii_lowercase()));
    assert_eq!(VerifierKey::parse(&printed).as_ref(), Ok(vkey));
}

fn public_key_line_text(line: &PublicKeyLine) -> String {
    let key = format_openssh_public_key(&line.key, Some("fuzz comment"));
    match &line.policy_name {
        Some(name) => format!("{}=\"{name}\" {key}", key::POLICY_OPTION),
        None => key,
    }
}

fn hash_tile_invariants(t: TileId, body: Option<&[u8]>) {
    assert_eq!(TileId::new(t.level(), t.index(), t.width()), Ok(t));
    let size = t.min_tree_size();
    assert!(t.exists_at(size), "{t} does not exist at its minimum size");
    assert!(size == 0 || !t.exists_at(size - 1));
    if !t.is_full() {
        assert!(partial_tiles_for_size(size).any(|p| p == t));
    }
    if let Some(bytes) = body
        && let Ok(hashes) = t.decode(bytes)
    {
        assert_eq!(hashes.len(), usize::from(t.width()));
        assert_eq!(decode_hash_tile(bytes), Ok(hashes));
    }
}

fn bundle_invariants(b: BundleId, body: Option<&[u8]>) {
    assert_eq!(BundleId::new(b.index(), b.width()), Ok(b));
    let t = b.hash_tile();
    assert_eq!((t.level(), t.index(), t.width()), (0, b.index(), b.width()));
    let size = b.min_tree_size();
    assert!(b.exists_at(size));
    assert!(size == 0 || !b.exists_at(size - 1));
    assert_eq!(
        partial_bundle_for_size(size),
        (!b.is_full()).then_some(b),
        "{b}"
    );
    if let Some(bytes) = body
        && let Ok(entries) = b.decode(bytes)
    {
        assert_eq!(entries.len(), usize::from(b.width()));
        assert_eq!(decode_bundle(bytes), Ok(entries));
    }
}

// --- Fixtures --------------------------------------------------------------

/// A proof verification setting: the message, trusted submitters and policy.
struct ProofScenario {
    message: Hash,
    submitters: Vec<PublicKey>,
    policy: Policy,
}

/// Keys, trees and policies from the known-answer vectors
/// (`testdata/vectors`), so that seeds built from those vectors reach
/// signature and proof verification instead of stopping at an unknown key.
struct Fixtures {
    log_key: PublicKey,
    witness_keys: Vec<PublicKey>,
    /// Roots of the derived 7-leaf tree, by size 0..=7.
    roots: Vec<Hash>,
    leaf_hashes: Vec<Hash>,
    ed25519_verifiers: Vec<Ed25519NoteVerifier>,
    cosignature_verifiers: Vec<CosignatureVerifier>,
    proof_scenarios: Vec<ProofScenario>,
    /// (witness key, checkpoint it was asked to cosign).
    witness_scenarios: Vec<([u8; 32], Checkpoint)>,
}

impl Fixtures {
    fn note_verifiers(&self) -> Vec<&dyn NoteVerifier> {
        let ed = self
            .ed25519_verifiers
            .iter()
            .map(|v| v as &dyn NoteVerifier);
        let co = self
            .cosignature_verifiers
            .iter()
            .map(|v| v as &dyn NoteVerifier);
        ed.chain(co).collect()
    }
}

fn h32(s: &str) -> [u8; 32] {
    parse_hex::<32>(s.as_bytes()).expect("fixture hex")
}

fn pk(s: &str) -> PublicKey {
    PublicKey(h32(s))
}

fn vkey(s: &str) -> VerifierKey {
    VerifierKey::parse(s).expect("fixture vkey")
}

fn fixture_policy(text: &str) -> Policy {
    Policy::parse(text.as_bytes()).expect("fixture policy")
}

// Derived vectors (sigsum-v1-deterministic.json).
const LOG_KEY: &str = "927308f53d6765503d2b64c103ab5aa47206ab39502cfe8f98442fdb543100b7";
const SUBMITTER_KEY: &str = "f80cccdce4ae1c07ae208a2adf99a310ae4207e0306fa0236110b06827bbb8d0";
const WITNESS1_KEY: &str = "c84069fa2216c6edc1d52ca83aa11c267dd5440afa526090ca43ebd0ca86a9cf";
const WITNESS2_KEY: &str = "dac31ebca159d283f8341fd90d7fa1cd95bf5eccab657f7952662e67e56afbe3";
const ROOTS: [&str; 8] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "43b6d245becbdb91ca75c250b80f78ef609788243ec82523ada45cb374d770cb",
    "6803496710cfac2008f4706adf8fc6b4fbef661e09bebfb9e4d5da4e5924a9a3",
    "6677f5f626ee86ee2019a76f9dba32dabe8a4a5eecbf8f93269b2242e8affadc",
    "4f823e24e7696575962a48b50516783042dc746739987f630306ce8fccd93fd8",
    "18fbe89ae8eb7888073de72a2c262f44d3123c9a12b32a01543cd831c3141c44",
    "196876e96d417235059083d7310fc404c4c151a3c92963ed57842c8b7b00c324",
    "02e90ba65d86aa113f78f9ab4729dee8578beea71ecda4ba899a97cc5ab6390b",
];
const LEAF_HASHES: [&str; 7] = [
    "43b6d245becbdb91ca75c250b80f78ef609788243ec82523ada45cb374d770cb",
    "0346ff5c0a3aca5e5691fcaefc1d23c4314814f1866c9618dcd7aac763b3b0e2",
    "d4482d68b5dd15a2328a7112093a472fa97f1d88954166ad02b3b535aa7b50d5",
    "be972869635b42e322bcf398bc404c6bed57df8737a841fe78a7a9c443077f01",
    "fd8d914c0685296d0e314f368ea1c8d97ca34b93109eb9c80d5537a393e1228b",
    "c8bcb8cf1205b1fd8901de1c216bb6ae0e5571b29839eb007134bb8b2c16c5c8",
    "9a1ac32b8c52a7fa875213218c8c0f021127e959713527dd92cb3594e8ecba2d",
];
// sigsum-go known answers: the `11 00…00` seed's key, used for a log and a witness.
const SEED17_KEY: &str = "66e0b858e462a609e66fe71370c816d8846ff103d5499a22a7fec37fdbc424a7";

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let log_key = pk(LOG_KEY);
    let seed17 = h32(SEED17_KEY);
    let derived_log_origin = key::log_origin(&log_key);
    let derived_head = |size: usize| {
        let root = ROOTS.get(size).map_or([0; 32], |r| h32(r));
        Checkpoint::new(&derived_log_origin, size as u64, root)
    };
    let derived_policy = |quorum: &str| {
        fixture_policy(&format!(
            "log {LOG_KEY}\nwitness W1 {WITNESS1_KEY}\nwitness W2 {WITNESS2_KEY}\n\
             group G {quorum} W1 W2\nquorum G\n"
        ))
    };
    let mut ed25519_verifiers: Vec<Ed25519NoteVerifier> = [
        // C2SP signed-note example, Tessera test log, derived log, Go sumdb.
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx",
        "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
    ]
    .into_iter()
    .map(|v| Ed25519NoteVerifier::from_vkey(&vkey(v)).expect("fixture log vkey"))
    .collect();
    for key in [&log_key, &pk(SEED17_KEY)] {
        let v = key::log_vkey(key).expect("log vkey");
        ed25519_verifiers.push(Ed25519NoteVerifier::from_vkey(&v).expect("log verifier"));
    }
    let cosignature_verifiers = [
        "example.org/witness1+d7cea6f8+BMhAafoiFsbtwdUsqDqhHCZ91UQK+lJgkMpD69DKhqnP",
        "example.org/witness2+3899b4e5+BNrDHryhWdKD+DQf2Q1/oc2Vv17Mq2V/eVJmLmflavvj",
        "witness.example.org+b8a2cf20+BFLN3yikSfFkVAJtrnh/CiY3Zozkoy7clp+P7XB28qUN",
    ]
    .into_iter()
    .map(|v| CosignatureVerifier::from_vkey(&vkey(v)).expect("fixture witness vkey"))
    .chain(std::iter::once(
        CosignatureVerifier::new("example.org/witness", &seed17).expect("seed17 witness"),
    ))
    .collect();
    let skylight_witness =
        vkey("witness.example.org+b8a2cf20+BFLN3yikSfFkVAJtrnh/CiY3Zozkoy7clp+P7XB28qUN")
            .ed25519_key(cairn_tlog::note::SIG_TYPE_COSIGNATURE_V1)
            .expect("skylight witness key");
    Fixtures {
        log_key,
        witness_keys: vec![pk(WITNESS1_KEY), pk(WITNESS2_KEY)],
        roots: ROOTS.iter().map(|r| h32(r)).collect(),
        leaf_hashes: LEAF_HASHES.iter().map(|h| h32(h)).collect(),
        ed25519_verifiers,
        cosignature_verifiers,
        proof_scenarios: vec![
            // Derived: the size-7 proofs (2-of-2) and the size-1 proof.
            ProofScenario {
                message: h32("88f113a60eb1dd361daee91b8c9d3bd736bd493246e90ef3f3dec5a03aadbc9f"),
                submitters: vec![pk(SUBMITTER_KEY)],
                policy: derived_policy("all"),
            },
            ProofScenario {
                message: h32("30d6bafbc531f3dccb3ad788b8647385c7ff36db7eda8c497179f973b65b6ce6"),
                submitters: vec![pk(SUBMITTER_KEY)],
                policy: fixture_policy(&format!("log {LOG_KEY}\nquorum none\n")),
            },
            // sigsum-go proof_test.go, TestVerify (one witness).
            ProofScenario {
                message: h32("2020202020202020202020202020202020202020202020202020666f6f2d340a"),
                submitters: vec![pk(
                    "c74b7315630804141db0f88c27c53fe7fcbf59e6ca35a4abaad789ec6b2bc208",
                )],
                policy: fixture_policy(
                    "log ac26c0a855ac451a6539478e1a160388f024b385f1363efcda470170076c01e5\n\
                     witness w0 cbe357e6b464049e703b7be6c89201193acc2a18c095b0691aaf50b9b1e1578a\n\
                     group g 1 w0\nquorum g\n",
                ),
            },
            // sigsum-rs README: a real proof under a builtin policy.
            ProofScenario {
                message: h32("805835e23e790480beee047b6d3507e1ba8109403eb006ce5f7a1971347069ae"),
                submitters: vec![pk(
                    "99ed58583e8750b20548e69df4a4e1a592379a9a66c51cd32e42fbe4e1bde78a",
                )],
                policy: fixture_policy(
                    cairn_sigsum::policy::builtin("sigsum-test-2025-3").expect("builtin policy"),
                ),
            },
        ],
        witness_scenarios: vec![
            (
                seed17,
                Checkpoint::new(
                    "example.org/log",
                    10,
                    h32("1c0e470000000000000000000000000000000000000000000000000000000000"),
                ),
            ),
            (h32(WITNESS1_KEY), derived_head(4)),
            (h32(WITNESS2_KEY), derived_head(7)),
            (
                skylight_witness,
                Checkpoint::new(
                    "rome2026h1.example.org",
                    300,
                    h32("942907529926541126b36af64f52ba3a0ebdfb052eb8ddcc2045b5fdeceedafd"),
                ),
            ),
        ],
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_load() {
        assert_eq!(FIXTURES.roots.len(), FIXTURES.leaf_hashes.len() + 1);
        assert_eq!(FIXTURES.proof_scenarios.len(), 4);
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The fixtures exist so that valid seeds get past signature checks; if
    /// they drift from the corpus, fuzzing silently stays shallow.
    #[test]
    fn valid_seeds_verify_under_the_fixtures() {
        let proofs = [
            "derived-valid-2of2",
            "derived-valid-size1-quorum-none",
            "go-one-witness",
            "sigsum-rs-readme",
        ];
        for (name, s) in proofs.iter().zip(&FIXTURES.proof_scenarios) {
            let p = SigsumProof::parse(&seed("proof", name)).expect(name);
            assert_eq!(
                p.verify(&s.message, &s.submitters, &s.policy),
                Ok(()),
                "{name}"
            );
        }
        let responses = [
            "witness-response-seed17",
            "witness-response-derived-w1-size4",
            "witness-response-derived-w2-size7",
            "witness-response-skylight",
        ];
        for (name, (key, cp)) in responses.iter().zip(&FIXTURES.witness_scenarios) {
            let r = cosignature_from_witness_response(key, cp, &seed("checkpoint", name));
            assert!(r.is_ok(), "{name}: {r:?}");
        }
        for name in [
            "c2sp-example",
            "derived-cosigned-size7",
            "go-sumdb",
            "go-seed17",
            "skylight-witness-cosigned",
            "tessera-checkpoint-7",
        ] {
            let note = Note::parse(&seed("signed_note", name)).expect(name);
            let verified = note.verify(&FIXTURES.note_verifiers());
            assert!(verified.is_ok(), "{name}: {verified:?}");
        }
        let cth = CosignedTreeHead::parse(&seed("ascii", "get-tree-head-size7")).expect("cth");
        assert!(cth.signed.verify(&FIXTURES.log_key));
        let head = cth.tree_head();
        for (c, w) in cth.cosignatures().iter().zip(&FIXTURES.witness_keys) {
            assert!(c.verify(w, head, &FIXTURES.log_key.key_hash()));
        }
    }

    #[test]
    fn targets_accept_empty_and_junk_input() {
        for (_, target) in TARGETS {
            target(b"");
            target(b"\n\n\x00\xff");
        }
    }
}
