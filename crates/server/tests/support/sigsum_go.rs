//! A test-only client that follows sigsum-go v0.14.0's client algorithms
//! step by step, so that Cairn's log is checked against what `sigsum-submit`
//! and `sigsum-monitor` actually do rather than against Cairn's own client.
//!
//! Written from reading sigsum-go at tag v0.14.0 (the steps are listed in
//! `docs/compatibility.md`, "Sigsum clients (sigsum-go v0.14.0)"); each item
//! names the Go function it stands for. Deliberately independent of
//! `cairn_client` and of `cairn_sigsum`'s wire codec: responses are parsed
//! with sigsum-go's line rules (`pkg/ascii`), checkpoint and cosignature
//! messages are formatted here, and Merkle proofs are checked here. Only
//! Ed25519/SHA-256 primitives and the policy file (parsing, key look-up,
//! quorum evaluation) come from `cairn_sigsum`.
//!
//! Where sigsum-go has an odd edge (a quirk, not a protocol rule) it is kept,
//! and said so, because the point is to accept exactly what sigsum-go
//! accepts and fail exactly where it fails.

#![allow(dead_code)] // Not every test uses every step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use cairn_sigsum::policy::Policy;
use cairn_sigsum::{KeyHash, PublicKey, Signature, SigningKey};
use tokio::time::Instant;

/// A SHA-256 hash (`crypto.Hash`).
pub type Hash = [u8; 32];

/// `submit.DefaultTimeout`: the time for all submissions of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// `submit.defaultPollDelay`: sleep between proof-collection attempts.
pub const DEFAULT_POLL_DELAY: Duration = Duration::from_secs(2);
/// `submit.defaultRequestTimeout`: one add-leaf, or one proof-collection
/// attempt (add-leaf + get-tree-head + get-inclusion-proof together).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `submit.defaultUserAgent`.
pub const SUBMIT_USER_AGENT: &str = "sigsum-go submit";
/// The user agent of `monitor.newMonitoringLogClient`.
pub const MONITOR_USER_AGENT: &str = "sigsum-monitor";
/// `monitor.DefaultBatchSize`: most leaves asked for in one get-leaves.
pub const DEFAULT_BATCH_SIZE: u64 = 512;
/// `monitor.DefaultQueryInterval`: the time one monitor iteration may take.
pub const DEFAULT_QUERY_INTERVAL: Duration = Duration::from_secs(600);
/// `token.HeaderName`, as sigsum-go spells it.
pub const TOKEN_HEADER: &str = "Sigsum-Token";

/// `types.proofSizeLimit`: most node hashes in a parsed proof.
const PROOF_SIZE_LIMIT: usize = 63;
/// Not in sigsum-go (Go reads bodies without a limit): keeps a misbehaving
/// log from filling the test's memory. Far above any valid response.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

const LEAF_NAMESPACE: &str = "sigsum.org/v1/tree-leaf";
const TOKEN_NAMESPACE: &str = "sigsum.org/v1/submit-token";
const COSIGNATURE_NAMESPACE: &str = "cosignature/v1";
const CHECKPOINT_NAME_PREFIX: &str = "sigsum.org/v1/tree/";

// ---------------------------------------------------------------------------
// Primitives: hex, base64, hashing (crypto, encoding/hex, encoding/base64).

/// Lowercase hex (`%x`).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// `crypto.decodeHex`: Go's `hex.DecodeString` (either case) and then an
/// exact length.
fn decode_hex<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let digits = s.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err("encoding/hex: odd length hex string".to_owned());
    }
    let nibble = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("encoding/hex: invalid byte: {:?}", char::from(c))),
        }
    };
    if digits.len() / 2 != N {
        // Go decodes first and reports a bad digit before a bad length.
        for &c in digits {
            nibble(c)?;
        }
        return Err(format!(
            "unexpected length of hex data, expected {N}, got {}",
            digits.len() / 2
        ));
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(out)
}

/// `base64.StdEncoding.EncodeToString` (padded), as checkpoints use.
fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn sha256(data: &[u8]) -> Hash {
    cairn_sigsum::crypto::hash(data)
}

/// `crypto.AttachNamespace`: `namespace || 0x00 || msg`.
fn attach_namespace(namespace: &str, msg: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(namespace.len() + 1 + msg.len());
    v.extend_from_slice(namespace.as_bytes());
    v.push(0);
    v.extend_from_slice(msg);
    v
}

/// `crypto.HashFile`: the message `sigsum-submit` signs for a file.
pub fn message_for_file(contents: &[u8]) -> Hash {
    sha256(contents)
}

/// `merkle.HashLeafNode`.
fn hash_leaf_node(data: &[u8]) -> Hash {
    let mut v = Vec::with_capacity(1 + data.len());
    v.push(0);
    v.extend_from_slice(data);
    sha256(&v)
}

/// `merkle.HashInteriorNode`.
fn hash_interior_node(left: &Hash, right: &Hash) -> Hash {
    let mut v = [0u8; 65];
    v[0] = 1;
    v[1..33].copy_from_slice(left);
    v[33..].copy_from_slice(right);
    sha256(&v)
}

/// `merkle.HashEmptyTree`.
fn hash_empty_tree() -> Hash {
    sha256(b"")
}

// ---------------------------------------------------------------------------
// pkg/ascii: the line parser sigsum-go reads every response with.

/// Why a parse step stopped: sigsum-go branches on `io.EOF` and
/// `ascii.ErrEmptyLine`, everything else is an error.
#[derive(Debug)]
enum LineError {
    Eof,
    EmptyLine,
    Bad(String),
}

impl From<String> for LineError {
    fn from(s: String) -> Self {
        LineError::Bad(s)
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::Eof => f.write_str("EOF"),
            LineError::EmptyLine => f.write_str("encountered an empty line"),
            LineError::Bad(s) => f.write_str(s),
        }
    }
}

/// `ascii.LineReader` + `ascii.Parser`: lines end in `\n` (a CR is kept and
/// so breaks the value), a final unterminated line is an error.
struct Parser<'a> {
    rest: &'a [u8],
}

impl<'a> Parser<'a> {
    fn new(input: &'a [u8]) -> Self {
        Parser { rest: input }
    }

