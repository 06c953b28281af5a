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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Hash;
use crate::note::{MAX_TEXT_BYTES, Note, NoteError, NoteSignature, NoteVerifier};
use crate::note::{VerifiedSignature, VerifyError};

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

/// Why a signed checkpoint could not be split into checkpoint and signatures.
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
}
