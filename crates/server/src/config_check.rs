//! `cairnd config check FILE`: validates any role's configuration file
//! without starting anything or writing anything, and names the bad field.
//!
//! The role is given with `--role` or recognised from the file's keys
//! (`node_id` → sequencer, `key_name` → witness, `certificate` → bastion,
//! `[[shard]]` tables with a `policy` → collector, without → frontend).

use std::path::Path;

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::files::read_limited;

/// The roles whose files `config check` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// `cairnd sequencer`.
    Sequencer,
    /// `cairnd frontend`.
    Frontend,
    /// `cairnd collector`.
    Collector,
    /// `cairnd witness`.
    Witness,
    /// `cairnd bastion`.
    Bastion,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Sequencer => "sequencer",
            Role::Frontend => "frontend",
            Role::Collector => "collector",
            Role::Witness => "witness",
            Role::Bastion => "bastion",
        }
    }
}

/// Guesses the role of a parsed file from its keys.
fn recognise(table: &toml::Table) -> Option<Role> {
    if table.contains_key("node_id") {
        return Some(Role::Sequencer);
    }
    if table.contains_key("key_name") || table.contains_key("log") {
        return Some(Role::Witness);
    }
    if table.contains_key("certificate") || table.contains_key("private_key") {
        return Some(Role::Bastion);
    }
    let shards = table.get("shard")?.as_array()?;
    let with_policy = shards
        .iter()
        .any(|s| s.as_table().is_some_and(|t| t.contains_key("policy")));
    Some(if with_policy {
        Role::Collector
    } else {
        Role::Frontend
    })
}

/// Checks `path` as a `role` file (recognised if `None`); returns the role.
pub fn check(path: &Path, role: Option<Role>) -> anyhow::Result<Role> {
    let bytes = read_limited(path)?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", path.display()))?;
    let role = match role {
        Some(r) => r,
        None => {
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
            match recognise(&table) {
                Some(r) => r,
                None => bail!(
                    "{}: cannot tell which role this file is for; say it with --role",
                    path.display()
                ),
            }
        }
    };
    let base = path.parent().unwrap_or(Path::new(""));
    match role {
        Role::Sequencer => {
            let file = crate::sequencer::SequencerFile::parse(&text)?;
            file.check_files(base)?;
        }
        Role::Frontend => {
            let file = crate::frontend::FrontendFile::parse(&text)?;
            file.check_files(base)?;
        }
        Role::Collector => {
            crate::collector::CollectorFile::parse(&text)?;
        }
        Role::Witness => {
            cairn_witness::WitnessSettings::load(path)?;
        }
        Role::Bastion => {
            cairn_bastion::config::BastionFileConfig::parse(&text)?;
        }
    }
    Ok(role)
}

/// Runs `cairnd config check`.
pub fn run(path: &Path, role: Option<Role>) -> anyhow::Result<()> {
    let role = check(path, role).with_context(|| format!("{}", path.display()))?;
    println!("{}: a valid {} configuration", path.display(), role.name());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_recognised_by_their_keys() {
        let t = |s: &str| -> toml::Table { toml::from_str(s).unwrap() };
        assert_eq!(recognise(&t("node_id = 1")), Some(Role::Sequencer));
        assert_eq!(recognise(&t("key_name = \"x\"")), Some(Role::Witness));
        assert_eq!(recognise(&t("certificate = \"c\"")), Some(Role::Bastion));
        assert_eq!(
            recognise(&t("[[shard]]\npolicy = \"p\"")),
            Some(Role::Collector)
        );
        assert_eq!(
            recognise(&t("[[shard]]\nlog_key = \"k\"")),
            Some(Role::Frontend)
        );
        assert_eq!(recognise(&t("x = 1")), None);
    }

    #[test]
    fn a_misspelt_sequencer_field_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("node.toml");
        std::fs::write(
            &path,
            "node_id = 1\ndata_dir = \"d\"\nheartbeat_ms = 5\n[[shard]]\nname = \"dev\"\n\
             log_key = \"k\"\npolicy = \"p\"\ntiles = \"t\"\n",
        )
        .unwrap();
        let err = format!("{:#}", check(&path, None).unwrap_err());
        assert!(err.contains("heartbeat_ms"), "{err}");
    }

    #[test]
    fn a_sequencer_file_whose_key_is_missing_is_refused_by_shard() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("node.toml");
        std::fs::write(
            &path,
            "node_id = 1\ndata_dir = \"d\"\n[[shard]]\nname = \"dev\"\n\
             log_key = \"missing.key\"\npolicy = \"p\"\ntiles = \"t\"\n",
        )
        .unwrap();
        let err = format!("{:#}", check(&path, None).unwrap_err());
        assert!(err.contains("missing.key"), "{err}");
        assert!(
            !tmp.path().join("d").exists(),
            "a check must not create anything"
        );
    }
}
