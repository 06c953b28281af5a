//! Property tests for signed notes, checkpoints and cosignatures: round trips
//! of everything this crate signs, no panics on arbitrary input, and no
//! single-byte change to a signed note that still verifies.

use cairn_tlog::checkpoint::{Checkpoint, MAX_TREE_SIZE, SignedCheckpoint};
use cairn_tlog::cosignature::{Cosigner, cosignature_from_witness_response};
use cairn_tlog::note::{
    Ed25519NoteSigner, Note, NoteSignature, NoteVerifier, SignerKey, VerifierKey, open,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Valid key names: no white space, no '+', no control characters; some
/// non-ASCII to exercise UTF-8 boundaries.
fn key_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9./_:é—-]{1,24}"
}

/// Valid note text: 1–6 lines (possibly empty) of printable characters.
fn note_text() -> impl Strategy<Value = String> {
    vec("[ -~éü—]{0,40}", 1..6).prop_map(|lines| {
        let mut t = lines.join("\n");
        t.push('\n');
        t
    })
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        "[ -~é]{1,40}",
        0..=MAX_TREE_SIZE,
        any::<[u8; 32]>(),
        vec("[ -~]{1,20}", 0..3),
    )
        .prop_map(|(origin, size, root, extensions)| Checkpoint {
            origin,
            size,
            root,
            extensions,
        })
}

fn signed_note(text: &str, name: &str, seed: &[u8; 32]) -> (Vec<u8>, Ed25519NoteSigner) {
    let signer = Ed25519NoteSigner::new(name, seed).expect("strategy yields valid names");
    let note = signer.sign_note(text).expect("strategy yields valid text");
    (note.to_bytes(), signer)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_parse_verify_round_trips_for_several_signers(
        text in note_text(),
        names in vec(key_name(), 1..4),
        seeds in vec(any::<[u8; 32]>(), 4),
    ) {
        let mut note = Note::new(text.clone()).expect("valid text");
        let mut signers = Vec::new();
        for (i, (name, seed)) in names.iter().zip(&seeds).enumerate() {
            // Distinct names keep the keys distinct even if seeds repeat.
            let signer = Ed25519NoteSigner::new(&format!("{name}{i}"), seed).expect("valid");
            note.add_signature(signer.sign(&text)).expect("fits");
            signers.push(signer);
        }
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).expect("own output parses");
        prop_assert_eq!(&parsed, &note);
        prop_assert_eq!(parsed.to_bytes(), bytes.clone());
        let verifiers: Vec<_> = signers.iter().map(Ed25519NoteSigner::verifier).collect();
        let refs: Vec<&dyn NoteVerifier> = verifiers.iter().map(|v| v as &dyn NoteVerifier).collect();
        let (_, verified) = open(&bytes, &refs).expect("verifies");
        prop_assert_eq!(verified.len(), signers.len());
        for (i, m) in verified.iter().enumerate() {
            prop_assert_eq!(m.verifier, i);
            prop_assert_eq!(m.signature, i);
        }
    }

    #[test]
    fn checkpoints_round_trip_through_body_and_cosigned_note(
        cp in checkpoint(),
        seed in any::<[u8; 32]>(),
        ts in 0..=i64::MAX as u64,
    ) {
        prop_assert_eq!(cp.validate(), Ok(()));
        let body = cp.to_body();
        prop_assert_eq!(Checkpoint::parse(&body), Ok(cp.clone()));
        let cosigner = Cosigner::new("example.org/w", &seed).expect("valid");
        let mut note = Note::new(body).expect("valid text");
        note.add_signature(cosigner.note_signature(&cp, ts).expect("signs")).expect("fits");
        let signed = SignedCheckpoint::parse(&note.to_bytes()).expect("parses");
        prop_assert_eq!(signed.checkpoint(), &cp);
        let v = cosigner.verifier();
        prop_assert_eq!(signed.verify(&[&v]).map(|m| m.len()), Ok(1));
        let response = format!("{}\n", cosigner.note_signature(&cp, ts).expect("signs").to_line());
        let got = cosignature_from_witness_response(&cosigner.public_key(), &cp, response.as_bytes())
            .expect("accepted");
        prop_assert_eq!(got.timestamp, ts);
    }

    #[test]
    fn vkeys_round_trip(name in key_name(), seed in any::<[u8; 32]>()) {
        let vkey = Ed25519NoteSigner::new(&name, &seed).expect("valid").vkey();
        prop_assert_eq!(VerifierKey::parse(&vkey.to_string()), Ok(vkey.clone()));
        let cvkey = Cosigner::new(&name, &seed).expect("valid").vkey();
        prop_assert_eq!(VerifierKey::parse(&cvkey.to_string()), Ok(cvkey.clone()));
        prop_assert_ne!(vkey.key_id(), cvkey.key_id());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in vec(any::<u8>(), 0..600)) {
        let _ = Note::parse(&bytes);
        let _ = SignedCheckpoint::parse(&bytes);
        let s = String::from_utf8_lossy(&bytes);
        let _ = Checkpoint::parse(&s);
        let _ = NoteSignature::parse_line(&s);
        let _ = VerifierKey::parse(&s);
        let _ = SignerKey::parse(&s);
        let cp = Checkpoint::new("o", 1, [0; 32]);
        let _ = cosignature_from_witness_response(&[0x11; 32], &cp, &bytes);
    }

    #[test]
    fn note_shaped_garbage_never_panics_the_parsers(
        head in "[a-z0-9\n+=/ ]{0,60}",
        name in "[a-z+ \u{2014}]{0,8}",
        b64 in "[A-Za-z0-9+/=]{0,120}",
        tail in "[\n a-z\u{2014}]{0,8}",
    ) {
        let s = format!("{head}\n\n\u{2014} {name} {b64}{tail}\n");
        if let Ok(note) = Note::parse(s.as_bytes()) {
            // Whatever parses serializes back to the same bytes.
            prop_assert_eq!(note.to_bytes(), s.as_bytes());
        }
        if let Ok(cp) = Checkpoint::parse(&head) {
            prop_assert_eq!(cp.to_body(), head.clone());
        }
        let _ = VerifierKey::parse(&format!("{name}+{}+{b64}", head.get(..8).unwrap_or("")));
    }

}

