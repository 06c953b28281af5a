//! What a monitor remembers about one log between passes and restarts, and
//! its file.
//!
//! File `<state dir>/<hex log key hash>.cairn-monitor`, in the Sigsum ASCII
//! format, blocks separated by one empty line:
//!
//! ```text
//! version=1
//! last_success=<POSIX seconds of the last complete pass>
//!
//! size=<n>                         \
//! root_hash=<hex>                   | the verified checkpoint, verbatim as
//! signature=<hex>                   | get-tree-head served it (omitted
//! cosignature=<hex> <time> <hex>*  /  with its block until one exists)
//!
//! range=<hex>*                       the compact range of the checkpoint's
//!                                    leaves, largest subtree first (block
//!                                    omitted when the size is 0)
//! ```
//!
//! The compact range is O(log n) hashes, yet it lets the next pass hash new
//! leaves onto the verified tree and compare with the next signed root.
//! Loading re-verifies the checkpoint's log signature and that the range
//! hashes to its root, so a file from another log, or a damaged one, is
//! refused rather than silently restarting from an empty tree (which would
//! forget what the log signed before and miss a fork across the restart).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use cairn_sigsum::PublicKey;
use cairn_sigsum::ascii::{self, Parser, Writer, split_blocks};
use cairn_sigsum::tree_head::CosignedTreeHead;
use cairn_tlog::compact::CompactRange;

/// Suffix of state file names.
pub const STATE_FILE_SUFFIX: &str = ".cairn-monitor";
/// Largest state file read: a checkpoint with 256 cosignatures and 63
/// range hashes is under 80 KiB.
const MAX_STATE_BYTES: u64 = 256 * 1024;
const VERSION: u64 = 1;

/// Why a state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        error: io::Error,
    },
    /// The file does not parse or does not verify.
    #[error(
        "{path}: invalid monitor state ({reason}); it is not the state of this log or is damaged: move it away to start over from an empty tree"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One log's persisted state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogState {
    /// The newest head that was log-signed, satisfied the quorum, and whose
    /// leaves all hashed to its root. `None` before the first.
    pub checkpoint: Option<CosignedTreeHead>,
    /// The compact range of the checkpoint's leaves (empty without one).
    pub range: CompactRange,
    /// POSIX seconds of the last pass that got every answer it asked for.
    pub last_success: Option<u64>,
}

impl LogState {
    /// The state text (see the module documentation).
    pub(crate) fn to_text(&self) -> String {
        let mut w = Writer::new();
        w.int("version", VERSION)
            .int("last_success", self.last_success.unwrap_or(0));
        if let Some(c) = &self.checkpoint {
            w.empty_line();
            c.write(&mut w);
            if !self.range.hashes().is_empty() {
                w.empty_line();
                for h in self.range.hashes() {
                    w.hex("range", h);
                }
            }
        }
        w.into_string()
    }

    /// Parses a state text and checks it against the log's key.
    pub(crate) fn parse(text: &[u8], log_key: &PublicKey) -> Result<LogState, String> {
        let blocks = split_blocks(text);
        let err = |e: ascii::Error| e.to_string();
        let mut header = blocks
            .first()
            .map(|b| b.parser())
            .unwrap_or(Parser::new(b""));
        let version = header.next_int("version").map_err(err)?;
        if version != VERSION {
            return Err(format!("unsupported version {version}"));
        }
        let last_success = header.next_int("last_success").map_err(err)?;
        header.finish().map_err(err)?;
        let mut state = LogState {
            checkpoint: None,
            range: CompactRange::new(),
            last_success: (last_success > 0).then_some(last_success),
        };
        let Some(head_block) = blocks.get(1) else {
            return Ok(state);
        };
        let mut p = head_block.parser();
        let checkpoint = CosignedTreeHead::parse_from(&mut p).map_err(err)?;
        let th = *checkpoint.tree_head();
        if !checkpoint.signed.verify(log_key) {
            return Err(format!(
                "the checkpoint of size {} is not signed by log {}",
                th.size,
                log_key.key_hash()
            ));
        }
        let hashes = match blocks.get(2) {
            Some(b) => b
                .parser()
                .repeated("range", 1)
                .map_err(err)?
                .iter()
                .map(|l| l.hash(0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?,
            None => Vec::new(),
        };
        if blocks.len() > 3 || (blocks.len() == 3 && hashes.is_empty()) {
            return Err("unexpected extra block".to_owned());
        }
        let range = CompactRange::from_parts(th.size, hashes).map_err(|e| e.to_string())?;
        if range.root() != th.root_hash {
            return Err("the compact range does not hash to the checkpoint's root".to_owned());
        }
        state.checkpoint = Some(checkpoint);
        state.range = range;
        Ok(state)
    }
}

/// Where one log's state lives.
#[derive(Clone, Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub(crate) fn new(dir: &Path, log_key: &PublicKey) -> Self {
        StateFile {
            path: dir.join(format!("{}{STATE_FILE_SUFFIX}", log_key.key_hash())),
        }
    }

