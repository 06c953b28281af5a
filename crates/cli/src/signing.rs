//! The `-k` key file of `cairn key sign` and `cairn submit` (and `-a` of
//! submit), read as sigsum-go's `key.ParsePrivateKey` reads it: a file
//! holding one OpenSSH public key line names a key whose private half is in
//! ssh-agent (`SSH_AUTH_SOCK`); anything else is an unencrypted OpenSSH
//! private key or, deprecated, a raw hex seed.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cairn_client::{AgentSigner, Signer};
use cairn_sigsum::key::{parse_openssh_public_key, parse_private_key_file};

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
