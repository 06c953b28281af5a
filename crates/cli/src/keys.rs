//! `cairn key`: generate key pairs, convert public keys, and make and check
//! plain Ed25519 signatures, with the file formats and output of sigsum-go's
//! `sigsum-key`.
//!
//! `sign` prints the 64-byte signature as 128 lowercase hex characters and a
//! newline; `verify` reads that (surrounding whitespace ignored). With
//! `-n NAMESPACE` the signed bytes are `NAMESPACE || 0x00 || message`, the
//! form of every Sigsum signature (an empty namespace means none, as in
//! sigsum-key); without it, the message itself.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cairn_client::Signer as _;
use cairn_sigsum::crypto::namespaced;
use cairn_sigsum::key::{
    self, VKEY_TYPE_LOG, VKEY_TYPE_WITNESS, format_public_key_file, parse_public_key_hex,
    parse_vkey, write_openssh_private_key,
};
use cairn_sigsum::{PublicKey, Signature, SigningKey};
use cairn_tlog::note::VerifierKey;
use clap::{Args, Subcommand, ValueEnum};

use crate::files::{self, Input, Overwrite};
use crate::key_files::{read_public_key, read_signer};

/// Largest message `sign` and `verify` read from standard input. They are
/// for short messages (a checksum, a token's log key); through ssh-agent
/// the bound is the agent's, about 256 KiB.
const MAX_MESSAGE_BYTES: u64 = 16 << 20;

/// `cairn key` subcommands.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Generate a key pair (as sigsum-key generate).
    ///
    /// The private key goes to FILE in OpenSSH format (mode 0600), the
    /// public key to FILE.pub in OpenSSH public key format. Existing files
    /// are never overwritten (sigsum-key would). Prints nothing; with -v
    /// the file names and the key hash on standard error.
    #[command(visible_alias = "gen")]
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
        /// Key name (required for cosignature/v1; default for ed25519, also
        /// when empty: the log origin sigsum.org/v1/tree/<key hash>).
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
    /// not match their name, type and key are refused. With -v (--verbose)
    /// prints the key's name and type on standard error, as sigsum-key:
    /// `Key name "NAME", key type: 0x01 (ed25519)`.
    FromVkey(ConvertArgs),
    /// Sign standard input and print the Ed25519 signature in hex (as
    /// sigsum-key sign).
    ///
    /// Sigsum uses the namespaces sigsum.org/v1/tree-leaf (signed
    /// checksums) and sigsum.org/v1/submit-token (rate-limit tokens).
    /// Without -n the message is signed as it is. Exit status 0 on success,
    /// 1 on any error.
    Sign {
        /// Private key: unencrypted OpenSSH or raw hex seed; or an OpenSSH
        /// public key whose private key is in ssh-agent ($SSH_AUTH_SOCK).
        #[arg(short = 'k', long = "signing-key", value_name = "FILE")]
        key: PathBuf,
        /// Where to write the signature (default: standard output);
        /// replaced atomically.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Sign NAMESPACE || 0x00 || message, for domain separation.
        #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
        namespace: Option<String>,
    },
    /// Verify an Ed25519 signature of standard input (as sigsum-key verify).
    ///
    /// Prints nothing if the signature is valid. Exit status 0 if it is
    /// valid, 1 if it is not or on any error.
    Verify {
        /// Public key file, OpenSSH format.
        #[arg(short = 'k', long = "key", value_name = "FILE")]
        key: PathBuf,
        /// Signature file: 128 hex characters, as `sign` writes it.
        #[arg(short = 's', long = "signature", value_name = "FILE")]
        signature: PathBuf,
        /// The namespace the message was signed under (see `sign -n`).
        #[arg(short = 'n', long = "namespace", value_name = "NAMESPACE")]
        namespace: Option<String>,
    },
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

