//! Property tests of the wire formats: no parser panics on any input, every
//! message type round-trips byte for byte, and the inputs sigsum-go rejects
//! (CRLF, leading zeros, signs, integers above 2^63−1) are rejected, while
//! output hex is always lowercase (uppercase input is accepted, as in
//! sigsum-go).
//!
//! No vector files: inputs are generated.

use std::collections::BTreeMap;

use cairn_sigsum::api::{
    AddLeafRequest, ConsistencyProof, ConsistencyProofRequest, InclusionProof,
    InclusionProofRequest, Leaves, LeavesRequest,
};
use cairn_sigsum::ascii::{self, MAX_INT, Parser, parse_hex, parse_int, split_blocks};
use cairn_sigsum::leaf::Leaf;
use cairn_sigsum::proof::SigsumProof;
use cairn_sigsum::token::SubmitHeader;
use cairn_sigsum::tree_head::{Cosignature, CosignedTreeHead, SignedTreeHead, TreeHead};
use cairn_sigsum::{Hash, KeyHash, PublicKey, Signature};
use proptest::prelude::*;

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>()
}

fn signature() -> impl Strategy<Value = Signature> {
    prop::collection::vec(any::<u8>(), 64).prop_map(|v| {
        let mut s = [0u8; 64];
        s.copy_from_slice(&v);
        Signature(s)
    })
}

fn int() -> impl Strategy<Value = u64> {
    prop_oneof![0..=1000u64, 0..=MAX_INT, Just(MAX_INT)]
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (hash(), signature(), hash()).prop_map(|(checksum, signature, k)| Leaf {
        checksum,
        signature,
        key_hash: KeyHash(k),
    })
}

fn cosignature() -> impl Strategy<Value = Cosignature> {
    (hash(), int(), signature()).prop_map(|(k, timestamp, signature)| Cosignature {
        key_hash: KeyHash(k),
        timestamp,
        signature,
    })
}

fn signed_tree_head(min_size: u64) -> impl Strategy<Value = SignedTreeHead> {
    (min_size..=MAX_INT, hash(), signature()).prop_map(|(size, root_hash, signature)| {
        SignedTreeHead {
            tree_head: TreeHead { size, root_hash },
            signature,
        }
    })
}

fn cosigned_tree_head(min_size: u64) -> impl Strategy<Value = CosignedTreeHead> {
    (
        signed_tree_head(min_size),
        prop::collection::vec(cosignature(), 0..6),
    )
        .prop_map(|(sth, cosigs)| {
            // Keep one cosignature per witness key hash, in generated order.
            let mut seen = BTreeMap::new();
            let unique: Vec<Cosignature> = cosigs
                .into_iter()
                .filter(|c| seen.insert(c.key_hash, ()).is_none())
                .collect();
            CosignedTreeHead::new(sth, unique).expect("unique key hashes")
        })
}

fn path() -> impl Strategy<Value = Vec<Hash>> {
    prop::collection::vec(hash(), 1..=63)
}

fn proof() -> impl Strategy<Value = SigsumProof> {
    (
        hash(),
        hash(),
        signature(),
        cosigned_tree_head(1),
        int(),
        path(),
    )
        .prop_map(|(log, sub, sig, cth, leaf_index, path)| {
            let inclusion = if cth.tree_head().size == 1 {
                InclusionProof {
                    leaf_index: 0,
                    path: Vec::new(),
                }
            } else {
                InclusionProof { leaf_index, path }
            };
            SigsumProof {
                log_key_hash: KeyHash(log),
                submitter_key_hash: KeyHash(sub),
                leaf_signature: sig,
                short_checksum: None,
                tree_head: cth,
                inclusion,
            }
        })
}

