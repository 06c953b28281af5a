//! C2SP signed-note (<https://c2sp.org/signed-note>): a text signed by one or
//! more keys.
//!
//! ```text
//! <text, one or more lines, each ending in \n>
//! \n
//! — <key name> <base64(key ID(4) || signature)>\n     (one or more)
//! ```
//!
//! * The note is UTF-8 without ASCII control characters other than `\n`; the
//!   text ends in `\n` and is separated from the signatures by the *last*
//!   empty line, so the text itself may contain empty lines.
//! * A key is identified by the pair (key name, key ID). The key ID is
//!   `SHA-256(name || 0x0a || type || public key)[:4]` ([`key_id`]).
//! * Verification ([`Note::verify`], [`open`]) ignores lines from unknown keys,
//!   rejects the whole note if a line from a known key fails to verify or
//!   repeats, and requires at least one verified known key.
//! * Keys travel as *vkeys* `<name>+<hex key ID>+<base64(type || key)>`
//!   ([`VerifierKey`]) and, for test and tooling keys, *skeys*
//!   `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>` ([`SignerKey`]).
//!
//! Parsing is strict on purpose: base64 must be canonical (RFC 4648 §4 with
//! padding and zero trailing bits), which makes serialization byte-exact and
//! means any change to a signature line changes the bytes it decodes to.
//! Go's `encoding/base64` accepts non-zero trailing bits; a note that differs
//! only there is rejected here.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::hash::sha256;

/// A signed-note key ID: the first four bytes of
/// `SHA-256(name || 0x0a || type || public key)`, big-endian as on the wire.
pub type KeyId = [u8; 4];

/// Signature type byte of plain Ed25519 note signatures (signed-note §Ed25519).
pub const SIG_TYPE_ED25519: u8 = 0x01;

/// Signature type byte of Ed25519 `cosignature/v1` timestamped cosignatures
/// (C2SP tlog-cosignature); see [`crate::cosignature`].
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;

/// Signature type byte of ML-DSA-44 subtree cosignatures (C2SP
/// tlog-cosignature). Recognised in vkeys only; this crate cannot verify them.
pub const SIG_TYPE_ML_DSA_44_COSIGNATURE: u8 = 0x06;

/// Length of an Ed25519 public key or seed.
pub const ED25519_KEY_LEN: usize = 32;

/// Length of an ML-DSA-44 public key (FIPS 204).
pub const ML_DSA_44_PUBLIC_KEY_LEN: usize = 1312;

/// Most signature lines [`Note::parse`] accepts. C2SP requires accepting at
/// least 16 and asks for *some* limit; 100 is the limit of Go's
/// `golang.org/x/mod/sumdb/note`, so every note Go accepts parses here.
pub const MAX_SIGNATURES: usize = 100;

/// The stricter limit of sigsum-go's checkpoint parser (used by its witness
/// and log): at most 16 signature lines. Apply it with
/// [`Note::parse_with_max_signatures`] where Sigsum behaviour is wanted.
pub const SIGSUM_MAX_SIGNATURES: usize = 16;

/// Largest note text [`Note::parse`] accepts, in bytes. Checkpoints are a few
/// hundred bytes; the cap bounds the work of verifying many signatures over a
/// hostile text.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;

/// Largest whole note (text, blank line and signature lines) that
/// [`Note::parse`] accepts, in bytes. Leaves room for [`MAX_SIGNATURES`]
/// post-quantum signature lines of several kilobytes each.
pub const MAX_NOTE_BYTES: usize = 1024 * 1024;

/// The signature-line prefix: em dash U+2014 (UTF-8 `e2 80 94`) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Ed25519 signature length.
const ED25519_SIG_LEN: usize = 64;

/// The key ID of the key `key` with signature type `sig_type` under the name
/// `name`: `SHA-256(name || 0x0a || sig_type || key)[:4]`.
///
/// Does not validate the name; see [`validate_key_name`].
pub fn key_id(name: &str, sig_type: u8, key: &[u8]) -> KeyId {
    let mut pre = Vec::with_capacity(name.len() + 2 + key.len());
    pre.extend_from_slice(name.as_bytes());
    pre.push(b'\n');
    pre.push(sig_type);
    pre.extend_from_slice(key);
    let h = sha256(&pre);
    [h[0], h[1], h[2], h[3]]
}

/// Why a key name is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyNameError {
    /// The name is the empty string.
    #[error("key name is empty")]
    Empty,
    /// The name contains a Unicode white-space character.
    #[error("key name contains white space U+{:04X} at byte {offset}", u32::from(*.ch))]
    Whitespace {
        /// Byte offset of the character in the name.
        offset: usize,
        /// The offending character.
        ch: char,
    },
    /// The name contains `+`, which separates the fields of a vkey.
    #[error("key name contains '+' at byte {offset}")]
    Plus {
        /// Byte offset of the `+` in the name.
        offset: usize,
    },
    /// The name contains an ASCII control character, which no note may hold.
    #[error("key name contains control character U+{:04X} at byte {offset}", u32::from(*.ch))]
    Control {
        /// Byte offset of the character in the name.
        offset: usize,
        /// The offending character.
        ch: char,
    },
}