    /// `LineReader.GetLine`.
    fn get_line(&mut self) -> Result<&'a str, LineError> {
        if self.rest.is_empty() {
            return Err(LineError::Eof);
        }
        let Some(end) = self.rest.iter().position(|&b| b == b'\n') else {
            return Err(LineError::Bad("unexpected EOF".to_owned()));
        };
        let line = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        std::str::from_utf8(line)
            .map_err(|_| LineError::Bad(format!("invalid input line: {line:?}")))
    }

    /// `LineReader.GetEOF`.
    fn get_eof(&mut self) -> Result<(), String> {
        match self.get_line() {
            Err(LineError::Eof) => Ok(()),
            Ok(line) => Err(format!("garbage line at end of data: {line:?}")),
            Err(LineError::EmptyLine) => unreachable!("get_line never reports empty lines"),
            Err(LineError::Bad(e)) => Err(e),
        }
    }

    /// `Parser.next`: the value of a `name=value` line.
    fn next(&mut self, name: &str) -> Result<&'a str, LineError> {
        let line = self.get_line()?;
        if line.is_empty() {
            return Err(LineError::EmptyLine);
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(LineError::Bad(format!("invalid input line: {line:?}")));
        };
        if key != name {
            return Err(LineError::Bad(format!(
                "invalid input line, expected {name}, got key: {key:?}"
            )));
        }
        Ok(value)
    }

    fn get_int(&mut self, name: &str) -> Result<u64, LineError> {
        Ok(int_from_decimal(self.next(name)?)?)
    }

    fn get_hash(&mut self, name: &str) -> Result<Hash, LineError> {
        Ok(decode_hex(self.next(name)?)?)
    }

    fn get_signature(&mut self, name: &str) -> Result<Signature, LineError> {
        Ok(Signature(decode_hex(self.next(name)?)?))
    }

    /// `Parser.GetValues`: exactly `count` values separated by single
    /// spaces.
    fn get_values(&mut self, name: &str, count: usize) -> Result<Vec<&'a str>, LineError> {
        let values: Vec<&str> = self.next(name)?.split(' ').collect();
        if values.len() != count {
            return Err(LineError::Bad(format!(
                "bad number of values, got {}, expected {count}",
                values.len()
            )));
        }
        Ok(values)
    }
}

/// `ascii.IntFromDecimal`: no sign, no leading zeros, at most 2^63 - 1.
fn int_from_decimal(s: &str) -> Result<u64, String> {
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!(
            "invalid decimal number {s:?}, must be no leading zeros"
        ));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    match s.parse::<u64>() {
        Ok(n) if n < 1 << 63 => Ok(n),
        _ => Err(format!(
            "strconv.ParseUint: parsing {s:?}: value out of range"
        )),
    }
}

// ---------------------------------------------------------------------------
// pkg/types and pkg/requests: the messages.

/// `types.TreeHead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root_hash: Hash,
}

impl TreeHead {
    /// `types.NewEmptyTreeHead`: where a fresh monitor starts.
    pub fn empty() -> Self {
        TreeHead {
            size: 0,
            root_hash: hash_empty_tree(),
        }
    }

    /// `TreeHead.FormatCheckpoint`: the signed-note body the log signs.
    fn format_checkpoint(&self, origin: &str) -> String {
        format!("{origin}\n{}\n{}\n", self.size, base64_std(&self.root_hash))
    }

    /// `TreeHead.toCosignedData`: what a witness signs.
    fn cosigned_data(&self, origin: &str, timestamp: u64) -> String {
        format!(
            "{COSIGNATURE_NAMESPACE}\ntime {timestamp}\n{}",
            self.format_checkpoint(origin)
        )
    }
}

/// `types.SigsumCheckpointOrigin`.
pub fn checkpoint_origin(log_key: &PublicKey) -> String {
    format!("{CHECKPOINT_NAME_PREFIX}{}", hex(&sha256(&log_key.0)))
}

/// `types.Cosignature`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cosignature {
    pub timestamp: u64,
    pub signature: Signature,
}

/// `types.CosignedTreeHead`: the get-tree-head response. Cosignatures are a
/// map by witness key hash, as in Go (a repeated key hash is refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CosignedTreeHead {
    pub tree_head: TreeHead,
    pub signature: Signature,
    pub cosignatures: BTreeMap<Hash, Cosignature>,
}

impl CosignedTreeHead {
    /// `CosignedTreeHead.FromASCII`.
    pub fn from_ascii(body: &[u8]) -> Result<Self, String> {
        let mut p = Parser::new(body);
        let (head, empty_line) = Self::parse(&mut p).map_err(|e| e.to_string())?;
        if empty_line {
            return Err(LineError::EmptyLine.to_string());
        }
        Ok(head)
    }

    /// `CosignedTreeHead.Parse`: also says whether the cosignature list
    /// ended at an empty line (inside a proof file) rather than at EOF.
    fn parse(p: &mut Parser<'_>) -> Result<(Self, bool), LineError> {
        let size = p.get_int("size")?;
        let root_hash = p.get_hash("root_hash")?;
        let signature = p.get_signature("signature")?;
        let mut cosignatures = BTreeMap::new();
        let empty_line = loop {
            let v = match p.get_values("cosignature", 3) {
                Ok(v) => v,
                Err(LineError::Eof) => break false,
                Err(LineError::EmptyLine) => break true,
                Err(e) => return Err(e),
            };
            let key_hash: Hash = decode_hex(v[0])?;
            let cs = Cosignature {
                timestamp: int_from_decimal(v[1])?,
                signature: Signature(decode_hex(v[2])?),
            };
            if cosignatures.insert(key_hash, cs).is_some() {
                return Err(LineError::Bad("duplicate cosignature keyhash".to_owned()));
            }
        };
        Ok((
            CosignedTreeHead {
                tree_head: TreeHead { size, root_hash },
                signature,
                cosignatures,
            },
            empty_line,
        ))
    }

    /// `SignedTreeHead.Verify`: the log's signature on the checkpoint.
    pub fn verify_log_signature(&self, log_key: &PublicKey) -> bool {
        let body = self
            .tree_head
            .format_checkpoint(&checkpoint_origin(log_key));
        log_key.verify(body.as_bytes(), &self.signature)
    }

    /// `CosignedTreeHead.ToASCII` (cosignatures in key-hash order; Go's map
    /// order is random).
    fn to_ascii(&self) -> String {
        let mut s = format!(
            "size={}\nroot_hash={}\nsignature={}\n",
            self.tree_head.size,
            hex(&self.tree_head.root_hash),
            hex(&self.signature.0)
        );
        for (key_hash, cs) in &self.cosignatures {
            s.push_str(&format!(
                "cosignature={} {} {}\n",
                hex(key_hash),
                cs.timestamp,
                hex(&cs.signature.0)
            ));
        }
        s
    }
}

/// `types.InclusionProof`. Its tree size is not on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub path: Vec<Hash>,
}

impl InclusionProof {
    /// `InclusionProof.FromASCII`.
    fn from_ascii(body: &[u8]) -> Result<Self, String> {
        let mut p = Parser::new(body);
        let leaf_index = p.get_int("leaf_index").map_err(|e| e.to_string())?;
        let path = hashes_from_ascii(&mut p)?;
        Ok(InclusionProof { leaf_index, path })
    }

    /// `InclusionProof.Verify`.
    pub fn verify(&self, leaf_hash: &Hash, tree_head: &TreeHead) -> Result<(), String> {
        verify_inclusion(
            leaf_hash,
            self.leaf_index,
            tree_head.size,
            &tree_head.root_hash,
            &self.path,
        )
    }
}

/// `types.ConsistencyProof`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// `ConsistencyProof.Verify`.
    pub fn verify(&self, old: &TreeHead, new: &TreeHead) -> Result<(), String> {
        verify_consistency(
            old.size,
            new.size,
            &old.root_hash,
            &new.root_hash,
            &self.path,
        )
    }
}

