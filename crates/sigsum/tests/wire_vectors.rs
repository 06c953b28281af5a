//! Byte-exact wire-format known answers.
//!
//! Vectors exercised (paths relative to `testdata/vectors`):
//! * `derived/sigsum-v1-deterministic.json` — keys (hex, key hash, origin),
//!   all 7 leaves (message, checksum, signed bytes, signature, leaf bytes,
//!   leaf hash, add-leaf body, get-leaves line), inclusion proofs at size 7,
//!   all 21 consistency proofs, tree heads at 4 and 7 (checkpoint body, log
//!   signature, cosigned messages, cosignatures, sigsum cosignature lines,
//!   get-tree-head responses), submit token (signed bytes, token, header,
//!   TXT name and value).
//! * `sigsum-go/go-test-known-answers.json` — `sha256`,
//!   `ed25519_rfc8032_test2`, `leaf_encoding`, `tree_head_formatting`,
//!   `signed_tree_head_v1`, `signed_tree_head_v0` (negative),
//!   `checkpoint_signed_by_seed17` (body and signature inside the note),
//!   `cosignature_line_seed17` (cosigned message, signature, timestamp and
//!   signature inside the note line), `test_domain_key`,
//!   `submit_token_header_parse`. The OpenSSH, vkey, signed-note filtering,
//!   sumdb, add-checkpoint and witness-sequence items belong to `key`,
//!   `cairn_tlog::note` and the witness, not to these modules.
//! * `sigsum/log-md-examples.json` — every example.
//! * `log-go/readme-examples.json` — the size-1291 cosigned tree head (log
//!   signature, both cosignatures) and the get-leaves lines.
//! * `sigsum-go/doc-tools-md-examples.json` — as negative signature vectors
//!   (v0 leaf signatures, v0 token, interim-origin tree heads must not
//!   verify as v1) with valid Merkle data; its proof files are exercised in
//!   `proof_vectors.rs`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cairn_sigsum::api::{
    AddLeafRequest, ConsistencyProof, ConsistencyProofRequest, InclusionProof,
    InclusionProofRequest, Leaves, LeavesRequest,
};
use cairn_sigsum::ascii::{self, Parser};
use cairn_sigsum::crypto::{hash, namespaced};
use cairn_sigsum::leaf::{self, Leaf, LeafError};
use cairn_sigsum::token::{self, HeaderError, SubmitHeader};
use cairn_sigsum::tree_head::{
    self, Cosignature, CosignedTreeHead, SignedTreeHead, TreeHead, origin_for_key,
};
use cairn_sigsum::{Hash, KeyHash, PublicKey, Signature, SigningKey};
use cairn_testvectors::{JsonExt, json, unhex, unhex32};
use serde_json::Value;

fn derived() -> Value {
    json("derived/sigsum-v1-deterministic.json")
}

fn known_answers() -> Value {
    json("sigsum-go/go-test-known-answers.json")
}

fn sig(hex: &str) -> Signature {
    Signature(
        unhex(hex)
            .try_into()
            .unwrap_or_else(|v: Vec<u8>| panic!("signature of {} bytes", v.len())),
    )
}

fn pk(hex: &str) -> PublicKey {
    PublicKey(unhex32(hex))
}

fn key(v: &Value, name: &str) -> SigningKey {
    SigningKey::from_seed(&unhex32(v["keys"][name].str_at("seed_hex")))
}

fn root(v: &Value, size: u64) -> Hash {
    unhex32(v["roots_by_size_hex"].str_at(&size.to_string()))
}

fn b64(s: &str) -> Vec<u8> {
    STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
}

/// The base64 blob of a signed-note signature line `— <name> <blob>`.
fn note_line_blob(line: &str) -> Vec<u8> {
    b64(line
        .trim_end_matches('\n')
        .rsplit(' ')
        .next()
        .unwrap_or_default())
}

// ---------------------------------------------------------------- derived

#[test]
fn derived_keys_have_the_recorded_hex_key_hash_and_origin() {
    let v = derived();
    for name in ["log", "submitter", "witness1", "witness2", "ratelimit"] {
        let k = key(&v, name);
        let rec = &v["keys"][name];
        assert_eq!(
            k.public_key().to_hex(),
            rec.str_at("public_key_hex"),
            "{name}"
        );
        assert_eq!(
            k.public_key().key_hash().to_hex(),
            rec.str_at("key_hash_hex"),
            "{name}"
        );
    }
    let log = key(&v, "log").public_key();
    assert_eq!(origin_for_key(&log), v["keys"]["log"].str_at("origin"));
    assert_eq!(
        tree_head::origin(&log.key_hash()),
        v["keys"]["log"].str_at("origin")
    );
}