/// Runs every parser on `input`; only panics matter.
fn parse_everything(input: &[u8]) {
    let _ = CosignedTreeHead::parse(input);
    let _ = SignedTreeHead::parse(input);
    let _ = AddLeafRequest::parse(input);
    let _ = InclusionProof::parse(input);
    let _ = ConsistencyProof::parse(input);
    let _ = Leaves::parse(input);
    let _ = SigsumProof::parse(input);
    let _ = Leaf::from_bytes(input);
    let _ = parse_int(input);
    let _ = parse_hex::<32>(input);
    for b in split_blocks(input) {
        let _ = b.parser().repeated("k", 3);
    }
    let text = String::from_utf8_lossy(input);
    let _ = SubmitHeader::parse(&text);
    let _ = InclusionProofRequest::parse_args(&text);
    let _ = ConsistencyProofRequest::parse_args(&text);
    let _ = LeavesRequest::parse_args(&text);
}

/// Inputs near valid messages reach deeper than random bytes do.
fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        cosigned_tree_head(0).prop_map(|c| c.to_ascii()),
        proof().prop_map(|p| p.to_ascii()),
        (hash(), signature(), hash()).prop_map(|(m, s, k)| AddLeafRequest {
            message: m,
            signature: s,
            public_key: PublicKey(k),
        }
        .to_ascii()),
    ];
    (
        base,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    )
        .prop_map(|(text, edits)| {
            let mut b = text.into_bytes();
            for (at, byte, op) in edits {
                let i = at.index(b.len() + 1);
                match op {
                    0 => b.insert(i, byte),
                    1 if i < b.len() => {
                        b.remove(i);
                    }
                    _ if i < b.len() => b[i] = byte,
                    _ => b.push(byte),
                }
            }
            b
        })
}

/// The message with one line's LF turned into CRLF.
fn with_crlf_at(text: &str, line: usize) -> String {
    let mut out = String::new();
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i == line {
            out.push_str(&l.replace('\n', "\r\n"));
        } else {
            out.push_str(l);
        }
    }
    out
}

