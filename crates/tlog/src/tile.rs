//! C2SP tlog-tiles (<https://c2sp.org/tlog-tiles>): how a log's Merkle tree
//! and entries are published as static objects.
//!
//! The spec in brief, as implemented here:
//!
//! * A hash tile `tile/<L>/<N>` holds 256 consecutive 32-byte hashes of tree
//!   level `8·L`: at level 0 the leaf hashes, above that the RFC 6962 root of
//!   each full tile one level down. A tile is therefore a complete subtree of
//!   height 8 whose leaves are the stored hashes; the seven levels in between
//!   are recomputed by hashing, never stored.
//! * The rightmost tile of a level is usually incomplete. At tree size `s` the
//!   partial tile of level `l` has `floor(s / 256^l) mod 256` hashes and is
//!   published as `tile/<L>/<N>.p/<W>`; a width of 0 means there is no partial
//!   tile, because empty tiles are never served. Partial tiles are never hashed
//!   into the level above.
//! * `<N>` is written as zero-padded 3-digit groups, every group but the last
//!   prefixed with `x` (1234067 → `x001/x234/067`), so that tiles can be stored
//!   as files without a file and a directory ever sharing a name.
//! * Entry bundles `tile/entries/<N>[.p/<W>]` hold the entries behind level-0
//!   tile `N`, each as a big-endian `u16` length followed by the entry bytes.
//!
//! Every function here is pure and total: malformed paths, tiles and bundles
//! are reported as [`TileError`], never as a panic, because paths arrive from
//! HTTP clients and tiles from untrusted object storage.
//!
//! The pieces, in the order a log uses them:
//! [`TileBuilder`] and [`BundleBuilder`] turn appended leaves into the objects
//! to write ([`new_tiles`] names the same set without building it);
//! [`parse_path`] routes reads; [`node_tile`] and [`node_hash_from_tile`] serve
//! the node hashes that proofs need; [`tiles_for_size`] and
//! [`bundles_for_size`] enumerate a whole tree for audits.

use std::fmt;
use std::str::FromStr;

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::proof::NodeId;

/// Number of tree levels one tile spans: a tile's hashes are at tree level
/// `TILE_HEIGHT · L`.
pub const TILE_HEIGHT: u8 = 8;

/// Number of hashes in a full tile, and of entries in a full entry bundle.
pub const TILE_WIDTH: u16 = 256;

/// Size of one hash in a hash tile.
pub const HASH_SIZE: usize = 32;

/// Exact byte size of a full hash tile (256 × 32).
pub const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_SIZE;

/// Largest entry an entry bundle can carry: its length prefix is a `u16`.
pub const MAX_ENTRY_SIZE: usize = u16::MAX as usize;

/// Highest tile level the path syntax admits (the spec allows 0..=63).
///
/// Levels above 7 parse syntactically but are still rejected, because no tree
/// whose size fits in a `u64` has tiles there (see [`TILE_LEVELS`]).
pub const MAX_PATH_LEVEL: u8 = 63;

/// Number of tile levels a tree with at most `u64::MAX` leaves can have
/// (levels `0..TILE_LEVELS`): level 7 holds hashes of tree level 56, and a
/// level-8 hash would need 2^64 leaves.
pub const TILE_LEVELS: u8 = 8;

// `TILE_WIDTH` in the types the arithmetic below is done in.
const WIDTH_U64: u64 = TILE_WIDTH as u64;
const WIDTH_USIZE: usize = TILE_WIDTH as usize;

/// Everything that can be wrong with a tile path, a tile, a bundle or a
/// request to build them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path does not start with `tile/` followed by a level or `entries`
    /// and an index.
    #[error("not a tile path: expected tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")]
    NotTilePath,
    /// The level segment is not `entries` nor a decimal 0..=63 without
    /// leading zeros.
    #[error("tile level {0:?} is not `entries` nor a decimal integer 0..=63 without leading zeros")]
    InvalidLevel(String),
    /// The index is not in canonical form: 3-digit zero-padded groups, all but
    /// the last prefixed with `x`, no all-zero leading group, value fits a u64.
    #[error(
        "tile index {0:?} is not canonical: 3-digit zero-padded groups, all but the last \
         prefixed with `x`, no leading all-zero group, at most u64::MAX"
    )]
    InvalidIndex(String),
    /// The `.p/<W>` width is not a decimal 1..=255 without leading zeros
    /// (a full tile has no `.p/` suffix at all).
    #[error("partial width {0:?} is not a decimal integer 1..=255 without leading zeros")]
    InvalidWidth(String),
    /// A tile or bundle width outside 1..=256 was requested.
    #[error("tile width {width} is outside 1..=256")]
    WidthOutOfRange {
        /// The rejected width.
        width: u16,
    },
    /// The tile could only exist in a tree with more than `u64::MAX` leaves.
    #[error(
        "level {level} tile {index} of width {width} would need a tree of more than u64::MAX leaves"
    )]
    TileBeyondMaxTree {
        /// Tile level (0 for entry bundles).
        level: u8,
        /// Tile index.
        index: u64,
        /// Tile width.
        width: u16,
    },
    /// Hash tile bytes are not a non-zero multiple of 32 of at most 8192.
    #[error("hash tile is {len} bytes: must be 32 to 8192 bytes in a multiple of 32")]
    HashTileLength {
        /// Byte length received.
        len: usize,
    },
    /// A hash tile was to be encoded with no hashes or with more than 256.
    #[error("a hash tile holds 1..=256 hashes, not {count}")]
    HashTileCount {
        /// Number of hashes given.
        count: usize,
    },
    /// A hash tile decoded fine but does not have the width its path names.
    #[error("hash tile has {actual} hashes where its path says {expected}")]
    HashTileWidthMismatch {
        /// Width named by the tile id.
        expected: u16,
        /// Hashes in the bytes.
        actual: usize,
    },
    /// A hash tile is too narrow to hold the hashes a node needs.
    #[error("hash tile has {available} hashes but the node needs the first {needed}")]
    TileTooNarrow {
        /// Hashes in the tile bytes.
        available: usize,
        /// Hashes that had to be present (`start + count`).
        needed: usize,
    },
    /// The bytes ended inside an entry's length prefix or body.
    #[error("entry bundle truncated in entry {entry}: {needed} bytes needed, {available} left")]
    BundleTruncated {
        /// Zero-based number of the incomplete entry.
        entry: usize,
        /// Bytes the length prefix or body needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// Bytes continue after the 256th entry.
    #[error("entry bundle continues for {extra} bytes after its 256th entry")]
    BundleTooLong {
        /// Bytes after the 256th entry.
        extra: usize,
    },
    /// An entry bundle with no bytes at all: empty bundles are never served.
    #[error("entry bundle is empty")]
    EmptyBundle,
    /// A bundle was to be encoded with no entries or with more than 256.
    #[error("an entry bundle holds 1..=256 entries, not {count}")]
    BundleEntryCount {
        /// Number of entries given.
        count: usize,
    },
    /// An entry longer than its `u16` length prefix can express.
    #[error("entry {entry} is {len} bytes, more than the 65535 a bundle can carry")]
    EntryTooLarge {
        /// Zero-based position of the entry in the input.
        entry: usize,
        /// Its length.
        len: usize,
    },
    /// A bundle decoded fine but does not have the width its path names.
    #[error("entry bundle has {actual} entries where its path says {expected}")]
    BundleWidthMismatch {
        /// Width named by the bundle id.
        expected: u16,
        /// Entries in the bytes.
        actual: usize,
    },
    /// The node is not a complete subtree of a tree of this size, so no tile
    /// at this size can hold it.
    #[error(
        "node at level {} index {} is not a complete subtree of a tree of size {tree_size}",
        .node.level,
        .node.index
    )]
    NodeNotInTree {
        /// The node asked about.
        node: NodeId,
        /// Tree size asked about.
        tree_size: u64,
    },
    /// Trees only grow.
    #[error("tree cannot shrink from size {old} to {new}")]
    TreeShrinks {
        /// Size before.
        old: u64,
        /// Requested size.
        new: u64,
    },
    /// Appending would take the tree past `u64::MAX` leaves.
    #[error("tree of size {size} cannot grow by {added} leaves: more than u64::MAX")]
    SizeOverflow {
        /// Size before.
        size: u64,
        /// Leaves to append.
        added: usize,
    },
    /// A right-edge partial tile of the resumed tree was not supplied.
    #[error("partial tile {tile} of tree size {size} was not supplied")]
    MissingPartialTile {
        /// The tile the tree has at that size.
        tile: TileId,
        /// The tree size.
        size: u64,
    },
    /// A tile was supplied that is not a right-edge partial tile of the tree.
    #[error("tile {tile} is not a partial tile of tree size {size}")]
    UnexpectedTile {
        /// The tile supplied.
        tile: TileId,
        /// The tree size.
        size: u64,
    },
    /// The same right-edge tile was supplied twice.
    #[error("tile {tile} was supplied twice")]
    DuplicateTile {
        /// The tile supplied twice.
        tile: TileId,
    },
    /// The resumed tree has a partial entry bundle but none was supplied.
    #[error("partial entry bundle {bundle} of tree size {size} was not supplied")]
    MissingPartialBundle {
        /// The bundle the tree has at that size.
        bundle: BundleId,
        /// The tree size.
        size: u64,
    },
    /// A partial entry bundle was supplied for a size that has none.
    #[error("tree size {size} has no partial entry bundle, but one was supplied")]
    UnexpectedBundle {
        /// The tree size.
        size: u64,
    },
}