/// Runs a `cairn key` subcommand; `verbose` is the count of `-v`.
pub fn run(cmd: KeyCommand, verbose: u8) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Generate { output } => generate(&output, verbose),
        KeyCommand::ToHex(io) => {
            let key = read_public_key(&input(&io))?;
            files::write_output(io.output.as_deref(), &format!("{}\n", key.to_hex()))
        }
        KeyCommand::ToHash(io) => {
            let key = read_public_key(&input(&io))?;
            files::write_output(io.output.as_deref(), &format!("{}\n", key.key_hash()))
        }
        KeyCommand::ToVkey { io, name, key_type } => {
            let key = read_public_key(&input(&io))?;
            // sigsum-key takes an empty -n as no name.
            let name = name.as_deref().filter(|n| !n.is_empty());
            let vkey = to_vkey(&key, name, key_type)?;
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
            let (vkey, key) =
                parse_vkey(&text).with_context(|| format!("vkey in {}", input(&io).describe()))?;
            if verbose > 0 {
                eprintln!("{}", vkey_description(&vkey));
            }
            files::write_output(io.output.as_deref(), &format_public_key_file(&key))
        }
        KeyCommand::Sign {
            key,
            output,
            namespace,
        } => {
            let signer = read_signer(&key)?.signer;
            let message = read_signed_message(namespace.as_deref())?;
            let signature = signer.sign(&message).context("signing")?;
            files::write_output(output.as_deref(), &format!("{}\n", signature.to_hex()))
        }
        KeyCommand::Verify {
            key,
            signature,
            namespace,
        } => {
            let key = read_public_key(&Input::Path(key))?;
            let signature = read_signature(&signature)?;
            let message = read_signed_message(namespace.as_deref())?;
            if !key.verify(&message, &signature) {
                bail!("signature is not valid");
            }
            Ok(())
        }
    }
}

/// Standard input, prefixed with `namespace || 0x00` unless the namespace
/// is absent or empty (sigsum-key treats both as none).
fn read_signed_message(namespace: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let message = files::read_limited(&Input::Stdin, MAX_MESSAGE_BYTES)?;
    Ok(match namespace {
        Some(ns) if !ns.is_empty() => namespaced(ns, &message),
        _ => message,
    })
}

/// A signature file: 128 hex characters of either case, surrounding
/// whitespace ignored.
fn read_signature(path: &Path) -> anyhow::Result<Signature> {
    let input = Input::Path(path.to_owned());
    let text = files::read_small(&input)?;
    files::hex_array(text.trim_ascii())
        .map(Signature)
        .with_context(|| {
            format!(
                "signature file {} must hold 128 hex characters",
                input.describe()
            )
        })
}

/// Generates a key pair from the operating system's random source.
fn generate(output: &Path, verbose: u8) -> anyhow::Result<()> {
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
    if verbose > 0 {
        eprintln!(
            "wrote private key {} and public key {} (key hash {})",
            output.display(),
            public_path.display(),
            key.public_key().key_hash()
        );
    }
    Ok(())
}

/// The line `sigsum-key from-vkey -v` prints about a vkey:
/// `Key name "NAME", key type: 0xTT (TYPE)`, the name quoted as Go's `%q`
/// quotes it, so that scripts reading either tool's line see the same
/// bytes.
fn vkey_description(vkey: &VerifierKey) -> String {
    let type_name = match vkey.sig_type() {
        VKEY_TYPE_LOG => "ed25519",
        VKEY_TYPE_WITNESS => "cosignature/v1",
        _ => "unknown",
    };
    format!(
        "Key name {}, key type: 0x{:02x} ({type_name})",
        go_quote(vkey.name()),
        vkey.sig_type()
    )
}

/// `s` in double quotes, escaped as Go's `strconv.Quote` escapes it:
/// `\"` and `\\`; the C escapes `\a \b \f \n \r \t \v`; other ASCII
/// controls as `\xNN`; characters that are not printable (controls,
/// format and private-use characters, separators other than the space) as
/// `\uNNNN` or `\UNNNNNNNN`, in lowercase hex.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x1_0000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space. Rust's escape tables treat exactly the other
/// categories (controls, format, private use, unassigned, separators) as
/// not printable, so a character `str::escape_debug` leaves alone past the
/// first position (where combining marks would be escaped) is printable.
/// The two languages' Unicode versions may differ on newly assigned
/// characters.
fn is_go_printable(c: char) -> bool {
    if c.is_ascii() {
        return c == ' ' || c.is_ascii_graphic();
    }
    let mut probe = String::from("a");
    probe.push(c);
    probe.escape_debug().skip(1).eq(std::iter::once(c))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vkey_names_are_quoted_as_go_quotes_them() {
        assert_eq!(
            go_quote("sigsum.org/v1/tree/ab"),
            "\"sigsum.org/v1/tree/ab\""
        );
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("x\u{7f}y\u{1}\n"), r#""x\x7fy\x01\n""#);
        // Printable non-ASCII stays, combining marks included; format and
        // private-use characters are escaped.
        assert_eq!(go_quote("é\u{301}ö"), "\"é\u{301}ö\"");
        assert_eq!(go_quote("a\u{ad}b"), r#""a\u00adb""#);
        assert_eq!(go_quote("\u{85}\u{e000}"), r#""\u0085\ue000""#);
        assert_eq!(go_quote("\u{f0000}"), r#""\U000f0000""#);
    }

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
