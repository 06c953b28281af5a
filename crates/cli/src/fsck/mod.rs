//! `cairn fsck`: checks a C2SP tlog-tiles log end to end, Cairn's or any
//! other (Tessera, Sunlight, ...), from a directory or an http(s) URL.
//!
//! The checks, in order (the pure ones are in [`check`]):
//!
//! 1. The `checkpoint` is a signed note that verifies under `--key`: a
//!    vkey (type 0x01 Ed25519, or 0x04 `cosignature/v1` for a witness or
//!    mirror), a Sigsum log's public key (OpenSSH or hex), or a Sigsum
//!    policy (then the log signature is by one of its logs and the
//!    cosignatures satisfy its quorum; an invalid cosignature by a policy
//!    witness is reported, not ignored).
//! 2. The right-edge partial tiles fold to the checkpoint's root. If they
//!    do not, the edge tiles are checked against the objects below them to
//!    name the corrupt one; if none is, the checkpoint is of another tree.
//! 3. Top-down, level by level: every full tile's RFC 6962 root is the hash
//!    the level above holds for it.
//! 4. Every entry bundle's leaf hashes are the hashes of its level-0 tile
//!    (`--entries static-ct` reads static-ct-api data tiles instead,
//!    `--no-entries` skips this). In a Sigsum log (origin
//!    `sigsum.org/v1/tree/…`) every entry must be a 128-byte leaf, and with
//!    `--submitter-key` the signature of every leaf naming one of those
//!    keys must verify. A leaf holds only its submitter's key hash, so
//!    leaves of other submitters cannot be checked and are counted apart.
//!
//! Trust flows down from the checkpoint, so a mismatch names the lower
//! object: a full tile that does not hash to its parent's hash, a bundle
//! that does not hash to its tile. fsck stops at the first finding.
//!
//! Memory: the hashes of tile level 1 and above are kept while the level
//! below is checked, 1/8 byte per leaf of the tree (125 MB for 10^9
//! leaves); level-0 tiles and bundles are streamed.
//!
//! Exit status: 0 the log is consistent; 1 it is not (a bad signature, a
//! mismatch, a missing, malformed or oversized object); 2 it could not be
//! checked (usage, unreadable keys, IO errors, timeouts, server errors).

mod check;
mod source;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_sigsum::policy::Policy;
use cairn_tlog::note::{MAX_NOTE_BYTES, VerifierKey};
use cairn_tlog::proof::NodeId;
use cairn_tlog::tile::{
    BundleId, FULL_TILE_BYTES, TILE_HEIGHT, TILE_LEVELS, TileId, node_tile, partial_tiles_for_size,
};
use cairn_tlog::{EMPTY_ROOT, Hash};
use clap::{Args, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use self::check::{
    EntryFormat, EntryRules, Finding, Problem, Trust, VerifiedCheckpoint, Verifier, check_bundle,
    check_edge_tile_children, check_edge_tile_entries, check_full_tile, decode_tile, edge_root,
    verify_checkpoint,
};
use self::source::{Fetched, Source};
use crate::files::{self, Input};
use crate::key_files::{read_log_key, read_public_key_file};

/// Exit status of a consistent log.
pub const EXIT_OK: u8 = 0;
/// Exit status of a log that fails a check.
pub const EXIT_INCONSISTENT: u8 = 1;
/// Exit status when the log could not be checked.
pub const EXIT_ERROR: u8 = 2;

/// Default `--max-object-bytes`: above the largest C2SP entry bundle
/// (256 entries of 2 + 65535 bytes), with room for static-ct data tiles.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 64 << 20;

/// The entries behind the level-0 tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EntriesArg {
    /// C2SP tlog-tiles entry bundles, tile/entries/N (Cairn, Sigsum, Tessera).
    Bundles,
    /// static-ct-api data tiles, tile/data/N (Sunlight and other CT logs).
    StaticCt,
    /// Do not check entries (logs that publish none).
    None,
}