/// Number of hashes at tile level `level` in a tree of `size` leaves, i.e.
/// `floor(size / 256^level)`; 0 for levels no `u64` tree reaches.
fn level_count(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// Smallest tree size in which tile (`level`, `index`) has at least `width`
/// hashes, or `None` if that size exceeds `u64::MAX`.
fn min_tree_size(level: u8, index: u64, width: u16) -> Option<u64> {
    let count = index
        .checked_mul(WIDTH_U64)?
        .checked_add(u64::from(width))?;
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    if shift >= u64::BITS || count > u64::MAX >> shift {
        return None;
    }
    Some(count << shift)
}

/// Width of tile `index` among `count` hashes of one level, or 0 if the tile
/// does not exist yet.
fn width_at(count: u64, index: u64) -> u16 {
    let before = index.saturating_mul(WIDTH_U64);
    let rem = count.saturating_sub(before).min(WIDTH_U64);
    // `rem` ≤ 256 by the `min` above, so it always fits.
    u16::try_from(rem).unwrap_or(TILE_WIDTH)
}

/// Position of hash number `n` of a level within its tile, 0..=255.
fn position_in_tile(n: u64) -> u16 {
    // The remainder is below 256, so the conversion cannot fail.
    u16::try_from(n % WIDTH_U64).unwrap_or(0)
}

/// Identity of one hash tile: level, index within the level, and width.
///
/// Always valid: width is 1..=256 (256 = full) and some tree of at most
/// `u64::MAX` leaves has this tile, so its [`path`](Self::path) is one a log
/// can serve. Ordered bottom-up, then left to right, then by width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    level: u8,
    index: u64,
    width: u16,
}

impl TileId {
    /// The tile at `level` and `index` holding `width` hashes.
    ///
    /// Fails with [`TileError::WidthOutOfRange`] unless `width` is 1..=256,
    /// and with [`TileError::TileBeyondMaxTree`] if no tree of at most
    /// `u64::MAX` leaves has that tile.
    pub fn new(level: u8, index: u64, width: u16) -> Result<Self, TileError> {
        if width == 0 || width > TILE_WIDTH {
            return Err(TileError::WidthOutOfRange { width });
        }
        if min_tree_size(level, index, width).is_none() {
            return Err(TileError::TileBeyondMaxTree {
                level,
                index,
                width,
            });
        }
        Ok(Self {
            level,
            index,
            width,
        })
    }

    /// The full (256-hash) tile at `level` and `index`; same errors as
    /// [`TileId::new`].
    pub fn full(level: u8, index: u64) -> Result<Self, TileError> {
        Self::new(level, index, TILE_WIDTH)
    }

    /// Tile level `L`: the tile holds hashes of tree level `8·L`.
    pub fn level(self) -> u8 {
        self.level
    }

    /// Index of the tile within its level.
    pub fn index(self) -> u64 {
        self.index
    }

    /// Number of hashes in the tile, 1..=256.
    pub fn width(self) -> u16 {
        self.width
    }

    /// Whether the tile holds all 256 hashes (and so never changes again).
    pub fn is_full(self) -> bool {
        self.width == TILE_WIDTH
    }

    /// Smallest tree size at which this tile exists with this width.
    pub fn min_tree_size(self) -> u64 {
        // Construction guarantees the size fits; the fallback is unreachable.
        min_tree_size(self.level, self.index, self.width).unwrap_or(u64::MAX)
    }

    /// Whether a tree of `size` leaves publishes exactly this tile: a full
    /// tile once the tree is large enough, a partial one only at sizes whose
    /// right edge it is. A client must see a checkpoint of such a size
    /// before asking a log for a partial tile.
    pub fn exists_at(self, size: u64) -> bool {
        let count = level_count(size, self.level);
        if self.is_full() {
            count / WIDTH_U64 > self.index
        } else {
            count / WIDTH_U64 == self.index && count % WIDTH_U64 == u64::from(self.width)
        }
    }

    /// Whether this is a partial tile that a tree of `size` leaves has grown
    /// past: the tree holds more hashes at this tile's position (a wider
    /// partial or the full tile replaces it), so no checkpoint of `size` or
    /// any later size needs it. Full tiles are never superseded, and a
    /// partial tile ahead of `size` (wider than the tree has) is not either.
    pub fn superseded_at(self, size: u64) -> bool {
        let start = self.index.saturating_mul(WIDTH_U64);
        !self.is_full()
            && level_count(size, self.level) > start.saturating_add(u64::from(self.width))
    }

    /// The tile's path relative to the log prefix, e.g. `tile/1/x001/234.p/7`.
    pub fn path(self) -> String {
        self.to_string()
    }

    /// Decodes `bytes` as this tile: a valid hash tile of exactly
    /// [`width`](Self::width) hashes, else [`TileError::HashTileLength`] or
    /// [`TileError::HashTileWidthMismatch`].
    pub fn decode(self, bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
        let hashes = decode_hash_tile(bytes)?;
        if hashes.len() != usize::from(self.width) {
            return Err(TileError::HashTileWidthMismatch {
                expected: self.width,
                actual: hashes.len(),
            });
        }
        Ok(hashes)
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tile/{}/", self.level)?;
        write_index(f, self.index)?;
        write_width(f, self.width)
    }
}

/// Identity of one entry bundle: index (same as its level-0 tile) and width.
///
/// Always valid: width is 1..=256 (256 = full) and the bundle fits in a tree
/// of at most `u64::MAX` leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    index: u64,
    width: u16,
}

impl BundleId {
    /// The bundle at `index` holding `width` entries; fails like
    /// [`TileId::new`] at level 0.
    pub fn new(index: u64, width: u16) -> Result<Self, TileError> {
        let tile = TileId::new(0, index, width)?;
        Ok(Self {
            index: tile.index,
            width: tile.width,
        })
    }

    /// The full (256-entry) bundle at `index`.
    pub fn full(index: u64) -> Result<Self, TileError> {
        Self::new(index, TILE_WIDTH)
    }

    /// Index of the bundle: it holds entries `256·index ..`.
    pub fn index(self) -> u64 {
        self.index
    }

    /// Number of entries, 1..=256.
    pub fn width(self) -> u16 {
        self.width
    }

