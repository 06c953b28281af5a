//! The checks of `cairn fsck`, without IO: every function is given the
//! bytes of an object (and what the objects above it established) and
//! returns what it verified or the [`Finding`] that names the object at
//! fault. `super` fetches the objects and decides the order; trust flows
//! down from the checkpoint:
//!
//! 1. [`verify_checkpoint`]: the signed note verifies under the given keys
//!    (or the policy's log key and quorum of witnesses).
//! 2. [`edge_root`]: the right-edge partial tiles fold to the checkpoint's
//!    root. When they do not, [`check_edge_tile_children`] and
//!    [`check_bundle`] tell a corrupt edge tile from a checkpoint of
//!    another tree.
//! 3. [`check_full_tile`]: each full tile's RFC 6962 root is the hash the
//!    (verified) tile one level up holds for it.
//! 4. [`check_bundle`]: each entry's leaf hash is the hash the (verified)
//!    level-0 tile holds for it; Sigsum leaves are 128 bytes, and their
//!    signatures verify where the user gave the submitter's key.

use std::collections::{BTreeMap, HashMap};

use cairn_sigsum::key::log_origin;
use cairn_sigsum::policy::Policy;
use cairn_sigsum::tree_head::{
    Cosignature as SigsumCosignature, CosignedTreeHead, ORIGIN_PREFIX, SignedTreeHead, TreeHead,
};
use cairn_sigsum::{KeyHash, PublicKey, Signature};
use cairn_tlog::checkpoint::SignedCheckpoint;
use cairn_tlog::cosignature::{Cosignature, CosignatureVerifier};
use cairn_tlog::note::{
    Ed25519NoteVerifier, KeyError, NoteVerifier, SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519,
    VerifierKey, key_id,
};
use cairn_tlog::proof::tree_root;
use cairn_tlog::tile::{BundleId, TileId, node_hash_from_tile, node_tile, tile_root};
use cairn_tlog::{Hash, leaf_hash};

/// A problem with one object of the log: its path (relative to the log's
/// root, e.g. `tile/0/001`, or the checkpoint) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct Finding {
    /// The object at fault.
    pub path: String,
    /// What is wrong with it (boxed: findings travel in `Result`s).
    pub problem: Box<Problem>,
}

impl Finding {
    /// A finding about the object at `path`.
    pub fn new(path: impl Into<String>, problem: Problem) -> Self {
        Finding {
            path: path.into(),
            problem: Box::new(problem),
        }
    }
}