/// `cairn fsck` arguments.
#[derive(Args, Debug)]
pub struct FsckArgs {
    /// The log: a directory, or the http(s) URL under which it serves
    /// `checkpoint` and `tile/` (e.g. a Cairn log's `http://HOST/dev/`).
    #[arg(value_name = "URL_OR_DIR")]
    log: String,
    /// Whose signature the checkpoint needs: a vkey (NAME+ID+BASE64, type
    /// Ed25519 or cosignature/v1), or a file holding a vkey, a Sigsum log
    /// public key (OpenSSH or 64 hex characters) or a Sigsum policy.
    #[arg(short = 'k', long = "key", value_name = "VKEY_OR_FILE")]
    key: String,
    /// Read the checkpoint from FILE instead of the log's `checkpoint`.
    #[arg(long = "checkpoint", value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Where the entries are: entry bundles, static-ct data tiles, or none.
    #[arg(long = "entries", value_enum, default_value_t = EntriesArg::Bundles)]
    entries: EntriesArg,
    /// Same as --entries none.
    #[arg(long = "no-entries", conflicts_with = "entries")]
    no_entries: bool,
    /// Submitter public keys (OpenSSH, one or more per file; repeatable):
    /// Sigsum leaves naming one of them must carry its valid signature.
    #[arg(long = "submitter-key", value_name = "FILE")]
    submitter_keys: Vec<PathBuf>,
    /// Objects fetched in parallel.
    #[arg(
        short = 'j',
        long = "jobs",
        default_value_t = 16,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    jobs: u16,
    /// Longest one read may take, retries included, in seconds.
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Largest entry bundle or data tile read (hash tiles are at most 8 KiB,
    /// checkpoints 1 MiB).
    #[arg(long = "max-object-bytes", value_name = "BYTES", default_value_t = DEFAULT_MAX_OBJECT_BYTES)]
    max_object_bytes: u64,
    /// Print a JSON summary on standard output (also on failure).
    #[arg(long = "json")]
    json: bool,
}

/// Why a check did not pass.
#[derive(Debug)]
enum Failure {
    /// The log is inconsistent.
    Log(Finding),
    /// The log could not be read.
    Io(anyhow::Error),
}

impl From<Finding> for Failure {
    fn from(f: Finding) -> Self {
        Failure::Log(f)
    }
}

/// Counts of what was checked, shared by the parallel checks.
#[derive(Debug, Default)]
struct Stats {
    tiles: AtomicU64,
    bundles: AtomicU64,
    entries: AtomicU64,
    signatures: AtomicU64,
    /// Partial tiles and bundles the log no longer serves (C2SP lets a log
    /// delete them once the full one exists), read as prefixes of the full.
    outgrown: AtomicU64,
}

impl FsckArgs {
    /// Parses `cairn fsck`'s arguments (without the leading `fsck`), for
    /// callers that run it in process.
    pub fn parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            args: FsckArgs,
        }
        let argv = std::iter::once(std::ffi::OsString::from("fsck"))
            .chain(args.into_iter().map(Into::into));
        <Command as clap::Parser>::try_parse_from(argv).map(|c| c.args)
    }
}

/// What one run of fsck found, as `cairn fsck` reports it.
#[derive(Debug)]
pub struct Outcome {
    /// The exit status: [`EXIT_OK`], [`EXIT_INCONSISTENT`] or [`EXIT_ERROR`].
    pub code: u8,
    /// The summary `--json` prints.
    pub summary: serde_json::Value,
    /// The line printed: the summary of a consistent log, else the
    /// finding (path first) or the error.
    pub message: String,
}

/// Checks the log `args` names. Reads still in flight when a finding ends
/// the check are left to the runtime.
pub async fn check(args: &FsckArgs, show_bar: bool) -> Outcome {
    let mut report = Report::default();
    let result = fsck(args, show_bar, &mut report).await;
    let code = match &result {
        Ok(()) => EXIT_OK,
        Err(Failure::Log(_)) => EXIT_INCONSISTENT,
        Err(Failure::Io(_)) => EXIT_ERROR,
    };
    let message = match &result {
        Ok(()) => report.text(),
        Err(Failure::Log(f)) => f.to_string(),
        Err(Failure::Io(e)) => format!("error: {e:#}"),
    };
    Outcome {
        code,
        summary: report.json(&args.log, &result),
        message,
    }
}

/// Runs `cairn fsck` and returns its exit status.
pub fn run(args: &FsckArgs, verbose: u8) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn fsck: error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let show_bar = std::io::stderr().is_terminal() && verbose == 0;
    let outcome = runtime.block_on(check(args, show_bar));
    if args.json {
        println!("{}", outcome.summary);
    }
    if outcome.code == EXIT_OK {
        if !args.json {
            println!("{}", outcome.message);
        }
    } else {
        eprintln!("cairn fsck: {}", outcome.message);
    }
    // Spawned reads still in flight after a finding are abandoned.
    runtime.shutdown_background();
    ExitCode::from(outcome.code)
}

