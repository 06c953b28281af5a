//! C2SP tlog-cosignature (<https://c2sp.org/tlog-cosignature>), Ed25519
//! `cosignature/v1` (note signature type 0x04) — the witness cosignature
//! Sigsum uses (sigsum-protocol.md §5, §8).
//!
//! * Signed message: `cosignature/v1\ntime <T>\n` followed by the whole
//!   checkpoint body (extension lines included), T in decimal without
//!   leading zeros, T ≤ 2^63−1.
//! * Note signature line: `— <cosigner name> base64(key ID(4) || u64_be(T) ||
//!   Ed25519 signature(64))`, 76 bytes before base64, with key ID
//!   `SHA-256(name || 0x0a || 0x04 || public key)[:4]`.
//!
//! The message does not commit to the cosigner name, so one Ed25519 key must
//! serve one cosigner only. Times are always passed in by the caller.

use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::note::{
    KeyError, KeyId, KeyNameError, MAX_NOTE_BYTES, MAX_SIGNATURES, NoteSignature, NoteVerifier,
    SIG_TYPE_COSIGNATURE_V1, SignatureLineError, SignerKey, VerifierKey, fmt_key_id, key_id,
    validate_key_name,
};

/// The header line of the signed message, without its newline.
pub const HEADER: &str = "cosignature/v1";

/// Largest timestamp a cosignature may carry (2^63−1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Length of the note signature blob after the key ID: `u64_be(T) || sig(64)`.
pub const TIMESTAMPED_SIGNATURE_LEN: usize = 8 + 64;

/// Why a cosignature could not be made or was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// The timestamp exceeds [`MAX_TIMESTAMP`].
    #[error("timestamp {0} exceeds 2^63-1")]
    TimestampTooLarge(u64),
    /// The blob after the key ID is not [`TIMESTAMPED_SIGNATURE_LEN`] bytes.
    #[error("cosignature/v1 signature is {len} bytes after the key ID, want 72")]
    BlobLength {
        /// Length found.
        len: usize,
    },
    /// The Ed25519 signature does not verify over the cosigned message.
    #[error("cosignature/v1 signature does not verify")]
    BadSignature,
    /// The checkpoint to sign would not serialize to a parseable body.
    #[error("checkpoint cannot be signed: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// A `cosignature/v1` timestamp and signature, without the cosigner identity.
/// This is also the payload of Sigsum's ASCII form
/// `cosignature=<key hash> <T> <hex sig>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cosignature {
    /// Seconds since the POSIX epoch at which the cosigner signed, ≤ 2^63−1.
    pub timestamp: u64,
    /// Ed25519 signature over [`signed_message`].
    pub signature: [u8; 64],
}

impl Cosignature {
    /// Decodes a note signature blob (the bytes after the key ID). Checks the
    /// length and the timestamp bound, not the signature.
    pub fn from_blob(blob: &[u8]) -> Result<Self, CosignatureError> {
        let too_short = CosignatureError::BlobLength { len: blob.len() };
        if blob.len() != TIMESTAMPED_SIGNATURE_LEN {
            return Err(too_short);
        }
        let Some((ts, sig)) = blob.split_first_chunk::<8>() else {
            return Err(too_short);
        };
        let Ok(signature) = <[u8; 64]>::try_from(sig) else {
            return Err(too_short);
        };
        let timestamp = u64::from_be_bytes(*ts);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge(timestamp));
        }
        Ok(Cosignature {
            timestamp,
            signature,
        })
    }

    /// Decodes the blob of a note signature line; see [`Cosignature::from_blob`].
    pub fn from_note_signature(sig: &NoteSignature) -> Result<Self, CosignatureError> {
        Self::from_blob(sig.blob())
    }

    /// The note signature blob `u64_be(timestamp) || signature`.
    pub fn to_blob(&self) -> [u8; TIMESTAMPED_SIGNATURE_LEN] {
        let mut out = [0u8; TIMESTAMPED_SIGNATURE_LEN];
        let (ts, sig) = out.split_at_mut(8);
        ts.copy_from_slice(&self.timestamp.to_be_bytes());
        sig.copy_from_slice(&self.signature);
        out
    }
}