/// What is wrong with an object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The tree of the checkpoint has this object, but the log does not
    /// serve it.
    #[error("missing")]
    Missing,
    /// The object is larger than it can be (or than the limit allows).
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The object does not parse as what its path says it is.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The checkpoint's signatures are not acceptable under the given keys
    /// or policy.
    #[error("{0}")]
    Signature(String),
    /// The tiles are consistent with each other, but their tree's root at
    /// the checkpoint's size is not the checkpoint's root.
    #[error(
        "root {} does not match the root {} of the tree the tiles hold at size {size}",
        hex::encode(.signed),
        hex::encode(.tiles)
    )]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
        /// The root the checkpoint signs.
        signed: Hash,
        /// The root the right-edge tiles fold to.
        tiles: Hash,
    },
    /// A full tile's root is not the hash its parent tile holds for it.
    #[error(
        "root of its hashes {} does not match hash {index} of {parent}, {}",
        hex::encode(.found),
        hex::encode(.expected)
    )]
    TileRoot {
        /// The parent tile.
        parent: String,
        /// Position in the parent.
        index: u16,
        /// The root of this tile's hashes.
        found: Hash,
        /// The parent's hash.
        expected: Hash,
    },
    /// A hash of an edge tile is not the root of the full tile below it.
    #[error(
        "hash {index} is {}, but the root of {child} is {}",
        hex::encode(.found),
        hex::encode(.child_root)
    )]
    ChildRoot {
        /// Position of the hash.
        index: u16,
        /// The full tile one level down.
        child: String,
        /// The hash in this tile.
        found: Hash,
        /// The root of the child's hashes.
        child_root: Hash,
    },
    /// An entry's leaf hash is not the level-0 tile's hash for it.
    #[error(
        "leaf hash {} of entry {entry} (leaf {leaf}) does not match hash {entry} of {tile}, {}",
        hex::encode(.found),
        hex::encode(.expected)
    )]
    LeafHash {
        /// Position in the bundle.
        entry: u16,
        /// Leaf index in the log.
        leaf: u64,
        /// The level-0 tile.
        tile: String,
        /// The entry's leaf hash.
        found: Hash,
        /// The tile's hash.
        expected: Hash,
    },
    /// A hash of the level-0 edge tile is not the leaf hash of the entry
    /// its bundle holds.
    #[error(
        "hash {entry} is {}, but the leaf hash of entry {entry} of {bundle} is {}",
        hex::encode(.found),
        hex::encode(.leaf_hash)
    )]
    EntryMismatch {
        /// Position in the tile.
        entry: u16,
        /// The bundle.
        bundle: String,
        /// The tile's hash.
        found: Hash,
        /// The entry's leaf hash.
        leaf_hash: Hash,
    },
    /// An entry of a Sigsum log that is not a 128-byte Sigsum leaf.
    #[error("entry {entry} (leaf {leaf}) is {len} bytes, not a 128-byte Sigsum leaf")]
    NotSigsumLeaf {
        /// Position in the bundle.
        entry: u16,
        /// Leaf index in the log.
        leaf: u64,
        /// Its length.
        len: usize,
    },
    /// A Sigsum leaf names a submitter key the user gave, and its signature
    /// does not verify under that key.
    #[error("entry {entry} (leaf {leaf}): {reason} (submitter key hash {key_hash})")]
    LeafSignature {
        /// Position in the bundle.
        entry: u16,
        /// Leaf index in the log.
        leaf: u64,
        /// The submitter's key hash.
        key_hash: String,
        /// Why it does not verify.
        reason: String,
    },
}

/// A key the checkpoint may be signed with: a log's Ed25519 note key, or a
/// `cosignature/v1` key (a witness or mirror that vouches for the tree).
#[derive(Clone, Debug)]
pub enum Verifier {
    /// Type 0x01.
    Ed25519(Ed25519NoteVerifier),
    /// Type 0x04.
    Cosignature(CosignatureVerifier),
}

impl Verifier {
    /// The verifier of a vkey of type 0x01 or 0x04.
    pub fn from_vkey(vkey: &VerifierKey) -> Result<Self, KeyError> {
        if vkey.sig_type() == SIG_TYPE_COSIGNATURE_V1 {
            CosignatureVerifier::from_vkey(vkey).map(Verifier::Cosignature)
        } else {
            Ed25519NoteVerifier::from_vkey(vkey).map(Verifier::Ed25519)
        }
    }

    /// A Sigsum log's key, under the name Sigsum logs sign with (their
    /// origin, `sigsum.org/v1/tree/<key hash>`).
    pub fn sigsum_log(key: &PublicKey) -> Result<Self, KeyError> {
        Ed25519NoteVerifier::new(&log_origin(key), &key.0).map(Verifier::Ed25519)
    }

    fn as_note_verifier(&self) -> &dyn NoteVerifier {
        match self {
            Verifier::Ed25519(v) => v,
            Verifier::Cosignature(v) => v,
        }
    }
}

/// Whom the checkpoint must be signed by.
#[derive(Debug)]
pub enum Trust {
    /// At least one of these keys signed it, and every line by one of them
    /// verifies (C2SP signed-note).
    Keys(Vec<Verifier>),
    /// A Sigsum policy: one of its logs signed it, and its witnesses'
    /// cosignatures satisfy its quorum.
    Policy(Box<Policy>),
}

