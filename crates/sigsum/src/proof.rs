//! The Sigsum proof file and its offline verification
//! (`sigsum-protocol.md` §12; sigsum-go `doc/sigsum-proof.md`).
//!
//! ```text
//! version=2
//! log=<hex log key hash>
//! leaf=<hex submitter key hash> <hex leaf signature>
//!
//! size=<n>
//! root_hash=<hex>
//! signature=<hex log signature>
//! cosignature=<hex witness key hash> <time> <hex sig>   (0 or more)
//!
//! leaf_index=<i>
//! node_hash=<hex>                                       (1 or more)
//! ```
//!
//! Blocks are separated by exactly one empty line; the second and third are
//! verbatim get-tree-head and get-inclusion-proof responses. For `size=1`
//! the inclusion block and its separator are omitted (the leaf hash is the
//! root). Version 1 files differ only in `version=1` and
//! `leaf=<4 hex: first 2 bytes of the checksum> <key hash> <signature>`;
//! they are read, and written back as version 2.
//!
//! Verification follows sigsum-go, which is stricter than sigsum-rs on
//! duplicate cosignatures (rejected when parsing) and more lenient on a bad
//! cosignature from a known witness (counted as absent, not fatal).

use cairn_tlog::proof::ProofError;

use crate::api::InclusionProof;
use crate::ascii::{self, Reason, Value, Writer, split_blocks};
use crate::crypto::{Hash, KeyHash, PublicKey, Signature, WeakKeyError, hash};
use crate::leaf::{self, Leaf, LeafError};
use crate::policy::Policy;
use crate::tree_head::CosignedTreeHead;

/// The version this crate writes.
pub const VERSION: u64 = 2;

/// Key of the version line.
pub const VERSION_KEY: &str = "version";
/// Key of the log key hash line.
pub const LOG_KEY: &str = "log";
/// Key of the leaf line.
pub const LEAF_KEY: &str = "leaf";

/// The message a submitter signs for `data` (unless in raw-hash mode, where
/// the 32-byte message is given directly): `SHA-256(data)`.
pub fn message_from_data(data: &[u8]) -> Hash {
    hash(data)
}

/// A parsed proof file.
///
/// For a tree of size 1, `inclusion` is `leaf_index` 0 with an empty path
/// (and is not written out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigsumProof {
    /// Key hash of the log that included the leaf.
    pub log_key_hash: KeyHash,
    /// Key hash of the submitter key that signed the leaf.
    pub submitter_key_hash: KeyHash,
    /// The submitter's leaf signature.
    pub leaf_signature: Signature,
    /// First two checksum bytes, present only when read from a version 1
    /// file; checked by [`SigsumProof::verify`] and dropped on writing.
    pub short_checksum: Option<[u8; 2]>,
    /// The log-signed, cosigned tree head (no duplicate witness key hashes).
    pub tree_head: CosignedTreeHead,
    /// The inclusion proof of the leaf in `tree_head`.
    pub inclusion: InclusionProof,
}

/// Which verification step failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Version 1 files only: the message's checksum does not start with the
    /// recorded short checksum (the proof is for other data).
    #[error(
        "checksum: the message's checksum starts with {}, the proof records {}",
        hex::encode(computed),
        hex::encode(recorded)
    )]
    ShortChecksumMismatch {
        /// The first bytes of `SHA-256(message)`.
        computed: [u8; 2],
        /// The bytes in the proof.
        recorded: [u8; 2],
    },
    /// No trusted submitter key has the leaf's key hash.
    #[error("leaf: key hash {0} is not one of the trusted submitter keys")]
    UnknownSubmitter(KeyHash),
    /// The leaf signature does not verify (typically: other data).
    #[error("leaf: leaf signature not valid for this message and submitter key")]
    BadLeafSignature,
    /// The trusted submitter key is one whose signatures prove nothing
    /// (small order, non-canonical): refused, where sigsum-go would accept.
    #[error("leaf: submitter key {key_hash} refused: {reason}")]
    WeakSubmitterKey {
        /// The key's hash.
        key_hash: KeyHash,
        /// Why it is refused.
        reason: WeakKeyError,
    },
    /// The proof's log is not in the policy.
    #[error("tree head: unknown log {0}")]
    UnknownLog(KeyHash),
    /// The log's signature on the tree head does not verify.
    #[error("tree head: invalid log signature")]
    BadLogSignature,
    /// The policy's quorum is not met by the valid cosignatures.
    #[error(
        "cosignatures: quorum not satisfied (cosignatures: {total}, verified: {verified}, known witness but invalid: {invalid})"
    )]
    QuorumNotSatisfied {
        /// Cosignature lines in the proof.
        total: usize,
        /// Those from policy witnesses that verified.
        verified: usize,
        /// Those from policy witnesses that did not verify.
        invalid: usize,
    },
    /// An empty tree includes no leaf.
    #[error("inclusion: tree size 0 includes no leaf")]
    EmptyTree,
    /// The leaf is not in the tree head.
    #[error("inclusion: {0}")]
    Inclusion(ProofError),
}

