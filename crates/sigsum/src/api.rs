//! The log API's messages (`sigsum-protocol.md` §6): request bodies, GET
//! path arguments and response bodies, each with a strict parser and a
//! byte-exact serializer.
//!
//! | Endpoint | Request | 200 response |
//! |---|---|---|
//! | `GET get-tree-head` | — | [`CosignedTreeHead`](crate::tree_head::CosignedTreeHead) |
//! | `GET get-inclusion-proof/<size>/<hex leaf hash>` | [`InclusionProofRequest`] | [`InclusionProof`] |
//! | `GET get-consistency-proof/<old>/<new>` | [`ConsistencyProofRequest`] | [`ConsistencyProof`] |
//! | `GET get-leaves/<start>/<end>` | [`LeavesRequest`] | [`Leaves`] |
//! | `POST add-leaf` | [`AddLeafRequest`] (+ optional [`SubmitHeader`](crate::token::SubmitHeader)) | empty |
//!
//! Everything here is decided without server state: a [`RequestError`] or a
//! body [`ascii::Error`] maps to HTTP 400. Checks against the published tree
//! size (400) and leaf lookups (404) are the server's.

use crate::ascii::{self, Parser, Reason, ValueError, Writer, parse_hex, parse_int};
use cairn_tlog::proof::{ProofError, verify_consistency, verify_inclusion};

use crate::crypto::{Hash, PublicKey, Signature, SigningKey, StrongKey};
use crate::leaf::{Leaf, LeafError, checksum};
use crate::tree_head::TreeHead;

/// Most node hashes accepted in one proof response, as in sigsum-go: no
/// tree of at most 2^63−1 leaves needs more.
pub const MAX_PATH_LEN: usize = cairn_tlog::proof::MAX_PROOF_HASHES;

/// Key of the add-leaf message line.
pub const MESSAGE_KEY: &str = "message";
/// Key of the add-leaf signature line.
pub const SIGNATURE_KEY: &str = "signature";
/// Key of the add-leaf public key line.
pub const PUBLIC_KEY_KEY: &str = "public_key";
/// Key of the inclusion proof's leaf index line.
pub const LEAF_INDEX_KEY: &str = "leaf_index";
/// Key of the (repeated) proof path lines.
pub const NODE_HASH_KEY: &str = "node_hash";

/// The log API endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET get-tree-head`.
    GetTreeHead,
    /// `GET get-inclusion-proof/<size>/<leaf hash>`.
    GetInclusionProof,
    /// `GET get-consistency-proof/<old>/<new>`.
    GetConsistencyProof,
    /// `GET get-leaves/<start>/<end>`.
    GetLeaves,
    /// `POST add-leaf`.
    AddLeaf,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 5] = [
        Endpoint::GetTreeHead,
        Endpoint::GetInclusionProof,
        Endpoint::GetConsistencyProof,
        Endpoint::GetLeaves,
        Endpoint::AddLeaf,
    ];

    /// The name appended to the log's base URL.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::GetTreeHead => "get-tree-head",
            Endpoint::GetInclusionProof => "get-inclusion-proof",
            Endpoint::GetConsistencyProof => "get-consistency-proof",
            Endpoint::GetLeaves => "get-leaves",
            Endpoint::AddLeaf => "add-leaf",
        }
    }

    /// The endpoint with this name, if any.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Whether the endpoint is a POST (only add-leaf); all others are GET.
    pub fn is_post(self) -> bool {
        self == Endpoint::AddLeaf
    }

    /// Whether the endpoint takes slash-separated path arguments.
    pub fn takes_arguments(self) -> bool {
        matches!(
            self,
            Endpoint::GetInclusionProof | Endpoint::GetConsistencyProof | Endpoint::GetLeaves
        )
    }
}

