//! Tree heads, their log signatures and witness cosignatures
//! (`sigsum-protocol.md` §4–§6).
//!
//! A log signs the C2SP checkpoint body of its tree head,
//! `sigsum.org/v1/tree/<hex log key hash>\n<size>\n<base64 root>\n`, with no
//! extension lines. A witness signs `cosignature/v1\ntime <T>\n` followed by
//! the same body. On the Sigsum API both travel as hex in `key=value` lines
//! (the get-tree-head response); the signed-note forms used between logs and
//! witnesses are built by `cairn_tlog::note` and `cairn_tlog::cosignature`
//! from [`SignedTreeHead::checkpoint_body`].

use std::collections::HashSet;

use cairn_tlog::checkpoint::Checkpoint;

use crate::ascii::{self, Line, MAX_INT, Parser, Reason, Value, Writer};
use crate::crypto::{Hash, KeyHash, PublicKey, Signature, SigningKey};

/// Prefix of a Sigsum log's checkpoint origin; the lowercase hex key hash
/// of the log's public key follows.
pub const ORIGIN_PREFIX: &str = "sigsum.org/v1/tree/";

/// First line of every cosigned message (C2SP tlog-cosignature, Ed25519).
pub const COSIGNATURE_NAMESPACE: &str = "cosignature/v1";

/// Key of the tree size line.
pub const SIZE_KEY: &str = "size";
/// Key of the root hash line.
pub const ROOT_HASH_KEY: &str = "root_hash";
/// Key of the log signature line.
pub const SIGNATURE_KEY: &str = "signature";
/// Key of the (repeated) cosignature lines.
pub const COSIGNATURE_KEY: &str = "cosignature";

/// The checkpoint origin of the log whose key hashes to `log_key_hash`.
pub fn origin(log_key_hash: &KeyHash) -> String {
    format!("{ORIGIN_PREFIX}{log_key_hash}")
}

/// The checkpoint origin of the log with public key `log_key`.
pub fn origin_for_key(log_key: &PublicKey) -> String {
    origin(&log_key.key_hash())
}

/// A cosignature timestamp above 2^63−1, which no verifier would parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cosignature timestamp {0} is larger than 2^63-1")]
pub struct TimestampOutOfRange(pub u64);

/// Two cosignatures by the same witness key hash in one tree head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("duplicate cosignature for witness key hash {0}")]
pub struct DuplicateCosignature(pub KeyHash);

/// The size and root of a log's tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TreeHead {
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash of those leaves.
    pub root_hash: Hash,
}

impl TreeHead {
    /// The empty tree: size 0, root `SHA-256("")`.
    pub fn empty() -> Self {
        TreeHead {
            size: 0,
            root_hash: cairn_tlog::EMPTY_ROOT,
        }
    }

    /// The checkpoint of this tree head for the log with key hash
    /// `log_key_hash` (no extension lines).
    pub fn checkpoint(&self, log_key_hash: &KeyHash) -> Checkpoint {
        Checkpoint::new(origin(log_key_hash), self.size, self.root_hash)
    }

    /// The checkpoint body, the exact bytes the log signs.
    pub fn checkpoint_body(&self, log_key_hash: &KeyHash) -> String {
        self.checkpoint(log_key_hash).to_body()
    }

    /// The exact bytes a witness signs for the checkpoint with `origin` at
    /// `timestamp`: `cosignature/v1\ntime <T>\n<origin>\n<size>\n<b64 root>\n`.
    pub fn cosigned_message_for_origin(&self, origin: &str, timestamp: u64) -> String {
        let body = Checkpoint::new(origin, self.size, self.root_hash).to_body();
        format!("{COSIGNATURE_NAMESPACE}\ntime {timestamp}\n{body}")
    }

    /// The exact bytes a witness signs for this tree head of the log with
    /// key hash `log_key_hash`.
    pub fn cosigned_message(&self, log_key_hash: &KeyHash, timestamp: u64) -> String {
        self.cosigned_message_for_origin(&origin(log_key_hash), timestamp)
    }

