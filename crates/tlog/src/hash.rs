//! RFC 6962 §2.1 (= RFC 9162 §2.1) Merkle tree hashing with SHA-256.
//!
//! Leaves and interior nodes are domain-separated by a one-byte prefix so that
//! a leaf can never be mistaken for an interior node (second-preimage defence).

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, node hash or tree root.
pub type Hash = [u8; 32];

/// Root of the empty tree, `SHA-256("")`.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Plain `SHA-256(data)`, for callers that need the same primitive without
/// pulling in a hashing crate of their own.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(sha256(b""), EMPTY_ROOT);
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let a = [7u8; 32];
        let mut concat = Vec::from([0x01u8]);
        concat.extend_from_slice(&a);
        concat.extend_from_slice(&a);
        // The leaf hash of the bytes a node would hash differs from the node hash.
        assert_ne!(leaf_hash(&concat[1..]), node_hash(&a, &a));
        assert_eq!(sha256(&concat), node_hash(&a, &a));
    }
}
