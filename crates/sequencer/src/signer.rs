//! The one place that signs tree heads.
//!
//! # Invariant (architecture.md §2 step 4: why there is no split view)
//!
//! A node signs a tree head only for `(integrated_size, integrated_root)` of
//! a [`ShardState`] — values the state machine applied from *committed* Raft
//! entries (`Command::Integrated`, accepted only if the root equals the root
//! the state machine computed itself for that batch boundary). There is no
//! function here, or anywhere else in the crate, that signs a caller-chosen
//! size or root: [`Signer::sign`] takes the applied state and nothing else.
//!
//! Sigsum tree heads carry no timestamp and Ed25519 (RFC 8032) is
//! deterministic, so the signed bytes for a size are a pure function of the
//! committed Raft log: an old leader and a new leader can only ever produce
//! the same signature for the same size.
//!
//! Everything else in this module *verifies* or *assembles* already-made
//! signatures: [`Signer::verify_tree_head`] checks that a signature offered
//! back to the log (by the collector, in `PublishCosigned`) is this log's, and
//! [`Signer::checkpoint_note`] verifies a cosigned head and has
//! [`SignedCheckpoint::assemble`] build the C2SP signed-note `checkpoint`
//! object from it (the log signature line with key name = origin, and one
//! `cosignature/v1` line per witness) without signing anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cairn_sigsum::tree_head::{self, SignedTreeHead, TreeHead};
use cairn_sigsum::{KeyHash, PublicKey, Signature, SigningKey};
use cairn_tlog::checkpoint::{Checkpoint, CosignatureLine, MAX_TREE_SIZE, SignedCheckpoint};
use cairn_tlog::cosignature::{self, CosignatureVerifier};
use cairn_tlog::note::{Ed25519NoteVerifier, NoteVerifier, SIGSUM_MAX_SIGNATURES};
use cairn_tlog::{EMPTY_ROOT, Hash};

use crate::state_machine::AppliedState;
use crate::types::CosignedHead;

/// Most cosignature lines a `checkpoint` object carries: sigsum-go's
/// checkpoint parser accepts at most [`SIGSUM_MAX_SIGNATURES`] signature lines
/// in total, and one of them is the log's own.
pub const MAX_COSIGNATURES: usize = SIGSUM_MAX_SIGNATURES - 1;

/// Why the signer refused to sign, or a tree head or cosigned head was not
/// accepted. None of these is retryable with the same input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The applied state claims more integrated leaves than sequenced ones;
    /// the state machine is corrupt and nothing may be signed from it.
    #[error("inconsistent applied state: integrated size {integrated} > tree size {tree}")]
    InconsistentState {
        /// `integrated_size` of the state.
        integrated: u64,
        /// `tree_size` of the state.
        tree: u64,
    },
    /// A size above 2^63−1, which no Sigsum verifier parses.
    #[error("tree size {0} exceeds 2^63-1")]
    SizeTooLarge(u64),
    /// The log key is not a usable Ed25519 public key.
    #[error("the log key cannot verify note signatures: {0}")]
    BadLogKey(String),
    /// The log signature is not 64 bytes or does not verify for this log's
    /// key over the checkpoint body of that size and root.
    #[error("the log signature is not this log's signature on size {size}")]
    BadLogSignature {
        /// Size of the offered tree head.
        size: u64,
    },
    /// A cosignature by a witness whose key this shard does not know, so its
    /// note key ID cannot be computed nor its signature checked.
    #[error("cosignature by unknown witness key hash {0}")]
    UnknownWitness(KeyHash),
    /// Two cosignatures by the same witness.
    #[error("duplicate cosignature by witness key hash {0}")]
    DuplicateCosignature(KeyHash),
    /// More cosignatures than a checkpoint object can carry.
    #[error("{count} cosignatures; a checkpoint carries at most {MAX_COSIGNATURES}")]
    TooManyCosignatures {
        /// Number offered.
        count: usize,
    },
    /// A cosignature that is malformed (length, timestamp, key name) or does
    /// not verify under its witness's key and note name.
    #[error("cosignature by witness {key_hash} (note name {note_name:?}) is invalid: {reason}")]
    BadCosignature {
        /// The witness.
        key_hash: KeyHash,
        /// The note name it was offered with.
        note_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A `checkpoint` object that is not a valid signed checkpoint of this
    /// log (unparsable, another origin, or a log signature that does not
    /// verify).
    #[error("the checkpoint object is not this log's: {0}")]
    BadCheckpoint(String),
    /// The signed note could not be assembled (a limit of the note format).
    #[error("checkpoint note cannot be built: {0}")]
    Note(String),
}