/// What the checkpoint established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The origin line.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// Names of the keys whose signatures verified (the log's first).
    pub signers: Vec<String>,
    /// Whether the origin is a Sigsum log's: then every entry must be a
    /// 128-byte Sigsum leaf.
    pub sigsum: bool,
}

/// Parses and verifies the checkpoint at `path`.
pub fn verify_checkpoint(
    path: &str,
    bytes: &[u8],
    trust: &Trust,
) -> Result<VerifiedCheckpoint, Finding> {
    let finding = |p| Finding::new(path, p);
    let signed =
        SignedCheckpoint::parse(bytes).map_err(|e| finding(Problem::Malformed(e.to_string())))?;
    let checkpoint = signed.checkpoint();
    let signers = match trust {
        Trust::Keys(keys) => {
            let verifiers: Vec<&dyn NoteVerifier> =
                keys.iter().map(Verifier::as_note_verifier).collect();
            let verified = signed
                .verify(&verifiers)
                .map_err(|e| finding(Problem::Signature(e.to_string())))?;
            verified
                .iter()
                .filter_map(|v| verifiers.get(v.verifier).map(|k| k.name().to_owned()))
                .collect()
        }
        Trust::Policy(policy) => verify_under_policy(&signed, policy).map_err(finding)?,
    };
    Ok(VerifiedCheckpoint {
        origin: checkpoint.origin.clone(),
        size: checkpoint.size,
        root: checkpoint.root,
        signers,
        sigsum: checkpoint.origin.starts_with(ORIGIN_PREFIX),
    })
}

