//! The Sigsum tree leaf (`sigsum-protocol.md` §3).
//!
//! ```text
//! struct tree_leaf { u8 checksum[32]; u8 signature[64]; u8 key_hash[32]; }
//! ```
//!
//! The submitter sends a 32-byte `message` (normally `SHA-256(data)`); the
//! log stores `checksum = SHA-256(message)`, so the data itself never enters
//! the log. The signature is over `sigsum.org/v1/tree-leaf\0 || checksum` and
//! commits to no particular log.

use crate::ascii::{self, Line, Value, Writer};
use crate::crypto::{
    Hash, KeyHash, NAMESPACE_TREE_LEAF, PublicKey, Signature, SigningKey, StrongKey, WeakKeyError,
    hash, namespaced,
};

/// Size of an encoded leaf: checksum, signature and key hash concatenated.
pub const LEAF_SIZE: usize = 32 + 64 + 32;

/// The key of a leaf line in a get-leaves response.
pub const LEAF_KEY: &str = "leaf";

/// Length of [`signed_bytes`]: the namespace, its 0x00 and the checksum.
const SIGNED_LEN: usize = NAMESPACE_TREE_LEAF.len() + 1 + 32;

/// A tree leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// `SHA-256(message)`.
    pub checksum: Hash,
    /// The submitter's signature over the leaf-signed bytes of `checksum`.
    pub signature: Signature,
    /// `SHA-256(submitter public key)`.
    pub key_hash: KeyHash,
}

/// Why a leaf failed to decode or verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// A binary leaf of the wrong length.
    #[error("a leaf is {LEAF_SIZE} bytes, got {0}")]
    Length(usize),
    /// The leaf names another key than the one it is verified with.
    #[error("leaf key hash {leaf} does not match the key's hash {key}")]
    KeyHashMismatch {
        /// Key hash in the leaf.
        leaf: KeyHash,
        /// Hash of the key used to verify.
        key: KeyHash,
    },
    /// The submitter key is refused whatever the signature (small order,
    /// non-canonical, not a point): stricter than sigsum-go, which accepts
    /// any point.
    #[error("submitter public key refused: {0}")]
    WeakKey(WeakKeyError),
    /// The signature does not verify, or does so only under Go's rules
    /// (a small-order `R`).
    #[error("leaf signature does not verify")]
    BadSignature,
}

/// The checksum a log stores for a 32-byte message: `SHA-256(message)`.
pub fn checksum(message: &Hash) -> Hash {
    hash(message)
}

/// The 56 bytes a submitter signs: `sigsum.org/v1/tree-leaf\0 || checksum`.
pub fn signed_bytes(checksum: &Hash) -> Vec<u8> {
    namespaced(NAMESPACE_TREE_LEAF, checksum)
}

impl Leaf {
    /// The leaf for `message` signed by `key` (deterministic: Ed25519).
    pub fn sign(key: &SigningKey, message: &Hash) -> Leaf {
        let checksum = checksum(message);
        Leaf {
            checksum,
            signature: key.sign_namespaced(NAMESPACE_TREE_LEAF, &checksum),
            key_hash: key.public_key().key_hash(),
        }
    }

    /// Checks that the leaf names `key` and carries its valid signature over
    /// the checksum, under strict rules ([`PublicKey::verify_strict`]): a
    /// weak key is refused before the signature is looked at.
    ///
    /// Strict on both sides: a log refuses such leaves at add-leaf, and a
    /// verifier or monitor does not take them as the submitter's word,
    /// since anyone could have made them.
    pub fn verify(&self, key: &PublicKey) -> Result<(), LeafError> {
        let key_hash = key.key_hash();
        if key_hash != self.key_hash {
            return Err(LeafError::KeyHashMismatch {
                leaf: self.key_hash,
                key: key_hash,
            });
        }
        self.verify_with(&StrongKey::new(*key).map_err(LeafError::WeakKey)?)
    }

    /// [`verify`](Self::verify) with a key checked and prepared before
    /// (a log keeps its submitters' keys prepared).
    pub fn verify_with(&self, key: &StrongKey) -> Result<(), LeafError> {
        if *key.key_hash() != self.key_hash {
            return Err(LeafError::KeyHashMismatch {
                leaf: self.key_hash,
                key: *key.key_hash(),
            });
        }
        // The 56 signed bytes on the stack: this runs once per submitted leaf.
        let mut signed = [0u8; SIGNED_LEN];
        let (namespace, rest) = signed.split_at_mut(NAMESPACE_TREE_LEAF.len());
        namespace.copy_from_slice(NAMESPACE_TREE_LEAF.as_bytes());
        rest[1..].copy_from_slice(&self.checksum);
        if !key.verify_strict(&signed, &self.signature) {
            return Err(LeafError::BadSignature);
        }
        Ok(())
    }