    /// Whether the bundle holds all 256 entries.
    pub fn is_full(self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The level-0 hash tile whose hashes are the leaf hashes of this
    /// bundle's entries, one for one.
    pub fn hash_tile(self) -> TileId {
        TileId {
            level: 0,
            index: self.index,
            width: self.width,
        }
    }

    /// Smallest tree size at which this bundle exists with this width.
    pub fn min_tree_size(self) -> u64 {
        self.hash_tile().min_tree_size()
    }

    /// Whether a tree of `size` leaves publishes exactly this bundle (see
    /// [`TileId::exists_at`]).
    pub fn exists_at(self, size: u64) -> bool {
        self.hash_tile().exists_at(size)
    }

    /// Whether this is a partial bundle that a tree of `size` leaves has
    /// grown past (see [`TileId::superseded_at`]).
    pub fn superseded_at(self, size: u64) -> bool {
        self.hash_tile().superseded_at(size)
    }

    /// The bundle's path relative to the log prefix, e.g. `tile/entries/000.p/3`.
    pub fn path(self) -> String {
        self.to_string()
    }

    /// Decodes `bytes` as this bundle: a valid bundle of exactly
    /// [`width`](Self::width) entries, else the error of [`decode_bundle`] or
    /// [`TileError::BundleWidthMismatch`].
    pub fn decode(self, bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
        let entries = decode_bundle(bytes)?;
        if entries.len() != usize::from(self.width) {
            return Err(TileError::BundleWidthMismatch {
                expected: self.width,
                actual: entries.len(),
            });
        }
        Ok(entries)
    }
}

impl fmt::Display for BundleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tile/entries/")?;
        write_index(f, self.index)?;
        write_width(f, self.width)
    }
}

/// Writes `index` as 3-digit groups, all but the last prefixed with `x`.
fn write_index(f: &mut fmt::Formatter<'_>, index: u64) -> fmt::Result {
    let mut groups = Vec::with_capacity(7);
    let mut rest = index;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let mut groups = groups.into_iter().rev().peekable();
    while let Some(group) = groups.next() {
        if groups.peek().is_some() {
            write!(f, "x{group:03}/")?;
        } else {
            write!(f, "{group:03}")?;
        }
    }
    Ok(())
}

/// Writes the `.p/<W>` suffix of a partial tile; nothing for a full one.
fn write_width(f: &mut fmt::Formatter<'_>, width: u16) -> fmt::Result {
    if width == TILE_WIDTH {
        Ok(())
    } else {
        write!(f, ".p/{width}")
    }
}

/// A parsed tile path: a hash tile or an entry bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`.
    Hash(TileId),
    /// `tile/entries/<N>[.p/<W>]`.
    Entries(BundleId),
}

impl TilePath {
    /// The canonical path string; [`parse_path`] maps it back to `self`.
    pub fn path(self) -> String {
        self.to_string()
    }

    /// Whether the tile or bundle holds all 256 hashes or entries.
    pub fn is_full(self) -> bool {
        match self {
            TilePath::Hash(t) => t.is_full(),
            TilePath::Entries(b) => b.is_full(),
        }
    }

    /// Whether this partial tile or bundle is superseded at tree size
    /// `size` ([`TileId::superseded_at`]).
    pub fn superseded_at(self, size: u64) -> bool {
        match self {
            TilePath::Hash(t) => t.superseded_at(size),
            TilePath::Entries(b) => b.superseded_at(size),
        }
    }
}

impl fmt::Display for TilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TilePath::Hash(t) => t.fmt(f),
            TilePath::Entries(b) => b.fmt(f),
        }
    }
}

impl FromStr for TilePath {
    type Err = TileError;

    /// Same as [`parse_path`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_path(s)
    }
}

impl From<TileId> for TilePath {
    fn from(t: TileId) -> Self {
        TilePath::Hash(t)
    }
}

impl From<BundleId> for TilePath {
    fn from(b: BundleId) -> Self {
        TilePath::Entries(b)
    }
}

/// Error payloads echo at most this much of a rejected segment: paths come
/// from the network, and an error message must not grow with the request.
const ECHO_LIMIT: usize = 40;

fn echo(segment: &str) -> String {
    segment.chars().take(ECHO_LIMIT).collect()
}

/// Parses a tile path relative to the log prefix (`tile/...`, no leading
/// `/`), accepting exactly the canonical strings that [`TileId`] and
/// [`BundleId`] display, so that `parse_path(p)?.to_string() == p`.
///
/// Rejected, each with its own [`TileError`]: anything not starting with
/// `tile/`; levels that are not `entries` or 0..=63 without leading zeros;
/// indices with missing padding, `x` on the last group, no `x` elsewhere, an
/// all-zero leading group, or a value beyond `u64`; widths 0, ≥ 256 or with
/// leading zeros; empty segments (extra or trailing slashes); and tiles that
/// no tree of at most `u64::MAX` leaves has (including every level above 7).
pub fn parse_path(path: &str) -> Result<TilePath, TileError> {
    let rest = path.strip_prefix("tile/").ok_or(TileError::NotTilePath)?;
    let (kind, rest) = rest.split_once('/').ok_or(TileError::NotTilePath)?;
    // Errors are reported for the leftmost bad segment.
    let level = match kind {
        "entries" => None,
        _ => Some(parse_level(kind)?),
    };
    let (index, width) = match rest.split_once(".p/") {
        Some((index, width)) => (parse_index(index)?, parse_width(width)?),
        None => (parse_index(rest)?, TILE_WIDTH),
    };
    match level {
        None => BundleId::new(index, width).map(TilePath::Entries),
        Some(level) => TileId::new(level, index, width).map(TilePath::Hash),
    }
}

/// A decimal without sign or leading zeros, of 1..=`max_digits` digits.
fn canonical_decimal(s: &str, max_digits: usize) -> Option<u64> {
    let digits_ok = !s.is_empty() && s.len() <= max_digits && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn parse_level(s: &str) -> Result<u8, TileError> {
    canonical_decimal(s, 2)
        .and_then(|l| u8::try_from(l).ok())
        .filter(|&l| l <= MAX_PATH_LEVEL)
        .ok_or_else(|| TileError::InvalidLevel(echo(s)))
}

fn parse_width(s: &str) -> Result<u16, TileError> {
    canonical_decimal(s, 3)
        .and_then(|w| u16::try_from(w).ok())
        .filter(|&w| (1..TILE_WIDTH).contains(&w))
        .ok_or_else(|| TileError::InvalidWidth(echo(s)))
}

fn parse_index(s: &str) -> Result<u64, TileError> {
    let invalid = || TileError::InvalidIndex(echo(s));
    let mut groups = s.split('/').peekable();
    let mut value: u64 = 0;
    let mut first = true;
    while let Some(group) = groups.next() {
        let last = groups.peek().is_none();
        let digits = if last {
            group
        } else {
            group.strip_prefix('x').ok_or_else(invalid)?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let g: u64 = digits.parse().map_err(|_| invalid())?;
        // `x000/...` would give one index a second spelling.
        if first && !last && g == 0 {
            return Err(invalid());
        }
        value = value
            .checked_mul(1000)
            .and_then(|v| v.checked_add(g))
            .ok_or_else(invalid)?;
        first = false;
    }
    Ok(value)
}

/// Encodes 1..=256 hashes as a hash tile: their plain concatenation.
///
/// Fails with [`TileError::HashTileCount`] for 0 or more than 256 hashes,
/// because such a tile can never be served.
pub fn encode_hash_tile(hashes: &[Hash]) -> Result<Vec<u8>, TileError> {
    if hashes.is_empty() || hashes.len() > WIDTH_USIZE {
        return Err(TileError::HashTileCount {
            count: hashes.len(),
        });
    }
    Ok(hashes.as_flattened().to_vec())
}

/// Decodes a hash tile of any width: the bytes must be a non-zero multiple
/// of 32, at most 8192 ([`TileError::HashTileLength`]). Use
/// [`TileId::decode`] to also check the width the path names.
pub fn decode_hash_tile(bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    let (hashes, rest) = bytes.as_chunks::<HASH_SIZE>();
    if hashes.is_empty() || !rest.is_empty() || hashes.len() > WIDTH_USIZE {
        return Err(TileError::HashTileLength { len: bytes.len() });
    }
    Ok(hashes.to_vec())
}

/// Encodes 1..=256 entries as an entry bundle, each as a big-endian `u16`
/// length followed by its bytes.
///
/// Fails with [`TileError::BundleEntryCount`] for 0 or more than 256 entries
/// and with [`TileError::EntryTooLarge`] for an entry over 65535 bytes.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    if entries.is_empty() || entries.len() > WIDTH_USIZE {
        return Err(TileError::BundleEntryCount {
            count: entries.len(),
        });
    }
    let mut out = Vec::with_capacity(entries.iter().map(|e| 2 + e.as_ref().len()).sum());
    for (i, entry) in entries.iter().enumerate() {
        push_entry(&mut out, i, entry.as_ref())?;
    }
    Ok(out)
}

