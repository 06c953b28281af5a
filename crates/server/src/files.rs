//! Key files and atomic writes shared by the `cairnd` roles.
//!
//! Keys are the files `sigsum-key generate` writes: an unencrypted OpenSSH
//! private key (mode 0600) and `<path>.pub`, so Sigsum's own tools and
//! Cairn's read each other's keys.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_sigsum::SigningKey;
use cairn_sigsum::key;

/// Reads an OpenSSH (or legacy hex seed) private key file.
pub fn read_private_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    key::parse_private_key_file(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads the key at `path`, or generates one there (see [`generate_key`]).
pub fn load_or_generate_key(path: &Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        return read_private_key(path);
    }
    generate_key(path)
}

/// Generates a key and writes it to `path` (mode 0600) and `<path>.pub`.
/// Refuses to replace an existing file: a key is an identity, and losing
/// one silently is worse than failing to start.
pub fn generate_key(path: &Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        bail!(
            "{} already exists: refusing to replace a key",
            path.display()
        );
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let mut check = [0u8; 4];
    getrandom::fill(&mut check).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let key = SigningKey::from_seed(&seed);
    let private = key::write_openssh_private_key(&key, u32::from_be_bytes(check));
    write_atomic(path, private.as_bytes(), 0o600)?;
    write_atomic(
        &public_key_path(path),
        key::format_public_key_file(&key.public_key()).as_bytes(),
        0o644,
    )?;
    Ok(key)
}

/// `<path>.pub`, where [`generate_key`] writes the public key.
pub fn public_key_path(path: &Path) -> PathBuf {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    PathBuf::from(pub_path)
}

/// Writes a file so that readers see either the old or the new contents:
/// temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Largest configuration, policy or key file the roles read, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a configuration-sized file, refusing one above [`MAX_FILE_BYTES`].
pub fn read_limited(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > MAX_FILE_BYTES {
        bail!(
            "{} is {len} bytes; the limit is {MAX_FILE_BYTES}",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Checks (without IO) that a `[[shard]]` table names exactly one of
/// `tiles` and `object_store`.
pub fn check_store_choice(
    shard: &str,
    tiles: Option<&Path>,
    object_store: Option<&Path>,
) -> anyhow::Result<()> {
    match (tiles, object_store) {
        (Some(_), None) | (None, Some(_)) => Ok(()),
        (Some(_), Some(_)) => bail!("shard {shard:?}: give either tiles or object_store, not both"),
        (None, None) => {
            bail!("shard {shard:?}: missing tiles (a local directory) or object_store (a file)")
        }
    }
}

/// What a role does with a shard's objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only (frontend, collector): a tile URL (`[http]`) will do.
    Reads,
    /// Writes tiles and the checkpoint (sequencer): a writable store.
    Writes,
}

/// Reads a `[[shard]]` table's `object_store` file (relative to `base`), if
/// it names one, refusing a read-only `[http]` store for a role that
/// writes.
pub fn read_shard_store(
    base: &Path,
    object_store: Option<&Path>,
    access: Access,
) -> anyhow::Result<Option<cairn_storage::ObjectStoreConfig>> {
    let Some(file) = object_store else {
        return Ok(None);
    };
    let path = base.join(file);
    let config = crate::dev::read_object_store(&path)?;
    if access == Access::Writes {
        crate::dev::require_writable(&config, &path)?;
    }
    Ok(Some(config))
}

/// Where a role's `[[shard]]` table keeps the shard's objects: `tiles`, a
/// local directory (relative to the configuration file), or `object_store`,
/// a file holding an [`cairn_storage::ObjectStoreConfig`] (`[local]`,
/// `[s3]`, or for a role that only reads `[http]`, as `cairnd dev
/// --object-store` reads it). Exactly one of the two.
/// Its object store calls are recorded in `metrics` under the shard's name.
pub fn shard_tile_store(
    base: &Path,
    shard: &str,
    tiles: Option<&Path>,
    object_store: Option<&Path>,
    access: Access,
    metrics: &cairn_storage::StoreMetrics,
) -> anyhow::Result<cairn_storage::TileStore> {
    check_store_choice(shard, tiles, object_store)?;
    let options = cairn_storage::TileStoreOptions {
        metrics: metrics.for_shard(shard),
        ..cairn_storage::TileStoreOptions::default()
    };
    match (tiles, read_shard_store(base, object_store, access)?) {
        (_, Some(config)) => Ok(cairn_storage::TileStore::open(&config, shard, options)?),
        (Some(dir), None) => Ok(cairn_storage::TileStore::local_with_options(
            &base.join(dir),
            shard,
            options,
        )?),
        (None, None) => unreachable!("check_store_choice refuses a shard without a store"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_url_serves_roles_that_read_and_is_refused_to_the_one_that_writes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tiles.toml"),
            "[http]\nurl = \"https://t.example/\"\n",
        )
        .unwrap();
        let file = Some(Path::new("tiles.toml"));
        let config = read_shard_store(dir.path(), file, Access::Reads).unwrap();
        assert!(matches!(
            config,
            Some(cairn_storage::ObjectStoreConfig::Http(_))
        ));
        let metrics = cairn_storage::StoreMetrics::new();
        let store =
            shard_tile_store(dir.path(), "dev", None, file, Access::Reads, &metrics).unwrap();
        assert!(store.is_read_only());
        let err =
            shard_tile_store(dir.path(), "dev", None, file, Access::Writes, &metrics).unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("tiles.toml") && message.contains("read-only"),
            "{message}"
        );
    }

    #[test]
    fn a_generated_key_reads_back_and_has_its_public_key_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.key");
        let key = generate_key(&path).unwrap();
        assert_eq!(
            read_private_key(&path).unwrap().public_key(),
            key.public_key()
        );
        let public = std::fs::read(public_key_path(&path)).unwrap();
        assert_eq!(
            key::parse_public_key_file(&public).unwrap()[0].0,
            key.public_key()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn generating_over_an_existing_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.key");
        let key = generate_key(&path).unwrap();
        let err = generate_key(&path).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(
            load_or_generate_key(&path).unwrap().public_key(),
            key.public_key()
        );
    }
}