/// The witness public keys a shard knows (from its policy), by key hash.
///
/// Needed to write cosignature lines: a signed-note key ID is derived from
/// the witness's name *and public key*, and a cosigned head carries only the
/// key hash.
#[derive(Clone, Debug, Default)]
pub struct WitnessKeys {
    keys: HashMap<KeyHash, PublicKey>,
}

impl WitnessKeys {
    /// The set of `keys` (duplicates collapse).
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        WitnessKeys {
            keys: keys.into_iter().map(|k| (k.key_hash(), k)).collect(),
        }
    }

    /// The key with hash `key_hash`, if known.
    pub fn get(&self, key_hash: &KeyHash) -> Option<&PublicKey> {
        self.keys.get(key_hash)
    }

    /// Number of known witnesses.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no witness is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A shard's log signer: its Ed25519 key and checkpoint origin
/// `sigsum.org/v1/tree/<hex key hash>`.
///
/// Cheap to share behind an `Arc`; all methods take `&self` and are pure
/// (no IO, no clock). Clones share the cache of the last signed head.
#[derive(Clone, Debug)]
pub struct Signer {
    key: SigningKey,
    public_key: PublicKey,
    origin: String,
    /// Verifies the log's note signature (type 0x01, key name = origin).
    note_verifier: Ed25519NoteVerifier,
    /// The last head signed: every `GetTreeHeads` asks for the current
    /// head, which changes once per integration, not per call. Ed25519 is
    /// deterministic, so the cached signature is the one signing again
    /// would give.
    last: Arc<Mutex<Option<SignedTreeHead>>>,
}

impl Signer {
    /// The signer for the log key `key`. Fails only if the key's public half
    /// is not a valid Ed25519 point (impossible for a key made from a seed,
    /// checked anyway because the note verifier needs it).
    pub fn new(key: SigningKey) -> Result<Self, SignerError> {
        let public_key = key.public_key();
        let origin = tree_head::origin_for_key(&public_key);
        let note_verifier = Ed25519NoteVerifier::new(&origin, &public_key.0)
            .map_err(|e| SignerError::BadLogKey(e.to_string()))?;
        Ok(Signer {
            key,
            public_key,
            origin,
            note_verifier,
            last: Arc::new(Mutex::new(None)),
        })
    }

    /// The checkpoint origin, `sigsum.org/v1/tree/<hex log key hash>`; also
    /// the key name of the log's note signature line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Signs the tree head at the state's *applied integrated* size:
    /// exactly `(state.integrated_size, state.integrated_root)`, never
    /// `tree_size` or any other value (see the module invariant).
    ///
    /// For size 0 the root is by definition `SHA-256("")` (RFC 6962), which
    /// is what is signed whatever the state holds. Refuses an inconsistent
    /// state (integrated beyond sequenced) and sizes above 2^63−1.
    pub fn sign(&self, state: &AppliedState) -> Result<SignedTreeHead, SignerError> {
        let size = state.integrated_size;
        if size > state.tree_size {
            return Err(SignerError::InconsistentState {
                integrated: size,
                tree: state.tree_size,
            });
        }
        if size > MAX_TREE_SIZE {
            return Err(SignerError::SizeTooLarge(size));
        }
        let root_hash = if size == 0 {
            EMPTY_ROOT
        } else {
            state.integrated_root
        };
        let head = TreeHead { size, root_hash };
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(signed) = last.filter(|s| s.tree_head == head) {
            return Ok(signed);
        }
        let signed = head.sign(&self.key);
        *last = Some(signed);
        Ok(signed)
    }