/// Appends one length-prefixed entry; `position` only labels the error.
fn push_entry(out: &mut Vec<u8>, position: usize, entry: &[u8]) -> Result<(), TileError> {
    let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge {
        entry: position,
        len: entry.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(entry);
    Ok(())
}

/// Decodes an entry bundle of any width 1..=256 into its entries, borrowing
/// from `bytes`.
///
/// Fails with [`TileError::EmptyBundle`] for no bytes,
/// [`TileError::BundleTruncated`] if the bytes end inside a length prefix or
/// an entry (which is also how stray trailing bytes show up), and
/// [`TileError::BundleTooLong`] if anything follows the 256th entry. Use
/// [`BundleId::decode`] to also check the width the path names.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    if bytes.is_empty() {
        return Err(TileError::EmptyBundle);
    }
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if entries.len() == WIDTH_USIZE {
            return Err(TileError::BundleTooLong { extra: rest.len() });
        }
        let truncated = |needed: usize, available: usize| TileError::BundleTruncated {
            entry: entries.len(),
            needed,
            available,
        };
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or_else(|| truncated(2, rest.len()))?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| truncated(len, tail.len()))?;
        entries.push(entry);
        rest = tail;
    }
    Ok(entries)
}

/// RFC 6962 Merkle Tree Hash of a list of hashes taken as the leaves' level:
/// pairing left to right and promoting an odd last node gives the same tree
/// as RFC 6962's split at the largest power of two. `EMPTY_ROOT` for none.
fn subtree_root(hashes: &[Hash]) -> Hash {
    let mut layer = hashes.to_vec();
    while layer.len() > 1 {
        layer = layer
            .chunks(2)
            .filter_map(|pair| {
                let (left, right) = pair.split_first()?;
                Some(right.first().map_or(*left, |r| node_hash(left, r)))
            })
            .collect();
    }
    layer.first().copied().unwrap_or(EMPTY_ROOT)
}

/// The RFC 6962 root of a full tile's 256 hashes: the hash this tile
/// contributes to the tile level above.
///
/// Fails with [`TileError::HashTileWidthMismatch`] unless given exactly 256
/// hashes, because partial tiles are never hashed into the level above.
pub fn tile_root(hashes: &[Hash]) -> Result<Hash, TileError> {
    if hashes.len() != WIDTH_USIZE {
        return Err(TileError::HashTileWidthMismatch {
            expected: TILE_WIDTH,
            actual: hashes.len(),
        });
    }
    Ok(subtree_root(hashes))
}

/// The right-edge partial tile of `level` at tree size `size`, if any.
fn partial_tile_at(size: u64, level: u8) -> Option<TileId> {
    if level >= TILE_LEVELS {
        return None;
    }
    let count = level_count(size, level);
    let width = position_in_tile(count);
    (width != 0).then_some(TileId {
        level,
        index: count / WIDTH_U64,
        width,
    })
}

/// Tiles of one level that hold hashes `first_tile·256 .. count`, each at the
/// width it has when the level holds `count` hashes.
fn level_tiles(level: u8, count: u64, first_tile: u64) -> impl Iterator<Item = TileId> {
    (first_tile..count.div_ceil(WIDTH_U64)).map(move |index| TileId {
        level,
        index,
        width: width_at(count, index),
    })
}

/// Every hash tile a tree of `size` leaves publishes: per level, bottom-up,
/// the full tiles left to right and then the partial tile, if any.
///
/// Lazy, since a large tree has millions of tiles. For 70000 leaves: 273 full
/// and a 112-wide tile at level 0, one full and a 17-wide at level 1, and a
/// 1-wide at level 2. Size 0 has no tiles.
pub fn tiles_for_size(size: u64) -> impl Iterator<Item = TileId> {
    (0..TILE_LEVELS).flat_map(move |level| level_tiles(level, level_count(size, level), 0))
}

/// Every entry bundle a tree of `size` leaves publishes: full bundles left to
/// right, then the partial one, if any.
pub fn bundles_for_size(size: u64) -> impl Iterator<Item = BundleId> {
    tiles_for_size(size)
        .take_while(|t| t.level == 0)
        .map(|t| BundleId {
            index: t.index,
            width: t.width,
        })
}

/// The right-edge partial hash tiles of a tree of `size` leaves, bottom-up:
/// exactly what [`TileBuilder::resume`] needs to continue the tree.
pub fn partial_tiles_for_size(size: u64) -> impl Iterator<Item = TileId> {
    (0..TILE_LEVELS).filter_map(move |level| partial_tile_at(size, level))
}

/// The partial entry bundle of a tree of `size` leaves, if it has one.
pub fn partial_bundle_for_size(size: u64) -> Option<BundleId> {
    partial_tile_at(size, 0).map(|t| BundleId {
        index: t.index,
        width: t.width,
    })
}

/// The hash tiles whose contents change when a tree grows from `old_size` to
/// `new_size`, in the order [`TileBuilder::append`] returns them: per level,
/// bottom-up, left to right. At each level whose hash count grows these are
/// the tile that was partial (now full or wider), any new full tiles, and the
/// new partial tile. Empty when the sizes are equal; fails with
/// [`TileError::TreeShrinks`] if `new_size < old_size`.
pub fn new_hash_tiles(
    old_size: u64,
    new_size: u64,
) -> Result<impl Iterator<Item = TileId>, TileError> {
    if new_size < old_size {
        return Err(TileError::TreeShrinks {
            old: old_size,
            new: new_size,
        });
    }
    Ok((0..TILE_LEVELS).flat_map(move |level| {
        let old = level_count(old_size, level);
        let new = level_count(new_size, level);
        // An unchanged level yields nothing: starting past its last tile
        // gives an empty range.
        let first = if new > old { old / WIDTH_U64 } else { u64::MAX };
        level_tiles(level, new, first)
    }))
}

/// The entry bundles whose contents change when a tree grows from `old_size`
/// to `new_size`, left to right (see [`new_hash_tiles`]).
pub fn new_bundles(
    old_size: u64,
    new_size: u64,
) -> Result<impl Iterator<Item = BundleId>, TileError> {
    Ok(new_hash_tiles(old_size, new_size)?
        .take_while(|t| t.level == 0)
        .map(|t| BundleId {
            index: t.index,
            width: t.width,
        }))
}

/// Every object an integrator writes when a tree grows from `old_size` to
/// `new_size`: the [`new_bundles`] first, then the [`new_hash_tiles`]
/// bottom-up, so that no tile names data that has not been written yet.
pub fn new_tiles(
    old_size: u64,
    new_size: u64,
) -> Result<impl Iterator<Item = TilePath>, TileError> {
    let bundles = new_bundles(old_size, new_size)?.map(TilePath::Entries);
    let tiles = new_hash_tiles(old_size, new_size)?.map(TilePath::Hash);
    Ok(bundles.chain(tiles))
}

/// Where the hash of a complete-subtree node lives: hashes
/// `start .. start + count` of `tile`, which form a complete binary subtree
/// whose root is the node. Only [`node_tile`] makes one, so `count` is always
/// a power of two and the run is aligned to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeTile {
    tile: TileId,
    start: u16,
    count: u16,
}

impl NodeTile {
    /// The tile to fetch, at the width the tree has at the size asked about.
    pub fn tile(&self) -> TileId {
        self.tile
    }