impl SigsumProof {
    /// Parses a version 1 or 2 proof file.
    ///
    /// Rejects: other versions, CRLF, missing or extra blocks or lines, a
    /// stray or trailing empty line, size 0, duplicate cosignature key
    /// hashes, and an inclusion block for size 1.
    pub fn parse(input: &[u8]) -> Result<Self, ascii::Error> {
        let blocks = split_blocks(input);
        // Where a missing block would have started.
        let end_line = input.iter().filter(|&&b| b == b'\n').count() + 1;
        let block = |i: usize, key: &str, what: &'static str| {
            blocks
                .get(i)
                .copied()
                .ok_or_else(|| ascii::Error::new(end_line, key, Reason::MissingBlock(what)))
        };

        let mut p = block(0, VERSION_KEY, "leaf")?.parser();
        let version_line = p.line_number();
        let version = p.next_int(VERSION_KEY)?;
        if version != 1 && version != 2 {
            return Err(ascii::Error::new(
                version_line,
                VERSION_KEY,
                Reason::UnsupportedVersion(version),
            ));
        }
        let log_key_hash = p.next_key_hash(LOG_KEY)?;
        let (short_checksum, submitter_key_hash, leaf_signature) = if version == 1 {
            let l = p.next_line(LEAF_KEY, 3)?;
            (Some(l.hex::<2>(0)?), l.key_hash(1)?, l.signature(2)?)
        } else {
            let l = p.next_line(LEAF_KEY, 2)?;
            (None, l.key_hash(0)?, l.signature(1)?)
        };
        p.finish()?;

