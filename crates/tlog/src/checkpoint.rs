//! C2SP tlog-checkpoint (<https://c2sp.org/tlog-checkpoint>): the signed body
//! of a tree head.
//!
//! ```text
//! <origin>\n
//! <decimal tree size>\n
//! <base64 root hash>\n
//! [extension lines]\n
//! ```
//!
//! Parsing follows the spec and Sigsum's stricter integer rule: the size is
//! `0|[1-9][0-9]*` and at most 2^63−1 (sigsum-protocol.md §1); the root is
//! canonical padded standard base64 of exactly 32 bytes; every line is
//! non-empty and newline-terminated. Sigsum additionally forbids extension
//! lines; that is the caller's policy, not a format rule.
//!
//! A signed checkpoint is a signed note whose text is the body
//! ([`SignedCheckpoint`]); [`SignedCheckpoint::assemble`] is the one place
//! that builds one from a log signature and witness cosignatures made
//! elsewhere.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Hash;
use crate::cosignature::Cosignature;
use crate::note::{MAX_TEXT_BYTES, Note, NoteError, NoteSignature, NoteVerifier};
use crate::note::{
    SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, VerifiedSignature, VerifyError, key_id,
};

/// Largest tree size a checkpoint may carry: 2^63−1, as in Sigsum and C2SP
/// tlog-cosignature timestamps, so sizes survive signed 64-bit consumers.
pub const MAX_TREE_SIZE: u64 = i64::MAX as u64;

/// A checkpoint body (without signatures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log identity, first line. Non-empty, no newline.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 root of the first `size` leaves.
    pub root: Hash,
    /// Optional extension lines, in order, without their newlines (Sigsum uses none).
    pub extensions: Vec<String>,
}

/// What is wrong with a tree-size line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// A character other than an ASCII digit (signs included).
    #[error("not a decimal number")]
    NotDecimal,
    /// More than one digit and the first is `0`.
    #[error("leading zero")]
    LeadingZero,
    /// Larger than [`MAX_TREE_SIZE`].
    #[error("larger than 2^63-1")]
    TooLarge,
}

/// Why a checkpoint body is malformed. Lines count from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The body exceeds [`MAX_TEXT_BYTES`].
    #[error("checkpoint body is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Size of the body.
        len: usize,
        /// The limit applied.
        max: usize,
    },
    /// The body does not end in a newline.
    #[error("checkpoint body does not end with a newline")]
    NotTerminated,
    /// Fewer than the three mandatory lines.
    #[error("checkpoint body has {lines} line(s); origin, size and root hash are required")]
    MissingLines {
        /// Number of lines found.
        lines: usize,
    },
    /// An empty line: origin, size, root and extensions must all be non-empty.
    #[error("line {line}: empty {field}")]
    EmptyLine {
        /// The empty line.
        line: usize,
        /// What the line should hold.
        field: &'static str,
    },
    /// An ASCII control character other than newline.
    #[error("line {line}: control character {byte:#04x}")]
    ControlCharacter {
        /// Line holding the character.
        line: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The tree size line (line 2) is not a canonical decimal ≤ 2^63−1.
    #[error("line 2: invalid tree size: {0}")]
    Size(SizeError),
    /// The root hash line (line 3) is not canonical padded standard base64.
    #[error("line 3: root hash is not canonical padded standard base64")]
    RootBase64,
    /// The root hash line (line 3) decodes to other than 32 bytes.
    #[error("line 3: root hash decodes to {len} bytes, want 32")]
    RootLength {
        /// Decoded length.
        len: usize,
    },
}

