//! Where signatures come from: an Ed25519 key in memory, or one held by
//! ssh-agent (and through it by an HSM, as with sigsum-go's `sigsum-agent`).
//!
//! The Sigsum formats stay in `cairn_sigsum`: callers build the exact bytes
//! to sign there (`leaf::signed_bytes`, `token::signed_bytes`, or a
//! namespaced message) and hand them to a [`Signer`], which only signs.

use std::fmt;
use std::sync::Arc;

use cairn_sigsum::api::AddLeafRequest;
use cairn_sigsum::leaf::{self, Leaf};
use cairn_sigsum::{Hash, PublicKey, Signature, SigningKey};

use crate::agent::AgentError;

/// Produces Ed25519 signatures with one key.
///
/// Contract:
/// * [`Signer::sign`] returns a plain Ed25519 signature over exactly the
///   bytes given — the complete message, namespace prefix included; the
///   signer adds nothing and hashes nothing. The signature verifies with
///   [`Signer::public_key`]; implementations that get it from elsewhere
///   (an agent) check that before returning it.
/// * It may block, for a socket round trip or an HSM: async callers run it
///   on a blocking thread (`tokio::task::spawn_blocking`).
/// * It may fail, with a [`SignError`] saying why; it never panics.
/// * It is safe to call from several threads at once.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The key that verifies this signer's signatures.
    fn public_key(&self) -> PublicKey;

    /// Signs `message` (see the trait's contract).
    fn sign(&self, message: &[u8]) -> Result<Signature, SignError>;
}

/// Why a [`Signer`] produced no signature.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// ssh-agent was unreachable, refused, or answered nonsense.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The signing task was cancelled before it finished (the async
    /// runtime is shutting down).
    #[error("signing was cancelled")]
    Cancelled,
}

impl Signer for SigningKey {
    fn public_key(&self) -> PublicKey {
        SigningKey::public_key(self)
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        Ok(SigningKey::sign(self, message))
    }
}

impl<S: Signer + ?Sized> Signer for Arc<S> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        (**self).sign(message)
    }
}

impl<S: Signer + ?Sized> Signer for Box<S> {
    fn public_key(&self) -> PublicKey {
        (**self).public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        (**self).sign(message)
    }
}

/// The leaf and the add-leaf request for `message`, signed by `signer`:
/// what `Leaf::sign` and `AddLeafRequest::sign` give for an in-memory key,
/// for any signer.
pub fn sign_leaf(signer: &dyn Signer, message: &Hash) -> Result<(Leaf, AddLeafRequest), SignError> {
    let public_key = signer.public_key();
    let checksum = leaf::checksum(message);
    let signature = signer.sign(&leaf::signed_bytes(&checksum))?;
    let leaf = Leaf {
        checksum,
        signature,
        key_hash: public_key.key_hash(),
    };
    let request = AddLeafRequest {
        message: *message,
        signature,
        public_key,
    };
    Ok((leaf, request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_signed_through_the_trait_equals_the_in_memory_leaf() {
        let key = SigningKey::from_seed(&[0x53; 32]);
        let message = [9u8; 32];
        let boxed: Box<dyn Signer> = Box::new(key.clone());
        let (leaf, request) = sign_leaf(&boxed, &message).unwrap();
        assert_eq!(leaf, Leaf::sign(&key, &message));
        assert_eq!(request, AddLeafRequest::sign(&key, &message));
        assert_eq!(request.to_leaf().unwrap(), leaf);
    }
}