#[test]
fn derived_leaves_are_reproduced_byte_for_byte() {
    let v = derived();
    let submitter = key(&v, "submitter");
    let leaves = v.arr_at("leaves");
    assert_eq!(leaves.len(), 7);
    for l in leaves {
        let data = l.str_at("data_utf8").as_bytes();
        let message = hash(data);
        assert_eq!(hex::encode(message), l.str_at("message_hex"));
        let checksum = leaf::checksum(&message);
        assert_eq!(hex::encode(checksum), l.str_at("checksum_hex"));
        assert_eq!(
            hex::encode(leaf::signed_bytes(&checksum)),
            l.str_at("signed_bytes_hex")
        );
        let signed = Leaf::sign(&submitter, &message);
        assert_eq!(signed.signature.to_hex(), l.str_at("signature_hex"));
        assert_eq!(hex::encode(signed.to_bytes()), l.str_at("leaf_bytes_hex"));
        assert_eq!(
            Leaf::from_bytes(&unhex(l.str_at("leaf_bytes_hex"))),
            Ok(signed)
        );
        assert_eq!(hex::encode(signed.leaf_hash()), l.str_at("leaf_hash_hex"));
        assert_eq!(signed.verify(&submitter.public_key()), Ok(()));

        let body = l.str_at("add_leaf_request_body");
        let req = AddLeafRequest::parse(body.as_bytes()).expect("add-leaf body parses");
        assert_eq!(req, AddLeafRequest::sign(&submitter, &message));
        assert_eq!(req.to_ascii(), body);
        assert_eq!(req.to_leaf(), Ok(signed));

        let line = l.str_at("get_leaves_line");
        assert_eq!(signed.to_line(), line);
        assert_eq!(
            Leaves::parse(line.as_bytes()).map(|x| x.leaves),
            Ok(vec![signed])
        );
    }
}

#[test]
fn derived_inclusion_responses_round_trip_and_verify_at_size_7() {
    let v = derived();
    let th = TreeHead {
        size: 7,
        root_hash: root(&v, 7),
    };
    for (i, p) in v.arr_at("inclusion_proofs_size7").iter().enumerate() {
        let text = p.str_at("response");
        let proof = InclusionProof::parse(text.as_bytes()).expect("inclusion response parses");
        assert_eq!(proof.leaf_index, i as u64);
        assert_eq!(proof.to_ascii(), text);
        let leaf_hash = unhex32(p.str_at("leaf_hash_hex"));
        assert_eq!(
            hex::encode(leaf_hash),
            v["leaves"][i].str_at("leaf_hash_hex")
        );
        assert_eq!(proof.verify(&leaf_hash, &th), Ok(()));
        let req = InclusionProofRequest { size: 7, leaf_hash };
        assert_eq!(InclusionProofRequest::parse_args(&req.to_args()), Ok(req));
    }
}

#[test]
fn derived_consistency_responses_round_trip_and_verify_between_all_sizes() {
    let v = derived();
    let proofs = v.arr_at("consistency_proofs");
    assert_eq!(proofs.len(), 21);
    for p in proofs {
        let (old, new) = (p.u64_at("old_size"), p.u64_at("new_size"));
        let text = p.str_at("response");
        let proof = ConsistencyProof::parse(text.as_bytes()).expect("consistency response parses");
        assert_eq!(proof.to_ascii(), text);
        let old_th = TreeHead {
            size: old,
            root_hash: root(&v, old),
        };
        let new_th = TreeHead {
            size: new,
            root_hash: root(&v, new),
        };
        assert_eq!(proof.verify(&old_th, &new_th), Ok(()), "{old}->{new}");
        let args = format!("{old}/{new}");
        assert_eq!(
            ConsistencyProofRequest::parse_args(&args).map(|r| r.to_args()),
            Ok(args)
        );
    }
}