/// The Sigsum rules (`cairn_sigsum::quorum`): the origin is that of a log
/// of the policy and its signature verifies; cosignature lines whose key ID
/// is a policy witness's (under the line's name) are that witness's, and
/// the valid ones must satisfy the quorum. Unlike a Sigsum verifier, which
/// counts an invalid cosignature as absent, fsck reports one: a published
/// checkpoint with a broken witness line has been tampered with.
fn verify_under_policy(signed: &SignedCheckpoint, policy: &Policy) -> Result<Vec<String>, Problem> {
    let checkpoint = signed.checkpoint();
    let log = policy
        .logs()
        .iter()
        .find(|l| log_origin(l.key()) == checkpoint.origin)
        .ok_or_else(|| {
            Problem::Signature(format!(
                "origin {:?} is not that of a log of the policy",
                checkpoint.origin
            ))
        })?;
    let log_verifier = Ed25519NoteVerifier::new(&checkpoint.origin, &log.key().0)
        .map_err(|e| Problem::Signature(format!("log key: {e}")))?;
    let verified = signed
        .verify(&[&log_verifier])
        .map_err(|e| Problem::Signature(format!("log signature: {e}")))?;
    let log_line = verified
        .first()
        .and_then(|v| signed.signatures().get(v.signature))
        .ok_or_else(|| Problem::Signature("no log signature".to_owned()))?;
    let log_signature: [u8; 64] = log_line
        .blob()
        .try_into()
        .map_err(|_| Problem::Signature("log signature is not 64 bytes".to_owned()))?;
    let mut cosignatures = Vec::new();
    for line in signed.signatures() {
        let witness = policy
            .witnesses()
            .iter()
            .find(|w| key_id(line.name(), SIG_TYPE_COSIGNATURE_V1, &w.key().0) == line.key_id());
        let Some(witness) = witness else { continue };
        let c = Cosignature::from_note_signature(line)
            .map_err(|e| Problem::Signature(format!("cosignature line {}: {e}", line.name())))?;
        cosignatures.push(SigsumCosignature {
            key_hash: *witness.key_hash(),
            timestamp: c.timestamp,
            signature: Signature(c.signature),
        });
    }
    let head = CosignedTreeHead::new(
        SignedTreeHead {
            tree_head: TreeHead {
                size: checkpoint.size,
                root_hash: checkpoint.root,
            },
            signature: Signature(log_signature),
        },
        cosignatures,
    )
    .map_err(|e| Problem::Signature(e.to_string()))?;
    // The cosigned message is built from the tree head, which has no
    // extension lines: a checkpoint with extensions is not a Sigsum one.
    if !checkpoint.extensions.is_empty() {
        return Err(Problem::Signature(
            "a Sigsum checkpoint has no extension lines".to_owned(),
        ));
    }
    let review = policy.review_cosignatures(&head, log.key_hash());
    if let Some(bad) = review.invalid.first() {
        return Err(Problem::Signature(format!(
            "cosignature by witness {} does not verify",
            String::from_utf8_lossy(bad.name().as_bytes())
        )));
    }
    if !review.quorum_satisfied() {
        let names: Vec<String> = review
            .valid
            .iter()
            .map(|v| String::from_utf8_lossy(v.witness.name().as_bytes()).into_owned())
            .collect();
        return Err(Problem::Signature(format!(
            "the policy's quorum is not satisfied (valid cosignatures: {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    }
    let mut signers = vec![checkpoint.origin.clone()];
    signers.extend(
        review
            .valid
            .iter()
            .map(|v| String::from_utf8_lossy(v.witness.name().as_bytes()).into_owned()),
    );
    Ok(signers)
}

/// The root the right-edge partial tiles of a tree of `size` leaves fold
/// to. `edge` maps each tile of `partial_tiles_for_size(size)` to its bytes,
/// already checked to decode at its width.
pub fn edge_root(size: u64, edge: &BTreeMap<TileId, Vec<u8>>) -> Result<Hash, Finding> {
    tree_root(size, |node| {
        let at = node_tile(node, size).map_err(|e| Finding::new("checkpoint", malformed(e)))?;
        let path = at.tile().path();
        let bytes = edge
            .get(&at.tile())
            .ok_or_else(|| Finding::new(path.clone(), Problem::Missing))?;
        node_hash_from_tile(&at, bytes).map_err(|e| Finding::new(path, malformed(e)))
    })
}

/// Decodes `bytes` as tile `id`.
pub fn decode_tile(id: TileId, bytes: &[u8]) -> Result<Vec<Hash>, Finding> {
    id.decode(bytes)
        .map_err(|e| Finding::new(id.path(), malformed(e)))
}

/// Checks full tile `id` against the hash `expected` that `parent` holds
/// for it at `index`; returns its hashes.
pub fn check_full_tile(
    id: TileId,
    bytes: &[u8],
    parent: TileId,
    index: u16,
    expected: &Hash,
) -> Result<Vec<Hash>, Finding> {
    let hashes = decode_tile(id, bytes)?;
    let found = tile_root(&hashes).map_err(|e| Finding::new(id.path(), malformed(e)))?;
    if found != *expected {
        return Err(Finding::new(
            id.path(),
            Problem::TileRoot {
                parent: parent.path(),
                index,
                found,
                expected: *expected,
            },
        ));
    }
    Ok(hashes)
}

/// Checks the hashes of edge tile `edge` (level ≥ 1) against the full
/// tiles one level down, given as `(tile, bytes)` in order from the first
/// hash: used to find the culprit when the edge does not fold to the
/// checkpoint's root. A child that does not decode is itself the finding.
pub fn check_edge_tile_children(
    edge: TileId,
    edge_hashes: &[Hash],
    children: &[(TileId, Vec<u8>)],
) -> Result<(), Finding> {
    for (i, ((child, bytes), found)) in children.iter().zip(edge_hashes).enumerate() {
        let hashes = decode_tile(*child, bytes)?;
        let child_root =
            tile_root(&hashes).map_err(|e| Finding::new(child.path(), malformed(e)))?;
        if child_root != *found {
            return Err(Finding::new(
                edge.path(),
                Problem::ChildRoot {
                    index: u16::try_from(i).unwrap_or(u16::MAX),
                    child: child.path(),
                    found: *found,
                    child_root,
                },
            ));
        }
    }
    Ok(())
}

/// How a log stores the entries behind its level-0 tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryFormat {
    /// C2SP tlog-tiles entry bundles, `tile/entries/N`: big-endian u16
    /// length-prefixed entries, leaf hash `SHA-256(0x00 ‖ entry)`.
    Bundles,
    /// C2SP static-ct-api data tiles, `tile/data/N`: `TileLeaf` records,
    /// leaf hash of the RFC 6962 `MerkleTreeLeaf` each holds.
    StaticCt,
}

impl EntryFormat {
    /// The path of bundle `id` in this format.
    pub fn path(self, id: BundleId) -> String {
        let path = id.path();
        match self {
            EntryFormat::Bundles => path,
            EntryFormat::StaticCt => path.replacen("tile/entries/", "tile/data/", 1),
        }
    }
}

/// What a bundle check looks for beyond the leaf hashes.
#[derive(Debug, Default)]
pub struct EntryRules {
    /// The log is a Sigsum log: every entry is a 128-byte leaf.
    pub sigsum: bool,
    /// Submitter keys by key hash: Sigsum leaves naming one must carry its
    /// valid signature.
    pub submitters: HashMap<KeyHash, PublicKey>,
}

/// What one bundle held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BundleStats {
    /// Entries checked against the level-0 tile.
    pub entries: u64,
    /// Sigsum leaf signatures verified (leaves of the given submitters).
    pub signatures: u64,
}

/// Checks bundle `id` (in `format`) against the verified hashes of its
/// level-0 tile.
pub fn check_bundle(
    id: BundleId,
    format: EntryFormat,
    bytes: &[u8],
    tile_hashes: &[Hash],
    rules: &EntryRules,
) -> Result<BundleStats, Finding> {
    let (hashes, stats) = bundle_leaf_hashes(id, format, bytes, rules)?;
    if let Some((entry, found, expected)) = first_difference(&hashes, tile_hashes) {
        return Err(Finding::new(
            format.path(id),
            Problem::LeafHash {
                entry,
                leaf: first_leaf(id) + u64::from(entry),
                tile: id.hash_tile().path(),
                found,
                expected,
            },
        ));
    }
    Ok(stats)
}

/// Checks the level-0 edge tile against the leaf hashes of its bundle:
/// used to find the culprit when the edge does not fold to the
/// checkpoint's root (then the tile is suspect, not the bundle).
pub fn check_edge_tile_entries(
    id: BundleId,
    format: EntryFormat,
    bytes: &[u8],
    tile_hashes: &[Hash],
    rules: &EntryRules,
) -> Result<(), Finding> {
    let (hashes, _) = bundle_leaf_hashes(id, format, bytes, rules)?;
    if let Some((entry, leaf_hash, found)) = first_difference(&hashes, tile_hashes) {
        return Err(Finding::new(
            id.hash_tile().path(),
            Problem::EntryMismatch {
                entry,
                bundle: format.path(id),
                found,
                leaf_hash,
            },
        ));
    }
    Ok(())
}

fn first_leaf(id: BundleId) -> u64 {
    id.index().saturating_mul(256)
}

/// The first position where `a` and `b` differ, with both values.
fn first_difference(a: &[Hash], b: &[Hash]) -> Option<(u16, Hash, Hash)> {
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (u16::try_from(i).unwrap_or(u16::MAX), *x, *y))
}

/// The leaf hashes of bundle `id`'s entries, which must number its width;
/// Sigsum leaves are checked on the way.
fn bundle_leaf_hashes(
    id: BundleId,
    format: EntryFormat,
    bytes: &[u8],
    rules: &EntryRules,
) -> Result<(Vec<Hash>, BundleStats), Finding> {
    let path = format.path(id);
    let finding = |p| Finding::new(path.clone(), p);
    let mut stats = BundleStats::default();
    let hashes: Vec<Hash> = match format {
        EntryFormat::Bundles => {
            let entries = id.decode(bytes).map_err(|e| finding(malformed(e)))?;
            if rules.sigsum {
                for (i, entry) in entries.iter().enumerate() {
                    let position = u16::try_from(i).unwrap_or(u16::MAX);
                    let leaf = first_leaf(id) + u64::from(position);
                    stats.signatures +=
                        check_sigsum_leaf(entry, position, leaf, rules).map_err(&finding)?;
                }
            }
            entries.iter().map(|e| leaf_hash(e)).collect()
        }
        EntryFormat::StaticCt => {
            let hashes =
                static_ct_leaf_hashes(bytes).map_err(|e| finding(Problem::Malformed(e)))?;
            if hashes.len() != usize::from(id.width()) {
                return Err(finding(Problem::Malformed(format!(
                    "data tile has {} entries where its path says {}",
                    hashes.len(),
                    id.width()
                ))));
            }
            hashes
        }
    };
    stats.entries = u64::try_from(hashes.len()).unwrap_or(u64::MAX);
    Ok((hashes, stats))
}

/// Checks one entry of a Sigsum log; returns 1 if a signature was verified.
fn check_sigsum_leaf(
    entry: &[u8],
    position: u16,
    leaf: u64,
    rules: &EntryRules,
) -> Result<u64, Problem> {
    let parsed =
        cairn_sigsum::leaf::Leaf::from_bytes(entry).map_err(|_| Problem::NotSigsumLeaf {
            entry: position,
            leaf,
            len: entry.len(),
        })?;
    let Some(key) = rules.submitters.get(&parsed.key_hash) else {
        return Ok(0);
    };
    parsed.verify(key).map_err(|e| Problem::LeafSignature {
        entry: position,
        leaf,
        key_hash: parsed.key_hash.to_hex(),
        reason: e.to_string(),
    })?;
    Ok(1)
}

fn malformed(e: impl std::fmt::Display) -> Problem {
    Problem::Malformed(e.to_string())
}

/// The leaf hashes of a static-ct-api data tile: a sequence of `TileLeaf`
/// records (c2sp.org/static-ct-api), each
///
/// ```text
/// TimestampedEntry timestamped_entry;   // u64 timestamp, u16 entry_type,
///                                        // x509: opaque cert<1..2^24-1>
///                                        // precert: [32] issuer key hash,
///                                        //          opaque tbs<1..2^24-1>
///                                        // opaque extensions<0..2^16-1>
/// precert only: opaque pre_certificate<1..2^24-1>;
/// Fingerprint certificate_chain<0..2^16-1>;  // 32-byte fingerprints
/// ```
///
/// whose leaf hash is `SHA-256(0x00 ‖ MerkleTreeLeaf)`, the RFC 6962
/// `MerkleTreeLeaf` being `0x00 (v1) ‖ 0x00 (timestamped_entry) ‖
/// timestamped_entry`.
pub fn static_ct_leaf_hashes(bytes: &[u8]) -> Result<Vec<Hash>, String> {
    let mut reader = Reader { bytes, at: 0 };
    let mut hashes = Vec::new();
    while reader.at < bytes.len() {
        let record = hashes.len();
        let err = |what: &str| format!("entry {record}: {what}");
        let start = reader.at;
        reader.take(8).ok_or_else(|| err("truncated timestamp"))?;
        let entry_type = reader.uint(2).ok_or_else(|| err("truncated entry type"))?;
        match entry_type {
            0 => {
                reader
                    .opaque(3)
                    .ok_or_else(|| err("truncated certificate"))?;
            }
            1 => {
                reader
                    .take(32)
                    .ok_or_else(|| err("truncated issuer key hash"))?;
                reader
                    .opaque(3)
                    .ok_or_else(|| err("truncated TBS certificate"))?;
            }
            other => return Err(err(&format!("unknown entry type {other}"))),
        }
        reader
            .opaque(2)
            .ok_or_else(|| err("truncated extensions"))?;
        let timestamped_entry = bytes.get(start..reader.at).ok_or_else(|| err("internal"))?;
        if entry_type == 1 {
            reader
                .opaque(3)
                .ok_or_else(|| err("truncated pre-certificate"))?;
        }
        let chain = reader.opaque(2).ok_or_else(|| err("truncated chain"))?;
        if chain.len() % 32 != 0 {
            return Err(err(
                "certificate chain is not a list of 32-byte fingerprints",
            ));
        }
        if hashes.len() == 256 {
            return Err("data tile has more than 256 entries".to_owned());
        }
        let mut leaf = Vec::with_capacity(2 + timestamped_entry.len());
        leaf.extend_from_slice(&[0, 0]);
        leaf.extend_from_slice(timestamped_entry);
        hashes.push(leaf_hash(&leaf));
    }
    if hashes.is_empty() {
        return Err("data tile is empty".to_owned());
    }
    Ok(hashes)
}

/// TLS presentation-language reads over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    /// A big-endian unsigned integer of `n` ≤ 8 bytes.
    fn uint(&mut self, n: usize) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
    }

    /// An opaque vector with an `n`-byte length prefix.
    fn opaque(&mut self, n: usize) -> Option<&'a [u8]> {
        let len = usize::try_from(self.uint(n)?).ok()?;
        self.take(len)
    }
}