    /// Signs the checkpoint body with the log's key.
    pub fn sign(&self, log_key: &SigningKey) -> SignedTreeHead {
        let body = self.checkpoint_body(&log_key.public_key().key_hash());
        SignedTreeHead {
            tree_head: *self,
            signature: log_key.sign(body.as_bytes()),
        }
    }

    /// Reads the `size` and `root_hash` lines.
    pub fn parse_from(parser: &mut Parser<'_>) -> Result<Self, ascii::Error> {
        Ok(TreeHead {
            size: parser.next_int(SIZE_KEY)?,
            root_hash: parser.next_hash(ROOT_HASH_KEY)?,
        })
    }

    /// Appends the `size` and `root_hash` lines.
    pub fn write(&self, w: &mut Writer) {
        w.int(SIZE_KEY, self.size)
            .hex(ROOT_HASH_KEY, &self.root_hash);
    }
}

/// A tree head with the log's signature over its checkpoint body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// The tree head.
    pub tree_head: TreeHead,
    /// Ed25519 signature by the log key over the checkpoint body.
    pub signature: Signature,
}

impl SignedTreeHead {
    /// The checkpoint body for the log with public key `log_key`: the text
    /// of the signed-note form, before its signature lines.
    pub fn checkpoint_body(&self, log_key: &PublicKey) -> String {
        self.tree_head.checkpoint_body(&log_key.key_hash())
    }

    /// Whether `signature` is the log's valid signature over the checkpoint
    /// body built from `log_key`'s origin.
    pub fn verify(&self, log_key: &PublicKey) -> bool {
        log_key.verify(self.checkpoint_body(log_key).as_bytes(), &self.signature)
    }

    /// Reads the `size`, `root_hash` and `signature` lines.
    pub fn parse_from(parser: &mut Parser<'_>) -> Result<Self, ascii::Error> {
        Ok(SignedTreeHead {
            tree_head: TreeHead::parse_from(parser)?,
            signature: parser.next_signature(SIGNATURE_KEY)?,
        })
    }

    /// Parses a complete signed tree head message (no cosignatures).
    pub fn parse(input: &[u8]) -> Result<Self, ascii::Error> {
        let mut p = Parser::new(input);
        let sth = Self::parse_from(&mut p)?;
        p.finish()?;
        Ok(sth)
    }

    /// Appends the `size`, `root_hash` and `signature` lines.
    pub fn write(&self, w: &mut Writer) {
        self.tree_head.write(w);
        w.hex(SIGNATURE_KEY, &self.signature.0);
    }

    /// The message text.
    pub fn to_ascii(&self) -> String {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_string()
    }
}

/// A witness cosignature as the Sigsum API carries it:
/// `cosignature=<hex witness key hash> <timestamp> <hex signature>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// `SHA-256(witness public key)`.
    pub key_hash: KeyHash,
    /// POSIX seconds at which the witness vouched for the tree head.
    pub timestamp: u64,
    /// Ed25519 signature over the cosigned message.
    pub signature: Signature,
}

impl Cosignature {
    /// Cosigns `tree_head` of the log with key hash `log_key_hash`.
    pub fn sign(
        witness: &SigningKey,
        tree_head: &TreeHead,
        log_key_hash: &KeyHash,
        timestamp: u64,
    ) -> Result<Self, TimestampOutOfRange> {
        Self::sign_for_origin(witness, tree_head, &origin(log_key_hash), timestamp)
    }

    /// Cosigns `tree_head` of the checkpoint with `origin`.
    pub fn sign_for_origin(
        witness: &SigningKey,
        tree_head: &TreeHead,
        origin: &str,
        timestamp: u64,
    ) -> Result<Self, TimestampOutOfRange> {
        if timestamp > MAX_INT {
            return Err(TimestampOutOfRange(timestamp));
        }
        let message = tree_head.cosigned_message_for_origin(origin, timestamp);
        Ok(Cosignature {
            key_hash: witness.public_key().key_hash(),
            timestamp,
            signature: witness.sign(message.as_bytes()),
        })
    }