#[test]
fn derived_tree_heads_sign_cosign_and_serialize_byte_for_byte() {
    let v = derived();
    let log = key(&v, "log");
    let log_hash = log.public_key().key_hash();
    let heads = v.arr_at("tree_heads");
    assert_eq!(heads.len(), 2);
    for th_v in heads {
        let th = TreeHead {
            size: th_v.u64_at("size"),
            root_hash: unhex32(th_v.str_at("root_hash_hex")),
        };
        assert_eq!(th.root_hash, root(&v, th.size));
        assert_eq!(
            th.checkpoint_body(&log_hash),
            th_v.str_at("checkpoint_body")
        );
        let sth = th.sign(&log);
        assert_eq!(sth.signature.to_hex(), th_v.str_at("log_signature_hex"));
        assert!(sth.verify(&log.public_key()));
        assert_eq!(
            sth.checkpoint_body(&log.public_key()),
            th_v.str_at("checkpoint_body")
        );
        // The signed-note form starts with the body the helper returns.
        assert!(
            th_v.str_at("checkpoint_note")
                .starts_with(&format!("{}\n— ", th_v.str_at("checkpoint_body")))
        );

        let mut cosignatures = Vec::new();
        for c in th_v.arr_at("cosignatures") {
            let w = key(&v, c.str_at("witness"));
            let ts = c.u64_at("timestamp");
            assert_eq!(
                th.cosigned_message(&log_hash, ts),
                c.str_at("signed_message")
            );
            let cs = Cosignature::sign(&w, &th, &log_hash, ts).expect("timestamp in range");
            assert_eq!(cs.signature.to_hex(), c.str_at("signature_hex"));
            assert!(cs.verify(&w.public_key(), &th, &log_hash));
            assert_eq!(cs.to_line(), format!("{}\n", c.str_at("sigsum_line")));
            // The signed-note cosignature carries the same timestamp and signature.
            let blob = note_line_blob(c.str_at("note_line"));
            assert_eq!(blob.len(), 76);
            assert_eq!(blob[4..12], ts.to_be_bytes());
            assert_eq!(blob[12..], cs.signature.0);
            cosignatures.push(cs);
        }
        let cth = CosignedTreeHead::new(sth, cosignatures).expect("distinct witnesses");
        let response = th_v.str_at("get_tree_head_response");
        assert_eq!(cth.to_ascii(), response);
        assert_eq!(CosignedTreeHead::parse(response.as_bytes()), Ok(cth));
    }
}

#[test]
fn derived_submit_token_header_and_txt_record_are_reproduced() {
    let v = derived();
    let t = &v["submit_token"];
    let rl = key(&v, "ratelimit");
    let log = key(&v, "log").public_key();
    let signed = token::signed_bytes(&log);
    assert_eq!(signed.len() as u64, t.u64_at("signed_bytes_len"));
    assert_eq!(hex::encode(&signed), t.str_at("signed_bytes_hex"));
    let tok = token::sign(&rl, &log);
    assert_eq!(tok.to_hex(), t.str_at("token_hex"));
    assert!(token::verify(&rl.public_key(), &log, &tok));
    // Signing the key hash instead of the key must not produce this token.
    assert!(!token::verify(
        &rl.public_key(),
        &PublicKey(log.key_hash().0),
        &tok
    ));

    let header = SubmitHeader {
        domain: t.str_at("domain").to_owned(),
        token: tok,
    };
    let line = format!("{}: {}", token::HEADER_NAME, header.to_header_value());
    assert_eq!(line, t.str_at("http_header"));
    let value = t
        .str_at("http_header")
        .strip_prefix("sigsum-token: ")
        .expect("header name");
    assert_eq!(SubmitHeader::parse(value), Ok(header));

    assert_eq!(
        token::dns_txt_name(t.str_at("domain")),
        t.str_at("dns_txt_name")
    );
    assert_eq!(
        token::dns_txt_value(&rl.public_key()),
        t.str_at("dns_txt_value")
    );
    assert_eq!(
        token::verify_with_txt_records(&[t.str_at("dns_txt_value")], &log, &tok),
        Ok(())
    );
    assert_eq!(
        token::dns_txt_record_line(&rl.public_key()),
        format!("_sigsum_v1 IN TXT \"{}\"", t.str_at("dns_txt_value"))
    );
}

// ------------------------------------------------- sigsum-go known answers

