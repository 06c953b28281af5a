//! File input and output: bounded reads, streaming hashes, atomic writes.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_sigsum::Hash;
use sha2::{Digest, Sha256};

/// Largest key, policy or proof file read. Real ones are a few KiB; the
/// cap keeps a mistaken path (a disk image) from filling memory.
pub const MAX_SMALL_FILE_BYTES: u64 = 1 << 20;
/// Largest `--raw-hash` input: 32 bytes, or 64 hex characters plus
/// surrounding whitespace.
const MAX_RAW_HASH_BYTES: u64 = 1024;
/// Read size when hashing data files.
const HASH_BUFFER_BYTES: usize = 64 * 1024;

/// Where input comes from: a file, or standard input for `-`.
#[derive(Clone, Debug)]
pub enum Input {
    /// Standard input.
    Stdin,
    /// A file.
    Path(PathBuf),
}

impl Input {
    /// `-` is standard input; anything else a path.
    pub fn from_arg(arg: &Path) -> Self {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::Path(arg.to_owned())
        }
    }

    /// Standard input if `arg` is `None`.
    pub fn or_stdin(arg: Option<&Path>) -> Self {
        arg.map_or(Input::Stdin, Self::from_arg)
    }

    fn open(&self) -> anyhow::Result<Box<dyn Read>> {
        Ok(match self {
            Input::Stdin => Box::new(io::stdin().lock()),
            Input::Path(p) => {
                Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?)
            }
        })
    }

    /// For messages: the path, or `stdin`.
    pub fn describe(&self) -> String {
        match self {
            Input::Stdin => "stdin".to_owned(),
            Input::Path(p) => p.display().to_string(),
        }
    }
}

/// Reads all of `input`, failing if it is larger than `limit` bytes.
pub fn read_limited(input: &Input, limit: u64) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    input
        .open()?
        .take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {}", input.describe()))?;
    if u64::try_from(buf.len()).map_or(true, |n| n > limit) {
        bail!("{} is larger than {limit} bytes", input.describe());
    }
    Ok(buf)
}

/// Reads a small file (key, policy, proof).
pub fn read_small(input: &Input) -> anyhow::Result<Vec<u8>> {
    read_limited(input, MAX_SMALL_FILE_BYTES)
}

/// The Sigsum message for a data file: `SHA-256(data)`, streamed so that
/// files of any size work; or, with `raw_hash`, the message itself, given
/// as exactly 32 bytes or as 64 hex characters with optional surrounding
/// whitespace (as sigsum-go's `--raw-hash` reads it).
pub fn read_message(input: &Input, raw_hash: bool) -> anyhow::Result<Hash> {
    if raw_hash {
        let data = read_limited(input, MAX_RAW_HASH_BYTES)?;
        return parse_raw_hash(&data)
            .with_context(|| format!("--raw-hash input {}", input.describe()));
    }
    let mut reader = input.open()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BUFFER_BYTES];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", input.describe())),
        };
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hasher.finalize().into())
}

fn parse_raw_hash(data: &[u8]) -> anyhow::Result<Hash> {
    if let Ok(raw) = <Hash>::try_from(data) {
        return Ok(raw);
    }
    hex_array(data.trim_ascii()).with_context(|| {
        format!(
            "must be exactly 32 bytes or 64 hex characters, got {} bytes",
            data.len()
        )
    })
}

/// Exactly `2 * N` hex characters of either case, decoded.
pub fn hex_array<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (text.len() == 2 * N && hex::decode_to_slice(text, &mut out).is_ok()).then_some(out)
}

/// Whether to replace an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it.
    Replace,
    /// Fail if the file exists (keys: never destroy a private key).
    Refuse,
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, permissions `mode`, fsync, rename, fsync of the directory.
/// Readers see the old file or the new one, never a part.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    overwrite: Overwrite,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let what = || format!("writing {}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).with_context(what)?;
    tmp.write_all(bytes).with_context(what)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .with_context(what)?;
    tmp.as_file().sync_all().with_context(what)?;
    match overwrite {
        Overwrite::Replace => {
            tmp.persist(path).map_err(|e| e.error).with_context(what)?;
        }
        Overwrite::Refuse => {
            tmp.persist_noclobber(path).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "{} already exists; refusing to overwrite it",
                        path.display()
                    )
                } else {
                    anyhow::Error::new(e.error).context(what())
                }
            })?;
        }
    }
    // The rename is durable only once the directory is synced.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))?;
    Ok(())
}

/// Writes `text` to `output`, or to standard output if `None`; files get
/// mode 0644 and are replaced atomically.
pub fn write_output(output: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(p) => write_atomic(p, text.as_bytes(), 0o644, Overwrite::Replace),
        None => {
            let mut out = io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("writing to stdout")
        }
    }
}

/// `path` with `suffix` appended to its file name (`a/b.txt` → `a/b.txt.proof`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether `path` exists (a broken symlink counts, so it is not silently
/// replaced).
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::proof::message_from_data;

    #[test]
    fn streamed_message_equals_sigsum_message_from_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        // Larger than one read buffer, so the streaming path is exercised.
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&p, &data).unwrap();
        assert_eq!(
            read_message(&Input::Path(p), false).unwrap(),
            message_from_data(&data)
        );
    }

    #[test]
    fn raw_hash_accepts_32_bytes_or_64_hex_characters_only() {
        let raw = [7u8; 32];
        assert_eq!(parse_raw_hash(&raw).unwrap(), raw);
        let hex_line = format!("  {}\n", hex::encode(raw).to_uppercase());
        assert_eq!(parse_raw_hash(hex_line.as_bytes()).unwrap(), raw);
        assert!(parse_raw_hash(&[7u8; 31]).is_err());
        assert!(parse_raw_hash(b"abcd").is_err());
        assert!(parse_raw_hash(format!("{}zz", "a".repeat(62)).as_bytes()).is_err());
    }

    #[test]
    fn atomic_write_replaces_or_refuses_and_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", 0o600, Overwrite::Refuse).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = write_atomic(&p, b"two", 0o600, Overwrite::Refuse).unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three", 0o644, Overwrite::Replace).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn oversized_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        fs::write(&p, vec![0u8; 11]).unwrap();
        assert!(read_limited(&Input::Path(p.clone()), 10).is_err());
        assert_eq!(read_limited(&Input::Path(p), 11).unwrap().len(), 11);
    }

    #[test]
    fn suffix_is_appended_to_the_whole_file_name() {
        assert_eq!(
            with_suffix(Path::new("a/b.txt"), ".proof"),
            PathBuf::from("a/b.txt.proof")
        );
    }
}