/// Why a signed checkpoint could not be split into checkpoint and signatures
/// ([`SignedCheckpoint::parse`]) or put together from them
/// ([`SignedCheckpoint::assemble`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignedCheckpointError {
    /// The bytes are not a well-formed signed note.
    #[error("malformed note: {0}")]
    Note(#[from] NoteError),
    /// The note text is not a well-formed checkpoint.
    #[error("malformed checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

impl Checkpoint {
    /// A checkpoint with no extension lines.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Self {
        Checkpoint {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The exact body bytes that a log signs. Only meaningful for a checkpoint
    /// that passes [`Checkpoint::validate`]; otherwise the result does not parse.
    pub fn to_body(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Parses a checkpoint body strictly (see the module docs). Accepts
    /// exactly the strings that [`Checkpoint::to_body`] produces for valid
    /// checkpoints, so `parse(b)?.to_body() == b`.
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        if body.len() > MAX_TEXT_BYTES {
            return Err(CheckpointError::TooLarge {
                len: body.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        let Some(content) = body.strip_suffix('\n') else {
            return Err(CheckpointError::NotTerminated);
        };
        let lines: Vec<&str> = content.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if let Some(byte) = line.bytes().find(|&b| b < 0x20) {
                return Err(CheckpointError::ControlCharacter { line: i + 1, byte });
            }
            if line.is_empty() {
                let field = match i {
                    0 => "origin",
                    1 => "tree size",
                    2 => "root hash",
                    _ => "extension line",
                };
                return Err(CheckpointError::EmptyLine { line: i + 1, field });
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::MissingLines { lines: lines.len() });
        };
        let size = parse_size(size).map_err(CheckpointError::Size)?;
        let root = STANDARD
            .decode(root)
            .map_err(|_| CheckpointError::RootBase64)?;
        let root = Hash::try_from(root.as_slice())
            .map_err(|_| CheckpointError::RootLength { len: root.len() })?;
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size,
            root,
            extensions: extensions.iter().map(|&e| e.to_owned()).collect(),
        })
    }

    /// Parses the text of a signed note as a checkpoint.
    pub fn from_note(note: &Note) -> Result<Self, CheckpointError> {
        Self::parse(note.text())
    }

    /// Checks that [`Checkpoint::to_body`] yields a body that
    /// [`Checkpoint::parse`] accepts and maps back to `self`: non-empty lines
    /// without control characters, size ≤ [`MAX_TREE_SIZE`], body within
    /// [`MAX_TEXT_BYTES`]. Signers call this before signing.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.size > MAX_TREE_SIZE {
            return Err(CheckpointError::Size(SizeError::TooLarge));
        }
        check_field(1, "origin", &self.origin)?;
        for (i, e) in self.extensions.iter().enumerate() {
            check_field(4 + i, "extension line", e)?;
        }
        let len = self.to_body().len();
        if len > MAX_TEXT_BYTES {
            return Err(CheckpointError::TooLarge {
                len,
                max: MAX_TEXT_BYTES,
            });
        }
        Ok(())
    }
}

/// A free-text line (origin or extension) must be non-empty and free of
/// control characters, newline included, or the body's lines shift.
fn check_field(line: usize, field: &'static str, value: &str) -> Result<(), CheckpointError> {
    if value.is_empty() {
        return Err(CheckpointError::EmptyLine { line, field });
    }
    if let Some(byte) = value.bytes().find(|&b| b < 0x20) {
        return Err(CheckpointError::ControlCharacter { line, byte });
    }
    Ok(())
}

/// Parses a tree size: `0|[1-9][0-9]*`, at most [`MAX_TREE_SIZE`].
fn parse_size(s: &str) -> Result<u64, SizeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::NotDecimal);
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(SizeError::LeadingZero);
    }
    let v = s.parse::<u64>().map_err(|_| SizeError::TooLarge)?;
    if v > MAX_TREE_SIZE {
        return Err(SizeError::TooLarge);
    }
    Ok(v)
}

/// A witness's `cosignature/v1` line for [`SignedCheckpoint::assemble`]: who
/// (key name and Ed25519 public key, from which the line's key ID derives)
/// and what (timestamp and signature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CosignatureLine<'a> {
    /// The cosigner's key name (its note name).
    pub name: &'a str,
    /// The cosigner's Ed25519 public key.
    pub public_key: &'a [u8; 32],
    /// The timestamp and signature.
    pub cosignature: Cosignature,
}