/// Checks a key name: non-empty, no Unicode white space, no `+` and no ASCII
/// control character (signed-note §Format).
pub fn validate_key_name(name: &str) -> Result<(), KeyNameError> {
    if name.is_empty() {
        return Err(KeyNameError::Empty);
    }
    for (offset, ch) in name.char_indices() {
        if ch.is_whitespace() {
            return Err(KeyNameError::Whitespace { offset, ch });
        }
        if ch < ' ' {
            return Err(KeyNameError::Control { offset, ch });
        }
        if ch == '+' {
            return Err(KeyNameError::Plus { offset });
        }
    }
    Ok(())
}

/// Why one signature line is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureLineError {
    /// The line does not start with an em dash (U+2014) and a space.
    #[error("does not start with an em dash (U+2014) and a space")]
    MissingEmDash,
    /// There is no space between the key name and the signature.
    #[error("no space between key name and signature")]
    MissingSignature,
    /// The key name is invalid.
    #[error("invalid key name: {0}")]
    KeyName(#[from] KeyNameError),
    /// The signature field is empty.
    #[error("empty signature")]
    EmptySignature,
    /// The line contains an ASCII control character.
    #[error("control character {byte:#04x} at byte {offset}")]
    ControlCharacter {
        /// Byte offset in the line.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The signature is not canonical padded standard base64.
    #[error("signature is not canonical padded standard base64")]
    InvalidBase64,
    /// The decoded signature is too short to hold a key ID and a signature.
    #[error("decoded signature is {len} bytes; at least 5 (key ID and signature) are required")]
    TooShort {
        /// Decoded length.
        len: usize,
    },
}

/// Why a note is malformed. Line numbers count from 1 over the whole note.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The whole note exceeds [`MAX_NOTE_BYTES`].
    #[error("note is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Size of the input.
        len: usize,
        /// The limit applied.
        max: usize,
    },
    /// The note text exceeds [`MAX_TEXT_BYTES`].
    #[error("note text is {len} bytes; the limit is {max}")]
    TextTooLarge {
        /// Size of the text.
        len: usize,
        /// The limit applied.
        max: usize,
    },
    /// The note is not valid UTF-8.
    #[error("note is not UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first byte that is not valid UTF-8.
        offset: usize,
    },
    /// The note contains an ASCII control character other than newline.
    #[error("line {line}: control character {byte:#04x}")]
    ControlCharacter {
        /// Line holding the character.
        line: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The text is empty or does not end in a newline.
    #[error("note text does not end with a newline")]
    TextNotTerminated,
    /// There is no empty line separating text and signatures.
    #[error("no empty line separates the text from signature lines")]
    MissingSignatureBlock,
    /// The note ends with the separating empty line: no signature lines.
    #[error("note has no signature lines")]
    NoSignatures,
    /// The last signature line does not end in a newline.
    #[error("line {line}: signature line does not end with a newline")]
    UnterminatedSignatureLine {
        /// The unterminated line.
        line: usize,
    },
    /// More signature lines than the limit applied.
    #[error("note has {count} signature lines; the limit is {max}")]
    TooManySignatures {
        /// Number of signature lines found (or, when adding, that would result).
        count: usize,
        /// The limit applied.
        max: usize,
    },
    /// A signature line is malformed.
    #[error("line {line}: malformed signature line: {reason}")]
    SignatureLine {
        /// The malformed line.
        line: usize,
        /// What is wrong with it.
        reason: SignatureLineError,
    },
}

/// One signature line of a note: key name, key ID and the signature bytes
/// that follow the key ID (the *blob*; its format depends on the key type).
///
/// Invariant: the name is valid ([`validate_key_name`]) and the blob is
/// non-empty, so [`NoteSignature::to_line`] always yields a line that
/// [`NoteSignature::parse_line`] accepts and maps back to an equal value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NoteSignature {
    name: String,
    key_id: KeyId,
    blob: Vec<u8>,
}

impl NoteSignature {
    /// A signature line by key (`name`, `key_id`) with signature bytes `blob`.
    /// Fails if the name is invalid or the blob is empty.
    pub fn new(
        name: impl Into<String>,
        key_id: KeyId,
        blob: Vec<u8>,
    ) -> Result<Self, SignatureLineError> {
        let name = name.into();
        validate_key_name(&name)?;
        if blob.is_empty() {
            return Err(SignatureLineError::TooShort { len: 4 });
        }
        Ok(NoteSignature { name, key_id, blob })
    }

    /// Builds a line whose invariant the caller has already established
    /// (valid name, non-empty blob).
    pub(crate) fn from_valid_parts(name: String, key_id: KeyId, blob: Vec<u8>) -> Self {
        debug_assert!(validate_key_name(&name).is_ok() && !blob.is_empty());
        NoteSignature { name, key_id, blob }
    }