/// What fsck learned, for the output.
#[derive(Debug, Default)]
struct Report {
    checkpoint: Option<VerifiedCheckpoint>,
    stats: Arc<Stats>,
}

impl Report {
    fn text(&self) -> String {
        let s = &self.stats;
        let Some(cp) = &self.checkpoint else {
            return "no checkpoint".to_owned();
        };
        let mut out = format!(
            "{}: size {}, root {}: OK, {} tiles, {} bundles, {} entries checked",
            cp.origin,
            cp.size,
            hex::encode(cp.root),
            s.tiles.load(Ordering::Relaxed),
            s.bundles.load(Ordering::Relaxed),
            s.entries.load(Ordering::Relaxed),
        );
        let signatures = s.signatures.load(Ordering::Relaxed);
        if signatures > 0 {
            out.push_str(&format!(", {signatures} leaf signatures verified"));
        }
        let outgrown = s.outgrown.load(Ordering::Relaxed);
        if outgrown > 0 {
            out.push_str(&format!(
                ", {outgrown} deleted partial tiles or bundles read from full ones"
            ));
        }
        out.push_str(&format!("; signed by {}", cp.signers.join(", ")));
        out
    }

    fn json(&self, log: &str, result: &Result<(), Failure>) -> serde_json::Value {
        let s = &self.stats;
        let (verdict, error) = match result {
            Ok(()) => ("ok", serde_json::Value::Null),
            Err(Failure::Log(f)) => (
                "inconsistent",
                serde_json::json!({"path": f.path, "message": f.problem.to_string()}),
            ),
            Err(Failure::Io(e)) => (
                "error",
                serde_json::json!({"path": null, "message": format!("{e:#}")}),
            ),
        };
        let cp = self.checkpoint.as_ref();
        serde_json::json!({
            "log": log,
            "result": verdict,
            "origin": cp.map(|c| c.origin.clone()),
            "size": cp.map(|c| c.size),
            "root": cp.map(|c| hex::encode(c.root)),
            "signers": cp.map(|c| c.signers.clone()),
            "tiles_checked": s.tiles.load(Ordering::Relaxed),
            "bundles_checked": s.bundles.load(Ordering::Relaxed),
            "entries_checked": s.entries.load(Ordering::Relaxed),
            "leaf_signatures_verified": s.signatures.load(Ordering::Relaxed),
            "partials_read_from_full": s.outgrown.load(Ordering::Relaxed),
            "error": error,
        })
    }
}

async fn fsck(args: &FsckArgs, show_bar: bool, report: &mut Report) -> Result<(), Failure> {
    let trust = read_trust(&args.key).map_err(Failure::Io)?;
    let mut rules = EntryRules::default();
    for path in &args.submitter_keys {
        let keys = read_public_key_file(&Input::Path(path.clone())).map_err(Failure::Io)?;
        for key in keys.keys() {
            rules.submitters.insert(key.key_hash(), *key);
        }
    }
    let format = match (args.no_entries, args.entries) {
        (true, _) | (_, EntriesArg::None) => None,
        (false, EntriesArg::Bundles) => Some(EntryFormat::Bundles),
        (false, EntriesArg::StaticCt) => Some(EntryFormat::StaticCt),
    };
    let source = Source::open(&args.log, Duration::from_secs(args.timeout)).map_err(Failure::Io)?;
    let (cp_path, cp_bytes) = match &args.checkpoint {
        Some(path) => (
            path.display().to_string(),
            Bytes::from(
                files::read_limited(&Input::Path(path.clone()), MAX_NOTE_BYTES as u64)
                    .map_err(Failure::Io)?,
            ),
        ),
        None => {
            let bytes = fetch(&source, "checkpoint", MAX_NOTE_BYTES as u64).await?;
            ("checkpoint".to_owned(), bytes)
        }
    };
    let cp = verify_checkpoint(&cp_path, &cp_bytes, &trust)?;
    rules.sigsum = cp.sigsum;
    report.checkpoint = Some(cp.clone());
    let bar = progress_bar(show_bar, object_count(cp.size, format.is_some()));
    let checker = Arc::new(Checker {
        source,
        format,
        rules,
        max_object: args.max_object_bytes,
        stats: Arc::clone(&report.stats),
        bar: bar.clone(),
    });
    let result = checker
        .check_tree(&cp, &cp_path, usize::from(args.jobs))
        .await;
    bar.finish_and_clear();
    result
}