#[test]
fn go_sha256_and_rfc8032_vectors_hold() {
    let v = known_answers();
    for c in v["sha256"].arr_at("cases") {
        assert_eq!(
            hex::encode(hash(c.str_at("input_utf8").as_bytes())),
            c.str_at("sha256_hex")
        );
    }
    let e = &v["ed25519_rfc8032_test2"];
    let k = SigningKey::from_seed(&unhex32(e.str_at("seed_hex")));
    assert_eq!(k.public_key().to_hex(), e.str_at("public_key_hex"));
    let s = k.sign(&unhex(e.str_at("message_hex")));
    assert_eq!(s.to_hex(), e.str_at("signature_hex"));
}

#[test]
fn go_leaf_encoding_is_reproduced_and_wrong_sizes_rejected() {
    let v = &known_answers()["leaf_encoding"];
    let message = unhex32(v.str_at("message_hex"));
    let checksum = leaf::checksum(&message);
    assert_eq!(hex::encode(checksum), v.str_at("checksum_hex"));
    let signed = leaf::signed_bytes(&checksum);
    assert_eq!(signed.len() as u64, v.u64_at("leaf_signed_bytes_len"));
    assert_eq!(hex::encode(&signed), v.str_at("leaf_signed_bytes_hex"));
    let l = Leaf {
        checksum,
        signature: sig(v.str_at("signature_hex")),
        key_hash: KeyHash(unhex32(v.str_at("key_hash_hex"))),
    };
    let bytes = l.to_bytes();
    assert_eq!(hex::encode(bytes), v.str_at("leaf_bytes_hex"));
    assert_eq!(Leaf::from_bytes(&bytes), Ok(l));
    assert_eq!(
        hex::encode(l.leaf_hash()),
        v.str_at("leaf_hash_hex_computed_here")
    );
    assert_eq!(l.to_line(), v.str_at("get_leaves_line"));
    assert_eq!(
        Leaves::parse(v.str_at("get_leaves_line").as_bytes()).map(|x| x.leaves),
        Ok(vec![l])
    );
    // Rejections recorded in the vector.
    let long = [bytes.as_slice(), &[0u8; 9]].concat();
    assert_eq!(Leaf::from_bytes(&long[..127]), Err(LeafError::Length(127)));
    assert_eq!(Leaf::from_bytes(&long[..129]), Err(LeafError::Length(129)));
    assert_eq!(Leaf::from_bytes(&long[..135]), Err(LeafError::Length(135)));
    assert_eq!(Leaf::from_bytes(&long[..137]), Err(LeafError::Length(137)));
    let four = v.str_at("get_leaves_line").replace('\n', " 00\n");
    let e = Leaves::parse(four.as_bytes()).unwrap_err();
    assert_eq!(
        e.reason,
        ascii::Reason::FieldCount {
            expected: 3,
            found: 4
        }
    );
}

#[test]
fn go_tree_head_checkpoint_and_cosigned_message_formatting() {
    let v = &known_answers()["tree_head_formatting"];
    let log_hash = PublicKey([0; 32]).key_hash();
    let th = TreeHead {
        size: v.u64_at("size"),
        root_hash: unhex32(v.str_at("root_hash_hex")),
    };
    assert_eq!(th.checkpoint_body(&log_hash), v.str_at("checkpoint_body"));
    assert_eq!(
        th.cosigned_message(&log_hash, v.u64_at("cosign_timestamp")),
        v.str_at("cosigned_message")
    );
}

#[test]
fn go_v1_signed_tree_head_verifies_and_fails_at_size_plus_one() {
    let v = &known_answers()["signed_tree_head_v1"];
    let log = pk(v.str_at("log_public_key_hex"));
    assert_eq!(log.key_hash().to_hex(), v.str_at("log_key_hash_hex"));
    let sth = SignedTreeHead {
        tree_head: TreeHead {
            size: v.u64_at("size"),
            root_hash: unhex32(v.str_at("root_hash_hex")),
        },
        signature: sig(v.str_at("signature_hex")),
    };
    assert_eq!(sth.checkpoint_body(&log), v.str_at("signed_bytes"));
    assert!(sth.verify(&log));
    let mut next = sth;
    next.tree_head.size += 1;
    assert!(!next.verify(&log));
    assert_eq!(SignedTreeHead::parse(sth.to_ascii().as_bytes()), Ok(sth));
}

