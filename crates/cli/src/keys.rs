//! `cairn key`: generate key pairs and convert public keys, with the file
//! formats and output of sigsum-go's `sigsum-key`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_sigsum::key::{
    self, PublicKeyFile, VKEY_TYPE_LOG, format_public_key_file, parse_public_key_hex, parse_vkey,
    write_openssh_private_key,
};
use cairn_sigsum::{PublicKey, SigningKey};
use cairn_tlog::note::VerifierKey;
use clap::{Args, Subcommand, ValueEnum};

use crate::files::{self, Input, Overwrite};

/// `cairn key` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a key pair (as sigsum-key generate).
    ///
    /// The private key goes to FILE in OpenSSH format (mode 0600), the
    /// public key to FILE.pub in OpenSSH public key format. Existing files
    /// are never overwritten.
    Generate {
        /// Where to store the private key; the public key goes to FILE.pub.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Print the public key of an OpenSSH public key file as 64 hex
    /// characters.
    ToHex(ConvertArgs),
    /// Print the key hash (SHA-256 of the key) of an OpenSSH public key file
    /// as 64 hex characters.
    ToHash(ConvertArgs),
    /// Print an OpenSSH public key as a signed-note verifier key (vkey).
    ///
    /// By default the vkey of a Sigsum log: name = the log's checkpoint
    /// origin, type ed25519. Use -n and -t cosignature/v1 for witness keys.
    ToVkey {
        #[command(flatten)]
        io: ConvertArgs,
        /// Key name (required for cosignature/v1; default for ed25519: the
        /// log origin sigsum.org/v1/tree/<key hash>).
        #[arg(short = 'n', long = "name", value_name = "NAME")]
        name: Option<String>,
        /// Signature type of the vkey.
        #[arg(short = 't', long = "type", value_enum, default_value_t = VkeyType::Ed25519)]
        key_type: VkeyType,
    },
    /// Read a public key as 64 hex characters and print it in OpenSSH public
    /// key format.
    FromHex(ConvertArgs),
    /// Read a vkey and print its key in OpenSSH public key format.
    ///
    /// Ed25519 and cosignature/v1 vkeys are read; vkeys whose key ID does
    /// not match their name, type and key are refused.
    FromVkey(ConvertArgs),
}

/// Input and output of the conversion commands.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Input file (default: standard input).
    #[arg(short = 'k', long = "key", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Output file (default: standard output); replaced atomically.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Vkey signature types.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VkeyType {
    /// Type 0x01: a log's checkpoint signatures.
    #[value(name = "ed25519")]
    Ed25519,
    /// Type 0x04: a witness's cosignatures.
    #[value(name = "cosignature/v1")]
    CosignatureV1,
}

/// Runs a `cairn key` subcommand.
pub fn run(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Generate { output } => generate(&output),
        KeyCommand::ToHex(io) => {
            let key = read_public_key(&io)?;
            files::write_output(io.output.as_deref(), &format!("{}\n", key.to_hex()))
        }
        KeyCommand::ToHash(io) => {
            let key = read_public_key(&io)?;
            files::write_output(io.output.as_deref(), &format!("{}\n", key.key_hash()))
        }
        KeyCommand::ToVkey { io, name, key_type } => {
            let key = read_public_key(&io)?;
            let vkey = to_vkey(&key, name.as_deref(), key_type)?;
            files::write_output(io.output.as_deref(), &format!("{vkey}\n"))
        }
        KeyCommand::FromHex(io) => {
            let text = read_text(&io)?;
            let key = parse_public_key_hex(text.trim())
                .with_context(|| format!("hex public key in {}", input(&io).describe()))?;
            files::write_output(io.output.as_deref(), &format_public_key_file(&key))
        }
        KeyCommand::FromVkey(io) => {
            let text = read_text(&io)?;
            let (_, key) =
                parse_vkey(&text).with_context(|| format!("vkey in {}", input(&io).describe()))?;
            files::write_output(io.output.as_deref(), &format_public_key_file(&key))
        }
    }
}

/// Generates a key pair from the operating system's random source.
fn generate(output: &Path) -> anyhow::Result<()> {
    let public_path = files::with_suffix(output, ".pub");
    for p in [output, public_path.as_path()] {
        if files::exists(p) {
            bail!("{} already exists; refusing to overwrite it", p.display());
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("reading random seed: {e}"))?;
    let check_int =
        getrandom::u32().map_err(|e| anyhow::anyhow!("reading random check-int: {e}"))?;
    let key = SigningKey::from_seed(&seed);
    let private = write_openssh_private_key(&key, check_int);
    files::write_atomic(output, private.as_bytes(), 0o600, Overwrite::Refuse)?;
    let public = format_public_key_file(&key.public_key());
    files::write_atomic(&public_path, public.as_bytes(), 0o644, Overwrite::Refuse)?;
    eprintln!(
        "wrote private key {} and public key {} (key hash {})",
        output.display(),
        public_path.display(),
        key.public_key().key_hash()
    );
    Ok(())
}

fn to_vkey(key: &PublicKey, name: Option<&str>, key_type: VkeyType) -> anyhow::Result<VerifierKey> {
    Ok(match (key_type, name) {
        (VkeyType::Ed25519, None) => key::log_vkey(key)?,
        (VkeyType::Ed25519, Some(n)) => VerifierKey::new(n, VKEY_TYPE_LOG, &key.0)
            .map_err(key::KeyError::from)
            .with_context(|| format!("key name {n:?}"))?,
        (VkeyType::CosignatureV1, Some(n)) => {
            key::witness_vkey(n, key).with_context(|| format!("key name {n:?}"))?
        }
        (VkeyType::CosignatureV1, None) => {
            bail!("a key name (-n) is required for cosignature/v1 vkeys")
        }
    })
}

fn input(io: &ConvertArgs) -> Input {
    Input::or_stdin(io.key.as_deref())
}

fn read_text(io: &ConvertArgs) -> anyhow::Result<String> {
    let input = input(io);
    let bytes = files::read_small(&input)?;
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", input.describe()))
}

/// The single key of an OpenSSH public key file.
pub fn read_public_key(io: &ConvertArgs) -> anyhow::Result<PublicKey> {
    let input = input(io);
    let text = files::read_small(&input)?;
    let file = PublicKeyFile::parse(&text)
        .with_context(|| format!("public key file {}", input.describe()))?;
    match file.entries() {
        [one] => Ok(one.key),
        many => bail!(
            "{} holds {} public keys, expected one",
            input.describe(),
            many.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_vkeys_need_a_name_and_log_vkeys_default_to_the_origin() {
        let key = SigningKey::from_seed(&[0x4c; 32]).public_key();
        assert!(to_vkey(&key, None, VkeyType::CosignatureV1).is_err());
        let v = to_vkey(&key, None, VkeyType::Ed25519).unwrap();
        assert_eq!(v.name(), key::log_origin(&key));
        let w = to_vkey(&key, Some("example.org/w"), VkeyType::CosignatureV1).unwrap();
        assert_eq!(w.name(), "example.org/w");
        assert!(to_vkey(&key, Some("bad name"), VkeyType::CosignatureV1).is_err());
    }
}
