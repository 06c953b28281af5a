//! Choosing the trust policy, as sigsum-go's tools do: `-p FILE` or
//! `-P NAME` (mutually exclusive), else the `sigsum-policy="NAME"` option of
//! the submitter key file. A name is looked up as
//! `$SIGSUM_POLICY_DIR/NAME.sigsum-policy` (default directory
//! `/etc/sigsum/policy`), then among the policies built into sigsum-go.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_sigsum::policy::{
    DEFAULT_POLICY_DIR, POLICY_DIR_ENV, Policy, builtin, builtin_names, named_policy_path,
};
use clap::Args;

use crate::files::{self, Input};

/// The policy options shared by `submit` and `verify`.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// Trust policy file: logs, witnesses and the quorum rule.
    #[arg(
        short = 'p',
        long = "policy",
        value_name = "FILE",
        conflicts_with = "named_policy"
    )]
    pub policy: Option<PathBuf>,
    /// Named trust policy: `$SIGSUM_POLICY_DIR/NAME.sigsum-policy`
    /// (default directory /etc/sigsum/policy), else a policy built into
    /// sigsum-go (sigsum-generic-2025-1, sigsum-test-2025-3, ...).
    #[arg(short = 'P', long = "named-policy", value_name = "NAME")]
    pub named_policy: Option<String>,
}

impl PolicyArgs {
    /// The policy to use: `-p`, `-P`, or else `from_key_file` (the name in
    /// the key file's `sigsum-policy` option). Fails if none is given or
    /// the policy cannot be read or parsed.
    pub fn select(&self, from_key_file: Option<&str>) -> anyhow::Result<Policy> {
        self.read(from_key_file)?.parse()
    }

    /// The text of the policy [`select`](Self::select) would parse, not yet
    /// parsed, so callers can tell unreadable inputs from invalid policies.
    pub fn read(&self, from_key_file: Option<&str>) -> anyhow::Result<PolicyInput> {
        if let Some(path) = &self.policy {
            return read_file(path);
        }
        if let Some(name) = self.named_policy.as_deref().or(from_key_file) {
            return read_named(name, &policy_dir());
        }
        bail!(
            "no trust policy: give -p FILE or -P NAME (or a sigsum-policy=\"NAME\" option in the key file)"
        )
    }
}

/// Where a policy's text was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// A file (given with `-p`, or a named policy in the policy directory).
    File(PathBuf),
    /// A policy built into sigsum-go, by name.
    Builtin(&'static str),
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::File(p) => write!(f, "policy {}", p.display()),
            PolicySource::Builtin(name) => write!(f, "builtin policy {name}"),
        }
    }
}

/// A policy's text and where it came from.
#[derive(Clone, Debug)]
pub struct PolicyInput {
    /// Where the text was found.
    pub source: PolicySource,
    /// The policy file's bytes, as read.
    pub text: Vec<u8>,
}

impl PolicyInput {
    /// Parses the text strictly; errors name the source and the line.
    pub fn parse(&self) -> anyhow::Result<Policy> {
        Policy::parse(&self.text).with_context(|| self.source.to_string())
    }
}

/// The directory of named policies: `$SIGSUM_POLICY_DIR`, else
/// `/etc/sigsum/policy`.
pub fn policy_dir() -> PathBuf {
    std::env::var_os(POLICY_DIR_ENV)
        .map_or_else(|| PathBuf::from(DEFAULT_POLICY_DIR), PathBuf::from)
}

fn read_file(path: &Path) -> anyhow::Result<PolicyInput> {
    Ok(PolicyInput {
        text: files::read_small(&Input::Path(path.to_owned()))?,
        source: PolicySource::File(path.to_owned()),
    })
}

/// A named policy's text from `dir`, else a builtin's.
pub fn read_named(name: &str, dir: &Path) -> anyhow::Result<PolicyInput> {
    let path = named_policy_path(dir, name)?;
    if files::exists(&path) {
        return read_file(&path);
    }
    let Some((name, text)) = builtin_names().find(|n| *n == name).zip(builtin(name)) else {
        let builtins: Vec<&str> = builtin_names().collect();
        bail!(
            "no policy named {name:?}: {} does not exist and no builtin policy has that name (builtins: {})",
            path.display(),
            builtins.join(", ")
        );
    };
    Ok(PolicyInput {
        source: PolicySource::Builtin(name),
        text: text.as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policy_is_found_when_the_directory_has_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let name = builtin_names().next().unwrap();
        let p = read_named(name, dir.path()).unwrap().parse().unwrap();
        assert!(!p.logs().is_empty());
    }

    #[test]
    fn policy_file_in_the_directory_wins_over_a_builtin() {
        let dir = tempfile::tempdir().unwrap();
        let name = "sigsum-test-2025-3";
        let text = format!("log {}\nquorum none\n", "cd".repeat(32));
        std::fs::write(dir.path().join(format!("{name}.sigsum-policy")), &text).unwrap();
        let p = read_named(name, dir.path()).unwrap().parse().unwrap();
        assert_eq!(p.logs().len(), 1);
        assert_eq!(p.logs()[0].key().to_hex(), "cd".repeat(32));
    }

    #[test]
    fn unknown_and_invalid_names_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_named("no-such-policy", dir.path()).unwrap_err();
        assert!(e.to_string().contains("no policy named"), "{e}");
        assert!(read_named("../etc", dir.path()).is_err());
    }

    #[test]
    fn explicit_policy_is_required_without_a_key_file_name() {
        let args = PolicyArgs {
            policy: None,
            named_policy: None,
        };
        assert!(args.select(None).is_err());
    }
}