/// The message a `cosignature/v1` signature covers:
/// `cosignature/v1\ntime <timestamp>\n` || `checkpoint_body`. The body is the
/// note text with its final newline (not validated here).
pub fn signed_message(checkpoint_body: &str, timestamp: u64) -> Result<Vec<u8>, CosignatureError> {
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampTooLarge(timestamp));
    }
    Ok(message_bytes(checkpoint_body.as_bytes(), timestamp))
}

fn message_bytes(body: &[u8], timestamp: u64) -> Vec<u8> {
    let mut msg = format!("{HEADER}\ntime {timestamp}\n").into_bytes();
    msg.extend_from_slice(body);
    msg
}

/// An Ed25519 `cosignature/v1` cosigner: a key name and a 32-byte seed.
/// Signing is deterministic given checkpoint and timestamp.
#[derive(Clone)]
pub struct Cosigner {
    name: String,
    key_id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for Cosigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the seed.
        f.debug_struct("Cosigner")
            .field("name", &self.name)
            .field("key_id", &fmt_key_id(&self.key_id))
            .finish_non_exhaustive()
    }
}

impl Cosigner {
    /// A cosigner named `name` with Ed25519 seed `seed`.
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, KeyNameError> {
        validate_key_name(name)?;
        let key = SigningKey::from_bytes(seed);
        Ok(Cosigner {
            name: name.to_owned(),
            key_id: key_id(
                name,
                SIG_TYPE_COSIGNATURE_V1,
                key.verifying_key().as_bytes(),
            ),
            key,
        })
    }

    /// A cosigner from an skey, which must have type 0x04.
    pub fn from_skey(skey: &SignerKey) -> Result<Self, KeyError> {
        if skey.sig_type() != SIG_TYPE_COSIGNATURE_V1 {
            return Err(KeyError::WrongType {
                want: SIG_TYPE_COSIGNATURE_V1,
                got: skey.sig_type(),
            });
        }
        Ok(Self::new(skey.name(), skey.seed())?)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID (type 0x04).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The public key as a type-0x04 vkey.
    pub fn vkey(&self) -> VerifierKey {
        self.verifier().vkey()
    }

    /// Cosigns `checkpoint` as of `timestamp`. Fails if the timestamp exceeds
    /// 2^63−1 or the checkpoint does not pass [`Checkpoint::validate`].
    pub fn cosign(
        &self,
        checkpoint: &Checkpoint,
        timestamp: u64,
    ) -> Result<Cosignature, CosignatureError> {
        checkpoint.validate()?;
        let msg = signed_message(&checkpoint.to_body(), timestamp)?;
        Ok(Cosignature {
            timestamp,
            signature: self.key.sign(&msg).to_bytes(),
        })
    }

    /// The note signature line cosigning `checkpoint` as of `timestamp`;
    /// errors as for [`Cosigner::cosign`].
    pub fn note_signature(
        &self,
        checkpoint: &Checkpoint,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        let cosig = self.cosign(checkpoint, timestamp)?;
        // Name validated in `new`, blob non-empty: the line invariant holds.
        Ok(NoteSignature::from_valid_parts(
            self.name.clone(),
            self.key_id,
            cosig.to_blob().to_vec(),
        ))
    }
}

/// Verifies Ed25519 `cosignature/v1` note signatures of one cosigner key.
/// As a [`NoteVerifier`] it plugs into [`crate::note::Note::verify`]; use
/// [`CosignatureVerifier::verify_cosignature`] to also get the timestamp.
#[derive(Clone, Debug)]
pub struct CosignatureVerifier {
    name: String,
    key_id: KeyId,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// A verifier for cosigner `name` with Ed25519 public key `public_key`.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, KeyError> {
        validate_key_name(name)?;
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| KeyError::InvalidPublicKey)?;
        Ok(CosignatureVerifier {
            name: name.to_owned(),
            key_id: key_id(name, SIG_TYPE_COSIGNATURE_V1, public_key),
            key,
        })
    }

    /// A verifier from a vkey, which must have type 0x04.
    pub fn from_vkey(vkey: &VerifierKey) -> Result<Self, KeyError> {
        Self::new(vkey.name(), &vkey.ed25519_key(SIG_TYPE_COSIGNATURE_V1)?)
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// This key as a type-0x04 vkey.
    pub fn vkey(&self) -> VerifierKey {
        // Name validated in `new`; 32-byte key matches type 0x04.
        VerifierKey::from_valid_parts(
            self.name.clone(),
            self.key_id,
            SIG_TYPE_COSIGNATURE_V1,
            self.key.to_bytes().to_vec(),
        )
    }

    /// Checks `blob` (the bytes after the key ID) as this key's cosignature on
    /// the checkpoint body `text`, returning the timestamp and signature.
    /// Does not check the name or key ID of the line; callers match those.
    pub fn verify_cosignature(
        &self,
        text: &[u8],
        blob: &[u8],
    ) -> Result<Cosignature, CosignatureError> {
        let cosig = Cosignature::from_blob(blob)?;
        let msg = message_bytes(text, cosig.timestamp);
        self.key
            .verify_strict(&msg, &Signature::from_bytes(&cosig.signature))
            .map_err(|_| CosignatureError::BadSignature)?;
        Ok(cosig)
    }
}