    /// Checks that `signature` is this log's signature on the tree head
    /// (`size`, `root`): strict Ed25519 verification over the checkpoint body.
    /// Ed25519 is deterministic and strict verification rejects malleated
    /// encodings, so an accepted signature is byte-for-byte the one
    /// [`Signer::sign`] produces for that size and root. Signs nothing.
    pub fn verify_tree_head(
        &self,
        size: u64,
        root: &Hash,
        signature: &[u8],
    ) -> Result<Signature, SignerError> {
        let bad = || SignerError::BadLogSignature { size };
        if size > MAX_TREE_SIZE {
            return Err(SignerError::SizeTooLarge(size));
        }
        let sig: [u8; 64] = signature.try_into().map_err(|_| bad())?;
        let body = Checkpoint::new(self.origin.as_str(), size, *root).to_body();
        if !self.note_verifier.verify(body.as_bytes(), &sig) {
            return Err(bad());
        }
        Ok(Signature(sig))
    }

    /// The size and root of a `checkpoint` object, once its log signature
    /// verifies under this log's key and its origin is this log's. A
    /// checkpoint that fails this is not this log's publication: an alarm,
    /// never a size to respect. Signs nothing.
    pub fn verify_checkpoint(&self, bytes: &[u8]) -> Result<(u64, Hash), SignerError> {
        let parsed = SignedCheckpoint::parse(bytes)
            .map_err(|e| SignerError::BadCheckpoint(e.to_string()))?;
        let checkpoint = parsed.checkpoint();
        if checkpoint.origin != self.origin {
            return Err(SignerError::BadCheckpoint(format!(
                "origin {:?} is not this log's {:?}",
                checkpoint.origin, self.origin
            )));
        }
        parsed
            .verify(&[&self.note_verifier])
            .map_err(|e| SignerError::BadCheckpoint(format!("log signature: {e}")))?;
        Ok((checkpoint.size, checkpoint.root))
    }