/// Why GET path arguments are invalid (HTTP 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not the required number of `/`-separated arguments.
    #[error("expected {expected} '/'-separated arguments, got {found}")]
    ArgumentCount {
        /// Required count.
        expected: usize,
        /// Count present (an empty argument counts).
        found: usize,
    },
    /// One argument is malformed.
    #[error("argument {name}: {error}")]
    BadArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        error: ValueError,
    },
    /// Inclusion proofs are only served for trees of two or more leaves
    /// (for one leaf, the leaf hash is the root).
    #[error("tree size {0} is too small for an inclusion proof (at least 2)")]
    InclusionTreeTooSmall(u64),
    /// A consistency proof from the empty tree is trivial and not served.
    #[error("old size must be greater than 0")]
    ConsistencyFromEmptyTree,
    /// A consistency proof needs new > old.
    #[error("new size {new} must be greater than old size {old}")]
    ConsistencyNotGrowing {
        /// Old size.
        old: u64,
        /// New size.
        new: u64,
    },
    /// The half-open range [start, end) is empty or reversed.
    #[error("end {end} must be greater than start {start}")]
    EmptyRange {
        /// First index.
        start: u64,
        /// One past the last index.
        end: u64,
    },
}

/// Splits `args` into exactly `N` `/`-separated arguments.
fn split_args<const N: usize>(args: &str) -> Result<[&str; N], RequestError> {
    let parts: Vec<&str> = args.split('/').collect();
    let found = parts.len();
    parts
        .try_into()
        .map_err(|_| RequestError::ArgumentCount { expected: N, found })
}

fn int_arg(name: &'static str, value: &str) -> Result<u64, RequestError> {
    parse_int(value.as_bytes()).map_err(|error| RequestError::BadArgument { name, error })
}

/// `get-inclusion-proof/<size>/<hex leaf hash>`: the proof that the leaf
/// with this hash is in the tree of this size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InclusionProofRequest {
    /// Tree size, at least 2.
    pub size: u64,
    /// The leaf hash.
    pub leaf_hash: Hash,
}

impl InclusionProofRequest {
    /// Parses the arguments after `get-inclusion-proof/`.
    pub fn parse_args(args: &str) -> Result<Self, RequestError> {
        let [size, leaf_hash] = split_args::<2>(args)?;
        let size = int_arg("size", size)?;
        let leaf_hash =
            parse_hex::<32>(leaf_hash.as_bytes()).map_err(|error| RequestError::BadArgument {
                name: "leaf_hash",
                error,
            })?;
        if size < 2 {
            return Err(RequestError::InclusionTreeTooSmall(size));
        }
        Ok(InclusionProofRequest { size, leaf_hash })
    }

    /// The arguments, `<size>/<lowercase hex leaf hash>`.
    pub fn to_args(&self) -> String {
        format!("{}/{}", self.size, hex::encode(self.leaf_hash))
    }

    /// The endpoint path relative to the log's base URL.
    pub fn to_path(&self) -> String {
        format!("{}/{}", Endpoint::GetInclusionProof.name(), self.to_args())
    }
}

/// `get-consistency-proof/<old>/<new>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsistencyProofRequest {
    /// Old tree size, > 0.
    pub old_size: u64,
    /// New tree size, > old.
    pub new_size: u64,
}

impl ConsistencyProofRequest {
    /// Parses the arguments after `get-consistency-proof/`.
    pub fn parse_args(args: &str) -> Result<Self, RequestError> {
        let [old, new] = split_args::<2>(args)?;
        let old_size = int_arg("old_size", old)?;
        let new_size = int_arg("new_size", new)?;
        if old_size == 0 {
            return Err(RequestError::ConsistencyFromEmptyTree);
        }
        if new_size <= old_size {
            return Err(RequestError::ConsistencyNotGrowing {
                old: old_size,
                new: new_size,
            });
        }
        Ok(ConsistencyProofRequest { old_size, new_size })
    }

    /// The arguments, `<old>/<new>`.
    pub fn to_args(&self) -> String {
        format!("{}/{}", self.old_size, self.new_size)
    }

    /// The endpoint path relative to the log's base URL.
    pub fn to_path(&self) -> String {
        format!(
            "{}/{}",
            Endpoint::GetConsistencyProof.name(),
            self.to_args()
        )
    }
}

/// `get-leaves/<start>/<end>`: the half-open range [start, end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeavesRequest {
    /// Index of the first leaf.
    pub start: u64,
    /// One past the last leaf; > start.
    pub end: u64,
}

impl LeavesRequest {
    /// Parses the arguments after `get-leaves/`.
    pub fn parse_args(args: &str) -> Result<Self, RequestError> {
        let [start, end] = split_args::<2>(args)?;
        let start = int_arg("start", start)?;
        let end = int_arg("end", end)?;
        if end <= start {
            return Err(RequestError::EmptyRange { start, end });
        }
        Ok(LeavesRequest { start, end })
    }