    /// Whether this is `witness_key`'s valid cosignature on `tree_head` of
    /// the log with key hash `log_key_hash`. False if `key_hash` is not the
    /// hash of `witness_key` or the timestamp is above 2^63−1.
    pub fn verify(
        &self,
        witness_key: &PublicKey,
        tree_head: &TreeHead,
        log_key_hash: &KeyHash,
    ) -> bool {
        self.verify_for_origin(witness_key, tree_head, &origin(log_key_hash))
    }

    /// Like [`Cosignature::verify`], for the checkpoint with `origin`.
    pub fn verify_for_origin(
        &self,
        witness_key: &PublicKey,
        tree_head: &TreeHead,
        origin: &str,
    ) -> bool {
        if self.key_hash != witness_key.key_hash() || self.timestamp > MAX_INT {
            return false;
        }
        let message = tree_head.cosigned_message_for_origin(origin, self.timestamp);
        witness_key.verify(message.as_bytes(), &self.signature)
    }

    /// Parses the fields of a `cosignature=` line.
    pub fn from_line(line: &Line<'_>) -> Result<Self, ascii::Error> {
        Ok(Cosignature {
            key_hash: line.key_hash(0)?,
            timestamp: line.int(1)?,
            signature: line.signature(2)?,
        })
    }

    /// Appends the `cosignature=` line.
    pub fn write_line(&self, w: &mut Writer) {
        w.line(
            COSIGNATURE_KEY,
            &[
                Value::Hex(&self.key_hash.0),
                Value::Int(self.timestamp),
                Value::Hex(&self.signature.0),
            ],
        );
    }

    /// The `cosignature=` line, newline included.
    pub fn to_line(&self) -> String {
        let mut w = Writer::new();
        self.write_line(&mut w);
        w.into_string()
    }
}

/// A signed tree head with zero or more cosignatures, at most one per
/// witness key hash: the get-tree-head response and the tree-head block of
/// a proof file.
///
/// Cosignatures keep their order, so parsing and serializing reproduce the
/// input byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignedTreeHead {
    /// The log-signed tree head.
    pub signed: SignedTreeHead,
    cosignatures: Vec<Cosignature>,
}

impl CosignedTreeHead {
    /// A cosigned tree head; fails if two cosignatures share a key hash.
    pub fn new(
        signed: SignedTreeHead,
        cosignatures: Vec<Cosignature>,
    ) -> Result<Self, DuplicateCosignature> {
        let mut seen = HashSet::new();
        for c in &cosignatures {
            if !seen.insert(c.key_hash) {
                return Err(DuplicateCosignature(c.key_hash));
            }
        }
        Ok(CosignedTreeHead {
            signed,
            cosignatures,
        })
    }

    /// The tree head.
    pub fn tree_head(&self) -> &TreeHead {
        &self.signed.tree_head
    }

    /// The cosignatures in order.
    pub fn cosignatures(&self) -> &[Cosignature] {
        &self.cosignatures
    }

    /// The cosignature by the witness with `key_hash`, if any.
    pub fn cosignature_by(&self, key_hash: &KeyHash) -> Option<&Cosignature> {
        self.cosignatures.iter().find(|c| c.key_hash == *key_hash)
    }

    /// Appends a cosignature; fails (leaving `self` unchanged) if that
    /// witness already cosigned.
    pub fn add_cosignature(
        &mut self,
        cosignature: Cosignature,
    ) -> Result<(), DuplicateCosignature> {
        if self.cosignature_by(&cosignature.key_hash).is_some() {
            return Err(DuplicateCosignature(cosignature.key_hash));
        }
        self.cosignatures.push(cosignature);
        Ok(())
    }

    /// Reads a signed tree head and all `cosignature` lines up to the end of
    /// the parser's input, rejecting duplicate witness key hashes (as
    /// sigsum-go does).
    pub fn parse_from(parser: &mut Parser<'_>) -> Result<Self, ascii::Error> {
        let signed = SignedTreeHead::parse_from(parser)?;
        let mut cosignatures: Vec<Cosignature> = Vec::new();
        let mut seen = HashSet::new();
        for line in parser.repeated(COSIGNATURE_KEY, 3)? {
            let c = Cosignature::from_line(&line)?;
            if !seen.insert(c.key_hash) {
                return Err(line.error(Reason::DuplicateCosignature(c.key_hash)));
            }
            cosignatures.push(c);
        }
        Ok(CosignedTreeHead {
            signed,
            cosignatures,
        })
    }