    /// Parses one signature line `— <name> <base64(key ID || blob)>`, given
    /// without its trailing newline. Strict: canonical base64, at least one
    /// blob byte, valid key name, no control characters.
    pub fn parse_line(line: &str) -> Result<Self, SignatureLineError> {
        if let Some((offset, byte)) = line.bytes().enumerate().find(|&(_, b)| b < 0x20) {
            return Err(SignatureLineError::ControlCharacter { offset, byte });
        }
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or(SignatureLineError::MissingEmDash)?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(SignatureLineError::MissingSignature)?;
        validate_key_name(name)?;
        if b64.is_empty() {
            return Err(SignatureLineError::EmptySignature);
        }
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| SignatureLineError::InvalidBase64)?;
        match raw.split_first_chunk::<4>() {
            Some((id, blob)) if !blob.is_empty() => Ok(NoteSignature {
                name: name.to_owned(),
                key_id: *id,
                blob: blob.to_vec(),
            }),
            _ => Err(SignatureLineError::TooShort { len: raw.len() }),
        }
    }

    /// The line `— <name> <base64(key ID || blob)>`, without a trailing newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.blob.len());
        raw.extend_from_slice(&self.key_id);
        raw.extend_from_slice(&self.blob);
        format!("{SIG_PREFIX}{} {}", self.name, STANDARD.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature bytes after the key ID.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// Length of the serialized line including its newline.
    fn encoded_len(&self) -> usize {
        SIG_PREFIX.len() + self.name.len() + 1 + (4 + self.blob.len()).div_ceil(3) * 4 + 1
    }
}

/// Something that can check note signatures of one key.
///
/// Contract: `name` and `key_id` are constant for the value's lifetime and
/// identify the key as it appears on signature lines. `verify` is given the
/// note text (with its final newline) and the signature bytes after the key
/// ID; it returns `true` only if they are a valid signature by this key. It
/// must not panic on any input (blobs come from untrusted notes) and must not
/// depend on anything but its arguments and the key.
pub trait NoteVerifier {
    /// The key name signature lines use.
    fn name(&self) -> &str;
    /// The key ID signature lines use.
    fn key_id(&self) -> KeyId;
    /// Whether `blob` is a valid signature by this key over `text`.
    fn verify(&self, text: &[u8], blob: &[u8]) -> bool;
}

/// A signature line that [`Note::verify`] checked and accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// Index into the verifier slice passed to [`Note::verify`].
    pub verifier: usize,
    /// Index into [`Note::signatures`].
    pub signature: usize,
}

/// Why a well-formed note was not accepted. Line numbers count from 1 over
/// the whole note.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A line matched a known key's name and key ID but did not verify. C2SP
    /// signed-note lets clients reject the whole note then; this crate does.
    #[error("line {line}: signature by known key {name}+{} does not verify", fmt_key_id(.key_id))]
    InvalidSignature {
        /// The failing line.
        line: usize,
        /// Its key name.
        name: String,
        /// Its key ID.
        key_id: KeyId,
    },
    /// A known key signed twice. sigsum-go rejects this, and Sigsum made it
    /// normative (sigsum-protocol.md §5); Go's note package merely drops repeats.
    #[error("line {line}: second signature by known key {name}+{}", fmt_key_id(.key_id))]
    DuplicateSignature {
        /// The repeated line.
        line: usize,
        /// Its key name.
        name: String,
        /// Its key ID.
        key_id: KeyId,
    },
    /// No line is from a known key.
    #[error("no signature from a known key")]
    NoKnownSignature,
}