/// The checkpoint's trusted keys from `--key`.
fn read_trust(arg: &str) -> anyhow::Result<Trust> {
    let path = Path::new(arg);
    if !path.exists() {
        let vkey = VerifierKey::parse(arg.trim())
            .with_context(|| format!("--key {arg:?} is neither a file nor a vkey"))?;
        return trust_from_vkey(&vkey);
    }
    let input = Input::Path(path.to_owned());
    let text = files::read_small(&input)?;
    let trimmed = std::str::from_utf8(&text).map(str::trim).unwrap_or("");
    if !trimmed.contains('\n')
        && let Ok(vkey) = VerifierKey::parse(trimmed)
    {
        return trust_from_vkey(&vkey);
    }
    if let Ok(key) = read_log_key(&input) {
        let verifier = Verifier::sigsum_log(&key).context("log key")?;
        return Ok(Trust::Keys(vec![verifier]));
    }
    let policy = Policy::parse(&text).with_context(|| {
        format!("{arg} is not a vkey or a log public key, and not a valid policy")
    })?;
    Ok(Trust::Policy(Box::new(policy)))
}

fn trust_from_vkey(vkey: &VerifierKey) -> anyhow::Result<Trust> {
    if !check::supported_vkey_type(vkey.sig_type()) {
        bail!(
            "vkey {} has signature type 0x{:02x}; fsck verifies Ed25519 (0x01) and cosignature/v1 (0x04) keys",
            vkey.name(),
            vkey.sig_type()
        );
    }
    Ok(Trust::Keys(vec![
        Verifier::from_vkey(vkey).context("vkey")?,
    ]))
}

/// Reads an object the tree needs: a missing or oversized one is a finding.
async fn fetch(source: &Source, path: &str, limit: u64) -> Result<Bytes, Failure> {
    found(
        path,
        source.get(path, limit).await.map_err(Failure::Io)?,
        limit,
    )
}

/// The bytes of an object read with `limit`, or the finding that it is
/// missing or too large.
fn found(path: &str, fetched: Fetched, limit: u64) -> Result<Bytes, Failure> {
    match fetched {
        Fetched::Found(bytes) => Ok(bytes),
        Fetched::Missing => Err(Finding::new(path, Problem::Missing).into()),
        Fetched::TooLarge => Err(Finding::new(path, Problem::TooLarge { limit }).into()),
    }
}

/// Hashes at tile level `level` of a tree of `size` leaves.
fn level_count(size: u64, level: u8) -> u64 {
    size.checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// Objects fsck reads for a tree of `size` leaves: every hash tile, and
/// the bundles if entries are checked.
fn object_count(size: u64, entries: bool) -> u64 {
    let tiles: u64 = (0..TILE_LEVELS)
        .map(|l| level_count(size, l).div_ceil(256))
        .sum();
    tiles + if entries { size.div_ceil(256) } else { 0 }
}

fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    // The template is a constant; a bad one would show on any terminal run,
    // and the bar then keeps its default look.
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} objects")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The IO side of the checks: reads objects and hands them to [`check`].
#[derive(Debug)]
struct Checker {
    source: Source,
    format: Option<EntryFormat>,
    rules: EntryRules,
    max_object: u64,
    stats: Arc<Stats>,
    bar: ProgressBar,
}

impl Checker {
    async fn fetch_tile(&self, id: TileId) -> Result<Bytes, Failure> {
        let full = (!id.is_full())
            .then(|| TileId::full(id.level(), id.index()))
            .transpose()
            .map_err(io)?;
        self.read_or_prefix(id.path(), full, FULL_TILE_BYTES as u64, |full, bytes| {
            decode_tile(full, bytes)?;
            Ok(usize::from(id.width()) * 32)
        })
        .await
    }

