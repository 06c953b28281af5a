//! The sequencer's protobuf tree heads as `cairn_sigsum` types. Every
//! length is checked: a malformed message is a bug on the other side of the
//! gRPC connection and must become a 500, never a panic or a wrong answer.

use cairn_proto::v1 as pb;
use cairn_sigsum::ascii::MAX_INT;
use cairn_sigsum::tree_head::{Cosignature, CosignedTreeHead, SignedTreeHead, TreeHead};
use cairn_sigsum::{KeyHash, Signature};

/// Why a tree head from the sequencer cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConvertError {
    /// A fixed-size field has the wrong length.
    #[error("field {field} is {len} bytes, expected {expected}")]
    Length {
        /// The protobuf field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The required length.
        expected: usize,
    },
    /// A cosigned head without its signed head.
    #[error("cosigned tree head without a signed tree head")]
    MissingSigned,
    /// A cosignature timestamp no verifier would parse.
    #[error("cosignature timestamp {0} is above 2^63-1")]
    Timestamp(u64),
    /// Two cosignatures by one witness.
    #[error("two cosignatures by witness {0}")]
    DuplicateCosignature(KeyHash),
}

fn array<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], ConvertError> {
    bytes.try_into().map_err(|_| ConvertError::Length {
        field,
        len: bytes.len(),
        expected: N,
    })
}

/// A signed tree head from its protobuf form.
pub(crate) fn signed_tree_head(m: &pb::SignedTreeHead) -> Result<SignedTreeHead, ConvertError> {
    Ok(SignedTreeHead {
        tree_head: TreeHead {
            size: m.size,
            root_hash: array("root_hash", &m.root_hash)?,
        },
        signature: Signature(array("signature", &m.signature)?),
    })
}

/// A cosigned tree head from its protobuf form, cosignatures in order.
pub(crate) fn cosigned_tree_head(
    m: &pb::CosignedTreeHead,
) -> Result<CosignedTreeHead, ConvertError> {
    let signed = signed_tree_head(m.signed.as_ref().ok_or(ConvertError::MissingSigned)?)?;
    let cosignatures = m
        .cosignatures
        .iter()
        .map(|c| {
            if c.timestamp > MAX_INT {
                return Err(ConvertError::Timestamp(c.timestamp));
            }
            Ok(Cosignature {
                key_hash: KeyHash(array("cosignature key_hash", &c.key_hash)?),
                timestamp: c.timestamp,
                signature: Signature(array("cosignature signature", &c.signature)?),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    CosignedTreeHead::new(signed, cosignatures).map_err(|e| ConvertError::DuplicateCosignature(e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed() -> pb::SignedTreeHead {
        pb::SignedTreeHead {
            size: 3,
            root_hash: vec![1; 32],
            signature: vec![2; 64],
        }
    }

    fn cosignature(key: u8) -> pb::Cosignature {
        pb::Cosignature {
            key_hash: vec![key; 32],
            timestamp: 7,
            signature: vec![4; 64],
            note_name: "w".into(),
        }
    }

    #[test]
    fn well_formed_heads_convert_field_by_field() {
        let m = pb::CosignedTreeHead {
            signed: Some(signed()),
            cosignatures: vec![cosignature(3), cosignature(5)],
        };
        let cth = cosigned_tree_head(&m).unwrap();
        assert_eq!(cth.tree_head().size, 3);
        assert_eq!(cth.signed.signature.0, [2; 64]);
        assert_eq!(cth.cosignatures()[1].key_hash, KeyHash([5; 32]));
    }

    #[test]
    fn wrong_lengths_missing_parts_and_duplicates_are_errors() {
        let mut short = signed();
        short.root_hash.pop();
        assert!(matches!(
            signed_tree_head(&short),
            Err(ConvertError::Length {
                field: "root_hash",
                len: 31,
                ..
            })
        ));
        let no_signed = pb::CosignedTreeHead {
            signed: None,
            cosignatures: vec![],
        };
        assert_eq!(
            cosigned_tree_head(&no_signed),
            Err(ConvertError::MissingSigned)
        );
        let twice = pb::CosignedTreeHead {
            signed: Some(signed()),
            cosignatures: vec![cosignature(3), cosignature(3)],
        };
        assert!(matches!(
            cosigned_tree_head(&twice),
            Err(ConvertError::DuplicateCosignature(_))
        ));
        let mut late = cosignature(3);
        late.timestamp = u64::MAX;
        let m = pb::CosignedTreeHead {
            signed: Some(signed()),
            cosignatures: vec![late],
        };
        assert_eq!(
            cosigned_tree_head(&m),
            Err(ConvertError::Timestamp(u64::MAX))
        );
    }
}