    /// The arguments, `<start>/<end>`.
    pub fn to_args(&self) -> String {
        format!("{}/{}", self.start, self.end)
    }

    /// The endpoint path relative to the log's base URL.
    pub fn to_path(&self) -> String {
        format!("{}/{}", Endpoint::GetLeaves.name(), self.to_args())
    }
}

/// The add-leaf request body: `message`, `signature`, `public_key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddLeafRequest {
    /// The 32-byte message (normally `SHA-256(data)`); the log stores its
    /// hash as the leaf checksum.
    pub message: Hash,
    /// The submitter's leaf signature over `SHA-256(message)`.
    pub signature: Signature,
    /// The submitter's public key.
    pub public_key: PublicKey,
}

impl AddLeafRequest {
    /// A request for `message` signed by `key`.
    pub fn sign(key: &SigningKey, message: &Hash) -> Self {
        let leaf = Leaf::sign(key, message);
        AddLeafRequest {
            message: *message,
            signature: leaf.signature,
            public_key: key.public_key(),
        }
    }

    /// Parses the body. A message of any length other than 32 bytes is
    /// rejected.
    pub fn parse(input: &[u8]) -> Result<Self, ascii::Error> {
        let mut p = Parser::new(input);
        let req = AddLeafRequest {
            message: p.next_hash(MESSAGE_KEY)?,
            signature: p.next_signature(SIGNATURE_KEY)?,
            public_key: p.next_public_key(PUBLIC_KEY_KEY)?,
        };
        p.finish()?;
        Ok(req)
    }

    /// The body text.
    pub fn to_ascii(&self) -> String {
        let mut w = Writer::new();
        w.hex(MESSAGE_KEY, &self.message)
            .hex(SIGNATURE_KEY, &self.signature.0)
            .hex(PUBLIC_KEY_KEY, &self.public_key.0);
        w.into_string()
    }

    /// The leaf this request asks the log to add, if its signature verifies
    /// (else the log answers 403).
    pub fn to_leaf(&self) -> Result<Leaf, LeafError> {
        self.to_leaf_with(&StrongKey::new(self.public_key).map_err(LeafError::WeakKey)?)
    }

    /// [`to_leaf`](Self::to_leaf) with the request's key checked and
    /// prepared before ([`StrongKey::new`] of `public_key`); another key
    /// is refused as a key hash mismatch.
    pub fn to_leaf_with(&self, key: &StrongKey) -> Result<Leaf, LeafError> {
        if *key.public_key() != self.public_key {
            return Err(LeafError::KeyHashMismatch {
                leaf: self.public_key.key_hash(),
                key: *key.key_hash(),
            });
        }
        let leaf = Leaf {
            checksum: checksum(&self.message),
            signature: self.signature,
            key_hash: *key.key_hash(),
        };
        leaf.verify_with(key)?;
        Ok(leaf)
    }
}

/// Reads 1..=[`MAX_PATH_LEN`] `node_hash` lines up to the end of the input.
fn parse_path(p: &mut Parser<'_>) -> Result<Vec<Hash>, ascii::Error> {
    let first_line = p.line_number();
    let lines = p.repeated(NODE_HASH_KEY, 1)?;
    if lines.is_empty() {
        return Err(ascii::Error::new(
            first_line,
            NODE_HASH_KEY,
            Reason::MissingLine,
        ));
    }
    if let Some(extra) = lines.get(MAX_PATH_LEN) {
        return Err(extra.error(Reason::TooManyLines { max: MAX_PATH_LEN }));
    }
    lines.iter().map(|l| l.hash(0)).collect()
}

fn write_path(w: &mut Writer, path: &[Hash]) {
    for h in path {
        w.hex(NODE_HASH_KEY, h);
    }
}