impl NoteVerifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn verify(&self, text: &[u8], blob: &[u8]) -> bool {
        self.verify_cosignature(text, blob).is_ok()
    }
}

/// Why a witness's add-checkpoint response yielded no valid cosignature.
/// Line numbers count from 1 over the response body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WitnessResponseError {
    /// The configured witness key is not a valid Ed25519 point.
    #[error("configured witness key is not a valid Ed25519 public key")]
    InvalidWitnessKey,
    /// The checkpoint that was submitted does not serialize to a valid body.
    #[error("submitted checkpoint is invalid: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The response body is empty.
    #[error("response body is empty")]
    Empty,
    /// The response body exceeds [`MAX_NOTE_BYTES`].
    #[error("response body is {len} bytes; the limit is {max}")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit applied.
        max: usize,
    },
    /// The response body has more than [`MAX_SIGNATURES`] lines.
    #[error("response has {count} lines; the limit is {max}")]
    TooManyLines {
        /// Lines found.
        count: usize,
        /// The limit applied.
        max: usize,
    },
    /// The response body is not UTF-8.
    #[error("response body is not UTF-8 (first invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The last line lacks its newline.
    #[error("line {line}: not terminated by a newline")]
    Unterminated {
        /// The unterminated line.
        line: usize,
    },
    /// A line is not a note signature line.
    #[error("line {line}: malformed signature line: {reason}")]
    MalformedLine {
        /// The malformed line.
        line: usize,
        /// What is wrong with it.
        reason: SignatureLineError,
    },
    /// Lines carried the witness's key ID but none verified; `line` is the
    /// first of them.
    #[error("line {line}: cosignature with the witness's key ID does not verify")]
    InvalidCosignature {
        /// First line whose key ID matched.
        line: usize,
    },
    /// No line carries a 76-byte cosignature with the witness's key ID.
    #[error("no cosignature/v1 line from the witness key")]
    NoCosignature,
}