    /// The 128-byte encoding.
    pub fn to_bytes(&self) -> [u8; LEAF_SIZE] {
        let mut out = [0u8; LEAF_SIZE];
        let (c, rest) = out.split_at_mut(32);
        let (s, k) = rest.split_at_mut(64);
        c.copy_from_slice(&self.checksum);
        s.copy_from_slice(&self.signature.0);
        k.copy_from_slice(&self.key_hash.0);
        out
    }

    /// Decodes exactly 128 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Leaf, LeafError> {
        let length = || LeafError::Length(bytes.len());
        if bytes.len() != LEAF_SIZE {
            return Err(length());
        }
        let (checksum, rest) = bytes.split_first_chunk::<32>().ok_or_else(length)?;
        let (signature, key_hash) = rest.split_first_chunk::<64>().ok_or_else(length)?;
        let key_hash: &[u8; 32] = key_hash.try_into().map_err(|_| length())?;
        Ok(Leaf {
            checksum: *checksum,
            signature: Signature(*signature),
            key_hash: KeyHash(*key_hash),
        })
    }

    /// The Merkle leaf hash, `SHA-256(0x00 || leaf bytes)`.
    pub fn leaf_hash(&self) -> Hash {
        cairn_tlog::leaf_hash(&self.to_bytes())
    }

    /// Parses the fields of a get-leaves line,
    /// `leaf=<checksum> <signature> <key_hash>` (v1.0.1 field order).
    pub fn from_line(line: &Line<'_>) -> Result<Leaf, ascii::Error> {
        Ok(Leaf {
            checksum: line.hash(0)?,
            signature: line.signature(1)?,
            key_hash: line.key_hash(2)?,
        })
    }

    /// Reads one get-leaves line from `parser`.
    pub fn parse_line(parser: &mut ascii::Parser<'_>) -> Result<Leaf, ascii::Error> {
        Self::from_line(&parser.next_line(LEAF_KEY, 3)?)
    }

    /// Appends the get-leaves line.
    pub fn write_line(&self, w: &mut Writer) {
        w.line(
            LEAF_KEY,
            &[
                Value::Hex(&self.checksum),
                Value::Hex(&self.signature.0),
                Value::Hex(&self.key_hash.0),
            ],
        );
    }

    /// The get-leaves line, newline included.
    pub fn to_line(&self) -> String {
        let mut w = Writer::new();
        self.write_line(&mut w);
        w.into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (SigningKey, Leaf) {
        let key = SigningKey::from_seed(&[7; 32]);
        let leaf = Leaf::sign(&key, &[1; 32]);
        (key, leaf)
    }

    #[test]
    fn signed_leaf_verifies_with_its_key_only() {
        let (key, leaf) = sample();
        assert_eq!(leaf.verify(&key.public_key()), Ok(()));
        let other = SigningKey::from_seed(&[8; 32]).public_key();
        assert!(matches!(
            leaf.verify(&other),
            Err(LeafError::KeyHashMismatch { .. })
        ));
    }

    #[test]
    fn tampered_checksum_fails_verification() {
        let (key, mut leaf) = sample();
        leaf.checksum[0] ^= 1;
        assert_eq!(leaf.verify(&key.public_key()), Err(LeafError::BadSignature));
    }

    #[test]
    fn a_small_order_key_is_refused_even_with_a_signature_go_accepts() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = PublicKey(identity);
        // R = identity, S = 0: valid for every message under Go's rules.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let leaf = Leaf {
            checksum: checksum(&[5; 32]),
            signature: Signature(forged),
            key_hash: key.key_hash(),
        };
        assert!(key.verify_namespaced(NAMESPACE_TREE_LEAF, &leaf.checksum, &leaf.signature));
        assert_eq!(
            leaf.verify(&key),
            Err(LeafError::WeakKey(WeakKeyError::SmallOrder))
        );
    }

    #[test]
    fn checksum_is_the_hash_of_the_message_not_the_message() {
        let (_, leaf) = sample();
        assert_eq!(leaf.checksum, hash(&[1; 32]));
        assert_eq!(signed_bytes(&leaf.checksum).len(), 56);
    }

    #[test]
    fn binary_encoding_round_trips_and_requires_128_bytes() {
        let (_, leaf) = sample();
        let bytes = leaf.to_bytes();
        assert_eq!(Leaf::from_bytes(&bytes), Ok(leaf));
        assert_eq!(Leaf::from_bytes(&bytes[..127]), Err(LeafError::Length(127)));
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(Leaf::from_bytes(&long), Err(LeafError::Length(129)));
    }

    #[test]
    fn leaf_line_round_trips_and_rejects_a_fourth_field() {
        let (_, leaf) = sample();
        let line = leaf.to_line();
        let mut p = ascii::Parser::new(line.as_bytes());
        assert_eq!(Leaf::parse_line(&mut p), Ok(leaf));
        p.finish().unwrap();
        let four = line.replace('\n', " 00\n");
        assert!(Leaf::parse_line(&mut ascii::Parser::new(four.as_bytes())).is_err());
    }
}