        let head_block = block(1, "size", "tree head")?;
        let tree_head = CosignedTreeHead::parse_from(&mut head_block.parser())?;
        let size = tree_head.tree_head().size;
        if size == 0 {
            return Err(ascii::Error::new(
                head_block.first_line,
                "size",
                Reason::EmptyTree,
            ));
        }
        let (inclusion, used) = if size == 1 {
            (
                InclusionProof {
                    leaf_index: 0,
                    path: Vec::new(),
                },
                2,
            )
        } else {
            let b = block(2, "leaf_index", "inclusion proof")?;
            (InclusionProof::parse_from(&mut b.parser())?, 3)
        };
        if let Some(extra) = blocks.get(used) {
            return Err(ascii::Error::new(extra.first_line, "", Reason::ExtraBlock));
        }
        Ok(SigsumProof {
            log_key_hash,
            submitter_key_hash,
            leaf_signature,
            short_checksum,
            tree_head,
            inclusion,
        })
    }

    /// The proof file, always version 2 (a version 1 proof is converted).
    pub fn to_ascii(&self) -> String {
        let mut w = Writer::new();
        w.int(VERSION_KEY, VERSION)
            .hex(LOG_KEY, &self.log_key_hash.0)
            .line(
                LEAF_KEY,
                &[
                    Value::Hex(&self.submitter_key_hash.0),
                    Value::Hex(&self.leaf_signature.0),
                ],
            )
            .empty_line();
        self.tree_head.write(&mut w);
        if self.tree_head.tree_head().size > 1 {
            w.empty_line();
            self.inclusion.write(&mut w);
        }
        w.into_string()
    }

    /// The leaf this proof is about, for `message`.
    pub fn leaf(&self, message: &Hash) -> Leaf {
        Leaf {
            checksum: leaf::checksum(message),
            signature: self.leaf_signature,
            key_hash: self.submitter_key_hash,
        }
    }

    /// Verifies offline that `message` was signed by one of `submitters`
    /// and logged by a policy log whose tree head meets the policy's quorum.
    ///
    /// Steps, in sigsum-go's order: (v1 only) short checksum; submitter key
    /// lookup and leaf signature; log lookup and log signature; cosignatures
    /// from policy witnesses (an invalid one counts as absent, unknown
    /// witnesses are ignored) and quorum; inclusion of the leaf hash (for
    /// size 1: leaf hash = root hash). Timestamps are not judged here:
    /// freshness is application policy.
    pub fn verify(
        &self,
        message: &Hash,
        submitters: &[PublicKey],
        policy: &Policy,
    ) -> Result<(), VerifyError> {
        let leaf = self.leaf(message);
        if let Some(recorded) = self.short_checksum {
            let computed = [leaf.checksum[0], leaf.checksum[1]];
            if computed != recorded {
                return Err(VerifyError::ShortChecksumMismatch { computed, recorded });
            }
        }

        let submitter = submitters
            .iter()
            .find(|k| k.key_hash() == self.submitter_key_hash)
            .ok_or(VerifyError::UnknownSubmitter(self.submitter_key_hash))?;
        leaf.verify(submitter).map_err(|e| match e {
            LeafError::WeakKey(reason) => VerifyError::WeakSubmitterKey {
                key_hash: self.submitter_key_hash,
                reason,
            },
            // The key was found by its hash, so only the signature can fail.
            LeafError::BadSignature | LeafError::KeyHashMismatch { .. } | LeafError::Length(_) => {
                VerifyError::BadLeafSignature
            }
        })?;

        let log = policy
            .log_by_key_hash(&self.log_key_hash)
            .ok_or(VerifyError::UnknownLog(self.log_key_hash))?;
        if !self.tree_head.signed.verify(log.key()) {
            return Err(VerifyError::BadLogSignature);
        }

        let review = policy.review_cosignatures(&self.tree_head, &self.log_key_hash);
        if !review.quorum_satisfied() {
            return Err(VerifyError::QuorumNotSatisfied {
                total: self.tree_head.cosignatures().len(),
                verified: review.valid.len(),
                invalid: review.invalid.len(),
            });
        }

        let th = self.tree_head.tree_head();
        if th.size == 0 {
            return Err(VerifyError::EmptyTree);
        }
        // For size 1 the implied proof (index 0, empty path) makes this the
        // check leaf hash == root hash.
        self.inclusion
            .verify(&leaf.leaf_hash(), th)
            .map_err(VerifyError::Inclusion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;
    use crate::tree_head::{Cosignature, TreeHead};

    struct Fixture {
        submitter: SigningKey,
        log: SigningKey,
        witness: SigningKey,
        message: Hash,
    }

    fn fixture() -> Fixture {
        Fixture {
            submitter: SigningKey::from_seed(&[0x53; 32]),
            log: SigningKey::from_seed(&[0x4c; 32]),
            witness: SigningKey::from_seed(&[0x57; 32]),
            message: message_from_data(b"data\n"),
        }
    }

    /// A size-2 tree whose second leaf is the fixture's, cosigned by the witness.
    fn proof(f: &Fixture) -> SigsumProof {
        let other = Leaf::sign(&f.submitter, &[0; 32]).leaf_hash();
        let mine = Leaf::sign(&f.submitter, &f.message);
        let th = TreeHead {
            size: 2,
            root_hash: cairn_tlog::node_hash(&other, &mine.leaf_hash()),
        };
        let log_hash = f.log.public_key().key_hash();
        let cosig = Cosignature::sign(&f.witness, &th, &log_hash, 100).unwrap();
        SigsumProof {
            log_key_hash: log_hash,
            submitter_key_hash: mine.key_hash,
            leaf_signature: mine.signature,
            short_checksum: None,
            tree_head: CosignedTreeHead::new(th.sign(&f.log), vec![cosig]).unwrap(),
            inclusion: InclusionProof {
                leaf_index: 1,
                path: vec![other],
            },
        }
    }

    fn policy(f: &Fixture, quorum: &str) -> Policy {
        let text = format!(
            "log {}\nwitness W {}\n{quorum}\n",
            f.log.public_key().to_hex(),
            f.witness.public_key().to_hex()
        );
        Policy::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn proof_round_trips_byte_for_byte() {
        let f = fixture();
        let p = proof(&f);
        let text = p.to_ascii();
        assert_eq!(SigsumProof::parse(text.as_bytes()), Ok(p));
        assert_eq!(text.matches("\n\n").count(), 2);
    }

    #[test]
    fn valid_proof_verifies_and_names_the_failing_step_otherwise() {
        let f = fixture();
        let p = proof(&f);
        let subs = [f.submitter.public_key()];
        let pol = policy(&f, "quorum W");
        assert_eq!(p.verify(&f.message, &subs, &pol), Ok(()));
        assert_eq!(
            p.verify(&[9; 32], &subs, &pol),
            Err(VerifyError::BadLeafSignature)
        );
        assert!(matches!(
            p.verify(&f.message, &[f.log.public_key()], &pol),
            Err(VerifyError::UnknownSubmitter(_))
        ));
        let mut bad_root = p.clone();
        bad_root.tree_head.signed.tree_head.root_hash[0] ^= 1;
        assert_eq!(
            bad_root.verify(&f.message, &subs, &pol),
            Err(VerifyError::BadLogSignature)
        );
        let mut wrong_index = p.clone();
        wrong_index.inclusion.leaf_index = 0;
        assert!(matches!(
            wrong_index.verify(&f.message, &subs, &pol),
            Err(VerifyError::Inclusion(_))
        ));
    }

    #[test]
    fn missing_cosignature_fails_the_quorum_but_not_quorum_none() {
        let f = fixture();
        let p = proof(&f);
        let bare = SigsumProof {
            tree_head: CosignedTreeHead::new(p.tree_head.signed, vec![]).unwrap(),
            ..p
        };
        let subs = [f.submitter.public_key()];
        assert_eq!(
            bare.verify(&f.message, &subs, &policy(&f, "quorum W")),
            Err(VerifyError::QuorumNotSatisfied {
                total: 0,
                verified: 0,
                invalid: 0
            })
        );
        assert_eq!(
            bare.verify(&f.message, &subs, &policy(&f, "quorum none")),
            Ok(())
        );
    }

    #[test]
    fn size_one_proof_has_no_inclusion_block_and_checks_leaf_hash_is_root() {
        let f = fixture();
        let leaf = Leaf::sign(&f.submitter, &f.message);
        let th = TreeHead {
            size: 1,
            root_hash: leaf.leaf_hash(),
        };
        let p = SigsumProof {
            log_key_hash: f.log.public_key().key_hash(),
            submitter_key_hash: leaf.key_hash,
            leaf_signature: leaf.signature,
            short_checksum: None,
            tree_head: CosignedTreeHead::new(th.sign(&f.log), vec![]).unwrap(),
            inclusion: InclusionProof {
                leaf_index: 0,
                path: vec![],
            },
        };
        let text = p.to_ascii();
        assert_eq!(text.matches("\n\n").count(), 1);
        assert_eq!(SigsumProof::parse(text.as_bytes()), Ok(p.clone()));
        let pol = policy(&f, "quorum none");
        assert_eq!(
            p.verify(&f.message, &[f.submitter.public_key()], &pol),
            Ok(())
        );
        // An inclusion block after a size-1 tree head is an extra block.
        let extra = format!("{text}\nleaf_index=0\nnode_hash={}\n", "00".repeat(32));
        let e = SigsumProof::parse(extra.as_bytes()).unwrap_err();
        assert_eq!(e.reason, Reason::ExtraBlock);
    }

    #[test]
    fn version_1_is_read_checked_and_written_as_version_2() {
        let f = fixture();
        let p = proof(&f);
        let checksum = leaf::checksum(&f.message);
        let v2 = p.to_ascii();
        let v1 = v2.replacen("version=2", "version=1", 1).replacen(
            "leaf=",
            &format!("leaf={} ", hex::encode(&checksum[..2])),
            1,
        );
        let read = SigsumProof::parse(v1.as_bytes()).unwrap();
        assert_eq!(read.short_checksum, Some([checksum[0], checksum[1]]));
        assert_eq!(read.to_ascii(), v2);
        let pol = policy(&f, "quorum W");
        let subs = [f.submitter.public_key()];
        assert_eq!(read.verify(&f.message, &subs, &pol), Ok(()));
        assert!(matches!(
            read.verify(&[1; 32], &subs, &pol),
            Err(VerifyError::ShortChecksumMismatch { .. })
        ));
        // A v2 leaf line in a v1 file (and vice versa) is a field-count error.
        let mixed = v2.replacen("version=2", "version=1", 1);
        let e = SigsumProof::parse(mixed.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "leaf"));
    }

    #[test]
    fn structural_errors_name_their_line() {
        let f = fixture();
        let text = proof(&f).to_ascii();
        let e =
            SigsumProof::parse(text.replacen("version=2", "version=3", 1).as_bytes()).unwrap_err();
        assert_eq!((e.line, e.reason), (1, Reason::UnsupportedVersion(3)));
        let cut = text.rfind("\n\n").unwrap();
        let head_only = &text[..=cut];
        let e = SigsumProof::parse(head_only.as_bytes()).unwrap_err();
        assert_eq!(e.reason, Reason::MissingBlock("inclusion proof"));
        let e = SigsumProof::parse(format!("{text}\n").as_bytes()).unwrap_err();
        assert_eq!(e.reason, Reason::ExtraBlock);
        let e = SigsumProof::parse(text.replacen("\n\n", "\n\n\n", 1).as_bytes()).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (5, "size"));
        let zero = text.replacen("size=2", "size=0", 1);
        let e = SigsumProof::parse(zero.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.reason), (5, Reason::EmptyTree));
    }
}