    /// Position of the first hash needed within the tile.
    pub fn start(&self) -> u16 {
        self.start
    }

    /// Number of consecutive hashes needed: `2^(level mod 8)`, from 1 to 128.
    pub fn count(&self) -> u16 {
        self.count
    }
}

/// Which tile, and which hashes in it, hold the hash of `node` (the complete
/// subtree at Merkle `level` and `index`, covering leaves
/// `index·2^level .. (index+1)·2^level`) in a tree of `tree_size` leaves.
///
/// Nodes at levels divisible by 8 are stored directly (`count` = 1); any other
/// node is the root of `2^(level mod 8)` consecutive hashes of tile level
/// `level / 8`. The tile is named at its width at `tree_size`, so it may be a
/// partial tile; the full tile of the same index holds the same hashes, if the
/// log has written it since.
///
/// Fails with [`TileError::NodeNotInTree`] unless the node is a complete
/// subtree at `tree_size`.
pub fn node_tile(node: NodeId, tree_size: u64) -> Result<NodeTile, TileError> {
    let NodeId { level, index } = node;
    let complete = tree_size
        .checked_shr(u32::from(level))
        .is_some_and(|nodes| index < nodes);
    if !complete {
        return Err(TileError::NodeNotInTree { node, tree_size });
    }
    let tile_level = level / TILE_HEIGHT;
    let within = level % TILE_HEIGHT;
    // Cannot overflow: the node is complete, so `index << level` < tree_size.
    let first_hash = index << within;
    let tile_index = first_hash / WIDTH_U64;
    let tile = TileId {
        level: tile_level,
        index: tile_index,
        width: width_at(level_count(tree_size, tile_level), tile_index),
    };
    Ok(NodeTile {
        tile,
        start: position_in_tile(first_hash),
        count: 1 << within,
    })
}

/// Computes a node's hash from the bytes of the tile [`node_tile`] named:
/// the stored hash itself, or the RFC 6962 root of the `count` hashes.
///
/// The bytes must be a valid hash tile ([`decode_hash_tile`]) covering
/// `start + count` hashes, else [`TileError::TileTooNarrow`]; a wider tile of
/// the same index is accepted, since a tile only ever grows at its end.
pub fn node_hash_from_tile(node: &NodeTile, tile_bytes: &[u8]) -> Result<Hash, TileError> {
    let hashes = decode_hash_tile(tile_bytes)?;
    let start = usize::from(node.start);
    let end = start + usize::from(node.count);
    let range = hashes.get(start..end).ok_or(TileError::TileTooNarrow {
        available: hashes.len(),
        needed: end,
    })?;
    Ok(subtree_root(range))
}

/// A hash tile to write: its id and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileWrite {
    /// Which tile; `id.path()` is the object name.
    pub id: TileId,
    /// The encoded tile, `32 · id.width()` bytes.
    pub bytes: Vec<u8>,
}

/// An entry bundle to write: its id and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleWrite {
    /// Which bundle; `id.path()` is the object name.
    pub id: BundleId,
    /// The encoded bundle.
    pub bytes: Vec<u8>,
}

/// Builds the hash tiles of a growing tree, holding only its right edge (at
/// most one partial tile per level, ≤ 64 KiB).
///
/// [`append`](Self::append) returns every hash tile whose bytes must be
/// written at the new size. A full tile's bytes never change once returned,
/// which is what lets storage treat tiles as create-only. If writing the
/// returned tiles fails, drop the builder and [`resume`](Self::resume) from
/// the last size whose tiles are known to be written: the builder has moved on
/// and will not return those tiles again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileBuilder {
    size: u64,
    /// Per tile level, the hashes of its partial tile (never 256 of them).
    edge: Vec<Vec<Hash>>,
}

impl Default for TileBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TileBuilder {
    /// A builder for the empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            edge: vec![Vec::new(); usize::from(TILE_LEVELS)],
        }
    }

    /// A builder for a tree of `size` leaves, given its right-edge partial
    /// tiles (those [`partial_tiles_for_size`] names), in any order.
    ///
    /// Each tile is decoded against its id; fails with
    /// [`TileError::MissingPartialTile`], [`TileError::UnexpectedTile`] or
    /// [`TileError::DuplicateTile`] unless exactly that set is supplied. The
    /// hashes are taken on trust: supply the log's own right edge, or check
    /// [`root`](Self::root) against a verified checkpoint.
    pub fn resume<B: AsRef<[u8]>>(
        size: u64,
        partial_tiles: impl IntoIterator<Item = (TileId, B)>,
    ) -> Result<Self, TileError> {
        let mut builder = Self::new();
        builder.size = size;
        for (tile, bytes) in partial_tiles {
            if partial_tile_at(size, tile.level) != Some(tile) {
                return Err(TileError::UnexpectedTile { tile, size });
            }
            let slot = builder
                .edge
                .get_mut(usize::from(tile.level))
                .ok_or(TileError::UnexpectedTile { tile, size })?;
            if !slot.is_empty() {
                return Err(TileError::DuplicateTile { tile });
            }
            *slot = tile.decode(bytes.as_ref())?;
        }
        for tile in partial_tiles_for_size(size) {
            let supplied = builder
                .edge
                .get(usize::from(tile.level))
                .is_some_and(|hashes| !hashes.is_empty());
            if !supplied {
                return Err(TileError::MissingPartialTile { tile, size });
            }
        }
        Ok(builder)
    }

    /// Current tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right-edge partial tiles at the current size, bottom-up: what to
    /// keep (or re-read) to [`resume`](Self::resume) later.
    pub fn partial_tiles(&self) -> Vec<TileWrite> {
        (0..TILE_LEVELS)
            .zip(&self.edge)
            .filter_map(|(level, hashes)| {
                let tile = partial_tile_at(self.size, level)?;
                Some(TileWrite {
                    id: tile,
                    bytes: hashes.as_flattened().to_vec(),
                })
            })
            .collect()
    }

    /// RFC 6962 root of the current tree (`EMPTY_ROOT` when empty).
    ///
    /// Needs only the right edge: each complete subtree in the binary
    /// decomposition of the size is a power-of-two run of hashes inside the
    /// partial tile of its level.
    pub fn root(&self) -> Hash {
        // Subtrees from the smallest (rightmost) to the largest, folded in
        // as left siblings of everything to their right.
        let mut root: Option<Hash> = None;
        for hashes in &self.edge {
            let width = hashes.len();
            for bit in 0..TILE_HEIGHT {
                let run = 1usize << bit;
                if width & run == 0 {
                    continue;
                }
                let start = width & !((run << 1) - 1);
                let Some(subtree) = hashes.get(start..start + run) else {
                    continue;
                };
                let h = subtree_root(subtree);
                root = Some(root.map_or(h, |right| node_hash(&h, &right)));
            }
        }
        root.unwrap_or(EMPTY_ROOT)
    }

    /// Appends the leaf hashes of the next leaves and returns every hash tile
    /// whose bytes must be written at the new size — exactly the tiles
    /// [`new_hash_tiles`] names, in that order (bottom-up, left to right):
    /// tiles that became full, new full tiles, and each level's new partial.
    ///
    /// Fails with [`TileError::SizeOverflow`], leaving the builder unchanged,
    /// if the tree would exceed `u64::MAX` leaves.
    pub fn append(&mut self, leaf_hashes: &[Hash]) -> Result<Vec<TileWrite>, TileError> {
        let overflow = TileError::SizeOverflow {
            size: self.size,
            added: leaf_hashes.len(),
        };
        let added = u64::try_from(leaf_hashes.len()).map_err(|_| overflow.clone())?;
        let new_size = self.size.checked_add(added).ok_or(overflow)?;
        let mut out = Vec::new();
        // Roots of the tiles the level below just completed.
        let mut carried: Vec<Hash> = Vec::new();
        for (level, buffer) in (0..TILE_LEVELS).zip(self.edge.iter_mut()) {
            let input: &[Hash] = if level == 0 { leaf_hashes } else { &carried };
            if input.is_empty() {
                break;
            }
            let first_tile = level_count(self.size, level) / WIDTH_U64;
            carried = absorb(level, first_tile, buffer, input, &mut out);
        }
        self.size = new_size;
        Ok(out)
    }
}

