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

/// Why [`PublicKey::check_strong`] refuses a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeakKeyError {
    /// The 32 bytes do not encode a point of the curve.
    #[error("it is not an Ed25519 curve point")]
    NotAPoint,
    /// The point has order 1, 2, 4 or 8.
    #[error("it is a small-order Ed25519 point, whose signatures anyone can forge")]
    SmallOrder,
    /// The point has another, canonical encoding.
    #[error("it is a non-canonical encoding of an Ed25519 point")]
    NonCanonical,
}

/// `SHA-256(public key)`: how Sigsum names logs, witnesses and submitters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyHash(pub Hash);

/// A public key that passed [`PublicKey::check_strong`], decompressed
/// once so that it can verify many signatures.
///
/// Checking and decompressing a key costs a field inversion and a square
/// root, a noticeable share of one verification; submitters reuse their
/// keys, so a log keeps these (see the frontend's key cache) instead of
/// redoing that work for every leaf. Verification rules are exactly those
/// of [`PublicKey::verify_strict`], which is built on this type.
#[derive(Clone, Debug)]
pub struct StrongKey {
    key: PublicKey,
    key_hash: KeyHash,
    point: ed25519_dalek::VerifyingKey,
}

impl StrongKey {
    /// Checks `key` (large order, canonical encoding) and prepares it.
    pub fn new(key: PublicKey) -> Result<StrongKey, WeakKeyError> {
        let point =
            ed25519_dalek::VerifyingKey::from_bytes(&key.0).map_err(|_| WeakKeyError::NotAPoint)?;
        if point.is_weak() {
            return Err(WeakKeyError::SmallOrder);
        }
        if point.to_edwards().compress().to_bytes() != key.0 {
            return Err(WeakKeyError::NonCanonical);
        }
        Ok(StrongKey {
            key,
            key_hash: key.key_hash(),
            point,
        })
    }

    /// The key as it came.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// `SHA-256(key)`, computed once.
    pub fn key_hash(&self) -> &KeyHash {
        &self.key_hash
    }