#[test]
fn go_v0_sshsig_signed_tree_head_does_not_verify_as_v1() {
    let v = &known_answers()["signed_tree_head_v0"];
    let sth = SignedTreeHead {
        tree_head: TreeHead {
            size: v.u64_at("size"),
            root_hash: unhex32(v.str_at("root_hash_hex")),
        },
        signature: sig(v.str_at("signature_hex")),
    };
    let log = pk(v.str_at("log_public_key_hex"));
    assert!(!sth.verify(&log));
    // The vector is sound: the signature is over the recorded SSHSIG bytes.
    assert!(log.verify(&unhex(v.str_at("signed_bytes_hex")), &sth.signature));
}

#[test]
fn go_checkpoint_signed_by_seed17_carries_our_tree_head_signature() {
    let v = &known_answers()["checkpoint_signed_by_seed17"];
    let k = SigningKey::from_seed(&unhex32(v.str_at("seed_hex")));
    assert_eq!(k.public_key().to_hex(), v.str_at("public_key_hex"));
    assert_eq!(k.public_key().key_hash().to_hex(), v.str_at("key_hash_hex"));
    assert_eq!(origin_for_key(&k.public_key()), v.str_at("origin"));
    let th = TreeHead {
        size: v.u64_at("size"),
        root_hash: unhex32(v.str_at("root_hash_hex")),
    };
    let sth = th.sign(&k);
    let note = v.str_at("signed_note");
    let body = sth.checkpoint_body(&k.public_key());
    assert!(note.starts_with(&format!("{body}\n— {} ", v.str_at("origin"))));
    let blob = note_line_blob(note);
    assert_eq!(blob.len(), 68);
    assert_eq!(hex::encode(&blob[..4]), v.str_at("log_note_key_id_hex"));
    assert_eq!(blob[4..], sth.signature.0);
}

#[test]
fn go_cosignature_seed17_for_a_non_sigsum_origin() {
    let v = &known_answers()["cosignature_line_seed17"];
    let w = SigningKey::from_seed(&unhex32(v.str_at("witness_seed_hex")));
    assert_eq!(w.public_key().to_hex(), v.str_at("witness_public_key_hex"));
    let th = TreeHead {
        size: v.u64_at("size"),
        root_hash: unhex32(v.str_at("root_hash_hex")),
    };
    let origin = v.str_at("checkpoint_origin");
    let ts = v.u64_at("timestamp");
    assert_eq!(
        th.cosigned_message_for_origin(origin, ts),
        v.str_at("cosigned_message")
    );
    let cs = Cosignature::sign_for_origin(&w, &th, origin, ts).expect("timestamp in range");
    assert_eq!(cs.signature.to_hex(), v.str_at("signature_hex"));
    assert!(cs.verify_for_origin(&w.public_key(), &th, origin));
    let mut bumped = cs;
    bumped.timestamp += 1;
    assert!(!bumped.verify_for_origin(&w.public_key(), &th, origin));
    let blob = note_line_blob(v.str_at("note_line"));
    assert_eq!(hex::encode(&blob[..4]), v.str_at("witness_key_id_hex"));
    assert_eq!(blob[4..12], ts.to_be_bytes());
    assert_eq!(blob[12..], cs.signature.0);
}

#[test]
fn go_test_domain_key_and_txt_name() {
    let v = &known_answers()["test_domain_key"];
    let k = SigningKey::from_seed(&unhex32(v.str_at("seed_hex")));
    assert_eq!(
        token::dns_txt_value(&k.public_key()),
        v.str_at("public_key_hex")
    );
    assert_eq!(token::dns_txt_name("test.sigsum.org"), v.str_at("dns_name"));
}

#[test]
fn go_token_header_parse_rules() {
    // The cases in submit_token_header_parse, instantiated.
    let v = &known_answers()["submit_token_header_parse"];
    assert_eq!(v.arr_at("cases").len(), 5);
    let lower = "0b849ed46b71b550d47ae320a8a37401129d71888edcc387b6a604b2fe1579e25479adb0edd1769f9b525d44b843ac0b3527ea12b8d9574676464b2ec6077401";
    let mixed: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    // " <128 hex>": empty domain.
    assert_eq!(
        SubmitHeader::parse(&format!(" {lower}")),
        Err(HeaderError::EmptyDomain)
    );
    // "foo.example.com <128 lowercase hex>": accepted.
    let ok = SubmitHeader::parse(&format!("foo.example.com {lower}")).expect("accepted");
    assert_eq!(ok.domain, "foo.example.com");
    // Mixed case is accepted and written back in lowercase.
    let m = SubmitHeader::parse(&format!("foo.example.com {mixed}")).expect("accepted");
    assert_eq!(m, ok);
    assert_eq!(m.to_header_value(), format!("foo.example.com {lower}"));
    // Two spaces.
    assert_eq!(
        SubmitHeader::parse(&format!("foo.example.com  {lower}")),
        Err(HeaderError::PartCount(3))
    );
    // Bad hex, 129 and 130 hex characters.
    for bad in [
        format!("{}g", &lower[..127]),
        format!("{lower}0"),
        format!("{lower}00"),
    ] {
        assert!(matches!(
            SubmitHeader::parse(&format!("foo.example.com {bad}")),
            Err(HeaderError::Token(_))
        ));
    }
}