/// A signed note whose text is a checkpoint: the checkpoint and its signature
/// lines, kept together so verification is over exactly the parsed body.
///
/// Invariant: `note.text() == checkpoint.to_body()`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
}

impl SignedCheckpoint {
    /// Parses a signed note (strict, [`Note::parse`]) and its text as a
    /// checkpoint. Verifies nothing; see [`SignedCheckpoint::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Self, SignedCheckpointError> {
        Ok(Self::from_note(Note::parse(bytes)?)?)
    }

    /// Assembles the signed checkpoint note of `checkpoint` from signatures
    /// made elsewhere: the body, then the log's Ed25519 (type 0x01) line
    /// with key name = the origin and the key ID of the origin and
    /// `log_public_key` (as C2SP tlog-checkpoint and Sigsum name a log's
    /// signature), then one `cosignature/v1` (type 0x04) line per element of
    /// `cosignatures`, in their order. With no cosignatures this is what a
    /// witness is sent; with them, a log's published `checkpoint`.
    ///
    /// Checks formats only: the checkpoint must pass
    /// [`Checkpoint::validate`] ([`SignedCheckpointError::Checkpoint`]), the
    /// origin and every cosigner name must be valid key names, and the note
    /// must fit the note limits ([`SignedCheckpointError::Note`], naming
    /// the signature line at fault). No signature is verified: a caller that
    /// passes on signatures it did not make verifies them first, or
    /// verifies the result ([`SignedCheckpoint::verify`]).
    pub fn assemble(
        checkpoint: Checkpoint,
        log_public_key: &[u8; 32],
        log_signature: &[u8; 64],
        cosignatures: &[CosignatureLine<'_>],
    ) -> Result<Self, SignedCheckpointError> {
        checkpoint.validate()?;
        let mut note = Note::new(checkpoint.to_body())?;
        // Line numbers count over the whole note: the body's lines, the
        // blank line, then the signature lines.
        let first_line = 3 + checkpoint.extensions.len() + 2;
        let log_line = NoteSignature::new(
            checkpoint.origin.as_str(),
            key_id(&checkpoint.origin, SIG_TYPE_ED25519, log_public_key),
            log_signature.to_vec(),
        )
        .map_err(|reason| NoteError::SignatureLine {
            line: first_line,
            reason,
        })?;
        note.add_signature(log_line)?;
        for (i, c) in cosignatures.iter().enumerate() {
            let line = NoteSignature::new(
                c.name,
                key_id(c.name, SIG_TYPE_COSIGNATURE_V1, c.public_key),
                c.cosignature.to_blob().to_vec(),
            )
            .map_err(|reason| NoteError::SignatureLine {
                line: first_line + 1 + i,
                reason,
            })?;
            note.add_signature(line)?;
        }
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// Interprets an already parsed note as a signed checkpoint.
    pub fn from_note(note: Note) -> Result<Self, CheckpointError> {
        let checkpoint = Checkpoint::from_note(&note)?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The note (text = checkpoint body, plus signatures).
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        self.note.signatures()
    }

    /// Splits into checkpoint and signature lines.
    pub fn into_parts(self) -> (Checkpoint, Vec<NoteSignature>) {
        (self.checkpoint, self.note.into_parts().1)
    }

    /// Verifies the signatures with [`Note::verify`] semantics.
    pub fn verify(
        &self,
        verifiers: &[&dyn NoteVerifier],
    ) -> Result<Vec<VerifiedSignature>, VerifyError> {
        self.note.verify(verifiers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "example.com/log\n10\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    #[test]
    fn body_round_trips() {
        let c = Checkpoint::parse(BODY).expect("parses");
        assert_eq!(c.origin, "example.com/log");
        assert_eq!(c.size, 10);
        assert_eq!(c.root[..3], [0x1c, 0x0e, 0x47]);
        assert_eq!(c.to_body(), BODY);
        let with_ext = format!("{BODY}ext one\next two\n");
        let c = Checkpoint::parse(&with_ext).expect("parses");
        assert_eq!(c.extensions, ["ext one", "ext two"]);
        assert_eq!(c.to_body(), with_ext);
    }

    #[test]
    fn sizes_must_be_canonical_and_at_most_2_pow_63_minus_1() {
        let root = "HA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let body = |s: &str| format!("o\n{s}\n{root}\n");
        assert_eq!(Checkpoint::parse(&body("0")).map(|c| c.size), Ok(0));
        assert_eq!(
            Checkpoint::parse(&body("9223372036854775807")).map(|c| c.size),
            Ok(MAX_TREE_SIZE)
        );
        for (s, e) in [
            ("9223372036854775808", SizeError::TooLarge),
            ("99999999999999999999999", SizeError::TooLarge),
            ("01", SizeError::LeadingZero),
            ("00", SizeError::LeadingZero),
            ("+1", SizeError::NotDecimal),
            ("-1", SizeError::NotDecimal),
            ("1 ", SizeError::NotDecimal),
            ("١", SizeError::NotDecimal),
        ] {
            assert_eq!(
                Checkpoint::parse(&body(s)),
                Err(CheckpointError::Size(e)),
                "{s}"
            );
        }
    }

    #[test]
    fn malformed_bodies_name_line_and_reason() {
        let root = "HA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let cases = [
            (
                "o\n1\n".to_owned(),
                CheckpointError::MissingLines { lines: 2 },
            ),
            (format!("o\n1\n{root}"), CheckpointError::NotTerminated),
            (
                format!("\n1\n{root}\n"),
                CheckpointError::EmptyLine {
                    line: 1,
                    field: "origin",
                },
            ),
            (
                format!("o\n1\n{root}\n\n"),
                CheckpointError::EmptyLine {
                    line: 4,
                    field: "extension line",
                },
            ),
            (
                format!("o\r\n1\n{root}\n"),
                CheckpointError::ControlCharacter {
                    line: 1,
                    byte: b'\r',
                },
            ),
            (
                "o\n1\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n".to_owned(),
                CheckpointError::RootBase64,
            ),
            (
                "o\n1\nHA5HAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n".to_owned(),
                CheckpointError::RootBase64,
            ),
            (
                "o\n1\nAAAA\n".to_owned(),
                CheckpointError::RootLength { len: 3 },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(Checkpoint::parse(&body), Err(want), "{body:?}");
        }
    }

    #[test]
    fn validate_rejects_what_would_not_round_trip() {
        let ok = Checkpoint::new("o", 1, [0; 32]);
        assert_eq!(ok.validate(), Ok(()));
        assert!(Checkpoint::new("", 1, [0; 32]).validate().is_err());
        assert!(Checkpoint::new("a\nb", 1, [0; 32]).validate().is_err());
        assert!(
            Checkpoint::new("o", MAX_TREE_SIZE + 1, [0; 32])
                .validate()
                .is_err()
        );
        let mut ext = ok.clone();
        ext.extensions.push(String::new());
        assert!(ext.validate().is_err());
        ext.extensions = vec!["a\nb".into()];
        assert_eq!(
            ext.validate(),
            Err(CheckpointError::ControlCharacter {
                line: 4,
                byte: b'\n'
            })
        );
    }

    mod assemble {
        use super::*;
        use crate::cosignature::Cosigner;
        use crate::note::{Ed25519NoteSigner, KeyNameError, SignatureLineError};

        const ORIGIN: &str = "example.org/log";

        fn log() -> Ed25519NoteSigner {
            Ed25519NoteSigner::new(ORIGIN, &[7; 32]).expect("valid name")
        }

        fn log_signature(body: &str) -> [u8; 64] {
            log()
                .sign(body)
                .blob()
                .try_into()
                .expect("an Ed25519 signature")
        }

        #[test]
        fn without_cosignatures_it_is_the_note_the_log_key_signs() {
            let cp = Checkpoint::new(ORIGIN, 12, [3; 32]);
            let sig = log_signature(&cp.to_body());
            let assembled = SignedCheckpoint::assemble(cp.clone(), &log().public_key(), &sig, &[])
                .expect("assembles");
            let signed = log().sign_note(&cp.to_body()).expect("valid body");
            assert_eq!(assembled.note().to_bytes(), signed.to_bytes());
            assert_eq!(assembled.checkpoint(), &cp);
        }

        #[test]
        fn cosignature_lines_follow_the_log_line_in_order_and_all_verify() {
            let cp = Checkpoint::new(ORIGIN, 12, [3; 32]);
            let witnesses = [
                Cosigner::new("w2.example", &[2; 32]).expect("valid name"),
                Cosigner::new("w1.example", &[1; 32]).expect("valid name"),
            ];
            let keys: Vec<[u8; 32]> = witnesses.iter().map(Cosigner::public_key).collect();
            let lines: Vec<CosignatureLine<'_>> = witnesses
                .iter()
                .zip(&keys)
                .map(|(w, key)| CosignatureLine {
                    name: w.name(),
                    public_key: key,
                    cosignature: w.cosign(&cp, 1_700_000_000).expect("cosigns"),
                })
                .collect();
            let sig = log_signature(&cp.to_body());
            let assembled =
                SignedCheckpoint::assemble(cp.clone(), &log().public_key(), &sig, &lines)
                    .expect("assembles");
            let bytes = assembled.note().to_bytes();
            let parsed = SignedCheckpoint::parse(&bytes).expect("parses");
            assert_eq!(parsed, assembled);
            let names: Vec<&str> = parsed.signatures().iter().map(|s| s.name()).collect();
            assert_eq!(names, [ORIGIN, "w2.example", "w1.example"]);
            let (v0, v1, v2) = (
                log().verifier(),
                witnesses[0].verifier(),
                witnesses[1].verifier(),
            );
            assert_eq!(parsed.verify(&[&v0, &v1, &v2]).map(|v| v.len()), Ok(3));
            // Each cosignature line is exactly the one its cosigner makes.
            for (line, w) in parsed.signatures()[1..].iter().zip(&witnesses) {
                assert_eq!(line, &w.note_signature(&cp, 1_700_000_000).expect("signs"));
            }
        }

        #[test]
        fn an_invalid_checkpoint_or_key_name_is_refused_naming_the_line() {
            let sig = [9; 64];
            let key = log().public_key();
            assert_eq!(
                SignedCheckpoint::assemble(
                    Checkpoint::new(ORIGIN, MAX_TREE_SIZE + 1, [0; 32]),
                    &key,
                    &sig,
                    &[]
                ),
                Err(SignedCheckpointError::Checkpoint(CheckpointError::Size(
                    SizeError::TooLarge
                )))
            );
            // A valid checkpoint origin that is not a valid key name.
            assert_eq!(
                SignedCheckpoint::assemble(Checkpoint::new("a log", 1, [0; 32]), &key, &sig, &[]),
                Err(SignedCheckpointError::Note(NoteError::SignatureLine {
                    line: 5,
                    reason: SignatureLineError::KeyName(KeyNameError::Whitespace {
                        offset: 1,
                        ch: ' ',
                    }),
                }))
            );
            let bad = CosignatureLine {
                name: "w+1",
                public_key: &[1; 32],
                cosignature: Cosignature {
                    timestamp: 1,
                    signature: [0; 64],
                },
            };
            let good = CosignatureLine { name: "w0", ..bad };
            assert!(matches!(
                SignedCheckpoint::assemble(
                    Checkpoint::new(ORIGIN, 1, [0; 32]),
                    &key,
                    &sig,
                    &[good, bad]
                ),
                Err(SignedCheckpointError::Note(NoteError::SignatureLine {
                    line: 7,
                    ..
                }))
            ));
        }
    }
}
