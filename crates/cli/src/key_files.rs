//! Every key file the CLI reads, read in one place so that each kind of
//! key is read the same way by every command:
//!
//! * [`read_signer`] — a signing key (`-k` of `key sign`, `submit` and
//!   `token create`, `-a` of `submit`), as sigsum-go's `key.ParsePrivateKey`
//!   reads it: a file holding one OpenSSH public key line names a key whose
//!   private half is in ssh-agent (`SSH_AUTH_SOCK`); anything else is an
//!   unencrypted OpenSSH private key or, deprecated, a raw hex seed.
//! * [`read_public_key_file`] — OpenSSH public key lines, one or more, with
//!   their `sigsum-policy` option (submitter keys of `verify`, watched keys
//!   of `monitor`).
//! * [`read_public_key`] — exactly one OpenSSH public key (conversions of
//!   `cairn key`, rate-limit keys of `cairn token`).
//! * [`read_log_key`] — a log's key, which operators publish as 64 hex
//!   characters (as in policy files) or as an OpenSSH public key.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use cairn_client::{AgentSigner, Signer};
use cairn_sigsum::PublicKey;
use cairn_sigsum::key::{
    PublicKeyFile, parse_openssh_public_key, parse_private_key_file, parse_public_key_hex,
};

use crate::files::{self, Input};

/// A signer read from a key file.
#[derive(Debug)]
pub struct KeyFileSigner {
    /// Signs in memory or through ssh-agent.
    pub signer: Arc<dyn Signer>,
    /// The `sigsum-policy="NAME"` option of a public key file, which
    /// selects the policy when no `-p`/`-P` is given (as in sigsum-go).
    pub policy_name: Option<String>,
}

/// Reads the key file at `path`. For a public key file, connects to
/// ssh-agent and checks that it holds the key.
pub fn read_signer(path: &Path) -> anyhow::Result<KeyFileSigner> {
    let text = files::read_small(&Input::Path(path.to_owned()))?;
    let trimmed = text.trim_ascii();
    // One line only: a private key is never a single public key line, and
    // a multi-key file cannot say which key to sign with.
    if !trimmed.contains(&b'\n')
        && let Ok(line) = parse_openssh_public_key(trimmed)
    {
        let signer = AgentSigner::from_env(line.key).with_context(|| {
            format!(
                "{} is a public key, so its private key must be in ssh-agent",
                path.display()
            )
        })?;
        return Ok(KeyFileSigner {
            signer: Arc::new(signer),
            policy_name: line.policy_name,
        });
    }
    let key = parse_private_key_file(&text)
        .with_context(|| format!("private key file {}", path.display()))?;
    Ok(KeyFileSigner {
        signer: Arc::new(key),
        policy_name: None,
    })
}

/// The OpenSSH public key lines of `input` (one or more; `#` comments and
/// empty lines skipped, duplicates refused).
pub fn read_public_key_file(input: &Input) -> anyhow::Result<PublicKeyFile> {
    let text = files::read_small(input)?;
    PublicKeyFile::parse(&text).with_context(|| format!("public key file {}", input.describe()))
}

/// The single key of an OpenSSH public key file.
pub fn read_public_key(input: &Input) -> anyhow::Result<PublicKey> {
    match read_public_key_file(input)?.entries() {
        [one] => Ok(one.key),
        many => bail!(
            "{} holds {} public keys, expected one",
            input.describe(),
            many.len()
        ),
    }
}

/// A log's public key: 64 hex characters (either case, surrounding
/// whitespace ignored), or else a single OpenSSH public key.
pub fn read_log_key(input: &Input) -> anyhow::Result<PublicKey> {
    let text = files::read_small(input)?;
    if let Some(key) = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| parse_public_key_hex(t.trim()).ok())
    {
        return Ok(key);
    }
    read_public_key(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sigsum::SigningKey;
    use cairn_sigsum::key::{format_public_key_file, write_openssh_private_key};

    fn key(seed: u8) -> PublicKey {
        SigningKey::from_seed(&[seed; 32]).public_key()
    }

    fn file(dir: &Path, name: &str, text: &str) -> Input {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Input::Path(path)
    }

    #[test]
    fn one_public_key_is_read_and_several_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let one = file(dir.path(), "one.pub", &format_public_key_file(&key(1)));
        assert_eq!(read_public_key(&one).unwrap(), key(1));
        let two = format!(
            "{}{}",
            format_public_key_file(&key(1)),
            format_public_key_file(&key(2))
        );
        let two = file(dir.path(), "two.pub", &two);
        assert_eq!(read_public_key_file(&two).unwrap().keys().count(), 2);
        let e = read_public_key(&two).unwrap_err().to_string();
        assert!(e.contains("holds 2 public keys"), "{e}");
    }

    #[test]
    fn log_keys_may_be_hex_but_other_public_keys_may_not() {
        let dir = tempfile::tempdir().unwrap();
        let hex = file(
            dir.path(),
            "log.hex",
            &format!(" {}\n", key(3).to_hex().to_uppercase()),
        );
        assert_eq!(read_log_key(&hex).unwrap(), key(3));
        assert!(read_public_key(&hex).is_err());
        let ssh = file(dir.path(), "log.pub", &format_public_key_file(&key(3)));
        assert_eq!(read_log_key(&ssh).unwrap(), key(3));
    }

    #[test]
    fn a_private_key_file_signs_in_memory_and_names_no_policy() {
        let dir = tempfile::tempdir().unwrap();
        let private = SigningKey::from_seed(&[4; 32]);
        let path = dir.path().join("key");
        std::fs::write(&path, write_openssh_private_key(&private, 7)).unwrap();
        let read = read_signer(&path).unwrap();
        assert_eq!(read.signer.public_key(), private.public_key());
        assert_eq!(read.policy_name, None);
        std::fs::write(&path, "not a key").unwrap();
        let e = format!("{:#}", read_signer(&path).unwrap_err());
        assert!(e.contains("private key file"), "{e}");
    }
}