fn has_uppercase_hex(text: &str) -> bool {
    text.chars().any(|c| ('A'..='F').contains(&c))
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_a_parser(input in prop::collection::vec(any::<u8>(), 0..600)) {
        parse_everything(&input);
    }

    #[test]
    fn mutated_messages_never_panic_a_parser(input in mutated_message()) {
        parse_everything(&input);
    }

    #[test]
    fn cosigned_tree_head_round_trips(cth in cosigned_tree_head(0)) {
        let text = cth.to_ascii();
        prop_assert!(!has_uppercase_hex(&text));
        prop_assert_eq!(CosignedTreeHead::parse(text.as_bytes()), Ok(cth.clone()));
        prop_assert_eq!(SignedTreeHead::parse(cth.signed.to_ascii().as_bytes()), Ok(cth.signed));
    }

    #[test]
    fn add_leaf_request_round_trips(m in hash(), s in signature(), k in hash()) {
        let req = AddLeafRequest { message: m, signature: s, public_key: PublicKey(k) };
        let text = req.to_ascii();
        prop_assert!(!has_uppercase_hex(&text));
        prop_assert_eq!(AddLeafRequest::parse(text.as_bytes()), Ok(req));
    }

    #[test]
    fn proofs_and_leaves_responses_round_trip(
        leaf_index in int(),
        path in path(),
        leaves in prop::collection::vec(leaf(), 1..5),
    ) {
        let ip = InclusionProof { leaf_index, path: path.clone() };
        prop_assert_eq!(InclusionProof::parse(ip.to_ascii().as_bytes()), Ok(ip));
        let cp = ConsistencyProof { path };
        prop_assert_eq!(ConsistencyProof::parse(cp.to_ascii().as_bytes()), Ok(cp));
        let ls = Leaves { leaves };
        let text = ls.to_ascii();
        prop_assert!(!has_uppercase_hex(&text));
        prop_assert_eq!(Leaves::parse(text.as_bytes()), Ok(ls.clone()));
        for l in &ls.leaves {
            prop_assert_eq!(Leaf::from_bytes(&l.to_bytes()), Ok(*l));
        }
    }

    #[test]
    fn proof_file_round_trips(p in proof()) {
        let text = p.to_ascii();
        prop_assert!(!has_uppercase_hex(&text));
        let expected_blocks = if p.tree_head.tree_head().size == 1 { 2 } else { 3 };
        prop_assert_eq!(split_blocks(text.as_bytes()).len(), expected_blocks);
        prop_assert_eq!(SigsumProof::parse(text.as_bytes()), Ok(p));
    }

    #[test]
    fn request_paths_and_token_header_round_trip(
        a in 1..=MAX_INT,
        b in 1..=MAX_INT,
        h in hash(),
        t in signature(),
        domain in "([a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\\.){0,3}[a-z]([a-z0-9-]{0,10}[a-z0-9])?",
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assume!(lo < hi);
        let ir = InclusionProofRequest { size: hi, leaf_hash: h };
        prop_assert_eq!(InclusionProofRequest::parse_args(&ir.to_args()), Ok(ir));
        let cr = ConsistencyProofRequest { old_size: lo, new_size: hi };
        prop_assert_eq!(ConsistencyProofRequest::parse_args(&cr.to_args()), Ok(cr));
        let lr = LeavesRequest { start: lo - 1, end: hi };
        prop_assert_eq!(LeavesRequest::parse_args(&lr.to_args()), Ok(lr));
        let hdr = SubmitHeader { domain, token: t };
        let value = hdr.to_header_value();
        prop_assert!(!has_uppercase_hex(value.split(' ').nth(1).unwrap_or_default()));
        prop_assert_eq!(SubmitHeader::parse(&value), Ok(hdr));
    }

    #[test]
    fn crlf_on_any_line_is_rejected(p in proof(), line in any::<prop::sample::Index>()) {
        let text = p.to_ascii();
        let lines = text.split_inclusive('\n').count();
        let n = line.index(lines);
        let crlf = with_crlf_at(&text, n);
        prop_assert!(SigsumProof::parse(crlf.as_bytes()).is_err(), "line {}: {:?}", n, crlf);
        let cth = p.tree_head.to_ascii();
        let n = line.index(cth.split_inclusive('\n').count());
        prop_assert!(CosignedTreeHead::parse(with_crlf_at(&cth, n).as_bytes()).is_err());
    }

    #[test]
    fn leading_zeros_signs_and_oversized_integers_are_rejected(
        cth in cosigned_tree_head(0),
        prefix in prop_oneof![Just("0"), Just("00"), Just("+"), Just("-"), Just(" ")],
    ) {
        let text = cth.to_ascii();
        let bad = text.replacen("size=", &format!("size={prefix}"), 1);
        let e = CosignedTreeHead::parse(bad.as_bytes());
        prop_assert!(e.is_err(), "{:?}", bad);
        prop_assert_eq!(e.map_err(|e| e.line), Err(1));
        let big = text.replacen(
            &format!("size={}\n", cth.tree_head().size),
            &format!("size={}\n", u128::from(MAX_INT) + 1 + u128::from(cth.tree_head().size)),
            1,
        );
        prop_assert!(CosignedTreeHead::parse(big.as_bytes()).is_err());
        for c in cth.cosignatures() {
            let line = c.to_line();
            let zero_ts = line.replacen(&format!(" {} ", c.timestamp), &format!(" 0{} ", c.timestamp), 1);
            let mut p = Parser::new(zero_ts.as_bytes());
            let l = p.next_line("cosignature", 3);
            prop_assert!(l.and_then(|l| Cosignature::from_line(&l)).is_err());
        }
    }

    #[test]
    fn uppercase_hex_input_is_accepted_and_written_back_lowercase(p in proof()) {
        let text = p.to_ascii();
        let upper: String = text
            .split_inclusive('\n')
            .map(|l| match l.split_once('=') {
                Some((k, v)) => format!("{k}={}", v.to_uppercase()),
                None => l.to_owned(),
            })
            .collect();
        let parsed = SigsumProof::parse(upper.as_bytes());
        prop_assert_eq!(parsed.as_ref().map(|x| x.to_ascii()), Ok(text));
    }

    #[test]
    fn unterminated_final_line_is_rejected(cth in cosigned_tree_head(0)) {
        let text = cth.to_ascii();
        let cut = text.strip_suffix('\n').unwrap_or(&text);
        let e = CosignedTreeHead::parse(cut.as_bytes()).unwrap_err();
        prop_assert_eq!(e.reason, ascii::Reason::Unterminated);
    }
}