/// The get-inclusion-proof response: `leaf_index` then `node_hash` lines,
/// leaf sibling first.
///
/// Logs never serve an empty path (size-1 trees are excluded), so parsing
/// requires at least one node hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the leaf.
    pub leaf_index: u64,
    /// Sibling hashes from the leaf up.
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// Reads the proof lines up to the end of the parser's input.
    pub fn parse_from(p: &mut Parser<'_>) -> Result<Self, ascii::Error> {
        Ok(InclusionProof {
            leaf_index: p.next_int(LEAF_INDEX_KEY)?,
            path: parse_path(p)?,
        })
    }

    /// Parses a complete response.
    pub fn parse(input: &[u8]) -> Result<Self, ascii::Error> {
        Self::parse_from(&mut Parser::new(input))
    }

    /// Appends the proof lines.
    pub fn write(&self, w: &mut Writer) {
        w.int(LEAF_INDEX_KEY, self.leaf_index);
        write_path(w, &self.path);
    }

    /// The response text.
    pub fn to_ascii(&self) -> String {
        let mut w = Writer::new();
        self.write(&mut w);
        w.into_string()
    }

    /// Checks that this proves the leaf with `leaf_hash` is in `tree_head`
    /// (RFC 9162 §2.1.3.2). For a tree of one leaf the path is empty and
    /// the leaf hash must be the root.
    pub fn verify(&self, leaf_hash: &Hash, tree_head: &TreeHead) -> Result<(), ProofError> {
        verify_inclusion(
            leaf_hash,
            self.leaf_index,
            tree_head.size,
            &self.path,
            &tree_head.root_hash,
        )
    }
}

/// The get-consistency-proof response: `node_hash` lines in RFC 6962 order
/// (at least one; trivial proofs are never served).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The proof's node hashes.
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Parses a complete response.
    pub fn parse(input: &[u8]) -> Result<Self, ascii::Error> {
        Ok(ConsistencyProof {
            path: parse_path(&mut Parser::new(input))?,
        })
    }

    /// The response text.
    pub fn to_ascii(&self) -> String {
        let mut w = Writer::new();
        write_path(&mut w, &self.path);
        w.into_string()
    }

    /// Checks that `new` extends `old` (RFC 9162 §2.1.4.2). Trivial cases
    /// (old size 0, or equal sizes) need an empty path.
    pub fn verify(&self, old: &TreeHead, new: &TreeHead) -> Result<(), ProofError> {
        verify_consistency(
            old.size,
            new.size,
            &self.path,
            &old.root_hash,
            &new.root_hash,
        )
    }
}

/// The get-leaves response: one or more `leaf=` lines. A log may return
/// fewer leaves than requested, never zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaves {
    /// The leaves, in index order from the requested start.
    pub leaves: Vec<Leaf>,
}

impl Leaves {
    /// Parses a complete response; an empty body is an error.
    pub fn parse(input: &[u8]) -> Result<Self, ascii::Error> {
        let mut p = Parser::new(input);
        let lines = p.repeated(crate::leaf::LEAF_KEY, 3)?;
        if lines.is_empty() {
            return Err(ascii::Error::new(
                1,
                crate::leaf::LEAF_KEY,
                Reason::MissingLine,
            ));
        }
        let leaves = lines
            .iter()
            .map(Leaf::from_line)
            .collect::<Result<_, _>>()?;
        Ok(Leaves { leaves })
    }

