//! Sigsum's cryptographic primitives: SHA-256 and Ed25519, nothing else
//! (Sigsum v1 has no algorithm agility).
//!
//! Every Sigsum signature is over `namespace || 0x00 || message` for a fixed
//! namespace, except tree heads (signed as checkpoint bodies) and
//! cosignatures (signed as `cosignature/v1` messages).

use std::fmt;

use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// `SHA-256(data)`.
pub fn hash(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// Namespace of submitter leaf signatures.
pub const NAMESPACE_TREE_LEAF: &str = "sigsum.org/v1/tree-leaf";
/// Namespace of submit tokens.
pub const NAMESPACE_SUBMIT_TOKEN: &str = "sigsum.org/v1/submit-token";

/// The bytes signed under a namespace: `namespace || 0x00 || message`.
pub fn namespaced(namespace: &str, message: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(namespace.len() + 1 + message.len());
    v.extend_from_slice(namespace.as_bytes());
    v.push(0);
    v.extend_from_slice(message);
    v
}

/// A 32-byte Ed25519 public key, as it appears on the wire and in policies.
///
/// Construction does not check that the bytes are a valid curve point; that
/// happens (and fails closed) when a signature is verified.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

/// `SHA-256(public key)`: how Sigsum names logs, witnesses and submitters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub Hash);

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl PublicKey {
    /// The key hash, `SHA-256(key)`.
    pub fn key_hash(&self) -> KeyHash {
        KeyHash(hash(&self.0))
    }

    /// Verifies a plain Ed25519 signature over `msg`, with the same rules as
    /// Go's crypto/ed25519 (which sigsum-go uses): the scalar `S` must be
    /// canonical and the check is the cofactorless equation. Small-order keys
    /// are not rejected, because Go does not reject them either and a stricter
    /// check would make us refuse proofs that sigsum-go accepts.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> bool {
        let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        vk.verify(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .is_ok()
    }

    /// Verifies a signature over `namespace || 0x00 || msg`.
    pub fn verify_namespaced(&self, namespace: &str, msg: &[u8], sig: &Signature) -> bool {
        self.verify(&namespaced(namespace, msg), sig)
    }

    /// Lowercase hex, as on the wire.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl KeyHash {
    /// Lowercase hex, as on the wire.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl Signature {
    /// Lowercase hex, as on the wire.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

macro_rules! hex_debug {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), hex::encode(self.0))
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }
    };
}
hex_debug!(PublicKey);
hex_debug!(KeyHash);
hex_debug!(Signature);

/// An Ed25519 private key held in memory.
///
/// This is the in-process signer; the services reach HSMs and ssh-agent
/// through their own signer abstraction, which produces the same bytes.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key for a 32-byte RFC 8032 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed (the secret).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Plain Ed25519 signature over `msg` (deterministic).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }

    /// Signature over `namespace || 0x00 || msg`.
    pub fn sign_namespaced(&self, namespace: &str, msg: &[u8]) -> Signature {
        self.sign(&namespaced(namespace, msg))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_bytes_put_a_nul_between_namespace_and_message() {
        assert_eq!(namespaced("ns", b"m"), b"ns\0m");
    }

    #[test]
    fn signature_verifies_only_under_its_namespace() {
        let k = SigningKey::from_seed(&[1; 32]);
        let sig = k.sign_namespaced(NAMESPACE_TREE_LEAF, b"abc");
        assert!(
            k.public_key()
                .verify_namespaced(NAMESPACE_TREE_LEAF, b"abc", &sig)
        );
        assert!(
            !k.public_key()
                .verify_namespaced(NAMESPACE_SUBMIT_TOKEN, b"abc", &sig)
        );
        assert!(
            !k.public_key()
                .verify_namespaced(NAMESPACE_TREE_LEAF, b"abd", &sig)
        );
    }

    #[test]
    fn invalid_public_key_bytes_never_verify() {
        let k = SigningKey::from_seed(&[1; 32]);
        let sig = k.sign(b"x");
        // Not a valid point encoding.
        let bad = PublicKey([0xff; 32]);
        assert!(!bad.verify(b"x", &sig));
    }
}