    /// The `checkpoint` object for `head`: a C2SP signed note whose text is
    /// the checkpoint body, with the log's signature line (key name =
    /// origin, type 0x01) followed by one `cosignature/v1` line (type 0x04)
    /// per cosignature, under the witness's note name, in the head's order.
    ///
    /// Every signature is verified first (the log's with
    /// [`Signer::verify_tree_head`], each cosignature under its witness key
    /// from `witnesses`), so the object always verifies for its readers.
    /// Rejects unknown witnesses, duplicate witnesses and more than
    /// [`MAX_COSIGNATURES`] cosignatures. Signs nothing.
    pub fn checkpoint_note(
        &self,
        head: &CosignedHead,
        witnesses: &WitnessKeys,
    ) -> Result<Vec<u8>, SignerError> {
        let log_sig = self.verify_tree_head(head.size, &head.root, &head.signature)?;
        if head.cosignatures.len() > MAX_COSIGNATURES {
            return Err(SignerError::TooManyCosignatures {
                count: head.cosignatures.len(),
            });
        }
        let checkpoint = Checkpoint::new(self.origin.as_str(), head.size, head.root);
        let body = checkpoint.to_body();
        let mut seen = Vec::with_capacity(head.cosignatures.len());
        let mut lines = Vec::with_capacity(head.cosignatures.len());
        for c in &head.cosignatures {
            let key_hash = KeyHash(c.key_hash);
            if seen.contains(&key_hash) {
                return Err(SignerError::DuplicateCosignature(key_hash));
            }
            seen.push(key_hash);
            let witness = witnesses
                .get(&key_hash)
                .ok_or(SignerError::UnknownWitness(key_hash))?;
            let bad = |reason: String| SignerError::BadCosignature {
                key_hash,
                note_name: c.note_name.clone(),
                reason,
            };
            let signature: [u8; 64] =
                c.signature.as_slice().try_into().map_err(|_| {
                    bad(format!("signature is {} bytes, want 64", c.signature.len()))
                })?;
            let cosignature = cosignature::Cosignature {
                timestamp: c.timestamp,
                signature,
            };
            CosignatureVerifier::new(&c.note_name, &witness.0)
                .map_err(|e| bad(e.to_string()))?
                .verify_cosignature(body.as_bytes(), &cosignature.to_blob())
                .map_err(|e| bad(e.to_string()))?;
            lines.push(CosignatureLine {
                name: &c.note_name,
                public_key: &witness.0,
                cosignature,
            });
        }
        let signed = SignedCheckpoint::assemble(checkpoint, &self.public_key.0, &log_sig.0, &lines)
            .map_err(|e| SignerError::Note(e.to_string()))?;
        Ok(signed.note().to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use cairn_sigsum::tree_head::Cosignature;
    use cairn_tlog::checkpoint::SignedCheckpoint;
    use cairn_tlog::cosignature::Cosigner;

    use super::*;
    use crate::types::StoredCosignature;

    fn signer() -> Signer {
        Signer::new(SigningKey::from_seed(&[0x4c; 32])).expect("valid key")
    }

    fn state(tree_size: u64, integrated_size: u64) -> AppliedState {
        AppliedState::for_test(crate::types::ShardState {
            last_applied: None,
            tree_size,
            tree_root: [0xaa; 32],
            integrated_size,
            integrated_root: [0xbb; 32],
            cosigned: None,
            frozen: None,
            registry: Default::default(),
        })
    }

    #[test]
    fn signs_exactly_the_applied_integrated_size_and_root_never_the_tree_size() {
        let s = signer();
        for (tree, integrated) in [(10, 4), (10, 10), (1, 1), (1_000_000, 999_999)] {
            let sth = s.sign(&state(tree, integrated)).expect("consistent state");
            assert_eq!(sth.tree_head.size, integrated);
            assert_eq!(sth.tree_head.root_hash, [0xbb; 32]);
            assert!(sth.verify(&s.public_key()));
            // The signature is worthless for any other size, in particular
            // the sequenced-but-not-integrated tree size.
            let mut other = sth;
            other.tree_head.size = tree;
            other.tree_head.root_hash = [0xaa; 32];
            assert!(tree == integrated || !other.verify(&s.public_key()));
            let mut beyond = sth;
            beyond.tree_head.size = integrated + 1;
            assert!(!beyond.verify(&s.public_key()));
        }
    }

    #[test]
    fn refuses_to_sign_an_integrated_size_beyond_the_tree_size() {
        let s = signer();
        assert_eq!(
            s.sign(&state(3, 4)),
            Err(SignerError::InconsistentState {
                integrated: 4,
                tree: 3
            })
        );
        let huge = MAX_TREE_SIZE + 1;
        assert_eq!(
            s.sign(&state(huge, huge)),
            Err(SignerError::SizeTooLarge(huge))
        );
    }

    #[test]
    fn empty_tree_is_signed_with_the_empty_root() {
        let s = signer();
        let sth = s
            .sign(&AppliedState::for_test(crate::types::ShardState::default()))
            .expect("empty state");
        assert_eq!(sth.tree_head, TreeHead::empty());
        assert!(sth.verify(&s.public_key()));
    }

    #[test]
    fn signing_is_deterministic_so_every_leader_signs_identical_bytes() {
        let a = signer().sign(&state(9, 7)).expect("signs");
        let b = signer().sign(&state(12, 7)).expect("signs");
        assert_eq!(a, b);
    }

    #[test]
    fn origin_is_the_sigsum_tree_origin_of_the_log_key() {
        let s = signer();
        assert_eq!(
            s.origin(),
            format!("sigsum.org/v1/tree/{}", s.public_key().key_hash())
        );
    }

    #[test]
    fn verify_tree_head_accepts_only_this_logs_signature_for_that_size_and_root() {
        let s = signer();
        let sth = s.sign(&state(8, 5)).expect("signs");
        let sig = sth.signature.0;
        assert_eq!(s.verify_tree_head(5, &[0xbb; 32], &sig), Ok(sth.signature));
        let bad = Err(SignerError::BadLogSignature { size: 6 });
        assert_eq!(s.verify_tree_head(6, &[0xbb; 32], &sig), bad);
        assert!(s.verify_tree_head(5, &[0xbc; 32], &sig).is_err());
        assert!(s.verify_tree_head(5, &[0xbb; 32], &sig[..63]).is_err());
        let other = Signer::new(SigningKey::from_seed(&[1; 32])).expect("key");
        let forged = other.sign(&state(8, 5)).expect("signs").signature.0;
        assert!(s.verify_tree_head(5, &[0xbb; 32], &forged).is_err());
    }

    fn cosigned(s: &Signer, witness: &SigningKey, name: &str) -> CosignedHead {
        let sth = s.sign(&state(8, 5)).expect("signs");
        let c = Cosignature::sign_for_origin(witness, &sth.tree_head, s.origin(), 1_700_000_000)
            .expect("timestamp in range");
        CosignedHead {
            size: 5,
            root: [0xbb; 32],
            signature: sth.signature.0.to_vec(),
            cosignatures: vec![StoredCosignature {
                key_hash: c.key_hash.0,
                timestamp: c.timestamp,
                signature: c.signature.0.to_vec(),
                note_name: name.to_owned(),
            }],
        }
    }

    #[test]
    fn checkpoint_note_verifies_with_the_log_key_and_each_witness_cosignature() {
        let s = signer();
        let w = SigningKey::from_seed(&[0x57; 32]);
        let name = "witness.example/w1";
        let head = cosigned(&s, &w, name);
        let bytes = s
            .checkpoint_note(&head, &WitnessKeys::new([w.public_key()]))
            .expect("valid head");
        let cp = SignedCheckpoint::parse(&bytes).expect("parses");
        assert_eq!(cp.checkpoint().origin, s.origin());
        assert_eq!(
            (cp.checkpoint().size, cp.checkpoint().root),
            (5, [0xbb; 32])
        );
        assert_eq!(cp.signatures().len(), 2);
        let log = Ed25519NoteVerifier::new(s.origin(), &s.public_key().0).expect("key");
        let cosigner = Cosigner::new(name, &w.seed()).expect("name");
        let witness = cosigner.verifier();
        let verified = cp.verify(&[&log, &witness]).expect("both lines verify");
        assert_eq!(verified.len(), 2);
    }

    #[test]
    fn checkpoint_note_rejects_unknown_duplicate_and_forged_cosignatures() {
        let s = signer();
        let w = SigningKey::from_seed(&[0x57; 32]);
        let keys = WitnessKeys::new([w.public_key()]);
        let head = cosigned(&s, &w, "w1");

        assert_eq!(
            s.checkpoint_note(&head, &WitnessKeys::default()),
            Err(SignerError::UnknownWitness(w.public_key().key_hash()))
        );

        let mut dup = head.clone();
        dup.cosignatures.push(dup.cosignatures[0].clone());
        assert_eq!(
            s.checkpoint_note(&dup, &keys),
            Err(SignerError::DuplicateCosignature(w.public_key().key_hash()))
        );

        let mut forged = head.clone();
        forged.cosignatures[0].timestamp += 1;
        assert!(matches!(
            s.checkpoint_note(&forged, &keys),
            Err(SignerError::BadCosignature { .. })
        ));

        let mut bad_name = head.clone();
        bad_name.cosignatures[0].note_name = "has space".into();
        assert!(matches!(
            s.checkpoint_note(&bad_name, &keys),
            Err(SignerError::BadCosignature { .. })
        ));

        let mut bad_log = head;
        bad_log.signature[0] ^= 1;
        assert_eq!(
            s.checkpoint_note(&bad_log, &keys),
            Err(SignerError::BadLogSignature { size: 5 })
        );
    }

    #[test]
    fn checkpoint_note_caps_the_number_of_cosignatures() {
        let s = signer();
        let mut head = cosigned(&s, &SigningKey::from_seed(&[2; 32]), "w");
        let one = head.cosignatures[0].clone();
        head.cosignatures = vec![one; MAX_COSIGNATURES + 1];
        assert_eq!(
            s.checkpoint_note(&head, &WitnessKeys::default()),
            Err(SignerError::TooManyCosignatures {
                count: MAX_COSIGNATURES + 1
            })
        );
    }
}