    async fn fetch_bundle(&self, id: BundleId, format: EntryFormat) -> Result<Bytes, Failure> {
        // Static-ct data tiles have no length prefix to cut them by.
        let full = (!id.is_full() && format == EntryFormat::Bundles)
            .then(|| BundleId::full(id.index()))
            .transpose()
            .map_err(io)?;
        self.read_or_prefix(format.path(id), full, self.max_object, |full, bytes| {
            let entries = full
                .decode(bytes)
                .map_err(|e| Finding::new(format.path(full), Problem::Malformed(e.to_string())))?;
            Ok(entries
                .iter()
                .take(usize::from(id.width()))
                .map(|e| 2 + e.len())
                .sum())
        })
        .await
    }

    /// Reads the object at `path`. A partial one the log has deleted (C2SP
    /// lets it once the full one exists) is read, where `full` names the
    /// full one, as its prefix of the length `prefix_len` finds in it.
    async fn read_or_prefix<Id: std::fmt::Display>(
        &self,
        path: String,
        full: Option<Id>,
        limit: u64,
        prefix_len: impl FnOnce(Id, &Bytes) -> Result<usize, Failure>,
    ) -> Result<Bytes, Failure> {
        let fetched = self.source.get(&path, limit).await.map_err(Failure::Io)?;
        let bytes = match (fetched, full) {
            (Fetched::Missing, Some(full)) => {
                let full_path = full.to_string();
                let Fetched::Found(bytes) = self
                    .source
                    .get(&full_path, limit)
                    .await
                    .map_err(Failure::Io)?
                else {
                    return Err(Finding::new(path, Problem::Missing).into());
                };
                let len = prefix_len(full, &bytes)?;
                self.stats.outgrown.fetch_add(1, Ordering::Relaxed);
                bytes.slice(..len)
            }
            (fetched, _) => found(&path, fetched, limit)?,
        };
        self.bar.inc(1);
        Ok(bytes)
    }

    /// Steps 2 to 4 of the module docs for the verified checkpoint `cp`.
    async fn check_tree(
        self: &Arc<Self>,
        cp: &VerifiedCheckpoint,
        cp_path: &str,
        jobs: usize,
    ) -> Result<(), Failure> {
        let size = cp.size;
        if size == 0 {
            if cp.root != EMPTY_ROOT {
                return Err(Finding::new(
                    cp_path,
                    Problem::RootMismatch {
                        size,
                        signed: cp.root,
                        tiles: EMPTY_ROOT,
                    },
                )
                .into());
            }
            return Ok(());
        }
        let edge_ids: Vec<TileId> = partial_tiles_for_size(size).collect();
        let fetched: Vec<Bytes> = futures::stream::iter(edge_ids.iter().copied())
            .map(|id| self.fetch_tile(id))
            .buffered(jobs)
            .try_collect()
            .await?;
        let mut edge = BTreeMap::new();
        for (id, bytes) in edge_ids.iter().zip(fetched) {
            decode_tile(*id, &bytes)?;
            edge.insert(*id, bytes.to_vec());
        }
        let root = edge_root(size, &edge)?;
        if root != cp.root {
            return Err(self.blame_edge(cp, cp_path, root, &edge, jobs).await);
        }
        self.stats
            .tiles
            .fetch_add(edge.len() as u64, Ordering::Relaxed);

        // The highest level has fewer than 256 hashes (below 2^56 leaves),
        // so its only tile is on the edge.
        let Some((&top, top_bytes)) = edge.iter().next_back() else {
            return Ok(());
        };
        if level_count(size, top.level()) >= 256 {
            return Err(Failure::Io(anyhow::anyhow!(
                "trees of 2^56 leaves or more are not supported"
            )));
        }
        let mut above = decode_tile(top, top_bytes)?;
        for level in (1..=top.level()).rev() {
            let child_level = level - 1;
            let edge_child = edge.keys().find(|t| t.level() == child_level).copied();
            if child_level > 0 {
                let mut next = Vec::new();
                {
                    let mut results = self.full_tiles(child_level, &above, size, jobs, false);
                    while let Some(hashes) = results.try_next().await? {
                        next.extend(hashes);
                    }
                }
                if let Some(id) = edge_child {
                    next.extend(decode_tile(id, &edge[&id])?);
                }
                above = next;
            } else {
                let mut results = self.full_tiles(0, &above, size, jobs, true);
                while results.try_next().await?.is_some() {}
            }
        }
        if let (Some(format), Some(&id)) = (self.format, edge.keys().next())
            && id.level() == 0
        {
            let hashes = decode_tile(id, &edge[&id])?;
            self.check_entries(
                BundleId::new(id.index(), id.width()).map_err(io)?,
                format,
                &hashes,
            )
            .await?;
        }
        Ok(())
    }