    /// [`PublicKey::verify_strict`] with this key.
    pub fn verify_strict(&self, msg: &[u8], sig: &Signature) -> bool {
        self.point
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .is_ok()
    }
}

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

    /// Checks that the key is fit to sign: a canonically encoded curve
    /// point of large order. Go's crypto/ed25519 (and so sigsum-go) checks
    /// none of this beyond the point being on the curve.
    ///
    /// A small-order key makes forgery trivial: with the identity point as
    /// key, `R` = identity and `S` = 0 verify (cofactorless) for every
    /// message. A non-canonical encoding (`y` ≥ p, or `x` = 0 with the sign
    /// bit set) names the same point as another 32-byte string, so two key
    /// hashes would stand for one key.
    pub fn check_strong(&self) -> Result<(), WeakKeyError> {
        StrongKey::new(*self).map(|_| ())
    }

    /// Verifies like [`verify`](Self::verify), and also refuses what
    /// ed25519-dalek's `verify_strict` refuses: a key that
    /// [`check_strong`](Self::check_strong) refuses, or a small-order `R`.
    /// A non-canonical `S` or `R` encoding never verifies in either mode.
    ///
    /// Used for the keys a log accepts from anyone (submitters): there a
    /// signature must authenticate something. Trust anchors the verifier
    /// configured itself (log and witness keys in a policy) keep the
    /// Go-compatible [`verify`](Self::verify).
    pub fn verify_strict(&self, msg: &[u8], sig: &Signature) -> bool {
        StrongKey::new(*self).is_ok_and(|key| key.verify_strict(msg, sig))
    }

    /// [`verify_strict`](Self::verify_strict) of a signature over
    /// `namespace || 0x00 || msg`.
    pub fn verify_namespaced_strict(&self, namespace: &str, msg: &[u8], sig: &Signature) -> bool {
        self.verify_strict(&namespaced(namespace, msg), sig)
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

    use curve25519_dalek::Scalar;
    use sha2::Sha512;

    fn unhex(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Every encoding of a point of order 1, 2, 4 or 8: the eight canonical
    /// ones, then the non-canonical ones (y ≥ p, or x = 0 with the sign bit).
    const SMALL_ORDER: [&str; 14] = [
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ];

    /// The identity point, canonically encoded.
    const IDENTITY: [u8; 32] = {
        let mut b = [0; 32];
        b[0] = 1;
        b
    };

    /// The encoding of y = p + k (k ≤ 18): y ≡ k, but not in canonical form.
    fn y_plus_p(k: u8) -> [u8; 32] {
        let mut b = [0xff; 32];
        b[0] = 0xed + k;
        b[31] = 0x7f;
        b
    }

    #[test]
    fn every_small_order_encoding_is_refused_as_a_strong_key() {
        for (i, h) in SMALL_ORDER.iter().enumerate() {
            let key = PublicKey(unhex(h));
            assert_eq!(key.check_strong(), Err(WeakKeyError::SmallOrder), "{h}");
            let point = ed25519_dalek::VerifyingKey::from_bytes(&key.0)
                .unwrap()
                .to_edwards();
            assert_eq!(point.compress().to_bytes() == key.0, i < 8, "{h}");
        }
    }

    #[test]
    fn the_identity_key_verifies_every_message_under_go_rules_only() {
        // R = identity, S = 0: [0]B = R + [k]A for every k when A is the
        // identity, so Go's rules accept it for any message.
        let key = PublicKey(IDENTITY);
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let forged = Signature(forged);
        for msg in [&b"one message"[..], b"any other"] {
            assert!(key.verify(msg, &forged));
            assert!(!key.verify_strict(msg, &forged));
        }
    }

    #[test]
    fn a_non_canonical_encoding_of_a_large_order_point_is_refused() {
        let (k, key) = (2..=18)
            .map(|k| (k, PublicKey(y_plus_p(k))))
            .find(|(_, key)| {
                ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_ok_and(|vk| !vk.is_weak())
            })
            .expect("some y < 19 is on the curve");
        assert_eq!(
            key.check_strong(),
            Err(WeakKeyError::NonCanonical),
            "y = p + {k}"
        );
        // Its canonical twin, the same point, is fine.
        let mut canonical = [0u8; 32];
        canonical[0] = k;
        assert_eq!(PublicKey(canonical).check_strong(), Ok(()));
        let off_curve = (2..=40u8)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                PublicKey(b)
            })
            .find(|key| ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_err())
            .expect("some small y is off the curve");
        assert_eq!(off_curve.check_strong(), Err(WeakKeyError::NotAPoint));
    }

    /// A signature by `key` whose `R` is the identity: valid under the
    /// cofactorless equation, since `S = k·a` gives `[S]B = [k]A = R + [k]A`.
    fn identity_r_signature(key: &SigningKey, msg: &[u8]) -> Signature {
        let expanded = Sha512::digest(key.seed());
        let mut a_bytes: [u8; 32] = expanded[..32].try_into().unwrap();
        a_bytes[0] &= 248;
        a_bytes[31] &= 127;
        a_bytes[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a_bytes);
        let k_hash: [u8; 64] = Sha512::new()
            .chain_update(IDENTITY)
            .chain_update(key.public_key().0)
            .chain_update(msg)
            .finalize()
            .into();
        let s = Scalar::from_bytes_mod_order_wide(&k_hash) * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&IDENTITY);
        sig[32..].copy_from_slice(s.as_bytes());
        Signature(sig)
    }

    #[test]
    fn a_small_order_r_verifies_under_go_rules_only() {
        let key = SigningKey::from_seed(&[3; 32]);
        let sig = identity_r_signature(&key, b"m");
        assert!(key.public_key().verify(b"m", &sig));
        assert!(!key.public_key().verify_strict(b"m", &sig));
        assert!(!key.public_key().verify(b"n", &sig));
    }

    #[test]
    fn a_non_canonical_s_never_verifies() {
        let key = SigningKey::from_seed(&[3; 32]);
        let good = key.sign(b"m");
        assert!(key.public_key().verify_strict(b"m", &good));
        let mut s = [0u8; 32];
        s.copy_from_slice(&good.0[32..]);
        // S + l: the same scalar mod l, but not reduced (still < 2^253).
        // l itself is not a reduced scalar: add l − 1 and a carry of 1.
        let l_minus_1 = Scalar::ZERO - Scalar::ONE;
        let mut carry = 1u16;
        let mut s_plus_l = [0u8; 32];
        for (i, byte) in s_plus_l.iter_mut().enumerate() {
            let sum = u16::from(s[i]) + u16::from(l_minus_1.as_bytes()[i]) + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        let mut bad = good;
        bad.0[32..].copy_from_slice(&s_plus_l);
        assert!(!key.public_key().verify(b"m", &bad));
        assert!(!key.public_key().verify_strict(b"m", &bad));
    }

    #[test]
    fn keys_from_seeds_are_strong() {
        for seed in [[0u8; 32], [1; 32], [0xff; 32]] {
            assert_eq!(
                SigningKey::from_seed(&seed).public_key().check_strong(),
                Ok(())
            );
        }
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