proptest! {
    // The tamper-evidence property is the one that matters most: run more cases.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn any_single_byte_change_to_a_signed_note_fails_parse_or_verify(
        text in note_text(),
        name in key_name(),
        seed in any::<[u8; 32]>(),
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        let (bytes, signer) = signed_note(&text, &name, &seed);
        let i = at.index(bytes.len());
        let mut mutated = bytes.clone();
        let Some(b) = mutated.get_mut(i) else {
            return Err(TestCaseError::fail("index out of range"));
        };
        prop_assume!(*b != byte);
        *b = byte;
        let v = signer.verifier();
        prop_assert!(open(&mutated, &[&v]).is_err(), "mutation at {} to {:#04x} still verifies", i, byte);
    }

    #[test]
    fn any_single_byte_change_to_a_cosigned_checkpoint_fails_parse_or_verify(
        cp in checkpoint(),
        seed in any::<[u8; 32]>(),
        ts in 0..=i64::MAX as u64,
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        let cosigner = Cosigner::new("example.org/w", &seed).expect("valid");
        let mut note = Note::new(cp.to_body()).expect("valid text");
        note.add_signature(cosigner.note_signature(&cp, ts).expect("signs")).expect("fits");
        let mut mutated = note.to_bytes();
        let i = at.index(mutated.len());
        let Some(b) = mutated.get_mut(i) else {
            return Err(TestCaseError::fail("index out of range"));
        };
        prop_assume!(*b != byte);
        *b = byte;
        let v = cosigner.verifier();
        prop_assert!(open(&mutated, &[&v]).is_err(), "mutation at {} to {:#04x} still verifies", i, byte);
    }
}