    /// Parses a complete get-tree-head response.
    pub fn parse(input: &[u8]) -> Result<Self, ascii::Error> {
        let mut p = Parser::new(input);
        let cth = Self::parse_from(&mut p)?;
        p.finish()?;
        Ok(cth)
    }

    /// Appends the signed tree head and the cosignature lines.
    pub fn write(&self, w: &mut Writer) {
        self.signed.write(w);
        for c in &self.cosignatures {
            c.write_line(w);
        }
    }

    /// The get-tree-head response text.
    pub fn to_ascii(&self) -> String {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_string()
    }

    /// The get-tree-head answer a log's published C2SP `checkpoint` note
    /// stands for: its tree head and log signature, and the cosignature of
    /// each of `witnesses` whose `cosignature/v1` line is in the note and
    /// verifies. Lines by other keys, and ones that do not verify, are left
    /// out, as a verifier would ignore them; so is a second line by the
    /// same witness. This is how a log whose sequencer is gone (a retired
    /// shard) keeps answering get-tree-head from object storage.
    pub fn from_checkpoint_note(
        note: &[u8],
        log_key: &PublicKey,
        witnesses: &[PublicKey],
    ) -> Result<Self, FromCheckpointError> {
        use cairn_tlog::checkpoint::SignedCheckpoint;
        use cairn_tlog::cosignature::Cosignature as NoteCosignature;
        use cairn_tlog::note::{SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, key_id};

        let parsed = SignedCheckpoint::parse(note)
            .map_err(|e| FromCheckpointError::Malformed(e.to_string()))?;
        let checkpoint = parsed.checkpoint();
        let expected = origin(&log_key.key_hash());
        if checkpoint.origin != expected {
            return Err(FromCheckpointError::Origin {
                found: checkpoint.origin.clone(),
                expected,
            });
        }
        if !checkpoint.extensions.is_empty() {
            return Err(FromCheckpointError::Extensions);
        }
        let tree_head = TreeHead {
            size: checkpoint.size,
            root_hash: checkpoint.root,
        };
        let log_id = key_id(&checkpoint.origin, SIG_TYPE_ED25519, &log_key.0);
        let signed = parsed
            .signatures()
            .iter()
            .filter(|s| s.key_id() == log_id)
            .filter_map(|s| <[u8; 64]>::try_from(s.blob()).ok())
            .map(|sig| SignedTreeHead {
                tree_head,
                signature: Signature(sig),
            })
            .find(|signed| signed.verify(log_key))
            .ok_or(FromCheckpointError::NoLogSignature)?;
        let mut head = CosignedTreeHead {
            signed,
            cosignatures: Vec::new(),
        };
        for line in parsed.signatures() {
            let Some(witness) = witnesses
                .iter()
                .find(|w| line.key_id() == key_id(line.name(), SIG_TYPE_COSIGNATURE_V1, &w.0))
            else {
                continue;
            };
            let Ok(blob) = NoteCosignature::from_note_signature(line) else {
                continue;
            };
            let cosignature = Cosignature {
                key_hash: witness.key_hash(),
                timestamp: blob.timestamp,
                signature: Signature(blob.signature),
            };
            if cosignature.verify_for_origin(witness, &tree_head, &checkpoint.origin) {
                // A second valid line by the same witness adds nothing.
                let _ = head.add_cosignature(cosignature);
            }
        }
        Ok(head)
    }
}