/// Why [`open`] refused a note.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The note is malformed.
    #[error("malformed note: {0}")]
    Malformed(#[from] NoteError),
    /// The note is well-formed but its signatures are not acceptable.
    #[error("note not verified: {0}")]
    Verify(#[from] VerifyError),
}

/// A signed note: text and signature lines.
///
/// Invariant: the text is valid note text (ends in `\n`, no control
/// characters other than `\n`, at most [`MAX_TEXT_BYTES`]), there are at most
/// [`MAX_SIGNATURES`] signatures, and the serialized note fits
/// [`MAX_NOTE_BYTES`]. So a note with at least one signature serializes
/// ([`Note::to_bytes`]) to bytes that [`Note::parse`] maps back to an equal
/// note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// An unsigned note with the given text. Fails if the text is empty, does
    /// not end in `\n`, holds a control character other than `\n`, or
    /// exceeds [`MAX_TEXT_BYTES`].
    pub fn new(text: impl Into<String>) -> Result<Self, NoteError> {
        let text = text.into();
        check_text(&text)?;
        Ok(Note {
            text,
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note strictly, accepting up to [`MAX_SIGNATURES`]
    /// signature lines. Does not verify anything; see [`Note::verify`].
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        Self::parse_with_max_signatures(bytes, MAX_SIGNATURES)
    }

    /// [`Note::parse`] with a caller-chosen signature-line limit, e.g.
    /// [`SIGSUM_MAX_SIGNATURES`]. Limits above [`MAX_SIGNATURES`] are lowered
    /// to it, so the result always satisfies the [`Note`] invariant.
    pub fn parse_with_max_signatures(bytes: &[u8], max: usize) -> Result<Self, NoteError> {
        let max = max.min(MAX_SIGNATURES);
        if bytes.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len: bytes.len(),
                max: MAX_NOTE_BYTES,
            });
        }
        let s = std::str::from_utf8(bytes).map_err(|e| NoteError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        check_control(s, 1)?;

        // The text ends at the last "\n\n": its first newline ends the text,
        // the second is the blank separator line.
        let split = s.rfind("\n\n").ok_or(NoteError::MissingSignatureBlock)?;
        let (Some(text), Some(sigs)) = (s.get(..=split), s.get(split + 2..)) else {
            return Err(NoteError::MissingSignatureBlock);
        };
        check_text(text)?;
        if sigs.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let first_sig_line = count_lines(text) + 2;
        let count = sigs.bytes().filter(|&b| b == b'\n').count();
        let Some(body) = sigs.strip_suffix('\n') else {
            return Err(NoteError::UnterminatedSignatureLine {
                line: first_sig_line + count,
            });
        };
        if count > max {
            return Err(NoteError::TooManySignatures { count, max });
        }
        let signatures = body
            .split('\n')
            .enumerate()
            .map(|(i, line)| {
                NoteSignature::parse_line(line).map_err(|reason| NoteError::SignatureLine {
                    line: first_sig_line + i,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text, ending in `\n` (the bytes that are signed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Splits the note into text and signatures.
    pub fn into_parts(self) -> (String, Vec<NoteSignature>) {
        (self.text, self.signatures)
    }

    /// Appends a signature line. Fails, leaving the note unchanged, if the
    /// note would exceed [`MAX_SIGNATURES`] lines or [`MAX_NOTE_BYTES`].
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        let count = self.signatures.len() + 1;
        if count > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures {
                count,
                max: MAX_SIGNATURES,
            });
        }
        let len = self.encoded_len() + signature.encoded_len();
        if len > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge {
                len,
                max: MAX_NOTE_BYTES,
            });
        }
        self.signatures.push(signature);
        Ok(())
    }

    /// The serialized note: text, blank line, then each signature line with
    /// its newline. Byte-exact inverse of [`Note::parse`] when the note has at
    /// least one signature (an unsigned note serializes to text and a blank
    /// line, which is not a parseable note).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(self.text.as_bytes());
        out.push(b'\n');
        for sig in &self.signatures {
            out.extend_from_slice(sig.to_line().as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Checks the signatures against known keys, per C2SP signed-note:
    /// lines whose (name, key ID) matches no verifier are skipped; a line
    /// that matches a verifier must verify under it (or under another
    /// verifier with the same name and key ID, should two collide); each known
    /// (name, key ID) may appear on at most one line; at least one line must
    /// verify. Unknown lines are not checked beyond parsing, and may repeat.
    ///
    /// Returns the accepted lines in note order.
    pub fn verify(
        &self,
        verifiers: &[&dyn NoteVerifier],
    ) -> Result<Vec<VerifiedSignature>, VerifyError> {
        let mut verified: Vec<VerifiedSignature> = Vec::new();
        let first_sig_line = count_lines(&self.text) + 2;
        for (si, sig) in self.signatures.iter().enumerate() {
            let mut known = false;
            let mut accepted = None;
            for (vi, v) in verifiers.iter().enumerate() {
                if v.name() != sig.name || v.key_id() != sig.key_id {
                    continue;
                }
                known = true;
                if v.verify(self.text.as_bytes(), &sig.blob) {
                    accepted = Some(vi);
                    break;
                }
            }
            if !known {
                continue;
            }
            let line = first_sig_line + si;
            let Some(vi) = accepted else {
                return Err(VerifyError::InvalidSignature {
                    line,
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            };
            // Identity is (name, key ID), not verifier index: two colliding
            // verifiers must not let one key sign twice.
            let repeated = verified.iter().any(|p| {
                self.signatures
                    .get(p.signature)
                    .is_some_and(|s| s.name == sig.name && s.key_id == sig.key_id)
            });
            if repeated {
                return Err(VerifyError::DuplicateSignature {
                    line,
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            verified.push(VerifiedSignature {
                verifier: vi,
                signature: si,
            });
        }
        if verified.is_empty() {
            return Err(VerifyError::NoKnownSignature);
        }
        Ok(verified)
    }

    fn encoded_len(&self) -> usize {
        self.text.len()
            + 1
            + self
                .signatures
                .iter()
                .map(NoteSignature::encoded_len)
                .sum::<usize>()
    }
}

/// Parses `bytes` as a signed note and verifies it with [`Note::verify`]:
/// the whole C2SP "open" step in one call.
pub fn open(
    bytes: &[u8],
    verifiers: &[&dyn NoteVerifier],
) -> Result<(Note, Vec<VerifiedSignature>), OpenError> {
    let note = Note::parse(bytes)?;
    let verified = note.verify(verifiers)?;
    Ok((note, verified))
}

/// Number of lines in `s` (count of newlines).
fn count_lines(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n').count()
}

/// Rejects ASCII control characters other than newline; `first_line` is the
/// line number of the first line of `s`.
fn check_control(s: &str, first_line: usize) -> Result<(), NoteError> {
    let mut line = first_line;
    for b in s.bytes() {
        if b == b'\n' {
            line += 1;
        } else if b < 0x20 {
            return Err(NoteError::ControlCharacter { line, byte: b });
        }
    }
    Ok(())
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(NoteError::TextTooLarge {
            len: text.len(),
            max: MAX_TEXT_BYTES,
        });
    }
    if !text.ends_with('\n') {
        return Err(NoteError::TextNotTerminated);
    }
    check_control(text, 1)
}

/// An Ed25519 (type 0x01) note verifier.
#[derive(Clone, Debug)]
pub struct Ed25519NoteVerifier {
    name: String,
    key_id: KeyId,
    key: VerifyingKey,
}

impl Ed25519NoteVerifier {
    /// A verifier for the Ed25519 public key `public_key` under the key name
    /// `name`. Fails if the name is invalid or the key is not a valid point.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, KeyError> {
        validate_key_name(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(Ed25519NoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, SIG_TYPE_ED25519, public_key),
            key,
        })
    }

    /// A verifier from a vkey, which must have type 0x01.
    pub fn from_vkey(vkey: &VerifierKey) -> Result<Self, KeyError> {
        Self::new(&vkey.name, &vkey.ed25519_key(SIG_TYPE_ED25519)?)
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// This key as a vkey.
    pub fn vkey(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            sig_type: SIG_TYPE_ED25519,
            key: self.key.to_bytes().to_vec(),
        }
    }
}

impl NoteVerifier for Ed25519NoteVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn verify(&self, text: &[u8], blob: &[u8]) -> bool {
        let Ok(sig) = <[u8; ED25519_SIG_LEN]>::try_from(blob) else {
            return false;
        };
        // Strict verification: honest signers always pass it, and it refuses
        // small-order keys and malleable encodings.
        self.key
            .verify_strict(text, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

/// An Ed25519 (type 0x01) note signer: a key name and a 32-byte seed.
/// Signatures are deterministic (RFC 8032), so signing the same text twice
/// yields the same line.
#[derive(Clone)]
pub struct Ed25519NoteSigner {
    name: String,
    key_id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for Ed25519NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the seed.
        f.debug_struct("Ed25519NoteSigner")
            .field("name", &self.name)
            .field("key_id", &fmt_key_id(&self.key_id))
            .finish_non_exhaustive()
    }
}

impl Ed25519NoteSigner {
    /// A signer for the Ed25519 key with seed `seed` under the name `name`.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, KeyNameError> {
        validate_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(Ed25519NoteSigner {
            name: name.to_owned(),
            key_id: key_id(name, SIG_TYPE_ED25519, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// A signer from an skey, which must have type 0x01.
    pub fn from_skey(skey: &SignerKey) -> Result<Self, KeyError> {
        if skey.sig_type != SIG_TYPE_ED25519 {
            return Err(KeyError::WrongType {
                want: SIG_TYPE_ED25519,
                got: skey.sig_type,
            });
        }
        Ok(Self::new(&skey.name, &skey.seed)?)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Ed25519NoteVerifier {
        Ed25519NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The public key as a vkey.
    pub fn vkey(&self) -> VerifierKey {
        self.verifier().vkey()
    }

    /// The signature line for `text`, which the caller guarantees is the
    /// complete note text (ending in `\n`); use [`Ed25519NoteSigner::sign_note`]
    /// to have it checked.
    pub fn sign(&self, text: &str) -> NoteSignature {
        NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            blob: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        }
    }

    /// A note with text `text` signed by this key alone. Fails if `text` is
    /// not valid note text.
    pub fn sign_note(&self, text: &str) -> Result<Note, NoteError> {
        let mut note = Note::new(text)?;
        note.add_signature(self.sign(text))?;
        Ok(note)
    }
}

/// Why a vkey, skey or key could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The string does not have the `+`-separated fields of its format.
    #[error("{0}")]
    Format(&'static str),
    /// The key name is invalid.
    #[error("invalid key name: {0}")]
    KeyName(#[from] KeyNameError),
    /// The key ID field is not 8 hex digits.
    #[error("key ID is not 8 hex digits")]
    KeyIdHex,
    /// The key field is not canonical padded standard base64.
    #[error("key material is not canonical padded standard base64")]
    Base64,
    /// The key field is empty: no type byte.
    #[error("key material is empty (no signature type byte)")]
    EmptyKey,
    /// The signature type is not one this crate knows.
    #[error("unsupported signature type {0:#04x}")]
    UnsupportedType(u8),
    /// The key has a known type but a different one than required here.
    #[error("signature type {got:#04x} where {want:#04x} is required")]
    WrongType {
        /// The type required.
        want: u8,
        /// The type found.
        got: u8,
    },
    /// The key material has the wrong length for its type.
    #[error("key material for type {sig_type:#04x} is {len} bytes, want {want}")]
    KeyLength {
        /// The signature type.
        sig_type: u8,
        /// The length found.
        len: usize,
        /// The length required.
        want: usize,
    },
    /// The key ID stated does not match the one computed from name, type and key.
    #[error("key ID {} does not match {} computed from name, type and key", fmt_key_id(.stated), fmt_key_id(.computed))]
    KeyIdMismatch {
        /// Key ID written in the string.
        stated: KeyId,
        /// Key ID computed from the other fields.
        computed: KeyId,
    },
    /// The Ed25519 public key is not a valid curve point encoding.
    #[error("Ed25519 public key is not a valid point")]
    InvalidPublicKey,
}

/// A verifier key (*vkey*): `<name>+<hex key ID>+<base64(type || key)>`.
///
/// Supported types: 0x01 (Ed25519) and 0x04 (cosignature/v1), with 32-byte
/// keys, and 0x06 (ML-DSA-44 cosignature), with 1312-byte keys; all use the
/// signed-note key ID formula, which parsing checks.
///
/// Invariant: name valid, key length right for the type, key ID consistent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VerifierKey {
    name: String,
    key_id: KeyId,
    sig_type: u8,
    key: Vec<u8>,
}

impl VerifierKey {
    /// A vkey for `key` of type `sig_type` under `name`; computes the key ID.
    pub fn new(name: &str, sig_type: u8, key: &[u8]) -> Result<Self, KeyError> {
        validate_key_name(name)?;
        check_key_len(sig_type, key.len())?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, sig_type, key),
            sig_type,
            key: key.to_vec(),
        })
    }

    /// Builds a vkey whose invariant the caller has already established.
    pub(crate) fn from_valid_parts(
        name: String,
        key_id: KeyId,
        sig_type: u8,
        key: Vec<u8>,
    ) -> Self {
        debug_assert!(validate_key_name(&name).is_ok());
        debug_assert!(check_key_len(sig_type, key.len()).is_ok());
        VerifierKey {
            name,
            key_id,
            sig_type,
            key,
        }
    }

    /// Parses a vkey; rejects unknown types, wrong key lengths and a key ID
    /// that does not match name, type and key. The hex key ID may be in
    /// either case; [`fmt::Display`] writes lowercase.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        // Names cannot contain '+', base64 can: split from the left.
        let (name, rest) = s
            .split_once('+')
            .ok_or(KeyError::Format("vkey is not <name>+<key ID>+<key>"))?;
        let (id_hex, b64) = rest
            .split_once('+')
            .ok_or(KeyError::Format("vkey is not <name>+<key ID>+<key>"))?;
        validate_key_name(name)?;
        let stated = parse_key_id(id_hex)?;
        let raw = STANDARD.decode(b64).map_err(|_| KeyError::Base64)?;
        let (&sig_type, key) = raw.split_first().ok_or(KeyError::EmptyKey)?;
        let vkey = Self::new(name, sig_type, key)?;
        if vkey.key_id != stated {
            return Err(KeyError::KeyIdMismatch {
                stated,
                computed: vkey.key_id,
            });
        }
        Ok(vkey)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature type byte.
    pub fn sig_type(&self) -> u8 {
        self.sig_type
    }

    /// The public key material (without the type byte).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The 32-byte Ed25519 key, if this vkey has type `want` (0x01 or 0x04).
    pub fn ed25519_key(&self, want: u8) -> Result<[u8; 32], KeyError> {
        if self.sig_type != want {
            return Err(KeyError::WrongType {
                want,
                got: self.sig_type,
            });
        }
        <[u8; 32]>::try_from(self.key.as_slice()).map_err(|_| KeyError::KeyLength {
            sig_type: self.sig_type,
            len: self.key.len(),
            want: ED25519_KEY_LEN,
        })
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(1 + self.key.len());
        raw.push(self.sig_type);
        raw.extend_from_slice(&self.key);
        write!(
            f,
            "{}+{}+{}",
            self.name,
            fmt_key_id(&self.key_id),
            STANDARD.encode(raw)
        )
    }
}

impl FromStr for VerifierKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

/// A signer key (*skey*) as Go's `sumdb/note` and Tessera write them:
/// `PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>`.
///
/// Supported types: 0x01 and 0x04 (Ed25519, 32-byte seed). Parsing derives
/// the public key and checks the key ID. `Debug` never prints the seed.
// No PartialEq: comparing secrets is not something callers should need.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    key_id: KeyId,
    sig_type: u8,
    seed: [u8; 32],
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.name)
            .field("key_id", &fmt_key_id(&self.key_id))
            .field("sig_type", &self.sig_type)
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// Parses an skey; rejects types other than 0x01 and 0x04, seeds that are
    /// not 32 bytes, and a key ID that does not match the derived public key.
    /// Error messages never contain key material.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::Format("skey does not start with PRIVATE+KEY+"))?;
        let (name, rest) = rest.split_once('+').ok_or(KeyError::Format(
            "skey is not PRIVATE+KEY+<name>+<key ID>+<key>",
        ))?;
        let (id_hex, b64) = rest.split_once('+').ok_or(KeyError::Format(
            "skey is not PRIVATE+KEY+<name>+<key ID>+<key>",
        ))?;
        validate_key_name(name)?;
        let stated = parse_key_id(id_hex)?;
        let raw = STANDARD.decode(b64).map_err(|_| KeyError::Base64)?;
        let (&sig_type, seed) = raw.split_first().ok_or(KeyError::EmptyKey)?;
        if sig_type != SIG_TYPE_ED25519 && sig_type != SIG_TYPE_COSIGNATURE_V1 {
            return Err(KeyError::UnsupportedType(sig_type));
        }
        let seed = <[u8; 32]>::try_from(seed).map_err(|_| KeyError::KeyLength {
            sig_type,
            len: seed.len(),
            want: ED25519_KEY_LEN,
        })?;
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let computed = key_id(name, sig_type, &public);
        if computed != stated {
            return Err(KeyError::KeyIdMismatch { stated, computed });
        }
        Ok(SignerKey {
            name: name.to_owned(),
            key_id: stated,
            sig_type,
            seed,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The signature type byte (0x01 or 0x04).
    pub fn sig_type(&self) -> u8 {
        self.sig_type
    }

    /// The 32-byte Ed25519 seed. Secret.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The matching vkey.
    pub fn verifier_key(&self) -> VerifierKey {
        let public = SigningKey::from_bytes(&self.seed)
            .verifying_key()
            .to_bytes();
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            sig_type: self.sig_type,
            key: public.to_vec(),
        }
    }
}

impl FromStr for SignerKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::parse(s)
    }
}

fn check_key_len(sig_type: u8, len: usize) -> Result<(), KeyError> {
    let want = match sig_type {
        SIG_TYPE_ED25519 | SIG_TYPE_COSIGNATURE_V1 => ED25519_KEY_LEN,
        SIG_TYPE_ML_DSA_44_COSIGNATURE => ML_DSA_44_PUBLIC_KEY_LEN,
        other => return Err(KeyError::UnsupportedType(other)),
    };
    if len != want {
        return Err(KeyError::KeyLength {
            sig_type,
            len,
            want,
        });
    }
    Ok(())
}

fn parse_key_id(s: &str) -> Result<KeyId, KeyError> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyError::KeyIdHex);
    }
    let v = u32::from_str_radix(s, 16).map_err(|_| KeyError::KeyIdHex)?;
    Ok(v.to_be_bytes())
}

/// A key ID as 8 lowercase hex digits, as vkeys and error messages write it.
pub fn fmt_key_id(id: &KeyId) -> String {
    format!("{:08x}", u32::from_be_bytes(*id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn signer(name: &str) -> Ed25519NoteSigner {
        Ed25519NoteSigner::new(name, &SEED).expect("valid name")
    }

    #[test]
    fn key_id_hashes_name_newline_type_and_key() {
        let mut pre = b"a.example/k\n".to_vec();
        pre.push(0x01);
        pre.extend_from_slice(&[9; 32]);
        assert_eq!(
            key_id("a.example/k", SIG_TYPE_ED25519, &[9; 32]),
            sha256(&pre)[..4]
        );
    }

    #[test]
    fn key_names_reject_empty_space_plus_and_control() {
        assert_eq!(validate_key_name(""), Err(KeyNameError::Empty));
        assert!(matches!(
            validate_key_name("a b"),
            Err(KeyNameError::Whitespace { offset: 1, .. })
        ));
        assert!(matches!(
            validate_key_name("a\u{a0}b"),
            Err(KeyNameError::Whitespace { .. })
        ));
        assert_eq!(
            validate_key_name("a+b"),
            Err(KeyNameError::Plus { offset: 1 })
        );
        assert!(matches!(
            validate_key_name("a\u{1}b"),
            Err(KeyNameError::Control { .. })
        ));
        assert_eq!(validate_key_name("example.com/log—ü"), Ok(()));
    }

    #[test]
    fn signed_note_round_trips_byte_exact() {
        let note = signer("example.com/k")
            .sign_note("hello\n\nworld\n")
            .expect("ok");
        let bytes = note.to_bytes();
        let parsed = Note::parse(&bytes).expect("parses");
        assert_eq!(parsed, note);
        assert_eq!(parsed.text(), "hello\n\nworld\n");
        assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn text_is_split_at_the_last_blank_line() {
        let s = signer("k");
        let line = s.sign("x\n").to_line();
        let bytes = format!("x\n\n{line}\n");
        let note = Note::parse(bytes.as_bytes()).expect("parses");
        assert_eq!(note.text(), "x\n");
        // A blank line inside the signature block moves the split and makes
        // the earlier signature line part of the text.
        let bytes = format!("x\n\n{line}\n\n{line}\n");
        let note = Note::parse(bytes.as_bytes()).expect("parses");
        assert_eq!(note.text(), format!("x\n\n{line}\n"));
    }

    #[test]
    fn malformed_notes_are_rejected_with_their_line() {
        let line = signer("k").sign("x\n").to_line();
        let cases: Vec<(String, NoteError)> = vec![
            ("x\n".into(), NoteError::MissingSignatureBlock),
            ("x\n\n".into(), NoteError::NoSignatures),
            (
                format!("x\n\n{line}"),
                NoteError::UnterminatedSignatureLine { line: 3 },
            ),
            (
                format!("x\r\n\n{line}\n"),
                NoteError::ControlCharacter {
                    line: 1,
                    byte: b'\r',
                },
            ),
            (
                format!("x\n\n{line}\n- k AAAAAAA=\n"),
                NoteError::SignatureLine {
                    line: 4,
                    reason: SignatureLineError::MissingEmDash,
                },
            ),
            (
                "x\n\n— k AAAA\n".into(),
                NoteError::SignatureLine {
                    line: 3,
                    reason: SignatureLineError::TooShort { len: 3 },
                },
            ),
            (
                "x\n\n— k AAAAAAB=\n".into(),
                NoteError::SignatureLine {
                    line: 3,
                    reason: SignatureLineError::InvalidBase64,
                },
            ),
            (
                "x\n\n— k+1 AAAAAAA=\n".into(),
                NoteError::SignatureLine {
                    line: 3,
                    reason: SignatureLineError::KeyName(KeyNameError::Plus { offset: 1 }),
                },
            ),
            (
                "x\n\n— k\n".into(),
                NoteError::SignatureLine {
                    line: 3,
                    reason: SignatureLineError::MissingSignature,
                },
            ),
            (
                "x\n\n— k \n".into(),
                NoteError::SignatureLine {
                    line: 3,
                    reason: SignatureLineError::EmptySignature,
                },
            ),
            (
                "x\n\n—  AAAAAAA=\n".into(),
                NoteError::SignatureLine {
                    line: 3,
                    reason: SignatureLineError::KeyName(KeyNameError::Empty),
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(Note::parse(input.as_bytes()), Err(want), "{input:?}");
        }
        assert_eq!(
            Note::parse(b"\xff\n\n"),
            Err(NoteError::InvalidUtf8 { offset: 0 })
        );
    }

    #[test]
    fn signature_line_limits_are_enforced() {
        let line = signer("k").sign("x\n").to_line();
        let mut bytes = String::from("x\n\n");
        for _ in 0..=SIGSUM_MAX_SIGNATURES {
            bytes.push_str(&line);
            bytes.push('\n');
        }
        assert!(Note::parse(bytes.as_bytes()).is_ok());
        assert_eq!(
            Note::parse_with_max_signatures(bytes.as_bytes(), SIGSUM_MAX_SIGNATURES),
            Err(NoteError::TooManySignatures {
                count: 17,
                max: SIGSUM_MAX_SIGNATURES
            })
        );
        let mut many = String::from("x\n\n");
        for _ in 0..=MAX_SIGNATURES {
            many.push_str(&line);
            many.push('\n');
        }
        assert_eq!(
            Note::parse(many.as_bytes()),
            Err(NoteError::TooManySignatures {
                count: 101,
                max: MAX_SIGNATURES
            })
        );
    }

    #[test]
    fn oversized_text_is_rejected() {
        let text = "a".repeat(MAX_TEXT_BYTES) + "\n";
        assert!(matches!(
            Note::new(text),
            Err(NoteError::TextTooLarge { .. })
        ));
        assert_eq!(
            Note::parse(&vec![b'a'; MAX_NOTE_BYTES + 1]),
            Err(NoteError::TooLarge {
                len: MAX_NOTE_BYTES + 1,
                max: MAX_NOTE_BYTES
            })
        );
    }

    #[test]
    fn verify_skips_unknown_keys_and_reports_matches() {
        let a = signer("a.example");
        let b = Ed25519NoteSigner::new("b.example", &[8; 32]).expect("ok");
        let text = "t\n";
        let mut note = Note::new(text).expect("ok");
        note.add_signature(b.sign(text)).expect("ok");
        note.add_signature(a.sign(text)).expect("ok");
        let va = a.verifier();
        let got = note.verify(&[&va]).expect("verifies");
        assert_eq!(
            got,
            vec![VerifiedSignature {
                verifier: 0,
                signature: 1
            }]
        );
        let other = Ed25519NoteVerifier::new("c.example", &a.public_key()).expect("ok");
        assert_eq!(note.verify(&[&other]), Err(VerifyError::NoKnownSignature));
    }

    #[test]
    fn known_key_with_bad_signature_rejects_the_note() {
        let a = signer("a.example");
        let mut note = Note::new("t\n").expect("ok");
        note.add_signature(a.sign("other\n")).expect("ok");
        note.add_signature(a.sign("t\n")).expect("ok");
        let err = note.verify(&[&a.verifier()]).expect_err("rejected");
        assert_eq!(
            err,
            VerifyError::InvalidSignature {
                line: 3,
                name: "a.example".into(),
                key_id: a.key_id()
            }
        );
        assert!(err.to_string().contains(&fmt_key_id(&a.key_id())));
    }

    #[test]
    fn repeated_known_key_rejects_the_note() {
        let a = signer("a.example");
        let mut note = Note::new("t\n").expect("ok");
        note.add_signature(a.sign("t\n")).expect("ok");
        note.add_signature(a.sign("t\n")).expect("ok");
        assert!(matches!(
            note.verify(&[&a.verifier()]),
            Err(VerifyError::DuplicateSignature { line: 4, .. })
        ));
    }

    #[test]
    fn vkey_round_trips_and_checks_key_id() {
        let v = signer("example.com/k").vkey();
        let s = v.to_string();
        assert_eq!(VerifierKey::parse(&s), Ok(v.clone()));
        assert_eq!(VerifierKey::parse(&s.to_uppercase()).ok(), None);
        // Upper-case hex key IDs are accepted.
        let (name, rest) = s.split_once('+').expect("has +");
        let (id, key) = rest.split_once('+').expect("has +");
        let upper = format!("{name}+{}+{key}", id.to_uppercase());
        assert_eq!(VerifierKey::parse(&upper), Ok(v));
        let bad_id = format!("{name}+00000000+{key}");
        assert!(matches!(
            VerifierKey::parse(&bad_id),
            Err(KeyError::KeyIdMismatch { .. })
        ));
        assert_eq!(
            VerifierKey::parse(&format!("{name}+{id}+Bw==")),
            Err(KeyError::UnsupportedType(7))
        );
        assert_eq!(
            VerifierKey::parse("k+0000000+AQ=="),
            Err(KeyError::KeyIdHex)
        );
        assert!(VerifierKey::parse("nokeyid").is_err());
    }

    #[test]
    fn skey_debug_hides_the_seed() {
        let skey = SignerKey {
            name: "k".into(),
            key_id: [0; 4],
            sig_type: SIG_TYPE_ED25519,
            seed: [0xab; 32],
        };
        let dbg = format!("{skey:?}");
        assert!(!dbg.contains("171") && !dbg.to_lowercase().contains("abab"));
        let signer = Ed25519NoteSigner::new("k", &[0xab; 32]).expect("ok");
        assert!(!format!("{signer:?}").contains("171"));
    }

    #[test]
    fn add_signature_enforces_the_count_limit() {
        let a = signer("a");
        let mut note = Note::new("t\n").expect("ok");
        for _ in 0..MAX_SIGNATURES {
            note.add_signature(a.sign("t\n")).expect("under limit");
        }
        assert!(matches!(
            note.add_signature(a.sign("t\n")),
            Err(NoteError::TooManySignatures { .. })
        ));
        assert_eq!(note.signatures().len(), MAX_SIGNATURES);
    }
}