// --------------------------------------------------------- log.md examples

#[test]
fn log_md_checkpoint_and_cosignature_examples_have_our_format() {
    let v = json("sigsum/log-md-examples.json");
    let parse_body = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        let origin = lines[0];
        let kh = origin
            .strip_prefix(tree_head::ORIGIN_PREFIX)
            .expect("sigsum origin");
        let th = TreeHead {
            size: lines[1].parse().expect("size"),
            root_hash: b64(lines[2]).try_into().expect("32-byte root"),
        };
        (KeyHash(unhex32(kh)), th)
    };
    let body = v["tree_head_serialization"].str_at("text");
    let (kh, th) = parse_body(body);
    assert_eq!(th.checkpoint_body(&kh), body);

    let cosigned = v["cosignature_serialization"].str_at("text");
    let rest = cosigned
        .strip_prefix("cosignature/v1\ntime 1679315147\n")
        .expect("cosignature header");
    let (kh, th) = parse_body(rest);
    assert_eq!(th.cosigned_message(&kh, 1679315147), cosigned);
}

#[test]
fn log_md_get_tree_head_parses_round_trips_and_its_log_signature_verifies() {
    let v = json("sigsum/log-md-examples.json");
    let g = &v["get_tree_head"];
    let text = g.str_at("response");
    let cth = CosignedTreeHead::parse(text.as_bytes()).expect("parses");
    assert_eq!(cth.to_ascii(), text);
    assert_eq!(cth.tree_head().size, 1285);
    assert_eq!(cth.cosignatures().len(), 2);
    assert!(cth.signed.verify(&pk(g.str_at("log_public_key_hex"))));
}

#[test]
fn log_md_proof_requests_and_responses_parse_and_round_trip() {
    let v = json("sigsum/log-md-examples.json");
    let ip = &v["get_inclusion_proof"];
    let args = ip
        .str_at("request")
        .strip_prefix("get-inclusion-proof/")
        .expect("endpoint");
    let req = InclusionProofRequest::parse_args(args).expect("request parses");
    assert_eq!(req.to_path(), ip.str_at("request"));
    let resp = InclusionProof::parse(ip.str_at("response").as_bytes()).expect("parses");
    assert_eq!(resp.leaf_index, 2);
    assert_eq!(resp.to_ascii(), ip.str_at("response"));

    let cp = &v["get_consistency_proof"];
    let req = ConsistencyProofRequest::parse_args(
        cp.str_at("request")
            .strip_prefix("get-consistency-proof/")
            .expect("endpoint"),
    )
    .expect("request parses");
    assert_eq!(req.to_path(), cp.str_at("request"));
    let resp = ConsistencyProof::parse(cp.str_at("response").as_bytes()).expect("parses");
    assert_eq!(resp.to_ascii(), cp.str_at("response"));
    let old = TreeHead {
        size: 2,
        root_hash: unhex32(cp.str_at("root2_hex")),
    };
    let new = TreeHead {
        size: 5,
        root_hash: unhex32(cp.str_at("root5_hex_derived")),
    };
    assert_eq!(resp.verify(&old, &new), Ok(()));
}