/// The key type of a vkey fsck accepts: Ed25519 log keys and
/// `cosignature/v1` keys.
pub fn supported_vkey_type(sig_type: u8) -> bool {
    sig_type == SIG_TYPE_ED25519 || sig_type == SIG_TYPE_COSIGNATURE_V1
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::SigningKey;
    use cairn_tlog::note::Ed25519NoteSigner;
    use cairn_tlog::tile::{TileBuilder, encode_bundle, partial_tiles_for_size};

    /// A log of `n` leaves `"leaf i"`: its tiles by path and its bundles.
    fn log(n: u64) -> (BTreeMap<TileId, Vec<u8>>, Vec<Vec<u8>>, Hash) {
        let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("leaf {i}").into_bytes()).collect();
        let hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let mut builder = TileBuilder::new();
        let mut tiles = BTreeMap::new();
        for w in builder.append(&hashes).unwrap() {
            tiles.insert(w.id, w.bytes);
        }
        (tiles, entries, builder.root())
    }

    #[test]
    fn the_right_edge_folds_to_the_root_at_every_size() {
        for n in [1u64, 15, 255, 256, 257, 511, 512, 700] {
            let (tiles, _, root) = log(n);
            let edge: BTreeMap<TileId, Vec<u8>> = partial_tiles_for_size(n)
                .map(|t| (t, tiles[&t].clone()))
                .collect();
            assert_eq!(edge_root(n, &edge).unwrap(), root, "size {n}");
        }
    }

    #[test]
    fn a_full_tile_must_hash_to_its_parents_hash() {
        let (tiles, _, _) = log(600);
        let child = TileId::full(0, 1).unwrap();
        let parent = TileId::new(1, 0, 2).unwrap();
        let parent_hashes = decode_tile(parent, &tiles[&parent]).unwrap();
        check_full_tile(child, &tiles[&child], parent, 1, &parent_hashes[1]).unwrap();
        let mut bad = tiles[&child].clone();
        bad[37] ^= 1;
        let e = check_full_tile(child, &bad, parent, 1, &parent_hashes[1]).unwrap_err();
        assert_eq!(e.path, "tile/0/001");
        assert!(e.to_string().contains("hash 1 of tile/1/000.p/2"), "{e}");
    }

    #[test]
    fn a_bundle_must_hash_to_its_level_0_tile() {
        let (tiles, entries, _) = log(300);
        let id = BundleId::new(1, 44).unwrap();
        let tile = decode_tile(id.hash_tile(), &tiles[&id.hash_tile()]).unwrap();
        let bytes = encode_bundle(&entries[256..]).unwrap();
        let rules = EntryRules::default();
        let stats = check_bundle(id, EntryFormat::Bundles, &bytes, &tile, &rules).unwrap();
        assert_eq!(stats.entries, 44);
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let e = check_bundle(id, EntryFormat::Bundles, &bad, &tile, &rules).unwrap_err();
        assert_eq!(e.path, "tile/entries/001.p/44");
        assert!(e.to_string().contains("entry 43 (leaf 299)"), "{e}");
    }

    #[test]
    fn sigsum_leaves_are_checked_for_the_given_submitters_only() {
        let submitter = SigningKey::from_seed(&[1; 32]);
        let other = SigningKey::from_seed(&[2; 32]);
        let good = cairn_sigsum::leaf::Leaf::sign(&submitter, &[7; 32]);
        let mut forged = cairn_sigsum::leaf::Leaf::sign(&submitter, &[8; 32]);
        forged.checksum[0] ^= 1;
        let mut foreign = cairn_sigsum::leaf::Leaf::sign(&other, &[9; 32]);
        foreign.checksum[0] ^= 1;
        let leaves: Vec<[u8; 128]> = [good, foreign, forged]
            .iter()
            .map(|l| l.to_bytes())
            .collect();
        let tile: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let id = BundleId::new(0, 3).unwrap();
        let bytes = encode_bundle(&leaves).unwrap();
        let mut rules = EntryRules {
            sigsum: true,
            submitters: HashMap::new(),
        };
        // Without keys, nothing is known about the signatures.
        let stats = check_bundle(id, EntryFormat::Bundles, &bytes, &tile, &rules).unwrap();
        assert_eq!(stats.signatures, 0);
        let key = submitter.public_key();
        rules.submitters.insert(key.key_hash(), key);
        let e = check_bundle(id, EntryFormat::Bundles, &bytes, &tile, &rules).unwrap_err();
        assert!(
            matches!(*e.problem, Problem::LeafSignature { entry: 2, .. }),
            "{e}"
        );
        // A bundle of a Sigsum log holds 128-byte leaves only.
        let short = encode_bundle(&[b"short".as_slice()]).unwrap();
        let id1 = BundleId::new(0, 1).unwrap();
        let e = check_bundle(
            id1,
            EntryFormat::Bundles,
            &short,
            &[leaf_hash(b"short")],
            &rules,
        )
        .unwrap_err();
        assert!(
            matches!(*e.problem, Problem::NotSigsumLeaf { len: 5, .. }),
            "{e}"
        );
    }

    #[test]
    fn checkpoints_need_a_trusted_signature() {
        let signer = Ed25519NoteSigner::new("example.com/log", &[3; 32]).unwrap();
        let note = signer
            .sign_note(&format!("example.com/log\n5\n{}\n", base64_root()))
            .unwrap()
            .to_bytes();
        let trust = Trust::Keys(vec![Verifier::Ed25519(signer.verifier())]);
        let cp = verify_checkpoint("checkpoint", &note, &trust).unwrap();
        assert_eq!((cp.size, cp.sigsum), (5, false));
        let other = Ed25519NoteSigner::new("example.com/log", &[4; 32]).unwrap();
        let trust = Trust::Keys(vec![Verifier::Ed25519(other.verifier())]);
        let e = verify_checkpoint("checkpoint", &note, &trust).unwrap_err();
        assert!(matches!(*e.problem, Problem::Signature(_)), "{e}");
    }

    fn base64_root() -> &'static str {
        "rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs="
    }
}