    /// The response text (empty if there are no leaves, which no log sends).
    pub fn to_ascii(&self) -> String {
        let mut w = Writer::new();
        for l in &self.leaves {
            l.write_line(&mut w);
        }
        w.into_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
        }
        assert_eq!(Endpoint::from_name("get-leaf"), None);
        assert!(Endpoint::AddLeaf.is_post());
        assert!(!Endpoint::GetTreeHead.takes_arguments());
    }

    #[test]
    fn inclusion_request_needs_size_two_and_a_32_byte_hash() {
        let hash = "ab".repeat(32);
        let r = InclusionProofRequest::parse_args(&format!("2/{}", hash.to_uppercase())).unwrap();
        assert_eq!(r.to_path(), format!("get-inclusion-proof/2/{hash}"));
        assert_eq!(
            InclusionProofRequest::parse_args(&format!("1/{hash}")),
            Err(RequestError::InclusionTreeTooSmall(1))
        );
        assert!(matches!(
            InclusionProofRequest::parse_args(&format!("02/{hash}")),
            Err(RequestError::BadArgument { name: "size", .. })
        ));
        assert!(matches!(
            InclusionProofRequest::parse_args("4/abcd"),
            Err(RequestError::BadArgument {
                name: "leaf_hash",
                ..
            })
        ));
        assert_eq!(
            InclusionProofRequest::parse_args(&format!("4/{hash}/")),
            Err(RequestError::ArgumentCount {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            InclusionProofRequest::parse_args(""),
            Err(RequestError::ArgumentCount {
                expected: 2,
                found: 1
            })
        );
    }

    #[test]
    fn consistency_request_needs_new_greater_than_old_greater_than_zero() {
        assert_eq!(
            ConsistencyProofRequest::parse_args("2/5").map(|r| r.to_path()),
            Ok("get-consistency-proof/2/5".to_owned())
        );
        assert_eq!(
            ConsistencyProofRequest::parse_args("0/5"),
            Err(RequestError::ConsistencyFromEmptyTree)
        );
        assert_eq!(
            ConsistencyProofRequest::parse_args("5/5"),
            Err(RequestError::ConsistencyNotGrowing { old: 5, new: 5 })
        );
        assert!(ConsistencyProofRequest::parse_args("+2/5").is_err());
    }

    #[test]
    fn leaves_request_needs_a_non_empty_range() {
        assert_eq!(
            LeavesRequest::parse_args("2/5"),
            Ok(LeavesRequest { start: 2, end: 5 })
        );
        assert_eq!(
            LeavesRequest::parse_args("5/5"),
            Err(RequestError::EmptyRange { start: 5, end: 5 })
        );
        assert!(LeavesRequest::parse_args("2/9223372036854775808").is_err());
    }

    #[test]
    fn add_leaf_with_a_valid_signature_yields_its_leaf() {
        let key = SigningKey::from_seed(&[5; 32]);
        let req = AddLeafRequest::sign(&key, &[1; 32]);
        assert_eq!(AddLeafRequest::parse(req.to_ascii().as_bytes()), Ok(req));
        assert_eq!(req.to_leaf(), Ok(Leaf::sign(&key, &[1; 32])));
        let mut bad = req;
        bad.message[0] ^= 1;
        assert_eq!(bad.to_leaf(), Err(LeafError::BadSignature));
    }

    #[test]
    fn add_leaf_with_a_prepared_key_refuses_a_key_other_than_the_requests() {
        let key = SigningKey::from_seed(&[5; 32]);
        let other = SigningKey::from_seed(&[6; 32]);
        let req = AddLeafRequest::sign(&key, &[1; 32]);
        let prepared = StrongKey::new(key.public_key()).unwrap();
        assert_eq!(req.to_leaf_with(&prepared), req.to_leaf());
        let wrong = StrongKey::new(other.public_key()).unwrap();
        assert!(matches!(
            req.to_leaf_with(&wrong),
            Err(LeafError::KeyHashMismatch { .. })
        ));
    }

    #[test]
    fn add_leaf_message_must_be_exactly_32_bytes() {
        let key = SigningKey::from_seed(&[5; 32]);
        let text = AddLeafRequest::sign(&key, &[1; 32]).to_ascii();
        let longer = text.replacen("\n", "00\n", 1);
        let e = AddLeafRequest::parse(longer.as_bytes()).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (1, "message"));
    }

    #[test]
    fn proofs_require_a_non_empty_path_of_at_most_63_hashes() {
        assert!(InclusionProof::parse(b"leaf_index=0\n").is_err());
        assert!(ConsistencyProof::parse(b"").is_err());
        let p = ConsistencyProof {
            path: vec![[1; 32]; MAX_PATH_LEN],
        };
        assert_eq!(
            ConsistencyProof::parse(p.to_ascii().as_bytes()),
            Ok(p.clone())
        );
        let mut long = p;
        long.path.push([2; 32]);
        let e = ConsistencyProof::parse(long.to_ascii().as_bytes()).unwrap_err();
        assert_eq!(e.line, 64);
        assert_eq!(e.reason, Reason::TooManyLines { max: MAX_PATH_LEN });
    }

    #[test]
    fn get_leaves_response_needs_at_least_one_leaf() {
        let e = Leaves::parse(b"").unwrap_err();
        assert_eq!(e.reason, Reason::MissingLine);
        let key = SigningKey::from_seed(&[5; 32]);
        let leaves = Leaves {
            leaves: vec![Leaf::sign(&key, &[1; 32]), Leaf::sign(&key, &[2; 32])],
        };
        assert_eq!(Leaves::parse(leaves.to_ascii().as_bytes()), Ok(leaves));
    }
}