#[test]
fn log_md_get_leaves_parses_with_the_v1_0_1_field_order() {
    let v = json("sigsum/log-md-examples.json");
    let g = &v["get_leaves"];
    let req = LeavesRequest::parse_args(
        g.str_at("request")
            .strip_prefix("get-leaves/")
            .expect("endpoint"),
    )
    .expect("request parses");
    assert_eq!(req.to_path(), g.str_at("request"));
    let leaves = Leaves::parse(g.str_at("response").as_bytes()).expect("parses");
    assert_eq!(leaves.to_ascii(), g.str_at("response"));
    let hashes: Vec<String> = leaves
        .leaves
        .iter()
        .map(|l| hex::encode(l.leaf_hash()))
        .collect();
    let expected: Vec<&str> = g
        .arr_at("leaf_hashes_hex")
        .iter()
        .map(|h| h.as_str().expect("hex string"))
        .collect();
    assert_eq!(hashes, expected);
    // The last leaf hash is node_hash[1] of the consistency example.
    assert_eq!(
        hex::encode(leaves.leaves[2].leaf_hash()),
        v["get_consistency_proof"]
            .str_at("response")
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("node_hash="))
            .expect("second node hash")
    );
}

#[test]
fn log_md_add_leaf_signature_verifies_and_any_flipped_message_byte_is_403() {
    let v = json("sigsum/log-md-examples.json");
    let a = &v["add_leaf"];
    let body = a.str_at("request_body");
    let req = AddLeafRequest::parse(body.as_bytes()).expect("parses");
    assert_eq!(req.to_ascii(), body);
    let l = req.to_leaf().expect("v1 signature verifies");
    assert_eq!(hex::encode(l.checksum), a.str_at("checksum_hex"));
    assert_eq!(l.key_hash.to_hex(), a.str_at("key_hash_hex"));
    assert_eq!(hex::encode(l.leaf_hash()), a.str_at("leaf_hash_hex"));
    for i in 0..32 {
        let mut bad = req;
        bad.message[i] ^= 0x01;
        assert_eq!(bad.to_leaf(), Err(LeafError::BadSignature), "byte {i}");
    }
}

#[test]
fn log_md_token_header_parses_and_round_trips() {
    let v = json("sigsum/log-md-examples.json");
    let line = v["sigsum_token_header"].str_at("header");
    let value = line.strip_prefix("sigsum-token: ").expect("header name");
    let h = SubmitHeader::parse(value).expect("parses");
    assert_eq!(h.domain, "foo.example.com");
    assert_eq!(h.to_header_value(), value);
}

// ------------------------------------------------------ log-go README

#[test]
fn log_go_readme_tree_head_log_signature_and_both_cosignatures_verify() {
    let v = json("log-go/readme-examples.json");
    let log = pk(v.str_at("log_public_key_hex"));
    assert_eq!(log.key_hash().to_hex(), v.str_at("log_key_hash_hex"));
    assert_eq!(origin_for_key(&log), v.str_at("origin"));
    let text = v.str_at("get_tree_head_response");
    let cth = CosignedTreeHead::parse(text.as_bytes()).expect("parses");
    assert_eq!(cth.to_ascii(), text);
    assert_eq!(cth.tree_head().size, 1291);
    assert!(cth.signed.verify(&log));
    let witnesses = v.arr_at("witnesses");
    assert_eq!(witnesses.len(), 2);
    for w in witnesses {
        let wk = pk(w.str_at("public_key_hex"));
        assert_eq!(wk.key_hash().to_hex(), w.str_at("key_hash_hex"));
        let cs = cth.cosignature_by(&wk.key_hash()).expect("cosigned");
        assert!(
            cs.verify(&wk, cth.tree_head(), &log.key_hash()),
            "{}",
            w.str_at("name")
        );
        let mut other_size = *cth.tree_head();
        other_size.size += 1;
        assert!(!cs.verify(&wk, &other_size, &log.key_hash()));
    }
}

#[test]
fn log_go_readme_get_leaves_lines_parse_and_round_trip() {
    let v = json("log-go/readme-examples.json");
    let text = v.str_at("get_leaves_10_12");
    let leaves = Leaves::parse(text.as_bytes()).expect("parses");
    assert_eq!(leaves.leaves.len(), 2);
    assert_eq!(leaves.to_ascii(), text);
}

// ------------------------------------- sigsum-go doc/tools.md (negative)