    /// The stored state; the default (nothing seen) if there is no file.
    pub(crate) fn load(&self, log_key: &PublicKey) -> Result<LogState, StateError> {
        let io_err = |error| StateError::Io {
            path: self.path.clone(),
            error,
        };
        let text = match File::open(&self.path) {
            Ok(f) => read_limited(f).map_err(io_err)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogState::default()),
            Err(e) => return Err(io_err(e)),
        };
        LogState::parse(&text, log_key).map_err(|reason| StateError::Invalid {
            path: self.path.clone(),
            reason,
        })
    }

    /// Replaces the file atomically: a temporary file in the same directory,
    /// fsync, rename, fsync of the directory. A crash leaves the old state
    /// or the new one, never a mix. The caller holds the state directory's
    /// lock, so the temporary name is not contended.
    pub(crate) fn store(&self, state: &LogState) -> Result<(), StateError> {
        let tmp = self.path.with_extension("tmp");
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(state.to_text().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        })();
        result.map_err(|error| StateError::Io {
            path: self.path.clone(),
            error,
        })
    }
}

fn read_limited(f: File) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    f.take(MAX_STATE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_STATE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_STATE_BYTES} bytes"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::SigningKey;
    use cairn_sigsum::tree_head::{Cosignature, TreeHead};

    fn state_of_size(log: &SigningKey, n: u8) -> LogState {
        let mut range = CompactRange::new();
        for i in 0..n {
            range.append([i; 32]).unwrap();
        }
        let th = TreeHead {
            size: range.size(),
            root_hash: range.root(),
        };
        let w = SigningKey::from_seed(&[0x57; 32]);
        let c = Cosignature::sign(&w, &th, &log.public_key().key_hash(), 1234).unwrap();
        LogState {
            checkpoint: Some(CosignedTreeHead::new(th.sign(log), vec![c]).unwrap()),
            range,
            last_success: Some(1_700_000_000),
        }
    }

    #[test]
    fn state_round_trips_through_its_text_for_every_shape() {
        let log = SigningKey::from_seed(&[0x4c; 32]);
        let fresh = LogState {
            last_success: Some(5),
            ..LogState::default()
        };
        for s in [fresh, state_of_size(&log, 0), state_of_size(&log, 7)] {
            let text = s.to_text();
            assert_eq!(
                LogState::parse(text.as_bytes(), &log.public_key()),
                Ok(s),
                "{text}"
            );
        }
    }

    #[test]
    fn state_of_another_log_or_with_a_wrong_range_is_refused() {
        let log = SigningKey::from_seed(&[0x4c; 32]);
        let other = SigningKey::from_seed(&[0x4d; 32]);
        let text = state_of_size(&log, 5).to_text();
        let e = LogState::parse(text.as_bytes(), &other.public_key()).unwrap_err();
        assert!(e.contains("not signed by log"), "{e}");

        let mut s = state_of_size(&log, 5);
        s.range = CompactRange::from_parts(5, vec![[0; 32], [1; 32]]).unwrap();
        let e = LogState::parse(s.to_text().as_bytes(), &log.public_key()).unwrap_err();
        assert!(e.contains("does not hash"), "{e}");

        let truncated = text.rsplit_once("range=").unwrap().0;
        assert!(LogState::parse(truncated.as_bytes(), &log.public_key()).is_err());
    }

    #[test]
    fn stored_state_is_loaded_and_a_missing_file_is_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = SigningKey::from_seed(&[0x4c; 32]);
        let file = StateFile::new(dir.path(), &log.public_key());
        assert_eq!(file.load(&log.public_key()).unwrap(), LogState::default());
        let s = state_of_size(&log, 3);
        file.store(&s).unwrap();
        assert_eq!(file.load(&log.public_key()).unwrap(), s);
    }
}