    /// Checks the full tiles of `level` against `above`, the verified
    /// hashes of the level above (one per full tile), in order, `jobs` at a
    /// time; at level 0 also their bundles. Yields each tile's hashes.
    fn full_tiles<'a>(
        self: &'a Arc<Self>,
        level: u8,
        above: &'a [Hash],
        size: u64,
        jobs: usize,
        with_entries: bool,
    ) -> impl futures::Stream<Item = Result<Vec<Hash>, Failure>> + 'a {
        futures::stream::iter(above.iter().enumerate())
            .map(move |(k, expected)| {
                let this = Arc::clone(self);
                let expected = *expected;
                let k = k as u64;
                tokio::spawn(async move {
                    let id = TileId::full(level, k).map_err(io)?;
                    let parent = node_tile(
                        NodeId {
                            level: (level + 1) * TILE_HEIGHT,
                            index: k,
                        },
                        size,
                    )
                    .map_err(io)?
                    .tile();
                    let position = u16::try_from(k % 256).unwrap_or(0);
                    let bytes = this.fetch_tile(id).await?;
                    let hashes = check_full_tile(id, &bytes, parent, position, &expected)?;
                    this.stats.tiles.fetch_add(1, Ordering::Relaxed);
                    if with_entries && let Some(format) = this.format {
                        this.check_entries(BundleId::full(k).map_err(io)?, format, &hashes)
                            .await?;
                    }
                    Ok(hashes)
                })
            })
            .buffered(jobs)
            .map(|joined| joined.map_err(|e| Failure::Io(e.into()))?)
    }

    async fn check_entries(
        &self,
        id: BundleId,
        format: EntryFormat,
        tile_hashes: &[Hash],
    ) -> Result<(), Failure> {
        let bytes = self.fetch_bundle(id, format).await?;
        let stats = check_bundle(id, format, &bytes, tile_hashes, &self.rules)?;
        self.stats.bundles.fetch_add(1, Ordering::Relaxed);
        self.stats
            .entries
            .fetch_add(stats.entries, Ordering::Relaxed);
        self.stats
            .signatures
            .fetch_add(stats.signatures, Ordering::Relaxed);
        Ok(())
    }

    /// The edge folds to `found`, not to the checkpoint's root: names the
    /// edge tile that disagrees with the objects below it (bottom-up, so
    /// under a single corruption the culprit), else the checkpoint.
    async fn blame_edge(
        self: &Arc<Self>,
        cp: &VerifiedCheckpoint,
        cp_path: &str,
        found: Hash,
        edge: &BTreeMap<TileId, Vec<u8>>,
        jobs: usize,
    ) -> Failure {
        for (&id, bytes) in edge {
            let blamed = async {
                let hashes = decode_tile(id, bytes)?;
                if id.level() == 0 {
                    if let Some(format) = self.format {
                        let bundle = BundleId::new(id.index(), id.width()).map_err(io)?;
                        let entries = self.fetch_bundle(bundle, format).await?;
                        check_edge_tile_entries(bundle, format, &entries, &hashes, &self.rules)?;
                    }
                    return Ok(());
                }
                let children: Vec<TileId> = (0..u64::from(id.width()))
                    .map(|j| TileId::full(id.level() - 1, id.index() * 256 + j))
                    .collect::<Result<_, _>>()
                    .map_err(io)?;
                let bytes: Vec<(TileId, Vec<u8>)> =
                    futures::stream::iter(children)
                        .map(|c| async move {
                            Ok::<_, Failure>((c, self.fetch_tile(c).await?.to_vec()))
                        })
                        .buffered(jobs)
                        .try_collect()
                        .await?;
                check_edge_tile_children(id, &hashes, &bytes)?;
                Ok::<(), Failure>(())
            }
            .await;
            if let Err(failure) = blamed {
                return failure;
            }
        }
        Finding::new(
            cp_path,
            Problem::RootMismatch {
                size: cp.size,
                signed: cp.root,
                tiles: found,
            },
        )
        .into()
    }
}

/// An impossible tile or bundle id: a bug, reported as an error.
fn io(e: impl std::fmt::Display) -> Failure {
    Failure::Io(anyhow::anyhow!("internal error: {e}"))
}