/// Finds the witness's cosignature in an add-checkpoint 200 response body
/// (C2SP tlog-witness; sigsum-protocol.md §8, as log-go does it).
///
/// The body must be one or more newline-terminated note signature lines. Each
/// line whose blob is not 72 bytes after the key ID (e.g. ML-DSA-44) is
/// ignored. A line is accepted if its key ID equals
/// `keyID(<line's name>, 0x04, witness_key)` and its signature verifies over
/// `checkpoint`'s body; the name itself is the witness's choice and is not
/// compared with any configuration. The first accepted line wins.
pub fn cosignature_from_witness_response(
    witness_key: &[u8; 32],
    checkpoint: &Checkpoint,
    response: &[u8],
) -> Result<Cosignature, WitnessResponseError> {
    let key = VerifyingKey::from_bytes(witness_key)
        .map_err(|_| WitnessResponseError::InvalidWitnessKey)?;
    checkpoint.validate()?;
    let body = checkpoint.to_body();
    if response.is_empty() {
        return Err(WitnessResponseError::Empty);
    }
    if response.len() > MAX_NOTE_BYTES {
        return Err(WitnessResponseError::TooLarge {
            len: response.len(),
            max: MAX_NOTE_BYTES,
        });
    }
    let text = std::str::from_utf8(response).map_err(|e| WitnessResponseError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    let count = text.bytes().filter(|&b| b == b'\n').count();
    let Some(text) = text.strip_suffix('\n') else {
        return Err(WitnessResponseError::Unterminated { line: count + 1 });
    };
    if count > MAX_SIGNATURES {
        return Err(WitnessResponseError::TooManyLines {
            count,
            max: MAX_SIGNATURES,
        });
    }
    let mut first_invalid = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let sig = NoteSignature::parse_line(raw)
            .map_err(|reason| WitnessResponseError::MalformedLine { line, reason })?;
        if sig.blob().len() != TIMESTAMPED_SIGNATURE_LEN {
            continue;
        }
        if sig.key_id() != key_id(sig.name(), SIG_TYPE_COSIGNATURE_V1, witness_key) {
            continue;
        }
        let verifier = CosignatureVerifier {
            name: sig.name().to_owned(),
            key_id: sig.key_id(),
            key,
        };
        match verifier.verify_cosignature(body.as_bytes(), sig.blob()) {
            Ok(cosig) => return Ok(cosig),
            Err(_) => {
                first_invalid.get_or_insert(line);
            }
        }
    }
    Err(match first_invalid {
        Some(line) => WitnessResponseError::InvalidCosignature { line },
        None => WitnessResponseError::NoCosignature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Note;

    fn checkpoint() -> Checkpoint {
        Checkpoint::new("example.org/log", 10, [0x1c; 32])
    }

    fn cosigner() -> Cosigner {
        Cosigner::new("example.org/w", &[3; 32]).expect("valid name")
    }

    #[test]
    fn signed_message_prefixes_header_and_time() {
        let body = checkpoint().to_body();
        let msg = signed_message(&body, 1234).expect("in range");
        assert_eq!(
            msg,
            format!("cosignature/v1\ntime 1234\n{body}").into_bytes()
        );
        assert_eq!(
            signed_message(&body, MAX_TIMESTAMP + 1),
            Err(CosignatureError::TimestampTooLarge(MAX_TIMESTAMP + 1))
        );
    }

    #[test]
    fn cosignature_note_line_verifies_and_yields_timestamp() {
        let c = cosigner();
        let cp = checkpoint();
        let sig = c.note_signature(&cp, 1_700_000_000).expect("signs");
        assert_eq!(sig.blob().len(), TIMESTAMPED_SIGNATURE_LEN);
        let v = c.verifier();
        let got = v
            .verify_cosignature(cp.to_body().as_bytes(), sig.blob())
            .expect("verifies");
        assert_eq!(got.timestamp, 1_700_000_000);
        let mut note = Note::new(cp.to_body()).expect("valid text");
        note.add_signature(sig).expect("fits");
        assert_eq!(note.verify(&[&v]).map(|m| m.len()), Ok(1));
    }

    #[test]
    fn cosignature_over_other_time_or_body_fails() {
        let c = cosigner();
        let cp = checkpoint();
        let cosig = c.cosign(&cp, 5).expect("signs");
        let mut bumped = cosig;
        bumped.timestamp = 6;
        let v = c.verifier();
        let body = cp.to_body();
        assert_eq!(
            v.verify_cosignature(body.as_bytes(), &bumped.to_blob()),
            Err(CosignatureError::BadSignature)
        );
        let other = Checkpoint::new("example.org/log", 11, [0x1c; 32]).to_body();
        assert!(!v.verify(other.as_bytes(), &cosig.to_blob()));
        assert!(!v.verify(body.as_bytes(), &[0; 64]));
    }

    #[test]
    fn blobs_with_timestamps_above_2_pow_63_are_rejected() {
        let mut blob = [0u8; TIMESTAMPED_SIGNATURE_LEN];
        blob[0] = 0x80;
        assert_eq!(
            Cosignature::from_blob(&blob),
            Err(CosignatureError::TimestampTooLarge(1 << 63))
        );
        assert_eq!(
            cosigner().cosign(&checkpoint(), 1 << 63),
            Err(CosignatureError::TimestampTooLarge(1 << 63))
        );
    }

    #[test]
    fn invalid_checkpoints_are_not_cosigned() {
        let cp = Checkpoint::new("", 1, [0; 32]);
        assert!(matches!(
            cosigner().cosign(&cp, 1),
            Err(CosignatureError::Checkpoint(_))
        ));
    }

    #[test]
    fn witness_response_picks_the_line_of_the_configured_key() {
        let c = cosigner();
        let other = Cosigner::new("example.org/other", &[4; 32]).expect("ok");
        let cp = checkpoint();
        let mine = c.note_signature(&cp, 77).expect("signs").to_line();
        let theirs = other.note_signature(&cp, 78).expect("signs").to_line();
        // A non-72-byte blob (as ML-DSA would be) is skipped.
        let long = NoteSignature::new("example.org/w", c.key_id(), vec![1; 100])
            .expect("ok")
            .to_line();
        let body = format!("{theirs}\n{long}\n{mine}\n");
        let got = cosignature_from_witness_response(&c.public_key(), &cp, body.as_bytes())
            .expect("found");
        assert_eq!(got.timestamp, 77);
        // The witness may choose any name: the key ID follows it.
        let renamed = Cosigner::new("example.org/renamed", &[3; 32]).expect("ok");
        let body = format!(
            "{}\n",
            renamed.note_signature(&cp, 9).expect("signs").to_line()
        );
        assert_eq!(
            cosignature_from_witness_response(&c.public_key(), &cp, body.as_bytes())
                .map(|x| x.timestamp),
            Ok(9)
        );
    }

    #[test]
    fn witness_response_errors_are_typed() {
        let c = cosigner();
        let cp = checkpoint();
        let key = c.public_key();
        let line = c.note_signature(&cp, 1).expect("signs").to_line();
        assert_eq!(
            cosignature_from_witness_response(&key, &cp, b""),
            Err(WitnessResponseError::Empty)
        );
        assert_eq!(
            cosignature_from_witness_response(&key, &cp, line.as_bytes()),
            Err(WitnessResponseError::Unterminated { line: 1 })
        );
        assert!(matches!(
            cosignature_from_witness_response(&key, &cp, b"oops\n"),
            Err(WitnessResponseError::MalformedLine { line: 1, .. })
        ));
        let other_cp = Checkpoint::new("example.org/log", 12, [0x1c; 32]);
        assert_eq!(
            cosignature_from_witness_response(&key, &other_cp, format!("{line}\n").as_bytes()),
            Err(WitnessResponseError::InvalidCosignature { line: 1 })
        );
        let stranger = Cosigner::new("example.org/w", &[5; 32]).expect("ok");
        let body = format!(
            "{}\n",
            stranger.note_signature(&cp, 1).expect("ok").to_line()
        );
        assert_eq!(
            cosignature_from_witness_response(&key, &cp, body.as_bytes()),
            Err(WitnessResponseError::NoCosignature)
        );
    }
}