#[test]
fn doc_tools_v0_leaf_signatures_do_not_verify_as_v1_but_leaf_hashes_match() {
    let v = json("sigsum-go/doc-tools-md-examples.json");
    let submitter = pk(v.str_at("submitter_public_key_hex"));
    assert_eq!(
        submitter.key_hash().to_hex(),
        v.str_at("submitter_key_hash_hex")
    );
    let ex = v.arr_at("examples");
    let first = &ex[0];
    let message = hash(first.str_at("data_utf8").as_bytes());
    assert_eq!(hex::encode(message), first.str_at("message_hex"));
    let l = Leaf {
        checksum: leaf::checksum(&message),
        signature: sig(first.str_at("leaf_signature_hex")),
        key_hash: submitter.key_hash(),
    };
    assert_eq!(hex::encode(l.checksum), first.str_at("checksum_hex"));
    assert_eq!(hex::encode(l.leaf_hash()), first.str_at("leaf_hash_hex"));
    assert_eq!(l.verify(&submitter), Err(LeafError::BadSignature));

    let second = &ex[1];
    let req = AddLeafRequest::parse(second.str_at("request_body").as_bytes()).expect("parses");
    assert_eq!(req.to_ascii(), second.str_at("request_body"));
    assert_eq!(req.to_leaf(), Err(LeafError::BadSignature));
    let l2 = Leaf {
        checksum: leaf::checksum(&req.message),
        signature: req.signature,
        key_hash: req.public_key.key_hash(),
    };
    assert_eq!(hex::encode(l2.checksum), second.str_at("checksum_hex"));
    assert_eq!(hex::encode(l2.leaf_hash()), second.str_at("leaf_hash_hex"));
}

#[test]
fn doc_tools_interim_origin_tree_heads_do_not_verify_as_v1() {
    let v = json("sigsum-go/doc-tools-md-examples.json");
    let log = pk(v.str_at("log_public_key_hex"));
    for ex in v.arr_at("examples") {
        let text = ex.str_at("proof_text");
        let block = ascii::split_blocks(text.as_bytes())[1];
        let mut p = block.parser();
        let cth = CosignedTreeHead::parse_from(&mut p).expect("tree head block parses");
        assert!(
            !cth.signed.verify(&log),
            "v1 must reject the interim origin"
        );
        // The signature is over the interim origin `sigsum.org/v1/<keyhash>`.
        let interim = format!("sigsum.org/v1/{}", log.key_hash());
        let body = cairn_tlog::checkpoint::Checkpoint::new(
            interim,
            cth.tree_head().size,
            cth.tree_head().root_hash,
        )
        .to_body();
        assert!(log.verify(body.as_bytes(), &cth.signed.signature));
    }
}

#[test]
fn doc_tools_v0_token_does_not_verify_as_v1() {
    let v = json("sigsum-go/doc-tools-md-examples.json");
    let t = &v["submit_token"];
    let value = t
        .str_at("header")
        .strip_prefix("sigsum-token: ")
        .expect("header name");
    let h = SubmitHeader::parse(value).expect("format is fine");
    let log = pk(v.str_at("log_public_key_hex"));
    let key = pk(t.str_at("token_key_hex"));
    assert!(!token::verify(&key, &log, &h.token));
    // What it does sign: the v0 SSHSIG blob over the log key.
    let inner = hash(&log.0);
    let mut sshsig = b"SSHSIG".to_vec();
    for field in [
        b"submit-token:v0@sigsum.org".as_slice(),
        b"",
        b"sha256",
        &inner,
    ] {
        sshsig.extend_from_slice(&(field.len() as u32).to_be_bytes());
        sshsig.extend_from_slice(field);
    }
    assert!(key.verify(&sshsig, &h.token));
    assert_eq!(token::dns_txt_record_line(&key), v.str_at("dns_txt_record"));
}

// ------------------------------------------------- cross-checks on layout

#[test]
fn namespaced_leaf_bytes_are_the_documented_56_bytes() {
    let c = [0x11; 32];
    assert_eq!(
        leaf::signed_bytes(&c),
        namespaced("sigsum.org/v1/tree-leaf", &c)
    );
    assert_eq!(leaf::signed_bytes(&c).len(), 56);
}

#[test]
fn parser_reports_the_line_of_a_tampered_vector() {
    let v = derived();
    let text = v["tree_heads"][1].str_at("get_tree_head_response");
    let tampered = text.replacen("cosignature=5", "cosignature=Z", 1);
    let e = CosignedTreeHead::parse(tampered.as_bytes()).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (4, "cosignature"));
    let mut p = Parser::new(text.as_bytes());
    assert!(SignedTreeHead::parse_from(&mut p).is_ok());
    assert_eq!(p.line_number(), 4);
}