/// Appends `input` to the partial tile `buffer` of `level`, whose index is
/// `tile_index`; records each tile it completes and the final partial in
/// `out`, and returns the roots of the completed tiles for the level above.
fn absorb(
    level: u8,
    mut tile_index: u64,
    buffer: &mut Vec<Hash>,
    input: &[Hash],
    out: &mut Vec<TileWrite>,
) -> Vec<Hash> {
    let mut completed = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let room = WIDTH_USIZE.saturating_sub(buffer.len());
        let (take, tail) = rest.split_at(room.min(rest.len()));
        buffer.extend_from_slice(take);
        rest = tail;
        if buffer.len() == WIDTH_USIZE {
            out.push(TileWrite {
                id: TileId {
                    level,
                    index: tile_index,
                    width: TILE_WIDTH,
                },
                bytes: buffer.as_flattened().to_vec(),
            });
            completed.push(subtree_root(buffer));
            buffer.clear();
            tile_index += 1;
        }
    }
    if !buffer.is_empty() {
        out.push(TileWrite {
            id: TileId {
                level,
                index: tile_index,
                width: u16::try_from(buffer.len()).unwrap_or(TILE_WIDTH),
            },
            bytes: buffer.as_flattened().to_vec(),
        });
    }
    completed
}

/// Builds the entry bundles of a growing tree, holding only its partial
/// bundle. The bundle counterpart of [`TileBuilder`], with the same
/// create-only guarantee and the same advice on failed writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleBuilder {
    size: u64,
    /// Encoded entries of the partial bundle, kept encoded because that is
    /// all they are ever needed for.
    partial: Vec<u8>,
}