/// Why a checkpoint note is not a cosigned tree head of the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FromCheckpointError {
    /// Not a signed note, or its text not a checkpoint.
    #[error("not a signed checkpoint: {0}")]
    Malformed(String),
    /// The origin is another log's.
    #[error("the checkpoint's origin {found:?} is not this log's ({expected:?})")]
    Origin {
        /// The origin line of the note.
        found: String,
        /// This log's origin.
        expected: String,
    },
    /// Sigsum tree heads have no extension lines.
    #[error("the checkpoint has extension lines, which a Sigsum tree head cannot carry")]
    Extensions,
    /// No signature line by the log key verifies.
    #[error("no signature in the checkpoint verifies with the log key")]
    NoLogSignature,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_key() -> SigningKey {
        SigningKey::from_seed(&[0x4c; 32])
    }

    fn head() -> TreeHead {
        TreeHead {
            size: 3,
            root_hash: [9; 32],
        }
    }

    /// A checkpoint note of `head` signed by `log`, with a cosignature line
    /// per `(name, witness, timestamp, forged)`.
    fn note(
        log: &SigningKey,
        head: &TreeHead,
        lines: &[(&str, &SigningKey, u64, bool)],
    ) -> Vec<u8> {
        use cairn_tlog::checkpoint::{CosignatureLine, SignedCheckpoint};
        let log_hash = log.public_key().key_hash();
        let signed = head.sign(log);
        let keys: Vec<[u8; 32]> = lines.iter().map(|(_, w, _, _)| w.public_key().0).collect();
        let cosignatures: Vec<CosignatureLine<'_>> = lines
            .iter()
            .zip(&keys)
            .map(|((name, w, ts, forged), key)| {
                let c = Cosignature::sign(w, head, &log_hash, *ts).unwrap();
                let mut signature = c.signature.0;
                if *forged {
                    signature[0] ^= 1;
                }
                CosignatureLine {
                    name,
                    public_key: key,
                    cosignature: cairn_tlog::cosignature::Cosignature {
                        timestamp: *ts,
                        signature,
                    },
                }
            })
            .collect();
        SignedCheckpoint::assemble(
            head.checkpoint(&log_hash),
            &log.public_key().0,
            &signed.signature.0,
            &cosignatures,
        )
        .unwrap()
        .note()
        .to_bytes()
    }

    #[test]
    fn a_published_checkpoint_reads_back_as_the_cosigned_head_of_the_policy_witnesses() {
        let log = log_key();
        let (w1, w2, stranger) = (
            SigningKey::from_seed(&[0x57; 32]),
            SigningKey::from_seed(&[0x58; 32]),
            SigningKey::from_seed(&[0x59; 32]),
        );
        let bytes = note(
            &log,
            &head(),
            &[
                ("w1.example", &w1, 1000, false),
                ("stranger.example", &stranger, 1001, false),
                ("w2.example", &w2, 1002, true),
            ],
        );
        let witnesses = [w1.public_key(), w2.public_key()];
        let cth =
            CosignedTreeHead::from_checkpoint_note(&bytes, &log.public_key(), &witnesses).unwrap();
        assert_eq!(cth.signed, head().sign(&log));
        // Only w1's line counts: the stranger is not a policy witness and
        // w2's signature is forged.
        assert_eq!(cth.cosignatures().len(), 1);
        let c = cth.cosignature_by(&w1.public_key().key_hash()).unwrap();
        assert_eq!(c.timestamp, 1000);
        assert!(c.verify(&w1.public_key(), &head(), &log.public_key().key_hash()));
    }

    #[test]
    fn a_checkpoint_of_another_log_or_without_the_log_signature_is_refused() {
        let log = log_key();
        let other = SigningKey::from_seed(&[2; 32]);
        let bytes = note(&other, &head(), &[]);
        assert!(matches!(
            CosignedTreeHead::from_checkpoint_note(&bytes, &log.public_key(), &[]),
            Err(FromCheckpointError::Origin { .. })
        ));
        // Our origin, but the signature line is another key's.
        let text = String::from_utf8(note(&log, &head(), &[])).unwrap();
        let theirs = String::from_utf8(note(&other, &head(), &[])).unwrap();
        let ours_line = text.lines().last().unwrap();
        let forged = text.replace(ours_line, theirs.lines().last().unwrap());
        assert_eq!(
            CosignedTreeHead::from_checkpoint_note(forged.as_bytes(), &log.public_key(), &[]),
            Err(FromCheckpointError::NoLogSignature)
        );
        assert!(matches!(
            CosignedTreeHead::from_checkpoint_note(b"not a note", &log.public_key(), &[]),
            Err(FromCheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn origin_is_the_prefix_and_lowercase_hex_key_hash() {
        let o = origin(&KeyHash([0xAB; 32]));
        assert_eq!(o, format!("sigsum.org/v1/tree/{}", "ab".repeat(32)));
    }

    #[test]
    fn signed_tree_head_verifies_only_for_its_size_root_and_key() {
        let key = log_key();
        let sth = head().sign(&key);
        assert!(sth.verify(&key.public_key()));
        let mut bigger = sth;
        bigger.tree_head.size += 1;
        assert!(!bigger.verify(&key.public_key()));
        let other = SigningKey::from_seed(&[1; 32]).public_key();
        assert!(!sth.verify(&other));
    }

    #[test]
    fn cosignature_binds_time_tree_head_and_log() {
        let w = SigningKey::from_seed(&[0x57; 32]);
        let log = log_key().public_key().key_hash();
        let c = Cosignature::sign(&w, &head(), &log, 1000).unwrap();
        assert!(c.verify(&w.public_key(), &head(), &log));
        let mut later = c;
        later.timestamp += 1;
        assert!(!later.verify(&w.public_key(), &head(), &log));
        assert!(!c.verify(&w.public_key(), &head(), &KeyHash([0; 32])));
        let other = SigningKey::from_seed(&[1; 32]).public_key();
        assert!(!c.verify(&other, &head(), &log));
    }

    #[test]
    fn cosigning_refuses_timestamps_above_2_pow_63_minus_1() {
        let w = SigningKey::from_seed(&[0x57; 32]);
        let log = KeyHash([0; 32]);
        assert!(Cosignature::sign(&w, &head(), &log, MAX_INT).is_ok());
        assert_eq!(
            Cosignature::sign(&w, &head(), &log, MAX_INT + 1),
            Err(TimestampOutOfRange(MAX_INT + 1))
        );
    }

    #[test]
    fn cosigned_tree_head_round_trips_in_order() {
        let key = log_key();
        let log = key.public_key().key_hash();
        let w1 = SigningKey::from_seed(&[2; 32]);
        let w2 = SigningKey::from_seed(&[3; 32]);
        let cosigs = vec![
            Cosignature::sign(&w2, &head(), &log, 5).unwrap(),
            Cosignature::sign(&w1, &head(), &log, 6).unwrap(),
        ];
        let cth = CosignedTreeHead::new(head().sign(&key), cosigs).unwrap();
        let text = cth.to_ascii();
        assert_eq!(CosignedTreeHead::parse(text.as_bytes()), Ok(cth));
    }

    #[test]
    fn duplicate_cosignature_key_hash_is_rejected_like_sigsum_go() {
        let key = log_key();
        let log = key.public_key().key_hash();
        let w = SigningKey::from_seed(&[2; 32]);
        let c = Cosignature::sign(&w, &head(), &log, 5).unwrap();
        let sth = head().sign(&key);
        assert_eq!(
            CosignedTreeHead::new(sth, vec![c, c]),
            Err(DuplicateCosignature(c.key_hash))
        );
        let mut cth = CosignedTreeHead::new(sth, vec![c]).unwrap();
        assert!(cth.add_cosignature(c).is_err());
        assert_eq!(cth.cosignatures().len(), 1);
        let text = format!("{}{}", cth.to_ascii(), c.to_line());
        let e = CosignedTreeHead::parse(text.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (5, "cosignature"));
        assert_eq!(e.reason, Reason::DuplicateCosignature(c.key_hash));
    }

    #[test]
    fn signed_tree_head_message_rejects_cosignature_lines() {
        let sth = head().sign(&log_key());
        assert_eq!(SignedTreeHead::parse(sth.to_ascii().as_bytes()), Ok(sth));
        let c = Cosignature {
            key_hash: KeyHash([1; 32]),
            timestamp: 1,
            signature: Signature([2; 64]),
        };
        let text = format!("{}{}", sth.to_ascii(), c.to_line());
        assert!(SignedTreeHead::parse(text.as_bytes()).is_err());
    }
}