/// `types.hashesFromASCII`: one or more `node_hash` lines to EOF, at most
/// [`PROOF_SIZE_LIMIT`].
fn hashes_from_ascii(p: &mut Parser<'_>) -> Result<Vec<Hash>, String> {
    let mut hashes = Vec::new();
    loop {
        match p.get_hash("node_hash") {
            Ok(h) => {
                if hashes.len() >= PROOF_SIZE_LIMIT {
                    return Err("too many node hashes".to_owned());
                }
                hashes.push(h);
            }
            Err(LineError::Eof) if hashes.is_empty() => {
                return Err("invalid path, empty".to_owned());
            }
            Err(LineError::Eof) => return Ok(hashes),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// `types.Leaf`: what the log stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub checksum: Hash,
    pub signature: Signature,
    pub key_hash: Hash,
}

impl Leaf {
    /// `Leaf.ToHash`: the Merkle leaf hash of the 128-byte leaf.
    pub fn leaf_hash(&self) -> Hash {
        let mut b = [0u8; 128];
        b[..32].copy_from_slice(&self.checksum);
        b[32..96].copy_from_slice(&self.signature.0);
        b[96..].copy_from_slice(&self.key_hash);
        hash_leaf_node(&b)
    }

    /// `Leaf.Verify`: the key hash matches and the signature verifies.
    pub fn verify(&self, key: &PublicKey) -> bool {
        self.key_hash == sha256(&key.0)
            && key.verify(
                &attach_namespace(LEAF_NAMESPACE, &self.checksum),
                &self.signature,
            )
    }
}

/// `types.LeavesFromASCII`. sigsum-go's client passes
/// `StartIndex - EndIndex` as the maximum count, which wraps around in
/// unsigned arithmetic: in effect there is no maximum, so none is checked.
fn leaves_from_ascii(body: &[u8]) -> Result<Vec<Leaf>, String> {
    let mut p = Parser::new(body);
    let mut leaves = Vec::new();
    loop {
        let v = match p.get_values("leaf", 3) {
            Ok(v) => v,
            Err(LineError::Eof) if leaves.is_empty() => return Err("no leaves".to_owned()),
            Err(LineError::Eof) => return Ok(leaves),
            Err(e) => return Err(e.to_string()),
        };
        leaves.push(Leaf {
            checksum: decode_hex(v[0]).map_err(|e| format!("invalid leaf checksum: {e}"))?,
            signature: Signature(
                decode_hex(v[1]).map_err(|e| format!("invalid leaf signature: {e}"))?,
            ),
            key_hash: decode_hex(v[2]).map_err(|e| format!("invalid leaf key hash: {e}"))?,
        });
    }
}

/// `requests.Leaf`: an add-leaf request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafRequest {
    pub message: Hash,
    pub signature: Signature,
    pub public_key: PublicKey,
}

impl LeafRequest {
    /// `types.SignLeafMessage` as `sigsum-submit -k` does it: the signature
    /// covers the namespaced checksum `SHA-256(message)`.
    pub fn sign(key: &SigningKey, message: &Hash) -> Self {
        let checksum = sha256(message);
        LeafRequest {
            message: *message,
            signature: key.sign(&attach_namespace(LEAF_NAMESPACE, &checksum)),
            public_key: key.public_key(),
        }
    }

    /// `Leaf.ToASCII`: the add-leaf body.
    pub fn body(&self) -> String {
        format!(
            "message={}\nsignature={}\npublic_key={}\n",
            hex(&self.message),
            hex(&self.signature.0),
            hex(&self.public_key.0)
        )
    }

    /// `Leaf.Verify`: checks the signature and builds the leaf.
    pub fn verify(&self) -> Result<Leaf, String> {
        let leaf = Leaf {
            checksum: sha256(&self.message),
            signature: self.signature,
            key_hash: sha256(&self.public_key.0),
        };
        if !leaf.verify(&self.public_key) {
            return Err("invalid signature".to_owned());
        }
        Ok(leaf)
    }
}

// ---------------------------------------------------------------------------
// pkg/merkle: proof verification.

/// `merkle.pathLength`: the length of an inclusion path.
fn path_length(index: u64, size: u64) -> usize {
    let k = 64 - (index ^ (size - 1)).leading_zeros();
    k as usize + index.checked_shr(k).unwrap_or(0).count_ones() as usize
}

/// `merkle.VerifyInclusion` (RFC 9162 §2.1.3.2). With index 0 and size 1
/// the empty path is valid and inclusion means `leaf == root`: this is the
/// check that reports a stale size-1 head as `invalid proof: root
/// mismatch`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    root: &Hash,
    path: &[Hash],
) -> Result<(), String> {
    if index >= size {
        return Err("proof input is malformed: index out of range".to_owned());
    }
    let want = path_length(index, size);
    if path.len() != want {
        return Err(format!(
            "proof input is malformed: path length {}, should be {want}",
            path.len()
        ));
    }
    let mut r = *leaf;
    let (mut fn_, mut sn) = (index, size - 1);
    let mut path = path.iter();
    while sn > 0 {
        if fn_ & 1 == 1 {
            r = hash_interior_node(path.next().expect("length checked"), &r);
        } else if fn_ < sn {
            r = hash_interior_node(&r, path.next().expect("length checked"));
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if r != *root {
        return Err("invalid proof: root mismatch".to_owned());
    }
    Ok(())
}

/// `merkle.VerifyConsistency`: equal sizes need equal roots and an empty
/// path, the empty tree is consistent with anything (with an empty path),
/// otherwise RFC 9162 §2.1.4.2.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> Result<(), String> {
    if old_size == new_size {
        if !path.is_empty() {
            return Err("non-empty consistency path for trees of equal size".to_owned());
        }
        if old_root != new_root {
            return Err("consistency check failed: same size, but roots differ".to_owned());
        }
        return Ok(());
    }
    if old_size == 0 {
        if !path.is_empty() {
            return Err("non-empty consistency path for empty old tree".to_owned());
        }
        if *old_root != hash_empty_tree() {
            return Err("unexpected root hash for the empty tree".to_owned());
        }
        return Ok(());
    }
    if old_size > new_size {
        return Err("proof input is malformed: old size beyond new size".to_owned());
    }
    // RFC 9162 §2.1.4.2, steps 2-7. An old tree that is a complete subtree
    // (a power of two) is itself the first node.
    let mut nodes: Vec<Hash> = Vec::with_capacity(path.len() + 1);
    if old_size.is_power_of_two() {
        nodes.push(*old_root);
    }
    nodes.extend_from_slice(path);
    let Some((first, rest)) = nodes.split_first() else {
        return Err("proof input is malformed: empty path".to_owned());
    };
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return Err("proof input is malformed: path too long".to_owned());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = hash_interior_node(c, &fr);
            sr = hash_interior_node(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = hash_interior_node(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("proof input is malformed: path too short".to_owned());
    }
    if fr != *old_root {
        return Err("invalid proof: old root mismatch".to_owned());
    }
    if sr != *new_root {
        return Err("invalid proof: new root mismatch".to_owned());
    }
    Ok(())
}

/// What `merkle.VerifyInclusionBatch` (with `end_path`) and
/// `merkle.VerifyInclusionTail` (without; the range must then end at the
/// tree's last leaf) establish: the consecutive `leaves` starting at
/// `first` are in the tree of `size` with `root`, given the inclusion paths
/// of the first and last leaf.
///
/// Written here as a level-by-level walk rather than Go's split at the
/// highest differing bit: at each level the range's nodes are hashed in
/// pairs, siblings outside the range come from the paths, and path
/// elements inside the range must equal the computed nodes. It accepts
/// the same honest proofs and fails for any leaf not where claimed.
pub fn verify_leaf_range(
    leaves: &[Hash],
    first: u64,
    size: u64,
    root: &Hash,
    start_path: &[Hash],
    end_path: Option<&[Hash]>,
) -> Result<(), String> {
    let n = u64::try_from(leaves.len()).map_err(|_| "too many leaves".to_owned())?;
    if n == 0 {
        return Err("range must be non-empty".to_owned());
    }
    let last = first + n - 1;
    if last >= size {
        return Err("end of range exceeds tree size".to_owned());
    }
    if end_path.is_none() && last != size - 1 {
        return Err("a tail range must end at the last leaf".to_owned());
    }
    if start_path.len() != path_length(first, size) {
        return Err("proof invalid, wrong inclusion path length for first node".to_owned());
    }
    if let Some(end) = end_path
        && end.len() != path_length(last, size)
    {
        return Err("proof invalid, wrong inclusion path length for last node".to_owned());
    }
    let mut start = start_path.iter();
    let mut end = end_path.map(|p| p.iter());
    let (mut lo, mut hi, mut sn) = (first, last, size - 1);
    let mut row: Vec<Hash> = leaves.to_vec();
    let inconsistent = || "unexpected path, inconsistent with leaf range".to_owned();
    while sn > 0 {
        let mut row_lo = lo;
        // The first node's sibling, from the start path.
        if lo & 1 == 1 {
            let s = *start.next().expect("length checked");
            if lo == hi
                && let Some(e) = end.as_mut()
                && *e.next().expect("length checked") != s
            {
                return Err("proof invalid, inconsistent paths".to_owned());
            }
            row.insert(0, s);
            row_lo = lo - 1;
        } else if lo < sn {
            let s = *start.next().expect("length checked");
            if lo < hi {
                if row[1] != s {
                    return Err(inconsistent());
                }
            } else {
                if let Some(e) = end.as_mut()
                    && *e.next().expect("length checked") != s
                {
                    return Err("proof invalid, inconsistent paths".to_owned());
                }
                row.push(s);
            }
        }
        // The last node's sibling, from the end path (a tail range's last
        // node is the tree's last, so it never needs one from outside).
        if hi != lo {
            if hi & 1 == 1 {
                if let Some(e) = end.as_mut() {
                    let within = usize::try_from(hi - 1 - row_lo).expect("small");
                    if *e.next().expect("length checked") != row[within] {
                        return Err(inconsistent());
                    }
                }
            } else if hi < sn {
                let e = end.as_mut().expect("only a tail range has no end path");
                row.push(*e.next().expect("length checked"));
            }
        }
        // Hash in pairs; an odd node left at the end is the level's last
        // node and moves up unchanged.
        let mut next = Vec::with_capacity(row.len().div_ceil(2));
        for pair in row.chunks(2) {
            match pair {
                [l, r] => next.push(hash_interior_node(l, r)),
                [single] => next.push(*single),
                _ => unreachable!("chunks of two"),
            }
        }
        row = next;
        lo >>= 1;
        hi >>= 1;
        sn >>= 1;
    }
    if row.len() != 1 || start.next().is_some() || end.is_some_and(|mut e| e.next().is_some()) {
        return Err("proof input is malformed: path left over".to_owned());
    }
    if row[0] != *root {
        return Err("invalid proof: root mismatch".to_owned());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// pkg/policy: `Policy.VerifyCosignedTreeHead`.

/// `Policy.VerifyCosignedTreeHead`: the log is in the policy, its signature
/// verifies, and the cosignatures of policy witnesses that verify satisfy
/// the quorum (a bad cosignature by a policy witness counts as absent, one
/// by an unknown witness is ignored).
pub fn verify_cosigned_tree_head(
    policy: &Policy,
    log_key_hash: &Hash,
    cth: &CosignedTreeHead,
) -> Result<(), String> {
    let log = policy
        .log_by_key_hash(&KeyHash(*log_key_hash))
        .ok_or("unknown log")?;
    if !cth.verify_log_signature(log.key()) {
        return Err("invalid log signature".to_owned());
    }
    let origin = checkpoint_origin(log.key());
    let mut verified = HashSet::new();
    let mut failed = 0;
    for (key_hash, cs) in &cth.cosignatures {
        if let Some(witness) = policy.witness_by_key_hash(&KeyHash(*key_hash)) {
            let data = cth.tree_head.cosigned_data(&origin, cs.timestamp);
            if witness.key().verify(data.as_bytes(), &cs.signature) {
                verified.insert(KeyHash(*key_hash));
            } else {
                failed += 1;
            }
        }
    }
    if !policy.quorum_satisfied(&verified) {
        return Err(format!(
            "not enough cosignatures, total: {}, verified: {}, failed to verify: {failed}",
            cth.cosignatures.len(),
            verified.len()
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// pkg/client: the HTTP client.

/// How a request failed (`api.Error` with its status, or the transport or
/// parse error Go's client returns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// No HTTP response (connection refused, reset, ...).
    Transport(String),
    /// The request's context deadline passed.
    DeadlineExceeded,
    /// A status other than the one the call wants: `api.Error`.
    Status { code: u16, body: String },
    /// A wanted status with a body sigsum-go refuses.
    Invalid { url: String, reason: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Transport(e) => f.write_str(e),
            ClientError::DeadlineExceeded => f.write_str("context deadline exceeded"),
            ClientError::Status { code, body } => write!(f, "({code}) server: {body:?}"),
            ClientError::Invalid { url, reason } => {
                write!(f, "invalid response from {url:?}: {reason}")
            }
        }
    }
}

impl ClientError {
    /// `api.ErrNotFound` as `GetInclusionProof` returns it for size 0,
    /// without asking the log.
    fn not_found() -> Self {
        ClientError::Status {
            code: 404,
            body: "Not Found".to_owned(),
        }
    }
}

/// `client.Client`: one log, by its base URL from the policy.
#[derive(Clone, Debug)]
pub struct LogClient {
    url: String,
    user_agent: String,
    http: reqwest::Client,
}

impl LogClient {
    /// `client.New`.
    pub fn new(url: &str, user_agent: &str) -> Self {
        LogClient {
            url: url.to_owned(),
            user_agent: user_agent.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `types.Endpoint.Path`: a slash between base URL and endpoint unless
    /// the base already ends in one.
    fn endpoint(&self, endpoint: &str) -> String {
        if self.url.is_empty() || self.url.ends_with('/') {
            format!("{}{endpoint}", self.url)
        } else {
            format!("{}/{endpoint}", self.url)
        }
    }

    /// `Client.do` up to the body: the status and at most
    /// [`MAX_RESPONSE_BYTES`] of body, within `deadline`.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let exchange = async {
            let mut response = request
                .header(reqwest::header::USER_AGENT, &self.user_agent)
                .send()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| ClientError::Transport(format!("reading body: {e}")))?
            {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(ClientError::Transport(format!(
                        "response body over {MAX_RESPONSE_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .map_err(|_| ClientError::DeadlineExceeded)?
    }

    /// `Client.get`: 200 with a body for `parse`, any other status is an
    /// error.
    async fn get<T>(
        &self,
        url: String,
        deadline: Instant,
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, ClientError> {
        let (status, body) = self.send(self.http.get(&url), deadline).await?;
        if status != 200 {
            return Err(status_error(status, &body));
        }
        parse(&body).map_err(|reason| ClientError::Invalid { url, reason })
    }

    /// `Client.AddLeaf`: `Ok(true)` for 200 (persisted), `Ok(false)` for 202
    /// (accepted, not yet persisted). A 200 must have an empty body
    /// (`responseErrorHandling`).
    pub async fn add_leaf(
        &self,
        request: &LeafRequest,
        token_header: Option<&str>,
        deadline: Instant,
    ) -> Result<bool, ClientError> {
        let url = self.endpoint("add-leaf");
        let mut builder = self.http.post(&url).body(request.body());
        if let Some(value) = token_header {
            builder = builder.header(TOKEN_HEADER, value);
        }
        let (status, body) = self.send(builder, deadline).await?;
        match status {
            200 if body.is_empty() => Ok(true),
            200 => Err(ClientError::Invalid {
                url,
                reason: format!(
                    "unexpected server response (status OK): {:?}",
                    String::from_utf8_lossy(&body)
                ),
            }),
            202 => Ok(false),
            _ => Err(status_error(status, &body)),
        }
    }

    /// `Client.GetTreeHead`.
    pub async fn get_tree_head(&self, deadline: Instant) -> Result<CosignedTreeHead, ClientError> {
        self.get(
            self.endpoint("get-tree-head"),
            deadline,
            CosignedTreeHead::from_ascii,
        )
        .await
    }

    /// `Client.GetInclusionProof`. Size 0 is `api.ErrNotFound` and size 1
    /// the empty proof at index 0, both without asking the log: for a
    /// size-1 head the caller's verification is `leaf hash == root`.
    pub async fn get_inclusion_proof(
        &self,
        size: u64,
        leaf_hash: &Hash,
        deadline: Instant,
    ) -> Result<InclusionProof, ClientError> {
        match size {
            0 => Err(ClientError::not_found()),
            1 => Ok(InclusionProof::default()),
            _ => {
                let url = self.endpoint(&format!("get-inclusion-proof/{size}/{}", hex(leaf_hash)));
                self.get(url, deadline, InclusionProof::from_ascii).await
            }
        }
    }

    /// `Client.GetConsistencyProof`: the empty proof, without asking, when
    /// the old tree is empty or as large as the new one.
    pub async fn get_consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
        deadline: Instant,
    ) -> Result<ConsistencyProof, ClientError> {
        if old_size == 0 || old_size == new_size {
            return Ok(ConsistencyProof::default());
        }
        let url = self.endpoint(&format!("get-consistency-proof/{old_size}/{new_size}"));
        self.get(url, deadline, |body| {
            let mut p = Parser::new(body);
            Ok(ConsistencyProof {
                path: hashes_from_ascii(&mut p)?,
            })
        })
        .await
    }

    /// `Client.GetLeaves`: `[start, end)`, which the log may shorten.
    pub async fn get_leaves(
        &self,
        start: u64,
        end: u64,
        deadline: Instant,
    ) -> Result<Vec<Leaf>, ClientError> {
        if start >= end {
            return Err(ClientError::Invalid {
                url: String::new(),
                reason: format!("invalid request, StartIndex ({start}) >= EndIndex ({end})"),
            });
        }
        let url = self.endpoint(&format!("get-leaves/{start}/{end}"));
        self.get(url, deadline, leaves_from_ascii).await
    }
}

fn status_error(code: u16, body: &[u8]) -> ClientError {
    let mut body = String::from_utf8_lossy(body).into_owned();
    let mut cut = body.len().min(512);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body.truncate(cut);
    ClientError::Status { code, body }
}

// ---------------------------------------------------------------------------
// pkg/submit-token.

/// The rate-limit token settings of `submit.Config` (`Domain`,
/// `RateLimitSigner`).
#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub domain: String,
    pub key: SigningKey,
}

impl TokenConfig {
    /// `token.MakeToken` + `SubmitHeader.ToHeader`: `<domain> <hex
    /// signature over the namespaced log public key>`.
    pub fn header_value(&self, log_key: &PublicKey) -> String {
        let token = self
            .key
            .sign(&attach_namespace(TOKEN_NAMESPACE, &log_key.0));
        format!("{} {}", self.domain, hex(&token.0))
    }
}

// ---------------------------------------------------------------------------
// pkg/proof: the proof file sigsum-submit writes.

/// `proof.SigsumProof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigsumProof {
    pub log_key_hash: Hash,
    /// `proof.ShortLeaf`: the leaf without its checksum.
    pub leaf_signature: Signature,
    pub leaf_key_hash: Hash,
    pub tree_head: CosignedTreeHead,
    pub inclusion: InclusionProof,
}

impl SigsumProof {
    /// `SigsumProof.ToASCII`, version 2: the inclusion block is left out
    /// for a tree of size 1.
    pub fn to_ascii(&self) -> String {
        let mut s = format!(
            "version=2\nlog={}\nleaf={} {}\n\n",
            hex(&self.log_key_hash),
            hex(&self.leaf_key_hash),
            hex(&self.leaf_signature.0)
        );
        s.push_str(&self.tree_head.to_ascii());
        if self.tree_head.tree_head.size > 1 {
            s.push_str(&format!("\nleaf_index={}\n", self.inclusion.leaf_index));
            for h in &self.inclusion.path {
                s.push_str(&format!("node_hash={}\n", hex(h)));
            }
        }
        s
    }

    /// `SigsumProof.Verify`: leaf signature by a known submit key, the head
    /// under the policy, inclusion.
    pub fn verify(
        &self,
        message: &Hash,
        submit_keys: &HashMap<Hash, PublicKey>,
        policy: &Policy,
    ) -> Result<(), String> {
        let leaf = Leaf {
            checksum: sha256(message),
            signature: self.leaf_signature,
            key_hash: self.leaf_key_hash,
        };
        let key = submit_keys
            .get(&self.leaf_key_hash)
            .ok_or("unknown leaf key hash")?;
        if !leaf.verify(key) {
            return Err("leaf signature not valid".to_owned());
        }
        verify_cosigned_tree_head(policy, &self.log_key_hash, &self.tree_head)?;
        self.inclusion
            .verify(&leaf.leaf_hash(), &self.tree_head.tree_head)
    }
}

// ---------------------------------------------------------------------------
// pkg/submit: `SubmitLeafRequests`.

/// `submit.Config`.
#[derive(Clone, Debug)]
pub struct SubmitConfig {
    /// The logs (those with a URL) and the witness quorum.
    pub policy: Policy,
    /// Sends a `Sigsum-Token` header on every add-leaf when set.
    pub token: Option<TokenConfig>,
    /// `Timeout` (`sigsum-submit --timeout`): all submissions of one call.
    pub timeout: Duration,
    /// `RequestTimeout`.
    pub request_timeout: Duration,
    /// `PollDelay`.
    pub poll_delay: Duration,
    /// `UserAgent`.
    pub user_agent: String,
}

impl SubmitConfig {
    /// The defaults `sigsum-submit` runs with.
    pub fn new(policy: Policy) -> Self {
        SubmitConfig {
            policy,
            token: None,
            timeout: DEFAULT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            poll_delay: DEFAULT_POLL_DELAY,
            user_agent: SUBMIT_USER_AGENT.to_owned(),
        }
    }
}

/// One step of a submission, recorded for assertions and for failure
/// messages (sigsum-go logs the same steps at info/debug level).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// add-leaf for request `request`: `Ok(true)` = 200, `Ok(false)` = 202.
    AddLeaf {
        request: usize,
        result: Result<bool, ClientError>,
    },
    /// get-tree-head: the size served, or the error.
    GetTreeHead { result: Result<u64, ClientError> },
    /// The head did not satisfy the policy (retried).
    HeadRejected { size: u64, reason: String },
    /// The inclusion proof for the head's size: its leaf index, or the
    /// error (404 is retried). Size 0 and 1 are answered without a request.
    InclusionProof {
        size: u64,
        result: Result<u64, ClientError>,
    },
    /// A poll delay.
    Sleep,
}

/// What one `SubmitLeafRequests` call did.
#[derive(Debug)]
pub struct SubmitRun {
    /// The proofs, in request order, or sigsum-go's error text.
    pub result: Result<Vec<SigsumProof>, String>,
    /// Every step, in order.
    pub events: Vec<Event>,
}

/// `logClient`: a policy log with its client and token header.
#[derive(Debug)]
struct SubmitLog {
    key: PublicKey,
    client: LogClient,
    header: Option<String>,
}

/// `pendingSubmission`.
#[derive(Debug)]
struct Pending<'a> {
    log: &'a SubmitLog,
    request: LeafRequest,
    index: usize,
    leaf_hash: Hash,
    leaf: Leaf,
}

/// `submit.SubmitLeafRequests`: makes sure each request is logged, then
/// collects a proof for each, in order.
pub async fn submit_leaf_requests(config: &SubmitConfig, requests: &[LeafRequest]) -> SubmitRun {
    let mut events = Vec::new();
    let result = submit_inner(config, requests, &mut events).await;
    SubmitRun { result, events }
}

async fn submit_inner(
    config: &SubmitConfig,
    requests: &[LeafRequest],
    events: &mut Vec<Event>,
) -> Result<Vec<SigsumProof>, String> {
    // logClientsFromConfig: every policy log with a URL, each with the token
    // header made for its key. (Go shuffles them; Cairn's dev policy has one.)
    let logs: Vec<SubmitLog> = config
        .policy
        .logs()
        .iter()
        .filter_map(|log| {
            let url = log.url()?.as_str()?;
            Some(SubmitLog {
                key: *log.key(),
                client: LogClient::new(url, &config.user_agent),
                header: config.token.as_ref().map(|t| t.header_value(log.key())),
            })
        })
        .collect();
    if logs.is_empty() {
        return Err("no logs defined in policy".to_owned());
    }
    let deadline = Instant::now() + config.timeout;
    let pending = submit_leaves(config, &logs, requests, deadline, events).await?;
    collect_proofs(config, &pending, deadline, events).await
}

/// `submitLeaves`: for each request, the first log that answers add-leaf
/// with 200 or 202 takes it.
async fn submit_leaves<'a>(
    config: &SubmitConfig,
    logs: &'a [SubmitLog],
    requests: &[LeafRequest],
    deadline: Instant,
    events: &mut Vec<Event>,
) -> Result<Vec<Pending<'a>>, String> {
    let mut pending = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let leaf = request
            .verify()
            .map_err(|e| format!("verifying leaf request failed: {e}"))?;
        let mut taken = false;
        for log in logs {
            if Instant::now() >= deadline {
                return Err(ClientError::DeadlineExceeded.to_string());
            }
            let request_deadline = deadline.min(Instant::now() + config.request_timeout);
            let result = log
                .client
                .add_leaf(request, log.header.as_deref(), request_deadline)
                .await;
            let ok = result.is_ok();
            events.push(Event::AddLeaf {
                request: index,
                result,
            });
            if ok {
                pending.push(Pending {
                    log,
                    request: *request,
                    index,
                    leaf_hash: leaf.leaf_hash(),
                    leaf,
                });
                taken = true;
                break;
            }
        }
        if !taken {
            return Err("all logs failed, giving up".to_owned());
        }
    }
    Ok(pending)
}

/// `collectProofs`: one submission after the other, retrying each after the
/// poll delay until `collectProof` has a proof or fails for good.
async fn collect_proofs(
    config: &SubmitConfig,
    pending: &[Pending<'_>],
    deadline: Instant,
    events: &mut Vec<Event>,
) -> Result<Vec<SigsumProof>, String> {
    let mut proofs = Vec::new();
    for submission in pending {
        loop {
            if let Some(proof) = collect_proof(config, submission, deadline, events).await? {
                proofs.push(proof);
                break;
            }
            // sleepWithContext: the global deadline ends the wait with an
            // error.
            events.push(Event::Sleep);
            let wake = Instant::now() + config.poll_delay;
            if wake >= deadline {
                tokio::time::sleep_until(deadline).await;
                return Err(ClientError::DeadlineExceeded.to_string());
            }
            tokio::time::sleep_until(wake).await;
        }
    }
    Ok(proofs)
}

/// `collectProof`: `Ok(None)` means try again. Every step shares one
/// request timeout. Only an inclusion proof that does not verify is fatal.
async fn collect_proof(
    config: &SubmitConfig,
    submission: &Pending<'_>,
    deadline: Instant,
    events: &mut Vec<Event>,
) -> Result<Option<SigsumProof>, String> {
    let attempt = deadline.min(Instant::now() + config.request_timeout);
    let log = submission.log;
    let log_key_hash = sha256(&log.key.0);
    // 1. add-leaf again: anything but 200 means not yet.
    let result = log
        .client
        .add_leaf(&submission.request, log.header.as_deref(), attempt)
        .await;
    let persisted = matches!(result, Ok(true));
    events.push(Event::AddLeaf {
        request: submission.index,
        result,
    });
    if !persisted {
        return Ok(None);
    }
    // 2. The latest cosigned head.
    let head = log.client.get_tree_head(attempt).await;
    events.push(Event::GetTreeHead {
        result: head
            .as_ref()
            .map(|h| h.tree_head.size)
            .map_err(Clone::clone),
    });
    let Ok(head) = head else {
        return Ok(None);
    };
    // 3. The head must satisfy the policy.
    if let Err(reason) = verify_cosigned_tree_head(&config.policy, &log_key_hash, &head) {
        events.push(Event::HeadRejected {
            size: head.tree_head.size,
            reason,
        });
        return Ok(None);
    }
    // 4. An inclusion proof for that size (a 404 is retried).
    let size = head.tree_head.size;
    let inclusion = log
        .client
        .get_inclusion_proof(size, &submission.leaf_hash, attempt)
        .await;
    events.push(Event::InclusionProof {
        size,
        result: inclusion
            .as_ref()
            .map(|p| p.leaf_index)
            .map_err(Clone::clone),
    });
    let Ok(inclusion) = inclusion else {
        return Ok(None);
    };
    // 5. It must verify: a failure here ends the submission.
    inclusion
        .verify(&submission.leaf_hash, &head.tree_head)
        .map_err(|e| format!("Inclusion proof invalid: {e}"))?;
    Ok(Some(SigsumProof {
        log_key_hash,
        leaf_signature: submission.leaf.signature,
        leaf_key_hash: submission.leaf.key_hash,
        tree_head: head,
        inclusion,
    }))
}

// ---------------------------------------------------------------------------
// pkg/monitor: `MonitorLog`, one iteration at a time.

/// `monitor.Config` (without callbacks: [`MonitorRecord`] records them).
#[derive(Clone, Debug)]
pub struct MonitorConfig {
    /// `QueryInterval`: the deadline of one iteration.
    pub query_interval: Duration,
    /// `BatchSize`: most leaves asked for per get-leaves.
    pub batch_size: u64,
    /// `SubmitKeys`: when set, only leaves by these keys are reported, and
    /// their signatures are checked.
    pub submit_keys: Option<HashMap<Hash, PublicKey>>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            query_interval: DEFAULT_QUERY_INTERVAL,
            batch_size: DEFAULT_BATCH_SIZE,
            submit_keys: None,
        }
    }
}

/// `monitor.MonitorState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorState {
    pub tree_head: TreeHead,
    /// The next leaf to fetch.
    pub next_leaf_index: u64,
}

impl Default for MonitorState {
    /// What `StartMonitoring` starts from without saved state.
    fn default() -> Self {
        MonitorState {
            tree_head: TreeHead::empty(),
            next_leaf_index: 0,
        }
    }
}

/// The callbacks `sigsum-monitor` prints (`NewTreeHead`, `NewLeaves`) and
/// the alerts it exits on, recorded.
#[derive(Clone, Debug, Default)]
pub struct MonitorRecord {
    /// Every new head, in order.
    pub tree_heads: Vec<TreeHead>,
    /// Every reported leaf with its index, in order.
    pub leaves: Vec<(u64, Leaf)>,
    /// The last `numberOfProcessedLeaves`.
    pub processed: u64,
    /// Alerts (sigsum-monitor's `Alert` is fatal).
    pub alerts: Vec<String>,
    /// get-leaves requests made.
    pub get_leaves_calls: usize,
}

/// `monitoringLogClient`.
#[derive(Clone, Debug)]
pub struct MonitoringLogClient {
    log_key: PublicKey,
    client: LogClient,
}

/// `getLeavesState`: the last leaf's hash and inclusion proof, so that the
/// next range in the same iteration needs only an end proof.
#[derive(Clone, Debug)]
struct GetLeavesState {
    leaf_hash: Hash,
    proof: InclusionProof,
}

impl MonitoringLogClient {
    /// `newMonitoringLogClient`.
    pub fn new(log_key: PublicKey, url: &str) -> Self {
        MonitoringLogClient {
            log_key,
            client: LogClient::new(url, MONITOR_USER_AGENT),
        }
    }

    /// `monitoringLogClient.getTreeHead`: the log's signature (cosignatures
    /// are not checked by sigsum-go's monitor), no shrinking, and a
    /// consistency proof from the current head.
    async fn get_tree_head(
        &self,
        current: &TreeHead,
        deadline: Instant,
    ) -> Result<CosignedTreeHead, String> {
        let cth = self
            .client
            .get_tree_head(deadline)
            .await
            .map_err(|e| format!("get-tree-head failed: {e}"))?;
        if !cth.verify_log_signature(&self.log_key) {
            return Err("log signature invalid".to_owned());
        }
        if cth.tree_head.size < current.size {
            return Err(format!(
                "monitored log has shrunk, size {}, previous size {}",
                cth.tree_head.size, current.size
            ));
        }
        let proof = self
            .client
            .get_consistency_proof(current.size, cth.tree_head.size, deadline)
            .await
            .map_err(|e| format!("get-consistency-proof failed: {e}"))?;
        proof
            .verify(current, &cth.tree_head)
            .map_err(|e| format!("consistency proof not valid: {e}"))?;
        Ok(cth)
    }

    /// `getInclusionProofAtIndex`: the proof must be for `index`.
    async fn inclusion_proof_at(
        &self,
        index: u64,
        size: u64,
        leaf_hash: &Hash,
        deadline: Instant,
    ) -> Result<InclusionProof, String> {
        let proof = self
            .client
            .get_inclusion_proof(size, leaf_hash, deadline)
            .await
            .map_err(|e| format!("get-inclusion-proof failed: {e}"))?;
        if proof.leaf_index != index {
            return Err(format!(
                "unexpected get-inclusion-proof index, got {}, want {index}",
                proof.leaf_index
            ));
        }
        Ok(proof)
    }

    /// `monitoringLogClient.getLeaves`: the leaves of `[start, end)` (maybe
    /// fewer), each checked to be in `tree_head`.
    ///
    /// Kept as in Go, quirks included: with a state and a one-leaf answer,
    /// the check and the returned state are about the *previous* leaf.
    async fn get_leaves(
        &self,
        state: Option<GetLeavesState>,
        tree_head: &TreeHead,
        start: u64,
        end: u64,
        deadline: Instant,
        record: &mut MonitorRecord,
    ) -> Result<(Vec<Leaf>, Option<GetLeavesState>), String> {
        record.get_leaves_calls += 1;
        let leaves = self
            .client
            .get_leaves(start, end, deadline)
            .await
            .map_err(|e| e.to_string())?;
        let got_end = start + leaves.len() as u64;
        let mut first = start;
        let mut hashes = Vec::with_capacity(leaves.len() + 1);
        let mut proof = None;
        if let Some(state) = state {
            // Go panics here: the state is only valid for the next range.
            assert_eq!(
                state.proof.leaf_index + 1,
                start,
                "invalid state, LeafIndex and StartIndex should be adjacent"
            );
            first = state.proof.leaf_index;
            hashes.push(state.leaf_hash);
            proof = Some(state.proof);
        }
        hashes.extend(leaves.iter().map(Leaf::leaf_hash));
        let proof = match proof {
            Some(p) => p,
            None => {
                self.inclusion_proof_at(first, tree_head.size, &hashes[0], deadline)
                    .await?
            }
        };
        if leaves.len() == 1 {
            proof
                .verify(&hashes[0], tree_head)
                .map_err(|_| format!("inclusion proof for leaf {} not valid", proof.leaf_index))?;
            let state = GetLeavesState {
                leaf_hash: hashes[0],
                proof,
            };
            return Ok((leaves, Some(state)));
        }
        if got_end == tree_head.size {
            verify_leaf_range(
                &hashes,
                first,
                tree_head.size,
                &tree_head.root_hash,
                &proof.path,
                None,
            )
            .map_err(|e| {
                format!("inclusion proof not valid for tail range {first}:{got_end}: {e}")
            })?;
            return Ok((leaves, None));
        }
        let last_hash = *hashes.last().expect("at least one leaf");
        let end_proof = self
            .inclusion_proof_at(got_end - 1, tree_head.size, &last_hash, deadline)
            .await?;
        verify_leaf_range(
            &hashes,
            first,
            tree_head.size,
            &tree_head.root_hash,
            &proof.path,
            Some(end_proof.path.as_slice()),
        )
        .map_err(|e| format!("inclusion proof not valid for range {first}:{got_end}: {e}"))?;
        Ok((
            leaves,
            Some(GetLeavesState {
                leaf_hash: last_hash,
                proof: end_proof,
            }),
        ))
    }

    /// One iteration of `monitor.MonitorLog`'s loop, without the wait for
    /// the end of the query interval that follows it there (the caller
    /// decides when to run the next one): a new head when all leaves of
    /// the current one are processed, then the leaves up to it in batches.
    pub async fn monitor_pass(
        &self,
        state: &mut MonitorState,
        config: &MonitorConfig,
        record: &mut MonitorRecord,
    ) {
        let deadline = Instant::now() + config.query_interval;
        if state.tree_head.size == state.next_leaf_index {
            match self.get_tree_head(&state.tree_head, deadline).await {
                Err(alert) => record.alerts.push(alert),
                Ok(cth) if cth.tree_head.size > state.tree_head.size => {
                    record.tree_heads.push(cth.tree_head);
                    state.tree_head = cth.tree_head;
                }
                Ok(_) => {}
            }
        }
        let mut leaves_state = None;
        while state.next_leaf_index < state.tree_head.size {
            let start = state.next_leaf_index;
            let end = state
                .tree_head
                .size
                .min(start.saturating_add(config.batch_size));
            let tree_head = state.tree_head;
            let (leaves, next) = match self
                .get_leaves(leaves_state, &tree_head, start, end, deadline, record)
                .await
            {
                Ok(r) => r,
                Err(alert) => {
                    record.alerts.push(alert);
                    break;
                }
            };
            leaves_state = next;
            for (i, leaf) in leaves.iter().enumerate() {
                let index = start + i as u64;
                // filterLeaves: without submit keys every leaf is reported
                // unchecked; with them, only theirs, signatures checked.
                match &config.submit_keys {
                    None => record.leaves.push((index, *leaf)),
                    Some(keys) => {
                        if let Some(key) = keys.get(&leaf.key_hash) {
                            if leaf.verify(key) {
                                record.leaves.push((index, *leaf));
                            } else {
                                record.alerts.push(format!(
                                    "invalid signature on leaf {index}, keyhash {}",
                                    hex(&leaf.key_hash)
                                ));
                            }
                        }
                    }
                }
            }
            state.next_leaf_index += leaves.len() as u64;
            record.processed = state.next_leaf_index;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of `n` leaves built by RFC 9162's recursive definition, to
    /// check the verifiers against independent roots and paths.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => hash_empty_tree(),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                hash_interior_node(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = n.next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if complete {
                Vec::new()
            } else {
                vec![mth(leaves)]
            };
        }
        let k = n.next_power_of_two() / 2;
        if m <= k {
            let mut p = subproof(m, &leaves[..k], complete);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| hash_leaf_node(&[i as u8])).collect()
    }

    #[test]
    fn inclusion_and_ranges_verify_for_every_position_and_fail_for_a_wrong_leaf() {
        for n in 1..=19 {
            let l = leaves(n);
            let root = mth(&l);
            for i in 0..n {
                let p = path(i, &l);
                verify_inclusion(&l[i], i as u64, n as u64, &root, &p).unwrap();
                assert!(verify_inclusion(&[7; 32], i as u64, n as u64, &root, &p).is_err());
                for j in i..n {
                    let end = path(j, &l);
                    verify_leaf_range(
                        &l[i..=j],
                        i as u64,
                        n as u64,
                        &root,
                        &p,
                        Some(end.as_slice()),
                    )
                    .unwrap_or_else(|e| panic!("n={n} [{i},{j}]: {e}"));
                    let mut wrong = l[i..=j].to_vec();
                    wrong[j - i] = [7; 32];
                    assert!(
                        verify_leaf_range(
                            &wrong,
                            i as u64,
                            n as u64,
                            &root,
                            &p,
                            Some(end.as_slice())
                        )
                        .is_err()
                    );
                }
                verify_leaf_range(&l[i..], i as u64, n as u64, &root, &p, None)
                    .unwrap_or_else(|e| panic!("tail n={n} from {i}: {e}"));
                if n - i > 1 {
                    let mut wrong = l[i..].to_vec();
                    wrong[1] = [7; 32];
                    assert!(
                        verify_leaf_range(&wrong, i as u64, n as u64, &root, &p, None).is_err()
                    );
                }
            }
        }
    }

    #[test]
    fn the_size_one_shortcut_fails_as_sigsum_go_reports_it() {
        let l = leaves(2);
        let stale_root = mth(&l[..1]);
        assert_eq!(
            verify_inclusion(&l[1], 0, 1, &stale_root, &[]),
            Err("invalid proof: root mismatch".to_owned())
        );
    }

    #[test]
    fn consistency_verifies_between_all_sizes_and_fails_for_a_wrong_root() {
        for n in 1..=19 {
            let l = leaves(n);
            for m in 1..=n {
                let p = subproof(m, &l, true);
                let (old, new) = (mth(&l[..m]), mth(&l));
                let p = if m == n { Vec::new() } else { p };
                verify_consistency(m as u64, n as u64, &old, &new, &p)
                    .unwrap_or_else(|e| panic!("{m} -> {n}: {e}"));
                if m < n {
                    assert!(verify_consistency(m as u64, n as u64, &[7; 32], &new, &p).is_err());
                }
            }
        }
    }

    #[test]
    fn go_line_rules_refuse_what_sigsum_go_refuses() {
        assert_eq!(int_from_decimal("12"), Ok(12));
        assert!(int_from_decimal("012").is_err());
        assert!(int_from_decimal("+1").is_err());
        assert!(int_from_decimal("9223372036854775808").is_err());
        assert!(InclusionProof::from_ascii(b"leaf_index=1\n").is_err());
        assert!(InclusionProof::from_ascii(b"leaf_index=1\nnode_hash=00").is_err());
        let h = hex(&[1; 32]);
        let p = InclusionProof::from_ascii(format!("leaf_index=1\nnode_hash={h}\n").as_bytes())
            .unwrap();
        assert_eq!(p.path, vec![[1; 32]]);
        let sig = hex(&[2; 64]);
        let head = format!("size=1\nroot_hash={h}\nsignature={sig}\n");
        let dup = format!("{head}cosignature={h} 5 {sig}\ncosignature={h} 6 {sig}\n");
        assert!(CosignedTreeHead::from_ascii(head.as_bytes()).is_ok());
        assert!(CosignedTreeHead::from_ascii(dup.as_bytes()).is_err());
        assert!(CosignedTreeHead::from_ascii(format!("{head}\n").as_bytes()).is_err());
        assert_eq!(base64_std(&[0xff, 0, 1, 2]), "/wABAg==");
    }
}