impl Default for BundleBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BundleBuilder {
    /// A builder for the empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            partial: Vec::new(),
        }
    }

    /// A builder for a tree of `size` leaves, given the bytes of its partial
    /// bundle ([`partial_bundle_for_size`]), which must be present exactly
    /// when the size is not a multiple of 256 ([`TileError::MissingPartialBundle`],
    /// [`TileError::UnexpectedBundle`]) and decode at that width.
    pub fn resume<B: AsRef<[u8]>>(size: u64, partial: Option<B>) -> Result<Self, TileError> {
        let partial = match (partial_bundle_for_size(size), partial) {
            (None, None) => Vec::new(),
            (None, Some(_)) => return Err(TileError::UnexpectedBundle { size }),
            (Some(bundle), None) => return Err(TileError::MissingPartialBundle { bundle, size }),
            (Some(bundle), Some(bytes)) => {
                let bytes = bytes.as_ref();
                bundle.decode(bytes)?;
                bytes.to_vec()
            }
        };
        Ok(Self { size, partial })
    }

    /// Current tree size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The partial bundle at the current size, if any: what to keep (or
    /// re-read) to [`resume`](Self::resume) later.
    pub fn partial_bundle(&self) -> Option<BundleWrite> {
        partial_bundle_for_size(self.size).map(|id| BundleWrite {
            id,
            bytes: self.partial.clone(),
        })
    }

    /// Appends the next entries and returns every bundle whose bytes must be
    /// written at the new size — exactly those [`new_bundles`] names, in
    /// order.
    ///
    /// Fails, leaving the builder unchanged, with [`TileError::EntryTooLarge`]
    /// (position within `entries`) or [`TileError::SizeOverflow`].
    pub fn append<E: AsRef<[u8]>>(&mut self, entries: &[E]) -> Result<Vec<BundleWrite>, TileError> {
        if let Some((entry, e)) = entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.as_ref().len() > MAX_ENTRY_SIZE)
        {
            return Err(TileError::EntryTooLarge {
                entry,
                len: e.as_ref().len(),
            });
        }
        let overflow = TileError::SizeOverflow {
            size: self.size,
            added: entries.len(),
        };
        let added = u64::try_from(entries.len()).map_err(|_| overflow.clone())?;
        let new_size = self.size.checked_add(added).ok_or(overflow)?;
        let mut out = Vec::new();
        let mut size = self.size;
        for (i, entry) in entries.iter().enumerate() {
            push_entry(&mut self.partial, i, entry.as_ref())?;
            size += 1;
            if size.is_multiple_of(WIDTH_U64) {
                out.push(BundleWrite {
                    id: BundleId {
                        index: size / WIDTH_U64 - 1,
                        width: TILE_WIDTH,
                    },
                    bytes: std::mem::take(&mut self.partial),
                });
            }
        }
        self.size = new_size;
        if !entries.is_empty() {
            out.extend(self.partial_bundle());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn node(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// RFC 6962 MTH by its recursive definition, independent of the
    /// pairwise reduction used in the module.
    fn mth(hashes: &[Hash]) -> Hash {
        match hashes.len() {
            0 => EMPTY_ROOT,
            1 => hashes[0],
            n => {
                // Largest power of two strictly below n.
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                node_hash(&mth(&hashes[..k]), &mth(&hashes[k..]))
            }
        }
    }

    #[test]
    fn index_is_written_in_x_prefixed_groups() {
        let t = TileId::full(0, 1_234_067).unwrap();
        assert_eq!(t.path(), "tile/0/x001/x234/067");
        assert_eq!(TileId::full(2, 0).unwrap().path(), "tile/2/000");
        assert_eq!(
            TileId::new(1, 1000, 7).unwrap().path(),
            "tile/1/x001/000.p/7"
        );
        assert_eq!(BundleId::new(5, 3).unwrap().path(), "tile/entries/005.p/3");
        assert_eq!(
            BundleId::new(u64::MAX / 256, 255).unwrap().path(),
            "tile/entries/x072/x057/x594/x037/x927/935.p/255"
        );
    }

    #[test]
    fn canonical_paths_parse_back_to_their_ids() {
        for p in [
            "tile/0/000",
            "tile/0/000.p/1",
            "tile/0/x001/x234/067.p/255",
            "tile/7/000.p/255",
            "tile/entries/x072/x057/x594/x037/x927/934",
            "tile/entries/999.p/128",
        ] {
            assert_eq!(parse_path(p).unwrap().to_string(), p);
        }
    }

    #[test]
    fn non_canonical_paths_are_rejected() {
        fn kind(e: &TileError) -> &'static str {
            match e {
                TileError::NotTilePath => "prefix",
                TileError::InvalidLevel(_) => "level",
                TileError::InvalidIndex(_) => "index",
                TileError::InvalidWidth(_) => "width",
                TileError::TileBeyondMaxTree { .. } => "beyond",
                _ => "other",
            }
        }
        let cases = [
            ("/tile/0/000", "prefix"),
            ("tile/0", "prefix"),
            ("tiles/0/000", "prefix"),
            ("tile/00/000", "level"),
            ("tile/64/000", "level"),
            ("tile/+1/000", "level"),
            ("tile//000", "level"),
            ("tile/0/00", "index"),
            ("tile/0/0000", "index"),
            ("tile/0/x000", "index"),
            ("tile/0/001/234", "index"),
            ("tile/0/x000/234", "index"),
            ("tile/0/x001//234", "index"),
            ("tile/0/000/", "index"),
            ("tile/0/-01", "index"),
            ("tile/0/x018/x446/x744/x073/x709/x551/616", "index"),
            ("tile/0/000.p/0", "width"),
            ("tile/0/000.p/256", "width"),
            ("tile/0/000.p/007", "width"),
            ("tile/0/000.p/", "width"),
            ("tile/0/000.p/5/", "width"),
            ("tile/8/000.p/1", "beyond"),
            ("tile/7/001.p/1", "beyond"),
            ("tile/7/000", "beyond"),
            ("tile/63/000", "beyond"),
        ];
        for (path, expected) in cases {
            let err = parse_path(path).unwrap_err();
            assert_eq!(kind(&err), expected, "{path}: {err:?}");
        }
    }

    #[test]
    fn largest_index_that_fits_a_u64_tree_parses() {
        // Level 0 tile 2^56-1 with 255 hashes ends exactly at u64::MAX leaves.
        let p = "tile/0/x072/x057/x594/x037/x927/935.p/255";
        let TilePath::Hash(t) = parse_path(p).unwrap() else {
            panic!("hash tile expected")
        };
        assert_eq!(t.min_tree_size(), u64::MAX);
        assert!(t.exists_at(u64::MAX));
    }

    #[test]
    fn tree_of_70000_has_the_tiles_the_spec_lists() {
        let tiles: Vec<_> = tiles_for_size(70_000).collect();
        let level = |l| tiles.iter().filter(move |t| t.level() == l);
        assert_eq!(level(0).filter(|t| t.is_full()).count(), 273);
        assert_eq!(
            level(0)
                .filter(|t| !t.is_full())
                .map(|t| t.width())
                .collect::<Vec<_>>(),
            [112]
        );
        assert_eq!(level(1).filter(|t| t.is_full()).count(), 1);
        assert_eq!(
            level(1)
                .filter(|t| !t.is_full())
                .map(|t| t.width())
                .collect::<Vec<_>>(),
            [17]
        );
        assert_eq!(level(2).map(|t| t.width()).collect::<Vec<_>>(), [1]);
        assert_eq!(tiles.len(), 277);
        assert!(tiles.iter().all(|t| t.exists_at(70_000)));
    }

    #[test]
    fn empty_tree_has_no_tiles_or_bundles() {
        assert_eq!(tiles_for_size(0).count(), 0);
        assert_eq!(bundles_for_size(0).count(), 0);
        assert_eq!(TileBuilder::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn new_tiles_are_the_changed_tiles_bottom_up() {
        let got: Vec<_> = new_tiles(250, 513)
            .unwrap()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "tile/entries/000",
                "tile/entries/001",
                "tile/entries/002.p/1",
                "tile/0/000",
                "tile/0/001",
                "tile/0/002.p/1",
                "tile/1/000.p/2",
            ]
        );
        assert_eq!(new_tiles(7, 7).unwrap().count(), 0);
        assert_eq!(
            new_tiles(8, 7).err(),
            Some(TileError::TreeShrinks { old: 8, new: 7 })
        );
    }

    #[test]
    fn hash_tile_decoding_checks_length_and_width() {
        let hashes = leaves(3);
        let bytes = encode_hash_tile(&hashes).unwrap();
        assert_eq!(decode_hash_tile(&bytes).unwrap(), hashes);
        let id = TileId::new(0, 0, 3).unwrap();
        assert_eq!(id.decode(&bytes).unwrap(), hashes);
        assert_eq!(
            TileId::new(0, 0, 4).unwrap().decode(&bytes),
            Err(TileError::HashTileWidthMismatch {
                expected: 4,
                actual: 3
            })
        );
        for len in [0, 31, 33, FULL_TILE_BYTES + 32] {
            assert_eq!(
                decode_hash_tile(&vec![0; len]),
                Err(TileError::HashTileLength { len })
            );
        }
        assert_eq!(
            encode_hash_tile(&[]),
            Err(TileError::HashTileCount { count: 0 })
        );
        assert_eq!(
            encode_hash_tile(&leaves(257)),
            Err(TileError::HashTileCount { count: 257 })
        );
    }

    #[test]
    fn bundle_decoding_rejects_truncation_and_overlong_bundles() {
        let bytes = encode_bundle(&[b"one".as_slice(), b"", b"three"]).unwrap();
        assert_eq!(bytes, b"\x00\x03one\x00\x00\x00\x05three");
        assert_eq!(decode_bundle(&bytes).unwrap(), [&b"one"[..], b"", b"three"]);
        assert_eq!(decode_bundle(&[]), Err(TileError::EmptyBundle));
        assert_eq!(
            decode_bundle(&bytes[..bytes.len() - 1]),
            Err(TileError::BundleTruncated {
                entry: 2,
                needed: 5,
                available: 4
            })
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            decode_bundle(&trailing),
            Err(TileError::BundleTruncated {
                entry: 3,
                needed: 2,
                available: 1
            })
        );
        let full = encode_bundle(&vec![[7u8; 1]; 256]).unwrap();
        let mut long = full.clone();
        long.extend_from_slice(&[0, 0]);
        assert_eq!(
            decode_bundle(&long),
            Err(TileError::BundleTooLong { extra: 2 })
        );
        assert_eq!(
            BundleId::new(0, 2).unwrap().decode(&bytes),
            Err(TileError::BundleWidthMismatch {
                expected: 2,
                actual: 3
            })
        );
        assert_eq!(
            encode_bundle(&[vec![0u8; MAX_ENTRY_SIZE + 1]]),
            Err(TileError::EntryTooLarge {
                entry: 0,
                len: MAX_ENTRY_SIZE + 1
            })
        );
        assert_eq!(
            encode_bundle::<&[u8]>(&[]),
            Err(TileError::BundleEntryCount { count: 0 })
        );
    }

    #[test]
    fn tile_root_is_the_rfc6962_root_of_a_full_tile() {
        let hashes = leaves(256);
        assert_eq!(tile_root(&hashes).unwrap(), mth(&hashes));
        assert_eq!(
            tile_root(&hashes[..255]),
            Err(TileError::HashTileWidthMismatch {
                expected: 256,
                actual: 255
            })
        );
    }

    #[test]
    fn subtree_root_matches_rfc6962_for_every_width() {
        for n in 0..=300 {
            let hashes = leaves(n);
            assert_eq!(subtree_root(&hashes), mth(&hashes), "n={n}");
        }
    }

    #[test]
    fn builder_root_matches_rfc6962_at_every_size() {
        let all = leaves(700);
        let mut b = TileBuilder::new();
        for (i, h) in all.iter().enumerate() {
            b.append(std::slice::from_ref(h)).unwrap();
            assert_eq!(b.root(), mth(&all[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn builder_emits_exactly_the_new_hash_tiles() {
        let all = leaves(70_000);
        let mut b = TileBuilder::resume(0, Vec::<(TileId, Vec<u8>)>::new()).unwrap();
        let mut size = 0u64;
        for step in [1usize, 254, 1, 300, 65_000, 4_444] {
            let batch = &all[size as usize..size as usize + step];
            let written = b.append(batch).unwrap();
            let ids: Vec<_> = written.iter().map(|w| w.id).collect();
            let expected: Vec<_> = new_hash_tiles(size, size + step as u64).unwrap().collect();
            assert_eq!(ids, expected);
            size += step as u64;
        }
        assert_eq!(b.size(), 70_000);
        assert_eq!(b.root(), mth(&all));
    }

    #[test]
    fn resume_requires_exactly_the_right_edge() {
        let mut b = TileBuilder::new();
        b.append(&leaves(300)).unwrap();
        let edge: Vec<_> = b
            .partial_tiles()
            .into_iter()
            .map(|w| (w.id, w.bytes))
            .collect();
        assert_eq!(
            edge.iter().map(|(id, _)| id.path()).collect::<Vec<_>>(),
            ["tile/0/001.p/44", "tile/1/000.p/1"]
        );
        assert_eq!(TileBuilder::resume(300, edge.clone()).unwrap(), b);
        let missing = TileId::new(1, 0, 1).unwrap();
        assert_eq!(
            TileBuilder::resume(300, edge[..1].to_vec()),
            Err(TileError::MissingPartialTile {
                tile: missing,
                size: 300
            })
        );
        let mut dup = edge.clone();
        dup.push(edge[0].clone());
        assert_eq!(
            TileBuilder::resume(300, dup),
            Err(TileError::DuplicateTile { tile: edge[0].0 })
        );
        let stray = TileId::full(0, 0).unwrap();
        assert_eq!(
            TileBuilder::resume(300, [(stray, vec![0u8; FULL_TILE_BYTES])]),
            Err(TileError::UnexpectedTile {
                tile: stray,
                size: 300
            })
        );
        assert_eq!(
            TileBuilder::resume(300, [(edge[0].0, vec![0u8; 32])]),
            Err(TileError::HashTileWidthMismatch {
                expected: 44,
                actual: 1
            })
        );
    }

    /// A builder at `size` whose right edge is filled with arbitrary hashes.
    fn builder_at(size: u64) -> TileBuilder {
        let edge = partial_tiles_for_size(size)
            .map(|tile| (tile, vec![1u8; usize::from(tile.width()) * HASH_SIZE]));
        TileBuilder::resume(size, edge).unwrap()
    }

    #[test]
    fn append_past_u64_max_fails_without_changing_the_builder() {
        let size = u64::MAX - 1;
        let mut b = builder_at(size);
        let before = b.clone();
        assert_eq!(
            b.append(&leaves(2)),
            Err(TileError::SizeOverflow { size, added: 2 })
        );
        assert_eq!(b, before);
        let written = b.append(&leaves(1)).unwrap();
        let paths: Vec<_> = written.iter().map(|w| w.id.path()).collect();
        assert_eq!(paths, ["tile/0/x072/x057/x594/x037/x927/935.p/255"]);
    }

    #[test]
    fn completing_a_tile_ripples_up_to_the_top_level() {
        // Every level below 7 is one hash short of a full tile.
        let size = (255u64 << 56) - 1;
        let mut b = builder_at(size);
        let written = b.append(&leaves(1)).unwrap();
        let ids: Vec<_> = written.iter().map(|w| w.id).collect();
        assert_eq!(
            ids,
            new_hash_tiles(size, size + 1).unwrap().collect::<Vec<_>>()
        );
        assert_eq!(ids.len(), 8);
        assert!(ids[..7].iter().all(|t| t.is_full()));
        assert_eq!(ids[7].path(), "tile/7/000.p/255");
    }

    #[test]
    fn node_at_tile_boundary_level_is_read_directly() {
        let all = leaves(70_000);
        let mut b = TileBuilder::new();
        let tiles = b.append(&all).unwrap();
        let at = node_tile(node(8, 3), 70_000).unwrap();
        assert_eq!(at.tile().path(), "tile/1/000");
        assert_eq!((at.start(), at.count()), (3, 1));
        let bytes = &tiles.iter().find(|w| w.id == at.tile()).unwrap().bytes;
        assert_eq!(
            node_hash_from_tile(&at, bytes).unwrap(),
            mth(&all[768..1024])
        );
    }

    #[test]
    fn inner_node_is_hashed_from_a_run_of_the_partial_tile() {
        let all = leaves(300);
        let mut b = TileBuilder::new();
        let tiles = b.append(&all).unwrap();
        // Leaves 288..296: level 3, index 36, inside tile/0/001.p/44.
        let at = node_tile(node(3, 36), 300).unwrap();
        assert_eq!(at.tile().path(), "tile/0/001.p/44");
        assert_eq!((at.start(), at.count()), (32, 8));
        let bytes = &tiles.iter().find(|w| w.id == at.tile()).unwrap().bytes;
        assert_eq!(
            node_hash_from_tile(&at, bytes).unwrap(),
            mth(&all[288..296])
        );
        // Too narrow a tile is an error, not a panic.
        assert_eq!(
            node_hash_from_tile(&at, &bytes[..32 * 39]),
            Err(TileError::TileTooNarrow {
                available: 39,
                needed: 40
            })
        );
    }

    #[test]
    fn incomplete_nodes_have_no_tile() {
        assert_eq!(
            node_tile(node(3, 37), 300),
            Err(TileError::NodeNotInTree {
                node: node(3, 37),
                tree_size: 300
            })
        );
        assert!(node_tile(node(64, 0), u64::MAX).is_err());
        assert!(node_tile(node(63, 0), u64::MAX).is_ok());
        assert!(node_tile(node(0, u64::MAX), u64::MAX).is_err());
    }

    #[test]
    fn bundle_builder_emits_exactly_the_new_bundles() {
        let entries: Vec<Vec<u8>> = (0..600u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut b = BundleBuilder::new();
        let mut size = 0usize;
        for step in [3usize, 253, 1, 343] {
            let written = b.append(&entries[size..size + step]).unwrap();
            let ids: Vec<_> = written.iter().map(|w| w.id).collect();
            let expected: Vec<_> = new_bundles(size as u64, (size + step) as u64)
                .unwrap()
                .collect();
            assert_eq!(ids, expected);
            for w in &written {
                let first = usize::try_from(w.id.index() * 256).unwrap();
                let want = &entries[first..first + usize::from(w.id.width())];
                assert_eq!(w.bytes, encode_bundle(want).unwrap());
            }
            size += step;
            let resumed = BundleBuilder::resume(b.size(), b.partial_bundle().map(|w| w.bytes));
            assert_eq!(resumed.unwrap(), b);
        }
    }

    #[test]
    fn bundle_resume_checks_presence_of_partial() {
        assert_eq!(
            BundleBuilder::resume(256, Some(b"\x00\x01a")),
            Err(TileError::UnexpectedBundle { size: 256 })
        );
        assert_eq!(
            BundleBuilder::resume::<&[u8]>(3, None),
            Err(TileError::MissingPartialBundle {
                bundle: BundleId::new(0, 3).unwrap(),
                size: 3
            })
        );
        assert!(BundleBuilder::resume(1, Some(b"\x00\x01a")).is_ok());
    }

    #[test]
    fn oversized_entry_leaves_bundle_builder_unchanged() {
        let mut b = BundleBuilder::new();
        let entries = [vec![0u8; 3], vec![0u8; MAX_ENTRY_SIZE + 1]];
        assert_eq!(
            b.append(&entries),
            Err(TileError::EntryTooLarge {
                entry: 1,
                len: MAX_ENTRY_SIZE + 1
            })
        );
        assert_eq!(b, BundleBuilder::new());
    }

    #[test]
    fn a_partial_tile_is_superseded_once_the_tree_outgrows_it() {
        // Size 300: level 0 has the full tile 000 and the partial 001.p/44.
        let partial = TileId::new(0, 1, 44).unwrap();
        assert!(!partial.superseded_at(299), "ahead of the tree");
        assert!(!partial.superseded_at(300), "the right edge of 300");
        assert!(partial.superseded_at(301));
        assert!(partial.superseded_at(512));
        assert!(partial.superseded_at(u64::MAX));
        // Full tiles never are, whatever the size.
        let full = TileId::full(0, 1).unwrap();
        assert!(!full.superseded_at(u64::MAX));
        // Level 1 counts level-8 nodes: 001.p/1 needs a tree of 256·257.
        let upper = TileId::new(1, 1, 1).unwrap();
        assert!(!upper.superseded_at(256 * 257 + 255));
        assert!(upper.superseded_at(256 * 258));
        let bundle = BundleId::new(1, 44).unwrap();
        assert!(!bundle.superseded_at(300) && bundle.superseded_at(301));
        assert!(TilePath::Entries(bundle).superseded_at(301));
        assert!(!TilePath::Hash(TileId::full(2, 0).unwrap()).superseded_at(u64::MAX));
    }

    #[test]
    fn no_tile_of_a_tree_is_superseded_at_that_size_and_every_outgrown_one_is() {
        for (old, new) in [
            (1u64, 2u64),
            (255, 256),
            (256, 257),
            (300, 301),
            (65_535, 65_536),
            (70_000, 140_000),
        ] {
            for id in partial_tiles_for_size(old) {
                assert!(!id.superseded_at(old), "{id} at its own size {old}");
                assert_eq!(
                    id.superseded_at(new),
                    !id.exists_at(new),
                    "{id} from {old} to {new}"
                );
            }
            for id in partial_tiles_for_size(new) {
                assert!(!id.superseded_at(new));
            }
            if let Some(b) = partial_bundle_for_size(old) {
                assert!(!b.superseded_at(old));
                assert_eq!(b.superseded_at(new), !b.exists_at(new));
            }
        }
    }
}
